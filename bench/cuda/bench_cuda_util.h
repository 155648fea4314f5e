/* What the CUDA microbenchmarks share (the programs in bench/cuda): a status check that exits (benches
 * are programs, not library code), event timing as the median of repeats after warm-ups, and
 * random device buffers. Header-only: each bench is one translation unit. */
#ifndef DSC_BENCH_CUDA_UTIL_H
#define DSC_BENCH_CUDA_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "ops/cuda/cuda_kernels.h"

#define BCK(call)                                                                                  \
    do {                                                                                           \
        int rc_ = (call);                                                                          \
        if (rc_) {                                                                                 \
            fprintf(stderr, "%s:%d: %s -> %d (%s)\n", __FILE__, __LINE__, #call, rc_,              \
                    dsc_cuda_error_string(rc_));                                                   \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

typedef struct bench_timer {
    void *ev0, *ev1;
} bench_timer_t;

static inline int bench_cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

/* Median ms of `reps` (at most 64) runs of body (a statement), after `warm` warm-ups, on the
 * default stream. */
#define BENCH_MS(timer, out_ms, warm, reps, body)                                                  \
    do {                                                                                           \
        for (int it_ = 0; it_ < (warm); it_++) { body; }                                           \
        float t_[64];                                                                              \
        for (int it_ = 0; it_ < (reps); it_++) {                                                   \
            BCK(dsc_cuda_event_record((timer)->ev0, NULL));                                        \
            body;                                                                                  \
            BCK(dsc_cuda_event_record((timer)->ev1, NULL));                                        \
            BCK(dsc_cuda_event_sync((timer)->ev1));                                                \
            BCK(dsc_cuda_event_elapsed_ms((timer)->ev0, (timer)->ev1, &t_[it_]));                  \
        }                                                                                          \
        qsort(t_, (size_t)(reps), sizeof(float), bench_cmp_float);                                 \
        (out_ms) = t_[(reps) / 2];                                                                 \
    } while (0)

/* xorshift: the same values on every run */
static inline float bench_urand(uint64_t *state) {
    uint64_t r = *state;
    r ^= r << 13, r ^= r >> 7, r ^= r << 17;
    *state = r;
    return (float)((r >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
}

/* n random values of dt in [lo, hi) on the device (made as f32 on the host, converted there). */
static inline void *bench_rand_dev(dsc_dtype_t dt, size_t n, float lo, float hi, uint64_t *state) {
    const size_t chunk = 1 << 22;
    float *h = malloc(chunk * sizeof(float));
    void *d = NULL, *tmp = NULL;
    const size_t es = dsc_dtype_size(dt);
    if (!h) exit(1);
    BCK(dsc_cuda_malloc(&d, n * es));
    BCK(dsc_cuda_malloc(&tmp, chunk * sizeof(float)));
    for (size_t o = 0; o < n; o += chunk) {
        const size_t m = n - o < chunk ? n - o : chunk;
        for (size_t i = 0; i < m; i++) h[i] = lo + (bench_urand(state) * 0.5f + 0.5f) * (hi - lo);
        BCK(dsc_cuda_copy_h2d_async(tmp, h, m * sizeof(float), NULL));
        BCK(dsc_cuda_convert(NULL, (char *)d + o * es, dt, tmp, DSC_F32, (int64_t)m));
        BCK(dsc_cuda_stream_sync(NULL));
    }
    dsc_cuda_free(tmp);
    free(h);
    return d;
}

/* Device-to-device copy bandwidth over 2 GiB (bytes read + written), GB/s: the memory
 * ceiling the memory-bound kernels are quoted against. */
static inline double bench_copy_gbs(bench_timer_t *t) {
    const size_t cb = (size_t)2 << 30;
    void *a = NULL, *b = NULL;
    float ms = 0;
    BCK(dsc_cuda_malloc(&a, cb));
    BCK(dsc_cuda_malloc(&b, cb));
    BCK(dsc_cuda_memset_async(a, 1, cb, NULL));
    BENCH_MS(t, ms, 2, 10, BCK(dsc_cuda_copy_d2d_async(b, a, cb, NULL)));
    dsc_cuda_free(a), dsc_cuda_free(b);
    return 2.0 * cb / (ms * 1e-3) / 1e9;
}

#endif

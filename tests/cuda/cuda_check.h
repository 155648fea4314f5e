/* Harness of the CUDA kernel tests: host/device buffers in any float dtype, comparisons
 * against the CPU oracle (norm-wise relative error: max |got - ref| / max |ref|, NaN fails),
 * bit-for-bit comparisons, and the run-twice reproducibility check. Every check prints one
 * line (kernel, dtype, measured error, tolerance) so the log is the tolerance table. */
#ifndef DSC_TESTS_CUDA_CHECK_H
#define DSC_TESTS_CUDA_CHECK_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dsc/tensor.h"
#include "ops/cuda/cuda_kernels.h"

static int cc_failures, cc_checks;

/* A failed call is a failed check; a sticky CUDA error (the context is lost: illegal address,
 * launch failure, ...) ends the program, a refused call (invalid value, a cuBLAS status) lets
 * the other checks run. */
#define CK(call)                                                                                     \
    do {                                                                                             \
        int rc_ = (call);                                                                            \
        if (rc_ == 0) rc_ = dsc_cuda_device_sync();                                                  \
        if (rc_ != 0) {                                                                              \
            cc_failures++;                                                                           \
            printf("FAIL %s:%d: %s -> %d (%s)\n", __FILE__, __LINE__, #call, rc_,                    \
                   dsc_cuda_error_string(rc_));                                                      \
            fflush(stdout);                                                                          \
            if (rc_ != 1 && rc_ < 1000) exit(1);                                                     \
        }                                                                                            \
    } while (0)

static uint64_t cc_rng = 0x9E3779B97F4A7C15ull;
static inline double cc_uniform(void) { /* xorshift64*, in [0, 1) */
    cc_rng ^= cc_rng >> 12;
    cc_rng ^= cc_rng << 25;
    cc_rng ^= cc_rng >> 27;
    return (double)((cc_rng * 2685821657736338717ull) >> 11) * (1.0 / 9007199254740992.0);
}

static inline size_t cc_size(dsc_dtype_t dt) { return dsc_dtype_size(dt); }

/* A value of dt, seen as float (the value the device holds). */
static inline float cc_round(dsc_dtype_t dt, float v) {
    if (dt == DSC_BF16) return dsc_bf16_to_f32(dsc_f32_to_bf16(v));
    if (dt == DSC_F16) return dsc_f16_to_f32(dsc_f32_to_f16(v));
    return v;
}

typedef struct cc_buf {
    dsc_dtype_t dt;
    int64_t n;
    float *init; /* the values uploaded by cc_reset (exactly representable in dt) */
    void *d;
} cc_buf_t;

static inline void cc_reset(cc_buf_t *b) {
    void *tmp = malloc((size_t)b->n * cc_size(b->dt) + 8);
    dsc_convert(tmp, b->dt, b->init, DSC_F32, (size_t)b->n);
    CK(dsc_cuda_copy_h2d_async(b->d, tmp, (size_t)b->n * cc_size(b->dt), NULL));
    free(tmp);
}

static inline cc_buf_t cc_new(dsc_dtype_t dt, int64_t n, double lo, double hi) {
    cc_buf_t b = {dt, n, malloc((size_t)n * sizeof(float) + 4), NULL};
    for (int64_t i = 0; i < n; i++) b.init[i] = cc_round(dt, (float)(lo + (hi - lo) * cc_uniform()));
    CK(dsc_cuda_malloc(&b.d, (size_t)n * cc_size(dt) + 8));
    cc_reset(&b);
    return b;
}

static inline void cc_free(cc_buf_t *b) {
    free(b->init);
    dsc_cuda_free(b->d);
}

static inline void *cc_raw(const void *d, size_t bytes) {
    void *h = malloc(bytes + 8);
    CK(dsc_cuda_copy_d2h_async(h, d, bytes, NULL));
    return h;
}

static inline float *cc_get(const cc_buf_t *b) {
    void *raw = cc_raw(b->d, (size_t)b->n * cc_size(b->dt));
    float *f = malloc((size_t)b->n * sizeof(float) + 4);
    dsc_convert(f, DSC_F32, raw, b->dt, (size_t)b->n);
    free(raw);
    return f;
}

static inline void *cc_upload(const void *h, size_t bytes) {
    void *d = NULL;
    CK(dsc_cuda_malloc(&d, bytes + 8));
    CK(dsc_cuda_copy_h2d_async(d, h, bytes, NULL));
    return d;
}

/* Norm-wise relative error of got against ref (n floats). */
static inline double cc_relerr(const float *got, const float *ref, int64_t n) {
    double md = 0, mr = 0;
    for (int64_t i = 0; i < n; i++) {
        if (isnan(got[i]) != isnan(ref[i])) return INFINITY;
        double d = fabs((double)got[i] - (double)ref[i]);
        if (d > md) md = d;
        if (fabs((double)ref[i]) > mr) mr = fabs((double)ref[i]);
    }
    return mr > 0 ? md / mr : md;
}

static inline void cc_close(const char *what, dsc_dtype_t dt, const float *got, const float *ref, int64_t n, double tol) {
    const double e = cc_relerr(got, ref, n);
    cc_checks++;
    const int ok = e <= tol;
    if (!ok) cc_failures++;
    printf("%-4s %-34s %-5s relerr %.3e  tol %.0e\n", ok ? "ok" : "FAIL", what, dsc_dtype_name(dt), e, tol);
}

static inline void cc_bits(const char *what, dsc_dtype_t dt, const void *a, const void *b, size_t bytes) {
    cc_checks++;
    const int ok = memcmp(a, b, bytes) == 0;
    if (!ok) cc_failures++;
    size_t first = 0;
    if (!ok)
        while (first < bytes && ((const unsigned char *)a)[first] == ((const unsigned char *)b)[first]) first++;
    if (ok) printf("ok   %-34s %-5s bitwise\n", what, dsc_dtype_name(dt));
    else printf("FAIL %-34s %-5s bitwise (first differing byte %zu of %zu)\n", what, dsc_dtype_name(dt), first, bytes);
}

/* The reproducibility check: the device bytes of two runs of one kernel. */
static inline void cc_repeat(const char *what, dsc_dtype_t dt, const void *run1, const void *run2, size_t bytes) {
    char name[160];
    snprintf(name, sizeof name, "%.100s (run twice)", what);
    cc_bits(name, dt, run1, run2, bytes);
}

static inline int cc_finish(const char *prog) {
    printf("%s: %d checks, %d failed\n", prog, cc_checks, cc_failures);
    return cc_failures ? 1 : 0;
}

/* Exit 77 (ctest: skipped) when no GPU is visible. */
static inline void cc_require_gpu(const char *prog) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (dsc_cuda_device_count() < 1) {
        printf("%s: SKIP: no CUDA device visible (no driver or no GPU on this machine)\n", prog);
        exit(77);
    }
    dsc_cuda_device_info_t info;
    if (dsc_cuda_device_info(0, &info) == 0)
        printf("%s: device %s, sm_%d%d, %d SMs, %.1f GiB, driver %d, runtime %d, cuBLASLt %zu\n", prog, info.name,
               info.cc_major, info.cc_minor, info.sm_count, info.total_mem / 1073741824.0, info.driver_version,
               info.runtime_version, info.cublaslt_version);
}

/* A host copy of n floats (4 bytes of slack: a 0-element copy is still a pointer). */
static inline float *copyf(const float *x, int64_t n) {
    float *y = (float *)malloc((size_t)n * sizeof *y + 4);
    memcpy(y, x, (size_t)n * sizeof *y);
    return y;
}

/* The device buffer against ref within tol (cc_close), named what. */
static inline void compare(const char *what, const cc_buf_t *out, const float *ref, double tol) {
    float *got = cc_get(out);
    cc_close(what, out->dt, got, ref, out->n, tol);
    free(got);
}

#endif

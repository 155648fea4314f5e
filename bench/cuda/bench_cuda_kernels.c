/* Microbenchmark of the CUDA kernels (issue 17's kernel-level figures), timed with CUDA
 * events, median of repeats after warm-up, on random data:
 *   - device-to-device copy bandwidth (bytes read + written), the memory ceiling;
 *   - cuBLASLt gemm TFLOP/s (bf16 with f32 accumulation; f32 without TF32) vs the datasheet
 *     dense peak of the device;
 *   - flash attention forward and backward at GPT-2 124M shape (B 8, T 1024, C 768, H 12);
 *   - the AdamW step over 124.5M parameters (bf16 gradients and parameter copy, f32 master and
 *     moments: 28 bytes per parameter) vs the copy bandwidth; issue 17's target is 1.22 ms;
 *   - the amp overflow scan over the same bf16 gradients.
 * Usage: bench_cuda_kernels [--quick]. Exits 77 without a GPU. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/cuda/cuda_kernels.h"
#include "optim/optim_internal.h"

#define CK(call)                                                                                   \
    do {                                                                                           \
        int rc_ = (call);                                                                          \
        if (rc_) {                                                                                 \
            fprintf(stderr, "%s:%d: %s -> %d (%s)\n", __FILE__, __LINE__, #call, rc_,              \
                    dsc_cuda_error_string(rc_));                                                   \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

static void *ev0, *ev1;

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

/* Median ms of `reps` runs of the body (a statement using `it`), after `warm` warm-ups. */
#define TIME_MS(out_ms, warm, reps, body)                                                          \
    do {                                                                                           \
        for (int it = 0; it < (warm); it++) { body; }                                              \
        float t_[64];                                                                              \
        for (int it = 0; it < (reps); it++) {                                                      \
            CK(dsc_cuda_event_record(ev0, NULL));                                                  \
            body;                                                                                  \
            CK(dsc_cuda_event_record(ev1, NULL));                                                  \
            CK(dsc_cuda_event_sync(ev1));                                                          \
            CK(dsc_cuda_event_elapsed_ms(ev0, ev1, &t_[it]));                                      \
        }                                                                                          \
        qsort(t_, (size_t)(reps), sizeof(float), cmp_float);                                       \
        (out_ms) = t_[(reps) / 2];                                                                 \
    } while (0)

static uint64_t rng = 88172645463325252ull;
static float urand(void) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (float)((rng >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
}

/* Random device buffer of n elements of dt (values in [-scale, scale)). */
static void *rand_dev(dsc_dtype_t dt, size_t n, float scale) {
    const size_t chunk = 1 << 22;
    float *h = malloc(chunk * sizeof(float));
    void *d = NULL, *tmp = NULL;
    const size_t es = dsc_dtype_size(dt);
    CK(dsc_cuda_malloc(&d, n * es));
    CK(dsc_cuda_malloc(&tmp, chunk * sizeof(float)));
    for (size_t o = 0; o < n; o += chunk) {
        const size_t m = n - o < chunk ? n - o : chunk;
        for (size_t i = 0; i < m; i++) h[i] = urand() * scale;
        CK(dsc_cuda_copy_h2d_async(tmp, h, m * sizeof(float), NULL));
        CK(dsc_cuda_convert(NULL, (char *)d + o * es, dt, tmp, DSC_F32, (int64_t)m));
        CK(dsc_cuda_stream_sync(NULL));
    }
    dsc_cuda_free(tmp);
    free(h);
    return d;
}

/* Dense datasheet peaks (TFLOP/s) by device name: SXM H100 / H200 bf16 989.4, f32 66.9. */
static double peak_bf16(const char *name) {
    if (strstr(name, "H100") && strstr(name, "PCIe")) return 756.0;
    if (strstr(name, "H100") || strstr(name, "H200")) return 989.4;
    return 0;
}
static double peak_f32(const char *name) {
    if (strstr(name, "H100") && strstr(name, "PCIe")) return 51.2;
    if (strstr(name, "H100") || strstr(name, "H200")) return 66.9;
    return 0;
}

int main(int argc, char **argv) {
    const int quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
    if (dsc_cuda_device_count() < 1) {
        printf("bench_cuda_kernels: SKIP: no CUDA device\n");
        return 77;
    }
    dsc_cuda_device_info_t info;
    CK(dsc_cuda_device_info(0, &info));
    printf("device: %s (sm_%d%d, %d SMs, %.1f GiB, L2 %.0f MB, driver %d, runtime %d, cuBLASLt %zu)\n", info.name,
           info.cc_major, info.cc_minor, info.sm_count, info.total_mem / 1073741824.0, info.l2_bytes / 1e6,
           info.driver_version, info.runtime_version, info.cublaslt_version);
    CK(dsc_cuda_event_create(&ev0));
    CK(dsc_cuda_event_create(&ev1));
    float ms = 0;

    /* copy bandwidth: 2 GiB device-to-device */
    const size_t cb = (size_t)2 << 30;
    void *ca = NULL, *cbuf = NULL;
    CK(dsc_cuda_malloc(&ca, cb));
    CK(dsc_cuda_malloc(&cbuf, cb));
    CK(dsc_cuda_memset_async(ca, 1, cb, NULL));
    TIME_MS(ms, 2, 10, CK(dsc_cuda_copy_d2d_async(cbuf, ca, cb, NULL)));
    const double copy_gbs = 2.0 * cb / (ms * 1e-3) / 1e9;
    printf("copy d2d 2 GiB: %.3f ms, %.0f GB/s (read + write)\n", ms, copy_gbs);
    dsc_cuda_free(ca), dsc_cuda_free(cbuf);

    /* gemm */
    dsc_cuda_blas_t *blas = NULL;
    CK(dsc_cuda_blas_create(&blas, 32u << 20));
    struct { const char *what; dsc_dtype_t dt; int64_t m, n, k; bool tb; } gs[] = {
        {"bf16 8192^3", DSC_BF16, 8192, 8192, 8192, false},
        {"bf16 GPT2 qkv 16384x2304x768 (x W^T)", DSC_BF16, 16384, 2304, 768, true},
        {"bf16 GPT2 fc 16384x3072x768 (x W^T)", DSC_BF16, 16384, 3072, 768, true},
        {"bf16 GPT2 lm_head 16384x50304x768 (x W^T)", DSC_BF16, 16384, 50304, 768, true},
        {"f32 (no TF32) 4096^3", DSC_F32, 4096, 4096, 4096, false},
    };
    for (size_t gi = 0; gi < sizeof gs / sizeof gs[0]; gi++) {
        if (quick && gi > 0 && gi < 4) continue;
        const int64_t m = gs[gi].m, n = gs[gi].n, k = gs[gi].k;
        void *a = rand_dev(gs[gi].dt, (size_t)(m * k), 1), *b = rand_dev(gs[gi].dt, (size_t)(k * n), 1);
        void *c = rand_dev(gs[gi].dt, (size_t)(m * n), 1);
        const bool tb = gs[gi].tb;
        TIME_MS(ms, 3, 10, CK(dsc_cuda_gemm(blas, NULL, gs[gi].dt, false, tb, m, n, k, 1.0, a, k, b, tb ? k : n, 0.0,
                                            c, n)));
        const double tf = 2.0 * m * n * k / (ms * 1e-3) / 1e12;
        const double peak = gs[gi].dt == DSC_BF16 ? peak_bf16(info.name) : peak_f32(info.name);
        printf("gemm %-44s %8.3f ms %7.1f TFLOP/s  (%.0f%% of %.1f dense peak)\n", gs[gi].what, ms, tf,
               peak > 0 ? 100 * tf / peak : 0, peak);
        dsc_cuda_free(a), dsc_cuda_free(b), dsc_cuda_free(c);
    }
    dsc_cuda_blas_destroy(blas);

    /* attention, GPT-2 124M shape */
    {
        const int64_t B = 8, T = 1024, C = 768, H = 12, hd = C / H;
        void *qkv = rand_dev(DSC_BF16, (size_t)(B * T * 3 * C), 1), *out = NULL, *lse = NULL;
        void *dout = rand_dev(DSC_BF16, (size_t)(B * T * C), 1), *dqkv = rand_dev(DSC_BF16, (size_t)(B * T * 3 * C), 0);
        CK(dsc_cuda_malloc(&out, (size_t)(B * T * C) * 2));
        CK(dsc_cuda_malloc(&lse, (size_t)(B * H * T) * 4));
        const double fl = 4.0 * B * H * (double)T * T * hd / 2; /* causal: half the scores */
        float fwd = 0, bwd = 0;
        TIME_MS(fwd, 2, 10, CK(dsc_cuda_attention(NULL, DSC_BF16, B, T, C, H, qkv, 0.0, 1, 0, out, lse)));
        TIME_MS(bwd, 2, 10, CK(dsc_cuda_attention_backward(NULL, DSC_BF16, B, T, C, H, qkv, out, lse, dout, 0.0, 1, 0,
                                                          dqkv)));
        printf("attention bf16 B%lld T%lld C%lld H%lld: fwd %.3f ms (%.1f TFLOP/s), bwd %.3f ms (%.1f TFLOP/s), "
               "fwd+bwd %.3f ms\n", (long long)B, (long long)T, (long long)C, (long long)H, fwd, fl / (fwd * 1e-3) / 1e12,
               bwd, 2.5 * fl / (bwd * 1e-3) / 1e12, fwd + bwd);
        float fwd_d = 0;
        TIME_MS(fwd_d, 1, 5, CK(dsc_cuda_attention(NULL, DSC_BF16, B, T, C, H, qkv, 0.1, 1, 0, out, lse)));
        printf("attention bf16 fwd with dropout 0.1: %.3f ms\n", fwd_d);
        dsc_cuda_free(qkv), dsc_cuda_free(out), dsc_cuda_free(lse), dsc_cuda_free(dout), dsc_cuda_free(dqkv);
    }

    /* AdamW over 124.5M parameters */
    {
        const int64_t n = 124475904; /* GPT-2 124M with the padded 50304 vocabulary */
        float *p = rand_dev(DSC_F32, (size_t)n, 1), *m = rand_dev(DSC_F32, (size_t)n, 0.01f);
        float *v = rand_dev(DSC_F32, (size_t)n, 0.01f);
        void *g = rand_dev(DSC_BF16, (size_t)n, 1);
        uint16_t *half = NULL;
        CK(dsc_cuda_malloc((void **)&half, (size_t)n * 2));
        dsc_optim_scalars_t s;
        memset(&s, 0, sizeof s);
        s.gs = 1.0f, s.b1 = 0.9f, s.b2 = 0.95f, s.omb1 = 0.1f, s.omb2 = 0.05f, s.eps = 1e-8f;
        s.decay = 1.0f - 6e-4f * 0.1f, s.nstep = -6e-4f, s.bc2s = 1.0f, s.half = DSC_OPTIM_HALF_BF16;
        /* v must be >= 0 */
        CK(dsc_cuda_memset_async(v, 0, (size_t)n * 4, NULL));
        TIME_MS(ms, 3, 20, CK(dsc_cuda_optim_step(NULL, DSC_CUDA_OPTIM_ADAM, &s, p, g, DSC_BF16, m, v, NULL, half, n,
                                                  NULL)));
        const double bytes = 28.0 * n;
        printf("adamw step 124.5M params (bf16 g + bf16 copy, f32 p/m/v; 28 B/param): %.3f ms, %.0f GB/s = %.0f%% of "
               "copy bandwidth; issue 17 target 1.22 ms; floor at copy bandwidth %.3f ms\n", ms, bytes / (ms * 1e-3) / 1e9,
               100 * bytes / (ms * 1e-3) / 1e9 / copy_gbs, bytes / (copy_gbs * 1e9) * 1e3);
        /* amp scan over the bf16 gradients, 149 segments like GPT-2's tensors */
        dsc_amp_segment_t segs[149];
        const int64_t per = n / 149;
        for (int i = 0; i < 149; i++) segs[i] = (dsc_amp_segment_t){(size_t)(i * per), (size_t)(i == 148 ? n - i * per : per)};
        const size_t wsb = dsc_cuda_amp_scan_workspace_bytes(segs, 149);
        void *ws = NULL, *dsegs = NULL, *outs = NULL;
        CK(dsc_cuda_malloc(&ws, wsb));
        CK(dsc_cuda_malloc(&dsegs, sizeof segs));
        CK(dsc_cuda_malloc(&outs, 4096));
        CK(dsc_cuda_copy_h2d_async(dsegs, segs, sizeof segs, NULL));
        TIME_MS(ms, 2, 10, CK(dsc_cuda_amp_scan_segments(NULL, g, DSC_BF16, dsegs, 149, ws, wsb, outs,
                                                         (double *)((char *)outs + 256), (uint8_t *)outs + 2048,
                                                         (double *)((char *)outs + 2056), (uint64_t *)((char *)outs + 2064))));
        printf("amp scan 124.5M bf16 grads, 149 segments: %.3f ms, %.0f GB/s read\n", ms, 2.0 * n / (ms * 1e-3) / 1e9);
        dsc_cuda_free(p), dsc_cuda_free(m), dsc_cuda_free(v), dsc_cuda_free(g), dsc_cuda_free(half);
        dsc_cuda_free(ws), dsc_cuda_free(dsegs), dsc_cuda_free(outs);
    }
    dsc_cuda_event_destroy(ev0);
    dsc_cuda_event_destroy(ev1);
    return 0;
}

/* Microbenchmark of the CUDA kernels (issue 17's kernel-level figures), timed with CUDA
 * events, median of repeats after warm-up, on random data:
 *   - device-to-device copy bandwidth (bytes read + written), the memory ceiling;
 *   - cuBLASLt gemm TFLOP/s (bf16 with f32 accumulation; f32 without TF32) vs the datasheet
 *     dense peak of the device;
 *   - flash attention forward and backward at GPT-2 124M shape (B 8, T 1024, C 768, H 12), the
 *     tensor-core kernels against the simple ones side by side (and their agreement), bf16;
 *     without --quick also f16 and head size 128;
 *   - the AdamW step over 124.5M parameters (bf16 gradients and parameter copy, f32 master and
 *     moments: 28 bytes per parameter) vs the copy bandwidth; issue 17's target is 1.22 ms;
 *   - the amp overflow scan over the same bf16 gradients.
 * Usage: bench_cuda_kernels [--quick]. Exits 77 without a GPU. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/cuda/bench_cuda_util.h"
#include "ops/cuda/cuda_kernels.h"
#include "optim/optim_internal.h"

/* the shared status check and event timing (bench_cuda_util.h) */
#define CK BCK
static bench_timer_t timer;
#define TIME_MS(out_ms, warm, reps, body) BENCH_MS(&timer, out_ms, warm, reps, body)

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

/* Device buffer of n values of dt -> host floats. */
static float *to_host_f32(const void *d, dsc_dtype_t dt, size_t n) {
    void *tmp = NULL;
    float *h = malloc(n * sizeof(float));
    CK(dsc_cuda_malloc(&tmp, n * sizeof(float)));
    CK(dsc_cuda_convert(NULL, tmp, DSC_F32, d, dt, (int64_t)n));
    CK(dsc_cuda_copy_d2h_async(h, tmp, n * sizeof(float), NULL));
    CK(dsc_cuda_stream_sync(NULL));
    dsc_cuda_free(tmp);
    return h;
}

/* max |a - b| / max |b| */
static double relerr(const float *a, const float *b, size_t n) {
    double md = 0, mb = 0;
    for (size_t i = 0; i < n; i++) {
        const double d = fabs((double)a[i] - (double)b[i]);
        if (d > md || d != d) md = d != d ? INFINITY : d;
        if (fabs((double)b[i]) > mb) mb = fabs((double)b[i]);
    }
    return mb > 0 ? md / mb : md;
}

/* Flash attention forward and backward: the tensor-core kernels (dsc_cuda_attention, what the
 * engine calls) against the simple kernels (dsc_cuda_attention_simple), timed side by side,
 * and their results compared at this shape (the backward of both from the simple forward's
 * out and lse). FLOPs: causal, half of 4 B H T^2 hd forward, 2.5 times that backward. */
static void bench_attention(dsc_dtype_t dt, int64_t B, int64_t T, int64_t C, int64_t H, int with_dropout) {
    const int64_t hd = C / H;
    const size_t nqkv = (size_t)(B * T * 3 * C), nout = (size_t)(B * T * C), nl = (size_t)(B * H * T);
    const size_t es = dsc_dtype_size(dt);
    void *qkv = rand_dev(dt, nqkv, 1), *dout = rand_dev(dt, nout, 1), *out = NULL, *lse = NULL, *dqkv = NULL;
    void *out2 = NULL, *lse2 = NULL;
    CK(dsc_cuda_malloc(&out, nout * es));
    CK(dsc_cuda_malloc(&out2, nout * es));
    CK(dsc_cuda_malloc(&lse, nl * 4));
    CK(dsc_cuda_malloc(&lse2, nl * 4));
    CK(dsc_cuda_malloc(&dqkv, nqkv * es));
    CK(dsc_cuda_memset_async(dqkv, 0, nqkv * es, NULL));
    const double fl = 4.0 * B * H * (double)T * T * hd / 2;
    const char *name = dsc_dtype_name(dt);
    float fs = 0, bs = 0, ff = 0, bf = 0;
    TIME_MS(fs, 1, 5, CK(dsc_cuda_attention_simple(NULL, dt, B, T, C, H, qkv, 0.0, 1, 0, out, lse)));
    TIME_MS(bs, 1, 5, CK(dsc_cuda_attention_backward_simple(NULL, dt, B, T, C, H, qkv, out, lse, dout, 0.0, 1, 0,
                                                           dqkv)));
    TIME_MS(ff, 2, 10, CK(dsc_cuda_attention(NULL, dt, B, T, C, H, qkv, 0.0, 1, 0, out2, lse2)));
    TIME_MS(bf, 2, 10, CK(dsc_cuda_attention_backward(NULL, dt, B, T, C, H, qkv, out, lse, dout, 0.0, 1, 0, dqkv)));
    printf("attention %s B%lld T%lld C%lld H%lld (hd %lld) simple kernels: fwd %.3f ms (%.1f TFLOP/s), bwd %.3f ms "
           "(%.1f TFLOP/s)\n", name, (long long)B, (long long)T, (long long)C, (long long)H, (long long)hd, fs,
           fl / (fs * 1e-3) / 1e12, bs, 2.5 * fl / (bs * 1e-3) / 1e12);
    printf("attention %s B%lld T%lld C%lld H%lld (hd %lld) tensor cores:   fwd %.3f ms (%.1f TFLOP/s), bwd %.3f ms "
           "(%.1f TFLOP/s), fwd+bwd %.3f ms, speedup fwd %.1fx bwd %.1fx\n", name, (long long)B, (long long)T,
           (long long)C, (long long)H, (long long)hd, ff, fl / (ff * 1e-3) / 1e12, bf, 2.5 * fl / (bf * 1e-3) / 1e12,
           ff + bf, fs / ff, bs / bf);
    /* agreement at this shape */
    CK(dsc_cuda_attention_simple(NULL, dt, B, T, C, H, qkv, 0.0, 1, 0, out, lse));
    CK(dsc_cuda_attention(NULL, dt, B, T, C, H, qkv, 0.0, 1, 0, out2, lse2));
    float *o1 = to_host_f32(out, dt, nout), *o2 = to_host_f32(out2, dt, nout);
    float *l1 = to_host_f32(lse, DSC_F32, nl), *l2 = to_host_f32(lse2, DSC_F32, nl);
    CK(dsc_cuda_memset_async(dqkv, 0, nqkv * es, NULL));
    CK(dsc_cuda_attention_backward_simple(NULL, dt, B, T, C, H, qkv, out, lse, dout, 0.0, 1, 0, dqkv));
    float *d1 = to_host_f32(dqkv, dt, nqkv);
    CK(dsc_cuda_memset_async(dqkv, 0, nqkv * es, NULL));
    CK(dsc_cuda_attention_backward(NULL, dt, B, T, C, H, qkv, out, lse, dout, 0.0, 1, 0, dqkv));
    float *d2 = to_host_f32(dqkv, dt, nqkv);
    /* both sides round to 16 bits: the bounds are the test's tolerances against the CPU */
    const double eo = relerr(o2, o1, nout), el = relerr(l2, l1, nl), ed = relerr(d2, d1, nqkv);
    const double to = dt == DSC_BF16 ? 2e-2 : 5e-3, tl = dt == DSC_BF16 ? 1e-2 : 2e-3, td = dt == DSC_BF16 ? 3e-2 : 1e-2;
    printf("attention %s hd %lld tensor cores vs simple (norm-wise relative): out %.2e, lse %.2e, dqkv %.2e: %s\n",
           name, (long long)hd, eo, el, ed, eo <= to && el <= tl && ed <= td ? "agree" : "MISMATCH");
    free(o1), free(o2), free(l1), free(l2), free(d1), free(d2);
    if (with_dropout) {
        float fd = 0, bd = 0;
        TIME_MS(fd, 1, 5, CK(dsc_cuda_attention(NULL, dt, B, T, C, H, qkv, 0.1, 1, 0, out2, lse2)));
        TIME_MS(bd, 1, 5, CK(dsc_cuda_attention_backward(NULL, dt, B, T, C, H, qkv, out2, lse2, dout, 0.1, 1, 0,
                                                         dqkv)));
        printf("attention %s tensor cores with dropout 0.1: fwd %.3f ms, bwd %.3f ms\n", name, fd, bd);
    }
    dsc_cuda_free(qkv), dsc_cuda_free(dout), dsc_cuda_free(out), dsc_cuda_free(out2), dsc_cuda_free(lse);
    dsc_cuda_free(lse2), dsc_cuda_free(dqkv);
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
    CK(dsc_cuda_event_create(&timer.ev0));
    CK(dsc_cuda_event_create(&timer.ev1));
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

    /* attention, GPT-2 124M shape (hd 64) and hd 128, tensor cores vs the simple kernels */
    bench_attention(DSC_BF16, 8, 1024, 768, 12, 1);
    if (!quick) {
        bench_attention(DSC_F16, 8, 1024, 768, 12, 0);
        bench_attention(DSC_BF16, 8, 1024, 768, 6, 0); /* hd 128 */
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
    dsc_cuda_event_destroy(timer.ev0);
    dsc_cuda_event_destroy(timer.ev1);
    return 0;
}

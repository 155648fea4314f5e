/* The tensor-core flash attention's variants (dsc_cuda_att_cfg_t) timed side by side, issue
 * 17's attention figures: causal, bf16, GPT-2 124M heads (T 1024, C 768, H 12, hd 64) at B 64
 * (the training step's shape) and B 8 (a quick case); with --hd128 also H 6 (hd 128).
 *   forward:  4 warps (64-row tiles, the default) and 8 warps (128-row tiles);
 *   backward: recompute (two kernels, Dq per tile: the default), pre (Dq once per row, two
 *             kernels, deterministic) on 4 and 8 warps, atomic (one dK dV dQ kernel, dQ by
 *             f32 atomics: not reproducible) on 4 and 8 warps.
 * FLOPs: causal forward 2 B H T^2 hd (QK^T and PV, 2 T^2 hd each, halved by the mask), the
 * backward 2.5 times that (5 products); the same count for every variant, so TFLOP/s compare
 * times. Anchor: FlashAttention-2 on an H100 SXM5 at hd 64, sequence 1k, about 230 TFLOP/s
 * forward (the FlashAttention-3 paper's H100 chart), roughly 3x our backward at the start of
 * session 6 (76 TFLOP/s). Each variant's dqkv is compared with the default's (norm-wise
 * relative error; the bound is test_cuda_kernels' bf16 tolerance against the CPU).
 * Timing: CUDA events, median of 10 after 2 warm-ups. Not yet run on a GPU; its work is 7
 * variants x 12 runs of a few ms at B 64, plus the host's (random inputs, 6 dqkv copies and
 * comparisons of 151M values).
 * cuDNN's fused attention (dsc_cuda_cudnn_*, the `cudnn` variant) adds a fwd and a bwd row
 * when libcudnn.so.9 loads (its backward writes dqkv; the device adds it to the gradient in
 * one more pass, not timed here).
 * Usage: bench_attention [--quick] [--hd128]. Exits 77 without a GPU. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/cuda/bench_cuda_util.h"
#include "ops/cuda/cuda_kernels.h"

/* the shared status check and event timing (bench_cuda_util.h) */
#define CK BCK
static bench_timer_t timer;
#define TIME_MS(out_ms, warm, reps, body) BENCH_MS(&timer, out_ms, warm, reps, body)

static uint64_t rng = 88172645463325252ull;
static float urand(void) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (float)((rng >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
}

static void *rand_dev(dsc_dtype_t dt, size_t n, float scale) {
    float *h = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) h[i] = urand() * scale;
    void *raw = malloc(n * dsc_dtype_size(dt)), *d = NULL;
    dsc_convert(raw, dt, h, DSC_F32, n);
    CK(dsc_cuda_malloc(&d, n * dsc_dtype_size(dt)));
    CK(dsc_cuda_copy_h2d_async(d, raw, n * dsc_dtype_size(dt), NULL));
    CK(dsc_cuda_stream_sync(NULL));
    free(h), free(raw);
    return d;
}

static float *to_host_f32(const void *d, dsc_dtype_t dt, size_t n) {
    void *raw = malloc(n * dsc_dtype_size(dt));
    float *f = malloc(n * sizeof(float));
    CK(dsc_cuda_copy_d2h_async(raw, d, n * dsc_dtype_size(dt), NULL));
    CK(dsc_cuda_stream_sync(NULL));
    dsc_convert(f, DSC_F32, raw, dt, n);
    free(raw);
    return f;
}

static double relerr(const float *a, const float *b, size_t n) {
    double md = 0, mb = 0;
    for (size_t i = 0; i < n; i++) {
        const double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= md)) md = d; /* NaN propagates */
        if (fabs((double)b[i]) > mb) mb = fabs((double)b[i]);
    }
    return mb > 0 ? md / mb : md;
}

static const char *bwd_name(int bwd) { return bwd == 0 ? "recompute" : bwd == 1 ? "pre" : "atomic"; }

/* cuDNN's fused attention (the device's `cudnn` variant) on the same inputs: fwd and bwd
 * times, its out against the default forward's, its dqkv (which it writes) against the
 * default backward's. Skipped with the reason when cuDNN is absent or refuses the shape. */
static void bench_cudnn(dsc_cuda_cudnn_t *cd, dsc_dtype_t dt, int64_t B, int64_t T, int64_t C, int64_t H,
                        const void *qkv, const void *dout, const float *ref_out, const float *ref_dqkv, double fl) {
    const size_t nqkv = (size_t)(B * T * 3 * C), nout = (size_t)(B * T * C), es = dsc_dtype_size(dt);
    size_t fwd_ws = 0, bwd_ws = 0;
    if (!cd || dsc_cuda_cudnn_attention_prepare(cd, false, dt, B, T, C, H, &fwd_ws) ||
        dsc_cuda_cudnn_attention_prepare(cd, true, dt, B, T, C, H, &bwd_ws)) {
        printf("  cudnn: SKIP: %s\n", cd ? dsc_cuda_cudnn_message(cd) : "cuDNN not loaded");
        return;
    }
    void *out = NULL, *lse = NULL, *dqkv = NULL, *ws = NULL;
    CK(dsc_cuda_malloc(&out, nout * es));
    CK(dsc_cuda_malloc(&lse, (size_t)(B * H * T) * 4));
    CK(dsc_cuda_malloc(&dqkv, nqkv * es));
    CK(dsc_cuda_malloc(&ws, (fwd_ws > bwd_ws ? fwd_ws : bwd_ws) + 256));
    float ms = 0;
    TIME_MS(ms, 2, 10, CK(dsc_cuda_cudnn_attention(cd, dt, B, T, C, H, qkv, out, lse, ws, fwd_ws)));
    float *got = to_host_f32(out, dt, nout);
    double e = relerr(got, ref_out, nout);
    printf("  fwd cudnn %zu              %8.3f ms %7.1f TFLOP/s  out vs default %.2e %s\n", dsc_cuda_cudnn_version(cd),
           ms, fl / (ms * 1e-3) / 1e12, e, e <= 2e-2 ? "agree" : "MISMATCH");
    free(got);
    TIME_MS(ms, 2, 10,
            CK(dsc_cuda_cudnn_attention_backward(cd, dt, B, T, C, H, qkv, out, lse, dout, dqkv, ws, bwd_ws)));
    got = to_host_f32(dqkv, dt, nqkv);
    e = relerr(got, ref_dqkv, nqkv);
    printf("  bwd cudnn (writes dqkv)      %8.3f ms %7.1f TFLOP/s  dqkv vs default %.2e %s (workspace %.1f MiB)\n", ms,
           2.5 * fl / (ms * 1e-3) / 1e12, e, e <= 3e-2 ? "agree" : "MISMATCH", bwd_ws / 1048576.0);
    free(got);
    dsc_cuda_free(out), dsc_cuda_free(lse), dsc_cuda_free(dqkv), dsc_cuda_free(ws);
}

static void bench_case(dsc_cuda_cudnn_t *cd, dsc_dtype_t dt, int64_t B, int64_t T, int64_t C, int64_t H) {
    const int64_t hd = C / H;
    const size_t nqkv = (size_t)(B * T * 3 * C), nout = (size_t)(B * T * C), nl = (size_t)(B * H * T);
    const size_t es = dsc_dtype_size(dt);
    void *qkv = rand_dev(dt, nqkv, 1), *dout = rand_dev(dt, nout, 1), *out = NULL, *lse = NULL, *dqkv = NULL;
    CK(dsc_cuda_malloc(&out, nout * es));
    CK(dsc_cuda_malloc(&lse, nl * 4));
    CK(dsc_cuda_malloc(&dqkv, nqkv * es));
    const dsc_cuda_att_cfg_t atomic = {4, DSC_CUDA_ATT_BWD_ATOMIC, 4};
    const size_t ws_bytes = dsc_cuda_attention_workspace_bytes(&atomic, B, T, C, H); /* the largest */
    void *ws = NULL;
    CK(dsc_cuda_malloc(&ws, ws_bytes));
    const double fl = 2.0 * B * H * (double)T * T * hd;
    printf("attention %s B%lld T%lld C%lld H%lld hd %lld causal (fwd %.1f GFLOP, bwd %.1f GFLOP); FA2-level "
           "anchor ~230 TFLOP/s\n", dsc_dtype_name(dt), (long long)B, (long long)T, (long long)C, (long long)H,
           (long long)hd, fl / 1e9, 2.5 * fl / 1e9);
    for (int fw = 4; fw <= 8; fw += 4) {
        const dsc_cuda_att_cfg_t c = {fw, 0, 4};
        float ms = 0;
        TIME_MS(ms, 2, 10, CK(dsc_cuda_attention_cfg(NULL, &c, dt, B, T, C, H, qkv, 0.0, 1, 0, out, lse)));
        printf("  fwd %d warps (%3d-row tiles)%s   %8.3f ms %7.1f TFLOP/s\n", fw, 16 * fw,
               fw == 4 ? " [default]" : "          ", ms, fl / (ms * 1e-3) / 1e12);
    }
    /* every backward from the default forward's out and lse */
    CK(dsc_cuda_attention_cfg(NULL, NULL, dt, B, T, C, H, qkv, 0.0, 1, 0, out, lse));
    CK(dsc_cuda_memset_async(dqkv, 0, nqkv * es, NULL));
    CK(dsc_cuda_attention_backward_cfg(NULL, NULL, dt, B, T, C, H, qkv, out, lse, dout, 0.0, 1, 0, dqkv, NULL, 0));
    float *ref = to_host_f32(dqkv, dt, nqkv), *ref_out = to_host_f32(out, dt, nout);
    const dsc_cuda_att_cfg_t cfgs[] = {{4, DSC_CUDA_ATT_BWD_RECOMPUTE, 4}, {4, DSC_CUDA_ATT_BWD_PRE, 4},
                                       {4, DSC_CUDA_ATT_BWD_PRE, 8},       {4, DSC_CUDA_ATT_BWD_ATOMIC, 4},
                                       {4, DSC_CUDA_ATT_BWD_ATOMIC, 8}};
    for (size_t k = 0; k < sizeof cfgs / sizeof cfgs[0]; k++) {
        const dsc_cuda_att_cfg_t *c = &cfgs[k];
        float ms = 0;
        /* the timed runs accumulate into dqkv (the contract); the check runs from zero */
        TIME_MS(ms, 2, 10,
                CK(dsc_cuda_attention_backward_cfg(NULL, c, dt, B, T, C, H, qkv, out, lse, dout, 0.0, 1, 0, dqkv, ws,
                                                   ws_bytes)));
        CK(dsc_cuda_memset_async(dqkv, 0, nqkv * es, NULL));
        CK(dsc_cuda_attention_backward_cfg(NULL, c, dt, B, T, C, H, qkv, out, lse, dout, 0.0, 1, 0, dqkv, ws,
                                           ws_bytes));
        float *got = to_host_f32(dqkv, dt, nqkv);
        const double e = relerr(got, ref, nqkv);
        printf("  bwd %-9s %d warps%s %8.3f ms %7.1f TFLOP/s  dqkv vs default %.2e %s\n", bwd_name(c->bwd),
               c->bwd_warps, k == 0 ? " [default]" : "          ", ms, 2.5 * fl / (ms * 1e-3) / 1e12, e,
               e <= 3e-2 ? "agree" : "MISMATCH");
        free(got);
    }
    bench_cudnn(cd, dt, B, T, C, H, qkv, dout, ref_out, ref, fl);
    free(ref), free(ref_out);
    dsc_cuda_free(qkv), dsc_cuda_free(dout), dsc_cuda_free(out), dsc_cuda_free(lse), dsc_cuda_free(dqkv);
    dsc_cuda_free(ws);
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    int quick = 0, hd128 = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) quick = 1;
        else if (strcmp(argv[i], "--hd128") == 0) hd128 = 1;
        else {
            fprintf(stderr, "usage: bench_attention [--quick] [--hd128]\n");
            return 2;
        }
    }
    if (dsc_cuda_device_count() < 1) {
        printf("bench_attention: SKIP: no CUDA device\n");
        return 77;
    }
    dsc_cuda_device_info_t info;
    CK(dsc_cuda_device_info(0, &info));
    printf("device: %s (sm_%d%d, %d SMs)\n", info.name, info.cc_major, info.cc_minor, info.sm_count);
    CK(dsc_cuda_event_create(&timer.ev0));
    CK(dsc_cuda_event_create(&timer.ev1));
    char why[400] = "";
    dsc_cuda_cudnn_t *cd = dsc_cuda_cudnn_create(NULL, why, sizeof why);
    if (!cd) printf("cudnn rows skipped: %s\n", why);
    bench_case(cd, DSC_BF16, 8, 1024, 768, 12);
    if (!quick) bench_case(cd, DSC_BF16, 64, 1024, 768, 12);
    if (hd128) bench_case(cd, DSC_BF16, quick ? 8 : 32, 1024, 768, 6);
    dsc_cuda_cudnn_destroy(cd);
    dsc_cuda_event_destroy(timer.ev0), dsc_cuda_event_destroy(timer.ev1);
    return 0;
}

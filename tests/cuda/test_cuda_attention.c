/* The tensor-core attention's variants (dsc_cuda_att_cfg_t: the forward on 8 warps, the
 * backward with Dq precomputed (PRE) or fused with f32 atomics for dQ (ATOMIC), on 4 or 8
 * warps) against the CPU oracle (the CPU backend's flash attention, same contract and
 * Philox), at the tolerances of test_cuda_kernels' attention checks; T not a multiple of the
 * 64- or 128-row tiles, dropout, hd 64 and 128, bf16 and f16. PRE must give the bits of the
 * default (RECOMPUTE) backward and the 8-warp forward those of the 4-warp one: same
 * operations in the same order (checked on the emulator, which has no FMA contraction; the
 * GPU's compiler may contract each instantiation differently, so there the oracle decides).
 * Refused variants and a short workspace must return cudaErrorInvalidValue (1). The device:
 * DSC_CUDA_ATTENTION picks the variant of a cuda:0 context (its backward takes the workspace
 * from the device's scratch); an unknown word fails the context.
 * cuDNN's fused attention (the `cudnn` variant) is checked against the CPU too, directly and
 * through the device (t_cudnn, t_device_cudnn below); skipped with the reason without cuDNN.
 * Exits 77 (skipped) without a GPU; built against the CPU emulator it needs none. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/device.h"
#include "ops/backend.h"
#include "ops/cuda/cuda_device.h"
#include "ops/cpu/cpu_kernels.h"
#include "cuda_check.h"


static const char *bwd_name(int bwd) { return bwd == 0 ? "recompute" : bwd == 1 ? "pre" : "atomic"; }

static void t_variants(dsc_dtype_t dt, int64_t B, int64_t T, int64_t C, int64_t H, double p) {
    const double tol_out = dt == DSC_BF16 ? 2e-2 : 5e-3, tol_lse = dt == DSC_BF16 ? 1e-2 : 2e-3;
    const double tol_dqkv = dt == DSC_BF16 ? 3e-2 : 1e-2;
    const uint64_t seed = 91, offset = 8 * 777;
    const int64_t hd = C / H, nqkv = B * T * 3 * C, nout = B * T * C, nl = B * H * T;
    cc_buf_t qkv = cc_new(dt, nqkv, -1.5, 1.5), out = cc_new(dt, nout, 0, 0), lse = cc_new(DSC_F32, nl, 0, 0);
    cc_buf_t out8 = cc_new(dt, nout, 0, 0), lse8 = cc_new(DSC_F32, nl, 0, 0);
    cc_buf_t dout = cc_new(dt, nout, -1, 1), dqkv = cc_new(dt, nqkv, -0.5, 0.5);
    float *rout = malloc((size_t)nout * 4), *rlse = malloc((size_t)nl * 4);
    dsc_cpu_attention(DSC_F32, B, T, C, H, qkv.init, p, seed, offset, rout, rlse);
    char name[160];
    const size_t out_bytes = (size_t)nout * cc_size(dt), lse_bytes = (size_t)nl * 4;

    /* forward: the default (4 warps) and 8 warps */
    CK(dsc_cuda_attention_cfg(NULL, NULL, dt, B, T, C, H, qkv.d, p, seed, offset, out.d, lse.d));
    const dsc_cuda_att_cfg_t f8 = {8, DSC_CUDA_ATT_BWD_RECOMPUTE, 4};
    CK(dsc_cuda_attention_cfg(NULL, &f8, dt, B, T, C, H, qkv.d, p, seed, offset, out8.d, lse8.d));
    snprintf(name, sizeof name, "attention fwd 8 warps out B%lld T%lld hd%lld p%.2f", (long long)B, (long long)T,
             (long long)hd, p);
    compare(name, &out8, rout, tol_out);
    snprintf(name, sizeof name, "attention fwd 8 warps lse T%lld hd%lld (%s)", (long long)T, (long long)hd,
             dsc_dtype_name(dt));
    compare(name, &lse8, rlse, tol_lse);
#ifdef DSC_CUDA_EMU
    {
        void *a = cc_raw(out.d, out_bytes), *b = cc_raw(out8.d, out_bytes);
        void *la = cc_raw(lse.d, lse_bytes), *lb = cc_raw(lse8.d, lse_bytes);
        snprintf(name, sizeof name, "attention fwd 8 warps = 4 warps out T%lld hd%lld", (long long)T, (long long)hd);
        cc_bits(name, dt, a, b, out_bytes);
        snprintf(name, sizeof name, "attention fwd 8 warps = 4 warps lse T%lld hd%lld", (long long)T, (long long)hd);
        cc_bits(name, DSC_F32, la, lb, lse_bytes);
        free(a), free(b), free(la), free(lb);
    }
#else
    (void)out_bytes, (void)lse_bytes;
#endif

    /* backward: every variant from the default forward's out and lse, against the CPU */
    float *gout = cc_get(&out), *glse = cc_get(&lse), *rdqkv = copyf(dqkv.init, nqkv);
    dsc_cpu_attention_backward(DSC_F32, B, T, C, H, qkv.init, gout, glse, dout.init, p, seed, offset, rdqkv);
    const size_t dqkv_bytes = (size_t)nqkv * cc_size(dt);
    cc_reset(&dqkv);
    CK(dsc_cuda_attention_backward_cfg(NULL, NULL, dt, B, T, C, H, qkv.d, out.d, lse.d, dout.d, p, seed, offset,
                                       dqkv.d, NULL, 0));
    void *base = cc_raw(dqkv.d, dqkv_bytes);
    const dsc_cuda_att_cfg_t cfgs[] = {{4, DSC_CUDA_ATT_BWD_PRE, 4},
                                       {4, DSC_CUDA_ATT_BWD_PRE, 8},
                                       {4, DSC_CUDA_ATT_BWD_ATOMIC, 4},
                                       {4, DSC_CUDA_ATT_BWD_ATOMIC, 8}};
    for (size_t k = 0; k < sizeof cfgs / sizeof cfgs[0]; k++) {
        const dsc_cuda_att_cfg_t *c = &cfgs[k];
        const size_t ws_bytes = dsc_cuda_attention_workspace_bytes(c, B, T, C, H);
        void *ws = NULL;
        CK(dsc_cuda_malloc(&ws, ws_bytes));
        /* the workspace starts as garbage: the kernels must not rely on its contents */
        CK(dsc_cuda_memset_async(ws, 0x7f, ws_bytes, NULL));
        snprintf(name, sizeof name, "attention bwd %s %d warps dqkv T%lld hd%lld p%.2f", bwd_name(c->bwd),
                 c->bwd_warps, (long long)T, (long long)hd, p);
        cc_reset(&dqkv);
        CK(dsc_cuda_attention_backward_cfg(NULL, c, dt, B, T, C, H, qkv.d, out.d, lse.d, dout.d, p, seed, offset,
                                           dqkv.d, ws, ws_bytes));
        compare(name, &dqkv, rdqkv, tol_dqkv);
        if (c->bwd == DSC_CUDA_ATT_BWD_PRE) {
            /* deterministic: the same bits run after run (and, on the emulator, RECOMPUTE's) */
            void *r1 = cc_raw(dqkv.d, dqkv_bytes);
            cc_reset(&dqkv);
            CK(dsc_cuda_attention_backward_cfg(NULL, c, dt, B, T, C, H, qkv.d, out.d, lse.d, dout.d, p, seed, offset,
                                               dqkv.d, ws, ws_bytes));
            void *r2 = cc_raw(dqkv.d, dqkv_bytes);
            cc_repeat(name, dt, r1, r2, dqkv_bytes);
#ifdef DSC_CUDA_EMU
            char n2[200];
            snprintf(n2, sizeof n2, "%s = recompute", name);
            cc_bits(n2, dt, r1, base, dqkv_bytes);
#endif
            free(r1), free(r2);
        }
        /* a workspace one float short is refused before anything runs */
        const int rc = dsc_cuda_attention_backward_cfg(NULL, c, dt, B, T, C, H, qkv.d, out.d, lse.d, dout.d, p, seed,
                                                       offset, dqkv.d, ws, ws_bytes - 4);
        const float got = (float)rc, want = 1.0f; /* cudaErrorInvalidValue */
        snprintf(name, sizeof name, "attention bwd %s %d warps: short workspace refused", bwd_name(c->bwd),
                 c->bwd_warps);
        cc_close(name, DSC_F32, &got, &want, 1, 0);
        dsc_cuda_free(ws);
    }
    {
        const dsc_cuda_att_cfg_t bad[] = {{4, DSC_CUDA_ATT_BWD_RECOMPUTE, 8}, {6, 0, 4}, {4, 3, 4}};
        float got[3], want[3] = {1, 1, 1};
        for (int k = 0; k < 3; k++)
            got[k] = (float)dsc_cuda_attention_backward_cfg(NULL, &bad[k], dt, B, T, C, H, qkv.d, out.d, lse.d,
                                                            dout.d, p, seed, offset, dqkv.d, NULL, 0);
        got[1] += (float)dsc_cuda_attention_cfg(NULL, &bad[1], dt, B, T, C, H, qkv.d, p, seed, offset, out.d, lse.d) - 1;
        cc_close("attention variants that do not exist refused", DSC_F32, got, want, 3, 0);
    }
    free(base), free(gout), free(glse), free(rdqkv), free(rout), free(rlse);
    cc_free(&qkv), cc_free(&out), cc_free(&lse), cc_free(&out8), cc_free(&lse8), cc_free(&dout), cc_free(&dqkv);
}

static void capture_log(dsc_log_level_t level, const char *message, void *user) {
    (void)level;
    snprintf((char *)user, 512, "%s", message);
}

/* A cuda:0 context made with DSC_CUDA_ATTENTION=atomic,bwd8,fwd8: its attention entries run
 * that variant (the backward's workspace from the scratch), within the tolerances of the CPU;
 * then an unknown word refuses the context with a message naming the variable. */
static void t_device_variant(void) {
    const dsc_dtype_t dt = DSC_BF16;
    const int64_t B = 1, T = 130, C = 128, H = 2, nqkv = B * T * 3 * C, nout = B * T * C, nl = B * H * T;
    const double p = 0.1;
    const uint64_t seed = 5, offset = 64;
    char msg[512] = "";
    dsc_ctx_options_t co = DSC_CTX_OPTIONS_INIT;
    co.device = "cuda:0";
    co.log_fn = capture_log;
    co.log_user = msg;
    setenv("DSC_CUDA_ATTENTION", "atomic,bwd8,fwd8", 1);
    dsc_ctx_t *ctx = NULL;
    const dsc_status_t st = dsc_ctx_new(&co, &ctx);
    cc_checks++;
    if (st != DSC_OK) {
        cc_failures++;
        printf("FAIL cuda:0 with DSC_CUDA_ATTENTION=atomic,bwd8,fwd8: status %d (%s)\n", (int)st, msg);
        unsetenv("DSC_CUDA_ATTENTION");
        return;
    }
    dsc_device_t *dev = dsc__ctx_device(ctx);
    cc_buf_t qkv = cc_new(dt, nqkv, -1.5, 1.5), out = cc_new(dt, nout, 0, 0), lse = cc_new(DSC_F32, nl, 0, 0);
    cc_buf_t dout = cc_new(dt, nout, -1, 1), dqkv = cc_new(dt, nqkv, -0.5, 0.5);
    float *rout = malloc((size_t)nout * 4), *rlse = malloc((size_t)nl * 4), *rdqkv = copyf(dqkv.init, nqkv);
    dsc_cpu_attention(DSC_F32, B, T, C, H, qkv.init, p, seed, offset, rout, rlse);
    dev->table->ops->attention(dev, dt, B, T, C, H, qkv.d, p, seed, offset, out.d, lse.d);
    dev->table->ops->attention_backward(dev, dt, B, T, C, H, qkv.d, out.d, lse.d, dout.d, p, seed, offset, dqkv.d);
    CK(dsc_cuda_stream_sync(dev->stream));
    /* the context took the variant, and the backward's workspace came from the scratch */
    const dsc_cuda_att_cfg_t *cfg = &dsc__cuda_dev(dev)->att;
    const float got_st[4] = {(float)dsc_ctx_status(ctx), (float)cfg->bwd, (float)cfg->fwd_warps,
                             (float)(dsc__cuda_dev(dev)->scratch_bytes >= dsc_cuda_attention_workspace_bytes(cfg, B, T, C, H))};
    const float want_st[4] = {0, DSC_CUDA_ATT_BWD_ATOMIC, 8, 1};
    cc_close("device variant: taken, no error, scratch", DSC_F32, got_st, want_st, 4, 0);
    compare("device variant (fwd8) attention out", &out, rout, 2e-2);
    float *gout = cc_get(&out), *glse = cc_get(&lse);
    dsc_cpu_attention_backward(DSC_F32, B, T, C, H, qkv.init, gout, glse, dout.init, p, seed, offset, rdqkv);
    compare("device variant (atomic, bwd8) attention dqkv", &dqkv, rdqkv, 3e-2);
    free(gout), free(glse), free(rout), free(rlse), free(rdqkv);
    cc_free(&qkv), cc_free(&out), cc_free(&lse), cc_free(&dout), cc_free(&dqkv);
    dsc_ctx_free(ctx);

    setenv("DSC_CUDA_ATTENTION", "pre,bwd16", 1);
    ctx = NULL;
    const dsc_status_t st2 = dsc_ctx_new(&co, &ctx);
    cc_checks++;
    const int ok = st2 == DSC_ERR_INVALID && strstr(msg, "DSC_CUDA_ATTENTION") && strstr(msg, "bwd16");
    if (!ok) cc_failures++;
    printf("%-4s DSC_CUDA_ATTENTION=pre,bwd16 refused: status %d, \"%s\"\n", ok ? "ok" : "FAIL", (int)st2, msg);
    if (ctx) dsc_ctx_free(ctx);
    unsetenv("DSC_CUDA_ATTENTION");
}

/* cuDNN's fused attention (cuda_kernels.h dsc_cuda_cudnn_*, the device's `cudnn` variant)
 * against the CPU oracle at the tensor-core kernels' tolerances: out, lse (the same
 * natural-log convention), and dqkv from its own forward's out and lse (the backward writes
 * dqkv: the oracle accumulates onto zeros). The workspace starts as garbage. Without cuDNN
 * (not installed, the emulator, a build without its headers) the checks are skipped with the
 * reason printed; a shape cuDNN refuses is a failure. */
static void t_cudnn(dsc_cuda_cudnn_t *cd, dsc_dtype_t dt, int64_t B, int64_t T, int64_t C, int64_t H) {
    const double tol_out = dt == DSC_BF16 ? 2e-2 : 5e-3, tol_lse = dt == DSC_BF16 ? 1e-2 : 2e-3;
    const double tol_dqkv = dt == DSC_BF16 ? 3e-2 : 1e-2;
    const int64_t hd = C / H, nqkv = B * T * 3 * C, nout = B * T * C, nl = B * H * T;
    char name[160];
    size_t fwd_ws = 0, bwd_ws = 0;
    const int rf = dsc_cuda_cudnn_attention_prepare(cd, false, dt, B, T, C, H, &fwd_ws);
    const int rb = rf ? rf : dsc_cuda_cudnn_attention_prepare(cd, true, dt, B, T, C, H, &bwd_ws);
    cc_checks++;
    if (rf || rb) {
        cc_failures++;
        printf("FAIL cudnn plan B%lld T%lld hd%lld %s: %s\n", (long long)B, (long long)T, (long long)hd,
               dsc_dtype_name(dt), dsc_cuda_cudnn_message(cd));
        return;
    }
    printf("ok   cudnn plans B%lld T%lld H%lld hd%lld %s: workspace fwd %zu, bwd %zu bytes\n", (long long)B,
           (long long)T, (long long)H, (long long)hd, dsc_dtype_name(dt), fwd_ws, bwd_ws);
    cc_buf_t qkv = cc_new(dt, nqkv, -1.5, 1.5), out = cc_new(dt, nout, 0, 0), lse = cc_new(DSC_F32, nl, 0, 0);
    cc_buf_t dout = cc_new(dt, nout, -1, 1), dqkv = cc_new(dt, nqkv, 0, 0);
    float *rout = malloc((size_t)nout * 4), *rlse = malloc((size_t)nl * 4), *rdqkv = calloc((size_t)nqkv, 4);
    dsc_cpu_attention(DSC_F32, B, T, C, H, qkv.init, 0.0, 0, 0, rout, rlse);
    const size_t ws_bytes = fwd_ws > bwd_ws ? fwd_ws : bwd_ws;
    void *ws = NULL;
    CK(dsc_cuda_malloc(&ws, ws_bytes + 256));
    CK(dsc_cuda_memset_async(ws, 0x7f, ws_bytes + 256, NULL));
    CK(dsc_cuda_cudnn_attention(cd, dt, B, T, C, H, qkv.d, out.d, lse.d, ws, fwd_ws));
    snprintf(name, sizeof name, "cudnn fwd out B%lld T%lld hd%lld", (long long)B, (long long)T, (long long)hd);
    compare(name, &out, rout, tol_out);
    snprintf(name, sizeof name, "cudnn fwd lse B%lld T%lld hd%lld", (long long)B, (long long)T, (long long)hd);
    compare(name, &lse, rlse, tol_lse);
    float *gout = cc_get(&out), *glse = cc_get(&lse);
    dsc_cpu_attention_backward(DSC_F32, B, T, C, H, qkv.init, gout, glse, dout.init, 0.0, 0, 0, rdqkv);
    CK(dsc_cuda_cudnn_attention_backward(cd, dt, B, T, C, H, qkv.d, out.d, lse.d, dout.d, dqkv.d, ws, bwd_ws));
    snprintf(name, sizeof name, "cudnn bwd dqkv B%lld T%lld hd%lld", (long long)B, (long long)T, (long long)hd);
    compare(name, &dqkv, rdqkv, tol_dqkv);
    /* a workspace one byte short is refused before anything runs */
    const float got = (float)dsc_cuda_cudnn_attention_backward(cd, dt, B, T, C, H, qkv.d, out.d, lse.d, dout.d,
                                                               dqkv.d, ws, bwd_ws - 1),
                want = 1.0f;
    cc_close("cudnn bwd: short workspace refused", DSC_F32, &got, &want, 1, 0);
    dsc_cuda_free(ws);
    free(gout), free(glse), free(rout), free(rlse), free(rdqkv);
    cc_free(&qkv), cc_free(&out), cc_free(&lse), cc_free(&dout), cc_free(&dqkv);
}

/* A cuda:0 context with DSC_CUDA_ATTENTION=cudnn: the attention entries run cuDNN (the
 * backward ACCUMULATES onto a nonzero dqkv, as the entry's contract says; the _write entry
 * overwrites it), within the CPU's
 * tolerances; with dropout they fall back to the tensor-core kernels (cuDNN's mask is not
 * dsc's Philox stream), which match the CPU's Philox mask. */
static void t_device_cudnn(bool have_cudnn) {
    const dsc_dtype_t dt = DSC_BF16;
    const int64_t B = 2, T = 97, C = 128, H = 2, nqkv = B * T * 3 * C, nout = B * T * C, nl = B * H * T;
    dsc_ctx_options_t co = DSC_CTX_OPTIONS_INIT;
    co.device = "cuda:0";
    setenv("DSC_CUDA_ATTENTION", "cudnn", 1);
    dsc_ctx_t *ctx = NULL;
    const dsc_status_t st = dsc_ctx_new(&co, &ctx);
    unsetenv("DSC_CUDA_ATTENTION");
    cc_checks++;
    if (st != DSC_OK) {
        cc_failures++;
        printf("FAIL cuda:0 with DSC_CUDA_ATTENTION=cudnn: status %d\n", (int)st);
        return;
    }
    dsc_device_t *dev = dsc__ctx_device(ctx);
    for (int drop = 0; drop < 2; drop++) {
        const double p = drop ? 0.1 : 0.0;
        const uint64_t seed = 11, offset = 640;
        cc_buf_t qkv = cc_new(dt, nqkv, -1.5, 1.5), out = cc_new(dt, nout, 0, 0), lse = cc_new(DSC_F32, nl, 0, 0);
        cc_buf_t dout = cc_new(dt, nout, -1, 1), dqkv = cc_new(dt, nqkv, -0.5, 0.5);
        float *rout = malloc((size_t)nout * 4), *rlse = malloc((size_t)nl * 4), *rdqkv = copyf(dqkv.init, nqkv);
        dsc_cpu_attention(DSC_F32, B, T, C, H, qkv.init, p, seed, offset, rout, rlse);
        dev->table->ops->attention(dev, dt, B, T, C, H, qkv.d, p, seed, offset, out.d, lse.d);
        dev->table->ops->attention_backward(dev, dt, B, T, C, H, qkv.d, out.d, lse.d, dout.d, p, seed, offset,
                                            dqkv.d);
        CK(dsc_cuda_stream_sync(dev->stream));
        const dsc_cuda_dev_t *cd = dsc__cuda_dev(dev);
        const float got_st[3] = {(float)dsc_ctx_status(ctx), (float)cd->att_cudnn, (float)(cd->cudnn != NULL)};
        const float want_st[3] = {0, 1, (float)have_cudnn};
        cc_close(drop ? "device cudnn + dropout: no error" : "device cudnn: taken, no error", DSC_F32, got_st, want_st,
                 3, 0);
        compare(drop ? "device cudnn + dropout (fallback) out" : "device cudnn attention out", &out, rout, 2e-2);
        float *gout = cc_get(&out), *glse = cc_get(&lse);
        dsc_cpu_attention_backward(DSC_F32, B, T, C, H, qkv.init, gout, glse, dout.init, p, seed, offset, rdqkv);
        compare(drop ? "device cudnn + dropout (fallback) dqkv +=" : "device cudnn attention dqkv +=", &dqkv, rdqkv,
                3e-2);
        /* the writing entry ignores what dqkv holds (here the sum above) */
        float *rdw = calloc((size_t)nqkv, 4);
        dsc_cpu_attention_backward(DSC_F32, B, T, C, H, qkv.init, gout, glse, dout.init, p, seed, offset, rdw);
        dev->table->ops->attention_backward_write(dev, dt, B, T, C, H, qkv.d, out.d, lse.d, dout.d, p, seed, offset,
                                                  dqkv.d);
        CK(dsc_cuda_stream_sync(dev->stream));
        compare(drop ? "device cudnn + dropout (fallback) dqkv =" : "device cudnn attention dqkv =", &dqkv, rdw,
                3e-2);
        free(rdw);
        free(gout), free(glse), free(rout), free(rlse), free(rdqkv);
        cc_free(&qkv), cc_free(&out), cc_free(&lse), cc_free(&dout), cc_free(&dqkv);
    }
    dsc_ctx_free(ctx);
}

static void t_cudnn_all(void) {
    char why[400] = "";
    dsc_cuda_cudnn_t *cd = dsc_cuda_cudnn_create(NULL, why, sizeof why);
    if (!cd) {
        printf("SKIP cudnn checks: %s\n", why);
        t_device_cudnn(false); /* the device falls back to the default kernels */
        return;
    }
    printf("cudnn: version %zu\n", dsc_cuda_cudnn_version(cd));
    const dsc_dtype_t dts[] = {DSC_BF16, DSC_F16};
    for (int k = 0; k < 2; k++) {
        t_cudnn(cd, dts[k], 2, 150, 192, 3); /* hd 64, T not a multiple of 64 */
        t_cudnn(cd, dts[k], 1, 129, 256, 2); /* hd 128 */
        t_cudnn(cd, dts[k], 3, 64, 384, 6);  /* hd 64, one tile */
        t_cudnn(cd, dts[k], 2, 1000, 256, 4);
        t_cudnn(cd, dts[k], 1, 777, 512, 4); /* hd 128, long rows */
    }
    /* cuDNN's shape limits are reported, not crashed on */
    size_t ws = 0;
    const float got = (float)dsc_cuda_cudnn_attention_prepare(cd, false, DSC_F32, 1, 64, 128, 2, &ws), want = 1.0f;
    cc_close("cudnn: f32 refused", DSC_F32, &got, &want, 1, 0);
    printf("     (reason: %s)\n", dsc_cuda_cudnn_message(cd));
    dsc_cuda_cudnn_destroy(cd);
    t_device_cudnn(true);
}

int main(void) {
    cc_require_gpu("test_cuda_attention");
    t_cudnn_all();
    const dsc_dtype_t dts[] = {DSC_BF16, DSC_F16};
    for (int k = 0; k < 2; k++) {
        const dsc_dtype_t dt = dts[k];
        t_variants(dt, 2, 150, 192, 3, 0.0); /* hd 64, T past two 64-row tiles and one 128-row tile */
        t_variants(dt, 1, 200, 128, 2, 0.15); /* hd 64, dropout */
        t_variants(dt, 1, 129, 256, 2, 0.0);  /* hd 128 (32-query dk/dv tiles) */
        if (dt == DSC_BF16) t_variants(dt, 1, 70, 256, 2, 0.1); /* hd 128, dropout, T under one 128 tile */
#ifndef DSC_CUDA_EMU /* long rows: many tiles (slow on the emulator) */
        t_variants(dt, 2, 1000, 256, 4, 0.0);
        t_variants(dt, 1, 777, 256, 2, 0.1);
#endif
    }
    t_device_variant();
    return cc_finish("test_cuda_attention");
}

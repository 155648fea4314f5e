/* Forward + backward throughput of matmul, gelu and layernorm at 1024 x 1024, and of causal
 * attention at the shapes of the default and d6 GPTs, each beside its anchor measured in the
 * same run:
 *   matmul    dsc_matmul forward + autograd backward (3 sgemm: y, dx, dw) vs the same three
 *             cblas_sgemm calls made directly: the op layer's overhead must stay <= 5%.
 *   gelu      fwd + bwd vs a memory-bound copy anchor (GB/s of the bytes each must touch).
 *   layernorm fwd + bwd, same anchor.
 *   attention dsc_attention fwd + bwd vs the six cblas_sgemm calls per (batch, head) that
 *             a batched-matmul attention makes (q k^T, p v, dout v^T, p^T dout, ds k, ds^T q;
 *             full T x T, as PyTorch's eager attention computes it; no softmax in the anchor).
 * Then the SIMD kernels (src/ops/cpu/cpu_simd.h) path by path, one thread: time and a check
 * that every path gives the bits of the baseline one.
 * Usage: ops_fwd_bwd [n (default 1024)] [repeats (default 20)]. Prints medians. */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_util.h"
#include "core/internal.h"
#include "dsc/dsc.h"
#include "ops/cpu/cpu_simd.h"

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, bench_cmp_double);
    return v[n / 2];
}

typedef enum { OP_MATMUL, OP_GELU, OP_LAYERNORM } op_kind_t;

/* One forward + backward of the op through dsc, on wrapped inputs, back-propagating an
 * upstream gradient of ones (as the raw calls use dy = 1): the op's own cost, no loss op. */
static double time_dsc(dsc_ctx_t *ctx, op_kind_t op, int n, float *x, float *dx, float *w, float *dw, float *b, float *db,
                       float *dy) {
    int64_t shape[2] = {n, n}, vshape[1] = {n};
    double t0 = bench_now_s();
    dsc_tensor_t *xt = dsc_tensor_wrap(ctx, DSC_F32, 2, shape, x, dx, false);
    dsc_tensor_t *y = NULL;
    if (op == OP_MATMUL) {
        dsc_tensor_t *wt = dsc_tensor_wrap(ctx, DSC_F32, 2, shape, w, dw, false);
        y = dsc_matmul(ctx, xt, wt, false, true);
    } else if (op == OP_GELU) {
        y = dsc_gelu(ctx, xt);
    } else {
        dsc_tensor_t *wt = dsc_tensor_wrap(ctx, DSC_F32, 1, vshape, w, dw, false);
        dsc_tensor_t *bt = dsc_tensor_wrap(ctx, DSC_F32, 1, vshape, b, db, false);
        y = dsc_layernorm(ctx, xt, wt, bt, 1e-5);
    }
    dsc_tensor_t *g = dsc_tensor_wrap(ctx, DSC_F32, 2, shape, dy, NULL, false);
    if (dsc__autograd_backward_from(ctx, y, g) != DSC_OK) {
        fprintf(stderr, "ops_fwd_bwd: %s\n", dsc_ctx_errmsg(ctx));
        exit(1);
    }
    dsc_ctx_end_step(ctx);
    return bench_now_s() - t0;
}

/* The three sgemm calls of a linear layer's forward and backward, made directly. */
static double time_raw_sgemm(int n, const float *x, float *dx, const float *w, float *dw, float *y, const float *dy) {
    double t0 = bench_now_s();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.0f, x, n, w, n, 0.0f, y, n);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, dy, n, w, n, 1.0f, dx, n);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, n, n, 1.0f, dy, n, x, n, 1.0f, dw, n);
    return bench_now_s() - t0;
}

/* dsc_attention forward + backward on a wrapped qkv [b, t, 3c], upstream gradient dy [b, t, c]. */
static double time_attention(dsc_ctx_t *ctx, int b, int t, int c, int h, float *qkv, float *dqkv, float *dy) {
    int64_t shape[3] = {b, t, 3 * c}, oshape[3] = {b, t, c};
    double t0 = bench_now_s();
    dsc_tensor_t *x = dsc_tensor_wrap(ctx, DSC_F32, 3, shape, qkv, dqkv, false);
    dsc_tensor_t *y = dsc_attention(ctx, x, h, 0.0);
    dsc_tensor_t *g = dsc_tensor_wrap(ctx, DSC_F32, 3, oshape, dy, NULL, false);
    if (dsc__autograd_backward_from(ctx, y, g) != DSC_OK) {
        fprintf(stderr, "ops_fwd_bwd: %s\n", dsc_ctx_errmsg(ctx));
        exit(1);
    }
    dsc_ctx_end_step(ctx);
    return bench_now_s() - t0;
}

/* The six sgemm calls per (batch, head) of a batched-matmul attention, full T x T. */
static double time_attention_sgemm(int b, int t, int c, int h, const float *qkv, float *dqkv, const float *dy,
                                   float *p, float *dp, float *out) {
    const int hs = c / h, c3 = 3 * c;
    const float scale = 1.0f / sqrtf((float)hs);
    double t0 = bench_now_s();
    for (int bi = 0; bi < b; bi++)
        for (int hi = 0; hi < h; hi++) {
            const float *q = qkv + (size_t)bi * t * c3 + hi * hs, *k = q + c, *v = q + 2 * c;
            float *dq = dqkv + (size_t)bi * t * c3 + hi * hs, *dk = dq + c, *dv = dq + 2 * c;
            const float *g = dy + (size_t)bi * t * c + hi * hs;
            float *o = out + (size_t)bi * t * c + hi * hs;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, t, t, hs, scale, q, c3, k, c3, 0.0f, p, t);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, t, hs, t, 1.0f, p, t, v, c3, 0.0f, o, c);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, t, t, hs, 1.0f, g, c, v, c3, 0.0f, dp, t);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, t, hs, t, 1.0f, p, t, g, c, 1.0f, dv, c3);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, t, hs, t, scale, dp, t, k, c3, 1.0f, dq, c3);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, t, hs, t, scale, dp, t, q, c3, 1.0f, dk, c3);
        }
    return bench_now_s() - t0;
}

/* One SIMD path, one thread: gelu fwd + bwd over n floats and attention fwd + bwd over every
 * (batch, head), results into the given buffers. */
static double time_simd(const dsc_cpu_simd_t *k, int64_t n, const float *x, float *y, float *dx, const float *dy,
                        int b, int t, int c, int h, const float *qkv, float *dqkv, const float *ady, float *pre,
                        float *out, float *scr) {
    const int64_t hs = c / h, c3 = 3 * c;
    const float scale = (float)(1.0 / sqrt((double)hs));
    double t0 = bench_now_s();
    if (n > 0) {
        k->gelu(n, x, y);
        k->gelu_backward(n, x, dy, dx);
    }
    for (int bi = 0; bi < b; bi++)
        for (int hi = 0; hi < h; hi++) {
            const float *base = qkv + (size_t)bi * t * c3 + hi * hs;
            float *dbase = dqkv + (size_t)bi * t * c3 + hi * hs, *lse = pre + ((size_t)bi * h + hi) * t;
            dsc_flash_head_t a = {.t = t, .hs = hs, .ld = c3, .ldo = c, .scale = scale, .q = base, .k = base + c,
                                  .v = base + 2 * c, .out = out + (size_t)bi * t * c + hi * hs,
                                  .dout = ady + (size_t)bi * t * c + hi * hs, .lse = lse, .dq = dbase,
                                  .dk = dbase + c, .dv = dbase + 2 * c};
            for (int64_t i0 = 0; i0 < t; i0 += DSC_FLASH_BLOCK)
                k->flash_forward(&a, i0, t - i0 < DSC_FLASH_BLOCK ? t - i0 : DSC_FLASH_BLOCK, scr);
            k->flash_backward(&a, scr);
        }
    return bench_now_s() - t0;
}

static double time_copy(size_t n_bytes, char *dst, const char *src) {
    double t0 = bench_now_s();
    memcpy(dst, src, n_bytes);
    return bench_now_s() - t0;
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 1024;
    int reps = argc > 2 ? atoi(argv[2]) : 20;
    if (n < 8 || reps < 3) {
        fprintf(stderr, "usage: ops_fwd_bwd [n >= 8] [repeats >= 3]\n");
        return 2;
    }
    size_t nn = (size_t)n * n;
    float *x = malloc(nn * 4), *dx = calloc(nn, 4), *w = malloc(nn * 4), *dw = calloc(nn, 4), *y = malloc(nn * 4),
          *dy = malloc(nn * 4), *b = calloc((size_t)n, 4), *db = calloc((size_t)n, 4);
    char *copy_src = malloc(nn * 16), *copy_dst = malloc(nn * 16);
    if (!x || !dx || !w || !dw || !y || !dy || !b || !db || !copy_src || !copy_dst) return 1;
    for (size_t i = 0; i < nn; i++) {
        x[i] = (float)((i * 2654435761u) % 1000) / 1000.0f - 0.5f;
        w[i] = (float)((i * 40503u) % 1000) / 1000.0f - 0.5f;
        dy[i] = 1.0f;
    }
    memset(copy_src, 1, nn * 16);
    dsc_ctx_t *ctx = NULL;
    dsc_ctx_new(NULL, &ctx);
    double *t = malloc(sizeof(double) * (size_t)reps);

    printf("ops_fwd_bwd: n=%d, %d repeats, medians; OpenMP/OpenBLAS threads from the environment\n", n, reps);
    /* matmul: 3 GEMMs of 2 n^3 flops each. */
    double flops = 3.0 * 2.0 * n * (double)n * n;
    /* Interleaved, so load from other processes hits both sides alike. */
    double *t2 = malloc(sizeof(double) * (size_t)reps);
    for (int r = 0; r < reps; r++) {
        t[r] = time_raw_sgemm(n, x, dx, w, dw, y, dy);
        t2[r] = time_dsc(ctx, OP_MATMUL, n, x, dx, w, dw, NULL, NULL, dy);
    }
    double raw = median(t, reps);
    double ours = median(t2, reps);
    free(t2);
    printf("  matmul    fwd+bwd  dsc %8.3f ms  %7.1f GFLOP/s | raw sgemm x3 %8.3f ms  %7.1f GFLOP/s | overhead %+.1f%%\n",
           ours * 1e3, flops / ours * 1e-9, raw * 1e3, flops / raw * 1e-9, (ours / raw - 1) * 100);

    /* Elementwise ops: compare with copying the bytes they must move. gelu: fwd reads x,
     * writes y; bwd reads x, dy, dx and writes dx: 6 n^2 floats. layernorm adds the row
     * statistics but moves the same order: fwd reads x, writes y; bwd reads x, dy, dx, writes dx. */
    size_t bytes = nn * 4 * 6;
    for (int r = 0; r < reps; r++) t[r] = time_copy(bytes / 2, copy_dst, copy_src);
    double copy = median(t, reps);
    const char *names[2] = {"gelu", "layernorm"};
    for (int k = 0; k < 2; k++) {
        for (int r = 0; r < reps; r++) t[r] = time_dsc(ctx, k == 0 ? OP_GELU : OP_LAYERNORM, n, x, dx, w, dw, b, db, dy);
        double tk = median(t, reps);
        printf("  %-9s fwd+bwd  dsc %8.3f ms  %7.2f GB/s | memcpy of the same bytes %8.3f ms  %7.2f GB/s | %.2fx the copy time\n",
               names[k], tk * 1e3, bytes / tk * 1e-9, copy * 1e3, bytes / copy * 1e-9, tk / copy);
    }

    /* Attention at the default GPT's shape (B 16, T 64, C 128, 4 heads) and d6's (C 384, 6 heads). */
    const int ashape[2][4] = {{16, 64, 128, 4}, {16, 64, 384, 6}};
    for (int s = 0; s < 2; s++) {
        const int ab = ashape[s][0], at = ashape[s][1], ac = ashape[s][2], ah = ashape[s][3];
        const size_t nq = (size_t)ab * at * 3 * ac, no = (size_t)ab * at * ac;
        float *qkv = malloc(nq * 4), *dqkv = calloc(nq, 4), *ady = malloc(no * 4), *out = malloc(no * 4),
              *p = malloc((size_t)at * at * 4), *dp = malloc((size_t)at * at * 4);
        double *ta = malloc(sizeof(double) * (size_t)reps);
        if (!qkv || !dqkv || !ady || !out || !p || !dp || !ta) return 1;
        for (size_t i = 0; i < nq; i++) qkv[i] = (float)((i * 2654435761u) % 2000) / 1000.0f - 1.0f;
        for (size_t i = 0; i < no; i++) ady[i] = (float)((i * 40503u) % 1000) / 1000.0f - 0.5f;
        for (int r = 0; r < reps; r++) {
            t[r] = time_attention_sgemm(ab, at, ac, ah, qkv, dqkv, ady, p, dp, out);
            ta[r] = time_attention(ctx, ab, at, ac, ah, qkv, dqkv, ady);
        }
        double a_raw = median(t, reps), a_ours = median(ta, reps);
        printf("  attention fwd+bwd  B%d T%d C%d H%d: dsc %8.3f ms | sgemm x6 per (batch, head) %8.3f ms | %.2fx\n", ab,
               at, ac, ah, a_ours * 1e3, a_raw * 1e3, a_ours / a_raw);
        free(qkv), free(dqkv), free(ady), free(out), free(p), free(dp), free(ta);
    }

    /* The SIMD paths, one thread, n*n gelu elements and the d6 attention; bits against sse2. */
    {
        const dsc_cpu_simd_t *paths[3] = {&dsc__cpu_simd_sse2, &dsc__cpu_simd_avx2, &dsc__cpu_simd_avx512};
        const int ab = 16, at = 64, ac = 384, ah = 6;
        const size_t nq = (size_t)ab * at * 3 * ac, no = (size_t)ab * at * ac, np = (size_t)ab * ah * at; /* lse */
        float *qkv = malloc(nq * 4), *ady = malloc(no * 4), *res[3][5] = {{NULL}};
        float *scr = malloc((size_t)dsc__flash_bwd_scratch(at, ac / ah) * 4);
        if (!qkv || !ady || !scr) return 1;
        for (size_t i = 0; i < nq; i++) qkv[i] = (float)((i * 2654435761u) % 2000) / 1000.0f - 1.0f;
        for (size_t i = 0; i < no; i++) ady[i] = (float)((i * 40503u) % 1000) / 1000.0f - 0.5f;
        printf("  SIMD paths (one thread; this CPU's choice: %s): gelu fwd+bwd %d x %d, "
               "attention fwd+bwd B%d T%d C%d H%d\n",
               dsc__cpu_simd()->name, n, n, ab, at, ac, ah);
        for (int k = 0; k < 3; k++) {
            if (!paths[k]->gelu) continue;
            if ((k == 1 && !__builtin_cpu_supports("avx2")) || (k == 2 && !__builtin_cpu_supports("avx512f"))) {
                printf("    %-7s not supported by this CPU\n", paths[k]->name);
                continue;
            }
            const size_t sz[5] = {nn, nn, nq, np, no};
            for (int j = 0; j < 5; j++) res[k][j] = calloc(sz[j], 4);
            if (!res[k][0] || !res[k][1] || !res[k][2] || !res[k][3] || !res[k][4]) return 1;
            for (int r = 0; r < reps; r++) {
                memset(res[k][1], 0, nn * 4);
                memset(res[k][2], 0, nq * 4);
                t[r] = time_simd(paths[k], (int64_t)nn, x, res[k][0], res[k][1], dy, ab, at, ac, ah, qkv, res[k][2],
                                 ady, res[k][3], res[k][4], scr);
            }
            bool same = true;
            for (int j = 0; j < 5 && k > 0; j++) same = same && memcmp(res[k][j], res[0][j], sz[j] * 4) == 0;
            printf("    %-7s %8.3f ms%s\n", paths[k]->name, median(t, reps) * 1e3,
                   k == 0 ? "" : same ? "  bits equal to sse2" : "  BITS DIFFER FROM sse2");
        }
        for (int k = 0; k < 3; k++)
            for (int j = 0; j < 5; j++) free(res[k][j]);
        free(qkv), free(ady), free(scr);
    }
    dsc_ctx_free(ctx);
    free(t);
    free(x), free(dx), free(w), free(dw), free(y), free(dy), free(b), free(db), free(copy_src), free(copy_dst);
    return 0;
}

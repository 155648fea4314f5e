/* Every CUDA op kernel, forward and backward, against the CPU oracle (the CPU backend's
 * kernels called directly, including the flash attention, fused cross-entropy and Philox
 * dropout of the agreed contracts). f32 within 1e-5 (norm-wise relative error), 16-bit within a
 * stated tolerance against the f32 CPU kernel on the same (rounded) inputs; dropout and the
 * conversions bit for bit; each kernel run twice must give the same bits.
 * Exits 77 (skipped) without a GPU. Built against the CPU emulator (DSC_CUDA_EMU, cuda_emu.h) it
 * checks the kernels' logic without a GPU, gemm excepted. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/philox.h"
#include "ops/cpu/cpu_kernels.h"
#include "cuda_check.h"

#define TOL_F32 1e-5
#define TOL_BF16 1e-2 /* one bf16 rounding of each output (2^-8) plus f32-vs-rounded-input drift */
#define TOL_F16 2e-3

static double tol_for(dsc_dtype_t dt) { return dt == DSC_F32 ? TOL_F32 : dt == DSC_BF16 ? TOL_BF16 : TOL_F16; }

/* Runs `call` twice from the same state of `out`, checks both runs' bytes are equal and
 * leaves the result in `out`. */
#define RUN2(name, out, call)                                                                    \
    do {                                                                                         \
        const size_t bytes_ = (size_t)(out).n * cc_size((out).dt);                               \
        cc_reset(&(out));                                                                        \
        CK(call);                                                                                \
        void *r1_ = cc_raw((out).d, bytes_);                                                     \
        cc_reset(&(out));                                                                        \
        CK(call);                                                                                \
        void *r2_ = cc_raw((out).d, bytes_);                                                     \
        cc_repeat(name, (out).dt, r1_, r2_, bytes_);                                             \
        free(r1_);                                                                               \
        free(r2_);                                                                               \
    } while (0)


/* ---- gemm ----------------------------------------------------------------------------- */

/* The backward epilogue (cuda_fused.c): dpre = (g w) * gelu'(pre) (DGELU), against the CPU's
 * gemm and GELU derivative. Where cuBLASLt has no algorithm for it (DSC_CUDA_BLAS_NOT_SUPPORTED)
 * the check says so and the device's fallback (checked in t_gelu_grad_mul and by the engine
 * tests) runs instead. */
__attribute__((unused)) static void t_gemm_backward_epilogues(dsc_cuda_blas_t *blas, dsc_dtype_t dt) {
    const int64_t m = 96, n = 40, k = 64; /* g [m, n], w [n, k], pre [m, k] */
    cc_buf_t g = cc_new(dt, m * n, -1, 1), w = cc_new(dt, n * k, -1, 1), pre = cc_new(dt, m * k, -3, 3);
    cc_buf_t dpre = cc_new(dt, m * k, -1, 1);
    float *gw = calloc((size_t)(m * k), sizeof *gw), *ref = calloc((size_t)(m * k), sizeof *ref);
    dsc_cpu_gemm(DSC_F32, false, false, m, k, n, 1.0, g.init, n, w.init, k, 0.0, gw, k);
    dsc_cpu_unary_backward(DSC_F32, DSC_UNARY_GELU, m * k, pre.init, NULL, gw, ref); /* ref = 0 + gw gelu' */
    int rc = dsc_cuda_gemm_epilogue(blas, NULL, dt, false, false, m, k, n, 1.0, g.d, n, w.d, k, dpre.d, k,
                                    DSC_CUDA_EPI_DGELU, NULL, pre.d, k);
    if (rc == DSC_CUDA_BLAS_NOT_SUPPORTED) {
        printf("note: cuBLASLt has no DGELU algorithm for %s here: the fallback runs\n", dsc_dtype_name(dt));
    } else {
        RUN2("gemm+dgelu", dpre, dsc_cuda_gemm_epilogue(blas, NULL, dt, false, false, m, k, n, 1.0, g.d, n, w.d, k,
                                                       dpre.d, k, DSC_CUDA_EPI_DGELU, NULL, pre.d, k));
        /* cuBLASLt's own GELU derivative code, applied to the f32 product: 1e-4 for f32 */
        compare("gemm+dgelu (cuBLASLt dgelu)", &dpre, ref, dt == DSC_F32 ? 1e-4 : tol_for(dt));
    }
    free(gw), free(ref);
    cc_free(&g), cc_free(&w), cc_free(&pre), cc_free(&dpre);
}

__attribute__((unused)) /* not built on the emulator */ static void t_gemm(dsc_cuda_blas_t *blas, dsc_dtype_t dt) {
    const int64_t M = 67, N = 45, K = 33;
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            const int64_t lda = (ta ? M : K) + 8, ldb = (tb ? K : N) + 8, ldc = N + 8;
            cc_buf_t a = cc_new(dt, (ta ? K : M) * lda, -1, 1), b = cc_new(dt, (tb ? N : K) * ldb, -1, 1);
            cc_buf_t c = cc_new(dt, M * ldc, -1, 1);
            char name[64];
            snprintf(name, sizeof name, "gemm ta=%d tb=%d", ta, tb);
            RUN2(name, c, dsc_cuda_gemm(blas, NULL, dt, ta, tb, M, N, K, 0.7, a.d, lda, b.d, ldb, 0.3, c.d, ldc));
            float *ref = copyf(c.init, c.n);
            dsc_cpu_gemm(DSC_F32, ta, tb, M, N, K, 0.7, a.init, lda, b.init, ldb, 0.3, ref, ldc);
            compare(name, &c, ref, tol_for(dt));
            free(ref);
            cc_free(&a), cc_free(&b), cc_free(&c);
        }
    /* fused epilogues: y = x W^T + bias (and GELU), W [N, K] as a linear layer stores it */
    const int64_t m = 64, n = 48, k = 40;
    cc_buf_t x = cc_new(dt, m * k, -1, 1), w = cc_new(dt, n * k, -1, 1), bias = cc_new(dt, n, -1, 1);
    cc_buf_t y = cc_new(dt, m * n, 0, 0), pre = cc_new(dt, m * n, 0, 0);
    float *ref = calloc((size_t)(m * n), sizeof *ref), *ref_g = calloc((size_t)(m * n), sizeof *ref_g);
    dsc_cpu_gemm(DSC_F32, false, true, m, n, k, 1.0, x.init, k, w.init, k, 0.0, ref, n);
    for (int64_t i = 0; i < m * n; i++) ref[i] += bias.init[i % n];
    dsc_cpu_unary(DSC_F32, DSC_UNARY_GELU, m * n, ref, ref_g);
    RUN2("gemm+bias", y, dsc_cuda_gemm_epilogue(blas, NULL, dt, false, true, m, n, k, 1.0, x.d, k, w.d, k, y.d, n,
                                               DSC_CUDA_EPI_BIAS, bias.d, NULL, 0));
    compare("gemm+bias", &y, ref, tol_for(dt));
    RUN2("gemm+bias+gelu", y, dsc_cuda_gemm_epilogue(blas, NULL, dt, false, true, m, n, k, 1.0, x.d, k, w.d, k, y.d, n,
                                                    DSC_CUDA_EPI_BIAS_GELU, bias.d, pre.d, n));
    /* cuBLASLt's GELU is its own tanh-approximation code, not the CPU's exp form: 1e-4 */
    compare("gemm+bias+gelu (cuBLASLt gelu)", &y, ref_g, dt == DSC_F32 ? 1e-4 : tol_for(dt));
    compare("gemm+bias+gelu pre-activation", &pre, ref, tol_for(dt));
    /* onto a residual stream: y = residual + (x W^T + bias), one gemm with beta 1 */
    cc_buf_t res = cc_new(dt, m * n, -2, 2);
    for (int64_t i = 0; i < m * n; i++) ref[i] += res.init[i];
    const int rc = dsc_cuda_linear_residual(blas, NULL, dt, m, n, k, x.d, w.d, bias.d, res.d, y.d);
    if (rc == DSC_CUDA_BLAS_NOT_SUPPORTED) {
        printf("note: cuBLASLt has no beta-1 bias algorithm for %s here: the fallback runs\n", dsc_dtype_name(dt));
    } else {
        RUN2("linear onto residual", y,
             dsc_cuda_linear_residual(blas, NULL, dt, m, n, k, x.d, w.d, bias.d, res.d, y.d));
        compare("linear onto residual", &y, ref, tol_for(dt));
    }
    cc_free(&res);
    free(ref), free(ref_g);
    cc_free(&x), cc_free(&w), cc_free(&bias), cc_free(&y), cc_free(&pre);
    t_gemm_backward_epilogues(blas, dt);
}

/* ---- element-wise ------------------------------------------------------------------------ */

/* d = d * gelu'(pre) in place (the DGELU epilogue's fallback): 0 + d gelu'(pre) as the CPU's
 * unary backward adds it; n not a multiple of 8 (the 16-byte groups' tail). */
static void t_gelu_grad_mul(dsc_dtype_t dt) {
    const int64_t n = 10007;
    cc_buf_t pre = cc_new(dt, n, -4, 4), d = cc_new(dt, n, -1, 1);
    float *ref = calloc((size_t)n, sizeof *ref);
    dsc_cpu_unary_backward(DSC_F32, DSC_UNARY_GELU, n, pre.init, NULL, d.init, ref);
    RUN2("gelu_grad_mul", d, dsc_cuda_gelu_grad_mul(NULL, dt, n, pre.d, d.d));
    compare("gelu_grad_mul", &d, ref, tol_for(dt));
    free(ref);
    cc_free(&pre), cc_free(&d);
}

static void t_elementwise(dsc_dtype_t dt) {
    const int64_t n = 12345, nb = 2469; /* n = 5 nb */
    const double tol = tol_for(dt);
    cc_buf_t a = cc_new(dt, n, -2, 2), b = cc_new(dt, nb, -2, 2), b_full = cc_new(dt, n, -2, 2);
    cc_buf_t out = cc_new(dt, n, -1, 1);
    float *ref = malloc((size_t)n * sizeof *ref);
    static const char *bn[] = {"binary add", "binary sub", "binary mul"};
    for (int op = 0; op < DSC_BINARY_COUNT; op++) {
        RUN2(bn[op], out, dsc_cuda_binary(NULL, dt, (dsc_binary_op_t)op, n, a.d, nb, b.d, out.d));
        dsc_cpu_binary(DSC_F32, (dsc_binary_op_t)op, n, a.init, nb, b.init, ref);
        compare(bn[op], &out, ref, tol);
    }
    RUN2("binary add (same size)", out, dsc_cuda_binary(NULL, dt, DSC_BINARY_ADD, n, a.d, n, b_full.d, out.d));
    dsc_cpu_binary(DSC_F32, DSC_BINARY_ADD, n, a.init, n, b_full.init, ref);
    compare("binary add (same size)", &out, ref, tol);

    memcpy(ref, out.init, (size_t)n * sizeof *ref);
    RUN2("axpy", out, dsc_cuda_axpy(NULL, dt, n, -0.37, a.d, out.d));
    dsc_cpu_axpy(DSC_F32, n, -0.37, a.init, ref);
    compare("axpy", &out, ref, tol);

    memcpy(ref, out.init, (size_t)n * sizeof *ref);
    RUN2("mul_acc (broadcast w)", out, dsc_cuda_mul_acc(NULL, dt, n, 0.61, a.d, nb, b.d, out.d));
    dsc_cpu_mul_acc(DSC_F32, n, 0.61, a.init, nb, b.init, ref);
    compare("mul_acc (broadcast w)", &out, ref, tol);

    RUN2("scale", out, dsc_cuda_scale(NULL, dt, n, 1.7, a.d, out.d));
    dsc_cpu_scale(DSC_F32, n, 1.7, a.init, ref);
    compare("scale", &out, ref, tol);

    RUN2("fill", out, dsc_cuda_fill(NULL, dt, n, -0.3, out.d));
    dsc_cpu_fill(DSC_F32, n, -0.3, ref);
    compare("fill", &out, ref, tol);

    static const char *un[] = {"unary relu", "unary gelu", "unary tanh"};
    static const char *ubn[] = {"unary relu backward", "unary gelu backward", "unary tanh backward"};
    cc_buf_t y = cc_new(dt, n, 0, 0), dy = cc_new(dt, n, -1, 1);
    for (int op = 0; op < DSC_UNARY_COUNT; op++) {
        RUN2(un[op], out, dsc_cuda_unary(NULL, dt, (dsc_unary_op_t)op, n, a.d, out.d));
        dsc_cpu_unary(DSC_F32, (dsc_unary_op_t)op, n, a.init, ref);
        compare(un[op], &out, ref, tol);
        /* backward from x (and for tanh from the saved y, as the op layer calls it) */
        float *yv = cc_get(&out);
        memcpy(y.init, yv, (size_t)n * sizeof(float));
        cc_reset(&y);
        memcpy(ref, out.init, (size_t)n * sizeof *ref);
        const bool use_y = op == DSC_UNARY_TANH;
        RUN2(ubn[op], out, dsc_cuda_unary_backward(NULL, dt, (dsc_unary_op_t)op, n, use_y ? NULL : a.d,
                                                   use_y ? y.d : NULL, dy.d, out.d));
        dsc_cpu_unary_backward(DSC_F32, (dsc_unary_op_t)op, n, use_y ? NULL : a.init, use_y ? y.init : NULL, dy.init,
                               ref);
        compare(ubn[op], &out, ref, tol);
        free(yv);
    }
    /* f32 GELU: the same exp polynomial and operation order as the CPU: bit for bit */
    if (dt == DSC_F32) {
        CK(dsc_cuda_unary(NULL, dt, DSC_UNARY_GELU, n, a.d, out.d));
        float *got = cc_get(&out);
        dsc_cpu_unary(DSC_F32, DSC_UNARY_GELU, n, a.init, ref);
        cc_bits("unary gelu vs CPU", dt, got, ref, (size_t)n * 4);
        free(got);
    }

    /* transpose [2, 5, 3, 7, 4] -> [2, 7, 3, 5, 4], plain and accumulating */
    const int64_t o = 2, d0 = 5, mid = 3, d1 = 7, inner = 4, nt = o * d0 * mid * d1 * inner;
    cc_buf_t tx = cc_new(dt, nt, -1, 1), tout = cc_new(dt, nt, -1, 1);
    float *tref = copyf(tout.init, nt);
    RUN2("transpose", tout, dsc_cuda_transpose(NULL, dt, o, d0, mid, d1, inner, tx.d, tout.d, false));
    dsc_cpu_transpose(DSC_F32, o, d0, mid, d1, inner, tx.init, tref, false);
    compare("transpose", &tout, tref, tol);
    memcpy(tref, tout.init, (size_t)nt * sizeof *tref);
    RUN2("transpose accumulate", tout, dsc_cuda_transpose(NULL, dt, o, d0, mid, d1, inner, tx.d, tout.d, true));
    dsc_cpu_transpose(DSC_F32, o, d0, mid, d1, inner, tx.init, tref, true);
    compare("transpose accumulate", &tout, tref, tol);
    free(tref);
    cc_free(&tx), cc_free(&tout), cc_free(&y), cc_free(&dy);
    free(ref);
    cc_free(&a), cc_free(&b), cc_free(&b_full), cc_free(&out);
}

/* ---- reductions ------------------------------------------------------------------------- */

static void t_reductions(dsc_dtype_t dt) {
    const int64_t rows = 333, cols = 77;
    const double tol = tol_for(dt);
    cc_buf_t x = cc_new(dt, rows * cols, -1, 1), w = cc_new(dt, rows * cols, -1, 1), y = cc_new(dt, cols, -1, 1);
    float *ref = copyf(y.init, cols);
    RUN2("sum_rows_acc", y, dsc_cuda_sum_rows_acc(NULL, dt, rows, cols, 0.5, x.d, y.d));
    dsc_cpu_sum_rows_acc(DSC_F32, rows, cols, 0.5, x.init, ref);
    compare("sum_rows_acc", &y, ref, tol);
    memcpy(ref, y.init, (size_t)cols * sizeof *ref);
    RUN2("sum_rows_mul_acc", y, dsc_cuda_sum_rows_mul_acc(NULL, dt, rows, cols, -1.5, x.d, w.d, y.d));
    dsc_cpu_sum_rows_mul_acc(DSC_F32, rows, cols, -1.5, x.init, w.init, ref);
    compare("sum_rows_mul_acc", &y, ref, tol);
    free(ref);
    /* sum into a device double */
    double *dsum = NULL, s1 = 0, s2 = 0;
    CK(dsc_cuda_malloc((void **)&dsum, sizeof(double)));
    CK(dsc_cuda_sum(NULL, dt, rows * cols, x.d, dsum));
    CK(dsc_cuda_copy_d2h_async(&s1, dsum, 8, NULL));
    CK(dsc_cuda_sum(NULL, dt, rows * cols, x.d, dsum));
    CK(dsc_cuda_copy_d2h_async(&s2, dsum, 8, NULL));
    cc_repeat("sum", dt, &s1, &s2, 8);
    const double want = dsc_cpu_sum(DSC_F32, rows * cols, x.init);
    /* the element sum is ~0 by symmetry: compare against the sum of |x| (double sums in another order) */
    double mag = 0;
    for (int64_t i = 0; i < rows * cols; i++) mag += fabs(x.init[i]);
    const float e = (float)(fabs(s1 - want) / mag), z = 0;
    cc_close("sum (device double; err / sum|x|)", dt, &e, &z, 1, 1e-12);
    dsc_cuda_free(dsum);
    cc_free(&x), cc_free(&w), cc_free(&y);
}

/* The two-pass column sums (the device table's path for many rows): 1000 rows = 4 chunks of
 * 256, the last one short, and 2600 = 11 chunks (more than the finish kernel's 8 chunk lanes);
 * against the CPU, and run twice bit for bit. */
static void t_col_sums_two_pass(dsc_dtype_t dt, int64_t rows) {
    const int64_t cols = 77;
    const double tol = tol_for(dt);
    const size_t wsb = 2 * dsc_cuda_col_sums_workspace_bytes(rows, cols);
    void *ws = NULL;
    CK(dsc_cuda_malloc(&ws, wsb));
    cc_buf_t x = cc_new(dt, rows * cols, -1, 1), w = cc_new(dt, rows * cols, -1, 1), y = cc_new(dt, cols, -1, 1);
    float *ref = copyf(y.init, cols);
    RUN2("sum_rows_acc two-pass", y, dsc_cuda_sum_rows_acc_ws(NULL, dt, rows, cols, 0.5, x.d, y.d, ws, wsb));
    dsc_cpu_sum_rows_acc(DSC_F32, rows, cols, 0.5, x.init, ref);
    compare("sum_rows_acc two-pass", &y, ref, tol);
    memcpy(ref, y.init, (size_t)cols * sizeof *ref);
    RUN2("sum_rows_mul_acc two-pass", y,
         dsc_cuda_sum_rows_mul_acc_ws(NULL, dt, rows, cols, -1.5, x.d, w.d, y.d, ws, wsb));
    dsc_cpu_sum_rows_mul_acc(DSC_F32, rows, cols, -1.5, x.init, w.init, ref);
    compare("sum_rows_mul_acc two-pass", &y, ref, tol);
    /* layer norm dweight / dbias from the device's statistics */
    const dsc_dtype_t sdt = dt == DSC_F64 ? DSC_F64 : DSC_F32;
    cc_buf_t g = cc_new(dt, cols, 0.5, 1.5), out = cc_new(dt, rows * cols, 0, 0), dy = cc_new(dt, rows * cols, -1, 1);
    cc_buf_t mean = cc_new(sdt, rows, 0, 0), rstd = cc_new(sdt, rows, 0, 0);
    cc_buf_t dw = cc_new(dt, cols, -1, 1), db = cc_new(dt, cols, -1, 1);
    CK(dsc_cuda_layernorm(NULL, dt, rows, cols, 1e-5, x.d, g.d, NULL, out.d, mean.d, rstd.d));
    float *gm = cc_get(&mean), *gr = cc_get(&rstd), *rdw = copyf(dw.init, cols), *rdb = copyf(db.init, cols);
    RUN2("layernorm backward dw two-pass", dw,
         dsc_cuda_layernorm_backward_ws(NULL, dt, rows, cols, x.d, g.d, mean.d, rstd.d, dy.d, NULL, dw.d, NULL, ws,
                                        wsb));
    RUN2("layernorm backward db two-pass", db,
         dsc_cuda_layernorm_backward_ws(NULL, dt, rows, cols, x.d, g.d, mean.d, rstd.d, dy.d, NULL, NULL, db.d, ws,
                                        wsb));
    dsc_cpu_layernorm_backward(DSC_F32, rows, cols, x.init, g.init, gm, gr, dy.init, NULL, rdw, rdb);
    compare("layernorm backward dw two-pass", &dw, rdw, tol);
    compare("layernorm backward db two-pass", &db, rdb, tol);
    free(gm), free(gr), free(rdw), free(rdb), free(ref);
    cc_free(&x), cc_free(&w), cc_free(&y), cc_free(&g), cc_free(&out), cc_free(&dy);
    cc_free(&mean), cc_free(&rstd), cc_free(&dw), cc_free(&db);
    dsc_cuda_free(ws);
}

/* Layer norm's fast path (cuda_layernorm.cu: a warp per row, 16-byte groups) on the widths it
 * takes: GPT-2's 768 and 1600 (7 of 8 groups per lane for bf16, the last lane group partial)
 * and 264 (33 groups: one lane with a second group); 300 rows = 2 chunks of the column sums,
 * the second one short. Forward, dx, dw and db against the CPU from the device's statistics,
 * each run twice bit for bit; then all three in one call (the one-pass backward where it fits).
 * f32 at 1600 takes the general kernels (more than 8 groups per lane): the same checks hold
 * there too. */
static void t_layernorm_fast(dsc_dtype_t dt) {
    static const int64_t widths[] = {768, 1600, 264};
    const double tol = tol_for(dt);
    const dsc_dtype_t sdt = dt == DSC_F64 ? DSC_F64 : DSC_F32;
    const int64_t rows = 300;
    for (size_t t = 0; t < sizeof widths / sizeof widths[0]; t++) {
        const int64_t cols = widths[t];
        const size_t wsb = 2 * dsc_cuda_col_sums_workspace_bytes(rows, cols);
        void *ws = NULL;
        CK(dsc_cuda_malloc(&ws, wsb));
        cc_buf_t x = cc_new(dt, rows * cols, -3, 3), y = cc_new(dt, rows * cols, 0, 0);
        cc_buf_t w = cc_new(dt, cols, 0.5, 1.5), b = cc_new(dt, cols, -0.5, 0.5);
        cc_buf_t mean = cc_new(sdt, rows, 0, 0), rstd = cc_new(sdt, rows, 0, 0);
        cc_buf_t dy = cc_new(dt, rows * cols, -1, 1), dx = cc_new(dt, rows * cols, -1, 1);
        cc_buf_t dw = cc_new(dt, cols, -1, 1), db = cc_new(dt, cols, -1, 1), bs = cc_new(dt, cols, -1, 1);
        float *refy = malloc((size_t)(rows * cols) * sizeof *refy), *rmean = malloc((size_t)rows * 4),
              *rrstd = malloc((size_t)rows * 4);
        RUN2("layernorm fast y", y, dsc_cuda_layernorm(NULL, dt, rows, cols, 1e-5, x.d, w.d, b.d, y.d, mean.d, rstd.d));
        dsc_cpu_layernorm(DSC_F32, rows, cols, 1e-5, x.init, w.init, b.init, refy, rmean, rrstd);
        compare("layernorm fast y", &y, refy, tol);
        compare("layernorm fast mean", &mean, rmean, TOL_F32);
        compare("layernorm fast rstd", &rstd, rrstd, TOL_F32);
        float *gm = cc_get(&mean), *gr = cc_get(&rstd);
        float *rdx = copyf(dx.init, rows * cols), *rdw = copyf(dw.init, cols), *rdb = copyf(db.init, cols);
        float *rbs = copyf(bs.init, cols);
        RUN2("layernorm fast dx", dx,
             dsc_cuda_layernorm_backward_ws(NULL, dt, rows, cols, x.d, w.d, mean.d, rstd.d, dy.d, dx.d, NULL, NULL, ws,
                                            wsb));
        RUN2("layernorm fast dw", dw,
             dsc_cuda_layernorm_backward_ws(NULL, dt, rows, cols, x.d, w.d, mean.d, rstd.d, dy.d, NULL, dw.d, NULL, ws,
                                            wsb));
        RUN2("layernorm fast db", db,
             dsc_cuda_layernorm_backward_ws(NULL, dt, rows, cols, x.d, w.d, mean.d, rstd.d, dy.d, NULL, NULL, db.d, ws,
                                            wsb));
        RUN2("sum_rows_acc fast", bs, dsc_cuda_sum_rows_acc_ws(NULL, dt, rows, cols, 0.25, dy.d, bs.d, ws, wsb));
        dsc_cpu_layernorm_backward(DSC_F32, rows, cols, x.init, w.init, gm, gr, dy.init, rdx, rdw, rdb);
        dsc_cpu_sum_rows_acc(DSC_F32, rows, cols, 0.25, dy.init, rbs);
        compare("layernorm fast dx", &dx, rdx, tol);
        compare("layernorm fast dw", &dw, rdw, tol);
        compare("layernorm fast db", &db, rdb, tol);
        compare("sum_rows_acc fast", &bs, rbs, tol);
        /* dx, dw and db in one call, as training calls it (one pass over dy and x where the row
         * has at most 3 groups of 16 bytes per lane: 768 and 264 for 16 bits, 264 for f32), twice
         * bit for bit */
        {
            cc_buf_t *outs[3] = {&dx, &dw, &db};
            const float *refs[3] = {rdx, rdw, rdb};
            static const char *const names[3] = {"layernorm fast dx (with dw, db)", "layernorm fast dw (with dx, db)",
                                                 "layernorm fast db (with dx, dw)"};
            void *r1[3];
            for (int run = 0; run < 2; run++) {
                for (int k = 0; k < 3; k++) cc_reset(outs[k]);
                CK(dsc_cuda_layernorm_backward_ws(NULL, dt, rows, cols, x.d, w.d, mean.d, rstd.d, dy.d, dx.d, dw.d,
                                                  db.d, ws, wsb));
                for (int k = 0; k < 3; k++) {
                    const size_t bytes = (size_t)outs[k]->n * cc_size(dt);
                    void *raw = cc_raw(outs[k]->d, bytes);
                    if (run == 0) r1[k] = raw;
                    else {
                        cc_repeat(names[k], dt, r1[k], raw, bytes);
                        free(r1[k]), free(raw);
                    }
                }
            }
            for (int k = 0; k < 3; k++) compare(names[k], outs[k], refs[k], tol);
        }
        free(refy), free(rmean), free(rrstd), free(gm), free(gr), free(rdx), free(rdw), free(rdb), free(rbs);
        cc_free(&x), cc_free(&y), cc_free(&w), cc_free(&b), cc_free(&mean), cc_free(&rstd);
        cc_free(&dy), cc_free(&dx), cc_free(&dw), cc_free(&db), cc_free(&bs);
        dsc_cuda_free(ws);
    }
}

/* ---- softmax, layer norm, embedding ------------------------------------------------------ */

static void t_nn(dsc_dtype_t dt) {
    const double tol = tol_for(dt);
    const int64_t rows = 37, cols = 301;
    cc_buf_t x = cc_new(dt, rows * cols, -4, 4), y = cc_new(dt, rows * cols, 0, 0);
    cc_buf_t dy = cc_new(dt, rows * cols, -1, 1), dx = cc_new(dt, rows * cols, -1, 1);
    float *ref = malloc((size_t)(rows * cols) * sizeof *ref), *refy = malloc((size_t)(rows * cols) * sizeof *refy);
    RUN2("softmax", y, dsc_cuda_softmax(NULL, dt, rows, cols, x.d, y.d));
    dsc_cpu_softmax(DSC_F32, rows, cols, x.init, refy);
    compare("softmax", &y, refy, tol);
    /* backward from the device's y, so both sides differentiate the same probabilities */
    float *yv = cc_get(&y);
    memcpy(y.init, yv, (size_t)(rows * cols) * sizeof(float));
    memcpy(ref, dx.init, (size_t)(rows * cols) * sizeof *ref);
    RUN2("softmax backward", dx, dsc_cuda_softmax_backward(NULL, dt, rows, cols, y.d, dy.d, dx.d));
    dsc_cpu_softmax_backward(DSC_F32, rows, cols, yv, dy.init, ref);
    compare("softmax backward", &dx, ref, tol);
    free(yv);

    /* layer norm with weight and bias; mean/rstd are f32 for 16-bit dt */
    const dsc_dtype_t sdt = dt == DSC_F64 ? DSC_F64 : DSC_F32;
    cc_buf_t w = cc_new(dt, cols, 0.5, 1.5), b = cc_new(dt, cols, -0.5, 0.5);
    cc_buf_t mean = cc_new(sdt, rows, 0, 0), rstd = cc_new(sdt, rows, 0, 0);
    cc_buf_t dw = cc_new(dt, cols, -1, 1), db = cc_new(dt, cols, -1, 1);
    float *rmean = malloc((size_t)rows * 4), *rrstd = malloc((size_t)rows * 4);
    RUN2("layernorm", y, dsc_cuda_layernorm(NULL, dt, rows, cols, 1e-5, x.d, w.d, b.d, y.d, mean.d, rstd.d));
    dsc_cpu_layernorm(DSC_F32, rows, cols, 1e-5, x.init, w.init, b.init, refy, rmean, rrstd);
    compare("layernorm y", &y, refy, tol);
    compare("layernorm mean", &mean, rmean, TOL_F32);
    compare("layernorm rstd", &rstd, rrstd, TOL_F32);
    /* backward with the device's statistics on both sides */
    float *gm = cc_get(&mean), *gr = cc_get(&rstd);
    memcpy(mean.init, gm, (size_t)rows * 4);
    memcpy(rstd.init, gr, (size_t)rows * 4);
    float *rdw = copyf(dw.init, cols), *rdb = copyf(db.init, cols);
    memcpy(ref, dx.init, (size_t)(rows * cols) * sizeof *ref);
    RUN2("layernorm backward dx", dx, dsc_cuda_layernorm_backward(NULL, dt, rows, cols, x.d, w.d, mean.d, rstd.d,
                                                                  dy.d, dx.d, NULL, NULL));
    RUN2("layernorm backward dw", dw, dsc_cuda_layernorm_backward(NULL, dt, rows, cols, x.d, w.d, mean.d, rstd.d,
                                                                  dy.d, NULL, dw.d, NULL));
    RUN2("layernorm backward db", db, dsc_cuda_layernorm_backward(NULL, dt, rows, cols, x.d, w.d, mean.d, rstd.d,
                                                                  dy.d, NULL, NULL, db.d));
    dsc_cpu_layernorm_backward(DSC_F32, rows, cols, x.init, w.init, gm, gr, dy.init, ref, rdw, rdb);
    compare("layernorm backward dx", &dx, ref, tol);
    compare("layernorm backward dw", &dw, rdw, tol);
    compare("layernorm backward db", &db, rdb, tol);
    free(gm), free(gr), free(rdw), free(rdb), free(rmean), free(rrstd);
    cc_free(&w), cc_free(&b), cc_free(&mean), cc_free(&rstd), cc_free(&dw), cc_free(&db);

    /* embedding with repeated ids (the backward must add them in id order) */
    const int64_t vocab = 97, n_ids = 300, dim = 70;
    int32_t *ids = malloc((size_t)n_ids * sizeof *ids);
    for (int64_t i = 0; i < n_ids; i++) ids[i] = (int32_t)(cc_uniform() * (i % 3 ? vocab : 5));
    int32_t *dids = cc_upload(ids, (size_t)n_ids * sizeof *ids);
    cc_buf_t table = cc_new(dt, vocab * dim, -1, 1), eout = cc_new(dt, n_ids * dim, 0, 0);
    cc_buf_t dout = cc_new(dt, n_ids * dim, -1, 1), dtable = cc_new(dt, vocab * dim, -1, 1);
    float *eref = malloc((size_t)(n_ids * dim) * sizeof *eref), *tref = copyf(dtable.init, vocab * dim);
    RUN2("embedding", eout, dsc_cuda_embedding(NULL, dt, n_ids, dim, dids, table.d, eout.d));
    dsc_cpu_embedding(DSC_F32, n_ids, dim, ids, table.init, eref);
    compare("embedding", &eout, eref, 0);
    RUN2("embedding backward", dtable, dsc_cuda_embedding_backward(NULL, dt, n_ids, dim, vocab, dids, dout.d, dtable.d));
    dsc_cpu_embedding_backward(DSC_F32, n_ids, dim, ids, dout.init, tref);
    if (dt == DSC_F32) { /* the CPU's order of adds: bit for bit */
        float *got = cc_get(&dtable);
        cc_bits("embedding backward vs CPU", dt, got, tref, (size_t)(vocab * dim) * 4);
        free(got);
    } else {
        compare("embedding backward", &dtable, tref, tol * 4); /* one rounding per repeated add */
    }
    free(eref), free(tref), free(ids);
    dsc_cuda_free(dids);
    cc_free(&table), cc_free(&eout), cc_free(&dout), cc_free(&dtable);
    free(ref), free(refy);
    cc_free(&x), cc_free(&y), cc_free(&dy), cc_free(&dx);
}

/* ---- embedding backward, sorted on the device ---------------------------------------------- */

static int cmp_i64(const void *a, const void *b) {
    const int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* The order cuda_kernels.h states for dsc_cuda_embedding_backward_ws, on the host: the
 * (id, position) list sorted, cut into windows of DSC_CUDA_EMB_WINDOW; per id the window sums
 * (the first from dtable's row) added in window order, in f32, rounded once to dt. */
static void emb_ref_windows(dsc_dtype_t dt, int64_t n, int64_t dim, const int32_t *ids, const float *dout, float *dtable) {
    int64_t *key = malloc((size_t)n * sizeof *key);
    for (int64_t i = 0; i < n; i++) key[i] = ((int64_t)ids[i] << 32) | i;
    qsort(key, (size_t)n, sizeof *key, cmp_i64);
    float *acc = malloc((size_t)dim * 4), *tot = malloc((size_t)dim * 4);
    for (int64_t a = 0; a < n;) {
        const int64_t id = key[a] >> 32;
        int64_t b = a;
        while (b < n && key[b] >> 32 == id) b++;
        float *row = dtable + id * dim;
        for (int64_t j = 0; j < dim; j++) acc[j] = row[j];
        bool first = true;
        for (int64_t x = a; x < b; x++) {
            if (x != a && x % DSC_CUDA_EMB_WINDOW == 0) { /* a window ends: flush its sum */
                for (int64_t j = 0; j < dim; j++) tot[j] = first ? acc[j] : tot[j] + acc[j], acc[j] = 0;
                first = false;
            }
            const float *src = dout + (key[x] & 0xffffffff) * dim;
            for (int64_t j = 0; j < dim; j++) acc[j] += src[j];
        }
        for (int64_t j = 0; j < dim; j++) row[j] = cc_round(dt, first ? acc[j] : tot[j] + acc[j]);
        a = b;
    }
    free(key), free(acc), free(tot);
}

/* Shapes: (a) 300 ids over 97 rows, 70 columns (not a multiple of 16 bytes: the element path),
 * ids 0..4 in every third position (segments over several windows) and others once or a few
 * times; (b) 1000 ids over 70,000 rows (3 radix passes), 264 columns (16-byte groups over 2
 * column tiles for 16 bits), one id in every fourth position (250 entries, 8 windows), the rest
 * mostly single; (c) GPT's position table: ids i % 64 over 5 sequences, 24 columns; (d) 7 ids
 * (less than a window); (e) a table of one row, 40 ids (two windows, one radix digit). Each run
 * twice bit for bit, bit for bit against the order above, and against the CPU kernel. */
static void t_embedding_sorted(dsc_dtype_t dt) {
    const struct { int64_t vocab, n_ids, dim; int kind; } cases[] = {
        {97, 300, 70, 0}, {70000, 1000, 264, 1}, {64, 320, 24, 2}, {10, 7, 8, 0}, {1, 40, 16, 3}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const int64_t vocab = cases[c].vocab, n_ids = cases[c].n_ids, dim = cases[c].dim;
        int32_t *ids = malloc((size_t)n_ids * sizeof *ids);
        for (int64_t i = 0; i < n_ids; i++) {
            if (cases[c].kind == 0) ids[i] = (int32_t)(cc_uniform() * (i % 3 ? vocab : 5));
            else if (cases[c].kind == 1) ids[i] = i % 4 == 1 ? 65537 : i % 9 == 0 ? 7 : (int32_t)(cc_uniform() * vocab);
            else if (cases[c].kind == 2) ids[i] = (int32_t)(i % 64);
            else ids[i] = 0;
        }
        int32_t *dids = cc_upload(ids, (size_t)n_ids * sizeof *ids);
        cc_buf_t dout = cc_new(dt, n_ids * dim, -1, 1), dtable = cc_new(dt, vocab * dim, -1, 1);
        const size_t wsb = dsc_cuda_embedding_backward_workspace_bytes(dt, n_ids, dim);
        void *ws = NULL;
        CK(dsc_cuda_malloc(&ws, wsb));
        char name[96];
        snprintf(name, sizeof name, "embedding backward sorted (%lld ids, %lld x %lld)", (long long)n_ids,
                 (long long)vocab, (long long)dim);
        RUN2(name, dtable, dsc_cuda_embedding_backward_ws(NULL, dt, n_ids, dim, vocab, dids, dout.d, dtable.d, ws, wsb));
        float *got = cc_get(&dtable), *want = copyf(dtable.init, vocab * dim), *cpu = copyf(dtable.init, vocab * dim);
        emb_ref_windows(dt, n_ids, dim, ids, dout.init, want);
        snprintf(name, sizeof name, "embedding backward sorted vs window order (%lld ids)", (long long)n_ids);
        cc_bits(name, dt, got, want, (size_t)(vocab * dim) * 4);
        dsc_cpu_embedding_backward(DSC_F32, n_ids, dim, ids, dout.init, cpu);
        snprintf(name, sizeof name, "embedding backward sorted vs CPU (%lld ids)", (long long)n_ids);
        compare(name, &dtable, cpu, dt == DSC_F32 ? TOL_F32 : tol_for(dt));
        free(got), free(want), free(cpu), free(ids);
        dsc_cuda_free(dids), dsc_cuda_free(ws);
        cc_free(&dout), cc_free(&dtable);
    }
}

/* ---- conversions and dropout: bit for bit ------------------------------------------------- */

static void t_convert(void) {
    const int64_t n = 1 << 16;
    float *src = malloc((size_t)n * 4);
    const uint32_t specials[] = {0x7f800000u, 0xff800000u, 0x7fc00000u, 0x7f800001u, 0xffc12345u, 0x00000001u,
                                 0x80000001u, 0x007fffffu, 0x33800000u, 0x33000000u, 0x387fc000u, 0x477fe000u,
                                 0x477ff000u, 0x477fefffu, 0x3f808000u, 0x3f818000u, 0x7f7fffffu, 0x00000000u,
                                 0x80000000u, 0x38800000u};
    const int ns = (int)(sizeof specials / sizeof specials[0]);
    for (int64_t i = 0; i < n; i++) {
        uint32_t u;
        if (i < ns) u = specials[i];
        else if (i % 3 == 0) u = (uint32_t)(cc_uniform() * 4294967296.0); /* any bit pattern */
        else {
            float f = (float)((cc_uniform() - 0.5) * pow(2.0, (int)(cc_uniform() * 60) - 30));
            memcpy(&u, &f, 4);
        }
        memcpy(&src[i], &u, 4);
    }
    void *dsrc = cc_upload(src, (size_t)n * 4), *dh = NULL, *df = NULL;
    CK(dsc_cuda_malloc(&dh, (size_t)n * 2));
    CK(dsc_cuda_malloc(&df, (size_t)n * 4));
    uint16_t *hh = malloc((size_t)n * 2), *want_h = malloc((size_t)n * 2);
    float *want_f = malloc((size_t)n * 4);
    const dsc_dtype_t halves[] = {DSC_BF16, DSC_F16};
    for (int k = 0; k < 2; k++) {
        const dsc_dtype_t h = halves[k];
        CK(dsc_cuda_convert(NULL, dh, h, dsrc, DSC_F32, n));
        uint16_t *got = cc_raw(dh, (size_t)n * 2);
        dsc_convert(want_h, h, src, DSC_F32, (size_t)n);
        cc_bits(k ? "convert f32 -> f16" : "convert f32 -> bf16", h, got, want_h, (size_t)n * 2);
        /* back to f32 from every 16-bit pattern */
        for (int64_t i = 0; i < n; i++) hh[i] = (uint16_t)i;
        CK(dsc_cuda_copy_h2d_async(dh, hh, (size_t)n * 2, NULL));
        CK(dsc_cuda_convert(NULL, df, DSC_F32, dh, h, n));
        float *gf = cc_raw(df, (size_t)n * 4);
        dsc_convert(want_f, DSC_F32, hh, h, (size_t)n);
        cc_bits(k ? "convert f16 -> f32 (all 65536)" : "convert bf16 -> f32 (all 65536)", h, gf, want_f, (size_t)n * 4);
        free(got), free(gf);
    }
    free(src), free(hh), free(want_h), free(want_f);
    dsc_cuda_free(dsrc), dsc_cuda_free(dh), dsc_cuda_free(df);
}

static void t_dropout(dsc_dtype_t dt) {
    const int64_t n = 100003;
    const double p = 0.1;
    const uint64_t seed = 0x1234abcd5678ull, offset = 4 * 1000003ull;
    cc_buf_t x = cc_new(dt, n, -2, 2), y = cc_new(dt, n, 0, 0), dx = cc_new(dt, n, -1, 1);
    float *ref = malloc((size_t)n * 4), *refb = copyf(dx.init, n);
    const float ks = (float)(1.0 / (1.0 - p));
    int64_t kept = 0;
    for (int64_t i = 0; i < n; i++) {
        const bool keep = dsc_philox_uniform(seed, offset + (uint64_t)i) >= p;
        kept += keep;
        ref[i] = cc_round(dt, keep ? x.init[i] * ks : 0.0f);
        refb[i] = cc_round(dt, refb[i] + (keep ? x.init[i] * ks : 0.0f));
    }
    RUN2("dropout", y, dsc_cuda_dropout(NULL, dt, n, p, seed, offset, x.d, y.d));
    float *got = cc_get(&y);
    cc_bits("dropout vs Philox host loop", dt, got, ref, (size_t)n * 4);
    free(got);
    RUN2("dropout backward", dx, dsc_cuda_dropout_backward(NULL, dt, n, p, seed, offset, x.d, dx.d));
    got = cc_get(&dx);
    cc_bits("dropout backward vs Philox host loop", dt, got, refb, (size_t)n * 4);
    free(got);
    if (dt == DSC_F32) { /* the CPU kernel of the same contract */
        float *cy = malloc((size_t)n * 4), *cdx = copyf(dx.init, n);
        dsc_cpu_dropout(DSC_F32, n, p, seed, offset, x.init, cy);
        dsc_cpu_dropout_backward(DSC_F32, n, p, seed, offset, x.init, cdx);
        float *gy = cc_get(&y), *gdx = cc_get(&dx);
        cc_bits("dropout vs CPU kernel", dt, gy, cy, (size_t)n * 4);
        cc_bits("dropout backward vs CPU kernel", dt, gdx, cdx, (size_t)n * 4);
        free(cy), free(cdx), free(gy), free(gdx);
    }
    const float frac = (float)kept / (float)n, want = 0.9f;
    cc_close("dropout kept fraction ~ 1-p", dt, &frac, &want, 1, 0.01);
    free(ref), free(refb);
    cc_free(&x), cc_free(&y), cc_free(&dx);
}

/* ---- flash attention vs the CPU backend's flash attention (same contract, same Philox) --- */

/* Tolerances (out / lse / dqkv): f32 1e-5; bf16 2e-2 / 1e-2 / 3e-2; f16 5e-3 / 2e-3 / 1e-2.
 * bf16 and f16 with hd 64 or 128 take the tensor-core kernels (P and dS rounded to 16 bits
 * before their products); `simple` forces the simple kernels (dsc_cuda_attention_simple). */
static void t_attention(dsc_dtype_t dt, int64_t B, int64_t T, int64_t C, int64_t H, double p, bool simple) {
    const double tol_out = dt == DSC_F32 ? TOL_F32 : dt == DSC_BF16 ? 2e-2 : 5e-3;
    const double tol_lse = dt == DSC_F32 ? TOL_F32 : dt == DSC_BF16 ? 1e-2 : 2e-3;
    const double tol_dqkv = dt == DSC_F32 ? TOL_F32 : dt == DSC_BF16 ? 3e-2 : 1e-2;
    const uint64_t seed = 77, offset = 4 * 12345;
    const int64_t hd = C / H, nqkv = B * T * 3 * C, nout = B * T * C, nl = B * H * T;
    const bool tc = !simple && dt != DSC_F32 && (hd == 64 || hd == 128);
    const char *path = tc ? "tc" : "simple";
    cc_buf_t qkv = cc_new(dt, nqkv, -1.5, 1.5), out = cc_new(dt, nout, 0, 0), lse = cc_new(DSC_F32, nl, 0, 0);
    cc_buf_t dout = cc_new(dt, nout, -1, 1), dqkv = cc_new(dt, nqkv, -0.5, 0.5);
    float *rout = malloc((size_t)nout * 4), *rlse = malloc((size_t)nl * 4), *rdqkv = copyf(dqkv.init, nqkv);
    dsc_cpu_attention(DSC_F32, B, T, C, H, qkv.init, p, seed, offset, rout, rlse);
    char name[128];
    snprintf(name, sizeof name, "attention %s out B%lld T%lld H%lld hd%lld p%.1f", path, (long long)B, (long long)T,
             (long long)H, (long long)hd, p);
    if (simple) RUN2(name, out, dsc_cuda_attention_simple(NULL, dt, B, T, C, H, qkv.d, p, seed, offset, out.d, lse.d));
    else RUN2(name, out, dsc_cuda_attention(NULL, dt, B, T, C, H, qkv.d, p, seed, offset, out.d, lse.d));
    compare(name, &out, rout, tol_out);
    snprintf(name, sizeof name, "attention %s lse T%lld hd%lld p%.1f (%s run)", path, (long long)T, (long long)hd, p,
             dsc_dtype_name(dt));
    compare(name, &lse, rlse, tol_lse);
    /* backward: both sides from the device's out and lse */
    float *gout = cc_get(&out), *glse = cc_get(&lse);
    dsc_cpu_attention_backward(DSC_F32, B, T, C, H, qkv.init, gout, glse, dout.init, p, seed, offset, rdqkv);
    snprintf(name, sizeof name, "attention %s backward dqkv T%lld hd%lld p%.1f", path, (long long)T, (long long)hd, p);
    if (simple)
        RUN2(name, dqkv, dsc_cuda_attention_backward_simple(NULL, dt, B, T, C, H, qkv.d, out.d, lse.d, dout.d, p, seed,
                                                            offset, dqkv.d));
    else
        RUN2(name, dqkv, dsc_cuda_attention_backward(NULL, dt, B, T, C, H, qkv.d, out.d, lse.d, dout.d, p, seed, offset,
                                                     dqkv.d));
    compare(name, &dqkv, rdqkv, tol_dqkv);
    free(gout), free(glse), free(rout), free(rlse), free(rdqkv);
    cc_free(&qkv), cc_free(&out), cc_free(&lse), cc_free(&dout), cc_free(&dqkv);
}

/* ---- fused cross-entropy ------------------------------------------------------------------- */

/* pad > 0: rows of ld = V + pad elements (the LM head's padded logits); the pad columns hold
 * random values that neither side may read or change (the whole buffers are compared). */
static void t_cross_entropy(dsc_dtype_t dt, int64_t rows, int64_t V, int64_t pad) {
    const int64_t ld = V + pad;
    const int32_t ignore = -100;
    const double tol = tol_for(dt);
    cc_buf_t x = cc_new(dt, rows * ld, -6, 6), losses = cc_new(DSC_F32, rows, 0, 0), lse = cc_new(DSC_F32, rows, 0, 0);
    cc_buf_t dl = cc_new(dt, rows * ld, -1, 1);
    int32_t *tg = malloc((size_t)rows * 4);
    for (int64_t r = 0; r < rows; r++) tg[r] = r % 7 == 3 ? ignore : (int32_t)(cc_uniform() * V);
    int32_t *dtg = cc_upload(tg, (size_t)rows * 4);
    float *rl = malloc((size_t)rows * 4), *rlse = malloc((size_t)rows * 4);
    dsc_cpu_cross_entropy(DSC_F32, rows, V, ld, x.init, tg, ignore, rl, rlse);
    char name[96];
    RUN2("cross_entropy losses", losses, dsc_cuda_cross_entropy(NULL, dt, rows, V, ld, x.d, dtg, ignore, losses.d, lse.d));
    snprintf(name, sizeof name, "cross_entropy losses (%s run, ld V+%lld)", dsc_dtype_name(dt), (long long)pad);
    compare(name, &losses, rl, dt == DSC_F32 ? TOL_F32 : 1e-2);
    snprintf(name, sizeof name, "cross_entropy lse (%s run, ld V+%lld)", dsc_dtype_name(dt), (long long)pad);
    compare(name, &lse, rlse, dt == DSC_F32 ? TOL_F32 : 1e-2);
    /* backward, accumulate: dl += g (p - onehot), g from device memory; both sides use the device's lse */
    float *glse = cc_get(&lse), *ref = copyf(dl.init, rows * ld);
    const float g = 1.0f / 35.0f;
    float *dg = cc_upload(&g, 4);
    dsc_cpu_cross_entropy_backward(DSC_F32, rows, V, ld, x.init, glse, tg, ignore, &g, ref, true);
    RUN2("cross_entropy backward (accumulate)", dl, dsc_cuda_cross_entropy_backward(NULL, dt, rows, V, ld, x.d, lse.d, dtg,
                                                                                   ignore, dg, dl.d, true));
    snprintf(name, sizeof name, "cross_entropy backward (accumulate, ld V+%lld)", (long long)pad);
    compare(name, &dl, ref, tol);
    /* in place over the logits (accumulate = false): dlogits aliases logits (the reference
     * starts from the logits, so its pad columns are the logits' too) */
    free(ref);
    ref = copyf(x.init, rows * ld);
    dsc_cpu_cross_entropy_backward(DSC_F32, rows, V, ld, x.init, glse, tg, ignore, &g, ref, false);
    RUN2("cross_entropy backward (in place)", x, dsc_cuda_cross_entropy_backward(NULL, dt, rows, V, ld, x.d, lse.d, dtg,
                                                                                ignore, dg, x.d, false));
    snprintf(name, sizeof name, "cross_entropy backward (in place, ld V+%lld)", (long long)pad);
    compare(name, &x, ref, tol);
    /* both at once (cross_entropy_with_grad, in place): the bits of the two calls above */
    const size_t xb = (size_t)(rows * ld) * cc_size(dt), lb = (size_t)rows * 4;
    void *want_d = cc_raw(x.d, xb), *want_l = cc_raw(losses.d, lb), *want_s = cc_raw(lse.d, lb);
    cc_reset(&x), cc_reset(&losses), cc_reset(&lse);
    CK(dsc_cuda_cross_entropy_with_grad(NULL, dt, rows, V, ld, x.d, dtg, ignore, losses.d, lse.d, dg, x.d));
    void *got_d = cc_raw(x.d, xb), *got_l = cc_raw(losses.d, lb), *got_s = cc_raw(lse.d, lb);
    snprintf(name, sizeof name, "cross_entropy_with_grad dlogits (ld V+%lld)", (long long)pad);
    cc_bits(name, dt, want_d, got_d, xb);
    snprintf(name, sizeof name, "cross_entropy_with_grad losses, lse");
    cc_bits(name, dt, want_l, got_l, lb);
    cc_bits(name, dt, want_s, got_s, lb);
    free(want_d), free(want_l), free(want_s), free(got_d), free(got_l), free(got_s);
    free(glse), free(ref), free(tg), free(rl), free(rlse);
    dsc_cuda_free(dtg), dsc_cuda_free(dg);
    cc_free(&x), cc_free(&losses), cc_free(&lse), cc_free(&dl);
}

int main(void) {
    cc_require_gpu("test_cuda_kernels");
    dsc_cuda_blas_t *blas = NULL;
    CK(dsc_cuda_blas_create(&blas, 32u << 20));
    const dsc_dtype_t dts[] = {DSC_F32, DSC_BF16, DSC_F16};
    for (int k = 0; k < 3; k++) {
        const dsc_dtype_t dt = dts[k];
#ifndef DSC_CUDA_EMU /* cuBLASLt is not emulated */
        t_gemm(blas, dt);
#endif
        t_elementwise(dt);
        t_gelu_grad_mul(dt);
        t_reductions(dt);
        t_col_sums_two_pass(dt, 1000);
        t_col_sums_two_pass(dt, 2600);
        t_nn(dt);
        t_layernorm_fast(dt);
        t_embedding_sorted(dt);
        t_dropout(dt);
        t_cross_entropy(dt, 41, 5003, 0);
        t_cross_entropy(dt, 41, 5003, 45); /* 5003 + 45 = 5048, a multiple of 8 like a padded vocabulary */
        t_cross_entropy(dt, 9, 50257, 47); /* GPT-2's padded LM head: every thread past the 4-group loads */
        t_attention(dt, 2, 70, 128, 2, 0.0, false);  /* hd 64 (bf16, f16: tensor cores) */
        t_attention(dt, 2, 70, 128, 2, 0.1, false);  /* with dropout */
        t_attention(dt, 1, 45, 96, 3, 0.0, false);   /* hd 32 (simple kernels) */
        t_attention(dt, 1, 100, 256, 2, 0.2, false); /* hd 128 */
        if (dt == DSC_F32) continue;
        /* tensor cores: T over several 64-row tiles and not a multiple of them, B*H several */
        t_attention(dt, 2, 150, 192, 3, 0.0, false);  /* hd 64 */
        t_attention(dt, 1, 129, 256, 2, 0.0, false);  /* hd 128 */
        t_attention(dt, 1, 130, 128, 2, 0.15, false); /* hd 64, dropout */
        t_attention(dt, 2, 70, 128, 2, 0.1, true);   /* the simple kernels on 16 bits */
        t_attention(dt, 1, 100, 256, 2, 0.2, true);
#ifndef DSC_CUDA_EMU /* long rows: many tiles through the double-buffered loops (slow on the emulator) */
        t_attention(dt, 2, 1000, 256, 4, 0.0, false); /* hd 64 */
        t_attention(dt, 1, 777, 256, 2, 0.1, false);  /* hd 128, dropout */
#endif
    }
    t_convert();
    dsc_cuda_blas_destroy(blas);
    return cc_finish("test_cuda_kernels");
}

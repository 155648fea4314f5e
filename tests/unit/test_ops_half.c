/* The 16-bit (bf16, f16) CPU kernels against the f32 ones.
 *
 * Contract (src/ops/backend.h): a 16-bit kernel widens its inputs to f32, runs the f32
 * arithmetic, and rounds each output once. The 16-bit bodies (src/ops/cpu/cpu_half_*.c)
 * repeat the f32 kernels' operations in the same order, so for inputs that are 16-bit
 * values the result must be EXACTLY round16(f32 kernel on the widened inputs), bit for
 * bit, for every entry: gemm (all transposes, beta 0/1, strided), elementwise, row
 * reductions, GELU/tanh/ReLU and their backward, transpose, softmax, layer norm (f32
 * statistics) and embedding (per-id f32 sums for repeated ids). An extra rounding, a
 * 16-bit accumulator or a lost term shows up as a bit difference. The inline conversions
 * are checked against dsc_f32_to_bf16 & co over every 16-bit pattern and 2^20 floats. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "ops/backend.h"
#include "ops/cpu/cpu_half.h"

static const dsc_backend_t *be;
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint32_t rnd32(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 11);
}
static float rndf(float lo, float hi) { return lo + (hi - lo) * (float)(rnd32() & 0xffffff) / 16777216.0f; }

static uint16_t st16(dsc_dtype_t dt, float v) { return dt == DSC_BF16 ? dsc_f32_to_bf16(v) : dsc_f32_to_f16(v); }
static float ld16(dsc_dtype_t dt, uint16_t v) { return dt == DSC_BF16 ? dsc_bf16_to_f32(v) : dsc_f16_to_f32(v); }

/* A 16-bit array of n random values in [lo, hi) and its exact f32 widening. */
typedef struct {
    uint16_t *h;
    float *f;
    int64_t n;
} pair_t;

static pair_t pair_new(dsc_dtype_t dt, int64_t n, float lo, float hi) {
    pair_t p = {malloc((size_t)n * 2 + 2), malloc((size_t)n * 4 + 4), n};
    for (int64_t i = 0; i < n; i++) {
        p.h[i] = st16(dt, rndf(lo, hi));
        p.f[i] = ld16(dt, p.h[i]);
    }
    return p;
}
static void pair_free(pair_t *p) {
    free(p->h);
    free(p->f);
}

/* Every element of the 16-bit result equals the f32 result rounded once. Afterwards the
 * f32 copy is reset to the 16-bit values, so a later accumulating call starts equal. */
static void expect_rounded(dsc_dtype_t dt, const char *what, const pair_t *p) {
    int64_t bad = 0, first = -1;
    for (int64_t i = 0; i < p->n; i++)
        if (p->h[i] != st16(dt, p->f[i]) && !(isnan(p->f[i]) && isnan(ld16(dt, p->h[i])))) {
            if (first < 0) first = i;
            bad++;
        }
    CHECK_MSG(bad == 0, "%s %s: %lld of %lld elements differ from round(f32); first at %lld: %g (16-bit) vs %g (f32)",
              dsc_dtype_name(dt), what, (long long)bad, (long long)p->n, (long long)first,
              first >= 0 ? (double)ld16(dt, p->h[first]) : 0.0, first >= 0 ? (double)p->f[first] : 0.0);
    for (int64_t i = 0; i < p->n; i++) p->f[i] = ld16(dt, p->h[i]); /* both sides go on from the 16-bit values */
}

static void test_conversions(void) {
    int bad_bf = 0, bad_h = 0;
    for (uint32_t u = 0; u < 65536; u++) {
        float a = dsc__bf16_ld((uint16_t)u), b = dsc_bf16_to_f32((uint16_t)u);
        float c = dsc__f16_ld((uint16_t)u), d = dsc_f16_to_f32((uint16_t)u);
        bad_bf += memcmp(&a, &b, 4) != 0;
        bad_h += memcmp(&c, &d, 4) != 0;
    }
    for (int i = 0; i < (1 << 20); i++) {
        uint32_t bits = rnd32() ^ (rnd32() << 11);
        float f;
        memcpy(&f, &bits, 4);
        bad_bf += dsc__bf16_st(f) != dsc_f32_to_bf16(f);
        bad_h += dsc__f16_st(f) != dsc_f32_to_f16(f);
    }
    CHECK_MSG(bad_bf == 0, "%d bf16 conversions differ from dsc_*bf16*", bad_bf);
    CHECK_MSG(bad_h == 0, "%d f16 conversions differ from dsc_*f16*", bad_h);
}

static void test_gemm(dsc_dtype_t dt) {
    const int64_t m = 37, n = 29, k = 53, pad = 3;
    for (int t = 0; t < 8; t++) {
        const bool ta = t & 1, tb = t & 2;
        const double beta = (t & 4) ? 1.0 : 0.0;
        const int64_t a_rows = ta ? k : m, a_cols = ta ? m : k, b_rows = tb ? n : k, b_cols = tb ? k : n;
        const int64_t lda = a_cols + pad, ldb = b_cols + pad, ldc = n + pad; /* strided */
        pair_t a = pair_new(dt, a_rows * lda, -2, 2), b = pair_new(dt, b_rows * ldb, -2, 2),
               c = pair_new(dt, m * ldc, -4, 4);
        be->gemm(NULL, DSC_F32, ta, tb, m, n, k, 0.5, a.f, lda, b.f, ldb, beta, c.f, ldc);
        be->gemm(NULL, dt, ta, tb, m, n, k, 0.5, a.h, lda, b.h, ldb, beta, c.h, ldc);
        char what[64];
        snprintf(what, sizeof what, "gemm ta=%d tb=%d beta=%g", ta, tb, beta);
        expect_rounded(dt, what, &c);
        pair_free(&a);
        pair_free(&b);
        pair_free(&c);
    }
}

static void test_elementwise(dsc_dtype_t dt) {
    const int64_t n = 40000, nb = 200; /* above the parallel threshold; b broadcast */
    pair_t a = pair_new(dt, n, -3, 3), b = pair_new(dt, nb, -3, 3), w = pair_new(dt, n, -2, 2);
    for (int op = 0; op < DSC_BINARY_COUNT; op++) {
        pair_t o = pair_new(dt, n, 0, 1);
        be->binary(NULL, DSC_F32, (dsc_binary_op_t)op, n, a.f, nb, b.f, o.f);
        be->binary(NULL, dt, (dsc_binary_op_t)op, n, a.h, nb, b.h, o.h);
        expect_rounded(dt, op == 0 ? "add" : op == 1 ? "sub" : "mul", &o);
        pair_free(&o);
    }
    pair_t y = pair_new(dt, n, -1, 1);
    be->axpy(NULL, DSC_F32, n, -0.75, a.f, y.f);
    be->axpy(NULL, dt, n, -0.75, a.h, y.h);
    expect_rounded(dt, "axpy", &y);
    be->mul_acc(NULL, DSC_F32, n, 1.5, a.f, nb, b.f, y.f);
    be->mul_acc(NULL, dt, n, 1.5, a.h, nb, b.h, y.h);
    expect_rounded(dt, "mul_acc", &y);
    be->scale(NULL, DSC_F32, n, 0.3, a.f, y.f);
    be->scale(NULL, dt, n, 0.3, a.h, y.h);
    expect_rounded(dt, "scale", &y);
    be->fill(NULL, DSC_F32, n, 1.0 / 3.0, y.f);
    be->fill(NULL, dt, n, 1.0 / 3.0, y.h);
    expect_rounded(dt, "fill", &y);
    const double s32 = be->sum(NULL, DSC_F32, n, a.f), s16 = be->sum(NULL, dt, n, a.h);
    CHECK_MSG(s32 == s16, "%s sum: %.17g vs f32 %.17g", dsc_dtype_name(dt), s16, s32);

    /* row reductions: the bias-gradient sums (n / nb rows of nb columns) */
    pair_t g = pair_new(dt, nb, -1, 1);
    be->sum_rows_acc(NULL, DSC_F32, n / nb, nb, 1.0, a.f, g.f);
    be->sum_rows_acc(NULL, dt, n / nb, nb, 1.0, a.h, g.h);
    expect_rounded(dt, "sum_rows_acc", &g);
    be->sum_rows_mul_acc(NULL, DSC_F32, n / nb, nb, -1.0, a.f, w.f, g.f);
    be->sum_rows_mul_acc(NULL, dt, n / nb, nb, -1.0, a.h, w.h, g.h);
    expect_rounded(dt, "sum_rows_mul_acc", &g);

    /* activations and their backward (dx accumulates) */
    const char *names[DSC_UNARY_COUNT] = {"relu", "gelu", "tanh"};
    for (int op = 0; op < DSC_UNARY_COUNT; op++) {
        pair_t o = pair_new(dt, n, 0, 1), dx = pair_new(dt, n, -1, 1);
        be->unary(NULL, DSC_F32, (dsc_unary_op_t)op, n, a.f, o.f);
        be->unary(NULL, dt, (dsc_unary_op_t)op, n, a.h, o.h);
        expect_rounded(dt, names[op], &o);
        be->unary_backward(NULL, DSC_F32, (dsc_unary_op_t)op, n, a.f, NULL, w.f, dx.f);
        be->unary_backward(NULL, dt, (dsc_unary_op_t)op, n, a.h, NULL, w.h, dx.h);
        char what[32];
        snprintf(what, sizeof what, "%s backward", names[op]);
        expect_rounded(dt, what, &dx);
        pair_free(&o);
        pair_free(&dx);
    }

    /* transpose [2, 5, 3, 7, 4] -> [2, 7, 3, 5, 4], then accumulated back */
    const int64_t nt = 2 * 5 * 3 * 7 * 4;
    pair_t x = pair_new(dt, nt, -2, 2), t1 = pair_new(dt, nt, 0, 1), t2 = pair_new(dt, nt, -1, 1);
    be->transpose(NULL, DSC_F32, 2, 5, 3, 7, 4, x.f, t1.f, false);
    be->transpose(NULL, dt, 2, 5, 3, 7, 4, x.h, t1.h, false);
    expect_rounded(dt, "transpose", &t1);
    be->transpose(NULL, DSC_F32, 2, 7, 3, 5, 4, t1.f, t2.f, true);
    be->transpose(NULL, dt, 2, 7, 3, 5, 4, t1.h, t2.h, true);
    expect_rounded(dt, "transpose accumulate", &t2);
    pair_free(&x);
    pair_free(&t1);
    pair_free(&t2);
    pair_free(&g);
    pair_free(&y);
    pair_free(&a);
    pair_free(&b);
    pair_free(&w);
}

static void test_nn(dsc_dtype_t dt) {
    const int64_t rows = 67, cols = 515, n = rows * cols; /* odd sizes, above the parallel threshold */
    pair_t x = pair_new(dt, n, -4, 4), dy = pair_new(dt, n, -1, 1);
    /* softmax and backward */
    pair_t y = pair_new(dt, n, 0, 1), dx = pair_new(dt, n, -1, 1);
    be->softmax(NULL, DSC_F32, rows, cols, x.f, y.f);
    be->softmax(NULL, dt, rows, cols, x.h, y.h);
    expect_rounded(dt, "softmax", &y);
    be->softmax_backward(NULL, DSC_F32, rows, cols, y.f, dy.f, dx.f);
    be->softmax_backward(NULL, dt, rows, cols, y.h, dy.h, dx.h);
    expect_rounded(dt, "softmax backward", &dx);

    /* layer norm: f32 statistics, the same on both sides */
    pair_t w = pair_new(dt, cols, 0.5, 1.5), b = pair_new(dt, cols, -0.5, 0.5);
    float *mean32 = malloc((size_t)rows * 4), *rstd32 = malloc((size_t)rows * 4);
    float *mean16 = malloc((size_t)rows * 4), *rstd16 = malloc((size_t)rows * 4);
    for (int with_bias = 0; with_bias < 2; with_bias++) {
        be->layernorm(NULL, DSC_F32, rows, cols, 1e-5, x.f, w.f, with_bias ? b.f : NULL, y.f, mean32, rstd32);
        be->layernorm(NULL, dt, rows, cols, 1e-5, x.h, w.h, with_bias ? b.h : NULL, y.h, mean16, rstd16);
        expect_rounded(dt, with_bias ? "layernorm" : "layernorm (no bias)", &y);
        CHECK_MSG(memcmp(mean32, mean16, (size_t)rows * 4) == 0 && memcmp(rstd32, rstd16, (size_t)rows * 4) == 0,
                  "%s layernorm: mean/rstd differ from f32", dsc_dtype_name(dt));
    }
    pair_t dw = pair_new(dt, cols, -1, 1), db = pair_new(dt, cols, -1, 1);
    be->layernorm_backward(NULL, DSC_F32, rows, cols, x.f, w.f, mean32, rstd32, dy.f, dx.f, dw.f, db.f);
    be->layernorm_backward(NULL, dt, rows, cols, x.h, w.h, mean16, rstd16, dy.h, dx.h, dw.h, db.h);
    expect_rounded(dt, "layernorm backward dx", &dx);
    expect_rounded(dt, "layernorm backward dweight", &dw);
    expect_rounded(dt, "layernorm backward dbias", &db);

    /* embedding: ids repeat (a small vocabulary), so per-id sums matter */
    const int64_t vocab = 11, n_ids = 300;
    int32_t ids[300];
    for (int64_t i = 0; i < n_ids; i++) ids[i] = (int32_t)(rnd32() % vocab);
    pair_t table = pair_new(dt, vocab * cols, -1, 1), out = pair_new(dt, n_ids * cols, 0, 1);
    pair_t dout = pair_new(dt, n_ids * cols, -1, 1), dtable = pair_new(dt, vocab * cols, -0.1f, 0.1f);
    be->embedding(NULL, DSC_F32, n_ids, cols, ids, table.f, out.f);
    be->embedding(NULL, dt, n_ids, cols, ids, table.h, out.h);
    expect_rounded(dt, "embedding", &out);
    be->embedding_backward(NULL, DSC_F32, n_ids, cols, vocab, ids, dout.f, dtable.f);
    be->embedding_backward(NULL, dt, n_ids, cols, vocab, ids, dout.h, dtable.h);
    expect_rounded(dt, "embedding backward", &dtable);

    free(mean32);
    free(rstd32);
    free(mean16);
    free(rstd16);
    pair_t *all[] = {&x, &dy, &y, &dx, &w, &b, &dw, &db, &table, &out, &dout, &dtable};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) pair_free(all[i]);
}

int main(void) {
    be = dsc__backend_cpu();
    test_conversions();
    const dsc_dtype_t dts[2] = {DSC_BF16, DSC_F16};
    for (int d = 0; d < 2; d++) {
        test_gemm(dts[d]);
        test_elementwise(dts[d]);
        test_nn(dts[d]);
    }
    return check_finish("test_ops_half");
}

/* Basic ops (matmul, elementwise, shape, reductions, cast): gradients against finite
 * differences on odd shapes and every broadcast / transpose form, forward values against
 * hand-computed numbers, f32 kernels against the f64 ones, large (parallel) sizes against
 * serial references, error messages, NULL propagation, and thread-count independence. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "dsc/ops.h"
#include "gradcheck.h"

#define TOL 1e-6

static gradcheck_input_t in_f64(int ndim, const int64_t *shape, double lo, double hi) {
    gradcheck_input_t in = {DSC_F64, ndim, {1, 1, 1, 1}, true, lo, hi};
    for (int d = 0; d < ndim; d++) in.shape[d] = shape[d];
    return in;
}
#define SHAPE(...) ((const int64_t[]){__VA_ARGS__})
#define NDIM(...) ((int)(sizeof((const int64_t[]){__VA_ARGS__}) / sizeof(int64_t)))
#define IN(lo, hi, ...) in_f64(NDIM(__VA_ARGS__), SHAPE(__VA_ARGS__), lo, hi)

static bool contains(const char *s, const char *sub) { return s && strstr(s, sub) != NULL; }

/* ---- gradient checks ------------------------------------------------------------- */

typedef struct {
    bool ta, tb;
} mm_flags_t;

static dsc_tensor_t *fn_matmul(dsc_ctx_t *ctx, dsc_tensor_t **in, void *user) {
    const mm_flags_t *f = user;
    return dsc_matmul(ctx, in[0], in[1], f->ta, f->tb);
}

static void test_grad_matmul(void) {
    static const int64_t sizes[][3] = {{1, 1, 1}, {3, 7, 13}, {13, 3, 7}, {7, 33, 1}, {1, 13, 3}, {2, 5, 3}};
    for (int t = 0; t < 4; t++) {
        mm_flags_t f = {t & 1, (t >> 1) & 1};
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
            const int64_t m = sizes[s][0], k = sizes[s][1], n = sizes[s][2];
            gradcheck_input_t in[2] = {f.ta ? IN(-1, 1, k, m) : IN(-1, 1, m, k),
                                       f.tb ? IN(-1, 1, n, k) : IN(-1, 1, k, n)};
            char name[96];
            snprintf(name, sizeof name, "matmul M=%lld K=%lld N=%lld ta=%d tb=%d", (long long)m, (long long)k,
                     (long long)n, f.ta, f.tb);
            CHECK(gradcheck(name, fn_matmul, &f, 2, in, TOL, 100 + (uint64_t)s) < TOL);
        }
        /* a with leading dims flattened into M (no trans_a): 1-D, 3-D, 4-D. */
        if (!f.ta) {
            gradcheck_input_t a1[2] = {IN(-1, 1, 7), f.tb ? IN(-1, 1, 3, 7) : IN(-1, 1, 7, 3)};
            CHECK(gradcheck("matmul 1-D a", fn_matmul, &f, 2, a1, TOL, 7) < TOL);
            gradcheck_input_t a3[2] = {IN(-1, 1, 2, 3, 5), f.tb ? IN(-1, 1, 7, 5) : IN(-1, 1, 5, 7)};
            CHECK(gradcheck("matmul 3-D a", fn_matmul, &f, 2, a3, TOL, 8) < TOL);
            gradcheck_input_t a4[2] = {IN(-1, 1, 2, 1, 3, 4), f.tb ? IN(-1, 1, 3, 4) : IN(-1, 1, 4, 3)};
            CHECK(gradcheck("matmul 4-D a", fn_matmul, &f, 2, a4, TOL, 9) < TOL);
        }
    }
}

/* x @ x^T: the same tensor as both operands accumulates both gradients. */
static dsc_tensor_t *fn_matmul_self(dsc_ctx_t *ctx, dsc_tensor_t **in, void *user) {
    (void)user;
    return dsc_matmul(ctx, in[0], in[0], false, true);
}

typedef dsc_tensor_t *(*binop_fn)(dsc_ctx_t *, dsc_tensor_t *, dsc_tensor_t *);
static dsc_tensor_t *fn_binop(dsc_ctx_t *ctx, dsc_tensor_t **in, void *user) {
    binop_fn f = *(binop_fn *)user;
    return f(ctx, in[0], in[1]);
}
static dsc_tensor_t *fn_binop_self(dsc_ctx_t *ctx, dsc_tensor_t **in, void *user) {
    binop_fn f = *(binop_fn *)user;
    return f(ctx, in[0], in[0]);
}

static void test_grad_binary(void) {
    binop_fn ops[3] = {dsc_add, dsc_sub, dsc_mul};
    const char *names[3] = {"add", "sub", "mul"};
    /* pairs (a, b): equal shapes, b a trailing part of a, a a trailing part of b. */
    const gradcheck_input_t pairs[][2] = {
        {IN(-1, 1, 1), IN(-1, 1, 1)},
        {IN(-1, 1, 13), IN(-1, 1, 13)},
        {IN(-1, 1, 3, 7), IN(-1, 1, 3, 7)},
        {IN(-1, 1, 2, 3, 5, 7), IN(-1, 1, 2, 3, 5, 7)},
        {IN(-1, 1, 3, 7, 13), IN(-1, 1, 7, 13)},   /* b smaller */
        {IN(-1, 1, 3, 7, 13), IN(-1, 1, 13)},      /* b smaller, 1-D */
        {IN(-1, 1, 33, 1), IN(-1, 1, 1)},          /* b a single element */
        {IN(-1, 1, 2, 3, 5, 7), IN(-1, 1, 3, 5, 7)},
        {IN(-1, 1, 7, 13), IN(-1, 1, 3, 7, 13)},   /* a smaller */
        {IN(-1, 1, 13), IN(-1, 1, 7, 13)},         /* a smaller, 1-D */
        {IN(-1, 1, 1), IN(-1, 1, 33, 1)},          /* a a single element */
        {IN(-1, 1, 5, 7), IN(-1, 1, 2, 3, 5, 7)},
    };
    for (int o = 0; o < 3; o++) {
        for (size_t p = 0; p < sizeof pairs / sizeof pairs[0]; p++) {
            char name[64];
            snprintf(name, sizeof name, "%s pair %zu", names[o], p);
            CHECK(gradcheck(name, fn_binop, &ops[o], 2, pairs[p], TOL, 200 + p) < TOL);
        }
        gradcheck_input_t self[1] = {IN(-1, 1, 3, 7)};
        char name[64];
        snprintf(name, sizeof name, "%s(x, x)", names[o]);
        CHECK(gradcheck(name, fn_binop_self, &ops[o], 1, self, TOL, 31) < TOL);
    }
    /* Only one operand differentiable: the other's gradient is skipped. */
    gradcheck_input_t one[2] = {IN(-1, 1, 3, 7), IN(-1, 1, 7)};
    one[1].differentiable = false;
    CHECK(gradcheck("mul, b not differentiable", fn_binop, &ops[2], 2, one, TOL, 5) < TOL);
    gradcheck_input_t other[2] = {IN(-1, 1, 7), IN(-1, 1, 3, 7)};
    other[0].differentiable = false;
    CHECK(gradcheck("sub, a not differentiable", fn_binop, &ops[1], 2, other, TOL, 6) < TOL);
}

static dsc_tensor_t *fn_bias_add(dsc_ctx_t *ctx, dsc_tensor_t **in, void *user) {
    (void)user;
    return dsc_bias_add(ctx, in[0], in[1]);
}

static dsc_tensor_t *fn_scale(dsc_ctx_t *ctx, dsc_tensor_t **in, void *user) {
    return dsc_scale(ctx, in[0], *(double *)user);
}

typedef dsc_tensor_t *(*unop_fn)(dsc_ctx_t *, dsc_tensor_t *);
static dsc_tensor_t *fn_unop(dsc_ctx_t *ctx, dsc_tensor_t **in, void *user) {
    unop_fn f = *(unop_fn *)user;
    return f(ctx, in[0]);
}

static void test_grad_elementwise(void) {
    const gradcheck_input_t bias_cases[][2] = {
        {IN(-1, 1, 1), IN(-1, 1, 1)},
        {IN(-1, 1, 13), IN(-1, 1, 13)},
        {IN(-1, 1, 33, 5), IN(-1, 1, 5)},
        {IN(-1, 1, 3, 7, 13), IN(-1, 1, 13)},
        {IN(-1, 1, 2, 3, 1, 7), IN(-1, 1, 7)},
    };
    for (size_t c = 0; c < sizeof bias_cases / sizeof bias_cases[0]; c++)
        CHECK(gradcheck("bias_add", fn_bias_add, NULL, 2, bias_cases[c], TOL, 300 + c) < TOL);

    double scales[3] = {-2.5, 0.37, 0.0};
    for (int s = 0; s < 3; s++) {
        gradcheck_input_t x[1] = {IN(-1, 1, 3, 7, 13)};
        CHECK(gradcheck("scale", fn_scale, &scales[s], 1, x, TOL, 310 + s) < TOL);
    }

    unop_fn relu = dsc_relu, gelu = dsc_gelu, tanh_ = dsc_tanh;
    /* relu: inputs kept away from the kink at 0. */
    gradcheck_input_t pos[1] = {IN(0.1, 1, 3, 7, 13)}, neg[1] = {IN(-1, -0.1, 33, 7)};
    CHECK(gradcheck("relu positive", fn_unop, &relu, 1, pos, TOL, 320) < TOL);
    CHECK(gradcheck("relu negative", fn_unop, &relu, 1, neg, TOL, 321) < TOL);
    const gradcheck_input_t smooth[] = {IN(-3, 3, 1), IN(-3, 3, 13), IN(-3, 3, 3, 7, 13), IN(-6, 6, 2, 3, 5, 7)};
    for (size_t c = 0; c < sizeof smooth / sizeof smooth[0]; c++) {
        CHECK(gradcheck("gelu", fn_unop, &gelu, 1, &smooth[c], TOL, 330 + c) < TOL);
        CHECK(gradcheck("tanh", fn_unop, &tanh_, 1, &smooth[c], TOL, 340 + c) < TOL);
    }
}

static dsc_tensor_t *fn_cast_f64(dsc_ctx_t *ctx, dsc_tensor_t **in, void *user) {
    (void)user;
    return dsc_cast(ctx, in[0], DSC_F64);
}

typedef struct {
    int ndim;
    int64_t shape[4];
} shape_arg_t;

static dsc_tensor_t *fn_reshape(dsc_ctx_t *ctx, dsc_tensor_t **in, void *user) {
    const shape_arg_t *s = user;
    return dsc_reshape(ctx, in[0], s->ndim, s->shape);
}
/* view(x) * y + x reshaped back: the gradient of x arrives through two paths. */
static dsc_tensor_t *fn_view_chain(dsc_ctx_t *ctx, dsc_tensor_t **in, void *user) {
    (void)user;
    dsc_tensor_t *v = dsc_view(ctx, in[0], 2, (const int64_t[]){-1, 13});
    dsc_tensor_t *p = dsc_mul(ctx, v, in[1]);
    dsc_tensor_t *back = dsc_reshape(ctx, p, 3, (const int64_t[]){3, 7, 13});
    return dsc_add(ctx, back, in[0]);
}

typedef struct {
    int d0, d1;
} tr_arg_t;
static dsc_tensor_t *fn_transpose(dsc_ctx_t *ctx, dsc_tensor_t **in, void *user) {
    const tr_arg_t *t = user;
    return dsc_transpose(ctx, in[0], t->d0, t->d1);
}

static void test_grad_shape_and_cast(void) {
    gradcheck_input_t x1[1] = {IN(-1, 1, 3, 7, 13)};
    CHECK(gradcheck("cast f64 -> f64", fn_cast_f64, NULL, 1, x1, TOL, 400) < TOL);

    const shape_arg_t shapes[] = {{2, {21, 13}}, {1, {-1}}, {3, {13, -1, 3}}, {4, {1, 3, 91, 1}}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        CHECK(gradcheck("reshape", fn_reshape, (void *)&shapes[s], 1, x1, TOL, 410 + s) < TOL);
    gradcheck_input_t chain[2] = {IN(-1, 1, 3, 7, 13), IN(-1, 1, 13)};
    CHECK(gradcheck("view chain", fn_view_chain, NULL, 2, chain, TOL, 420) < TOL);

    gradcheck_input_t x4[1] = {IN(-1, 1, 2, 3, 5, 7)};
    for (int d0 = -4; d0 < 4; d0++) {
        for (int d1 = 0; d1 < 4; d1++) {
            tr_arg_t t = {d0, d1};
            char name[64];
            snprintf(name, sizeof name, "transpose 4-D (%d, %d)", d0, d1);
            CHECK(gradcheck(name, fn_transpose, &t, 1, x4, TOL, 430) < TOL);
        }
    }
    tr_arg_t t01 = {0, 1}, tm = {-1, -3};
    gradcheck_input_t x2[1] = {IN(-1, 1, 7, 13)}, x3[1] = {IN(-1, 1, 3, 1, 13)};
    CHECK(gradcheck("transpose 2-D", fn_transpose, &t01, 1, x2, TOL, 440) < TOL);
    CHECK(gradcheck("transpose 3-D (-1, -3)", fn_transpose, &tm, 1, x3, TOL, 441) < TOL);
}

static dsc_tensor_t *fn_sum(dsc_ctx_t *ctx, dsc_tensor_t **in, void *user) {
    (void)user;
    return dsc_sum(ctx, in[0]);
}
static dsc_tensor_t *fn_mean(dsc_ctx_t *ctx, dsc_tensor_t **in, void *user) {
    (void)user;
    return dsc_mean(ctx, in[0]);
}
static dsc_tensor_t *fn_mse(dsc_ctx_t *ctx, dsc_tensor_t **in, void *user) {
    (void)user;
    return dsc_mse(ctx, in[0], in[1]);
}
/* A small network: mean(gelu(x @ W + b)) - through every backward at once. */
static dsc_tensor_t *fn_mlp(dsc_ctx_t *ctx, dsc_tensor_t **in, void *user) {
    (void)user;
    dsc_tensor_t *h = dsc_bias_add(ctx, dsc_matmul(ctx, in[0], in[1], false, false), in[2]);
    dsc_tensor_t *y = dsc_tanh(ctx, dsc_gelu(ctx, h));
    return dsc_mse(ctx, dsc_scale(ctx, y, 1.5), in[3]);
}

static void test_grad_reduce(void) {
    const gradcheck_input_t xs[] = {IN(-1, 1, 1), IN(-1, 1, 33), IN(-1, 1, 3, 7, 13), IN(-1, 1, 2, 3, 5, 7)};
    for (size_t c = 0; c < sizeof xs / sizeof xs[0]; c++) {
        CHECK(gradcheck("sum", fn_sum, NULL, 1, &xs[c], TOL, 500 + c) < TOL);
        CHECK(gradcheck("mean", fn_mean, NULL, 1, &xs[c], TOL, 510 + c) < TOL);
        gradcheck_input_t pair[2] = {xs[c], xs[c]};
        CHECK(gradcheck("mse", fn_mse, NULL, 2, pair, TOL, 520 + c) < TOL);
    }
    gradcheck_input_t mlp[4] = {IN(-1, 1, 2, 3, 7), IN(-1, 1, 7, 5), IN(-1, 1, 5), IN(-1, 1, 2, 3, 5)};
    CHECK(gradcheck("mlp", fn_mlp, NULL, 4, mlp, TOL, 530) < TOL);
    gradcheck_input_t self[1] = {IN(-1, 1, 3, 7)};
    CHECK(gradcheck("matmul(x, x^T)", fn_matmul_self, NULL, 1, self, TOL, 531) < TOL);
}

/* ---- forward values -------------------------------------------------------------- */

static dsc_tensor_t *from_f64(dsc_ctx_t *ctx, dsc_dtype_t dt, int ndim, const int64_t *shape, const double *v) {
    dsc_tensor_t *t = dsc_tensor_new(ctx, dt, ndim, shape);
    if (t) check_tensor_set(t, v, DSC_F64, (size_t)dsc_tensor_numel(t));
    return t;
}

/* Compares t's values with want: relative tolerance tol, with an absolute floor of 1e-12
 * (expect_values) or `floor` (expect_values_floor, for values of order 1 near zero). */
static void expect_values_floor(const char *what, dsc_tensor_t *t, const double *want, size_t n, double tol,
                                double floor_) {
    CHECK_MSG(t != NULL, "%s: NULL result", what);
    if (!t) return;
    CHECK_MSG((size_t)dsc_tensor_numel(t) == n, "%s: %lld elements, want %zu", what, (long long)dsc_tensor_numel(t), n);
    if ((size_t)dsc_tensor_numel(t) != n) return;
    double *got = malloc(n * sizeof *got);
    check_tensor_get(t, got, DSC_F64, n);
    check_arrays_close(what, got, want, n, tol, floor_);
    free(got);
}

static void expect_values(const char *what, dsc_tensor_t *t, const double *want, size_t n, double tol) {
    expect_values_floor(what, t, want, n, tol, 1e-12);
}

static void test_forward_values(void) {
    dsc_ctx_t *ctx = check_ctx_new(1);
    for (int di = 0; di < 2; di++) {
        const dsc_dtype_t dt = di ? DSC_F64 : DSC_F32;
        const double tol = di ? 1e-15 : 1e-6;
        /* [[1,2,3],[4,5,6]] @ [[7,8],[9,10],[11,12]] = [[58,64],[139,154]] */
        const double av[6] = {1, 2, 3, 4, 5, 6}, bv[6] = {7, 8, 9, 10, 11, 12};
        const double at[6] = {1, 4, 2, 5, 3, 6}, bt[6] = {7, 9, 11, 8, 10, 12};
        const double mm[4] = {58, 64, 139, 154};
        dsc_tensor_t *a = from_f64(ctx, dt, 2, SHAPE(2, 3), av), *b = from_f64(ctx, dt, 2, SHAPE(3, 2), bv);
        dsc_tensor_t *a_t = from_f64(ctx, dt, 2, SHAPE(3, 2), at), *b_t = from_f64(ctx, dt, 2, SHAPE(2, 3), bt);
        dsc_tensor_t *c = dsc_matmul(ctx, a, b, false, false);
        expect_values("matmul 2x3 @ 3x2", c, mm, 4, tol);
        CHECK(c && dsc_tensor_ndim(c) == 2 && dsc_tensor_dim(c, 0) == 2 && dsc_tensor_dim(c, 1) == 2);
        expect_values("matmul ta", dsc_matmul(ctx, a_t, b, true, false), mm, 4, tol);
        expect_values("matmul tb", dsc_matmul(ctx, a, b_t, false, true), mm, 4, tol);
        expect_values("matmul ta tb", dsc_matmul(ctx, a_t, b_t, true, true), mm, 4, tol);
        /* 1-D a [3] @ [3, 2] = [1*7+2*9+3*11, 1*8+2*10+3*12] = [58, 64], shape [2] */
        dsc_tensor_t *v = from_f64(ctx, dt, 1, SHAPE(3), av);
        dsc_tensor_t *vm = dsc_matmul(ctx, v, b, false, false);
        expect_values("matmul 1-D", vm, mm, 2, tol);
        CHECK(vm && dsc_tensor_ndim(vm) == 1 && dsc_tensor_dim(vm, 0) == 2);

        /* broadcasting: [[1,2,3],[4,5,6]] with [10,20,30] */
        const double r[3] = {10, 20, 30};
        dsc_tensor_t *row = from_f64(ctx, dt, 1, SHAPE(3), r);
        expect_values("add b smaller", dsc_add(ctx, a, row), (const double[]){11, 22, 33, 14, 25, 36}, 6, tol);
        expect_values("add a smaller", dsc_add(ctx, row, a), (const double[]){11, 22, 33, 14, 25, 36}, 6, tol);
        expect_values("sub b smaller", dsc_sub(ctx, a, row), (const double[]){-9, -18, -27, -6, -15, -24}, 6, tol);
        expect_values("sub a smaller", dsc_sub(ctx, row, a), (const double[]){9, 18, 27, 6, 15, 24}, 6, tol);
        expect_values("mul a smaller", dsc_mul(ctx, row, a), (const double[]){10, 40, 90, 40, 100, 180}, 6, tol);
        expect_values("bias_add", dsc_bias_add(ctx, a, row), (const double[]){11, 22, 33, 14, 25, 36}, 6, tol);
        expect_values("scale", dsc_scale(ctx, a, -0.5), (const double[]){-0.5, -1, -1.5, -2, -2.5, -3}, 6, tol);
        dsc_tensor_t *sa = dsc_add(ctx, row, a);
        CHECK(sa && dsc_tensor_ndim(sa) == 2 && dsc_tensor_dim(sa, 0) == 2 && dsc_tensor_dim(sa, 1) == 3);

        const double xv[5] = {1, -1, 2, -0.5, 0.3};
        dsc_tensor_t *x = from_f64(ctx, dt, 1, SHAPE(5), xv);
        expect_values("relu", dsc_relu(ctx, x), (const double[]){1, 0, 2, 0, 0.3}, 5, tol);
        expect_values("gelu", dsc_gelu(ctx, x),
                      (const double[]){0.8411919906082768, -0.15880800939172324, 1.954597694087775,
                                       -0.15428599017485606, 0.18537092354275922},
                      5, di ? 1e-14 : 1e-6);
        dsc_tensor_t *th = from_f64(ctx, dt, 1, SHAPE(2), (const double[]){0.5, -1.5});
        expect_values("tanh", dsc_tanh(ctx, th), (const double[]){0.46211715726000974, -0.9051482536448664}, 2,
                      di ? 1e-15 : 1e-6);

        expect_values("sum", dsc_sum(ctx, a), (const double[]){21}, 1, tol);
        expect_values("mean", dsc_mean(ctx, a), (const double[]){3.5}, 1, tol);
        dsc_tensor_t *p = from_f64(ctx, dt, 1, SHAPE(3), (const double[]){1, 2, 3});
        dsc_tensor_t *q = from_f64(ctx, dt, 1, SHAPE(3), (const double[]){1, 0, 6});
        expect_values("mse", dsc_mse(ctx, p, q), (const double[]){13.0 / 3.0}, 1, tol); /* (0 + 4 + 9) / 3 */

        /* transpose [2,3] -> [3,2]; 3-D [2,2,3] dims (0, 2) -> [3,2,2] */
        expect_values("transpose 2-D", dsc_transpose(ctx, a, 0, 1), at, 6, 0);
        const double cube[12] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
        dsc_tensor_t *x3 = from_f64(ctx, dt, 3, SHAPE(2, 2, 3), cube);
        /* out[k][j][i] = x[i][j][k] = 6i + 3j + k */
        expect_values("transpose 3-D (0, 2)", dsc_transpose(ctx, x3, 0, 2),
                      (const double[]){0, 6, 3, 9, 1, 7, 4, 10, 2, 8, 5, 11}, 12, 0);
        dsc_tensor_t *t12 = dsc_transpose(ctx, x3, -1, 1);
        expect_values("transpose 3-D (-1, 1)", t12, (const double[]){0, 3, 1, 4, 2, 5, 6, 9, 7, 10, 8, 11}, 12, 0);
        CHECK(t12 && dsc_tensor_dim(t12, 0) == 2 && dsc_tensor_dim(t12, 1) == 3 && dsc_tensor_dim(t12, 2) == 2);

        /* reshape / view share data, infer -1 */
        dsc_tensor_t *rs = dsc_reshape(ctx, x3, 2, SHAPE(-1, 4));
        CHECK(rs && dsc_tensor_data(rs) == dsc_tensor_data(x3));
        CHECK(rs && dsc_tensor_dim(rs, 0) == 3 && dsc_tensor_dim(rs, 1) == 4);
        dsc_tensor_t *vw = dsc_view(ctx, x3, 1, SHAPE(12));
        CHECK(vw && dsc_tensor_data(vw) == dsc_tensor_data(x3) && dsc_tensor_ndim(vw) == 1);
        expect_values("view", vw, cube, 12, 0);
    }

    /* cast: f32 1/3 -> f16 0.333251953125 (0x3555) -> f32; bf16 0.333984375 (0x3eab) */
    dsc_tensor_t *third = dsc_tensor_new_1d(ctx, DSC_F32, 1);
    const float one_third = 1.0f / 3.0f;
    uint16_t bits = 0;
    check_tensor_set(third, &one_third, DSC_F32, 1);
    dsc_tensor_t *h = dsc_cast(ctx, third, DSC_F16);
    CHECK(h && dsc_tensor_dtype(h) == DSC_F16 && dsc_tensor_to_host(ctx, h, &bits, 2) == DSC_OK && bits == 0x3555);
    expect_values("cast f16 -> f32", dsc_cast(ctx, h, DSC_F32), (const double[]){0.333251953125}, 1, 0);
    dsc_tensor_t *bh = dsc_cast(ctx, third, DSC_BF16);
    CHECK(bh && dsc_tensor_to_host(ctx, bh, &bits, 2) == DSC_OK && bits == 0x3eab);
    expect_values("cast bf16 -> f64", dsc_cast(ctx, bh, DSC_F64), (const double[]){0.333984375}, 1, 0);
    CHECK(dsc_ctx_status(ctx) == DSC_OK);
    dsc_ctx_free(ctx);
}

/* ---- cast backward through reduced precisions -------------------------------------- */

static void test_cast_backward(void) {
    dsc_ctx_t *ctx = check_ctx_new(2);
    /* f32 x -> f16 -> f32 -> scale 3 -> sum: dx = 3 exactly. */
    dsc_tensor_t *x = dsc_tensor_new_1d(ctx, DSC_F32, 5);
    dsc_tensor_fill_uniform(ctx, x, -1, 1);
    dsc_tensor_set_requires_grad(x, true);
    dsc_tensor_t *loss = dsc_sum(ctx, dsc_scale(ctx, dsc_cast(ctx, dsc_cast(ctx, x, DSC_F16), DSC_F32), 3.0));
    CHECK_OK(dsc_autograd_backward(ctx, loss));
    dsc_tensor_t *g = dsc_tensor_grad(x);
    CHECK(g && dsc_tensor_dtype(g) == DSC_F32);
    for (int i = 0; g && i < 5; i++) CHECK(check_tensor_at(g, i) == 3.0);
    dsc_ctx_end_step(ctx);

    /* a bf16 leaf: cast to f32, mul by w, sum; d leaf = bf16(w), accumulated from two uses. */
    dsc_tensor_t *leaf = dsc_tensor_new_1d(ctx, DSC_BF16, 4);
    dsc_tensor_fill_uniform(ctx, leaf, -1, 1);
    dsc_tensor_set_requires_grad(leaf, true);
    dsc_tensor_t *w = dsc_tensor_new_1d(ctx, DSC_F32, 4);
    const float wv[4] = {0.5f, -1.25f, 2.0f, 0.375f};
    dsc_tensor_copy_from_f32(w, wv, 4);
    dsc_tensor_t *c1 = dsc_cast(ctx, leaf, DSC_F32), *c2 = dsc_cast(ctx, leaf, DSC_F64);
    dsc_tensor_t *l1 = dsc_sum(ctx, dsc_mul(ctx, c1, w));
    dsc_tensor_t *l2 = dsc_cast(ctx, dsc_sum(ctx, c2), DSC_F32);
    loss = dsc_add(ctx, l1, l2);
    CHECK_OK(dsc_autograd_backward(ctx, loss));
    g = dsc_tensor_grad(leaf);
    CHECK(g && dsc_tensor_dtype(g) == DSC_BF16);
    for (int i = 0; g && i < 4; i++) /* w + 1, exact in bf16 */
        CHECK_MSG(check_tensor_at(g, i) == wv[i] + 1.0f, "i=%d got %g", i, check_tensor_at(g, i));
    CHECK(dsc_ctx_status(ctx) == DSC_OK);
    dsc_ctx_free(ctx);
}

/* ---- f32 kernels against f64 --------------------------------------------------------- */

/* Runs fn_mlp-like graphs in f32 and f64 on the same values; outputs and gradients agree
 * to f32 precision. */
static void test_f32_matches_f64(void) {
    static const int64_t sx[3] = {2, 33, 7}, sw[2] = {5, 7}, sb[1] = {5}, st[3] = {2, 33, 5};
    double *vals[4];
    const int64_t *shapes[4] = {sx, sw, sb, st};
    const int nd[4] = {3, 2, 1, 3};
    int64_t counts[4] = {2 * 33 * 7, 35, 5, 2 * 33 * 5};
    dsc_ctx_t *ctx = check_ctx_new(3);
    for (int k = 0; k < 4; k++) {
        vals[k] = malloc((size_t)counts[k] * sizeof(double));
        for (int64_t i = 0; i < counts[k]; i++) vals[k][i] = 2 * dsc_ctx_rand_uniform(ctx) - 1;
    }
    double out[2], *grads[2][4];
    for (int di = 0; di < 2; di++) {
        const dsc_dtype_t dt = di ? DSC_F64 : DSC_F32;
        dsc_tensor_t *t[4];
        for (int k = 0; k < 4; k++) {
            t[k] = from_f64(ctx, dt, nd[k], shapes[k], vals[k]);
            dsc_tensor_set_requires_grad(t[k], true);
        }
        /* x @ W^T + b, relu/gelu/tanh mix, broadcast sub and mul, transpose, mse */
        dsc_tensor_t *h = dsc_bias_add(ctx, dsc_matmul(ctx, t[0], t[1], false, true), t[2]);
        dsc_tensor_t *h2 = dsc_mul(ctx, dsc_gelu(ctx, h), dsc_tanh(ctx, t[2]));
        dsc_tensor_t *h3 = dsc_sub(ctx, dsc_relu(ctx, h), h2);
        dsc_tensor_t *tt = dsc_transpose(ctx, dsc_transpose(ctx, h3, 0, 2), 2, 0);
        dsc_tensor_t *loss = dsc_add(ctx, dsc_mse(ctx, tt, t[3]), dsc_mean(ctx, dsc_scale(ctx, h2, 0.25)));
        CHECK_OK(dsc_autograd_backward(ctx, loss));
        out[di] = dsc_tensor_item(loss);
        for (int k = 0; k < 4; k++) {
            grads[di][k] = malloc((size_t)counts[k] * sizeof(double));
            dsc_tensor_t *g = dsc_tensor_grad(t[k]);
            CHECK(g != NULL);
            if (g) check_tensor_get(g, grads[di][k], DSC_F64, (size_t)counts[k]);
        }
        dsc_ctx_end_step(ctx);
    }
    CHECK_MSG(check_close(out[0], out[1], 1e-5, 1e-6), "loss f32 %.9g f64 %.9g", out[0], out[1]);
    for (int k = 0; k < 4; k++) {
        char what[64];
        snprintf(what, sizeof what, "f32 vs f64 gradient of input %d", k);
        check_arrays_close(what, grads[0][k], grads[1][k], (size_t)counts[k], 1e-4, 1e-5);
        free(grads[0][k]);
        free(grads[1][k]);
        free(vals[k]);
    }
    dsc_ctx_free(ctx);
}

/* ---- large sizes (parallel loops) against serial references ----------------------- */

static void test_large(void) {
    dsc_ctx_t *ctx = check_ctx_new(4);
    const int64_t rows = 1031, cols = 97; /* 100007 elements, above the parallel threshold */
    const int64_t n = rows * cols;
    for (int di = 0; di < 2; di++) {
        const dsc_dtype_t dt = di ? DSC_F64 : DSC_F32;
        const double tol = di ? 1e-12 : 1e-5;
        int64_t s2[2] = {rows, cols}, s1[1] = {cols};
        dsc_tensor_t *a = dsc_tensor_new(ctx, dt, 2, s2), *b = dsc_tensor_new(ctx, dt, 1, s1);
        dsc_tensor_fill_uniform(ctx, a, -2, 2);
        dsc_tensor_fill_uniform(ctx, b, -2, 2);
        dsc_tensor_set_requires_grad(a, true);
        dsc_tensor_set_requires_grad(b, true);
        double *av = malloc((size_t)n * sizeof *av), *bv = malloc((size_t)cols * sizeof *bv);
        check_tensor_get(a, av, DSC_F64, (size_t)n);
        check_tensor_get(b, bv, DSC_F64, (size_t)cols);

        /* y = gelu(a * b) - b; loss = sum(y) */
        dsc_tensor_t *m = dsc_mul(ctx, a, b);
        dsc_tensor_t *y = dsc_sub(ctx, dsc_gelu(ctx, m), b);
        dsc_tensor_t *loss = dsc_sum(ctx, y);
        CHECK_OK(dsc_autograd_backward(ctx, loss));
        double *want_y = malloc((size_t)n * sizeof *want_y), *want_ga = malloc((size_t)n * sizeof *want_ga);
        double *want_gb = calloc((size_t)cols, sizeof *want_gb);
        double want_sum = 0;
        const double c = sqrt(2.0 / M_PI);
        for (int64_t r = 0; r < rows; r++) {
            for (int64_t j = 0; j < cols; j++) {
                const int64_t i = r * cols + j;
                const double v = di ? av[i] * bv[j] : (double)((float)av[i] * (float)bv[j]);
                const double t = tanh(c * (v + 0.044715 * v * v * v));
                want_y[i] = 0.5 * v * (1 + t) - bv[j];
                const double d = 0.5 * (1 + t) + 0.5 * v * (1 - t * t) * c * (1 + 3 * 0.044715 * v * v);
                want_ga[i] = d * bv[j];
                want_gb[j] += d * av[i] - 1;
                want_sum += want_y[i];
            }
        }
        expect_values_floor("large gelu(a*b)-b", y, want_y, (size_t)n, tol, 1.0);
        expect_values_floor("large sum", loss, &want_sum, 1, di ? 1e-10 : 1e-5, 1.0);
        expect_values_floor("large grad a", dsc_tensor_grad(a), want_ga, (size_t)n, di ? 1e-12 : 1e-5, 1.0);
        expect_values_floor("large grad b (row reduction)", dsc_tensor_grad(b), want_gb, (size_t)cols,
                            di ? 1e-10 : 1e-5, 1.0);

        /* transpose of a large 3-D tensor, and its backward */
        dsc_tensor_t *x3 = dsc_reshape(ctx, a, 3, (const int64_t[]){1031, 1, 97});
        dsc_tensor_t *tr = dsc_transpose(ctx, x3, 0, 2);
        bool ok = tr != NULL;
        double *tv = malloc((size_t)n * sizeof *tv);
        if (tr) check_tensor_get(tr, tv, DSC_F64, (size_t)n);
        for (int64_t r = 0; ok && r < rows; r++)
            for (int64_t j = 0; j < cols; j++) ok = ok && tv[j * rows + r] == av[r * cols + j];
        CHECK_MSG(ok, "large transpose values (%s)", dsc_dtype_name(dt));
        free(tv);
        free(av);
        free(bv);
        free(want_y);
        free(want_ga);
        free(want_gb);
        dsc_ctx_end_step(ctx);
    }
    CHECK(dsc_ctx_status(ctx) == DSC_OK);
    dsc_ctx_free(ctx);
}

/* ---- errors, NULL propagation, no-grad ------------------------------------------- */

static void expect_error(dsc_ctx_t *ctx, dsc_tensor_t *result, const char *what, const char *const *subs) {
    CHECK_MSG(result == NULL, "%s: expected NULL", what);
    CHECK_MSG(dsc_ctx_status(ctx) == DSC_ERR_INVALID, "%s: status %s", what, dsc_status_string(dsc_ctx_status(ctx)));
    for (int i = 0; subs[i]; i++)
        CHECK_MSG(contains(dsc_ctx_errmsg(ctx), subs[i]), "%s: message \"%s\" lacks \"%s\"", what, dsc_ctx_errmsg(ctx),
                  subs[i]);
    dsc_ctx_clear_error(ctx);
}
#define SUBS(...) ((const char *const[]){__VA_ARGS__, NULL})

static void test_errors(void) {
    dsc_ctx_t *ctx = check_ctx_new(5);
    dsc_tensor_t *a23 = dsc_tensor_new_2d(ctx, DSC_F32, 2, 3), *a43 = dsc_tensor_new_2d(ctx, DSC_F32, 4, 3);
    dsc_tensor_t *a42 = dsc_tensor_new_2d(ctx, DSC_F32, 4, 2), *v2 = dsc_tensor_new_1d(ctx, DSC_F32, 2);
    dsc_tensor_t *d23 = dsc_tensor_new_2d(ctx, DSC_F64, 2, 3), *h23 = dsc_tensor_new_2d(ctx, DSC_F16, 2, 3);
    dsc_tensor_t *b23 = dsc_tensor_new_2d(ctx, DSC_BF16, 2, 3), *i23 = dsc_tensor_new_2d(ctx, DSC_I32, 2, 3);
    dsc_tensor_t *a6 = dsc_tensor_new_1d(ctx, DSC_F32, 6), *a3 = dsc_tensor_new_1d(ctx, DSC_F32, 3);

    expect_error(ctx, dsc_add(ctx, a23, a43), "add shapes", SUBS("dsc_add", "(2, 3)", "(4, 3)"));
    expect_error(ctx, dsc_sub(ctx, a43, a23), "sub shapes", SUBS("dsc_sub", "(4, 3)", "(2, 3)"));
    expect_error(ctx, dsc_mul(ctx, a6, a23), "mul same count, no suffix", SUBS("dsc_mul", "(6)", "(2, 3)"));
    expect_error(ctx, dsc_add(ctx, a23, v2), "add leading not trailing", SUBS("dsc_add", "(2, 3)", "(2)"));
    expect_error(ctx, dsc_matmul(ctx, a23, a42, false, false), "matmul K", SUBS("dsc_matmul", "(2, 3)", "(4, 2)"));
    expect_error(ctx, dsc_matmul(ctx, a23, a43, true, false), "matmul ta K", SUBS("dsc_matmul", "(2, 3)", "(4, 3)"));
    expect_error(ctx, dsc_matmul(ctx, a23, a3, false, false), "matmul 1-D b", SUBS("dsc_matmul", "(3)", "(2, 3)"));
    dsc_tensor_t *a223 = dsc_tensor_new_3d(ctx, DSC_F32, 2, 2, 3);
    expect_error(ctx, dsc_matmul(ctx, a223, a43, true, false), "matmul ta 3-D", SUBS("dsc_matmul", "(2, 2, 3)"));
    expect_error(ctx, dsc_bias_add(ctx, a23, v2), "bias_add", SUBS("dsc_bias_add", "(2, 3)", "(2)"));
    expect_error(ctx, dsc_bias_add(ctx, a23, a23), "bias_add 2-D bias", SUBS("dsc_bias_add", "(2, 3)"));
    expect_error(ctx, dsc_mse(ctx, a23, a6), "mse", SUBS("dsc_mse", "(2, 3)", "(6)"));
    expect_error(ctx, dsc_reshape(ctx, a23, 2, SHAPE(4, 2)), "reshape count", SUBS("dsc_reshape", "(2, 3)", "(4, 2)"));
    expect_error(ctx, dsc_view(ctx, a23, 2, SHAPE(-1, 4)), "view infer", SUBS("dsc_view", "(2, 3)", "(-1, 4)"));
    expect_error(ctx, dsc_reshape(ctx, a23, 2, SHAPE(-1, -1)), "reshape two -1", SUBS("dsc_reshape", "(-1, -1)"));
    expect_error(ctx, dsc_reshape(ctx, a23, 5, SHAPE(1, 1, 1, 2, 3)), "reshape 5 dims", SUBS("dsc_reshape", "5"));
    expect_error(ctx, dsc_transpose(ctx, a23, 0, 2), "transpose range", SUBS("dsc_transpose", "(2, 3)"));
    expect_error(ctx, dsc_transpose(ctx, a23, -3, 0), "transpose negative", SUBS("dsc_transpose", "(2, 3)"));
    expect_error(ctx, dsc_add(ctx, a23, d23), "dtype mix", SUBS("dsc_add", "f32", "f64"));
    expect_error(ctx, dsc_matmul(ctx, d23, a42, false, false), "matmul dtype mix", SUBS("dsc_matmul", "f64", "f32"));
    /* f16/bf16 are op dtypes; mixing them with f32 (or each other) is refused, naming both
     * tensors' dtypes and the explicit conversion */
    expect_error(ctx, dsc_add(ctx, h23, a23), "add f16 + f32", SUBS("dsc_add", "f16", "f32", "dsc_cast"));
    expect_error(ctx, dsc_mul(ctx, b23, h23), "mul bf16 * f16", SUBS("dsc_mul", "bf16", "f16", "dsc_cast"));
    dsc_tensor_t *b32 = dsc_tensor_new_2d(ctx, DSC_BF16, 3, 2);
    expect_error(ctx, dsc_matmul(ctx, a23, b32, false, false), "matmul f32 @ bf16",
                 SUBS("dsc_matmul", "f32", "bf16", "(2, 3)", "(3, 2)"));
    expect_error(ctx, dsc_bias_add(ctx, b23, a3), "bias_add bf16 + f32", SUBS("dsc_bias_add", "bf16", "f32"));
    CHECK(dsc_gelu(ctx, b23) && dsc_sum(ctx, h23) && dsc_transpose(ctx, h23, 0, 1) &&
          dsc_reshape(ctx, h23, 1, SHAPE(6)) && dsc_matmul(ctx, b23, b32, false, false));
    CHECK(dsc_ctx_status(ctx) == DSC_OK);
    expect_error(ctx, dsc_scale(ctx, i23, 2.0), "scale i32", SUBS("dsc_scale", "i32"));
    expect_error(ctx, dsc_cast(ctx, i23, DSC_F32), "cast from i32", SUBS("dsc_cast", "i32"));
    expect_error(ctx, dsc_cast(ctx, a23, DSC_I32), "cast to i32", SUBS("dsc_cast", "i32"));
    expect_error(ctx, dsc_cast(ctx, a23, (dsc_dtype_t)77), "cast to invalid", SUBS("dsc_cast", "77"));
    /* reshape of i32 (ids) is allowed and records nothing */
    dsc_tensor_t *ri = dsc_reshape(ctx, i23, 1, SHAPE(6));
    CHECK(ri && dsc_tensor_dtype(ri) == DSC_I32 && dsc_ctx_status(ctx) == DSC_OK);

    /* The first error sticks: a second failing op does not replace the message. */
    CHECK(dsc_add(ctx, a23, a43) == NULL);
    CHECK(dsc_matmul(ctx, a23, a42, false, false) == NULL);
    CHECK(contains(dsc_ctx_errmsg(ctx), "dsc_add") && !contains(dsc_ctx_errmsg(ctx), "dsc_matmul"));
    dsc_ctx_clear_error(ctx);

    /* NULL inputs propagate without a new error. */
    CHECK(dsc_matmul(ctx, NULL, a23, false, false) == NULL);
    CHECK(dsc_matmul(ctx, a23, NULL, false, false) == NULL);
    CHECK(dsc_add(ctx, NULL, a23) == NULL && dsc_sub(ctx, a23, NULL) == NULL && dsc_mul(ctx, NULL, NULL) == NULL);
    CHECK(dsc_bias_add(ctx, NULL, a3) == NULL && dsc_bias_add(ctx, a23, NULL) == NULL);
    CHECK(dsc_scale(ctx, NULL, 2) == NULL && dsc_relu(ctx, NULL) == NULL && dsc_gelu(ctx, NULL) == NULL);
    CHECK(dsc_tanh(ctx, NULL) == NULL && dsc_cast(ctx, NULL, DSC_F32) == NULL);
    CHECK(dsc_reshape(ctx, NULL, 1, SHAPE(6)) == NULL && dsc_view(ctx, NULL, 1, SHAPE(6)) == NULL);
    CHECK(dsc_transpose(ctx, NULL, 0, 1) == NULL);
    CHECK(dsc_sum(ctx, NULL) == NULL && dsc_mean(ctx, NULL) == NULL);
    CHECK(dsc_mse(ctx, NULL, a23) == NULL && dsc_mse(ctx, a23, NULL) == NULL);
    CHECK(dsc_gelu(ctx, dsc_add(ctx, dsc_matmul(ctx, NULL, a23, false, false), a23)) == NULL);
    CHECK(dsc_ctx_status(ctx) == DSC_OK && dsc_ctx_errmsg(ctx)[0] == '\0');
    /* A NULL context too. */
    CHECK(dsc_add(NULL, a23, a23) == NULL && dsc_matmul(NULL, a23, a43, false, true) == NULL);
    CHECK(dsc_sum(NULL, a23) == NULL && dsc_transpose(NULL, a23, 0, 1) == NULL);
    dsc_ctx_free(ctx);
}

static void test_no_grad_and_tape(void) {
    dsc_ctx_t *ctx = check_ctx_new(6);
    dsc_tensor_t *x = dsc_tensor_new_2d(ctx, DSC_F32, 3, 4), *w = dsc_tensor_new_2d(ctx, DSC_F32, 4, 2);
    dsc_tensor_fill_uniform(ctx, x, -1, 1);
    dsc_tensor_fill_uniform(ctx, w, -1, 1);
    /* No input requires grad: nothing recorded, outputs do not require grad. */
    dsc_tensor_t *y = dsc_matmul(ctx, x, w, false, false);
    CHECK(y && !dsc_tensor_requires_grad(y));
    dsc_tensor_set_requires_grad(w, true);
    dsc_ctx_no_grad_begin(ctx);
    dsc_tensor_t *z = dsc_gelu(ctx, dsc_matmul(ctx, x, w, false, false));
    CHECK(z && !dsc_tensor_requires_grad(z));
    dsc_ctx_no_grad_end(ctx);
    CHECK(dsc_autograd_backward(ctx, dsc_sum(ctx, z)) == DSC_ERR_INVALID); /* nothing recorded */
    dsc_ctx_clear_error(ctx);
    dsc_tensor_t *loss = dsc_sum(ctx, dsc_matmul(ctx, x, w, false, false));
    CHECK(loss && dsc_tensor_requires_grad(loss));
    CHECK_OK(dsc_autograd_backward(ctx, loss));
    CHECK(dsc_tensor_grad(w) != NULL && dsc_tensor_grad(x) == NULL);
    /* d sum(x @ w) / d w[k][j] = sum_i x[i][k] */
    float xv[12], gw[8];
    CHECK_OK(check_tensor_get(x, xv, DSC_F32, 12));
    CHECK_OK(check_tensor_get(dsc_tensor_grad(w), gw, DSC_F32, 8));
    for (int k = 0; k < 4; k++) {
        double s = 0;
        for (int i = 0; i < 3; i++) s += xv[i * 4 + k];
        CHECK(check_close(gw[k * 2], s, 1e-6, 1e-6) && check_close(gw[k * 2 + 1], s, 1e-6, 1e-6));
    }
    dsc_ctx_free(ctx);
}

/* ---- determinism ----------------------------------------------------------------- */

static void test_sum_determinism(void) {
    dsc_ctx_t *ctx = check_ctx_new(7);
    const int64_t n = 1000003;
    dsc_tensor_t *x = dsc_tensor_new_1d(ctx, DSC_F32, n);
    float *xv = malloc((size_t)n * sizeof *xv);
    /* wide dynamic range so that summation order shows in the last bits */
    for (int64_t i = 0; i < n; i++) xv[i] = (float)((dsc_ctx_rand_uniform(ctx) - 0.3) * pow(10.0, (double)(i % 7)));
    dsc_tensor_from_host(ctx, x, xv, (size_t)n * sizeof *xv);
    dsc_tensor_t *xd = dsc_cast(ctx, x, DSC_F64);
    int saved = omp_get_max_threads();
    double r[2][2];
    for (int t = 0; t < 2; t++) {
        omp_set_num_threads(t + 1);
        r[t][0] = dsc_tensor_item(dsc_sum(ctx, x));
        r[t][1] = dsc_tensor_item(dsc_sum(ctx, xd));
    }
    omp_set_num_threads(saved);
    CHECK_MSG(memcmp(&r[0][0], &r[1][0], sizeof(double)) == 0, "f32 sum 1 thread %.17g, 2 threads %.17g", r[0][0],
              r[1][0]);
    CHECK_MSG(memcmp(&r[0][1], &r[1][1], sizeof(double)) == 0, "f64 sum 1 thread %.17g, 2 threads %.17g", r[0][1],
              r[1][1]);
    long double ref = 0;
    for (int64_t i = 0; i < n; i++) ref += xv[i];
    CHECK(check_close(r[0][1], (double)ref, 1e-12, 1e-9));
    CHECK(check_close(r[0][0], (double)ref, 1e-6, 1e-9));
    free(xv);
    dsc_ctx_free(ctx);
}

int main(void) {
    test_grad_matmul();
    test_grad_binary();
    test_grad_elementwise();
    test_grad_shape_and_cast();
    test_grad_reduce();
    test_forward_values();
    test_cast_backward();
    test_f32_matches_f64();
    test_large();
    test_errors();
    test_no_grad_and_tape();
    test_sum_determinism();
    return check_finish("test_ops_basic");
}

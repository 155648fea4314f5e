/* Tests of the neural-network ops (softmax, layernorm, embedding, dropout, attention,
 * cross-entropy): finite-difference gradient checks in f64, hand-computed forward values,
 * a naive attention reference, f32 against f64, gradient accumulation, dropout
 * statistics, error messages, and bitwise independence of the thread count. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/internal.h"
#include "gradcheck.h"

#define GC_TOL 1e-6
#define MAX_IN 4

/* ---- op cases, shared by the gradient checks and the f32 / thread / accumulation runs ---- */


/* Host access to device tensors (the suite also runs on the guarded device). */
static void set_i32(dsc_tensor_t *t, int64_t i, int32_t v) {
    CHECK_OK(dsc__dev_from_host(t->device->ctx, (int32_t *)t->data + i, &v, sizeof v));
}
/* A host copy of t's bytes (zeroed, with a failed check, when the copy fails); free it. */
static void *host_copy(const dsc_tensor_t *t) {
    void *h = calloc(1, dsc_tensor_nbytes(t) + 1);
    if (h) CHECK_OK(dsc_tensor_to_host(t->device->ctx, t, h, dsc_tensor_nbytes(t)));
    return h;
}
/* memcmp of the first n_bytes of two tensors' data, through host copies. */
static int cmp_data(const dsc_tensor_t *a, const dsc_tensor_t *b, size_t n_bytes) {
    void *ha = host_copy(a), *hb = host_copy(b);
    int r = ha && hb ? memcmp(ha, hb, n_bytes) : -1;
    free(ha), free(hb);
    return r;
}
/* Sets every element of an f32 tensor to v. */
static void fill_f32(dsc_tensor_t *t, float v) {
    int64_t n = dsc_tensor_numel(t);
    float *h = malloc((size_t)n * sizeof *h + 1);
    for (int64_t i = 0; i < n; i++) h[i] = v;
    CHECK_OK(check_tensor_set(t, h, DSC_F32, (size_t)n));
    free(h);
}

static dsc_tensor_t *case_softmax(dsc_ctx_t *ctx, dsc_tensor_t **in, void *user) {
    (void)user;
    return dsc_softmax(ctx, in[0]);
}

typedef struct {
    bool bias;
    double eps;
} ln_case_t;

static dsc_tensor_t *case_layernorm(dsc_ctx_t *ctx, dsc_tensor_t **in, void *user) {
    const ln_case_t *c = user;
    return dsc_layernorm(ctx, in[0], in[1], c->bias ? in[2] : NULL, c->eps);
}

static dsc_tensor_t *case_embedding(dsc_ctx_t *ctx, dsc_tensor_t **in, void *user) {
    (void)user;
    return dsc_embedding(ctx, in[0], in[1]);
}

static dsc_tensor_t *case_dropout(dsc_ctx_t *ctx, dsc_tensor_t **in, void *user) {
    return dsc_dropout(ctx, in[0], *(const double *)user);
}

typedef struct {
    int n_head;
    double p;
} attn_case_t;

static dsc_tensor_t *case_attention(dsc_ctx_t *ctx, dsc_tensor_t **in, void *user) {
    const attn_case_t *c = user;
    return dsc_attention(ctx, in[0], c->n_head, c->p);
}

typedef struct {
    int32_t ignore_index;
    int n_force;       /* targets at these flat positions are set to ignore_index */
    int64_t force[4];
} ce_case_t;

static dsc_tensor_t *case_cross_entropy(dsc_ctx_t *ctx, dsc_tensor_t **in, void *user) {
    const ce_case_t *c = user;
    for (int k = 0; k < c->n_force; k++) set_i32(in[1], c->force[k], c->ignore_index);
    return dsc_cross_entropy(ctx, in[0], in[1], c->ignore_index);
}

static gradcheck_input_t f64_in(int ndim, int64_t d0, int64_t d1, int64_t d2, double lo, double hi) {
    gradcheck_input_t g = {DSC_F64, ndim, {d0, d1, d2, 0}, true, lo, hi};
    return g;
}

static gradcheck_input_t i32_in(int ndim, int64_t d0, int64_t d1, int64_t d2, double lo, double hi) {
    gradcheck_input_t g = {DSC_I32, ndim, {d0, d1, d2, 0}, false, lo, hi};
    return g;
}

static void expect_gradcheck(const char *name, gradcheck_fn fn, void *user, int n, const gradcheck_input_t *in,
                             uint64_t seed) {
    double worst = gradcheck(name, fn, user, n, in, GC_TOL, seed);
    CHECK_MSG(worst < GC_TOL, "%s: worst relative error %.3e", name, worst);
}

/* ---- gradient checks ---- */

static void test_gradcheck_softmax(void) {
    gradcheck_input_t a[1] = {f64_in(2, 3, 5, 0, -2, 2)};
    expect_gradcheck("softmax [3,5]", case_softmax, NULL, 1, a, 11);
    gradcheck_input_t b[1] = {f64_in(3, 2, 3, 7, -3, 3)};
    expect_gradcheck("softmax [2,3,7]", case_softmax, NULL, 1, b, 12);
    gradcheck_input_t c[1] = {f64_in(1, 1, 0, 0, -1, 1)};
    expect_gradcheck("softmax [1]", case_softmax, NULL, 1, c, 13);
}

static void test_gradcheck_layernorm(void) {
    ln_case_t with_bias = {true, 1e-5}, no_bias = {false, 1e-5};
    gradcheck_input_t a[3] = {f64_in(2, 4, 7, 0, -1, 1), f64_in(1, 7, 0, 0, 0.5, 1.5), f64_in(1, 7, 0, 0, -0.5, 0.5)};
    expect_gradcheck("layernorm [4,7] with bias", case_layernorm, &with_bias, 3, a, 21);
    gradcheck_input_t b[2] = {f64_in(3, 2, 3, 5, -2, 2), f64_in(1, 5, 0, 0, 0.5, 1.5)};
    expect_gradcheck("layernorm [2,3,5] without bias", case_layernorm, &no_bias, 2, b, 22);
    gradcheck_input_t c[3] = {f64_in(2, 3, 13, 0, -1, 1), f64_in(1, 13, 0, 0, -1.5, 1.5),
                              f64_in(1, 13, 0, 0, -1, 1)};
    expect_gradcheck("layernorm [3,13] with bias", case_layernorm, &with_bias, 3, c, 23);
    gradcheck_input_t d[2] = {f64_in(2, 5, 3, 0, -1, 1), f64_in(1, 3, 0, 0, 0.5, 1.5)};
    expect_gradcheck("layernorm [5,3] without bias", case_layernorm, &no_bias, 2, d, 24);
}

static void test_gradcheck_embedding(void) {
    /* 10 ids drawn from 4 rows: repeats are certain (pigeonhole). */
    gradcheck_input_t a[2] = {i32_in(2, 2, 5, 0, 0, 4), f64_in(2, 4, 3, 0, -1, 1)};
    expect_gradcheck("embedding ids [2,5] table [4,3]", case_embedding, NULL, 2, a, 31);
    gradcheck_input_t b[2] = {i32_in(3, 2, 2, 3, 0, 3), f64_in(2, 3, 5, 0, -1, 1)};
    expect_gradcheck("embedding ids [2,2,3] table [3,5]", case_embedding, NULL, 2, b, 32);
}

static void test_gradcheck_dropout(void) {
    double p = 0.3;
    gradcheck_input_t a[1] = {f64_in(2, 4, 25, 0, -1, 1)};
    expect_gradcheck("dropout p=0.3 [4,25]", case_dropout, &p, 1, a, 41);
    double p_half = 0.5;
    gradcheck_input_t b[1] = {f64_in(3, 2, 3, 7, -1, 1)};
    expect_gradcheck("dropout p=0.5 [2,3,7]", case_dropout, &p_half, 1, b, 42);
}

static void test_gradcheck_attention(void) {
    static const struct {
        int64_t b, t, c;
        int n_head;
        double p;
    } cfg[] = {
        {1, 1, 4, 1, 0},   /* T = 1 */
        {2, 1, 6, 3, 0},   /* T = 1, 3 heads */
        {2, 7, 6, 3, 0},   /* odd T, 3 heads */
        {1, 7, 5, 1, 0},   /* odd T, 1 head, odd C */
        {2, 4, 8, 2, 0},
        {1, 5, 4, 4, 0},   /* head size 1 */
        {2, 6, 6, 3, 0.2}, /* attention dropout */
    };
    for (size_t i = 0; i < sizeof cfg / sizeof cfg[0]; i++) {
        attn_case_t c = {cfg[i].n_head, cfg[i].p};
        gradcheck_input_t in[1] = {f64_in(3, cfg[i].b, cfg[i].t, 3 * cfg[i].c, -1.5, 1.5)};
        char name[96];
        snprintf(name, sizeof name, "attention B=%lld T=%lld C=%lld n_head=%d p=%g", (long long)cfg[i].b,
                 (long long)cfg[i].t, (long long)cfg[i].c, cfg[i].n_head, cfg[i].p);
        expect_gradcheck(name, case_attention, &c, 1, in, 50 + i);
    }
}

static void test_gradcheck_cross_entropy(void) {
    ce_case_t a_case = {-100, 2, {1, 4}};
    gradcheck_input_t a[2] = {f64_in(2, 6, 7, 0, -2, 2), i32_in(1, 6, 0, 0, 0, 7)};
    expect_gradcheck("cross_entropy [6,7], 2 ignored (-100)", case_cross_entropy, &a_case, 2, a, 61);
    /* ignore_index inside the class range: drawn targets equal to 2 are skipped. */
    ce_case_t b_case = {2, 1, {0}};
    gradcheck_input_t b[2] = {f64_in(3, 2, 3, 5, -3, 3), i32_in(2, 2, 3, 0, 0, 5)};
    expect_gradcheck("cross_entropy [2,3,5] ignore_index 2", case_cross_entropy, &b_case, 2, b, 62);
    ce_case_t c_case = {-1, 0, {0}};
    gradcheck_input_t c[2] = {f64_in(2, 1, 3, 0, -1, 1), i32_in(1, 1, 0, 0, 0, 3)};
    expect_gradcheck("cross_entropy [1,3]", case_cross_entropy, &c_case, 2, c, 63);
}

/* ---- running a case in a given dtype, for f32 / thread-count / accumulation comparisons ---- */

typedef struct {
    int64_t n_out;
    double *out;
    int64_t n_grad[MAX_IN];
    double *grad[MAX_IN]; /* NULL for non-differentiable inputs */
} result_t;

static void result_free(result_t *r) {
    free(r->out);
    for (int k = 0; k < MAX_IN; k++) free(r->grad[k]);
    memset(r, 0, sizeof *r);
}

static int64_t spec_numel(const gradcheck_input_t *in) {
    int64_t n = 1;
    for (int d = 0; d < in->ndim; d++) n *= in->shape[d];
    return n;
}

/* Runs fn with float inputs in dtype dt (values from `seed`), gradients pre-filled with
 * grad_init, back-propagates a fixed random upstream gradient; copies out and grads. */
static bool run_case(gradcheck_fn fn, void *user, int n, const gradcheck_input_t *spec, dsc_dtype_t dt, uint64_t seed,
                     double grad_init, result_t *res) {
    memset(res, 0, sizeof *res);
    dsc_ctx_t *ctx = check_ctx_new(seed);
    void *vals[MAX_IN] = {0}, *grads[MAX_IN] = {0};
    dsc_tensor_t *in[MAX_IN];
    size_t es = dsc_dtype_size(dt);
    bool ok = false;
    for (int k = 0; k < n; k++) {
        int64_t m = spec_numel(&spec[k]);
        dsc_ctx_set_rng_state(ctx, seed * 1000 + (uint64_t)k);
        if (spec[k].dtype == DSC_I32) {
            int32_t *v = malloc((size_t)m * sizeof *v + 4);
            for (int64_t i = 0; i < m; i++)
                v[i] = (int32_t)(spec[k].lo + floor(dsc_ctx_rand_uniform(ctx) * (spec[k].hi - spec[k].lo)));
            vals[k] = v;
            in[k] = dsc_tensor_wrap(ctx, DSC_I32, spec[k].ndim, spec[k].shape, v, NULL, false);
            continue;
        }
        double *tmp = malloc((size_t)m * sizeof *tmp + 8);
        for (int64_t i = 0; i < m; i++) tmp[i] = spec[k].lo + dsc_ctx_rand_uniform(ctx) * (spec[k].hi - spec[k].lo);
        vals[k] = malloc((size_t)m * es + 8);
        dsc_convert(vals[k], dt, tmp, DSC_F64, (size_t)m);
        if (spec[k].differentiable) {
            for (int64_t i = 0; i < m; i++) tmp[i] = grad_init;
            grads[k] = malloc((size_t)m * es + 8);
            dsc_convert(grads[k], dt, tmp, DSC_F64, (size_t)m);
        }
        free(tmp);
        in[k] = dsc_tensor_wrap(ctx, dt, spec[k].ndim, spec[k].shape, vals[k], grads[k], false);
    }
    dsc_ctx_set_rng_state(ctx, seed * 7 + 3);
    dsc_tensor_t *out = fn(ctx, in, user);
    CHECK_MSG(out != NULL, "run_case forward: %s", dsc_ctx_errmsg(ctx));
    if (out) {
        int64_t shape[DSC_MAX_DIMS];
        for (int d = 0; d < dsc_tensor_ndim(out); d++) shape[d] = dsc_tensor_dim(out, d);
        res->n_out = dsc_tensor_numel(out);
        double *r = malloc((size_t)res->n_out * sizeof *r + 8);
        dsc_ctx_set_rng_state(ctx, seed * 13 + 5);
        for (int64_t i = 0; i < res->n_out; i++) r[i] = 2 * dsc_ctx_rand_uniform(ctx) - 1;
        void *rd = malloc((size_t)res->n_out * es + 8);
        dsc_convert(rd, dt, r, DSC_F64, (size_t)res->n_out);
        dsc_tensor_t *rt = dsc_tensor_wrap(ctx, dt, dsc_tensor_ndim(out), shape, rd, NULL, false);
        res->out = malloc((size_t)res->n_out * sizeof(double) + 8);
        check_tensor_get(out, res->out, DSC_F64, (size_t)res->n_out);
        dsc_status_t rc = dsc__autograd_backward_from(ctx, out, rt);
        CHECK_MSG(rc == DSC_OK, "run_case backward: %s", dsc_ctx_errmsg(ctx));
        ok = rc == DSC_OK;
        for (int k = 0; k < n && ok; k++) {
            if (!grads[k]) continue;
            res->n_grad[k] = spec_numel(&spec[k]);
            res->grad[k] = malloc((size_t)res->n_grad[k] * sizeof(double) + 8);
            dsc_convert(res->grad[k], DSC_F64, grads[k], dt, (size_t)res->n_grad[k]);
        }
        free(r);
        free(rd);
    }
    for (int k = 0; k < n; k++) {
        free(vals[k]);
        free(grads[k]);
    }
    dsc_ctx_free(ctx);
    return ok;
}

typedef struct {
    const char *name;
    gradcheck_fn fn;
    void *user;
    int n;
    gradcheck_input_t in[MAX_IN];
} op_case_t;

static ln_case_t g_ln_bias = {true, 1e-5}, g_ln_nobias = {false, 1e-5};
static double g_p03 = 0.3;
static attn_case_t g_attn = {3, 0}, g_attn4 = {4, 0}, g_attn_drop = {4, 0.1}, g_attn_h1 = {1, 0};
static ce_case_t g_ce = {-100, 2, {0, 3}}, g_ce_big = {7, 0, {0}};

/* Small cases (f32 vs f64, accumulation). */
static const op_case_t *small_cases(int *count) {
    static op_case_t cases[8];
    int n = 0;
    cases[n++] = (op_case_t){"softmax", case_softmax, NULL, 1, {f64_in(2, 5, 9, 0, -3, 3)}};
    cases[n++] = (op_case_t){"layernorm+bias", case_layernorm, &g_ln_bias, 3,
                             {f64_in(2, 6, 11, 0, -2, 2), f64_in(1, 11, 0, 0, 0.5, 1.5), f64_in(1, 11, 0, 0, -1, 1)}};
    cases[n++] = (op_case_t){"layernorm", case_layernorm, &g_ln_nobias, 2,
                             {f64_in(3, 2, 3, 9, -2, 2), f64_in(1, 9, 0, 0, 0.5, 1.5)}};
    cases[n++] = (op_case_t){"embedding", case_embedding, NULL, 2, {i32_in(2, 3, 7, 0, 0, 5), f64_in(2, 5, 6, 0, -1, 1)}};
    cases[n++] = (op_case_t){"dropout", case_dropout, &g_p03, 1, {f64_in(2, 8, 13, 0, -1, 1)}};
    cases[n++] = (op_case_t){"attention", case_attention, &g_attn, 1, {f64_in(3, 2, 7, 18, -1, 1)}};
    cases[n++] = (op_case_t){"attention dropout", case_attention, &g_attn_drop, 1, {f64_in(3, 2, 9, 24, -1, 1)}};
    cases[n++] = (op_case_t){"cross_entropy", case_cross_entropy, &g_ce, 2,
                             {f64_in(2, 9, 11, 0, -3, 3), i32_in(1, 9, 0, 0, 0, 11)}};
    *count = n;
    return cases;
}

/* Cases large enough that every kernel's parallel loops really split. */
static const op_case_t *large_cases(int *count) {
    static op_case_t cases[7];
    int n = 0;
    cases[n++] = (op_case_t){"softmax", case_softmax, NULL, 1, {f64_in(2, 100, 501, 0, -4, 4)}};
    cases[n++] = (op_case_t){"layernorm+bias", case_layernorm, &g_ln_bias, 3,
                             {f64_in(2, 64, 777, 0, -2, 2), f64_in(1, 777, 0, 0, 0.5, 1.5), f64_in(1, 777, 0, 0, -1, 1)}};
    cases[n++] = (op_case_t){"embedding (repeated ids)", case_embedding, NULL, 2,
                             {i32_in(2, 3, 100, 0, 0, 10), f64_in(2, 10, 200, 0, -1, 1)}};
    cases[n++] = (op_case_t){"attention", case_attention, &g_attn4, 1, {f64_in(3, 2, 33, 144, -1, 1)}};
    cases[n++] = (op_case_t){"attention dropout", case_attention, &g_attn_drop, 1, {f64_in(3, 2, 31, 96, -1, 1)}};
    cases[n++] = (op_case_t){"attention 1 head", case_attention, &g_attn_h1, 1, {f64_in(3, 1, 40, 150, -1, 1)}};
    cases[n++] = (op_case_t){"cross_entropy", case_cross_entropy, &g_ce_big, 2,
                             {f64_in(2, 2000, 50, 0, -3, 3), i32_in(1, 2000, 0, 0, 0, 50)}};
    *count = n;
    return cases;
}

static void compare_results(const char *what, const char *name, const result_t *a, const result_t *b, int n_in,
                            double rel, double floor_) {
    char label[160];
    snprintf(label, sizeof label, "%s: %s output", what, name);
    CHECK_MSG(a->n_out == b->n_out, "%s", label);
    if (a->n_out == b->n_out) check_arrays_close(label, a->out, b->out, (size_t)a->n_out, rel, floor_);
    for (int k = 0; k < n_in; k++) {
        if (!a->grad[k] && !b->grad[k]) continue;
        snprintf(label, sizeof label, "%s: %s gradient of input %d", what, name, k);
        CHECK_MSG(a->grad[k] && b->grad[k], "%s", label);
        if (a->grad[k] && b->grad[k]) check_arrays_close(label, a->grad[k], b->grad[k], (size_t)a->n_grad[k], rel, floor_);
    }
}

static bool bitwise_equal(const result_t *a, const result_t *b, int n_in) {
    if (a->n_out != b->n_out || memcmp(a->out, b->out, (size_t)a->n_out * sizeof(double)) != 0) return false;
    for (int k = 0; k < n_in; k++) {
        if (!a->grad[k] != !b->grad[k]) return false;
        if (a->grad[k] && memcmp(a->grad[k], b->grad[k], (size_t)a->n_grad[k] * sizeof(double)) != 0) return false;
    }
    return true;
}

/* The f32 kernels agree with the f64 ones (the gradient checks cover f64 only). */
static void test_f32_matches_f64(void) {
    int n;
    const op_case_t *cases = small_cases(&n);
    for (int i = 0; i < n; i++) {
        result_t r64, r32;
        bool ok64 = run_case(cases[i].fn, cases[i].user, cases[i].n, cases[i].in, DSC_F64, 100 + i, 0, &r64);
        bool ok32 = run_case(cases[i].fn, cases[i].user, cases[i].n, cases[i].in, DSC_F32, 100 + i, 0, &r32);
        if (ok64 && ok32) compare_results("f32 vs f64", cases[i].name, &r32, &r64, cases[i].n, 2e-5, 1e-2);
        result_free(&r64);
        result_free(&r32);
    }
}

/* Backward adds into existing gradients: grad(init g0) - g0 == grad(init 0). */
static void test_backward_accumulates(void) {
    int n;
    const op_case_t *cases = small_cases(&n);
    for (int i = 0; i < n; i++) {
        result_t r0, r1;
        bool ok0 = run_case(cases[i].fn, cases[i].user, cases[i].n, cases[i].in, DSC_F64, 200 + i, 0, &r0);
        bool ok1 = run_case(cases[i].fn, cases[i].user, cases[i].n, cases[i].in, DSC_F64, 200 + i, 0.75, &r1);
        if (ok0 && ok1) {
            for (int k = 0; k < cases[i].n; k++)
                if (r1.grad[k])
                    for (int64_t j = 0; j < r1.n_grad[k]; j++) r1.grad[k][j] -= 0.75;
            compare_results("accumulate", cases[i].name, &r1, &r0, cases[i].n, 1e-9, 1.0);
        }
        result_free(&r0);
        result_free(&r1);
    }
}

/* Forward and backward are bitwise equal with 1 and 2 OpenMP threads. */
static void test_thread_count_independence(void) {
    int saved = omp_get_max_threads();
    int n;
    const op_case_t *cases = large_cases(&n);
    for (int i = 0; i < n; i++) {
        for (int d = 0; d < 2; d++) {
            dsc_dtype_t dt = d ? DSC_F64 : DSC_F32;
            result_t r1, r2;
            omp_set_num_threads(1);
            bool ok1 = run_case(cases[i].fn, cases[i].user, cases[i].n, cases[i].in, dt, 300 + i, 0.5, &r1);
            omp_set_num_threads(2);
            bool ok2 = run_case(cases[i].fn, cases[i].user, cases[i].n, cases[i].in, dt, 300 + i, 0.5, &r2);
            CHECK_MSG(ok1 && ok2 && bitwise_equal(&r1, &r2, cases[i].n),
                      "%s (%s): results differ between 1 and 2 threads", cases[i].name, dsc_dtype_name(dt));
            result_free(&r1);
            result_free(&r2);
        }
    }
    omp_set_num_threads(saved);
}

/* ---- forward values ---- */

static dsc_tensor_t *tensor_from(dsc_ctx_t *ctx, dsc_dtype_t dt, int ndim, const int64_t *shape, const double *v) {
    dsc_tensor_t *t = dsc_tensor_new(ctx, dt, ndim, shape);
    check_tensor_set(t, v, DSC_F64, (size_t)dsc_tensor_numel(t));
    return t;
}

static void to_double(dsc_tensor_t *t, double *dst) {
    check_tensor_get(t, dst, DSC_F64, (size_t)dsc_tensor_numel(t));
}

static void test_softmax_values(void) {
    dsc_ctx_t *ctx = check_ctx_new(1);
    double e1 = exp(1.0), e2 = exp(2.0), e3 = exp(3.0), z = e1 + e2 + e3;
    double want[6] = {e1 / z, e2 / z, e3 / z, 1.0 / 3, 1.0 / 3, 1.0 / 3};
    /* Second row: huge equal logits must not overflow (max subtraction). */
    double x[6] = {1, 2, 3, 1000, 1000, 1000};
    int64_t shape[2] = {2, 3};
    for (int d = 0; d < 2; d++) {
        dsc_dtype_t dt = d ? DSC_F64 : DSC_F32;
        dsc_tensor_t *y = dsc_softmax(ctx, tensor_from(ctx, dt, 2, shape, x));
        double got[6];
        CHECK(y != NULL && dsc_tensor_ndim(y) == 2 && dsc_tensor_dim(y, 1) == 3);
        if (!y) continue;
        to_double(y, got);
        check_arrays_close(d ? "softmax [1,2,3] f64" : "softmax [1,2,3] f32", got, want, 6, d ? 1e-15 : 1e-6, 0);
    }
    CHECK(dsc_ctx_status(ctx) == DSC_OK);
    dsc_ctx_free(ctx);
}

static void test_layernorm_values(void) {
    dsc_ctx_t *ctx = check_ctx_new(1);
    /* Row [1,2,3,4]: mean 2.5, biased var 1.25, xhat = (x - 2.5) / sqrt(1.25).
     * Row [2,2,6,6]: mean 4, biased var 4, xhat = [-1,-1,1,1]. */
    double x[8] = {1, 2, 3, 4, 2, 2, 6, 6}, w[4] = {1, 1, 2, 0.5}, b[4] = {0, 1, 0, -1};
    double xh2[4] = {-1, -1, 1, 1};
    double xh[4] = {-1.3416407864998738, -0.4472135954999579, 0.4472135954999579, 1.3416407864998738};
    double want_b[8], want_nb[8];
    for (int j = 0; j < 4; j++) {
        want_nb[j] = xh[j] * w[j];
        want_b[j] = want_nb[j] + b[j];
        want_nb[4 + j] = xh2[j] * w[j];
        want_b[4 + j] = want_nb[4 + j] + b[j];
    }
    int64_t sx[2] = {2, 4}, sw[1] = {4};
    for (int d = 0; d < 2; d++) {
        dsc_dtype_t dt = d ? DSC_F64 : DSC_F32;
        double tol = d ? 1e-14 : 1e-6, got[8];
        dsc_tensor_t *xt = tensor_from(ctx, dt, 2, sx, x), *wt = tensor_from(ctx, dt, 1, sw, w);
        dsc_tensor_t *y = dsc_layernorm(ctx, xt, wt, tensor_from(ctx, dt, 1, sw, b), 0.0);
        CHECK(y != NULL);
        if (y) {
            to_double(y, got);
            check_arrays_close("layernorm values with bias", got, want_b, 8, tol, 1e-6);
        }
        y = dsc_layernorm(ctx, xt, wt, NULL, 0.0);
        CHECK(y != NULL);
        if (y) {
            to_double(y, got);
            check_arrays_close("layernorm values without bias", got, want_nb, 8, tol, 1e-6);
        }
    }
    /* Saved for backward: mean and rstd per row, in arena tensors of x's dtype. */
    {
        dsc_tensor_t *xt = tensor_from(ctx, DSC_F64, 2, sx, x), *wt = tensor_from(ctx, DSC_F64, 1, sw, w);
        dsc_tensor_set_requires_grad(xt, true);
        dsc_tensor_t *y = dsc_layernorm(ctx, xt, wt, NULL, 0.0);
        CHECK(y && y->producer && y->producer->saved[0] && y->producer->saved[1]);
        if (y && y->producer && y->producer->saved[0] && y->producer->saved[1]) {
            double m[2] = {NAN, NAN}, rs[2] = {NAN, NAN};
            CHECK(dsc_tensor_numel(y->producer->saved[0]) == 2 && dsc_tensor_numel(y->producer->saved[1]) == 2);
            CHECK_OK(check_tensor_get(y->producer->saved[0], m, DSC_F64, 2));
            CHECK_OK(check_tensor_get(y->producer->saved[1], rs, DSC_F64, 2));
            CHECK(m[0] == 2.5 && m[1] == 4.0 && check_close(rs[0], 1 / sqrt(1.25), 1e-15, 0) && rs[1] == 0.5);
        }
    }
    /* eps enters under the square root: a constant row scaled by 1/sqrt(eps) stays 0; a
     * row [-1, 1] (var 1) with eps 3 gives +-1/2. */
    double x2[2] = {-1, 1}, w2[2] = {1, 1}, want2[2] = {-0.5, 0.5}, got2[2];
    int64_t s2[2] = {1, 2}, sw2[1] = {2};
    dsc_tensor_t *y2 = dsc_layernorm(ctx, tensor_from(ctx, DSC_F64, 2, s2, x2), tensor_from(ctx, DSC_F64, 1, sw2, w2),
                                     NULL, 3.0);
    CHECK(y2 != NULL);
    if (y2) {
        to_double(y2, got2);
        check_arrays_close("layernorm eps", got2, want2, 2, 1e-15, 0);
    }
    CHECK(dsc_ctx_status(ctx) == DSC_OK);
    dsc_ctx_free(ctx);
}

static void test_embedding_values(void) {
    dsc_ctx_t *ctx = check_ctx_new(1);
    double table[8] = {0, 1, 10, 11, 20, 21, 30, 31};
    int64_t st[2] = {4, 2};
    dsc_tensor_t *ids = dsc_tensor_new_2d(ctx, DSC_I32, 2, 3);
    int32_t idv[6] = {3, 0, 3, 1, 2, 2};
    CHECK_OK(check_tensor_set(ids, idv, DSC_I32, sizeof idv / sizeof idv[0]));
    for (int d = 0; d < 2; d++) {
        dsc_dtype_t dt = d ? DSC_F64 : DSC_F32;
        dsc_tensor_t *out = dsc_embedding(ctx, ids, tensor_from(ctx, dt, 2, st, table));
        CHECK(out != NULL && dsc_tensor_ndim(out) == 3 && dsc_tensor_dim(out, 0) == 2 && dsc_tensor_dim(out, 1) == 3 &&
              dsc_tensor_dim(out, 2) == 2 && dsc_tensor_dtype(out) == dt);
        if (!out) continue;
        double got[12], want[12];
        to_double(out, got);
        for (int i = 0; i < 6; i++) {
            want[2 * i] = table[2 * idv[i]];
            want[2 * i + 1] = table[2 * idv[i] + 1];
        }
        CHECK(memcmp(got, want, sizeof got) == 0);
    }
    /* Gradient of a repeated id: rows of dout summed. */
    dsc_tensor_t *tab = tensor_from(ctx, DSC_F64, 2, st, table);
    dsc_tensor_set_requires_grad(tab, true);
    dsc_tensor_t *out = dsc_embedding(ctx, ids, tab);
    double up[12];
    for (int i = 0; i < 12; i++) up[i] = i + 1;
    int64_t so[3] = {2, 3, 2};
    CHECK_OK(dsc__autograd_backward_from(ctx, out, tensor_from(ctx, DSC_F64, 3, so, up)));
    dsc_tensor_t *g = dsc_tensor_grad(tab);
    CHECK(g != NULL);
    if (g) {
        /* id 3 at positions 0, 2; id 0 at 1; id 1 at 3; id 2 at 4, 5. */
        double want[8] = {3, 4, 7, 8, 9 + 11, 10 + 12, 1 + 5, 2 + 6}, got[8];
        to_double(g, got);
        check_arrays_close("embedding dtable", got, want, 8, 0, 0);
    }
    dsc_ctx_free(ctx);
}

static void test_cross_entropy_values(void) {
    dsc_ctx_t *ctx = check_ctx_new(1);
    for (int d = 0; d < 2; d++) {
        dsc_dtype_t dt = d ? DSC_F64 : DSC_F32;
        double tol = d ? 1e-14 : 1e-6;
        /* Uniform rows over V = 7 (at two offsets): loss = log 7 whatever the target. */
        double x[14];
        for (int j = 0; j < 7; j++) {
            x[j] = 0.3;
            x[7 + j] = 50.0;
        }
        int64_t sx[2] = {2, 7};
        dsc_tensor_t *tg = dsc_tensor_new_1d(ctx, DSC_I32, 2);
        set_i32(tg, 0, 4);
        set_i32(tg, 1, 0);
        dsc_tensor_t *loss = dsc_cross_entropy(ctx, tensor_from(ctx, dt, 2, sx, x), tg, -100);
        CHECK(loss != NULL && dsc_tensor_numel(loss) == 1 && dsc_tensor_dtype(loss) == dt);
        CHECK_MSG(check_close(dsc_tensor_item(loss), log(7.0), tol, 0), "uniform CE %.17g vs log 7", dsc_tensor_item(loss));
        /* Logits [0, log 3]: p = [1/4, 3/4]. Row 0 target 0 -> log 4; row 1 target 1 -> log(4/3);
         * row 2 ignored. Mean over 2 rows. */
        double y[6] = {0, log(3.0), 0, log(3.0), 5, -5};
        int64_t sy[2] = {3, 2};
        dsc_tensor_t *tg2 = dsc_tensor_new_1d(ctx, DSC_I32, 3);
        int32_t tv[3] = {0, 1, -1};
        CHECK_OK(check_tensor_set(tg2, tv, DSC_I32, sizeof tv / sizeof tv[0]));
        loss = dsc_cross_entropy(ctx, tensor_from(ctx, dt, 2, sy, y), tg2, -1);
        double want = (log(4.0) + log(4.0 / 3.0)) / 2;
        CHECK_MSG(loss && check_close(dsc_tensor_item(loss), want, tol, 0), "CE [0, log 3]: %.17g vs %.17g",
                  dsc_tensor_item(loss), want);
    }
    /* Every target ignored: loss 0, zero gradient. */
    double x[6] = {1, 2, 3, 4, 5, 6};
    int64_t sx[2] = {2, 3};
    dsc_tensor_t *lg = tensor_from(ctx, DSC_F64, 2, sx, x);
    dsc_tensor_set_requires_grad(lg, true);
    dsc_tensor_t *tg = dsc_tensor_new_1d(ctx, DSC_I32, 2);
    set_i32(tg, 0, -100);
    set_i32(tg, 1, -100);
    dsc_tensor_t *loss = dsc_cross_entropy(ctx, lg, tg, -100);
    CHECK(loss != NULL && dsc_tensor_item(loss) == 0.0);
    CHECK_OK(dsc_autograd_backward(ctx, loss));
    dsc_tensor_t *g = dsc_tensor_grad(lg);
    CHECK(g != NULL);
    if (g)
        for (int i = 0; i < 6; i++) CHECK(check_tensor_at(g, i) == 0.0);
    /* Gradient values: (p - onehot) / count for the counted rows, 0 for ignored rows. */
    dsc_ctx_end_step(ctx);
    double y[6] = {0, log(3.0), 0, log(3.0), 5, -5};
    int64_t sy[2] = {3, 2};
    lg = tensor_from(ctx, DSC_F64, 2, sy, y);
    dsc_tensor_set_requires_grad(lg, true);
    tg = dsc_tensor_new_1d(ctx, DSC_I32, 3);
    int32_t tv[3] = {0, 1, -1};
    CHECK_OK(check_tensor_set(tg, tv, DSC_I32, sizeof tv / sizeof tv[0]));
    CHECK_OK(dsc_autograd_backward(ctx, dsc_cross_entropy(ctx, lg, tg, -1)));
    g = dsc_tensor_grad(lg);
    double want_g[6] = {(0.25 - 1) / 2, 0.75 / 2, 0.25 / 2, (0.75 - 1) / 2, 0, 0}, got_g[6];
    CHECK(g != NULL);
    if (g) {
        to_double(g, got_g);
        check_arrays_close("CE gradient", got_g, want_g, 6, 1e-14, 1e-12);
    }
    dsc_ctx_free(ctx);
}

/* Naive attention in double, for checking the head layout and scaling. */
static void attention_reference(int64_t B, int64_t T, int64_t C, int64_t H, const double *qkv, double *out) {
    int64_t hs = C / H;
    double *p = malloc((size_t)T * sizeof *p);
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t t = 0; t < T; t++) {
                const double *q = qkv + (b * T + t) * 3 * C + h * hs;
                double mx = -INFINITY, z = 0;
                for (int64_t u = 0; u <= t; u++) {
                    const double *k = qkv + (b * T + u) * 3 * C + C + h * hs;
                    double s = 0;
                    for (int64_t i = 0; i < hs; i++) s += q[i] * k[i];
                    p[u] = s / sqrt((double)hs);
                    mx = fmax(mx, p[u]);
                }
                for (int64_t u = 0; u <= t; u++) z += (p[u] = exp(p[u] - mx));
                for (int64_t i = 0; i < hs; i++) {
                    double o = 0;
                    for (int64_t u = 0; u <= t; u++) o += p[u] / z * qkv[(b * T + u) * 3 * C + 2 * C + h * hs + i];
                    out[(b * T + t) * C + h * hs + i] = o;
                }
            }
    free(p);
}

static void test_attention_values(void) {
    dsc_ctx_t *ctx = check_ctx_new(5);
    /* Against the naive reference, several shapes. */
    static const int64_t cfg[][4] = {{2, 5, 6, 3}, {1, 7, 8, 2}, {1, 4, 5, 1}, {3, 3, 4, 4}};
    for (size_t c = 0; c < sizeof cfg / sizeof cfg[0]; c++) {
        int64_t B = cfg[c][0], T = cfg[c][1], C = cfg[c][2], H = cfg[c][3];
        int64_t s[3] = {B, T, 3 * C};
        dsc_tensor_t *qkv = dsc_tensor_new(ctx, DSC_F64, 3, s);
        dsc_tensor_fill_uniform(ctx, qkv, -2, 2);
        double *want = malloc((size_t)(B * T * C) * sizeof *want);
        double *qh = host_copy(qkv);
        attention_reference(B, T, C, H, qh, want);
        dsc_tensor_t *out = dsc_attention(ctx, qkv, (int)H, 0.0);
        CHECK(out != NULL && dsc_tensor_ndim(out) == 3 && dsc_tensor_dim(out, 2) == C);
        if (out) {
            double *oh = host_copy(out);
            check_arrays_close("attention vs reference", oh, want, (size_t)(B * T * C), 1e-13, 1e-12);
            free(oh);
        }
        free(want), free(qh);
    }
    /* T = 1: the only probability is exactly 1, so out == v bit for bit. */
    for (int d = 0; d < 2; d++) {
        dsc_dtype_t dt = d ? DSC_F64 : DSC_F32;
        int64_t s[3] = {3, 1, 12};
        dsc_tensor_t *qkv = dsc_tensor_new(ctx, dt, 3, s);
        dsc_tensor_fill_uniform(ctx, qkv, -3, 3);
        dsc_tensor_t *out = dsc_attention(ctx, qkv, 2, 0.0);
        CHECK(out != NULL);
        if (!out) continue;
        size_t es = dsc_dtype_size(dt);
        bool same = true;
        char *oh = host_copy(out), *qh = host_copy(qkv);
        for (int b = 0; b < 3; b++)
            same &= memcmp(oh + (size_t)b * 4 * es, qh + ((size_t)b * 12 + 8) * es, 4 * es) == 0;
        free(oh), free(qh);
        CHECK_MSG(same, "attention with T=1 must return v exactly (%s)", dsc_dtype_name(dt));
    }
    /* Causality: changing token 4's q, k, v leaves outputs at t < 4 bitwise unchanged. */
    {
        int64_t B = 2, T = 6, C = 6, s[3] = {B, T, 3 * C};
        dsc_tensor_t *qkv = dsc_tensor_new(ctx, DSC_F32, 3, s);
        dsc_tensor_fill_uniform(ctx, qkv, -1, 1);
        dsc_tensor_t *out1 = dsc_attention(ctx, qkv, 3, 0.0);
        float *qh = host_copy(qkv);
        for (int64_t b = 0; b < B; b++)
            for (int64_t j = 0; j < 3 * C; j++) qh[(b * T + 4) * 3 * C + j] += 0.5f + (float)j;
        CHECK_OK(dsc_tensor_from_host(ctx, qkv, qh, dsc_tensor_nbytes(qkv)));
        free(qh);
        dsc_tensor_t *out2 = dsc_attention(ctx, qkv, 3, 0.0);
        CHECK(out1 && out2);
        float *h1 = out1 ? host_copy(out1) : NULL, *h2 = out2 ? host_copy(out2) : NULL;
        if (out1 && out2)
            for (int64_t b = 0; b < B; b++) {
                const float *o1 = h1 + b * T * C, *o2 = h2 + b * T * C;
                CHECK_MSG(memcmp(o1, o2, 4 * C * sizeof(float)) == 0, "batch %lld: earlier outputs changed", (long long)b);
                CHECK_MSG(memcmp(o1 + 4 * C, o2 + 4 * C, C * sizeof(float)) != 0, "batch %lld: output 4 unchanged",
                          (long long)b);
            }
        free(h1), free(h2);
    }
    /* Saved for backward: only the per-row log-sum-exp [B, H, T] (no [B, H, T, T] tensor),
     * equal to log sum_{j<=i} exp(q_i . k_j / sqrt(hd)) computed here; with dropout too. */
    {
        int64_t B = 2, T = 5, H = 3, C = 6, s[3] = {B, T, 3 * C};
        double p = 0.4;
        dsc_tensor_t *qkv = dsc_tensor_new(ctx, DSC_F64, 3, s);
        dsc_tensor_fill_uniform(ctx, qkv, -1, 1);
        dsc_tensor_set_requires_grad(qkv, true);
        dsc_tensor_t *out = dsc_attention(ctx, qkv, (int)H, p);
        dsc_node_t *node = out ? out->producer : NULL;
        CHECK(node && node->saved[0] && !node->saved[1] && !node->saved[2] && !node->saved[3]);
        if (node && node->saved[0]) {
            CHECK(dsc_tensor_ndim(node->saved[0]) == 3 && dsc_tensor_numel(node->saved[0]) == B * H * T &&
                  dsc_tensor_dtype(node->saved[0]) == DSC_F64);
            double *lse = host_copy(node->saved[0]), *x = host_copy(qkv);
            int bad = 0;
            for (int64_t b = 0; b < B; b++)
                for (int64_t h = 0; h < H; h++)
                    for (int64_t i = 0; i < T; i++) {
                        double z = 0;
                        for (int64_t j = 0; j <= i; j++) {
                            double dot = 0;
                            for (int64_t d = 0; d < C / H; d++)
                                dot += x[(b * T + i) * 3 * C + h * (C / H) + d] * x[(b * T + j) * 3 * C + C + h * (C / H) + d];
                            z += exp(dot / sqrt((double)(C / H)));
                        }
                        if (!check_close(lse[(b * H + h) * T + i], log(z), 1e-14, 1e-14)) bad++;
                    }
            CHECK_MSG(bad == 0, "saved attention log-sum-exp: %d bad entries", bad);
            free(lse), free(x);
        }
    }
    /* Eval mode ignores attention dropout: equal bitwise to attn_dropout = 0. */
    {
        int64_t s[3] = {2, 5, 12};
        dsc_tensor_t *qkv = dsc_tensor_new(ctx, DSC_F64, 3, s);
        dsc_tensor_fill_uniform(ctx, qkv, -1, 1);
        dsc_tensor_t *ref = dsc_attention(ctx, qkv, 2, 0.0);
        dsc_ctx_set_training(ctx, false);
        dsc_tensor_t *ev = dsc_attention(ctx, qkv, 2, 0.5);
        dsc_ctx_set_training(ctx, true);
        dsc_tensor_t *tr = dsc_attention(ctx, qkv, 2, 0.5);
        CHECK(ref && ev && tr);
        if (ref && ev && tr) {
            double *hr = host_copy(ref), *he = host_copy(ev), *ht = host_copy(tr);
            CHECK(memcmp(hr, he, 40 * sizeof(double)) == 0);
            CHECK(memcmp(hr, ht, 40 * sizeof(double)) != 0);
            free(hr), free(he), free(ht);
        }
    }
    /* Dropout on the probabilities with T = 1: each head's output is 0 or v / (1-p), and the
     * fraction dropped is p within 3 sigma. */
    {
        int64_t B = 4000, s[3] = {B, 1, 6};
        double p = 0.25;
        dsc_tensor_t *qkv = dsc_tensor_new(ctx, DSC_F64, 3, s);
        dsc_tensor_fill_uniform(ctx, qkv, 0.5, 1.5); /* v never 0 */
        dsc_tensor_t *out = dsc_attention(ctx, qkv, 2, p);
        CHECK(out != NULL);
        int64_t dropped = 0, bad = 0;
        double *oh = out ? host_copy(out) : NULL, *qh = host_copy(qkv);
        for (int64_t i = 0; out && i < B * 2; i++) {
            double o = oh[i], v = qh[(i / 2) * 6 + 4 + i % 2];
            if (o == 0) dropped++;
            else if (!check_close(o, v / (1 - p), 1e-15, 0)) bad++;
        }
        double frac = (double)dropped / (double)(B * 2), sigma = sqrt(p * (1 - p) / (double)(B * 2));
        CHECK_MSG(bad == 0, "%lld kept heads not scaled by 1/(1-p)", (long long)bad);
        CHECK_MSG(fabs(frac - p) < 3 * sigma, "attention dropout fraction %.4f vs p %.2f", frac, p);
        free(oh);
        free(qh);
    }
    CHECK(dsc_ctx_status(ctx) == DSC_OK);
    dsc_ctx_free(ctx);
}

/* ---- dropout ---- */

static void test_dropout_behaviour(void) {
    dsc_ctx_t *ctx = check_ctx_new(99);
    const int64_t n = 100000;
    const double p = 0.3;
    dsc_tensor_t *x = dsc_tensor_new_1d(ctx, DSC_F32, n);
    fill_f32(x, 1.0f);
    uint64_t seed0, off0;
    dsc_ctx_dropout_stream(ctx, &seed0, &off0);
    CHECK(seed0 == 99 && off0 == 0); /* dsc_ctx_seed starts the stream at (seed, 0) */
    dsc_tensor_t *y1 = dsc_dropout(ctx, x, p);
    uint64_t seed1, off1;
    dsc_ctx_dropout_stream(ctx, &seed1, &off1);
    CHECK(seed1 == seed0 && off1 == off0 + (uint64_t)n); /* n = 100000 values, a multiple of 4 */
    CHECK(y1 != NULL && y1 != x && dsc_tensor_numel(y1) == n);
    if (y1) {
        int64_t zeros = 0, bad = 0;
        float *h1 = host_copy(y1);
        for (int64_t i = 0; i < n; i++) {
            float v = h1[i];
            if (v == 0) zeros++;
            else if (v != (float)(1.0 / (1.0 - p))) bad++;
        }
        double frac = (double)zeros / (double)n, sigma = sqrt(p * (1 - p) / (double)n);
        CHECK_MSG(fabs(frac - p) < 3 * sigma, "dropout zero fraction %.5f vs p %.2f (3 sigma %.5f)", frac, p, 3 * sigma);
        CHECK_MSG(bad == 0, "%lld kept elements not equal to 1/(1-p)", (long long)bad);
        free(h1);
    }
    /* Same stream position -> identical mask; advanced position -> a different one. */
    dsc_ctx_set_dropout_stream(ctx, seed0, off0);
    dsc_tensor_t *y2 = dsc_dropout(ctx, x, p);
    CHECK(y1 && y2 && cmp_data(y1, y2, (size_t)n * sizeof(float)) == 0);
    dsc_tensor_t *y3 = dsc_dropout(ctx, x, p);
    CHECK(y1 && y3 && cmp_data(y1, y3, (size_t)n * sizeof(float)) != 0);
    /* Same seed in a fresh context -> the same mask. */
    dsc_ctx_t *ctx2 = check_ctx_new(99);
    dsc_tensor_t *x2 = dsc_tensor_new_1d(ctx2, DSC_F32, n);
    fill_f32(x2, 1.0f);
    dsc_tensor_t *y4 = dsc_dropout(ctx2, x2, p);
    CHECK(y1 && y4 && cmp_data(y1, y4, (size_t)n * sizeof(float)) == 0);
    dsc_ctx_free(ctx2);
    /* Identity in eval mode and for p == 0 (no draws from either generator). */
    dsc_ctx_set_training(ctx, false);
    uint64_t state = dsc_ctx_rng_state(ctx), off_before;
    dsc_ctx_dropout_stream(ctx, NULL, &off_before);
    CHECK(dsc_dropout(ctx, x, p) == x);
    dsc_ctx_set_training(ctx, true);
    CHECK(dsc_dropout(ctx, x, 0.0) == x);
    CHECK(dsc_ctx_rng_state(ctx) == state);
    dsc_ctx_dropout_stream(ctx, NULL, &off1);
    CHECK(off1 == off_before);
    /* No mask is saved for backward: only the stream position, and one output's bytes. */
    {
        dsc_tensor_set_requires_grad(x, true);
        const int64_t before = (int64_t)dsc_ctx_mem_stats(ctx, DSC_MEM_ACTIVATIONS).live_bytes;
        dsc_tensor_t *y = dsc_dropout(ctx, x, p);
        const int64_t grew = (int64_t)dsc_ctx_mem_stats(ctx, DSC_MEM_ACTIVATIONS).live_bytes - before;
        dsc_node_t *node = y ? y->producer : NULL;
        CHECK(node && !node->saved[0] && node->i[0] == (int64_t)seed0 && node->f[0] == p);
        CHECK_MSG(grew < n * (int64_t)sizeof(float) + 4096, "dropout kept %lld bytes for %lld floats", (long long)grew,
                  (long long)n);
        dsc_tensor_set_requires_grad(x, false);
    }
    /* Backward: dx = dy * mask, in f64. */
    dsc_tensor_t *xd = dsc_tensor_new_1d(ctx, DSC_F64, 1000);
    dsc_tensor_fill_uniform(ctx, xd, 1, 2);
    dsc_tensor_set_requires_grad(xd, true);
    dsc_tensor_t *yd = dsc_dropout(ctx, xd, 0.5);
    dsc_tensor_t *ones = dsc_tensor_new_1d(ctx, DSC_F64, 1000);
    double one_h[1000];
    for (int i = 0; i < 1000; i++) one_h[i] = 1.0;
    CHECK_OK(check_tensor_set(ones, one_h, DSC_F64, 1000));
    CHECK_OK(dsc__autograd_backward_from(ctx, yd, ones));
    int bad = 0;
    double *yh = yd ? host_copy(yd) : NULL, *xh = host_copy(xd), *gh = yd ? host_copy(dsc_tensor_grad(xd)) : NULL;
    for (int i = 0; yd && i < 1000; i++) {
        double m = yh[i] / xh[i];
        if (m != 0 && m != 2) bad++;
        if (gh[i] != (m == 0 ? 0.0 : 2.0)) bad++;
    }
    free(yh), free(xh), free(gh);
    CHECK_MSG(bad == 0, "dropout backward: %d elements wrong", bad);
    CHECK(dsc_ctx_status(ctx) == DSC_OK);
    dsc_ctx_free(ctx);
}

/* ---- errors ---- */

static bool has(const char *msg, const char *part) { return strstr(msg, part) != NULL; }

#define EXPECT_ERROR(ctx, expr, ...)                                                                      \
    do {                                                                                                  \
        dsc_ctx_clear_error(ctx);                                                                         \
        dsc_tensor_t *r_ = (expr);                                                                        \
        const char *m_ = dsc_ctx_errmsg(ctx);                                                             \
        const char *parts_[] = {__VA_ARGS__};                                                             \
        bool ok_ = r_ == NULL && dsc_ctx_status(ctx) == DSC_ERR_INVALID;                                  \
        for (size_t i_ = 0; i_ < sizeof parts_ / sizeof parts_[0]; i_++) ok_ = ok_ && has(m_, parts_[i_]); \
        CHECK_MSG(ok_, "%s -> \"%s\"", #expr, m_);                                                        \
        dsc_ctx_clear_error(ctx);                                                                         \
    } while (0)

static void test_errors(void) {
    dsc_ctx_t *ctx = check_ctx_new(3);
    /* Embedding: an id out of range names its flat position and value. */
    dsc_tensor_t *table = dsc_tensor_new_2d(ctx, DSC_F32, 5, 4);
    dsc_tensor_t *ids = dsc_tensor_new_2d(ctx, DSC_I32, 2, 3);
    dsc_tensor_set_name(ids, "tokens");
    set_i32(ids, 4, 9);
    EXPECT_ERROR(ctx, dsc_embedding(ctx, ids, table), "dsc_embedding", "tokens", "position 4", "9", "[0, 5)");
    set_i32(ids, 4, 0);
    set_i32(ids, 1, -1);
    EXPECT_ERROR(ctx, dsc_embedding(ctx, ids, table), "dsc_embedding", "position 1", "-1");
    set_i32(ids, 1, 0);
    EXPECT_ERROR(ctx, dsc_embedding(ctx, table, table), "dsc_embedding", "ids", "i32");
    EXPECT_ERROR(ctx, dsc_embedding(ctx, ids, dsc_tensor_new_1d(ctx, DSC_F32, 5)), "dsc_embedding", "table", "(5)");

    /* Cross-entropy: a target out of range (and not ignored) names position and value. */
    dsc_tensor_t *logits = dsc_tensor_new_3d(ctx, DSC_F32, 2, 3, 7);
    dsc_tensor_t *tg = dsc_tensor_new_2d(ctx, DSC_I32, 2, 3);
    set_i32(tg, 0, -100);
    set_i32(tg, 5, 7);
    EXPECT_ERROR(ctx, dsc_cross_entropy(ctx, logits, tg, -100), "dsc_cross_entropy", "position 5", "7", "[0, 7)");
    set_i32(tg, 5, 0);
    CHECK(dsc_cross_entropy(ctx, logits, tg, -100) != NULL); /* -100 at position 0 is ignored */
    EXPECT_ERROR(ctx, dsc_cross_entropy(ctx, logits, tg, -1), "dsc_cross_entropy", "position 0", "-100");
    EXPECT_ERROR(ctx, dsc_cross_entropy(ctx, logits, dsc_tensor_new_1d(ctx, DSC_I32, 5), -100), "dsc_cross_entropy",
                 "(5)", "(2, 3, 7)");

    /* Attention shape rules. */
    dsc_tensor_t *qkv = dsc_tensor_new_3d(ctx, DSC_F32, 2, 4, 12);
    EXPECT_ERROR(ctx, dsc_attention(ctx, qkv, 3, 0.0), "dsc_attention", "n_head = 3", "C = 4");
    EXPECT_ERROR(ctx, dsc_attention(ctx, qkv, 0, 0.0), "dsc_attention", "n_head = 0");
    EXPECT_ERROR(ctx, dsc_attention(ctx, dsc_tensor_new_3d(ctx, DSC_F32, 2, 4, 10), 1, 0.0), "dsc_attention",
                 "(2, 4, 10)", "3*C");
    EXPECT_ERROR(ctx, dsc_attention(ctx, dsc_tensor_new_2d(ctx, DSC_F32, 4, 12), 1, 0.0), "dsc_attention", "(4, 12)");
    EXPECT_ERROR(ctx, dsc_attention(ctx, qkv, 2, 1.0), "dsc_attention", "attn_dropout");

    /* Layernorm shapes and dtypes. */
    dsc_tensor_t *x = dsc_tensor_new_2d(ctx, DSC_F32, 3, 6);
    dsc_tensor_t *w6 = dsc_tensor_new_1d(ctx, DSC_F32, 6), *w5 = dsc_tensor_new_1d(ctx, DSC_F32, 5);
    EXPECT_ERROR(ctx, dsc_layernorm(ctx, x, w5, NULL, 1e-5), "dsc_layernorm", "weight", "(5)", "(6)");
    EXPECT_ERROR(ctx, dsc_layernorm(ctx, x, w6, w5, 1e-5), "dsc_layernorm", "bias", "(5)");
    EXPECT_ERROR(ctx, dsc_layernorm(ctx, x, dsc_tensor_new_1d(ctx, DSC_F64, 6), NULL, 1e-5), "dsc_layernorm", "f64",
                 "f32");
    EXPECT_ERROR(ctx, dsc_layernorm(ctx, x, w6, NULL, -1.0), "dsc_layernorm", "eps");

    /* Dropout probability range. */
    EXPECT_ERROR(ctx, dsc_dropout(ctx, x, 1.0), "dsc_dropout", "p = 1");
    EXPECT_ERROR(ctx, dsc_dropout(ctx, x, -0.1), "dsc_dropout", "p = -0.1");
    EXPECT_ERROR(ctx, dsc_dropout(ctx, x, NAN), "dsc_dropout", "[0, 1)");
    dsc_ctx_set_training(ctx, false);
    EXPECT_ERROR(ctx, dsc_dropout(ctx, x, 1.5), "dsc_dropout"); /* checked in eval mode too */
    dsc_ctx_set_training(ctx, true);

    /* A 16-bit input with f32 parameters must be cast explicitly. */
    dsc_tensor_t *x16 = dsc_tensor_new_2d(ctx, DSC_BF16, 4, 6);
    EXPECT_ERROR(ctx, dsc_layernorm(ctx, x16, w6, NULL, 1e-5), "dsc_layernorm", "bf16", "f32", "dsc_cast");
    EXPECT_ERROR(ctx, dsc_softmax(ctx, dsc_tensor_new_1d(ctx, DSC_I32, 4)), "dsc_softmax", "i32");

    /* NULL inputs propagate quietly. */
    dsc_ctx_clear_error(ctx);
    CHECK(dsc_softmax(ctx, NULL) == NULL);
    CHECK(dsc_layernorm(ctx, NULL, w6, NULL, 1e-5) == NULL);
    CHECK(dsc_layernorm(ctx, x, NULL, NULL, 1e-5) == NULL);
    CHECK(dsc_embedding(ctx, NULL, table) == NULL);
    CHECK(dsc_embedding(ctx, ids, NULL) == NULL);
    CHECK(dsc_dropout(ctx, NULL, 0.1) == NULL);
    CHECK(dsc_attention(ctx, NULL, 2, 0.0) == NULL);
    CHECK(dsc_cross_entropy(ctx, NULL, tg, -100) == NULL);
    CHECK(dsc_cross_entropy(ctx, logits, NULL, -100) == NULL);
    CHECK(dsc_softmax(NULL, x) == NULL);
    CHECK(dsc_ctx_status(ctx) == DSC_OK);
    dsc_ctx_free(ctx);
}

/* No tape entries without requires_grad, or under no-grad. */
static void test_recording(void) {
    dsc_ctx_t *ctx = check_ctx_new(4);
    dsc_tensor_t *x = dsc_tensor_new_2d(ctx, DSC_F64, 2, 3);
    dsc_tensor_fill_uniform(ctx, x, -1, 1);
    dsc_tensor_t *y = dsc_softmax(ctx, x);
    CHECK(y && !dsc_tensor_requires_grad(y));
    dsc_tensor_set_requires_grad(x, true);
    dsc_ctx_no_grad_begin(ctx);
    y = dsc_softmax(ctx, x);
    CHECK(y && !dsc_tensor_requires_grad(y));
    dsc_ctx_no_grad_end(ctx);
    y = dsc_softmax(ctx, x);
    CHECK(y && dsc_tensor_requires_grad(y));
    dsc_ctx_free(ctx);
}

int main(void) {
    test_softmax_values();
    test_layernorm_values();
    test_embedding_values();
    test_cross_entropy_values();
    test_attention_values();
    test_dropout_behaviour();
    test_errors();
    test_recording();
    test_gradcheck_softmax();
    test_gradcheck_layernorm();
    test_gradcheck_embedding();
    test_gradcheck_dropout();
    test_gradcheck_attention();
    test_gradcheck_cross_entropy();
    test_f32_matches_f64();
    test_backward_accumulates();
    test_thread_count_independence();
    return check_finish("test_ops_nn");
}

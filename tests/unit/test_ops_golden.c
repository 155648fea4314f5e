/* Every op of dsc/ops.h against PyTorch: forward output and the gradient of every
 * differentiable input for the objective sum(out * R), from tests/golden/ops/ops.gold
 * (written by tools/gen_golden_ops.py; format and comparison bound in golden.h).
 *
 * Each case "<op>.<variant>" stores its inputs x0.., call arguments (args), the upstream
 * gradient R, the expected output and the expected dx_i. The test runs the op in f32 on
 * the stored inputs, back-propagates R with dsc__autograd_backward_from, and requires
 * every array within 1e-5 relative (absolute floor 1e-6 of the array's largest magnitude,
 * see golden.h); casts must match bit for bit. Every op of ops.h must have a case, and
 * every case in the file must have a builder here.
 *
 * It also checks that the golden reader rejects truncated and corrupted files cleanly. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/internal.h"
#include "golden.h"

#define OPS_GOLDEN_PATH "tests/golden/ops/ops.gold"
#define MAX_X 4
#define MAX_ARGS 8

typedef dsc_tensor_t *(*build_fn)(dsc_ctx_t *ctx, const char *variant, dsc_tensor_t **x, int n_x, const double *args,
                                  int n_args);

static dsc_tensor_t *b_matmul(dsc_ctx_t *ctx, const char *v, dsc_tensor_t **x, int n, const double *a, int na) {
    return n == 2 && na == 2 ? dsc_matmul(ctx, x[0], x[1], a[0] != 0, a[1] != 0) : NULL;
}
static dsc_tensor_t *b_add(dsc_ctx_t *ctx, const char *v, dsc_tensor_t **x, int n, const double *a, int na) {
    return dsc_add(ctx, x[0], n == 2 ? x[1] : x[0]);
}
static dsc_tensor_t *b_sub(dsc_ctx_t *ctx, const char *v, dsc_tensor_t **x, int n, const double *a, int na) {
    return dsc_sub(ctx, x[0], n == 2 ? x[1] : x[0]);
}
static dsc_tensor_t *b_mul(dsc_ctx_t *ctx, const char *v, dsc_tensor_t **x, int n, const double *a, int na) {
    return dsc_mul(ctx, x[0], n == 2 ? x[1] : x[0]); /* "mul.self": x * x, both paths into one gradient */
}
static dsc_tensor_t *b_bias_add(dsc_ctx_t *ctx, const char *v, dsc_tensor_t **x, int n, const double *a, int na) {
    return n == 2 ? dsc_bias_add(ctx, x[0], x[1]) : NULL;
}
static dsc_tensor_t *b_scale(dsc_ctx_t *ctx, const char *v, dsc_tensor_t **x, int n, const double *a, int na) {
    return na == 1 ? dsc_scale(ctx, x[0], a[0]) : NULL;
}
static dsc_tensor_t *b_sum(dsc_ctx_t *ctx, const char *v, dsc_tensor_t **x, int n, const double *a, int na) {
    return dsc_sum(ctx, x[0]);
}
static dsc_tensor_t *b_mean(dsc_ctx_t *ctx, const char *v, dsc_tensor_t **x, int n, const double *a, int na) {
    return dsc_mean(ctx, x[0]);
}
static int args_shape(const double *a, int na, int64_t *shape) {
    for (int i = 0; i < na && i < DSC_MAX_DIMS; i++) shape[i] = (int64_t)a[i];
    return na;
}
static dsc_tensor_t *b_reshape(dsc_ctx_t *ctx, const char *v, dsc_tensor_t **x, int n, const double *a, int na) {
    int64_t shape[DSC_MAX_DIMS];
    return na >= 1 && na <= DSC_MAX_DIMS ? dsc_reshape(ctx, x[0], args_shape(a, na, shape), shape) : NULL;
}
static dsc_tensor_t *b_view(dsc_ctx_t *ctx, const char *v, dsc_tensor_t **x, int n, const double *a, int na) {
    int64_t shape[DSC_MAX_DIMS];
    return na >= 1 && na <= DSC_MAX_DIMS ? dsc_view(ctx, x[0], args_shape(a, na, shape), shape) : NULL;
}
static dsc_tensor_t *b_transpose(dsc_ctx_t *ctx, const char *v, dsc_tensor_t **x, int n, const double *a, int na) {
    return na == 2 ? dsc_transpose(ctx, x[0], (int)a[0], (int)a[1]) : NULL;
}
static dsc_tensor_t *b_relu(dsc_ctx_t *ctx, const char *v, dsc_tensor_t **x, int n, const double *a, int na) {
    return dsc_relu(ctx, x[0]);
}
static dsc_tensor_t *b_gelu(dsc_ctx_t *ctx, const char *v, dsc_tensor_t **x, int n, const double *a, int na) {
    return dsc_gelu(ctx, x[0]);
}
static dsc_tensor_t *b_tanh(dsc_ctx_t *ctx, const char *v, dsc_tensor_t **x, int n, const double *a, int na) {
    return dsc_tanh(ctx, x[0]);
}
static dsc_tensor_t *b_softmax(dsc_ctx_t *ctx, const char *v, dsc_tensor_t **x, int n, const double *a, int na) {
    return dsc_softmax(ctx, x[0]);
}
static dsc_tensor_t *b_layernorm(dsc_ctx_t *ctx, const char *v, dsc_tensor_t **x, int n, const double *a, int na) {
    return na == 1 && n >= 2 ? dsc_layernorm(ctx, x[0], x[1], n == 3 ? x[2] : NULL, a[0]) : NULL;
}
static dsc_tensor_t *b_embedding(dsc_ctx_t *ctx, const char *v, dsc_tensor_t **x, int n, const double *a, int na) {
    return n == 2 ? dsc_embedding(ctx, x[0], x[1]) : NULL;
}
/* args: p, training. Dropout as the identity may return x itself, a leaf that backward
 * cannot start from, so the case multiplies by 1 to end on a recorded op. */
static dsc_tensor_t *b_dropout(dsc_ctx_t *ctx, const char *v, dsc_tensor_t **x, int n, const double *a, int na) {
    if (na != 2) return NULL;
    dsc_ctx_set_training(ctx, a[1] != 0);
    return dsc_scale(ctx, dsc_dropout(ctx, x[0], a[0]), 1.0);
}
static dsc_tensor_t *b_attention(dsc_ctx_t *ctx, const char *v, dsc_tensor_t **x, int n, const double *a, int na) {
    return na == 1 ? dsc_attention(ctx, x[0], (int)a[0], 0.0) : NULL;
}
static dsc_tensor_t *b_cross_entropy(dsc_ctx_t *ctx, const char *v, dsc_tensor_t **x, int n, const double *a,
                                     int na) {
    return n == 2 && na == 1 ? dsc_cross_entropy(ctx, x[0], x[1], (int32_t)a[0]) : NULL;
}
static dsc_tensor_t *b_mse(dsc_ctx_t *ctx, const char *v, dsc_tensor_t **x, int n, const double *a, int na) {
    return n == 2 ? dsc_mse(ctx, x[0], x[1]) : NULL;
}
/* "cast.bf16": f32 -> bf16 -> f32 (and f16, f64): values and gradients round-trip. */
static dsc_tensor_t *b_cast(dsc_ctx_t *ctx, const char *v, dsc_tensor_t **x, int n, const double *a, int na) {
    dsc_dtype_t mid = strcmp(v, "bf16") == 0 ? DSC_BF16 : strcmp(v, "f16") == 0 ? DSC_F16 : strcmp(v, "f64") == 0 ? DSC_F64 : DSC_DTYPE_COUNT;
    if (mid == DSC_DTYPE_COUNT) return NULL;
    dsc_tensor_t *y = dsc_cast(ctx, x[0], mid);
    CHECK_MSG(y == NULL || dsc_tensor_dtype(y) == mid, "cast.%s: intermediate dtype %s", v,
              dsc_dtype_name(dsc_tensor_dtype(y)));
    return dsc_cast(ctx, y, DSC_F32);
}

typedef struct op_entry {
    const char *op;
    build_fn fn;
    bool exact; /* bit-exact comparison */
    int n_cases; /* filled while running */
    double worst;
} op_entry_t;

/* One entry per function of dsc/ops.h. */
static op_entry_t OPS[] = {
    {"matmul", b_matmul, false, 0, 0},       {"add", b_add, false, 0, 0},
    {"sub", b_sub, false, 0, 0},             {"mul", b_mul, false, 0, 0},
    {"bias_add", b_bias_add, false, 0, 0},   {"scale", b_scale, false, 0, 0},
    {"sum", b_sum, false, 0, 0},             {"mean", b_mean, false, 0, 0},
    {"reshape", b_reshape, false, 0, 0},     {"view", b_view, false, 0, 0},
    {"transpose", b_transpose, false, 0, 0}, {"relu", b_relu, false, 0, 0},
    {"gelu", b_gelu, false, 0, 0},           {"tanh", b_tanh, false, 0, 0},
    {"softmax", b_softmax, false, 0, 0},     {"layernorm", b_layernorm, false, 0, 0},
    {"embedding", b_embedding, false, 0, 0}, {"dropout", b_dropout, false, 0, 0},
    {"attention", b_attention, false, 0, 0}, {"cross_entropy", b_cross_entropy, false, 0, 0},
    {"mse", b_mse, false, 0, 0},             {"cast", b_cast, true, 0, 0},
};
#define N_OPS ((int)(sizeof OPS / sizeof OPS[0]))

static bool same_shape(const dsc_tensor_t *t, const golden_array_t *a) {
    if (dsc_tensor_ndim(t) != a->ndim) return false;
    for (int d = 0; d < a->ndim; d++)
        if (dsc_tensor_dim(t, d) != a->shape[d]) return false;
    return true;
}

static const char *shape_str(const golden_array_t *a, char *buf, size_t n) {
    size_t off = (size_t)snprintf(buf, n, "(");
    for (int d = 0; d < a->ndim && off < n; d++)
        off += (size_t)snprintf(buf + off, n - off, d ? ", %lld" : "%lld", (long long)a->shape[d]);
    if (off < n) snprintf(buf + off, n - off, ")");
    return buf;
}

/* Compares one array; returns its worst error and counts a failure above the bound. */
static double compare(const char *what, const float *got, const golden_array_t *want, bool exact) {
    size_t wi = 0;
    double worst = golden_worst_rel_err(got, golden_f32(want), (size_t)want->numel, GOLDEN_FLOOR_FRAC, &wi);
    double tol = exact ? 0.0 : GOLDEN_REL_TOL;
    if (exact) { /* bit for bit (so -0 differs from +0); any NaN matches any NaN */
        const float *w = golden_f32(want);
        for (size_t i = 0; i < (size_t)want->numel; i++) {
            if (isnan(got[i]) && isnan(w[i])) continue;
            if (memcmp(&got[i], &w[i], sizeof(float)) != 0) {
                if (worst == 0) worst = INFINITY, wi = i; /* e.g. -0 for +0 */
                break;
            }
        }
    }
    CHECK_MSG(worst <= tol, "%s: worst error %.3e at [%zu]: got %.9g want %.9g (bound %.0e, floor %.0e of max)", what,
              worst, wi, (double)got[wi], (double)golden_f32(want)[wi], tol, GOLDEN_FLOOR_FRAC);
    return worst;
}

/* Runs one case; returns its worst error (INFINITY if it could not run). */
static double run_case(const golden_file_t *gf, const char *cname, op_entry_t *op, const char *variant) {
    dsc_ctx_t *ctx = check_ctx_new(17);
    dsc_tensor_t *x[MAX_X] = {0};
    void *xdata[MAX_X] = {0};
    float *xgrad[MAX_X] = {0};
    const golden_array_t *dx[MAX_X] = {0};
    int n_x = 0;
    double worst = INFINITY;
    while (n_x < MAX_X) {
        const golden_array_t *xa = golden_findf(gf, "%s/x%d", cname, n_x);
        if (!xa) break;
        size_t es = xa->dtype == GOLDEN_F64 ? 8 : 4;
        xdata[n_x] = malloc((size_t)xa->numel * es + 1);
        CHECK(xdata[n_x] != NULL && xa->dtype != GOLDEN_F64);
        if (!xdata[n_x] || xa->dtype == GOLDEN_F64) goto done;
        memcpy(xdata[n_x], xa->data, (size_t)xa->numel * es); /* ops must not see the golden buffers */
        dx[n_x] = golden_findf(gf, "%s/dx%d", cname, n_x);
        if (dx[n_x]) {
            CHECK_MSG(dx[n_x]->numel == xa->numel && golden_f32(dx[n_x]), "%s: dx%d does not match x%d", cname, n_x, n_x);
            xgrad[n_x] = calloc((size_t)xa->numel + 1, sizeof(float));
            if (!xgrad[n_x]) goto done;
        }
        x[n_x] = dsc_tensor_wrap(ctx, xa->dtype == GOLDEN_I32 ? DSC_I32 : DSC_F32, xa->ndim, xa->shape, xdata[n_x],
                                 xgrad[n_x], false);
        CHECK_MSG(x[n_x] != NULL, "%s: wrapping x%d: %s", cname, n_x, dsc_ctx_errmsg(ctx));
        if (!x[n_x]) goto done;
        n_x++;
    }
    const golden_array_t *args = golden_findf(gf, "%s/args", cname);
    const golden_array_t *R = golden_findf(gf, "%s/R", cname), *want = golden_findf(gf, "%s/out", cname);
    CHECK_MSG(n_x >= 1 && R && want && golden_f32(R) && golden_f32(want) && (!args || golden_f64(args)) &&
                  (!args || args->numel <= MAX_ARGS),
              "%s: malformed case", cname);
    if (n_x < 1 || !R || !want || !golden_f32(R) || !golden_f32(want) || (args && (!golden_f64(args) || args->numel > MAX_ARGS)))
        goto done;

    dsc_tensor_t *out = op->fn(ctx, variant, x, n_x, args ? golden_f64(args) : NULL, args ? (int)args->numel : 0);
    char s1[96], s2[96];
    CHECK_MSG(out != NULL && dsc_ctx_status(ctx) == DSC_OK, "%s: forward failed: %s", cname, dsc_ctx_errmsg(ctx));
    if (!out) goto done;
    CHECK_MSG(dsc_tensor_dtype(out) == DSC_F32 && same_shape(out, want), "%s: output %s shape %s, want f32 %s", cname,
              dsc_dtype_name(dsc_tensor_dtype(out)), dsc__shape_str(out, s1, sizeof s1), shape_str(want, s2, sizeof s2));
    if (dsc_tensor_dtype(out) != DSC_F32 || dsc_tensor_numel(out) != want->numel) goto done;
    /* Copy the output before backward (an op could alias it). */
    size_t n_out = (size_t)want->numel;
    float *got = malloc(n_out * sizeof *got + 1);
    if (!got) goto done;
    CHECK_OK(check_tensor_get(out, got, DSC_F32, n_out));
    char what[300];
    snprintf(what, sizeof what, "%s/out", cname);
    worst = compare(what, got, want, op->exact);
    free(got);

    float *rdata = malloc(n_out * sizeof *rdata + 1);
    if (!rdata) goto done;
    memcpy(rdata, golden_f32(R), n_out * sizeof *rdata);
    dsc_tensor_t *rt = dsc_tensor_wrap(ctx, DSC_F32, want->ndim, want->shape, rdata, NULL, false);
    dsc_status_t st = dsc__autograd_backward_from(ctx, out, rt);
    CHECK_MSG(st == DSC_OK, "%s: backward failed: %s", cname, dsc_ctx_errmsg(ctx));
    if (st == DSC_OK) {
        for (int i = 0; i < n_x; i++) {
            if (!dx[i]) continue;
            snprintf(what, sizeof what, "%s/dx%d", cname, i);
            double e = compare(what, xgrad[i], dx[i], op->exact);
            if (e > worst) worst = e;
        }
    } else {
        worst = INFINITY;
    }
    free(rdata);
done:
    dsc_ctx_end_step(ctx);
    dsc_ctx_free(ctx);
    for (int i = 0; i < MAX_X; i++) {
        free(xdata[i]);
        free(xgrad[i]);
    }
    return worst;
}

static void test_ops_against_torch(const char *path) {
    golden_file_t *gf = NULL;
    char err[512];
    dsc_status_t st = golden_load(path, &gf, err, sizeof err);
    CHECK_MSG(st == DSC_OK, "%s", err);
    if (st != DSC_OK) return;
    int n_cases = 0;
    for (int i = 0; i < gf->count; i++) {
        /* A case is announced by its "/out" record; its name is "<op>.<variant>". */
        const char *name = gf->arrays[i].name;
        size_t len = strlen(name);
        if (len < 5 || strcmp(name + len - 4, "/out") != 0) continue;
        char cname[GOLDEN_MAX_NAME + 1];
        memcpy(cname, name, len - 4);
        cname[len - 4] = '\0';
        const char *dot = strchr(cname, '.');
        op_entry_t *op = NULL;
        for (int k = 0; k < N_OPS && dot; k++)
            if (strlen(OPS[k].op) == (size_t)(dot - cname) && strncmp(OPS[k].op, cname, (size_t)(dot - cname)) == 0)
                op = &OPS[k];
        CHECK_MSG(op != NULL, "golden case %s names no op this test knows", cname);
        if (!op) continue;
        double w = run_case(gf, cname, op, dot + 1);
        printf("  %-28s worst %.2e\n", cname, w);
        op->n_cases++;
        if (w > op->worst) op->worst = w;
        n_cases++;
    }
    printf("worst relative error per op (%d cases):\n", n_cases);
    for (int k = 0; k < N_OPS; k++) {
        printf("  %-14s %2d cases  worst %.2e%s\n", OPS[k].op, OPS[k].n_cases, OPS[k].worst, OPS[k].exact ? " (exact)" : "");
        CHECK_MSG(OPS[k].n_cases > 0, "op %s has no golden case", OPS[k].op);
    }
    golden_free(gf);
}

/* ---- the reader on malformed input ---------------------------------------------------- */

typedef struct buf {
    unsigned char *p;
    size_t len, cap;
} buf_t;

static void put(buf_t *b, const void *src, size_t n) {
    if (n == 0) return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        while (cap < b->len + n) cap *= 2;
        unsigned char *p = realloc(b->p, cap);
        if (!p) abort();
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, src, n);
    b->len += n;
}
static void put_u32(buf_t *b, uint32_t v) {
    unsigned char x[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16), (unsigned char)(v >> 24)};
    put(b, x, 4);
}
static void put_i64(buf_t *b, int64_t v) {
    uint64_t u = (uint64_t)v;
    unsigned char x[8];
    for (int i = 0; i < 8; i++) x[i] = (unsigned char)(u >> (8 * i));
    put(b, x, 8);
}
static void put_record(buf_t *b, const char *name, uint32_t dtype, int ndim, const int64_t *shape, const void *data,
                       size_t bytes) {
    put_u32(b, (uint32_t)strlen(name));
    put(b, name, strlen(name));
    put_u32(b, dtype);
    put_u32(b, (uint32_t)ndim);
    for (int d = 0; d < ndim; d++) put_i64(b, shape[d]);
    put(b, data, bytes);
}

/* A valid 3-record file. */
static buf_t small_file(void) {
    buf_t b = {0};
    put(&b, GOLDEN_MAGIC, 8);
    put_u32(&b, GOLDEN_VERSION);
    put_u32(&b, 3);
    float f[6] = {1, -2, 3.5f, 0, 1e-3f, 7};
    int32_t i[3] = {4, -1, 9};
    double d[2] = {0.25, -1e300};
    put_record(&b, "a/x0", GOLDEN_F32, 2, (int64_t[]){2, 3}, f, sizeof f);
    put_record(&b, "a/ids", GOLDEN_I32, 1, (int64_t[]){3}, i, sizeof i);
    put_record(&b, "a/args", GOLDEN_F64, 3, (int64_t[]){1, 2, 1}, d, sizeof d);
    return b;
}

static dsc_status_t parse(const void *p, size_t n, char *err, size_t errn) {
    golden_file_t *f = NULL;
    dsc_status_t st = golden_parse(p, n, &f, err, errn);
    CHECK(st == DSC_OK ? f != NULL : f == NULL);
    golden_free(f);
    return st;
}

/* Replaces bytes at `off` in a copy of b and expects a CORRUPT error mentioning `needle`. */
static void expect_corrupt_patch(const buf_t *b, size_t off, const void *patch, size_t n, const char *needle) {
    unsigned char *c = malloc(b->len);
    if (!c) return;
    memcpy(c, b->p, b->len);
    memcpy(c + off, patch, n);
    char err[256];
    dsc_status_t st = parse(c, b->len, err, sizeof err);
    CHECK_MSG(st == DSC_ERR_CORRUPT && strstr(err, needle), "patch at %zu: status %d, message '%s', want '%s'", off,
              (int)st, err, needle);
    free(c);
}

static void test_reader(void) {
    buf_t b = small_file();
    golden_file_t *f = NULL;
    char err[256];
    CHECK_OK(golden_parse(b.p, b.len, &f, err, sizeof err));
    if (f) {
        CHECK(f->count == 3);
        const golden_array_t *x0 = golden_find(f, "a/x0"), *ids = golden_findf(f, "a/%s", "ids");
        const golden_array_t *args = golden_find(f, "a/args");
        CHECK(x0 && x0->ndim == 2 && x0->shape[1] == 3 && x0->numel == 6 && golden_f32(x0) && golden_f32(x0)[2] == 3.5f);
        CHECK(ids && golden_i32(ids) && golden_i32(ids)[1] == -1 && !golden_f32(ids));
        CHECK(args && args->numel == 2 && golden_f64(args) && golden_f64(args)[1] == -1e300);
        CHECK(golden_find(f, "a/x") == NULL && golden_find(f, "missing") == NULL);
        golden_free(f);
    }
    /* Every strict prefix is an error, never a crash or an over-read (ASan build). */
    int bad = 0;
    for (size_t n = 0; n < b.len; n++)
        if (parse(b.p, n, err, sizeof err) != DSC_ERR_CORRUPT) bad++;
    CHECK_MSG(bad == 0, "%d truncated prefixes were not rejected", bad);
    /* One byte too many. */
    put(&b, "", 1);
    CHECK(parse(b.p, b.len, err, sizeof err) == DSC_ERR_CORRUPT && strstr(err, "trailing"));
    b.len--;

    const size_t rec0 = 16; /* first record: name_len at 16, name at 20, dtype 24, ndim 28, shape 32 */
    expect_corrupt_patch(&b, 0, "DSCGOLD2", 8, "magic");
    expect_corrupt_patch(&b, 8, "\x02\0\0\0", 4, "version");
    expect_corrupt_patch(&b, 12, "\xff\xff\xff\x7f", 4, "record count");
    expect_corrupt_patch(&b, 12, "\x04\0\0\0", 4, "truncated");
    expect_corrupt_patch(&b, rec0, "\0\0\0\0", 4, "name length");
    expect_corrupt_patch(&b, rec0, "\x00\x01\0\0", 4, "name length");
    expect_corrupt_patch(&b, rec0 + 4, "a\x01", 2, "non-printable");
    expect_corrupt_patch(&b, rec0 + 8, "\x07\0\0\0", 4, "dtype");
    expect_corrupt_patch(&b, rec0 + 12, "\0\0\0\0", 4, "ndim");
    expect_corrupt_patch(&b, rec0 + 12, "\x05\0\0\0", 4, "ndim");
    expect_corrupt_patch(&b, rec0 + 16, "\xff\xff\xff\xff\xff\xff\xff\xff", 8, "negative dim");
    /* 2^62 x 3 floats: the element count must not overflow into a small byte count. */
    expect_corrupt_patch(&b, rec0 + 16, "\0\0\0\0\0\0\0\x40", 8, "shape larger");
    /* One dim too large: the data runs into the next record, which then fails to parse. */
    expect_corrupt_patch(&b, rec0 + 16, "\x03\0\0\0\0\0\0\0", 8, "");
    {
        buf_t d = {0};
        put(&d, GOLDEN_MAGIC, 8);
        put_u32(&d, GOLDEN_VERSION);
        put_u32(&d, 2);
        int32_t v = 1;
        put_record(&d, "same", GOLDEN_I32, 1, (int64_t[]){1}, &v, 4);
        put_record(&d, "same", GOLDEN_I32, 1, (int64_t[]){1}, &v, 4);
        CHECK(parse(d.p, d.len, err, sizeof err) == DSC_ERR_CORRUPT && strstr(err, "duplicate"));
        free(d.p);
        /* A zero-size array is valid, whatever its other dims. */
        buf_t e = {0};
        put(&e, GOLDEN_MAGIC, 8);
        put_u32(&e, GOLDEN_VERSION);
        put_u32(&e, 1);
        put_record(&e, "empty", GOLDEN_F32, 2, (int64_t[]){0, 1000000}, NULL, 0);
        CHECK(parse(e.p, e.len, err, sizeof err) == DSC_OK);
        free(e.p);
    }
    /* Every byte replaced by a few values: OK or CORRUPT, never a crash (ASan build). */
    {
        static const unsigned char subst[] = {0x00, 0x01, 0x7f, 0x80, 0xff};
        int odd = 0;
        unsigned char *c = malloc(b.len);
        for (size_t i = 0; c && i < b.len; i++) {
            for (size_t k = 0; k < sizeof subst; k++) {
                memcpy(c, b.p, b.len);
                c[i] = subst[k];
                dsc_status_t st = parse(c, b.len, err, sizeof err);
                if (st != DSC_OK && st != DSC_ERR_CORRUPT) odd++;
            }
        }
        free(c);
        CHECK_MSG(odd == 0, "%d corrupted files gave a status other than OK or CORRUPT", odd);
    }
    CHECK(golden_parse(NULL, 4, &f, err, sizeof err) == DSC_ERR_INVALID);
    CHECK(golden_load("tests/golden/does-not-exist.gold", &f, err, sizeof err) == DSC_ERR_IO && f == NULL);
    free(b.p);

    /* Prefixes of the real file: at a stride, and the last byte missing. */
    FILE *fp = fopen(OPS_GOLDEN_PATH, "rb");
    CHECK_MSG(fp != NULL, "cannot open %s", OPS_GOLDEN_PATH);
    if (!fp) return;
    buf_t real = {0};
    unsigned char chunk[4096];
    size_t got;
    while ((got = fread(chunk, 1, sizeof chunk, fp)) > 0) put(&real, chunk, got);
    fclose(fp);
    bad = 0;
    for (size_t n = 0; n < real.len; n += 997)
        if (parse(real.p, n, err, sizeof err) != DSC_ERR_CORRUPT) bad++;
    if (real.len && parse(real.p, real.len - 1, err, sizeof err) != DSC_ERR_CORRUPT) bad++;
    CHECK_MSG(bad == 0, "%d truncated prefixes of %s were not rejected", bad, OPS_GOLDEN_PATH);
    free(real.p);
}

/* An optional argument names another golden file of the same layout (e.g. larger shapes
 * written by a modified generator); ctest runs the committed one. */
int main(int argc, char **argv) {
    test_reader();
    test_ops_against_torch(argc > 1 ? argv[1] : OPS_GOLDEN_PATH);
    return check_finish("test_ops_golden");
}

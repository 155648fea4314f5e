/* The fused linear ops (dsc_linear, dsc_gelu_linear, dsc_linear_residual; src/ops/op_linear.c):
 *  - f64 gradients against central finite differences (3-D input, with and without bias);
 *  - f32: forward and every gradient the same bits as the unfused ops they replace
 *    (dsc_matmul + dsc_bias_add; dsc_gelu, then those), the claim behind the engine's
 *    unchanged fp32 losses;
 *  - bf16/f16: dsc_linear is round16(the f32 linear on the widened inputs) bit for bit (one
 *    rounding of gemm + bias), and differs from the unfused pair's two roundings somewhere;
 *    dsc_gelu_linear's backward is the unfused ops' bits (the same roundings);
 *  - dsc_linear_residual: forward and gradients (the residual's too) the same bits as
 *    dsc_add(residual, the linear op) in f32 and bf16, with and without the GELU input;
 *  - shape and dtype errors name the op and the shapes. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "gradcheck.h"

enum { B = 3, T = 5, K = 24, N = 20 };

static dsc_tensor_t *linear_case(dsc_ctx_t *ctx, dsc_tensor_t **in, void *user) {
    return dsc_linear(ctx, in[0], in[1], *(bool *)user ? in[2] : NULL);
}
static dsc_tensor_t *gelu_linear_case(dsc_ctx_t *ctx, dsc_tensor_t **in, void *user) {
    return dsc_gelu_linear(ctx, in[0], in[1], *(bool *)user ? in[2] : NULL);
}

static dsc_tensor_t *residual_case(dsc_ctx_t *ctx, dsc_tensor_t **in, void *user) {
    return dsc_linear_residual(ctx, in[0], in[1], in[2], in[3], *(bool *)user);
}

static void finite_differences(void) {
    const gradcheck_input_t specs[3] = {
        {DSC_F64, 3, {2, 3, K}, true, -1, 1},
        {DSC_F64, 2, {N, K}, true, -0.5, 0.5},
        {DSC_F64, 1, {N}, true, -1, 1},
    };
    for (int with_bias = 0; with_bias < 2; with_bias++) {
        bool wb = with_bias;
        gradcheck("dsc_linear", linear_case, &wb, wb ? 3 : 2, specs, 1e-6, 11);
        gradcheck("dsc_gelu_linear", gelu_linear_case, &wb, wb ? 3 : 2, specs, 1e-6, 12);
    }
    const gradcheck_input_t rspecs[4] = {specs[0], specs[1], specs[2], {DSC_F64, 3, {2, 3, N}, true, -1, 1}};
    for (int gelu = 0; gelu < 2; gelu++) {
        bool g = gelu;
        gradcheck("dsc_linear_residual", residual_case, &g, 4, rspecs, 1e-6, 13);
    }
}

typedef struct {
    dsc_ctx_t *ctx;
    dsc_tensor_t *x, *w, *b;
} inputs_t;

static void fill(dsc_tensor_t *t, uint32_t seed, float scale) {
    const int64_t n = dsc_tensor_numel(t);
    float *v = malloc(sizeof *v * (size_t)n);
    uint32_t s = seed;
    for (int64_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        v[i] = scale * ((float)(s >> 8) / 16777216.0f - 0.5f);
    }
    check_tensor_set(t, v, DSC_F32, (size_t)n);
    free(v);
}

static inputs_t make_inputs(dsc_dtype_t dt, bool grads) {
    inputs_t in;
    in.ctx = check_ctx_new(3);
    in.x = dsc_tensor_new_3d(in.ctx, dt, B, T, K);
    in.w = dsc_tensor_new_2d(in.ctx, dt, N, K);
    in.b = dsc_tensor_new_1d(in.ctx, dt, N);
    fill(in.x, 1, 4.0f);
    fill(in.w, 2, 1.0f);
    fill(in.b, 3, 2.0f);
    dsc_tensor_set_requires_grad(in.x, grads);
    dsc_tensor_set_requires_grad(in.w, grads);
    dsc_tensor_set_requires_grad(in.b, grads);
    return in;
}

/* Values of t (and of the three input gradients after a backward of sum(out * R)) as f32. */
typedef struct {
    float out[B * T * N], gx[B * T * K], gw[N * K], gb[N];
} result_t;

static void run(dsc_dtype_t dt, bool fused, bool gelu, result_t *r) {
    inputs_t in = make_inputs(dt, true);
    dsc_ctx_t *ctx = in.ctx;
    dsc_tensor_t *x = in.x, *out;
    if (fused) {
        out = gelu ? dsc_gelu_linear(ctx, x, in.w, in.b) : dsc_linear(ctx, x, in.w, in.b);
    } else {
        if (gelu) x = dsc_gelu(ctx, x);
        out = dsc_bias_add(ctx, dsc_matmul(ctx, x, in.w, false, true), in.b);
    }
    CHECK(out && dsc_tensor_dim(out, 0) == B && dsc_tensor_dim(out, 1) == T && dsc_tensor_dim(out, 2) == N);
    dsc_tensor_t *rr = dsc_tensor_new_3d(ctx, dt, B, T, N);
    fill(rr, 9, 2.0f);
    CHECK_OK(dsc_autograd_backward(ctx, dsc_sum(ctx, dsc_mul(ctx, out, rr))));
    CHECK_OK(check_tensor_get(out, r->out, DSC_F32, B * T * N));
    CHECK_OK(check_tensor_get(dsc_tensor_grad(in.x), r->gx, DSC_F32, B * T * K));
    CHECK_OK(check_tensor_get(dsc_tensor_grad(in.w), r->gw, DSC_F32, N * K));
    CHECK_OK(check_tensor_get(dsc_tensor_grad(in.b), r->gb, DSC_F32, N));
    dsc_ctx_free(ctx);
}

static void same_bits(const char *what, const result_t *a, const result_t *b, bool forward_too) {
    if (forward_too) CHECK_MSG(memcmp(a->out, b->out, sizeof a->out) == 0, "%s: forward", what);
    CHECK_MSG(memcmp(a->gx, b->gx, sizeof a->gx) == 0, "%s: dx", what);
    CHECK_MSG(memcmp(a->gw, b->gw, sizeof a->gw) == 0, "%s: dw", what);
    CHECK_MSG(memcmp(a->gb, b->gb, sizeof a->gb) == 0, "%s: dbias", what);
}

static void against_unfused(void) {
    static result_t f, u;
    for (int gelu = 0; gelu < 2; gelu++) {
        run(DSC_F32, true, gelu, &f);
        run(DSC_F32, false, gelu, &u);
        same_bits(gelu ? "f32 gelu_linear" : "f32 linear", &f, &u, true);
        float mx = 0;
        for (int i = 0; i < N * K; i++) mx = fmaxf(mx, fabsf(f.gw[i]));
        CHECK(mx > 0.1f); /* a real gradient */
    }
    /* 16-bit: the backward is the unfused ops' bits; the forward is rounded once */
    static const dsc_dtype_t halves[2] = {DSC_BF16, DSC_F16};
    for (int h = 0; h < 2; h++) {
        run(halves[h], true, true, &f);
        run(halves[h], false, true, &u);
        same_bits(halves[h] == DSC_BF16 ? "bf16 gelu_linear backward" : "f16 gelu_linear backward", &f, &u, false);
    }
}

/* round16(f32 linear on the widened inputs), computed here from the f32 values. */
static void one_rounding(dsc_dtype_t dt) {
    inputs_t in = make_inputs(dt, false);
    dsc_ctx_t *ctx = in.ctx;
    static float x[B * T * K], w[N * K], b[N], want[B * T * N], got[B * T * N], pair[B * T * N];
    check_tensor_get(in.x, x, DSC_F32, B * T * K);
    check_tensor_get(in.w, w, DSC_F32, N * K);
    check_tensor_get(in.b, b, DSC_F32, N);
    /* the f32 reference goes through the f32 op (the same gemm as the kernel's) */
    inputs_t ref = make_inputs(DSC_F32, false);
    check_tensor_set(ref.x, x, DSC_F32, B * T * K);
    check_tensor_set(ref.w, w, DSC_F32, N * K);
    check_tensor_set(ref.b, b, DSC_F32, N);
    dsc_tensor_t *y32 = dsc_linear(ref.ctx, ref.x, ref.w, ref.b);
    dsc_tensor_t *y16 = dsc_cast(ref.ctx, y32, dt); /* round to nearest even, once */
    check_tensor_get(y16, want, DSC_F32, B * T * N);
    dsc_ctx_free(ref.ctx);
    check_tensor_get(dsc_linear(ctx, in.x, in.w, in.b), got, DSC_F32, B * T * N);
    check_tensor_get(dsc_bias_add(ctx, dsc_matmul(ctx, in.x, in.w, false, true), in.b), pair, DSC_F32, B * T * N);
    CHECK_MSG(memcmp(got, want, sizeof got) == 0, "%s linear: one rounding of gemm + bias", dsc_dtype_name(dt));
    int differ = 0;
    for (int i = 0; i < B * T * N; i++) differ += got[i] != pair[i];
    CHECK_MSG(differ > 0, "%s: the unfused pair (two roundings) should differ somewhere", dsc_dtype_name(dt));
    /* without bias: the plain gemm's bits */
    check_tensor_get(dsc_linear(ctx, in.x, in.w, NULL), got, DSC_F32, B * T * N);
    check_tensor_get(dsc_matmul(ctx, in.x, in.w, false, true), pair, DSC_F32, B * T * N);
    CHECK(memcmp(got, pair, sizeof got) == 0);
    dsc_ctx_free(ctx);
}

/* residual + linear (fused or as dsc_add of the linear op's output): every value as f32. */
typedef struct {
    float out[B * T * N], gx[B * T * K], gw[N * K], gb[N], gr[B * T * N];
} res_result_t;

static void run_residual(dsc_dtype_t dt, bool fused, bool gelu, res_result_t *r) {
    inputs_t in = make_inputs(dt, true);
    dsc_ctx_t *ctx = in.ctx;
    dsc_tensor_t *res = dsc_tensor_new_3d(ctx, dt, B, T, N);
    fill(res, 5, 3.0f);
    dsc_tensor_set_requires_grad(res, true);
    dsc_tensor_t *out = fused ? dsc_linear_residual(ctx, in.x, in.w, in.b, res, gelu)
                              : dsc_add(ctx, res, gelu ? dsc_gelu_linear(ctx, in.x, in.w, in.b)
                                                       : dsc_linear(ctx, in.x, in.w, in.b));
    CHECK(out != NULL);
    dsc_tensor_t *rr = dsc_tensor_new_3d(ctx, dt, B, T, N);
    fill(rr, 9, 2.0f);
    CHECK_OK(dsc_autograd_backward(ctx, dsc_sum(ctx, dsc_mul(ctx, out, rr))));
    CHECK_OK(check_tensor_get(out, r->out, DSC_F32, B * T * N));
    CHECK_OK(check_tensor_get(dsc_tensor_grad(in.x), r->gx, DSC_F32, B * T * K));
    CHECK_OK(check_tensor_get(dsc_tensor_grad(in.w), r->gw, DSC_F32, N * K));
    CHECK_OK(check_tensor_get(dsc_tensor_grad(in.b), r->gb, DSC_F32, N));
    CHECK_OK(check_tensor_get(dsc_tensor_grad(res), r->gr, DSC_F32, B * T * N));
    dsc_ctx_free(ctx);
}

static void residual(void) {
    static res_result_t f, u;
    static const dsc_dtype_t dts[2] = {DSC_F32, DSC_BF16};
    for (int d = 0; d < 2; d++)
        for (int gelu = 0; gelu < 2; gelu++) {
            run_residual(dts[d], true, gelu, &f);
            run_residual(dts[d], false, gelu, &u);
            CHECK_MSG(memcmp(&f, &u, sizeof f) == 0, "%s linear_residual (gelu %d): not the bits of add + linear",
                      dsc_dtype_name(dts[d]), gelu);
            float mx = 0;
            for (int i = 0; i < B * T * N; i++) mx = fmaxf(mx, fabsf(f.gr[i]));
            CHECK(mx > 0.1f);
        }
    dsc_ctx_t *ctx = check_ctx_new(1);
    dsc_tensor_t *x = dsc_tensor_new_2d(ctx, DSC_F32, 4, K), *w = dsc_tensor_new_2d(ctx, DSC_F32, N, K);
    dsc_tensor_t *bad = dsc_tensor_new_2d(ctx, DSC_F32, 4, N + 1);
    CHECK(dsc_linear_residual(ctx, x, w, NULL, bad, false) == NULL);
    CHECK(strstr(dsc_ctx_errmsg(ctx), "dsc_linear_residual") && strstr(dsc_ctx_errmsg(ctx), "(4, 21)"));
    dsc_ctx_free(ctx);
}

static void errors(void) {
    dsc_ctx_t *ctx = check_ctx_new(1);
    dsc_tensor_t *x = dsc_tensor_new_2d(ctx, DSC_F32, 4, K), *w = dsc_tensor_new_2d(ctx, DSC_F32, N, K + 1);
    CHECK(dsc_linear(ctx, x, w, NULL) == NULL);
    CHECK(strstr(dsc_ctx_errmsg(ctx), "dsc_linear") && strstr(dsc_ctx_errmsg(ctx), "(4, 24)"));
    dsc_ctx_clear_error(ctx);
    dsc_tensor_t *w2 = dsc_tensor_new_2d(ctx, DSC_F32, N, K), *b = dsc_tensor_new_1d(ctx, DSC_F32, N + 1);
    CHECK(dsc_gelu_linear(ctx, x, w2, b) == NULL);
    CHECK(strstr(dsc_ctx_errmsg(ctx), "dsc_gelu_linear") && strstr(dsc_ctx_errmsg(ctx), "bias"));
    dsc_ctx_clear_error(ctx);
    dsc_tensor_t *wh = dsc_tensor_new_2d(ctx, DSC_BF16, N, K);
    CHECK(dsc_linear(ctx, x, wh, NULL) == NULL);
    CHECK(strstr(dsc_ctx_errmsg(ctx), "bf16") != NULL);
    dsc_ctx_free(ctx);
}

int main(void) {
    finite_differences();
    against_unfused();
    one_rounding(DSC_BF16);
    one_rounding(DSC_F16);
    residual();
    errors();
    return check_finish("test_linear_fused");
}

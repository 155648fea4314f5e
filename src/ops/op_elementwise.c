/* Elementwise ops: add, sub, mul (with trailing-shape broadcasting), bias_add, scale,
 * relu, gelu, tanh, and the dtype cast. */
#include <string.h>

#include "ops/op_common.h"

/* ---- binary ops ------------------------------------------------------------------ */

/* node->i[0]: the dsc_binary_op_t; node->i[1]: the DSC_BCAST_* form. */
static void binary_backward(dsc_ctx_t *ctx, dsc_node_t *node) {
    const dsc_backend_t *be = ctx->backend;
    dsc_tensor_t *out = node->out, *a = node->in[0], *b = node->in[1];
    const dsc_tensor_t *g = out->grad;
    const dsc_binary_op_t op = (dsc_binary_op_t)node->i[0];
    const int bc = (int)node->i[1];
    const dsc_dtype_t dt = out->dtype;
    const int64_t n = out->numel;
    if (n == 0) return;

    /* Operand k (0 = a, 1 = b): its gradient, whether it was broadcast, its sign, and the
     * other operand (the factor of the mul gradient). */
    for (int k = 0; k < 2; k++) {
        dsc_tensor_t *x = k == 0 ? a : b, *other = k == 0 ? b : a;
        dsc_tensor_t *gx = dsc__grad(ctx, x);
        if (!gx) continue;
        const bool small = (k == 0 && bc == DSC_BCAST_A) || (k == 1 && bc == DSC_BCAST_B);
        const double sign = (op == DSC_BINARY_SUB && k == 1) ? -1.0 : 1.0;
        if (op == DSC_BINARY_MUL) {
            if (small) /* d x[j] += sum_r g[r, j] * other[r, j] (other has the full shape) */
                be->sum_rows_mul_acc(&ctx->device, dt, n / x->numel, x->numel, 1.0, g->data, other->data, gx->data);
            else /* d x[i] += g[i] * other[i % n_other] */
                be->mul_acc(&ctx->device, dt, n, 1.0, g->data, other->numel, other->data, gx->data);
        } else {
            if (small)
                be->sum_rows_acc(&ctx->device, dt, n / x->numel, x->numel, sign, g->data, gx->data);
            else
                be->axpy(&ctx->device, dt, n, sign, g->data, gx->data);
        }
    }
}

static dsc_tensor_t *binary_impl(dsc_ctx_t *ctx, const char *name, dsc_binary_op_t op, dsc_tensor_t *a,
                                 dsc_tensor_t *b) {
    if (!dsc__op_check_same_dtype(ctx, name, "a", a, "b", b)) return NULL;
    const int bc = dsc__op_broadcast(ctx, name, "a", a, "b", b);
    if (bc < 0) return NULL;
    const dsc_tensor_t *big = bc == DSC_BCAST_A ? b : a;
    dsc_tensor_t *out = dsc__tensor_empty(ctx, a->dtype, big->ndim, big->shape);
    if (!out) return NULL;
    const dsc_backend_t *be = ctx->backend;
    if (bc != DSC_BCAST_A) {
        be->binary(&ctx->device, a->dtype, op, a->numel, a->data, b->numel, b->data, out->data);
    } else {
        /* a is the broadcast operand: the kernel broadcasts its second argument, so swap.
         * add and mul commute; a - b = -(b - a) exactly in IEEE arithmetic. */
        be->binary(&ctx->device, a->dtype, op, b->numel, b->data, a->numel, a->data, out->data);
        if (op == DSC_BINARY_SUB) be->scale(&ctx->device, a->dtype, out->numel, -1.0, out->data, out->data);
    }
    dsc_tensor_t *in[2] = {a, b};
    if (dsc__needs_grad(ctx, 2, in)) {
        dsc_node_t *node = dsc__record(ctx, name, binary_backward, out, 2, in);
        if (!node) return NULL;
        node->i[0] = op;
        node->i[1] = bc;
    }
    return out;
}

dsc_tensor_t *dsc_add(dsc_ctx_t *ctx, dsc_tensor_t *a, dsc_tensor_t *b) {
    if (!ctx || !a || !b) return NULL;
    return binary_impl(ctx, "dsc_add", DSC_BINARY_ADD, a, b);
}

dsc_tensor_t *dsc_sub(dsc_ctx_t *ctx, dsc_tensor_t *a, dsc_tensor_t *b) {
    if (!ctx || !a || !b) return NULL;
    return binary_impl(ctx, "dsc_sub", DSC_BINARY_SUB, a, b);
}

dsc_tensor_t *dsc_mul(dsc_ctx_t *ctx, dsc_tensor_t *a, dsc_tensor_t *b) {
    if (!ctx || !a || !b) return NULL;
    return binary_impl(ctx, "dsc_mul", DSC_BINARY_MUL, a, b);
}

dsc_tensor_t *dsc_bias_add(dsc_ctx_t *ctx, dsc_tensor_t *x, dsc_tensor_t *bias) {
    if (!ctx || !x || !bias) return NULL;
    if (!dsc__op_check_same_dtype(ctx, "dsc_bias_add", "x", x, "bias", bias)) return NULL;
    if (bias->ndim != 1 || bias->shape[0] != dsc__op_last_dim(x)) {
        char sx[DSC_OP_SHAPE_BUF], sb[DSC_OP_SHAPE_BUF];
        return dsc__fail(ctx, DSC_ERR_INVALID, "dsc_bias_add: bias %s must be 1-D of the last dim of x %s",
                         dsc__shape_str(bias, sb, sizeof sb), dsc__shape_str(x, sx, sizeof sx));
    }
    return binary_impl(ctx, "dsc_bias_add", DSC_BINARY_ADD, x, bias);
}

/* ---- scale ----------------------------------------------------------------------- */

static void scale_backward(dsc_ctx_t *ctx, dsc_node_t *node) {
    dsc_tensor_t *gx = dsc__grad(ctx, node->in[0]);
    if (gx) ctx->backend->axpy(&ctx->device, gx->dtype, gx->numel, node->f[0], node->out->grad->data, gx->data);
}

dsc_tensor_t *dsc_scale(dsc_ctx_t *ctx, dsc_tensor_t *x, double s) {
    if (!ctx || !x) return NULL;
    if (!dsc__op_check_kernel_float(ctx, "dsc_scale", "x", x)) return NULL;
    dsc_tensor_t *out = dsc__tensor_empty_like(ctx, x);
    if (!out) return NULL;
    ctx->backend->scale(&ctx->device, x->dtype, x->numel, s, x->data, out->data);
    if (dsc__needs_grad(ctx, 1, &x)) {
        dsc_node_t *node = dsc__record(ctx, "dsc_scale", scale_backward, out, 1, &x);
        if (!node) return NULL;
        node->f[0] = s;
    }
    return out;
}

/* ---- unary activations ----------------------------------------------------------- */

/* node->i[0]: the dsc_unary_op_t. */
static void unary_backward(dsc_ctx_t *ctx, dsc_node_t *node) {
    dsc_tensor_t *x = node->in[0], *out = node->out;
    dsc_tensor_t *gx = dsc__grad(ctx, x);
    if (gx)
        ctx->backend->unary_backward(&ctx->device, x->dtype, (dsc_unary_op_t)node->i[0], x->numel, x->data, out->data,
                                     out->grad->data, gx->data);
}

static dsc_tensor_t *unary_impl(dsc_ctx_t *ctx, const char *name, dsc_unary_op_t op, dsc_tensor_t *x) {
    if (!ctx || !x) return NULL;
    if (!dsc__op_check_kernel_float(ctx, name, "x", x)) return NULL;
    dsc_tensor_t *out = dsc__tensor_empty_like(ctx, x);
    if (!out) return NULL;
    ctx->backend->unary(&ctx->device, x->dtype, op, x->numel, x->data, out->data);
    if (dsc__needs_grad(ctx, 1, &x)) {
        dsc_node_t *node = dsc__record(ctx, name, unary_backward, out, 1, &x);
        if (!node) return NULL;
        node->i[0] = op;
    }
    return out;
}

dsc_tensor_t *dsc_relu(dsc_ctx_t *ctx, dsc_tensor_t *x) { return unary_impl(ctx, "dsc_relu", DSC_UNARY_RELU, x); }
dsc_tensor_t *dsc_gelu(dsc_ctx_t *ctx, dsc_tensor_t *x) { return unary_impl(ctx, "dsc_gelu", DSC_UNARY_GELU, x); }
dsc_tensor_t *dsc_tanh(dsc_ctx_t *ctx, dsc_tensor_t *x) { return unary_impl(ctx, "dsc_tanh", DSC_UNARY_TANH, x); }

/* ---- cast ------------------------------------------------------------------------ */

/* dx += convert(dout). f32/f64 gradients add through the backend; f16/bf16 gradients are
 * widened to f32, added there, and rounded back once. */
static void cast_backward(dsc_ctx_t *ctx, dsc_node_t *node) {
    dsc_tensor_t *x = node->in[0], *out = node->out;
    dsc_tensor_t *gx = dsc__grad(ctx, x);
    if (!gx) return;
    const dsc_backend_t *be = ctx->backend;
    const size_t n = (size_t)x->numel;
    /* Accumulate in the gradient's own dtype when it computes (a 16-bit parameter may have an
     * f32 gradient buffer under mixed precision), else in f32. */
    const dsc_dtype_t acc_dt = dsc__op_is_compute_dtype(gx->dtype) ? gx->dtype : DSC_F32;
    const size_t es = dsc_dtype_size(acc_dt);
    void *g = dsc__arena_alloc_data(ctx, n * es);
    if (!g) return;
    be->convert(&ctx->device, acc_dt, out->grad->dtype, (int64_t)n, out->grad->data, g);
    if (acc_dt == gx->dtype) {
        be->axpy(&ctx->device, acc_dt, (int64_t)n, 1.0, g, gx->data);
    } else {
        void *acc = dsc__arena_alloc_data(ctx, n * es);
        if (!acc) return;
        be->convert(&ctx->device, acc_dt, gx->dtype, (int64_t)n, gx->data, acc);
        be->axpy(&ctx->device, acc_dt, (int64_t)n, 1.0, g, acc);
        be->convert(&ctx->device, gx->dtype, acc_dt, (int64_t)n, acc, gx->data);
    }
}

dsc_tensor_t *dsc_cast(dsc_ctx_t *ctx, dsc_tensor_t *x, dsc_dtype_t dtype) {
    if (!ctx || !x) return NULL;
    if (!dsc__is_float(x->dtype)) {
        char s[DSC_OP_SHAPE_BUF];
        return dsc__fail(ctx, DSC_ERR_INVALID, "dsc_cast: x (tensor %s, shape %s) has dtype %s, not a float type",
                         dsc_tensor_name(x), dsc__shape_str(x, s, sizeof s), dsc_dtype_name(x->dtype));
    }
    if (!dsc__is_float(dtype)) {
        char s[DSC_OP_SHAPE_BUF];
        return dsc__fail(ctx, DSC_ERR_INVALID,
                         "dsc_cast: target dtype %s (%d) of x %s is not a float type (f32, f64, f16, bf16)",
                         dsc_dtype_name(dtype), (int)dtype, dsc__shape_str(x, s, sizeof s));
    }
    dsc_tensor_t *out = dsc__tensor_empty(ctx, dtype, x->ndim, x->shape);
    if (!out) return NULL;
    ctx->backend->convert(&ctx->device, dtype, x->dtype, x->numel, x->data, out->data);
    if (dsc__needs_grad(ctx, 1, &x)) {
        if (!dsc__record(ctx, "dsc_cast", cast_backward, out, 1, &x)) return NULL;
    }
    return out;
}

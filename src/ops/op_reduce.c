/* Reductions to one element: sum, mean, and the mean squared error. */
#include "ops/op_common.h"

/* ---- sum / mean ------------------------------------------------------------------ */

/* dx[i] += dout[0] * node->f[0] (1 for sum, 1/n for mean). */
static void sum_backward(dsc_ctx_t *ctx, dsc_node_t *node) {
    dsc_tensor_t *x = node->in[0];
    dsc_tensor_t *gx = dsc__grad(ctx, x);
    if (!gx || x->numel == 0) return;
    const dsc_backend_t *be = ctx->backend;
    const void *g = node->out->grad->data;
    if (node->f[0] != 1.0) { /* scale the upstream scalar first */
        void *gs = dsc__arena_alloc_data(ctx, dsc_dtype_size(x->dtype));
        if (!gs) return;
        be->scale(&ctx->device, x->dtype, 1, node->f[0], g, gs);
        g = gs;
    }
    /* gx = gx + g broadcast over every element (in place). */
    be->binary(&ctx->device, x->dtype, DSC_BINARY_ADD, gx->numel, gx->data, 1, g, gx->data);
}

static dsc_tensor_t *reduce_impl(dsc_ctx_t *ctx, const char *name, dsc_tensor_t *x, bool mean) {
    if (!ctx || !x) return NULL;
    if (!dsc__op_check_kernel_float(ctx, name, "x", x)) return NULL;
    const int64_t one = 1;
    dsc_tensor_t *out = dsc__tensor_empty(ctx, x->dtype, 1, &one);
    if (!out) return NULL;
    /* mean of no elements is NaN, as in PyTorch */
    const double factor = mean ? 1.0 / (double)x->numel : 1.0;
    ctx->backend->sum_to(&ctx->device, x->dtype, x->numel, factor, 1.0, x->data, out->data);
    if (dsc__needs_grad(ctx, 1, &x)) {
        dsc_node_t *node = dsc__record(ctx, name, sum_backward, out, 1, &x);
        if (!node) return NULL;
        node->f[0] = factor;
    }
    return out;
}

dsc_tensor_t *dsc_sum(dsc_ctx_t *ctx, dsc_tensor_t *x) { return reduce_impl(ctx, "dsc_sum", x, false); }
dsc_tensor_t *dsc_mean(dsc_ctx_t *ctx, dsc_tensor_t *x) { return reduce_impl(ctx, "dsc_mean", x, true); }

/* ---- mse ------------------------------------------------------------------------- */

/* saved[0]: diff = pred - target. d pred += (2/n) g diff; d target -= (2/n) g diff. */
static void mse_backward(dsc_ctx_t *ctx, dsc_node_t *node) {
    const dsc_tensor_t *diff = node->saved[0];
    const void *g = node->out->grad->data;
    const int64_t n = diff->numel;
    if (n == 0) return;
    for (int k = 0; k < 2; k++) {
        dsc_tensor_t *gx = dsc__grad(ctx, node->in[k]);
        if (!gx) continue;
        const double alpha = (k == 0 ? 2.0 : -2.0) / (double)n;
        ctx->backend->mul_acc(&ctx->device, diff->dtype, n, alpha, diff->data, 1, g, gx->data);
    }
}

dsc_tensor_t *dsc_mse(dsc_ctx_t *ctx, dsc_tensor_t *pred, dsc_tensor_t *target) {
    if (!ctx || !pred || !target) return NULL;
    if (!dsc__op_check_same_dtype(ctx, "dsc_mse", "pred", pred, "target", target)) return NULL;
    if (!dsc__op_check_same_shape(ctx, "dsc_mse", "pred", pred, "target", target)) return NULL;
    const dsc_backend_t *be = ctx->backend;
    const dsc_dtype_t dt = pred->dtype;
    const int64_t n = pred->numel;
    dsc_tensor_t *diff = dsc__tensor_empty_like(ctx, pred);
    dsc_tensor_t *sq = dsc__tensor_empty_like(ctx, pred);
    const int64_t one = 1;
    dsc_tensor_t *out = dsc__tensor_empty(ctx, dt, 1, &one);
    if (!diff || !sq || !out) return NULL;
    be->binary(&ctx->device, dt, DSC_BINARY_SUB, n, pred->data, n, target->data, diff->data);
    be->binary(&ctx->device, dt, DSC_BINARY_MUL, n, diff->data, n, diff->data, sq->data);
    be->sum_to(&ctx->device, dt, n, 1.0, (double)n, sq->data, out->data);
    dsc_tensor_t *in[2] = {pred, target};
    if (dsc__needs_grad(ctx, 2, in)) {
        dsc_node_t *node = dsc__record(ctx, "dsc_mse", mse_backward, out, 2, in);
        if (!node) return NULL;
        node->saved[0] = diff;
    }
    return out;
}

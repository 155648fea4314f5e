/* The linear layer as single ops (dsc/ops.h dsc_linear, dsc_gelu_linear,
 * dsc_linear_residual): one output where dsc_matmul + dsc_bias_add keep two, the gemm and
 * its bias in one backend call (backend.h's linear: cuBLASLt's bias epilogue on the GPU).
 * dsc_gelu_linear also takes the MLP's GELU in: its output only ever exists in pool scratch
 * (src/core/grad_pool.c), computed again in backward, so the MLP keeps its [*, 4C]
 * pre-activation alone. The residual variant adds the layer's output to a residual stream
 * in the same output (a transformer's projections: x + proj(h) keeps one tensor, not two):
 * the output is the linear's, then residual + it, in place, as dsc_add(residual, linear)
 * computes it.
 *
 * Backward (G = dout [M, N]): dresidual += G, dx += G w (gemm), dw += G^T x (gemm), dbias
 * += column sums of G: the same backend calls, in the same arithmetic, as the unfused ops'
 * backward. Node inputs: x, w, bias (may be NULL), residual (may be NULL); i[0] = gelu. */
#include <string.h>

#include "ops/op_common.h"

/* Checks x [*, K], w [N, K], bias [N] or NULL of one dtype; fills m, n, k. */
static bool check_linear(dsc_ctx_t *ctx, const char *op, const dsc_tensor_t *x, const dsc_tensor_t *w,
                         const dsc_tensor_t *bias, int64_t *m, int64_t *n, int64_t *k) {
    if (!dsc__op_check_kernel_float(ctx, op, "x", x) || !dsc__op_check_same_dtype(ctx, op, "x", x, "w", w)) return false;
    if (bias && !dsc__op_check_same_dtype(ctx, op, "x", x, "bias", bias)) return false;
    char sx[DSC_OP_SHAPE_BUF], sw[DSC_OP_SHAPE_BUF], sb[DSC_OP_SHAPE_BUF];
    if (w->ndim != 2 || w->shape[1] != dsc__op_last_dim(x)) {
        dsc__fail(ctx, DSC_ERR_INVALID, "%s: w %s must be 2-D [N, K] with K the last dim of x %s", op,
                  dsc__shape_str(w, sw, sizeof sw), dsc__shape_str(x, sx, sizeof sx));
        return false;
    }
    if (bias && (bias->ndim != 1 || bias->shape[0] != w->shape[0])) {
        dsc__fail(ctx, DSC_ERR_INVALID, "%s: bias %s must be 1-D [N] for w %s", op, dsc__shape_str(bias, sb, sizeof sb),
                  dsc__shape_str(w, sw, sizeof sw));
        return false;
    }
    *n = w->shape[0];
    *k = w->shape[1];
    *m = dsc__op_rows(x);
    if (*m > INT32_MAX || *n > INT32_MAX || *k > INT32_MAX) { /* cblas takes int sizes */
        dsc__fail(ctx, DSC_ERR_UNSUPPORTED, "%s: x %s, w %s: a dimension exceeds 2^31 - 1", op,
                  dsc__shape_str(x, sx, sizeof sx), dsc__shape_str(w, sw, sizeof sw));
        return false;
    }
    return true;
}

/* The output: x's leading dims + [N]. */
static dsc_tensor_t *linear_out(dsc_ctx_t *ctx, const dsc_tensor_t *x, int64_t n) {
    int64_t shape[DSC_MAX_DIMS];
    for (int i = 0; i + 1 < x->ndim; i++) shape[i] = x->shape[i];
    shape[x->ndim - 1] = n;
    return dsc__tensor_empty(ctx, x->dtype, x->ndim, shape);
}

/* dbias and dw from G and the layer's input values xv (x itself, or gelu(pre) in scratch). */
static void param_grads(dsc_ctx_t *ctx, dsc_node_t *node, int64_t m, int64_t n, int64_t k, const void *g,
                        const void *xv, dsc_tensor_t *gw) {
    const dsc_backend_t *be = ctx->backend;
    dsc_tensor_t *bias = node->in[2];
    dsc_tensor_t *gb = dsc__grad(ctx, bias);
    if (gb) be->sum_rows_acc(&ctx->device, gb->dtype, m, n, 1.0, g, gb->data);
    if (gw) /* [N, K] += G^T [N, M] @ X [M, K] */
        be->gemm(&ctx->device, gw->dtype, true, false, n, k, m, 1.0, g, n, xv, k, 1.0, gw->data, k);
}

/* dresidual += G (a copy when dresidual holds nothing yet) */
static void residual_grad(dsc_ctx_t *ctx, dsc_node_t *node) {
    bool overwrite;
    dsc_tensor_t *gr = dsc__grad_overwrite(ctx, node->in[3], &overwrite);
    if (!gr) return;
    if (overwrite) dsc__dev_copy(ctx, gr->data, node->out->grad->data, dsc_tensor_nbytes(gr));
    else ctx->backend->axpy(&ctx->device, gr->dtype, gr->numel, 1.0, node->out->grad->data, gr->data);
}

static void linear_backward(dsc_ctx_t *ctx, dsc_node_t *node) {
    dsc_tensor_t *x = node->in[0], *w = node->in[1];
    const int64_t n = w->shape[0], k = w->shape[1], m = x->numel / (k ? k : 1);
    const void *g = node->out->grad->data;
    residual_grad(ctx, node);
    param_grads(ctx, node, m, n, k, g, x->data, dsc__grad(ctx, w));
    bool overwrite;
    dsc_tensor_t *gx = dsc__grad_overwrite(ctx, x, &overwrite);
    if (gx) /* [M, K] (+)= G [M, N] @ W [N, K] */
        ctx->backend->gemm(&ctx->device, x->dtype, false, false, m, k, n, 1.0, g, n, w->data, k, overwrite ? 0.0 : 1.0,
                           gx->data, k);
}

static dsc_tensor_t *record(dsc_ctx_t *ctx, const char *op, dsc_backward_fn backward, dsc_tensor_t *out,
                            dsc_tensor_t *x, dsc_tensor_t *w, dsc_tensor_t *bias, dsc_tensor_t *residual) {
    dsc_tensor_t *in[4] = {x, w, bias, residual};
    if (dsc__needs_grad(ctx, 4, in) && !dsc__record(ctx, op, backward, out, 4, in)) return NULL;
    return out;
}

/* The residual, when given, must have the output's shape and dtype. */
static bool check_residual(dsc_ctx_t *ctx, const char *op, const dsc_tensor_t *out, const dsc_tensor_t *residual) {
    if (!residual) return true;
    char so[DSC_OP_SHAPE_BUF], sr[DSC_OP_SHAPE_BUF];
    if (residual->dtype != out->dtype || residual->numel != out->numel || residual->ndim != out->ndim ||
        memcmp(residual->shape, out->shape, sizeof(int64_t) * (size_t)out->ndim) != 0) {
        dsc__fail(ctx, DSC_ERR_INVALID, "%s: residual %s %s must have the output's shape %s and dtype %s", op,
                  dsc__shape_str(residual, sr, sizeof sr), dsc_dtype_name(residual->dtype),
                  dsc__shape_str(out, so, sizeof so), dsc_dtype_name(out->dtype));
        return false;
    }
    return true;
}

/* out = x w^T + bias (+ residual: the backend's linear_residual, or the linear followed by
 * residual + out in place, as dsc_add(residual, out) computes it, residual first). */
static void forward(dsc_ctx_t *ctx, int64_t m, int64_t n, int64_t k, const void *x, const dsc_tensor_t *w,
                    const dsc_tensor_t *bias, const dsc_tensor_t *residual, dsc_tensor_t *out) {
    const dsc_backend_t *be = ctx->backend;
    const void *b = bias ? bias->data : NULL;
    if (residual && be->linear_residual) {
        be->linear_residual(&ctx->device, out->dtype, m, n, k, x, w->data, b, residual->data, out->data);
        return;
    }
    be->linear(&ctx->device, out->dtype, m, n, k, x, w->data, b, out->data);
    if (residual)
        be->binary(&ctx->device, out->dtype, DSC_BINARY_ADD, out->numel, residual->data, out->numel, out->data,
                   out->data);
}

static dsc_tensor_t *linear_impl(dsc_ctx_t *ctx, const char *op, dsc_tensor_t *x, dsc_tensor_t *w, dsc_tensor_t *bias,
                                 dsc_tensor_t *residual) {
    int64_t m, n, k;
    if (!check_linear(ctx, op, x, w, bias, &m, &n, &k)) return NULL;
    dsc_tensor_t *out = linear_out(ctx, x, n);
    if (!out || !check_residual(ctx, op, out, residual)) return NULL;
    forward(ctx, m, n, k, x->data, w, bias, residual, out);
    return record(ctx, op, linear_backward, out, x, w, bias, residual);
}

dsc_tensor_t *dsc_linear(dsc_ctx_t *ctx, dsc_tensor_t *x, dsc_tensor_t *w, dsc_tensor_t *bias) {
    if (!ctx || !x || !w) return NULL;
    return linear_impl(ctx, "dsc_linear", x, w, bias, NULL);
}

/* Gives back a GELU made ahead that no op took (its pre-activation went elsewhere). */
static void drop_gelu_ahead(dsc_ctx_t *ctx) {
    if (ctx->gelu_ahead.gelu) dsc__grad_pool_scratch_give(ctx, ctx->gelu_ahead.gelu);
    ctx->gelu_ahead.gelu = NULL;
    ctx->gelu_ahead.pre = NULL;
}

dsc_tensor_t *dsc__linear_gelu_ahead(dsc_ctx_t *ctx, dsc_tensor_t *x, dsc_tensor_t *w, dsc_tensor_t *bias) {
    static const char *op = "dsc_linear";
    if (!ctx || !x || !w) return NULL;
    drop_gelu_ahead(ctx);
    if (!ctx->backend->linear_gelu || !bias) return linear_impl(ctx, op, x, w, bias, NULL);
    int64_t m, n, k;
    if (!check_linear(ctx, op, x, w, bias, &m, &n, &k)) return NULL;
    dsc_tensor_t *out = linear_out(ctx, x, n);
    if (!out) return NULL;
    void *s = dsc__grad_pool_scratch(ctx, dsc_tensor_nbytes(out));
    if (!s) return NULL;
    ctx->backend->linear_gelu(&ctx->device, x->dtype, m, n, k, x->data, w->data, bias->data, out->data, s);
    ctx->gelu_ahead.pre = out;
    ctx->gelu_ahead.gelu = s;
    return record(ctx, op, linear_backward, out, x, w, bias, NULL);
}

/* Backward with the GELU recomputed into one scratch: gelu(pre) for dw, then overwritten by
 * d gelu = G w (beta = 0: what the unfused matmul added to a zeroed gradient), then
 * dpre += gelu'(pre) * d gelu; or, where the backend has gemm_dgelu and dpre holds nothing
 * yet, dpre = (G w) * gelu'(pre) in one call. */
static void gelu_linear_backward(dsc_ctx_t *ctx, dsc_node_t *node) {
    dsc_tensor_t *pre = node->in[0], *w = node->in[1];
    const dsc_backend_t *be = ctx->backend;
    const int64_t n = w->shape[0], k = w->shape[1], m = pre->numel / (k ? k : 1);
    const void *g = node->out->grad->data;
    residual_grad(ctx, node);
    void *s = dsc__grad_pool_scratch(ctx, dsc_tensor_nbytes(pre));
    if (!s) return;
    dsc_tensor_t *gw = dsc__grad(ctx, w);
    if (gw) be->unary(&ctx->device, pre->dtype, DSC_UNARY_GELU, pre->numel, pre->data, s);
    param_grads(ctx, node, m, n, k, g, s, gw);
    bool overwrite = false;
    dsc_tensor_t *gpre = be->gemm_dgelu ? dsc__grad_overwrite(ctx, pre, &overwrite) : dsc__grad(ctx, pre);
    if (gpre && overwrite) { /* one call: the gemm with GELU's derivative applied to its output */
        be->gemm_dgelu(&ctx->device, pre->dtype, m, n, k, g, w->data, pre->data, gpre->data);
    } else if (gpre) {
        be->gemm(&ctx->device, pre->dtype, false, false, m, k, n, 1.0, g, n, w->data, k, 0.0, s, k);
        be->unary_backward(&ctx->device, pre->dtype, DSC_UNARY_GELU, pre->numel, pre->data, NULL, s, gpre->data);
    }
    dsc__grad_pool_scratch_give(ctx, s);
}

static dsc_tensor_t *gelu_linear_impl(dsc_ctx_t *ctx, const char *op, dsc_tensor_t *pre, dsc_tensor_t *w,
                                      dsc_tensor_t *bias, dsc_tensor_t *residual) {
    int64_t m, n, k;
    if (!check_linear(ctx, op, pre, w, bias, &m, &n, &k)) return NULL;
    dsc_tensor_t *out = linear_out(ctx, pre, n);
    if (!out || !check_residual(ctx, op, out, residual)) return NULL;
    void *s;
    if (ctx->gelu_ahead.pre == pre) { /* made by the gemm that made pre */
        s = ctx->gelu_ahead.gelu;
        ctx->gelu_ahead.gelu = NULL;
        ctx->gelu_ahead.pre = NULL;
    } else {
        drop_gelu_ahead(ctx);
        s = dsc__grad_pool_scratch(ctx, dsc_tensor_nbytes(pre));
        if (!s) return NULL;
        ctx->backend->unary(&ctx->device, pre->dtype, DSC_UNARY_GELU, pre->numel, pre->data, s);
    }
    forward(ctx, m, n, k, s, w, bias, residual, out);
    dsc__grad_pool_scratch_give(ctx, s);
    return record(ctx, op, gelu_linear_backward, out, pre, w, bias, residual);
}

dsc_tensor_t *dsc_gelu_linear(dsc_ctx_t *ctx, dsc_tensor_t *pre, dsc_tensor_t *w, dsc_tensor_t *bias) {
    if (!ctx || !pre || !w) return NULL;
    return gelu_linear_impl(ctx, "dsc_gelu_linear", pre, w, bias, NULL);
}

dsc_tensor_t *dsc_linear_residual(dsc_ctx_t *ctx, dsc_tensor_t *x, dsc_tensor_t *w, dsc_tensor_t *bias,
                                  dsc_tensor_t *residual, bool gelu_input) {
    if (!ctx || !x || !w || !residual) return NULL;
    return gelu_input ? gelu_linear_impl(ctx, "dsc_linear_residual", x, w, bias, residual)
                      : linear_impl(ctx, "dsc_linear_residual", x, w, bias, residual);
}

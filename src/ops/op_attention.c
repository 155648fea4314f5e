/* Causal multi-head self-attention core (GPT-2): qkv [B, T, 3C] -> out [B, T, C].
 * Checks, the dropout stream range, tape recording; the kernels (flash style: only the
 * output and a per-row log-sum-exp are kept, backward recomputes the probabilities) do the
 * scores, softmax, dropout and weighted sums. */
#include <math.h>

#include "ops/op_common.h"

/* in: qkv; saved: lse [B, H, T] (f32, f64 for f64 qkv); i[0] = n_head, i[1], i[2] = the
 * dropout stream (seed, offset) of the forward; f[0] = the dropout p used (0: none). The
 * kernel recomputes the probabilities from qkv and lse, and the dropout mask from the stream. */
static void attention_backward(dsc_ctx_t *ctx, dsc_node_t *node) {
    dsc_tensor_t *qkv = node->in[0], *out = node->out, *lse = node->saved[0];
    /* a backend that can write the gradient takes an unwritten one without its zero fill */
    bool overwrite = false;
    dsc_tensor_t *dqkv = ctx->backend->attention_backward_write ? dsc__grad_overwrite(ctx, qkv, &overwrite)
                                                                : dsc__grad(ctx, qkv);
    if (!dqkv) return;
    (overwrite ? ctx->backend->attention_backward_write : ctx->backend->attention_backward)(
            &ctx->device, qkv->dtype, qkv->shape[0], qkv->shape[1], out->shape[2], node->i[0], qkv->data, out->data,
            lse->data, out->grad->data, node->f[0], (uint64_t)node->i[1], (uint64_t)node->i[2], dqkv->data);
}

dsc_tensor_t *dsc_attention(dsc_ctx_t *ctx, dsc_tensor_t *qkv, int n_head, double attn_dropout) {
    static const char op[] = "dsc_attention";
    if (!ctx || !qkv) return NULL;
    if (!dsc__op_check_kernel_float(ctx, op, "qkv", qkv)) return NULL;
    if (!dsc__op_check_ndim(ctx, op, "qkv", qkv, 3, 3)) return NULL;
    char s[DSC_OP_SHAPE_BUF];
    int64_t b = qkv->shape[0], t = qkv->shape[1], c3 = qkv->shape[2], c = c3 / 3;
    if (c3 <= 0 || c3 % 3 != 0)
        return dsc__fail(ctx, DSC_ERR_INVALID, "%s: qkv (tensor %s) has shape %s; the last dim must be 3*C with C > 0",
                         op, dsc_tensor_name(qkv), dsc__shape_str(qkv, s, sizeof s));
    if (n_head < 1 || c % n_head != 0)
        return dsc__fail(ctx, DSC_ERR_INVALID, "%s: n_head = %d must be >= 1 and divide C = %lld (qkv shape %s)", op,
                         n_head, (long long)c, dsc__shape_str(qkv, s, sizeof s));
    if (!(attn_dropout >= 0 && attn_dropout < 1))
        return dsc__fail(ctx, DSC_ERR_INVALID, "%s: attn_dropout = %g must be in [0, 1) (qkv shape %s)", op,
                         attn_dropout, dsc__shape_str(qkv, s, sizeof s));

    const double p = ctx->training ? attn_dropout : 0.0;
    int64_t lse_shape[3] = {b, n_head, t}, out_shape[3] = {b, t, c};
    dsc_tensor_t *lse = dsc__tensor_empty(ctx, qkv->dtype == DSC_F64 ? DSC_F64 : DSC_F32, 3, lse_shape);
    dsc_tensor_t *out = dsc__tensor_empty(ctx, qkv->dtype, 3, out_shape);
    if (!lse || !out) return NULL;
    /* The mask of element (b, h, i, j) is stream position offset + ((b*H + h)*T + i)*T + j;
     * the whole [B, H, T, T] range is reserved (positions above the diagonal go unused). */
    const uint64_t seed = ctx->drop_seed;
    const uint64_t offset = p > 0 ? dsc__ctx_dropout_draw(ctx, (uint64_t)(b * n_head * t * t)) : 0;
    ctx->backend->attention(&ctx->device, qkv->dtype, b, t, c, n_head, qkv->data, p, seed, offset, out->data, lse->data);
    if (dsc__needs_grad(ctx, 1, &qkv)) {
        dsc_node_t *node = dsc__record(ctx, op, attention_backward, out, 1, &qkv);
        if (!node) return NULL;
        node->saved[0] = lse;
        node->i[0] = n_head;
        node->i[1] = (int64_t)seed;
        node->i[2] = (int64_t)offset;
        node->f[0] = p;
    }
    return out;
}

/* Causal multi-head self-attention core (GPT-2): qkv [B, T, 3C] -> out [B, T, C].
 * Checks, the dropout mask (drawn from the context RNG), tape recording; the kernels do
 * the scores, softmax and weighted sums. */
#include <math.h>

#include "ops/op_common.h"

/* in: qkv; saved: pre_att (probabilities), att (after dropout; == pre_att without dropout),
 * mask (NULL without dropout); i[0] = n_head. */
static void attention_backward(dsc_ctx_t *ctx, dsc_node_t *node) {
    dsc_tensor_t *qkv = node->in[0], *out = node->out, *mask = node->saved[2];
    dsc_tensor_t *dqkv = dsc__grad(ctx, qkv);
    if (!dqkv) return;
    ctx->backend->attention_backward(qkv->dtype, qkv->shape[0], qkv->shape[1], out->shape[2], node->i[0], qkv->data,
                                     mask ? mask->data : NULL, node->saved[0]->data, node->saved[1]->data,
                                     out->grad->data, dqkv->data);
}

/* A [B, H, T, T] dropout mask: entry (t, t2 <= t) is 0 with probability p, else 1/(1-p);
 * entries above the diagonal (masked by causality) are 0 and draw nothing. */
static void fill_causal_mask(dsc_ctx_t *ctx, dsc_tensor_t *mask, int64_t n_mats, int64_t t, double p) {
    double keep = 1.0 / (1.0 - p);
    for (int64_t m = 0; m < n_mats; m++)
        for (int64_t r = 0; r < t; r++)
            for (int64_t c = 0; c < t; c++) {
                double v = c <= r && dsc_ctx_rand_uniform(ctx) >= p ? keep : 0.0;
                int64_t i = (m * t + r) * t + c;
                if (mask->dtype == DSC_F64) ((double *)mask->data)[i] = v;
                else ((float *)mask->data)[i] = (float)v;
            }
}

dsc_tensor_t *dsc_attention(dsc_ctx_t *ctx, dsc_tensor_t *qkv, int n_head, double attn_dropout) {
    static const char op[] = "dsc_attention";
    if (!ctx || !qkv) return NULL;
    if (!dsc__op_check_float(ctx, op, "qkv", qkv)) return NULL;
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

    bool drop = ctx->training && attn_dropout > 0;
    int64_t att_shape[4] = {b, n_head, t, t}, out_shape[3] = {b, t, c};
    dsc_tensor_t *pre_att = dsc__tensor_empty(ctx, qkv->dtype, 4, att_shape);
    dsc_tensor_t *att = drop ? dsc__tensor_empty(ctx, qkv->dtype, 4, att_shape) : pre_att;
    dsc_tensor_t *mask = drop ? dsc__tensor_empty(ctx, qkv->dtype, 4, att_shape) : NULL;
    dsc_tensor_t *out = dsc__tensor_empty(ctx, qkv->dtype, 3, out_shape);
    if (!pre_att || !att || (drop && !mask) || !out) return NULL;
    if (drop) fill_causal_mask(ctx, mask, b * n_head, t, attn_dropout);

    ctx->backend->attention(qkv->dtype, b, t, c, n_head, qkv->data, mask ? mask->data : NULL, pre_att->data,
                            att->data, out->data);
    if (dsc__needs_grad(ctx, 1, &qkv)) {
        dsc_node_t *node = dsc__record(ctx, op, attention_backward, out, 1, &qkv);
        if (!node) return NULL;
        node->saved[0] = pre_att;
        node->saved[1] = att;
        node->saved[2] = mask;
        node->i[0] = n_head;
        node->f[0] = attn_dropout;
    }
    return out;
}

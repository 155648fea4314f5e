/* Cross-entropy loss from logits and integer targets (PyTorch reduction='mean' with
 * ignore_index). */
#include "ops/op_common.h"

/* in: logits, targets; saved: probs [rows, V]; i[0] = ignore_index, i[1] = counted rows. */
static void cross_entropy_backward(dsc_ctx_t *ctx, dsc_node_t *node) {
    dsc_tensor_t *logits = node->in[0], *targets = node->in[1], *probs = node->saved[0];
    int64_t count = node->i[1];
    dsc_tensor_t *dlogits = dsc__grad(ctx, logits);
    if (!dlogits || count == 0) return;
    double scale = dsc_tensor_item(node->out->grad) / (double)count;
    ctx->backend->cross_entropy_backward(logits->dtype, probs->shape[0], probs->shape[1], probs->data, targets->data,
                                         (int32_t)node->i[0], scale, dlogits->data);
}

dsc_tensor_t *dsc_cross_entropy(dsc_ctx_t *ctx, dsc_tensor_t *logits, dsc_tensor_t *targets, int32_t ignore_index) {
    static const char op[] = "dsc_cross_entropy";
    if (!ctx || !logits || !targets) return NULL;
    if (!dsc__op_check_float(ctx, op, "logits", logits)) return NULL;
    if (!dsc__op_check_dtype(ctx, op, "targets", targets, DSC_I32)) return NULL;
    char sl[DSC_OP_SHAPE_BUF], st[DSC_OP_SHAPE_BUF];
    int64_t v = dsc__op_last_dim(logits), rows = dsc__op_rows(logits);
    if (v <= 0)
        return dsc__fail(ctx, DSC_ERR_INVALID, "%s: logits (tensor %s) has shape %s; the class dim must be > 0", op,
                         dsc_tensor_name(logits), dsc__shape_str(logits, sl, sizeof sl));
    if (targets->numel != rows)
        return dsc__fail(ctx, DSC_ERR_INVALID,
                         "%s: targets %s has %lld elements but logits %s has %lld rows (targets [*] must match "
                         "logits [*, V])",
                         op, dsc__shape_str(targets, st, sizeof st), (long long)targets->numel,
                         dsc__shape_str(logits, sl, sizeof sl), (long long)rows);
    const int32_t *tg = targets->data;
    int64_t count = 0;
    for (int64_t r = 0; r < rows; r++) {
        if (tg[r] == ignore_index) continue;
        if (tg[r] < 0 || tg[r] >= v)
            return dsc__fail(ctx, DSC_ERR_INVALID,
                             "%s: targets (tensor %s, shape %s) holds %d at flat position %lld, outside [0, %lld) "
                             "and not ignore_index %d (logits shape %s)",
                             op, dsc_tensor_name(targets), dsc__shape_str(targets, st, sizeof st), (int)tg[r],
                             (long long)r, (long long)v, (int)ignore_index, dsc__shape_str(logits, sl, sizeof sl));
        count++;
    }

    int64_t probs_shape[2] = {rows, v}, one = 1;
    dsc_tensor_t *probs = dsc__tensor_empty(ctx, logits->dtype, 2, probs_shape);
    dsc_tensor_t *out = dsc__tensor_empty(ctx, logits->dtype, 1, &one);
    if (!probs || !out) return NULL;
    double total = ctx->backend->cross_entropy(logits->dtype, rows, v, logits->data, tg, ignore_index, probs->data);
    double loss = count ? total / (double)count : 0.0;
    dsc_convert(out->data, out->dtype, &loss, DSC_F64, 1);
    dsc_tensor_t *in[2] = {logits, targets};
    if (dsc__needs_grad(ctx, 2, in)) {
        dsc_node_t *node = dsc__record(ctx, op, cross_entropy_backward, out, 2, in);
        if (!node) return NULL;
        node->saved[0] = probs;
        node->i[0] = ignore_index;
        node->i[1] = count;
    }
    return out;
}

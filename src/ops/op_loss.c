/* Cross-entropy loss from logits and integer targets (PyTorch reduction='mean' with
 * ignore_index), fused: the kernel writes per-row losses and log-sum-exps (never the
 * [rows, V] probabilities); the mean is reduced on the device into the [1] output; backward
 * recomputes the softmax from the logits and the saved log-sum-exps.
 *
 * Host reads: the targets are checked on the host (range errors name the position), which
 * also counts the rows that are not ignored; nothing else of the op reads device data. */
#include <stdlib.h>
#include <string.h>

#include "ops/op_common.h"

/* Loss and lse dtype: f64 for f64 logits, f32 otherwise (16-bit logits give f32 losses). */
static dsc_dtype_t loss_dtype(dsc_dtype_t logits) { return logits == DSC_F64 ? DSC_F64 : DSC_F32; }

/* True when no node of the tape other than `self` uses `t` (as an input or a saved
 * tensor): then the gradient may be written over t's data. */
static bool tape_uses_only(const dsc_ctx_t *ctx, const dsc_tensor_t *t, const dsc_node_t *self) {
    for (size_t k = 0; k < ctx->tape_len; k++) {
        const dsc_node_t *n = ctx->tape[k];
        if (n == self) continue;
        for (int i = 0; i < n->n_in; i++)
            if (n->in[i] == t) return false;
        for (int i = 0; i < DSC_NODE_MAX_SAVED; i++)
            if (n->saved[i] == t) return false;
    }
    return true;
}

/* True when t's data belongs to t alone among the tape's tensors it came from: not a view
 * (reshape) sharing its producer's input memory. */
static bool owns_data(const dsc_tensor_t *t) {
    const dsc_node_t *p = t->producer;
    for (int i = 0; p && i < p->n_in; i++)
        if (p->in[i] && p->in[i]->data == t->data) return false;
    return p != NULL;
}

/* in: logits, targets; saved: lse [rows]; i[0] = ignore_index, i[1] = counted rows,
 * i[2] = 1 when the caller gave the logits up (dsc_cross_entropy_consume). */
static void cross_entropy_backward(dsc_ctx_t *ctx, dsc_node_t *node) {
    dsc_tensor_t *logits = node->in[0], *targets = node->in[1], *lse = node->saved[0], *out = node->out;
    const int64_t count = node->i[1], rows = lse->numel, v = logits->numel / (rows ? rows : 1);
    if (!logits->requires_grad) return;
    if (count == 0) { /* every target ignored: a zero gradient */
        dsc__grad(ctx, logits);
        return;
    }
    /* The memory-lean path: the logits' gradient takes their own memory when the caller gave
     * them up, nothing has accumulated into them yet, and no other recorded op reads them. */
    bool in_place = node->i[2] && !logits->grad && !logits->persistent && owns_data(logits) &&
                    tape_uses_only(ctx, logits, node);
    dsc_tensor_t *dlogits;
    if (in_place) {
        dlogits = dsc__arena_alloc(ctx, sizeof *dlogits);
        if (!dlogits) return;
        *dlogits = *logits; /* same shape, dtype and data */
        dlogits->grad = NULL;
        dlogits->producer = NULL;
        dlogits->requires_grad = false;
        logits->grad = dlogits;
    } else {
        dlogits = dsc__grad(ctx, logits);
        if (!dlogits) return;
    }
    /* g = d(loss) / count, on the device: no host read of the upstream gradient. */
    int64_t one = 1;
    dsc_tensor_t *g = dsc__tensor_empty(ctx, out->dtype, 1, &one);
    if (!g) return;
    ctx->backend->scale(&ctx->device, out->dtype, 1, 1.0 / (double)count, out->grad->data, g->data);
    ctx->backend->cross_entropy_backward(&ctx->device, logits->dtype, rows, v, v, logits->data, lse->data, targets->data,
                                         (int32_t)node->i[0], g->data, dlogits->data, !in_place);
}

/* The targets' range check, which also counts the rows that are not ignored (the op's one
 * host read: a host copy when the targets live on a device and host_targets is NULL). */
int64_t dsc__ce_check_targets(dsc_ctx_t *ctx, const char *op, const dsc_tensor_t *targets, const int32_t *host_targets,
                              int64_t v, int32_t ignore_index, const char *logits_shape) {
    const int64_t rows = targets->numel;
    char st[DSC_OP_SHAPE_BUF];
    const int32_t *tg = host_targets ? host_targets : targets->data;
    int32_t *host_tg = NULL;
    if (!host_targets && !dsc__dev_host_accessible(ctx, targets->data)) {
        host_tg = malloc((size_t)rows * sizeof *host_tg + 1);
        if (!host_tg) {
            dsc__fail(ctx, DSC_ERR_NOMEM, "%s: out of memory checking targets", op);
            return -1;
        }
        if (dsc__dev_to_host(ctx, host_tg, targets->data, (size_t)rows * sizeof *host_tg) != DSC_OK) {
            free(host_tg);
            return -1;
        }
        tg = host_tg;
    }
    int64_t count = 0;
    for (int64_t r = 0; r < rows; r++) {
        if (tg[r] == ignore_index) continue;
        if (tg[r] < 0 || tg[r] >= v) {
            int bad = (int)tg[r];
            free(host_tg);
            dsc__fail(ctx, DSC_ERR_INVALID,
                      "%s: targets (tensor %s, shape %s) holds %d at flat position %lld, outside [0, %lld) "
                      "and not ignore_index %d (logits shape %s)",
                      op, dsc_tensor_name(targets), dsc__shape_str(targets, st, sizeof st), bad, (long long)r,
                      (long long)v, (int)ignore_index, logits_shape);
            return -1;
        }
        count++;
    }
    free(host_tg);
    return count;
}

static dsc_tensor_t *cross_entropy_impl(dsc_ctx_t *ctx, const char *op, dsc_tensor_t *logits, dsc_tensor_t *targets,
                                        int32_t ignore_index, bool consume) {
    if (!ctx || !logits || !targets) return NULL;
    if (!dsc__op_check_kernel_float(ctx, op, "logits", logits)) return NULL;
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
    const int64_t count = dsc__ce_check_targets(ctx, op, targets, NULL, v, ignore_index, dsc__shape_str(logits, sl, sizeof sl));
    if (count < 0) return NULL;

    const dsc_dtype_t ldt = loss_dtype(logits->dtype);
    int64_t one = 1;
    dsc_tensor_t *losses = dsc__tensor_empty(ctx, ldt, 1, &rows), *lse = dsc__tensor_empty(ctx, ldt, 1, &rows);
    dsc_tensor_t *out = dsc__tensor_empty(ctx, ldt, 1, &one);
    if (!losses || !lse || !out) return NULL;
    ctx->backend->cross_entropy(&ctx->device, logits->dtype, rows, v, v, logits->data, targets->data, ignore_index, losses->data,
                                lse->data);
    /* mean over the counted rows, reduced on the device (ignored rows hold 0) */
    ctx->backend->fill(&ctx->device, ldt, 1, 0.0, out->data);
    if (count) ctx->backend->sum_rows_acc(&ctx->device, ldt, rows, 1, 1.0 / (double)count, losses->data, out->data);
    dsc_tensor_t *in[2] = {logits, targets};
    if (dsc__needs_grad(ctx, 2, in)) {
        dsc_node_t *node = dsc__record(ctx, op, cross_entropy_backward, out, 2, in);
        if (!node) return NULL;
        node->saved[0] = lse;
        node->i[0] = ignore_index;
        node->i[1] = count;
        node->i[2] = consume;
    }
    return out;
}

dsc_tensor_t *dsc_cross_entropy(dsc_ctx_t *ctx, dsc_tensor_t *logits, dsc_tensor_t *targets, int32_t ignore_index) {
    return cross_entropy_impl(ctx, "dsc_cross_entropy", logits, targets, ignore_index, false);
}

dsc_tensor_t *dsc_cross_entropy_consume(dsc_ctx_t *ctx, dsc_tensor_t *logits, dsc_tensor_t *targets,
                                        int32_t ignore_index) {
    return cross_entropy_impl(ctx, "dsc_cross_entropy_consume", logits, targets, ignore_index, true);
}

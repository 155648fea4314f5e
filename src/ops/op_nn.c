/* Neural-network ops over the last dim: softmax, layer norm, embedding lookup, dropout.
 * Shape/dtype checks and tape recording here; the loops are backend kernels. */
#include <math.h>
#include <stdlib.h>

#include "ops/op_common.h"

/* ---- softmax ---------------------------------------------------------------------- */

static void softmax_backward(dsc_ctx_t *ctx, dsc_node_t *node) {
    dsc_tensor_t *y = node->out;
    dsc_tensor_t *dx = dsc__grad(ctx, node->in[0]);
    if (!dx) return;
    ctx->backend->softmax_backward(&ctx->device, y->dtype, dsc__op_rows(y), dsc__op_last_dim(y), y->data, y->grad->data, dx->data);
}

dsc_tensor_t *dsc_softmax(dsc_ctx_t *ctx, dsc_tensor_t *x) {
    if (!ctx || !x) return NULL;
    if (!dsc__op_check_kernel_float(ctx, "dsc_softmax", "x", x)) return NULL;
    dsc_tensor_t *y = dsc__tensor_empty_like(ctx, x);
    if (!y) return NULL;
    ctx->backend->softmax(&ctx->device, x->dtype, dsc__op_rows(x), dsc__op_last_dim(x), x->data, y->data);
    if (dsc__needs_grad(ctx, 1, &x) && !dsc__record(ctx, "dsc_softmax", softmax_backward, y, 1, &x)) return NULL;
    return y;
}

/* ---- layer norm ------------------------------------------------------------------- */

/* in: x, weight, bias (may be NULL); saved: mean, rstd (f32 for 16-bit x). */
static void layernorm_backward(dsc_ctx_t *ctx, dsc_node_t *node) {
    dsc_tensor_t *x = node->in[0], *w = node->in[1], *b = node->in[2], *y = node->out;
    dsc_tensor_t *dx = dsc__grad(ctx, x), *dw = dsc__grad(ctx, w), *db = b ? dsc__grad(ctx, b) : NULL;
    if (!dx && !dw && !db) return;
    ctx->backend->layernorm_backward(&ctx->device, x->dtype, dsc__op_rows(x), dsc__op_last_dim(x), x->data, w->data,
                                     node->saved[0]->data, node->saved[1]->data, y->grad->data,
                                     dx ? dx->data : NULL, dw ? dw->data : NULL, db ? db->data : NULL);
}

dsc_tensor_t *dsc_layernorm(dsc_ctx_t *ctx, dsc_tensor_t *x, dsc_tensor_t *weight, dsc_tensor_t *bias, double eps) {
    static const char op[] = "dsc_layernorm";
    if (!ctx || !x || !weight) return NULL;
    if (!dsc__op_check_same_dtype(ctx, op, "x", x, "weight", weight)) return NULL;
    if (bias && !dsc__op_check_same_dtype(ctx, op, "x", x, "bias", bias)) return NULL;
    int64_t n = dsc__op_last_dim(x), rows = dsc__op_rows(x);
    if (!dsc__op_check_vector(ctx, op, "weight", weight, n, "the last dim of x")) return NULL;
    if (bias && !dsc__op_check_vector(ctx, op, "bias", bias, n, "the last dim of x")) return NULL;
    if (!(eps >= 0) || isinf(eps)) return dsc__fail(ctx, DSC_ERR_INVALID, "%s: eps = %g must be finite and >= 0", op, eps);

    dsc_tensor_t *y = dsc__tensor_empty_like(ctx, x);
    /* the statistics stay f32 for 16-bit x (backend.h) */
    const dsc_dtype_t stat_dt = dsc__op_is_half(x->dtype) ? DSC_F32 : x->dtype;
    dsc_tensor_t *mean = dsc__tensor_empty(ctx, stat_dt, 1, &rows);
    dsc_tensor_t *rstd = dsc__tensor_empty(ctx, stat_dt, 1, &rows);
    if (!y || !mean || !rstd) return NULL;
    ctx->backend->layernorm(&ctx->device, x->dtype, rows, n, eps, x->data, weight->data, bias ? bias->data : NULL, y->data,
                            mean->data, rstd->data);
    dsc_tensor_t *in[3] = {x, weight, bias};
    if (dsc__needs_grad(ctx, 3, in)) {
        dsc_node_t *node = dsc__record(ctx, op, layernorm_backward, y, 3, in);
        if (!node) return NULL;
        node->saved[0] = mean;
        node->saved[1] = rstd;
        node->f[0] = eps;
    }
    return y;
}

/* ---- embedding -------------------------------------------------------------------- */

/* in: ids, table. */
static void embedding_backward(dsc_ctx_t *ctx, dsc_node_t *node) {
    dsc_tensor_t *ids = node->in[0], *table = node->in[1], *out = node->out;
    dsc_tensor_t *dtable = dsc__grad(ctx, table);
    if (!dtable) return;
    ctx->backend->embedding_backward(&ctx->device, table->dtype, ids->numel, table->shape[1], table->shape[0], ids->data, out->grad->data,
                                     dtable->data);
}

dsc_tensor_t *dsc_embedding(dsc_ctx_t *ctx, dsc_tensor_t *ids, dsc_tensor_t *table) {
    static const char op[] = "dsc_embedding";
    if (!ctx || !ids || !table) return NULL;
    if (!dsc__op_check_dtype(ctx, op, "ids", ids, DSC_I32)) return NULL;
    if (!dsc__op_check_kernel_float(ctx, op, "table", table)) return NULL;
    if (!dsc__op_check_ndim(ctx, op, "table", table, 2, 2)) return NULL;
    if (!dsc__op_check_ndim(ctx, op, "ids", ids, 1, DSC_MAX_DIMS - 1)) return NULL;
    int64_t v = table->shape[0], c = table->shape[1];
    /* The range check reads the ids on the host: a host copy when they live on a device
     * (one small device-to-host copy per lookup; a device-side check would avoid it). */
    const int32_t *id = ids->data;
    int32_t *host_ids = NULL;
    if (!dsc__dev_host_accessible(ctx, ids->data)) {
        host_ids = malloc(dsc_tensor_nbytes(ids) ? dsc_tensor_nbytes(ids) : 1);
        if (!host_ids) return dsc__fail(ctx, DSC_ERR_NOMEM, "%s: out of memory checking ids", op);
        if (dsc__dev_to_host(ctx, host_ids, ids->data, dsc_tensor_nbytes(ids)) != DSC_OK) {
            free(host_ids);
            return NULL;
        }
        id = host_ids;
    }
    for (int64_t i = 0; i < ids->numel; i++) {
        if (id[i] < 0 || id[i] >= v) {
            char si[DSC_OP_SHAPE_BUF], st[DSC_OP_SHAPE_BUF];
            int bad = (int)id[i];
            free(host_ids);
            return dsc__fail(ctx, DSC_ERR_INVALID,
                             "%s: ids (tensor %s, shape %s) holds %d at flat position %lld, outside [0, %lld) "
                             "for table %s of shape %s",
                             op, dsc_tensor_name(ids), dsc__shape_str(ids, si, sizeof si), bad, (long long)i,
                             (long long)v, dsc_tensor_name(table), dsc__shape_str(table, st, sizeof st));
        }
    }
    free(host_ids);
    int64_t shape[DSC_MAX_DIMS];
    for (int d = 0; d < ids->ndim; d++) shape[d] = ids->shape[d];
    shape[ids->ndim] = c;
    dsc_tensor_t *out = dsc__tensor_empty(ctx, table->dtype, ids->ndim + 1, shape);
    if (!out) return NULL;
    ctx->backend->embedding(&ctx->device, table->dtype, ids->numel, c, ids->data, table->data, out->data);
    dsc_tensor_t *in[2] = {ids, table};
    if (dsc__needs_grad(ctx, 2, in) && !dsc__record(ctx, op, embedding_backward, out, 2, in)) return NULL;
    return out;
}

/* ---- dropout ---------------------------------------------------------------------- */

/* in: x; no mask is saved: i[0], i[1] = the stream (seed, offset) of the forward's draw,
 * from which the kernel redraws the mask; f[0] = p. */
static void dropout_backward(dsc_ctx_t *ctx, dsc_node_t *node) {
    dsc_tensor_t *y = node->out;
    dsc_tensor_t *dx = dsc__grad(ctx, node->in[0]);
    if (!dx) return;
    ctx->backend->dropout_backward(&ctx->device, y->dtype, y->numel, node->f[0], (uint64_t)node->i[0], (uint64_t)node->i[1],
                                   y->grad->data, dx->data);
}

dsc_tensor_t *dsc_dropout(dsc_ctx_t *ctx, dsc_tensor_t *x, double p) {
    static const char op[] = "dsc_dropout";
    if (!ctx || !x) return NULL;
    if (!dsc__op_check_kernel_float(ctx, op, "x", x)) return NULL;
    if (!(p >= 0 && p < 1)) {
        char s[DSC_OP_SHAPE_BUF];
        return dsc__fail(ctx, DSC_ERR_INVALID, "%s: p = %g for x (tensor %s, shape %s) must be in [0, 1)", op, p,
                         dsc_tensor_name(x), dsc__shape_str(x, s, sizeof s));
    }
    if (!ctx->training || p == 0) return x;

    dsc_tensor_t *y = dsc__tensor_empty_like(ctx, x);
    if (!y) return NULL;
    /* The mask is a function of the stream position: draw the range here, the kernel (and
     * backward, and a recompute) derive the same mask from it. */
    const uint64_t seed = ctx->drop_seed, offset = dsc__ctx_dropout_draw(ctx, (uint64_t)x->numel);
    ctx->backend->dropout(&ctx->device, x->dtype, x->numel, p, seed, offset, x->data, y->data);
    if (dsc__needs_grad(ctx, 1, &x)) {
        dsc_node_t *node = dsc__record(ctx, op, dropout_backward, y, 1, &x);
        if (!node) return NULL;
        node->f[0] = p;
        node->i[0] = (int64_t)seed;
        node->i[1] = (int64_t)offset;
    }
    return y;
}

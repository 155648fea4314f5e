/* Shape ops: reshape/view (a new header over the same data) and transpose (a copy). */
#include <stdio.h>
#include <string.h>

#include "ops/op_common.h"

/* ---- reshape / view -------------------------------------------------------------- */

/* The output shares x's data but has its own gradient: add it back, element for element. */
static void reshape_backward(dsc_ctx_t *ctx, dsc_node_t *node) {
    dsc_tensor_t *gx = dsc__grad(ctx, node->in[0]);
    if (gx) ctx->backend->axpy(&ctx->device, gx->dtype, gx->numel, 1.0, node->out->grad->data, gx->data);
}

/* "(2, -1, 4)" for a requested shape, into buf. */
static const char *req_shape_str(int ndim, const int64_t *shape, char *buf, size_t n) {
    size_t off = (size_t)snprintf(buf, n, "(");
    for (int i = 0; i < ndim && off < n; i++)
        off += (size_t)snprintf(buf + off, n - off, i ? ", %lld" : "%lld", (long long)shape[i]);
    if (off < n) snprintf(buf + off, n - off, ")");
    return buf;
}

static dsc_tensor_t *reshape_impl(dsc_ctx_t *ctx, const char *name, dsc_tensor_t *x, int ndim, const int64_t *shape) {
    if (!ctx || !x) return NULL;
    char sx[DSC_OP_SHAPE_BUF], sr[DSC_OP_SHAPE_BUF];
    if (x->dtype != DSC_I32 && !dsc__op_check_kernel_float(ctx, name, "x", x)) return NULL;
    if (ndim < 1 || ndim > DSC_MAX_DIMS || !shape)
        return dsc__fail(ctx, DSC_ERR_INVALID, "%s: x %s: new shape must have 1 to %d dims, got %d", name,
                         dsc__shape_str(x, sx, sizeof sx), DSC_MAX_DIMS, shape ? ndim : 0);
    int64_t dims[DSC_MAX_DIMS];
    int infer = -1;
    int64_t known = 1;
    for (int d = 0; d < ndim; d++) {
        dims[d] = shape[d];
        if (shape[d] == -1 && infer < 0) {
            infer = d;
        } else if (shape[d] < 0) {
            return dsc__fail(ctx, DSC_ERR_INVALID,
                             "%s: x %s: invalid new shape %s (dims must be >= 0, at most one -1)", name,
                             dsc__shape_str(x, sx, sizeof sx), req_shape_str(ndim, shape, sr, sizeof sr));
        } else if (__builtin_mul_overflow(known, shape[d], &known)) {
            return dsc__fail(ctx, DSC_ERR_INVALID, "%s: new shape %s for x %s overflows the element count", name,
                             req_shape_str(ndim, shape, sr, sizeof sr), dsc__shape_str(x, sx, sizeof sx));
        }
    }
    if (infer >= 0) {
        if (known == 0 || x->numel % known != 0)
            return dsc__fail(ctx, DSC_ERR_INVALID,
                             "%s: cannot infer the -1 dim of new shape %s for x %s (%lld elements)", name,
                             req_shape_str(ndim, shape, sr, sizeof sr), dsc__shape_str(x, sx, sizeof sx),
                             (long long)x->numel);
        dims[infer] = x->numel / known;
        known = x->numel;
    }
    if (known != x->numel)
        return dsc__fail(ctx, DSC_ERR_INVALID, "%s: new shape %s has a different element count than x %s (%lld)",
                         name, req_shape_str(ndim, shape, sr, sizeof sr), dsc__shape_str(x, sx, sizeof sx),
                         (long long)x->numel);

    dsc_tensor_t *out = dsc__arena_alloc(ctx, sizeof *out);
    if (!out) return NULL;
    memset(out, 0, sizeof *out);
    out->ndim = ndim;
    for (int d = 0; d < ndim; d++) out->shape[d] = dims[d];
    out->numel = x->numel;
    out->dtype = x->dtype;
    out->data = x->data;
    out->device = x->device;
    if (dsc__op_is_kernel_dtype(x->dtype) && dsc__needs_grad(ctx, 1, &x))
        if (!dsc__record(ctx, name, reshape_backward, out, 1, &x)) return NULL;
    return out;
}

dsc_tensor_t *dsc_reshape(dsc_ctx_t *ctx, dsc_tensor_t *x, int ndim, const int64_t *shape) {
    return reshape_impl(ctx, "dsc_reshape", x, ndim, shape);
}

dsc_tensor_t *dsc_view(dsc_ctx_t *ctx, dsc_tensor_t *x, int ndim, const int64_t *shape) {
    return reshape_impl(ctx, "dsc_view", x, ndim, shape);
}

/* ---- transpose ------------------------------------------------------------------- */

/* x viewed as [outer, D0, mid, D1, inner] for dims d0 < d1; d0 == d1 is a plain copy,
 * viewed as [1, 1, 1, 1, numel]. */
static void transpose_dims(const dsc_tensor_t *x, int d0, int d1, int64_t v[5]) {
    v[0] = v[1] = v[2] = v[3] = v[4] = 1;
    if (d0 == d1) {
        v[4] = x->numel;
        return;
    }
    for (int d = 0; d < d0; d++) v[0] *= x->shape[d];
    v[1] = x->shape[d0];
    for (int d = d0 + 1; d < d1; d++) v[2] *= x->shape[d];
    v[3] = x->shape[d1];
    for (int d = d1 + 1; d < x->ndim; d++) v[4] *= x->shape[d];
}

/* node->i[0], i[1]: d0 <= d1. */
static void transpose_backward(dsc_ctx_t *ctx, dsc_node_t *node) {
    dsc_tensor_t *x = node->in[0];
    dsc_tensor_t *gx = dsc__grad(ctx, x);
    if (!gx) return;
    int64_t v[5];
    transpose_dims(x, (int)node->i[0], (int)node->i[1], v);
    /* dout has shape [outer, D1, mid, D0, inner]: transposing it back gives x's layout. */
    ctx->backend->transpose(&ctx->device, x->dtype, v[0], v[3], v[2], v[1], v[4], node->out->grad->data, gx->data, true);
}

dsc_tensor_t *dsc_transpose(dsc_ctx_t *ctx, dsc_tensor_t *x, int d0, int d1) {
    if (!ctx || !x) return NULL;
    if (!dsc__op_check_kernel_float(ctx, "dsc_transpose", "x", x)) return NULL;
    int a0 = d0 < 0 ? d0 + x->ndim : d0, a1 = d1 < 0 ? d1 + x->ndim : d1;
    if (a0 < 0 || a0 >= x->ndim || a1 < 0 || a1 >= x->ndim) {
        char sx[DSC_OP_SHAPE_BUF];
        return dsc__fail(ctx, DSC_ERR_INVALID, "dsc_transpose: dims (%d, %d) out of range for x %s (%d dims)", d0, d1,
                         dsc__shape_str(x, sx, sizeof sx), x->ndim);
    }
    if (a0 > a1) {
        int t = a0;
        a0 = a1;
        a1 = t;
    }
    int64_t shape[DSC_MAX_DIMS];
    for (int d = 0; d < x->ndim; d++) shape[d] = x->shape[d];
    shape[a0] = x->shape[a1];
    shape[a1] = x->shape[a0];
    dsc_tensor_t *out = dsc__tensor_empty(ctx, x->dtype, x->ndim, shape);
    if (!out) return NULL;
    int64_t v[5];
    transpose_dims(x, a0, a1, v);
    ctx->backend->transpose(&ctx->device, x->dtype, v[0], v[1], v[2], v[3], v[4], x->data, out->data, false);
    if (dsc__needs_grad(ctx, 1, &x)) {
        dsc_node_t *node = dsc__record(ctx, "dsc_transpose", transpose_backward, out, 1, &x);
        if (!node) return NULL;
        node->i[0] = a0;
        node->i[1] = a1;
    }
    return out;
}

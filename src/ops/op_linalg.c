/* Matrix multiply with optional transposes, through the backend gemm. */
#include "ops/op_common.h"

/* Sizes of one matmul: out [M, N] = op(A) [M, K] @ op(B) [K, N]; lda/ldb are the row
 * strides of A and B as stored. node->i[0..1]: trans_a, trans_b. */
typedef struct {
    int64_t m, n, k, lda, ldb;
} mm_dims_t;

static mm_dims_t mm_dims(const dsc_tensor_t *a, const dsc_tensor_t *b, bool ta, bool tb) {
    mm_dims_t d;
    if (ta) {
        d.k = a->shape[0];
        d.m = a->shape[1];
    } else {
        d.k = dsc__op_last_dim(a);
        d.m = dsc__op_rows(a);
    }
    d.n = tb ? b->shape[0] : b->shape[1];
    d.lda = ta ? d.m : d.k;
    d.ldb = tb ? d.k : d.n;
    return d;
}

/* With G = dout [M, N], op(A) = Ae, op(B) = Be:
 *   dAe = G Be^T, so dA = G op(B)^T (no trans_a) or dA = dAe^T = op(B) G^T (trans_a);
 *   dBe = Ae^T G, so dB = op(A)^T G (no trans_b) or dB = dBe^T = G^T op(A) (trans_b).
 * Every gemm accumulates (beta = 1). */
static void matmul_backward(dsc_ctx_t *ctx, dsc_node_t *node) {
    dsc_tensor_t *a = node->in[0], *b = node->in[1];
    const bool ta = node->i[0] != 0, tb = node->i[1] != 0;
    const mm_dims_t d = mm_dims(a, b, ta, tb);
    const void *g = node->out->grad->data;
    const dsc_dtype_t dt = a->dtype;
    const dsc_backend_t *be = ctx->backend;
    dsc_tensor_t *ga = dsc__grad(ctx, a);
    if (ga) {
        if (!ta) /* [M, K] += G [M, N] @ op(B)^T [N, K] */
            be->gemm(&ctx->device, dt, false, !tb, d.m, d.k, d.n, 1.0, g, d.n, b->data, d.ldb, 1.0, ga->data, d.k);
        else /* [K, M] += op(B) [K, N] @ G^T [N, M] */
            be->gemm(&ctx->device, dt, tb, true, d.k, d.m, d.n, 1.0, b->data, d.ldb, g, d.n, 1.0, ga->data, d.m);
    }
    dsc_tensor_t *gb = dsc__grad(ctx, b);
    if (gb) {
        if (!tb) /* [K, N] += op(A)^T [K, M] @ G [M, N] */
            be->gemm(&ctx->device, dt, !ta, false, d.k, d.n, d.m, 1.0, a->data, d.lda, g, d.n, 1.0, gb->data, d.n);
        else /* [N, K] += G^T [N, M] @ op(A) [M, K] */
            be->gemm(&ctx->device, dt, true, ta, d.n, d.k, d.m, 1.0, g, d.n, a->data, d.lda, 1.0, gb->data, d.k);
    }
}

dsc_tensor_t *dsc_matmul(dsc_ctx_t *ctx, dsc_tensor_t *a, dsc_tensor_t *b, bool trans_a, bool trans_b) {
    if (!ctx || !a || !b) return NULL;
    static const char *op = "dsc_matmul";
    if (!dsc__op_check_same_dtype(ctx, op, "a", a, "b", b)) return NULL;
    char sa[DSC_OP_SHAPE_BUF], sb[DSC_OP_SHAPE_BUF];
    if (trans_a && a->ndim != 2)
        return dsc__fail(ctx, DSC_ERR_INVALID, "dsc_matmul: a %s must be 2-D [K, M] when trans_a is set (b %s)",
                         dsc__shape_str(a, sa, sizeof sa), dsc__shape_str(b, sb, sizeof sb));
    if (b->ndim != 2)
        return dsc__fail(ctx, DSC_ERR_INVALID, "dsc_matmul: b %s must be 2-D (%s) (a %s)",
                         dsc__shape_str(b, sb, sizeof sb), trans_b ? "[N, K] with trans_b" : "[K, N]",
                         dsc__shape_str(a, sa, sizeof sa));
    const mm_dims_t d = mm_dims(a, b, trans_a, trans_b);
    const int64_t kb = trans_b ? b->shape[1] : b->shape[0];
    if (kb != d.k)
        return dsc__fail(ctx, DSC_ERR_INVALID,
                         "dsc_matmul: inner dims differ: a %s%s has K = %lld but b %s%s has K = %lld",
                         dsc__shape_str(a, sa, sizeof sa), trans_a ? " (trans_a)" : "", (long long)d.k,
                         dsc__shape_str(b, sb, sizeof sb), trans_b ? " (trans_b)" : "", (long long)kb);
    if (d.m > INT32_MAX || d.n > INT32_MAX || d.k > INT32_MAX) /* cblas takes int sizes */
        return dsc__fail(ctx, DSC_ERR_UNSUPPORTED, "dsc_matmul: a %s @ b %s: a dimension exceeds 2^31 - 1",
                         dsc__shape_str(a, sa, sizeof sa), dsc__shape_str(b, sb, sizeof sb));
    /* out: a's leading dims + [N] (trans_a: [M, N]). */
    int64_t shape[DSC_MAX_DIMS];
    int ndim;
    if (trans_a) {
        ndim = 2;
        shape[0] = d.m;
        shape[1] = d.n;
    } else {
        ndim = a->ndim;
        for (int i = 0; i + 1 < a->ndim; i++) shape[i] = a->shape[i];
        shape[ndim - 1] = d.n;
    }
    dsc_tensor_t *out = dsc__tensor_empty(ctx, a->dtype, ndim, shape);
    if (!out) return NULL;
    ctx->backend->gemm(&ctx->device, a->dtype, trans_a, trans_b, d.m, d.n, d.k, 1.0, a->data, d.lda, b->data, d.ldb, 0.0,
                       out->data, d.n);
    dsc_tensor_t *in[2] = {a, b};
    if (dsc__needs_grad(ctx, 2, in)) {
        dsc_node_t *node = dsc__record(ctx, op, matmul_backward, out, 2, in);
        if (!node) return NULL;
        node->i[0] = trans_a;
        node->i[1] = trans_b;
    }
    return out;
}

/* The CUDA device's op entries (src/ops/backend.h): each launches its kernel of
 * cuda_kernels.h on the device's stream and records a failed launch on the device's context.
 * Only `sum`, which returns its value to the host, waits for the stream. */
#include <stdio.h>
#include <stdlib.h>

#include "core/internal.h"
#include "ops/backend.h"
#include "ops/cuda/cuda_device.h"

static void cu_gemm(struct dsc_device *dev, dsc_dtype_t dt, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
                    double alpha, const void *a, int64_t lda, const void *b, int64_t ldb, double beta, void *c,
                    int64_t ldc) {
    /* named by layout and accumulation, so a profile (DSC_CUDA_PROFILE) tells them apart */
    static const char *const names[8] = {"gemm NN, C = AB",     "gemm NN, C += AB",    "gemm NT, C = AB^T",
                                         "gemm NT, C += AB^T",  "gemm TN, C = A^TB",   "gemm TN, C += A^TB",
                                         "gemm TT, C = A^TB^T", "gemm TT, C += A^TB^T"};
    const char *what = names[(trans_a ? 4 : 0) + (trans_b ? 2 : 0) + (beta != 0.0 ? 1 : 0)];
    dsc__cuda_check(dev,
                    dsc_cuda_gemm(dsc__cuda_dev(dev)->blas, dsc__cuda_stream(dev), dt, trans_a, trans_b, m, n, k, alpha,
                                  a, lda, b, ldb, beta, c, ldc),
                    what);
}

/* The one entry that returns a value: summed into device scratch, copied back (waits). */
static double cu_sum(struct dsc_device *dev, dsc_dtype_t dt, int64_t n, const void *x) {
    double *acc = dsc__cuda_scratch(dev, sizeof(double)), v = 0.0 / 0.0;
    if (!acc || dsc__cuda_check(dev, dsc_cuda_sum(dsc__cuda_stream(dev), dt, n, x, acc), "sum"))
        return v;
    /* a host read (the copy to pageable memory blocks): a communicator's collectives first */
    static const char what[] = "the read-back of a device sum";
    if (dsc__cuda_host_wait(dev, true, false, what) ||
        dsc__cuda_check(dev, dsc_cuda_copy_d2h_async(&v, acc, sizeof v, dsc__cuda_stream(dev)), "sum (read back)") ||
        dsc__cuda_check(dev, dsc_cuda_stream_sync(dsc__cuda_stream(dev)), "sum (synchronise)") ||
        dsc__cuda_host_wait(dev, false, false, what))
        return 0.0 / 0.0;
    return v;
}

static void cu_sum_to(struct dsc_device *dev, dsc_dtype_t dt, int64_t n, double mul, double div, const void *x,
                      void *out) {
    dsc__cuda_check(dev, dsc_cuda_sum_to(dsc__cuda_stream(dev), dt, n, mul, div, x, out), "sum_to");
}

static void cu_convert(struct dsc_device *dev, dsc_dtype_t dst_dt, dsc_dtype_t src_dt, int64_t n, const void *x,
                       void *y) {
    dsc__cuda_check(dev, dsc_cuda_convert(dsc__cuda_stream(dev), y, dst_dt, x, src_dt, n), "convert");
}

static void cu_embedding_backward(struct dsc_device *dev, dsc_dtype_t dt, int64_t n_ids, int64_t n_cols,
                                  int64_t n_vocab, const int32_t *ids, const void *dout, void *dtable) {
    /* sorted by id on the device, in the device's scratch */
    const size_t ws_bytes = dsc_cuda_embedding_backward_workspace_bytes(dt, n_ids, n_cols);
    void *ws = ws_bytes ? dsc__cuda_scratch(dev, ws_bytes) : NULL;
    dsc__cuda_check(dev,
                    dsc_cuda_embedding_backward_ws(dsc__cuda_stream(dev), dt, n_ids, n_cols, n_vocab, ids, dout, dtable,
                                                   ws, ws ? ws_bytes : 0),
                    "embedding_backward");
}

static void cu_binary(struct dsc_device *dev, dsc_dtype_t dt, dsc_binary_op_t op, int64_t n_a, const void *a,
                      int64_t n_b, const void *b, void *out) {
    dsc__cuda_check(dev, dsc_cuda_binary(dsc__cuda_stream(dev), dt, op, n_a, a, n_b, b, out), "binary");
}
static void cu_axpy(struct dsc_device *dev, dsc_dtype_t dt, int64_t n, double alpha, const void *x, void *y) {
    dsc__cuda_check(dev, dsc_cuda_axpy(dsc__cuda_stream(dev), dt, n, alpha, x, y), "axpy");
}
static void cu_mul_acc(struct dsc_device *dev, dsc_dtype_t dt, int64_t n, double alpha, const void *x, int64_t n_w,
                       const void *w, void *y) {
    dsc__cuda_check(dev, dsc_cuda_mul_acc(dsc__cuda_stream(dev), dt, n, alpha, x, n_w, w, y), "mul_acc");
}
static void cu_sum_rows_acc(struct dsc_device *dev, dsc_dtype_t dt, int64_t n_rows, int64_t n_cols, double alpha,
                            const void *x, void *y) {
    /* many rows (bias gradients): two passes over the device's scratch */
    const size_t ws_bytes = dsc_cuda_col_sums_workspace_bytes(n_rows, n_cols);
    void *ws = n_rows > 256 ? dsc__cuda_scratch(dev, ws_bytes) : NULL;
    dsc__cuda_check(
        dev, dsc_cuda_sum_rows_acc_ws(dsc__cuda_stream(dev), dt, n_rows, n_cols, alpha, x, y, ws, ws ? ws_bytes : 0),
        "sum_rows_acc");
}
static void cu_sum_rows_mul_acc(struct dsc_device *dev, dsc_dtype_t dt, int64_t n_rows, int64_t n_cols, double alpha,
                                const void *x, const void *w, void *y) {
    const size_t ws_bytes = dsc_cuda_col_sums_workspace_bytes(n_rows, n_cols);
    void *ws = n_rows > 256 ? dsc__cuda_scratch(dev, ws_bytes) : NULL;
    dsc__cuda_check(
        dev,
        dsc_cuda_sum_rows_mul_acc_ws(dsc__cuda_stream(dev), dt, n_rows, n_cols, alpha, x, w, y, ws, ws ? ws_bytes : 0),
        "sum_rows_mul_acc");
}
static void cu_scale(struct dsc_device *dev, dsc_dtype_t dt, int64_t n, double s, const void *x, void *y) {
    dsc__cuda_check(dev, dsc_cuda_scale(dsc__cuda_stream(dev), dt, n, s, x, y), "scale");
}
static void cu_fill(struct dsc_device *dev, dsc_dtype_t dt, int64_t n, double value, void *y) {
    dsc__cuda_check(dev, dsc_cuda_fill(dsc__cuda_stream(dev), dt, n, value, y), "fill");
}
static void cu_unary(struct dsc_device *dev, dsc_dtype_t dt, dsc_unary_op_t op, int64_t n, const void *x, void *y) {
    dsc__cuda_check(dev, dsc_cuda_unary(dsc__cuda_stream(dev), dt, op, n, x, y), "unary");
}
static void cu_unary_backward(struct dsc_device *dev, dsc_dtype_t dt, dsc_unary_op_t op, int64_t n, const void *x,
                              const void *y, const void *dy, void *dx) {
    dsc__cuda_check(dev, dsc_cuda_unary_backward(dsc__cuda_stream(dev), dt, op, n, x, y, dy, dx), "unary_backward");
}
static void cu_transpose(struct dsc_device *dev, dsc_dtype_t dt, int64_t outer, int64_t d0, int64_t mid, int64_t d1,
                         int64_t inner, const void *x, void *out, bool accumulate) {
    dsc__cuda_check(dev, dsc_cuda_transpose(dsc__cuda_stream(dev), dt, outer, d0, mid, d1, inner, x, out, accumulate),
                    "transpose");
}
static void cu_softmax(struct dsc_device *dev, dsc_dtype_t dt, int64_t n_rows, int64_t n_cols, const void *x, void *y) {
    dsc__cuda_check(dev, dsc_cuda_softmax(dsc__cuda_stream(dev), dt, n_rows, n_cols, x, y), "softmax");
}
static void cu_softmax_backward(struct dsc_device *dev, dsc_dtype_t dt, int64_t n_rows, int64_t n_cols, const void *y,
                                const void *dy, void *dx) {
    dsc__cuda_check(dev, dsc_cuda_softmax_backward(dsc__cuda_stream(dev), dt, n_rows, n_cols, y, dy, dx),
                    "softmax_backward");
}
static void cu_layernorm(struct dsc_device *dev, dsc_dtype_t dt, int64_t n_rows, int64_t n_cols, double eps,
                         const void *x, const void *w, const void *b, void *y, void *mean, void *rstd) {
    dsc__cuda_check(dev, dsc_cuda_layernorm(dsc__cuda_stream(dev), dt, n_rows, n_cols, eps, x, w, b, y, mean, rstd),
                    "layernorm");
}
static void cu_layernorm_backward(struct dsc_device *dev, dsc_dtype_t dt, int64_t n_rows, int64_t n_cols, const void *x,
                                  const void *w, const void *mean, const void *rstd, const void *dy, void *dx, void *dw,
                                  void *db) {
    /* dweight and dbias: two column sums in two passes over the device's scratch */
    const size_t ws_bytes = 2 * dsc_cuda_col_sums_workspace_bytes(n_rows, n_cols);
    void *ws = n_rows > 256 && (dw || db) ? dsc__cuda_scratch(dev, ws_bytes) : NULL;
    dsc__cuda_check(dev,
                    dsc_cuda_layernorm_backward_ws(dsc__cuda_stream(dev), dt, n_rows, n_cols, x, w, mean, rstd, dy, dx,
                                                   dw, db, ws, ws ? ws_bytes : 0),
                    "layernorm_backward");
}
static void cu_embedding(struct dsc_device *dev, dsc_dtype_t dt, int64_t n_ids, int64_t n_cols, const int32_t *ids,
                         const void *table, void *out) {
    dsc__cuda_check(dev, dsc_cuda_embedding(dsc__cuda_stream(dev), dt, n_ids, n_cols, ids, table, out), "embedding");
}
static void cu_dropout(struct dsc_device *dev, dsc_dtype_t dt, int64_t n, double p, uint64_t seed, uint64_t offset,
                       const void *x, void *y) {
    dsc__cuda_check(dev, dsc_cuda_dropout(dsc__cuda_stream(dev), dt, n, p, seed, offset, x, y), "dropout");
}
static void cu_dropout_backward(struct dsc_device *dev, dsc_dtype_t dt, int64_t n, double p, uint64_t seed,
                                uint64_t offset, const void *dy, void *dx) {
    dsc__cuda_check(dev, dsc_cuda_dropout_backward(dsc__cuda_stream(dev), dt, n, p, seed, offset, dy, dx),
                    "dropout_backward");
}
/* The `cudnn` variant: true when cuDNN takes this call (its plan built, *ws_bytes its
 * workspace). False: the tensor-core kernels take it; the first such fallback of a device
 * prints its reason on one line (cuDNN absent, a shape it refuses, dropout, whose mask must be
 * dsc's Philox stream). */
static bool cudnn_takes(struct dsc_device *dev, bool backward, dsc_dtype_t dt, int64_t b, int64_t t, int64_t c,
                        int64_t n_head, double drop_p, size_t *ws_bytes) {
    dsc_cuda_dev_t *cd = dsc__cuda_dev(dev);
    if (!cd->att_cudnn || cd->cudnn_off) return false;
    char why[400] = "";
    if (drop_p > 0)
        snprintf(why, sizeof why, "attention dropout (p %g) runs on the default kernels: cuDNN's dropout mask is "
                 "not dsc's Philox stream", drop_p);
    else if (!cd->cudnn && !(cd->cudnn = dsc_cuda_cudnn_create(cd->stream, why, sizeof why)))
        cd->cudnn_off = true;
    else if (dsc_cuda_cudnn_attention_prepare(cd->cudnn, backward, dt, b, t, c, n_head, ws_bytes) != 0)
        snprintf(why, sizeof why, "%s", dsc_cuda_cudnn_message(cd->cudnn));
    if (!why[0]) return true;
    if (!cd->cudnn_told && getenv("DSC_CUDA_ATTENTION")) /* asked for by name: say why not */
        fprintf(stderr, "dsc: device %s: DSC_CUDA_ATTENTION=cudnn: %s; the default kernels run instead\n", dev->name,
                why);
    cd->cudnn_told = true;
    return false;
}

static void cu_attention(struct dsc_device *dev, dsc_dtype_t dt, int64_t b, int64_t t, int64_t c, int64_t n_head,
                         const void *qkv, double drop_p, uint64_t seed, uint64_t offset, void *out, void *lse) {
    size_t ws_bytes = 0;
    if (cudnn_takes(dev, false, dt, b, t, c, n_head, drop_p, &ws_bytes)) {
        void *ws = ws_bytes ? dsc__cuda_scratch(dev, ws_bytes) : NULL;
        if (ws_bytes && !ws) return; /* recorded */
        dsc__cuda_check(dev,
                        dsc_cuda_cudnn_attention(dsc__cuda_dev(dev)->cudnn, dt, b, t, c, n_head, qkv, out, lse, ws,
                                                 ws_bytes),
                        "attention (cudnn)");
        return;
    }
    dsc__cuda_check(dev,
                    dsc_cuda_attention_cfg(dsc__cuda_stream(dev), &dsc__cuda_dev(dev)->att, dt, b, t, c, n_head, qkv,
                                           drop_p, seed, offset, out, lse),
                    "attention");
}
/* The backward into dqkv: accumulate (the attention_backward entry) or write (the
 * attention_backward_write entry, dqkv's old contents ignored). */
static void attention_backward_into(struct dsc_device *dev, dsc_dtype_t dt, int64_t b, int64_t t, int64_t c,
                                    int64_t n_head, const void *qkv, const void *out, const void *lse,
                                    const void *dout, double drop_p, uint64_t seed, uint64_t offset, void *dqkv,
                                    bool accumulate) {
    const size_t n = (size_t)(b * t * 3 * c);
    size_t cudnn_ws = 0;
    if (cudnn_takes(dev, true, dt, b, t, c, n_head, drop_p, &cudnn_ws)) {
        /* cuDNN writes dQ dK dV: into dqkv, or (accumulating) into the scratch after its
         * workspace, then added to dqkv */
        const size_t tmp_at = (cudnn_ws + 255) / 256 * 256;
        char *ws = dsc__cuda_scratch(dev, accumulate ? tmp_at + n * dsc_dtype_size(dt) : cudnn_ws);
        if (!ws) return; /* recorded */
        if (dsc__cuda_check(dev,
                            dsc_cuda_cudnn_attention_backward(dsc__cuda_dev(dev)->cudnn, dt, b, t, c, n_head, qkv,
                                                              out, lse, dout, accumulate ? ws + tmp_at : dqkv, ws,
                                                              cudnn_ws),
                            "attention_backward (cudnn)") == 0 &&
            accumulate)
            dsc__cuda_check(dev, dsc_cuda_axpy(dsc__cuda_stream(dev), dt, (int64_t)n, 1.0, ws + tmp_at, dqkv),
                            "attention_backward (cudnn: dqkv +=)");
        return;
    }
    /* the kernels accumulate: a written gradient starts from zeros */
    if (!accumulate &&
        dsc__cuda_check(dev, dsc_cuda_memset_async(dqkv, 0, n * dsc_dtype_size(dt), dsc__cuda_stream(dev)),
                        "attention_backward (zero fill)"))
        return;
    /* the backward variants other than the default take a workspace (Dq per row, the atomic
     * variant's f32 dQ) from the device's scratch */
    const dsc_cuda_att_cfg_t *cfg = &dsc__cuda_dev(dev)->att;
    const size_t ws_bytes = dsc_cuda_attention_workspace_bytes(cfg, b, t, c, n_head);
    void *ws = ws_bytes ? dsc__cuda_scratch(dev, ws_bytes) : NULL;
    if (ws_bytes && !ws) return; /* recorded */
    dsc__cuda_check(dev,
                    dsc_cuda_attention_backward_cfg(dsc__cuda_stream(dev), cfg, dt, b, t, c, n_head, qkv, out, lse,
                                                    dout, drop_p, seed, offset, dqkv, ws, ws_bytes),
                    "attention_backward");
}
static void cu_attention_backward(struct dsc_device *dev, dsc_dtype_t dt, int64_t b, int64_t t, int64_t c,
                                  int64_t n_head, const void *qkv, const void *out, const void *lse, const void *dout,
                                  double drop_p, uint64_t seed, uint64_t offset, void *dqkv) {
    attention_backward_into(dev, dt, b, t, c, n_head, qkv, out, lse, dout, drop_p, seed, offset, dqkv, true);
}
static void cu_attention_backward_write(struct dsc_device *dev, dsc_dtype_t dt, int64_t b, int64_t t, int64_t c,
                                        int64_t n_head, const void *qkv, const void *out, const void *lse,
                                        const void *dout, double drop_p, uint64_t seed, uint64_t offset, void *dqkv) {
    attention_backward_into(dev, dt, b, t, c, n_head, qkv, out, lse, dout, drop_p, seed, offset, dqkv, false);
}
static void cu_cross_entropy(struct dsc_device *dev, dsc_dtype_t dt, int64_t n_rows, int64_t n_cols, int64_t ld,
                             const void *logits, const int32_t *targets, int32_t ignore_index, void *losses, void *lse) {
    dsc__cuda_check(dev,
                    dsc_cuda_cross_entropy(dsc__cuda_stream(dev), dt, n_rows, n_cols, ld, logits, targets, ignore_index,
                                           losses, lse),
                    "cross_entropy");
}
static void cu_cross_entropy_backward(struct dsc_device *dev, dsc_dtype_t dt, int64_t n_rows, int64_t n_cols, int64_t ld,
                                      const void *logits, const void *lse, const int32_t *targets, int32_t ignore_index,
                                      const void *grad_scale, void *dlogits, bool accumulate) {
    dsc__cuda_check(dev,
                    dsc_cuda_cross_entropy_backward(dsc__cuda_stream(dev), dt, n_rows, n_cols, ld, logits, lse, targets,
                                                    ignore_index, grad_scale, dlogits, accumulate),
                    "cross_entropy_backward");
}
static void cu_cross_entropy_with_grad(struct dsc_device *dev, dsc_dtype_t dt, int64_t n_rows, int64_t n_cols, int64_t ld,
                                       const void *logits, const int32_t *targets, int32_t ignore_index, void *losses,
                                       void *lse, const void *grad_scale, void *dlogits) {
    dsc__cuda_check(dev,
                    dsc_cuda_cross_entropy_with_grad(dsc__cuda_stream(dev), dt, n_rows, n_cols, ld, logits, targets,
                                                     ignore_index, losses, lse, grad_scale, dlogits),
                    "cross_entropy_with_grad");
}


static const dsc_backend_t cuda_backend = {
    .api_version = DSC_BACKEND_API_VERSION,
    .name = "cuda",
    .gemm = cu_gemm,
    .linear = dsc__cu_linear,
    .linear_gelu = dsc__cu_linear_gelu,
    .linear_residual = dsc__cu_linear_residual,
    .gemm_dgelu = dsc__cu_gemm_dgelu,
    .binary = cu_binary,
    .axpy = cu_axpy,
    .mul_acc = cu_mul_acc,
    .sum_rows_acc = cu_sum_rows_acc,
    .sum_rows_mul_acc = cu_sum_rows_mul_acc,
    .sum = cu_sum,
    .sum_to = cu_sum_to,
    .scale = cu_scale,
    .fill = cu_fill,
    .convert = cu_convert,
    .unary = cu_unary,
    .unary_backward = cu_unary_backward,
    .transpose = cu_transpose,
    .softmax = cu_softmax,
    .softmax_backward = cu_softmax_backward,
    .layernorm = cu_layernorm,
    .layernorm_backward = cu_layernorm_backward,
    .embedding = cu_embedding,
    .embedding_backward = cu_embedding_backward,
    .dropout = cu_dropout,
    .dropout_backward = cu_dropout_backward,
    .attention = cu_attention,
    .attention_backward = cu_attention_backward,
    .attention_backward_write = cu_attention_backward_write,
    .cross_entropy = cu_cross_entropy,
    .cross_entropy_backward = cu_cross_entropy_backward,
    .cross_entropy_with_grad = cu_cross_entropy_with_grad,
};

const dsc_backend_t *dsc__backend_cuda(void) {
    return &cuda_backend;
}

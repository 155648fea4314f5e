/* The CPU backend table: the CPU kernels (cpu_kernels.h), which need no device state, behind
 * the device-first signatures of src/ops/backend.h. */
#include "ops/cpu/cpu_kernels.h"

static void cpu_sum_to_impl(dsc_dtype_t dt, int64_t n, double mul, double div, const void *x, void *out) {
    dsc_cpu_fill(dt, 1, dsc_cpu_sum(dt, n, x) * mul / div, out);
}

static void cpu_convert_impl(dsc_dtype_t dst_dt, dsc_dtype_t src_dt, int64_t n, const void *x, void *y) {
    dsc_convert(y, dst_dt, x, src_dt, (size_t)n);
}

static void cpu_gemm(struct dsc_device *dev, dsc_dtype_t dt, bool trans_a, bool trans_b, int64_t m, int64_t n,
                     int64_t k, double alpha, const void *a, int64_t lda, const void *b, int64_t ldb, double beta,
                     void *c, int64_t ldc) {
    (void)dev;
    dsc_cpu_gemm(dt, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
static void cpu_linear(struct dsc_device *dev, dsc_dtype_t dt, int64_t m, int64_t n, int64_t k, const void *x,
                       const void *w, const void *bias, void *y) {
    (void)dev;
    dsc_cpu_linear(dt, m, n, k, x, w, bias, y);
}
static void cpu_binary(struct dsc_device *dev, dsc_dtype_t dt, dsc_binary_op_t op, int64_t n_a, const void *a,
                       int64_t n_b, const void *b, void *out) {
    (void)dev;
    dsc_cpu_binary(dt, op, n_a, a, n_b, b, out);
}
static void cpu_axpy(struct dsc_device *dev, dsc_dtype_t dt, int64_t n, double alpha, const void *x, void *y) {
    (void)dev;
    dsc_cpu_axpy(dt, n, alpha, x, y);
}
static void cpu_mul_acc(struct dsc_device *dev, dsc_dtype_t dt, int64_t n, double alpha, const void *x, int64_t n_w,
                        const void *w, void *y) {
    (void)dev;
    dsc_cpu_mul_acc(dt, n, alpha, x, n_w, w, y);
}
static void cpu_sum_rows_acc(struct dsc_device *dev, dsc_dtype_t dt, int64_t n_rows, int64_t n_cols, double alpha,
                             const void *x, void *y) {
    (void)dev;
    dsc_cpu_sum_rows_acc(dt, n_rows, n_cols, alpha, x, y);
}
static void cpu_sum_rows_mul_acc(struct dsc_device *dev, dsc_dtype_t dt, int64_t n_rows, int64_t n_cols, double alpha,
                                 const void *x, const void *w, void *y) {
    (void)dev;
    dsc_cpu_sum_rows_mul_acc(dt, n_rows, n_cols, alpha, x, w, y);
}
static double cpu_sum(struct dsc_device *dev, dsc_dtype_t dt, int64_t n, const void *x) {
    (void)dev;
    return dsc_cpu_sum(dt, n, x);
}
static void cpu_sum_to(struct dsc_device *dev, dsc_dtype_t dt, int64_t n, double mul, double div, const void *x,
                       void *out) {
    (void)dev;
    cpu_sum_to_impl(dt, n, mul, div, x, out);
}
static void cpu_scale(struct dsc_device *dev, dsc_dtype_t dt, int64_t n, double s, const void *x, void *y) {
    (void)dev;
    dsc_cpu_scale(dt, n, s, x, y);
}
static void cpu_fill(struct dsc_device *dev, dsc_dtype_t dt, int64_t n, double value, void *y) {
    (void)dev;
    dsc_cpu_fill(dt, n, value, y);
}
static void cpu_convert(struct dsc_device *dev, dsc_dtype_t dst_dt, dsc_dtype_t src_dt, int64_t n, const void *x,
                        void *y) {
    (void)dev;
    cpu_convert_impl(dst_dt, src_dt, n, x, y);
}
static void cpu_unary(struct dsc_device *dev, dsc_dtype_t dt, dsc_unary_op_t op, int64_t n, const void *x, void *y) {
    (void)dev;
    dsc_cpu_unary(dt, op, n, x, y);
}
static void cpu_unary_backward(struct dsc_device *dev, dsc_dtype_t dt, dsc_unary_op_t op, int64_t n, const void *x,
                               const void *y, const void *dy, void *dx) {
    (void)dev;
    dsc_cpu_unary_backward(dt, op, n, x, y, dy, dx);
}
static void cpu_transpose(struct dsc_device *dev, dsc_dtype_t dt, int64_t outer, int64_t d0, int64_t mid, int64_t d1,
                          int64_t inner, const void *x, void *out, bool accumulate) {
    (void)dev;
    dsc_cpu_transpose(dt, outer, d0, mid, d1, inner, x, out, accumulate);
}
static void cpu_softmax(struct dsc_device *dev, dsc_dtype_t dt, int64_t n_rows, int64_t n_cols, const void *x,
                        void *y) {
    (void)dev;
    dsc_cpu_softmax(dt, n_rows, n_cols, x, y);
}
static void cpu_softmax_backward(struct dsc_device *dev, dsc_dtype_t dt, int64_t n_rows, int64_t n_cols, const void *y,
                                 const void *dy, void *dx) {
    (void)dev;
    dsc_cpu_softmax_backward(dt, n_rows, n_cols, y, dy, dx);
}
static void cpu_layernorm(struct dsc_device *dev, dsc_dtype_t dt, int64_t n_rows, int64_t n_cols, double eps,
                          const void *x, const void *w, const void *b, void *y, void *mean, void *rstd) {
    (void)dev;
    dsc_cpu_layernorm(dt, n_rows, n_cols, eps, x, w, b, y, mean, rstd);
}
static void cpu_layernorm_backward(struct dsc_device *dev, dsc_dtype_t dt, int64_t n_rows, int64_t n_cols,
                                   const void *x, const void *w, const void *mean, const void *rstd, const void *dy,
                                   void *dx, void *dw, void *db) {
    (void)dev;
    dsc_cpu_layernorm_backward(dt, n_rows, n_cols, x, w, mean, rstd, dy, dx, dw, db);
}
static void cpu_embedding(struct dsc_device *dev, dsc_dtype_t dt, int64_t n_ids, int64_t n_cols, const int32_t *ids,
                          const void *table, void *out) {
    (void)dev;
    dsc_cpu_embedding(dt, n_ids, n_cols, ids, table, out);
}
static void cpu_embedding_backward(struct dsc_device *dev, dsc_dtype_t dt, int64_t n_ids, int64_t n_cols, int64_t n_vocab,
                                   const int32_t *ids, const void *dout, void *dtable) {
    (void)dev;
    (void)n_vocab;
    dsc_cpu_embedding_backward(dt, n_ids, n_cols, ids, dout, dtable);
}
static void cpu_dropout(struct dsc_device *dev, dsc_dtype_t dt, int64_t n, double p, uint64_t seed, uint64_t offset,
                        const void *x, void *y) {
    (void)dev;
    dsc_cpu_dropout(dt, n, p, seed, offset, x, y);
}
static void cpu_dropout_backward(struct dsc_device *dev, dsc_dtype_t dt, int64_t n, double p, uint64_t seed,
                                 uint64_t offset, const void *dy, void *dx) {
    (void)dev;
    dsc_cpu_dropout_backward(dt, n, p, seed, offset, dy, dx);
}
static void cpu_attention(struct dsc_device *dev, dsc_dtype_t dt, int64_t b, int64_t t, int64_t c, int64_t n_head,
                          const void *qkv, double drop_p, uint64_t seed, uint64_t offset, void *out, void *lse) {
    (void)dev;
    dsc_cpu_attention(dt, b, t, c, n_head, qkv, drop_p, seed, offset, out, lse);
}
static void cpu_attention_backward(struct dsc_device *dev, dsc_dtype_t dt, int64_t b, int64_t t, int64_t c,
                                   int64_t n_head, const void *qkv, const void *out, const void *lse, const void *dout,
                                   double drop_p, uint64_t seed, uint64_t offset, void *dqkv) {
    (void)dev;
    dsc_cpu_attention_backward(dt, b, t, c, n_head, qkv, out, lse, dout, drop_p, seed, offset, dqkv);
}
static void cpu_cross_entropy(struct dsc_device *dev, dsc_dtype_t dt, int64_t n_rows, int64_t n_cols, int64_t ld,
                              const void *logits, const int32_t *targets, int32_t ignore_index, void *losses,
                              void *lse) {
    (void)dev;
    dsc_cpu_cross_entropy(dt, n_rows, n_cols, ld, logits, targets, ignore_index, losses, lse);
}
static void cpu_cross_entropy_backward(struct dsc_device *dev, dsc_dtype_t dt, int64_t n_rows, int64_t n_cols,
                                       int64_t ld, const void *logits, const void *lse, const int32_t *targets,
                                       int32_t ignore_index, const void *grad_scale, void *dlogits, bool accumulate) {
    (void)dev;
    dsc_cpu_cross_entropy_backward(dt, n_rows, n_cols, ld, logits, lse, targets, ignore_index, grad_scale, dlogits,
                                   accumulate);
}

static const dsc_backend_t cpu_backend = {
    .api_version = DSC_BACKEND_API_VERSION,
    .name = "cpu",
    .gemm = cpu_gemm,
    .linear = cpu_linear,
    .binary = cpu_binary,
    .axpy = cpu_axpy,
    .mul_acc = cpu_mul_acc,
    .sum_rows_acc = cpu_sum_rows_acc,
    .sum_rows_mul_acc = cpu_sum_rows_mul_acc,
    .sum = cpu_sum,
    .sum_to = cpu_sum_to,
    .scale = cpu_scale,
    .fill = cpu_fill,
    .convert = cpu_convert,
    .unary = cpu_unary,
    .unary_backward = cpu_unary_backward,
    .transpose = cpu_transpose,
    .softmax = cpu_softmax,
    .softmax_backward = cpu_softmax_backward,
    .layernorm = cpu_layernorm,
    .layernorm_backward = cpu_layernorm_backward,
    .embedding = cpu_embedding,
    .embedding_backward = cpu_embedding_backward,
    .dropout = cpu_dropout,
    .dropout_backward = cpu_dropout_backward,
    .attention = cpu_attention,
    .attention_backward = cpu_attention_backward,
    .cross_entropy = cpu_cross_entropy,
    .cross_entropy_backward = cpu_cross_entropy_backward,
};

const dsc_backend_t *dsc__backend_cpu(void) {
    return &cpu_backend;
}

/* The guarded test device's op kernels: the CPU kernels, called with every data pointer
 * translated from its device address (PROT_NONE) to the read-write alias of the same pages
 * (src/core/device_guarded.c). Pointers outside a guarded mapping (wrapped host memory)
 * pass through unchanged. Each entry mirrors one of src/ops/backend.h. */
#include "core/device.h"
#include "ops/backend.h"

#define G(p) dsc__guarded_host_alias(p)

static const dsc_backend_t *cpu(void) {
    return dsc__backend_cpu();
}

static void g_gemm(struct dsc_device *dev, dsc_dtype_t dt, bool ta, bool tb, int64_t m, int64_t n, int64_t k,
                   double alpha, const void *a, int64_t lda, const void *b, int64_t ldb, double beta, void *c,
                   int64_t ldc) {
    cpu()->gemm(dev, dt, ta, tb, m, n, k, alpha, G(a), lda, G(b), ldb, beta, G(c), ldc);
}
static void g_linear(struct dsc_device *dev, dsc_dtype_t dt, int64_t m, int64_t n, int64_t k, const void *x,
                     const void *w, const void *bias, void *y) {
    cpu()->linear(dev, dt, m, n, k, G(x), G(w), G(bias), G(y));
}
static void g_binary(struct dsc_device *dev, dsc_dtype_t dt, dsc_binary_op_t op, int64_t n_a, const void *a,
                     int64_t n_b, const void *b, void *out) {
    cpu()->binary(dev, dt, op, n_a, G(a), n_b, G(b), G(out));
}
static void g_axpy(struct dsc_device *dev, dsc_dtype_t dt, int64_t n, double alpha, const void *x, void *y) {
    cpu()->axpy(dev, dt, n, alpha, G(x), G(y));
}
static void g_mul_acc(struct dsc_device *dev, dsc_dtype_t dt, int64_t n, double alpha, const void *x, int64_t n_w,
                      const void *w, void *y) {
    cpu()->mul_acc(dev, dt, n, alpha, G(x), n_w, G(w), G(y));
}
static void g_sum_rows_acc(struct dsc_device *dev, dsc_dtype_t dt, int64_t r, int64_t c, double alpha, const void *x,
                           void *y) {
    cpu()->sum_rows_acc(dev, dt, r, c, alpha, G(x), G(y));
}
static void g_sum_rows_mul_acc(struct dsc_device *dev, dsc_dtype_t dt, int64_t r, int64_t c, double alpha,
                               const void *x, const void *w, void *y) {
    cpu()->sum_rows_mul_acc(dev, dt, r, c, alpha, G(x), G(w), G(y));
}
static double g_sum(struct dsc_device *dev, dsc_dtype_t dt, int64_t n, const void *x) {
    return cpu()->sum(dev, dt, n, G(x));
}
static void g_sum_to(struct dsc_device *dev, dsc_dtype_t dt, int64_t n, double mul, double div, const void *x,
                     void *out) {
    cpu()->sum_to(dev, dt, n, mul, div, G(x), G(out));
}
static void g_scale(struct dsc_device *dev, dsc_dtype_t dt, int64_t n, double s, const void *x, void *y) {
    cpu()->scale(dev, dt, n, s, G(x), G(y));
}
static void g_fill(struct dsc_device *dev, dsc_dtype_t dt, int64_t n, double v, void *y) {
    cpu()->fill(dev, dt, n, v, G(y));
}
static void g_convert(struct dsc_device *dev, dsc_dtype_t dd, dsc_dtype_t sd, int64_t n, const void *x, void *y) {
    cpu()->convert(dev, dd, sd, n, G(x), G(y));
}
static void g_unary(struct dsc_device *dev, dsc_dtype_t dt, dsc_unary_op_t op, int64_t n, const void *x, void *y) {
    cpu()->unary(dev, dt, op, n, G(x), G(y));
}
static void g_unary_backward(struct dsc_device *dev, dsc_dtype_t dt, dsc_unary_op_t op, int64_t n, const void *x,
                             const void *y, const void *dy, void *dx) {
    cpu()->unary_backward(dev, dt, op, n, G(x), G(y), G(dy), G(dx));
}
static void g_transpose(struct dsc_device *dev, dsc_dtype_t dt, int64_t outer, int64_t d0, int64_t mid, int64_t d1,
                        int64_t inner, const void *x, void *out, bool acc) {
    cpu()->transpose(dev, dt, outer, d0, mid, d1, inner, G(x), G(out), acc);
}
static void g_softmax(struct dsc_device *dev, dsc_dtype_t dt, int64_t r, int64_t c, const void *x, void *y) {
    cpu()->softmax(dev, dt, r, c, G(x), G(y));
}
static void g_softmax_backward(struct dsc_device *dev, dsc_dtype_t dt, int64_t r, int64_t c, const void *y,
                               const void *dy, void *dx) {
    cpu()->softmax_backward(dev, dt, r, c, G(y), G(dy), G(dx));
}
static void g_layernorm(struct dsc_device *dev, dsc_dtype_t dt, int64_t r, int64_t c, double eps, const void *x,
                        const void *w, const void *b, void *y, void *mean, void *rstd) {
    cpu()->layernorm(dev, dt, r, c, eps, G(x), G(w), G(b), G(y), G(mean), G(rstd));
}
static void g_layernorm_backward(struct dsc_device *dev, dsc_dtype_t dt, int64_t r, int64_t c, const void *x,
                                 const void *w, const void *mean, const void *rstd, const void *dy, void *dx, void *dw,
                                 void *db) {
    cpu()->layernorm_backward(dev, dt, r, c, G(x), G(w), G(mean), G(rstd), G(dy), G(dx), G(dw), G(db));
}
static void g_embedding(struct dsc_device *dev, dsc_dtype_t dt, int64_t n_ids, int64_t c, const int32_t *ids,
                        const void *table, void *out) {
    cpu()->embedding(dev, dt, n_ids, c, G(ids), G(table), G(out));
}
static void g_embedding_backward(struct dsc_device *dev, dsc_dtype_t dt, int64_t n_ids, int64_t c, int64_t n_vocab,
                                 const int32_t *ids,
                                 const void *dout, void *dtable) {
    cpu()->embedding_backward(dev, dt, n_ids, c, n_vocab, G(ids), G(dout), G(dtable));
}
static void g_dropout(struct dsc_device *dev, dsc_dtype_t dt, int64_t n, double p, uint64_t seed, uint64_t offset,
                      const void *x, void *y) {
    cpu()->dropout(dev, dt, n, p, seed, offset, G(x), G(y));
}
static void g_dropout_backward(struct dsc_device *dev, dsc_dtype_t dt, int64_t n, double p, uint64_t seed,
                               uint64_t offset, const void *dy, void *dx) {
    cpu()->dropout_backward(dev, dt, n, p, seed, offset, G(dy), G(dx));
}
static void g_attention(struct dsc_device *dev, dsc_dtype_t dt, int64_t b, int64_t t, int64_t c, int64_t h,
                        const void *qkv, double drop_p, uint64_t seed, uint64_t offset, void *out, void *lse) {
    cpu()->attention(dev, dt, b, t, c, h, G(qkv), drop_p, seed, offset, G(out), G(lse));
}
static void g_attention_backward(struct dsc_device *dev, dsc_dtype_t dt, int64_t b, int64_t t, int64_t c, int64_t h,
                                 const void *qkv, const void *out, const void *lse, const void *dout, double drop_p,
                                 uint64_t seed, uint64_t offset, void *dqkv) {
    cpu()->attention_backward(dev, dt, b, t, c, h, G(qkv), G(out), G(lse), G(dout), drop_p, seed, offset, G(dqkv));
}
static void g_cross_entropy(struct dsc_device *dev, dsc_dtype_t dt, int64_t r, int64_t c, int64_t ld,
                            const void *logits, const int32_t *targets, int32_t ignore, void *losses, void *lse) {
    cpu()->cross_entropy(dev, dt, r, c, ld, G(logits), G(targets), ignore, G(losses), G(lse));
}
static void g_cross_entropy_backward(struct dsc_device *dev, dsc_dtype_t dt, int64_t r, int64_t c, int64_t ld,
                                     const void *logits, const void *lse, const int32_t *targets, int32_t ignore,
                                     const void *grad_scale, void *dlogits, bool accumulate) {
    cpu()->cross_entropy_backward(dev, dt, r, c, ld, G(logits), G(lse), G(targets), ignore, G(grad_scale), G(dlogits),
                                  accumulate);
}

static const dsc_backend_t guarded_backend = {
    .api_version = DSC_BACKEND_API_VERSION,
    .name = "guarded",
    .gemm = g_gemm,
    .linear = g_linear,
    .binary = g_binary,
    .axpy = g_axpy,
    .mul_acc = g_mul_acc,
    .sum_rows_acc = g_sum_rows_acc,
    .sum_rows_mul_acc = g_sum_rows_mul_acc,
    .sum = g_sum,
    .sum_to = g_sum_to,
    .scale = g_scale,
    .fill = g_fill,
    .convert = g_convert,
    .unary = g_unary,
    .unary_backward = g_unary_backward,
    .transpose = g_transpose,
    .softmax = g_softmax,
    .softmax_backward = g_softmax_backward,
    .layernorm = g_layernorm,
    .layernorm_backward = g_layernorm_backward,
    .embedding = g_embedding,
    .embedding_backward = g_embedding_backward,
    .dropout = g_dropout,
    .dropout_backward = g_dropout_backward,
    .attention = g_attention,
    .attention_backward = g_attention_backward,
    .cross_entropy = g_cross_entropy,
    .cross_entropy_backward = g_cross_entropy_backward,
};

const dsc_backend_t *dsc__backend_guarded(void) {
    return &guarded_backend;
}

/* CPU kernel declarations, one per backend-table entry (see src/ops/backend.h for the
 * contract of each). cpu_basic.c holds the elementwise, reduction, gemm and transpose
 * kernels; cpu_nn.c the softmax, layernorm, embedding, cross-entropy and dropout ones;
 * cpu_attention.c flash attention.
 * Both call the run-time-dispatched f32 SIMD kernels of cpu_simd.h (cpu_simd_*.c) for GELU,
 * column sums and attention. */
#ifndef DSC_OPS_CPU_KERNELS_H
#define DSC_OPS_CPU_KERNELS_H

#include "ops/backend.h"

void dsc_cpu_gemm(dsc_dtype_t dt, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, double alpha,
                  const void *a, int64_t lda, const void *b, int64_t ldb, double beta, void *c, int64_t ldc);
/* backend.h's linear (src/ops/cpu/cpu_fused.c). */
void dsc_cpu_linear(dsc_dtype_t dt, int64_t m, int64_t n, int64_t k, const void *x, const void *w, const void *bias,
                    void *y);
void dsc_cpu_binary(dsc_dtype_t dt, dsc_binary_op_t op, int64_t n_a, const void *a, int64_t n_b, const void *b,
                    void *out);
void dsc_cpu_axpy(dsc_dtype_t dt, int64_t n, double alpha, const void *x, void *y);
void dsc_cpu_mul_acc(dsc_dtype_t dt, int64_t n, double alpha, const void *x, int64_t n_w, const void *w, void *y);
void dsc_cpu_sum_rows_acc(dsc_dtype_t dt, int64_t n_rows, int64_t n_cols, double alpha, const void *x, void *y);
void dsc_cpu_sum_rows_mul_acc(dsc_dtype_t dt, int64_t n_rows, int64_t n_cols, double alpha, const void *x,
                              const void *w, void *y);
double dsc_cpu_sum(dsc_dtype_t dt, int64_t n, const void *x);
void dsc_cpu_scale(dsc_dtype_t dt, int64_t n, double s, const void *x, void *y);
void dsc_cpu_fill(dsc_dtype_t dt, int64_t n, double value, void *y);
void dsc_cpu_unary(dsc_dtype_t dt, dsc_unary_op_t op, int64_t n, const void *x, void *y);
void dsc_cpu_unary_backward(dsc_dtype_t dt, dsc_unary_op_t op, int64_t n, const void *x, const void *y,
                            const void *dy, void *dx);
void dsc_cpu_transpose(dsc_dtype_t dt, int64_t outer, int64_t d0, int64_t mid, int64_t d1, int64_t inner,
                       const void *x, void *out, bool accumulate);

void dsc_cpu_softmax(dsc_dtype_t dt, int64_t n_rows, int64_t n_cols, const void *x, void *y);
void dsc_cpu_softmax_backward(dsc_dtype_t dt, int64_t n_rows, int64_t n_cols, const void *y, const void *dy, void *dx);
void dsc_cpu_layernorm(dsc_dtype_t dt, int64_t n_rows, int64_t n_cols, double eps, const void *x, const void *w,
                       const void *b, void *y, void *mean, void *rstd);
void dsc_cpu_layernorm_backward(dsc_dtype_t dt, int64_t n_rows, int64_t n_cols, const void *x, const void *w,
                                const void *mean, const void *rstd, const void *dy, void *dx, void *dw, void *db);
void dsc_cpu_embedding(dsc_dtype_t dt, int64_t n_ids, int64_t n_cols, const int32_t *ids, const void *table, void *out);
void dsc_cpu_embedding_backward(dsc_dtype_t dt, int64_t n_ids, int64_t n_cols, const int32_t *ids, const void *dout,
                                void *dtable);
void dsc_cpu_dropout(dsc_dtype_t dt, int64_t n, double p, uint64_t seed, uint64_t offset, const void *x, void *y);
void dsc_cpu_dropout_backward(dsc_dtype_t dt, int64_t n, double p, uint64_t seed, uint64_t offset, const void *dy,
                              void *dx);
void dsc_cpu_attention(dsc_dtype_t dt, int64_t b, int64_t t, int64_t c, int64_t n_head, const void *qkv,
                       double drop_p, uint64_t seed, uint64_t offset, void *out, void *lse);
void dsc_cpu_attention_backward(dsc_dtype_t dt, int64_t b, int64_t t, int64_t c, int64_t n_head, const void *qkv,
                                const void *out, const void *lse, const void *dout, double drop_p, uint64_t seed,
                                uint64_t offset, void *dqkv);
/* ld: the row stride of logits and dlogits (>= n_cols), as backend.h's entries. */
void dsc_cpu_cross_entropy(dsc_dtype_t dt, int64_t n_rows, int64_t n_cols, int64_t ld, const void *logits,
                           const int32_t *targets, int32_t ignore_index, void *losses, void *lse);
void dsc_cpu_cross_entropy_backward(dsc_dtype_t dt, int64_t n_rows, int64_t n_cols, int64_t ld, const void *logits,
                                    const void *lse, const int32_t *targets, int32_t ignore_index,
                                    const void *grad_scale, void *dlogits, bool accumulate);

/* bf16 / f16 spans to and from f32 (dt is DSC_BF16 or DSC_F16), for the kernels that take
 * 16-bit tensors and compute in f32. */
static inline void dsc__cpu_to_f32(dsc_dtype_t dt, int64_t n, const void *src, float *dst) {
    const uint16_t *s = src;
    if (dt == DSC_BF16)
        for (int64_t i = 0; i < n; i++) dst[i] = dsc_bf16_to_f32(s[i]);
    else
        for (int64_t i = 0; i < n; i++) dst[i] = dsc_f16_to_f32(s[i]);
}
static inline void dsc__cpu_from_f32(dsc_dtype_t dt, int64_t n, const float *src, void *dst) {
    uint16_t *d = dst;
    if (dt == DSC_BF16)
        for (int64_t i = 0; i < n; i++) d[i] = dsc_f32_to_bf16(src[i]);
    else
        for (int64_t i = 0; i < n; i++) d[i] = dsc_f32_to_f16(src[i]);
}

#endif

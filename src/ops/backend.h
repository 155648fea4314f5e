/* The compute backend interface. The op layer (src/ops/op_*.c) checks shapes, creates
 * outputs and records the tape; every loop over tensor data runs through one of these
 * kernels, so a device backend (cuda/, later) implements this table and nothing else.
 *
 * Conventions: `dt` is DSC_F32 or DSC_F64 and every pointer holds that dtype (ids and
 * targets are int32). Backward kernels ACCUMULATE into gradient outputs (d_x += ...), since
 * a tensor may feed several ops. Sizes are element counts (n_*), never bytes. */
#ifndef DSC_OPS_BACKEND_H
#define DSC_OPS_BACKEND_H

#include <stdbool.h>
#include <stdint.h>

#include "dsc/tensor.h"

#define DSC_BACKEND_API_VERSION 1

typedef enum dsc_unary_op {
    DSC_UNARY_RELU = 0,
    DSC_UNARY_GELU,
    DSC_UNARY_TANH,
    DSC_UNARY_COUNT
} dsc_unary_op_t;

typedef enum dsc_binary_op {
    DSC_BINARY_ADD = 0,
    DSC_BINARY_SUB,
    DSC_BINARY_MUL,
    DSC_BINARY_COUNT
} dsc_binary_op_t;

typedef struct dsc_backend {
    int api_version; /* DSC_BACKEND_API_VERSION */
    const char *name;

    /* C[M,N] = alpha * op(A) op(B) + beta * C, row-major, op(X) = X^T when the flag is set;
     * lda/ldb/ldc are row strides as in cblas row-major. */
    void (*gemm)(dsc_dtype_t dt, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, double alpha,
                 const void *a, int64_t lda, const void *b, int64_t ldb, double beta, void *c, int64_t ldc);

    /* out[i] = a[i] op b[i % n_b] for i < n_a (b broadcast over a's leading dims, n_a % n_b == 0). */
    void (*binary)(dsc_dtype_t dt, dsc_binary_op_t op, int64_t n_a, const void *a, int64_t n_b, const void *b,
                   void *out);
    /* y[i] += alpha * x[i] for i < n. */
    void (*axpy)(dsc_dtype_t dt, int64_t n, double alpha, const void *x, void *y);
    /* y[i] += alpha * x[i] * w[i % n_w]: the mul backward (w broadcast). */
    void (*mul_acc)(dsc_dtype_t dt, int64_t n, double alpha, const void *x, int64_t n_w, const void *w, void *y);
    /* y[j] += alpha * sum_r x[r * n_cols + j] for j < n_cols, r < n_rows (reduce leading dims). */
    void (*sum_rows_acc)(dsc_dtype_t dt, int64_t n_rows, int64_t n_cols, double alpha, const void *x, void *y);
    /* y[j] += alpha * sum_r x[r * n_cols + j] * w[r * n_cols + j] (reduce products over rows). */
    void (*sum_rows_mul_acc)(dsc_dtype_t dt, int64_t n_rows, int64_t n_cols, double alpha, const void *x,
                             const void *w, void *y);
    /* Sum of all n elements, accumulated in double. */
    double (*sum)(dsc_dtype_t dt, int64_t n, const void *x);
    /* out[0] = (sum of all n elements, accumulated in double) * mul / div, computed in double
     * and rounded once: the sum stays on the device (no host read in the middle of a step). */
    void (*sum_to)(dsc_dtype_t dt, int64_t n, double mul, double div, const void *x, void *out);
    /* y[i] = s * x[i]. */
    void (*scale)(dsc_dtype_t dt, int64_t n, double s, const void *x, void *y);
    /* Fill n elements with value. */
    void (*fill)(dsc_dtype_t dt, int64_t n, double value, void *y);
    /* y[i] = x[i] converted from src_dt to dst_dt (any float dtype or i32; rounding as
     * dsc_convert). */
    void (*convert)(dsc_dtype_t dst_dt, dsc_dtype_t src_dt, int64_t n, const void *x, void *y);

    /* y = f(x); backward: dx += f'(x) * dy. */
    void (*unary)(dsc_dtype_t dt, dsc_unary_op_t op, int64_t n, const void *x, void *y);
    void (*unary_backward)(dsc_dtype_t dt, dsc_unary_op_t op, int64_t n, const void *x, const void *y,
                           const void *dy, void *dx);

    /* out[r, ...] = x permuted: x viewed as [outer, d0, mid, d1, inner] -> [outer, d1, mid, d0, inner].
     * Adds into out when accumulate is set (used by backward). */
    void (*transpose)(dsc_dtype_t dt, int64_t outer, int64_t d0, int64_t mid, int64_t d1, int64_t inner,
                      const void *x, void *out, bool accumulate);

    /* Softmax over rows of n_cols; backward: dx += y * (dy - sum(dy * y)). */
    void (*softmax)(dsc_dtype_t dt, int64_t n_rows, int64_t n_cols, const void *x, void *y);
    void (*softmax_backward)(dsc_dtype_t dt, int64_t n_rows, int64_t n_cols, const void *y, const void *dy,
                             void *dx);

    /* Layer norm over rows; saves mean and rstd (n_rows each, dtype dt). bias may be NULL.
     * Backward accumulates dx, dweight, dbias (each may be NULL). */
    void (*layernorm)(dsc_dtype_t dt, int64_t n_rows, int64_t n_cols, double eps, const void *x, const void *w,
                      const void *b, void *y, void *mean, void *rstd);
    void (*layernorm_backward)(dsc_dtype_t dt, int64_t n_rows, int64_t n_cols, const void *x, const void *w,
                               const void *mean, const void *rstd, const void *dy, void *dx, void *dw, void *db);

    /* out[i, :] = table[ids[i], :]; backward: dtable[ids[i], :] += dout[i, :]. ids checked by the op. */
    void (*embedding)(dsc_dtype_t dt, int64_t n_ids, int64_t n_cols, const int32_t *ids, const void *table,
                      void *out);
    void (*embedding_backward)(dsc_dtype_t dt, int64_t n_ids, int64_t n_cols, const int32_t *ids, const void *dout,
                               void *dtable);

    /* Causal attention. qkv [B,T,3C]; out [B,T,C]; att [B,H,T,T] saves the (post-dropout)
     * probabilities; pre_att [B,H,T,T] the pre-dropout ones (may alias att when no dropout);
     * drop_mask [B,H,T,T] holds 0 or 1/(1-p) (NULL when no dropout).
     * Backward accumulates into dqkv. */
    void (*attention)(dsc_dtype_t dt, int64_t b, int64_t t, int64_t c, int64_t n_head, const void *qkv,
                      const void *drop_mask, void *pre_att, void *att, void *out);
    void (*attention_backward)(dsc_dtype_t dt, int64_t b, int64_t t, int64_t c, int64_t n_head, const void *qkv,
                               const void *drop_mask, const void *pre_att, const void *att, const void *dout,
                               void *dqkv);

    /* Cross-entropy: per row r with targets[r] != ignore: loss_r = logsumexp(x_r) - x_r[target].
     * Writes probs (softmax of logits, n_rows x n_cols) and returns sum of loss_r in double.
     * Backward: dlogits[r, :] += scale * (probs[r, :] - onehot(target)) for non-ignored rows. */
    double (*cross_entropy)(dsc_dtype_t dt, int64_t n_rows, int64_t n_cols, const void *logits,
                            const int32_t *targets, int32_t ignore_index, void *probs);
    void (*cross_entropy_backward)(dsc_dtype_t dt, int64_t n_rows, int64_t n_cols, const void *probs,
                                   const int32_t *targets, int32_t ignore_index, double scale, void *dlogits);
} dsc_backend_t;

/* The CPU backend (OpenBLAS gemm, OpenMP loops). */
const dsc_backend_t *dsc__backend_cpu(void);

#endif

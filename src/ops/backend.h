/* The compute backend interface. The op layer (src/ops/op_*.c) checks shapes, creates
 * outputs and records the tape; every loop over tensor data runs through one of these
 * kernels, so a device backend (cuda/, later) implements this table and nothing else.
 *
 * Conventions: `dt` is DSC_F32, DSC_F64, DSC_BF16 or DSC_F16, and every tensor pointer
 * of an entry holds that dtype unless its comment says otherwise (ids and targets are
 * int32). Backward kernels ACCUMULATE into gradient outputs (d_x += ...), since a tensor
 * may feed several ops. Sizes are element counts (n_*), never bytes.
 *
 * 16-bit dtypes (bf16, f16; bf16/fp16 mixed precision, as in llm.c and DeepSpeed's bf16
 * engine): storage is 16 bits, arithmetic is f32. A kernel widens its 16-bit inputs to f32
 * (exact), computes exactly as its f32 version does (same operations, same order: sums
 * that the f32 kernel does in double stay double), and rounds each output element to
 * 16 bits once, to nearest even. An accumulating output (d_x += v) is read, added in f32
 * and rounded once per call. So for 16-bit inputs the result is round16(the f32 kernel on
 * the widened inputs), bit for bit on the CPU (tests/unit/test_ops_half.c); another
 * device may differ by summation order like its f32 kernels do, but must keep the f32
 * accumulation and the single rounding. Buffers that stay f32 for 16-bit dt:
 *   - layernorm's mean and rstd (float, n_rows each);
 *   - the outputs of sum (a double return value) and the internal column sums of
 *     sum_rows_acc / sum_rows_mul_acc and layernorm_backward's dweight/dbias (bias and norm
 *     gradients are summed over all rows in f32 or wider and added to the 16-bit gradient
 *     with one rounding);
 *   - attention's lse and cross-entropy's losses and lse (see their entries), so losses
 *     are f32.
 * Everything else is 16-bit: activations, their gradients, and the parameter gradients
 * the ops add into (the engine's 16-bit gradient buffers, which src/amp accumulates into
 * f32 across micro-steps). embedding_backward sums the rows of each repeated id in f32
 * (position order) and adds them with one rounding per id, instead of rounding after each
 * row. alpha/beta/scale arguments are double on every dtype and applied in f32.
 *
 * Every entry takes the device first (API version 3): its stream and handles (cuBLASLt),
 * and its context, where a kernel that fails (a CUDA launch error) records the error; the
 * CPU entries ignore it. Entries are issued in order on the device's stream; only `sum`,
 * which returns its value, waits for it. */
#ifndef DSC_OPS_BACKEND_H
#define DSC_OPS_BACKEND_H

#include <stdbool.h>
#include <stdint.h>

#include "dsc/tensor.h"

struct dsc_device; /* src/core/device.h: the device whose stream and handles the entry uses */

#define DSC_BACKEND_API_VERSION 3

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
    void (*gemm)(struct dsc_device *dev, dsc_dtype_t dt, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
                 double alpha, const void *a, int64_t lda, const void *b, int64_t ldb, double beta, void *c,
                 int64_t ldc);

    /* The linear layer's forward: y[M,N] = x[M,K] w[N,K]^T + bias[N] (bias may be NULL),
     * row-major and dense (strides K, K, N). The bias is added to the f32 (f64) sum and the
     * result rounded once for 16-bit dt; for f32/f64 it is the gemm's result plus bias, as
     * gemm followed by binary add (on the CPU the same bits). */
    void (*linear)(struct dsc_device *dev, dsc_dtype_t dt, int64_t m, int64_t n, int64_t k, const void *x,
                   const void *w, const void *bias, void *y);
    /* Optional (NULL: the MLP runs linear, then unary GELU). The MLP's first projection with
     * its GELU: pre[M,N] = x w^T + bias and gelu[M,N] = gelu(pre) (tanh approximation), both
     * written by one call (cuBLASLt's GELU_AUX_BIAS epilogue on the GPU: pre as its auxiliary
     * output). bias is not NULL. */
    void (*linear_gelu)(struct dsc_device *dev, dsc_dtype_t dt, int64_t m, int64_t n, int64_t k, const void *x,
                        const void *w, const void *bias, void *pre, void *gelu);
    /* Optional (NULL: the op runs linear + binary add). The linear layer onto a residual
     * stream: y[M,N] = residual[M,N] + (x w^T + bias) (residual and y distinct). On the GPU
     * one gemm (beta 1 onto the residual, the bias epilogue) rounds once where linear + add
     * round twice. */
    void (*linear_residual)(struct dsc_device *dev, dsc_dtype_t dt, int64_t m, int64_t n, int64_t k, const void *x,
                            const void *w, const void *bias, const void *residual, void *y);
    /* Optional (NULL: the op runs gemm + unary_backward). The MLP's backward through its
     * GELU: dpre[M,K] = (g[M,N] w[N,K]) * gelu'(pre[M,K]) (tanh approximation), written, not
     * added (cuBLASLt's DGELU epilogue on the GPU: no [M,K] intermediate). */
    void (*gemm_dgelu)(struct dsc_device *dev, dsc_dtype_t dt, int64_t m, int64_t n, int64_t k, const void *g,
                       const void *w, const void *pre, void *dpre);

    /* out[i] = a[i] op b[i % n_b] for i < n_a (b broadcast over a's leading dims, n_a % n_b == 0). */
    void (*binary)(struct dsc_device *dev, dsc_dtype_t dt, dsc_binary_op_t op, int64_t n_a, const void *a, int64_t n_b,
                   const void *b, void *out);
    /* y[i] += alpha * x[i] for i < n. */
    void (*axpy)(struct dsc_device *dev, dsc_dtype_t dt, int64_t n, double alpha, const void *x, void *y);
    /* y[i] += alpha * x[i] * w[i % n_w]: the mul backward (w broadcast). */
    void (*mul_acc)(struct dsc_device *dev, dsc_dtype_t dt, int64_t n, double alpha, const void *x, int64_t n_w,
                    const void *w, void *y);
    /* y[j] += alpha * sum_r x[r * n_cols + j] for j < n_cols, r < n_rows (reduce leading dims). */
    void (*sum_rows_acc)(struct dsc_device *dev, dsc_dtype_t dt, int64_t n_rows, int64_t n_cols, double alpha,
                         const void *x, void *y);
    /* y[j] += alpha * sum_r x[r * n_cols + j] * w[r * n_cols + j] (reduce products over rows). */
    void (*sum_rows_mul_acc)(struct dsc_device *dev, dsc_dtype_t dt, int64_t n_rows, int64_t n_cols, double alpha,
                             const void *x, const void *w, void *y);
    /* Sum of all n elements, accumulated in double. */
    double (*sum)(struct dsc_device *dev, dsc_dtype_t dt, int64_t n, const void *x);
    /* out[0] = (sum of all n elements, accumulated in double) * mul / div, computed in double
     * and rounded once: the sum stays on the device (no host read in the middle of a step). */
    void (*sum_to)(struct dsc_device *dev, dsc_dtype_t dt, int64_t n, double mul, double div, const void *x, void *out);
    /* y[i] = s * x[i]. */
    void (*scale)(struct dsc_device *dev, dsc_dtype_t dt, int64_t n, double s, const void *x, void *y);
    /* Fill n elements with value. */
    void (*fill)(struct dsc_device *dev, dsc_dtype_t dt, int64_t n, double value, void *y);
    /* y[i] = x[i] converted from src_dt to dst_dt (any float dtype or i32; rounding as
     * dsc_convert). */
    void (*convert)(struct dsc_device *dev, dsc_dtype_t dst_dt, dsc_dtype_t src_dt, int64_t n, const void *x, void *y);

    /* y = f(x); backward: dx += f'(x) * dy. Backward reads x for GELU; y may be NULL for
     * GELU and TANH (tanh is then recomputed from x) and RELU needs x or y. */
    void (*unary)(struct dsc_device *dev, dsc_dtype_t dt, dsc_unary_op_t op, int64_t n, const void *x, void *y);
    void (*unary_backward)(struct dsc_device *dev, dsc_dtype_t dt, dsc_unary_op_t op, int64_t n, const void *x,
                           const void *y, const void *dy, void *dx);

    /* out[r, ...] = x permuted: x viewed as [outer, d0, mid, d1, inner] -> [outer, d1, mid, d0, inner].
     * Adds into out when accumulate is set (used by backward). */
    void (*transpose)(struct dsc_device *dev, dsc_dtype_t dt, int64_t outer, int64_t d0, int64_t mid, int64_t d1,
                      int64_t inner, const void *x, void *out, bool accumulate);

    /* Softmax over rows of n_cols; backward: dx += y * (dy - sum(dy * y)). */
    void (*softmax)(struct dsc_device *dev, dsc_dtype_t dt, int64_t n_rows, int64_t n_cols, const void *x, void *y);
    void (*softmax_backward)(struct dsc_device *dev, dsc_dtype_t dt, int64_t n_rows, int64_t n_cols, const void *y,
                             const void *dy, void *dx);

    /* Layer norm over rows; saves mean and rstd (n_rows each, dtype dt; float for 16-bit dt).
     * bias may be NULL.
     * Backward accumulates dx, dweight, dbias (each may be NULL). */
    void (*layernorm)(struct dsc_device *dev, dsc_dtype_t dt, int64_t n_rows, int64_t n_cols, double eps, const void *x,
                      const void *w, const void *b, void *y, void *mean, void *rstd);
    void (*layernorm_backward)(struct dsc_device *dev, dsc_dtype_t dt, int64_t n_rows, int64_t n_cols, const void *x,
                               const void *w, const void *mean, const void *rstd, const void *dy, void *dx, void *dw,
                               void *db);

    /* out[i, :] = table[ids[i], :]; backward: dtable[ids[i], :] += dout[i, :] (dtable has n_vocab
     * rows). ids checked by the op. */
    void (*embedding)(struct dsc_device *dev, dsc_dtype_t dt, int64_t n_ids, int64_t n_cols, const int32_t *ids,
                      const void *table, void *out);
    void (*embedding_backward)(struct dsc_device *dev, dsc_dtype_t dt, int64_t n_ids, int64_t n_cols, int64_t n_vocab,
                               const int32_t *ids, const void *dout, void *dtable);

    /* Dropout with no stored mask (src/core/philox.h stream): keep(i) iff
     * dsc_philox_uniform(seed, offset + i) >= p; y[i] = keep(i) ? x[i] * (1/(1-p)) : 0;
     * backward: dx[i] += keep(i) ? dy[i] * (1/(1-p)) : 0. dt may be f32, f64, bf16, f16
     * (16-bit in and out, f32 math). */
    void (*dropout)(struct dsc_device *dev, dsc_dtype_t dt, int64_t n, double p, uint64_t seed, uint64_t offset,
                    const void *x, void *y);
    void (*dropout_backward)(struct dsc_device *dev, dsc_dtype_t dt, int64_t n, double p, uint64_t seed,
                             uint64_t offset, const void *dy, void *dx);

    /* Causal attention, flash style (nothing of size T x T stored). qkv [B,T,3C] (q, k, v
     * in columns [0,C), [C,2C), [2C,3C); head h uses columns h*hd..(h+1)*hd, hd = C/H);
     * s_ij = q_i.k_j / sqrt(hd) for j <= i; lse [B,H,T] = log sum_{j<=i} exp(s_ij) (float
     * for f32/bf16/f16, double for f64); p_ij = exp(s_ij - lse). Dropout on p: element
     * (b,h,i,j) uses stream position offset + ((b*H + h)*T + i)*T + j, kept iff uniform >=
     * drop_p, scaled 1/(1-drop_p). out [B,T,C]: out[b,i,h*hd+d] = sum_j p'_ij v_j[d].
     * Backward ACCUMULATES dqkv, recomputing p from qkv and lse. */
    void (*attention)(struct dsc_device *dev, dsc_dtype_t dt, int64_t b, int64_t t, int64_t c, int64_t n_head,
                      const void *qkv, double drop_p, uint64_t seed, uint64_t offset, void *out, void *lse);
    void (*attention_backward)(struct dsc_device *dev, dsc_dtype_t dt, int64_t b, int64_t t, int64_t c, int64_t n_head,
                               const void *qkv, const void *out, const void *lse, const void *dout, double drop_p,
                               uint64_t seed, uint64_t offset, void *dqkv);
    /* Optional (NULL: the op zero-fills an unwritten gradient and calls attention_backward).
     * The same gradient WRITTEN to dqkv (its old contents ignored), for a gradient the op
     * makes first (src/core/autograd.c dsc__grad_overwrite): cuDNN's fused backward writes
     * its outputs, so the CUDA device saves the zero fill and an accumulating pass. */
    void (*attention_backward_write)(struct dsc_device *dev, dsc_dtype_t dt, int64_t b, int64_t t, int64_t c,
                                     int64_t n_head, const void *qkv, const void *out, const void *lse,
                                     const void *dout, double drop_p, uint64_t seed, uint64_t offset, void *dqkv);

    /* Fused cross-entropy (no [rows, V] probabilities stored). Row r of the logits (and of
     * dlogits) starts at element r * ld (ld >= n_cols: a row stride padded for the gemm that
     * made the logits; columns n_cols..ld-1 are neither read nor written). Valid row r
     * (targets[r] != ignore_index): lse[r] = log sum_j exp(x[r,j]), losses[r] = lse[r] - x[r, targets[r]];
     * ignored rows get 0 in both. losses and lse: float (double for f64), n_rows each.
     * Backward: g = grad_scale[0] (one float, double for f64, in device memory);
     * value[r,j] = g * (exp(x[r,j] - lse[r]) - (j == targets[r])) for valid rows, 0 for
     * ignored ones; accumulate = false: dlogits = value, and dlogits MAY alias logits (the
     * in-place path); accumulate = true: dlogits += value (no aliasing). */
    void (*cross_entropy)(struct dsc_device *dev, dsc_dtype_t dt, int64_t n_rows, int64_t n_cols, int64_t ld,
                          const void *logits, const int32_t *targets, int32_t ignore_index, void *losses, void *lse);
    void (*cross_entropy_backward)(struct dsc_device *dev, dsc_dtype_t dt, int64_t n_rows, int64_t n_cols, int64_t ld,
                                   const void *logits, const void *lse, const int32_t *targets, int32_t ignore_index,
                                   const void *grad_scale, void *dlogits, bool accumulate);
    /* Optional (NULL: cross_entropy, then cross_entropy_backward with accumulate = false).
     * Both in one call, with the same bits: losses, lse and dlogits (which MAY alias logits)
     * as those two calls give them; on the GPU one pass over each row's logits less. */
    void (*cross_entropy_with_grad)(struct dsc_device *dev, dsc_dtype_t dt, int64_t n_rows, int64_t n_cols, int64_t ld,
                                    const void *logits, const int32_t *targets, int32_t ignore_index, void *losses,
                                    void *lse, const void *grad_scale, void *dlogits);
} dsc_backend_t;

/* The CPU backend (OpenBLAS gemm, OpenMP loops). */
const dsc_backend_t *dsc__backend_cpu(void);

#endif

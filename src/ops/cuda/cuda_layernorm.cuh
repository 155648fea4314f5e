/* Layer norm's fast path (cuda_layernorm.cu) for the entries in cuda_nn.cu: each returns -1
 * when the shape, dtype or alignment does not suit it (the caller then runs the general
 * kernels), else the launch status. */
#ifndef DSC_OPS_CUDA_LAYERNORM_CUH
#define DSC_OPS_CUDA_LAYERNORM_CUH

#include <stdint.h>

#include "ops/cuda/cuda_kernels.h"

/* rows per chunk of the two-pass column sums (cuda_nn.cu, cuda_layernorm.cu) */
#define DSC_CUDA_COL_CHUNK 256

int dsc_cuda_ln_fwd_fast(void *stream, dsc_dtype_t dt, int64_t n_rows, int64_t n_cols, double eps, const void *x,
                         const void *w, const void *b, void *y, void *mean, void *rstd);
/* dx += the layer norm's input gradient */
int dsc_cuda_ln_dx_fast(void *stream, dsc_dtype_t dt, int64_t n_rows, int64_t n_cols, const void *x, const void *w,
                        const void *mean, const void *rstd, const void *dy, void *dx);
/* The backward's one-pass form: dx += (dx may be NULL) and the chunk column sums of dweight and
 * dbias into part0 / part1 ([chunks, n_cols] doubles, for k_col_finish); -1 when the row is too
 * wide for it (more than 3 groups of 16 bytes per lane: 768 bf16 columns) or the general conditions fail. */
int dsc_cuda_ln_bwd_fused(void *stream, dsc_dtype_t dt, int64_t n_rows, int64_t n_cols, const void *x, const void *w,
                          const void *mean, const void *rstd, const void *dy, void *dx, double *part0, double *part1);
/* The first pass of the column sums into part0 (and part1), [chunks, n_cols] doubles: mean
 * NULL: part0 = chunk sums of x; else layer norm's with x = dy, w = its input: part0 = sums of
 * dy * xhat, part1 = sums of dy. */
int dsc_cuda_col_part_fast(void *stream, dsc_dtype_t dt, int64_t n_rows, int64_t n_cols, const void *x, const void *w,
                           const void *mean, const void *rstd, double *part0, double *part1);

#endif

/* The CUDA kernels of dsc, as plain C functions (no CUDA type in this header, so the engine,
 * the device table and the tests include it from C11). Each kernel has the semantics of the
 * CPU backend entry of the same name in src/ops/backend.h, of the agreed kernel contracts
 * (dropout, flash attention, fused cross-entropy: see OWNERS/docs), of the mixed-precision
 * kernels in src/amp and of the optimizer kernels in src/optim/optim_kernels.inc.h.
 *
 * Conventions:
 *  - every data pointer is DEVICE memory unless the name says _host; `stream` is a
 *    cudaStream_t passed as void* (NULL = the legacy default stream);
 *  - dt is DSC_F32, DSC_BF16, DSC_F16 (16-bit values are loaded to f32, all arithmetic and
 *    every accumulation in f32 or wider, stored back rounding to nearest even) or DSC_F64;
 *  - backward kernels ACCUMULATE (dx += ...) as in backend.h;
 *  - every function returns 0 on success or a nonzero cudaError_t / cublasStatus_t code
 *    (dsc_cuda_error_string names it); launches are asynchronous, nothing syncs the host
 *    unless the name says so;
 *  - no kernel uses order-dependent atomics: the same inputs on the same GPU give the same
 *    bits, run after run. */
#ifndef DSC_OPS_CUDA_KERNELS_H
#define DSC_OPS_CUDA_KERNELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dsc/amp.h"
#include "dsc/tensor.h"
#include "ops/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

struct dsc_optim_scalars; /* src/optim/optim_internal.h */

/* ---- runtime: device, memory, streams, events ------------------------------------------- */

/* Number of visible CUDA devices (0 when there is no driver or no GPU: not an error). */
int dsc_cuda_device_count(void);
const char *dsc_cuda_error_string(int code);

typedef struct dsc_cuda_device_info {
    char name[256];
    int ordinal, cc_major, cc_minor, sm_count;
    size_t total_mem, free_mem, l2_bytes, smem_per_block_optin;
    int driver_version, runtime_version; /* e.g. 13000 */
    size_t cublaslt_version;
    double mem_bandwidth_gbs; /* from memory clock and bus width (datasheet-style peak) */
} dsc_cuda_device_info_t;
int dsc_cuda_device_info(int ordinal, dsc_cuda_device_info_t *out);
int dsc_cuda_set_device(int ordinal);

int dsc_cuda_malloc(void **ptr, size_t bytes);
/* True when ptr is device (or managed) memory of any GPU: memory the host must not touch. */
bool dsc_cuda_is_device_pointer(const void *ptr);
/* Page-locked (cudaMallocHost / registered) host memory: async copies from it read it later. */
bool dsc_cuda_is_pinned_host_pointer(const void *ptr);
int dsc_cuda_free(void *ptr);
int dsc_cuda_malloc_host(void **ptr, size_t bytes); /* pinned host memory */
int dsc_cuda_free_host(void *ptr);
int dsc_cuda_memset_async(void *dst, int value, size_t bytes, void *stream);
int dsc_cuda_copy_h2d_async(void *dst, const void *src_host, size_t bytes, void *stream);
int dsc_cuda_copy_d2h_async(void *dst_host, const void *src, size_t bytes, void *stream);
int dsc_cuda_copy_d2d_async(void *dst, const void *src, size_t bytes, void *stream);
int dsc_cuda_stream_create(void **stream);
int dsc_cuda_stream_destroy(void *stream);
int dsc_cuda_stream_sync(void *stream);
int dsc_cuda_device_sync(void);
int dsc_cuda_event_create(void **event);
int dsc_cuda_event_destroy(void *event);
int dsc_cuda_event_record(void *event, void *stream);
int dsc_cuda_stream_wait_event(void *stream, void *event);
int dsc_cuda_event_sync(void *event);
/* *done: the work before the event's latest record finished (cudaEventQuery; never blocks). */
int dsc_cuda_event_query(void *event, bool *done);
int dsc_cuda_event_elapsed_ms(void *start, void *stop, float *ms);

/* ---- gemm (cuBLASLt) ------------------------------------------------------------------ */

/* One cuBLASLt handle with its workspace (device memory, allocated here). */
typedef struct dsc_cuda_blas dsc_cuda_blas_t;
int dsc_cuda_blas_create(dsc_cuda_blas_t **out, size_t workspace_bytes);
void dsc_cuda_blas_destroy(dsc_cuda_blas_t *blas);

/* backend.h's gemm: C[M,N] = alpha op(A) op(B) + beta C, row-major, lda/ldb/ldc row strides.
 * f32 runs in true f32 (no TF32); bf16/f16 operands and C with f32 accumulation; f64. */
int dsc_cuda_gemm(dsc_cuda_blas_t *blas, void *stream, dsc_dtype_t dt, bool trans_a, bool trans_b, int64_t m,
                  int64_t n, int64_t k, double alpha, const void *a, int64_t lda, const void *b, int64_t ldb,
                  double beta, void *c, int64_t ldc);

/* For benchmarks: times (best of `reps` after one warm-up, ms; -1 where it failed) each of
 * cuBLASLt's first max_algos (<= 16) heuristic choices for this gemm; ms[0] is the choice
 * dsc_cuda_gemm makes. */
typedef struct dsc_cuda_gemm_probe {
    int max_algos, reps;
    int n_algos;
    float ms[16];
} dsc_cuda_gemm_probe_t;
int dsc_cuda_gemm_probe(dsc_cuda_blas_t *blas, void *stream, dsc_dtype_t dt, bool trans_a, bool trans_b, int64_t m,
                        int64_t n, int64_t k, const void *a, int64_t lda, const void *b, int64_t ldb, double beta,
                        void *c, int64_t ldc, dsc_cuda_gemm_probe_t *probe);

typedef enum dsc_cuda_epilogue {
    DSC_CUDA_EPI_NONE = 0,
    DSC_CUDA_EPI_BIAS,      /* C[i,j] = (...) + bias[j] */
    DSC_CUDA_EPI_BIAS_GELU, /* C[i,j] = gelu((...) + bias[j]), cuBLASLt's tanh-approximation GELU;
                               pre (may be NULL) receives (...) + bias[j] for the backward */
    DSC_CUDA_EPI_DGELU,     /* C[i,j] = (...) * gelu'(pre[i,j]) (pre: the GELU's input, ld ld_pre); no bias */
} dsc_cuda_epilogue_t;
/* cuBLASLt found no algorithm for the call (an epilogue it does not run for these types or
 * layouts): the callers fall back to separate kernels. */
#define DSC_CUDA_BLAS_NOT_SUPPORTED 1015
/* The gemm with beta = 0 and a fused epilogue; bias has N elements of dt (f32 and 16-bit dt).
 * DGELU takes no bias (NULL); BIAS_GELU, BIAS need it. */
int dsc_cuda_gemm_epilogue(dsc_cuda_blas_t *blas, void *stream, dsc_dtype_t dt, bool trans_a, bool trans_b,
                           int64_t m, int64_t n, int64_t k, double alpha, const void *a, int64_t lda, const void *b,
                           int64_t ldb, void *c, int64_t ldc, dsc_cuda_epilogue_t epi, const void *bias, void *pre,
                           int64_t ld_pre);

/* y[M,N] = residual[M,N] + (x[M,K] w[N,K]^T + bias[N]) (row-major, dense; bias may be NULL):
 * one gemm, beta 1 onto the residual (read as C, written to D = y), the bias epilogue, rounded
 * once. DSC_CUDA_BLAS_NOT_SUPPORTED when cuBLASLt has no algorithm (f64 has none). */
int dsc_cuda_linear_residual(dsc_cuda_blas_t *blas, void *stream, dsc_dtype_t dt, int64_t m, int64_t n, int64_t k,
                             const void *x, const void *w, const void *bias, const void *residual, void *y);

/* ---- element-wise, reductions, casts (backend.h semantics) ------------------------------ */

int dsc_cuda_binary(void *stream, dsc_dtype_t dt, dsc_binary_op_t op, int64_t n_a, const void *a, int64_t n_b,
                    const void *b, void *out);
int dsc_cuda_axpy(void *stream, dsc_dtype_t dt, int64_t n, double alpha, const void *x, void *y);
int dsc_cuda_mul_acc(void *stream, dsc_dtype_t dt, int64_t n, double alpha, const void *x, int64_t n_w,
                     const void *w, void *y);
int dsc_cuda_sum_rows_acc(void *stream, dsc_dtype_t dt, int64_t n_rows, int64_t n_cols, double alpha, const void *x,
                          void *y);
/* The same column sums in two passes over a device workspace of ws_bytes, for many rows and
 * few columns (bias and norm gradients: 65,536 x 768); a fixed order, another one than the
 * one-pass kernels'. The one-pass kernel runs when ws is NULL, too small, or one chunk
 * (256 rows) holds every row. Workspace: dsc_cuda_col_sums_workspace_bytes per sum (the layer
 * norm backward needs two: dw and db). */
size_t dsc_cuda_col_sums_workspace_bytes(int64_t n_rows, int64_t n_cols);
int dsc_cuda_sum_rows_acc_ws(void *stream, dsc_dtype_t dt, int64_t n_rows, int64_t n_cols, double alpha,
                             const void *x, void *y, void *ws, size_t ws_bytes);
int dsc_cuda_sum_rows_mul_acc_ws(void *stream, dsc_dtype_t dt, int64_t n_rows, int64_t n_cols, double alpha,
                                 const void *x, const void *w, void *y, void *ws, size_t ws_bytes);
int dsc_cuda_sum_rows_mul_acc(void *stream, dsc_dtype_t dt, int64_t n_rows, int64_t n_cols, double alpha,
                              const void *x, const void *w, void *y);
/* *out (one double, device memory) = sum of the n elements in double: no host read. */
int dsc_cuda_sum(void *stream, dsc_dtype_t dt, int64_t n, const void *x, double *out);
/* backend.h's sum_to: out[0] (one element of dt, device memory) = sum * mul / div, computed in
 * double and rounded once, on the device. */
int dsc_cuda_sum_to(void *stream, dsc_dtype_t dt, int64_t n, double mul, double div, const void *x, void *out);
int dsc_cuda_scale(void *stream, dsc_dtype_t dt, int64_t n, double s, const void *x, void *y);
int dsc_cuda_fill(void *stream, dsc_dtype_t dt, int64_t n, double value, void *y);
int dsc_cuda_unary(void *stream, dsc_dtype_t dt, dsc_unary_op_t op, int64_t n, const void *x, void *y);
/* d[i] = d[i] * gelu'(pre[i]) in place (the tanh approximation's derivative, as unary_backward). */
int dsc_cuda_gelu_grad_mul(void *stream, dsc_dtype_t dt, int64_t n, const void *pre, void *d);
int dsc_cuda_unary_backward(void *stream, dsc_dtype_t dt, dsc_unary_op_t op, int64_t n, const void *x, const void *y,
                            const void *dy, void *dx);
int dsc_cuda_transpose(void *stream, dsc_dtype_t dt, int64_t outer, int64_t d0, int64_t mid, int64_t d1,
                       int64_t inner, const void *x, void *out, bool accumulate);
/* dst = src converted (f32, bf16, f16, f64 in any pair; bit-identical to src/core/dtype.c). */
int dsc_cuda_convert(void *stream, void *dst, dsc_dtype_t dst_dt, const void *src, dsc_dtype_t src_dt, int64_t n);

/* ---- neural-network kernels ------------------------------------------------------------- */

int dsc_cuda_softmax(void *stream, dsc_dtype_t dt, int64_t n_rows, int64_t n_cols, const void *x, void *y);
int dsc_cuda_softmax_backward(void *stream, dsc_dtype_t dt, int64_t n_rows, int64_t n_cols, const void *y,
                              const void *dy, void *dx);
/* mean and rstd have dtype dt (as on the CPU) except for 16-bit dt, where they are f32. */
int dsc_cuda_layernorm(void *stream, dsc_dtype_t dt, int64_t n_rows, int64_t n_cols, double eps, const void *x,
                       const void *w, const void *b, void *y, void *mean, void *rstd);
int dsc_cuda_layernorm_backward(void *stream, dsc_dtype_t dt, int64_t n_rows, int64_t n_cols, const void *x,
                                const void *w, const void *mean, const void *rstd, const void *dy, void *dx,
                                void *dw, void *db);
int dsc_cuda_layernorm_backward_ws(void *stream, dsc_dtype_t dt, int64_t n_rows, int64_t n_cols, const void *x,
                                   const void *w, const void *mean, const void *rstd, const void *dy, void *dx,
                                   void *dw, void *db, void *ws, size_t ws_bytes);
int dsc_cuda_embedding(void *stream, dsc_dtype_t dt, int64_t n_ids, int64_t n_cols, const int32_t *ids,
                       const void *table, void *out);
/* dtable[ids[i], :] += dout[i, :] (n_vocab: the rows of dtable). Without a workspace: every
 * thread owns a column of a vocabulary range and adds the rows in id order, rounding after each
 * (slow: one thread walks all ids). */
int dsc_cuda_embedding_backward(void *stream, dsc_dtype_t dt, int64_t n_ids, int64_t n_cols, int64_t n_vocab,
                                const int32_t *ids, const void *dout, void *dtable);
/* The same with a device workspace of dsc_cuda_embedding_backward_workspace_bytes (16-byte
 * aligned; the call above runs when ws is NULL or too small): the positions are sorted by id on
 * the device, and each id's rows are summed in f32 (double for f64) and added with one rounding,
 * in this order: the sorted (id, position) list is cut into windows of DSC_CUDA_EMB_WINDOW
 * entries; an id's entries inside one window are summed in position order, the first window's
 * sum starting from dtable's row, the others' from 0; those window sums are then added in
 * window order. An id whose entries lie in one window gets the CPU's order exactly (dtable +
 * rows in position order, rounded once); the order depends only on the ids (same bits run after
 * run, no atomics). n_ids < 2^31. */
#define DSC_CUDA_EMB_WINDOW 32
size_t dsc_cuda_embedding_backward_workspace_bytes(dsc_dtype_t dt, int64_t n_ids, int64_t n_cols);
int dsc_cuda_embedding_backward_ws(void *stream, dsc_dtype_t dt, int64_t n_ids, int64_t n_cols, int64_t n_vocab,
                                   const int32_t *ids, const void *dout, void *dtable, void *ws, size_t ws_bytes);

/* Agreed contracts (shared with the CPU kernels of h15ops). */
int dsc_cuda_dropout(void *stream, dsc_dtype_t dt, int64_t n, double p, uint64_t seed, uint64_t offset,
                     const void *x, void *y);
int dsc_cuda_dropout_backward(void *stream, dsc_dtype_t dt, int64_t n, double p, uint64_t seed, uint64_t offset,
                              const void *dy, void *dx);
/* Flash attention: head size hd = C/H at most 128; lse float (double for f64). bf16 / f16 with
 * hd 64 or 128 run on tensor cores (mma.sync, FlashAttention-2 tiling), the rest on the
 * simple kernels; the _simple variants always take the simple kernels (for comparison). */
int dsc_cuda_attention(void *stream, dsc_dtype_t dt, int64_t B, int64_t T, int64_t C, int64_t H, const void *qkv,
                       double drop_p, uint64_t seed, uint64_t offset, void *out, void *lse);
int dsc_cuda_attention_backward(void *stream, dsc_dtype_t dt, int64_t B, int64_t T, int64_t C, int64_t H,
                                const void *qkv, const void *out, const void *lse, const void *dout, double drop_p,
                                uint64_t seed, uint64_t offset, void *dqkv);
int dsc_cuda_attention_simple(void *stream, dsc_dtype_t dt, int64_t B, int64_t T, int64_t C, int64_t H,
                              const void *qkv, double drop_p, uint64_t seed, uint64_t offset, void *out, void *lse);
/* Variants of the tensor-core path (bench, tests; the CUDA device takes its own from
 * DSC_CUDA_ATTENTION, docs/cuda.md). Backward: */
typedef enum {
    /* two kernels (dK dV per key tile, dQ per query tile), each recomputing Dq = rowsum(dO O)
     * per tile: bitwise reproducible, no workspace; the default of this API (cfg NULL); the
     * CUDA device defaults to PRE (cuda_device.c) */
    DSC_CUDA_ATT_BWD_RECOMPUTE = 0,
    /* Dq computed once per row into the workspace (B H T floats), then the two kernels without
     * O: bitwise reproducible, the same bits as RECOMPUTE */
    DSC_CUDA_ATT_BWD_PRE = 1,
    /* Dq once, then one kernel per key tile for dK, dV and dQ (FlashAttention-2's 5 products
     * instead of 7), dQ summed by f32 atomics into the workspace (another B T C floats) and
     * added to dqkv by a last kernel: NOT bitwise reproducible (the atomics' order varies) */
    DSC_CUDA_ATT_BWD_ATOMIC = 2,
} dsc_cuda_att_bwd_t;
typedef struct dsc_cuda_att_cfg {
    int fwd_warps; /* 4 or 8 (0: 4): 64 or 128 query rows per forward CTA */
    int bwd;       /* a dsc_cuda_att_bwd_t */
    int bwd_warps; /* 4 or 8 (0: 4): keys per dK dV CTA, rows per dQ CTA; RECOMPUTE: 4 only */
} dsc_cuda_att_cfg_t;
/* Bytes of device workspace dsc_cuda_attention_backward_cfg needs for cfg (0 for RECOMPUTE and
 * head sizes other than 64 and 128). */
size_t dsc_cuda_attention_workspace_bytes(const dsc_cuda_att_cfg_t *cfg, int64_t B, int64_t T, int64_t C, int64_t H);
/* dsc_cuda_attention / _backward with the variant cfg (NULL: the defaults); the backward
 * uses ws (256-byte aligned, ws_bytes >= the bytes above) for the variants that need it.
 * cudaErrorInvalidValue for a variant that does not exist or a short workspace; calls the
 * tensor cores do not take run the simple kernels whatever cfg says. */
int dsc_cuda_attention_cfg(void *stream, const dsc_cuda_att_cfg_t *cfg, dsc_dtype_t dt, int64_t B, int64_t T,
                           int64_t C, int64_t H, const void *qkv, double drop_p, uint64_t seed, uint64_t offset,
                           void *out, void *lse);
int dsc_cuda_attention_backward_cfg(void *stream, const dsc_cuda_att_cfg_t *cfg, dsc_dtype_t dt, int64_t B, int64_t T,
                                    int64_t C, int64_t H, const void *qkv, const void *out, const void *lse,
                                    const void *dout, double drop_p, uint64_t seed, uint64_t offset, void *dqkv,
                                    void *ws, size_t ws_bytes);
int dsc_cuda_attention_backward_simple(void *stream, dsc_dtype_t dt, int64_t B, int64_t T, int64_t C, int64_t H,
                                       const void *qkv, const void *out, const void *lse, const void *dout,
                                       double drop_p, uint64_t seed, uint64_t offset, void *dqkv);
/* cuDNN's fused flash attention (cuda_cudnn_attention.cu), the same contract as
 * dsc_cuda_attention without dropout: causal, qkv [B,T,3C] read in place through strides, out
 * [B,T,C], lse float [B,H,T] (cuDNN's softmax stats are the same natural-log log-sum-exp of the
 * scaled scores, so the forward of either implementation feeds the backward of the other).
 * bf16 and f16, hd = C/H a multiple of 8 up to 128, 16-byte aligned pointers. cuDNN is loaded
 * with dlopen("libcudnn.so.9") by _create: nothing links against it, so programs run where it
 * is absent. The state holds the library, a handle on `stream` and the execution plans, built
 * once per shape (cuDNN's heuristics, the first engine configuration that finalizes). Codes:
 * 0; cudaErrorInvalidValue (1) for arguments it does not take; 2000 + cudnnStatus_t for a
 * cuDNN failure (the reason in the state's message, dsc_cuda_cudnn_message). */
typedef struct dsc_cuda_cudnn dsc_cuda_cudnn_t;
/* NULL with the reason in err (no library, no symbol, no handle, a build without cuDNN
 * headers or on the emulator). */
dsc_cuda_cudnn_t *dsc_cuda_cudnn_create(void *stream, char *err, size_t err_len);
void dsc_cuda_cudnn_destroy(dsc_cuda_cudnn_t *cd);
/* The last failure's one-line reason ("" if none). */
const char *dsc_cuda_cudnn_message(const dsc_cuda_cudnn_t *cd);
/* cuDNN's version (e.g. 91900). */
size_t dsc_cuda_cudnn_version(const dsc_cuda_cudnn_t *cd);
/* Builds the plan of the shape if not built yet and gives the device workspace the call needs
 * (the plan's plus, backward, the f32 row sums and dQ accumulator cuDNN's graph keeps there).
 * A shape cuDNN refused once is refused again at once. */
int dsc_cuda_cudnn_attention_prepare(dsc_cuda_cudnn_t *cd, bool backward, dsc_dtype_t dt, int64_t B, int64_t T,
                                     int64_t C, int64_t H, size_t *ws_bytes);
int dsc_cuda_cudnn_attention(dsc_cuda_cudnn_t *cd, dsc_dtype_t dt, int64_t B, int64_t T, int64_t C, int64_t H,
                             const void *qkv, void *out, void *lse, void *ws, size_t ws_bytes);
/* The backward WRITES dqkv [B,T,3C] (cuDNN has no accumulating output; the device adds it). */
int dsc_cuda_cudnn_attention_backward(dsc_cuda_cudnn_t *cd, dsc_dtype_t dt, int64_t B, int64_t T, int64_t C,
                                      int64_t H, const void *qkv, const void *out, const void *lse,
                                      const void *dout, void *dqkv, void *ws, size_t ws_bytes);

/* ld: the row stride of logits and dlogits (>= V), as backend.h's entries. */
int dsc_cuda_cross_entropy(void *stream, dsc_dtype_t dt, int64_t n_rows, int64_t V, int64_t ld, const void *logits,
                           const int32_t *targets, int32_t ignore_index, void *losses, void *lse);
int dsc_cuda_cross_entropy_backward(void *stream, dsc_dtype_t dt, int64_t n_rows, int64_t V, int64_t ld,
                                    const void *logits,
                                    const void *lse, const int32_t *targets, int32_t ignore_index,
                                    const void *grad_scale, void *dlogits, bool accumulate);
/* Both: the forward's outputs and the backward's dlogits (accumulate false; may alias logits)
 * in one launch, the bits of the two calls above. */
int dsc_cuda_cross_entropy_with_grad(void *stream, dsc_dtype_t dt, int64_t n_rows, int64_t V, int64_t ld,
                                     const void *logits, const int32_t *targets, int32_t ignore_index, void *losses,
                                     void *lse, const void *grad_scale, void *dlogits);

/* ---- mixed precision (src/amp semantics, bit for bit) ------------------------------------ */

/* Device workspace the scan needs for these (host-side) segments. */
size_t dsc_cuda_amp_scan_workspace_bytes(const dsc_amp_segment_t *segs_host, size_t n_segs);
/* dsc_amp_scan_segments on the device: segs (device array of n_segs dsc_amp_segment_t),
 * outputs in device memory, each may be NULL: seg_overflow (uint8 per segment), seg_sumsq,
 * overflow (uint8), sumsq, n_bad (uint64). Same block order as the CPU: the same bits. */
int dsc_cuda_amp_scan_segments(void *stream, const void *data, dsc_dtype_t dt, const dsc_amp_segment_t *segs,
                               size_t n_segs, void *workspace, size_t workspace_bytes, uint8_t *seg_overflow,
                               double *seg_sumsq, uint8_t *overflow, double *sumsq, uint64_t *n_bad);
/* acc[i] += (float)g[i], g of dt f32/bf16/f16 (dsc_amp_accumulate). */
int dsc_cuda_amp_accumulate(void *stream, float *acc, const void *g, dsc_dtype_t dt, int64_t n);
/* dsc_amp_unscale_clip on the device from the scan's sumsq: writes out[0] = grad_scale (float,
 * what the optimizer multiplies gradients by), out_norm[0..1] = {norm, norm_clipped} (double,
 * may be NULL); an overflowed sumsq gives grad_scale 0 and norm -1. scale and clip as in
 * dsc_amp_unscale_clip; the scale may also come from device memory (scale_dev != NULL). */
int dsc_cuda_amp_unscale_clip(void *stream, const double *sumsq, double scale, const double *scale_dev, double clip,
                              float *out, double *out_norm);

/* ---- optimizers (src/optim/optim_kernels.inc.h formulas, bit for bit) -------------------- */

typedef enum dsc_cuda_optim_kind {
    DSC_CUDA_OPTIM_ADAM = 0, /* Adam / AdamW: s0 exp_avg, s1 exp_avg_sq */
    DSC_CUDA_OPTIM_LION,     /* s0 exp_avg */
    DSC_CUDA_OPTIM_ADAGRAD,  /* s0 sum */
    DSC_CUDA_OPTIM_SGD,      /* s0 momentum buffer */
    DSC_CUDA_OPTIM_RMSPROP,  /* s0 square_avg, s1 momentum buffer, s2 grad_avg */
    DSC_CUDA_OPTIM_ADAMAX,   /* s0 exp_avg, s1 exp_inf */
    DSC_CUDA_OPTIM_LAMB2     /* Lamb pass 2 with one coefficient (s->coef) */
} dsc_cuda_optim_kind_t;

/* One element-wise optimizer step over n elements with the scalars the CPU optimizer derives
 * (struct dsc_optim_scalars, optim_internal.h; passed by host pointer, copied into the launch).
 * g has dtype g_dt (f32, or bf16/f16: converted exactly to f32 first). half (NULL or n 16-bit
 * values, s->half says bf16 or f16) receives the new parameters. grad_scale_dev: NULL, or one
 * device float that replaces s->gs (the unscale+clip coefficient without a host read). */
int dsc_cuda_optim_step(void *stream, dsc_cuda_optim_kind_t kind, const struct dsc_optim_scalars *s, float *p,
                        const void *g, dsc_dtype_t g_dt, float *s0, float *s1, float *s2, uint16_t *half, int64_t n,
                        const float *grad_scale_dev);
/* Lamb pass 1 over the blocks of the segments (DSC_LAMB_BLOCK elements, the CPU's order):
 * updates m, v and writes partials[2b] = ||p||^2, partials[2b+1] = ||u||^2 of block b
 * (blocks numbered as optim.c does, segment by segment). blocks: device array of n_blocks
 * {start, len} pairs (uint64). */
int dsc_cuda_lamb1(void *stream, const struct dsc_optim_scalars *s, const float *p, const float *g, float *m, float *v,
                   const uint64_t *blocks, int64_t n_blocks, double *partials);
/* Lamb trust ratios on the device (optim.c's run_lamb, no host read): segment sg owns blocks
 * seg_first_block[sg] .. seg_first_block[sg + 1] - 1 (device array of n_seg + 1); its norms
 * sum those blocks' partials in order; r = ||p|| / ||u|| clamped to [min_coeff, max_coeff]
 * (1 when either norm is 0); coeffs[sg] = r, seg_coef[sg] = -(lr_eff * r) (floats). */
int dsc_cuda_lamb_coef(void *stream, const double *partials, const int64_t *seg_first_block, int64_t n_seg,
                       double lr_eff, double min_coeff, double max_coeff, float *coeffs, float *seg_coef);
/* Lamb pass 2 over the blocks with each block's segment coefficient from the device:
 * block_seg[b] (device, n_blocks) names block b's segment; s->coef is ignored. */
int dsc_cuda_lamb2_blocks(void *stream, const struct dsc_optim_scalars *s, float *p, const float *m, const float *v,
                          uint16_t *half, const uint64_t *blocks, const int64_t *block_seg, int64_t n_blocks,
                          const float *seg_coef);

#ifdef __cplusplus
}
#endif

#endif

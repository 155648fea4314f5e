/* The tensor-core flash attention (cuda_attention_tc.cu), called by dsc_cuda_attention and
 * dsc_cuda_attention_backward (cuda_attention.cu) when it applies. Internal to src/ops/cuda. */
#ifndef DSC_OPS_CUDA_ATTENTION_TC_CUH
#define DSC_OPS_CUDA_ATTENTION_TC_CUH

#include "ops/cuda/cuda_common.cuh"

/* True when the fast path takes this call: bf16 or f16, head size C/H of 64 or 128, B*H and
 * the number of 64-row tiles within the grid limits, and every pointer in ptrs 16-byte
 * aligned. */
bool dsc__attention_tc_applies(dsc_dtype_t dt, int64_t B, int64_t T, int64_t C, int64_t H, const void *const *ptrs,
                               int n_ptrs);

/* Forward (backward = false: res = out, res2 = lse) or backward (res = dqkv, accumulated) on
 * the stream; 0 or a CUDA error code. Only for calls dsc__attention_tc_applies accepts. */
int dsc__attention_tc(cudaStream_t s, dsc_dtype_t dt, int64_t B, int64_t T, int64_t C, int64_t H, const void *qkv,
                      const void *out, const void *lse, const void *dout, double drop_p, uint64_t seed,
                      uint64_t offset, void *res, void *res2, bool backward);

#endif

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

/* cfg (NULL: the defaults) names no variant dsc__attention_tc refuses: warps 4 or 8, bwd a
 * dsc_cuda_att_bwd_t, and RECOMPUTE only with 4 backward warps. */
bool dsc__attention_tc_cfg_valid(const dsc_cuda_att_cfg_t *cfg);
/* Workspace the backward of cfg needs (0 for RECOMPUTE). */
size_t dsc__attention_tc_workspace_bytes(const dsc_cuda_att_cfg_t *cfg, int64_t B, int64_t T, int64_t C, int64_t H);

/* Forward (backward = false: res = out, res2 = lse) or backward (res = dqkv, accumulated) on
 * the stream with the variant cfg (NULL: the defaults) and, for the backward variants that
 * need it, ws_bytes >= dsc__attention_tc_workspace_bytes of workspace at ws (256-byte
 * aligned); 0 or a CUDA error code (cudaErrorInvalidValue for a refused cfg or a short
 * workspace). Only for calls dsc__attention_tc_applies accepts. */
int dsc__attention_tc(cudaStream_t s, const dsc_cuda_att_cfg_t *cfg, dsc_dtype_t dt, int64_t B, int64_t T, int64_t C,
                      int64_t H, const void *qkv, const void *out, const void *lse, const void *dout, double drop_p,
                      uint64_t seed, uint64_t offset, void *res, void *res2, void *ws, size_t ws_bytes,
                      bool backward);

#endif

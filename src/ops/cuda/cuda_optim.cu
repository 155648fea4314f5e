/* Optimizer kernels on CUDA: the expressions of src/optim/optim_kernels.inc.h, operation for
 * operation, in f32 with every operation rounded (this file is built with -fmad=false; sqrt
 * and division are IEEE, the nvcc default), so the results equal the CPU kernels bit for bit.
 * One thread per element; Lamb pass 1 uses 16 threads per DSC_LAMB_BLOCK block, one per lane,
 * so its norm partials are the CPU's sums in the CPU's order. */
#include <math.h>

#include "ops/cuda/cuda_common.cuh"
#ifdef __CUDACC__
#pragma nv_diag_suppress 1675 /* optim_internal.h's GCC pragma: -fmad=false does its job here */
#endif
#include "optim/optim_internal.h"

__device__ static inline void store_half(uint16_t *half, int64_t i, float v, int kind) {
    if (!half) return;
    half[i] = kind == DSC_OPTIM_HALF_BF16 ? dsc_d_f32_to_bf16(v) : dsc_d_f32_to_f16(v);
}

template <typename G>
__global__ void k_optim(int kind, dsc_optim_scalars_t s, float *p, const G *g, float *s0, float *s1, float *s2,
                        uint16_t *half, int64_t n, const float *gs_dev) {
    const float gs = gs_dev ? *gs_dev : s.gs;
    DSC_GRID_STRIDE(i, n) {
        float pv = p[i];
        switch (kind) {
        case DSC_CUDA_OPTIM_ADAM: {
            float gv = ld(g, i) * gs;
            if (s.l2) gv = gv + s.wd * pv;
            const float m = s0[i] * s.b1 + s.omb1 * gv;
            const float v = s1[i] * s.b2 + (s.omb2 * gv) * gv;
            const float d = sqrtf(v) / s.bc2s + s.eps;
            pv = pv * s.decay;
            pv = pv + (s.nstep * m) / d;
            s0[i] = m;
            s1[i] = v;
            break;
        }
        case DSC_CUDA_OPTIM_LAMB2: {
            const float mv = s0[i], vv = s1[i];
            const float d = s.flag ? sqrtf(vv + s.eps) : sqrtf(vv) + s.eps;
            float u = mv / d;
            if (s.l2) u = u + s.wd * pv;
            pv = pv + s.coef * u;
            break;
        }
        case DSC_CUDA_OPTIM_LION: {
            const float gv = ld(g, i) * gs;
            float mv = s0[i];
            const float c = mv * s.b1 + s.omb1 * gv;
            pv = pv * s.decay;
            if (s.flag) pv = pv - copysignf(s.lr, c);
            else pv = pv + (c > 0.0f ? s.nlr : s.lr);
            mv = mv * s.b2 + s.omb2 * gv;
            s0[i] = mv;
            break;
        }
        case DSC_CUDA_OPTIM_ADAGRAD: {
            const float gv = ld(g, i) * gs;
            const float gd = s.l2 ? gv + s.wd * pv : gv;
            const float v = s0[i] + gd * gd;
            const float d = sqrtf(v) + s.eps;
            pv = pv + (s.nstep * (s.flag ? gv : gd)) / d;
            s0[i] = v;
            break;
        }
        case DSC_CUDA_OPTIM_SGD: {
            float gv = ld(g, i) * gs;
            if (s.l2) gv = gv + s.wd * pv;
            if (s.momentum) {
                const float b = s.flag ? gv : s0[i] * s.b1 + s.omb1 * gv;
                s0[i] = b;
                gv = s.flag2 ? gv + s.b1 * b : b;
            }
            pv = pv + s.nstep * gv;
            break;
        }
        case DSC_CUDA_OPTIM_RMSPROP: {
            float gv = ld(g, i) * gs;
            if (s.l2) gv = gv + s.wd * pv;
            const float sq = s0[i] * s.b2 + (s.omb2 * gv) * gv;
            s0[i] = sq;
            float avg;
            if (s.flag) {
                const float ga = s2[i] * s.b2 + s.omb2 * gv;
                s2[i] = ga;
                avg = sqrtf(sq - ga * ga);
            } else {
                avg = sqrtf(sq);
            }
            avg = avg + s.eps;
            if (s.flag2) {
                const float b = s1[i] * s.b1 + gv / avg;
                s1[i] = b;
                pv = pv + s.nstep * b;
            } else {
                pv = pv + (s.nstep * gv) / avg;
            }
            break;
        }
        case DSC_CUDA_OPTIM_ADAMAX: {
            float gv = ld(g, i) * gs;
            if (s.l2) gv = gv + s.wd * pv;
            const float m = s0[i] * s.b1 + s.omb1 * gv;
            const float a = s1[i] * s.b2, b = fabsf(gv) + s.eps;
            const float u = a > b ? a : b; /* maxps: a NaN gives b */
            pv = pv + (s.nstep * m) / u;
            s0[i] = m;
            s1[i] = u;
            break;
        }
        default: return;
        }
        p[i] = pv;
        store_half(half, i, pv, s.half);
    }
}

/* Four consecutive elements, loaded and stored as one 16-byte (f32) or 8-byte (16-bit) access. */
template <typename T> struct alignas(4 * sizeof(T)) vec4_t { T v[4]; };

/* AdamW, the hot optimizer, four elements per thread with vector loads and stores: the same
 * operations as k_optim's Adam case (bit for bit), at closer to the copy bandwidth (issue 17:
 * 28 bytes per parameter in at most 1.22 ms for 124.5M parameters). n4 groups of four; the
 * caller runs k_optim over the tail. */
template <typename G>
__global__ void k_adam4(dsc_optim_scalars_t s, float *p, const G *g, float *s0, float *s1, uint16_t *half, int64_t n4,
                        const float *gs_dev) {
    const float gs = gs_dev ? *gs_dev : s.gs;
    DSC_GRID_STRIDE(j, n4) {
        vec4_t<float> pv = ((const vec4_t<float> *)p)[j], mv = ((const vec4_t<float> *)s0)[j];
        vec4_t<float> vv = ((const vec4_t<float> *)s1)[j];
        const vec4_t<G> gv4 = ((const vec4_t<G> *)g)[j];
        vec4_t<uint16_t> hv;
        for (int k = 0; k < 4; k++) {
            float gv = ld(gv4.v, k) * gs;
            if (s.l2) gv = gv + s.wd * pv.v[k];
            const float m = mv.v[k] * s.b1 + s.omb1 * gv;
            const float v = vv.v[k] * s.b2 + (s.omb2 * gv) * gv;
            const float d = sqrtf(v) / s.bc2s + s.eps;
            float x = pv.v[k] * s.decay;
            x = x + (s.nstep * m) / d;
            pv.v[k] = x, mv.v[k] = m, vv.v[k] = v;
            hv.v[k] = s.half == DSC_OPTIM_HALF_BF16 ? dsc_d_f32_to_bf16(x) : dsc_d_f32_to_f16(x);
        }
        ((vec4_t<float> *)p)[j] = pv, ((vec4_t<float> *)s0)[j] = mv, ((vec4_t<float> *)s1)[j] = vv;
        if (half) ((vec4_t<uint16_t> *)half)[j] = hv;
    }
}

static bool aligned_to(const void *ptr, size_t a) { return ptr == NULL || ((uintptr_t)ptr % a) == 0; }

template <typename G>
static int optim_t(cudaStream_t st_, int kind, const dsc_optim_scalars_t *s, float *p, const void *g, float *s0,
                   float *s1, float *s2, uint16_t *half, int64_t n, const float *gs_dev) {
    int64_t done = 0;
    if (kind == DSC_CUDA_OPTIM_ADAM && n >= 4 && aligned_to(p, 16) && aligned_to(s0, 16) && aligned_to(s1, 16) &&
        aligned_to(g, 4 * sizeof(G)) && aligned_to(half, 8)) {
        const int64_t n4 = n / 4;
        DSC_LAUNCH_FLAT(dsc_grid(n4, 256, 132 * 64), 256, st_, k_adam4<G>)(*s, p, (const G *)g, s0, s1, half, n4, gs_dev);
        DSC_CUDA_CHECK(cudaGetLastError());
        done = n4 * 4;
        if (done == n) return 0;
    }
    const G *gt = (const G *)g + done;
    DSC_LAUNCH_FLAT(dsc_grid(n - done, 256, 132 * 64), 256, st_, k_optim<G>)(
        kind, *s, p + done, gt, s0 ? s0 + done : NULL, s1 ? s1 + done : NULL, s2 ? s2 + done : NULL,
        half ? half + done : NULL, n - done, gs_dev);
    DSC_CUDA_LAUNCHED();
}

extern "C" int dsc_cuda_optim_step(void *stream, dsc_cuda_optim_kind_t kind, const struct dsc_optim_scalars *s,
                                   float *p, const void *g, dsc_dtype_t g_dt, float *s0, float *s1, float *s2,
                                   uint16_t *half, int64_t n, const float *grad_scale_dev) {
    if (n <= 0) return 0;
    if (!s || !p) return (int)cudaErrorInvalidValue;
    cudaStream_t st_ = DSC_STREAM(stream);
    switch (g_dt) {
    case DSC_F32: return optim_t<float>(st_, (int)kind, s, p, g, s0, s1, s2, half, n, grad_scale_dev);
    case DSC_BF16: return optim_t<dsc_bf16>(st_, (int)kind, s, p, g, s0, s1, s2, half, n, grad_scale_dev);
    case DSC_F16: return optim_t<dsc_f16>(st_, (int)kind, s, p, g, s0, s1, s2, half, n, grad_scale_dev);
    default: return (int)cudaErrorInvalidValue;
    }
}

/* Lamb pass 1: 16 threads per block of the table, thread k takes elements k, k + 16, ... */
__global__ void k_lamb1(dsc_optim_scalars_t s, const float *p, const float *g, float *m, float *v,
                        const uint64_t *blocks, int64_t n_blocks, double *partials) {
    const int lane = threadIdx.x & 15;
    const int64_t q = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) >> 4;
    /* whole warps exit together or not at all: n_blocks is padded to the warp's 2 groups */
    double ap = 0, au = 0;
    const bool valid = q < n_blocks;
    if (valid) {
        const uint64_t a = blocks[2 * q], len = blocks[2 * q + 1];
        for (uint64_t j = lane; j < len; j += 16) {
            const uint64_t i = a + j;
            const float pv = p[i];
            const float gv = g[i] * s.gs;
            const float mv = m[i] * s.b1 + s.omb1 * gv;
            const float vv = v[i] * s.b2 + (s.omb2 * gv) * gv;
            const float d = s.flag ? sqrtf(vv + s.eps) : sqrtf(vv) + s.eps;
            float u = mv / d;
            if (s.l2) u = u + s.wd * pv;
            m[i] = mv;
            v[i] = vv;
            ap += (double)pv * (double)pv;
            au += (double)u * (double)u;
        }
    }
    for (int o = 1; o < 16; o <<= 1) {
        ap += __shfl_xor_sync(0xffffffffu, ap, o);
        au += __shfl_xor_sync(0xffffffffu, au, o);
    }
    if (valid && lane == 0) {
        partials[2 * q] = ap;
        partials[2 * q + 1] = au;
    }
}

extern "C" int dsc_cuda_lamb1(void *stream, const struct dsc_optim_scalars *s, const float *p, const float *g, float *m,
                              float *v, const uint64_t *blocks, int64_t n_blocks, double *partials) {
    if (n_blocks <= 0) return 0;
    const int64_t threads = n_blocks * 16;
    DSC_LAUNCH((unsigned)((threads + 127) / 128), 128, DSC_STREAM(stream), k_lamb1)(*s, p, g, m, v, blocks, n_blocks,
                                                                                partials);
    DSC_CUDA_LAUNCHED();
}

__global__ void k_lamb_coef(const double *partials, const int64_t *first, int64_t n_seg, double lr_eff,
                            double min_coeff, double max_coeff, float *coeffs, float *seg_coef) {
    for (int64_t sg = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; sg < n_seg; sg += (int64_t)gridDim.x * blockDim.x) {
        double wsq = 0.0, usq = 0.0;
        for (int64_t b = first[sg]; b < first[sg + 1]; b++) {
            wsq += partials[2 * b];
            usq += partials[2 * b + 1];
        }
        const double wn = sqrt(wsq), un = sqrt(usq);
        double r = 1.0;
        if (wn != 0.0 && un != 0.0) {
            r = wn / un;
            if (r > max_coeff) r = max_coeff;
            if (r < min_coeff) r = min_coeff;
        }
        if (coeffs) coeffs[sg] = (float)r;
        seg_coef[sg] = (float)(-(lr_eff * r));
    }
}

extern "C" int dsc_cuda_lamb_coef(void *stream, const double *partials, const int64_t *seg_first_block, int64_t n_seg,
                                  double lr_eff, double min_coeff, double max_coeff, float *coeffs, float *seg_coef) {
    if (n_seg <= 0) return 0;
    DSC_LAUNCH_FLAT(dsc_grid(n_seg, 128), 128, DSC_STREAM(stream), k_lamb_coef)(partials, seg_first_block, n_seg, lr_eff,
                                                                      min_coeff, max_coeff, coeffs, seg_coef);
    DSC_CUDA_LAUNCHED();
}

/* One CUDA block per Lamb block; the LAMB_U expression of optim_kernels.inc.h. */
__global__ void k_lamb2_blocks(dsc_optim_scalars_t s, float *p, const float *m, const float *v, uint16_t *half,
                               const uint64_t *blocks, const int64_t *block_seg, const float *seg_coef) {
    const int64_t b = blockIdx.x;
    const uint64_t a = blocks[2 * b], len = blocks[2 * b + 1];
    const float coef = seg_coef[block_seg[b]];
    for (uint64_t j = threadIdx.x; j < len; j += blockDim.x) {
        const uint64_t i = a + j;
        float pv = p[i];
        const float mv = m[i], vv = v[i];
        const float d = s.flag ? sqrtf(vv + s.eps) : sqrtf(vv) + s.eps;
        float u = mv / d;
        if (s.l2) u = u + s.wd * pv;
        pv = pv + coef * u;
        p[i] = pv;
        store_half(half, (int64_t)i, pv, s.half);
    }
}

extern "C" int dsc_cuda_lamb2_blocks(void *stream, const struct dsc_optim_scalars *s, float *p, const float *m,
                                     const float *v, uint16_t *half, const uint64_t *blocks, const int64_t *block_seg,
                                     int64_t n_blocks, const float *seg_coef) {
    if (n_blocks <= 0) return 0;
    DSC_LAUNCH_FLAT((unsigned)n_blocks, 256, DSC_STREAM(stream), k_lamb2_blocks)(*s, p, m, v, half, blocks, block_seg, seg_coef);
    DSC_CUDA_LAUNCHED();
}

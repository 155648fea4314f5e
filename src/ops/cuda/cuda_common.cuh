/* Shared device helpers of the CUDA kernels: exact 16-bit conversions (the bit recipes of
 * src/core/dtype.c, so the GPU rounds exactly as the CPU), typed load/store, launch checks,
 * dtype dispatch and deterministic block reductions. */
#ifndef DSC_OPS_CUDA_COMMON_CUH
#define DSC_OPS_CUDA_COMMON_CUH

#include <stdint.h>

#ifdef DSC_CUDA_EMU /* the CPU emulator (cuda_emu.h) for machines without a GPU */
#include "cuda_emu.h" /* tests/cuda/emu: test tooling, never in the library */
#else
#include <cuda_runtime.h>
/* kernel<<<grid, block, 0, stream>>>, written so the emulator can stand in */
#define DSC_LAUNCH(grid, block, stream, ...) __VA_ARGS__<<<(grid), (block), 0, (stream)>>>
/* the same for a kernel without __syncthreads or warp shuffles (the emulator runs its threads
 * as a plain loop) */
#define DSC_LAUNCH_FLAT(grid, block, stream, ...) __VA_ARGS__<<<(grid), (block), 0, (stream)>>>
#endif

#include "ops/cuda/cuda_kernels.h"

#define DSC_CUDA_CHECK(expr)                      \
    do {                                          \
        cudaError_t e_ = (expr);                  \
        if (e_ != cudaSuccess) return (int)e_;    \
    } while (0)
#define DSC_CUDA_LAUNCHED() return (int)cudaGetLastError()
#define DSC_STREAM(s) ((cudaStream_t)(s))

struct dsc_bf16 { uint16_t bits; };
struct dsc_f16 { uint16_t bits; };


/* dtype.c's dsc_f32_to_bf16. */
__device__ static inline uint16_t dsc_d_f32_to_bf16(float value) {
    uint32_t x = __float_as_uint(value);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40u);
    x += 0x7fffu + ((x >> 16) & 1u);
    return (uint16_t)(x >> 16);
}
__device__ static inline float dsc_d_bf16_to_f32(uint16_t b) { return __uint_as_float((uint32_t)b << 16); }

/* dtype.c's dsc_f32_to_f16 (the subnormal branch's float add relies on IEEE rounding and
 * denormals, both kept: this code is never built with fast math). */
__device__ static inline uint16_t dsc_d_f32_to_f16(float value) {
    uint32_t x = __float_as_uint(value);
    uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) return (uint16_t)(sign | (ax > 0x7f800000u ? 0x7e00u | ((ax >> 13) & 0x3ffu) : 0x7c00u));
    if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);
    if (ax < 0x38800000u) {
        uint32_t r = __float_as_uint(__fadd_rn(__uint_as_float(ax), 0.5f)) - __float_as_uint(0.5f);
        return (uint16_t)(sign | r);
    }
    uint32_t odd = (ax >> 13) & 1u;
    ax += 0xc8000000u + 0xfffu + odd;
    return (uint16_t)(sign | (ax >> 13));
}
__device__ static inline float dsc_d_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    if (exp == 0) {
        float v = __fmul_rn((float)mant, 5.9604644775390625e-8f);
        return __uint_as_float(__float_as_uint(v) | sign);
    }
    if (exp == 31) return __uint_as_float(sign | 0x7f800000u | (mant << 13));
    return __uint_as_float(sign | ((exp + 112u) << 23) | (mant << 13));
}

/* Storage type -> compute type (f32 for 16-bit and f32, double for f64). */
template <typename T> struct dsc_acc { typedef float type; };
template <> struct dsc_acc<double> { typedef double type; };

template <typename T> __device__ static inline typename dsc_acc<T>::type ld(const T *p, int64_t i) { return p[i]; }
template <> __device__ inline float ld<dsc_bf16>(const dsc_bf16 *p, int64_t i) { return dsc_d_bf16_to_f32(p[i].bits); }
template <> __device__ inline float ld<dsc_f16>(const dsc_f16 *p, int64_t i) { return dsc_d_f16_to_f32(p[i].bits); }

__device__ static inline void st(float *p, int64_t i, float v) { p[i] = v; }
__device__ static inline void st(double *p, int64_t i, double v) { p[i] = v; }
__device__ static inline void st(dsc_bf16 *p, int64_t i, float v) { p[i].bits = dsc_d_f32_to_bf16(v); }
__device__ static inline void st(dsc_f16 *p, int64_t i, float v) { p[i].bits = dsc_d_f32_to_f16(v); }

/* 16 bytes of T (8 bf16/f16, 4 f32, 2 f64): kernels move aligned data in such groups, one
 * access per thread instead of one per element. */
template <typename T> struct alignas(16) dsc_v16 { T v[16 / sizeof(T)]; };

/* #pragma unroll where nvcc compiles (register arrays need constant indices), nothing on the
 * emulator's host compiler */
#ifdef DSC_CUDA_EMU
#define DSC_UNROLL
#else
#define DSC_UNROLL _Pragma("unroll")
#endif

/* The dtype of a storage type (the inverse of DSC_DISPATCH). */
template <typename T> static inline dsc_dtype_t dsc_dtype_of();
template <> inline dsc_dtype_t dsc_dtype_of<float>() { return DSC_F32; }
template <> inline dsc_dtype_t dsc_dtype_of<double>() { return DSC_F64; }
template <> inline dsc_dtype_t dsc_dtype_of<dsc_bf16>() { return DSC_BF16; }
template <> inline dsc_dtype_t dsc_dtype_of<dsc_f16>() { return DSC_F16; }

/* Calls F::template run<T>(args...) with T the storage type of dt; unsupported dt -> error. */
#define DSC_DISPATCH(dt, F, ...)                                                    \
    ((dt) == DSC_F32    ? F<float>(__VA_ARGS__)                                     \
     : (dt) == DSC_BF16 ? F<dsc_bf16>(__VA_ARGS__)                                  \
     : (dt) == DSC_F16  ? F<dsc_f16>(__VA_ARGS__)                                   \
     : (dt) == DSC_F64  ? F<double>(__VA_ARGS__)                                    \
                        : (int)cudaErrorInvalidValue)

static inline unsigned dsc_grid(int64_t n, int threads, int64_t cap = 132 * 32) {
    int64_t g = (n + threads - 1) / threads;
    if (g < 1) g = 1;
    return (unsigned)(g > cap ? cap : g);
}

#define DSC_GRID_STRIDE(i, n) \
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (int64_t)gridDim.x * blockDim.x)

/* Deterministic block sum (fixed tree: warp butterflies, then warp 0 over the warp sums).
 * All threads get the result. sh must hold 32 values. */
template <typename A> __device__ static inline A dsc_warp_sum(A v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
template <typename A> __device__ static inline A dsc_warp_max(A v) {
    for (int o = 16; o > 0; o >>= 1) {
        A w = __shfl_xor_sync(0xffffffffu, v, o);
        v = w > v ? w : v;
    }
    return v;
}
template <typename A> __device__ static inline A dsc_block_sum(A v, A *sh) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
    v = dsc_warp_sum(v);
    __syncthreads();
    if (lane == 0) sh[warp] = v;
    __syncthreads();
    A t = lane < nw ? sh[lane] : (A)0;
    t = dsc_warp_sum(t);
    return t;
}
template <typename A> __device__ static inline A dsc_block_max(A v, A *sh) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
    v = dsc_warp_max(v);
    __syncthreads();
    if (lane == 0) sh[warp] = v;
    __syncthreads();
    A t = lane < nw ? sh[lane] : sh[0];
    t = dsc_warp_max(t);
    return t;
}

#endif

/* Warp-level tensor-core primitives of the fast attention (cuda_attention_tc.cu), for 16-bit
 * T (dsc_bf16, dsc_f16) with f32 accumulation:
 *   mma_16816<T>(d, a, b0, b1)   d[4] += A(16x16) B(16x8), mma.sync.m16n8k16.row.col;
 *   ldsm_x4 / ldsm_x4_t          ldmatrix .x4 (and .trans) from shared memory, each lane
 *                                giving the address of one 8-element row;
 *   cp_async16 / 4, commit, wait  16- (4-) byte cp.async global -> shared, zero-filled when !valid;
 *   pack2<T>(lo, hi)             two f32 -> one 32-bit register of two T (round to nearest even);
 *   red_add2(p, a, b)            p[0] += a, p[1] += b in global memory, atomically (red.global
 *                                .add.v2.f32, sm_90; p 8-byte aligned).
 * Fragment layouts (PTX ISA, "Matrix fragments for mma.m16n8k16"): lane = 4 g + t;
 *   A: a[0] = (row g, cols 2t, 2t+1), a[1] = (row g+8, cols 2t..), a[2] = (row g, cols 2t+8..),
 *      a[3] = (row g+8, cols 2t+8..);  B: b0 = (rows 2t, 2t+1, col g), b1 = (rows 2t+8.., col g);
 *   C/D: d[0], d[1] = (row g, cols 2t, 2t+1), d[2], d[3] = (row g+8, cols 2t, 2t+1);
 *   ldmatrix x4: lanes 8m..8m+7 address the 8 rows of matrix m; lane gets in r[m] row g,
 *      elements 2t, 2t+1 (.trans: elements (row 2t, col g) and (row 2t+1, col g)); the lower
 *      16 bits always hold the lower index.
 * On the CPU emulator (DSC_CUDA_EMU) the same functions are emulated by warp exchanges of
 * those layouts (exact products, f32 sums in k order), so the kernels' fragment indexing is
 * tested without a GPU; tensor cores sum in another order (not IEEE), within the tolerances. */
#ifndef DSC_OPS_CUDA_MMA_CUH
#define DSC_OPS_CUDA_MMA_CUH

#include "ops/cuda/cuda_common.cuh"

#ifndef DSC_CUDA_EMU
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#endif

__device__ static inline float dsc_h2f(dsc_bf16, uint16_t b) { return dsc_d_bf16_to_f32(b); }
__device__ static inline float dsc_h2f(dsc_f16, uint16_t b) { return dsc_d_f16_to_f32(b); }

#ifndef DSC_CUDA_EMU

template <typename T> __device__ static inline void mma_16816(float d[4], const uint32_t a[4], uint32_t b0, uint32_t b1);
template <> __device__ inline void mma_16816<dsc_bf16>(float d[4], const uint32_t a[4], uint32_t b0, uint32_t b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
template <> __device__ inline void mma_16816<dsc_f16>(float d[4], const uint32_t a[4], uint32_t b0, uint32_t b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ static inline void ldsm_x4(uint32_t r[4], const void *row) {
    const uint32_t s = (uint32_t)__cvta_generic_to_shared(row);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(s));
}
__device__ static inline void ldsm_x4_t(uint32_t r[4], const void *row) {
    const uint32_t s = (uint32_t)__cvta_generic_to_shared(row);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(s));
}

/* 16 bytes global -> shared, bypassing L1; zero-filled (nothing read) when !valid. */
__device__ static inline void cp_async16(void *smem, const void *gmem, bool valid) {
    const uint32_t s = (uint32_t)__cvta_generic_to_shared(smem);
    const int n = valid ? 16 : 0;
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(n) : "memory");
}
/* 4 bytes global -> shared (through L1), zero-filled when !valid. */
__device__ static inline void cp_async4(void *smem, const void *gmem, bool valid) {
    const uint32_t s = (uint32_t)__cvta_generic_to_shared(smem);
    const int n = valid ? 4 : 0;
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(s), "l"(gmem), "r"(n) : "memory");
}
__device__ static inline void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
/* Waits until at most N of this thread's committed groups are still in flight. */
template <int N> __device__ static inline void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

template <typename T> __device__ static inline uint32_t pack2(float lo, float hi);
template <> __device__ inline uint32_t pack2<dsc_bf16>(float lo, float hi) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<uint32_t *>(&v);
}
template <> __device__ inline uint32_t pack2<dsc_f16>(float lo, float hi) {
    __half2 v = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<uint32_t *>(&v);
}

__device__ static inline void red_add2(float *p, float a, float b) {
    asm volatile("red.global.add.v2.f32 [%0], {%1, %2};\n" ::"l"(p), "f"(a), "f"(b) : "memory");
}

/* 16 bytes (8 values of T) from global memory, 16-byte aligned. */
__device__ static inline void ld16(uint16_t h[8], const void *p) {
    const uint4 v = *reinterpret_cast<const uint4 *>(p);
    h[0] = (uint16_t)v.x, h[1] = (uint16_t)(v.x >> 16), h[2] = (uint16_t)v.y, h[3] = (uint16_t)(v.y >> 16);
    h[4] = (uint16_t)v.z, h[5] = (uint16_t)(v.z >> 16), h[6] = (uint16_t)v.w, h[7] = (uint16_t)(v.w >> 16);
}

#else /* ---- the CPU emulator: the same layouts with warp shuffles ------------------------- */

/* A warp exchange: each lane posts up to 4 words, the warp meets, each lane reads what it
 * needs, the warp meets again (two warp barriers per emulated instruction, not one shuffle
 * per word). */
__device__ static inline uint64_t *dsc_emu_xch() {
    static uint64_t words[1024 * 4];
    return words;
}

template <typename T> __device__ static inline void mma_16816(float d[4], const uint32_t a[4], uint32_t b0, uint32_t b1) {
    const int me = dsc_emu::B().cur, warp = me / 32, w0 = warp * 32, lane = me & 31, g = lane >> 2, t = lane & 3;
    uint64_t *x = dsc_emu_xch();
    x[4 * me] = (uint64_t)a[0] | (uint64_t)a[1] << 32;
    x[4 * me + 1] = (uint64_t)a[2] | (uint64_t)a[3] << 32;
    x[4 * me + 2] = (uint64_t)b0 | (uint64_t)b1 << 32;
    dsc_emu::warp_barrier(warp);
    float A[2][16], Bm[2][16];
    for (int s = 0; s < 4; s++) {
        const uint64_t x01 = x[4 * (w0 + 4 * g + s)], x23 = x[4 * (w0 + 4 * g + s) + 1];
        const uint64_t y0 = x[4 * (w0 + 4 * (2 * t) + s) + 2], y1 = x[4 * (w0 + 4 * (2 * t + 1) + s) + 2];
        const uint32_t ra[4] = {(uint32_t)x01, (uint32_t)(x01 >> 32), (uint32_t)x23, (uint32_t)(x23 >> 32)};
        for (int h = 0; h < 2; h++) {
            /* lane 4g+s holds A cols 2s+h (regs 0, 1) and 2s+8+h (regs 2, 3) of rows g, g+8 */
            A[0][2 * s + h] = dsc_h2f(T(), (uint16_t)(ra[0] >> (16 * h)));
            A[1][2 * s + h] = dsc_h2f(T(), (uint16_t)(ra[1] >> (16 * h)));
            A[0][2 * s + 8 + h] = dsc_h2f(T(), (uint16_t)(ra[2] >> (16 * h)));
            A[1][2 * s + 8 + h] = dsc_h2f(T(), (uint16_t)(ra[3] >> (16 * h)));
            /* lane 4n+s holds B rows 2s+h (b0) and 2s+8+h (b1) of col n */
            Bm[0][2 * s + h] = dsc_h2f(T(), (uint16_t)(y0 >> (16 * h)));
            Bm[0][2 * s + 8 + h] = dsc_h2f(T(), (uint16_t)(y0 >> (32 + 16 * h)));
            Bm[1][2 * s + h] = dsc_h2f(T(), (uint16_t)(y1 >> (16 * h)));
            Bm[1][2 * s + 8 + h] = dsc_h2f(T(), (uint16_t)(y1 >> (32 + 16 * h)));
        }
    }
    dsc_emu::warp_barrier(warp);
    for (int r = 0; r < 2; r++)
        for (int c = 0; c < 2; c++) {
            float acc = 0;
            for (int k = 0; k < 16; k++) acc += A[r][k] * Bm[c][k];
            d[2 * r + c] += acc;
        }
}

/* ldmatrix: lane gets, for each matrix m, row (.trans: rows 2t, 2t+1) of the 8 posted. */
__device__ static inline void ldsm_x4_any(uint32_t r[4], const void *row, bool trans) {
    const int me = dsc_emu::B().cur, warp = me / 32, w0 = warp * 32, lane = me & 31, g = lane >> 2, t = lane & 3;
    uint64_t *x = dsc_emu_xch();
    x[4 * me + 3] = (uint64_t)(uintptr_t)row;
    dsc_emu::warp_barrier(warp);
    for (int m = 0; m < 4; m++) {
        if (!trans) {
            const uint16_t *p = (const uint16_t *)(uintptr_t)x[4 * (w0 + 8 * m + g) + 3];
            r[m] = (uint32_t)p[2 * t] | (uint32_t)p[2 * t + 1] << 16;
        } else {
            const uint16_t *p0 = (const uint16_t *)(uintptr_t)x[4 * (w0 + 8 * m + 2 * t) + 3];
            const uint16_t *p1 = (const uint16_t *)(uintptr_t)x[4 * (w0 + 8 * m + 2 * t + 1) + 3];
            r[m] = (uint32_t)p0[g] | (uint32_t)p1[g] << 16;
        }
    }
    dsc_emu::warp_barrier(warp);
}
__device__ static inline void ldsm_x4(uint32_t r[4], const void *row) { ldsm_x4_any(r, row, false); }
__device__ static inline void ldsm_x4_t(uint32_t r[4], const void *row) { ldsm_x4_any(r, row, true); }

__device__ static inline void cp_async16(void *smem, const void *gmem, bool valid) {
    if (valid) memcpy(smem, gmem, 16);
    else memset(smem, 0, 16);
}
__device__ static inline void cp_async4(void *smem, const void *gmem, bool valid) {
    if (valid) memcpy(smem, gmem, 4);
    else memset(smem, 0, 4);
}
__device__ static inline void cp_async_commit() {}
template <int N> __device__ static inline void cp_async_wait() {}

template <typename T> __device__ static inline uint32_t pack2(float lo, float hi);
template <> inline uint32_t pack2<dsc_bf16>(float lo, float hi) {
    return (uint32_t)dsc_d_f32_to_bf16(lo) | (uint32_t)dsc_d_f32_to_bf16(hi) << 16;
}
template <> inline uint32_t pack2<dsc_f16>(float lo, float hi) {
    return (uint32_t)dsc_d_f32_to_f16(lo) | (uint32_t)dsc_d_f32_to_f16(hi) << 16;
}

__device__ static inline void ld16(uint16_t h[8], const void *p) { memcpy(h, p, 16); }

/* the emulator runs one thread at a time: plain adds are atomic */
__device__ static inline void red_add2(float *p, float a, float b) { p[0] += a, p[1] += b; }

#endif

#endif

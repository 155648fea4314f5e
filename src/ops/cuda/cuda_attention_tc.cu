/* Causal flash attention on tensor cores (FlashAttention-2 algorithm) for bf16 and f16 with
 * head size 64 or 128: the fast path behind dsc_cuda_attention / _backward (cuda_attention.cu
 * dispatches; other dtypes and head sizes take the simple kernels there). Same contract:
 * qkv [B,T,3C], lse float [B,H,T], causal, Philox dropout at offset + ((b*H+h)*T + i)*T + j,
 * kept iff uniform >= p, kept values scaled by (float)(1/(1-p)); the backward accumulates.
 *
 * Work layout (4 warps, 128 threads; a warp owns 16 rows of a 64-row tile; mma.sync m16n8k16
 * with f32 accumulation; tiles staged in shared memory by cp.async, double buffered, rows
 * padded by 16 bytes so ldmatrix is free of bank conflicts; rows >= T are zero-filled):
 *  - forward: a CTA per (64-query tile, b*h), heaviest tiles first; Q fragments in registers,
 *    loop over 64-key tiles up to the diagonal: S = Q K^T, online softmax in the log2 domain
 *    (running max and sum per row, f32), P rounded to T for O += P V; out = O / l,
 *    lse = (m + log2 l) ln 2;
 *  - backward (variant RECOMPUTE, the default), two kernels so that every output element has
 *    one owner (no atomics, bitwise reproducible): dk/dv per 64-key tile (a warp owns 16
 *    keys) looping over query tiles of BQ (64 for hd 64, 32 for hd 128): S^T = K Q^T,
 *    P^T = exp(S^T - lse), dP^T = V dO^T, dS^T = P^T (dP^T - Dq), dV += P'^T dO,
 *    dK += dS^T Q; dq per 64-query tile looping over key tiles: dQ += dS K. Dq_i = dO_i . O_i
 *    is recomputed by each kernel from O and dO (f32, fixed order), so no workspace is needed.
 *    P and dS are rounded to T before their mma;
 *  - variant PRE: Dq computed once per row (k_att_tc_row_dots, same order) into a workspace,
 *    the two kernels read it instead of loading O: the same operations, still deterministic;
 *  - variant ATOMIC: Dq once, then one kernel per key tile (the dk/dv kernel with MODE
 *    TC_FUSED) also writes dS to shared memory and adds dQ = dS K for the tile's queries into
 *    an f32 workspace with atomic vector adds (red.global.add.v2.f32), and k_att_tc_dq_add
 *    adds it (scaled) to dqkv: S and dP are computed once (5 products instead of 7), but the
 *    sum order of dQ varies run to run: NOT bitwise reproducible;
 *  - every kernel also runs on 8 warps (NW: 128 rows or keys per CTA; a warp skips the tiles
 *    wholly masked for its rows), RECOMPUTE's backward on 4 only (the baseline). The variant
 *    comes from dsc_cuda_att_cfg_t (cuda_kernels.h; the device: DSC_CUDA_ATTENTION). */
#include <math.h>

#include "core/philox.h"
#include "ops/cuda/cuda_attention_tc.cuh"
#include "ops/cuda/cuda_mma.cuh"

#define TC_BR 64 /* query rows per forward / dq CTA, keys per dk/dv CTA, of 4 warps (16 per warp) */
#define TC_BC 64 /* keys per tile in the forward / dq loops */

#ifdef DSC_CUDA_EMU
#define TC_UNROLL
#define TC_SMEM(name, bytes) alignas(16) static unsigned char name[bytes]
#define TC_LAUNCH(grid, threads, smem, stream, ...) DSC_LAUNCH(grid, threads, stream, __VA_ARGS__)
#else
#define TC_UNROLL _Pragma("unroll") /* register arrays: every index must be a constant */
#define TC_SMEM(name, bytes) extern __shared__ __align__(16) unsigned char name[]
#define TC_LAUNCH(grid, threads, smem, stream, ...) __VA_ARGS__<<<(grid), (threads), (smem), (stream)>>>
#endif

/* Scalars every kernel takes. */
struct tc_args {
    int64_t T, C, H;
    float scale;      /* 1/sqrt(hd) */
    float scale_log2; /* scale * log2(e): scores in the log2 domain */
    uint32_t keep_thr; /* dropout: keep iff (philox_u32 >> 8) >= keep_thr, i.e. uniform >= p */
    int drop;          /* p > 0 (the kernels' DROP template parameter) */
    float ks;          /* (float)(1/(1-p)) */
    uint64_t seed, offset;
};

template <int D> struct tc_dims {
    static constexpr int LDS = D + 8;            /* shared row stride (elements): 16-byte pad */
    static constexpr int BQ = D == 64 ? 64 : 32; /* query tile of the dk/dv loop */
};

/* Backward variants (dsc_cuda_att_cfg_t.bwd): what the dk/dv kernel does besides dK, dV. */
enum { TC_RECOMPUTE = 0, TC_PRE = 1, TC_FUSED = 2 };

/* Shared memory (bytes) of each kernel with NW warps (16 * NW rows or keys per CTA). */
template <int D, int NW> struct tc_smem {
    static constexpr int LDS = D + 8, BR = 16 * NW, BQ = tc_dims<D>::BQ;
    static constexpr int FWD = (BR + 4 * TC_BC) * LDS * 2; /* Q, 2 K, 2 V */
    static constexpr int Q = (2 * BR + 4 * TC_BC) * LDS * 2 + 2 * BR * 4; /* Q, dO, 2 K, 2 V, lse2, Dq */
    /* K, V, 2 Q, 2 dO, (recompute: 2 O), (fused: dS [BQ][BR + 8]), 2 lse, Dq (1 or 2) */
    static constexpr int kv(int mode) {
        return (2 * BR + (mode == TC_RECOMPUTE ? 6 : 4) * BQ) * LDS * 2 + (mode == TC_FUSED ? BQ * (BR + 8) * 2 : 0) +
               (mode == TC_RECOMPUTE ? 3 : 4) * BQ * 4;
    }
};

/* Rows [r0, r0 + ROWS) of a [T, D] slice with row stride ld (elements) -> sh[ROWS][LDS], by
 * all NT threads in 16-byte pieces; rows >= T become zeros. */
template <typename T, int D, int ROWS, int NT>
__device__ static inline void tc_load_tile(T *sh, const T *base, int64_t ld, int64_t r0, int64_t T_) {
    constexpr int CPR = D / 8, N = ROWS * CPR;
    static_assert(N % NT == 0, "tile pieces per thread");
    for (int c = threadIdx.x; c < N; c += NT) {
        const int r = c / CPR, col = (c % CPR) * 8;
        const bool valid = r0 + r < T_;
        const T *src = base + (valid ? (r0 + r) * ld : 0) + col;
        cp_async16(sh + r * tc_dims<D>::LDS + col, src, valid);
    }
}

/* Dq of one row: lane ch of the row's D/8 lanes sums its 8 products x[e] y[e] in index order,
 * the lanes are combined by xor shuffles 1, 2, 4 (, 8): one fixed order, the same bits
 * wherever Dq is computed (tc_row_terms, tc_row_dots_shared, k_att_tc_row_dots). */
template <typename T, int D>
__device__ static inline float tc_row_dot(const T *x_row, const T *y_row, int ch, bool valid) {
    float acc = 0;
    if (valid) {
        uint16_t x[8], y[8];
        ld16(x, x_row + ch * 8);
        ld16(y, y_row + ch * 8);
        TC_UNROLL
        for (int e = 0; e < 8; e++) acc += dsc_h2f(T(), x[e]) * dsc_h2f(T(), y[e]);
    }
    TC_UNROLL
    for (int m = 1; m < D / 8; m <<= 1) acc += __shfl_xor_sync(0xffffffffu, acc, m);
    return acc;
}

/* Dq[r] = dO_r . O_r (f32) for rows [r0, r0 + ROWS) into dq_sh[ROWS] (0 past T), by NT
 * threads, D/8 lanes per row; also lse2_sh[r] = lse * log2(e). */
template <typename T, int D, int ROWS, int NT>
__device__ static inline void tc_row_terms(const T *o, const T *dout, int64_t ld, int64_t r0, int64_t T_,
                                           const float *lse_bh, float *dq_sh, float *lse2_sh) {
    constexpr int CPR = D / 8, RPP = NT / CPR;
    static_assert(ROWS % RPP == 0, "rows per pass");
    TC_UNROLL
    for (int pass = 0; pass < ROWS / RPP; pass++) {
        const int r = pass * RPP + (int)threadIdx.x / CPR, ch = (int)threadIdx.x % CPR;
        const bool valid = r0 + r < T_;
        const float acc = tc_row_dot<T, D>(o + (valid ? r0 + r : 0) * ld, dout + (valid ? r0 + r : 0) * ld, ch, valid);
        if (ch == 0) {
            dq_sh[r] = acc;
            lse2_sh[r] = valid ? lse_bh[r0 + r] * 1.4426950408889634f : 0.0f;
        }
    }
}

/* Dq[r] = dO_r . O_r for the ROWS rows of tiles already in shared memory (rows past T are
 * zeros there), into dq_sh. */
template <typename T, int D, int ROWS, int NT>
__device__ static inline void tc_row_dots_shared(const T *o_sh, const T *do_sh, float *dq_sh) {
    constexpr int CPR = D / 8, RPP = NT / CPR;
    static_assert(ROWS % RPP == 0, "rows per pass");
    TC_UNROLL
    for (int pass = 0; pass < ROWS / RPP; pass++) {
        const int r = pass * RPP + (int)threadIdx.x / CPR, ch = (int)threadIdx.x % CPR;
        const float acc =
            tc_row_dot<T, D>(o_sh + r * tc_dims<D>::LDS, do_sh + r * tc_dims<D>::LDS, ch, true);
        if (ch == 0) dq_sh[r] = acc;
    }
}

/* v[r0 .. r0 + ROWS) of a per-row float vector (lse, Dq) -> sh (0 past T), 4-byte cp.async by
 * the first ROWS threads. */
template <int ROWS>
__device__ static inline void tc_load_lse(float *sh, const float *lse_bh, int64_t r0, int64_t T_) {
    const int r = (int)threadIdx.x;
    if (r < ROWS) {
        const bool valid = r0 + r < T_;
        cp_async4(sh + r, lse_bh + (valid ? r0 + r : 0), valid);
    }
}

/* Dropout keep test of element (bh, i, j). */
__device__ static inline bool tc_keep(const tc_args &a, int64_t bh, int64_t i, int64_t j) {
    const uint64_t g = a.offset + (uint64_t)((bh * a.T + i) * a.T + j);
    return (dsc_philox_u32(a.seed, g) >> 8) >= a.keep_thr;
}

/* acc[NT][4] += A(16 x D, rows of sh_a at row0) B where B[k][n] = sh_b[n][k] (rows n of sh_b
 * from nrow0): a 16 x (8 NT) product over k = 0..D-1 (S = Q K^T and the like). */
template <typename T, int D, int NT>
__device__ static inline void tc_mm_abt(float acc[][4], const T *sh_a, int row0, const T *sh_b, int nrow0) {
    constexpr int LDS = tc_dims<D>::LDS;
    const int lane = threadIdx.x & 31;
    TC_UNROLL
    for (int kk = 0; kk < D / 16; kk++) {
        uint32_t a[4];
        ldsm_x4(a, sh_a + (row0 + (lane & 15)) * LDS + kk * 16 + (lane >> 4) * 8);
        TC_UNROLL
        for (int np = 0; np < NT / 2; np++) {
            uint32_t b[4];
            ldsm_x4(b, sh_b + (nrow0 + np * 16 + (lane >> 4) * 8 + (lane & 7)) * LDS + kk * 16 + ((lane >> 3) & 1) * 8);
            mma_16816<T>(acc[2 * np], a, b[0], b[1]);
            mma_16816<T>(acc[2 * np + 1], a, b[2], b[3]);
        }
    }
}

/* The A fragments of tc_mm_abt (16 rows of sh_a from row0, all D columns) into registers. */
template <typename T, int D>
__device__ static inline void tc_load_afrag(uint32_t af[][4], const T *sh_a, int row0) {
    const int lane = threadIdx.x & 31;
    TC_UNROLL
    for (int kk = 0; kk < D / 16; kk++)
        ldsm_x4(af[kk], sh_a + (row0 + (lane & 15)) * tc_dims<D>::LDS + kk * 16 + (lane >> 4) * 8);
}

/* tc_mm_abt with A from registers (tc_load_afrag). */
template <typename T, int D, int NT>
__device__ static inline void tc_mm_abt_r(float acc[][4], const uint32_t af[][4], const T *sh_b, int nrow0) {
    constexpr int LDS = tc_dims<D>::LDS;
    const int lane = threadIdx.x & 31;
    TC_UNROLL
    for (int kk = 0; kk < D / 16; kk++)
        TC_UNROLL
        for (int np = 0; np < NT / 2; np++) {
            uint32_t b[4];
            ldsm_x4(b, sh_b + (nrow0 + np * 16 + (lane >> 4) * 8 + (lane & 7)) * LDS + kk * 16 + ((lane >> 3) & 1) * 8);
            mma_16816<T>(acc[2 * np], af[kk], b[0], b[1]);
            mma_16816<T>(acc[2 * np + 1], af[kk], b[2], b[3]);
        }
}

/* acc[D/8][4] += P (16 x 16 KS, accumulator layout p[2 KS][4], rounded to T) V where
 * V[k][n] = sh_v[k][n] (rows from krow0): O += P V and the like. */
template <typename T, int D, int KS>
__device__ static inline void tc_mm_pv(float acc[][4], const float p[][4], const T *sh_v, int krow0) {
    constexpr int LDS = tc_dims<D>::LDS;
    const int lane = threadIdx.x & 31;
    TC_UNROLL
    for (int ks = 0; ks < KS; ks++) {
        const uint32_t a[4] = {pack2<T>(p[2 * ks][0], p[2 * ks][1]), pack2<T>(p[2 * ks][2], p[2 * ks][3]),
                               pack2<T>(p[2 * ks + 1][0], p[2 * ks + 1][1]),
                               pack2<T>(p[2 * ks + 1][2], p[2 * ks + 1][3])};
        TC_UNROLL
        for (int dp = 0; dp < D / 16; dp++) {
            uint32_t b[4];
            ldsm_x4_t(b, sh_v + (krow0 + ks * 16 + ((lane >> 3) & 1) * 8 + (lane & 7)) * LDS + dp * 16 + (lane >> 4) * 8);
            mma_16816<T>(acc[2 * dp], a, b[0], b[1]);
            mma_16816<T>(acc[2 * dp + 1], a, b[2], b[3]);
        }
    }
}

/* acc[NCOL/8][4] += A B for a warp: A = 16 rows (from row0) x K of sh_a (row stride LDA), B =
 * K x NCOL of sh_b (rows 0..K-1, columns col0.., row stride LDB), both in shared memory (dQ =
 * dS K of the fused backward). */
template <typename T, int LDA, int LDB, int K, int NCOL>
__device__ static inline void tc_mm_ab(float acc[][4], const T *sh_a, int row0, const T *sh_b, int col0) {
    const int lane = threadIdx.x & 31;
    TC_UNROLL
    for (int ks = 0; ks < K / 16; ks++) {
        uint32_t a[4];
        ldsm_x4(a, sh_a + (row0 + (lane & 15)) * LDA + ks * 16 + (lane >> 4) * 8);
        TC_UNROLL
        for (int dp = 0; dp < NCOL / 16; dp++) {
            uint32_t b[4];
            ldsm_x4_t(b, sh_b + (ks * 16 + ((lane >> 3) & 1) * 8 + (lane & 7)) * LDB + col0 + dp * 16 + (lane >> 4) * 8);
            mma_16816<T>(acc[2 * dp], a, b[0], b[1]);
            mma_16816<T>(acc[2 * dp + 1], a, b[2], b[3]);
        }
    }
}

/* row += scale * acc for the warp's 16 rows (row g and g + 8 of each 8-column tile), rows
 * < T only: base points at row 0, column 0 of the output slice (row stride `stride`). */
template <typename T, int D>
__device__ static inline void tc_accumulate_rows(T *base, int64_t stride, int64_t row0, int64_t T_,
                                                 const float acc[][4], float scale) {
    const int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    TC_UNROLL
    for (int h = 0; h < 2; h++) {
        const int64_t r = row0 + g + 8 * h;
        if (r >= T_) continue;
        T *row = base + r * stride;
        TC_UNROLL
        for (int nt = 0; nt < D / 8; nt++) {
            const int c = nt * 8 + 2 * t;
            st(row, c, ld(row, c) + acc[nt][2 * h] * scale);
            st(row, c + 1, ld(row, c + 1) + acc[nt][2 * h + 1] * scale);
        }
    }
}

/* ---- forward -------------------------------------------------------------------------- */

/* NW warps: 16 NW query rows per CTA, keys in tiles of TC_BC (a warp skips the tiles wholly
 * above its diagonal). */
template <typename T, int D, bool DROP, int NW>
__device__ static inline void tc_fwd_body(const tc_args &a, const T *qkv, T *out, float *lse) {
    constexpr int NT = NW * 32, BR = 16 * NW, LDS = tc_dims<D>::LDS, KT = TC_BC * LDS;
    TC_SMEM(smem, (tc_smem<D, NW>::FWD));
    T *Qs = (T *)smem, *Ks = Qs + BR * LDS, *Vs = Ks + 2 * KT;
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
    const int64_t T_ = a.T, C = a.C, C3 = 3 * C, bh = blockIdx.x, b = bh / a.H, h = bh % a.H;
    const int qt = (int)(gridDim.y - 1 - blockIdx.y); /* the longest rows first */
    const int64_t q0 = (int64_t)qt * BR;
    const T *qb = qkv + b * T_ * C3 + h * D, *kb = qb + C, *vb = qb + 2 * C;
    tc_load_tile<T, D, BR, NT>(Qs, qb, C3, q0, T_);
    tc_load_tile<T, D, TC_BC, NT>(Ks, kb, C3, 0, T_);
    tc_load_tile<T, D, TC_BC, NT>(Vs, vb, C3, 0, T_);
    cp_async_commit();

    const int64_t w0 = q0 + w * 16, i0 = w0 + g, i1 = i0 + 8; /* the warp's first row, this thread's two */
    float o[D / 8][4];
    TC_UNROLL
    for (int n = 0; n < D / 8; n++) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0;
    float m0 = -INFINITY, m1 = -INFINITY, l0 = 0, l1 = 0;
    uint32_t qf[D / 16][4];
    const int64_t q_end = q0 + BR < T_ ? q0 + BR : T_;
    const int n_kv = (int)((q_end + TC_BC - 1) / TC_BC); /* key tiles up to the CTA's last row */
    for (int kt = 0; kt < n_kv; kt++) {
        const int buf = kt & 1;
        if (kt + 1 < n_kv) {
            tc_load_tile<T, D, TC_BC, NT>(Ks + (buf ^ 1) * KT, kb, C3, (int64_t)(kt + 1) * TC_BC, T_);
            tc_load_tile<T, D, TC_BC, NT>(Vs + (buf ^ 1) * KT, vb, C3, (int64_t)(kt + 1) * TC_BC, T_);
        }
        cp_async_commit();
        cp_async_wait<1>();
        __syncthreads();
        if (kt == 0) {
            TC_UNROLL
            for (int kk = 0; kk < D / 16; kk++)
                ldsm_x4(qf[kk], Qs + (w * 16 + (lane & 15)) * LDS + kk * 16 + (lane >> 4) * 8);
        }
        const int64_t j0 = (int64_t)kt * TC_BC;
        if (j0 <= w0 + 15) { /* else every key of the tile is above the warp's rows */
            const T *Kc = Ks + buf * KT, *Vc = Vs + buf * KT;
            float s[TC_BC / 8][4];
            TC_UNROLL
            for (int n = 0; n < TC_BC / 8; n++) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0;
            TC_UNROLL
            for (int kk = 0; kk < D / 16; kk++)
                TC_UNROLL
                for (int np = 0; np < TC_BC / 16; np++) {
                    uint32_t bk[4];
                    ldsm_x4(bk, Kc + (np * 16 + (lane >> 4) * 8 + (lane & 7)) * LDS + kk * 16 + ((lane >> 3) & 1) * 8);
                    mma_16816<T>(s[2 * np], qf[kk], bk[0], bk[1]);
                    mma_16816<T>(s[2 * np + 1], qf[kk], bk[2], bk[3]);
                }
            /* scale to the log2 domain, mask keys past the row (j > i) where the tile crosses
             * the warp's diagonal, row maxima */
            const bool diag = j0 + TC_BC - 1 > w0;
            const int rel0 = (int)(i0 - j0) - 2 * t; /* key j = j0 + n 8 + 2t + c is past row i0 iff 8n + c > rel0 */
            float mx0 = -INFINITY, mx1 = -INFINITY;
            TC_UNROLL
            for (int n = 0; n < TC_BC / 8; n++)
                TC_UNROLL
                for (int e = 0; e < 4; e++) {
                    float v = s[n][e] * a.scale_log2;
                    if (diag && n * 8 + (e & 1) > rel0 + (e < 2 ? 0 : 8)) v = -INFINITY;
                    s[n][e] = v;
                    if (e < 2) mx0 = fmaxf(mx0, v);
                    else mx1 = fmaxf(mx1, v);
                }
            TC_UNROLL
            for (int msk = 1; msk < 4; msk <<= 1) {
                mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, msk));
                mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, msk));
            }
            const float mn0 = fmaxf(m0, mx0), mn1 = fmaxf(m1, mx1);
            /* a row with every score masked so far keeps m = -inf: subtract 0 instead (p = 0) */
            const float ms0 = mn0 == -INFINITY ? 0.0f : mn0, ms1 = mn1 == -INFINITY ? 0.0f : mn1;
            const float c0 = exp2f(m0 - ms0), c1 = exp2f(m1 - ms1);
            m0 = mn0, m1 = mn1;
            float rs0 = 0, rs1 = 0;
            TC_UNROLL
            for (int n = 0; n < TC_BC / 8; n++)
                TC_UNROLL
                for (int e = 0; e < 4; e++) {
                    const float p = exp2f(s[n][e] - (e < 2 ? ms0 : ms1));
                    if (e < 2) rs0 += p;
                    else rs1 += p;
                    float pd = p;
                    if (DROP) {
                        const int64_t j = j0 + n * 8 + 2 * t + (e & 1), i = e < 2 ? i0 : i1;
                        pd = tc_keep(a, bh, i, j) ? p * a.ks : 0.0f;
                    }
                    s[n][e] = pd;
                }
            l0 = l0 * c0 + rs0, l1 = l1 * c1 + rs1;
            TC_UNROLL
            for (int n = 0; n < D / 8; n++) o[n][0] *= c0, o[n][1] *= c0, o[n][2] *= c1, o[n][3] *= c1;
            tc_mm_pv<T, D, TC_BC / 16>(o, s, Vc, 0);
        }
        __syncthreads(); /* the next iteration's loads overwrite this buffer */
    }
    TC_UNROLL
    for (int msk = 1; msk < 4; msk <<= 1) {
        l0 += __shfl_xor_sync(0xffffffffu, l0, msk);
        l1 += __shfl_xor_sync(0xffffffffu, l1, msk);
    }
    const float inv[2] = {1.0f / l0, 1.0f / l1}, mm[2] = {m0, m1}, ll[2] = {l0, l1};
    TC_UNROLL
    for (int hh = 0; hh < 2; hh++) {
        const int64_t i = hh ? i1 : i0;
        if (i >= T_) continue;
        T *orow = out + (b * T_ + i) * C + h * D;
        TC_UNROLL
        for (int n = 0; n < D / 8; n++) {
            st(orow, n * 8 + 2 * t, o[n][2 * hh] * inv[hh]);
            st(orow, n * 8 + 2 * t + 1, o[n][2 * hh + 1] * inv[hh]);
        }
        if (t == 0) lse[bh * T_ + i] = (mm[hh] + log2f(ll[hh])) * 0.6931471805599453f;
    }
}

template <typename T, int D, bool DROP, int NW>
__global__ void __launch_bounds__(NW * 32) k_att_tc_fwd(tc_args a, const T *qkv, T *out, float *lse) {
    tc_fwd_body<T, D, DROP, NW>(a, qkv, out, lse);
}
/* The same with 2 CTAs per SM required (registers capped at 128): 8 warps at hd 64 without
 * dropout use ~142 registers, so only one CTA (8 warps) would fit an SM; capped, ptxas spills
 * 24 bytes (CUDA 12, sm_90) and 16 warps fit. Measured against the uncapped 4-warp default
 * by bench_attention. */
template <typename T, int D, bool DROP, int NW>
__global__ void __launch_bounds__(NW * 32, 2) k_att_tc_fwd_2ctas(tc_args a, const T *qkv, T *out, float *lse) {
    tc_fwd_body<T, D, DROP, NW>(a, qkv, out, lse);
}

/* ---- backward: Dq (the PRE and FUSED variants) -------------------------------------------- */

/* dvec[bh T + i] = dO_i . O_i (f32), 128 threads per 64 rows of one (b, h): the order of
 * tc_row_terms, so the PRE variant's bits equal the RECOMPUTE variant's. */
template <typename T, int D>
__global__ void __launch_bounds__(128) k_att_tc_row_dots(tc_args a, const T *out, const T *dout, float *dvec) {
    constexpr int CPR = D / 8, RPP = 128 / CPR;
    const int64_t T_ = a.T, C = a.C, bh = blockIdx.x, b = bh / a.H, h = bh % a.H, r0 = (int64_t)blockIdx.y * 64;
    const T *ob = out + b * T_ * C + h * D, *dob = dout + b * T_ * C + h * D;
    TC_UNROLL
    for (int pass = 0; pass < 64 / RPP; pass++) {
        const int64_t r = r0 + pass * RPP + (int)threadIdx.x / CPR;
        const int ch = (int)threadIdx.x % CPR;
        const bool valid = r < T_;
        const float acc = tc_row_dot<T, D>(ob + (valid ? r : 0) * C, dob + (valid ? r : 0) * C, ch, valid);
        if (ch == 0 && valid) dvec[bh * T_ + r] = acc;
    }
}

/* dqkv[b, i, h D + d] += scale dq_acc[(bh T + i) D + d] (the FUSED variant's dQ), 8 columns
 * a thread. */
template <typename T, int D>
__global__ void __launch_bounds__(256) k_att_tc_dq_add(tc_args a, int64_t n_chunks, const float *dq_acc, T *dqkv) {
    const int64_t c = (int64_t)blockIdx.x * 256 + threadIdx.x;
    if (c >= n_chunks) return;
    const int64_t row = c / (D / 8), col = (c % (D / 8)) * 8, bh = row / a.T, i = row % a.T;
    const int64_t b = bh / a.H, h = bh % a.H;
    T *dst = dqkv + (b * a.T + i) * 3 * a.C + h * D + col;
    const float *src = dq_acc + row * D + col;
    TC_UNROLL
    for (int e = 0; e < 8; e++) st(dst, e, ld(dst, e) + src[e] * a.scale);
}

/* ---- backward: dk, dv (and the fused dq) ------------------------------------------------- */

/* A CTA per 16 NW keys of one (b, h) (a warp owns 16 keys), looping over the query tiles of
 * BQ rows from the first key on. MODE: TC_RECOMPUTE computes Dq of each query tile from O and
 * dO; TC_PRE and TC_FUSED read it from dvec (k_att_tc_row_dots); TC_FUSED also writes dS to
 * shared memory and adds dQ = dS K (scale applied later) into dq_acc with f32 atomics. */
template <typename T, int D, bool DROP, int NW, int MODE>
__global__ void __launch_bounds__(NW * 32) k_att_tc_bwd_kv(tc_args a, const T *qkv, const T *out, const float *lse,
                                                            const T *dout, const float *dvec, float *dq_acc, T *dqkv) {
    constexpr int NT = NW * 32, BR = 16 * NW, LDS = tc_dims<D>::LDS, BQ = tc_dims<D>::BQ, QT = BQ * LDS;
    constexpr int LDSS = BR + 8; /* dS row stride (fused) */
    constexpr bool REC = MODE == TC_RECOMPUTE;
    TC_SMEM(smem, (tc_smem<D, NW>::kv(MODE)));
    T *Ks = (T *)smem, *Vs = Ks + BR * LDS, *Qs = Vs + BR * LDS, *dOs = Qs + 2 * QT, *Os = dOs + 2 * QT;
    T *dSs = Os + (REC ? 2 * QT : 0);
    float *lse_s = (float *)(dSs + (MODE == TC_FUSED ? BQ * LDSS : 0)), *dq_s = lse_s + 2 * BQ;
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
    const int64_t T_ = a.T, C = a.C, C3 = 3 * C, bh = blockIdx.x, b = bh / a.H, h = bh % a.H;
    const int64_t k0 = (int64_t)blockIdx.y * BR; /* key tile 0 has the most query tiles: first */
    const T *qb = qkv + b * T_ * C3 + h * D, *kb = qb + C, *vb = qb + 2 * C;
    const T *ob = out + b * T_ * C + h * D, *dob = dout + b * T_ * C + h * D;
    const float *lse_bh = lse + bh * T_, *dv_bh = REC ? NULL : dvec + bh * T_;
    tc_load_tile<T, D, BR, NT>(Ks, kb, C3, k0, T_);
    tc_load_tile<T, D, BR, NT>(Vs, vb, C3, k0, T_);
    tc_load_tile<T, D, BQ, NT>(Qs, qb, C3, k0, T_);
    tc_load_tile<T, D, BQ, NT>(dOs, dob, C, k0, T_);
    if (REC) tc_load_tile<T, D, BQ, NT>(Os, ob, C, k0, T_);
    else tc_load_lse<BQ>(dq_s, dv_bh, k0, T_);
    tc_load_lse<BQ>(lse_s, lse_bh, k0, T_);
    cp_async_commit();

    const int64_t w0 = k0 + w * 16, j0 = w0 + g, j1 = j0 + 8; /* the warp's first key, this thread's two */
    float dk[D / 8][4], dv[D / 8][4];
    TC_UNROLL
    for (int n = 0; n < D / 8; n++)
        TC_UNROLL
        for (int e = 0; e < 4; e++) dk[n][e] = dv[n][e] = 0;
    /* hd 64 on 4 warps, PRE and FUSED (~185 registers): the warp's K and V fragments stay in
     * registers (32 more) instead of 8 ldmatrix per query tile; RECOMPUTE (the baseline) and
     * the others (~240 registers) load them from shared memory each time */
    constexpr bool HOIST = D == 64 && NW == 4 && MODE != TC_RECOMPUTE;
    uint32_t kf[HOIST ? D / 16 : 1][4], vf[HOIST ? D / 16 : 1][4];
    (void)kf, (void)vf;
    const int n_q = (int)((T_ - k0 + BQ - 1) / BQ); /* query tiles from k0 to T */
    for (int it = 0; it < n_q; it++) {
        const int buf = it & 1;
        const int64_t qs = k0 + (int64_t)it * BQ;
        if (it + 1 < n_q) {
            tc_load_tile<T, D, BQ, NT>(Qs + (buf ^ 1) * QT, qb, C3, qs + BQ, T_);
            tc_load_tile<T, D, BQ, NT>(dOs + (buf ^ 1) * QT, dob, C, qs + BQ, T_);
            if (REC) tc_load_tile<T, D, BQ, NT>(Os + (buf ^ 1) * QT, ob, C, qs + BQ, T_);
            else tc_load_lse<BQ>(dq_s + (buf ^ 1) * BQ, dv_bh, qs + BQ, T_);
            tc_load_lse<BQ>(lse_s + (buf ^ 1) * BQ, lse_bh, qs + BQ, T_);
        }
        cp_async_commit();
        cp_async_wait<1>();
        __syncthreads();
        const T *Qc = Qs + buf * QT, *dOc = dOs + buf * QT;
        const float *lsec = lse_s + buf * BQ, *dqc = REC ? dq_s : dq_s + buf * BQ;
        if (REC) {
            tc_row_dots_shared<T, D, BQ, NT>(Os + buf * QT, dOc, dq_s); /* Dq of this tile's rows */
            __syncthreads();
        }
        const bool live = qs + BQ - 1 >= w0; /* some query of the tile sees the warp's first key */
        /* 32-bit tile-relative bounds (fewer registers than 64-bit indices) */
        const int q_lim = T_ - qs < BQ ? (int)(T_ - qs) : BQ, jr0 = (int)(j0 - qs);
        float s[BQ / 8][4], dp[BQ / 8][4];
        TC_UNROLL
        for (int n = 0; n < BQ / 8; n++)
            TC_UNROLL
            for (int e = 0; e < 4; e++) s[n][e] = dp[n][e] = 0;
        if constexpr (HOIST) {
            if (it == 0) tc_load_afrag<T, D>(kf, Ks, w * 16), tc_load_afrag<T, D>(vf, Vs, w * 16);
            if (live) {
                tc_mm_abt_r<T, D, BQ / 8>(s, kf, Qc, 0);   /* S^T = K Q^T */
                tc_mm_abt_r<T, D, BQ / 8>(dp, vf, dOc, 0); /* dP'^T = V dO^T */
            }
        } else if (live) {
            tc_mm_abt<T, D, BQ / 8>(s, Ks, w * 16, Qc, 0);   /* S^T = K Q^T */
            tc_mm_abt<T, D, BQ / 8>(dp, Vs, w * 16, dOc, 0); /* dP'^T = V dO^T */
        }
        TC_UNROLL
        for (int n = 0; n < BQ / 8; n++)
            TC_UNROLL
            for (int e = 0; e < 4; e++) {
                const int qi = n * 8 + 2 * t + (e & 1);
                float p = 0, ds = 0;
                if (qi < q_lim && qi >= (e < 2 ? jr0 : jr0 + 8)) { /* i = qs + qi < T and i >= j */
                    p = exp2f(s[n][e] * a.scale_log2 - lsec[qi] * 1.4426950408889634f);
                    float dpv = dp[n][e];
                    float pd = p;
                    if (DROP) {
                        const bool keep = tc_keep(a, bh, qs + qi, e < 2 ? j0 : j1);
                        pd = keep ? p * a.ks : 0.0f;
                        dpv = keep ? dpv * a.ks : 0.0f;
                    }
                    ds = p * (dpv - dqc[qi]);
                    p = pd;
                }
                s[n][e] = p;   /* P'^T */
                dp[n][e] = ds; /* dS^T */
                if (MODE == TC_FUSED) st(dSs + qi * LDSS, w * 16 + g + (e < 2 ? 0 : 8), ds); /* dS[q][key] */
            }
        if (live) {
            tc_mm_pv<T, D, BQ / 16>(dv, s, dOc, 0); /* dV += P'^T dO */
            tc_mm_pv<T, D, BQ / 16>(dk, dp, Qc, 0); /* dK += dS^T Q */
        }
        if (MODE == TC_FUSED) {
            /* dQ[qs..qs+BQ) += dS K: BQ/16 row blocks, each split over NW/(BQ/16) warps by columns */
            constexpr int RB = BQ / 16, WPR = NW / RB, NCOL = D / WPR;
            static_assert(NW % RB == 0 && NCOL % 16 == 0, "dq split");
            __syncthreads();
            const int rb = w % RB, col0 = (w / RB) * NCOL;
            float acc[NCOL / 8][4];
            TC_UNROLL
            for (int n = 0; n < NCOL / 8; n++) acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0;
            tc_mm_ab<T, LDSS, LDS, BR, NCOL>(acc, dSs, rb * 16, Ks, col0);
            TC_UNROLL
            for (int hh = 0; hh < 2; hh++) {
                const int64_t i = qs + rb * 16 + g + 8 * hh;
                if (i >= T_) continue;
                float *row = dq_acc + (bh * T_ + i) * D + col0 + 2 * t;
                TC_UNROLL
                for (int n = 0; n < NCOL / 8; n++) red_add2(row + n * 8, acc[n][2 * hh], acc[n][2 * hh + 1]);
            }
        }
        __syncthreads();
    }
    T *dkb = dqkv + b * T_ * C3 + C + h * D;
    tc_accumulate_rows<T, D>(dkb, C3, w0, T_, dk, a.scale);
    tc_accumulate_rows<T, D>(dkb + C, C3, w0, T_, dv, 1.0f);
}

/* ---- backward: dq ---------------------------------------------------------------------- */

/* A CTA per 16 NW query rows, looping over key tiles of TC_BC. PRE: lse and Dq from lse and
 * dvec (k_att_tc_row_dots) instead of O and dO. */
template <typename T, int D, bool DROP, int NW, bool PRE>
__global__ void __launch_bounds__(NW * 32) k_att_tc_bwd_q(tc_args a, const T *qkv, const T *out, const float *lse,
                                                           const T *dout, const float *dvec, T *dqkv) {
    constexpr int NT = NW * 32, BR = 16 * NW, LDS = tc_dims<D>::LDS, KT = TC_BC * LDS;
    TC_SMEM(smem, (tc_smem<D, NW>::Q));
    T *Qs = (T *)smem, *dOs = Qs + BR * LDS, *Ks = dOs + BR * LDS, *Vs = Ks + 2 * KT;
    float *lse2_s = (float *)(Vs + 2 * KT), *dq_s = lse2_s + BR;
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
    const int64_t T_ = a.T, C = a.C, C3 = 3 * C, bh = blockIdx.x, b = bh / a.H, h = bh % a.H;
    const int qt = (int)(gridDim.y - 1 - blockIdx.y);
    const int64_t q0 = (int64_t)qt * BR;
    const T *qb = qkv + b * T_ * C3 + h * D, *kb = qb + C, *vb = qb + 2 * C;
    const T *ob = out + b * T_ * C + h * D, *dob = dout + b * T_ * C + h * D;
    tc_load_tile<T, D, BR, NT>(Qs, qb, C3, q0, T_);
    tc_load_tile<T, D, BR, NT>(dOs, dob, C, q0, T_);
    tc_load_tile<T, D, TC_BC, NT>(Ks, kb, C3, 0, T_);
    tc_load_tile<T, D, TC_BC, NT>(Vs, vb, C3, 0, T_);
    if (PRE) {
        /* raw lse into lse2_s (scaled to log2 below), Dq into dq_s */
        for (int r = threadIdx.x; r < BR; r += NT) {
            const bool valid = q0 + r < T_;
            cp_async4(lse2_s + r, lse + bh * T_ + (valid ? q0 + r : 0), valid);
            cp_async4(dq_s + r, dvec + bh * T_ + (valid ? q0 + r : 0), valid);
        }
    }
    cp_async_commit();
    if (!PRE) tc_row_terms<T, D, BR, NT>(ob, dob, C, q0, T_, lse + bh * T_, dq_s, lse2_s);

    const int64_t w0 = q0 + w * 16, i0 = w0 + g, i1 = i0 + 8;
    float lse2_0 = 0, lse2_1 = 0, dd0 = 0, dd1 = 0;
    float dq[D / 8][4];
    TC_UNROLL
    for (int n = 0; n < D / 8; n++) dq[n][0] = dq[n][1] = dq[n][2] = dq[n][3] = 0;
    const int64_t q_end = q0 + BR < T_ ? q0 + BR : T_;
    const int n_kv = (int)((q_end + TC_BC - 1) / TC_BC);
    for (int kt = 0; kt < n_kv; kt++) {
        const int buf = kt & 1;
        if (kt + 1 < n_kv) {
            tc_load_tile<T, D, TC_BC, NT>(Ks + (buf ^ 1) * KT, kb, C3, (int64_t)(kt + 1) * TC_BC, T_);
            tc_load_tile<T, D, TC_BC, NT>(Vs + (buf ^ 1) * KT, vb, C3, (int64_t)(kt + 1) * TC_BC, T_);
        }
        cp_async_commit();
        cp_async_wait<1>();
        __syncthreads();
        if (kt == 0) {
            const float l2 = PRE ? 1.4426950408889634f : 1.0f;
            lse2_0 = lse2_s[w * 16 + g] * l2, lse2_1 = lse2_s[w * 16 + g + 8] * l2;
            dd0 = dq_s[w * 16 + g], dd1 = dq_s[w * 16 + g + 8];
        }
        const int64_t j0 = (int64_t)kt * TC_BC;
        if (j0 <= w0 + 15) { /* else every key of the tile is above the warp's rows */
            const T *Kc = Ks + buf * KT, *Vc = Vs + buf * KT;
            float s[TC_BC / 8][4], dp[TC_BC / 8][4];
            TC_UNROLL
            for (int n = 0; n < TC_BC / 8; n++)
                TC_UNROLL
                for (int e = 0; e < 4; e++) s[n][e] = dp[n][e] = 0;
            const bool v0 = i0 < T_, v1 = i1 < T_;
            const int rel0 = (int)(i0 - j0) - 2 * t;
            tc_mm_abt<T, D, TC_BC / 8>(s, Qs, w * 16, Kc, 0);   /* S = Q K^T */
            tc_mm_abt<T, D, TC_BC / 8>(dp, dOs, w * 16, Vc, 0); /* dP' = dO V^T */
            TC_UNROLL
            for (int n = 0; n < TC_BC / 8; n++)
                TC_UNROLL
                for (int e = 0; e < 4; e++) {
                    const int c = n * 8 + (e & 1); /* key j = j0 + c + 2t */
                    float ds = 0;
                    if ((e < 2 ? v0 : v1) && c <= rel0 + (e < 2 ? 0 : 8)) { /* i < T and j <= i */
                        const float p = exp2f(s[n][e] * a.scale_log2 - (e < 2 ? lse2_0 : lse2_1));
                        float dpv = dp[n][e];
                        if (DROP) dpv = tc_keep(a, bh, e < 2 ? i0 : i1, j0 + c + 2 * t) ? dpv * a.ks : 0.0f;
                        ds = p * (dpv - (e < 2 ? dd0 : dd1));
                    }
                    s[n][e] = ds;
                }
            tc_mm_pv<T, D, TC_BC / 16>(dq, s, Kc, 0); /* dQ += dS K */
        }
        __syncthreads();
    }
    tc_accumulate_rows<T, D>(dqkv + b * T_ * C3 + h * D, C3, w0, T_, dq, a.scale);
}

/* ---- dispatch ---------------------------------------------------------------------------- */

bool dsc__attention_tc_applies(dsc_dtype_t dt, int64_t B, int64_t T, int64_t C, int64_t H, const void *const *ptrs,
                               int n_ptrs) {
    if (dt != DSC_BF16 && dt != DSC_F16) return false;
    if (B <= 0 || T <= 0 || H <= 0 || C % H) return false;
    const int64_t hd = C / H;
    if (hd != 64 && hd != 128) return false;
    if (B * H > 0x7fffffff || (T + TC_BR - 1) / TC_BR > 65535) return false;
    for (int k = 0; k < n_ptrs; k++)
        if ((uintptr_t)ptrs[k] % 16) return false; /* 16-byte cp.async / vector loads */
    return true;
}

static dsc_cuda_att_cfg_t tc_cfg(const dsc_cuda_att_cfg_t *cfg) {
    dsc_cuda_att_cfg_t c = {4, DSC_CUDA_ATT_BWD_RECOMPUTE, 4};
    if (cfg) c = *cfg;
    if (c.fwd_warps == 0) c.fwd_warps = 4;
    if (c.bwd_warps == 0) c.bwd_warps = 4;
    return c;
}

bool dsc__attention_tc_cfg_valid(const dsc_cuda_att_cfg_t *cfg) {
    const dsc_cuda_att_cfg_t c = tc_cfg(cfg);
    if (c.fwd_warps != 4 && c.fwd_warps != 8) return false;
    if (c.bwd_warps != 4 && c.bwd_warps != 8) return false;
    if (c.bwd == DSC_CUDA_ATT_BWD_RECOMPUTE) return c.bwd_warps == 4; /* the baseline: 4 warps only */
    return c.bwd == DSC_CUDA_ATT_BWD_PRE || c.bwd == DSC_CUDA_ATT_BWD_ATOMIC;
}

size_t dsc__attention_tc_workspace_bytes(const dsc_cuda_att_cfg_t *cfg, int64_t B, int64_t T, int64_t C, int64_t H) {
    const dsc_cuda_att_cfg_t c = tc_cfg(cfg);
    if (c.bwd == DSC_CUDA_ATT_BWD_RECOMPUTE || B <= 0 || T <= 0 || H <= 0 || C % H) return 0;
    if (C / H != 64 && C / H != 128) return 0; /* the simple kernels take it */
    const size_t dvec = ((size_t)(B * H * T) * 4 + 255) / 256 * 256;
    return dvec + (c.bwd == DSC_CUDA_ATT_BWD_ATOMIC ? (size_t)(B * T * C) * 4 : 0);
}

template <typename K> static int tc_prepare(K kernel, int smem) {
#ifndef DSC_CUDA_EMU
    if (smem > 48 * 1024)
        DSC_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
#else
    (void)kernel, (void)smem;
#endif
    return 0;
}

static dim3 tc_grid(int64_t B, const tc_args &a, int rows) {
    return dim3((unsigned)(B * a.H), (unsigned)((a.T + rows - 1) / rows));
}

template <typename T, int D, bool DROP, int NW>
static int tc_fwd(cudaStream_t s, int64_t B, const tc_args &a, const void *qkv, void *out, void *lse) {
    constexpr int smem = tc_smem<D, NW>::FWD;
    if constexpr (NW == 8 && D == 64 && !DROP) {
        if (int rc = tc_prepare(k_att_tc_fwd_2ctas<T, D, DROP, NW>, smem)) return rc;
        TC_LAUNCH(tc_grid(B, a, 16 * NW), NW * 32, smem, s, k_att_tc_fwd_2ctas<T, D, DROP, NW>)(
            a, (const T *)qkv, (T *)out, (float *)lse);
    } else {
        if (int rc = tc_prepare(k_att_tc_fwd<T, D, DROP, NW>, smem)) return rc;
        TC_LAUNCH(tc_grid(B, a, 16 * NW), NW * 32, smem, s, k_att_tc_fwd<T, D, DROP, NW>)(a, (const T *)qkv, (T *)out,
                                                                                        (float *)lse);
    }
    DSC_CUDA_CHECK(cudaGetLastError());
    return 0;
}

/* The backward of one variant: MODE (TC_RECOMPUTE, TC_PRE, TC_FUSED), NW warps; dvec (B H T
 * floats) and dq_acc (B H T D floats) from the workspace where MODE needs them. */
template <typename T, int D, bool DROP, int NW, int MODE>
static int tc_bwd(cudaStream_t s, int64_t B, const tc_args &a, const void *qkv, const void *out, const void *lse,
                  const void *dout, void *dqkv, float *dvec, float *dq_acc) {
    constexpr int kv_smem = tc_smem<D, NW>::kv(MODE), q_smem = tc_smem<D, NW>::Q;
    const dim3 grid = tc_grid(B, a, 16 * NW);
    if (MODE != TC_RECOMPUTE) {
        TC_LAUNCH(tc_grid(B, a, 64), 128, 0, s, k_att_tc_row_dots<T, D>)(a, (const T *)out, (const T *)dout, dvec);
        DSC_CUDA_CHECK(cudaGetLastError());
    }
    if (MODE == TC_FUSED) DSC_CUDA_CHECK(cudaMemsetAsync(dq_acc, 0, (size_t)(B * a.H * a.T * D) * 4, s));
    if (int rc = tc_prepare(k_att_tc_bwd_kv<T, D, DROP, NW, MODE>, kv_smem)) return rc;
    TC_LAUNCH(grid, NW * 32, kv_smem, s, k_att_tc_bwd_kv<T, D, DROP, NW, MODE>)(
        a, (const T *)qkv, (const T *)out, (const float *)lse, (const T *)dout, dvec, dq_acc, (T *)dqkv);
    DSC_CUDA_CHECK(cudaGetLastError());
    if (MODE == TC_FUSED) {
        const int64_t n_chunks = B * a.H * a.T * (D / 8);
        TC_LAUNCH(dim3((unsigned)((n_chunks + 255) / 256)), 256, 0, s, k_att_tc_dq_add<T, D>)(a, n_chunks, dq_acc,
                                                                                            (T *)dqkv);
    } else {
        if (int rc = tc_prepare(k_att_tc_bwd_q<T, D, DROP, NW, MODE == TC_PRE>, q_smem)) return rc;
        TC_LAUNCH(grid, NW * 32, q_smem, s, k_att_tc_bwd_q<T, D, DROP, NW, MODE == TC_PRE>)(
            a, (const T *)qkv, (const T *)out, (const float *)lse, (const T *)dout, dvec, (T *)dqkv);
    }
    DSC_CUDA_CHECK(cudaGetLastError());
    return 0;
}

template <typename T, int D, bool DROP>
static int tc_run(cudaStream_t s, int64_t B, const tc_args &a, const dsc_cuda_att_cfg_t &c, const void *qkv,
                  const void *out, const void *lse, const void *dout, void *res, void *res2, float *dvec,
                  float *dq_acc, bool backward) {
    if (!backward)
        return c.fwd_warps == 8 ? tc_fwd<T, D, DROP, 8>(s, B, a, qkv, res, res2)
                                : tc_fwd<T, D, DROP, 4>(s, B, a, qkv, res, res2);
    if (c.bwd == DSC_CUDA_ATT_BWD_RECOMPUTE)
        return tc_bwd<T, D, DROP, 4, TC_RECOMPUTE>(s, B, a, qkv, out, lse, dout, res, NULL, NULL);
    if (c.bwd == DSC_CUDA_ATT_BWD_PRE)
        return c.bwd_warps == 8 ? tc_bwd<T, D, DROP, 8, TC_PRE>(s, B, a, qkv, out, lse, dout, res, dvec, NULL)
                                : tc_bwd<T, D, DROP, 4, TC_PRE>(s, B, a, qkv, out, lse, dout, res, dvec, NULL);
    return c.bwd_warps == 8 ? tc_bwd<T, D, DROP, 8, TC_FUSED>(s, B, a, qkv, out, lse, dout, res, dvec, dq_acc)
                            : tc_bwd<T, D, DROP, 4, TC_FUSED>(s, B, a, qkv, out, lse, dout, res, dvec, dq_acc);
}

/* Dropout is a template parameter: without it the kernels carry no Philox code (fewer
 * registers, more CTAs per SM). */
template <bool DROP>
static int tc_dispatch(cudaStream_t s, dsc_dtype_t dt, int64_t hd, int64_t B, const tc_args &a,
                       const dsc_cuda_att_cfg_t &c, const void *qkv, const void *out, const void *lse,
                       const void *dout, void *res, void *res2, float *dvec, float *dq_acc, bool backward) {
    if (dt == DSC_BF16)
        return hd == 64 ? tc_run<dsc_bf16, 64, DROP>(s, B, a, c, qkv, out, lse, dout, res, res2, dvec, dq_acc, backward)
                        : tc_run<dsc_bf16, 128, DROP>(s, B, a, c, qkv, out, lse, dout, res, res2, dvec, dq_acc, backward);
    return hd == 64 ? tc_run<dsc_f16, 64, DROP>(s, B, a, c, qkv, out, lse, dout, res, res2, dvec, dq_acc, backward)
                    : tc_run<dsc_f16, 128, DROP>(s, B, a, c, qkv, out, lse, dout, res, res2, dvec, dq_acc, backward);
}

int dsc__attention_tc(cudaStream_t s, const dsc_cuda_att_cfg_t *cfg, dsc_dtype_t dt, int64_t B, int64_t T, int64_t C,
                      int64_t H, const void *qkv, const void *out, const void *lse, const void *dout, double drop_p,
                      uint64_t seed, uint64_t offset, void *res, void *res2, void *ws, size_t ws_bytes,
                      bool backward) {
    if (!dsc__attention_tc_cfg_valid(cfg)) return (int)cudaErrorInvalidValue;
    const dsc_cuda_att_cfg_t c = tc_cfg(cfg);
    float *dvec = NULL, *dq_acc = NULL;
    if (backward && c.bwd != DSC_CUDA_ATT_BWD_RECOMPUTE) {
        if (!ws || ws_bytes < dsc__attention_tc_workspace_bytes(&c, B, T, C, H)) return (int)cudaErrorInvalidValue;
        dvec = (float *)ws;
        dq_acc = (float *)((char *)ws + ((size_t)(B * H * T) * 4 + 255) / 256 * 256);
    }
    tc_args a;
    a.T = T, a.C = C, a.H = H;
    const int64_t hd = C / H;
    a.scale = (float)(1.0 / sqrt((double)hd));
    a.scale_log2 = (float)(1.4426950408889634 / sqrt((double)hd));
    a.drop = drop_p > 0;
    /* uniform = r 2^-24 (r = philox_u32 >> 8) >= p  <=>  r >= ceil(p 2^24) */
    const double thr = ceil(drop_p * 16777216.0);
    a.keep_thr = drop_p <= 0 ? 0u : thr > 16777216.0 ? 16777217u : (uint32_t)thr;
    a.ks = (float)(1.0 / (1.0 - drop_p));
    a.seed = seed, a.offset = offset;
    if (a.drop) return tc_dispatch<true>(s, dt, hd, B, a, c, qkv, out, lse, dout, res, res2, dvec, dq_acc, backward);
    return tc_dispatch<false>(s, dt, hd, B, a, c, qkv, out, lse, dout, res, res2, dvec, dq_acc, backward);
}

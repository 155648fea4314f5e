/* Causal flash attention on CUDA (the agreed contract): nothing of size T x T is stored; the
 * forward keeps lse per row, the backward recomputes the probabilities from qkv and lse.
 * bf16 / f16 with head size 64 or 128 (16-byte aligned pointers) take the tensor-core kernels
 * of cuda_attention_tc.cu; everything else (f32, f64, other head sizes) the simple kernels
 * below, which dsc_cuda_attention_simple / _backward_simple also reach directly.
 *
 * Layout of the work (correctness first, simple and deterministic):
 *  - forward: a block of 8 warps serves 8 query rows of one (b, h); key/value tiles of 32 rows
 *    are staged in shared memory as the compute type; lane l of a warp scores key kt + l, the
 *    warp keeps the online softmax (running max m, sum l) and each lane 32-strided output dims;
 *  - backward, two kernels so that every output row has one owner (no atomics): dk/dv with a
 *    warp per key row walking query tiles, dq with a warp per query row walking key tiles;
 *    D_i = dout_i . out_i (the dropout-aware softmax-backward term).
 * Dropout: element (b,h,i,j) keeps iff philox_uniform(seed, offset + ((b*H+h)*T+i)*T+j) >= p. */
#include <math.h>

#include "core/philox.h"
#include "ops/cuda/cuda_attention_tc.cuh"
#include "ops/cuda/cuda_common.cuh"

#define ATT_W 8  /* warps (rows) per block */
#define ATT_KT 32 /* keys (or queries) per tile */

__device__ static inline float aexp(float x) { return expf(x); }
__device__ static inline double aexp(double x) { return exp(x); }
__device__ static inline float alog(float x) { return logf(x); }
__device__ static inline double alog(double x) { return log(x); }

template <typename A, int R>
__device__ static inline A dot_sh(const A *a, const A *b, int hd) {
    A s = 0;
    for (int d = 0; d < hd; d++) s += a[d] * b[d];
    return s;
}

/* Loads rows [r0, r0 + n) (rows >= T zero) of one head's slice at column col0 of qkv-like data
 * (row stride ld) into sh[n][hd + pad]. */
template <typename T, typename A>
__device__ static inline void load_rows(const T *base, int64_t row_stride, int64_t r0, int n, int64_t T_, int hd, A *sh,
                                        int stride) {
    for (int e = threadIdx.x; e < n * hd; e += blockDim.x) {
        const int r = e / hd, d = e % hd;
        sh[r * stride + d] = r0 + r < T_ ? ld(base, (r0 + r) * row_stride + d) : (A)0;
    }
}

template <typename T, int R>
__global__ void __launch_bounds__(ATT_W * 32) k_attention_fwd(int64_t T_, int64_t C, int64_t H, const T *qkv,
                                                               double drop_p, uint64_t seed, uint64_t offset, T *out,
                                                               typename dsc_acc<T>::type *lse) {
    typedef typename dsc_acc<T>::type A;
    constexpr int HDP = 32 * R + 1;
    __shared__ A Ks[ATT_KT * HDP], Vs[ATT_KT * HDP], Qs[ATT_W * HDP];
    const int hd = (int)(C / H), lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    const int64_t bh = blockIdx.y, b = bh / H, h = bh % H, C3 = 3 * C;
    const int64_t i0 = (int64_t)blockIdx.x * ATT_W, i = i0 + w;
    const T *base = qkv + b * T_ * C3 + h * hd;
    const A scale = (A)(1.0 / sqrt((double)hd));
    const A ks = (A)(1.0 / (1.0 - drop_p)); /* kept values scale by ks, as the CPU */
    load_rows<T, A>(base, C3, i0, ATT_W, T_, hd, Qs, HDP);
    A m = -INFINITY, l = 0, o[R];
    for (int r = 0; r < R; r++) o[r] = 0;
    const int64_t i_last = i0 + ATT_W - 1 < T_ - 1 ? i0 + ATT_W - 1 : T_ - 1;
    for (int64_t kt = 0; kt <= i_last; kt += ATT_KT) {
        __syncthreads();
        load_rows<T, A>(base + C, C3, kt, ATT_KT, T_, hd, Ks, HDP);
        load_rows<T, A>(base + 2 * C, C3, kt, ATT_KT, T_, hd, Vs, HDP);
        __syncthreads();
        if (i >= T_ || kt > i) continue;
        const int64_t j = kt + lane;
        const bool valid = j <= i;
        const A s = valid ? dot_sh<A, R>(Qs + w * HDP, Ks + lane * HDP, hd) * scale : (A)-INFINITY;
        const A mt = dsc_warp_max(s);
        const A m_new = mt > m ? mt : m;
        const A pj = valid ? aexp(s - m_new) : (A)0;
        const A corr = aexp(m - m_new);
        l = l * corr + dsc_warp_sum(pj);
        A pd = pj;
        if (drop_p > 0 && valid) {
            const uint64_t g = offset + (uint64_t)(((bh * T_ + i) * T_) + j);
            pd = (double)dsc_philox_uniform(seed, g) >= drop_p ? pj * ks : (A)0;
        }
        for (int r = 0; r < R; r++) o[r] *= corr;
        const int n_k = (int)(i - kt + 1 < ATT_KT ? i - kt + 1 : ATT_KT);
        for (int jj = 0; jj < n_k; jj++) {
            const A pv = __shfl_sync(0xffffffffu, pd, jj);
            for (int r = 0; r < R; r++) o[r] += pv * Vs[jj * HDP + lane + 32 * r];
        }
        m = m_new;
    }
    if (i >= T_) return;
    T *orow = out + (b * T_ + i) * C + h * hd;
    for (int r = 0; r < R; r++) {
        const int d = lane + 32 * r;
        if (d < hd) st(orow, d, o[r] / l);
    }
    if (lane == 0) lse[bh * T_ + i] = m + alog(l);
}

/* dk, dv: warp w owns key row j = blockIdx.x * 8 + w; lane l takes query qt + l of each tile. */
template <typename T, int R>
__global__ void __launch_bounds__(ATT_W * 32) k_attention_bwd_kv(int64_t T_, int64_t C, int64_t H, const T *qkv,
                                                                  const T *out, const typename dsc_acc<T>::type *lse,
                                                                  const T *dout, double drop_p, uint64_t seed,
                                                                  uint64_t offset, T *dqkv) {
    typedef typename dsc_acc<T>::type A;
    constexpr int HDP = 32 * R + 1;
    __shared__ A Qt[ATT_KT * HDP], dOt[ATT_KT * HDP], Ks[ATT_W * HDP], Vs[ATT_W * HDP];
    __shared__ A lse_t[ATT_KT], D_t[ATT_KT];
    const int hd = (int)(C / H), lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    const int64_t bh = blockIdx.y, b = bh / H, h = bh % H, C3 = 3 * C;
    const int64_t j0 = (int64_t)blockIdx.x * ATT_W, j = j0 + w;
    const T *base = qkv + b * T_ * C3 + h * hd;
    const T *obase = out + b * T_ * C + h * hd, *dobase = dout + b * T_ * C + h * hd;
    const A scale = (A)(1.0 / sqrt((double)hd));
    const A ks = (A)(1.0 / (1.0 - drop_p)); /* kept values scale by ks, as the CPU */
    load_rows<T, A>(base + C, C3, j0, ATT_W, T_, hd, Ks, HDP);
    load_rows<T, A>(base + 2 * C, C3, j0, ATT_W, T_, hd, Vs, HDP);
    A dk[R], dv[R];
    for (int r = 0; r < R; r++) dk[r] = dv[r] = 0;
    for (int64_t qt = j0 / ATT_KT * ATT_KT; qt < T_; qt += ATT_KT) {
        __syncthreads();
        load_rows<T, A>(base, C3, qt, ATT_KT, T_, hd, Qt, HDP);
        load_rows<T, A>(dobase, C, qt, ATT_KT, T_, hd, dOt, HDP);
        /* D for the tile's rows: warp w computes rows w, w + 8, ... */
        for (int rr = w; rr < ATT_KT; rr += ATT_W) {
            const int64_t ii = qt + rr;
            A part = 0;
            if (ii < T_)
                for (int d = lane; d < hd; d += 32) part += ld(dobase, ii * C + d) * ld(obase, ii * C + d);
            part = dsc_warp_sum(part);
            if (lane == 0) {
                D_t[rr] = part;
                lse_t[rr] = ii < T_ ? lse[bh * T_ + ii] : (A)0;
            }
        }
        __syncthreads();
        if (j >= T_) continue;
        const int64_t i = qt + lane;
        const bool valid = i < T_ && i >= j;
        A p = 0, pd = 0, ds = 0;
        if (valid) {
            const A s = dot_sh<A, R>(Qt + lane * HDP, Ks + w * HDP, hd) * scale;
            p = aexp(s - lse_t[lane]);
            A dpp = dot_sh<A, R>(dOt + lane * HDP, Vs + w * HDP, hd);
            pd = p;
            if (drop_p > 0) {
                const uint64_t g = offset + (uint64_t)(((bh * T_ + i) * T_) + j);
                const bool keep = (double)dsc_philox_uniform(seed, g) >= drop_p;
                pd = keep ? p * ks : (A)0;
                dpp = keep ? dpp * ks : (A)0;
            }
            ds = p * (dpp - D_t[lane]);
        }
        for (int ll = 0; ll < ATT_KT; ll++) {
            const A a = __shfl_sync(0xffffffffu, pd, ll), c = __shfl_sync(0xffffffffu, ds, ll);
            for (int r = 0; r < R; r++) {
                const int d = lane + 32 * r;
                dv[r] += a * dOt[ll * HDP + d];
                dk[r] += c * Qt[ll * HDP + d];
            }
        }
    }
    if (j >= T_) return;
    T *dk_row = dqkv + (b * T_ + j) * C3 + C + h * hd, *dv_row = dk_row + C;
    for (int r = 0; r < R; r++) {
        const int d = lane + 32 * r;
        if (d < hd) {
            st(dk_row, d, ld(dk_row, d) + dk[r] * scale);
            st(dv_row, d, ld(dv_row, d) + dv[r]);
        }
    }
}

/* dq: warp w owns query row i; lane l takes key kt + l of each tile. */
template <typename T, int R>
__global__ void __launch_bounds__(ATT_W * 32) k_attention_bwd_q(int64_t T_, int64_t C, int64_t H, const T *qkv,
                                                                 const T *out, const typename dsc_acc<T>::type *lse,
                                                                 const T *dout, double drop_p, uint64_t seed,
                                                                 uint64_t offset, T *dqkv) {
    typedef typename dsc_acc<T>::type A;
    constexpr int HDP = 32 * R + 1;
    __shared__ A Ks[ATT_KT * HDP], Vs[ATT_KT * HDP], Qs[ATT_W * HDP], dOs[ATT_W * HDP];
    const int hd = (int)(C / H), lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    const int64_t bh = blockIdx.y, b = bh / H, h = bh % H, C3 = 3 * C;
    const int64_t i0 = (int64_t)blockIdx.x * ATT_W, i = i0 + w;
    const T *base = qkv + b * T_ * C3 + h * hd;
    const T *obase = out + b * T_ * C + h * hd, *dobase = dout + b * T_ * C + h * hd;
    const A scale = (A)(1.0 / sqrt((double)hd));
    const A ks = (A)(1.0 / (1.0 - drop_p)); /* kept values scale by ks, as the CPU */
    load_rows<T, A>(base, C3, i0, ATT_W, T_, hd, Qs, HDP);
    load_rows<T, A>(dobase, C, i0, ATT_W, T_, hd, dOs, HDP);
    A Di = 0, lse_i = 0;
    if (i < T_) {
        for (int d = lane; d < hd; d += 32) Di += ld(dobase, i * C + d) * ld(obase, i * C + d);
        lse_i = lse[bh * T_ + i];
    }
    Di = dsc_warp_sum(Di);
    A dq[R];
    for (int r = 0; r < R; r++) dq[r] = 0;
    const int64_t i_last = i0 + ATT_W - 1 < T_ - 1 ? i0 + ATT_W - 1 : T_ - 1;
    for (int64_t kt = 0; kt <= i_last; kt += ATT_KT) {
        __syncthreads();
        load_rows<T, A>(base + C, C3, kt, ATT_KT, T_, hd, Ks, HDP);
        load_rows<T, A>(base + 2 * C, C3, kt, ATT_KT, T_, hd, Vs, HDP);
        __syncthreads();
        if (i >= T_ || kt > i) continue;
        const int64_t j = kt + lane;
        A ds = 0;
        if (j <= i) {
            const A s = dot_sh<A, R>(Qs + w * HDP, Ks + lane * HDP, hd) * scale;
            const A p = aexp(s - lse_i);
            A dpp = dot_sh<A, R>(dOs + w * HDP, Vs + lane * HDP, hd);
            if (drop_p > 0) {
                const uint64_t g = offset + (uint64_t)(((bh * T_ + i) * T_) + j);
                dpp = (double)dsc_philox_uniform(seed, g) >= drop_p ? dpp * ks : (A)0;
            }
            ds = p * (dpp - Di);
        }
        for (int ll = 0; ll < ATT_KT; ll++) {
            const A c = __shfl_sync(0xffffffffu, ds, ll);
            for (int r = 0; r < R; r++) dq[r] += c * Ks[ll * HDP + lane + 32 * r];
        }
    }
    if (i >= T_) return;
    T *dq_row = dqkv + (b * T_ + i) * C3 + h * hd;
    for (int r = 0; r < R; r++) {
        const int d = lane + 32 * r;
        if (d < hd) st(dq_row, d, ld(dq_row, d) + dq[r] * scale);
    }
}

template <typename T, int R>
static int attention_r(cudaStream_t s, int64_t B, int64_t T_, int64_t C, int64_t H, const void *qkv, const void *out,
                       const void *lse, const void *dout, double drop_p, uint64_t seed, uint64_t offset, void *res,
                       void *res2, bool backward) {
    typedef typename dsc_acc<T>::type A;
    dim3 grid((unsigned)((T_ + ATT_W - 1) / ATT_W), (unsigned)(B * H));
    if (!backward) {
        DSC_LAUNCH(grid, ATT_W * 32, s, k_attention_fwd<T, R>)(T_, C, H, (const T *)qkv, drop_p, seed, offset, (T *)res,
                                                          (A *)res2);
    } else {
        DSC_LAUNCH(grid, ATT_W * 32, s, k_attention_bwd_kv<T, R>)(T_, C, H, (const T *)qkv, (const T *)out, (const A *)lse,
                                                             (const T *)dout, drop_p, seed, offset, (T *)res);
        DSC_LAUNCH(grid, ATT_W * 32, s, k_attention_bwd_q<T, R>)(T_, C, H, (const T *)qkv, (const T *)out, (const A *)lse,
                                                            (const T *)dout, drop_p, seed, offset, (T *)res);
    }
    DSC_CUDA_LAUNCHED();
}
template <typename T>
static int attention_t(cudaStream_t s, int64_t B, int64_t T_, int64_t C, int64_t H, const void *qkv, const void *out,
                       const void *lse, const void *dout, double drop_p, uint64_t seed, uint64_t offset, void *res,
                       void *res2, bool backward) {
    const int64_t hd = C / H;
    if (hd <= 32) return attention_r<T, 1>(s, B, T_, C, H, qkv, out, lse, dout, drop_p, seed, offset, res, res2, backward);
    if (hd <= 64) return attention_r<T, 2>(s, B, T_, C, H, qkv, out, lse, dout, drop_p, seed, offset, res, res2, backward);
    if constexpr (sizeof(typename dsc_acc<T>::type) == 4) {
        if (hd <= 128)
            return attention_r<T, 4>(s, B, T_, C, H, qkv, out, lse, dout, drop_p, seed, offset, res, res2, backward);
    }
    return (int)cudaErrorInvalidValue; /* hd > 128 (f64: hd > 64) is not supported yet */
}

static int attention_simple(void *stream, dsc_dtype_t dt, int64_t B, int64_t T, int64_t C, int64_t H,
                            const void *qkv, const void *out, const void *lse, const void *dout, double drop_p,
                            uint64_t seed, uint64_t offset, void *res, void *res2, bool backward) {
    return DSC_DISPATCH(dt, attention_t, DSC_STREAM(stream), B, T, C, H, qkv, out, lse, dout, drop_p, seed, offset,
                        res, res2, backward);
}

extern "C" size_t dsc_cuda_attention_workspace_bytes(const dsc_cuda_att_cfg_t *cfg, int64_t B, int64_t T,
                                                     int64_t C, int64_t H) {
    return dsc__attention_tc_workspace_bytes(cfg, B, T, C, H);
}

extern "C" int dsc_cuda_attention_cfg(void *stream, const dsc_cuda_att_cfg_t *cfg, dsc_dtype_t dt, int64_t B,
                                      int64_t T, int64_t C, int64_t H, const void *qkv, double drop_p, uint64_t seed,
                                      uint64_t offset, void *out, void *lse) {
    if (B <= 0 || T <= 0 || C <= 0 || H <= 0 || C % H) return B == 0 || T == 0 ? 0 : (int)cudaErrorInvalidValue;
    if (!dsc__attention_tc_cfg_valid(cfg)) return (int)cudaErrorInvalidValue;
    const void *ptrs[] = {qkv, out}; /* lse needs no more than float alignment */
    if (dsc__attention_tc_applies(dt, B, T, C, H, ptrs, 2))
        return dsc__attention_tc(DSC_STREAM(stream), cfg, dt, B, T, C, H, qkv, NULL, NULL, NULL, drop_p, seed, offset,
                                 out, lse, NULL, 0, false);
    return attention_simple(stream, dt, B, T, C, H, qkv, NULL, NULL, NULL, drop_p, seed, offset, out, lse, false);
}

extern "C" int dsc_cuda_attention_backward_cfg(void *stream, const dsc_cuda_att_cfg_t *cfg, dsc_dtype_t dt, int64_t B,
                                               int64_t T, int64_t C, int64_t H, const void *qkv, const void *out,
                                               const void *lse, const void *dout, double drop_p, uint64_t seed,
                                               uint64_t offset, void *dqkv, void *ws, size_t ws_bytes) {
    if (B <= 0 || T <= 0 || C <= 0 || H <= 0 || C % H) return B == 0 || T == 0 ? 0 : (int)cudaErrorInvalidValue;
    if (!dsc__attention_tc_cfg_valid(cfg)) return (int)cudaErrorInvalidValue;
    const void *ptrs[] = {qkv, out, dout, dqkv};
    if (dsc__attention_tc_applies(dt, B, T, C, H, ptrs, 4))
        return dsc__attention_tc(DSC_STREAM(stream), cfg, dt, B, T, C, H, qkv, out, lse, dout, drop_p, seed, offset,
                                 dqkv, NULL, ws, ws_bytes, true);
    return attention_simple(stream, dt, B, T, C, H, qkv, out, lse, dout, drop_p, seed, offset, dqkv, NULL, true);
}

extern "C" int dsc_cuda_attention(void *stream, dsc_dtype_t dt, int64_t B, int64_t T, int64_t C, int64_t H,
                                  const void *qkv, double drop_p, uint64_t seed, uint64_t offset, void *out,
                                  void *lse) {
    return dsc_cuda_attention_cfg(stream, NULL, dt, B, T, C, H, qkv, drop_p, seed, offset, out, lse);
}

extern "C" int dsc_cuda_attention_backward(void *stream, dsc_dtype_t dt, int64_t B, int64_t T, int64_t C, int64_t H,
                                           const void *qkv, const void *out, const void *lse, const void *dout,
                                           double drop_p, uint64_t seed, uint64_t offset, void *dqkv) {
    return dsc_cuda_attention_backward_cfg(stream, NULL, dt, B, T, C, H, qkv, out, lse, dout, drop_p, seed, offset,
                                           dqkv, NULL, 0);
}

/* The simple kernels above for every dtype and head size (comparison in tests and the bench). */
extern "C" int dsc_cuda_attention_simple(void *stream, dsc_dtype_t dt, int64_t B, int64_t T, int64_t C, int64_t H,
                                         const void *qkv, double drop_p, uint64_t seed, uint64_t offset, void *out,
                                         void *lse) {
    if (B <= 0 || T <= 0 || C <= 0 || H <= 0 || C % H) return B == 0 || T == 0 ? 0 : (int)cudaErrorInvalidValue;
    return attention_simple(stream, dt, B, T, C, H, qkv, NULL, NULL, NULL, drop_p, seed, offset, out, lse, false);
}

extern "C" int dsc_cuda_attention_backward_simple(void *stream, dsc_dtype_t dt, int64_t B, int64_t T, int64_t C,
                                                  int64_t H, const void *qkv, const void *out, const void *lse,
                                                  const void *dout, double drop_p, uint64_t seed, uint64_t offset,
                                                  void *dqkv) {
    if (B <= 0 || T <= 0 || C <= 0 || H <= 0 || C % H) return B == 0 || T == 0 ? 0 : (int)cudaErrorInvalidValue;
    return attention_simple(stream, dt, B, T, C, H, qkv, out, lse, dout, drop_p, seed, offset, dqkv, NULL, true);
}

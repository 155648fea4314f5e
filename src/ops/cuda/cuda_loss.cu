/* Fused cross-entropy on CUDA (the agreed contract): no [rows, V] probabilities are stored.
 * Row r of the logits starts at r * ld (a padded row stride: the LM head's gemm writes rows of
 * a multiple of 64 columns, src/ops/op_lm_head.c); only columns [0, V) are read or written.
 * Forward: one block per row and one pass over it (online log-sum-exp): each thread keeps a
 * running max m and s = sum exp(x - m) over its share in index order, rescaling s (in double)
 * when m grows; the exps of a 16-byte group (at most 8) are added in f32 (f64 for f64) and then
 * to s in double; the threads' (m, s) pairs are merged in a fixed tree (warp butterflies, then
 * warp 0 over the warps): lse = M + log(S), loss = lse - x[target]. Against the CPU's two passes
 * (max, then the double sum of exp(x - max)) only the roundings of the exps and the group sums
 * differ: a relative error of the sum of a few f32 ulps (the tests' 1e-5 holds with room).
 * (The two-pass kernel read each 50,257-wide row twice: 4.2 ms per 65,536 rows on an H100, 52%
 * of the copy bandwidth.)
 * Backward: one block per row as well (no division per element), value = g * (exp(x - lse) -
 * onehot), g read from device memory; in place allowed (each element is read and written by
 * the same thread).
 * Both at once (cross_entropy_with_grad): the forward's block goes on, once lse is known, with
 * the backward's loop over the same row, which is still in L2 (one DRAM read of the logits
 * instead of two); each thread takes the same elements in both loops, so the in-place write
 * is safe, and the values are the two kernels' bits (the same lse, g and formula). */
#include <math.h>

#include "ops/cuda/cuda_common.cuh"

__device__ static inline float cexp(float x) { return expf(x); }
__device__ static inline double cexp(double x) { return exp(x); }

/* VEC: each thread's elements in 16-byte groups (8 bf16/f16, 4 f32, 2 f64), for rows whose
 * start is 16-byte aligned (the padded LM head's: 50304 bf16 = 6288 groups): one access per
 * group instead of one per element (element by element the kernels took 10.6 and 10.8 ms per
 * 65,536 x 50,257 call on an H100, about 3x the memory time). A thread takes groups g = tid,
 * tid + blockDim, ..., then the tail (V mod the group size) element by element; without VEC
 * there are no groups and every element goes through that loop. The double sum is reduced
 * in one fixed tree either way. */
template <typename T> struct alignas(16) ce_v16_t { T v[16 / sizeof(T)]; };

/* Online log-sum-exp state of a thread: m its running max, s = sum exp(x - m) in double. */
template <typename A> struct ce_ms {
    A m;
    double s;
};
/* (m1, s1) + (m2, s2) rescaled to the larger max (in double); -inf maxes hold nothing. */
template <typename A> __device__ static inline ce_ms<A> ce_merge(ce_ms<A> a, ce_ms<A> b) {
    const A m = a.m > b.m ? a.m : b.m;
    if (m == -INFINITY) return a;
    const double sa = a.m == -INFINITY ? 0.0 : a.s * exp((double)a.m - (double)m);
    const double sb = b.m == -INFINITY ? 0.0 : b.s * exp((double)b.m - (double)m);
    return ce_ms<A>{m, sa + sb};
}
/* adds K values (a 16-byte group, or one element) to the state: their max first (the sum is
 * rescaled when it grows), then their exps summed in the compute type and added in double */
template <typename A, int K> __device__ static inline void ce_add(ce_ms<A> &st_, const A (&v)[K]) {
    A gm = v[0];
    for (int k = 1; k < K; k++) gm = v[k] > gm ? v[k] : gm;
    if (gm > st_.m) {
        st_.s = st_.m == -INFINITY ? 0.0 : st_.s * exp((double)st_.m - (double)gm);
        st_.m = gm;
    }
    A e = 0;
    for (int k = 0; k < K; k++) e += cexp(v[k] - st_.m);
    st_.s += (double)e;
}
#define CE_AHEAD 4 /* 16-byte groups loaded before they are added */

/* One row of the backward: d[j] (+)= g * (exp(x[j] - l) - (j == t)), 0 for an ignored row;
 * thread tid takes groups tid, tid + blockDim, ... (as the forward) and then the tail. */
template <typename T, bool VEC>
__device__ static inline void ce_row_grad(int64_t V, const T *x, T *d, int32_t t, int32_t ignore_index,
                                          typename dsc_acc<T>::type g, typename dsc_acc<T>::type l, bool accumulate) {
    typedef typename dsc_acc<T>::type A;
    constexpr int N = 16 / sizeof(T);
    const int64_t nv = VEC ? V / N : 0;
    for (int64_t q = threadIdx.x; q < nv; q += blockDim.x) {
        const ce_v16_t<T> xq = ((const ce_v16_t<T> *)x)[q];
        ce_v16_t<T> dq;
        if (accumulate) dq = ((const ce_v16_t<T> *)d)[q];
        for (int k = 0; k < N; k++) {
            const int64_t j = q * N + k;
            A v = 0;
            if (t != ignore_index) v = g * (cexp(ld(xq.v, k) - l) - (j == t ? (A)1 : (A)0));
            st(dq.v, k, accumulate ? ld(dq.v, k) + v : v);
        }
        ((ce_v16_t<T> *)d)[q] = dq;
    }
    for (int64_t j = nv * N + threadIdx.x; j < V; j += blockDim.x) {
        A v = 0;
        if (t != ignore_index) v = g * (cexp(ld(x, j) - l) - (j == t ? (A)1 : (A)0));
        st(d, j, accumulate ? ld(d, j) + v : v);
    }
}

/* GRAD: dlogits from grad_scale as well, in the same block (cross_entropy_with_grad). */
template <typename T, bool VEC, bool GRAD>
__global__ void k_ce_fwd(int64_t V, int64_t row_stride, const T *logits, const int32_t *targets, int32_t ignore_index,
                           typename dsc_acc<T>::type *losses, typename dsc_acc<T>::type *lse,
                           const typename dsc_acc<T>::type *grad_scale, T *dlogits) {
    typedef typename dsc_acc<T>::type A;
    constexpr int N = 16 / sizeof(T);
    __shared__ A shm[32];
    __shared__ double shs[32];
    __shared__ A sh_lse;
    const int64_t r = blockIdx.x;
    const int32_t t = targets[r];
    if (t == ignore_index) {
        if (threadIdx.x == 0) losses[r] = lse[r] = 0;
        if (GRAD) ce_row_grad<T, VEC>(V, logits + r * row_stride, dlogits + r * row_stride, t, ignore_index, 0, 0, false);
        return;
    }
    const T *x = logits + r * row_stride;
    const ce_v16_t<T> *xv = (const ce_v16_t<T> *)x;
    const int64_t nv = VEC ? V / N : 0, step = blockDim.x;
    ce_ms<A> acc = {(A)-INFINITY, 0.0};
    int64_t g = threadIdx.x;
    for (; g + (CE_AHEAD - 1) * step < nv; g += CE_AHEAD * step) {
        ce_v16_t<T> q[CE_AHEAD];
DSC_UNROLL
        for (int u = 0; u < CE_AHEAD; u++) q[u] = xv[g + u * step];
DSC_UNROLL
        for (int u = 0; u < CE_AHEAD; u++) {
            A v[N];
            for (int k = 0; k < N; k++) v[k] = ld(q[u].v, k);
            ce_add<A, N>(acc, v);
        }
    }
    for (; g < nv; g += step) {
        const ce_v16_t<T> q = xv[g];
        A v[N];
        for (int k = 0; k < N; k++) v[k] = ld(q.v, k);
        ce_add<A, N>(acc, v);
    }
    for (int64_t j = nv * N + threadIdx.x; j < V; j += step) {
        const A v[1] = {ld(x, j)};
        ce_add<A, 1>(acc, v);
    }
    /* a fixed tree: the warp's butterfly, then warp 0 over the warps in order */
    for (int o = 16; o > 0; o >>= 1) {
        const ce_ms<A> other = {__shfl_xor_sync(0xffffffffu, acc.m, o), __shfl_xor_sync(0xffffffffu, acc.s, o)};
        acc = ce_merge(acc, other);
    }
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
    if (lane == 0) {
        shm[warp] = acc.m;
        shs[warp] = acc.s;
    }
    __syncthreads();
    if (warp == 0) {
        acc = lane < nw ? ce_ms<A>{shm[lane], shs[lane]} : ce_ms<A>{(A)-INFINITY, 0.0};
        for (int o = 16; o > 0; o >>= 1) {
            const ce_ms<A> other = {__shfl_xor_sync(0xffffffffu, acc.m, o), __shfl_xor_sync(0xffffffffu, acc.s, o)};
            acc = ce_merge(acc, other);
        }
        if (lane == 0) {
            const double l = (double)acc.m + log(acc.s);
            lse[r] = (A)l;
            losses[r] = (A)(l - (double)ld(x, t));
            if (GRAD) sh_lse = (A)l;
        }
    }
    if (GRAD) {
        __syncthreads(); /* lse known; x[t] read */
        ce_row_grad<T, VEC>(V, x, dlogits + r * row_stride, t, ignore_index, *grad_scale, sh_lse, false);
    }
}

template <typename T, bool VEC>
__global__ void k_ce_bwd(int64_t V, int64_t row_stride, const T *logits, const typename dsc_acc<T>::type *lse,
                           const int32_t *targets, int32_t ignore_index, const typename dsc_acc<T>::type *grad_scale,
                           T *dlogits, bool accumulate) {
    const int64_t r = blockIdx.x;
    ce_row_grad<T, VEC>(V, logits + r * row_stride, dlogits + r * row_stride, targets[r], ignore_index, *grad_scale,
                        lse[r], accumulate);
}

template <typename T>
static int ce_t(cudaStream_t s, int64_t n_rows, int64_t V, int64_t row_stride, const void *logits, const int32_t *targets,
                int32_t ignore_index, void *losses, void *lse, const void *grad_scale, void *dlogits, bool accumulate,
                int mode) { /* mode 0: forward, 1: backward, 2: both (dlogits from the forward's block) */
    typedef typename dsc_acc<T>::type A;
    const bool vec = ((uintptr_t)logits & 15) == 0 && (!dlogits || ((uintptr_t)dlogits & 15) == 0) &&
                     (row_stride * (int64_t)sizeof(T)) % 16 == 0;
    const T *x = (const T *)logits;
    const A *gsc = (const A *)grad_scale;
    if (mode == 0) {
        if (vec) DSC_LAUNCH((unsigned)n_rows, 512, s, k_ce_fwd<T, true, false>)(V, row_stride, x, targets, ignore_index, (A *)losses, (A *)lse, gsc, (T *)dlogits);
        else DSC_LAUNCH((unsigned)n_rows, 512, s, k_ce_fwd<T, false, false>)(V, row_stride, x, targets, ignore_index, (A *)losses, (A *)lse, gsc, (T *)dlogits);
    } else if (mode == 2) {
        if (vec) DSC_LAUNCH((unsigned)n_rows, 512, s, k_ce_fwd<T, true, true>)(V, row_stride, x, targets, ignore_index, (A *)losses, (A *)lse, gsc, (T *)dlogits);
        else DSC_LAUNCH((unsigned)n_rows, 512, s, k_ce_fwd<T, false, true>)(V, row_stride, x, targets, ignore_index, (A *)losses, (A *)lse, gsc, (T *)dlogits);
    } else {
        const A *l = (const A *)lse, *gs = (const A *)grad_scale;
        if (vec)
            DSC_LAUNCH_FLAT((unsigned)n_rows, 512, s, k_ce_bwd<T, true>)(V, row_stride, x, l, targets, ignore_index, gs,
                                                                        (T *)dlogits, accumulate);
        else
            DSC_LAUNCH_FLAT((unsigned)n_rows, 512, s, k_ce_bwd<T, false>)(V, row_stride, x, l, targets, ignore_index, gs,
                                                                         (T *)dlogits, accumulate);
    }
    DSC_CUDA_LAUNCHED();
}

extern "C" int dsc_cuda_cross_entropy(void *stream, dsc_dtype_t dt, int64_t n_rows, int64_t V, int64_t row_stride,
                                      const void *logits, const int32_t *targets, int32_t ignore_index, void *losses,
                                      void *lse) {
    if (n_rows <= 0 || V <= 0) return 0;
    if (row_stride < V) return (int)cudaErrorInvalidValue;
    return DSC_DISPATCH(dt, ce_t, DSC_STREAM(stream), n_rows, V, row_stride, logits, targets, ignore_index, losses, lse, NULL,
                        NULL, false, 0);
}

extern "C" int dsc_cuda_cross_entropy_backward(void *stream, dsc_dtype_t dt, int64_t n_rows, int64_t V, int64_t row_stride,
                                               const void *logits, const void *lse, const int32_t *targets,
                                               int32_t ignore_index, const void *grad_scale, void *dlogits,
                                               bool accumulate) {
    if (n_rows <= 0 || V <= 0) return 0;
    if (row_stride < V) return (int)cudaErrorInvalidValue;
    return DSC_DISPATCH(dt, ce_t, DSC_STREAM(stream), n_rows, V, row_stride, logits, targets, ignore_index, NULL, (void *)lse,
                        grad_scale, dlogits, accumulate, 1);
}

extern "C" int dsc_cuda_cross_entropy_with_grad(void *stream, dsc_dtype_t dt, int64_t n_rows, int64_t V,
                                                int64_t row_stride, const void *logits, const int32_t *targets,
                                                int32_t ignore_index, void *losses, void *lse, const void *grad_scale,
                                                void *dlogits) {
    if (n_rows <= 0 || V <= 0) return 0;
    if (row_stride < V) return (int)cudaErrorInvalidValue;
    return DSC_DISPATCH(dt, ce_t, DSC_STREAM(stream), n_rows, V, row_stride, logits, targets, ignore_index, losses, lse,
                        grad_scale, dlogits, false, 2);
}

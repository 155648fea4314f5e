/* Fused cross-entropy on CUDA (the agreed contract): no [rows, V] probabilities are stored.
 * Row r of the logits starts at r * ld (a padded row stride: the LM head's gemm writes rows of
 * a multiple of 64 columns, src/ops/op_lm_head.c); only columns [0, V) are read or written.
 * Forward: one block per row, the row max, then sum exp(x - max) in double (each thread its
 * share in index order, then a fixed tree): lse = max + log(sum), loss = lse - x[target].
 * Backward: one block per row as well (no division per element), value = g * (exp(x - lse) -
 * onehot), g read from device memory; in place allowed (each element is read and written by
 * the same thread). */
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

template <typename T, bool VEC>
__global__ void k_ce_fwd(int64_t V, int64_t row_stride, const T *logits, const int32_t *targets, int32_t ignore_index,
                           typename dsc_acc<T>::type *losses, typename dsc_acc<T>::type *lse) {
    typedef typename dsc_acc<T>::type A;
    constexpr int N = 16 / sizeof(T);
    __shared__ A shm[32];
    __shared__ double shd[32];
    const int64_t r = blockIdx.x;
    const int32_t t = targets[r];
    if (t == ignore_index) {
        if (threadIdx.x == 0) losses[r] = lse[r] = 0;
        return;
    }
    const T *x = logits + r * row_stride;
    const ce_v16_t<T> *xv = (const ce_v16_t<T> *)x;
    const int64_t nv = VEC ? V / N : 0;
    A mx = -INFINITY;
    for (int64_t g = threadIdx.x; g < nv; g += blockDim.x) {
        const ce_v16_t<T> q = xv[g];
        for (int k = 0; k < N; k++) {
            const A v = ld(q.v, k);
            mx = v > mx ? v : mx;
        }
    }
    for (int64_t j = nv * N + threadIdx.x; j < V; j += blockDim.x) {
        const A v = ld(x, j);
        mx = v > mx ? v : mx;
    }
    mx = dsc_block_max(mx, shm);
    double sum = 0;
    for (int64_t g = threadIdx.x; g < nv; g += blockDim.x) {
        const ce_v16_t<T> q = xv[g];
        for (int k = 0; k < N; k++) sum += (double)cexp(ld(q.v, k) - mx);
    }
    for (int64_t j = nv * N + threadIdx.x; j < V; j += blockDim.x) sum += (double)cexp(ld(x, j) - mx);
    sum = dsc_block_sum(sum, shd);
    if (threadIdx.x == 0) {
        const double l = (double)mx + log(sum);
        lse[r] = (A)l;
        losses[r] = (A)(l - (double)ld(x, t));
    }
}

template <typename T, bool VEC>
__global__ void k_ce_bwd(int64_t V, int64_t row_stride, const T *logits, const typename dsc_acc<T>::type *lse,
                           const int32_t *targets, int32_t ignore_index, const typename dsc_acc<T>::type *grad_scale,
                           T *dlogits, bool accumulate) {
    typedef typename dsc_acc<T>::type A;
    constexpr int N = 16 / sizeof(T);
    const int64_t r = blockIdx.x;
    const int32_t t = targets[r];
    const A g = *grad_scale, l = lse[r];
    const T *x = logits + r * row_stride;
    T *d = dlogits + r * row_stride;
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

template <typename T>
static int ce_t(cudaStream_t s, int64_t n_rows, int64_t V, int64_t row_stride, const void *logits, const int32_t *targets,
                int32_t ignore_index, void *losses, void *lse, const void *grad_scale, void *dlogits, bool accumulate,
                bool backward) {
    typedef typename dsc_acc<T>::type A;
    const bool vec = ((uintptr_t)logits & 15) == 0 && (!dlogits || ((uintptr_t)dlogits & 15) == 0) &&
                     (row_stride * (int64_t)sizeof(T)) % 16 == 0;
    const T *x = (const T *)logits;
    if (!backward) {
        if (vec) DSC_LAUNCH((unsigned)n_rows, 512, s, k_ce_fwd<T, true>)(V, row_stride, x, targets, ignore_index, (A *)losses, (A *)lse);
        else DSC_LAUNCH((unsigned)n_rows, 512, s, k_ce_fwd<T, false>)(V, row_stride, x, targets, ignore_index, (A *)losses, (A *)lse);
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
                        NULL, false, false);
}

extern "C" int dsc_cuda_cross_entropy_backward(void *stream, dsc_dtype_t dt, int64_t n_rows, int64_t V, int64_t row_stride,
                                               const void *logits, const void *lse, const int32_t *targets,
                                               int32_t ignore_index, const void *grad_scale, void *dlogits,
                                               bool accumulate) {
    if (n_rows <= 0 || V <= 0) return 0;
    if (row_stride < V) return (int)cudaErrorInvalidValue;
    return DSC_DISPATCH(dt, ce_t, DSC_STREAM(stream), n_rows, V, row_stride, logits, targets, ignore_index, NULL, (void *)lse,
                        grad_scale, dlogits, accumulate, true);
}

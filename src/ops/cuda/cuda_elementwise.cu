/* Element-wise CUDA kernels: binary, axpy, mul_acc, scale, fill, unary (+ backward),
 * transpose, conversions and Philox dropout. Built with -fmad=false (cmake/cuda.cmake), so
 * each expression rounds after every operation as the CPU's does: f32 results match the CPU
 * kernels bit for bit where the CPU uses the same operations (GELU through the same
 * polynomial exp; tanh differs by at most an ulp of the libraries' tanhf). */
#include "core/philox.h"
#include "ops/cuda/cuda_common.cuh"

#define GELU_C 0.79788456080286535587989211986876
#define GELU_A 0.044715

/* cpu_basic.c's expf_vec: the clamp, the 2^n split and the degree-6 polynomial. */
__device__ static inline float expf_vec(float x) {
    x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
    const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    const float r = (x - n * 0.693145751953125f) - n * 1.42860682030941723e-6f;
    float p = 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23;
    return p * __int_as_float(bits);
}
__device__ static inline float gelu_exp(float x) { return expf_vec(x); }
__device__ static inline double gelu_exp(double x) { return exp(x); }
__device__ static inline float dtanh(float x) { return tanhf(x); }
__device__ static inline double dtanh(double x) { return tanh(x); }

/* 16 bytes of T (8 bf16/f16, 4 f32, 2 f64): the element-wise kernels below move their data in
 * such groups when every pointer is 16-byte aligned (the vector forms, `_v`), with the same
 * per-element arithmetic as the scalar forms, which take the tail. One 16-byte access per
 * thread instead of 2-byte ones: GELU and its backward on 201M bf16 values ran at about half
 * the copy bandwidth with the scalar forms (H100 profile). */
template <typename T> struct alignas(16) v16_t { T v[16 / sizeof(T)]; };
static inline bool al16(const void *p) { return !p || ((uintptr_t)p & 15) == 0; }
template <typename T> static inline int64_t vec_count(int64_t n) { return n / (int64_t)(16 / sizeof(T)); }

template <typename T>
__global__ void k_binary(int op, int64_t n_a, const T *a, int64_t n_b, const T *b, T *out) {
    typedef typename dsc_acc<T>::type A;
    DSC_GRID_STRIDE(i, n_a) {
        const A x = ld(a, i), y = ld(b, n_b == n_a ? i : i % n_b);
        st(out, i, op == DSC_BINARY_ADD ? x + y : op == DSC_BINARY_SUB ? x - y : x * y);
    }
}
template <typename T>
__global__ void k_binary_v(int op, int64_t n_vec, const T *a, const T *b, T *out) {
    typedef typename dsc_acc<T>::type A;
    constexpr int N = 16 / sizeof(T);
    DSC_GRID_STRIDE(j, n_vec) {
        const v16_t<T> av = ((const v16_t<T> *)a)[j], bv = ((const v16_t<T> *)b)[j];
        v16_t<T> ov;
        for (int k = 0; k < N; k++) {
            const A x = ld(av.v, k), y = ld(bv.v, k);
            st(ov.v, k, op == DSC_BINARY_ADD ? x + y : op == DSC_BINARY_SUB ? x - y : x * y);
        }
        ((v16_t<T> *)out)[j] = ov;
    }
}
template <typename T> static int binary_t(cudaStream_t s, int op, int64_t n_a, const void *a, int64_t n_b, const void *b, void *out) {
    int64_t done = 0;
    if (n_b == n_a && al16(a) && al16(b) && al16(out) && vec_count<T>(n_a) > 0) {
        const int64_t nv = vec_count<T>(n_a);
        DSC_LAUNCH_FLAT(dsc_grid(nv, 256), 256, s, k_binary_v<T>)(op, nv, (const T *)a, (const T *)b, (T *)out);
        DSC_CUDA_CHECK(cudaGetLastError());
        done = nv * (int64_t)(16 / sizeof(T));
        if (done == n_a) return 0;
        DSC_LAUNCH_FLAT(dsc_grid(n_a - done, 256), 256, s, k_binary<T>)(op, n_a - done, (const T *)a + done, n_a - done,
                                                                      (const T *)b + done, (T *)out + done);
        DSC_CUDA_LAUNCHED();
    }
    DSC_LAUNCH_FLAT(dsc_grid(n_a, 256), 256, s, k_binary<T>)(op, n_a, (const T *)a, n_b, (const T *)b, (T *)out);
    DSC_CUDA_LAUNCHED();
}
extern "C" int dsc_cuda_binary(void *stream, dsc_dtype_t dt, dsc_binary_op_t op, int64_t n_a, const void *a,
                               int64_t n_b, const void *b, void *out) {
    if (n_a <= 0 || n_b <= 0) return 0;
    return DSC_DISPATCH(dt, binary_t, DSC_STREAM(stream), (int)op, n_a, a, n_b, b, out);
}

/* y += alpha * x * w[i % n_w] (w NULL: y += alpha * x). */
template <typename T>
__global__ void k_axpy(int64_t n, typename dsc_acc<T>::type alpha, const T *x, int64_t n_w, const T *w, T *y) {
    DSC_GRID_STRIDE(i, n) {
        typename dsc_acc<T>::type v = alpha * ld(x, i);
        if (w) v = v * ld(w, n_w == n ? i : i % n_w);
        st(y, i, ld(y, i) + v);
    }
}
template <typename T>
__global__ void k_axpy_v(int64_t n_vec, typename dsc_acc<T>::type alpha, const T *x, T *y) {
    constexpr int N = 16 / sizeof(T);
    DSC_GRID_STRIDE(j, n_vec) {
        const v16_t<T> xv = ((const v16_t<T> *)x)[j];
        v16_t<T> yv = ((const v16_t<T> *)y)[j];
        for (int k = 0; k < N; k++) st(yv.v, k, ld(yv.v, k) + alpha * ld(xv.v, k));
        ((v16_t<T> *)y)[j] = yv;
    }
}
template <typename T> static int axpy_t(cudaStream_t s, int64_t n, double alpha, const void *x, int64_t n_w, const void *w, void *y) {
    typedef typename dsc_acc<T>::type A;
    if (!w && al16(x) && al16(y) && vec_count<T>(n) > 0) {
        const int64_t nv = vec_count<T>(n), done = nv * (int64_t)(16 / sizeof(T));
        DSC_LAUNCH_FLAT(dsc_grid(nv, 256), 256, s, k_axpy_v<T>)(nv, (A)alpha, (const T *)x, (T *)y);
        DSC_CUDA_CHECK(cudaGetLastError());
        if (done == n) return 0;
        DSC_LAUNCH_FLAT(dsc_grid(n - done, 256), 256, s, k_axpy<T>)(n - done, (A)alpha, (const T *)x + done, n - done,
                                                                  (const T *)NULL, (T *)y + done);
        DSC_CUDA_LAUNCHED();
    }
    DSC_LAUNCH_FLAT(dsc_grid(n, 256), 256, s, k_axpy<T>)(n, (A)alpha, (const T *)x, n_w, (const T *)w, (T *)y);
    DSC_CUDA_LAUNCHED();
}
extern "C" int dsc_cuda_axpy(void *stream, dsc_dtype_t dt, int64_t n, double alpha, const void *x, void *y) {
    if (n <= 0) return 0;
    return DSC_DISPATCH(dt, axpy_t, DSC_STREAM(stream), n, alpha, x, n, NULL, y);
}
extern "C" int dsc_cuda_mul_acc(void *stream, dsc_dtype_t dt, int64_t n, double alpha, const void *x, int64_t n_w,
                                const void *w, void *y) {
    if (n <= 0 || n_w <= 0) return 0;
    return DSC_DISPATCH(dt, axpy_t, DSC_STREAM(stream), n, alpha, x, n_w, w, y);
}

template <typename T>
__global__ void k_scale_fill(int64_t n, typename dsc_acc<T>::type s, const T *x, T *y) {
    DSC_GRID_STRIDE(i, n) st(y, i, x ? s * ld(x, i) : s);
}
template <typename T> static int scale_fill_t(cudaStream_t s, int64_t n, double v, const void *x, void *y) {
    DSC_LAUNCH_FLAT(dsc_grid(n, 256), 256, s, k_scale_fill<T>)(n, (typename dsc_acc<T>::type)v, (const T *)x, (T *)y);
    DSC_CUDA_LAUNCHED();
}
extern "C" int dsc_cuda_scale(void *stream, dsc_dtype_t dt, int64_t n, double s, const void *x, void *y) {
    if (n <= 0) return 0;
    return DSC_DISPATCH(dt, scale_fill_t, DSC_STREAM(stream), n, s, x, y);
}
extern "C" int dsc_cuda_fill(void *stream, dsc_dtype_t dt, int64_t n, double value, void *y) {
    if (n <= 0) return 0;
    return DSC_DISPATCH(dt, scale_fill_t, DSC_STREAM(stream), n, value, NULL, y);
}

template <typename A> __device__ static inline A unary_value(int op, A v) {
    if (op == DSC_UNARY_RELU) return v > 0 ? v : (A)0;
    if (op == DSC_UNARY_GELU) return v / ((A)1 + gelu_exp((A)(-2 * GELU_C) * (v + (A)GELU_A * v * v * v)));
    return dtanh(v);
}
/* d(op)/dx at x = v (y = op(v) when given: ReLU and tanh may use it) times g; *skip: ReLU's
 * inactive elements, whose gradient is left untouched (not + 0: -0 stays -0). */
template <typename A> __device__ static inline A unary_grad(int op, bool has_x, A v, A yv, A g, bool *skip) {
    *skip = false;
    if (op == DSC_UNARY_RELU) {
        const A u = has_x ? v : yv;
        if (!(u > 0)) *skip = true;
        return g;
    }
    if (op == DSC_UNARY_GELU) {
        const A s = (A)1 / ((A)1 + gelu_exp((A)(-2 * GELU_C) * (v + (A)GELU_A * v * v * v)));
        const A dd = s + v * s * ((A)1 - s) * (A)(2 * GELU_C) * ((A)1 + (A)(3 * GELU_A) * v * v);
        return dd * g;
    }
    return ((A)1 - yv * yv) * g; /* tanh: yv = tanh(x) */
}

template <typename T>
__global__ void k_unary(int op, int64_t n, const T *x, T *y) {
    DSC_GRID_STRIDE(i, n) st(y, i, unary_value(op, ld(x, i)));
}
template <typename T>
__global__ void k_unary_v(int op, int64_t n_vec, const T *x, T *y) {
    constexpr int N = 16 / sizeof(T);
    DSC_GRID_STRIDE(j, n_vec) {
        const v16_t<T> xv = ((const v16_t<T> *)x)[j];
        v16_t<T> yv;
        for (int k = 0; k < N; k++) st(yv.v, k, unary_value(op, ld(xv.v, k)));
        ((v16_t<T> *)y)[j] = yv;
    }
}
template <typename T>
__global__ void k_unary_backward(int op, int64_t n, const T *x, const T *y, const T *dy, T *dx) {
    typedef typename dsc_acc<T>::type A;
    DSC_GRID_STRIDE(i, n) {
        const A v = x ? ld(x, i) : (A)0;
        const A yv = y ? ld(y, i) : (op == DSC_UNARY_TANH ? dtanh(v) : (A)0);
        bool skip;
        const A d = unary_grad(op, x != NULL, v, yv, ld(dy, i), &skip);
        if (!skip) st(dx, i, ld(dx, i) + d);
    }
}
template <typename T>
__global__ void k_unary_backward_v(int op, int64_t n_vec, const T *x, const T *y, const T *dy, T *dx) {
    typedef typename dsc_acc<T>::type A;
    constexpr int N = 16 / sizeof(T);
    DSC_GRID_STRIDE(j, n_vec) {
        v16_t<T> xv, yv;
        if (x) xv = ((const v16_t<T> *)x)[j];
        if (y) yv = ((const v16_t<T> *)y)[j];
        const v16_t<T> gv = ((const v16_t<T> *)dy)[j];
        v16_t<T> dv = ((const v16_t<T> *)dx)[j];
        for (int k = 0; k < N; k++) {
            const A v = x ? ld(xv.v, k) : (A)0;
            const A yk = y ? ld(yv.v, k) : (op == DSC_UNARY_TANH ? dtanh(v) : (A)0);
            bool skip;
            const A d = unary_grad(op, x != NULL, v, yk, ld(gv.v, k), &skip);
            if (!skip) st(dv.v, k, ld(dv.v, k) + d);
        }
        ((v16_t<T> *)dx)[j] = dv;
    }
}
template <typename T> static int unary_t(cudaStream_t s, int op, int64_t n, const void *x, const void *y, const void *dy, void *out) {
    int64_t done = 0;
    if (al16(x) && al16(y) && al16(dy) && al16(out) && vec_count<T>(n) > 0) {
        const int64_t nv = vec_count<T>(n);
        if (dy)
            DSC_LAUNCH_FLAT(dsc_grid(nv, 256), 256, s, k_unary_backward_v<T>)(op, nv, (const T *)x, (const T *)y, (const T *)dy,
                                                                             (T *)out);
        else
            DSC_LAUNCH_FLAT(dsc_grid(nv, 256), 256, s, k_unary_v<T>)(op, nv, (const T *)x, (T *)out);
        DSC_CUDA_CHECK(cudaGetLastError());
        done = nv * (int64_t)(16 / sizeof(T));
        if (done == n) return 0;
    }
    const T *xt = x ? (const T *)x + done : NULL, *yt = y ? (const T *)y + done : NULL;
    if (dy)
        DSC_LAUNCH_FLAT(dsc_grid(n - done, 256), 256, s, k_unary_backward<T>)(op, n - done, xt, yt, (const T *)dy + done,
                                                                             (T *)out + done);
    else
        DSC_LAUNCH_FLAT(dsc_grid(n - done, 256), 256, s, k_unary<T>)(op, n - done, xt, (T *)out + done);
    DSC_CUDA_LAUNCHED();
}
extern "C" int dsc_cuda_unary(void *stream, dsc_dtype_t dt, dsc_unary_op_t op, int64_t n, const void *x, void *y) {
    if (n <= 0) return 0;
    return DSC_DISPATCH(dt, unary_t, DSC_STREAM(stream), (int)op, n, x, NULL, NULL, y);
}
extern "C" int dsc_cuda_unary_backward(void *stream, dsc_dtype_t dt, dsc_unary_op_t op, int64_t n, const void *x,
                                       const void *y, const void *dy, void *dx) {
    if (n <= 0) return 0;
    if (op == DSC_UNARY_GELU && !x) return (int)cudaErrorInvalidValue;
    return DSC_DISPATCH(dt, unary_t, DSC_STREAM(stream), (int)op, n, x, y, dy, dx);
}

/* d = d * gelu'(pre), in place: the fallback of the gemm's DGELU epilogue (cuda_fused.c). */
template <typename T> __global__ void k_gelu_grad_mul(int64_t n, const T *pre, T *d) {
    DSC_GRID_STRIDE(i, n) {
        bool skip;
        st(d, i, unary_grad(DSC_UNARY_GELU, true, ld(pre, i), ld(pre, i), ld(d, i), &skip));
    }
}
template <typename T> __global__ void k_gelu_grad_mul_v(int64_t n_vec, const T *pre, T *d) {
    typedef typename dsc_acc<T>::type A;
    constexpr int N = 16 / sizeof(T);
    DSC_GRID_STRIDE(j, n_vec) {
        const v16_t<T> pv = ((const v16_t<T> *)pre)[j];
        v16_t<T> dv = ((const v16_t<T> *)d)[j];
        for (int k = 0; k < N; k++) {
            bool skip;
            const A v = ld(pv.v, k);
            st(dv.v, k, unary_grad(DSC_UNARY_GELU, true, v, v, ld(dv.v, k), &skip));
        }
        ((v16_t<T> *)d)[j] = dv;
    }
}
template <typename T> static int gelu_grad_mul_t(cudaStream_t s, int64_t n, const void *pre, void *d) {
    int64_t done = 0;
    if (al16(pre) && al16(d) && vec_count<T>(n) > 0) {
        const int64_t nv = vec_count<T>(n);
        DSC_LAUNCH_FLAT(dsc_grid(nv, 256), 256, s, k_gelu_grad_mul_v<T>)(nv, (const T *)pre, (T *)d);
        DSC_CUDA_CHECK(cudaGetLastError());
        done = nv * (int64_t)(16 / sizeof(T));
        if (done == n) return 0;
    }
    DSC_LAUNCH_FLAT(dsc_grid(n - done, 256), 256, s, k_gelu_grad_mul<T>)(n - done, (const T *)pre + done, (T *)d + done);
    DSC_CUDA_LAUNCHED();
}
extern "C" int dsc_cuda_gelu_grad_mul(void *stream, dsc_dtype_t dt, int64_t n, const void *pre, void *d) {
    if (n <= 0) return 0;
    return DSC_DISPATCH(dt, gelu_grad_mul_t, DSC_STREAM(stream), n, pre, d);
}

/* x [outer, d0, mid, d1, inner] -> out [outer, d1, mid, d0, inner]; one thread per output. */
template <typename T>
__global__ void k_transpose(int64_t outer, int64_t d0, int64_t mid, int64_t d1, int64_t inner, const T *x, T *out,
                            bool acc) {
    const int64_t n = outer * d0 * mid * d1 * inner;
    DSC_GRID_STRIDE(i, n) {
        int64_t r = i;
        const int64_t k = r % inner; r /= inner;
        const int64_t j0 = r % d0; r /= d0;
        const int64_t m = r % mid; r /= mid;
        const int64_t j1 = r % d1; r /= d1;
        const int64_t o = r;
        const int64_t src = (((o * d0 + j0) * mid + m) * d1 + j1) * inner + k;
        st(out, i, acc ? ld(out, i) + ld(x, src) : ld(x, src));
    }
}
template <typename T> static int transpose_t(cudaStream_t s, int64_t outer, int64_t d0, int64_t mid, int64_t d1, int64_t inner, const void *x, void *out, bool acc) {
    const int64_t n = outer * d0 * mid * d1 * inner;
    DSC_LAUNCH_FLAT(dsc_grid(n, 256), 256, s, k_transpose<T>)(outer, d0, mid, d1, inner, (const T *)x, (T *)out, acc);
    DSC_CUDA_LAUNCHED();
}
extern "C" int dsc_cuda_transpose(void *stream, dsc_dtype_t dt, int64_t outer, int64_t d0, int64_t mid, int64_t d1,
                                  int64_t inner, const void *x, void *out, bool accumulate) {
    if (outer <= 0 || d0 <= 0 || mid <= 0 || d1 <= 0 || inner <= 0) return 0;
    return DSC_DISPATCH(dt, transpose_t, DSC_STREAM(stream), outer, d0, mid, d1, inner, x, out, accumulate);
}

/* Conversions: through f32 for 16-bit targets, as dtype.c's store(). */
template <typename D, typename S>
__global__ void k_convert(int64_t n, const S *src, D *dst) {
    DSC_GRID_STRIDE(i, n) {
        if (sizeof(D) == 2 && sizeof(S) == 8) st(dst, i, (float)((const double *)src)[i]);
        else st(dst, i, ld(src, i));
    }
}
template <typename S> static int convert_from(cudaStream_t s, void *dst, dsc_dtype_t ddt, const void *src, int64_t n) {
    const unsigned g = dsc_grid(n, 256);
    switch (ddt) {
    case DSC_F32: DSC_LAUNCH_FLAT(g, 256, s, k_convert<float, S>)(n, (const S *)src, (float *)dst); break;
    case DSC_F64: DSC_LAUNCH_FLAT(g, 256, s, k_convert<double, S>)(n, (const S *)src, (double *)dst); break;
    case DSC_BF16: DSC_LAUNCH_FLAT(g, 256, s, k_convert<dsc_bf16, S>)(n, (const S *)src, (dsc_bf16 *)dst); break;
    case DSC_F16: DSC_LAUNCH_FLAT(g, 256, s, k_convert<dsc_f16, S>)(n, (const S *)src, (dsc_f16 *)dst); break;
    default: return (int)cudaErrorInvalidValue;
    }
    DSC_CUDA_LAUNCHED();
}
extern "C" int dsc_cuda_convert(void *stream, void *dst, dsc_dtype_t dst_dt, const void *src, dsc_dtype_t src_dt,
                                int64_t n) {
    if (n <= 0) return 0;
    cudaStream_t s = DSC_STREAM(stream);
    switch (src_dt) {
    case DSC_F32: return convert_from<float>(s, dst, dst_dt, src, n);
    case DSC_F64: return convert_from<double>(s, dst, dst_dt, src, n);
    case DSC_BF16: return convert_from<dsc_bf16>(s, dst, dst_dt, src, n);
    case DSC_F16: return convert_from<dsc_f16>(s, dst, dst_dt, src, n);
    default: return (int)cudaErrorInvalidValue;
    }
}

/* Dropout (agreed contract): keep(i) = uniform(seed, offset + i) >= p; y = keep ? x * ks : 0,
 * backward dx += keep ? dy * ks : 0, ks = 1 / (1 - p) rounded to the compute type once (the CPU
 * kernel's arithmetic, so the results are its bits).
 * One Philox evaluation per element: simple; sharing one call across 4 lanes is for later. */
template <typename T>
__global__ void k_dropout(int64_t n, double p, uint64_t seed, uint64_t offset, const T *x, T *y, bool backward) {
    typedef typename dsc_acc<T>::type A;
    const A ks = (A)(1.0 / (1.0 - p));
    DSC_GRID_STRIDE(i, n) {
        const bool keep = (double)dsc_philox_uniform(seed, offset + (uint64_t)i) >= p;
        const A v = keep ? ld(x, i) * ks : (A)0;
        if (backward) st(y, i, ld(y, i) + v);
        else st(y, i, v);
    }
}
template <typename T> static int dropout_t(cudaStream_t s, int64_t n, double p, uint64_t seed, uint64_t offset, const void *x, void *y, bool bw) {
    DSC_LAUNCH_FLAT(dsc_grid(n, 256), 256, s, k_dropout<T>)(n, p, seed, offset, (const T *)x, (T *)y, bw);
    DSC_CUDA_LAUNCHED();
}
extern "C" int dsc_cuda_dropout(void *stream, dsc_dtype_t dt, int64_t n, double p, uint64_t seed, uint64_t offset,
                                const void *x, void *y) {
    if (n <= 0) return 0;
    return DSC_DISPATCH(dt, dropout_t, DSC_STREAM(stream), n, p, seed, offset, x, y, false);
}
extern "C" int dsc_cuda_dropout_backward(void *stream, dsc_dtype_t dt, int64_t n, double p, uint64_t seed,
                                         uint64_t offset, const void *dy, void *dx) {
    if (n <= 0) return 0;
    return DSC_DISPATCH(dt, dropout_t, DSC_STREAM(stream), n, p, seed, offset, dy, dx, true);
}

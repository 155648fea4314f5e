/* Row and column reductions and the row-wise network kernels on CUDA: sum_rows(_mul)_acc,
 * sum, softmax (+ backward), layer norm (+ backward); the embedding is in cuda_embedding.cu.
 *
 * Determinism: every sum has one fixed order (a thread's share in index order, then a fixed
 * tree), independent of scheduling, so repeated runs give the same bits; no atomics. Sums are
 * in double where the CPU kernels sum in double. */
#include "ops/cuda/cuda_common.cuh"
#include "ops/cuda/cuda_layernorm.cuh"

/* layer norm statistics: the data type, f32 for 16-bit data */
template <typename T> struct stat_t { typedef T type; };
template <> struct stat_t<dsc_bf16> { typedef float type; };
template <> struct stat_t<dsc_f16> { typedef float type; };

#define COLS_X 32 /* columns per block of the column reductions */
#define ROWS_Y 16 /* row groups per block of the column reductions */

/* y[j] += alpha * sum_r x[r, j] (* w[r, j]): thread (tx, ty) sums rows ty, ty + ROWS_Y, ... of
 * column j in double; the ROWS_Y partials are added in ty order. */
template <typename T>
__global__ void k_sum_rows(int64_t n_rows, int64_t n_cols, double alpha, const T *x, const T *w, T *y) {
    __shared__ double part[ROWS_Y][COLS_X + 1];
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int64_t j = (int64_t)blockIdx.x * COLS_X + tx;
    double acc = 0;
    if (j < n_cols)
        for (int64_t r = ty; r < n_rows; r += ROWS_Y) {
            const double v = (double)ld(x, r * n_cols + j);
            acc += w ? v * (double)ld(w, r * n_cols + j) : v;
        }
    part[ty][tx] = acc;
    __syncthreads();
    if (ty == 0 && j < n_cols) {
        double s = 0;
        for (int k = 0; k < ROWS_Y; k++) s += part[k][tx];
        st(y, j, (typename dsc_acc<T>::type)((double)ld(y, j) + alpha * s));
    }
}
template <typename T> static int sum_rows_t(cudaStream_t s, int64_t n_rows, int64_t n_cols, double alpha, const void *x, const void *w, void *y) {
    dim3 block(COLS_X, ROWS_Y), grid((unsigned)((n_cols + COLS_X - 1) / COLS_X));
    DSC_LAUNCH(grid, block, s, k_sum_rows<T>)(n_rows, n_cols, alpha, (const T *)x, (const T *)w, (T *)y);
    DSC_CUDA_LAUNCHED();
}
/* ---- two-pass column sums (the _ws entries): many rows, few columns ----------------------
 * One block per (32 columns, COL_CHUNK rows) writes the chunk's column sums (double, the
 * one-pass kernel's order within the chunk) to a workspace; a second kernel (k_col_finish)
 * adds each column's chunks in a fixed order. A fixed order again (no atomics), and GPT's bias and norm
 * gradients (65,536 rows x 768 columns) get 6,144 blocks instead of 24. */
#define COL_CHUNK DSC_CUDA_COL_CHUNK

static inline int64_t col_chunks(int64_t n_rows) { return (n_rows + COL_CHUNK - 1) / COL_CHUNK; }

extern "C" size_t dsc_cuda_col_sums_workspace_bytes(int64_t n_rows, int64_t n_cols) {
    if (n_rows <= 0 || n_cols <= 0) return 0;
    return (size_t)col_chunks(n_rows) * (size_t)n_cols * sizeof(double);
}

/* MODE 0: x; 1: x * w; 2: layer norm (part0: dy * xhat, part1: dy; x = dy, w = x). */
template <typename T, int MODE>
__global__ void k_col_part(int64_t n_rows, int64_t n_cols, const T *x, const T *w,
                           const typename stat_t<T>::type *mean, const typename stat_t<T>::type *rstd, double *part0,
                           double *part1) {
    typedef typename dsc_acc<T>::type A;
    __shared__ double p0[ROWS_Y][COLS_X + 1], p1[ROWS_Y][COLS_X + 1];
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int64_t j = (int64_t)blockIdx.x * COLS_X + tx, c = blockIdx.y;
    const int64_t r_end = (c + 1) * COL_CHUNK < n_rows ? (c + 1) * COL_CHUNK : n_rows;
    double a0 = 0, a1 = 0;
    if (j < n_cols)
        for (int64_t r = c * COL_CHUNK + ty; r < r_end; r += ROWS_Y) {
            if (MODE == 2) {
                const A g = ld(x, r * n_cols + j);
                a0 += (double)g * (double)((ld(w, r * n_cols + j) - (A)mean[r]) * (A)rstd[r]);
                a1 += (double)g;
            } else {
                const double v = (double)ld(x, r * n_cols + j);
                a0 += MODE == 1 ? v * (double)ld(w, r * n_cols + j) : v;
            }
        }
    p0[ty][tx] = a0;
    if (MODE == 2) p1[ty][tx] = a1;
    __syncthreads();
    if (ty == 0 && j < n_cols) {
        double s0 = 0, s1 = 0;
        for (int k = 0; k < ROWS_Y; k++) {
            s0 += p0[k][tx];
            if (MODE == 2) s1 += p1[k][tx];
        }
        part0[c * n_cols + j] = s0;
        if (MODE == 2) part1[c * n_cols + j] = s1;
    }
}
/* y[j] += the chunks' sums of column j: block (32 columns) x (COL_FIN_Y chunk lanes), lane ty
 * adds chunks ty, ty + COL_FIN_Y, ... in order, then the COL_FIN_Y partials in ty order; rounded
 * as the one-pass kernels do (sum_rows: once from double with alpha; layer norm: the sum in the
 * compute type, then added). (One thread per column over all 256 chunks of 65,536 rows gave 3
 * blocks for 768 columns, a long serial chain per thread.) */
#define COL_FIN_Y 8
template <typename T>
__global__ void k_col_finish(int64_t n_chunks, int64_t n_cols, double alpha, bool norm_style, const double *part, T *y) {
    typedef typename dsc_acc<T>::type A;
    __shared__ double p[COL_FIN_Y][COLS_X + 1];
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int64_t j = (int64_t)blockIdx.x * COLS_X + tx;
    double s = 0;
    if (j < n_cols)
        for (int64_t c = ty; c < n_chunks; c += COL_FIN_Y) s += part[c * n_cols + j];
    p[ty][tx] = s;
    __syncthreads();
    if (ty == 0 && j < n_cols) {
        double t = 0;
        for (int k = 0; k < COL_FIN_Y; k++) t += p[k][tx];
        if (norm_style) st(y, j, ld(y, j) + (A)t);
        else st(y, j, (A)((double)ld(y, j) + alpha * t));
    }
}
static inline dim3 col_finish_grid(int64_t n_cols) { return dim3((unsigned)((n_cols + COLS_X - 1) / COLS_X)); }
#define COL_FINISH_BLOCK dim3(COLS_X, COL_FIN_Y)
template <typename T>
static int sum_rows_2pass_t(cudaStream_t s, int64_t n_rows, int64_t n_cols, double alpha, const void *x, const void *w,
                            void *y, double *ws) {
    typedef typename stat_t<T>::type S;
    const int64_t nc = col_chunks(n_rows);
    dim3 block(COLS_X, ROWS_Y), grid((unsigned)((n_cols + COLS_X - 1) / COLS_X), (unsigned)nc);
    const int fast = w ? -1 : dsc_cuda_col_part_fast(s, dsc_dtype_of<T>(), n_rows, n_cols, x, NULL, NULL, NULL, ws, NULL);
    if (fast > 0) return fast;
    if (fast < 0 && w)
        DSC_LAUNCH(grid, block, s, k_col_part<T, 1>)(n_rows, n_cols, (const T *)x, (const T *)w, (const S *)NULL,
                                                    (const S *)NULL, ws, (double *)NULL);
    else if (fast < 0)
        DSC_LAUNCH(grid, block, s, k_col_part<T, 0>)(n_rows, n_cols, (const T *)x, (const T *)NULL, (const S *)NULL,
                                                    (const S *)NULL, ws, (double *)NULL);
    DSC_LAUNCH(col_finish_grid(n_cols), COL_FINISH_BLOCK, s, k_col_finish<T>)(nc, n_cols, alpha, false, ws, (T *)y);
    DSC_CUDA_LAUNCHED();
}
static bool two_pass(int64_t n_rows, int64_t n_cols, size_t ws_bytes, int n_sums) {
    return col_chunks(n_rows) > 1 && ws_bytes >= (size_t)n_sums * dsc_cuda_col_sums_workspace_bytes(n_rows, n_cols);
}

extern "C" int dsc_cuda_sum_rows_acc_ws(void *stream, dsc_dtype_t dt, int64_t n_rows, int64_t n_cols, double alpha,
                                        const void *x, void *y, void *ws, size_t ws_bytes) {
    if (n_rows <= 0 || n_cols <= 0) return 0;
    if (ws && two_pass(n_rows, n_cols, ws_bytes, 1))
        return DSC_DISPATCH(dt, sum_rows_2pass_t, DSC_STREAM(stream), n_rows, n_cols, alpha, x, NULL, y, (double *)ws);
    return DSC_DISPATCH(dt, sum_rows_t, DSC_STREAM(stream), n_rows, n_cols, alpha, x, NULL, y);
}
extern "C" int dsc_cuda_sum_rows_mul_acc_ws(void *stream, dsc_dtype_t dt, int64_t n_rows, int64_t n_cols, double alpha,
                                            const void *x, const void *w, void *y, void *ws, size_t ws_bytes) {
    if (n_rows <= 0 || n_cols <= 0) return 0;
    if (ws && two_pass(n_rows, n_cols, ws_bytes, 1))
        return DSC_DISPATCH(dt, sum_rows_2pass_t, DSC_STREAM(stream), n_rows, n_cols, alpha, x, w, y, (double *)ws);
    return DSC_DISPATCH(dt, sum_rows_t, DSC_STREAM(stream), n_rows, n_cols, alpha, x, w, y);
}
extern "C" int dsc_cuda_sum_rows_acc(void *stream, dsc_dtype_t dt, int64_t n_rows, int64_t n_cols, double alpha,
                                     const void *x, void *y) {
    return dsc_cuda_sum_rows_acc_ws(stream, dt, n_rows, n_cols, alpha, x, y, NULL, 0);
}
extern "C" int dsc_cuda_sum_rows_mul_acc(void *stream, dsc_dtype_t dt, int64_t n_rows, int64_t n_cols, double alpha,
                                         const void *x, const void *w, void *y) {
    return dsc_cuda_sum_rows_mul_acc_ws(stream, dt, n_rows, n_cols, alpha, x, w, y, NULL, 0);
}

/* One block of 1024 threads: thread t sums t, t + 1024, ... in double; a fixed tree. */
template <typename T>
__global__ void k_sum(int64_t n, const T *x, double *out) {
    __shared__ double sh[32];
    double acc = 0;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) acc += (double)ld(x, i);
    acc = dsc_block_sum(acc, sh);
    if (threadIdx.x == 0) *out = acc;
}
template <typename T> static int sum_t(cudaStream_t s, int64_t n, const void *x, double *out) {
    DSC_LAUNCH(1, 1024, s, k_sum<T>)(n, (const T *)x, out);
    DSC_CUDA_LAUNCHED();
}
extern "C" int dsc_cuda_sum(void *stream, dsc_dtype_t dt, int64_t n, const void *x, double *out) {
    if (n < 0) return (int)cudaErrorInvalidValue;
    return DSC_DISPATCH(dt, sum_t, DSC_STREAM(stream), n, x, out);
}

/* The same sum, finished on the device: out[0] (dtype T) = sum * mul / div in double, rounded once. */
template <typename T>
__global__ void k_sum_to(int64_t n, double mul, double div, const T *x, T *out) {
    __shared__ double sh[32];
    double acc = 0;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) acc += (double)ld(x, i);
    acc = dsc_block_sum(acc, sh);
    if (threadIdx.x == 0) st(out, 0, (typename dsc_acc<T>::type)(acc * mul / div));
}
template <typename T>
static int sum_to_t(cudaStream_t s, int64_t n, double mul, double div, const void *x, void *out) {
    DSC_LAUNCH(1, 1024, s, k_sum_to<T>)(n, mul, div, (const T *)x, (T *)out);
    DSC_CUDA_LAUNCHED();
}
extern "C" int dsc_cuda_sum_to(void *stream, dsc_dtype_t dt, int64_t n, double mul, double div, const void *x,
                               void *out) {
    if (n < 0) return (int)cudaErrorInvalidValue;
    return DSC_DISPATCH(dt, sum_to_t, DSC_STREAM(stream), n, mul, div, x, out);
}

/* ---- softmax: one block per row ---------------------------------------------------------- */

__device__ static inline float dexp(float x) { return expf(x); }
__device__ static inline double dexp(double x) { return exp(x); }

template <typename T>
__global__ void k_softmax(int64_t n_cols, const T *x, T *y) {
    typedef typename dsc_acc<T>::type A;
    __shared__ A shm[32];
    __shared__ double shd[32];
    const T *xr = x + blockIdx.x * n_cols;
    T *yr = y + blockIdx.x * n_cols;
    A mx = -INFINITY;
    for (int64_t j = threadIdx.x; j < n_cols; j += blockDim.x) {
        const A v = ld(xr, j);
        mx = v > mx ? v : mx;
    }
    mx = dsc_block_max(mx, shm);
    double sum = 0;
    for (int64_t j = threadIdx.x; j < n_cols; j += blockDim.x) sum += (double)dexp(ld(xr, j) - mx);
    sum = dsc_block_sum(sum, shd);
    const A inv = (A)(1.0 / sum);
    for (int64_t j = threadIdx.x; j < n_cols; j += blockDim.x) st(yr, j, dexp(ld(xr, j) - mx) * inv);
}
template <typename T>
__global__ void k_softmax_backward(int64_t n_cols, const T *y, const T *dy, T *dx) {
    typedef typename dsc_acc<T>::type A;
    __shared__ double shd[32];
    const int64_t o = blockIdx.x * n_cols;
    double dot = 0;
    for (int64_t j = threadIdx.x; j < n_cols; j += blockDim.x) dot += (double)ld(dy, o + j) * (double)ld(y, o + j);
    const A s = (A)dsc_block_sum(dot, shd);
    for (int64_t j = threadIdx.x; j < n_cols; j += blockDim.x)
        st(dx, o + j, ld(dx, o + j) + ld(y, o + j) * (ld(dy, o + j) - s));
}
template <typename T> static int softmax_t(cudaStream_t s, int64_t n_rows, int64_t n_cols, const void *a, const void *b, void *out) {
    if (b) DSC_LAUNCH((unsigned)n_rows, 256, s, k_softmax_backward<T>)(n_cols, (const T *)a, (const T *)b, (T *)out);
    else DSC_LAUNCH((unsigned)n_rows, 256, s, k_softmax<T>)(n_cols, (const T *)a, (T *)out);
    DSC_CUDA_LAUNCHED();
}
extern "C" int dsc_cuda_softmax(void *stream, dsc_dtype_t dt, int64_t n_rows, int64_t n_cols, const void *x, void *y) {
    if (n_rows <= 0 || n_cols <= 0) return 0;
    return DSC_DISPATCH(dt, softmax_t, DSC_STREAM(stream), n_rows, n_cols, x, NULL, y);
}
extern "C" int dsc_cuda_softmax_backward(void *stream, dsc_dtype_t dt, int64_t n_rows, int64_t n_cols, const void *y,
                                         const void *dy, void *dx) {
    if (n_rows <= 0 || n_cols <= 0) return 0;
    return DSC_DISPATCH(dt, softmax_t, DSC_STREAM(stream), n_rows, n_cols, y, dy, dx);
}

/* ---- layer norm: one block per row; statistics in double as on the CPU -------------------- */

template <typename T>
__global__ void k_layernorm(int64_t n_cols, double eps, const T *x, const T *w, const T *b, T *y,
                            typename stat_t<T>::type *mean, typename stat_t<T>::type *rstd) {
    typedef typename dsc_acc<T>::type A;
    __shared__ double shd[32];
    const int64_t r = blockIdx.x, o = r * n_cols;
    double m = 0;
    for (int64_t j = threadIdx.x; j < n_cols; j += blockDim.x) m += (double)ld(x, o + j);
    m = dsc_block_sum(m, shd) / (double)n_cols;
    double v = 0;
    for (int64_t j = threadIdx.x; j < n_cols; j += blockDim.x) {
        const double d = (double)ld(x, o + j) - m;
        v += d * d;
    }
    v = dsc_block_sum(v, shd) / (double)n_cols;
    const A tm = (A)m, trs = (A)(1.0 / sqrt(v + eps));
    for (int64_t j = threadIdx.x; j < n_cols; j += blockDim.x) {
        A out = (ld(x, o + j) - tm) * trs * ld(w, j);
        if (b) out = out + ld(b, j);
        st(y, o + j, out);
    }
    if (threadIdx.x == 0) {
        mean[r] = tm;
        rstd[r] = trs;
    }
}
template <typename T>
__global__ void k_layernorm_dx(int64_t n_cols, const T *x, const T *w, const typename stat_t<T>::type *mean,
                               const typename stat_t<T>::type *rstd, const T *dy, T *dx) {
    typedef typename dsc_acc<T>::type A;
    __shared__ double shd[32];
    const int64_t r = blockIdx.x, o = r * n_cols;
    const A m = (A)mean[r], rs = (A)rstd[r];
    double sg = 0, sgx = 0;
    for (int64_t j = threadIdx.x; j < n_cols; j += blockDim.x) {
        const A g = ld(dy, o + j) * ld(w, j);
        sg += (double)g;
        sgx += (double)g * (double)((ld(x, o + j) - m) * rs);
    }
    sg = dsc_block_sum(sg, shd);
    sgx = dsc_block_sum(sgx, shd);
    const A mg = (A)(sg / (double)n_cols), mgx = (A)(sgx / (double)n_cols);
    for (int64_t j = threadIdx.x; j < n_cols; j += blockDim.x) {
        const A xh = (ld(x, o + j) - m) * rs;
        st(dx, o + j, ld(dx, o + j) + rs * (ld(dy, o + j) * ld(w, j) - mg - xh * mgx));
    }
}
/* dw[j] += sum_r dy * xhat, db[j] += sum_r dy: the column reduction of k_sum_rows. */
template <typename T>
__global__ void k_layernorm_dwdb(int64_t n_rows, int64_t n_cols, const T *x, const typename stat_t<T>::type *mean,
                                 const typename stat_t<T>::type *rstd, const T *dy, T *dw, T *db) {
    typedef typename dsc_acc<T>::type A;
    __shared__ double pw[ROWS_Y][COLS_X + 1], pb[ROWS_Y][COLS_X + 1];
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int64_t j = (int64_t)blockIdx.x * COLS_X + tx;
    double aw = 0, ab = 0;
    if (j < n_cols)
        for (int64_t r = ty; r < n_rows; r += ROWS_Y) {
            const A g = ld(dy, r * n_cols + j);
            aw += (double)g * (double)((ld(x, r * n_cols + j) - (A)mean[r]) * (A)rstd[r]);
            ab += (double)g;
        }
    pw[ty][tx] = aw;
    pb[ty][tx] = ab;
    __syncthreads();
    if (ty == 0 && j < n_cols) {
        double sw = 0, sb = 0;
        for (int k = 0; k < ROWS_Y; k++) {
            sw += pw[k][tx];
            sb += pb[k][tx];
        }
        if (dw) st(dw, j, ld(dw, j) + (A)sw);
        if (db) st(db, j, ld(db, j) + (A)sb);
    }
}
template <typename T>
static int layernorm_t(cudaStream_t s, int64_t n_rows, int64_t n_cols, double eps, const void *x, const void *w,
                       const void *b, void *y, void *mean, void *rstd) {
    typedef typename stat_t<T>::type S;
    DSC_LAUNCH((unsigned)n_rows, 256, s, k_layernorm<T>)(n_cols, eps, (const T *)x, (const T *)w, (const T *)b, (T *)y,
                                                    (S *)mean, (S *)rstd);
    DSC_CUDA_LAUNCHED();
}
template <typename T>
static int layernorm_bw_t(cudaStream_t s, int64_t n_rows, int64_t n_cols, const void *x, const void *w,
                          const void *mean, const void *rstd, const void *dy, void *dx, void *dw, void *db,
                          double *ws) {
    typedef typename stat_t<T>::type S;
    if ((dw || db) && ws) { /* dx and the column partials in one pass, when the row suits it */
        const int64_t nc = col_chunks(n_rows);
        double *ws_b = ws + nc * n_cols;
        const int fused = dsc_cuda_ln_bwd_fused(s, dsc_dtype_of<T>(), n_rows, n_cols, x, w, mean, rstd, dy, dx, ws, ws_b);
        if (fused > 0) return fused;
        if (fused == 0) {
            if (dw) DSC_LAUNCH(col_finish_grid(n_cols), COL_FINISH_BLOCK, s, k_col_finish<T>)(nc, n_cols, 1.0, true, ws, (T *)dw);
            if (db) DSC_LAUNCH(col_finish_grid(n_cols), COL_FINISH_BLOCK, s, k_col_finish<T>)(nc, n_cols, 1.0, true, ws_b, (T *)db);
            DSC_CUDA_LAUNCHED();
        }
    }
    const int fast_dx = dx ? dsc_cuda_ln_dx_fast(s, dsc_dtype_of<T>(), n_rows, n_cols, x, w, mean, rstd, dy, dx) : 0;
    if (fast_dx > 0) return fast_dx;
    if (fast_dx < 0)
        DSC_LAUNCH((unsigned)n_rows, 256, s, k_layernorm_dx<T>)(n_cols, (const T *)x, (const T *)w, (const S *)mean,
                                                           (const S *)rstd, (const T *)dy, (T *)dx);
    if ((dw || db) && ws) { /* two passes: ws holds the dw partials, then the db partials */
        const int64_t nc = col_chunks(n_rows);
        double *ws_b = ws + nc * n_cols;
        dim3 block(COLS_X, ROWS_Y), grid((unsigned)((n_cols + COLS_X - 1) / COLS_X), (unsigned)nc);
        const int fast = dsc_cuda_col_part_fast(s, dsc_dtype_of<T>(), n_rows, n_cols, dy, x, mean, rstd, ws, ws_b);
        if (fast > 0) return fast;
        if (fast < 0)
            DSC_LAUNCH(grid, block, s, k_col_part<T, 2>)(n_rows, n_cols, (const T *)dy, (const T *)x, (const S *)mean,
                                                        (const S *)rstd, ws, ws_b);
        if (dw) DSC_LAUNCH(col_finish_grid(n_cols), COL_FINISH_BLOCK, s, k_col_finish<T>)(nc, n_cols, 1.0, true, ws, (T *)dw);
        if (db) DSC_LAUNCH(col_finish_grid(n_cols), COL_FINISH_BLOCK, s, k_col_finish<T>)(nc, n_cols, 1.0, true, ws_b, (T *)db);
    } else if (dw || db) {
        dim3 block(COLS_X, ROWS_Y), grid((unsigned)((n_cols + COLS_X - 1) / COLS_X));
        DSC_LAUNCH(grid, block, s, k_layernorm_dwdb<T>)(n_rows, n_cols, (const T *)x, (const S *)mean, (const S *)rstd,
                                                   (const T *)dy, (T *)dw, (T *)db);
    }
    DSC_CUDA_LAUNCHED();
}
extern "C" int dsc_cuda_layernorm(void *stream, dsc_dtype_t dt, int64_t n_rows, int64_t n_cols, double eps,
                                  const void *x, const void *w, const void *b, void *y, void *mean, void *rstd) {
    if (n_rows <= 0 || n_cols <= 0) return 0;
    const int fast = dsc_cuda_ln_fwd_fast(stream, dt, n_rows, n_cols, eps, x, w, b, y, mean, rstd);
    if (fast >= 0) return fast;
    return DSC_DISPATCH(dt, layernorm_t, DSC_STREAM(stream), n_rows, n_cols, eps, x, w, b, y, mean, rstd);
}
extern "C" int dsc_cuda_layernorm_backward_ws(void *stream, dsc_dtype_t dt, int64_t n_rows, int64_t n_cols,
                                              const void *x, const void *w, const void *mean, const void *rstd,
                                              const void *dy, void *dx, void *dw, void *db, void *ws, size_t ws_bytes) {
    if (n_rows <= 0 || n_cols <= 0) return 0;
    double *two = ws && two_pass(n_rows, n_cols, ws_bytes, 2) ? (double *)ws : NULL;
    return DSC_DISPATCH(dt, layernorm_bw_t, DSC_STREAM(stream), n_rows, n_cols, x, w, mean, rstd, dy, dx, dw, db, two);
}
extern "C" int dsc_cuda_layernorm_backward(void *stream, dsc_dtype_t dt, int64_t n_rows, int64_t n_cols,
                                           const void *x, const void *w, const void *mean, const void *rstd,
                                           const void *dy, void *dx, void *dw, void *db) {
    return dsc_cuda_layernorm_backward_ws(stream, dt, n_rows, n_cols, x, w, mean, rstd, dy, dx, dw, db, NULL, 0);
}

/* Layer norm's fast path on CUDA: a warp per row with the row in registers, moved in 16-byte
 * groups, for rows whose groups fit LN_MAX_GROUPS per lane (GPT-2's widths 768, 1024, 1600 in
 * bf16 take 3, 4 and 7) and whose pointers and row length are 16-byte aligned; the general
 * kernels in cuda_nn.cu (a block of 256 threads per row, 2-byte accesses) take the rest.
 * Same arithmetic per element as those: statistics summed in double (each lane its groups in
 * index order, then the warp's fixed butterfly), the output in the compute type; only the
 * order of the sums differs, so the results match the CPU within rounding, not bit for bit
 * (neither do the general kernels'), and repeated runs give the same bits.
 *
 * Why: one 256-thread block per 768-wide row left most threads with 3 elements and two
 * block-wide reductions (with __syncthreads) per row; layer norm forward and backward took
 * 0.15 s of a d12 B 64 optimizer step on an H100 (docs/performance.md profile), about 3x the
 * memory time of their bytes.
 *
 * The column sums of the backward (dweight = sum_r dy * xhat, dbias = sum_r dy) get a 16-byte
 * form of cuda_nn.cu's two-pass chunk kernel: a thread owns 8 (bf16) columns of a chunk of
 * 256 rows, sums them in double in row order, the block adds its row groups in a fixed order;
 * k_col_finish (cuda_nn.cu's second pass) then adds the chunks. */
#include "ops/cuda/cuda_common.cuh"
#include "ops/cuda/cuda_layernorm.cuh"

#define LN_MAX_GROUPS 8 /* 16-byte groups per lane: rows up to 2,048 bf16 / 1,024 f32 */
#define LN_WARPS 8      /* rows per 256-thread block */

template <typename T> struct ln_stat { typedef T type; };
template <> struct ln_stat<dsc_bf16> { typedef float type; };
template <> struct ln_stat<dsc_f16> { typedef float type; };

/* The groups of row r this lane holds: g = lane + 32 i for i < G, g < n_groups. */
template <typename T, int G>
__device__ static inline void ln_load(const T *row, int64_t n_groups, int lane, dsc_v16<T> (&v)[G]) {
DSC_UNROLL
    for (int i = 0; i < G; i++) {
        const int64_t g = lane + 32 * i;
        if (g < n_groups) v[i] = ((const dsc_v16<T> *)row)[g];
    }
}

template <typename T, int G>
__global__ void __launch_bounds__(32 * LN_WARPS) k_ln_fwd_warp(int64_t n_rows, int64_t n_cols, double eps, const T *x,
                                                               const T *w, const T *b, T *y,
                                                               typename ln_stat<T>::type *mean,
                                                               typename ln_stat<T>::type *rstd) {
    typedef typename dsc_acc<T>::type A;
    constexpr int N = 16 / sizeof(T);
    const int lane = threadIdx.x & 31;
    const int64_t r = (int64_t)blockIdx.x * LN_WARPS + (threadIdx.x >> 5);
    if (r >= n_rows) return; /* a whole warp leaves: no block barrier below */
    const int64_t ng = n_cols / N;
    dsc_v16<T> xv[G];
    ln_load<T, G>(x + r * n_cols, ng, lane, xv);
    double m = 0;
DSC_UNROLL
    for (int i = 0; i < G; i++)
        if (lane + 32 * i < ng)
            for (int k = 0; k < N; k++) m += (double)ld(xv[i].v, k);
    m = dsc_warp_sum(m) / (double)n_cols;
    double v = 0;
DSC_UNROLL
    for (int i = 0; i < G; i++)
        if (lane + 32 * i < ng)
            for (int k = 0; k < N; k++) {
                const double d = (double)ld(xv[i].v, k) - m;
                v += d * d;
            }
    v = dsc_warp_sum(v) / (double)n_cols;
    const A tm = (A)m, trs = (A)(1.0 / sqrt(v + eps));
DSC_UNROLL
    for (int i = 0; i < G; i++) {
        const int64_t g = lane + 32 * i;
        if (g >= ng) continue;
        const dsc_v16<T> wv = ((const dsc_v16<T> *)w)[g];
        dsc_v16<T> bv{}, out;
        if (b) bv = ((const dsc_v16<T> *)b)[g];
        for (int k = 0; k < N; k++) {
            A o = (ld(xv[i].v, k) - tm) * trs * ld(wv.v, k);
            if (b) o = o + ld(bv.v, k);
            st(out.v, k, o);
        }
        ((dsc_v16<T> *)(y + r * n_cols))[g] = out;
    }
    if (lane == 0) {
        mean[r] = tm;
        rstd[r] = trs;
    }
}

/* dx += rstd (dy w - mean(dy w) - xhat mean(dy w xhat)), the sums in double. */
template <typename T, int G>
__global__ void __launch_bounds__(32 * LN_WARPS) k_ln_dx_warp(int64_t n_rows, int64_t n_cols, const T *x, const T *w,
                                                              const typename ln_stat<T>::type *mean,
                                                              const typename ln_stat<T>::type *rstd, const T *dy, T *dx) {
    typedef typename dsc_acc<T>::type A;
    constexpr int N = 16 / sizeof(T);
    const int lane = threadIdx.x & 31;
    const int64_t r = (int64_t)blockIdx.x * LN_WARPS + (threadIdx.x >> 5);
    if (r >= n_rows) return;
    const int64_t ng = n_cols / N;
    const A m = (A)mean[r], rs = (A)rstd[r];
    dsc_v16<T> xv[G], gv[G];
    ln_load<T, G>(x + r * n_cols, ng, lane, xv);
    ln_load<T, G>(dy + r * n_cols, ng, lane, gv);
    double sg = 0, sgx = 0;
DSC_UNROLL
    for (int i = 0; i < G; i++) {
        const int64_t g = lane + 32 * i;
        if (g >= ng) continue;
        const dsc_v16<T> wv = ((const dsc_v16<T> *)w)[g];
        for (int k = 0; k < N; k++) {
            const A gw = ld(gv[i].v, k) * ld(wv.v, k);
            sg += (double)gw;
            sgx += (double)gw * (double)((ld(xv[i].v, k) - m) * rs);
        }
    }
    sg = dsc_warp_sum(sg);
    sgx = dsc_warp_sum(sgx);
    const A mg = (A)(sg / (double)n_cols), mgx = (A)(sgx / (double)n_cols);
DSC_UNROLL
    for (int i = 0; i < G; i++) {
        const int64_t g = lane + 32 * i;
        if (g >= ng) continue;
        const dsc_v16<T> wv = ((const dsc_v16<T> *)w)[g];
        dsc_v16<T> *dp = (dsc_v16<T> *)(dx + r * n_cols) + g;
        dsc_v16<T> d = *dp;
        for (int k = 0; k < N; k++) {
            const A xh = (ld(xv[i].v, k) - m) * rs;
            st(d.v, k, ld(d.v, k) + rs * (ld(gv[i].v, k) * ld(wv.v, k) - mg - xh * mgx));
        }
        *dp = d;
    }
}

/* The whole backward in one pass over dy and x: block c owns the chunk of DSC_CUDA_COL_CHUNK
 * rows c * CHUNK ...; warp q takes rows q, q + LN_WARPS, ... of it and for each computes dx as
 * k_ln_dx_warp does, and adds dy * xhat and dy to its lane's column partials (f32: at most
 * CHUNK / LN_WARPS = 32 rows). The warps' partials are then added in warp order in double in
 * shared memory, and part0 / part1 [chunk, n_cols] get the chunk's sums (k_col_finish adds the
 * chunks, as for k_col_part_v). dx NULL: the column sums only.
 * Why: the dx kernel and the column pass each read dy and x (0.311 ms per 65,536 x 768 bf16
 * call on an H100, 43% of the copy bandwidth); here they are read once. */
#define LN_FUSED_MAX_G 3 /* 4 spills registers for 16-bit data (nvcc 13, sm_90, 2 blocks per SM) */
template <typename T, int G>
__global__ void __launch_bounds__(32 * LN_WARPS, 2) k_ln_bwd_fused(int64_t n_rows, int64_t n_cols, const T *x, const T *w,
                                                                const typename ln_stat<T>::type *mean,
                                                                const typename ln_stat<T>::type *rstd, const T *dy,
                                                                T *dx, double *part0, double *part1) {
    typedef typename dsc_acc<T>::type A;
    constexpr int N = 16 / sizeof(T);
    __shared__ double s0[32 * LN_FUSED_MAX_G * N], s1[32 * LN_FUSED_MAX_G * N];
    const int lane = threadIdx.x & 31, q = threadIdx.x >> 5;
    const int64_t c = blockIdx.x, ng = n_cols / N;
    const int64_t r_end = (c + 1) * DSC_CUDA_COL_CHUNK < n_rows ? (c + 1) * DSC_CUDA_COL_CHUNK : n_rows;
    A pw[G][N], pb[G][N];
DSC_UNROLL
    for (int i = 0; i < G; i++)
        for (int k = 0; k < N; k++) pw[i][k] = pb[i][k] = 0;
    for (int64_t r = c * DSC_CUDA_COL_CHUNK + q; r < r_end; r += LN_WARPS) {
        const A m = (A)mean[r], rs = (A)rstd[r];
        dsc_v16<T> xv[G], gv[G], dv[G];
        ln_load<T, G>(x + r * n_cols, ng, lane, xv);
        ln_load<T, G>(dy + r * n_cols, ng, lane, gv);
        if (dx) ln_load<T, G>(dx + r * n_cols, ng, lane, dv);
        double sg = 0, sgx = 0;
DSC_UNROLL
        for (int i = 0; i < G; i++) {
            const int64_t g = lane + 32 * i;
            if (g >= ng) continue;
            const dsc_v16<T> wv = ((const dsc_v16<T> *)w)[g];
            for (int k = 0; k < N; k++) {
                const A gk = ld(gv[i].v, k), xh = (ld(xv[i].v, k) - m) * rs, gw = gk * ld(wv.v, k);
                sg += (double)gw;
                sgx += (double)gw * (double)xh;
                pw[i][k] += gk * xh;
                pb[i][k] += gk;
            }
        }
        if (!dx) continue;
        sg = dsc_warp_sum(sg);
        sgx = dsc_warp_sum(sgx);
        const A mg = (A)(sg / (double)n_cols), mgx = (A)(sgx / (double)n_cols);
DSC_UNROLL
        for (int i = 0; i < G; i++) {
            const int64_t g = lane + 32 * i;
            if (g >= ng) continue;
            const dsc_v16<T> wv = ((const dsc_v16<T> *)w)[g];
            for (int k = 0; k < N; k++) {
                const A xh = (ld(xv[i].v, k) - m) * rs;
                st(dv[i].v, k, ld(dv[i].v, k) + rs * (ld(gv[i].v, k) * ld(wv.v, k) - mg - xh * mgx));
            }
            ((dsc_v16<T> *)(dx + r * n_cols))[g] = dv[i];
        }
    }
    /* the warps' partials in warp order: warp 0 stores, warps 1.. add in turn */
    for (int turn = 0; turn < LN_WARPS; turn++) {
        if (q == turn) {
DSC_UNROLL
            for (int i = 0; i < G; i++) {
                const int64_t g = lane + 32 * i;
                if (g >= ng) continue;
                for (int k = 0; k < N; k++) {
                    const int64_t j = g * N + k;
                    s0[j] = turn ? s0[j] + (double)pw[i][k] : (double)pw[i][k];
                    s1[j] = turn ? s1[j] + (double)pb[i][k] : (double)pb[i][k];
                }
            }
        }
        __syncthreads();
    }
    for (int64_t j = threadIdx.x; j < n_cols; j += blockDim.x) {
        part0[c * n_cols + j] = s0[j];
        part1[c * n_cols + j] = s1[j];
    }
}

/* Column sums of a chunk of LN_CHUNK rows: block (blockIdx.x: 32 groups of columns,
 * blockIdx.y: the chunk), thread (tx, ty) sums rows ty, ty + LN_ROWS_Y, ... of its group's N
 * columns in double; the LN_ROWS_Y partials are then added in ty order. MODE 0: part0 = sum x;
 * 2: layer norm, part0 = sum dy * xhat, part1 = sum dy (x = dy, w = the layer's input). */
#define LN_ROWS_Y 8
template <typename T, int MODE>
__global__ void k_col_part_v(int64_t n_rows, int64_t n_cols, const T *x, const T *w,
                             const typename ln_stat<T>::type *mean, const typename ln_stat<T>::type *rstd,
                             double *part0, double *part1) {
    typedef typename dsc_acc<T>::type A;
    constexpr int N = 16 / sizeof(T);
    __shared__ double p0[LN_ROWS_Y][32 * N + 1], p1[MODE == 2 ? LN_ROWS_Y : 1][32 * N + 1];
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int64_t ng = n_cols / N, g = (int64_t)blockIdx.x * 32 + tx, c = blockIdx.y;
    const int64_t r_end = (c + 1) * DSC_CUDA_COL_CHUNK < n_rows ? (c + 1) * DSC_CUDA_COL_CHUNK : n_rows;
    double a0[N], a1[N];
    for (int k = 0; k < N; k++) a0[k] = a1[k] = 0;
    if (g < ng)
        for (int64_t r = c * DSC_CUDA_COL_CHUNK + ty; r < r_end; r += LN_ROWS_Y) {
            const dsc_v16<T> xv = ((const dsc_v16<T> *)(x + r * n_cols))[g];
            if (MODE == 2) {
                const dsc_v16<T> iv = ((const dsc_v16<T> *)(w + r * n_cols))[g];
                const A mr = (A)mean[r], rr = (A)rstd[r];
                for (int k = 0; k < N; k++) {
                    const A gk = ld(xv.v, k);
                    a0[k] += (double)gk * (double)((ld(iv.v, k) - mr) * rr);
                    a1[k] += (double)gk;
                }
            } else {
                for (int k = 0; k < N; k++) a0[k] += (double)ld(xv.v, k);
            }
        }
    for (int k = 0; k < N; k++) {
        p0[ty][tx * N + k] = a0[k];
        if (MODE == 2) p1[ty][tx * N + k] = a1[k];
    }
    __syncthreads();
    /* thread (tx, ty) finishes columns tx * N + ty, tx * N + ty + LN_ROWS_Y, ... of the block */
    for (int k = ty; k < N; k += LN_ROWS_Y) {
        const int64_t j = g * N + k;
        if (g >= ng) break;
        double s0 = 0, s1 = 0;
        for (int q = 0; q < LN_ROWS_Y; q++) {
            s0 += p0[q][tx * N + k];
            if (MODE == 2) s1 += p1[q][tx * N + k];
        }
        part0[c * n_cols + j] = s0;
        if (MODE == 2) part1[c * n_cols + j] = s1;
    }
}

template <typename T> static bool ln_fast_ok(int64_t n_cols, const void *p0, const void *p1, const void *p2,
                                             const void *p3) {
    const int64_t N = 16 / (int64_t)sizeof(T);
    const uintptr_t a = (uintptr_t)p0 | (uintptr_t)p1 | (uintptr_t)p2 | (uintptr_t)p3;
    return (a & 15) == 0 && n_cols % N == 0 && n_cols / N <= 32 * LN_MAX_GROUPS;
}

/* G: the groups per lane the row needs, rounded up to 1, 2, 4 or 8 (fewer template copies). */
static inline int ln_groups(int64_t n_groups) {
    const int64_t per_lane = (n_groups + 31) / 32;
    return per_lane <= 1 ? 1 : per_lane <= 2 ? 2 : per_lane <= 4 ? 4 : 8;
}

#define LN_BY_G(G_, KERNEL, grid, ...)                                                                  \
    switch (G_) {                                                                                       \
    case 1: DSC_LAUNCH(grid, 32 * LN_WARPS, s, KERNEL<T, 1>)(__VA_ARGS__); break;                        \
    case 2: DSC_LAUNCH(grid, 32 * LN_WARPS, s, KERNEL<T, 2>)(__VA_ARGS__); break;                        \
    case 4: DSC_LAUNCH(grid, 32 * LN_WARPS, s, KERNEL<T, 4>)(__VA_ARGS__); break;                        \
    default: DSC_LAUNCH(grid, 32 * LN_WARPS, s, KERNEL<T, 8>)(__VA_ARGS__); break;                       \
    }

template <typename T>
static int ln_fwd_t(cudaStream_t s, int64_t n_rows, int64_t n_cols, double eps, const void *x, const void *w,
                    const void *b, void *y, void *mean, void *rstd) {
    typedef typename ln_stat<T>::type S;
    if (sizeof(T) == 8 || !ln_fast_ok<T>(n_cols, x, w, b, y)) return -1;
    const unsigned grid = (unsigned)((n_rows + LN_WARPS - 1) / LN_WARPS);
    LN_BY_G(ln_groups(n_cols / (16 / (int64_t)sizeof(T))), k_ln_fwd_warp, grid, n_rows, n_cols, eps, (const T *)x,
            (const T *)w, (const T *)b, (T *)y, (S *)mean, (S *)rstd);
    DSC_CUDA_LAUNCHED();
}

template <typename T>
static int ln_dx_t(cudaStream_t s, int64_t n_rows, int64_t n_cols, const void *x, const void *w, const void *mean,
                   const void *rstd, const void *dy, void *dx) {
    typedef typename ln_stat<T>::type S;
    if (sizeof(T) == 8 || !ln_fast_ok<T>(n_cols, x, w, dy, dx)) return -1;
    const unsigned grid = (unsigned)((n_rows + LN_WARPS - 1) / LN_WARPS);
    LN_BY_G(ln_groups(n_cols / (16 / (int64_t)sizeof(T))), k_ln_dx_warp, grid, n_rows, n_cols, (const T *)x,
            (const T *)w, (const S *)mean, (const S *)rstd, (const T *)dy, (T *)dx);
    DSC_CUDA_LAUNCHED();
}

/* G for the fused kernel: the exact groups per lane, 1 to LN_FUSED_MAX_G (GPT-2's 768 in bf16:
 * 3); 0 when the row needs more (the two-kernel path then runs: 1024 and 1600 in bf16). */
static inline int ln_fused_groups(int64_t n_groups) {
    const int64_t per_lane = (n_groups + 31) / 32;
    return per_lane <= LN_FUSED_MAX_G ? (int)(per_lane < 1 ? 1 : per_lane) : 0;
}

template <typename T>
static int ln_bwd_fused_t(cudaStream_t s, int64_t n_rows, int64_t n_cols, const void *x, const void *w,
                          const void *mean, const void *rstd, const void *dy, void *dx, double *part0, double *part1) {
    typedef typename ln_stat<T>::type S;
    const int64_t N = 16 / (int64_t)sizeof(T);
    if (sizeof(T) == 8 || !ln_fast_ok<T>(n_cols, x, w, dy, dx)) return -1;
    const int G = ln_fused_groups(n_cols / N);
    const unsigned grid = (unsigned)((n_rows + DSC_CUDA_COL_CHUNK - 1) / DSC_CUDA_COL_CHUNK);
    switch (G) {
#define LN_FUSED_CASE(G_)                                                                                          \
    case G_:                                                                                                       \
        DSC_LAUNCH(grid, 32 * LN_WARPS, s, k_ln_bwd_fused<T, G_>)(n_rows, n_cols, (const T *)x, (const T *)w,        \
                                                                 (const S *)mean, (const S *)rstd, (const T *)dy,  \
                                                                 (T *)dx, part0, part1);                           \
        break;
        LN_FUSED_CASE(1)
        LN_FUSED_CASE(2)
        LN_FUSED_CASE(3)
#undef LN_FUSED_CASE
    default: return -1;
    }
    DSC_CUDA_LAUNCHED();
}

template <typename T>
static int col_part_t(cudaStream_t s, int64_t n_rows, int64_t n_cols, const void *x, const void *w, const void *mean,
                      const void *rstd, double *part0, double *part1) {
    typedef typename ln_stat<T>::type S;
    const int64_t N = 16 / (int64_t)sizeof(T);
    if (sizeof(T) == 8 || !ln_fast_ok<T>(n_cols, x, w, NULL, NULL)) return -1;
    const int64_t ng = n_cols / N, chunks = (n_rows + DSC_CUDA_COL_CHUNK - 1) / DSC_CUDA_COL_CHUNK;
    dim3 block(32, LN_ROWS_Y), grid((unsigned)((ng + 31) / 32), (unsigned)chunks);
    if (mean)
        DSC_LAUNCH(grid, block, s, k_col_part_v<T, 2>)(n_rows, n_cols, (const T *)x, (const T *)w, (const S *)mean,
                                                      (const S *)rstd, part0, part1);
    else
        DSC_LAUNCH(grid, block, s, k_col_part_v<T, 0>)(n_rows, n_cols, (const T *)x, (const T *)NULL, (const S *)NULL,
                                                      (const S *)NULL, part0, part1);
    DSC_CUDA_LAUNCHED();
}

int dsc_cuda_ln_fwd_fast(void *stream, dsc_dtype_t dt, int64_t n_rows, int64_t n_cols, double eps, const void *x,
                         const void *w, const void *b, void *y, void *mean, void *rstd) {
    if (dt == DSC_F64) return -1;
    return DSC_DISPATCH(dt, ln_fwd_t, DSC_STREAM(stream), n_rows, n_cols, eps, x, w, b, y, mean, rstd);
}

int dsc_cuda_ln_dx_fast(void *stream, dsc_dtype_t dt, int64_t n_rows, int64_t n_cols, const void *x, const void *w,
                        const void *mean, const void *rstd, const void *dy, void *dx) {
    if (dt == DSC_F64) return -1;
    return DSC_DISPATCH(dt, ln_dx_t, DSC_STREAM(stream), n_rows, n_cols, x, w, mean, rstd, dy, dx);
}

int dsc_cuda_col_part_fast(void *stream, dsc_dtype_t dt, int64_t n_rows, int64_t n_cols, const void *x, const void *w,
                           const void *mean, const void *rstd, double *part0, double *part1) {
    if (dt == DSC_F64) return -1;
    return DSC_DISPATCH(dt, col_part_t, DSC_STREAM(stream), n_rows, n_cols, x, w, mean, rstd, part0, part1);
}

int dsc_cuda_ln_bwd_fused(void *stream, dsc_dtype_t dt, int64_t n_rows, int64_t n_cols, const void *x, const void *w,
                          const void *mean, const void *rstd, const void *dy, void *dx, double *part0, double *part1) {
    if (dt == DSC_F64) return -1;
    return DSC_DISPATCH(dt, ln_bwd_fused_t, DSC_STREAM(stream), n_rows, n_cols, x, w, mean, rstd, dy, dx, part0, part1);
}

/* CPU kernels for the elementwise, reduction, gemm and transpose entries of the backend
 * table (contracts in src/ops/backend.h). Each loop body is written once in a macro and
 * instantiated for float (DSC_F32) and double (DSC_F64).
 *
 * Parallelism: loops over more than PAR_MIN elements run under OpenMP. Every parallel
 * loop either writes disjoint outputs or reduces over fixed-size blocks whose partial
 * sums are combined in index order, so results never depend on the thread count. */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stddef.h>
#include <string.h>

#include "ops/cpu/cpu_half.h"
#include "ops/cpu/cpu_kernels.h"
#include "ops/cpu/cpu_simd.h"

#define PAR_MIN 32768    /* elements below which loops stay serial */
#define BLOCK 4096       /* elements per block of the blocked loops and of the sum */
#define COL_CHUNK 64     /* columns per task in the row reductions */
#define SUM_GROUP 1024   /* block sums held at once by dsc_cpu_sum */

static inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* ---- gemm ------------------------------------------------------------------------ */

static void gemm_panel(dsc_dtype_t dt, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, double alpha,
                       const void *a, int64_t lda, const void *b, int64_t ldb, double beta, void *c, int64_t ldc) {
    enum CBLAS_TRANSPOSE ta = trans_a ? CblasTrans : CblasNoTrans;
    enum CBLAS_TRANSPOSE tb = trans_b ? CblasTrans : CblasNoTrans;
    if (dt == DSC_F32)
        cblas_sgemm(CblasRowMajor, ta, tb, (blasint)m, (blasint)n, (blasint)k, (float)alpha, a, (blasint)lda, b,
                    (blasint)ldb, (float)beta, c, (blasint)ldc);
    else if (dt == DSC_F64)
        cblas_dgemm(CblasRowMajor, ta, tb, (blasint)m, (blasint)n, (blasint)k, alpha, a, (blasint)lda, b,
                    (blasint)ldb, beta, c, (blasint)ldc);
}

/* How many OpenMP threads share one gemm. OpenBLAS keeps its own pthread pool; with it at
 * one thread (the dsc tool's default) and dsc's OpenMP team idle, the team splits C into
 * panels of rows or columns and each thread runs a single-threaded OpenBLAS call: one pool
 * instead of two pools spinning against each other. The split is over M or N, never K: the
 * partition OpenBLAS's own threads use, under which every element of C is the same sum in
 * the same order (K blocking depends on K alone), so the bits do not depend on the thread
 * count (checked bit for bit on Debian's OpenBLAS 0.3.21 for 2 to 9 panels of each shape of
 * the GPTs). Every panel stays above GEMM_PANEL_MIN_MNK multiply-adds, clear of the
 * small-matrix kernels OpenBLAS picks below about 100^3, which sum differently. With the
 * OpenMP build of OpenBLAS (or OPENBLAS_NUM_THREADS > 1) OpenBLAS threads the call itself. */
#define GEMM_PANEL_MIN_MNK (1 << 21)
static int gemm_panels(int64_t m, int64_t n, int64_t k) {
    if (omp_in_parallel() || openblas_get_num_threads() != 1) return 1;
    const int64_t d = m >= n ? m : n;
    const double mnk = (double)m * (double)n * (double)k;
    int p = omp_get_max_threads();
    while (p > 1 && (mnk / p < GEMM_PANEL_MIN_MNK || d / p < 32)) p--;
    return p;
}

void dsc_cpu_gemm(dsc_dtype_t dt, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, double alpha,
                  const void *a, int64_t lda, const void *b, int64_t ldb, double beta, void *c, int64_t ldc) {
    if (dsc__cpu_is_half(dt)) {
        dsc__cpu_half_gemm(dt, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return;
    }
    if (m <= 0 || n <= 0) return;
    if (k <= 0) { /* empty inner dimension: C = beta * C */
        for (int64_t i = 0; i < m; i++) {
            for (int64_t j = 0; j < n; j++) {
                if (dt == DSC_F32) {
                    float *cr = (float *)c + i * ldc;
                    cr[j] = beta == 0 ? 0.0f : (float)beta * cr[j];
                } else if (dt == DSC_F64) {
                    double *cr = (double *)c + i * ldc;
                    cr[j] = beta == 0 ? 0.0 : beta * cr[j];
                }
            }
        }
        return;
    }
    const int p = gemm_panels(m, n, k);
    if (p <= 1) {
        gemm_panel(dt, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return;
    }
    /* Panels of C's longer dimension, one per thread, boundaries on 16-element multiples. */
    const bool by_rows = m >= n;
    const int64_t d = by_rows ? m : n;
    const size_t es = dt == DSC_F64 ? sizeof(double) : sizeof(float);
#pragma omp parallel for num_threads(p) schedule(static)
    for (int i = 0; i < p; i++) {
        const int64_t d0 = i == 0 ? 0 : d * i / p / 16 * 16, d1 = i == p - 1 ? d : d * (i + 1) / p / 16 * 16;
        if (d1 <= d0) continue;
        if (by_rows) /* rows d0..d1 of C and of op(A) */
            gemm_panel(dt, trans_a, trans_b, d1 - d0, n, k, alpha, (const char *)a + (trans_a ? d0 : d0 * lda) * es,
                       lda, b, ldb, beta, (char *)c + d0 * ldc * es, ldc);
        else /* columns d0..d1 of C and of op(B) */
            gemm_panel(dt, trans_a, trans_b, m, d1 - d0, k, alpha, a, lda,
                       (const char *)b + (trans_b ? d0 * ldb : d0) * es, ldb, beta, (char *)c + d0 * es, ldc);
    }
}

/* ---- per-type kernels ------------------------------------------------------------ */

/* GELU, tanh approximation: y = 0.5 x (1 + tanh(u)), u = c (x + 0.044715 x^3),
 * c = sqrt(2/pi). Since 0.5 (1 + tanh(u)) = sigmoid(2u) = s, this is y = x s, computed with
 * one exp (several times faster than tanh, and without the cancellation of 1 + tanh(u)
 * for negative x). Its exact derivative: dy/dx = s + x s (1 - s) 2c (1 + 3 * 0.044715 x^2). */
#define GELU_C 0.79788456080286535587989211986876 /* sqrt(2/pi) */

/* exp for floats without a libm call: e^x = 2^n * e^r with n = round(x / ln 2),
 * |r| <= ln2 / 2, e^r by a degree-6 polynomial (Taylor, error < 2 ulp on that interval); inputs are clamped to the finite
 * range, so large |x| saturates to 0 or FLT_MAX-ish instead of inf, which the GELU
 * formula handles the same way. The f32 GELU runs through cpu_simd.inc.h's vexp, this
 * function lane by lane (the baseline compiler does not vectorise the loop below: the
 * clamp's comparisons may trap); this scalar form is the reference it matches bit for bit. */
static inline float expf_vec(float x) {
    x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
    /* round to nearest by adding and removing 1.5 * 2^23 (vectorises with plain SSE2) */
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
    float scale;
    __builtin_memcpy(&scale, &bits, 4);
    return p * scale;
}

/* Loops i over [0, n) in BLOCK-sized blocks (parallel above PAR_MIN) with a SIMD inner
 * loop: for elementwise kernels whose operands are all n long. */
#define SIMD_LOOP_BEGIN(n)                                                                           \
    {                                                                                                \
        const int64_t n_blk_ = ((n) + BLOCK - 1) / BLOCK;                                            \
        const int par_ = (n) >= PAR_MIN;                                                             \
        _Pragma("omp parallel for if(par_) schedule(static)")                                        \
        for (int64_t blk_ = 0; blk_ < n_blk_; blk_++) {                                              \
            const int64_t i0_ = blk_ * BLOCK, i1_ = min64((n), i0_ + BLOCK);                         \
            _Pragma("omp simd")                                                                      \
            for (int64_t i = i0_; i < i1_; i++) {
#define SIMD_LOOP_END \
    }                 \
    }                 \
    }
#define GELU_A 0.044715

/* Loops i over [0, n) in BLOCK-sized blocks, in parallel above PAR_MIN; `j` follows
 * i % n_w (for broadcast operands). Each block runs as segments that end where j wraps,
 * so the innermost loop has no branch and the compiler vectorises it. */
#define BLOCKED_LOOP_BEGIN(n, n_w)                                                                   \
    {                                                                                                \
        const int64_t n_blk_ = ((n) + BLOCK - 1) / BLOCK;                                            \
        const int par_ = (n) >= PAR_MIN;                                                             \
        _Pragma("omp parallel for if(par_) schedule(static)")                                        \
        for (int64_t blk_ = 0; blk_ < n_blk_; blk_++) {                                              \
            const int64_t i0_ = blk_ * BLOCK, i1_ = min64((n), i0_ + BLOCK);                         \
            for (int64_t s_ = i0_, js_ = i0_ % (n_w); s_ < i1_; js_ = 0) {                           \
                const int64_t len_ = min64(i1_ - s_, (n_w) - js_);                                   \
                for (int64_t k_ = 0; k_ < len_; k_++) {                                              \
                    const int64_t i = s_ + k_, j = js_ + k_;
#define BLOCKED_LOOP_END \
    }                    \
    s_ += len_;          \
    }                    \
    }                    \
    }

#define DEFINE_KERNELS(T, SUF, TANH, EXP)                                                                 \
    static void binary_##SUF(dsc_binary_op_t op, int64_t n_a, const T *a, int64_t n_b, const T *b,    \
                             T *out) {                                                                 \
        switch (op) {                                                                                  \
        case DSC_BINARY_ADD:                                                                           \
            BLOCKED_LOOP_BEGIN(n_a, n_b) out[i] = a[i] + b[j];                                         \
            BLOCKED_LOOP_END break;                                                                    \
        case DSC_BINARY_SUB:                                                                           \
            BLOCKED_LOOP_BEGIN(n_a, n_b) out[i] = a[i] - b[j];                                         \
            BLOCKED_LOOP_END break;                                                                    \
        case DSC_BINARY_MUL:                                                                           \
            BLOCKED_LOOP_BEGIN(n_a, n_b) out[i] = a[i] * b[j];                                         \
            BLOCKED_LOOP_END break;                                                                    \
        default: break;                                                                                \
        }                                                                                              \
    }                                                                                                  \
                                                                                                       \
    static void axpy_##SUF(int64_t n, T alpha, const T *x, T *y) {                                     \
        BLOCKED_LOOP_BEGIN(n, n) y[i] += alpha * x[i];                                                 \
        (void)j;                                                                                       \
        BLOCKED_LOOP_END                                                                               \
    }                                                                                                  \
                                                                                                       \
    static void mul_acc_##SUF(int64_t n, T alpha, const T *x, int64_t n_w, const T *w, T *y) {         \
        BLOCKED_LOOP_BEGIN(n, n_w) y[i] += alpha * x[i] * w[j];                                        \
        BLOCKED_LOOP_END                                                                               \
    }                                                                                                  \
                                                                                                       \
    /* y[j] += alpha * sum_r x[r, j] (* w[r, j] when w is set), columns in parallel chunks, rows    \
     * summed in order in double. */                                                               \
    __attribute__((unused)) /* f32: sum_rows_simd_f32 */                                                \
    static void sum_rows_##SUF(int64_t n_rows, int64_t n_cols, double alpha, const T *x, const T *w, \
                               T *y) {                                                                 \
        const int64_t n_chunks = (n_cols + COL_CHUNK - 1) / COL_CHUNK;                                 \
        const int par = n_rows * n_cols >= PAR_MIN && n_chunks > 1;                                    \
        _Pragma("omp parallel for if(par) schedule(static)")                                           \
        for (int64_t ch = 0; ch < n_chunks; ch++) {                                                    \
            const int64_t j0 = ch * COL_CHUNK, j1 = min64(n_cols, j0 + COL_CHUNK);                     \
            double acc[COL_CHUNK] = {0};                                                               \
            for (int64_t r = 0; r < n_rows; r++) {                                                     \
                const T *xr = x + r * n_cols;                                                          \
                if (w) {                                                                               \
                    const T *wr = w + r * n_cols;                                                      \
                    for (int64_t jj = j0; jj < j1; jj++) acc[jj - j0] += (double)xr[jj] * (double)wr[jj]; \
                } else {                                                                               \
                    for (int64_t jj = j0; jj < j1; jj++) acc[jj - j0] += (double)xr[jj];               \
                }                                                                                      \
            }                                                                                          \
            for (int64_t jj = j0; jj < j1; jj++) y[jj] = (T)((double)y[jj] + alpha * acc[jj - j0]);    \
        }                                                                                              \
    }                                                                                                  \
                                                                                                       \
    /* Fixed BLOCK-element blocks summed in double; block sums added in index order. */              \
    static double sum_##SUF(int64_t n, const T *x) {                                                  \
        const int64_t n_blk = (n + BLOCK - 1) / BLOCK;                                                 \
        double total = 0;                                                                              \
        for (int64_t g0 = 0; g0 < n_blk; g0 += SUM_GROUP) {                                            \
            const int64_t g1 = min64(n_blk, g0 + SUM_GROUP);                                           \
            double part[SUM_GROUP];                                                                    \
            const int par = (g1 - g0) * BLOCK >= PAR_MIN;                                              \
            _Pragma("omp parallel for if(par) schedule(static)")                                       \
            for (int64_t bk = g0; bk < g1; bk++) {                                                     \
                const int64_t i0 = bk * BLOCK, i1 = min64(n, i0 + BLOCK);                              \
                double s = 0;                                                                          \
                for (int64_t i = i0; i < i1; i++) s += (double)x[i];                                   \
                part[bk - g0] = s;                                                                     \
            }                                                                                          \
            for (int64_t bk = g0; bk < g1; bk++) total += part[bk - g0];                               \
        }                                                                                              \
        return total;                                                                                  \
    }                                                                                                  \
                                                                                                       \
    static void scale_##SUF(int64_t n, T s, const T *x, T *y) {                                        \
        BLOCKED_LOOP_BEGIN(n, n) y[i] = s * x[i];                                                      \
        (void)j;                                                                                       \
        BLOCKED_LOOP_END                                                                               \
    }                                                                                                  \
                                                                                                       \
    static void fill_##SUF(int64_t n, T v, T *y) {                                                     \
        BLOCKED_LOOP_BEGIN(n, n) y[i] = v;                                                             \
        (void)j;                                                                                       \
        BLOCKED_LOOP_END                                                                               \
    }                                                                                                  \
                                                                                                       \
    static void unary_##SUF(dsc_unary_op_t op, int64_t n, const T *x, T *y) {                          \
        switch (op) {                                                                                  \
        case DSC_UNARY_RELU:                                                                           \
            BLOCKED_LOOP_BEGIN(n, n) y[i] = x[i] > 0 ? x[i] : (T)0;                                    \
            (void)j;                                                                                   \
            BLOCKED_LOOP_END break;                                                                    \
        case DSC_UNARY_GELU:                                                                           \
            SIMD_LOOP_BEGIN(n) const T v = x[i];                                                       \
            y[i] = v / ((T)1 + EXP((T)(-2 * GELU_C) * (v + (T)GELU_A * v * v * v)));                   \
            SIMD_LOOP_END break;                                                                    \
        case DSC_UNARY_TANH:                                                                           \
            BLOCKED_LOOP_BEGIN(n, n) y[i] = TANH(x[i]);                                                \
            (void)j;                                                                                   \
            BLOCKED_LOOP_END break;                                                                    \
        default: break;                                                                                \
        }                                                                                              \
    }                                                                                                  \
                                                                                                       \
    static void unary_backward_##SUF(dsc_unary_op_t op, int64_t n, const T *x, const T *y, const T *dy, \
                                     T *dx) {                                                          \
        switch (op) {                                                                                  \
        case DSC_UNARY_RELU:                                                                           \
            BLOCKED_LOOP_BEGIN(n, n)(void) j;                                                          \
            const T v = x ? x[i] : y[i];                                                               \
            if (v > 0) dx[i] += dy[i];                                                                 \
            BLOCKED_LOOP_END break;                                                                    \
        case DSC_UNARY_GELU:                                                                           \
            SIMD_LOOP_BEGIN(n) const T v = x[i];                                                       \
            const T s = (T)1 / ((T)1 + EXP((T)(-2 * GELU_C) * (v + (T)GELU_A * v * v * v)));          \
            const T d = s + v * s * ((T)1 - s) * (T)(2 * GELU_C) * ((T)1 + (T)(3 * GELU_A) * v * v);   \
            dx[i] += d * dy[i];                                                                        \
            SIMD_LOOP_END break;                                                                    \
        case DSC_UNARY_TANH:                                                                           \
            BLOCKED_LOOP_BEGIN(n, n)(void) j;                                                          \
            const T t = y ? y[i] : TANH(x[i]);                                                         \
            dx[i] += ((T)1 - t * t) * dy[i];                                                           \
            BLOCKED_LOOP_END break;                                                                    \
        default: break;                                                                                \
        }                                                                                              \
    }                                                                                                  \
                                                                                                       \
    /* x [outer, d0, mid, d1, inner] -> out [outer, d1, mid, d0, inner]; each task writes the     \
     * output rows of one (o, j1) pair. */                                                         \
    static void transpose_##SUF(int64_t outer, int64_t d0, int64_t mid, int64_t d1, int64_t inner,    \
                                const T *x, T *out, bool accumulate) {                                 \
        const int64_t n_tasks = outer * d1;                                                            \
        const int par = outer * d0 * mid * d1 * inner >= PAR_MIN && n_tasks > 1;                       \
        _Pragma("omp parallel for if(par) schedule(static)")                                           \
        for (int64_t task = 0; task < n_tasks; task++) {                                               \
            const int64_t o = task / d1, j1 = task % d1;                                               \
            for (int64_t m = 0; m < mid; m++) {                                                        \
                for (int64_t j0 = 0; j0 < d0; j0++) {                                                  \
                    const T *src = x + ((((o * d0 + j0) * mid + m) * d1 + j1) * inner);                \
                    T *dst = out + ((((o * d1 + j1) * mid + m) * d0 + j0) * inner);                    \
                    if (accumulate)                                                                    \
                        for (int64_t k = 0; k < inner; k++) dst[k] += src[k];                          \
                    else                                                                               \
                        for (int64_t k = 0; k < inner; k++) dst[k] = src[k];                           \
                }                                                                                      \
            }                                                                                          \
        }                                                                                              \
    }

DEFINE_KERNELS(float, f32, tanhf, expf_vec)
DEFINE_KERNELS(double, f64, tanh, exp)

/* ---- dispatch -------------------------------------------------------------------- */

void dsc_cpu_binary(dsc_dtype_t dt, dsc_binary_op_t op, int64_t n_a, const void *a, int64_t n_b, const void *b,
                    void *out) {
    if (dsc__cpu_is_half(dt)) {
        dsc__cpu_half_binary(dt, op, n_a, a, n_b, b, out);
        return;
    }
    if (n_a <= 0 || n_b <= 0) return;
    if (dt == DSC_F32) binary_f32(op, n_a, a, n_b, b, out);
    else if (dt == DSC_F64) binary_f64(op, n_a, a, n_b, b, out);
}

void dsc_cpu_axpy(dsc_dtype_t dt, int64_t n, double alpha, const void *x, void *y) {
    if (dsc__cpu_is_half(dt)) {
        dsc__cpu_half_axpy(dt, n, alpha, x, y);
        return;
    }
    if (n <= 0) return;
    if (dt == DSC_F32) axpy_f32(n, (float)alpha, x, y);
    else if (dt == DSC_F64) axpy_f64(n, alpha, x, y);
}

void dsc_cpu_mul_acc(dsc_dtype_t dt, int64_t n, double alpha, const void *x, int64_t n_w, const void *w, void *y) {
    if (dsc__cpu_is_half(dt)) {
        dsc__cpu_half_mul_acc(dt, n, alpha, x, n_w, w, y);
        return;
    }
    if (n <= 0 || n_w <= 0) return;
    if (dt == DSC_F32) mul_acc_f32(n, (float)alpha, x, n_w, w, y);
    else if (dt == DSC_F64) mul_acc_f64(n, alpha, x, n_w, w, y);
}

/* f32 sum_rows through the SIMD column sums: the same per-column sums (rows in order, in
 * double) in the same COL_CHUNK column tasks as sum_rows_f32. */
static void sum_rows_simd_f32(int64_t n_rows, int64_t n_cols, double alpha, const float *x, const float *w,
                              float *y) {
    const dsc_cpu_simd_t *k = dsc__cpu_simd();
    const int64_t n_chunks = (n_cols + COL_CHUNK - 1) / COL_CHUNK;
    const int par = n_rows * n_cols >= PAR_MIN && n_chunks > 1;
#pragma omp parallel for if (par) schedule(static)
    for (int64_t ch = 0; ch < n_chunks; ch++) {
        const int64_t j0 = ch * COL_CHUNK, j1 = min64(n_cols, j0 + COL_CHUNK);
        double acc[COL_CHUNK] = {0};
        k->col_sums(n_rows, j1 - j0, n_cols, x + j0, w ? w + j0 : NULL, acc);
        for (int64_t jj = j0; jj < j1; jj++) y[jj] = (float)((double)y[jj] + alpha * acc[jj - j0]);
    }
}

void dsc_cpu_sum_rows_acc(dsc_dtype_t dt, int64_t n_rows, int64_t n_cols, double alpha, const void *x, void *y) {
    if (dsc__cpu_is_half(dt)) {
        dsc__cpu_half_sum_rows(dt, n_rows, n_cols, alpha, x, NULL, y);
        return;
    }
    if (n_rows <= 0 || n_cols <= 0) return;
    if (dt == DSC_F32) sum_rows_simd_f32(n_rows, n_cols, alpha, x, NULL, y);
    else if (dt == DSC_F64) sum_rows_f64(n_rows, n_cols, alpha, x, NULL, y);
}

void dsc_cpu_sum_rows_mul_acc(dsc_dtype_t dt, int64_t n_rows, int64_t n_cols, double alpha, const void *x,
                              const void *w, void *y) {
    if (dsc__cpu_is_half(dt)) {
        dsc__cpu_half_sum_rows(dt, n_rows, n_cols, alpha, x, w, y);
        return;
    }
    if (n_rows <= 0 || n_cols <= 0) return;
    if (dt == DSC_F32) sum_rows_simd_f32(n_rows, n_cols, alpha, x, w, y);
    else if (dt == DSC_F64) sum_rows_f64(n_rows, n_cols, alpha, x, w, y);
}

double dsc_cpu_sum(dsc_dtype_t dt, int64_t n, const void *x) {
    if (dsc__cpu_is_half(dt)) return dsc__cpu_half_sum(dt, n, x);
    if (n <= 0) return 0;
    if (dt == DSC_F32) return sum_f32(n, x);
    if (dt == DSC_F64) return sum_f64(n, x);
    return NAN;
}

void dsc_cpu_scale(dsc_dtype_t dt, int64_t n, double s, const void *x, void *y) {
    if (dsc__cpu_is_half(dt)) {
        dsc__cpu_half_scale(dt, n, s, x, y);
        return;
    }
    if (n <= 0) return;
    if (dt == DSC_F32) scale_f32(n, (float)s, x, y);
    else if (dt == DSC_F64) scale_f64(n, s, x, y);
}

void dsc_cpu_fill(dsc_dtype_t dt, int64_t n, double value, void *y) {
    if (dsc__cpu_is_half(dt)) {
        dsc__cpu_half_fill(dt, n, value, y);
        return;
    }
    if (n <= 0) return;
    if (dt == DSC_F32) fill_f32(n, (float)value, y);
    else if (dt == DSC_F64) fill_f64(n, value, y);
}

/* f32 GELU through the SIMD kernels (cpu_simd.h): the same bits as unary_f32's GELU, whose
 * scalar loop the baseline compiler does not vectorise. Blocks of BLOCK elements in parallel. */
static void gelu_simd_f32(int64_t n, const float *x, const float *dy, float *y) {
    const dsc_cpu_simd_t *k = dsc__cpu_simd();
    const int64_t n_blk = (n + BLOCK - 1) / BLOCK;
#pragma omp parallel for if (n >= PAR_MIN) schedule(static)
    for (int64_t b = 0; b < n_blk; b++) {
        const int64_t i0 = b * BLOCK, m = min64(n, i0 + BLOCK) - i0;
        if (dy) k->gelu_backward(m, x + i0, dy + i0, y + i0);
        else k->gelu(m, x + i0, y + i0);
    }
}

void dsc_cpu_unary(dsc_dtype_t dt, dsc_unary_op_t op, int64_t n, const void *x, void *y) {
    if (dsc__cpu_is_half(dt)) {
        dsc__cpu_half_unary(dt, op, n, x, y);
        return;
    }
    if (n <= 0) return;
    if (dt == DSC_F32 && op == DSC_UNARY_GELU) gelu_simd_f32(n, x, NULL, y);
    else if (dt == DSC_F32) unary_f32(op, n, x, y);
    else if (dt == DSC_F64) unary_f64(op, n, x, y);
}

void dsc_cpu_unary_backward(dsc_dtype_t dt, dsc_unary_op_t op, int64_t n, const void *x, const void *y,
                            const void *dy, void *dx) {
    if (dsc__cpu_is_half(dt)) {
        dsc__cpu_half_unary_backward(dt, op, n, x, y, dy, dx);
        return;
    }
    if (n <= 0) return;
    if (dt == DSC_F32 && op == DSC_UNARY_GELU) gelu_simd_f32(n, x, dy, dx);
    else if (dt == DSC_F32) unary_backward_f32(op, n, x, y, dy, dx);
    else if (dt == DSC_F64) unary_backward_f64(op, n, x, y, dy, dx);
}

void dsc_cpu_transpose(dsc_dtype_t dt, int64_t outer, int64_t d0, int64_t mid, int64_t d1, int64_t inner,
                       const void *x, void *out, bool accumulate) {
    if (dsc__cpu_is_half(dt)) {
        dsc__cpu_half_transpose(dt, outer, d0, mid, d1, inner, x, out, accumulate);
        return;
    }
    if (outer <= 0 || d0 <= 0 || mid <= 0 || d1 <= 0 || inner <= 0) return;
    if (dt == DSC_F32) transpose_f32(outer, d0, mid, d1, inner, x, out, accumulate);
    else if (dt == DSC_F64) transpose_f64(outer, d0, mid, d1, inner, x, out, accumulate);
}

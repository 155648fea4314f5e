/* 16-bit (bf16, f16) bodies of the elementwise, reduction, gemm and transpose entries
 * (conventions in cpu_half.h: f32 arithmetic, one rounding per output element).
 *
 * gemm: Debian's OpenBLAS 0.3.21 declares cblas_sbgemm in cblas.h but is built without
 * BUILD_BFLOAT16, so the symbol is missing from libopenblas.so (checked with nm -D), and no
 * OpenBLAS has an f16 gemm. The 16-bit gemm therefore widens op(A), op(B) (and C when
 * beta != 0) to f32 scratch, runs the f32 gemm (its panel split over the OpenMP team, so
 * the sums are those of the f32 path) and rounds C back once: f32 accumulation, as sbgemm
 * would do. The conversion is O(MK + KN + MN) against the gemm's O(MNK).
 *
 * The loops follow cpu_basic.c's blocking (BLOCK-element blocks, parallel above PAR_MIN,
 * column chunks for the row reductions), so the results do not depend on the thread count. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>

#include "ops/cpu/cpu_half.h"
#include "ops/cpu/cpu_kernels.h"
#include "ops/cpu/cpu_simd.h"

#define PAR_MIN 32768 /* elements below which loops stay serial (as cpu_basic.c) */
#define BLOCK 4096    /* elements per parallel block */
#define CHUNK 512     /* floats per stack chunk of the widen/compute/round loops */
#define COL_CHUNK 64  /* columns per task of the row reductions */

static inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* y = 0.5 x (1 + tanh(u)) computed as x * sigmoid(2u); see cpu_basic.c. */
#define GELU_C 0.79788456080286535587989211986876
#define GELU_A 0.044715

/* Loops i over [0, n) in BLOCK-sized blocks (parallel above PAR_MIN); j follows i % n_w. */
#define HALF_LOOP_BEGIN(n, n_w)                                                                      \
    {                                                                                                \
        const int64_t n_blk_ = ((n) + BLOCK - 1) / BLOCK;                                            \
        const int par_ = (n) >= PAR_MIN;                                                             \
        _Pragma("omp parallel for if(par_) schedule(static)")                                        \
        for (int64_t blk_ = 0; blk_ < n_blk_; blk_++) {                                              \
            const int64_t i0_ = blk_ * BLOCK, i1_ = min64((n), i0_ + BLOCK);                         \
            for (int64_t s_ = i0_, js_ = i0_ % (n_w); s_ < i1_; js_ = 0) {                           \
                const int64_t len_ = min64(i1_ - s_, (n_w) - js_);                                   \
                for (int64_t k_ = 0; k_ < len_; k_++) {                                              \
                    const int64_t i = s_ + k_, j = js_ + k_;                                         \
                    (void)j;
#define HALF_LOOP_END \
    }                 \
    s_ += len_;       \
    }                 \
    }                 \
    }

#define DEFINE_HALF_KERNELS(SUF, LD, ST)                                                                   \
    static void to_f32_##SUF(int64_t n, const uint16_t *s, float *d) {                                     \
        for (int64_t i = 0; i < n; i++) d[i] = LD(s[i]);                                                   \
    }                                                                                                      \
    static void from_f32_##SUF(int64_t n, const float *s, uint16_t *d) {                                   \
        for (int64_t i = 0; i < n; i++) d[i] = ST(s[i]);                                                   \
    }                                                                                                      \
    static void binary_##SUF(dsc_binary_op_t op, int64_t n_a, const uint16_t *a, int64_t n_b,              \
                             const uint16_t *b, uint16_t *out) {                                           \
        switch (op) {                                                                                      \
        case DSC_BINARY_ADD: HALF_LOOP_BEGIN(n_a, n_b) out[i] = ST(LD(a[i]) + LD(b[j])); HALF_LOOP_END break; \
        case DSC_BINARY_SUB: HALF_LOOP_BEGIN(n_a, n_b) out[i] = ST(LD(a[i]) - LD(b[j])); HALF_LOOP_END break; \
        case DSC_BINARY_MUL: HALF_LOOP_BEGIN(n_a, n_b) out[i] = ST(LD(a[i]) * LD(b[j])); HALF_LOOP_END break; \
        default: break;                                                                                    \
        }                                                                                                  \
    }                                                                                                      \
    static void axpy_##SUF(int64_t n, float alpha, const uint16_t *x, uint16_t *y) {                       \
        HALF_LOOP_BEGIN(n, n) y[i] = ST(LD(y[i]) + alpha * LD(x[i]));                                      \
        HALF_LOOP_END                                                                                      \
    }                                                                                                      \
    static void mul_acc_##SUF(int64_t n, float alpha, const uint16_t *x, int64_t n_w, const uint16_t *w,   \
                              uint16_t *y) {                                                               \
        HALF_LOOP_BEGIN(n, n_w) y[i] = ST(LD(y[i]) + alpha * LD(x[i]) * LD(w[j]));                         \
        HALF_LOOP_END                                                                                      \
    }                                                                                                      \
    /* Column chunks; each column's sum runs over the rows in order, in double, and is added to   \
     * y with one rounding (bias and norm gradients keep their full-precision sums). */           \
    static void sum_rows_##SUF(int64_t n_rows, int64_t n_cols, double alpha, const uint16_t *x,            \
                               const uint16_t *w, uint16_t *y) {                                           \
        const int64_t n_chunks = (n_cols + COL_CHUNK - 1) / COL_CHUNK;                                     \
        _Pragma("omp parallel for if(n_rows * n_cols >= PAR_MIN && n_chunks > 1) schedule(static)")        \
        for (int64_t ch = 0; ch < n_chunks; ch++) {                                                        \
            const int64_t j0 = ch * COL_CHUNK, nj = min64(n_cols, j0 + COL_CHUNK) - j0;                    \
            double acc[COL_CHUNK] = {0};                                                                   \
            for (int64_t r = 0; r < n_rows; r++) {                                                         \
                const uint16_t *xr = x + r * n_cols + j0;                                                  \
                if (w) {                                                                                   \
                    const uint16_t *wr = w + r * n_cols + j0;                                              \
                    for (int64_t jj = 0; jj < nj; jj++) acc[jj] += (double)LD(xr[jj]) * (double)LD(wr[jj]); \
                } else {                                                                                   \
                    for (int64_t jj = 0; jj < nj; jj++) acc[jj] += (double)LD(xr[jj]);                     \
                }                                                                                          \
            }                                                                                              \
            for (int64_t jj = 0; jj < nj; jj++)                                                            \
                y[j0 + jj] = ST((float)((double)LD(y[j0 + jj]) + alpha * acc[jj]));                        \
        }                                                                                                  \
    }                                                                                                      \
    static double sum_##SUF(int64_t n, const uint16_t *x) {                                                \
        const int64_t n_blk = (n + BLOCK - 1) / BLOCK;                                                     \
        double total = 0;                                                                                  \
        for (int64_t bk = 0; bk < n_blk; bk++) {                                                           \
            double s = 0;                                                                                  \
            for (int64_t i = bk * BLOCK; i < min64(n, (bk + 1) * BLOCK); i++) s += (double)LD(x[i]);       \
            total += s;                                                                                    \
        }                                                                                                  \
        return total;                                                                                      \
    }                                                                                                      \
    static void scale_##SUF(int64_t n, float s, const uint16_t *x, uint16_t *y) {                          \
        HALF_LOOP_BEGIN(n, n) y[i] = ST(s * LD(x[i]));                                                     \
        HALF_LOOP_END                                                                                      \
    }                                                                                                      \
    /* GELU through the f32 SIMD kernel on stack chunks: the f32 result, rounded once. */          \
    static void gelu_##SUF(int64_t n, const uint16_t *x, const uint16_t *dy, uint16_t *y) {                \
        const dsc_cpu_simd_t *kern = dsc__cpu_simd();                                                      \
        const int64_t n_blk = (n + CHUNK - 1) / CHUNK;                                                     \
        _Pragma("omp parallel for if(n >= PAR_MIN) schedule(static)")                                      \
        for (int64_t bk = 0; bk < n_blk; bk++) {                                                           \
            const int64_t i0 = bk * CHUNK, m = min64(n, i0 + CHUNK) - i0;                                  \
            float xf[CHUNK], of[CHUNK], df[CHUNK];                                                         \
            to_f32_##SUF(m, x + i0, xf);                                                                   \
            if (dy) {                                                                                      \
                to_f32_##SUF(m, dy + i0, df);                                                              \
                to_f32_##SUF(m, y + i0, of);                                                               \
                kern->gelu_backward(m, xf, df, of);                                                        \
            } else {                                                                                       \
                kern->gelu(m, xf, of);                                                                     \
            }                                                                                              \
            from_f32_##SUF(m, of, y + i0);                                                                 \
        }                                                                                                  \
    }                                                                                                      \
    static void unary_##SUF(dsc_unary_op_t op, int64_t n, const uint16_t *x, uint16_t *y) {               \
        switch (op) {                                                                                      \
        case DSC_UNARY_RELU:                                                                               \
            HALF_LOOP_BEGIN(n, n) y[i] = LD(x[i]) > 0 ? x[i] : ST(0.0f);                                   \
            HALF_LOOP_END break;                                                                           \
        case DSC_UNARY_GELU: gelu_##SUF(n, x, NULL, y); break;                                             \
        case DSC_UNARY_TANH: HALF_LOOP_BEGIN(n, n) y[i] = ST(tanhf(LD(x[i]))); HALF_LOOP_END break;        \
        default: break;                                                                                    \
        }                                                                                                  \
    }                                                                                                      \
    static void unary_backward_##SUF(dsc_unary_op_t op, int64_t n, const uint16_t *x, const uint16_t *y,   \
                                     const uint16_t *dy, uint16_t *dx) {                                   \
        switch (op) {                                                                                      \
        case DSC_UNARY_RELU:                                                                               \
            HALF_LOOP_BEGIN(n, n) if (LD(x ? x[i] : y[i]) > 0) dx[i] = ST(LD(dx[i]) + LD(dy[i]));          \
            HALF_LOOP_END break;                                                                           \
        case DSC_UNARY_GELU: gelu_##SUF(n, x, dy, dx); break;                                              \
        case DSC_UNARY_TANH:                                                                               \
            HALF_LOOP_BEGIN(n, n) const float t = y ? LD(y[i]) : tanhf(LD(x[i]));                          \
            dx[i] = ST(LD(dx[i]) + (1.0f - t * t) * LD(dy[i]));                                            \
            HALF_LOOP_END break;                                                                           \
        default: break;                                                                                    \
        }                                                                                                  \
    }                                                                                                      \
    static void transpose_##SUF(int64_t outer, int64_t d0, int64_t mid, int64_t d1, int64_t inner,        \
                                const uint16_t *x, uint16_t *out, bool accumulate) {                       \
        const int64_t n_tasks = outer * d1;                                                                \
        const int par = outer * d0 * mid * d1 * inner >= PAR_MIN && n_tasks > 1;                           \
        _Pragma("omp parallel for if(par) schedule(static)")                                               \
        for (int64_t task = 0; task < n_tasks; task++) {                                                   \
            const int64_t o = task / d1, j1 = task % d1;                                                   \
            for (int64_t mm = 0; mm < mid; mm++)                                                           \
                for (int64_t j0 = 0; j0 < d0; j0++) {                                                      \
                    const uint16_t *src = x + ((((o * d0 + j0) * mid + mm) * d1 + j1) * inner);            \
                    uint16_t *dst = out + ((((o * d1 + j1) * mid + mm) * d0 + j0) * inner);                \
                    if (accumulate)                                                                        \
                        for (int64_t k = 0; k < inner; k++) dst[k] = ST(LD(dst[k]) + LD(src[k]));          \
                    else                                                                                   \
                        memcpy(dst, src, (size_t)inner * sizeof *dst);                                     \
                }                                                                                          \
        }                                                                                                  \
    }

DEFINE_HALF_KERNELS(bf16, dsc__bf16_ld, dsc__bf16_st)
DEFINE_HALF_KERNELS(f16, dsc__f16_ld, dsc__f16_st)

#define DISPATCH(dt, name, ...)                    \
    do {                                           \
        if ((dt) == DSC_BF16) name##_bf16(__VA_ARGS__); \
        else if ((dt) == DSC_F16) name##_f16(__VA_ARGS__); \
    } while (0)

void dsc__cpu_half_to_f32(dsc_dtype_t dt, int64_t n, const uint16_t *src, float *dst) {
    const int64_t n_blk = (n + BLOCK - 1) / BLOCK;
#pragma omp parallel for if (n >= PAR_MIN) schedule(static)
    for (int64_t b = 0; b < n_blk; b++) DISPATCH(dt, to_f32, min64(n, (b + 1) * BLOCK) - b * BLOCK, src + b * BLOCK, dst + b * BLOCK);
}

void dsc__cpu_f32_to_half(dsc_dtype_t dt, int64_t n, const float *src, uint16_t *dst) {
    const int64_t n_blk = (n + BLOCK - 1) / BLOCK;
#pragma omp parallel for if (n >= PAR_MIN) schedule(static)
    for (int64_t b = 0; b < n_blk; b++)
        DISPATCH(dt, from_f32, min64(n, (b + 1) * BLOCK) - b * BLOCK, src + b * BLOCK, dst + b * BLOCK);
}

void dsc__cpu_half_binary(dsc_dtype_t dt, dsc_binary_op_t op, int64_t n_a, const void *a, int64_t n_b, const void *b,
                          void *out) {
    DISPATCH(dt, binary, op, n_a, a, n_b, b, out);
}
void dsc__cpu_half_axpy(dsc_dtype_t dt, int64_t n, double alpha, const void *x, void *y) {
    DISPATCH(dt, axpy, n, (float)alpha, x, y);
}
void dsc__cpu_half_mul_acc(dsc_dtype_t dt, int64_t n, double alpha, const void *x, int64_t n_w, const void *w,
                           void *y) {
    DISPATCH(dt, mul_acc, n, (float)alpha, x, n_w, w, y);
}
void dsc__cpu_half_sum_rows(dsc_dtype_t dt, int64_t n_rows, int64_t n_cols, double alpha, const void *x,
                            const void *w, void *y) {
    DISPATCH(dt, sum_rows, n_rows, n_cols, alpha, x, w, y);
}
double dsc__cpu_half_sum(dsc_dtype_t dt, int64_t n, const void *x) {
    if (dt == DSC_BF16) return sum_bf16(n, x);
    if (dt == DSC_F16) return sum_f16(n, x);
    return NAN;
}
void dsc__cpu_half_scale(dsc_dtype_t dt, int64_t n, double s, const void *x, void *y) {
    DISPATCH(dt, scale, n, (float)s, x, y);
}
void dsc__cpu_half_fill(dsc_dtype_t dt, int64_t n, double value, void *y) {
    const uint16_t v = dt == DSC_BF16 ? dsc__bf16_st((float)value) : dsc__f16_st((float)value);
    uint16_t *p = y;
#pragma omp parallel for if (n >= PAR_MIN) schedule(static)
    for (int64_t i = 0; i < n; i++) p[i] = v;
}
void dsc__cpu_half_unary(dsc_dtype_t dt, dsc_unary_op_t op, int64_t n, const void *x, void *y) {
    DISPATCH(dt, unary, op, n, x, y);
}
void dsc__cpu_half_unary_backward(dsc_dtype_t dt, dsc_unary_op_t op, int64_t n, const void *x, const void *y,
                                  const void *dy, void *dx) {
    DISPATCH(dt, unary_backward, op, n, x, y, dy, dx);
}
void dsc__cpu_half_transpose(dsc_dtype_t dt, int64_t outer, int64_t d0, int64_t mid, int64_t d1, int64_t inner,
                             const void *x, void *out, bool accumulate) {
    DISPATCH(dt, transpose, outer, d0, mid, d1, inner, x, out, accumulate);
}

/* ---- gemm ------------------------------------------------------------------------ */

/* rows x cols of a strided 16-bit matrix into a dense f32 one (and back). */
static void widen_matrix(dsc_dtype_t dt, int64_t rows, int64_t cols, const uint16_t *src, int64_t ld, float *dst) {
#pragma omp parallel for if (rows * cols >= PAR_MIN) schedule(static)
    for (int64_t r = 0; r < rows; r++) DISPATCH(dt, to_f32, cols, src + r * ld, dst + r * cols);
}
static void round_matrix(dsc_dtype_t dt, int64_t rows, int64_t cols, const float *src, uint16_t *dst, int64_t ld) {
#pragma omp parallel for if (rows * cols >= PAR_MIN) schedule(static)
    for (int64_t r = 0; r < rows; r++) DISPATCH(dt, from_f32, cols, src + r * cols, dst + r * ld);
}

static inline float ld_half(dsc_dtype_t dt, uint16_t v) { return dt == DSC_BF16 ? dsc__bf16_ld(v) : dsc__f16_ld(v); }
static inline uint16_t st_half(dsc_dtype_t dt, float v) { return dt == DSC_BF16 ? dsc__bf16_st(v) : dsc__f16_st(v); }

/* The fallback when scratch cannot be allocated: one dot product per element, in float. */
static void gemm_naive(dsc_dtype_t dt, bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha,
                       const uint16_t *a, int64_t lda, const uint16_t *b, int64_t ldb, float beta, uint16_t *c,
                       int64_t ldc) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            float s = 0;
            for (int64_t p = 0; p < k; p++)
                s += ld_half(dt, ta ? a[p * lda + i] : a[i * lda + p]) * ld_half(dt, tb ? b[j * ldb + p] : b[p * ldb + j]);
            uint16_t *cij = c + i * ldc + j;
            *cij = st_half(dt, alpha * s + (beta == 0 ? 0.0f : beta * ld_half(dt, *cij)));
        }
}

void dsc__cpu_half_gemm(dsc_dtype_t dt, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, double alpha,
                        const void *a, int64_t lda, const void *b, int64_t ldb, double beta, void *c, int64_t ldc) {
    if (m <= 0 || n <= 0) return;
    /* op(A) is stored as a_rows x a_cols with stride lda; op(B) as b_rows x b_cols. */
    const int64_t a_rows = trans_a ? k : m, a_cols = trans_a ? m : k;
    const int64_t b_rows = trans_b ? n : k, b_cols = trans_b ? k : n;
    float *af = malloc((size_t)(a_rows * a_cols + b_rows * b_cols + m * n) * sizeof(float) + 1);
    if (!af) {
        gemm_naive(dt, trans_a, trans_b, m, n, k, (float)alpha, a, lda, b, ldb, (float)beta, c, ldc);
        return;
    }
    float *bf = af + a_rows * a_cols, *cf = bf + b_rows * b_cols;
    widen_matrix(dt, a_rows, a_cols, a, lda, af);
    widen_matrix(dt, b_rows, b_cols, b, ldb, bf);
    if (beta != 0) widen_matrix(dt, m, n, c, ldc, cf);
    dsc_cpu_gemm(DSC_F32, trans_a, trans_b, m, n, k, alpha, af, a_cols, bf, b_cols, beta, cf, n);
    round_matrix(dt, m, n, cf, c, ldc);
    free(af);
}

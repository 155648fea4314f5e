/* 16-bit (bf16, f16) bodies of the softmax, layer-norm and embedding entries (conventions
 * in cpu_half.h: f32 arithmetic, row sums in double, one rounding per output element).
 * Layer norm's saved mean and rstd are f32, as in llm.c and PyTorch's autocast (its CPU
 * layer norm runs in f32). Parallel loops split rows or column blocks as cpu_nn.c does, so
 * results do not depend on the thread count. */
#include <math.h>
#include <stdlib.h>

#include "ops/cpu/cpu_half.h"

#define NN_PAR_MIN 32768 /* as cpu_nn.c */
#define COL_BLOCK 64     /* column block of the across-row reductions */

#define DEFINE_HALF_NN(SUF, LD, ST)                                                                         \
    /* softmax of one row: max, then sum of exp in double, then the exps again, scaled and     \
     * rounded once (y may alias x, so nothing unrounded is kept in y). */                   \
    static void softmax_row_##SUF(int64_t n, const uint16_t *x, uint16_t *y) {                              \
        if (n <= 0) return;                                                                                 \
        float mx = LD(x[0]);                                                                                \
        for (int64_t j = 1; j < n; j++)                                                                     \
            if (LD(x[j]) > mx) mx = LD(x[j]);                                                               \
        double sum = 0;                                                                                     \
        for (int64_t j = 0; j < n; j++) sum += expf(LD(x[j]) - mx);                                         \
        const float inv = (float)(1.0 / sum);                                                               \
        for (int64_t j = 0; j < n; j++) y[j] = ST(expf(LD(x[j]) - mx) * inv);                               \
    }                                                                                                       \
    static void softmax_##SUF(int64_t n_rows, int64_t n_cols, const uint16_t *x, uint16_t *y) {            \
        _Pragma("omp parallel for schedule(static) if (n_rows * n_cols >= NN_PAR_MIN)")                     \
        for (int64_t r = 0; r < n_rows; r++) softmax_row_##SUF(n_cols, x + r * n_cols, y + r * n_cols);     \
    }                                                                                                       \
    static void softmax_backward_##SUF(int64_t n_rows, int64_t n_cols, const uint16_t *y, const uint16_t *dy, \
                                       uint16_t *dx) {                                                      \
        _Pragma("omp parallel for schedule(static) if (n_rows * n_cols >= NN_PAR_MIN)")                     \
        for (int64_t r = 0; r < n_rows; r++) {                                                              \
            const uint16_t *yr = y + r * n_cols, *dyr = dy + r * n_cols;                                    \
            uint16_t *dxr = dx + r * n_cols;                                                                \
            double dot = 0;                                                                                 \
            for (int64_t j = 0; j < n_cols; j++) dot += (double)LD(dyr[j]) * LD(yr[j]);                     \
            const float s = (float)dot;                                                                     \
            for (int64_t j = 0; j < n_cols; j++) dxr[j] = ST(LD(dxr[j]) + LD(yr[j]) * (LD(dyr[j]) - s));    \
        }                                                                                                   \
    }                                                                                                       \
    static void layernorm_##SUF(int64_t n_rows, int64_t n_cols, double eps, const uint16_t *x,              \
                                const uint16_t *w, const uint16_t *b, uint16_t *y, float *mean, float *rstd) { \
        _Pragma("omp parallel for schedule(static) if (n_rows * n_cols >= NN_PAR_MIN)")                     \
        for (int64_t r = 0; r < n_rows; r++) {                                                              \
            const uint16_t *xr = x + r * n_cols;                                                            \
            uint16_t *yr = y + r * n_cols;                                                                  \
            double m = 0, v = 0;                                                                            \
            for (int64_t j = 0; j < n_cols; j++) m += LD(xr[j]);                                            \
            m /= (double)n_cols;                                                                            \
            for (int64_t j = 0; j < n_cols; j++) {                                                          \
                const double d = LD(xr[j]) - m;                                                             \
                v += d * d;                                                                                 \
            }                                                                                               \
            const float tm = (float)m, trs = (float)(1.0 / sqrt(v / (double)n_cols + eps));                 \
            for (int64_t j = 0; j < n_cols; j++) {                                                          \
                const float o = (LD(xr[j]) - tm) * trs * LD(w[j]);                                          \
                yr[j] = ST(b ? o + LD(b[j]) : o);                                                           \
            }                                                                                               \
            mean[r] = tm;                                                                                   \
            rstd[r] = trs;                                                                                  \
        }                                                                                                   \
    }                                                                                                       \
    static void layernorm_backward_##SUF(int64_t n_rows, int64_t n_cols, const uint16_t *x, const uint16_t *w, \
                                         const float *mean, const float *rstd, const uint16_t *dy, uint16_t *dx, \
                                         uint16_t *dw, uint16_t *db) {                                      \
        if (dx) {                                                                                           \
            _Pragma("omp parallel for schedule(static) if (n_rows * n_cols >= NN_PAR_MIN)")                 \
            for (int64_t r = 0; r < n_rows; r++) {                                                          \
                const uint16_t *xr = x + r * n_cols, *dyr = dy + r * n_cols;                                \
                uint16_t *dxr = dx + r * n_cols;                                                            \
                const float m = mean[r], rs = rstd[r];                                                      \
                double sum_g = 0, sum_gx = 0;                                                               \
                for (int64_t j = 0; j < n_cols; j++) {                                                      \
                    const float g = LD(dyr[j]) * LD(w[j]);                                                  \
                    sum_g += g;                                                                             \
                    sum_gx += (double)g * ((LD(xr[j]) - m) * rs);                                           \
                }                                                                                           \
                const float mg = (float)(sum_g / (double)n_cols), mgx = (float)(sum_gx / (double)n_cols);   \
                for (int64_t j = 0; j < n_cols; j++) {                                                      \
                    const float xh = (LD(xr[j]) - m) * rs;                                                  \
                    dxr[j] = ST(LD(dxr[j]) + rs * (LD(dyr[j]) * LD(w[j]) - mg - xh * mgx));                 \
                }                                                                                           \
            }                                                                                               \
        }                                                                                                   \
        if (!dw && !db) return;                                                                             \
        const int64_t n_blocks = (n_cols + COL_BLOCK - 1) / COL_BLOCK;                                      \
        _Pragma("omp parallel for schedule(static) if (n_rows * n_cols >= NN_PAR_MIN)")                     \
        for (int64_t blk = 0; blk < n_blocks; blk++) {                                                      \
            const int64_t j0 = blk * COL_BLOCK, nj = n_cols - j0 < COL_BLOCK ? n_cols - j0 : COL_BLOCK;     \
            double acc_w[COL_BLOCK] = {0}, acc_b[COL_BLOCK] = {0};                                          \
            for (int64_t r = 0; r < n_rows; r++) {                                                          \
                const uint16_t *xr = x + r * n_cols + j0, *dyr = dy + r * n_cols + j0;                      \
                const float m = mean[r], rs = rstd[r];                                                      \
                for (int64_t j = 0; j < nj; j++) {                                                          \
                    acc_w[j] += (double)LD(dyr[j]) * ((LD(xr[j]) - m) * rs);                                \
                    acc_b[j] += LD(dyr[j]);                                                                 \
                }                                                                                           \
            }                                                                                               \
            for (int64_t j = 0; j < nj; j++) {                                                              \
                if (dw) dw[j0 + j] = ST((float)(LD(dw[j0 + j]) + acc_w[j]));                                \
                if (db) db[j0 + j] = ST((float)(LD(db[j0 + j]) + acc_b[j]));                                \
            }                                                                                               \
        }                                                                                                   \
    }                                                                                                       \
    /* dtable[id] += the rows of that id: with `order` (positions sorted by id, then position)  \
     * each id's rows are summed in f32 in position order and added with one rounding; without \
     * it (no scratch) every row is added and rounded in turn. */                              \
    static void embedding_backward_##SUF(int64_t n_ids, int64_t n_cols, const int32_t *ids,                 \
                                         const int64_t *order, const uint16_t *dout, uint16_t *dtable) {    \
        const int64_t n_blocks = (n_cols + COL_BLOCK - 1) / COL_BLOCK;                                      \
        _Pragma("omp parallel for schedule(static) if (n_ids * n_cols >= NN_PAR_MIN)")                      \
        for (int64_t blk = 0; blk < n_blocks; blk++) {                                                      \
            const int64_t j0 = blk * COL_BLOCK, nj = n_cols - j0 < COL_BLOCK ? n_cols - j0 : COL_BLOCK;     \
            if (!order) {                                                                                   \
                for (int64_t i = 0; i < n_ids; i++) {                                                       \
                    const uint16_t *src = dout + i * n_cols + j0;                                           \
                    uint16_t *dst = dtable + (int64_t)ids[i] * n_cols + j0;                                 \
                    for (int64_t j = 0; j < nj; j++) dst[j] = ST(LD(dst[j]) + LD(src[j]));                  \
                }                                                                                           \
                continue;                                                                                   \
            }                                                                                               \
            for (int64_t g = 0; g < n_ids;) {                                                               \
                const int32_t id = ids[order[g]];                                                           \
                uint16_t *dst = dtable + (int64_t)id * n_cols + j0;                                         \
                float acc[COL_BLOCK];                                                                       \
                for (int64_t j = 0; j < nj; j++) acc[j] = LD(dst[j]);                                       \
                for (; g < n_ids && ids[order[g]] == id; g++) {                                             \
                    const uint16_t *src = dout + order[g] * n_cols + j0;                                    \
                    for (int64_t j = 0; j < nj; j++) acc[j] += LD(src[j]);                                  \
                }                                                                                           \
                for (int64_t j = 0; j < nj; j++) dst[j] = ST(acc[j]);                                       \
            }                                                                                               \
        }                                                                                                   \
    }

DEFINE_HALF_NN(bf16, dsc__bf16_ld, dsc__bf16_st)
DEFINE_HALF_NN(f16, dsc__f16_ld, dsc__f16_st)

#define DISPATCH(dt, name, ...)                             \
    do {                                                    \
        if ((dt) == DSC_BF16) name##_bf16(__VA_ARGS__);     \
        else if ((dt) == DSC_F16) name##_f16(__VA_ARGS__);  \
    } while (0)

void dsc__cpu_half_softmax(dsc_dtype_t dt, int64_t n_rows, int64_t n_cols, const void *x, void *y) {
    DISPATCH(dt, softmax, n_rows, n_cols, x, y);
}
void dsc__cpu_half_softmax_backward(dsc_dtype_t dt, int64_t n_rows, int64_t n_cols, const void *y, const void *dy,
                                    void *dx) {
    DISPATCH(dt, softmax_backward, n_rows, n_cols, y, dy, dx);
}
void dsc__cpu_half_layernorm(dsc_dtype_t dt, int64_t n_rows, int64_t n_cols, double eps, const void *x,
                             const void *w, const void *b, void *y, float *mean, float *rstd) {
    DISPATCH(dt, layernorm, n_rows, n_cols, eps, x, w, b, y, mean, rstd);
}
void dsc__cpu_half_layernorm_backward(dsc_dtype_t dt, int64_t n_rows, int64_t n_cols, const void *x, const void *w,
                                      const float *mean, const float *rstd, const void *dy, void *dx, void *dw,
                                      void *db) {
    DISPATCH(dt, layernorm_backward, n_rows, n_cols, x, w, mean, rstd, dy, dx, dw, db);
}

void dsc__cpu_half_embedding(int64_t n_ids, int64_t n_cols, const int32_t *ids, const void *table, void *out) {
    const uint16_t *t = table;
    uint16_t *o = out;
#pragma omp parallel for schedule(static) if (n_ids * n_cols >= NN_PAR_MIN)
    for (int64_t i = 0; i < n_ids; i++) memcpy(o + i * n_cols, t + (int64_t)ids[i] * n_cols, (size_t)n_cols * 2);
}

/* Keys (id << 32 | position) in increasing order are the positions sorted by id, then
 * position: a total order, so the sort's result is unique (no state beyond the keys). */
static int by_key(const void *pa, const void *pb) {
    const int64_t a = *(const int64_t *)pa, b = *(const int64_t *)pb;
    return a < b ? -1 : (a > b);
}

void dsc__cpu_half_embedding_backward(dsc_dtype_t dt, int64_t n_ids, int64_t n_cols, const int32_t *ids,
                                      const void *dout, void *dtable) {
    if (n_ids <= 0 || n_cols <= 0) return;
    /* ids are checked >= 0 by the op; positions must fit the key's low 32 bits */
    int64_t *order = n_ids < ((int64_t)1 << 32) ? malloc((size_t)n_ids * sizeof *order) : NULL;
    if (order) {
        for (int64_t i = 0; i < n_ids; i++) order[i] = ((int64_t)ids[i] << 32) | i;
        qsort(order, (size_t)n_ids, sizeof *order, by_key);
        for (int64_t i = 0; i < n_ids; i++) order[i] &= 0xffffffff;
    }
    DISPATCH(dt, embedding_backward, n_ids, n_cols, ids, order, dout, dtable);
    free(order);
}

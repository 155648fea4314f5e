/* CPU kernels of the neural-network ops: softmax, layer norm, embedding, fused
 * cross-entropy and Philox dropout (contracts in src/ops/backend.h; attention is in
 * cpu_attention.c).
 *
 * Every loop body is written once, in the template section below, and instantiated for
 * float and double by including this file into itself with T / FN / EXP defined; the
 * exported dsc_cpu_* functions at the end dispatch on the dtype. Cross-entropy and dropout
 * also take bf16/f16 (rows or spans through f32 copies, f32 math).
 *
 * Determinism: parallel loops split independent rows (or column blocks, or dropout spans);
 * every sum is computed by one thread in a fixed order, so results are bitwise identical
 * for any thread count. Reductions across rows (layer-norm dweight/dbias, embedding
 * dtable) run over column blocks, each walking the rows in order. Row reductions (means,
 * softmax sums, log-sum-exps) accumulate in double. Layer norm interleaves the sums of 8
 * rows (DSC_NN_LN_GROUP), each in its own order. */

#ifdef DSC_CPU_NN_TEMPLATE /* ---- template: T is float or double ---- */

/* y[0..n) = softmax(x[0..n)); x and y may alias. */
static void FN(softmax_row)(int64_t n, const T *x, T *y) {
    if (n <= 0) return;
    T mx = x[0];
    for (int64_t j = 1; j < n; j++)
        if (x[j] > mx) mx = x[j];
    double sum = 0;
    for (int64_t j = 0; j < n; j++) {
        T e = EXP(x[j] - mx);
        y[j] = e;
        sum += e;
    }
    T inv = (T)(1.0 / sum);
    for (int64_t j = 0; j < n; j++) y[j] *= inv;
}

static void FN(softmax)(int64_t n_rows, int64_t n_cols, const T *x, T *y) {
#pragma omp parallel for schedule(static) if (n_rows * n_cols >= DSC_NN_PAR_MIN)
    for (int64_t r = 0; r < n_rows; r++) FN(softmax_row)(n_cols, x + r * n_cols, y + r * n_cols);
}

static void FN(softmax_backward)(int64_t n_rows, int64_t n_cols, const T *y, const T *dy, T *dx) {
#pragma omp parallel for schedule(static) if (n_rows * n_cols >= DSC_NN_PAR_MIN)
    for (int64_t r = 0; r < n_rows; r++) {
        const T *yr = y + r * n_cols, *dyr = dy + r * n_cols;
        T *dxr = dx + r * n_cols;
        double dot = 0;
        for (int64_t j = 0; j < n_cols; j++) dot += (double)dyr[j] * yr[j];
        T s = (T)dot;
        for (int64_t j = 0; j < n_cols; j++) dxr[j] += yr[j] * (dyr[j] - s);
    }
}

/* Layer norm of NR consecutive rows (NR a constant after inlining): each row's sums run in
 * column order in double, as one chain per row; the NR chains interleave, so the adds overlap
 * instead of waiting on each other (the same sums, several times faster). */
static inline __attribute__((always_inline)) void FN(layernorm_rows)(int nr, int64_t n_cols, double eps, const T *x,
                                                                    const T *w, const T *b, T *y, T *mean, T *rstd) {
    double m[DSC_NN_LN_GROUP] = {0}, v[DSC_NN_LN_GROUP] = {0};
    for (int64_t j = 0; j < n_cols; j++)
        for (int r = 0; r < nr; r++) m[r] += x[r * n_cols + j];
    for (int r = 0; r < nr; r++) m[r] /= (double)n_cols;
    for (int64_t j = 0; j < n_cols; j++)
        for (int r = 0; r < nr; r++) {
            double d = x[r * n_cols + j] - m[r];
            v[r] += d * d;
        }
    for (int r = 0; r < nr; r++) {
        const T *xr = x + r * n_cols;
        T *yr = y + r * n_cols;
        double vr = v[r] / (double)n_cols;
        T tm = (T)m[r], trs = (T)(1.0 / sqrt(vr + eps));
        if (b) {
            for (int64_t j = 0; j < n_cols; j++) yr[j] = (xr[j] - tm) * trs * w[j] + b[j];
        } else {
            for (int64_t j = 0; j < n_cols; j++) yr[j] = (xr[j] - tm) * trs * w[j];
        }
        mean[r] = tm;
        rstd[r] = trs;
    }
}

static void FN(layernorm)(int64_t n_rows, int64_t n_cols, double eps, const T *x, const T *w, const T *b, T *y,
                          T *mean, T *rstd) {
    const int64_t n_groups = (n_rows + DSC_NN_LN_GROUP - 1) / DSC_NN_LN_GROUP;
#pragma omp parallel for schedule(static) if (n_rows * n_cols >= DSC_NN_PAR_MIN)
    for (int64_t g = 0; g < n_groups; g++) {
        const int64_t r0 = g * DSC_NN_LN_GROUP, o = r0 * n_cols;
        if (n_rows - r0 >= DSC_NN_LN_GROUP)
            FN(layernorm_rows)(DSC_NN_LN_GROUP, n_cols, eps, x + o, w, b, y + o, mean + r0, rstd + r0);
        else
            for (int64_t r = r0; r < n_rows; r++)
                FN(layernorm_rows)(1, n_cols, eps, x + r * n_cols, w, b, y + r * n_cols, mean + r, rstd + r);
    }
}

/* dx of NR consecutive rows; the row sums interleave as in layernorm_rows. */
static inline __attribute__((always_inline)) void FN(layernorm_dx_rows)(int nr, int64_t n_cols, const T *x,
                                                                       const T *w, const T *mean, const T *rstd,
                                                                       const T *dy, T *dx) {
    double sum_g[DSC_NN_LN_GROUP] = {0}, sum_gx[DSC_NN_LN_GROUP] = {0};
    for (int64_t j = 0; j < n_cols; j++)
        for (int r = 0; r < nr; r++) {
            T g = dy[r * n_cols + j] * w[j];
            sum_g[r] += g;
            sum_gx[r] += (double)g * ((x[r * n_cols + j] - mean[r]) * rstd[r]);
        }
    for (int r = 0; r < nr; r++) {
        const T *xr = x + r * n_cols, *dyr = dy + r * n_cols;
        T *dxr = dx + r * n_cols;
        T m = mean[r], rs = rstd[r];
        T mg = (T)(sum_g[r] / (double)n_cols), mgx = (T)(sum_gx[r] / (double)n_cols);
        for (int64_t j = 0; j < n_cols; j++) {
            T xh = (xr[j] - m) * rs;
            dxr[j] += rs * (dyr[j] * w[j] - mg - xh * mgx);
        }
    }
}

static void FN(layernorm_backward)(int64_t n_rows, int64_t n_cols, const T *x, const T *w, const T *mean,
                                   const T *rstd, const T *dy, T *dx, T *dw, T *db) {
    if (dx) {
        const int64_t n_groups = (n_rows + DSC_NN_LN_GROUP - 1) / DSC_NN_LN_GROUP;
#pragma omp parallel for schedule(static) if (n_rows * n_cols >= DSC_NN_PAR_MIN)
        for (int64_t g = 0; g < n_groups; g++) {
            const int64_t r0 = g * DSC_NN_LN_GROUP, o = r0 * n_cols;
            if (n_rows - r0 >= DSC_NN_LN_GROUP)
                FN(layernorm_dx_rows)(DSC_NN_LN_GROUP, n_cols, x + o, w, mean + r0, rstd + r0, dy + o, dx + o);
            else
                for (int64_t r = r0; r < n_rows; r++)
                    FN(layernorm_dx_rows)(1, n_cols, x + r * n_cols, w, mean + r, rstd + r, dy + r * n_cols,
                                          dx + r * n_cols);
        }
    }
    if (!dw && !db) return;
    /* Column blocks, each reducing over all rows in order: deterministic for any thread count. */
    int64_t n_blocks = (n_cols + DSC_NN_COL_BLOCK - 1) / DSC_NN_COL_BLOCK;
#pragma omp parallel for schedule(static) if (n_rows * n_cols >= DSC_NN_PAR_MIN)
    for (int64_t blk = 0; blk < n_blocks; blk++) {
        int64_t j0 = blk * DSC_NN_COL_BLOCK;
        int64_t nj = n_cols - j0 < DSC_NN_COL_BLOCK ? n_cols - j0 : DSC_NN_COL_BLOCK;
        double acc_w[DSC_NN_COL_BLOCK] = {0}, acc_b[DSC_NN_COL_BLOCK] = {0};
        for (int64_t r = 0; r < n_rows; r++) {
            const T *xr = x + r * n_cols + j0, *dyr = dy + r * n_cols + j0;
            T m = mean[r], rs = rstd[r];
            for (int64_t j = 0; j < nj; j++) {
                acc_w[j] += (double)dyr[j] * ((xr[j] - m) * rs);
                acc_b[j] += dyr[j];
            }
        }
        for (int64_t j = 0; j < nj; j++) {
            if (dw) dw[j0 + j] += (T)acc_w[j];
            if (db) db[j0 + j] += (T)acc_b[j];
        }
    }
}

static void FN(embedding)(int64_t n_ids, int64_t n_cols, const int32_t *ids, const T *table, T *out) {
#pragma omp parallel for schedule(static) if (n_ids * n_cols >= DSC_NN_PAR_MIN)
    for (int64_t i = 0; i < n_ids; i++) {
        const T *src = table + (int64_t)ids[i] * n_cols;
        T *dst = out + i * n_cols;
        for (int64_t j = 0; j < n_cols; j++) dst[j] = src[j];
    }
}

static void FN(embedding_backward)(int64_t n_ids, int64_t n_cols, const int32_t *ids, const T *dout, T *dtable) {
    /* Parallel over column blocks: a repeated id accumulates its rows in id order. */
    int64_t n_blocks = (n_cols + DSC_NN_COL_BLOCK - 1) / DSC_NN_COL_BLOCK;
#pragma omp parallel for schedule(static) if (n_ids * n_cols >= DSC_NN_PAR_MIN)
    for (int64_t blk = 0; blk < n_blocks; blk++) {
        int64_t j0 = blk * DSC_NN_COL_BLOCK;
        int64_t nj = n_cols - j0 < DSC_NN_COL_BLOCK ? n_cols - j0 : DSC_NN_COL_BLOCK;
        for (int64_t i = 0; i < n_ids; i++) {
            const T *src = dout + i * n_cols + j0;
            T *dst = dtable + (int64_t)ids[i] * n_cols + j0;
            for (int64_t j = 0; j < nj; j++) dst[j] += src[j];
        }
    }
}

/* log sum_j exp(x[j]) of one logits row, in double (f32: the SIMD exp and 16-lane sum;
 * f64: exp, the sum in order). */
static double FN(ce_lse_row)(int64_t n, const T *x) {
    T mx = x[0];
    for (int64_t j = 1; j < n; j++)
        if (x[j] > mx) mx = x[j];
#if DSC_NN_F32
    return (double)mx + log(dsc__cpu_simd()->exp_sum(n, x, mx));
#else
    double sum = 0;
    for (int64_t j = 0; j < n; j++) sum += EXP(x[j] - mx);
    return (double)mx + log(sum);
#endif
}

/* Fused cross-entropy forward: per-row lse and loss, no probabilities kept. */
static void FN(cross_entropy)(int64_t n_rows, int64_t n_cols, int64_t ld, const T *logits, const int32_t *targets,
                              int32_t ignore_index, T *losses, T *lse) {
#pragma omp parallel for schedule(static) if (n_rows * n_cols >= DSC_NN_PAR_MIN)
    for (int64_t r = 0; r < n_rows; r++) {
        if (targets[r] == ignore_index || n_cols <= 0) {
            losses[r] = lse[r] = 0;
            continue;
        }
        const T *x = logits + r * ld;
        const double l = FN(ce_lse_row)(n_cols, x);
        lse[r] = (T)l;
        losses[r] = (T)(l - (double)x[targets[r]]);
    }
}

/* One row of the backward: d[j] (+)= g (exp(x[j] - lse) - [j == target]); d may alias x
 * (each element is read before it is written). */
static void FN(ce_backward_row)(int64_t n, const T *x, T lse, int32_t target, T g, T *d, bool accumulate) {
#if DSC_NN_F32
    /* g p everywhere (the SIMD exp), then the target's g (p - 1), from values read before
     * the pass (d may alias x) */
    const dsc_cpu_simd_t *k = dsc__cpu_simd();
    const float xt = x[target], d0 = accumulate ? d[target] : 0.0f;
    float pt;
    k->exp_scale(1, &xt, lse, 1.0f, &pt, 0);
    k->exp_scale(n, x, lse, g, d, accumulate);
    d[target] = d0 + g * (pt - 1.0f);
    return;
#endif
    if (accumulate) {
        for (int64_t j = 0; j < n; j++) d[j] += g * (EXP(x[j] - lse) - (j == target ? (T)1 : (T)0));
    } else {
        for (int64_t j = 0; j < n; j++) d[j] = g * (EXP(x[j] - lse) - (j == target ? (T)1 : (T)0));
    }
}

static void FN(cross_entropy_backward)(int64_t n_rows, int64_t n_cols, int64_t ld, const T *logits, const T *lse,
                                       const int32_t *targets, int32_t ignore_index, const T *grad_scale, T *dlogits,
                                       bool accumulate) {
    const T g = grad_scale[0];
#pragma omp parallel for schedule(static) if (n_rows * n_cols >= DSC_NN_PAR_MIN)
    for (int64_t r = 0; r < n_rows; r++) {
        T *d = dlogits + r * ld;
        if (targets[r] == ignore_index) {
            if (!accumulate)
                for (int64_t j = 0; j < n_cols; j++) d[j] = 0;
            continue;
        }
        FN(ce_backward_row)(n_cols, logits + r * ld, lse[r], targets[r], g, d, accumulate);
    }
}

/* Dropout from the Philox stream: y = keep ? x * ks : 0 (forward), dx += keep ? dy * ks : 0
 * (backward); chunks of whole spans, each element independent of the split. */
static void FN(dropout)(int64_t n, uint32_t thr, T ks, uint64_t seed, uint64_t offset, const T *x, T *y,
                        bool backward) {
    const int64_t n_chunks = (n + DSC_NN_DROP_SPAN - 1) / DSC_NN_DROP_SPAN;
#pragma omp parallel for schedule(static) if (n >= DSC_NN_PAR_MIN)
    for (int64_t ch = 0; ch < n_chunks; ch++) {
        const int64_t i0 = ch * DSC_NN_DROP_SPAN, m = n - i0 < DSC_NN_DROP_SPAN ? n - i0 : DSC_NN_DROP_SPAN;
        float keep[DSC_NN_DROP_SPAN];
        dsc__philox_keep_span(seed, offset + (uint64_t)i0, m, thr, 1.0f, keep);
        if (backward) {
            for (int64_t i = 0; i < m; i++)
                if (keep[i] != 0) y[i0 + i] += x[i0 + i] * ks;
        } else {
            for (int64_t i = 0; i < m; i++) y[i0 + i] = keep[i] != 0 ? x[i0 + i] * ks : (T)0;
        }
    }
}

#else /* ---- the file proper ---- */

#include <math.h>
#include <stdlib.h>

#include "ops/cpu/cpu_half.h"
#include "ops/cpu/cpu_kernels.h"
#include "ops/cpu/cpu_simd.h"

/* Elements of work below which a loop stays serial (thread start-up costs more). */
#define DSC_NN_PAR_MIN 32768
/* Rows whose layer-norm sums run interleaved. */
#define DSC_NN_LN_GROUP 8
/* Column block width of the across-row reductions. */
#define DSC_NN_COL_BLOCK 64
/* Elements per dropout span (one mask buffer on the stack). */
#define DSC_NN_DROP_SPAN 256

#define DSC_CPU_NN_TEMPLATE
#define T float
#define FN(name) name##_f32
#define EXP expf
#define DSC_NN_F32 1
#include "ops/cpu/cpu_nn.c"
#undef T
#undef FN
#undef EXP
#undef DSC_NN_F32

#define T double
#define FN(name) name##_f64
#define EXP exp
#define DSC_NN_F32 0
#include "ops/cpu/cpu_nn.c"
#undef T
#undef FN
#undef EXP
#undef DSC_NN_F32
#undef DSC_CPU_NN_TEMPLATE

void dsc_cpu_softmax(dsc_dtype_t dt, int64_t n_rows, int64_t n_cols, const void *x, void *y) {
    if (dsc__cpu_is_half(dt)) {
        dsc__cpu_half_softmax(dt, n_rows, n_cols, x, y);
        return;
    }
    if (dt == DSC_F64) softmax_f64(n_rows, n_cols, x, y);
    else softmax_f32(n_rows, n_cols, x, y);
}

void dsc_cpu_softmax_backward(dsc_dtype_t dt, int64_t n_rows, int64_t n_cols, const void *y, const void *dy, void *dx) {
    if (dsc__cpu_is_half(dt)) {
        dsc__cpu_half_softmax_backward(dt, n_rows, n_cols, y, dy, dx);
        return;
    }
    if (dt == DSC_F64) softmax_backward_f64(n_rows, n_cols, y, dy, dx);
    else softmax_backward_f32(n_rows, n_cols, y, dy, dx);
}

void dsc_cpu_layernorm(dsc_dtype_t dt, int64_t n_rows, int64_t n_cols, double eps, const void *x, const void *w,
                       const void *b, void *y, void *mean, void *rstd) {
    if (dsc__cpu_is_half(dt)) {
        dsc__cpu_half_layernorm(dt, n_rows, n_cols, eps, x, w, b, y, mean, rstd);
        return;
    }
    if (dt == DSC_F64) layernorm_f64(n_rows, n_cols, eps, x, w, b, y, mean, rstd);
    else layernorm_f32(n_rows, n_cols, eps, x, w, b, y, mean, rstd);
}

void dsc_cpu_layernorm_backward(dsc_dtype_t dt, int64_t n_rows, int64_t n_cols, const void *x, const void *w,
                                const void *mean, const void *rstd, const void *dy, void *dx, void *dw, void *db) {
    if (dsc__cpu_is_half(dt)) {
        dsc__cpu_half_layernorm_backward(dt, n_rows, n_cols, x, w, mean, rstd, dy, dx, dw, db);
        return;
    }
    if (dt == DSC_F64) layernorm_backward_f64(n_rows, n_cols, x, w, mean, rstd, dy, dx, dw, db);
    else layernorm_backward_f32(n_rows, n_cols, x, w, mean, rstd, dy, dx, dw, db);
}

void dsc_cpu_embedding(dsc_dtype_t dt, int64_t n_ids, int64_t n_cols, const int32_t *ids, const void *table, void *out) {
    if (dsc__cpu_is_half(dt)) {
        dsc__cpu_half_embedding(n_ids, n_cols, ids, table, out);
        return;
    }
    if (dt == DSC_F64) embedding_f64(n_ids, n_cols, ids, table, out);
    else embedding_f32(n_ids, n_cols, ids, table, out);
}

void dsc_cpu_embedding_backward(dsc_dtype_t dt, int64_t n_ids, int64_t n_cols, const int32_t *ids, const void *dout,
                                void *dtable) {
    if (dsc__cpu_is_half(dt)) {
        dsc__cpu_half_embedding_backward(dt, n_ids, n_cols, ids, dout, dtable);
        return;
    }
    if (dt == DSC_F64) embedding_backward_f64(n_ids, n_cols, ids, dout, dtable);
    else embedding_backward_f32(n_ids, n_cols, ids, dout, dtable);
}

/* 16-bit cross-entropy: each row through an f32 copy (per-thread buffer), f32 math. */
static void cross_entropy_16(dsc_dtype_t dt, int64_t n_rows, int64_t n_cols, int64_t ld, const void *logits,
                             const int32_t *targets, int32_t ignore_index, float *losses, float *lse) {
#pragma omp parallel if (n_rows * n_cols >= DSC_NN_PAR_MIN)
    {
        float *row = malloc((size_t)(n_cols > 0 ? n_cols : 1) * sizeof *row);
#pragma omp for schedule(static)
        for (int64_t r = 0; r < n_rows; r++) {
            if (targets[r] == ignore_index || n_cols <= 0 || !row) {
                losses[r] = lse[r] = targets[r] == ignore_index || n_cols <= 0 ? 0.0f : NAN;
                continue;
            }
            dsc__cpu_to_f32(dt, n_cols, (const char *)logits + 2 * r * ld, row);
            const double l = ce_lse_row_f32(n_cols, row);
            lse[r] = (float)l;
            losses[r] = (float)(l - (double)row[targets[r]]);
        }
        free(row);
    }
}

static void cross_entropy_backward_16(dsc_dtype_t dt, int64_t n_rows, int64_t n_cols, int64_t ld, const void *logits,
                                      const float *lse, const int32_t *targets, int32_t ignore_index,
                                      const float *grad_scale, void *dlogits, bool accumulate) {
    const float g = grad_scale[0];
#pragma omp parallel if (n_rows * n_cols >= DSC_NN_PAR_MIN)
    {
        float *row = malloc((size_t)(2 * (n_cols > 0 ? n_cols : 1)) * sizeof *row), *d = row ? row + n_cols : NULL;
#pragma omp for schedule(static)
        for (int64_t r = 0; r < n_rows; r++) {
            char *dst = (char *)dlogits + 2 * r * ld;
            if (!row) continue;
            if (targets[r] == ignore_index) {
                if (!accumulate) {
                    for (int64_t j = 0; j < n_cols; j++) d[j] = 0;
                    dsc__cpu_from_f32(dt, n_cols, d, dst);
                }
                continue;
            }
            dsc__cpu_to_f32(dt, n_cols, (const char *)logits + 2 * r * ld, row);
            if (accumulate) dsc__cpu_to_f32(dt, n_cols, dst, d);
            ce_backward_row_f32(n_cols, row, lse[r], targets[r], g, d, accumulate);
            dsc__cpu_from_f32(dt, n_cols, d, dst);
        }
        free(row);
    }
}

void dsc_cpu_cross_entropy(dsc_dtype_t dt, int64_t n_rows, int64_t n_cols, int64_t ld, const void *logits,
                           const int32_t *targets, int32_t ignore_index, void *losses, void *lse) {
    if (dt == DSC_F64) cross_entropy_f64(n_rows, n_cols, ld, logits, targets, ignore_index, losses, lse);
    else if (dt == DSC_F32) cross_entropy_f32(n_rows, n_cols, ld, logits, targets, ignore_index, losses, lse);
    else cross_entropy_16(dt, n_rows, n_cols, ld, logits, targets, ignore_index, losses, lse);
}

void dsc_cpu_cross_entropy_backward(dsc_dtype_t dt, int64_t n_rows, int64_t n_cols, int64_t ld, const void *logits,
                                    const void *lse, const int32_t *targets, int32_t ignore_index,
                                    const void *grad_scale, void *dlogits, bool accumulate) {
    if (dt == DSC_F64)
        cross_entropy_backward_f64(n_rows, n_cols, ld, logits, lse, targets, ignore_index, grad_scale, dlogits,
                                   accumulate);
    else if (dt == DSC_F32)
        cross_entropy_backward_f32(n_rows, n_cols, ld, logits, lse, targets, ignore_index, grad_scale, dlogits,
                                   accumulate);
    else
        cross_entropy_backward_16(dt, n_rows, n_cols, ld, logits, lse, targets, ignore_index, grad_scale, dlogits,
                                  accumulate);
}

/* 16-bit dropout: element by element through f32. */
static void dropout_16(dsc_dtype_t dt, int64_t n, uint32_t thr, float ks, uint64_t seed, uint64_t offset,
                       const void *x, void *y, bool backward) {
    const int64_t n_chunks = (n + DSC_NN_DROP_SPAN - 1) / DSC_NN_DROP_SPAN;
#pragma omp parallel for schedule(static) if (n >= DSC_NN_PAR_MIN)
    for (int64_t ch = 0; ch < n_chunks; ch++) {
        const int64_t i0 = ch * DSC_NN_DROP_SPAN, m = n - i0 < DSC_NN_DROP_SPAN ? n - i0 : DSC_NN_DROP_SPAN;
        float keep[DSC_NN_DROP_SPAN], xv[DSC_NN_DROP_SPAN], yv[DSC_NN_DROP_SPAN];
        dsc__philox_keep_span(seed, offset + (uint64_t)i0, m, thr, 1.0f, keep);
        dsc__cpu_to_f32(dt, m, (const char *)x + 2 * i0, xv);
        if (backward) dsc__cpu_to_f32(dt, m, (const char *)y + 2 * i0, yv);
        for (int64_t i = 0; i < m; i++) {
            const float v = keep[i] != 0 ? xv[i] * ks : 0.0f;
            yv[i] = backward ? yv[i] + v : v;
        }
        dsc__cpu_from_f32(dt, m, yv, (char *)y + 2 * i0);
    }
}

static void dropout_any(dsc_dtype_t dt, int64_t n, double p, uint64_t seed, uint64_t offset, const void *x, void *y,
                        bool backward) {
    if (n <= 0) return;
    const uint32_t thr = dsc__philox_threshold(p);
    const double ks = 1.0 / (1.0 - p);
    if (dt == DSC_F64) dropout_f64(n, thr, ks, seed, offset, x, y, backward);
    else if (dt == DSC_F32) dropout_f32(n, thr, (float)ks, seed, offset, x, y, backward);
    else dropout_16(dt, n, thr, (float)ks, seed, offset, x, y, backward);
}

void dsc_cpu_dropout(dsc_dtype_t dt, int64_t n, double p, uint64_t seed, uint64_t offset, const void *x, void *y) {
    dropout_any(dt, n, p, seed, offset, x, y, false);
}

void dsc_cpu_dropout_backward(dsc_dtype_t dt, int64_t n, double p, uint64_t seed, uint64_t offset, const void *dy,
                              void *dx) {
    dropout_any(dt, n, p, seed, offset, dy, dx, true);
}

#endif

/* CPU kernels of the neural-network ops: softmax, layer norm, embedding, causal attention
 * and cross-entropy (contracts in src/ops/backend.h).
 *
 * Every loop body is written once, in the template section below, and instantiated for
 * float and double by including this file into itself with T / FN / EXP / LOG / SQRT
 * defined; the exported dsc_cpu_* functions at the end dispatch on the dtype.
 *
 * Determinism: parallel loops split independent rows (or (batch, head) pairs, or column
 * blocks); every sum is computed by one thread in a fixed order, so results are bitwise
 * identical for any thread count. Reductions across rows (layer-norm dweight/dbias,
 * embedding dtable) run over column blocks, each walking the rows in order; the
 * cross-entropy total sums per-block partials whose block size does not depend on the
 * thread count. Row reductions (means, softmax sums) accumulate in double.
 *
 * f32 attention runs through the SIMD kernels of cpu_simd.h, one (batch, head) per task
 * (the products as register-blocked loops in the scalar loops' order, the row softmax with
 * its own exp and 16-lane sum); this file's f32 attention is its fallback and gives the same
 * bits. Layer norm interleaves the sums of 8 rows (DSC_NN_LN_GROUP), each in its own order. */

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

static T FN(dot)(int64_t n, const T *a, const T *b) {
    T s = 0;
    for (int64_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

/* dp = p * (dp - sum(dp * p)) * scale over one attention row, the sum in double in order
 * (the f64 ATT_DSOFTMAX; f32 uses the SIMD kernels' 16-lane form). */
__attribute__((unused)) static void FN(softmax_row_backward)(int64_t n, T *dp, const T *p, T scale) {
    double s = 0;
    for (int64_t j = 0; j < n; j++) s += (double)dp[j] * p[j];
    T ts = (T)s;
    for (int64_t j = 0; j < n; j++) dp[j] = p[j] * (dp[j] - ts) * scale;
}

/* One query row t of one (batch, head): scores, softmax, dropout, weighted sum of v. */
static void FN(attention_row)(int64_t b, int64_t h, int64_t t, int64_t nt, int64_t c, int64_t n_head, T scale,
                              const T *qkv, const T *mask, T *pre_att, T *att, T *out) {
    int64_t hs = c / n_head, c3 = 3 * c;
    const T *base = qkv + b * nt * c3 + h * hs;
    const T *q = base + t * c3;
    int64_t row = ((b * n_head + h) * nt + t) * nt;
    T *pre = pre_att + row, *a = att + row;
    for (int64_t t2 = 0; t2 <= t; t2++) pre[t2] = FN(dot)(hs, q, base + t2 * c3 + c) * scale;
    ATT_SOFTMAX(t + 1, pre, pre);
    for (int64_t t2 = t + 1; t2 < nt; t2++) pre[t2] = 0;
    if (mask) {
        const T *mr = mask + row;
        for (int64_t t2 = 0; t2 < nt; t2++) a[t2] = pre[t2] * mr[t2];
    } else if (a != pre) {
        for (int64_t t2 = 0; t2 < nt; t2++) a[t2] = pre[t2];
    }
    T *o = out + (b * nt + t) * c + h * hs;
    for (int64_t i = 0; i < hs; i++) o[i] = 0;
    for (int64_t t2 = 0; t2 <= t; t2++) {
        const T *v = base + t2 * c3 + 2 * c;
        T p = a[t2];
        for (int64_t i = 0; i < hs; i++) o[i] += p * v[i];
    }
}

/* unused for f32: attention_simd_f32 / attention_backward_simd_f32 below */
__attribute__((unused)) static void FN(attention)(int64_t nb, int64_t nt, int64_t c, int64_t n_head,
                                                  const T *qkv, const T *mask, T *pre_att, T *att, T *out) {
    int64_t hs = c / n_head;
    T scale = (T)(1.0 / sqrt((double)hs));
#pragma omp parallel for collapse(3) schedule(static, 1) if (nb * n_head * nt * nt * hs >= DSC_NN_PAR_MIN)
    for (int64_t b = 0; b < nb; b++)
        for (int64_t h = 0; h < n_head; h++)
            for (int64_t t = 0; t < nt; t++)
                FN(attention_row)(b, h, t, nt, c, n_head, scale, qkv, mask, pre_att, att, out);
}

/* One (batch, head), rows in order: dv += att^T dout; datt = dout v^T, through the dropout
 * mask and the softmax to the scores; dq += scale dscore k, dk += scale dscore^T q.
 * dp_row (nt elements, may be NULL) keeps d(pre-dropout probabilities) of one row. */
static void FN(attention_head_backward)(int64_t b, int64_t h, int64_t nt, int64_t c, int64_t n_head, T scale,
                                        const T *qkv, const T *mask, const T *pre_att, const T *att, const T *dout,
                                        T *dqkv, T *dp_row) {
    int64_t hs = c / n_head, c3 = 3 * c;
    const T *base = qkv + b * nt * c3 + h * hs;
    T *dbase = dqkv + b * nt * c3 + h * hs;
    for (int64_t t = 0; t < nt; t++) {
        int64_t row = ((b * n_head + h) * nt + t) * nt;
        const T *pre = pre_att + row, *a = att + row, *mr = mask ? mask + row : NULL;
        const T *q = base + t * c3, *dout_t = dout + (b * nt + t) * c + h * hs;
        T *dq = dbase + t * c3;
        double s = 0;
        for (int64_t t2 = 0; t2 <= t; t2++) {
            const T *v = base + t2 * c3 + 2 * c;
            T *dv = dbase + t2 * c3 + 2 * c;
            T p = a[t2];
            for (int64_t i = 0; i < hs; i++) dv[i] += p * dout_t[i];
            T dp = FN(dot)(hs, dout_t, v);
            if (mr) dp *= mr[t2];
            if (dp_row) dp_row[t2] = dp;
            else s += (double)dp * pre[t2];
        }
        /* through the softmax: dp_row becomes d(scores) (ATT_DSOFTMAX), else recomputed */
        if (dp_row) ATT_DSOFTMAX(t + 1, dp_row, pre, scale);
        T ts = (T)s;
        for (int64_t t2 = 0; t2 <= t; t2++) {
            T ds;
            if (dp_row) {
                ds = dp_row[t2];
            } else {
                T dp = FN(dot)(hs, dout_t, base + t2 * c3 + 2 * c);
                if (mr) dp *= mr[t2];
                ds = pre[t2] * (dp - ts) * scale;
            }
            const T *k = base + t2 * c3 + c;
            T *dk = dbase + t2 * c3 + c;
            for (int64_t i = 0; i < hs; i++) {
                dq[i] += ds * k[i];
                dk[i] += ds * q[i];
            }
        }
    }
}

/* Each (b, h) touches only its own columns of dqkv, so the pairs run in parallel. */
/* unused for f32: attention_simd_f32 / attention_backward_simd_f32 below */
__attribute__((unused)) static void FN(attention_backward)(int64_t nb, int64_t nt, int64_t c, int64_t n_head,
                                                           const T *qkv, const T *mask, const T *pre_att,
                                                           const T *att, const T *dout, T *dqkv) {
    int64_t hs = c / n_head;
    T scale = (T)(1.0 / sqrt((double)hs));
#pragma omp parallel if (nb * n_head * nt * nt * hs >= DSC_NN_PAR_MIN)
    {
        /* Row scratch for d(pre-dropout probabilities); without it they are recomputed. */
        T *dp_row = malloc((size_t)nt * sizeof *dp_row);
#pragma omp for collapse(2) schedule(static)
        for (int64_t b = 0; b < nb; b++)
            for (int64_t h = 0; h < n_head; h++)
                FN(attention_head_backward)(b, h, nt, c, n_head, scale, qkv, mask, pre_att, att, dout, dqkv, dp_row);
        free(dp_row);
    }
}

/* Softmax of one logits row into probs; returns logsumexp - x[target] (0 if ignored). */
static double FN(ce_row)(int64_t n, const T *x, int32_t target, int32_t ignore_index, T *p) {
    if (n <= 0) return 0;
    T mx = x[0];
    for (int64_t j = 1; j < n; j++)
        if (x[j] > mx) mx = x[j];
    double sum = 0;
    for (int64_t j = 0; j < n; j++) {
        T e = EXP(x[j] - mx);
        p[j] = e;
        sum += e;
    }
    T inv = (T)(1.0 / sum);
    for (int64_t j = 0; j < n; j++) p[j] *= inv;
    if (target == ignore_index) return 0;
    return (double)mx + log(sum) - (double)x[target];
}

static double FN(cross_entropy)(int64_t n_rows, int64_t n_cols, const T *logits, const int32_t *targets,
                                int32_t ignore_index, T *probs) {
    /* Fixed-size row blocks (at most DSC_NN_CE_BLOCKS of them), summed in order. */
    int64_t blk_rows = (n_rows + DSC_NN_CE_BLOCKS - 1) / DSC_NN_CE_BLOCKS;
    if (blk_rows < 16) blk_rows = 16;
    int64_t n_blocks = (n_rows + blk_rows - 1) / blk_rows;
    double partial[DSC_NN_CE_BLOCKS];
#pragma omp parallel for schedule(static) if (n_rows * n_cols >= DSC_NN_PAR_MIN)
    for (int64_t blk = 0; blk < n_blocks; blk++) {
        int64_t r1 = (blk + 1) * blk_rows < n_rows ? (blk + 1) * blk_rows : n_rows;
        double s = 0;
        for (int64_t r = blk * blk_rows; r < r1; r++)
            s += FN(ce_row)(n_cols, logits + r * n_cols, targets[r], ignore_index, probs + r * n_cols);
        partial[blk] = s;
    }
    double total = 0;
    for (int64_t blk = 0; blk < n_blocks; blk++) total += partial[blk];
    return total;
}

static void FN(cross_entropy_backward)(int64_t n_rows, int64_t n_cols, const T *probs, const int32_t *targets,
                                       int32_t ignore_index, double scale, T *dlogits) {
    T ts = (T)scale;
#pragma omp parallel for schedule(static) if (n_rows * n_cols >= DSC_NN_PAR_MIN)
    for (int64_t r = 0; r < n_rows; r++) {
        if (targets[r] == ignore_index) continue;
        const T *p = probs + r * n_cols;
        T *d = dlogits + r * n_cols;
        for (int64_t j = 0; j < n_cols; j++) d[j] += ts * p[j];
        d[targets[r]] -= ts;
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
/* Most row blocks of the cross-entropy sum. */
#define DSC_NN_CE_BLOCKS 1024

/* The attention's row softmax and its backward: the SIMD kernels' for f32 (so this file's
 * scalar attention, the fallback of attention_simd_f32, gives the same bits), in-order
 * scalar loops for f64. */
#define DSC_CPU_NN_TEMPLATE
#define T float
#define FN(name) name##_f32
#define EXP expf
#define ATT_SOFTMAX(n, x, y) dsc__cpu_simd()->softmax_row((n), (x), (y))
#define ATT_DSOFTMAX(n, dp, p, scale) dsc__cpu_simd()->softmax_row_backward((n), (dp), (p), NULL, (scale))
#include "ops/cpu/cpu_nn.c"
#undef T
#undef FN
#undef EXP
#undef ATT_SOFTMAX
#undef ATT_DSOFTMAX

#define T double
#define FN(name) name##_f64
#define EXP exp
#define ATT_SOFTMAX(n, x, y) softmax_row_f64((n), (x), (y))
#define ATT_DSOFTMAX(n, dp, p, scale) softmax_row_backward_f64((n), (dp), (p), (scale))
#include "ops/cpu/cpu_nn.c"
#undef T
#undef FN
#undef EXP
#undef ATT_SOFTMAX
#undef ATT_DSOFTMAX
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

/* f32 attention through the SIMD kernels (cpu_simd.h), one (batch, head) per task with
 * per-thread scratch; the same bits as attention_f32 / attention_backward_f32, which stand
 * in for a task whose scratch cannot be allocated. */
static void attention_simd_f32(int64_t nb, int64_t nt, int64_t c, int64_t n_head, const float *qkv,
                               const float *mask, float *pre_att, float *att, float *out) {
    const dsc_cpu_simd_t *k = dsc__cpu_simd();
    const int64_t hs = c / n_head, c3 = 3 * c;
    const float scale = (float)(1.0 / sqrt((double)hs));
#pragma omp parallel if (nb * n_head * nt * nt * hs >= DSC_NN_PAR_MIN)
    {
        float *scr = malloc((size_t)dsc__simd_attn_scratch(nt, hs) * sizeof *scr);
#pragma omp for collapse(2) schedule(static)
        for (int64_t b = 0; b < nb; b++)
            for (int64_t h = 0; h < n_head; h++) {
                if (!scr) {
                    for (int64_t t = 0; t < nt; t++)
                        attention_row_f32(b, h, t, nt, c, n_head, scale, qkv, mask, pre_att, att, out);
                    continue;
                }
                const float *base = qkv + b * nt * c3 + h * hs;
                const int64_t m = (b * n_head + h) * nt * nt;
                k->attention_head(nt, hs, c3, c, scale, base, base + c, base + 2 * c, mask ? mask + m : NULL,
                                  pre_att + m, att + m, out + b * nt * c + h * hs, scr);
            }
        free(scr);
    }
}

static void attention_backward_simd_f32(int64_t nb, int64_t nt, int64_t c, int64_t n_head, const float *qkv,
                                        const float *mask, const float *pre_att, const float *att,
                                        const float *dout, float *dqkv) {
    const dsc_cpu_simd_t *k = dsc__cpu_simd();
    const int64_t hs = c / n_head, c3 = 3 * c;
    const float scale = (float)(1.0 / sqrt((double)hs));
#pragma omp parallel if (nb * n_head * nt * nt * hs >= DSC_NN_PAR_MIN)
    {
        float *scr = malloc((size_t)dsc__simd_attn_bwd_scratch(nt, hs) * sizeof *scr);
#pragma omp for collapse(2) schedule(static)
        for (int64_t b = 0; b < nb; b++)
            for (int64_t h = 0; h < n_head; h++) {
                if (!scr) {
                    attention_head_backward_f32(b, h, nt, c, n_head, scale, qkv, mask, pre_att, att, dout, dqkv,
                                                NULL);
                    continue;
                }
                const float *base = qkv + b * nt * c3 + h * hs;
                float *dbase = dqkv + b * nt * c3 + h * hs;
                const int64_t m = (b * n_head + h) * nt * nt;
                k->attention_head_backward(nt, hs, c3, c, scale, base, base + c, base + 2 * c,
                                           mask ? mask + m : NULL, pre_att + m, att + m, dout + b * nt * c + h * hs,
                                           dbase, dbase + c, dbase + 2 * c, scr);
            }
        free(scr);
    }
}

void dsc_cpu_attention(dsc_dtype_t dt, int64_t b, int64_t t, int64_t c, int64_t n_head, const void *qkv,
                       const void *drop_mask, void *pre_att, void *att, void *out) {
    if (dt == DSC_F64) attention_f64(b, t, c, n_head, qkv, drop_mask, pre_att, att, out);
    else attention_simd_f32(b, t, c, n_head, qkv, drop_mask, pre_att, att, out);
}

void dsc_cpu_attention_backward(dsc_dtype_t dt, int64_t b, int64_t t, int64_t c, int64_t n_head, const void *qkv,
                                const void *drop_mask, const void *pre_att, const void *att, const void *dout,
                                void *dqkv) {
    if (dt == DSC_F64) attention_backward_f64(b, t, c, n_head, qkv, drop_mask, pre_att, att, dout, dqkv);
    else attention_backward_simd_f32(b, t, c, n_head, qkv, drop_mask, pre_att, att, dout, dqkv);
}

double dsc_cpu_cross_entropy(dsc_dtype_t dt, int64_t n_rows, int64_t n_cols, const void *logits,
                             const int32_t *targets, int32_t ignore_index, void *probs) {
    if (dt == DSC_F64) return cross_entropy_f64(n_rows, n_cols, logits, targets, ignore_index, probs);
    return cross_entropy_f32(n_rows, n_cols, logits, targets, ignore_index, probs);
}

void dsc_cpu_cross_entropy_backward(dsc_dtype_t dt, int64_t n_rows, int64_t n_cols, const void *probs,
                                    const int32_t *targets, int32_t ignore_index, double scale, void *dlogits) {
    if (dt == DSC_F64) cross_entropy_backward_f64(n_rows, n_cols, probs, targets, ignore_index, scale, dlogits);
    else cross_entropy_backward_f32(n_rows, n_cols, probs, targets, ignore_index, scale, dlogits);
}

#endif

/* CPU kernels of causal attention, flash style (contract in src/ops/backend.h): the
 * forward keeps only the output and a per-row log-sum-exp; the backward recomputes the
 * probabilities from q, k and the lse. Nothing of size T x T is ever allocated.
 *
 * f32: the SIMD kernels of cpu_simd.h (flash_forward / flash_backward: key tiles with an
 * online softmax, register-blocked products), OpenMP over (batch, head, query block) in
 * the forward and over (batch, head) in the backward (dk and dv gather over every query
 * block of a head, so one task owns a head and every sum keeps one order: bitwise
 * identical for any thread count).
 * bf16 / f16: the same f32 kernels on f32 copies of the head's rows (per-thread scratch),
 * the results rounded (out) or added (dqkv) back.
 * f64, and f32 where scratch cannot be allocated: the scalar rows below (two passes per
 * query row: max and sum, then the weighted sum of v; the math in T).
 *
 * Dropout: element (b, h, i, j) is kept iff the 24-bit Philox value at stream position
 * offset + ((b*H + h)*T + i)*T + j is >= ceil(p * 2^24) (the uniform >= p of philox.h),
 * kept probabilities are scaled by 1/(1-p). */
#ifdef DSC_CPU_ATTN_TEMPLATE /* ---- template: T is float or double ---- */

static T FN(dot)(int64_t n, const T *a, const T *b) {
    T s = 0;
    for (int64_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

/* The dropout factor of one element: 1 without dropout, else 0 or ks. */
static inline T FN(keep)(const attn_drop_t *dr, uint64_t pos, T ks) {
    if (!dr->thr) return (T)1;
    return (dsc_philox_u32(dr->seed, pos) >> 8) >= dr->thr ? ks : (T)0;
}

/* Query row i of head (b, h): lse, then out = sum_j p_ij' v_j (accumulated in T). */
static void FN(attention_row)(int64_t b, int64_t h, int64_t i, int64_t nt, int64_t c, int64_t n_head,
                              const T *qkv, const attn_drop_t *dr, T *out, T *lse) {
    const int64_t hs = c / n_head, c3 = 3 * c;
    const T scale = (T)(1.0 / sqrt((double)hs)), ks = (T)(1.0 / (1.0 - dr->p));
    const T *base = qkv + b * nt * c3 + h * hs, *q = base + i * c3;
    T mx = -(T)INFINITY;
    for (int64_t j = 0; j <= i; j++) {
        const T s = FN(dot)(hs, q, base + j * c3 + c) * scale;
        if (s > mx) mx = s;
    }
    double sum = 0;
    for (int64_t j = 0; j <= i; j++) sum += EXP(FN(dot)(hs, q, base + j * c3 + c) * scale - mx);
    const T l = (T)((double)mx + log(sum));
    T *o = out + (b * nt + i) * c + h * hs;
    for (int64_t d = 0; d < hs; d++) o[d] = 0;
    const uint64_t row_pos = dr->offset + (uint64_t)(((b * n_head + h) * nt + i) * nt);
    for (int64_t j = 0; j <= i; j++) {
        const T p = EXP(FN(dot)(hs, q, base + j * c3 + c) * scale - l) * FN(keep)(dr, row_pos + (uint64_t)j, ks);
        if (p == 0) continue;
        const T *v = base + j * c3 + 2 * c;
        for (int64_t d = 0; d < hs; d++) o[d] += p * v[d];
    }
    lse[(b * n_head + h) * nt + i] = l;
}

/* Backward of head (b, h), query rows in order: D = dout . out; per key j <= i:
 * p = exp(s - lse), dp = (dout . v_j) * keep, ds = p (dp - D) scale; dq_i += ds k_j,
 * dk_j += ds q_i, dv_j += p keep dout_i. */
static void FN(attention_head_backward)(int64_t b, int64_t h, int64_t nt, int64_t c, int64_t n_head, const T *qkv,
                                        const T *out, const T *lse, const T *dout, const attn_drop_t *dr, T *dqkv) {
    const int64_t hs = c / n_head, c3 = 3 * c;
    const T scale = (T)(1.0 / sqrt((double)hs)), ks = (T)(1.0 / (1.0 - dr->p));
    const T *base = qkv + b * nt * c3 + h * hs;
    T *dbase = dqkv + b * nt * c3 + h * hs;
    for (int64_t i = 0; i < nt; i++) {
        const T *q = base + i * c3, *g = dout + (b * nt + i) * c + h * hs, *o = out + (b * nt + i) * c + h * hs;
        T *dq = dbase + i * c3;
        double dd = 0;
        for (int64_t d = 0; d < hs; d++) dd += (double)g[d] * (double)o[d];
        const T dsum = (T)dd, l = lse[(b * n_head + h) * nt + i];
        const uint64_t row_pos = dr->offset + (uint64_t)(((b * n_head + h) * nt + i) * nt);
        for (int64_t j = 0; j <= i; j++) {
            const T *k = base + j * c3 + c, *v = base + j * c3 + 2 * c;
            T *dk = dbase + j * c3 + c, *dv = dbase + j * c3 + 2 * c;
            const T p = EXP(FN(dot)(hs, q, k) * scale - l), m = FN(keep)(dr, row_pos + (uint64_t)j, ks);
            const T ds = p * (FN(dot)(hs, g, v) * m - dsum) * scale, pm = p * m;
            for (int64_t d = 0; d < hs; d++) {
                dq[d] += ds * k[d];
                dk[d] += ds * q[d];
                dv[d] += pm * g[d];
            }
        }
    }
}

__attribute__((unused)) static void FN(attention)(int64_t nb, int64_t nt, int64_t c, int64_t n_head, const T *qkv, const attn_drop_t *dr,
                          T *out, T *lse) {
#pragma omp parallel for collapse(3) schedule(dynamic, 4) if (nb * n_head * nt * nt * (c / n_head) >= DSC_ATTN_PAR_MIN)
    for (int64_t b = 0; b < nb; b++)
        for (int64_t h = 0; h < n_head; h++)
            for (int64_t i = 0; i < nt; i++) FN(attention_row)(b, h, i, nt, c, n_head, qkv, dr, out, lse);
}

__attribute__((unused)) static void FN(attention_backward)(int64_t nb, int64_t nt, int64_t c, int64_t n_head, const T *qkv, const T *out,
                                   const T *lse, const T *dout, const attn_drop_t *dr, T *dqkv) {
#pragma omp parallel for collapse(2) schedule(static) if (nb * n_head * nt * nt * (c / n_head) >= DSC_ATTN_PAR_MIN)
    for (int64_t b = 0; b < nb; b++)
        for (int64_t h = 0; h < n_head; h++) FN(attention_head_backward)(b, h, nt, c, n_head, qkv, out, lse, dout, dr, dqkv);
}

#else /* ---- the file proper ---- */

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/philox.h"
#include "ops/cpu/cpu_kernels.h"
#include "ops/cpu/cpu_simd.h"

/* Work (multiply-adds) below which the loops stay serial. */
#define DSC_ATTN_PAR_MIN 32768

typedef struct {
    double p;
    uint32_t thr; /* 0: no dropout */
    uint64_t seed, offset;
} attn_drop_t;

static attn_drop_t drop_of(double p, uint64_t seed, uint64_t offset) {
    attn_drop_t d = {p > 0 ? p : 0, p > 0 ? dsc__philox_threshold(p) : 0, seed, offset};
    return d;
}

#define DSC_CPU_ATTN_TEMPLATE
#define T float
#define FN(name) name##_f32
#define EXP expf
#include "ops/cpu/cpu_attention.c"
#undef T
#undef FN
#undef EXP

#define T double
#define FN(name) name##_f64
#define EXP exp
#include "ops/cpu/cpu_attention.c"
#undef T
#undef FN
#undef EXP
#undef DSC_CPU_ATTN_TEMPLATE

/* The flash arguments of head (b, h) for f32 data laid out as the contract's qkv / out. */
static dsc_flash_head_t flash_args(int64_t b, int64_t h, int64_t nt, int64_t c, int64_t n_head, const float *qkv,
                                   float *out, float *lse, const attn_drop_t *dr) {
    const int64_t hs = c / n_head, c3 = 3 * c;
    const float *base = qkv + b * nt * c3 + h * hs;
    dsc_flash_head_t a = {.t = nt, .hs = hs, .ld = c3, .ldo = c, .scale = (float)(1.0 / sqrt((double)hs)),
                          .q = base, .k = base + c, .v = base + 2 * c, .out = out + b * nt * c + h * hs,
                          .lse = lse + (b * n_head + h) * nt, .seed = dr->seed,
                          .pos0 = dr->offset + (uint64_t)((b * n_head + h) * nt * nt), .drop_thr = dr->thr,
                          .drop_scale = (float)(1.0 / (1.0 - dr->p))};
    return a;
}

/* f32 forward: tasks (b, h, query block); dynamic scheduling evens out the causal
 * imbalance (a later block has more keys), and changes no result. */
static void attention_simd_f32(int64_t nb, int64_t nt, int64_t c, int64_t n_head, const float *qkv,
                               const attn_drop_t *dr, float *out, float *lse) {
    const dsc_cpu_simd_t *k = dsc__cpu_simd();
    const int64_t hs = c / n_head, n_blk = (nt + DSC_FLASH_BLOCK - 1) / DSC_FLASH_BLOCK;
#pragma omp parallel if (nb * n_head * nt * nt * hs >= DSC_ATTN_PAR_MIN)
    {
        float *scr = malloc((size_t)dsc__flash_fwd_scratch(hs) * sizeof *scr);
#pragma omp for collapse(3) schedule(dynamic, 1)
        for (int64_t b = 0; b < nb; b++)
            for (int64_t h = 0; h < n_head; h++)
                for (int64_t blk = 0; blk < n_blk; blk++) {
                    const int64_t i0 = blk * DSC_FLASH_BLOCK, nq = nt - i0 < DSC_FLASH_BLOCK ? nt - i0 : DSC_FLASH_BLOCK;
                    if (!scr) {
                        for (int64_t i = i0; i < i0 + nq; i++)
                            attention_row_f32(b, h, i, nt, c, n_head, qkv, dr, out, lse);
                        continue;
                    }
                    dsc_flash_head_t a = flash_args(b, h, nt, c, n_head, qkv, out, lse, dr);
                    k->flash_forward(&a, i0, nq, scr);
                }
        free(scr);
    }
}

static void attention_backward_simd_f32(int64_t nb, int64_t nt, int64_t c, int64_t n_head, const float *qkv,
                                        const float *out, const float *lse, const float *dout, const attn_drop_t *dr,
                                        float *dqkv) {
    const dsc_cpu_simd_t *k = dsc__cpu_simd();
    const int64_t hs = c / n_head, c3 = 3 * c;
#pragma omp parallel if (nb * n_head * nt * nt * hs >= DSC_ATTN_PAR_MIN)
    {
        float *scr = malloc((size_t)dsc__flash_bwd_scratch(nt, hs) * sizeof *scr);
#pragma omp for collapse(2) schedule(static)
        for (int64_t b = 0; b < nb; b++)
            for (int64_t h = 0; h < n_head; h++) {
                if (!scr) {
                    attention_head_backward_f32(b, h, nt, c, n_head, qkv, out, lse, dout, dr, dqkv);
                    continue;
                }
                dsc_flash_head_t a = flash_args(b, h, nt, c, n_head, qkv, (float *)out, (float *)lse, dr);
                a.dout = dout + b * nt * c + h * hs;
                a.dq = dqkv + b * nt * c3 + h * hs;
                a.dk = a.dq + c;
                a.dv = a.dq + 2 * c;
                k->flash_backward(&a, scr);
            }
        free(scr);
    }
}

/* ---- bf16 / f16: the f32 kernels on f32 copies ---- */

/* Rows [0, n_rows) of head (b, h) of 16-bit qkv into f32 [n_rows, 3 hs] (q | k | v). */
static void head_to_f32(dsc_dtype_t dt, const uint16_t *qkv, int64_t b, int64_t h, int64_t nt, int64_t c,
                        int64_t hs, int64_t n_rows, float *dst) {
    const int64_t c3 = 3 * c;
    for (int64_t i = 0; i < n_rows; i++)
        for (int part = 0; part < 3; part++)
            dsc__cpu_to_f32(dt, hs, qkv + (b * nt + i) * c3 + part * c + h * hs, dst + i * 3 * hs + part * hs);
}

static void attention_16(dsc_dtype_t dt, int64_t nb, int64_t nt, int64_t c, int64_t n_head, const uint16_t *qkv,
                         const attn_drop_t *dr, uint16_t *out, float *lse) {
    const dsc_cpu_simd_t *k = dsc__cpu_simd();
    const int64_t hs = c / n_head, n_blk = (nt + DSC_FLASH_BLOCK - 1) / DSC_FLASH_BLOCK;
#pragma omp parallel if (nb * n_head * nt * nt * hs >= DSC_ATTN_PAR_MIN)
    {
        const size_t n_scr = (size_t)(dsc__flash_fwd_scratch(hs) + nt * 3 * hs + nt * hs);
        float *scr = malloc(n_scr * sizeof *scr);
        float *hq = scr ? scr + dsc__flash_fwd_scratch(hs) : NULL, *ho = hq ? hq + nt * 3 * hs : NULL;
#pragma omp for collapse(3) schedule(dynamic, 1)
        for (int64_t b = 0; b < nb; b++)
            for (int64_t h = 0; h < n_head; h++)
                for (int64_t blk = 0; blk < n_blk; blk++) {
                    if (!scr) continue; /* out of memory: the block stays unwritten */
                    const int64_t i0 = blk * DSC_FLASH_BLOCK, nq = nt - i0 < DSC_FLASH_BLOCK ? nt - i0 : DSC_FLASH_BLOCK;
                    head_to_f32(dt, qkv, b, h, nt, c, hs, i0 + nq, hq);
                    dsc_flash_head_t a = {.t = nt, .hs = hs, .ld = 3 * hs, .ldo = hs,
                                          .scale = (float)(1.0 / sqrt((double)hs)), .q = hq, .k = hq + hs,
                                          .v = hq + 2 * hs, .out = ho, .lse = lse + (b * n_head + h) * nt,
                                          .seed = dr->seed, .pos0 = dr->offset + (uint64_t)((b * n_head + h) * nt * nt),
                                          .drop_thr = dr->thr, .drop_scale = (float)(1.0 / (1.0 - dr->p))};
                    k->flash_forward(&a, i0, nq, scr);
                    for (int64_t r = 0; r < nq; r++)
                        dsc__cpu_from_f32(dt, hs, ho + (i0 + r) * hs, out + (b * nt + i0 + r) * c + h * hs);
                }
        free(scr);
    }
}

static void attention_backward_16(dsc_dtype_t dt, int64_t nb, int64_t nt, int64_t c, int64_t n_head,
                                  const uint16_t *qkv, const uint16_t *out, const float *lse, const uint16_t *dout,
                                  const attn_drop_t *dr, uint16_t *dqkv) {
    const dsc_cpu_simd_t *k = dsc__cpu_simd();
    const int64_t hs = c / n_head, c3 = 3 * c;
#pragma omp parallel if (nb * n_head * nt * nt * hs >= DSC_ATTN_PAR_MIN)
    {
        const int64_t n_flash = dsc__flash_bwd_scratch(nt, hs), n_head_f = nt * 3 * hs;
        float *scr = malloc((size_t)(n_flash + 2 * n_head_f + 2 * nt * hs) * sizeof *scr);
        float *hq = scr ? scr + n_flash : NULL, *hd = hq ? hq + n_head_f : NULL, *ho = hd ? hd + n_head_f : NULL,
              *hg = ho ? ho + nt * hs : NULL;
#pragma omp for collapse(2) schedule(static)
        for (int64_t b = 0; b < nb; b++)
            for (int64_t h = 0; h < n_head; h++) {
                if (!scr) continue;
                head_to_f32(dt, qkv, b, h, nt, c, hs, nt, hq);
                for (int64_t i = 0; i < nt; i++) {
                    dsc__cpu_to_f32(dt, hs, out + (b * nt + i) * c + h * hs, ho + i * hs);
                    dsc__cpu_to_f32(dt, hs, dout + (b * nt + i) * c + h * hs, hg + i * hs);
                }
                memset(hd, 0, (size_t)n_head_f * sizeof *hd);
                dsc_flash_head_t a = {.t = nt, .hs = hs, .ld = 3 * hs, .ldo = hs,
                                      .scale = (float)(1.0 / sqrt((double)hs)), .q = hq, .k = hq + hs, .v = hq + 2 * hs,
                                      .out = ho, .dout = hg, .lse = (float *)lse + (b * n_head + h) * nt,
                                      .dq = hd, .dk = hd + hs, .dv = hd + 2 * hs, .seed = dr->seed,
                                      .pos0 = dr->offset + (uint64_t)((b * n_head + h) * nt * nt),
                                      .drop_thr = dr->thr, .drop_scale = (float)(1.0 / (1.0 - dr->p))};
                k->flash_backward(&a, scr);
                /* dqkv += the f32 gradients, rounded once */
                for (int64_t i = 0; i < nt; i++)
                    for (int part = 0; part < 3; part++) {
                        uint16_t *dst = dqkv + (b * nt + i) * c3 + part * c + h * hs;
                        float cur[DSC_FLASH_BLOCK];
                        for (int64_t d0 = 0; d0 < hs; d0 += DSC_FLASH_BLOCK) {
                            const int64_t m = hs - d0 < DSC_FLASH_BLOCK ? hs - d0 : DSC_FLASH_BLOCK;
                            dsc__cpu_to_f32(dt, m, dst + d0, cur);
                            for (int64_t d = 0; d < m; d++) cur[d] += hd[i * 3 * hs + part * hs + d0 + d];
                            dsc__cpu_from_f32(dt, m, cur, dst + d0);
                        }
                    }
            }
        free(scr);
    }
}

void dsc_cpu_attention(dsc_dtype_t dt, int64_t b, int64_t t, int64_t c, int64_t n_head, const void *qkv,
                       double drop_p, uint64_t seed, uint64_t offset, void *out, void *lse) {
    const attn_drop_t dr = drop_of(drop_p, seed, offset);
    if (dt == DSC_F64) attention_f64(b, t, c, n_head, qkv, &dr, out, lse);
    else if (dt == DSC_F32) attention_simd_f32(b, t, c, n_head, qkv, &dr, out, lse);
    else attention_16(dt, b, t, c, n_head, qkv, &dr, out, lse);
}

void dsc_cpu_attention_backward(dsc_dtype_t dt, int64_t b, int64_t t, int64_t c, int64_t n_head, const void *qkv,
                                const void *out, const void *lse, const void *dout, double drop_p, uint64_t seed,
                                uint64_t offset, void *dqkv) {
    const attn_drop_t dr = drop_of(drop_p, seed, offset);
    if (dt == DSC_F64) attention_backward_f64(b, t, c, n_head, qkv, out, lse, dout, &dr, dqkv);
    else if (dt == DSC_F32) attention_backward_simd_f32(b, t, c, n_head, qkv, out, lse, dout, &dr, dqkv);
    else attention_backward_16(dt, b, t, c, n_head, qkv, out, lse, dout, &dr, dqkv);
}

#endif

/* f32 kernels with explicit SIMD, compiled three times (cpu_simd_sse2.c: baseline x86-64,
 * cpu_simd_avx2.c, cpu_simd_avx512.c) from one body (cpu_simd.inc.h) and picked at run time
 * by dsc__cpu_simd() from the CPU's features. The library itself is built for baseline
 * x86-64, so without these the compiler emits SSE2 at best and nothing for loops over exp.
 *
 * Bits: every output element is the same sequence of IEEE operations on every path (the
 * vectors run across independent outputs; a sum across elements keeps one order for every
 * vector width; contraction into FMA is off in these files), so the three paths give
 * identical results. GELU, the column sums and the attention products equal the scalar f32
 * kernels they replace bit for bit; flash attention has its own exp (vexp) and sum order.
 * Nothing here is parallel: the callers in cpu_basic.c / cpu_nn.c / cpu_attention.c split
 * the work over OpenMP threads. */
#ifndef DSC_OPS_CPU_SIMD_H
#define DSC_OPS_CPU_SIMD_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "core/philox.h"

/* Score rows are padded to a multiple of this many floats (the widest vector). */
#define DSC_SIMD_PAD 16
/* Query rows per task and keys per tile of the flash attention kernels. */
#define DSC_FLASH_BLOCK 64

static inline int64_t dsc__simd_tpad(int64_t t) { return (t + DSC_SIMD_PAD - 1) / DSC_SIMD_PAD * DSC_SIMD_PAD; }

/* One (batch, head) of flash attention in f32 (the contract of the backend's attention
 * entries, src/ops/backend.h). q, k, v point at the head's first column of row 0, rows of
 * stride ld; out / dout at row 0 of the head's output columns, stride ldo; lse at the head's
 * t floats. Dropout: element (i, j) of this head is kept iff the 24-bit Philox value at
 * stream position pos0 + i*t + j is >= drop_thr (see dsc__philox_keep_span); kept
 * probabilities are scaled by drop_scale. drop_thr == 0: no dropout. */
typedef struct dsc_flash_head {
    int64_t t, hs, ld, ldo;
    float scale;
    const float *q, *k, *v;
    float *out;        /* forward writes; backward reads */
    const float *dout; /* backward */
    float *lse;        /* forward writes; backward reads */
    float *dq, *dk, *dv; /* backward accumulates, stride ld */
    uint64_t seed, pos0;
    uint32_t drop_thr;
    float drop_scale;
} dsc_flash_head_t;

/* Scratch floats of flash_forward (one task) and flash_backward (one head). */
static inline int64_t dsc__flash_fwd_scratch(int64_t hs) {
    return hs * DSC_FLASH_BLOCK + DSC_FLASH_BLOCK * DSC_FLASH_BLOCK + DSC_FLASH_BLOCK * hs + 4 * DSC_FLASH_BLOCK;
}
static inline int64_t dsc__flash_bwd_scratch(int64_t t, int64_t hs) {
    return 2 * hs * dsc__simd_tpad(t) + 2 * DSC_FLASH_BLOCK * DSC_FLASH_BLOCK + 2 * DSC_FLASH_BLOCK;
}

/* The dropout rule of src/core/philox.h as an integer test: uniform >= p iff the value's
 * top 24 bits are >= ceil(p * 2^24) (exact: the uniform is a multiple of 2^-24). */
static inline uint32_t dsc__philox_threshold(double p) {
    double t = ceil(p * 16777216.0);
    return p <= 0 ? 0u : t >= 16777216.0 ? 16777216u : (uint32_t)t;
}

/* w[c] = (keep(g0 + c) ? ks : 0) for c < n: one Philox block per 4 positions. */
static inline void dsc__philox_keep_span(uint64_t seed, uint64_t g0, int64_t n, uint32_t thr, float ks, float *w) {
    int64_t c = 0;
    while (c < n) {
        const uint64_t g = g0 + (uint64_t)c, block = g >> 2;
        dsc_philox4_t ctr = {{(uint32_t)block, (uint32_t)(block >> 32), 0u, 0u}};
        dsc_philox4_t r = dsc_philox4x32_10(ctr, (uint32_t)seed, (uint32_t)(seed >> 32));
        for (unsigned lane = (unsigned)(g & 3u); lane < 4u && c < n; lane++, c++)
            w[c] = (r.v[lane] >> 8) >= thr ? ks : 0.0f;
    }
}

typedef struct dsc_cpu_simd {
    const char *name; /* "sse2", "avx2", "avx512" */
    /* GELU (tanh form through one exp, see cpu_basic.c): y = gelu(x); dx += gelu'(x) dy. */
    void (*gelu)(int64_t n, const float *x, float *y);
    void (*gelu_backward)(int64_t n, const float *x, const float *dy, float *dx);
    /* acc[j] += sum over rows r (in order) of x[r * ld + j], times w[r * ld + j] when w is not
     * NULL, in double, for j < n_cols. */
    void (*col_sums)(int64_t n_rows, int64_t n_cols, int64_t ld, const float *x, const float *w, double *acc);
    /* Cross-entropy rows: sum_j exp(x[j] - sub) in double over the 16 fixed lanes; and
     * d[j] = g exp(x[j] - sub) (accumulate: d[j] += ...), d may alias x. */
    double (*exp_sum)(int64_t n, const float *x, float sub);
    void (*exp_scale)(int64_t n, const float *x, float sub, float g, float *d, int accumulate);
    /* Flash attention forward of query rows [i0, i0 + nq) of one head (nq <= DSC_FLASH_BLOCK,
     * i0 a multiple of it): writes their out rows and lse. */
    void (*flash_forward)(const dsc_flash_head_t *a, int64_t i0, int64_t nq, float *scratch);
    /* Flash attention backward of one head: accumulates dq, dk, dv, recomputing the
     * probabilities from q, k and lse. */
    void (*flash_backward)(const dsc_flash_head_t *a, float *scratch);
} dsc_cpu_simd_t;

extern const dsc_cpu_simd_t dsc__cpu_simd_sse2;
extern const dsc_cpu_simd_t dsc__cpu_simd_avx2;
extern const dsc_cpu_simd_t dsc__cpu_simd_avx512;

/* The widest path this CPU (and OS) supports. */
const dsc_cpu_simd_t *dsc__cpu_simd(void);

#endif

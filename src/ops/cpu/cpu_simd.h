/* f32 kernels with explicit SIMD, compiled three times (cpu_simd_sse2.c: baseline x86-64,
 * cpu_simd_avx2.c, cpu_simd_avx512.c) from one body (cpu_simd.inc.h) and picked at run time
 * by dsc__cpu_simd() from the CPU's features. The library itself is built for baseline
 * x86-64, so without these the compiler emits SSE2 at best and nothing for loops over exp.
 *
 * Bits: every output element is the same sequence of IEEE operations on every path (the
 * vectors run across independent outputs; a sum across elements keeps one order for every
 * vector width; contraction into FMA is off in these files), so the three paths give
 * identical results. GELU, the column sums and the attention products equal the scalar f32
 * kernels they replace bit for bit; the attention softmax rows do not (its exp and its sum
 * order are its own). Nothing here is parallel: the callers in cpu_basic.c / cpu_nn.c split the
 * work over OpenMP threads. */
#ifndef DSC_OPS_CPU_SIMD_H
#define DSC_OPS_CPU_SIMD_H

#include <stdint.h>
#include <string.h>

/* Score rows are padded to a multiple of this many floats (the widest vector). */
#define DSC_SIMD_PAD 16

/* Scratch floats attention_head / attention_head_backward need for sequence length t and
 * head size hs (the caller allocates them per thread). */
static inline int64_t dsc__simd_tpad(int64_t t) { return (t + DSC_SIMD_PAD - 1) / DSC_SIMD_PAD * DSC_SIMD_PAD; }
static inline int64_t dsc__simd_attn_scratch(int64_t t, int64_t hs) { return hs * dsc__simd_tpad(t); }
static inline int64_t dsc__simd_attn_bwd_scratch(int64_t t, int64_t hs) { return (hs + t) * dsc__simd_tpad(t); }

typedef struct dsc_cpu_simd {
    const char *name; /* "sse2", "avx2", "avx512" */
    /* GELU (tanh form through one exp, see cpu_basic.c): y = gelu(x); dx += gelu'(x) dy. */
    void (*gelu)(int64_t n, const float *x, float *y);
    void (*gelu_backward)(int64_t n, const float *x, const float *dy, float *dx);
    /* acc[j] += sum over rows r (in order) of x[r * ld + j], times w[r * ld + j] when w is not
     * NULL, in double, for j < n_cols. */
    void (*col_sums)(int64_t n_rows, int64_t n_cols, int64_t ld, const float *x, const float *w, double *acc);
    /* The softmax of one attention row, y = softmax(x) (may alias): exp through the same
     * polynomial as GELU (< 2 ulp), the sum in double over 16 fixed lanes. Backward, in place:
     * dp *= mask (when not NULL), then dp = p * (dp - sum(dp * p)) * scale, the same lanes. */
    void (*softmax_row)(int64_t n, const float *x, float *y);
    void (*softmax_row_backward)(int64_t n, float *dp, const float *p, const float *mask, float scale);
    /* One (batch, head) of causal attention (contract of the backend's attention entries):
     * q, k, v point at the head's first column of rows with stride ld (3C); out rows have
     * stride ldo (C); pre/att/mask are this head's [t, t] matrices (mask may be NULL, att may
     * alias pre). */
    void (*attention_head)(int64_t t, int64_t hs, int64_t ld, int64_t ldo, float scale, const float *q,
                           const float *k, const float *v, const float *mask, float *pre, float *att, float *out,
                           float *scratch);
    /* Backward of one (batch, head): accumulates into dq, dk, dv (rows of stride ld). */
    void (*attention_head_backward)(int64_t t, int64_t hs, int64_t ld, int64_t ldo, float scale, const float *q,
                                    const float *k, const float *v, const float *mask, const float *pre,
                                    const float *att, const float *dout, float *dq, float *dk, float *dv,
                                    float *scratch);
} dsc_cpu_simd_t;

extern const dsc_cpu_simd_t dsc__cpu_simd_sse2;
extern const dsc_cpu_simd_t dsc__cpu_simd_avx2;
extern const dsc_cpu_simd_t dsc__cpu_simd_avx512;

/* The widest path this CPU (and OS) supports. */
const dsc_cpu_simd_t *dsc__cpu_simd(void);

#endif

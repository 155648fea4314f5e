/* 16-bit (bf16, f16) support of the CPU kernels: inline conversions and the 16-bit
 * bodies of the backend entries other than attention, cross-entropy and dropout.
 *
 * Storage is 16 bits, arithmetic is f32: every kernel widens its 16-bit operands to float
 * (exact), computes in float (sums in double, as the f32 kernels do), and rounds each
 * output element to 16 bits once, to nearest even. An accumulating output (d_x += ...)
 * is widened, added in float and rounded once per kernel call, so a gradient that several
 * ops add into rounds once per op, as in PyTorch's bf16 autograd.
 *
 * The conversions give the same bits as dsc_f32_to_bf16 / dsc_bf16_to_f32 /
 * dsc_f32_to_f16 / dsc_f16_to_f32 (src/core/dtype.c; test_ops_half checks it over every
 * 16-bit pattern); they are inline here so the kernels' loops vectorise. */
#ifndef DSC_OPS_CPU_HALF_H
#define DSC_OPS_CPU_HALF_H

#include <stdint.h>
#include <string.h>

#include "ops/backend.h"

static inline bool dsc__cpu_is_half(dsc_dtype_t dt) { return dt == DSC_BF16 || dt == DSC_F16; }

static inline uint32_t dsc__h_f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static inline float dsc__h_bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline float dsc__bf16_ld(uint16_t b) { return dsc__h_bits_f32((uint32_t)b << 16); }

static inline uint16_t dsc__bf16_st(float value) {
    uint32_t x = dsc__h_f32_bits(value);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40u); /* quiet NaN */
    x += 0x7fffu + ((x >> 16) & 1u); /* round to nearest even; overflow carries into Inf */
    return (uint16_t)(x >> 16);
}

static inline float dsc__f16_ld(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    if (exp == 0) return dsc__h_bits_f32(dsc__h_f32_bits((float)mant * 5.9604644775390625e-8f) | sign);
    if (exp == 31) return dsc__h_bits_f32(sign | 0x7f800000u | (mant << 13));
    return dsc__h_bits_f32(sign | ((exp + 112u) << 23) | (mant << 13));
}

static inline uint16_t dsc__f16_st(float value) {
    uint32_t x = dsc__h_f32_bits(value);
    uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) return (uint16_t)(sign | (ax > 0x7f800000u ? 0x7e00u | ((ax >> 13) & 0x3ffu) : 0x7c00u));
    if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);
    if (ax < 0x38800000u) {
        uint32_t r = dsc__h_f32_bits(dsc__h_bits_f32(ax) + 0.5f) - dsc__h_f32_bits(0.5f);
        return (uint16_t)(sign | r);
    }
    uint32_t odd = (ax >> 13) & 1u;
    ax += 0xc8000000u + 0xfffu + odd;
    return (uint16_t)(sign | (ax >> 13));
}

/* dst[i] = (float)src[i] / src[i] rounded, for i < n; dt is DSC_BF16 or DSC_F16. */
void dsc__cpu_half_to_f32(dsc_dtype_t dt, int64_t n, const uint16_t *src, float *dst);
void dsc__cpu_f32_to_half(dsc_dtype_t dt, int64_t n, const float *src, uint16_t *dst);

/* The 16-bit bodies of the backend entries (contracts in backend.h); dt is DSC_BF16 or
 * DSC_F16. The dsc_cpu_* dispatchers call them. */
void dsc__cpu_half_gemm(dsc_dtype_t dt, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, double alpha,
                        const void *a, int64_t lda, const void *b, int64_t ldb, double beta, void *c, int64_t ldc);
void dsc__cpu_half_binary(dsc_dtype_t dt, dsc_binary_op_t op, int64_t n_a, const void *a, int64_t n_b, const void *b,
                          void *out);
void dsc__cpu_half_axpy(dsc_dtype_t dt, int64_t n, double alpha, const void *x, void *y);
void dsc__cpu_half_mul_acc(dsc_dtype_t dt, int64_t n, double alpha, const void *x, int64_t n_w, const void *w,
                           void *y);
void dsc__cpu_half_sum_rows(dsc_dtype_t dt, int64_t n_rows, int64_t n_cols, double alpha, const void *x,
                            const void *w, void *y);
double dsc__cpu_half_sum(dsc_dtype_t dt, int64_t n, const void *x);
void dsc__cpu_half_scale(dsc_dtype_t dt, int64_t n, double s, const void *x, void *y);
void dsc__cpu_half_fill(dsc_dtype_t dt, int64_t n, double value, void *y);
void dsc__cpu_half_unary(dsc_dtype_t dt, dsc_unary_op_t op, int64_t n, const void *x, void *y);
void dsc__cpu_half_unary_backward(dsc_dtype_t dt, dsc_unary_op_t op, int64_t n, const void *x, const void *y,
                                  const void *dy, void *dx);
void dsc__cpu_half_transpose(dsc_dtype_t dt, int64_t outer, int64_t d0, int64_t mid, int64_t d1, int64_t inner,
                             const void *x, void *out, bool accumulate);

void dsc__cpu_half_softmax(dsc_dtype_t dt, int64_t n_rows, int64_t n_cols, const void *x, void *y);
void dsc__cpu_half_softmax_backward(dsc_dtype_t dt, int64_t n_rows, int64_t n_cols, const void *y, const void *dy,
                                    void *dx);
/* mean and rstd are float (n_rows each). */
void dsc__cpu_half_layernorm(dsc_dtype_t dt, int64_t n_rows, int64_t n_cols, double eps, const void *x,
                             const void *w, const void *b, void *y, float *mean, float *rstd);
void dsc__cpu_half_layernorm_backward(dsc_dtype_t dt, int64_t n_rows, int64_t n_cols, const void *x, const void *w,
                                      const float *mean, const float *rstd, const void *dy, void *dx, void *dw,
                                      void *db);
void dsc__cpu_half_embedding(int64_t n_ids, int64_t n_cols, const int32_t *ids, const void *table, void *out);
void dsc__cpu_half_embedding_backward(dsc_dtype_t dt, int64_t n_ids, int64_t n_cols, const int32_t *ids,
                                      const void *dout, void *dtable);

#endif

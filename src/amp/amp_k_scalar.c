/* Scalar mixed-precision kernels: the reference every vector path must match bit for bit.
 * Conversions go through the scalar definitions in src/core/dtype.c. */
#include "amp/amp_internal.h"

void dsc__amp_sumsq_f32_scalar(const float *x, size_t n, double *acc) {
    size_t i = 0;
    for (; i + DSC_AMP_LANES <= n; i += DSC_AMP_LANES)
        for (size_t j = 0; j < DSC_AMP_LANES; j++) {
            const double v = (double)x[i + j];
            acc[j] += v * v;
        }
    for (size_t j = 0; i + j < n; j++) {
        const double v = (double)x[i + j];
        acc[j] += v * v;
    }
}

void dsc__amp_sumsq_bf16_scalar(const uint16_t *x, size_t n, double *acc) {
    size_t i = 0;
    for (; i + DSC_AMP_LANES <= n; i += DSC_AMP_LANES)
        for (size_t j = 0; j < DSC_AMP_LANES; j++) {
            const double v = (double)dsc_bf16_to_f32(x[i + j]);
            acc[j] += v * v;
        }
    for (size_t j = 0; i + j < n; j++) {
        const double v = (double)dsc_bf16_to_f32(x[i + j]);
        acc[j] += v * v;
    }
}

void dsc__amp_sumsq_f16_scalar(const uint16_t *x, size_t n, double *acc) {
    size_t i = 0;
    for (; i + DSC_AMP_LANES <= n; i += DSC_AMP_LANES)
        for (size_t j = 0; j < DSC_AMP_LANES; j++) {
            const double v = (double)dsc_f16_to_f32(x[i + j]);
            acc[j] += v * v;
        }
    for (size_t j = 0; i + j < n; j++) {
        const double v = (double)dsc_f16_to_f32(x[i + j]);
        acc[j] += v * v;
    }
}

static void f32_to_bf16(uint16_t *dst, const float *src, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = dsc_f32_to_bf16(src[i]);
}
static void f32_to_f16(uint16_t *dst, const float *src, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = dsc_f32_to_f16(src[i]);
}
static void bf16_to_f32(float *dst, const uint16_t *src, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = dsc_bf16_to_f32(src[i]);
}
static void f16_to_f32(float *dst, const uint16_t *src, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = dsc_f16_to_f32(src[i]);
}
static void acc_f32(float *acc, const float *g, size_t n) {
    for (size_t i = 0; i < n; i++) acc[i] += g[i];
}
static void acc_bf16(float *acc, const uint16_t *g, size_t n) {
    for (size_t i = 0; i < n; i++) acc[i] += dsc_bf16_to_f32(g[i]);
}
static void acc_f16(float *acc, const uint16_t *g, size_t n) {
    for (size_t i = 0; i < n; i++) acc[i] += dsc_f16_to_f32(g[i]);
}

const dsc_amp_kernels_t dsc__amp_kernels_scalar = {
    dsc__amp_sumsq_f32_scalar, dsc__amp_sumsq_bf16_scalar, dsc__amp_sumsq_f16_scalar,
    f32_to_bf16, f32_to_f16, bf16_to_f32, f16_to_f32, acc_f32, acc_bf16, acc_f16,
};

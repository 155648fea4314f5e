/* Dtype sizes, names and conversions. f32 -> f16/bf16 round to nearest even; NaN and
 * Inf are preserved; out-of-range values saturate to Inf as IEEE rounding requires. */
#include <math.h>
#include <string.h>

#include "core/bf16.h"
#include "core/internal.h"

size_t dsc_dtype_size(dsc_dtype_t dtype) {
    switch (dtype) {
    case DSC_F32: return 4;
    case DSC_F16: return 2;
    case DSC_BF16: return 2;
    case DSC_I32: return 4;
    case DSC_F64: return 8;
    default: return 0;
    }
}

const char *dsc_dtype_name(dsc_dtype_t dtype) {
    switch (dtype) {
    case DSC_F32: return "f32";
    case DSC_F16: return "f16";
    case DSC_BF16: return "bf16";
    case DSC_I32: return "i32";
    case DSC_F64: return "f64";
    default: return "?";
    }
}

bool dsc__is_float(dsc_dtype_t dtype) { return dtype == DSC_F32 || dtype == DSC_F64 || dtype == DSC_F16 || dtype == DSC_BF16; }

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static float bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t dsc_f32_to_f16(float value) {
    uint32_t x = f32_bits(value);
    uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) /* Inf stays Inf; NaN becomes a quiet NaN keeping its top payload */
        return (uint16_t)(sign | (ax > 0x7f800000u ? 0x7e00u | ((ax >> 13) & 0x3ffu) : 0x7c00u));
    if (ax >= 0x477ff000u) /* >= 65520 rounds past the largest half (65504) */
        return (uint16_t)(sign | 0x7c00u);
    if (ax < 0x38800000u) { /* below 2^-14: a half subnormal or zero */
        /* Adding 0.5 puts the half subnormal unit (2^-24) at the float's last mantissa
         * bit, so the FPU does the round-to-nearest-even for us. */
        uint32_t r = f32_bits(bits_f32(ax) + 0.5f) - f32_bits(0.5f);
        return (uint16_t)(sign | r);
    }
    uint32_t odd = (ax >> 13) & 1u;
    ax += 0xc8000000u + 0xfffu + odd; /* rebias the exponent by -112 and round to even */
    return (uint16_t)(sign | (ax >> 13));
}

float dsc_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    if (exp == 0) {
        float v = (float)mant * 5.9604644775390625e-8f; /* mant * 2^-24, exact */
        return bits_f32(f32_bits(v) | sign);
    }
    if (exp == 31) return bits_f32(sign | 0x7f800000u | (mant << 13));
    return bits_f32(sign | ((exp + 112u) << 23) | (mant << 13));
}

uint16_t dsc_f32_to_bf16(float value) { return dsc__bf16_round(value); }

float dsc_bf16_to_f32(uint16_t b) { return bits_f32((uint32_t)b << 16); }

static double load(const void *src, dsc_dtype_t dt, size_t i) {
    switch (dt) {
    case DSC_F32: return ((const float *)src)[i];
    case DSC_F64: return ((const double *)src)[i];
    case DSC_F16: return dsc_f16_to_f32(((const uint16_t *)src)[i]);
    case DSC_BF16: return dsc_bf16_to_f32(((const uint16_t *)src)[i]);
    case DSC_I32: return ((const int32_t *)src)[i];
    default: return 0;
    }
}

static void store(void *dst, dsc_dtype_t dt, size_t i, double v) {
    switch (dt) {
    case DSC_F32: ((float *)dst)[i] = (float)v; break;
    case DSC_F64: ((double *)dst)[i] = v; break;
    /* Through f32 first: f64 -> f32 -> f16 could double-round, but every value that reaches
     * here from f32/f16/bf16 is exact in f32; f64 sources are test-only. */
    case DSC_F16: ((uint16_t *)dst)[i] = dsc_f32_to_f16((float)v); break;
    case DSC_BF16: ((uint16_t *)dst)[i] = dsc_f32_to_bf16((float)v); break;
    case DSC_I32: /* truncate toward zero, saturating: out-of-range casts are undefined in C */
        ((int32_t *)dst)[i] = !isfinite(v) ? 0 : v >= 2147483647.0 ? INT32_MAX : v <= -2147483648.0 ? INT32_MIN : (int32_t)v;
        break;
    default: break;
    }
}

dsc_status_t dsc_convert(void *dst, dsc_dtype_t dst_dtype, const void *src, dsc_dtype_t src_dtype, size_t n) {
    if (dsc_dtype_size(dst_dtype) == 0 || dsc_dtype_size(src_dtype) == 0) return DSC_ERR_INVALID;
    if (n && (!dst || !src)) return DSC_ERR_INVALID;
    if (dst_dtype == src_dtype) {
        memmove(dst, src, n * dsc_dtype_size(dst_dtype));
        return DSC_OK;
    }
    /* Fast paths for the mixed-precision conversions that run every step. */
    if (src_dtype == DSC_F32 && dst_dtype == DSC_BF16) {
        for (size_t i = 0; i < n; i++) ((uint16_t *)dst)[i] = dsc_f32_to_bf16(((const float *)src)[i]);
    } else if (src_dtype == DSC_BF16 && dst_dtype == DSC_F32) {
        for (size_t i = 0; i < n; i++) ((float *)dst)[i] = dsc_bf16_to_f32(((const uint16_t *)src)[i]);
    } else if (src_dtype == DSC_F32 && dst_dtype == DSC_F16) {
        for (size_t i = 0; i < n; i++) ((uint16_t *)dst)[i] = dsc_f32_to_f16(((const float *)src)[i]);
    } else if (src_dtype == DSC_F16 && dst_dtype == DSC_F32) {
        for (size_t i = 0; i < n; i++) ((float *)dst)[i] = dsc_f16_to_f32(((const uint16_t *)src)[i]);
    } else {
        for (size_t i = 0; i < n; i++) store(dst, dst_dtype, i, load(src, src_dtype, i));
    }
    return DSC_OK;
}

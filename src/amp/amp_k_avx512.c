/* AVX-512 mixed-precision kernels: an AVX-512F table, and an AVX512_BF16 table that differs
 * only in f32 -> bf16 (VCVTNE2PS2BF16). Compiled for those targets whatever the build flags;
 * only called when the CPU and OS support them (dsc__amp_isa_supported). Bit-identical to
 * the scalar path (see amp_internal.h); unaligned loads and stores, scalar tails. */
#include "amp/amp_internal.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#define TGT __attribute__((target("avx512f")))
#define TGT_BF16 __attribute__((target("avx512f,avx512bw,avx512bf16")))

#define ACC_LOAD() __m512d a0 = _mm512_loadu_pd(acc), a1 = _mm512_loadu_pd(acc + 8)
#define ACC_STORE()                                                                            \
    do {                                                                                       \
        _mm512_storeu_pd(acc, a0);                                                             \
        _mm512_storeu_pd(acc + 8, a1);                                                         \
    } while (0)
/* acc lanes 0..7 and 8..15 += squares of the 16 floats v. */
#define SQ_ADD(v)                                                                              \
    do {                                                                                       \
        const __m512d d0 = _mm512_cvtps_pd(_mm512_castps512_ps256(v));                         \
        const __m512d d1 = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1))); \
        a0 = _mm512_add_pd(a0, _mm512_mul_pd(d0, d0));                                         \
        a1 = _mm512_add_pd(a1, _mm512_mul_pd(d1, d1));                                         \
    } while (0)

TGT static inline __m512 load16_bf16(const uint16_t *p) {
    const __m512i w = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(const void *)p));
    return _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
}

/* 16 halves -> 16 floats as dsc_f16_to_f32 (exponent-31 lanes rebuilt: VCVTPH2PS quiets
 * signalling NaNs, the scalar definition does not). */
TGT static inline __m512 load16_f16(const uint16_t *p) {
    const __m256i h = _mm256_loadu_si256((const __m256i *)(const void *)p);
    const __m512 f = _mm512_cvtph_ps(h);
    const __m512i w = _mm512_cvtepu16_epi32(h);
    const __mmask16 special =
        _mm512_cmpeq_epi32_mask(_mm512_and_si512(w, _mm512_set1_epi32(0x7c00)), _mm512_set1_epi32(0x7c00));
    if (!special) return f;
    const __m512i fix = _mm512_or_si512(
        _mm512_or_si512(_mm512_slli_epi32(_mm512_and_si512(w, _mm512_set1_epi32(0x8000)), 16),
                        _mm512_set1_epi32(0x7f800000)),
        _mm512_slli_epi32(_mm512_and_si512(w, _mm512_set1_epi32(0x3ff)), 13));
    return _mm512_mask_blend_ps(special, f, _mm512_castsi512_ps(fix));
}

/* 16 floats -> 16 bf16 (dsc_f32_to_bf16) by integer rounding. */
TGT static inline __m256i bf16_bits16(__m512 v) {
    const __m512i u = _mm512_castps_si512(v);
    const __m512i hi = _mm512_srli_epi32(u, 16);
    const __m512i bias = _mm512_add_epi32(_mm512_set1_epi32(0x7fff), _mm512_and_si512(hi, _mm512_set1_epi32(1)));
    __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, bias), 16);
    const __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    r = _mm512_mask_blend_epi32(nan, r, _mm512_or_si512(hi, _mm512_set1_epi32(0x40)));
    return _mm512_cvtepi32_epi16(r);
}

TGT static void sumsq_f32(const float *x, size_t n, double *acc) {
    ACC_LOAD();
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512 v = _mm512_loadu_ps(x + i);
        SQ_ADD(v);
    }
    ACC_STORE();
    dsc__amp_sumsq_f32_scalar(x + i, n - i, acc);
}

TGT static void sumsq_bf16(const uint16_t *x, size_t n, double *acc) {
    ACC_LOAD();
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512 v = load16_bf16(x + i);
        SQ_ADD(v);
    }
    ACC_STORE();
    dsc__amp_sumsq_bf16_scalar(x + i, n - i, acc);
}

TGT static void sumsq_f16(const uint16_t *x, size_t n, double *acc) {
    ACC_LOAD();
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        /* NaN payloads do not matter: a NaN square is NaN either way. */
        const __m512 v = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)(x + i)));
        SQ_ADD(v);
    }
    ACC_STORE();
    dsc__amp_sumsq_f16_scalar(x + i, n - i, acc);
}

TGT static void f32_to_bf16(uint16_t *dst, const float *src, size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm256_storeu_si256((__m256i *)(void *)(dst + i), bf16_bits16(_mm512_loadu_ps(src + i)));
    for (; i < n; i++) dst[i] = dsc_f32_to_bf16(src[i]);
}

/* 1 in each lane holding an f32 denormal (exponent 0, mantissa non-zero). */
TGT static inline __mmask16 denormal_mask(__m512 v) {
    const __m512i u = _mm512_castps_si512(v);
    return _mm512_testn_epi32_mask(u, _mm512_set1_epi32(0x7f800000)) &
           _mm512_test_epi32_mask(u, _mm512_set1_epi32(0x007fffff));
}

/* VCVTNE2PS2BF16 rounds to nearest even and quiets NaNs exactly as dsc_f32_to_bf16 does, but
 * flushes f32 denormal inputs to zero; a group of 32 holding one uses integer rounding. */
TGT_BF16 static void f32_to_bf16_ne(uint16_t *dst, const float *src, size_t n) {
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        const __m512 lo = _mm512_loadu_ps(src + i), hi = _mm512_loadu_ps(src + i + 16);
        if (denormal_mask(lo) | denormal_mask(hi)) {
            _mm256_storeu_si256((__m256i *)(void *)(dst + i), bf16_bits16(lo));
            _mm256_storeu_si256((__m256i *)(void *)(dst + i + 16), bf16_bits16(hi));
        } else {
            const __m512bh r = _mm512_cvtne2ps_pbh(hi, lo); /* elements 0..15 from lo */
            _mm512_storeu_si512((void *)(dst + i), (__m512i)r);
        }
    }
    for (; i < n; i++) dst[i] = dsc_f32_to_bf16(src[i]);
}

TGT static void f32_to_f16(uint16_t *dst, const float *src, size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm256_storeu_si256((__m256i *)(void *)(dst + i),
                            _mm512_cvtps_ph(_mm512_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    for (; i < n; i++) dst[i] = dsc_f32_to_f16(src[i]);
}

TGT static void bf16_to_f32(float *dst, const uint16_t *src, size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(dst + i, load16_bf16(src + i));
    for (; i < n; i++) dst[i] = dsc_bf16_to_f32(src[i]);
}

TGT static void f16_to_f32(float *dst, const uint16_t *src, size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(dst + i, load16_f16(src + i));
    for (; i < n; i++) dst[i] = dsc_f16_to_f32(src[i]);
}

TGT static void acc_f32(float *acc, const float *g, size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(acc + i, _mm512_add_ps(_mm512_loadu_ps(acc + i), _mm512_loadu_ps(g + i)));
    for (; i < n; i++) acc[i] += g[i];
}

TGT static void acc_bf16(float *acc, const uint16_t *g, size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(acc + i, _mm512_add_ps(_mm512_loadu_ps(acc + i), load16_bf16(g + i)));
    for (; i < n; i++) acc[i] += dsc_bf16_to_f32(g[i]);
}

TGT static void acc_f16(float *acc, const uint16_t *g, size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(acc + i, _mm512_add_ps(_mm512_loadu_ps(acc + i), load16_f16(g + i)));
    for (; i < n; i++) acc[i] += dsc_f16_to_f32(g[i]);
}

const dsc_amp_kernels_t dsc__amp_kernels_avx512 = {
    sumsq_f32, sumsq_bf16, sumsq_f16, f32_to_bf16, f32_to_f16, bf16_to_f32, f16_to_f32, acc_f32, acc_bf16, acc_f16,
};

const dsc_amp_kernels_t dsc__amp_kernels_avx512bf16 = {
    sumsq_f32, sumsq_bf16, sumsq_f16, f32_to_bf16_ne, f32_to_f16, bf16_to_f32, f16_to_f32, acc_f32, acc_bf16, acc_f16,
};

#else /* not x86: never selected (dsc__amp_isa_supported is false) */
const dsc_amp_kernels_t dsc__amp_kernels_avx512 = {0};
const dsc_amp_kernels_t dsc__amp_kernels_avx512bf16 = {0};
#endif

/* AVX2 + F16C mixed-precision kernels. Compiled for that target whatever the build flags;
 * only called when the CPU has them (dsc__amp_isa_supported). Bit-identical to the scalar
 * path (see amp_internal.h); loads and stores are unaligned, tails are scalar. */
#include "amp/amp_internal.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#define TGT __attribute__((target("avx2,f16c")))

/* acc[0..15] += squares of the 16 floats lo (lanes 0..7), hi (lanes 8..15). */
#define SQ_ADD(lo, hi)                                                                         \
    do {                                                                                       \
        const __m256d d0 = _mm256_cvtps_pd(_mm256_castps256_ps128(lo));                        \
        const __m256d d1 = _mm256_cvtps_pd(_mm256_extractf128_ps((lo), 1));                    \
        const __m256d d2 = _mm256_cvtps_pd(_mm256_castps256_ps128(hi));                        \
        const __m256d d3 = _mm256_cvtps_pd(_mm256_extractf128_ps((hi), 1));                    \
        a0 = _mm256_add_pd(a0, _mm256_mul_pd(d0, d0));                                         \
        a1 = _mm256_add_pd(a1, _mm256_mul_pd(d1, d1));                                         \
        a2 = _mm256_add_pd(a2, _mm256_mul_pd(d2, d2));                                         \
        a3 = _mm256_add_pd(a3, _mm256_mul_pd(d3, d3));                                         \
    } while (0)

#define ACC_LOAD()                                                                             \
    __m256d a0 = _mm256_loadu_pd(acc), a1 = _mm256_loadu_pd(acc + 4), a2 = _mm256_loadu_pd(acc + 8), \
            a3 = _mm256_loadu_pd(acc + 12)
#define ACC_STORE()                                                                            \
    do {                                                                                       \
        _mm256_storeu_pd(acc, a0);                                                             \
        _mm256_storeu_pd(acc + 4, a1);                                                         \
        _mm256_storeu_pd(acc + 8, a2);                                                         \
        _mm256_storeu_pd(acc + 12, a3);                                                        \
    } while (0)

TGT static inline __m256 load8_bf16(const uint16_t *p) {
    const __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(const void *)p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
}

/* 8 halves -> 8 floats exactly as dsc_f16_to_f32: VCVTPH2PS quiets signalling NaNs, the
 * scalar definition keeps the payload as is, so exponent-31 lanes are rebuilt by hand. */
TGT static inline __m256 load8_f16(const uint16_t *p) {
    const __m128i h = _mm_loadu_si128((const __m128i *)(const void *)p);
    const __m256 f = _mm256_cvtph_ps(h);
    const __m256i w = _mm256_cvtepu16_epi32(h);
    const __m256i e = _mm256_and_si256(w, _mm256_set1_epi32(0x7c00));
    const __m256i special = _mm256_cmpeq_epi32(e, _mm256_set1_epi32(0x7c00));
    if (_mm256_testz_si256(special, special)) return f;
    const __m256i fix = _mm256_or_si256(
        _mm256_or_si256(_mm256_slli_epi32(_mm256_and_si256(w, _mm256_set1_epi32(0x8000)), 16),
                        _mm256_set1_epi32(0x7f800000)),
        _mm256_slli_epi32(_mm256_and_si256(w, _mm256_set1_epi32(0x3ff)), 13));
    return _mm256_blendv_ps(f, _mm256_castsi256_ps(fix), _mm256_castsi256_ps(special));
}

/* 8 floats -> 8 bf16 in the low 16 bits of each 32-bit lane (dsc_f32_to_bf16). */
TGT static inline __m256i bf16_bits8(__m256 v) {
    const __m256i u = _mm256_castps_si256(v);
    const __m256i hi = _mm256_srli_epi32(u, 16);
    const __m256i bias = _mm256_add_epi32(_mm256_set1_epi32(0x7fff), _mm256_and_si256(hi, _mm256_set1_epi32(1)));
    const __m256i r = _mm256_srli_epi32(_mm256_add_epi32(u, bias), 16);
    const __m256i q = _mm256_or_si256(hi, _mm256_set1_epi32(0x40));
    const __m256 nan = _mm256_cmp_ps(v, v, _CMP_UNORD_Q);
    return _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(r), _mm256_castsi256_ps(q), nan));
}

TGT static void sumsq_f32(const float *x, size_t n, double *acc) {
    ACC_LOAD();
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m256 lo = _mm256_loadu_ps(x + i), hi = _mm256_loadu_ps(x + i + 8);
        SQ_ADD(lo, hi);
    }
    ACC_STORE();
    dsc__amp_sumsq_f32_scalar(x + i, n - i, acc);
}

TGT static void sumsq_bf16(const uint16_t *x, size_t n, double *acc) {
    ACC_LOAD();
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m256 lo = load8_bf16(x + i), hi = load8_bf16(x + i + 8);
        SQ_ADD(lo, hi);
    }
    ACC_STORE();
    dsc__amp_sumsq_bf16_scalar(x + i, n - i, acc);
}

TGT static void sumsq_f16(const uint16_t *x, size_t n, double *acc) {
    ACC_LOAD();
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        /* NaN payloads do not matter here: a NaN square is NaN either way. */
        const __m256 lo = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(x + i)));
        const __m256 hi = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(x + i + 8)));
        SQ_ADD(lo, hi);
    }
    ACC_STORE();
    dsc__amp_sumsq_f16_scalar(x + i, n - i, acc);
}

TGT static void f32_to_bf16(uint16_t *dst, const float *src, size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m256i lo = bf16_bits8(_mm256_loadu_ps(src + i)), hi = bf16_bits8(_mm256_loadu_ps(src + i + 8));
        /* packus works per 128-bit half: [lo0-3 hi0-3 | lo4-7 hi4-7]; reorder the quads. */
        const __m256i p = _mm256_permute4x64_epi64(_mm256_packus_epi32(lo, hi), 0xd8);
        _mm256_storeu_si256((__m256i *)(void *)(dst + i), p);
    }
    for (; i < n; i++) dst[i] = dsc_f32_to_bf16(src[i]);
}

TGT static void f32_to_f16(uint16_t *dst, const float *src, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(void *)(dst + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    for (; i < n; i++) dst[i] = dsc_f32_to_f16(src[i]);
}

TGT static void bf16_to_f32(float *dst, const uint16_t *src, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, load8_bf16(src + i));
    for (; i < n; i++) dst[i] = dsc_bf16_to_f32(src[i]);
}

TGT static void f16_to_f32(float *dst, const uint16_t *src, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, load8_f16(src + i));
    for (; i < n; i++) dst[i] = dsc_f16_to_f32(src[i]);
}

TGT static void acc_f32(float *acc, const float *g, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(acc + i, _mm256_add_ps(_mm256_loadu_ps(acc + i), _mm256_loadu_ps(g + i)));
    for (; i < n; i++) acc[i] += g[i];
}

TGT static void acc_bf16(float *acc, const uint16_t *g, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(acc + i, _mm256_add_ps(_mm256_loadu_ps(acc + i), load8_bf16(g + i)));
    for (; i < n; i++) acc[i] += dsc_bf16_to_f32(g[i]);
}

TGT static void acc_f16(float *acc, const uint16_t *g, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(acc + i, _mm256_add_ps(_mm256_loadu_ps(acc + i), load8_f16(g + i)));
    for (; i < n; i++) acc[i] += dsc_f16_to_f32(g[i]);
}

const dsc_amp_kernels_t dsc__amp_kernels_avx2 = {
    sumsq_f32, sumsq_bf16, sumsq_f16, f32_to_bf16, f32_to_f16, bf16_to_f32, f16_to_f32, acc_f32, acc_bf16, acc_f16,
};

#else /* not x86: never selected (dsc__amp_isa_supported is false) */
const dsc_amp_kernels_t dsc__amp_kernels_avx2 = {0};
#endif

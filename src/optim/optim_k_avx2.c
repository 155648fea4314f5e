/* AVX2 instantiation of the optimizer kernels (W = 8 floats). Compiled for the avx2, fma and
 * f16c targets whatever the build flags; only called when the CPU has them (optim.c checks
 * CPUID). FMA instructions are never used for arithmetic (contraction is off), so the bits
 * equal the scalar path's. f16 stores use F16C (round to nearest even), bf16 stores the
 * integer rounding of dsc_f32_to_bf16. */
#include "optim/optim_internal.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
#endif

#define DSC_ISA avx2
#define W 8
#define V __m256
#define VLOAD(p) _mm256_loadu_ps(p)
#define VSTORE(p, v) _mm256_storeu_ps((p), (v))
#define VSET(x) _mm256_set1_ps(x)
#define VADD(a, b) _mm256_add_ps((a), (b))
#define VSUB(a, b) _mm256_sub_ps((a), (b))
#define VMUL(a, b) _mm256_mul_ps((a), (b))
#define VDIV(a, b) _mm256_div_ps((a), (b))
#define VSQRT(a) _mm256_sqrt_ps(a)
#define VABS(a) _mm256_andnot_ps(_mm256_set1_ps(-0.0f), (a))
#define VMAX(a, b) _mm256_max_ps((a), (b))
#define VSELGT0(c, a, b) _mm256_blendv_ps((b), (a), _mm256_cmp_ps((c), _mm256_setzero_ps(), _CMP_GT_OQ))
#define VCOPYSIGN(m, s) _mm256_or_ps((m), _mm256_and_ps((s), _mm256_set1_ps(-0.0f)))
#define VSTORE_BF16(h, v) dsc__k_store_bf16_avx2((h), (v))
#define VSTORE_F16(h, v) _mm_storeu_si128((__m128i *)(void *)(h), _mm256_cvtps_ph((v), _MM_FROUND_TO_NEAREST_INT))
#define DW 4
#define LT __m256d
#define LLOAD(p) _mm256_loadu_pd(p)
#define LSTORE(p, a) _mm256_storeu_pd((p), (a))
#define LSQ_ADD(acc, k, v)                                                                    \
    do {                                                                                      \
        __m256d lo_ = _mm256_cvtps_pd(_mm256_castps256_ps128(v));                             \
        __m256d hi_ = _mm256_cvtps_pd(_mm256_extractf128_ps((v), 1));                         \
        (acc)[(k) / 4] = _mm256_add_pd((acc)[(k) / 4], _mm256_mul_pd(lo_, lo_));              \
        (acc)[(k) / 4 + 1] = _mm256_add_pd((acc)[(k) / 4 + 1], _mm256_mul_pd(hi_, hi_));      \
    } while (0)

/* 8 floats -> 8 bf16, round to nearest even; NaN -> quiet NaN keeping the top payload. */
static inline void dsc__k_store_bf16_avx2(uint16_t *h, __m256 v) {
    const __m256i u = _mm256_castps_si256(v);
    const __m256i hi = _mm256_srli_epi32(u, 16);
    __m256i r = _mm256_add_epi32(u, _mm256_add_epi32(_mm256_set1_epi32(0x7fff), _mm256_and_si256(hi, _mm256_set1_epi32(1))));
    r = _mm256_srli_epi32(r, 16);
    const __m256i q = _mm256_or_si256(hi, _mm256_set1_epi32(0x40));
    const __m256i nan = _mm256_castps_si256(_mm256_cmp_ps(v, v, _CMP_UNORD_Q));
    r = _mm256_blendv_epi8(r, q, nan);
    _mm_storeu_si128((__m128i *)(void *)h, _mm_packus_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1)));
}

#include "optim/optim_kernels.inc.h"

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

#else /* not x86: the path is never selected (dsc__optim_isa_supported is false) */
const dsc_optim_kernels_t dsc__optim_kernels_avx2 = {0};
#endif

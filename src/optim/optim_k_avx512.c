/* AVX-512F instantiation of the optimizer kernels (W = 16 floats). Compiled for the avx512f
 * target whatever the build flags; only called when the CPU and OS support it (optim.c checks
 * CPUID and XCR0). Same operation order as the scalar path, so the same bits. */
#include "optim/optim_internal.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f")
#endif

#define DSC_ISA avx512
#define W 16
#define V __m512
#define VLOAD(p) _mm512_loadu_ps(p)
#define VSTORE(p, v) _mm512_storeu_ps((p), (v))
#define VSET(x) _mm512_set1_ps(x)
#define VADD(a, b) _mm512_add_ps((a), (b))
#define VSUB(a, b) _mm512_sub_ps((a), (b))
#define VMUL(a, b) _mm512_mul_ps((a), (b))
#define VDIV(a, b) _mm512_div_ps((a), (b))
#define VSQRT(a) _mm512_sqrt_ps(a)
#define VABS(a) _mm512_abs_ps(a)
#define VMAX(a, b) _mm512_max_ps((a), (b))
#define VSELGT0(c, a, b) _mm512_mask_blend_ps(_mm512_cmp_ps_mask((c), _mm512_setzero_ps(), _CMP_GT_OQ), (b), (a))
#define VCOPYSIGN(m, s)                                                                       \
    _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(m),                               \
                                        _mm512_and_si512(_mm512_castps_si512(s), _mm512_set1_epi32(INT32_MIN))))
#define VSTORE_BF16(h, v) dsc__k_store_bf16_avx512((h), (v))
#define VSTORE_F16(h, v)                                                                      \
    _mm256_storeu_si256((__m256i *)(void *)(h), _mm512_cvtps_ph((v), _MM_FROUND_TO_NEAREST_INT))
#define DW 8
#define LT __m512d
#define LLOAD(p) _mm512_loadu_pd(p)
#define LSTORE(p, a) _mm512_storeu_pd((p), (a))
#define LSQ_ADD(acc, k, v)                                                                    \
    do {                                                                                      \
        __m512d lo_ = _mm512_cvtps_pd(_mm512_castps512_ps256(v));                             \
        __m512d hi_ = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1))); \
        (acc)[(k) / 8] = _mm512_add_pd((acc)[(k) / 8], _mm512_mul_pd(lo_, lo_));              \
        (acc)[(k) / 8 + 1] = _mm512_add_pd((acc)[(k) / 8 + 1], _mm512_mul_pd(hi_, hi_));      \
    } while (0)

/* 16 floats -> 16 bf16, round to nearest even; NaN -> quiet NaN keeping the top payload. */
static inline void dsc__k_store_bf16_avx512(uint16_t *h, __m512 v) {
    const __m512i u = _mm512_castps_si512(v);
    const __m512i hi = _mm512_srli_epi32(u, 16);
    __m512i r = _mm512_add_epi32(u, _mm512_add_epi32(_mm512_set1_epi32(0x7fff), _mm512_and_si512(hi, _mm512_set1_epi32(1))));
    r = _mm512_srli_epi32(r, 16);
    const __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    r = _mm512_mask_blend_epi32(nan, r, _mm512_or_si512(hi, _mm512_set1_epi32(0x40)));
    _mm256_storeu_si256((__m256i *)(void *)h, _mm512_cvtepi32_epi16(r));
}

#include "optim/optim_kernels.inc.h"

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

#else /* not x86: the path is never selected (dsc__optim_isa_supported is false) */
const dsc_optim_kernels_t dsc__optim_kernels_avx512 = {0};
#endif

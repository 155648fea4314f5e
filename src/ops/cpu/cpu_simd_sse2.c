/* The baseline instantiation of the SIMD f32 kernels (4-float vectors: SSE2 on x86-64, the
 * compiler's generic vectors elsewhere), and the run-time choice between the paths. */
#include "ops/cpu/cpu_features.h"
#include "ops/cpu/cpu_simd.h"

#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#define VW 4
#define SIMD_TABLE dsc__cpu_simd_sse2
#define SIMD_NAME "sse2"
#include "ops/cpu/cpu_simd.inc.h"

const dsc_cpu_simd_t *dsc__cpu_simd(void) {
    const dsc_cpu_features_t *f = dsc__cpu_features(); /* detected once */
    if (f->avx512f) return &dsc__cpu_simd_avx512;
    if (f->avx2) return &dsc__cpu_simd_avx2;
    return &dsc__cpu_simd_sse2;
}

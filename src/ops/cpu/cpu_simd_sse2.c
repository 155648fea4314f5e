/* The baseline instantiation of the SIMD f32 kernels (4-float vectors: SSE2 on x86-64, the
 * compiler's generic vectors elsewhere), and the run-time choice between the paths. */
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
#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
    /* libgcc / compiler-rt read CPUID once at start-up and check that the OS saves the
     * vector registers (XCR0), so this is two loads and a test. */
    if (__builtin_cpu_supports("avx512f")) return &dsc__cpu_simd_avx512;
    if (__builtin_cpu_supports("avx2")) return &dsc__cpu_simd_avx2;
#endif
    return &dsc__cpu_simd_sse2;
}

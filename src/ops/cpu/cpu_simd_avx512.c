/* The avx512 instantiation of the SIMD f32 kernels (16-float vectors). Compiled for the
 * avx512f target whatever the build flags; dsc__cpu_simd() picks it only when the CPU and
 * the OS support it. FMA contraction is off: the same bits as the other paths. */
#include "ops/cpu/cpu_simd.h"

#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f"))), apply_to = function)
#pragma clang fp contract(off)
#else
#pragma GCC push_options
#pragma GCC target("avx512f")
#pragma GCC optimize("fp-contract=off")
#endif

#define VW 16
#define SIMD_TABLE dsc__cpu_simd_avx512
#define SIMD_NAME "avx512"
#include "ops/cpu/cpu_simd.inc.h"

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

#else /* not x86: the baseline path stands in */
const dsc_cpu_simd_t dsc__cpu_simd_avx512 = {0};
#endif

/* The host CPU's vector features, detected once per process (CPUID, plus XGETBV to check
 * that the OS saves the registers): the one detection behind the op kernels' SIMD choice
 * (cpu_simd_sse2.c), the optimizer's ISA paths (src/optim) and the mixed-precision paths
 * (src/amp). All false on other architectures. */
#ifndef DSC_OPS_CPU_FEATURES_H
#define DSC_OPS_CPU_FEATURES_H

#include <stdbool.h>

typedef struct dsc_cpu_features {
    bool avx2, fma, f16c;            /* each with the OS saving YMM state */
    bool avx512f, avx512bw, avx512bf16; /* each with the OS saving opmask/ZMM state */
} dsc_cpu_features_t;

const dsc_cpu_features_t *dsc__cpu_features(void);

#endif

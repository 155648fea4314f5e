/* CPU feature detection (see cpu_features.h). The result is a constant of the machine,
 * computed once under pthread_once. */
#include "ops/cpu/cpu_features.h"

#include <pthread.h>
#include <stdint.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

static dsc_cpu_features_t g_features;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

#if defined(__x86_64__) || defined(__i386__)
static uint64_t read_xcr0(void) {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

static void detect(void) {
    dsc_cpu_features_t f = {0};
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return;
    const int osxsave = (c >> 27) & 1, avx = (c >> 28) & 1;
    if (!osxsave || !avx) return;
    const uint64_t xcr0 = read_xcr0();
    if ((xcr0 & 0x6) != 0x6) return; /* the OS saves XMM and YMM state */
    f.fma = (c >> 12) & 1;
    f.f16c = (c >> 29) & 1;
    if (__get_cpuid_max(0, NULL) >= 7) {
        __cpuid_count(7, 0, a, b, c, d);
        const unsigned max_sub = a;
        f.avx2 = (b >> 5) & 1;
        /* AVX-512 needs the OS saving opmask, ZMM_Hi256 and Hi16_ZMM state. */
        const bool zmm = (xcr0 & 0xe6) == 0xe6;
        f.avx512f = zmm && ((b >> 16) & 1);
        f.avx512bw = zmm && ((b >> 30) & 1);
        if (max_sub >= 1) {
            __cpuid_count(7, 1, a, b, c, d);
            f.avx512bf16 = zmm && ((a >> 5) & 1);
        }
    }
    g_features = f;
}
#else
static void detect(void) {}
#endif

const dsc_cpu_features_t *dsc__cpu_features(void) {
    pthread_once(&g_once, detect);
    return &g_features;
}

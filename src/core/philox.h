/* Philox-4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11),
 * the counter-based generator behind cuRAND's and PyTorch's dropout. Header-only so the
 * CPU kernels and the CUDA kernels (src/ops/cuda/) draw the very same numbers: a random
 * value is a pure function of (seed, index), so any device, thread count or launch shape
 * gives the same dropout mask.
 *
 * dsc's stream convention (used by every dropout kernel, checkpointed as (seed, offset)):
 *   element g of the stream (g = offset + i, i counted within one op's mask, row-major)
 *   is lane g % 4 of philox4x32_10(counter = {lo32(g / 4), hi32(g / 4), 0, 0},
 *                                  key     = {lo32(seed), hi32(seed)});
 *   its uniform in [0, 1) is (u >> 8) * 2^-24 (exact in float), and dropout keeps the
 *   element iff uniform >= p. An op that draws n values advances the offset by n rounded
 *   up to a multiple of 4, so the next op starts on a fresh counter. */
#ifndef DSC_CORE_PHILOX_H
#define DSC_CORE_PHILOX_H

#include <stdint.h>

#if defined(__CUDACC__)
#define DSC_PHILOX_FN static inline __host__ __device__
#else
#define DSC_PHILOX_FN static inline
#endif

typedef struct dsc_philox4 {
    uint32_t v[4];
} dsc_philox4_t;

DSC_PHILOX_FN uint32_t dsc__philox_mulhilo(uint32_t a, uint32_t b, uint32_t *hi) {
    uint64_t p = (uint64_t)a * (uint64_t)b;
    *hi = (uint32_t)(p >> 32);
    return (uint32_t)p;
}

/* The 10-round Philox-4x32 bijection of `ctr` under `key` (Random123's philox4x32_10). */
DSC_PHILOX_FN dsc_philox4_t dsc_philox4x32_10(dsc_philox4_t ctr, uint32_t k0, uint32_t k1) {
    for (int round = 0; round < 10; round++) {
        if (round > 0) {
            k0 += 0x9E3779B9u;
            k1 += 0xBB67AE85u;
        }
        uint32_t hi0, hi1;
        uint32_t lo0 = dsc__philox_mulhilo(0xD2511F53u, ctr.v[0], &hi0);
        uint32_t lo1 = dsc__philox_mulhilo(0xCD9E8D57u, ctr.v[2], &hi1);
        dsc_philox4_t next = {{hi1 ^ ctr.v[1] ^ k0, lo1, hi0 ^ ctr.v[3] ^ k1, lo0}};
        ctr = next;
    }
    return ctr;
}

/* The 32-bit value at stream position g (see the convention above). */
DSC_PHILOX_FN uint32_t dsc_philox_u32(uint64_t seed, uint64_t g) {
    uint64_t block = g >> 2;
    dsc_philox4_t ctr = {{(uint32_t)block, (uint32_t)(block >> 32), 0u, 0u}};
    dsc_philox4_t out = dsc_philox4x32_10(ctr, (uint32_t)seed, (uint32_t)(seed >> 32));
    return out.v[g & 3u];
}

/* Uniform float in [0, 1) at stream position g: 24 random bits, exact in float. */
DSC_PHILOX_FN float dsc_philox_uniform(uint64_t seed, uint64_t g) {
    return (float)(dsc_philox_u32(seed, g) >> 8) * (1.0f / 16777216.0f);
}

/* How far an op that draws n values moves the stream offset (whole counters). */
DSC_PHILOX_FN uint64_t dsc_philox_advance(uint64_t n) { return (n + 3u) & ~(uint64_t)3u; }

#endif

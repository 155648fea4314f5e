/* The one scalar f32 -> bf16 rounding (round to nearest even, NaN -> quiet NaN keeping the
 * top payload bits, overflow carries into Inf): dsc_f32_to_bf16, the optimizer's fused
 * bf16 output and the scalar tails of the vector paths all call this. The vector paths
 * (src/optim/optim_k_*.c, src/amp/amp_k_*.c) do the same integer steps per lane and are
 * checked bit-exact against it by test_amp_kernels and test_optim_determinism. */
#ifndef DSC_CORE_BF16_H
#define DSC_CORE_BF16_H

#include <stdint.h>
#include <string.h>

static inline uint16_t dsc__bf16_round(float value) {
    uint32_t x;
    memcpy(&x, &value, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40u); /* quiet NaN */
    x += 0x7fffu + ((x >> 16) & 1u); /* round to nearest even; overflow carries into Inf */
    return (uint16_t)(x >> 16);
}

#endif

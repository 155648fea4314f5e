/* Private definitions of the mixed-precision kernels: the per-ISA kernel table and the
 * path selection. Never installed. Tests include it to run every path they can.
 *
 * Determinism contract: every path gives the same bits.
 *   - Conversions and accumulation are element-wise and bit-identical to the scalar
 *     definitions in src/core/dtype.c (vector paths patch the lanes where the hardware
 *     instruction differs: f32 denormals for VCVTNE2PS2BF16, which flushes them; f16
 *     signalling NaNs for VCVTPH2PS, which quiets them).
 *   - Sum of squares: each element's square is exact in double (a 24-bit significand
 *     squared fits in 53 bits), element j of a block goes to lane j % 16, so a lane's sum
 *     is the same sequence of correctly rounded double adds on every path (an fma would
 *     round the same way, since the product is exact). */
#ifndef DSC_AMP_INTERNAL_H
#define DSC_AMP_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "core/device.h"
#include "dsc/amp.h"

#define DSC_AMP_LANES 16

typedef enum dsc_amp_isa {
    DSC_AMP_ISA_SCALAR = 0,
    DSC_AMP_ISA_AVX2,       /* AVX2 + F16C */
    DSC_AMP_ISA_AVX512,     /* AVX-512F (+BW for 16-bit packing) */
    DSC_AMP_ISA_AVX512BF16, /* AVX-512 + AVX512_BF16 (VCVTNE2PS2BF16 for f32 -> bf16) */
    DSC_AMP_ISA_COUNT
} dsc_amp_isa_t;

/* Every function processes all n elements (vector paths finish the tail in scalar code).
 * sumsq_*: acc[j % 16] += x[j]^2 in double, j counted from x. */
typedef struct dsc_amp_kernels {
    void (*sumsq_f32)(const float *x, size_t n, double *acc);
    void (*sumsq_bf16)(const uint16_t *x, size_t n, double *acc);
    void (*sumsq_f16)(const uint16_t *x, size_t n, double *acc);
    void (*f32_to_bf16)(uint16_t *dst, const float *src, size_t n);
    void (*f32_to_f16)(uint16_t *dst, const float *src, size_t n);
    void (*bf16_to_f32)(float *dst, const uint16_t *src, size_t n);
    void (*f16_to_f32)(float *dst, const uint16_t *src, size_t n);
    void (*acc_f32)(float *acc, const float *g, size_t n);
    void (*acc_bf16)(float *acc, const uint16_t *g, size_t n);
    void (*acc_f16)(float *acc, const uint16_t *g, size_t n);
} dsc_amp_kernels_t;

extern const dsc_amp_kernels_t dsc__amp_kernels_scalar;
extern const dsc_amp_kernels_t dsc__amp_kernels_avx2;
extern const dsc_amp_kernels_t dsc__amp_kernels_avx512;
extern const dsc_amp_kernels_t dsc__amp_kernels_avx512bf16;

/* Scalar helpers shared by the vector paths' tails. */
void dsc__amp_sumsq_f32_scalar(const float *x, size_t n, double *acc);
void dsc__amp_sumsq_bf16_scalar(const uint16_t *x, size_t n, double *acc);
void dsc__amp_sumsq_f16_scalar(const uint16_t *x, size_t n, double *acc);

/* 1 when this CPU (and OS) can run the path. */
int dsc__amp_isa_supported(dsc_amp_isa_t isa);
/* The best supported path, and its table (NULL for an unsupported or invalid isa). */
dsc_amp_isa_t dsc__amp_isa_best(void);
const dsc_amp_kernels_t *dsc__amp_kernels_for(dsc_amp_isa_t isa);
const char *dsc__amp_isa_name(dsc_amp_isa_t isa);

/* The fixed 16-lane combination order: pairwise tree. */
double dsc__amp_tree16(const double *acc);

/* The mixed-precision entries of a device's table (src/core/device.h): the public kernels of
 * dsc/amp.h with the device first. Scan results are host values (read once per step). A
 * device implements them from its own kernels; the CPU device picks the best ISA path. */
typedef struct dsc_amp_ops {
    dsc_status_t (*scan_segments)(dsc_device_t *dev, const void *data, dsc_dtype_t dtype, size_t n,
                                  const dsc_amp_segment_t *segs, size_t n_segs, bool *seg_overflow, double *seg_sumsq,
                                  bool *overflow, double *sumsq, size_t *n_bad);
    dsc_status_t (*f32_to_half)(dsc_device_t *dev, void *dst, dsc_dtype_t half_dtype, const float *src, size_t n);
    dsc_status_t (*half_to_f32)(dsc_device_t *dev, float *dst, const void *src, dsc_dtype_t half_dtype, size_t n);
    dsc_status_t (*accumulate)(dsc_device_t *dev, float *acc, const void *g, dsc_dtype_t dtype, size_t n);
} dsc_amp_ops_t;

/* The CPU device's entries (best ISA path) and the guarded device's (translated pointers). */
extern const dsc_amp_ops_t dsc__amp_ops_cpu;
extern const dsc_amp_ops_t dsc__amp_ops_guarded;

/* The public kernels with an explicit path (tests run each path through the same drivers,
 * OpenMP blocking included). Arguments and returns as in dsc/amp.h. */
dsc_status_t dsc__amp_scan_segments_isa(dsc_amp_isa_t isa, const void *data, dsc_dtype_t dtype, size_t n,
                                        const dsc_amp_segment_t *segs, size_t n_segs, bool *seg_overflow,
                                        double *seg_sumsq, bool *overflow, double *sumsq, size_t *n_bad);
dsc_status_t dsc__amp_f32_to_half_isa(dsc_amp_isa_t isa, void *dst, dsc_dtype_t half_dtype, const float *src,
                                      size_t n);
dsc_status_t dsc__amp_half_to_f32_isa(dsc_amp_isa_t isa, float *dst, const void *src, dsc_dtype_t half_dtype,
                                      size_t n);
dsc_status_t dsc__amp_accumulate_isa(dsc_amp_isa_t isa, float *acc, const void *g, dsc_dtype_t dtype, size_t n);

#endif

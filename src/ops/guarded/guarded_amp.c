/* The guarded test device's mixed-precision entries: the CPU device's, with every buffer
 * translated to the read-write alias of its pages (src/core/device_guarded.c). */
#include "amp/amp_internal.h"

#define G(p) dsc__guarded_host_alias(p)

static dsc_status_t g_scan_segments(dsc_device_t *dev, const void *data, dsc_dtype_t dtype, size_t n,
                                    const dsc_amp_segment_t *segs, size_t n_segs, bool *seg_overflow,
                                    double *seg_sumsq, bool *overflow, double *sumsq, size_t *n_bad) {
    return dsc__amp_ops_cpu.scan_segments(dev, G(data), dtype, n, segs, n_segs, seg_overflow, seg_sumsq, overflow,
                                          sumsq, n_bad);
}
static dsc_status_t g_f32_to_half(dsc_device_t *dev, void *dst, dsc_dtype_t half_dtype, const float *src, size_t n) {
    return dsc__amp_ops_cpu.f32_to_half(dev, G(dst), half_dtype, G(src), n);
}
static dsc_status_t g_half_to_f32(dsc_device_t *dev, float *dst, const void *src, dsc_dtype_t half_dtype, size_t n) {
    return dsc__amp_ops_cpu.half_to_f32(dev, G(dst), G(src), half_dtype, n);
}
static dsc_status_t g_accumulate(dsc_device_t *dev, float *acc, const void *g, dsc_dtype_t dtype, size_t n) {
    return dsc__amp_ops_cpu.accumulate(dev, G(acc), G(g), dtype, n);
}

const dsc_amp_ops_t dsc__amp_ops_guarded = {g_scan_segments, g_f32_to_half, g_half_to_f32, g_accumulate};

/* Mixed-precision kernel drivers: run-time path selection, the block-ordered overflow scan
 * with sum of squares, and the OpenMP-parallel conversions and accumulation.
 *
 * Scan order (dsc/amp.h, DSC_AMP_BLOCK): each segment is cut into blocks of DSC_AMP_BLOCK
 * elements from its start; a block's 16 lane sums are combined by dsc__amp_tree16; blocks of
 * a segment are added in order, then segments in order. Blocks are processed in rounds of
 * ROUND_BLOCKS: the round's partial sums are computed in parallel into a stack array, then
 * folded by one thread in block order, so the bits never depend on the thread count. */
#include <math.h>

#include "amp/amp_internal.h"
#include "core/internal.h"

#include "ops/cpu/cpu_features.h"

#define ROUND_BLOCKS 1024
#define PAR_MIN_ELEMS ((size_t)1 << 16) /* below this, one thread */
#define CONV_CHUNK ((size_t)1 << 16)     /* element-wise kernels: OpenMP chunk */

/* ---- path selection -------------------------------------------------------------------- */

int dsc__amp_isa_supported(dsc_amp_isa_t isa) {
    const dsc_cpu_features_t *f = dsc__cpu_features(); /* one detection for every kernel family */
    switch (isa) {
    case DSC_AMP_ISA_SCALAR: return 1;
    case DSC_AMP_ISA_AVX2: return f->avx2 && f->f16c;
    case DSC_AMP_ISA_AVX512: return f->avx512f;
    case DSC_AMP_ISA_AVX512BF16: return f->avx512f && f->avx512bw && f->avx512bf16;
    default: return 0;
    }
}

dsc_amp_isa_t dsc__amp_isa_best(void) {
    for (int i = DSC_AMP_ISA_COUNT - 1; i > 0; i--)
        if (dsc__amp_isa_supported((dsc_amp_isa_t)i)) return (dsc_amp_isa_t)i;
    return DSC_AMP_ISA_SCALAR;
}

const dsc_amp_kernels_t *dsc__amp_kernels_for(dsc_amp_isa_t isa) {
    if (!dsc__amp_isa_supported(isa)) return NULL;
    switch (isa) {
    case DSC_AMP_ISA_AVX2: return &dsc__amp_kernels_avx2;
    case DSC_AMP_ISA_AVX512: return &dsc__amp_kernels_avx512;
    case DSC_AMP_ISA_AVX512BF16: return &dsc__amp_kernels_avx512bf16;
    default: return &dsc__amp_kernels_scalar;
    }
}

const char *dsc__amp_isa_name(dsc_amp_isa_t isa) {
    switch (isa) {
    case DSC_AMP_ISA_SCALAR: return "scalar";
    case DSC_AMP_ISA_AVX2: return "avx2";
    case DSC_AMP_ISA_AVX512: return "avx512";
    case DSC_AMP_ISA_AVX512BF16: return "avx512bf16";
    default: return "?";
    }
}

const char *dsc_amp_isa_name(void) { return dsc__amp_isa_name(dsc__amp_isa_best()); }

double dsc__amp_tree16(const double *a) {
    double b[8], c[4];
    for (int i = 0; i < 8; i++) b[i] = a[2 * i] + a[2 * i + 1];
    for (int i = 0; i < 4; i++) c[i] = b[2 * i] + b[2 * i + 1];
    return (c[0] + c[1]) + (c[2] + c[3]);
}

static bool scan_dtype_ok(dsc_dtype_t dt) { return dt == DSC_F32 || dt == DSC_BF16 || dt == DSC_F16; }

/* ---- scan ------------------------------------------------------------------------------- */

typedef struct blk {
    size_t seg, start, len;
} blk_t;

static double block_sumsq(const dsc_amp_kernels_t *k, const void *data, dsc_dtype_t dt, size_t start, size_t len) {
    double acc[DSC_AMP_LANES] = {0};
    if (dt == DSC_F32)
        k->sumsq_f32((const float *)data + start, len, acc);
    else if (dt == DSC_BF16)
        k->sumsq_bf16((const uint16_t *)data + start, len, acc);
    else
        k->sumsq_f16((const uint16_t *)data + start, len, acc);
    return dsc__amp_tree16(acc);
}

dsc_status_t dsc__amp_scan_segments_isa(dsc_amp_isa_t isa, const void *data, dsc_dtype_t dtype, size_t n,
                                        const dsc_amp_segment_t *segs, size_t n_segs, bool *seg_overflow,
                                        double *seg_sumsq, bool *overflow, double *sumsq, size_t *n_bad) {
    const dsc_amp_kernels_t *k = dsc__amp_kernels_for(isa);
    if (!k) return DSC_ERR_UNSUPPORTED;
    if (!scan_dtype_ok(dtype)) return DSC_ERR_INVALID;
    if (n_segs && !segs) return DSC_ERR_INVALID;
    for (size_t s = 0; s < n_segs; s++) {
        if (segs[s].offset > n || segs[s].numel > n - segs[s].offset) return DSC_ERR_INVALID;
        if (segs[s].numel && !data) return DSC_ERR_INVALID;
    }
    blk_t blk[ROUND_BLOCKS];
    double part[ROUND_BLOCKS];
    double total = 0.0, seg_acc = 0.0;
    size_t bad = 0, si = 0, pos = 0;
    while (si < n_segs) {
        size_t nb = 0, elems = 0;
        while (nb < ROUND_BLOCKS && si < n_segs) { /* empty segments get one empty block */
            const size_t numel = segs[si].numel;
            size_t len = numel - pos;
            if (len > DSC_AMP_BLOCK) len = DSC_AMP_BLOCK;
            blk[nb].seg = si;
            blk[nb].start = segs[si].offset + pos;
            blk[nb].len = len;
            nb++;
            elems += len;
            pos += len;
            if (pos >= numel) {
                si++;
                pos = 0;
            }
        }
        const long nbl = (long)nb;
#pragma omp parallel for schedule(static) if (nb > 1 && elems >= PAR_MIN_ELEMS)
        for (long b = 0; b < nbl; b++) part[b] = block_sumsq(k, data, dtype, blk[b].start, blk[b].len);
        for (size_t b = 0; b < nb; b++) {
            seg_acc += part[b];
            const dsc_amp_segment_t *sg = &segs[blk[b].seg];
            if (blk[b].start + blk[b].len == sg->offset + sg->numel) { /* the segment's last block */
                const bool ovf = !isfinite(seg_acc);
                if (seg_overflow) seg_overflow[blk[b].seg] = ovf;
                if (seg_sumsq) seg_sumsq[blk[b].seg] = seg_acc;
                bad += ovf;
                total += seg_acc;
                seg_acc = 0.0;
            }
        }
    }
    if (overflow) *overflow = bad > 0;
    if (sumsq) *sumsq = total;
    if (n_bad) *n_bad = bad;
    return DSC_OK;
}

static dsc_status_t cpu_scan_segments(dsc_device_t *dev, const void *data, dsc_dtype_t dtype, size_t n,
                                      const dsc_amp_segment_t *segs, size_t n_segs, bool *seg_overflow,
                                      double *seg_sumsq, bool *overflow, double *sumsq, size_t *n_bad) {
    (void)dev;
    return dsc__amp_scan_segments_isa(dsc__amp_isa_best(), data, dtype, n, segs, n_segs, seg_overflow, seg_sumsq,
                                      overflow, sumsq, n_bad);
}

static const dsc_amp_ops_t *amp_ops(dsc_ctx_t *ctx) { return ctx->device.table->amp; }

dsc_status_t dsc_amp_scan_segments(dsc_ctx_t *ctx, const void *data, dsc_dtype_t dtype, size_t n,
                                   const dsc_amp_segment_t *segs, size_t n_segs, bool *seg_overflow, double *seg_sumsq,
                                   bool *overflow, double *sumsq, size_t *n_bad) {
    if (!ctx) return DSC_ERR_INVALID;
    return amp_ops(ctx)->scan_segments(&ctx->device, data, dtype, n, segs, n_segs, seg_overflow, seg_sumsq, overflow,
                                       sumsq, n_bad);
}

dsc_status_t dsc_amp_scan(dsc_ctx_t *ctx, const void *data, dsc_dtype_t dtype, size_t n, bool *overflow,
                          double *sumsq) {
    if (n && !data) return DSC_ERR_INVALID;
    const dsc_amp_segment_t all = {0, n};
    return dsc_amp_scan_segments(ctx, data, dtype, n, &all, 1, NULL, NULL, overflow, sumsq, NULL);
}

/* ---- element-wise kernels ----------------------------------------------------------------- */

typedef enum ew_op { EW_TO_BF16, EW_TO_F16, EW_FROM_BF16, EW_FROM_F16, EW_ACC_F32, EW_ACC_BF16, EW_ACC_F16 } ew_op_t;

static void ew_range(const dsc_amp_kernels_t *k, ew_op_t op, void *dst, const void *src, size_t a, size_t len) {
    switch (op) {
    case EW_TO_BF16: k->f32_to_bf16((uint16_t *)dst + a, (const float *)src + a, len); break;
    case EW_TO_F16: k->f32_to_f16((uint16_t *)dst + a, (const float *)src + a, len); break;
    case EW_FROM_BF16: k->bf16_to_f32((float *)dst + a, (const uint16_t *)src + a, len); break;
    case EW_FROM_F16: k->f16_to_f32((float *)dst + a, (const uint16_t *)src + a, len); break;
    case EW_ACC_F32: k->acc_f32((float *)dst + a, (const float *)src + a, len); break;
    case EW_ACC_BF16: k->acc_bf16((float *)dst + a, (const uint16_t *)src + a, len); break;
    case EW_ACC_F16: k->acc_f16((float *)dst + a, (const uint16_t *)src + a, len); break;
    }
}

/* Element-wise, so the split cannot change any bit; chunks of CONV_CHUNK keep vector loops long. */
static dsc_status_t ew_run(dsc_amp_isa_t isa, ew_op_t op, void *dst, const void *src, size_t n) {
    const dsc_amp_kernels_t *k = dsc__amp_kernels_for(isa);
    if (!k) return DSC_ERR_UNSUPPORTED;
    if (n == 0) return DSC_OK;
    if (!dst || !src) return DSC_ERR_INVALID;
    const long nc = (long)((n + CONV_CHUNK - 1) / CONV_CHUNK);
#pragma omp parallel for schedule(static) if (nc > 1)
    for (long c = 0; c < nc; c++) {
        const size_t a = (size_t)c * CONV_CHUNK;
        const size_t len = n - a < CONV_CHUNK ? n - a : CONV_CHUNK;
        ew_range(k, op, dst, src, a, len);
    }
    return DSC_OK;
}

dsc_status_t dsc__amp_f32_to_half_isa(dsc_amp_isa_t isa, void *dst, dsc_dtype_t half_dtype, const float *src,
                                      size_t n) {
    if (half_dtype != DSC_BF16 && half_dtype != DSC_F16) return DSC_ERR_INVALID;
    return ew_run(isa, half_dtype == DSC_BF16 ? EW_TO_BF16 : EW_TO_F16, dst, src, n);
}

dsc_status_t dsc__amp_half_to_f32_isa(dsc_amp_isa_t isa, float *dst, const void *src, dsc_dtype_t half_dtype,
                                      size_t n) {
    if (half_dtype != DSC_BF16 && half_dtype != DSC_F16) return DSC_ERR_INVALID;
    return ew_run(isa, half_dtype == DSC_BF16 ? EW_FROM_BF16 : EW_FROM_F16, dst, src, n);
}

dsc_status_t dsc__amp_accumulate_isa(dsc_amp_isa_t isa, float *acc, const void *g, dsc_dtype_t dtype, size_t n) {
    if (!scan_dtype_ok(dtype)) return DSC_ERR_INVALID;
    return ew_run(isa, dtype == DSC_F32 ? EW_ACC_F32 : dtype == DSC_BF16 ? EW_ACC_BF16 : EW_ACC_F16, acc, g, n);
}

static dsc_status_t cpu_f32_to_half(dsc_device_t *dev, void *dst, dsc_dtype_t half_dtype, const float *src, size_t n) {
    (void)dev;
    return dsc__amp_f32_to_half_isa(dsc__amp_isa_best(), dst, half_dtype, src, n);
}
static dsc_status_t cpu_half_to_f32(dsc_device_t *dev, float *dst, const void *src, dsc_dtype_t half_dtype, size_t n) {
    (void)dev;
    return dsc__amp_half_to_f32_isa(dsc__amp_isa_best(), dst, src, half_dtype, n);
}
static dsc_status_t cpu_accumulate(dsc_device_t *dev, float *acc, const void *g, dsc_dtype_t dtype, size_t n) {
    (void)dev;
    return dsc__amp_accumulate_isa(dsc__amp_isa_best(), acc, g, dtype, n);
}

const dsc_amp_ops_t dsc__amp_ops_cpu = {cpu_scan_segments, cpu_f32_to_half, cpu_half_to_f32, cpu_accumulate};

dsc_status_t dsc_amp_f32_to_half(dsc_ctx_t *ctx, void *dst, dsc_dtype_t half_dtype, const float *src, size_t n) {
    return ctx ? amp_ops(ctx)->f32_to_half(&ctx->device, dst, half_dtype, src, n) : DSC_ERR_INVALID;
}

dsc_status_t dsc_amp_half_to_f32(dsc_ctx_t *ctx, float *dst, const void *src, dsc_dtype_t half_dtype, size_t n) {
    return ctx ? amp_ops(ctx)->half_to_f32(&ctx->device, dst, src, half_dtype, n) : DSC_ERR_INVALID;
}

dsc_status_t dsc_amp_accumulate(dsc_ctx_t *ctx, float *acc, const void *g, dsc_dtype_t dtype, size_t n) {
    return ctx ? amp_ops(ctx)->accumulate(&ctx->device, acc, g, dtype, n) : DSC_ERR_INVALID;
}

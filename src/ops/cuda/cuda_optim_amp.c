/* The CUDA device's optimizer and mixed-precision entries (src/optim/optim_internal.h,
 * src/amp/amp_internal.h), on the kernels of cuda_optim.cu and cuda_amp.cu: the same formulas
 * and, where the CPU kernel promises it, the same bits. Host arrays of the contract (Lamb
 * block lists and segment coefficients, the amp scan's segments) are uploaded into the
 * device's scratch; results the contract returns on the host (Lamb partial norms, the scan's
 * overflow and sums of squares) are copied back once per call. */
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "amp/amp_internal.h"
#include "ops/cuda/cuda_device.h"
#include "optim/optim_internal.h"

#define ALIGN256(n) (((n) + 255u) & ~(size_t)255u)

/* ---- optimizers ---- */

static dsc_cuda_optim_kind_t kind_of(dsc_optim_kernel_id_t id) {
    switch (id) {
    case DSC_OPTIM_K_ADAM: return DSC_CUDA_OPTIM_ADAM;
    case DSC_OPTIM_K_LION: return DSC_CUDA_OPTIM_LION;
    case DSC_OPTIM_K_ADAGRAD: return DSC_CUDA_OPTIM_ADAGRAD;
    case DSC_OPTIM_K_SGD: return DSC_CUDA_OPTIM_SGD;
    case DSC_OPTIM_K_RMSPROP: return DSC_CUDA_OPTIM_RMSPROP;
    case DSC_OPTIM_K_ADAMAX: return DSC_CUDA_OPTIM_ADAMAX;
    case DSC_OPTIM_K_LAMB2: return DSC_CUDA_OPTIM_LAMB2;
    }
    return DSC_CUDA_OPTIM_ADAM;
}

static void cu_elementwise(dsc_device_t *dev, const dsc_optim_kernels_t *isa, dsc_optim_kernel_id_t id,
                           const dsc_optim_scalars_t *s, size_t n, int n_threads, float *p, const float *g, float *s0,
                           float *s1, float *s2, uint16_t *half) {
    (void)isa, (void)n_threads;
    dsc__cuda_check(dev,
                    dsc_cuda_optim_step(dsc__cuda_stream(dev), kind_of(id), s, p, g, DSC_F32, s0, s1, s2, half,
                                        (int64_t)n, NULL),
                    "optimizer step");
}

/* Uploads the block list as {start, len} pairs (and, when block_seg is wanted, each block's
 * segment) into scratch, followed by `extra` bytes; returns the scratch or NULL (recorded). */
static void *upload_blocks(dsc_device_t *dev, const dsc_optim_block_t *blocks, size_t n_blocks, bool with_seg,
                           size_t extra, size_t *extra_at) {
    size_t pairs = ALIGN256(n_blocks * 2 * sizeof(uint64_t)), segs = with_seg ? ALIGN256(n_blocks * sizeof(int64_t)) : 0;
    size_t host_bytes = pairs + segs;
    char *dev_mem = dsc__cuda_scratch(dev, host_bytes + extra);
    if (!dev_mem) return NULL;
    char *host = calloc(1, host_bytes ? host_bytes : 1);
    if (!host) {
        dsc_ctx_set_error(dev->ctx, DSC_ERR_NOMEM, "device %s: out of memory staging %zu Lamb blocks", dev->name,
                          n_blocks);
        return NULL;
    }
    uint64_t *pr = (uint64_t *)host;
    int64_t *sg = (int64_t *)(host + pairs);
    for (size_t b = 0; b < n_blocks; b++) {
        pr[2 * b] = blocks[b].start;
        pr[2 * b + 1] = blocks[b].len;
        if (with_seg) sg[b] = (int64_t)blocks[b].seg;
    }
    /* the host waits for the stream (the staging buffer is freed next): a communicator's
     * collectives are settled first, as for a read */
    static const char what[] = "the upload of the Lamb blocks, which waits for the stream";
    if (dsc__cuda_host_wait(dev, true, false, what)) {
        free(host);
        return NULL;
    }
    int rc = dsc_cuda_copy_h2d_async(dev_mem, host, host_bytes, dsc__cuda_stream(dev));
    if (rc == 0) rc = dsc_cuda_stream_sync(dsc__cuda_stream(dev));
    free(host);
    if (dsc__cuda_check(dev, rc, "uploading Lamb blocks") || dsc__cuda_host_wait(dev, false, false, what)) return NULL;
    *extra_at = host_bytes;
    return dev_mem;
}

static void cu_lamb_norms(dsc_device_t *dev, const dsc_optim_kernels_t *isa, const dsc_optim_scalars_t *s,
                          const dsc_optim_block_t *blocks, size_t n_blocks, int n_threads, const float *p,
                          const float *g, float *m, float *v, double *partials) {
    (void)isa, (void)n_threads;
    size_t at = 0, part_bytes = n_blocks * 2 * sizeof(double);
    char *mem = upload_blocks(dev, blocks, n_blocks, false, part_bytes, &at);
    if (!mem) return;
    void *st = dsc__cuda_stream(dev);
    double *dev_partials = (double *)(mem + at);
    if (dsc__cuda_check(dev, dsc_cuda_lamb1(st, s, p, g, m, v, (const uint64_t *)mem, (int64_t)n_blocks, dev_partials),
                        "Lamb pass 1"))
        return;
    static const char what[] = "the read-back of the Lamb norms";
    if (dsc__cuda_host_wait(dev, true, false, what) ||
        dsc__cuda_check(dev, dsc_cuda_copy_d2h_async(partials, dev_partials, part_bytes, st), "Lamb norms read back"))
        return;
    if (!dsc__cuda_check(dev, dsc_cuda_stream_sync(st), "Lamb norms (synchronise)"))
        dsc__cuda_host_wait(dev, false, false, what);
}

static void cu_lamb_apply(dsc_device_t *dev, const dsc_optim_kernels_t *isa, const dsc_optim_scalars_t *s,
                          const dsc_optim_block_t *blocks, size_t n_blocks, int n_threads, const float *seg_coef,
                          float *p, float *m, float *v, uint16_t *half) {
    (void)isa, (void)n_threads;
    size_t n_seg = 0;
    for (size_t b = 0; b < n_blocks; b++)
        if (blocks[b].seg + 1 > n_seg) n_seg = blocks[b].seg + 1;
    size_t at = 0;
    char *mem = upload_blocks(dev, blocks, n_blocks, true, n_seg * sizeof(float), &at);
    if (!mem) return;
    void *st = dsc__cuda_stream(dev);
    float *dev_coef = (float *)(mem + at);
    static const char what[] = "the upload of the Lamb coefficients, which waits for the stream";
    if (dsc__cuda_host_wait(dev, true, false, what) ||
        dsc__cuda_check(dev, dsc_cuda_copy_h2d_async(dev_coef, seg_coef, n_seg * sizeof(float), st),
                        "uploading Lamb coefficients") ||
        dsc__cuda_check(dev, dsc_cuda_stream_sync(st), "uploading Lamb coefficients (synchronise)") ||
        dsc__cuda_host_wait(dev, false, false, what))
        return;
    const int64_t *block_seg = (const int64_t *)(mem + ALIGN256(n_blocks * 2 * sizeof(uint64_t)));
    dsc__cuda_check(dev,
                    dsc_cuda_lamb2_blocks(st, s, p, m, v, half, (const uint64_t *)mem, block_seg, (int64_t)n_blocks,
                                          dev_coef),
                    "Lamb pass 2");
}

const dsc_optim_ops_t dsc__optim_ops_cuda = {cu_elementwise, cu_lamb_norms, cu_lamb_apply};

/* ---- mixed precision ---- */

static dsc_status_t amp_fail(dsc_device_t *dev, int rc, const char *what) {
    dsc__cuda_check(dev, rc, what);
    return DSC_ERR_DEVICE;
}

static dsc_status_t cu_scan_segments(dsc_device_t *dev, const void *data, dsc_dtype_t dtype, size_t n,
                                     const dsc_amp_segment_t *segs, size_t n_segs, bool *seg_overflow,
                                     double *seg_sumsq, bool *overflow, double *sumsq, size_t *n_bad) {
    if (dtype != DSC_F32 && dtype != DSC_BF16 && dtype != DSC_F16) return DSC_ERR_INVALID;
    if (n_segs && !segs) return DSC_ERR_INVALID;
    for (size_t i = 0; i < n_segs; i++)
        if (segs[i].offset > n || segs[i].numel > n - segs[i].offset) return DSC_ERR_INVALID;
    if (n && !data) return DSC_ERR_INVALID;
    /* scratch: segments | per-segment overflow bytes | per-segment sums | overflow, sumsq, n_bad | workspace */
    size_t seg_b = ALIGN256(n_segs * sizeof *segs), ovf_b = ALIGN256(n_segs ? n_segs : 1),
           sum_b = ALIGN256((n_segs ? n_segs : 1) * sizeof(double)), tot_b = ALIGN256(3 * sizeof(double));
    size_t ws_b = dsc_cuda_amp_scan_workspace_bytes(segs, n_segs);
    char *mem = dsc__cuda_scratch(dev, seg_b + ovf_b + sum_b + tot_b + ws_b);
    if (!mem) return DSC_ERR_DEVICE;
    void *st = dsc__cuda_stream(dev);
    uint8_t *d_seg_ovf = (uint8_t *)(mem + seg_b);
    double *d_seg_sum = (double *)(mem + seg_b + ovf_b);
    char *d_tot = mem + seg_b + ovf_b + sum_b;
    int rc = n_segs ? dsc_cuda_copy_h2d_async(mem, segs, n_segs * sizeof *segs, st) : 0;
    if (rc) return amp_fail(dev, rc, "uploading scan segments");
    rc = dsc_cuda_amp_scan_segments(st, data, dtype, (const dsc_amp_segment_t *)mem, n_segs, mem + seg_b + ovf_b + sum_b + tot_b,
                                    ws_b, d_seg_ovf, d_seg_sum, (uint8_t *)d_tot, (double *)(d_tot + 8),
                                    (uint64_t *)(d_tot + 16));
    if (rc) return amp_fail(dev, rc, "overflow scan");
    /* one read back of everything the caller asked for (a host read: a communicator's
     * collectives, a ZeRO gradient reduce-scatter ordered before this scan, settled first) */
    static const char what[] = "the read-back of the overflow scan";
    dsc_status_t cs = dsc__dev_host_wait_check(dev->ctx, true, false, what);
    if (cs != DSC_OK) return cs;
    unsigned char tot[24];
    unsigned char *seg_ovf_host = NULL;
    rc = dsc_cuda_copy_d2h_async(tot, d_tot, sizeof tot, st);
    if (!rc && seg_sumsq && n_segs) rc = dsc_cuda_copy_d2h_async(seg_sumsq, d_seg_sum, n_segs * sizeof(double), st);
    if (!rc && seg_overflow && n_segs) {
        seg_ovf_host = malloc(n_segs);
        if (!seg_ovf_host) return DSC_ERR_NOMEM;
        rc = dsc_cuda_copy_d2h_async(seg_ovf_host, d_seg_ovf, n_segs, st);
    }
    if (!rc) rc = dsc_cuda_stream_sync(st);
    if (rc) {
        free(seg_ovf_host);
        return amp_fail(dev, rc, "reading the overflow scan back");
    }
    if ((cs = dsc__dev_host_wait_check(dev->ctx, false, false, what)) != DSC_OK) {
        free(seg_ovf_host);
        return cs;
    }
    if (seg_overflow)
        for (size_t i = 0; i < n_segs; i++) seg_overflow[i] = seg_ovf_host[i] != 0;
    free(seg_ovf_host);
    dsc__cuda_check(dev, 0, "overflow scan"); /* (a profiling point: the scan and its read back) */
    if (overflow) *overflow = tot[0] != 0;
    if (sumsq) memcpy(sumsq, tot + 8, sizeof(double));
    if (n_bad) {
        uint64_t b;
        memcpy(&b, tot + 16, sizeof b);
        *n_bad = (size_t)b;
    }
    return DSC_OK;
}

static dsc_status_t cu_f32_to_half(dsc_device_t *dev, void *dst, dsc_dtype_t half_dtype, const float *src, size_t n) {
    if (half_dtype != DSC_BF16 && half_dtype != DSC_F16) return DSC_ERR_INVALID;
    int rc = dsc_cuda_convert(dsc__cuda_stream(dev), dst, half_dtype, src, DSC_F32, (int64_t)n);
    return dsc__cuda_check(dev, rc, "f32 to 16-bit conversion") ? DSC_ERR_DEVICE : DSC_OK;
}
static dsc_status_t cu_half_to_f32(dsc_device_t *dev, float *dst, const void *src, dsc_dtype_t half_dtype, size_t n) {
    if (half_dtype != DSC_BF16 && half_dtype != DSC_F16) return DSC_ERR_INVALID;
    int rc = dsc_cuda_convert(dsc__cuda_stream(dev), dst, DSC_F32, src, half_dtype, (int64_t)n);
    return dsc__cuda_check(dev, rc, "16-bit to f32 conversion") ? DSC_ERR_DEVICE : DSC_OK;
}
static dsc_status_t cu_accumulate(dsc_device_t *dev, float *acc, const void *g, dsc_dtype_t dtype, size_t n) {
    if (dtype != DSC_F32 && dtype != DSC_BF16 && dtype != DSC_F16) return DSC_ERR_INVALID;
    int rc = dsc_cuda_amp_accumulate(dsc__cuda_stream(dev), acc, g, dtype, (int64_t)n);
    return dsc__cuda_check(dev, rc, "gradient accumulation") ? DSC_ERR_DEVICE : DSC_OK;
}

const dsc_amp_ops_t dsc__amp_ops_cuda = {cu_scan_segments, cu_f32_to_half, cu_half_to_f32, cu_accumulate};

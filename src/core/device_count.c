/* A counting copy of a device's table in front of the real one (core/device_count.h). The
 * copy lives in a block of its own per context, so a wrapper finds its counts and the real
 * table from the device it is given (dev->table points at the block's first member). */
#include "core/device_count.h"

#include <stdlib.h>

#include "amp/amp_internal.h"
#include "core/device.h"
#include "optim/optim_internal.h"

typedef struct counting {
    dsc_device_table_t table; /* first: dev->table points here */
    dsc_amp_ops_t amp;
    dsc_optim_ops_t optim;
    const dsc_device_table_t *real;
    dsc_device_counts_t *counts;
} counting_t;

static counting_t *of(const dsc_device_t *dev) { return (counting_t *)(uintptr_t)dev->table; }

static void note(const dsc_device_t *dev, dsc_devcount_kind_t kind, uint64_t bytes) {
    dsc_device_counts_t *c = of(dev)->counts;
    c->calls[kind]++;
    c->bytes[kind] += bytes;
}

static void *c_alloc(dsc_device_t *dev, size_t n) {
    note(dev, DSC_DEVCOUNT_ALLOC, n);
    return of(dev)->real->alloc(dev, n);
}
static void c_free(dsc_device_t *dev, void *ptr, size_t n) {
    note(dev, DSC_DEVCOUNT_FREE, n);
    of(dev)->real->free(dev, ptr, n);
}
static int c_memset(dsc_device_t *dev, void *dst, int value, size_t n) {
    note(dev, DSC_DEVCOUNT_FILL, n);
    return of(dev)->real->memset(dev, dst, value, n);
}
static int c_copy(dsc_device_t *dev, void *dst, const void *src, size_t n) {
    note(dev, DSC_DEVCOUNT_COPY, 2 * (uint64_t)n);
    return of(dev)->real->copy(dev, dst, src, n);
}
static int c_from_host(dsc_device_t *dev, void *dst, const void *src, size_t n) {
    note(dev, DSC_DEVCOUNT_FROM_HOST, n);
    return of(dev)->real->from_host(dev, dst, src, n);
}
static int c_to_host(dsc_device_t *dev, void *dst, const void *src, size_t n) {
    note(dev, DSC_DEVCOUNT_TO_HOST, n);
    return of(dev)->real->to_host(dev, dst, src, n);
}
static int c_to_host_async(dsc_device_t *dev, void *dst, const void *src, size_t n, dsc_device_event_t *done) {
    note(dev, DSC_DEVCOUNT_TO_HOST_ASYNC, n);
    return of(dev)->real->to_host_async(dev, dst, src, n, done);
}
static int c_from_host_async(dsc_device_t *dev, void *dst, const void *src, size_t n, dsc_device_event_t *read) {
    note(dev, DSC_DEVCOUNT_FROM_HOST_ASYNC, n);
    return of(dev)->real->from_host_async(dev, dst, src, n, read);
}
static int c_convert(dsc_device_t *dev, void *dst, dsc_dtype_t dd, const void *src, dsc_dtype_t sd, size_t n) {
    note(dev, DSC_DEVCOUNT_CONVERT, (uint64_t)n * (dsc_dtype_size(dd) + dsc_dtype_size(sd)));
    return of(dev)->real->convert(dev, dst, dd, src, sd, n);
}
static int c_sync(dsc_device_t *dev) {
    note(dev, DSC_DEVCOUNT_SYNC, 0);
    return of(dev)->real->sync(dev);
}
/* The block goes with the device: the real destroy runs on the real table. */
static void c_destroy(dsc_device_t *dev) {
    counting_t *c = of(dev);
    dev->table = c->real;
    if (c->real->destroy) c->real->destroy(dev);
    free(c);
}

static dsc_status_t c_scan_segments(dsc_device_t *dev, const void *data, dsc_dtype_t dtype, size_t n,
                                    const dsc_amp_segment_t *segs, size_t n_segs, bool *seg_overflow,
                                    double *seg_sumsq, bool *overflow, double *sumsq, size_t *n_bad) {
    note(dev, DSC_DEVCOUNT_AMP_SCAN, (uint64_t)n * dsc_dtype_size(dtype));
    return of(dev)->real->amp->scan_segments(dev, data, dtype, n, segs, n_segs, seg_overflow, seg_sumsq, overflow,
                                             sumsq, n_bad);
}
static dsc_status_t c_f32_to_half(dsc_device_t *dev, void *dst, dsc_dtype_t hd, const float *src, size_t n) {
    note(dev, DSC_DEVCOUNT_AMP_TO_HALF, (uint64_t)n * (4 + dsc_dtype_size(hd)));
    return of(dev)->real->amp->f32_to_half(dev, dst, hd, src, n);
}
static dsc_status_t c_half_to_f32(dsc_device_t *dev, float *dst, const void *src, dsc_dtype_t hd, size_t n) {
    note(dev, DSC_DEVCOUNT_AMP_TO_F32, (uint64_t)n * (4 + dsc_dtype_size(hd)));
    return of(dev)->real->amp->half_to_f32(dev, dst, src, hd, n);
}
static dsc_status_t c_accumulate(dsc_device_t *dev, float *acc, const void *g, dsc_dtype_t dtype, size_t n) {
    note(dev, DSC_DEVCOUNT_AMP_ACCUMULATE, (uint64_t)n * (dsc_dtype_size(dtype) + 8));
    return of(dev)->real->amp->accumulate(dev, acc, g, dtype, n);
}

static uint64_t optim_bytes(size_t n, const float *s0, const float *s1, const float *s2, const uint16_t *half) {
    const uint64_t per = 8 + 4 + 8 * (uint64_t)((s0 != NULL) + (s1 != NULL) + (s2 != NULL)) + (half ? 2 : 0);
    return (uint64_t)n * per;
}
static void c_elementwise(dsc_device_t *dev, const dsc_optim_kernels_t *isa, dsc_optim_kernel_id_t id,
                          const dsc_optim_scalars_t *s, size_t n, int n_threads, float *p, const float *g, float *s0,
                          float *s1, float *s2, uint16_t *half) {
    note(dev, DSC_DEVCOUNT_OPTIM, optim_bytes(n, s0, s1, s2, half));
    of(dev)->real->optim->elementwise(dev, isa, id, s, n, n_threads, p, g, s0, s1, s2, half);
}
static size_t blocks_numel(const dsc_optim_block_t *blocks, size_t n_blocks) {
    size_t n = 0;
    for (size_t i = 0; i < n_blocks; i++) n += blocks[i].len;
    return n;
}
static void c_lamb_norms(dsc_device_t *dev, const dsc_optim_kernels_t *isa, const dsc_optim_scalars_t *s,
                         const dsc_optim_block_t *blocks, size_t n_blocks, int n_threads, const float *p,
                         const float *g, float *m, float *v, double *partials) {
    note(dev, DSC_DEVCOUNT_OPTIM, (uint64_t)blocks_numel(blocks, n_blocks) * 24);
    of(dev)->real->optim->lamb_norms(dev, isa, s, blocks, n_blocks, n_threads, p, g, m, v, partials);
}
static void c_lamb_apply(dsc_device_t *dev, const dsc_optim_kernels_t *isa, const dsc_optim_scalars_t *s,
                         const dsc_optim_block_t *blocks, size_t n_blocks, int n_threads, const float *seg_coef,
                         float *p, float *m, float *v, uint16_t *half) {
    note(dev, DSC_DEVCOUNT_OPTIM, (uint64_t)blocks_numel(blocks, n_blocks) * (16 + (half ? 2 : 0)));
    of(dev)->real->optim->lamb_apply(dev, isa, s, blocks, n_blocks, n_threads, seg_coef, p, m, v, half);
}

dsc_status_t dsc__device_count_begin(dsc_ctx_t *ctx, dsc_device_counts_t *counts) {
    dsc_device_t *dev = dsc__ctx_device(ctx);
    if (dev->table->destroy == c_destroy)
        return dsc_ctx_set_error(ctx, DSC_ERR_MISUSE, "device %s: already counting", dev->name);
    counting_t *c = calloc(1, sizeof *c);
    if (!c) return dsc_ctx_set_error(ctx, DSC_ERR_NOMEM, "device %s: out of memory for counting", dev->name);
    const dsc_device_table_t *real = dev->table;
    c->real = real;
    c->counts = counts;
    c->table = *real;
    c->table.alloc = c_alloc;
    c->table.free = c_free;
    c->table.memset = c_memset;
    c->table.copy = c_copy;
    c->table.from_host = c_from_host;
    c->table.to_host = c_to_host;
    c->table.to_host_async = real->to_host_async ? c_to_host_async : NULL;
    c->table.from_host_async = real->from_host_async ? c_from_host_async : NULL;
    c->table.convert = c_convert;
    c->table.sync = c_sync;
    c->table.destroy = c_destroy;
    if (real->amp) {
        c->amp = (dsc_amp_ops_t){c_scan_segments, c_f32_to_half, c_half_to_f32, c_accumulate};
        c->table.amp = &c->amp;
    }
    if (real->optim) {
        c->optim = (dsc_optim_ops_t){c_elementwise, c_lamb_norms, c_lamb_apply};
        c->table.optim = &c->optim;
    }
    dev->table = &c->table;
    return DSC_OK;
}

void dsc__device_count_end(dsc_ctx_t *ctx) {
    dsc_device_t *dev = dsc__ctx_device(ctx);
    if (!dev->table || dev->table->destroy != c_destroy) return;
    counting_t *c = of(dev);
    dev->table = c->real;
    free(c);
}

const char *dsc__devcount_name(dsc_devcount_kind_t kind) {
    static const char *names[DSC_DEVCOUNT_KINDS] = {"alloc",    "free",        "fill",           "copy",
                                                     "convert",  "to_host",     "to_host_async",  "from_host",
                                                     "from_host_async", "sync",     "amp.scan",    "amp.to_half",    "amp.to_f32",
                                                     "amp.accumulate", "optim"};
    return (unsigned)kind < DSC_DEVCOUNT_KINDS ? names[kind] : "?";
}

uint64_t dsc__device_counts_moved(const dsc_device_counts_t *c) {
    uint64_t n = 0;
    for (int k = 0; k < DSC_DEVCOUNT_KINDS; k++) {
        if (k == DSC_DEVCOUNT_ALLOC || k == DSC_DEVCOUNT_FREE || k == DSC_DEVCOUNT_SYNC || k == DSC_DEVCOUNT_TO_HOST ||
            k == DSC_DEVCOUNT_TO_HOST_ASYNC || k == DSC_DEVCOUNT_FROM_HOST || k == DSC_DEVCOUNT_FROM_HOST_ASYNC)
            continue;
        n += c->bytes[k];
    }
    return n;
}

int64_t dsc__device_counts_blocking(const dsc_device_counts_t *c) {
    return c->calls[DSC_DEVCOUNT_TO_HOST] + c->calls[DSC_DEVCOUNT_FROM_HOST] + c->calls[DSC_DEVCOUNT_SYNC] +
           c->calls[DSC_DEVCOUNT_ALLOC] + c->calls[DSC_DEVCOUNT_FREE];
}

dsc_device_counts_t dsc__device_counts_diff(const dsc_device_counts_t *after, const dsc_device_counts_t *before) {
    dsc_device_counts_t d;
    for (int k = 0; k < DSC_DEVCOUNT_KINDS; k++) {
        d.calls[k] = after->calls[k] - before->calls[k];
        d.bytes[k] = after->bytes[k] - before->bytes[k];
    }
    return d;
}

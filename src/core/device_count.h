/* Counting what a context asks of its device (tests and benches; never installed): every
 * entry of the device's table that moves bytes, holds memory or waits, and the engine's
 * own kernels (mixed precision, optimizer), with the calls and the bytes each moved. The
 * op kernels of forward and backward (ctx->backend, fixed when the context is made) are
 * not counted: they are the model's, the same at every ZeRO stage.
 *
 * dsc__device_count_begin puts a counting copy of the table in front of the device's own
 * (per context: two contexts count apart); every call goes on to the real entry, so the
 * results are unchanged. Counting stops at dsc__device_count_end or when the context is
 * freed. Bytes:
 *   fill                n (written);      copy, convert   bytes read + bytes written;
 *   to_host, from_host  n (host <-> device; on CUDA from_host and to_host wait for the stream;
 *                       their _async forms do not);
 *   alloc, free         n (held, not moved: left out of dsc__device_counts_moved);
 *   amp scan            n * element size (read); amp to_half / to_f32: read + written;
 *   amp accumulate      n * (element size of g + 8) (g read, the fp32 sum read and written);
 *   optim               per element 8 for the fp32 master (read, written), 4 for the
 *                       gradient, 8 per state buffer, 2 for the 16-bit copy written. */
#ifndef DSC_CORE_DEVICE_COUNT_H
#define DSC_CORE_DEVICE_COUNT_H

#include <stdint.h>

#include "core/internal.h"

typedef enum dsc_devcount_kind {
    DSC_DEVCOUNT_ALLOC = 0,
    DSC_DEVCOUNT_FREE,
    DSC_DEVCOUNT_FILL,
    DSC_DEVCOUNT_COPY,
    DSC_DEVCOUNT_CONVERT,
    DSC_DEVCOUNT_TO_HOST,
    DSC_DEVCOUNT_TO_HOST_ASYNC,
    DSC_DEVCOUNT_FROM_HOST,
    DSC_DEVCOUNT_FROM_HOST_ASYNC,
    DSC_DEVCOUNT_SYNC,
    DSC_DEVCOUNT_AMP_SCAN,
    DSC_DEVCOUNT_AMP_TO_HALF,
    DSC_DEVCOUNT_AMP_TO_F32,
    DSC_DEVCOUNT_AMP_ACCUMULATE,
    DSC_DEVCOUNT_OPTIM,
    DSC_DEVCOUNT_KINDS
} dsc_devcount_kind_t;

typedef struct dsc_device_counts {
    int64_t calls[DSC_DEVCOUNT_KINDS];
    uint64_t bytes[DSC_DEVCOUNT_KINDS];
} dsc_device_counts_t;

/* Starts counting ctx's device into *counts (the caller's, not cleared; it must outlive the
 * counting). DSC_ERR_NOMEM (recorded), or DSC_ERR_MISUSE when already counting. */
dsc_status_t dsc__device_count_begin(dsc_ctx_t *ctx, dsc_device_counts_t *counts);
/* Stops counting (no-op when not counting). */
void dsc__device_count_end(dsc_ctx_t *ctx);

/* Short name of a kind ("fill", "amp.accumulate", ...). */
const char *dsc__devcount_name(dsc_devcount_kind_t kind);
/* Bytes moved on the device: every kind but alloc, free, sync and the host transfers. */
uint64_t dsc__device_counts_moved(const dsc_device_counts_t *c);
/* Calls that make the host wait for the device on CUDA: to_host, from_host, sync, alloc
 * (cudaMalloc) and free (cudaFree synchronises the device). */
int64_t dsc__device_counts_blocking(const dsc_device_counts_t *c);
/* after - before, kind by kind. */
dsc_device_counts_t dsc__device_counts_diff(const dsc_device_counts_t *after, const dsc_device_counts_t *before);

#endif

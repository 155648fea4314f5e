/* Buffer bytes through the context's device: the only way code outside a device's kernel
 * folder (src/ops/<device>/) reads, writes, fills or copies tensor data and model state.
 * The engine, ZeRO, comm, checkpoints and the optimizer call these instead of memcpy /
 * memset / element loops, so the same code runs when the buffers live on a GPU or on the
 * guarded test device (whose memory faults on host access).
 *
 * Ordering: calls are issued in order on the context's device stream. Copies and fills
 * between device buffers may run asynchronously; dsc__dev_to_host returns when the bytes
 * are on the host. Errors are recorded on the context (dsc_ctx_status) and returned.
 * Never installed. */
#ifndef DSC_CORE_DEVICE_H
#define DSC_CORE_DEVICE_H

#include <stddef.h>

#include "dsc/tensor.h"

/* Zero-filled device memory of n_bytes, counted under `category`; NULL + DSC_ERR_NOMEM
 * (recorded) on failure. Free with dsc__dev_free with the same category and size. */
void *dsc__dev_alloc(dsc_ctx_t *ctx, dsc_mem_category_t category, size_t n_bytes);
void dsc__dev_free(dsc_ctx_t *ctx, dsc_mem_category_t category, void *ptr, size_t n_bytes);

/* dst[0..n_bytes) = 0, on the device. */
dsc_status_t dsc__dev_zero(dsc_ctx_t *ctx, void *dst, size_t n_bytes);
/* Device to device; the ranges must not overlap. */
dsc_status_t dsc__dev_copy(dsc_ctx_t *ctx, void *dst, const void *src, size_t n_bytes);
/* Device to host (returns once the bytes are on the host) and host to device. */
dsc_status_t dsc__dev_to_host(dsc_ctx_t *ctx, void *host_dst, const void *src, size_t n_bytes);
dsc_status_t dsc__dev_from_host(dsc_ctx_t *ctx, void *dst, const void *host_src, size_t n_bytes);
/* Element conversion between two device buffers (rounding as dsc_convert). */
dsc_status_t dsc__dev_convert(dsc_ctx_t *ctx, void *dst, dsc_dtype_t dst_dtype, const void *src,
                              dsc_dtype_t src_dtype, size_t n_elems);
/* Waits for everything issued on the context's device. */
dsc_status_t dsc__dev_sync(dsc_ctx_t *ctx);

#endif

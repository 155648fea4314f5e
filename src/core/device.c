/* The buffer-byte entry points of src/core/device.h, for the host CPU device. The device
 * object (a kernel table per device, the guarded test device, CUDA) replaces these bodies
 * behind the same calls. */
#include "core/device.h"

#include <string.h>

#include "core/internal.h"

void *dsc__dev_alloc(dsc_ctx_t *ctx, dsc_mem_category_t category, size_t n_bytes) {
    return dsc_ctx_alloc(ctx, category, n_bytes);
}

void dsc__dev_free(dsc_ctx_t *ctx, dsc_mem_category_t category, void *ptr, size_t n_bytes) {
    dsc_ctx_release(ctx, category, ptr, n_bytes);
}

dsc_status_t dsc__dev_zero(dsc_ctx_t *ctx, void *dst, size_t n_bytes) {
    if (n_bytes) memset(dst, 0, n_bytes);
    return dsc_ctx_status(ctx);
}

dsc_status_t dsc__dev_copy(dsc_ctx_t *ctx, void *dst, const void *src, size_t n_bytes) {
    if (n_bytes && dst != src) memcpy(dst, src, n_bytes);
    return dsc_ctx_status(ctx);
}

dsc_status_t dsc__dev_to_host(dsc_ctx_t *ctx, void *host_dst, const void *src, size_t n_bytes) {
    return dsc__dev_copy(ctx, host_dst, src, n_bytes);
}

dsc_status_t dsc__dev_from_host(dsc_ctx_t *ctx, void *dst, const void *host_src, size_t n_bytes) {
    return dsc__dev_copy(ctx, dst, host_src, n_bytes);
}

dsc_status_t dsc__dev_convert(dsc_ctx_t *ctx, void *dst, dsc_dtype_t dst_dtype, const void *src,
                              dsc_dtype_t src_dtype, size_t n_elems) {
    dsc_status_t st = dsc_convert(dst, dst_dtype, src, src_dtype, n_elems);
    if (st != DSC_OK) return dsc_ctx_set_error(ctx, st, "device convert: unsupported dtype pair");
    return dsc_ctx_status(ctx);
}

dsc_status_t dsc__dev_sync(dsc_ctx_t *ctx) { return dsc_ctx_status(ctx); }

/* Host buffers of the optimizer offload (zero/zero.h): page-locked through the device's
 * table where it offers pinned memory, else ordinary aligned host memory; counted on the
 * host-side context that owns them, so the device's counters show only device bytes. */
#include <stdlib.h>
#include <string.h>

#include "core/device.h"
#include "core/internal.h"
#include "zero/zero.h"

void *dsc__host_buffer_alloc(dsc_ctx_t *host_ctx, dsc_ctx_t *dev_ctx, dsc_mem_category_t category, size_t n_bytes,
                             bool want_pinned, bool *pinned) {
    dsc_device_t *dev = dsc__ctx_device(dev_ctx);
    const size_t n = n_bytes ? n_bytes : 1;
    *pinned = false;
    void *p = NULL;
    if (want_pinned && dev->table && dev->table->host_alloc_pinned && (p = dev->table->host_alloc_pinned(dev, n)))
        *pinned = true;
    else if (posix_memalign(&p, 64, (n + 63) / 64 * 64) != 0)
        p = NULL;
    if (!p) {
        dsc_ctx_set_error(host_ctx, DSC_ERR_NOMEM, "out of memory allocating %zu bytes of host memory for the "
                          "offloaded optimizer", n_bytes);
        return NULL;
    }
    memset(p, 0, n);
    dsc__mem_add(host_ctx, category, n_bytes);
    return p;
}

void dsc__host_buffer_free(dsc_ctx_t *host_ctx, dsc_ctx_t *dev_ctx, dsc_mem_category_t category, void *ptr,
                           size_t n_bytes, bool pinned) {
    if (!ptr) return;
    dsc_device_t *dev = dsc__ctx_device(dev_ctx);
    if (pinned)
        dev->table->host_free_pinned(dev, ptr, n_bytes ? n_bytes : 1);
    else
        free(ptr);
    dsc__mem_sub(host_ctx, category, n_bytes);
}

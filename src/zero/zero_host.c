/* Host buffers of the optimizer offload (zero/zero.h): page-locked through the device's
 * table where it offers pinned memory, else ordinary aligned host memory; counted on the
 * host-side context that owns them, so the device's counters show only device bytes. And the
 * host mirror of the gradient partition, kept by asynchronous copies as backward reduces it. */
#include <stdlib.h>
#include <string.h>

#include "core/device.h"
#include "core/internal.h"
#include "zero/zero_internal.h"

int64_t dsc__offload_part_elems(int64_t n_local, int64_t sub_group_size) {
    int64_t k = sub_group_size > 0 ? sub_group_size : 1;
    if (k > DSC_OFFLOAD_PART_MAX) k = DSC_OFFLOAD_PART_MAX;
    return k < n_local ? k : n_local;
}

void *dsc__host_buffer_alloc(dsc_ctx_t *host_ctx, dsc_ctx_t *dev_ctx, dsc_mem_category_t category, size_t n_bytes,
                             bool want_pinned, bool *pinned, const char *what) {
    dsc_device_t *dev = dsc__ctx_device(dev_ctx);
    const size_t n = n_bytes ? n_bytes : 1;
    *pinned = false;
    void *p = NULL;
    if (want_pinned && dev->table && dev->table->host_alloc_pinned && (p = dev->table->host_alloc_pinned(dev, n)))
        *pinned = true;
    else if (posix_memalign(&p, 64, (n + 63) / 64 * 64) != 0)
        p = NULL;
    if (!p) {
        dsc_ctx_set_error(host_ctx, DSC_ERR_NOMEM, "out of memory allocating %zu bytes of host memory for %s", n_bytes,
                          what);
        return NULL;
    }
    /* zeroed by every thread: tens of GB for a model of billions of parameters (one thread
     * writes about 10 GB/s; the page faults of a fresh mapping cost as much again) */
    const size_t block = (size_t)1 << 26;
    const int64_t n_blocks = (int64_t)((n + block - 1) / block);
#pragma omp parallel for schedule(static) if (n_blocks >= 4)
    for (int64_t i = 0; i < n_blocks; i++) {
        const size_t a = (size_t)i * block;
        memset((char *)p + a, 0, n - a < block ? n - a : block);
    }
    dsc__mem_add(host_ctx, category, n_bytes);
    return p;
}

void dsc__host_buffer_free(dsc_ctx_t *host_ctx, dsc_ctx_t *dev_ctx, dsc_mem_category_t category, void *ptr,
                           size_t n_bytes, bool pinned) {
    if (!ptr) return;
    if (pinned)
        dsc__dev_host_free_pinned(dev_ctx, ptr, n_bytes ? n_bytes : 1);
    else
        free(ptr);
    dsc__mem_sub(host_ctx, category, n_bytes);
}

bool dsc__zero_mirror_set(dsc_zero_t *z, float *host) {
    free(z->mirrored);
    z->mirrored = NULL;
    z->mirror = NULL;
    if (!host || !dsc__dev_has_to_host_async(z->ctx)) return false;
    if (z->plan.stage >= 2 && !(z->mirrored = calloc((size_t)z->n + 1, sizeof *z->mirrored))) return false; /* copied at the step */
    z->mirror = host;
    return true;
}

void dsc__zero_mirror_boundary(dsc_zero_t *z, bool boundary) { z->mirror_on = z->mirror && boundary; }

void dsc__zero_mirror_clear(dsc_zero_t *z) {
    if (z->mirrored) memset(z->mirrored, 0, sizeof *z->mirrored * (size_t)z->n);
    z->mirror_all = false;
}

dsc_status_t dsc__zero_mirror_range(dsc_zero_t *z, int i, int64_t offset, int64_t n) {
    if (!z->mirror || (!z->mirror_on && z->plan.stage >= 2) || n <= 0) return DSC_OK;
    if (i >= 0 && z->mirrored) z->mirrored[i] = true;
    return dsc__dev_to_host_async(z->ctx, z->mirror + offset, z->acc32 + offset, (size_t)n * 4);
}

/* This rank's range of parameter i in acc32 (stage 2: its overlap with the partition; stage 3:
 * its shard, padding included); false when it holds none. */
static bool param_range(const dsc_zero_t *z, int i, int64_t *offset, int64_t *n) {
    const z3_param_t *p = &z->p[i];
    if (z->plan.stage == 3) {
        *offset = p->local;
        *n = p->shard;
        return true;
    }
    int64_t a, b;
    if (!dsc__zero_slice(&z->plan, z->rank, p->offset, p->numel, &a, &b)) return false;
    *offset = p->offset + a - z->plan.begin;
    *n = b - a;
    return true;
}

dsc_status_t dsc__zero_mirror_finish(dsc_zero_t *z) {
    if (!z->mirror) return DSC_ERR_UNSUPPORTED;
    dsc_status_t rc = DSC_OK;
    if (z->plan.stage == 1 && !z->mirror_all) /* not reduced since the last zeroing: all of it */
        rc = dsc__dev_to_host_async(z->ctx, z->mirror, z->acc32, (size_t)z->n_local * 4);
    for (int i = 0; z->plan.stage >= 2 && i < z->n && rc == DSC_OK; i++) {
        int64_t off, n;
        if (!z->mirrored[i] && param_range(z, i, &off, &n) && n > 0) /* untouched by the boundary backward */
            rc = dsc__dev_to_host_async(z->ctx, z->mirror + off, z->acc32 + off, (size_t)n * 4);
    }
    if (rc == DSC_OK) rc = dsc__dev_sync(z->ctx);
    dsc__zero_mirror_clear(z);
    return rc;
}

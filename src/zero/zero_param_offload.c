/* zero_optimization.offload_param at stage 3 (docs/offload.md): where this rank's partition of
 * the working copy (the local shards, n_local elements of model_dtype) lives.
 *
 * "cpu": z->params is host memory counted on the host context param_ctx, page-locked through
 * the device table's host_alloc_pinned where it has one. Every gather copies the shard
 * host->device into its slot of the gathered buffer and all-gathers from there as without
 * offload: with from_host_async where the device has it (the host does not wait for the copy;
 * the partition is its source and stays untouched until its next write, which first waits
 * for the uploads: params_up, dsc__zero_params_host_idle), else from_host. An edit's
 * write-back copies device->host; after an optimizer step the
 * partition is written from the updated master: by the host optimizer itself with
 * offload_optimizer "cpu" (its 16-bit output goes straight into the partition), else rounded
 * on the device (in the spent gradient partition's memory) and copied over.
 *
 * "nvme": the partition is a swap file (param_nvme.c; z->params is NULL, on every device, the
 * cpu device included). A gather reads the shard from the file (or its read-ahead, started by
 * the schedule through dsc__z3_read_ahead) and copies it to the device; an edit's write-back
 * patches the shard's record; after a step the partition is written from the updated master,
 * buffer by buffer: rounded on the device into the spent gradient partition and copied out
 * when the master is device memory, rounded by the host context's kernels straight into the
 * swap buffers when the optimizer is offloaded.
 *
 * The arithmetic is the one without offload (the same kernels round master to 16 bits), so the
 * parameters are bitwise those of the run without offload_param. Without offload_param every
 * function here is the device-memory path stage 3 always had. */
#include <stdio.h>
#include <stdlib.h>

#include "core/device.h"
#include "zero/param_nvme.h"
#include "zero/zero_internal.h"

bool dsc__zero_params_on_host(const dsc_zero_t *z, bool *pinned) {
    if (pinned) *pinned = z && z->params_pinned;
    return z && z->param_ctx != NULL;
}

bool dsc__zero_params_offloaded(const dsc_zero_t *z) { return z && dsc__z3_params_offloaded(z); }
const struct dsc_pnvme *dsc__zero_params_nvme(const dsc_zero_t *z) { return z ? z->pnvme : NULL; }

void *dsc__z3_params_alloc(dsc_zero_t *z, size_t bytes) {
    if (!z->param_ctx) return dsc__dev_alloc(z->ctx, DSC_MEM_PARAMS, bytes);
    return dsc__host_buffer_alloc(z->param_ctx, z->ctx, DSC_MEM_PARAMS, bytes, z->param_pin, &z->params_pinned,
                                  "the offloaded parameter partition (offload_param)");
}

dsc_status_t dsc__z3_params_create(dsc_zero_t *z, size_t bytes, char *err, size_t errsz) {
    if (!z->pnvme_opts) {
        z->params = dsc__z3_params_alloc(z, bytes);
        if (z->params && z->param_ctx && dsc__dev_has_from_host_async(z->ctx) &&
            !(z->params_up = dsc__dev_event_new(z->ctx))) {
            snprintf(err, errsz, "out of memory for the event of the parameter partition's uploads");
            return DSC_ERR_NOMEM;
        }
        if (z->params) return DSC_OK;
        snprintf(err, errsz, "out of memory allocating the ZeRO-3 parameter partition (%zu bytes): %s", bytes,
                 dsc_ctx_errmsg(z->param_ctx ? z->param_ctx : z->ctx));
        return DSC_ERR_NOMEM;
    }
    int64_t *shard = malloc(sizeof *shard * (size_t)(z->n + 1));
    if (!shard) {
        snprintf(err, errsz, "out of memory for the parameter swap file's table (%d parameters)", z->n);
        return DSC_ERR_NOMEM;
    }
    for (int i = 0; i < z->n; i++) shard[i] = z->p[i].shard;
    dsc_status_t rc = dsc__pnvme_new(z->ctx, z->pnvme_opts, z->rank, shard, z->n, z->model_dtype, &z->pnvme, err, errsz);
    free(shard);
    return rc;
}

void dsc__z3_params_free(dsc_zero_t *z, size_t bytes) {
    if (z->pnvme) {
        const dsc_pnvme_stats_t st = dsc__pnvme_stats(z->pnvme);
        dsc_ctx_log(z->ctx, DSC_LOG_INFO, "rank %d: parameter swap file: %lld shard reads (%lld from a read-ahead), "
                    "%lld bytes read, %lld bytes written", z->rank, (long long)st.reads, (long long)st.prefetch_hits,
                    (long long)st.bytes_read, (long long)st.bytes_written);
        dsc__pnvme_free(z->pnvme);
        z->pnvme = NULL;
        return;
    }
    if (z->params_up) { /* no upload may still read the memory being freed */
        if (dsc__zero_params_host_idle(z) != DSC_OK)
            dsc_ctx_log(z->ctx, DSC_LOG_WARN, "rank %d: waiting for the parameter partition's uploads: %s", z->rank,
                        dsc_ctx_errmsg(z->ctx));
        dsc__dev_event_free(z->ctx, z->params_up);
        z->params_up = NULL;
    }
    if (!z->param_ctx) dsc__dev_free(z->ctx, DSC_MEM_PARAMS, z->params, bytes);
    else dsc__host_buffer_free(z->param_ctx, z->ctx, DSC_MEM_PARAMS, z->params, bytes, z->params_pinned);
    z->params = NULL;
}

bool dsc__z3_read_ahead(dsc_zero_t *z, int i) { return z->pnvme && dsc__pnvme_prefetch(z->pnvme, i); }
bool dsc__z3_shard_ready(dsc_zero_t *z, int i) { return !z->pnvme || dsc__pnvme_ready(z->pnvme, i); }

dsc_status_t dsc__z3_shard_in(dsc_zero_t *z, void *dst, const z3_param_t *p) {
    const size_t ms = dsc__z3_msize(z), bytes = (size_t)p->shard * ms;
    if (z->pnvme) return dsc__pnvme_read(z->pnvme, (int)(p - z->p), dst);
    const char *src = (const char *)z->params + (size_t)p->local * ms;
    if (!z->param_ctx) return dsc__dev_copy(z->ctx, dst, src, bytes);
    /* pinned: the copy engine at full speed, the host going on (the event covers every
     * earlier upload too: the stream runs them in order) */
    if (z->params_up) return dsc__dev_from_host_async(z->ctx, dst, src, bytes, z->params_up);
    return dsc__dev_from_host(z->ctx, dst, src, bytes);
}

dsc_status_t dsc__zero_params_host_idle(dsc_zero_t *z) {
    if (!z || !z->params_up) return DSC_OK;
    dsc_status_t rc = dsc__dev_event_sync(z->ctx, z->params_up);
    if (rc != DSC_OK)
        return dsc__zero_fail(z, rc, "rank %d: waiting for the uploads of the offloaded parameter partition: %s",
                              z->rank, dsc_ctx_errmsg(z->ctx));
    return DSC_OK;
}

/* The parameter whose shard holds local offset `local` (the shards are back to back). */
static int param_at(const dsc_zero_t *z, int64_t local) {
    int lo = 0, hi = z->n - 1;
    while (lo < hi) {
        const int mid = (lo + hi + 1) / 2;
        if (z->p[mid].local <= local) lo = mid;
        else hi = mid - 1;
    }
    return lo;
}

dsc_status_t dsc__z3_shard_out(dsc_zero_t *z, int64_t local, const void *src, size_t n) {
    const size_t ms = dsc__z3_msize(z);
    if (z->pnvme) {
        const int i = param_at(z, local);
        return dsc__pnvme_write_range(z->pnvme, i, local - z->p[i].local, (int64_t)n, src);
    }
    char *dst = (char *)z->params + (size_t)local * ms;
    if (!z->param_ctx) return dsc__dev_copy(z->ctx, dst, src, n * ms);
    dsc_status_t rc = dsc__zero_params_host_idle(z); /* a gather's upload may still read it */
    return rc != DSC_OK ? rc : dsc__dev_to_host(z->ctx, dst, src, n * ms);
}

/* The NVMe write-back's producers: elements [local, local + n) of the partition as model_dtype
 * values in a swap buffer. From device memory (values: the partition already in model_dtype
 * there), or rounded from the host master by the host context's kernels. */
typedef struct fill_src {
    dsc_zero_t *z;
    dsc_ctx_t *ctx;     /* the host context (from_host32), else the device's */
    const void *values; /* model_dtype (device) or fp32 (host) */
} fill_src_t;

static dsc_status_t fill_from_device(void *user, int64_t local, int64_t n, void *host) {
    const fill_src_t *f = user;
    const size_t ms = dsc__z3_msize(f->z);
    return dsc__dev_to_host(f->ctx, host, (const char *)f->values + (size_t)local * ms, (size_t)n * ms);
}

static dsc_status_t fill_from_host32(void *user, int64_t local, int64_t n, void *host) {
    const fill_src_t *f = user;
    const float *src = (const float *)f->values + local;
    dsc_status_t rc = f->z->model_dtype == DSC_F32 ? dsc__dev_copy(f->ctx, host, src, (size_t)n * 4)
                                                   : dsc_amp_f32_to_half(f->ctx, host, f->z->model_dtype, src, (size_t)n);
    if (rc != DSC_OK) dsc_ctx_set_error(f->z->ctx, rc, "rounding the master: %s", dsc_ctx_errmsg(f->ctx));
    return rc;
}

static dsc_status_t nvme_fail(dsc_zero_t *z, dsc_status_t rc) {
    return dsc__zero_fail(z, rc, "rank %d: writing the parameter partition to its NVMe swap file: %s", z->rank,
                          dsc_ctx_errmsg(z->ctx));
}

dsc_status_t dsc__z3_params_from_device32(dsc_zero_t *z, const float *dev32) {
    const size_t n = (size_t)z->n_local, ms = dsc__z3_msize(z);
    const bool mixed = z->model_dtype != DSC_F32;
    if (!dsc__z3_params_offloaded(z))
        return mixed ? dsc_amp_f32_to_half(z->ctx, z->params, z->model_dtype, dev32, n)
                     : dsc__dev_copy(z->ctx, z->params, dev32, n * 4);
    dsc_status_t rc = dsc__zero_params_host_idle(z); /* the gathers' uploads may still read the partition */
    if (rc != DSC_OK) return rc;
    if (!mixed && z->param_ctx) return dsc__dev_to_host(z->ctx, z->params, dev32, n * 4);
    /* Rounded on the device by the kernel of the run without offload, into the memory of the
     * fp32 gradient partition (n_local x 4 bytes: room for the 16-bit values; at the step its
     * gradients are spent once the master is updated, at the start it holds nothing yet), then
     * copied over and zeroed: no device memory beyond the run without offload. */
    rc = mixed ? dsc_amp_f32_to_half(z->ctx, z->acc32, z->model_dtype, dev32, n) : DSC_OK;
    const void *values = mixed ? (const void *)z->acc32 : (const void *)dev32;
    if (rc == DSC_OK && z->pnvme) {
        fill_src_t f = {z, z->ctx, values};
        rc = dsc__pnvme_write_all(z->pnvme, fill_from_device, &f);
        if (rc != DSC_OK) return nvme_fail(z, rc);
    } else if (rc == DSC_OK) {
        rc = dsc__dev_to_host(z->ctx, z->params, z->acc32, n * ms);
    }
    if (rc == DSC_OK && mixed) rc = dsc__dev_zero(z->ctx, z->acc32, n * 4);
    if (rc != DSC_OK)
        return dsc__zero_fail(z, rc, "rank %d: updating the offloaded parameter partition: %s", z->rank,
                              dsc_ctx_errmsg(z->ctx));
    return DSC_OK;
}

dsc_status_t dsc__zero_params_from_master(dsc_zero_t *z) {
    if (!dsc__z3_params_offloaded(z)) return DSC_OK;
    if (!z->host_ctx) return dsc__z3_params_from_device32(z, z->master);
    const size_t n = (size_t)z->n_local;
    if (z->pnvme) { /* the host master rounded straight into the swap buffers */
        fill_src_t f = {z, z->host_ctx, z->master};
        dsc_status_t rc = dsc__pnvme_write_all(z->pnvme, fill_from_host32, &f);
        return rc == DSC_OK ? DSC_OK : nvme_fail(z, rc);
    }
    /* both in host memory: the host context's kernels (the rounding of the host optimizer),
     * once no upload reads the partition */
    dsc_status_t rc = dsc__zero_params_host_idle(z);
    if (rc != DSC_OK) return rc;
    rc = z->model_dtype != DSC_F32
                          ? dsc_amp_f32_to_half(z->param_ctx, z->params, z->model_dtype, z->master, n)
                          : dsc__dev_copy(z->param_ctx, z->params, z->master, n * 4);
    if (rc != DSC_OK)
        return dsc__zero_fail(z, rc, "rank %d: updating the offloaded parameter partition: %s", z->rank,
                              dsc_ctx_errmsg(z->param_ctx));
    return DSC_OK;
}

dsc_status_t dsc__z3_params_after_step(dsc_zero_t *z) {
    if (!dsc__z3_params_offloaded(z)) return DSC_OK;
    if (z->param_ctx && z->host_ctx && z->model_dtype != DSC_F32) return DSC_OK; /* the host optimizer wrote its 16-bit output here */
    return dsc__zero_params_from_master(z);
}

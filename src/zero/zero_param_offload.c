/* zero_optimization.offload_param "cpu" at stage 3 (docs/offload.md): this rank's partition of
 * the working copy, z->params (the local shards, n_local elements of model_dtype), lives in
 * host memory counted on the host context param_ctx, page-locked through the device table's
 * host_alloc_pinned where it has one. Only where the partition lives changes: every gather
 * copies the shard host->device into its slot of the gathered buffer (from_host) and
 * all-gathers from there as without offload; an edit's write-back copies device->host; after
 * an optimizer step the partition is written from the updated master: by the host optimizer
 * itself with offload_optimizer "cpu" (its 16-bit output goes straight into the partition),
 * else rounded on the device (in the spent gradient partition's memory) and copied over. The arithmetic is the one
 * without offload (the same kernels round master to 16 bits), so the parameters are bitwise
 * those of the run without offload_param. Without offload_param every function here is the
 * device-memory path stages 3 always had. */
#include <stdio.h>

#include "core/device.h"
#include "zero/zero_internal.h"

bool dsc__zero_params_on_host(const dsc_zero_t *z, bool *pinned) {
    if (pinned) *pinned = z && z->params_pinned;
    return z && z->param_ctx != NULL;
}

void *dsc__z3_params_alloc(dsc_zero_t *z, size_t bytes) {
    if (!z->param_ctx) return dsc__dev_alloc(z->ctx, DSC_MEM_PARAMS, bytes);
    return dsc__host_buffer_alloc(z->param_ctx, z->ctx, DSC_MEM_PARAMS, bytes, z->param_pin, &z->params_pinned,
                                  "the offloaded parameter partition (offload_param)");
}

void dsc__z3_params_free(dsc_zero_t *z, size_t bytes) {
    if (!z->param_ctx) dsc__dev_free(z->ctx, DSC_MEM_PARAMS, z->params, bytes);
    else dsc__host_buffer_free(z->param_ctx, z->ctx, DSC_MEM_PARAMS, z->params, bytes, z->params_pinned);
    z->params = NULL;
}

dsc_status_t dsc__z3_shard_in(dsc_zero_t *z, void *dst, const z3_param_t *p) {
    const size_t ms = dsc__z3_msize(z), bytes = (size_t)p->shard * ms;
    const char *src = (const char *)z->params + (size_t)p->local * ms;
    if (!z->param_ctx) return dsc__dev_copy(z->ctx, dst, src, bytes);
    return dsc__dev_from_host(z->ctx, dst, src, bytes); /* pinned: the copy engine at full speed */
}

dsc_status_t dsc__z3_shard_out(dsc_zero_t *z, int64_t local, const void *src, size_t n) {
    const size_t ms = dsc__z3_msize(z);
    char *dst = (char *)z->params + (size_t)local * ms;
    if (!z->param_ctx) return dsc__dev_copy(z->ctx, dst, src, n * ms);
    return dsc__dev_to_host(z->ctx, dst, src, n * ms);
}

dsc_status_t dsc__z3_params_from_device32(dsc_zero_t *z, const float *dev32) {
    const size_t n = (size_t)z->n_local, ms = dsc__z3_msize(z);
    const bool mixed = z->model_dtype != DSC_F32;
    if (!z->param_ctx)
        return mixed ? dsc_amp_f32_to_half(z->ctx, z->params, z->model_dtype, dev32, n)
                     : dsc__dev_copy(z->ctx, z->params, dev32, n * 4);
    if (!mixed) return dsc__dev_to_host(z->ctx, z->params, dev32, n * 4);
    /* Rounded on the device by the kernel of the run without offload, into the memory of the
     * fp32 gradient partition (n_local x 4 bytes: room for the 16-bit values; at the step its
     * gradients are spent once the master is updated, at the start it holds nothing yet), then
     * copied over and zeroed: no device memory beyond the run without offload. */
    dsc_status_t rc = dsc_amp_f32_to_half(z->ctx, z->acc32, z->model_dtype, dev32, n);
    if (rc == DSC_OK) rc = dsc__dev_to_host(z->ctx, z->params, z->acc32, n * ms);
    if (rc == DSC_OK) rc = dsc__dev_zero(z->ctx, z->acc32, n * 4);
    if (rc != DSC_OK)
        return dsc__zero_fail(z, rc, "rank %d: updating the offloaded parameter partition: %s", z->rank,
                              dsc_ctx_errmsg(z->ctx));
    return DSC_OK;
}

dsc_status_t dsc__zero_params_from_master(dsc_zero_t *z) {
    if (!z->param_ctx) return DSC_OK;
    if (!z->host_ctx) return dsc__z3_params_from_device32(z, z->master);
    /* both in host memory: the host context's kernels (the rounding of the host optimizer) */
    const size_t n = (size_t)z->n_local;
    dsc_status_t rc = z->model_dtype != DSC_F32
                          ? dsc_amp_f32_to_half(z->param_ctx, z->params, z->model_dtype, z->master, n)
                          : dsc__dev_copy(z->param_ctx, z->params, z->master, n * 4);
    if (rc != DSC_OK)
        return dsc__zero_fail(z, rc, "rank %d: updating the offloaded parameter partition: %s", z->rank,
                              dsc_ctx_errmsg(z->param_ctx));
    return DSC_OK;
}

dsc_status_t dsc__z3_params_after_step(dsc_zero_t *z) {
    if (!z->param_ctx) return DSC_OK;
    if (z->host_ctx && z->model_dtype != DSC_F32) return DSC_OK; /* the host optimizer wrote its 16-bit output here */
    return dsc__zero_params_from_master(z);
}

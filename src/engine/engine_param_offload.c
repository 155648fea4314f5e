/* zero_optimization.offload_param in the engine (issue 20, docs/offload.md): "cpu" at stage 3
 * from a device whose memory is not host memory (cuda:N, the guarded test device) puts this
 * rank's parameter partition in host memory owned by a host context: the optimizer offload's
 * when offload_optimizer is on too (ZeRO-Infinity's CPU setting: the host optimizer writes the
 * updated partition in place), else one of its own. ZeRO does the moving
 * (src/zero/zero_param_offload.c). On the cpu device "cpu" is a no-op (the partition is host
 * memory already). "nvme" at stage 3, on every device the cpu device included, puts the
 * partition in a swap file under nvme_path (src/zero/param_nvme.c) that ZeRO creates with the
 * options built here (buffer_count, buffer_size, pin_memory, the aio section). */
#include <stdio.h>

#include "engine/engine_internal.h"
#include "zero/param_nvme.h"

bool dsc__engine_offload_param(const dsc_engine_t *e) {
    const dsc_config_zero_t *z = &e->config->zero_optimization;
    return z->stage == 3 && z->offload_param.device == DSC_CONFIG_OFFLOAD_CPU && e->ctx->device.kind != DSC_DEVICE_CPU;
}

static void forward_log(dsc_log_level_t level, const char *message, void *user) {
    dsc_ctx_log((dsc_ctx_t *)user, level, "%s", message);
}

dsc_status_t dsc__engine_open_param_host(dsc_engine_t *e, dsc_ctx_t **param_ctx, char *err, size_t errsz) {
    const dsc_config_zero_t *z = &e->config->zero_optimization;
    *param_ctx = NULL;
    if (z->offload_param.device == DSC_CONFIG_OFFLOAD_NONE) return DSC_OK;
    if (z->offload_param.device == DSC_CONFIG_OFFLOAD_NVME) return DSC_OK; /* ZeRO creates the swap file */
    if (!dsc__engine_offload_param(e)) {
        if (e->rank == 0)
            dsc_ctx_log(e->ctx, DSC_LOG_INFO, "zero_optimization.offload_param.device \"cpu\" is a no-op on the %s "
                        "device: the parameter partition already lives in host memory", e->ctx->device.name);
        return DSC_OK;
    }
    if (e->host_ctx) { /* with offload_optimizer: one host context owns master, states and partition */
        *param_ctx = e->host_ctx;
        return DSC_OK;
    }
    dsc_ctx_options_t o = DSC_CTX_OPTIONS_INIT;
    o.device = "cpu";
    o.log_fn = forward_log;
    o.log_user = e->ctx;
    if (dsc_ctx_new(&o, &e->param_host_ctx) != DSC_OK) {
        snprintf(err, errsz, "zero_optimization.offload_param.device \"cpu\": cannot create the host context for the "
                 "parameter partition (out of memory)");
        return DSC_ERR_NOMEM;
    }
    *param_ctx = e->param_host_ctx;
    return DSC_OK;
}

bool dsc__engine_param_nvme_options(const dsc_engine_t *e, dsc_pnvme_options_t *o) {
    const dsc_config_t *c = e->config;
    const dsc_config_offload_param_t *op = &c->zero_optimization.offload_param;
    if (c->zero_optimization.stage != 3 || op->device != DSC_CONFIG_OFFLOAD_NVME) return false;
    *o = (dsc_pnvme_options_t){op->nvme_path, op->buffer_count, op->buffer_size, op->pin_memory, c->aio.block_size,
                               c->aio.queue_depth, c->aio.single_submit};
    return true;
}

void dsc__engine_note_param_offload(dsc_engine_t *e) {
    const dsc_pnvme_t *pv = dsc__zero_params_nvme(e->zero);
    if (pv) {
        const size_t n = (size_t)e->n_local, bytes = n * dsc_dtype_size(e->model_dtype);
        dsc_ctx_log(e->ctx, DSC_LOG_INFO, "rank %d: parameter partition (%zu elements of %s, %zu bytes) on NVMe: %s; "
                    "each gather reads its shard from the file (the stage-3 schedule reads the next ones ahead), the "
                    "step's update is written back%s", e->rank, n, dsc_dtype_name(e->model_dtype), bytes,
                    dsc__pnvme_describe(pv), e->host_ctx ? " from the host optimizer's master" : "");
        return;
    }
    bool pinned = false;
    if (!dsc__zero_params_on_host(e->zero, &pinned)) return;
    const size_t n = (size_t)e->n_local, bytes = n * dsc_dtype_size(e->model_dtype);
    dsc_ctx_log(e->ctx, DSC_LOG_INFO, "rank %d: parameter partition (%zu elements of %s, %zu bytes) offloaded from %s "
                "to host memory (%s); each gather copies its shard to the device first%s", e->rank, n,
                dsc_dtype_name(e->model_dtype), bytes, e->ctx->device.name,
                pinned ? "pinned" : !e->config->zero_optimization.offload_param.pin_memory ? "pin_memory false"
                                                                                           : "the device offers no pinned host memory",
                e->host_ctx ? "; the host optimizer writes the update into it" : "");
}

void dsc__engine_close_param_host(dsc_engine_t *e) {
    dsc_ctx_free(e->param_host_ctx);
    e->param_host_ctx = NULL;
}

size_t dsc__engine_param_host_bytes(const dsc_engine_t *e, size_t *pinned) {
    bool pin = false;
    *pinned = 0;
    const dsc_pnvme_t *pv = e->zero ? dsc__zero_params_nvme(e->zero) : NULL;
    if (pv) { /* "nvme": the swap buffers (the partition is in the file) */
        if (dsc__pnvme_pinned(pv)) *pinned = (size_t)dsc__pnvme_host_bytes(pv);
        return (size_t)dsc__pnvme_host_bytes(pv);
    }
    if (!e->zero || !dsc__zero_params_on_host(e->zero, &pin)) return 0;
    const size_t bytes = (size_t)e->n_local * dsc_dtype_size(e->model_dtype);
    if (pin) *pinned = bytes;
    /* counted on the optimizer's host context with it (engine_offload.c adds that one's) */
    return e->param_host_ctx ? dsc_ctx_mem_stats(e->param_host_ctx, DSC_MEM_PARAMS).live_bytes : 0;
}

/* zero_optimization.offload_optimizer in the engine: "cpu" on a host device is a no-op (the
 * state is in host memory already), "nvme" puts the optimizer's state of this rank's partition
 * in a swap file (src/zero/offload_nvme.c) that the optimizer step and checkpoints go through. */
#include <stdio.h>
#include <string.h>

#include "core/device.h"
#include "engine/engine_internal.h"
#include "optim/optim_internal.h"
#include "zero/offload_nvme.h"

bool dsc__engine_offload_nvme(const dsc_engine_t *e) {
    const dsc_config_zero_t *z = &e->config->zero_optimization;
    return z->stage > 0 && z->offload_optimizer.device == DSC_CONFIG_OFFLOAD_NVME;
}

dsc_status_t dsc__engine_check_offload(dsc_engine_t *e, char *err, size_t errsz) {
    const dsc_config_zero_t *z = &e->config->zero_optimization;
    const dsc_config_offload_device_t dev = z->offload_optimizer.device;
    if (z->stage == 0 || dev == DSC_CONFIG_OFFLOAD_NONE) return DSC_OK;
    const char *name = dev == DSC_CONFIG_OFFLOAD_CPU ? "cpu" : "nvme";
    if (e->ctx->device.kind == DSC_DEVICE_CUDA) {
        snprintf(err, errsz, "%s: zero_optimization.offload_optimizer.device \"%s\": optimizer offload from the %s "
                 "device is not implemented yet (it works with the cpu device)", e->config->source_name, name,
                 e->ctx->device.name);
        return DSC_ERR_UNSUPPORTED;
    }
    if (dev == DSC_CONFIG_OFFLOAD_CPU) {
        if (e->rank == 0)
            dsc_ctx_log(e->ctx, DSC_LOG_INFO, "zero_optimization.offload_optimizer.device \"cpu\" is a no-op on the %s "
                        "device: the optimizer state already lives in host memory", e->ctx->device.name);
        return DSC_OK;
    }
    if (e->optim_params.type == DSC_OPTIM_LAMB) {
        snprintf(err, errsz, "%s: zero_optimization.offload_optimizer.device \"nvme\": Lamb cannot be offloaded (its "
                 "trust ratio needs whole tensors; DeepSpeed offloads Adam, Adagrad and Lion)", e->config->source_name);
        return DSC_ERR_UNSUPPORTED;
    }
    return DSC_OK;
}

dsc_status_t dsc__engine_setup_offload(dsc_engine_t *e, char *err, size_t errsz) {
    if (!dsc__engine_offload_nvme(e) || !e->optimizer) return DSC_OK;
    const dsc_config_t *c = e->config;
    const dsc_config_offload_optimizer_t *oo = &c->zero_optimization.offload_optimizer;
    const dsc_nvme_options_t o = {oo->nvme_path, c->zero_optimization.sub_group_size, oo->buffer_count,
                                  oo->pipeline_read, oo->pipeline_write, c->aio.block_size, c->aio.queue_depth,
                                  c->aio.single_submit};
    const int ns = dsc_optim_num_states(e->optimizer);
    if (ns == 0) {
        if (e->rank == 0)
            dsc_ctx_log(e->ctx, DSC_LOG_INFO, "zero_optimization.offload_optimizer.device \"nvme\": the %s optimizer "
                        "keeps no state: nothing to swap", dsc_optim_class_name(&e->optim_params));
        return DSC_OK;
    }
    double initial[3] = {0, 0, 0};
    for (int i = 0; i < ns && i < 3; i++) initial[i] = dsc__optim_state_initial(e->optimizer, i);
    dsc_status_t rc = dsc__nvme_new(e->ctx, &o, e->rank, e->n_local, ns, initial, &e->nvme, err, errsz);
    if (rc != DSC_OK) return rc;
    dsc_ctx_log(e->ctx, DSC_LOG_INFO, "rank %d: optimizer state (%s) on NVMe: %s", e->rank,
                dsc_optim_class_name(&e->optim_params), dsc__nvme_describe(e->nvme));
    return DSC_OK;
}

void dsc__engine_free_offload(dsc_engine_t *e) {
    dsc__nvme_free(e->nvme);
    e->nvme = NULL;
}

dsc_status_t dsc__engine_optim_step(dsc_engine_t *e, float grad_scale, double lr, void *half, dsc_dtype_t half_dtype) {
    if (!e->nvme) return dsc_optim_step(e->optimizer, e->master, e->acc32, grad_scale, lr, half, half_dtype);
    if (dsc_optim_num_states(e->optimizer) == 0) /* nothing swapped: unbacked and stateless, one part */
        return dsc_optim_step(e->optimizer, e->master, e->acc32, grad_scale, lr, half, half_dtype);
    return dsc__nvme_step(e->nvme, e->optimizer, e->master, e->acc32, grad_scale, lr, half, half_dtype);
}

dsc_status_t dsc__engine_state_get(dsc_engine_t *e, int state, int64_t offset, int64_t n, float *host) {
    if (e->nvme) return dsc__nvme_get(e->nvme, state, offset, n, host);
    return dsc__dev_to_host(e->ctx, host, dsc_optim_state_data(e->optimizer, state) + offset, (size_t)n * 4);
}

dsc_status_t dsc__engine_state_set(dsc_engine_t *e, int state, int64_t offset, int64_t n, const float *host) {
    if (e->nvme) return dsc__nvme_set(e->nvme, state, offset, n, host);
    return dsc__dev_from_host(e->ctx, dsc_optim_state_data(e->optimizer, state) + offset, host, (size_t)n * 4);
}

dsc_status_t dsc__engine_state_flush(dsc_engine_t *e) { return e->nvme ? dsc__nvme_flush(e->nvme) : DSC_OK; }

/* The config's activation_checkpointing section (spec 1.10, 8), applied to the model's
 * context: what dsc honours and what it accepts with no effect, said once at start-up.
 * The checkpointing itself is src/core/recompute.c; models choose their segments
 * (dsc_actckpt_layer_selected), as DeepSpeed leaves the choice to the model. */
#include <stdio.h>

#include "dsc/checkpoint.h"
#include "engine/engine_actckpt.h"
#include "engine/engine_internal.h"

dsc_status_t dsc__engine_setup_actckpt(dsc_engine_t *e, char *err, size_t errsz) {
    if (!e) return DSC_ERR_INVALID;
    const dsc_config_activation_checkpointing_t *ac = &e->config->activation_checkpointing;
    dsc_actckpt_config_t c = DSC_ACTCKPT_CONFIG_INIT;
    if (ac->number_checkpoints.set) {
        if (ac->number_checkpoints.value < 1 || ac->number_checkpoints.value > 1000000) {
            if (err && errsz)
                snprintf(err, errsz, "%s: activation_checkpointing.number_checkpoints: must be in [1, 1000000], got %lld",
                         e->config->source_name, (long long)ac->number_checkpoints.value);
            return DSC_ERR_CONFIG;
        }
        c.number_checkpoints = (int)ac->number_checkpoints.value;
    }
    c.synchronize_checkpoint_boundary = ac->synchronize_checkpoint_boundary;
    c.profile = ac->profile;
    c.partition_activations = ac->partition_activations;
    c.cpu_checkpointing = ac->cpu_checkpointing;
    c.contiguous_memory_optimization = ac->contiguous_memory_optimization;
    dsc_status_t rc = dsc_actckpt_configure(e->ctx, &c);
    if (rc != DSC_OK) {
        if (err && errsz) snprintf(err, errsz, "%s", dsc_ctx_errmsg(e->ctx));
        return rc;
    }
    if (e->rank != 0) return DSC_OK;
    if (c.number_checkpoints)
        dsc_ctx_log(e->ctx, DSC_LOG_INFO, "activation_checkpointing.number_checkpoints=%d: models built on dsc "
                    "checkpoint %d blocks, spread evenly (a model's own setting, e.g. dsc train "
                    "--checkpoint-activations, takes precedence)", c.number_checkpoints, c.number_checkpoints);
    if (c.partition_activations)
        dsc_ctx_log(e->ctx, DSC_LOG_INFO, "activation_checkpointing.partition_activations: no effect without model "
                    "parallelism (as in DeepSpeed with a model-parallel size of 1): checkpoints are kept whole");
    if (c.cpu_checkpointing)
        dsc_ctx_log(e->ctx, DSC_LOG_INFO, "activation_checkpointing.cpu_checkpointing: no-op on the CPU backend "
                    "(checkpointed inputs already live in host memory)");
    if (c.contiguous_memory_optimization)
        dsc_ctx_log(e->ctx, DSC_LOG_INFO, "activation_checkpointing.contiguous_memory_optimization: no effect "
                    "(checkpoints already sit contiguously in the step arena)");
    if (c.synchronize_checkpoint_boundary)
        dsc_ctx_log(e->ctx, DSC_LOG_INFO, "activation_checkpointing.synchronize_checkpoint_boundary: the CPU backend "
                    "is synchronous, so every checkpoint boundary already is one");
    return DSC_OK;
}

void dsc__engine_teardown_actckpt(dsc_engine_t *e) {
    if (!e || !e->ctx) return;
    dsc_actckpt_config_t c = DSC_ACTCKPT_CONFIG_INIT;
    dsc_actckpt_configure(e->ctx, &c);
}

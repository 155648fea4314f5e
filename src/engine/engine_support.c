/* The config keys the engine implements (dsc_config_check_supported rejects the rest). */
#include "engine/engine_internal.h"

/* What this engine implements today. Every key the config sets away from DeepSpeed's
 * default must be listed here, or initialisation fails with "not supported yet" naming the
 * key (dsc_config_check_supported). prescale_gradients and gradient_predivide_factor select
 * where DeepSpeed divides by the world size; every variant computes the mean, which dsc
 * folds into the optimizer's scale. The zero_optimization tuning knobs that change only
 * how collectives are scheduled are accepted and reported by dsc__engine_note_knobs. */
static const char *const supported_keys[] = {
    "train_batch_size", "train_micro_batch_size_per_gpu", "gradient_accumulation_steps",
    "steps_per_print", "gradient_clipping", "managed_gradient_accumulation",
    "prescale_gradients", "gradient_predivide_factor", "gradient_allreduce_op=mean",
    "zero_allow_untested_optimizer", "dump_state", "vocabulary_size",
    "log_level", "dataloader_drop_last",
    "optimizer.type=adam", "optimizer.type=adamw", "optimizer.type=lamb", "optimizer.type=lion",
    "optimizer.type=adagrad", "optimizer.type=SGD", "optimizer.type=RMSprop", "optimizer.type=Adamax", "optimizer.params.*",
    "scheduler.type=LRRangeTest", "scheduler.type=OneCycle", "scheduler.type=WarmupLR",
    "scheduler.type=WarmupDecayLR", "scheduler.type=WarmupCosineLR", "scheduler.params.*",
    "zero_optimization.stage=0", "zero_optimization.stage=1", "zero_optimization.stage=2",
    "zero_optimization.stage=3", "zero_optimization.stage3_param_persistence_threshold",
    "zero_optimization.stage3_model_persistence_threshold", "zero_optimization.stage3_prefetch_bucket_size",
    "zero_optimization.stage3_max_live_parameters", "zero_optimization.stage3_max_reuse_distance",
    "zero_optimization.reduce_bucket_size", "zero_optimization.allgather_bucket_size",
    "zero_optimization.contiguous_gradients", "zero_optimization.overlap_comm",
    "zero_optimization.reduce_scatter", "zero_optimization.allgather_partitions",
    "timers.*", "fp16.enabled", "fp16.loss_scale", "fp16.initial_scale_power", "fp16.loss_scale_window",
    "fp16.hysteresis", "fp16.consecutive_hysteresis", "fp16.min_loss_scale", "bf16.enabled",
    "bf16.check_grad_overflow", "data_types.grad_accum_dtype",
    /* activation checkpointing (issue 7): */
    "activation_checkpointing.number_checkpoints", "activation_checkpointing.synchronize_checkpoint_boundary",
    "activation_checkpointing.profile", "activation_checkpointing.partition_activations",
    "activation_checkpointing.cpu_checkpointing", "activation_checkpointing.contiguous_memory_optimization",
    /* checkpoints (issue 8): */
    "checkpoint.tag_validation",
    /* monitors and logging (issue 9): */
    "wall_clock_breakdown", "csv_monitor.*", "tensorboard.*",
    /* optimizer offload (issue 20): "cpu" is a no-op on host devices, "nvme" swaps the optimizer
     * state through a file (engine_offload.c); ratio, super_offload and GDS stay refused. */
    "zero_optimization.offload_optimizer.device", "zero_optimization.offload_optimizer.nvme_path",
    "zero_optimization.offload_optimizer.buffer_count", "zero_optimization.offload_optimizer.pin_memory",
    "zero_optimization.offload_optimizer.pipeline_read", "zero_optimization.offload_optimizer.pipeline_write",
    "zero_optimization.offload_optimizer.fast_init", "zero_optimization.offload_optimizer.cpuadam_cores_perc",
    "zero_optimization.sub_group_size", "aio.block_size", "aio.queue_depth", "aio.single_submit",
    "aio.overlap_events", "aio.intra_op_parallelism",
    /* parameter offload (issue 20): "cpu" at stage 3 (engine_param_offload.c); "nvme" is
     * refused there, so its knobs are only read with it */
    "zero_optimization.offload_param.device", "zero_optimization.offload_param.pin_memory",
    "zero_optimization.offload_param.nvme_path", "zero_optimization.offload_param.buffer_count",
    "zero_optimization.offload_param.buffer_size", "zero_optimization.offload_param.max_in_cpu",
    /* dsc's own section (issue 6: collective timeout and debug check) */
    "dsc.*",
    NULL,
};


const char *const *dsc_engine_supported_keys(void) { return supported_keys; }

void dsc__engine_note_knobs(dsc_engine_t *e) {
    const dsc_config_zero_t *z = &e->config->zero_optimization;
    if (e->rank != 0 || e->world_size == 1) return;
    /* Stages 1-3 overlap the gradient collectives with backward (src/zero/zero_grads.c). In
     * DeepSpeed the key schedules the ZeRO optimizer's reduction (spec 5.3); stage 0 has none and
     * all-reduces in the engine's backward epilogue (spec 6.4), as dsc does. */
    if (z->overlap_comm && e->plan.stage == 0)
        dsc_ctx_log(e->ctx, DSC_LOG_INFO, "zero_optimization.overlap_comm: at stage 0 the gradients are all-reduced "
                    "once, after the boundary micro-step's backward, as in DeepSpeed (it overlaps them with backward "
                    "at stages 1-3)");
    if (!z->reduce_scatter)
        dsc_ctx_log(e->ctx, DSC_LOG_INFO, "zero_optimization.reduce_scatter false: dsc reduce-scatters anyway "
                    "(same result, 2/3 of DeepSpeed's all-reduce volume)");
}

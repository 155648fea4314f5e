/* The key tables: every section of the DeepSpeed config dsc models, with DeepSpeed's HEAD
 * defaults (commit edaa7221) and dsc's range checks; plus the helpers that read the tables
 * (defaults, lookup by path, formatting a value, comparing with the default). The table
 * order is the print order. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "config/config_internal.h"

_Static_assert(sizeof(dsc_config_dtype_t) == sizeof(int), "enums are written as int");
_Static_assert(sizeof(dsc_config_offload_device_t) == sizeof(int), "enums are written as int");

#define OFF(f) offsetof(dsc_config_t, f)
#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define TABLE(var, name_, keys_, plain_) const cfg_table_t var = {name_, keys_, ARRAY_LEN(keys_), plain_}

#define K_BOOL(n, f, d) {.name = n, .type = CT_BOOL, .off = OFF(f), .idef = (d)}
#define K_OPT_BOOL(n, f) {.name = n, .type = CT_OPT_BOOL, .off = OFF(f)}
#define K_INT(n, f, d, fl, lo, hi) \
    {.name = n, .type = CT_INT, .flags = (fl), .off = OFF(f), .idef = (d), .imin = (lo), .imax = (hi)}
#define K_INT_A(n, a, f, d, fl, lo, hi) \
    {.name = n, .alias = a, .type = CT_INT, .flags = (fl), .off = OFF(f), .idef = (d), .imin = (lo), .imax = (hi)}
#define K_OPT_INT(n, f, fl, lo, hi) {.name = n, .type = CT_OPT_INT, .flags = (fl), .off = OFF(f), .imin = (lo), .imax = (hi)}
#define K_FLOAT(n, f, d, fl, lo, hi) \
    {.name = n, .type = CT_FLOAT, .flags = (fl), .off = OFF(f), .fdef = (d), .fmin = (lo), .fmax = (hi)}
#define K_STR(n, f, d) {.name = n, .type = CT_STR, .off = OFF(f), .sdef = (d)}
#define K_OPT_STR(n, f) {.name = n, .type = CT_OPT_STR, .off = OFF(f)}
#define K_ENUM(n, f, d, fl, names, nt) \
    {.name = n, .type = CT_ENUM, .flags = (fl), .off = OFF(f), .idef = (d), .enums = (names), .note = (nt)}
#define K_OBJ(n, child_, fl, present) \
    {.name = n, .type = CT_OBJECT, .flags = (fl), .present_off = (present), .child = &(child_)}
#define K_SECTION(n, f) {.name = n, .type = CT_SECTION, .off = OFF(f)}

#define GT0 (CF_MIN | CF_MIN_EXCL) /* > lo */
#define GE (CF_MIN)                /* >= lo */
#define IN (CF_MIN | CF_MAX)       /* [lo, hi] */

/* ---- enumerations ------------------------------------------------------------------------- */

static const cfg_enum_name_t dtype_names[] = {
    {"fp16", DSC_CONFIG_DTYPE_FP16},           {"float16", DSC_CONFIG_DTYPE_FP16},
    {"half", DSC_CONFIG_DTYPE_FP16},           {"torch.float16", DSC_CONFIG_DTYPE_FP16},
    {"fp32", DSC_CONFIG_DTYPE_FP32},           {"float32", DSC_CONFIG_DTYPE_FP32},
    {"float", DSC_CONFIG_DTYPE_FP32},          {"torch.float32", DSC_CONFIG_DTYPE_FP32},
    {"bf16", DSC_CONFIG_DTYPE_BF16},           {"bfloat16", DSC_CONFIG_DTYPE_BF16},
    {"torch.bfloat16", DSC_CONFIG_DTYPE_BF16}, {"int8", DSC_CONFIG_DTYPE_INT8},
    {"torch.int8", DSC_CONFIG_DTYPE_INT8},     {NULL, 0}};
static const cfg_enum_name_t comm_dtype_names[] = {
    {"fp16", DSC_CONFIG_DTYPE_FP16}, {"bf16", DSC_CONFIG_DTYPE_BF16}, {"fp32", DSC_CONFIG_DTYPE_FP32}, {NULL, 0}};
static const cfg_enum_name_t allreduce_names[] = {
    {"mean", DSC_CONFIG_ALLREDUCE_MEAN}, {"sum", DSC_CONFIG_ALLREDUCE_SUM}, {NULL, 0}};
static const cfg_enum_name_t device_names[] = {
    {"none", DSC_CONFIG_OFFLOAD_NONE}, {"cpu", DSC_CONFIG_OFFLOAD_CPU}, {"nvme", DSC_CONFIG_OFFLOAD_NVME}, {NULL, 0}};
static const cfg_enum_name_t tag_names[] = {
    {"Warn", DSC_CONFIG_TAG_WARN}, {"Ignore", DSC_CONFIG_TAG_IGNORE}, {"Fail", DSC_CONFIG_TAG_FAIL}, {NULL, 0}};
static const cfg_enum_name_t writer_names[] = {
    {"fast", DSC_CONFIG_WRITER_FAST}, {"python", DSC_CONFIG_WRITER_PYTHON}, {"mock", DSC_CONFIG_WRITER_MOCK}, {NULL, 0}};
static const cfg_enum_name_t writer_dp_names[] = {{"replica", DSC_CONFIG_WRITER_DP_REPLICA},
                                                  {"socket", DSC_CONFIG_WRITER_DP_SOCKET},
                                                  {"machine", DSC_CONFIG_WRITER_DP_MACHINE},
                                                  {NULL, 0}};

static const char comm_note[] =
    " (DeepSpeed: \"Invalid communication_data_type. Supported data types: ['fp16', 'bf16', 'fp32']\")";

/* ---- fp16, bf16, data_types ------------------------------------------------------------------ */

static const cfg_key_t fp16_keys[] = {
    K_BOOL("enabled", fp16.enabled, false),
    K_BOOL("auto_cast", fp16.auto_cast, false),
    {.name = "loss_scale", .type = CT_FLOAT, .flags = GE, .off = OFF(fp16.loss_scale), .fdef = 0, .fmin = 0,
     .note = "0 selects dynamic loss scaling, > 0 a static scale"},
    {.name = "initial_scale_power", .type = CT_INT, .flags = IN, .off = OFF(fp16.initial_scale_power), .idef = 16,
     .imin = 0, .imax = 127, .note = "the initial dynamic scale 2^power must fit in fp32"},
    K_INT("loss_scale_window", fp16.loss_scale_window, 1000, 0, 0, 0),
    K_INT("hysteresis", fp16.hysteresis, 2, 0, 0, 0),
    K_BOOL("consecutive_hysteresis", fp16.consecutive_hysteresis, false),
    K_INT("min_loss_scale", fp16.min_loss_scale, 1, 0, 0, 0),
    K_BOOL("fp16_master_weights_and_grads", fp16.fp16_master_weights_and_grads, false),
};
static TABLE(fp16_table, "fp16", fp16_keys, false);

static const cfg_key_t bf16_keys[] = {
    K_BOOL("enabled", bf16.enabled, false),
    K_BOOL("immediate_grad_update", bf16.immediate_grad_update, false),
    K_BOOL("check_grad_overflow", bf16.check_grad_overflow, true),
    K_BOOL("bf16_master_weights_and_grads", bf16.bf16_master_weights_and_grads, false),
    K_BOOL("bf16_optimizer_states", bf16.bf16_optimizer_states, false),
};
static TABLE(bf16_table, "bf16", bf16_keys, false);

static const cfg_key_t data_types_keys[] = {
    K_ENUM("grad_accum_dtype", data_types.grad_accum_dtype, 0, CF_NULLABLE, dtype_names, NULL),
    K_ENUM("param_dtype", data_types.param_dtype, 0, CF_NULLABLE, dtype_names, NULL),
    K_ENUM("buffer_dtype", data_types.buffer_dtype, 0, CF_NULLABLE, dtype_names, NULL),
};
static TABLE(data_types_table, "data_types", data_types_keys, true);

/* ---- zero_optimization ----------------------------------------------------------------------- */

static const cfg_key_t offload_optimizer_keys[] = {
    K_ENUM("device", zero_optimization.offload_optimizer.device, 0, 0, device_names, NULL),
    K_OPT_STR("nvme_path", zero_optimization.offload_optimizer.nvme_path),
    K_INT("buffer_count", zero_optimization.offload_optimizer.buffer_count, 4, GE, 0, 0),
    K_BOOL("pin_memory", zero_optimization.offload_optimizer.pin_memory, true),
    K_BOOL("pipeline_read", zero_optimization.offload_optimizer.pipeline_read, false),
    K_BOOL("pipeline_write", zero_optimization.offload_optimizer.pipeline_write, false),
    K_BOOL("fast_init", zero_optimization.offload_optimizer.fast_init, false),
    K_FLOAT("ratio", zero_optimization.offload_optimizer.ratio, 1.0, IN, 0, 1),
    K_BOOL("super_offload", zero_optimization.offload_optimizer.super_offload, false),
    K_FLOAT("cpuadam_cores_perc", zero_optimization.offload_optimizer.cpuadam_cores_perc, 0.8, IN, 0, 1),
};
static TABLE(offload_optimizer_table, "zero_optimization.offload_optimizer", offload_optimizer_keys, false);

static const cfg_key_t offload_param_keys[] = {
    K_ENUM("device", zero_optimization.offload_param.device, 0, 0, device_names, NULL),
    K_OPT_STR("nvme_path", zero_optimization.offload_param.nvme_path),
    K_INT("buffer_count", zero_optimization.offload_param.buffer_count, 5, GE, 0, 0),
    K_INT("buffer_size", zero_optimization.offload_param.buffer_size, 100000000, GT0, 0, 0),
    K_INT("max_in_cpu", zero_optimization.offload_param.max_in_cpu, 1000000000, GE, 0, 0),
    K_BOOL("pin_memory", zero_optimization.offload_param.pin_memory, true),
};
static TABLE(offload_param_table, "zero_optimization.offload_param", offload_param_keys, false);

#define K_ZDEP(n, repl) \
    {.name = n, .type = CT_CUSTOM, .flags = CF_DEPRECATED | CF_NOPRINT, .parse = cfg_parse_zero_deprecated, .note = repl}

static const cfg_key_t zero_keys[] = {
    {.name = "stage", .type = CT_INT, .flags = IN | CF_I32, .off = OFF(zero_optimization.stage), .idef = 0, .imin = 0,
     .imax = 3, .note = "0 disables ZeRO, 1 partitions optimizer states, 2 adds gradients, 3 adds parameters"},
    K_BOOL("contiguous_gradients", zero_optimization.contiguous_gradients, true),
    {.name = "overlap_comm", .type = CT_BOOL, .flags = CF_NULLABLE, .off = OFF(zero_optimization.overlap_comm)},
    K_BOOL("reduce_scatter", zero_optimization.reduce_scatter, true),
    {.name = "reduce_bucket_size", .type = CT_INT, .flags = GT0, .off = OFF(zero_optimization.reduce_bucket_size),
     .idef = 500000000, .note = "0 would divide by zero during backward (DeepSpeed issues #8260, #8279)"},
    K_BOOL("use_multi_rank_bucket_allreduce", zero_optimization.use_multi_rank_bucket_allreduce, true),
    K_BOOL("allgather_partitions", zero_optimization.allgather_partitions, true),
    K_INT("allgather_bucket_size", zero_optimization.allgather_bucket_size, 500000000, GT0, 0, 0),
    K_BOOL("load_from_fp32_weights", zero_optimization.load_from_fp32_weights, true),
    K_BOOL("elastic_checkpoint", zero_optimization.elastic_checkpoint, false),
    K_OBJ("offload_param", offload_param_table, CF_NULLABLE, OFF(zero_optimization.offload_param.present)),
    K_OBJ("offload_optimizer", offload_optimizer_table, CF_NULLABLE, OFF(zero_optimization.offload_optimizer.present)),
    K_INT("sub_group_size", zero_optimization.sub_group_size, 1000000000, GT0, 0, 0),
    K_INT_A("stage3_prefetch_bucket_size", "prefetch_bucket_size", zero_optimization.stage3_prefetch_bucket_size,
            50000000, GE, 0, 0),
    K_INT_A("stage3_param_persistence_threshold", "param_persistence_threshold",
            zero_optimization.stage3_param_persistence_threshold, 100000, GE, 0, 0),
    K_INT_A("stage3_model_persistence_threshold", "model_persistence_threshold",
            zero_optimization.stage3_model_persistence_threshold, INT64_MAX, GE, 0, 0),
    K_INT_A("stage3_max_live_parameters", "max_live_parameters", zero_optimization.stage3_max_live_parameters,
            1000000000, GE, 0, 0),
    K_INT_A("stage3_max_reuse_distance", "max_reuse_distance", zero_optimization.stage3_max_reuse_distance,
            1000000000, GE, 0, 0),
    {.name = "stage3_gather_16bit_weights_on_model_save", .alias = "gather_16bit_weights_on_model_save",
     .type = CT_BOOL, .off = OFF(zero_optimization.stage3_gather_16bit_weights_on_model_save)},
    K_INT_A("stage3_module_granularity_threshold", "module_granularity_threshold",
            zero_optimization.stage3_module_granularity_threshold, 0, GE, 0, 0),
    {.name = "stage3_use_all_reduce_for_fetch_params", .alias = "use_all_reduce_for_fetch_params", .type = CT_BOOL,
     .off = OFF(zero_optimization.stage3_use_all_reduce_for_fetch_params)},
    {.name = "stage3_allgather_sequential", .alias = "allgather_sequential", .type = CT_BOOL,
     .off = OFF(zero_optimization.stage3_allgather_sequential)},
    K_BOOL("ignore_unused_parameters", zero_optimization.ignore_unused_parameters, true),
    K_BOOL("legacy_stage1", zero_optimization.legacy_stage1, false),
    K_BOOL("round_robin_gradients", zero_optimization.round_robin_gradients, false),
    K_INT("zero_hpz_partition_size", zero_optimization.zero_hpz_partition_size, 1, GT0, 0, 0),
    K_BOOL("zero_quantized_weights", zero_optimization.zero_quantized_weights, false),
    K_BOOL("zero_quantized_nontrainable_weights", zero_optimization.zero_quantized_nontrainable_weights, false),
    K_BOOL("zero_quantized_gradients", zero_optimization.zero_quantized_gradients, false),
    K_INT("mics_shard_size", zero_optimization.mics_shard_size, -1, GE, -1, 0),
    K_BOOL("mics_hierarchical_params_gather", zero_optimization.mics_hierarchical_params_gather, false),
    K_BOOL("memory_efficient_linear", zero_optimization.memory_efficient_linear, true),
    K_BOOL("override_module_apply", zero_optimization.override_module_apply, true),
    K_BOOL("pipeline_loading_checkpoint", zero_optimization.pipeline_loading_checkpoint, false),
    K_BOOL("log_trace_cache_warnings", zero_optimization.log_trace_cache_warnings, false),
    K_BOOL("enable_sanity_checks", zero_optimization.enable_sanity_checks, false),
    K_BOOL("save_muon_momentum_buffer_in_memory", zero_optimization.save_muon_momentum_buffer_in_memory, false),
    K_SECTION("zeropp_loco_param", zero_optimization.zeropp_loco_param),
    K_SECTION("zenflow", zero_optimization.zenflow),
    K_SECTION("leaf_module", zero_optimization.leaf_module),
    K_ZDEP("cpu_offload", "offload_optimizer"),
    K_ZDEP("cpu_offload_param", "offload_param"),
    K_ZDEP("cpu_offload_use_pin_memory", "offload_param or offload_optimizer"),
    K_ZDEP("stage3_gather_fp16_weights_on_model_save", "stage3_gather_16bit_weights_on_model_save"),
};
static TABLE(zero_table, "zero_optimization", zero_keys, false);

/* ---- activation checkpointing, checkpoint, aio ------------------------------------------------ */

static const cfg_key_t act_ckpt_keys[] = {
    K_BOOL("partition_activations", activation_checkpointing.partition_activations, false),
    K_BOOL("contiguous_memory_optimization", activation_checkpointing.contiguous_memory_optimization, false),
    K_BOOL("cpu_checkpointing", activation_checkpointing.cpu_checkpointing, false),
    K_OPT_INT("number_checkpoints", activation_checkpointing.number_checkpoints, GT0, 0, 0),
    K_BOOL("synchronize_checkpoint_boundary", activation_checkpointing.synchronize_checkpoint_boundary, false),
    K_BOOL("profile", activation_checkpointing.profile, false),
};
static TABLE(act_ckpt_table, "activation_checkpointing", act_ckpt_keys, true);

static const cfg_key_t parallel_write_keys[] = {
    K_BOOL("pipeline_stage", checkpoint.parallel_write_pipeline_stage, false),
};
static TABLE(parallel_write_table, "checkpoint.parallel_write", parallel_write_keys, true);

static const cfg_key_t writer_keys[] = {
    K_ENUM("type", checkpoint.writer.type, DSC_CONFIG_WRITER_FAST, CF_ICASE, writer_names, NULL),
    K_BOOL("decoupled", checkpoint.writer.decoupled, false),
    K_INT("io_buffer_size", checkpoint.writer.io_buffer_size, 64 << 20, GT0, 0, 0),
    K_BOOL("io_buffer_double", checkpoint.writer.io_buffer_double, true),
    K_BOOL("show_statistics", checkpoint.writer.show_statistics, false),
    K_ENUM("data_parallel", checkpoint.writer.data_parallel, 0, CF_ICASE | CF_NULLABLE, writer_dp_names, NULL),
    K_INT("io_multiplier", checkpoint.writer.io_multiplier, 1, GT0, 0, 0),
};
static TABLE(writer_table, "checkpoint.writer", writer_keys, true);

static const cfg_key_t checkpoint_keys[] = {
    K_ENUM("tag_validation", checkpoint.tag_validation, DSC_CONFIG_TAG_WARN, CF_ICASE, tag_names,
           " (DeepSpeed: \"Checkpoint config contains invalid tag_validation value\")"),
    K_BOOL("load_universal", checkpoint.load_universal, false),
    K_BOOL("use_node_local_storage", checkpoint.use_node_local_storage, false),
    K_OBJ("parallel_write", parallel_write_table, 0, 0),
    K_BOOL("checkpoint_serialization", checkpoint.checkpoint_serialization, true),
    K_OBJ("writer", writer_table, CF_NULLABLE, OFF(checkpoint.writer.present)),
};
static TABLE(checkpoint_table, "checkpoint", checkpoint_keys, true);

static const cfg_key_t aio_keys[] = {
    K_INT("block_size", aio.block_size, 1048576, GT0, 0, 0),
    K_INT("queue_depth", aio.queue_depth, 8, GT0, 0, 0),
    K_INT("intra_op_parallelism", aio.intra_op_parallelism, 1, GT0, 0, 0),
    K_BOOL("single_submit", aio.single_submit, false),
    K_BOOL("overlap_events", aio.overlap_events, true),
    K_BOOL("use_gds", aio.use_gds, false),
};
static TABLE(aio_table, "aio", aio_keys, true);

/* ---- monitors, profiler, timers, comms logger, autocast ---------------------------------------- */

static const cfg_key_t tensorboard_keys[] = {
    K_BOOL("enabled", tensorboard.enabled, false),
    K_STR("output_path", tensorboard.output_path, ""),
    K_STR("job_name", tensorboard.job_name, "DeepSpeedJobName"),
};
static TABLE(tensorboard_table, "tensorboard", tensorboard_keys, false);

static const cfg_key_t csv_keys[] = {
    K_BOOL("enabled", csv_monitor.enabled, false),
    K_STR("output_path", csv_monitor.output_path, ""),
    K_STR("job_name", csv_monitor.job_name, "DeepSpeedJobName"),
};
static TABLE(csv_table, "csv_monitor", csv_keys, false);

static const cfg_key_t wandb_keys[] = {
    K_BOOL("enabled", wandb.enabled, false),
    K_OPT_STR("group", wandb.group),
    K_OPT_STR("team", wandb.team),
    K_STR("project", wandb.project, "deepspeed"),
};
static TABLE(wandb_table, "wandb", wandb_keys, false);

static const cfg_key_t comet_keys[] = {
    K_BOOL("enabled", comet.enabled, false),
    K_INT("samples_log_interval", comet.samples_log_interval, 100, GT0, 0, 0),
    K_OPT_STR("project", comet.project),
    K_OPT_STR("workspace", comet.workspace),
    K_OPT_STR("api_key", comet.api_key),
    K_OPT_STR("experiment_name", comet.experiment_name),
    K_OPT_STR("experiment_key", comet.experiment_key),
    K_OPT_BOOL("online", comet.online),
    K_OPT_STR("mode", comet.mode),
};
static TABLE(comet_table, "comet", comet_keys, false);

static const cfg_key_t flops_keys[] = {
    K_BOOL("enabled", flops_profiler.enabled, false),
    K_FLOAT("recompute_fwd_factor", flops_profiler.recompute_fwd_factor, 0.0, GE, 0, 0),
    K_INT("profile_step", flops_profiler.profile_step, 1, GE, 1, 0),
    K_INT("module_depth", flops_profiler.module_depth, -1, GE, -1, 0),
    K_INT("top_modules", flops_profiler.top_modules, 1, GE, 1, 0),
    K_BOOL("detailed", flops_profiler.detailed, true),
    K_OPT_STR("output_file", flops_profiler.output_file),
};
static TABLE(flops_table, "flops_profiler", flops_keys, true);

static const cfg_key_t throughput_keys[] = {
    K_BOOL("enabled", timers_throughput.enabled, true),
    K_BOOL("synchronized", timers_throughput.synchronized, true),
};
static TABLE(throughput_table, "timers.throughput", throughput_keys, false);
static const cfg_key_t timers_keys[] = {K_OBJ("throughput", throughput_table, 0, 0)};
static TABLE(timers_table, "timers", timers_keys, true);

static const cfg_key_t comms_keys[] = {
    K_BOOL("enabled", comms_logger.enabled, false),
    K_BOOL("verbose", comms_logger.verbose, false),
    K_BOOL("prof_all", comms_logger.prof_all, true),
    K_BOOL("debug", comms_logger.debug, false),
    {.name = "prof_ops", .type = CT_STRLIST, .off = OFF(comms_logger.prof_ops), .idef = 1},
};
static TABLE(comms_table, "comms_logger", comms_keys, false);

static const cfg_key_t dsc_keys[] = {
    K_FLOAT("comm_timeout", dsc.comm_timeout, 0.0, GE, 0, 0),
    K_BOOL("comm_debug_check", dsc.comm_debug_check, false),
};
static TABLE(dsc_ext_table, "dsc", dsc_keys, false);

static const cfg_key_t autocast_keys[] = {
    K_BOOL("enabled", torch_autocast.enabled, false),
    K_ENUM("dtype", torch_autocast.dtype, 0, CF_NULLABLE, dtype_names, NULL),
    {.name = "lower_precision_safe_modules", .type = CT_STRLIST, .flags = CF_NULLABLE,
     .off = OFF(torch_autocast.lower_precision_safe_modules)},
};
static TABLE(autocast_table, "torch_autocast", autocast_keys, true);

/* ---- top level ------------------------------------------------------------------------------- */

static const cfg_key_t top_keys[] = {
    K_OPT_INT("train_batch_size", train_batch_size, GT0, 0, 0),
    K_OPT_INT("train_micro_batch_size_per_gpu", train_micro_batch_size_per_gpu, GT0, 0, 0),
    K_OPT_INT("gradient_accumulation_steps", gradient_accumulation_steps, GT0, 0, 0),
    K_OPT_INT("steps_per_print", steps_per_print, GT0, 0, 0),
    K_FLOAT("gradient_clipping", gradient_clipping, 1.0, GE, 0, 0),
    K_BOOL("wall_clock_breakdown", wall_clock_breakdown, false),
    K_BOOL("memory_breakdown", memory_breakdown, false),
    K_BOOL("prescale_gradients", prescale_gradients, false),
    K_FLOAT("gradient_predivide_factor", gradient_predivide_factor, 1.0, GT0, 0, 0),
    K_ENUM("gradient_allreduce_op", gradient_allreduce_op, DSC_CONFIG_ALLREDUCE_MEAN, CF_ICASE, allreduce_names,
           " (DeepSpeed: \"Invalid gradient_allreduce_op\")"),
    K_ENUM("communication_data_type", communication_data_type, 0, CF_ICASE | CF_NULLABLE, comm_dtype_names, comm_note),
    K_ENUM("seq_parallel_communication_data_type", seq_parallel_communication_data_type, DSC_CONFIG_DTYPE_FP32,
           CF_ICASE | CF_NULLABLE, comm_dtype_names, comm_note),
    K_BOOL("zero_allow_untested_optimizer", zero_allow_untested_optimizer, false),
    K_BOOL("zero_force_ds_cpu_optimizer", zero_force_ds_cpu_optimizer, true),
    K_BOOL("sparse_gradients", sparse_gradients, false),
    K_BOOL("disable_allgather", disable_allgather, false),
    K_BOOL("dump_state", dump_state, false),
    K_OPT_INT("vocabulary_size", vocabulary_size, GT0, 0, 0),
    K_BOOL("dataloader_drop_last", dataloader_drop_last, false),
    K_OPT_STR("log_level", log_level),
    K_BOOL("graph_harvesting", graph_harvesting, false),
    K_BOOL("managed_gradient_accumulation", managed_gradient_accumulation, true),
    K_OPT_INT("sequence_parallel_size", sequence_parallel_size, GT0, 0, 0),
    K_BOOL("use_data_before_expert_parallelism", use_data_before_expert_parallelism, false),
    K_INT("allgather_size", allgather_size, 500000000, GT0, 0, 0),
    {.name = "optimizer", .type = CT_CUSTOM, .flags = CF_PLAIN, .parse = cfg_parse_optimizer},
    {.name = "scheduler", .type = CT_CUSTOM, .flags = CF_PLAIN, .parse = cfg_parse_scheduler},
    K_OBJ("fp16", fp16_table, 0, 0),
    K_OBJ("bf16", bf16_table, CF_NULLABLE, 0), /* null: DeepSpeed then reads "bfloat16" */
    {.name = "bfloat16", .type = CT_OBJECT, .flags = CF_NOPRINT, .child = &bf16_table, .canon = "bf16"},
    K_OBJ("data_types", data_types_table, 0, 0),
    {.name = "zero_optimization", .type = CT_OBJECT, .child = &zero_table, .parse = cfg_parse_zero_legacy_bool},
    K_OBJ("activation_checkpointing", act_ckpt_table, 0, 0),
    K_OBJ("checkpoint", checkpoint_table, 0, 0),
    K_OBJ("aio", aio_table, CF_NULLABLE, 0),
    K_OBJ("tensorboard", tensorboard_table, 0, 0),
    K_OBJ("csv_monitor", csv_table, 0, 0),
    K_OBJ("wandb", wandb_table, 0, 0),
    K_OBJ("comet", comet_table, 0, 0),
    K_OBJ("flops_profiler", flops_table, 0, 0),
    K_OBJ("timers", timers_table, 0, 0),
    K_OBJ("comms_logger", comms_table, 0, OFF(comms_logger.present)),
    K_OBJ("dsc", dsc_ext_table, 0, 0),
    K_OBJ("torch_autocast", autocast_table, 0, 0),
    K_SECTION("amp", amp),
    K_SECTION("pipeline", pipeline),
    K_SECTION("tensor_parallel", tensor_parallel),
    K_SECTION("expert_parallel", expert_parallel),
    K_SECTION("compile", compile),
    K_SECTION("elasticity", elasticity),
    K_SECTION("progressive_layer_drop", progressive_layer_drop),
    K_SECTION("eigenvalue", eigenvalue),
    K_SECTION("quantize_training", quantize_training),
    K_SECTION("sparse_attention", sparse_attention),
    K_SECTION("compression_training", compression_training),
    K_SECTION("data_efficiency", data_efficiency),
    K_SECTION("curriculum_learning", curriculum_learning),
    K_SECTION("autotuning", autotuning),
    K_SECTION("hybrid_engine", hybrid_engine),
    K_SECTION("weight_quantization", weight_quantization),
    K_SECTION("nebula", nebula),
    K_SECTION("datastates", datastates),
};
TABLE(cfg_top_table, "", top_keys, true);

/* ---- table helpers ----------------------------------------------------------------------------- */

const cfg_key_t *cfg_table_find(const cfg_table_t *t, const char *name) {
    for (size_t i = 0; i < t->n_keys; i++) {
        const cfg_key_t *k = &t->keys[i];
        if (strcmp(k->name, name) == 0 || (k->alias && strcmp(k->alias, name) == 0)) return k;
    }
    return NULL;
}

const char *cfg_enum_name(const cfg_enum_name_t *names, int value) {
    for (const cfg_enum_name_t *e = names; e->name; e++)
        if (e->value == value) return e->name;
    return NULL;
}

static void set_key_default(dsc_config_t *cfg, const cfg_key_t *k) {
    void *f = (char *)cfg + k->off;
    switch (k->type) {
    case CT_BOOL: *(bool *)f = k->idef != 0; break;
    case CT_OPT_BOOL: *(dsc_config_opt_bool_t *)f = (dsc_config_opt_bool_t){false, false}; break;
    case CT_INT:
        if (k->flags & CF_I32) *(int *)f = (int)k->idef;
        else *(int64_t *)f = k->idef;
        break;
    case CT_OPT_INT: *(dsc_config_opt_int_t *)f = (dsc_config_opt_int_t){false, 0}; break;
    case CT_FLOAT: *(double *)f = k->fdef; break;
    case CT_STR: *(const char **)f = k->sdef; break;
    case CT_OPT_STR: *(const char **)f = NULL; break;
    case CT_ENUM: *(int *)f = (int)k->idef; break;
    case CT_STRLIST: *(dsc_config_strlist_t *)f = (dsc_config_strlist_t){k->idef != 0, 0, NULL}; break;
    case CT_SECTION: *(dsc_config_section_t *)f = (dsc_config_section_t){false, false, NULL}; break;
    case CT_OBJECT:
    case CT_CUSTOM: break;
    }
}

static void set_table_defaults(dsc_config_t *cfg, const cfg_table_t *t) {
    for (size_t i = 0; i < t->n_keys; i++) {
        const cfg_key_t *k = &t->keys[i];
        if (k->type == CT_OBJECT) {
            if (!k->canon) set_table_defaults(cfg, k->child);
            if (k->present_off) *(bool *)((char *)cfg + k->present_off) = false;
        } else if (k->type != CT_CUSTOM) {
            set_key_default(cfg, k);
        }
    }
}

void cfg_set_defaults(dsc_config_t *cfg) {
    set_table_defaults(cfg, &cfg_top_table);
    /* derived defaults (recomputed by cfg_finish) */
    cfg->communication_data_type_effective = DSC_CONFIG_DTYPE_FP32;
    cfg->data_types.grad_accum_dtype_effective = DSC_CONFIG_DTYPE_FP32;
    cfg->optimizer.kind = DSC_CONFIG_OPTIM_NONE;
    cfg->scheduler.kind = DSC_CONFIG_SCHED_NONE;
}

const cfg_key_t *cfg_lookup_path(const char *path, char *canonical, size_t canonical_sz) {
    const cfg_table_t *t = &cfg_top_table;
    const cfg_key_t *k = NULL;
    char canon[CFG_PATH_MAX] = "";
    const char *s = path;
    while (s && *s) {
        const char *dot = strchr(s, '.');
        size_t n = dot ? (size_t)(dot - s) : strlen(s);
        char comp[128];
        if (n == 0 || n >= sizeof comp || !t) return NULL;
        memcpy(comp, s, n);
        comp[n] = '\0';
        k = cfg_table_find(t, comp);
        if (!k) return NULL;
        char next[CFG_PATH_MAX];
        cfg_path_join(next, sizeof next, canon, k->canon ? k->canon : k->name);
        snprintf(canon, sizeof canon, "%s", next);
        t = k->type == CT_OBJECT ? k->child : NULL;
        s = dot ? dot + 1 : NULL;
        if (dot && !t) return NULL;
    }
    if (k && canonical) snprintf(canonical, canonical_sz, "%s", canon);
    return k;
}

static void json_quote(const char *s, char *buf, size_t bufsz) {
    size_t o = 0;
    if (bufsz < 3) {
        if (bufsz) buf[0] = '\0';
        return;
    }
    buf[o++] = '"';
    for (; *s && o + 8 < bufsz; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            buf[o++] = '\\';
            buf[o++] = (char)c;
        } else if (c < 0x20) {
            o += (size_t)snprintf(buf + o, bufsz - o, "\\u%04x", c);
        } else {
            buf[o++] = (char)c;
        }
    }
    buf[o++] = '"';
    buf[o] = '\0';
}

void cfg_format_key_value(const dsc_config_t *cfg, const cfg_key_t *k, char *buf, size_t bufsz) {
    const void *f = (const char *)cfg + k->off;
    buf[0] = '\0';
    switch (k->type) {
    case CT_BOOL: snprintf(buf, bufsz, "%s", *(const bool *)f ? "true" : "false"); break;
    case CT_OPT_BOOL: {
        const dsc_config_opt_bool_t *o = f;
        snprintf(buf, bufsz, "%s", !o->set ? "null" : o->value ? "true" : "false");
        break;
    }
    case CT_INT:
        snprintf(buf, bufsz, "%lld", (k->flags & CF_I32) ? (long long)*(const int *)f : (long long)*(const int64_t *)f);
        break;
    case CT_OPT_INT: {
        const dsc_config_opt_int_t *o = f;
        if (o->set) snprintf(buf, bufsz, "%lld", (long long)o->value);
        else snprintf(buf, bufsz, "null");
        break;
    }
    case CT_FLOAT: cfg_format_double(*(const double *)f, buf, bufsz); break;
    case CT_STR:
    case CT_OPT_STR: {
        const char *s = *(const char *const *)f;
        if (s) json_quote(s, buf, bufsz);
        else snprintf(buf, bufsz, "null");
        break;
    }
    case CT_ENUM: {
        int v = *(const int *)f;
        const char *name = cfg_enum_name(k->enums, v);
        if (!name || (v == 0 && (k->flags & CF_NULLABLE))) snprintf(buf, bufsz, "null");
        else snprintf(buf, bufsz, "\"%s\"", name);
        break;
    }
    case CT_STRLIST: {
        const dsc_config_strlist_t *l = f;
        if (!l->set) {
            snprintf(buf, bufsz, "null");
            break;
        }
        size_t o = (size_t)snprintf(buf, bufsz, "[");
        for (size_t i = 0; i < l->count && o < bufsz; i++) {
            char q[256];
            json_quote(l->items[i], q, sizeof q);
            o += (size_t)snprintf(buf + o, bufsz - o, "%s%s", i ? ", " : "", q);
        }
        if (o < bufsz) snprintf(buf + o, bufsz - o, "]");
        break;
    }
    case CT_SECTION: {
        const dsc_config_section_t *s = f;
        snprintf(buf, bufsz, "%s", s->present && s->json ? s->json : "null");
        break;
    }
    case CT_OBJECT:
    case CT_CUSTOM: break;
    }
}

bool cfg_key_is_default(const dsc_config_t *cfg, const cfg_key_t *k) {
    const void *f = (const char *)cfg + k->off;
    switch (k->type) {
    case CT_BOOL: return *(const bool *)f == (k->idef != 0);
    case CT_OPT_BOOL: return !((const dsc_config_opt_bool_t *)f)->set;
    case CT_INT:
        return ((k->flags & CF_I32) ? (int64_t) * (const int *)f : *(const int64_t *)f) == k->idef;
    case CT_OPT_INT: return !((const dsc_config_opt_int_t *)f)->set;
    case CT_FLOAT: return *(const double *)f == k->fdef;
    case CT_STR: return strcmp(*(const char *const *)f, k->sdef) == 0;
    case CT_OPT_STR: return *(const char *const *)f == NULL;
    case CT_ENUM: return *(const int *)f == (int)k->idef;
    case CT_STRLIST: {
        const dsc_config_strlist_t *l = f;
        return k->idef ? (l->set && l->count == 0) : !l->set;
    }
    case CT_SECTION: return !((const dsc_config_section_t *)f)->in_use;
    case CT_OBJECT:
    case CT_CUSTOM: return true;
    }
    return true;
}

const char *dsc_config_dtype_name(dsc_config_dtype_t dtype) {
    switch (dtype) {
    case DSC_CONFIG_DTYPE_FP32: return "fp32";
    case DSC_CONFIG_DTYPE_FP16: return "fp16";
    case DSC_CONFIG_DTYPE_BF16: return "bf16";
    case DSC_CONFIG_DTYPE_INT8: return "int8";
    default: return "null";
    }
}

const char *dsc_config_offload_device_name(dsc_config_offload_device_t device) {
    switch (device) {
    case DSC_CONFIG_OFFLOAD_CPU: return "cpu";
    case DSC_CONFIG_OFFLOAD_NVME: return "nvme";
    default: return "none";
    }
}

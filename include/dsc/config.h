/* dsc/config.h: the DeepSpeed JSON configuration, parsed, validated and typed.
 *
 * dsc reads the same JSON file as DeepSpeed (behaviour of DeepSpeed 0.19.6 development head,
 * commit edaa7221; see docs/config.md and the spec's section 1) into a dsc_config_t: one
 * typed field per key, grouped by section, holding DeepSpeed's HEAD defaults where the file
 * is silent. Differences from DeepSpeed, all of them stricter:
 *   - unknown keys are errors with a "did you mean" suggestion, in every section (the
 *     top level can be relaxed to warnings with unknown_top_level_keys_warn, the sections
 *     DeepSpeed reads as plain dicts with unknown_section_keys_warn);
 *   - "auto" is rejected everywhere with an explanation (DeepSpeed drops it inside strict
 *     sections and crashes on it elsewhere);
 *   - every number is range-checked; an integer field accepts a JSON real only when it has
 *     no fractional part (5e8 is fine);
 *   - the text must be strict JSON (DeepSpeed reads hjson: comments, trailing commas).
 *
 * Every value remembers where it came from (dsc_config_source_t): the default, the file
 * (line and column of the value), or a derivation (a batch size computed from the other
 * two, a deprecated key copied to its replacement, ...). Every error message names the
 * file, line, column and key path: "cfg.json:7:27: zero_optimization.reduce_bucket_size:
 * must be > 0, got 0".
 *
 * Lifecycle:
 *   dsc_config_parse_file / _string / _buffer  ->  dsc_config_t (owned by the caller)
 *   dsc_config_resolve_batch(cfg, world_size)  ->  derives the missing batch size (spec 1.2)
 *   dsc_config_check_supported(cfg, support)   ->  rejects parsed keys the engine lacks
 *   dsc_config_print(cfg, stdout)              ->  the effective config with sources
 *   dsc_config_free(cfg)
 *
 * The config owns every string and array it points to; they live until dsc_config_free.
 * A dsc_config_t is only created by the functions below (it carries hidden state after it):
 * fields may be read and changed in place, but never pass a copy made by value to them.
 * Nothing here keeps global state; a config may be read from several threads at once but
 * modified (resolve_batch) by one at a time.
 */
#ifndef DSC_CONFIG_H
#define DSC_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "dsc/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The DeepSpeed behaviour this parser follows. */
#define DSC_CONFIG_DEEPSPEED_VERSION "0.19.6 (development head, commit edaa7221)"

/* ---------------------------------------------------------------------------------------
 * Sources
 * ------------------------------------------------------------------------------------- */

typedef enum dsc_config_origin {
    DSC_CONFIG_DEFAULT = 0, /* DeepSpeed's default; `note` may say which rule picked it */
    DSC_CONFIG_FILE,        /* written in the config text at line:col */
    DSC_CONFIG_DERIVED      /* computed from other values; `note` says how */
} dsc_config_origin_t;

/* Where a value came from. line/col are 1-based (columns count UTF-8 characters, as
 * jansson does) and point at the value; for DERIVED they point at the key the value was
 * derived from when there is one (a deprecated key), else they are 0. `note` is NULL or a
 * string owned by the config (or static) describing the rule. */
typedef struct dsc_config_source {
    dsc_config_origin_t origin;
    int line;
    int col;
    const char *note;
} dsc_config_source_t;

/* An integer that may be absent ("null" or not given). `set` false means unset, which is
 * different from 0 (the batch-size keys rely on this). */
typedef struct dsc_config_opt_int {
    bool set;
    int64_t value;
} dsc_config_opt_int_t;

/* A bool that may be null (comet.online). */
typedef struct dsc_config_opt_bool {
    bool set;
    bool value;
} dsc_config_opt_bool_t;

/* A list of strings (comms_logger.prof_ops, ...). `set` false means null/absent. */
typedef struct dsc_config_strlist {
    bool set;
    size_t count;
    const char *const *items;
} dsc_config_strlist_t;

/* A section dsc does not model key by key (pipeline, elasticity, zenflow, ...). It is kept
 * as compact JSON text. `in_use` is true when the section is present, non-empty and not
 * switched off by "enabled": false; dsc_config_check_supported rejects sections in use
 * unless the engine lists them. */
typedef struct dsc_config_section {
    bool present;
    bool in_use;
    const char *json; /* compact JSON of the section; NULL when absent */
} dsc_config_section_t;

/* ---------------------------------------------------------------------------------------
 * Enumerations (the strings each accepts are in docs/config.md)
 * ------------------------------------------------------------------------------------- */

/* data_types.*, communication_data_type, torch_autocast.dtype. NONE = null (unset). */
typedef enum dsc_config_dtype {
    DSC_CONFIG_DTYPE_NONE = 0,
    DSC_CONFIG_DTYPE_FP32, /* "fp32", "float32", "float", "torch.float32" */
    DSC_CONFIG_DTYPE_FP16, /* "fp16", "float16", "half", "torch.float16" */
    DSC_CONFIG_DTYPE_BF16, /* "bf16", "bfloat16", "torch.bfloat16" */
    DSC_CONFIG_DTYPE_INT8  /* "int8", "torch.int8" (data_types only) */
} dsc_config_dtype_t;

typedef enum dsc_config_offload_device {
    DSC_CONFIG_OFFLOAD_NONE = 0, /* "none" */
    DSC_CONFIG_OFFLOAD_CPU,      /* "cpu" */
    DSC_CONFIG_OFFLOAD_NVME      /* "nvme" */
} dsc_config_offload_device_t;

typedef enum dsc_config_allreduce_op {
    DSC_CONFIG_ALLREDUCE_MEAN = 0, /* "mean" (any case) */
    DSC_CONFIG_ALLREDUCE_SUM       /* "sum": no averaging over ranks */
} dsc_config_allreduce_op_t;

typedef enum dsc_config_tag_validation {
    DSC_CONFIG_TAG_WARN = 0, /* "Warn" (any case) */
    DSC_CONFIG_TAG_IGNORE,
    DSC_CONFIG_TAG_FAIL
} dsc_config_tag_validation_t;

typedef enum dsc_config_writer_type {
    DSC_CONFIG_WRITER_FAST = 0, /* "fast" (any case) */
    DSC_CONFIG_WRITER_PYTHON,
    DSC_CONFIG_WRITER_MOCK
} dsc_config_writer_type_t;

typedef enum dsc_config_writer_dp {
    DSC_CONFIG_WRITER_DP_NONE = 0, /* null */
    DSC_CONFIG_WRITER_DP_REPLICA,
    DSC_CONFIG_WRITER_DP_SOCKET,
    DSC_CONFIG_WRITER_DP_MACHINE
} dsc_config_writer_dp_t;

/* The optimizer named by optimizer.type, after DeepSpeed's name rules (spec 1.4): the
 * names in the first group match case-insensitively; every other name must be a
 * torch.optim class spelled with its exact case. */
typedef enum dsc_config_optimizer_kind {
    DSC_CONFIG_OPTIM_NONE = 0, /* no optimizer in the config */
    DSC_CONFIG_OPTIM_ADAM,     /* "adam" */
    DSC_CONFIG_OPTIM_ADAMW,    /* "adamw" */
    DSC_CONFIG_OPTIM_ADAGRAD,
    DSC_CONFIG_OPTIM_LAMB,
    DSC_CONFIG_OPTIM_LION,
    DSC_CONFIG_OPTIM_ONEBITADAM,
    DSC_CONFIG_OPTIM_ZEROONEADAM,
    DSC_CONFIG_OPTIM_ONEBITLAMB,
    DSC_CONFIG_OPTIM_MUADAM,
    DSC_CONFIG_OPTIM_MUADAMW,
    DSC_CONFIG_OPTIM_MUSGD,
    DSC_CONFIG_OPTIM_MUON,
    DSC_CONFIG_OPTIM_TORCH /* another torch.optim class: "SGD", "RMSprop", "Adamax", ... */
} dsc_config_optimizer_kind_t;

typedef enum dsc_config_scheduler_kind {
    DSC_CONFIG_SCHED_NONE = 0,
    DSC_CONFIG_SCHED_LR_RANGE_TEST, /* "LRRangeTest" (exact case) */
    DSC_CONFIG_SCHED_ONE_CYCLE,     /* "OneCycle" */
    DSC_CONFIG_SCHED_WARMUP_LR,     /* "WarmupLR" */
    DSC_CONFIG_SCHED_WARMUP_DECAY_LR,
    DSC_CONFIG_SCHED_WARMUP_COSINE_LR,
    DSC_CONFIG_SCHED_TORCH /* a torch.optim.lr_scheduler class: "StepLR", ... */
} dsc_config_scheduler_kind_t;

typedef enum dsc_config_warmup_type {
    DSC_CONFIG_WARMUP_LOG = 0, /* "log" */
    DSC_CONFIG_WARMUP_LINEAR   /* "linear" */
} dsc_config_warmup_type_t;

/* ---------------------------------------------------------------------------------------
 * Optimizer and scheduler parameters
 * ------------------------------------------------------------------------------------- */

typedef enum dsc_config_param_kind {
    DSC_CONFIG_PARAM_NULL = 0, /* JSON null (or a default of None) */
    DSC_CONFIG_PARAM_BOOL,
    DSC_CONFIG_PARAM_NUMBER,
    DSC_CONFIG_PARAM_STRING,
    DSC_CONFIG_PARAM_LIST /* numbers (betas, per-param-group lrs, milestones); null items are NaN */
} dsc_config_param_kind_t;

/* One effective parameter of the optimizer or scheduler: every key of the chosen class,
 * given in the file or defaulted, in the class's signature order. */
typedef struct dsc_config_param {
    const char *name;
    dsc_config_param_kind_t kind;
    bool boolean;
    double number;
    bool is_integer;    /* NUMBER written (or defaulted) as an integer */
    const char *string;
    const double *list;
    size_t list_len;
    dsc_config_source_t source;
} dsc_config_param_t;

typedef struct dsc_config_params {
    size_t count;
    const dsc_config_param_t *items;
} dsc_config_params_t;

/* The parameter called `name`, or NULL. */
const dsc_config_param_t *dsc_config_param_find(const dsc_config_params_t *params, const char *name);

/* optimizer: {"type": ..., "params": {...}, "legacy_fusion": bool} */
typedef struct dsc_config_optimizer {
    dsc_config_optimizer_kind_t kind; /* NONE when the config names no optimizer */
    const char *type;   /* canonical: lower case for DeepSpeed's names ("adamw"), exact torch
                           class name otherwise ("SGD"); NULL when kind is NONE */
    const char *implementation; /* the class DeepSpeed would build: "FusedAdam",
                                   "DeepSpeedCPUAdam", "torch.optim.AdamW", "FusedLamb", ... */
    bool legacy_fusion; /* default false */
    /* Effective values of the common parameters, resolved against the defaults of the
     * class DeepSpeed would build (FusedAdam, DeepSpeedCPUAdam with offload, torch Adam(W)
     * with torch_adam, FusedLamb, ...). Only those the class takes are meaningful; the
     * rest keep the values shown here. Everything else is in `params`. */
    double lr;                        /* 1e-3 (Adagrad 1e-2) */
    double betas[2];                  /* 0.9, 0.999 */
    double eps;                       /* 1e-8 (Adagrad 1e-10) */
    double weight_decay;              /* 0 (torch AdamW 0.01) */
    bool bias_correction;             /* true */
    bool amsgrad;                     /* false */
    bool adam_w_mode;                 /* effective: type == "adamw" || params.adam_w_mode (default true) */
    bool torch_adam;                  /* false */
    bool fp32_optimizer_states;       /* true (CPU optimizers) */
    double momentum;                  /* 0 (SGD, RMSprop); Muon 0.95 */
    double dampening;                 /* 0 */
    bool nesterov;                    /* false */
    double max_coeff, min_coeff;      /* LAMB: 10.0, 0.01 */
    bool eps_inside_sqrt;             /* LAMB / 1-bit: false */
    dsc_config_params_t params;       /* every parameter of the class, given or defaulted */
} dsc_config_optimizer_t;

/* scheduler: {"type": ..., "params": {...}} (spec 2). */
typedef struct dsc_config_scheduler {
    dsc_config_scheduler_kind_t kind; /* NONE when the config names no scheduler */
    const char *type;                 /* exact name, e.g. "WarmupDecayLR" */
    /* Typed views of the DeepSpeed schedulers' parameters (only those of `kind` are
     * meaningful). A parameter given as a per-param-group list shows its first element
     * here; the whole list is in `params` (kind LIST) and its length must be checked
     * against the number of parameter groups by the engine. */
    double warmup_min_lr;         /* 0 */
    bool warmup_max_lr_set;       /* WarmupLR: null -> the optimizer's lr */
    double warmup_max_lr;         /* WarmupDecayLR default 0.001 */
    int64_t warmup_num_steps;     /* 1000; a positive JSON integer */
    dsc_config_warmup_type_t warmup_type; /* "log" */
    int64_t total_num_steps;      /* required for WarmupDecayLR / WarmupCosineLR */
    double warmup_min_ratio;      /* 0 */
    double cos_min_ratio;         /* 1e-4 */
    double lr_range_test_min_lr;  /* 1e-3 */
    int64_t lr_range_test_step_size; /* 2000 */
    double lr_range_test_step_rate;  /* 1.0 */
    bool lr_range_test_staircase;    /* false */
    double cycle_min_lr, cycle_max_lr; /* required for OneCycle */
    double decay_lr_rate;              /* 0 */
    int64_t cycle_first_step_size;     /* 2000 */
    int64_t cycle_second_step_size;    /* null -> cycle_first_step_size */
    int64_t cycle_first_stair_count;   /* 0 */
    int64_t cycle_second_stair_count;  /* null -> cycle_first_stair_count */
    int64_t decay_step_size;           /* 0 */
    bool cycle_momentum;               /* true */
    double cycle_min_mom, cycle_max_mom; /* 0.8, 0.9 */
    double decay_mom_rate;             /* 0 */
    int64_t last_batch_iteration;      /* -1 */
    dsc_config_params_t params;        /* every parameter of the class, given or defaulted */
} dsc_config_scheduler_t;

/* ---------------------------------------------------------------------------------------
 * Sections
 * ------------------------------------------------------------------------------------- */

/* fp16 (spec 1.6) */
typedef struct dsc_config_fp16 {
    bool enabled;                       /* false */
    bool auto_cast;                     /* false */
    double loss_scale;                  /* 0 = dynamic; > 0 static */
    int64_t initial_scale_power;        /* 16 */
    int64_t loss_scale_window;          /* 1000 */
    int64_t hysteresis;                 /* 2 */
    bool consecutive_hysteresis;        /* false */
    int64_t min_loss_scale;             /* 1 */
    bool fp16_master_weights_and_grads; /* false */
} dsc_config_fp16_t;

/* bf16 (spec 1.7); also read from the legacy key "bfloat16" */
typedef struct dsc_config_bf16 {
    bool enabled;                       /* false */
    bool immediate_grad_update;         /* false */
    bool check_grad_overflow;           /* true (HEAD; false before v0.19.3) */
    bool bf16_master_weights_and_grads; /* false */
    bool bf16_optimizer_states;         /* false */
    bool from_legacy_key;               /* the section was written as "bfloat16" */
} dsc_config_bf16_t;

/* data_types (spec 1.8). NONE = null. grad_accum_dtype_effective is never NONE. */
typedef struct dsc_config_data_types {
    dsc_config_dtype_t grad_accum_dtype;
    dsc_config_dtype_t param_dtype;
    dsc_config_dtype_t buffer_dtype;
    dsc_config_dtype_t grad_accum_dtype_effective; /* null -> model dtype (fp16/bf16/fp32) */
} dsc_config_data_types_t;

/* zero_optimization.offload_optimizer */
typedef struct dsc_config_offload_optimizer {
    bool present;                       /* the object was given (or derived from cpu_offload) */
    dsc_config_offload_device_t device; /* none */
    const char *nvme_path;              /* NULL */
    int64_t buffer_count;               /* 4 */
    bool pin_memory;                    /* true */
    bool pipeline_read, pipeline_write; /* false */
    bool fast_init;                     /* false */
    double ratio;                       /* 1.0, in [0, 1]; < 1 only with stage 3 */
    bool super_offload;                 /* false */
    double cpuadam_cores_perc;          /* 0.8, in [0, 1] */
} dsc_config_offload_optimizer_t;

/* zero_optimization.offload_param (stage 3 only) */
typedef struct dsc_config_offload_param {
    bool present;
    dsc_config_offload_device_t device; /* none */
    const char *nvme_path;              /* NULL */
    int64_t buffer_count;               /* 5 */
    int64_t buffer_size;                /* 1e8 */
    int64_t max_in_cpu;                 /* 1e9 */
    bool pin_memory;                    /* true */
} dsc_config_offload_param_t;

/* zero_optimization (spec 1.9). The stage3_* keys also accept their bare names
 * (prefetch_bucket_size, ...); paths use the stage3_ spelling. */
typedef struct dsc_config_zero {
    int stage;                          /* 0..3, default 0 */
    bool contiguous_gradients;          /* true */
    bool overlap_comm;                  /* effective: null -> (stage == 3) */
    bool reduce_scatter;                /* true */
    int64_t reduce_bucket_size;         /* 5e8, > 0 */
    bool use_multi_rank_bucket_allreduce; /* true */
    bool allgather_partitions;          /* true */
    int64_t allgather_bucket_size;      /* 5e8, > 0, even with stage 1/2 */
    bool load_from_fp32_weights;        /* true */
    bool elastic_checkpoint;            /* false */
    dsc_config_offload_param_t offload_param;
    dsc_config_offload_optimizer_t offload_optimizer;
    int64_t sub_group_size;             /* 1e9 */
    int64_t stage3_prefetch_bucket_size;         /* 5e7 */
    int64_t stage3_param_persistence_threshold;  /* 1e5 */
    int64_t stage3_model_persistence_threshold;  /* INT64_MAX (sys.maxsize) */
    int64_t stage3_max_live_parameters;          /* 1e9 */
    int64_t stage3_max_reuse_distance;           /* 1e9 */
    bool stage3_gather_16bit_weights_on_model_save; /* false */
    int64_t stage3_module_granularity_threshold; /* 0 */
    bool stage3_use_all_reduce_for_fetch_params; /* false */
    bool stage3_allgather_sequential;            /* false */
    bool ignore_unused_parameters;      /* true */
    bool legacy_stage1;                 /* false; true is an error */
    bool round_robin_gradients;         /* false */
    int64_t zero_hpz_partition_size;    /* 1 */
    bool zero_quantized_weights;        /* false */
    bool zero_quantized_nontrainable_weights; /* false */
    bool zero_quantized_gradients;      /* false */
    int64_t mics_shard_size;            /* -1 (off) */
    bool mics_hierarchical_params_gather; /* false */
    bool memory_efficient_linear;       /* true */
    bool override_module_apply;         /* true */
    bool pipeline_loading_checkpoint;   /* false */
    bool log_trace_cache_warnings;      /* false */
    bool enable_sanity_checks;          /* false */
    bool save_muon_momentum_buffer_in_memory; /* false */
    dsc_config_section_t zeropp_loco_param; /* null */
    dsc_config_section_t zenflow;           /* null */
    dsc_config_section_t leaf_module;       /* {} */
    bool from_legacy_bool;              /* written as "zero_optimization": true/false */
} dsc_config_zero_t;

/* activation_checkpointing (spec 1.10) */
typedef struct dsc_config_activation_checkpointing {
    bool partition_activations;            /* false */
    bool contiguous_memory_optimization;   /* false; needs partition_activations and number_checkpoints */
    bool cpu_checkpointing;                /* false */
    dsc_config_opt_int_t number_checkpoints; /* null */
    bool synchronize_checkpoint_boundary;  /* false */
    bool profile;                          /* false */
} dsc_config_activation_checkpointing_t;

/* checkpoint (spec 1.11) */
typedef struct dsc_config_checkpoint {
    dsc_config_tag_validation_t tag_validation; /* Warn */
    bool load_universal;                        /* false */
    bool use_node_local_storage;                /* false */
    bool parallel_write_pipeline_stage;         /* parallel_write.pipeline_stage, false */
    bool checkpoint_serialization;              /* true */
    struct {
        bool present;                          /* writer given (default null) */
        dsc_config_writer_type_t type;         /* fast */
        bool decoupled;                        /* false */
        int64_t io_buffer_size;                /* 64 MiB */
        bool io_buffer_double;                 /* true */
        bool show_statistics;                  /* false */
        dsc_config_writer_dp_t data_parallel;  /* null */
        int64_t io_multiplier;                 /* 1 */
    } writer;
} dsc_config_checkpoint_t;

/* aio (NVMe IO) */
typedef struct dsc_config_aio {
    int64_t block_size;           /* 1048576 */
    int64_t queue_depth;          /* 8 */
    int64_t intra_op_parallelism; /* 1 */
    bool single_submit;           /* false */
    bool overlap_events;          /* true */
    bool use_gds;                 /* false */
} dsc_config_aio_t;

/* tensorboard and csv_monitor */
typedef struct dsc_config_file_monitor {
    bool enabled;            /* false */
    const char *output_path; /* "" */
    const char *job_name;    /* "DeepSpeedJobName" */
} dsc_config_file_monitor_t;

typedef struct dsc_config_wandb {
    bool enabled;        /* false */
    const char *group;   /* NULL */
    const char *team;    /* NULL */
    const char *project; /* "deepspeed" */
} dsc_config_wandb_t;

typedef struct dsc_config_comet {
    bool enabled;                 /* false */
    int64_t samples_log_interval; /* 100 */
    const char *project, *workspace, *api_key, *experiment_name, *experiment_key, *mode; /* NULL */
    dsc_config_opt_bool_t online; /* null */
} dsc_config_comet_t;

typedef struct dsc_config_flops_profiler {
    bool enabled;                /* false; forces wall_clock_breakdown */
    double recompute_fwd_factor; /* 0.0 */
    int64_t profile_step;        /* 1 */
    int64_t module_depth;        /* -1 */
    int64_t top_modules;         /* 1 */
    bool detailed;               /* true */
    const char *output_file;     /* NULL */
} dsc_config_flops_profiler_t;

/* "dsc": dsc's own keys, ignored by DeepSpeed (it skips top-level keys it does not know).
 *   comm_timeout      seconds a collective may wait for the other ranks before the job is
 *                     aborted naming them (0: the communicator's own, 600 s by default);
 *   comm_debug_check  before each collective, check that every rank issues the same
 *                     operation and size, and report the first rank that diverged. */
typedef struct dsc_config_dsc {
    double comm_timeout;   /* 0 */
    bool comm_debug_check; /* false */
} dsc_config_dsc_t;

typedef struct dsc_config_comms_logger {
    bool present;                  /* DeepSpeed builds the logger config only when the key exists */
    bool enabled;                  /* false */
    bool verbose;                  /* false */
    bool prof_all;                 /* true */
    bool debug;                    /* false */
    dsc_config_strlist_t prof_ops; /* [] */
} dsc_config_comms_logger_t;

typedef struct dsc_config_torch_autocast {
    bool enabled;                                      /* false */
    dsc_config_dtype_t dtype;                          /* null */
    dsc_config_strlist_t lower_precision_safe_modules; /* null */
} dsc_config_torch_autocast_t;

/* ---------------------------------------------------------------------------------------
 * The whole configuration
 * ------------------------------------------------------------------------------------- */

typedef struct dsc_config {
    const char *source_name; /* the file path, or "<string>" */

    /* Batch size (spec 1.2). Before dsc_config_resolve_batch these hold what the file
     * gave (set false when absent); after it, all three are set and consistent. */
    dsc_config_opt_int_t train_batch_size;
    dsc_config_opt_int_t train_micro_batch_size_per_gpu;
    dsc_config_opt_int_t gradient_accumulation_steps;
    bool batch_resolved;        /* dsc_config_resolve_batch succeeded */
    int64_t world_size;         /* the world size given to the last resolve (0 before) */
    int64_t data_parallel_size; /* world_size / sequence_parallel_size, used in the batch formula */

    /* Top-level scalars (spec 1.3) */
    dsc_config_opt_int_t steps_per_print; /* null (HEAD; was 10 before v0.15.2); > 0 */
    bool wall_clock_breakdown;            /* false; forced true by flops_profiler.enabled */
    bool memory_breakdown;                /* false */
    double gradient_clipping;             /* 1.0 (HEAD; was 0.0 before v0.19.3); 0 disables */
    bool prescale_gradients;              /* false */
    double gradient_predivide_factor;     /* 1.0, > 0 */
    dsc_config_allreduce_op_t gradient_allreduce_op; /* mean */
    dsc_config_dtype_t communication_data_type;      /* null: NONE */
    dsc_config_dtype_t communication_data_type_effective; /* null -> fp16 / bf16 / fp32 */
    dsc_config_dtype_t seq_parallel_communication_data_type; /* fp32 */
    bool zero_allow_untested_optimizer;   /* false */
    bool zero_force_ds_cpu_optimizer;     /* true */
    bool sparse_gradients;                /* false */
    bool disable_allgather;               /* false */
    bool dump_state;                      /* false */
    dsc_config_opt_int_t vocabulary_size; /* null; warning when not a multiple of 8 */
    bool dataloader_drop_last;            /* false */
    const char *log_level;                /* NULL */
    bool graph_harvesting;                /* false */
    bool managed_gradient_accumulation;   /* true */
    dsc_config_opt_int_t sequence_parallel_size; /* null (= 1) */
    bool use_data_before_expert_parallelism;     /* false */
    int64_t allgather_size;               /* 5e8; only with the legacy boolean zero_optimization */

    dsc_config_optimizer_t optimizer;
    dsc_config_scheduler_t scheduler;
    dsc_config_fp16_t fp16;
    dsc_config_bf16_t bf16;
    dsc_config_data_types_t data_types;
    dsc_config_zero_t zero_optimization;
    dsc_config_activation_checkpointing_t activation_checkpointing;
    dsc_config_checkpoint_t checkpoint;
    dsc_config_dsc_t dsc;
    dsc_config_aio_t aio;
    dsc_config_file_monitor_t tensorboard;
    dsc_config_file_monitor_t csv_monitor;
    dsc_config_wandb_t wandb;
    dsc_config_comet_t comet;
    dsc_config_flops_profiler_t flops_profiler;
    struct {
        bool enabled;      /* timers.throughput.enabled, true */
        bool synchronized; /* timers.throughput.synchronized, true */
    } timers_throughput;
    dsc_config_comms_logger_t comms_logger;
    dsc_config_torch_autocast_t torch_autocast;

    /* Sections dsc keeps as JSON only (accepted, not interpreted; see dsc_config_section_t). */
    dsc_config_section_t amp, pipeline, tensor_parallel, expert_parallel, compile, elasticity,
        progressive_layer_drop, eigenvalue, quantize_training, sparse_attention, compression_training,
        data_efficiency, curriculum_learning, autotuning, hybrid_engine, weight_quantization, nebula,
        datastates;

    /* Warnings produced while parsing (deprecated keys, ignored unknown keys, ...), in order.
     * Also sent to the log callback of the parse options. */
    size_t n_warnings;
    const char *const *warnings;
} dsc_config_t;

/* ---------------------------------------------------------------------------------------
 * Parsing
 * ------------------------------------------------------------------------------------- */

/* A value a front end sets on top of the config text (a command-line flag, an "auto"
 * resolved by a trainer): `path` is a dotted key path ("optimizer.params.lr",
 * "zero_optimization.stage", or a whole section, "optimizer"); `json` is the value as JSON
 * text ("3e-4", "true", "{\"type\": \"AdamW\"}"); objects along the path are created when
 * missing. The value is validated like one written in the file and counts as given
 * (origin DSC_CONFIG_FILE, line 0) with `note` as its source ("command line: --lr"), which
 * dsc_config_source_format prints. Strings are copied. */
typedef struct dsc_config_override {
    const char *path;
    const char *json;
    const char *note;
} dsc_config_override_t;

typedef struct dsc_config_parse_options {
    /* > 0: resolve the batch sizes during the parse (as dsc_config_resolve_batch). 0: the
     * world size is not known yet; call dsc_config_resolve_batch later. */
    int64_t world_size;
    /* false (default): an unknown top-level key is an error with a suggestion. true: a
     * warning, as DeepSpeed silently ignores unknown top-level keys. */
    bool unknown_top_level_keys_warn;
    /* Same for the sections DeepSpeed reads as plain dicts and whose unknown keys it
     * ignores: activation_checkpointing, flops_profiler, checkpoint (with parallel_write and
     * writer), data_types, aio, timers, torch_autocast, and the optimizer/scheduler objects
     * (not their params: unknown params fail in DeepSpeed too). Strict sections (fp16, bf16,
     * zero_optimization, the monitors, comms_logger) always reject unknown keys. */
    bool unknown_section_keys_warn;
    /* Receives warnings (level DSC_LOG_WARN). NULL: they go to stderr as "[dsc WARN] ...". */
    dsc_log_fn log_fn;
    void *log_user;
    /* Values set on top of the text, applied in order before validation (a later one for
     * the same path wins). NULL / 0: none. A bad path or JSON text fails the parse with
     * DSC_ERR_CONFIG naming the override's note. "auto" is refused here as in the file. */
    const dsc_config_override_t *overrides;
    size_t n_overrides;
    /* false (default): stop at the first error. true: go on through the whole file and put
     * every error in `err`, one per line, in file order (as far as errsz allows); the cross-key
     * checks then also run, with bad keys at their defaults (`dsc config check`). */
    bool all_errors;
} dsc_config_parse_options_t;

#define DSC_CONFIG_PARSE_OPTIONS_INIT {0, false, false, NULL, NULL, NULL, 0, false}

/* Parses and validates a config file. `opts` may be NULL (defaults above). On success
 * *out is a new config; on failure *out is NULL, `err` (errsz bytes, may be NULL/0) holds
 * one message "path:line:col: key.path: what is wrong" and the status says which kind:
 * DSC_ERR_IO (unreadable file), DSC_ERR_CONFIG (invalid), DSC_ERR_NOMEM, DSC_ERR_INVALID
 * (NULL path/out). */
dsc_status_t dsc_config_parse_file(const char *path, const dsc_config_parse_options_t *opts, dsc_config_t **out,
                                   char *err, size_t errsz);
/* The same for NUL-terminated text; messages name the source "<string>". */
dsc_status_t dsc_config_parse_string(const char *text, const dsc_config_parse_options_t *opts, dsc_config_t **out,
                                     char *err, size_t errsz);
/* The same for `len` bytes (need not be NUL-terminated); `name` labels messages (NULL:
 * "<string>"). */
dsc_status_t dsc_config_parse_buffer(const char *data, size_t len, const char *name,
                                     const dsc_config_parse_options_t *opts, dsc_config_t **out, char *err,
                                     size_t errsz);
/* A config holding only defaults (as parsing "{}"), for building one in code. */
dsc_status_t dsc_config_new_default(dsc_config_t **out);
void dsc_config_free(dsc_config_t *cfg);

/* Derives the missing batch sizes for `world_size` ranks (spec 1.2, exactly DeepSpeed's
 * _set_batch_related_parameters and _batch_assertion). The data-parallel size is
 * world_size / sequence_parallel_size when the config sets the latter. Errors (status
 * DSC_ERR_CONFIG) carry DeepSpeed's message followed by each value with its source and
 * the world size, e.g.
 *   "Check batch related parameters. train_batch_size is not equal to micro_batch_per_gpu *
 *    gradient_acc_step * world_size 30 != 4 * 1 * 4 (train_batch_size=30 from cfg.json:2:23;
 *    train_micro_batch_size_per_gpu=4 from cfg.json:3:37; gradient_accumulation_steps=1
 *    derived: (train_batch_size // train_micro_batch_size_per_gpu) // world_size;
 *    world_size=4: data-parallel ranks given by the caller)".
 * May be called again with another world size (values derived earlier are re-derived).
 * On failure the three values are left as the file gave them. */
dsc_status_t dsc_config_resolve_batch(dsc_config_t *cfg, int64_t world_size, char *err, size_t errsz);
/* The same; `world_size_origin` (may be NULL) says how the world size was found, e.g.
 * "MPI_COMM_WORLD size" or "OMPI_COMM_WORLD_SIZE", and appears in messages and the print. */
dsc_status_t dsc_config_resolve_batch_from(dsc_config_t *cfg, int64_t world_size, const char *world_size_origin,
                                           char *err, size_t errsz);

/* ---------------------------------------------------------------------------------------
 * What the engine implements
 * ------------------------------------------------------------------------------------- */

/* The features an engine implements, as key paths. `keys` is a NULL-terminated list of
 * entries of three forms:
 *   "fp16.enabled"                           the key, with any value
 *   "zero_optimization.stage=2"              the key with this value only (several entries
 *                                            may name several values)
 *   "fp16.*"                                 every key under the section
 * Values are written as dsc_config_get prints them without quotes: true, 2, cpu, adamw.
 * Optimizer and scheduler parameters are "optimizer.params.lr", "scheduler.params.*";
 * the type is "optimizer.type=adamw". Sections kept as JSON are named by their key
 * ("pipeline"). */
typedef struct dsc_config_support {
    const char *const *keys;
    const char *engine_name; /* for messages, e.g. "the dsc engine"; NULL: "dsc" */
} dsc_config_support_t;

/* Fails with DSC_ERR_UNSUPPORTED when the config sets a key (in the file, or derived from
 * a deprecated key in the file) to a value other than DeepSpeed's default and `support`
 * does not list it: "cfg.json:9:20: zero_optimization.offload_param.device: \"nvme\" is not
 * supported yet by dsc (accepted: none, cpu)". The message names the first such key in
 * section order and counts the others. Nothing is silently ignored: every key that
 * differs from its default must be listed. */
dsc_status_t dsc_config_check_supported(const dsc_config_t *cfg, const dsc_config_support_t *support, char *err,
                                        size_t errsz);

/* ---------------------------------------------------------------------------------------
 * Reading and printing
 * ------------------------------------------------------------------------------------- */

/* The effective value at `key_path` ("zero_optimization.stage", "optimizer.params.lr",
 * "bf16.enabled", "train_batch_size") written as JSON ("2", "true", "\"cpu\"", "null",
 * "[0.9, 0.999]", numbers with %.17g shortest round-trip), and its source. Aliases are
 * accepted (prefetch_bucket_size, bfloat16.enabled). `buf`/`src` may be NULL. Returns
 * DSC_ERR_INVALID for a path that names no value. */
dsc_status_t dsc_config_get(const dsc_config_t *cfg, const char *key_path, char *buf, size_t bufsz,
                            dsc_config_source_t *src);
/* Formats a source: "cfg.json:3:37", "default", "default (null: true because stage == 3)",
 * "derived: train_batch_size // world_size = 32 // 4", "derived: <rule> (cfg.json:6:20)". */
void dsc_config_source_format(const dsc_config_t *cfg, const dsc_config_source_t *src, char *buf, size_t bufsz);

/* Prints the whole effective config (every key, defaults included) as indented JSON-like
 * lines, each value followed by "// <source>", after a header naming the file, the
 * DeepSpeed version followed, the world size (and how it was found) and the warnings.
 * Meant for people and diffs, not to be parsed back. Returns DSC_ERR_IO when writing
 * fails. */
dsc_status_t dsc_config_print(const dsc_config_t *cfg, FILE *out);

/* Static names: "fp32"/"fp16"/"bf16"/"int8"/"null", "none"/"cpu"/"nvme". */
const char *dsc_config_dtype_name(dsc_config_dtype_t dtype);
const char *dsc_config_offload_device_name(dsc_config_offload_device_t device);

#ifdef __cplusplus
}
#endif
#endif

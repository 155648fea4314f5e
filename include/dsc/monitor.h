/* dsc/monitor.h: training monitors in DeepSpeed's formats, the loss/lr plot, and the
 * per-rank memory estimate (docs/monitor.md).
 *
 * Monitors (DeepSpeed spec §1.12). An event is (name, value, step); the engine writes
 * "Train/Samples/train_loss", "Train/Samples/lr", "Train/Samples/loss_scale" (fp16) and,
 * with wall_clock_breakdown, "Train/Samples/elapsed_time_ms_{forward,backward,
 * backward_inner,backward_allreduce,step}", with step = global_samples, from rank 0.
 *   - csv_monitor: DeepSpeed's CsvMonitor layout. Rank 0 appends to
 *     <output_path>/<job_name>/<name with '/' and ' ' replaced by '_'>.csv; the first write
 *     of a name by a monitor adds the header "step,<last '/' component of the name>"; rows
 *     are "step,value". Lines end in "\r\n" (Python's csv.writer) and values are written as
 *     Python's repr(float) writes them ("0.001", "65536.0", "1e-05").
 *   - tensorboard: an event file <output_path>/<job_name>/events.out.tfevents.<unix time,
 *     10 digits>.<host>.<pid>.<n> (torch.utils.tensorboard's name) of TFRecords (u64 length,
 *     masked crc32c of the length, an Event protobuf, masked crc32c of the Event); the first
 *     Event holds file_version "brain.Event:2", each scalar is an Event{wall_time, step,
 *     summary{value{tag, simple_value}}}, as SummaryWriter.add_scalar writes it. Flushed
 *     after every write, as DeepSpeed's monitor does.
 *   - wandb and comet need their network clients: DSC_ERR_UNSUPPORTED.
 *
 * Objects here are used from one thread; nothing is global. Every error is returned as a
 * status with a message naming the file in `err` (errsz bytes; err may be NULL).
 */
#ifndef DSC_MONITOR_H
#define DSC_MONITOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dsc/config.h"
#include "dsc/gpt.h"
#include "dsc/status.h"
#include "dsc/tensor.h"
#include "dsc/zero.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One scalar event (DeepSpeed's (log_name, value, step) tuple). */
typedef struct dsc_monitor_event {
    const char *name; /* "Train/Samples/lr" */
    double value;
    int64_t step;     /* the x axis: global_samples in the engine */
} dsc_monitor_event_t;

/* ---------------------------------------------------------------------------------------
 * CSV monitor
 * ------------------------------------------------------------------------------------- */

typedef struct dsc_csv_monitor dsc_csv_monitor_t;

/* Creates <output_path>/<job_name> (and its parents) and a monitor appending there. An empty
 * output_path means the current directory (Python's os.path.join("", job_name)); NULL
 * job_name means "DeepSpeedJobName". DSC_ERR_IO when the directory cannot be made. */
dsc_status_t dsc_csv_monitor_open(const char *output_path, const char *job_name, dsc_csv_monitor_t **out, char *err,
                                  size_t errsz);
/* Appends each event to its file (header first when this monitor has not written the name
 * before). DSC_ERR_IO names the file. */
dsc_status_t dsc_csv_monitor_write(dsc_csv_monitor_t *m, const dsc_monitor_event_t *events, size_t n, char *err,
                                   size_t errsz);
/* The directory the files go to. */
const char *dsc_csv_monitor_dir(const dsc_csv_monitor_t *m);
void dsc_csv_monitor_close(dsc_csv_monitor_t *m);
/* The file name (without directory) of an event: "Train_Samples_lr.csv". DSC_ERR_INVALID
 * when it does not fit in n bytes. */
dsc_status_t dsc_csv_monitor_file_name(const char *event_name, char *buf, size_t n);
/* Writes v as Python's repr(float) does (shortest round-trip digits; "1.0", "1e-05",
 * "1.5e+16", "nan", "inf"). buf needs 32 bytes. */
void dsc_format_python_float(double v, char *buf, size_t n);

/* One column read back from a csv monitor file. */
typedef struct dsc_csv_series {
    char header[128]; /* the value column's header ("lr") */
    size_t n;
    int64_t *steps;   /* n steps (malloc'ed) */
    double *values;   /* n values */
} dsc_csv_series_t;

/* Reads a csv monitor file (header lines repeated by later runs are skipped; "\r\n" or
 * "\n"). DSC_ERR_IO when it cannot be opened, DSC_ERR_CORRUPT naming the line when a row
 * is not "integer,number". Free with dsc_csv_series_free. */
dsc_status_t dsc_csv_series_read(const char *path, dsc_csv_series_t *out, char *err, size_t errsz);
void dsc_csv_series_free(dsc_csv_series_t *s);

/* ---------------------------------------------------------------------------------------
 * TensorBoard event files
 * ------------------------------------------------------------------------------------- */

typedef struct dsc_tb_writer dsc_tb_writer_t;

/* Creates log_dir (and parents) and a new event file in it, starting with the file_version
 * event. DSC_ERR_IO naming the path on failure. */
dsc_status_t dsc_tb_writer_open(const char *log_dir, dsc_tb_writer_t **out, char *err, size_t errsz);
/* Appends one scalar (stored as a float32 simple_value, as add_scalar does). wall_time in
 * seconds since the epoch; <= 0 means now. */
dsc_status_t dsc_tb_writer_add_scalar(dsc_tb_writer_t *w, const char *tag, double value, int64_t step,
                                      double wall_time, char *err, size_t errsz);
dsc_status_t dsc_tb_writer_flush(dsc_tb_writer_t *w, char *err, size_t errsz);
/* The event file's path. */
const char *dsc_tb_writer_path(const dsc_tb_writer_t *w);
void dsc_tb_writer_close(dsc_tb_writer_t *w);
/* TFRecord's checksum: crc32c (Castagnoli) masked as ((c >> 15) | (c << 17)) + 0xa282ead8. */
uint32_t dsc_tfrecord_masked_crc32c(const void *data, size_t n);

/* ---------------------------------------------------------------------------------------
 * The config's monitors (DeepSpeed's MonitorMaster)
 * ------------------------------------------------------------------------------------- */

typedef struct dsc_monitor dsc_monitor_t;

/* Opens what the config enables (tensorboard, csv_monitor) on rank 0; other ranks get a
 * disabled monitor that writes nothing. wandb or comet enabled: DSC_ERR_UNSUPPORTED naming
 * the key. *out is NULL on failure. */
dsc_status_t dsc_monitor_new(const dsc_config_t *cfg, int rank, dsc_monitor_t **out, char *err, size_t errsz);
/* True when at least one backend writes (DeepSpeed's monitor.enabled on rank 0). */
bool dsc_monitor_enabled(const dsc_monitor_t *m);
/* Writes the events to every enabled backend (tensorboard first, then csv), then flushes. */
dsc_status_t dsc_monitor_write_events(dsc_monitor_t *m, const dsc_monitor_event_t *events, size_t n, char *err,
                                      size_t errsz);
/* The csv directory (NULL when csv_monitor is off) and the tensorboard file (NULL when off). */
const char *dsc_monitor_csv_dir(const dsc_monitor_t *m);
const char *dsc_monitor_tensorboard_file(const dsc_monitor_t *m);
void dsc_monitor_free(dsc_monitor_t *m);

/* ---------------------------------------------------------------------------------------
 * Plot of a run's loss and lr (dsc plot)
 * ------------------------------------------------------------------------------------- */

/* Reads <run_dir>/Train_Samples_train_loss.csv and <run_dir>/Train_Samples_lr.csv (at least
 * one must exist) and writes an RGB PNG of width x height pixels (0: 900 x 600) with one
 * panel per curve against samples; Train_Samples_val_loss.csv, when present, is drawn in
 * green (RGB 44,160,44) over the train loss (blue). DSC_ERR_IO (unreadable dir, unwritable png),
 * DSC_ERR_CORRUPT (bad csv), DSC_ERR_INVALID (size outside 200..8000). */
dsc_status_t dsc_plot_run_dir(const char *run_dir, const char *png_path, int width, int height, char *err,
                              size_t errsz);
/* Writes `rgb` (height rows of width * 3 bytes) as an 8-bit RGB PNG, losslessly compressed
 * (zlib stream of fixed-Huffman deflate). */
dsc_status_t dsc_png_write_rgb(const char *path, const uint8_t *rgb, int width, int height, char *err, size_t errsz);

/* ---------------------------------------------------------------------------------------
 * Memory estimate (dsc estimate): per-rank bytes by category
 * ------------------------------------------------------------------------------------- */

/* What the estimate needs. dsc_estimate_options_default gives fp32, Adam (2 states), the
 * model's block_size as the context, micro batch 1, one rank, training mode, DeepSpeed's
 * reduce_bucket_size (5e8), checkpoint_every 1. */
typedef struct dsc_estimate_options {
    dsc_gpt_config_t model;
    int micro_batch;            /* B: sequences per rank per micro-step */
    int context;                /* T: tokens per sequence (<= model.block_size) */
    int world_size;             /* data-parallel ranks */
    int rank;                   /* the rank to estimate (bytes are the same on every rank) */
    dsc_dtype_t param_dtype;    /* working copy: DSC_F32, DSC_F16, DSC_BF16 */
    int optimizer_states;       /* fp32 state buffers (dsc_optim_params_num_states) */
    bool accumulate_fp32;       /* 16-bit gradients accumulated into fp32 (bf16 default) */
    int64_t reduce_bucket_size; /* zero_optimization.reduce_bucket_size (elements) */
    bool training;              /* dropout active (the engine's default mode) */
    /* Which blocks "with activation checkpointing" checkpoints (dsc_gpt_set_checkpointing,
     * dsc_actckpt_layer_selected): every checkpoint_every-th block when > 0 (default 1:
     * all), else number_checkpoints blocks spread evenly (the config's
     * activation_checkpointing.number_checkpoints). */
    int checkpoint_every;
    int number_checkpoints;
    /* ZeRO-3: zero_optimization.stage3_param_persistence_threshold and
     * stage3_model_persistence_threshold (parameters kept gathered; defaults 1e5, INT64_MAX). */
    int64_t persistence_threshold, model_persistence_threshold;
    /* zero_optimization.overlap_comm (effective; DeepSpeed's default: on at stage 3 only):
     * at stages 2-3, up to reduce_bucket_size elements of gradients stay in flight. */
    bool overlap_comm;
    /* stage3_prefetch_bucket_size and stage3_max_reuse_distance (defaults 5e7, 1e9): the
     * schedule's extra gathered parameters, as upper bounds (docs/monitor.md). */
    int64_t prefetch_bucket_size, max_reuse_distance;
    /* The LM head pads the vocabulary to a multiple of this (0: none, the default and the
     * CPU's): the device's dsc_ctx_gemm_pad_elems (64 on CUDA). The padded logits, the
     * padded copy of the head's weight and its gradient scratch count in the activations. */
    int vocab_pad;
    /* zero_optimization.offload_optimizer at stages 1-3 (default none): "cpu" changes nothing
     * on the cpu device (the state is in host memory already); "nvme" moves the optimizer
     * states of the rank's partition to a swap file, keeping offload_buffer_count buffers of
     * one sub-group (zero_optimization.sub_group_size elements, default 1e9) in host memory
     * (src/zero/offload_nvme.h; the fp32 master weights stay). "cpu" off a host device
     * (device_is_host false: a GPU, the guarded device) moves the fp32 master, the states
     * and a copy of the gradient partition (and of the 16-bit update) to host memory
     * (host_bytes), the master and the copies page-locked when offload_pin_memory. */
    dsc_config_offload_device_t offload_device;
    int64_t sub_group_size, offload_buffer_count;
    bool device_is_host;     /* true (default): the cpu device, whose memory is host memory */
    bool offload_pin_memory; /* zero_optimization.offload_optimizer.pin_memory (default true) */
    /* The optimizer steps element by element (default true; false for Lamb): "cpu" off a host
     * device then stages the 16-bit update in parts of min(sub_group_size, 2^25) elements
     * instead of a host copy of the whole partition. */
    bool optimizer_elementwise;
    /* zero_optimization.offload_param at stage 3 (default none): "cpu" off a host device moves
     * this rank's parameter partition (the sum of its shards in the model dtype) from
     * state.params to host memory (host_bytes; page-locked when offload_param_pin_memory); an
     * fp32 model without the optimizer offload then keeps a separate fp32 master on the
     * device (state.optim), and with the optimizer offload the host copy of the 16-bit update
     * is gone (the host step writes into the partition). */
    dsc_config_offload_device_t offload_param_device;
    bool offload_param_pin_memory; /* zero_optimization.offload_param.pin_memory (default true) */
    /* offload_param_device "nvme" at stage 3 (any device, the cpu device included): the
     * partition leaves state.params for a swap file (param_nvme_bytes: each parameter's shard
     * rounded up to 4096 bytes), and offload_param_buffer_count buffers of
     * min(offload_param_buffer_size elements, the largest shard) come into host memory
     * (host_bytes; pinned off a host device when offload_param_pin_memory). Defaults 5, 1e8. */
    int64_t offload_param_buffer_count, offload_param_buffer_size;
} dsc_estimate_options_t;

void dsc_estimate_options_default(const dsc_gpt_config_t *model, dsc_estimate_options_t *out);
/* Takes the dtype, gradient accumulation dtype, optimizer (and its state count),
 * reduce_bucket_size, micro batch (when the config sets it or after dsc_config_resolve_batch)
 * and activation_checkpointing.number_checkpoints from a config, as dsc_initialize would.
 * DSC_ERR_CONFIG/UNSUPPORTED with the message in err. */
dsc_status_t dsc_estimate_options_from_config(const dsc_config_t *cfg, dsc_estimate_options_t *opts, char *err,
                                              size_t errsz);

typedef struct dsc_memory_estimate {
    int stage;
    bool checkpointing;      /* activation checkpointing as the options select */
    bool implemented;        /* always true (kept for callers written when stage 3 was not) */
    int64_t numel;           /* P0 */
    int64_t padded;          /* P (the ZeRO plan's padding) */
    dsc_zero_memory_t state; /* dsc_zero_plan_memory: what the engine allocates */
    int64_t activations;     /* peak of the step arena and the gradient pool (DSC_MEM_ACTIVATIONS) */
    int64_t step_arena;      /* of which the step arena's own peak: what dsc_ctx_reserve_step_memory
                                should hold (the gradient pool allocates its blocks apart) */
    int64_t total;           /* state + state.transient + activations: the peak */
    /* offload_device "nvme": bytes of the rank's swap file, and the host bytes of its swap
     * buffers (part of state.optim, which no longer holds the states); 0 otherwise.
     * offload_device "cpu" off a host device: host_bytes of host memory outside the device's
     * total (the fp32 master, the states, the gradient partition's copy and the 16-bit
     * update's; state.optim is then 0), of which pinned_host_bytes page-locked (all but the
     * states when offload_pin_memory); 0 otherwise. offload_param_device "cpu" off a host
     * device adds the parameter partition to both (pinned when offload_param_pin_memory). */
    int64_t nvme_bytes, pinned_host_bytes, host_bytes;
    /* offload_param_device "nvme" at stage 3: bytes of the rank's parameter swap file (its
     * buffers are in host_bytes); 0 otherwise. */
    int64_t param_nvme_bytes;
} dsc_memory_estimate_t;

/* Parameters of the GPT (P0), and DeepSpeed's "largest layer" (the module with the most
 * parameters of its own: usually wte). */
int64_t dsc_gpt_param_count(const dsc_gpt_config_t *model);
int64_t dsc_gpt_largest_layer_params(const dsc_gpt_config_t *model);
/* Bytes the step arena and the gradient pool hold at their peak (DSC_MEM_ACTIVATIONS) for
 * one forward + engine backward of dsc_gpt_forward with targets on B x T tokens: every
 * activation, saved tensor, tape node and tensor header in the arena, and the activation
 * gradients and op scratch alive at once in the pool (given back as backward passes them),
 * each rounded to 64 bytes (docs/monitor.md derives it). checkpoint_every / number_checkpoints
 * select the checkpointed blocks as dsc_actckpt_layer_selected does (both 0: none): a
 * checkpointed block keeps only its output through the forward and is recomputed, then
 * released, in backward. Returns -1 for invalid arguments. */
int64_t dsc_estimate_gpt_activations(const dsc_gpt_config_t *model, int micro_batch, int context,
                                     dsc_dtype_t param_dtype, bool training, int checkpoint_every,
                                     int number_checkpoints);
/* The per-rank estimate for one ZeRO stage (0-3). DSC_ERR_INVALID for bad options (message
 * in err). */
dsc_status_t dsc_estimate_memory(const dsc_estimate_options_t *opts, int stage, bool checkpointing,
                                 dsc_memory_estimate_t *out, char *err, size_t errsz);

/* DeepSpeed's estimators (spec §5.9, exactly its arithmetic and truncations): bytes per CPU
 * and per GPU for `psi` parameters on nodes x gpus_per_node GPUs, additional_buffer_factor f
 * (DeepSpeed: 1.5). zero3 also returns the largest-layer term LL = 4 * largest_layer. */
void dsc_deepspeed_zero2_estimate(int64_t psi, int gpus_per_node, int nodes, bool cpu_offload, double f,
                                  int64_t *cpu_bytes, int64_t *gpu_bytes);
void dsc_deepspeed_zero3_estimate(int64_t psi, int64_t largest_layer, int gpus_per_node, int nodes, bool cpu_offload,
                                  bool cpu_offload_params, bool zero_init, double f, int64_t *cpu_bytes,
                                  int64_t *gpu_bytes, int64_t *largest_layer_bytes);

#ifdef __cplusplus
}
#endif
#endif

/* The engine's state, shared by engine.c (initialize, free, accessors), engine_build.c
 * (optimizer and scheduler from the config) and engine_step.c (backward and step). */
#ifndef DSC_ENGINE_INTERNAL_H
#define DSC_ENGINE_INTERNAL_H

#include "core/internal.h"
#include "dsc/amp.h"
#include "dsc/comm.h"
#include "dsc/engine.h"
#include "dsc/zero.h"
#include "engine/engine_monitor.h"
#include "zero/zero.h"

#define DSC_ENGINE_ERRMSG_MAX 2048

struct dsc_engine {
    dsc_ctx_t *ctx;
    dsc_model_t *model;
    dsc_config_t *config;
    int world_size, rank;

    /* Batch geometry after resolution. */
    int train_batch_size, micro_batch_size, gas;

    /* ZeRO (docs/zero.md, src/zero): the partition plan, the communicator (self for one
     * rank) and the ZeRO state object, which owns the flat model state and moves its data. */
    dsc_comm_t *comm;
    bool owns_comm;
    dsc_zero_plan_t plan;
    dsc_zero_t *zero;
    int64_t numel;            /* P0: parameters in the model */
    dsc_dtype_t model_dtype;
    bool accumulate_fp32;     /* add grads into fp32 after every backward (else at the boundary) */
    /* A view of the ZeRO state (owned by e->zero, fixed for the engine's life): the
     * working copy and the full gradient buffer (NULL at stages 2-3; tests read them), the
     * fp32 master weights and summed gradients of this rank's extent of n_local elements
     * that the optimizer reads (dsc__zero_master / dsc__zero_grad32). */
    void *params;
    void *grads;
    float *master;
    float *acc32;
    int64_t n_local;
    dsc_loss_scaler_t scaler;
    bool check_overflow;         /* skip updates whose gradients hold inf/NaN */
    double loss_scale_used;      /* S of the last update (for the progress line) */

    dsc_optim_t *optimizer;    /* NULL when none is configured */
    dsc_optim_params_t optim_params;
    dsc_sched_t *scheduler;    /* NULL when none */
    struct dsc_nvme *nvme;     /* offload_optimizer.device "nvme": the optimizer's state file (engine_offload.c) */
    /* offload_optimizer.device "cpu" off a host device (engine_offload.c): a cpu context that
     * owns the optimizer (its states), the fp32 master (through ZeRO) and the host copies of
     * the gradient partition (grad_host, n_local floats) and of the 16-bit update (half_host,
     * half_elems elements of model_dtype; NULL in fp32), page-locked when pinned. NULL: none.
     * An element-wise optimizer off NVMe steps the partition in parts of half_elems elements
     * (dsc__offload_part_elems) and half_host stages one part's update on its way to the
     * device; else half_elems = n_local. */
    dsc_ctx_t *host_ctx;
    float *grad_host;
    void *half_host;
    int64_t half_elems;
    /* Stepping in parts of a partition of more than 4 parts: the gradient partition streams
     * through two part-sized host buffers at the step (grad_host holds 2 x half_elems floats:
     * part j+1 comes over while the CPU steps part j) instead of a host copy of all of it
     * kept during backward (4 bytes per element of the partition less on the host). */
    bool grad_stream;
    bool grad_pinned, half_pinned;
    /* With the device's from_host_async (engine_offload.c): half_host holds half_bufs parts (2
     * when the partition has more than one part, else 1) and part j's update goes up from
     * buffer j % half_bufs without waiting, while the CPU steps part j+1 into the other;
     * half_up[b] marks the end of buffer b's latest upload (the host waits for it before
     * refilling b). Streamed gradients likewise: grad_down[b] marks the end of the copy into
     * grad_host's buffer b. NULL events: the device has no such copy (synchronous ones).
     * copy_wait_s: host seconds the offloaded steps spent in those waits, in total. */
    int half_bufs;
    struct dsc_device_event *half_up[2], *grad_down[2];
    double copy_wait_s;
    bool grad_mirrored; /* grad_host is ZeRO's mirror of acc32, kept during backward (zero.h) */
    /* offload_param.device "cpu" at stage 3 off a host device without the optimizer offload
     * (engine_param_offload.c): the cpu context owning the host parameter partition (with
     * the optimizer offload, host_ctx owns it). NULL: none. */
    dsc_ctx_t *param_host_ctx;

    /* Counters (DeepSpeed's names, spec 6.3). */
    int64_t micro_steps, global_steps, global_samples, skipped_steps;
    int64_t backwards_since_step;
    /* Host syncs (issue 15 item 8): each micro-batch's loss stays on the device, in slot
     * n_losses of loss_dev (loss_cap doubles), until something needs it on the host: the
     * monitor at the boundary (all of them in one read) or dsc_engine_last_loss (a cached
     * read of slot last_loss_slot, -1: none since the last reset; the caller's sync, not
     * counted). host_reads counts the engine's own device-to-host reads of step values
     * (losses, overflow + norm): one per optimizer step without a monitor, two with one
     * that writes the loss, one more on a skipped step (naming the bad tensors); tests
     * check it. */
    double last_loss;
    double *loss_dev;
    int loss_cap, n_losses, last_loss_slot;
    bool last_loss_read;
    int64_t host_reads;
    uint64_t comm_sent_mark, comm_sent_last_step; /* total_sent_bytes at the end of the previous step; the delta */
    double grad_norm, grad_norm_clipped;
    bool training;

    dsc_engine_monitor_t *monitor; /* monitors and wall-clock breakdown; NULL when off */

    char errmsg[DSC_ENGINE_ERRMSG_MAX];
};

/* Records a message on the engine and its context; returns status. */
dsc_status_t dsc__engine_fail(dsc_engine_t *e, dsc_status_t status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* engine_build.c: the optimizer (client or config) and the LR scheduler (client or config). */
/* engine_support.c: logs how scheduling-only zero_optimization knobs are honoured. */
void dsc__engine_note_knobs(dsc_engine_t *e);

/* engine.c: creates e->zero over the engine's plan, communicator and model. */
dsc_status_t dsc__engine_create_zero(dsc_engine_t *e, char *err, size_t errsz);

/* engine_fingerprint.c: the start-up agreement of dsc_initialize (dsc_comm_agree): this
 * rank's status `local` (message in err) and, when `fingerprint`, the fields every rank
 * must share. Tagged `tag` in timeout messages. Returns `local` when it is an error, else
 * the agreement's status with its message in err. */
dsc_status_t dsc__engine_agree(dsc_engine_t *e, const dsc_engine_options_t *o, dsc_status_t local, bool fingerprint,
                               const char *tag, char *err, size_t errsz);

dsc_status_t dsc__engine_build_optimizer(dsc_engine_t *e, const dsc_client_optimizer_t *client, char *err, size_t errsz);
dsc_status_t dsc__engine_build_scheduler(dsc_engine_t *e, const dsc_client_lr_scheduler_t *client, char *err, size_t errsz);
/* engine_offload.c: zero_optimization.offload_optimizer. check: refuses what the device cannot
 * do ("cpu" is logged as a no-op on host devices); setup: the NVMe swap file once the
 * optimizer exists (built unbacked when offload_nvme); optim_step: the update, through the
 * swap file when offloaded; state_get/set/flush: optimizer state s of this rank's extent on
 * the host (checkpoints), through the swap file when offloaded. */
bool dsc__engine_offload_nvme(const dsc_engine_t *e);
/* offload "cpu" from a device whose memory is not host memory: the optimizer runs on the host.
 * open_host creates e->host_ctx (before ZeRO, which puts the master there); close frees it
 * (after the optimizer). */
bool dsc__engine_offload_host(const dsc_engine_t *e);
dsc_status_t dsc__engine_open_host(dsc_engine_t *e, char *err, size_t errsz);
void dsc__engine_close_host(dsc_engine_t *e);
/* The context the optimizer lives in (host_ctx when offloaded to the host, else e->ctx). */
dsc_ctx_t *dsc__engine_optim_ctx(const dsc_engine_t *e);
/* Checkpoints: master weights [offset, offset + n) of this rank's extent to and from the host;
 * the working copy of this rank's extent rebuilt from the master (16-bit models). */
dsc_status_t dsc__engine_master_get(dsc_engine_t *e, int64_t offset, int64_t n, float *host);
dsc_status_t dsc__engine_master_set(dsc_engine_t *e, int64_t offset, int64_t n, const float *host);
dsc_status_t dsc__engine_rebuild_working_copy(dsc_engine_t *e);
dsc_status_t dsc__engine_check_offload(dsc_engine_t *e, char *err, size_t errsz);
dsc_status_t dsc__engine_setup_offload(dsc_engine_t *e, char *err, size_t errsz);
void dsc__engine_free_offload(dsc_engine_t *e);
dsc_status_t dsc__engine_optim_step(dsc_engine_t *e, float grad_scale, double lr, void *half, dsc_dtype_t half_dtype);
dsc_status_t dsc__engine_state_get(dsc_engine_t *e, int state, int64_t offset, int64_t n, float *host);
dsc_status_t dsc__engine_state_set(dsc_engine_t *e, int state, int64_t offset, int64_t n, const float *host);
dsc_status_t dsc__engine_state_flush(dsc_engine_t *e);
/* engine_param_offload.c: zero_optimization.offload_param. offload_param: "cpu" at stage 3
 * off a host device; open_param_host (before ZeRO): nothing for "nvme", logs the no-op on the
 * cpu device, and sets *param_ctx to the host context the partition goes to (host_ctx with
 * the optimizer offload, else a new param_host_ctx; NULL: none); note: the start-up line;
 * close frees param_host_ctx (after ZeRO); param_host_bytes: the partition's host bytes
 * counted on param_host_ctx, and its pinned bytes (either context); with "nvme" the swap
 * buffers' bytes. */
bool dsc__engine_offload_param(const dsc_engine_t *e);
dsc_status_t dsc__engine_open_param_host(dsc_engine_t *e, dsc_ctx_t **param_ctx, char *err, size_t errsz);
void dsc__engine_note_param_offload(dsc_engine_t *e);
void dsc__engine_close_param_host(dsc_engine_t *e);
size_t dsc__engine_param_host_bytes(const dsc_engine_t *e, size_t *pinned);
/* offload_param "nvme" at stage 3: the swap file's options (nvme_path, buffer_count,
 * buffer_size, pin_memory, the aio section) for ZeRO; false when not asked for. */
struct dsc_pnvme_options;
bool dsc__engine_param_nvme_options(const dsc_engine_t *e, struct dsc_pnvme_options *o);
/* engine_step.c: writes the scheduler's momentum (beta1, or SGD/RMSprop momentum) and
 * beta2, when it has them, into the optimizer for the next update. */
dsc_status_t dsc__engine_apply_scheduled_momentum(dsc_engine_t *e);
/* The learning rate the next update uses and the beta1 / momentum it uses. */
double dsc__engine_current_lr(const dsc_engine_t *e);
/* The seed dsc_backward gives the loss's gradient: 1/GAS (managed accumulation) times the
 * loss scale. note_seed_hint tells the context before the next forward (ctx->loss_grad: the
 * LM head's loss then writes its gradient in the forward pass); called whenever it may change. */
double dsc__engine_loss_seed(const dsc_engine_t *e);
void dsc__engine_note_seed_hint(dsc_engine_t *e);
/* dsc_engine_last_loss: the newest micro-batch loss, read from the device on first demand. */
double dsc__engine_last_loss(dsc_engine_t *e);

#endif

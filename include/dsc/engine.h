/* dsc/engine.h: DeepSpeed's training contract in C.
 *
 *     dsc_initialize(model, &options, &result)      // deepspeed.initialize
 *     for each micro-batch:
 *         forward with the model's ops -> loss       // loss = engine(batch)
 *         dsc_backward(engine, loss)                 // engine.backward(loss)
 *         dsc_step(engine)                           // engine.step()
 *
 * The engine owns the flat parameter, gradient and optimizer buffers and binds the model's
 * named parameters to them (dsc/nn.h). The configuration is DeepSpeed's JSON (see
 * docs/config.md); what dsc does not implement yet is rejected at initialisation with a
 * message naming the key, never silently ignored.
 *
 * Semantics follow DeepSpeed (docs/deepspeed-compat.md lists every difference):
 * - dsc_backward scales the loss gradient by 1/gradient_accumulation_steps (and by the
 *   loss scale under fp16), runs autograd, accumulates into the gradient buffer, and
 *   releases the step's activations (dsc_ctx_end_step).
 * - dsc_step counts a micro-step; at an accumulation boundary it checks the gradients for
 *   inf/NaN (fp16 always; bf16 with bf16.check_grad_overflow; fp32 always, see
 *   docs/deepspeed-compat.md), and either skips the update (skipped_steps += 1, the loss
 *   scale moves as DeepSpeed's dynamic scaler does, the log names the tensors that held
 *   inf/NaN) or unscales and clips by the global norm in one multiplication, applies the
 *   optimizer (which writes the fp16/bf16 working copy in the same pass), and steps the LR
 *   scheduler. Either way it zeroes the gradients and advances global_steps and
 *   global_samples.
 * - Mixed precision (fp16.enabled / bf16.enabled): parameters and gradients are stored in
 *   16 bits, the optimizer keeps fp32 master weights and moments; ops compute in fp32.
 * - The first dsc_step call whose (micro_steps + 1) is a multiple of GAS is a boundary.
 *
 * Thread safety: an engine is used from one thread. Two engines (on two contexts, or on
 * one context used alternately) coexist; nothing is global.
 */
#ifndef DSC_ENGINE_H
#define DSC_ENGINE_H

#include <stdint.h>
#include <stdio.h>

#include "dsc/nn.h"
#include "dsc/optim.h"
#include "dsc/sched.h"
#include "dsc/comm.h"
#include "dsc/config.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dsc_engine dsc_engine_t;

/* A caller-chosen optimizer, overriding the config's "optimizer" section (DeepSpeed's
 * `optimizer` argument to initialize). */
typedef struct dsc_client_optimizer {
    dsc_optim_type_t type;
    dsc_optim_params_t params; /* start from dsc_optim_default_params(type) */
} dsc_client_optimizer_t;

/* A caller-supplied LR schedule, overriding the config's "scheduler" section (DeepSpeed's
 * `lr_scheduler` argument). lr_fn(step, group, user) gives the lr of the update with 0-based
 * index `step`; momentum_fn (may be NULL) optionally sets beta1 / momentum. */
typedef struct dsc_client_lr_scheduler {
    dsc_lr_fn lr_fn;
    dsc_momentum_fn momentum_fn;
    void *user;
} dsc_client_lr_scheduler_t;

/* Options for dsc_initialize. Start from DSC_ENGINE_OPTIONS_INIT. */
typedef struct dsc_engine_options {
    const char *config_path; /* a DeepSpeed JSON file, or */
    const char *config_json; /* JSON text; exactly one of the two must be set */
    /* The data-parallel communicator (dsc/comm.h; not owned). NULL: one rank (world_size
     * must then be 1). With a communicator, world_size and rank are taken from it. */
    dsc_comm_t *comm;
    int world_size;
    int rank;
    /* Unknown top-level keys: error with a did-you-mean (false, default) or a warning, as
     * DeepSpeed (which ignores them). */
    bool allow_unknown_top_level_keys;
    const dsc_client_optimizer_t *client_optimizer; /* NULL: the config's optimizer */
    const dsc_client_lr_scheduler_t *client_lr_scheduler; /* NULL: the config's scheduler */
    /* Training stops with DSC_ERR_NUMERIC after this many consecutive updates skipped for
     * inf/NaN gradients at the minimum loss scale (or at any scale for bf16/fp32, which
     * cannot lower it); 0 never stops (DeepSpeed raises at the first one for fp16). */
    int max_consecutive_skips_at_min_scale;
    /* Timeout of the communicator's collectives in seconds, set before the first one
     * (dsc_comm_set_timeout); wins over the config's dsc.comm_timeout. 0: the config's,
     * else the communicator's current timeout. */
    double comm_timeout;
    /* Caller settings that every rank must share, added first to the start-up fingerprint
     * (see dsc_initialize), e.g. {"model.n_layer", "2"}; copied. NULL / 0: none. */
    const dsc_comm_field_t *fingerprint;
    size_t n_fingerprint;
    /* Values set on top of the config (dsc/config.h, dsc_config_override_t): a front end's
     * flags and resolved "auto" values; NULL / 0: none. */
    const dsc_config_override_t *config_overrides;
    size_t n_config_overrides;
} dsc_engine_options_t;
#define DSC_ENGINE_OPTIONS_INIT {NULL, NULL, NULL, 1, 0, false, NULL, NULL, 10, 0.0, NULL, 0, NULL, 0}

/* The four results of deepspeed.initialize. `optimizer` and `lr_scheduler` are owned by
 * the engine (valid until dsc_engine_free); training_dataloader is always NULL (dsc's
 * data loaders are separate objects, dsc/data.h); lr_scheduler is NULL when none is
 * configured. */
typedef struct dsc_initialize_result {
    dsc_engine_t *engine;
    dsc_optim_t *optimizer;
    void *training_dataloader;
    dsc_sched_t *lr_scheduler;
} dsc_initialize_result_t;

/* With a communicator, every rank must call dsc_initialize together: after parsing its
 * config (no collective yet) each rank joins a start-up agreement (dsc_comm_agree, under
 * the timeout above) with its local status and a fingerprint of everything ranks must
 * share: the caller's fields, the model's parameter count, size, and every parameter's
 * name and shape, and the config values that shape communication and training (ZeRO stage
 * and buckets, dtypes, batch sizes and accumulation, clipping, loss scaling, optimizer and
 * scheduler, activation checkpointing, the comm debug check and timeout). A rank whose
 * config fails makes every rank fail with its message ("rank 1 of 2 failed: ..."); a
 * difference makes every rank fail with DSC_ERR_CONFIG naming the first field that differs
 * and the ranks holding each value, before any data moves. Errors after the agreement
 * (optimizer, scheduler, monitors) are agreed on once more at the end. */
/* Parses and validates the config, resolves the batch sizes for the world size, binds the
 * model's parameters to engine-owned flat buffers (parameters keep their current values if
 * the model was already bound, else are initialised from the context RNG), and builds the
 * optimizer and LR scheduler.
 * On failure returns DSC_ERR_CONFIG / DSC_ERR_UNSUPPORTED / DSC_ERR_INVALID / DSC_ERR_NOMEM
 * with the message (naming file, line, column and key) in `errbuf` and on the model's
 * context; nothing is allocated then. The model must outlive the engine. */
dsc_status_t dsc_initialize(dsc_model_t *model, const dsc_engine_options_t *options, dsc_initialize_result_t *result,
                            char *errbuf, size_t errbuf_size);
/* Frees the engine and everything it allocated; the model's parameters are rebound to
 * nothing (their data pointers become NULL). NULL is a no-op. */
void dsc_engine_free(dsc_engine_t *engine);

/* Back-propagates `loss` (a 1-element tensor of this step's tape) into the gradient buffer
 * with the 1/GAS averaging, then ends the context's step. Returns the context's status. */
dsc_status_t dsc_backward(dsc_engine_t *engine, dsc_tensor_t *loss);
/* One engine.step(): see the file comment. Returns DSC_OK, or DSC_ERR_MISUSE when called
 * without a backward since the last step. */
dsc_status_t dsc_step(dsc_engine_t *engine);
/* True when the next dsc_step applies an update. */
bool dsc_is_gradient_accumulation_boundary(const dsc_engine_t *engine);
void dsc_zero_grad(dsc_engine_t *engine);
/* Training mode (dropout on) or evaluation mode. */
void dsc_engine_train(dsc_engine_t *engine);
void dsc_engine_eval(dsc_engine_t *engine);

/* wall_clock_breakdown: brackets the caller's forward pass so that fwd_microstep times it
 * alone (without these calls it is the time from the previous engine call to dsc_backward).
 * No-ops when the breakdown is off. */
void dsc_engine_forward_begin(dsc_engine_t *engine);
void dsc_engine_forward_end(dsc_engine_t *engine);
/* Writes one scalar of the caller's to the config's monitors (csv_monitor, tensorboard; rank
 * 0 only) at the current global sample count, beside the engine's own events: a training
 * loop's validation loss as "Train/Samples/val_loss" (what `dsc plot` draws). A no-op without
 * monitors and on the other ranks; a write that fails switches monitoring off with a warning,
 * as for the engine's events. DSC_ERR_INVALID for a NULL engine or name. */
dsc_status_t dsc_engine_monitor_write(dsc_engine_t *engine, const char *name, double value);

/* The config keys (NULL-terminated, static) that the engine implements, in the forms of
 * dsc_config_support_t: `dsc config check` uses it to report what would be rejected. */
const char *const *dsc_engine_supported_keys(void);

/* ---- Accessors ---- */
const dsc_config_t *dsc_engine_config(const dsc_engine_t *engine);
int dsc_engine_world_size(const dsc_engine_t *engine);
int dsc_engine_rank(const dsc_engine_t *engine);
int64_t dsc_engine_global_steps(const dsc_engine_t *engine);
int64_t dsc_engine_global_samples(const dsc_engine_t *engine);
int64_t dsc_engine_micro_steps(const dsc_engine_t *engine);
int64_t dsc_engine_skipped_steps(const dsc_engine_t *engine);
int dsc_engine_train_batch_size(const dsc_engine_t *engine);
int dsc_engine_micro_batch_size(const dsc_engine_t *engine);
int dsc_engine_gradient_accumulation_steps(const dsc_engine_t *engine);
/* Learning rate the next update uses, and momentum (beta1 for Adam-like optimizers,
 * momentum for SGD); *beta2 receives Adam's beta2 (or NAN). */
double dsc_engine_lr(const dsc_engine_t *engine);
double dsc_engine_momentum(const dsc_engine_t *engine, double *beta2);
/* Loss scale (1 without fp16). */
double dsc_engine_loss_scale(const dsc_engine_t *engine);
/* Global L2 gradient norm of the last update, before clipping (NAN before any update),
 * and after clipping. */
double dsc_engine_grad_norm(const dsc_engine_t *engine);
double dsc_engine_grad_norm_clipped(const dsc_engine_t *engine);
/* Bytes this rank sent in collectives during the last optimizer step (from the end of the
 * step before: all micro-steps, their forward passes included; the ring convention of
 * dsc/comm.h), and its memory by category, one line:
 * "rank 0: params 1.55 MiB, grads 1.55 MiB, optimizer 4.65 MiB, grad accum 1.55 MiB,
 * comm 0.00 MiB, activations peak 12.3 MiB". */
uint64_t dsc_engine_comm_bytes_last_step(const dsc_engine_t *engine);
void dsc_engine_memory_line(const dsc_engine_t *engine, char *buf, size_t n);
/* zero_optimization.offload_optimizer.device "cpu" from a device whose memory is not host
 * memory (docs/offload.md): the host bytes the offloaded optimizer holds now (fp32 master,
 * states, the gradient partition's copy, the 16-bit update's), plus with
 * offload_param.device "cpu" (stage 3) the parameter partition, of which *pinned (may be
 * NULL) page-locked. 0 without either offload (on the cpu device "cpu" is a no-op). */
size_t dsc_engine_offload_host_bytes(const dsc_engine_t *engine, size_t *pinned);
/* The same offload ("cpu" from a device): host seconds its optimizer steps have spent, since
 * the engine was made, waiting for their asynchronous copies (a part of the gradient still
 * coming to the host; a staging buffer whose update was still going to the device). The rest
 * of the copies' time was hidden behind the CPU's step. 0 without the offload (or NULL). */
double dsc_engine_offload_wait_seconds(const dsc_engine_t *engine);
/* Full access to parameters outside forward and backward (DeepSpeed's GatheredParameters).
 * Under ZeRO-3 a parameter has no data between uses (each rank stores a slice);
 * dsc_engine_gather_params gives the listed parameters (params = NULL: all of the model's)
 * their full values until dsc_engine_release_params. At stages 0-2 the values are always
 * there and gather does nothing. Both calls are collective: every rank calls them with the
 * same parameters in the same order.
 * release: modifier_rank -1 is read-only access: do not change the values (under ZeRO-3 a
 * change is dropped with the gathered copy; at stages 0-2 it would reach the working copy
 * but not the fp32 master). modifier_rank r makes rank r's values, changed or not, the
 * parameters' new values on every rank, fp32 master weights included (so an edit survives
 * the next step and the next checkpoint).
 * Returns DSC_ERR_INVALID (a tensor that is not one of the model's parameters, a bad
 * modifier rank), DSC_ERR_COMM (naming the rank), DSC_ERR_NOMEM. */
dsc_status_t dsc_engine_gather_params(dsc_engine_t *engine, dsc_tensor_t *const *params, int n);
dsc_status_t dsc_engine_release_params(dsc_engine_t *engine, dsc_tensor_t *const *params, int n, int modifier_rank);
/* Value of the last loss given to dsc_backward (unscaled, before the 1/GAS division). */
double dsc_engine_last_loss(const dsc_engine_t *engine);
/* The model's context, and the engine's last error message. */
dsc_ctx_t *dsc_engine_ctx(const dsc_engine_t *engine);
const char *dsc_engine_errmsg(const dsc_engine_t *engine);
/* Writes DeepSpeed's progress line ("step=10, skipped=0, lr=[0.00099], mom=[(0.9, 0.999)]")
 * for the current state. */
void dsc_engine_progress_line(const dsc_engine_t *engine, char *buf, size_t n);

#ifdef __cplusplus
}
#endif
#endif

/* ---- Checkpoints (DeepSpeed's save_checkpoint / load_checkpoint) -----------------------
 * Appended section (issue 8), guarded on its own. The format is docs/checkpoint-format.md
 * ("Engine save and load"): every tensor is stored by name and element range, never by
 * rank, so a checkpoint saved by any number of ranks at any ZeRO stage loads on any other.
 * Both calls are COLLECTIVE: every rank of the engine's communicator calls them with the
 * same arguments. A rank that does not join makes the others fail after the
 * communicator's timeout (dsc/comm.h) with a message naming the missing rank and the call
 * (under MPI the timeout ends the job, as every collective timeout does), never hang. */
#ifndef DSC_ENGINE_CKPT_H
#define DSC_ENGINE_CKPT_H

#ifdef __cplusplus
extern "C" {
#endif

/* Saves the training state to <save_dir>/<tag>/ atomically (a crash leaves the previous
 * checkpoint and `latest` intact), then, if save_latest, points <save_dir>/latest at it.
 *   tag           NULL: "global_step<N>" with N = dsc_engine_global_steps (DeepSpeed's
 *                 default). Tags that differ across ranks follow checkpoint.tag_validation
 *                 (Warn: logged, rank 0's is used; Fail: DSC_ERR_INVALID; Ignore).
 *   client_state  NULL, or JSON text (any JSON value) stored as given; rank 0's is kept.
 * What is saved: the fp32 master weights of every parameter (the 16-bit working copy of an
 * fp16/bf16 model is exactly their round-to-nearest-even, so it is rebuilt, not stored),
 * every optimizer state and its step count, the LR scheduler state, the loss scaler, the
 * counters (global steps and samples, skipped steps, micro-steps), each rank's context RNG
 * state (dropout), the effective config and the client state. Each rank writes only the
 * element range it owns (1/world of the flat model, at every ZeRO stage) to its own file,
 * in parallel; rank 0 writes the manifest with every file's size and XXH3-64 checksum.
 * Call it after the dsc_step that ends an accumulation window: in the middle of one it
 * returns DSC_ERR_MISUSE (the accumulated gradients are not saved). The engine's state is
 * not changed by a save; the training continues bit for bit as without it.
 * Returns DSC_OK on every rank, or the same failure on every rank with a message naming
 * the failing rank and file: DSC_ERR_INVALID (empty save_dir, bad tag, client_state not
 * JSON), DSC_ERR_MISUSE, DSC_ERR_IO, DSC_ERR_NOMEM, DSC_ERR_COMM / DSC_ERR_TIMEOUT (a rank
 * did not join; the communicator is unusable afterwards). */
dsc_status_t dsc_save_checkpoint(dsc_engine_t *engine, const char *save_dir, const char *tag,
                                 const char *client_state, bool save_latest);

/* Restores <load_dir>/<tag>/ (tag NULL: the one <load_dir>/latest names) into the engine,
 * whatever world size and ZeRO stage saved it: each rank reads only the element ranges it
 * owns now.
 *   load_optimizer_states     optimizer state (by parameter name and range), its step
 *                             count, and the loss scaler (part of DeepSpeed's optimizer
 *                             state). The checkpoint's optimizer must be of the engine's
 *                             type; its hyper-parameters are not loaded (the config wins).
 *                             false: the optimizer starts afresh on the loaded weights.
 *   load_lr_scheduler_states  the LR scheduler's last_batch_iteration (lr and scheduled
 *                             momentum follow). An engine without a scheduler ignores it.
 *   load_module_only          the weights only (overrides both flags above): counters,
 *                             RNG, optimizer and scheduler stay as they are.
 *   client_state_out          NULL, or receives the saved client_state as malloc'ed JSON
 *                             text (NULL when none was saved) that the caller frees.
 * Always restored: the fp32 master weights and the working copy rebuilt from them; unless
 * load_module_only, the counters, each rank's context RNG state and dropout stream
 * (Philox seed and offset, dsc_ctx_dropout_stream). A checkpoint written before the Philox
 * dropout has no stream: it loads with a warning, the stream restarting at (the saved RNG
 * state, 0). The engine always resumes at an accumulation boundary of its own
 * configuration: when its GAS differs from the saving run's (another micro batch or world
 * size), micro_steps is rounded up to a multiple of its GAS (logged), so the next update
 * comes after GAS new micro-batches and dsc_save_checkpoint works at every boundary. A rank
 * that did not exist in the saving run (the world grew) gets an RNG state and dropout seed
 * derived from those of rank (rank mod saved world), so its dropout masks differ from
 * every other rank's; a resumed
 * run at a different world size splits its batches differently anyway, so only a resume at
 * the same world size and stage reproduces the uninterrupted run bit for bit.
 * Everything this rank needs is checked before anything changes: manifest.json against
 * manifest.xxh3, every file's size, and the checksum of every file this rank reads; the
 * checkpoint must hold exactly the model's parameters, with the same shapes. A failure
 * there leaves the engine untouched; only a file that changes or vanishes between that
 * check and the read leaves it partially loaded (the message says so).
 * Returns DSC_OK on every rank, or the same failure on every rank, naming the rank and the
 * file: DSC_ERR_IO (no `latest`, a missing directory or file), DSC_ERR_CORRUPT (a file
 * truncated, corrupt or failing its checksum), DSC_ERR_INVALID (another model, another
 * optimizer type, no optimizer or scheduler state when asked for), DSC_ERR_NOMEM,
 * DSC_ERR_COMM / DSC_ERR_TIMEOUT. */
dsc_status_t dsc_load_checkpoint(dsc_engine_t *engine, const char *load_dir, const char *tag,
                                 bool load_optimizer_states, bool load_lr_scheduler_states,
                                 bool load_module_only, char **client_state_out);

#ifdef __cplusplus
}
#endif
#endif

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
} dsc_engine_options_t;
#define DSC_ENGINE_OPTIONS_INIT {NULL, NULL, NULL, 1, 0, false, NULL, NULL, 10}

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

/* dsc/checkpoint.h: activation checkpointing (DeepSpeed's deepspeed.checkpointing), not
 * model checkpoints (those are dsc/ckpt.h).
 *
 * dsc_checkpoint(ctx, name, fn, user, n_in, in, n_out, out) runs `fn` (a block of the
 * model) in forward, keeps its outputs and its inputs, and releases every intermediate
 * tensor fn made (their memory goes back to the step arena at once, so the allocator's
 * activation counter drops). It records one tape node. When backward reaches that node,
 * it sets the context's RNG back to its state at the forward call (so dropout draws the
 * same masks), re-runs fn with recording, seeds the recomputed outputs with the gradients
 * that reached the checkpoint's outputs, back-propagates through the recomputed part of
 * the tape, releases it again and restores the RNG. The result is exactly the gradient of
 * the un-checkpointed forward, bit for bit: the recompute performs the same operations in
 * the same order, and every gradient (parameters, shared and tied weights, inputs and
 * tensors fn captured through `user`) is accumulated once, by the recomputed ops; the
 * checkpoint node itself adds nothing.
 *
 * What fn may do:
 *  - read its inputs, parameters (persistent tensors, dsc/nn.h) and any tensor created
 *    before the call (reached through `user`); gradients reach all of them;
 *  - use the context RNG (dropout); call dsc_checkpoint itself (checkpoints nest);
 *  - return any tensors as outputs, including an input unchanged.
 * fn must compute the same thing both times it runs: the same ops on the same inputs in the
 * same order (a recompute whose outputs differ in shape or dtype is an error). It must not
 * end the step or run backward. `user` and `name` must stay valid until the step's
 * backward has run. Gradients of fn's intermediates do not survive backward (inspect them
 * without checkpointing).
 *
 * Outputs: out[k] is a new tensor holding fn's k-th output; float outputs that depend on
 * something requiring grad require grad, the others are constants. Under no-grad
 * (dsc_ctx_no_grad_begin, evaluation) fn simply runs and out[] are its own outputs.
 *
 * The context's activation-checkpointing settings (DeepSpeed's config section
 * "activation_checkpointing", which the engine applies; docs/activation-checkpointing.md):
 * number_checkpoints tells models built on dsc how many blocks to checkpoint (the GPT,
 * dsc/gpt.h), profile logs the time of each checkpointed forward and each recompute,
 * synchronize_checkpoint_boundary synchronises the device at each boundary (the CPU
 * backend is synchronous: nothing to wait for). partition_activations (splits saved inputs
 * over the model-parallel group: no effect without model parallelism, as in DeepSpeed),
 * cpu_checkpointing (keeps saved inputs in host memory: they already are on the CPU
 * backend) and contiguous_memory_optimization (the step arena is already contiguous) are
 * accepted with DeepSpeed's meaning and change nothing here.
 */
#ifndef DSC_CHECKPOINT_H
#define DSC_CHECKPOINT_H

#include "dsc/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A checkpointed function: reads in[0..n_in) and writes out[0..n_out) (the counts given to
 * dsc_checkpoint). Returns DSC_OK, or an error (record it on ctx; ops already do). */
typedef dsc_status_t (*dsc_checkpoint_fn)(dsc_ctx_t *ctx, void *user, dsc_tensor_t *const *in, dsc_tensor_t **out);

/* Runs fn under activation checkpointing (see the file comment). `name` (may be NULL)
 * labels profile lines and errors. n_in >= 0 (in may be NULL when 0), n_out >= 1.
 * Returns DSC_OK; or the context's earlier error (sticky, fn does not run; out[] NULL);
 * DSC_ERR_INVALID for bad arguments or a NULL output from fn; fn's own error. On failure
 * every out[k] is NULL and the arena is as before the call. */
dsc_status_t dsc_checkpoint(dsc_ctx_t *ctx, const char *name, dsc_checkpoint_fn fn, void *user, int n_in,
                            dsc_tensor_t *const *in, int n_out, dsc_tensor_t **out);

/* Settings of a context (DeepSpeed's activation_checkpointing keys). Start from
 * DSC_ACTCKPT_CONFIG_INIT (all off: models decide what to checkpoint). */
typedef struct dsc_actckpt_config {
    int number_checkpoints;              /* 0 (null): models decide; > 0: models checkpoint this many blocks */
    bool synchronize_checkpoint_boundary;
    bool profile;                        /* log forward / recompute / backward time of every checkpoint (INFO) */
    bool partition_activations;          /* accepted; no effect without model parallelism */
    bool cpu_checkpointing;              /* accepted; saved inputs already live in host memory on the CPU backend */
    bool contiguous_memory_optimization; /* accepted; the step arena is contiguous already */
} dsc_actckpt_config_t;
#define DSC_ACTCKPT_CONFIG_INIT {0, false, false, false, false, false}

/* Sets the context's settings (deepspeed.checkpointing.configure). DSC_ERR_INVALID for a
 * negative number_checkpoints or NULL arguments. */
dsc_status_t dsc_actckpt_configure(dsc_ctx_t *ctx, const dsc_actckpt_config_t *config);
/* The context's current settings (DSC_ACTCKPT_CONFIG_INIT for a NULL ctx). */
dsc_actckpt_config_t dsc_actckpt_get_config(const dsc_ctx_t *ctx);

/* Whether layer `layer` of `n_layers` is checkpointed by a model whose own option is
 * `every` (> 0: layers 0, every, 2 every, ...; 0: follow the context). With every == 0 and
 * number_checkpoints N > 0 on the context, the N layers floor(j * n_layers / N),
 * j = 0..N-1, are (all of them when N >= n_layers); with neither, none. */
bool dsc_actckpt_layer_selected(const dsc_ctx_t *ctx, int every, int layer, int n_layers);

/* Counters since the context was created: checkpointed forward calls (with grad), and
 * recomputes in backward with the seconds they took (recompute = re-running fn;
 * backward = back-propagating through the recomputed tape). */
typedef struct dsc_actckpt_stats {
    int64_t forwards, recomputes;
    double forward_seconds, recompute_seconds, backward_seconds;
} dsc_actckpt_stats_t;
dsc_actckpt_stats_t dsc_actckpt_stats(const dsc_ctx_t *ctx);

#ifdef __cplusplus
}
#endif
#endif

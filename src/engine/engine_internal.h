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

#define DSC_ENGINE_ERRMSG_MAX 2048

struct dsc_engine {
    dsc_ctx_t *ctx;
    dsc_model_t *model;
    dsc_config_t *config;
    int world_size, rank;

    /* Batch geometry after resolution. */
    int train_batch_size, micro_batch_size, gas;

    /* ZeRO (docs/zero.md): the partition plan and the communicator (self for one rank). */
    dsc_comm_t *comm;
    bool owns_comm;
    dsc_zero_plan_t plan;

    /* Flat model state, all laid out over the padded length plan.padded (P):
     *   params     working copy the model is bound to, model_dtype, P elements (DSC_MEM_PARAMS);
     *   grads      what autograd accumulates into, model_dtype, P (DSC_MEM_GRADS);
     *   master     fp32 master weights: stage 0 P elements (`params` itself for fp32 models),
     *              stages 1-2 this rank's partition of plan.part elements (DSC_MEM_OPTIM);
     *   acc32      fp32 gradients the optimizer reads, the same extent as master
     *              (`grads` itself for fp32 models at stage 0, else DSC_MEM_GRAD_ACCUM);
     *   full_acc32 stage 1 with fp32 accumulation of 16-bit gradients: P fp32 elements;
     *   staging    bucket buffer for reduce-scatter (DSC_MEM_COMM).
     * Gradient sums in acc32 are not yet divided by the world size: 1/N is folded into the
     * optimizer's gradient scale. */
    int64_t numel;            /* P0: parameters in the model */
    dsc_dtype_t model_dtype;
    bool accumulate_fp32;     /* add grads into fp32 after every backward (else at the boundary) */
    void *params;
    void *grads;
    float *master;
    float *acc32;
    float *full_acc32;
    void *staging;
    size_t staging_bytes;
    int64_t bucket;           /* reduce-scatter chunk per rank (elements) */
    int64_t n_local;          /* elements of master/acc32: P (stage 0) or plan.part */
    /* Segments of acc32 that belong to parameter tensors (naming inf/NaN) and their index. */
    dsc_amp_segment_t *segments;
    int *segment_param;
    size_t n_segments;
    dsc_loss_scaler_t scaler;
    bool check_overflow;         /* skip updates whose gradients hold inf/NaN */
    double loss_scale_used;      /* S of the last update (for the progress line) */

    dsc_optim_t *optimizer;    /* NULL when none is configured */
    dsc_optim_params_t optim_params;
    dsc_sched_t *scheduler;    /* NULL when none */

    /* Counters (DeepSpeed's names, spec 6.3). */
    int64_t micro_steps, global_steps, global_samples, skipped_steps;
    int64_t backwards_since_step;
    double last_loss;
    uint64_t comm_sent_mark, comm_sent_last_step; /* total_sent_bytes at the end of the previous step; the delta */
    double grad_norm, grad_norm_clipped;
    bool training;

    struct dsc_zero3 *z3;      /* parameter table of stages 2-3 (engine_zero3.c); NULL below */

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

/* engine_zero.c: allocation and binding of the flat state, and the collectives. */
dsc_status_t dsc__engine_alloc_state(dsc_engine_t *e, char *err, size_t errsz);
void dsc__engine_free_state(dsc_engine_t *e);
/* After a micro-batch's backward: fp32 accumulation, and stage 2's reduce-scatter. */
dsc_status_t dsc__engine_after_backward(dsc_engine_t *e);
/* At the boundary: leaves the summed gradient of this rank's extent in acc32. */
dsc_status_t dsc__engine_reduce_gradients(dsc_engine_t *e);
/* After the optimizer: the updated working copy on every rank (stage >= 1 all-gather). */
dsc_status_t dsc__engine_gather_params(dsc_engine_t *e);
/* Zeroes every gradient buffer. */
void dsc__engine_zero_grads(dsc_engine_t *e);
/* The model's initial fp32 values (its own or its initialisation), broadcast from rank 0,
 * into init32 (numel floats, flat layout). */
dsc_status_t dsc__engine_initial_values(dsc_engine_t *e, float *init32);
/* The working copy of this rank's extent, where the optimizer writes 16-bit values. */
void *dsc__engine_local_params(const dsc_engine_t *e);

/* engine_zero3.c: stage 3. Allocation and binding (installs the context's parameter
 * hooks), release, the end of a micro-step's backward (unscoped uses; ok = false drops
 * every hold without communicating), the re-gather of gathered parameters after a step. */
typedef struct dsc_zero3 dsc_zero3_t;
dsc_status_t dsc__engine_alloc_state3(dsc_engine_t *e, char *err, size_t errsz);
void dsc__engine_free_state3(dsc_engine_t *e);
/* Stage 2: gradient buffers per layer in backward through the same hooks (binds the
 * model to e->params); freed with dsc__engine_free_scopes. */
dsc_status_t dsc__engine_scopes_stage2(dsc_engine_t *e, char *err, size_t errsz);
void dsc__engine_free_scopes(dsc_engine_t *e);
dsc_status_t dsc__engine_zero3_end_backward(dsc_engine_t *e, bool ok);
dsc_status_t dsc__engine_zero3_refresh(dsc_engine_t *e);
/* Elements [a, b) of parameter i that rank q stores, and (for this rank) the offset of its
 * shard in the local buffers; false when rank q holds only padding of it. */
bool dsc__engine_zero3_piece(const dsc_engine_t *e, int q, int i, int64_t *a, int64_t *b, int64_t *local);
/* dsc_engine_gather_params: parameter i held gathered (outside the recorded schedule). */
dsc_status_t dsc__engine_zero3_hold(dsc_engine_t *e, int i);
void dsc__engine_zero3_unhold(dsc_engine_t *e, int i);

/* engine_fingerprint.c: the start-up agreement of dsc_initialize (dsc_comm_agree): this
 * rank's status `local` (message in err) and, when `fingerprint`, the fields every rank
 * must share. Tagged `tag` in timeout messages. Returns `local` when it is an error, else
 * the agreement's status with its message in err. */
dsc_status_t dsc__engine_agree(dsc_engine_t *e, const dsc_engine_options_t *o, dsc_status_t local, bool fingerprint,
                               const char *tag, char *err, size_t errsz);

dsc_status_t dsc__engine_build_optimizer(dsc_engine_t *e, const dsc_client_optimizer_t *client, char *err, size_t errsz);
dsc_status_t dsc__engine_build_scheduler(dsc_engine_t *e, const dsc_client_lr_scheduler_t *client, char *err, size_t errsz);
/* engine_step.c: writes the scheduler's momentum (beta1, or SGD/RMSprop momentum) and
 * beta2, when it has them, into the optimizer for the next update. */
dsc_status_t dsc__engine_apply_scheduled_momentum(dsc_engine_t *e);
/* The learning rate the next update uses and the beta1 / momentum it uses. */
double dsc__engine_current_lr(const dsc_engine_t *e);

#endif

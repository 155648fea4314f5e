/* The engine's state, shared by engine.c (initialize, free, accessors), engine_build.c
 * (optimizer and scheduler from the config) and engine_step.c (backward and step). */
#ifndef DSC_ENGINE_INTERNAL_H
#define DSC_ENGINE_INTERNAL_H

#include "core/internal.h"
#include "dsc/amp.h"
#include "dsc/engine.h"

#define DSC_ENGINE_ERRMSG_MAX 2048

struct dsc_engine {
    dsc_ctx_t *ctx;
    dsc_model_t *model;
    dsc_config_t *config;
    int world_size, rank;

    /* Batch geometry after resolution. */
    int train_batch_size, micro_batch_size, gas;

    /* Flat model state (docs/zero.md has the byte counts):
     *   params   the working copy the model is bound to, in model_dtype (DSC_MEM_PARAMS);
     *   master   fp32 master weights the optimizer updates: `params` itself for fp32 models,
     *            a separate buffer under fp16/bf16 (DSC_MEM_OPTIM);
     *   grads    what autograd accumulates into, in model_dtype (DSC_MEM_GRADS), or in fp32
     *            when gradients are accumulated in fp32 directly;
     *   acc32    fp32 gradients the optimizer reads: `grads` itself for fp32 models, else a
     *            DSC_MEM_GRAD_ACCUM buffer (the fp32 accumulation of data_types.grad_accum_dtype,
     *            or, with 16-bit accumulation, the fp32 copy made at the boundary). */
    int64_t numel;
    dsc_dtype_t model_dtype;
    bool accumulate_fp32;   /* add grads into acc32 after every backward (else at the boundary) */
    void *params;
    float *master;
    void *grads;
    float *acc32;
    dsc_amp_segment_t *segments; /* one per parameter tensor, for naming overflowing tensors */
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
    double grad_norm, grad_norm_clipped;
    bool training;

    char errmsg[DSC_ENGINE_ERRMSG_MAX];
};

/* Records a message on the engine and its context; returns status. */
dsc_status_t dsc__engine_fail(dsc_engine_t *e, dsc_status_t status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* engine_build.c: the optimizer (client or config) and the LR scheduler (client or config). */
dsc_status_t dsc__engine_build_optimizer(dsc_engine_t *e, const dsc_client_optimizer_t *client, char *err, size_t errsz);
dsc_status_t dsc__engine_build_scheduler(dsc_engine_t *e, const dsc_client_lr_scheduler_t *client, char *err, size_t errsz);
/* The learning rate the next update uses and the beta1 / momentum it uses. */
double dsc__engine_current_lr(const dsc_engine_t *e);

#endif

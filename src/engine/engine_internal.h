/* The engine's state, shared by engine.c (initialize, free, accessors), engine_build.c
 * (optimizer and scheduler from the config) and engine_step.c (backward and step). */
#ifndef DSC_ENGINE_INTERNAL_H
#define DSC_ENGINE_INTERNAL_H

#include "core/internal.h"
#include "dsc/engine.h"

#define DSC_ENGINE_ERRMSG_MAX 2048

struct dsc_engine {
    dsc_ctx_t *ctx;
    dsc_model_t *model;
    dsc_config_t *config;
    int world_size, rank;

    /* Batch geometry after resolution. */
    int train_batch_size, micro_batch_size, gas;

    /* Flat model state (fp32 for now): the parameters the model is bound to, which are also
     * the optimizer's master weights, and their gradients. */
    int64_t numel;
    float *params;
    float *grads;

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

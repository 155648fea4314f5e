/* dsc/sched.h: DeepSpeed's learning-rate schedulers (LRRangeTest, OneCycle, WarmupLR,
 * WarmupDecayLR, WarmupCosineLR) and a client-callback scheduler.
 *
 * Reference: DeepSpeed deepspeed/runtime/lr_schedules.py at commit edaa7221 (spec §2);
 * every formula is evaluated in double in the same operation order as DeepSpeed's Python,
 * so sequences match it to the last bit or so. Choices and quirks: docs/deepspeed-compat.md.
 *
 * Stepping model (the same for every scheduler):
 *   - A scheduler keeps one counter, `last_batch_iteration` (it), -1 after construction.
 *   - Construction writes the "initial" lr (and OneCycle momentum) for every param group:
 *     f(-1), which is not always f(0) (WarmupCosineLR gives 0.0).
 *   - dsc_sched_step() does it += 1 and writes f(it). The engine calls it once per
 *     optimizer update, after the update, at an accumulation boundary, and only when the
 *     update was not skipped for an fp16/bf16 overflow (dsc_sched_step_after_update).
 *     So update #1 uses f(-1) and update #k (k >= 2, applied updates) uses f(k-2).
 *   - dsc_sched_get_lr() returns the lr currently written, i.e. the lr the next optimizer
 *     update uses (DeepSpeed: the param group's lr / get_last_lr()). dsc_sched_lr_at()
 *     evaluates the formula at any `it` without changing anything (DeepSpeed: get_lr()).
 *   - The state is last_batch_iteration alone (DeepSpeed's state_dict); restoring it
 *     rewrites the current values to what the saving run had written at that point.
 *
 * A scheduler object holds no global state and is not thread-safe; it allocates only in
 * dsc_sched_new / dsc_sched_new_callback and frees everything in dsc_sched_free.
 */
#ifndef DSC_SCHED_H
#define DSC_SCHED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dsc/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The longest per-param-group list a bound parameter (e.g. cycle_min_lr) can hold. */
#define DSC_SCHED_MAX_GROUPS 64

/* DeepSpeed's fixed beta2 written by OneCycle (see dsc_sched_get_beta2). */
#define DSC_SCHED_ONECYCLE_BETA2 0.99

typedef enum dsc_sched_type {
    DSC_SCHED_LR_RANGE_TEST = 0, /* "LRRangeTest" */
    DSC_SCHED_ONE_CYCLE,         /* "OneCycle" */
    DSC_SCHED_WARMUP_LR,         /* "WarmupLR" */
    DSC_SCHED_WARMUP_DECAY_LR,   /* "WarmupDecayLR" */
    DSC_SCHED_WARMUP_COSINE_LR,  /* "WarmupCosineLR" */
    DSC_SCHED_CALLBACK,          /* a client callback (dsc_sched_new_callback); has no config name */
    DSC_SCHED_TYPE_COUNT
} dsc_sched_type_t;

/* Looks up a config `scheduler.type`, case-sensitively as DeepSpeed does. Unknown names give
 * DSC_ERR_CONFIG ("DeepSpeed does not recognize LR scheduler X", with a did-you-mean when a
 * name differs only in case or by a typo); torch.optim.lr_scheduler class names (StepLR, ...)
 * give DSC_ERR_UNSUPPORTED (dsc does not implement them; use dsc_sched_new_callback). */
dsc_status_t dsc_sched_type_from_name(const char *name, dsc_sched_type_t *out, char *err, size_t errsz);
/* DeepSpeed's name of a type ("WarmupLR", ..., "callback"); "?" when invalid. */
const char *dsc_sched_type_name(dsc_sched_type_t type);

typedef enum dsc_warmup_type {
    DSC_WARMUP_LOG = 0, /* "log": gamma(it) = ln(it+1)/ln(W) */
    DSC_WARMUP_LINEAR   /* "linear": gamma(it) = it/W */
} dsc_warmup_type_t;

/* Shape of a bound parameter (lr / momentum bounds, which may be per-param-group lists). */
typedef enum dsc_sched_value_kind {
    DSC_SCHED_NULL = 0, /* None: required-and-missing, or "use the optimizer's lr" for warmup_max_lr */
    DSC_SCHED_SCALAR,   /* v[0], the same for every group */
    DSC_SCHED_LIST      /* v[0..n-1], one per group; n must equal the group count */
} dsc_sched_value_kind_t;

typedef struct dsc_sched_bound {
    dsc_sched_value_kind_t kind;
    size_t n;
    double v[DSC_SCHED_MAX_GROUPS];
} dsc_sched_bound_t;

/* Scheduler parameters under DeepSpeed's names, with DeepSpeed's defaults (filled by
 * dsc_sched_params_default). Only the fields of `type` are used. Fill it with the
 * dsc_sched_set_param* calls (which check names and shapes); dsc_sched_new validates values.
 * "NAN" below means null (Python None). */
typedef struct dsc_sched_params {
    dsc_sched_type_t type;
    int64_t last_batch_iteration; /* -1 (all types). Another value: nothing is written at construction */
    /* LRRangeTest */
    dsc_sched_bound_t lr_range_test_min_lr; /* 1e-3 (list allowed) */
    int64_t lr_range_test_step_size;        /* 2000; a positive integer */
    double lr_range_test_step_rate;         /* 1.0 */
    bool lr_range_test_staircase;           /* false */
    /* OneCycle */
    dsc_sched_bound_t cycle_min_lr;   /* required (list allowed) */
    dsc_sched_bound_t cycle_max_lr;   /* required (list allowed) */
    double decay_lr_rate;             /* 0.0 */
    double cycle_first_step_size;     /* 2000; > 0 */
    double cycle_second_step_size;    /* NAN: equals cycle_first_step_size; >= 0 */
    double cycle_first_stair_count;   /* 0 (<= 0: no stairs) */
    double cycle_second_stair_count;  /* NAN: equals cycle_first_stair_count */
    double decay_step_size;           /* 0 (0: no decay after the cycle) */
    bool cycle_momentum;              /* true */
    dsc_sched_bound_t cycle_min_mom;  /* 0.8 (list allowed) */
    dsc_sched_bound_t cycle_max_mom;  /* 0.9 (list allowed) */
    double decay_mom_rate;            /* 0.0 */
    /* WarmupLR, WarmupDecayLR, WarmupCosineLR */
    double total_num_steps;           /* NAN: required by WarmupDecayLR and WarmupCosineLR */
    dsc_sched_bound_t warmup_min_lr;  /* 0.0 (list allowed) */
    dsc_sched_bound_t warmup_max_lr;  /* WarmupLR: null = the optimizer's lr per group; WarmupDecayLR: 0.001 */
    int64_t warmup_num_steps;         /* 1000; a positive integer (1 acts as 2) */
    dsc_warmup_type_t warmup_type;    /* log */
    double warmup_min_ratio;          /* 0.0 (WarmupCosineLR) */
    double cos_min_ratio;             /* 0.0001 (WarmupCosineLR) */
    /* Set by dsc_sched_set_param_str when warmup_type was not "log"/"linear": DeepSpeed warns
     * and uses log; dsc_sched_new logs the same warning. Empty otherwise. */
    char warmup_type_unknown[32];
} dsc_sched_params_t;

/* Fills `p` with DeepSpeed's defaults for `type` (not DSC_SCHED_CALLBACK): DSC_ERR_INVALID
 * for an invalid type (then `p` is zeroed). */
dsc_status_t dsc_sched_params_default(dsc_sched_params_t *p, dsc_sched_type_t type);
/* The parameter names `p->type` accepts, NULL-terminated (static storage). */
const char *const *dsc_sched_param_names(dsc_sched_type_t type);

/* Sets one parameter from a number (a JSON integer, real or boolean). Names not taken by
 * p->type give DSC_ERR_CONFIG naming the key, with a did-you-mean or the scheduler that does
 * take it (DeepSpeed: TypeError, unexpected keyword). Integer parameters
 * (warmup_num_steps, lr_range_test_step_size, last_batch_iteration) need an integral value;
 * booleans take any number (nonzero = true); non-finite values are rejected. */
dsc_status_t dsc_sched_set_param(dsc_sched_params_t *p, const char *name, double value, char *err, size_t errsz);
/* As dsc_sched_set_param for a value written as a JSON real (1000.0): DeepSpeed's isinstance
 * int checks reject those for warmup_num_steps and lr_range_test_step_size, and so does this. */
dsc_status_t dsc_sched_set_param_real(dsc_sched_params_t *p, const char *name, double value, char *err,
                                      size_t errsz);
/* Sets a bound parameter to one value per param group (1..DSC_SCHED_MAX_GROUPS values);
 * other parameters give DSC_ERR_CONFIG. The length is checked against the group count by
 * dsc_sched_new (DeepSpeed: ValueError). */
dsc_status_t dsc_sched_set_param_list(dsc_sched_params_t *p, const char *name, const double *values, size_t n,
                                      char *err, size_t errsz);
/* Sets a string parameter (only warmup_type: "log" or "linear"; anything else is accepted as
 * log and recorded in p->warmup_type_unknown, as DeepSpeed warns and falls back). A string
 * for a numeric parameter gives DSC_ERR_CONFIG. */
dsc_status_t dsc_sched_set_param_str(dsc_sched_params_t *p, const char *name, const char *value, char *err,
                                     size_t errsz);
/* Sets a parameter to null (JSON null). Allowed for cycle_second_step_size,
 * cycle_second_stair_count, warmup_max_lr and the required parameters (which dsc_sched_new
 * then reports missing); DSC_ERR_CONFIG for the others. */
dsc_status_t dsc_sched_set_param_null(dsc_sched_params_t *p, const char *name, char *err, size_t errsz);

/* What the scheduler needs to know about the optimizer. Start from DSC_SCHED_OPTIONS_INIT. */
typedef struct dsc_sched_options {
    size_t num_groups;       /* optimizer param groups (>= 1) */
    const double *base_lrs;  /* the optimizer's lr per group at construction (num_groups values),
                              * or NULL. Needed by WarmupCosineLR, by WarmupLR/WarmupDecayLR when
                              * warmup_max_lr is null, and when last_batch_iteration != -1. */
    bool has_betas;          /* the optimizer has betas (Adam, AdamW, Lamb, Lion, ...). OneCycle
                              * cycles beta1 only then (DeepSpeed disables it with a warning otherwise) */
    bool deepspeed_onecycle_betas; /* OneCycle momentum exactly as DeepSpeed HEAD: beta1 =
                              * cycle_min_mom at construction and beta2 overwritten with 0.99.
                              * false (default): construction writes the formula's beta1
                              * (cycle_max_mom) and beta2 is left alone. See docs/deepspeed-compat.md */
    dsc_log_fn log_fn;       /* warnings DeepSpeed logs (unknown warmup_type, total < warmup,
                              * momentum disabled); NULL = silent */
    void *log_user;
} dsc_sched_options_t;

#define DSC_SCHED_OPTIONS_INIT {1, NULL, false, false, NULL, NULL}

typedef struct dsc_sched dsc_sched_t;

/* Builds a scheduler from `p` (type p->type) and performs DeepSpeed's construction step
 * (writes f(-1) unless p->last_batch_iteration != -1). Validation errors give DSC_ERR_CONFIG
 * with a message naming the parameter: required parameters missing; warmup_num_steps and
 * lr_range_test_step_size not positive; cycle_first_step_size <= 0; cycle_second_step_size
 * < 0; a list whose length is not the group count; and (dsc, stricter than DeepSpeed)
 * negative lr bounds, momentum bounds outside [0, 1), negative decay_step_size,
 * decay_lr_rate, lr_range_test_step_rate or warmup_min_ratio, last_batch_iteration < -1.
 * Missing base_lrs where needed gives DSC_ERR_INVALID. `opts` NULL = DSC_SCHED_OPTIONS_INIT. */
dsc_status_t dsc_sched_new(const dsc_sched_params_t *p, const dsc_sched_options_t *opts, dsc_sched_t **out,
                           char *err, size_t errsz);

/* A client scheduler (DeepSpeed's lr_scheduler argument to initialize, which overrides the
 * config). `step` is the number of scheduler steps taken so far, i.e. the 0-based index of
 * the applied optimizer update the value is for (0 at construction; = last_batch_iteration+1),
 * as torch's LambdaLR counts. Return the lr for `group`; a negative or non-finite value is an
 * error. */
typedef double (*dsc_lr_fn)(int64_t step, size_t group, void *user);
/* Optional momentum: return true and set *beta1 to have beta1 written, false to leave the
 * optimizer's betas alone. */
typedef bool (*dsc_momentum_fn)(int64_t step, size_t group, double *beta1, void *user);

/* Wraps a callback as a scheduler object (type DSC_SCHED_CALLBACK) with the same stepping
 * and state as the built-in ones. lr_fn is required, mom_fn may be NULL; `user` is passed to
 * both and must outlive the scheduler. opts->base_lrs / has_betas are ignored. */
dsc_status_t dsc_sched_new_callback(dsc_lr_fn lr_fn, dsc_momentum_fn mom_fn, void *user,
                                    const dsc_sched_options_t *opts, dsc_sched_t **out, char *err,
                                    size_t errsz);

/* DeepSpeed step(): last_batch_iteration += 1, then writes the new lr (and momentum). Only a
 * callback scheduler can fail (DSC_ERR_INVALID: bad value; nothing changes; see errmsg). */
dsc_status_t dsc_sched_step(dsc_sched_t *s);
/* DeepSpeed step(k): last_batch_iteration = k (>= -1, else DSC_ERR_INVALID), then writes f(k). */
dsc_status_t dsc_sched_step_to(dsc_sched_t *s, int64_t k);
/* The engine's rule (spec §6.2 step 5): after an optimizer update at an accumulation boundary,
 * steps the scheduler unless the update was skipped (`overflow`), in which case nothing changes. */
dsc_status_t dsc_sched_step_after_update(dsc_sched_t *s, bool overflow);

/* The lr currently written for group 0 / for `group` (NAN for a bad group or NULL s). */
double dsc_sched_get_lr(const dsc_sched_t *s);
double dsc_sched_get_group_lr(const dsc_sched_t *s, size_t group);
/* The beta1 currently written for group 0 / `group`; *has (may be NULL) is false when the
 * scheduler writes no momentum (every type but OneCycle with cycle_momentum and has_betas, or
 * a callback with a mom_fn returning true), then the optimizer keeps its own betas. */
double dsc_sched_get_momentum(const dsc_sched_t *s, bool *has);
double dsc_sched_get_group_momentum(const dsc_sched_t *s, size_t group, bool *has);
/* The beta2 the scheduler writes: 0.99 with *has = true for a momentum-cycling OneCycle under
 * opts.deepspeed_onecycle_betas; otherwise *has = false (leave the optimizer's beta2). */
double dsc_sched_get_beta2(const dsc_sched_t *s, bool *has);
/* DeepSpeed get_lr() / get_mom() at iteration `it` (>= -1): the formula, nothing changes.
 * At it = -1 this is the formula's value, which for OneCycle's beta1 differs from what the
 * constructor writes in deepspeed_onecycle_betas mode. *has as above. NAN on bad arguments. */
double dsc_sched_lr_at(const dsc_sched_t *s, int64_t it, size_t group);
double dsc_sched_momentum_at(const dsc_sched_t *s, int64_t it, size_t group, bool *has);

int64_t dsc_sched_last_batch_iteration(const dsc_sched_t *s);
size_t dsc_sched_num_groups(const dsc_sched_t *s);
dsc_sched_type_t dsc_sched_get_type(const dsc_sched_t *s);

/* Everything needed to resume exactly: DeepSpeed's {"last_batch_iteration": it}. */
typedef struct dsc_sched_state {
    int64_t last_batch_iteration;
} dsc_sched_state_t;

void dsc_sched_state_get(const dsc_sched_t *s, dsc_sched_state_t *state);
/* Restores the counter and rewrites the current lr/momentum to what the saving run had
 * written after reaching that counter (f(it); the construction values when it == -1), so the
 * continuation is identical. DSC_ERR_INVALID for it < -1 (or a callback failing; nothing
 * changes then). */
dsc_status_t dsc_sched_state_set(dsc_sched_t *s, const dsc_sched_state_t *state);

/* The last error recorded by a step/state call on `s` ("" when none). */
const char *dsc_sched_errmsg(const dsc_sched_t *s);
void dsc_sched_free(dsc_sched_t *s);

#ifdef __cplusplus
}
#endif
#endif

/* Building the engine's optimizer and LR scheduler from the config or the caller's
 * overrides (DeepSpeed: a client optimizer / lr_scheduler passed to initialize wins). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine_internal.h"
#include "optim/optim_internal.h"

static void ctx_log(dsc_log_level_t level, const char *message, void *user) {
    dsc_ctx_log((dsc_ctx_t *)user, level, "%s", message);
}

/* The optimizer.params the file gave, as (key, values) pairs for dsc_optim_params_from_config. */
static dsc_status_t collect_optim_kv(const dsc_config_t *cfg, dsc_optim_kv_t *kv, double *scalars, size_t *n_kv,
                                     char *err, size_t errsz) {
    const dsc_config_params_t *ps = &cfg->optimizer.params;
    size_t n = 0;
    for (size_t i = 0; i < ps->count; i++) {
        const dsc_config_param_t *p = &ps->items[i];
        if (p->source.origin != DSC_CONFIG_FILE) continue; /* defaults come from the optimizer itself */
        kv[n].key = p->name;
        switch (p->kind) {
        case DSC_CONFIG_PARAM_BOOL:
        case DSC_CONFIG_PARAM_NUMBER:
            scalars[n] = p->kind == DSC_CONFIG_PARAM_BOOL ? (p->boolean ? 1.0 : 0.0) : p->number;
            kv[n].values = &scalars[n];
            kv[n].n_values = 1;
            break;
        case DSC_CONFIG_PARAM_LIST:
            kv[n].values = p->list;
            kv[n].n_values = p->list_len;
            break;
        default:
            snprintf(err, errsz, "%s:%d:%d: optimizer.params.%s: expected a number, a boolean or a list of numbers",
                     cfg->source_name, p->source.line, p->source.col, p->name);
            return DSC_ERR_CONFIG;
        }
        n++;
    }
    *n_kv = n;
    return DSC_OK;
}

dsc_status_t dsc__engine_build_optimizer(dsc_engine_t *e, const dsc_client_optimizer_t *client, char *err, size_t errsz) {
    const dsc_config_t *cfg = e->config;
    dsc_status_t rc;
    if (client) {
        e->optim_params = client->params;
        e->optim_params.type = client->type;
        rc = dsc_optim_validate_params(&e->optim_params, err, errsz);
        if (rc != DSC_OK) return rc;
        if (cfg->optimizer.kind != DSC_CONFIG_OPTIM_NONE)
            dsc_ctx_log(e->ctx, DSC_LOG_INFO, "a client optimizer was given: the config's optimizer section is not used "
                        "(DeepSpeed's rule)");
    } else if (cfg->optimizer.kind == DSC_CONFIG_OPTIM_NONE) {
        return DSC_OK; /* backward/step will say an optimizer is needed */
    } else {
        size_t n_items = cfg->optimizer.params.count;
        dsc_optim_kv_t *kv = calloc(n_items + 1, sizeof *kv);
        double *scalars = calloc(n_items + 1, sizeof *scalars);
        size_t n_kv = 0;
        rc = (kv && scalars) ? collect_optim_kv(cfg, kv, scalars, &n_kv, err, errsz) : DSC_ERR_NOMEM;
        if (rc == DSC_OK) {
            char why[1024];
            /* optimizer offload (cpu or nvme) picks DeepSpeed's CPU classes (DeepSpeedCPUAdam ...) */
            const bool offload = cfg->zero_optimization.stage > 0 &&
                                 cfg->zero_optimization.offload_optimizer.device != DSC_CONFIG_OFFLOAD_NONE;
            rc = dsc_optim_params_from_config(cfg->optimizer.type, kv, n_kv, offload, &e->optim_params, why, sizeof why);
            if (rc != DSC_OK) snprintf(err, errsz, "%s: optimizer (type %s): %s", cfg->source_name, cfg->optimizer.type, why);
        } else if (rc == DSC_ERR_NOMEM) {
            snprintf(err, errsz, "out of memory reading optimizer.params");
        }
        free(kv);
        free(scalars);
        if (rc != DSC_OK) return rc;
    }
    char why[1024] = "";
    rc = dsc_optim_check_zero(&e->optim_params, cfg->zero_optimization.stage, cfg->zero_allow_untested_optimizer, why,
                              sizeof why);
    if (rc != DSC_OK) {
        snprintf(err, errsz, "%s", why);
        return rc;
    }
    if (why[0]) dsc_ctx_log(e->ctx, DSC_LOG_WARN, "%s", why);
    rc = dsc__engine_check_offload(e, err, errsz);
    if (rc != DSC_OK) return rc;

    /* One segment per parameter tensor (or its piece in this rank's partition): Lamb's
     * trust ratio is per tensor. Padding at the end is its own segment. */
    size_t n_zsegs = 0;
    const dsc_amp_segment_t *zsegs = dsc__zero_segments(e->zero, NULL, &n_zsegs);
    dsc_optim_segment_t *segs = calloc(n_zsegs + 2, sizeof *segs);
    if (!segs) {
        snprintf(err, errsz, "out of memory building the optimizer");
        return DSC_ERR_NOMEM;
    }
    size_t n_segs = 0, covered = 0;
    for (size_t i = 0; i < n_zsegs; i++) {
        segs[n_segs].offset = zsegs[i].offset;
        segs[n_segs++].numel = zsegs[i].numel;
        covered = zsegs[i].offset + zsegs[i].numel;
    }
    if (covered < (size_t)e->n_local) {
        segs[n_segs].offset = covered;
        segs[n_segs++].numel = (size_t)e->n_local - covered;
    }
    if (dsc__engine_offload_nvme(e)) /* its state lives in the swap file (engine_offload.c) */
        rc = dsc__optim_new_unbacked(dsc__engine_optim_ctx(e), &e->optim_params, (size_t)e->n_local, segs, n_segs,
                                     &e->optimizer);
    else /* in host memory, with the CPU's kernels, when offloaded from a device (engine_offload.c) */
        rc = dsc_optim_new(dsc__engine_optim_ctx(e), &e->optim_params, (size_t)e->n_local, segs, n_segs, &e->optimizer);
    free(segs);
    if (rc != DSC_OK) snprintf(err, errsz, "creating the %s optimizer: %s", dsc_optim_class_name(&e->optim_params),
                               dsc_ctx_errmsg(dsc__engine_optim_ctx(e)));
    return rc;
}

static bool optimizer_has_betas(dsc_optim_type_t t) {
    return t == DSC_OPTIM_ADAM || t == DSC_OPTIM_ADAMW || t == DSC_OPTIM_LAMB || t == DSC_OPTIM_LION ||
           t == DSC_OPTIM_ADAMAX;
}

/* Applies the file's scheduler.params to `p`. */
static dsc_status_t apply_sched_params(const dsc_config_t *cfg, dsc_sched_params_t *p, char *err, size_t errsz) {
    const dsc_config_params_t *ps = &cfg->scheduler.params;
    for (size_t i = 0; i < ps->count; i++) {
        const dsc_config_param_t *q = &ps->items[i];
        if (q->source.origin != DSC_CONFIG_FILE) continue;
        char why[512];
        dsc_status_t rc;
        switch (q->kind) {
        case DSC_CONFIG_PARAM_BOOL: rc = dsc_sched_set_param(p, q->name, q->boolean ? 1 : 0, why, sizeof why); break;
        case DSC_CONFIG_PARAM_NUMBER:
            rc = q->is_integer ? dsc_sched_set_param(p, q->name, q->number, why, sizeof why)
                               : dsc_sched_set_param_real(p, q->name, q->number, why, sizeof why);
            break;
        case DSC_CONFIG_PARAM_LIST: rc = dsc_sched_set_param_list(p, q->name, q->list, q->list_len, why, sizeof why); break;
        case DSC_CONFIG_PARAM_STRING: rc = dsc_sched_set_param_str(p, q->name, q->string, why, sizeof why); break;
        default: rc = dsc_sched_set_param_null(p, q->name, why, sizeof why); break;
        }
        if (rc != DSC_OK) {
            snprintf(err, errsz, "%s:%d:%d: scheduler.params.%s: %s", cfg->source_name, q->source.line, q->source.col,
                     q->name, why);
            return rc;
        }
    }
    return DSC_OK;
}

dsc_status_t dsc__engine_build_scheduler(dsc_engine_t *e, const dsc_client_lr_scheduler_t *client, char *err,
                                         size_t errsz) {
    const dsc_config_t *cfg = e->config;
    if (!client && cfg->scheduler.kind == DSC_CONFIG_SCHED_NONE) return DSC_OK;
    if (!e->optimizer) {
        snprintf(err, errsz, "an LR scheduler needs an optimizer: add an \"optimizer\" section or pass a client optimizer");
        return DSC_ERR_CONFIG;
    }
    double base_lr = e->optim_params.lr;
    dsc_sched_options_t so = DSC_SCHED_OPTIONS_INIT;
    so.num_groups = 1;
    so.base_lrs = &base_lr;
    so.has_betas = optimizer_has_betas(e->optim_params.type);
    so.log_fn = ctx_log;
    so.log_user = e->ctx;
    char why[1024];
    dsc_status_t rc;
    if (client) {
        if (!client->lr_fn) {
            snprintf(err, errsz, "client_lr_scheduler.lr_fn is NULL");
            return DSC_ERR_INVALID;
        }
        rc = dsc_sched_new_callback(client->lr_fn, client->momentum_fn, client->user, &so, &e->scheduler, why, sizeof why);
        if (rc != DSC_OK) snprintf(err, errsz, "client LR scheduler: %s", why);
        return rc;
    }
    dsc_sched_type_t type;
    rc = dsc_sched_type_from_name(cfg->scheduler.type, &type, why, sizeof why);
    dsc_sched_params_t p;
    if (rc == DSC_OK) rc = dsc_sched_params_default(&p, type);
    if (rc != DSC_OK) {
        snprintf(err, errsz, "%s: scheduler.type: %s", cfg->source_name, why);
        return rc;
    }
    rc = apply_sched_params(cfg, &p, err, errsz);
    if (rc != DSC_OK) return rc;
    rc = dsc_sched_new(&p, &so, &e->scheduler, why, sizeof why);
    if (rc != DSC_OK) snprintf(err, errsz, "%s: scheduler %s: %s", cfg->source_name, cfg->scheduler.type, why);
    return rc;
}

double dsc__engine_current_lr(const dsc_engine_t *e) {
    if (e->scheduler) return dsc_sched_get_lr(e->scheduler);
    return e->optimizer ? e->optim_params.lr : NAN;
}

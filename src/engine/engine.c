/* dsc_initialize, dsc_engine_free and the accessors (see dsc/engine.h). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/device.h"
#include "engine/engine_actckpt.h"
#include "engine/engine_internal.h"
#include "zero/param_nvme.h"

dsc_status_t dsc__engine_fail(dsc_engine_t *e, dsc_status_t status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->errmsg, sizeof e->errmsg, fmt, ap);
    va_end(ap);
    dsc_ctx_set_error(e->ctx, status, "%s", e->errmsg);
    return status;
}

static void config_log(dsc_log_level_t level, const char *message, void *user) {
    dsc_ctx_log((dsc_ctx_t *)user, level, "%s", message);
}

/* Chooses the storage dtypes from the config (spec 3.1): fp16 or bf16 working copies with
 * fp32 master weights, and where gradients accumulate (data_types.grad_accum_dtype; for
 * bf16 dsc accumulates in fp32 unless told otherwise, as DeepSpeed's BF16 optimizer does). */
static dsc_status_t choose_dtypes(dsc_engine_t *e, char *err, size_t errsz) {
    const dsc_config_t *c = e->config;
    e->model_dtype = c->fp16.enabled ? DSC_F16 : c->bf16.enabled ? DSC_BF16 : DSC_F32;
    dsc_config_dtype_t acc = c->data_types.grad_accum_dtype;
    if (acc == DSC_CONFIG_DTYPE_INT8) {
        snprintf(err, errsz, "%s: data_types.grad_accum_dtype: int8 gradient accumulation is not supported", c->source_name);
        return DSC_ERR_UNSUPPORTED;
    }
    if (e->model_dtype == DSC_F32 && acc != DSC_CONFIG_DTYPE_NONE && acc != DSC_CONFIG_DTYPE_FP32) {
        snprintf(err, errsz, "%s: data_types.grad_accum_dtype: %s accumulation needs fp16 or bf16 enabled "
                 "(DeepSpeed: unsupported mix of model_dtype=fp32 and grad_accum_dtype=%s)", c->source_name,
                 dsc_config_dtype_name(acc), dsc_config_dtype_name(acc));
        return DSC_ERR_CONFIG;
    }
    e->accumulate_fp32 = e->model_dtype != DSC_F32 &&
                         (acc == DSC_CONFIG_DTYPE_FP32 || (acc == DSC_CONFIG_DTYPE_NONE && e->model_dtype == DSC_BF16));
    e->check_overflow = e->model_dtype != DSC_BF16 || c->bf16.check_grad_overflow;
    return DSC_OK;
}

static dsc_status_t parse_config(dsc_engine_t *e, const dsc_engine_options_t *o, char *err, size_t errsz) {
    if (!!o->config_path == !!o->config_json) {
        snprintf(err, errsz, "dsc_initialize: give exactly one of config_path and config_json (DeepSpeed: "
                             "\"DeepSpeed requires --deepspeed_config to specify configuration file\")");
        return DSC_ERR_INVALID;
    }
    dsc_config_parse_options_t po = DSC_CONFIG_PARSE_OPTIONS_INIT;
    po.unknown_top_level_keys_warn = o->allow_unknown_top_level_keys;
    po.log_fn = config_log;
    po.log_user = e->ctx;
    po.overrides = o->config_overrides;
    po.n_overrides = o->n_config_overrides;
    dsc_status_t rc = o->config_path ? dsc_config_parse_file(o->config_path, &po, &e->config, err, errsz)
                                     : dsc_config_parse_string(o->config_json, &po, &e->config, err, errsz);
    if (rc != DSC_OK) return rc;
    rc = dsc_config_resolve_batch(e->config, e->world_size, err, errsz);
    if (rc != DSC_OK) return rc;
    dsc_config_support_t support = {dsc_engine_supported_keys(), "the dsc engine"};
    rc = dsc_config_check_supported(e->config, &support, err, errsz);
    if (rc != DSC_OK) return rc;
    e->train_batch_size = (int)e->config->train_batch_size.value;
    e->micro_batch_size = (int)e->config->train_micro_batch_size_per_gpu.value;
    e->gas = (int)e->config->gradient_accumulation_steps.value;
    return DSC_OK;
}

dsc_status_t dsc__engine_create_zero(dsc_engine_t *e, char *err, size_t errsz) {
    dsc_status_t rc = dsc__engine_open_host(e, err, errsz); /* optimizer offload to the host: its context */
    if (rc != DSC_OK) return rc;
    dsc_ctx_t *param_ctx = NULL; /* parameter offload: the host context of the partition */
    dsc_pnvme_options_t pnvme; /* ... or its swap file */
    rc = dsc__engine_open_param_host(e, &param_ctx, err, errsz);
    if (rc != DSC_OK) return rc;
    const dsc_zero_setup_t s = {e->ctx, e->model, e->comm, &e->config->zero_optimization, e->plan, e->model_dtype,
                                e->accumulate_fp32, e->host_ctx,
                                e->config->zero_optimization.offload_optimizer.pin_memory, e->errmsg,
                                sizeof e->errmsg, param_ctx, e->config->zero_optimization.offload_param.pin_memory,
                                dsc__engine_param_nvme_options(e, &pnvme) ? &pnvme : NULL};
    rc = dsc__zero_create(&s, &e->zero, err, errsz);
    if (rc != DSC_OK) return rc;
    dsc__zero_buffers(e->zero, &e->params, &e->grads);
    e->master = dsc__zero_master(e->zero);
    e->acc32 = dsc__zero_grad32(e->zero);
    e->n_local = dsc__zero_n_local(e->zero);
    dsc__engine_note_param_offload(e);
    return DSC_OK;
}

dsc_status_t dsc_initialize(dsc_model_t *model, const dsc_engine_options_t *options, dsc_initialize_result_t *result,
                            char *errbuf, size_t errbuf_size) {
    char scratch[8];
    if (!errbuf || errbuf_size == 0) {
        errbuf = scratch;
        errbuf_size = sizeof scratch;
    }
    errbuf[0] = '\0';
    if (!result) {
        snprintf(errbuf, errbuf_size, "dsc_initialize: result is NULL");
        return DSC_ERR_INVALID;
    }
    memset(result, 0, sizeof *result);
    if (!model || !options) {
        snprintf(errbuf, errbuf_size, "deepspeed.initialize requires a model (dsc_initialize: model or options is NULL)");
        return DSC_ERR_INVALID;
    }
    int world = options->comm ? dsc_comm_world_size(options->comm) : options->world_size;
    int rank = options->comm ? dsc_comm_rank(options->comm) : options->rank;
    if (!options->comm && world != 1) {
        snprintf(errbuf, errbuf_size, "dsc_initialize: world size %d needs a communicator (options.comm: "
                 "dsc_comm_new_mpi under mpirun)", world);
        return DSC_ERR_INVALID;
    }
    if (world < 1 || rank < 0 || rank >= world) {
        snprintf(errbuf, errbuf_size, "dsc_initialize: rank %d / world size %d is invalid", rank, world);
        return DSC_ERR_INVALID;
    }
    dsc_engine_t *e = calloc(1, sizeof *e);
    if (!e) {
        snprintf(errbuf, errbuf_size, "out of memory creating the engine");
        return DSC_ERR_NOMEM;
    }
    e->ctx = dsc_model_ctx(model);
    e->model = model;
    e->world_size = world;
    e->rank = rank;
    e->numel = dsc_model_numel(model);
    e->training = true;
    e->grad_norm = e->grad_norm_clipped = NAN;
    e->last_loss = NAN;
    e->last_loss_slot = -1;

    dsc_status_t rc = parse_config(e, options, errbuf, errbuf_size);
    if (rc == DSC_OK && e->numel < 1) {
        snprintf(errbuf, errbuf_size, "dsc_initialize: the model has no parameters");
        rc = DSC_ERR_INVALID;
    }
    if (rc == DSC_OK) rc = choose_dtypes(e, errbuf, errbuf_size);
    if (options->comm) {
        e->comm = options->comm;
    } else if (rc == DSC_OK) {
        rc = dsc_comm_new_self(e->ctx, &e->comm);
        e->owns_comm = rc == DSC_OK;
        if (rc != DSC_OK) snprintf(errbuf, errbuf_size, "creating the single-rank communicator: %s", dsc_ctx_errmsg(e->ctx));
    }
    /* The timeout governs the first collective already: the caller's, else the config's
     * "dsc" section (a caller may still change them afterwards). */
    if (e->comm && rc == DSC_OK) {
        if (e->config->dsc.comm_timeout > 0) dsc_comm_set_timeout(e->comm, e->config->dsc.comm_timeout);
        if (e->config->dsc.comm_debug_check) dsc_comm_set_debug_check(e->comm, true);
    }
    if (e->comm && options->comm_timeout > 0 && dsc_comm_set_timeout(e->comm, options->comm_timeout) != DSC_OK &&
        rc == DSC_OK) {
        snprintf(errbuf, errbuf_size, "dsc_initialize: options.comm_timeout %g s is not a valid timeout",
                 options->comm_timeout);
        rc = DSC_ERR_INVALID;
    }
    /* Before any data moves, every rank learns whether the others are fine and shares the
     * same model and settings (a rank that failed above still joins, with its error). */
    if (options->comm) rc = dsc__engine_agree(e, options, rc, true, "dsc_initialize", errbuf, errbuf_size);
    if (rc == DSC_OK) {
        rc = dsc_zero_plan_make(e->config->zero_optimization.stage, e->world_size, e->rank, e->numel, &e->plan);
        if (rc != DSC_OK) snprintf(errbuf, errbuf_size, "ZeRO partition plan: invalid stage, world or size");
    }
    /* Once the state (and its initial broadcast) is built, every rank has run the same
     * collectives: a later local failure is agreed on at the end. A failure inside it
     * leaves the others in its broadcast, which the timeout ends. */
    bool agree_at_end = false;
    if (rc == DSC_OK) {
        rc = dsc__engine_create_zero(e, errbuf, errbuf_size);
        agree_at_end = rc == DSC_OK && options->comm;
    }
    if (rc == DSC_OK) {
        dsc_loss_scaler_params_t sp;
        rc = dsc_loss_scaler_params_from_config(e->config, &sp);
        sp.max_consecutive_skips_at_min = options->max_consecutive_skips_at_min_scale;
        sp.rank = e->rank;
        if (rc == DSC_OK) rc = dsc_loss_scaler_init(&e->scaler, &sp);
        if (rc != DSC_OK) snprintf(errbuf, errbuf_size, "%s: fp16: %s", e->config->source_name, dsc_loss_scaler_errmsg(&e->scaler));
        e->loss_scale_used = dsc_loss_scaler_scale(&e->scaler);
    }
    if (rc == DSC_OK) rc = dsc__engine_build_optimizer(e, options->client_optimizer, errbuf, errbuf_size);
    if (rc == DSC_OK) rc = dsc__engine_setup_offload(e, errbuf, errbuf_size);
    if (rc == DSC_OK) rc = dsc__engine_build_scheduler(e, options->client_lr_scheduler, errbuf, errbuf_size);
    if (rc == DSC_OK) rc = dsc__engine_setup_actckpt(e, errbuf, errbuf_size);
    if (rc == DSC_OK) rc = dsc__engine_monitor_new(e->ctx, e->config, e->rank, &e->monitor, errbuf, errbuf_size);
    if (agree_at_end) rc = dsc__engine_agree(e, options, rc, false, "dsc_initialize (end)", errbuf, errbuf_size);
    if (rc != DSC_OK) {
        dsc_ctx_set_error(e->ctx, rc, "%s", errbuf);
        dsc_engine_free(e);
        return rc;
    }
    dsc__engine_note_knobs(e);
    dsc__engine_note_seed_hint(e);
    e->comm_sent_mark = dsc_comm_stats(e->comm).lifetime_sent_bytes; /* the first step counts from here */
    result->engine = e;
    result->optimizer = e->optimizer;
    result->lr_scheduler = e->scheduler;
    char line[512];
    dsc_engine_progress_line(e, line, sizeof line);
    if (e->rank == 0)
        dsc_ctx_log(e->ctx, DSC_LOG_INFO, "engine initialised: %lld parameters, train_batch_size=%d, "
                "train_micro_batch_size_per_gpu=%d, gradient_accumulation_steps=%d, world_size=%d; %s",
                (long long)e->numel, e->train_batch_size, e->micro_batch_size, e->gas, e->world_size, line);
    return DSC_OK;
}

void dsc_engine_free(dsc_engine_t *e) {
    if (!e) return;
    if (e->ctx) e->ctx->loss_grad.seed_hint = 0; /* the context's later losses are not this engine's */
    dsc__zero_free(e->zero); /* unbinds the model */
    dsc__dev_free(e->ctx, DSC_MEM_OTHER, e->loss_dev, sizeof *e->loss_dev * (size_t)e->loss_cap);
    if (e->owns_comm) dsc_comm_free(e->comm);
    dsc__engine_teardown_actckpt(e);
    dsc__engine_monitor_free(e->monitor);
    dsc__engine_free_offload(e);
    dsc_optim_free(e->optimizer);
    dsc__engine_close_host(e); /* after everything it holds */
    dsc__engine_close_param_host(e);
    dsc_sched_free(e->scheduler);
    dsc_config_free(e->config);
    free(e);
}

const dsc_config_t *dsc_engine_config(const dsc_engine_t *e) { return e ? e->config : NULL; }
int dsc_engine_world_size(const dsc_engine_t *e) { return e ? e->world_size : 0; }
int dsc_engine_rank(const dsc_engine_t *e) { return e ? e->rank : -1; }
int64_t dsc_engine_global_steps(const dsc_engine_t *e) { return e ? e->global_steps : 0; }
int64_t dsc_engine_global_samples(const dsc_engine_t *e) { return e ? e->global_samples : 0; }
int64_t dsc_engine_micro_steps(const dsc_engine_t *e) { return e ? e->micro_steps : 0; }
int64_t dsc_engine_skipped_steps(const dsc_engine_t *e) { return e ? e->skipped_steps : 0; }
int dsc_engine_train_batch_size(const dsc_engine_t *e) { return e ? e->train_batch_size : 0; }
int dsc_engine_micro_batch_size(const dsc_engine_t *e) { return e ? e->micro_batch_size : 0; }
int dsc_engine_gradient_accumulation_steps(const dsc_engine_t *e) { return e ? e->gas : 0; }
double dsc_engine_lr(const dsc_engine_t *e) { return e ? dsc__engine_current_lr(e) : NAN; }
double dsc_engine_loss_scale(const dsc_engine_t *e) { return e ? dsc_loss_scaler_scale(&e->scaler) : NAN; }
double dsc_engine_grad_norm(const dsc_engine_t *e) { return e ? e->grad_norm : NAN; }
double dsc_engine_grad_norm_clipped(const dsc_engine_t *e) { return e ? e->grad_norm_clipped : NAN; }
void dsc_engine_forward_begin(dsc_engine_t *e) {
    if (e) dsc__engine_monitor_forward_begin(e->monitor);
}
void dsc_engine_forward_end(dsc_engine_t *e) {
    if (e) dsc__engine_monitor_forward_end(e->monitor);
}
dsc_status_t dsc_engine_monitor_write(dsc_engine_t *e, const char *name, double value) {
    if (!e || !name) return DSC_ERR_INVALID;
    dsc__engine_monitor_event(e->monitor, name, value, e->global_samples);
    return DSC_OK;
}

uint64_t dsc_engine_comm_bytes_last_step(const dsc_engine_t *e) { return e ? e->comm_sent_last_step : 0; }

void dsc_engine_memory_line(const dsc_engine_t *e, char *buf, size_t n) {
    if (!buf || !n) return;
    if (!e) {
        snprintf(buf, n, "(no engine)");
        return;
    }
    const double mib = 1048576.0;
    snprintf(buf, n, "rank %d: params %.2f MiB, grads %.2f MiB, optimizer %.2f MiB, grad accum %.2f MiB, comm %.2f MiB, "
             "activations peak %.2f MiB", e->rank, dsc_ctx_mem_stats(e->ctx, DSC_MEM_PARAMS).live_bytes / mib,
             dsc_ctx_mem_stats(e->ctx, DSC_MEM_GRADS).live_bytes / mib, dsc_ctx_mem_stats(e->ctx, DSC_MEM_OPTIM).live_bytes / mib,
             dsc_ctx_mem_stats(e->ctx, DSC_MEM_GRAD_ACCUM).live_bytes / mib,
             dsc_ctx_mem_stats(e->ctx, DSC_MEM_COMM).live_bytes / mib,
             dsc_ctx_mem_stats(e->ctx, DSC_MEM_ACTIVATIONS).peak_bytes / mib);
}

/* A cached read (the loss stays on the device until asked for): the engine is logically const. */
double dsc_engine_last_loss(const dsc_engine_t *e) { return e ? dsc__engine_last_loss((dsc_engine_t *)e) : NAN; }
dsc_ctx_t *dsc_engine_ctx(const dsc_engine_t *e) { return e ? e->ctx : NULL; }
const char *dsc_engine_errmsg(const dsc_engine_t *e) { return e ? e->errmsg : "engine is NULL"; }

double dsc_engine_momentum(const dsc_engine_t *e, double *beta2) {
    if (beta2) *beta2 = NAN;
    if (!e || !e->optimizer) return NAN;
    const dsc_optim_params_t *p = dsc_optim_get_params(e->optimizer);
    switch (p->type) {
    case DSC_OPTIM_ADAM:
    case DSC_OPTIM_ADAMW:
    case DSC_OPTIM_LAMB:
    case DSC_OPTIM_LION:
    case DSC_OPTIM_ADAMAX:
        if (beta2) *beta2 = p->beta2;
        return p->beta1;
    case DSC_OPTIM_SGD:
    case DSC_OPTIM_RMSPROP: return p->momentum;
    default: return NAN;
    }
}

void dsc_engine_train(dsc_engine_t *e) {
    if (!e) return;
    e->training = true;
    dsc_ctx_set_training(e->ctx, true);
}

void dsc_engine_eval(dsc_engine_t *e) {
    if (!e) return;
    e->training = false;
    dsc_ctx_set_training(e->ctx, false);
}

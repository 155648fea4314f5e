/* The engine's start-up agreement (dsc/engine.h, dsc_initialize): the fingerprint of what
 * every rank must share, exchanged with dsc_comm_agree before the first data collective.
 * Model first (parameter count, size, each name and shape), then the config values that
 * decide which collectives run and how big they are, then those that decide the update
 * (ranks that disagree there silently train different models). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine_internal.h"

typedef struct fp_list {
    dsc_comm_field_t *fields;
    char **owned; /* "key\0value" per field */
    size_t n, cap;
    bool nomem;
} fp_list_t;

static void fp_add(fp_list_t *l, const char *key, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static void fp_add(fp_list_t *l, const char *key, const char *fmt, ...) {
    if (l->nomem) return;
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 64;
        dsc_comm_field_t *f = realloc(l->fields, cap * sizeof *f);
        if (f) l->fields = f;
        char **o = f ? realloc(l->owned, cap * sizeof *o) : NULL;
        if (o) l->owned = o;
        if (!f || !o) {
            l->nomem = true;
            return;
        }
        l->cap = cap;
    }
    char value[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(value, sizeof value, fmt, ap);
    va_end(ap);
    size_t nk = strlen(key), nv = strlen(value);
    char *s = malloc(nk + nv + 2);
    if (!s) {
        l->nomem = true;
        return;
    }
    memcpy(s, key, nk + 1);
    memcpy(s + nk + 1, value, nv + 1);
    l->owned[l->n] = s;
    l->fields[l->n].key = s;
    l->fields[l->n].value = s + nk + 1;
    l->n++;
}

static void fp_free(fp_list_t *l) {
    for (size_t i = 0; i < l->n; i++) free(l->owned[i]);
    free(l->owned);
    free(l->fields);
}

static void add_model(fp_list_t *l, const dsc_engine_t *e) {
    const int n = dsc_model_param_count(e->model);
    fp_add(l, "model.parameters", "%d tensors", n);
    fp_add(l, "model.numel", "%lld", (long long)e->numel);
    for (int i = 0; i < n; i++) {
        dsc_param_info_t info;
        dsc_model_param_info(e->model, i, &info);
        char key[48], shape[160];
        size_t len = (size_t)snprintf(shape, sizeof shape, "[");
        for (int d = 0; d < info.ndim && len < sizeof shape; d++)
            len += (size_t)snprintf(shape + len, sizeof shape - len, "%s%lld", d ? " x " : "", (long long)info.shape[d]);
        snprintf(key, sizeof key, "model parameter #%d", i + 1);
        fp_add(l, key, "%s %s]", info.name ? info.name : "?", shape);
    }
}

static void add_params(fp_list_t *l, const char *prefix, const dsc_config_params_t *ps) {
    for (size_t i = 0; i < ps->count; i++) {
        const dsc_config_param_t *p = &ps->items[i];
        char key[128];
        snprintf(key, sizeof key, "%s.%s", prefix, p->name ? p->name : "?");
        switch (p->kind) {
        case DSC_CONFIG_PARAM_BOOL: fp_add(l, key, "%s", p->boolean ? "true" : "false"); break;
        case DSC_CONFIG_PARAM_NUMBER: fp_add(l, key, "%.17g", p->number); break;
        case DSC_CONFIG_PARAM_STRING: fp_add(l, key, "\"%s\"", p->string ? p->string : ""); break;
        case DSC_CONFIG_PARAM_LIST: {
            char v[200];
            size_t len = (size_t)snprintf(v, sizeof v, "[");
            for (size_t j = 0; j < p->list_len && len < sizeof v; j++)
                len += (size_t)snprintf(v + len, sizeof v - len, "%s%.17g", j ? ", " : "", p->list[j]);
            fp_add(l, key, "%s]", v);
            break;
        }
        default: fp_add(l, key, "null"); break;
        }
    }
}

static void add_config(fp_list_t *l, const dsc_engine_t *e, const dsc_engine_options_t *o) {
    const dsc_config_t *c = e->config;
    const dsc_config_zero_t *z = &c->zero_optimization;
    /* What decides the collectives and their sizes. */
    fp_add(l, "zero_optimization.stage", "%d", z->stage);
    fp_add(l, "model dtype (fp16/bf16.enabled)", "%s", dsc_dtype_name(e->model_dtype));
    fp_add(l, "gradient accumulation in fp32 (data_types.grad_accum_dtype)", "%s", e->accumulate_fp32 ? "yes" : "no");
    fp_add(l, "train_batch_size", "%d", e->train_batch_size);
    fp_add(l, "train_micro_batch_size_per_gpu", "%d", e->micro_batch_size);
    fp_add(l, "gradient_accumulation_steps", "%d", e->gas);
    fp_add(l, "zero_optimization.reduce_bucket_size", "%lld", (long long)z->reduce_bucket_size);
    fp_add(l, "zero_optimization.allgather_bucket_size", "%lld", (long long)z->allgather_bucket_size);
    fp_add(l, "zero_optimization.overlap_comm", "%d", z->overlap_comm);
    fp_add(l, "zero_optimization.contiguous_gradients", "%d", z->contiguous_gradients);
    fp_add(l, "zero_optimization.reduce_scatter", "%d", z->reduce_scatter);
    fp_add(l, "zero_optimization.stage3_prefetch_bucket_size", "%lld", (long long)z->stage3_prefetch_bucket_size);
    fp_add(l, "zero_optimization.stage3_param_persistence_threshold", "%lld",
           (long long)z->stage3_param_persistence_threshold);
    fp_add(l, "zero_optimization.stage3_model_persistence_threshold", "%lld",
           (long long)z->stage3_model_persistence_threshold);
    fp_add(l, "zero_optimization.stage3_max_live_parameters", "%lld", (long long)z->stage3_max_live_parameters);
    fp_add(l, "zero_optimization.stage3_max_reuse_distance", "%lld", (long long)z->stage3_max_reuse_distance);
    fp_add(l, "zero_optimization.stage3_use_all_reduce_for_fetch_params", "%d",
           z->stage3_use_all_reduce_for_fetch_params);
    fp_add(l, "zero_optimization.stage3_allgather_sequential", "%d", z->stage3_allgather_sequential);
    fp_add(l, "zero_optimization.sub_group_size", "%lld", (long long)z->sub_group_size);
    fp_add(l, "zero_optimization.round_robin_gradients", "%d", z->round_robin_gradients);
    fp_add(l, "activation_checkpointing.partition_activations", "%d",
           c->activation_checkpointing.partition_activations);
    fp_add(l, "activation_checkpointing.number_checkpoints", "%lld",
           c->activation_checkpointing.number_checkpoints.set ? (long long)c->activation_checkpointing.number_checkpoints.value
                                                               : -1LL);
    fp_add(l, "dsc.comm_debug_check (or DSC_COMM_DEBUG)", "%s", dsc_comm_debug_check(e->comm) ? "on" : "off");
    fp_add(l, "dsc.comm_timeout (or --comm-timeout)", "%g s", dsc_comm_timeout(e->comm));
    /* What decides the update (and the overflow / norm reductions). */
    fp_add(l, "gradient_clipping", "%.17g", c->gradient_clipping);
    fp_add(l, "fp16.loss_scale", "%.17g", c->fp16.loss_scale);
    fp_add(l, "fp16.initial_scale_power", "%lld", (long long)c->fp16.initial_scale_power);
    fp_add(l, "fp16.loss_scale_window", "%lld", (long long)c->fp16.loss_scale_window);
    fp_add(l, "fp16.hysteresis", "%lld", (long long)c->fp16.hysteresis);
    fp_add(l, "fp16.min_loss_scale", "%lld", (long long)c->fp16.min_loss_scale);
    fp_add(l, "bf16.check_grad_overflow", "%d", c->bf16.check_grad_overflow);
    if (o->client_optimizer) {
        fp_add(l, "optimizer", "client optimizer (type %d, lr %.17g)", (int)o->client_optimizer->type,
               o->client_optimizer->params.lr);
    } else {
        fp_add(l, "optimizer.type", "%s", c->optimizer.kind == DSC_CONFIG_OPTIM_NONE ? "none" : c->optimizer.type);
        add_params(l, "optimizer.params", &c->optimizer.params);
    }
    if (o->client_lr_scheduler) {
        fp_add(l, "scheduler", "client scheduler");
    } else {
        fp_add(l, "scheduler.type", "%s", c->scheduler.kind == DSC_CONFIG_SCHED_NONE ? "none" : c->scheduler.type);
        add_params(l, "scheduler.params", &c->scheduler.params);
    }
}

dsc_status_t dsc__engine_agree(dsc_engine_t *e, const dsc_engine_options_t *o, dsc_status_t local, bool fingerprint,
                               const char *tag, char *err, size_t errsz) {
    fp_list_t l = {0};
    if (local == DSC_OK && fingerprint) {
        for (size_t i = 0; i < o->n_fingerprint && o->fingerprint; i++)
            fp_add(&l, o->fingerprint[i].key ? o->fingerprint[i].key : "?", "%s",
                   o->fingerprint[i].value ? o->fingerprint[i].value : "(null)");
        add_model(&l, e);
        add_config(&l, e, o);
        if (l.nomem) {
            snprintf(err, errsz, "out of memory building the start-up fingerprint");
            local = DSC_ERR_NOMEM;
        }
    }
    /* A failing rank still joins, so the others stop with its message. */
    dsc_comm_set_tag(e->comm, tag);
    dsc_status_t st = dsc_comm_agree(e->comm, local, err, local == DSC_OK ? l.fields : NULL, local == DSC_OK ? l.n : 0);
    dsc_comm_set_tag(e->comm, NULL);
    fp_free(&l);
    if (st != DSC_OK && local == DSC_OK) snprintf(err, errsz, "%s", dsc_comm_errmsg(e->comm));
    return local != DSC_OK ? local : st;
}

/* After the walk: deprecated keys copied to their replacements, values derived from others
 * (overlap_comm, communication dtype, ...), cross-field validation with DeepSpeed's
 * messages, and dsc_config_check_supported. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/config_internal.h"

/* A position node for a recorded source (errors about keys checked after the walk). */
static cfg_pos_t at_source(const cfg_impl_t *impl, const char *path) {
    cfg_pos_t at = {0};
    const dsc_config_source_t *s = cfg_find_source(impl, path);
    if (s) {
        at.line = s->line;
        at.col = s->col;
    }
    return at;
}

static bool in_file(const cfg_impl_t *impl, const char *path) {
    const dsc_config_source_t *s = cfg_find_source(impl, path);
    return s && s->origin == DSC_CONFIG_FILE;
}

static void where_of(const cfg_parser_t *p, const char *path, char *buf, size_t n) {
    cfg_pos_t at = at_source(p->impl, path);
    if (at.line) snprintf(buf, n, "line %d, column %d", at.line, at.col);
    else snprintf(buf, n, "default");
}

/* ---- deprecated keys ------------------------------------------------------------------------ */

int cfg_parse_zero_deprecated(cfg_parser_t *p, const cfg_key_t *key, json_t *v, const cfg_pos_t *pos,
                              const char *shown) {
    bool b = false;
    if (!json_is_null(v) && cfg_read_bool(p, v, pos, shown, &b) < 0) return -1;
    if (json_is_null(v)) pos = NULL; /* null: as if absent */
    if (strcmp(key->name, "cpu_offload") == 0) {
        p->dep_cpu_offload = pos;
        p->dep_cpu_offload_val = b;
    } else if (strcmp(key->name, "cpu_offload_param") == 0) {
        p->dep_cpu_offload_param = pos;
        p->dep_cpu_offload_param_val = b;
    } else if (strcmp(key->name, "stage3_gather_fp16_weights_on_model_save") == 0) {
        p->dep_gather_fp16 = pos;
        p->dep_gather_fp16_val = b;
    } else if (pos) { /* cpu_offload_use_pin_memory: DeepSpeed sets nothing from it */
        cfg_warn(p, pos, true, shown,
                 "deprecated and has no effect (DeepSpeed ignores it too); set pin_memory inside "
                 "offload_param / offload_optimizer instead");
    }
    return 0;
}

int cfg_parse_zero_legacy_bool(cfg_parser_t *p, const cfg_key_t *key, json_t *v, const cfg_pos_t *pos,
                               const char *shown) {
    (void)key;
    if (!json_is_boolean(v))
        return cfg_fail(p, pos, false, shown, "expected an object (or the deprecated true/false), got %s",
                        dsc__json_kind(v));
    dsc_config_t *cfg = p->cfg;
    cfg->zero_optimization.from_legacy_bool = true;
    cfg->zero_optimization.stage = json_is_true(v) ? 1 : 0;
    p->pos_zero_bool = pos;
    cfg_set_source(p->impl, "zero_optimization.stage", DSC_CONFIG_DERIVED, pos ? pos->line : 0, pos ? pos->col : 0,
                   json_is_true(v) ? "deprecated \"zero_optimization\": true means stage 1"
                                   : "deprecated \"zero_optimization\": false means stage 0");
    cfg_warn(p, pos, true, shown,
             "this format of ZeRO optimization setup is deprecated; write \"zero_optimization\": {\"stage\": %d}",
             cfg->zero_optimization.stage);
    return 0;
}

static int apply_deprecated(cfg_parser_t *p) {
    dsc_config_t *cfg = p->cfg;
    cfg_impl_t *impl = p->impl;
    dsc_config_zero_t *z = &cfg->zero_optimization;
    struct {
        const cfg_pos_t *pos;
        bool val;
        const char *old, *repl, *repl_path;
    } dep[] = {
        {p->dep_cpu_offload, p->dep_cpu_offload_val, "cpu_offload", "offload_optimizer",
         "zero_optimization.offload_optimizer"},
        {p->dep_cpu_offload_param, p->dep_cpu_offload_param_val, "cpu_offload_param", "offload_param",
         "zero_optimization.offload_param"},
        {p->dep_gather_fp16, p->dep_gather_fp16_val, "stage3_gather_fp16_weights_on_model_save",
         "gather_16bit_weights_on_model_save", "zero_optimization.stage3_gather_16bit_weights_on_model_save"},
    };
    for (size_t i = 0; i < sizeof dep / sizeof dep[0]; i++) {
        if (!dep[i].pos) continue;
        char path[CFG_PATH_MAX];
        snprintf(path, sizeof path, "zero_optimization.%s", dep[i].old);
        if (cfg_find_source(impl, dep[i].repl_path))
            return cfg_fail(p, dep[i].pos, true, path,
                            "Cannot provide deprecated parameter '%s' and replacing parameter '%s' together", dep[i].old,
                            dep[i].repl);
        cfg_warn(p, dep[i].pos, true, path, "Config parameter %s is deprecated use %s instead", dep[i].old, dep[i].repl);
        const char *note = cfg_printf(&impl->arena, "from deprecated zero_optimization.%s", dep[i].old);
        const cfg_pos_t *at = dep[i].pos;
        if (i == 2) {
            z->stage3_gather_16bit_weights_on_model_save = dep[i].val;
            cfg_set_source(impl, dep[i].repl_path, DSC_CONFIG_DERIVED, at->line, at->col, note);
        } else if (dep[i].val) { /* true -> {"device": "cpu"}; false -> None */
            char dev[CFG_PATH_MAX];
            snprintf(dev, sizeof dev, "%s.device", dep[i].repl_path);
            if (i == 0) {
                z->offload_optimizer.present = true;
                z->offload_optimizer.device = DSC_CONFIG_OFFLOAD_CPU;
            } else {
                z->offload_param.present = true;
                z->offload_param.device = DSC_CONFIG_OFFLOAD_CPU;
            }
            cfg_set_source(impl, dev, DSC_CONFIG_DERIVED, at->line, at->col, note);
        }
    }
    if (p->pos_bfloat16) {
        cfg->bf16.from_legacy_key = true;
        cfg_warn(p, p->pos_bfloat16, true, "bfloat16", "the section name \"bfloat16\" is deprecated; use \"bf16\"");
    }
    /* allgather_size only feeds the legacy boolean form */
    if (in_file(impl, "allgather_size")) {
        cfg_pos_t at = at_source(impl, "allgather_size");
        if (!(z->from_legacy_bool && z->stage == 1))
            return cfg_fail(p, &at, false, "allgather_size",
                            "only used with the deprecated \"zero_optimization\": true (DeepSpeed ignores it "
                            "otherwise); use zero_optimization.allgather_bucket_size");
    }
    if (z->from_legacy_bool && z->stage == 1) {
        z->allgather_bucket_size = cfg->allgather_size;
        cfg_pos_t at = at_source(impl, "allgather_size");
        if (!at.line && p->pos_zero_bool) at = *p->pos_zero_bool;
        cfg_set_source(impl, "zero_optimization.allgather_bucket_size", DSC_CONFIG_DERIVED, at.line, at.col,
                       "from allgather_size (deprecated boolean zero_optimization)");
    }
    return 0;
}

/* ---- cross-field checks --------------------------------------------------------------------- */

static dsc_config_dtype_t model_dtype(const dsc_config_t *cfg) {
    if (cfg->fp16.enabled) return DSC_CONFIG_DTYPE_FP16;
    if (cfg->bf16.enabled) return DSC_CONFIG_DTYPE_BF16;
    return DSC_CONFIG_DTYPE_FP32;
}

static int check_precision(cfg_parser_t *p) {
    dsc_config_t *cfg = p->cfg;
    cfg_impl_t *impl = p->impl;
    const dsc_config_fp16_t *h = &cfg->fp16;
    if (h->enabled && cfg->bf16.enabled) {
        char w[64];
        where_of(p, "bf16.enabled", w, sizeof w);
        cfg_pos_t at = at_source(impl, "fp16.enabled");
        return cfg_fail(p, &at, false, "fp16.enabled",
                        "bfloat16 and fp16 modes cannot be simultaneously enabled (bf16.enabled is true at %s)", w);
    }
    if (h->enabled && h->loss_scale == 0) { /* dynamic loss scaling: DeepSpeed's validator */
        if (h->loss_scale_window <= 0) {
            cfg_pos_t at = at_source(impl, "fp16.loss_scale_window");
            return cfg_fail(p, &at, false, "fp16.loss_scale_window",
                            "must be > 0 when dynamic loss scaling is enabled (loss_scale=0), got %lld",
                            (long long)h->loss_scale_window);
        }
        if (h->min_loss_scale <= 0) {
            cfg_pos_t at = at_source(impl, "fp16.min_loss_scale");
            return cfg_fail(p, &at, false, "fp16.min_loss_scale",
                            "must be > 0 when dynamic loss scaling is enabled (loss_scale=0), got %lld",
                            (long long)h->min_loss_scale);
        }
        if (h->hysteresis < 1) {
            cfg_pos_t at = at_source(impl, "fp16.hysteresis");
            return cfg_fail(p, &at, false, "fp16.hysteresis",
                            "must be >= 1 when dynamic loss scaling is enabled, got %lld (with %lld the scale could "
                            "never be lowered)",
                            (long long)h->hysteresis, (long long)h->hysteresis);
        }
    }
    int stage = cfg->zero_optimization.stage;
    bool offload = cfg->zero_optimization.offload_optimizer.device != DSC_CONFIG_OFFLOAD_NONE;
    struct {
        bool on;
        const char *path, *name;
    } mw[] = {{h->fp16_master_weights_and_grads, "fp16.fp16_master_weights_and_grads", "Fp16_master_weights_and_grads"},
              {cfg->bf16.bf16_master_weights_and_grads, "bf16.bf16_master_weights_and_grads",
               "Bf16_master_weights_and_grads"},
              {cfg->bf16.bf16_optimizer_states, "bf16.bf16_optimizer_states", "bf16_optimizer_states"}};
    for (size_t i = 0; i < 3; i++) {
        if (!mw[i].on) continue;
        cfg_pos_t at = at_source(impl, mw[i].path);
        if (stage < 1)
            return cfg_fail(p, &at, false, mw[i].path, "%s is only supported with ZeRO Stage 1, 2, or 3.", mw[i].name);
        if (!offload)
            return cfg_fail(p, &at, false, mw[i].path,
                            "requires optimizer offload (zero_optimization.offload_optimizer.device cpu or nvme) with "
                            "DeepSpeedCPUAdam");
    }
    if (cfg->bf16.bf16_optimizer_states && !cfg->bf16.bf16_master_weights_and_grads) {
        cfg_pos_t at = at_source(impl, "bf16.bf16_optimizer_states");
        return cfg_fail(p, &at, false, "bf16.bf16_optimizer_states",
                        "bf16_optimizer_states requires bf16_master_weights_and_grads to be enabled.");
    }
    dsc_config_dtype_t md = model_dtype(cfg);
    dsc_config_data_types_t *dt = &cfg->data_types;
    if (dt->param_dtype != DSC_CONFIG_DTYPE_NONE && dt->param_dtype != md) {
        cfg_pos_t at = at_source(impl, "data_types.param_dtype");
        return cfg_fail(p, &at, false, "data_types.param_dtype",
                        "data_types.param_dtype=%s conflicts with the enabled precision mode (the model dtype is %s: "
                        "fp16.enabled=%s, bf16.enabled=%s)",
                        dsc_config_dtype_name(dt->param_dtype), dsc_config_dtype_name(md),
                        h->enabled ? "true" : "false", cfg->bf16.enabled ? "true" : "false");
    }
    if (dt->grad_accum_dtype != DSC_CONFIG_DTYPE_NONE) {
        dt->grad_accum_dtype_effective = dt->grad_accum_dtype;
    } else {
        dt->grad_accum_dtype_effective = md;
        cfg_set_source(impl, "data_types.grad_accum_dtype_effective", DSC_CONFIG_DEFAULT, 0, 0,
                       "null: the model dtype");
    }
    if (cfg->communication_data_type != DSC_CONFIG_DTYPE_NONE) {
        cfg->communication_data_type_effective = cfg->communication_data_type;
    } else {
        cfg->communication_data_type_effective = md;
        cfg_set_source(impl, "communication_data_type_effective", DSC_CONFIG_DEFAULT, 0, 0,
                       md == DSC_CONFIG_DTYPE_FP16   ? "null: fp16 because fp16.enabled"
                       : md == DSC_CONFIG_DTYPE_BF16 ? "null: bf16 because bf16.enabled"
                                                     : "null: fp32 (neither fp16 nor bf16 enabled)");
    }
    if (cfg->amp.in_use && (h->enabled || cfg->bf16.enabled)) {
        cfg_pos_t at = at_source(impl, "amp");
        return cfg_fail(p, &at, false, "amp", "Apex AMP cannot be combined with fp16 or bf16");
    }
    return 0;
}

static int check_zero(cfg_parser_t *p) {
    dsc_config_t *cfg = p->cfg;
    cfg_impl_t *impl = p->impl;
    dsc_config_zero_t *z = &cfg->zero_optimization;
    const dsc_config_source_t *oc = cfg_find_source(impl, "zero_optimization.overlap_comm");
    if (!oc || oc->note == cfg_note_null) {
        z->overlap_comm = z->stage == 3;
        cfg_set_source(impl, "zero_optimization.overlap_comm", DSC_CONFIG_DEFAULT, 0, 0,
                       z->stage == 3 ? "null: true because stage == 3" : "null: false because stage != 3");
    }
    if (z->legacy_stage1) {
        cfg_pos_t at = at_source(impl, "zero_optimization.legacy_stage1");
        return cfg_fail(p, &at, false, "zero_optimization.legacy_stage1",
                        "The deprecated version of ZeRO Stage 1 is not supported in deepspeed >= 0.5.9");
    }
    if (z->mics_shard_size == 0) {
        cfg_pos_t at = at_source(impl, "zero_optimization.mics_shard_size");
        return cfg_fail(p, &at, false, "zero_optimization.mics_shard_size", "must be -1 (MiCS off) or > 0, got 0");
    }
    const dsc_config_offload_optimizer_t *oo = &z->offload_optimizer;
    if (oo->present && oo->ratio < 1.0 && z->stage != 3) {
        cfg_pos_t at = at_source(impl, "zero_optimization.offload_optimizer.ratio");
        return cfg_fail(p, &at, false, "zero_optimization.offload_optimizer.ratio",
                        "Partial offloading only supported for ZeRO Stage 3. (stage is %d)", z->stage);
    }
    if (oo->device != DSC_CONFIG_OFFLOAD_NONE && z->stage == 0) {
        cfg_pos_t at = at_source(impl, "zero_optimization.offload_optimizer.device");
        return cfg_fail(p, &at, false, "zero_optimization.offload_optimizer.device",
                        "optimizer offload needs ZeRO stage 1, 2 or 3 (DeepSpeed silently ignores it with stage 0)");
    }
    if (z->offload_param.device != DSC_CONFIG_OFFLOAD_NONE && z->stage != 3) {
        cfg_pos_t at = at_source(impl, "zero_optimization.offload_param.device");
        return cfg_fail(p, &at, false, "zero_optimization.offload_param.device",
                        "parameter offload needs ZeRO stage 3 (DeepSpeed silently ignores it with stage %d)", z->stage);
    }
    if (oo->device == DSC_CONFIG_OFFLOAD_NVME && !oo->nvme_path) {
        cfg_pos_t at = at_source(impl, "zero_optimization.offload_optimizer.device");
        return cfg_fail(p, &at, false, "zero_optimization.offload_optimizer.nvme_path",
                        "required when offload_optimizer.device is \"nvme\"");
    }
    if (z->offload_param.device == DSC_CONFIG_OFFLOAD_NVME && !z->offload_param.nvme_path) {
        cfg_pos_t at = at_source(impl, "zero_optimization.offload_param.device");
        return cfg_fail(p, &at, false, "zero_optimization.offload_param.nvme_path",
                        "required when offload_param.device is \"nvme\"");
    }
    if ((z->stage == 1 || z->stage == 2) && z->allgather_bucket_size % 2 != 0) {
        cfg_pos_t at = at_source(impl, "zero_optimization.allgather_bucket_size");
        return cfg_fail(p, &at, false, "zero_optimization.allgather_bucket_size",
                        "allgather_bucket_size must be a multiple of nccl_start_alignment_factor, 2 (got %lld)",
                        (long long)z->allgather_bucket_size);
    }
    bool mean = cfg->gradient_allreduce_op == DSC_CONFIG_ALLREDUCE_MEAN;
    if (z->stage >= 2 && z->reduce_scatter && mean) {
        const char *zs = z->stage == 2 ? "ZeRO-2" : "ZeRO-3";
        if (cfg->gradient_predivide_factor != 1.0) {
            cfg_pos_t at = at_source(impl, "gradient_predivide_factor");
            return cfg_fail(p, &at, false, "gradient_predivide_factor",
                            "gradient_predivide_factor != 1.0 is not yet supported with %s with reduce scatter enabled", zs);
        }
        if (cfg->prescale_gradients) {
            cfg_pos_t at = at_source(impl, "prescale_gradients");
            return cfg_fail(p, &at, false, "prescale_gradients",
                            "pre-scale gradients is not yet supported with %s with reduce scatter enabled", zs);
        }
    }
    if (!mean && z->stage == 3) {
        cfg_pos_t at = at_source(impl, "gradient_allreduce_op");
        return cfg_fail(p, &at, false, "gradient_allreduce_op", "gradient_allreduce_op='sum' is not supported with ZeRO stage 3");
    }
    if (!mean && z->zenflow.present) {
        cfg_pos_t at = at_source(impl, "gradient_allreduce_op");
        return cfg_fail(p, &at, false, "gradient_allreduce_op", "gradient_allreduce_op='sum' is not supported with ZenFlow");
    }
    if (!cfg->managed_gradient_accumulation) {
        cfg_pos_t at = at_source(impl, "managed_gradient_accumulation");
        if (z->overlap_comm && z->stage <= 1)
            return cfg_fail(p, &at, false, "managed_gradient_accumulation",
                            "false is not allowed with zero_optimization.overlap_comm on ZeRO stage %d", z->stage);
        if (cfg->pipeline.in_use || cfg->amp.in_use)
            return cfg_fail(p, &at, false, "managed_gradient_accumulation",
                            "false is not allowed with pipeline parallelism or Apex AMP");
    }
    if (cfg->amp.in_use && z->stage > 0) {
        cfg_pos_t at = at_source(impl, "amp");
        return cfg_fail(p, &at, false, "amp", "Amp and ZeRO are not currently compatible");
    }
    if (z->elastic_checkpoint && z->stage == 3) {
        cfg_pos_t at = at_source(impl, "zero_optimization.elastic_checkpoint");
        cfg_warn(p, &at, false, "zero_optimization.elastic_checkpoint",
                 "ZeRO-3 elastic checkpointing is deprecated and no longer supported. Use Universal Checkpointing instead.");
    }
    return 0;
}

static int check_misc(cfg_parser_t *p) {
    dsc_config_t *cfg = p->cfg;
    cfg_impl_t *impl = p->impl;
    const dsc_config_activation_checkpointing_t *ac = &cfg->activation_checkpointing;
    if (ac->contiguous_memory_optimization) {
        cfg_pos_t at = at_source(impl, "activation_checkpointing.contiguous_memory_optimization");
        if (!ac->partition_activations)
            return cfg_fail(p, &at, false, "activation_checkpointing.contiguous_memory_optimization",
                            "Contiguous Memory Checkpointing is only available with partitioned activations. Set "
                            "activation_checkpointing.partition_activations to true");
        if (!ac->number_checkpoints.set)
            return cfg_fail(p, &at, false, "activation_checkpointing.contiguous_memory_optimization",
                            "Must specify the number of layers with contiguous memory checkpointing "
                            "(activation_checkpointing.number_checkpoints)");
    }
    if (cfg->flops_profiler.enabled && !cfg->wall_clock_breakdown) {
        cfg->wall_clock_breakdown = true;
        cfg_pos_t at = at_source(impl, "flops_profiler.enabled");
        cfg_set_source(impl, "wall_clock_breakdown", DSC_CONFIG_DERIVED, at.line, at.col,
                       "forced true by flops_profiler.enabled");
    }
    if (cfg->vocabulary_size.set && cfg->vocabulary_size.value % 8 != 0) {
        cfg_pos_t at = at_source(impl, "vocabulary_size");
        cfg_warn(p, &at, false, "vocabulary_size", "vocabulary size %lld is not aligned to 8, may hurt tensor core utilization",
                 (long long)cfg->vocabulary_size.value);
    }
    if (cfg->log_level) {
        static const char *const levels[] = {"debug", "info", "warning", "warn", "error", "critical", "fatal", "notset", NULL};
        bool ok = false;
        for (size_t i = 0; levels[i]; i++) ok = ok || strcasecmp(cfg->log_level, levels[i]) == 0;
        if (!ok) {
            cfg_pos_t at = at_source(impl, "log_level");
            return cfg_fail(p, &at, false, "log_level",
                            "invalid value \"%s\"; expected a Python logging level: debug, info, warning, error, critical",
                            cfg->log_level);
        }
    }
    return 0;
}

int cfg_finish(cfg_parser_t *p) {
    if (apply_deprecated(p) < 0 || check_precision(p) < 0 || check_zero(p) < 0 || cfg_finish_optimizer(p) < 0 ||
        check_misc(p) < 0)
        return -1;
    return 0;
}

/* ---- dsc_config_check_supported --------------------------------------------------------------- */

typedef struct support_ctx {
    const dsc_config_t *cfg;
    const dsc_config_support_t *support;
    char *err;
    size_t errsz;
    int n_bad;
    char first[1024];
    char others[512];
} support_ctx_t;

/* The value as written in support entries: JSON without quotes. */
static void bare_value(const char *json, char *buf, size_t n) {
    size_t len = strlen(json);
    if (len >= 2 && json[0] == '"' && json[len - 1] == '"') snprintf(buf, n, "%.*s", (int)(len - 2), json + 1);
    else snprintf(buf, n, "%s", json);
}

/* 0: not listed; 1: listed for any value (or this value); -1: listed for other values only
 * (then `accepted` lists them). */
static int listed(const dsc_config_support_t *s, const char *path, const char *value, char *accepted, size_t n) {
    int result = 0;
    size_t used = 0;
    accepted[0] = '\0';
    if (!s || !s->keys) return 0;
    size_t lp = strlen(path);
    for (size_t i = 0; s->keys[i]; i++) {
        const char *e = s->keys[i];
        size_t le = strlen(e);
        if (le >= 2 && strcmp(e + le - 2, ".*") == 0) { /* a subtree */
            if (lp > le - 2 && strncmp(path, e, le - 2) == 0 && path[le - 2] == '.') return 1;
            continue;
        }
        const char *eq = strchr(e, '=');
        size_t lk = eq ? (size_t)(eq - e) : le;
        if (lk != lp || strncmp(e, path, lp) != 0) continue;
        if (!eq) return 1;
        if (strcmp(eq + 1, value) == 0) return 1;
        result = -1;
        if (used < n) used += (size_t)snprintf(accepted + used, n - used, "%s%s", used ? ", " : "", eq + 1);
    }
    return result;
}

static void report(support_ctx_t *c, const char *path, const char *json_value, dsc_config_source_t src) {
    char value[256], accepted[256], where[CFG_PATH_MAX + 64];
    bare_value(json_value, value, sizeof value);
    int l = listed(c->support, path, value, accepted, sizeof accepted);
    if (l == 1) return;
    c->n_bad++;
    if (c->n_bad == 1) {
        cfg_format_where(c->cfg, src.line, src.col, where, sizeof where);
        const char *engine = c->support && c->support->engine_name ? c->support->engine_name : "dsc";
        if (l == -1)
            snprintf(c->first, sizeof c->first, "%s: %s: %s is not supported yet by %s (accepted: %s)", where, path,
                     json_value, engine, accepted);
        else
            snprintf(c->first, sizeof c->first,
                     "%s: %s is not supported yet by %s (set to %s%s%s; only the default is accepted)", where, path,
                     engine, json_value, src.origin == DSC_CONFIG_DERIVED && src.note ? ", " : "",
                     src.origin == DSC_CONFIG_DERIVED && src.note ? src.note : "");
    } else {
        size_t used = strlen(c->others);
        if (used + strlen(path) + 4 < sizeof c->others)
            snprintf(c->others + used, sizeof c->others - used, "%s%s", used ? ", " : "", path);
    }
}

static void check_table(support_ctx_t *c, const cfg_table_t *t, const char *base) {
    const cfg_impl_t *impl = cfg_impl(c->cfg);
    for (size_t i = 0; i < t->n_keys; i++) {
        const cfg_key_t *k = &t->keys[i];
        if (k->canon || k->type == CT_CUSTOM) continue;
        char path[CFG_PATH_MAX];
        cfg_path_join(path, sizeof path, base, k->name);
        if (k->type == CT_OBJECT) {
            check_table(c, k->child, path);
            continue;
        }
        const dsc_config_source_t *s = cfg_find_source(impl, path);
        if (!s || s->origin == DSC_CONFIG_DEFAULT) continue; /* not set by the config */
        if (cfg_key_is_default(c->cfg, k)) continue;
        if (strcmp(path, "zero_optimization.overlap_comm") == 0 &&
            c->cfg->zero_optimization.overlap_comm == (c->cfg->zero_optimization.stage == 3))
            continue; /* equal to its stage-dependent default */
        char value[512];
        cfg_format_key_value(c->cfg, k, value, sizeof value);
        report(c, path, value, *s);
    }
}

static void check_params(support_ctx_t *c, const char *section, const char *type, const dsc_config_params_t *ps,
                         bool scheduler) {
    if (!type) return;
    const cfg_impl_t *impl = cfg_impl(c->cfg);
    char path[CFG_PATH_MAX], value[256];
    snprintf(path, sizeof path, "%s.type", section);
    snprintf(value, sizeof value, "\"%s\"", type);
    report(c, path, value, cfg_source_of(impl, path));
    for (size_t i = 0; i < ps->count; i++) {
        const dsc_config_param_t *q = &ps->items[i];
        if (cfg_param_is_default(c->cfg, scheduler, q)) continue;
        snprintf(path, sizeof path, "%s.params.%s", section, q->name);
        cfg_format_param(q, value, sizeof value);
        report(c, path, value, q->source);
    }
}

dsc_status_t dsc_config_check_supported(const dsc_config_t *cfg, const dsc_config_support_t *support, char *err,
                                        size_t errsz) {
    if (err && errsz) err[0] = '\0';
    if (!cfg) {
        cfg_set_err(err, errsz, "dsc_config_check_supported: NULL config");
        return DSC_ERR_INVALID;
    }
    support_ctx_t c = {.cfg = cfg, .support = support, .err = err, .errsz = errsz};
    check_table(&c, &cfg_top_table, "");
    const cfg_impl_t *impl = cfg_impl(cfg);
    if (cfg->optimizer.kind != DSC_CONFIG_OPTIM_NONE) {
        check_params(&c, "optimizer", cfg->optimizer.type, &cfg->optimizer.params, false);
        if (cfg->optimizer.legacy_fusion)
            report(&c, "optimizer.legacy_fusion", "true", cfg_source_of(impl, "optimizer.legacy_fusion"));
    }
    if (cfg->scheduler.kind != DSC_CONFIG_SCHED_NONE)
        check_params(&c, "scheduler", cfg->scheduler.type, &cfg->scheduler.params, true);
    if (c.n_bad == 0) return DSC_OK;
    if (c.n_bad == 1) cfg_set_err(err, errsz, "%s", c.first);
    else cfg_set_err(err, errsz, "%s; and %d more unsupported key%s: %s", c.first, c.n_bad - 1, c.n_bad > 2 ? "s" : "", c.others);
    return DSC_ERR_UNSUPPORTED;
}

/* Batch-size resolution (spec 1.2): DeepSpeed's _set_batch_related_parameters followed by
 * _batch_assertion, with its messages, plus where each value came from. */
#include <stdio.h>
#include <string.h>

#include "config/config_internal.h"

static void describe(const cfg_impl_t *impl, const char *name, dsc_config_opt_int_t v, const char *derived_note,
                     char *buf, size_t n) {
    if (!v.set) {
        snprintf(buf, n, "%s not given", name);
        return;
    }
    if (derived_note) {
        snprintf(buf, n, "%s=%lld derived: %s", name, (long long)v.value, derived_note);
        return;
    }
    dsc_config_source_t s = cfg_source_of(impl, name);
    char where[CFG_PATH_MAX + 64];
    cfg_format_where(&impl->pub, s.line, s.col, where, sizeof where);
    snprintf(buf, n, "%s=%lld from %s", name, (long long)v.value, where);
}

static dsc_status_t fail(cfg_impl_t *impl, char *err, size_t errsz, const char *head, dsc_config_opt_int_t tb,
                         const char *ntb, dsc_config_opt_int_t mb, const char *nmb, dsc_config_opt_int_t gas,
                         const char *ngas, int64_t ws, int64_t sp, const char *origin) {
    char a[1024], b[1024], c[1024], w[256];
    describe(impl, "train_batch_size", tb, ntb, a, sizeof a);
    describe(impl, "train_micro_batch_size_per_gpu", mb, nmb, b, sizeof b);
    describe(impl, "gradient_accumulation_steps", gas, ngas, c, sizeof c);
    if (sp > 1)
        snprintf(w, sizeof w, "world_size=%lld: %lld ranks (%s) / sequence_parallel_size %lld", (long long)(ws / sp),
                 (long long)ws, origin, (long long)sp);
    else snprintf(w, sizeof w, "world_size=%lld: %s", (long long)ws, origin);
    cfg_set_err(err, errsz, "%s: %s (%s; %s; %s; %s)", impl->pub.source_name, head, a, b, c, w);
    /* leave the three values as the file gave them */
    dsc_config_t *cfg = &impl->pub;
    cfg->train_batch_size = impl->given_tb;
    cfg->train_micro_batch_size_per_gpu = impl->given_mb;
    cfg->gradient_accumulation_steps = impl->given_gas;
    if (!impl->given_tb.set) cfg_set_source(impl, "train_batch_size", DSC_CONFIG_DEFAULT, 0, 0, NULL);
    if (!impl->given_mb.set) cfg_set_source(impl, "train_micro_batch_size_per_gpu", DSC_CONFIG_DEFAULT, 0, 0, NULL);
    if (!impl->given_gas.set) cfg_set_source(impl, "gradient_accumulation_steps", DSC_CONFIG_DEFAULT, 0, 0, NULL);
    cfg->batch_resolved = false;
    cfg->world_size = 0;
    cfg->data_parallel_size = 0;
    return DSC_ERR_CONFIG;
}

dsc_status_t cfg_resolve_batch(cfg_impl_t *impl, int64_t world_size, const char *origin, char *err, size_t errsz) {
    dsc_config_t *cfg = &impl->pub;
    if (!origin) origin = "data-parallel ranks given by the caller";
    if (world_size <= 0) {
        cfg_set_err(err, errsz, "%s: world size must be > 0, got %lld (%s)", cfg->source_name, (long long)world_size,
                    origin);
        return DSC_ERR_INVALID;
    }
    if (cfg->elasticity.in_use) {
        dsc_config_source_t s = cfg_source_of(impl, "elasticity");
        char where[CFG_PATH_MAX + 64];
        cfg_format_where(cfg, s.line, s.col, where, sizeof where);
        cfg_set_err(err, errsz,
                    "%s: elasticity: elastic batch sizing (which overrides train_batch_size, "
                    "train_micro_batch_size_per_gpu and gradient_accumulation_steps) is not supported yet by dsc",
                    where);
        return DSC_ERR_UNSUPPORTED;
    }
    int64_t sp = cfg->sequence_parallel_size.set ? cfg->sequence_parallel_size.value : 1;
    if (world_size % sp != 0) {
        dsc_config_source_t s = cfg_source_of(impl, "sequence_parallel_size");
        char where[CFG_PATH_MAX + 64];
        cfg_format_where(cfg, s.line, s.col, where, sizeof where);
        cfg_set_err(err, errsz, "%s: sequence_parallel_size: the world size %lld (%s) is not divisible by %lld", where,
                    (long long)world_size, origin, (long long)sp);
        return DSC_ERR_CONFIG;
    }
    int64_t ws = world_size / sp; /* DeepSpeed's self.world_size: the data-parallel size */
    if (!cfg->batch_resolved) {
        /* values set in code since the parse count as given; after a resolution the fields
         * hold derived values, so the ones the file gave are used */
        impl->given_tb = cfg->train_batch_size;
        impl->given_mb = cfg->train_micro_batch_size_per_gpu;
        impl->given_gas = cfg->gradient_accumulation_steps;
    }
    dsc_config_opt_int_t tb = impl->given_tb, mb = impl->given_mb, gas = impl->given_gas;
    const char *bad = !(!tb.set || tb.value > 0) ? "train_batch_size"
                      : !(!mb.set || mb.value > 0) ? "train_micro_batch_size_per_gpu"
                      : !(!gas.set || gas.value > 0) ? "gradient_accumulation_steps"
                                                     : NULL;
    if (bad) { /* only possible for values set in code: the parser checks > 0 */
        cfg_set_err(err, errsz, "%s: %s: must be > 0", cfg->source_name, bad);
        return DSC_ERR_CONFIG;
    }
    const char *ntb = NULL, *nmb = NULL, *ngas = NULL;
    cfg_arena_t *a = &impl->arena;
    const char *wsn = sp > 1 ? "data_parallel_size" : "world_size";
    if (tb.set && mb.set && gas.set) {
        /* all given: nothing to derive, only checked */
    } else if (tb.set && mb.set) {
        gas = (dsc_config_opt_int_t){true, (tb.value / mb.value) / ws};
        ngas = cfg_printf(a, "(train_batch_size // train_micro_batch_size_per_gpu) // %s = (%lld // %lld) // %lld", wsn,
                          (long long)tb.value, (long long)mb.value, (long long)ws);
    } else if (tb.set && gas.set) {
        mb = (dsc_config_opt_int_t){true, (tb.value / ws) / gas.value};
        nmb = cfg_printf(a, "(train_batch_size // %s) // gradient_accumulation_steps = (%lld // %lld) // %lld", wsn,
                         (long long)tb.value, (long long)ws, (long long)gas.value);
    } else if (mb.set && gas.set) {
        int64_t t1, t2;
        if (__builtin_mul_overflow(mb.value, gas.value, &t1) || __builtin_mul_overflow(t1, ws, &t2))
            return fail(impl, err, errsz, "train_micro_batch_size_per_gpu * gradient_accumulation_steps * world_size "
                        "overflows a 64-bit integer", tb, NULL, mb, NULL, gas, NULL, world_size, sp, origin);
        tb = (dsc_config_opt_int_t){true, t2};
        ntb = cfg_printf(a, "train_micro_batch_size_per_gpu * gradient_accumulation_steps * %s = %lld * %lld * %lld",
                         wsn, (long long)mb.value, (long long)gas.value, (long long)ws);
    } else if (tb.set) {
        gas = (dsc_config_opt_int_t){true, 1};
        ngas = "1 (only train_batch_size given)";
        mb = (dsc_config_opt_int_t){true, tb.value / ws};
        nmb = cfg_printf(a, "train_batch_size // %s = %lld // %lld", wsn, (long long)tb.value, (long long)ws);
    } else if (mb.set) {
        int64_t t;
        if (__builtin_mul_overflow(mb.value, ws, &t))
            return fail(impl, err, errsz, "train_micro_batch_size_per_gpu * world_size overflows a 64-bit integer", tb,
                        NULL, mb, NULL, gas, NULL, world_size, sp, origin);
        tb = (dsc_config_opt_int_t){true, t};
        ntb = cfg_printf(a, "train_micro_batch_size_per_gpu * %s = %lld * %lld", wsn, (long long)mb.value, (long long)ws);
        gas = (dsc_config_opt_int_t){true, 1};
        ngas = "1 (only train_micro_batch_size_per_gpu given)";
    } else {
        return fail(impl, err, errsz, "Either train_batch_size or train_micro_batch_size_per_gpu needs to be provided",
                    tb, NULL, mb, NULL, gas, NULL, world_size, sp, origin);
    }
    if (a->failed) {
        cfg_set_err(err, errsz, "%s: out of memory", cfg->source_name);
        return DSC_ERR_NOMEM;
    }
    char head[512];
    if (tb.value <= 0) {
        snprintf(head, sizeof head, "Train batch size: %lld has to be greater than 0", (long long)tb.value);
        return fail(impl, err, errsz, head, tb, ntb, mb, nmb, gas, ngas, world_size, sp, origin);
    }
    if (mb.value <= 0) {
        snprintf(head, sizeof head, "Micro batch size per gpu: %lld has to be greater than 0", (long long)mb.value);
        return fail(impl, err, errsz, head, tb, ntb, mb, nmb, gas, ngas, world_size, sp, origin);
    }
    if (gas.value <= 0) {
        snprintf(head, sizeof head, "Gradient accumulation steps: %lld has to be greater than 0", (long long)gas.value);
        return fail(impl, err, errsz, head, tb, ntb, mb, nmb, gas, ngas, world_size, sp, origin);
    }
    int64_t prod1, prod;
    bool overflow = __builtin_mul_overflow(mb.value, gas.value, &prod1) || __builtin_mul_overflow(prod1, ws, &prod);
    if (overflow || tb.value != prod) {
        snprintf(head, sizeof head,
                 "Check batch related parameters. train_batch_size is not equal to micro_batch_per_gpu * "
                 "gradient_acc_step * world_size %lld != %lld * %lld * %lld",
                 (long long)tb.value, (long long)mb.value, (long long)gas.value, (long long)ws);
        return fail(impl, err, errsz, head, tb, ntb, mb, nmb, gas, ngas, world_size, sp, origin);
    }
    cfg->train_batch_size = tb;
    cfg->train_micro_batch_size_per_gpu = mb;
    cfg->gradient_accumulation_steps = gas;
    if (ntb) cfg_set_source(impl, "train_batch_size", DSC_CONFIG_DERIVED, 0, 0, ntb);
    if (nmb) cfg_set_source(impl, "train_micro_batch_size_per_gpu", DSC_CONFIG_DERIVED, 0, 0, nmb);
    if (ngas) cfg_set_source(impl, "gradient_accumulation_steps", DSC_CONFIG_DERIVED, 0, 0, ngas);
    cfg->batch_resolved = true;
    cfg->world_size = world_size;
    cfg->data_parallel_size = ws;
    impl->world_size_origin = cfg_strdup(a, origin);
    if (a->failed) {
        cfg_set_err(err, errsz, "%s: out of memory", cfg->source_name);
        return DSC_ERR_NOMEM;
    }
    return DSC_OK;
}

dsc_status_t dsc_config_resolve_batch_from(dsc_config_t *cfg, int64_t world_size, const char *world_size_origin,
                                           char *err, size_t errsz) {
    if (err && errsz) err[0] = '\0';
    if (!cfg) {
        cfg_set_err(err, errsz, "dsc_config_resolve_batch: NULL config");
        return DSC_ERR_INVALID;
    }
    return cfg_resolve_batch(cfg_impl(cfg), world_size, world_size_origin, err, errsz);
}

dsc_status_t dsc_config_resolve_batch(dsc_config_t *cfg, int64_t world_size, char *err, size_t errsz) {
    return dsc_config_resolve_batch_from(cfg, world_size, NULL, err, errsz);
}

/* Printing the effective config with the source of every value, dsc_config_get and the
 * formatting of sources. */
#include <stdio.h>
#include <string.h>

#include "config/config_internal.h"

#define COMMENT_COL 60

void dsc_config_source_format(const dsc_config_t *cfg, const dsc_config_source_t *src, char *buf, size_t bufsz) {
    if (!buf || !bufsz) return;
    if (!src) {
        snprintf(buf, bufsz, "default");
        return;
    }
    char where[CFG_PATH_MAX + 64];
    switch (src->origin) {
    case DSC_CONFIG_FILE: /* line 0 with a note: set by a front end (dsc_config_override_t) */
        if (src->line <= 0 && src->note) snprintf(buf, bufsz, "%s", src->note);
        else cfg_format_where(cfg, src->line, src->col, buf, bufsz);
        break;
    case DSC_CONFIG_DERIVED:
        if (src->line > 0) {
            cfg_format_where(cfg, src->line, src->col, where, sizeof where);
            snprintf(buf, bufsz, "derived: %s (%s)", src->note ? src->note : "", where);
        } else {
            snprintf(buf, bufsz, "derived: %s", src->note ? src->note : "");
        }
        break;
    default:
        if (src->note) snprintf(buf, bufsz, "default (%s)", src->note);
        else snprintf(buf, bufsz, "default");
        break;
    }
}

/* ---- dsc_config_get ------------------------------------------------------------------------- */

static dsc_status_t get_params(const dsc_config_t *cfg, const char *rest, const char *section, const char *type,
                               const dsc_config_params_t *ps, char *buf, size_t bufsz, dsc_config_source_t *src) {
    const cfg_impl_t *impl = cfg_impl(cfg);
    char tmp[1024];
    dsc_config_source_t s = {DSC_CONFIG_DEFAULT, 0, 0, NULL};
    char path[CFG_PATH_MAX];
    if (strcmp(rest, "type") == 0) {
        if (type) snprintf(tmp, sizeof tmp, "\"%s\"", type);
        else snprintf(tmp, sizeof tmp, "null");
        snprintf(path, sizeof path, "%s.type", section);
        s = cfg_source_of(impl, path);
    } else if (strcmp(section, "optimizer") == 0 && strcmp(rest, "legacy_fusion") == 0) {
        snprintf(tmp, sizeof tmp, "%s", cfg->optimizer.legacy_fusion ? "true" : "false");
        s = cfg_source_of(impl, "optimizer.legacy_fusion");
    } else if (strcmp(section, "optimizer") == 0 && strcmp(rest, "implementation") == 0) {
        if (cfg->optimizer.implementation) snprintf(tmp, sizeof tmp, "\"%s\"", cfg->optimizer.implementation);
        else snprintf(tmp, sizeof tmp, "null");
        s = (dsc_config_source_t){DSC_CONFIG_DERIVED, 0, 0, "the class DeepSpeed would build"};
    } else if (strncmp(rest, "params.", 7) == 0) {
        const dsc_config_param_t *q = dsc_config_param_find(ps, rest + 7);
        if (!q) return DSC_ERR_INVALID;
        cfg_format_param(q, tmp, sizeof tmp);
        s = q->source;
    } else {
        return DSC_ERR_INVALID;
    }
    if (buf && bufsz) snprintf(buf, bufsz, "%s", tmp);
    if (src) *src = s;
    return DSC_OK;
}

dsc_status_t dsc_config_get(const dsc_config_t *cfg, const char *key_path, char *buf, size_t bufsz,
                            dsc_config_source_t *src) {
    if (buf && bufsz) buf[0] = '\0';
    if (!cfg || !key_path) return DSC_ERR_INVALID;
    if (strncmp(key_path, "optimizer.", 10) == 0)
        return get_params(cfg, key_path + 10, "optimizer", cfg->optimizer.type, &cfg->optimizer.params, buf, bufsz, src);
    if (strncmp(key_path, "scheduler.", 10) == 0)
        return get_params(cfg, key_path + 10, "scheduler", cfg->scheduler.type, &cfg->scheduler.params, buf, bufsz, src);
    char canon[CFG_PATH_MAX];
    const cfg_key_t *k = cfg_lookup_path(key_path, canon, sizeof canon);
    if (!k || k->type == CT_OBJECT || k->type == CT_CUSTOM) return DSC_ERR_INVALID;
    if (buf && bufsz) cfg_format_key_value(cfg, k, buf, bufsz);
    if (src) *src = cfg_source_of(cfg_impl(cfg), canon);
    return DSC_OK;
}

/* ---- printing ---------------------------------------------------------------------------------- */

typedef struct printer {
    const dsc_config_t *cfg;
    FILE *out;
    bool failed;
} printer_t;

static void line(printer_t *pr, int indent, const char *name, const char *value, bool last, const char *comment) {
    int n;
    if (name) n = fprintf(pr->out, "%*s\"%s\": %s%s", indent * 2, "", name, value, last ? "" : ",");
    else n = fprintf(pr->out, "%*s%s%s", indent * 2, "", value, last ? "" : ",");
    if (n < 0) pr->failed = true;
    if (comment && *comment) {
        int pad = n >= 0 && n < COMMENT_COL ? COMMENT_COL - n : 1;
        if (fprintf(pr->out, "%*s// %s\n", pad, "", comment) < 0) pr->failed = true;
    } else if (fputc('\n', pr->out) == EOF) {
        pr->failed = true;
    }
}

static bool printable(const cfg_key_t *k) { return !(k->flags & CF_NOPRINT) && !k->canon; }

static void print_params(printer_t *pr, int indent, const dsc_config_params_t *ps) {
    char value[1024], src[CFG_PATH_MAX + 256];
    for (size_t i = 0; i < ps->count; i++) {
        const dsc_config_param_t *q = &ps->items[i];
        cfg_format_param(q, value, sizeof value);
        dsc_config_source_format(pr->cfg, &q->source, src, sizeof src);
        line(pr, indent, q->name, value, i + 1 == ps->count, src);
    }
}

static void print_optimizer(printer_t *pr, int indent, bool last) {
    const dsc_config_t *cfg = pr->cfg;
    const cfg_impl_t *impl = cfg_impl(cfg);
    char src[CFG_PATH_MAX + 256], value[256];
    if (cfg->optimizer.kind == DSC_CONFIG_OPTIM_NONE) {
        line(pr, indent, "optimizer", "null", last, "default (no optimizer from the config)");
        return;
    }
    line(pr, indent, "optimizer", "{", true, NULL);
    dsc_config_source_t s = cfg_source_of(impl, "optimizer.type");
    dsc_config_source_format(cfg, &s, src, sizeof src);
    char comment[CFG_PATH_MAX + 512];
    snprintf(comment, sizeof comment, "%s; DeepSpeed builds %s", src, cfg->optimizer.implementation);
    snprintf(value, sizeof value, "\"%s\"", cfg->optimizer.type);
    line(pr, indent + 1, "type", value, false, comment);
    s = cfg_source_of(impl, "optimizer.legacy_fusion");
    dsc_config_source_format(cfg, &s, src, sizeof src);
    line(pr, indent + 1, "legacy_fusion", cfg->optimizer.legacy_fusion ? "true" : "false", false, src);
    line(pr, indent + 1, "params", "{", true, NULL);
    print_params(pr, indent + 2, &cfg->optimizer.params);
    line(pr, indent + 1, NULL, "}", true, NULL);
    line(pr, indent, NULL, "}", last, NULL);
}

static void print_scheduler(printer_t *pr, int indent, bool last) {
    const dsc_config_t *cfg = pr->cfg;
    char src[CFG_PATH_MAX + 256], value[256];
    if (cfg->scheduler.kind == DSC_CONFIG_SCHED_NONE) {
        line(pr, indent, "scheduler", "null", last, "default (no scheduler from the config)");
        return;
    }
    line(pr, indent, "scheduler", "{", true, NULL);
    dsc_config_source_t s = cfg_source_of(cfg_impl(cfg), "scheduler.type");
    dsc_config_source_format(cfg, &s, src, sizeof src);
    snprintf(value, sizeof value, "\"%s\"", cfg->scheduler.type);
    line(pr, indent + 1, "type", value, false, src);
    line(pr, indent + 1, "params", "{", true, NULL);
    print_params(pr, indent + 2, &cfg->scheduler.params);
    line(pr, indent + 1, NULL, "}", true, NULL);
    line(pr, indent, NULL, "}", last, NULL);
}

static void print_table(printer_t *pr, const cfg_table_t *t, const char *base, int indent) {
    const dsc_config_t *cfg = pr->cfg;
    const cfg_impl_t *impl = cfg_impl(cfg);
    size_t n_print = 0;
    for (size_t i = 0; i < t->n_keys; i++) n_print += printable(&t->keys[i]);
    size_t done = 0;
    for (size_t i = 0; i < t->n_keys; i++) {
        const cfg_key_t *k = &t->keys[i];
        if (!printable(k)) continue;
        bool last = ++done == n_print;
        char path[CFG_PATH_MAX];
        cfg_path_join(path, sizeof path, base, k->name);
        if (k->type == CT_CUSTOM) {
            if (strcmp(k->name, "optimizer") == 0) print_optimizer(pr, indent, last);
            else if (strcmp(k->name, "scheduler") == 0) print_scheduler(pr, indent, last);
            continue;
        }
        if (k->type == CT_OBJECT) {
            line(pr, indent, k->name, "{", true, NULL);
            print_table(pr, k->child, path, indent + 1);
            line(pr, indent, NULL, "}", last, NULL);
            continue;
        }
        char value[8192], src[CFG_PATH_MAX + 512];
        cfg_format_key_value(cfg, k, value, sizeof value);
        const char *shown = value;
        if (k->type == CT_SECTION) { /* may be long: printed whole */
            const dsc_config_section_t *sec = (const dsc_config_section_t *)((const char *)cfg + k->off);
            if (sec->present && sec->json) shown = sec->json;
        }
        dsc_config_source_t s = cfg_source_of(impl, path);
        dsc_config_source_format(cfg, &s, src, sizeof src);
        bool batch = strcmp(path, "train_batch_size") == 0 || strcmp(path, "train_micro_batch_size_per_gpu") == 0 ||
                     strcmp(path, "gradient_accumulation_steps") == 0;
        if (batch && !cfg->batch_resolved && s.origin == DSC_CONFIG_DEFAULT)
            snprintf(src, sizeof src, "not given; derived once the world size is known (dsc_config_resolve_batch)");
        const char *extra = NULL;
        if (strcmp(path, "communication_data_type") == 0 && cfg->communication_data_type == DSC_CONFIG_DTYPE_NONE)
            extra = "communication_data_type_effective";
        if (strcmp(path, "data_types.grad_accum_dtype") == 0 && cfg->data_types.grad_accum_dtype == DSC_CONFIG_DTYPE_NONE)
            extra = "data_types.grad_accum_dtype_effective";
        if (extra) {
            dsc_config_source_t e = cfg_source_of(impl, extra);
            dsc_config_dtype_t d = strcmp(extra, "communication_data_type_effective") == 0
                                       ? cfg->communication_data_type_effective
                                       : cfg->data_types.grad_accum_dtype_effective;
            size_t used = strlen(src);
            snprintf(src + used, sizeof src - used, "; effective %s (%s)", dsc_config_dtype_name(d),
                     e.note ? e.note : "given");
        }
        line(pr, indent, k->name, shown, last, src);
    }
}

dsc_status_t dsc_config_print(const dsc_config_t *cfg, FILE *out) {
    if (!cfg || !out) return DSC_ERR_INVALID;
    printer_t pr = {cfg, out, false};
    const cfg_impl_t *impl = cfg_impl(cfg);
    if (fprintf(out, "// effective dsc config from %s (DeepSpeed %s semantics)\n", cfg->source_name,
                DSC_CONFIG_DEEPSPEED_VERSION) < 0)
        pr.failed = true;
    if (cfg->batch_resolved) {
        if (cfg->data_parallel_size != cfg->world_size)
            fprintf(out, "// world size %lld (%s), data-parallel size %lld\n", (long long)cfg->world_size,
                    impl->world_size_origin ? impl->world_size_origin : "given", (long long)cfg->data_parallel_size);
        else
            fprintf(out, "// world size %lld (%s)\n", (long long)cfg->world_size,
                    impl->world_size_origin ? impl->world_size_origin : "given");
    } else {
        fprintf(out, "// world size not known yet: batch sizes not resolved\n");
    }
    for (size_t i = 0; i < cfg->n_warnings; i++) fprintf(out, "// warning: %s\n", cfg->warnings[i]);
    line(&pr, 0, NULL, "{", true, NULL);
    print_table(&pr, &cfg_top_table, "", 1);
    line(&pr, 0, NULL, "}", true, NULL);
    if (fflush(out) != 0 || ferror(out)) pr.failed = true;
    return pr.failed ? DSC_ERR_IO : DSC_OK;
}

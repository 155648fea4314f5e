/* Optimizer and scheduler parameters: reading a "params" object against the keyword
 * table of the chosen class (types, ranges, "auto", required keys), the effective list of
 * every parameter with its source, and formatting and comparing parameter values. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/config_internal.h"

/* ---- parameters --------------------------------------------------------------------------------- */

const cfg_prm_t *cfg_prm_find(const cfg_prm_t *t, const char *name) {
    for (; t->name; t++)
        if (strcmp(t->name, name) == 0) return t;
    return NULL;
}

static bool choice_ok(const char *choices, const char *s) {
    size_t n = strlen(s);
    for (const char *c = choices; c && *c;) {
        const char *bar = strchr(c, '|');
        size_t len = bar ? (size_t)(bar - c) : strlen(c);
        if (len == n && strncmp(c, s, n) == 0) return true;
        c = bar ? bar + 1 : NULL;
    }
    return false;
}

static const char *range_words(unsigned flags) {
    if (flags & PF_GT0) return "> 0";
    if (flags & PF_GE0) return ">= 0";
    if (flags & PF_BETA) return "in [0, 1)";
    if (flags & PF_UNIT) return "in [0, 1]";
    if (flags & PF_GEM1) return ">= -1";
    return NULL;
}

static bool in_range(unsigned flags, double x) {
    if (isnan(x)) return false;
    if ((flags & PF_GT0) && !(x > 0)) return false;
    if ((flags & PF_GE0) && !(x >= 0)) return false;
    if ((flags & PF_BETA) && !(x >= 0 && x < 1)) return false;
    if ((flags & PF_UNIT) && !(x >= 0 && x <= 1)) return false;
    if ((flags & PF_GEM1) && !(x >= -1)) return false;
    return true;
}

static int check_num(cfg_parser_t *p, const cfg_prm_t *d, double x, const cfg_pos_t *at, const char *path) {
    if (in_range(d->flags, x)) return 0;
    char num[64];
    cfg_format_num(x, num, sizeof num);
    return cfg_fail(p, at, false, path, "must be %s, got %s", range_words(d->flags), num);
}

static void format_prm_default(const cfg_prm_t *d, char *buf, size_t n) {
    char a[64], b[64];
    if (d->flags & PF_REQ) {
        snprintf(buf, n, "none: it is required");
        return;
    }
    if (d->flags & PF_DEFNULL) {
        snprintf(buf, n, "null");
        return;
    }
    switch (d->kind) {
    case PK_BOOL: snprintf(buf, n, "%s", d->def[0] != 0 ? "true" : "false"); break;
    case PK_STR: snprintf(buf, n, "\"%s\"", d->sdef ? d->sdef : ""); break;
    case PK_INT:
    case PK_PYINT: snprintf(buf, n, "%lld", (long long)d->def[0]); break;
    case PK_PAIR:
        cfg_format_double(d->def[0], a, sizeof a);
        cfg_format_double(d->def[1], b, sizeof b);
        snprintf(buf, n, "[%s, %s]", isnan(d->def[0]) ? "null" : a, b);
        break;
    default: cfg_format_double(d->def[0], buf, n); break;
    }
}

/* Validates one given parameter and stores it in *out. */
static int read_param(cfg_parser_t *p, const cfg_prm_t *d, json_t *v, const cfg_pos_t *at, const char *path,
                      dsc_config_param_t *out) {
    out->name = d->name;
    out->source = (dsc_config_source_t){DSC_CONFIG_FILE, at ? at->line : 0, at ? at->col : 0, NULL};
    if (cfg_is_auto(v)) {
        char def[160];
        format_prm_default(d, def, sizeof def);
        return cfg_fail_auto(p, at, path, def);
    }
    if (json_is_null(v)) {
        if (!(d->flags & PF_NULL)) return cfg_fail(p, at, false, path, "null is not accepted here");
        out->kind = DSC_CONFIG_PARAM_NULL;
        return 0;
    }
    switch (d->kind) {
    case PK_BOOL:
        out->kind = DSC_CONFIG_PARAM_BOOL;
        return cfg_read_bool(p, v, at, path, &out->boolean);
    case PK_STR:
        if (!json_is_string(v)) return cfg_fail(p, at, false, path, "expected a string, got %s", dsc__json_kind(v));
        if (d->choices && !choice_ok(d->choices, json_string_value(v))) {
            char list[256];
            size_t o = 0;
            for (const char *c = d->choices; *c && o + 4 < sizeof list; c++) {
                if (c == d->choices) list[o++] = '"';
                if (*c == '|') {
                    o += (size_t)snprintf(list + o, sizeof list - o, "\", \"");
                } else {
                    list[o++] = *c;
                }
            }
            if (o + 2 < sizeof list) list[o++] = '"';
            list[o] = '\0';
            return cfg_fail(p, at, false, path, "invalid value \"%s\"; expected one of %s", json_string_value(v), list);
        }
        out->kind = DSC_CONFIG_PARAM_STRING;
        out->string = cfg_strdup(&p->impl->arena, json_string_value(v));
        return out->string ? 0 : cfg_fail(p, at, false, path, "out of memory");
    case PK_INT:
    case PK_PYINT: {
        int64_t x;
        if (cfg_read_int(p, v, at, path, d->kind == PK_PYINT, &x) < 0) return -1;
        out->kind = DSC_CONFIG_PARAM_NUMBER;
        out->number = (double)x;
        out->is_integer = true;
        return check_num(p, d, (double)x, at, path);
    }
    case PK_NUM:
        out->kind = DSC_CONFIG_PARAM_NUMBER;
        if (cfg_read_number(p, v, at, path, &out->number) < 0) return -1;
        out->is_integer = json_is_integer(v);
        return check_num(p, d, out->number, at, path);
    default: break;
    }
    /* lists: PK_PAIR (exactly 2), PK_NUMLIST (a number or a non-empty list), PK_INTLIST */
    if (d->kind == PK_NUMLIST && json_is_number(v)) {
        out->kind = DSC_CONFIG_PARAM_NUMBER;
        if (cfg_read_number(p, v, at, path, &out->number) < 0) return -1;
        out->is_integer = json_is_integer(v);
        return check_num(p, d, out->number, at, path);
    }
    const char *want = d->kind == PK_PAIR ? "a list of 2 numbers"
                       : d->kind == PK_INTLIST ? "a list of integers"
                                               : "a number or a list of numbers (one per parameter group)";
    if (!json_is_array(v)) return cfg_fail(p, at, false, path, "expected %s, got %s", want, dsc__json_kind(v));
    size_t n = json_array_size(v);
    if ((d->kind == PK_PAIR && n != 2) || (d->kind == PK_NUMLIST && n == 0))
        return cfg_fail(p, at, false, path, "expected %s, got a list of %zu", want, n);
    double *list = cfg_alloc(&p->impl->arena, (n ? n : 1) * sizeof *list);
    if (!list) return cfg_fail(p, at, false, path, "out of memory");
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(v, i);
        const cfg_pos_t *epos = cfg_pos_element(at, i);
        char ep[CFG_PATH_MAX + 32];
        snprintf(ep, sizeof ep, "%s[%zu]", path, i);
        if (json_is_null(e) && (d->flags & PF_NULL)) {
            list[i] = NAN;
            continue;
        }
        if (d->kind == PK_INTLIST) {
            int64_t x;
            if (cfg_read_int(p, e, epos, ep, false, &x) < 0) return -1;
            list[i] = (double)x;
        } else if (cfg_read_number(p, e, epos, ep, &list[i]) < 0) {
            return -1;
        }
        if (check_num(p, d, list[i], epos, ep) < 0) return -1;
    }
    out->kind = DSC_CONFIG_PARAM_LIST;
    out->list = list;
    out->list_len = n;
    return 0;
}

void cfg_default_param(const cfg_prm_t *d, const char *note, dsc_config_param_t *out) {
    out->name = d->name;
    out->source = (dsc_config_source_t){DSC_CONFIG_DEFAULT, 0, 0, note};
    if (d->flags & (PF_DEFNULL | PF_REQ)) {
        out->kind = DSC_CONFIG_PARAM_NULL;
        return;
    }
    switch (d->kind) {
    case PK_BOOL:
        out->kind = DSC_CONFIG_PARAM_BOOL;
        out->boolean = d->def[0] != 0;
        break;
    case PK_STR:
        out->kind = DSC_CONFIG_PARAM_STRING;
        out->string = d->sdef;
        break;
    case PK_PAIR:
        out->kind = DSC_CONFIG_PARAM_LIST;
        out->list = d->def;
        out->list_len = 2;
        break;
    default:
        out->kind = DSC_CONFIG_PARAM_NUMBER;
        out->number = d->def[0];
        out->is_integer = d->kind == PK_INT || d->kind == PK_PYINT;
        break;
    }
}

/* Reads the "params" object of the optimizer or scheduler against `table`, filling `out`
 * with one entry per table row (given or default). */
int cfg_read_params(cfg_parser_t *p, json_t *params, const cfg_pos_t *ppos, const char *base, const cfg_prm_t *table,
                       const char *class_note, dsc_config_params_t *out) {
    size_t n = 0;
    while (table[n].name) n++;
    dsc_config_param_t *items = cfg_alloc(&p->impl->arena, (n ? n : 1) * sizeof *items);
    if (!items) return cfg_fail(p, ppos, false, base, "out of memory");
    for (size_t i = 0; i < n; i++) cfg_default_param(&table[i], class_note, &items[i]);
    if (params) {
        const char *name;
        json_t *v;
        cfg_pos_t *hint = NULL;
        json_object_foreach(params, name, v) {
            const cfg_pos_t *pos = cfg_pos_member(ppos, name, &hint);
            char path[CFG_PATH_MAX];
            cfg_path_join(path, sizeof path, base, name);
            if (strcmp(name, "max_grad_norm") == 0 && strncmp(base, "optimizer", 9) == 0)
                return cfg_fail(p, pos, true, path,
                                "'max_grad_norm' is not supported as an optimizer parameter, please switch to using "
                                "the deepspeed parameter 'gradient_clipping'");
            const cfg_prm_t *d = cfg_prm_find(table, name);
            if (!d) {
                const char *cands[64];
                size_t c = 0;
                for (size_t i = 0; i < n && c + 1 < 64; i++) cands[c++] = table[i].name;
                cands[c] = NULL;
                cfg_unknown_key(p, pos, path, name, cands, false,
                                "not a parameter of this class: DeepSpeed passes params as keyword arguments and "
                                "the constructor would fail");
                return -1;
            }
            if (read_param(p, d, v, pos, path, &items[d - table]) < 0) return -1;
        }
    }
    for (size_t i = 0; i < n; i++) {
        if ((table[i].flags & PF_REQ) && items[i].source.origin == DSC_CONFIG_DEFAULT) {
            char path[CFG_PATH_MAX];
            cfg_path_join(path, sizeof path, base, table[i].name);
            return cfg_fail(p, ppos ? ppos : NULL, false, path, "required parameter missing (it has no default)");
        }
    }
    *out = (dsc_config_params_t){n, items};
    return 0;
}

const dsc_config_param_t *dsc_config_param_find(const dsc_config_params_t *params, const char *name) {
    if (!params || !name) return NULL;
    for (size_t i = 0; i < params->count; i++)
        if (strcmp(params->items[i].name, name) == 0) return &params->items[i];
    return NULL;
}

double cfg_pnum(const dsc_config_params_t *ps, const char *name, double dflt) {
    const dsc_config_param_t *q = dsc_config_param_find(ps, name);
    if (!q) return dflt;
    if (q->kind == DSC_CONFIG_PARAM_NUMBER) return q->number;
    if (q->kind == DSC_CONFIG_PARAM_LIST && q->list_len) return q->list[0];
    return dflt;
}

bool cfg_pbool(const dsc_config_params_t *ps, const char *name, bool dflt) {
    const dsc_config_param_t *q = dsc_config_param_find(ps, name);
    return q && q->kind == DSC_CONFIG_PARAM_BOOL ? q->boolean : dflt;
}

bool cfg_pgiven(const dsc_config_params_t *ps, const char *name) {
    const dsc_config_param_t *q = dsc_config_param_find(ps, name);
    return q && q->source.origin == DSC_CONFIG_FILE;
}

/* A parameter the chosen class does not take (DeepSpeed: constructor TypeError). */
int cfg_finish_optimizer(cfg_parser_t *p) {
    if (p->opt_json && cfg_finish_optimizer_section(p) < 0) return -1;
    if (p->sched_json && cfg_finish_scheduler_section(p) < 0) return -1;
    return 0;
}

void cfg_format_param(const dsc_config_param_t *prm, char *buf, size_t bufsz) {
    switch (prm->kind) {
    case DSC_CONFIG_PARAM_NULL: snprintf(buf, bufsz, "null"); break;
    case DSC_CONFIG_PARAM_BOOL: snprintf(buf, bufsz, "%s", prm->boolean ? "true" : "false"); break;
    case DSC_CONFIG_PARAM_STRING: snprintf(buf, bufsz, "\"%s\"", prm->string ? prm->string : ""); break;
    case DSC_CONFIG_PARAM_NUMBER:
        if (prm->is_integer && fabs(prm->number) < 9e15) snprintf(buf, bufsz, "%lld", (long long)prm->number);
        else cfg_format_double(prm->number, buf, bufsz);
        break;
    case DSC_CONFIG_PARAM_LIST: {
        size_t o = (size_t)snprintf(buf, bufsz, "[");
        for (size_t i = 0; i < prm->list_len && o < bufsz; i++) {
            char num[64];
            if (isnan(prm->list[i])) snprintf(num, sizeof num, "null");
            else cfg_format_double(prm->list[i], num, sizeof num);
            o += (size_t)snprintf(buf + o, bufsz - o, "%s%s", i ? ", " : "", num);
        }
        if (o < bufsz) snprintf(buf + o, bufsz - o, "]");
        break;
    }
    }
}

/* The row for `name` in the table of the config's optimizer or scheduler. */
static const cfg_prm_t *param_row(const dsc_config_t *cfg, bool scheduler, const char *name) {
    const cfg_prm_t *t = scheduler ? cfg_scheduler_table(cfg->scheduler.type) : cfg_optimizer_table(cfg->optimizer.type);
    return t ? cfg_prm_find(t, name) : NULL;
}

bool cfg_param_is_default(const dsc_config_t *cfg, bool scheduler, const dsc_config_param_t *prm) {
    if (prm->source.origin == DSC_CONFIG_DEFAULT) return true;
    const cfg_prm_t *d = param_row(cfg, scheduler, prm->name);
    if (!d || (d->flags & PF_REQ)) return false;
    dsc_config_param_t def = {0};
    cfg_default_param(d, NULL, &def);
    if (!scheduler && strcmp(prm->name, "weight_decay") == 0 && cfg->optimizer.implementation &&
        strcmp(cfg->optimizer.implementation, "torch.optim.AdamW") == 0)
        def.number = 1e-2;
    if (def.kind != prm->kind) return false;
    switch (prm->kind) {
    case DSC_CONFIG_PARAM_NULL: return true;
    case DSC_CONFIG_PARAM_BOOL: return def.boolean == prm->boolean;
    case DSC_CONFIG_PARAM_NUMBER: return def.number == prm->number;
    case DSC_CONFIG_PARAM_STRING: return def.string && prm->string && strcmp(def.string, prm->string) == 0;
    case DSC_CONFIG_PARAM_LIST:
        if (def.list_len != prm->list_len) return false;
        for (size_t i = 0; i < def.list_len; i++)
            if (!(def.list[i] == prm->list[i] || (isnan(def.list[i]) && isnan(prm->list[i])))) return false;
        return true;
    }
    return false;
}

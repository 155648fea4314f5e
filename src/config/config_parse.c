/* Config parsing framework: error messages with file:line:col and key path, typed readers
 * with range checks, the table-driven walk over jansson's tree, "did you mean" suggestions,
 * and the public parse entry points. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config_internal.h"

/* ---- messages ------------------------------------------------------------------------------ */

void cfg_set_err(char *err, size_t errsz, const char *fmt, ...) {
    if (!err || !errsz) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errsz, fmt, ap);
    va_end(ap);
}

void cfg_format_where(const dsc_config_t *cfg, int line, int col, char *buf, size_t bufsz) {
    const char *name = cfg && cfg->source_name ? cfg->source_name : "<string>";
    if (line > 0) snprintf(buf, bufsz, "%s:%d:%d", name, line, col > 0 ? col : 1);
    else snprintf(buf, bufsz, "%s", name);
}

static void pos_of(const cfg_pos_t *at, bool use_key, int *line, int *col) {
    *line = *col = 0;
    if (!at) return;
    if (use_key && at->key_line > 0) {
        *line = at->key_line;
        *col = at->key_col;
    } else {
        *line = at->line;
        *col = at->col;
    }
}

int cfg_vfail(cfg_parser_t *p, const cfg_pos_t *at, bool use_key, const char *path, const char *fmt,
              va_list ap) {
    /* keep the first error: it is the cause; with all_errors, each further one on its own line */
    if (p->failed && !p->opts.all_errors) return -1;
    bool first = !p->failed;
    p->failed = true;
    if (!p->err || !p->errsz) return -1;
    size_t off = first ? 0 : strlen(p->err);
    if (!first && off + 2 >= p->errsz) return -1; /* no room left: the first ones stay */
    if (!first) p->err[off++] = '\n';
    int line, col;
    pos_of(at, use_key, &line, &col);
    char where[CFG_PATH_MAX + 64];
    cfg_format_where(p->cfg, line, col, where, sizeof where);
    char *e = p->err + off;
    size_t esz = p->errsz - off;
    int n = snprintf(e, esz, "%s: %s%s", where, path && *path ? path : "", path && *path ? ": " : "");
    if (n >= 0 && (size_t)n < esz) vsnprintf(e + n, esz - (size_t)n, fmt, ap);
    return -1;
}

int cfg_fail(cfg_parser_t *p, const cfg_pos_t *at, bool use_key, const char *path, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    cfg_vfail(p, at, use_key, path, fmt, ap);
    va_end(ap);
    return -1;
}

static void default_log(dsc_log_level_t level, const char *message, void *user) {
    (void)user;
    fprintf(stderr, "[dsc %s] %s\n", level == DSC_LOG_WARN ? "WARN" : "INFO", message);
}

void cfg_warn(cfg_parser_t *p, const cfg_pos_t *at, bool use_key, const char *path, const char *fmt, ...) {
    char msg[2048], where[CFG_PATH_MAX + 64];
    int line, col;
    pos_of(at, use_key, &line, &col);
    cfg_format_where(p->cfg, line, col, where, sizeof where);
    int n = snprintf(msg, sizeof msg, "%s: %s%s", where, path && *path ? path : "", path && *path ? ": " : "");
    va_list ap;
    va_start(ap, fmt);
    if (n >= 0 && (size_t)n < sizeof msg) vsnprintf(msg + n, sizeof msg - (size_t)n, fmt, ap);
    va_end(ap);
    if (!cfg_add_warning(p->impl, msg)) p->impl->arena.failed = true;
    (p->opts.log_fn ? p->opts.log_fn : default_log)(DSC_LOG_WARN, msg, p->opts.log_user);
}

bool cfg_is_auto(const json_t *v) { return json_is_string(v) && strcasecmp(json_string_value(v), "auto") == 0; }

int cfg_fail_auto(cfg_parser_t *p, const cfg_pos_t *at, const char *path, const char *default_text) {
    return cfg_fail(p, at, false, path,
                    "\"auto\" is a placeholder that a front end (HF Accelerate / the Transformers Trainer) "
                    "must replace with a concrete value before the config reaches dsc; dsc does not guess it "
                    "(DeepSpeed drops \"auto\" in strict sections and fails on it elsewhere). Write the value "
                    "explicitly%s%s%s",
                    default_text ? " (DeepSpeed's default: " : "", default_text ? default_text : "",
                    default_text ? ")" : "");
}

void cfg_format_num(double x, char *buf, size_t bufsz) {
    if (x == floor(x) && fabs(x) < 1e15) { /* integral: no exponent (5e8 -> 500000000) */
        snprintf(buf, bufsz, "%.0f", x);
        return;
    }
    if (isnan(x)) {
        snprintf(buf, bufsz, "NaN");
        return;
    }
    if (isinf(x)) {
        snprintf(buf, bufsz, x > 0 ? "Infinity" : "-Infinity");
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, bufsz, "%.*g", prec, x);
        if (strtod(buf, NULL) == x) break;
    }
}

void cfg_format_double(double x, char *buf, size_t bufsz) {
    cfg_format_num(x, buf, bufsz);
    /* show that it is a real: 1 -> 1.0 (as Python prints it) */
    if (isfinite(x) && !strpbrk(buf, ".eE") && strlen(buf) + 3 <= bufsz) strcat(buf, ".0");
}

void cfg_path_join(char *out, size_t outsz, const char *base, const char *name) {
    if (base && *base) snprintf(out, outsz, "%s.%s", base, name);
    else snprintf(out, outsz, "%s", name);
}

/* ---- typed readers ------------------------------------------------------------------------- */

int cfg_read_bool(cfg_parser_t *p, const json_t *v, const cfg_pos_t *at, const char *path, bool *out) {
    if (!json_is_boolean(v))
        return cfg_fail(p, at, false, path, "expected true or false, got %s", dsc__json_kind(v));
    *out = json_is_true(v);
    return 0;
}

int cfg_read_int(cfg_parser_t *p, const json_t *v, const cfg_pos_t *at, const char *path, bool strict_int,
                 int64_t *out) {
    if (json_is_integer(v)) {
        *out = (int64_t)json_integer_value(v);
        return 0;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        char num[64];
        cfg_format_num(d, num, sizeof num);
        if (strict_int) {
            cfg_format_double(d, num, sizeof num);
            return cfg_fail(p, at, false, path,
                            "expected an integer written without a decimal point or exponent, got the real number %s "
                            "(DeepSpeed checks isinstance(value, int) here)",
                            num);
        }
        if (!(d == floor(d)))
            return cfg_fail(p, at, false, path, "expected an integer, got %s (it has a fractional part)", num);
        if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0))
            return cfg_fail(p, at, false, path, "integer %s is out of the 64-bit range", num);
        *out = (int64_t)d;
        return 0;
    }
    return cfg_fail(p, at, false, path, "expected an integer, got %s", dsc__json_kind(v));
}

int cfg_read_number(cfg_parser_t *p, const json_t *v, const cfg_pos_t *at, const char *path, double *out) {
    if (json_is_integer(v)) {
        *out = (double)json_integer_value(v);
        return 0;
    }
    if (json_is_real(v)) {
        *out = json_real_value(v);
        return 0;
    }
    return cfg_fail(p, at, false, path, "expected a number, got %s", dsc__json_kind(v));
}

static void range_text(const cfg_key_t *k, bool is_float, char *buf, size_t n) {
    char lo[64], hi[64];
    if (is_float) {
        cfg_format_num(k->fmin, lo, sizeof lo);
        cfg_format_num(k->fmax, hi, sizeof hi);
    } else {
        snprintf(lo, sizeof lo, "%lld", (long long)k->imin);
        snprintf(hi, sizeof hi, "%lld", (long long)k->imax);
    }
    if ((k->flags & CF_MIN) && (k->flags & CF_MAX)) {
        if (!is_float) snprintf(buf, n, "in %s..%s", lo, hi);
        else
            snprintf(buf, n, "in %s%s, %s%s", (k->flags & CF_MIN_EXCL) ? "(" : "[", lo, hi,
                     (k->flags & CF_MAX_EXCL) ? ")" : "]");
    } else if (k->flags & CF_MIN) {
        snprintf(buf, n, "%s %s", (k->flags & CF_MIN_EXCL) ? ">" : ">=", lo);
    } else {
        snprintf(buf, n, "%s %s", (k->flags & CF_MAX_EXCL) ? "<" : "<=", hi);
    }
}

static int check_int_range(cfg_parser_t *p, const cfg_key_t *k, int64_t v, const cfg_pos_t *at, const char *path) {
    bool ok = true;
    if (k->flags & CF_MIN) ok = ok && ((k->flags & CF_MIN_EXCL) ? v > k->imin : v >= k->imin);
    if (k->flags & CF_MAX) ok = ok && ((k->flags & CF_MAX_EXCL) ? v < k->imax : v <= k->imax);
    if (ok) return 0;
    char r[160];
    range_text(k, false, r, sizeof r);
    return cfg_fail(p, at, false, path, "must be %s, got %lld%s%s", r, (long long)v, k->note ? "; " : "",
                    k->note ? k->note : "");
}

static int check_float_range(cfg_parser_t *p, const cfg_key_t *k, double v, const cfg_pos_t *at, const char *path) {
    bool ok = true;
    if (k->flags & CF_MIN) ok = ok && ((k->flags & CF_MIN_EXCL) ? v > k->fmin : v >= k->fmin);
    if (k->flags & CF_MAX) ok = ok && ((k->flags & CF_MAX_EXCL) ? v < k->fmax : v <= k->fmax);
    if (ok) return 0;
    char r[160], num[64];
    range_text(k, true, r, sizeof r);
    cfg_format_num(v, num, sizeof num);
    return cfg_fail(p, at, false, path, "must be %s, got %s%s%s", r, num, k->note ? "; " : "", k->note ? k->note : "");
}

/* ---- did you mean -------------------------------------------------------------------------- */

int cfg_edit_distance(const char *a, const char *b) {
    enum { M = 64 };
    size_t la = strlen(a), lb = strlen(b);
    if (la > M || lb > M) return 1000;
    int d[M + 1][M + 1];
    for (size_t i = 0; i <= la; i++) d[i][0] = (int)i;
    for (size_t j = 0; j <= lb; j++) d[0][j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        for (size_t j = 1; j <= lb; j++) {
            int cost = tolower((unsigned char)a[i - 1]) == tolower((unsigned char)b[j - 1]) ? 0 : 1;
            int best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best) best = d[i][j - 1] + 1;
            if (d[i - 1][j - 1] + cost < best) best = d[i - 1][j - 1] + cost;
            if (i > 1 && j > 1 && tolower((unsigned char)a[i - 1]) == tolower((unsigned char)b[j - 2]) &&
                tolower((unsigned char)a[i - 2]) == tolower((unsigned char)b[j - 1]) && d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    }
    return d[la][lb];
}

static const char *best_suggestion(const char *key, const char *const *candidates) {
    const char *best = NULL;
    int best_d = 1000;
    size_t lk = strlen(key);
    int limit = lk >= 12 ? 3 : lk >= 5 ? 2 : 1;
    for (size_t i = 0; candidates[i]; i++) {
        int d = cfg_edit_distance(key, candidates[i]);
        if (d < best_d) {
            best_d = d;
            best = candidates[i];
        }
    }
    if (best && best_d <= limit) return best;
    /* a fragment of a longer key ("micro_batch_size" for "train_micro_batch_size_per_gpu") */
    if (lk >= 4) {
        for (size_t i = 0; candidates[i]; i++)
            if (strstr(candidates[i], key) || (strlen(candidates[i]) >= 4 && strstr(key, candidates[i])))
                return candidates[i];
    }
    return NULL;
}

/* Searches every table for a key with this exact name, to say where it belongs. */
static bool find_elsewhere(const cfg_table_t *t, const char *key, const cfg_table_t *skip, char *out, size_t outsz) {
    for (size_t i = 0; i < t->n_keys; i++) {
        const cfg_key_t *k = &t->keys[i];
        if (t != skip && (strcmp(k->name, key) == 0 || (k->alias && strcmp(k->alias, key) == 0))) {
            cfg_path_join(out, outsz, t->name, k->name);
            return true;
        }
        if (k->type == CT_OBJECT && k->child && find_elsewhere(k->child, key, skip, out, outsz)) return true;
    }
    return false;
}

int cfg_unknown_key(cfg_parser_t *p, const cfg_pos_t *at, const char *path, const char *key,
                    const char *const *candidates, bool warn_only, const char *what) {
    char hint[CFG_PATH_MAX + 200] = "";
    const char *s = best_suggestion(key, candidates);
    if (s) {
        snprintf(hint, sizeof hint, "; did you mean \"%s\"?", s);
    } else {
        size_t used = (size_t)snprintf(hint, sizeof hint, "; accepted keys:");
        for (size_t i = 0; candidates[i] && used < sizeof hint; i++)
            used += (size_t)snprintf(hint + used, sizeof hint - used, "%s %s", i ? "," : "", candidates[i]);
    }
    if (warn_only) {
        cfg_warn(p, at, true, path, "unknown key ignored (%s)%s", what, hint);
        return 0;
    }
    return cfg_fail(p, at, true, path, "unknown key (%s)%s", what, hint);
}

const char *cfg_plain_dict_reason(const cfg_parser_t *p) {
    return p->opts.unknown_section_keys_warn ? "DeepSpeed ignores it too"
                                             : "DeepSpeed ignores unknown keys in this section; dsc rejects them unless "
                                               "unknown_section_keys_warn / --allow-unknown is set";
}

int cfg_unknown_dict_key(cfg_parser_t *p, const cfg_pos_t *at, const char *path, const char *key,
                         const char *const *candidates) {
    return cfg_unknown_key(p, at, path, key, candidates, p->opts.unknown_section_keys_warn, cfg_plain_dict_reason(p));
}

static int table_unknown(cfg_parser_t *p, const cfg_table_t *t, const cfg_pos_t *at, const char *path,
                         const char *key) {
    const char *cands[160];
    size_t n = 0;
    for (size_t i = 0; i < t->n_keys && n + 2 < 160; i++) {
        if (t->keys[i].flags & CF_NOPRINT) continue;
        cands[n++] = t->keys[i].name;
    }
    cands[n] = NULL;
    bool top = t == &cfg_top_table;
    bool warn = top ? p->opts.unknown_top_level_keys_warn : (t->plain_dict && p->opts.unknown_section_keys_warn);
    const char *what = warn ? "DeepSpeed ignores it too"
                       : top ? "DeepSpeed silently ignores unknown top-level keys; dsc rejects them unless "
                               "unknown_top_level_keys_warn / --allow-unknown is set"
                       : t->plain_dict ? cfg_plain_dict_reason(p)
                                       : "DeepSpeed rejects it too: extra inputs are not permitted";
    char where_else[CFG_PATH_MAX];
    if (!best_suggestion(key, cands) && find_elsewhere(&cfg_top_table, key, t, where_else, sizeof where_else)) {
        if (warn) {
            cfg_warn(p, at, true, path, "unknown key ignored; \"%s\" is a key of %s", key, where_else);
            return 0;
        }
        return cfg_fail(p, at, true, path, "unknown key here; did you mean %s? (\"%s\" belongs there)", where_else,
                        key);
    }
    return cfg_unknown_key(p, at, path, key, cands, warn, what);
}

/* ---- the walk -------------------------------------------------------------------------------- */

static void *field(dsc_config_t *cfg, const cfg_key_t *k) { return (char *)cfg + k->off; }

static const char *copy_str(cfg_parser_t *p, const json_t *v) {
    const char *s = cfg_strndup(&p->impl->arena, json_string_value(v), json_string_length(v));
    if (!s) p->impl->arena.failed = true;
    return s ? s : "";
}

static int walk_table(cfg_parser_t *p, const cfg_table_t *t, json_t *obj, const cfg_pos_t *pobj, const char *shown_base,
                      const char *canon_base, const char *note);

static bool source_file(cfg_parser_t *p, const char *canon, const cfg_pos_t *pos, const char *note) {
    return cfg_set_source(p->impl, canon, DSC_CONFIG_FILE, pos ? pos->line : 0, pos ? pos->col : 0, note);
}

static int parse_enum(cfg_parser_t *p, const cfg_key_t *k, json_t *v, const cfg_pos_t *pos, const char *shown,
                      int *out) {
    if (json_is_null(v) && (k->flags & CF_NULLABLE)) {
        *out = 0;
        return 0;
    }
    char accepted[512];
    size_t used = 0;
    accepted[0] = '\0';
    for (const cfg_enum_name_t *e = k->enums; e->name && used < sizeof accepted; e++)
        used += (size_t)snprintf(accepted + used, sizeof accepted - used, "%s\"%s\"", e == k->enums ? "" : ", ",
                                 e->name);
    if (!json_is_string(v))
        return cfg_fail(p, pos, false, shown, "expected one of %s%s, got %s", accepted,
                        (k->flags & CF_NULLABLE) ? " or null" : "", dsc__json_kind(v));
    const char *s = json_string_value(v);
    for (const cfg_enum_name_t *e = k->enums; e->name; e++) {
        if ((k->flags & CF_ICASE) ? strcasecmp(s, e->name) == 0 : strcmp(s, e->name) == 0) {
            *out = e->value;
            return 0;
        }
    }
    return cfg_fail(p, pos, false, shown, "invalid value \"%s\"; expected one of %s%s%s%s", s, accepted,
                    (k->flags & CF_NULLABLE) ? " or null" : "", (k->flags & CF_ICASE) ? " (any case)" : "",
                    k->note ? k->note : "");
}

static int parse_strlist(cfg_parser_t *p, const cfg_key_t *k, json_t *v, const cfg_pos_t *pos, const char *shown,
                         dsc_config_strlist_t *out) {
    if (json_is_null(v) && (k->flags & CF_NULLABLE)) {
        *out = (dsc_config_strlist_t){false, 0, NULL};
        return 0;
    }
    if (!json_is_array(v)) return cfg_fail(p, pos, false, shown, "expected a list of strings, got %s", dsc__json_kind(v));
    size_t n = json_array_size(v);
    const char **items = cfg_alloc(&p->impl->arena, (n ? n : 1) * sizeof *items);
    if (!items) return cfg_fail(p, pos, false, shown, "out of memory");
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(v, i);
        char ep[CFG_PATH_MAX + 32];
        snprintf(ep, sizeof ep, "%s[%zu]", shown, i);
        if (!json_is_string(e))
            return cfg_fail(p, cfg_pos_element(pos, i), false, ep, "expected a string, got %s", dsc__json_kind(e));
        items[i] = copy_str(p, e);
    }
    *out = (dsc_config_strlist_t){true, n, items};
    return 0;
}

static int parse_section(cfg_parser_t *p, json_t *v, const cfg_pos_t *pos, const char *shown,
                         dsc_config_section_t *out) {
    if (json_is_null(v)) {
        *out = (dsc_config_section_t){false, false, NULL};
        return 0;
    }
    if (!json_is_object(v)) return cfg_fail(p, pos, false, shown, "expected an object or null, got %s", dsc__json_kind(v));
    char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!text) return cfg_fail(p, pos, false, shown, "out of memory");
    const char *copy = cfg_strdup(&p->impl->arena, text);
    free(text);
    if (!copy) return cfg_fail(p, pos, false, shown, "out of memory");
    json_t *en = json_object_get(v, "enabled");
    bool off = en && json_is_false(en);
    *out = (dsc_config_section_t){true, json_object_size(v) > 0 && !off, copy};
    return 0;
}

static int walk_value(cfg_parser_t *p, const cfg_key_t *k, json_t *v, const cfg_pos_t *pos, const char *shown,
                      const char *canon, const char *note) {
    dsc_config_t *cfg = p->cfg;
    void *f = field(cfg, k);
    switch (k->type) {
    case CT_BOOL:
        if (json_is_null(v) && (k->flags & CF_NULLABLE)) {
            note = cfg_note_null; /* resolved by cfg_finish */
            break;
        }
        if (cfg_read_bool(p, v, pos, shown, (bool *)f) < 0) return -1;
        break;
    case CT_OPT_BOOL: {
        dsc_config_opt_bool_t *o = f;
        if (json_is_null(v)) *o = (dsc_config_opt_bool_t){false, false};
        else if (cfg_read_bool(p, v, pos, shown, &o->value) < 0) return -1;
        else o->set = true;
        break;
    }
    case CT_INT: {
        int64_t x;
        if (cfg_read_int(p, v, pos, shown, false, &x) < 0 || check_int_range(p, k, x, pos, shown) < 0) return -1;
        if (k->flags & CF_I32) *(int *)f = (int)x;
        else *(int64_t *)f = x;
        break;
    }
    case CT_OPT_INT: {
        dsc_config_opt_int_t *o = f;
        if (json_is_null(v)) {
            *o = (dsc_config_opt_int_t){false, 0};
            break;
        }
        int64_t x;
        if (cfg_read_int(p, v, pos, shown, false, &x) < 0 || check_int_range(p, k, x, pos, shown) < 0) return -1;
        *o = (dsc_config_opt_int_t){true, x};
        break;
    }
    case CT_FLOAT: {
        double x;
        if (cfg_read_number(p, v, pos, shown, &x) < 0 || check_float_range(p, k, x, pos, shown) < 0) return -1;
        *(double *)f = x;
        break;
    }
    case CT_STR:
        if (!json_is_string(v)) return cfg_fail(p, pos, false, shown, "expected a string, got %s", dsc__json_kind(v));
        *(const char **)f = copy_str(p, v);
        break;
    case CT_OPT_STR:
        if (json_is_null(v)) *(const char **)f = NULL;
        else if (!json_is_string(v))
            return cfg_fail(p, pos, false, shown, "expected a string or null, got %s", dsc__json_kind(v));
        else *(const char **)f = copy_str(p, v);
        break;
    case CT_ENUM: {
        int x = 0;
        if (parse_enum(p, k, v, pos, shown, &x) < 0) return -1;
        *(int *)f = x;
        break;
    }
    case CT_STRLIST:
        if (parse_strlist(p, k, v, pos, shown, f) < 0) return -1;
        break;
    case CT_SECTION:
        if (parse_section(p, v, pos, shown, f) < 0) return -1;
        break;
    case CT_OBJECT:
        if (!json_is_object(v)) {
            if (k->parse) return k->parse(p, k, v, pos, shown);
            if (json_is_null(v) && (k->flags & CF_NULLABLE)) {
                if (k->present_off) *(bool *)((char *)cfg + k->present_off) = false;
                break;
            }
            return cfg_fail(p, pos, false, shown, "expected an object%s, got %s",
                            (k->flags & CF_NULLABLE) ? " or null" : "", dsc__json_kind(v));
        }
        if (k->present_off) *(bool *)((char *)cfg + k->present_off) = true;
        if (walk_table(p, k->child, v, pos, shown, canon, note) < 0) return -1;
        break;
    case CT_CUSTOM: return k->parse(p, k, v, pos, shown);
    }
    if (!source_file(p, canon, pos, note)) return cfg_fail(p, pos, false, shown, "out of memory");
    return 0;
}

static int walk_table(cfg_parser_t *p, const cfg_table_t *t, json_t *obj, const cfg_pos_t *pobj, const char *shown_base,
                      const char *canon_base, const char *note) {
    const char *name;
    json_t *v;
    cfg_pos_t *hint = NULL;
    int rc = 0; /* with all_errors the walk goes on after a bad key, to report every one */
#define WALK_FAIL() /* a block, not do-while: its continue must reach the foreach loop */              \
    {                                                                                                          \
        if (!p->opts.all_errors) return -1;                                                                    \
        rc = -1;                                                                                               \
        continue;                                                                                              \
    }
    json_object_foreach(obj, name, v) {
        const cfg_pos_t *pos = cfg_pos_member(pobj, name, &hint);
        char shown[CFG_PATH_MAX], canon[CFG_PATH_MAX];
        cfg_path_join(shown, sizeof shown, shown_base, name);
        const cfg_key_t *k = cfg_table_find(t, name);
        if (!k) {
            if (table_unknown(p, t, pos, shown, name) < 0) WALK_FAIL();
            continue;
        }
        if (k->alias) {
            const char *other = strcmp(name, k->name) == 0 ? k->alias : k->name;
            if (strcmp(name, k->name) == 0 && json_object_get(obj, other)) {
                cfg_fail(p, pos, true, shown, "given together with \"%s\", which is the same setting (an alias); keep one",
                         other);
                WALK_FAIL();
            }
        }
        cfg_path_join(canon, sizeof canon, canon_base, k->canon ? k->canon : k->name);
        const char *knote = note;
        if (k->canon) {
            /* a legacy spelling of a section: "bfloat16" is read only when "bf16" is absent */
            json_t *modern = json_object_get(obj, k->canon);
            if (modern && !json_is_null(modern)) {
                cfg_fail(p, pos, true, shown,
                         "given together with \"%s\"; \"%s\" is its deprecated spelling (DeepSpeed would "
                         "silently ignore it); keep only \"%s\"",
                         k->canon, name, k->canon);
                WALK_FAIL();
            }
            p->pos_bfloat16 = pos;
            knote = "legacy key bfloat16";
        }
        if (k->type != CT_SECTION && cfg_is_auto(v)) {
            char def[128] = "";
            if (k->type != CT_OBJECT && k->type != CT_CUSTOM) cfg_format_key_value(p->cfg, k, def, sizeof def);
            if (!strcmp(canon, "train_batch_size") || !strcmp(canon, "train_micro_batch_size_per_gpu") ||
                !strcmp(canon, "gradient_accumulation_steps"))
                snprintf(def, sizeof def, "none; give any two of the three batch sizes and dsc derives the third");
            cfg_fail_auto(p, pos, shown, def[0] ? def : NULL);
            WALK_FAIL();
        }
        if (walk_value(p, k, v, pos, shown, canon, knote) < 0) WALK_FAIL();
    }
#undef WALK_FAIL
    return rc;
}

/* ---- overrides (dsc_config_override_t) ------------------------------------------------------ */

/* Sets each override's value in the parsed text's tree, creating the objects along its
 * path, before the walk validates the whole. */
static int apply_overrides(cfg_parser_t *p, json_t *root) {
    for (size_t i = 0; i < p->opts.n_overrides; i++) {
        const dsc_config_override_t *o = &p->opts.overrides[i];
        const char *note = o->note ? o->note : "override";
        if (!o->path || !*o->path || !o->json) {
            cfg_set_err(p->err, p->errsz, "%s: %s: an override needs a key path and a JSON value", p->cfg->source_name,
                        note);
            return -1;
        }
        json_error_t je;
        json_t *value = json_loads(o->json, JSON_DECODE_ANY, &je);
        if (!value) {
            cfg_set_err(p->err, p->errsz, "%s: %s: %s: the value '%s' is not JSON: %s", p->cfg->source_name, note,
                        o->path, o->json, je.text);
            return -1;
        }
        json_t *obj = root;
        const char *seg = o->path;
        for (const char *dot; (dot = strchr(seg, '.')) != NULL; seg = dot + 1) {
            char name[CFG_PATH_MAX];
            snprintf(name, sizeof name, "%.*s", (int)(dot - seg), seg);
            json_t *child = json_object_get(obj, name);
            if (!child || json_is_null(child)) {
                child = json_object();
                if (!child || json_object_set_new(obj, name, child) != 0) {
                    json_decref(value);
                    cfg_set_err(p->err, p->errsz, "out of memory applying %s", note);
                    return -1;
                }
            } else if (!json_is_object(child)) {
                json_decref(value);
                cfg_set_err(p->err, p->errsz, "%s: %s: %s: cannot be set: %.*s is %s in the config, not an object",
                            p->cfg->source_name, note, o->path, (int)(dot - o->path), o->path, dsc__json_kind(child));
                return -1;
            }
            obj = child;
        }
        if (json_object_set_new(obj, seg, value) != 0) {
            cfg_set_err(p->err, p->errsz, "out of memory applying %s", note);
            return -1;
        }
    }
    return 0;
}

static bool under(const char *path, const char *prefix) {
    size_t n = strlen(prefix);
    return strncmp(path, prefix, n) == 0 && (path[n] == '\0' || path[n] == '.');
}

static void params_source(dsc_config_params_t *ps, const char *section, const char *opath, const char *note) {
    char base[64];
    snprintf(base, sizeof base, "%s.params", section);
    for (size_t i = 0; i < ps->count; i++) {
        dsc_config_param_t *q = (dsc_config_param_t *)(uintptr_t)&ps->items[i];
        char full[CFG_PATH_MAX];
        cfg_path_join(full, sizeof full, base, q->name);
        if (q->source.origin == DSC_CONFIG_FILE && under(full, opath)) q->source = (dsc_config_source_t){DSC_CONFIG_FILE, 0, 0, note};
    }
}

/* After the walk: every value an override set shows the override's note as its source. */
static bool override_sources(cfg_parser_t *p) {
    cfg_impl_t *impl = p->impl;
    for (size_t i = 0; i < p->opts.n_overrides; i++) {
        const dsc_config_override_t *o = &p->opts.overrides[i];
        const char *note = cfg_strdup(&impl->arena, o->note ? o->note : "override");
        if (!note) return false;
        char canon[CFG_PATH_MAX];
        const char *path = cfg_lookup_path(o->path, canon, sizeof canon) ? canon : o->path; /* aliases */
        for (size_t k = 0; k < impl->n_src; k++)
            if (under(impl->src[k].path, path)) impl->src[k].src = (dsc_config_source_t){DSC_CONFIG_FILE, 0, 0, note};
        params_source(&impl->pub.optimizer.params, "optimizer", o->path, note);
        params_source(&impl->pub.scheduler.params, "scheduler", o->path, note);
    }
    return true;
}

/* ---- entry points ---------------------------------------------------------------------------- */

static cfg_impl_t *impl_new(const char *name) {
    cfg_impl_t *impl = calloc(1, sizeof *impl);
    if (!impl) return NULL;
    cfg_set_defaults(&impl->pub);
    impl->pub.source_name = cfg_strdup(&impl->arena, name ? name : "<string>");
    if (!impl->pub.source_name) {
        dsc_config_free(&impl->pub);
        return NULL;
    }
    return impl;
}

void dsc_config_free(dsc_config_t *cfg) {
    if (!cfg) return;
    cfg_impl_t *impl = cfg_impl(cfg);
    free(impl->src);
    free(impl->warn);
    cfg_arena_free(&impl->arena);
    free(impl);
}

dsc_status_t dsc_config_new_default(dsc_config_t **out) {
    if (!out) return DSC_ERR_INVALID;
    *out = NULL;
    dsc_config_t *cfg = NULL;
    dsc_status_t st = dsc_config_parse_buffer("{}", 2, "<defaults>", NULL, &cfg, NULL, 0);
    if (st == DSC_OK) *out = cfg;
    return st;
}

static bool looks_like_hjson(const char *data, size_t len, size_t pos) {
    for (size_t i = pos > 8 ? pos - 8 : 0; i < len && i < pos + 2; i++)
        if (data[i] == '/' || data[i] == '#') return true;
    return false;
}

static dsc_status_t parse_json_error(cfg_parser_t *p, const char *data, size_t len, const json_error_t *je) {
    if (strstr(je->text, "duplicate object key")) {
        cfg_pos_scan_t s = cfg_pos_scan(&p->tmp, data, len, true);
        if (s.dup && s.dup_first) {
            char path[CFG_PATH_MAX];
            cfg_pos_path(s.dup, path, sizeof path);
            cfg_fail(p, s.dup, true, path,
                     "duplicate key (first given at line %d, column %d); DeepSpeed rejects config files with "
                     "duplicate keys (\"Duplicate keys in DeepSpeed config\") and so does dsc",
                     s.dup_first->key_line, s.dup_first->key_col);
            return DSC_ERR_CONFIG;
        }
    }
    char where[CFG_PATH_MAX + 64];
    cfg_format_where(p->cfg, je->line > 0 ? je->line : 1, je->column, where, sizeof where);
    bool hjson = (je->position >= 0 && looks_like_hjson(data, len, (size_t)je->position)) ||
                 strstr(je->text, "near '}'") || strstr(je->text, "near ']'");
    bool comma = !hjson && (strncmp(je->text, "'}' expected", 12) == 0 || strncmp(je->text, "']' expected", 12) == 0);
    cfg_set_err(p->err, p->errsz, "%s: invalid JSON: %s%s", where, je->text,
                hjson   ? " (dsc reads strict JSON: no comments, no trailing commas, keys in double quotes; "
                          "DeepSpeed's hjson extensions are not accepted)"
                : comma ? " (a missing comma between two members?)"
                        : "");
    p->failed = true;
    return DSC_ERR_CONFIG;
}

dsc_status_t dsc_config_parse_buffer(const char *data, size_t len, const char *name,
                                     const dsc_config_parse_options_t *opts, dsc_config_t **out, char *err,
                                     size_t errsz) {
    if (err && errsz) err[0] = '\0';
    if (!out || (!data && len)) {
        cfg_set_err(err, errsz, "dsc_config_parse: NULL argument");
        return DSC_ERR_INVALID;
    }
    *out = NULL;
    if (!data) data = "";
    cfg_impl_t *impl = impl_new(name);
    if (!impl) {
        cfg_set_err(err, errsz, "out of memory");
        return DSC_ERR_NOMEM;
    }
    cfg_parser_t p = {0};
    p.impl = impl;
    p.cfg = &impl->pub;
    if (opts) p.opts = *opts;
    p.err = err;
    p.errsz = errsz;
    if (len >= 3 && (unsigned char)data[0] == 0xEF && (unsigned char)data[1] == 0xBB && (unsigned char)data[2] == 0xBF) {
        /* skip a UTF-8 byte order mark (the position scanner skips it as well) */
        data += 3;
        len -= 3;
    }
    dsc_status_t st = DSC_OK;
    json_error_t je;
    json_t *root = json_loadb(data, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
    if (!root) {
        st = parse_json_error(&p, data, len, &je);
        goto done;
    }
    cfg_pos_scan_t scan = cfg_pos_scan(&p.tmp, data, len, false);
    p.root = scan.root;
    if (!json_is_object(root)) {
        cfg_fail(&p, p.root, false, "", "the config must be a JSON object ({...}), got %s", dsc__json_kind(root));
        st = DSC_ERR_CONFIG;
        goto done;
    }
    if (apply_overrides(&p, root) < 0) {
        st = DSC_ERR_CONFIG;
        goto done;
    }
    int walked = walk_table(&p, &cfg_top_table, root, p.root, "", "", NULL);
    /* all_errors: the cross-key checks run as well (bad keys hold their defaults) */
    if ((walked < 0 && !p.opts.all_errors) || cfg_finish(&p) < 0 || walked < 0) {
        st = DSC_ERR_CONFIG;
        goto done;
    }
    if (!override_sources(&p)) impl->arena.failed = true;
    impl->given_tb = impl->pub.train_batch_size;
    impl->given_mb = impl->pub.train_micro_batch_size_per_gpu;
    impl->given_gas = impl->pub.gradient_accumulation_steps;
    if (p.opts.world_size != 0) {
        st = cfg_resolve_batch(impl, p.opts.world_size, "parse option world_size", err, errsz);
        if (st != DSC_OK) goto done;
    }
done:
    if (st == DSC_OK && (impl->arena.failed || p.tmp.failed)) {
        cfg_set_err(err, errsz, "%s: out of memory while parsing the config", impl->pub.source_name);
        st = DSC_ERR_NOMEM;
    }
    if (root) json_decref(root);
    cfg_arena_free(&p.tmp);
    if (st != DSC_OK) {
        dsc_config_free(&impl->pub);
        return st;
    }
    *out = &impl->pub;
    return DSC_OK;
}

dsc_status_t dsc_config_parse_string(const char *text, const dsc_config_parse_options_t *opts, dsc_config_t **out,
                                     char *err, size_t errsz) {
    if (!text) {
        cfg_set_err(err, errsz, "dsc_config_parse_string: NULL text");
        if (out) *out = NULL;
        return DSC_ERR_INVALID;
    }
    return dsc_config_parse_buffer(text, strlen(text), "<string>", opts, out, err, errsz);
}

dsc_status_t dsc_config_parse_file(const char *path, const dsc_config_parse_options_t *opts, dsc_config_t **out,
                                   char *err, size_t errsz) {
    if (out) *out = NULL;
    if (!path || !out) {
        cfg_set_err(err, errsz, "dsc_config_parse_file: NULL argument");
        return DSC_ERR_INVALID;
    }
    FILE *f = fopen(path, "rb");
    if (!f) {
        cfg_set_err(err, errsz, "%s: cannot open the config file: %s", path, strerror(errno));
        return DSC_ERR_IO;
    }
    const size_t max_size = (size_t)64 << 20;
    size_t cap = 16384, len = 0;
    char *buf = malloc(cap);
    dsc_status_t st = DSC_OK;
    while (buf) {
        if (len == cap) {
            if (cap >= max_size) {
                cfg_set_err(err, errsz, "%s: the config file is larger than 64 MiB", path);
                st = DSC_ERR_CONFIG;
                break;
            }
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) {
            if (ferror(f)) {
                cfg_set_err(err, errsz, "%s: cannot read the config file: %s", path, strerror(errno));
                st = DSC_ERR_IO;
            }
            break;
        }
    }
    fclose(f);
    if (!buf) {
        cfg_set_err(err, errsz, "%s: out of memory reading the config file", path);
        return DSC_ERR_NOMEM;
    }
    if (st == DSC_OK) st = dsc_config_parse_buffer(buf, len, path, opts, out, err, errsz);
    free(buf);
    return st;
}

/* Internal definitions of the config parser (src/config/config_*.c). Never installed.
 *
 * The parser is table driven: each JSON object dsc models is a cfg_table_t listing its keys
 * (name, alias, type, offset of the field in dsc_config_t, default, range). The same tables
 * set the defaults, drive the walk over the parsed JSON, the printing, dsc_config_get and
 * dsc_config_check_supported. The optimizer and scheduler, whose keys depend on their
 * type, have their own tables in config_optim.c and config_sched.c (read by config_params.c).
 *
 * Positions: jansson reports where a parse error is but not where each key is, so
 * config_pos.c re-scans the text and builds a tree of positions (one node per value,
 * members keyed by their decoded names) that the walk follows alongside jansson's tree.
 */
#ifndef DSC_ENGINE_CONFIG_INTERNAL_H
#define DSC_ENGINE_CONFIG_INTERNAL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "core/json_kind.h"

#include "dsc/config.h"

#define CFG_PATH_MAX 512
#define CFG_MAX_DEPTH 2048 /* jansson's JSON_PARSER_MAX_DEPTH */

/* ---- arena: everything a config (or a parse) allocates, freed at once ---------------- */

typedef struct cfg_block cfg_block_t;
typedef struct cfg_arena {
    cfg_block_t *head;
    bool failed; /* an allocation failed */
} cfg_arena_t;

void *cfg_alloc(cfg_arena_t *a, size_t n); /* zeroed; NULL (and a->failed) on failure */
char *cfg_strndup(cfg_arena_t *a, const char *s, size_t n);
char *cfg_strdup(cfg_arena_t *a, const char *s);
char *cfg_printf(cfg_arena_t *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void cfg_arena_free(cfg_arena_t *a);

/* ---- positions (config_pos.c) ---------------------------------------------------------- */

typedef struct cfg_pos {
    int line, col;         /* first character of the value, 1-based */
    int key_line, key_col; /* the member's key (object members only) */
    const char *key;       /* decoded member name; NULL for array elements and the root */
    char kind;             /* '{' '[' '"' '0' (number) 't' 'f' 'n' */
    int n_children;
    struct cfg_pos *parent, *first, *last, *next;
} cfg_pos_t;

typedef struct cfg_pos_scan {
    cfg_pos_t *root;      /* NULL when not even the first value could be scanned */
    bool complete;        /* the whole text was one valid JSON value */
    cfg_pos_t *dup;       /* with find_duplicates: the first member whose key repeats... */
    cfg_pos_t *dup_first; /* ...and the earlier member with the same key */
} cfg_pos_scan_t;

/* Scans `len` bytes of JSON text (any bytes; never reads past len) into a position tree
 * allocated in `a`. Stops at the first byte that is not valid JSON (or at the first
 * duplicate key when find_duplicates is set), keeping what it has built. */
cfg_pos_scan_t cfg_pos_scan(cfg_arena_t *a, const char *text, size_t len, bool find_duplicates);
/* The member of object node `obj` named `key` (NULL if none or obj is NULL). `hint` is an
 * optional cursor that makes in-order lookups O(1): pass the same variable for successive
 * keys of one object, starting from NULL. */
cfg_pos_t *cfg_pos_member(const cfg_pos_t *obj, const char *key, cfg_pos_t **hint);
/* Element i of array node `arr`, or NULL. */
cfg_pos_t *cfg_pos_element(const cfg_pos_t *arr, size_t i);
/* Writes the key path of a node ("a.b[2].c") into buf. */
void cfg_pos_path(const cfg_pos_t *node, char *buf, size_t bufsz);

/* ---- the config object ------------------------------------------------------------------ */

typedef struct cfg_srcent {
    const char *path;
    dsc_config_source_t src;
} cfg_srcent_t;

typedef struct cfg_impl {
    dsc_config_t pub; /* first: a dsc_config_t * is a cfg_impl_t * */
    cfg_arena_t arena;
    cfg_srcent_t *src; /* malloc'ed array of sources of non-default values */
    size_t n_src, cap_src;
    const char **warn; /* malloc'ed array; strings in the arena */
    size_t cap_warn;
    /* The batch sizes as the file gave them (resolve re-derives from these). */
    dsc_config_opt_int_t given_tb, given_mb, given_gas;
    const char *world_size_origin;
} cfg_impl_t;

static inline cfg_impl_t *cfg_impl(const dsc_config_t *cfg) { return (cfg_impl_t *)(uintptr_t)cfg; }

/* Records the source of the value at canonical `path` (replacing an earlier one). */
bool cfg_set_source(cfg_impl_t *impl, const char *path, dsc_config_origin_t origin, int line, int col,
                    const char *note);
/* The source of `path`, or NULL when it holds its default. */
const dsc_config_source_t *cfg_find_source(const cfg_impl_t *impl, const char *path);
/* The source of `path` with the default filled in. */
dsc_config_source_t cfg_source_of(const cfg_impl_t *impl, const char *path);
/* Appends a warning (copied). */
bool cfg_add_warning(cfg_impl_t *impl, const char *msg);

/* ---- key tables ------------------------------------------------------------------------- */

typedef enum cfg_type {
    CT_BOOL,     /* bool */
    CT_OPT_BOOL, /* dsc_config_opt_bool_t */
    CT_INT,      /* int64_t (int with CF_I32) */
    CT_OPT_INT,  /* dsc_config_opt_int_t */
    CT_FLOAT,    /* double */
    CT_STR,      /* const char *, never NULL */
    CT_OPT_STR,  /* const char *, NULL = null */
    CT_ENUM,     /* int-sized enum, strings in `enums` */
    CT_STRLIST,  /* dsc_config_strlist_t */
    CT_OBJECT,   /* nested table */
    CT_SECTION,  /* dsc_config_section_t (kept as JSON) */
    CT_CUSTOM    /* parsed by `parse` (optimizer, scheduler, deprecated keys) */
} cfg_type_t;

enum {
    CF_NULLABLE = 1u << 0,   /* JSON null accepted (enum: stored as value 0) */
    CF_ICASE = 1u << 1,      /* enum names match case-insensitively */
    CF_MIN = 1u << 2,        /* imin/fmin is a bound */
    CF_MAX = 1u << 3,
    CF_MIN_EXCL = 1u << 4,   /* the lower bound is exclusive */
    CF_MAX_EXCL = 1u << 5,
    CF_I32 = 1u << 6,        /* CT_INT field is an int */
    CF_PLAIN = 1u << 7,      /* CT_OBJECT: DeepSpeed reads it as a plain dict */
    CF_DEPRECATED = 1u << 8, /* CT_CUSTOM: a deprecated key */
    CF_NOPRINT = 1u << 9     /* not printed (deprecated keys) */
};

typedef struct cfg_enum_name {
    const char *name; /* the first name listed for a value is the canonical one */
    int value;
} cfg_enum_name_t;

typedef struct cfg_parser cfg_parser_t;
typedef struct cfg_key cfg_key_t;

typedef struct cfg_table {
    const char *name; /* path of the object ("" for the top level) */
    const cfg_key_t *keys;
    size_t n_keys;
    bool plain_dict; /* DeepSpeed ignores unknown keys here */
} cfg_table_t;

/* Parses a CT_CUSTOM value (or a CT_OBJECT given as a non-object, e.g. the legacy boolean
 * zero_optimization). Returns 0 or -1 after recording an error. */
typedef int (*cfg_parse_fn)(cfg_parser_t *p, const cfg_key_t *key, json_t *value, const cfg_pos_t *pos,
                            const char *shown_path);

struct cfg_key {
    const char *name;
    const char *alias; /* accepted alternative spelling (bare stage3_ names) */
    cfg_type_t type;
    unsigned flags;
    size_t off;         /* offsetof(dsc_config_t, field) */
    size_t present_off; /* CT_OBJECT: offsetof a bool `present`, or 0 for none */
    int64_t idef;       /* default: bool, int, enum */
    double fdef;        /* default: float */
    const char *sdef;   /* default: string */
    int64_t imin, imax;
    double fmin, fmax;
    const cfg_enum_name_t *enums; /* NULL-name terminated */
    const cfg_table_t *child;     /* CT_OBJECT */
    cfg_parse_fn parse;           /* CT_CUSTOM, or CT_OBJECT given a non-object */
    const char *note;             /* extra text for messages (e.g. the replacement key) */
    const char *canon;            /* CT_OBJECT: canonical section name when this key is a legacy
                                     spelling of it ("bfloat16" -> "bf16") */
};

extern const cfg_table_t cfg_top_table;
/* Finds the key of `t` called `name` (or whose alias is `name`). */
const cfg_key_t *cfg_table_find(const cfg_table_t *t, const char *name);
/* Looks up a canonical or aliased dotted path; returns the key and its canonical path. */
const cfg_key_t *cfg_lookup_path(const char *path, char *canonical, size_t canonical_sz);
/* The name of an enum value (canonical), or NULL. */
const char *cfg_enum_name(const cfg_enum_name_t *names, int value);

/* ---- parser state and helpers (config_parse.c) ------------------------------------------- */

struct cfg_parser {
    cfg_impl_t *impl;
    dsc_config_t *cfg;
    dsc_config_parse_options_t opts;
    char *err;
    size_t errsz;
    bool failed;
    cfg_arena_t tmp;      /* the position tree */
    const cfg_pos_t *root;
    /* deprecated zero keys, seen during the walk, applied afterwards */
    const cfg_pos_t *dep_cpu_offload, *dep_cpu_offload_param, *dep_gather_fp16;
    bool dep_cpu_offload_val, dep_cpu_offload_param_val, dep_gather_fp16_val;
    const cfg_pos_t *pos_offload_optimizer, *pos_offload_param, *pos_gather_16bit;
    const cfg_pos_t *pos_bfloat16, *pos_zero_bool;
    /* optimizer and scheduler objects, resolved after the walk (their defaults depend on
     * zero_optimization, which may come later in the file) */
    json_t *opt_json, *sched_json;
    const cfg_pos_t *opt_pos, *sched_pos;
};

/* The note recorded as the source of a nullable key written as null whose value is
 * derived later (zero_optimization.overlap_comm). Compared by address. */
extern const char cfg_note_null[];

/* Records "src:line:col: path: message" (first error wins) and returns -1. `at` may be
 * NULL (no position); use_key selects the key's position instead of the value's. */
int cfg_fail(cfg_parser_t *p, const cfg_pos_t *at, bool use_key, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
int cfg_vfail(cfg_parser_t *p, const cfg_pos_t *at, bool use_key, const char *path, const char *fmt,
              va_list ap);
/* A warning with the same prefix; stored on the config and sent to the log callback. */
void cfg_warn(cfg_parser_t *p, const cfg_pos_t *at, bool use_key, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* Formats "src:line:col" (or "src") for a position into buf. */
void cfg_format_where(const dsc_config_t *cfg, int line, int col, char *buf, size_t bufsz);

/* "an integer", "a string", ... for messages. */
/* The value is the string "auto" (any case). */
bool cfg_is_auto(const json_t *v);
/* Error for "auto" at `path`; `default_text` (may be NULL) is the value DeepSpeed would use. */
int cfg_fail_auto(cfg_parser_t *p, const cfg_pos_t *at, const char *path, const char *default_text);
/* Reads an integer: a JSON integer, or a real with no fractional part unless strict_int. */
int cfg_read_int(cfg_parser_t *p, const json_t *v, const cfg_pos_t *at, const char *path, bool strict_int,
                 int64_t *out);
int cfg_read_number(cfg_parser_t *p, const json_t *v, const cfg_pos_t *at, const char *path, double *out);
int cfg_read_bool(cfg_parser_t *p, const json_t *v, const cfg_pos_t *at, const char *path, bool *out);
/* Formats a double as a JSON value: the shortest %.*g that round-trips, with ".0" added
 * to integral values (1.0, as Python prints a float). */
void cfg_format_double(double x, char *buf, size_t bufsz);
/* The same without the ".0" (for messages: "got -1"). */
void cfg_format_num(double x, char *buf, size_t bufsz);
/* Joins a path and a member name. */
void cfg_path_join(char *out, size_t outsz, const char *base, const char *name);
/* Damerau-Levenshtein (optimal string alignment) distance, capped at 64-char inputs. */
int cfg_edit_distance(const char *a, const char *b);
/* Error for an unknown key with a suggestion among `candidates` (NULL-terminated). */
int cfg_unknown_key(cfg_parser_t *p, const cfg_pos_t *at, const char *path, const char *key,
                    const char *const *candidates, bool warn_only, const char *what);
/* cfg_unknown_key for a section DeepSpeed reads as a plain dict (it ignores unknown keys
 * there): an error, or a warning under unknown_section_keys_warn, worded the same everywhere. */
int cfg_unknown_dict_key(cfg_parser_t *p, const cfg_pos_t *at, const char *path, const char *key,
                         const char *const *candidates);
/* The reason given for an unknown key in such a section. */
const char *cfg_plain_dict_reason(const cfg_parser_t *p);

/* ---- optimizer and scheduler parameter tables (config_params.c) -------------------------- */

enum { PK_NUM, PK_INT, PK_PYINT, PK_BOOL, PK_STR, PK_PAIR, PK_NUMLIST, PK_INTLIST };
enum {
    PF_REQ = 1 << 0,     /* no default: must be given */
    PF_NULL = 1 << 1,    /* null accepted */
    PF_DEFNULL = 1 << 2, /* the default is null */
    PF_GE0 = 1 << 3,     /* >= 0 */
    PF_GT0 = 1 << 4,     /* > 0 */
    PF_BETA = 1 << 5,    /* in [0, 1) */
    PF_UNIT = 1 << 6,    /* in [0, 1] */
    PF_GEM1 = 1 << 7     /* >= -1 */
};

typedef struct cfg_prm {
    const char *name;
    unsigned char kind;
    unsigned short flags;
    double def[2];       /* the default (PK_PAIR: both elements) */
    const char *sdef;    /* PK_STR default */
    const char *choices; /* PK_STR: accepted values separated by '|' */
} cfg_prm_t;

#define CP_NUM(n, d, f) {n, PK_NUM, (f), {(d), 0}, NULL, NULL}
#define CP_INT(n, d, f) {n, PK_INT, (f), {(d), 0}, NULL, NULL}
#define CP_PYINT(n, d, f) {n, PK_PYINT, (f), {(d), 0}, NULL, NULL}
#define CP_BOOL(n, d) {n, PK_BOOL, 0, {(d), 0}, NULL, NULL}
#define CP_NBOOL(n) {n, PK_BOOL, PF_NULL | PF_DEFNULL, {0, 0}, NULL, NULL}
#define CP_STR(n, d, ch) {n, PK_STR, 0, {0, 0}, (d), (ch)}
#define CP_PAIR(n, a, b, f) {n, PK_PAIR, (f), {(a), (b)}, NULL, NULL}
#define CP_LIST(n, d, f) {n, PK_NUMLIST, (f), {(d), 0}, NULL, NULL}
#define CP_END {NULL, 0, 0, {0, 0}, NULL, NULL}


/* The keyword table of an optimizer type (canonical name) or scheduler type; NULL if none. */
const cfg_prm_t *cfg_optimizer_table(const char *type);
const cfg_prm_t *cfg_scheduler_table(const char *type);
const cfg_prm_t *cfg_prm_find(const cfg_prm_t *t, const char *name);
/* Reads the "params" object of the optimizer or scheduler against `table`, filling `out`
 * with one entry per table row (given or default, in table order). */
int cfg_read_params(cfg_parser_t *p, json_t *params, const cfg_pos_t *ppos, const char *base, const cfg_prm_t *table,
                    const char *class_note, dsc_config_params_t *out);
void cfg_default_param(const cfg_prm_t *d, const char *note, dsc_config_param_t *out);
/* Typed reads of an effective parameter (numbers: a list gives its first element). */
double cfg_pnum(const dsc_config_params_t *ps, const char *name, double dflt);
bool cfg_pbool(const dsc_config_params_t *ps, const char *name, bool dflt);
/* The parameter was written in the file. */
bool cfg_pgiven(const dsc_config_params_t *ps, const char *name);
int cfg_finish_optimizer_section(cfg_parser_t *p);
int cfg_finish_scheduler_section(cfg_parser_t *p);

/* ---- sections and checks ------------------------------------------------------------------ */

/* Writes every table default into cfg (config_sections.c). */
void cfg_set_defaults(dsc_config_t *cfg);
/* Custom parsers (config_optim.c, config_sched.c): record the object for cfg_finish_optimizer. */
int cfg_parse_optimizer(cfg_parser_t *p, const cfg_key_t *key, json_t *v, const cfg_pos_t *pos, const char *shown);
int cfg_parse_scheduler(cfg_parser_t *p, const cfg_key_t *key, json_t *v, const cfg_pos_t *pos, const char *shown);
/* After the walk and the deprecated keys: validate the optimizer and scheduler and fill
 * their effective params (defaults of the class DeepSpeed would build). */
int cfg_finish_optimizer(cfg_parser_t *p);
/* Cross-field validation and derived values after the walk (config_check.c). */
int cfg_finish(cfg_parser_t *p);
/* Custom parsers for deprecated zero keys and the legacy boolean zero_optimization
 * (config_check.c). */
int cfg_parse_zero_legacy_bool(cfg_parser_t *p, const cfg_key_t *key, json_t *v, const cfg_pos_t *pos,
                               const char *shown);
int cfg_parse_zero_deprecated(cfg_parser_t *p, const cfg_key_t *key, json_t *v, const cfg_pos_t *pos,
                              const char *shown);

/* The optimizer/scheduler parameter lookup for dsc_config_get and printing: formats the
 * param as JSON into buf. */
void cfg_format_param(const dsc_config_param_t *prm, char *buf, size_t bufsz);
/* Formats the value of a table key as JSON. */
void cfg_format_key_value(const dsc_config_t *cfg, const cfg_key_t *k, char *buf, size_t bufsz);
/* The key's value equals its table default. */
bool cfg_key_is_default(const dsc_config_t *cfg, const cfg_key_t *k);
/* For optimizer/scheduler params: the param's default (NULL if it has none / unknown). */
bool cfg_param_is_default(const dsc_config_t *cfg, bool scheduler, const dsc_config_param_t *prm);

/* Batch resolution used by parse (config_batch.c). */
dsc_status_t cfg_resolve_batch(cfg_impl_t *impl, int64_t world_size, const char *origin, char *err, size_t errsz);

/* Copies a message into err (NUL-terminated, truncated). */
void cfg_set_err(char *err, size_t errsz, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif

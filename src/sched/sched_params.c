/* Scheduler type names, DeepSpeed's parameter names and defaults, and the name -> value
 * setters the engine uses to pass a config's scheduler.params (see dsc/sched.h). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "dsc/sched.h"

static void set_err(char *err, size_t errsz, const char *fmt, ...) {
    if (!err || !errsz) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errsz, fmt, ap);
    va_end(ap);
}

/* ---- type names ---------------------------------------------------------------------- */

static const char *const TYPE_NAMES[DSC_SCHED_TYPE_COUNT] = {
    "LRRangeTest", "OneCycle", "WarmupLR", "WarmupDecayLR", "WarmupCosineLR", "callback",
};

/* torch.optim.lr_scheduler classes DeepSpeed would accept by name (spec §2.7). */
static const char *const TORCH_SCHEDULERS[] = {
    "LambdaLR",       "MultiplicativeLR", "StepLR",       "MultiStepLR", "ConstantLR",
    "LinearLR",       "ExponentialLR",    "SequentialLR", "PolynomialLR", "CosineAnnealingLR",
    "ChainedScheduler", "ReduceLROnPlateau", "CyclicLR",  "OneCycleLR",  "CosineAnnealingWarmRestarts",
    "LRScheduler",    NULL,
};

const char *dsc_sched_type_name(dsc_sched_type_t type) {
    if ((int)type < 0 || type >= DSC_SCHED_TYPE_COUNT) return "?";
    return TYPE_NAMES[type];
}

/* Levenshtein distance, capped (names are short). */
static size_t edit_distance(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63) return 64;
    size_t prev[64], cur[64];
    for (size_t j = 0; j <= lb; j++) prev[j] = j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
            size_t del = prev[j] + 1, ins = cur[j - 1] + 1;
            cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
        memcpy(prev, cur, (lb + 1) * sizeof prev[0]);
    }
    return prev[lb];
}

static bool close_enough(const char *name, size_t d) {
    size_t len = strlen(name);
    size_t limit = len / 3 > 2 ? len / 3 : 2;
    return d <= limit;
}

dsc_status_t dsc_sched_type_from_name(const char *name, dsc_sched_type_t *out, char *err, size_t errsz) {
    if (!name || !out) {
        set_err(err, errsz, "scheduler.type: NULL argument");
        return DSC_ERR_INVALID;
    }
    for (int t = 0; t < DSC_SCHED_CALLBACK; t++) {
        if (strcmp(name, TYPE_NAMES[t]) == 0) {
            *out = (dsc_sched_type_t)t;
            return DSC_OK;
        }
    }
    for (int i = 0; TORCH_SCHEDULERS[i]; i++) {
        if (strcmp(name, TORCH_SCHEDULERS[i]) == 0) {
            set_err(err, errsz,
                    "scheduler.type \"%s\" is a torch.optim.lr_scheduler class, which dsc does not implement; "
                    "use one of LRRangeTest, OneCycle, WarmupLR, WarmupDecayLR, WarmupCosineLR or a client "
                    "scheduler callback",
                    name);
            return DSC_ERR_UNSUPPORTED;
        }
    }
    const char *best = NULL;
    size_t best_d = (size_t)-1;
    for (int t = 0; t < DSC_SCHED_CALLBACK; t++) {
        size_t d = strcasecmp(name, TYPE_NAMES[t]) == 0 ? 0 : edit_distance(name, TYPE_NAMES[t]);
        if (d < best_d) {
            best_d = d;
            best = TYPE_NAMES[t];
        }
    }
    if (best && close_enough(best, best_d))
        set_err(err, errsz, "DeepSpeed does not recognize LR scheduler %s (scheduler.type; did you mean \"%s\"?)",
                name, best);
    else
        set_err(err, errsz,
                "DeepSpeed does not recognize LR scheduler %s (scheduler.type must be one of LRRangeTest, "
                "OneCycle, WarmupLR, WarmupDecayLR, WarmupCosineLR)",
                name);
    return DSC_ERR_CONFIG;
}

/* ---- parameter table ----------------------------------------------------------------- */

typedef enum {
    PK_BOUND,    /* dsc_sched_bound_t: scalar, per-group list, or null */
    PK_DOUBLE,   /* plain double, not nullable */
    PK_OPT,      /* double, NAN = null */
    PK_REQ,      /* double, NAN = required-and-missing */
    PK_INT,      /* int64_t; a JSON real is accepted when integral */
    PK_INT_STRICT, /* int64_t; DeepSpeed's isinstance(x, int) check: JSON reals rejected */
    PK_BOOL,
    PK_WARMUP_TYPE,
} param_kind_t;

#define T_LRRT (1u << DSC_SCHED_LR_RANGE_TEST)
#define T_1CYC (1u << DSC_SCHED_ONE_CYCLE)
#define T_WLR (1u << DSC_SCHED_WARMUP_LR)
#define T_WDLR (1u << DSC_SCHED_WARMUP_DECAY_LR)
#define T_WCOS (1u << DSC_SCHED_WARMUP_COSINE_LR)
#define T_ALL (T_LRRT | T_1CYC | T_WLR | T_WDLR | T_WCOS)

typedef struct {
    const char *name;
    param_kind_t kind;
    size_t offset;
    unsigned types;
    bool nullable; /* bounds: may be set to null */
} param_def_t;

#define F(field) offsetof(dsc_sched_params_t, field)
static const param_def_t PARAMS[] = {
    {"lr_range_test_min_lr", PK_BOUND, F(lr_range_test_min_lr), T_LRRT, false},
    {"lr_range_test_step_size", PK_INT_STRICT, F(lr_range_test_step_size), T_LRRT, false},
    {"lr_range_test_step_rate", PK_DOUBLE, F(lr_range_test_step_rate), T_LRRT, false},
    {"lr_range_test_staircase", PK_BOOL, F(lr_range_test_staircase), T_LRRT, false},
    {"cycle_min_lr", PK_BOUND, F(cycle_min_lr), T_1CYC, true},
    {"cycle_max_lr", PK_BOUND, F(cycle_max_lr), T_1CYC, true},
    {"decay_lr_rate", PK_DOUBLE, F(decay_lr_rate), T_1CYC, false},
    {"cycle_first_step_size", PK_DOUBLE, F(cycle_first_step_size), T_1CYC, false},
    {"cycle_second_step_size", PK_OPT, F(cycle_second_step_size), T_1CYC, false},
    {"cycle_first_stair_count", PK_DOUBLE, F(cycle_first_stair_count), T_1CYC, false},
    {"cycle_second_stair_count", PK_OPT, F(cycle_second_stair_count), T_1CYC, false},
    {"decay_step_size", PK_DOUBLE, F(decay_step_size), T_1CYC, false},
    {"cycle_momentum", PK_BOOL, F(cycle_momentum), T_1CYC, false},
    {"cycle_min_mom", PK_BOUND, F(cycle_min_mom), T_1CYC, false},
    {"cycle_max_mom", PK_BOUND, F(cycle_max_mom), T_1CYC, false},
    {"decay_mom_rate", PK_DOUBLE, F(decay_mom_rate), T_1CYC, false},
    {"total_num_steps", PK_REQ, F(total_num_steps), T_WDLR | T_WCOS, false},
    {"warmup_min_lr", PK_BOUND, F(warmup_min_lr), T_WLR | T_WDLR, false},
    {"warmup_max_lr", PK_BOUND, F(warmup_max_lr), T_WLR | T_WDLR, true},
    {"warmup_num_steps", PK_INT_STRICT, F(warmup_num_steps), T_WLR | T_WDLR | T_WCOS, false},
    {"warmup_type", PK_WARMUP_TYPE, F(warmup_type), T_WLR | T_WDLR | T_WCOS, false},
    {"warmup_min_ratio", PK_DOUBLE, F(warmup_min_ratio), T_WCOS, false},
    {"cos_min_ratio", PK_DOUBLE, F(cos_min_ratio), T_WCOS, false},
    {"last_batch_iteration", PK_INT, F(last_batch_iteration), T_ALL, false},
};
#undef F
#define NPARAMS (sizeof PARAMS / sizeof PARAMS[0])

/* Per-type NULL-terminated name lists, built from the table order (static, no init needed). */
static const char *const NAMES_LRRT[] = {"lr_range_test_min_lr", "lr_range_test_step_size",
                                         "lr_range_test_step_rate", "lr_range_test_staircase",
                                         "last_batch_iteration", NULL};
static const char *const NAMES_1CYC[] = {"cycle_min_lr", "cycle_max_lr", "decay_lr_rate",
                                         "cycle_first_step_size", "cycle_second_step_size",
                                         "cycle_first_stair_count", "cycle_second_stair_count",
                                         "decay_step_size", "cycle_momentum", "cycle_min_mom", "cycle_max_mom",
                                         "decay_mom_rate", "last_batch_iteration", NULL};
static const char *const NAMES_WLR[] = {"warmup_min_lr", "warmup_max_lr", "warmup_num_steps", "warmup_type",
                                        "last_batch_iteration", NULL};
static const char *const NAMES_WDLR[] = {"total_num_steps", "warmup_min_lr", "warmup_max_lr", "warmup_num_steps",
                                         "warmup_type", "last_batch_iteration", NULL};
static const char *const NAMES_WCOS[] = {"total_num_steps", "warmup_min_ratio", "warmup_num_steps",
                                         "cos_min_ratio", "warmup_type", "last_batch_iteration", NULL};
static const char *const NAMES_NONE[] = {NULL};

const char *const *dsc_sched_param_names(dsc_sched_type_t type) {
    switch (type) {
    case DSC_SCHED_LR_RANGE_TEST: return NAMES_LRRT;
    case DSC_SCHED_ONE_CYCLE: return NAMES_1CYC;
    case DSC_SCHED_WARMUP_LR: return NAMES_WLR;
    case DSC_SCHED_WARMUP_DECAY_LR: return NAMES_WDLR;
    case DSC_SCHED_WARMUP_COSINE_LR: return NAMES_WCOS;
    default: return NAMES_NONE;
    }
}

static void bound_scalar(dsc_sched_bound_t *b, double v) {
    memset(b, 0, sizeof *b);
    b->kind = DSC_SCHED_SCALAR;
    b->n = 1;
    b->v[0] = v;
}

static void bound_null(dsc_sched_bound_t *b) { memset(b, 0, sizeof *b); }

dsc_status_t dsc_sched_params_default(dsc_sched_params_t *p, dsc_sched_type_t type) {
    if (!p) return DSC_ERR_INVALID;
    memset(p, 0, sizeof *p);
    if ((int)type < 0 || type >= DSC_SCHED_CALLBACK) return DSC_ERR_INVALID;
    p->type = type;
    p->last_batch_iteration = -1;
    bound_scalar(&p->lr_range_test_min_lr, 1e-3);
    p->lr_range_test_step_size = 2000;
    p->lr_range_test_step_rate = 1.0;
    p->lr_range_test_staircase = false;
    bound_null(&p->cycle_min_lr);
    bound_null(&p->cycle_max_lr);
    p->decay_lr_rate = 0.0;
    p->cycle_first_step_size = 2000;
    p->cycle_second_step_size = NAN;
    p->cycle_first_stair_count = 0;
    p->cycle_second_stair_count = NAN;
    p->decay_step_size = 0;
    p->cycle_momentum = true;
    bound_scalar(&p->cycle_min_mom, 0.8);
    bound_scalar(&p->cycle_max_mom, 0.9);
    p->decay_mom_rate = 0.0;
    p->total_num_steps = NAN;
    bound_scalar(&p->warmup_min_lr, 0.0);
    if (type == DSC_SCHED_WARMUP_DECAY_LR)
        bound_scalar(&p->warmup_max_lr, 0.001);
    else
        bound_null(&p->warmup_max_lr); /* WarmupLR: None -> the optimizer's lr per group */
    p->warmup_num_steps = 1000;
    p->warmup_type = DSC_WARMUP_LOG;
    p->warmup_min_ratio = 0.0;
    p->cos_min_ratio = 0.0001;
    p->warmup_type_unknown[0] = '\0';
    return DSC_OK;
}

/* Finds `name` for p->type; on failure writes the unknown-name message. */
static const param_def_t *lookup(const dsc_sched_params_t *p, const char *name, char *err, size_t errsz) {
    if (!p || !name) {
        set_err(err, errsz, "scheduler.params: NULL argument");
        return NULL;
    }
    const char *tname = dsc_sched_type_name(p->type);
    if ((int)p->type < 0 || p->type >= DSC_SCHED_CALLBACK) {
        set_err(err, errsz, "scheduler.params.%s: the params have no scheduler type (call dsc_sched_params_default)",
                name);
        return NULL;
    }
    unsigned bit = 1u << p->type;
    for (size_t i = 0; i < NPARAMS; i++)
        if ((PARAMS[i].types & bit) && strcmp(PARAMS[i].name, name) == 0) return &PARAMS[i];
    /* A parameter of another scheduler? */
    for (size_t i = 0; i < NPARAMS; i++) {
        if (strcmp(PARAMS[i].name, name) == 0) {
            char owners[128] = "";
            for (int t = 0; t < DSC_SCHED_CALLBACK; t++) {
                if (!(PARAMS[i].types & (1u << t))) continue;
                if (owners[0]) strncat(owners, ", ", sizeof owners - strlen(owners) - 1);
                strncat(owners, TYPE_NAMES[t], sizeof owners - strlen(owners) - 1);
            }
            set_err(err, errsz, "scheduler.params.%s: %s has no parameter '%s' (it is a parameter of %s)", name, tname,
                    name, owners);
            return NULL;
        }
    }
    const char *best = NULL;
    size_t best_d = (size_t)-1;
    for (const char *const *n = dsc_sched_param_names(p->type); *n; n++) {
        size_t d = edit_distance(name, *n);
        if (d < best_d) {
            best_d = d;
            best = *n;
        }
    }
    if (best && close_enough(best, best_d)) {
        set_err(err, errsz, "scheduler.params.%s: %s has no parameter '%s' (did you mean '%s'?)", name, tname, name,
                best);
    } else {
        char list[512] = "";
        for (const char *const *n = dsc_sched_param_names(p->type); *n; n++) {
            if (list[0]) strncat(list, ", ", sizeof list - strlen(list) - 1);
            strncat(list, *n, sizeof list - strlen(list) - 1);
        }
        set_err(err, errsz, "scheduler.params.%s: %s has no parameter '%s' (its parameters: %s)", name, tname, name,
                list);
    }
    return NULL;
}

static dsc_status_t set_number(dsc_sched_params_t *p, const char *name, double value, bool is_real, char *err,
                               size_t errsz) {
    const param_def_t *d = lookup(p, name, err, errsz);
    if (!d) return DSC_ERR_CONFIG;
    char *base = (char *)p + d->offset;
    if (!isfinite(value)) {
        set_err(err, errsz, "scheduler.params.%s must be a finite number, got %g", name, value);
        return DSC_ERR_CONFIG;
    }
    switch (d->kind) {
    case PK_BOUND: bound_scalar((dsc_sched_bound_t *)base, value); return DSC_OK;
    case PK_DOUBLE:
    case PK_OPT:
    case PK_REQ: *(double *)base = value; return DSC_OK;
    case PK_BOOL: *(bool *)base = value != 0.0; return DSC_OK;
    case PK_INT_STRICT:
        if (is_real) {
            set_err(err, errsz, "scheduler.params.%s must be a positive integer, got %.17g written as a real number "
                    "(DeepSpeed requires an integer)", name, value);
            return DSC_ERR_CONFIG;
        }
        /* fall through */
    case PK_INT:
        if (value != floor(value) || fabs(value) > 9.0e15) {
            set_err(err, errsz, "scheduler.params.%s must be an integer, got %.17g", name, value);
            return DSC_ERR_CONFIG;
        }
        *(int64_t *)base = (int64_t)value;
        return DSC_OK;
    case PK_WARMUP_TYPE:
        set_err(err, errsz, "scheduler.params.%s must be a string (\"log\" or \"linear\"), got the number %g", name,
                value);
        return DSC_ERR_CONFIG;
    }
    return DSC_ERR_CONFIG;
}

dsc_status_t dsc_sched_set_param(dsc_sched_params_t *p, const char *name, double value, char *err, size_t errsz) {
    return set_number(p, name, value, false, err, errsz);
}

dsc_status_t dsc_sched_set_param_real(dsc_sched_params_t *p, const char *name, double value, char *err,
                                      size_t errsz) {
    return set_number(p, name, value, true, err, errsz);
}

dsc_status_t dsc_sched_set_param_list(dsc_sched_params_t *p, const char *name, const double *values, size_t n,
                                      char *err, size_t errsz) {
    const param_def_t *d = lookup(p, name, err, errsz);
    if (!d) return DSC_ERR_CONFIG;
    if (d->kind != PK_BOUND) {
        set_err(err, errsz, "scheduler.params.%s takes a single value, not a list", name);
        return DSC_ERR_CONFIG;
    }
    if (n == 0 || n > DSC_SCHED_MAX_GROUPS || !values) {
        set_err(err, errsz, "scheduler.params.%s: a per-param-group list needs 1 to %d values, got %zu", name,
                DSC_SCHED_MAX_GROUPS, n);
        return DSC_ERR_CONFIG;
    }
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(values[i])) {
            set_err(err, errsz, "scheduler.params.%s[%zu] must be a finite number, got %g", name, i, values[i]);
            return DSC_ERR_CONFIG;
        }
    }
    dsc_sched_bound_t *b = (dsc_sched_bound_t *)((char *)p + d->offset);
    memset(b, 0, sizeof *b);
    b->kind = DSC_SCHED_LIST;
    b->n = n;
    memcpy(b->v, values, n * sizeof values[0]);
    return DSC_OK;
}

dsc_status_t dsc_sched_set_param_str(dsc_sched_params_t *p, const char *name, const char *value, char *err,
                                     size_t errsz) {
    const param_def_t *d = lookup(p, name, err, errsz);
    if (!d) return DSC_ERR_CONFIG;
    if (!value) {
        set_err(err, errsz, "scheduler.params.%s: NULL string", name);
        return DSC_ERR_CONFIG;
    }
    if (d->kind != PK_WARMUP_TYPE) {
        set_err(err, errsz, "scheduler.params.%s must be a number, got the string \"%.64s\"", name, value);
        return DSC_ERR_CONFIG;
    }
    if (strcmp(value, "log") == 0) {
        p->warmup_type = DSC_WARMUP_LOG;
        p->warmup_type_unknown[0] = '\0';
    } else if (strcmp(value, "linear") == 0) {
        p->warmup_type = DSC_WARMUP_LINEAR;
        p->warmup_type_unknown[0] = '\0';
    } else {
        /* DeepSpeed: warning "Using unknown warmup_type: X. ..." and log. */
        p->warmup_type = DSC_WARMUP_LOG;
        snprintf(p->warmup_type_unknown, sizeof p->warmup_type_unknown, "%s", value[0] ? value : "(empty)");
    }
    return DSC_OK;
}

dsc_status_t dsc_sched_set_param_null(dsc_sched_params_t *p, const char *name, char *err, size_t errsz) {
    const param_def_t *d = lookup(p, name, err, errsz);
    if (!d) return DSC_ERR_CONFIG;
    char *base = (char *)p + d->offset;
    if (d->kind == PK_BOUND && d->nullable) {
        bound_null((dsc_sched_bound_t *)base);
        return DSC_OK;
    }
    if (d->kind == PK_OPT || d->kind == PK_REQ) {
        *(double *)base = NAN;
        return DSC_OK;
    }
    set_err(err, errsz, "scheduler.params.%s cannot be null", name);
    return DSC_ERR_CONFIG;
}

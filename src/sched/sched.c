/* DeepSpeed's five LR schedulers and the client-callback scheduler (see dsc/sched.h).
 *
 * Each formula mirrors deepspeed/runtime/lr_schedules.py (commit edaa7221) operation by
 * operation in double precision, including where DeepSpeed converts ints to floats, so that
 * sequences agree with DeepSpeed's Python to rounding (bit-exact on x86-64 with glibc). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dsc/sched.h"

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

struct dsc_sched {
    dsc_sched_type_t type;
    size_t ngroups;
    int64_t it; /* last_batch_iteration */

    /* Per-group values (ngroups each), resolved from scalars / lists / base lrs. */
    double *lo;     /* LRRangeTest min_lr, OneCycle cycle_min_lr, Warmup*: warmup_min_lr */
    double *hi;     /* OneCycle cycle_max_lr, Warmup*: warmup_max_lr */
    double *delta;  /* Warmup*: hi - lo, as DeepSpeed precomputes it */
    double *org;    /* WarmupCosineLR: the optimizer's lr at construction */
    double *mom_lo; /* OneCycle cycle_min_mom */
    double *mom_hi; /* OneCycle cycle_max_mom */
    /* What is currently written into the optimizer's param groups. */
    double *cur_lr;
    double *cur_mom;
    unsigned char *cur_has_mom;
    /* Scratch for an all-or-nothing update. */
    double *tmp_lr;
    double *tmp_mom;
    unsigned char *tmp_has_mom;

    /* LRRangeTest */
    double step_size; /* as a double: DeepSpeed divides float(it+1) by it */
    double step_rate;
    bool staircase;
    /* OneCycle */
    double s1, s2, total_size, step_ratio, stairs1, stairs2, decay_step_size, decay_lr_rate, decay_mom_rate;
    bool skip_lr_decay, skip_mom_decay;
    bool cycle_momentum; /* momentum cycled (cycle_momentum and the optimizer has betas) */
    bool ds_betas;       /* deepspeed_onecycle_betas */
    /* Warmup* */
    int64_t warmup_steps; /* W = max(2, warmup_num_steps) */
    double inv_log_warmup;
    dsc_warmup_type_t warmup_type;
    double total_num_steps;
    double warmup_min_ratio, cos_min_ratio;
    /* callback */
    dsc_lr_fn lr_fn;
    dsc_momentum_fn mom_fn;
    void *user;

    char errmsg[256];
};

static void set_err(char *err, size_t errsz, const char *fmt, ...) {
    if (!err || !errsz) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errsz, fmt, ap);
    va_end(ap);
}

static void warn(const dsc_sched_options_t *o, const char *fmt, ...) {
    if (!o->log_fn) return;
    char line[320];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    o->log_fn(DSC_LOG_WARN, line, o->log_user);
}

/* ---- formulas (DeepSpeed get_lr / get_mom at iteration `it`) --------------------------- */

/* Shared warmup helper for 0 <= it < W. */
static double warmup_gamma(const dsc_sched_t *s, int64_t it) {
    if (s->warmup_type == DSC_WARMUP_LOG) return s->inv_log_warmup * log((double)(it + 1));
    return (double)it / (double)s->warmup_steps;
}

static double onecycle_scale(const dsc_sched_t *s, int64_t it) {
    double b = (double)(it + 1); /* batch_iteration, >= 0 */
    double cycle = floor(1.0 + b / s->total_size);
    double x = 1.0 + b / s->total_size - cycle;
    double scale, stairs;
    if (x <= s->step_ratio) {
        scale = x / s->step_ratio;
        stairs = s->stairs1;
    } else {
        scale = (x - 1.0) / (s->step_ratio - 1.0);
        stairs = s->stairs2;
    }
    if (stairs > 0) {
        double c = fmod(b, s->total_size); /* = Python's % for b >= 0 */
        double pos;
        if (c <= s->s1)
            pos = c * stairs / s->s1;
        else
            pos = (s->total_size - c) * stairs / s->s2;
        scale = floor(pos) / stairs;
    }
    return scale;
}

static double lr_formula(const dsc_sched_t *s, int64_t it, size_t g) {
    switch (s->type) {
    case DSC_SCHED_LR_RANGE_TEST: {
        double interval = (double)(it + 1) / s->step_size;
        if (s->staircase) interval = floor(interval);
        return s->lo[g] * (1.0 + s->step_rate * interval);
    }
    case DSC_SCHED_ONE_CYCLE: {
        if ((double)it < s->total_size) return s->lo[g] + (s->hi[g] - s->lo[g]) * onecycle_scale(s, it);
        if (s->skip_lr_decay) return s->lo[g];
        double d = (double)it - s->total_size + 1.0;
        double factor = 1.0 + s->decay_lr_rate * (d / s->decay_step_size);
        return s->lo[g] / factor;
    }
    case DSC_SCHED_WARMUP_LR:
    case DSC_SCHED_WARMUP_DECAY_LR: {
        if (it < 0) return s->lo[g];
        double gamma;
        if (it < s->warmup_steps)
            gamma = warmup_gamma(s, it);
        else if (s->type == DSC_SCHED_WARMUP_LR)
            gamma = 1.0;
        else
            gamma = fmax(0.0, (s->total_num_steps - (double)it) /
                                  fmax(1.0, s->total_num_steps - (double)s->warmup_steps));
        return s->lo[g] + s->delta[g] * gamma;
    }
    case DSC_SCHED_WARMUP_COSINE_LR: {
        if (it < 0) return 0.0;
        double ratio;
        if (it < s->warmup_steps) {
            ratio = warmup_gamma(s, it);
            ratio = s->warmup_min_ratio + ratio * (1.0 - s->warmup_min_ratio);
        } else {
            double real_last = (double)(it - s->warmup_steps + 1);
            double real_total = fmax(1.0, s->total_num_steps - (double)s->warmup_steps);
            double progress = fmin(1.0, real_last / real_total);
            ratio = (1.0 + cos(M_PI * progress)) / 2.0;
            ratio = fmax(0.0, s->cos_min_ratio + (1.0 - s->cos_min_ratio) * ratio);
        }
        return s->org[g] * ratio;
    }
    default: return NAN;
    }
}

/* OneCycle beta1 (the caller checks s->cycle_momentum). */
static double mom_formula(const dsc_sched_t *s, int64_t it, size_t g) {
    if ((double)it < s->total_size)
        return s->mom_hi[g] - (s->mom_hi[g] - s->mom_lo[g]) * onecycle_scale(s, it);
    if (s->skip_mom_decay) return s->mom_hi[g];
    double d = (double)it - s->total_size + 1.0;
    return s->mom_hi[g] * (1.0 + s->decay_mom_rate * (d / s->decay_step_size));
}

/* Computes every group's values at `it` into tmp_*; `construct` selects the values the
 * constructor writes at it == -1 instead of the formula's. Fails only for callbacks. */
static dsc_status_t compute(dsc_sched_t *s, int64_t it, bool construct) {
    for (size_t g = 0; g < s->ngroups; g++) {
        s->tmp_has_mom[g] = 0;
        s->tmp_mom[g] = NAN;
        if (s->type == DSC_SCHED_CALLBACK) {
            int64_t step = it + 1;
            double lr = s->lr_fn(step, g, s->user);
            if (!isfinite(lr) || lr < 0) {
                snprintf(s->errmsg, sizeof s->errmsg,
                         "client scheduler returned lr %g for step %lld, group %zu (must be finite and >= 0)", lr,
                         (long long)step, g);
                return DSC_ERR_INVALID;
            }
            s->tmp_lr[g] = lr;
            double b1 = NAN;
            if (s->mom_fn && s->mom_fn(step, g, &b1, s->user)) {
                if (!isfinite(b1)) {
                    snprintf(s->errmsg, sizeof s->errmsg,
                             "client scheduler returned momentum %g for step %lld, group %zu (must be finite)", b1,
                             (long long)step, g);
                    return DSC_ERR_INVALID;
                }
                s->tmp_mom[g] = b1;
                s->tmp_has_mom[g] = 1;
            }
            continue;
        }
        s->tmp_lr[g] = lr_formula(s, it, g);
        if (s->type == DSC_SCHED_ONE_CYCLE && s->cycle_momentum) {
            /* DeepSpeed's constructor writes (cycle_min_mom, 0.99) rather than the formula. */
            s->tmp_mom[g] = (construct && it == -1 && s->ds_betas) ? s->mom_lo[g] : mom_formula(s, it, g);
            s->tmp_has_mom[g] = 1;
        }
    }
    return DSC_OK;
}

static void commit(dsc_sched_t *s, int64_t it) {
    s->it = it;
    memcpy(s->cur_lr, s->tmp_lr, s->ngroups * sizeof(double));
    memcpy(s->cur_mom, s->tmp_mom, s->ngroups * sizeof(double));
    memcpy(s->cur_has_mom, s->tmp_has_mom, s->ngroups);
}

/* ---- construction ------------------------------------------------------------------- */

static dsc_sched_t *alloc_sched(size_t ngroups) {
    dsc_sched_t *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->ngroups = ngroups;
    double **arrays[] = {&s->lo, &s->hi, &s->delta, &s->org, &s->mom_lo, &s->mom_hi,
                         &s->cur_lr, &s->cur_mom, &s->tmp_lr, &s->tmp_mom};
    bool ok = true;
    for (size_t i = 0; i < sizeof arrays / sizeof arrays[0]; i++) {
        *arrays[i] = calloc(ngroups, sizeof(double));
        ok = ok && *arrays[i];
    }
    s->cur_has_mom = calloc(ngroups, 1);
    s->tmp_has_mom = calloc(ngroups, 1);
    if (!ok || !s->cur_has_mom || !s->tmp_has_mom) {
        dsc_sched_free(s);
        return NULL;
    }
    return s;
}

void dsc_sched_free(dsc_sched_t *s) {
    if (!s) return;
    free(s->lo);
    free(s->hi);
    free(s->delta);
    free(s->org);
    free(s->mom_lo);
    free(s->mom_hi);
    free(s->cur_lr);
    free(s->cur_mom);
    free(s->tmp_lr);
    free(s->tmp_mom);
    free(s->cur_has_mom);
    free(s->tmp_has_mom);
    free(s);
}

/* Resolves a bound to one value per group (DeepSpeed's _format_param). `what` names the
 * parameter; null is reported missing; values must be >= lo and, when hi_open, < hi. */
static dsc_status_t resolve(const dsc_sched_bound_t *b, const char *tname, const char *what, size_t ngroups,
                            double lo, bool hi_open, double hi, double *out, char *err, size_t errsz) {
    if (b->kind == DSC_SCHED_NULL) {
        set_err(err, errsz, "%s: scheduler.params.%s is required (missing or null)", tname, what);
        return DSC_ERR_CONFIG;
    }
    if (b->kind == DSC_SCHED_LIST && b->n != ngroups) {
        set_err(err, errsz,
                "%s: scheduler.params.%s: expected %zu values (one per optimizer param group), got a list of %zu",
                tname, what, ngroups, b->n);
        return DSC_ERR_CONFIG;
    }
    if (b->kind != DSC_SCHED_LIST && b->kind != DSC_SCHED_SCALAR) {
        set_err(err, errsz, "%s: scheduler.params.%s has an invalid kind", tname, what);
        return DSC_ERR_CONFIG;
    }
    for (size_t g = 0; g < ngroups; g++) {
        double v = b->kind == DSC_SCHED_LIST ? b->v[g] : b->v[0];
        bool bad = !isfinite(v) || v < lo || (hi_open && v >= hi);
        if (bad) {
            char idx[32] = "";
            if (b->kind == DSC_SCHED_LIST) snprintf(idx, sizeof idx, "[%zu]", g);
            if (hi_open)
                set_err(err, errsz, "%s: scheduler.params.%s%s must be in [%g, %g), got %.17g", tname, what, idx, lo,
                        hi, v);
            else
                set_err(err, errsz, "%s: scheduler.params.%s%s must be >= %g, got %.17g", tname, what, idx, lo, v);
            return DSC_ERR_CONFIG;
        }
        out[g] = v;
    }
    return DSC_OK;
}

#define CHECK_RC(call)                                                                                 \
    do {                                                                                               \
        dsc_status_t rc_ = (call);                                                                     \
        if (rc_ != DSC_OK) return rc_;                                                                 \
    } while (0)

static dsc_status_t need_finite(const char *tname, const char *what, double v, char *err, size_t errsz) {
    if (isfinite(v)) return DSC_OK;
    set_err(err, errsz, "%s: scheduler.params.%s must be a finite number, got %g", tname, what, v);
    return DSC_ERR_CONFIG;
}

static dsc_status_t need_nonneg(const char *tname, const char *what, double v, char *err, size_t errsz) {
    CHECK_RC(need_finite(tname, what, v, err, errsz));
    if (v >= 0) return DSC_OK;
    set_err(err, errsz, "%s: scheduler.params.%s must be >= 0, got %.17g", tname, what, v);
    return DSC_ERR_CONFIG;
}

static dsc_status_t need_base_lrs(const dsc_sched_options_t *o, const char *tname, const char *why, char *err,
                                  size_t errsz) {
    if (!o->base_lrs) {
        set_err(err, errsz, "%s: %s, so the optimizer's lr per param group is needed (dsc_sched_options_t.base_lrs)",
                tname, why);
        return DSC_ERR_INVALID;
    }
    return DSC_OK;
}

static dsc_status_t setup_warmup(dsc_sched_t *s, const dsc_sched_params_t *p, const dsc_sched_options_t *o,
                                 const char *tname, char *err, size_t errsz) {
    if (p->warmup_num_steps <= 0) {
        set_err(err, errsz, "%s: scheduler.params.warmup_num_steps must be a positive integer, got %lld", tname,
                (long long)p->warmup_num_steps);
        return DSC_ERR_CONFIG;
    }
    if (p->warmup_type != DSC_WARMUP_LOG && p->warmup_type != DSC_WARMUP_LINEAR) {
        set_err(err, errsz, "%s: scheduler.params.warmup_type is invalid (%d)", tname, (int)p->warmup_type);
        return DSC_ERR_CONFIG;
    }
    if (p->warmup_type_unknown[0])
        warn(o, "%s: Using unknown warmup_type: %s. The increasing function is set to default (log)", tname,
             p->warmup_type_unknown);
    s->warmup_steps = p->warmup_num_steps < 2 ? 2 : p->warmup_num_steps;
    s->warmup_type = p->warmup_type;
    s->inv_log_warmup = 1.0 / log((double)s->warmup_steps);
    return DSC_OK;
}

static dsc_status_t setup(dsc_sched_t *s, const dsc_sched_params_t *p, const dsc_sched_options_t *o, char *err,
                          size_t errsz) {
    const char *tname = dsc_sched_type_name(p->type);
    size_t n = s->ngroups;
    if (o->base_lrs) {
        for (size_t g = 0; g < n; g++) {
            if (!isfinite(o->base_lrs[g]) || o->base_lrs[g] < 0) {
                set_err(err, errsz, "%s: the optimizer's lr of param group %zu must be finite and >= 0, got %g",
                        tname, g, o->base_lrs[g]);
                return DSC_ERR_INVALID;
            }
        }
    }
    switch (p->type) {
    case DSC_SCHED_LR_RANGE_TEST:
        CHECK_RC(resolve(&p->lr_range_test_min_lr, tname, "lr_range_test_min_lr", n, 0, false, 0, s->lo, err, errsz));
        if (p->lr_range_test_step_size <= 0) {
            set_err(err, errsz, "%s: scheduler.params.lr_range_test_step_size must be a positive integer, got %lld",
                    tname, (long long)p->lr_range_test_step_size);
            return DSC_ERR_CONFIG;
        }
        CHECK_RC(need_nonneg(tname, "lr_range_test_step_rate", p->lr_range_test_step_rate, err, errsz));
        s->step_size = (double)p->lr_range_test_step_size;
        s->step_rate = p->lr_range_test_step_rate;
        s->staircase = p->lr_range_test_staircase;
        return DSC_OK;

    case DSC_SCHED_ONE_CYCLE: {
        double s1 = p->cycle_first_step_size;
        double s2 = isnan(p->cycle_second_step_size) ? s1 : p->cycle_second_step_size;
        CHECK_RC(need_finite(tname, "cycle_first_step_size", s1, err, errsz));
        CHECK_RC(need_finite(tname, "cycle_second_step_size", s2, err, errsz));
        if (!(s1 > 0)) {
            set_err(err, errsz, "%s: scheduler.params.cycle_first_step_size must be positive, got %.17g", tname, s1);
            return DSC_ERR_CONFIG;
        }
        if (s2 < 0) {
            set_err(err, errsz, "%s: scheduler.params.cycle_second_step_size must be non-negative, got %.17g", tname,
                    s2);
            return DSC_ERR_CONFIG;
        }
        s->s1 = s1;
        s->s2 = s2;
        s->total_size = s1 + s2;
        s->step_ratio = s1 / s->total_size;
        CHECK_RC(need_finite(tname, "cycle_first_stair_count", p->cycle_first_stair_count, err, errsz));
        s->stairs1 = p->cycle_first_stair_count;
        s->stairs2 = isnan(p->cycle_second_stair_count) ? s->stairs1 : p->cycle_second_stair_count;
        CHECK_RC(need_finite(tname, "cycle_second_stair_count", s->stairs2, err, errsz));
        CHECK_RC(need_nonneg(tname, "decay_step_size", p->decay_step_size, err, errsz));
        CHECK_RC(need_nonneg(tname, "decay_lr_rate", p->decay_lr_rate, err, errsz));
        CHECK_RC(need_finite(tname, "decay_mom_rate", p->decay_mom_rate, err, errsz));
        s->decay_step_size = p->decay_step_size;
        s->decay_lr_rate = p->decay_lr_rate;
        s->decay_mom_rate = p->decay_mom_rate;
        /* math.isclose(x, 0) with default tolerances is x == 0. */
        s->skip_lr_decay = s->skip_mom_decay = (p->decay_step_size == 0);
        if (p->decay_lr_rate == 0) s->skip_lr_decay = true;
        CHECK_RC(resolve(&p->cycle_min_lr, tname, "cycle_min_lr", n, 0, false, 0, s->lo, err, errsz));
        CHECK_RC(resolve(&p->cycle_max_lr, tname, "cycle_max_lr", n, 0, false, 0, s->hi, err, errsz));
        s->cycle_momentum = p->cycle_momentum;
        if (s->cycle_momentum && !o->has_betas) {
            warn(o, "%s: cycle_momentum is disabled because the optimizer does not support momentum, no betas "
                    "attribute in defaults", tname);
            s->cycle_momentum = false;
        }
        if (s->cycle_momentum) {
            CHECK_RC(resolve(&p->cycle_min_mom, tname, "cycle_min_mom", n, 0, true, 1, s->mom_lo, err, errsz));
            CHECK_RC(resolve(&p->cycle_max_mom, tname, "cycle_max_mom", n, 0, true, 1, s->mom_hi, err, errsz));
            if (p->decay_mom_rate == 0) s->skip_mom_decay = true;
        }
        s->ds_betas = o->deepspeed_onecycle_betas;
        return DSC_OK;
    }

    case DSC_SCHED_WARMUP_LR:
    case DSC_SCHED_WARMUP_DECAY_LR:
        if (p->type == DSC_SCHED_WARMUP_DECAY_LR) {
            if (isnan(p->total_num_steps)) {
                set_err(err, errsz, "%s: scheduler.params.total_num_steps is required (missing or null)", tname);
                return DSC_ERR_CONFIG;
            }
            CHECK_RC(need_finite(tname, "total_num_steps", p->total_num_steps, err, errsz));
        }
        CHECK_RC(setup_warmup(s, p, o, tname, err, errsz));
        CHECK_RC(resolve(&p->warmup_min_lr, tname, "warmup_min_lr", n, 0, false, 0, s->lo, err, errsz));
        if (p->warmup_max_lr.kind == DSC_SCHED_NULL) {
            CHECK_RC(need_base_lrs(o, tname, "warmup_max_lr is null", err, errsz));
            memcpy(s->hi, o->base_lrs, n * sizeof(double));
        } else {
            CHECK_RC(resolve(&p->warmup_max_lr, tname, "warmup_max_lr", n, 0, false, 0, s->hi, err, errsz));
        }
        for (size_t g = 0; g < n; g++) s->delta[g] = s->hi[g] - s->lo[g];
        s->total_num_steps = p->total_num_steps;
        if (p->type == DSC_SCHED_WARMUP_DECAY_LR && p->total_num_steps < (double)s->warmup_steps)
            warn(o, "%s: total_num_steps %.17g is less than warmup_num_steps %lld", tname, p->total_num_steps,
                 (long long)p->warmup_num_steps);
        return DSC_OK;

    case DSC_SCHED_WARMUP_COSINE_LR:
        if (isnan(p->total_num_steps)) {
            set_err(err, errsz, "%s: scheduler.params.total_num_steps is required (missing or null)", tname);
            return DSC_ERR_CONFIG;
        }
        CHECK_RC(need_finite(tname, "total_num_steps", p->total_num_steps, err, errsz));
        CHECK_RC(setup_warmup(s, p, o, tname, err, errsz));
        CHECK_RC(need_nonneg(tname, "warmup_min_ratio", p->warmup_min_ratio, err, errsz));
        CHECK_RC(need_finite(tname, "cos_min_ratio", p->cos_min_ratio, err, errsz));
        CHECK_RC(need_base_lrs(o, tname, "its lrs are ratios of the optimizer's lr", err, errsz));
        memcpy(s->org, o->base_lrs, n * sizeof(double));
        s->total_num_steps = p->total_num_steps;
        s->warmup_min_ratio = p->warmup_min_ratio;
        s->cos_min_ratio = p->cos_min_ratio;
        if (p->total_num_steps < (double)s->warmup_steps)
            warn(o, "%s: total_num_steps %.17g is less than warmup_num_steps %lld", tname, p->total_num_steps,
                 (long long)p->warmup_num_steps);
        return DSC_OK;

    default:
        set_err(err, errsz, "scheduler: invalid type %d", (int)p->type);
        return DSC_ERR_INVALID;
    }
}

static dsc_status_t check_groups(const dsc_sched_options_t *o, char *err, size_t errsz) {
    if (o->num_groups == 0 || o->num_groups > ((size_t)1 << 24)) {
        set_err(err, errsz, "scheduler: num_groups must be between 1 and %zu, got %zu", (size_t)1 << 24,
                o->num_groups);
        return DSC_ERR_INVALID;
    }
    return DSC_OK;
}

dsc_status_t dsc_sched_new(const dsc_sched_params_t *p, const dsc_sched_options_t *opts, dsc_sched_t **out,
                           char *err, size_t errsz) {
    static const dsc_sched_options_t defaults = DSC_SCHED_OPTIONS_INIT;
    if (out) *out = NULL;
    if (!p || !out) {
        set_err(err, errsz, "dsc_sched_new: NULL argument");
        return DSC_ERR_INVALID;
    }
    const dsc_sched_options_t *o = opts ? opts : &defaults;
    CHECK_RC(check_groups(o, err, errsz));
    if ((int)p->type < 0 || p->type >= DSC_SCHED_CALLBACK) {
        set_err(err, errsz, "dsc_sched_new: invalid scheduler type %d (use dsc_sched_new_callback for callbacks)",
                (int)p->type);
        return DSC_ERR_INVALID;
    }
    const char *tname = dsc_sched_type_name(p->type);
    if (p->last_batch_iteration < -1) {
        set_err(err, errsz, "%s: scheduler.params.last_batch_iteration must be >= -1, got %lld", tname,
                (long long)p->last_batch_iteration);
        return DSC_ERR_CONFIG;
    }
    if (p->last_batch_iteration != -1)
        CHECK_RC(need_base_lrs(o, tname, "last_batch_iteration != -1 leaves the optimizer's lr in place", err, errsz));
    dsc_sched_t *s = alloc_sched(o->num_groups);
    if (!s) {
        set_err(err, errsz, "%s: out of memory", tname);
        return DSC_ERR_NOMEM;
    }
    s->type = p->type;
    dsc_status_t rc = setup(s, p, o, err, errsz);
    if (rc != DSC_OK) {
        dsc_sched_free(s);
        return rc;
    }
    if (p->last_batch_iteration == -1) {
        compute(s, -1, true); /* cannot fail for built-in types */
        commit(s, -1);
    } else {
        /* DeepSpeed writes nothing: the optimizer keeps its lr and betas. */
        s->it = p->last_batch_iteration;
        memcpy(s->cur_lr, o->base_lrs, s->ngroups * sizeof(double));
        for (size_t g = 0; g < s->ngroups; g++) s->cur_mom[g] = NAN;
    }
    *out = s;
    return DSC_OK;
}

dsc_status_t dsc_sched_new_callback(dsc_lr_fn lr_fn, dsc_momentum_fn mom_fn, void *user,
                                    const dsc_sched_options_t *opts, dsc_sched_t **out, char *err,
                                    size_t errsz) {
    static const dsc_sched_options_t defaults = DSC_SCHED_OPTIONS_INIT;
    if (out) *out = NULL;
    if (!lr_fn || !out) {
        set_err(err, errsz, "dsc_sched_new_callback: lr_fn and out are required");
        return DSC_ERR_INVALID;
    }
    const dsc_sched_options_t *o = opts ? opts : &defaults;
    CHECK_RC(check_groups(o, err, errsz));
    dsc_sched_t *s = alloc_sched(o->num_groups);
    if (!s) {
        set_err(err, errsz, "client scheduler: out of memory");
        return DSC_ERR_NOMEM;
    }
    s->type = DSC_SCHED_CALLBACK;
    s->lr_fn = lr_fn;
    s->mom_fn = mom_fn;
    s->user = user;
    dsc_status_t rc = compute(s, -1, true);
    if (rc != DSC_OK) {
        set_err(err, errsz, "%s", s->errmsg);
        dsc_sched_free(s);
        return rc;
    }
    commit(s, -1);
    *out = s;
    return DSC_OK;
}

/* ---- stepping, queries, state ------------------------------------------------------- */

static dsc_status_t goto_it(dsc_sched_t *s, int64_t it, bool construct) {
    if (it < -1) {
        snprintf(s->errmsg, sizeof s->errmsg, "%s: last_batch_iteration must be >= -1, got %lld",
                 dsc_sched_type_name(s->type), (long long)it);
        return DSC_ERR_INVALID;
    }
    dsc_status_t rc = compute(s, it, construct);
    if (rc != DSC_OK) return rc;
    commit(s, it);
    s->errmsg[0] = '\0';
    return DSC_OK;
}

dsc_status_t dsc_sched_step(dsc_sched_t *s) {
    if (!s) return DSC_ERR_INVALID;
    if (s->it == INT64_MAX) {
        snprintf(s->errmsg, sizeof s->errmsg, "scheduler: step counter overflow");
        return DSC_ERR_INVALID;
    }
    return goto_it(s, s->it + 1, false);
}

dsc_status_t dsc_sched_step_to(dsc_sched_t *s, int64_t k) {
    if (!s) return DSC_ERR_INVALID;
    return goto_it(s, k, false);
}

dsc_status_t dsc_sched_step_after_update(dsc_sched_t *s, bool overflow) {
    if (!s) return DSC_ERR_INVALID;
    if (overflow) return DSC_OK; /* skipped update: the engine does not step the scheduler */
    return dsc_sched_step(s);
}

double dsc_sched_get_group_lr(const dsc_sched_t *s, size_t group) {
    if (!s || group >= s->ngroups) return NAN;
    return s->cur_lr[group];
}

double dsc_sched_get_lr(const dsc_sched_t *s) { return dsc_sched_get_group_lr(s, 0); }

double dsc_sched_get_group_momentum(const dsc_sched_t *s, size_t group, bool *has) {
    if (has) *has = false;
    if (!s || group >= s->ngroups || !s->cur_has_mom[group]) return NAN;
    if (has) *has = true;
    return s->cur_mom[group];
}

double dsc_sched_get_momentum(const dsc_sched_t *s, bool *has) { return dsc_sched_get_group_momentum(s, 0, has); }

double dsc_sched_get_beta2(const dsc_sched_t *s, bool *has) {
    bool on = s && s->type == DSC_SCHED_ONE_CYCLE && s->cycle_momentum && s->ds_betas && s->cur_has_mom[0];
    if (has) *has = on;
    return on ? DSC_SCHED_ONECYCLE_BETA2 : NAN;
}

double dsc_sched_lr_at(const dsc_sched_t *s, int64_t it, size_t group) {
    if (!s || group >= s->ngroups || it < -1) return NAN;
    if (s->type == DSC_SCHED_CALLBACK) {
        double lr = s->lr_fn(it + 1, group, s->user);
        return isfinite(lr) && lr >= 0 ? lr : NAN;
    }
    return lr_formula(s, it, group);
}

double dsc_sched_momentum_at(const dsc_sched_t *s, int64_t it, size_t group, bool *has) {
    if (has) *has = false;
    if (!s || group >= s->ngroups || it < -1) return NAN;
    if (s->type == DSC_SCHED_CALLBACK) {
        double b1 = NAN;
        if (!s->mom_fn || !s->mom_fn(it + 1, group, &b1, s->user) || !isfinite(b1)) return NAN;
        if (has) *has = true;
        return b1;
    }
    if (s->type != DSC_SCHED_ONE_CYCLE || !s->cycle_momentum) return NAN;
    if (has) *has = true;
    return mom_formula(s, it, group);
}

int64_t dsc_sched_last_batch_iteration(const dsc_sched_t *s) { return s ? s->it : -1; }
size_t dsc_sched_num_groups(const dsc_sched_t *s) { return s ? s->ngroups : 0; }
dsc_sched_type_t dsc_sched_get_type(const dsc_sched_t *s) { return s ? s->type : DSC_SCHED_TYPE_COUNT; }

void dsc_sched_state_get(const dsc_sched_t *s, dsc_sched_state_t *state) {
    if (!state) return;
    state->last_batch_iteration = s ? s->it : -1;
}

dsc_status_t dsc_sched_state_set(dsc_sched_t *s, const dsc_sched_state_t *state) {
    if (!s || !state) return DSC_ERR_INVALID;
    return goto_it(s, state->last_batch_iteration, true);
}

const char *dsc_sched_errmsg(const dsc_sched_t *s) { return s ? s->errmsg : "NULL scheduler"; }

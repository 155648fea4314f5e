/* LR schedulers: DeepSpeed golden sequences (tools/gen_sched_golden.py, 2,000 steps per case,
 * every step to 1e-12 relative), the spec §2 worked examples verbatim, state save/restore,
 * parameter validation, skipped steps, the client callback and the OneCycle betas modes. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "dsc/sched.h"

#define GOLDEN_DIR "tests/golden/sched/"
#define TOL 1e-12

static char err[512];

/* ---- helpers ----------------------------------------------------------------------------- */

/* Builds a scheduler of `type` from name/value pairs (NULL-terminated); NAN = null. */
static dsc_sched_t *make(dsc_sched_type_t type, const dsc_sched_options_t *o, ...) {
    dsc_sched_params_t p;
    CHECK_OK(dsc_sched_params_default(&p, type));
    va_list ap;
    va_start(ap, o);
    const char *name;
    while ((name = va_arg(ap, const char *)) != NULL) {
        double v = va_arg(ap, double);
        dsc_status_t rc = isnan(v) ? dsc_sched_set_param_null(&p, name, err, sizeof err)
                                   : dsc_sched_set_param(&p, name, v, err, sizeof err);
        CHECK_MSG(rc == DSC_OK, "set %s: %s", name, err);
    }
    va_end(ap);
    dsc_sched_t *s = NULL;
    dsc_status_t rc = dsc_sched_new(&p, o, &s, err, sizeof err);
    CHECK_MSG(rc == DSC_OK, "dsc_sched_new(%s): %s", dsc_sched_type_name(type), err);
    return s;
}

/* lr after stepping to `it` (it = -1: construction) from a fresh copy of the schedule. */
static double lr_after(dsc_sched_t *s, int64_t it) {
    dsc_sched_state_t st = {-1};
    CHECK_OK(dsc_sched_state_set(s, &st));
    for (int64_t k = -1; k < it; k++) CHECK_OK(dsc_sched_step(s));
    CHECK(dsc_sched_last_batch_iteration(s) == it);
    return dsc_sched_get_lr(s);
}

static double mom_after(dsc_sched_t *s, int64_t it) {
    lr_after(s, it);
    bool has = false;
    double m = dsc_sched_get_momentum(s, &has);
    CHECK(has);
    return m;
}

/* The spec prints rounded values: compare to its number of significant digits. */
#define SPEC(got, want, rel)                                                                            \
    CHECK_MSG(check_close((got), (want), (rel), 1e-300), "got %.17g want %.17g (rel %g)", (double)(got), \
              (double)(want), (double)(rel))

/* ---- golden sequences -------------------------------------------------------------------- */

typedef struct {
    char name[64], type[32], file[96];
    size_t groups, rows, cols;
    double base_lrs[DSC_SCHED_MAX_GROUPS];
    int has_betas, ds_betas, momentum;
    dsc_sched_params_t params;
    bool params_ok;
} golden_case_t;

static size_t split(char *line, char **tok, size_t max) {
    size_t n = 0;
    for (char *t = strtok(line, " \t\r\n"); t && n < max; t = strtok(NULL, " \t\r\n")) tok[n++] = t;
    return n;
}

static void run_golden_case(golden_case_t *c, double *max_err) {
    char path[256];
    snprintf(path, sizeof path, GOLDEN_DIR "%s", c->file);
    FILE *f = fopen(path, "rb");
    CHECK_MSG(f != NULL, "cannot open %s", path);
    if (!f) return;
    size_t n = c->rows * c->cols;
    double *want = malloc(n * sizeof *want), *got = malloc(n * sizeof *got);
    CHECK(want && got);
    size_t rd = fread(want, sizeof(double), n, f);
    fclose(f);
    CHECK_MSG(rd == n, "%s: read %zu of %zu values", path, rd, n);
    if (rd != n || !c->params_ok) {
        free(want);
        free(got);
        return;
    }
    dsc_sched_options_t o = DSC_SCHED_OPTIONS_INIT;
    o.num_groups = c->groups;
    o.base_lrs = c->base_lrs;
    o.has_betas = c->has_betas;
    o.deepspeed_onecycle_betas = c->ds_betas;
    dsc_sched_t *s = NULL;
    dsc_status_t rc = dsc_sched_new(&c->params, &o, &s, err, sizeof err);
    CHECK_MSG(rc == DSC_OK, "%s: %s", c->name, err);
    if (rc != DSC_OK) {
        free(want);
        free(got);
        return;
    }
    int64_t it0 = dsc_sched_last_batch_iteration(s);
    bool formula_ok = true;
    for (size_t r = 0; r < c->rows; r++) {
        if (r > 0) CHECK_OK(dsc_sched_step(s));
        for (size_t g = 0; g < c->groups; g++) {
            got[r * c->cols + g] = dsc_sched_get_group_lr(s, g);
            /* get_lr() at the current iteration equals what step() wrote. */
            if (r > 0 && dsc_sched_lr_at(s, dsc_sched_last_batch_iteration(s), g) != got[r * c->cols + g])
                formula_ok = false;
            bool has = false;
            double m = dsc_sched_get_group_momentum(s, g, &has);
            if (c->momentum) {
                got[r * c->cols + c->groups + g] = has ? m : NAN;
                if (it0 != -1 && r == 0) got[r * c->cols + c->groups + g] = want[r * c->cols + c->groups + g];
            } else if (has) {
                formula_ok = false;
            }
        }
    }
    CHECK_MSG(formula_ok, "%s: lr_at(it) differs from the stepped value, or unexpected momentum", c->name);
    char what[256];
    for (size_t col = 0; col < c->cols; col++) {
        double *gc = malloc(c->rows * sizeof *gc), *wc = malloc(c->rows * sizeof *wc);
        for (size_t r = 0; r < c->rows; r++) {
            gc[r] = got[r * c->cols + col];
            wc[r] = want[r * c->cols + col];
        }
        snprintf(what, sizeof what, "golden %s column %zu (%s, group %zu)", c->name, col,
                 col < c->groups ? "lr" : "beta1", col % c->groups);
        double e = check_arrays_close(what, gc, wc, c->rows, TOL, 1e-300);
        if (e > *max_err) *max_err = e;
        free(gc);
        free(wc);
    }
    /* beta2: 0.99 exactly when DeepSpeed's betas mode cycles momentum. */
    bool has2 = false;
    double b2 = dsc_sched_get_beta2(s, &has2);
    CHECK(has2 == (c->momentum && c->ds_betas));
    if (has2) CHECK(b2 == 0.99);
    dsc_sched_free(s);
    free(want);
    free(got);
}

static void test_golden(void) {
    FILE *f = fopen(GOLDEN_DIR "cases.txt", "r");
    CHECK_MSG(f != NULL, "cannot open " GOLDEN_DIR "cases.txt (run from the source root)");
    if (!f) return;
    char line[4096];
    golden_case_t c;
    memset(&c, 0, sizeof c);
    int ncases = 0, per_type[DSC_SCHED_TYPE_COUNT] = {0};
    double max_err = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#') continue;
        char *tok[DSC_SCHED_MAX_GROUPS + 4];
        size_t nt = split(line, tok, sizeof tok / sizeof tok[0]);
        if (nt == 0) continue;
        const char *k = tok[0];
        if (!strcmp(k, "case") && nt == 2) {
            memset(&c, 0, sizeof c);
            snprintf(c.name, sizeof c.name, "%s", tok[1]);
            c.params_ok = true;
        } else if (!strcmp(k, "type") && nt == 2) {
            dsc_sched_type_t t;
            snprintf(c.type, sizeof c.type, "%s", tok[1]);
            CHECK_OK(dsc_sched_type_from_name(tok[1], &t, err, sizeof err));
            CHECK_OK(dsc_sched_params_default(&c.params, t));
            per_type[t]++;
        } else if (!strcmp(k, "groups") && nt == 2) {
            c.groups = strtoul(tok[1], NULL, 10);
        } else if (!strcmp(k, "base_lrs")) {
            for (size_t i = 1; i < nt; i++) c.base_lrs[i - 1] = strtod(tok[i], NULL);
        } else if (!strcmp(k, "has_betas") && nt == 2) {
            c.has_betas = atoi(tok[1]);
        } else if (!strcmp(k, "ds_betas") && nt == 2) {
            c.ds_betas = atoi(tok[1]);
        } else if (!strcmp(k, "num") && nt == 3) {
            dsc_status_t rc = dsc_sched_set_param(&c.params, tok[1], strtod(tok[2], NULL), err, sizeof err);
            CHECK_MSG(rc == DSC_OK, "%s: %s", c.name, err);
            c.params_ok = c.params_ok && rc == DSC_OK;
        } else if (!strcmp(k, "list") && nt >= 3) {
            double v[DSC_SCHED_MAX_GROUPS];
            for (size_t i = 2; i < nt; i++) v[i - 2] = strtod(tok[i], NULL);
            dsc_status_t rc = dsc_sched_set_param_list(&c.params, tok[1], v, nt - 2, err, sizeof err);
            CHECK_MSG(rc == DSC_OK, "%s: %s", c.name, err);
            c.params_ok = c.params_ok && rc == DSC_OK;
        } else if (!strcmp(k, "str") && nt == 3) {
            dsc_status_t rc = dsc_sched_set_param_str(&c.params, tok[1], tok[2], err, sizeof err);
            CHECK_MSG(rc == DSC_OK, "%s: %s", c.name, err);
            c.params_ok = c.params_ok && rc == DSC_OK;
        } else if (!strcmp(k, "null") && nt == 2) {
            dsc_status_t rc = dsc_sched_set_param_null(&c.params, tok[1], err, sizeof err);
            CHECK_MSG(rc == DSC_OK, "%s: %s", c.name, err);
            c.params_ok = c.params_ok && rc == DSC_OK;
        } else if (!strcmp(k, "rows") && nt == 2) {
            c.rows = strtoul(tok[1], NULL, 10);
        } else if (!strcmp(k, "cols") && nt == 2) {
            c.cols = strtoul(tok[1], NULL, 10);
        } else if (!strcmp(k, "momentum") && nt == 2) {
            c.momentum = atoi(tok[1]);
        } else if (!strcmp(k, "file") && nt == 2) {
            snprintf(c.file, sizeof c.file, "%s", tok[1]);
        } else if (!strcmp(k, "end")) {
            CHECK(c.rows == 2001);
            CHECK(c.cols == c.groups * (c.momentum ? 2 : 1));
            run_golden_case(&c, &max_err);
            ncases++;
        } else {
            CHECK_MSG(0, "cases.txt: unexpected line starting '%s'", k);
        }
    }
    fclose(f);
    CHECK(ncases >= 15);
    for (int t = 0; t < DSC_SCHED_CALLBACK; t++)
        CHECK_MSG(per_type[t] >= 3, "%s has %d golden cases", dsc_sched_type_name((dsc_sched_type_t)t), per_type[t]);
    printf("golden: %d cases x 2000 steps, max relative error %.3g\n", ncases, max_err);
}

/* ---- spec §2 worked examples, verbatim ---------------------------------------------------- */

static void test_spec_lrrt(void) {
    /* min_lr=1e-3, step_size=10, rate=1: continuous and staircase */
    dsc_sched_t *c = make(DSC_SCHED_LR_RANGE_TEST, NULL, "lr_range_test_min_lr", 1e-3, "lr_range_test_step_size",
                          10.0, "lr_range_test_step_rate", 1.0, (char *)NULL);
    dsc_sched_t *s = make(DSC_SCHED_LR_RANGE_TEST, NULL, "lr_range_test_min_lr", 1e-3, "lr_range_test_step_size",
                          10.0, "lr_range_test_step_rate", 1.0, "lr_range_test_staircase", 1.0, (char *)NULL);
    if (!c || !s) return;
    static const struct { int it; double cont, stair; } t[] = {
        {-1, 0.001, 0.001}, {0, 0.0011, 0.001}, {4, 0.0015, 0.001},
        {9, 0.002, 0.002},  {19, 0.003, 0.003}, {29, 0.004, 0.004},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        SPEC(lr_after(c, t[i].it), t[i].cont, 1e-12);
        SPEC(lr_after(s, t[i].it), t[i].stair, 1e-12);
    }
    bool has = true;
    dsc_sched_get_momentum(c, &has);
    CHECK(!has); /* no momentum handling */
    dsc_sched_free(c);
    dsc_sched_free(s);
    /* min_lr=1e-4, size=100, rate=5, continuous: it=0 -> 1.05e-4; it=99 -> 6.0e-4; it=199 -> 1.1e-3 */
    c = make(DSC_SCHED_LR_RANGE_TEST, NULL, "lr_range_test_min_lr", 1e-4, "lr_range_test_step_size", 100.0,
             "lr_range_test_step_rate", 5.0, (char *)NULL);
    if (!c) return;
    SPEC(lr_after(c, 0), 1.05e-4, 1e-12);
    SPEC(lr_after(c, 99), 6.0e-4, 1e-12);
    SPEC(lr_after(c, 199), 1.1e-3, 1e-12);
    dsc_sched_free(c);
}

static void test_spec_onecycle(void) {
    /* min_lr 1e-4, max_lr 1e-3, s1=s2=10, decay_step_size 5, decay_lr_rate 0.5, mom 0.8..0.9,
     * decay_mom_rate 0.1 */
    dsc_sched_options_t o = DSC_SCHED_OPTIONS_INIT;
    o.has_betas = true;
    o.deepspeed_onecycle_betas = true;
    dsc_sched_t *s = make(DSC_SCHED_ONE_CYCLE, &o, "cycle_min_lr", 1e-4, "cycle_max_lr", 1e-3,
                          "cycle_first_step_size", 10.0, "cycle_second_step_size", 10.0, "decay_step_size", 5.0,
                          "decay_lr_rate", 0.5, "cycle_min_mom", 0.8, "cycle_max_mom", 0.9, "decay_mom_rate", 0.1,
                          (char *)NULL);
    if (!s) return;
    static const struct { int it; double lr, b1, lr_rel; } t[] = {
        {-1, 1.0e-4, 0.8, 1e-12},     {0, 1.9e-4, 0.89, 1e-12},  {4, 5.5e-4, 0.85, 1e-12},
        {8, 9.1e-4, 0.81, 1e-12},     {9, 1.0e-3, 0.80, 1e-12},  {10, 9.1e-4, 0.81, 1e-12},
        {18, 1.9e-4, 0.89, 1e-12},    {19, 1.0e-4, 0.90, 1e-12}, {20, 9.0909e-5, 0.918, 1e-5},
        {24, 6.6667e-5, 0.99, 1e-5}, {29, 5.0e-5, 1.08, 1e-12},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        SPEC(lr_after(s, t[i].it), t[i].lr, t[i].lr_rel);
        SPEC(mom_after(s, t[i].it), t[i].b1, 1e-12);
    }
    /* The constructor quirk: 0.8 written at construction, though the formula gives 0.9 there. */
    bool has = false;
    SPEC(dsc_sched_momentum_at(s, -1, 0, &has), 0.9, 1e-15);
    CHECK(has);
    dsc_sched_free(s);

    /* Stair example (min 0, max 1, s1=s2=10, first_stair_count=2) */
    s = make(DSC_SCHED_ONE_CYCLE, NULL, "cycle_min_lr", 0.0, "cycle_max_lr", 1.0, "cycle_first_step_size", 10.0,
             "cycle_second_step_size", 10.0, "cycle_first_stair_count", 2.0, (char *)NULL);
    if (!s) return;
    for (int it = 0; it <= 3; it++) SPEC(lr_after(s, it), 0.0, 0);
    for (int it = 4; it <= 8; it++) SPEC(lr_after(s, it), 0.5, 0);
    SPEC(lr_after(s, 9), 1.0, 0);
    for (int it = 10; it <= 14; it++) SPEC(lr_after(s, it), 0.5, 0);
    for (int it = 15; it <= 19; it++) SPEC(lr_after(s, it), 0.0, 0);
    dsc_sched_free(s);

    /* Asymmetric example (min 0, max 1, s1=4, s2=12) */
    s = make(DSC_SCHED_ONE_CYCLE, NULL, "cycle_min_lr", 0.0, "cycle_max_lr", 1.0, "cycle_first_step_size", 4.0,
             "cycle_second_step_size", 12.0, (char *)NULL);
    if (!s) return;
    SPEC(lr_after(s, 0), 0.25, 1e-12);
    SPEC(lr_after(s, 2), 0.75, 1e-12);
    SPEC(lr_after(s, 3), 1.0, 1e-12);
    SPEC(lr_after(s, 4), 0.91667, 1e-5);
    SPEC(lr_after(s, 10), 0.41667, 1e-5);
    SPEC(lr_after(s, 15), 0.0, 0);
    dsc_sched_free(s);
}

static void test_spec_warmup(void) {
    dsc_sched_options_t o = DSC_SCHED_OPTIONS_INIT;
    /* log, W=10, min 0, max 0.01: it -1 -> 0; 0 -> 0; 1 -> 0.0030103; 2 -> 0.0047712; 5 -> 0.0077815;
     * 9 -> 0.01; 10, 50 -> 0.01. */
    dsc_sched_t *s = make(DSC_SCHED_WARMUP_LR, &o, "warmup_min_lr", 0.0, "warmup_max_lr", 0.01, "warmup_num_steps",
                          10.0, (char *)NULL);
    if (!s) return;
    SPEC(lr_after(s, -1), 0.0, 0);
    SPEC(lr_after(s, 0), 0.0, 0);
    SPEC(lr_after(s, 1), 0.0030103, 1e-5);
    SPEC(lr_after(s, 2), 0.0047712, 1e-5);
    SPEC(lr_after(s, 5), 0.0077815, 1e-5);
    SPEC(lr_after(s, 9), 0.01, 1e-12);
    SPEC(lr_after(s, 10), 0.01, 1e-12);
    SPEC(lr_after(s, 50), 0.01, 1e-12);
    dsc_sched_free(s);
    /* linear, W=10, min 0.001, max 0.01: -1 -> 0.001; 0 -> 0.001; 1 -> 0.0019; 5 -> 0.0055; 9 -> 0.0091;
     * 10 -> 0.01 */
    dsc_sched_params_t p;
    dsc_sched_params_default(&p, DSC_SCHED_WARMUP_LR);
    CHECK_OK(dsc_sched_set_param(&p, "warmup_min_lr", 0.001, err, sizeof err));
    CHECK_OK(dsc_sched_set_param(&p, "warmup_max_lr", 0.01, err, sizeof err));
    CHECK_OK(dsc_sched_set_param(&p, "warmup_num_steps", 10, err, sizeof err));
    CHECK_OK(dsc_sched_set_param_str(&p, "warmup_type", "linear", err, sizeof err));
    CHECK_OK(dsc_sched_new(&p, NULL, &s, err, sizeof err));
    if (!s) return;
    SPEC(lr_after(s, -1), 0.001, 1e-12);
    SPEC(lr_after(s, 0), 0.001, 1e-12);
    SPEC(lr_after(s, 1), 0.0019, 1e-12);
    SPEC(lr_after(s, 5), 0.0055, 1e-12);
    SPEC(lr_after(s, 9), 0.0091, 1e-12);
    SPEC(lr_after(s, 10), 0.01, 1e-12);
    dsc_sched_free(s);
    /* warmup_num_steps=1 is silently raised to W=2: log, min 0, max 1: it 0 -> 0, it 1 -> 1. */
    s = make(DSC_SCHED_WARMUP_LR, NULL, "warmup_min_lr", 0.0, "warmup_max_lr", 1.0, "warmup_num_steps", 1.0,
             (char *)NULL);
    if (!s) return;
    SPEC(lr_after(s, 0), 0.0, 0);
    SPEC(lr_after(s, 1), 1.0, 0);
    /* The first two updates both use warmup_min_lr: update #1 uses f(-1), update #2 f(0). */
    SPEC(lr_after(s, -1), 0.0, 0);
    dsc_sched_free(s);
}

static void test_spec_warmup_decay(void) {
    dsc_sched_params_t p;
    dsc_sched_t *s = NULL;
    /* linear, T=100, W=10, min 0, max 0.01 */
    dsc_sched_params_default(&p, DSC_SCHED_WARMUP_DECAY_LR);
    CHECK_OK(dsc_sched_set_param(&p, "total_num_steps", 100, err, sizeof err));
    CHECK_OK(dsc_sched_set_param(&p, "warmup_min_lr", 0, err, sizeof err));
    CHECK_OK(dsc_sched_set_param(&p, "warmup_max_lr", 0.01, err, sizeof err));
    CHECK_OK(dsc_sched_set_param(&p, "warmup_num_steps", 10, err, sizeof err));
    CHECK_OK(dsc_sched_set_param_str(&p, "warmup_type", "linear", err, sizeof err));
    CHECK_OK(dsc_sched_new(&p, NULL, &s, err, sizeof err));
    if (!s) return;
    SPEC(lr_after(s, 0), 0.0, 0);
    SPEC(lr_after(s, 5), 0.005, 1e-12);
    SPEC(lr_after(s, 9), 0.009, 1e-12);
    SPEC(lr_after(s, 10), 0.01, 1e-12);
    SPEC(lr_after(s, 11), 0.0098889, 1e-5);
    SPEC(lr_after(s, 55), 0.005, 1e-12);
    SPEC(lr_after(s, 99), 1.1111e-4, 1e-4);
    SPEC(lr_after(s, 100), 0.0, 0);
    SPEC(lr_after(s, 150), 0.0, 0);
    dsc_sched_free(s);
    /* log, T=100, W=10, min 0, max 1e-3 */
    s = make(DSC_SCHED_WARMUP_DECAY_LR, NULL, "total_num_steps", 100.0, "warmup_min_lr", 0.0, "warmup_max_lr", 1e-3,
             "warmup_num_steps", 10.0, (char *)NULL);
    if (!s) return;
    SPEC(lr_after(s, 0), 0.0, 0);
    SPEC(lr_after(s, 1), 3.0103e-4, 1e-5);
    SPEC(lr_after(s, 9), 1e-3, 1e-12);
    SPEC(lr_after(s, 10), 1e-3, 1e-12);
    SPEC(lr_after(s, 50), 5.5556e-4, 1e-5);
    dsc_sched_free(s);
}

static void test_spec_warmup_cosine(void) {
    double lr0 = 1e-3;
    dsc_sched_options_t o = DSC_SCHED_OPTIONS_INIT;
    o.base_lrs = &lr0;
    dsc_sched_params_t p;
    dsc_sched_t *s = NULL;
    /* lr0 = 1e-3, T=100, W=10, wmin 0, cmin 1e-4, linear */
    dsc_sched_params_default(&p, DSC_SCHED_WARMUP_COSINE_LR);
    CHECK_OK(dsc_sched_set_param(&p, "total_num_steps", 100, err, sizeof err));
    CHECK_OK(dsc_sched_set_param(&p, "warmup_num_steps", 10, err, sizeof err));
    CHECK_OK(dsc_sched_set_param(&p, "warmup_min_ratio", 0, err, sizeof err));
    CHECK_OK(dsc_sched_set_param(&p, "cos_min_ratio", 1e-4, err, sizeof err));
    CHECK_OK(dsc_sched_set_param_str(&p, "warmup_type", "linear", err, sizeof err));
    CHECK_OK(dsc_sched_new(&p, &o, &s, err, sizeof err));
    if (!s) return;
    SPEC(lr_after(s, -1), 0.0, 0); /* lr = 0.0 at construction: update #1 uses lr 0 */
    SPEC(lr_after(s, 0), 0.0, 0);
    SPEC(lr_after(s, 5), 5e-4, 1e-12);
    SPEC(lr_after(s, 9), 9e-4, 1e-12);
    SPEC(lr_after(s, 10), 9.99695e-4, 1e-6);
    SPEC(lr_after(s, 11), 9.98782e-4, 1e-6);
    SPEC(lr_after(s, 54), 5.0005e-4, 1e-6);
    SPEC(lr_after(s, 55), 4.82602e-4, 1e-6);
    SPEC(lr_after(s, 100), 1e-7, 1e-12);
    SPEC(lr_after(s, 109), 1e-7, 1e-12);
    SPEC(lr_after(s, 110), 1e-7, 1e-12);
    SPEC(lr_after(s, 200), 1e-7, 1e-12);
    dsc_sched_free(s);
    /* lr0 = 1e-3, T=100, W=10, wmin 0.1, cmin 0.01, log */
    s = make(DSC_SCHED_WARMUP_COSINE_LR, &o, "total_num_steps", 100.0, "warmup_num_steps", 10.0, "warmup_min_ratio",
             0.1, "cos_min_ratio", 0.01, (char *)NULL);
    if (!s) return;
    SPEC(lr_after(s, 0), 1e-4, 1e-12);
    SPEC(lr_after(s, 1), 3.70927e-4, 1e-6);
    SPEC(lr_after(s, 9), 1e-3, 1e-12);
    SPEC(lr_after(s, 10), 9.99698e-4, 1e-6);
    SPEC(lr_after(s, 55), 4.87725e-4, 1e-6);
    SPEC(lr_after(s, 100), 1e-5, 1e-12);
    dsc_sched_free(s);
}

/* ---- state save / restore ---------------------------------------------------------------- */

static double cb_lr(int64_t step, size_t group, void *user) {
    double base = *(const double *)user;
    return base * (group + 1) / (1.0 + 0.01 * (double)step);
}

static bool cb_mom(int64_t step, size_t group, double *beta1, void *user) {
    (void)user;
    if (step % 3 == 2) return false;
    *beta1 = 0.9 - 0.0001 * (double)step - 0.01 * (double)group;
    return true;
}

/* Runs a from construction for `total` steps, saving at `at`; a fresh b restores and continues;
 * every written lr / momentum afterwards must be identical. Frees a and b. */
static void resume_check(const char *what, dsc_sched_t *a, dsc_sched_t *b, int at, int total) {
    if (!a || !b) {
        dsc_sched_free(a);
        dsc_sched_free(b);
        return;
    }
    size_t ng = dsc_sched_num_groups(a);
    dsc_sched_state_t st;
    for (int k = 0; k < at; k++) CHECK_OK(dsc_sched_step(a));
    dsc_sched_state_get(a, &st);
    CHECK(st.last_batch_iteration == at - 1);
    for (int k = 0; k < 7; k++) CHECK_OK(dsc_sched_step(b)); /* b is elsewhere before restoring */
    CHECK_OK(dsc_sched_state_set(b, &st));
    bool same = true;
    for (int k = at; k <= total; k++) {
        if (k > at) {
            CHECK_OK(dsc_sched_step(a));
            CHECK_OK(dsc_sched_step(b));
        }
        same = same && dsc_sched_last_batch_iteration(a) == dsc_sched_last_batch_iteration(b);
        for (size_t g = 0; g < ng; g++) {
            bool ha, hb;
            double ma = dsc_sched_get_group_momentum(a, g, &ha), mb = dsc_sched_get_group_momentum(b, g, &hb);
            same = same && dsc_sched_get_group_lr(a, g) == dsc_sched_get_group_lr(b, g) && ha == hb &&
                   (!ha || ma == mb);
        }
    }
    CHECK_MSG(same, "%s: restored scheduler diverged", what);
    dsc_sched_free(a);
    dsc_sched_free(b);
}

static void test_state_resume(void) {
    double bases[2] = {1e-3, 5e-4};
    dsc_sched_options_t o = DSC_SCHED_OPTIONS_INIT;
    o.num_groups = 2;
    o.base_lrs = bases;
    o.has_betas = true;
    for (int ds = 0; ds <= 1; ds++) {
        o.deepspeed_onecycle_betas = ds;
        resume_check("OneCycle",
                     make(DSC_SCHED_ONE_CYCLE, &o, "cycle_min_lr", 1e-4, "cycle_max_lr", 1e-3, "cycle_first_step_size",
                          300.0, "cycle_second_stair_count", 4.0, "decay_step_size", 20.0, "decay_lr_rate", 0.3,
                          "decay_mom_rate", 0.01, (char *)NULL),
                     make(DSC_SCHED_ONE_CYCLE, &o, "cycle_min_lr", 1e-4, "cycle_max_lr", 1e-3, "cycle_first_step_size",
                          300.0, "cycle_second_stair_count", 4.0, "decay_step_size", 20.0, "decay_lr_rate", 0.3,
                          "decay_mom_rate", 0.01, (char *)NULL),
                     500, 2000);
    }
    dsc_sched_t *pairs[5][2];
    for (int i = 0; i < 2; i++) {
        pairs[0][i] = make(DSC_SCHED_LR_RANGE_TEST, &o, "lr_range_test_step_size", 17.0, "lr_range_test_staircase",
                           1.0, (char *)NULL);
        pairs[1][i] = make(DSC_SCHED_WARMUP_LR, &o, "warmup_num_steps", 300.0, (char *)NULL);
        pairs[2][i] = make(DSC_SCHED_WARMUP_DECAY_LR, &o, "total_num_steps", 1500.0, "warmup_num_steps", 700.0,
                           (char *)NULL);
        pairs[3][i] = make(DSC_SCHED_WARMUP_COSINE_LR, &o, "total_num_steps", 1200.0, "warmup_num_steps", 400.0,
                           (char *)NULL);
        dsc_sched_new_callback(cb_lr, cb_mom, &bases[0], &o, &pairs[4][i], err, sizeof err);
    }
    const char *names[5] = {"LRRangeTest", "WarmupLR", "WarmupDecayLR", "WarmupCosineLR", "callback"};
    for (int t = 0; t < 5; t++) {
        resume_check(names[t], pairs[t][0], pairs[t][1], 1000, 2000);
    }
    /* Restoring -1 gives the construction values back (OneCycle quirk included); it < -1 fails. */
    o.deepspeed_onecycle_betas = true;
    dsc_sched_t *s = make(DSC_SCHED_ONE_CYCLE, &o, "cycle_min_lr", 1e-4, "cycle_max_lr", 1e-3, (char *)NULL);
    if (!s) return;
    for (int k = 0; k < 50; k++) dsc_sched_step(s);
    dsc_sched_state_t st = {-1};
    CHECK_OK(dsc_sched_state_set(s, &st));
    CHECK(dsc_sched_get_lr(s) == 1e-4);
    CHECK(dsc_sched_get_momentum(s, NULL) == 0.8);
    st.last_batch_iteration = -2;
    CHECK(dsc_sched_state_set(s, &st) == DSC_ERR_INVALID);
    CHECK(strstr(dsc_sched_errmsg(s), "last_batch_iteration") != NULL);
    CHECK(dsc_sched_last_batch_iteration(s) == -1);
    /* step(k): DeepSpeed's step(batch_iteration) */
    CHECK_OK(dsc_sched_step_to(s, 99));
    CHECK(dsc_sched_last_batch_iteration(s) == 99);
    CHECK(dsc_sched_get_lr(s) == dsc_sched_lr_at(s, 99, 0));
    CHECK(dsc_sched_step_to(s, -5) == DSC_ERR_INVALID);
    dsc_sched_free(s);
}

/* ---- skipped steps (spec §2.1, §6.2 step 5) ------------------------------------------------ */

static void test_skipped_steps(void) {
    dsc_sched_t *s = make(DSC_SCHED_WARMUP_LR, NULL, "warmup_min_lr", 0.0, "warmup_max_lr", 0.01, "warmup_num_steps",
                          10.0, (char *)NULL);
    if (!s) return;
    /* An fp16 run: updates 3, 4 and 9 overflow. The lr of each update is the lr written before
     * it; the scheduler advances only after applied updates. */
    static const bool overflow[12] = {0, 0, 1, 1, 0, 0, 0, 0, 1, 0, 0, 0};
    int applied = 0;
    bool ok = true;
    for (int u = 0; u < 12; u++) {
        double lr_used = dsc_sched_get_lr(s);
        /* Update #1 (applied count 0) uses f(-1); after k applied updates, f(k-1). */
        double want = dsc_sched_lr_at(s, applied - 1, 0);
        ok = ok && lr_used == want;
        int64_t before = dsc_sched_last_batch_iteration(s);
        CHECK_OK(dsc_sched_step_after_update(s, overflow[u]));
        if (overflow[u]) {
            ok = ok && dsc_sched_last_batch_iteration(s) == before && dsc_sched_get_lr(s) == lr_used;
        } else {
            applied++;
            ok = ok && dsc_sched_last_batch_iteration(s) == before + 1;
        }
    }
    CHECK(ok);
    CHECK(applied == 9);
    CHECK(dsc_sched_last_batch_iteration(s) == 8);
    /* The same lrs as a run without the overflowed updates. */
    SPEC(dsc_sched_get_lr(s), log(9.0) / log(10.0) * 0.01, 1e-15);
    dsc_sched_free(s);
}

/* ---- validation ---------------------------------------------------------------------------- */

/* Expects dsc_sched_new to fail with `rc` and a message containing `needle`. */
static void expect_new_fails(const dsc_sched_params_t *p, const dsc_sched_options_t *o, dsc_status_t rc,
                             const char *needle) {
    dsc_sched_t *s = (dsc_sched_t *)&s; /* must be reset to NULL */
    err[0] = '\0';
    dsc_status_t got = dsc_sched_new(p, o, &s, err, sizeof err);
    CHECK_MSG(got == rc, "expected %s, got %s (%s)", dsc_status_string(rc), dsc_status_string(got), err);
    CHECK(s == NULL);
    CHECK_MSG(strstr(err, needle) != NULL, "message '%s' lacks '%s'", err, needle);
    if (got == DSC_OK) dsc_sched_free(s);
}

static void test_validation(void) {
    dsc_sched_params_t p;
    dsc_sched_options_t o = DSC_SCHED_OPTIONS_INIT;
    double base = 1e-3;

    /* warmup_num_steps must be a positive integer (all three warmup schedulers) */
    dsc_sched_type_t wtypes[3] = {DSC_SCHED_WARMUP_LR, DSC_SCHED_WARMUP_DECAY_LR, DSC_SCHED_WARMUP_COSINE_LR};
    o.base_lrs = &base;
    for (int i = 0; i < 3; i++) {
        dsc_sched_params_default(&p, wtypes[i]);
        p.total_num_steps = 100;
        CHECK_OK(dsc_sched_set_param(&p, "warmup_num_steps", 0, err, sizeof err));
        expect_new_fails(&p, &o, DSC_ERR_CONFIG, "warmup_num_steps must be a positive integer, got 0");
        dsc_sched_set_param(&p, "warmup_num_steps", -5, err, sizeof err);
        expect_new_fails(&p, &o, DSC_ERR_CONFIG, "warmup_num_steps must be a positive integer, got -5");
        /* a JSON real like 1000.0 is rejected as DeepSpeed's isinstance(int) check does */
        CHECK(dsc_sched_set_param_real(&p, "warmup_num_steps", 1000.0, err, sizeof err) == DSC_ERR_CONFIG);
        CHECK(strstr(err, "warmup_num_steps must be a positive integer") != NULL);
        CHECK(dsc_sched_set_param(&p, "warmup_num_steps", 10.5, err, sizeof err) == DSC_ERR_CONFIG);
        CHECK(strstr(err, "warmup_num_steps must be an integer") != NULL);
    }
    /* lr_range_test_step_size */
    dsc_sched_params_default(&p, DSC_SCHED_LR_RANGE_TEST);
    dsc_sched_set_param(&p, "lr_range_test_step_size", 0, err, sizeof err);
    expect_new_fails(&p, &o, DSC_ERR_CONFIG, "lr_range_test_step_size must be a positive integer, got 0");
    CHECK(dsc_sched_set_param_real(&p, "lr_range_test_step_size", 2000.0, err, sizeof err) == DSC_ERR_CONFIG);
    dsc_sched_params_default(&p, DSC_SCHED_LR_RANGE_TEST);
    dsc_sched_set_param(&p, "lr_range_test_min_lr", -1e-3, err, sizeof err);
    expect_new_fails(&p, &o, DSC_ERR_CONFIG, "lr_range_test_min_lr must be >= 0");
    dsc_sched_params_default(&p, DSC_SCHED_LR_RANGE_TEST);
    dsc_sched_set_param(&p, "lr_range_test_step_rate", -1, err, sizeof err);
    expect_new_fails(&p, &o, DSC_ERR_CONFIG, "lr_range_test_step_rate must be >= 0");
    /* the other int params accept integral reals */
    CHECK_OK(dsc_sched_set_param_real(&p, "last_batch_iteration", -1.0, err, sizeof err));

    /* OneCycle: required bounds, cycle sizes, negative lrs, momentum range, decay */
    dsc_sched_params_default(&p, DSC_SCHED_ONE_CYCLE);
    expect_new_fails(&p, &o, DSC_ERR_CONFIG, "cycle_min_lr is required");
    dsc_sched_set_param(&p, "cycle_min_lr", 1e-4, err, sizeof err);
    expect_new_fails(&p, &o, DSC_ERR_CONFIG, "cycle_max_lr is required");
    dsc_sched_set_param(&p, "cycle_max_lr", 1e-3, err, sizeof err);
    dsc_sched_set_param(&p, "cycle_first_step_size", 0, err, sizeof err);
    expect_new_fails(&p, &o, DSC_ERR_CONFIG, "cycle_first_step_size must be positive, got 0");
    dsc_sched_set_param(&p, "cycle_first_step_size", -3, err, sizeof err);
    expect_new_fails(&p, &o, DSC_ERR_CONFIG, "cycle_first_step_size must be positive, got -3");
    dsc_sched_set_param(&p, "cycle_first_step_size", 10, err, sizeof err);
    dsc_sched_set_param(&p, "cycle_second_step_size", -1, err, sizeof err);
    expect_new_fails(&p, &o, DSC_ERR_CONFIG, "cycle_second_step_size must be non-negative, got -1");
    CHECK_OK(dsc_sched_set_param_null(&p, "cycle_second_step_size", err, sizeof err));
    dsc_sched_set_param(&p, "cycle_max_lr", -1e-3, err, sizeof err);
    expect_new_fails(&p, &o, DSC_ERR_CONFIG, "cycle_max_lr must be >= 0, got -0.001");
    dsc_sched_set_param(&p, "cycle_max_lr", 1e-3, err, sizeof err);
    dsc_sched_set_param(&p, "decay_step_size", -1, err, sizeof err);
    expect_new_fails(&p, &o, DSC_ERR_CONFIG, "decay_step_size must be >= 0");
    dsc_sched_set_param(&p, "decay_step_size", 0, err, sizeof err);
    dsc_sched_set_param(&p, "decay_lr_rate", -0.5, err, sizeof err);
    expect_new_fails(&p, &o, DSC_ERR_CONFIG, "decay_lr_rate must be >= 0");
    dsc_sched_set_param(&p, "decay_lr_rate", 0, err, sizeof err);
    dsc_sched_set_param(&p, "cycle_max_mom", 1.0, err, sizeof err);
    o.has_betas = true;
    expect_new_fails(&p, &o, DSC_ERR_CONFIG, "cycle_max_mom must be in [0, 1), got 1");
    o.has_betas = false; /* momentum not cycled: its bounds are not used nor checked (as DeepSpeed) */
    dsc_sched_t *s = NULL;
    CHECK_OK(dsc_sched_new(&p, &o, &s, err, sizeof err));
    dsc_sched_free(s);
    dsc_sched_set_param(&p, "cycle_max_mom", 0.9, err, sizeof err);

    /* list length must match the param-group count */
    double two[2] = {1e-4, 2e-4}, three[3] = {1e-3, 2e-3, 3e-3};
    CHECK_OK(dsc_sched_set_param_list(&p, "cycle_min_lr", three, 3, err, sizeof err));
    o.num_groups = 2;
    double bases2[2] = {1e-3, 1e-3};
    o.base_lrs = bases2;
    expect_new_fails(&p, &o, DSC_ERR_CONFIG, "cycle_min_lr: expected 2 values (one per optimizer param group), got a "
                                             "list of 3");
    CHECK_OK(dsc_sched_set_param_list(&p, "cycle_min_lr", two, 2, err, sizeof err));
    CHECK_OK(dsc_sched_new(&p, &o, &s, err, sizeof err));
    if (s) {
        CHECK(dsc_sched_get_group_lr(s, 0) == 1e-4 && dsc_sched_get_group_lr(s, 1) == 2e-4);
        CHECK(isnan(dsc_sched_get_group_lr(s, 2)));
        dsc_sched_free(s);
    }
    two[1] = -1;
    CHECK_OK(dsc_sched_set_param_list(&p, "cycle_min_lr", two, 2, err, sizeof err));
    expect_new_fails(&p, &o, DSC_ERR_CONFIG, "cycle_min_lr[1] must be >= 0");
    CHECK(dsc_sched_set_param_list(&p, "decay_lr_rate", two, 2, err, sizeof err) == DSC_ERR_CONFIG);
    CHECK(strstr(err, "decay_lr_rate takes a single value, not a list") != NULL);
    CHECK(dsc_sched_set_param_list(&p, "cycle_min_lr", two, 0, err, sizeof err) == DSC_ERR_CONFIG);
    o.num_groups = 1;
    o.base_lrs = &base;

    /* WarmupDecayLR / WarmupCosineLR need total_num_steps */
    dsc_sched_params_default(&p, DSC_SCHED_WARMUP_DECAY_LR);
    expect_new_fails(&p, &o, DSC_ERR_CONFIG, "WarmupDecayLR: scheduler.params.total_num_steps is required");
    dsc_sched_params_default(&p, DSC_SCHED_WARMUP_COSINE_LR);
    expect_new_fails(&p, &o, DSC_ERR_CONFIG, "WarmupCosineLR: scheduler.params.total_num_steps is required");
    dsc_sched_set_param(&p, "total_num_steps", 100, err, sizeof err);
    dsc_sched_set_param(&p, "warmup_min_ratio", -0.1, err, sizeof err);
    expect_new_fails(&p, &o, DSC_ERR_CONFIG, "warmup_min_ratio must be >= 0");
    dsc_sched_set_param(&p, "warmup_min_ratio", 0, err, sizeof err);
    expect_new_fails(&p, NULL, DSC_ERR_INVALID, "base_lrs"); /* cosine needs the optimizer's lr */
    /* WarmupLR with warmup_max_lr null (its default) needs base lrs; negative warmup lrs */
    dsc_sched_params_default(&p, DSC_SCHED_WARMUP_LR);
    expect_new_fails(&p, NULL, DSC_ERR_INVALID, "warmup_max_lr is null");
    dsc_sched_set_param(&p, "warmup_min_lr", -1, err, sizeof err);
    expect_new_fails(&p, &o, DSC_ERR_CONFIG, "warmup_min_lr must be >= 0, got -1");
    dsc_sched_params_default(&p, DSC_SCHED_WARMUP_LR);
    dsc_sched_set_param(&p, "last_batch_iteration", -3, err, sizeof err);
    expect_new_fails(&p, &o, DSC_ERR_CONFIG, "last_batch_iteration must be >= -1");
    dsc_sched_set_param(&p, "last_batch_iteration", 5, err, sizeof err);
    expect_new_fails(&p, NULL, DSC_ERR_INVALID, "last_batch_iteration != -1");
    double neg = -1e-3;
    o.base_lrs = &neg;
    dsc_sched_params_default(&p, DSC_SCHED_WARMUP_LR);
    expect_new_fails(&p, &o, DSC_ERR_INVALID, "lr of param group 0 must be finite and >= 0");
    o.base_lrs = &base;
    o.num_groups = 0;
    expect_new_fails(&p, &o, DSC_ERR_INVALID, "num_groups");
    o.num_groups = 1;

    /* unknown names: did-you-mean, other scheduler's parameter, full list */
    dsc_sched_params_default(&p, DSC_SCHED_WARMUP_LR);
    CHECK(dsc_sched_set_param(&p, "warmup_max_l", 1e-3, err, sizeof err) == DSC_ERR_CONFIG);
    CHECK_MSG(strstr(err, "did you mean 'warmup_max_lr'?") != NULL, "%s", err);
    CHECK(strstr(err, "scheduler.params.warmup_max_l") != NULL);
    CHECK(dsc_sched_set_param(&p, "warmup_num_step", 10, err, sizeof err) == DSC_ERR_CONFIG);
    CHECK_MSG(strstr(err, "did you mean 'warmup_num_steps'?") != NULL, "%s", err);
    CHECK(dsc_sched_set_param(&p, "total_num_steps", 10, err, sizeof err) == DSC_ERR_CONFIG);
    CHECK_MSG(strstr(err, "WarmupLR has no parameter 'total_num_steps' (it is a parameter of WarmupDecayLR, "
                          "WarmupCosineLR)") != NULL, "%s", err);
    CHECK(dsc_sched_set_param(&p, "banana", 1, err, sizeof err) == DSC_ERR_CONFIG);
    CHECK_MSG(strstr(err, "its parameters: warmup_min_lr, warmup_max_lr") != NULL, "%s", err);
    dsc_sched_params_default(&p, DSC_SCHED_ONE_CYCLE);
    CHECK(dsc_sched_set_param(&p, "cycle_min_mon", 0.8, err, sizeof err) == DSC_ERR_CONFIG);
    CHECK_MSG(strstr(err, "did you mean 'cycle_min_mom'?") != NULL, "%s", err);
    /* wrong value kinds */
    CHECK(dsc_sched_set_param(&p, "cycle_min_lr", NAN, err, sizeof err) == DSC_ERR_CONFIG);
    CHECK(dsc_sched_set_param(&p, "cycle_min_lr", INFINITY, err, sizeof err) == DSC_ERR_CONFIG);
    CHECK(strstr(err, "cycle_min_lr must be a finite number") != NULL);
    CHECK(dsc_sched_set_param_str(&p, "cycle_min_lr", "1e-3", err, sizeof err) == DSC_ERR_CONFIG);
    CHECK(strstr(err, "cycle_min_lr must be a number, got the string \"1e-3\"") != NULL);
    CHECK(dsc_sched_set_param_null(&p, "decay_lr_rate", err, sizeof err) == DSC_ERR_CONFIG);
    CHECK(strstr(err, "decay_lr_rate cannot be null") != NULL);
    CHECK_OK(dsc_sched_set_param_null(&p, "cycle_second_stair_count", err, sizeof err));
    dsc_sched_params_default(&p, DSC_SCHED_WARMUP_COSINE_LR);
    CHECK(dsc_sched_set_param(&p, "warmup_type", 1, err, sizeof err) == DSC_ERR_CONFIG);
    CHECK(dsc_sched_set_param_list(&p, "warmup_min_ratio", &base, 1, err, sizeof err) == DSC_ERR_CONFIG);
    CHECK(dsc_sched_params_default(&p, DSC_SCHED_CALLBACK) == DSC_ERR_INVALID);
    CHECK(dsc_sched_set_param(&p, "warmup_min_lr", 1, err, sizeof err) == DSC_ERR_CONFIG);

    /* scheduler type names */
    dsc_sched_type_t t;
    CHECK_OK(dsc_sched_type_from_name("WarmupCosineLR", &t, err, sizeof err));
    CHECK(t == DSC_SCHED_WARMUP_COSINE_LR);
    CHECK(dsc_sched_type_from_name("warmuplr", &t, err, sizeof err) == DSC_ERR_CONFIG);
    CHECK_MSG(strstr(err, "DeepSpeed does not recognize LR scheduler warmuplr") != NULL &&
                  strstr(err, "did you mean \"WarmupLR\"?") != NULL, "%s", err);
    CHECK(dsc_sched_type_from_name("OneCylce", &t, err, sizeof err) == DSC_ERR_CONFIG);
    CHECK(strstr(err, "did you mean \"OneCycle\"?") != NULL);
    CHECK(dsc_sched_type_from_name("StepLR", &t, err, sizeof err) == DSC_ERR_UNSUPPORTED);
    CHECK(strstr(err, "torch.optim.lr_scheduler") != NULL);
    CHECK(dsc_sched_type_from_name("Zzzz", &t, err, sizeof err) == DSC_ERR_CONFIG);
    CHECK(strstr(err, "must be one of") != NULL);
    CHECK(strcmp(dsc_sched_type_name(DSC_SCHED_ONE_CYCLE), "OneCycle") == 0);
    CHECK(strcmp(dsc_sched_type_name((dsc_sched_type_t)99), "?") == 0);
    const char *const *names = dsc_sched_param_names(DSC_SCHED_WARMUP_DECAY_LR);
    int nn = 0;
    while (names[nn]) {
        CHECK_OK(dsc_sched_params_default(&p, DSC_SCHED_WARMUP_DECAY_LR));
        dsc_status_t rc = strcmp(names[nn], "warmup_type") == 0
                              ? dsc_sched_set_param_str(&p, names[nn], "linear", err, sizeof err)
                              : dsc_sched_set_param(&p, names[nn], 3, err, sizeof err);
        CHECK_MSG(rc == DSC_OK, "%s: %s", names[nn], err);
        nn++;
    }
    CHECK(nn == 6);
}

/* ---- defaults, warnings, betas modes, multi-group --------------------------------------- */

typedef struct {
    int n;
    char last[320];
} log_capture_t;

static void capture(dsc_log_level_t level, const char *message, void *user) {
    log_capture_t *c = user;
    CHECK(level == DSC_LOG_WARN);
    c->n++;
    snprintf(c->last, sizeof c->last, "%s", message);
}

static void test_defaults_and_warnings(void) {
    dsc_sched_params_t p;
    CHECK_OK(dsc_sched_params_default(&p, DSC_SCHED_ONE_CYCLE));
    CHECK(p.last_batch_iteration == -1 && p.decay_lr_rate == 0 && p.cycle_first_step_size == 2000);
    CHECK(isnan(p.cycle_second_step_size) && p.cycle_first_stair_count == 0 && isnan(p.cycle_second_stair_count));
    CHECK(p.decay_step_size == 0 && p.cycle_momentum && p.cycle_min_mom.v[0] == 0.8 && p.cycle_max_mom.v[0] == 0.9);
    CHECK(p.cycle_min_lr.kind == DSC_SCHED_NULL && p.cycle_max_lr.kind == DSC_SCHED_NULL);
    CHECK_OK(dsc_sched_params_default(&p, DSC_SCHED_LR_RANGE_TEST));
    CHECK(p.lr_range_test_min_lr.v[0] == 1e-3 && p.lr_range_test_step_size == 2000);
    CHECK(p.lr_range_test_step_rate == 1.0 && !p.lr_range_test_staircase);
    CHECK_OK(dsc_sched_params_default(&p, DSC_SCHED_WARMUP_LR));
    CHECK(p.warmup_min_lr.v[0] == 0 && p.warmup_max_lr.kind == DSC_SCHED_NULL && p.warmup_num_steps == 1000);
    CHECK(p.warmup_type == DSC_WARMUP_LOG);
    CHECK_OK(dsc_sched_params_default(&p, DSC_SCHED_WARMUP_DECAY_LR));
    CHECK(p.warmup_max_lr.kind == DSC_SCHED_SCALAR && p.warmup_max_lr.v[0] == 0.001 && isnan(p.total_num_steps));
    CHECK_OK(dsc_sched_params_default(&p, DSC_SCHED_WARMUP_COSINE_LR));
    CHECK(p.warmup_min_ratio == 0 && p.cos_min_ratio == 0.0001 && p.warmup_num_steps == 1000);

    log_capture_t cap = {0, ""};
    dsc_sched_options_t o = DSC_SCHED_OPTIONS_INIT;
    double base = 0.002;
    o.base_lrs = &base;
    o.log_fn = capture;
    o.log_user = &cap;
    /* unknown warmup_type: warning, log used */
    dsc_sched_params_default(&p, DSC_SCHED_WARMUP_LR);
    CHECK_OK(dsc_sched_set_param_str(&p, "warmup_type", "cosine", err, sizeof err));
    CHECK(p.warmup_type == DSC_WARMUP_LOG && strcmp(p.warmup_type_unknown, "cosine") == 0);
    dsc_sched_set_param(&p, "warmup_num_steps", 10, err, sizeof err);
    dsc_sched_t *s = NULL;
    CHECK_OK(dsc_sched_new(&p, &o, &s, err, sizeof err));
    CHECK(cap.n == 1 && strstr(cap.last, "Using unknown warmup_type: cosine") != NULL);
    /* warmup_max_lr null: the optimizer's lr */
    SPEC(lr_after(s, 1), 0.002 * log(2.0) / log(10.0), 1e-15);
    SPEC(lr_after(s, 10), 0.002, 0);
    dsc_sched_free(s);
    /* total < warmup */
    dsc_sched_params_default(&p, DSC_SCHED_WARMUP_DECAY_LR);
    dsc_sched_set_param(&p, "total_num_steps", 50, err, sizeof err);
    CHECK_OK(dsc_sched_new(&p, &o, &s, err, sizeof err));
    CHECK(cap.n == 2 && strstr(cap.last, "total_num_steps 50 is less than warmup_num_steps 1000") != NULL);
    dsc_sched_free(s);
    /* OneCycle without betas: momentum disabled with a warning */
    dsc_sched_params_default(&p, DSC_SCHED_ONE_CYCLE);
    dsc_sched_set_param(&p, "cycle_min_lr", 1e-4, err, sizeof err);
    dsc_sched_set_param(&p, "cycle_max_lr", 1e-3, err, sizeof err);
    CHECK_OK(dsc_sched_new(&p, &o, &s, err, sizeof err));
    CHECK(cap.n == 3 && strstr(cap.last, "cycle_momentum is disabled") != NULL);
    bool has = true;
    dsc_sched_get_momentum(s, &has);
    CHECK(!has);
    dsc_sched_get_beta2(s, &has);
    CHECK(!has);
    dsc_sched_free(s);

    /* OneCycle betas: default mode writes the formula's beta1 at construction and leaves beta2;
     * DeepSpeed mode writes cycle_min_mom and beta2 = 0.99. Identical from the first step on. */
    o.has_betas = true;
    dsc_sched_t *fixed = NULL, *ds = NULL;
    CHECK_OK(dsc_sched_new(&p, &o, &fixed, err, sizeof err));
    o.deepspeed_onecycle_betas = true;
    CHECK_OK(dsc_sched_new(&p, &o, &ds, err, sizeof err));
    if (fixed && ds) {
        CHECK(dsc_sched_get_momentum(fixed, &has) == 0.9 && has);
        CHECK(dsc_sched_get_momentum(ds, &has) == 0.8 && has);
        dsc_sched_get_beta2(fixed, &has);
        CHECK(!has);
        CHECK(dsc_sched_get_beta2(ds, &has) == 0.99 && has);
        bool same = true;
        for (int k = 0; k < 5000; k++) {
            dsc_sched_step(fixed);
            dsc_sched_step(ds);
            same = same && dsc_sched_get_lr(fixed) == dsc_sched_get_lr(ds) &&
                   dsc_sched_get_momentum(fixed, NULL) == dsc_sched_get_momentum(ds, NULL);
        }
        CHECK(same);
    }
    dsc_sched_free(fixed);
    dsc_sched_free(ds);

    /* last_batch_iteration != -1: nothing written at construction (the optimizer's lr stays). */
    dsc_sched_params_default(&p, DSC_SCHED_ONE_CYCLE);
    dsc_sched_set_param(&p, "cycle_min_lr", 1e-4, err, sizeof err);
    dsc_sched_set_param(&p, "cycle_max_lr", 1e-3, err, sizeof err);
    dsc_sched_set_param(&p, "last_batch_iteration", 10, err, sizeof err);
    CHECK_OK(dsc_sched_new(&p, &o, &s, err, sizeof err));
    if (s) {
        CHECK(dsc_sched_get_lr(s) == 0.002);
        dsc_sched_get_momentum(s, &has);
        CHECK(!has);
        CHECK_OK(dsc_sched_step(s));
        CHECK(dsc_sched_last_batch_iteration(s) == 11);
        CHECK(dsc_sched_get_lr(s) == dsc_sched_lr_at(s, 11, 0));
        CHECK(dsc_sched_get_momentum(s, &has) == dsc_sched_momentum_at(s, 11, 0, NULL) && has);
        dsc_sched_free(s);
    }

    /* WarmupCosineLR: per-group base lrs, same ratio */
    double bases[3] = {1e-3, 2e-4, 0.0};
    o.num_groups = 3;
    o.base_lrs = bases;
    dsc_sched_params_default(&p, DSC_SCHED_WARMUP_COSINE_LR);
    dsc_sched_set_param(&p, "total_num_steps", 100, err, sizeof err);
    dsc_sched_set_param(&p, "warmup_num_steps", 10, err, sizeof err);
    CHECK_OK(dsc_sched_new(&p, &o, &s, err, sizeof err));
    if (s) {
        CHECK(dsc_sched_num_groups(s) == 3 && dsc_sched_get_type(s) == DSC_SCHED_WARMUP_COSINE_LR);
        for (int k = 0; k < 60; k++) dsc_sched_step(s);
        double r = dsc_sched_get_group_lr(s, 0) / 1e-3;
        SPEC(dsc_sched_get_group_lr(s, 1), 2e-4 * r, 1e-15);
        CHECK(dsc_sched_get_group_lr(s, 2) == 0.0);
        dsc_sched_free(s);
    }
    /* NULL-safety */
    CHECK(isnan(dsc_sched_get_lr(NULL)));
    CHECK(dsc_sched_step(NULL) == DSC_ERR_INVALID);
    dsc_sched_free(NULL);
}

/* ---- client callback ------------------------------------------------------------------- */

static double cb_bad(int64_t step, size_t group, void *user) {
    (void)group;
    (void)user;
    return step == 3 ? NAN : 0.1;
}

static void test_callback(void) {
    double base = 0.01;
    dsc_sched_options_t o = DSC_SCHED_OPTIONS_INIT;
    o.num_groups = 2;
    dsc_sched_t *s = NULL;
    CHECK_OK(dsc_sched_new_callback(cb_lr, cb_mom, &base, &o, &s, err, sizeof err));
    if (!s) return;
    CHECK(dsc_sched_get_type(s) == DSC_SCHED_CALLBACK);
    CHECK(dsc_sched_last_batch_iteration(s) == -1);
    /* step = number of scheduler steps taken: 0 at construction (torch LambdaLR counting) */
    CHECK(dsc_sched_get_group_lr(s, 0) == cb_lr(0, 0, &base));
    CHECK(dsc_sched_get_group_lr(s, 1) == cb_lr(0, 1, &base));
    bool has = false, ok = true;
    for (int k = 1; k <= 30; k++) {
        CHECK_OK(dsc_sched_step(s));
        for (size_t g = 0; g < 2; g++) {
            ok = ok && dsc_sched_get_group_lr(s, g) == cb_lr(k, g, &base);
            double m = dsc_sched_get_group_momentum(s, g, &has);
            double want;
            bool want_has = cb_mom(k, g, &want, NULL);
            ok = ok && has == want_has && (!has || m == want);
        }
        ok = ok && dsc_sched_lr_at(s, k - 1, 1) == cb_lr(k, 1, &base);
    }
    CHECK(ok);
    dsc_sched_get_beta2(s, &has);
    CHECK(!has);
    dsc_sched_free(s);
    /* lr only */
    o.num_groups = 1;
    CHECK_OK(dsc_sched_new_callback(cb_lr, NULL, &base, &o, &s, err, sizeof err));
    if (s) {
        dsc_sched_get_momentum(s, &has);
        CHECK(!has);
        dsc_sched_free(s);
    }
    /* a bad value fails the step and changes nothing */
    CHECK_OK(dsc_sched_new_callback(cb_bad, NULL, NULL, &o, &s, err, sizeof err));
    if (s) {
        CHECK_OK(dsc_sched_step(s));
        CHECK_OK(dsc_sched_step(s));
        CHECK(dsc_sched_step(s) == DSC_ERR_INVALID);
        CHECK(strstr(dsc_sched_errmsg(s), "client scheduler returned lr nan for step 3") != NULL);
        CHECK(dsc_sched_last_batch_iteration(s) == 1 && dsc_sched_get_lr(s) == 0.1);
        CHECK(isnan(dsc_sched_lr_at(s, 2, 0)));
        dsc_sched_free(s);
    }
    CHECK(dsc_sched_new_callback(NULL, NULL, NULL, &o, &s, err, sizeof err) == DSC_ERR_INVALID && s == NULL);
}

int main(void) {
    test_golden();
    test_spec_lrrt();
    test_spec_onecycle();
    test_spec_warmup();
    test_spec_warmup_decay();
    test_spec_warmup_cosine();
    test_state_resume();
    test_skipped_steps();
    test_validation();
    test_defaults_and_warnings();
    test_callback();
    return check_finish("test_sched");
}

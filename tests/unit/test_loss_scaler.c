/* Loss scaler: the spec §3.2 trace table verbatim (consecutive_hysteresis false and true),
 * the §3.3 FP16_Optimizer trace, parameter sets checked step by step against a second,
 * deliberately plain implementation of the spec's pseudocode written here, the stop-at-minimum
 * policy and its message, DeepSpeed's log lines, validation, config mapping, and state
 * save/restore mid-trace continuing identically. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "dsc/amp.h"

/* ---- reference: the spec's pseudocode, one line per line --------------------------------- */

typedef struct ref {
    /* configuration */
    int dyn;         /* fp16 and loss_scale == 0 */
    int zero;        /* §3.2 (1) or §3.3 (0) */
    double S0_static;
    double min;
    long window, H;
    int consecutive;
    long K; /* dsc: max_consecutive_skips_at_min */
    /* state */
    double S;
    long iter, last_overflow, h, skips;
} ref_t;

typedef struct ref_out {
    const char *action; /* dsc_loss_scaler_action_name spelling */
    int stop;
} ref_out_t;

static void ref_init(ref_t *r, int dyn, int zero, double S0, double min, long window, long H, int consecutive, long K) {
    memset(r, 0, sizeof *r);
    r->dyn = dyn;
    r->zero = zero;
    r->min = min;
    r->window = window;
    r->H = H;
    r->consecutive = consecutive;
    r->K = K;
    r->S = S0;
    r->iter = 0;
    r->last_overflow = -1;
    r->h = H;
}

static ref_out_t ref_update(ref_t *r, int overflow) {
    ref_out_t o = {"kept", 0};
    if (!r->dyn) {
        /* static scale / bf16 / fp32: S never changes; every overflow is a skip at the floor */
        if (overflow) {
            o.action = "not-dynamic";
            r->skips = r->skips + 1;
            r->last_overflow = r->iter;
        } else {
            r->skips = 0;
        }
    } else if (r->zero) {
        if (overflow) {
            if (r->S == r->min) r->skips = r->skips + 1;
            else r->skips = 0;
            if (r->H == 1 || r->h == 1) {
                if (r->S == r->min) {
                    o.action = "at-minimum"; /* DeepSpeed: FATAL here; dsc: keep S and count */
                } else {
                    r->S = r->S / 2 > r->min ? r->S / 2 : r->min;
                    o.action = "lowered";
                }
            } else {
                r->h = r->h - 1;
                o.action = "hysteresis";
            }
            r->last_overflow = r->iter;
        } else {
            r->skips = 0;
            if (r->consecutive) r->h = r->H;
            long stable = r->iter - r->last_overflow - 1;
            if (stable > 0 && stable % r->window == 0) {
                if (!r->consecutive) r->h = r->H;
                r->S = r->S * 2;
                o.action = "raised";
            }
        }
    } else {
        if (overflow) {
            if (r->S == r->min) {
                r->skips = r->skips + 1;
                o.action = "at-minimum";
            } else {
                r->skips = 0;
                r->S = r->S / 2 > r->min ? r->S / 2 : r->min;
                o.action = "lowered";
            }
            r->last_overflow = r->iter;
        } else {
            r->skips = 0;
            long stable = r->iter - r->last_overflow - 1;
            if (stable > 0 && stable % r->window == 0) {
                r->S = r->S * 2;
                o.action = "raised";
            }
        }
    }
    r->iter = r->iter + 1;
    if (overflow && r->K > 0 && r->skips >= r->K) o.stop = 1;
    return o;
}

/* ---- helpers ------------------------------------------------------------------------------ */

static dsc_loss_scaler_params_t params_fp16(int64_t power, int64_t window, int64_t H, bool consecutive, double min) {
    dsc_loss_scaler_params_t p = DSC_LOSS_SCALER_PARAMS_INIT;
    p.initial_scale_power = power;
    p.loss_scale_window = window;
    p.hysteresis = H;
    p.consecutive_hysteresis = consecutive;
    p.min_loss_scale = min;
    return p;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static double rnd(void) {
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(rng_state >> 11) / 9007199254740992.0;
}

/* ---- the spec §3.2 trace table ------------------------------------------------------------- */

typedef struct trace_row {
    int iter, ovf;
    double before, after;
    int h;
} trace_row_t;

/* Columns of the table: iteration, overflow, S before -> after, h after. Rows "0-3" and "9-12"
 * expanded. */
static const trace_row_t TRACE_NONCONSEC[] = {
    {0, 0, 65536, 65536, 2},   {1, 0, 65536, 65536, 2},   {2, 0, 65536, 65536, 2},   {3, 0, 65536, 65536, 2},
    {4, 0, 65536, 131072, 2},  {5, 1, 131072, 131072, 1}, {6, 0, 131072, 131072, 1}, {7, 1, 131072, 65536, 1},
    {8, 1, 65536, 32768, 1},   {9, 0, 32768, 32768, 1},   {10, 0, 32768, 32768, 1},  {11, 0, 32768, 32768, 1},
    {12, 0, 32768, 32768, 1},  {13, 0, 32768, 65536, 2},
};
static const trace_row_t TRACE_CONSEC[] = {
    {0, 0, 65536, 65536, 2},    {1, 0, 65536, 65536, 2},    {2, 0, 65536, 65536, 2},    {3, 0, 65536, 65536, 2},
    {4, 0, 65536, 131072, 2},   {5, 1, 131072, 131072, 1},  {6, 0, 131072, 131072, 2},  {7, 1, 131072, 131072, 1},
    {8, 1, 131072, 65536, 1},   {9, 0, 65536, 65536, 2},    {10, 0, 65536, 65536, 2},   {11, 0, 65536, 65536, 2},
    {12, 0, 65536, 65536, 2},   {13, 0, 65536, 131072, 2},
};

static void run_trace(const char *name, const trace_row_t *rows, size_t n, bool consecutive) {
    dsc_loss_scaler_t s;
    dsc_loss_scaler_params_t p = params_fp16(16, 4, 2, consecutive, 1);
    CHECK_OK(dsc_loss_scaler_init(&s, &p));
    CHECK(dsc_loss_scaler_is_dynamic(&s));
    for (size_t i = 0; i < n; i++) {
        dsc_loss_scaler_event_t ev;
        CHECK_MSG(dsc_loss_scaler_scale(&s) == rows[i].before, "%s iter %d: S before %g, want %g", name, rows[i].iter,
                  dsc_loss_scaler_scale(&s), rows[i].before);
        CHECK_OK(dsc_loss_scaler_update(&s, rows[i].ovf, &ev));
        dsc_loss_scaler_state_t st;
        CHECK_OK(dsc_loss_scaler_state_get(&s, &st));
        CHECK_MSG(ev.scale_before == rows[i].before && ev.scale_after == rows[i].after && st.scale == rows[i].after,
                  "%s iter %d: S %g -> %g, want %g -> %g", name, rows[i].iter, ev.scale_before, ev.scale_after,
                  rows[i].before, rows[i].after);
        CHECK_MSG(st.hysteresis == rows[i].h && ev.hysteresis_after == rows[i].h, "%s iter %d: h %lld, want %d", name,
                  rows[i].iter, (long long)st.hysteresis, rows[i].h);
        CHECK(st.iter == rows[i].iter + 1);
        CHECK(ev.overflow == (bool)rows[i].ovf);
        CHECK(!ev.stop);
        CHECK(ev.overflow == (ev.message[0] != '\0'));
    }
}

static void test_spec_trace(void) {
    run_trace("trace consecutive=false", TRACE_NONCONSEC, sizeof TRACE_NONCONSEC / sizeof TRACE_NONCONSEC[0], false);
    run_trace("trace consecutive=true", TRACE_CONSEC, sizeof TRACE_CONSEC / sizeof TRACE_CONSEC[0], true);

    /* The actions and DeepSpeed's log lines along the non-consecutive trace. */
    dsc_loss_scaler_t s;
    dsc_loss_scaler_params_t p = params_fp16(16, 4, 2, false, 1);
    CHECK_OK(dsc_loss_scaler_init(&s, &p));
    const dsc_loss_scaler_action_t want[14] = {
        DSC_LOSS_SCALE_KEPT,    DSC_LOSS_SCALE_KEPT,       DSC_LOSS_SCALE_KEPT,    DSC_LOSS_SCALE_KEPT,
        DSC_LOSS_SCALE_RAISED,  DSC_LOSS_SCALE_HYSTERESIS, DSC_LOSS_SCALE_KEPT,    DSC_LOSS_SCALE_LOWERED,
        DSC_LOSS_SCALE_LOWERED, DSC_LOSS_SCALE_KEPT,       DSC_LOSS_SCALE_KEPT,    DSC_LOSS_SCALE_KEPT,
        DSC_LOSS_SCALE_KEPT,    DSC_LOSS_SCALE_RAISED};
    for (int i = 0; i < 14; i++) {
        dsc_loss_scaler_event_t ev;
        CHECK_OK(dsc_loss_scaler_update(&s, TRACE_NONCONSEC[i].ovf, &ev));
        CHECK_MSG(ev.action == want[i], "iter %d: action %s, want %s", i, dsc_loss_scaler_action_name(ev.action),
                  dsc_loss_scaler_action_name(want[i]));
        if (i == 5)
            CHECK_MSG(!strcmp(ev.message, "[deepspeed] OVERFLOW! Rank 0 Skipping step. Attempted loss scale: 131072, but "
                                          "hysteresis is 2. Reducing hysteresis to 1"),
                      "msg: %s", ev.message);
        if (i == 7)
            CHECK_MSG(!strcmp(ev.message,
                              "[deepspeed] OVERFLOW! Rank 0 Skipping step. Attempted loss scale: 131072, reducing to 65536"),
                      "msg: %s", ev.message);
        if (i == 8)
            CHECK_MSG(!strcmp(ev.message,
                              "[deepspeed] OVERFLOW! Rank 0 Skipping step. Attempted loss scale: 65536, reducing to 32768"),
                      "msg: %s", ev.message);
    }
}

/* ---- §3.3 FP16_Optimizer variant ------------------------------------------------------------ */

static void test_fp16_optimizer_trace(void) {
    /* "S = 65536,65536,65536,65536 -> 131072 (iter 4) -> o: 65536 -> 65536 -> o: 32768 -> o: 16384 ->
     *  four good steps -> 32768 at iter 13" (hysteresis 2 is configured and ignored). */
    dsc_loss_scaler_params_t p = params_fp16(16, 4, 2, false, 1);
    p.algo = DSC_LOSS_SCALER_FP16_OPTIMIZER;
    dsc_loss_scaler_t s;
    CHECK_OK(dsc_loss_scaler_init(&s, &p));
    const int ovf[14] = {0, 0, 0, 0, 0, 1, 0, 1, 1, 0, 0, 0, 0, 0};
    const double after[14] = {65536, 65536, 65536, 65536, 131072, 65536, 65536,
                              32768, 16384, 16384, 16384, 16384, 16384, 32768};
    for (int i = 0; i < 14; i++) {
        dsc_loss_scaler_event_t ev;
        CHECK_OK(dsc_loss_scaler_update(&s, ovf[i], &ev));
        CHECK_MSG(ev.scale_after == after[i], "fp16_optimizer iter %d: S %g, want %g", i, ev.scale_after, after[i]);
        if (ovf[i]) CHECK(ev.action == DSC_LOSS_SCALE_LOWERED);
        if (i == 5)
            CHECK_MSG(!strcmp(ev.message, "Overflow detected. Skipping step. Attempted loss scale: 131072, reducing to 65536"),
                      "msg: %s", ev.message);
    }
    /* Never raises at the minimum in DeepSpeed; dsc keeps S = min and counts. */
    p = params_fp16(1, 4, 2, false, 1);
    p.algo = DSC_LOSS_SCALER_FP16_OPTIMIZER;
    p.max_consecutive_skips_at_min = 0;
    CHECK_OK(dsc_loss_scaler_init(&s, &p));
    dsc_loss_scaler_event_t ev;
    CHECK_OK(dsc_loss_scaler_update(&s, true, &ev));
    CHECK(ev.action == DSC_LOSS_SCALE_LOWERED && ev.scale_after == 1);
    for (int i = 0; i < 50; i++) CHECK_OK(dsc_loss_scaler_update(&s, true, &ev));
    CHECK(ev.action == DSC_LOSS_SCALE_AT_MINIMUM && ev.scale_after == 1 && ev.consecutive_skips_at_min == 50);
    CHECK_MSG(!strncmp(ev.message, "Overflow detected. Skipping step. Attempted loss scale: 1, reducing to 1 (already at "
                                   "the minimum loss scale: 50 consecutive skips)",
                       200),
              "msg: %s", ev.message);
}

/* ---- parameter sets against the reference ------------------------------------------------- */

typedef struct pset {
    const char *name;
    dsc_dtype_t dtype;
    double loss_scale;
    int64_t power, window, H;
    bool consecutive;
    double min;
    dsc_loss_scaler_algo_t algo;
    int64_t K;
    double p_ovf;   /* overflow probability */
    double p_burst; /* probability that a burst of 1..12 overflows starts */
    int steps;
} pset_t;

static void run_pset(const pset_t *ps) {
    dsc_loss_scaler_params_t p = params_fp16(ps->power, ps->window, ps->H, ps->consecutive, ps->min);
    p.dtype = ps->dtype;
    p.loss_scale = ps->loss_scale;
    p.algo = ps->algo;
    p.max_consecutive_skips_at_min = ps->K;
    dsc_loss_scaler_t s;
    dsc_status_t rc = dsc_loss_scaler_init(&s, &p);
    CHECK_MSG(rc == DSC_OK, "%s: init: %s", ps->name, dsc_loss_scaler_errmsg(&s));
    if (rc != DSC_OK) return;
    const int dyn = ps->dtype == DSC_F16 && ps->loss_scale == 0;
    const double S0 = dyn ? ldexp(1.0, (int)ps->power) : ps->dtype == DSC_F16 ? ps->loss_scale : 1.0;
    ref_t r;
    ref_init(&r, dyn, ps->algo == DSC_LOSS_SCALER_ZERO, S0, ps->min, (long)ps->window, (long)ps->H, ps->consecutive,
             (long)ps->K);
    int burst = 0, n_ovf = 0, n_raised = 0, n_min = 0, n_hyst = 0, n_stop = 0, bad = 0;
    for (int i = 0; i < ps->steps && bad < 5; i++) {
        int ovf;
        if (burst > 0) {
            ovf = 1;
            burst--;
        } else if (rnd() < ps->p_burst) {
            burst = 1 + (int)(rnd() * 12);
            ovf = 1;
            burst--;
        } else {
            ovf = rnd() < ps->p_ovf;
        }
        const double before = r.S;
        const long h_before = r.h;
        ref_out_t o = ref_update(&r, ovf);
        dsc_loss_scaler_event_t ev;
        rc = dsc_loss_scaler_update(&s, ovf, &ev);
        dsc_loss_scaler_state_t st;
        CHECK_OK(dsc_loss_scaler_state_get(&s, &st));
        int ok = ev.scale_before == before && ev.scale_after == r.S && st.scale == r.S && st.iter == r.iter &&
                 st.last_overflow_iter == r.last_overflow && st.consecutive_skips_at_min == r.skips &&
                 ev.consecutive_skips_at_min == r.skips && ev.stop == (bool)o.stop &&
                 rc == (o.stop ? DSC_ERR_NUMERIC : DSC_OK) && !strcmp(dsc_loss_scaler_action_name(ev.action), o.action) &&
                 ev.overflow == (bool)ovf && (ev.message[0] != '\0') == (bool)ovf;
        if (dyn && ps->algo == DSC_LOSS_SCALER_ZERO)
            ok = ok && st.hysteresis == r.h && ev.hysteresis_before == h_before && ev.hysteresis_after == r.h;
        CHECK_MSG(ok, "%s step %d (ovf %d): dsc S %g->%g h %lld skips %lld action %s rc %d; ref S %g->%g h %ld skips %ld "
                  "action %s stop %d",
                  ps->name, i, ovf, ev.scale_before, ev.scale_after, (long long)st.hysteresis,
                  (long long)st.consecutive_skips_at_min, dsc_loss_scaler_action_name(ev.action), (int)rc, before, r.S,
                  r.h, r.skips, o.action, o.stop);
        bad += !ok;
        n_ovf += ovf;
        n_raised += ev.action == DSC_LOSS_SCALE_RAISED;
        n_min += ev.action == DSC_LOSS_SCALE_AT_MINIMUM;
        n_hyst += ev.action == DSC_LOSS_SCALE_HYSTERESIS;
        n_stop += ev.stop;
    }
    printf("  %-34s %5d steps: %4d overflows, %3d raised, %3d hysteresis, %4d at-min, %3d stops, final S %g\n", ps->name,
           ps->steps, n_ovf, n_raised, n_hyst, n_min, n_stop, r.S);
}

static void test_param_sets(void) {
    const pset_t sets[] = {
        /* name, dtype, loss_scale, power, window, H, consecutive, min, algo, K, p_ovf, p_burst, steps */
        {"defaults (w1000 H2 S0 2^16)", DSC_F16, 0, 16, 1000, 2, false, 1, DSC_LOSS_SCALER_ZERO, 10, 0.001, 0.0005, 6000},
        {"w4 H1 power4 min1 -> minimum", DSC_F16, 0, 4, 4, 1, false, 1, DSC_LOSS_SCALER_ZERO, 0, 0.45, 0.02, 3000},
        {"w3 H3 consecutive power10 min8", DSC_F16, 0, 10, 3, 3, true, 8, DSC_LOSS_SCALER_ZERO, 0, 0.3, 0.02, 3000},
        {"w7 H2 power20 min256", DSC_F16, 0, 20, 7, 2, false, 256, DSC_LOSS_SCALER_ZERO, 0, 0.6, 0.01, 3000},
        {"w1 H1 power0 (S0 = min)", DSC_F16, 0, 0, 1, 1, false, 1, DSC_LOSS_SCALER_ZERO, 0, 0.5, 0.0, 2000},
        {"w2 H3 power5 min3 (min not 2^k)", DSC_F16, 0, 5, 2, 3, false, 3, DSC_LOSS_SCALER_ZERO, 0, 0.4, 0.03, 3000},
        {"w5 H2 consecutive power3 K4 stops", DSC_F16, 0, 3, 5, 2, true, 1, DSC_LOSS_SCALER_ZERO, 4, 0.3, 0.05, 3000},
        {"w6 H1 power12 min1 K2 stops", DSC_F16, 0, 12, 6, 1, false, 1, DSC_LOSS_SCALER_ZERO, 2, 0.5, 0.05, 3000},
        {"static 1024", DSC_F16, 1024, 16, 4, 2, false, 1, DSC_LOSS_SCALER_ZERO, 0, 0.2, 0.0, 1000},
        {"static 1024 K3", DSC_F16, 1024, 16, 4, 2, false, 1, DSC_LOSS_SCALER_ZERO, 3, 0.2, 0.02, 1000},
        {"bf16 S=1 K5", DSC_BF16, 0, 16, 4, 2, false, 1, DSC_LOSS_SCALER_ZERO, 5, 0.1, 0.02, 1000},
        {"fp32 S=1", DSC_F32, 0, 16, 4, 2, false, 1, DSC_LOSS_SCALER_ZERO, 0, 0.1, 0.0, 500},
        {"fp16_optimizer w5 power8", DSC_F16, 0, 8, 5, 2, false, 1, DSC_LOSS_SCALER_FP16_OPTIMIZER, 0, 0.35, 0.02, 3000},
        {"fp16_optimizer w3 power6 min4 K3", DSC_F16, 0, 6, 3, 1, true, 4, DSC_LOSS_SCALER_FP16_OPTIMIZER, 3, 0.4, 0.05,
         3000},
    };
    for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++) run_pset(&sets[i]);
}

/* ---- the stop-at-minimum policy --------------------------------------------------------- */

static void test_at_minimum_policy(void) {
    dsc_loss_scaler_params_t p = params_fp16(2, 1000, 1, false, 1);
    p.max_consecutive_skips_at_min = 3;
    dsc_loss_scaler_t s;
    CHECK_OK(dsc_loss_scaler_init(&s, &p));
    dsc_loss_scaler_event_t ev;
    CHECK_OK(dsc_loss_scaler_update(&s, true, &ev)); /* 4 -> 2 */
    CHECK(ev.action == DSC_LOSS_SCALE_LOWERED && ev.scale_after == 2 && ev.consecutive_skips_at_min == 0);
    CHECK_OK(dsc_loss_scaler_update(&s, true, &ev)); /* 2 -> 1 (attempted 2: not yet at the minimum) */
    CHECK(ev.action == DSC_LOSS_SCALE_LOWERED && ev.scale_after == 1 && ev.consecutive_skips_at_min == 0);
    CHECK_OK(dsc_loss_scaler_update(&s, true, &ev)); /* at 1: skip 1 of 3 (DeepSpeed: fatal here) */
    CHECK(ev.action == DSC_LOSS_SCALE_AT_MINIMUM && ev.scale_after == 1 && ev.consecutive_skips_at_min == 1);
    CHECK_MSG(!strcmp(ev.message, "[deepspeed] OVERFLOW! Rank 0 Skipping step. Attempted loss scale: 1, reducing to 1 "
                                  "(already at the minimum loss scale: 1 consecutive skip, training stops at 3)"),
              "msg: %s", ev.message);
    CHECK_OK(dsc_loss_scaler_update(&s, true, &ev)); /* skip 2 */
    CHECK(ev.consecutive_skips_at_min == 2 && !ev.stop);
    CHECK(dsc_loss_scaler_errmsg(&s)[0] == '\0');
    dsc_status_t rc = dsc_loss_scaler_update(&s, true, &ev); /* skip 3: stop */
    CHECK(rc == DSC_ERR_NUMERIC && ev.stop && ev.consecutive_skips_at_min == 3);
    const char *m = dsc_loss_scaler_errmsg(&s);
    CHECK_MSG(strstr(m, "3 consecutive optimizer steps overflowed") && strstr(m, "minimum loss scale 1") &&
                  strstr(m, "bf16") && strstr(m, "learning rate") && strstr(m, "max_consecutive_skips_at_min = 3"),
              "stop message: %s", m);
    printf("  stop message: %s\n", m);
    /* Later overflows keep saying so; a good step resets the count. */
    CHECK(dsc_loss_scaler_update(&s, true, &ev) == DSC_ERR_NUMERIC && ev.consecutive_skips_at_min == 4);
    CHECK_OK(dsc_loss_scaler_update(&s, false, &ev));
    CHECK(ev.consecutive_skips_at_min == 0 && !ev.stop && ev.message[0] == '\0');
    CHECK_OK(dsc_loss_scaler_update(&s, true, &ev));
    CHECK(ev.consecutive_skips_at_min == 1);

    /* With hysteresis at the minimum, the absorbed overflows count too. */
    p = params_fp16(0, 1000, 2, false, 1);
    p.max_consecutive_skips_at_min = 2;
    CHECK_OK(dsc_loss_scaler_init(&s, &p));
    CHECK_OK(dsc_loss_scaler_update(&s, true, &ev));
    CHECK(ev.action == DSC_LOSS_SCALE_HYSTERESIS && ev.consecutive_skips_at_min == 1);
    CHECK_MSG(strstr(ev.message, "but hysteresis is 2. Reducing hysteresis to 1 (at the minimum loss scale: 1 "
                                 "consecutive skip, training stops at 2)") != NULL,
              "msg: %s", ev.message);
    CHECK(dsc_loss_scaler_update(&s, true, &ev) == DSC_ERR_NUMERIC && ev.action == DSC_LOSS_SCALE_AT_MINIMUM);

    /* K = 0: never stops. */
    p = params_fp16(0, 1000, 1, false, 1);
    p.max_consecutive_skips_at_min = 0;
    CHECK_OK(dsc_loss_scaler_init(&s, &p));
    for (int i = 0; i < 1000; i++) CHECK(dsc_loss_scaler_update(&s, true, &ev) == DSC_OK);
    CHECK(ev.consecutive_skips_at_min == 1000 && dsc_loss_scaler_scale(&s) == 1);

    /* Default K is 10. */
    p = params_fp16(0, 1000, 1, false, 1);
    CHECK(p.max_consecutive_skips_at_min == 10);
    CHECK_OK(dsc_loss_scaler_init(&s, &p));
    int first_stop = -1;
    for (int i = 1; i <= 12 && first_stop < 0; i++)
        if (dsc_loss_scaler_update(&s, true, &ev) == DSC_ERR_NUMERIC) first_stop = i;
    CHECK_MSG(first_stop == 10, "default stops at overflow %d", first_stop);

    /* Static scale and bf16: the same policy with their own advice. */
    p = params_fp16(16, 1000, 2, false, 1);
    p.loss_scale = 128;
    p.max_consecutive_skips_at_min = 2;
    CHECK_OK(dsc_loss_scaler_init(&s, &p));
    CHECK(!dsc_loss_scaler_is_dynamic(&s) && dsc_loss_scaler_scale(&s) == 128);
    CHECK_OK(dsc_loss_scaler_update(&s, true, &ev));
    CHECK(ev.action == DSC_LOSS_SCALE_NOT_DYNAMIC && ev.scale_after == 128);
    CHECK_MSG(!strcmp(ev.message, "[deepspeed] OVERFLOW! Rank 0 Skipping step. Attempted loss scale: 128 (static loss "
                                  "scale, not changed: 1 consecutive skip, training stops at 2)"),
              "msg: %s", ev.message);
    CHECK(dsc_loss_scaler_update(&s, true, &ev) == DSC_ERR_NUMERIC);
    m = dsc_loss_scaler_errmsg(&s);
    CHECK_MSG(strstr(m, "static loss scale 128") && strstr(m, "fp16.loss_scale 0") && strstr(m, "bf16"), "%s", m);

    p.dtype = DSC_BF16;
    p.rank = 3;
    CHECK_OK(dsc_loss_scaler_init(&s, &p));
    CHECK(dsc_loss_scaler_scale(&s) == 1);
    CHECK_OK(dsc_loss_scaler_update(&s, false, &ev));
    CHECK(ev.action == DSC_LOSS_SCALE_KEPT && ev.scale_after == 1);
    CHECK_OK(dsc_loss_scaler_update(&s, true, &ev));
    CHECK_MSG(!strcmp(ev.message, "[deepspeed] OVERFLOW! Rank 3 Skipping step. (no loss scaling: 1 consecutive skip, "
                                  "training stops at 2)"),
              "msg: %s", ev.message);
    CHECK(dsc_loss_scaler_update(&s, true, &ev) == DSC_ERR_NUMERIC);
    m = dsc_loss_scaler_errmsg(&s);
    CHECK_MSG(strstr(m, "bf16, no loss scaling") && strstr(m, "learning rate"), "%s", m);
}

/* ---- state save / restore ---------------------------------------------------------------- */

static bool same_event(const dsc_loss_scaler_event_t *a, const dsc_loss_scaler_event_t *b) {
    return a->action == b->action && a->overflow == b->overflow && a->scale_before == b->scale_before &&
           a->scale_after == b->scale_after && a->hysteresis_before == b->hysteresis_before &&
           a->hysteresis_after == b->hysteresis_after && a->consecutive_skips_at_min == b->consecutive_skips_at_min &&
           a->stop == b->stop && !strcmp(a->message, b->message);
}

static void test_state_roundtrip(void) {
    const dsc_loss_scaler_algo_t algos[2] = {DSC_LOSS_SCALER_ZERO, DSC_LOSS_SCALER_FP16_OPTIMIZER};
    for (int ai = 0; ai < 2; ai++)
        for (int cut = 1; cut < 400; cut += 37) {
            dsc_loss_scaler_params_t p = params_fp16(8, 5, 3, ai == 0, 2);
            p.algo = algos[ai];
            p.max_consecutive_skips_at_min = 6;
            dsc_loss_scaler_t a, b;
            CHECK_OK(dsc_loss_scaler_init(&a, &p));
            CHECK_OK(dsc_loss_scaler_init(&b, &p));
            rng_state = 12345u + (uint64_t)cut;
            int ovf[600];
            for (int i = 0; i < 600; i++) ovf[i] = rnd() < 0.35;
            dsc_loss_scaler_event_t ea, eb;
            for (int i = 0; i < cut; i++) (void)dsc_loss_scaler_update(&a, ovf[i], &ea);
            dsc_loss_scaler_state_t st;
            CHECK_OK(dsc_loss_scaler_state_get(&a, &st));
            CHECK_OK(dsc_loss_scaler_state_set(&b, &st));
            int diverged = -1;
            for (int i = cut; i < 600; i++) {
                dsc_status_t ra = dsc_loss_scaler_update(&a, ovf[i], &ea);
                dsc_status_t rb = dsc_loss_scaler_update(&b, ovf[i], &eb);
                if (diverged < 0 && (ra != rb || !same_event(&ea, &eb))) diverged = i;
            }
            CHECK_MSG(diverged < 0, "algo %d cut %d: restored scaler diverges at step %d", ai, cut, diverged);
        }

    /* Invalid states leave the scaler unchanged. */
    dsc_loss_scaler_t s;
    CHECK_OK(dsc_loss_scaler_init(&s, NULL));
    dsc_loss_scaler_state_t st0, st;
    CHECK_OK(dsc_loss_scaler_state_get(&s, &st0));
    CHECK(st0.scale == 65536 && st0.iter == 0 && st0.last_overflow_iter == -1 && st0.hysteresis == 2);
    st = st0;
    st.scale = 0;
    CHECK(dsc_loss_scaler_state_set(&s, &st) == DSC_ERR_INVALID);
    st = st0;
    st.scale = INFINITY;
    CHECK(dsc_loss_scaler_state_set(&s, &st) == DSC_ERR_INVALID);
    st = st0;
    st.iter = 5;
    st.last_overflow_iter = 5;
    CHECK(dsc_loss_scaler_state_set(&s, &st) == DSC_ERR_INVALID);
    st = st0;
    st.hysteresis = 0;
    CHECK(dsc_loss_scaler_state_set(&s, &st) == DSC_ERR_INVALID);
    st = st0;
    st.consecutive_skips_at_min = -1;
    CHECK(dsc_loss_scaler_state_set(&s, &st) == DSC_ERR_INVALID);
    CHECK(dsc_loss_scaler_state_set(&s, NULL) == DSC_ERR_INVALID);
    CHECK_OK(dsc_loss_scaler_state_get(&s, &st));
    CHECK(!memcmp(&st, &st0, sizeof st));
    /* A hysteresis above H is clamped to H. */
    st = st0;
    st.hysteresis = 7;
    CHECK_OK(dsc_loss_scaler_state_set(&s, &st));
    CHECK_OK(dsc_loss_scaler_state_get(&s, &st));
    CHECK(st.hysteresis == 2);
    /* Static: the configured scale wins, the counters are restored. */
    dsc_loss_scaler_params_t p = DSC_LOSS_SCALER_PARAMS_INIT;
    p.loss_scale = 64;
    CHECK_OK(dsc_loss_scaler_init(&s, &p));
    st = st0;
    st.scale = 4096;
    st.iter = 9;
    st.last_overflow_iter = 8;
    st.consecutive_skips_at_min = 2;
    CHECK_OK(dsc_loss_scaler_state_set(&s, &st));
    CHECK_OK(dsc_loss_scaler_state_get(&s, &st));
    CHECK(st.scale == 64 && st.iter == 9 && st.last_overflow_iter == 8 && st.consecutive_skips_at_min == 2);
}

/* ---- validation, config mapping, misc ---------------------------------------------------- */

static void expect_config_error(dsc_loss_scaler_params_t p, const char *needle) {
    dsc_loss_scaler_t s;
    dsc_status_t rc = dsc_loss_scaler_init(&s, &p);
    CHECK_MSG(rc == DSC_ERR_CONFIG && strstr(dsc_loss_scaler_errmsg(&s), needle), "want CONFIG with '%s', got %d: %s",
              needle, (int)rc, dsc_loss_scaler_errmsg(&s));
}

static void test_validation(void) {
    const dsc_loss_scaler_params_t d = DSC_LOSS_SCALER_PARAMS_INIT;
    dsc_loss_scaler_params_t p;
    p = d, p.loss_scale_window = 0, expect_config_error(p, "fp16.loss_scale_window");
    p = d, p.hysteresis = 0, expect_config_error(p, "fp16.hysteresis");
    p = d, p.min_loss_scale = 0, expect_config_error(p, "fp16.min_loss_scale");
    p = d, p.min_loss_scale = NAN, expect_config_error(p, "fp16.min_loss_scale");
    p = d, p.loss_scale = -1, expect_config_error(p, "fp16.loss_scale");
    p = d, p.loss_scale = INFINITY, expect_config_error(p, "fp16.loss_scale");
    p = d, p.initial_scale_power = 2000, expect_config_error(p, "fp16.initial_scale_power");
    p = d, p.initial_scale_power = 3, p.min_loss_scale = 16, expect_config_error(p, "below fp16.min_loss_scale");
    p = d, p.max_consecutive_skips_at_min = -1, expect_config_error(p, "max_consecutive_skips_at_min");
    p = d, p.dtype = DSC_I32, expect_config_error(p, "dtype i32");
    p = d, p.algo = (dsc_loss_scaler_algo_t)7, expect_config_error(p, "algorithm");
    /* Static scale or bf16: the dynamic keys are not checked (DeepSpeed checks them only when dynamic). */
    dsc_loss_scaler_t s;
    p = d, p.loss_scale = 8, p.loss_scale_window = 0, p.hysteresis = 0;
    CHECK_OK(dsc_loss_scaler_init(&s, &p));
    p = d, p.dtype = DSC_BF16, p.loss_scale_window = 0, p.min_loss_scale = 0;
    CHECK_OK(dsc_loss_scaler_init(&s, &p));
    /* FP16_Optimizer ignores hysteresis. */
    p = d, p.algo = DSC_LOSS_SCALER_FP16_OPTIMIZER, p.hysteresis = 0;
    CHECK_OK(dsc_loss_scaler_init(&s, &p));
    /* NULL handling. */
    CHECK(dsc_loss_scaler_init(NULL, NULL) == DSC_ERR_INVALID);
    CHECK(dsc_loss_scaler_update(NULL, false, NULL) == DSC_ERR_INVALID);
    CHECK(isnan(dsc_loss_scaler_scale(NULL)));
    CHECK_OK(dsc_loss_scaler_init(&s, NULL));
    CHECK_OK(dsc_loss_scaler_update(&s, false, NULL)); /* event optional */
    CHECK(!strcmp(dsc_loss_scaler_action_name(DSC_LOSS_SCALE_AT_MINIMUM), "at-minimum"));
    CHECK(!strcmp(dsc_loss_scaler_action_name((dsc_loss_scaler_action_t)99), "?"));

    /* Non-power-of-two scales print as DeepSpeed's int() would; fractional ones with %g. */
    p = d, p.initial_scale_power = -2, p.min_loss_scale = 0.0625, p.hysteresis = 1;
    CHECK_OK(dsc_loss_scaler_init(&s, &p));
    dsc_loss_scaler_event_t ev;
    CHECK_OK(dsc_loss_scaler_update(&s, true, &ev));
    CHECK_MSG(!strcmp(ev.message, "[deepspeed] OVERFLOW! Rank 0 Skipping step. Attempted loss scale: 0.25, reducing to 0.125"),
              "msg: %s", ev.message);

    /* The scale never grows past the largest finite double. */
    p = d, p.initial_scale_power = 1022, p.loss_scale_window = 1;
    CHECK_OK(dsc_loss_scaler_init(&s, &p));
    for (int i = 0; i < 5; i++) CHECK_OK(dsc_loss_scaler_update(&s, false, &ev));
    CHECK(dsc_loss_scaler_scale(&s) == ldexp(1.0, 1023) && ev.action == DSC_LOSS_SCALE_KEPT);
}

static void test_from_config(void) {
    char err[256];
    dsc_config_t *cfg = NULL;
    dsc_status_t rc = dsc_config_parse_string(
        "{\"train_batch_size\": 8, \"fp16\": {\"enabled\": true, \"loss_scale\": 0, \"initial_scale_power\": 12, "
        "\"loss_scale_window\": 50, \"hysteresis\": 3, \"consecutive_hysteresis\": true, \"min_loss_scale\": 4}}",
        NULL, &cfg, err, sizeof err);
    CHECK_MSG(rc == DSC_OK, "parse: %s", err);
    if (rc != DSC_OK) return;
    dsc_loss_scaler_params_t p;
    CHECK_OK(dsc_loss_scaler_params_from_config(cfg, &p));
    CHECK(p.dtype == DSC_F16 && p.loss_scale == 0 && p.initial_scale_power == 12 && p.loss_scale_window == 50 &&
          p.hysteresis == 3 && p.consecutive_hysteresis && p.min_loss_scale == 4 && p.algo == DSC_LOSS_SCALER_ZERO &&
          p.max_consecutive_skips_at_min == 10 && p.rank == 0);
    dsc_loss_scaler_t s;
    CHECK_OK(dsc_loss_scaler_init(&s, &p));
    CHECK(dsc_loss_scaler_scale(&s) == 4096);
    dsc_config_free(cfg);

    rc = dsc_config_parse_string("{\"train_batch_size\": 8, \"bf16\": {\"enabled\": true}}", NULL, &cfg, err, sizeof err);
    CHECK_MSG(rc == DSC_OK, "parse: %s", err);
    if (rc == DSC_OK) {
        CHECK_OK(dsc_loss_scaler_params_from_config(cfg, &p));
        CHECK(p.dtype == DSC_BF16);
        CHECK_OK(dsc_loss_scaler_init(&s, &p));
        CHECK(dsc_loss_scaler_scale(&s) == 1 && !dsc_loss_scaler_is_dynamic(&s));
        dsc_config_free(cfg);
    }
    CHECK_OK(dsc_config_new_default(&cfg));
    CHECK_OK(dsc_loss_scaler_params_from_config(cfg, &p));
    CHECK(p.dtype == DSC_F32);
    dsc_config_free(cfg);
    CHECK(dsc_loss_scaler_params_from_config(NULL, &p) == DSC_ERR_INVALID);
}

int main(void) {
    test_spec_trace();
    test_fp16_optimizer_trace();
    test_param_sets();
    test_at_minimum_policy();
    test_state_roundtrip();
    test_validation();
    test_from_config();
    return check_finish("test_loss_scaler");
}

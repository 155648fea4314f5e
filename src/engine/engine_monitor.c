/* The engine's monitors and wall-clock breakdown (see engine_monitor.h for the calls the
 * engine makes and what DeepSpeed behaviour each reproduces). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/internal.h"
#include "engine/engine_monitor.h"

enum { T_FWD, T_BWD, T_BWD_INNER, T_BWD_REDUCE, T_STEP, T_COUNT };

static const char *const micro_names[T_COUNT] = {"fwd_microstep", "bwd_microstep", "bwd_inner_microstep",
                                                 "bwd_allreduce_microstep", "step_microstep"};
static const char *const global_names[T_COUNT] = {"fwd", "bwd", "bwd_inner", "bwd_allreduce", "step"};
static const char *const event_names[T_COUNT] = {
    "Train/Samples/elapsed_time_ms_forward", "Train/Samples/elapsed_time_ms_backward",
    "Train/Samples/elapsed_time_ms_backward_inner", "Train/Samples/elapsed_time_ms_backward_allreduce",
    "Train/Samples/elapsed_time_ms_step"};

struct dsc_engine_monitor {
    dsc_ctx_t *ctx;
    dsc_monitor_t *mon;  /* NULL when no backend writes (or after a write failed) */
    bool breakdown;      /* wall_clock_breakdown */
    int rank;
    double loss_sum;     /* sum of loss / GAS over the accumulation (DeepSpeed's self.losses) */
    double micro[T_COUNT], global[T_COUNT]; /* ms */
    double last_micro[T_COUNT], last_global[T_COUNT]; /* the values last printed */
    double t_last;       /* end of the previous engine call: the implicit forward's start */
    double t_fwd;        /* explicit forward start (fwd_running) */
    bool fwd_running, fwd_done;
    double t_bwd, t_inner_end, t_step, t_reduce;
    double reduce_in_step; /* ms of reduction inside the current dsc_step */
};

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

static void write_events(dsc_engine_monitor_t *m, const dsc_monitor_event_t *ev, size_t n) {
    if (!m->mon) return;
    char err[512];
    if (dsc_monitor_write_events(m->mon, ev, n, err, sizeof err) != DSC_OK) {
        dsc_ctx_log(m->ctx, DSC_LOG_WARN, "monitor: %s; monitoring is switched off for the rest of the run", err);
        dsc_monitor_free(m->mon);
        m->mon = NULL;
    }
}

dsc_status_t dsc__engine_monitor_new(dsc_ctx_t *ctx, const dsc_config_t *cfg, int rank, dsc_engine_monitor_t **out,
                                     char *err, size_t errsz) {
    if (!out || !cfg) return DSC_ERR_INVALID;
    *out = NULL;
    dsc_monitor_t *mon = NULL;
    dsc_status_t rc = dsc_monitor_new(cfg, rank, &mon, err, errsz);
    if (rc != DSC_OK) return rc;
    if (!dsc_monitor_enabled(mon) && !cfg->wall_clock_breakdown) {
        dsc_monitor_free(mon);
        return DSC_OK;
    }
    dsc_engine_monitor_t *m = calloc(1, sizeof *m);
    if (!m) {
        dsc_monitor_free(mon);
        if (err && errsz) snprintf(err, errsz, "out of memory creating the engine's monitor");
        return DSC_ERR_NOMEM;
    }
    m->ctx = ctx;
    m->rank = rank;
    m->breakdown = cfg->wall_clock_breakdown;
    if (dsc_monitor_enabled(mon)) {
        m->mon = mon;
        const char *csv = dsc_monitor_csv_dir(mon), *tb = dsc_monitor_tensorboard_file(mon);
        if (csv) dsc_ctx_log(ctx, DSC_LOG_INFO, "csv_monitor: writing to %s", csv);
        if (tb) dsc_ctx_log(ctx, DSC_LOG_INFO, "tensorboard: writing %s", tb);
    } else {
        dsc_monitor_free(mon);
    }
    m->t_last = now_ms();
    *out = m;
    return DSC_OK;
}

void dsc__engine_monitor_free(dsc_engine_monitor_t *m) {
    if (!m) return;
    dsc_monitor_free(m->mon);
    free(m);
}

static void add(dsc_engine_monitor_t *m, int timer, double ms) {
    m->micro[timer] += ms;
    m->global[timer] += ms;
}

void dsc__engine_monitor_forward_begin(dsc_engine_monitor_t *m) {
    if (!m || !m->breakdown) return;
    m->t_fwd = now_ms();
    m->fwd_running = true;
}

void dsc__engine_monitor_forward_end(dsc_engine_monitor_t *m) {
    if (!m || !m->breakdown || !m->fwd_running) return;
    add(m, T_FWD, now_ms() - m->t_fwd);
    m->fwd_running = false;
    m->fwd_done = true;
}

void dsc__engine_monitor_backward_begin(dsc_engine_monitor_t *m) {
    if (!m) return;
    if (m->breakdown) {
        if (m->fwd_running) dsc__engine_monitor_forward_end(m);
        double t = now_ms();
        if (!m->fwd_done) add(m, T_FWD, t - m->t_last); /* implicit: since the last engine call */
        m->fwd_done = false;
        m->t_bwd = m->t_inner_end = t;
    }
}

void dsc__engine_monitor_event(dsc_engine_monitor_t *m, const char *name, double value, int64_t global_samples) {
    if (!m || !m->mon) return;
    dsc_monitor_event_t ev = {name, value, global_samples};
    write_events(m, &ev, 1);
}

bool dsc__engine_monitor_wants_loss(const dsc_engine_monitor_t *m) { return m && m->mon; }

void dsc__engine_monitor_losses(dsc_engine_monitor_t *m, const double *losses, int n, int gas, int64_t global_samples) {
    if (!m) return;
    /* DeepSpeed's engine.backward: losses += loss / GAS (GAS > 1), written at the boundary. */
    for (int i = 0; i < n; i++) m->loss_sum += gas > 1 ? losses[i] / gas : losses[i];
    if (m->mon) {
        dsc_monitor_event_t ev = {"Train/Samples/train_loss", m->loss_sum, global_samples};
        write_events(m, &ev, 1);
    }
}

void dsc__engine_monitor_backward_inner_end(dsc_engine_monitor_t *m) {
    if (!m || !m->breakdown) return;
    m->t_inner_end = now_ms();
    add(m, T_BWD_INNER, m->t_inner_end - m->t_bwd);
}

void dsc__engine_monitor_backward_end(dsc_engine_monitor_t *m) {
    if (!m || !m->breakdown) return;
    double t = now_ms();
    add(m, T_BWD_REDUCE, t - m->t_inner_end);
    add(m, T_BWD, t - m->t_bwd);
    m->t_last = t;
}

void dsc__engine_monitor_step_begin(dsc_engine_monitor_t *m) {
    if (!m || !m->breakdown) return;
    m->t_step = now_ms();
    m->reduce_in_step = 0;
}

void dsc__engine_monitor_reduce_begin(dsc_engine_monitor_t *m) {
    if (!m || !m->breakdown) return;
    m->t_reduce = now_ms();
}

void dsc__engine_monitor_reduce_end(dsc_engine_monitor_t *m) {
    if (!m || !m->breakdown) return;
    double dt = now_ms() - m->t_reduce;
    add(m, T_BWD_REDUCE, dt);
    add(m, T_BWD, dt);
    m->reduce_in_step += dt;
}

static void log_timers(dsc_engine_monitor_t *m, const double *ms, const char *const *names) {
    if (m->rank != 0) return;
    char line[512];
    size_t off = (size_t)snprintf(line, sizeof line, "[Rank 0] time (ms)");
    for (int i = 0; i < T_COUNT && off < sizeof line; i++)
        off += (size_t)snprintf(line + off, sizeof line - off, " | %s: %.2f", names[i], ms[i]);
    dsc_ctx_log(m->ctx, DSC_LOG_INFO, "%s", line);
}

void dsc__engine_monitor_step_end(dsc_engine_monitor_t *m, bool boundary, int64_t global_samples, double lr,
                                  bool fp16, double loss_scale) {
    if (!m) return;
    /* DeepSpeed's engine.step: lr (and the fp16 loss scale) of the next update at the boundary */
    if (boundary && m->mon) {
        dsc_monitor_event_t ev[2] = {{"Train/Samples/lr", lr, global_samples},
                                     {"Train/Samples/loss_scale", loss_scale, global_samples}};
        write_events(m, ev, fp16 ? 2 : 1);
    }
    if (boundary) m->loss_sum = 0;
    if (!m->breakdown) return;
    double t = now_ms();
    add(m, T_STEP, t - m->t_step - m->reduce_in_step);
    log_timers(m, m->micro, micro_names);
    memcpy(m->last_micro, m->micro, sizeof m->micro);
    memset(m->micro, 0, sizeof m->micro);
    if (boundary) {
        if (m->mon) {
            dsc_monitor_event_t ev[T_COUNT];
            for (int i = 0; i < T_COUNT; i++) ev[i] = (dsc_monitor_event_t){event_names[i], m->global[i], global_samples};
            write_events(m, ev, T_COUNT);
        }
        log_timers(m, m->global, global_names);
        memcpy(m->last_global, m->global, sizeof m->global);
        memset(m->global, 0, sizeof m->global);
    }
    m->t_last = now_ms();
}

void dsc__engine_monitor_timers(const dsc_engine_monitor_t *m, bool global, double out_ms[5]) {
    for (int i = 0; i < T_COUNT; i++) out_ms[i] = m ? (global ? m->last_global[i] : m->last_micro[i]) : 0;
}

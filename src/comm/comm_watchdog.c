/* The watchdog thread of a device-queue communicator (comm_watchdog.h).
 *
 * State shared with the main thread sits behind `mu`: the list of collectives in flight
 * (issue order) and the report. The thread sleeps on `cv` until the next poll or the earliest
 * deadline, then asks each armed collective's end event whether it passed (a collective whose
 * event passed is no longer a candidate, whatever the host does with it) and the transport
 * whether it holds an asynchronous error. The first collective past its deadline that the
 * host is not waiting on (a waiting host checks the same deadline between its polls and
 * reports as before), or the error, fires it: the report is written, the transport aborted (under the transport lock
 * when the main thread leaves its transport call within the grace period, without it
 * otherwise: the case abort exists for), and the thread ends. */
#include "comm/comm_watchdog.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct watch_entry {
    dsc__comm_desc_t d;
    double start_s, deadline_s;
    dsc_device_event_t *done; /* NULL until armed */
    bool passed, waiting, ordered;
} watch_entry_t;

struct dsc__watchdog {
    dsc__watchdog_hooks_t hooks;
    double poll_s;
    pthread_t thread;
    bool started;

    pthread_mutex_t mu; /* the list, the report, stop */
    pthread_cond_t cv;  /* on CLOCK_MONOTONIC */
    bool stop;
    watch_entry_t *e;
    size_t n, cap;
    dsc__watchdog_report_t report;
    atomic_bool fired;

    pthread_mutex_t transport; /* held by the main thread around each transport call */
};

static struct timespec mono_at(double s) {
    struct timespec ts;
    ts.tv_sec = (time_t)s;
    ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
    if (ts.tv_nsec >= 1000000000L) ts.tv_nsec = 999999999L;
    if (ts.tv_nsec < 0) ts.tv_nsec = 0;
    return ts;
}

static double clock_now(const dsc__watchdog_t *w) {
    return w->hooks.now ? w->hooks.now(w->hooks.user) : dsc__comm_now();
}

static watch_entry_t *find(dsc__watchdog_t *w, int64_t seq) {
    for (size_t i = 0; i < w->n; i++)
        if (w->e[i].d.seq == seq) return &w->e[i];
    return NULL;
}

/* Aborts the transport: under its lock when the main thread leaves its call within the
 * grace period, without it otherwise (a call that stays blocked is what abort ends). */
static void abort_transport(dsc__watchdog_t *w) {
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until); /* pthread_mutex_timedlock's clock */
    const double grace = w->poll_s < 1.0 ? w->poll_s : 1.0;
    until.tv_sec += (time_t)grace;
    until.tv_nsec += (long)((grace - (double)(time_t)grace) * 1e9);
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    const bool locked = pthread_mutex_timedlock(&w->transport, &until) == 0;
    w->hooks.abort_comm(w->hooks.user, locked);
    if (locked) pthread_mutex_unlock(&w->transport);
}

static void *run(void *arg) {
    dsc__watchdog_t *w = arg;
    pthread_mutex_lock(&w->mu);
    while (!w->stop) {
        const double now = clock_now(w);
        double wake = dsc__comm_now() + w->poll_s; /* the thread sleeps on the real clock */
        watch_entry_t *late = NULL, *oldest = NULL; /* oldest: not finished on the device */
        for (size_t i = 0; i < w->n; i++) {
            watch_entry_t *x = &w->e[i];
            if (x->passed) continue;
            if (x->done) {
                bool done = false;
                if (w->hooks.passed(w->hooks.user, x->done, &done) == 0 && done) {
                    x->passed = true;
                    continue;
                }
            }
            if (!oldest) oldest = x;
            if (x->waiting) continue; /* the host polls it against the same deadline and reports it itself */
            if (now >= x->deadline_s) {
                late = x;
                break;
            }
            if (!w->hooks.now && x->deadline_s < wake) wake = x->deadline_s;
        }
        char why[sizeof w->report.why] = "";
        const bool async = !late && w->hooks.async_error && w->hooks.async_error(w->hooks.user, why, sizeof why);
        if (late || async) {
            dsc__watchdog_report_t *r = &w->report;
            memset(r, 0, sizeof *r);
            /* an error names the oldest collective not finished, else the newest one known */
            const watch_entry_t *x = late ? late : oldest ? oldest : w->n ? &w->e[w->n - 1] : NULL;
            if (x) {
                r->d = x->d;
                r->waited_s = now - x->start_s;
                r->host_waited = x->waiting;
                r->host_ordered = x->ordered;
                r->enqueued = x->done != NULL;
            }
            r->status = late ? DSC_ERR_TIMEOUT : DSC_ERR_COMM;
            snprintf(r->why, sizeof r->why, "%s", why);
            atomic_store(&w->fired, true);
            pthread_mutex_unlock(&w->mu);
            abort_transport(w);
            return NULL; /* fired once: the communicator is done for */
        }
        struct timespec ts = mono_at(wake);
        if (!w->stop) pthread_cond_timedwait(&w->cv, &w->mu, &ts); /* a spurious wake-up re-polls: harmless */
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

dsc_status_t dsc__watchdog_new(dsc_ctx_t *ctx, const dsc__watchdog_hooks_t *hooks, double poll_s,
                               dsc__watchdog_t **out) {
    *out = NULL;
    dsc__watchdog_t *w = calloc(1, sizeof *w);
    if (!w) return dsc_ctx_set_error(ctx, DSC_ERR_NOMEM, "out of memory creating a communicator's watchdog");
    w->hooks = *hooks;
    w->poll_s = poll_s > 1e-3 ? poll_s : 1e-3;
    atomic_init(&w->fired, false);
    pthread_condattr_t ca;
    int rc = pthread_condattr_init(&ca);
    if (rc == 0) rc = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* dsc__comm_now's clock */
    if (rc == 0) rc = pthread_cond_init(&w->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (rc == 0 && (rc = pthread_mutex_init(&w->mu, NULL)) != 0) pthread_cond_destroy(&w->cv);
    if (rc == 0 && (rc = pthread_mutex_init(&w->transport, NULL)) != 0) {
        pthread_cond_destroy(&w->cv);
        pthread_mutex_destroy(&w->mu);
    }
    if (rc != 0) {
        free(w);
        return dsc_ctx_set_error(ctx, DSC_ERR_COMM, "creating a communicator's watchdog failed: %s", strerror(rc));
    }
    rc = pthread_create(&w->thread, NULL, run, w);
    if (rc != 0) {
        pthread_cond_destroy(&w->cv);
        pthread_mutex_destroy(&w->mu);
        pthread_mutex_destroy(&w->transport);
        free(w);
        return dsc_ctx_set_error(ctx, DSC_ERR_COMM, "starting a communicator's watchdog thread failed: %s",
                                 strerror(rc));
    }
    w->started = true;
    *out = w;
    return DSC_OK;
}

void dsc__watchdog_free(dsc__watchdog_t *w) {
    if (!w) return;
    pthread_mutex_lock(&w->mu);
    w->stop = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    if (w->started) pthread_join(w->thread, NULL);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    pthread_mutex_destroy(&w->transport);
    free(w->e);
    free(w);
}

void dsc__watchdog_lock(dsc__watchdog_t *w) { pthread_mutex_lock(&w->transport); }
void dsc__watchdog_unlock(dsc__watchdog_t *w) { pthread_mutex_unlock(&w->transport); }

dsc_status_t dsc__watchdog_watch(dsc__watchdog_t *w, const dsc__comm_desc_t *d, double deadline_s) {
    pthread_mutex_lock(&w->mu);
    dsc_status_t st = DSC_OK;
    if (w->n == w->cap) {
        const size_t cap = w->cap ? 2 * w->cap : 16;
        watch_entry_t *e = realloc(w->e, cap * sizeof *e);
        if (e) {
            w->e = e;
            w->cap = cap;
        } else {
            st = DSC_ERR_NOMEM;
        }
    }
    if (st == DSC_OK) {
        watch_entry_t *x = &w->e[w->n++];
        memset(x, 0, sizeof *x);
        x->d = *d;
        x->start_s = clock_now(w);
        x->deadline_s = deadline_s; /* noticed within poll_s of it: the thread wakes every poll_s */
    }
    pthread_mutex_unlock(&w->mu);
    return st;
}

void dsc__watchdog_arm(dsc__watchdog_t *w, int64_t seq, dsc_device_event_t *done) {
    pthread_mutex_lock(&w->mu);
    watch_entry_t *x = find(w, seq);
    if (x) x->done = done;
    pthread_mutex_unlock(&w->mu);
}

void dsc__watchdog_waiting(dsc__watchdog_t *w, int64_t seq, bool waiting) {
    pthread_mutex_lock(&w->mu);
    watch_entry_t *x = find(w, seq);
    if (x) x->waiting = waiting;
    pthread_mutex_unlock(&w->mu);
}

void dsc__watchdog_ordered(dsc__watchdog_t *w, int64_t seq) {
    pthread_mutex_lock(&w->mu);
    watch_entry_t *x = find(w, seq);
    if (x) {
        x->ordered = true;
        x->waiting = false; /* its deadline is the watchdog's again */
    }
    pthread_mutex_unlock(&w->mu);
}

void dsc__watchdog_forget(dsc__watchdog_t *w, int64_t seq) {
    pthread_mutex_lock(&w->mu);
    watch_entry_t *x = find(w, seq);
    if (x) {
        const size_t i = (size_t)(x - w->e);
        memmove(x, x + 1, (w->n - i - 1) * sizeof *x);
        w->n--;
    }
    pthread_mutex_unlock(&w->mu);
}

bool dsc__watchdog_fired(dsc__watchdog_t *w, dsc__watchdog_report_t *out) {
    if (!w || !atomic_load(&w->fired)) return false;
    if (out) {
        pthread_mutex_lock(&w->mu);
        *out = w->report;
        pthread_mutex_unlock(&w->mu);
    }
    return true;
}

int dsc__watchdog_count(dsc__watchdog_t *w) {
    pthread_mutex_lock(&w->mu);
    const int n = (int)w->n;
    pthread_mutex_unlock(&w->mu);
    return n;
}

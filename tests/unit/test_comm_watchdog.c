/* The device-queue communicators' watchdog (src/comm/comm_watchdog.h) with hooks of the test's
 * own: "events" that pass or not as the test says, an asynchronous error it switches on, and
 * an abort it counts. Cases: a collective past its deadline fires (report: sequence number,
 * operation, size, enqueued, waited at least the deadline's distance), the transport is
 * aborted once under the transport lock; one whose event passed, or that the host waits on,
 * does not fire however late (checked after the thread has polled it twice: no wall-clock
 * figure); an asynchronous error fires with DSC_ERR_COMM and the error's text, naming the
 * oldest unfinished collective; a host stuck inside a transport call (the lock held) gets the
 * abort without the lock; a collective never armed (its call never returned) counts as
 * unfinished; one the host's wait completed in order (dsc__watchdog_ordered) is the
 * watchdog's to report again, named as ordered. The deadlines are on the test's own clock, which moves only when the test says
 * (so no case depends on the machine's speed); every wait has a hang guard; every watchdog is
 * joined by dsc__watchdog_free. */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "comm/comm_watchdog.h"

typedef struct fake_transport {
    atomic_int polls;   /* calls of passed() */
    atomic_int aborts;  /* calls of abort() */
    atomic_int locked_aborts;
    atomic_bool error;  /* async_error() reports one */
    _Atomic double clock; /* the deadlines' clock, s */
} fake_transport_t;

static double fake_now(void *user) { return atomic_load(&((fake_transport_t *)user)->clock); }

/* An "event" is a bool the test owns: whether its work passed. */
static int fake_passed(void *user, dsc_device_event_t *ev, bool *done) {
    fake_transport_t *t = user;
    atomic_fetch_add(&t->polls, 1);
    *done = atomic_load((atomic_bool *)ev);
    return 0;
}
static bool fake_async(void *user, char *why, size_t n) {
    fake_transport_t *t = user;
    if (!atomic_load(&t->error)) return false;
    snprintf(why, n, "peer connection lost (test)");
    return true;
}
static void fake_abort(void *user, bool locked) {
    fake_transport_t *t = user;
    atomic_fetch_add(&t->aborts, 1);
    if (locked) atomic_fetch_add(&t->locked_aborts, 1);
}

static void nap(void) {
    const struct timespec ms = {0, 1000000};
    nanosleep(&ms, NULL);
}

/* Waits (hang guard 30 s) until the watchdog fired. */
static bool wait_fired(dsc__watchdog_t *w, dsc__watchdog_report_t *r) {
    for (int i = 0; i < 30000; i++) {
        if (dsc__watchdog_fired(w, r)) return true;
        nap();
    }
    return false;
}

/* Waits (hang guard 30 s) until the thread has asked `n` more times about events. */
static void wait_polls(fake_transport_t *t, int n) {
    const int until = atomic_load(&t->polls) + n;
    for (int i = 0; i < 30000 && atomic_load(&t->polls) < until; i++) nap();
    CHECK(atomic_load(&t->polls) >= until);
}

static dsc__comm_desc_t desc(int64_t seq, int op, int64_t count) {
    dsc__comm_desc_t d;
    memset(&d, 0, sizeof d);
    d.seq = seq;
    d.op = op;
    d.count = count;
    d.dtype = DSC_F32;
    d.redop = op == DSC_COMM_ALLREDUCE ? DSC_REDUCE_SUM : -1;
    d.root = -1;
    return d;
}

static dsc__watchdog_t *make(dsc_ctx_t *ctx, fake_transport_t *t) {
    memset(t, 0, sizeof *t);
    const dsc__watchdog_hooks_t hooks = {t, fake_passed, fake_async, fake_abort, fake_now};
    dsc__watchdog_t *w = NULL;
    CHECK_OK(dsc__watchdog_new(ctx, &hooks, 0.002, &w));
    return w;
}

static void t_overdue(dsc_ctx_t *ctx) {
    fake_transport_t t;
    dsc__watchdog_t *w = make(ctx, &t);
    atomic_bool done1 = true, done2 = false;
    const dsc__comm_desc_t d1 = desc(1, DSC_COMM_ALLREDUCE, 8), d2 = desc(2, DSC_COMM_REDUCE_SCATTER, 4096);
    atomic_store(&t.clock, 100.0);
    CHECK_OK(dsc__watchdog_watch(w, &d1, 110.0));
    dsc__watchdog_arm(w, 1, (dsc_device_event_t *)&done1);
    CHECK_OK(dsc__watchdog_watch(w, &d2, 110.0));
    dsc__watchdog_arm(w, 2, (dsc_device_event_t *)&done2);
    CHECK(dsc__watchdog_count(w) == 2);
    wait_polls(&t, 2); /* before the deadline: nothing */
    CHECK(!dsc__watchdog_fired(w, NULL));
    atomic_store(&t.clock, 125.0);
    dsc__watchdog_report_t r;
    CHECK(wait_fired(w, &r));
    CHECK(r.d.seq == 2); /* #1 passed: never a candidate */
    CHECK(r.d.op == DSC_COMM_REDUCE_SCATTER && r.d.count == 4096);
    CHECK(r.status == DSC_ERR_TIMEOUT);
    CHECK(r.enqueued && !r.host_waited);
    CHECK_MSG(r.waited_s == 25.0, "waited %g s on the test's clock, expected 125 - 100", r.waited_s);
    for (int i = 0; i < 30000 && atomic_load(&t.aborts) == 0; i++) nap();
    CHECK(atomic_load(&t.aborts) == 1 && atomic_load(&t.locked_aborts) == 1);
    dsc__watchdog_forget(w, 1);
    dsc__watchdog_forget(w, 2);
    CHECK(dsc__watchdog_count(w) == 0);
    dsc__watchdog_free(w);
    CHECK(atomic_load(&t.aborts) == 1); /* once, also after free */
}

static void t_not_overdue(dsc_ctx_t *ctx) {
    fake_transport_t t;
    dsc__watchdog_t *w = make(ctx, &t);
    atomic_bool passed = true, pending = false;
    const dsc__comm_desc_t d1 = desc(1, DSC_COMM_ALLGATHER, 16), d2 = desc(2, DSC_COMM_ALLREDUCE, 16);
    atomic_store(&t.clock, 50.0);
    const double past = 40.0; /* both deadlines already gone */
    CHECK_OK(dsc__watchdog_watch(w, &d1, past));
    dsc__watchdog_arm(w, 1, (dsc_device_event_t *)&passed);
    CHECK_OK(dsc__watchdog_watch(w, &d2, past));
    dsc__watchdog_waiting(w, 2, true); /* the host polls #2 against its deadline itself */
    dsc__watchdog_arm(w, 2, (dsc_device_event_t *)&pending);
    wait_polls(&t, 4);
    CHECK(!dsc__watchdog_fired(w, NULL));
    CHECK(atomic_load(&t.aborts) == 0);
    /* An asynchronous error fires regardless, naming the oldest unfinished collective. */
    atomic_store(&t.error, true);
    dsc__watchdog_report_t r;
    CHECK(wait_fired(w, &r));
    CHECK(r.status == DSC_ERR_COMM && r.d.seq == 2 && r.host_waited);
    CHECK(strcmp(r.why, "peer connection lost (test)") == 0);
    dsc__watchdog_free(w);
    CHECK(atomic_load(&t.aborts) == 1);
}

/* A collective the host waited on, then completed in order (its wait returned without it
 * finishing): its deadline is the watchdog's again, and the report says the host ordered it. */
static void t_ordered(dsc_ctx_t *ctx) {
    fake_transport_t t;
    dsc__watchdog_t *w = make(ctx, &t);
    atomic_bool pending = false;
    const dsc__comm_desc_t d = desc(3, DSC_COMM_ALLREDUCE, 1024);
    atomic_store(&t.clock, 10.0);
    CHECK_OK(dsc__watchdog_watch(w, &d, 13.0));
    dsc__watchdog_arm(w, 3, (dsc_device_event_t *)&pending);
    dsc__watchdog_waiting(w, 3, true);
    dsc__watchdog_ordered(w, 3);
    wait_polls(&t, 2); /* before the deadline: nothing */
    CHECK(!dsc__watchdog_fired(w, NULL));
    atomic_store(&t.clock, 14.0);
    dsc__watchdog_report_t r;
    CHECK(wait_fired(w, &r));
    CHECK(r.d.seq == 3 && r.status == DSC_ERR_TIMEOUT && r.enqueued);
    CHECK_MSG(r.host_ordered && !r.host_waited, "host_ordered %d host_waited %d", r.host_ordered, r.host_waited);
    dsc__watchdog_free(w);
    CHECK(atomic_load(&t.aborts) == 1);
}

static void t_stuck_in_call(dsc_ctx_t *ctx) {
    fake_transport_t t;
    dsc__watchdog_t *w = make(ctx, &t);
    const dsc__comm_desc_t d = desc(7, DSC_COMM_BROADCAST, 32);
    dsc__watchdog_lock(w); /* the host enters the transport call for #7 and never leaves it */
    CHECK_OK(dsc__watchdog_watch(w, &d, 10.0)); /* never armed */
    atomic_store(&t.clock, 11.0);
    dsc__watchdog_report_t r;
    CHECK(wait_fired(w, &r));
    CHECK(r.d.seq == 7 && !r.enqueued && r.status == DSC_ERR_TIMEOUT);
    for (int i = 0; i < 30000 && atomic_load(&t.aborts) == 0; i++) nap();
    CHECK(atomic_load(&t.aborts) == 1 && atomic_load(&t.locked_aborts) == 0); /* aborted without the lock */
    dsc__watchdog_unlock(w);
    dsc__watchdog_free(w);
}

static void t_idle_free(dsc_ctx_t *ctx) {
    fake_transport_t t;
    dsc__watchdog_t *w = make(ctx, &t);
    dsc__watchdog_free(w); /* joined at once, nothing found */
    CHECK(atomic_load(&t.aborts) == 0);
    dsc__watchdog_free(NULL);
}

int main(void) {
    dsc_ctx_t *ctx = NULL;
    CHECK_OK(dsc_ctx_new(NULL, &ctx));
    t_overdue(ctx);
    t_not_overdue(ctx);
    t_ordered(ctx);
    t_stuck_in_call(ctx);
    t_idle_free(ctx);
    dsc_ctx_free(ctx);
    return check_finish("test_comm_watchdog");
}

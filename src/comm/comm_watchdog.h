/* The watchdog of a communicator whose collectives run on a device queue (the NCCL backend,
 * comm_nccl.c): a thread owned by the communicator (no global state; joined when freed) that
 * notices a collective which has not completed by its deadline, or an asynchronous error of
 * the transport, also while the host never waits on it (the engine queued the collective and
 * went on, or the host sits inside a transport call or a device read that waits behind it).
 *
 * The thread itself only queries (hooks callable from any thread) and, once, aborts the
 * transport (so stuck kernels end and blocked calls return); it writes nothing to the context
 * or its log and never calls MPI (dsc initialises MPI as MPI_THREAD_FUNNELED). What it found
 * is picked up by the main thread (dsc__watchdog_fired) at its next call into the
 * communicator, which reports it like any timeout (sequence number, operation, size, the ranks
 * that never arrived) and aborts the job. Never installed. */
#ifndef DSC_COMM_WATCHDOG_H
#define DSC_COMM_WATCHDOG_H

#include <stdbool.h>

#include "comm/comm_internal.h"
#include "core/device.h"

typedef struct dsc__watchdog dsc__watchdog_t;

typedef struct dsc__watchdog_hooks {
    void *user;
    /* Whether the work before `ev`'s latest record finished (*done); 0, or < 0 on a device
     * error (then the collective counts as not finished). Any thread; records nothing. */
    int (*passed)(void *user, dsc_device_event_t *ev, bool *done);
    /* True when the transport reports an asynchronous error, described into why. Any
     * thread. May be NULL. */
    bool (*async_error)(void *user, char *why, size_t why_n);
    /* Aborts the transport: its queued work ends and calls blocked in it return. Called at
     * most once, by the watchdog thread, with `locked` true when it holds the transport lock
     * (dsc__watchdog_lock: the main thread is in no transport call), false when the main
     * thread stayed inside a transport call for the whole grace period. */
    void (*abort_comm)(void *user, bool locked);
    /* The clock of the deadlines and waits, in seconds; NULL: dsc__comm_now (the NCCL
     * backend). A test's own clock makes its cases independent of the machine's speed. */
    double (*now)(void *user);
} dsc__watchdog_hooks_t;

/* What the watchdog found (dsc__watchdog_fired). */
typedef struct dsc__watchdog_report {
    dsc__comm_desc_t d;    /* the collective: the oldest overdue one, or the oldest in flight at an async error */
    double waited_s;       /* since it started */
    dsc_status_t status;   /* DSC_ERR_TIMEOUT, or DSC_ERR_COMM for an asynchronous error */
    bool host_waited;      /* the host was waiting on it (testing or waiting) when found */
    bool host_ordered;     /* the host's wait had ordered later device work after it and gone on */
    bool enqueued;         /* its transport call had returned (false: the host was stuck inside it) */
    char why[200];         /* the transport's asynchronous error, when status is DSC_ERR_COMM */
} dsc__watchdog_report_t;

/* Starts the thread; it looks at the collectives in flight every poll_s seconds (and at each
 * deadline). Returns DSC_OK, DSC_ERR_NOMEM, or DSC_ERR_COMM when no thread can be started;
 * the message goes to ctx. */
dsc_status_t dsc__watchdog_new(dsc_ctx_t *ctx, const dsc__watchdog_hooks_t *hooks, double poll_s,
                               dsc__watchdog_t **out);
/* Stops and joins the thread, frees the watchdog (the caller's events stay the caller's). NULL ok. */
void dsc__watchdog_free(dsc__watchdog_t *w);

/* The transport lock: the main thread holds it around each transport call, so the watchdog
 * aborts the transport between calls, never during one unless a call stays blocked. */
void dsc__watchdog_lock(dsc__watchdog_t *w);
void dsc__watchdog_unlock(dsc__watchdog_t *w);

/* Main thread. Watches collective d from now until dsc__watchdog_forget, with `deadline_s`
 * (on the hooks' clock). Until dsc__watchdog_arm names its end event the collective counts
 * as not finished (the host is still inside its transport call). DSC_ERR_NOMEM when the list
 * cannot grow (the collective is then not watched; the caller's own deadline still holds). */
dsc_status_t dsc__watchdog_watch(dsc__watchdog_t *w, const dsc__comm_desc_t *d, double deadline_s);
/* Its transport call returned and `done` is recorded after its work (the caller keeps owning
 * `done` and must call dsc__watchdog_forget before freeing it). */
void dsc__watchdog_arm(dsc__watchdog_t *w, int64_t seq, dsc_device_event_t *done);
/* The host is (true) or is no longer (false) waiting on collective seq: its deadline is then
 * the host's to check (the generic layer's report, as without a watchdog); an asynchronous
 * error still fires. */
void dsc__watchdog_waiting(dsc__watchdog_t *w, int64_t seq, bool waiting);
/* The host's wait completed collective seq in order (later device work runs after it) and
 * went on: the collective stays watched, against its deadline, until dsc__watchdog_forget
 * (once its end event passed); a report says the host had ordered it. */
void dsc__watchdog_ordered(dsc__watchdog_t *w, int64_t seq);
/* Stops watching collective seq (completed or abandoned). */
void dsc__watchdog_forget(dsc__watchdog_t *w, int64_t seq);
/* True (and *out filled) once the watchdog found an overdue collective or an asynchronous
 * error; the transport is then aborted (or being aborted). Any thread. */
bool dsc__watchdog_fired(dsc__watchdog_t *w, dsc__watchdog_report_t *out);
/* Collectives being watched now (tests). */
int dsc__watchdog_count(dsc__watchdog_t *w);

#endif

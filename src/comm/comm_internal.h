/* Internal layout of a communicator and the backend interface (vtable).
 *
 * The generic layer (comm.c) validates arguments, numbers collectives, runs the debug
 * check, counts bytes, keeps the history ring, enforces timeouts and formats every
 * message. A backend (comm_self.c, comm_fake.c, comm_mpi.c) only starts, tests and
 * releases collectives, sleeps between polls, reports what its peers are doing on a
 * timeout, and aborts. Never installed. */
#ifndef DSC_COMM_INTERNAL_H
#define DSC_COMM_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/internal.h"
#include "dsc/comm.h"

/* Fixed-size descriptor of one collective: what the debug check exchanges and what the
 * MPI backend sends in reply to a timeout query. Plain bytes; all ranks run one binary.
 * Its size is a multiple of 4 so it travels as DSC_I32 elements. */
typedef struct dsc__comm_desc {
    int64_t seq;      /* user-visible sequence number (1, 2, ...) */
    int64_t count;    /* elements, as given by the caller */
    int32_t op;       /* dsc_comm_op_t */
    int32_t dtype;    /* dsc_dtype_t */
    int32_t redop;    /* dsc_reduce_op_t for allreduce, -1 otherwise */
    int32_t root;     /* broadcast root, -1 otherwise */
    int32_t flags;    /* DSC__DESC_* */
    int32_t counts_hash; /* reduce_scatter_v: a hash of the counts array (0 otherwise), so
                          * the debug check and the fake backend see differing counts */
    char tag[DSC_COMM_TAG_MAX];
} dsc__comm_desc_t;

/* The rank is inside dsc_comm_free, waiting for every rank to free its communicator. */
#define DSC__DESC_IN_FREE 1

_Static_assert(sizeof(dsc__comm_desc_t) % 4 == 0, "descriptor must travel as i32 elements");
#define DSC__DESC_I32 (sizeof(dsc__comm_desc_t) / 4)

/* Streams of collectives: the user's; the debug check's descriptor exchanges; the
 * barrier of dsc_comm_free before MPI_Finalize. The MPI backend runs each on its own
 * communicator, so a rank in one stream is never matched against another stream's call. */
enum { DSC__STREAM_USER = 0, DSC__STREAM_CHECK = 1, DSC__STREAM_FREE = 2, DSC__STREAM_COUNT = 3 };

/* One collective in flight, as the backend sees it. */
typedef struct dsc__coll {
    dsc__comm_desc_t d; /* seq is the user collective this belongs to (also for checks) */
    int stream;         /* DSC__STREAM_* */
    const void *send;
    void *recv;         /* broadcast: the buffer (send == recv) */
    const int64_t *counts; /* reduce_scatter_v: elements each rank receives (world entries) */
    void *impl;         /* backend state, owned by the backend until release() */
} dsc__coll_t;

/* What a peer was doing when this rank timed out. */
typedef enum dsc__peer_kind {
    DSC__PEER_UNKNOWN = 0, /* no answer (MPI: not inside any dsc call) */
    DSC__PEER_KNOWN        /* `latest` is its latest issued collective (seq 0: none) */
} dsc__peer_kind_t;

#define DSC__PEER_STOPPED 1u /* fake: stopped by fault injection */
#define DSC__PEER_ABORTED 2u /* its communicator was aborted */
#define DSC__PEER_DELAYED 4u /* fake: sleeping in an injected delay */

typedef struct dsc__peer {
    dsc__peer_kind_t kind;
    unsigned flags;
    dsc__comm_desc_t latest;
} dsc__peer_t;

typedef struct dsc__comm_vtable {
    const char *name;
    /* Starts `coll` (arguments already validated; buffers stay valid until release).
     * On error records the message with dsc__comm_fail and returns its status. */
    dsc_status_t (*start)(dsc_comm_t *c, dsc__coll_t *coll);
    /* Progresses `coll`; sets *done when it completed (results in place). */
    dsc_status_t (*test)(dsc_comm_t *c, dsc__coll_t *coll, bool *done);
    /* Waits a little before the next test (attempt counts the polls so far; never longer
     * than max_s). May serve peers' queries. */
    void (*pause)(dsc_comm_t *c, dsc__coll_t *coll, unsigned attempt, double max_s);
    /* Frees coll->impl. `completed` is false when the collective is abandoned (timeout,
     * abort, error): the backend must never touch its buffers again. */
    void (*release)(dsc_comm_t *c, dsc__coll_t *coll, bool completed);
    /* Fills peers[0..world) with what each rank was last doing (this rank included),
     * waiting at most grace_s for answers. */
    void (*peers)(dsc_comm_t *c, const dsc__coll_t *coll, dsc__peer_t *peers, double grace_s);
    /* Backend part of dsc_comm_abort (MPI: does not return). */
    void (*abort_job)(dsc_comm_t *c, int errorcode);
    /* Frees the backend (impl). */
    void (*destroy)(dsc_comm_t *c);
    /* True when dsc_comm_free must first wait (with the timeout) for every rank to free
     * its communicator: the MPI backend before MPI_Finalize, which would otherwise hang
     * silently when one rank leaves early. NULL: never. */
    bool (*wants_free_barrier)(const dsc_comm_t *c);
    /* True when the backend's watchdog (comm_watchdog.h) found a collective overdue, or an
     * asynchronous transport error, while the host was elsewhere; it has filled c->overdue,
     * overdue_status, overdue_waited_s and overdue_note. The generic layer asks before each
     * start and test and in dsc_comm_free, reports it like a timeout and aborts. NULL: never. */
    bool (*overdue)(dsc_comm_t *c);
    /* The host waits on `coll` (dsc_comm_wait, or a blocking collective's own wait): the
     * backend may complete it in order instead of waiting for it: later work on the
     * context's device queue runs after it, so a host read of its results blocks until it
     * finished (a device read waits for that queue). Sets *done when it did so (release with
     * completed = true follows at once); leaves it false for results the host reads itself
     * (host buffers), which the generic layer then polls with test as before. NULL: every
     * wait polls test (self, MPI, fake). */
    dsc_status_t (*order)(dsc_comm_t *c, dsc__coll_t *coll, bool *done);
    /* Looks once whether every collective completed in order has finished on the device
     * (whole_device: every collective started, ordered or not, as a call that waits for the
     * whole device would wait for), or the backend's watchdog fired: true then; false: not
     * yet (it may serve peers' queries; the caller waits a little and asks again). Polled
     * by the context's host-read check (below) before a blocking device call, so the host
     * never blocks inside the device's wait behind a stuck collective, and by dsc_comm_free
     * before its barrier (whole device: a stuck one is reported rather than waited for in
     * the device's teardown). NULL: nothing to settle. */
    bool (*settle)(dsc_comm_t *c, bool whole_device);
} dsc__comm_vtable_t;

#define DSC__HISTORY 16

typedef struct dsc__comm_hist {
    dsc__comm_desc_t d;
    dsc_status_t status; /* DSC_OK, an error, or DSC_STATUS_COUNT while in flight */
    bool ordered;        /* completed in order (vtable order): end_s is when it was ordered */
    double start_s, end_s;
} dsc__comm_hist_t;

struct dsc_comm {
    const dsc__comm_vtable_t *vt;
    void *impl;
    dsc_ctx_t *ctx;
    int rank, world, local_rank, local_size;

    double timeout_s;
    bool debug_check;
    bool skip_check; /* the next collectives skip the debug check (dsc_comm_agree) */
    bool aborted;
    char tag[DSC_COMM_TAG_MAX];

    uint64_t seq;              /* latest issued user collective */
    dsc__comm_desc_t latest;   /* its descriptor (MPI replies to timeout queries) */
    size_t outstanding;        /* requests not yet waited */
    dsc_comm_stats_t stats;
    dsc__comm_hist_t hist[DSC__HISTORY];

    /* What the backend's watchdog found (vtable overdue): the collective, DSC_ERR_TIMEOUT or
     * DSC_ERR_COMM, how long it had been in flight, and how it was found. */
    dsc__comm_desc_t overdue;
    dsc_status_t overdue_status;
    double overdue_waited_s;
    char overdue_note[512];

    /* The context's host-read check walks its communicators with a watchdog (vtable
     * overdue) through this list, in the order they were made (dsc__comm_watch_host_reads). */
    bool watching;
    dsc_comm_t *watch_next;

    char errmsg[DSC_ERRMSG_MAX];
};

/* Records `status` with a printf-style message on the communicator (latest) and on its
 * context (first; logged at ERROR, or logged alone when the context already holds an
 * error). Returns status. */
dsc_status_t dsc__comm_fail(dsc_comm_t *c, dsc_status_t status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* "allreduce(1024 f32 sum)", "broadcast(8 bf16 root 2)", "barrier()" into buf. */
const char *dsc__comm_desc_str(const dsc__comm_desc_t *d, char *buf, size_t n);
/* Monotonic seconds. */
double dsc__comm_now(void);
/* Sleeps `seconds` (> 0). */
void dsc__comm_sleep(double seconds);
/* The polite back-off of the polling backends: yields for the first polls, then sleeps
 * 1 us doubling up to 200 us, never beyond max_s. */
void dsc__comm_backoff(unsigned attempt, double max_s);

/* Copies n_bytes from src to dst, each in host memory or on ctx's device, with the call
 * that fits each side (memmove between host buffers, the device's copies otherwise): a
 * collective may get host variables (the ZeRO norm pair, checkpoint records) as well as
 * device buffers, and a device copy must never be handed a host pointer (CUDA's explicit
 * copy directions). Device errors are recorded on ctx and returned. */
dsc_status_t dsc__comm_copy(dsc_ctx_t *ctx, void *dst, const void *src, size_t n_bytes);

/* A user-stream allgather (numbered, timed out, counted) that never runs the debug check,
 * tagged `tag` while it runs: the start-up agreement's exchanges. */
dsc_status_t dsc__comm_allgather_unchecked(dsc_comm_t *c, const void *send, void *recv, size_t count,
                                           dsc_dtype_t dtype, const char *tag);

/* The context's host-read check (core/internal.h, dsc_ctx's host_read_check) over every
 * communicator of the context with a watchdog; `first` is the first of their list. Before a
 * blocking device call (before = true) it polls their settle (vtable settle, whole_device as
 * given: NCCL's collectives whose waits only ordered them, or all in flight) until each is
 * settled or its watchdog fired, so the host waits for a stuck collective in a poll, not
 * inside the device's blocking wait; before and after, it reports what a watchdog found,
 * like any timeout ("...; noticed by <what>", and which of the context's communicators when
 * it watches several), and aborts the job. DSC_OK when nothing was found. */
dsc_status_t dsc__comm_host_read_check(void *first, bool before, bool whole_device, const char *what);
/* Adds c to its context's host-read check when c's backend has a watchdog (vtable overdue:
 * NCCL, whose waits complete in order so a host read may be what waits behind a stuck
 * collective), installing the check when c is the first; dsc_comm_free takes c out (and
 * the check, with the last). Called when a communicator is made. */
void dsc__comm_watch_host_reads(dsc_comm_t *c);

/* Backend constructors: fill c->vt, c->impl, rank/world/local_* . */
dsc_status_t dsc__comm_self_init(dsc_comm_t *c);
dsc_status_t dsc__comm_mpi_init(dsc_comm_t *c);
/* MPI: answers the pending timeout queries of other ranks with c->latest (the NCCL
 * backend's control communicator, while the NCCL backend polls). */
void dsc__comm_mpi_serve(dsc_comm_t *c);
/* NCCL (comm_nccl.c) on top of `ctl`, an MPI communicator of the same context, which it
 * takes over once it sets c->vt (then c's destroy frees it, also after an error; while
 * c->vt is NULL the caller keeps it). forced: DSC_COMM=nccl (a refusal is an error);
 * otherwise a refusal every rank agrees on (one rank, a shared GPU, no libnccl) sets
 * *fallback and returns DSC_OK, the caller keeping `ctl` as the MPI communicator. */
dsc_status_t dsc__comm_nccl_init(dsc_comm_t *c, dsc_comm_t *ctl, bool forced, bool *fallback);
/* NCCL: 16-bit sums in NCCL's native 16-bit arithmetic (true) or widened to f32 (false, the
 * default; DSC_NCCL_BF16=native at creation sets true). False when c is not NCCL. For the
 * measurement in tests/cuda/nccl (`test_nccl bf16`). */
bool dsc__comm_nccl_set_native16(dsc_comm_t *c, bool native);
/* NCCL: whether the communicator's watchdog has fired (any thread; false when c is not NCCL).
 * For tests/cuda/nccl: a test that never calls into the communicator sees it fire. */
bool dsc__comm_nccl_watchdog_fired(dsc_comm_t *c);
dsc_status_t dsc__comm_fake_init(dsc_comm_t *c, dsc_comm_fake_world_t *world, int rank);
/* The generic part of a new communicator (defaults, env); the backend init runs after. */
dsc_comm_t *dsc__comm_alloc(dsc_ctx_t *ctx);

/* reduce_scatter_v: offset of rank q's slice (sum of counts[0..q)). */
static inline int64_t dsc__comm_v_offset(const int64_t *counts, int q) {
    int64_t off = 0;
    for (int p = 0; p < q; p++) off += counts[p];
    return off;
}

#endif

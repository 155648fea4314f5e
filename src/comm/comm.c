/* The generic communicator layer: argument checks, sequence numbers, the debug check,
 * byte counters, the history ring, timeouts and their messages, requests. Backends only
 * move data (comm_internal.h). */
#include <limits.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "comm/comm_internal.h"

struct dsc_comm_request {
    dsc_comm_t *comm;
    dsc__coll_t coll;
    dsc__comm_desc_t user; /* the user collective (differs from coll.d for a debug check) */
    double start_s, deadline_s;
    unsigned attempt;
    bool started;  /* the backend owns coll.impl until released */
    bool order_asked; /* a wait asked the backend to complete it in order (vtable order) */
    bool done;
    bool heap;     /* allocated for a non-blocking call */
    dsc_status_t status;
};

/* ---- small helpers ------------------------------------------------------------------ */

const char *dsc_comm_op_name(dsc_comm_op_t op) {
    switch (op) {
    case DSC_COMM_ALLREDUCE: return "allreduce";
    case DSC_COMM_REDUCE_SCATTER: return "reduce_scatter";
    case DSC_COMM_ALLGATHER: return "allgather";
    case DSC_COMM_BROADCAST: return "broadcast";
    case DSC_COMM_BARRIER: return "barrier";
    case DSC_COMM_REDUCE_SCATTER_V: return "reduce_scatter_v";
    default: return "?";
    }
}

const char *dsc_reduce_op_name(dsc_reduce_op_t op) {
    switch (op) {
    case DSC_REDUCE_SUM: return "sum";
    case DSC_REDUCE_MAX: return "max";
    default: return "?";
    }
}

double dsc__comm_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void dsc__comm_sleep(double seconds) {
    if (!(seconds > 0)) return;
    struct timespec ts;
    ts.tv_sec = (time_t)seconds;
    ts.tv_nsec = (long)((seconds - (double)ts.tv_sec) * 1e9);
    if (ts.tv_nsec >= 1000000000L) ts.tv_nsec = 999999999L;
    while (nanosleep(&ts, &ts) != 0) {
    }
}

void dsc__comm_backoff(unsigned attempt, double max_s) {
    if (attempt < 16) {
        sched_yield();
        return;
    }
    unsigned shift = attempt - 16 > 8 ? 8 : attempt - 16;
    double s = 1e-6 * (double)(1u << shift); /* 1 us .. 256 us */
    if (s > 200e-6) s = 200e-6;
    if (s > max_s) s = max_s;
    dsc__comm_sleep(s);
}

dsc_status_t dsc__comm_copy(dsc_ctx_t *ctx, void *dst, const void *src, size_t n_bytes) {
    if (!n_bytes || dst == src) return DSC_OK;
    const bool dst_host = dsc__dev_host_accessible(ctx, dst), src_host = dsc__dev_host_accessible(ctx, src);
    if (dst_host && src_host) {
        memmove(dst, src, n_bytes);
        return DSC_OK;
    }
    if (dst_host) return dsc__dev_to_host(ctx, dst, src, n_bytes);
    if (src_host) return dsc__dev_from_host(ctx, dst, src, n_bytes);
    return dsc__dev_copy(ctx, dst, src, n_bytes);
}

/* Appends to a fixed buffer, truncating quietly. */
static void appendf(char *buf, size_t n, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static void appendf(char *buf, size_t n, const char *fmt, ...) {
    size_t len = strnlen(buf, n);
    if (len + 1 >= n) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + len, n - len, fmt, ap);
    va_end(ap);
}

const char *dsc__comm_desc_str(const dsc__comm_desc_t *d, char *buf, size_t n) {
    if (!n) return buf;
    buf[0] = '\0';
    const char *name = dsc_comm_op_name((dsc_comm_op_t)d->op);
    const char *dt = dsc_dtype_name((dsc_dtype_t)d->dtype);
    switch ((dsc_comm_op_t)d->op) {
    case DSC_COMM_ALLREDUCE:
        snprintf(buf, n, "%s(%lld %s %s)", name, (long long)d->count, dt,
                 dsc_reduce_op_name((dsc_reduce_op_t)d->redop));
        break;
    case DSC_COMM_BROADCAST:
        snprintf(buf, n, "%s(%lld %s root %d)", name, (long long)d->count, dt, (int)d->root);
        break;
    case DSC_COMM_BARRIER: snprintf(buf, n, "%s()", name); break;
    case DSC_COMM_REDUCE_SCATTER_V: /* the counts' hash tells differing splits apart */
        snprintf(buf, n, "%s(%lld %s, counts %08x)", name, (long long)d->count, dt, (unsigned)d->counts_hash);
        break;
    default: snprintf(buf, n, "%s(%lld %s)", name, (long long)d->count, dt); break;
    }
    if (d->tag[0]) appendf(buf, n, " at \"%.*s\"", DSC_COMM_TAG_MAX - 1, d->tag);
    return buf;
}

dsc_status_t dsc__comm_fail(dsc_comm_t *c, dsc_status_t status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->errmsg, sizeof c->errmsg, fmt, ap);
    va_end(ap);
    if (dsc_ctx_status(c->ctx) == DSC_OK)
        dsc_ctx_set_error(c->ctx, status, "%s", c->errmsg);
    else
        dsc_ctx_log(c->ctx, DSC_LOG_ERROR, "%s", c->errmsg);
    return status;
}

/* ---- creation, properties ----------------------------------------------------------- */

dsc_comm_t *dsc__comm_alloc(dsc_ctx_t *ctx) {
    dsc_comm_t *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->ctx = ctx;
    c->timeout_s = DSC_COMM_DEFAULT_TIMEOUT_S;
    c->world = c->local_size = 1;
    const char *env = getenv("DSC_COMM_DEBUG");
    c->debug_check = env && (!strcmp(env, "1") || !strcmp(env, "true") || !strcmp(env, "yes") || !strcmp(env, "on"));
    for (int i = 0; i < DSC__HISTORY; i++) c->hist[i].status = DSC_OK;
    return c;
}

static dsc_status_t finish_new(dsc_comm_t *c, dsc_status_t st, dsc_comm_t **out) {
    if (st != DSC_OK) {
        if (c->vt && c->vt->destroy) c->vt->destroy(c);
        free(c);
        return st;
    }
    dsc__comm_watch_host_reads(c);
    *out = c;
    return DSC_OK;
}

dsc_status_t dsc_comm_new_self(dsc_ctx_t *ctx, dsc_comm_t **out) {
    if (!out) return DSC_ERR_INVALID;
    *out = NULL;
    if (!ctx) return DSC_ERR_INVALID;
    dsc_comm_t *c = dsc__comm_alloc(ctx);
    if (!c) return dsc_ctx_set_error(ctx, DSC_ERR_NOMEM, "out of memory creating a communicator");
    return finish_new(c, dsc__comm_self_init(c), out);
}

dsc_status_t dsc_comm_new_mpi(dsc_ctx_t *ctx, dsc_comm_t **out) {
    if (!out) return DSC_ERR_INVALID;
    *out = NULL;
    if (!ctx) return DSC_ERR_INVALID;
    dsc_comm_t *c = dsc__comm_alloc(ctx);
    if (!c) return dsc_ctx_set_error(ctx, DSC_ERR_NOMEM, "out of memory creating a communicator");
    return finish_new(c, dsc__comm_mpi_init(c), out);
}

dsc_status_t dsc_comm_new_mpi_ex(dsc_ctx_t *ctx, double timeout_s, dsc_comm_t **out) {
    if (!out) return DSC_ERR_INVALID;
    *out = NULL;
    if (!ctx) return DSC_ERR_INVALID;
    if (timeout_s > 1e9 || timeout_s != timeout_s)
        return dsc_ctx_set_error(ctx, DSC_ERR_INVALID, "dsc_comm_new_mpi_ex: %g s is not a finite timeout", timeout_s);
    dsc_comm_t *c = dsc__comm_alloc(ctx);
    if (!c) return dsc_ctx_set_error(ctx, DSC_ERR_NOMEM, "out of memory creating a communicator");
    if (timeout_s > 0) c->timeout_s = timeout_s; /* before the backend's first collective */
    return finish_new(c, dsc__comm_mpi_init(c), out);
}

/* NCCL over an MPI control communicator; forced: DSC_COMM=nccl or dsc_comm_new_nccl
 * (refusals are errors), else the automatic choice (a refusal falls back to the MPI one). */
static dsc_status_t new_gpu_comm(dsc_ctx_t *ctx, double timeout_s, bool forced, dsc_comm_t **out) {
    if (timeout_s > 1e9 || timeout_s != timeout_s)
        return dsc_ctx_set_error(ctx, DSC_ERR_INVALID, "dsc_comm_new_nccl: %g s is not a finite timeout", timeout_s);
    dsc_comm_t *ctl = dsc__comm_alloc(ctx);
    if (!ctl) return dsc_ctx_set_error(ctx, DSC_ERR_NOMEM, "out of memory creating a communicator");
    if (timeout_s > 0) ctl->timeout_s = timeout_s;
    dsc_status_t st = dsc__comm_mpi_init(ctl);
    if (st != DSC_OK) return finish_new(ctl, st, out);
    dsc_comm_t *c = dsc__comm_alloc(ctx);
    if (!c) return finish_new(ctl, dsc_ctx_set_error(ctx, DSC_ERR_NOMEM, "out of memory creating a communicator"), out);
    bool fallback = false;
    st = dsc__comm_nccl_init(c, ctl, forced, &fallback);
    if (!c->vt) { /* ctl stays ours: the MPI communicator, or freed on error */
        free(c);
        return finish_new(ctl, st, out);
    }
    return finish_new(c, st, out);
}

dsc_status_t dsc_comm_new_nccl(dsc_ctx_t *ctx, double timeout_s, dsc_comm_t **out) {
    if (!out) return DSC_ERR_INVALID;
    *out = NULL;
    if (!ctx) return DSC_ERR_INVALID;
    return new_gpu_comm(ctx, timeout_s, true, out);
}

dsc_status_t dsc_comm_new_default(dsc_ctx_t *ctx, double timeout_s, dsc_comm_t **out) {
    if (!out) return DSC_ERR_INVALID;
    *out = NULL;
    if (!ctx) return DSC_ERR_INVALID;
    const char *mode = getenv("DSC_COMM");
    if (!mode || !*mode || !strcmp(mode, "auto")) {
        if (dsc__ctx_device(ctx)->kind == DSC_DEVICE_CUDA) return new_gpu_comm(ctx, timeout_s, false, out);
        return dsc_comm_new_mpi_ex(ctx, timeout_s, out);
    }
    if (!strcmp(mode, "mpi")) return dsc_comm_new_mpi_ex(ctx, timeout_s, out);
    if (!strcmp(mode, "nccl")) return new_gpu_comm(ctx, timeout_s, true, out);
    return dsc_ctx_set_error(ctx, DSC_ERR_INVALID, "DSC_COMM=\"%s\": expected mpi, nccl or auto", mode);
}

dsc_status_t dsc_comm_new_fake(dsc_ctx_t *ctx, dsc_comm_fake_world_t *world, int rank, dsc_comm_t **out) {
    if (!out) return DSC_ERR_INVALID;
    *out = NULL;
    if (!ctx) return DSC_ERR_INVALID;
    if (!world) return dsc_ctx_set_error(ctx, DSC_ERR_INVALID, "dsc_comm_new_fake: world is NULL");
    dsc_comm_t *c = dsc__comm_alloc(ctx);
    if (!c) return dsc_ctx_set_error(ctx, DSC_ERR_NOMEM, "out of memory creating a communicator");
    return finish_new(c, dsc__comm_fake_init(c, world, rank), out);
}

static dsc_status_t start(dsc_comm_request_t *r);
static dsc_status_t progress(dsc_comm_request_t *r, bool block);
static bool backend_overdue(dsc_comm_t *c);
static dsc_status_t report_overdue(dsc_comm_t *c);
static void unwatch_host_reads(dsc_comm_t *c);

void dsc_comm_free(dsc_comm_t *c) {
    if (!c) return;
    if (c->outstanding)
        dsc_ctx_log(c->ctx, DSC_LOG_WARN, "communicator (rank %d) freed with %zu requests never waited", c->rank,
                    c->outstanding);
    /* Collectives may still run on the device (completed in order, or never waited): let
     * them finish (or the watchdog fire) before the barrier, so a stuck one is reported, not
     * waited for in the device's teardown. */
    for (unsigned attempt = 0; !c->aborted && c->vt && c->vt->settle && !c->vt->settle(c, true); attempt++)
        dsc__comm_backoff(attempt, 200e-6);
    if (backend_overdue(c)) report_overdue(c); /* found while the host never came back: MPI ends the job */
    unwatch_host_reads(c);
    if (!c->aborted && !c->outstanding && c->vt && c->vt->wants_free_barrier && c->vt->wants_free_barrier(c)) {
        /* Every rank frees together (with the timeout) before MPI_Finalize. */
        c->latest.flags |= DSC__DESC_IN_FREE;
        dsc_comm_request_t r;
        memset(&r, 0, sizeof r);
        r.comm = c;
        r.user.seq = (int64_t)c->seq;
        r.user.op = DSC_COMM_BARRIER;
        r.user.dtype = DSC_F32;
        r.user.redop = r.user.root = -1;
        r.user.flags = DSC__DESC_IN_FREE;
        r.coll.d = r.user;
        r.coll.stream = DSC__STREAM_FREE;
        if (start(&r) == DSC_OK) progress(&r, true);
    }
    if (c->vt && c->vt->destroy) c->vt->destroy(c);
    free(c);
}

int dsc_comm_rank(const dsc_comm_t *c) { return c ? c->rank : 0; }
int dsc_comm_world_size(const dsc_comm_t *c) { return c ? c->world : 1; }
int dsc_comm_local_rank(const dsc_comm_t *c) { return c ? c->local_rank : 0; }
int dsc_comm_local_size(const dsc_comm_t *c) { return c ? c->local_size : 1; }
const char *dsc_comm_backend_name(const dsc_comm_t *c) { return c && c->vt ? c->vt->name : "?"; }
double dsc_comm_timeout(const dsc_comm_t *c) { return c ? c->timeout_s : DSC_COMM_DEFAULT_TIMEOUT_S; }
bool dsc_comm_debug_check(const dsc_comm_t *c) { return c && c->debug_check; }
uint64_t dsc_comm_seq(const dsc_comm_t *c) { return c ? c->seq : 0; }
const char *dsc_comm_errmsg(const dsc_comm_t *c) { return c ? c->errmsg : "communicator is NULL"; }
bool dsc_comm_aborted(const dsc_comm_t *c) { return c && c->aborted; }

dsc_status_t dsc_comm_set_timeout(dsc_comm_t *c, double seconds) {
    if (!c) return DSC_ERR_INVALID;
    if (!(seconds > 0) || seconds > 1e9)
        return dsc__comm_fail(c, DSC_ERR_INVALID, "dsc_comm_set_timeout: %g s is not a positive finite timeout",
                              seconds);
    c->timeout_s = seconds;
    return DSC_OK;
}

void dsc_comm_set_debug_check(dsc_comm_t *c, bool on) {
    if (c) c->debug_check = on;
}

void dsc_comm_set_tag(dsc_comm_t *c, const char *tag) {
    if (!c) return;
    memset(c->tag, 0, sizeof c->tag);
    if (tag) strncpy(c->tag, tag, sizeof c->tag - 1);
}

dsc_comm_stats_t dsc_comm_stats(const dsc_comm_t *c) {
    dsc_comm_stats_t zero;
    memset(&zero, 0, sizeof zero);
    return c ? c->stats : zero;
}

void dsc_comm_reset_stats(dsc_comm_t *c) {
    if (!c) return;
    uint64_t lifetime = c->stats.lifetime_sent_bytes;
    memset(&c->stats, 0, sizeof c->stats);
    c->stats.lifetime_sent_bytes = lifetime;
}

void dsc_comm_abort(dsc_comm_t *c, int errorcode) {
    if (!c) return;
    c->aborted = true;
    if (c->vt && c->vt->abort_job) c->vt->abort_job(c, errorcode);
}

/* ---- history, counters -------------------------------------------------------------- */

static dsc__comm_hist_t *hist_slot(dsc_comm_t *c, uint64_t seq) {
    dsc__comm_hist_t *h = &c->hist[seq % DSC__HISTORY];
    return h->d.seq == (int64_t)seq ? h : NULL;
}

static void hist_end(dsc_comm_t *c, uint64_t seq, dsc_status_t st, bool ordered) {
    dsc__comm_hist_t *h = hist_slot(c, seq);
    if (h && h->status == DSC_STATUS_COUNT) {
        h->status = st;
        h->ordered = ordered;
        h->end_s = dsc__comm_now();
    }
}

static void log_history(dsc_comm_t *c) {
    double now = dsc__comm_now();
    uint64_t first = c->seq >= DSC__HISTORY ? c->seq - DSC__HISTORY + 1 : 1;
    dsc_ctx_log(c->ctx, DSC_LOG_ERROR, "rank %d of %d: its last %llu collectives (oldest first):", c->rank, c->world,
                (unsigned long long)(c->seq - first + 1));
    for (uint64_t s = first; s <= c->seq; s++) {
        dsc__comm_hist_t *h = hist_slot(c, s);
        if (!h) continue;
        char d[160];
        dsc__comm_desc_str(&h->d, d, sizeof d);
        if (h->status == DSC_STATUS_COUNT)
            dsc_ctx_log(c->ctx, DSC_LOG_ERROR, "  #%llu %s: in flight for %.3f s", (unsigned long long)s, d,
                        now - h->start_s);
        else if (h->ordered) /* the host went on; whether it finished on the device is not known here */
            dsc_ctx_log(c->ctx, DSC_LOG_ERROR, "  #%llu %s: waited in order (later device work after it) in %.3f ms",
                        (unsigned long long)s, d, 1e3 * (h->end_s - h->start_s));
        else
            dsc_ctx_log(c->ctx, DSC_LOG_ERROR, "  #%llu %s: %s in %.3f ms", (unsigned long long)s, d,
                        dsc_status_string(h->status), 1e3 * (h->end_s - h->start_s));
    }
}

static void count_bytes(dsc_comm_t *c, const dsc__comm_desc_t *d, const int64_t *counts) {
    uint64_t n = (uint64_t)c->world, es = dsc_dtype_size((dsc_dtype_t)d->dtype), cnt = (uint64_t)d->count;
    uint64_t payload = 0, sent = 0;
    switch ((dsc_comm_op_t)d->op) {
    case DSC_COMM_ALLREDUCE:
        payload = cnt * es;
        sent = n > 1 ? 2 * (n - 1) * payload / n : 0;
        break;
    case DSC_COMM_REDUCE_SCATTER:
    case DSC_COMM_ALLGATHER:
        payload = n * cnt * es;
        sent = (n - 1) * cnt * es;
        break;
    case DSC_COMM_BROADCAST:
        payload = cnt * es;
        sent = (n > 1 && d->root == c->rank) ? payload : 0;
        break;
    case DSC_COMM_REDUCE_SCATTER_V: /* every rank sends what it does not own */
        payload = cnt * es;
        sent = n > 1 ? (cnt - (uint64_t)counts[c->rank]) * es : 0;
        break;
    default: break;
    }
    c->stats.calls[d->op]++;
    c->stats.payload_bytes[d->op] += payload;
    c->stats.sent_bytes[d->op] += sent;
    c->stats.total_sent_bytes += sent;
    c->stats.lifetime_sent_bytes += sent;
}

/* ---- timeouts ----------------------------------------------------------------------- */

static bool same_call(const dsc__comm_desc_t *a, const dsc__comm_desc_t *b) {
    return a->seq == b->seq && a->op == b->op && a->count == b->count && a->dtype == b->dtype &&
           a->redop == b->redop && a->root == b->root && a->counts_hash == b->counts_hash;
}

/* FNV-1a over the counts of a reduce_scatter_v (never 0, so 0 means "no counts"). */
static int32_t counts_hash(const int64_t *counts, int world) {
    uint32_t h = 2166136261u;
    for (int q = 0; counts && q < world; q++)
        for (int b = 0; b < 8; b++) h = (h ^ (uint32_t)(((uint64_t)counts[q] >> (8 * b)) & 0xffu)) * 16777619u;
    return (int32_t)(h ? h : 1u);
}

static void append_flags(char *buf, size_t n, unsigned flags, int32_t desc_flags) {
    if (desc_flags & DSC__DESC_IN_FREE)
        appendf(buf, n, "; it is in dsc_comm_free, waiting for every rank to free its communicator");
    if (flags & DSC__PEER_STOPPED) appendf(buf, n, "; stopped participating (fault injection)");
    if (flags & DSC__PEER_DELAYED) appendf(buf, n, "; sleeping in an injected delay");
    if (flags & DSC__PEER_ABORTED) appendf(buf, n, "; its communicator was aborted");
}

/* Whether peer `pe` reached collective `u` (in_free: reached dsc_comm_free). */
static bool arrived_at(const dsc__peer_t *pe, const dsc__comm_desc_t *u, bool in_free) {
    if (pe->kind == DSC__PEER_UNKNOWN) return false;
    if (in_free) return (pe->latest.flags & DSC__DESC_IN_FREE) != 0;
    return same_call(&pe->latest, u) && !(pe->latest.flags & DSC__DESC_IN_FREE);
}

static bool never_arrived(const dsc__peer_t *pe, const dsc__comm_desc_t *u, bool in_free) {
    if (pe->kind == DSC__PEER_UNKNOWN) return true;
    if (in_free) return !(pe->latest.flags & DSC__DESC_IN_FREE);
    return pe->latest.seq < u->seq || (pe->latest.flags & DSC__DESC_IN_FREE);
}

/* Formats the timeout message of user collective `user` (running as `coll`, in flight for
 * `waited` s) from what the peers report, records it with `status`, logs the history and
 * aborts the communicator (MPI: does not return). A backend's watchdog report comes with
 * `note` (how it was found) and DSC_ERR_TIMEOUT, or DSC_ERR_COMM for a transport error. */
static dsc_status_t report_time_out(dsc_comm_t *c, const dsc__comm_desc_t *user, const dsc__coll_t *coll,
                                    double waited, dsc_status_t status, const char *note) {
    double grace = c->timeout_s / 2;
    if (grace > 2.0) grace = 2.0;
    if (grace < 0.2) grace = 0.2;
    dsc__peer_t *peers = calloc((size_t)c->world, sizeof *peers);
    if (peers) c->vt->peers(c, coll, peers, grace);

    char msg[DSC_ERRMSG_MAX], d[160], pd[160];
    msg[0] = '\0';
    dsc__comm_desc_str(user, d, sizeof d);
    bool in_free = coll->stream == DSC__STREAM_FREE;
    if (in_free)
        appendf(msg, sizeof msg,
                "dsc_comm_free on rank %d of %d timed out after %.3g s waiting for every rank to free its "
                "communicator (its last collective: #%llu)",
                c->rank, c->world, waited, (unsigned long long)user->seq);
    else
        appendf(msg, sizeof msg, "collective #%llu %s %s after %.3g s on rank %d of %d%s",
                (unsigned long long)user->seq, d, status == DSC_ERR_TIMEOUT ? "timed out" : "failed", waited,
                c->rank, c->world, coll->stream == DSC__STREAM_CHECK ? " (in its debug check)" : "");
    if (note && *note) appendf(msg, sizeof msg, " (%s)", note);
    if (!peers) {
        appendf(msg, sizeof msg, "; (out of memory listing the other ranks)");
    } else {
        int listed = 0, missing = 0, odd = 0;
        appendf(msg, sizeof msg, "; ranks that never arrived:");
        for (int p = 0; p < c->world; p++) {
            const dsc__peer_t *pe = &peers[p];
            if (!never_arrived(pe, user, in_free)) continue;
            missing++;
            if (listed++ >= 16) continue;
            appendf(msg, sizeof msg, "%s rank %d (", missing > 1 ? ";" : "", p);
            if (pe->kind == DSC__PEER_UNKNOWN)
                appendf(msg, sizeof msg, "no answer within %.3g s: not inside any dsc collective call", grace);
            else if (pe->latest.seq == 0)
                appendf(msg, sizeof msg, "has issued no collective yet");
            else
                appendf(msg, sizeof msg, "last issued #%lld %s", (long long)pe->latest.seq,
                        dsc__comm_desc_str(&pe->latest, pd, sizeof pd));
            append_flags(msg, sizeof msg, pe->flags, pe->latest.flags);
            appendf(msg, sizeof msg, ")");
        }
        if (missing > 16) appendf(msg, sizeof msg, "; and %d more", missing - 16);
        if (!missing) appendf(msg, sizeof msg, " none");
        for (int p = 0; p < c->world; p++) {
            const dsc__peer_t *pe = &peers[p];
            if (in_free || never_arrived(pe, user, false) || arrived_at(pe, user, false)) continue;
            if (odd++ >= 8) continue;
            appendf(msg, sizeof msg, "; rank %d %s #%lld %s", p,
                    pe->latest.seq == user->seq ? "diverged: it called" : "is ahead, at", (long long)pe->latest.seq,
                    dsc__comm_desc_str(&pe->latest, pd, sizeof pd));
            append_flags(msg, sizeof msg, pe->flags, pe->latest.flags);
        }
        appendf(msg, sizeof msg, "; arrived:");
        int arrived = 0;
        for (int p = 0; p < c->world; p++) {
            const dsc__peer_t *pe = &peers[p];
            if (!arrived_at(pe, user, in_free)) continue;
            if (arrived++ < 32) appendf(msg, sizeof msg, "%s%d", arrived > 1 ? "," : " ranks ", p);
        }
        if (arrived > 32) appendf(msg, sizeof msg, ",... (%d ranks)", arrived);
        if (!missing && !odd)
            appendf(msg, sizeof msg, "; every rank arrived but the collective did not complete (transport stall?)");
    }
    free(peers);
    dsc_status_t st = dsc__comm_fail(c, status, "%s", msg);
    log_history(c);
    dsc_comm_abort(c, DSC_COMM_ABORT_CODE); /* MPI: the job ends here */
    return st;
}

static dsc_status_t time_out(dsc_comm_request_t *r) {
    return report_time_out(r->comm, &r->user, &r->coll, dsc__comm_now() - r->start_s, DSC_ERR_TIMEOUT, NULL);
}

/* True when the backend's watchdog found something (vtable overdue) not reported yet. */
static bool backend_overdue(dsc_comm_t *c) { return !c->aborted && c->vt && c->vt->overdue && c->vt->overdue(c); }

/* Reports what the backend's watchdog found, as a timeout of that collective, and aborts. */
static dsc_status_t report_overdue(dsc_comm_t *c) {
    dsc__coll_t coll;
    memset(&coll, 0, sizeof coll);
    coll.d = c->overdue;
    coll.stream = DSC__STREAM_USER;
    return report_time_out(c, &c->overdue, &coll, c->overdue_waited_s, c->overdue_status, c->overdue_note);
}

void dsc__comm_watch_host_reads(dsc_comm_t *c) {
    dsc_ctx_t *ctx = c->ctx;
    if (!c->vt || !c->vt->overdue || c->watching) return;
    if (!ctx->host_read_check) {
        ctx->host_read_check = dsc__comm_host_read_check;
        ctx->host_read_check_user = c;
    } else if (ctx->host_read_check == dsc__comm_host_read_check) {
        dsc_comm_t *last = ctx->host_read_check_user;
        while (last->watch_next) last = last->watch_next;
        last->watch_next = c;
    } else {
        return; /* another check owns the context (none does today) */
    }
    c->watching = true;
    c->watch_next = NULL;
}

/* Takes c out of its context's host-read check (the check goes with the last one). */
static void unwatch_host_reads(dsc_comm_t *c) {
    dsc_ctx_t *ctx = c->ctx;
    if (!c->watching) return;
    c->watching = false;
    dsc_comm_t *head = ctx->host_read_check_user;
    if (head == c) {
        ctx->host_read_check_user = c->watch_next;
    } else {
        while (head && head->watch_next != c) head = head->watch_next;
        if (head) head->watch_next = c->watch_next;
    }
    c->watch_next = NULL;
    if (!ctx->host_read_check_user) ctx->host_read_check = NULL;
}

/* Reports what c's watchdog found, noticed by a host call (`what`); `first` heads the
 * context's list, to say which communicator it is when there are several. */
static dsc_status_t report_noticed(dsc_comm_t *first, dsc_comm_t *c, const char *what) {
    int index = 0, count = 0;
    for (dsc_comm_t *p = first; p; p = p->watch_next) {
        count++;
        if (p == c) index = count;
    }
    size_t len = strnlen(c->overdue_note, sizeof c->overdue_note);
    if (count > 1)
        snprintf(c->overdue_note + len, sizeof c->overdue_note - len,
                 "; noticed by %s; on communicator %d of the %d this context watches (%s, rank %d of %d)", what, index,
                 count, c->vt->name, c->rank, c->world);
    else
        snprintf(c->overdue_note + len, sizeof c->overdue_note - len, "; noticed by %s", what);
    return report_overdue(c); /* MPI: the job ends here */
}

dsc_status_t dsc__comm_host_read_check(void *first, bool before, bool whole_device, const char *what) {
    dsc_comm_t *head = first;
    /* One poll over every communicator: a stuck collective on any of them is reported as
     * soon as its watchdog fires, whichever one the host would have waited behind first. */
    for (unsigned attempt = 0;; attempt++) {
        bool pending = false;
        for (dsc_comm_t *c = head; c; c = c->watch_next) {
            if (before && !c->aborted && c->vt->settle && !c->vt->settle(c, whole_device)) pending = true;
            if (backend_overdue(c)) return report_noticed(head, c, what);
        }
        if (!pending) return DSC_OK;
        dsc__comm_backoff(attempt, 200e-6);
    }
}

/* ---- requests ----------------------------------------------------------------------- */

static dsc_status_t finish(dsc_comm_request_t *r, dsc_status_t st, bool completed, bool ordered) {
    dsc_comm_t *c = r->comm;
    if (r->started) {
        c->vt->release(c, &r->coll, completed);
        r->started = false;
    }
    r->done = true;
    r->status = st;
    if (r->coll.stream == DSC__STREAM_USER) hist_end(c, (uint64_t)r->user.seq, st, ordered);
    return st;
}

/* Progresses `r` until it completes (block) or once (!block). Returns its status; DSC_OK
 * with r->done false means still in flight. */
static dsc_status_t progress(dsc_comm_request_t *r, bool block) {
    if (r->done) return r->status;
    dsc_comm_t *c = r->comm;
    char d[160];
    for (;;) {
        if (c->aborted)
            return finish(r,
                          dsc__comm_fail(c, DSC_ERR_COMM, "collective #%llu %s abandoned: the communicator was aborted",
                                         (unsigned long long)r->user.seq, dsc__comm_desc_str(&r->user, d, sizeof d)),
                          false, false);
        if (backend_overdue(c)) return finish(r, report_overdue(c), false, false);
        bool done = false;
        dsc_status_t st = DSC_OK;
        if (block && !r->order_asked && c->vt->order) {
            /* A wait: the backend may complete it in order without blocking the host (NCCL on
             * device buffers); its deadline is then the backend watchdog's. */
            r->order_asked = true;
            st = c->vt->order(c, &r->coll, &done);
            if (st != DSC_OK && backend_overdue(c)) st = report_overdue(c);
            if (st != DSC_OK) return finish(r, st, false, false);
            if (done) return finish(r, DSC_OK, true, true);
        }
        st = c->vt->test(c, &r->coll, &done);
        if (st != DSC_OK && backend_overdue(c)) st = report_overdue(c); /* the watchdog aborted the transport */
        if (st != DSC_OK) return finish(r, st, false, false);
        if (done) return finish(r, DSC_OK, true, false);
        double now = dsc__comm_now();
        if (now >= r->deadline_s) {
            st = time_out(r);
            return finish(r, st, false, false);
        }
        if (!block) return DSC_OK;
        c->vt->pause(c, &r->coll, r->attempt++, r->deadline_s - now);
    }
}

/* Starts `coll` for request `r` (its user descriptor already set). */
static dsc_status_t start(dsc_comm_request_t *r) {
    dsc_comm_t *c = r->comm;
    r->start_s = dsc__comm_now();
    r->deadline_s = r->start_s + c->timeout_s;
    if (backend_overdue(c)) return finish(r, report_overdue(c), false, false);
    dsc_status_t st = c->vt->start(c, &r->coll);
    if (st != DSC_OK && backend_overdue(c)) st = report_overdue(c); /* the watchdog ended the call */
    if (st != DSC_OK) return finish(r, st, false, false);
    r->started = true;
    return DSC_OK;
}

/* The debug check: allgathers every rank's descriptor of collective `u` and compares. */
static dsc_status_t debug_check(dsc_comm_t *c, const dsc__comm_desc_t *u) {
    dsc__comm_desc_t *all = calloc((size_t)c->world, sizeof *all);
    if (!all)
        return dsc__comm_fail(c, DSC_ERR_NOMEM, "out of memory for the debug check of collective #%lld",
                              (long long)u->seq);
    dsc_comm_request_t r;
    memset(&r, 0, sizeof r);
    r.comm = c;
    r.user = *u;
    r.coll.stream = DSC__STREAM_CHECK;
    r.coll.d.seq = u->seq;
    r.coll.d.op = DSC_COMM_ALLGATHER;
    r.coll.d.count = (int64_t)DSC__DESC_I32;
    r.coll.d.dtype = DSC_I32;
    r.coll.d.redop = -1;
    r.coll.d.root = -1;
    r.coll.send = u;
    r.coll.recv = all;
    dsc_status_t st = start(&r);
    if (st == DSC_OK) st = progress(&r, true);
    if (st == DSC_OK) {
        for (int p = 1; p < c->world; p++) {
            if (same_call(&all[p], &all[0])) continue;
            char a[160], b[160];
            dsc__comm_desc_str(&all[p], a, sizeof a);
            dsc__comm_desc_str(&all[0], b, sizeof b);
            if (all[p].seq == all[0].seq)
                st = dsc__comm_fail(c, DSC_ERR_COMM,
                                    "debug check on rank %d of %d: collective #%lld: rank %d called %s but rank 0 "
                                    "called %s",
                                    c->rank, c->world, (long long)all[0].seq, p, a, b);
            else
                st = dsc__comm_fail(c, DSC_ERR_COMM,
                                    "debug check on rank %d of %d: collective #%lld: rank %d called %s as its "
                                    "collective #%lld but rank 0 called %s as #%lld",
                                    c->rank, c->world, (long long)all[0].seq, p, a, (long long)all[p].seq, b,
                                    (long long)all[0].seq);
            break;
        }
    }
    free(all);
    return st;
}

static bool overlaps(const void *a, size_t na, const void *b, size_t nb) {
    uintptr_t pa = (uintptr_t)a, pb = (uintptr_t)b;
    return na && nb && pa < pb + nb && pb < pa + na;
}

/* Validates a collective. Returns DSC_OK or records and returns the error. */
static dsc_status_t validate(dsc_comm_t *c, const dsc__comm_desc_t *d, const void *send, const void *recv,
                             const int64_t *counts) {
    char s[160];
    dsc__comm_desc_str(d, s, sizeof s);
    if (c->aborted)
        return dsc__comm_fail(c, DSC_ERR_COMM, "%s refused: the communicator was aborted (%s)", s,
                              c->errmsg[0] ? "see the earlier error" : "dsc_comm_abort");
    if (d->op == DSC_COMM_BARRIER) return DSC_OK;
    if (d->dtype < 0 || d->dtype >= DSC_DTYPE_COUNT)
        return dsc__comm_fail(c, DSC_ERR_INVALID, "%s: unknown dtype %d", dsc_comm_op_name((dsc_comm_op_t)d->op),
                              (int)d->dtype);
    if (d->op == DSC_COMM_ALLREDUCE && (d->redop < 0 || d->redop >= DSC_REDUCE_OP_COUNT))
        return dsc__comm_fail(c, DSC_ERR_INVALID, "allreduce: unknown reduce op %d", (int)d->redop);
    if (d->op == DSC_COMM_BROADCAST && (d->root < 0 || d->root >= c->world))
        return dsc__comm_fail(c, DSC_ERR_INVALID, "broadcast: root %d is not a rank of a world of %d", (int)d->root,
                              c->world);
    size_t es = dsc_dtype_size((dsc_dtype_t)d->dtype), n = (size_t)d->count, w = (size_t)c->world;
    if (d->count < 0 || n > SIZE_MAX / es / w)
        return dsc__comm_fail(c, DSC_ERR_INVALID, "%s: count is too large", s);
    if (d->op == DSC_COMM_REDUCE_SCATTER_V) {
        if (!counts) return dsc__comm_fail(c, DSC_ERR_INVALID, "%s: counts is NULL", s);
        int64_t total = 0;
        for (int q = 0; q < c->world; q++) {
            if (counts[q] < 0) return dsc__comm_fail(c, DSC_ERR_INVALID, "%s: counts[%d] = %lld", s, q, (long long)counts[q]);
            total += counts[q];
        }
        if (total != d->count)
            return dsc__comm_fail(c, DSC_ERR_INVALID, "%s: counts sum to %lld", s, (long long)total);
        const size_t mine = (size_t)counts[c->rank] * es;
        if ((total && !send) || (mine && !recv))
            return dsc__comm_fail(c, DSC_ERR_INVALID, "%s on rank %d: NULL buffer", s, c->rank);
        const char *slice = (const char *)send + (size_t)dsc__comm_v_offset(counts, c->rank) * es;
        if ((const char *)recv != slice && overlaps(send, n * es, recv, mine))
            return dsc__comm_fail(c, DSC_ERR_INVALID, "%s on rank %d: recv overlaps send without being its own slice",
                                  s, c->rank);
        return DSC_OK;
    }
    if (n && (!send || !recv))
        return dsc__comm_fail(c, DSC_ERR_INVALID, "%s on rank %d: NULL buffer", s, c->rank);
    size_t bytes = n * es;
    const char *bs = send, *br = recv;
    switch ((dsc_comm_op_t)d->op) {
    case DSC_COMM_ALLREDUCE:
        if (send != recv && overlaps(send, bytes, recv, bytes))
            return dsc__comm_fail(c, DSC_ERR_INVALID, "%s: send and recv overlap without being equal", s);
        break;
    case DSC_COMM_REDUCE_SCATTER:
        if (br != bs + (size_t)c->rank * bytes && overlaps(send, bytes * w, recv, bytes))
            return dsc__comm_fail(c, DSC_ERR_INVALID,
                                  "%s on rank %d: recv overlaps send without being its slice send + rank * count", s,
                                  c->rank);
        break;
    case DSC_COMM_ALLGATHER:
        if (bs != br + (size_t)c->rank * bytes && overlaps(send, bytes, recv, bytes * w))
            return dsc__comm_fail(c, DSC_ERR_INVALID,
                                  "%s on rank %d: send overlaps recv without being its slice recv + rank * count", s,
                                  c->rank);
        break;
    default: break;
    }
    return DSC_OK;
}

/* Validates, numbers, checks (debug) and starts a user collective into `r`. */
static dsc_status_t issue(dsc_comm_t *c, dsc_comm_request_t *r, dsc_comm_op_t op, const void *send, void *recv,
                          size_t count, dsc_dtype_t dtype, int redop, int root, const int64_t *counts) {
    memset(r, 0, sizeof *r);
    r->comm = c;
    dsc__comm_desc_t *d = &r->user;
    d->op = op;
    d->count = count > (size_t)INT64_MAX ? -1 : (int64_t)count;
    d->dtype = op == DSC_COMM_BARRIER ? DSC_F32 : (int32_t)dtype;
    d->redop = op == DSC_COMM_ALLREDUCE ? redop
               : (op == DSC_COMM_REDUCE_SCATTER || op == DSC_COMM_REDUCE_SCATTER_V) ? DSC_REDUCE_SUM
                                                                                      : -1;
    d->root = op == DSC_COMM_BROADCAST ? root : -1;
    dsc_status_t st = validate(c, d, send, recv, counts);
    if (st == DSC_OK && op == DSC_COMM_REDUCE_SCATTER_V) d->counts_hash = counts_hash(counts, c->world);
    if (st != DSC_OK) {
        r->done = true;
        r->status = st;
        return st;
    }
    memcpy(d->tag, c->tag, sizeof d->tag);
    d->seq = (int64_t)++c->seq;
    c->latest = *d;
    dsc__comm_hist_t *h = &c->hist[c->seq % DSC__HISTORY];
    h->d = *d;
    h->status = DSC_STATUS_COUNT;
    h->start_s = h->end_s = dsc__comm_now();

    if (c->debug_check && !c->skip_check && c->world > 1) {
        st = debug_check(c, d);
        if (st != DSC_OK) {
            hist_end(c, c->seq, st, false);
            r->done = true;
            r->status = st;
            return st;
        }
    }
    r->coll.d = *d;
    r->coll.stream = DSC__STREAM_USER;
    r->coll.send = send;
    r->coll.recv = recv;
    r->coll.counts = counts;
    st = start(r);
    if (st == DSC_OK) count_bytes(c, d, counts);
    return st;
}

static dsc_status_t run_blocking(dsc_comm_t *c, dsc_comm_op_t op, const void *send, void *recv, size_t count,
                                 dsc_dtype_t dtype, int redop, int root) {
    if (!c) return DSC_ERR_INVALID;
    dsc_comm_request_t r;
    dsc_status_t st = issue(c, &r, op, send, recv, count, dtype, redop, root, NULL);
    if (st != DSC_OK) return st;
    return progress(&r, true);
}

dsc_status_t dsc__comm_allgather_unchecked(dsc_comm_t *c, const void *send, void *recv, size_t count,
                                           dsc_dtype_t dtype, const char *tag) {
    char saved[DSC_COMM_TAG_MAX];
    memcpy(saved, c->tag, sizeof saved);
    dsc_comm_set_tag(c, tag);
    c->skip_check = true;
    dsc_status_t st = run_blocking(c, DSC_COMM_ALLGATHER, send, recv, count, dtype, -1, -1);
    c->skip_check = false;
    memcpy(c->tag, saved, sizeof saved);
    return st;
}

static dsc_status_t run_nonblocking_v(dsc_comm_t *c, dsc_comm_op_t op, const void *send, void *recv, size_t count,
                                      dsc_dtype_t dtype, int redop, int root, const int64_t *counts,
                                      dsc_comm_request_t **out);

static dsc_status_t run_nonblocking(dsc_comm_t *c, dsc_comm_op_t op, const void *send, void *recv, size_t count,
                                    dsc_dtype_t dtype, int redop, int root, dsc_comm_request_t **out) {
    return run_nonblocking_v(c, op, send, recv, count, dtype, redop, root, NULL, out);
}

static dsc_status_t run_nonblocking_v(dsc_comm_t *c, dsc_comm_op_t op, const void *send, void *recv, size_t count,
                                      dsc_dtype_t dtype, int redop, int root, const int64_t *counts,
                                      dsc_comm_request_t **out) {
    if (!out) {
        if (c) return dsc__comm_fail(c, DSC_ERR_INVALID, "%s: request pointer is NULL", dsc_comm_op_name(op));
        return DSC_ERR_INVALID;
    }
    *out = NULL;
    if (!c) return DSC_ERR_INVALID;
    dsc_comm_request_t *r = malloc(sizeof *r);
    if (!r) return dsc__comm_fail(c, DSC_ERR_NOMEM, "out of memory for a %s request", dsc_comm_op_name(op));
    dsc_status_t st = issue(c, r, op, send, recv, count, dtype, redop, root, counts);
    if (st != DSC_OK) {
        free(r);
        return st;
    }
    r->heap = true;
    c->outstanding++;
    *out = r;
    return DSC_OK;
}

/* ---- public collectives ------------------------------------------------------------- */

dsc_status_t dsc_comm_allreduce(dsc_comm_t *c, const void *send, void *recv, size_t count, dsc_dtype_t dtype,
                                dsc_reduce_op_t op) {
    return run_blocking(c, DSC_COMM_ALLREDUCE, send, recv, count, dtype, (int)op, -1);
}

dsc_status_t dsc_comm_reduce_scatter(dsc_comm_t *c, const void *send, void *recv, size_t count, dsc_dtype_t dtype) {
    return run_blocking(c, DSC_COMM_REDUCE_SCATTER, send, recv, count, dtype, DSC_REDUCE_SUM, -1);
}

dsc_status_t dsc_comm_reduce_scatter_v(dsc_comm_t *c, const void *send, void *recv, const int64_t *counts,
                                       dsc_dtype_t dtype) {
    if (!c) return DSC_ERR_INVALID;
    int64_t total = 0;
    for (int q = 0; counts && q < c->world; q++) total += counts[q] > 0 ? counts[q] : 0;
    dsc_comm_request_t r;
    dsc_status_t st = issue(c, &r, DSC_COMM_REDUCE_SCATTER_V, send, recv, (size_t)total, dtype, DSC_REDUCE_SUM, -1, counts);
    if (st != DSC_OK) return st;
    return progress(&r, true);
}

dsc_status_t dsc_comm_allgather(dsc_comm_t *c, const void *send, void *recv, size_t count, dsc_dtype_t dtype) {
    return run_blocking(c, DSC_COMM_ALLGATHER, send, recv, count, dtype, -1, -1);
}

dsc_status_t dsc_comm_broadcast(dsc_comm_t *c, void *buf, size_t count, dsc_dtype_t dtype, int root) {
    return run_blocking(c, DSC_COMM_BROADCAST, buf, buf, count, dtype, -1, root);
}

dsc_status_t dsc_comm_barrier(dsc_comm_t *c) {
    return run_blocking(c, DSC_COMM_BARRIER, NULL, NULL, 0, DSC_F32, -1, -1);
}

dsc_status_t dsc_comm_iallreduce(dsc_comm_t *c, const void *send, void *recv, size_t count, dsc_dtype_t dtype,
                                 dsc_reduce_op_t op, dsc_comm_request_t **req) {
    return run_nonblocking(c, DSC_COMM_ALLREDUCE, send, recv, count, dtype, (int)op, -1, req);
}

dsc_status_t dsc_comm_ireduce_scatter(dsc_comm_t *c, const void *send, void *recv, size_t count, dsc_dtype_t dtype,
                                      dsc_comm_request_t **req) {
    return run_nonblocking(c, DSC_COMM_REDUCE_SCATTER, send, recv, count, dtype, DSC_REDUCE_SUM, -1, req);
}

dsc_status_t dsc_comm_ireduce_scatter_v(dsc_comm_t *c, const void *send, void *recv, const int64_t *counts,
                                        dsc_dtype_t dtype, dsc_comm_request_t **req) {
    int64_t total = 0;
    for (int q = 0; c && counts && q < c->world; q++) total += counts[q] > 0 ? counts[q] : 0;
    return run_nonblocking_v(c, DSC_COMM_REDUCE_SCATTER_V, send, recv, (size_t)total, dtype, DSC_REDUCE_SUM, -1, counts,
                             req);
}

dsc_status_t dsc_comm_iallgather(dsc_comm_t *c, const void *send, void *recv, size_t count, dsc_dtype_t dtype,
                                 dsc_comm_request_t **req) {
    return run_nonblocking(c, DSC_COMM_ALLGATHER, send, recv, count, dtype, -1, -1, req);
}

dsc_status_t dsc_comm_ibroadcast(dsc_comm_t *c, void *buf, size_t count, dsc_dtype_t dtype, int root,
                                 dsc_comm_request_t **req) {
    return run_nonblocking(c, DSC_COMM_BROADCAST, buf, buf, count, dtype, -1, root, req);
}

dsc_status_t dsc_comm_ibarrier(dsc_comm_t *c, dsc_comm_request_t **req) {
    return run_nonblocking(c, DSC_COMM_BARRIER, NULL, NULL, 0, DSC_F32, -1, -1, req);
}

dsc_status_t dsc_comm_wait(dsc_comm_request_t *r) {
    if (!r) return DSC_OK;
    dsc_status_t st = progress(r, true);
    if (r->comm->outstanding) r->comm->outstanding--;
    free(r);
    return st;
}

dsc_status_t dsc_comm_wait_all(dsc_comm_request_t **reqs, size_t n) {
    dsc_status_t first = DSC_OK;
    for (size_t i = 0; reqs && i < n; i++) {
        dsc_status_t st = dsc_comm_wait(reqs[i]);
        reqs[i] = NULL;
        if (first == DSC_OK) first = st;
    }
    return first;
}

dsc_status_t dsc_comm_test(dsc_comm_request_t *r, bool *done) {
    if (!r) {
        if (done) *done = true;
        return DSC_OK;
    }
    dsc_status_t st = progress(r, false);
    if (done) *done = r->done;
    return st;
}

uint64_t dsc_comm_request_seq(const dsc_comm_request_t *r) { return r ? (uint64_t)r->user.seq : 0; }

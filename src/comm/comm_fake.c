/* The fake backend: N ranks as threads of one process sharing a world object, for tests.
 *
 * Every collective a rank starts is posted into a shared "op" matched by (stream, issue
 * index). The last rank to arrive computes the whole collective for everyone (reading all
 * send buffers before writing any recv buffer, so the in-place forms work) and wakes the
 * others. Reductions run in rank order: f32, f16 and bf16 accumulate in f32, f64 in f64,
 * i32 in 64-bit integers wrapped to 32. A rank that gives up (timeout) withdraws its
 * buffers, so a late arrival can never write into freed memory. Faults (delay, fail,
 * stop) are injected per rank and collective number. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "comm/comm_internal.h"
#include "core/device.h"

#define FAKE_MAX_RANKS 1024
#define FAKE_MAX_FAULTS 16

enum { C_NONE = 0, C_POSTED, C_WITHDRAWN, C_CONSUMED };

typedef struct fake_contrib {
    int state;
    dsc__comm_desc_t d;
    const void *send;
    void *recv;
    const int64_t *counts; /* reduce_scatter_v */
    dsc_ctx_t *ctx;        /* whose device holds send and recv */
} fake_contrib_t;

typedef struct fake_op {
    struct fake_op *next;
    int stream;
    uint64_t key;
    int arrived, finished; /* finished: contributions withdrawn or consumed */
    bool done;
    dsc_status_t status;
    char msg[640];
    fake_contrib_t contrib[]; /* one per rank */
} fake_op_t;

typedef struct fake_rank {
    bool taken;
    unsigned flags;          /* DSC__PEER_* */
    dsc__comm_desc_t latest; /* latest user collective issued */
    uint64_t next_key[DSC__STREAM_COUNT]; /* per stream */
} fake_rank_t;

struct dsc_comm_fake_world {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int n;
    int refs; /* the world handle + one per communicator */
    fake_op_t *ops;
    fake_rank_t *ranks;
    dsc_comm_fault_t faults[FAKE_MAX_FAULTS];
    int n_faults;
};

typedef struct fake_comm {
    dsc_comm_fake_world_t *w;
    int rank;
} fake_comm_t;

/* ---- world -------------------------------------------------------------------------- */

dsc_status_t dsc_comm_fake_world_new(int n_ranks, dsc_comm_fake_world_t **out) {
    if (!out) return DSC_ERR_INVALID;
    *out = NULL;
    if (n_ranks < 1 || n_ranks > FAKE_MAX_RANKS) return DSC_ERR_INVALID;
    dsc_comm_fake_world_t *w = calloc(1, sizeof *w);
    if (!w) return DSC_ERR_NOMEM;
    w->ranks = calloc((size_t)n_ranks, sizeof *w->ranks);
    if (!w->ranks) {
        free(w);
        return DSC_ERR_NOMEM;
    }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&w->mu, NULL);
    w->n = n_ranks;
    w->refs = 1;
    *out = w;
    return DSC_OK;
}

static void world_unref_locked(dsc_comm_fake_world_t *w) {
    if (--w->refs > 0) {
        pthread_mutex_unlock(&w->mu);
        return;
    }
    pthread_mutex_unlock(&w->mu);
    for (fake_op_t *op = w->ops, *next; op; op = next) {
        next = op->next;
        free(op);
    }
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w->ranks);
    free(w);
}

void dsc_comm_fake_world_free(dsc_comm_fake_world_t *w) {
    if (!w) return;
    pthread_mutex_lock(&w->mu);
    world_unref_locked(w);
}

dsc_status_t dsc_comm_fake_world_add_fault(dsc_comm_fake_world_t *w, const dsc_comm_fault_t *f) {
    if (!w || !f) return DSC_ERR_INVALID;
    if (f->kind < DSC_COMM_FAULT_DELAY || f->kind > DSC_COMM_FAULT_STOP || f->rank < 0 || f->rank >= w->n ||
        f->seq == 0 || !(f->delay_s >= 0) || f->delay_s > 1e6)
        return DSC_ERR_INVALID;
    pthread_mutex_lock(&w->mu);
    dsc_status_t st = DSC_ERR_NOMEM;
    if (w->n_faults < FAKE_MAX_FAULTS) {
        w->faults[w->n_faults++] = *f;
        st = DSC_OK;
    }
    pthread_mutex_unlock(&w->mu);
    return st;
}

static const dsc_comm_fault_t *find_fault(const dsc_comm_fake_world_t *w, int rank, dsc_comm_fault_kind_t kind,
                                          uint64_t seq) {
    for (int i = 0; i < w->n_faults; i++) {
        const dsc_comm_fault_t *f = &w->faults[i];
        if (f->rank != rank || f->kind != kind) continue;
        if (kind == DSC_COMM_FAULT_STOP ? seq >= f->seq : seq == f->seq) return f;
    }
    return NULL;
}

/* ---- computing a collective (last arriver, under the lock) -------------------------- */

static float load_f(const void *p, dsc_dtype_t dt, size_t i) {
    switch (dt) {
    case DSC_F16: return dsc_f16_to_f32(((const uint16_t *)p)[i]);
    case DSC_BF16: return dsc_bf16_to_f32(((const uint16_t *)p)[i]);
    default: return ((const float *)p)[i];
    }
}

static void store_f(void *p, dsc_dtype_t dt, size_t i, float x) {
    switch (dt) {
    case DSC_F16: ((uint16_t *)p)[i] = dsc_f32_to_f16(x); break;
    case DSC_BF16: ((uint16_t *)p)[i] = dsc_f32_to_bf16(x); break;
    default: ((float *)p)[i] = x; break;
    }
}

/* Reduces `total` elements of every rank's send into each rank's recv; for
 * reduce_scatter, rank r receives elements [r * per, (r + 1) * per); with counts
 * (reduce_scatter_v), counts[r] elements from the sum of counts[0..r). */
static dsc_status_t compute_reduce(fake_op_t *op, int n, size_t total, size_t per, bool scatter, const int64_t *counts) {
    const dsc__comm_desc_t *d = &op->contrib[0].d;
    dsc_dtype_t dt = (dsc_dtype_t)d->dtype;
    bool sum = d->redop == DSC_REDUCE_SUM;
    if (!total) return DSC_OK;
    if (dt == DSC_F64 || dt == DSC_I32) {
        bool is_int = dt == DSC_I32;
        double *acc = malloc(total * sizeof *acc);
        int64_t *iacc = malloc(total * sizeof *iacc);
        if (!acc || !iacc) {
            free(acc);
            free(iacc);
            return DSC_ERR_NOMEM;
        }
        for (int r = 0; r < n; r++) {
            const void *src = op->contrib[r].send;
            for (size_t i = 0; i < total; i++) {
                if (is_int) {
                    int64_t x = ((const int32_t *)src)[i];
                    iacc[i] = r == 0 ? x : (sum ? iacc[i] + x : (x > iacc[i] ? x : iacc[i]));
                } else {
                    double x = ((const double *)src)[i];
                    acc[i] = r == 0 ? x : (sum ? acc[i] + x : (x > acc[i] ? x : acc[i]));
                }
            }
        }
        for (int r = 0; r < n; r++) {
            size_t off = counts ? (size_t)dsc__comm_v_offset(counts, r) : scatter ? (size_t)r * per : 0;
            if (counts) per = (size_t)counts[r];
            for (size_t i = 0; i < per; i++) {
                if (is_int)
                    ((int32_t *)op->contrib[r].recv)[i] = (int32_t)(uint32_t)(uint64_t)iacc[off + i];
                else
                    ((double *)op->contrib[r].recv)[i] = acc[off + i];
            }
        }
        free(acc);
        free(iacc);
        return DSC_OK;
    }
    float *acc = malloc(total * sizeof *acc);
    if (!acc) return DSC_ERR_NOMEM;
    for (int r = 0; r < n; r++) {
        const void *src = op->contrib[r].send;
        for (size_t i = 0; i < total; i++) {
            float x = load_f(src, dt, i);
            acc[i] = r == 0 ? x : (sum ? acc[i] + x : (x > acc[i] ? x : acc[i]));
        }
    }
    for (int r = 0; r < n; r++) {
        size_t off = counts ? (size_t)dsc__comm_v_offset(counts, r) : scatter ? (size_t)r * per : 0;
        if (counts) per = (size_t)counts[r];
        for (size_t i = 0; i < per; i++) store_f(op->contrib[r].recv, dt, i, acc[off + i]);
    }
    free(acc);
    return DSC_OK;
}

static dsc_status_t compute_via_host(fake_op_t *op, int n);

static void compute(fake_op_t *op, int n) {
    const dsc__comm_desc_t *d0 = &op->contrib[0].d;
    char a[160], b[160];
    for (int r = 0; r < n; r++) {
        if (op->contrib[r].state == C_WITHDRAWN) {
            op->status = DSC_ERR_COMM;
            snprintf(op->msg, sizeof op->msg,
                     "collective #%lld %s abandoned: rank %d gave up on it (timeout) before every rank arrived",
                     (long long)op->contrib[r].d.seq, dsc__comm_desc_str(&op->contrib[r].d, a, sizeof a), r);
            return;
        }
    }
    for (int r = 1; r < n; r++) {
        const dsc__comm_desc_t *d = &op->contrib[r].d;
        if (d->op != d0->op || d->count != d0->count || d->dtype != d0->dtype || d->redop != d0->redop ||
            d->root != d0->root || d->counts_hash != d0->counts_hash) {
            op->status = DSC_ERR_COMM;
            snprintf(op->msg, sizeof op->msg,
                     "fake backend: ranks disagree on collective #%lld: rank 0 called %s but rank %d called %s "
                     "(an MPI job would hang or corrupt data here; the debug check reports this)",
                     (long long)d0->seq, dsc__comm_desc_str(d0, a, sizeof a), r, dsc__comm_desc_str(d, b, sizeof b));
            return;
        }
    }
    dsc_status_t st = compute_via_host(op, n);
    if (st != DSC_OK) {
        op->status = st;
        snprintf(op->msg, sizeof op->msg, "fake backend: out of memory computing collective #%lld %s",
                 (long long)d0->seq, dsc__comm_desc_str(d0, a, sizeof a));
    }
}

/* The collective over the buffers the contributions point at (host memory here). */
static dsc_status_t compute_data(fake_op_t *op, int n) {
    const dsc__comm_desc_t *d0 = &op->contrib[0].d;
    size_t count = (size_t)d0->count, es = dsc_dtype_size((dsc_dtype_t)d0->dtype);
    dsc_status_t st = DSC_OK;
    switch ((dsc_comm_op_t)d0->op) {
    case DSC_COMM_ALLREDUCE: st = compute_reduce(op, n, count, count, false, NULL); break;
    case DSC_COMM_REDUCE_SCATTER: st = compute_reduce(op, n, count * (size_t)n, count, true, NULL); break;
    case DSC_COMM_REDUCE_SCATTER_V: st = compute_reduce(op, n, count, 0, true, op->contrib[0].counts); break;
    case DSC_COMM_ALLGATHER:
        for (int r = 0; r < n; r++)
            for (int s = 0; s < n; s++)
                if (count)
                    memmove((char *)op->contrib[r].recv + (size_t)s * count * es, op->contrib[s].send, count * es);
        break;
    case DSC_COMM_BROADCAST:
        for (int r = 0; r < n; r++)
            if (r != d0->root && count) memcpy(op->contrib[r].recv, op->contrib[d0->root].send, count * es);
        break;
    default: break;
    }
    return st;
}

/* Bytes of rank r's send and recv buffers that the collective reads and writes. */
static void extents(const fake_op_t *op, int n, int r, size_t *send, size_t *recv) {
    const dsc__comm_desc_t *d0 = &op->contrib[0].d;
    const size_t count = (size_t)d0->count, es = dsc_dtype_size((dsc_dtype_t)d0->dtype);
    *send = *recv = count * es;
    switch ((dsc_comm_op_t)d0->op) {
    case DSC_COMM_REDUCE_SCATTER: *send = count * (size_t)n * es; break;
    case DSC_COMM_REDUCE_SCATTER_V: *recv = (size_t)op->contrib[0].counts[r] * es; break;
    case DSC_COMM_ALLGATHER: *recv = count * (size_t)n * es; break;
    case DSC_COMM_BROADCAST:
        if (r != d0->root) *send = 0;
        else *recv = 0;
        break;
    case DSC_COMM_ALLREDUCE: break;
    default: *send = *recv = 0; break;
    }
}

/* Each rank's buffers live on its context's device or in host memory: every send is copied
 * to the host first (so the in-place forms still work), the collective runs on host copies,
 * and each result goes back (dsc__comm_copy picks the call for each side). Their status is
 * not checked here: it is the rank's sticky context status (an earlier failure would fail
 * every later collective), and a device error is recorded on that context. */
static dsc_status_t compute_via_host(fake_op_t *op, int n) {
    const void *send[FAKE_MAX_RANKS];
    void *recv[FAKE_MAX_RANKS];
    dsc_status_t st = DSC_OK;
    for (int r = 0; r < n; r++) {
        fake_contrib_t *c = &op->contrib[r];
        size_t sb, rb;
        extents(op, n, r, &sb, &rb);
        send[r] = c->send;
        recv[r] = c->recv;
        void *hs = malloc(sb + 1), *hr = malloc(rb + 1);
        if (!hs || !hr) st = DSC_ERR_NOMEM;
        if (st == DSC_OK && sb) dsc__comm_copy(c->ctx, hs, c->send, sb);
        c->send = hs;
        c->recv = hr;
        if (st != DSC_OK) { /* undo what is swapped so far */
            for (int q = 0; q <= r; q++) {
                free((void *)op->contrib[q].send);
                free(op->contrib[q].recv);
                op->contrib[q].send = send[q];
                op->contrib[q].recv = recv[q];
            }
            return st;
        }
    }
    st = compute_data(op, n);
    for (int r = 0; r < n; r++) {
        fake_contrib_t *c = &op->contrib[r];
        size_t sb, rb;
        extents(op, n, r, &sb, &rb);
        if (st == DSC_OK && rb) dsc__comm_copy(c->ctx, recv[r], c->recv, rb);
        free((void *)c->send);
        free(c->recv);
        c->send = send[r];
        c->recv = recv[r];
    }
    return st;
}

/* ---- backend ------------------------------------------------------------------------ */

static dsc_status_t fake_start(dsc_comm_t *c, dsc__coll_t *coll) {
    fake_comm_t *fc = c->impl;
    dsc_comm_fake_world_t *w = fc->w;
    int me = fc->rank;
    uint64_t seq = (uint64_t)coll->d.seq;
    char d[160];
    pthread_mutex_lock(&w->mu);
    fake_rank_t *rk = &w->ranks[me];
    if ((rk->flags & DSC__PEER_STOPPED) || find_fault(w, me, DSC_COMM_FAULT_STOP, seq)) {
        rk->flags |= DSC__PEER_STOPPED;
        pthread_mutex_unlock(&w->mu);
        return dsc__comm_fail(c, DSC_ERR_COMM, "rank %d stopped participating at collective #%llu %s (fault injection)",
                              me, (unsigned long long)seq, dsc__comm_desc_str(&c->latest, d, sizeof d));
    }
    const dsc_comm_fault_t *delay =
        coll->stream == DSC__STREAM_USER ? find_fault(w, me, DSC_COMM_FAULT_DELAY, seq) : NULL;
    if (delay) {
        rk->flags |= DSC__PEER_DELAYED;
        pthread_mutex_unlock(&w->mu);
        dsc__comm_sleep(delay->delay_s);
        pthread_mutex_lock(&w->mu);
        rk->flags &= ~(unsigned)DSC__PEER_DELAYED;
    }
    rk->latest = c->latest;
    uint64_t key = rk->next_key[coll->stream]++;
    fake_op_t *op = w->ops;
    while (op && !(op->stream == coll->stream && op->key == key)) op = op->next;
    if (!op) {
        op = calloc(1, sizeof *op + (size_t)w->n * sizeof op->contrib[0]);
        if (!op) {
            pthread_mutex_unlock(&w->mu);
            return dsc__comm_fail(c, DSC_ERR_NOMEM, "fake backend: out of memory posting collective #%llu",
                                  (unsigned long long)seq);
        }
        op->stream = coll->stream;
        op->key = key;
        op->next = w->ops;
        w->ops = op;
    }
    fake_contrib_t *mine = &op->contrib[me];
    mine->state = C_POSTED;
    mine->d = coll->d;
    op->arrived++;
    if (coll->stream == DSC__STREAM_USER && find_fault(w, me, DSC_COMM_FAULT_FAIL, seq)) {
        if (!op->done) {
            op->done = true;
            op->status = DSC_ERR_COMM;
            snprintf(op->msg, sizeof op->msg, "collective #%llu %s failed: injected fault on rank %d",
                     (unsigned long long)seq, dsc__comm_desc_str(&coll->d, d, sizeof d), me);
        }
    } else {
        mine->send = coll->send;
        mine->recv = coll->recv;
        mine->counts = coll->counts;
        mine->ctx = c->ctx;
    }
    if (op->arrived == w->n && !op->done) {
        compute(op, w->n);
        op->done = true;
    }
    coll->impl = op;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    return DSC_OK;
}

static dsc_status_t fake_test(dsc_comm_t *c, dsc__coll_t *coll, bool *done) {
    fake_comm_t *fc = c->impl;
    fake_op_t *op = coll->impl;
    char msg[sizeof op->msg];
    pthread_mutex_lock(&fc->w->mu);
    bool d = op->done;
    dsc_status_t st = op->status;
    if (d && st != DSC_OK) memcpy(msg, op->msg, sizeof msg);
    pthread_mutex_unlock(&fc->w->mu);
    *done = d && st == DSC_OK;
    if (d && st != DSC_OK) return dsc__comm_fail(c, st, "%s", msg);
    return DSC_OK;
}

static void fake_pause(dsc_comm_t *c, dsc__coll_t *coll, unsigned attempt, double max_s) {
    (void)attempt;
    fake_comm_t *fc = c->impl;
    fake_op_t *op = coll->impl;
    double wait = max_s < 0.05 ? max_s : 0.05;
    if (!(wait > 0)) return;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    long ns = ts.tv_nsec + (long)(wait * 1e9);
    ts.tv_sec += ns / 1000000000L;
    ts.tv_nsec = ns % 1000000000L;
    pthread_mutex_lock(&fc->w->mu);
    if (!op->done) pthread_cond_timedwait(&fc->w->cv, &fc->w->mu, &ts);
    pthread_mutex_unlock(&fc->w->mu);
}

static void fake_release(dsc_comm_t *c, dsc__coll_t *coll, bool completed) {
    (void)completed;
    fake_comm_t *fc = c->impl;
    dsc_comm_fake_world_t *w = fc->w;
    fake_op_t *op = coll->impl;
    if (!op) return;
    pthread_mutex_lock(&w->mu);
    fake_contrib_t *mine = &op->contrib[fc->rank];
    mine->state = op->done ? C_CONSUMED : C_WITHDRAWN;
    mine->send = NULL;
    mine->recv = NULL;
    if (++op->finished == w->n) {
        fake_op_t **pp = &w->ops;
        while (*pp != op) pp = &(*pp)->next;
        *pp = op->next;
        free(op);
    }
    pthread_mutex_unlock(&w->mu);
    coll->impl = NULL;
}

static void fake_peers(dsc_comm_t *c, const dsc__coll_t *coll, dsc__peer_t *peers, double grace_s) {
    (void)coll;
    (void)grace_s;
    fake_comm_t *fc = c->impl;
    pthread_mutex_lock(&fc->w->mu);
    for (int p = 0; p < fc->w->n; p++) {
        peers[p].kind = DSC__PEER_KNOWN;
        peers[p].flags = fc->w->ranks[p].flags;
        peers[p].latest = fc->w->ranks[p].latest;
    }
    pthread_mutex_unlock(&fc->w->mu);
}

static void fake_abort(dsc_comm_t *c, int errorcode) {
    (void)errorcode;
    fake_comm_t *fc = c->impl;
    pthread_mutex_lock(&fc->w->mu);
    fc->w->ranks[fc->rank].flags |= DSC__PEER_ABORTED;
    pthread_cond_broadcast(&fc->w->cv);
    pthread_mutex_unlock(&fc->w->mu);
}

static void fake_destroy(dsc_comm_t *c) {
    fake_comm_t *fc = c->impl;
    if (!fc) return;
    pthread_mutex_lock(&fc->w->mu);
    world_unref_locked(fc->w);
    free(fc);
    c->impl = NULL;
}

static const dsc__comm_vtable_t fake_vtable = {
    "fake", fake_start, fake_test, fake_pause, fake_release, fake_peers, fake_abort, fake_destroy, NULL, NULL, NULL, NULL,
};

dsc_status_t dsc__comm_fake_init(dsc_comm_t *c, dsc_comm_fake_world_t *w, int rank) {
    if (rank < 0 || rank >= w->n)
        return dsc_ctx_set_error(c->ctx, DSC_ERR_INVALID, "dsc_comm_new_fake: rank %d is not in a world of %d", rank,
                                 w->n);
    fake_comm_t *fc = calloc(1, sizeof *fc);
    if (!fc) return dsc_ctx_set_error(c->ctx, DSC_ERR_NOMEM, "out of memory creating a fake communicator");
    pthread_mutex_lock(&w->mu);
    if (w->ranks[rank].taken) {
        pthread_mutex_unlock(&w->mu);
        free(fc);
        return dsc_ctx_set_error(c->ctx, DSC_ERR_MISUSE, "dsc_comm_new_fake: rank %d of the world already has a "
                                                         "communicator", rank);
    }
    w->ranks[rank].taken = true;
    w->refs++;
    pthread_mutex_unlock(&w->mu);
    fc->w = w;
    fc->rank = rank;
    c->vt = &fake_vtable;
    c->impl = fc;
    c->rank = c->local_rank = rank;
    c->world = c->local_size = w->n;
    return DSC_OK;
}

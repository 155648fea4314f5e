/* The NCCL backend: collectives between ranks that each drive their own GPU.
 *
 * NCCL is loaded at run time (dlopen of libnccl.so.2, or DSC_NCCL_LIBRARY), and the few
 * entry points and types used here are declared below from NCCL's documented C API, so a
 * build needs neither NCCL's headers nor its library; a machine without it reports that
 * when the communicator is made. Beside NCCL sits an MPI communicator of the same world
 * (`ctl`, comm_mpi.c): rank 0's NCCL unique id travels over it, the debug check's
 * descriptor exchanges and dsc_comm_free's barrier run on it (host data, its own MPI
 * communicators), it answers and sends the timeout queries that name the ranks that never
 * arrived, and its MPI_Abort ends the job after a timeout (NCCL's communicator is aborted
 * first, so no kernel stays blocked).
 *
 * Streams: every collective runs on the backend's communication stream. At its start the
 * backend records an event on the context's stream and makes the communication stream
 * wait for it (the collective sees everything issued before it), then enqueues NCCL's
 * kernels and records `done`. Waiting on a collective whose results are device buffers
 * only orders: the context's stream is made to wait for `done` (later work runs after the
 * collective), 16-bit results are narrowed on that stream, the pool slots go back (every
 * later use of a slot is ordered on the context's stream after that wait) and the host goes
 * on; a host read of the results blocks on the context's stream, hence until the
 * collective finished. The collective stays on the watchdog's list until `done` passed
 * (checked at the next start), so one that never completes is reported past its deadline
 * and NCCL aborted. A blocking device read first settles the context's communicators through
 * its host-read check (dsc__comm_host_read_check polls nccl_settle of each): it polls those
 * `done` events, so the host waits for a stuck collective in a poll the watchdog's finding
 * ends, not inside CUDA's wait beside ncclCommAbort (NVIDIA/nccl#829). Testing a
 * collective, and waiting on one with host results (a host read), poll `done` (never
 * blocking; NCCL's asynchronous error is checked at each poll) against the generic
 * layer's deadline, as on MPI.
 *
 * Buffers in host memory (the ZeRO norm pair, checkpoint records) are staged through
 * device memory from a pool (grown on demand, counted as DSC_MEM_COMM, freed with the
 * communicator). 16-bit sums are widened to f32 on the device, summed in f32 and rounded
 * once, as on the other backends (DSC_NCCL_BF16=native sums in 16 bits instead: NCCL's
 * rings then round after every hop); maxima and data movement stay 16-bit. */
#include <dlfcn.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "comm/comm_internal.h"
#include "comm/comm_watchdog.h"
#include "core/device.h"

/* ---- NCCL's C API, as much as is used (nccl.h, NCCL 2.x) ---------------------------- */

typedef struct nccl_comm_opaque *nccl_comm_t;
typedef struct {
    char internal[128]; /* NCCL_UNIQUE_ID_BYTES */
} nccl_unique_id_t;
enum { NCCL_SUCCESS = 0, NCCL_INVALID_USAGE = 5, NCCL_IN_PROGRESS = 7 };
enum { NCCL_INT32 = 2, NCCL_FLOAT16 = 6, NCCL_FLOAT32 = 7, NCCL_FLOAT64 = 8, NCCL_BFLOAT16 = 9 };
enum { NCCL_SUM = 0, NCCL_MAX = 2 };

typedef struct nccl_api {
    int (*get_version)(int *version);
    int (*get_unique_id)(nccl_unique_id_t *id);
    int (*comm_init_rank)(nccl_comm_t *comm, int nranks, nccl_unique_id_t id, int rank);
    int (*comm_destroy)(nccl_comm_t comm);
    int (*comm_abort)(nccl_comm_t comm);
    int (*comm_get_async_error)(nccl_comm_t comm, int *async_error);
    const char *(*get_error_string)(int result);
    int (*all_reduce)(const void *send, void *recv, size_t count, int dtype, int op, nccl_comm_t comm, void *stream);
    int (*reduce_scatter)(const void *send, void *recv, size_t recv_count, int dtype, int op, nccl_comm_t comm,
                          void *stream);
    int (*all_gather)(const void *send, void *recv, size_t send_count, int dtype, nccl_comm_t comm, void *stream);
    int (*broadcast)(const void *send, void *recv, size_t count, int dtype, int root, nccl_comm_t comm, void *stream);
    int (*reduce)(const void *send, void *recv, size_t count, int dtype, int op, int root, nccl_comm_t comm,
                  void *stream);
    int (*group_start)(void);
    int (*group_end)(void);
} nccl_api_t;

/* One device buffer of the staging pool. */
typedef struct dev_buf {
    void *p;
    size_t cap;
    bool busy; /* held by a collective in flight (or by an abandoned one, for good) */
} dev_buf_t;

typedef struct nccl_impl {
    dsc_comm_t *ctl; /* the MPI communicator beside NCCL (owned) */
    void *lib;
    nccl_api_t api;
    nccl_comm_t comm;
    int version;
    dsc_device_t *dev;
    void *stream;   /* the communication stream */
    bool native16;  /* DSC_NCCL_BF16=native */
    dev_buf_t *pool;
    size_t n_pool;
    void *barrier_word; /* 4 device bytes: the barrier's allreduce */
    /* The watchdog (comm_watchdog.h) and what it may touch from its thread: NCCL's
     * communicator as created (`comm` itself is the main thread's), and whether it was aborted
     * (by either thread; whoever sets it first calls ncclCommAbort). */
    dsc__watchdog_t *wd;
    nccl_comm_t watched;
    atomic_bool transport_aborted;
    /* Collectives a wait completed in order whose `done` had not passed when last looked at,
     * oldest wait first: they keep their events and their place on the watchdog's list. */
    struct nccl_coll *ordered, **ordered_tail;
    /* The `done` event of the latest collective started (NULL once it passed or its
     * collective was freed): everything on the communication stream is done when it passed
     * (one stream, issue order). What a call that waits for the whole device waits for. */
    dsc_device_event_t *last_done;
} nccl_impl_t;

typedef struct nccl_coll {
    dsc_device_event_t *ready, *done;
    int slot_s, slot_r, slot_w; /* pool slots: staged send, staged recv, f32 widening (-1: none) */
    void *dev_send, *dev_recv;  /* what NCCL reads and writes (the caller's, or staged) */
    void *host_recv;            /* host recv to copy back (NULL: none) */
    size_t recv_bytes;
    void *wide;                 /* f32 widening buffer (16-bit sums) */
    size_t wide_off, wide_n;    /* the result's elements in it */
    bool finished;
    bool ordered; /* a wait completed it in order (nccl_order); its `done` may not have passed */
    bool watched; /* on the watchdog's list */
    int64_t seq;  /* its sequence number (the watchdog's key) */
    struct nccl_coll *next; /* the list of collectives waited in order (nccl_impl_t.ordered) */
} nccl_coll_t;

static const char *nccl_err(const nccl_impl_t *n, int rc) {
    return n->api.get_error_string ? n->api.get_error_string(rc) : "unknown NCCL error";
}

static int nccl_dtype(dsc_dtype_t dt) {
    switch (dt) {
    case DSC_F32: return NCCL_FLOAT32;
    case DSC_F64: return NCCL_FLOAT64;
    case DSC_I32: return NCCL_INT32;
    case DSC_BF16: return NCCL_BFLOAT16;
    default: return NCCL_FLOAT16;
    }
}

/* A free device pool slot of at least n_bytes, marked busy; -1 when out of memory. */
static int pool_take(dsc_comm_t *c, size_t n_bytes) {
    nccl_impl_t *n = c->impl;
    int fit = -1, grow = -1;
    for (size_t i = 0; i < n->n_pool; i++) {
        const dev_buf_t *b = &n->pool[i];
        if (b->busy) continue;
        if (b->cap >= n_bytes && (fit < 0 || b->cap < n->pool[fit].cap)) fit = (int)i;
        if (grow < 0 || b->cap > n->pool[grow].cap) grow = (int)i;
    }
    if (fit >= 0) {
        n->pool[fit].busy = true;
        return fit;
    }
    if (grow < 0) {
        dev_buf_t *p = realloc(n->pool, (n->n_pool + 1) * sizeof *p);
        if (!p) return -1;
        n->pool = p;
        grow = (int)n->n_pool++;
        n->pool[grow] = (dev_buf_t){NULL, 0, false};
    }
    dev_buf_t *b = &n->pool[grow];
    const size_t cap = (n_bytes + 4095) / 4096 * 4096;
    /* the old buffer may still be read by queued work: let the device finish it */
    if (b->p && dsc__dev_sync(c->ctx) != DSC_OK) return -1;
    void *p = dsc__dev_alloc(c->ctx, DSC_MEM_COMM, cap);
    if (!p) return -1;
    if (b->p) dsc__dev_free(c->ctx, DSC_MEM_COMM, b->p, b->cap);
    b->p = p;
    b->cap = cap;
    b->busy = true;
    return grow;
}

static void pool_give(dsc_comm_t *c, int *slot) {
    nccl_impl_t *n = c->impl;
    if (*slot >= 0) n->pool[*slot].busy = false;
    *slot = -1;
}

static bool overlaps(const char *a, size_t na, const char *b, size_t nb) { return a < b + nb && b < a + na; }

/* Device views of send (s_bytes) and recv (r_bytes): the caller's device buffers as they
 * are, host ones through pool slots (one over both ranges when they overlap, keeping the
 * in-place layouts), send's bytes copied in when copy_in; a host recv is copied back at
 * the end when copy_out. */
static dsc_status_t stage(dsc_comm_t *c, nccl_coll_t *nc, const dsc__coll_t *coll, size_t s_bytes, size_t r_bytes,
                          bool copy_in, bool copy_out) {
    nccl_impl_t *n = c->impl;
    const char *s = coll->send;
    char *r = coll->recv;
    nc->dev_send = (void *)s;
    nc->dev_recv = r;
    const bool s_host = s_bytes && dsc__dev_host_accessible(c->ctx, s);
    const bool r_host = r_bytes && dsc__dev_host_accessible(c->ctx, r);
    if (!s_host && !r_host) return DSC_OK;
    if (s_host && r_host && overlaps(s, s_bytes, r, r_bytes)) {
        const char *lo = s < r ? s : r, *hi = s + s_bytes > r + r_bytes ? s + s_bytes : r + r_bytes;
        if ((nc->slot_s = pool_take(c, (size_t)(hi - lo))) < 0) return DSC_ERR_NOMEM;
        char *d = n->pool[nc->slot_s].p;
        nc->dev_send = d + (s - lo);
        nc->dev_recv = d + (r - lo);
    } else {
        if (s_host) {
            if ((nc->slot_s = pool_take(c, s_bytes)) < 0) return DSC_ERR_NOMEM;
            nc->dev_send = n->pool[nc->slot_s].p;
        }
        if (r_host) {
            if ((nc->slot_r = pool_take(c, r_bytes)) < 0) return DSC_ERR_NOMEM;
            nc->dev_recv = n->pool[nc->slot_r].p;
        }
    }
    if (s_host && copy_in) {
        dsc_status_t st = dsc__dev_from_host(c->ctx, nc->dev_send, s, s_bytes);
        if (st != DSC_OK) return st;
    }
    if (r_host && copy_out) {
        nc->host_recv = r;
        nc->recv_bytes = r_bytes;
    }
    return DSC_OK;
}

static void coll_free(dsc_comm_t *c, const dsc__coll_t *coll, nccl_coll_t *nc, bool completed) {
    nccl_impl_t *n = c->impl;
    if (nc->watched) dsc__watchdog_forget(n->wd, coll->d.seq); /* before its end event goes */
    if (completed) { /* an abandoned collective keeps its buffers: NCCL may still write them */
        pool_give(c, &nc->slot_s);
        pool_give(c, &nc->slot_r);
        pool_give(c, &nc->slot_w);
    }
    if (nc->done && nc->done == n->last_done) n->last_done = NULL;
    if (nc->ready) n->dev->table->event_free(n->dev, nc->ready);
    if (nc->done) n->dev->table->event_free(n->dev, nc->done);
    free(nc);
}

/* Enqueues NCCL's part of `coll` on the communication stream; returns NCCL's result. */
static int enqueue(dsc_comm_t *c, const dsc__coll_t *coll, nccl_coll_t *nc, size_t n_el, size_t es) {
    nccl_impl_t *n = c->impl;
    const dsc__comm_desc_t *d = &coll->d;
    const int w = c->world, me = c->rank;
    const bool wide = nc->wide != NULL;
    const int dt = wide ? NCCL_FLOAT32 : nccl_dtype((dsc_dtype_t)d->dtype);
    const size_t wes = wide ? sizeof(float) : es;
    char *ws = wide ? nc->wide : nc->dev_send, *wr = wide ? nc->wide : nc->dev_recv;
    void *st = n->stream;
    switch ((dsc_comm_op_t)d->op) {
    case DSC_COMM_ALLREDUCE:
        if (!n_el) return NCCL_SUCCESS;
        return n->api.all_reduce(ws, wr, n_el, dt, d->redop == DSC_REDUCE_MAX ? NCCL_MAX : NCCL_SUM, n->comm, st);
    case DSC_COMM_REDUCE_SCATTER:
        if (!n_el) return NCCL_SUCCESS;
        /* widened: in place in the f32 buffer (NCCL's in-place form: recv = send + rank * count) */
        return n->api.reduce_scatter(ws, wide ? ws + (size_t)me * n_el * wes : wr, n_el, dt, NCCL_SUM, n->comm, st);
    case DSC_COMM_REDUCE_SCATTER_V: {
        /* uneven slices: one reduce to each owner, grouped into one launch */
        int rc = n->api.group_start();
        for (int q = 0; q < w && rc == NCCL_SUCCESS; q++) {
            const size_t cnt = (size_t)coll->counts[q], off = (size_t)dsc__comm_v_offset(coll->counts, q);
            if (!cnt) continue;
            void *dst = wide ? ws + off * wes : (q == me ? wr : ws + off * wes); /* recv matters on the owner only */
            rc = n->api.reduce(ws + off * wes, dst, cnt, dt, NCCL_SUM, q, n->comm, st);
        }
        int rc2 = n->api.group_end();
        return rc != NCCL_SUCCESS ? rc : rc2;
    }
    case DSC_COMM_ALLGATHER:
        if (!n_el) return NCCL_SUCCESS;
        return n->api.all_gather(ws, wr, n_el, dt, n->comm, st);
    case DSC_COMM_BROADCAST:
        if (!n_el) return NCCL_SUCCESS;
        return n->api.broadcast(wr, wr, n_el, dt, (int)d->root, n->comm, st);
    default: /* barrier: a one-word sum */
        return n->api.all_reduce(n->barrier_word, n->barrier_word, 1, NCCL_FLOAT32, NCCL_SUM, n->comm, st);
    }
}

/* Frees the collectives waited in order whose `done` passed, oldest wait first, up to the
 * first that has not (they run in issue order on the one communication stream, so this
 * asks about one or two events per call); all of them when `all` (the communicator goes). */
static void reap_ordered(dsc_comm_t *c, bool all) {
    nccl_impl_t *n = c->impl;
    while (n->ordered) {
        nccl_coll_t *nc = n->ordered;
        bool passed = all;
        if (!passed && n->dev->table->event_query_any_thread(n->dev, nc->done, &passed) != 0) passed = false;
        if (!passed) return;
        n->ordered = nc->next;
        if (!n->ordered) n->ordered_tail = &n->ordered;
        if (nc->watched && n->wd) dsc__watchdog_forget(n->wd, nc->seq);
        if (nc->done && nc->done == n->last_done) n->last_done = NULL;
        if (nc->ready) n->dev->table->event_free(n->dev, nc->ready);
        if (nc->done) n->dev->table->event_free(n->dev, nc->done);
        free(nc);
    }
}

static dsc_status_t nccl_start(dsc_comm_t *c, dsc__coll_t *coll) {
    nccl_impl_t *n = c->impl;
    if (coll->stream != DSC__STREAM_USER) { /* the debug check and the free barrier: MPI, host data */
        n->ctl->latest = c->latest;
        return n->ctl->vt->start(n->ctl, coll);
    }
    reap_ordered(c, false);
    const dsc__comm_desc_t *d = &coll->d;
    char ds[160];
    nccl_coll_t *nc = calloc(1, sizeof *nc);
    if (!nc) return dsc__comm_fail(c, DSC_ERR_NOMEM, "out of memory starting collective #%lld", (long long)d->seq);
    nc->slot_s = nc->slot_r = nc->slot_w = -1;
    nc->seq = d->seq;
    const dsc_dtype_t dt = (dsc_dtype_t)d->dtype;
    const size_t n_el = (size_t)d->count, es = dsc_dtype_size(dt), w = (size_t)c->world;
    size_t s_bytes = n_el * es, r_bytes = n_el * es, wide_n = 0, wide_off = 0, res_n = 0;
    bool copy_in = true, copy_out = true;
    const bool is16 = dt == DSC_BF16 || dt == DSC_F16;
    bool sum = false;
    switch ((dsc_comm_op_t)d->op) {
    case DSC_COMM_ALLREDUCE: sum = d->redop == DSC_REDUCE_SUM; wide_n = res_n = n_el; break;
    case DSC_COMM_REDUCE_SCATTER:
        s_bytes = n_el * es * w;
        sum = true;
        wide_n = n_el * w;
        wide_off = (size_t)c->rank * n_el;
        res_n = n_el;
        break;
    case DSC_COMM_REDUCE_SCATTER_V:
        r_bytes = (size_t)coll->counts[c->rank] * es;
        sum = true;
        wide_n = n_el;
        wide_off = (size_t)dsc__comm_v_offset(coll->counts, c->rank);
        res_n = (size_t)coll->counts[c->rank];
        break;
    case DSC_COMM_ALLGATHER: r_bytes = n_el * es * w; break;
    case DSC_COMM_BROADCAST:
        copy_in = (int)d->root == c->rank;
        copy_out = !copy_in;
        break;
    default: s_bytes = r_bytes = 0; break;
    }
    dsc_status_t st = stage(c, nc, coll, s_bytes, r_bytes, copy_in, copy_out);
    const char *what = "staging host buffers in device memory";
    if (st == DSC_OK && is16 && sum && !n->native16 && wide_n) {
        what = "widening 16-bit values to f32";
        if ((nc->slot_w = pool_take(c, wide_n * sizeof(float))) < 0) {
            st = DSC_ERR_NOMEM;
        } else {
            nc->wide = n->pool[nc->slot_w].p;
            nc->wide_off = wide_off;
            nc->wide_n = res_n;
            st = dsc__dev_convert(c->ctx, nc->wide, DSC_F32, nc->dev_send, dt, wide_n);
        }
    }
    dsc_device_t *dev = n->dev;
    if (st == DSC_OK) {
        what = "ordering the communication stream after the compute stream";
        nc->ready = dev->table->event_new(dev);
        nc->done = dev->table->event_new(dev);
        if (!nc->ready || !nc->done) st = DSC_ERR_DEVICE;
    }
    if (st == DSC_OK) {
        dev->table->event_record(dev, nc->ready);
        if (dev->table->stream_wait_event(dev, n->stream, nc->ready) != 0) st = DSC_ERR_DEVICE;
    }
    if (st != DSC_OK) {
        coll_free(c, coll, nc, true);
        return dsc__comm_fail(c, st, "collective #%lld %s on rank %d of %d (NCCL): %s failed: %s", (long long)d->seq,
                              dsc__comm_desc_str(d, ds, sizeof ds), c->rank, c->world, what,
                              dsc_ctx_status(c->ctx) != DSC_OK ? dsc_ctx_errmsg(c->ctx) : "out of device memory");
    }
    /* Watched from before NCCL's call: a call that never returns is overdue too. */
    nc->watched = dsc__watchdog_watch(n->wd, d, dsc__comm_now() + c->timeout_s) == DSC_OK;
    dsc__watchdog_lock(n->wd);
    int rc = atomic_load(&n->transport_aborted) ? NCCL_INVALID_USAGE : enqueue(c, coll, nc, n_el, es);
    dsc__watchdog_unlock(n->wd);
    if (rc != NCCL_SUCCESS && rc != NCCL_IN_PROGRESS) {
        coll_free(c, coll, nc, false);
        if (dsc__watchdog_fired(n->wd, NULL)) return DSC_ERR_COMM; /* its abort ended the call: the generic layer reports */
        return dsc__comm_fail(c, DSC_ERR_COMM, "collective #%lld %s on rank %d of %d: NCCL refused it: %s",
                              (long long)d->seq, dsc__comm_desc_str(d, ds, sizeof ds), c->rank, c->world,
                              nccl_err(n, rc));
    }
    if (dev->table->event_record_on(dev, nc->done, n->stream) != 0) {
        coll_free(c, coll, nc, false);
        return dsc__comm_fail(c, DSC_ERR_DEVICE, "collective #%lld %s on rank %d: recording its end failed: %s",
                              (long long)d->seq, dsc__comm_desc_str(d, ds, sizeof ds), c->rank,
                              dsc_ctx_errmsg(c->ctx));
    }
    if (nc->watched) dsc__watchdog_arm(n->wd, d->seq, nc->done);
    n->last_done = nc->done;
    coll->impl = nc;
    return DSC_OK;
}

/* The collective's end passed on the device: order the context's stream after it, narrow
 * 16-bit results, copy host results back. */
static dsc_status_t finish(dsc_comm_t *c, dsc__coll_t *coll, nccl_coll_t *nc) {
    nccl_impl_t *n = c->impl;
    const dsc_dtype_t dt = (dsc_dtype_t)coll->d.dtype;
    if (n->dev->table->event_wait(n->dev, nc->done) != 0) return DSC_ERR_DEVICE;
    dsc_status_t st = DSC_OK;
    if (nc->wide && nc->wide_n)
        st = dsc__dev_convert(c->ctx, nc->dev_recv, dt, (float *)nc->wide + nc->wide_off, DSC_F32, nc->wide_n);
    if (st == DSC_OK && nc->host_recv && nc->recv_bytes)
        st = dsc__dev_to_host(c->ctx, nc->host_recv, nc->dev_recv, nc->recv_bytes);
    nc->finished = true;
    return st;
}

/* Serves the peers' timeout queries and fails `coll` when NCCL holds an asynchronous error. */
static dsc_status_t check_async(dsc_comm_t *c, const dsc__coll_t *coll) {
    nccl_impl_t *n = c->impl;
    char ds[160];
    n->ctl->latest = c->latest;
    dsc__comm_mpi_serve(n->ctl);
    int async = NCCL_SUCCESS;
    dsc__watchdog_lock(n->wd);
    int rc = atomic_load(&n->transport_aborted) ? NCCL_INVALID_USAGE : n->api.comm_get_async_error(n->comm, &async);
    dsc__watchdog_unlock(n->wd);
    if (rc != NCCL_SUCCESS || (async != NCCL_SUCCESS && async != NCCL_IN_PROGRESS))
        return dsc__comm_fail(c, DSC_ERR_COMM, "collective #%lld %s on rank %d of %d: NCCL reports an error: %s",
                              (long long)coll->d.seq, dsc__comm_desc_str(&coll->d, ds, sizeof ds), c->rank, c->world,
                              nccl_err(n, rc != NCCL_SUCCESS ? rc : async));
    return DSC_OK;
}

static dsc_status_t nccl_test(dsc_comm_t *c, dsc__coll_t *coll, bool *done) {
    nccl_impl_t *n = c->impl;
    char ds[160];
    if (coll->stream != DSC__STREAM_USER) {
        n->ctl->latest = c->latest;
        return n->ctl->vt->test(n->ctl, coll, done);
    }
    nccl_coll_t *nc = coll->impl;
    dsc_status_t st = check_async(c, coll);
    if (st != DSC_OK) return st;
    bool passed = false;
    if (n->dev->table->event_query(n->dev, nc->done, &passed) != 0)
        return dsc__comm_fail(c, DSC_ERR_DEVICE, "collective #%lld %s on rank %d: %s", (long long)coll->d.seq,
                              dsc__comm_desc_str(&coll->d, ds, sizeof ds), c->rank, dsc_ctx_errmsg(c->ctx));
    *done = false;
    if (!passed) return DSC_OK;
    if (finish(c, coll, nc) != DSC_OK)
        return dsc__comm_fail(c, DSC_ERR_DEVICE, "collective #%lld %s on rank %d: finishing its results failed: %s",
                              (long long)coll->d.seq, dsc__comm_desc_str(&coll->d, ds, sizeof ds), c->rank,
                              dsc_ctx_errmsg(c->ctx));
    *done = true;
    return DSC_OK;
}

/* A wait: results in device buffers are completed in order (the context's stream waits for
 * `done`, 16-bit results are narrowed on it) and the host goes on; host results (a host
 * read) and the barrier (its result is the host's knowledge that every rank arrived) are
 * left to the polling wait. */
static dsc_status_t nccl_order(dsc_comm_t *c, dsc__coll_t *coll, bool *done) {
    nccl_impl_t *n = c->impl;
    char ds[160];
    *done = false;
    nccl_coll_t *nc = coll->impl;
    if (coll->stream != DSC__STREAM_USER || !nc || nc->host_recv || coll->d.op == DSC_COMM_BARRIER) return DSC_OK;
    dsc_status_t st = check_async(c, coll);
    if (st != DSC_OK) return st;
    if (finish(c, coll, nc) != DSC_OK)
        return dsc__comm_fail(c, DSC_ERR_DEVICE, "collective #%lld %s on rank %d: ordering later work after it failed: %s",
                              (long long)coll->d.seq, dsc__comm_desc_str(&coll->d, ds, sizeof ds), c->rank,
                              dsc_ctx_errmsg(c->ctx));
    nc->ordered = true;
    if (nc->watched) dsc__watchdog_ordered(n->wd, coll->d.seq);
    *done = true;
    return DSC_OK;
}

/* The context's host-read check and dsc_comm_free poll it (vtable settle): true once every
 * collective waited in order finished on the device (whole_device: every one started, which
 * cudaFree and cudaFreeHost wait for), or the watchdog fired (then the generic layer
 * reports); otherwise it serves the peers' queries and returns false. */
static bool nccl_settle(dsc_comm_t *c, bool whole_device) {
    nccl_impl_t *n = c->impl;
    reap_ordered(c, false);
    if (dsc__watchdog_fired(n->wd, NULL)) return true;
    bool pending = n->ordered != NULL;
    if (!pending && whole_device && n->last_done) {
        bool passed = false; /* a device error counts as not passed: the watchdog's deadline ends the wait */
        if (n->dev->table->event_query_any_thread(n->dev, n->last_done, &passed) == 0 && passed)
            n->last_done = NULL;
        else
            pending = true;
    }
    if (!pending) return true;
    n->ctl->latest = c->latest;
    dsc__comm_mpi_serve(n->ctl);
    return false;
}

static void nccl_pause(dsc_comm_t *c, dsc__coll_t *coll, unsigned attempt, double max_s) {
    nccl_impl_t *n = c->impl;
    if (coll->stream != DSC__STREAM_USER) {
        n->ctl->vt->pause(n->ctl, coll, attempt, max_s);
        return;
    }
    if (attempt == 0) dsc__watchdog_waiting(n->wd, coll->d.seq, true); /* for the report */
    dsc__comm_backoff(attempt, max_s);
}

static void nccl_release(dsc_comm_t *c, dsc__coll_t *coll, bool completed) {
    nccl_impl_t *n = c->impl;
    if (coll->stream != DSC__STREAM_USER) {
        n->ctl->vt->release(n->ctl, coll, completed);
        return;
    }
    nccl_coll_t *nc = coll->impl;
    if (!nc) return;
    coll->impl = NULL;
    if (completed && nc->ordered) { /* its slots go back now; its events and watch stay until `done` passes */
        pool_give(c, &nc->slot_s);
        pool_give(c, &nc->slot_r);
        pool_give(c, &nc->slot_w);
        nc->next = NULL;
        *n->ordered_tail = nc;
        n->ordered_tail = &nc->next;
        return;
    }
    coll_free(c, coll, nc, completed && nc->finished);
}

static void nccl_peers(dsc_comm_t *c, const dsc__coll_t *coll, dsc__peer_t *peers, double grace_s) {
    nccl_impl_t *n = c->impl;
    n->ctl->latest = c->latest;
    n->ctl->vt->peers(n->ctl, coll, peers, grace_s);
}

static void nccl_abort(dsc_comm_t *c, int errorcode) {
    nccl_impl_t *n = c->impl;
    /* NCCL's kernels of a collective that never completes spin on the GPU: abort them
     * (unless the watchdog did), then MPI ends every rank. */
    if (n->comm && n->wd) dsc__watchdog_lock(n->wd);
    if (n->comm && !atomic_exchange(&n->transport_aborted, true)) n->api.comm_abort(n->comm);
    if (n->comm && n->wd) dsc__watchdog_unlock(n->wd);
    n->comm = NULL;
    n->ctl->aborted = true;
    n->ctl->vt->abort_job(n->ctl, errorcode);
}

static void nccl_destroy(dsc_comm_t *c) {
    nccl_impl_t *n = c->impl;
    if (!n) return;
    dsc__watchdog_free(n->wd); /* joined: from here on this thread alone touches NCCL */
    n->wd = NULL;
    if (n->comm && !atomic_load(&n->transport_aborted)) {
        if (n->stream && n->dev->table->event_query) dsc__dev_sync(c->ctx);
        if (c->aborted) n->api.comm_abort(n->comm);
        else n->api.comm_destroy(n->comm);
    }
    reap_ordered(c, true); /* their events (NCCL's work has ended or was aborted) */
    if (n->stream) n->dev->table->stream_free(n->dev, n->stream);
    for (size_t i = 0; i < n->n_pool; i++)
        if (n->pool[i].p) dsc__dev_free(c->ctx, DSC_MEM_COMM, n->pool[i].p, n->pool[i].cap);
    free(n->pool);
    if (n->barrier_word) dsc__dev_free(c->ctx, DSC_MEM_COMM, n->barrier_word, 4);
    if (n->lib) dlclose(n->lib);
    if (n->ctl) { /* its destroy finalises MPI when it initialised it */
        if (n->ctl->vt && n->ctl->vt->destroy) n->ctl->vt->destroy(n->ctl);
        free(n->ctl);
    }
    free(n);
    c->impl = NULL;
}

static bool nccl_wants_free_barrier(const dsc_comm_t *c) {
    const nccl_impl_t *n = c->impl;
    return n && n->ctl && n->ctl->vt->wants_free_barrier && n->ctl->vt->wants_free_barrier(n->ctl);
}

/* What the watchdog found, for the generic layer's report (vtable overdue). */
static bool nccl_overdue(dsc_comm_t *c) {
    nccl_impl_t *n = c->impl;
    dsc__watchdog_report_t r;
    if (!n || !dsc__watchdog_fired(n->wd, &r)) return false;
    c->overdue = r.d.seq ? r.d : c->latest; /* an error with nothing in flight: the latest issued */
    c->overdue_status = r.status;
    c->overdue_waited_s = r.waited_s;
    const char *host = r.host_waited    ? "the host was waiting on it"
                       : r.host_ordered ? "the host's wait had ordered later device work after it and gone on"
                       : r.enqueued     ? "the host had queued it and gone on, never waiting on it"
                                        : "the host was still inside NCCL's call for it";
    if (r.status == DSC_ERR_TIMEOUT)
        snprintf(c->overdue_note, sizeof c->overdue_note,
                 "found by the communicator's watchdog: not finished on the GPU by its deadline; %s; NCCL's "
                 "communicator was aborted",
                 host);
    else
        snprintf(c->overdue_note, sizeof c->overdue_note,
                 "found by the communicator's watchdog: NCCL reports an asynchronous error: %.120s; %s; NCCL's "
                 "communicator was aborted",
                 r.why, r.d.seq ? host : "no collective was in flight");
    return true;
}

static const dsc__comm_vtable_t nccl_vtable = {
    "nccl", nccl_start, nccl_test, nccl_pause, nccl_release, nccl_peers, nccl_abort, nccl_destroy,
    nccl_wants_free_barrier, nccl_overdue, nccl_order, nccl_settle,
};

bool dsc__comm_nccl_watchdog_fired(dsc_comm_t *c) {
    return c && c->vt == &nccl_vtable && dsc__watchdog_fired(((nccl_impl_t *)c->impl)->wd, NULL);
}

/* ---- the watchdog's hooks (its thread) ------------------------------------------------ */

static int wd_passed(void *user, dsc_device_event_t *ev, bool *done) {
    const nccl_impl_t *n = user;
    return n->dev->table->event_query_any_thread(n->dev, ev, done);
}

static bool wd_async_error(void *user, char *why, size_t why_n) {
    nccl_impl_t *n = user;
    if (atomic_load(&n->transport_aborted)) return false;
    int async = NCCL_SUCCESS;
    const int rc = n->api.comm_get_async_error(n->watched, &async); /* NCCL: callable from any thread */
    if (rc == NCCL_SUCCESS && (async == NCCL_SUCCESS || async == NCCL_IN_PROGRESS)) return false;
    snprintf(why, why_n, "%s", nccl_err(n, rc != NCCL_SUCCESS ? rc : async));
    return true;
}

static void wd_abort(void *user, bool locked) {
    nccl_impl_t *n = user;
    (void)locked; /* unlocked: the main thread is blocked inside a call; NCCL's abort is what ends it */
    if (!atomic_exchange(&n->transport_aborted, true)) n->api.comm_abort(n->watched);
}

bool dsc__comm_nccl_set_native16(dsc_comm_t *c, bool native) {
    if (!c || c->vt != &nccl_vtable) return false;
    ((nccl_impl_t *)c->impl)->native16 = native;
    return true;
}

/* ---- set-up ------------------------------------------------------------------------- */

/* Loads libnccl and its entry points; writes why not into why. */
static bool load_nccl(nccl_impl_t *n, char *why, size_t why_n) {
    const char *path = getenv("DSC_NCCL_LIBRARY");
    if (!path || !*path) path = "libnccl.so.2";
    n->lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!n->lib) {
        const char *e = dlerror();
        snprintf(why, why_n, "cannot load NCCL (%s%s): %s", path,
                 getenv("DSC_NCCL_LIBRARY") ? ", from DSC_NCCL_LIBRARY" : "; DSC_NCCL_LIBRARY names another path",
                 e ? e : "dlopen failed");
        return false;
    }
    struct {
        const char *name;
        void **slot;
    } syms[] = {
        {"ncclGetVersion", (void **)&n->api.get_version},
        {"ncclGetUniqueId", (void **)&n->api.get_unique_id},
        {"ncclCommInitRank", (void **)&n->api.comm_init_rank},
        {"ncclCommDestroy", (void **)&n->api.comm_destroy},
        {"ncclCommAbort", (void **)&n->api.comm_abort},
        {"ncclCommGetAsyncError", (void **)&n->api.comm_get_async_error},
        {"ncclGetErrorString", (void **)&n->api.get_error_string},
        {"ncclAllReduce", (void **)&n->api.all_reduce},
        {"ncclReduceScatter", (void **)&n->api.reduce_scatter},
        {"ncclAllGather", (void **)&n->api.all_gather},
        {"ncclBroadcast", (void **)&n->api.broadcast},
        {"ncclReduce", (void **)&n->api.reduce},
        {"ncclGroupStart", (void **)&n->api.group_start},
        {"ncclGroupEnd", (void **)&n->api.group_end},
    };
    for (size_t i = 0; i < sizeof syms / sizeof syms[0]; i++) {
        *syms[i].slot = dlsym(n->lib, syms[i].name);
        if (!*syms[i].slot) {
            snprintf(why, why_n, "%s has no %s (NCCL 2.x expected)", path, syms[i].name);
            return false;
        }
    }
    if (n->api.get_version(&n->version) != NCCL_SUCCESS) n->version = 0;
    return true;
}

/* Whether two ranks share a GPU: (host name, device ordinal) allgathered over ctl. Sets
 * *a and *b to the first pair. */
static dsc_status_t shared_gpu(dsc_comm_t *ctl, int ordinal, int *a, int *b) {
    typedef struct {
        char host[60];
        int32_t ordinal;
    } gpu_id_t;
    _Static_assert(sizeof(gpu_id_t) % 4 == 0, "travels as i32");
    gpu_id_t me;
    memset(&me, 0, sizeof me);
    gethostname(me.host, sizeof me.host - 1);
    me.ordinal = ordinal;
    gpu_id_t *all = calloc((size_t)ctl->world, sizeof *all);
    if (!all) return dsc__comm_fail(ctl, DSC_ERR_NOMEM, "out of memory comparing the ranks' GPUs");
    dsc_status_t st = dsc__comm_allgather_unchecked(ctl, &me, all, sizeof me / 4, DSC_I32, "nccl: which GPU");
    *a = *b = -1;
    for (int p = 0; st == DSC_OK && p < ctl->world && *a < 0; p++)
        for (int q = p + 1; q < ctl->world; q++)
            if (all[p].ordinal == all[q].ordinal && !strncmp(all[p].host, all[q].host, sizeof all[p].host)) {
                *a = p;
                *b = q;
                break;
            }
    free(all);
    return st;
}

dsc_status_t dsc__comm_nccl_init(dsc_comm_t *c, dsc_comm_t *ctl, bool forced, bool *fallback) {
    *fallback = false;
    dsc_ctx_t *ctx = c->ctx;
    dsc_device_t *dev = dsc__ctx_device(ctx);
    c->rank = ctl->rank;
    c->world = ctl->world;
    c->local_rank = ctl->local_rank;
    c->local_size = ctl->local_size;
    c->timeout_s = ctl->timeout_s;
    char why[512] = "";
    int refuse = 0; /* 1: no CUDA device, 2: shared GPU, 3: NCCL not loadable */
    if (dev->kind != DSC_DEVICE_CUDA || !dev->table->stream_new || !dev->table->event_query ||
        !dev->table->event_query_any_thread) {
        snprintf(why, sizeof why, "the context's device is %s, not a GPU (cuda:N)", dev->name);
        refuse = 1;
    }
    if (!refuse && !forced && ctl->world == 1) { /* the automatic choice: NCCL pays off from 2 ranks */
        *fallback = true;
        return DSC_OK;
    }
    int a = -1, b = -1;
    if (!refuse && ctl->world > 1) {
        dsc_status_t st = shared_gpu(ctl, dev->ordinal, &a, &b);
        if (st != DSC_OK) return st;
        if (a >= 0) {
            snprintf(why, sizeof why,
                     "ranks %d and %d share GPU %s of one host (NCCL needs a GPU per rank); the MPI backend "
                     "(DSC_COMM=mpi) stages device buffers through pinned host memory and runs there",
                     a, b, dev->name);
            refuse = 2;
        }
    }
    nccl_impl_t *n = calloc(1, sizeof *n);
    if (!n) return dsc_ctx_set_error(ctx, DSC_ERR_NOMEM, "out of memory creating an NCCL communicator");
    n->dev = dev;
    if (!refuse && !load_nccl(n, why, sizeof why)) refuse = 3;
    /* Every rank must reach the same choice: the largest refusal wins. */
    int32_t worst = refuse;
    dsc_status_t st = ctl->world > 1 ? dsc_comm_allreduce(ctl, &refuse, &worst, 1, DSC_I32, DSC_REDUCE_MAX) : DSC_OK;
    if (st == DSC_OK && worst && !refuse)
        snprintf(why, sizeof why, "another rank cannot use NCCL (%s)",
                 worst == 1 ? "its device is not a GPU" : worst == 2 ? "two ranks share a GPU" : "NCCL did not load");
    if (st != DSC_OK || worst) {
        if (n->lib) dlclose(n->lib);
        free(n);
        if (st != DSC_OK) return st;
        if (!forced) {
            *fallback = true;
            dsc_ctx_log(ctx, DSC_LOG_INFO, "rank %d of %d: collectives on MPI, not NCCL: %s", ctl->rank, ctl->world,
                        why);
            return DSC_OK;
        }
        return dsc_ctx_set_error(ctx, DSC_ERR_UNSUPPORTED, "dsc_comm_new_nccl on rank %d of %d: %s", ctl->rank,
                                 ctl->world, why);
    }
    n->ctl = ctl;
    n->ordered_tail = &n->ordered;
    c->vt = &nccl_vtable;
    c->impl = n;
    const char *nv = getenv("NCCL_NVLS_ENABLE");
    if (nv && strcmp(nv, "0") != 0)
        dsc_ctx_log(ctx, DSC_LOG_WARN, "NCCL_NVLS_ENABLE was %s; dsc sets it to 0 (NVLink multicast stays off)", nv);
    setenv("NCCL_NVLS_ENABLE", "0", 1);
    const char *nb = getenv("DSC_NCCL_BF16");
    n->native16 = nb && !strcmp(nb, "native");
    nccl_unique_id_t id;
    memset(&id, 0, sizeof id);
    int rc = NCCL_SUCCESS;
    if (c->rank == 0) rc = n->api.get_unique_id(&id);
    int32_t id_ok = rc == NCCL_SUCCESS, all_ok = id_ok;
    if (ctl->world > 1) {
        st = dsc_comm_allreduce(ctl, &id_ok, &all_ok, 1, DSC_I32, DSC_REDUCE_MAX);
        if (st == DSC_OK) st = dsc_comm_broadcast(ctl, &id, sizeof id / 4, DSC_I32, 0);
        if (st != DSC_OK) return st;
    }
    if (rc != NCCL_SUCCESS || !all_ok)
        return dsc_ctx_set_error(ctx, DSC_ERR_COMM, "dsc_comm_new_nccl on rank %d of %d: ncclGetUniqueId failed: %s",
                                 c->rank, c->world, rc != NCCL_SUCCESS ? nccl_err(n, rc) : "on rank 0");
    rc = n->api.comm_init_rank(&n->comm, c->world, id, c->rank);
    if (rc != NCCL_SUCCESS) {
        n->comm = NULL;
        return dsc_ctx_set_error(ctx, DSC_ERR_COMM,
                                 "dsc_comm_new_nccl on rank %d of %d: ncclCommInitRank on %s failed: %s (NCCL_DEBUG=WARN "
                                 "tells more)",
                                 c->rank, c->world, dev->name, nccl_err(n, rc));
    }
    n->stream = dev->table->stream_new(dev);
    n->barrier_word = dsc__dev_alloc(ctx, DSC_MEM_COMM, 4);
    if (!n->stream || !n->barrier_word)
        return dsc_ctx_set_error(ctx, DSC_ERR_DEVICE, "dsc_comm_new_nccl on rank %d: %s", c->rank,
                                 dsc_ctx_status(ctx) != DSC_OK ? dsc_ctx_errmsg(ctx) : "out of device memory");
    /* The watchdog looks every 0.25 s (a quarter of a shorter timeout): a collective is
     * reported at most that long after its deadline. */
    n->watched = n->comm;
    const dsc__watchdog_hooks_t hooks = {n, wd_passed, wd_async_error, wd_abort, NULL};
    st = dsc__watchdog_new(ctx, &hooks, c->timeout_s / 4 < 0.25 ? c->timeout_s / 4 : 0.25, &n->wd);
    if (st != DSC_OK) return st;
    dsc_ctx_log(ctx, DSC_LOG_INFO,
                "rank %d of %d: NCCL %d.%d.%d on %s (NCCL_NVLS_ENABLE=0; 16-bit sums %s)", c->rank, c->world,
                n->version / 10000, n->version / 100 % 100, n->version % 100, dev->name,
                n->native16 ? "native (DSC_NCCL_BF16=native)" : "accumulated in f32");
    return DSC_OK;
}

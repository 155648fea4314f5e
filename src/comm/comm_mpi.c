/* The MPI backend (OpenMPI): every collective is a non-blocking MPI call polled with
 * MPI_Test until it completes or the generic layer's deadline passes.
 *
 * Four duplicates of MPI_COMM_WORLD (made with MPI_Comm_idup, polled under the timeout so
 * a rank that never arrives cannot block the others' creation): `comm` for the user's collectives, `check` for the
 * debug check's descriptor exchanges (so a rank with the check off is never matched
 * against another's user collective), `fin` for the barrier of dsc_comm_free before
 * MPI_Finalize (a rank that leaves early waits there, answering queries, instead of
 * sitting silently in MPI_Finalize), and `side` for timeout queries. On a timeout the
 * rank sends a query to every other rank on `side`; a rank inside any dsc call (polling
 * a collective) answers with the descriptor of its latest collective; a rank that does
 * not answer within the grace period is not inside any dsc call (computing, blocked
 * elsewhere, or gone). Only point-to-point messages of a few dozen bytes: no one-sided
 * windows, whose passive-target progress OpenMPI does not guarantee off shared memory.
 *
 * MPI has no bf16 or f16 type: 16-bit reductions are widened to f32 host temporaries
 * (counted as DSC_MEM_COMM on the context), reduced in f32 and rounded once; 16-bit data
 * movement travels as MPI_UINT16_T.
 *
 * MPI reads and writes host memory. Buffers the host may touch (the CPU device, wrapped
 * host memory) go to MPI as they are, with no copy. Buffers in device memory
 * (dsc__dev_host_accessible false: the guarded test device, a GPU) are staged: the send
 * bytes are copied to a host bounce buffer with dsc__dev_to_host before the call, and the
 * result is copied back with dsc__dev_from_host when it completes. Bounce buffers come
 * from a pool owned by the communicator (grown on demand, reused by later collectives,
 * freed with it, counted as DSC_MEM_COMM); each collective in flight holds its own. On a
 * device that offers page-locked host memory (CUDA: cudaMallocHost) the pool is pinned, so
 * the copies run at the bus's full speed; elsewhere it is plain host memory. This is how
 * several ranks share one GPU (NCCL refuses two ranks of a communicator on one device);
 * ranks on distinct GPUs use the NCCL backend (comm_nccl.c), which gets device pointers. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm/comm_internal.h"

#if defined(__has_include)
#if __has_include(<mpi.h>)
#define DSC_HAVE_MPI 1
#endif
#endif

#ifndef DSC_HAVE_MPI

void dsc__comm_mpi_serve(dsc_comm_t *c) { (void)c; }

dsc_status_t dsc__comm_mpi_init(dsc_comm_t *c) {
    return dsc_ctx_set_error(c->ctx, DSC_ERR_UNSUPPORTED,
                             "dsc_comm_new_mpi: this build of dsc has no MPI (mpi.h was not found at build time)");
}

#else

#include <mpi.h>

enum { TAG_QUERY = 7101, TAG_REPLY = 7102 };

/* One host bounce buffer of the pool. */
typedef struct stage_buf {
    void *p;
    size_t cap;
    bool busy;   /* held by a collective in flight (or by an abandoned one, for good) */
    bool pinned; /* from the device's host_alloc_pinned (else dsc__host_alloc) */
} stage_buf_t;

typedef struct mpi_impl {
    MPI_Comm comm, check, fin, side;
    bool we_initialized;
    int64_t query_seq; /* payload of outstanding timeout queries (must outlive them) */
    stage_buf_t *stage; /* the bounce-buffer pool */
    size_t n_stage;
} mpi_impl_t;

typedef struct mpi_coll {
    MPI_Request req;
    float *tmp_in, *tmp_out; /* f32 widening of 16-bit reductions */
    size_t tmp_in_n, tmp_out_n;
    int *counts;    /* reduce_scatter_v: MPI's recvcounts */
    void *move_dst; /* in-place reduce_scatter: copy the result from the start of send */
    const void *move_src;
    size_t move_bytes;
    void *host_recv;      /* what MPI writes: recv itself, or its bounce buffer */
    int stage_a, stage_b; /* pool slots held (-1: none) */
    void *out_dev;        /* device receive buffer: gets out_host's bytes on completion */
    const void *out_host;
    size_t out_bytes;
} mpi_coll_t;

static dsc_status_t mpi_fail(dsc_comm_t *c, int rc, const char *what, const dsc__coll_t *coll) {
    char err[MPI_MAX_ERROR_STRING], d[160];
    int len = 0, cls = 0;
    if (MPI_Error_string(rc, err, &len) != MPI_SUCCESS) snprintf(err, sizeof err, "MPI error code %d", rc);
    if (coll && MPI_Error_class(rc, &cls) == MPI_SUCCESS && cls == MPI_ERR_TRUNCATE)
        /* MPI stopped a peer's data at this rank's buffer: say what it means. */
        return dsc__comm_fail(c, DSC_ERR_COMM,
                              "collective #%lld %s on rank %d of %d: another rank sent more data than this rank's "
                              "count (%s): the ranks disagree on this collective's size, so their models or "
                              "settings differ; nothing was written past the buffer (rerun with DSC_COMM_DEBUG=1 to "
                              "name the rank)",
                              (long long)coll->d.seq, dsc__comm_desc_str(&coll->d, d, sizeof d), c->rank, c->world,
                              err);
    if (!coll)
        return dsc__comm_fail(c, DSC_ERR_COMM, "MPI error in %s on rank %d of %d: %s", what, c->rank, c->world, err);
    return dsc__comm_fail(c, DSC_ERR_COMM, "MPI error in %s (collective #%lld %s) on rank %d of %d: %s", what,
                          (long long)coll->d.seq, dsc__comm_desc_str(&coll->d, d, sizeof d), c->rank, c->world, err);
}

static MPI_Datatype mpi_type(dsc_dtype_t dt) {
    switch (dt) {
    case DSC_F32: return MPI_FLOAT;
    case DSC_F64: return MPI_DOUBLE;
    case DSC_I32: return MPI_INT32_T;
    default: return MPI_UINT16_T; /* f16, bf16: moved as bits */
    }
}

static bool is16(dsc_dtype_t dt) { return dt == DSC_F16 || dt == DSC_BF16; }

/* Answers every pending timeout query with this rank's latest collective. */
static void serve_queries(dsc_comm_t *c) {
    mpi_impl_t *m = c->impl;
    for (int guard = 0; guard < 4096; guard++) {
        int flag = 0;
        MPI_Status st;
        if (MPI_Iprobe(MPI_ANY_SOURCE, TAG_QUERY, m->side, &flag, &st) != MPI_SUCCESS || !flag) return;
        int64_t q = 0;
        if (MPI_Recv(&q, 1, MPI_INT64_T, st.MPI_SOURCE, TAG_QUERY, m->side, MPI_STATUS_IGNORE) != MPI_SUCCESS) return;
        dsc__comm_desc_t reply = c->latest;
        MPI_Send(&reply, (int)sizeof reply, MPI_BYTE, st.MPI_SOURCE, TAG_REPLY, m->side);
    }
}

/* Host memory for a bounce buffer (counted as DSC_MEM_COMM): pinned where the device
 * offers it, else (or when pinning fails) plain. */
static void *stage_alloc(dsc_comm_t *c, size_t cap, bool *pinned) {
    dsc_device_t *dev = dsc__ctx_device(c->ctx);
    *pinned = false;
    if (dev->table && dev->table->host_alloc_pinned) {
        void *p = dev->table->host_alloc_pinned(dev, cap);
        if (p) {
            dsc__mem_add(c->ctx, DSC_MEM_COMM, cap);
            *pinned = true;
            return p;
        }
    }
    return dsc__host_alloc(c->ctx, DSC_MEM_COMM, cap);
}

static void stage_release(dsc_comm_t *c, stage_buf_t *b) {
    if (!b->p) return;
    if (b->pinned) {
        dsc__dev_host_free_pinned(c->ctx, b->p, b->cap);
        dsc__mem_sub(c->ctx, DSC_MEM_COMM, b->cap);
    } else {
        dsc__host_free(c->ctx, DSC_MEM_COMM, b->p, b->cap);
    }
    b->p = NULL;
    b->cap = 0;
}

void dsc__comm_mpi_serve(dsc_comm_t *c) {
    if (c && c->impl) serve_queries(c);
}

/* A free pool slot of at least n_bytes, marked busy: the smallest that fits, else a free
 * one grown, else a new one. -1 when out of memory (recorded on the context). */
static int stage_take(dsc_comm_t *c, size_t n_bytes) {
    mpi_impl_t *m = c->impl;
    int fit = -1, grow = -1;
    for (size_t i = 0; i < m->n_stage; i++) {
        const stage_buf_t *b = &m->stage[i];
        if (b->busy) continue;
        if (b->cap >= n_bytes && (fit < 0 || b->cap < m->stage[fit].cap)) fit = (int)i;
        if (grow < 0 || b->cap > m->stage[grow].cap) grow = (int)i;
    }
    if (fit >= 0) {
        m->stage[fit].busy = true;
        return fit;
    }
    if (grow < 0) {
        stage_buf_t *s = realloc(m->stage, (m->n_stage + 1) * sizeof *s);
        if (!s) return -1;
        m->stage = s;
        grow = (int)m->n_stage++;
        m->stage[grow] = (stage_buf_t){NULL, 0, false, false};
    }
    stage_buf_t *b = &m->stage[grow];
    const size_t cap = (n_bytes + 4095) / 4096 * 4096;
    bool pinned = false;
    void *p = stage_alloc(c, cap, &pinned);
    if (!p) return -1;
    stage_release(c, b);
    b->p = p;
    b->cap = cap;
    b->busy = true;
    b->pinned = pinned;
    return grow;
}

static void free_tmp(dsc_comm_t *c, mpi_coll_t *mc) {
    /* alloc_f32 counts at least one element */
    if (mc->tmp_in) dsc__host_free(c->ctx, DSC_MEM_COMM, mc->tmp_in, (mc->tmp_in_n ? mc->tmp_in_n : 1) * sizeof(float));
    if (mc->tmp_out) dsc__host_free(c->ctx, DSC_MEM_COMM, mc->tmp_out, (mc->tmp_out_n ? mc->tmp_out_n : 1) * sizeof(float));
    mc->tmp_in = mc->tmp_out = NULL;
    free(mc->counts);
    mc->counts = NULL;
    mpi_impl_t *m = c->impl;
    if (mc->stage_a >= 0) m->stage[mc->stage_a].busy = false;
    if (mc->stage_b >= 0) m->stage[mc->stage_b].busy = false;
    mc->stage_a = mc->stage_b = -1;
}

/* Host f32 temporaries of the 16-bit reductions (MPI reads them). */
static float *alloc_f32(dsc_comm_t *c, size_t n) {
    return dsc__host_alloc(c->ctx, DSC_MEM_COMM, (n ? n : 1) * sizeof(float));
}

static bool overlaps(const char *a, size_t na, const char *b, size_t nb) { return a < b + nb && b < a + na; }

/* The host buffers MPI gets for send (s_bytes) and recv (r_bytes): the caller's own when
 * the host may touch them (zero copy), else pool bounce buffers, with send's bytes copied
 * in when copy_in (one buffer over both ranges when they overlap: the in-place forms keep
 * their layout). A device recv is copied back on completion when copy_out. */
static dsc_status_t stage_in(dsc_comm_t *c, mpi_coll_t *mc, const dsc__coll_t *coll, size_t s_bytes, size_t r_bytes,
                             bool copy_in, bool copy_out, const void **host_send, void **host_recv) {
    mpi_impl_t *m = c->impl;
    const char *s = coll->send;
    char *r = coll->recv;
    *host_send = s;
    *host_recv = r;
    const bool s_dev = s_bytes && !dsc__dev_host_accessible(c->ctx, s);
    const bool r_dev = r_bytes && !dsc__dev_host_accessible(c->ctx, r);
    if (!s_dev && !r_dev) return DSC_OK;
    dsc_status_t st = DSC_OK;
    if (s_dev && r_dev && overlaps(s, s_bytes, r, r_bytes)) {
        const char *lo = s < r ? s : r, *hi = s + s_bytes > r + r_bytes ? s + s_bytes : r + r_bytes;
        if ((mc->stage_a = stage_take(c, (size_t)(hi - lo))) < 0) return DSC_ERR_NOMEM;
        char *h = m->stage[mc->stage_a].p;
        *host_send = h + (s - lo);
        *host_recv = h + (r - lo);
    } else {
        if (s_dev) {
            if ((mc->stage_a = stage_take(c, s_bytes)) < 0) return DSC_ERR_NOMEM;
            *host_send = m->stage[mc->stage_a].p;
        }
        if (r_dev) {
            if ((mc->stage_b = stage_take(c, r_bytes)) < 0) return DSC_ERR_NOMEM;
            *host_recv = m->stage[mc->stage_b].p;
        }
    }
    if (s_dev && copy_in) st = dsc__dev_to_host(c->ctx, (void *)*host_send, s, s_bytes);
    if (r_dev && copy_out) {
        mc->out_dev = r;
        mc->out_host = *host_recv;
        mc->out_bytes = r_bytes;
    }
    return st;
}

static dsc_status_t mpi_start(dsc_comm_t *c, dsc__coll_t *coll) {
    mpi_impl_t *m = c->impl;
    const dsc__comm_desc_t *d = &coll->d;
    char ds[160];
    if (d->count > INT_MAX)
        return dsc__comm_fail(c, DSC_ERR_UNSUPPORTED,
                              "collective #%lld %s: the MPI backend takes at most %d elements per call; split it",
                              (long long)d->seq, dsc__comm_desc_str(d, ds, sizeof ds), INT_MAX);
    mpi_coll_t *mc = calloc(1, sizeof *mc);
    if (!mc) return dsc__comm_fail(c, DSC_ERR_NOMEM, "out of memory starting collective #%lld", (long long)d->seq);
    mc->req = MPI_REQUEST_NULL;
    mc->stage_a = mc->stage_b = -1;
    MPI_Comm comm = coll->stream == DSC__STREAM_CHECK ? m->check : coll->stream == DSC__STREAM_FREE ? m->fin : m->comm;
    dsc_dtype_t dt = (dsc_dtype_t)d->dtype;
    int n = (int)d->count;
    size_t es = dsc_dtype_size(dt), bytes = (size_t)n * es, w = (size_t)c->world;
    MPI_Op op = d->redop == DSC_REDUCE_MAX ? MPI_MAX : MPI_SUM;
    MPI_Datatype t = mpi_type(dt);
    int rc = MPI_SUCCESS;
    const char *what = "?";
    /* Bytes MPI reads from send and writes to recv. */
    size_t s_bytes = bytes, r_bytes = bytes;
    bool copy_in = true, copy_out = true;
    switch ((dsc_comm_op_t)d->op) {
    case DSC_COMM_REDUCE_SCATTER: s_bytes = bytes * w; break;
    case DSC_COMM_REDUCE_SCATTER_V: r_bytes = (size_t)coll->counts[c->rank] * es; break;
    case DSC_COMM_ALLGATHER: r_bytes = bytes * w; break;
    case DSC_COMM_BROADCAST: /* one buffer: the root's goes out, the others' come in */
        copy_in = (int)d->root == c->rank;
        copy_out = !copy_in;
        break;
    case DSC_COMM_ALLREDUCE: break;
    default: s_bytes = r_bytes = 0; break;
    }
    const void *send = NULL;
    void *recv = NULL;
    dsc_status_t sst = stage_in(c, mc, coll, s_bytes, r_bytes, copy_in, copy_out, &send, &recv);
    if (sst != DSC_OK) {
        free_tmp(c, mc);
        free(mc);
        if (sst == DSC_ERR_NOMEM) goto nomem_stage;
        return dsc__comm_fail(c, sst,
                              "collective #%lld %s on rank %d: copying the send buffer from device %s failed: %s",
                              (long long)d->seq, dsc__comm_desc_str(d, ds, sizeof ds), c->rank,
                              dsc_ctx_device_name(c->ctx), dsc_ctx_errmsg(c->ctx));
    }
    mc->host_recv = recv;
    switch ((dsc_comm_op_t)d->op) {
    case DSC_COMM_ALLREDUCE:
        what = "MPI_Iallreduce";
        if (is16(dt)) {
            mc->tmp_in_n = (size_t)n;
            if (!(mc->tmp_in = alloc_f32(c, mc->tmp_in_n))) goto nomem;
            dsc_convert(mc->tmp_in, DSC_F32, send, dt, (size_t)n);
            rc = MPI_Iallreduce(MPI_IN_PLACE, mc->tmp_in, n, MPI_FLOAT, op, comm, &mc->req);
        } else {
            rc = MPI_Iallreduce(send == recv ? MPI_IN_PLACE : send, recv, n, t, op, comm, &mc->req);
        }
        break;
    case DSC_COMM_REDUCE_SCATTER:
        what = "MPI_Ireduce_scatter_block";
        if (is16(dt)) {
            mc->tmp_in_n = (size_t)n * w;
            mc->tmp_out_n = (size_t)n;
            if (!(mc->tmp_in = alloc_f32(c, mc->tmp_in_n)) || !(mc->tmp_out = alloc_f32(c, mc->tmp_out_n)))
                goto nomem;
            dsc_convert(mc->tmp_in, DSC_F32, send, dt, mc->tmp_in_n);
            rc = MPI_Ireduce_scatter_block(mc->tmp_in, mc->tmp_out, n, MPI_FLOAT, MPI_SUM, comm, &mc->req);
        } else if ((const char *)recv == (const char *)send + (size_t)c->rank * bytes && bytes) {
            /* In place: MPI leaves the result at the start of the buffer. */
            rc = MPI_Ireduce_scatter_block(MPI_IN_PLACE, (void *)send, n, t, MPI_SUM, comm, &mc->req);
            mc->move_dst = recv;
            mc->move_src = send;
            mc->move_bytes = bytes;
        } else {
            rc = MPI_Ireduce_scatter_block(send, recv, n, t, MPI_SUM, comm, &mc->req);
        }
        break;
    case DSC_COMM_REDUCE_SCATTER_V: {
        what = "MPI_Ireduce_scatter";
        if (!(mc->counts = malloc(sizeof *mc->counts * w))) goto nomem;
        for (size_t q = 0; q < w; q++) mc->counts[q] = (int)coll->counts[q];
        const size_t mine = (size_t)coll->counts[c->rank], off = (size_t)dsc__comm_v_offset(coll->counts, c->rank);
        if (is16(dt)) {
            mc->tmp_in_n = (size_t)n;
            mc->tmp_out_n = mine;
            if (!(mc->tmp_in = alloc_f32(c, mc->tmp_in_n)) || !(mc->tmp_out = alloc_f32(c, mc->tmp_out_n))) goto nomem;
            dsc_convert(mc->tmp_in, DSC_F32, send, dt, mc->tmp_in_n);
            rc = MPI_Ireduce_scatter(mc->tmp_in, mc->tmp_out, mc->counts, MPI_FLOAT, MPI_SUM, comm, &mc->req);
        } else if ((const char *)recv == (const char *)send + off * es && n) {
            rc = MPI_Ireduce_scatter(MPI_IN_PLACE, (void *)send, mc->counts, t, MPI_SUM, comm, &mc->req);
            mc->move_dst = recv;
            mc->move_src = send;
            mc->move_bytes = mine * es;
        } else {
            rc = MPI_Ireduce_scatter(send, recv, mc->counts, t, MPI_SUM, comm, &mc->req);
        }
        break;
    }
    case DSC_COMM_ALLGATHER:
        what = "MPI_Iallgather";
        if (bytes && (const char *)send == (const char *)recv + (size_t)c->rank * bytes)
            rc = MPI_Iallgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, recv, n, t, comm, &mc->req);
        else
            rc = MPI_Iallgather(send, n, t, recv, n, t, comm, &mc->req);
        break;
    case DSC_COMM_BROADCAST:
        what = "MPI_Ibcast";
        rc = MPI_Ibcast(recv, n, t, (int)d->root, comm, &mc->req);
        break;
    default:
        what = "MPI_Ibarrier";
        rc = MPI_Ibarrier(comm, &mc->req);
        break;
    }
    if (rc != MPI_SUCCESS) {
        free_tmp(c, mc);
        free(mc);
        return mpi_fail(c, rc, what, coll);
    }
    coll->impl = mc;
    return DSC_OK;
nomem:
    free_tmp(c, mc);
    free(mc);
    return dsc__comm_fail(c, DSC_ERR_NOMEM, "out of memory for the f32 buffers of collective #%lld %s",
                          (long long)d->seq, dsc__comm_desc_str(d, ds, sizeof ds));
nomem_stage:
    return dsc__comm_fail(c, DSC_ERR_NOMEM, "out of memory for the host bounce buffers of collective #%lld %s",
                          (long long)d->seq, dsc__comm_desc_str(d, ds, sizeof ds));
}

static dsc_status_t mpi_test(dsc_comm_t *c, dsc__coll_t *coll, bool *done) {
    mpi_coll_t *mc = coll->impl;
    serve_queries(c);
    int flag = 0;
    int rc = MPI_Test(&mc->req, &flag, MPI_STATUS_IGNORE);
    if (rc != MPI_SUCCESS) return mpi_fail(c, rc, "MPI_Test", coll);
    if (!flag) {
        *done = false;
        return DSC_OK;
    }
    dsc_dtype_t dt = (dsc_dtype_t)coll->d.dtype;
    if (coll->d.op == DSC_COMM_ALLREDUCE && is16(dt))
        dsc_convert(mc->host_recv, dt, mc->tmp_in, DSC_F32, mc->tmp_in_n);
    else if ((coll->d.op == DSC_COMM_REDUCE_SCATTER || coll->d.op == DSC_COMM_REDUCE_SCATTER_V) && is16(dt))
        dsc_convert(mc->host_recv, dt, mc->tmp_out, DSC_F32, mc->tmp_out_n);
    if (mc->move_bytes && mc->move_dst != mc->move_src) memmove(mc->move_dst, mc->move_src, mc->move_bytes);
    if (mc->out_bytes && dsc__dev_from_host(c->ctx, mc->out_dev, mc->out_host, mc->out_bytes) != DSC_OK) {
        char ds[160];
        return dsc__comm_fail(c, DSC_ERR_COMM,
                              "collective #%lld %s on rank %d: copying the result to device %s failed: %s",
                              (long long)coll->d.seq, dsc__comm_desc_str(&coll->d, ds, sizeof ds), c->rank,
                              dsc_ctx_device_name(c->ctx), dsc_ctx_errmsg(c->ctx));
    }
    *done = true;
    return DSC_OK;
}

static void mpi_pause(dsc_comm_t *c, dsc__coll_t *coll, unsigned attempt, double max_s) {
    (void)c;
    (void)coll;
    dsc__comm_backoff(attempt, max_s);
}

static void mpi_release(dsc_comm_t *c, dsc__coll_t *coll, bool completed) {
    mpi_coll_t *mc = coll->impl;
    if (!mc) return;
    /* An abandoned request may still write its buffers: keep the temporaries (the job is
     * aborting; MPI cannot cancel a collective). */
    if (completed || mc->req == MPI_REQUEST_NULL) free_tmp(c, mc);
    free(mc);
    coll->impl = NULL;
}

static void mpi_peers(dsc_comm_t *c, const dsc__coll_t *coll, dsc__peer_t *peers, double grace_s) {
    mpi_impl_t *m = c->impl;
    int w = c->world;
    peers[c->rank].kind = DSC__PEER_KNOWN;
    peers[c->rank].latest = c->latest;
    if (w == 1) return;
    dsc__comm_desc_t *replies = calloc((size_t)w, sizeof *replies);
    MPI_Request *rr = calloc((size_t)w, sizeof *rr), *sr = calloc((size_t)w, sizeof *sr);
    if (!replies || !rr || !sr) {
        free(replies);
        free(rr);
        free(sr);
        return;
    }
    m->query_seq = coll->d.seq;
    for (int p = 0; p < w; p++) {
        rr[p] = sr[p] = MPI_REQUEST_NULL;
        if (p == c->rank) continue;
        MPI_Irecv(&replies[p], (int)sizeof replies[p], MPI_BYTE, p, TAG_REPLY, m->side, &rr[p]);
        MPI_Isend(&m->query_seq, 1, MPI_INT64_T, p, TAG_QUERY, m->side, &sr[p]);
    }
    double deadline = dsc__comm_now() + grace_s;
    for (unsigned attempt = 0;; attempt++) {
        int pending = 0;
        for (int p = 0; p < w; p++) {
            if (rr[p] == MPI_REQUEST_NULL) continue;
            int flag = 0;
            if (MPI_Test(&rr[p], &flag, MPI_STATUS_IGNORE) == MPI_SUCCESS && flag) {
                peers[p].kind = DSC__PEER_KNOWN;
                peers[p].latest = replies[p];
            } else {
                pending++;
            }
        }
        serve_queries(c);
        double now = dsc__comm_now();
        if (!pending || now >= deadline) break;
        dsc__comm_backoff(attempt, deadline - now);
    }
    for (int p = 0; p < w; p++) {
        if (rr[p] != MPI_REQUEST_NULL) {
            MPI_Cancel(&rr[p]);
            MPI_Wait(&rr[p], MPI_STATUS_IGNORE);
        }
        if (sr[p] != MPI_REQUEST_NULL) {
            int flag = 0;
            MPI_Test(&sr[p], &flag, MPI_STATUS_IGNORE);
            if (!flag) MPI_Request_free(&sr[p]);
        }
    }
    free(replies);
    free(rr);
    free(sr);
}

static void mpi_abort(dsc_comm_t *c, int errorcode) {
    mpi_impl_t *m = c->impl;
    fflush(stdout);
    fflush(stderr);
    MPI_Abort(m->comm != MPI_COMM_NULL ? m->comm : MPI_COMM_WORLD, errorcode);
}

static void mpi_destroy(dsc_comm_t *c) {
    mpi_impl_t *m = c->impl;
    if (!m) return;
    int fin = 0;
    MPI_Finalized(&fin);
    if (!fin) {
        if (m->comm != MPI_COMM_NULL) MPI_Comm_free(&m->comm);
        if (m->check != MPI_COMM_NULL) MPI_Comm_free(&m->check);
        if (m->fin != MPI_COMM_NULL) MPI_Comm_free(&m->fin);
        if (m->side != MPI_COMM_NULL) MPI_Comm_free(&m->side);
        if (m->we_initialized) MPI_Finalize();
    }
    for (size_t i = 0; i < m->n_stage; i++) stage_release(c, &m->stage[i]);
    free(m->stage);
    free(m);
    c->impl = NULL;
}

static bool mpi_wants_free_barrier(const dsc_comm_t *c) {
    const mpi_impl_t *m = c->impl;
    return m && m->we_initialized && c->world > 1;
}

static const dsc__comm_vtable_t mpi_vtable = {
    "mpi", mpi_start, mpi_test, mpi_pause, mpi_release, mpi_peers, mpi_abort, mpi_destroy, mpi_wants_free_barrier,
    NULL, NULL, NULL,
};

/* A non-negative integer from the environment, or -1. */
static int env_int(const char *name) {
    const char *s = getenv(name);
    if (!s || !*s) return -1;
    char *end = NULL;
    long v = strtol(s, &end, 10);
    if (*end || v < 0 || v > INT_MAX) return -1;
    return (int)v;
}

/* A duplicate of MPI_COMM_WORLD, made with MPI_Comm_idup and polled until `deadline`: a
 * rank that never gets here must not leave the others blocked in MPI_Comm_dup. On a
 * timeout the job aborts (as for any collective) with a message. */
static dsc_status_t dup_comm(dsc_comm_t *c, MPI_Comm *out, double start, double deadline) {
    MPI_Request req = MPI_REQUEST_NULL;
    int rc = MPI_Comm_idup(MPI_COMM_WORLD, out, &req);
    for (unsigned attempt = 0; rc == MPI_SUCCESS; attempt++) {
        int flag = 0;
        rc = MPI_Test(&req, &flag, MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS || flag) break;
        double now = dsc__comm_now();
        if (now >= deadline) {
            dsc_status_t st = dsc__comm_fail(
                c, DSC_ERR_TIMEOUT,
                "dsc_comm_new_mpi on rank %d of %d timed out after %.3g s waiting for every rank to create its "
                "communicator (MPI_Comm_idup of MPI_COMM_WORLD): some rank never reached it (it failed or is still "
                "busy before it)",
                c->rank, c->world, now - start);
            c->aborted = true;
            fflush(stdout);
            fflush(stderr);
            MPI_Abort(MPI_COMM_WORLD, DSC_COMM_ABORT_CODE);
            return st;
        }
        dsc__comm_backoff(attempt, deadline - now);
    }
    if (rc != MPI_SUCCESS) {
        *out = MPI_COMM_NULL;
        return mpi_fail(c, rc, "MPI_Comm_idup", NULL);
    }
    MPI_Comm_set_errhandler(*out, MPI_ERRORS_RETURN);
    return DSC_OK;
}

dsc_status_t dsc__comm_mpi_init(dsc_comm_t *c) {
    int fin = 0, inited = 0, provided = 0;
    MPI_Finalized(&fin);
    if (fin)
        return dsc_ctx_set_error(c->ctx, DSC_ERR_MISUSE,
                                 "dsc_comm_new_mpi: MPI was already finalised (MPI cannot be initialised twice in a "
                                 "process; keep one MPI communicator for the whole run)");
    mpi_impl_t *m = calloc(1, sizeof *m);
    if (!m) return dsc_ctx_set_error(c->ctx, DSC_ERR_NOMEM, "out of memory creating an MPI communicator");
    m->comm = m->check = m->fin = m->side = MPI_COMM_NULL;
    c->vt = &mpi_vtable;
    c->impl = m;
    MPI_Initialized(&inited);
    if (!inited) {
        int rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
        if (rc != MPI_SUCCESS) return mpi_fail(c, rc, "MPI_Init_thread", NULL);
        m->we_initialized = true;
        /* OpenMPI reports a failed non-blocking collective (MPI_ERR_TRUNCATE when a peer
         * sends more than this rank's count) through MPI_COMM_WORLD's handler: return it to
         * dsc, which names the collective, instead of MPI's fatal abort. */
        MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    } else {
        MPI_Query_thread(&provided);
    }
    if (provided < MPI_THREAD_FUNNELED)
        dsc_ctx_log(c->ctx, DSC_LOG_WARN,
                    "MPI provides thread level %d (< MPI_THREAD_FUNNELED); dsc calls MPI from one thread only, but "
                    "OpenMP threads must never call it",
                    provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &c->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &c->world);
    dsc_status_t st;
    const double start = dsc__comm_now(), deadline = start + c->timeout_s;
    if ((st = dup_comm(c, &m->comm, start, deadline)) != DSC_OK ||
        (st = dup_comm(c, &m->check, start, deadline)) != DSC_OK ||
        (st = dup_comm(c, &m->fin, start, deadline)) != DSC_OK ||
        (st = dup_comm(c, &m->side, start, deadline)) != DSC_OK)
        return st;
    int lr = env_int("OMPI_COMM_WORLD_LOCAL_RANK"), ls = env_int("OMPI_COMM_WORLD_LOCAL_SIZE");
    if (lr < 0 || ls <= lr) {
        lr = env_int("LOCAL_RANK");
        ls = env_int("LOCAL_WORLD_SIZE");
    }
    if (lr < 0 || ls <= lr) {
        MPI_Comm node;
        int rc = MPI_Comm_split_type(m->comm, MPI_COMM_TYPE_SHARED, c->rank, MPI_INFO_NULL, &node);
        if (rc != MPI_SUCCESS) return mpi_fail(c, rc, "MPI_Comm_split_type", NULL);
        MPI_Comm_rank(node, &lr);
        MPI_Comm_size(node, &ls);
        MPI_Comm_free(&node);
    }
    c->local_rank = lr;
    c->local_size = ls;
    return DSC_OK;
}

#endif

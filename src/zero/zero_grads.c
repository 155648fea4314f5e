/* ZeRO-2/3 gradients (zero_internal.h): a buffer per parameter during its layer's backward,
 * then a collective to the owners of its pieces, added into this rank's fp32 gradient
 * partition (acc32).
 *   stage 2: the parameter's flat range overlaps one or more ranks' partitions: a reduce-
 *            scatter with uneven slices, in place (the slices are contiguous, in rank order);
 *   stage 3: the shard*N padded gradient: a reduce-scatter of equal slices into the shard.
 * Stage 1 with overlap_comm sends the same way as stage 2, but only on the boundary
 * micro-step and from the flat buffer the accumulation already lives in (below).
 * With zero_optimization.overlap_comm the collective is non-blocking and the backward goes
 * on; each new send first finishes the older ones that have completed, the sends in flight
 * hold at most reduce_bucket_size elements (older ones are waited for), and the rest are
 * finished at the end of the backward. Sends finish in the order
 * they started, so the additions into acc32 happen in the same order as without overlap:
 * the result is bitwise the same. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/device.h"
#include "zero/zero_internal.h"

typedef struct z3_send {
    z3_param_t *p;
    dsc_comm_request_t *req;
    void *buf;           /* the gradient buffer, detached from p */
    size_t bytes;
    char *mine;          /* this rank's slice inside buf */
    int64_t acc_offset;  /* where it adds into acc32 */
    int64_t count;       /* elements of this rank's slice */
    int64_t elems;       /* elements of the whole buffer */
    int64_t *counts;     /* stages 1-2: the slices (world entries), alive until the wait */
    dsc_dtype_t dtype;   /* of buf: the model's, or f32 (stage 1's fp32 accumulation) */
    bool pooled;         /* buf came from the pool (stages 2-3), not a range of the flat buffers */
} z3_send_t;

dsc_status_t dsc__z3_comm_fail(dsc_zero_t *z, dsc_status_t rc, const char *what, const z3_param_t *p) {
    return dsc__zero_fail(z, rc, "rank %d: ZeRO-3 %s of %s failed: %s", z->rank, what, dsc_tensor_name(p->tensor),
                            dsc_comm_errmsg(z->comm));
}

dsc_status_t dsc__z3_give_grad(dsc_zero_t *z, z3_param_t *p) {
    if (!p->grad) {
        p->grad = dsc__zero_pool_take(z, DSC_MEM_GRADS, dsc__z3_full_bytes(z, p), true);
        if (!p->grad) return dsc_ctx_status(z->ctx);
        p->tensor->grad->data = p->grad;
    }
    p->grad_users++;
    return DSC_OK;
}

void dsc__z3_free_grad(dsc_zero_t *z, z3_param_t *p) {
    dsc__zero_pool_give(z, DSC_MEM_GRADS, p->grad, dsc__z3_full_bytes(z, p));
    p->grad = NULL;
    p->tensor->grad->data = NULL;
}

/* Waits for send s, adds this rank's slice into acc32 and frees the buffer. */
static dsc_status_t finish(dsc_zero_t *z, z3_send_t *s, bool ok) {
    dsc_status_t rc = s->req ? dsc_comm_wait(s->req) : DSC_OK;
    if (rc != DSC_OK)
        rc = dsc__z3_comm_fail(z, rc, z->plan.stage == 3 ? "gradient reduce-scatter" : "gradient reduce to owners", s->p);
    if (rc == DSC_OK && ok && s->count > 0)
        rc = dsc_amp_accumulate(z->ctx, z->acc32 + s->acc_offset, s->mine, s->dtype, (size_t)s->count);
    if (rc == DSC_OK && ok) /* optimizer offload: the sum goes to the host as it lands */
        rc = dsc__zero_mirror_range(z, (int)(s->p - z->p), s->acc_offset, s->count);
    if (s->pooled) dsc__zero_pool_give(z, DSC_MEM_GRADS, s->buf, s->bytes);
    s->p->sends--;
    free(s->counts);
    return rc;
}

/* Finishes the oldest send in flight. */
static dsc_status_t finish_oldest(dsc_zero_t *z, bool ok) {
    z3_send_t s = z->sends[0];
    memmove(z->sends, z->sends + 1, sizeof *z->sends * (size_t)(z->n_sends - 1));
    z->n_sends--;
    z->send_elems -= s.elems;
    return finish(z, &s, ok);
}

dsc_status_t dsc__z3_drain_sends(dsc_zero_t *z, bool ok) {
    dsc_status_t first = DSC_OK;
    while (z && z->n_sends > 0) {
        dsc_status_t rc = finish_oldest(z, ok);
        if (first == DSC_OK) first = rc;
    }
    return first;
}

static dsc_status_t issue(dsc_zero_t *z, z3_send_t *sp);

/* Send s carries the flat range [off, off + len) of s->buf (elements of es bytes) to the
 * owners of its pieces (stages 1-2: uneven slices, in rank order): its counts, this rank's
 * slice and where that adds into acc32. */
static dsc_status_t owner_slices(dsc_zero_t *z, z3_send_t *s, int64_t off, int64_t len, size_t es) {
    const int N = z->world_size;
    s->counts = malloc(sizeof *s->counts * (size_t)N);
    if (!s->counts) return dsc__zero_fail(z, DSC_ERR_NOMEM, "out of memory sending %s", dsc_tensor_name(s->p->tensor));
    int64_t before = 0;
    for (int q = 0; q < N; q++) {
        s->counts[q] = dsc_zero_plan_overlap(&z->plan, q, off, len, NULL);
        if (q < z->rank) before += s->counts[q];
    }
    s->mine = (char *)s->buf + (size_t)before * es;
    s->count = s->counts[z->rank];
    s->acc_offset = off + before - z->plan.begin;
    return DSC_OK;
}

dsc_status_t dsc__z3_send_grad(dsc_zero_t *z, z3_param_t *p) {
    const size_t ms = dsc__z3_msize(z);
    z3_send_t s = {p, NULL, p->grad, dsc__z3_full_bytes(z, p), NULL, 0, 0, 0, NULL, z->model_dtype, true};
    s.elems = (int64_t)(s.bytes / ms);
    if (z->plan.stage == 2) { /* the flat range to the owners of its pieces (uneven slices) */
        dsc_status_t rc = owner_slices(z, &s, p->offset, p->numel, ms);
        if (rc != DSC_OK) return rc;
    } else { /* stage 3: equal slices of shard*N */
        s.mine = (char *)p->grad + (size_t)z->rank * (size_t)p->shard * ms;
        s.count = p->shard;
        s.acc_offset = p->local;
    }
    /* The buffer now belongs to the send: a later use of p (the tied embedding) gets a new one. */
    p->grad = NULL;
    p->tensor->grad->data = NULL;
    return issue(z, &s);
}

/* Starts send s (blocking without overlap_comm: then finished at once) and keeps it in
 * flight, oldest first. */
static dsc_status_t issue(dsc_zero_t *z, z3_send_t *sp) {
    const int N = z->world_size;
    z3_send_t s = *sp;
    z3_param_t *p = s.p;
    p->sends++;
    dsc_status_t rc = DSC_OK;
    const bool async = z->overlap && N > 1;
    if (N > 1) {
        rc = s.counts ? (async ? dsc_comm_ireduce_scatter_v(z->comm, s.buf, s.mine, s.counts, s.dtype, &s.req)
                               : dsc_comm_reduce_scatter_v(z->comm, s.buf, s.mine, s.counts, s.dtype))
                      : (async ? dsc_comm_ireduce_scatter(z->comm, s.buf, s.mine, (size_t)s.count, s.dtype, &s.req)
                               : dsc_comm_reduce_scatter(z->comm, s.buf, s.mine, (size_t)s.count, s.dtype));
    }
    if (rc != DSC_OK || !async) {
        if (rc != DSC_OK) s.req = NULL;
        dsc_status_t fr = finish(z, &s, rc == DSC_OK);
        return rc != DSC_OK ? dsc__z3_comm_fail(z, rc, "gradient send", p) : fr;
    }
    /* Sends that have completed meanwhile are finished now, oldest first (their buffers go
     * back early); then at most reduce_bucket_size elements stay in flight (DeepSpeed's
     * bucket): older ones are waited for. */
    while (z->n_sends > 0) {
        bool done = false;
        if (dsc_comm_test(z->sends[0].req, &done) != DSC_OK || !done) break;
        dsc_status_t fr = finish_oldest(z, true);
        if (fr != DSC_OK) {
            finish(z, &s, false);
            return fr;
        }
    }
    while (z->n_sends > 0 && z->send_elems + s.elems > z->send_limit) {
        dsc_status_t fr = finish_oldest(z, true);
        if (fr != DSC_OK) {
            finish(z, &s, false);
            return fr;
        }
    }
    if (z->n_sends == z->cap_sends) {
        int cap = z->cap_sends ? 2 * z->cap_sends : 16;
        z3_send_t *v = realloc(z->sends, sizeof *v * (size_t)cap);
        if (!v) return finish(z, &s, true); /* finished at once instead */
        z->sends = v;
        z->cap_sends = cap;
    }
    z->sends[z->n_sends++] = s;
    z->send_elems += s.elems;
    return DSC_OK;
}

/* ---- stage 1 with overlap_comm ------------------------------------------------------
 * Stage 1 accumulates every micro-step's gradients in full on each rank (grads, model dtype;
 * with fp32 accumulation of 16-bit gradients, added into full_acc32 after each backward) and
 * reduces them once, on the boundary micro-step. Without overlap_comm that reduction is one
 * reduce-scatter of the whole flat buffer after the boundary backward (zero_state.c). With it,
 * each parameter's flat range is reduced to the owners of its pieces (the stage-2 collective)
 * as soon as the boundary backward is done with it: when its backward uses (parameter scopes
 * released after backward) reach the number the last micro-step had, so the tied embedding
 * waits for its second use. A parameter used outside any scope, or not used at all, is sent
 * at the end of the backward. The last parameter's range runs on to P, so the padding
 * travels too: per rank the bytes are those of the one reduce-scatter, (P - k) elements.
 * Every element is summed over ranks exactly once and added once into the zeroed acc32, in
 * rank order as before: the result is bitwise that of the blocking reduction wherever the
 * communicator's per-element sum does not depend on how the buffer is cut (the fake and MPI
 * backends; any backend at 2 ranks). */

static void z1_range(const dsc_zero_t *z, const z3_param_t *p, int64_t *offset, int64_t *len) {
    *offset = p->offset;
    *len = p - z->p == z->z1_tail ? z->plan.padded - p->offset : p->numel;
}

/* The sources of p's range: zeroed (its send finished first). */
static dsc_status_t z1_clear(dsc_zero_t *z, const z3_param_t *p) {
    int64_t off, len;
    z1_range(z, p, &off, &len);
    dsc__dev_zero(z->ctx, (char *)z->grads + (size_t)off * dsc__z3_msize(z), (size_t)len * dsc__z3_msize(z));
    if (z->full_acc32) dsc__dev_zero(z->ctx, z->full_acc32 + off, (size_t)len * 4);
    return dsc_ctx_status(z->ctx);
}

/* p's accumulated range to its owners (non-blocking), added into acc32 when it finishes. */
static dsc_status_t z1_send(dsc_zero_t *z, z3_param_t *p) {
    int64_t off, len;
    z1_range(z, p, &off, &len);
    p->z1_sent = true;
    if (len <= 0) return DSC_OK;
    const bool wide = z->full_acc32 != NULL;
    const dsc_dtype_t dt = wide ? DSC_F32 : z->model_dtype;
    const size_t es = dsc_dtype_size(dt);
    if (wide) { /* this backward's 16-bit part into the fp32 sums first (as after a non-boundary backward) */
        dsc_status_t rc = dsc_amp_accumulate(z->ctx, z->full_acc32 + off, (char *)z->grads + (size_t)off * dsc__z3_msize(z),
                                             z->model_dtype, (size_t)len);
        if (rc != DSC_OK) return rc;
    }
    z3_send_t s = {p, NULL, NULL, (size_t)len * es, NULL, 0, 0, len, NULL, dt, false};
    s.buf = wide ? (void *)(z->full_acc32 + off) : (void *)((char *)z->grads + (size_t)off * es);
    dsc_status_t rc = owner_slices(z, &s, off, len, es);
    return rc == DSC_OK ? issue(z, &s) : rc;
}

dsc_status_t dsc__z1_give_grad(dsc_zero_t *z, z3_param_t *p) {
    if (p->z1_sent && z->boundary) {
        /* Used once more than in the last micro-step after its range was sent: the send is
         * finished and the range cleared, the new part is sent again at the end of the
         * backward (correct, but it rounds like two reductions instead of one). */
        dsc_ctx_log(z->ctx, DSC_LOG_DEBUG, "ZeRO-1 overlap_comm: %s has more backward uses than in the last "
                    "micro-step; its gradient is reduced in two parts", dsc_tensor_name(p->tensor));
        dsc_status_t rc = dsc__z3_drain_sends(z, true);
        if (rc == DSC_OK) rc = z1_clear(z, p);
        if (rc != DSC_OK) return rc;
        p->z1_sent = false;
    }
    p->grad_users++;
    return DSC_OK;
}

dsc_status_t dsc__z1_backward_done(dsc_zero_t *z, z3_param_t *p) {
    p->bwd_uses++;
    if (!z->boundary || p->unscoped || p->z1_sent || p->bwd_uses != p->bwd_expected) return DSC_OK;
    return z1_send(z, p);
}

dsc_status_t dsc__z1_end_backward(dsc_zero_t *z, bool ok) {
    dsc_status_t rc = DSC_OK;
    const size_t P = (size_t)z->plan.padded, ms = dsc__z3_msize(z);
    if (ok && z->boundary) {
        z->mirror_all = z->mirror != NULL; /* every range went to the host mirror as it landed */
        for (int i = 0; i < z->n && rc == DSC_OK; i++)
            if (!z->p[i].z1_sent) rc = z1_send(z, &z->p[i]);
        dsc_status_t dr = dsc__z3_drain_sends(z, rc == DSC_OK);
        if (rc == DSC_OK) rc = dr;
        /* the sources are consumed: zeroed now, not again at the step's end */
        dsc__dev_zero(z->ctx, z->grads, P * ms);
        if (z->full_acc32) dsc__dev_zero(z->ctx, z->full_acc32, P * 4);
        if (rc == DSC_OK) rc = dsc_ctx_status(z->ctx);
        if (rc == DSC_OK) {
            z->reduced_clean |= REDUCED_GRADS | (z->full_acc32 ? REDUCED_FULL_ACC32 : 0u);
            z->z1_reduced = true;
        }
    } else if (ok) { /* not the boundary: accumulate as without overlap */
        if (z->full_acc32) {
            rc = dsc_amp_accumulate(z->ctx, z->full_acc32, z->grads, z->model_dtype, P);
            dsc__dev_zero(z->ctx, z->grads, P * ms);
        }
        z->z1_reduced = false; /* gradients wait in the sources again */
    } else {
        rc = dsc__z3_drain_sends(z, false);
    }
    for (int i = 0; i < z->n; i++) {
        z3_param_t *p = &z->p[i];
        if (ok) p->bwd_expected = p->bwd_uses;
        p->bwd_uses = 0;
        p->z1_sent = false;
    }
    return rc;
}

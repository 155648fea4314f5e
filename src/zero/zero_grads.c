/* ZeRO-2/3 gradients (zero_internal.h): a buffer per parameter during its layer's backward,
 * then a collective to the owners of its pieces, added into this rank's fp32 gradient
 * partition (acc32).
 *   stage 2: the parameter's flat range overlaps one or more ranks' partitions: a reduce-
 *            scatter with uneven slices, in place (the slices are contiguous, in rank order);
 *   stage 3: the shard*N padded gradient: a reduce-scatter of equal slices into the shard.
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
    int64_t *counts;     /* stage 2: the slices (world entries), alive until the wait */
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
        rc = dsc__z3_comm_fail(z, rc, z->plan.stage == 2 ? "gradient reduce to owners" : "gradient reduce-scatter", s->p);
    if (rc == DSC_OK && ok && s->count > 0)
        rc = dsc_amp_accumulate(z->ctx, z->acc32 + s->acc_offset, s->mine, z->model_dtype, (size_t)s->count);
    if (rc == DSC_OK && ok) /* optimizer offload: the sum goes to the host as it lands */
        rc = dsc__zero_mirror_range(z, (int)(s->p - z->p), s->acc_offset, s->count);
    dsc__zero_pool_give(z, DSC_MEM_GRADS, s->buf, s->bytes);
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

dsc_status_t dsc__z3_send_grad(dsc_zero_t *z, z3_param_t *p) {
    const int N = z->world_size;
    const size_t ms = dsc__z3_msize(z);
    z3_send_t s = {p, NULL, p->grad, dsc__z3_full_bytes(z, p), NULL, 0, 0, 0, NULL};
    s.elems = (int64_t)(s.bytes / ms);
    if (z->plan.stage == 2) { /* the flat range to the owners of its pieces (uneven slices) */
        s.counts = malloc(sizeof *s.counts * (size_t)N);
        if (!s.counts) return dsc__zero_fail(z, DSC_ERR_NOMEM, "out of memory sending %s", dsc_tensor_name(p->tensor));
        int64_t before = 0;
        for (int q = 0; q < N; q++) {
            s.counts[q] = dsc_zero_plan_overlap(&z->plan, q, p->offset, p->numel, NULL);
            if (q < z->rank) before += s.counts[q];
        }
        s.mine = (char *)p->grad + (size_t)before * ms;
        s.count = s.counts[z->rank];
        s.acc_offset = p->offset + before - z->plan.begin;
    } else { /* stage 3: equal slices of shard*N */
        s.mine = (char *)p->grad + (size_t)z->rank * (size_t)p->shard * ms;
        s.count = p->shard;
        s.acc_offset = p->local;
    }
    /* The buffer now belongs to the send: a later use of p (the tied embedding) gets a new one. */
    p->grad = NULL;
    p->tensor->grad->data = NULL;
    p->sends++;
    dsc_status_t rc = DSC_OK;
    const bool async = z->overlap && N > 1;
    if (N > 1) {
        rc = z->plan.stage == 2
                 ? (async ? dsc_comm_ireduce_scatter_v(z->comm, s.buf, s.mine, s.counts, z->model_dtype, &s.req)
                          : dsc_comm_reduce_scatter_v(z->comm, s.buf, s.mine, s.counts, z->model_dtype))
                 : (async ? dsc_comm_ireduce_scatter(z->comm, s.buf, s.mine, (size_t)s.count, z->model_dtype, &s.req)
                          : dsc_comm_reduce_scatter(z->comm, s.buf, s.mine, (size_t)s.count, z->model_dtype));
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
        if (!v) {
            finish(z, &s, true);
            return DSC_OK; /* finished at once instead */
        }
        z->sends = v;
        z->cap_sends = cap;
    }
    z->sends[z->n_sends++] = s;
    z->send_elems += s.elems;
    return DSC_OK;
}

/* The self backend: a world of one rank. Every collective is a copy (or nothing) and
 * completes when started. */
#include "comm/comm_internal.h"
#include "core/device.h"

static dsc_status_t self_start(dsc_comm_t *c, dsc__coll_t *coll) {
    size_t bytes = (size_t)coll->d.count * dsc_dtype_size((dsc_dtype_t)coll->d.dtype);
    switch ((dsc_comm_op_t)coll->d.op) {
    case DSC_COMM_ALLREDUCE:
    case DSC_COMM_REDUCE_SCATTER: /* world 1: the slice is the whole input */
    case DSC_COMM_ALLGATHER:
    case DSC_COMM_REDUCE_SCATTER_V:
        /* Host or device buffers, each copied by the call that fits (errors are recorded on
         * the context). In-place calls pass the same pointer; distinct buffers do not overlap. */
        if (bytes && coll->send != coll->recv) dsc__comm_copy(c->ctx, coll->recv, coll->send, bytes);
        break;
    default: break; /* broadcast from rank 0 to itself, barrier */
    }
    return DSC_OK;
}

static dsc_status_t self_test(dsc_comm_t *c, dsc__coll_t *coll, bool *done) {
    (void)c;
    (void)coll;
    *done = true;
    return DSC_OK;
}

static void self_pause(dsc_comm_t *c, dsc__coll_t *coll, unsigned attempt, double max_s) {
    (void)c;
    (void)coll;
    dsc__comm_backoff(attempt, max_s);
}

static void self_release(dsc_comm_t *c, dsc__coll_t *coll, bool completed) {
    (void)c;
    (void)coll;
    (void)completed;
}

static void self_peers(dsc_comm_t *c, const dsc__coll_t *coll, dsc__peer_t *peers, double grace_s) {
    (void)coll;
    (void)grace_s;
    peers[0].kind = DSC__PEER_KNOWN;
    peers[0].latest = c->latest;
}

static void self_abort(dsc_comm_t *c, int errorcode) {
    (void)c;
    (void)errorcode;
}

static void self_destroy(dsc_comm_t *c) { (void)c; }

static const dsc__comm_vtable_t self_vtable = {
    "self", self_start, self_test, self_pause, self_release, self_peers, self_abort, self_destroy, NULL, NULL, NULL, NULL,
};

dsc_status_t dsc__comm_self_init(dsc_comm_t *c) {
    c->vt = &self_vtable;
    c->rank = c->local_rank = 0;
    c->world = c->local_size = 1;
    return DSC_OK;
}

/* Private to the engine's ZeRO-2/3 files: the parameter table behind parameter scopes
 * (engine_zero3.c: partitions, gathering, the schedule; engine_zero3_grads.c: gradient
 * buffers and sending them to their owners). */
#ifndef DSC_ENGINE_ZERO3_H
#define DSC_ENGINE_ZERO3_H

#include "engine/engine_internal.h"
#include "zero/zero.h"

typedef struct z3_param {
    dsc_tensor_t *tensor;
    int64_t numel, offset;       /* elements; flat offset */
    int64_t shard, local;        /* stage 3: shard size; offset in the local buffers */
    int live;                    /* scopes (and unscoped uses) holding the gathered values */
    int grad_users;              /* holders of the gradient buffer (backward scopes, unscoped uses) */
    bool persistent;             /* gathered for good */
    bool unscoped;               /* used outside any scope this micro-step */
    bool unscoped_grad;          /* ... with gradients recorded (it holds a gradient buffer) */
    void *full;                  /* shard*N elements of model_dtype, or NULL */
    void *grad;                  /* shard*N elements of model_dtype during backward, or NULL */
    dsc_comm_request_t *inflight; /* a prefetch: full is being gathered */
    int sends;                   /* gradient sends still in flight (overlap_comm) */
    int last_pos;                /* trace position of its latest acquire */
} z3_param_t;

typedef enum { TRACE_RECORDING, TRACE_READY, TRACE_INVALID } z3_trace_state_t;

typedef struct z3_lookup {
    const dsc_tensor_t *tensor;
    int index;
} z3_lookup_t;

struct dsc_zero3 {
    dsc_engine_t *engine;
    int stage;              /* 2 or 3 */
    z3_param_t *p;
    int n;
    z3_lookup_t *by_tensor; /* sorted by tensor address */
    dsc_param_hooks_t hooks;
    int64_t persistent_numel;
    /* The schedule: one micro-step's acquisitions (parameter indices) and, once ready, the
     * elements acquired before each position and each position's next use of the same
     * parameter (-1: none). */
    int *trace, *trace_next;
    int64_t *trace_prefix;
    int trace_len, trace_cap, cursor, prefetch_from;
    z3_trace_state_t trace_state;
    int64_t gathered_elems, inflight_elems; /* non-persistent parameters gathered / in flight */
    int64_t prefetch_bucket, max_live, max_reuse;
    /* overlap_comm: gradient sends in flight, oldest first, and their elements. */
    struct z3_send *sends;
    int n_sends, cap_sends;
    int64_t send_elems, send_limit;
    bool overlap;
};

static inline size_t dsc__z3_msize(const dsc_engine_t *e) { return dsc_dtype_size(e->model_dtype); }
/* Bytes of a parameter's gathered copy and of its gradient buffer: stage 3 pads to shard*N. */
static inline size_t dsc__z3_full_bytes(const dsc_engine_t *e, const z3_param_t *p) {
    if (e->plan.stage == 2) return (size_t)p->numel * dsc__z3_msize(e);
    return (size_t)p->shard * (size_t)e->world_size * dsc__z3_msize(e);
}

dsc_status_t dsc__z3_comm_fail(dsc_engine_t *e, dsc_status_t rc, const char *what, const z3_param_t *p);
/* A zeroed gradient buffer for p (or one more holder of the existing one). */
dsc_status_t dsc__z3_give_grad(dsc_engine_t *e, z3_param_t *p);
void dsc__z3_free_grad(dsc_engine_t *e, z3_param_t *p);
/* p's gradient to its owners, added into acc32; with overlap_comm the collective is left in
 * flight (its buffer detached from p) and finished by a later send or dsc__z3_drain_sends. */
dsc_status_t dsc__z3_send_grad(dsc_engine_t *e, z3_param_t *p);
/* Finishes every send in flight (ok = false: waits without adding, on a failed backward). */
dsc_status_t dsc__z3_drain_sends(dsc_engine_t *e, bool ok);

#endif

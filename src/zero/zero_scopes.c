/* Parameter scopes' ZeRO side: stage 3 (docs/zero.md, spec 5.5-5.6), where every parameter
 * is partitioned on its own, and the gradient half of it for stage 2 (this file runs both);
 * at stage 1 with overlap_comm only the notice that a parameter's backward is done (the
 * sending is zero_grads.c's).
 *
 * Parameter i of n_i elements has shard k_i = ceil(n_i / N); rank r stores elements
 * [r*k_i, min((r+1)*k_i, n_i)) of it, zero-padded to k_i, at offset local_i of its local
 * buffers (local_i = sum of k_j over j < i). params, master, acc32 and the optimizer's
 * moments all have this local layout of n_local = sum k_i elements.
 *
 * Between uses a parameter has no data. Layers wrap their use in parameter scopes
 * (dsc/nn.h), which call acquire / release here: acquire all-gathers the k_i*N elements into
 * a buffer the tensor points at (and, before the layer's backward, gives it a zeroed
 * gradient buffer of the same size); release after backward reduce-scatters the gradient
 * into this rank's shard, adds it into acc32 and frees both buffers. A use count per
 * parameter lets scopes nest and the tied embedding appear twice. Persistent parameters
 * (numel <= stage3_param_persistence_threshold, while the running total stays within
 * stage3_model_persistence_threshold) stay gathered and are re-gathered after each step.
 *
 * Stage 2 keeps the flat layout of stages 1-2 (rank r owns [r*k, (r+1)*k) of the padded
 * flat buffer) and replicated parameters, so a scope gathers nothing; but no full-size
 * gradient buffer exists either: before a layer's backward its parameters get gradient
 * buffers of their own size, and after it each parameter's gradient goes to the ranks
 * whose partitions its flat range overlaps (a reduce-scatter with uneven slices, in
 * place: the slices are contiguous and in rank order), this rank's slice is added into
 * acc32, and the buffer is freed. So a rank holds its gradient partition plus the
 * gradients of the layer in backward.
 *
 * Schedule (spec 5.5): the first micro-step records the order in which parameters are
 * acquired (forward, backward, recomputes); from the next one on, after each acquire the
 * parameters next in that order are all-gathered ahead without waiting, while fewer than
 * stage3_prefetch_bucket_size elements are in flight and stage3_max_live_parameters are
 * gathered; and a parameter whose next use is fewer than stage3_max_reuse_distance elements
 * of acquisitions away is kept gathered instead of released. A use out of the recorded order
 * drops the trace (prefetch stops) and the next micro-step records it again. Every rank runs
 * the same model code, so every rank issues the same collectives in the same order. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/device.h"
#include "zero/zero_internal.h"


static int cmp_lookup(const void *a, const void *b) {
    const z3_lookup_t *x = a, *y = b;
    return x->tensor < y->tensor ? -1 : x->tensor > y->tensor;
}

static z3_param_t *find(dsc_zero_t *z, const dsc_tensor_t *t) {
    z3_lookup_t key = {t, 0};
    const z3_lookup_t *hit = bsearch(&key, z->by_tensor, (size_t)z->n, sizeof key, cmp_lookup);
    if (hit) return &z->p[hit->index];
    dsc_ctx_set_error(z->ctx, DSC_ERR_INVALID, "ZeRO-3: tensor %s is not a parameter of the engine's model",
                      dsc_tensor_name(t));
    return NULL;
}


/* This rank's shard into p->full, then the all-gather (in place: the shard already sits in
 * its slot). */
static dsc_status_t gather_into(dsc_zero_t *z, z3_param_t *p) {
    const size_t ms = dsc__z3_msize(z), k = (size_t)p->shard;
    char *mine = (char *)p->full + (size_t)z->rank * k * ms;
    dsc__z3_shard_in(z, mine, p); /* from host memory with offload_param */
    if (z->world_size == 1) return DSC_OK;
    dsc_status_t rc = dsc_comm_allgather(z->comm, mine, p->full, k, z->model_dtype);
    return rc == DSC_OK ? DSC_OK : dsc__z3_comm_fail(z, rc, "parameter all-gather", p);
}

static int64_t full_elems(const dsc_zero_t *z, const z3_param_t *p) { return p->shard * z->world_size; }

/* A prefetch completes: the values are there. */
static dsc_status_t finish_prefetch(dsc_zero_t *z, z3_param_t *p) {
    dsc_status_t rc = dsc_comm_wait(p->inflight);
    p->inflight = NULL;
    z->inflight_elems -= full_elems(z, p);
    p->tensor->data = p->full;
    return rc == DSC_OK ? DSC_OK : dsc__z3_comm_fail(z, rc, "parameter prefetch", p);
}

/* Gathers p (blocking), or starts its all-gather (async: a prefetch). */
static dsc_status_t gather_start(dsc_zero_t *z, z3_param_t *p, bool async) {
    if (p->inflight) return async ? DSC_OK : finish_prefetch(z, p);
    if (p->full || z->plan.stage != 3) return DSC_OK; /* stages 1-2: replicated */
    p->full = dsc__zero_pool_take(z, DSC_MEM_PARAMS, dsc__z3_full_bytes(z, p), false); /* the gather writes all of it */
    if (!p->full) return dsc_ctx_status(z->ctx);
    if (!p->persistent) z->gathered_elems += full_elems(z, p);
    if (!async || z->world_size == 1) {
        dsc_status_t rc = gather_into(z, p);
        p->tensor->data = p->full;
        return rc;
    }
    const size_t ms = dsc__z3_msize(z), k = (size_t)p->shard;
    char *mine = (char *)p->full + (size_t)z->rank * k * ms;
    dsc__z3_shard_in(z, mine, p);
    dsc_status_t rc = dsc_comm_iallgather(z->comm, mine, p->full, k, z->model_dtype, &p->inflight);
    if (rc != DSC_OK) return dsc__z3_comm_fail(z, rc, "parameter prefetch", p);
    z->inflight_elems += full_elems(z, p);
    return DSC_OK;
}

static dsc_status_t gather(dsc_zero_t *z, z3_param_t *p) { return gather_start(z, p, false); }

static void free_gathered(dsc_zero_t *z, z3_param_t *p) {
    if (p->inflight) finish_prefetch(z, p); /* MPI may still write it otherwise */
    dsc__zero_pool_give(z, DSC_MEM_PARAMS, p->full, dsc__z3_full_bytes(z, p));
    if (!p->persistent) z->gathered_elems -= full_elems(z, p);
    p->full = NULL;
    p->tensor->data = NULL;
}

/* ---- the schedule ---------------------------------------------------------------- */

/* An acquisition of parameter `idx` at the cursor: recorded, checked against the recorded
 * order, or ignored once the trace is dropped. */
static void trace_note(dsc_zero_t *z, int idx) {
    z3_param_t *p = &z->p[idx];
    if (z->trace_state == TRACE_RECORDING) {
        if (z->trace_len == z->trace_cap) {
            int cap = z->trace_cap ? 2 * z->trace_cap : 256;
            int *t = realloc(z->trace, sizeof *t * (size_t)cap);
            if (!t) { /* no schedule then: correct, only without prefetch and reuse */
                z->trace_state = TRACE_INVALID;
                return;
            }
            z->trace = t;
            z->trace_cap = cap;
        }
        z->trace[z->trace_len++] = idx;
    } else if (z->trace_state == TRACE_READY) {
        if (z->cursor >= z->trace_len || z->trace[z->cursor] != idx) {
            z->trace_state = TRACE_INVALID;
            dsc_ctx_log(z->ctx, DSC_LOG_DEBUG, "ZeRO-3: %s used out of the recorded order at position %d: "
                        "prefetching stops until the next micro-step records the order again",
                        dsc_tensor_name(p->tensor), z->cursor);
            return;
        }
    } else {
        return;
    }
    p->last_pos = z->cursor++;
}

/* After an acquisition: all-gathers, without waiting, the parameters next in the recorded
 * order, within stage3_prefetch_bucket_size elements in flight and stage3_max_live_parameters
 * gathered. */
static dsc_status_t prefetch(dsc_zero_t *z) {
    if (z->trace_state != TRACE_READY || z->prefetch_bucket <= 0 || z->plan.stage != 3) return DSC_OK;
    int j = z->prefetch_from > z->cursor ? z->prefetch_from : z->cursor;
    for (; j < z->trace_len; j++) {
        z3_param_t *q = &z->p[z->trace[j]];
        if (q->full || q->persistent) continue;
        const int64_t n = full_elems(z, q);
        if (z->inflight_elems + n > z->prefetch_bucket || z->gathered_elems + n > z->max_live) break;
        /* offload_param "nvme": only a shard whose read was started by an earlier call is
         * all-gathered ahead (else its gather would wait for the whole read here); its read is
         * started below instead. Decided from the calls alone: the same on every rank. */
        if (!dsc__z3_shard_ready(z, z->trace[j])) break;
        if (gather_start(z, q, true) != DSC_OK) return dsc_ctx_status(z->ctx);
    }
    z->prefetch_from = j;
    /* ... and the next parameters' shards are read ahead into the swap file's free buffers
     * (the next prefetch, or the acquisition, finds them there) */
    for (int k = j; k < z->trace_len && z->pnvme; k++) {
        const z3_param_t *q = &z->p[z->trace[k]];
        if (!q->full && !q->persistent && !dsc__z3_read_ahead(z, z->trace[k])) break;
    }
    return DSC_OK;
}

/* Whether a parameter released now is used again within stage3_max_reuse_distance
 * elements of acquisitions (then it stays gathered). */
static bool reused_soon(const dsc_zero_t *z, const z3_param_t *p) {
    if (z->trace_state != TRACE_READY || p->last_pos < 0 || p->last_pos >= z->trace_len) return false;
    const int k = z->trace_next[p->last_pos];
    return k >= 0 && z->trace_prefix[k] - z->trace_prefix[z->cursor] < z->max_reuse;
}

/* The end of a micro-step: a recorded trace becomes the schedule; a dropped one is
 * recorded again. */
static void trace_end_microstep(dsc_zero_t *z) {
    if (z->trace_state == TRACE_RECORDING && z->trace_len > 0) {
        z->trace_next = malloc(sizeof *z->trace_next * (size_t)z->trace_len);
        z->trace_prefix = malloc(sizeof *z->trace_prefix * (size_t)(z->trace_len + 1));
        if (z->trace_next && z->trace_prefix) {
            z->trace_prefix[0] = 0;
            for (int j = 0; j < z->trace_len; j++) {
                const z3_param_t *p = &z->p[z->trace[j]];
                z->trace_prefix[j + 1] = z->trace_prefix[j] + p->numel;
                z->trace_next[j] = -1;
                for (int k = j + 1; k < z->trace_len && z->trace_next[j] < 0; k++)
                    if (z->trace[k] == z->trace[j]) z->trace_next[j] = k;
            }
            z->trace_state = TRACE_READY;
        } else {
            z->trace_state = TRACE_INVALID;
        }
    } else if (z->trace_state == TRACE_INVALID) {
        free(z->trace_next);
        free(z->trace_prefix);
        z->trace_next = NULL;
        z->trace_prefix = NULL;
        z->trace_len = 0;
        z->trace_state = TRACE_RECORDING;
    }
    z->cursor = z->prefetch_from = 0;
}

/* A gradient holder for p: stages 2-3 a buffer of its own; stage 1 adds into the flat buffer
 * the model is bound to. */
static dsc_status_t give_grad(dsc_zero_t *z, z3_param_t *p) {
    return z->plan.stage == 1 ? dsc__z1_give_grad(z, p) : dsc__z3_give_grad(z, p);
}

static dsc_status_t release_one(dsc_zero_t *z, z3_param_t *p, bool after_backward) {
    dsc_status_t rc = DSC_OK;
    if (after_backward && p->grad_users > 0 && --p->grad_users == 0)
        rc = z->plan.stage == 1 ? dsc__z1_backward_done(z, p) : p->grad ? dsc__z3_send_grad(z, p) : DSC_OK;
    if (p->live > 0 && --p->live == 0 && !p->persistent && !p->unscoped && !reused_soon(z, p)) free_gathered(z, p);
    return rc;
}

static dsc_status_t acquire_one(dsc_zero_t *z, z3_param_t *p, bool for_backward, bool traced) {
    if (traced) trace_note(z, (int)(p - z->p));
    if (gather(z, p) != DSC_OK) return dsc_ctx_status(z->ctx);
    p->live++;
    if (for_backward && give_grad(z, p) != DSC_OK) return dsc_ctx_status(z->ctx);
    return DSC_OK;
}

static dsc_status_t hook_acquire(void *user, dsc_tensor_t *const *params, int n, bool for_backward) {
    dsc_zero_t *z = user;
    for (int k = 0; k < n; k++) {
        z3_param_t *p = find(z, params[k]);
        if (!p || acquire_one(z, p, for_backward, true) != DSC_OK) return dsc_ctx_status(z->ctx);
    }
    return prefetch(z);
}

dsc_status_t dsc__zero_hold(dsc_zero_t *z, int i) { return acquire_one(z, &z->p[i], false, false); }
void dsc__zero_unhold(dsc_zero_t *z, int i) {
    z3_param_t *p = &z->p[i];
    if (p->live > 0 && --p->live == 0 && !p->persistent && !p->unscoped) free_gathered(z, p);
}

static dsc_status_t hook_release(void *user, dsc_tensor_t *const *params, int n, bool after_backward) {
    dsc_zero_t *z = user;
    dsc_status_t first = DSC_OK;
    for (int k = 0; k < n; k++) {
        z3_param_t *p = find(z, params[k]);
        dsc_status_t rc = p ? release_one(z, p, after_backward) : DSC_ERR_INVALID;
        if (first == DSC_OK) first = rc;
    }
    return first;
}

static dsc_status_t hook_use(void *user, dsc_tensor_t *param) {
    dsc_zero_t *z = user;
    z3_param_t *p = find(z, param);
    if (!p) return dsc_ctx_status(z->ctx);
    if (p->live > 0 && !p->unscoped) return DSC_OK; /* inside a scope */
    if (!p->unscoped) { /* held until the end of the micro-step */
        trace_note(z, (int)(p - z->p));
        if (gather(z, p) != DSC_OK) return dsc_ctx_status(z->ctx);
        p->live++;
        p->unscoped = true;
    }
    /* A gradient buffer once gradients are recorded (an earlier no-grad use, say an
     * evaluation, held the values only). */
    if (!p->unscoped_grad && dsc_ctx_grad_enabled(z->ctx)) {
        if (give_grad(z, p) != DSC_OK) return dsc_ctx_status(z->ctx);
        p->unscoped_grad = true;
    }
    return DSC_OK;
}

/* ---- called by zero_state.c ------------------------------------------------------ */

dsc_status_t dsc__zero_scopes_end_backward(dsc_zero_t *z, bool ok) {
    dsc_status_t first = DSC_OK;
    for (int i = 0; i < z->n; i++) {
        z3_param_t *p = &z->p[i];
        if (p->unscoped) {
            dsc_status_t rc = DSC_OK;
            if (p->unscoped_grad && p->grad_users > 0 && --p->grad_users == 0 && p->grad)
                rc = ok ? dsc__z3_send_grad(z, p) : DSC_OK;
            if (p->live > 0) p->live--;
            p->unscoped = p->unscoped_grad = false;
            if (first == DSC_OK) first = rc;
        }
        if (!ok) { /* a failed backward may leave holds behind: drop them locally */
            p->live = 0;
            p->grad_users = 0;
        }
        if (p->grad && p->grad_users == 0) dsc__z3_free_grad(z, p);
        if (p->full && p->live == 0 && !p->persistent) free_gathered(z, p); /* kept for reuse, or prefetched */
    }
    /* Every gradient send in flight (overlap_comm), the unscoped ones just issued included,
     * lands in acc32 before the step can read it (stage 1: on the boundary, after the ranges
     * not sent yet are sent). */
    dsc_status_t rc = z->plan.stage == 1 ? dsc__z1_end_backward(z, ok) : dsc__z3_drain_sends(z, ok);
    if (first == DSC_OK) first = rc;
    if (!ok && z->trace_state == TRACE_RECORDING) z->trace_state = TRACE_INVALID; /* a partial record */
    trace_end_microstep(z);
    return first;
}

/* After the step, every gathered parameter (the persistent ones and those kept for reuse)
 * is gathered again: all the all-gathers are started first, then waited for in order, so on
 * NCCL they queue back to back on the communication stream without a host round trip
 * between two, and MPI may progress them together. Data movement only: the values are those
 * of one blocking gather after another (test_zero_fake, mpi_zero_*: bitwise). */
dsc_status_t dsc__zero3_refresh(dsc_zero_t *z) {
    dsc_comm_request_t **reqs = z->world_size > 1 ? calloc((size_t)z->n + 1, sizeof *reqs) : NULL;
    if (!reqs) { /* one rank, or no memory for the requests: one blocking gather after another */
        for (int i = 0; i < z->n; i++)
            if (z->p[i].full && gather_into(z, &z->p[i]) != DSC_OK) return dsc_ctx_status(z->ctx);
        return DSC_OK;
    }
    const size_t ms = dsc__z3_msize(z);
    dsc_status_t first = DSC_OK;
    for (int i = 0; i < z->n && first == DSC_OK; i++) {
        z3_param_t *p = &z->p[i];
        if (!p->full) continue;
        if (p->inflight && (first = finish_prefetch(z, p)) != DSC_OK) break; /* one writer per buffer */
        const size_t k = (size_t)p->shard;
        char *mine = (char *)p->full + (size_t)z->rank * k * ms;
        dsc__z3_shard_in(z, mine, p);
        dsc_status_t rc = dsc_comm_iallgather(z->comm, mine, p->full, k, z->model_dtype, &reqs[i]);
        if (rc != DSC_OK) first = dsc__z3_comm_fail(z, rc, "parameter all-gather", p);
    }
    for (int i = 0; i < z->n; i++) { /* every started one is waited for, also after an error */
        if (!reqs[i]) continue;
        dsc_status_t rc = dsc_comm_wait(reqs[i]);
        if (rc != DSC_OK && first == DSC_OK) first = dsc__z3_comm_fail(z, rc, "parameter all-gather", &z->p[i]);
    }
    free(reqs);
    return first;
}


/* The parameter table and the context's hooks (stages 2 and 3). */
static dsc_status_t scopes_new(dsc_zero_t *z, char *err, size_t errsz) {
    dsc_model_t *m = z->model;
    const int N = z->world_size, np = dsc_model_param_count(m);
    const dsc_config_zero_t *cz = z->cfg;
    z->p = calloc((size_t)np + 1, sizeof *z->p);
    z->by_tensor = calloc((size_t)np + 1, sizeof *z->by_tensor);
    if (!z->p || !z->by_tensor) {
        snprintf(err, errsz, "out of memory for the ZeRO-%d parameter table (%d parameters)", z->plan.stage, np);
        return DSC_ERR_NOMEM;
    }
    z->scoped = true;
    z->n = np;
    z->prefetch_bucket = cz->stage3_prefetch_bucket_size;
    z->max_live = cz->stage3_max_live_parameters;
    z->max_reuse = cz->stage3_max_reuse_distance;
    z->overlap = cz->overlap_comm;
    z->send_limit = cz->reduce_bucket_size;
    z->trace_state = TRACE_RECORDING;
    int64_t local = 0;
    for (int i = 0; i < np; i++) {
        dsc_param_info_t info;
        dsc_model_param_info(m, i, &info);
        z3_param_t *p = &z->p[i];
        p->tensor = info.tensor;
        p->numel = info.numel;
        p->offset = info.offset;
        p->shard = dsc_zero3_shard(info.numel, N);
        p->local = local;
        p->last_pos = -1;
        p->bwd_expected = -1;
        local += p->shard;
        if (p->offset + p->numel > z->p[z->z1_tail].offset + z->p[z->z1_tail].numel) z->z1_tail = i;
        if (z->plan.stage != 3) {
            p->persistent = true; /* replicated: never released */
        } else {
            p->persistent = dsc__zero3_persists(info.numel, cz->stage3_param_persistence_threshold,
                                                cz->stage3_model_persistence_threshold, &z->persistent_numel);
        }
        z->by_tensor[i] = (z3_lookup_t){info.tensor, i};
    }
    qsort(z->by_tensor, (size_t)np, sizeof *z->by_tensor, cmp_lookup);
    z->hooks = (dsc_param_hooks_t){z, hook_acquire, hook_release, hook_use};
    return DSC_OK;
}

dsc_status_t dsc__zero_scopes_stage2(dsc_zero_t *z, char *err, size_t errsz) {
    dsc_status_t rc = scopes_new(z, err, errsz);
    if (rc == DSC_OK) rc = dsc_model_bind_partitioned(z->model, z->model_dtype, z->params);
    if (rc != DSC_OK) {
        if (!err[0]) snprintf(err, errsz, "binding the model for ZeRO-2: %s", dsc_ctx_errmsg(z->ctx));
        return rc;
    }
    z->ctx->param_hooks = &z->hooks;
    return DSC_OK;
}

dsc_status_t dsc__zero_scopes_stage1(dsc_zero_t *z, char *err, size_t errsz) {
    dsc_status_t rc = scopes_new(z, err, errsz);
    if (rc != DSC_OK) return rc;
    z->overlap = true; /* the sends are non-blocking: what overlap_comm asks for */
    z->ctx->param_hooks = &z->hooks;
    return DSC_OK;
}

dsc_status_t dsc__zero_alloc_state3(dsc_zero_t *z, char *err, size_t errsz) {
    dsc_model_t *m = z->model;
    const int N = z->world_size, np = dsc_model_param_count(m);
    const bool mixed = z->model_dtype != DSC_F32;
    const size_t ms = dsc__z3_msize(z);
    dsc_status_t rc = scopes_new(z, err, errsz);
    if (rc != DSC_OK) return rc;
    z->segments = calloc((size_t)np + 1, sizeof *z->segments);
    z->segment_param = calloc((size_t)np + 1, sizeof *z->segment_param);
    if (!z->segments || !z->segment_param) {
        snprintf(err, errsz, "out of memory for the ZeRO-3 segment table (%d parameters)", np);
        return DSC_ERR_NOMEM;
    }
    for (int i = 0; i < np; i++) { /* whole shards, padding included: the optimizer wants a tiling */
        z->segments[z->n_segments] = (dsc_amp_segment_t){(size_t)z->p[i].local, (size_t)z->p[i].shard};
        z->segment_param[z->n_segments++] = i;
    }
    const int64_t local = np ? z->p[np - 1].local + z->p[np - 1].shard : 0;
    z->n_local = local;
    /* host memory or a swap file with offload_param */
    if ((rc = dsc__z3_params_create(z, (size_t)local * ms, err, errsz)) != DSC_OK) return rc;
    /* the fp32 master: the shards themselves in fp32, else its own buffer (host memory when
     * the optimizer is offloaded, with a device buffer for the initial values while mixed or
     * while the shards are offloaded) */
    const bool offloaded = dsc__z3_params_offloaded(z);
    const bool own_master = mixed || z->host_ctx || offloaded;
    z->master = own_master ? dsc__zero_master_alloc(z, (size_t)local) : z->params;
    const bool temp32 = z->host_ctx && (mixed || offloaded);
    float *dev32 = !z->host_ctx ? z->master : !temp32 ? z->params
                 : z->master ? dsc__dev_alloc(z->ctx, DSC_MEM_OTHER, (size_t)local * 4) : NULL;
    z->acc32 = dev32 ? dsc__dev_alloc(z->ctx, DSC_MEM_GRAD_ACCUM, (size_t)local * 4) : NULL;
    float *init32 = z->acc32 ? dsc__dev_alloc(z->ctx, DSC_MEM_OTHER, (size_t)z->numel * 4) : NULL;
    if (!init32) {
        if (dev32 && temp32) dsc__dev_free(z->ctx, DSC_MEM_OTHER, dev32, (size_t)local * 4);
        snprintf(err, errsz, "out of memory allocating the ZeRO-3 model state (%lld parameters, %d ranks)",
                 (long long)z->numel, N);
        return DSC_ERR_NOMEM;
    }
    /* The same initial values as every other stage (the whole model once, in fp32, then
     * rank 0's broadcast), cut into this rank's shards. */
    rc = dsc__zero_initial_values(z, init32);
    for (int i = 0; i < np && rc == DSC_OK; i++) {
        const z3_param_t *p = &z->p[i];
        int64_t a, b;
        if (dsc__zero_slice(&z->plan, z->rank, p->offset, p->numel, &a, &b))
            dsc__dev_copy(z->ctx, dev32 + p->local, init32 + p->offset + a, (size_t)(b - a) * 4);
    }
    dsc__dev_free(z->ctx, DSC_MEM_OTHER, init32, (size_t)z->numel * 4);
    if (rc == DSC_OK && (mixed || offloaded)) rc = dsc__z3_params_from_device32(z, dev32);
    if (rc == DSC_OK && z->host_ctx) rc = dsc__zero_master_from_device(z, dev32);
    if (temp32) dsc__dev_free(z->ctx, DSC_MEM_OTHER, dev32, (size_t)local * 4);
    if (rc == DSC_OK) rc = dsc_model_bind_partitioned(m, z->model_dtype, NULL);
    if (rc == DSC_OK) z->ctx->param_hooks = &z->hooks;
    for (int i = 0; i < np && rc == DSC_OK; i++)
        if (z->p[i].persistent) rc = gather(z, &z->p[i]);
    if (rc != DSC_OK) snprintf(err, errsz, "ZeRO-3 initial partition: %s", dsc_ctx_errmsg(z->ctx));
    return rc;
}

void dsc__zero_free_scopes(dsc_zero_t *z) {
    if (!z->scoped) return;
    if (z->ctx->param_hooks == &z->hooks) z->ctx->param_hooks = NULL;
    dsc__z3_drain_sends(z, false); /* before the table they point into */
    for (int i = 0; z->p && i < z->n; i++) {
        z3_param_t *p = &z->p[i];
        if (p->grad) dsc__z3_free_grad(z, p);
        if (p->full) free_gathered(z, p);
    }
    free(z->p);
    free(z->by_tensor);
    free(z->sends);
    free(z->trace);
    free(z->trace_next);
    free(z->trace_prefix);
    dsc__zero_pool_free(z);
    z->p = NULL;
    z->by_tensor = NULL;
    z->sends = NULL;
    z->trace = z->trace_next = NULL;
    z->trace_prefix = NULL;
    z->scoped = false;
}

void dsc__zero_free_state3(dsc_zero_t *z) {
    for (int i = 0; i < dsc_model_param_count(z->model); i++) {
        dsc_param_info_t info;
        dsc_model_param_info(z->model, i, &info);
        info.tensor->data = NULL;
    }
    dsc__zero_free_scopes(z);
    const size_t nl = (size_t)z->n_local;
    if (z->master != z->params) dsc__zero_master_free(z);
    dsc__dev_free(z->ctx, DSC_MEM_GRAD_ACCUM, z->acc32, nl * 4);
    dsc__z3_params_free(z, nl * dsc__z3_msize(z));
    free(z->segments);
    free(z->segment_param);
}

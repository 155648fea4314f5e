/* The engine's flat model state under ZeRO stages 0-2 (docs/zero.md): allocation, the
 * initial broadcast, gradient reduction (all-reduce at stage 0; a real reduce-scatter in
 * buckets at stages 1 and 2, the ZeRO paper's volume) and the parameter all-gather. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine_internal.h"

static size_t msize(const dsc_engine_t *e) { return dsc_dtype_size(e->model_dtype); }

static dsc_status_t comm_fail(dsc_engine_t *e, dsc_status_t rc, const char *what) {
    return dsc__engine_fail(e, rc, "rank %d: %s failed: %s", e->rank, what, dsc_ctx_errmsg(e->ctx));
}

/* Segments of this rank's extent [begin, begin + n_local) covered by parameter tensors. */
static dsc_status_t build_segments(dsc_engine_t *e) {
    int n_params = dsc_model_param_count(e->model);
    e->segments = calloc((size_t)n_params + 1, sizeof *e->segments);
    e->segment_param = calloc((size_t)n_params + 1, sizeof *e->segment_param);
    if (!e->segments || !e->segment_param) return DSC_ERR_NOMEM;
    const int64_t begin = e->plan.stage == 0 ? 0 : e->plan.begin;
    for (int i = 0; i < n_params; i++) {
        dsc_param_info_t info;
        dsc_model_param_info(e->model, i, &info);
        int64_t lo = info.offset > begin ? info.offset : begin;
        int64_t hi = info.offset + info.numel < begin + e->n_local ? info.offset + info.numel : begin + e->n_local;
        if (hi <= lo) continue;
        e->segments[e->n_segments].offset = (size_t)(lo - begin);
        e->segments[e->n_segments].numel = (size_t)(hi - lo);
        e->segment_param[e->n_segments++] = i;
    }
    return DSC_OK;
}

/* The model's initial values in fp32 into init32 (numel floats, flat layout): its own
 * values if it was bound, else its initialisation from the context RNG; then rank 0's copy
 * is broadcast so every rank starts identical (DeepSpeed broadcasts from data-parallel
 * rank 0). Leaves the model bound to init32 without gradients. */
dsc_status_t dsc__engine_initial_values(dsc_engine_t *e, float *init32) {
    dsc_model_t *m = e->model;
    bool had_values = dsc_model_param_count(m) > 0;
    for (int i = 0; i < dsc_model_param_count(m); i++) {
        dsc_param_info_t info;
        dsc_model_param_info(m, i, &info);
        had_values = had_values && dsc_tensor_data(info.tensor) != NULL;
    }
    dsc_status_t rc = DSC_OK;
    for (int i = 0; had_values && i < dsc_model_param_count(m) && rc == DSC_OK; i++) {
        dsc_param_info_t info;
        dsc_model_param_info(m, i, &info);
        rc = dsc_convert(init32 + info.offset, DSC_F32, dsc_tensor_data(info.tensor), dsc_tensor_dtype(info.tensor),
                         (size_t)info.numel);
    }
    if (rc == DSC_OK) rc = dsc_model_bind(m, DSC_F32, init32, NULL);
    if (rc == DSC_OK && !had_values) rc = dsc_model_init_params(m);
    if (rc == DSC_OK && e->world_size > 1) rc = dsc_comm_broadcast(e->comm, init32, (size_t)e->numel, DSC_F32, 0);
    return rc;
}

dsc_status_t dsc__engine_alloc_state(dsc_engine_t *e, char *err, size_t errsz) {
    if (e->plan.stage == 3) return dsc__engine_alloc_state3(e, err, errsz);
    dsc_model_t *m = e->model;
    const int64_t P = e->plan.padded;
    const size_t ms = msize(e);
    const bool mixed = e->model_dtype != DSC_F32, partitioned = e->plan.stage >= 1;
    e->n_local = partitioned ? e->plan.part : P;
    e->params = dsc_ctx_alloc(e->ctx, DSC_MEM_PARAMS, (size_t)P * ms);
    /* Stage 2 has no full gradient buffer: each layer's gradients live during its backward. */
    const bool full_grads = e->plan.stage < 2;
    e->grads = e->params && full_grads ? dsc_ctx_alloc(e->ctx, DSC_MEM_GRADS, (size_t)P * ms) : NULL;
    bool ok = e->params && (e->grads || !full_grads);
    if (ok) e->master = (!mixed && !partitioned) ? e->params : dsc_ctx_alloc(e->ctx, DSC_MEM_OPTIM, (size_t)e->n_local * 4);
    ok = ok && e->master;
    if (ok) e->acc32 = (!mixed && !partitioned) ? e->grads : dsc_ctx_alloc(e->ctx, DSC_MEM_GRAD_ACCUM, (size_t)e->n_local * 4);
    ok = ok && e->acc32;
    if (ok && e->plan.stage == 1 && mixed && e->accumulate_fp32)
        ok = (e->full_acc32 = dsc_ctx_alloc(e->ctx, DSC_MEM_GRAD_ACCUM, (size_t)P * 4)) != NULL;
    int64_t bucket = e->config->zero_optimization.reduce_bucket_size / e->world_size;
    e->bucket = bucket < 1 ? 1 : bucket;
    if (ok && e->plan.stage == 1 && e->world_size > 1 && e->bucket < e->plan.part) {
        size_t es = e->full_acc32 ? 4 : ms;
        e->staging_bytes = (size_t)e->bucket * (size_t)e->world_size * es;
        ok = (e->staging = dsc_ctx_alloc(e->ctx, DSC_MEM_COMM, e->staging_bytes)) != NULL;
    }
    if (ok) ok = build_segments(e) == DSC_OK;
    if (!ok) {
        snprintf(err, errsz, "out of memory allocating the model state (%lld parameters, ZeRO stage %d, %d ranks)",
                 (long long)e->numel, e->plan.stage, e->world_size);
        return DSC_ERR_NOMEM;
    }

    /* Initial values in fp32 over the whole flat buffer: the model's own values if it was
     * bound, else its initialisation; then rank 0's copy is broadcast so every rank starts
     * identical (DeepSpeed broadcasts from data-parallel rank 0). */
    float *init32 = (!mixed && !partitioned) ? e->params : (mixed && !partitioned) ? e->master : NULL;
    float *temp = NULL;
    if (!init32) {
        temp = dsc_ctx_alloc(e->ctx, DSC_MEM_OTHER, (size_t)P * 4);
        if (!temp) {
            snprintf(err, errsz, "out of memory for the initial parameter broadcast (%lld parameters)", (long long)P);
            return DSC_ERR_NOMEM;
        }
        init32 = temp;
    }
    dsc_status_t rc = dsc__engine_initial_values(e, init32);
    if (rc == DSC_OK && mixed) rc = dsc_amp_f32_to_half(e->ctx, e->params, e->model_dtype, init32, (size_t)P);
    if (rc == DSC_OK && !mixed && init32 != e->params) memcpy(e->params, init32, (size_t)P * 4);
    if (rc == DSC_OK && partitioned) memcpy(e->master, init32 + e->plan.begin, (size_t)e->n_local * 4);
    if (temp) dsc_ctx_release(e->ctx, DSC_MEM_OTHER, temp, (size_t)P * 4);
    if (rc == DSC_OK && e->plan.stage == 2) return dsc__engine_scopes_stage2(e, err, errsz);
    if (rc == DSC_OK) rc = dsc_model_bind_mixed(m, e->model_dtype, e->params, e->model_dtype, e->grads);
    if (rc != DSC_OK) snprintf(err, errsz, "binding the model to the engine's buffers: %s", dsc_ctx_errmsg(e->ctx));
    return rc;
}

void dsc__engine_free_state(dsc_engine_t *e) {
    if (e->plan.stage == 3) {
        dsc__engine_free_state3(e);
        return;
    }
    dsc__engine_free_scopes(e); /* stage 2 */
    const size_t P = (size_t)e->plan.padded, ms = msize(e), nl = (size_t)e->n_local;
    if (e->master != e->params) dsc_ctx_release(e->ctx, DSC_MEM_OPTIM, e->master, nl * 4);
    if (e->acc32 != e->grads) dsc_ctx_release(e->ctx, DSC_MEM_GRAD_ACCUM, e->acc32, nl * 4);
    dsc_ctx_release(e->ctx, DSC_MEM_GRAD_ACCUM, e->full_acc32, P * 4);
    dsc_ctx_release(e->ctx, DSC_MEM_COMM, e->staging, e->staging_bytes);
    dsc_ctx_release(e->ctx, DSC_MEM_PARAMS, e->params, P * ms);
    dsc_ctx_release(e->ctx, DSC_MEM_GRADS, e->grads, P * ms);
    free(e->segments);
    free(e->segment_param);
}

void dsc__engine_zero_grads(dsc_engine_t *e) {
    if (e->z3) { /* full gradients exist only inside backward */
        memset(e->acc32, 0, (size_t)e->n_local * 4);
        return;
    }
    memset(e->grads, 0, (size_t)e->plan.padded * msize(e));
    if (e->acc32 != e->grads) memset(e->acc32, 0, (size_t)e->n_local * 4);
    if (e->full_acc32) memset(e->full_acc32, 0, (size_t)e->plan.padded * 4);
}

/* Reduce-scatter of the full buffer `src` (P elements of dtype, clobbered) into this rank's
 * partition, added into acc32 in fp32. Chunk j of every partition travels together, so each
 * collective is a true reduce-scatter of `bucket` elements per rank. */
static dsc_status_t reduce_scatter_into_acc(dsc_engine_t *e, void *src, dsc_dtype_t dtype) {
    const int N = e->world_size, r = e->rank;
    const int64_t k = e->plan.part;
    const size_t es = dsc_dtype_size(dtype);
    char *s = src;
    if (N == 1) return dsc_amp_accumulate(e->ctx, e->acc32, src, dtype, (size_t)k);
    if (e->bucket >= k) { /* one collective, in place: the result lands in src's own slice */
        char *mine = s + (size_t)e->plan.begin * es;
        dsc_status_t rc = dsc_comm_reduce_scatter(e->comm, s, mine, (size_t)k, dtype);
        if (rc != DSC_OK) return comm_fail(e, rc, "gradient reduce-scatter");
        return dsc_amp_accumulate(e->ctx, e->acc32, mine, dtype, (size_t)k);
    }
    char *stage = e->staging;
    for (int64_t j = 0; j < k; j += e->bucket) {
        const int64_t c = k - j < e->bucket ? k - j : e->bucket;
        for (int q = 0; q < N; q++) memcpy(stage + (size_t)q * c * es, s + (size_t)((int64_t)q * k + j) * es, (size_t)c * es);
        char *mine = stage + (size_t)r * c * es;
        dsc_status_t rc = dsc_comm_reduce_scatter(e->comm, stage, mine, (size_t)c, dtype);
        if (rc != DSC_OK) return comm_fail(e, rc, "gradient reduce-scatter");
        rc = dsc_amp_accumulate(e->ctx, e->acc32 + j, mine, dtype, (size_t)c);
        if (rc != DSC_OK) return rc;
    }
    return DSC_OK;
}

dsc_status_t dsc__engine_after_backward(dsc_engine_t *e) {
    const size_t P = (size_t)e->plan.padded;
    dsc_status_t rc = DSC_OK;
    switch (e->plan.stage) {
    case 0:
        if (e->accumulate_fp32) {
            rc = dsc_amp_accumulate(e->ctx, e->acc32, e->grads, e->model_dtype, P);
            memset(e->grads, 0, P * msize(e));
        }
        break;
    case 1:
        if (e->full_acc32) {
            rc = dsc_amp_accumulate(e->ctx, e->full_acc32, e->grads, e->model_dtype, P);
            memset(e->grads, 0, P * msize(e));
        }
        break;
    default: /* stages 2-3: sent during backward, layer by layer; what remains is unscoped uses */
        rc = dsc__engine_zero3_end_backward(e, true);
        break;
    }
    return rc;
}

dsc_status_t dsc__engine_reduce_gradients(dsc_engine_t *e) {
    const size_t P = (size_t)e->plan.padded;
    const bool mixed = e->model_dtype != DSC_F32;
    dsc_status_t rc = DSC_OK;
    if (e->plan.stage == 0) {
        /* The summed buffer: fp32 accumulation, or the gradients themselves. */
        void *buf = e->accumulate_fp32 ? (void *)e->acc32 : e->grads;
        dsc_dtype_t dt = e->accumulate_fp32 ? DSC_F32 : e->model_dtype;
        /* In buckets of reduce_bucket_size elements (DeepSpeed's): the communicator's
         * staging (MPI sums 16-bit data in fp32) stays bounded by the bucket. */
        const size_t bucket = (size_t)e->config->zero_optimization.reduce_bucket_size, es = dsc_dtype_size(dt);
        for (size_t off = 0; e->world_size > 1 && off < P; off += bucket) {
            const size_t n = P - off < bucket ? P - off : bucket;
            rc = dsc_comm_allreduce(e->comm, (char *)buf + off * es, (char *)buf + off * es, n, dt, DSC_REDUCE_SUM);
            if (rc != DSC_OK) return comm_fail(e, rc, "gradient all-reduce");
        }
        if (mixed && !e->accumulate_fp32) { /* 16-bit accumulation: widen once */
            rc = dsc_amp_half_to_f32(e->ctx, e->acc32, e->grads, e->model_dtype, P);
            memset(e->grads, 0, P * msize(e));
        }
        return rc;
    }
    if (e->plan.stage == 1) {
        if (e->full_acc32) {
            rc = reduce_scatter_into_acc(e, e->full_acc32, DSC_F32);
            memset(e->full_acc32, 0, P * 4);
        } else {
            rc = reduce_scatter_into_acc(e, e->grads, e->model_dtype);
            memset(e->grads, 0, P * msize(e));
        }
    }
    return rc; /* stages 2 and 3 reduced during each backward */
}

dsc_status_t dsc__engine_gather_params(dsc_engine_t *e) {
    if (e->plan.stage == 0) return DSC_OK; /* the optimizer updated the replicated copy */
    if (e->plan.stage == 3) return dsc__engine_zero3_refresh(e); /* persistent and currently gathered ones */
    const size_t ms = msize(e), k = (size_t)e->plan.part;
    char *mine = (char *)e->params + (size_t)e->plan.begin * ms;
    if (e->model_dtype == DSC_F32) memcpy(mine, e->master, k * 4); /* mixed: the optimizer wrote it */
    if (e->world_size == 1) return DSC_OK;
    dsc_status_t rc = dsc_comm_allgather(e->comm, mine, e->params, k, e->model_dtype);
    return rc == DSC_OK ? DSC_OK : comm_fail(e, rc, "parameter all-gather");
}

void *dsc__engine_local_params(const dsc_engine_t *e) {
    if (e->plan.stage == 1 || e->plan.stage == 2) return (char *)e->params + (size_t)e->plan.begin * msize(e);
    return e->params; /* stage 0: everything; stage 3: the local shards */
}

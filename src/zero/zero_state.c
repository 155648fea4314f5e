/* The ZeRO state object (zero/zero.h) and the flat model state of stages 0-2 (docs/zero.md):
 * allocation, the initial broadcast, gradient reduction (all-reduce at stage 0; a real
 * reduce-scatter in buckets at stage 1, the ZeRO paper's volume), the overflow / norm
 * statistics, the parameter all-gather after the optimizer and an edit's write-back.
 * Stages 2-3 keep their parameter table in zero_scopes.c and zero_grads.c. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/device.h"
#include "zero/zero_internal.h"

static size_t msize(const dsc_zero_t *z) { return dsc_dtype_size(z->model_dtype); }

dsc_status_t dsc__zero_fail(dsc_zero_t *z, dsc_status_t status, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (z->errmsg && z->errmsg_size) snprintf(z->errmsg, z->errmsg_size, "%s", msg);
    dsc_ctx_set_error(z->ctx, status, "%s", msg);
    return status;
}

static dsc_status_t comm_fail(dsc_zero_t *z, dsc_status_t rc, const char *what) {
    return dsc__zero_fail(z, rc, "rank %d: %s failed: %s", z->rank, what, dsc_ctx_errmsg(z->ctx));
}

/* Segments of this rank's extent [begin, begin + n_local) covered by parameter tensors. */
static dsc_status_t build_segments(dsc_zero_t *z) {
    int n_params = dsc_model_param_count(z->model);
    z->segments = calloc((size_t)n_params + 1, sizeof *z->segments);
    z->segment_param = calloc((size_t)n_params + 1, sizeof *z->segment_param);
    if (!z->segments || !z->segment_param) return DSC_ERR_NOMEM;
    const int64_t begin = z->plan.stage == 0 ? 0 : z->plan.begin;
    for (int i = 0; i < n_params; i++) {
        dsc_param_info_t info;
        dsc_model_param_info(z->model, i, &info);
        int64_t a = 0, b = info.numel; /* stage 0: every rank holds all of it */
        if (z->plan.stage > 0 && !dsc__zero_slice(&z->plan, z->rank, info.offset, info.numel, &a, &b)) continue;
        z->segments[z->n_segments].offset = (size_t)(info.offset + a - begin);
        z->segments[z->n_segments].numel = (size_t)(b - a);
        z->segment_param[z->n_segments++] = i;
    }
    return DSC_OK;
}

/* The model's initial values in fp32 into init32 (numel floats, flat layout): its own
 * values if it was bound, else its initialisation from the context RNG; then rank 0's copy
 * is broadcast so every rank starts identical (DeepSpeed broadcasts from data-parallel
 * rank 0). Leaves the model bound to init32 without gradients. */
dsc_status_t dsc__zero_initial_values(dsc_zero_t *z, float *init32) {
    dsc_model_t *m = z->model;
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
        rc = dsc__dev_convert(z->ctx, init32 + info.offset, DSC_F32, dsc_tensor_data(info.tensor),
                              dsc_tensor_dtype(info.tensor), (size_t)info.numel);
    }
    if (rc == DSC_OK) rc = dsc_model_bind(m, DSC_F32, init32, NULL);
    if (rc == DSC_OK && !had_values) rc = dsc_model_init_params(m);
    if (rc == DSC_OK && z->world_size > 1) rc = dsc_comm_broadcast(z->comm, init32, (size_t)z->numel, DSC_F32, 0);
    return rc;
}

static dsc_status_t alloc_state(dsc_zero_t *z, char *err, size_t errsz) {
    if (z->plan.stage == 3) return dsc__zero_alloc_state3(z, err, errsz);
    dsc_model_t *m = z->model;
    const int64_t P = z->plan.padded;
    const size_t ms = msize(z);
    const bool mixed = z->model_dtype != DSC_F32, partitioned = z->plan.stage >= 1;
    z->n_local = partitioned ? z->plan.part : P;
    z->params = dsc__dev_alloc(z->ctx, DSC_MEM_PARAMS, (size_t)P * ms);
    /* Stage 2 has no full gradient buffer: each layer's gradients live during its backward. */
    const bool full_grads = z->plan.stage < 2;
    z->grads = z->params && full_grads ? dsc__dev_alloc(z->ctx, DSC_MEM_GRADS, (size_t)P * ms) : NULL;
    bool ok = z->params && (z->grads || !full_grads);
    if (ok) z->master = (!mixed && !partitioned) ? z->params : dsc__zero_master_alloc(z, (size_t)z->n_local);
    ok = ok && z->master;
    if (ok) z->acc32 = (!mixed && !partitioned) ? z->grads : dsc__dev_alloc(z->ctx, DSC_MEM_GRAD_ACCUM, (size_t)z->n_local * 4);
    ok = ok && z->acc32;
    if (ok && z->plan.stage == 1 && mixed && z->accumulate_fp32)
        ok = (z->full_acc32 = dsc__dev_alloc(z->ctx, DSC_MEM_GRAD_ACCUM, (size_t)P * 4)) != NULL;
    int64_t bucket = z->cfg->reduce_bucket_size / z->world_size;
    z->bucket = bucket < 1 ? 1 : bucket;
    if (ok && z->plan.stage == 1 && z->world_size > 1 && z->bucket < z->plan.part) {
        size_t es = z->full_acc32 ? 4 : ms;
        z->staging_bytes = (size_t)z->bucket * (size_t)z->world_size * es;
        ok = (z->staging = dsc__dev_alloc(z->ctx, DSC_MEM_COMM, z->staging_bytes)) != NULL;
    }
    if (ok) ok = build_segments(z) == DSC_OK;
    if (!ok) {
        snprintf(err, errsz, "out of memory allocating the model state (%lld parameters, ZeRO stage %d, %d ranks)",
                 (long long)z->numel, z->plan.stage, z->world_size);
        return DSC_ERR_NOMEM;
    }

    /* Initial values in fp32 over the whole flat buffer: the model's own values if it was
     * bound, else its initialisation; then rank 0's copy is broadcast so every rank starts
     * identical (DeepSpeed broadcasts from data-parallel rank 0). */
    float *init32 = (!mixed && !partitioned) ? z->params : (mixed && !partitioned) ? z->master : NULL;
    float *temp = NULL;
    /* One rank at stages 1-2: acc32 spans the whole padded buffer and holds nothing yet, so
     * the initial values go through it instead of a temporary (4 bytes per parameter less
     * at the start's peak: what lets a model whose steady state fits start at all); it is
     * zeroed below. */
    const bool through_acc32 = !init32 && partitioned && z->n_local >= P;
    if (through_acc32) init32 = z->acc32;
    if (!init32) {
        temp = dsc__dev_alloc(z->ctx, DSC_MEM_OTHER, (size_t)P * 4);
        if (!temp) {
            snprintf(err, errsz, "out of memory for the initial parameter broadcast (%lld parameters)", (long long)P);
            return DSC_ERR_NOMEM;
        }
        init32 = temp;
    }
    dsc_status_t rc = dsc__zero_initial_values(z, init32);
    if (rc == DSC_OK && mixed) rc = dsc_amp_f32_to_half(z->ctx, z->params, z->model_dtype, init32, (size_t)P);
    if (rc == DSC_OK && !mixed && init32 != z->params) dsc__dev_copy(z->ctx, z->params, init32, (size_t)P * 4);
    if (rc == DSC_OK && partitioned) rc = dsc__zero_master_from_device(z, init32 + z->plan.begin);
    if (temp) dsc__dev_free(z->ctx, DSC_MEM_OTHER, temp, (size_t)P * 4);
    if (rc == DSC_OK && through_acc32) rc = dsc__dev_zero(z->ctx, z->acc32, (size_t)z->n_local * 4);
    if (rc == DSC_OK && z->plan.stage == 2) return dsc__zero_scopes_stage2(z, err, errsz);
    if (rc == DSC_OK) rc = dsc_model_bind_mixed(m, z->model_dtype, z->params, z->model_dtype, z->grads);
    if (rc != DSC_OK) snprintf(err, errsz, "binding the model to the engine's buffers: %s", dsc_ctx_errmsg(z->ctx));
    /* stage 1 with overlap_comm: the parameter hooks say when a parameter's backward is done */
    if (rc == DSC_OK && z->plan.stage == 1 && z->cfg->overlap_comm && z->world_size > 1)
        rc = dsc__zero_scopes_stage1(z, err, errsz);
    return rc;
}

static void free_state(dsc_zero_t *z) {
    if (z->plan.stage == 3) {
        dsc__zero_free_state3(z);
        return;
    }
    dsc__zero_free_scopes(z); /* stage 2; stage 1 with overlap_comm */
    const size_t P = (size_t)z->plan.padded, ms = msize(z), nl = (size_t)z->n_local;
    if (z->master != z->params) dsc__zero_master_free(z);
    if (z->acc32 != z->grads) dsc__dev_free(z->ctx, DSC_MEM_GRAD_ACCUM, z->acc32, nl * 4);
    dsc__dev_free(z->ctx, DSC_MEM_GRAD_ACCUM, z->full_acc32, P * 4);
    dsc__dev_free(z->ctx, DSC_MEM_COMM, z->staging, z->staging_bytes);
    dsc__dev_free(z->ctx, DSC_MEM_PARAMS, z->params, P * ms);
    dsc__dev_free(z->ctx, DSC_MEM_GRADS, z->grads, P * ms);
    free(z->segments);
    free(z->segment_param);
}

/* Zeroes the gradient buffers, except those in `clean` (REDUCED_*: the reduction zeroed
 * them after reading them, and only the optimizer has run since). */
static dsc_status_t zero_grads_except(dsc_zero_t *z, unsigned clean) {
    dsc__zero_mirror_clear(z);
    z->reduced_clean = 0;
    z->z1_reduced = false;
    if (!z->grads) { /* stages 2-3: full gradients exist only inside backward */
        return dsc__dev_zero(z->ctx, z->acc32, (size_t)z->n_local * 4);
    }
    if (!(clean & REDUCED_GRADS)) dsc__dev_zero(z->ctx, z->grads, (size_t)z->plan.padded * msize(z));
    if (z->acc32 != z->grads) dsc__dev_zero(z->ctx, z->acc32, (size_t)z->n_local * 4);
    if (z->full_acc32 && !(clean & REDUCED_FULL_ACC32)) dsc__dev_zero(z->ctx, z->full_acc32, (size_t)z->plan.padded * 4);
    return dsc_ctx_status(z->ctx);
}

dsc_status_t dsc__zero_zero_grads(dsc_zero_t *z) { return zero_grads_except(z, 0); }

/* Reduce-scatter of the full buffer `src` (P elements of dtype, clobbered) into this rank's
 * partition, added into acc32 in fp32. Chunk j of every partition travels together, so each
 * collective is a true reduce-scatter of `bucket` elements per rank. */
static dsc_status_t reduce_scatter_into_acc(dsc_zero_t *z, void *src, dsc_dtype_t dtype) {
    const int N = z->world_size, r = z->rank;
    const int64_t k = z->plan.part;
    const size_t es = dsc_dtype_size(dtype);
    char *s = src;
    /* optimizer offload: each reduced piece goes to the host mirror as it lands (zero.h) */
    z->mirror_all = z->mirror != NULL;
    if (N == 1) {
        dsc_status_t rc = dsc_amp_accumulate(z->ctx, z->acc32, src, dtype, (size_t)k);
        return rc == DSC_OK ? dsc__zero_mirror_range(z, -1, 0, k) : rc;
    }
    if (z->bucket >= k) { /* one collective, in place: the result lands in src's own slice */
        char *mine = s + (size_t)z->plan.begin * es;
        dsc_status_t rc = dsc_comm_reduce_scatter(z->comm, s, mine, (size_t)k, dtype);
        if (rc != DSC_OK) return comm_fail(z, rc, "gradient reduce-scatter");
        rc = dsc_amp_accumulate(z->ctx, z->acc32, mine, dtype, (size_t)k);
        return rc == DSC_OK ? dsc__zero_mirror_range(z, -1, 0, k) : rc;
    }
    char *stage = z->staging;
    for (int64_t j = 0; j < k; j += z->bucket) {
        const int64_t c = k - j < z->bucket ? k - j : z->bucket;
        for (int q = 0; q < N; q++)
            dsc__dev_copy(z->ctx, stage + (size_t)q * c * es, s + (size_t)((int64_t)q * k + j) * es, (size_t)c * es);
        char *mine = stage + (size_t)r * c * es;
        dsc_status_t rc = dsc_comm_reduce_scatter(z->comm, stage, mine, (size_t)c, dtype);
        if (rc != DSC_OK) return comm_fail(z, rc, "gradient reduce-scatter");
        rc = dsc_amp_accumulate(z->ctx, z->acc32 + j, mine, dtype, (size_t)c);
        if (rc == DSC_OK) rc = dsc__zero_mirror_range(z, -1, j, c);
        if (rc != DSC_OK) return rc;
    }
    return DSC_OK;
}

dsc_status_t dsc__zero_after_backward(dsc_zero_t *z, bool ok) {
    z->reduced_clean = 0; /* backward wrote the gradients */
    if (!ok) return z->scoped ? dsc__zero_scopes_end_backward(z, false) : DSC_OK;
    const size_t P = (size_t)z->plan.padded;
    dsc_status_t rc = DSC_OK;
    switch (z->plan.stage) {
    case 0:
        if (z->accumulate_fp32) {
            rc = dsc_amp_accumulate(z->ctx, z->acc32, z->grads, z->model_dtype, P);
            dsc__dev_zero(z->ctx, z->grads, P * msize(z));
        }
        break;
    case 1:
        if (z->scoped) { /* overlap_comm: reduced during the boundary backward (zero_grads.c) */
            rc = dsc__zero_scopes_end_backward(z, true);
            break;
        }
        if (z->full_acc32) {
            rc = dsc_amp_accumulate(z->ctx, z->full_acc32, z->grads, z->model_dtype, P);
            dsc__dev_zero(z->ctx, z->grads, P * msize(z));
        }
        break;
    default: /* stages 2-3: sent during backward, layer by layer; what remains is unscoped uses */
        rc = dsc__zero_scopes_end_backward(z, true);
        break;
    }
    return rc;
}

static dsc_status_t grad_stats(dsc_zero_t *z, bool *overflow, double *sumsq);

void dsc__zero_begin_backward(dsc_zero_t *z, bool boundary) {
    z->boundary = boundary;
    dsc__zero_mirror_boundary(z, boundary);
}

/* The reduction of the step's gradients; the sources it consumed are zeroed right away
 * (a step that fails after it, then retried, adds nothing twice) and marked in
 * reduced_clean, so the step's end does not zero them again. */
static dsc_status_t reduce(dsc_zero_t *z) {
    const size_t P = (size_t)z->plan.padded;
    const bool mixed = z->model_dtype != DSC_F32;
    dsc_status_t rc = DSC_OK;
    if (z->plan.stage == 0) {
        /* The summed buffer: fp32 accumulation, or the gradients themselves. */
        void *buf = z->accumulate_fp32 ? (void *)z->acc32 : z->grads;
        dsc_dtype_t dt = z->accumulate_fp32 ? DSC_F32 : z->model_dtype;
        /* In buckets of reduce_bucket_size elements (DeepSpeed's): the communicator's
         * staging (MPI sums 16-bit data in fp32) stays bounded by the bucket. */
        const size_t bucket = (size_t)z->cfg->reduce_bucket_size, es = dsc_dtype_size(dt);
        for (size_t off = 0; z->world_size > 1 && off < P; off += bucket) {
            const size_t n = P - off < bucket ? P - off : bucket;
            rc = dsc_comm_allreduce(z->comm, (char *)buf + off * es, (char *)buf + off * es, n, dt, DSC_REDUCE_SUM);
            if (rc != DSC_OK) return comm_fail(z, rc, "gradient all-reduce");
        }
        if (mixed && !z->accumulate_fp32) { /* 16-bit accumulation: widen once */
            rc = dsc_amp_half_to_f32(z->ctx, z->acc32, z->grads, z->model_dtype, P);
            dsc__dev_zero(z->ctx, z->grads, P * msize(z));
            z->reduced_clean |= REDUCED_GRADS;
        }
        return rc;
    }
    if (z->plan.stage == 1 && z->z1_reduced) { /* overlap_comm: done during the boundary backward */
        z->z1_reduced = false;
        return DSC_OK;
    }
    if (z->plan.stage == 1) {
        if (z->full_acc32) {
            rc = reduce_scatter_into_acc(z, z->full_acc32, DSC_F32);
            dsc__dev_zero(z->ctx, z->full_acc32, P * 4);
            z->reduced_clean |= REDUCED_FULL_ACC32;
        } else {
            rc = reduce_scatter_into_acc(z, z->grads, z->model_dtype);
            dsc__dev_zero(z->ctx, z->grads, P * msize(z));
            z->reduced_clean |= REDUCED_GRADS;
        }
    }
    return rc; /* stages 2 and 3 reduced during each backward */
}

dsc_status_t dsc__zero_reduce_gradients(dsc_zero_t *z, bool *overflow, double *sumsq) {
    *overflow = false;
    *sumsq = 0;
    dsc_status_t rc = reduce(z);
    return rc == DSC_OK ? grad_stats(z, overflow, sumsq) : rc;
}

static dsc_status_t allgather_updates(dsc_zero_t *z) {
    if (z->plan.stage == 0) return DSC_OK; /* the optimizer updated the replicated copy */
    if (dsc__z3_params_offloaded(z)) { /* offload_param: the partition from the update, then the re-gather */
        dsc_status_t rc = dsc__z3_params_after_step(z);
        return rc == DSC_OK ? dsc__zero3_refresh(z) : rc;
    }
    /* fp32 with the master on the host: the updated values go back to the working copy
     * (mixed: the engine copied the optimizer's 16-bit output there). */
    if (z->host_ctx && z->model_dtype == DSC_F32) {
        dsc_status_t rc = dsc__dev_from_host(z->ctx, dsc__zero_local_params(z), z->master, (size_t)z->n_local * 4);
        if (rc != DSC_OK) return dsc__zero_fail(z, rc, "rank %d: copying the updated parameters to the device: %s",
                                                z->rank, dsc_ctx_errmsg(z->ctx));
    }
    if (z->plan.stage == 3) return dsc__zero3_refresh(z); /* persistent and currently gathered ones */
    const size_t ms = msize(z), k = (size_t)z->plan.part;
    char *mine = (char *)z->params + (size_t)z->plan.begin * ms;
    if (z->model_dtype == DSC_F32 && !z->host_ctx) dsc__dev_copy(z->ctx, mine, z->master, k * 4); /* mixed: the optimizer wrote it */
    if (z->world_size == 1) return DSC_OK;
    dsc_status_t rc = dsc_comm_allgather(z->comm, mine, z->params, k, z->model_dtype);
    return rc == DSC_OK ? DSC_OK : comm_fail(z, rc, "parameter all-gather");
}

void *dsc__zero_local_params(const dsc_zero_t *z) {
    if (z->plan.stage == 1 || z->plan.stage == 2) return (char *)z->params + (size_t)z->plan.begin * msize(z);
    return z->params; /* stage 0: everything; stage 3: the local shards */
}

dsc_status_t dsc__zero_finish_step(dsc_zero_t *z) {
    dsc_status_t rc = allgather_updates(z);
    /* what the reduction zeroed is not zeroed twice (stage 1: the P fp32 sums) */
    return rc == DSC_OK ? zero_grads_except(z, z->reduced_clean) : rc;
}

static dsc_status_t grad_stats(dsc_zero_t *z, bool *overflow, double *sumsq) {
    /* This rank's extent; partitions are combined across ranks (stage 0 ranks already hold
     * the same reduced sum). */
    *overflow = false;
    *sumsq = 0;
    dsc_status_t rc = dsc_amp_scan(z->ctx, z->acc32, DSC_F32, (size_t)z->n_local, overflow, sumsq);
    if (rc != DSC_OK || z->plan.stage == 0 || z->world_size == 1) return rc;
    double v[2] = {*overflow ? 1.0 : 0.0, *sumsq};
    rc = dsc_comm_allreduce(z->comm, v, v, 2, DSC_F64, DSC_REDUCE_SUM);
    if (rc != DSC_OK)
        return dsc__zero_fail(z, rc, "rank %d: gradient norm all-reduce failed: %s", z->rank, dsc_ctx_errmsg(z->ctx));
    *overflow = v[0] > 0 || !isfinite(v[1]);
    *sumsq = v[1];
    return DSC_OK;
}

/* ---- the ZeRO object ---------------------------------------------------------------- */

dsc_status_t dsc__zero_create(const dsc_zero_setup_t *s, dsc_zero_t **out, char *err, size_t errsz) {
    *out = NULL;
    dsc_zero_t *z = calloc(1, sizeof *z);
    if (!z) {
        snprintf(err, errsz, "out of memory creating the ZeRO state");
        return DSC_ERR_NOMEM;
    }
    z->ctx = s->ctx;
    z->model = s->model;
    z->comm = s->comm;
    z->cfg = s->cfg;
    z->plan = s->plan;
    z->world_size = s->plan.world;
    z->rank = s->plan.rank;
    z->numel = s->plan.numel;
    z->model_dtype = s->model_dtype;
    z->accumulate_fp32 = s->accumulate_fp32;
    z->host_ctx = s->host_ctx;
    z->pin_memory = s->pin_memory;
    z->errmsg = s->errmsg;
    z->errmsg_size = s->errmsg_size;
    z->param_ctx = s->plan.stage == 3 ? s->param_host_ctx : NULL; /* offload_param: stage 3 only */
    z->param_pin = s->param_pin;
    z->pnvme_opts = s->plan.stage == 3 ? s->param_nvme : NULL;
    dsc_status_t rc = alloc_state(z, err, errsz);
    z->pnvme_opts = NULL;
    if (rc != DSC_OK) {
        dsc__zero_free(z);
        return rc;
    }
    *out = z;
    return DSC_OK;
}

void dsc__zero_free(dsc_zero_t *z) {
    if (!z) return;
    /* Unbind the model: its tensors must not point into freed buffers. */
    const char *lo = z->params, *hi = lo ? lo + (size_t)z->plan.padded * msize(z) : NULL;
    for (int i = 0; i < dsc_model_param_count(z->model); i++) {
        dsc_param_info_t info;
        dsc_model_param_info(z->model, i, &info);
        const char *d = dsc_tensor_data(info.tensor);
        if (info.tensor && lo && d >= lo && d < hi) {
            info.tensor->data = NULL;
            if (info.tensor->grad) info.tensor->grad->data = NULL;
        }
    }
    free_state(z);
    free(z->mirrored);
    free(z);
}

float *dsc__zero_master(const dsc_zero_t *z) { return z->master; }
void dsc__zero_buffers(const dsc_zero_t *z, void **params, void **grads) {
    *params = z->params;
    *grads = z->grads;
}
float *dsc__zero_grad32(const dsc_zero_t *z) { return z->acc32; }
int64_t dsc__zero_n_local(const dsc_zero_t *z) { return z->n_local; }
const dsc_amp_segment_t *dsc__zero_segments(const dsc_zero_t *z, const int **param_of, size_t *n) {
    if (param_of) *param_of = z->segment_param;
    if (n) *n = z->n_segments;
    return z->segments;
}

int64_t dsc__zero_local_index(const dsc_zero_t *z, int i, int64_t a) {
    if (z->plan.stage == 3) return z->p[i].local + (a - (int64_t)z->rank * z->p[i].shard);
    dsc_param_info_t info;
    dsc_model_param_info(z->model, i, &info);
    return info.offset + a - (z->plan.stage == 0 ? 0 : z->plan.begin);
}

dsc_status_t dsc__zero_write_back(dsc_zero_t *z, int i, int root) {
    dsc_param_info_t info;
    dsc_model_param_info(z->model, i, &info);
    dsc_tensor_t *t = info.tensor;
    const size_t ms = msize(z);
    dsc_status_t rc = z->world_size > 1 ? dsc_comm_broadcast(z->comm, t->data, (size_t)info.numel, z->model_dtype, root)
                                        : DSC_OK;
    if (rc != DSC_OK)
        return dsc__zero_fail(z, rc, "rank %d: dsc_engine_release_params: broadcast of %s from rank %d failed: %s",
                              z->rank, info.name, root, dsc_comm_errmsg(z->comm));
    int64_t a = 0, b = info.numel; /* stage 0: all of it */
    if (z->plan.stage >= 1 && !dsc__zero_slice(&z->plan, z->rank, info.offset, info.numel, &a, &b)) return DSC_OK;
    const int64_t local = dsc__zero_local_index(z, i, a);
    if (z->plan.stage == 3 && (rc = dsc__z3_shard_out(z, local, (char *)t->data + (size_t)a * ms, (size_t)(b - a))) != DSC_OK)
        return dsc__zero_fail(z, rc, "rank %d: dsc_engine_release_params: writing %s back to this rank's partition "
                              "failed: %s", z->rank, info.name, dsc_ctx_errmsg(z->ctx));
    if (z->master == (float *)z->params && z->plan.stage != 1 && z->plan.stage != 2) return DSC_OK; /* fp32 stages 0, 3: the data is the master */
    const void *src = (char *)t->data + (size_t)a * ms;
    if (!z->host_ctx) return dsc__dev_convert(z->ctx, z->master + local, DSC_F32, src, z->model_dtype, (size_t)(b - a));
    /* the master on the host: widened on the device, then copied over */
    const size_t n = (size_t)(b - a);
    if (z->model_dtype == DSC_F32) return dsc__dev_to_host(z->ctx, z->master + local, src, n * 4);
    float *wide = dsc__dev_alloc(z->ctx, DSC_MEM_OTHER, n * 4);
    if (!wide) return dsc__zero_fail(z, DSC_ERR_NOMEM, "rank %d: out of memory widening %s", z->rank, info.name);
    rc = dsc__dev_convert(z->ctx, wide, DSC_F32, src, z->model_dtype, n);
    if (rc == DSC_OK) rc = dsc__dev_to_host(z->ctx, z->master + local, wide, n * 4);
    dsc__dev_free(z->ctx, DSC_MEM_OTHER, wide, n * 4);
    return rc;
}

float *dsc__zero_master_alloc(dsc_zero_t *z, size_t n_local) {
    if (!z->host_ctx) return dsc__dev_alloc(z->ctx, DSC_MEM_OPTIM, n_local * 4);
    return dsc__host_buffer_alloc(z->host_ctx, z->ctx, DSC_MEM_OPTIM, n_local * 4, z->pin_memory, &z->master_pinned,
                                  "the offloaded optimizer's fp32 master weights");
}

void dsc__zero_master_free(dsc_zero_t *z) {
    const size_t bytes = (size_t)z->n_local * 4;
    if (!z->host_ctx) dsc__dev_free(z->ctx, DSC_MEM_OPTIM, z->master, bytes);
    else dsc__host_buffer_free(z->host_ctx, z->ctx, DSC_MEM_OPTIM, z->master, bytes, z->master_pinned);
    z->master = NULL;
}

dsc_status_t dsc__zero_master_from_device(dsc_zero_t *z, const float *dev32) {
    const size_t bytes = (size_t)z->n_local * 4;
    if (z->host_ctx) return dsc__dev_to_host(z->ctx, z->master, dev32, bytes);
    return dsc__dev_copy(z->ctx, z->master, dev32, bytes);
}

bool dsc__zero_master_on_host(const dsc_zero_t *z, bool *pinned) {
    if (pinned) *pinned = z->master_pinned;
    return z->host_ctx != NULL;
}

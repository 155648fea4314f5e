/* Private to src/zero: the ZeRO state object (zero.h) and the parameter table behind
 * parameter scopes (zero_scopes.c: partitions, gathering, the schedule; zero_grads.c:
 * gradient buffers and sending them to their owners, stage 1's boundary sends with
 * overlap_comm; zero_state.c: the flat state, reductions and the all-gather after the
 * optimizer). */
#ifndef DSC_ZERO_INTERNAL_H
#define DSC_ZERO_INTERNAL_H

#include "core/internal.h"
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
    /* Stage 1 with overlap_comm (zero_grads.c): backward uses finished this micro-step, those
     * of the last micro-step (-1: none seen yet), and whether its range was sent this
     * boundary backward. */
    int bwd_uses, bwd_expected;
    bool z1_sent;
} z3_param_t;

typedef enum { TRACE_RECORDING, TRACE_READY, TRACE_INVALID } z3_trace_state_t;

typedef struct z3_lookup {
    const dsc_tensor_t *tensor;
    int index;
} z3_lookup_t;

struct dsc_zero {
    dsc_ctx_t *ctx;
    dsc_model_t *model;
    dsc_comm_t *comm;
    const dsc_config_zero_t *cfg;
    dsc_zero_plan_t plan;
    int world_size, rank;
    int64_t numel;            /* P0: parameters in the model */
    dsc_dtype_t model_dtype;
    bool accumulate_fp32;
    /* Optimizer offload "cpu" (zero.h): master is host memory counted on host_ctx. */
    dsc_ctx_t *host_ctx;
    bool pin_memory, master_pinned;
    /* ... and the host mirror of acc32 (zero.h): on while mirror_on (a boundary micro-step),
     * mirrored[i]: parameter i's range copied since the last zeroing; mirror_all: the whole
     * extent (stage 1's reduction). */
    float *mirror;
    bool mirror_on, mirror_all;
    bool *mirrored;
    char *errmsg;
    size_t errmsg_size;
    /* offload_param "cpu" (zero_param_offload.c): params (stage 3's local shards) is host
     * memory counted on param_ctx, page-locked when params_pinned. NULL: device memory. */
    dsc_ctx_t *param_ctx;
    bool param_pin, params_pinned;
    /* Recorded at each gather's upload of a shard from params (from_host_async, where the
     * device has it; NULL otherwise): the host waits for it before it writes params. */
    struct dsc_device_event *params_up;
    /* offload_param "nvme" (zero_param_offload.c, param_nvme.c): the local shards live in this
     * swap file instead (params is NULL). */
    struct dsc_pnvme *pnvme;
    const struct dsc_pnvme_options *pnvme_opts; /* its options, during dsc__zero_create only */

    /* Flat model state, all laid out over the padded length plan.padded (P):
     *   params     working copy the model is bound to, model_dtype, P elements (DSC_MEM_PARAMS);
     *              stage 3: this rank's shards (n_local elements);
     *   grads      what autograd accumulates into, model_dtype, P (DSC_MEM_GRADS); stages
     *              2-3 have none (a layer's gradients live during its backward);
     *   master     fp32 master weights: stage 0 P elements (`params` itself for fp32 models),
     *              stages 1-3 this rank's extent of n_local elements (DSC_MEM_OPTIM);
     *   acc32      fp32 gradients the optimizer reads, the same extent as master
     *              (`grads` itself for fp32 models at stage 0, else DSC_MEM_GRAD_ACCUM);
     *   full_acc32 stage 1 with fp32 accumulation of 16-bit gradients: P fp32 elements;
     *   staging    bucket buffer for reduce-scatter (DSC_MEM_COMM).
     * Gradient sums in acc32 are not yet divided by the world size: 1/N is folded into the
     * optimizer's gradient scale. */
    void *params;
    void *grads;
    float *master;
    float *acc32;
    float *full_acc32;
    void *staging;
    size_t staging_bytes;
    unsigned reduced_clean;   /* REDUCED_*: zeroed by this step's reduction, not written since */
    int64_t bucket;           /* reduce-scatter chunk per rank (elements) */
    int64_t n_local;          /* elements of master/acc32: P (stage 0), plan.part (1-2), sum of shards (3) */
    /* Segments of acc32 that belong to parameter tensors (naming inf/NaN) and their index. */
    dsc_amp_segment_t *segments;
    int *segment_param;
    size_t n_segments;

    /* Stages 2-3, and stage 1 with overlap_comm on several ranks: the parameter table behind
     * the context's parameter hooks. */
    bool scoped;
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
    /* The micro-step whose backward runs is the accumulation boundary (dsc__zero_begin_backward). */
    bool boundary;
    /* Stage 1 with overlap_comm (zero_grads.c): the parameter whose send also carries the
     * padding [P0, P); and whether the boundary backward reduced every accumulated gradient
     * (the step's reduction then has nothing left to send). */
    int z1_tail;
    bool z1_reduced;
    /* The pool of per-use buffers (zero_pool.c): idle ones, bytes taken now, the most ever
     * taken at once (the cap on idle bytes), and how many were allocated (tests: none after
     * the first micro-step of a GPT). */
    struct zero_pool_buf *pool;
    int pool_n, pool_len;
    struct zero_pool_class *pool_classes; /* per size and category: taken now, most at once, idle */
    int pool_nclasses, pool_classes_len;
    size_t pool_idle, pool_taken, pool_cap;
    int64_t pool_allocs;
};

enum { REDUCED_GRADS = 1u, REDUCED_FULL_ACC32 = 2u };

/* Records a message on the context (and the engine's message); returns status. */
dsc_status_t dsc__zero_fail(dsc_zero_t *z, dsc_status_t status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

static inline size_t dsc__z3_msize(const dsc_zero_t *z) { return dsc_dtype_size(z->model_dtype); }
/* Bytes of a parameter's gathered copy and of its gradient buffer: stage 3 pads to shard*N. */
static inline size_t dsc__z3_full_bytes(const dsc_zero_t *z, const z3_param_t *p) {
    if (z->plan.stage == 2) return (size_t)p->numel * dsc__z3_msize(z);
    return (size_t)p->shard * (size_t)z->world_size * dsc__z3_msize(z);
}

/* zero_host.c: the host mirror of acc32 [offset, offset + n) after an addition into it (a
 * no-op unless mirroring); parameter i (-1: none) marked as mirrored; the marks cleared. */
dsc_status_t dsc__zero_mirror_range(dsc_zero_t *z, int i, int64_t offset, int64_t n);
void dsc__zero_mirror_clear(dsc_zero_t *z);

/* zero_state.c: master's allocation (on the device, or on the host when offloaded), its
 * free, and the fp32 initial values of this rank's extent from a device buffer dev32 of
 * n_local floats. */
float *dsc__zero_master_alloc(dsc_zero_t *z, size_t n_local);
void dsc__zero_master_free(dsc_zero_t *z);
dsc_status_t dsc__zero_master_from_device(dsc_zero_t *z, const float *dev32);

/* zero_state.c: the model's initial fp32 values (its own or its initialisation), broadcast
 * from rank 0, into init32 (numel floats, flat layout). */
dsc_status_t dsc__zero_initial_values(dsc_zero_t *z, float *init32);

/* zero_scopes.c: stages 2-3. Allocation and binding (installs the context's parameter
 * hooks), release, the end of a micro-step's backward (unscoped uses; ok = false drops
 * every hold without communicating), the re-gather of gathered parameters after a step. */
dsc_status_t dsc__zero_alloc_state3(dsc_zero_t *z, char *err, size_t errsz);
void dsc__zero_free_state3(dsc_zero_t *z);
/* Stage 2: gradient buffers per layer in backward through the same hooks (binds the
 * model to z->params); freed with dsc__zero_free_scopes. */
dsc_status_t dsc__zero_scopes_stage2(dsc_zero_t *z, char *err, size_t errsz);
/* Stage 1 with overlap_comm on several ranks: the same hooks, over the model already bound to
 * the flat buffers, tell zero_grads.c when each parameter's backward is done. */
dsc_status_t dsc__zero_scopes_stage1(dsc_zero_t *z, char *err, size_t errsz);
void dsc__zero_free_scopes(dsc_zero_t *z);
dsc_status_t dsc__zero_scopes_end_backward(dsc_zero_t *z, bool ok);
dsc_status_t dsc__zero3_refresh(dsc_zero_t *z);

/* zero_param_offload.c: stage 3's local shards (z->params, n_local elements) on the device or,
 * with offload_param, in host memory; a shard of p into a device buffer (before its
 * all-gather); n elements from a device buffer into the partition at local offset `local`
 * (an edit's write-back); the partition from n_local fp32 values in device memory (the
 * initial values); after an optimizer step, the partition from the updated master unless the
 * host optimizer wrote it there itself. */
/* Whether the partition is offloaded ("cpu": host memory, or "nvme": the swap file). */
static inline bool dsc__z3_params_offloaded(const dsc_zero_t *z) { return z->param_ctx || z->pnvme; }
/* The allocation: device memory, host memory ("cpu"), or the swap file ("nvme", created here
 * for the table's shards: z->params stays NULL); err names the key and path. */
dsc_status_t dsc__z3_params_create(dsc_zero_t *z, size_t bytes, char *err, size_t errsz);
/* stage 3's schedule with "nvme": parameter i's shard read ahead (false: not started), and
 * whether its shard can be had without waiting for the disk (always true without "nvme"). */
bool dsc__z3_read_ahead(dsc_zero_t *z, int i);
bool dsc__z3_shard_ready(dsc_zero_t *z, int i);
void *dsc__z3_params_alloc(dsc_zero_t *z, size_t bytes);
void dsc__z3_params_free(dsc_zero_t *z, size_t bytes);
dsc_status_t dsc__z3_shard_in(dsc_zero_t *z, void *dst, const z3_param_t *p);
dsc_status_t dsc__z3_shard_out(dsc_zero_t *z, int64_t local, const void *src, size_t n);
dsc_status_t dsc__z3_params_from_device32(dsc_zero_t *z, const float *dev32);
dsc_status_t dsc__z3_params_after_step(dsc_zero_t *z);

/* zero_pool.c: a per-use device buffer of `bytes` under `category` (zero-filled when
 * `zeroed`, else with unspecified contents), given back with dsc__zero_pool_give; the
 * pool's idle buffers are freed by dsc__zero_pool_free. NULL (recorded) when out of memory. */
void *dsc__zero_pool_take(dsc_zero_t *z, dsc_mem_category_t category, size_t bytes, bool zeroed);
void dsc__zero_pool_give(dsc_zero_t *z, dsc_mem_category_t category, void *ptr, size_t bytes);
void dsc__zero_pool_free(dsc_zero_t *z);

/* zero_grads.c */
dsc_status_t dsc__z3_comm_fail(dsc_zero_t *z, dsc_status_t rc, const char *what, const z3_param_t *p);
/* A zeroed gradient buffer for p (or one more holder of the existing one). */
dsc_status_t dsc__z3_give_grad(dsc_zero_t *z, z3_param_t *p);
void dsc__z3_free_grad(dsc_zero_t *z, z3_param_t *p);
/* p's gradient to its owners, added into acc32; with overlap_comm the collective is left in
 * flight (its buffer detached from p) and finished by a later send or dsc__z3_drain_sends. */
dsc_status_t dsc__z3_send_grad(dsc_zero_t *z, z3_param_t *p);
/* Finishes every send in flight (ok = false: waits without adding, on a failed backward). */
dsc_status_t dsc__z3_drain_sends(dsc_zero_t *z, bool ok);
/* Stage 1 with overlap_comm: p's backward is about to add into its gradient (one more holder);
 * a backward use of p is done (on the boundary its range is sent once its uses reach those of
 * the last micro-step); the end of a micro-step's backward (boundary: every range not yet sent
 * is sent, all of them waited for, the sources zeroed; ok = false: waits without adding). */
dsc_status_t dsc__z1_give_grad(dsc_zero_t *z, z3_param_t *p);
dsc_status_t dsc__z1_backward_done(dsc_zero_t *z, z3_param_t *p);
dsc_status_t dsc__z1_end_backward(dsc_zero_t *z, bool ok);

#endif

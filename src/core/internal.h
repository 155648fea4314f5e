/* Internal definitions shared by the library's layers: the layout of a context, a tensor
 * and a tape node, and the helpers every op uses to create outputs and record itself.
 * Never installed; nothing outside src/ includes it. */
#ifndef DSC_CORE_INTERNAL_H
#define DSC_CORE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/device.h"
#include "dsc/tensor.h"

struct dsc_backend; /* src/ops/backend.h */
struct dsc_node;

#define DSC_ALIGN 64
#define DSC_ERRMSG_MAX 2048

struct dsc_tensor {
    int ndim;
    int64_t shape[DSC_MAX_DIMS];
    int64_t numel;
    dsc_dtype_t dtype;
    void *data;                /* numel elements of dtype, contiguous row-major, on `device` */
    dsc_device_t *device;      /* where data lives (the creating context's device) */
    dsc_tensor_t *grad;        /* same shape and dtype; NULL until backward reaches it */
    bool requires_grad;
    bool persistent;           /* header malloc'ed (parameters), not in the arena */
    bool grad_is_external;     /* grad wraps caller memory (a flat gradient buffer) */
    bool grad_pooled;          /* grad is a block of the context's gradient pool (src/core/grad_pool.c) */
    bool unwritten;            /* (a pooled gradient) its value is 0 but its bytes were never written:
                                  dsc__grad zero-fills it, dsc__grad_overwrite hands it to a writer */
    const char *name;          /* optional, for messages */
    struct dsc_node *producer; /* the tape node that made this tensor; NULL for leaves */
};

/* Backward of one node: reads node->out->grad and adds into its inputs' gradients. */
typedef void (*dsc_backward_fn)(dsc_ctx_t *ctx, struct dsc_node *node);

#define DSC_NODE_MAX_INPUTS 4
#define DSC_NODE_MAX_SAVED 4

/* One recorded op. Lives in the arena; the tape lists them in execution order. */
typedef struct dsc_node {
    const char *op;            /* op name for messages */
    dsc_backward_fn backward;
    dsc_tensor_t *out;
    int n_in;
    dsc_tensor_t *in[DSC_NODE_MAX_INPUTS];
    dsc_tensor_t *saved[DSC_NODE_MAX_SAVED]; /* extra tensors kept for backward */
    double f[4];               /* op scalars (scale, eps, p, ...) */
    int64_t i[4];              /* op integers (axes, heads, ignore index, ...) */
    /* Multi-output nodes (activation checkpoints): outs[0..n_outs) are the outputs, out is
     * outs[0]; backward runs when any of them has a gradient. Ops leave n_outs at 0. */
    int n_outs;
    dsc_tensor_t **outs;
    void *ext;                 /* op-specific state (an activation checkpoint's record) */
    /* Markers (parameter scopes under ZeRO-3) have no output and run in backward whether
     * or not a gradient reached them. */
    bool always_run;
} dsc_node_t;

/* Bump allocators for everything that lives for one step. Two of them: host metadata
 * (tensor headers, tape nodes, scope and checkpoint records) and tensor data (device
 * memory from the device's allocator). A chunk's header is host memory apart from its
 * bytes, so the data arena never touches device memory from the host. */
typedef struct dsc_arena_chunk {
    struct dsc_arena_chunk *next;
    size_t capacity;
    size_t used;
    char *base;                /* capacity bytes, DSC_ALIGN aligned (host or device) */
} dsc_arena_chunk_t;

typedef struct dsc_arena {
    dsc_arena_chunk_t *head;   /* chunk being filled; older chunks follow */
    dsc_arena_chunk_t *spare;  /* one chunk kept across steps to avoid malloc churn */
    size_t used_bytes;         /* bytes handed out this step (counted as activations) */
    bool on_device;            /* chunks come from the context's device */
} dsc_arena_t;

/* A position in one arena. */
typedef struct dsc_arena_pos {
    dsc_arena_chunk_t *chunk;  /* head chunk at the mark (NULL: the arena was empty) */
    size_t chunk_used;         /* its fill level then */
    size_t used_bytes;         /* arena->used_bytes then */
} dsc_arena_pos_t;

/* A position in the step arenas (dsc__arena_mark): metadata and data together; rewinding
 * to it releases everything allocated since in both, as the end of a step does. */
typedef struct dsc_arena_mark {
    dsc_arena_pos_t meta, data;
} dsc_arena_mark_t;

/* The gradient pool (src/core/grad_pool.c): exact-size device blocks for the gradients
 * of activations, given back during backward. */
typedef struct dsc_grad_block dsc_grad_block_t;
typedef struct dsc_grad_pool {
    dsc_grad_block_t **blocks; /* every block held, in use or idle */
    size_t n, cap;
    size_t in_use_bytes;
} dsc_grad_pool_t;

/* Activation checkpointing settings and counters (dsc/checkpoint.h). */
typedef struct dsc_ckpt_state {
    int number_checkpoints;    /* 0: the model decides */
    bool synchronize, profile, partition_activations, cpu_checkpointing, contiguous_memory_optimization;
    int64_t forwards, recomputes;  /* checkpointed forward calls and recomputes since the context began */
    double forward_seconds, recompute_seconds, backward_seconds;
} dsc_ckpt_state_t;

/* Where partitioned parameters come from (ZeRO-3): the engine installs these on its
 * context; layers reach them through parameter scopes (dsc/nn.h, src/nn/param_scope.c).
 * With no hooks every parameter is always materialised and scopes cost nothing. */
typedef struct dsc_param_hooks {
    void *user;
    /* Makes the parameters' data valid (gathers them). for_backward: also gives each one a
     * zeroed gradient buffer for the backward that follows. Records errors on the context. */
    dsc_status_t (*acquire)(void *user, dsc_tensor_t *const *params, int n, bool for_backward);
    /* Ends an acquire: after_backward first sends the gradients to their owners; then the
     * gathered values may be freed. */
    dsc_status_t (*release)(void *user, dsc_tensor_t *const *params, int n, bool after_backward);
    /* Every use of a parameter (dsc_param_compute). Outside any scope it is acquired (with
     * a gradient buffer) and kept until the engine's end of the micro-step. */
    dsc_status_t (*use)(void *user, dsc_tensor_t *param);
} dsc_param_hooks_t;

struct dsc_ctx {
    dsc_status_t status;
    char errmsg[DSC_ERRMSG_MAX];
    dsc_log_fn log_fn;
    void *log_user;
    dsc_log_level_t log_level;

    dsc_mem_stats_t mem[DSC_MEM_CATEGORY_COUNT];

    dsc_arena_t arena;         /* host metadata of the step: headers, tape nodes, records */
    dsc_arena_t data_arena;    /* tensor data of the step, on the device */
    dsc_node_t **tape;
    size_t tape_len, tape_cap;
    bool backward_done;        /* backward ran since the last end of step */
    /* Backward gives an activation's gradient back (to grad_pool) once the node that
     * produced the activation has run its backward. Set by the engine, which ends the step
     * right after backward (nobody reads an intermediate gradient then); plain autograd
     * keeps every gradient until the end of the step. */
    bool release_grads;
    dsc_grad_pool_t grad_pool;
    /* gelu(pre) made ahead by the gemm that made pre (src/ops/op_linear.c
     * dsc__linear_gelu_ahead), in grad-pool scratch, for the next op reading pre; NULL when
     * none is waiting */
    struct {
        const dsc_tensor_t *pre;
        void *gelu;
    } gelu_ahead;
    /* The loss's gradient ahead of backward (src/ops/op_lm_head.c): `seed_hint` is the seed
     * the engine will give dsc_autograd_backward_scaled for the next loss (0: none known), so
     * the LM head's loss may write its logits' gradient in the forward pass; `root` and
     * `seed` are the backward actually running (root NULL outside backward), against which
     * the op checks that guess. */
    struct {
        double seed_hint;
        const dsc_tensor_t *root;
        double seed;
    } loss_grad;

    uint64_t rng_state;
    uint64_t drop_seed, drop_offset; /* the Philox dropout stream (src/core/philox.h) */
    bool training;
    int no_grad_depth;

    dsc_device_t device;       /* where tensors and model state live (src/core/device.c) */
    const struct dsc_backend *backend; /* device.table->ops: the op kernels */

    dsc_ckpt_state_t ckpt;     /* activation checkpointing (src/core/recompute.c) */
    const dsc_param_hooks_t *param_hooks; /* ZeRO-3; NULL otherwise */
    /* Set by the communicators whose waits only order later device work (NCCL, src/comm;
     * every such communicator of the context is checked, user is their list): called before
     * and after each host call that may block inside the device behind their collectives:
     * blocking reads (dsc__dev_to_host, dsc__dev_sync, dsc__dev_event_sync, and the CUDA
     * device's own read-backs and synchronising copies), which wait for the context's
     * streams, and calls that wait for the whole device (whole_device: freeing device or
     * page-locked memory, growing the CUDA device's scratch). Before (before = true) it
     * waits, polling, for the collectives the call would wait behind; when a communicator's
     * watchdog found one stuck, it reports it ("noticed by <what>") and ends the job, and the
     * call is then not made. NULL: none. */
    dsc_status_t (*host_read_check)(void *user, bool before, bool whole_device, const char *what);
    void *host_read_check_user;
    /* Device buffers (pinned: page-locked host buffers) whose free the host-read check
     * refused (a collective that may still write them was reported stuck): kept, never
     * handed back to the device, until the context is freed (dsc__dev_free_parked). */
    struct dsc_parked_free {
        void *ptr;
        size_t n_bytes;
        bool pinned;
    } *parked;
    size_t n_parked, cap_parked;
};

/* ---- memory ---- */
/* Zeroed host memory counted under `category`: bookkeeping that the host reads and writes
 * (optimizer objects, segment tables), apart from device buffers (dsc_ctx_alloc). NULL +
 * DSC_ERR_NOMEM (recorded) on failure. */
void *dsc__host_alloc(dsc_ctx_t *ctx, dsc_mem_category_t category, size_t n_bytes);
void dsc__host_free(dsc_ctx_t *ctx, dsc_mem_category_t category, void *ptr, size_t n_bytes);
void dsc__mem_add(dsc_ctx_t *ctx, dsc_mem_category_t cat, size_t n_bytes);
void dsc__mem_sub(dsc_ctx_t *ctx, dsc_mem_category_t cat, size_t n_bytes);
/* Step-arena allocation, DSC_ALIGN aligned, not zeroed. NULL + DSC_ERR_NOMEM on failure.
 * dsc__arena_alloc: host metadata (headers, nodes, records); dsc__arena_alloc_data:
 * tensor data on the context's device (never dereference it on the host). */
void *dsc__arena_alloc(dsc_ctx_t *ctx, size_t n_bytes);
/* The context RNG's draws by position (src/core/ctx.c): draw k after state s0 (k = 0 is
 * the next dsc_ctx_rand_uniform), the normal made of draws 2i and 2i + 1 (as
 * dsc_ctx_rand_normal), and advancing the state past n draws. */
double dsc__rng_uniform_at(uint64_t s0, uint64_t k);
double dsc__rng_normal_at(uint64_t s0, uint64_t i);
void dsc__rng_skip(dsc_ctx_t *ctx, uint64_t n_draws);
void *dsc__arena_alloc_data(dsc_ctx_t *ctx, size_t n_bytes);
void dsc__arena_reset(dsc_ctx_t *ctx);
/* Frees one chunk of arena a (its bytes through the device when a is on the device). */
void dsc__arena_chunk_free(dsc_ctx_t *ctx, const dsc_arena_t *a, dsc_arena_chunk_t *c);
void dsc__arena_free(dsc_ctx_t *ctx);
/* The current arena position, and rewinding to it (src/core/arena_mark.c): everything
 * allocated since the mark is released (its bytes leave the activation counter); marks
 * nest like a stack, and a rewind past a later mark invalidates that mark. Returns
 * DSC_ERR_MISUSE (recorded) when the mark is not in the arena any more (the step ended
 * in between). */
dsc_arena_mark_t dsc__arena_mark(const dsc_ctx_t *ctx);
dsc_status_t dsc__arena_rewind(dsc_ctx_t *ctx, dsc_arena_mark_t mark);
/* True when `ptr` points into memory handed out after `mark` (and not yet rewound). */
bool dsc__arena_since_mark(const dsc_ctx_t *ctx, dsc_arena_mark_t mark, const void *ptr);

/* The gradient pool (src/core/grad_pool.c). take: a gradient for `owner` (same shape and
 * dtype) marked unwritten (its bytes are not filled: see dsc__grad and
 * dsc__grad_overwrite), set as owner->grad with owner->grad_pooled; NULL + DSC_ERR_NOMEM
 * (recorded) on failure. release: gives t's pooled gradient back and clears t->grad (no-op
 * when t has none). end_step: takes every block back (the step's tensors are gone) and
 * frees the blocks the step did not use. held_bytes: device bytes the pool holds. */
dsc_tensor_t *dsc__grad_pool_take(dsc_ctx_t *ctx, dsc_tensor_t *owner);
void dsc__grad_pool_release(dsc_ctx_t *ctx, dsc_tensor_t *t);
void dsc__grad_pool_end_step(dsc_ctx_t *ctx);
void dsc__grad_pool_free(dsc_ctx_t *ctx);
size_t dsc__grad_pool_held_bytes(const dsc_ctx_t *ctx);
/* Device scratch of n_bytes from the same pool, for the duration of one op (counted as
 * activations while held): NULL + DSC_ERR_NOMEM (recorded) on failure; give it back with
 * dsc__grad_pool_scratch_give before the op returns. */
void *dsc__grad_pool_scratch(dsc_ctx_t *ctx, size_t n_bytes);
void dsc__grad_pool_scratch_give(dsc_ctx_t *ctx, void *ptr);

/* ---- tensors ---- */
/* An arena tensor with uninitialised data (op outputs that are fully overwritten). */
dsc_tensor_t *dsc__tensor_empty(dsc_ctx_t *ctx, dsc_dtype_t dtype, int ndim, const int64_t *shape);
/* Same shape and dtype as `like`. */
dsc_tensor_t *dsc__tensor_empty_like(dsc_ctx_t *ctx, const dsc_tensor_t *like);
dsc_tensor_t *dsc__tensor_zeros_like(dsc_ctx_t *ctx, const dsc_tensor_t *like);
/* "(2, 3, 4)" into buf. */
const char *dsc__shape_str(const dsc_tensor_t *t, char *buf, size_t n);
bool dsc__is_float(dsc_dtype_t dtype);

/* ---- tape ---- */
/* True when an op whose inputs are `in` must be recorded (grad enabled, some input
 * requires grad). */
bool dsc__needs_grad(const dsc_ctx_t *ctx, int n_in, dsc_tensor_t *const *in);
/* Appends a node for `out` made from `in`; marks out as requiring grad. Returns the node
 * (to fill saved/f/i) or NULL after recording DSC_ERR_NOMEM. */
dsc_node_t *dsc__record(dsc_ctx_t *ctx, const char *op, dsc_backward_fn backward, dsc_tensor_t *out,
                        int n_in, dsc_tensor_t *const *in);
/* Appends a marker node: no inputs or output, `backward` always runs (with `ext`).
 * Returns the node or NULL after recording DSC_ERR_NOMEM. */
dsc_node_t *dsc__record_marker(dsc_ctx_t *ctx, const char *op, dsc_backward_fn backward, void *ext);
/* The gradient of `t`, created zero-filled on first use; NULL if t does not require grad
 * (so backward functions skip inputs that need nothing) or on allocation failure. */
dsc_tensor_t *dsc__grad(dsc_ctx_t *ctx, dsc_tensor_t *t);
/* The same gradient for an op that writes every element of it: *overwrite is true when the
 * gradient holds nothing yet (an activation's, fresh from the pool), and the caller must then
 * write it (a gemm with beta 0, a copy) instead of adding to it; false: add as with
 * dsc__grad. Saves the zero fill and the read of zeros on the step's largest gradients. */
dsc_tensor_t *dsc__grad_overwrite(dsc_ctx_t *ctx, dsc_tensor_t *t, bool *overwrite);
/* True when some output of `node` has a gradient (its backward has work to do). */
bool dsc__node_has_grad(const dsc_node_t *node);
/* Runs the backward of tape[from..ctx->tape_len) in reverse (nodes without gradient are
 * skipped). Nodes may append to the tape while it runs (a recompute), provided they
 * truncate it back before returning. Returns the context's status. */
dsc_status_t dsc__run_tape_range(dsc_ctx_t *ctx, size_t from);

/* ---- dropout stream ---- */
/* The offset of the next draw of n values from the context's dropout stream, advancing
 * the stream by dsc_philox_advance(n) (whole Philox counters). */
uint64_t dsc__ctx_dropout_draw(dsc_ctx_t *ctx, uint64_t n);

/* ---- errors ---- */
/* Like dsc_ctx_set_error but returns NULL, for ops. */
void *dsc__fail(dsc_ctx_t *ctx, dsc_status_t status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

#endif

/* Backward from a non-scalar output with a given upstream gradient (same shape as out):
 * the gradient checker uses it to test every op in isolation. */
dsc_status_t dsc__autograd_backward_from(dsc_ctx_t *ctx, dsc_tensor_t *out, const dsc_tensor_t *out_grad);

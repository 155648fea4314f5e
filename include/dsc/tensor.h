/* dsc/tensor.h: the runtime context, dtypes, and tensors.
 *
 * A dsc_ctx_t is everything a training process needs that is not model state: the
 * memory counters, the autograd tape, the per-step activation arena, the random-number
 * generator, the compute backend, the last error message and the log sink. There is no
 * global state: two contexts (and two engines built on them) coexist in one process.
 * A context is not thread-safe; use one per thread.
 *
 * A dsc_tensor_t is a view of up to 4 dimensions over memory owned by someone else:
 * the step arena (activations and their gradients, released by dsc_ctx_end_step), or a
 * flat parameter buffer (parameters and their gradients, see dsc/nn.h). Tensors are
 * contiguous, row-major.
 *
 * Error convention for ops (dsc/ops.h): an op returns the new tensor, or NULL on failure
 * after recording the first error on the context ("sticky error", as in cairo). An op
 * given a NULL input returns NULL without adding a new error, so a forward pass can be
 * written without checking each line; check dsc_ctx_status() once at the end.
 */
#ifndef DSC_TENSOR_H
#define DSC_TENSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dsc/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define DSC_MAX_DIMS 4

typedef enum dsc_dtype {
    DSC_F32 = 0,
    DSC_F16,  /* IEEE binary16 */
    DSC_BF16, /* bfloat16 */
    DSC_I32,
    DSC_F64,  /* for gradient checking against finite differences; every float op supports it */
    DSC_DTYPE_COUNT
} dsc_dtype_t;

/* Bytes per element of `dtype` (0 for an invalid dtype). */
size_t dsc_dtype_size(dsc_dtype_t dtype);
/* Static lower-case name: "f32", "f16", "bf16", "i32", "f64"; "?" for invalid. */
const char *dsc_dtype_name(dsc_dtype_t dtype);

/* Scalar conversions. f32 -> f16/bf16 round to nearest, ties to even; NaN stays NaN
 * (quiet), +-Inf stays +-Inf, values beyond the target range become +-Inf. */
uint16_t dsc_f32_to_f16(float x);
float dsc_f16_to_f32(uint16_t h);
uint16_t dsc_f32_to_bf16(float x);
float dsc_bf16_to_f32(uint16_t b);
/* Converts `n_elems` elements between any two float dtypes or i32 (i32 <- float truncates
 * toward zero). Returns DSC_ERR_INVALID for an unknown dtype. */
dsc_status_t dsc_convert(void *dst, dsc_dtype_t dst_dtype, const void *src, dsc_dtype_t src_dtype,
                         size_t n_elems);

/* Memory categories counted by the context's allocator. */
typedef enum dsc_mem_category {
    DSC_MEM_PARAMS = 0,    /* model parameters (working copy) */
    DSC_MEM_GRADS,         /* parameter gradients */
    DSC_MEM_OPTIM,         /* optimizer state: fp32 master weights, moments */
    DSC_MEM_ACTIVATIONS,   /* the per-step arena: activations and their gradients */
    DSC_MEM_COMM,          /* communication buffers */
    DSC_MEM_OTHER,         /* everything else (bookkeeping) */
    DSC_MEM_GRAD_ACCUM,    /* fp32 gradient accumulation buffer beside 16-bit gradients */
    DSC_MEM_CATEGORY_COUNT
} dsc_mem_category_t;

/* Live and peak bytes of one category. */
typedef struct dsc_mem_stats {
    size_t live_bytes;
    size_t peak_bytes;
} dsc_mem_stats_t;

typedef struct dsc_ctx dsc_ctx_t;
typedef struct dsc_tensor dsc_tensor_t;

/* Options for dsc_ctx_new. Start from DSC_CTX_OPTIONS_INIT. */
typedef struct dsc_ctx_options {
    uint64_t seed;          /* seeds the context's RNG (dropout, init); default 1234 */
    dsc_log_fn log_fn;      /* NULL: the default stderr sink */
    void *log_user;         /* passed to log_fn */
    dsc_log_level_t log_level; /* messages less severe than this are dropped; default INFO */
    /* Where tensors and model state live: "cpu"; "guarded" (a test device: CPU memory the
     * host cannot touch, so any host access outside the device's kernels faults); "cuda:N"
     * (refused while no CUDA device is compiled in); "cuda": the GPU of this process's rank on
     * its node, cuda:(local rank mod GPUs), the local rank from the launcher
     * (OMPI_COMM_WORLD_LOCAL_RANK, MPI_LOCALRANKID, SLURM_LOCALID or LOCAL_RANK; 0 without
     * one), so `mpirun -np 8 dsc train --device cuda` spreads over 8 GPUs. NULL: the environment variable
     * DSC_DEVICE if set (the test suite's second pass sets DSC_DEVICE=guarded), else "cpu". */
    const char *device;
} dsc_ctx_options_t;
#define DSC_CTX_OPTIONS_INIT {1234u, NULL, NULL, DSC_LOG_INFO, NULL}

/* Creates a context on the device named by opts->device. `opts` may be NULL (defaults).
 * On success *out owns a new context the caller frees with dsc_ctx_free.
 * Returns DSC_OK, DSC_ERR_NOMEM, DSC_ERR_INVALID (out NULL, or an unknown device name),
 * DSC_ERR_UNSUPPORTED (cuda:N in a build without CUDA); the reason is logged through
 * opts->log_fn (or stderr) since no context exists to hold it. */
dsc_status_t dsc_ctx_new(const dsc_ctx_options_t *opts, dsc_ctx_t **out);
/* Frees the context, its arena and tape. NULL is a no-op. Memory handed out for
 * parameters (dsc_ctx_alloc) must be freed before; leaks are reported as a WARN line. */
void dsc_ctx_free(dsc_ctx_t *ctx);

/* The first error recorded since the last dsc_ctx_clear_error (DSC_OK if none), and its
 * message (static empty string if none; valid until the next error or clear). */
dsc_status_t dsc_ctx_status(const dsc_ctx_t *ctx);
const char *dsc_ctx_errmsg(const dsc_ctx_t *ctx);
void dsc_ctx_clear_error(dsc_ctx_t *ctx);

/* Records an error (printf-style message) on the context unless one is already recorded,
 * logs it at ERROR level, and returns `status`. For code that builds on dsc (models). */
dsc_status_t dsc_ctx_set_error(dsc_ctx_t *ctx, dsc_status_t status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* Logs one line through the context's sink when `level` is within the context's level. */
void dsc_ctx_log(dsc_ctx_t *ctx, dsc_log_level_t level, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
void dsc_ctx_set_log(dsc_ctx_t *ctx, dsc_log_fn fn, void *user, dsc_log_level_t level);

/* Memory counters of one category. */
dsc_mem_stats_t dsc_ctx_mem_stats(const dsc_ctx_t *ctx, dsc_mem_category_t category);
/* Resets every category's peak to its current live value. */
void dsc_ctx_mem_reset_peaks(dsc_ctx_t *ctx);
/* Allocates `n_bytes` of the context's device memory (64-byte aligned, zero-filled)
 * counted under `category`. On a device other than "cpu" the host must not dereference it:
 * read and write it with dsc_ctx_to_host / dsc_ctx_from_host. Returns NULL and records
 * DSC_ERR_NOMEM on failure. Free with dsc_ctx_release (same category and size). */
void *dsc_ctx_alloc(dsc_ctx_t *ctx, dsc_mem_category_t category, size_t n_bytes);
void dsc_ctx_release(dsc_ctx_t *ctx, dsc_mem_category_t category, void *ptr, size_t n_bytes);
/* The context's device name: "cpu", "guarded", "cuda:0". */
const char *dsc_ctx_device_name(const dsc_ctx_t *ctx);
/* The width the device's ops pad a gemm dimension they own to (the LM head's vocabulary,
 * dsc_linear_cross_entropy): 64 on CUDA, 0 (no padding) on the CPU devices or for NULL.
 * For memory plans: dsc_estimate_options_t.vocab_pad. */
int dsc_ctx_gemm_pad_elems(const dsc_ctx_t *ctx);
/* Every byte dsc holds on the context's device, now and at the most: the allocator's memory
 * (model state, activation arena chunks, buffers) and the device's own workspaces (on CUDA
 * the cuBLASLt workspace and a small scratch). The CUDA context the driver keeps is not
 * included. Either pointer may be NULL. DSC_ERR_INVALID when ctx is NULL. */
dsc_status_t dsc_ctx_device_memory(const dsc_ctx_t *ctx, size_t *live_bytes, size_t *peak_bytes);
/* Byte copies between the host and memory of the context's device (dsc_ctx_alloc, tensor
 * data): to_host returns once host_dst holds the bytes. Both pointers belong to the
 * caller. DSC_ERR_INVALID (recorded) for NULL pointers or a failed device copy. */
dsc_status_t dsc_ctx_to_host(dsc_ctx_t *ctx, void *host_dst, const void *device_src, size_t n_bytes);
dsc_status_t dsc_ctx_from_host(dsc_ctx_t *ctx, void *device_dst, const void *host_src, size_t n_bytes);

/* The context's RNG: seeds, and reads/writes its whole state (for exact resume).
 * dsc_ctx_seed also restarts the dropout stream at (seed, 0) (see below). */
void dsc_ctx_seed(dsc_ctx_t *ctx, uint64_t seed);
uint64_t dsc_ctx_rng_state(const dsc_ctx_t *ctx);
void dsc_ctx_set_rng_state(dsc_ctx_t *ctx, uint64_t state);
/* The dropout stream (Philox-4x32-10, counter-based: a mask is a pure function of
 * (seed, offset), the same on every device): every dropout draw starts at `offset` and
 * advances it. Read and set both for exact resume (checkpoints store them); the RNG state
 * above is separate (initialisation). */
void dsc_ctx_dropout_stream(const dsc_ctx_t *ctx, uint64_t *seed, uint64_t *offset);
void dsc_ctx_set_dropout_stream(dsc_ctx_t *ctx, uint64_t seed, uint64_t offset);
/* Next uniform in [0,1) and next standard normal from the context's RNG. */
double dsc_ctx_rand_uniform(dsc_ctx_t *ctx);
double dsc_ctx_rand_normal(dsc_ctx_t *ctx);

/* Training mode (dropout active) or evaluation mode. Default: training. */
void dsc_ctx_set_training(dsc_ctx_t *ctx, bool training);
bool dsc_ctx_training(const dsc_ctx_t *ctx);

/* No-grad regions: between begin and end, ops record nothing on the tape. Nests. */
void dsc_ctx_no_grad_begin(dsc_ctx_t *ctx);
void dsc_ctx_no_grad_end(dsc_ctx_t *ctx);
bool dsc_ctx_grad_enabled(const dsc_ctx_t *ctx);

/* Ends a step: clears the tape and releases every arena tensor (activations and their
 * gradients). Tensors created since the last end are invalid afterwards. Backward
 * does NOT call this, so activation gradients can be inspected after backward; the
 * engine and training loops call it once per micro-batch. */
void dsc_ctx_end_step(dsc_ctx_t *ctx);
/* Sizes the step arena's device memory to n_bytes before the first step (for example the
 * activations of dsc_estimate_memory), so that step does not grow it chunk by chunk, each
 * twice the last, which can hold up to twice what the step needs at once: with the plan
 * reserved, the device's peak is the plan. Later steps keep one chunk of what a step used
 * either way. Does nothing when the arena already holds n_bytes. DSC_ERR_INVALID (ctx NULL),
 * DSC_ERR_MISUSE (inside a step: tensors are live in the arena), DSC_ERR_NOMEM (recorded). */
dsc_status_t dsc_ctx_reserve_step_memory(dsc_ctx_t *ctx, size_t n_bytes);

/* ---- Tensors ---------------------------------------------------------------------- */

/* Creates a tensor of `ndim` (1..4) dims in the step arena, zero-filled, dtype `dtype`.
 * It is a leaf; set requires_grad to make it one whose gradient backward fills. */
dsc_tensor_t *dsc_tensor_new(dsc_ctx_t *ctx, dsc_dtype_t dtype, int ndim, const int64_t *shape);
/* Convenience forms of dsc_tensor_new. */
dsc_tensor_t *dsc_tensor_new_1d(dsc_ctx_t *ctx, dsc_dtype_t dtype, int64_t n0);
dsc_tensor_t *dsc_tensor_new_2d(dsc_ctx_t *ctx, dsc_dtype_t dtype, int64_t n0, int64_t n1);
dsc_tensor_t *dsc_tensor_new_3d(dsc_ctx_t *ctx, dsc_dtype_t dtype, int64_t n0, int64_t n1, int64_t n2);
/* A tensor header over caller-owned memory `data` (not freed by dsc); `grad` may be NULL
 * or caller-owned memory of the same shape and dtype that backward accumulates into.
 * The header lives in the step arena unless `persistent`, in which case it lives until
 * dsc_tensor_free_persistent. Used to bind parameters to flat buffers. */
dsc_tensor_t *dsc_tensor_wrap(dsc_ctx_t *ctx, dsc_dtype_t dtype, int ndim, const int64_t *shape,
                              void *data, void *grad, bool persistent);
void dsc_tensor_free_persistent(dsc_ctx_t *ctx, dsc_tensor_t *t);

int dsc_tensor_ndim(const dsc_tensor_t *t);
int64_t dsc_tensor_dim(const dsc_tensor_t *t, int axis); /* axis may be negative */
int64_t dsc_tensor_numel(const dsc_tensor_t *t);
dsc_dtype_t dsc_tensor_dtype(const dsc_tensor_t *t);
/* Bytes of the tensor's data (numel * dtype size). */
size_t dsc_tensor_nbytes(const dsc_tensor_t *t);
/* True when the host may dereference the tensor's data (a "cpu" context, or a tensor
 * wrapped over host memory). */
bool dsc_tensor_is_host(const dsc_tensor_t *t);
/* Host copies of tensor data, the portable way to read and write values on any device.
 * to_host copies the first n_bytes of t's data into host_dst; from_host copies n_bytes from
 * host_src into the start of t's data. n_bytes <= dsc_tensor_nbytes(t). The caller owns
 * both host buffers. Returns DSC_OK; DSC_ERR_INVALID (recorded on ctx, naming the tensor)
 * for a NULL argument or n_bytes beyond the tensor. to_host returns once the bytes are on
 * the host (it waits for the device). */
dsc_status_t dsc_tensor_to_host(dsc_ctx_t *ctx, const dsc_tensor_t *t, void *host_dst, size_t n_bytes);
dsc_status_t dsc_tensor_from_host(dsc_ctx_t *ctx, dsc_tensor_t *t, const void *host_src, size_t n_bytes);
/* The data pointer: a device address unless dsc_tensor_is_host (pass it to dsc calls, do
 * not dereference it). Typed forms are host pointers: they return NULL when the dtype
 * differs, and NULL after recording DSC_ERR_MISUSE (naming the tensor) on the tensor's
 * context when the data is not host-accessible (use dsc_tensor_to_host). */
void *dsc_tensor_data(dsc_tensor_t *t);
float *dsc_tensor_f32(dsc_tensor_t *t);
double *dsc_tensor_f64(dsc_tensor_t *t);
int32_t *dsc_tensor_i32(dsc_tensor_t *t);
/* The gradient after backward, or NULL if none reached this tensor. */
dsc_tensor_t *dsc_tensor_grad(dsc_tensor_t *t);
void dsc_tensor_set_requires_grad(dsc_tensor_t *t, bool requires_grad);
bool dsc_tensor_requires_grad(const dsc_tensor_t *t);
/* Optional name shown in error messages (the pointer is kept, not copied). */
void dsc_tensor_set_name(dsc_tensor_t *t, const char *name);
const char *dsc_tensor_name(const dsc_tensor_t *t);
/* Value of a 1-element f32/f64 tensor as a double, copied from the device (NaN if not
 * 1 element). */
double dsc_tensor_item(const dsc_tensor_t *t);
/* Fills with N(0, std^2) or U[lo, hi) from the context RNG (float dtypes). */
dsc_status_t dsc_tensor_fill_normal(dsc_ctx_t *ctx, dsc_tensor_t *t, double std);
dsc_status_t dsc_tensor_fill_uniform(dsc_ctx_t *ctx, dsc_tensor_t *t, double lo, double hi);
/* Copies `n_elems` values from a host float array into a float tensor of any float dtype
 * (on any device). */
dsc_status_t dsc_tensor_copy_from_f32(dsc_tensor_t *t, const float *src, size_t n_elems);
/* The fill functions and copy_from_f32 write through the device; on a device other than
 * "cpu" the values are made on the host and copied over. */

/* ---- Autograd ---------------------------------------------------------------------- */

/* Runs the tape in reverse from `loss` (1 element; its gradient seeded with 1), summing
 * gradients into every tensor that requires grad. Parameter gradients accumulate across
 * calls (zero them explicitly); arena gradients are fresh each step.
 * Returns DSC_ERR_INVALID if loss is not a 1-element float tensor produced by recorded
 * ops, DSC_ERR_MISUSE if backward already ran since the last end of step. */
dsc_status_t dsc_autograd_backward(dsc_ctx_t *ctx, dsc_tensor_t *loss);
/* The same, seeding loss's gradient with `seed` (e.g. 1/GAS times a loss scale). */
dsc_status_t dsc_autograd_backward_scaled(dsc_ctx_t *ctx, dsc_tensor_t *loss, double seed);

#ifdef __cplusplus
}
#endif
#endif

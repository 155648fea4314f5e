/* ZeRO inside the library (not installed): the ZeRO state object the engine drives, the
 * one definition of "rank q's slice of a parameter", and stage 3's persistence rule. The
 * slice and the rule are shared by ZeRO (src/zero), checkpoints (src/engine/engine_ckpt.c)
 * and the memory estimator (src/monitor/estimate.c). The public partition arithmetic is
 * dsc/zero.h; docs/zero.md describes the stages.
 *
 * One optimizer step, as the engine calls it (src/engine/engine_step.c):
 *   dsc_backward:  dsc__zero_begin_backward        whether this micro-step is the boundary
 *                  (autograd; at stages 2-3 the parameter hooks send each layer's gradients,
 *                  at stage 1 with overlap_comm those of the boundary micro-step)
 *                  dsc__zero_after_backward        fp32 accumulation / the unscoped sends
 *   dsc_step:      dsc__zero_reduce_gradients      this rank's summed fp32 gradient in grad32,
 *                                                  overflow and sum of squares over all ranks
 *                  (the optimizer updates master, and the 16-bit local params)
 *                  dsc__zero_finish_step           every rank's working copy up to date,
 *                                                  gradients zeroed
 *                  (a skipped step calls dsc__zero_zero_grads instead) */
#ifndef DSC_ZERO_ZERO_H
#define DSC_ZERO_ZERO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dsc/amp.h"
#include "dsc/comm.h"
#include "dsc/config.h"
#include "dsc/nn.h"
#include "dsc/zero.h"

/* Elements [*a, *b) (the parameter's own indices) of a parameter occupying the flat range
 * [offset, offset + numel) that rank q holds under `plan`; false when it holds none of it.
 *   stages 0-2: the overlap with rank q's partition [q*k, (q+1)*k) of the padded flat
 *               buffer (stage 0 is replicated, but its checkpoints are written 1/N per rank
 *               by the same rule);
 *   stage 3:    rank q's shard [q*s, min((q+1)*s, numel)), s = dsc_zero3_shard(numel, N).
 * *a and *b are set even when false. */
bool dsc__zero_slice(const dsc_zero_plan_t *plan, int q, int64_t offset, int64_t numel, int64_t *a, int64_t *b);

/* Stage 3's persistence rule (DeepSpeed's): a parameter of numel elements stays gathered
 * when numel <= param_threshold and the running total of persistent elements stays within
 * model_threshold; *total (the running total, in parameter order) grows when it does. */
bool dsc__zero3_persists(int64_t numel, int64_t param_threshold, int64_t model_threshold, int64_t *total);

/* ---- the ZeRO state object ----------------------------------------------------------- */

typedef struct dsc_zero dsc_zero_t;

typedef struct dsc_zero_setup {
    dsc_ctx_t *ctx;
    dsc_model_t *model;          /* bound to the ZeRO buffers by dsc__zero_create */
    dsc_comm_t *comm;            /* borrowed */
    const dsc_config_zero_t *cfg; /* borrowed: zero_optimization */
    dsc_zero_plan_t plan;
    dsc_dtype_t model_dtype;     /* of the working copy and the gradients */
    bool accumulate_fp32;        /* add 16-bit gradients into fp32 after every backward */
    /* offload_optimizer.device "cpu" off a host device (stages 1-3): the fp32 master weights
     * of this rank's extent live in host memory counted on host_ctx (page-locked when
     * pin_memory and the device offers it), where a host-side optimizer updates them;
     * everything else stays on the device. */
    dsc_ctx_t *host_ctx;         /* NULL: master on the device; else it owns the host master */
    bool pin_memory;
    char *errmsg;                /* failures are written here too (the engine's message) */
    size_t errmsg_size;
    /* offload_param.device "cpu" off a host device (stage 3 only): this rank's partition of
     * the working copy (16-bit, or fp32) lives in host memory counted on param_host_ctx
     * (page-locked when param_pin and the device offers it); each gather copies the shard to
     * the device first (zero_param_offload.c). NULL: the partition is device memory. */
    dsc_ctx_t *param_host_ctx;
    bool param_pin;
    /* offload_param.device "nvme" (stage 3 only, any device): the partition lives in a swap
     * file under nvme_path (src/zero/param_nvme.h); NULL: not. Borrowed for the call. */
    const struct dsc_pnvme_options *param_nvme;
} dsc_zero_setup_t;

/* Allocates the flat model state of the plan's stage, gives every rank rank 0's initial
 * values (the model's own if it was bound, else its initialisation), binds the model to it
 * and, at stages 2-3, installs the context's parameter hooks. On failure *out is NULL and
 * err names what failed. */
dsc_status_t dsc__zero_create(const dsc_zero_setup_t *s, dsc_zero_t **out, char *err, size_t errsz);
/* Unbinds the model (its tensors point at nothing of ZeRO's), removes the hooks, frees. */
void dsc__zero_free(dsc_zero_t *z);

/* Before a micro-batch's backward: whether it is the accumulation boundary (stage 1 with
 * overlap_comm reduces the gradients during it; the optimizer offload's host mirror follows
 * the reduction, dsc__zero_mirror_boundary). */
void dsc__zero_begin_backward(dsc_zero_t *z, bool boundary);
/* After a micro-batch's backward (ok = false: it failed; every hold is dropped without
 * communicating). */
dsc_status_t dsc__zero_after_backward(dsc_zero_t *z, bool ok);
/* At the boundary: leaves the gradient summed over ranks of this rank's extent in grad32
 * (not yet divided by the world size), and returns whether any rank's holds inf/NaN and the
 * sum of squares over every rank's extent (read on the host: the step's one read). */
dsc_status_t dsc__zero_reduce_gradients(dsc_zero_t *z, bool *overflow, double *sumsq);
/* After the optimizer updated master (and the 16-bit local params): every rank's working
 * copy gets the update (stages 1-2 all-gather; stage 3 re-gathers what is held gathered),
 * then every gradient buffer is zeroed. */
dsc_status_t dsc__zero_finish_step(dsc_zero_t *z);
/* Zeroes every gradient buffer. */
dsc_status_t dsc__zero_zero_grads(dsc_zero_t *z);

/* The optimizer's view: fp32 master and gradient of this rank's extent (n_local elements),
 * the working copy of that extent (where a 16-bit update is written), and the segments of
 * the extent that belong to parameter tensors (with the parameter index of each). */
float *dsc__zero_master(const dsc_zero_t *z);
/* Whether master is host memory (dsc_zero_setup_t.host_ctx), and whether page-locked. */
bool dsc__zero_master_on_host(const dsc_zero_t *z, bool *pinned);
/* The working copy (stage 3: the local shards) and the full gradient buffer (NULL at
 * stages 2-3, where a layer's gradients live during its backward). */
void dsc__zero_buffers(const dsc_zero_t *z, void **params, void **grads);
float *dsc__zero_grad32(const dsc_zero_t *z);
void *dsc__zero_local_params(const dsc_zero_t *z);
int64_t dsc__zero_n_local(const dsc_zero_t *z);
const dsc_amp_segment_t *dsc__zero_segments(const dsc_zero_t *z, const int **param_of, size_t *n);
/* Index in master (and the optimizer's states) of element a of parameter i, a inside this
 * rank's slice of it. */
int64_t dsc__zero_local_index(const dsc_zero_t *z, int i, int64_t a);

/* dsc_engine_gather_params / dsc_engine_release_params at stage 3: parameter i held
 * gathered outside the recorded schedule, and let go. */
dsc_status_t dsc__zero_hold(dsc_zero_t *z, int i);
void dsc__zero_unhold(dsc_zero_t *z, int i);
/* Rank root's edit of parameter i (its gathered values) into every rank's state: the
 * working copy and the fp32 master. */
dsc_status_t dsc__zero_write_back(dsc_zero_t *z, int i, int root);

/* offload_param (zero_param_offload.c): whether this rank's parameter partition
 * (dsc__zero_local_params) is host memory (and whether page-locked); and, after the fp32 master changed outside a
 * step (a checkpoint load), the partition written from it (a no-op when it is on the
 * device: the engine rebuilds that itself). */
bool dsc__zero_params_on_host(const dsc_zero_t *z, bool *pinned);
/* The host waits for the gathers' asynchronous uploads that still read the host partition
 * (offload_param "cpu" on a device with from_host_async), before it writes the partition
 * (the offloaded optimizer's in-place step); DSC_OK at once otherwise. */
dsc_status_t dsc__zero_params_host_idle(dsc_zero_t *z);
/* offload_param "nvme": the partition's swap file (NULL: none), for the engine's log line and
 * byte counts. */
const struct dsc_pnvme *dsc__zero_params_nvme(const dsc_zero_t *z);
/* Whether the partition is offloaded anywhere ("cpu" off a host device, or "nvme"). */
bool dsc__zero_params_offloaded(const dsc_zero_t *z);
dsc_status_t dsc__zero_params_from_master(dsc_zero_t *z);

/* Optimizer offload: a host mirror of grad32 (n_local floats, page-locked for overlap) kept
 * by the device's asynchronous device-to-host copies (zero_host.c; only when
 * dsc__dev_has_to_host_async). On a boundary micro-step (dsc__zero_mirror_boundary before its
 * backward) every addition into grad32 is followed by a copy of the added range, so the
 * gradient partition goes to the host as backward reduces it (stages 2-3: layer by layer;
 * stage 1: bucket by bucket in dsc__zero_reduce_gradients). dsc__zero_mirror_finish, after
 * dsc__zero_reduce_gradients, copies the ranges the boundary backward did not touch and
 * waits: then host equals grad32. */
/* Returns whether the mirror is on (the device has to_host_async and memory sufficed). */
bool dsc__zero_mirror_set(dsc_zero_t *z, float *host);
void dsc__zero_mirror_boundary(dsc_zero_t *z, bool boundary);
dsc_status_t dsc__zero_mirror_finish(dsc_zero_t *z);

/* Host buffers of the optimizer offload (zero_host.c): n_bytes of zeroed host memory,
 * counted under `category` of host_ctx (the host-side context that owns them, never the
 * device's), page-locked by dev_ctx's device when want_pinned and it offers pinned memory
 * (*pinned says which: the device's copies to and from it then run at full speed, and
 * asynchronously on CUDA), else ordinary. NULL (recorded on host_ctx) when out of memory.
 * Free with the same contexts, category, size and *pinned. */
/* Elements per part of the offloaded optimizer's step (engine_offload.c): the update of a
 * bf16/fp16 model is written part by part into a pinned staging buffer of this many elements
 * and copied to the device, instead of a host copy of the whole partition (2 bytes per
 * element). zero_optimization.sub_group_size, at most DSC_OFFLOAD_PART_MAX, at most n_local;
 * dsc estimate counts the same. */
#define DSC_OFFLOAD_PART_MAX ((int64_t)1 << 25)
int64_t dsc__offload_part_elems(int64_t n_local, int64_t sub_group_size);
/* Whether the gradient partition streams through two part-sized host buffers at the step
 * instead of a whole host copy mirrored during backward: partitions of more than 4 parts. */
static inline bool dsc__offload_grad_streams(int64_t n_local, int64_t part_elems) {
    return part_elems > 0 && n_local > 4 * part_elems;
}

/* Host memory for offloaded state, page-locked through the device's table when asked and
 * offered (*pinned says which), zeroed; counted in host_ctx under `category`. NULL on failure,
 * recorded on host_ctx with `what` (the state it was for) in the message. */
void *dsc__host_buffer_alloc(dsc_ctx_t *host_ctx, dsc_ctx_t *dev_ctx, dsc_mem_category_t category, size_t n_bytes,
                             bool want_pinned, bool *pinned, const char *what);
void dsc__host_buffer_free(dsc_ctx_t *host_ctx, dsc_ctx_t *dev_ctx, dsc_mem_category_t category, void *ptr,
                           size_t n_bytes, bool pinned);

#endif

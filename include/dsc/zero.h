/* dsc/zero.h: ZeRO partitioning of the flat model state (DeepSpeed spec §5.2) and the
 * per-rank memory plan that follows from it.
 *
 * Stages 1 and 2 partition one flat buffer of P0 parameters: it is padded with zeros to
 * P = ceil(P0 / A) * A elements, A = 2 * world (DeepSpeed's alignment), and rank r owns
 * the k = P / world elements [r*k, (r+1)*k). Parameters may straddle partitions; the last
 * rank(s) may own padding only. Stage 0 keeps everything replicated (the plan still pads,
 * so every stage uses one layout).
 */
#ifndef DSC_ZERO_H
#define DSC_ZERO_H

#include <stdint.h>

#include "dsc/status.h"
#include "dsc/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dsc_zero_plan {
    int stage;         /* 0..3 */
    int world, rank;
    int64_t numel;     /* P0: parameters in the model */
    int64_t padded;    /* P: P0 rounded up to a multiple of 2 * world */
    int64_t part;      /* k = P / world: elements each rank owns */
    int64_t begin;     /* r * k: first flat element this rank owns */
    int64_t padding;   /* padding elements inside this rank's partition (spec §5.2 step 3) */
} dsc_zero_plan_t;

/* Fills the plan for `numel` parameters. DSC_ERR_INVALID for stage outside 0..3, world < 1,
 * rank outside [0, world) or numel < 1. */
dsc_status_t dsc_zero_plan_make(int stage, int world, int rank, int64_t numel, dsc_zero_plan_t *out);
/* Padding elements in rank q's partition under the plan's layout. */
int64_t dsc_zero_plan_padding_of(const dsc_zero_plan_t *plan, int q);
/* Elements of flat range [offset, offset + n) that fall in rank q's partition, and where
 * they start (flat offset); returns 0 when none do. */
int64_t dsc_zero_plan_overlap(const dsc_zero_plan_t *plan, int q, int64_t offset, int64_t n, int64_t *first);

/* Stage 3 partitions each parameter on its own (spec 5.5): a parameter of numel elements
 * has shard ceil(numel / world) on every rank (the last ranks' shards end in zero padding).
 * 0 for invalid arguments. */
int64_t dsc_zero3_shard(int64_t numel, int world);

/* Per-rank bytes of model state the engine allocates for a plan (docs/zero.md derives
 * each line). Stage 3's sizes depend on every parameter's shard: for it this gives the
 * flat approximation (P / N per rank); dsc_estimate_memory computes the GPT's exactly. param_bytes/grad_bytes are the storage sizes of the working copy and of the
 * gradients (4 for fp32, 2 for fp16/bf16); optimizer_states is the number of fp32 state
 * buffers of the optimizer (Adam 2); accumulate_fp32 adds the fp32 gradient buffer. */
typedef struct dsc_zero_memory {
    int64_t params;       /* DSC_MEM_PARAMS */
    int64_t grads;        /* DSC_MEM_GRADS */
    int64_t optim;        /* DSC_MEM_OPTIM: fp32 master (when separate) and optimizer states */
    int64_t grad_accum;   /* DSC_MEM_GRAD_ACCUM */
    int64_t comm;         /* DSC_MEM_COMM: the reduce-scatter staging buffer */
    /* Stages 2-3: bytes that exist only while a layer runs (its gradient buffers during its
     * backward; at stage 3 also its gathered values), at their largest. 0 from
     * dsc_zero_plan_memory, which does not know the layers; dsc_estimate_memory fills it. */
    int64_t transient;
} dsc_zero_memory_t;
dsc_zero_memory_t dsc_zero_plan_memory(const dsc_zero_plan_t *plan, int param_bytes, int optimizer_states,
                                       bool accumulate_fp32, int64_t reduce_bucket_size);

#ifdef __cplusplus
}
#endif
#endif

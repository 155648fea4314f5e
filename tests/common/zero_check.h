/* Shared body of the ZeRO equivalence tests (fake communicator in threads, and MPI under
 * mpirun): one rank trains the tiny GPT on its slice of a global batch and returns its
 * final parameters in f32, to compare with a single-rank stage-0 run on the whole batch. */
#ifndef DSC_TEST_ZERO_CHECK_H
#define DSC_TEST_ZERO_CHECK_H

#include "check.h"
#include "core/device_count.h"

typedef struct zero_case {
    int stage;
    int gas;
    const char *precision; /* "fp32", "bf16" or "fp16" (loss scale 2^32: the first steps overflow and are skipped) */
    int steps;
    int micro_batch;       /* rows per rank per micro-step */
    int64_t persistence;   /* stage 3: stage3_param_persistence_threshold (0: every parameter partitioned) */
    int64_t reuse;         /* stage 3: stage3_max_reuse_distance (0: release every layer after use) */
    int overlap;           /* zero_optimization.overlap_comm: 0 the stage's default, 1 true, 2 false */
    dsc_ctx_t *ctx;        /* the rank runs on this context (the communicator's, whose device stream
                            * orders the collectives; reseeded per run); NULL: a new one per run */
} zero_case_t;

/* Trains on `comm` (NULL: one rank, in which case the micro batch is world * micro_batch
 * and the stage is 0: the reference). Writes the final parameters (numel floats, malloc'ed)
 * and the per-step losses (steps doubles, the rank's mean over micro-steps). Also reports the
 * engine's per-rank memory counters and the bytes this rank sent in the last step. */
typedef struct zero_result {
    float *params;
    int64_t numel;
    double losses[64];
    size_t mem_params, mem_grads, mem_optim, mem_grad_accum, mem_comm;
    size_t offload_host, offload_pinned; /* dsc_engine_offload_host_bytes */
    size_t device_peak;                  /* dsc_ctx_device_memory's peak (the run's own context only) */
    uint64_t last_step_sent_bytes;
    uint64_t engine_reported_sent_bytes; /* dsc_engine_comm_bytes_last_step */
    /* Stage 3 bookkeeping from the model's parameter sizes (spec 5.5: shard ceil(numel/N)):
     * sum of the shards, of the persistent ones, and of the tied embedding's. */
    int64_t shards, persistent_shards, wte_shard;
    /* Stage 2: elements of each micro-step's gradients this rank sends to other owners: for
     * every parameter use, its numel minus its overlap with this rank's flat partition. */
    int64_t stage2_sent_elems;
    char error[512];
} zero_result_t;

int zero_run(const zero_case_t *c, dsc_comm_t *comm, int world, int rank, zero_result_t *out);
/* zero_run with config text appended (not to the reference run's): zero_extra inside
 * zero_optimization (", \"sub_group_size\": 100"), top_extra at the top level (", \"aio\": {}");
 * either may be NULL. */
int zero_run_extra(const zero_case_t *c, const char *zero_extra, const char *top_extra, dsc_comm_t *comm, int world,
                   int rank, zero_result_t *out);
void zero_result_free(zero_result_t *r);
/* Case c on n (<= 4) fake ranks, one thread each over one fake world, each rank with a
 * context of its own and `timeout_s` seconds per collective; zero_run_extra's zero_extra and
 * top_extra (NULL: none). results[r] (freed by the caller with zero_result_free) and rcs[r]
 * (0: the rank ran; else results[r].error says why) per rank. */
void zero_run_fake_ranks(const zero_case_t *c, const char *zero_extra, const char *top_extra, int n, int timeout_s,
                         zero_result_t *results, int *rcs);
/* The bytes rank `z` must have sent in the last step on `world` ranks (docs/zero.md's
 * formulas, as the fake-communicator test checks them); 0 for one rank. */
uint64_t zero_expected_sent_bytes(const zero_case_t *c, int world, const zero_result_t *z);

/* dsc estimate's options for zero_run's setting of case c on one rank: the tiny GPT at
 * block 16, c->micro_batch rows, c->precision's dtype (bf16 accumulating in fp32),
 * reduce_bucket_size 5000, c->persistence and c->reuse. The offload fields and
 * device_is_host are dsc_estimate_options_default's, for the caller to set. */
void zero_estimate_options(const zero_case_t *c, dsc_estimate_options_t *eo);
/* Checks that the plan en holds the device optimizer, host and gradient accumulation bytes
 * the offloaded run off measured, and that, on the guarded device (no page-locked memory),
 * nothing was pinned while the plan pins some; `what` names the case in messages. */
void zero_check_offload_estimate(const char *what, const dsc_memory_estimate_t *en, const zero_result_t *off);
/* An edit of a parameter between steps (dsc_engine_gather_params, then release with modifier
 * rank 0) on one rank of the tiny GPT (block 16) in bf16 at `stage`, every stage-3 parameter
 * partitioned, zero_extra (NULL: none) inside zero_optimization: 4 steps of 2 micro-batches,
 * wte.weight halved, 4 more. Writes the final parameters (*numel floats: out must hold the
 * tiny GPT's) to out; 0, or 1 with the message in err. counts (NULL: none) receives the device
 * calls of the training (after dsc_initialize, before the final gather: src/core/device_count.h). */
int zero_edit_run(int stage, const char *zero_extra, float *out, int64_t *numel, dsc_device_counts_t *counts,
                  char *err, size_t errsz);

#endif

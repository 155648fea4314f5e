/* ZeRO on the CPU: tokens/s and per-rank model-state memory of the small GPT for each
 * stage, on however many ranks it is launched with:
 *     ./build/bench/zero_cpu                        # one rank
 *     mpirun -np 2 --oversubscribe ./build/bench/zero_cpu
 * Rank 0 prints one line per stage. Stage 3 runs with stage3_param_persistence_threshold 0
 * (every parameter partitioned: the model's largest tensor has 11k elements, under the
 * default 1e5 all would stay gathered), once with DeepSpeed's default schedule (prefetch 5e7,
 * reuse window 1e9: the whole model stays gathered from forward to backward) and once, row
 * "3f", frugal (stage3_prefetch_bucket_size 0, stage3_max_reuse_distance 0). "layer peak" is what lives only while a layer runs
 * (stage 2: its gradients; stage 3: also its gathered values): peak minus live bytes of the
 * params and grads categories. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_util.h"
#include "dsc/dsc.h"

int main(int argc, char **argv) {
    const int steps = argc > 1 ? atoi(argv[1]) : 20, mb = 8, t = 64;
    dsc_ctx_options_t co = DSC_CTX_OPTIONS_INIT;
    co.log_fn = bench_log_errors;
    dsc_ctx_t *ctx = NULL;
    dsc_ctx_new(&co, &ctx);
    dsc_comm_t *comm = NULL;
    if (getenv("OMPI_COMM_WORLD_SIZE") && dsc_comm_new_mpi(ctx, &comm) != DSC_OK) {
        fprintf(stderr, "zero_cpu: %s\n", dsc_ctx_errmsg(ctx));
        return 1;
    }
    const int world = comm ? dsc_comm_world_size(comm) : 1, rank = comm ? dsc_comm_rank(comm) : 0;
    if (rank == 0)
        printf("zero_cpu: GPT 4 layers x 128 wide (0.8M params), bf16, AdamW, micro batch %d x %d tokens per rank, "
               "%d ranks, %d steps\n  stage | tokens/s (all ranks) | per-rank MiB: params  grads  optim  grad_acc  comm  "
               "layer peak | sent MiB/step\n", mb, t, world, steps);
    for (int row = 0; row <= 4; row++) {
        const int stage = row < 4 ? row : 3;
        const bool frugal = row == 4;
        dsc_ctx_t *mctx = NULL; /* a context per stage: its peaks are this stage's */
        dsc_ctx_new(&co, &mctx);
        dsc_gpt_config_t gc = BENCH_GPT_SMALL;
        gc.block_size = t;
        dsc_gpt_t *gpt = NULL;
        dsc_gpt_new(mctx, &gc, &gpt);
        char json[512];
        snprintf(json, sizeof json,
                 "{\"train_micro_batch_size_per_gpu\": %d, \"bf16\": {\"enabled\": true}, \"zero_optimization\": {\"stage\": %d,"
                 " \"stage3_param_persistence_threshold\": 0%s}, \"optimizer\": {\"type\": \"AdamW\", \"params\": {\"lr\": 0.001}}}",
                 mb, stage, frugal ? ", \"stage3_prefetch_bucket_size\": 0, \"stage3_max_reuse_distance\": 0" : "");
        dsc_engine_options_t o = DSC_ENGINE_OPTIONS_INIT;
        o.config_json = json;
        o.comm = comm;
        dsc_initialize_result_t init;
        char err[1024];
        if (dsc_initialize(gpt->model, &o, &init, err, sizeof err) != DSC_OK) {
            fprintf(stderr, "zero_cpu: %s\n", err);
            return 1;
        }
        int32_t *x = malloc(sizeof(int32_t) * mb * t), *y = malloc(sizeof(int32_t) * mb * t);
        for (int i = 0; i < mb * t; i++) x[i] = (i * 7 + rank) % 88, y[i] = (i * 5 + 1) % 88;
        double t0 = 0;
        uint64_t sent = 0;
        for (int s = 0; s < steps + 2; s++) {
            if (s == 2) t0 = bench_now_s(); /* two warm-up steps */
            if (comm) dsc_comm_reset_stats(comm);
            dsc_tensor_t *loss = NULL;
            dsc_gpt_forward(mctx, gpt, x, y, mb, t, NULL, &loss);
            if (dsc_backward(init.engine, loss) != DSC_OK || dsc_step(init.engine) != DSC_OK) {
                fprintf(stderr, "zero_cpu: %s\n", dsc_engine_errmsg(init.engine));
                return 1;
            }
            if (comm) sent = dsc_comm_stats(comm).total_sent_bytes;
        }
        double dt = bench_now_s() - t0;
        const double mib = 1048576.0;
        const dsc_mem_stats_t pm = dsc_ctx_mem_stats(mctx, DSC_MEM_PARAMS), gm = dsc_ctx_mem_stats(mctx, DSC_MEM_GRADS);
        const double layer = (double)(pm.peak_bytes - pm.live_bytes + gm.peak_bytes - gm.live_bytes);
        if (rank == 0)
            printf("  %d%s    | %20.0f | %13.2f %6.2f %6.2f %9.2f %5.2f %11.2f | %.2f\n", stage, frugal ? "f" : " ",
                   (double)steps * mb * t * world / dt, pm.live_bytes / mib, gm.live_bytes / mib,
                   dsc_ctx_mem_stats(mctx, DSC_MEM_OPTIM).live_bytes / mib,
                   dsc_ctx_mem_stats(mctx, DSC_MEM_GRAD_ACCUM).live_bytes / mib,
                   dsc_ctx_mem_stats(mctx, DSC_MEM_COMM).live_bytes / mib, layer / mib, sent / mib);
        free(x);
        free(y);
        dsc_engine_free(init.engine);
        dsc_gpt_free(gpt);
        dsc_ctx_free(mctx);
    }
    dsc_comm_free(comm);
    dsc_ctx_free(ctx);
    return 0;
}

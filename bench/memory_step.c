/* Peak step-arena bytes of one GPT training micro-step (forward, dsc_backward, dsc_step
 * through the engine, fp32, AdamW), beside dsc_estimate_gpt_activations for the same shape:
 * the measured figures of docs/performance.md's memory table. One step is enough for a
 * peak: the arena's contents do not depend on timing or thread count.
 *
 * Usage: memory_step [--layers 12] [--heads 12] [--embd 768] [--vocab 50257]
 *                    [--context 1024] [--batch 4] [--dropout 0]
 * Defaults: GPT-2 124M (d12) at B=4, T=1024. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_util.h"
#include "dsc/dsc.h"

int main(int argc, char **argv) {
    dsc_gpt_config_t gc = {12, 12, 768, 50257, 1024, 0.0, 1e-5};
    int batch = 4;
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (bench_gpt_flag(&gc, k, v)) continue;
        if (!strcmp(k, "--batch")) batch = atoi(v);
        else {
            fprintf(stderr, "usage: memory_step " BENCH_GPT_FLAGS_USAGE " [--batch B]\n");
            return 2;
        }
    }
    const int t = gc.block_size;
    dsc_ctx_options_t co = DSC_CTX_OPTIONS_INIT;
    co.log_fn = bench_log_warnings;
    dsc_ctx_t *ctx = NULL;
    dsc_gpt_t *gpt = NULL;
    if (dsc_ctx_new(&co, &ctx) != DSC_OK || dsc_gpt_new(ctx, &gc, &gpt) != DSC_OK) return 1;
    char json[256], err[2048];
    snprintf(json, sizeof json,
             "{\"train_micro_batch_size_per_gpu\": %d, \"optimizer\": {\"type\": \"AdamW\", \"params\": {\"lr\": 0.0003}}}",
             batch);
    dsc_engine_options_t o = DSC_ENGINE_OPTIONS_INIT;
    o.config_json = json;
    dsc_initialize_result_t init;
    if (dsc_initialize(gpt->model, &o, &init, err, sizeof err) != DSC_OK) {
        fprintf(stderr, "memory_step: %s\n", err);
        return 1;
    }
    int32_t *x = malloc(sizeof(int32_t) * (size_t)batch * t), *y = malloc(sizeof(int32_t) * (size_t)batch * t);
    for (int i = 0; i < batch * t; i++) {
        x[i] = (int32_t)((i * 7919u) % (unsigned)gc.vocab_size);
        y[i] = (int32_t)((i * 104729u + 1) % (unsigned)gc.vocab_size);
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    dsc_ctx_mem_reset_peaks(ctx);
    dsc_tensor_t *loss = NULL;
    if (dsc_gpt_forward(ctx, gpt, x, y, batch, t, NULL, &loss) != DSC_OK || dsc_backward(init.engine, loss) != DSC_OK ||
        dsc_step(init.engine) != DSC_OK) {
        fprintf(stderr, "memory_step: %s\n", dsc_ctx_errmsg(ctx));
        return 1;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    const double peak = (double)dsc_ctx_mem_stats(ctx, DSC_MEM_ACTIVATIONS).peak_bytes;
    const double est = (double)dsc_estimate_gpt_activations(&gc, batch, t, DSC_F32, true, 0, 0);
    printf("memory_step: GPT %d layers, %d heads, width %d, vocab %d, B=%d T=%d, dropout %g: step arena peak %.1f MiB "
           "measured, %.1f MiB estimated (%+.2f%%); loss %.6f; %.1f s\n",
           gc.n_layer, gc.n_head, gc.n_embd, gc.vocab_size, batch, t, gc.dropout, peak / 1048576.0, est / 1048576.0,
           100.0 * (est - peak) / peak, dsc_engine_last_loss(init.engine),
           (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
    dsc_engine_free(init.engine);
    dsc_gpt_free(gpt);
    dsc_ctx_free(ctx);
    free(x);
    free(y);
    return 0;
}

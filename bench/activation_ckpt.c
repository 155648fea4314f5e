/* Activation checkpointing: peak activation bytes and training-step time of a GPT with no
 * block checkpointed, every second block, and every block, beside the targets of issue 7
 * (every block: peak <= 30% of none, step time <= 140% of none).
 *
 * A step is one micro-batch through the engine: dsc_gpt_forward, dsc_backward, dsc_step
 * (AdamW, fp32). Peak activation bytes are the allocator's DSC_MEM_ACTIVATIONS peak over a
 * step (the step arena: activations, their gradients, tape nodes). Times are medians over
 * the measured steps, after one warm-up step. The three modes run in one process, in turn
 * (none, every 2nd, every, none, ...), so slow drifts of a shared machine hit all of them.
 *
 * Usage: activation_ckpt [--layers 12] [--heads 12] [--embd 768] [--vocab 50257]
 *                        [--context 1024] [--batch 1] [--steps 3] [--dropout 0]
 * Defaults: GPT-2 124M (d12) at B=1, T=1024. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_util.h"
#include "dsc/checkpoint.h"
#include "dsc/dsc.h"

typedef struct {
    int every; /* 0: none */
    const char *label;
    dsc_ctx_t *ctx;
    dsc_gpt_t *gpt;
    dsc_engine_t *engine;
    double times[64];
    int n_times;
    size_t peak;
    double loss;
    int64_t recomputes;
    double recompute_s;
} ckpt_mode_t;

static int setup(ckpt_mode_t *m, const dsc_gpt_config_t *gc, int batch) {
    dsc_ctx_options_t co = DSC_CTX_OPTIONS_INIT;
    co.seed = 1234;
    co.log_fn = bench_log_warnings;
    if (dsc_ctx_new(&co, &m->ctx) != DSC_OK) return 1;
    if (dsc_gpt_new(m->ctx, gc, &m->gpt) != DSC_OK) return 1;
    dsc_gpt_set_checkpointing(m->gpt, m->every);
    char json[512], err[2048];
    snprintf(json, sizeof json,
             "{\"train_micro_batch_size_per_gpu\": %d, \"gradient_accumulation_steps\": 1,"
             " \"optimizer\": {\"type\": \"AdamW\", \"params\": {\"lr\": 0.0003, \"weight_decay\": 0.1}}}",
             batch);
    dsc_engine_options_t o = DSC_ENGINE_OPTIONS_INIT;
    o.config_json = json;
    dsc_initialize_result_t init;
    if (dsc_initialize(m->gpt->model, &o, &init, err, sizeof err) != DSC_OK) {
        fprintf(stderr, "activation_ckpt: %s\n", err);
        return 1;
    }
    m->engine = init.engine;
    return 0;
}

static int step(ckpt_mode_t *m, const int32_t *x, const int32_t *y, int b, int t, bool measure) {
    dsc_ctx_mem_reset_peaks(m->ctx);
    dsc_actckpt_stats_t s0 = dsc_actckpt_stats(m->ctx);
    double t0 = bench_now_s();
    dsc_tensor_t *loss = NULL;
    if (dsc_gpt_forward(m->ctx, m->gpt, x, y, b, t, NULL, &loss) != DSC_OK || dsc_backward(m->engine, loss) != DSC_OK ||
        dsc_step(m->engine) != DSC_OK) {
        fprintf(stderr, "activation_ckpt (%s): %s\n", m->label, dsc_ctx_errmsg(m->ctx));
        return 1;
    }
    double dt = bench_now_s() - t0;
    dsc_actckpt_stats_t s1 = dsc_actckpt_stats(m->ctx);
    m->loss = dsc_engine_last_loss(m->engine);
    if (measure) {
        m->times[m->n_times++] = dt;
        m->peak = dsc_ctx_mem_stats(m->ctx, DSC_MEM_ACTIVATIONS).peak_bytes;
        m->recomputes = s1.recomputes - s0.recomputes;
        m->recompute_s = s1.recompute_seconds - s0.recompute_seconds;
    }
    return 0;
}

int main(int argc, char **argv) {
    dsc_gpt_config_t gc = DSC_GPT_CONFIG_D12;
    int batch = 1, steps = 3;
    gc.block_size = 1024;
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (bench_gpt_flag(&gc, k, v)) continue;
        if (!strcmp(k, "--batch")) batch = atoi(v);
        else if (!strcmp(k, "--steps")) steps = atoi(v);
        else {
            fprintf(stderr, "usage: activation_ckpt " BENCH_GPT_FLAGS_USAGE " [--batch B] [--steps N]\n");
            return 2;
        }
    }
    if (steps < 1 || steps > 64) steps = 3;
    const int t = gc.block_size, b = batch;
    int32_t *x = malloc(sizeof(int32_t) * (size_t)(b * t)), *y = malloc(sizeof(int32_t) * (size_t)(b * t));
    uint64_t st = 42;
    for (int i = 0; i < b * t; i++) {
        st = st * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = (int32_t)((st >> 33) % (uint64_t)gc.vocab_size);
        y[i] = (int32_t)((x[i] * 7 + 3) % gc.vocab_size);
    }
    ckpt_mode_t modes[3] = {{.every = 0, .label = "none"}, {.every = 2, .label = "every 2nd block"},
                       {.every = 1, .label = "every block"}};
    for (int k = 0; k < 3; k++)
        if (setup(&modes[k], &gc, b)) return 1;
    printf("activation_ckpt: GPT %d layers, %d heads, width %d, vocab %d; batch %d x %d tokens; dropout %g; "
           "%d measured steps after 1 warm-up\n",
           gc.n_layer, gc.n_head, gc.n_embd, gc.vocab_size, b, t, gc.dropout, steps);
    for (int k = 0; k < 3; k++)
        if (step(&modes[k], x, y, b, t, false)) return 1;
    for (int s = 0; s < steps; s++)
        for (int k = 0; k < 3; k++)
            if (step(&modes[k], x, y, b, t, true)) return 1;

    double base_t = 0;
    size_t base_peak = 0;
    printf("| checkpointed | peak activation MiB | %% of none | step ms (median) | %% of none | recomputes/step | "
           "recompute ms/step | loss |\n| --- | --- | --- | --- | --- | --- | --- | --- |\n");
    for (int k = 0; k < 3; k++) {
        ckpt_mode_t *m = &modes[k];
        qsort(m->times, (size_t)m->n_times, sizeof(double), bench_cmp_double);
        double med = m->times[m->n_times / 2];
        if (k == 0) {
            base_t = med;
            base_peak = m->peak;
        }
        printf("| %s | %.1f | %.1f%% | %.1f | %.1f%% | %lld | %.1f | %.6f |\n", m->label, m->peak / 1048576.0,
               100.0 * (double)m->peak / (double)base_peak, med * 1e3, 100.0 * med / base_t, (long long)m->recomputes,
               m->recompute_s * 1e3, m->loss);
    }
    double peak_ratio = (double)modes[2].peak / (double)base_peak;
    double time_ratio = modes[2].times[modes[2].n_times / 2] / base_t;
    printf("every block vs none: peak activations -%.1f%% (target: at least -70%%) %s; step time +%.1f%% "
           "(target: at most +40%%) %s\n",
           100.0 * (1 - peak_ratio), peak_ratio <= 0.30 ? "met" : "NOT met", 100.0 * (time_ratio - 1),
           time_ratio <= 1.40 ? "met" : "NOT met");
    int same = modes[0].loss == modes[1].loss && modes[0].loss == modes[2].loss;
    printf("losses of the last step %s\n", same ? "identical in the three modes" : "DIFFER between modes");
    for (int k = 0; k < 3; k++) {
        dsc_engine_free(modes[k].engine);
        dsc_gpt_free(modes[k].gpt);
        dsc_ctx_free(modes[k].ctx);
    }
    free(x);
    free(y);
    return same ? 0 : 1;
}

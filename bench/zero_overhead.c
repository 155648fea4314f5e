/* What ZeRO stages 1-3 cost over stage 0 on one rank (issue 17: "stages 1, 2, 3 at world
 * size 1 within 2% of stage 0"): per stage, the time of an optimizer step, of a micro-batch
 * and of the boundary's dsc_step, and what the engine asked of the device in each
 * (src/core/device_count.h): bytes moved by fills, copies, conversions and the engine's own
 * kernels (mixed precision, optimizer), their calls, and the calls that make the host wait
 * for a GPU (allocations and frees, host copies, syncs). The model's forward and backward
 * kernels are the same at every stage and are not counted (their time is in the timings).
 *
 *     ./build/bench/zero_overhead                                   # tiny GPT on the CPU
 *     ./build/bench/zero_overhead --device cuda:0 --model d12 --batch 64 --ga 8 --steps 5   # T 1024
 *     ./build/bench/zero_overhead --stages 02 --verbose             # every kind of call
 *
 * Setting: as bench/gpt2_gpu (bf16 with fp32 master weights and accumulation, AdamW,
 * gradient clipping 1.0, the estimate's activation memory reserved up front), random
 * tokens. Timings: "step" is the median of --steps optimizer steps after two warm-up steps,
 * each ended by a read from the device (which waits for its stream); "micro-batch" and
 * "dsc_step" come from one more step with such a read after every micro-batch and around
 * the boundary's dsc_step (the extra waits make them a little slower than step/GA). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_util.h"
#include "core/device_count.h"
#include "dsc/dsc.h"

typedef struct {
    const char *name;
    dsc_gpt_config_t gc;
} preset_t;

static const preset_t presets[] = {
    {"gpt2-tiny", DSC_GPT_CONFIG_TINY},
    {"small", BENCH_GPT_SMALL}, /* bench/zero_cpu's model */
    {"d12", DSC_GPT_CONFIG_D12},
};

typedef struct {
    const preset_t *model;
    const char *device, *stages;
    int batch, ga, steps, context;
    bool verbose;
} args_t;

typedef struct {
    dsc_ctx_t *ctx;
    dsc_gpt_t *gpt;
    dsc_engine_t *engine;
    void *probe_dev;
    int32_t *x, *y;
    uint64_t rng;
} run_t;

static void tokens(run_t *r, long n, int vocab) {
    for (long i = 0; i < n; i++) {
        r->rng = r->rng * 6364136223846793005ull + 1442695040888963407ull;
        r->x[i] = (int32_t)((r->rng >> 33) % (uint64_t)vocab);
        r->y[i] = (int32_t)((r->rng >> 13) % (uint64_t)vocab);
    }
}

/* Waits for the device: a read of 64 bytes. */
static dsc_status_t wait_device(run_t *r) {
    unsigned char probe[64];
    return dsc_ctx_to_host(r->ctx, probe, r->probe_dev, sizeof probe);
}

static dsc_status_t micro_batch(run_t *r, const args_t *a) {
    tokens(r, (long)a->batch * a->context, r->gpt->config.vocab_size);
    dsc_tensor_t *loss = NULL;
    dsc_status_t rc = dsc_gpt_forward(r->ctx, r->gpt, r->x, r->y, a->batch, a->context, NULL, &loss);
    if (rc == DSC_OK) rc = dsc_backward(r->engine, loss);
    return rc;
}

static void print_counts(const char *what, const dsc_device_counts_t *c, bool verbose) {
    int64_t kernels = 0, mem = 0;
    for (int k = DSC_DEVCOUNT_AMP_SCAN; k <= DSC_DEVCOUNT_OPTIM; k++) kernels += c->calls[k];
    mem = c->calls[DSC_DEVCOUNT_FILL] + c->calls[DSC_DEVCOUNT_COPY] + c->calls[DSC_DEVCOUNT_CONVERT];
    printf("    %-12s moved %10.3f MB in %5lld fill/copy/convert + %4lld kernels; %4lld allocs, %4lld frees, %lld blocking\n",
           what, (double)dsc__device_counts_moved(c) / 1e6, (long long)mem, (long long)kernels,
           (long long)c->calls[DSC_DEVCOUNT_ALLOC], (long long)c->calls[DSC_DEVCOUNT_FREE],
           (long long)dsc__device_counts_blocking(c));
    for (int k = 0; verbose && k < DSC_DEVCOUNT_KINDS; k++)
        if (c->calls[k])
            printf("      %-16s %6lld calls %14llu bytes\n", dsc__devcount_name((dsc_devcount_kind_t)k),
                   (long long)c->calls[k], (unsigned long long)c->bytes[k]);
}

static int run_stage(const args_t *a, int stage) {
    run_t r = {0};
    r.rng = 0x9E3779B97F4A7C15ull;
    dsc_ctx_options_t co = DSC_CTX_OPTIONS_INIT;
    co.log_fn = bench_log_errors;
    co.device = a->device;
    dsc_device_counts_t counts = {0};
    char err[1024] = "";
    int status = 1;
    if (dsc_ctx_new(&co, &r.ctx) != DSC_OK) {
        fprintf(stderr, "zero_overhead: opening device %s failed\n", a->device);
        return 1;
    }
    dsc_gpt_config_t gc = a->model->gc;
    gc.block_size = a->context;
    char json[1024];
    snprintf(json, sizeof json,
             "{\"train_batch_size\": %d, \"train_micro_batch_size_per_gpu\": %d, \"gradient_accumulation_steps\": %d,"
             " \"steps_per_print\": 1000000000, \"bf16\": {\"enabled\": true}, \"gradient_clipping\": 1.0,"
             " \"optimizer\": {\"type\": \"AdamW\", \"params\": {\"lr\": 0.0006, \"betas\": [0.9, 0.95], \"eps\": 1e-8,"
             " \"weight_decay\": 0.1}}, \"zero_optimization\": {\"stage\": %d}}",
             a->batch * a->ga, a->batch, a->ga, stage);
    dsc_engine_options_t eo = DSC_ENGINE_OPTIONS_INIT;
    eo.config_json = json;
    dsc_initialize_result_t init = {0};
    double *times = calloc((size_t)a->steps, sizeof *times), *mb_times = calloc((size_t)a->ga, sizeof *mb_times);
    r.x = malloc(sizeof *r.x * (size_t)a->batch * (size_t)a->context);
    r.y = malloc(sizeof *r.y * (size_t)a->batch * (size_t)a->context);
    if (!times || !mb_times || !r.x || !r.y) {
        fprintf(stderr, "zero_overhead: out of host memory\n");
        goto done;
    }
    if (dsc_gpt_new(r.ctx, &gc, &r.gpt) != DSC_OK || dsc_initialize(r.gpt->model, &eo, &init, err, sizeof err) != DSC_OK) {
        fprintf(stderr, "zero_overhead: stage %d: %s%s\n", stage, err, err[0] ? "" : dsc_ctx_errmsg(r.ctx));
        goto done;
    }
    r.engine = init.engine;
    dsc_estimate_options_t eopt;
    dsc_memory_estimate_t plan;
    dsc_estimate_options_default(&gc, &eopt);
    if (dsc_estimate_options_from_config(dsc_engine_config(r.engine), &eopt, err, sizeof err) == DSC_OK) {
        eopt.micro_batch = a->batch;
        eopt.context = a->context;
        eopt.vocab_pad = dsc_ctx_gemm_pad_elems(r.ctx);
        eopt.device_is_host = !strcmp(dsc_ctx_device_name(r.ctx), "cpu");
        if (dsc_estimate_memory(&eopt, stage, false, &plan, err, sizeof err) == DSC_OK)
            dsc_ctx_reserve_step_memory(r.ctx, (size_t)plan.step_arena);
    }
    r.probe_dev = dsc_ctx_alloc(r.ctx, DSC_MEM_OTHER, 64);
    if (!r.probe_dev || dsc__device_count_begin(r.ctx, &counts) != DSC_OK) goto fail;
    /* two warm-up steps (ZeRO-3 records its schedule, the pools fill), then the timed ones */
    for (int s = 0; s < 2 + a->steps; s++) {
        const double t0 = bench_now_s();
        for (int m = 0; m < a->ga; m++)
            if (micro_batch(&r, a) != DSC_OK || dsc_step(r.engine) != DSC_OK) goto fail;
        if (wait_device(&r) != DSC_OK) goto fail;
        if (s >= 2) times[s - 2] = bench_now_s() - t0;
    }
    /* one more step, with a wait after each micro-batch, counted by phase */
    dsc_device_counts_t mb = {0}, st = {0}, before, after;
    double step_s = 0;
    int64_t moved_total = 0;
    const dsc_device_counts_t at_start = counts;
    for (int m = 0; m < a->ga; m++) {
        before = counts;
        double t0 = bench_now_s();
        if (micro_batch(&r, a) != DSC_OK) goto fail;
        if (m < a->ga - 1 && dsc_step(r.engine) != DSC_OK) goto fail;
        after = counts;
        if (wait_device(&r) != DSC_OK) goto fail;
        mb_times[m] = bench_now_s() - t0;
        if (m == 0) mb = dsc__device_counts_diff(&after, &before);
    }
    before = counts;
    double t0 = bench_now_s();
    if (dsc_step(r.engine) != DSC_OK) goto fail;
    after = counts;
    if (wait_device(&r) != DSC_OK) goto fail;
    step_s = bench_now_s() - t0;
    st = dsc__device_counts_diff(&after, &before);
    {
        dsc_device_counts_t all = dsc__device_counts_diff(&counts, &at_start);
        moved_total = (int64_t)dsc__device_counts_moved(&all);
    }
    qsort(times, (size_t)a->steps, sizeof *times, bench_cmp_double);
    qsort(mb_times, (size_t)a->ga, sizeof *mb_times, bench_cmp_double);
    size_t peak = 0;
    dsc_ctx_device_memory(r.ctx, NULL, &peak);
    printf("  stage %d: step %9.2f ms (median of %d, min %.2f); micro-batch %8.2f ms (median of %d); dsc_step %8.2f ms; "
           "moved per step %.3f MB; peak device %.1f MiB\n",
           stage, 1e3 * times[a->steps / 2], a->steps, 1e3 * times[0], 1e3 * mb_times[a->ga / 2], a->ga, 1e3 * step_s,
           (double)moved_total / 1e6, (double)peak / 1048576.0);
    print_counts("micro-batch", &mb, a->verbose);
    print_counts("dsc_step", &st, a->verbose);
    status = 0;
    goto done;
fail:
    fprintf(stderr, "zero_overhead: stage %d: %s\n", stage, r.engine ? dsc_engine_errmsg(r.engine) : dsc_ctx_errmsg(r.ctx));
done:
    dsc__device_count_end(r.ctx);
    if (r.probe_dev) dsc_ctx_release(r.ctx, DSC_MEM_OTHER, r.probe_dev, 64);
    dsc_engine_free(r.engine);
    dsc_gpt_free(r.gpt);
    dsc_ctx_free(r.ctx);
    free(times);
    free(mb_times);
    free(r.x);
    free(r.y);
    return status;
}

int main(int argc, char **argv) {
    args_t a = {&presets[1], "cpu", "0123", 8, 4, 5, 0, false}; /* context 0: the model's */
    for (int i = 1; i < argc; i++) {
        const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(k, "--verbose")) {
            a.verbose = true;
            continue;
        }
        if (!v) {
            fprintf(stderr, "zero_overhead: %s needs a value\n", k);
            return 2;
        }
        i++;
        if (!strcmp(k, "--device")) a.device = v;
        else if (!strcmp(k, "--stages")) a.stages = v;
        else if (!strcmp(k, "--batch")) a.batch = atoi(v);
        else if (!strcmp(k, "--ga")) a.ga = atoi(v);
        else if (!strcmp(k, "--steps")) a.steps = atoi(v);
        else if (!strcmp(k, "--context")) a.context = atoi(v);
        else if (!strcmp(k, "--model")) {
            a.model = NULL;
            for (size_t j = 0; j < sizeof presets / sizeof presets[0]; j++)
                if (!strcmp(v, presets[j].name)) a.model = &presets[j];
            if (!a.model) {
                fprintf(stderr, "zero_overhead: --model %s: one of gpt2-tiny, small, d12\n", v);
                return 2;
            }
        } else {
            fprintf(stderr, "usage: zero_overhead [--device cpu|guarded|cuda:0] [--model gpt2-tiny|small|d12] [--batch B]"
                            " [--ga G] [--steps N] [--context T (default: the model's)] [--stages 0123] [--verbose]\n");
            return 2;
        }
    }
    if (a.context == 0) a.context = a.model->gc.block_size;
    if (a.batch < 1 || a.ga < 1 || a.steps < 1 || a.context < 1 || a.context > a.model->gc.block_size) {
        fprintf(stderr, "zero_overhead: batch, ga, steps >= 1 and 1 <= context <= %d\n", a.model->gc.block_size);
        return 2;
    }
    printf("zero_overhead: %s (%d layers x %d wide, vocab %d), B %d x T %d, GA %d, bf16, AdamW, one rank, device %s\n",
           a.model->name, a.model->gc.n_layer, a.model->gc.n_embd, a.model->gc.vocab_size, a.batch, a.context, a.ga,
           a.device);
    int status = 0;
    for (const char *s = a.stages; *s; s++)
        if (*s >= '0' && *s <= '3') status |= run_stage(&a, *s - '0');
    return status;
}

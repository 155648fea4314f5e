/* GPT-2 training throughput on one device, in the setting of the anchor runs
 * (/work/shared/reference/anchor_runs.md section 1; issue 17): T = 1024, 524,288 tokens per
 * optimizer step (micro batch B x gradient accumulation), bf16 with fp32 master weights,
 * AdamW (betas 0.9/0.95, eps 1e-8, lr 6e-4 constant, weight decay 0.1), gradient clipping
 * 1.0, random tokens uniform over the vocabulary. Its twin, tools/torch_gpt2_ref.py, runs
 * compiled PyTorch in the same setting and prints the same row.
 *
 * Each timed step covers the whole optimizer step (every micro-step's forward, backward
 * and dsc_step, the clip and the update) and ends with a device-to-host read of a value on
 * the context's device, which waits for everything queued on its stream. The row gives the
 * median and minimum over the steps after the first (which holds the allocations), tok/s
 * from the median, and MFU with llm.c's FLOPs/token 6 N + 6 L C T (N with llm.c's vocab
 * padded to a multiple of 128: 803,478,528 for d12) against the H100's 989.4 TFLOP/s.
 *
 * Exit status: 0, 1 (an error), 2 (usage), 3 (out of memory: the message says so; a script
 * may retry with a smaller --batch).
 *
 * Before anything is allocated the run's memory plan (dsc estimate's arithmetic: device bytes,
 * host and pinned host bytes with --offload cpu) is printed and checked against the device's
 * free memory and the host's MemAvailable; a run that cannot fit stops there with exit status
 * 3 and says which side is short (--plan-only prints the plan and stops: status 0 when it fits, 3 when not).
 *
 * Models: the presets below (llm.c's dN, and GPT-3-style shapes with head dim 64: gpt-1.3b,
 * gpt-2.7b, gpt-6.7b, gpt-13b) or any --layers / --embd / --heads.
 *
 * Usage: gpt2_gpu [--model d12] [--batch 64] [--steps 10] [--zero 0] [--ckpt] [--device cuda:0]
 *                 [--tokens-per-step 524288 | --ga N] [--context 1024] [--vocab 50257] [--seed 1]
 *                 [--layers L --embd C --heads H] [--plan-only]
 *                 [--max-seconds S]   (stop after the step that passes S seconds, once 2 ran)
 *                 [--offload none|cpu] (zero_optimization.offload_optimizer.device, ZeRO 1-3: "cpu" runs
 *                                       the optimizer on the host, docs/offload.md)
 *                 [--save-params FILE] [--compare-params FILE]  (the final parameters, gpt2_gpu_world.h)
 * A smoke test on the CPU: gpt2_gpu --device cpu --model gpt2-tiny --context 32 --batch 2
 *                                   --tokens-per-step 128 --steps 3
 * Several ranks (issue 19): mpirun -np N gpt2_gpu --device cuda ... trains data-parallel, rank r
 * on cuda:<local rank> (gpt2_gpu_world.h: same global batch for every N); rank 0 prints the row,
 * tok/s of the whole job and the largest peak memory of any rank. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dsc/dsc.h"
#include "gpt2_gpu_world.h"

#define EXIT_OOM 3
#define H100_BF16_PEAK 989.4e12 /* dense bf16 tensor-core peak of the H100 SXM, FLOP/s */

typedef struct {
    const char *name;
    int layers, heads, embd;
} preset_t;

/* The depth presets of `dsc train --model` (llm.c's dN). */
static const preset_t presets[] = {
    {"gpt2-tiny", 2, 4, 64}, {"d6", 6, 6, 384}, {"d12", 12, 12, 768}, {"d24", 24, 16, 1024}, {"d36", 36, 20, 1280},
    {"d48", 48, 25, 1600},
    /* GPT-3's shapes (Brown et al. table 2.1) at T 1024, head dim 64 (the tensor-core attention's) */
    {"gpt-1.3b", 24, 32, 2048}, {"gpt-2.7b", 32, 40, 2560}, {"gpt-6.7b", 32, 64, 4096}, {"gpt-13b", 40, 80, 5120},
};

typedef struct {
    const preset_t *model;
    preset_t custom; /* --layers/--embd/--heads over the preset */
    char custom_name[64];
    int batch, steps, zero, context, vocab, ga;
    long tokens_per_step;
    double max_seconds; /* 0: run every step */
    bool ckpt, plan_only;
    const char *device;
    const char *offload; /* offload_optimizer.device: "none" or "cpu" */
    uint64_t seed;
    const char *save_params, *compare_params; /* NULL: none */
} args_t;

static void usage(FILE *out) {
    fprintf(out, "usage: gpt2_gpu [--model d12|d24|d48|d6|d36|gpt2-tiny|gpt-1.3b|gpt-2.7b|gpt-6.7b|gpt-13b]\n"
                 "                [--layers L] [--embd C] [--heads H]  (override the preset's shape)\n"
                 "                [--batch B] [--steps N] [--zero 0-3] [--ckpt]\n"
                 "                [--device cuda:0|cpu|guarded] [--tokens-per-step N | --ga N] [--context T] [--vocab V]\n"
                 "                [--seed S] [--max-seconds S]  (stop after the step that passes S s, once 2 steps ran)\n"
                 "                [--offload none|cpu]  (the optimizer offloaded to the host; needs --zero 1-3)\n"
                 "                [--plan-only]  (print the memory plan and whether it fits, allocate nothing; exit 3: it does not)\n"
                 "                [--save-params FILE] [--compare-params FILE]  (the parameters after the run)\n"
                 "under mpirun: --device cuda puts rank r on cuda:<local rank>\n"
                 "defaults: d12, B 64, 10 steps, ZeRO 0, cuda:0, 524288 tokens per step, T 1024, vocab 50257\n");
}

static bool parse_long(const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return false;
    *out = v;
    return true;
}

static int parse_args(int argc, char **argv, args_t *a) {
    for (int i = 1; i < argc; i++) {
        const char *k = argv[i];
        if (!strcmp(k, "-h") || !strcmp(k, "--help")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(k, "--ckpt") || !strcmp(k, "--plan-only")) {
            *(k[2] == 'c' ? &a->ckpt : &a->plan_only) = true;
            continue;
        }
        static const char *const with_value[] = {"--model", "--device", "--batch", "--steps", "--zero",
                                                 "--context", "--vocab", "--seed", "--tokens-per-step",
                                                 "--max-seconds", "--offload", "--ga", "--layers",
                                                 "--embd", "--heads", "--save-params", "--compare-params"};
        bool known = false;
        for (size_t o = 0; o < sizeof with_value / sizeof with_value[0]; o++) known = known || !strcmp(k, with_value[o]);
        if (!known) {
            fprintf(stderr, "gpt2_gpu: unknown option %s\n", k);
            usage(stderr);
            return 2;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "gpt2_gpu: %s needs a value\n", k);
            usage(stderr);
            return 2;
        }
        const char *v = argv[++i];
        long n = 0;
        bool ok = true;
        if (!strcmp(k, "--model")) {
            a->model = NULL;
            for (size_t m = 0; m < sizeof presets / sizeof presets[0]; m++)
                if (!strcmp(v, presets[m].name)) a->model = &presets[m];
            ok = a->model != NULL;
        } else if (!strcmp(k, "--device")) a->device = v;
        else if (!strcmp(k, "--save-params")) a->save_params = v;
        else if (!strcmp(k, "--compare-params")) a->compare_params = v;
        else if (!strcmp(k, "--offload")) ok = !strcmp(v, "none") || !strcmp(v, "cpu"), a->offload = v;
        else if (!strcmp(k, "--batch")) ok = parse_long(v, 1, 1 << 20, &n), a->batch = (int)n;
        else if (!strcmp(k, "--steps")) ok = parse_long(v, 1, 100000, &n), a->steps = (int)n;
        else if (!strcmp(k, "--zero")) ok = parse_long(v, 0, 3, &n), a->zero = (int)n;
        else if (!strcmp(k, "--context")) ok = parse_long(v, 2, 1 << 20, &n), a->context = (int)n;
        else if (!strcmp(k, "--vocab")) ok = parse_long(v, 2, 1 << 24, &n), a->vocab = (int)n;
        else if (!strcmp(k, "--seed")) ok = parse_long(v, 0, 2147483647, &n), a->seed = (uint64_t)n;
        else if (!strcmp(k, "--tokens-per-step")) ok = parse_long(v, 1, 1L << 40, &n), a->tokens_per_step = n;
        else if (!strcmp(k, "--ga")) ok = parse_long(v, 1, 1 << 20, &n), a->ga = (int)n;
        else if (!strcmp(k, "--layers")) ok = parse_long(v, 1, 10000, &n), a->custom.layers = (int)n;
        else if (!strcmp(k, "--embd")) ok = parse_long(v, 1, 1 << 20, &n), a->custom.embd = (int)n;
        else if (!strcmp(k, "--heads")) ok = parse_long(v, 1, 10000, &n), a->custom.heads = (int)n;
        else {
            char *end;
            a->max_seconds = strtod(v, &end); /* --max-seconds */
            ok = *end == '\0' && end != v && a->max_seconds >= 0;
        }
        if (!ok) {
            fprintf(stderr, "gpt2_gpu: invalid value '%s' for %s\n", v, k);
            usage(stderr);
            return 2;
        }
    }
    return -1;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *x, const void *y) {
    double p = *(const double *)x, q = *(const double *)y;
    return (p > q) - (p < q);
}

/* Warnings and errors only: the engine's start-up lines would bury the row. */
static void quiet_log(dsc_log_level_t level, const char *message, void *user) {
    (void)user;
    if (level <= DSC_LOG_WARN) fprintf(stderr, "%s\n", message);
}

/* splitmix64: the token stream (uniform over [0, vocab) by a 32 x 32 -> 64 bit product). */
static uint64_t next_u64(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static void random_batch(uint64_t *s, int32_t *x, int32_t *y, long n, int vocab) {
    int32_t prev = (int32_t)(((next_u64(s) >> 32) * (uint64_t)vocab) >> 32);
    for (long i = 0; i < n; i++) { /* y is x shifted by one, as a token stream gives them */
        x[i] = prev;
        prev = (int32_t)(((next_u64(s) >> 32) * (uint64_t)vocab) >> 32);
        y[i] = prev;
    }
}

/* llm.c's parameter count: its vocabulary padded to a multiple of 128 (50257 -> 50304). */
static double llmc_params(int layers, int embd, int vocab, int context) {
    const double vp = (double)((vocab + 127) / 128 * 128), c = embd;
    return vp * c + (double)context * c + layers * (12.0 * c * c + 13.0 * c) + 2.0 * c;
}

/* Out of memory anywhere: the status, or a device error that says so: CUDA's "out of memory"
 * (cudaErrorMemoryAllocation) or cuBLAS's CUBLAS_STATUS_ALLOC_FAILED, which dsc reports as
 * "(CUDA error 1003)". */
static bool is_oom(dsc_status_t rc, const char *msg) {
    return rc == DSC_ERR_NOMEM || (msg && (strstr(msg, "out of memory") || strstr(msg, "(CUDA error 1003)")));
}

/* The anchor of anchor_runs.md section 1 for this model, or NULL. */
static const char *anchor_of(const char *model, double *tok_s) {
    if (!strcmp(model, "d12")) {
        *tok_s = 464379;
        return "PyTorch torch.compile B64 464,379 tok/s";
    }
    if (!strcmp(model, "d24")) {
        *tok_s = 184808;
        return "llm.c+cuDNN B32 184,808 tok/s";
    }
    return NULL;
}

/* Everything one run holds; bench_free releases what was made. */
typedef struct {
    args_t a;
    world_t world;
    int ga; /* micro-steps per optimizer step on this rank (of ga * world.size in all) */
    long micro_tokens;
    dsc_gpt_config_t gc;
    char device_label[300];
    dsc_ctx_t *ctx;
    dsc_gpt_t *gpt;
    dsc_engine_t *engine;
    dsc_memory_estimate_t plan;
    bool plan_ok;
    int64_t init_peak; /* device bytes at the start: model state and the initialisation's temporaries */
    double init_s;     /* context, model and dsc_initialize, wall seconds */
    size_t host_bytes, host_pinned; /* measured: the offloaded optimizer's host memory */
    int32_t *x, *y;
    double *times; /* seconds per optimizer step */
    double *opt_times; /* --offload cpu: seconds of the boundary dsc_step (rest of the gradient copy,
                          CPU step, the update's copies issued: the last still go up after it returns,
                          the next forward waits for them on the stream), timed after a wait for the
                          queued backward */
    double *opt_waits; /* --offload cpu: seconds of that step the host waited for its copies (a gradient part
                        * still coming, a staging buffer still going up: dsc_engine_offload_wait_seconds) */
    int steps_run;  /* fewer than --steps when --max-seconds stopped the run */
    void *sync_dev;   /* 64 bytes of device memory: reading it back waits for the stream */
    double loss;
    char world_cell[96], world_result[160]; /* ranks, backend and the parameter check, for the row */
    /* the failure: status, what was being done, the message */
    dsc_status_t rc;
    const char *where;
    char err[2048];
} bench_t;

static dsc_status_t fail(bench_t *b, dsc_status_t rc, const char *where, const char *msg) {
    b->rc = rc;
    b->where = where;
    if (msg != b->err) snprintf(b->err, sizeof b->err, "%s", msg);
    return rc;
}

/* MemAvailable of /proc/meminfo in bytes, or 0 when unknown. */
static int64_t host_available(void) {
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) return 0;
    char line[256];
    long long kb = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %lld kB", &kb) == 1) break;
    fclose(f);
    return (int64_t)kb * 1024;
}

#define GIB(x) ((double)(x) / 1073741824.0)

/* The memory plan before anything is allocated (dsc estimate's arithmetic on this run's
 * config), printed, and checked against what the device and the host have free: DSC_ERR_NOMEM
 * with the short side named when it cannot fit. */
static dsc_status_t bench_plan(bench_t *b, const char *json) {
    const args_t *a = &b->a;
    dsc_config_t *cfg = NULL;
    dsc_estimate_options_t eopt;
    char perr[512];
    dsc_estimate_options_default(&b->gc, &eopt);
    dsc_status_t rc = dsc_config_parse_string(json, NULL, &cfg, perr, sizeof perr);
    if (rc == DSC_OK) rc = dsc_estimate_options_from_config(cfg, &eopt, perr, sizeof perr);
    dsc_config_free(cfg);
    if (rc != DSC_OK) return fail(b, rc, "planning the memory", perr);
    eopt.micro_batch = a->batch;
    eopt.context = a->context;
    eopt.world_size = b->world.size;
    eopt.rank = b->world.rank;
    eopt.checkpoint_every = a->ckpt ? 1 : 0;
    eopt.vocab_pad = dsc_ctx_gemm_pad_elems(b->ctx);
    const char *dev = dsc_ctx_device_name(b->ctx);
    eopt.device_is_host = !strcmp(dev, "cpu");
    if ((rc = dsc_estimate_memory(&eopt, a->zero, a->ckpt, &b->plan, perr, sizeof perr)) != DSC_OK)
        return fail(b, rc, "planning the memory", perr);
    b->plan_ok = true;
    const dsc_memory_estimate_t *p = &b->plan;
    const int64_t state = p->state.params + p->state.grads + p->state.optim + p->state.grad_accum + p->state.comm;
    /* the start's temporaries (src/zero/zero_state.c, zero_scopes.c): stage 3 initialises through
     * an fp32 copy of every parameter (and, offloaded in 16 bits, an fp32 one of the shards);
     * stages 1-2 on more than one rank through an fp32 copy of every parameter; one rank at
     * stages 1-2 through the gradient partition (nothing more); stage 0 through the master */
    const bool mixed = eopt.param_dtype != DSC_F32, off = a->zero > 0 && strcmp(a->offload, "cpu") == 0 && !eopt.device_is_host;
    int64_t temp = 0;
    if (a->zero == 3) temp = 4 * p->numel + (off && mixed ? p->state.grad_accum : 0);
    else if (a->zero > 0 && eopt.world_size > 1) temp = 4 * p->padded;
    b->init_peak = state + temp;
    /* + 1 GiB: on the H100 the measured peaks ran 0.5-0.65 GiB above the plan (d24 B 32: 29,741
     * MiB against 29,235; d48 B 16 checkpointed: 35,587 against 34,939; cuBLASLt's workspace,
     * scratch, the padded vocabulary's copies) */
    const int64_t device_need = (p->total > b->init_peak ? p->total : b->init_peak) + (1ll << 30);
    if (b->world.rank == 0) /* every rank's plan is the same; each checks its own device */
        fprintf(stderr, "gpt2_gpu: memory plan (dsc estimate): device %.2f GiB = parameters %.2f + gradients %.2f + optimizer "
            "%.2f + gradient partition %.2f + layer %.2f + activations %.2f (step arena %.2f); start %.2f GiB; host %.2f GiB "
            "(pinned %.2f) for the offloaded optimizer\n", GIB(p->total), GIB(p->state.params), GIB(p->state.grads),
            GIB(p->state.optim), GIB(p->state.grad_accum), GIB(p->state.transient), GIB(p->activations),
            GIB(p->step_arena), GIB(b->init_peak), GIB(p->host_bytes), GIB(p->pinned_host_bytes));
    /* what there is: the GPU's free memory; host memory (the cpu and guarded devices' memory too) */
    int64_t device_free = -1, host_free = host_available();
    if (!strncmp(dev, "cuda", 4)) {
        dsc_gpu_info_t info;
        if (dsc_gpu_info(dev[4] == ':' ? atoi(dev + 5) : 0, &info, NULL, 0) == DSC_OK) device_free = (int64_t)info.free_bytes;
    }
    const int64_t host_need = p->host_bytes + (device_free < 0 ? device_need : 0) + (2ll << 30) /* the process */;
    char why[512] = "";
    if (device_free >= 0 && device_need > device_free)
        snprintf(why, sizeof why, "the device has %.2f GiB free, the plan needs %.2f GiB (peak of the step %.2f, of the "
                 "start %.2f, + 1 GiB)", GIB(device_free), GIB(device_need), GIB(p->total), GIB(b->init_peak));
    else if (host_free > 0 && host_need > host_free)
        snprintf(why, sizeof why, "the host has %.2f GiB available (MemAvailable), the plan needs %.2f GiB (%.2f for the "
                 "offloaded optimizer%s + 2 for the process)", GIB(host_free), GIB(host_need), GIB(p->host_bytes),
                 device_free < 0 ? " + the device's plan, host memory here" : "");
    /* every rank stops when one must (the others would wait in dsc_initialize's collectives) */
    if (world_max(&b->world, why[0] ? 1.0 : 0.0) > 0.0 && !why[0])
        snprintf(why, sizeof why, "another rank's plan does not fit its device or host");
    if (b->world.rank == 0 || why[0])
        fprintf(stderr, "gpt2_gpu: available: device %s%.2f GiB free, host %.2f GiB (MemAvailable): %s\n",
            device_free < 0 ? "(host memory) " : "", GIB(device_free < 0 ? host_free : device_free), GIB(host_free),
            why[0] ? "does NOT fit" : "fits");
    if (why[0]) return fail(b, DSC_ERR_NOMEM, "checking the memory plan", why);
    return DSC_OK;
}

/* Context, the memory plan (checked before anything is allocated), model, engine (the
 * DeepSpeed config of the anchor setting), the plan's activations reserved as `dsc train`
 * does, and the buffers. */
static dsc_status_t bench_setup(bench_t *b) {
    const args_t *a = &b->a;
    const double t0 = now_s();
    dsc_ctx_options_t co = DSC_CTX_OPTIONS_INIT;
    co.seed = a->seed;
    co.device = b->world.device;
    co.log_fn = quiet_log;
    snprintf(b->device_label, sizeof b->device_label, "%s", b->world.device);
    dsc_status_t rc = dsc_ctx_new(&co, &b->ctx);
    if (rc != DSC_OK) return fail(b, rc, "opening the device", "see the message above");
    if ((rc = world_open(&b->world, b->ctx)) != DSC_OK)
        return fail(b, rc, "making the communicator", dsc_ctx_errmsg(b->ctx));
    snprintf(b->device_label, sizeof b->device_label, "%s", dsc_ctx_device_name(b->ctx));
    if (!strncmp(b->device_label, "cuda", 4)) {
        dsc_gpu_info_t info;
        const int ordinal = b->device_label[4] == ':' ? atoi(b->device_label + 5) : 0;
        if (dsc_gpu_info(ordinal, &info, NULL, 0) == DSC_OK)
            snprintf(b->device_label, sizeof b->device_label, "%s", info.name);
    }
    char json[1024];
    snprintf(json, sizeof json,
             "{\"train_batch_size\": %d, \"train_micro_batch_size_per_gpu\": %d, \"gradient_accumulation_steps\": %d,\n"
             " \"steps_per_print\": 1000000000, \"bf16\": {\"enabled\": true}, \"gradient_clipping\": 1.0,\n"
             " \"optimizer\": {\"type\": \"AdamW\", \"params\": {\"lr\": 0.0006, \"betas\": [0.9, 0.95], \"eps\": 1e-8,"
             " \"weight_decay\": 0.1}},\n"
             " \"zero_optimization\": {\"stage\": %d%s}}\n",
             a->batch * b->ga * b->world.size, a->batch, b->ga, a->zero,
             strcmp(a->offload, "cpu") ? "" : ", \"offload_optimizer\": {\"device\": \"cpu\", \"pin_memory\": true}");
    if ((rc = bench_plan(b, json)) != DSC_OK || a->plan_only) return rc;

    if ((rc = dsc_gpt_new(b->ctx, &b->gc, &b->gpt)) != DSC_OK)
        return fail(b, rc, "building the model", dsc_ctx_errmsg(b->ctx));
    if (a->ckpt) dsc_gpt_set_checkpointing(b->gpt, 1);
    dsc_engine_options_t eo = DSC_ENGINE_OPTIONS_INIT;
    eo.config_json = json;
    eo.comm = b->world.comm;
    dsc_initialize_result_t init = {0};
    if ((rc = dsc_initialize(b->gpt->model, &eo, &init, b->err, sizeof b->err)) != DSC_OK)
        return fail(b, rc, "dsc_initialize", b->err);
    b->engine = init.engine;
    b->init_s = now_s() - t0;
    b->host_bytes = dsc_engine_offload_host_bytes(b->engine, &b->host_pinned);

    /* As `dsc train` does: hold the plan's activations in one piece before the first step. */
    if ((rc = dsc_ctx_reserve_step_memory(b->ctx, (size_t)b->plan.step_arena)) != DSC_OK)
        return fail(b, rc, "reserving the planned activation memory", dsc_ctx_errmsg(b->ctx));

    b->sync_dev = dsc_ctx_alloc(b->ctx, DSC_MEM_OTHER, 64);
    if (!b->sync_dev) return fail(b, DSC_ERR_NOMEM, "allocating 64 bytes on the device", dsc_ctx_errmsg(b->ctx));
    b->x = malloc(sizeof *b->x * (size_t)b->micro_tokens);
    b->y = malloc(sizeof *b->y * (size_t)b->micro_tokens);
    b->times = malloc(sizeof *b->times * (size_t)a->steps);
    b->opt_times = malloc(sizeof *b->opt_times * (size_t)a->steps);
    b->opt_waits = calloc((size_t)a->steps, sizeof *b->opt_waits);
    if (!b->x || !b->y || !b->times || !b->opt_times || !b->opt_waits)
        return fail(b, DSC_ERR_NOMEM, "allocating host token buffers", "malloc failed");
    return DSC_OK;
}

/* The timed optimizer steps: GA micro-steps of forward, dsc_backward and dsc_step, then a
 * read from the device, which returns once everything queued before it has run. */
static dsc_status_t bench_run(bench_t *b) {
    const args_t *a = &b->a;
    uint64_t rng = a->seed * 0x9E3779B97F4A7C15ull + 7;
    const double start = now_s();
    dsc_status_t rc;
    for (int s = 0; s < a->steps; s++) {
        const double t0 = now_s();
        for (int m = 0; m < b->ga * b->world.size; m++) {
            /* the step's micro-batches are the same for every world size; this rank trains its share */
            random_batch(&rng, b->x, b->y, b->micro_tokens, b->gc.vocab_size);
            if (m / b->ga != b->world.rank) continue;
            dsc_tensor_t *l = NULL;
            if ((rc = dsc_gpt_forward(b->ctx, b->gpt, b->x, b->y, a->batch, a->context, NULL, &l)) != DSC_OK)
                return fail(b, rc, "forward", dsc_ctx_errmsg(b->ctx));
            if ((rc = dsc_backward(b->engine, l)) != DSC_OK)
                return fail(b, rc, "backward", dsc_engine_errmsg(b->engine));
            /* offloaded: the boundary step waits for the backward anyway (its gradients go to
             * the host); waiting first times the step's own part: what the CPU adds */
            const bool timed = m % b->ga == b->ga - 1 && !strcmp(a->offload, "cpu"); /* this rank's last */
            unsigned char probe[64];
            if (timed && (rc = dsc_ctx_to_host(b->ctx, probe, b->sync_dev, sizeof probe)) != DSC_OK)
                return fail(b, rc, "synchronising with the device", dsc_ctx_errmsg(b->ctx));
            const double ts = now_s(), ws = dsc_engine_offload_wait_seconds(b->engine);
            if ((rc = dsc_step(b->engine)) != DSC_OK) return fail(b, rc, "step", dsc_engine_errmsg(b->engine));
            if (timed) b->opt_times[s] = now_s() - ts;
            if (timed) b->opt_waits[s] = dsc_engine_offload_wait_seconds(b->engine) - ws;
        }
        /* the host's own time for the step: everything was queued; the read below waits */
        const double host_s = now_s() - t0;
        unsigned char probe[64];
        if ((rc = dsc_ctx_to_host(b->ctx, probe, b->sync_dev, sizeof probe)) != DSC_OK)
            return fail(b, rc, "synchronising with the device", dsc_ctx_errmsg(b->ctx));
        b->times[s] = now_s() - t0;
        b->loss = dsc_engine_last_loss(b->engine); /* outside the timer */
        char opt_note[96] = "";
        if (!strcmp(a->offload, "cpu"))
            snprintf(opt_note, sizeof opt_note, ", offloaded optimizer step %.1f ms, of it waiting for copies %.1f ms",
                     b->opt_times[s] * 1e3, b->opt_waits[s] * 1e3);
        if (b->world.rank == 0)
            fprintf(stderr, "gpt2_gpu: step %d/%d: %.1f ms (host queued it in %.1f ms%s), loss %.4f, grad norm %.3f\n",
                    s + 1, a->steps, b->times[s] * 1e3, host_s * 1e3, opt_note, b->loss, dsc_engine_grad_norm(b->engine));
        b->steps_run = s + 1;
        if (a->max_seconds > 0 && s >= 1 && now_s() - start > a->max_seconds && s + 1 < a->steps) {
            fprintf(stderr, "gpt2_gpu: stopping after step %d of %d: --max-seconds %g passed\n", s + 1, a->steps,
                    a->max_seconds);
            break;
        }
    }
    return DSC_OK;
}

/* --save-params / --compare-params (every rank takes part: ZeRO-3 gathers); the row's
 * world cells. False when a parameter file failed (the message printed). */
static bool bench_params(bench_t *b) {
    const args_t *a = &b->a;
    const world_t *w = &b->world;
    snprintf(b->world_cell, sizeof b->world_cell, "%s", "");
    snprintf(b->world_result, sizeof b->world_result, "%s", "");
    if (w->comm) {
        snprintf(b->world_cell, sizeof b->world_cell, ", %d ranks (%s)", w->size, dsc_comm_backend_name(w->comm));
        snprintf(b->world_result, sizeof b->world_result, " ranks=%d comm=%s", w->size, dsc_comm_backend_name(w->comm));
    }
    if (!a->save_params && !a->compare_params) return true;
    char err[512] = "";
    int64_t n = 0;
    float *v = world_param_values(b->engine, b->gpt->model, &n, err, sizeof err);
    bool ok = v != NULL;
    if (ok && w->rank == 0 && a->save_params) ok = world_save_params(a->save_params, v, n, err, sizeof err);
    double dabs = 0, rel = 0;
    if (ok && w->rank == 0 && a->compare_params) {
        ok = world_compare_params(a->compare_params, v, n, &dabs, &rel, err, sizeof err);
        if (ok) {
            const size_t used = strlen(b->world_result);
            snprintf(b->world_result + used, sizeof b->world_result - used, " param_max_abs=%.3e param_rel_l2=%.3e",
                     dabs, rel);
            fprintf(stderr, "gpt2_gpu: parameters against %s: largest difference %.3e, "
                    "||p - p_ref|| / ||p_ref|| = %.3e\n", a->compare_params, dabs, rel);
        }
    }
    if (!ok) fprintf(stderr, "gpt2_gpu: %s\n", err);
    free(v);
    return ok;
}

/* The row, in the same columns as tools/torch_gpt2_ref.py, and a RESULT line for scripts. */
static bool bench_report(bench_t *b) {
    const args_t *a = &b->a;
    /* The first step holds the allocations: leave it out when there is more than one. */
    const int skip = b->steps_run > 1 ? 1 : 0, n = b->steps_run - skip;
    double *t = b->times + skip, *o = b->opt_times + skip, *w = b->opt_waits + skip;
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    qsort(o, (size_t)n, sizeof *o, cmp_double);
    qsort(w, (size_t)n, sizeof *w, cmp_double);
    const double med = n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
    const double opt_med = strcmp(a->offload, "cpu") ? 0.0 : n % 2 ? o[n / 2] : 0.5 * (o[n / 2 - 1] + o[n / 2]);
    const double wait_med = strcmp(a->offload, "cpu") ? 0.0 : n % 2 ? w[n / 2] : 0.5 * (w[n / 2 - 1] + w[n / 2]);
    const double tok_s = (double)a->tokens_per_step / med;
    const double flops_per_token = 6.0 * llmc_params(b->gc.n_layer, b->gc.n_embd, b->gc.vocab_size, a->context) +
                                   6.0 * b->gc.n_layer * b->gc.n_embd * (double)a->context;
    size_t peak = 0;
    dsc_ctx_device_memory(b->ctx, NULL, &peak);
    peak = (size_t)world_max(&b->world, (double)peak); /* the fullest device of the job */
    if (!bench_params(b)) return false;
    if (b->world.rank != 0) return true;
    double anchor_tok_s = 0;
    const char *anchor = anchor_of(a->model->name, &anchor_tok_s);
    char anchor_cell[160] = "-";
    if (anchor) snprintf(anchor_cell, sizeof anchor_cell, "%s (ours %.3fx)", anchor, tok_s / anchor_tok_s);
    printf("| system | device | model | B | GA | T | steps timed | ms/step median | ms/step min | tok/s | MFU vs 989.4 TF "
           "| peak device MiB | loss (last micro-batch) | anchor (H100) |\n"
           "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
    printf("| dsc %s bf16 ZeRO-%d%s%s%s | %s | %s | %d | %d | %d | %d of %d | %.1f | %.1f | %.0f | %.1f %% | %.0f | %.4f | %s |\n",
           DSC_VERSION_STRING, a->zero, a->ckpt ? " ckpt" : "", strcmp(a->offload, "cpu") ? "" : " offload cpu",
           b->world_cell, b->device_label, a->model->name, a->batch, b->ga,
           a->context, n, b->steps_run, med * 1e3, t[0] * 1e3, tok_s, 100.0 * tok_s * flops_per_token / H100_BF16_PEAK,
           peak / 1048576.0, b->loss, anchor_cell);
    printf("note: dsc decays every parameter (weight_decay 0.1 on biases and LayerNorm weights too: dsc has no "
           "per-tensor groups); the anchors decay 2-D tensors only. This changes the update, not its cost.\n");
    /* the same columns first (scripts read them), then the big-model ones: tokens per optimizer
     * step, MFU (model FLOPs: checkpointing's recompute not counted), parameters, the shape,
     * ZeRO stage, host bytes of the offloaded optimizer (measured), the plan's device and
     * host bytes, seconds of the start and of the offloaded step, and of that step's waits for
     * its copies (medians) */
    printf("RESULT system=dsc model=%s batch=%d ga=%d ms_median=%.3f tok_s=%.1f peak_mib=%.0f loss=%.4f offload=%s%s "
           "tokens_per_step=%ld mfu=%.2f params=%lld layers=%d embd=%d heads=%d zero=%d ckpt=%d host_mib=%.0f "
           "pinned_mib=%.0f plan_device_mib=%.0f plan_host_mib=%.0f init_s=%.2f opt_step_s=%.3f opt_wait_s=%.3f\n",
           a->model->name, a->batch, b->ga, med * 1e3, tok_s, peak / 1048576.0, b->loss, a->offload, b->world_result,
           a->tokens_per_step, 100.0 * tok_s * flops_per_token / H100_BF16_PEAK, (long long)dsc_model_numel(b->gpt->model),
           b->gc.n_layer, b->gc.n_embd, b->gc.n_head, a->zero, a->ckpt ? 1 : 0, b->host_bytes / 1048576.0,
           b->host_pinned / 1048576.0, b->plan.total / 1048576.0, b->plan.host_bytes / 1048576.0, b->init_s, opt_med, wait_med);
    return true;
}

static void bench_free(bench_t *b) {
    if (b->sync_dev) dsc_ctx_release(b->ctx, DSC_MEM_OTHER, b->sync_dev, 64);
    free(b->x);
    free(b->y);
    free(b->times);
    free(b->opt_times);
    free(b->opt_waits);
    dsc_engine_free(b->engine);
    dsc_comm_free(b->world.comm);
    dsc_gpt_free(b->gpt);
    dsc_ctx_free(b->ctx);
}

int main(int argc, char **argv) {
    bench_t b = {.a = {.model = &presets[2], .batch = 64, .steps = 10, .zero = 0, .context = 1024, .vocab = 50257,
                       .tokens_per_step = 524288, .ckpt = false, .device = "cuda:0", .offload = "none", .seed = 1},
                 .loss = NAN, .where = ""};
    const int pa = parse_args(argc, argv, &b.a);
    if (pa >= 0) return pa;
    args_t *ma = &b.a;
    if (ma->custom.layers || ma->custom.embd || ma->custom.heads) { /* the preset's shape, overridden */
        const preset_t *base = ma->model;
        ma->custom.layers = ma->custom.layers ? ma->custom.layers : base->layers;
        ma->custom.embd = ma->custom.embd ? ma->custom.embd : base->embd;
        ma->custom.heads = ma->custom.heads ? ma->custom.heads : base->heads;
        snprintf(ma->custom_name, sizeof ma->custom_name, "L%d-C%d-H%d", ma->custom.layers, ma->custom.embd,
                 ma->custom.heads);
        ma->custom.name = ma->custom_name;
        ma->model = &ma->custom;
    }
    world_place(&b.world, ma->device);
    /* --ga wins: micro-steps per rank */
    if (ma->ga > 0) ma->tokens_per_step = (long)ma->batch * ma->context * ma->ga * b.world.size;
    const args_t *a = &b.a;
    b.micro_tokens = (long)a->batch * a->context;
    if (a->tokens_per_step % (b.micro_tokens * b.world.size) != 0) {
        fprintf(stderr, "gpt2_gpu: --tokens-per-step %ld is not a multiple of B x T x ranks = %d x %d x %d = %ld\n",
                a->tokens_per_step, a->batch, a->context, b.world.size, b.micro_tokens * b.world.size);
        return 2;
    }
    b.ga = (int)(a->tokens_per_step / (b.micro_tokens * b.world.size));
    b.gc = (dsc_gpt_config_t){a->model->layers, a->model->heads, a->model->embd, a->vocab, a->context, 0.0, 1e-5};

    int status = 1;
    if (bench_setup(&b) == DSC_OK && a->plan_only) {
        status = 0;
    } else if (b.rc == DSC_OK) {
        if (b.world.rank == 0)
            fprintf(stderr, "gpt2_gpu: %s on %s (%s): %d layers, %d heads, width %d, vocab %d, T %d, %lld parameters; "
                "B %d x GA %d = %ld tokens/step; bf16, ZeRO %d%s%s; memory plan %.1f MiB; started in %.2f s\n",
                a->model->name, b.device_label, dsc_ctx_device_name(b.ctx), b.gc.n_layer, b.gc.n_head, b.gc.n_embd,
                b.gc.vocab_size, a->context, (long long)dsc_model_numel(b.gpt->model), a->batch, b.ga,
                a->tokens_per_step, a->zero, a->ckpt ? ", activation checkpointing" : "",
                strcmp(a->offload, "cpu") ? "" : ", optimizer offloaded to the host", b.plan_ok ? b.plan.total / 1048576.0 : 0.0,
                b.init_s);
        if (bench_run(&b) == DSC_OK) {
            status = bench_report(&b) && isfinite(b.loss) ? 0 : 1;
            if (!isfinite(b.loss)) fprintf(stderr, "gpt2_gpu: the loss is not finite\n");
        }
    }
    if (b.rc != DSC_OK && is_oom(b.rc, b.err)) {
        fprintf(stderr, "gpt2_gpu: out of memory on %s (%s) at B %d (%s): %s\n", b.device_label, a->model->name, a->batch,
                b.where, b.err);
        status = EXIT_OOM;
    } else if (b.rc != DSC_OK) {
        fprintf(stderr, "gpt2_gpu: %s failed: %s\n", b.where, b.err);
    }
    bench_free(&b);
    return status;
}

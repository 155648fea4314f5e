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
 * Usage: gpt2_gpu [--model d12] [--batch 64] [--steps 10] [--zero 0] [--ckpt] [--device cuda:0]
 *                 [--tokens-per-step 524288] [--context 1024] [--vocab 50257] [--seed 1]
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
};

typedef struct {
    const preset_t *model;
    int batch, steps, zero, context, vocab;
    long tokens_per_step;
    double max_seconds; /* 0: run every step */
    bool ckpt;
    const char *device;
    const char *offload; /* offload_optimizer.device: "none" or "cpu" */
    uint64_t seed;
    const char *save_params, *compare_params; /* NULL: none */
} args_t;

static void usage(FILE *out) {
    fprintf(out, "usage: gpt2_gpu [--model d12|d24|d48|d6|d36|gpt2-tiny] [--batch B] [--steps N] [--zero 0-3] [--ckpt]\n"
                 "                [--device cuda:0|cpu] [--tokens-per-step N] [--context T] [--vocab V] [--seed S]\n"
                 "                [--max-seconds S]  (stop after the step that passes S s, once 2 steps ran)\n"
                 "                [--offload none|cpu]  (the optimizer offloaded to the host; needs --zero 1-3)\n"
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
        if (!strcmp(k, "--ckpt")) {
            a->ckpt = true;
            continue;
        }
        static const char *const with_value[] = {"--model", "--device", "--batch", "--steps", "--zero",
                                                 "--context", "--vocab", "--seed", "--tokens-per-step",
                                                 "--max-seconds", "--offload", "--save-params",
                                                 "--compare-params"};
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
    int32_t *x, *y;
    double *times; /* seconds per optimizer step */
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

/* Context, model, engine (the DeepSpeed config of the anchor setting), the memory plan
 * reserved as `dsc train` does, and the buffers. */
static dsc_status_t bench_setup(bench_t *b) {
    const args_t *a = &b->a;
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
    if ((rc = dsc_gpt_new(b->ctx, &b->gc, &b->gpt)) != DSC_OK)
        return fail(b, rc, "building the model", dsc_ctx_errmsg(b->ctx));
    if (a->ckpt) dsc_gpt_set_checkpointing(b->gpt, 1);
    char json[1024];
    snprintf(json, sizeof json,
             "{\"train_batch_size\": %d, \"train_micro_batch_size_per_gpu\": %d, \"gradient_accumulation_steps\": %d,\n"
             " \"steps_per_print\": 1000000000, \"bf16\": {\"enabled\": true}, \"gradient_clipping\": 1.0,\n"
             " \"optimizer\": {\"type\": \"AdamW\", \"params\": {\"lr\": 0.0006, \"betas\": [0.9, 0.95], \"eps\": 1e-8,"
             " \"weight_decay\": 0.1}},\n"
             " \"zero_optimization\": {\"stage\": %d%s}}\n",
             a->batch * b->ga * b->world.size, a->batch, b->ga, a->zero,
             strcmp(a->offload, "cpu") ? "" : ", \"offload_optimizer\": {\"device\": \"cpu\", \"pin_memory\": true}");
    dsc_engine_options_t eo = DSC_ENGINE_OPTIONS_INIT;
    eo.config_json = json;
    eo.comm = b->world.comm;
    dsc_initialize_result_t init = {0};
    if ((rc = dsc_initialize(b->gpt->model, &eo, &init, b->err, sizeof b->err)) != DSC_OK)
        return fail(b, rc, "dsc_initialize", b->err);
    b->engine = init.engine;

    /* As `dsc train` does: hold the plan's activations in one piece before the first step. */
    dsc_estimate_options_t eopt;
    char perr[512];
    dsc_estimate_options_default(&b->gc, &eopt);
    b->plan_ok = dsc_estimate_options_from_config(dsc_engine_config(b->engine), &eopt, perr, sizeof perr) == DSC_OK;
    eopt.micro_batch = a->batch;
    eopt.context = a->context;
    eopt.checkpoint_every = a->ckpt ? 1 : 0;
    eopt.vocab_pad = dsc_ctx_gemm_pad_elems(b->ctx);
    eopt.device_is_host = !strcmp(dsc_ctx_device_name(b->ctx), "cpu");
    b->plan_ok = b->plan_ok && dsc_estimate_memory(&eopt, a->zero, a->ckpt, &b->plan, perr, sizeof perr) == DSC_OK;
    if (b->plan_ok && (rc = dsc_ctx_reserve_step_memory(b->ctx, (size_t)b->plan.step_arena)) != DSC_OK)
        return fail(b, rc, "reserving the planned activation memory", dsc_ctx_errmsg(b->ctx));

    b->sync_dev = dsc_ctx_alloc(b->ctx, DSC_MEM_OTHER, 64);
    if (!b->sync_dev) return fail(b, DSC_ERR_NOMEM, "allocating 64 bytes on the device", dsc_ctx_errmsg(b->ctx));
    b->x = malloc(sizeof *b->x * (size_t)b->micro_tokens);
    b->y = malloc(sizeof *b->y * (size_t)b->micro_tokens);
    b->times = malloc(sizeof *b->times * (size_t)a->steps);
    if (!b->x || !b->y || !b->times) return fail(b, DSC_ERR_NOMEM, "allocating host token buffers", "malloc failed");
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
            if ((rc = dsc_backward(b->engine, l)) != DSC_OK || (rc = dsc_step(b->engine)) != DSC_OK)
                return fail(b, rc, "backward / step", dsc_engine_errmsg(b->engine));
        }
        /* the host's own time for the step: everything was queued; the read below waits */
        const double host_s = now_s() - t0;
        unsigned char probe[64];
        if ((rc = dsc_ctx_to_host(b->ctx, probe, b->sync_dev, sizeof probe)) != DSC_OK)
            return fail(b, rc, "synchronising with the device", dsc_ctx_errmsg(b->ctx));
        b->times[s] = now_s() - t0;
        b->loss = dsc_engine_last_loss(b->engine); /* outside the timer */
        if (b->world.rank == 0)
            fprintf(stderr, "gpt2_gpu: step %d/%d: %.1f ms (host queued it in %.1f ms), loss %.4f, grad norm %.3f\n", s + 1,
                a->steps, b->times[s] * 1e3, host_s * 1e3, b->loss, dsc_engine_grad_norm(b->engine));
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
    double *t = b->times + skip;
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    const double med = n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
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
    printf("RESULT system=dsc model=%s batch=%d ga=%d ms_median=%.3f tok_s=%.1f peak_mib=%.0f loss=%.4f offload=%s%s\n",
           a->model->name, a->batch, b->ga, med * 1e3, tok_s, peak / 1048576.0, b->loss, a->offload, b->world_result);
    return true;
}

static void bench_free(bench_t *b) {
    if (b->sync_dev) dsc_ctx_release(b->ctx, DSC_MEM_OTHER, b->sync_dev, 64);
    free(b->x);
    free(b->y);
    free(b->times);
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
    const args_t *a = &b.a;
    world_place(&b.world, a->device);
    b.micro_tokens = (long)a->batch * a->context;
    if (a->tokens_per_step % (b.micro_tokens * b.world.size) != 0) {
        fprintf(stderr, "gpt2_gpu: --tokens-per-step %ld is not a multiple of B x T x ranks = %d x %d x %d = %ld\n",
                a->tokens_per_step, a->batch, a->context, b.world.size, b.micro_tokens * b.world.size);
        return 2;
    }
    b.ga = (int)(a->tokens_per_step / (b.micro_tokens * b.world.size));
    b.gc = (dsc_gpt_config_t){a->model->layers, a->model->heads, a->model->embd, a->vocab, a->context, 0.0, 1e-5};

    int status = 1;
    if (bench_setup(&b) == DSC_OK) {
        if (b.world.rank == 0)
            fprintf(stderr, "gpt2_gpu: %s on %s (%s): %d layers, %d heads, width %d, vocab %d, T %d, %lld parameters; "
                "B %d x GA %d = %ld tokens/step; bf16, ZeRO %d%s%s; memory plan %.1f MiB\n",
                a->model->name, b.device_label, dsc_ctx_device_name(b.ctx), b.gc.n_layer, b.gc.n_head, b.gc.n_embd,
                b.gc.vocab_size, a->context, (long long)dsc_model_numel(b.gpt->model), a->batch, b.ga,
                a->tokens_per_step, a->zero, a->ckpt ? ", activation checkpointing" : "",
                strcmp(a->offload, "cpu") ? "" : ", optimizer offloaded to the host", b.plan_ok ? b.plan.total / 1048576.0 : 0.0);
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

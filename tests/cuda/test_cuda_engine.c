/* The whole engine on the CUDA device against the same engine on the CPU (the oracle): the
 * small GPT (2 layers, 4 heads, 64 wide, dropout 0.1) trained 20 optimizer steps with AdamW
 * and gradient clipping, at ZeRO stages 0-3 (world size 1), with and without activation
 * checkpointing, in fp32, bf16 and fp16 (dynamic loss scaling); per-step losses compared
 * (fp32: 1e-5 relative; bf16 and fp16: the tolerances below, which docs/cuda.md states).
 * (On the emulator: 4 steps, see STEPS.) Also: two runs on the device with the same seed give bitwise-identical parameters and
 * optimizer state; a checkpoint saved on the device resumes on the CPU and one saved on the
 * CPU resumes on the device, each continuing the uninterrupted run within the tolerance.
 * ZeRO-Offload (offload_optimizer.device "cpu", docs/offload.md): the optimizer on the host
 * against the same run without offload on the device, losses within the tolerance, no
 * optimizer bytes on the device, the host copies pinned (on a GPU: a checkpoint of an
 * offloaded run resumed offloaded), stepped in parts whose updates go up asynchronously
 * (double-buffered; at stage 2 with the gradient streamed down part by part too); "nvme"
 * likewise, the host optimizer's states in a swap file.
 *
 * Built twice: against libdsc with the real kernels (label cuda; exits 77 without a GPU) and
 * against dsc_emu, the library with the CUDA device on the CPU emulator of the kernels
 * (label cuda-emu), which runs everywhere and proves the device's wiring. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dsc/dsc.h"
#include "engine/engine_internal.h"
#include "ops/cuda/cuda_kernels.h"

enum { MAX_STEPS = 20, B_MAX = 4, T = 32 };
/* 20 optimizer steps of 2 micro-batches of 4 sequences on a GPU; on the emulator (every
 * thread of every block a coroutine on one core, thousands of times slower) 4 steps of 1
 * micro-batch of 2 sequences, enough to reach every path once. */
#ifdef DSC_CUDA_EMU
static const int STEPS = 4, B = 2, GAS = 1;
#else
static const int STEPS = 20, B = 4, GAS = 2;
#endif

static int failures, checks;
#define EXPECT(cond, ...)                                   \
    do {                                                    \
        checks++;                                           \
        if (!(cond)) {                                      \
            failures++;                                     \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);     \
            printf(__VA_ARGS__);                            \
            printf("\n");                                   \
        }                                                   \
    } while (0)

typedef struct {
    const char *precision; /* fp32, bf16, fp16 */
    int stage;
    int ckpt;
    int offload; /* zero_optimization.offload_optimizer.device 1: "cpu" (the optimizer on the host); 2: "nvme"
                  * (the same, its states in a swap file under /tmp); 3: offload_param "cpu" (stage 3: the
                  * parameter partition in pinned host memory); 4: both "cpu"; 5: offload_param "nvme" (the
                  * partition in a swap file under /tmp, read through pinned buffers); 6: offload_param and
                  * offload_optimizer "nvme" */
} setup_t;

typedef struct {
    dsc_ctx_t *ctx;
    dsc_gpt_t *gpt;
    dsc_engine_t *engine;
} run_t;

static const char *precision_json(const char *p) {
    if (!strcmp(p, "bf16")) return "\"bf16\": {\"enabled\": true},";
    if (!strcmp(p, "fp16")) return "\"fp16\": {\"enabled\": true, \"initial_scale_power\": 12},";
    return "";
}

/* Loss tolerance (relative, per step) of a device run against the CPU run. */
static double tolerance(const char *p) {
    if (!strcmp(p, "fp32")) return 1e-5;
    /* 16-bit activations: a different summation order can flip a bf16/f16 value by one unit
     * (2^-8 / 2^-11 relative). Measured on an H100 (2026-12-07): worst 1.5e-4 (bf16) and
     * 8.9e-5 (fp16) over 20 steps; the bounds keep a factor of about ten. */
    return !strcmp(p, "bf16") ? 2e-3 : 1e-3;
}

static int run_new(run_t *r, const char *device, const setup_t *s, char *err, size_t err_len) {
    memset(r, 0, sizeof *r);
    dsc_ctx_options_t co = DSC_CTX_OPTIONS_INIT;
    co.seed = 7;
    co.device = device;
    co.log_level = DSC_LOG_WARN;
    if (dsc_ctx_new(&co, &r->ctx) != DSC_OK) {
        snprintf(err, err_len, "context on %s failed", device);
        return 0;
    }
    dsc_gpt_config_t cfg = DSC_GPT_CONFIG_TINY;
    cfg.dropout = 0.1;
    if (dsc_gpt_new(r->ctx, &cfg, &r->gpt) != DSC_OK) {
        snprintf(err, err_len, "gpt on %s: %s", device, dsc_ctx_errmsg(r->ctx));
        return 0;
    }
    if (s->ckpt) dsc_gpt_set_checkpointing(r->gpt, 1);
    /* the optimizer offload steps in parts of sub_group_size, each part's update going up
     * (from_host_async) while the next is stepped: stage 1 one part (106k parameters), stage 2
     * six (the gradient streamed too), stage 3 four (the gradient mirrored during backward) */
    char offload_cpu[160];
    snprintf(offload_cpu, sizeof offload_cpu, "%s\"offload_optimizer\": {\"device\": \"cpu\", \"pin_memory\": true}",
             s->stage == 2 ? ", \"sub_group_size\": 20000, " : s->stage == 3 ? ", \"sub_group_size\": 30000, " : ", ");
    char json[1024];
    snprintf(json, sizeof json,
             "{%s \"train_micro_batch_size_per_gpu\": %d, \"gradient_accumulation_steps\": %d,"
             " \"gradient_clipping\": 1.0, \"zero_optimization\": {\"stage\": %d%s},"
             " \"optimizer\": {\"type\": \"AdamW\", \"params\": {\"lr\": 0.003, \"weight_decay\": 0.01}}}",
             precision_json(s->precision), B, GAS, s->stage,
             s->offload == 1   ? offload_cpu
             : s->offload == 2 ? ", \"sub_group_size\": 20000, \"offload_optimizer\": {\"device\": \"nvme\", "
                                 "\"nvme_path\": \"/tmp\", \"buffer_count\": 2, \"pipeline_read\": true}"
             : s->offload == 3 ? ", \"offload_param\": {\"device\": \"cpu\"}"
             : s->offload == 4 ? ", \"offload_param\": {\"device\": \"cpu\"}, \"offload_optimizer\": {\"device\": \"cpu\"}"
             : s->offload == 5 ? ", \"offload_param\": {\"device\": \"nvme\", \"nvme_path\": \"/tmp\", \"buffer_count\": 3, "
                                 "\"buffer_size\": 3000}"
             : s->offload == 6 ? ", \"sub_group_size\": 20000, \"offload_param\": {\"device\": \"nvme\", \"nvme_path\": "
                                 "\"/tmp\", \"buffer_count\": 3}, \"offload_optimizer\": {\"device\": \"nvme\", "
                                 "\"nvme_path\": \"/tmp\", \"buffer_count\": 2, \"pipeline_read\": true}"
                               : "");
    dsc_engine_options_t o = DSC_ENGINE_OPTIONS_INIT;
    o.config_json = json;
    dsc_initialize_result_t res;
    if (dsc_initialize(r->gpt->model, &o, &res, err, err_len) != DSC_OK) return 0;
    r->engine = res.engine;
    return 1;
}

static void run_free(run_t *r) {
    dsc_engine_free(r->engine);
    dsc_gpt_free(r->gpt);
    dsc_ctx_free(r->ctx);
}

/* A noisy Markov chain (next = 7 prev + 3 mod 65 three times in four): batches that teach. */
static void make_batch(int micro, int32_t *x, int32_t *y) {
    uint64_t st = 0x9E3779B97F4A7C15ull * (uint64_t)(micro + 1);
    int32_t prev = (int32_t)(micro % 65);
    for (int i = 0; i < B * T + 1; i++) {
        st = st * 6364136223846793005ull + 1442695040888963407ull;
        uint32_t rnd = (uint32_t)(st >> 33);
        int32_t v = (rnd % 4 != 0) ? (7 * prev + 3) % 65 : (int32_t)((rnd >> 8) % 65);
        if (i < B * T) x[i] = v;
        if (i > 0) y[i - 1] = v;
        prev = v;
    }
}

/* Optimizer steps [from, to): losses[k] = mean loss of step k's micro-batches. */
static int train(run_t *r, int from, int to, double *losses) {
    int32_t x[B_MAX * T], y[B_MAX * T];
    for (int s = from; s < to; s++) {
        double sum = 0;
        for (int m = 0; m < GAS; m++) {
            make_batch(s * GAS + m, x, y);
            dsc_tensor_t *loss = NULL;
            if (dsc_gpt_forward(r->ctx, r->gpt, x, y, B, T, NULL, &loss) != DSC_OK) return 0;
            sum += dsc_tensor_item(loss);
            if (dsc_backward(r->engine, loss) != DSC_OK || dsc_step(r->engine) != DSC_OK) return 0;
        }
        losses[s] = sum / GAS;
    }
    return 1;
}

/* The engine's parameters, fp32 master weights and optimizer moments, copied to the host. */
static unsigned char *state_bytes(run_t *r, size_t *n_out) {
    dsc_engine_t *e = r->engine;
    size_t pb = e->params ? (size_t)e->numel * dsc_dtype_size(e->model_dtype) : 0; /* none at stage 3 */
    size_t mb = e->master ? (size_t)e->n_local * 4 : 0, ob = 2 * (size_t)e->n_local * 4;
    unsigned char *h = malloc(pb + mb + ob + 1);
    if (!h) return NULL;
    int ok = !pb || dsc_ctx_to_host(r->ctx, h, e->params, pb) == DSC_OK;
    if (mb) ok = ok && dsc_ctx_to_host(r->ctx, h + pb, e->master, mb) == DSC_OK;
    ok = ok && dsc_ctx_to_host(r->ctx, h + pb + mb, dsc_optim_state_data(e->optimizer, 0), ob / 2) == DSC_OK;
    ok = ok && dsc_ctx_to_host(r->ctx, h + pb + mb + ob / 2, dsc_optim_state_data(e->optimizer, 1), ob / 2) == DSC_OK;
    if (!ok) {
        free(h);
        return NULL;
    }
    *n_out = pb + mb + ob;
    return h;
}

static double rel(double a, double b) { return fabs(a - b) / fmax(fabs(b), 1e-12); }

/* The memory plan `dsc train` reserves (dsc_estimate_memory with the device's vocabulary
 * padding) against the step arena's measured peak: a plan short of the need made the arena
 * grow past it (on an H100 the padded LM head's few extra bytes doubled the step memory). */
static void plan_matches(run_t *r, const char *device, const setup_t *s) {
    dsc_estimate_options_t o;
    dsc_gpt_config_t cfg = DSC_GPT_CONFIG_TINY;
    cfg.dropout = 0.1;
    char err[256];
    dsc_estimate_options_default(&cfg, &o);
    dsc_memory_estimate_t e;
    int ok = dsc_estimate_options_from_config(dsc_engine_config(r->engine), &o, err, sizeof err) == DSC_OK;
    o.micro_batch = B;
    o.context = T;
    o.checkpoint_every = s->ckpt ? 1 : 0;
    o.vocab_pad = dsc_ctx_gemm_pad_elems(r->ctx);
    ok = ok && dsc_estimate_memory(&o, s->stage, s->ckpt != 0, &e, err, sizeof err) == DSC_OK;
    EXPECT(ok, "%s: estimate failed: %s", device, err);
    if (!ok) return;
    const double measured = (double)dsc_ctx_mem_stats(r->ctx, DSC_MEM_ACTIVATIONS).peak_bytes;
    const double off = ((double)e.activations - measured) / measured;
    printf("%-5s stage %d ckpt %d on %s: activations planned %lld B (vocabulary padded to %d), measured peak %.0f B "
           "(%+.2f%%)\n",
           s->precision, s->stage, s->ckpt, device, (long long)e.activations, o.vocab_pad, measured, 100 * off);
    EXPECT(fabs(off) <= 0.05, "%s: planned activations %lld B vs measured %.0f B (%+.2f%%)", device,
           (long long)e.activations, measured, 100 * off);
}

/* 20 steps on the CPU and on the device; losses within the precision's tolerance. */
static void compare_devices(const char *device, const setup_t *s) {
    run_t c, g;
    char err[1024];
    double lc[MAX_STEPS], lg[MAX_STEPS];
    int ok = run_new(&c, "cpu", s, err, sizeof err);
    EXPECT(ok, "%s stage %d ckpt %d on cpu: %s", s->precision, s->stage, s->ckpt, err);
    int okg = run_new(&g, device, s, err, sizeof err);
    EXPECT(okg, "%s stage %d ckpt %d on %s: %s", s->precision, s->stage, s->ckpt, device, err);
    if (ok && okg) {
        int tc = train(&c, 0, STEPS, lc), tg = train(&g, 0, STEPS, lg);
        EXPECT(tc && tg, "training failed: cpu %s, %s %s", tc ? "ok" : dsc_ctx_errmsg(c.ctx), device,
               tg ? "ok" : dsc_ctx_errmsg(g.ctx));
        if (tc && tg) {
            double worst = 0;
            int at = 0;
            for (int k = 0; k < STEPS; k++)
                if (rel(lg[k], lc[k]) > worst) worst = rel(lg[k], lc[k]), at = k;
            const double tol = tolerance(s->precision);
            printf("%-5s stage %d ckpt %d: loss %.6f -> %.6f (cpu %.6f -> %.6f), worst rel diff %.2e at step %d "
                   "(tolerance %.0e)\n",
                   s->precision, s->stage, s->ckpt, lg[0], lg[STEPS - 1], lc[0], lc[STEPS - 1], worst, at + 1, tol);
            EXPECT(worst <= tol, "%s stage %d ckpt %d: step %d loss %.9g on %s vs %.9g on cpu (rel %.2e > %.0e)",
                   s->precision, s->stage, s->ckpt, at + 1, lg[at], device, lc[at], worst, tol);
            EXPECT(lg[STEPS - 1] < lg[0] - (STEPS >= 20 ? 0.3 : 0.02), "%s: the loss does not fall (%.4f -> %.4f)",
                   s->precision, lg[0], lg[STEPS - 1]);
            plan_matches(&c, "cpu", s);
            plan_matches(&g, device, s);
        }
    }
    if (okg) run_free(&g);
    if (ok) run_free(&c);
}

/* Same seed, same device: the same bits after 20 steps. */
static void repeatable(const char *device, const setup_t *s) {
    run_t a, b;
    char err[1024];
    double la[MAX_STEPS], lb[MAX_STEPS];
    if (!run_new(&a, device, s, err, sizeof err) || !run_new(&b, device, s, err, sizeof err)) {
        EXPECT(0, "repeatability set-up: %s", err);
        return;
    }
    EXPECT(train(&a, 0, STEPS, la) && train(&b, 0, STEPS, lb), "repeatability training failed");
    size_t na = 0, nb = 0;
    unsigned char *ha = state_bytes(&a, &na), *hb = state_bytes(&b, &nb);
    EXPECT(ha && hb && na == nb && memcmp(ha, hb, na) == 0,
           "%s stage %d: two runs with one seed differ in parameters or optimizer state", s->precision, s->stage);
    EXPECT(memcmp(la, lb, (size_t)STEPS * sizeof la[0]) == 0, "%s stage %d: two runs with one seed differ in losses", s->precision,
           s->stage);
    printf("%-5s stage %d: two runs on %s, %zu bytes of parameters and optimizer state: %s\n", s->precision, s->stage,
           device, na, ha && hb && memcmp(ha, hb, na) == 0 ? "bitwise identical" : "DIFFERENT");
    free(ha), free(hb);
    run_free(&a), run_free(&b);
}

/* Steps 0-9 on `first`, saved, steps 10-19 on `second` after loading; vs 20 steps on `first`. */
static void resume_across(const char *first, const char *second, const setup_t *s) {
    char dir[] = "/tmp/dsc_cuda_resumeXXXXXX", err[1024];
    if (!mkdtemp(dir)) {
        EXPECT(0, "mkdtemp failed");
        return;
    }
    run_t ref, a, b;
    double lr[MAX_STEPS], l[MAX_STEPS];
    int ok = run_new(&ref, first, s, err, sizeof err) && train(&ref, 0, STEPS, lr);
    EXPECT(ok, "resume reference on %s: %s", first, err);
    if (ok) run_free(&ref);
    ok = ok && run_new(&a, first, s, err, sizeof err) && train(&a, 0, STEPS / 2, l);
    EXPECT(ok, "resume first half on %s: %s", first, err);
    if (ok) {
        EXPECT(dsc_save_checkpoint(a.engine, dir, "half", NULL, true) == DSC_OK, "save on %s: %s", first,
               dsc_ctx_errmsg(a.ctx));
        run_free(&a);
    }
    ok = ok && run_new(&b, second, s, err, sizeof err);
    if (ok) {
        EXPECT(dsc_load_checkpoint(b.engine, dir, NULL, true, true, false, NULL) == DSC_OK, "load on %s: %s", second,
               dsc_ctx_errmsg(b.ctx));
        EXPECT(train(&b, STEPS / 2, STEPS, l), "second half on %s failed", second);
        double worst = 0;
        for (int k = STEPS / 2; k < STEPS; k++) worst = fmax(worst, rel(l[k], lr[k]));
        const double tol = tolerance(s->precision);
        printf("%-5s stage %d: saved on %s after %d steps, resumed on %s: worst rel loss diff %.2e over steps "
               "%d-%d (tolerance %.0e)\n",
               s->precision, s->stage, first, STEPS / 2, second, worst, STEPS / 2 + 1, STEPS, tol);
        EXPECT(worst <= tol, "resume %s -> %s: %.2e > %.0e", first, second, worst, tol);
        run_free(&b);
    }
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) printf("note: could not remove %s\n", dir);
}

/* The optimizer offloaded to the host from the device: losses within the precision's
 * tolerance of the run without offload on the device (the host's AdamW rounds as the CPU
 * engine does), the master and states off the device, the host copies pinned; then the
 * offloaded run's checkpoint at the half resumes without offload within the tolerance. */
static void compare_offload(const char *device, const setup_t *s, int kind) {
    run_t g, o;
    char err[1024];
    double lg[MAX_STEPS], lo[MAX_STEPS];
    setup_t so = *s;
    so.offload = kind;
    int okg = run_new(&g, device, s, err, sizeof err);
    EXPECT(okg, "%s stage %d on %s: %s", s->precision, s->stage, device, err);
    int oko = okg && run_new(&o, device, &so, err, sizeof err);
    EXPECT(!okg || oko, "%s stage %d offloaded on %s: %s", s->precision, s->stage, device, err);
    if (okg && oko) {
        int tg = train(&g, 0, STEPS, lg), to = train(&o, 0, STEPS, lo);
        EXPECT(tg && to, "training failed: %s, offloaded %s", tg ? "ok" : dsc_ctx_errmsg(g.ctx),
               to ? "ok" : dsc_ctx_errmsg(o.ctx));
        if (tg && to) {
            double worst = 0;
            int at = 0;
            for (int k = 0; k < STEPS; k++)
                if (rel(lo[k], lg[k]) > worst) worst = rel(lo[k], lg[k]), at = k;
            const double tol = tolerance(s->precision);
            size_t pinned = 0, host = dsc_engine_offload_host_bytes(o.engine, &pinned);
            const size_t dev_optim = dsc_ctx_mem_stats(o.ctx, DSC_MEM_OPTIM).live_bytes;
            printf("%-5s stage %d offload %s on %s: loss %.6f -> %.6f (not offloaded %.6f -> %.6f), worst rel diff "
                   "%.2e at step %d (tolerance %.0e); device optimizer bytes %zu (not offloaded %zu), host %zu, "
                   "pinned %zu\n",
                   s->precision, s->stage, kind == 2 ? "nvme" : kind == 3 ? "param" : kind == 4 ? "param+cpu"
                                           : kind == 5 ? "param-nvme" : kind == 6 ? "param-nvme+nvme" : "cpu",
                   device, lo[0], lo[STEPS - 1], lg[0],
                   lg[STEPS - 1], worst, at + 1, tol,
                   dev_optim, dsc_ctx_mem_stats(g.ctx, DSC_MEM_OPTIM).live_bytes, host, pinned);
            EXPECT(worst <= tol, "%s stage %d: step %d loss %.9g offloaded vs %.9g (rel %.2e > %.0e)", s->precision,
                   s->stage, at + 1, lo[at], lg[at], worst, tol);
            if (kind <= 2)
                EXPECT(dev_optim == 0 && host > 0 && pinned > 0 && (pinned < host || kind == 2),
                       "%s stage %d: device optimizer %zu, host %zu, pinned %zu", s->precision, s->stage, dev_optim,
                       host, pinned);
            /* offload_param: the partition left the device's parameters for pinned host memory
             * (kind 3: all the host bytes; kind 4: with master and states, the optimizer off the device)
             * or for a swap file (kind 5: the host bytes are its pinned buffers; kind 6: with the
             * optimizer's) */
            const size_t par_o = dsc_ctx_mem_stats(o.ctx, DSC_MEM_PARAMS).live_bytes,
                         par_g = dsc_ctx_mem_stats(g.ctx, DSC_MEM_PARAMS).live_bytes;
            if (kind >= 3) {
                printf("      offload_param: device parameter bytes %zu (not offloaded %zu)\n", par_o, par_g);
                EXPECT(par_o < par_g && host > 0 && pinned > 0 &&
                           (kind == 3 || kind == 5 ? pinned == host : dev_optim == 0),
                       "%s stage %d offload_param: device params %zu (not offloaded %zu), device optimizer %zu, "
                       "host %zu, pinned %zu", s->precision, s->stage, par_o, par_g, dev_optim, host, pinned);
            }
        }
    }
    if (oko) run_free(&o);
    if (okg) run_free(&g);
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0); /* progress lines as they come (the emulator is slow) */
    if (dsc_cuda_device_count() <= 0) {
        printf("test_cuda_engine: SKIPPED: no CUDA device visible\n");
        return 77;
    }
    const char *dev = "cuda:0";
    {
        /* "cuda" names the GPU of this rank on its node: local rank 5 of the launcher -> cuda:(5 mod GPUs) */
        setenv("OMPI_COMM_WORLD_LOCAL_RANK", "5", 1);
        dsc_ctx_options_t co = DSC_CTX_OPTIONS_INIT;
        co.device = "cuda";
        co.log_level = DSC_LOG_WARN;
        dsc_ctx_t *c = NULL;
        char want[32];
        snprintf(want, sizeof want, "cuda:%d", 5 % dsc_gpu_count());
        EXPECT(dsc_ctx_new(&co, &c) == DSC_OK && !strcmp(dsc_ctx_device_name(c), want),
               "device \"cuda\" at local rank 5 of %d GPU(s): %s, expected %s", dsc_gpu_count(),
               c ? dsc_ctx_device_name(c) : "(no context)", want);
        dsc_ctx_free(c);
        unsetenv("OMPI_COMM_WORLD_LOCAL_RANK");
    }
    dsc_cuda_device_info_t info;
    if (dsc_cuda_device_info(0, &info) == 0) printf("device cuda:0: %s\n", info.name);
#ifndef DSC_CUDA_EMU
    /* On a GPU: every stage with and without activation checkpointing in fp32; bf16 and fp16
     * at every stage (checkpointing at stage 3). */
    for (int stage = 0; stage <= 3; stage++)
        for (int ckpt = 0; ckpt <= 1; ckpt++) compare_devices(dev, &(setup_t){"fp32", stage, ckpt, 0});
    for (int p = 0; p < 2; p++)
        for (int stage = 0; stage <= 3; stage++)
            compare_devices(dev, &(setup_t){p == 0 ? "bf16" : "fp16", stage, stage == 3, 0});
    repeatable(dev, &(setup_t){"fp32", 0, 0, 0});
    repeatable(dev, &(setup_t){"bf16", 3, 1, 0});
    resume_across(dev, "cpu", &(setup_t){"fp32", 2, 0, 0});
    resume_across("cpu", dev, &(setup_t){"fp32", 3, 0, 0});
    resume_across(dev, "cpu", &(setup_t){"bf16", 0, 0, 0});
    for (int p = 0; p < 3; p++)
        for (int stage = 1; stage <= 3; stage++)
            compare_offload(dev, &(setup_t){p == 0 ? "fp32" : p == 1 ? "bf16" : "fp16", stage, 0, 0}, 1);
    compare_offload(dev, &(setup_t){"bf16", 2, 0, 0}, 2); /* ZeRO-Infinity: the states on NVMe */
    compare_offload(dev, &(setup_t){"fp32", 3, 0, 0}, 2);
    resume_across(dev, dev, &(setup_t){"bf16", 2, 0, 1}); /* saved offloaded, resumed offloaded */
    for (int p = 0; p < 3; p++) /* offload_param "cpu" (stage 3), alone and with the optimizer offload */
        for (int kind = 3; kind <= 4; kind++)
            compare_offload(dev, &(setup_t){p == 0 ? "fp32" : p == 1 ? "bf16" : "fp16", 3, 0, 0}, kind);
    resume_across(dev, dev, &(setup_t){"bf16", 3, 0, 4}); /* saved with both offloads, resumed with both */
    for (int p = 0; p < 2; p++) /* offload_param "nvme" (stage 3), alone and with the optimizer's state on NVMe */
        for (int kind = 5; kind <= 6; kind++) compare_offload(dev, &(setup_t){p == 0 ? "fp32" : "bf16", 3, 0, 0}, kind);
    resume_across(dev, dev, &(setup_t){"bf16", 3, 0, 6}); /* saved with both on NVMe, resumed with both */
#else
    /* On the emulator, the set that reaches every path of the device's table once: each
     * ZeRO stage's data movement, checkpointing, both 16-bit formats and the loss scaler, the
     * repeat and both directions of a cross-device resume. */
    /* DSC_EMU_ENGINE_SMALL (set for the sanitizer build, where the emulator runs about five
     * times slower): three set-ups that still reach every entry of the device's table. */
    const bool small = getenv("DSC_EMU_ENGINE_SMALL") != NULL;
    if (!small) compare_devices(dev, &(setup_t){"fp32", 0, 0, 0});
    compare_devices(dev, &(setup_t){"fp32", 3, 1, 0});
    if (!small) compare_devices(dev, &(setup_t){"bf16", 2, 0, 0});
    compare_devices(dev, &(setup_t){"fp16", 1, 1, 0});
    if (!small) repeatable(dev, &(setup_t){"bf16", 3, 0, 0});
    resume_across(dev, "cpu", &(setup_t){"bf16", 2, 0, 0});
    if (!small) resume_across("cpu", dev, &(setup_t){"fp32", 0, 0, 0});
    compare_offload(dev, &(setup_t){"bf16", 2, 0, 0}, 1);
    if (!small) compare_offload(dev, &(setup_t){"fp32", 3, 0, 0}, 2);
    compare_offload(dev, &(setup_t){"bf16", 3, 0, 0}, 3); /* offload_param: pinned host partition, from_host gathers */
    if (!small) compare_offload(dev, &(setup_t){"fp32", 3, 0, 0}, 4);
    compare_offload(dev, &(setup_t){"bf16", 3, 0, 0}, 5); /* offload_param "nvme": pinned buffers, from_host gathers */
#endif
    printf("test_cuda_engine: %d checks, %d failed\n", checks, failures);
    return failures ? 1 : 0;
}

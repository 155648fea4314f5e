/* `dsc estimate`: per-rank memory of training a GPT with dsc, by ZeRO stage, with and
 * without activation checkpointing (dsc_estimate_memory: the engine's own ZeRO plan and an
 * exact count of the step arena), beside DeepSpeed's estimators (spec §5.9). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "dsc/dsc.h"
#include "dsc/monitor.h"

int dsc_cmd_estimate(int argc, char **argv);

static void usage(FILE *out) {
    fprintf(out,
            "usage: dsc estimate [--model tiny|d6|d12|d24|d36|d48] [--layers N --heads N --embd N --vocab N\n"
            "                    --context N] [--world-size N] [--nodes N] [--config FILE] [--micro-batch B]\n"
            "                    [--precision fp32|fp16|bf16] [--allow-unknown]\n"
            "\n"
            "Prints the bytes each rank holds when dsc trains a GPT: parameters, gradients, optimizer\n"
            "state (fp32 master and moments), fp32 gradient accumulation, communication buffers and\n"
            "the step arena's peak (activations, their gradients, tape), for ZeRO stages 0-2, with and\n"
            "without activation checkpointing. Model state comes from the partition plan the engine\n"
            "allocates with; activations from a count of every arena allocation of one forward and\n"
            "backward (tests/unit/test_estimate.c checks both against the allocator). DeepSpeed's own\n"
            "estimators (model states only) are printed beside them.\n"
            "\n"
            "options:\n"
            "  --model NAME      tiny or gpt2-tiny (2 layers, 64 wide, vocab 65, context 32), or llm.c's GPT-2 sizes:\n"
            "                    d6 (6x384), d12 (124M), d24 (350M), d36 (774M), d48 (1558M); default d12\n"
            "  --layers N --heads N --embd N --vocab N --context N   override the model's shape\n"
            "                    (--context is the sequence length T and the block size)\n"
            "  --world-size N    data-parallel ranks (default 1)\n"
            "  --nodes N         nodes the ranks are spread over, for DeepSpeed's estimator (default 1)\n"
            "  --config FILE     DeepSpeed config: precision, optimizer, reduce_bucket_size, micro batch,\n"
            "                    activation_checkpointing.number_checkpoints (default: fp32, Adam)\n"
            "  --micro-batch B   sequences per rank per micro-step (default: the config's, else 1)\n"
            "  --precision P     fp32, fp16 or bf16 (overrides the config)\n"
            "  --allow-unknown   unknown top-level config keys are warnings, as in DeepSpeed\n"
            "  -h, --help        this text\n"
            "\n"
            "examples:\n"
            "  dsc estimate --model d12 --world-size 8\n"
            "  dsc estimate --model d24 --world-size 4 --config ds_zero2.json --micro-batch 4\n");
}

typedef struct {
    const char *name;
    dsc_gpt_config_t cfg;
} preset_t;

static const preset_t presets[] = {
    {"tiny", DSC_GPT_CONFIG_TINY},
    {"gpt2-tiny", DSC_GPT_CONFIG_TINY}, /* dsc train --model's name for it */
    {"d6", {6, 6, 384, 50257, 1024, 0.0, 1e-5}},
    {"d12", DSC_GPT_CONFIG_D12},
    {"d24", {24, 16, 1024, 50257, 1024, 0.0, 1e-5}},
    {"d36", {36, 20, 1280, 50257, 1024, 0.0, 1e-5}},
    {"d48", {48, 25, 1600, 50257, 1024, 0.0, 1e-5}},
};

static bool parse_long(const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return false;
    *out = v;
    return true;
}

/* "474.75 MiB" */
static const char *human(int64_t b, char *buf, size_t n) {
    const char *unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)b;
    int u = 0;
    while (v >= 1024 && u < 4) v /= 1024, u++;
    if (u == 0) snprintf(buf, n, "%lld B", (long long)b);
    else snprintf(buf, n, "%.2f %s", v, unit[u]);
    return buf;
}

/* 124439808 -> "124,439,808" */
static const char *grouped(int64_t v, char *buf, size_t n) {
    char raw[32];
    snprintf(raw, sizeof raw, "%lld", (long long)v);
    size_t len = strlen(raw), o = 0;
    for (size_t i = 0; i < len && o + 2 < n; i++) {
        if (i && raw[i] != '-' && (len - i) % 3 == 0 && raw[i - 1] != '-') buf[o++] = ',';
        buf[o++] = raw[i];
    }
    buf[o] = '\0';
    return buf;
}

static void print_zero2(int64_t psi, int g, int nodes) {
    printf("Estimated memory needed for params, optim states and gradients for a:\n"
           "HW: Setup with %d %s, %d %s per node.\n"
           "SW: Model with %lldM total params.\n"
           "  per CPU  |  per GPU |   Options\n",
           nodes, nodes > 1 ? "nodes" : "node", g, g > 1 ? "GPUs" : "GPU", (long long)(psi / 1000000));
    for (int off = 1; off >= 0; off--) {
        int64_t cpu, gpu;
        dsc_deepspeed_zero2_estimate(psi, g, nodes, off, 1.5, &cpu, &gpu);
        printf(" %7.2fGB | %6.2fGB | offload_optimizer=%s\n", (double)cpu / 1073741824.0, (double)gpu / 1073741824.0,
               off ? "cpu " : "none");
    }
}

static void print_zero3(int64_t psi, int64_t largest, int g, int nodes) {
    printf("Estimated memory needed for params, optim states and gradients for a:\n"
           "HW: Setup with %d %s, %d %s per node.\n"
           "SW: Model with %lldM total params, %lldM largest layer params.\n"
           "  per CPU  |  per GPU |   Options\n",
           nodes, nodes > 1 ? "nodes" : "node", g, g > 1 ? "GPUs" : "GPU", (long long)(psi / 1000000),
           (long long)(largest / 1000000));
    static const bool rows[6][3] = {{1, 1, 1}, {1, 1, 0}, {1, 0, 1}, {1, 0, 0}, {0, 0, 1}, {0, 0, 0}};
    for (int r = 0; r < 6; r++) {
        int64_t cpu, gpu;
        dsc_deepspeed_zero3_estimate(psi, largest, g, nodes, rows[r][0], rows[r][1], rows[r][2], 1.5, &cpu, &gpu, NULL);
        printf(" %7.2fGB | %6.2fGB | offload_param=%s, offload_optimizer=%s, zero_init=%d\n",
               (double)cpu / 1073741824.0, (double)gpu / 1073741824.0, rows[r][1] ? "cpu " : "none",
               rows[r][0] ? "cpu " : "none", rows[r][2] ? 1 : 0);
    }
}

static void quiet(dsc_log_level_t level, const char *message, void *user) {
    (void)level, (void)message, (void)user;
}

/* Per-rank bytes for each optimizer-offload setting at stages 1-3 (no activation
 * checkpointing): the device's (on the cpu device: host memory, the swap buffers included),
 * the host memory outside it ("cpu" from a GPU: master, states, gradient and update copies),
 * the pinned part and the NVMe swap file. */
static void print_offload(const dsc_estimate_options_t *base, int config_stage) {
    char a[32];
    printf("\nOptimizer offload per rank (zero_optimization.offload_optimizer; sub_group_size %s, buffer_count %lld;\n"
           "\"device\" is the total above: on the cpu device it is host memory, swap buffers included; \"cpu\" is the\n"
           "offload from a GPU (on the cpu device it is a no-op: as none), its host bytes outside the device):\n\n",
           grouped(base->sub_group_size, a, sizeof a), (long long)base->offload_buffer_count);
    printf("%-5s %-8s %12s %12s %12s %12s %15s %15s %15s\n", "stage", "offload", "device", "host", "pinned host", "NVMe",
           "device (bytes)", "host (bytes)", "NVMe (bytes)");
    static const char *const names[] = {"none", "cpu", "nvme"};
    for (int stage = 1; stage <= 3; stage++)
        for (int d = 0; d < 3; d++) {
            dsc_estimate_options_t o = *base;
            o.offload_device = (dsc_config_offload_device_t)d;
            o.offload_param_device = DSC_CONFIG_OFFLOAD_NONE; /* the table below */
            o.device_is_host = d != DSC_CONFIG_OFFLOAD_CPU;
            dsc_memory_estimate_t e;
            char err[256], c[4][32];
            if (dsc_estimate_memory(&o, stage, false, &e, err, sizeof err) != DSC_OK) continue;
            printf("%-5d %-8s %12s %12s %12s %12s %15lld %15lld %15lld%s%s\n", stage, names[d], human(e.total, c[0], 32),
                   human(e.host_bytes, c[1], 32), human(e.pinned_host_bytes, c[2], 32), human(e.nvme_bytes, c[3], 32),
                   (long long)e.total, (long long)e.host_bytes, (long long)e.nvme_bytes,
                   d == 1 ? "   (from a GPU; a no-op on the cpu device)" : "",
                   stage == config_stage && (int)base->offload_device == d ? "   <- config" : "");
        }
}

/* Stage 3 from a GPU with zero_optimization.offload_param "none", "cpu" and "nvme", each with
 * and without the optimizer offload: the parameter partition leaves the device for (pinned)
 * host memory, or for a swap file (its buffers in host memory). */
static void print_param_offload(const dsc_estimate_options_t *base, int config_stage) {
    printf("\nParameter offload per rank at stage 3 from a GPU (zero_optimization.offload_param; \"cpu\" is a no-op on the\n"
           "cpu device, \"nvme\" moves it there too): the partition of the working copy moves from the device to host\n"
           "memory, or to a swap file under nvme_path (buffer_count %lld buffers of at most buffer_size %lld elements in\n"
           "host memory):\n\n", (long long)base->offload_param_buffer_count, (long long)base->offload_param_buffer_size);
    printf("%-13s %-17s %12s %12s %12s %15s %15s %15s %15s\n", "offload_param", "offload_optimizer", "device", "host",
           "pinned host", "device (bytes)", "params (bytes)", "host (bytes)", "NVMe (bytes)");
    static const char *const names[] = {"none", "cpu", "nvme"};
    for (int p = 0; p < 3; p++)
        for (int d = 0; d < 2; d++) {
            dsc_estimate_options_t o = *base;
            o.offload_device = d ? DSC_CONFIG_OFFLOAD_CPU : DSC_CONFIG_OFFLOAD_NONE;
            o.offload_param_device = (dsc_config_offload_device_t)p;
            o.device_is_host = false;
            dsc_memory_estimate_t e;
            char err[256], c[3][32];
            if (dsc_estimate_memory(&o, 3, false, &e, err, sizeof err) != DSC_OK) continue;
            const bool config = config_stage == 3 && (int)base->offload_param_device == p &&
                                (int)(base->offload_device == DSC_CONFIG_OFFLOAD_CPU) == d;
            printf("%-13s %-17s %12s %12s %12s %15lld %15lld %15lld %15lld%s\n", names[p], names[d],
                   human(e.total, c[0], 32), human(e.host_bytes, c[1], 32), human(e.pinned_host_bytes, c[2], 32),
                   (long long)e.total, (long long)e.state.params, (long long)e.host_bytes,
                   (long long)e.param_nvme_bytes, config ? "   <- config" : "");
        }
}

int dsc_cmd_estimate(int argc, char **argv) {
    const char *model_name = "d12", *config_path = NULL, *precision = NULL;
    long layers = 0, heads = 0, embd = 0, vocab = 0, context = 0, world = 1, nodes = 1, micro = 0;
    bool allow_unknown = false;
    for (int i = 1; i < argc; i++) {
        const char *k = argv[i];
        if (!strcmp(k, "-h") || !strcmp(k, "--help")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(k, "--allow-unknown")) {
            allow_unknown = true;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "dsc estimate: %s needs a value (dsc estimate --help)\n", k);
            return 2;
        }
        const char *v = argv[++i];
        bool ok = true;
        if (!strcmp(k, "--model")) model_name = v;
        else if (!strcmp(k, "--config")) config_path = v;
        else if (!strcmp(k, "--precision")) precision = v, ok = !strcmp(v, "fp32") || !strcmp(v, "fp16") || !strcmp(v, "bf16");
        else if (!strcmp(k, "--layers")) ok = parse_long(v, 1, 10000, &layers);
        else if (!strcmp(k, "--heads")) ok = parse_long(v, 1, 10000, &heads);
        else if (!strcmp(k, "--embd")) ok = parse_long(v, 1, 1000000, &embd);
        else if (!strcmp(k, "--vocab")) ok = parse_long(v, 1, 100000000, &vocab);
        else if (!strcmp(k, "--context")) ok = parse_long(v, 1, 10000000, &context);
        else if (!strcmp(k, "--world-size")) ok = parse_long(v, 1, 1000000, &world);
        else if (!strcmp(k, "--nodes")) ok = parse_long(v, 1, 1000000, &nodes);
        else if (!strcmp(k, "--micro-batch")) ok = parse_long(v, 1, 1000000, &micro);
        else {
            fprintf(stderr, "dsc estimate: unknown option '%s' (dsc estimate --help)\n", k);
            return 2;
        }
        if (!ok) {
            fprintf(stderr, "dsc estimate: invalid value '%s' for %s\n", v, k);
            return 2;
        }
    }
    const preset_t *preset = NULL;
    for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++)
        if (!strcmp(presets[i].name, model_name)) preset = &presets[i];
    if (!preset) {
        fprintf(stderr, "dsc estimate: unknown model '%s' (tiny, gpt2-tiny, d6, d12, d24, d36, d48)\n", model_name);
        return 2;
    }
    if (world % nodes != 0) {
        fprintf(stderr, "dsc estimate: --world-size %ld is not a multiple of --nodes %ld\n", world, nodes);
        return 2;
    }
    dsc_gpt_config_t m = preset->cfg;
    if (layers) m.n_layer = (int)layers;
    if (heads) m.n_head = (int)heads;
    if (embd) m.n_embd = (int)embd;
    if (vocab) m.vocab_size = (int)vocab;
    if (context) m.block_size = (int)context;
    char err[1024];
    if (dsc_gpt_config_validate(&m, err, sizeof err) != DSC_OK) {
        fprintf(stderr, "dsc estimate: %s\n", err);
        return 2;
    }

    dsc_estimate_options_t o;
    dsc_estimate_options_default(&m, &o);
    o.world_size = (int)world;
    const char *optim_name = "Adam (no --config)";
    int config_stage = -1;
    dsc_config_t *cfg = NULL;
    if (config_path) {
        dsc_config_parse_options_t po = DSC_CONFIG_PARSE_OPTIONS_INIT;
        po.log_fn = quiet;
        po.unknown_top_level_keys_warn = allow_unknown;
        po.unknown_section_keys_warn = allow_unknown;
        if (dsc_config_parse_file(config_path, &po, &cfg, err, sizeof err) != DSC_OK) {
            fprintf(stderr, "dsc estimate: %s\n", err);
            return 1;
        }
        if (!cfg->train_micro_batch_size_per_gpu.set && !micro &&
            dsc_config_resolve_batch(cfg, world, err, sizeof err) != DSC_OK) {
            fprintf(stderr, "dsc estimate: %s\n(give --micro-batch to estimate anyway)\n", err);
            dsc_config_free(cfg);
            return 1;
        }
        if (dsc_estimate_options_from_config(cfg, &o, err, sizeof err) != DSC_OK) {
            fprintf(stderr, "dsc estimate: %s\n", err);
            dsc_config_free(cfg);
            return 1;
        }
        if (cfg->optimizer.kind != DSC_CONFIG_OPTIM_NONE) optim_name = cfg->optimizer.type;
        config_stage = cfg->zero_optimization.stage;
    }
    if (micro) o.micro_batch = (int)micro;
    if (precision) {
        o.param_dtype = !strcmp(precision, "fp16") ? DSC_F16 : !strcmp(precision, "bf16") ? DSC_BF16 : DSC_F32;
        o.accumulate_fp32 = o.param_dtype == DSC_BF16; /* the engine's default for each */
        if (cfg && cfg->data_types.grad_accum_dtype != DSC_CONFIG_DTYPE_NONE)
            o.accumulate_fp32 = o.param_dtype != DSC_F32 && cfg->data_types.grad_accum_dtype == DSC_CONFIG_DTYPE_FP32;
    }
    dsc_config_free(cfg);

    const int64_t psi = dsc_gpt_param_count(&m), largest = dsc_gpt_largest_layer_params(&m);
    char a[64], b[64];
    printf("dsc estimate: per-rank memory of training with dsc (the engine's ZeRO plan + the step arena)\n\n");
    /* a shape given by --layers/--heads/--embd is not the preset's any more */
    const bool reshaped = (layers && layers != preset->cfg.n_layer) || (heads && heads != preset->cfg.n_head) ||
                          (embd && embd != preset->cfg.n_embd);
    printf("model   %s%s: %d layers, %d heads, %d wide, vocab %d, context %d: %s parameters\n",
           reshaped ? "custom, from " : "", preset->name, m.n_layer,
           m.n_head, m.n_embd, m.vocab_size, m.block_size, grouped(psi, a, sizeof a));
    char ckpt[96];
    if (o.checkpoint_every == 1) snprintf(ckpt, sizeof ckpt, "every block");
    else if (o.checkpoint_every > 1) snprintf(ckpt, sizeof ckpt, "every %d-th block", o.checkpoint_every);
    else snprintf(ckpt, sizeof ckpt, "%d blocks (activation_checkpointing.number_checkpoints)", o.number_checkpoints);
    printf("setup   %ld rank%s (%ld node%s x %ld), micro batch %d x %d tokens, %s%s, optimizer %s (%d fp32 state%s per "
           "parameter),\n        reduce_bucket_size %s, activation checkpointing (rows \"yes\"): %s\n\n",
           world, world > 1 ? "s" : "", nodes, nodes > 1 ? "s" : "", world / nodes, o.micro_batch, o.context,
           o.param_dtype == DSC_F16 ? "fp16" : o.param_dtype == DSC_BF16 ? "bf16" : "fp32", o.accumulate_fp32 ? " with fp32 gradient accumulation" : "", optim_name,
           o.optimizer_states, o.optimizer_states == 1 ? "" : "s", grouped(o.reduce_bucket_size, b, sizeof b), ckpt);
    printf("%-5s %-8s %12s %12s %12s %12s %12s %12s %12s %12s %15s\n", "stage", "act.ckpt", "params", "grads",
           "optimizer", "grad accum", "comm", "layer", "activations", "total", "total (bytes)");
    int64_t stage2_state = 0, stage3_state = 0;
    for (int stage = 0; stage <= 3; stage++) {
        for (int ck = 0; ck < 2; ck++) {
            dsc_memory_estimate_t e;
            if (dsc_estimate_memory(&o, stage, ck, &e, err, sizeof err) != DSC_OK) {
                fprintf(stderr, "dsc estimate: %s\n", err);
                return 1;
            }
            char c[8][32];
            printf("%-5d %-8s %12s %12s %12s %12s %12s %12s %12s %12s %15lld%s\n", stage, ck ? "yes" : "no",
                   human(e.state.params, c[0], 32), human(e.state.grads, c[1], 32), human(e.state.optim, c[2], 32),
                   human(e.state.grad_accum, c[3], 32), human(e.state.comm, c[4], 32), human(e.state.transient, c[7], 32),
                   human(e.activations, c[5], 32), human(e.total, c[6], 32), (long long)e.total,
                   stage == config_stage && !ck ? "   <- config" : "");
            const int64_t state = e.state.params + e.state.grads + e.state.optim + e.state.grad_accum + e.state.comm;
            if (stage == 2 && !ck) stage2_state = state;
            if (stage == 3 && !ck) stage3_state = state;
        }
    }
    printf("\n\"layer\": what exists only while one layer runs, at its largest (stage 2: its gradients during its\n"
           "backward; stage 3: also its gathered parameters); stage 3 keeps parameters of at most\n"
           "stage3_param_persistence_threshold elements gathered (in \"params\"). docs/zero.md derives each column.\n"
           "On a GPU (--device cuda) every column is device memory; add 32 MiB for cuBLASLt's workspace (dsc train\n"
           "prints the sum and the measured device peak) and the driver's CUDA context (about 0.5 GiB).\n");

    print_offload(&o, config_stage);
    print_param_offload(&o, config_stage);

    const int g = (int)(world / nodes), n = (int)nodes;
    printf("\nDeepSpeed's estimators (model states only: 16-bit parameters and gradients, fp32 Adam; "
           "additional_buffer_factor 1.5):\n\n");
    print_zero2(psi, g, n);
    printf("\n");
    print_zero3(psi, largest, g, n);
    int64_t ds_gpu;
    dsc_deepspeed_zero2_estimate(psi, g, n, false, 1.5, NULL, &ds_gpu);
    const char *dt = o.param_dtype == DSC_F16 ? "fp16" : o.param_dtype == DSC_BF16 ? "bf16" : "fp32";
    printf("\nZeRO-2 per GPU without offload: %lld bytes (2*%lld + int(18*%lld/%d)); dsc's stage-2 model states per "
           "rank above\n(%s, without the layer column): %lld bytes (%.2fx)\n",
           (long long)ds_gpu, (long long)psi, (long long)psi, g * n, dt, (long long)stage2_state,
           ds_gpu > 0 ? (double)stage2_state / (double)ds_gpu : 0.0);
    int64_t ds3_gpu, ds3_ll;
    dsc_deepspeed_zero3_estimate(psi, largest, g, n, false, false, false, 1.5, NULL, &ds3_gpu, &ds3_ll);
    printf("ZeRO-3 per GPU without offload: %lld bytes (4*%lld + int(18*%lld/%d)); dsc's stage-3 model states per "
           "rank above\n(%s, without the layer column): %lld bytes (%.2fx)\n",
           (long long)ds3_gpu, (long long)largest, (long long)psi, g * n, dt, (long long)stage3_state,
           ds3_gpu > 0 ? (double)stage3_state / (double)ds3_gpu : 0.0);
    return 0;
}

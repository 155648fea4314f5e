/* `dsc estimate` against the allocator (issue 9's acceptance): engines on 1, 2 and 4
 * in-process ranks (the fake communicator, one thread per rank) at ZeRO stages 0-2, in fp32,
 * bf16 and fp16, with and without activation checkpointing and dropout, train two steps of
 * two micro-batches; the measured per-rank bytes (live model state by category plus the
 * peak of the step arena) must be within 5% of dsc_estimate_memory. Today they are equal
 * to the byte; the test prints any difference. Also: the GPT's parameter count, DeepSpeed's
 * estimator figures of spec §5.9, and the config-derived options. */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "dsc/checkpoint.h"
#include "dsc/monitor.h"

typedef struct {
    int stage, world, rank;
    const char *precision; /* fp32, bf16, fp16 */
    int checkpoint_every;  /* 0: off; > 0: dsc_gpt_set_checkpointing */
    int number_checkpoints; /* > 0: the context setting (activation_checkpointing.number_checkpoints) */
    double dropout;
    dsc_comm_fake_world_t *fw;
    /* results */
    size_t live[DSC_MEM_CATEGORY_COUNT], peak[DSC_MEM_CATEGORY_COUNT];
    size_t act_peak;
    char error[512];
    int rc;
} run_t;

/* PERSIST: stage 3 keeps the biases and layer norms (<= 128 elements) gathered. */
enum { LAYERS = 3, HEADS = 4, EMBD = 32, VOCAB = 67, BLOCK = 24, T = 20, B = 2, GAS = 2, BUCKET = 3000, PERSIST = 128 };

static void quiet(dsc_log_level_t level, const char *message, void *user) {
    (void)level, (void)message, (void)user;
}

static dsc_gpt_config_t model_config(double dropout) {
    dsc_gpt_config_t m = {LAYERS, HEADS, EMBD, VOCAB, BLOCK, dropout, 1e-5};
    return m;
}

static void *rank_main(void *p) {
    run_t *r = p;
    dsc_ctx_options_t co = DSC_CTX_OPTIONS_INIT;
    co.seed = 7 + (uint64_t)r->rank;
    co.log_fn = quiet;
    dsc_ctx_t *ctx = NULL;
    dsc_comm_t *comm = NULL;
    dsc_gpt_t *gpt = NULL;
    dsc_initialize_result_t init = {0};
    r->rc = 1;
    if (dsc_ctx_new(&co, &ctx) != DSC_OK) return NULL;
    if (r->world > 1 && dsc_comm_new_fake(ctx, r->fw, r->rank, &comm) != DSC_OK) goto done;
    if (comm) dsc_comm_set_timeout(comm, 60);
    dsc_gpt_config_t gc = model_config(r->dropout);
    if (dsc_gpt_new(ctx, &gc, &gpt) != DSC_OK) goto done;
    if (r->checkpoint_every) dsc_gpt_set_checkpointing(gpt, r->checkpoint_every);
    /* number_checkpoints goes through the config, as a user sets it (the engine applies the
     * activation_checkpointing section to the context at initialisation). */
    char ac_json[96] = "";
    if (r->number_checkpoints)
        snprintf(ac_json, sizeof ac_json, " \"activation_checkpointing\": {\"number_checkpoints\": %d},",
                 r->number_checkpoints);
    const char *prec = !strcmp(r->precision, "bf16")   ? "\"bf16\": {\"enabled\": true},"
                       : !strcmp(r->precision, "fp16") ? "\"fp16\": {\"enabled\": true, \"initial_scale_power\": 8},"
                                                       : "";
    char json[768];
    snprintf(json, sizeof json,
             "{\"train_micro_batch_size_per_gpu\": %d, \"gradient_accumulation_steps\": %d, %s%s"
             " \"zero_optimization\": {\"stage\": %d, \"reduce_bucket_size\": %d,"
             " \"stage3_param_persistence_threshold\": %d, \"stage3_prefetch_bucket_size\": 0,"
             " \"stage3_max_reuse_distance\": 0},"
             " \"optimizer\": {\"type\": \"AdamW\", \"params\": {\"lr\": 0.001}}}",
             B, GAS, prec, ac_json, r->stage, BUCKET, PERSIST);
    dsc_engine_options_t o = DSC_ENGINE_OPTIONS_INIT;
    o.config_json = json;
    o.comm = comm;
    if (dsc_initialize(gpt->model, &o, &init, r->error, sizeof r->error) != DSC_OK) goto done;
    int32_t x[B * T], y[B * T];
    for (int step = 0; step < 2; step++)
        for (int micro = 0; micro < GAS; micro++) {
            for (int i = 0; i < B * T; i++) {
                x[i] = (i * 13 + step * 7 + micro * 3 + r->rank) % VOCAB;
                y[i] = (x[i] * 5 + 1) % VOCAB;
            }
            dsc_tensor_t *loss = NULL;
            if (dsc_gpt_forward(ctx, gpt, x, y, B, T, NULL, &loss) != DSC_OK || dsc_backward(init.engine, loss) != DSC_OK ||
                dsc_step(init.engine) != DSC_OK) {
                snprintf(r->error, sizeof r->error, "step %d: %s", step, dsc_engine_errmsg(init.engine));
                goto done;
            }
        }
    for (int c = 0; c < DSC_MEM_CATEGORY_COUNT; c++) {
        r->live[c] = dsc_ctx_mem_stats(ctx, (dsc_mem_category_t)c).live_bytes;
        r->peak[c] = dsc_ctx_mem_stats(ctx, (dsc_mem_category_t)c).peak_bytes;
    }
    r->act_peak = dsc_ctx_mem_stats(ctx, DSC_MEM_ACTIVATIONS).peak_bytes;
    r->rc = 0;
done:
    dsc_engine_free(init.engine);
    dsc_gpt_free(gpt);
    dsc_comm_free(comm);
    dsc_ctx_free(ctx);
    return NULL;
}

static double worst_rel = 0;

static void check_case(int stage, int world, const char *precision, int every, int number, double dropout) {
    run_t runs[4];
    pthread_t th[4];
    dsc_comm_fake_world_t *fw = NULL;
    if (world > 1) dsc_comm_fake_world_new(world, &fw);
    for (int r = 0; r < world; r++) {
        runs[r] = (run_t){stage, world, r, precision, every, number, dropout, fw, {0}, {0}, 0, "", 0};
        pthread_create(&th[r], NULL, rank_main, &runs[r]);
    }
    for (int r = 0; r < world; r++) pthread_join(th[r], NULL);
    dsc_comm_fake_world_free(fw);

    dsc_estimate_options_t o;
    dsc_gpt_config_t gc = model_config(dropout);
    dsc_estimate_options_default(&gc, &o);
    o.micro_batch = B;
    o.context = T;
    o.world_size = world;
    o.param_dtype = !strcmp(precision, "bf16") ? DSC_BF16 : !strcmp(precision, "fp16") ? DSC_F16 : DSC_F32;
    o.accumulate_fp32 = o.param_dtype == DSC_BF16;
    o.optimizer_states = 2;
    o.reduce_bucket_size = BUCKET;
    o.checkpoint_every = every;
    o.number_checkpoints = number;
    o.persistence_threshold = PERSIST;
    o.overlap_comm = stage == 3; /* DeepSpeed's default, which the test's config keeps */
    o.prefetch_bucket_size = 0, o.max_reuse_distance = 0; /* as the test's config sets them */
    const bool ckpt = every > 0 || number > 0;
    for (int r = 0; r < world; r++) {
        char what[200];
        snprintf(what, sizeof what, "stage %d, %d ranks, rank %d, %s, checkpointing every %d / %d blocks, dropout %g",
                 stage, world, r, precision, every, number, dropout);
        CHECK_MSG(runs[r].rc == 0, "%s: %s", what, runs[r].error);
        if (runs[r].rc) continue;
        o.rank = r;
        dsc_memory_estimate_t e;
        char err[256];
        CHECK_OK(dsc_estimate_memory(&o, stage, ckpt, &e, err, sizeof err));
        const size_t *lv = runs[r].live;
        /* the model state comes from the same plan the engine allocates with: exact */
        CHECK_MSG((int64_t)lv[DSC_MEM_PARAMS] == e.state.params && (int64_t)lv[DSC_MEM_GRADS] == e.state.grads &&
                      (int64_t)lv[DSC_MEM_OPTIM] == e.state.optim && (int64_t)lv[DSC_MEM_GRAD_ACCUM] == e.state.grad_accum &&
                      (int64_t)lv[DSC_MEM_COMM] == e.state.comm,
                  "%s: measured params %zu grads %zu optim %zu grad_accum %zu comm %zu, estimated %lld %lld %lld %lld %lld",
                  what, lv[DSC_MEM_PARAMS], lv[DSC_MEM_GRADS], lv[DSC_MEM_OPTIM], lv[DSC_MEM_GRAD_ACCUM], lv[DSC_MEM_COMM],
                  (long long)e.state.params, (long long)e.state.grads, (long long)e.state.optim,
                  (long long)e.state.grad_accum, (long long)e.state.comm);
        CHECK_MSG(lv[DSC_MEM_ACTIVATIONS] == 0, "%s: %zu arena bytes live after the step", what, lv[DSC_MEM_ACTIVATIONS]);
        /* What lives only while a layer runs (stages 2-3: its gradients, stage 3 also its
         * gathered values): the peaks above what stays; the estimate is the largest layer's. */
        const size_t *pk = runs[r].peak;
        const int64_t transient = (int64_t)(pk[DSC_MEM_PARAMS] - lv[DSC_MEM_PARAMS] + pk[DSC_MEM_GRADS] - lv[DSC_MEM_GRADS]);
        /* exact when nothing is in flight; with overlap_comm the estimate is an upper bound */
        CHECK_MSG(o.overlap_comm && world > 1 ? transient <= e.state.transient : transient == e.state.transient,
                  "%s: transient bytes measured %lld, estimated %lld", what, (long long)transient,
                  (long long)e.state.transient);
        const int64_t measured = (int64_t)(lv[DSC_MEM_PARAMS] + lv[DSC_MEM_GRADS] + lv[DSC_MEM_OPTIM] +
                                           lv[DSC_MEM_GRAD_ACCUM] + lv[DSC_MEM_COMM] + runs[r].act_peak) + transient;
        const double rel = fabs((double)(e.total - measured)) / (double)measured;
        const double rel_act = fabs((double)(e.activations - (int64_t)runs[r].act_peak)) / (double)runs[r].act_peak;
        if (rel > worst_rel) worst_rel = rel;
        CHECK_MSG(rel <= 0.05 && rel_act <= 0.05, "%s: measured %lld bytes (activations peak %zu), estimated %lld (%lld): "
                  "%.2f%% off", what, (long long)measured, runs[r].act_peak, (long long)e.total,
                  (long long)e.activations, 100 * rel);
        /* the arena's own part (what dsc train reserves): the gradient pool holds the rest */
        CHECK_MSG(e.step_arena > 0 && e.step_arena < e.activations, "%s: step arena %lld of activations %lld", what,
                  (long long)e.step_arena, (long long)e.activations);
        if (e.activations != (int64_t)runs[r].act_peak)
            printf("note: %s: activations estimated %lld, measured %zu (%+.3f%%)\n", what, (long long)e.activations,
                   runs[r].act_peak, 100.0 * ((double)e.activations - (double)runs[r].act_peak) / (double)runs[r].act_peak);
    }
}

/* Spec §5.9's worked examples (Psi = 1e9, L = 1e8), in the GB the estimator prints. */
static void test_deepspeed_formulas(void) {
    const double GB = 1073741824.0;
    int64_t cpu, gpu, ll;
    struct {
        int g, n;
        bool off;
        double cpu, gpu;
    } z2[] = {{1, 1, true, 22.35, 1.86}, {1, 1, false, 5.59, 18.63}, {8, 1, true, 44.70, 1.86},
              {8, 1, false, 44.70, 3.96}, {8, 2, false, 44.70, 2.91}};
    for (size_t i = 0; i < sizeof z2 / sizeof z2[0]; i++) {
        dsc_deepspeed_zero2_estimate(1000000000, z2[i].g, z2[i].n, z2[i].off, 1.5, &cpu, &gpu);
        CHECK_MSG(fabs(cpu / GB - z2[i].cpu) < 0.006 && fabs(gpu / GB - z2[i].gpu) < 0.006, "zero2 row %zu: %.2f %.2f", i,
                  cpu / GB, gpu / GB);
    }
    struct {
        int g;
        bool opt, par, zi;
        double cpu, gpu;
    } z3[] = {{8, true, true, true, 25.15, 0.37},  {8, true, true, false, 44.70, 0.37}, {8, true, false, true, 22.35, 0.61},
              {8, false, false, true, 4.47, 2.47}, {8, false, false, false, 44.70, 2.47}, {1, false, false, true, 0.56, 17.14}};
    for (size_t i = 0; i < sizeof z3 / sizeof z3[0]; i++) {
        dsc_deepspeed_zero3_estimate(1000000000, 100000000, z3[i].g, 1, z3[i].opt, z3[i].par, z3[i].zi, 1.5, &cpu, &gpu, &ll);
        CHECK_MSG(fabs(cpu / GB - z3[i].cpu) < 0.006 && fabs(gpu / GB - z3[i].gpu) < 0.006 && ll == 400000000,
                  "zero3 row %zu: %.2f %.2f", i, cpu / GB, gpu / GB);
    }
    /* GPT-2 124M on 8 GPUs: 2 * Psi + int(18 * Psi / 8) exactly (the CLI test checks the print) */
    dsc_gpt_config_t d12 = DSC_GPT_CONFIG_D12;
    CHECK(dsc_gpt_param_count(&d12) == 124439808);
    CHECK(dsc_gpt_largest_layer_params(&d12) == 50257LL * 768);
    dsc_deepspeed_zero2_estimate(124439808, 8, 1, false, 1.5, &cpu, &gpu);
    CHECK(gpu == 2 * 124439808LL + 279989568LL && cpu == 124439808LL * 4 * 8 * 3 / 2);
}

static void test_param_count_and_options(void) {
    dsc_ctx_t *ctx = check_ctx_new(1);
    const dsc_gpt_config_t cfgs[] = {DSC_GPT_CONFIG_TINY, model_config(0), {6, 6, 384, 50257, 1024, 0, 1e-5}};
    for (size_t i = 0; i < sizeof cfgs / sizeof cfgs[0]; i++) {
        dsc_gpt_t *g = NULL;
        CHECK_OK(dsc_gpt_new(ctx, &cfgs[i], &g));
        CHECK(g && dsc_gpt_param_count(&cfgs[i]) == dsc_model_numel(g->model));
        dsc_gpt_free(g);
    }
    dsc_ctx_free(ctx);
    /* options from a config, as the engine reads it */
    dsc_config_t *c = NULL;
    char err[512];
    dsc_config_parse_options_t po = DSC_CONFIG_PARSE_OPTIONS_INIT;
    po.log_fn = quiet;
    CHECK_OK(dsc_config_parse_string("{\"train_micro_batch_size_per_gpu\": 3, \"bf16\": {\"enabled\": true},"
                                     " \"zero_optimization\": {\"stage\": 2, \"reduce_bucket_size\": 1234}, \"zero_allow_untested_optimizer\": true,"
                                     " \"activation_checkpointing\": {\"number_checkpoints\": 2},"
                                     " \"optimizer\": {\"type\": \"SGD\", \"params\": {\"lr\": 0.1, \"momentum\": 0.9}}}",
                                     &po, &c, err, sizeof err));
    dsc_estimate_options_t o;
    dsc_gpt_config_t tiny = DSC_GPT_CONFIG_TINY;
    dsc_estimate_options_default(&tiny, &o);
    CHECK(o.context == 32 && o.optimizer_states == 2 && o.param_dtype == DSC_F32 && o.checkpoint_every == 1);
    if (c) {
        CHECK_OK(dsc_estimate_options_from_config(c, &o, err, sizeof err));
        CHECK(o.micro_batch == 3 && o.param_dtype == DSC_BF16 && o.accumulate_fp32 && o.reduce_bucket_size == 1234 &&
              o.optimizer_states == 1 && o.checkpoint_every == 0 && o.number_checkpoints == 2);
    }
    dsc_config_free(c);
    /* stage 3 on one rank with nothing persistent, fp32 Adam: the ZeRO paper's 16 bytes per
     * parameter (4 working copy = master, 4 fp32 gradient, 8 moments); bad options are refused */
    dsc_memory_estimate_t e;
    dsc_estimate_options_default(&tiny, &o);
    o.persistence_threshold = 0;
    o.prefetch_bucket_size = 0, o.max_reuse_distance = 0;
    CHECK_OK(dsc_estimate_memory(&o, 3, false, &e, err, sizeof err));
    const int64_t psi = dsc_gpt_param_count(&tiny);
    CHECK(e.implemented && e.numel == psi && e.state.params == 4 * psi && e.state.grads == 0 &&
          e.state.optim == 8 * psi && e.state.grad_accum == 4 * psi);
    /* the largest layer is mlp.c_fc (4C^2 + 4C = 16640 > wte's 65 x 64): gathered + gradient */
    CHECK_MSG(e.state.transient == 2 * 4 * (4 * 64 * 64 + 4 * 64), "largest layer gathered + its gradient, %lld",
              (long long)e.state.transient);
    o.context = 33;
    CHECK(dsc_estimate_memory(&o, 0, false, &e, err, sizeof err) == DSC_ERR_INVALID);
    CHECK(dsc_estimate_gpt_activations(&tiny, 1, 33, DSC_F32, true, 0, 0) == -1);
    /* checkpointing never costs more than it saves on a deep model */
    dsc_gpt_config_t deep = {12, 4, 64, 65, 64, 0, 1e-5};
    CHECK(dsc_estimate_gpt_activations(&deep, 4, 64, DSC_F32, true, 1, 0) <
          dsc_estimate_gpt_activations(&deep, 4, 64, DSC_F32, true, 0, 0) / 3);
}

int main(void) {
    test_deepspeed_formulas();
    test_param_count_and_options();
    static const char *const precisions[] = {"fp32", "bf16", "fp16"};
    const int worlds[] = {1, 2, 4};
    for (int w = 0; w < 3; w++)
        for (int stage = 0; stage <= 3; stage++)
            for (int p = 0; p < 3; p++) check_case(stage, worlds[w], precisions[p], 0, 0, 0.0);
    /* activation checkpointing (every block, every other block, the config's count) and dropout */
    check_case(2, 2, "fp32", 1, 0, 0.0);
    check_case(1, 4, "bf16", 2, 0, 0.1);
    check_case(0, 1, "fp16", 0, 2, 0.1);
    check_case(2, 4, "bf16", 1, 0, 0.1);
    check_case(0, 2, "fp32", 0, 0, 0.1);
    check_case(3, 2, "bf16", 1, 0, 0.1);
    check_case(3, 4, "fp32", 0, 2, 0.0);
    printf("worst relative difference between estimate and allocator: %.4f%%\n", 100 * worst_rel);
    return check_finish("test_estimate");
}

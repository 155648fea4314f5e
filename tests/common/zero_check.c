#include "zero_check.h"

#include <pthread.h>

#include <stdlib.h>
#include <string.h>

static void quiet(dsc_log_level_t level, const char *message, void *user) {
    (void)level, (void)message, (void)user;
}

int zero_run(const zero_case_t *c, dsc_comm_t *comm, int world, int rank, zero_result_t *out) {
    return zero_run_extra(c, NULL, NULL, comm, world, rank, out);
}

int zero_run_extra(const zero_case_t *c, const char *zero_extra, const char *top_extra, dsc_comm_t *comm, int world,
                   int rank, zero_result_t *out) {
    memset(out, 0, sizeof *out);
    const int t = 16;
    const bool reference = comm == NULL;
    const int mb = reference ? c->micro_batch * world : c->micro_batch;
    const int stage = reference ? 0 : c->stage;
    dsc_ctx_options_t co = DSC_CTX_OPTIONS_INIT;
    co.seed = 1000 + (uint64_t)rank; /* different per rank: the broadcast must make them equal */
    co.log_fn = quiet;
    dsc_ctx_t *ctx = NULL;
    const bool own_ctx = reference || !c->ctx;
    if (own_ctx) {
        dsc_ctx_new(&co, &ctx);
    } else {
        ctx = c->ctx;
        dsc_ctx_seed(ctx, co.seed);
    }
    dsc_gpt_config_t gc = DSC_GPT_CONFIG_TINY;
    gc.block_size = t;
    dsc_gpt_t *gpt = NULL;
    dsc_gpt_new(ctx, &gc, &gpt);
    if (reference) dsc_ctx_seed(ctx, 1000); /* the reference initialises like rank 0 */
    /* Adam's eps is 1e-4, not 1e-8: the attention key bias has an analytically zero
     * gradient, and Adam turns its rounding noise (which differs with the reduction order)
     * into +-lr steps of random sign, so no two reduction orders could agree on it. */
    char json[2048], persist[1200] = "";
    if (stage == 3)
        snprintf(persist, sizeof persist,
                 ", \"stage3_param_persistence_threshold\": %lld, \"stage3_max_reuse_distance\": %lld",
                 (long long)c->persistence, (long long)c->reuse);
    if (c->overlap && !reference) {
        size_t len = strlen(persist);
        snprintf(persist + len, sizeof persist - len, ", \"overlap_comm\": %s", c->overlap == 1 ? "true" : "false");
    }
    if (zero_extra && !reference) {
        size_t len = strlen(persist);
        snprintf(persist + len, sizeof persist - len, "%s", zero_extra);
    }
    snprintf(json, sizeof json,
             "{\"train_micro_batch_size_per_gpu\": %d, \"gradient_accumulation_steps\": %d, \"gradient_clipping\": 1.0,"
             " %s \"zero_optimization\": {\"stage\": %d, \"reduce_bucket_size\": 5000%s},"
             " \"optimizer\": {\"type\": \"AdamW\", \"params\": {\"lr\": 0.001, \"weight_decay\": 0.01, \"eps\": %s}}%s}",
             mb, c->gas,
             strcmp(c->precision, "bf16") == 0   ? "\"bf16\": {\"enabled\": true},"
             : strcmp(c->precision, "fp16") == 0 ? "\"fp16\": {\"enabled\": true, \"initial_scale_power\": 32},"
                                                 : "",
             stage, persist,
             "1e-4", top_extra && !reference ? top_extra : "");
    dsc_engine_options_t o = DSC_ENGINE_OPTIONS_INIT;
    o.config_json = json;
    o.comm = comm;
    dsc_initialize_result_t init = {0};
    int rc = 0;
    if (dsc_initialize(gpt->model, &o, &init, out->error, sizeof out->error) != DSC_OK) {
        rc = 1;
        goto done;
    }
    int32_t *x = malloc(sizeof(int32_t) * (size_t)mb * t), *y = malloc(sizeof(int32_t) * (size_t)mb * t);
    const int row0 = reference ? 0 : rank * c->micro_batch;
    for (int step = 0; step < c->steps && rc == 0; step++) {
        double loss_sum = 0;
        if (comm) dsc_comm_reset_stats(comm);
        for (int micro = 0; micro < c->gas && rc == 0; micro++) {
            for (int r = 0; r < mb; r++) check_markov_row(step, micro, row0 + r, x + (size_t)r * t, y + (size_t)r * t, t);
            dsc_tensor_t *loss = NULL;
            dsc_gpt_forward(ctx, gpt, x, y, mb, t, NULL, &loss);
            loss_sum += dsc_tensor_item(loss);
            if (dsc_backward(init.engine, loss) != DSC_OK || dsc_step(init.engine) != DSC_OK) {
                snprintf(out->error, sizeof out->error, "step %d: %s", step, dsc_engine_errmsg(init.engine));
                rc = 1;
            }
        }
        if (step < 64) out->losses[step] = loss_sum / c->gas;
        if (comm) out->last_step_sent_bytes = dsc_comm_stats(comm).total_sent_bytes;
        if (rc == 0) out->engine_reported_sent_bytes = dsc_engine_comm_bytes_last_step(init.engine);
    }
    free(x);
    free(y);
    /* Memory between steps (before the gather below materialises the parameters). */
    out->mem_params = dsc_ctx_mem_stats(ctx, DSC_MEM_PARAMS).live_bytes;
    out->mem_grads = dsc_ctx_mem_stats(ctx, DSC_MEM_GRADS).live_bytes;
    out->mem_optim = dsc_ctx_mem_stats(ctx, DSC_MEM_OPTIM).live_bytes;
    out->mem_grad_accum = dsc_ctx_mem_stats(ctx, DSC_MEM_GRAD_ACCUM).live_bytes;
    out->mem_comm = dsc_ctx_mem_stats(ctx, DSC_MEM_COMM).live_bytes;
    out->offload_host = dsc_engine_offload_host_bytes(init.engine, &out->offload_pinned);
    dsc_ctx_device_memory(ctx, NULL, &out->device_peak);
    out->numel = dsc_model_numel(gpt->model);
    out->params = malloc(sizeof(float) * (size_t)out->numel);
    /* Under ZeRO-3 parameters have no data between steps: a collective gather gives it. */
    if (rc == 0 && dsc_engine_gather_params(init.engine, NULL, 0) != DSC_OK) {
        snprintf(out->error, sizeof out->error, "gather: %s", dsc_engine_errmsg(init.engine));
        rc = 1;
    }
    for (int i = 0; i < dsc_model_param_count(gpt->model) && rc == 0; i++) {
        dsc_param_info_t info;
        dsc_model_param_info(gpt->model, i, &info);
        if (check_tensor_get(info.tensor, out->params + info.offset, DSC_F32, (size_t)info.numel) != DSC_OK) {
            snprintf(out->error, sizeof out->error, "copy of %s to the host failed", info.name);
            rc = 1;
            break;
        }
        const int64_t shard = (info.numel + world - 1) / world;
        out->shards += shard;
        if (info.numel <= c->persistence) out->persistent_shards += shard;
        const bool tied = strcmp(info.name, "wte.weight") == 0;
        if (tied) out->wte_shard = shard;
        const int64_t align = 2 * (int64_t)world, padded = (dsc_model_numel(gpt->model) + align - 1) / align * align,
                      k = padded / world, lo = info.offset > rank * k ? info.offset : rank * k,
                      hi = info.offset + info.numel < (rank + 1) * k ? info.offset + info.numel : (rank + 1) * k;
        const int64_t own = hi > lo ? hi - lo : 0;
        out->stage2_sent_elems += (tied ? 2 : 1) * (info.numel - own); /* the tied embedding is used twice */
    }
    if (rc == 0 && dsc_engine_release_params(init.engine, NULL, 0, -1) != DSC_OK) {
        snprintf(out->error, sizeof out->error, "release: %s", dsc_engine_errmsg(init.engine));
        rc = 1;
    }
done:
    dsc_engine_free(init.engine);
    dsc_gpt_free(gpt);
    if (own_ctx) dsc_ctx_free(ctx);
    return rc;
}

uint64_t zero_expected_sent_bytes(const zero_case_t *c, int n, const zero_result_t *z) {
    if (n <= 1) return 0;
    const uint64_t pb = strcmp(c->precision, "bf16") == 0 ? 2 : 4, gb = 4; /* gradients reduce in fp32 at 0-1 */
    const int64_t psi = z->numel, padded = (psi + 2 * n - 1) / (2 * n) * (2 * n), k = padded / n;
    const uint64_t norm = (uint64_t)(2.0 * (n - 1) * 16 / n), m = (uint64_t)(n - 1);
    if (c->stage == 3) {
        const int64_t S = z->shards, Sp = z->persistent_shards, uses = S + z->wte_shard;
        const int64_t gathers = c->reuse > 0 ? S : 2 * (uses - Sp);
        return (uint64_t)c->gas * m * pb * (uint64_t)(gathers + uses) + m * pb * (uint64_t)Sp + norm;
    }
    if (c->stage == 0) { /* buckets of reduce_bucket_size (5000) elements */
        uint64_t want = 0;
        for (int64_t off = 0; off < padded; off += 5000) {
            const int64_t cnt = padded - off < 5000 ? padded - off : 5000;
            want += 2 * m * (uint64_t)cnt * gb / (uint64_t)n;
        }
        return want;
    }
    if (c->stage == 1) return m * (uint64_t)k * gb + m * (uint64_t)k * pb + norm;
    return (uint64_t)c->gas * (uint64_t)z->stage2_sent_elems * pb + m * (uint64_t)k * pb + norm;
}

void zero_result_free(zero_result_t *r) {
    free(r->params);
    r->params = NULL;
}

void zero_estimate_options(const zero_case_t *c, dsc_estimate_options_t *eo) {
    dsc_gpt_config_t gc = DSC_GPT_CONFIG_TINY;
    gc.block_size = 16;
    dsc_estimate_options_default(&gc, eo);
    eo->micro_batch = c->micro_batch;
    const bool bf16 = strcmp(c->precision, "bf16") == 0;
    eo->param_dtype = bf16 ? DSC_BF16 : strcmp(c->precision, "fp16") == 0 ? DSC_F16 : DSC_F32;
    eo->accumulate_fp32 = bf16;
    eo->reduce_bucket_size = 5000;
    eo->persistence_threshold = c->persistence;
    eo->max_reuse_distance = c->reuse;
}

void zero_check_offload_estimate(const char *what, const dsc_memory_estimate_t *en, const zero_result_t *off) {
    CHECK_MSG(en->state.optim == (int64_t)off->mem_optim && en->host_bytes == (int64_t)off->offload_host &&
                  en->state.grad_accum == (int64_t)off->mem_grad_accum,
              "%s: estimated device optimizer / host / grad accum bytes %lld / %lld / %lld, measured %zu / %zu / %zu",
              what, (long long)en->state.optim, (long long)en->host_bytes, (long long)en->state.grad_accum,
              off->mem_optim, off->offload_host, off->mem_grad_accum);
    CHECK_MSG(off->offload_pinned == 0 && en->pinned_host_bytes > 0, "%s: pinned %zu measured, %lld planned", what,
              off->offload_pinned, (long long)en->pinned_host_bytes);
}

int zero_edit_run(int stage, const char *zero_extra, float *out, int64_t *numel, dsc_device_counts_t *counts,
                  char *err, size_t errsz) {
    dsc_ctx_t *ctx = check_ctx_new(5);
    dsc_gpt_config_t gc = DSC_GPT_CONFIG_TINY;
    gc.block_size = 16;
    dsc_gpt_t *gpt = NULL;
    CHECK_OK(dsc_gpt_new(ctx, &gc, &gpt));
    char json[1024];
    snprintf(json, sizeof json,
             "{\"train_micro_batch_size_per_gpu\": 2, \"gradient_accumulation_steps\": 2, \"gradient_clipping\": 1.0,"
             " \"bf16\": {\"enabled\": true}, \"zero_optimization\": {\"stage\": %d,"
             " \"stage3_param_persistence_threshold\": 0%s}, \"optimizer\": {\"type\": \"AdamW\","
             " \"params\": {\"lr\": 0.001, \"eps\": 1e-4}}}",
             stage, zero_extra ? zero_extra : "");
    dsc_engine_options_t o = DSC_ENGINE_OPTIONS_INIT;
    o.config_json = json;
    dsc_initialize_result_t init = {0};
    int rc = dsc_initialize(gpt->model, &o, &init, err, errsz) == DSC_OK ? 0 : 1;
    if (rc == 0 && counts && dsc__device_count_begin(ctx, counts) != DSC_OK) rc = 1; /* the training's calls */
    int32_t x[2 * 16], y[2 * 16];
    dsc_tensor_t *wte = NULL;
    for (int i = 0; i < dsc_model_param_count(gpt->model); i++) {
        dsc_param_info_t info;
        dsc_model_param_info(gpt->model, i, &info);
        if (!strcmp(info.name, "wte.weight")) wte = info.tensor;
    }
    for (int step = 0; step < 8 && rc == 0; step++) {
        for (int micro = 0; micro < 2 && rc == 0; micro++) {
            for (int r = 0; r < 2; r++) check_markov_row(step, micro, r, x + r * 16, y + r * 16, 16);
            dsc_tensor_t *loss = NULL;
            dsc_gpt_forward(ctx, gpt, x, y, 2, 16, NULL, &loss);
            if (dsc_backward(init.engine, loss) != DSC_OK || dsc_step(init.engine) != DSC_OK) rc = 1;
        }
        if (step == 3 && rc == 0) { /* the edit: wte halved on rank 0 */
            rc = dsc_engine_gather_params(init.engine, &wte, 1) == DSC_OK ? 0 : 1;
            const size_t n = (size_t)dsc_tensor_numel(wte);
            float *v = malloc(n * sizeof *v);
            if (rc == 0 && check_tensor_get(wte, v, DSC_F32, n) == DSC_OK) {
                for (size_t k = 0; k < n; k++) v[k] *= 0.5f;
                rc = check_tensor_set(wte, v, DSC_F32, n) == DSC_OK ? 0 : 1;
            }
            free(v);
            if (dsc_engine_release_params(init.engine, &wte, 1, 0) != DSC_OK) rc = 1;
        }
    }
    if (counts) dsc__device_count_end(ctx);
    if (rc && init.engine) snprintf(err, errsz, "%s", dsc_engine_errmsg(init.engine));
    *numel = dsc_model_numel(gpt->model);
    if (rc == 0 && dsc_engine_gather_params(init.engine, NULL, 0) != DSC_OK) rc = 1;
    for (int i = 0; i < dsc_model_param_count(gpt->model) && rc == 0; i++) {
        dsc_param_info_t info;
        dsc_model_param_info(gpt->model, i, &info);
        if (check_tensor_get(info.tensor, out + info.offset, DSC_F32, (size_t)info.numel) != DSC_OK) rc = 1;
    }
    if (rc == 0) dsc_engine_release_params(init.engine, NULL, 0, -1);
    dsc_engine_free(init.engine);
    dsc_gpt_free(gpt);
    dsc_ctx_free(ctx);
    return rc;
}

typedef struct {
    const zero_case_t *c;
    const char *zero_extra, *top_extra;
    dsc_comm_fake_world_t *world;
    int n, rank, timeout_s;
    zero_result_t *result;
    int *rc;
} fake_rank_t;

static void *fake_rank_main(void *p) {
    fake_rank_t *a = p;
    dsc_ctx_t *ctx = check_ctx_new(1);
    dsc_comm_t *comm = NULL;
    *a->rc = dsc_comm_new_fake(ctx, a->world, a->rank, &comm) == DSC_OK ? 0 : 1;
    if (*a->rc) snprintf(a->result->error, sizeof a->result->error, "rank %d: dsc_comm_new_fake failed", a->rank);
    else {
        dsc_comm_set_timeout(comm, a->timeout_s);
        *a->rc = zero_run_extra(a->c, a->zero_extra, a->top_extra, comm, a->n, a->rank, a->result);
    }
    dsc_comm_free(comm);
    dsc_ctx_free(ctx);
    return NULL;
}

void zero_run_fake_ranks(const zero_case_t *c, const char *zero_extra, const char *top_extra, int n, int timeout_s,
                         zero_result_t *results, int *rcs) {
    fake_rank_t args[4];
    pthread_t th[4];
    dsc_comm_fake_world_t *world = NULL;
    for (int r = 0; r < n; r++) {
        memset(&results[r], 0, sizeof results[r]);
        rcs[r] = 1;
    }
    if (n < 1 || n > 4 || dsc_comm_fake_world_new(n, &world) != DSC_OK) {
        for (int r = 0; r < n && r < 4; r++) snprintf(results[r].error, sizeof results[r].error, "no fake world of %d", n);
        return;
    }
    for (int r = 0; r < n; r++) {
        args[r] = (fake_rank_t){c, zero_extra, top_extra, world, n, r, timeout_s, &results[r], &rcs[r]};
        pthread_create(&th[r], NULL, fake_rank_main, &args[r]);
    }
    for (int r = 0; r < n; r++) pthread_join(th[r], NULL);
    dsc_comm_fake_world_free(world);
}

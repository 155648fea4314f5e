/* Mixed precision in the engine: fp16 and bf16 storage with fp32 master weights, the
 * loss scale in backward, skipped updates on injected inf/NaN (state bitwise unchanged,
 * the scale moving as DeepSpeed's scaler), the log naming the bad tensor, the stop after
 * repeated skips at the minimum scale, memory counters, and fp16/bf16 training tracking
 * fp32 on the small GPT. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "engine/engine_internal.h"

typedef struct {
    char last_warn[1024];
    int n_warn;
} log_capture_t;

static void capture(dsc_log_level_t level, const char *message, void *user) {
    log_capture_t *c = user;
    if (level == DSC_LOG_WARN) {
        snprintf(c->last_warn, sizeof c->last_warn, "%s", message);
        c->n_warn++;
    }
}

typedef struct {
    dsc_ctx_t *ctx;
    dsc_gpt_t *gpt;
    dsc_engine_t *engine;
    log_capture_t log;
} run_t;

static const char *precision_json(const char *precision) {
    if (!strcmp(precision, "fp16-window4")) return "\"fp16\": {\"enabled\": true, \"loss_scale_window\": 4, \"hysteresis\": 2},";
    if (!strcmp(precision, "fp16")) return "\"fp16\": {\"enabled\": true},";
    if (!strcmp(precision, "bf16")) return "\"bf16\": {\"enabled\": true},";
    if (!strcmp(precision, "bf16-acc16")) return "\"bf16\": {\"enabled\": true}, \"data_types\": {\"grad_accum_dtype\": \"bf16\"},";
    return "";
}

static bool run_new(run_t *r, const char *precision, int max_skips) {
    memset(r, 0, sizeof *r);
    dsc_ctx_options_t co = DSC_CTX_OPTIONS_INIT;
    co.seed = 42;
    co.log_fn = capture;
    co.log_user = &r->log;
    dsc_ctx_new(&co, &r->ctx);
    dsc_gpt_config_t cfg = DSC_GPT_CONFIG_TINY;
    dsc_gpt_new(r->ctx, &cfg, &r->gpt);
    char json[1024];
    snprintf(json, sizeof json,
             "{%s \"train_batch_size\": 4, \"gradient_clipping\": 1.0,"
             " \"optimizer\": {\"type\": \"AdamW\", \"params\": {\"lr\": 0.003, \"weight_decay\": 0.01}}}",
             precision_json(precision));
    dsc_engine_options_t o = DSC_ENGINE_OPTIONS_INIT;
    o.config_json = json;
    o.max_consecutive_skips_at_min_scale = max_skips;
    dsc_initialize_result_t res;
    char err[1024];
    dsc_status_t rc = dsc_initialize(r->gpt->model, &o, &res, err, sizeof err);
    CHECK_MSG(rc == DSC_OK, "%s: %s", precision, err);
    r->engine = res.engine;
    return rc == DSC_OK;
}

static void run_free(run_t *r) {
    dsc_engine_free(r->engine);
    dsc_gpt_free(r->gpt);
    dsc_ctx_free(r->ctx);
}

/* A deterministic batch from a noisy Markov chain: the next token is (7 * prev + 3) mod 65
 * with probability 3/4, else uniform. The loss cannot fall below the noise's entropy
 * (about 1.6 nats), so "within 2%" compares real learning curves, not memorisation. */
static void make_batch(int step, int32_t *x, int32_t *y, int n) {
    uint64_t st = 0x9E3779B97F4A7C15ull * (uint64_t)(step + 1);
    int32_t prev = (int32_t)(step % 65);
    for (int i = 0; i < n + 1; i++) {
        st = st * 6364136223846793005ull + 1442695040888963407ull;
        uint32_t rnd = (uint32_t)(st >> 33);
        int32_t v = (rnd % 4 != 0) ? (7 * prev + 3) % 65 : (int32_t)((rnd >> 8) % 65);
        if (i < n) x[i] = v;
        if (i > 0) y[i - 1] = v;
        prev = v;
    }
}

static double forward_backward(run_t *r, int step) {
    int32_t x[4 * 32], y[4 * 32];
    make_batch(step, x, y, 4 * 32);
    dsc_tensor_t *loss = NULL;
    dsc_gpt_forward(r->ctx, r->gpt, x, y, 4, 32, NULL, &loss);
    double v = dsc_tensor_item(loss);
    CHECK_OK(dsc_backward(r->engine, loss));
    return v;
}

static void test_memory_counters(void) {
    const char *modes[] = {"fp32", "fp16", "bf16", "bf16-acc16"};
    for (int k = 0; k < 4; k++) {
        run_t r;
        if (!run_new(&r, modes[k], 10)) continue;
        size_t n = (size_t)dsc_model_numel(r.gpt->model);
        size_t p = dsc_ctx_mem_stats(r.ctx, DSC_MEM_PARAMS).live_bytes, g = dsc_ctx_mem_stats(r.ctx, DSC_MEM_GRADS).live_bytes;
        size_t o = dsc_ctx_mem_stats(r.ctx, DSC_MEM_OPTIM).live_bytes;
        size_t a = dsc_ctx_mem_stats(r.ctx, DSC_MEM_GRAD_ACCUM).live_bytes;
        /* The optimizer's own bookkeeping (per-tensor segments) lives in OTHER, so OPTIM is
         * exactly master + moments. */
        if (k == 0) {
            CHECK_MSG(p == 4 * n && g == 4 * n && o == 8 * n && a == 0, "fp32: %zu %zu %zu %zu per %zu", p, g, o, a, n);
        } else {
            CHECK_MSG(p == 2 * n && g == 2 * n && o == 12 * n && a == 4 * n, "%s: params %zu grads %zu optim %zu acc %zu for %zu",
                      modes[k], p, g, o, a, n);
        }
        run_free(&r);
    }
}

/* Snapshot of everything an update may change. */
typedef struct {
    float *master;
    uint16_t *params16;
    float *m, *v;
    int64_t opt_step;
} snapshot_t;

static void snap(run_t *r, snapshot_t *s) {
    dsc_engine_t *e = r->engine;
    size_t n = (size_t)e->numel;
    s->master = malloc(n * 4);
    s->params16 = malloc(n * 2);
    s->m = malloc(n * 4);
    s->v = malloc(n * 4);
    CHECK(dsc_ctx_to_host(e->ctx, s->master, e->master, n * 4) == DSC_OK);
    CHECK(dsc_ctx_to_host(e->ctx, s->params16, e->params, n * 2) == DSC_OK);
    CHECK(dsc_ctx_to_host(e->ctx, s->m, dsc_optim_state_data(e->optimizer, 0), n * 4) == DSC_OK);
    CHECK(dsc_ctx_to_host(e->ctx, s->v, dsc_optim_state_data(e->optimizer, 1), n * 4) == DSC_OK);
    s->opt_step = dsc_optim_step_count(e->optimizer);
}

static void snap_free(snapshot_t *s);

/* Bitwise equal to the snapshot (the run's state is copied to the host first). */
static bool same(run_t *r, const snapshot_t *s) {
    dsc_engine_t *e = r->engine;
    size_t n = (size_t)e->numel;
    snapshot_t now;
    snap(r, &now);
    const bool eq = !memcmp(s->master, now.master, n * 4) && !memcmp(s->params16, now.params16, n * 2) &&
                    !memcmp(s->m, now.m, n * 4) && !memcmp(s->v, now.v, n * 4) && s->opt_step == now.opt_step;
    snap_free(&now);
    return eq;
}

static void snap_free(snapshot_t *s) {
    free(s->master), free(s->params16), free(s->m), free(s->v);
}

/* Puts inf or NaN into the gradient of `name` where the engine will read it. */
static void inject(run_t *r, const char *name, bool nan_value) {
    dsc_engine_t *e = r->engine;
    dsc_param_info_t info;
    for (int i = 0; i < dsc_model_param_count(e->model); i++) {
        dsc_model_param_info(e->model, i, &info);
        if (!strcmp(info.name, name)) break;
    }
    float bad = nan_value ? NAN : INFINITY;
    if (e->accumulate_fp32) {
        CHECK(dsc_ctx_from_host(e->ctx, e->acc32 + info.offset + 3, &bad, sizeof bad) == DSC_OK);
    } else {
        uint16_t bad16 = e->model_dtype == DSC_F16 ? dsc_f32_to_f16(bad) : dsc_f32_to_bf16(bad);
        CHECK(dsc_ctx_from_host(e->ctx, (uint16_t *)e->grads + info.offset + 3, &bad16, sizeof bad16) == DSC_OK);
    }
}

/* fp16, window 4, hysteresis 2: the spec's trace with overflows at updates 6, 8, 9. */
static void test_fp16_skips(void) {
    run_t r;
    if (!run_new(&r, "fp16-window4", 10)) return;
    CHECK(dsc_engine_loss_scale(r.engine) == 65536.0);
    /* iterations 0..4 clean (doubling at 4), 5 overflow (hysteresis 2 -> 1), 6 clean,
     * 7 and 8 overflow (halve twice), 9..13 clean (doubling at 13). */
    const bool ovf[14] = {0, 0, 0, 0, 0, 1, 0, 1, 1, 0, 0, 0, 0, 0};
    const double scale_after[14] = {65536, 65536, 65536, 65536, 131072, 131072, 131072,
                                    65536, 32768, 32768, 32768, 32768, 32768, 65536};
    int64_t skipped = 0;
    for (int it = 0; it < 14; it++) {
        forward_backward(&r, it);
        snapshot_t s;
        snap(&r, &s);
        if (ovf[it]) inject(&r, "h.1.mlp.c_fc.weight", it == 7);
        int warns = r.log.n_warn;
        CHECK_OK(dsc_step(r.engine));
        if (ovf[it]) {
            skipped++;
            CHECK_MSG(same(&r, &s), "iteration %d: an overflow step changed the model or optimizer state", it);
            CHECK(r.log.n_warn > warns && strstr(r.log.last_warn, "h.1.mlp.c_fc.weight") != NULL);
        } else {
            CHECK_MSG(!same(&r, &s), "iteration %d: a clean step did not update", it);
        }
        CHECK_MSG(dsc_engine_loss_scale(r.engine) == scale_after[it], "iteration %d: scale %g want %g", it,
                  dsc_engine_loss_scale(r.engine), scale_after[it]);
        CHECK(dsc_engine_skipped_steps(r.engine) == skipped);
        CHECK(dsc_engine_global_steps(r.engine) == it + 1);
        snap_free(&s);
    }
    /* The optimizer applied exactly the clean updates. */
    CHECK(dsc_optim_step_count(r.engine->optimizer) == 14 - skipped);
    run_free(&r);
}

/* bf16 cannot lower a scale: with check_grad_overflow (default) inf skips the update, and
 * three consecutive skips stop training with an error that suggests what to do. */
static void test_bf16_skip_and_stop(void) {
    run_t r;
    if (!run_new(&r, "bf16", 3)) return;
    forward_backward(&r, 0);
    CHECK_OK(dsc_step(r.engine));
    for (int k = 0; k < 3; k++) {
        forward_backward(&r, k + 1);
        snapshot_t s;
        snap(&r, &s);
        inject(&r, "wte.weight", false);
        dsc_status_t rc = dsc_step(r.engine);
        CHECK(same(&r, &s));
        snap_free(&s);
        if (k < 2) {
            CHECK_OK(rc);
        } else {
            CHECK(rc == DSC_ERR_NUMERIC);
            CHECK_MSG(strstr(dsc_engine_errmsg(r.engine), "3") && strstr(dsc_engine_errmsg(r.engine), "bf16"), "%s",
                      dsc_engine_errmsg(r.engine));
        }
    }
    CHECK(dsc_engine_skipped_steps(r.engine) == 3);
    run_free(&r);
}

/* fp16 and bf16 track fp32 on the small GPT: final loss within 2% after 120 steps. The
 * loss reaches the noise floor by step 60 (mean of the last 10 steps, fp32: 1.713 at 60,
 * 1.710 at 120, 1.760 at 300; fp16 and bf16 within 0.03% of it at each), so the 300 steps
 * this test ran before added no behaviour (no skip, no scale change) at 2.5 times the cost. */
static void test_tracks_fp32(void) {
    const char *modes[] = {"fp32", "fp16", "bf16"};
    double final[3] = {0};
    for (int k = 0; k < 3; k++) {
        run_t r;
        if (!run_new(&r, modes[k], 10)) return;
        double first = 0, sum_last = 0;
        const int steps = 120;
        for (int step = 0; step < steps; step++) {
            double l = forward_backward(&r, step);
            CHECK_OK(dsc_step(r.engine));
            if (step == 0) first = l;
            if (step >= steps - 10) sum_last += l;
        }
        final[k] = sum_last / 10;
        printf("  %-10s first loss %.4f, mean loss of steps %d-%d %.4f, skipped %lld, loss scale %g\n", modes[k], first,
               steps - 9, steps, final[k], (long long)dsc_engine_skipped_steps(r.engine), dsc_engine_loss_scale(r.engine));
        CHECK_MSG(final[k] < 0.6 * first, "%s did not train: %.4f -> %.4f", modes[k], first, final[k]);
        run_free(&r);
    }
    for (int k = 1; k < 3; k++)
        CHECK_MSG(fabs(final[k] - final[0]) <= 0.02 * final[0], "%s final loss %.4f vs fp32 %.4f (%.2f%%)", modes[k],
                  final[k], final[0], 100 * fabs(final[k] - final[0]) / final[0]);
}

int main(void) {
    test_memory_counters();
    test_fp16_skips();
    test_bf16_skip_and_stop();
    test_tracks_fp32();
    return check_finish("test_amp_engine");
}

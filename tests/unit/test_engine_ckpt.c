/* Engine checkpoints (dsc_save_checkpoint / dsc_load_checkpoint) on 1-4 in-process ranks
 * (the fake communicator, one thread per rank):
 *   - exact resume: train 12 steps; save at step 6 and resume in a fresh engine (another
 *     seed, another model init): the losses of steps 7-12, the parameters and the
 *     optimizer state are bitwise those of the uninterrupted run (fp32, bf16, fp16; dropout
 *     0.1; ZeRO 0-2; GAS 1-2), and saving does not perturb the run;
 *   - resharding: saved by 4 ranks at stage 2, loaded by 2 ranks at stage 1, 1 at stage 0,
 *     3 at stage 2 and 2 at stage 3; saved by 3 at stage 3, loaded by 2 at stage 2, 4 at
 *     stage 3 and 1 at stage 0: parameters and optimizer state equal the saved ones bitwise, and the
 *     next 6 losses follow the uninterrupted 4-rank run (fp32: 1e-5 relative);
 *   - corruption: a flipped byte, a truncation or a deletion of each file gives an error
 *     naming the file and leaves the engine untouched;
 *   - collective misuse: a save called on one rank only, ranks that disagree on the tag,
 *     a save in the middle of gradient accumulation;
 *   - load flags (weights only, no optimizer), another optimizer type, client state;
 *   - a resume under another GAS or world size starts at a boundary of its own (issue 14);
 *   - `dsc zero-to-fp32` (tools/cmd_zero_to_fp32.c, linked in): the output's tensors equal
 *     the fp32 master weights (read back with the storage layer's reader).
 * The first part (up to CKPT_HARNESS_ONLY) is the harness tests/mpi/test_ckpt_mpi.c reuses. */
#include <dirent.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "engine/engine_internal.h"

#define CK_MAX_STEPS 64
#define CK_MAX_STATES 4
#define CK_MAX_WORLD 4

typedef struct ck_spec {
    int world, stage, gas, rows; /* rows: global rows per micro-batch, divisible by world */
    const char *precision;       /* "fp32", "bf16", "fp16" */
    double dropout;
    int total_steps;             /* train until global_steps == total_steps */
    const char *save_dir;
    int save_at;                 /* save when global_steps reaches it */
    const char *save_tag;        /* NULL: the default tag */
    bool tag_per_rank;           /* each rank passes "<save_tag>_r<rank>" */
    unsigned skip_save_ranks;    /* bit r: rank r does not call the save */
    const char *client_state;
    const char *load_dir, *load_tag;
    bool load_opt, load_sched, module_only;
    const char *optimizer;       /* the "optimizer" section; NULL: AdamW */
    const char *extra;           /* more top-level keys ("\"k\": v, "), or NULL */
    uint64_t seed;               /* rank r's context seed: seed + r */
    double timeout;              /* fake communicator timeout (0: 60 s) */
} ck_spec_t;

/* The engine's state at one moment, as f32. */
typedef struct ck_snap {
    bool taken;
    float *params;               /* numel: the model's working copy */
    float *master;               /* n_local: this rank's fp32 master */
    float *states[CK_MAX_STATES];
    int n_states;
    int64_t begin, n_local, numel;
    int64_t *map; /* flat parameter index of each local element (-1: padding) */
    int64_t steps, samples, micro, skipped, opt_step;
    double lr, scale;
    uint64_t rng, drop_seed, drop_offset;
} ck_snap_t;

typedef struct ck_result {
    int rc; /* 0: ran as specified (load_rc/save_rc may still report failures) */
    dsc_status_t load_rc, save_rc;
    char error[2048];
    double losses[CK_MAX_STEPS];        /* this rank's mean loss of each (0-based) step */
    double global_losses[CK_MAX_STEPS]; /* mean over ranks */
    ck_snap_t at_load, at_save, at_end;
    char *client_state;
} ck_result_t;

static void ck_quiet(dsc_log_level_t level, const char *message, void *user) { (void)level, (void)message, (void)user; }

static void ck_snap_free(ck_snap_t *s) {
    free(s->map);
    free(s->params);
    free(s->master);
    for (int j = 0; j < CK_MAX_STATES; j++) free(s->states[j]);
    memset(s, 0, sizeof *s);
}

static void ck_result_free(ck_result_t *r) {
    ck_snap_free(&r->at_load);
    ck_snap_free(&r->at_save);
    ck_snap_free(&r->at_end);
    free(r->client_state);
    r->client_state = NULL;
}

static void ck_snap(dsc_engine_t *e, dsc_model_t *model, ck_snap_t *s) {
    ck_snap_free(s);
    s->taken = true;
    s->numel = dsc_model_numel(model);
    s->params = malloc(sizeof(float) * (size_t)s->numel);
    dsc_engine_gather_params(e, NULL, 0); /* ZeRO-3: every rank snapshots at the same points */
    for (int i = 0; i < dsc_model_param_count(model); i++) {
        dsc_param_info_t p;
        dsc_model_param_info(model, i, &p);
        check_tensor_get(p.tensor, s->params + p.offset, DSC_F32, (size_t)p.numel);
    }
    dsc_engine_release_params(e, NULL, 0, -1);
    s->begin = e->plan.stage == 0 ? 0 : e->plan.begin;
    s->n_local = e->n_local;
    /* Where each local element comes from: a flat range at stages 0-2, each parameter's
     * shard at stage 3 (spec 5.5). */
    s->map = malloc(sizeof(int64_t) * (size_t)(s->n_local + 1));
    const int world = dsc_engine_world_size(e), rank = dsc_engine_rank(e);
    for (int64_t i = 0; i < s->n_local; i++) s->map[i] = s->begin + i < s->numel ? s->begin + i : -1;
    for (int i = 0, at = 0; e->plan.stage == 3 && i < dsc_model_param_count(model); i++) {
        dsc_param_info_t p;
        dsc_model_param_info(model, i, &p);
        const int64_t k = dsc_zero3_shard(p.numel, world);
        for (int64_t j = 0; j < k; j++, at++) s->map[at] = rank * k + j < p.numel ? p.offset + rank * k + j : -1;
    }
    s->master = malloc(sizeof(float) * (size_t)s->n_local);
    CHECK(dsc_ctx_to_host(e->ctx, s->master, e->master, sizeof(float) * (size_t)s->n_local) == DSC_OK);
    s->n_states = e->optimizer ? dsc_optim_num_states(e->optimizer) : 0;
    for (int j = 0; j < s->n_states && j < CK_MAX_STATES; j++) {
        s->states[j] = malloc(sizeof(float) * (size_t)s->n_local);
        CHECK(dsc_ctx_to_host(e->ctx, s->states[j], dsc_optim_state_data(e->optimizer, j),
                              sizeof(float) * (size_t)s->n_local) == DSC_OK);
    }
    s->steps = dsc_engine_global_steps(e);
    s->samples = dsc_engine_global_samples(e);
    s->micro = dsc_engine_micro_steps(e);
    s->skipped = dsc_engine_skipped_steps(e);
    s->opt_step = e->optimizer ? dsc_optim_step_count(e->optimizer) : -1;
    s->lr = dsc_engine_lr(e);
    s->scale = dsc_engine_loss_scale(e);
    s->rng = dsc_ctx_rng_state(dsc_engine_ctx(e));
    dsc_ctx_dropout_stream(dsc_engine_ctx(e), &s->drop_seed, &s->drop_offset);
}

/* A rank's engine for `s`: context, GPT and engine (NULL engine on failure, message in err). */
typedef struct ck_rank {
    dsc_ctx_t *ctx;
    dsc_gpt_t *gpt;
    dsc_engine_t *engine;
} ck_rank_t;

static dsc_status_t ck_rank_new(const ck_spec_t *s, dsc_comm_t *comm, int rank, ck_rank_t *r, char *err, size_t errsz) {
    memset(r, 0, sizeof *r);
    dsc_ctx_options_t co = DSC_CTX_OPTIONS_INIT;
    co.seed = s->seed + (uint64_t)rank;
    co.log_fn = ck_quiet;
    dsc_ctx_new(&co, &r->ctx);
    dsc_gpt_config_t gc = DSC_GPT_CONFIG_TINY;
    gc.block_size = 16;
    gc.dropout = s->dropout;
    dsc_gpt_new(r->ctx, &gc, &r->gpt);
    const char *prec = !strcmp(s->precision, "bf16")   ? "\"bf16\": {\"enabled\": true}, "
                       : !strcmp(s->precision, "fp16") ? "\"fp16\": {\"enabled\": true, \"initial_scale_power\": 8, "
                                                         "\"loss_scale_window\": 4, \"hysteresis\": 2}, "
                                                       : "";
    char json[2048];
    snprintf(json, sizeof json,
             "{\"train_batch_size\": %d, \"train_micro_batch_size_per_gpu\": %d, \"gradient_accumulation_steps\": %d, "
             "\"gradient_clipping\": 1.0, %s%s\"zero_optimization\": {\"stage\": %d, \"reduce_bucket_size\": 5000%s}, "
             "\"optimizer\": %s, \"scheduler\": {\"type\": \"WarmupDecayLR\", \"params\": {\"warmup_num_steps\": 5, "
             "\"total_num_steps\": 40, \"warmup_max_lr\": 0.002}}}",
             s->rows * s->gas, s->rows / s->world, s->gas, prec, s->extra ? s->extra : "", s->stage,
             /* stage 3: biases and layer norms persistent, the matrices partitioned */
             s->stage == 3 ? ", \"stage3_param_persistence_threshold\": 1000" : "",
             s->optimizer ? s->optimizer
                          : "{\"type\": \"AdamW\", \"params\": {\"lr\": 0.002, \"weight_decay\": 0.01, \"eps\": 1e-4}}");
    dsc_engine_options_t o = DSC_ENGINE_OPTIONS_INIT;
    o.config_json = json;
    o.comm = comm;
    dsc_initialize_result_t init = {0};
    dsc_status_t st = dsc_initialize(r->gpt->model, &o, &init, err, errsz);
    r->engine = init.engine;
    return st;
}

static void ck_rank_free(ck_rank_t *r) {
    dsc_engine_free(r->engine);
    dsc_gpt_free(r->gpt);
    dsc_ctx_free(r->ctx);
    memset(r, 0, sizeof *r);
}

/* One optimizer step (GAS micro-batches) of the global batch of step `step`; returns this
 * rank's mean loss, NAN on failure (message in err). */
static double ck_train_step(const ck_spec_t *s, ck_rank_t *r, int rank, int step, char *err, size_t errsz) {
    const int t = 16, mb = s->rows / s->world;
    int32_t x[64 * 16], y[64 * 16];
    double sum = 0;
    for (int micro = 0; micro < s->gas; micro++) {
        for (int i = 0; i < mb; i++) check_markov_row(step, micro, rank * mb + i, x + i * t, y + i * t, t);
        dsc_tensor_t *loss = NULL;
        dsc_gpt_forward(r->ctx, r->gpt, x, y, mb, t, NULL, &loss);
        sum += dsc_tensor_item(loss);
        if (dsc_backward(r->engine, loss) != DSC_OK || dsc_step(r->engine) != DSC_OK) {
            snprintf(err, errsz, "step %d: %s", step, dsc_engine_errmsg(r->engine));
            return NAN;
        }
    }
    return sum / s->gas;
}

/* Runs spec `s` on one rank: optional load, training to total_steps, optional save. */
static int ck_run(const ck_spec_t *s, dsc_comm_t *comm, int rank, ck_result_t *out) {
    memset(out, 0, sizeof *out);
    for (int i = 0; i < CK_MAX_STEPS; i++) out->losses[i] = out->global_losses[i] = NAN;
    ck_rank_t r;
    if (ck_rank_new(s, comm, rank, &r, out->error, sizeof out->error) != DSC_OK) {
        ck_rank_free(&r);
        return out->rc = 1;
    }
    dsc_engine_t *e = r.engine;
    if (s->load_dir) {
        out->load_rc = dsc_load_checkpoint(e, s->load_dir, s->load_tag, s->load_opt, s->load_sched, s->module_only,
                                           &out->client_state);
        ck_snap(e, r.gpt->model, &out->at_load);
        if (out->load_rc != DSC_OK) {
            snprintf(out->error, sizeof out->error, "%s", dsc_engine_errmsg(e));
            ck_rank_free(&r);
            return 0;
        }
    }
    while (dsc_engine_global_steps(e) < s->total_steps) {
        int step = (int)dsc_engine_global_steps(e);
        double l = ck_train_step(s, &r, rank, step, out->error, sizeof out->error);
        if (isnan(l)) {
            out->rc = 1;
            break;
        }
        out->losses[step] = l;
        double g = l / s->world;
        if (comm && dsc_comm_allreduce(comm, &g, &g, 1, DSC_F64, DSC_REDUCE_SUM) != DSC_OK) {
            snprintf(out->error, sizeof out->error, "loss all-reduce: %s", dsc_comm_errmsg(comm));
            out->rc = 1;
            break;
        }
        out->global_losses[step] = g;
        if (s->save_dir && dsc_engine_global_steps(e) == s->save_at && !(s->skip_save_ranks >> rank & 1)) {
            ck_snap(e, r.gpt->model, &out->at_save);
            char tag[64];
            if (s->tag_per_rank) snprintf(tag, sizeof tag, "%s_r%d", s->save_tag, rank);
            out->save_rc = dsc_save_checkpoint(e, s->save_dir, s->tag_per_rank ? tag : s->save_tag, s->client_state, true);
            if (out->save_rc != DSC_OK) {
                snprintf(out->error, sizeof out->error, "%s", dsc_engine_errmsg(e));
                break;
            }
        }
    }
    ck_snap(e, r.gpt->model, &out->at_end);
    ck_rank_free(&r);
    return out->rc;
}

typedef struct ck_thread {
    const ck_spec_t *s;
    dsc_comm_fake_world_t *world;
    int rank;
    ck_result_t *res;
} ck_thread_t;

static void *ck_thread_main(void *p) {
    ck_thread_t *a = p;
    dsc_ctx_t *ctx = check_ctx_new(1);
    dsc_comm_t *comm = NULL;
    if (dsc_comm_new_fake(ctx, a->world, a->rank, &comm) != DSC_OK) {
        a->res->rc = 1;
    } else {
        dsc_comm_set_timeout(comm, a->s->timeout > 0 ? a->s->timeout : 60);
        ck_run(a->s, comm, a->rank, a->res);
    }
    dsc_comm_free(comm);
    dsc_ctx_free(ctx);
    return NULL;
}

/* Runs `s` on s->world fake ranks (world 1: no communicator); res[r] per rank. */
static void ck_world(const ck_spec_t *s, ck_result_t *res) {
    if (s->world == 1) {
        ck_run(s, NULL, 0, &res[0]);
        return;
    }
    dsc_comm_fake_world_t *w = NULL;
    dsc_comm_fake_world_new(s->world, &w);
    pthread_t th[CK_MAX_WORLD];
    ck_thread_t a[CK_MAX_WORLD];
    for (int r = 0; r < s->world; r++) {
        a[r] = (ck_thread_t){s, w, r, &res[r]};
        pthread_create(&th[r], NULL, ck_thread_main, &a[r]);
    }
    for (int r = 0; r < s->world; r++) pthread_join(th[r], NULL);
    dsc_comm_fake_world_free(w);
}

/* The full flat vector (numel) of the master (which < 0) or state `which` from every
 * rank's snapshot. */
static float *ck_assemble(ck_snap_t *const *snaps, int world, int which) {
    const int64_t numel = snaps[0]->numel;
    float *full = calloc((size_t)numel, sizeof *full);
    for (int r = 0; r < world; r++) {
        const float *src = which < 0 ? snaps[r]->master : snaps[r]->states[which];
        for (int64_t i = 0; i < snaps[r]->n_local; i++)
            if (snaps[r]->map[i] >= 0) full[snaps[r]->map[i]] = src[i];
    }
    return full;
}

/* Bitwise equality of n floats (NaN payloads included). */
static bool ck_same(const char *what, const float *a, const float *b, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], sizeof(float)) != 0) {
            CHECK_MSG(false, "%s: element %zu differs: %.9g vs %.9g", what, i, a[i], b[i]);
            return false;
        }
    check_count++;
    return true;
}

/* The snapshot's master and states equal the full vectors where its layout maps them
 * (padding: 0). */
static void ck_check_range(const char *what, const ck_snap_t *s, const float *master, float *const *states, int n_states) {
    char w[256];
    for (int j = -1; j < n_states; j++) {
        const float *full = j < 0 ? master : states[j];
        const float *got = j < 0 ? s->master : s->states[j];
        snprintf(w, sizeof w, "%s: %s", what, j < 0 ? "master" : "optimizer state");
        if (j >= 0 && !got) {
            CHECK_MSG(false, "%s: state %d missing", w, j);
            continue;
        }
        float *want = malloc(sizeof(float) * (size_t)(s->n_local + 1));
        for (int64_t i = 0; i < s->n_local; i++) want[i] = s->map[i] < 0 ? 0.0f : full[s->map[i]];
        ck_same(w, got, want, (size_t)s->n_local);
        free(want);
    }
}

#ifndef CKPT_HARNESS_ONLY

int dsc_cmd_zero_to_fp32(int argc, char **argv);

static char root[512];

/* Runs save at step CK_SAVE_AT and go on to CK_TOTAL. The save comes after the schedule's 5
 * warm-up steps and between two of fp16's scale doublings (every 4 clean steps), so the
 * resumed run needs the scheduler's and the scaler's state; each of the 6 steps after it is
 * compared bitwise. (It was 10 and 20: the steps beyond add no state the resume must carry,
 * and the test took 40% longer.) */
#define CK_SAVE_AT 6
#define CK_TOTAL 12

static ck_spec_t ck_base_spec(int world, int stage, const char *precision, int gas) {
    ck_spec_t s;
    memset(&s, 0, sizeof s);
    s.world = world, s.stage = stage, s.precision = precision, s.gas = gas, s.rows = 12;
    s.total_steps = CK_TOTAL, s.seed = 1000, s.load_opt = s.load_sched = true;
    return s;
}

static bool ck_all_ok(const char *what, const ck_result_t *res, int world) {
    bool ok = true;
    for (int r = 0; r < world; r++) {
        CHECK_MSG(res[r].rc == 0 && res[r].load_rc == DSC_OK && res[r].save_rc == DSC_OK, "%s: rank %d: %s", what, r,
                  res[r].error);
        ok = ok && res[r].rc == 0 && res[r].load_rc == DSC_OK && res[r].save_rc == DSC_OK;
    }
    return ok;
}

static bool json_text_equal(const char *a, const char *b) {
    json_t *x = a ? json_loads(a, JSON_DECODE_ANY, NULL) : NULL, *y = b ? json_loads(b, JSON_DECODE_ANY, NULL) : NULL;
    bool eq = x && y && json_equal(x, y);
    json_decref(x);
    json_decref(y);
    return eq;
}

/* (1) Exact resume at the same world size and stage. */
static void test_exact(int world, int stage, const char *prec, int gas) {
    char dir[600], what[128];
    snprintf(dir, sizeof dir, "%s/exact_%d_%d_%s_%d", root, world, stage, prec, gas);
    snprintf(what, sizeof what, "exact resume, %d rank(s), stage %d, %s, gas %d", world, stage, prec, gas);
    const char *client = "{\"epoch\": 3, \"note\": \"r\\u00e9sum\\u00e9\", \"ids\": [1, 2]}";
    ck_spec_t ref = ck_base_spec(world, stage, prec, gas);
    ref.dropout = 0.1;
    ck_spec_t a = ref, b = ref;
    a.total_steps = CK_SAVE_AT, a.save_dir = dir, a.save_at = CK_SAVE_AT, a.client_state = client;
    b.load_dir = dir, b.seed = 777; /* another init and another RNG: both must come from the checkpoint */
    ck_result_t R[CK_MAX_WORLD], A[CK_MAX_WORLD], B[CK_MAX_WORLD];
    ck_world(&ref, R);
    ck_world(&a, A);
    ck_world(&b, B);
    if (ck_all_ok(what, R, world) && ck_all_ok(what, A, world) && ck_all_ok(what, B, world))
        for (int r = 0; r < world; r++) {
            char w[200];
            snprintf(w, sizeof w, "%s, rank %d", what, r);
            CHECK_MSG(memcmp(A[r].losses, R[r].losses, CK_SAVE_AT * sizeof(double)) == 0, "%s: saving changed the run", w);
            CHECK_MSG(memcmp(B[r].losses + CK_SAVE_AT, R[r].losses + CK_SAVE_AT, (CK_TOTAL - CK_SAVE_AT) * sizeof(double)) == 0,
                      "%s: losses of steps %d-%d differ (step %d: %.17g vs %.17g, step %d: %.17g vs %.17g)", w, CK_SAVE_AT + 1,
                      CK_TOTAL, CK_SAVE_AT + 1, B[r].losses[CK_SAVE_AT], R[r].losses[CK_SAVE_AT], CK_TOTAL,
                      B[r].losses[CK_TOTAL - 1], R[r].losses[CK_TOTAL - 1]);
            const ck_snap_t *s = &A[r].at_save, *l = &B[r].at_load;
            ck_same(w, l->params, s->params, (size_t)s->numel);
            ck_same(w, l->master, s->master, (size_t)s->n_local);
            for (int j = 0; j < s->n_states; j++) ck_same(w, l->states[j], s->states[j], (size_t)s->n_local);
            CHECK_MSG(l->steps == CK_SAVE_AT && l->samples == s->samples && l->micro == s->micro && l->skipped == s->skipped &&
                          l->opt_step == s->opt_step && l->lr == s->lr && l->scale == s->scale && l->rng == s->rng &&
                          l->drop_seed == s->drop_seed && l->drop_offset == s->drop_offset,
                      "%s: counters after load: steps %lld/%lld samples %lld/%lld micro %lld/%lld skipped %lld/%lld "
                      "opt %lld/%lld lr %g/%g scale %g/%g", w, (long long)l->steps, (long long)s->steps,
                      (long long)l->samples, (long long)s->samples, (long long)l->micro, (long long)s->micro,
                      (long long)l->skipped, (long long)s->skipped, (long long)l->opt_step, (long long)s->opt_step,
                      l->lr, s->lr, l->scale, s->scale);
            ck_same(w, B[r].at_end.params, R[r].at_end.params, (size_t)s->numel);
            ck_same(w, B[r].at_end.master, R[r].at_end.master, (size_t)s->n_local);
            for (int j = 0; j < s->n_states; j++) ck_same(w, B[r].at_end.states[j], R[r].at_end.states[j], (size_t)s->n_local);
            CHECK_MSG(json_text_equal(B[r].client_state, client), "%s: client state %s", w,
                      B[r].client_state ? B[r].client_state : "(null)");
        }
    for (int r = 0; r < world; r++) ck_result_free(&R[r]), ck_result_free(&A[r]), ck_result_free(&B[r]);
}

/* (2) Saved by W ranks at stage S, resumed at other world sizes and stages. */
typedef struct { int world, stage; } ck_layout_t;
static void test_reshard(const char *prec, ck_layout_t src, const ck_layout_t *targets, int n_targets) {
    char dir[600], what[160];
    snprintf(dir, sizeof dir, "%s/reshard_%s_%d_%d", root, prec, src.world, src.stage);
    ck_spec_t ref = ck_base_spec(src.world, src.stage, prec, 1);
    ck_spec_t a = ref;
    a.total_steps = CK_SAVE_AT, a.save_dir = dir, a.save_at = CK_SAVE_AT;
    ck_result_t R[CK_MAX_WORLD], A[CK_MAX_WORLD], B[CK_MAX_WORLD];
    ck_world(&ref, R);
    ck_world(&a, A);
    const int W = src.world;
    if (!ck_all_ok("reshard reference", R, W) || !ck_all_ok("reshard save", A, W)) return;
    ck_snap_t *saved[CK_MAX_WORLD];
    for (int r = 0; r < W; r++) saved[r] = &A[r].at_save;
    const int n_states = saved[0]->n_states;
    float *master = ck_assemble(saved, W, -1), *states[CK_MAX_STATES] = {0};
    for (int j = 0; j < n_states; j++) states[j] = ck_assemble(saved, W, j);
    const bool bf16 = strcmp(prec, "fp32") != 0;
    for (int t = 0; t < n_targets; t++) {
        ck_spec_t b = ck_base_spec(targets[t].world, targets[t].stage, prec, 1);
        b.load_dir = dir, b.seed = 4242;
        snprintf(what, sizeof what, "%s: saved by %d ranks at stage %d, loaded by %d at stage %d", prec, W, src.stage,
                 b.world, b.stage);
        ck_world(&b, B);
        if (ck_all_ok(what, B, b.world)) {
            for (int r = 0; r < b.world; r++) {
                char w[200];
                snprintf(w, sizeof w, "%s, rank %d", what, r);
                ck_check_range(w, &B[r].at_load, master, states, n_states);
                ck_same(w, B[r].at_load.params, saved[0]->params, (size_t)saved[0]->numel);
                CHECK_MSG(B[r].at_load.steps == CK_SAVE_AT && B[r].at_load.opt_step == saved[0]->opt_step &&
                              B[r].at_load.lr == saved[0]->lr && B[r].at_load.samples == saved[0]->samples,
                          "%s: counters", w);
            }
            /* fp32: the same sums in another order; bf16: gradients rounded to bf16 per rank
             * before they are summed, so the rounding differs with the world size. */
            double tol = bf16 ? 2e-3 : 1e-5, worst = 0;
            for (int s = CK_SAVE_AT; s < CK_TOTAL; s++) {
                double d = fabs(B[0].global_losses[s] - R[0].global_losses[s]) / fabs(R[0].global_losses[s]);
                worst = d > worst ? d : worst;
                CHECK_MSG(d <= tol, "%s: step %d loss %.9g vs the uninterrupted %d-rank run's %.9g (%.2e relative)", what,
                          s + 1, B[0].global_losses[s], W, R[0].global_losses[s], d);
            }
            printf("%s: next %d losses within %.2e relative of the uninterrupted run\n", what, CK_TOTAL - CK_SAVE_AT, worst);
        }
        for (int r = 0; r < b.world; r++) ck_result_free(&B[r]);
    }
    free(master);
    for (int j = 0; j < n_states; j++) free(states[j]);
    for (int r = 0; r < W; r++) ck_result_free(&R[r]), ck_result_free(&A[r]);
}

static void write_file(const char *path, const unsigned char *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return;
    fwrite(data, 1, n, f);
    fclose(f);
}

static int run_tool(const char *in, const char *out, const char *opt1, const char *opt2) {
    const char *all[] = {in, out, opt1, opt2};
    char *argv[6] = {"zero-to-fp32"};
    int argc = 1;
    for (int i = 0; i < 4; i++)
        if (all[i]) argv[argc++] = (char *)all[i];
    fflush(stdout);
    return dsc_cmd_zero_to_fp32(argc, argv);
}

/* (3) Every file of a checkpoint flipped, truncated or deleted in turn. */
static void test_corruption(void) {
    char dir[600], tagdir[700], out[700];
    snprintf(dir, sizeof dir, "%s/corrupt", root);
    snprintf(tagdir, sizeof tagdir, "%s/t", dir);
    snprintf(out, sizeof out, "%s/corrupt_out.safetensors", root);
    ck_spec_t a = ck_base_spec(2, 1, "fp32", 1), fresh = ck_base_spec(1, 0, "fp32", 1);
    a.total_steps = 2, a.save_dir = dir, a.save_at = 2, a.save_tag = "t";
    fresh.total_steps = 0, fresh.seed = 99;
    ck_result_t A[2], F, B[2];
    ck_world(&a, A);
    ck_world(&fresh, &F);
    if (!ck_all_ok("corruption: save", A, 2) || !ck_all_ok("corruption: fresh", &F, 1)) return;
    const char *files[] = {"t/rank00000.safetensors", "t/rank00001.safetensors", "t/manifest.json", "t/manifest.xxh3",
                           "latest"};
    DIR *d = opendir(tagdir);
    int n_listed = 0;
    for (struct dirent *de; d && (de = readdir(d)) != NULL;) n_listed += de->d_name[0] != '.';
    if (d) closedir(d);
    CHECK_MSG(n_listed == 4, "the checkpoint directory holds %d files, want the 4 this test corrupts", n_listed);
    ck_spec_t b = fresh;
    b.load_dir = dir, b.load_tag = NULL;
    for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
        char path[800];
        snprintf(path, sizeof path, "%s/%s", dir, files[f]);
        const char *base = strrchr(files[f], '/') ? strrchr(files[f], '/') + 1 : files[f];
        size_t n = 0;
        unsigned char *orig = check_read_file(path, &n);
        if (!orig || n < 1) {
            CHECK_MSG(false, "cannot read %s", path);
            free(orig);
            continue;
        }
        for (int mode = 0; mode < 7; mode++) {
            static const char *names[] = {"first byte flipped", "middle byte flipped", "last byte flipped",
                                          "truncated to half", "last byte cut", "emptied", "deleted"};
            unsigned char *mut = malloc(n);
            memcpy(mut, orig, n);
            size_t len = n;
            if (mode <= 2) mut[mode == 0 ? 0 : mode == 1 ? n / 2 : n - 1] ^= 0x01;
            if (mode == 3) len = n / 2;
            if (mode == 4) len = n - 1;
            if (n == 1 && (mode == 1 || mode == 3 || mode == 4)) {
                free(mut);
                continue; /* the same as another mode for a 1-byte file */
            }
            if (mode == 5) len = 0;
            if (mode == 6)
                unlink(path);
            else
                write_file(path, mut, len);
            ck_world(&b, B);
            CHECK_MSG(B[0].load_rc != DSC_OK && strstr(B[0].error, base),
                      "%s %s: load returned %s: %s", files[f], names[mode], dsc_status_string(B[0].load_rc), B[0].error);
            ck_same("a failed load leaves the parameters untouched", B[0].at_load.params, F.at_end.params,
                    (size_t)F.at_end.numel);
            CHECK(B[0].at_load.steps == 0 && B[0].at_load.rng == F.at_end.rng);
            /* The consolidation tool reads the same files (it tolerates a missing
             * manifest.xxh3, for checkpoints written by other means). */
            int trc = run_tool(dir, out, NULL, NULL);
            bool lenient = mode == 6 && !strcmp(base, "manifest.xxh3");
            CHECK_MSG(lenient ? trc == 0 : trc == 1, "zero-to-fp32 on %s %s exited %d", files[f], names[mode], trc);
            ck_result_free(&B[0]);
            write_file(path, orig, n);
            free(mut);
        }
        free(orig);
    }
    /* Two ranks, rank 1's file corrupt: rank 0 (which never reads it) reports it too. */
    char path[800];
    snprintf(path, sizeof path, "%s/t/rank00001.safetensors", dir);
    size_t n = 0;
    unsigned char *orig = check_read_file(path, &n);
    if (orig) {
        orig[n - 3] ^= 0x40;
        write_file(path, orig, n);
        ck_spec_t b2 = ck_base_spec(2, 1, "fp32", 1);
        b2.load_dir = dir, b2.total_steps = 0;
        ck_world(&b2, B);
        for (int r = 0; r < 2; r++)
            CHECK_MSG(B[r].load_rc == DSC_ERR_CORRUPT && strstr(B[r].error, "rank00001.safetensors") &&
                          (r == 1 || strstr(B[r].error, "rank 1")),
                      "two ranks, rank00001 corrupt: rank %d: %s", r, B[r].error);
        for (int r = 0; r < 2; r++) ck_result_free(&B[r]);
        orig[n - 3] ^= 0x40;
        write_file(path, orig, n);
    }
    free(orig);
    for (int r = 0; r < 2; r++) ck_result_free(&A[r]);
    ck_result_free(&F);
}

/* `dsc zero-to-fp32`: the output holds every parameter's fp32 master (or its bf16). */
static void test_zero_to_fp32(void) {
    char dir[600], out[700], out16[700], tagdir[700];
    snprintf(dir, sizeof dir, "%s/z2f", root);
    snprintf(tagdir, sizeof tagdir, "%s/global_step3", dir);
    snprintf(out, sizeof out, "%s/z2f.safetensors", root);
    snprintf(out16, sizeof out16, "%s/z2f_bf16.safetensors", root);
    ck_spec_t a = ck_base_spec(4, 2, "bf16", 1);
    a.total_steps = 3, a.save_dir = dir, a.save_at = 3;
    ck_result_t A[4];
    ck_world(&a, A);
    if (!ck_all_ok("zero-to-fp32: save", A, 4)) return;
    ck_snap_t *snaps[4] = {&A[0].at_save, &A[1].at_save, &A[2].at_save, &A[3].at_save};
    float *master = ck_assemble(snaps, 4, -1);
    CHECK(run_tool(dir, out, NULL, NULL) == 0);
    CHECK(run_tool(tagdir, out16, "--dtype", "bf16") == 0);
    CHECK(run_tool(dir, out, "--dtype", "fp64") == 2 && run_tool(dir, NULL, NULL, NULL) == 2);
    dsc_ctx_t *ctx = check_ctx_new(1);
    dsc_gpt_config_t gc = DSC_GPT_CONFIG_TINY;
    gc.block_size = 16;
    dsc_gpt_t *gpt = NULL;
    dsc_gpt_new(ctx, &gc, &gpt);
    for (int which = 0; which < 2; which++) {
        dsc_st_reader_t *rd = NULL;
        char err[512];
        CHECK_OK(dsc_st_reader_open(which ? out16 : out, &rd, err, sizeof err));
        if (!rd) continue;
        CHECK(dsc_st_reader_count(rd) == dsc_model_param_count(gpt->model));
        CHECK(dsc_st_reader_metadata(rd, "format") && !strcmp(dsc_st_reader_metadata(rd, "format"), "pt"));
        for (int i = 0; i < dsc_model_param_count(gpt->model); i++) {
            dsc_param_info_t p;
            dsc_model_param_info(gpt->model, i, &p);
            int k = dsc_st_reader_find(rd, p.name);
            dsc_st_tensor_info_t ti;
            if (k < 0 || dsc_st_reader_info(rd, k, &ti) != DSC_OK) {
                CHECK_MSG(false, "zero-to-fp32 output lacks %s", p.name);
                continue;
            }
            CHECK(ti.dtype == (which ? DSC_BF16 : DSC_F32) && ti.ndim == p.ndim && ti.numel == p.numel);
            float *got = malloc(sizeof(float) * (size_t)p.numel);
            CHECK_OK(dsc_st_read(rd, k, 0, p.numel, got, DSC_F32, err, sizeof err));
            /* fp32: the master; bf16: exactly the working copy the run trained with. */
            ck_same(p.name, got, which ? A[0].at_save.params + p.offset : master + p.offset, (size_t)p.numel);
            free(got);
        }
        dsc_st_reader_close(rd);
    }
    dsc_gpt_free(gpt);
    dsc_ctx_free(ctx);
    free(master);
    for (int r = 0; r < 4; r++) ck_result_free(&A[r]);
}

/* Collective misuse: one rank saves alone; ranks disagree on the tag; mid-accumulation. */
static void test_misuse(void) {
    char dir[600], latest[700];
    ck_result_t R[2];
    /* Rank 1 never calls the save (it frees its engine and communicator). */
    snprintf(dir, sizeof dir, "%s/subset", root);
    ck_spec_t s = ck_base_spec(2, 1, "fp32", 1);
    s.total_steps = 1, s.save_dir = dir, s.save_at = 1, s.skip_save_ranks = 2, s.timeout = 2;
    ck_world(&s, R);
    CHECK_MSG(R[0].save_rc == DSC_ERR_TIMEOUT && strstr(R[0].error, "dsc_save_checkpoint") &&
                  strstr(R[0].error, "rank 1") && strstr(R[0].error, "collective"),
              "save on rank 0 only: %s: %s", dsc_status_string(R[0].save_rc), R[0].error);
    snprintf(latest, sizeof latest, "%s/latest", dir);
    CHECK_MSG(access(latest, F_OK) != 0, "a save on one rank must not leave a checkpoint");
    for (int r = 0; r < 2; r++) ck_result_free(&R[r]);
    /* Rank 1 trains on instead: the collectives disagree, both ranks fail. */
    s.total_steps = 2, s.save_at = 1;
    ck_world(&s, R);
    CHECK_MSG(R[0].save_rc != DSC_OK && strstr(R[0].error, "dsc_save_checkpoint") && strstr(R[0].error, "rank 1"),
              "save on rank 0 while rank 1 trains: %s", R[0].error);
    CHECK_MSG(R[1].rc != 0, "rank 1's training must fail too");
    for (int r = 0; r < 2; r++) ck_result_free(&R[r]);
    /* Tags that differ across ranks: Fail rejects, Warn uses rank 0's. */
    snprintf(dir, sizeof dir, "%s/tags", root);
    s = ck_base_spec(2, 0, "fp32", 1);
    s.total_steps = 1, s.save_dir = dir, s.save_at = 1, s.save_tag = "x", s.tag_per_rank = true;
    s.extra = "\"checkpoint\": {\"tag_validation\": \"Fail\"}, ";
    ck_world(&s, R);
    for (int r = 0; r < 2; r++)
        CHECK_MSG(R[r].save_rc == DSC_ERR_INVALID && strstr(R[r].error, "not consistent"), "tag Fail, rank %d: %s", r,
                  R[r].error);
    for (int r = 0; r < 2; r++) ck_result_free(&R[r]);
    s.extra = "\"checkpoint\": {\"tag_validation\": \"Warn\"}, ";
    ck_world(&s, R);
    snprintf(latest, sizeof latest, "%s/x_r0/manifest.json", dir);
    CHECK_MSG(R[0].save_rc == DSC_OK && R[1].save_rc == DSC_OK && access(latest, F_OK) == 0, "tag Warn: %s %s",
              R[0].error, R[1].error);
    for (int r = 0; r < 2; r++) ck_result_free(&R[r]);
    /* Invalid client state: every rank fails, nothing written. */
    snprintf(dir, sizeof dir, "%s/badclient", root);
    s = ck_base_spec(2, 2, "fp32", 1);
    s.total_steps = 1, s.save_dir = dir, s.save_at = 1, s.client_state = "{\"a\": ";
    ck_world(&s, R);
    for (int r = 0; r < 2; r++)
        CHECK_MSG(R[r].save_rc == DSC_ERR_INVALID && strstr(R[r].error, "client_state"), "bad client state, rank %d: %s",
                  r, R[r].error);
    for (int r = 0; r < 2; r++) ck_result_free(&R[r]);
    /* In the middle of an accumulation window. */
    ck_rank_t k;
    char err[1024];
    s = ck_base_spec(1, 0, "fp32", 2);
    if (ck_rank_new(&s, NULL, 0, &k, err, sizeof err) == DSC_OK) {
        int32_t x[12 * 16], y[12 * 16];
        for (int i = 0; i < 12; i++) check_markov_row(0, 0, i, x + i * 16, y + i * 16, 16);
        dsc_tensor_t *loss = NULL;
        dsc_gpt_forward(k.ctx, k.gpt, x, y, 12, 16, NULL, &loss);
        dsc_backward(k.engine, loss);
        dsc_step(k.engine);
        CHECK(dsc_save_checkpoint(k.engine, dir, NULL, NULL, true) == DSC_ERR_MISUSE &&
              strstr(dsc_engine_errmsg(k.engine), "accumulation"));
        CHECK(dsc_save_checkpoint(k.engine, "", NULL, NULL, true) == DSC_ERR_INVALID);
        CHECK(dsc_save_checkpoint(k.engine, dir, "bad/tag", NULL, true) == DSC_ERR_INVALID);
        CHECK(dsc_load_checkpoint(k.engine, root, NULL, true, true, false, NULL) == DSC_ERR_IO &&
              strstr(dsc_engine_errmsg(k.engine), "latest"));
        CHECK(dsc_load_checkpoint(k.engine, dir, "nope", true, true, false, NULL) == DSC_ERR_IO);
    } else {
        CHECK_MSG(false, "engine: %s", err);
    }
    ck_rank_free(&k);
}

/* Load flags, another optimizer, another model. */
static void test_flags(void) {
    char dir[600];
    snprintf(dir, sizeof dir, "%s/flags", root);
    ck_spec_t a = ck_base_spec(2, 1, "bf16", 1);
    a.total_steps = 6, a.save_dir = dir, a.save_at = 6;
    ck_result_t A[2], B[2], F;
    ck_world(&a, A);
    if (!ck_all_ok("flags: save", A, 2)) return;
    ck_spec_t fresh = ck_base_spec(1, 0, "bf16", 1);
    fresh.total_steps = 0, fresh.seed = 5;
    ck_world(&fresh, &F);
    /* Weights only: counters, optimizer and scheduler stay fresh. */
    ck_spec_t b = fresh;
    b.load_dir = dir, b.module_only = true;
    ck_world(&b, B);
    if (ck_all_ok("module only", B, 1)) {
        ck_same("module only: weights", B[0].at_load.params, A[0].at_save.params, (size_t)A[0].at_save.numel);
        CHECK(B[0].at_load.steps == 0 && B[0].at_load.opt_step == 0 && B[0].at_load.lr == F.at_end.lr &&
              B[0].at_load.rng == F.at_end.rng);
        for (int64_t i = 0; i < B[0].at_load.n_local; i++)
            if (B[0].at_load.states[0][i] != 0.0f) {
                CHECK_MSG(false, "module only: optimizer state must stay zero");
                break;
            }
        CHECK(B[0].client_state == NULL);
    }
    ck_result_free(&B[0]);
    /* No optimizer state: weights, counters, scheduler and RNG. */
    b.module_only = false, b.load_opt = false;
    ck_world(&b, B);
    if (ck_all_ok("no optimizer state", B, 1))
        CHECK(B[0].at_load.steps == 6 && B[0].at_load.opt_step == 0 && B[0].at_load.lr == A[0].at_save.lr &&
              B[0].at_load.rng == A[0].at_save.rng);
    ck_result_free(&B[0]);
    /* Another optimizer type: refused with its optimizer state, fine without. */
    b.load_opt = true, b.optimizer = "{\"type\": \"SGD\", \"params\": {\"lr\": 0.01, \"momentum\": 0.9}}";
    b.extra = "\"zero_allow_untested_optimizer\": true, ";
    ck_world(&b, B);
    CHECK_MSG(B[0].load_rc == DSC_ERR_INVALID && strstr(B[0].error, "adamw") && strstr(B[0].error, "SGD"),
              "adamw checkpoint into SGD: %s", B[0].error);
    ck_same("a refused load leaves the weights", B[0].at_load.params, F.at_end.params, (size_t)F.at_end.numel);
    ck_result_free(&B[0]);
    b.load_opt = false;
    ck_world(&b, B);
    if (ck_all_ok("SGD, weights only", B, 1))
        ck_same("SGD, weights", B[0].at_load.params, A[0].at_save.params, (size_t)A[0].at_save.numel);
    ck_result_free(&B[0]);
    /* Another model (wider): refused, naming a parameter. */
    ck_rank_t k;
    char err[1024];
    dsc_ctx_options_t co = DSC_CTX_OPTIONS_INIT;
    co.log_fn = ck_quiet;
    memset(&k, 0, sizeof k);
    dsc_ctx_new(&co, &k.ctx);
    dsc_gpt_config_t gc = DSC_GPT_CONFIG_TINY;
    gc.block_size = 16, gc.n_layer = 3;
    dsc_gpt_new(k.ctx, &gc, &k.gpt);
    dsc_engine_options_t o = DSC_ENGINE_OPTIONS_INIT;
    o.config_json = "{\"train_batch_size\": 2, \"optimizer\": {\"type\": \"AdamW\"}}";
    dsc_initialize_result_t init = {0};
    if (dsc_initialize(k.gpt->model, &o, &init, err, sizeof err) == DSC_OK) {
        k.engine = init.engine;
        CHECK(dsc_load_checkpoint(k.engine, dir, NULL, true, false, false, NULL) == DSC_ERR_INVALID &&
              strstr(dsc_engine_errmsg(k.engine), "h.2."));
    }
    ck_rank_free(&k);
    for (int r = 0; r < 2; r++) ck_result_free(&A[r]);
    ck_result_free(&F);
}

/* Issue 14 item 2: a resume whose GAS differs from the saving run's (same train_batch_size
 * 12: another micro batch, or another world size) starts at an accumulation boundary of the
 * new run: micro_steps is rounded up to a multiple of its GAS, every update comes after a
 * whole window of GAS micro-batches, and saving works at every boundary. */
static void test_new_accumulation(int saved_world) {
    char dir[600];
    snprintf(dir, sizeof dir, "%s/new_gas_w%d", root, saved_world);
    ck_result_t A[2], B[1];
    ck_spec_t a = ck_base_spec(saved_world, 0, "fp32", 1);
    a.total_steps = 3, a.save_dir = dir, a.save_at = 3; /* 3 micro-steps of 12 rows */
    ck_world(&a, A);
    if (!ck_all_ok("saved with GAS 1", A, saved_world)) return;
    ck_spec_t b = ck_base_spec(1, 0, "fp32", 2);
    b.rows = 6; /* 12 = 6 rows x GAS 2 on one rank */
    b.load_dir = dir, b.total_steps = 6, b.save_dir = dir, b.save_at = 6;
    ck_world(&b, B);
    ck_all_ok("resumed with GAS 2", B, 1);
    CHECK_MSG(B[0].at_load.steps == 3 && B[0].at_load.micro == 4, "at load: %lld steps, %lld micro-steps (want 3, 4)",
              (long long)B[0].at_load.steps, (long long)B[0].at_load.micro);
    CHECK_MSG(B[0].at_end.steps == 6 && B[0].at_end.micro == 10, "at the end: %lld steps, %lld micro-steps (want 6, 10)",
              (long long)B[0].at_end.steps, (long long)B[0].at_end.micro);
    for (int r = 0; r < saved_world; r++) ck_result_free(&A[r]);
    ck_result_free(&B[0]);
    /* Micro-batch by micro-batch: the first dsc_step after the load is not a boundary, the
     * second is, and each updates global_steps only then. */
    ck_rank_t k;
    char err[1024];
    if (ck_rank_new(&b, NULL, 0, &k, err, sizeof err) != DSC_OK ||
        dsc_load_checkpoint(k.engine, dir, "global_step3", true, true, false, NULL) != DSC_OK) {
        CHECK_MSG(false, "engine or load: %s %s", err, k.engine ? dsc_engine_errmsg(k.engine) : "");
        ck_rank_free(&k);
        return;
    }
    for (int micro = 0; micro < 4; micro++) {
        int32_t x[6 * 16], y[6 * 16];
        for (int i = 0; i < 6; i++) check_markov_row(3 + micro / 2, micro % 2, i, x + i * 16, y + i * 16, 16);
        dsc_tensor_t *loss = NULL;
        dsc_gpt_forward(k.ctx, k.gpt, x, y, 6, 16, NULL, &loss);
        CHECK(dsc_backward(k.engine, loss) == DSC_OK);
        CHECK_MSG(dsc_is_gradient_accumulation_boundary(k.engine) == (micro % 2 == 1),
                  "micro-batch %d after the load: boundary %d", micro, dsc_is_gradient_accumulation_boundary(k.engine));
        CHECK(dsc_step(k.engine) == DSC_OK);
        CHECK_MSG(dsc_engine_global_steps(k.engine) == 3 + (micro + 1) / 2, "after micro-batch %d: global_steps %lld",
                  micro, (long long)dsc_engine_global_steps(k.engine));
    }
    ck_rank_free(&k);
}

int main(void) {
    snprintf(root, sizeof root, "%s/dsc_engine_ckpt_XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(root)) {
        perror("mkdtemp");
        return 1;
    }
    test_exact(1, 0, "fp32", 2);
    test_exact(1, 0, "bf16", 1);
    test_exact(1, 0, "fp16", 2);
    test_exact(2, 1, "bf16", 2);
    test_exact(2, 2, "fp32", 1);
    test_exact(3, 0, "fp32", 1);
    test_exact(4, 2, "bf16", 1);
    test_exact(2, 3, "fp32", 2);
    test_exact(3, 3, "bf16", 1);
    const ck_layout_t from_stage2[] = {{2, 1}, {1, 0}, {3, 2}, {2, 3}}, from_stage3[] = {{2, 2}, {4, 3}, {1, 0}};
    test_reshard("fp32", (ck_layout_t){4, 2}, from_stage2, 4);
    test_reshard("bf16", (ck_layout_t){4, 2}, from_stage2, 4);
    test_reshard("fp32", (ck_layout_t){3, 3}, from_stage3, 3);
    test_corruption();
    test_zero_to_fp32();
    test_misuse();
    test_flags();
    test_new_accumulation(1);
    test_new_accumulation(2);
    check_rm_tree(root);
    return check_finish("test_engine_ckpt");
}

#endif /* CKPT_HARNESS_ONLY */

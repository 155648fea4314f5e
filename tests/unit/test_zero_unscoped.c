/* A model of the user's own that uses its parameters without parameter scopes (plain
 * dsc_param_compute): under ZeRO 0-3 on 2 and 3 fake ranks it must train exactly
 * like one rank at stage 0 on the whole batch (docs/zero.md: an unscoped parameter is held,
 * with a gradient buffer, until the end of the micro-step). Each rank first runs an
 * evaluation forward without gradients, which holds parameters without gradient buffers;
 * the training step after it must still give them one. With overlap_comm (on at stage 3)
 * their gradient sends start at the end of the backward and must land before the step.
 * Then dsc_engine_release_params with a modifier rank makes that rank's edit everyone's. */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

enum { IN = 6, HID = 8, OUT = 3, ROWS = 2, STEPS = 10 };

typedef struct {
    int stage, world, rank;
    dsc_comm_fake_world_t *fw;
    float params[IN * HID + HID + HID * OUT];
    double first_eval;
    bool edit_seen; /* after an edit by the last rank through release_params(modifier) */
    int rc;
    char error[512];
} run_t;

static void quiet(dsc_log_level_t level, const char *message, void *user) { (void)level, (void)message, (void)user; }

/* Row r of the data of step s: x in [-1, 1], t a fixed function of x. */
static void row(int s, int r, float *x, float *t) {
    for (int i = 0; i < IN; i++) x[i] = (float)sin(0.37 * (s * 31 + r * 7 + i) + 0.1);
    for (int j = 0; j < OUT; j++) t[j] = (float)cos(0.5 * x[j] - 0.3 * x[j + 2]);
}

/* y = relu(x W1^T + b1) W2^T, no scopes. */
static dsc_tensor_t *loss_of(dsc_ctx_t *ctx, dsc_tensor_t *const *w, int s, int r0, int n) {
    float xs[16 * IN], ts[16 * OUT];
    for (int r = 0; r < n; r++) row(s, r0 + r, xs + r * IN, ts + r * OUT);
    dsc_tensor_t *x = dsc_tensor_new_2d(ctx, DSC_F32, n, IN), *t = dsc_tensor_new_2d(ctx, DSC_F32, n, OUT);
    dsc_tensor_copy_from_f32(x, xs, (size_t)n * IN);
    dsc_tensor_copy_from_f32(t, ts, (size_t)n * OUT);
    dsc_tensor_t *h = dsc_bias_add(ctx, dsc_matmul(ctx, x, dsc_param_compute(ctx, w[0]), false, true),
                                   dsc_param_compute(ctx, w[1]));
    return dsc_mse(ctx, dsc_matmul(ctx, dsc_relu(ctx, h), dsc_param_compute(ctx, w[2]), false, true), t);
}

static void *rank_main(void *arg) {
    run_t *a = arg;
    dsc_ctx_options_t co = DSC_CTX_OPTIONS_INIT;
    co.seed = 77 + (uint64_t)a->rank; /* differs per rank: the engine's broadcast equalises */
    co.log_fn = quiet;
    dsc_ctx_t *ctx = NULL;
    dsc_model_t *m = NULL;
    dsc_comm_t *comm = NULL;
    dsc_initialize_result_t init = {0};
    a->rc = 1;
    dsc_ctx_new(&co, &ctx);
    if (a->fw && dsc_comm_new_fake(ctx, a->fw, a->rank, &comm) != DSC_OK) goto done;
    if (comm) dsc_comm_set_timeout(comm, 60);
    dsc_model_new(ctx, &m);
    int64_t s1[2] = {HID, IN}, s2[1] = {HID}, s3[2] = {OUT, HID};
    dsc_tensor_t *w[3] = {dsc_model_param(m, "w1", 2, s1, DSC_INIT_NORMAL, 0.4),
                          dsc_model_param(m, "b1", 1, s2, DSC_INIT_NORMAL, 0.1),
                          dsc_model_param(m, "w2", 2, s3, DSC_INIT_NORMAL, 0.4)};
    if (a->rank == 0 || !a->fw) dsc_ctx_seed(ctx, 77);
    const int rows = a->fw ? ROWS : ROWS * a->world;
    char json[512];
    snprintf(json, sizeof json,
             "{\"train_micro_batch_size_per_gpu\": %d, \"gradient_accumulation_steps\": 2,"
             " \"zero_optimization\": {\"stage\": %d, \"stage3_param_persistence_threshold\": 0},"
             " \"optimizer\": {\"type\": \"AdamW\", \"params\": {\"lr\": 0.01, \"weight_decay\": 0.01, \"eps\": 1e-4}}}",
             rows, a->fw ? a->stage : 0);
    dsc_engine_options_t o = DSC_ENGINE_OPTIONS_INIT;
    o.config_json = json;
    o.comm = comm;
    if (dsc_initialize(m, &o, &init, a->error, sizeof a->error) != DSC_OK) goto done;
    const int r0 = a->fw ? a->rank * ROWS : 0;
    dsc_ctx_no_grad_begin(ctx); /* an evaluation first: parameters held without gradients */
    a->first_eval = dsc_tensor_item(loss_of(ctx, w, 99, r0, rows));
    dsc_ctx_no_grad_end(ctx);
    dsc_ctx_end_step(ctx);
    for (int s = 0; s < STEPS; s++)
        for (int micro = 0; micro < 2; micro++)
            if (dsc_backward(init.engine, loss_of(ctx, w, 2 * s + micro, r0, rows)) != DSC_OK ||
                dsc_step(init.engine) != DSC_OK) {
                snprintf(a->error, sizeof a->error, "step %d: %s", s, dsc_engine_errmsg(init.engine));
                goto done;
            }
    if (dsc_engine_gather_params(init.engine, NULL, 0) != DSC_OK) goto done;
    for (int i = 0; i < 3; i++) { /* f32 parameters (no fp16 in the config) */
        dsc_param_info_t info;
        dsc_model_param_info(m, i, &info);
        if (dsc_tensor_dtype(info.tensor) != DSC_F32 ||
            dsc_tensor_to_host(ctx, info.tensor, a->params + info.offset, (size_t)info.numel * sizeof(float)) != DSC_OK)
            goto done;
    }
    dsc_engine_release_params(init.engine, NULL, 0, -1);
    /* An edit on the last rank, made everyone's: gathered again it reads 0.5 everywhere,
     * and after one more step it is still near 0.5 (the fp32 master took it). */
    if (a->fw) {
        dsc_engine_gather_params(init.engine, &w[2], 1);
        float w2[OUT * HID];
        const size_t w2_bytes = sizeof w2;
        if (a->rank == a->world - 1) {
            for (int k = 0; k < OUT * HID; k++) w2[k] = 0.5f;
            if (dsc_tensor_from_host(ctx, w[2], w2, w2_bytes) != DSC_OK) goto done;
        }
        if (dsc_engine_release_params(init.engine, &w[2], 1, a->world - 1) != DSC_OK) goto done;
        dsc_engine_gather_params(init.engine, &w[2], 1);
        a->edit_seen = dsc_tensor_to_host(ctx, w[2], w2, w2_bytes) == DSC_OK;
        for (int k = 0; k < OUT * HID; k++) a->edit_seen &= w2[k] == 0.5f;
        dsc_engine_release_params(init.engine, &w[2], 1, -1);
        /* The fp32 master has it too: one more step (AdamW, lr 0.01) moves it by ~0.01. */
        for (int micro = 0; micro < 2; micro++)
            if (dsc_backward(init.engine, loss_of(ctx, w, 50 + micro, r0, rows)) != DSC_OK ||
                dsc_step(init.engine) != DSC_OK)
                goto done;
        dsc_engine_gather_params(init.engine, &w[2], 1);
        a->edit_seen &= dsc_tensor_to_host(ctx, w[2], w2, w2_bytes) == DSC_OK;
        for (int k = 0; k < OUT * HID; k++) a->edit_seen &= fabsf(w2[k] - 0.5f) < 0.05f;
        dsc_engine_release_params(init.engine, &w[2], 1, -1);
    }
    a->rc = 0;
done:
    dsc_engine_free(init.engine);
    dsc_model_free(m);
    dsc_comm_free(comm);
    dsc_ctx_free(ctx);
    return NULL;
}

int main(void) {
    for (int world = 2; world <= 3; world++) {
        run_t ref = {0, world, 0, NULL, {0}, 0, false, 0, ""};
        rank_main(&ref);
        CHECK_MSG(ref.rc == 0, "reference: %s", ref.error);
        for (int stage = 0; stage <= 3; stage++) {
            dsc_comm_fake_world_t *fw = NULL;
            dsc_comm_fake_world_new(world, &fw);
            run_t runs[3];
            pthread_t th[3];
            for (int r = 0; r < world; r++) {
                runs[r] = (run_t){stage, world, r, fw, {0}, 0, false, 0, ""};
                pthread_create(&th[r], NULL, rank_main, &runs[r]);
            }
            for (int r = 0; r < world; r++) pthread_join(th[r], NULL);
            dsc_comm_fake_world_free(fw);
            for (int r = 0; r < world; r++) {
                char what[96];
                snprintf(what, sizeof what, "unscoped model, ZeRO-%d, %d ranks, rank %d", stage, world, r);
                CHECK_MSG(runs[r].rc == 0, "%s: %s", what, runs[r].error);
                if (runs[r].rc == 0 && ref.rc == 0)
                    check_arrays_close_f32(what, runs[r].params, ref.params, sizeof ref.params / sizeof ref.params[0],
                                           1e-5, 1e-2);
                CHECK_MSG(runs[r].first_eval > 0, "%s: the evaluation forward gave %g", what, runs[r].first_eval);
                CHECK_MSG(runs[r].rc || runs[r].edit_seen, "%s: rank %d's edit (modifier rank) not seen", what, world - 1);
            }
        }
    }
    return check_finish("test_zero_unscoped");
}

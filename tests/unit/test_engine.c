/* The engine: DeepSpeed's backward/step contract, accumulation, clipping, counters,
 * config errors, client overrides, and two engines in one process. */
#include <math.h>
#include <string.h>

#include "check.h"

/* A model y = x W^T (+ b) over a context, with a fixed dataset. */
typedef struct {
    dsc_ctx_t *ctx;
    dsc_model_t *model;
    dsc_linear_t lin;
} toy_t;

static void toy_new(toy_t *m, int in, int out, bool bias, uint64_t seed) {
    m->ctx = check_ctx_new(seed);
    dsc_model_new(m->ctx, &m->model);
    dsc_linear_init(m->model, &m->lin, "lin", in, out, bias, 0.5);
}

static void toy_free(toy_t *m) {
    dsc_model_free(m->model);
    dsc_ctx_free(m->ctx);
}

/* loss = mse(x W^T + b, target) over rows [r0, r0 + n) of the data. */
static dsc_tensor_t *toy_loss(toy_t *m, const float *xs, const float *ts, int r0, int n, int in, int out) {
    dsc_tensor_t *x = dsc_tensor_new_2d(m->ctx, DSC_F32, n, in);
    dsc_tensor_t *t = dsc_tensor_new_2d(m->ctx, DSC_F32, n, out);
    dsc_tensor_copy_from_f32(x, xs + (size_t)r0 * in, (size_t)n * in);
    dsc_tensor_copy_from_f32(t, ts + (size_t)r0 * out, (size_t)n * out);
    return dsc_mse(m->ctx, dsc_linear_forward(m->ctx, &m->lin, x), t);
}

static dsc_engine_t *init_engine(toy_t *m, const char *json) {
    dsc_engine_options_t o = DSC_ENGINE_OPTIONS_INIT;
    o.config_json = json;
    dsc_initialize_result_t r;
    char err[1024];
    dsc_status_t rc = dsc_initialize(m->model, &o, &r, err, sizeof err);
    CHECK_MSG(rc == DSC_OK, "initialize: %s", err);
    return rc == DSC_OK ? r.engine : NULL;
}

static void fill_data(float *xs, float *ts, int rows, int in, int out) {
    for (int i = 0; i < rows * in; i++) xs[i] = (float)sin(0.7 * i + 0.3);
    for (int i = 0; i < rows * out; i++) ts[i] = (float)cos(1.3 * i);
}

/* k micro-batches of b rows with gradient_accumulation_steps k equal one batch of k*b. */
static void test_accumulation_equivalence(void) {
    enum { IN = 5, OUT = 3, B = 4, K = 3, STEPS = 4 };
    float xs[STEPS * K * B * IN], ts[STEPS * K * B * OUT];
    fill_data(xs, ts, STEPS * K * B, IN, OUT);
    toy_t acc, big;
    toy_new(&acc, IN, OUT, true, 11);
    toy_new(&big, IN, OUT, true, 11);
    dsc_engine_t *ea = init_engine(&acc, "{\"train_micro_batch_size_per_gpu\": 4, \"gradient_accumulation_steps\": 3,"
                                         " \"optimizer\": {\"type\": \"AdamW\", \"params\": {\"lr\": 0.01, \"weight_decay\": 0.01}}}");
    dsc_engine_t *eb = init_engine(&big, "{\"train_micro_batch_size_per_gpu\": 12,"
                                         " \"optimizer\": {\"type\": \"AdamW\", \"params\": {\"lr\": 0.01, \"weight_decay\": 0.01}}}");
    if (!ea || !eb) return;
    CHECK(dsc_engine_train_batch_size(ea) == 12 && dsc_engine_gradient_accumulation_steps(ea) == 3);
    for (int s = 0; s < STEPS; s++) {
        for (int k = 0; k < K; k++) {
            CHECK(dsc_is_gradient_accumulation_boundary(ea) == (k == K - 1));
            CHECK_OK(dsc_backward(ea, toy_loss(&acc, xs, ts, (s * K + k) * B, B, IN, OUT)));
            CHECK_OK(dsc_step(ea));
        }
        CHECK_OK(dsc_backward(eb, toy_loss(&big, xs, ts, s * K * B, K * B, IN, OUT)));
        CHECK_OK(dsc_step(eb));
    }
    CHECK(dsc_engine_global_steps(ea) == STEPS && dsc_engine_micro_steps(ea) == STEPS * K);
    CHECK(dsc_engine_global_samples(ea) == STEPS * 12 && dsc_engine_global_samples(eb) == STEPS * 12);
    const float *acc_w = check_f32(acc.lin.weight), *big_w = check_f32(big.lin.weight);
    const float *acc_b = check_f32(acc.lin.bias), *big_b = check_f32(big.lin.bias);
    if (acc_w && big_w && acc_b && big_b) {
        check_arrays_close_f32("accumulated vs big-batch weights", acc_w, big_w, IN * OUT, 1e-6, 1e-6);
        check_arrays_close_f32("accumulated vs big-batch bias", acc_b, big_b, OUT, 1e-6, 1e-6);
    }
    /* The run must actually have moved the weights (a test that cannot fail is a defect). */
    dsc_engine_free(ea);
    dsc_engine_free(eb);
    toy_free(&acc);
    toy_free(&big);
}

/* w = [1, 2], x = [1, 1], target 0: pred 3, loss 9, grad = 2 * 3 * x = [6, 6], norm sqrt(72).
 * SGD lr 0.1: clipped update w -= 0.1 * g * min(1, c / (norm + 1e-6)). */
static void run_clip_case(double clip, double expect_coef) {
    toy_t m;
    toy_new(&m, 2, 1, false, 1);
    char json[256];
    snprintf(json, sizeof json,
             "{\"train_batch_size\": 1, \"gradient_clipping\": %.17g, \"optimizer\": {\"type\": \"SGD\", \"params\": {\"lr\": 0.1}}}",
             clip);
    dsc_engine_t *e = init_engine(&m, json);
    if (!e) return;
    float w[2] = {1, 2};
    CHECK_OK(check_tensor_set(m.lin.weight, w, DSC_F32, 2));
    float x[2] = {1, 1}, t[1] = {0};
    CHECK_OK(dsc_backward(e, toy_loss(&m, x, t, 0, 1, 2, 1)));
    CHECK(dsc_engine_last_loss(e) == 9.0);
    CHECK_OK(dsc_step(e));
    CHECK_OK(check_tensor_get(m.lin.weight, w, DSC_F32, 2));
    double norm = sqrt(72.0);
    CHECK_MSG(check_close(dsc_engine_grad_norm(e), norm, 1e-12, 0), "norm %.17g", dsc_engine_grad_norm(e));
    CHECK_MSG(check_close(dsc_engine_grad_norm_clipped(e), norm * expect_coef, 1e-6, 0), "clipped %.17g",
              dsc_engine_grad_norm_clipped(e));
    float want0 = (float)(1.0 - 0.1 * 6.0 * expect_coef), want1 = (float)(2.0 - 0.1 * 6.0 * expect_coef);
    CHECK_MSG(check_close(w[0], want0, 1e-6, 0) && check_close(w[1], want1, 1e-6, 0), "w = %.9g %.9g want %.9g %.9g",
              w[0], w[1], want0, want1);
    dsc_engine_free(e);
    toy_free(&m);
}

static void test_clipping(void) {
    double norm = sqrt(72.0);
    run_clip_case(1.0, 1.0 / (norm + 1e-6)); /* binds */
    run_clip_case(100.0, 1.0);               /* does not bind */
    run_clip_case(0.0, 1.0);                 /* disabled */
}

static void test_config_errors(void) {
    toy_t m;
    toy_new(&m, 2, 1, false, 1);
    dsc_engine_options_t o = DSC_ENGINE_OPTIONS_INIT;
    dsc_initialize_result_t r;
    char err[1024];
    o.config_json = "{\"train_batch_size\": 8,\n \"bf16\": {\"enabled\": true, \"immediate_grad_update\": true}, \"optimizer\": {\"type\": \"Adam\"}}";
    CHECK(dsc_initialize(m.model, &o, &r, err, sizeof err) == DSC_ERR_UNSUPPORTED);
    CHECK_MSG(strstr(err, "bf16.immediate_grad_update") && strstr(err, ":2:"), "%s", err);
    CHECK(r.engine == NULL);
    o.config_json = "{\"train_batch_size\": 30, \"train_micro_batch_size_per_gpu\": 4, \"gradient_accumulation_steps\": 2}";
    CHECK(dsc_initialize(m.model, &o, &r, err, sizeof err) == DSC_ERR_CONFIG);
    CHECK_MSG(strstr(err, "30 != 4 * 2 * 1"), "%s", err);
    o.config_json = "{\"train_batch_size\": 2, \"optimizer\": {\"type\": \"OneBitAdam\"}}";
    CHECK(dsc_initialize(m.model, &o, &r, err, sizeof err) != DSC_OK);
    CHECK_MSG(strstr(err, "OneBitAdam") || strstr(err, "onebitadam"), "%s", err);
    /* offload_param "cpu" and "nvme" are implemented (test_offload_param, test_offload_param_nvme);
     * an nvme_path that does not exist fails naming the key and the path */
    o.config_json = "{\"train_batch_size\": 2, \"zero_optimization\": {\"stage\": 3, \"offload_param\": {\"device\": \"nvme\", "
                    "\"nvme_path\": \"/nonexistent-dsc-swap\"}}}";
    CHECK(dsc_initialize(m.model, &o, &r, err, sizeof err) == DSC_ERR_IO);
    CHECK_MSG(strstr(err, "zero_optimization.offload_param.nvme_path '/nonexistent-dsc-swap'"), "%s", err);
    CHECK(r.engine == NULL);
    o.config_json = "{\"train_batch_size\": 2}";
    o.config_path = "x.json";
    CHECK(dsc_initialize(m.model, &o, &r, err, sizeof err) == DSC_ERR_INVALID);
    o.config_path = NULL;
    /* No optimizer: initialize works, backward says what is missing. */
    dsc_engine_t *e = init_engine(&m, "{\"train_batch_size\": 1}");
    if (e) {
        float x[2] = {1, 1}, t[1] = {0};
        CHECK(dsc_backward(e, toy_loss(&m, x, t, 0, 1, 2, 1)) == DSC_ERR_MISUSE);
        CHECK(strstr(dsc_engine_errmsg(e), "must provide optimizer") != NULL);
        CHECK(dsc_step(e) == DSC_ERR_MISUSE);
        dsc_engine_free(e);
    }
    toy_free(&m);
}

static double half_lr(int64_t step, size_t group, void *user) {
    (void)group;
    (void)user;
    return 0.5 / (double)(step + 1);
}

static void test_client_overrides_and_two_engines(void) {
    toy_t a, b;
    toy_new(&a, 3, 2, true, 5);
    toy_new(&b, 3, 2, true, 5);
    dsc_client_optimizer_t sgd = {DSC_OPTIM_SGD, dsc_optim_default_params(DSC_OPTIM_SGD)};
    dsc_client_lr_scheduler_t sched = {half_lr, NULL, NULL};
    dsc_engine_options_t o = DSC_ENGINE_OPTIONS_INIT;
    o.config_json = "{\"train_batch_size\": 2, \"gradient_clipping\": 0, \"steps_per_print\": 1,"
                    " \"optimizer\": {\"type\": \"Adam\", \"params\": {\"lr\": 0.1}}}";
    o.client_optimizer = &sgd;
    o.client_lr_scheduler = &sched;
    dsc_initialize_result_t ra, rb;
    char err[512];
    CHECK_OK(dsc_initialize(a.model, &o, &ra, err, sizeof err));
    o.client_optimizer = NULL;
    o.client_lr_scheduler = NULL;
    CHECK_OK(dsc_initialize(b.model, &o, &rb, err, sizeof err));
    if (!ra.engine || !rb.engine) return;
    CHECK(ra.optimizer != NULL && ra.lr_scheduler != NULL && rb.lr_scheduler == NULL && ra.training_dataloader == NULL);
    CHECK(dsc_optim_get_params(ra.optimizer)->type == DSC_OPTIM_SGD);
    CHECK(dsc_optim_get_params(rb.optimizer)->type == DSC_OPTIM_ADAM);
    CHECK(check_close(dsc_engine_lr(ra.engine), 0.5, 1e-15, 0));
    float w0[6];
    CHECK_OK(check_tensor_get(a.lin.weight, w0, DSC_F32, 6));
    float xs[2 * 3], ts[2 * 2];
    fill_data(xs, ts, 2, 3, 2);
    /* Interleave the two engines' steps: their state must not mix. */
    for (int s = 0; s < 3; s++) {
        dsc_tensor_t *la = toy_loss(&a, xs, ts, 0, 2, 3, 2);
        CHECK_OK(dsc_backward(ra.engine, la));
        dsc_tensor_t *lb = toy_loss(&b, xs, ts, 0, 2, 3, 2);
        CHECK_OK(dsc_backward(rb.engine, lb));
        CHECK_OK(dsc_step(ra.engine));
        CHECK_OK(dsc_step(rb.engine));
    }
    CHECK(check_close(dsc_engine_lr(ra.engine), 0.5 / 4, 1e-15, 0));
    CHECK(dsc_engine_global_steps(ra.engine) == 3 && dsc_engine_global_steps(rb.engine) == 3);
    float wa[6], wb[6];
    CHECK_OK(check_tensor_get(a.lin.weight, wa, DSC_F32, 6));
    CHECK_OK(check_tensor_get(b.lin.weight, wb, DSC_F32, 6));
    CHECK(memcmp(w0, wa, sizeof w0) != 0);
    CHECK(memcmp(wa, wb, sizeof w0) != 0);
    char line[256];
    dsc_engine_progress_line(rb.engine, line, sizeof line);
    CHECK_MSG(strcmp(line, "[Rank 0] step=3, skipped=0, lr=[0.1], mom=[(0.9, 0.999)]") == 0, "%s", line);
    CHECK(dsc_step(rb.engine) == DSC_ERR_MISUSE); /* no backward since the last step */
    dsc_engine_free(ra.engine);
    dsc_engine_free(rb.engine);
    CHECK(dsc_ctx_mem_stats(a.ctx, DSC_MEM_PARAMS).live_bytes == 0);
    CHECK(dsc_ctx_mem_stats(a.ctx, DSC_MEM_OPTIM).live_bytes == 0);
    toy_free(&a);
    toy_free(&b);
}

/* The config's "dsc" section reaches the communicator: a 0.5 s timeout makes the
 * initial broadcast fail fast, naming the rank that never came (rank 1 of a fake world of 2
 * never joins); the debug check is switched on. */
static void test_comm_config(void) {
    toy_t m;
    toy_new(&m, 3, 2, true, 5);
    dsc_comm_fake_world_t *w = NULL;
    dsc_comm_t *comm = NULL;
    CHECK_OK(dsc_comm_fake_world_new(2, &w));
    CHECK_OK(dsc_comm_new_fake(m.ctx, w, 0, &comm));
    dsc_engine_options_t o = DSC_ENGINE_OPTIONS_INIT;
    o.comm = comm;
    o.config_json = "{\"train_micro_batch_size_per_gpu\": 1, \"dsc\": {\"comm_timeout\": 0.5, \"comm_debug_check\": true},"
                    " \"optimizer\": {\"type\": \"Adam\"}}";
    dsc_initialize_result_t r;
    char err[2048];
    dsc_status_t rc = dsc_initialize(m.model, &o, &r, err, sizeof err);
    CHECK_MSG(rc != DSC_OK && strstr(err, "rank 1") && strstr(err, "0.5"), "%s", err);
    CHECK(dsc_comm_timeout(comm) == 0.5 && dsc_comm_debug_check(comm));
    dsc_comm_free(comm);
    dsc_comm_fake_world_free(w);
    o.comm = NULL;
    o.config_json = "{\"train_micro_batch_size_per_gpu\": 1, \"dsc\": {\"comm_timeout\": -1}}";
    CHECK(dsc_initialize(m.model, &o, &r, err, sizeof err) != DSC_OK);
    CHECK_MSG(strstr(err, "dsc.comm_timeout"), "%s", err);
    toy_free(&m);
}

int main(void) {
    test_comm_config();
    test_accumulation_equivalence();
    test_clipping();
    test_config_errors();
    test_client_overrides_and_two_engines();
    return check_finish("test_engine");
}

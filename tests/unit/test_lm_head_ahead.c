/* The LM head's loss with its gradient written ahead (src/ops/op_lm_head.c): when the context
 * knows the seed of the coming backward (ctx->loss_grad.seed_hint, set by the engine), the
 * forward writes dlogits, and backward checks the guess. Against the op without a hint, on
 * the context's device (DSC_DEVICE: cpu or guarded), f32 and bf16, one target ignored:
 *   - hint = the backward's seed: the forward took the ahead path (its tape node says so) and
 *     dx, dW and the loss are the same bits;
 *   - hint != the seed (a loss scale that moved after the forward): the same bits as without
 *     a hint at that seed (backward recomputed the logits);
 *   - a loss derived from the op's output (3 x loss; the op is not the backward's root): the
 *     same bits as without a hint;
 * and an engine sets the hint to 1/GAS times the loss scale, and clears it when freed. */
#include <string.h>

#include "check.h"
#include "core/internal.h"

enum { ROWS = 6, C = 8, V = 37 };

typedef struct {
    float loss;
    float dx[ROWS * C], dw[V * C];
    bool ahead; /* the op's node recorded the ahead path */
} lm_run_t;

static void widen(dsc_dtype_t dt, const void *src, float *dst, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        if (dt == DSC_F32) {
            dst[i] = ((const float *)src)[i];
        } else {
            const uint32_t u = (uint32_t)((const uint16_t *)src)[i] << 16;
            memcpy(&dst[i], &u, 4);
        }
    }
}

static void fill(dsc_ctx_t *ctx, dsc_tensor_t *t, dsc_dtype_t dt, int64_t n, uint32_t salt) {
    float f[V * C];
    uint16_t h[V * C];
    for (int64_t i = 0; i < n; i++) {
        f[i] = (float)((int)((i * 2654435761u + salt * 40503u) % 1001) - 500) / 250.0f;
        uint32_t u;
        memcpy(&u, &f[i], 4);
        h[i] = (uint16_t)(u >> 16); /* exact in bf16: the values above have few bits */
    }
    CHECK_OK(dsc_tensor_from_host(ctx, t, dt == DSC_F32 ? (void *)f : (void *)h, (size_t)n * dsc_dtype_size(dt)));
}

/* One forward and backward; derived: backward from 3 x loss. */
static lm_run_t run(dsc_ctx_t *ctx, dsc_dtype_t dt, double hint, double seed, bool derived) {
    lm_run_t r;
    memset(&r, 0, sizeof r);
    ctx->loss_grad.seed_hint = hint;
    dsc_tensor_t *x = dsc_tensor_new_2d(ctx, dt, ROWS, C), *w = dsc_tensor_new_2d(ctx, dt, V, C);
    dsc_tensor_t *tg = dsc_tensor_new_1d(ctx, DSC_I32, ROWS);
    CHECK(x && w && tg);
    fill(ctx, x, dt, ROWS * C, 1);
    fill(ctx, w, dt, V * C, 2);
    const int32_t targets[ROWS] = {3, 36, -1, 0, 17, 3};
    CHECK_OK(dsc_tensor_from_host(ctx, tg, targets, sizeof targets));
    dsc_tensor_set_requires_grad(x, true);
    dsc_tensor_set_requires_grad(w, true);
    dsc_tensor_t *loss = dsc_linear_cross_entropy(ctx, x, w, tg, -1);
    CHECK(loss != NULL);
    for (size_t i = 0; i < ctx->tape_len; i++)
        if (!strcmp(ctx->tape[i]->op, "dsc_linear_cross_entropy")) r.ahead = ctx->tape[i]->i[3] != 0;
    dsc_tensor_t *root = derived ? dsc_scale(ctx, loss, 3.0) : loss;
    CHECK_OK(dsc_autograd_backward_scaled(ctx, root, seed));
    CHECK_OK(dsc_tensor_to_host(ctx, loss, &r.loss, sizeof r.loss));
    uint16_t h[V * C];
    float f[V * C];
    const size_t es = dsc_dtype_size(dt);
    CHECK_OK(dsc_tensor_to_host(ctx, dsc_tensor_grad(x), dt == DSC_F32 ? (void *)f : (void *)h, ROWS * C * es));
    widen(dt, dt == DSC_F32 ? (void *)f : (void *)h, r.dx, ROWS * C);
    CHECK_OK(dsc_tensor_to_host(ctx, dsc_tensor_grad(w), dt == DSC_F32 ? (void *)f : (void *)h, V * C * es));
    widen(dt, dt == DSC_F32 ? (void *)f : (void *)h, r.dw, V * C);
    dsc_ctx_end_step(ctx);
    ctx->loss_grad.seed_hint = 0;
    return r;
}

static bool same(const lm_run_t *a, const lm_run_t *b) {
    return memcmp(&a->loss, &b->loss, sizeof a->loss) == 0 && memcmp(a->dx, b->dx, sizeof a->dx) == 0 &&
           memcmp(a->dw, b->dw, sizeof a->dw) == 0;
}

static void test_op(dsc_dtype_t dt) {
    dsc_ctx_t *ctx = check_ctx_new(1);
    const char *name = dsc_dtype_name(dt);
    const double s = 0.125; /* 1/GAS at GAS 8 */
    const lm_run_t plain = run(ctx, dt, 0, s, false), ahead = run(ctx, dt, s, s, false);
    CHECK_MSG(!plain.ahead && ahead.ahead, "%s: ahead path taken %d without a hint, %d with one", name, plain.ahead,
              ahead.ahead);
    CHECK_MSG(same(&plain, &ahead), "%s: the gradient written ahead differs from backward's", name);
    double n = 0;
    for (int i = 0; i < V * C; i++) n += plain.dw[i] != 0;
    CHECK_MSG(n > V * C / 2, "%s: only %g of %d weight gradients are nonzero", name, n, V * C);
    /* a seed that moved after the forward */
    const lm_run_t plain2 = run(ctx, dt, 0, 2 * s, false), moved = run(ctx, dt, s, 2 * s, false);
    CHECK_MSG(moved.ahead && same(&plain2, &moved), "%s: a wrong seed hint changed the gradient", name);
    CHECK_MSG(!same(&plain, &plain2), "%s: seeds %g and %g gave the same gradient", name, s, 2 * s);
    /* the op's loss is not the root */
    const lm_run_t plain3 = run(ctx, dt, 0, s, true), derived = run(ctx, dt, s, s, true);
    CHECK_MSG(derived.ahead && same(&plain3, &derived), "%s: a derived loss's gradient changed with the hint", name);
    printf("  %s: ahead == backward's bits; wrong seed and derived loss recomputed (loss %.6f)\n", name,
           (double)plain.loss);
    dsc_ctx_free(ctx);
}

/* The engine's hint: 1/GAS x the loss scale (fp16 starts at 2^initial_scale_power), cleared
 * when the engine goes. */
static void test_engine_hint(void) {
    dsc_ctx_t *ctx = check_ctx_new(1);
    dsc_gpt_t *gpt = NULL;
    dsc_gpt_config_t gc = DSC_GPT_CONFIG_TINY;
    CHECK_OK(dsc_gpt_new(ctx, &gc, &gpt));
    dsc_engine_options_t eo = DSC_ENGINE_OPTIONS_INIT;
    eo.config_json = "{\"train_batch_size\": 8, \"train_micro_batch_size_per_gpu\": 2, \"fp16\": {\"enabled\": true, "
                     "\"initial_scale_power\": 10}, \"optimizer\": {\"type\": \"AdamW\", \"params\": {\"lr\": 0.001}}}";
    dsc_initialize_result_t init = {0};
    char err[512];
    CHECK_OK(dsc_initialize(gpt->model, &eo, &init, err, sizeof err));
    CHECK_MSG(ctx->loss_grad.seed_hint == 1024.0 / 4, "engine hint %g, want 2^10 / 4", ctx->loss_grad.seed_hint);
    dsc_engine_free(init.engine);
    CHECK_MSG(ctx->loss_grad.seed_hint == 0, "hint %g after the engine was freed", ctx->loss_grad.seed_hint);
    dsc_gpt_free(gpt);
    dsc_ctx_free(ctx);
}

int main(void) {
    test_op(DSC_F32);
    test_op(DSC_BF16);
    test_engine_hint();
    return check_finish("test_lm_head_ahead");
}

/* Gradients of activations given back during backward (ctx->release_grads, the gradient
 * pool of src/core/grad_pool.c; the engine's dsc_backward turns it on): the parameter
 * gradients are the same bits as with every gradient kept to the end of the step, with and
 * without an activation checkpoint around part of the chain; the activation peak falls by
 * the gradients that no longer coexist (hand-counted below); the loss's gradient stays
 * valid after backward; intermediate gradients are gone (released) or kept (plain autograd). */
#include <string.h>

#include "check.h"
#include "core/internal.h"
#include "dsc/checkpoint.h"

enum { R = 16, C = 32, DEPTH = 6 };

typedef struct {
    dsc_tensor_t *w;
} chain_t;

/* DEPTH layers h = tanh(h W) on [R, C]: every layer records two [R, C] outputs. */
static dsc_tensor_t *layers(dsc_ctx_t *ctx, dsc_tensor_t *w, dsc_tensor_t *h, int n) {
    for (int l = 0; l < n; l++) h = dsc_tanh(ctx, dsc_matmul(ctx, h, w, false, false));
    return h;
}

static dsc_status_t middle(dsc_ctx_t *ctx, void *user, dsc_tensor_t *const *in, dsc_tensor_t **out) {
    const chain_t *c = user;
    out[0] = layers(ctx, c->w, in[0], 2);
    return dsc_ctx_status(ctx);
}

typedef struct {
    float gw[C * C];
    size_t peak;
    bool intermediate_grad; /* the first layer's output still has a gradient after backward */
    bool loss_grad_ok;
} result_t;

static void run(bool release, bool checkpoint, result_t *res) {
    dsc_ctx_t *ctx = check_ctx_new(5);
    static float wdata[C * C], gbuf[C * C];
    for (int i = 0; i < C * C; i++) wdata[i] = 0.2f * (float)((i * 37 % 29) - 14) / 14.0f;
    memset(gbuf, 0, sizeof gbuf);
    int64_t ws[2] = {C, C};
    dsc_tensor_t *w = dsc_tensor_wrap(ctx, DSC_F32, 2, ws, wdata, gbuf, true);
    dsc_tensor_t *x = dsc_tensor_new_2d(ctx, DSC_F32, R, C);
    float xs[R * C];
    for (int i = 0; i < R * C; i++) xs[i] = (float)((i * 13 % 17) - 8) / 8.0f;
    CHECK_OK(check_tensor_set(x, xs, DSC_F32, R * C));
    dsc_ctx_mem_reset_peaks(ctx);
    chain_t c = {w};
    dsc_tensor_t *h1 = dsc_tanh(ctx, dsc_matmul(ctx, x, w, false, false));
    dsc_tensor_t *h = h1;
    if (checkpoint) {
        dsc_tensor_t *y = NULL;
        CHECK_OK(dsc_checkpoint(ctx, "middle", middle, &c, 1, &h, 1, &y));
        h = y;
    } else {
        h = layers(ctx, w, h, 2);
    }
    h = layers(ctx, w, h, DEPTH - 3);
    dsc_tensor_t *loss = dsc_sum(ctx, h);
    ctx->release_grads = release;
    CHECK_OK(dsc_autograd_backward(ctx, loss));
    ctx->release_grads = false;
    res->peak = dsc_ctx_mem_stats(ctx, DSC_MEM_ACTIVATIONS).peak_bytes;
    res->intermediate_grad = dsc_tensor_grad(h1) != NULL;
    res->loss_grad_ok = dsc_tensor_grad(loss) && check_tensor_at(dsc_tensor_grad(loss), 0) == 1.0;
    memcpy(res->gw, gbuf, sizeof gbuf);
    dsc_ctx_end_step(ctx);
    /* a second step reuses the pool's blocks and gives the same gradient */
    CHECK(dsc_ctx_mem_stats(ctx, DSC_MEM_ACTIVATIONS).live_bytes == 0);
    dsc_tensor_free_persistent(ctx, w);
    dsc_ctx_free(ctx);
}

/* One backward of sum(tanh(x W)) on [rows, C] with the pool on. */
static void pooled_step(dsc_ctx_t *ctx, dsc_tensor_t *w, int64_t rows, bool grads) {
    dsc_tensor_t *x = dsc_tensor_new_2d(ctx, DSC_F32, rows, C);
    if (!grads) dsc_ctx_no_grad_begin(ctx);
    dsc_tensor_t *loss = dsc_sum(ctx, dsc_tanh(ctx, dsc_matmul(ctx, x, w, false, false)));
    if (!grads) dsc_ctx_no_grad_end(ctx);
    ctx->release_grads = true;
    if (grads) CHECK_OK(dsc_autograd_backward(ctx, loss));
    ctx->release_grads = false;
    dsc_ctx_end_step(ctx);
}

/* The pool keeps its blocks across steps, also across a step without gradients (an
 * evaluation), and drops the blocks of a shape that a step with gradients did not use. */
static void pool_across_steps(void) {
    dsc_ctx_t *ctx = check_ctx_new(6);
    static float wdata[C * C], gbuf[C * C];
    int64_t ws[2] = {C, C};
    dsc_tensor_t *w = dsc_tensor_wrap(ctx, DSC_F32, 2, ws, wdata, gbuf, true);
    pooled_step(ctx, w, R, true);
    const size_t held = dsc__grad_pool_held_bytes(ctx);
    CHECK(held == 2 * R * C * sizeof(float)); /* the tanh output's and the matmul output's */
    pooled_step(ctx, w, R, true);
    CHECK(dsc__grad_pool_held_bytes(ctx) == held); /* reused, not grown */
    pooled_step(ctx, w, R, false);
    CHECK(dsc__grad_pool_held_bytes(ctx) == held); /* an evaluation frees nothing */
    pooled_step(ctx, w, 2 * R, true);
    CHECK(dsc__grad_pool_held_bytes(ctx) == 2 * held); /* the old shape's blocks went back */
    CHECK(dsc_ctx_mem_stats(ctx, DSC_MEM_ACTIVATIONS).live_bytes == 0);
    dsc_tensor_free_persistent(ctx, w);
    dsc_ctx_free(ctx);
}

int main(void) {
    pool_across_steps();
    static result_t keep, rel, keep_ck, rel_ck;
    run(false, false, &keep);
    run(true, false, &rel);
    run(false, true, &keep_ck);
    run(true, true, &rel_ck);
    CHECK(memcmp(keep.gw, rel.gw, sizeof keep.gw) == 0);
    CHECK(memcmp(keep.gw, keep_ck.gw, sizeof keep.gw) == 0);
    CHECK(memcmp(keep.gw, rel_ck.gw, sizeof keep.gw) == 0);
    bool nonzero = false;
    for (int i = 0; i < C * C; i++) nonzero |= keep.gw[i] != 0;
    CHECK(nonzero);
    CHECK(keep.intermediate_grad && keep_ck.intermediate_grad);
    CHECK(!rel.intermediate_grad && !rel_ck.intermediate_grad);
    CHECK(keep.loss_grad_ok && rel.loss_grad_ok && rel_ck.loss_grad_ok);
    /* Kept: 2 * DEPTH [R, C] gradients (with their 64-byte-rounded headers) stay to the end.
     * Released: at most two [R, C] gradients coexist (an op's output and its input), no
     * header in the arena. The forward is the same, so the peaks differ by exactly this. */
    const size_t act = R * C * sizeof(float), hdr = (sizeof(dsc_tensor_t) + 63) / 64 * 64;
    CHECK_MSG(keep.peak - rel.peak == 2 * DEPTH * (act + hdr) - 2 * act, "kept %zu released %zu", keep.peak, rel.peak);
    CHECK_MSG(rel_ck.peak < keep_ck.peak, "kept %zu released %zu", keep_ck.peak, rel_ck.peak);
    return check_finish("test_grad_release");
}

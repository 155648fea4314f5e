/* Activation checkpointing (dsc/checkpoint.h): gradients with checkpointing are bitwise
 * those without (small GPT in fp32 with dropout, tied embeddings, gradient accumulation,
 * nesting, several inputs and outputs, shared and frozen weights; through the engine in
 * fp32 and bf16, on one rank and with ZeRO-2 and ZeRO-3 on 2 fake ranks);
 * finite differences through nested checkpoints; the activation counter's peak falls;
 * the arena's mark/rewind; the config section through the engine; errors. */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/internal.h"
#include "dsc/checkpoint.h"
#include "engine/engine_actckpt.h"
#include "engine/engine_internal.h"
#include "gradcheck.h"

/* ---- arena marks ---------------------------------------------------------------------- */

static void test_arena_mark(void) {
    dsc_ctx_t *ctx = check_ctx_new(1);
    dsc_tensor_t *a = dsc_tensor_new_1d(ctx, DSC_F32, 100);
    size_t live0 = dsc_ctx_mem_stats(ctx, DSC_MEM_ACTIVATIONS).live_bytes;
    dsc_arena_mark_t m = dsc__arena_mark(ctx);
    dsc_tensor_t *b = dsc_tensor_new_1d(ctx, DSC_F32, 1000);
    /* Larger than a chunk: forces new chunks after the mark. */
    dsc_tensor_t *c = dsc_tensor_new_1d(ctx, DSC_F32, 3 << 20);
    CHECK(a && b && c);
    CHECK(dsc__arena_since_mark(ctx, m, b) && dsc__arena_since_mark(ctx, m, dsc_tensor_data(c)));
    CHECK(!dsc__arena_since_mark(ctx, m, a) && !dsc__arena_since_mark(ctx, m, dsc_tensor_data(a)));
    CHECK(dsc_ctx_mem_stats(ctx, DSC_MEM_ACTIVATIONS).live_bytes > live0 + (size_t)(12 << 20));
    CHECK_OK(dsc__arena_rewind(ctx, m));
    CHECK(dsc_ctx_mem_stats(ctx, DSC_MEM_ACTIVATIONS).live_bytes == live0);
    CHECK(!dsc__arena_since_mark(ctx, m, b));
    /* The memory is reused: the next tensor starts where b started. */
    dsc_tensor_t *d = dsc_tensor_new_1d(ctx, DSC_F32, 1000);
    CHECK(d == b);
    /* Headers and data live in separate arenas (host metadata, device data); the mark
     * covers both: the data is reused too, and lies outside the header arena. */
    CHECK(dsc_tensor_data(d) == dsc_tensor_data(b) && dsc_tensor_data(b) != (void *)(b + 1));
    CHECK(check_tensor_at(a, 99) == 0.0);
    /* A mark from before the end of the step is gone. */
    dsc_arena_mark_t m2 = dsc__arena_mark(ctx);
    dsc_ctx_end_step(ctx);
    dsc_tensor_new_1d(ctx, DSC_F32, 10);
    CHECK(dsc__arena_rewind(ctx, m2) == DSC_ERR_MISUSE);
    dsc_ctx_free(ctx);
}

/* ---- a small composite: two inputs, two outputs, a weight shared inside and outside --- */

typedef struct {
    dsc_tensor_t *w;   /* [8, 8], used inside both segments and outside */
    dsc_tensor_t *b;   /* [8] */
    double p;          /* dropout */
    int calls;
} seg_t;

static dsc_status_t seg_fn(dsc_ctx_t *ctx, void *user, dsc_tensor_t *const *in, dsc_tensor_t **out) {
    seg_t *s = user;
    s->calls++;
    dsc_tensor_t *h = dsc_gelu(ctx, dsc_bias_add(ctx, dsc_matmul(ctx, in[0], s->w, false, true), s->b));
    h = dsc_dropout(ctx, h, s->p);
    out[0] = dsc_add(ctx, h, in[1]);
    out[1] = dsc_tanh(ctx, dsc_mul(ctx, h, in[1]));
    return dsc_ctx_status(ctx);
}

/* Two segments in a row, the second's inputs are the first's outputs; with `nested`, one
 * checkpoint wraps both, each also checkpointed. */
typedef struct {
    seg_t *s;
    int mode; /* 0 none, 1 checkpoint each segment, 2 nested */
} chain_t;

static dsc_status_t chain_fn(dsc_ctx_t *ctx, void *user, dsc_tensor_t *const *in, dsc_tensor_t **out) {
    chain_t *c = user;
    dsc_tensor_t *mid[2], *x[2] = {in[0], in[1]};
    if (c->mode == 0) {
        seg_fn(ctx, c->s, x, mid);
        return seg_fn(ctx, c->s, mid, out);
    }
    dsc_status_t rc = dsc_checkpoint(ctx, "seg1", seg_fn, c->s, 2, x, 2, mid);
    if (rc == DSC_OK) rc = dsc_checkpoint(ctx, "seg2", seg_fn, c->s, 2, mid, 2, out);
    return rc;
}

typedef struct {
    float gw[64], gb[8], gx[4 * 8], gy[4 * 8];
    double loss;
    size_t peak_after_forward, live_after_forward;
} small_result_t;

static void small_run(int mode, double p, bool freeze_bias, small_result_t *r) {
    dsc_ctx_t *ctx = check_ctx_new(5);
    float wbuf[64], bbuf[8], gwbuf[64] = {0}, gbbuf[8] = {0};
    for (int i = 0; i < 64; i++) wbuf[i] = (float)(0.3 * sin(1.3 * i));
    for (int i = 0; i < 8; i++) bbuf[i] = (float)(0.1 * cos(0.7 * i));
    seg_t s = {dsc_tensor_wrap(ctx, DSC_F32, 2, (int64_t[]){8, 8}, wbuf, gwbuf, true),
               dsc_tensor_wrap(ctx, DSC_F32, 1, (int64_t[]){8}, bbuf, gbbuf, true), p, 0};
    dsc_tensor_set_requires_grad(s.w, true);
    dsc_tensor_set_requires_grad(s.b, !freeze_bias);
    dsc_tensor_t *x = dsc_tensor_new_2d(ctx, DSC_F32, 4, 8), *y = dsc_tensor_new_2d(ctx, DSC_F32, 4, 8);
    dsc_tensor_fill_uniform(ctx, x, -1, 1);
    dsc_tensor_fill_uniform(ctx, y, -1, 1);
    dsc_tensor_set_requires_grad(x, true);
    dsc_tensor_set_requires_grad(y, true);
    dsc_ctx_seed(ctx, 99);
    dsc_ctx_mem_reset_peaks(ctx);
    chain_t c = {&s, mode == 2 ? 1 : mode};
    dsc_tensor_t *in[2] = {x, y}, *out[2];
    if (mode == 2) CHECK_OK(dsc_checkpoint(ctx, "chain", chain_fn, &c, 2, in, 2, out));
    else CHECK_OK(chain_fn(ctx, &c, in, out));
    r->live_after_forward = dsc_ctx_mem_stats(ctx, DSC_MEM_ACTIVATIONS).live_bytes;
    /* The shared weight is used outside the checkpoints too (a tied head). */
    dsc_tensor_t *head = dsc_matmul(ctx, out[0], s.w, false, false);
    dsc_tensor_t *loss = dsc_add(ctx, dsc_mean(ctx, dsc_mul(ctx, head, head)), dsc_sum(ctx, out[1]));
    r->loss = dsc_tensor_item(loss);
    CHECK_OK(dsc_autograd_backward(ctx, loss));
    CHECK_MSG(dsc_ctx_status(ctx) == DSC_OK, "%s", dsc_ctx_errmsg(ctx));
    memcpy(r->gw, gwbuf, sizeof r->gw);
    memcpy(r->gb, gbbuf, sizeof r->gb);
    CHECK_OK(check_tensor_get(dsc_tensor_grad(x), r->gx, DSC_F32, sizeof r->gx / sizeof r->gx[0]));
    CHECK_OK(check_tensor_get(dsc_tensor_grad(y), r->gy, DSC_F32, sizeof r->gy / sizeof r->gy[0]));
    dsc_ctx_end_step(ctx);
    dsc_tensor_free_persistent(ctx, s.w);
    dsc_tensor_free_persistent(ctx, s.b);
    dsc_ctx_free(ctx);
}

static void test_small_bitwise(void) {
    for (int freeze = 0; freeze < 2; freeze++)
        for (int drop = 0; drop < 2; drop++) {
            double p = drop ? 0.3 : 0.0;
            small_result_t ref, ck, nest;
            small_run(0, p, freeze, &ref);
            small_run(1, p, freeze, &ck);
            small_run(2, p, freeze, &nest);
            const char *what[] = {"per-segment checkpoints", "nested checkpoints"};
            small_result_t *got[] = {&ck, &nest};
            for (int k = 0; k < 2; k++) {
                CHECK_MSG(got[k]->loss == ref.loss, "%s (dropout %g, frozen bias %d): loss %.17g vs %.17g", what[k],
                          p, freeze, got[k]->loss, ref.loss);
                CHECK_MSG(!memcmp(got[k]->gw, ref.gw, sizeof ref.gw), "%s (dropout %g): shared weight grad differs",
                          what[k], p);
                CHECK_MSG(!memcmp(got[k]->gb, ref.gb, sizeof ref.gb), "%s (dropout %g): bias grad differs", what[k], p);
                CHECK_MSG(!memcmp(got[k]->gx, ref.gx, sizeof ref.gx) && !memcmp(got[k]->gy, ref.gy, sizeof ref.gy),
                          "%s (dropout %g): input grads differ", what[k], p);
            }
            if (freeze) {
                float zero[8] = {0};
                CHECK(!memcmp(ck.gb, zero, sizeof zero) && !memcmp(nest.gb, zero, sizeof zero));
            }
            /* Fewer activation bytes stay live after the checkpointed forward. */
            CHECK(ck.live_after_forward < ref.live_after_forward);
            CHECK(nest.live_after_forward < ck.live_after_forward);
        }
}

/* ---- finite differences through nested checkpoints (f64, dropout on) ------------------ */

static dsc_status_t fd_inner(dsc_ctx_t *ctx, void *user, dsc_tensor_t *const *in, dsc_tensor_t **out) {
    (void)user;
    dsc_tensor_t *h = dsc_dropout(ctx, dsc_tanh(ctx, dsc_matmul(ctx, in[0], in[1], false, false)), 0.25);
    out[0] = dsc_layernorm(ctx, h, in[2], NULL, 1e-5);
    return dsc_ctx_status(ctx);
}

static dsc_status_t fd_outer(dsc_ctx_t *ctx, void *user, dsc_tensor_t *const *in, dsc_tensor_t **out) {
    dsc_tensor_t *a[3] = {in[0], in[1], in[2]}, *h = NULL;
    dsc_status_t rc = dsc_checkpoint(ctx, "inner", fd_inner, user, 3, a, 1, &h);
    if (rc != DSC_OK) return rc;
    out[0] = dsc_gelu(ctx, dsc_add(ctx, h, in[0]));
    out[1] = dsc_softmax(ctx, h);
    return dsc_ctx_status(ctx);
}

static dsc_tensor_t *fd_case(dsc_ctx_t *ctx, dsc_tensor_t **in, void *user) {
    dsc_tensor_t *out[2] = {NULL, NULL};
    if (dsc_checkpoint(ctx, "outer", fd_outer, user, 3, in, 2, out) != DSC_OK) return NULL;
    return dsc_add(ctx, out[0], dsc_scale(ctx, out[1], 3.0));
}

static void test_gradcheck_nested(void) {
    gradcheck_input_t ins[3] = {
        {DSC_F64, 2, {3, 5}, true, -1, 1},
        {DSC_F64, 2, {5, 5}, true, -1, 1},
        {DSC_F64, 1, {5}, true, 0.5, 1.5},
    };
    gradcheck("nested checkpoints with dropout", fd_case, NULL, 3, ins, 1e-6, 17);
}

/* ---- odd outputs: an input returned as is, the same tensor twice, an int tensor ------- */

typedef struct {
    dsc_tensor_t *ids;
} odd_t;

static dsc_status_t odd_fn(dsc_ctx_t *ctx, void *user, dsc_tensor_t *const *in, dsc_tensor_t **out) {
    odd_t *o = user;
    dsc_tensor_t *sq = dsc_mul(ctx, in[0], in[0]);
    out[0] = in[0];
    out[1] = sq;
    out[2] = sq;
    out[3] = o->ids;
    return dsc_ctx_status(ctx);
}

static void test_odd_outputs(void) {
    double gx[2][6];
    for (int ck = 0; ck < 2; ck++) {
        dsc_ctx_t *ctx = check_ctx_new(3);
        dsc_tensor_t *x = dsc_tensor_new_2d(ctx, DSC_F64, 2, 3);
        double x0[6];
        for (int i = 0; i < 6; i++) x0[i] = 0.5 + i;
        CHECK_OK(check_tensor_set(x, x0, DSC_F64, 6));
        dsc_tensor_set_requires_grad(x, true);
        odd_t o = {dsc_tensor_new_1d(ctx, DSC_I32, 4)};
        CHECK_OK(check_tensor_set(o.ids, (int32_t[]){0, 0, 7, 0}, DSC_I32, 4));
        dsc_tensor_t *out[4];
        if (ck) CHECK_OK(dsc_checkpoint(ctx, "odd", odd_fn, &o, 1, &x, 4, out));
        else CHECK_OK(odd_fn(ctx, &o, &x, out));
        if (ck) {
            CHECK(out[0] != x && out[3] != o.ids && out[1] != out[2]);
            CHECK(dsc_tensor_requires_grad(out[0]) && dsc_tensor_requires_grad(out[2]) && !dsc_tensor_requires_grad(out[3]));
            CHECK(check_tensor_at(out[3], 2) == 7 && check_tensor_at(out[0], 5) == 5.5);
        }
        /* loss = sum(2 x) + sum(3 x^2) + sum(5 x^2): dx = 2 + 16 x */
        dsc_tensor_t *loss = dsc_add(ctx, dsc_add(ctx, dsc_sum(ctx, dsc_scale(ctx, out[0], 2)), dsc_sum(ctx, dsc_scale(ctx, out[1], 3))),
                                     dsc_sum(ctx, dsc_scale(ctx, out[2], 5)));
        CHECK_OK(dsc_autograd_backward(ctx, loss));
        CHECK_OK(check_tensor_get(dsc_tensor_grad(x), gx[ck], DSC_F64, 6));
        for (int i = 0; i < 6; i++) CHECK(check_close(gx[ck][i], 2 + 16 * (0.5 + i), 1e-14, 1e-12));
        dsc_ctx_free(ctx);
    }
}

/* ---- errors, no-grad, profile --------------------------------------------------------- */

static dsc_status_t failing_fn(dsc_ctx_t *ctx, void *user, dsc_tensor_t *const *in, dsc_tensor_t **out) {
    (void)user;
    dsc_tensor_t *h = dsc_tanh(ctx, in[0]);
    out[0] = dsc_matmul(ctx, h, h, false, false); /* [2, 3] @ [2, 3]: a shape error */
    return dsc_ctx_status(ctx);
}

static dsc_status_t fickle_fn(dsc_ctx_t *ctx, void *user, dsc_tensor_t *const *in, dsc_tensor_t **out) {
    int *calls = user;
    out[0] = (*calls)++ == 0 ? dsc_tanh(ctx, in[0]) : dsc_sum(ctx, in[0]);
    return dsc_ctx_status(ctx);
}

typedef struct {
    char lines[8][256];
    int n;
} log_capture_t;

static void capture(dsc_log_level_t level, const char *message, void *user) {
    log_capture_t *c = user;
    (void)level;
    if (strstr(message, "activation checkpoint") && c->n < 8) snprintf(c->lines[c->n++], 256, "%s", message);
}

static void test_errors_and_modes(void) {
    dsc_ctx_t *ctx = check_ctx_new(1);
    dsc_tensor_t *x = dsc_tensor_new_2d(ctx, DSC_F32, 2, 3), *out = x;
    dsc_tensor_set_requires_grad(x, true);
    size_t live = dsc_ctx_mem_stats(ctx, DSC_MEM_ACTIVATIONS).live_bytes;
    size_t tape = ctx->tape_len;
    CHECK(dsc_checkpoint(ctx, "bad", failing_fn, NULL, 1, &x, 1, &out) == DSC_ERR_INVALID);
    CHECK(out == NULL && strstr(dsc_ctx_errmsg(ctx), "dsc_matmul"));
    CHECK(dsc_ctx_mem_stats(ctx, DSC_MEM_ACTIVATIONS).live_bytes == live && ctx->tape_len == tape);
    /* Sticky: nothing runs after an error. */
    int calls = 0;
    CHECK(dsc_checkpoint(ctx, "after", fickle_fn, &calls, 1, &x, 1, &out) == DSC_ERR_INVALID && calls == 0);
    dsc_ctx_clear_error(ctx);
    CHECK(dsc_checkpoint(ctx, "null", fickle_fn, &calls, 1, (dsc_tensor_t *[]){NULL}, 1, &out) == DSC_ERR_INVALID);
    CHECK(strstr(dsc_ctx_errmsg(ctx), "input 0 is NULL") != NULL);
    dsc_ctx_clear_error(ctx);
    CHECK(dsc_checkpoint(ctx, "n_out", fickle_fn, &calls, 1, &x, 0, &out) == DSC_ERR_INVALID);
    dsc_ctx_clear_error(ctx);
    /* A function that computes something else in the recompute. */
    calls = 0;
    CHECK_OK(dsc_checkpoint(ctx, "fickle", fickle_fn, &calls, 1, &x, 1, &out));
    CHECK(dsc_autograd_backward(ctx, dsc_sum(ctx, out)) == DSC_ERR_MISUSE);
    CHECK(strstr(dsc_ctx_errmsg(ctx), "fickle: the recompute gave output 0") != NULL);
    dsc_ctx_clear_error(ctx);
    dsc_ctx_end_step(ctx);

    /* Under no-grad the function just runs: its own outputs, no node, nothing counted. */
    x = dsc_tensor_new_2d(ctx, DSC_F32, 2, 3);
    dsc_tensor_set_requires_grad(x, true);
    dsc_actckpt_stats_t st0 = dsc_actckpt_stats(ctx);
    dsc_ctx_no_grad_begin(ctx);
    calls = 0;
    CHECK_OK(dsc_checkpoint(ctx, "eval", fickle_fn, &calls, 1, &x, 1, &out));
    CHECK(calls == 1 && !dsc_tensor_requires_grad(out) && ctx->tape_len == 0);
    dsc_ctx_no_grad_end(ctx);
    CHECK(dsc_actckpt_stats(ctx).forwards == st0.forwards);

    /* Profile: one line per forward and per recompute, through the context's log. */
    log_capture_t cap = {0};
    dsc_ctx_set_log(ctx, capture, &cap, DSC_LOG_INFO);
    dsc_actckpt_config_t cfg = DSC_ACTCKPT_CONFIG_INIT;
    cfg.profile = true;
    CHECK_OK(dsc_actckpt_configure(ctx, &cfg));
    CHECK(dsc_actckpt_get_config(ctx).profile);
    CHECK_OK(dsc_checkpoint(ctx, "prof", fd_inner, NULL, 3,
                            (dsc_tensor_t *[]){x, dsc_tensor_new_2d(ctx, DSC_F32, 3, 3), dsc_tensor_new_1d(ctx, DSC_F32, 3)},
                            1, &out));
    CHECK_OK(dsc_autograd_backward(ctx, dsc_sum(ctx, out)));
    CHECK_MSG(cap.n == 2 && strstr(cap.lines[0], "activation checkpoint prof: forward ") &&
                  strstr(cap.lines[1], "activation checkpoint prof: recompute ") && strstr(cap.lines[1], " ms, backward "),
              "%d lines: %s | %s", cap.n, cap.lines[0], cap.lines[1]);
    dsc_actckpt_stats_t st = dsc_actckpt_stats(ctx);
    CHECK(st.forwards == st0.forwards + 1 && st.recomputes >= 1 && st.recompute_seconds > 0);
    cfg.number_checkpoints = -1;
    CHECK(dsc_actckpt_configure(ctx, &cfg) == DSC_ERR_INVALID);
    dsc_ctx_free(ctx);
}

static void test_layer_selection(void) {
    dsc_ctx_t *ctx = check_ctx_new(1);
    int n = 0;
    for (int l = 0; l < 12; l++) n += dsc_actckpt_layer_selected(ctx, 0, l, 12);
    CHECK(n == 0);
    for (int l = 0; l < 12; l++) CHECK(dsc_actckpt_layer_selected(ctx, 2, l, 12) == (l % 2 == 0));
    CHECK(dsc_actckpt_layer_selected(ctx, 1, 11, 12) && !dsc_actckpt_layer_selected(ctx, 1, 12, 12));
    dsc_actckpt_config_t cfg = DSC_ACTCKPT_CONFIG_INIT;
    int want5[12] = {1, 0, 1, 0, 1, 0, 0, 1, 0, 1, 0, 0}; /* floor(j * 12 / 5): 0 2 4 7 9 */
    cfg.number_checkpoints = 5;
    dsc_actckpt_configure(ctx, &cfg);
    for (int l = 0; l < 12; l++) CHECK_MSG(dsc_actckpt_layer_selected(ctx, 0, l, 12) == want5[l], "layer %d", l);
    CHECK(dsc_actckpt_layer_selected(ctx, 3, 3, 12) && !dsc_actckpt_layer_selected(ctx, 3, 2, 12)); /* the model's own wins */
    cfg.number_checkpoints = 40;
    dsc_actckpt_configure(ctx, &cfg);
    for (int l = 0; l < 12; l++) CHECK(dsc_actckpt_layer_selected(ctx, 0, l, 12));
    for (int nc = 1; nc <= 12; nc++) {
        cfg.number_checkpoints = nc;
        dsc_actckpt_configure(ctx, &cfg);
        int cnt = 0;
        for (int l = 0; l < 12; l++) cnt += dsc_actckpt_layer_selected(ctx, 0, l, 12);
        CHECK_MSG(cnt == nc, "number_checkpoints %d selects %d layers", nc, cnt);
    }
    dsc_ctx_free(ctx);
}

/* ---- the GPT: bitwise gradients, accumulation, memory ---------------------------------- */

/* A deterministic batch: a noisy pattern over the vocabulary. */
static void make_batch(int step, int b, int t, int vocab, int32_t *x, int32_t *y) {
    uint64_t st = 0x9E3779B97F4A7C15ull * (uint64_t)(step + 1);
    for (int i = 0; i < b * t; i++) {
        st = st * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = (int32_t)((st >> 33) % (uint64_t)vocab);
        y[i] = (int32_t)((7 * x[i] + 3 + (int)((st >> 20) % 2)) % vocab);
    }
}

typedef struct {
    float *grads;
    int64_t numel;
    double loss[4];
    size_t peak_act;
} gpt_result_t;

/* Trains nothing: accumulates the gradients of `micro` micro-batches (no zeroing between),
 * checkpointing with `every` (or, with every < 0, through the context's number_checkpoints). */
static void gpt_grads(int n_layer, double dropout, int every, int number, int micro, int b, int t, gpt_result_t *r) {
    dsc_ctx_t *ctx = check_ctx_new(42);
    dsc_gpt_config_t gc = DSC_GPT_CONFIG_TINY;
    gc.n_layer = n_layer;
    gc.dropout = dropout;
    gc.block_size = t;
    dsc_gpt_t *gpt = NULL;
    CHECK_OK(dsc_gpt_new(ctx, &gc, &gpt));
    CHECK_OK(dsc_model_alloc(gpt->model, DSC_F32));
    CHECK_OK(dsc_gpt_set_checkpointing(gpt, every));
    if (number) {
        dsc_actckpt_config_t cfg = DSC_ACTCKPT_CONFIG_INIT;
        cfg.number_checkpoints = number;
        dsc_actckpt_configure(ctx, &cfg);
    }
    int32_t *x = malloc(sizeof(int32_t) * (size_t)(b * t)), *y = malloc(sizeof(int32_t) * (size_t)(b * t));
    r->peak_act = 0;
    for (int m = 0; m < micro; m++) {
        make_batch(m, b, t, gc.vocab_size, x, y);
        dsc_ctx_mem_reset_peaks(ctx);
        dsc_tensor_t *loss = NULL;
        CHECK_OK(dsc_gpt_forward(ctx, gpt, x, y, b, t, NULL, &loss));
        r->loss[m] = dsc_tensor_item(loss);
        CHECK_OK(dsc_autograd_backward(ctx, loss));
        size_t peak = dsc_ctx_mem_stats(ctx, DSC_MEM_ACTIVATIONS).peak_bytes;
        if (peak > r->peak_act) r->peak_act = peak;
        dsc_ctx_end_step(ctx);
    }
    r->numel = dsc_model_numel(gpt->model);
    r->grads = malloc(sizeof(float) * (size_t)r->numel);
    CHECK_OK(dsc_ctx_to_host(ctx, r->grads, dsc_model_grads_data(gpt->model), sizeof(float) * (size_t)r->numel));
    free(x);
    free(y);
    dsc_gpt_free(gpt);
    dsc_ctx_free(ctx);
}

static void test_gpt_bitwise(void) {
    const double drops[] = {0.0, 0.1};
    for (int di = 0; di < 2; di++) {
        gpt_result_t ref, got;
        gpt_grads(3, drops[di], 0, 0, 3, 2, 16, &ref);
        const int everys[] = {1, 2, 0};
        for (int e = 0; e < 3; e++) {
            int number = everys[e] == 0 ? 2 : 0; /* the config's route: 2 of 3 blocks */
            gpt_grads(3, drops[di], everys[e], number, 3, 2, 16, &got);
            for (int m = 0; m < 3; m++)
                CHECK_MSG(got.loss[m] == ref.loss[m], "dropout %g, every %d, number %d: micro-batch %d loss %.17g vs %.17g",
                          drops[di], everys[e], number, m, got.loss[m], ref.loss[m]);
            CHECK(got.numel == ref.numel);
            int64_t first = -1;
            for (int64_t i = 0; i < ref.numel && first < 0; i++)
                if (memcmp(&got.grads[i], &ref.grads[i], sizeof(float))) first = i;
            CHECK_MSG(first < 0, "dropout %g, every %d, number %d: accumulated gradients differ first at %lld (%.9g vs %.9g)",
                      drops[di], everys[e], number, (long long)first, first >= 0 ? got.grads[first] : 0.0,
                      first >= 0 ? ref.grads[first] : 0.0);
            free(got.grads);
        }
        free(ref.grads);
    }
}

/* 12 layers at a fixed batch: every block checkpointed keeps < 30% of the activation peak. */
static void test_gpt_memory(void) {
    gpt_result_t none, half, all;
    gpt_grads(12, 0.1, 0, 0, 1, 4, 32, &none);
    gpt_grads(12, 0.1, 2, 0, 1, 4, 32, &half);
    gpt_grads(12, 0.1, 1, 0, 1, 4, 32, &all);
    double r_half = (double)half.peak_act / (double)none.peak_act, r_all = (double)all.peak_act / (double)none.peak_act;
    printf("12-layer tiny GPT, B=4 T=32, dropout 0.1: peak activation bytes none %zu, every 2nd %zu (%.1f%%), every %zu (%.1f%%)\n",
           none.peak_act, half.peak_act, 100 * r_half, all.peak_act, 100 * r_all);
    CHECK_MSG(r_all <= 0.30, "every block: peak %.1f%% of none (want <= 30%%)", 100 * r_all);
    CHECK(r_half < 0.75 && r_half > r_all);
    CHECK(!memcmp(none.grads, all.grads, sizeof(float) * (size_t)none.numel));
    CHECK(!memcmp(none.grads, half.grads, sizeof(float) * (size_t)none.numel));
    free(none.grads);
    free(half.grads);
    free(all.grads);
}

/* ---- through the engine: the config section, fp32 and bf16, ZeRO-2/3 on 2 fake ranks ---- */

static void quiet(dsc_log_level_t level, const char *message, void *user) { (void)level, (void)message, (void)user; }

typedef struct {
    dsc_comm_fake_world_t *world;
    int world_size, rank, number; /* number: activation_checkpointing.number_checkpoints, 0 = absent */
    int stage;                    /* ZeRO stage (with world_size > 1) */
    bool profile, bf16;
    float *params;
    int64_t numel;
    float *grads;     /* this rank's fp32 gradient partition before the last update */
    int64_t n_grads;
    double loss[3];
    uint64_t sent_last_step; /* dsc_engine_comm_bytes_last_step */
    int64_t recomputes;
    int rc;
    char error[512];
} engine_run_t;

static void *engine_rank(void *p) {
    engine_run_t *a = p;
    dsc_ctx_options_t co = DSC_CTX_OPTIONS_INIT;
    co.seed = 700 + (uint64_t)a->rank;
    co.log_fn = quiet;
    dsc_ctx_t *ctx = NULL;
    dsc_ctx_new(&co, &ctx);
    dsc_comm_t *comm = NULL;
    if (a->world) dsc_comm_new_fake(ctx, a->world, a->rank, &comm);
    if (comm) dsc_comm_set_timeout(comm, 60);
    const int t = 16, mb = 2;
    dsc_gpt_config_t gc = DSC_GPT_CONFIG_TINY;
    gc.n_layer = 3;
    gc.block_size = t;
    gc.dropout = 0.1;
    dsc_gpt_t *gpt = NULL;
    dsc_gpt_new(ctx, &gc, &gpt);
    char ac[256] = "";
    if (a->number)
        snprintf(ac, sizeof ac, "\"activation_checkpointing\": {\"number_checkpoints\": %d, \"profile\": %s, "
                 "\"partition_activations\": true, \"cpu_checkpointing\": true, \"synchronize_checkpoint_boundary\": true},",
                 a->number, a->profile ? "true" : "false");
    char json[1024];
    snprintf(json, sizeof json,
             "{\"train_micro_batch_size_per_gpu\": %d, \"gradient_accumulation_steps\": 2, \"gradient_clipping\": 1.0, %s %s"
             " \"zero_optimization\": {\"stage\": %d, \"reduce_bucket_size\": 5000,%s"
             " \"stage3_param_persistence_threshold\": 0, \"stage3_max_reuse_distance\": 0},"
             " \"optimizer\": {\"type\": \"AdamW\", \"params\": {\"lr\": 0.001, \"weight_decay\": 0.01}}}",
             mb, ac, a->bf16 ? "\"bf16\": {\"enabled\": true}," : "", a->world ? a->stage : 0,
             a->world && a->stage == 1 ? " \"overlap_comm\": true," : "");
    dsc_engine_options_t o = DSC_ENGINE_OPTIONS_INIT;
    o.config_json = json;
    o.comm = comm;
    dsc_initialize_result_t init = {0};
    a->rc = dsc_initialize(gpt->model, &o, &init, a->error, sizeof a->error) != DSC_OK;
    /* The engine applies the section at initialisation; applying it again is harmless. */
    if (!a->rc) a->rc = dsc__engine_setup_actckpt(init.engine, a->error, sizeof a->error) != DSC_OK;
    if (!a->rc && a->number && dsc_actckpt_get_config(ctx).number_checkpoints != a->number) a->rc = 1;
    int32_t x[2 * 16], y[2 * 16];
    for (int step = 0; step < 3 && !a->rc; step++) {
        for (int micro = 0; micro < 2 && !a->rc; micro++) {
            make_batch(100 * step + 10 * micro + a->rank, mb, t, gc.vocab_size, x, y);
            dsc_tensor_t *loss = NULL;
            dsc_gpt_forward(ctx, gpt, x, y, mb, t, NULL, &loss);
            if (micro == 0) a->loss[step] = dsc_tensor_item(loss);
            if (dsc_backward(init.engine, loss) != DSC_OK) {
                snprintf(a->error, sizeof a->error, "step %d: %s", step, dsc_engine_errmsg(init.engine));
                a->rc = 1;
                break;
            }
            if (step == 2 && micro == 1) { /* the gradients the last update will use */
                dsc_engine_t *e = init.engine;
                a->n_grads = e->n_local;
                a->grads = malloc(sizeof(float) * (size_t)a->n_grads);
                CHECK_MSG(dsc_ctx_to_host(e->ctx, a->grads, e->plan.stage == 0 && !a->bf16 ? (float *)e->grads : e->acc32,
                                          sizeof(float) * (size_t)a->n_grads) == DSC_OK,
                          "gradients to the host");
            }
            if (dsc_step(init.engine) != DSC_OK) {
                snprintf(a->error, sizeof a->error, "step %d: %s", step, dsc_engine_errmsg(init.engine));
                a->rc = 1;
            }
        }
    }
    a->recomputes = dsc_actckpt_stats(ctx).recomputes;
    if (init.engine) a->sent_last_step = dsc_engine_comm_bytes_last_step(init.engine);
    a->numel = dsc_model_numel(gpt->model);
    a->params = malloc(sizeof(float) * (size_t)a->numel);
    if (!a->rc) dsc_engine_gather_params(init.engine, NULL, 0); /* ZeRO-3: materialise them */
    for (int i = 0; i < dsc_model_param_count(gpt->model); i++) {
        dsc_param_info_t info;
        dsc_model_param_info(gpt->model, i, &info);
        if (dsc_tensor_data(info.tensor))
            CHECK_MSG(check_tensor_get(info.tensor, a->params + info.offset, DSC_F32, (size_t)info.numel) == DSC_OK,
                      "copy of %s to the host", info.name);
    }
    if (!a->rc) dsc_engine_release_params(init.engine, NULL, 0, -1);
    if (init.engine) dsc__engine_teardown_actckpt(init.engine);
    dsc_engine_free(init.engine);
    dsc_gpt_free(gpt);
    dsc_comm_free(comm);
    dsc_ctx_free(ctx);
    return NULL;
}

static void run_world(int world_size, int stage, int number, bool bf16, engine_run_t *runs) {
    dsc_comm_fake_world_t *world = NULL;
    if (world_size > 1) dsc_comm_fake_world_new(world_size, &world);
    pthread_t th[2];
    for (int r = 0; r < world_size; r++) {
        memset(&runs[r], 0, sizeof runs[r]);
        runs[r].world = world;
        runs[r].world_size = world_size;
        runs[r].rank = r;
        runs[r].number = number;
        runs[r].stage = stage;
        runs[r].bf16 = bf16;
        pthread_create(&th[r], NULL, engine_rank, &runs[r]);
    }
    for (int r = 0; r < world_size; r++) pthread_join(th[r], NULL);
    dsc_comm_fake_world_free(world);
}

/* With every block checkpointed (from the config), the gradients of every micro-step and
 * so the parameters are bitwise those without: one rank at stage 0, and 2 fake ranks at
 * ZeRO-2, at ZeRO-3 (where the recompute gathers each layer's parameters again) and at ZeRO-1
 * with overlap_comm (the boundary backward reduces each parameter once its uses, the
 * recompute's included, are done: the partition read right after that backward is reduced). */
static void test_engine(void) {
    for (int run = 0; run < 8; run++) {
        const int world_size = run < 2 ? 1 : 2, stage = run < 2 ? 0 : run < 4 ? 2 : run < 6 ? 3 : 1;
        const bool bf16 = run % 2;
        engine_run_t ref[2], ck[2];
        run_world(world_size, stage, 0, bf16, ref);
        run_world(world_size, stage, 3, bf16, ck); /* every block, from the config */
        for (int r = 0; r < world_size; r++) {
            char what[96];
            snprintf(what, sizeof what, "ZeRO-%d on %d rank(s), %s, rank %d", stage, world_size, bf16 ? "bf16" : "fp32", r);
            CHECK_MSG(ref[r].rc == 0 && ck[r].rc == 0, "%s: %s / %s", what, ref[r].error, ck[r].error);
            if (ref[r].rc || ck[r].rc) continue;
            CHECK_MSG(ck[r].recomputes == 3 * 2 * 3 && ref[r].recomputes == 0, "%s: %lld recomputes", what,
                      (long long)ck[r].recomputes);
            for (int s = 0; s < 3; s++) CHECK(ck[r].loss[s] == ref[r].loss[s]);
            double gsum = 0;
            for (int64_t i = 0; i < ref[r].n_grads; i++) gsum += fabs(ref[r].grads[i]);
            CHECK_MSG(gsum > 0, "%s: the gradient partition is all zeros", what);
            CHECK_MSG(ck[r].n_grads == ref[r].n_grads && ck[r].n_grads > 0 &&
                          !memcmp(ck[r].grads, ref[r].grads, sizeof(float) * (size_t)ref[r].n_grads),
                      "%s: gradients differ with checkpointing", what);
            CHECK_MSG(!memcmp(ck[r].params, ref[r].params, sizeof(float) * (size_t)ref[r].numel),
                      "%s: parameters after 3 steps differ with checkpointing", what);
            /* Under ZeRO-3 (frugal schedule) every recompute gathers its block's parameters
             * again: per micro-step one more all-gather of each block parameter's shard,
             * (N-1) x shard elements sent (bf16: 2 bytes, fp32: 4). Block parameters of the
             * 64-wide GPT: ln 64+64, c_attn 12288+192, c_proj 4096+64, ln 64+64, c_fc
             * 16384+256, mlp.c_proj 16384+64; shards ceil(n/2). */
            if (stage == 3) {
                const int64_t sizes[] = {64, 64, 12288, 192, 4096, 64, 64, 64, 16384, 256, 16384, 64};
                int64_t shards = 0;
                for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) shards += (sizes[i] + 1) / 2;
                const uint64_t extra = 2 /* micro-steps */ * 3 /* blocks */ * (uint64_t)shards * (bf16 ? 2 : 4);
                CHECK_MSG(ck[r].sent_last_step == ref[r].sent_last_step + extra,
                          "%s: %llu bytes sent with checkpointing, %llu without: want %llu more (the recompute's gathers)",
                          what, (unsigned long long)ck[r].sent_last_step, (unsigned long long)ref[r].sent_last_step,
                          (unsigned long long)extra);
            }
        }
        for (int r = 0; r < world_size; r++) {
            free(ref[r].params), free(ck[r].params);
            free(ref[r].grads), free(ck[r].grads);
        }
    }
}

int main(void) {
    test_arena_mark();
    test_small_bitwise();
    test_gradcheck_nested();
    test_odd_outputs();
    test_errors_and_modes();
    test_layer_selection();
    test_gpt_bitwise();
    test_gpt_memory();
    test_engine();
    return check_finish("test_checkpointing");
}

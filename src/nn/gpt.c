/* The GPT-2 family: declaration of its parameters (Hugging Face names) and its forward
 * pass as ops, with the LM head tied to the token embedding. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/device.h"
#include "core/internal.h"
#include "dsc/checkpoint.h"
#include "dsc/gpt.h"
#include "ops/ops_internal.h"

dsc_status_t dsc_gpt_config_validate(const dsc_gpt_config_t *c, char *err, size_t errsz) {
#define BAD(...)                                    \
    do {                                            \
        if (err && errsz) snprintf(err, errsz, __VA_ARGS__); \
        return DSC_ERR_INVALID;                     \
    } while (0)
    if (!c) BAD("GPT config is NULL");
    if (c->n_layer < 1) BAD("GPT config: n_layer must be >= 1, got %d", c->n_layer);
    if (c->n_head < 1) BAD("GPT config: n_head must be >= 1, got %d", c->n_head);
    if (c->n_embd < 1) BAD("GPT config: n_embd must be >= 1, got %d", c->n_embd);
    if (c->n_embd % c->n_head != 0) BAD("GPT config: n_embd (%d) must be divisible by n_head (%d)", c->n_embd, c->n_head);
    if (c->vocab_size < 1) BAD("GPT config: vocab_size must be >= 1, got %d", c->vocab_size);
    if (c->block_size < 1) BAD("GPT config: block_size must be >= 1, got %d", c->block_size);
    if (!(c->dropout >= 0 && c->dropout < 1)) BAD("GPT config: dropout must be in [0, 1), got %g", c->dropout);
    if (!(c->ln_eps > 0)) BAD("GPT config: ln_eps must be > 0, got %g", c->ln_eps);
    return DSC_OK;
#undef BAD
}

dsc_status_t dsc_gpt_new(dsc_ctx_t *ctx, const dsc_gpt_config_t *config, dsc_gpt_t **out) {
    if (!ctx || !out) return DSC_ERR_INVALID;
    *out = NULL;
    char err[256];
    if (dsc_gpt_config_validate(config, err, sizeof err) != DSC_OK)
        return dsc_ctx_set_error(ctx, DSC_ERR_INVALID, "%s", err);
    dsc_gpt_t *g = calloc(1, sizeof *g);
    if (!g) return dsc_ctx_set_error(ctx, DSC_ERR_NOMEM, "out of memory creating a GPT");
    g->config = *config;
    g->blocks = calloc((size_t)config->n_layer, sizeof *g->blocks);
    dsc_status_t rc = g->blocks ? dsc_model_new(ctx, &g->model) : DSC_ERR_NOMEM;
    if (rc != DSC_OK) {
        free(g->blocks);
        free(g);
        return dsc_ctx_set_error(ctx, DSC_ERR_NOMEM, "out of memory creating a GPT");
    }
    const int64_t c = config->n_embd;
    const double std = 0.02;
    /* GPT-2 scales the residual projections so the residual stream's variance does not
     * grow with depth: two residual adds per layer. */
    const double proj_std = 0.02 / sqrt(2.0 * config->n_layer);
    dsc_model_t *m = g->model;
    dsc_embedding_init(m, &g->wte, "wte", config->vocab_size, c, std);
    dsc_embedding_init(m, &g->wpe, "wpe", config->block_size, c, std);
    char prefix[64], name[96];
    for (int l = 0; l < config->n_layer; l++) {
        dsc_gpt_block_t *b = &g->blocks[l];
        snprintf(prefix, sizeof prefix, "h.%d", l);
        snprintf(name, sizeof name, "%s.ln_1", prefix);
        dsc_layernorm_init(m, &b->ln_1, name, c, config->ln_eps);
        snprintf(name, sizeof name, "%s.attn.c_attn", prefix);
        dsc_linear_init(m, &b->c_attn, name, c, 3 * c, true, std);
        snprintf(name, sizeof name, "%s.attn.c_proj", prefix);
        dsc_linear_init(m, &b->c_proj, name, c, c, true, proj_std);
        snprintf(name, sizeof name, "%s.ln_2", prefix);
        dsc_layernorm_init(m, &b->ln_2, name, c, config->ln_eps);
        snprintf(name, sizeof name, "%s.mlp", prefix);
        dsc_mlp_init(m, &b->mlp, name, c, std, proj_std);
    }
    dsc_layernorm_init(m, &g->ln_f, "ln_f", c, config->ln_eps);
    if (dsc_ctx_status(ctx) != DSC_OK) {
        dsc_gpt_free(g);
        return dsc_ctx_status(ctx);
    }
    *out = g;
    return DSC_OK;
}

void dsc_gpt_free(dsc_gpt_t *g) {
    if (!g) return;
    dsc_model_free(g->model);
    free(g->blocks);
    free(g);
}

/* The model's activations have the dtype of its parameters (the embedding's output is in
 * the table's dtype): bf16/f16 under 16-bit mixed precision, f32 otherwise. Every op the
 * GPT uses takes 16-bit data (f32 accumulation inside the kernels); the loss is f32. */
static bool is_half(const dsc_tensor_t *t) {
    return t && (dsc_tensor_dtype(t) == DSC_BF16 || dsc_tensor_dtype(t) == DSC_F16);
}

/* One transformer block: x + attn(ln_1(x)), then + mlp(ln_2(.)). Without dropout (p = 0
 * or evaluation) each projection adds onto the residual stream in its own op: one output
 * per residual add instead of two, the same values. */
static dsc_tensor_t *block_forward(dsc_ctx_t *ctx, const dsc_gpt_t *g, const dsc_gpt_block_t *b, dsc_tensor_t *x) {
    const double p = g->config.dropout;
    dsc_tensor_t *h = dsc_layernorm_forward(ctx, &b->ln_1, x);
    h = dsc_linear_forward(ctx, &b->c_attn, h);
    h = dsc_attention(ctx, h, g->config.n_head, p);
    if (!ctx->training || p == 0) { /* dsc_dropout would return its input */
        x = dsc_linear_forward_residual(ctx, &b->c_proj, h, x);
        return dsc_mlp_forward_residual(ctx, &b->mlp, dsc_layernorm_forward(ctx, &b->ln_2, x), x);
    }
    h = dsc_dropout(ctx, dsc_linear_forward(ctx, &b->c_proj, h), p);
    x = dsc_add(ctx, x, h);
    h = dsc_mlp_forward(ctx, &b->mlp, dsc_layernorm_forward(ctx, &b->ln_2, x));
    return dsc_add(ctx, x, dsc_dropout(ctx, h, p));
}

dsc_status_t dsc_gpt_set_checkpointing(dsc_gpt_t *g, int every) {
    if (!g) return DSC_ERR_INVALID;
    if (every < 0)
        return dsc_ctx_set_error(dsc_model_ctx(g->model), DSC_ERR_INVALID,
                                 "dsc_gpt_set_checkpointing: every must be >= 0 (0: follow the config), got %d", every);
    g->checkpoint_every = every;
    return DSC_OK;
}

/* A block under activation checkpointing: the arguments live in the step arena, so they
 * are still there when backward recomputes the block. */
typedef struct {
    const dsc_gpt_t *g;
    const dsc_gpt_block_t *b;
    char name[24];
} block_call_t;

static dsc_status_t block_fn(dsc_ctx_t *ctx, void *user, dsc_tensor_t *const *in, dsc_tensor_t **out) {
    const block_call_t *c = user;
    out[0] = block_forward(ctx, c->g, c->b, in[0]);
    return dsc_ctx_status(ctx);
}

static dsc_tensor_t *block_checkpointed(dsc_ctx_t *ctx, const dsc_gpt_t *g, int l, dsc_tensor_t *x) {
    if (!x) return NULL;
    block_call_t *c = dsc__arena_alloc(ctx, sizeof *c);
    if (!c) return NULL;
    c->g = g;
    c->b = &g->blocks[l];
    snprintf(c->name, sizeof c->name, "h.%d", l);
    dsc_tensor_t *y = NULL;
    dsc_checkpoint(ctx, c->name, block_fn, c, 1, &x, 1, &y);
    return y;
}

dsc_status_t dsc_gpt_forward(dsc_ctx_t *ctx, dsc_gpt_t *g, const int32_t *tokens, const int32_t *targets, int b, int t,
                             dsc_tensor_t **logits_out, dsc_tensor_t **loss_out) {
    if (!ctx) return DSC_ERR_INVALID;
    if (logits_out) *logits_out = NULL;
    if (loss_out) *loss_out = NULL;
    if (!g || !tokens) return dsc_ctx_set_error(ctx, DSC_ERR_INVALID, "dsc_gpt_forward: gpt or tokens is NULL");
    if (b < 1 || t < 1 || t > g->config.block_size)
        return dsc_ctx_set_error(ctx, DSC_ERR_INVALID, "dsc_gpt_forward: need B >= 1 and 1 <= T <= block_size (%d), got B=%d T=%d",
                                 g->config.block_size, b, t);
    if (!g->wte.weight->data && !ctx->param_hooks) /* under ZeRO-3 the engine gathers on use */
        return dsc_ctx_set_error(ctx, DSC_ERR_MISUSE, "dsc_gpt_forward: parameters are not bound (dsc_model_alloc or an engine)");
    dsc__dev_mark(ctx, "mark: dsc_gpt_forward begins");
    dsc_tensor_t *ids = dsc__tensor_empty(ctx, DSC_I32, 2, (int64_t[]){b, t});
    dsc_tensor_t *pos = dsc__tensor_empty(ctx, DSC_I32, 1, (int64_t[]){t});
    if (!ids || !pos) return dsc_ctx_status(ctx);
    /* Inputs are made on the host and copied to the device once. */
    int32_t *host_pos = malloc((size_t)t * sizeof *host_pos);
    if (!host_pos) return dsc_ctx_set_error(ctx, DSC_ERR_NOMEM, "dsc_gpt_forward: out of memory");
    for (int i = 0; i < t; i++) host_pos[i] = i;
    dsc__dev_from_host(ctx, ids->data, tokens, (size_t)b * t * sizeof(int32_t));
    dsc__dev_from_host(ctx, pos->data, host_pos, (size_t)t * sizeof(int32_t));
    free(host_pos);

    dsc_tensor_t *x = dsc_add(ctx, dsc_embedding_forward(ctx, &g->wte, ids), dsc_embedding_forward(ctx, &g->wpe, pos));
    x = dsc_dropout(ctx, x, g->config.dropout);
    for (int l = 0; l < g->config.n_layer; l++)
        x = dsc_actckpt_layer_selected(ctx, g->checkpoint_every, l, g->config.n_layer)
                ? block_checkpointed(ctx, g, l, x)
                : block_forward(ctx, g, &g->blocks[l], x);
    x = dsc_layernorm_forward(ctx, &g->ln_f, x);
    dsc__dev_mark(ctx, "mark: dsc_gpt_forward blocks done");
    /* The targets go to the device once; their host copy serves the loss's range check. */
    dsc_tensor_t *tg = NULL;
    int32_t *tgt = NULL;
    if (targets && loss_out) {
        tg = dsc__tensor_empty(ctx, DSC_I32, 2, (int64_t[]){b, t});
        tgt = tg ? malloc((size_t)b * t * sizeof *tgt) : NULL;
        if (!tgt) return tg ? dsc_ctx_set_error(ctx, DSC_ERR_NOMEM, "dsc_gpt_forward: out of memory") : dsc_ctx_status(ctx);
        for (int64_t i = 0; i < (int64_t)b * t; i++) tgt[i] = targets[i] < 0 ? -1 : targets[i]; /* any negative: ignored */
        dsc__dev_from_host(ctx, tg->data, tgt, (size_t)b * t * sizeof *tgt);
    }
    dsc_param_scope_t head; /* the tied LM head gathers wte again under ZeRO-3 */
    dsc_param_scope_enter(ctx, &head, 1, &g->wte.weight);
    dsc_tensor_t *wte = dsc_param_compute_as(ctx, g->wte.weight, x);
    if (!logits_out && tg) {
        /* the usual training call: the LM head and its loss as one op, logits kept inside it
         * (padded to the device's gemm width, their gradient written over them) */
        *loss_out = dsc__linear_cross_entropy_host(ctx, x, wte, tg, tgt, -1);
        dsc_param_scope_exit(ctx, &head);
        free(tgt);
        return dsc_ctx_status(ctx);
    }
    dsc_tensor_t *logits = dsc_matmul(ctx, x, wte, false, true);
    dsc_param_scope_exit(ctx, &head);
    /* the logits a caller reads are f32 in every mode (16-bit ones widen once, for it) */
    if (logits_out) {
        if (is_half(logits)) logits = dsc_cast(ctx, logits, DSC_F32);
        *logits_out = logits;
    }
    if (tg) {
        dsc__dev_mark(ctx, "mark: dsc_gpt_forward head done");
        *loss_out = dsc_cross_entropy(ctx, logits, tg, -1);
    }
    free(tgt);
    return dsc_ctx_status(ctx);
}

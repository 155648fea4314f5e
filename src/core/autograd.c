/* The tape: ops append nodes during forward; backward walks them in reverse, calling each
 * node's backward function, which adds into the gradients of its inputs. */
#include <stdlib.h>
#include <string.h>

#include "core/device.h"
#include "core/internal.h"
#include "ops/backend.h"

bool dsc__needs_grad(const dsc_ctx_t *ctx, int n_in, dsc_tensor_t *const *in) {
    if (ctx->no_grad_depth > 0) return false;
    for (int k = 0; k < n_in; k++)
        if (in[k] && in[k]->requires_grad) return true;
    return false;
}

static dsc_node_t *append_node(dsc_ctx_t *ctx, const char *op) {
    if (ctx->tape_len == ctx->tape_cap) {
        size_t cap = ctx->tape_cap ? ctx->tape_cap * 2 : 256;
        dsc_node_t **tape = realloc(ctx->tape, cap * sizeof *tape);
        if (!tape) return dsc__fail(ctx, DSC_ERR_NOMEM, "out of memory growing the autograd tape (%s)", op);
        ctx->tape = tape;
        ctx->tape_cap = cap;
    }
    dsc_node_t *node = dsc__arena_alloc(ctx, sizeof *node);
    if (!node) return NULL;
    memset(node, 0, sizeof *node);
    node->op = op;
    ctx->tape[ctx->tape_len++] = node;
    return node;
}

dsc_node_t *dsc__record_marker(dsc_ctx_t *ctx, const char *op, dsc_backward_fn backward, void *ext) {
    dsc_node_t *node = append_node(ctx, op);
    if (!node) return NULL;
    node->backward = backward;
    node->ext = ext;
    node->always_run = true;
    return node;
}

dsc_node_t *dsc__record(dsc_ctx_t *ctx, const char *op, dsc_backward_fn backward, dsc_tensor_t *out, int n_in,
                        dsc_tensor_t *const *in) {
    dsc_node_t *node = append_node(ctx, op);
    if (!node) return NULL;
    node->backward = backward;
    node->out = out;
    node->n_in = n_in;
    for (int k = 0; k < n_in && k < DSC_NODE_MAX_INPUTS; k++) node->in[k] = in[k];
    out->requires_grad = true;
    out->producer = node;
    return node;
}

static dsc_tensor_t *grad_of(dsc_ctx_t *ctx, dsc_tensor_t *t) {
    if (!t || !t->requires_grad) return NULL;
    if (!t->grad && t->persistent) /* an arena gradient would dangle after the step */
        return dsc__fail(ctx, DSC_ERR_MISUSE, "tensor %s requires grad but was wrapped without gradient memory",
                         dsc_tensor_name(t));
    if (t->grad) return t->grad;
    /* An activation's gradient goes back to the pool after its producer's backward (below). */
    if (ctx->release_grads && t->producer && !t->grad_is_external) return dsc__grad_pool_take(ctx, t);
    t->grad = dsc__tensor_zeros_like(ctx, t);
    return t->grad;
}

dsc_tensor_t *dsc__grad(dsc_ctx_t *ctx, dsc_tensor_t *t) {
    dsc_tensor_t *g = grad_of(ctx, t);
    if (g && g->unwritten) {
        if (dsc__dev_zero(ctx, g->data, dsc_tensor_nbytes(g)) != DSC_OK) return NULL;
        g->unwritten = false;
    }
    return g;
}

dsc_tensor_t *dsc__grad_overwrite(dsc_ctx_t *ctx, dsc_tensor_t *t, bool *overwrite) {
    dsc_tensor_t *g = grad_of(ctx, t);
    *overwrite = g && g->unwritten;
    if (g) g->unwritten = false;
    return g;
}

/* After node's backward: its outputs' gradients are dead (only the node read them). A
 * gradient shared with another tensor (a checkpoint's recomputed output takes the
 * checkpoint output's gradient) goes back with its owner only. */
static void release_output_grads(dsc_ctx_t *ctx, dsc_node_t *node) {
    dsc__grad_pool_release(ctx, node->out);
    for (int k = 0; k < node->n_outs; k++) dsc__grad_pool_release(ctx, node->outs[k]);
}

bool dsc__node_has_grad(const dsc_node_t *node) {
    if (node->out && node->out->grad) return true;
    for (int k = 0; k < node->n_outs; k++)
        if (node->outs[k] && node->outs[k]->grad) return true;
    return false;
}

dsc_status_t dsc__run_tape_range(dsc_ctx_t *ctx, size_t from) {
    /* By index, not by pointer: a node's backward may append to the tape (reallocating
     * it) and truncate it back (activation checkpoints recompute this way). */
    for (size_t k = ctx->tape_len; k-- > from;) {
        dsc_node_t *node = ctx->tape[k];
        if (!node->always_run && !dsc__node_has_grad(node)) continue; /* nothing downstream used this output */
        node->backward(ctx, node);
        if (ctx->status != DSC_OK) return ctx->status;
        if (ctx->release_grads) release_output_grads(ctx, node);
    }
    return DSC_OK;
}

static dsc_status_t run_tape(dsc_ctx_t *ctx) {
    ctx->backward_done = true;
    return dsc__run_tape_range(ctx, 0);
}

static dsc_status_t check_backward_start(dsc_ctx_t *ctx, const dsc_tensor_t *out) {
    if (ctx->status != DSC_OK) return ctx->status; /* a forward op failed: report its error */
    if (!out) return dsc_ctx_set_error(ctx, DSC_ERR_INVALID, "backward: loss is NULL");
    if (!dsc__is_float(out->dtype))
        return dsc_ctx_set_error(ctx, DSC_ERR_INVALID, "backward: loss has dtype %s, not a float type", dsc_dtype_name(out->dtype));
    if (!out->producer)
        return dsc_ctx_set_error(ctx, DSC_ERR_INVALID,
                                 "backward: loss was not produced by recorded ops (no input requires grad, or it was computed under no-grad)");
    if (ctx->backward_done)
        return dsc_ctx_set_error(ctx, DSC_ERR_MISUSE,
                                 "backward: already ran on this step's tape; call dsc_ctx_end_step before the next forward");
    return DSC_OK;
}

dsc_status_t dsc_autograd_backward_scaled(dsc_ctx_t *ctx, dsc_tensor_t *loss, double seed) {
    if (!ctx) return DSC_ERR_INVALID;
    dsc_status_t rc = check_backward_start(ctx, loss);
    if (rc != DSC_OK) return rc;
    if (loss->numel != 1)
        return dsc_ctx_set_error(ctx, DSC_ERR_INVALID, "backward: loss must have 1 element, got %lld", (long long)loss->numel);
    /* the step arena, not the pool: the loss's gradient stays valid after backward */
    if (!loss->grad) loss->grad = dsc__tensor_zeros_like(ctx, loss);
    dsc_tensor_t *g = loss->grad;
    if (!g) return ctx->status;
    if (dsc__dev_write_scalar(ctx, g->data, g->dtype, seed) != DSC_OK) return ctx->status;
    ctx->loss_grad.root = loss; /* what the ops that computed their gradient ahead check */
    ctx->loss_grad.seed = seed;
    rc = run_tape(ctx);
    ctx->loss_grad.root = NULL;
    return rc;
}

dsc_status_t dsc__autograd_backward_from(dsc_ctx_t *ctx, dsc_tensor_t *out, const dsc_tensor_t *out_grad) {
    dsc_status_t rc = check_backward_start(ctx, out);
    if (rc != DSC_OK) return rc;
    if (!out_grad || out_grad->numel != out->numel || out_grad->dtype != out->dtype)
        return dsc_ctx_set_error(ctx, DSC_ERR_INVALID, "backward: upstream gradient does not match the output");
    if (!out->grad) out->grad = dsc__tensor_empty_like(ctx, out); /* fully overwritten below */
    dsc_tensor_t *g = out->grad;
    if (!g) return ctx->status;
    if (dsc__dev_convert(ctx, g->data, g->dtype, out_grad->data, out_grad->dtype, (size_t)out->numel) != DSC_OK)
        return ctx->status;
    return run_tape(ctx);
}

dsc_status_t dsc_autograd_backward(dsc_ctx_t *ctx, dsc_tensor_t *loss) { return dsc_autograd_backward_scaled(ctx, loss, 1.0); }

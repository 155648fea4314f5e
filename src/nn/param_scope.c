/* Parameter scopes (dsc/nn.h): where ZeRO-3 gathers and releases parameters.
 *
 * A scope records two marker nodes on the tape around the layer's ops:
 *   enter -> [begin marker] ops ... [end marker] <- exit
 * Backward walks the tape in reverse, so the end marker runs first (gather the parameters
 * again and give them gradient buffers), then the layer's ops (which read the parameters
 * and add into their gradients), then the begin marker (send the gradients to their
 * owners, free the gathered copies). Under activation checkpointing the recompute records
 * the same pair again, so a recomputed block gathers and releases its parameters too. */
#include <string.h>

#include "core/internal.h"
#include "dsc/nn.h"

typedef struct scope_record {
    int n;
    dsc_tensor_t *params[DSC_PARAM_SCOPE_MAX];
} scope_record_t;

static void begin_marker_backward(dsc_ctx_t *ctx, dsc_node_t *node) {
    const scope_record_t *r = node->ext;
    if (ctx->param_hooks) ctx->param_hooks->release(ctx->param_hooks->user, r->params, r->n, true);
}

static void end_marker_backward(dsc_ctx_t *ctx, dsc_node_t *node) {
    const scope_record_t *r = node->ext;
    if (ctx->param_hooks) ctx->param_hooks->acquire(ctx->param_hooks->user, r->params, r->n, true);
}

static bool recording(const dsc_ctx_t *ctx, const dsc_param_scope_t *s) {
    return dsc__needs_grad(ctx, s->n, s->params);
}

static void record_marker(dsc_ctx_t *ctx, const dsc_param_scope_t *s, bool begin) {
    scope_record_t *r = dsc__arena_alloc(ctx, sizeof *r);
    if (!r) return;
    r->n = s->n;
    memcpy(r->params, s->params, sizeof r->params);
    dsc__record_marker(ctx, begin ? "param_scope_begin" : "param_scope_end",
                       begin ? begin_marker_backward : end_marker_backward, r);
}

dsc_status_t dsc_param_scope_enter(dsc_ctx_t *ctx, dsc_param_scope_t *scope, int n, dsc_tensor_t *const *params) {
    if (!ctx || !scope) return DSC_ERR_INVALID;
    memset(scope, 0, sizeof *scope);
    if (n < 0 || n > DSC_PARAM_SCOPE_MAX || (n > 0 && !params))
        return dsc_ctx_set_error(ctx, DSC_ERR_INVALID, "dsc_param_scope_enter: %d parameters (at most %d)", n,
                                 DSC_PARAM_SCOPE_MAX);
    for (int k = 0; k < n; k++)
        if (params[k]) scope->params[scope->n++] = params[k];
    const dsc_param_hooks_t *h = ctx->param_hooks;
    if (!h || scope->n == 0 || ctx->status != DSC_OK) return ctx->status;
    if (h->acquire(h->user, scope->params, scope->n, false) != DSC_OK) return ctx->status;
    scope->entered = true;
    if (recording(ctx, scope)) record_marker(ctx, scope, true);
    return ctx->status;
}

void dsc_param_scope_exit(dsc_ctx_t *ctx, dsc_param_scope_t *scope) {
    if (!ctx || !scope || !scope->entered) return;
    const dsc_param_hooks_t *h = ctx->param_hooks;
    scope->entered = false;
    if (!h) return;
    /* Released even after a failed forward, so nothing stays gathered; the marker only
     * while the tape is healthy (a failed step never runs backward). */
    const bool ok = ctx->status == DSC_OK;
    h->release(h->user, scope->params, scope->n, false);
    if (ok && recording(ctx, scope)) record_marker(ctx, scope, false);
}

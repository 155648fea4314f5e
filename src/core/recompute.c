/* Activation checkpointing (dsc/checkpoint.h): run a function without keeping its
 * intermediates, recompute it in backward.
 *
 * Forward: the function runs with recording on (so its outputs know whether they depend on
 * anything that requires grad, and every op runs exactly as it will in the recompute),
 * then its outputs are copied aside, the tape is truncated and the arena rewound to where
 * they were before the call, and the outputs come back as fresh tensors with one node.
 *
 * Backward of that node: the function runs again (RNG, training mode and recording as at
 * the forward) appending its nodes at the end of the tape; the recomputed outputs take the
 * gradients of the checkpoint's outputs; the appended nodes run backward (nested
 * checkpoints recurse here); gradients that this created for tensors from before the
 * recompute (inputs, captured tensors) are kept; then the tape and the arena are rewound
 * again. Parameter gradients live in the flat gradient buffer and are untouched by the
 * rewind. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/internal.h"
#include "dsc/checkpoint.h"
#include "ops/backend.h"

typedef struct ckpt_record {
    dsc_checkpoint_fn fn;
    void *user;
    const char *name;
    int n_in, n_out;
    dsc_tensor_t **in;   /* the inputs as given (n_in) */
    dsc_tensor_t **out;  /* the checkpoint's outputs (n_out) */
    uint64_t rng_state;  /* at the forward call */
    uint64_t drop_seed, drop_offset; /* the dropout stream at the forward call: the recompute redraws its masks */
    bool training;
} ckpt_record_t;

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* synchronize_checkpoint_boundary: the CPU backend's kernels have finished when they
 * return, so there is nothing to wait for; a device backend synchronises its stream here. */
static void boundary_sync(dsc_ctx_t *ctx) { (void)ctx; }

static const char *label(const ckpt_record_t *r) { return r->name ? r->name : "(unnamed)"; }

static size_t tensor_bytes(const dsc_tensor_t *t) { return (size_t)t->numel * dsc_dtype_size(t->dtype); }

static void truncate_tape(dsc_ctx_t *ctx, size_t len) {
    if (ctx->tape_len > len) ctx->tape_len = len;
}

/* ---- forward -------------------------------------------------------------------------- */

/* What the forward keeps of fn's outputs across the rewind. */
typedef struct {
    dsc_dtype_t dtype;
    int ndim;
    int64_t shape[DSC_MAX_DIMS];
    bool requires_grad;
    const char *name;
} out_info_t;

static dsc_status_t run_plain(dsc_ctx_t *ctx, const char *name, dsc_checkpoint_fn fn, void *user,
                              dsc_tensor_t *const *in, int n_out, dsc_tensor_t **out) {
    dsc_status_t rc = fn(ctx, user, in, out);
    if (rc == DSC_OK) rc = dsc_ctx_status(ctx);
    for (int k = 0; k < n_out && rc == DSC_OK; k++)
        if (!out[k])
            rc = dsc_ctx_set_error(ctx, DSC_ERR_INVALID, "dsc_checkpoint %s: the function returned output %d as NULL",
                                   name ? name : "(unnamed)", k);
    if (rc != DSC_OK) {
        if (dsc_ctx_status(ctx) == DSC_OK)
            dsc_ctx_set_error(ctx, rc, "dsc_checkpoint %s: the function failed (%s)", name ? name : "(unnamed)",
                              dsc_status_string(rc));
        for (int k = 0; k < n_out; k++) out[k] = NULL;
    }
    return rc;
}

static void checkpoint_backward(dsc_ctx_t *ctx, dsc_node_t *node);

dsc_status_t dsc_checkpoint(dsc_ctx_t *ctx, const char *name, dsc_checkpoint_fn fn, void *user, int n_in,
                            dsc_tensor_t *const *in, int n_out, dsc_tensor_t **out) {
    if (!ctx) return DSC_ERR_INVALID;
    const char *nm = name ? name : "(unnamed)";
    if (!out || n_out < 1)
        return dsc_ctx_set_error(ctx, DSC_ERR_INVALID, "dsc_checkpoint %s: need n_out >= 1 and an out array (n_out = %d)",
                                 nm, n_out);
    for (int k = 0; k < n_out; k++) out[k] = NULL;
    if (!fn || n_in < 0 || (n_in > 0 && !in))
        return dsc_ctx_set_error(ctx, DSC_ERR_INVALID, "dsc_checkpoint %s: fn is NULL or the inputs are invalid (n_in = %d)",
                                 nm, n_in);
    if (ctx->status != DSC_OK) return ctx->status; /* sticky: an earlier op failed */
    for (int k = 0; k < n_in; k++)
        if (!in[k]) return dsc_ctx_set_error(ctx, DSC_ERR_INVALID, "dsc_checkpoint %s: input %d is NULL", nm, k);

    if (ctx->no_grad_depth > 0) return run_plain(ctx, name, fn, user, in, n_out, out);

    /* The record lives below the mark, so it survives the rewind; a failure rewinds to
     * before it (the arena is then as before the call). */
    const dsc_arena_mark_t before = dsc__arena_mark(ctx);
    ckpt_record_t *rec = dsc__arena_alloc(ctx, sizeof *rec + sizeof(dsc_tensor_t *) * (size_t)(n_in + 2 * n_out));
    if (!rec) return ctx->status;
    memset(rec, 0, sizeof *rec);
    rec->fn = fn;
    rec->user = user;
    rec->name = name;
    rec->n_in = n_in;
    rec->n_out = n_out;
    rec->in = (dsc_tensor_t **)(rec + 1);
    rec->out = rec->in + n_in;
    dsc_tensor_t **tmp = rec->out + n_out; /* fn's own outputs, before the copy */
    for (int k = 0; k < n_in; k++) rec->in[k] = in[k];
    for (int k = 0; k < n_out; k++) rec->out[k] = tmp[k] = NULL;
    rec->rng_state = ctx->rng_state;
    rec->drop_seed = ctx->drop_seed;
    rec->drop_offset = ctx->drop_offset;
    rec->training = ctx->training;

    boundary_sync(ctx);
    double t0 = now_seconds();
    const size_t tape_mark = ctx->tape_len;
    const dsc_arena_mark_t mark = dsc__arena_mark(ctx);
    dsc_status_t rc = run_plain(ctx, name, fn, user, rec->in, n_out, tmp);
    if (rc != DSC_OK) {
        truncate_tape(ctx, tape_mark);
        dsc__arena_rewind(ctx, before);
        return rc;
    }

    /* Copy the outputs aside (they live above the mark), rewind, and bring them back. */
    size_t total = 0;
    for (int k = 0; k < n_out; k++) total += tensor_bytes(tmp[k]);
    out_info_t *info = malloc(sizeof *info * (size_t)n_out);
    char *aside = dsc__dev_alloc_raw(ctx, total ? total : 1); /* device scratch, outside the arena */
    if (!aside || !info) {
        free(info);
        dsc__dev_free_raw(ctx, aside, total ? total : 1);
        truncate_tape(ctx, tape_mark);
        dsc__arena_rewind(ctx, before);
        return dsc_ctx_set_error(ctx, DSC_ERR_NOMEM, "dsc_checkpoint %s: out of memory keeping %zu output bytes", nm, total);
    }
    size_t off = 0;
    for (int k = 0; k < n_out; k++) {
        dsc_tensor_t *t = tmp[k];
        info[k].dtype = t->dtype;
        info[k].ndim = t->ndim;
        memcpy(info[k].shape, t->shape, sizeof t->shape);
        info[k].requires_grad = t->requires_grad && dsc__is_float(t->dtype);
        info[k].name = t->name;
        dsc__dev_copy(ctx, aside + off, t->data, tensor_bytes(t));
        off += tensor_bytes(t);
    }
    truncate_tape(ctx, tape_mark);
    rc = dsc__arena_rewind(ctx, mark);
    int n_diff = 0;
    off = 0;
    for (int k = 0; k < n_out && rc == DSC_OK; k++) {
        dsc_tensor_t *t = dsc__tensor_empty(ctx, info[k].dtype, info[k].ndim, info[k].shape);
        if (!t) {
            rc = ctx->status;
            break;
        }
        dsc__dev_copy(ctx, t->data, aside + off, tensor_bytes(t));
        off += tensor_bytes(t);
        t->name = info[k].name;
        rec->out[k] = t;
        if (info[k].requires_grad) n_diff++;
    }
    dsc__dev_free_raw(ctx, aside, total ? total : 1);
    if (rc == DSC_OK && n_diff > 0) {
        dsc_tensor_t **diff = dsc__arena_alloc(ctx, sizeof *diff * (size_t)n_diff);
        dsc_node_t *node = NULL;
        if (diff) {
            int d = 0;
            for (int k = 0; k < n_out; k++)
                if (info[k].requires_grad) diff[d++] = rec->out[k];
            node = dsc__record(ctx, "dsc_checkpoint", checkpoint_backward, diff[0], 0, NULL);
        }
        if (!node) {
            rc = ctx->status != DSC_OK ? ctx->status : DSC_ERR_NOMEM;
        } else {
            node->n_outs = n_diff;
            node->outs = diff;
            node->ext = rec;
            for (int d = 1; d < n_diff; d++) {
                diff[d]->requires_grad = true;
                diff[d]->producer = node;
            }
        }
    }
    free(info);
    if (rc != DSC_OK) {
        truncate_tape(ctx, tape_mark);
        dsc__arena_rewind(ctx, before);
        return rc;
    }
    for (int k = 0; k < n_out; k++) out[k] = rec->out[k];
    boundary_sync(ctx);
    double dt = now_seconds() - t0;
    ctx->ckpt.forwards++;
    ctx->ckpt.forward_seconds += dt;
    if (ctx->ckpt.profile)
        dsc_ctx_log(ctx, DSC_LOG_INFO, "activation checkpoint %s: forward %.3f ms", nm, dt * 1e3);
    return DSC_OK;
}

/* ---- backward ------------------------------------------------------------------------- */

/* A gradient made during the recompute for a tensor from before it: copied out before the
 * rewind and put back after. */
typedef struct {
    dsc_tensor_t *t;
    void *copy;
} rescue_t;

typedef struct {
    rescue_t *v;
    size_t n, cap;
} rescue_list_t;

/* Collects t if its gradient was made above the mark while t itself is older; detaches
 * the gradient (so a tensor seen twice is taken once). */
static bool rescue_add(dsc_ctx_t *ctx, rescue_list_t *l, dsc_arena_mark_t mark, dsc_tensor_t *t) {
    if (!t || !t->grad || t->grad_is_external || dsc__arena_since_mark(ctx, mark, t)) return true;
    if (!dsc__arena_since_mark(ctx, mark, t->grad) && !dsc__arena_since_mark(ctx, mark, t->grad->data)) return true;
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 16;
        rescue_t *v = realloc(l->v, cap * sizeof *v);
        if (!v) return false;
        l->v = v;
        l->cap = cap;
    }
    void *copy = dsc__dev_alloc_raw(ctx, tensor_bytes(t->grad) ? tensor_bytes(t->grad) : 1);
    if (!copy) return false;
    dsc__dev_copy(ctx, copy, t->grad->data, tensor_bytes(t->grad));
    l->v[l->n++] = (rescue_t){t, copy};
    t->grad = NULL;
    return true;
}

static bool produced_since(const dsc_ctx_t *ctx, size_t tape_mark, const dsc_tensor_t *t) {
    if (!t->producer) return false;
    for (size_t k = tape_mark; k < ctx->tape_len; k++)
        if (ctx->tape[k] == t->producer) return true;
    return false;
}

static void checkpoint_backward(dsc_ctx_t *ctx, dsc_node_t *node) {
    ckpt_record_t *rec = node->ext;
    const char *nm = label(rec);
    const size_t tape_mark = ctx->tape_len;
    const dsc_arena_mark_t mark = dsc__arena_mark(ctx);
    dsc_tensor_t **rout = dsc__arena_alloc(ctx, sizeof *rout * (size_t)rec->n_out);
    if (!rout) return;
    for (int k = 0; k < rec->n_out; k++) rout[k] = NULL;

    /* Recompute under the forward's RNG state and mode, with recording on. */
    const uint64_t rng_now = ctx->rng_state, drop_seed_now = ctx->drop_seed, drop_offset_now = ctx->drop_offset;
    const bool training_now = ctx->training;
    const int no_grad_now = ctx->no_grad_depth;
    ctx->rng_state = rec->rng_state;
    ctx->drop_seed = rec->drop_seed;
    ctx->drop_offset = rec->drop_offset;
    ctx->training = rec->training;
    ctx->no_grad_depth = 0;
    boundary_sync(ctx);
    double t0 = now_seconds();
    dsc_status_t rc = run_plain(ctx, rec->name, rec->fn, rec->user, rec->in, rec->n_out, rout);
    ctx->rng_state = rng_now;
    ctx->drop_seed = drop_seed_now;
    ctx->drop_offset = drop_offset_now;
    ctx->training = training_now;
    ctx->no_grad_depth = no_grad_now;
    double t1 = now_seconds();

    /* The recomputed outputs take the gradients that reached the checkpoint's outputs. */
    for (int k = 0; k < rec->n_out && rc == DSC_OK; k++) {
        dsc_tensor_t *o = rec->out[k], *r = rout[k];
        if (r->dtype != o->dtype || r->numel != o->numel) {
            char a[96], b[96];
            rc = dsc_ctx_set_error(ctx, DSC_ERR_MISUSE,
                                   "dsc_checkpoint %s: the recompute gave output %d of shape %s %s, the forward %s %s "
                                   "(a checkpointed function must compute the same thing both times)",
                                   nm, k, dsc__shape_str(r, a, sizeof a), dsc_dtype_name(r->dtype),
                                   dsc__shape_str(o, b, sizeof b), dsc_dtype_name(o->dtype));
            break;
        }
        if (!o->grad || !r->requires_grad) continue;
        if (!r->grad && produced_since(ctx, tape_mark, r)) {
            r->grad = o->grad; /* the gradient tensor itself: exactly what the consumers summed */
        } else {
            dsc_tensor_t *g = dsc__grad(ctx, r); /* an input returned as is, or an output listed twice */
            if (!g) {
                rc = ctx->status;
                break;
            }
            ctx->backend->axpy(&ctx->device, g->dtype, g->numel, 1.0, o->grad->data, g->data);
        }
    }
    if (rc == DSC_OK) rc = dsc__run_tape_range(ctx, tape_mark);
    boundary_sync(ctx);
    double t2 = now_seconds();

    /* Keep the gradients the recompute made for older tensors, then release the rest. */
    rescue_list_t keep = {0};
    bool ok = true;
    for (int k = 0; k < rec->n_in && ok; k++) ok = rescue_add(ctx, &keep, mark, rec->in[k]);
    for (int k = 0; k < rec->n_out && ok; k++) ok = rescue_add(ctx, &keep, mark, rout[k]);
    for (size_t k = tape_mark; k < ctx->tape_len && ok; k++) {
        dsc_node_t *n = ctx->tape[k];
        for (int i = 0; i < n->n_in && i < DSC_NODE_MAX_INPUTS && ok; i++) ok = rescue_add(ctx, &keep, mark, n->in[i]);
    }
    truncate_tape(ctx, tape_mark);
    dsc_status_t rw = dsc__arena_rewind(ctx, mark);
    for (size_t k = 0; k < keep.n; k++) {
        dsc_tensor_t *t = keep.v[k].t;
        if (ok && rw == DSC_OK) {
            t->grad = dsc__tensor_empty_like(ctx, t);
            if (t->grad) dsc__dev_copy(ctx, t->grad->data, keep.v[k].copy, tensor_bytes(t));
        }
        dsc__dev_free_raw(ctx, keep.v[k].copy, tensor_bytes(t) ? tensor_bytes(t) : 1);
    }
    free(keep.v);
    if (!ok) dsc_ctx_set_error(ctx, DSC_ERR_NOMEM, "dsc_checkpoint %s: out of memory keeping input gradients", nm);
    if (rc != DSC_OK || !ok || rw != DSC_OK) return;

    ctx->ckpt.recomputes++;
    ctx->ckpt.recompute_seconds += t1 - t0;
    ctx->ckpt.backward_seconds += t2 - t1;
    if (ctx->ckpt.profile)
        dsc_ctx_log(ctx, DSC_LOG_INFO, "activation checkpoint %s: recompute %.3f ms, backward %.3f ms", nm,
                    (t1 - t0) * 1e3, (t2 - t1) * 1e3);
}

/* ---- settings ------------------------------------------------------------------------- */

dsc_status_t dsc_actckpt_configure(dsc_ctx_t *ctx, const dsc_actckpt_config_t *c) {
    if (!ctx) return DSC_ERR_INVALID;
    if (!c) return dsc_ctx_set_error(ctx, DSC_ERR_INVALID, "dsc_actckpt_configure: config is NULL");
    if (c->number_checkpoints < 0)
        return dsc_ctx_set_error(ctx, DSC_ERR_INVALID,
                                 "activation_checkpointing.number_checkpoints must be > 0 (or null), got %d",
                                 c->number_checkpoints);
    ctx->ckpt.number_checkpoints = c->number_checkpoints;
    ctx->ckpt.synchronize = c->synchronize_checkpoint_boundary;
    ctx->ckpt.profile = c->profile;
    ctx->ckpt.partition_activations = c->partition_activations;
    ctx->ckpt.cpu_checkpointing = c->cpu_checkpointing;
    ctx->ckpt.contiguous_memory_optimization = c->contiguous_memory_optimization;
    return DSC_OK;
}

dsc_actckpt_config_t dsc_actckpt_get_config(const dsc_ctx_t *ctx) {
    dsc_actckpt_config_t c = DSC_ACTCKPT_CONFIG_INIT;
    if (!ctx) return c;
    c.number_checkpoints = ctx->ckpt.number_checkpoints;
    c.synchronize_checkpoint_boundary = ctx->ckpt.synchronize;
    c.profile = ctx->ckpt.profile;
    c.partition_activations = ctx->ckpt.partition_activations;
    c.cpu_checkpointing = ctx->ckpt.cpu_checkpointing;
    c.contiguous_memory_optimization = ctx->ckpt.contiguous_memory_optimization;
    return c;
}

bool dsc_actckpt_layer_selected(const dsc_ctx_t *ctx, int every, int layer, int n_layers) {
    if (layer < 0 || layer >= n_layers) return false;
    if (every > 0) return layer % every == 0;
    int n = ctx ? ctx->ckpt.number_checkpoints : 0;
    if (n <= 0) return false;
    if (n >= n_layers) return true;
    /* Is layer = floor(j * n_layers / n) for some j in [0, n)? j = ceil(layer * n / n_layers). */
    int64_t j = ((int64_t)layer * n + n_layers - 1) / n_layers;
    return j < n && (j * n_layers) / n == layer;
}

dsc_actckpt_stats_t dsc_actckpt_stats(const dsc_ctx_t *ctx) {
    dsc_actckpt_stats_t s = {0, 0, 0, 0, 0};
    if (!ctx) return s;
    s.forwards = ctx->ckpt.forwards;
    s.recomputes = ctx->ckpt.recomputes;
    s.forward_seconds = ctx->ckpt.forward_seconds;
    s.recompute_seconds = ctx->ckpt.recompute_seconds;
    s.backward_seconds = ctx->ckpt.backward_seconds;
    return s;
}

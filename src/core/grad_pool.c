/* The gradient pool: device memory for the gradients of activations that backward can give
 * back before the step ends (dsc__grad under ctx->release_grads; src/core/autograd.c).
 *
 * The step arena is a bump allocator released at the end of the step, so a gradient made
 * there lives until then: a GPT's backward would hold every activation's gradient at once,
 * about as much again as the forward's activations. An activation's gradient is dead once
 * the backward of the node that produced the activation has run; the pool takes it back
 * then and hands the block to the next gradient of the same size. A model's layers repeat
 * their shapes, so exact-size reuse (as PyTorch's caching allocator does for its common
 * sizes) serves a whole backward from a few blocks.
 *
 * A block carries its gradient's tensor header too (host memory, beside the device bytes),
 * so the gradient survives arena rewinds (activation checkpointing rewinds after every
 * recompute; src/core/recompute.c): its owner's gradient stays valid whatever the arena
 * does. Blocks are kept across steps like the arena's spare chunk; one that a whole step with
 * gradients did not use goes back to the device at the step's end (a shape that stopped
 * recurring; an evaluation step in between frees nothing). The
 * bytes of blocks in use count as DSC_MEM_ACTIVATIONS, so the activation peak is what the
 * step really held.
 *
 * A block is handed out unwritten (src/core/autograd.c dsc__grad_overwrite): the op that makes
 * the gradient first (a gemm, a copy) writes it instead of adding onto a zero fill; any other
 * first user gets it zero-filled (dsc__grad). In a GPT step that skips most fills.
 *
 * Ops borrow blocks as scratch too (dsc__grad_pool_scratch): memory one op needs while it
 * runs and gives back before it returns (the fused GELU + linear keeps only its input and
 * recomputes the GELU there, in forward and in backward). */
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"

struct dsc_grad_block {
    dsc_tensor_t header;       /* the gradient handed out (its data is `data`) */
    void *data;                /* bytes on the context's device */
    size_t bytes;              /* capacity, DSC_ALIGN multiple; reuse needs an exact match */
    bool in_use;
    bool used_this_step;
    bool grad_this_step;       /* handed out as a gradient (not scratch) this step */
};

static size_t align_up(size_t n) { return ((n ? n : 1) + DSC_ALIGN - 1) / DSC_ALIGN * DSC_ALIGN; }

static dsc_grad_block_t *find_free(const dsc_grad_pool_t *p, size_t bytes) {
    for (size_t k = p->n; k-- > 0;)
        if (!p->blocks[k]->in_use && p->blocks[k]->bytes == bytes) return p->blocks[k];
    return NULL;
}

static dsc_grad_block_t *block_new(dsc_ctx_t *ctx, size_t bytes) {
    dsc_grad_pool_t *p = &ctx->grad_pool;
    if (p->n == p->cap) {
        size_t cap = p->cap ? 2 * p->cap : 16;
        dsc_grad_block_t **v = realloc(p->blocks, cap * sizeof *v);
        if (!v) return NULL;
        p->blocks = v;
        p->cap = cap;
    }
    dsc_grad_block_t *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    b->data = dsc__dev_alloc_raw(ctx, bytes);
    if (!b->data) {
        free(b);
        return NULL;
    }
    b->bytes = bytes;
    p->blocks[p->n++] = b;
    return b;
}

dsc_tensor_t *dsc__grad_pool_take(dsc_ctx_t *ctx, dsc_tensor_t *owner) {
    const size_t bytes = align_up(dsc_tensor_nbytes(owner));
    dsc_grad_block_t *b = find_free(&ctx->grad_pool, bytes);
    if (!b) b = block_new(ctx, bytes);
    if (!b)
        return dsc__fail(ctx, DSC_ERR_NOMEM, "out of memory: the gradient of %s needs %zu bytes on %s",
                         dsc_tensor_name(owner), bytes, ctx->device.name);
    dsc_tensor_t *g = &b->header;
    memset(g, 0, sizeof *g);
    g->unwritten = true; /* zero-filled by dsc__grad on first use, or overwritten (dsc__grad_overwrite) */
    g->device = owner->device;
    g->ndim = owner->ndim;
    memcpy(g->shape, owner->shape, sizeof g->shape);
    g->numel = owner->numel;
    g->dtype = owner->dtype;
    g->data = b->data;
    b->in_use = true;
    b->used_this_step = true;
    b->grad_this_step = true;
    ctx->grad_pool.in_use_bytes += bytes;
    dsc__mem_add(ctx, DSC_MEM_ACTIVATIONS, bytes);
    owner->grad = g;
    owner->grad_pooled = true;
    return g;
}

static void give_back(dsc_ctx_t *ctx, dsc_grad_block_t *b) {
    b->in_use = false;
    b->header.data = NULL; /* a stale pointer to the header finds no data */
    ctx->grad_pool.in_use_bytes -= b->bytes;
    dsc__mem_sub(ctx, DSC_MEM_ACTIVATIONS, b->bytes);
}

void dsc__grad_pool_release(dsc_ctx_t *ctx, dsc_tensor_t *t) {
    if (!t || !t->grad_pooled || !t->grad) return;
    /* the header is the block's first member */
    give_back(ctx, (dsc_grad_block_t *)(void *)t->grad);
    t->grad = NULL;
    t->grad_pooled = false;
}

void dsc__grad_pool_end_step(dsc_ctx_t *ctx) {
    dsc_grad_pool_t *p = &ctx->grad_pool;
    /* A step without gradients (an evaluation between training steps) frees nothing: the
     * next training step needs its blocks again. */
    bool had_grads = false;
    for (size_t k = 0; k < p->n; k++) had_grads |= p->blocks[k]->grad_this_step;
    size_t kept = 0;
    for (size_t k = 0; k < p->n; k++) {
        dsc_grad_block_t *b = p->blocks[k];
        if (b->in_use) give_back(ctx, b); /* its owner's header dies with the step arena */
        if (b->used_this_step || !had_grads) {
            b->used_this_step = false;
            b->grad_this_step = false;
            p->blocks[kept++] = b;
        } else {
            dsc__dev_free_raw(ctx, b->data, b->bytes);
            free(b);
        }
    }
    p->n = kept;
}

void dsc__grad_pool_free(dsc_ctx_t *ctx) {
    dsc_grad_pool_t *p = &ctx->grad_pool;
    for (size_t k = 0; k < p->n; k++) {
        if (p->blocks[k]->in_use) give_back(ctx, p->blocks[k]);
        dsc__dev_free_raw(ctx, p->blocks[k]->data, p->blocks[k]->bytes);
        free(p->blocks[k]);
    }
    free(p->blocks);
    memset(p, 0, sizeof *p);
}

void *dsc__grad_pool_scratch(dsc_ctx_t *ctx, size_t n_bytes) {
    const size_t bytes = align_up(n_bytes);
    dsc_grad_block_t *b = find_free(&ctx->grad_pool, bytes);
    if (!b) b = block_new(ctx, bytes);
    if (!b) return dsc__fail(ctx, DSC_ERR_NOMEM, "out of memory: an op's scratch needs %zu bytes on %s", bytes,
                             ctx->device.name);
    b->in_use = true;
    b->used_this_step = true;
    ctx->grad_pool.in_use_bytes += bytes;
    dsc__mem_add(ctx, DSC_MEM_ACTIVATIONS, bytes);
    return b->data;
}

void dsc__grad_pool_scratch_give(dsc_ctx_t *ctx, void *ptr) {
    if (!ptr) return;
    for (size_t k = ctx->grad_pool.n; k-- > 0;)
        if (ctx->grad_pool.blocks[k]->data == ptr && ctx->grad_pool.blocks[k]->in_use) {
            give_back(ctx, ctx->grad_pool.blocks[k]);
            return;
        }
}

size_t dsc__grad_pool_held_bytes(const dsc_ctx_t *ctx) {
    size_t n = 0;
    for (size_t k = 0; k < ctx->grad_pool.n; k++) n += ctx->grad_pool.blocks[k]->bytes;
    return n;
}

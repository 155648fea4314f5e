/* The per-step arenas: activations, their gradients, tape nodes and tensor headers are
 * bump-allocated and released together at the end of a step. Two arenas: host metadata
 * (ctx->arena) and tensor data on the device (ctx->data_arena); chunk headers are host
 * memory apart from the chunk's bytes. The bytes handed out by both are counted as
 * DSC_MEM_ACTIVATIONS, so the peak shows what a step really needs. */
#include <stdlib.h>

#include "core/internal.h"

#define ARENA_MIN_CHUNK ((size_t)4 << 20)
#define ARENA_MAX_GROW ((size_t)256 << 20)

static size_t align_up(size_t n) { return (n + DSC_ALIGN - 1) / DSC_ALIGN * DSC_ALIGN; }

static dsc_arena_chunk_t *chunk_new(dsc_ctx_t *ctx, const dsc_arena_t *a, size_t capacity) {
    capacity = align_up(capacity); /* aligned_alloc needs a size that is a multiple of the alignment */
    dsc_arena_chunk_t *c = malloc(sizeof *c);
    if (!c) return NULL;
    c->base = a->on_device ? dsc__dev_alloc_raw(ctx, capacity) : aligned_alloc(DSC_ALIGN, capacity);
    if (!c->base) {
        free(c);
        return NULL;
    }
    c->next = NULL;
    c->capacity = capacity;
    c->used = 0;
    return c;
}

void dsc__arena_chunk_free(dsc_ctx_t *ctx, const dsc_arena_t *a, dsc_arena_chunk_t *c) {
    if (!c) return;
    if (a->on_device)
        dsc__dev_free_raw(ctx, c->base, c->capacity);
    else
        free(c->base);
    free(c);
}

static void *arena_alloc(dsc_ctx_t *ctx, dsc_arena_t *a, size_t n_bytes) {
    size_t need = align_up(n_bytes ? n_bytes : 1);
    dsc_arena_chunk_t *c = a->head;
    if (!c || c->capacity - c->used < need) {
        if (a->spare && a->spare->capacity >= need) {
            c = a->spare;
            a->spare = NULL;
            c->used = 0;
        } else {
            size_t cap = need > ARENA_MIN_CHUNK ? need : ARENA_MIN_CHUNK;
            /* Grow geometrically so a step needs few chunks, but by at most ARENA_MAX_GROW
             * beyond the need: past a large reserved chunk (the memory plan), doubling would
             * double the step's device memory for a small overshoot (it did: a 4.3 GB plan
             * exceeded by the LM head's padding took 8.6 GB more on an H100). The next step
             * runs from one chunk of the total (arena_reset). */
            if (a->head && a->head->capacity * 2 > cap) cap = a->head->capacity * 2;
            if (cap > need + ARENA_MAX_GROW) cap = need + ARENA_MAX_GROW;
            c = chunk_new(ctx, a, cap);
            if (!c)
                return dsc__fail(ctx, DSC_ERR_NOMEM, "out of memory: the step arena (%s) needs %zu more bytes",
                                 a->on_device ? ctx->device.name : "host metadata", need);
        }
        c->next = a->head;
        a->head = c;
    }
    void *p = c->base + c->used;
    c->used += need;
    a->used_bytes += need;
    dsc__mem_add(ctx, DSC_MEM_ACTIVATIONS, need);
    return p;
}

void *dsc__arena_alloc(dsc_ctx_t *ctx, size_t n_bytes) { return arena_alloc(ctx, &ctx->arena, n_bytes); }

void *dsc__arena_alloc_data(dsc_ctx_t *ctx, size_t n_bytes) {
    ctx->data_arena.on_device = true;
    return arena_alloc(ctx, &ctx->data_arena, n_bytes);
}

static void arena_reset(dsc_ctx_t *ctx, dsc_arena_t *a) {
    /* Keep one chunk big enough for everything this step used, so the next step (which
     * usually needs the same) runs from one chunk whose pages are already mapped. */
    size_t used_capacity = 0;
    dsc_arena_chunk_t *keep = a->spare;
    for (dsc_arena_chunk_t *c = a->head; c;) {
        dsc_arena_chunk_t *next = c->next;
        used_capacity += c->used;
        if (!keep || c->capacity > keep->capacity) {
            dsc__arena_chunk_free(ctx, a, keep);
            keep = c;
        } else {
            dsc__arena_chunk_free(ctx, a, c);
        }
        c = next;
    }
    if (keep && keep->capacity < used_capacity) {
        /* Several chunks were needed: replace them by one of the total size (a failure
         * here only costs speed; the next step allocates as needed). */
        dsc_arena_chunk_t *bigger = chunk_new(ctx, a, used_capacity + used_capacity / 8);
        if (bigger) {
            dsc__arena_chunk_free(ctx, a, keep);
            keep = bigger;
        }
    }
    if (keep) {
        keep->next = NULL;
        keep->used = 0;
    }
    a->spare = keep;
    a->head = NULL;
    dsc__mem_sub(ctx, DSC_MEM_ACTIVATIONS, a->used_bytes);
    a->used_bytes = 0;
}

dsc_status_t dsc_ctx_reserve_step_memory(dsc_ctx_t *ctx, size_t n_bytes) {
    if (!ctx) return DSC_ERR_INVALID;
    dsc_arena_t *a = &ctx->data_arena;
    if (a->head)
        return dsc_ctx_set_error(ctx, DSC_ERR_MISUSE,
                                 "dsc_ctx_reserve_step_memory: called inside a step (end it with dsc_ctx_end_step)");
    if (a->spare && a->spare->capacity >= n_bytes) return DSC_OK;
    a->on_device = true;
    dsc_arena_chunk_t *c = chunk_new(ctx, a, n_bytes ? n_bytes : 1);
    if (!c)
        return dsc_ctx_set_error(ctx, DSC_ERR_NOMEM, "out of memory reserving %zu bytes of step memory on %s",
                                 n_bytes, ctx->device.name);
    dsc__arena_chunk_free(ctx, a, a->spare);
    a->spare = c;
    return DSC_OK;
}

void dsc__arena_reset(dsc_ctx_t *ctx) {
    dsc__grad_pool_end_step(ctx); /* the owners of its gradients live in the arena */
    arena_reset(ctx, &ctx->arena);
    arena_reset(ctx, &ctx->data_arena);
}

void dsc__arena_free(dsc_ctx_t *ctx) {
    dsc__arena_reset(ctx);
    dsc__grad_pool_free(ctx);
    dsc__arena_chunk_free(ctx, &ctx->arena, ctx->arena.spare);
    ctx->arena.spare = NULL;
    dsc__arena_chunk_free(ctx, &ctx->data_arena, ctx->data_arena.spare);
    ctx->data_arena.spare = NULL;
}

/* Marks and rewinds of the step arena (src/core/arena.c): activation checkpointing
 * (src/core/recompute.c) releases a checkpointed function's intermediates right after its
 * forward, and a recompute's intermediates and their gradients right after its backward,
 * instead of at the end of the step. Chunks taken after a mark are kept as the arena's
 * spare (the largest one), so a step that rewinds repeatedly does not call malloc again. */
#include <stdint.h>
#include <stdlib.h>

#include "core/internal.h"

static size_t header_size(void) { return (sizeof(dsc_arena_chunk_t) + DSC_ALIGN - 1) / DSC_ALIGN * DSC_ALIGN; }
static uintptr_t chunk_data(const dsc_arena_chunk_t *c) { return (uintptr_t)c + header_size(); }

dsc_arena_mark_t dsc__arena_mark(const dsc_ctx_t *ctx) {
    dsc_arena_mark_t m = {ctx->arena.head, ctx->arena.head ? ctx->arena.head->used : 0, ctx->arena.used_bytes};
    return m;
}

static bool mark_valid(const dsc_arena_t *a, dsc_arena_mark_t m) {
    if (m.used_bytes > a->used_bytes) return false;
    if (!m.chunk) return true;
    for (const dsc_arena_chunk_t *c = a->head; c; c = c->next)
        if (c == m.chunk) return c->used >= m.chunk_used;
    return false;
}

dsc_status_t dsc__arena_rewind(dsc_ctx_t *ctx, dsc_arena_mark_t m) {
    dsc_arena_t *a = &ctx->arena;
    if (!mark_valid(a, m))
        return dsc_ctx_set_error(ctx, DSC_ERR_MISUSE, "arena rewind: the mark is gone (was the step ended inside an "
                                                      "activation-checkpointed function?)");
    while (a->head != m.chunk) {
        dsc_arena_chunk_t *c = a->head;
        a->head = c->next;
        c->next = NULL;
        c->used = 0;
        if (!a->spare || c->capacity > a->spare->capacity) {
            free(a->spare);
            a->spare = c;
        } else {
            free(c);
        }
    }
    if (a->head) a->head->used = m.chunk_used;
    dsc__mem_sub(ctx, DSC_MEM_ACTIVATIONS, a->used_bytes - m.used_bytes);
    a->used_bytes = m.used_bytes;
    return DSC_OK;
}

bool dsc__arena_since_mark(const dsc_ctx_t *ctx, dsc_arena_mark_t m, const void *ptr) {
    uintptr_t p = (uintptr_t)ptr;
    for (const dsc_arena_chunk_t *c = ctx->arena.head; c; c = c->next) {
        uintptr_t lo = chunk_data(c) + (c == m.chunk ? m.chunk_used : 0), hi = chunk_data(c) + c->used;
        if (p >= lo && p < hi) return true;
        if (c == m.chunk) break;
    }
    return false;
}

/* Marks and rewinds of the step arenas (src/core/arena.c): activation checkpointing
 * (src/core/recompute.c) releases a checkpointed function's intermediates right after its
 * forward, and a recompute's intermediates and their gradients right after its backward,
 * instead of at the end of the step. A mark covers both arenas (host metadata and device
 * data). Chunks taken after a mark are kept as the arena's spare (the largest one), so a
 * step that rewinds repeatedly does not allocate again. */
#include <stdint.h>
#include <stdlib.h>

#include "core/internal.h"

static dsc_arena_pos_t pos_of(const dsc_arena_t *a) {
    dsc_arena_pos_t p = {a->head, a->head ? a->head->used : 0, a->used_bytes};
    return p;
}

dsc_arena_mark_t dsc__arena_mark(const dsc_ctx_t *ctx) {
    dsc_arena_mark_t m = {pos_of(&ctx->arena), pos_of(&ctx->data_arena)};
    return m;
}

static bool pos_valid(const dsc_arena_t *a, dsc_arena_pos_t m) {
    if (m.used_bytes > a->used_bytes) return false;
    if (!m.chunk) return true;
    for (const dsc_arena_chunk_t *c = a->head; c; c = c->next)
        if (c == m.chunk) return c->used >= m.chunk_used;
    return false;
}

static void rewind_to(dsc_ctx_t *ctx, dsc_arena_t *a, dsc_arena_pos_t m) {
    while (a->head != m.chunk) {
        dsc_arena_chunk_t *c = a->head;
        a->head = c->next;
        c->next = NULL;
        c->used = 0;
        if (!a->spare || c->capacity > a->spare->capacity) {
            dsc__arena_chunk_free(ctx, a, a->spare);
            a->spare = c;
        } else {
            dsc__arena_chunk_free(ctx, a, c);
        }
    }
    if (a->head) a->head->used = m.chunk_used;
    dsc__mem_sub(ctx, DSC_MEM_ACTIVATIONS, a->used_bytes - m.used_bytes);
    a->used_bytes = m.used_bytes;
}

dsc_status_t dsc__arena_rewind(dsc_ctx_t *ctx, dsc_arena_mark_t m) {
    if (!pos_valid(&ctx->arena, m.meta) || !pos_valid(&ctx->data_arena, m.data))
        return dsc_ctx_set_error(ctx, DSC_ERR_MISUSE, "arena rewind: the mark is gone (was the step ended inside an "
                                                      "activation-checkpointed function?)");
    rewind_to(ctx, &ctx->arena, m.meta);
    rewind_to(ctx, &ctx->data_arena, m.data);
    return DSC_OK;
}

static bool since(const dsc_arena_t *a, dsc_arena_pos_t m, uintptr_t p) {
    for (const dsc_arena_chunk_t *c = a->head; c; c = c->next) {
        uintptr_t lo = (uintptr_t)c->base + (c == m.chunk ? m.chunk_used : 0), hi = (uintptr_t)c->base + c->used;
        if (p >= lo && p < hi) return true;
        if (c == m.chunk) break;
    }
    return false;
}

bool dsc__arena_since_mark(const dsc_ctx_t *ctx, dsc_arena_mark_t m, const void *ptr) {
    return since(&ctx->arena, m.meta, (uintptr_t)ptr) || since(&ctx->data_arena, m.data, (uintptr_t)ptr);
}

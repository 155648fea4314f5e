/* The pool of stages 2-3's per-use device buffers (a parameter's gathered copy, a layer's
 * gradient buffer): a buffer given back is kept, idle, and the next take of the same size
 * and category reuses it, so after the first micro-step a model whose layers repeat their
 * shapes (a GPT) allocates nothing. Idle buffers are capped at the largest number of bytes
 * that were ever taken at once (the plan's transient peak, as measured), so the pool at most
 * doubles it; beyond the cap a buffer is freed. Taken bytes count under their category as
 * before; idle ones under DSC_MEM_OTHER (memory held, not in use). */
#include <stdlib.h>

#include "core/device.h"
#include "zero/zero_internal.h"

struct zero_pool_buf {
    void *ptr;
    size_t bytes;
    dsc_mem_category_t category;
};

static bool grow(dsc_zero_t *z) {
    const int len = z->pool_len ? 2 * z->pool_len : 32;
    struct zero_pool_buf *v = realloc(z->pool, sizeof *v * (size_t)len);
    if (!v) return false;
    z->pool = v;
    z->pool_len = len;
    return true;
}

void *dsc__zero_pool_take(dsc_zero_t *z, dsc_mem_category_t category, size_t bytes, bool zeroed) {
    void *ptr = NULL;
    for (int i = z->pool_n - 1; i >= 0 && !ptr; i--) {
        struct zero_pool_buf *b = &z->pool[i];
        if (b->bytes != bytes || b->category != category) continue;
        ptr = b->ptr;
        z->pool[i] = z->pool[--z->pool_n];
        z->pool_idle -= bytes;
        dsc__mem_sub(z->ctx, DSC_MEM_OTHER, bytes);
        dsc__mem_add(z->ctx, category, bytes);
        if (zeroed && dsc__dev_zero(z->ctx, ptr, bytes) != DSC_OK) { /* as a fresh one: zero-filled */
            dsc__dev_free(z->ctx, category, ptr, bytes);
            return NULL;
        }
    }
    if (!ptr) {
        ptr = dsc__dev_alloc(z->ctx, category, bytes);
        if (!ptr) return NULL;
        z->pool_allocs++;
    }
    z->pool_taken += bytes;
    if (z->pool_taken > z->pool_cap) z->pool_cap = z->pool_taken;
    return ptr;
}

void dsc__zero_pool_give(dsc_zero_t *z, dsc_mem_category_t category, void *ptr, size_t bytes) {
    if (!ptr) return;
    z->pool_taken -= bytes;
    if (z->pool_idle + bytes > z->pool_cap || (z->pool_n == z->pool_len && !grow(z))) {
        dsc__dev_free(z->ctx, category, ptr, bytes);
        return;
    }
    z->pool[z->pool_n++] = (struct zero_pool_buf){ptr, bytes, category};
    z->pool_idle += bytes;
    dsc__mem_sub(z->ctx, category, bytes);
    dsc__mem_add(z->ctx, DSC_MEM_OTHER, bytes);
}

void dsc__zero_pool_free(dsc_zero_t *z) {
    for (int i = 0; i < z->pool_n; i++) dsc__dev_free(z->ctx, DSC_MEM_OTHER, z->pool[i].ptr, z->pool[i].bytes);
    free(z->pool);
    z->pool = NULL;
    z->pool_n = z->pool_len = 0;
    z->pool_idle = 0;
}

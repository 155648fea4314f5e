/* The pool of stages 2-3's per-use device buffers (a parameter's gathered copy, a layer's
 * gradient buffer): a buffer given back is kept, idle, and the next take of the same size
 * and category reuses it, so after the first micro-step a model whose layers repeat their
 * shapes (a GPT) allocates nothing. Idle buffers are capped at the largest number of bytes
 * that were ever taken at once (the plan's transient peak, as measured), except that of
 * each size as many stay idle as were ever taken at once; beyond that a buffer is freed. So
 * the pool holds at most twice the peak plus, per distinct size, its most taken at once (a
 * GPT: one layer's worth of each of its parameter shapes). Without that exception stage 2,
 * whose peak is one layer's gradients, freed and allocated every other layer's buffers on
 * every micro-step (bench/zero_overhead: 147 of each per micro-batch for GPT-2 124M). Taken bytes count
 * under their category as before; idle ones under DSC_MEM_OTHER (memory held, not in use). */
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

/* Per size and category: buffers taken now and the most taken at once. */
struct zero_pool_class {
    size_t bytes;
    dsc_mem_category_t category;
    int taken, peak, idle;
};

/* The class of (category, bytes), made on first use; NULL only when out of host memory
 * (the buffer is then kept or freed by the cap alone). */
static struct zero_pool_class *class_of(dsc_zero_t *z, dsc_mem_category_t category, size_t bytes) {
    for (int i = 0; i < z->pool_nclasses; i++)
        if (z->pool_classes[i].bytes == bytes && z->pool_classes[i].category == category) return &z->pool_classes[i];
    if (z->pool_nclasses == z->pool_classes_len) {
        const int len = z->pool_classes_len ? 2 * z->pool_classes_len : 16;
        struct zero_pool_class *v = realloc(z->pool_classes, sizeof *v * (size_t)len);
        if (!v) return NULL;
        z->pool_classes = v;
        z->pool_classes_len = len;
    }
    z->pool_classes[z->pool_nclasses] = (struct zero_pool_class){bytes, category, 0, 0, 0};
    return &z->pool_classes[z->pool_nclasses++];
}

void *dsc__zero_pool_take(dsc_zero_t *z, dsc_mem_category_t category, size_t bytes, bool zeroed) {
    void *ptr = NULL;
    struct zero_pool_class *c = class_of(z, category, bytes);
    for (int i = z->pool_n - 1; i >= 0 && !ptr; i--) {
        struct zero_pool_buf *b = &z->pool[i];
        if (b->bytes != bytes || b->category != category) continue;
        ptr = b->ptr;
        z->pool[i] = z->pool[--z->pool_n];
        z->pool_idle -= bytes;
        if (c) c->idle--;
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
    if (c && ++c->taken > c->peak) c->peak = c->taken;
    z->pool_taken += bytes;
    if (z->pool_taken > z->pool_cap) z->pool_cap = z->pool_taken;
    return ptr;
}

void dsc__zero_pool_give(dsc_zero_t *z, dsc_mem_category_t category, void *ptr, size_t bytes) {
    if (!ptr) return;
    z->pool_taken -= bytes;
    struct zero_pool_class *c = class_of(z, category, bytes);
    if (c && c->taken > 0) c->taken--;
    /* Over the cap, a buffer is kept while fewer of its size are idle than were ever taken at
     * once: stage 2's gradient buffers never all live together (the cap is about the
     * largest layer's), and without this every other layer's were freed and allocated again
     * on every micro-step (on CUDA each cudaFree waits for the device). */
    const bool keep = z->pool_idle + bytes <= z->pool_cap || (c && c->idle < c->peak);
    if (!keep || (z->pool_n == z->pool_len && !grow(z))) {
        dsc__dev_free(z->ctx, category, ptr, bytes);
        return;
    }
    z->pool[z->pool_n++] = (struct zero_pool_buf){ptr, bytes, category};
    z->pool_idle += bytes;
    if (c) c->idle++;
    dsc__mem_sub(z->ctx, category, bytes);
    dsc__mem_add(z->ctx, DSC_MEM_OTHER, bytes);
}

void dsc__zero_pool_free(dsc_zero_t *z) {
    for (int i = 0; i < z->pool_n; i++) dsc__dev_free(z->ctx, DSC_MEM_OTHER, z->pool[i].ptr, z->pool[i].bytes);
    free(z->pool);
    free(z->pool_classes);
    z->pool = NULL;
    z->pool_classes = NULL;
    z->pool_n = z->pool_len = 0;
    z->pool_nclasses = z->pool_classes_len = 0;
    z->pool_idle = 0;
}

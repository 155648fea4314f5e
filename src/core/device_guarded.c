/* The guarded test device: CPU memory the host cannot touch. Its buffers live in a memfd
 * mapped twice: the "device address" view, PROT_NONE, is what tensors and flat buffers
 * hold, so any host code outside the device's table that reads or writes tensor data
 * faults at once; a read-write alias of the same pages is what the device's own kernels
 * use, reached by a translation (address + delta, dsc__guarded_host_alias). Running the
 * suite on it (DSC_DEVICE=guarded) proves the engine device-neutral before any GPU code.
 *
 * The translation needs no context (the op kernels take none): each mapping is entered
 * in a small process-wide registry of address ranges, written with atomics, so several
 * contexts (and threads) coexist. This registry is the test device's only shared state. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "amp/amp_internal.h"
#include "optim/optim_internal.h"
#include "core/internal.h"

/* Address space of one guarded device (sparse: pages exist only once written). */
#define GUARDED_BYTES ((size_t)16 << 30)
#define GUARDED_SLOTS 256
#define PUNCH_MIN ((size_t)1 << 20)

typedef struct {
    _Atomic uintptr_t lo; /* 0: free slot */
    _Atomic uintptr_t hi;
    _Atomic intptr_t delta;
} region_slot_t;

static region_slot_t g_regions[GUARDED_SLOTS];

void *dsc__guarded_host_alias(const void *ptr) {
    uintptr_t p = (uintptr_t)ptr;
    if (!p) return NULL;
    for (int i = 0; i < GUARDED_SLOTS; i++) {
        uintptr_t lo = atomic_load_explicit(&g_regions[i].lo, memory_order_acquire);
        if (lo > 1 && p >= lo && p < atomic_load_explicit(&g_regions[i].hi, memory_order_relaxed))
            return (void *)(p + (uintptr_t)atomic_load_explicit(&g_regions[i].delta, memory_order_relaxed));
    }
    return (void *)ptr;
}

/* Free ranges of the device's space, sorted by offset, coalesced. */
typedef struct {
    size_t off, len;
} range_t;

/* An asynchronous host-to-device copy the host has not waited for yet: the copy is made at
 * once, and the bytes its source held are kept, so that the wait (event_sync of its event,
 * or sync) checks the contract a GPU's copy engine relies on: the source stayed untouched
 * until then (on a GPU a page-locked source is read by the DMA later, so a staging buffer
 * refilled too early sends the new bytes). */
typedef struct {
    const void *src;
    size_t n;
    void *bytes;
    dsc_device_event_t *ev;
} pending_copy_t;

typedef struct {
    int fd;
    char *dev;   /* PROT_NONE view: device addresses */
    char *alias; /* read-write view for the kernels */
    size_t size;
    int slot;
    range_t *free_list;
    size_t n_free, cap_free;
    pending_copy_t *pending; /* in issue order */
    size_t n_pending, cap_pending;
} guarded_t;

static size_t align64(size_t n) { return (n + 63) / 64 * 64; }

static void *g_alloc(dsc_device_t *d, size_t n_bytes) {
    guarded_t *g = d->impl;
    size_t need = align64(n_bytes ? n_bytes : 1);
    for (size_t i = 0; i < g->n_free; i++) {
        if (g->free_list[i].len < need) continue;
        size_t off = g->free_list[i].off;
        g->free_list[i].off += need;
        g->free_list[i].len -= need;
        if (g->free_list[i].len == 0) {
            memmove(&g->free_list[i], &g->free_list[i + 1], (g->n_free - i - 1) * sizeof *g->free_list);
            g->n_free--;
        }
        return g->dev + off;
    }
    return NULL;
}

static void g_free(dsc_device_t *d, void *ptr, size_t n_bytes) {
    guarded_t *g = d->impl;
    if (!ptr) return;
    size_t off = (size_t)((char *)ptr - g->dev), len = align64(n_bytes ? n_bytes : 1);
    if (len >= PUNCH_MIN) { /* give the pages back (they read as zero afterwards) */
        size_t lo = (off + 4095) / 4096 * 4096, hi = (off + len) / 4096 * 4096;
        if (hi > lo) fallocate(g->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)lo, (off_t)(hi - lo));
    }
    size_t i = 0;
    while (i < g->n_free && g->free_list[i].off < off) i++;
    bool merge_prev = i > 0 && g->free_list[i - 1].off + g->free_list[i - 1].len == off;
    bool merge_next = i < g->n_free && off + len == g->free_list[i].off;
    if (merge_prev && merge_next) {
        g->free_list[i - 1].len += len + g->free_list[i].len;
        memmove(&g->free_list[i], &g->free_list[i + 1], (g->n_free - i - 1) * sizeof *g->free_list);
        g->n_free--;
    } else if (merge_prev) {
        g->free_list[i - 1].len += len;
    } else if (merge_next) {
        g->free_list[i].off = off;
        g->free_list[i].len += len;
    } else {
        if (g->n_free == g->cap_free) {
            size_t cap = g->cap_free ? 2 * g->cap_free : 64;
            range_t *r = realloc(g->free_list, cap * sizeof *r);
            if (!r) return; /* leaks the range's address space only */
            g->free_list = r;
            g->cap_free = cap;
        }
        memmove(&g->free_list[i + 1], &g->free_list[i], (g->n_free - i) * sizeof *g->free_list);
        g->free_list[i] = (range_t){off, len};
        g->n_free++;
    }
}

static bool in_device(const guarded_t *g, const void *p, size_t n) {
    return (const char *)p >= g->dev && (const char *)p + n <= g->dev + g->size;
}

/* The alias of a device range. Host pointers (wrapped caller memory) pass through
 * unchanged, as on the CPU device; another guarded context's memory (ranks of the fake
 * communicator in one process, like peer access between GPUs) goes through the registry. */
static void *alias_of(const guarded_t *g, const void *p, size_t n) {
    if (in_device(g, p, n)) return g->alias + ((const char *)p - g->dev);
    return dsc__guarded_host_alias(p);
}

static int g_memset(dsc_device_t *d, void *dst, int value, size_t n) {
    memset(alias_of(d->impl, dst, n), value, n);
    return 0;
}
static int g_copy(dsc_device_t *d, void *dst, const void *src, size_t n) {
    memmove(alias_of(d->impl, dst, n), alias_of(d->impl, src, n), n);
    return 0;
}
static int check_sources(dsc_device_t *d, size_t count);
/* At every copy through the table the sources of the pending copies are checked too: a
 * source changed while its copy is pending is caught at the device's next copy, not only at
 * the wait (which a missing wait never reaches). */
static int check_untouched(dsc_device_t *d) { return check_sources(d, 0); }
static int g_from_host(dsc_device_t *d, void *dst, const void *host_src, size_t n) {
    if (check_untouched(d) != 0) return -1;
    memcpy(alias_of(d->impl, dst, n), host_src, n);
    return 0;
}
static int g_to_host(dsc_device_t *d, void *host_dst, const void *src, size_t n) {
    if (check_untouched(d) != 0) return -1;
    memcpy(host_dst, alias_of(d->impl, src, n), n);
    return 0;
}
/* Done at once: a valid "later" (the offload's mirror path runs here). */
static int g_to_host_async(dsc_device_t *d, void *host_dst, const void *src, size_t n, dsc_device_event_t *done) {
    if (check_untouched(d) != 0) return -1;
    memcpy(host_dst, alias_of(d->impl, src, n), n);
    if (done) dsc__device_cpu_table()->event_record(d, done);
    return 0;
}
/* The copy at once (the same access checks as from_host: a source on the device faults), and
 * its source's bytes kept until the host waits for it (pending_copy_t). */
static int g_from_host_async(dsc_device_t *d, void *dst, const void *host_src, size_t n, dsc_device_event_t *read) {
    guarded_t *g = d->impl;
    if (check_untouched(d) != 0) return -1;
    memcpy(alias_of(g, dst, n), host_src, n);
    if (n && g->n_pending == g->cap_pending) {
        size_t cap = g->cap_pending ? 2 * g->cap_pending : 8;
        pending_copy_t *p = realloc(g->pending, cap * sizeof *p);
        if (!p) goto nomem;
        g->pending = p;
        g->cap_pending = cap;
    }
    if (n) {
        void *bytes = malloc(n);
        if (!bytes) goto nomem;
        memcpy(bytes, host_src, n);
        g->pending[g->n_pending++] = (pending_copy_t){host_src, n, bytes, read};
    }
    if (read) dsc__device_cpu_table()->event_record(d, read);
    return 0;
nomem:
    dsc_ctx_set_error(d->ctx, DSC_ERR_NOMEM, "device guarded: out of memory keeping the source of an asynchronous "
                      "host-to-device copy of %zu bytes", n);
    return -1;
}
/* Checks the sources of the pending copies, the host having waited for the first `count`:
 * those, and any that changed (reported once), are dropped. */
static int check_sources(dsc_device_t *d, size_t count) {
    guarded_t *g = d->impl;
    int rc = 0;
    size_t kept = 0;
    for (size_t i = 0; i < g->n_pending; i++) {
        pending_copy_t *p = &g->pending[i];
        const bool changed = memcmp(p->src, p->bytes, p->n) != 0;
        if (changed && rc == 0) {
            dsc_ctx_set_error(d->ctx, DSC_ERR_INVALID, "device guarded: the host source of an asynchronous "
                              "host-to-device copy (%zu bytes at %p) changed before the host waited for the copy "
                              "(event_sync of its event, or sync): on a GPU the device would get the new bytes",
                              p->n, p->src);
            rc = -1;
        }
        if (changed || i < count) free(p->bytes);
        else g->pending[kept++] = *p;
    }
    g->n_pending = kept;
    return rc;
}

/* The copies up to the last one that records ev are done (stream order). */
static int g_event_sync(dsc_device_t *d, dsc_device_event_t *ev) {
    guarded_t *g = d->impl;
    size_t count = 0;
    for (size_t i = 0; i < g->n_pending; i++)
        if (g->pending[i].ev == ev) count = i + 1;
    return check_sources(d, count);
}
static int g_sync(dsc_device_t *d) { return check_sources(d, ((guarded_t *)d->impl)->n_pending); }
static void g_event_free(dsc_device_t *d, dsc_device_event_t *ev) {
    guarded_t *g = d->impl;
    for (size_t i = 0; i < g->n_pending; i++)
        if (g->pending[i].ev == ev) g->pending[i].ev = NULL; /* waited for by a later event or a sync */
    dsc__device_cpu_table()->event_free(d, ev);
}
static int g_convert(dsc_device_t *d, void *dst, dsc_dtype_t dd, const void *src, dsc_dtype_t sd, size_t n) {
    void *a = alias_of(d->impl, dst, n * dsc_dtype_size(dd));
    const void *b = alias_of(d->impl, src, n * dsc_dtype_size(sd));
    return dsc_convert(a, dd, b, sd, n) == DSC_OK ? 0 : -1;
}
/* Any guarded context's memory, not only this one's: a communicator's context may differ
 * from the one that owns the buffers it moves (as a GPU pointer is device memory whichever
 * context asks). */
static bool g_host_accessible(const dsc_device_t *d, const void *ptr) {
    return !in_device(d->impl, ptr, 1) && dsc__guarded_host_alias(ptr) == ptr;
}

static void g_destroy(dsc_device_t *d) {
    guarded_t *g = d->impl;
    if (!g) return;
    for (size_t i = 0; i < g->n_pending; i++) free(g->pending[i].bytes);
    free(g->pending);
    if (g->slot >= 0) atomic_store_explicit(&g_regions[g->slot].lo, 0, memory_order_release);
    if (g->dev && g->dev != MAP_FAILED) munmap(g->dev, g->size);
    if (g->alias && g->alias != MAP_FAILED) munmap(g->alias, g->size);
    if (g->fd >= 0) close(g->fd);
    free(g->free_list);
    free(g);
    d->impl = NULL;
}

const struct dsc_backend *dsc__backend_guarded(void);

static dsc_device_table_t g_table;
static pthread_once_t g_table_once = PTHREAD_ONCE_INIT;

static void guarded_table_fill(void) {
    dsc_device_table_t t;
    {
        const dsc_device_table_t *cpu = dsc__device_cpu_table();
        t = *cpu;
        t.name = "guarded";
        t.alloc = g_alloc;
        t.free = g_free;
        t.memset = g_memset;
        t.copy = g_copy;
        t.from_host = g_from_host;
        t.to_host = g_to_host;
        t.to_host_async = g_to_host_async;
        t.from_host_async = g_from_host_async;
        t.sync = g_sync;
        t.event_sync = g_event_sync;
        t.event_free = g_event_free;
        t.convert = g_convert;
        t.host_accessible = g_host_accessible;
        t.destroy = g_destroy;
        t.ops = dsc__backend_guarded();
        t.amp = &dsc__amp_ops_guarded;
        t.optim = &dsc__optim_ops_guarded;
    }
    g_table = t;
}

static const dsc_device_table_t *guarded_table(void) {
    pthread_once(&g_table_once, guarded_table_fill);
    return &g_table;
}

dsc_status_t dsc__device_guarded_init(dsc_device_t *dev, char *err, size_t err_len) {
    guarded_t *g = calloc(1, sizeof *g);
    if (!g) {
        snprintf(err, err_len, "device guarded: out of memory");
        return DSC_ERR_NOMEM;
    }
    g->fd = -1;
    g->slot = -1;
    g->size = GUARDED_BYTES;
    dev->impl = g;
    dev->table = guarded_table();
    g->fd = memfd_create("dsc-guarded", MFD_CLOEXEC);
    if (g->fd < 0 || ftruncate(g->fd, (off_t)g->size) != 0) goto fail;
    g->dev = mmap(NULL, g->size, PROT_NONE, MAP_SHARED | MAP_NORESERVE, g->fd, 0);
    g->alias = mmap(NULL, g->size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, g->fd, 0);
    if (g->dev == MAP_FAILED || g->alias == MAP_FAILED) goto fail;
    g->free_list = malloc(64 * sizeof *g->free_list);
    if (!g->free_list) goto fail;
    g->cap_free = 64;
    g->free_list[0] = (range_t){0, g->size};
    g->n_free = 1;
    for (int i = 0; i < GUARDED_SLOTS && g->slot < 0; i++) {
        uintptr_t expect = 0;
        /* claim the slot with a marker, fill it, then publish lo */
        if (atomic_compare_exchange_strong(&g_regions[i].lo, &expect, (uintptr_t)1)) {
            atomic_store(&g_regions[i].hi, (uintptr_t)g->dev + g->size);
            atomic_store(&g_regions[i].delta, (intptr_t)(g->alias - g->dev));
            atomic_store_explicit(&g_regions[i].lo, (uintptr_t)g->dev, memory_order_release);
            g->slot = i;
        }
    }
    if (g->slot < 0) {
        snprintf(err, err_len, "device guarded: more than %d guarded contexts at once", GUARDED_SLOTS);
        g_destroy(dev);
        return DSC_ERR_UNSUPPORTED;
    }
    return DSC_OK;
fail:
    snprintf(err, err_len, "device guarded: mapping %zu bytes of memfd failed: %s", g->size, strerror(errno));
    g_destroy(dev);
    return DSC_ERR_NOMEM;
}

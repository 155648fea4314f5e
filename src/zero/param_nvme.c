/* The NVMe swapper of stage 3's parameter partition (param_nvme.h): the swap file, its buffer
 * pool, reads (ahead) into device memory and the write-back after a step. */
#define _GNU_SOURCE
#include "zero/param_nvme.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/device.h"
#include "zero/aio.h"

typedef enum { PB_FREE = 0, PB_READING, PB_FULL, PB_WRITING } pb_state_t;

typedef struct pbuf {
    char *host;      /* buf_bytes, DSC_NVME_ALIGN aligned */
    void *raw;       /* what was allocated (host is raw rounded up) */
    pb_state_t state;
    int param;       /* the parameter whose piece it holds or moves (-1: none) */
    int64_t piece;
    int64_t order;   /* when its I/O was submitted (the oldest is waited for first) */
    /* Recorded at the asynchronous upload of its bytes to the device (from_host_async, where
     * the device has it; NULL otherwise); uploading: not waited for yet. The buffer is not
     * refilled (read into, filled for a write, freed) before the host waits for it. */
    dsc_device_event_t *up;
    bool uploading;
} pbuf_t;

struct dsc_pnvme {
    dsc_ctx_t *ctx;
    int rank, n;
    int64_t *shard, *local, *off; /* per parameter: elements, offset in the partition, in the file */
    size_t es;
    int64_t file_bytes, buf_bytes, buf_elems;
    int fd;
    bool direct, broken, pinned;
    char path[512];
    char what[1200];
    dsc_aio_t *aio;
    pbuf_t *bufs;
    int n_bufs;
    int64_t order;
    dsc_pnvme_stats_t stats;
};

static dsc_status_t pv_fail(dsc_pnvme_t *pv, dsc_status_t st, const char *what, const char *detail) {
    return dsc_ctx_set_error(pv->ctx, st, "offload_param nvme swap file in '%s' (rank %d): %s: %s", pv->path, pv->rank,
                             what, detail);
}

/* The host waits until no upload reads buffer b (before its bytes change). */
static dsc_status_t upload_done(dsc_pnvme_t *pv, int b) {
    pbuf_t *buf = &pv->bufs[b];
    if (!buf->uploading) return DSC_OK;
    buf->uploading = false;
    return dsc__dev_event_sync(pv->ctx, buf->up);
}

/* Buffer b's bytes to the device: asynchronously where the device can (the host goes on; the
 * all-gather after it on the stream sees them), else waiting. */
static dsc_status_t upload(dsc_pnvme_t *pv, int b, void *dst, size_t bytes) {
    pbuf_t *buf = &pv->bufs[b];
    if (!buf->up) return dsc__dev_from_host(pv->ctx, dst, buf->host, bytes);
    dsc_status_t st = dsc__dev_from_host_async(pv->ctx, dst, buf->host, bytes, buf->up);
    buf->uploading = st == DSC_OK;
    return st;
}

static int64_t pieces(const dsc_pnvme_t *pv, int i) { return (pv->shard[i] + pv->buf_elems - 1) / pv->buf_elems; }
static int64_t piece_elems(const dsc_pnvme_t *pv, int i, int64_t c) {
    const int64_t rest = pv->shard[i] - c * pv->buf_elems;
    return rest < pv->buf_elems ? rest : pv->buf_elems;
}

/* Submits piece c of parameter i (read or write) from / into buffer b: whole aligned blocks
 * (the record's padding included, as O_DIRECT wants). */
static dsc_status_t submit(dsc_pnvme_t *pv, int b, int i, int64_t c, bool write) {
    pbuf_t *buf = &pv->bufs[b];
    if (!write) { /* a read refills it (a write's bytes were filled after upload_done) */
        dsc_status_t st = upload_done(pv, b);
        if (st != DSC_OK) return st;
    }
    const size_t bytes = (size_t)dsc__nvme_round(piece_elems(pv, i, c) * (int64_t)pv->es);
    const off_t at = (off_t)(pv->off[i] + c * pv->buf_bytes);
    if (dsc__aio_submit(pv->aio, b, write, pv->fd, buf->host, bytes, at) != DSC_OK)
        return pv_fail(pv, DSC_ERR_NOMEM, "queueing I/O", "out of memory");
    buf->state = write ? PB_WRITING : PB_READING;
    buf->param = i;
    buf->piece = c;
    buf->order = pv->order++;
    *(write ? &pv->stats.bytes_written : &pv->stats.bytes_read) += (int64_t)bytes;
    return DSC_OK;
}

/* Waits for buffer b's I/O: a read leaves it FULL, a write FREE. A failed write makes the
 * file inconsistent. */
static dsc_status_t finish(dsc_pnvme_t *pv, int b) {
    pbuf_t *buf = &pv->bufs[b];
    if (buf->state != PB_READING && buf->state != PB_WRITING) return DSC_OK;
    const bool write = buf->state == PB_WRITING;
    char msg[512];
    dsc_status_t st = dsc__aio_wait(pv->aio, b, msg, sizeof msg);
    if (st != DSC_OK) {
        char what[128];
        snprintf(what, sizeof what, "%s parameter %d's shard (piece %lld)", write ? "writing" : "reading", buf->param,
                 (long long)buf->piece);
        pv->broken = pv->broken || write;
        buf->state = PB_FREE;
        buf->param = -1;
        return pv_fail(pv, st, what, msg);
    }
    buf->state = write ? PB_FREE : PB_FULL;
    if (write) buf->param = -1;
    return DSC_OK;
}

static void release(dsc_pnvme_t *pv, int b) {
    if (b < 0) return;
    pv->bufs[b].state = PB_FREE;
    pv->bufs[b].param = -1;
}

/* A free buffer: one free already, else the oldest write waited for, else (evict) the oldest
 * read-ahead dropped. */
static dsc_status_t take_free(dsc_pnvme_t *pv, bool evict, int *out) {
    *out = -1;
    int oldest_w = -1, oldest_r = -1;
    for (int b = 0; b < pv->n_bufs; b++) {
        const pbuf_t *x = &pv->bufs[b];
        if (x->state == PB_FREE) {
            *out = b;
            return DSC_OK;
        }
        int *o = x->state == PB_WRITING ? &oldest_w : &oldest_r;
        if (*o < 0 || x->order < pv->bufs[*o].order) *o = b;
    }
    const int b = oldest_w >= 0 ? oldest_w : evict ? oldest_r : -1;
    if (b < 0) return pv_fail(pv, DSC_ERR_INVALID, "buffers", "no buffer can be freed (internal error)");
    dsc_status_t st = finish(pv, b);
    release(pv, b);
    *out = b;
    return st;
}

/* The buffer holding or reading parameter i's (only) piece, or -1. */
static int holding(const dsc_pnvme_t *pv, int i) {
    for (int b = 0; b < pv->n_bufs; b++)
        if (pv->bufs[b].param == i && (pv->bufs[b].state == PB_READING || pv->bufs[b].state == PB_FULL)) return b;
    return -1;
}

/* Every I/O finished and every buffer free; the first error wins. */
static dsc_status_t drain(dsc_pnvme_t *pv) {
    dsc_status_t first = DSC_OK;
    for (int b = 0; b < pv->n_bufs; b++) {
        dsc_status_t st = finish(pv, b);
        if (first == DSC_OK) first = st;
        release(pv, b);
    }
    return first;
}

static dsc_status_t check_usable(dsc_pnvme_t *pv, const char *what) {
    if (!pv->broken) return DSC_OK;
    return pv_fail(pv, DSC_ERR_IO, what, "the swap file is inconsistent after an earlier write error; restart from "
                   "the last checkpoint");
}

void dsc__pnvme_free(dsc_pnvme_t *pv) {
    if (!pv) return;
    dsc__aio_free(pv->aio); /* waits for anything still in flight into the buffers */
    dsc_device_t *dev = dsc__ctx_device(pv->ctx);
    for (int b = 0; pv->bufs && b < pv->n_bufs; b++) {
        if (pv->bufs[b].up) {
            if (upload_done(pv, b) != DSC_OK)
                dsc_ctx_log(pv->ctx, DSC_LOG_WARN, "rank %d: waiting for a parameter swap buffer's upload: %s", pv->rank,
                            dsc_ctx_errmsg(pv->ctx));
            dsc__dev_event_free(pv->ctx, pv->bufs[b].up);
        }
        if (!pv->bufs[b].raw) continue;
        if (pv->pinned) dev->table->host_free_pinned(dev, pv->bufs[b].raw, (size_t)pv->buf_bytes + DSC_NVME_ALIGN);
        else free(pv->bufs[b].raw);
    }
    free(pv->bufs);
    free(pv->shard);
    if (pv->fd >= 0) close(pv->fd);
    free(pv);
}

/* buffer_count aligned buffers, page-locked by the device when asked and offered (all or
 * none: one flag frees them). */
static bool alloc_buffers(dsc_pnvme_t *pv, bool want_pinned) {
    dsc_device_t *dev = dsc__ctx_device(pv->ctx);
    const size_t bytes = (size_t)pv->buf_bytes;
    pv->pinned = want_pinned && dev->table && dev->table->host_alloc_pinned && dev->table->host_free_pinned;
    for (int attempt = 0; attempt < 2; attempt++) {
        bool ok = true;
        for (int b = 0; b < pv->n_bufs && ok; b++) {
            void *raw = NULL;
            if (pv->pinned) raw = dev->table->host_alloc_pinned(dev, bytes + DSC_NVME_ALIGN);
            else if (posix_memalign(&raw, DSC_NVME_ALIGN, bytes) != 0) raw = NULL;
            ok = raw != NULL;
            pv->bufs[b].raw = raw;
            pv->bufs[b].host = raw ? (char *)(((uintptr_t)raw + DSC_NVME_ALIGN - 1) / DSC_NVME_ALIGN * DSC_NVME_ALIGN) : NULL;
            if (raw) memset(pv->bufs[b].host, 0, bytes);
        }
        if (ok) return true;
        for (int b = 0; b < pv->n_bufs; b++) { /* pinned memory ran out: ordinary memory then */
            if (pv->bufs[b].raw && pv->pinned) dev->table->host_free_pinned(dev, pv->bufs[b].raw, bytes + DSC_NVME_ALIGN);
            else free(pv->bufs[b].raw);
            pv->bufs[b].raw = NULL;
            pv->bufs[b].host = NULL;
        }
        if (!pv->pinned) return false;
        pv->pinned = false;
    }
    return false;
}

dsc_status_t dsc__pnvme_new(dsc_ctx_t *ctx, const dsc_pnvme_options_t *o, int rank, const int64_t *shard, int n,
                            dsc_dtype_t dtype, dsc_pnvme_t **out, char *err, size_t errsz) {
    static const char key[] = "zero_optimization.offload_param.nvme_path";
    *out = NULL;
    if (!o->nvme_path || !o->nvme_path[0]) {
        snprintf(err, errsz, "%s: required when offload_param.device is \"nvme\"", key);
        return DSC_ERR_CONFIG;
    }
    if (o->buffer_size <= 0) {
        snprintf(err, errsz, "zero_optimization.offload_param.buffer_size %lld must be positive", (long long)o->buffer_size);
        return DSC_ERR_CONFIG;
    }
    dsc_pnvme_t *pv = calloc(1, sizeof *pv);
    if (pv) pv->shard = calloc(3 * (size_t)n + 1, sizeof *pv->shard);
    if (!pv || !pv->shard) {
        free(pv);
        snprintf(err, errsz, "offload_param nvme (rank %d): out of memory", rank);
        return DSC_ERR_NOMEM;
    }
    pv->ctx = ctx;
    pv->rank = rank;
    pv->n = n;
    pv->fd = -1;
    pv->es = dsc_dtype_size(dtype);
    pv->local = pv->shard + n;
    pv->off = pv->shard + 2 * (size_t)n;
    int64_t largest = 1, local = 0, at = 0;
    for (int i = 0; i < n; i++) {
        pv->shard[i] = shard[i];
        pv->local[i] = local;
        pv->off[i] = at;
        local += shard[i];
        at += dsc__nvme_round(shard[i] * (int64_t)pv->es);
        if (shard[i] > largest) largest = shard[i];
    }
    pv->file_bytes = at;
    pv->buf_bytes = dsc__pnvme_buffer_bytes(o->buffer_size, largest, pv->es);
    pv->buf_elems = pv->buf_bytes / (int64_t)pv->es;
    pv->n_bufs = dsc__pnvme_buffer_count(o->buffer_count);
    snprintf(pv->path, sizeof pv->path, "%s", o->nvme_path);
    dsc_status_t st = dsc__nvme_open_file(pv->path, key, "dsc-param-swap", rank, pv->file_bytes > 0 ? pv->file_bytes : 1,
                                          "the parameter partition", &pv->fd, &pv->direct, pv->what, sizeof pv->what,
                                          err, errsz);
    if (st == DSC_OK && pv->direct && o->block_size % DSC_NVME_ALIGN != 0) {
        snprintf(err, errsz, "aio.block_size %lld must be a multiple of %d for O_DIRECT I/O to '%s' "
                 "(zero_optimization.offload_param.nvme_path)", (long long)o->block_size, DSC_NVME_ALIGN, pv->path);
        st = DSC_ERR_CONFIG;
    }
    if (st == DSC_OK) {
        dsc_aio_options_t ao = {o->block_size, o->queue_depth, o->single_submit, pv->n_bufs};
        st = dsc__aio_new(&ao, &pv->aio, err, errsz);
    }
    if (st == DSC_OK) {
        pv->bufs = calloc((size_t)pv->n_bufs, sizeof *pv->bufs);
        if (!pv->bufs || !alloc_buffers(pv, o->pin_memory)) {
            snprintf(err, errsz, "offload_param nvme (rank %d): out of memory for %d swap buffers of %lld bytes "
                     "(zero_optimization.offload_param.buffer_count %lld, buffer_size %lld)", rank, pv->n_bufs,
                     (long long)pv->buf_bytes, (long long)o->buffer_count, (long long)o->buffer_size);
            st = DSC_ERR_NOMEM;
        }
        for (int b = 0; pv->bufs && b < pv->n_bufs; b++) pv->bufs[b].param = -1;
        for (int b = 0; st == DSC_OK && dsc__dev_has_from_host_async(ctx) && b < pv->n_bufs; b++)
            if (!(pv->bufs[b].up = dsc__dev_event_new(ctx))) {
                snprintf(err, errsz, "offload_param nvme (rank %d): out of memory for the swap buffers' events", rank);
                st = DSC_ERR_NOMEM;
            }
    }
    if (st != DSC_OK) {
        dsc__pnvme_free(pv);
        return st;
    }
    size_t used = strlen(pv->what);
    snprintf(pv->what + used, sizeof pv->what - used,
             ", %s, %lld bytes in %d record%s (%lld elements of %s), %d buffer%s of %lld bytes (%s), block_size %lld, "
             "queue_depth %lld", dsc__aio_engine(pv->aio), (long long)pv->file_bytes, n, n == 1 ? "" : "s",
             (long long)local, dsc_dtype_name(dtype), pv->n_bufs, pv->n_bufs == 1 ? "" : "s", (long long)pv->buf_bytes,
             pv->pinned ? "pinned" : o->pin_memory ? "the device offers no pinned host memory" : "pin_memory false",
             (long long)o->block_size, (long long)o->queue_depth);
    *out = pv;
    return DSC_OK;
}

bool dsc__pnvme_prefetch(dsc_pnvme_t *pv, int i) {
    if (!pv || pv->broken || i < 0 || i >= pv->n || pieces(pv, i) != 1) return false;
    if (holding(pv, i) >= 0) return true;
    for (int b = 0; b < pv->n_bufs; b++)
        if (pv->bufs[b].state == PB_FREE) return submit(pv, b, i, 0, false) == DSC_OK;
    return false;
}

bool dsc__pnvme_ready(const dsc_pnvme_t *pv, int i) {
    if (!pv || i < 0 || i >= pv->n || pieces(pv, i) != 1) return true; /* read when gathered, in pieces */
    return holding(pv, i) >= 0; /* not whether it completed: that differs between ranks */
}

dsc_status_t dsc__pnvme_read(dsc_pnvme_t *pv, int i, void *dst) {
    dsc_status_t st = check_usable(pv, "reading a shard");
    if (st != DSC_OK) return st;
    const int held = holding(pv, i);
    if (held >= 0) { /* read ahead */
        pv->stats.prefetch_hits++;
        st = finish(pv, held);
        if (st == DSC_OK) st = upload(pv, held, dst, (size_t)pv->shard[i] * pv->es);
        release(pv, held);
        pv->stats.reads++;
        return st;
    }
    for (int64_t c = 0; c < pieces(pv, i) && st == DSC_OK; c++) {
        int b = -1;
        st = take_free(pv, true, &b);
        if (st == DSC_OK) st = submit(pv, b, i, c, false);
        if (st == DSC_OK) st = finish(pv, b);
        if (st == DSC_OK)
            st = upload(pv, b, (char *)dst + (size_t)(c * pv->buf_elems) * pv->es, (size_t)piece_elems(pv, i, c) * pv->es);
        release(pv, b);
    }
    pv->stats.reads++;
    return st;
}

/* Drops the read-aheads (waited for: nothing may still write into a buffer being reused). */
static dsc_status_t drop_reads(dsc_pnvme_t *pv, int only) {
    dsc_status_t first = DSC_OK;
    for (int b = 0; b < pv->n_bufs; b++) {
        pbuf_t *x = &pv->bufs[b];
        if ((x->state != PB_READING && x->state != PB_FULL) || (only >= 0 && x->param != only)) continue;
        dsc_status_t st = finish(pv, b);
        if (first == DSC_OK) first = st;
        release(pv, b);
    }
    return first;
}

dsc_status_t dsc__pnvme_write_range(dsc_pnvme_t *pv, int i, int64_t a, int64_t n, const void *src) {
    dsc_status_t st = check_usable(pv, "writing a shard");
    if (st != DSC_OK) return st;
    if (i < 0 || i >= pv->n || a < 0 || n < 0 || a > pv->shard[i] || n > pv->shard[i] - a)
        return pv_fail(pv, DSC_ERR_INVALID, "dsc__pnvme_write_range", "range outside the shard");
    drop_reads(pv, i); /* its read-ahead holds the old values (a failed one is read again later) */
    for (int64_t c = a / pv->buf_elems; c < pieces(pv, i) && st == DSC_OK; c++) {
        const int64_t lo0 = c * pv->buf_elems, lo = a > lo0 ? a : lo0;
        const int64_t hi0 = lo0 + piece_elems(pv, i, c), hi = a + n < hi0 ? a + n : hi0;
        if (lo >= hi) break;
        int b = -1;
        st = take_free(pv, true, &b);
        if (st == DSC_OK) st = submit(pv, b, i, c, false);
        if (st == DSC_OK) st = finish(pv, b);
        if (st == DSC_OK)
            st = dsc__dev_to_host(pv->ctx, pv->bufs[b].host + (size_t)(lo - lo0) * pv->es,
                                  (const char *)src + (size_t)(lo - a) * pv->es, (size_t)(hi - lo) * pv->es);
        if (st == DSC_OK) st = submit(pv, b, i, c, true);
        if (st == DSC_OK) st = finish(pv, b); /* a failed write marks the file inconsistent */
        release(pv, b);
    }
    return st;
}

dsc_status_t dsc__pnvme_write_all(dsc_pnvme_t *pv, dsc_pnvme_fill_fn fill, void *user) {
    dsc_status_t st = check_usable(pv, "writing the partition");
    if (st == DSC_OK) st = drop_reads(pv, -1);
    for (int i = 0; i < pv->n && st == DSC_OK; i++) {
        for (int64_t c = 0; c < pieces(pv, i) && st == DSC_OK; c++) {
            int b = -1;
            st = take_free(pv, false, &b); /* waits for the oldest write when none is free */
            if (st == DSC_OK) st = upload_done(pv, b); /* a gather's upload may still read it */
            if (st == DSC_OK) st = fill(user, pv->local[i] + c * pv->buf_elems, piece_elems(pv, i, c), pv->bufs[b].host);
            if (st == DSC_OK) st = submit(pv, b, i, c, true);
        }
    }
    dsc_status_t dr = drain(pv);
    if (st == DSC_OK) st = dr;
    if (st != DSC_OK) pv->broken = true; /* records of two steps: refuse until restarted from a checkpoint */
    return st;
}

dsc_pnvme_stats_t dsc__pnvme_stats(const dsc_pnvme_t *pv) { return pv ? pv->stats : (dsc_pnvme_stats_t){0}; }
const char *dsc__pnvme_describe(const dsc_pnvme_t *pv) { return pv ? pv->what : "(none)"; }
int64_t dsc__pnvme_bytes(const dsc_pnvme_t *pv) { return pv ? pv->file_bytes : 0; }
int64_t dsc__pnvme_host_bytes(const dsc_pnvme_t *pv) { return pv ? (int64_t)pv->n_bufs * pv->buf_bytes : 0; }
bool dsc__pnvme_pinned(const dsc_pnvme_t *pv) { return pv && pv->pinned; }

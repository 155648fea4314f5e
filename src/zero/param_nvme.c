/* The NVMe swapper of stage 3's parameter partition (param_nvme.h): the swap file, its buffer
 * pool, reads (ahead) into device memory and the write-back after a step. */
#define _GNU_SOURCE
#include "zero/param_nvme.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/device.h"
#include "zero/aio_pool.h"

struct dsc_pnvme {
    dsc_ctx_t *ctx;
    int n;
    int64_t *shard, *local, *off; /* per parameter: elements, offset in the partition, in the file */
    size_t es;
    int64_t file_bytes, buf_bytes, buf_elems;
    char what[1200];
    dsc_aio_pool_t *pool;   /* the file and its buffers (uploaded with from_host_async where the device can) */
    int n_bufs;
    int64_t reads, prefetch_hits;
};

static void piece_name(int64_t i, int64_t c, char *out, size_t outsz) {
    snprintf(out, outsz, "parameter %lld's shard (piece %lld)", (long long)i, (long long)c);
}
static char *host(const dsc_pnvme_t *pv, int b) { return pv->pool->bufs[b].host; }

static int64_t pieces(const dsc_pnvme_t *pv, int i) { return (pv->shard[i] + pv->buf_elems - 1) / pv->buf_elems; }
static int64_t piece_elems(const dsc_pnvme_t *pv, int i, int64_t c) {
    const int64_t rest = pv->shard[i] - c * pv->buf_elems;
    return rest < pv->buf_elems ? rest : pv->buf_elems;
}

/* Submits piece c of parameter i (read or write) from / into buffer b: whole aligned blocks
 * (the record's padding included, as O_DIRECT wants). */
static dsc_status_t submit(dsc_pnvme_t *pv, int b, int i, int64_t c, bool write) {
    const size_t bytes = (size_t)dsc__nvme_round(piece_elems(pv, i, c) * (int64_t)pv->es);
    return dsc__aio_pool_submit(pv->pool, b, write, i, c, bytes, (off_t)(pv->off[i] + c * pv->buf_bytes));
}

void dsc__pnvme_free(dsc_pnvme_t *pv) {
    if (!pv) return;
    dsc__aio_pool_free(pv->pool); /* waits for the uploads and I/O still reading or writing the buffers */
    free(pv->shard);
    free(pv);
}

dsc_status_t dsc__pnvme_new(dsc_ctx_t *ctx, const dsc_pnvme_options_t *o, int rank, const int64_t *shard, int n,
                            dsc_dtype_t dtype, dsc_pnvme_t **out, char *err, size_t errsz) {
    *out = NULL;
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
    pv->n = n;
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
    char sizing[160];
    snprintf(sizing, sizeof sizing, "zero_optimization.offload_param.buffer_count %lld, buffer_size %lld",
             (long long)o->buffer_count, (long long)o->buffer_size);
    const dsc_aio_pool_options_t po = {ctx, "offload_param", o->nvme_path, "dsc-param-swap", "the parameter partition",
                                       rank, at > 0 ? at : 1, pv->n_bufs, (size_t)pv->buf_bytes, o->pin_memory, sizing,
                                       o->block_size, o->queue_depth, o->single_submit, false, piece_name};
    dsc_status_t st = dsc__aio_pool_new(&po, &pv->pool, err, errsz);
    if (st != DSC_OK) {
        dsc__pnvme_free(pv);
        return st;
    }
    snprintf(pv->what, sizeof pv->what,
             "%s, %lld bytes in %d record%s (%lld elements of %s), %d buffer%s of %lld bytes (%s), block_size %lld, "
             "queue_depth %lld", pv->pool->desc, (long long)pv->file_bytes, n, n == 1 ? "" : "s",
             (long long)local, dsc_dtype_name(dtype), pv->n_bufs, pv->n_bufs == 1 ? "" : "s", (long long)pv->buf_bytes,
             pv->pool->pinned ? "pinned" : o->pin_memory ? "the device offers no pinned host memory" : "pin_memory false",
             (long long)o->block_size, (long long)o->queue_depth);
    *out = pv;
    return DSC_OK;
}

bool dsc__pnvme_prefetch(dsc_pnvme_t *pv, int i) {
    if (!pv || pv->pool->broken || i < 0 || i >= pv->n || pieces(pv, i) != 1) return false;
    if (dsc__aio_pool_find(pv->pool, i) >= 0) return true;
    int b = -1;
    dsc__aio_pool_spare(pv->pool, false, &b);
    return b >= 0 && submit(pv, b, i, 0, false) == DSC_OK;
}

bool dsc__pnvme_ready(const dsc_pnvme_t *pv, int i) {
    if (!pv || i < 0 || i >= pv->n || pieces(pv, i) != 1) return true; /* read when gathered, in pieces */
    return dsc__aio_pool_find(pv->pool, i) >= 0; /* not whether it completed: that differs between ranks */
}

dsc_status_t dsc__pnvme_read(dsc_pnvme_t *pv, int i, void *dst) {
    dsc_status_t st = dsc__aio_pool_usable(pv->pool, "reading a shard");
    if (st != DSC_OK) return st;
    const int held = dsc__aio_pool_find(pv->pool, i);
    if (held >= 0) { /* read ahead */
        pv->prefetch_hits++;
        st = dsc__aio_pool_finish(pv->pool, held);
        if (st == DSC_OK) st = dsc__aio_pool_upload(pv->pool, held, dst, (size_t)pv->shard[i] * pv->es);
        dsc__aio_pool_release(pv->pool, held);
        pv->reads++;
        return st;
    }
    for (int64_t c = 0; c < pieces(pv, i) && st == DSC_OK; c++) {
        int b = -1;
        st = dsc__aio_pool_take(pv->pool, true, &b);
        if (st == DSC_OK) st = submit(pv, b, i, c, false);
        if (st == DSC_OK) st = dsc__aio_pool_finish(pv->pool, b);
        if (st == DSC_OK)
            st = dsc__aio_pool_upload(pv->pool, b, (char *)dst + (size_t)(c * pv->buf_elems) * pv->es,
                                      (size_t)piece_elems(pv, i, c) * pv->es);
        dsc__aio_pool_release(pv->pool, b);
    }
    pv->reads++;
    return st;
}

dsc_status_t dsc__pnvme_write_range(dsc_pnvme_t *pv, int i, int64_t a, int64_t n, const void *src) {
    dsc_status_t st = dsc__aio_pool_usable(pv->pool, "writing a shard");
    if (st != DSC_OK) return st;
    if (i < 0 || i >= pv->n || a < 0 || n < 0 || a > pv->shard[i] || n > pv->shard[i] - a)
        return dsc__aio_pool_fail(pv->pool, DSC_ERR_INVALID, "dsc__pnvme_write_range", "range outside the shard");
    dsc__aio_pool_drop_reads(pv->pool, i); /* its read-ahead holds the old values (a failed one is read again later) */
    for (int64_t c = a / pv->buf_elems; c < pieces(pv, i) && st == DSC_OK; c++) {
        const int64_t lo0 = c * pv->buf_elems, lo = a > lo0 ? a : lo0;
        const int64_t hi0 = lo0 + piece_elems(pv, i, c), hi = a + n < hi0 ? a + n : hi0;
        if (lo >= hi) break;
        int b = -1;
        st = dsc__aio_pool_take(pv->pool, true, &b);
        if (st == DSC_OK) st = submit(pv, b, i, c, false);
        if (st == DSC_OK) st = dsc__aio_pool_finish(pv->pool, b);
        if (st == DSC_OK)
            st = dsc__dev_to_host(pv->ctx, host(pv, b) + (size_t)(lo - lo0) * pv->es,
                                  (const char *)src + (size_t)(lo - a) * pv->es, (size_t)(hi - lo) * pv->es);
        if (st == DSC_OK) st = submit(pv, b, i, c, true);
        if (st == DSC_OK) st = dsc__aio_pool_finish(pv->pool, b); /* a failed write marks the file inconsistent */
        dsc__aio_pool_release(pv->pool, b);
    }
    return st;
}

dsc_status_t dsc__pnvme_write_all(dsc_pnvme_t *pv, dsc_pnvme_fill_fn fill, void *user) {
    dsc_status_t st = dsc__aio_pool_usable(pv->pool, "writing the partition");
    if (st == DSC_OK) st = dsc__aio_pool_drop_reads(pv->pool, -1);
    for (int i = 0; i < pv->n && st == DSC_OK; i++) {
        for (int64_t c = 0; c < pieces(pv, i) && st == DSC_OK; c++) {
            int b = -1;
            st = dsc__aio_pool_take(pv->pool, false, &b); /* waits for the oldest write (and an upload) */
            if (st == DSC_OK) st = fill(user, pv->local[i] + c * pv->buf_elems, piece_elems(pv, i, c), host(pv, b));
            if (st == DSC_OK) st = submit(pv, b, i, c, true);
        }
    }
    dsc_status_t dr = dsc__aio_pool_drain(pv->pool);
    if (st == DSC_OK) st = dr;
    if (st != DSC_OK) pv->pool->broken = true; /* records of two steps: refuse until restarted from a checkpoint */
    return st;
}

dsc_pnvme_stats_t dsc__pnvme_stats(const dsc_pnvme_t *pv) {
    return pv ? (dsc_pnvme_stats_t){pv->pool->bytes_read, pv->pool->bytes_written, pv->reads, pv->prefetch_hits}
              : (dsc_pnvme_stats_t){0};
}
const char *dsc__pnvme_describe(const dsc_pnvme_t *pv) { return pv ? pv->what : "(none)"; }
int64_t dsc__pnvme_bytes(const dsc_pnvme_t *pv) { return pv ? pv->file_bytes : 0; }
int64_t dsc__pnvme_host_bytes(const dsc_pnvme_t *pv) { return pv ? (int64_t)pv->n_bufs * pv->buf_bytes : 0; }
bool dsc__pnvme_pinned(const dsc_pnvme_t *pv) { return pv && pv->pool->pinned; }

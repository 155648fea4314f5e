/* The swappers' file and buffer pool (aio_pool.h): the file's creation, buffer states over the
 * aio engine, eviction by age. */
#define _GNU_SOURCE
#include "zero/aio_pool.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static bool in_flight(const dsc_aio_buf_t *x) { return x->state == DSC_AIO_READING || x->state == DSC_AIO_WRITING; }

/* The host waits until no upload reads buffer b (before its bytes change). */
static dsc_status_t upload_done(dsc_aio_pool_t *p, int b) {
    if (!p->bufs[b].uploading) return DSC_OK;
    p->bufs[b].uploading = false;
    return dsc__dev_event_sync(p->o.ctx, p->bufs[b].up);
}

/* The swap file (aio_pool.h) into p->fd, its line into p->desc; on failure err says why (the
 * caller's dsc__aio_pool_free closes an fd left open: unnamed or unlinked, nothing stays). */
static dsc_status_t open_file(dsc_aio_pool_t *p, const char *key, char *err, size_t errsz) {
    const char *dir = p->o.dir;
    struct stat st;
    const char *bad = stat(dir, &st) != 0 ? strerror(errno) : !S_ISDIR(st.st_mode) ? "not a directory" : NULL;
    if (bad) {
        snprintf(err, errsz, "%s '%s' (rank %d): %s", key, dir, p->o.rank, bad);
        return DSC_ERR_IO;
    }
    char why_buffered[160] = "";
    for (int attempt = 0; attempt < 2 && p->fd < 0; attempt++) {
        const int dflag = attempt == 0 ? O_DIRECT : 0;
        p->fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC | dflag, 0600);
        if (p->fd >= 0) {
            snprintf(p->desc, sizeof p->desc, "%s/(unnamed O_TMPFILE)", dir);
        } else if (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL) {
            /* No O_TMPFILE here (or it refused O_DIRECT): a named file, unlinked at once; pid
             * and the pool's address: unique among live swappers of every process */
            char name[700];
            snprintf(name, sizeof name, "%s/%s-r%d-%ld-%lx", dir, p->o.prefix, p->o.rank, (long)getpid(),
                     (unsigned long)(uintptr_t)p);
            p->fd = open(name, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC | dflag, 0600);
            if (p->fd >= 0) unlink(name);
            if (p->fd >= 0) snprintf(p->desc, sizeof p->desc, "%s (removed at once: lives until closed)", name);
        }
        p->direct = p->fd >= 0 && dflag;
        if (p->fd < 0 && attempt == 0 && errno == EINVAL) {
            snprintf(why_buffered, sizeof why_buffered, "buffered I/O: the filesystem refuses O_DIRECT (%s; e.g. tmpfs)",
                     strerror(errno));
        } else if (p->fd < 0) {
            snprintf(err, errsz, "%s '%s' (rank %d): cannot create the swap file: %s", key, dir, p->o.rank, strerror(errno));
            return DSC_ERR_IO;
        }
    }
    size_t used = strlen(p->desc);
    snprintf(p->desc + used, sizeof p->desc - used, ", %s", p->direct ? "O_DIRECT" : why_buffered);
    int rc = posix_fallocate(p->fd, 0, (off_t)p->o.file_bytes);
    if (rc == EOPNOTSUPP || rc == EINVAL) rc = ftruncate(p->fd, (off_t)p->o.file_bytes) == 0 ? 0 : errno;
    if (rc == 0) return DSC_OK;
    snprintf(err, errsz, "%s '%s' (rank %d): cannot reserve %lld bytes for %s: %s", key, dir, p->o.rank,
             (long long)p->o.file_bytes, p->o.contents, strerror(rc));
    return DSC_ERR_IO;
}

/* Every buffer's memory given back (pinned ones to the device, through the communicators'
 * check first: cudaFreeHost waits for the whole device, src/core/device.h). */
static void free_host(dsc_aio_pool_t *p) {
    for (int b = 0; b < p->o.n_bufs; b++) {
        if (p->bufs[b].raw && p->pinned) dsc__dev_host_free_pinned(p->o.ctx, p->bufs[b].raw, p->o.buf_bytes + DSC_NVME_ALIGN);
        else free(p->bufs[b].raw);
        p->bufs[b].host = p->bufs[b].raw = NULL;
    }
}

/* The buffers, zeroed, page-locked by the device when `pinned` (ordinary memory when that runs
 * out), else aligned ordinary memory. */
static bool alloc_host(dsc_aio_pool_t *p, bool pinned) {
    dsc_device_t *dev = dsc__ctx_device(p->o.ctx);
    p->pinned = pinned;
    for (int b = 0; b < p->o.n_bufs; b++) {
        void *raw = NULL;
        if (pinned) raw = dev->table->host_alloc_pinned(dev, p->o.buf_bytes + DSC_NVME_ALIGN);
        else if (posix_memalign(&raw, DSC_NVME_ALIGN, p->o.buf_bytes) != 0) raw = NULL;
        if (!raw) {
            free_host(p);
            return pinned && alloc_host(p, false);
        }
        p->bufs[b].raw = raw;
        p->bufs[b].host = (char *)(((uintptr_t)raw + DSC_NVME_ALIGN - 1) / DSC_NVME_ALIGN * DSC_NVME_ALIGN);
        memset(p->bufs[b].host, 0, p->o.buf_bytes);
    }
    return true;
}

dsc_status_t dsc__aio_pool_new(const dsc_aio_pool_options_t *o, dsc_aio_pool_t **out, char *err, size_t errsz) {
    *out = NULL;
    if (!o->dir || !o->dir[0]) {
        snprintf(err, errsz, "zero_optimization.%s.nvme_path: required when %s.device is \"nvme\"", o->owner, o->owner);
        return DSC_ERR_CONFIG;
    }
    dsc_aio_pool_t *p = calloc(1, sizeof *p);
    if (p) p->bufs = calloc((size_t)(o->n_bufs > 0 ? o->n_bufs : 1), sizeof *p->bufs);
    if (!p || !p->bufs) {
        free(p);
        snprintf(err, errsz, "%s nvme (rank %d): out of memory", o->owner, o->rank);
        return DSC_ERR_NOMEM;
    }
    p->o = *o;
    p->fd = -1;
    for (int b = 0; b < o->n_bufs; b++) p->bufs[b].key = -1;
    snprintf(p->who, sizeof p->who, "%s nvme swap file in '%s' (rank %d)", o->owner, o->dir, o->rank);
    char key[96];
    snprintf(key, sizeof key, "zero_optimization.%s.nvme_path", o->owner);
    dsc_status_t st = open_file(p, key, err, errsz);
    if (st == DSC_OK && p->direct && o->block_size % DSC_NVME_ALIGN != 0) {
        snprintf(err, errsz, "aio.block_size %lld must be a multiple of %d for O_DIRECT I/O to '%s' (%s)",
                 (long long)o->block_size, DSC_NVME_ALIGN, o->dir, key);
        st = DSC_ERR_CONFIG;
    }
    if (st == DSC_OK) {
        const dsc_aio_options_t ao = {o->block_size, o->queue_depth, o->single_submit, o->n_bufs};
        st = dsc__aio_new(&ao, &p->aio, err, errsz);
    }
    dsc_device_t *dev = dsc__ctx_device(o->ctx);
    const bool pinned = o->want_pinned && dev->table && dev->table->host_alloc_pinned && dev->table->host_free_pinned;
    if (st == DSC_OK && !alloc_host(p, pinned)) {
        snprintf(err, errsz, "%s nvme (rank %d): out of memory for %d swap buffers of %lld bytes (%s)", o->owner,
                 o->rank, o->n_bufs, (long long)o->buf_bytes, o->sizing);
        st = DSC_ERR_NOMEM;
    }
    for (int b = 0; st == DSC_OK && dsc__dev_has_from_host_async(o->ctx) && b < o->n_bufs; b++)
        if (!(p->bufs[b].up = dsc__dev_event_new(o->ctx))) {
            snprintf(err, errsz, "%s nvme (rank %d): out of memory for the swap buffers' events", o->owner, o->rank);
            st = DSC_ERR_NOMEM;
        }
    if (st != DSC_OK) {
        dsc__aio_pool_free(p);
        return st;
    }
    size_t used = strlen(p->desc);
    snprintf(p->desc + used, sizeof p->desc - used, ", %s", dsc__aio_engine(p->aio));
    p->o.owner = p->o.dir = p->o.prefix = p->o.contents = p->o.sizing = NULL; /* the caller's, read only here */
    *out = p;
    return DSC_OK;
}

void dsc__aio_pool_free(dsc_aio_pool_t *p) {
    if (!p) return;
    for (int b = 0; b < p->o.n_bufs; b++) {
        if (upload_done(p, b) != DSC_OK)
            dsc_ctx_log(p->o.ctx, DSC_LOG_WARN, "%s: waiting for a swap buffer's upload: %s", p->who,
                        dsc_ctx_errmsg(p->o.ctx));
        if (p->bufs[b].up) dsc__dev_event_free(p->o.ctx, p->bufs[b].up);
    }
    dsc__aio_free(p->aio); /* waits for anything still in flight into the buffers */
    free_host(p);
    free(p->bufs);
    if (p->fd >= 0) close(p->fd);
    free(p);
}

dsc_status_t dsc__aio_pool_fail(dsc_aio_pool_t *p, dsc_status_t st, const char *what, const char *detail) {
    return dsc_ctx_set_error(p->o.ctx, st, "%s: %s: %s", p->who, what, detail);
}

dsc_status_t dsc__aio_pool_usable(dsc_aio_pool_t *p, const char *what) {
    if (!p->broken) return DSC_OK;
    return dsc_ctx_set_error(p->o.ctx, DSC_ERR_IO, "%s: %s: the swap file is inconsistent after an earlier %s error; "
                             "restart from the last checkpoint", p->who, what, p->o.read_error_breaks ? "I/O" : "write");
}

dsc_status_t dsc__aio_pool_submit(dsc_aio_pool_t *p, int b, bool write, int64_t key, int64_t part, size_t bytes,
                                  off_t off) {
    dsc_aio_buf_t *x = &p->bufs[b];
    if (in_flight(x) || bytes > p->o.buf_bytes)
        return dsc__aio_pool_fail(p, DSC_ERR_INVALID, "queueing I/O", "buffer busy or too small (internal error)");
    dsc_status_t st = write ? DSC_OK : upload_done(p, b); /* a write's bytes were filled after a take */
    if (st != DSC_OK) return st;
    if (dsc__aio_submit(p->aio, b, write, p->fd, x->host, bytes, off) != DSC_OK)
        return dsc__aio_pool_fail(p, DSC_ERR_NOMEM, "queueing I/O", "out of memory");
    x->state = write ? DSC_AIO_WRITING : DSC_AIO_READING;
    x->key = key;
    x->part = part;
    x->order = p->order++;
    x->held = x->held && !write; /* a write's buffer is the pool's until it completes */
    *(write ? &p->bytes_written : &p->bytes_read) += (int64_t)bytes;
    return DSC_OK;
}

dsc_status_t dsc__aio_pool_finish(dsc_aio_pool_t *p, int b) {
    dsc_aio_buf_t *x = &p->bufs[b];
    if (!in_flight(x)) return DSC_OK;
    const bool write = x->state == DSC_AIO_WRITING;
    char msg[512], name[160];
    const double t0 = now_s();
    dsc_status_t st = dsc__aio_wait(p->aio, b, msg, sizeof msg);
    *(write ? &p->wait_write_s : &p->wait_read_s) += now_s() - t0;
    if (st != DSC_OK) {
        p->o.name(x->key, x->part, name, sizeof name);
        p->broken = p->broken || write || p->o.read_error_breaks;
        x->state = DSC_AIO_FREE;
        x->key = -1;
        return dsc_ctx_set_error(p->o.ctx, st, "%s: %s %s: %s", p->who, write ? "writing" : "reading", name, msg);
    }
    x->state = write ? DSC_AIO_FREE : DSC_AIO_FULL;
    if (write) x->key = -1;
    return DSC_OK;
}

dsc_status_t dsc__aio_pool_upload(dsc_aio_pool_t *p, int b, void *dst, size_t bytes) {
    dsc_aio_buf_t *x = &p->bufs[b];
    if (!x->up) return dsc__dev_from_host(p->o.ctx, dst, x->host, bytes);
    dsc_status_t st = dsc__dev_from_host_async(p->o.ctx, dst, x->host, bytes, x->up);
    x->uploading = st == DSC_OK;
    return st;
}

void dsc__aio_pool_release(dsc_aio_pool_t *p, int b) {
    if (b < 0) return;
    p->bufs[b].state = DSC_AIO_FREE;
    p->bufs[b].key = -1;
    p->bufs[b].held = false;
}

dsc_status_t dsc__aio_pool_take(dsc_aio_pool_t *p, bool evict, int *out) {
    *out = -1;
    int oldest_w = -1, oldest_r = -1;
    for (int b = 0; b < p->o.n_bufs; b++) {
        const dsc_aio_buf_t *x = &p->bufs[b];
        if (x->held) continue;
        if (x->state == DSC_AIO_FREE) {
            p->bufs[b].held = true;
            *out = b;
            return upload_done(p, b);
        }
        int *o = x->state == DSC_AIO_WRITING ? &oldest_w : &oldest_r;
        if (*o < 0 || x->order < p->bufs[*o].order) *o = b;
    }
    const int b = oldest_w >= 0 ? oldest_w : evict ? oldest_r : -1;
    if (b < 0) return dsc__aio_pool_fail(p, DSC_ERR_INVALID, "buffers", "no buffer can be freed (internal error)");
    dsc_status_t st = dsc__aio_pool_finish(p, b);
    dsc__aio_pool_release(p, b);
    p->bufs[b].held = true;
    *out = b;
    return st != DSC_OK ? st : upload_done(p, b);
}

dsc_status_t dsc__aio_pool_spare(dsc_aio_pool_t *p, bool reap, int *out) {
    *out = -1;
    for (int b = 0; b < p->o.n_bufs; b++) {
        dsc_aio_buf_t *x = &p->bufs[b];
        if (reap && x->state == DSC_AIO_WRITING && dsc__aio_idle(p->aio, b)) {
            dsc_status_t st = dsc__aio_pool_finish(p, b);
            if (st != DSC_OK) return st;
        }
        if (x->state == DSC_AIO_FREE && !x->held) {
            *out = b;
            return DSC_OK;
        }
    }
    return DSC_OK;
}

int dsc__aio_pool_find(const dsc_aio_pool_t *p, int64_t key) {
    for (int b = 0; b < p->o.n_bufs; b++)
        if (p->bufs[b].key == key && (p->bufs[b].state == DSC_AIO_READING || p->bufs[b].state == DSC_AIO_FULL)) return b;
    return -1;
}

/* Buffers waited for and released: every one (all), else the reads not held of record key
 * (key < 0: any). The first error wins. */
static dsc_status_t settle(dsc_aio_pool_t *p, bool all, int64_t key) {
    dsc_status_t first = DSC_OK;
    for (int b = 0; b < p->o.n_bufs; b++) {
        const dsc_aio_buf_t *x = &p->bufs[b];
        if (!all && ((x->state != DSC_AIO_READING && x->state != DSC_AIO_FULL) || x->held || (key >= 0 && x->key != key)))
            continue;
        dsc_status_t st = dsc__aio_pool_finish(p, b);
        if (first == DSC_OK) first = st;
        dsc__aio_pool_release(p, b);
    }
    return first;
}
dsc_status_t dsc__aio_pool_drop_reads(dsc_aio_pool_t *p, int64_t key) { return settle(p, false, key); }
dsc_status_t dsc__aio_pool_drain(dsc_aio_pool_t *p) { return settle(p, true, -1); }

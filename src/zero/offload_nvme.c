/* The NVMe swapper of the optimizer state (offload_nvme.h): the swap file, its buffers and
 * the per-step pipeline over sub-groups. */
#define _GNU_SOURCE
#include "zero/offload_nvme.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/device.h"
#include "optim/optim_internal.h"
#include "zero/aio.h"

typedef enum { BUF_FREE = 0, BUF_READING, BUF_FULL, BUF_WRITING } buf_state_t;

typedef struct nvme_buf {
    float *host;     /* stride bytes, DSC_NVME_ALIGN aligned */
    buf_state_t state;
    int64_t group;   /* the sub-group it holds or moves (-1: none) */
    int64_t order;   /* when its write was submitted (the oldest is waited for first) */
} nvme_buf_t;

struct dsc_nvme {
    dsc_ctx_t *ctx;
    dsc_nvme_options_t o;
    int rank;
    int64_t n, s, groups, stride, file_bytes;
    int n_states;
    int fd;
    bool direct;
    bool broken;                 /* an I/O error inside a step: the file is inconsistent */
    char path[512];              /* nvme_path as given */
    char what[1024];             /* dsc__nvme_describe */
    dsc_aio_t *aio;
    nvme_buf_t *bufs;
    int n_bufs;
    int64_t order;
    /* The record in buffer 0 between steps (get / set), -1: none; dirty: set but not written. */
    int64_t cached;
    bool dirty;
    /* Non-host devices: the sub-group's states are copied into this device window. */
    float *window;
    dsc_nvme_stats_t stats;
};

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int64_t group_len(const dsc_nvme_t *nv, int64_t g) {
    const int64_t a = g * nv->s;
    return nv->n - a < nv->s ? nv->n - a : nv->s;
}
static size_t group_io_bytes(const dsc_nvme_t *nv, int64_t g) {
    return (size_t)dsc__nvme_round((int64_t)nv->n_states * group_len(nv, g) * 4);
}

/* Records the message on the context, prefixed with the key, the path and the rank. */
static dsc_status_t nv_fail(dsc_nvme_t *nv, dsc_status_t st, const char *what, const char *detail) {
    return dsc_ctx_set_error(nv->ctx, st, "offload_optimizer nvme swap file in '%s' (rank %d): %s: %s", nv->path,
                             nv->rank, what, detail);
}

dsc_status_t dsc__nvme_open_file(const char *dir, const char *key, const char *prefix, int rank, int64_t bytes,
                                 const char *what, int *fd_out, bool *direct_out, char *desc, size_t descsz, char *err,
                                 size_t errsz) {
    *fd_out = -1;
    *direct_out = false;
    struct stat st;
    if (stat(dir, &st) != 0) {
        snprintf(err, errsz, "%s '%s' (rank %d): %s", key, dir, rank, strerror(errno));
        return DSC_ERR_IO;
    }
    if (!S_ISDIR(st.st_mode)) {
        snprintf(err, errsz, "%s '%s' (rank %d): not a directory", key, dir, rank);
        return DSC_ERR_IO;
    }
    char why_buffered[160] = "";
    int fd = -1;
    bool direct = false;
    for (int attempt = 0; attempt < 2; attempt++) {
        const int dflag = attempt == 0 ? O_DIRECT : 0;
        fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC | dflag, 0600);
        if (fd >= 0) {
            snprintf(desc, descsz, "%s/(unnamed O_TMPFILE)", dir);
        } else if (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL) {
            /* No O_TMPFILE here (or it refused O_DIRECT): a named file, unlinked at once;
             * pid and the caller's buffer address: unique among live swappers of every process */
            char name[700];
            snprintf(name, sizeof name, "%s/%s-r%d-%ld-%lx", dir, prefix, rank, (long)getpid(),
                     (unsigned long)(uintptr_t)desc);
            fd = open(name, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC | dflag, 0600);
            if (fd >= 0) {
                unlink(name);
                snprintf(desc, descsz, "%s (removed at once: lives until closed)", name);
            }
        }
        if (fd >= 0) {
            direct = dflag != 0;
            break;
        }
        if (attempt == 0 && errno == EINVAL) {
            snprintf(why_buffered, sizeof why_buffered, "buffered I/O: the filesystem refuses O_DIRECT (%s; e.g. tmpfs)",
                     strerror(errno));
            continue;
        }
        snprintf(err, errsz, "%s '%s' (rank %d): cannot create the swap file: %s", key, dir, rank, strerror(errno));
        return DSC_ERR_IO;
    }
    size_t used = strlen(desc);
    snprintf(desc + used, descsz - used, ", %s", direct ? "O_DIRECT" : why_buffered);
    int rc = posix_fallocate(fd, 0, (off_t)bytes);
    if (rc == EOPNOTSUPP || rc == EINVAL) rc = ftruncate(fd, (off_t)bytes) == 0 ? 0 : errno;
    if (rc != 0) {
        snprintf(err, errsz, "%s '%s' (rank %d): cannot reserve %lld bytes for %s: %s", key, dir, rank,
                 (long long)bytes, what, strerror(rc));
        close(fd); /* unnamed or unlinked: nothing is left behind */
        return DSC_ERR_IO;
    }
    *fd_out = fd;
    *direct_out = direct;
    return DSC_OK;
}

/* The optimizer's swap file (dsc__nvme_open_file). */
static dsc_status_t open_file(dsc_nvme_t *nv, char *err, size_t errsz) {
    return dsc__nvme_open_file(nv->path, "zero_optimization.offload_optimizer.nvme_path", "dsc-optim-swap", nv->rank,
                               nv->file_bytes, "the optimizer state", &nv->fd, &nv->direct, nv->what, sizeof nv->what,
                               err, errsz);
}

void dsc__nvme_free(dsc_nvme_t *nv) {
    if (!nv) return;
    dsc__aio_free(nv->aio); /* waits for anything still in flight into the buffers */
    if (nv->bufs && nv->bufs[nv->n_bufs - 1].host)
        dsc__mem_sub(nv->ctx, DSC_MEM_OPTIM, (size_t)nv->n_bufs * (size_t)nv->stride);
    for (int i = 0; nv->bufs && i < nv->n_bufs; i++) free(nv->bufs[i].host);
    free(nv->bufs);
    if (nv->window) dsc__dev_free(nv->ctx, DSC_MEM_OPTIM, nv->window, (size_t)nv->stride);
    if (nv->fd >= 0) close(nv->fd);
    free(nv);
}

/* Submits the record of group g (read or write) from / into buffer b. */
static dsc_status_t submit(dsc_nvme_t *nv, int b, int64_t g, bool write) {
    nvme_buf_t *buf = &nv->bufs[b];
    const size_t bytes = group_io_bytes(nv, g);
    dsc_status_t st = dsc__aio_submit(nv->aio, b, write, nv->fd, buf->host, bytes, (off_t)(g * nv->stride));
    if (st != DSC_OK) return nv_fail(nv, st, "queueing I/O", "out of memory");
    buf->state = write ? BUF_WRITING : BUF_READING;
    buf->group = g;
    if (write) buf->order = nv->order++;
    if (write) nv->stats.bytes_written += (int64_t)bytes;
    else nv->stats.bytes_read += (int64_t)bytes;
    return DSC_OK;
}

/* Waits for buffer b's I/O; a read leaves it FULL, a write FREE. */
static dsc_status_t finish(dsc_nvme_t *nv, int b) {
    nvme_buf_t *buf = &nv->bufs[b];
    if (buf->state != BUF_READING && buf->state != BUF_WRITING) return DSC_OK;
    const bool write = buf->state == BUF_WRITING;
    char msg[512];
    const double t0 = now_s();
    dsc_status_t st = dsc__aio_wait(nv->aio, b, msg, sizeof msg);
    *(write ? &nv->stats.wait_write_s : &nv->stats.wait_read_s) += now_s() - t0;
    if (st != DSC_OK) {
        nv->broken = true;
        char what[96];
        snprintf(what, sizeof what, "%s of sub-group %lld", write ? "writing" : "reading", (long long)buf->group);
        buf->state = BUF_FREE;
        return nv_fail(nv, st, what, msg);
    }
    buf->state = write ? BUF_FREE : BUF_FULL;
    if (write) buf->group = -1;
    return DSC_OK;
}

/* A free buffer: one already free, else the oldest write waited for. */
static dsc_status_t take_free(dsc_nvme_t *nv, int *out) {
    int oldest = -1;
    for (int i = 0; i < nv->n_bufs; i++) {
        if (nv->bufs[i].state == BUF_FREE) {
            *out = i;
            return DSC_OK;
        }
        if (nv->bufs[i].state == BUF_WRITING && (oldest < 0 || nv->bufs[i].order < nv->bufs[oldest].order)) oldest = i;
    }
    if (oldest < 0) return nv_fail(nv, DSC_ERR_INVALID, "buffers", "no buffer can be freed (internal error)");
    dsc_status_t st = finish(nv, oldest);
    *out = oldest;
    return st;
}

/* The buffer that holds or reads group g, or -1. */
static int holding(const dsc_nvme_t *nv, int64_t g) {
    for (int i = 0; i < nv->n_bufs; i++)
        if (nv->bufs[i].group == g && (nv->bufs[i].state == BUF_READING || nv->bufs[i].state == BUF_FULL)) return i;
    return -1;
}

/* Every write finished (the file is complete); the first error wins. */
static dsc_status_t drain(dsc_nvme_t *nv) {
    dsc_status_t first = DSC_OK;
    for (int i = 0; i < nv->n_bufs; i++) {
        dsc_status_t st = finish(nv, i);
        if (first == DSC_OK) first = st;
        if (nv->bufs[i].state == BUF_FULL) nv->bufs[i].state = BUF_FREE, nv->bufs[i].group = -1;
    }
    return first;
}

dsc_status_t dsc__nvme_new(dsc_ctx_t *ctx, const dsc_nvme_options_t *o, int rank, int64_t n_elems, int n_states,
                           const double *initial, dsc_nvme_t **out, char *err, size_t errsz) {
    *out = NULL;
    if (!o->nvme_path || !o->nvme_path[0]) {
        snprintf(err, errsz, "zero_optimization.offload_optimizer.nvme_path: required when device is \"nvme\"");
        return DSC_ERR_CONFIG;
    }
    if (o->sub_group_size <= 0) {
        snprintf(err, errsz, "zero_optimization.sub_group_size %lld must be positive", (long long)o->sub_group_size);
        return DSC_ERR_CONFIG;
    }
    if (n_elems <= 0 || n_states <= 0) {
        snprintf(err, errsz, "offload_optimizer nvme (rank %d): nothing to offload (%lld elements, %d states)", rank,
                 (long long)n_elems, n_states);
        return DSC_ERR_INVALID;
    }
    dsc_nvme_t *nv = calloc(1, sizeof *nv);
    if (!nv) {
        snprintf(err, errsz, "offload_optimizer nvme (rank %d): out of memory", rank);
        return DSC_ERR_NOMEM;
    }
    nv->ctx = ctx;
    nv->o = *o;
    nv->rank = rank;
    nv->fd = -1;
    nv->cached = -1;
    nv->n = n_elems;
    nv->n_states = n_states;
    nv->s = dsc__nvme_group(n_elems, o->sub_group_size);
    nv->groups = (n_elems + nv->s - 1) / nv->s;
    nv->stride = dsc__nvme_round((int64_t)n_states * nv->s * 4);
    nv->file_bytes = dsc__nvme_file_bytes(n_elems, n_states, o->sub_group_size);
    snprintf(nv->path, sizeof nv->path, "%s", o->nvme_path);
    dsc_status_t st = open_file(nv, err, errsz);
    if (st == DSC_OK && nv->direct && o->block_size % DSC_NVME_ALIGN != 0) {
        snprintf(err, errsz, "aio.block_size %lld must be a multiple of %d for O_DIRECT I/O to '%s'",
                 (long long)o->block_size, DSC_NVME_ALIGN, nv->path);
        st = DSC_ERR_CONFIG;
    }
    nv->n_bufs = o->buffer_count > 1 ? (int)(o->buffer_count < 64 ? o->buffer_count : 64) : 1;
    if (st == DSC_OK) {
        dsc_aio_options_t ao = {o->block_size, o->queue_depth, o->single_submit, nv->n_bufs};
        st = dsc__aio_new(&ao, &nv->aio, err, errsz);
    }
    if (st == DSC_OK) {
        nv->bufs = calloc((size_t)nv->n_bufs, sizeof *nv->bufs);
        for (int i = 0; nv->bufs && i < nv->n_bufs; i++) {
            nv->bufs[i].group = -1;
            if (posix_memalign((void **)&nv->bufs[i].host, DSC_NVME_ALIGN, (size_t)nv->stride) != 0)
                nv->bufs[i].host = NULL;
            if (!nv->bufs[i].host) break;
        }
        if (nv->bufs && nv->bufs[nv->n_bufs - 1].host)
            dsc__mem_add(ctx, DSC_MEM_OPTIM, (size_t)nv->n_bufs * (size_t)nv->stride); /* the host buffers */
        else {
            snprintf(err, errsz, "offload_optimizer nvme (rank %d): out of memory for %d swap buffers of %lld bytes "
                     "(zero_optimization.sub_group_size %lld, offload_optimizer.buffer_count %lld)", rank, nv->n_bufs,
                     (long long)nv->stride, (long long)o->sub_group_size, (long long)o->buffer_count);
            st = DSC_ERR_NOMEM;
        }
    }
    if (st == DSC_OK && ctx->device.kind != DSC_DEVICE_CPU) {
        nv->window = dsc__dev_alloc(ctx, DSC_MEM_OPTIM, (size_t)nv->stride);
        if (!nv->window) {
            snprintf(err, errsz, "offload_optimizer nvme (rank %d): out of device memory for the %lld-byte window", rank,
                     (long long)nv->stride);
            st = DSC_ERR_NOMEM;
        }
    }
    /* States that do not start at zero are written out (the reserved space reads as zeros). */
    bool nonzero = false;
    for (int i = 0; i < n_states; i++) nonzero = nonzero || (initial && initial[i] != 0.0);
    for (int64_t g = 0; st == DSC_OK && nonzero && g < nv->groups; g++) {
        const int64_t len = group_len(nv, g);
        for (int i = 0; i < n_states; i++)
            for (int64_t k = 0; k < len; k++) nv->bufs[0].host[i * len + k] = (float)initial[i];
        st = submit(nv, 0, g, true);
        if (st == DSC_OK) st = finish(nv, 0);
        if (st != DSC_OK) snprintf(err, errsz, "%s", dsc_ctx_errmsg(ctx));
    }
    if (st == DSC_OK) {
        size_t used = strlen(nv->what);
        snprintf(nv->what + used, sizeof nv->what - used,
                 ", %s, %lld bytes in %lld sub-group%s of %lld elements x %d state%s, %d buffer%s of %lld bytes, "
                 "pipeline_read %s, pipeline_write %s, block_size %lld, queue_depth %lld",
                 dsc__aio_engine(nv->aio), (long long)nv->file_bytes, (long long)nv->groups, nv->groups == 1 ? "" : "s",
                 (long long)nv->s, n_states, n_states == 1 ? "" : "s", nv->n_bufs, nv->n_bufs == 1 ? "" : "s",
                 (long long)nv->stride, o->pipeline_read ? "on" : "off", o->pipeline_write ? "on" : "off",
                 (long long)o->block_size, (long long)o->queue_depth);
        nv->stats = (dsc_nvme_stats_t){0};
        *out = nv;
        return DSC_OK;
    }
    dsc__nvme_free(nv);
    return st;
}

static dsc_status_t check_usable(dsc_nvme_t *nv, const char *what) {
    if (!nv->broken) return DSC_OK;
    return nv_fail(nv, DSC_ERR_IO, what, "the swap file is inconsistent after an earlier I/O error; restart from the "
                   "last checkpoint");
}

/* The cached record written back (get / set between steps). */
dsc_status_t dsc__nvme_flush(dsc_nvme_t *nv) {
    if (!nv || !nv->dirty) return DSC_OK;
    dsc_status_t st = submit(nv, 0, nv->cached, true);
    if (st == DSC_OK) st = finish(nv, 0);
    nv->dirty = false;
    nv->cached = -1;
    return st;
}

/* Group g's record in buffer 0 (for get / set). */
static dsc_status_t load_cached(dsc_nvme_t *nv, int64_t g) {
    if (nv->cached == g) return DSC_OK;
    dsc_status_t st = dsc__nvme_flush(nv);
    if (st != DSC_OK) return st;
    nv->cached = -1;
    st = submit(nv, 0, g, false);
    if (st == DSC_OK) st = finish(nv, 0);
    nv->bufs[0].state = BUF_FREE;
    if (st == DSC_OK) nv->cached = g;
    return st;
}

static dsc_status_t copy_range(dsc_nvme_t *nv, int state, int64_t offset, int64_t n, float *host, bool set) {
    const char *fn = set ? "dsc__nvme_set" : "dsc__nvme_get";
    dsc_status_t st = check_usable(nv, fn);
    if (st != DSC_OK) return st;
    if (state < 0 || state >= nv->n_states || offset < 0 || n < 0 || offset > nv->n || n > nv->n - offset)
        return dsc_ctx_set_error(nv->ctx, DSC_ERR_INVALID, "%s: state %d range [%lld, +%lld) outside %d states of %lld",
                                 fn, state, (long long)offset, (long long)n, nv->n_states, (long long)nv->n);
    while (n > 0) {
        const int64_t g = offset / nv->s, in = offset - g * nv->s, len = group_len(nv, g);
        const int64_t k = len - in < n ? len - in : n;
        st = load_cached(nv, g);
        if (st != DSC_OK) return st;
        float *rec = nv->bufs[0].host + (int64_t)state * len + in;
        if (set) {
            memcpy(rec, host, (size_t)k * 4);
            nv->dirty = true;
        } else {
            memcpy(host, rec, (size_t)k * 4);
        }
        host += k;
        offset += k;
        n -= k;
    }
    return DSC_OK;
}

dsc_status_t dsc__nvme_get(dsc_nvme_t *nv, int state, int64_t offset, int64_t n, float *dst) {
    return nv ? copy_range(nv, state, offset, n, dst, false) : DSC_ERR_INVALID;
}
dsc_status_t dsc__nvme_set(dsc_nvme_t *nv, int state, int64_t offset, int64_t n, const float *src) {
    return nv ? copy_range(nv, state, offset, n, (float *)src, true) : DSC_ERR_INVALID;
}

/* Runs the optimizer on group g held in buffer b (through the device window off the host). */
static dsc_status_t step_group(dsc_nvme_t *nv, int b, int64_t g, dsc_optim_t *opt, const dsc__optim_prepared_t *pp,
                               float *master, const float *grad, void *half, size_t half_size) {
    const int64_t len = group_len(nv, g), a = g * nv->s;
    float *base = nv->window ? nv->window : nv->bufs[b].host;
    const size_t bytes = (size_t)nv->n_states * (size_t)len * 4;
    dsc_status_t st = nv->window ? dsc__dev_from_host(nv->ctx, nv->window, nv->bufs[b].host, bytes) : DSC_OK;
    if (st != DSC_OK) return st;
    float *states[3] = {NULL, NULL, NULL};
    for (int i = 0; i < nv->n_states && i < 3; i++) states[i] = base + (int64_t)i * len;
    dsc__optim_run_part(opt, pp, (size_t)len, master + a, grad + a, states,
                        half ? (char *)half + (size_t)a * half_size : NULL);
    if (nv->window) st = dsc__dev_to_host(nv->ctx, nv->bufs[b].host, nv->window, bytes);
    return st;
}

/* The pipeline of one pass: each group read (ahead with pipeline_read), handled, written
 * (waited for at once unless pipeline_write). opt NULL with stream >= 0: no compute, only
 * reads (stream 0) or writes (stream 1). */
static dsc_status_t run_pass(dsc_nvme_t *nv, dsc_optim_t *opt, const dsc__optim_prepared_t *pp, float *master,
                             const float *grad, void *half, size_t half_size, int stream) {
    dsc_status_t st = DSC_OK;
    for (int64_t g = 0; g < nv->groups && st == DSC_OK; g++) {
        int b = -1;
        if (stream != 1) {
            b = holding(nv, g);
            if (b < 0) {
                st = take_free(nv, &b);
                if (st == DSC_OK) st = submit(nv, b, g, false);
            }
            /* Read ahead into a buffer that is free now (no wait for a write). */
            if (st == DSC_OK && nv->o.pipeline_read && g + 1 < nv->groups && holding(nv, g + 1) < 0) {
                for (int i = 0; i < nv->n_bufs; i++) {
                    if (nv->bufs[i].state == BUF_WRITING && dsc__aio_idle(nv->aio, i)) st = finish(nv, i);
                    if (st == DSC_OK && nv->bufs[i].state == BUF_FREE) {
                        st = submit(nv, i, g + 1, false);
                        break;
                    }
                }
            }
            if (st == DSC_OK) st = finish(nv, b);
        } else {
            st = take_free(nv, &b);
        }
        if (st != DSC_OK) break;
        if (opt) st = step_group(nv, b, g, opt, pp, master, grad, half, half_size);
        if (st != DSC_OK) {
            nv->broken = true; /* earlier groups are written already: the file mixes two steps */
            break;
        }
        if (stream == 0) {
            nv->bufs[b].state = BUF_FREE;
            nv->bufs[b].group = -1;
            continue;
        }
        st = submit(nv, b, g, true);
        if (st == DSC_OK && !nv->o.pipeline_write) st = finish(nv, b);
    }
    dsc_status_t dr = drain(nv);
    if (st == DSC_OK) st = dr;
    if (st != DSC_OK && stream != 0) nv->broken = true;
    return st;
}

dsc_status_t dsc__nvme_step(dsc_nvme_t *nv, dsc_optim_t *opt, float *master, const float *grad, float grad_scale,
                            double lr, void *half, dsc_dtype_t half_dtype) {
    if (!nv || !opt) return DSC_ERR_INVALID;
    dsc_status_t st = check_usable(nv, "optimizer step");
    if (st != DSC_OK) return st;
    if (dsc_optim_num_states(opt) != nv->n_states || (int64_t)dsc_optim_numel(opt) != nv->n)
        return nv_fail(nv, DSC_ERR_INVALID, "optimizer step", "the optimizer does not match the swap file");
    st = dsc__nvme_flush(nv);
    if (st != DSC_OK) return st;
    nv->cached = -1;
    dsc__optim_prepared_t pp;
    st = dsc__optim_prepare(opt, grad_scale, lr, half != NULL, half_dtype, &pp);
    if (st != DSC_OK) return st;
    st = run_pass(nv, opt, &pp, master, grad, half, half ? dsc_dtype_size(half_dtype) : 0, -1);
    if (st != DSC_OK) return st;
    dsc__optim_commit(opt, &pp);
    nv->stats.steps++;
    return DSC_OK;
}

dsc_status_t dsc__nvme_stream(dsc_nvme_t *nv, bool write, double *seconds) {
    if (!nv) return DSC_ERR_INVALID;
    dsc_status_t st = check_usable(nv, "stream");
    if (st == DSC_OK) st = dsc__nvme_flush(nv);
    if (st != DSC_OK) return st;
    nv->cached = -1;
    const double t0 = now_s();
    st = run_pass(nv, NULL, NULL, NULL, NULL, NULL, 0, write ? 1 : 0);
    if (seconds) *seconds = now_s() - t0;
    return st;
}

dsc_nvme_stats_t dsc__nvme_stats(const dsc_nvme_t *nv) { return nv ? nv->stats : (dsc_nvme_stats_t){0}; }
const char *dsc__nvme_describe(const dsc_nvme_t *nv) { return nv ? nv->what : "(none)"; }
int64_t dsc__nvme_bytes(const dsc_nvme_t *nv) { return nv ? nv->file_bytes : 0; }
int64_t dsc__nvme_host_bytes(const dsc_nvme_t *nv) { return nv ? (int64_t)nv->n_bufs * nv->stride : 0; }

/* The NVMe swapper of the optimizer state (offload_nvme.h): the swap file, its buffers and
 * the per-step pipeline over sub-groups. */
#define _GNU_SOURCE
#include "zero/offload_nvme.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/device.h"
#include "optim/optim_internal.h"
#include "zero/aio_pool.h"

struct dsc_nvme {
    dsc_ctx_t *ctx;
    dsc_nvme_options_t o;
    int64_t n, s, groups, stride, file_bytes;
    int n_states;
    char what[1024];             /* dsc__nvme_describe */
    dsc_aio_pool_t *pool;        /* the file; buffer_count records of stride bytes */
    /* The record in buffer 0 between steps (get / set), -1: none; dirty: set but not written. */
    int64_t cached;
    bool dirty;
    /* Non-host devices: the sub-group's states are copied into this device window. */
    float *window;
    int64_t steps;
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

static float *buf_host(const dsc_nvme_t *nv, int b) { return (float *)nv->pool->bufs[b].host; }
static void group_name(int64_t g, int64_t part, char *out, size_t outsz) {
    snprintf(out, outsz, "of sub-group %lld", (long long)g);
}

void dsc__nvme_free(dsc_nvme_t *nv) {
    if (!nv) return;
    if (nv->pool) dsc__mem_sub(nv->ctx, DSC_MEM_OPTIM, (size_t)nv->pool->o.n_bufs * (size_t)nv->stride);
    dsc__aio_pool_free(nv->pool); /* waits for anything still in flight into the buffers */
    if (nv->window) dsc__dev_free(nv->ctx, DSC_MEM_OPTIM, nv->window, (size_t)nv->stride);
    free(nv);
}

/* Submits the record of group g (read or write) from / into buffer b. */
static dsc_status_t submit(dsc_nvme_t *nv, int b, int64_t g, bool write) {
    const size_t bytes = (size_t)dsc__nvme_round((int64_t)nv->n_states * group_len(nv, g) * 4);
    return dsc__aio_pool_submit(nv->pool, b, write, g, 0, bytes, (off_t)(g * nv->stride));
}

dsc_status_t dsc__nvme_new(dsc_ctx_t *ctx, const dsc_nvme_options_t *o, int rank, int64_t n_elems, int n_states,
                           const double *initial, dsc_nvme_t **out, char *err, size_t errsz) {
    *out = NULL;
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
    nv->cached = -1;
    nv->n = n_elems;
    nv->n_states = n_states;
    nv->s = dsc__nvme_group(n_elems, o->sub_group_size);
    nv->groups = (n_elems + nv->s - 1) / nv->s;
    nv->stride = dsc__nvme_round((int64_t)n_states * nv->s * 4);
    nv->file_bytes = dsc__nvme_file_bytes(n_elems, n_states, o->sub_group_size);
    const int n_bufs = o->buffer_count > 1 ? (int)(o->buffer_count < 64 ? o->buffer_count : 64) : 1;
    char sizing[160];
    snprintf(sizing, sizeof sizing, "zero_optimization.sub_group_size %lld, offload_optimizer.buffer_count %lld",
             (long long)o->sub_group_size, (long long)o->buffer_count);
    const dsc_aio_pool_options_t po = {ctx, "offload_optimizer", o->nvme_path, "dsc-optim-swap", "the optimizer state",
                                       rank, nv->file_bytes, n_bufs, (size_t)nv->stride, false, sizing,
                                       o->block_size, o->queue_depth, o->single_submit, true, group_name};
    dsc_status_t st = dsc__aio_pool_new(&po, &nv->pool, err, errsz);
    if (st == DSC_OK) dsc__mem_add(ctx, DSC_MEM_OPTIM, (size_t)n_bufs * (size_t)nv->stride); /* the host buffers */
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
            for (int64_t k = 0; k < len; k++) buf_host(nv, 0)[i * len + k] = (float)initial[i];
        st = submit(nv, 0, g, true);
        if (st == DSC_OK) st = dsc__aio_pool_finish(nv->pool, 0);
        if (st != DSC_OK) snprintf(err, errsz, "%s", dsc_ctx_errmsg(ctx));
    }
    if (st == DSC_OK) {
        snprintf(nv->what, sizeof nv->what,
                 "%s, %lld bytes in %lld sub-group%s of %lld elements x %d state%s, %d buffer%s of %lld bytes, "
                 "pipeline_read %s, pipeline_write %s, block_size %lld, queue_depth %lld",
                 nv->pool->desc, (long long)nv->file_bytes, (long long)nv->groups, nv->groups == 1 ? "" : "s",
                 (long long)nv->s, n_states, n_states == 1 ? "" : "s", n_bufs, n_bufs == 1 ? "" : "s",
                 (long long)nv->stride, o->pipeline_read ? "on" : "off", o->pipeline_write ? "on" : "off",
                 (long long)o->block_size, (long long)o->queue_depth);
        *out = nv;
        return DSC_OK;
    }
    dsc__nvme_free(nv);
    return st;
}

/* The cached record written back (get / set between steps). */
dsc_status_t dsc__nvme_flush(dsc_nvme_t *nv) {
    if (!nv || !nv->dirty) return DSC_OK;
    dsc_status_t st = submit(nv, 0, nv->cached, true);
    if (st == DSC_OK) st = dsc__aio_pool_finish(nv->pool, 0);
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
    if (st == DSC_OK) st = dsc__aio_pool_finish(nv->pool, 0);
    dsc__aio_pool_release(nv->pool, 0); /* its bytes stay: the cached record */
    if (st == DSC_OK) nv->cached = g;
    return st;
}

static dsc_status_t copy_range(dsc_nvme_t *nv, int state, int64_t offset, int64_t n, float *host, bool set) {
    const char *fn = set ? "dsc__nvme_set" : "dsc__nvme_get";
    dsc_status_t st = dsc__aio_pool_usable(nv->pool, fn);
    if (st != DSC_OK) return st;
    if (state < 0 || state >= nv->n_states || offset < 0 || n < 0 || offset > nv->n || n > nv->n - offset)
        return dsc_ctx_set_error(nv->ctx, DSC_ERR_INVALID, "%s: state %d range [%lld, +%lld) outside %d states of %lld",
                                 fn, state, (long long)offset, (long long)n, nv->n_states, (long long)nv->n);
    while (n > 0) {
        const int64_t g = offset / nv->s, in = offset - g * nv->s, len = group_len(nv, g);
        const int64_t k = len - in < n ? len - in : n;
        st = load_cached(nv, g);
        if (st != DSC_OK) return st;
        float *rec = buf_host(nv, 0) + (int64_t)state * len + in;
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
    float *base = nv->window ? nv->window : buf_host(nv, b);
    const size_t bytes = (size_t)nv->n_states * (size_t)len * 4;
    dsc_status_t st = nv->window ? dsc__dev_from_host(nv->ctx, nv->window, buf_host(nv, b), bytes) : DSC_OK;
    if (st != DSC_OK) return st;
    float *states[3] = {NULL, NULL, NULL};
    for (int i = 0; i < nv->n_states && i < 3; i++) states[i] = base + (int64_t)i * len;
    dsc__optim_run_part(opt, pp, (size_t)len, master + a, grad + a, states,
                        half ? (char *)half + (size_t)a * half_size : NULL);
    if (nv->window) st = dsc__dev_to_host(nv->ctx, buf_host(nv, b), nv->window, bytes);
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
            b = dsc__aio_pool_find(nv->pool, g);
            if (b < 0) {
                st = dsc__aio_pool_take(nv->pool, false, &b);
                if (st == DSC_OK) st = submit(nv, b, g, false);
            }
            /* Read ahead into a buffer that is free now (no wait for a write). */
            if (st == DSC_OK && nv->o.pipeline_read && g + 1 < nv->groups && dsc__aio_pool_find(nv->pool, g + 1) < 0) {
                int ahead = -1;
                st = dsc__aio_pool_spare(nv->pool, true, &ahead);
                if (st == DSC_OK && ahead >= 0) st = submit(nv, ahead, g + 1, false);
            }
            if (st == DSC_OK) st = dsc__aio_pool_finish(nv->pool, b);
        } else {
            st = dsc__aio_pool_take(nv->pool, false, &b);
        }
        if (st != DSC_OK) break;
        if (opt) st = step_group(nv, b, g, opt, pp, master, grad, half, half_size);
        if (st != DSC_OK) {
            nv->pool->broken = true; /* earlier groups are written already: the file mixes two steps */
            break;
        }
        if (stream == 0) {
            dsc__aio_pool_release(nv->pool, b);
            continue;
        }
        st = submit(nv, b, g, true);
        if (st == DSC_OK && !nv->o.pipeline_write) st = dsc__aio_pool_finish(nv->pool, b);
    }
    dsc_status_t dr = dsc__aio_pool_drain(nv->pool);
    if (st == DSC_OK) st = dr;
    if (st != DSC_OK && stream != 0) nv->pool->broken = true;
    return st;
}

dsc_status_t dsc__nvme_step(dsc_nvme_t *nv, dsc_optim_t *opt, float *master, const float *grad, float grad_scale,
                            double lr, void *half, dsc_dtype_t half_dtype) {
    if (!nv || !opt) return DSC_ERR_INVALID;
    dsc_status_t st = dsc__aio_pool_usable(nv->pool, "optimizer step");
    if (st != DSC_OK) return st;
    if (dsc_optim_num_states(opt) != nv->n_states || (int64_t)dsc_optim_numel(opt) != nv->n)
        return dsc__aio_pool_fail(nv->pool, DSC_ERR_INVALID, "optimizer step", "the optimizer does not match the swap file");
    st = dsc__nvme_flush(nv);
    if (st != DSC_OK) return st;
    nv->cached = -1;
    dsc__optim_prepared_t pp;
    st = dsc__optim_prepare(opt, grad_scale, lr, half != NULL, half_dtype, &pp);
    if (st != DSC_OK) return st;
    st = run_pass(nv, opt, &pp, master, grad, half, half ? dsc_dtype_size(half_dtype) : 0, -1);
    if (st != DSC_OK) return st;
    dsc__optim_commit(opt, &pp);
    nv->steps++;
    return DSC_OK;
}

dsc_status_t dsc__nvme_stream(dsc_nvme_t *nv, bool write, double *seconds) {
    if (!nv) return DSC_ERR_INVALID;
    dsc_status_t st = dsc__aio_pool_usable(nv->pool, "stream");
    if (st == DSC_OK) st = dsc__nvme_flush(nv);
    if (st != DSC_OK) return st;
    nv->cached = -1;
    const double t0 = now_s();
    st = run_pass(nv, NULL, NULL, NULL, NULL, NULL, 0, write ? 1 : 0);
    if (seconds) *seconds = now_s() - t0;
    return st;
}

dsc_nvme_stats_t dsc__nvme_stats(const dsc_nvme_t *nv) {
    if (!nv) return (dsc_nvme_stats_t){0};
    const dsc_aio_pool_t *p = nv->pool;
    return (dsc_nvme_stats_t){p->bytes_read, p->bytes_written, p->wait_read_s, p->wait_write_s, nv->steps};
}
const char *dsc__nvme_describe(const dsc_nvme_t *nv) { return nv ? nv->what : "(none)"; }
int64_t dsc__nvme_bytes(const dsc_nvme_t *nv) { return nv ? nv->file_bytes : 0; }
int64_t dsc__nvme_host_bytes(const dsc_nvme_t *nv) { return nv ? (int64_t)nv->pool->o.n_bufs * nv->stride : 0; }

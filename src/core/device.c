/* The context's device: choosing it from the context option, the CPU device's table, and
 * the dsc__dev_* entry points that dispatch every buffer-byte operation through the
 * device's table (src/core/device.h). */
#include "core/device.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "dsc/gpu.h"
#include "amp/amp_internal.h"
#include "optim/optim_internal.h"
#include "ops/backend.h"

/* ---- the CPU device: host memory, work done when a call returns ---- */

static void *cpu_alloc(dsc_device_t *dev, size_t n_bytes) {
    (void)dev;
    size_t rounded = (n_bytes + DSC_ALIGN - 1) / DSC_ALIGN * DSC_ALIGN;
    return aligned_alloc(DSC_ALIGN, rounded ? rounded : DSC_ALIGN);
}
static void cpu_free(dsc_device_t *dev, void *ptr, size_t n_bytes) {
    (void)dev, (void)n_bytes;
    free(ptr);
}
static int cpu_memset(dsc_device_t *dev, void *dst, int value, size_t n) {
    (void)dev;
    /* in 64 MiB blocks over the threads when large: the optimizer state of a model of billions
     * of parameters is tens of GB of fresh pages, whose faults one thread takes at a few GB/s */
    const size_t block = (size_t)1 << 26;
    const int64_t n_blocks = (int64_t)((n + block - 1) / block);
#pragma omp parallel for schedule(static) if (n_blocks >= 4)
    for (int64_t i = 0; i < n_blocks; i++) {
        const size_t a = (size_t)i * block;
        memset((char *)dst + a, value, n - a < block ? n - a : block);
    }
    return 0;
}
static int cpu_copy(dsc_device_t *dev, void *dst, const void *src, size_t n) {
    (void)dev;
    if (n && dst != src) memcpy(dst, src, n);
    return 0;
}
static int cpu_convert(dsc_device_t *dev, void *dst, dsc_dtype_t dd, const void *src, dsc_dtype_t sd, size_t n) {
    (void)dev;
    return dsc_convert(dst, dd, src, sd, n) == DSC_OK ? 0 : -1;
}
static int cpu_sync(dsc_device_t *dev) {
    (void)dev;
    return 0;
}
/* CPU work is complete when its call returns: an event is a marker with nothing to wait for. */
struct dsc_device_event {
    int recorded;
};
static dsc_device_event_t *cpu_event_new(dsc_device_t *dev) {
    (void)dev;
    return calloc(1, sizeof(dsc_device_event_t));
}
static void cpu_event_record(dsc_device_t *dev, dsc_device_event_t *ev) {
    (void)dev;
    if (ev) ev->recorded = 1;
}
static int cpu_event_wait(dsc_device_t *dev, dsc_device_event_t *ev) {
    (void)dev, (void)ev;
    return 0;
}
static int cpu_event_sync(dsc_device_t *dev, dsc_device_event_t *ev) {
    (void)dev, (void)ev;
    return 0;
}
static void cpu_event_free(dsc_device_t *dev, dsc_device_event_t *ev) {
    (void)dev;
    free(ev);
}
static bool cpu_host_accessible(const dsc_device_t *dev, const void *ptr) {
    (void)dev, (void)ptr;
    return true;
}

static dsc_device_table_t g_cpu_table;
static pthread_once_t g_cpu_once = PTHREAD_ONCE_INIT;

static void cpu_table_fill(void) {
    g_cpu_table = (dsc_device_table_t){
            .name = "cpu",
            .alloc = cpu_alloc,
            .free = cpu_free,
            .memset = cpu_memset,
            .copy = cpu_copy,
            .from_host = cpu_copy,
            .to_host = cpu_copy,
            .convert = cpu_convert,
            .sync = cpu_sync,
            .event_new = cpu_event_new,
            .event_record = cpu_event_record,
            .event_wait = cpu_event_wait,
            .event_free = cpu_event_free,
            .event_sync = cpu_event_sync,
            .host_accessible = cpu_host_accessible,
            .destroy = NULL,
            .ops = dsc__backend_cpu(),
            .amp = &dsc__amp_ops_cpu,
            .optim = &dsc__optim_ops_cpu,
        };
}

/* Filled once (the op table comes from a function). */
const dsc_device_table_t *dsc__device_cpu_table(void) {
    pthread_once(&g_cpu_once, cpu_table_fill);
    return &g_cpu_table;
}

/* ---- choosing the device ---- */

/* "cuda" without an ordinal: the GPU of this rank on its node, local rank mod the GPU count
 * (the launchers' variables; 0 when none is set or no GPU is visible). */
static long local_gpu(void) {
    static const char *vars[] = {"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID", "LOCAL_RANK"};
    long rank = 0;
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *v = getenv(vars[i]);
        char *end = NULL;
        long r = v && *v ? strtol(v, &end, 10) : -1;
        if (r >= 0 && end && !*end) {
            rank = r;
            break;
        }
    }
    const int gpus = dsc_gpu_count();
    return gpus > 0 ? rank % gpus : 0;
}

dsc_status_t dsc__device_init(dsc_ctx_t *ctx, const char *spec, char *err, size_t err_len) {
    dsc_device_t *dev = &ctx->device;
    memset(dev, 0, sizeof *dev);
    dev->ctx = ctx;
    const char *from = "the context option";
    if (!spec || !*spec) {
        spec = getenv("DSC_DEVICE");
        from = "DSC_DEVICE";
    }
    if (!spec || !*spec) spec = "cpu";
    if (strcmp(spec, "cpu") == 0) {
        dev->kind = DSC_DEVICE_CPU;
        dev->table = dsc__device_cpu_table();
        snprintf(dev->name, sizeof dev->name, "cpu");
        return DSC_OK;
    }
    if (strcmp(spec, "guarded") == 0) {
        dev->kind = DSC_DEVICE_GUARDED;
        snprintf(dev->name, sizeof dev->name, "guarded");
        return dsc__device_guarded_init(dev, err, err_len);
    }
    if (strncmp(spec, "cuda", 4) == 0) {
        char *end = NULL;
        long n = spec[4] == ':' ? strtol(spec + 5, &end, 10) : (spec[4] ? -1 : local_gpu());
        if (spec[4] && (n < 0 || n > 4095 || !end || end == spec + 5 || *end)) {
            snprintf(err, err_len, "device \"%s\" (from %s): expected cuda or cuda:N with N >= 0", spec, from);
            return DSC_ERR_INVALID;
        }
        dev->kind = DSC_DEVICE_CUDA;
        dev->ordinal = (int)n;
        snprintf(dev->name, sizeof dev->name, "cuda:%d", (int)n);
        char why[384] = "";
        dsc_status_t st = dsc__device_cuda_init(dev, (int)n, why, sizeof why);
        if (st != DSC_OK) snprintf(err, err_len, "%s [device \"%s\" from %s]", why, spec, from);
        return st;
    }
    snprintf(err, err_len, "device \"%s\" (from %s) is unknown; devices: cpu, guarded, cuda:N", spec, from);
    return DSC_ERR_INVALID;
}

void dsc__device_destroy(dsc_ctx_t *ctx) {
    dsc_device_t *dev = &ctx->device;
    if (dev->table && dev->table->destroy) dev->table->destroy(dev);
    dev->table = NULL;
}

dsc_device_t *dsc__ctx_device(dsc_ctx_t *ctx) { return &ctx->device; }

const char *dsc_ctx_device_name(const dsc_ctx_t *ctx) { return ctx && ctx->device.table ? ctx->device.name : "?"; }
int dsc_ctx_gemm_pad_elems(const dsc_ctx_t *ctx) {
    return ctx && ctx->device.table && ctx->device.table->gemm_pad_elems > 1 ? ctx->device.table->gemm_pad_elems : 0;
}

/* ---- the entry points ---- */

static dsc_status_t dev_fail(dsc_ctx_t *ctx, const char *what, size_t n_bytes) {
    return dsc_ctx_set_error(ctx, DSC_ERR_INVALID, "device %s: %s of %zu bytes failed", ctx->device.name, what,
                             n_bytes);
}

void *dsc__dev_alloc_raw(dsc_ctx_t *ctx, size_t n_bytes) {
    void *p = ctx->device.table->alloc(&ctx->device, n_bytes);
    if (p) dsc__dev_count(&ctx->device, (long long)n_bytes);
    return p;
}

/* Keeps a buffer whose free the host-read check refused (ctx->parked). */
static void park(dsc_ctx_t *ctx, void *ptr, size_t n_bytes, bool pinned) {
    if (ctx->n_parked == ctx->cap_parked) {
        const size_t cap = ctx->cap_parked ? 2 * ctx->cap_parked : 8;
        struct dsc_parked_free *p = realloc(ctx->parked, cap * sizeof *p);
        if (!p) {
            dsc_ctx_log(ctx, DSC_LOG_ERROR, "device %s: out of host memory listing a refused free: %zu bytes lost",
                        ctx->device.name, n_bytes);
            return;
        }
        ctx->parked = p;
        ctx->cap_parked = cap;
    }
    ctx->parked[ctx->n_parked++] = (struct dsc_parked_free){ptr, n_bytes, pinned};
    dsc_ctx_log(ctx, DSC_LOG_WARN,
                "device %s: %zu bytes of %s not freed: a collective reported stuck may still write them; kept until "
                "the context is freed",
                ctx->device.name, n_bytes, pinned ? "page-locked host memory" : "device memory");
}

/* Hands a buffer back to the device: page-locked host memory, or device memory (counted). */
static void release(dsc_ctx_t *ctx, void *ptr, size_t n_bytes, bool pinned) {
    if (pinned) {
        ctx->device.table->host_free_pinned(&ctx->device, ptr, n_bytes);
    } else {
        ctx->device.table->free(&ctx->device, ptr, n_bytes);
        dsc__dev_count(&ctx->device, -(long long)n_bytes);
    }
}

void dsc__dev_free_parked(dsc_ctx_t *ctx) {
    for (size_t i = 0; i < ctx->n_parked; i++) release(ctx, ctx->parked[i].ptr, ctx->parked[i].n_bytes, ctx->parked[i].pinned);
    free(ctx->parked);
    ctx->parked = NULL;
    ctx->n_parked = ctx->cap_parked = 0;
}

/* A device's free may wait for the whole device (cudaFree, cudaFreeHost): the collectives in
 * flight are settled first, polling, and when one is reported stuck the buffer, which it may
 * still write, is kept (parked) rather than handed back. */
static const char free_what[] = "a free of device memory, which waits for the whole device";
static const char pinned_what[] = "a free of page-locked host memory, which waits for the whole device";

static void checked_free(dsc_ctx_t *ctx, void *ptr, size_t n_bytes, bool pinned) {
    if (!ptr) return;
    const char *what = pinned ? pinned_what : free_what;
    if (dsc__dev_host_wait_check(ctx, true, true, what) != DSC_OK) {
        park(ctx, ptr, n_bytes, pinned);
        return;
    }
    release(ctx, ptr, n_bytes, pinned);
    dsc__dev_host_wait_check(ctx, false, true, what); /* found while the free waited: reported */
}

void dsc__dev_free_raw(dsc_ctx_t *ctx, void *ptr, size_t n_bytes) { checked_free(ctx, ptr, n_bytes, false); }
void dsc__dev_host_free_pinned(dsc_ctx_t *ctx, void *ptr, size_t n_bytes) { checked_free(ctx, ptr, n_bytes, true); }

dsc_status_t dsc_ctx_device_memory(const dsc_ctx_t *ctx, size_t *live_bytes, size_t *peak_bytes) {
    if (!ctx) return DSC_ERR_INVALID;
    if (live_bytes) *live_bytes = ctx->device.bytes_live;
    if (peak_bytes) *peak_bytes = ctx->device.bytes_peak;
    return DSC_OK;
}

void *dsc__dev_alloc(dsc_ctx_t *ctx, dsc_mem_category_t category, size_t n_bytes) {
    return dsc_ctx_alloc(ctx, category, n_bytes);
}

void dsc__dev_free(dsc_ctx_t *ctx, dsc_mem_category_t category, void *ptr, size_t n_bytes) {
    dsc_ctx_release(ctx, category, ptr, n_bytes);
}

dsc_status_t dsc__dev_zero(dsc_ctx_t *ctx, void *dst, size_t n_bytes) {
    if (n_bytes && ctx->device.table->memset(&ctx->device, dst, 0, n_bytes) != 0)
        return dev_fail(ctx, "zero fill", n_bytes);
    return DSC_OK;
}

dsc_status_t dsc__dev_copy(dsc_ctx_t *ctx, void *dst, const void *src, size_t n_bytes) {
    if (n_bytes && dst != src && ctx->device.table->copy(&ctx->device, dst, src, n_bytes) != 0)
        return dev_fail(ctx, "device-to-device copy", n_bytes);
    return DSC_OK;
}

/* Around a blocking read: the communicators' collectives the read would wait behind
 * (ctx->host_read_check) are waited for first, polling, so the host never blocks inside
 * the device's wait behind a stuck one; their report (what a watchdog found) takes
 * precedence over the read. */
dsc_status_t dsc__dev_host_wait_check(dsc_ctx_t *ctx, bool before, bool whole_device, const char *what) {
    return ctx->host_read_check ? ctx->host_read_check(ctx->host_read_check_user, before, whole_device, what)
                                : DSC_OK;
}
static const char read_what[] = "a host read of device memory";
static dsc_status_t before_host_read(dsc_ctx_t *ctx) { return dsc__dev_host_wait_check(ctx, true, false, read_what); }
static dsc_status_t after_host_read(dsc_ctx_t *ctx, dsc_status_t st) {
    dsc_status_t cs = dsc__dev_host_wait_check(ctx, false, false, read_what);
    return cs != DSC_OK ? cs : st;
}

dsc_status_t dsc__dev_to_host(dsc_ctx_t *ctx, void *host_dst, const void *src, size_t n_bytes) {
    dsc_status_t st = before_host_read(ctx);
    if (st != DSC_OK) return st;
    if (n_bytes && ctx->device.table->to_host(&ctx->device, host_dst, src, n_bytes) != 0)
        st = dev_fail(ctx, "device-to-host copy", n_bytes);
    return after_host_read(ctx, st);
}

dsc_status_t dsc__dev_to_host_async_ev(dsc_ctx_t *ctx, void *host_dst, const void *src, size_t n_bytes,
                                       dsc_device_event_t *done) {
    if (!ctx->device.table->to_host_async) return DSC_ERR_UNSUPPORTED;
    if (ctx->device.table->to_host_async(&ctx->device, host_dst, src, n_bytes, done) != 0)
        return dev_fail(ctx, "device-to-host copy (asynchronous)", n_bytes);
    return DSC_OK;
}

dsc_status_t dsc__dev_to_host_async(dsc_ctx_t *ctx, void *host_dst, const void *src, size_t n_bytes) {
    if (n_bytes) return dsc__dev_to_host_async_ev(ctx, host_dst, src, n_bytes, NULL); /* it checks the entry */
    return ctx->device.table->to_host_async ? DSC_OK : DSC_ERR_UNSUPPORTED;
}

bool dsc__dev_has_to_host_async(const dsc_ctx_t *ctx) { return ctx->device.table->to_host_async != NULL; }

/* (n_bytes 0 still records `read`: a caller may wait for it as for any copy) */
dsc_status_t dsc__dev_from_host_async(dsc_ctx_t *ctx, void *dst, const void *host_src, size_t n_bytes,
                                      dsc_device_event_t *read) {
    if (!ctx->device.table->from_host_async) return DSC_ERR_UNSUPPORTED;
    if (ctx->device.table->from_host_async(&ctx->device, dst, host_src, n_bytes, read) != 0)
        return dev_fail(ctx, "host-to-device copy (asynchronous)", n_bytes);
    return DSC_OK;
}

bool dsc__dev_has_from_host_async(const dsc_ctx_t *ctx) { return ctx->device.table->from_host_async != NULL; }

dsc_status_t dsc__dev_from_host(dsc_ctx_t *ctx, void *dst, const void *host_src, size_t n_bytes) {
    if (n_bytes && ctx->device.table->from_host(&ctx->device, dst, host_src, n_bytes) != 0)
        return dev_fail(ctx, "host-to-device copy", n_bytes);
    return DSC_OK;
}

dsc_status_t dsc__dev_convert(dsc_ctx_t *ctx, void *dst, dsc_dtype_t dst_dtype, const void *src,
                              dsc_dtype_t src_dtype, size_t n_elems) {
    if (n_elems && ctx->device.table->convert(&ctx->device, dst, dst_dtype, src, src_dtype, n_elems) != 0)
        return dsc_ctx_set_error(ctx, DSC_ERR_INVALID, "device %s: convert %s -> %s: unsupported dtype pair",
                                 ctx->device.name, dsc_dtype_name(src_dtype), dsc_dtype_name(dst_dtype));
    return DSC_OK;
}

dsc_status_t dsc__dev_sync(dsc_ctx_t *ctx) {
    dsc_status_t st = before_host_read(ctx);
    if (st != DSC_OK) return st;
    if (ctx->device.table->sync(&ctx->device) != 0)
        st = dsc_ctx_set_error(ctx, DSC_ERR_INVALID, "device %s: synchronise failed", ctx->device.name);
    return after_host_read(ctx, st);
}

dsc_device_event_t *dsc__dev_event_new(dsc_ctx_t *ctx) {
    dsc_device_event_t *ev = ctx->device.table->event_new(&ctx->device);
    if (!ev) dsc__fail(ctx, DSC_ERR_NOMEM, "device %s: out of memory creating an event", ctx->device.name);
    return ev;
}
void dsc__dev_event_record(dsc_ctx_t *ctx, dsc_device_event_t *ev) {
    if (ev) ctx->device.table->event_record(&ctx->device, ev);
}
dsc_status_t dsc__dev_event_wait(dsc_ctx_t *ctx, dsc_device_event_t *ev) {
    if (ev && ctx->device.table->event_wait(&ctx->device, ev) != 0)
        return dsc_ctx_set_error(ctx, DSC_ERR_INVALID, "device %s: waiting for an event failed", ctx->device.name);
    return DSC_OK;
}
/* A blocking host wait like a read: the event may sit behind a communicator's collective
 * (a copy stream ordered after the context's stream), so the same check runs around it. */
dsc_status_t dsc__dev_event_sync(dsc_ctx_t *ctx, dsc_device_event_t *ev) {
    if (!ev) return DSC_OK;
    dsc_status_t st = before_host_read(ctx);
    if (st != DSC_OK) return st;
    if (ctx->device.table->event_sync(&ctx->device, ev) != 0) {
        char why[512]; /* the entry's own message (the guarded device's contract check), kept */
        snprintf(why, sizeof why, "%s", dsc_ctx_errmsg(ctx));
        st = dsc_ctx_set_error(ctx, DSC_ERR_INVALID, "device %s: waiting on the host for an event failed: %s",
                               ctx->device.name, why);
    }
    return after_host_read(ctx, st);
}
void dsc__dev_event_free(dsc_ctx_t *ctx, dsc_device_event_t *ev) {
    if (ev) ctx->device.table->event_free(&ctx->device, ev);
}

bool dsc__dev_host_accessible(const dsc_ctx_t *ctx, const void *ptr) {
    return ctx->device.table->host_accessible(&ctx->device, ptr);
}

double dsc__dev_read_scalar(dsc_ctx_t *ctx, const void *src, dsc_dtype_t dtype) {
    unsigned char buf[8];
    size_t es = dsc_dtype_size(dtype);
    if (es == 0 || es > sizeof buf || dsc__dev_to_host(ctx, buf, src, es) != DSC_OK) return NAN;
    double v = NAN;
    dsc_convert(&v, DSC_F64, buf, dtype, 1);
    return v;
}

dsc_status_t dsc__dev_write_scalar(dsc_ctx_t *ctx, void *dst, dsc_dtype_t dtype, double value) {
    unsigned char buf[8];
    size_t es = dsc_dtype_size(dtype);
    if (es == 0 || es > sizeof buf)
        return dsc_ctx_set_error(ctx, DSC_ERR_INVALID, "device write: unknown dtype %d", (int)dtype);
    dsc_convert(buf, dtype, &value, DSC_F64, 1);
    return dsc__dev_from_host(ctx, dst, buf, es);
}

/* The CUDA device (cuda:N): memory, copies and events of its table, all issued on one stream
 * per context, and its set-up from the context option. The op, optimizer and
 * mixed-precision entries live in cuda_backend.c and cuda_optim_amp.c.
 *
 * Copies to the host wait for the stream (the bytes are on the host when the call returns);
 * copies from the host also wait, so the caller may reuse or free its buffer at once (pinned
 * or not). Everything else is asynchronous on the stream, and so are the asynchronous copies
 * (to_host_async, from_host_async: each direction on a stream of its own, ordered against
 * the main one by events). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/internal.h"
#include "dsc/gpu.h"
#include "amp/amp_internal.h"
#include "ops/backend.h"
#include "ops/cuda/cuda_device.h"
#include "optim/optim_internal.h"

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void profile_add(dsc_cuda_dev_t *c, const char *what, double seconds) {
    int i = 0;
    while (i < c->n_prof && c->prof[i].what != what && strcmp(c->prof[i].what, what) != 0) i++;
    if (i == c->n_prof && c->n_prof < (int)(sizeof c->prof / sizeof c->prof[0])) c->prof[c->n_prof++].what = what;
    if (i < c->n_prof) {
        c->prof[i].calls++;
        c->prof[i].seconds += seconds;
    }
}

/* Profiling mode, at the check after each call: the previous call was synchronised, so the
 * device was idle from then until this call was issued (host time: its own row, "host:
 * before <what>"); the wait that follows is this call's device time. */
static void profile_call(dsc_cuda_dev_t *c, const char *what) {
    const double issued = now_seconds();
    dsc_cuda_stream_sync(c->stream);
    const double done = now_seconds();
    profile_add(c, what, done - issued);
    char host_row[64];
    snprintf(host_row, sizeof host_row, "host: before %.48s", what);
    int i = 0; /* the host row's name must outlive this call: keep one copy per row */
    while (i < c->n_host && strcmp(c->host_names[i], host_row) != 0) i++;
    if (i == c->n_host && c->n_host < (int)(sizeof c->host_names / sizeof c->host_names[0]))
        snprintf(c->host_names[c->n_host++], sizeof c->host_names[0], "%s", host_row);
    if (i < c->n_host) profile_add(c, c->host_names[i], issued - c->prof_mark);
    c->prof_mark = done;
}

static int by_seconds(const void *a, const void *b) {
    const struct dsc_cuda_prof_row *x = a, *y = b;
    return x->seconds < y->seconds ? 1 : x->seconds > y->seconds ? -1 : 0;
}

static void profile_print(const dsc_device_t *dev, dsc_cuda_dev_t *c) {
    double total = 0;
    for (int i = 0; i < c->n_prof; i++) total += c->prof[i].seconds;
    qsort(c->prof, (size_t)c->n_prof, sizeof c->prof[0], by_seconds);
    fprintf(stderr, "dsc cuda profile, device %s (%s), every call synchronised: %.3f s in %d kinds of call\n",
            dev->name, c->info.name, total, c->n_prof);
    fprintf(stderr, "  %-48s %10s %12s %9s %7s\n", "call", "calls", "total ms", "us/call", "share");
    for (int i = 0; i < c->n_prof; i++)
        fprintf(stderr, "  %-48s %10ld %12.3f %9.1f %6.1f%%\n", c->prof[i].what, c->prof[i].calls,
                1e3 * c->prof[i].seconds, c->prof[i].calls ? 1e6 * c->prof[i].seconds / (double)c->prof[i].calls : 0.0,
                total > 0 ? 100.0 * c->prof[i].seconds / total : 0.0);
}

int dsc__cuda_check(dsc_device_t *dev, int rc, const char *what) {
    dsc_cuda_dev_t *c = dsc__cuda_dev(dev);
    if (c && c->profile) profile_call(c, what);
    if (rc == 0) return 0;
    dsc_ctx_set_error(dev->ctx, DSC_ERR_DEVICE, "device %s: %s failed: %s (CUDA error %d)", dev->name, what,
                      dsc_cuda_error_string(rc), rc);
    return -1;
}

int dsc__cuda_host_wait(dsc_device_t *dev, bool before, bool whole_device, const char *what) {
    return dsc__dev_host_wait_check(dev->ctx, before, whole_device, what) == DSC_OK ? 0 : -1;
}

void *dsc__cuda_scratch(dsc_device_t *dev, size_t n_bytes) {
    dsc_cuda_dev_t *c = dsc__cuda_dev(dev);
    if (n_bytes <= c->scratch_bytes) return c->scratch;
    size_t want = c->scratch_bytes ? c->scratch_bytes : 4096;
    while (want < n_bytes) want *= 2;
    /* the old scratch may still be read by queued kernels; cudaFree waits for the whole device */
    static const char what[] = "the growth of the device's scratch, which frees the old one";
    if (c->scratch && dsc__cuda_host_wait(dev, true, true, what)) return NULL;
    if (c->scratch && dsc__cuda_check(dev, dsc_cuda_stream_sync(c->stream), "synchronise before growing scratch"))
        return NULL;
    if (c->scratch) dsc_cuda_free(c->scratch);
    dsc__dev_count(dev, -(long long)c->scratch_bytes);
    const bool had = c->scratch != NULL;
    c->scratch = NULL;
    c->scratch_bytes = 0;
    if (had && dsc__cuda_host_wait(dev, false, true, what)) return NULL; /* reported while the free waited */
    void *p = NULL;
    if (dsc__cuda_check(dev, dsc_cuda_malloc(&p, want), "allocating device scratch")) return NULL;
    c->scratch = p;
    c->scratch_bytes = want;
    dsc__dev_count(dev, (long long)want);
    return p;
}

static void *cu_alloc(dsc_device_t *dev, size_t n_bytes) {
    void *p = NULL;
    /* cudaMalloc returns 256-byte aligned memory; the caller records out-of-memory */
    if (dsc_cuda_malloc(&p, n_bytes ? n_bytes : 1) != 0) return NULL;
    if (dsc__cuda_dev(dev)->profile) dsc__cuda_check(dev, 0, "allocating device memory");
    return p;
}
static void cu_free(dsc_device_t *dev, void *ptr, size_t n_bytes) {
    (void)n_bytes;
    if (ptr) dsc__cuda_check(dev, dsc_cuda_free(ptr), "freeing device memory");
}
static int cu_memset(dsc_device_t *dev, void *dst, int value, size_t n) {
    return dsc__cuda_check(dev, dsc_cuda_memset_async(dst, value, n, dsc__cuda_stream(dev)), "memset");
}
static int cu_copy(dsc_device_t *dev, void *dst, const void *src, size_t n) {
    return dsc__cuda_check(dev, dsc_cuda_copy_d2d_async(dst, src, n, dsc__cuda_stream(dev)), "device-to-device copy");
}
static int cu_from_host(dsc_device_t *dev, void *dst, const void *host_src, size_t n) {
    void *s = dsc__cuda_stream(dev);
    /* (named by size: a profile tells the batch uploads from the scalars) */
    const char *what = n < 1024 ? "host-to-device copy, < 1 KiB"
                       : n < (1u << 20) ? "host-to-device copy, < 1 MiB" : "host-to-device copy, >= 1 MiB";
    /* From pageable memory cudaMemcpyAsync returns once it has staged the bytes (CUDA's "API
     * synchronization behavior"): the caller may reuse host_src and the host runs on, so the
     * next micro-batch's tokens go up while the device still works on this one. A page-locked
     * source is read by the DMA later: wait for it, behind whatever the stream waits for (a
     * communicator's collective: settled first, like a read). */
    static const char pinned_what[] = "a host-to-device copy from page-locked memory, which waits for the stream";
    const bool pinned = dsc_cuda_is_pinned_host_pointer(host_src);
    if (pinned && dsc__cuda_host_wait(dev, true, false, pinned_what)) return -1;
    if (dsc__cuda_check(dev, dsc_cuda_copy_h2d_async(dst, host_src, n, s), what)) return -1;
    if (!pinned) return 0;
    if (dsc__cuda_check(dev, dsc_cuda_stream_sync(s), "host-to-device copy (synchronise)")) return -1;
    return dsc__cuda_host_wait(dev, false, false, pinned_what);
}
/* The asynchronous copies' streams, once they exist, are waited for too. */
static int sync_d2h(dsc_device_t *dev) {
    void *d = dsc__cuda_dev(dev)->d2h_stream, *h = dsc__cuda_dev(dev)->h2d_stream;
    if (d && dsc__cuda_check(dev, dsc_cuda_stream_sync(d), "asynchronous device-to-host copies (synchronise)"))
        return -1;
    return h ? dsc__cuda_check(dev, dsc_cuda_stream_sync(h), "asynchronous host-to-device copies (synchronise)") : 0;
}
static int cu_to_host(dsc_device_t *dev, void *host_dst, const void *src, size_t n) {
    void *s = dsc__cuda_stream(dev);
    if (dsc__cuda_check(dev, dsc_cuda_copy_d2h_async(host_dst, src, n, s), "device-to-host copy")) return -1;
    if (dsc__cuda_check(dev, dsc_cuda_stream_sync(s), "device-to-host copy (synchronise)")) return -1;
    return sync_d2h(dev);
}
/* No wait: on a second stream ordered after everything queued on the main one (an event), so
 * the kernels queued next run while the copy engine moves the bytes; the caller reads
 * host_dst after a later to_host or sync, which wait for that stream too. src must not be
 * written before then, except by work followed by another copy of it (stream order on the
 * copy stream makes the last copy win). */
static int cu_to_host_async(dsc_device_t *dev, void *host_dst, const void *src, size_t n, dsc_device_event_t *done) {
    dsc_cuda_dev_t *c = dsc__cuda_dev(dev);
    if (!c->d2h_stream && dsc__cuda_check(dev, dsc_cuda_stream_create(&c->d2h_stream), "creating the copy stream"))
        return -1;
    if (!c->d2h_event && dsc__cuda_check(dev, dsc_cuda_event_create(&c->d2h_event), "creating the copy event")) return -1;
    if (dsc__cuda_check(dev, dsc_cuda_event_record(c->d2h_event, c->stream), "recording the copy event") ||
        dsc__cuda_check(dev, dsc_cuda_stream_wait_event(c->d2h_stream, c->d2h_event), "ordering the copy stream"))
        return -1;
    /* To pageable memory the copy returns only once it is done (CUDA's "API synchronization
     * behavior"), behind everything the main stream waits for: a host read then, settled first */
    static const char pageable_what[] = "a device-to-host copy to pageable memory, which waits for the stream";
    const bool blocks = n && !dsc_cuda_is_pinned_host_pointer(host_dst);
    if (blocks && dsc__cuda_host_wait(dev, true, false, pageable_what)) return -1;
    if (n && dsc__cuda_check(dev, dsc_cuda_copy_d2h_async(host_dst, src, n, c->d2h_stream),
                             "device-to-host copy (asynchronous)"))
        return -1;
    if (blocks && dsc__cuda_host_wait(dev, false, false, pageable_what)) return -1;
    return done ? dsc__cuda_check(dev, dsc_cuda_event_record(done, c->d2h_stream), "recording a copy's event") : 0;
}
/* No wait either way: on a third stream (the other direction's copy engine, so the gradient
 * streaming down and the update going up move at once), ordered after the work queued on
 * the main stream (dst may still be read or written there), with the main stream ordered
 * after the copy (later kernels read dst). `read` (or the device's own event) marks the
 * copy's end on the copy stream: the host waits for it (event_sync) before refilling
 * host_src, and only then, so the CPU goes on while the copy engine reads the buffer. */
static int cu_from_host_async(dsc_device_t *dev, void *dst, const void *host_src, size_t n, dsc_device_event_t *read) {
    dsc_cuda_dev_t *c = dsc__cuda_dev(dev);
    if (!c->h2d_stream && dsc__cuda_check(dev, dsc_cuda_stream_create(&c->h2d_stream), "creating the upload stream"))
        return -1;
    if (!c->h2d_event && dsc__cuda_check(dev, dsc_cuda_event_create(&c->h2d_event), "creating the upload event"))
        return -1;
    if (dsc__cuda_check(dev, dsc_cuda_event_record(c->h2d_event, c->stream), "recording the upload's start") ||
        dsc__cuda_check(dev, dsc_cuda_stream_wait_event(c->h2d_stream, c->h2d_event), "ordering the upload stream"))
        return -1;
    /* From pageable memory the driver may wait for the stream to stage the bytes (CUDA's "API
     * synchronization behavior"), behind everything the main stream waits for: settled first */
    static const char pageable_what[] = "a host-to-device copy from pageable memory, which may wait for the stream";
    const bool may_block = n && !dsc_cuda_is_pinned_host_pointer(host_src);
    if (may_block && dsc__cuda_host_wait(dev, true, false, pageable_what)) return -1;
    if (n && dsc__cuda_check(dev, dsc_cuda_copy_h2d_async(dst, host_src, n, c->h2d_stream),
                             "host-to-device copy (asynchronous)"))
        return -1;
    if (may_block && dsc__cuda_host_wait(dev, false, false, pageable_what)) return -1;
    void *end = read ? (void *)read : c->h2d_event;
    if (dsc__cuda_check(dev, dsc_cuda_event_record(end, c->h2d_stream), "recording the upload's end") ||
        dsc__cuda_check(dev, dsc_cuda_stream_wait_event(c->stream, end), "ordering the stream after the upload"))
        return -1;
    return 0;
}
static int cu_convert(dsc_device_t *dev, void *dst, dsc_dtype_t dd, const void *src, dsc_dtype_t sd, size_t n) {
    return dsc__cuda_check(dev, dsc_cuda_convert(dsc__cuda_stream(dev), dst, dd, src, sd, (int64_t)n), "convert");
}
static int cu_sync(dsc_device_t *dev) {
    if (dsc__cuda_check(dev, dsc_cuda_stream_sync(dsc__cuda_stream(dev)), "stream synchronise")) return -1;
    return sync_d2h(dev);
}
/* A CUDA event handle stands for the opaque event type. */
static dsc_device_event_t *cu_event_new(dsc_device_t *dev) {
    void *ev = NULL;
    if (dsc__cuda_check(dev, dsc_cuda_event_create(&ev), "creating an event")) return NULL;
    return (dsc_device_event_t *)ev;
}
static void cu_event_record(dsc_device_t *dev, dsc_device_event_t *ev) {
    dsc__cuda_check(dev, dsc_cuda_event_record(ev, dsc__cuda_stream(dev)), "recording an event");
}
static int cu_event_wait(dsc_device_t *dev, dsc_device_event_t *ev) {
    return dsc__cuda_check(dev, dsc_cuda_stream_wait_event(dsc__cuda_stream(dev), ev), "waiting for an event");
}
static int cu_event_sync(dsc_device_t *dev, dsc_device_event_t *ev) {
    return dsc__cuda_check(dev, dsc_cuda_event_sync(ev), "waiting on the host for an event");
}
static void cu_event_free(dsc_device_t *dev, dsc_device_event_t *ev) {
    if (ev) dsc__cuda_check(dev, dsc_cuda_event_destroy(ev), "destroying an event");
}
/* The communicators' entries (core/device.h): pinned host memory, a second stream, events on it. */
static void *cu_host_alloc_pinned(dsc_device_t *dev, size_t n_bytes) {
    void *p = NULL;
    (void)dev;
    return dsc_cuda_malloc_host(&p, n_bytes) == 0 ? p : NULL;
}
static void cu_host_free_pinned(dsc_device_t *dev, void *ptr, size_t n_bytes) {
    (void)n_bytes;
    if (ptr) dsc__cuda_check(dev, dsc_cuda_free_host(ptr), "freeing pinned host memory");
}
static void *cu_stream_new(dsc_device_t *dev) {
    void *s = NULL;
    return dsc__cuda_check(dev, dsc_cuda_stream_create(&s), "creating a communication stream") ? NULL : s;
}
static void cu_stream_free(dsc_device_t *dev, void *stream) {
    if (stream) dsc__cuda_check(dev, dsc_cuda_stream_destroy(stream), "destroying a communication stream");
}
static int cu_event_record_on(dsc_device_t *dev, dsc_device_event_t *ev, void *stream) {
    return dsc__cuda_check(dev, dsc_cuda_event_record(ev, stream), "recording an event on a communication stream");
}
static int cu_stream_wait_event(dsc_device_t *dev, void *stream, dsc_device_event_t *ev) {
    return dsc__cuda_check(dev, dsc_cuda_stream_wait_event(stream, ev), "ordering a stream after an event");
}
static int cu_event_query(dsc_device_t *dev, dsc_device_event_t *ev, bool *done) {
    return dsc__cuda_check(dev, dsc_cuda_event_query(ev, done), "querying an event");
}
static int cu_event_query_any_thread(const dsc_device_t *dev, dsc_device_event_t *ev, bool *done) {
    (void)dev; /* cudaEventQuery is thread-safe; the event carries its own context */
    return dsc_cuda_event_query(ev, done) == 0 ? 0 : -1;
}
static bool cu_host_accessible(const dsc_device_t *dev, const void *ptr) {
    (void)dev;
    return !dsc_cuda_is_device_pointer(ptr);
}
static void cu_mark(dsc_device_t *dev, const char *what) {
    if (dsc__cuda_dev(dev)->profile) dsc__cuda_check(dev, 0, what);
}
static void cu_destroy(dsc_device_t *dev) {
    dsc_cuda_dev_t *c = dsc__cuda_dev(dev);
    if (!c) return;
    if (c->stream) dsc_cuda_stream_sync(c->stream);
    if (c->profile && c->n_prof) profile_print(dev, c);
    dsc_cuda_cudnn_destroy(c->cudnn); /* its plans and handle */
    if (c->scratch) dsc_cuda_free(c->scratch);
    if (c->blas) dsc_cuda_blas_destroy(c->blas);
    if (c->d2h_stream) dsc_cuda_stream_sync(c->d2h_stream), dsc_cuda_stream_destroy(c->d2h_stream);
    if (c->d2h_event) dsc_cuda_event_destroy(c->d2h_event);
    if (c->h2d_stream) dsc_cuda_stream_sync(c->h2d_stream), dsc_cuda_stream_destroy(c->h2d_stream);
    if (c->h2d_event) dsc_cuda_event_destroy(c->h2d_event);
    if (c->stream) dsc_cuda_stream_destroy(c->stream);
    free(c);
    dev->impl = NULL;
}

static dsc_device_table_t g_cuda_table;
static pthread_once_t g_cuda_table_once = PTHREAD_ONCE_INIT;

static void cuda_table_fill(void) {
    g_cuda_table = (dsc_device_table_t){
            .name = "cuda",
            .alloc = cu_alloc,
            .free = cu_free,
            .memset = cu_memset,
            .copy = cu_copy,
            .from_host = cu_from_host,
            .to_host = cu_to_host,
            .to_host_async = cu_to_host_async,
            .from_host_async = cu_from_host_async,
            .convert = cu_convert,
            .sync = cu_sync,
            .event_new = cu_event_new,
            .event_record = cu_event_record,
            .event_wait = cu_event_wait,
            .event_free = cu_event_free,
            .event_sync = cu_event_sync,
            .host_alloc_pinned = cu_host_alloc_pinned,
            .host_free_pinned = cu_host_free_pinned,
            .stream_new = cu_stream_new,
            .stream_free = cu_stream_free,
            .event_record_on = cu_event_record_on,
            .stream_wait_event = cu_stream_wait_event,
            .event_query = cu_event_query,
            .event_query_any_thread = cu_event_query_any_thread,
            .host_accessible = cu_host_accessible,
            .destroy = cu_destroy,
            .mark = cu_mark,
            .gemm_pad_elems = 64,
            .ops = dsc__backend_cuda(),
            .optim = &dsc__optim_ops_cuda,
            .amp = &dsc__amp_ops_cuda,
    };
}

/* Filled once (the op table comes from a function). */
static const dsc_device_table_t *cuda_table(void) {
    pthread_once(&g_cuda_table_once, cuda_table_fill);
    return &g_cuda_table;
}

/* cuBLASLt workspace: 32 MiB, what cuBLASLt's Hopper heuristics ask for at most. */
#define DSC_CUDA_BLAS_WORKSPACE (32u << 20)

/* DSC_CUDA_ATTENTION: comma-separated words among recompute, pre, atomic (the backward),
 * fwd4, fwd8 (forward warps), bwd4, bwd8 (backward warps), cudnn (cuDNN's fused attention
 * where it applies, the variant the other words pick elsewhere); unset or empty: the defaults,
 * which are the pre backward on 4 warps: bitwise reproducible like recompute, and faster in
 * the training step (d12 B 64 on an H100, session 6: 1252 ms per step against recompute's
 * 1280; atomic 1238 ms but not reproducible, so it is opt-in). */
static dsc_status_t parse_attention_variant(const char *dev_name, const char *v, dsc_cuda_att_cfg_t *cfg,
                                            bool *cudnn, char *err, size_t err_len) {
    memset(cfg, 0, sizeof *cfg);
    cfg->bwd = DSC_CUDA_ATT_BWD_PRE;
    /* unset: cuDNN's fused attention where it loads and takes the call (H100, d12 B64: the
     * step 1036 ms against 1273 ms on dsc's kernels), else dsc's kernels with `pre`; a value
     * names what runs, and without the word cudnn it is dsc's kernels alone */
    *cudnn = v == NULL;
    if (!v) return DSC_OK;
    const char *p = v;
    while (*p) {
        size_t n = strcspn(p, ",");
        static const struct {
            const char *word;
            int field, value; /* field 0: bwd, 1: fwd_warps, 2: bwd_warps, 3: cudnn */
        } words[] = {{"recompute", 0, DSC_CUDA_ATT_BWD_RECOMPUTE}, {"pre", 0, DSC_CUDA_ATT_BWD_PRE},
                     {"atomic", 0, DSC_CUDA_ATT_BWD_ATOMIC},       {"fwd4", 1, 4},
                     {"fwd8", 1, 8},                               {"bwd4", 2, 4},
                     {"bwd8", 2, 8},                               {"cudnn", 3, 1}};
        size_t k = 0;
        while (k < sizeof words / sizeof words[0] && !(strlen(words[k].word) == n && !strncmp(words[k].word, p, n))) k++;
        if (n > 0 && k == sizeof words / sizeof words[0]) {
            snprintf(err, err_len,
                     "device %s: DSC_CUDA_ATTENTION=\"%s\": unknown word \"%.*s\" (recompute, pre, atomic, fwd4, "
                     "fwd8, bwd4, bwd8, cudnn)",
                     dev_name, v, (int)n, p);
            return DSC_ERR_INVALID;
        }
        if (n > 0) {
            if (words[k].field == 0) cfg->bwd = words[k].value;
            else if (words[k].field == 1) cfg->fwd_warps = words[k].value;
            else if (words[k].field == 2) cfg->bwd_warps = words[k].value;
            else *cudnn = true;
        }
        p += n;
        if (*p == ',') p++;
    }
    if (cfg->bwd == DSC_CUDA_ATT_BWD_RECOMPUTE && cfg->bwd_warps == 8) {
        snprintf(err, err_len, "device %s: DSC_CUDA_ATTENTION=\"%s\": the recompute backward runs on 4 warps only",
                 dev_name, v);
        return DSC_ERR_INVALID;
    }
    return DSC_OK;
}

dsc_status_t dsc__device_cuda_init(dsc_device_t *dev, int ordinal, char *err, size_t err_len) {
    int count = dsc_cuda_device_count();
    if (count <= 0) {
        snprintf(err, err_len,
                 "device %s: no CUDA device is visible (no GPU, no driver, or CUDA_VISIBLE_DEVICES hides them); "
                 "`dsc doctor` shows what is missing",
                 dev->name);
        return DSC_ERR_UNSUPPORTED;
    }
    if (ordinal >= count) {
        if (count == 1)
            snprintf(err, err_len, "device %s: only 1 CUDA device is visible (cuda:0)", dev->name);
        else
            snprintf(err, err_len, "device %s: only %d CUDA devices are visible (cuda:0 .. cuda:%d)", dev->name,
                     count, count - 1);
        return DSC_ERR_INVALID;
    }
    dsc_cuda_dev_t *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, err_len, "device %s: out of memory", dev->name);
        return DSC_ERR_NOMEM;
    }
    c->ordinal = ordinal;
    const dsc_status_t st =
            parse_attention_variant(dev->name, getenv("DSC_CUDA_ATTENTION"), &c->att, &c->att_cudnn, err, err_len);
    if (st != DSC_OK) {
        free(c);
        return st;
    }
    c->profile = getenv("DSC_CUDA_PROFILE") != NULL;
    c->prof_mark = now_seconds();
    dev->impl = c;
    dev->table = cuda_table();
    int rc = dsc_cuda_set_device(ordinal);
    const char *what = "selecting the GPU";
    if (rc == 0) {
        what = "querying the GPU";
        rc = dsc_cuda_device_info(ordinal, &c->info);
    }
    if (rc == 0) {
        what = "creating a stream";
        rc = dsc_cuda_stream_create(&c->stream);
    }
    if (rc == 0) {
        what = "creating the cuBLASLt handle";
        rc = dsc_cuda_blas_create(&c->blas, DSC_CUDA_BLAS_WORKSPACE);
        if (rc == 0) dsc__dev_count(dev, DSC_CUDA_BLAS_WORKSPACE);
    }
    if (rc != 0) {
        snprintf(err, err_len, "device %s: %s failed: %s (CUDA error %d)", dev->name, what, dsc_cuda_error_string(rc),
                 rc);
        cu_destroy(dev);
        dev->table = NULL;
        return DSC_ERR_DEVICE;
    }
    return DSC_OK;
}

/* ---- dsc/gpu.h ---- */

bool dsc_gpu_compiled(void) { return true; }

int dsc_gpu_count(void) { return dsc_cuda_device_count(); }

dsc_status_t dsc_gpu_info(int ordinal, dsc_gpu_info_t *out, char *err, size_t err_len) {
    if (!out || ordinal < 0 || ordinal >= dsc_cuda_device_count()) {
        if (err) snprintf(err, err_len, "GPU %d: not one of the %d visible", ordinal, dsc_cuda_device_count());
        return DSC_ERR_INVALID;
    }
    dsc_cuda_device_info_t d;
    int rc = dsc_cuda_device_info(ordinal, &d);
    if (rc != 0) {
        if (err) snprintf(err, err_len, "GPU %d: %s (CUDA error %d)", ordinal, dsc_cuda_error_string(rc), rc);
        return DSC_ERR_DEVICE;
    }
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "%s", d.name);
    out->ordinal = ordinal;
    out->cc_major = d.cc_major;
    out->cc_minor = d.cc_minor;
    out->sm_count = d.sm_count;
    out->total_bytes = d.total_mem;
    out->free_bytes = d.free_mem;
    out->driver_version = d.driver_version;
    out->runtime_version = d.runtime_version;
    out->cublaslt_version = d.cublaslt_version;
    return DSC_OK;
}

/* The swap file and buffer pool of the NVMe swappers (src/zero/offload_nvme.c: the optimizer
 * state; param_nvme.c: stage 3's parameters), private to the library. The file is created
 * unnamed (O_TMPFILE; else <dir>/<prefix>-r<rank>-<pid>-<address>, unlinked at once): two runs
 * or ranks never share one and nothing is left behind, even after kill -9; O_DIRECT where the
 * filesystem takes it (the description says why not, e.g. tmpfs); its bytes reserved at once.
 *
 * n_bufs aligned host buffers move its records through aio.c (buffer b is the engine's tag b).
 * A buffer is FREE (no I/O: its bytes are the caller's), READING record (key, part), FULL (the
 * record as read) or WRITING (FREE once written). Submissions stamp buffers with a rising order:
 * with no buffer free, the oldest write is waited for, else (when asked) the oldest read
 * dropped. A buffer from dsc__aio_pool_take is held by the caller until it submits a write from
 * it or releases it: never evicted nor handed out again meanwhile. A buffer whose bytes an
 * upload to the device may still read is not refilled (read into, taken, freed) before the host
 * has waited for that upload.
 *
 * Errors are recorded on ctx as "<owner> nvme swap file in '<dir>' (rank r): <what>: <detail>";
 * an I/O error's what is "reading <name>" / "writing <name>" (the caller's name of the record).
 * A failed I/O leaves its buffer FREE; a failed write (or read, with read_error_breaks) marks
 * the file broken (dsc__aio_pool_usable refuses it from then on); the pool itself keeps working
 * and frees alike. One pool serves one thread. */
#ifndef DSC_ZERO_AIO_POOL_H
#define DSC_ZERO_AIO_POOL_H

#include "core/device.h"
#include "core/internal.h"
#include "zero/aio.h" /* stdbool, stddef, stdint, sys/types */

typedef enum { DSC_AIO_FREE = 0, DSC_AIO_READING, DSC_AIO_FULL, DSC_AIO_WRITING } dsc_aio_state_t;

typedef struct dsc_aio_buf {
    char *host;           /* buf_bytes, DSC_NVME_ALIGN aligned, zeroed at creation */
    void *raw;            /* what was allocated (host is raw rounded up) */
    dsc_aio_state_t state;
    bool held;
    int64_t key, part;    /* the record it holds or moves (key -1: none) */
    int64_t order;        /* its last submission */
    /* Recorded at an asynchronous upload of its bytes (dsc__aio_pool_upload; NULL where the
     * device has no from_host_async); uploading: not waited for yet. */
    dsc_device_event_t *up;
    bool uploading;
} dsc_aio_buf_t;

/* The strings are read by dsc__aio_pool_new only. */
typedef struct dsc_aio_pool_options {
    dsc_ctx_t *ctx;         /* errors go here; pinned buffers come from its device */
    const char *owner;      /* "offload_optimizer": messages, the key zero_optimization.<owner>.nvme_path */
    const char *dir;        /* nvme_path */
    const char *prefix;     /* of a named file ("dsc-optim-swap") */
    const char *contents;   /* what the file holds, for a failed reservation ("the optimizer state") */
    int rank;
    int64_t file_bytes;     /* > 0 */
    int n_bufs;             /* > 0 */
    size_t buf_bytes;       /* per buffer, a multiple of DSC_NVME_ALIGN */
    bool want_pinned;       /* page-locked buffers where ctx's device offers them */
    const char *sizing;     /* the keys that sized the buffers, for an out-of-memory message */
    int64_t block_size, queue_depth; /* aio */
    bool single_submit;
    bool read_error_breaks; /* a failed read marks the file broken too */
    void (*name)(int64_t key, int64_t part, char *out, size_t outsz); /* "of sub-group 3" */
} dsc_aio_pool_options_t;

/* Fields are read-only to callers (except broken, which they may set, and the bytes at host). */
typedef struct dsc_aio_pool {
    dsc_aio_pool_options_t o;
    char who[640], desc[800]; /* desc: the file, O_DIRECT or why not, the I/O engine */
    int fd;
    bool direct, pinned;
    bool broken;                       /* the file is inconsistent */
    dsc_aio_t *aio;
    dsc_aio_buf_t *bufs;
    int64_t order;
    int64_t bytes_read, bytes_written; /* submitted since creation */
    double wait_read_s, wait_write_s;  /* time spent in dsc__aio_pool_finish */
} dsc_aio_pool_t;

/* The file and the buffers. On failure nothing is left open or on disk and err names the key,
 * the path and the rank (DSC_ERR_IO; DSC_ERR_CONFIG: no dir, or block_size not a multiple of
 * DSC_NVME_ALIGN with O_DIRECT; DSC_ERR_NOMEM: the buffers, with sizing). */
dsc_status_t dsc__aio_pool_new(const dsc_aio_pool_options_t *o, dsc_aio_pool_t **out, char *err, size_t errsz);
/* Waits for every I/O in flight into the buffers, frees them, closes (and so removes) the file. */
void dsc__aio_pool_free(dsc_aio_pool_t *p);
/* Records "<who>: <what>: <detail>" on ctx and returns st. */
dsc_status_t dsc__aio_pool_fail(dsc_aio_pool_t *p, dsc_status_t st, const char *what, const char *detail);
/* DSC_OK, or DSC_ERR_IO (recorded for `what`) once the file is broken. */
dsc_status_t dsc__aio_pool_usable(dsc_aio_pool_t *p, const char *what);

/* Queues a read (write false) or a write of `bytes` (<= buf_bytes) between buffer b and the file
 * at offset off, as record (key, part), stamped; a write ends the caller's hold. DSC_ERR_INVALID
 * when b has I/O in flight, DSC_ERR_NOMEM when the queue cannot grow (both recorded). */
dsc_status_t dsc__aio_pool_submit(dsc_aio_pool_t *p, int b, bool write, int64_t key, int64_t part, size_t bytes,
                                  off_t off);
/* Waits for buffer b's I/O, if any: a read leaves it FULL, a write FREE. An I/O error (recorded,
 * naming the record; DSC_ERR_IO) leaves it FREE. */
dsc_status_t dsc__aio_pool_finish(dsc_aio_pool_t *p, int b);
/* Buffer b's first `bytes` to ctx's device at dst: asynchronously where the device has
 * from_host_async (work queued on its stream afterwards sees them; the pool waits for the copy
 * before b's bytes change), else waiting. A failure is recorded by the device layer. */
dsc_status_t dsc__aio_pool_upload(dsc_aio_pool_t *p, int b, void *dst, size_t bytes);
/* Buffer b FREE, no record, not held (b < 0: nothing). Its I/O must be finished. */
void dsc__aio_pool_release(dsc_aio_pool_t *p, int b);
/* A buffer for the caller, held, no upload reading it: the first free one, else the oldest write waited for, else with
 * evict the oldest read not held, waited for and dropped. When the one waited for fails, *out
 * is that buffer (FREE, held) and its error is returned; DSC_ERR_INVALID (recorded) when
 * nothing can be freed. */
dsc_status_t dsc__aio_pool_take(dsc_aio_pool_t *p, bool evict, int *out);
/* A free buffer not held, without blocking (*out -1: none); with reap, writes that completed
 * are finished on the way (in index order; the first error stops it and is returned). */
dsc_status_t dsc__aio_pool_spare(dsc_aio_pool_t *p, bool reap, int *out);
/* The buffer reading or holding record key (any part), or -1. */
int dsc__aio_pool_find(const dsc_aio_pool_t *p, int64_t key);
/* The reads not held (of record key; key < 0: all) waited for and released. First error wins. */
dsc_status_t dsc__aio_pool_drop_reads(dsc_aio_pool_t *p, int64_t key);
/* Every I/O waited for (every write is in the file), every buffer released. First error wins. */
dsc_status_t dsc__aio_pool_drain(dsc_aio_pool_t *p);

#endif

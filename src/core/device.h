/* Devices: where tensor data and model state live, and the one kernel table that touches
 * them. Learnt from ggml's backend split: a device owns its memory (alloc/free), host
 * access is only set/get/fill through the device (to_host / from_host / zero), and every
 * loop over data is a kernel of the device's table.
 *
 * A context holds one device (dsc_ctx_options_t.device: "cpu", "cuda:N", "guarded"). Every
 * tensor records the device its data lives on. Code outside a device's kernel folder
 * (src/ops/<device>/, src/core/device_*.c) reads, writes, fills or copies tensor data and
 * model state only through the dsc__dev_* calls below, so the same engine, ZeRO, comm,
 * checkpoint and optimizer code runs when the buffers live on a GPU or on the guarded test
 * device (whose memory faults on host access).
 *
 * Ordering: calls are issued in order on the device's stream. Copies and fills between
 * device buffers may run asynchronously; dsc__dev_to_host returns when the bytes are on the
 * host. Errors are recorded on the context (dsc_ctx_status) and returned; a call that did
 * its work returns DSC_OK even when an earlier error is recorded. Never installed. */
#ifndef DSC_CORE_DEVICE_H
#define DSC_CORE_DEVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dsc/tensor.h"

struct dsc_backend;      /* src/ops/backend.h: the op kernels */
struct dsc_optim_ops;    /* src/optim/optim_internal.h: the optimizer kernels */
struct dsc_amp_ops;      /* src/amp/amp_internal.h: the mixed-precision kernels */

typedef enum dsc_device_kind {
    DSC_DEVICE_CPU = 0,
    DSC_DEVICE_GUARDED, /* CPU memory the host cannot touch (tests): see device_guarded.c */
    DSC_DEVICE_CUDA,
    DSC_DEVICE_KIND_COUNT
} dsc_device_kind_t;

typedef struct dsc_device dsc_device_t;
typedef struct dsc_device_event dsc_device_event_t;

/* One device's table. Memory entries take the device first (its stream, its allocator);
 * they return 0 on success and a negative value on failure (the dsc__dev_* wrappers record
 * the error with a message). Kernel tables are reached through ops/optim/amp. */
typedef struct dsc_device_table {
    const char *name;
    /* Raw device memory, 64-byte aligned, NOT zeroed; NULL when out of memory. */
    void *(*alloc)(dsc_device_t *dev, size_t n_bytes);
    void (*free)(dsc_device_t *dev, void *ptr, size_t n_bytes);
    /* dst[0..n) = byte value, on the stream. */
    int (*memset)(dsc_device_t *dev, void *dst, int value, size_t n_bytes);
    /* Device to device (async on the stream), host to device (returns once host_src may be
     * reused; the copy itself may still be queued on the stream), device to host (waits). */
    int (*copy)(dsc_device_t *dev, void *dst, const void *src, size_t n_bytes);
    int (*from_host)(dsc_device_t *dev, void *dst, const void *host_src, size_t n_bytes);
    int (*to_host)(dsc_device_t *dev, void *host_dst, const void *src, size_t n_bytes);
    /* Optional (NULL: none): device to host on the stream without waiting; the bytes are on
     * the host once a later to_host or sync returns, or event_sync of `done` (may be NULL:
     * recorded where the copy is done); page-locked host_dst lets the copy overlap later
     * work. The optimizer offload mirrors gradients with it during backward. */
    int (*to_host_async)(dsc_device_t *dev, void *host_dst, const void *src, size_t n_bytes, dsc_device_event_t *done);
    /* Optional (NULL: none): host to device without waiting for the copy. The copy is ordered
     * after the work issued on the stream before it, and the work issued on the stream after
     * it sees the bytes of dst. host_src must stay untouched (not written, not freed) until
     * the host has waited for `read` (event_sync) or a sync has returned: the copy may read it
     * until then (a page-locked host_src lets the copy engine move it while the host and the
     * stream run on; pageable memory is staged before the call returns). `read` (may be NULL)
     * is recorded where the copy is done. The optimizer offload sends the update back with it. */
    int (*from_host_async)(dsc_device_t *dev, void *dst, const void *host_src, size_t n_bytes,
                           dsc_device_event_t *read);
    /* Element conversion between two device buffers (rounding as dsc_convert). */
    int (*convert)(dsc_device_t *dev, void *dst, dsc_dtype_t dst_dtype, const void *src, dsc_dtype_t src_dtype,
                   size_t n_elems);
    /* Waits for everything issued on the stream. */
    int (*sync)(dsc_device_t *dev);
    /* Events: record a point of the stream; wait makes later work on the stream wait for
     * it (host-side for the CPU devices, where work is done when the call returns). */
    dsc_device_event_t *(*event_new)(dsc_device_t *dev);
    void (*event_record)(dsc_device_t *dev, dsc_device_event_t *ev);
    int (*event_wait)(dsc_device_t *dev, dsc_device_event_t *ev);
    void (*event_free)(dsc_device_t *dev, dsc_device_event_t *ev);
    /* The host waits until the work before ev's latest record (event_record, or the copy of
     * a to_host_async / from_host_async it was given to) is done; a never-recorded ev: at once. */
    int (*event_sync)(dsc_device_t *dev, dsc_device_event_t *ev);
    /* Optional entries (NULL on the CPU devices), for the communicators (src/comm):
     * page-locked host memory the device copies to and from at full speed (the MPI
     * backend's bounce buffers; NULL when it cannot be had); a second stream (the NCCL
     * backend's communication stream: a cudaStream_t on CUDA); an event recorded on, or
     * waited for by, that stream; and whether the work before an event's latest record has
     * finished (*done; never blocks). The int entries return 0, or < 0 with the error
     * recorded on the device's context. */
    void *(*host_alloc_pinned)(dsc_device_t *dev, size_t n_bytes);
    void (*host_free_pinned)(dsc_device_t *dev, void *ptr, size_t n_bytes);
    void *(*stream_new)(dsc_device_t *dev);
    void (*stream_free)(dsc_device_t *dev, void *stream);
    int (*event_record_on)(dsc_device_t *dev, dsc_device_event_t *ev, void *stream);
    int (*stream_wait_event)(dsc_device_t *dev, void *stream, dsc_device_event_t *ev);
    int (*event_query)(dsc_device_t *dev, dsc_device_event_t *ev, bool *done);
    /* event_query from any thread (the NCCL backend's watchdog, src/comm/comm_watchdog.h):
     * records nothing anywhere (no error on the context, no profile); < 0 on a device error. */
    int (*event_query_any_thread)(const dsc_device_t *dev, dsc_device_event_t *ev, bool *done);
    /* True when the host may dereference ptr (host memory, or wrapped caller memory). */
    bool (*host_accessible)(const dsc_device_t *dev, const void *ptr);
    /* Frees the device's own state (the guarded device's mapping). */
    void (*destroy)(dsc_device_t *dev);
    /* A named point of the host program (may be NULL): a profiling device attributes the
     * host time before it to that name (DSC_CUDA_PROFILE). */
    void (*mark)(dsc_device_t *dev, const char *what);
    /* Speed hint for an op that owns a gemm dimension it may pad (the LM head's vocabulary,
     * src/ops/op_lm_head.c): pad it to a multiple of this many elements (0 or 1: never).
     * cuBLASLt runs GPT-2's 50257-wide bf16 LM-head gemms 5-9x slower than 50304-wide ones
     * (bench/cuda/bench_gemm_gpt, H100). */
    int gemm_pad_elems;

    /* Kernel tables of this device. */
    const struct dsc_backend *ops;
    const struct dsc_optim_ops *optim;
    const struct dsc_amp_ops *amp;
} dsc_device_table_t;

struct dsc_device {
    dsc_device_kind_t kind;
    int ordinal;            /* cuda:N; 0 otherwise */
    char name[32];          /* "cpu", "guarded", "cuda:0" */
    const dsc_device_table_t *table;
    void *stream;           /* the device's stream (NULL on the CPU devices) */
    void *impl;             /* device-private state */
    dsc_ctx_t *ctx;         /* the owning context (errors of tensor accessors land here) */
    /* Bytes held on the device (dsc__dev_alloc_raw, and the device's own workspaces, which
     * its table adds with dsc__dev_count), now and at the most. */
    size_t bytes_live, bytes_peak;
};

/* Counts n_bytes more (n_bytes > 0) or fewer (< 0) held on the device. */
static inline void dsc__dev_count(dsc_device_t *dev, long long n_bytes) {
    dev->bytes_live = (size_t)((long long)dev->bytes_live + n_bytes);
    if (dev->bytes_live > dev->bytes_peak) dev->bytes_peak = dev->bytes_live;
}

/* Sets up ctx->device from a device string ("cpu", "guarded", "cuda:N"; NULL: the
 * environment variable DSC_DEVICE, else "cpu"). DSC_ERR_INVALID with a message naming the
 * string when it is unknown, DSC_ERR_UNSUPPORTED for cuda:N in a build without CUDA. */
dsc_status_t dsc__device_init(dsc_ctx_t *ctx, const char *spec, char *err, size_t err_len);
void dsc__device_destroy(dsc_ctx_t *ctx);
/* The context's device. */
dsc_device_t *dsc__ctx_device(dsc_ctx_t *ctx);
/* The CPU device's table (the guarded device reuses its events and kernels). */
const dsc_device_table_t *dsc__device_cpu_table(void);
/* The guarded test device (src/core/device_guarded.c). */
dsc_status_t dsc__device_guarded_init(dsc_device_t *dev, char *err, size_t err_len);
/* The CUDA device cuda:N (src/ops/cuda/cuda_device.c; in a build without CUDA,
 * src/ops/cuda/cuda_absent.c refuses with DSC_ERR_UNSUPPORTED). dev->name is set. */
dsc_status_t dsc__device_cuda_init(dsc_device_t *dev, int ordinal, char *err, size_t err_len);
/* The guarded device's translation of a device address to the host alias its kernels use
 * (identity for any other address). */
void *dsc__guarded_host_alias(const void *ptr);

/* Zero-filled device memory of n_bytes, counted under `category`; NULL + DSC_ERR_NOMEM
 * (recorded) on failure. Free with dsc__dev_free with the same category and size. */
void *dsc__dev_alloc(dsc_ctx_t *ctx, dsc_mem_category_t category, size_t n_bytes);
void dsc__dev_free(dsc_ctx_t *ctx, dsc_mem_category_t category, void *ptr, size_t n_bytes);
/* Raw device memory (not zeroed, not counted): the step arena's data chunks. */
void *dsc__dev_alloc_raw(dsc_ctx_t *ctx, size_t n_bytes);
/* Frees through the device's table after the context's host-read check (whole device: the
 * device's free may wait for every stream, cudaFree does): when a communicator's collective
 * is reported stuck (the job ends on MPI), the buffer is not freed, since the collective may
 * still write it, but kept until the context is freed (dsc__dev_free_parked). Every device
 * free goes through here (dsc__dev_free and dsc_ctx_release too). */
void dsc__dev_free_raw(dsc_ctx_t *ctx, void *ptr, size_t n_bytes);
/* The same for page-locked host memory from the table's host_alloc_pinned (cudaFreeHost
 * waits for the whole device too). */
void dsc__dev_host_free_pinned(dsc_ctx_t *ctx, void *ptr, size_t n_bytes);
/* Frees the buffers those refused (dsc_ctx_free, before the device goes: the communicators,
 * freed first, have ended their collectives). */
void dsc__dev_free_parked(dsc_ctx_t *ctx);

/* dst[0..n_bytes) = 0, on the device. */
dsc_status_t dsc__dev_zero(dsc_ctx_t *ctx, void *dst, size_t n_bytes);
/* Device to device; the ranges must not overlap. */
dsc_status_t dsc__dev_copy(dsc_ctx_t *ctx, void *dst, const void *src, size_t n_bytes);
/* Device to host (returns once the bytes are on the host) and host to device. */
dsc_status_t dsc__dev_to_host(dsc_ctx_t *ctx, void *host_dst, const void *src, size_t n_bytes);
dsc_status_t dsc__dev_from_host(dsc_ctx_t *ctx, void *dst, const void *host_src, size_t n_bytes);
/* Device to host without waiting (the table's to_host_async): the bytes are on the host once
 * a later dsc__dev_to_host or dsc__dev_sync returns. DSC_ERR_UNSUPPORTED (not recorded) when
 * the device has no such entry: dsc__dev_has_to_host_async says beforehand. */
dsc_status_t dsc__dev_to_host_async(dsc_ctx_t *ctx, void *host_dst, const void *src, size_t n_bytes);
bool dsc__dev_has_to_host_async(const dsc_ctx_t *ctx);
/* The same, with `done` (an event of ctx's device, may be NULL) recorded where the copy is
 * done: host_dst is readable once dsc__dev_event_sync(done) returns (or a later to_host or
 * sync), without waiting for the stream's other work. */
dsc_status_t dsc__dev_to_host_async_ev(dsc_ctx_t *ctx, void *host_dst, const void *src, size_t n_bytes,
                                       dsc_device_event_t *done);
/* Host to device without waiting for the copy (the table's from_host_async): work issued on
 * ctx's stream afterwards sees the bytes; host_src must stay untouched until
 * dsc__dev_event_sync(read) (read: an event of ctx's device, recorded where the copy is
 * done; may be NULL) or dsc__dev_sync returns. Page-locked host_src (host_alloc_pinned) lets
 * the copy overlap the host's work. DSC_ERR_UNSUPPORTED (not recorded) when the device has
 * no such entry: dsc__dev_has_from_host_async says beforehand. */
dsc_status_t dsc__dev_from_host_async(dsc_ctx_t *ctx, void *dst, const void *host_src, size_t n_bytes,
                                      dsc_device_event_t *read);
bool dsc__dev_has_from_host_async(const dsc_ctx_t *ctx);
/* Element conversion between two device buffers (rounding as dsc_convert). */
dsc_status_t dsc__dev_convert(dsc_ctx_t *ctx, void *dst, dsc_dtype_t dst_dtype, const void *src,
                              dsc_dtype_t src_dtype, size_t n_elems);
/* Waits for everything issued on the context's device. */
dsc_status_t dsc__dev_sync(dsc_ctx_t *ctx);
/* The context's host-read check (core/internal.h, dsc_ctx's host_read_check) around a host
 * call that may block inside the device behind a communicator's collectives: before
 * (true) it waits, polling, for them (whole_device: for every collective in flight, the
 * call waits for every stream of the device; else for those the context's streams wait
 * behind); before or after, what a communicator's watchdog found is reported, "noticed by
 * <what>", and returned (the job ends on MPI): the caller must then not make (before) the
 * call. DSC_OK when no communicator watches the context or nothing was found. */
dsc_status_t dsc__dev_host_wait_check(dsc_ctx_t *ctx, bool before, bool whole_device, const char *what);
/* A named point of the step (a string literal), for a profiling device; nothing otherwise. */
static inline void dsc__dev_mark(dsc_ctx_t *ctx, const char *what);
/* Events on the context's device stream (NULL + DSC_ERR_NOMEM recorded on failure). */
dsc_device_event_t *dsc__dev_event_new(dsc_ctx_t *ctx);
void dsc__dev_event_record(dsc_ctx_t *ctx, dsc_device_event_t *ev);
dsc_status_t dsc__dev_event_wait(dsc_ctx_t *ctx, dsc_device_event_t *ev);
void dsc__dev_event_free(dsc_ctx_t *ctx, dsc_device_event_t *ev);
/* The host waits for the work before ev's latest record (see the table's event_sync). */
dsc_status_t dsc__dev_event_sync(dsc_ctx_t *ctx, dsc_device_event_t *ev);
/* True when the host may read ptr directly (CPU device, or memory outside the device). */
bool dsc__dev_host_accessible(const dsc_ctx_t *ctx, const void *ptr);

/* One value of a 1-element tensor as a double, copied to the host (NaN on error). */
double dsc__dev_read_scalar(dsc_ctx_t *ctx, const void *src, dsc_dtype_t dtype);
/* dst (one element of dtype, on the device) = value. */
dsc_status_t dsc__dev_write_scalar(dsc_ctx_t *ctx, void *dst, dsc_dtype_t dtype, double value);

static inline void dsc__dev_mark(dsc_ctx_t *ctx, const char *what) {
    dsc_device_t *dev = dsc__ctx_device(ctx);
    if (dev->table && dev->table->mark) dev->table->mark(dev, what);
}

#endif

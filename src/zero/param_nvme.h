/* ZeRO-Infinity's parameter offload to NVMe (zero_optimization.offload_param.device "nvme",
 * stage 3), private to the library: this rank's partition of the working copy (the local
 * shards of every parameter, model_dtype) lives in one swap file under nvme_path instead of
 * memory. A gather reads the parameter's shard from the file into one of buffer_count aligned
 * (page-locked where the device offers it) host buffers and copies it to the device; the
 * stage-3 schedule reads the next parameters ahead into free buffers (dsc__pnvme_prefetch)
 * while the current ones are used; after the optimizer step the updated partition is written
 * back buffer by buffer, each buffer's write in flight while the next one is filled. The file
 * and its buffers are src/zero/aio_pool.c's (unnamed, O_DIRECT where possible, space reserved:
 * nothing is left behind, even after kill -9; io_uring through aio.c).
 *
 * File layout: parameter i's shard (shard[i] elements) is one record at an offset aligned to
 * DSC_NVME_ALIGN, records in parameter order, each rounded up to DSC_NVME_ALIGN bytes. A
 * buffer holds min(buffer_size elements, the largest record) rounded up to DSC_NVME_ALIGN
 * bytes; a shard larger than a buffer moves in buffer-sized pieces (DeepSpeed refuses such a
 * parameter instead).
 *
 * Consistency: the file holds the values of the last completed step (or the initial values);
 * checkpoints never read it (they save the fp32 master). After an I/O error while writing, the
 * file is marked inconsistent and every later read or write is refused, naming the file. */
#ifndef DSC_ZERO_PARAM_NVME_H
#define DSC_ZERO_PARAM_NVME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/internal.h"
#include "zero/offload_nvme.h"

typedef struct dsc_pnvme dsc_pnvme_t;

typedef struct dsc_pnvme_options {
    const char *nvme_path;     /* offload_param.nvme_path */
    int64_t buffer_count;      /* offload_param.buffer_count (0 counts as 1) */
    int64_t buffer_size;       /* offload_param.buffer_size, elements per buffer, > 0 */
    bool pin_memory;           /* offload_param.pin_memory */
    int64_t block_size, queue_depth; /* aio */
    bool single_submit;
} dsc_pnvme_options_t;

/* The file's bytes for n parameters of shard[i] elements of elem_size bytes. */
static inline int64_t dsc__pnvme_file_bytes(const int64_t *shard, int n, size_t elem_size) {
    int64_t total = 0;
    for (int i = 0; i < n; i++) total += dsc__nvme_round(shard[i] * (int64_t)elem_size);
    return total;
}
/* Bytes of one buffer: buffer_size elements, at most the largest record, rounded up. */
static inline int64_t dsc__pnvme_buffer_bytes(int64_t buffer_size, int64_t largest_shard, size_t elem_size) {
    const int64_t k = buffer_size < largest_shard ? buffer_size : largest_shard;
    return dsc__nvme_round((k > 0 ? k : 1) * (int64_t)elem_size);
}
static inline int dsc__pnvme_buffer_count(int64_t buffer_count) {
    return buffer_count > 1 ? (int)(buffer_count < 64 ? buffer_count : 64) : 1;
}

/* The swap file of rank `rank` for n parameters of shard[i] elements of dtype (zeros until
 * written); ctx is the engine's device context (the shards' destination). Errors
 * (DSC_ERR_IO, DSC_ERR_CONFIG, DSC_ERR_NOMEM) name the key, the path and the rank in err. */
dsc_status_t dsc__pnvme_new(dsc_ctx_t *ctx, const dsc_pnvme_options_t *o, int rank, const int64_t *shard, int n,
                            dsc_dtype_t dtype, dsc_pnvme_t **out, char *err, size_t errsz);
/* Waits for every I/O in flight, closes (and so removes) the file, frees the buffers. */
void dsc__pnvme_free(dsc_pnvme_t *pv);

/* Parameter i's shard into device memory dst (shard[i] elements), from its read-ahead when
 * one is in flight or done, else read now. The copy is queued on ctx's stream without the host
 * waiting where the device has from_host_async (work queued after it sees the bytes; the
 * buffer is not refilled before its upload's event has passed). On failure the message is on
 * ctx. */
dsc_status_t dsc__pnvme_read(dsc_pnvme_t *pv, int i, void *dst);
/* Starts reading parameter i's shard into a free buffer, without waiting: true when it is
 * (or was already) under way, false when no buffer is free or the shard needs several. */
bool dsc__pnvme_prefetch(dsc_pnvme_t *pv, int i);

/* Whether parameter i's shard may be gathered ahead: its read-ahead was started (by an
 * earlier dsc__pnvme_prefetch: it has had that long), or the shard cannot be read ahead
 * (several pieces). It depends only on the sequence of calls, never on I/O timing, so every
 * rank decides alike and issues the same collectives in the same order. */
bool dsc__pnvme_ready(const dsc_pnvme_t *pv, int i);

/* Elements [a, a + n) of parameter i's shard from device memory src (an edit's write-back):
 * the record's pieces read, patched and written, then waited for. */
dsc_status_t dsc__pnvme_write_range(dsc_pnvme_t *pv, int i, int64_t a, int64_t n, const void *src);

/* The whole partition written from a producer: fill(user, local, n, host) stores elements
 * [local, local + n) of the partition (local offsets: the shards back to back, parameter i's
 * at the sum of the shards before it) as dtype values at host, a buffer; each buffer's write
 * runs while the next is filled. Read-aheads are dropped first (their values are old). */
typedef dsc_status_t (*dsc_pnvme_fill_fn)(void *user, int64_t local, int64_t n, void *host);
dsc_status_t dsc__pnvme_write_all(dsc_pnvme_t *pv, dsc_pnvme_fill_fn fill, void *user);

typedef struct dsc_pnvme_stats {
    int64_t bytes_read, bytes_written, reads, prefetch_hits;
} dsc_pnvme_stats_t;
dsc_pnvme_stats_t dsc__pnvme_stats(const dsc_pnvme_t *pv);
/* One line: the file, O_DIRECT or why not, the I/O engine, records, buffers. */
const char *dsc__pnvme_describe(const dsc_pnvme_t *pv);
int64_t dsc__pnvme_bytes(const dsc_pnvme_t *pv);      /* the file's size */
int64_t dsc__pnvme_host_bytes(const dsc_pnvme_t *pv); /* the buffers' bytes */
bool dsc__pnvme_pinned(const dsc_pnvme_t *pv);

#endif

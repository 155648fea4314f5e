/* ZeRO-Infinity's optimizer-state offload to NVMe (offload_optimizer.device "nvme"), private
 * to the library. The optimizer's state of this rank's partition (Adam's exp_avg and
 * exp_avg_sq, ...) lives in one file under nvme_path, cut into sub-groups of sub_group_size
 * elements; one optimizer step reads each sub-group into one of buffer_count aligned host
 * buffers, steps it and writes it back (pipeline_read: the next sub-group is read while this
 * one is stepped; pipeline_write: a sub-group's write runs while the next is stepped), through
 * src/zero/aio_pool.c (which creates the file: unnamed, O_DIRECT where possible, reserved;
 * nothing is left behind, even after kill -9) and aio.c (io_uring; block_size and queue_depth
 * of the aio section). The fp32 master weights and gradients stay where ZeRO keeps them.
 *
 * Checkpoints read and write the state through dsc__nvme_get / dsc__nvme_set between
 * steps, when every write of the last step has completed; after an I/O error inside a step the
 * file is marked inconsistent and every later step, read or write is refused, so a checkpoint
 * is never written from a half-swapped state.
 *
 * File layout: sub-group g (elements [g*S, min((g+1)*S, n))) is one record at offset
 * g*stride, stride = n_states*S*4 rounded up to 4096; inside it state i's values of the
 * sub-group follow each other (state i at float i*len_g). */
#ifndef DSC_ZERO_OFFLOAD_NVME_H
#define DSC_ZERO_OFFLOAD_NVME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/internal.h"
#include "dsc/optim.h"
#include "zero/aio.h"

typedef struct dsc_nvme dsc_nvme_t;

typedef struct dsc_nvme_options {
    const char *nvme_path;          /* the directory (offload_optimizer.nvme_path) */
    int64_t sub_group_size;         /* zero_optimization.sub_group_size, > 0 */
    int64_t buffer_count;           /* offload_optimizer.buffer_count (0 counts as 1) */
    bool pipeline_read, pipeline_write;
    int64_t block_size, queue_depth; /* aio */
    bool single_submit;
} dsc_nvme_options_t;

typedef struct dsc_nvme_stats {
    int64_t bytes_read, bytes_written; /* since creation */
    double wait_read_s, wait_write_s;  /* time the step spent waiting for its reads / writes */
    int64_t steps;
} dsc_nvme_stats_t;

/* Sub-group element count, record stride and the file's bytes for n elements of n_states
 * fp32 states (the memory estimator uses these too). */
static inline int64_t dsc__nvme_group(int64_t n, int64_t sub_group_size) {
    return sub_group_size < n ? sub_group_size : n;
}
static inline int64_t dsc__nvme_round(int64_t bytes) {
    return (bytes + DSC_NVME_ALIGN - 1) / DSC_NVME_ALIGN * DSC_NVME_ALIGN;
}
static inline int64_t dsc__nvme_file_bytes(int64_t n, int n_states, int64_t sub_group_size) {
    if (n <= 0 || n_states <= 0) return 0;
    const int64_t s = dsc__nvme_group(n, sub_group_size), g = (n + s - 1) / s, last = n - (g - 1) * s;
    return (g - 1) * dsc__nvme_round((int64_t)n_states * s * 4) + dsc__nvme_round((int64_t)n_states * last * 4);
}
/* Host bytes of the swap buffers (buffer_count records). */
static inline int64_t dsc__nvme_buffer_bytes(int64_t n, int n_states, int64_t sub_group_size, int64_t buffer_count) {
    if (n <= 0 || n_states <= 0) return 0;
    return (buffer_count > 1 ? buffer_count : 1) *
           dsc__nvme_round((int64_t)n_states * dsc__nvme_group(n, sub_group_size) * 4);
}

/* The swap file of rank `rank` for n_elems elements of n_states states, each starting at
 * initial[i]. Errors (DSC_ERR_IO, DSC_ERR_CONFIG, DSC_ERR_NOMEM) name the path, the key
 * and the rank in err. */
dsc_status_t dsc__nvme_new(dsc_ctx_t *ctx, const dsc_nvme_options_t *o, int rank, int64_t n_elems, int n_states,
                           const double *initial, dsc_nvme_t **out, char *err, size_t errsz);
/* Closes (and so removes) the file, frees the buffers. */
void dsc__nvme_free(dsc_nvme_t *nv);
/* One optimizer step over the partition (opt unbacked, see optim_internal.h): master, grad and
 * half (NULL or half_dtype values, the working copy of the partition) as dsc_optim_step takes
 * them. On failure the message is on the context. */
dsc_status_t dsc__nvme_step(dsc_nvme_t *nv, dsc_optim_t *opt, float *master, const float *grad, float grad_scale,
                            double lr, void *half, dsc_dtype_t half_dtype);
/* Elements [offset, offset + n) of state i to / from host memory (checkpoints). A set stays in
 * a buffer until dsc__nvme_flush, the next step or another sub-group's get/set. */
dsc_status_t dsc__nvme_get(dsc_nvme_t *nv, int state, int64_t offset, int64_t n, float *dst);
dsc_status_t dsc__nvme_set(dsc_nvme_t *nv, int state, int64_t offset, int64_t n, const float *src);
dsc_status_t dsc__nvme_flush(dsc_nvme_t *nv);
/* One pass over every sub-group, reading (write false) or writing each record, through the
 * same buffers and pipeline as a step, with no compute (bench/offload_nvme.c); *seconds is
 * the pass's wall time. Writing stores the buffers' contents: use it on a scratch swapper. */
dsc_status_t dsc__nvme_stream(dsc_nvme_t *nv, bool write, double *seconds);
dsc_nvme_stats_t dsc__nvme_stats(const dsc_nvme_t *nv);
/* One line: the file, O_DIRECT or why not, the I/O engine, sub-groups, buffers. */
const char *dsc__nvme_describe(const dsc_nvme_t *nv);
int64_t dsc__nvme_bytes(const dsc_nvme_t *nv);        /* the file's size */
int64_t dsc__nvme_host_bytes(const dsc_nvme_t *nv);   /* the buffers' bytes */

#endif

/* Asynchronous file I/O for the NVMe swappers' buffer pool (src/zero/aio_pool.c), private to the
 * library: reads and writes of large aligned buffers split into `block_size` requests with at
 * most `queue_depth` of them in flight (DeepSpeed's aio section), over io_uring (Debian's
 * liburing). Without liburing at build time, or when the kernel refuses io_uring (a seccomp
 * profile, an old kernel), every request runs synchronously with pread/pwrite at submission
 * and dsc__aio_engine says why.
 *
 * Requests are grouped by a small integer tag (the pool's buffer index): dsc__aio_wait
 * returns when every request of a tag has completed, with the first failure of the tag (the
 * errno, the operation and the file offset in the message). Short transfers are continued;
 * a read that reaches the end of the file is an error. One object serves one thread. */
#ifndef DSC_ZERO_AIO_H
#define DSC_ZERO_AIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "dsc/status.h"

/* Alignment of O_DIRECT buffers, file offsets and lengths (the swappers' records). */
#define DSC_NVME_ALIGN 4096

typedef struct dsc_aio dsc_aio_t;

typedef struct dsc_aio_options {
    int64_t block_size;  /* bytes per request (aio.block_size), > 0 */
    int64_t queue_depth; /* requests in flight (aio.queue_depth), > 0 */
    bool single_submit;  /* one submission call per request instead of one per batch */
    int n_tags;          /* tags 0..n_tags-1 */
} dsc_aio_options_t;

/* A new engine. err names what failed (DSC_ERR_NOMEM, DSC_ERR_INVALID for a bad option). */
dsc_status_t dsc__aio_new(const dsc_aio_options_t *o, dsc_aio_t **out, char *err, size_t errsz);
void dsc__aio_free(dsc_aio_t *a);
/* "io_uring" or "pread/pwrite (<why io_uring is not used>)". */
const char *dsc__aio_engine(const dsc_aio_t *a);

/* Queues a read (write = false) or write of len bytes between buf and fd at offset off under
 * tag. Fails only for a bad tag or out of memory; I/O errors come out of dsc__aio_wait. */
dsc_status_t dsc__aio_submit(dsc_aio_t *a, int tag, bool write, int fd, void *buf, size_t len, off_t off);
/* Waits until every request of tag completed; the first error of the tag, described in err
 * (operation, offset, strerror), then forgotten. */
dsc_status_t dsc__aio_wait(dsc_aio_t *a, int tag, char *err, size_t errsz);
/* Reaps what has completed without blocking; true when tag has nothing left in flight. */
bool dsc__aio_idle(dsc_aio_t *a, int tag);

#endif

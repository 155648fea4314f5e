/* Asynchronous file I/O over io_uring (see aio.h): a software queue of block-sized requests
 * feeds the ring, never more than queue_depth in flight; completions count down their tag.
 * The pread/pwrite fallback runs each request at submission. */
#define _GNU_SOURCE
#include "zero/aio.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef DSC_HAVE_LIBURING
#include <liburing.h>
#endif

typedef struct aio_req {
    int tag;
    bool write;
    int fd;
    char *buf;
    size_t len;
    off_t off;
} aio_req_t;

typedef struct aio_tag {
    int64_t pending;    /* requests queued or in flight */
    int err;            /* first errno of the tag (0: none); EIO with eof for a short file */
    bool eof, err_write;
    off_t err_off;
} aio_tag_t;

struct dsc_aio {
    dsc_aio_options_t o;
    aio_tag_t *tags;
    /* Requests not yet handed to the ring: a FIFO ring buffer that grows. */
    aio_req_t *queue;
    size_t q_head, q_len, q_cap;
    /* In-flight slots (queue_depth), indexed by the completion's user data. */
    aio_req_t *slots;
    int *free_slots;
    int n_free;
    bool uring;
    char engine[256];
#ifdef DSC_HAVE_LIBURING
    struct io_uring ring;
#endif
};

const char *dsc__aio_engine(const dsc_aio_t *a) { return a ? a->engine : "none"; }

dsc_status_t dsc__aio_new(const dsc_aio_options_t *o, dsc_aio_t **out, char *err, size_t errsz) {
    *out = NULL;
    if (o->block_size <= 0 || o->queue_depth <= 0 || o->queue_depth > 32768 || o->n_tags <= 0) {
        snprintf(err, errsz, "aio: block_size %lld and queue_depth %lld must be positive (queue_depth at most 32768)",
                 (long long)o->block_size, (long long)o->queue_depth);
        return DSC_ERR_INVALID;
    }
    dsc_aio_t *a = calloc(1, sizeof *a);
    if (!a) goto nomem;
    a->o = *o;
    a->tags = calloc((size_t)o->n_tags, sizeof *a->tags);
    a->slots = calloc((size_t)o->queue_depth, sizeof *a->slots);
    a->free_slots = calloc((size_t)o->queue_depth, sizeof *a->free_slots);
    if (!a->tags || !a->slots || !a->free_slots) goto nomem;
    for (int i = 0; i < (int)o->queue_depth; i++) a->free_slots[i] = (int)o->queue_depth - 1 - i;
    a->n_free = (int)o->queue_depth;
#ifdef DSC_HAVE_LIBURING
    int rc = io_uring_queue_init((unsigned)o->queue_depth, &a->ring, 0);
    if (rc == 0) {
        a->uring = true;
        snprintf(a->engine, sizeof a->engine, "io_uring");
    } else {
        snprintf(a->engine, sizeof a->engine, "pread/pwrite (io_uring_queue_init failed: %s)", strerror(-rc));
    }
#else
    snprintf(a->engine, sizeof a->engine, "pread/pwrite (dsc was built without liburing: apt-get install liburing-dev "
             "and configure again)");
#endif
    *out = a;
    return DSC_OK;
nomem:
    dsc__aio_free(a);
    snprintf(err, errsz, "aio: out of memory for a queue of depth %lld", (long long)o->queue_depth);
    return DSC_ERR_NOMEM;
}

void dsc__aio_free(dsc_aio_t *a) {
    if (!a) return;
#ifdef DSC_HAVE_LIBURING
    if (a->uring) {
        /* Nothing may stay in flight into buffers the caller is about to free. */
        while ((int)a->o.queue_depth - a->n_free > 0) {
            struct io_uring_cqe *cqe;
            if (io_uring_wait_cqe(&a->ring, &cqe) != 0) break;
            a->free_slots[a->n_free++] = (int)io_uring_cqe_get_data64(cqe);
            io_uring_cqe_seen(&a->ring, cqe);
        }
        io_uring_queue_exit(&a->ring);
    }
#endif
    free(a->tags);
    free(a->slots);
    free(a->free_slots);
    free(a->queue);
    free(a);
}

static void fail_req(dsc_aio_t *a, const aio_req_t *r, int e, bool eof) {
    aio_tag_t *t = &a->tags[r->tag];
    if (t->err) return;
    t->err = e;
    t->eof = eof;
    t->err_write = r->write;
    t->err_off = r->off;
}

/* The synchronous path: the whole request now. */
static void run_sync(dsc_aio_t *a, aio_req_t r) {
    while (r.len > 0) {
        ssize_t n = r.write ? pwrite(r.fd, r.buf, r.len, r.off) : pread(r.fd, r.buf, r.len, r.off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            fail_req(a, &r, n < 0 ? errno : EIO, n == 0);
            return;
        }
        r.buf += n;
        r.len -= (size_t)n;
        r.off += n;
    }
}

static bool push(dsc_aio_t *a, const aio_req_t *r) {
    if (a->q_len == a->q_cap) {
        size_t cap = a->q_cap ? 2 * a->q_cap : 64;
        aio_req_t *q = malloc(cap * sizeof *q);
        if (!q) return false;
        for (size_t i = 0; i < a->q_len; i++) q[i] = a->queue[(a->q_head + i) % a->q_cap];
        free(a->queue);
        a->queue = q;
        a->q_head = 0;
        a->q_cap = cap;
    }
    a->queue[(a->q_head + a->q_len) % a->q_cap] = *r;
    a->q_len++;
    return true;
}

#ifdef DSC_HAVE_LIBURING
/* Moves queued requests into the ring while slots are free, then submits them (one call per
 * request with single_submit). */
static void pump(dsc_aio_t *a) {
    int queued = 0;
    while (a->q_len > 0 && a->n_free > 0) {
        struct io_uring_sqe *sqe = io_uring_get_sqe(&a->ring);
        if (!sqe) break;
        aio_req_t *r = &a->queue[a->q_head];
        int slot = a->free_slots[--a->n_free];
        a->slots[slot] = *r;
        a->q_head = (a->q_head + 1) % a->q_cap;
        a->q_len--;
        if (r->write)
            io_uring_prep_write(sqe, a->slots[slot].fd, a->slots[slot].buf, (unsigned)a->slots[slot].len,
                                (uint64_t)a->slots[slot].off);
        else
            io_uring_prep_read(sqe, a->slots[slot].fd, a->slots[slot].buf, (unsigned)a->slots[slot].len,
                               (uint64_t)a->slots[slot].off);
        io_uring_sqe_set_data64(sqe, (uint64_t)slot);
        queued++;
        if (a->o.single_submit) {
            io_uring_submit(&a->ring);
            queued = 0;
        }
    }
    if (queued) io_uring_submit(&a->ring);
}

/* One completion: its tag counts down, a short transfer is queued again for the rest. */
static void complete(dsc_aio_t *a, struct io_uring_cqe *cqe) {
    int slot = (int)io_uring_cqe_get_data64(cqe);
    int res = cqe->res;
    io_uring_cqe_seen(&a->ring, cqe);
    aio_req_t r = a->slots[slot];
    a->free_slots[a->n_free++] = slot;
    if ((res == -EINTR || res == -EAGAIN) && push(a, &r)) return; /* again, whole */
    if (res < 0 || (res == 0 && !r.write && r.len > 0)) {
        fail_req(a, &r, res < 0 ? -res : EIO, res == 0);
        a->tags[r.tag].pending--;
        return;
    }
    if ((size_t)res < r.len) {
        r.buf += res;
        r.len -= (size_t)res;
        r.off += res;
        if (push(a, &r)) return; /* still pending */
        fail_req(a, &r, ENOMEM, false);
    }
    a->tags[r.tag].pending--;
}
#endif

dsc_status_t dsc__aio_submit(dsc_aio_t *a, int tag, bool write, int fd, void *buf, size_t len, off_t off) {
    if (!a || tag < 0 || tag >= a->o.n_tags) return DSC_ERR_INVALID;
    const size_t bs = (size_t)a->o.block_size;
    for (size_t done = 0; done < len; done += bs) {
        aio_req_t r = {tag, write, fd, (char *)buf + done, len - done < bs ? len - done : bs, off + (off_t)done};
        if (!a->uring) {
            run_sync(a, r);
            continue;
        }
        if (!push(a, &r)) return DSC_ERR_NOMEM;
        a->tags[tag].pending++;
    }
#ifdef DSC_HAVE_LIBURING
    if (a->uring) pump(a);
#endif
    return DSC_OK;
}

bool dsc__aio_idle(dsc_aio_t *a, int tag) {
#ifdef DSC_HAVE_LIBURING
    if (a->uring) {
        struct io_uring_cqe *cqe;
        while (io_uring_peek_cqe(&a->ring, &cqe) == 0) complete(a, cqe);
        pump(a);
    }
#endif
    return a->tags[tag].pending == 0;
}

dsc_status_t dsc__aio_wait(dsc_aio_t *a, int tag, char *err, size_t errsz) {
    if (!a || tag < 0 || tag >= a->o.n_tags) return DSC_ERR_INVALID;
    aio_tag_t *t = &a->tags[tag];
#ifdef DSC_HAVE_LIBURING
    while (a->uring && t->pending > 0) {
        pump(a);
        struct io_uring_cqe *cqe;
        int rc = io_uring_wait_cqe(&a->ring, &cqe);
        if (rc == -EINTR) continue;
        if (rc < 0) {
            snprintf(err, errsz, "waiting for io_uring completions: %s", strerror(-rc));
            return DSC_ERR_IO;
        }
        complete(a, cqe);
    }
#endif
    if (!t->err) return DSC_OK;
    if (t->eof)
        snprintf(err, errsz, "%s at offset %lld: unexpected end of file", t->err_write ? "write" : "read",
                 (long long)t->err_off);
    else
        snprintf(err, errsz, "%s at offset %lld: %s", t->err_write ? "write" : "read", (long long)t->err_off,
                 strerror(t->err));
    const int e = t->err;
    t->err = 0;
    t->eof = false;
    return e == ENOMEM ? DSC_ERR_NOMEM : DSC_ERR_IO;
}

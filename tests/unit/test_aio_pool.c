/* The NVMe swappers' file and buffer pool (src/zero/aio_pool.c) on its own, records of 16 KiB
 * (record r holds floats r * 10000 + k) moved through a queue of depth 1 in 4 KiB requests, so
 * a write submitted is mostly still queued until someone waits for it:
 * - drain waits for every write in flight: afterwards the file holds every record (read back
 *   with pread) and every buffer is free;
 * - when no buffer is free, take waits for a write before dropping a read, then drops the
 *   oldest read-ahead, whatever the buffers' index order; a held buffer is never evicted nor
 *   dropped, even when it is the oldest; with every buffer held take fails;
 * - a read past the end of the file and a write into a read-only descriptor fail naming the
 *   record, the directory and the cause, leave the buffer free and mark the file broken (the
 *   read only with read_error_breaks); the pool keeps reading and frees everything. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "zero/aio_pool.h"

enum { REC = 16384, NREC = 16 };
static char g_dir[256];

static void rec_name(int64_t key, int64_t part, char *out, size_t outsz) {
    snprintf(out, outsz, "of record %lld (part %lld)", (long long)key, (long long)part);
}

static dsc_aio_pool_t *pool_new(dsc_ctx_t *ctx, int n_bufs, bool read_error_breaks) {
    const dsc_aio_pool_options_t o = {.ctx = ctx, .owner = "offload_test", .dir = g_dir, .prefix = "dsc-pool-test",
                                      .contents = "the test records", .rank = 3, .file_bytes = NREC * REC,
                                      .n_bufs = n_bufs, .buf_bytes = REC, .sizing = "test", .block_size = 4096,
                                      .queue_depth = 1, .read_error_breaks = read_error_breaks, .name = rec_name};
    dsc_aio_pool_t *p = NULL;
    char err[512] = "";
    CHECK_MSG(dsc__aio_pool_new(&o, &p, err, sizeof err) == DSC_OK, "%s", err);
    return p;
}

static void fill(char *host, int64_t r) {
    for (int k = 0; k < REC / 4; k++) ((float *)host)[k] = (float)(r * 10000 + k);
}
/* Whether host holds record r. */
static bool holds(const char *host, int64_t r) {
    for (int k = 0; k < REC / 4; k++)
        if (((const float *)host)[k] != (float)(r * 10000 + k)) return false;
    return true;
}

static dsc_status_t read_into(dsc_aio_pool_t *p, int b, int64_t r) {
    dsc_status_t st = dsc__aio_pool_submit(p, b, false, r, 0, REC, (off_t)r * REC);
    return st == DSC_OK ? dsc__aio_pool_finish(p, b) : st;
}

/* Six records written through three buffers (take waits for the oldest write each time),
 * then drained: the file holds all six. */
static void test_drain(dsc_aio_pool_t *p) {
    for (int64_t r = 0; r < 6; r++) {
        int b = -1;
        CHECK_OK(dsc__aio_pool_take(p, false, &b));
        if (b < 0) return;
        CHECK(p->bufs[b].held && p->bufs[b].state == DSC_AIO_FREE);
        fill(p->bufs[b].host, r);
        CHECK_OK(dsc__aio_pool_submit(p, b, true, r, 0, REC, (off_t)r * REC));
        CHECK(!p->bufs[b].held && p->bufs[b].state == DSC_AIO_WRITING);
    }
    int writing = 0;
    for (int b = 0; b < 3; b++) writing += p->bufs[b].state == DSC_AIO_WRITING;
    CHECK_MSG(writing == 3, "%d buffers writing before the drain", writing);
    CHECK_OK(dsc__aio_pool_drain(p));
    for (int b = 0; b < 3; b++) {
        CHECK(p->bufs[b].state == DSC_AIO_FREE && p->bufs[b].key == -1 && !p->bufs[b].held);
        CHECK(dsc__aio_idle(p->aio, b));
    }
    CHECK(p->bytes_written == 6 * REC);
    char *back = NULL;
    CHECK(posix_memalign((void **)&back, DSC_NVME_ALIGN, REC) == 0); /* O_DIRECT wants it aligned */
    int complete = 0;
    for (int64_t r = 0; back && r < 6; r++) complete += pread(p->fd, back, REC, (off_t)r * REC) == REC && holds(back, r);
    CHECK_MSG(complete == 6, "%d of 6 records in the file after the drain", complete);
    free(back);
}

/* Reads in buffers 2, 0, 1 (records 4, 1, 5: oldest first) then a write in flight: take takes
 * the write's buffer, then drops the reads oldest first; with all held it fails. */
static void test_eviction(dsc_ctx_t *ctx, dsc_aio_pool_t *p) {
    CHECK_OK(read_into(p, 2, 4));
    CHECK_OK(read_into(p, 0, 1));
    CHECK_OK(read_into(p, 1, 5));
    CHECK(holds(p->bufs[2].host, 4) && holds(p->bufs[0].host, 1) && holds(p->bufs[1].host, 5));
    CHECK(dsc__aio_pool_find(p, 4) == 2 && dsc__aio_pool_find(p, 1) == 0 && dsc__aio_pool_find(p, 5) == 1);
    int b = -1;
    CHECK(dsc__aio_pool_spare(p, true, &b) == DSC_OK && b == -1); /* nothing free */
    /* record 1 rewritten from buffer 0: the newest submission, but a write */
    CHECK_OK(dsc__aio_pool_submit(p, 0, true, 1, 0, REC, (off_t)1 * REC));
    CHECK_OK(dsc__aio_pool_take(p, true, &b));
    CHECK_MSG(b == 0, "took buffer %d, not the write's buffer 0", b);
    int order[2] = {-1, -1};
    CHECK_OK(dsc__aio_pool_take(p, true, &order[0]));
    CHECK_OK(dsc__aio_pool_take(p, true, &order[1]));
    CHECK_MSG(order[0] == 2 && order[1] == 1, "evicted buffers %d then %d, expected 2 (record 4) then 1 (record 5)",
              order[0], order[1]);
    CHECK(dsc__aio_pool_find(p, 4) == -1 && dsc__aio_pool_find(p, 5) == -1);
    int none = 7;
    CHECK(dsc__aio_pool_take(p, true, &none) == DSC_ERR_INVALID && none == -1);
    CHECK_MSG(strstr(dsc_ctx_errmsg(ctx), "no buffer can be freed"), "%s", dsc_ctx_errmsg(ctx));
    dsc_ctx_clear_error(ctx);
    for (int i = 0; i < 3; i++) dsc__aio_pool_release(p, i);
}

/* Buffer 0 taken and read into first (the oldest), buffers 1 and 2 read ahead after it: take
 * drops buffer 1, drop_reads leaves buffer 0 alone. */
static void test_held(dsc_aio_pool_t *p) {
    int held = -1, b1 = -1, b2 = -1, got = -1;
    CHECK_OK(dsc__aio_pool_take(p, true, &held));
    CHECK(held == 0);
    CHECK_OK(read_into(p, held, 2));
    CHECK_OK(dsc__aio_pool_spare(p, false, &b1));
    CHECK(b1 == 1 && read_into(p, b1, 3) == DSC_OK);
    CHECK_OK(dsc__aio_pool_spare(p, false, &b2));
    CHECK(b2 == 2 && read_into(p, b2, 5) == DSC_OK);
    CHECK(p->bufs[0].order < p->bufs[1].order && p->bufs[1].order < p->bufs[2].order);
    CHECK_OK(dsc__aio_pool_take(p, true, &got));
    CHECK_MSG(got == 1, "evicted buffer %d: the held buffer 0 is older but held, 1 is the oldest read-ahead", got);
    CHECK_OK(dsc__aio_pool_drop_reads(p, -1));
    CHECK(dsc__aio_pool_find(p, 5) == -1);
    CHECK(dsc__aio_pool_find(p, 2) == 0 && holds(p->bufs[0].host, 2));
    CHECK_OK(dsc__aio_pool_drain(p));
}

/* A write into a read-only descriptor, then a read past the end of the file. */
static void test_errors(dsc_ctx_t *ctx, dsc_aio_pool_t *p) {
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", p->fd);
    const int rw = dup(p->fd), ro = open(proc, O_RDONLY | O_CLOEXEC);
    CHECK(rw >= 0 && ro >= 0 && dup2(ro, p->fd) == p->fd);
    for (int b = 0; b < 3; b++) {
        fill(p->bufs[b].host, 9);
        CHECK_OK(dsc__aio_pool_submit(p, b, true, 9, b, REC, (off_t)9 * REC));
    }
    int b = -1;
    CHECK(dsc__aio_pool_take(p, false, &b) == DSC_ERR_IO && b == 0); /* the oldest write failed */
    CHECK(b == 0 && p->bufs[0].state == DSC_AIO_FREE && p->bufs[0].held && p->broken);
    const char *msg = dsc_ctx_errmsg(ctx);
    CHECK_MSG(strstr(msg, "offload_test nvme swap file in '") && strstr(msg, g_dir) && strstr(msg, "(rank 3)") &&
                  strstr(msg, "writing of record 9 (part 0): write at offset 147456") &&
                  strstr(msg, strerror(EBADF)),
              "write error: '%s'", msg);
    dsc_ctx_clear_error(ctx);
    CHECK(dsc__aio_pool_drain(p) == DSC_ERR_IO); /* the other two writes failed too */
    CHECK_MSG(strstr(dsc_ctx_errmsg(ctx), "writing of record 9 (part 1)"), "%s", dsc_ctx_errmsg(ctx));
    dsc_ctx_clear_error(ctx);
    CHECK(dsc__aio_pool_usable(p, "a test") == DSC_ERR_IO);
    CHECK_MSG(strstr(dsc_ctx_errmsg(ctx), "a test: the swap file is inconsistent after an earlier write error"), "%s",
              dsc_ctx_errmsg(ctx));
    dsc_ctx_clear_error(ctx);
    CHECK_OK(read_into(p, 0, 3)); /* the pool still reads */
    CHECK(holds(p->bufs[0].host, 3));
    dsc__aio_pool_release(p, 0);

    /* the file cut to 2 records: record 5 is past its end */
    CHECK(dup2(rw, p->fd) == p->fd);
    dsc_aio_pool_t *q = pool_new(ctx, 2, true);
    if (q) {
        CHECK(ftruncate(q->fd, 2 * REC) == 0);
        CHECK(!q->broken && read_into(q, 1, 5) == DSC_ERR_IO);
        msg = dsc_ctx_errmsg(ctx);
        CHECK_MSG(strstr(msg, g_dir) && strstr(msg, "reading of record 5 (part 0): read at offset 81920: unexpected end "
                                                    "of file"), "read error: '%s'", msg);
        CHECK(q->bufs[1].state == DSC_AIO_FREE && q->bufs[1].key == -1 && q->broken);
        dsc_ctx_clear_error(ctx);
        CHECK(dsc__aio_pool_usable(q, "reading") == DSC_ERR_IO &&
              strstr(dsc_ctx_errmsg(ctx), "after an earlier I/O error"));
        dsc_ctx_clear_error(ctx);
        fill(q->bufs[1].host, 1); /* the pool keeps working: record 1 written and read back */
        CHECK_OK(dsc__aio_pool_submit(q, 1, true, 1, 0, REC, REC));
        CHECK_OK(dsc__aio_pool_finish(q, 1));
        CHECK(read_into(q, 0, 1) == DSC_OK && holds(q->bufs[0].host, 1));
        CHECK_OK(dsc__aio_pool_submit(q, 1, true, 1, 0, REC, REC));
        dsc__aio_pool_free(q); /* waits for the write still in flight */
    }
    if (rw >= 0) close(rw);
    if (ro >= 0) close(ro);
}

int main(void) {
    const char *base = getenv("DSC_TEST_NVME_DIR") ? getenv("DSC_TEST_NVME_DIR") : "/tmp";
    snprintf(g_dir, sizeof g_dir, "%s/dsc-aio-pool-XXXXXX", base);
    if (!mkdtemp(g_dir)) {
        fprintf(stderr, "cannot make a directory under %s\n", base);
        return 1;
    }
    dsc_ctx_t *ctx = check_ctx_new(1);
    dsc_aio_pool_t *p = pool_new(ctx, 3, false);
    if (p) {
        printf("  %s\n", p->desc);
        test_drain(p);
        test_eviction(ctx, p);
        test_held(p);
        test_errors(ctx, p);
        dsc__aio_pool_free(p);
    }
    dsc_ctx_free(ctx);
    check_rm_tree(g_dir);
    return check_finish("test_aio_pool");
}

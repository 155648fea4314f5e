/* The generic communicator layer's ordered wait and host-read check (src/comm/comm.c), with
 * a backend of the test's own that counts its calls:
 * - a wait (dsc_comm_wait, a blocking collective) first asks the backend to complete the
 *   collective in order (vtable order); when it does, the wait returns without one test and
 *   the collective is released as completed; when it declines (host results), the wait
 *   polls test as before; dsc_comm_test never asks for order;
 * - a blocking device read on the communicator's context (dsc__dev_to_host, dsc__dev_sync)
 *   first settles the backend (vtable settle: where NCCL polls the collectives the read
 *   would wait behind); once the backend's watchdog found something (vtable overdue), the
 *   read reports it like a timeout, naming the read, and aborts, without reading when it
 *   was found while settling; nothing found: the read is untouched; dsc_comm_free settles
 *   the backend too (the whole device: every collective in flight) and removes the check
 *   from the context;
 * - with two such communicators on one context, the check polls both, reports the one whose
 *   watchdog fired (which of the context's communicators, its rank) and keeps watching the
 *   other after either is freed. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "comm/comm_internal.h"
#include "core/device.h"

typedef struct order_backend {
    bool order_done, test_done, fire;
    int pending; /* settle: polls before the collectives it waits for pass */
    int stuck;   /* settle: a collective it waits for is stuck: the watchdog fires at this poll (0: none) */
    int starts, tests, orders, releases, completed_releases, aborts, settles, whole_settles;
} order_backend_t;

static void quiet(dsc_log_level_t level, const char *message, void *user);
static order_backend_t *state(dsc_comm_t *c) { return c->impl; }

static dsc_status_t ob_start(dsc_comm_t *c, dsc__coll_t *coll) {
    state(c)->starts++;
    return DSC_OK;
}
static dsc_status_t ob_test(dsc_comm_t *c, dsc__coll_t *coll, bool *done) {
    state(c)->tests++;
    *done = state(c)->test_done;
    return DSC_OK;
}
static void ob_pause(dsc_comm_t *c, dsc__coll_t *coll, unsigned attempt, double max_s) {
    state(c)->test_done = true; /* the next poll completes it */
}
static void ob_release(dsc_comm_t *c, dsc__coll_t *coll, bool completed) {
    state(c)->releases++;
    if (completed) state(c)->completed_releases++;
}
static void ob_peers(dsc_comm_t *c, const dsc__coll_t *coll, dsc__peer_t *peers, double grace_s) {
    peers[c->rank].kind = DSC__PEER_KNOWN;
    peers[c->rank].latest = c->latest;
}
static void ob_abort(dsc_comm_t *c, int errorcode) { state(c)->aborts++; }
static void ob_destroy(dsc_comm_t *c) {}
static bool ob_overdue(dsc_comm_t *c) {
    if (!state(c)->fire) return false;
    c->overdue = c->latest;
    c->overdue_status = DSC_ERR_TIMEOUT;
    c->overdue_waited_s = 3.5;
    snprintf(c->overdue_note, sizeof c->overdue_note, "test watchdog");
    return true;
}
static dsc_status_t ob_order(dsc_comm_t *c, dsc__coll_t *coll, bool *done) {
    state(c)->orders++;
    *done = state(c)->order_done;
    return DSC_OK;
}
static bool ob_settle(dsc_comm_t *c, bool whole_device) {
    order_backend_t *b = state(c);
    b->settles++;
    if (whole_device) b->whole_settles++;
    if (b->stuck && --b->stuck == 0) {
        b->fire = true; /* its watchdog found the collective the poll waited for overdue */
        return true;
    }
    if (b->stuck) return false;
    if (b->pending) {
        b->pending--;
        return false;
    }
    return true;
}

static const dsc__comm_vtable_t ob_vtable = {
    "order-test", ob_start, ob_test, ob_pause, ob_release, ob_peers, ob_abort, ob_destroy, NULL, ob_overdue,
    ob_order, ob_settle,
};

static dsc_comm_t *make(dsc_ctx_t *ctx, order_backend_t *b) {
    memset(b, 0, sizeof *b);
    dsc_comm_t *c = dsc__comm_alloc(ctx);
    CHECK(c != NULL);
    c->vt = &ob_vtable;
    c->impl = b;
    dsc__comm_watch_host_reads(c);
    return c;
}

static void t_wait_orders(dsc_ctx_t *ctx) {
    order_backend_t b;
    dsc_comm_t *c = make(ctx, &b);
    float v[4] = {1, 2, 3, 4};
    b.order_done = true;
    CHECK_OK(dsc_comm_allreduce(c, v, v, 4, DSC_F32, DSC_REDUCE_SUM));
    CHECK_MSG(b.orders == 1 && b.tests == 0 && b.completed_releases == 1, "orders %d tests %d completed %d", b.orders,
              b.tests, b.completed_releases);
    /* non-blocking: a test polls (no order), the wait orders */
    dsc_comm_request_t *r = NULL;
    CHECK_OK(dsc_comm_iallreduce(c, v, v, 4, DSC_F32, DSC_REDUCE_SUM, &r));
    bool done = true;
    CHECK_OK(dsc_comm_test(r, &done));
    CHECK(!done && b.tests == 1 && b.orders == 1);
    CHECK_OK(dsc_comm_wait(r));
    CHECK_MSG(b.orders == 2 && b.tests == 1 && b.completed_releases == 2, "orders %d tests %d", b.orders, b.tests);
    /* declined (host results): the wait polls test until it completes */
    b.order_done = false;
    CHECK_OK(dsc_comm_allreduce(c, v, v, 4, DSC_F32, DSC_REDUCE_SUM));
    CHECK_MSG(b.orders == 3 && b.tests == 3 && b.completed_releases == 3, "orders %d tests %d", b.orders, b.tests);
    CHECK(dsc_comm_stats(c).calls[DSC_COMM_ALLREDUCE] == 3);
    CHECK(ctx->host_read_check != NULL);
    dsc_comm_free(c);
    CHECK_MSG(b.settles == 1 && b.whole_settles == 1 && b.aborts == 0, "settles %d (whole device %d) aborts %d",
              b.settles, b.whole_settles, b.aborts);
    CHECK(ctx->host_read_check == NULL && ctx->host_read_check_user == NULL);
}

static void t_host_read_reports(dsc_ctx_t *ctx) {
    order_backend_t b;
    dsc_comm_t *c = make(ctx, &b);
    float v[4] = {1, 2, 3, 4}, out[4] = {0};
    b.order_done = true;
    dsc_comm_set_tag(c, "train step 3");
    for (int i = 0; i < 3; i++) CHECK_OK(dsc_comm_allreduce(c, v, v, 4, DSC_F32, DSC_REDUCE_SUM));
    b.pending = 2; /* the read waits, polling, until the ordered collectives passed */
    CHECK_OK(dsc__dev_to_host(ctx, out, v, sizeof v)); /* nothing found: a plain read, settled first */
    CHECK_MSG(out[3] == 4.0f && b.aborts == 0 && b.settles == 3 && b.whole_settles == 0, "settles %d whole %d",
              b.settles, b.whole_settles);
    b.fire = true; /* the watchdog found #3 overdue while the host was inside the read */
    dsc_status_t st = dsc__dev_to_host(ctx, out, v, sizeof v);
    CHECK_MSG(st == DSC_ERR_TIMEOUT, "the read returned %s", dsc_status_string(st));
    CHECK(b.aborts == 1 && dsc_comm_aborted(c));
    const char *want = "collective #3 allreduce(4 f32 sum) at \"train step 3\" timed out after 3.5 s on rank 0 of 1 "
                       "(test watchdog; noticed by a host read of device memory)";
    CHECK_MSG(strstr(dsc_comm_errmsg(c), want) != NULL, "message: %s", dsc_comm_errmsg(c));
    CHECK_OK(dsc__dev_sync(ctx)); /* reported once: the communicator is aborted now */
    CHECK(b.aborts == 1);
    dsc_comm_free(c);
    CHECK_MSG(b.settles == 4, "settled %d times: 3 polls for the first read, 1 for the second", b.settles);
    CHECK(ctx->host_read_check == NULL);
}

/* Found while the read settles (it would wait behind a stuck collective): reported, and the
 * read is never made. */
static void t_settle_finds(dsc_ctx_t *ctx) {
    order_backend_t b;
    dsc_comm_t *c = make(ctx, &b);
    float v[4] = {1, 2, 3, 4}, out[4] = {0};
    b.order_done = true;
    CHECK_OK(dsc_comm_allreduce(c, v, v, 4, DSC_F32, DSC_REDUCE_SUM));
    b.stuck = 3; /* found at the third poll */
    CHECK(dsc__dev_to_host(ctx, out, v, sizeof v) == DSC_ERR_TIMEOUT);
    CHECK_MSG(out[0] == 0.0f && b.settles == 3 && b.aborts == 1, "out[0] %g settles %d aborts %d", (double)out[0],
              b.settles, b.aborts);
    CHECK(strstr(dsc_comm_errmsg(c), "collective #1 allreduce(4 f32 sum) timed out") != NULL);
    dsc_comm_free(c);
}

static void t_sync_reports(dsc_ctx_t *ctx) {
    order_backend_t b;
    dsc_comm_t *c = make(ctx, &b);
    b.fire = true;
    CHECK(dsc__dev_sync(ctx) == DSC_ERR_TIMEOUT && b.aborts == 1);
    dsc_comm_free(c);
}

/* Two communicators on one context (a data-parallel group and a second one): the host-read
 * check covers both. The second one's ordered collective is stuck: a read polls both, the
 * second's watchdog fires at its third poll, and the read reports that collective, naming
 * the communicator (2nd of 2) and its rank, without reading. Freeing the first keeps the
 * second watched; freeing the last removes the check. */
static void t_two_comms(dsc_ctx_t *ctx) {
    dsc_ctx_clear_error(ctx); /* the earlier cases' reports */
    order_backend_t b1, b2;
    dsc_comm_t *c1 = make(ctx, &b1), *c2 = make(ctx, &b2);
    c2->rank = 1;
    c2->world = 2;
    float v[4] = {1, 2, 3, 4}, out[4] = {0};
    b1.order_done = b2.order_done = true;
    dsc_comm_set_tag(c1, "data parallel");
    dsc_comm_set_tag(c2, "second group");
    CHECK_OK(dsc_comm_allreduce(c1, v, v, 4, DSC_F32, DSC_REDUCE_SUM));
    CHECK_OK(dsc_comm_allreduce(c2, v, v, 4, DSC_F32, DSC_REDUCE_SUM));
    CHECK_OK(dsc_comm_allreduce(c2, v, v, 4, DSC_F32, DSC_REDUCE_SUM));
    b1.pending = 5; /* the first's collectives are slow but pass */
    b2.stuck = 3;
    dsc_status_t st = dsc__dev_to_host(ctx, out, v, sizeof v);
    CHECK_MSG(st == DSC_ERR_TIMEOUT, "the read returned %s (the second communicator was not checked?)",
              dsc_status_string(st));
    CHECK_MSG(out[0] == 0.0f && b2.settles == 3 && b1.settles == 3 && b1.aborts == 0 && b2.aborts == 1,
              "out[0] %g settles %d/%d aborts %d/%d", (double)out[0], b1.settles, b2.settles, b1.aborts, b2.aborts);
    const char *want = "collective #2 allreduce(4 f32 sum) at \"second group\" timed out after 3.5 s on rank 1 of 2 "
                       "(test watchdog; noticed by a host read of device memory; on communicator 2 of the 2 this "
                       "context watches (order-test, rank 1 of 2))";
    CHECK_MSG(strstr(dsc_comm_errmsg(c2), want) != NULL, "message: %s", dsc_comm_errmsg(c2));
    CHECK(strstr(dsc_ctx_errmsg(ctx), want) != NULL);
    CHECK(!dsc_comm_aborted(c1));
    dsc_ctx_clear_error(ctx);
    /* the first one's watchdog fires: named as the first of two */
    b1.fire = true;
    CHECK(dsc__dev_sync(ctx) == DSC_ERR_TIMEOUT && b1.aborts == 1);
    CHECK_MSG(strstr(dsc_comm_errmsg(c1), "at \"data parallel\" timed out after 3.5 s on rank 0 of 1 (test watchdog; "
                                          "noticed by a host read of device memory; on communicator 1 of the 2") != NULL,
              "message: %s", dsc_comm_errmsg(c1));
    dsc_ctx_clear_error(ctx);
    dsc_comm_free(c1);
    CHECK(ctx->host_read_check != NULL && ctx->host_read_check_user == c2);
    dsc_comm_free(c2);
    CHECK(ctx->host_read_check == NULL && ctx->host_read_check_user == NULL);
    /* freed in the other order: the last one made goes first */
    c1 = make(ctx, &b1);
    c2 = make(ctx, &b2);
    dsc_comm_free(c2);
    CHECK(ctx->host_read_check_user == c1 && c1->watch_next == NULL);
    b1.stuck = 2;
    CHECK(dsc__dev_sync(ctx) == DSC_ERR_TIMEOUT);
    CHECK_MSG(strstr(dsc_comm_errmsg(c1), "(test watchdog; noticed by a host read of device memory)") != NULL,
              "one communicator left: not numbered: %s", dsc_comm_errmsg(c1));
    dsc_ctx_clear_error(ctx);
    dsc_comm_free(c1);
    CHECK(ctx->host_read_check == NULL);
}

/* Page-locked host memory for the CPU devices, which have none: malloc, counted. */
static int pinned_live;
static void *test_alloc_pinned(dsc_device_t *dev, size_t n) {
    pinned_live++;
    return malloc(n);
}
static void test_free_pinned(dsc_device_t *dev, void *p, size_t n) {
    pinned_live--;
    free(p);
}

/* Device frees wait for the whole device on a GPU (cudaFree): the check settles every
 * collective in flight first (whole device), and when one is reported stuck the buffer it
 * may still write is not freed but kept until the context goes (freed once then: ASan and
 * the allocator below tell), while later frees, the communicator being aborted, go through.
 * Page-locked host frees likewise. On `device` (cpu, guarded). */
static void t_free_while_stuck(const char *device) {
    dsc_ctx_t *ctx = NULL;
    dsc_ctx_options_t o = DSC_CTX_OPTIONS_INIT;
    o.log_fn = quiet;
    o.device = device;
    CHECK_OK(dsc_ctx_new(&o, &ctx));
    static dsc_device_table_t with_pinned; /* outlives ctx: the parked page-locked buffer goes at its free */
    with_pinned = *ctx->device.table;
    with_pinned.host_alloc_pinned = test_alloc_pinned;
    with_pinned.host_free_pinned = test_free_pinned;
    ctx->device.table = &with_pinned;
    order_backend_t b;
    dsc_comm_t *c = make(ctx, &b);
    float v[4] = {1, 2, 3, 4};
    b.order_done = true;
    CHECK_OK(dsc_comm_allreduce(c, v, v, 4, DSC_F32, DSC_REDUCE_SUM));
    size_t live0 = 0, live = 0;
    CHECK_OK(dsc_ctx_device_memory(ctx, &live0, NULL));
    /* nothing stuck: the free polls (whole device) until the collectives passed, then frees;
     * the allocator hands the same block out again (the control for the refusal below) */
    void *a = dsc__dev_alloc_raw(ctx, 4096);
    CHECK(a != NULL);
    b.pending = 2;
    dsc__dev_free_raw(ctx, a, 4096);
    CHECK_MSG(b.settles == 3 && b.whole_settles == 3 && dsc_ctx_status(ctx) == DSC_OK, "settles %d whole %d: %s",
              b.settles, b.whole_settles, dsc_ctx_errmsg(ctx));
    void *p = dsc__dev_alloc_raw(ctx, 4096);
    const bool reused = p == a;
    /* the guarded device's first-fit allocator always does (malloc may not: ASan quarantines) */
    CHECK_MSG(reused || strcmp(device, "guarded") != 0, "the guarded device did not reuse a freed block");
    /* stuck: found at the second poll; reported, naming the free; p kept */
    dsc_comm_set_tag(c, "grads");
    CHECK_OK(dsc_comm_allreduce(c, v, v, 4, DSC_F32, DSC_REDUCE_SUM));
    b.stuck = 2;
    dsc__dev_free_raw(ctx, p, 4096);
    CHECK_MSG(dsc_ctx_status(ctx) == DSC_ERR_TIMEOUT && b.aborts == 1 && b.whole_settles == 5, "%s whole %d aborts %d",
              dsc_status_string(dsc_ctx_status(ctx)), b.whole_settles, b.aborts);
    const char *want = "collective #2 allreduce(4 f32 sum) at \"grads\" timed out after 3.5 s on rank 0 of 1 (test "
                       "watchdog; noticed by a free of device memory, which waits for the whole device)";
    CHECK_MSG(strstr(dsc_ctx_errmsg(ctx), want) != NULL, "message: %s", dsc_ctx_errmsg(ctx));
    CHECK(ctx->n_parked == 1 && ctx->parked[0].ptr == p && ctx->parked[0].n_bytes == 4096 && !ctx->parked[0].pinned);
    CHECK_OK(dsc_ctx_device_memory(ctx, &live, NULL));
    CHECK_MSG(live == live0 + 4096, "live %zu, was %zu: the refused buffer stays counted", live, live0);
    /* not handed back: the allocator, which gave `a` out again above, does not give p out */
    void *q = dsc__dev_alloc_raw(ctx, 4096);
    CHECK_MSG(q != NULL && q != p, "q %p p %p (the allocator reused a freed block before: %d)", q, p, reused);
    /* the communicator is aborted: later frees go through, unchecked */
    dsc__dev_free_raw(ctx, q, 4096);
    CHECK(ctx->n_parked == 1 && b.whole_settles == 5);
    /* page-locked host memory: refused likewise while a collective is reported stuck */
    dsc_comm_free(c);
    c = make(ctx, &b);
    b.order_done = true;
    CHECK_OK(dsc_comm_allreduce(c, v, v, 4, DSC_F32, DSC_REDUCE_SUM));
    dsc_ctx_clear_error(ctx);
    void *h = ctx->device.table->host_alloc_pinned(&ctx->device, 256), *h2 = ctx->device.table->host_alloc_pinned(&ctx->device, 64);
    b.pending = 1;
    dsc__dev_host_free_pinned(ctx, h2, 64); /* settled (2 polls, whole device), then freed */
    CHECK(pinned_live == 1 && b.whole_settles == 2 && dsc_ctx_status(ctx) == DSC_OK);
    b.stuck = 1;
    dsc__dev_host_free_pinned(ctx, h, 256);
    CHECK_MSG(dsc_ctx_status(ctx) == DSC_ERR_TIMEOUT &&
                  strstr(dsc_ctx_errmsg(ctx), "noticed by a free of page-locked host memory, which waits for the whole "
                                              "device)") != NULL,
              "message: %s", dsc_ctx_errmsg(ctx));
    CHECK(pinned_live == 1 && ctx->n_parked == 2 && ctx->parked[1].ptr == h && ctx->parked[1].pinned);
    dsc_comm_free(c);
    dsc_ctx_free(ctx); /* frees the two kept buffers, once each */
    CHECK_MSG(pinned_live == 0, "page-locked buffers left: %d", pinned_live);
}

static void quiet(dsc_log_level_t level, const char *message, void *user) {}

int main(void) {
    dsc_ctx_t *ctx = NULL;
    dsc_ctx_options_t o = DSC_CTX_OPTIONS_INIT;
    o.log_fn = quiet; /* the reports below are expected */
    CHECK_OK(dsc_ctx_new(&o, &ctx));
    t_wait_orders(ctx);
    t_host_read_reports(ctx);
    t_settle_finds(ctx);
    t_sync_reports(ctx);
    t_two_comms(ctx);
    t_free_while_stuck("cpu");
    t_free_while_stuck("guarded");
    dsc_ctx_free(ctx);
    return check_finish("test_comm_order");
}

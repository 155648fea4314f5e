/* Collectives on the in-process fake backend (ranks are threads) and the self backend:
 * every collective and dtype against closed-form values, in-place forms, non-blocking
 * overlap, sequence numbers, byte counters, the debug check's divergence report, delays
 * within the timeout, and ranks that stop participating (every other rank times out
 * naming them). Every wait has a timeout and every join a deadline: the test cannot hang. */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "comm_check.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- the world harness ------------------------------------------------------------- */

typedef void (*rank_fn)(dsc_comm_t *c, int rank, int n, void *arg);

typedef struct thread_arg {
    dsc_comm_fake_world_t *world;
    int rank, n;
    rank_fn fn;
    void *arg;
} thread_arg_t;

static void *rank_main(void *p) {
    thread_arg_t *t = p;
    dsc_ctx_t *ctx = check_ctx_new(1);
    dsc_comm_t *c = NULL;
    TCHECK_OK(dsc_comm_new_fake(ctx, t->world, t->rank, &c));
    if (c) {
        /* Short default for tests: a bug shows as a timeout, never as a hang. */
        dsc_comm_set_timeout(c, 10.0);
        t->fn(c, t->rank, t->n, t->arg);
        dsc_comm_free(c);
    }
    dsc_ctx_free(ctx);
    return NULL;
}

/* Runs fn on n rank threads of a new world (with the given faults); joins with a 60 s
 * deadline and exits the test if a thread is stuck. */
static void run_world(int n, const dsc_comm_fault_t *faults, int n_faults, rank_fn fn, void *arg) {
    dsc_comm_fake_world_t *w = NULL;
    CHECK_OK(dsc_comm_fake_world_new(n, &w));
    if (!w) return;
    for (int i = 0; i < n_faults; i++) CHECK_OK(dsc_comm_fake_world_add_fault(w, &faults[i]));
    thread_arg_t ta[8];
    for (int r = 0; r < n; r++) ta[r] = (thread_arg_t){w, r, n, fn, arg};
    check_run_threads(n, rank_main, ta, sizeof ta[0]);
    dsc_comm_fake_world_free(w);
}

/* ---- every collective, every dtype ------------------------------------------------- */

static void values_rank(dsc_comm_t *c, int rank, int n, void *arg) {
    (void)arg;
    TCHECK(dsc_comm_seq(c) == 0); /* a new communicator: the collectives are numbered from 1 */
    comm_check_values(c, rank, n);
    TCHECK(dsc_comm_rank(c) == rank && dsc_comm_world_size(c) == n && dsc_comm_local_rank(c) == rank);
    TCHECK(!strcmp(dsc_comm_backend_name(c), "fake"));
}

static void test_values(void) {
    for (int n = 1; n <= 4; n++) run_world(n, NULL, 0, values_rank, NULL);
}

/* ---- byte counters ----------------------------------------------------------------- */

static void stats_rank(dsc_comm_t *c, int rank, int n, void *arg) {
    (void)arg;
    float a[64] = {0}, b[64];
    uint16_t h[64] = {0}, hb[64];
    TCHECK_OK(dsc_comm_allreduce(c, a, b, 8, DSC_F32, DSC_REDUCE_SUM));      /* S = 32 */
    TCHECK_OK(dsc_comm_allreduce(c, h, hb, 10, DSC_BF16, DSC_REDUCE_SUM));   /* S = 20 */
    TCHECK_OK(dsc_comm_reduce_scatter(c, a, b, 8, DSC_F32));                 /* S = n 32 */
    TCHECK_OK(dsc_comm_allgather(c, a, b, 8, DSC_F32));                      /* S = n 32 */
    TCHECK_OK(dsc_comm_broadcast(c, a, 8, DSC_F32, n - 1));                  /* S = 32 */
    TCHECK_OK(dsc_comm_barrier(c));
    const int64_t vcounts[4] = {3, 1, 4, 1}; /* reduce_scatter_v: S = 4 x (sum), sent = 4 x (sum - own) */
    int64_t vtotal = 0;
    for (int q = 0; q < n; q++) vtotal += vcounts[q];
    dsc_comm_stats_t s0 = dsc_comm_stats(c);
    TCHECK_OK(dsc_comm_reduce_scatter_v(c, a, b, vcounts, DSC_F32));
    dsc_comm_stats_t s1 = dsc_comm_stats(c);
    TCHECK_MSG(s1.total_sent_bytes - s0.total_sent_bytes == (n > 1 ? (uint64_t)(vtotal - vcounts[rank]) * 4 : 0),
               "n %d rank %d reduce_scatter_v sent %llu", n, rank,
               (unsigned long long)(s1.total_sent_bytes - s0.total_sent_bytes));
    TCHECK(s1.payload_bytes[DSC_COMM_REDUCE_SCATTER_V] == (uint64_t)vtotal * 4);
    dsc_comm_reset_stats(c);
    TCHECK(dsc_comm_stats(c).lifetime_sent_bytes == s1.lifetime_sent_bytes); /* a reset keeps the lifetime count */
    TCHECK_OK(dsc_comm_allreduce(c, a, b, 8, DSC_F32, DSC_REDUCE_SUM));      /* S = 32 */
    TCHECK_OK(dsc_comm_allreduce(c, h, hb, 10, DSC_BF16, DSC_REDUCE_SUM));   /* S = 20 */
    TCHECK_OK(dsc_comm_reduce_scatter(c, a, b, 8, DSC_F32));                 /* S = n 32 */
    TCHECK_OK(dsc_comm_allgather(c, a, b, 8, DSC_F32));                      /* S = n 32 */
    TCHECK_OK(dsc_comm_broadcast(c, a, 8, DSC_F32, n - 1));                  /* S = 32 */
    TCHECK_OK(dsc_comm_barrier(c));
    dsc_comm_stats_t s = dsc_comm_stats(c);
    /* Hand values for n = 1, 2, 4 (ring convention, docs/comm.md). */
    uint64_t ar = n == 1 ? 0 : n == 2 ? 32 + 20 : 48 + 30; /* 2(n-1)/n x 32 + 2(n-1)/n x 20 */
    uint64_t rs = n == 1 ? 0 : n == 2 ? 32 : 96;           /* (n-1) x 8 x 4 */
    uint64_t bc = (n > 1 && rank == n - 1) ? 32 : 0;
    TCHECK_MSG(s.sent_bytes[DSC_COMM_ALLREDUCE] == ar, "n %d allreduce sent %llu want %llu", n,
               (unsigned long long)s.sent_bytes[DSC_COMM_ALLREDUCE], (unsigned long long)ar);
    TCHECK(s.sent_bytes[DSC_COMM_REDUCE_SCATTER] == rs);
    TCHECK(s.sent_bytes[DSC_COMM_ALLGATHER] == rs);
    TCHECK(s.sent_bytes[DSC_COMM_BROADCAST] == bc);
    TCHECK(s.sent_bytes[DSC_COMM_BARRIER] == 0);
    TCHECK(s.total_sent_bytes == ar + 2 * rs + bc);
    TCHECK(s.calls[DSC_COMM_ALLREDUCE] == 2 && s.calls[DSC_COMM_BARRIER] == 1 && s.calls[DSC_COMM_ALLGATHER] == 1);
    TCHECK(s.payload_bytes[DSC_COMM_ALLREDUCE] == 52);
    TCHECK(s.payload_bytes[DSC_COMM_REDUCE_SCATTER] == (uint64_t)n * 32);
    TCHECK(s.payload_bytes[DSC_COMM_BROADCAST] == 32);
    dsc_comm_reset_stats(c);
    s = dsc_comm_stats(c);
    TCHECK(s.total_sent_bytes == 0 && s.calls[DSC_COMM_ALLREDUCE] == 0);
    /* The debug check's descriptor exchange is not counted. */
    dsc_comm_set_debug_check(c, true);
    TCHECK_OK(dsc_comm_barrier(c));
    s = dsc_comm_stats(c);
    TCHECK(s.total_sent_bytes == 0 && s.calls[DSC_COMM_BARRIER] == 1 && s.calls[DSC_COMM_ALLGATHER] == 0);
}

static void test_stats(void) {
    run_world(1, NULL, 0, stats_rank, NULL);
    run_world(2, NULL, 0, stats_rank, NULL);
    run_world(4, NULL, 0, stats_rank, NULL);
}

/* ---- non-blocking ------------------------------------------------------------------ */

static void nonblocking_rank(dsc_comm_t *c, int rank, int n, void *arg) {
    (void)arg;
    enum { N = 1000 };
    float *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y), *g = malloc((size_t)n * N * sizeof *g);
    double *bc = malloc(N * sizeof *bc);
    for (int i = 0; i < N; i++) {
        x[i] = (float)(rank + 1 + i);
        bc[i] = rank == 0 ? 0.5 * i : -1;
    }
    dsc_comm_request_t *req[4] = {NULL, NULL, NULL, NULL};
    uint64_t s0 = dsc_comm_seq(c);
    TCHECK_OK(dsc_comm_iallreduce(c, x, y, N, DSC_F32, DSC_REDUCE_SUM, &req[0]));
    TCHECK_OK(dsc_comm_iallgather(c, x, g, N, DSC_F32, &req[1]));
    TCHECK_OK(dsc_comm_ibroadcast(c, bc, N, DSC_F64, 0, &req[2]));
    TCHECK_OK(dsc_comm_ibarrier(c, &req[3]));
    for (int k = 0; k < 4; k++) TCHECK(dsc_comm_request_seq(req[k]) == s0 + 1 + (uint64_t)k);
    TCHECK(dsc_comm_seq(c) == s0 + 4);
    /* Overlapped "compute" while the collectives are in flight. */
    volatile double acc = 0;
    for (int i = 0; i < 100000; i++) acc += sqrt((double)i);
    (void)acc;
    /* Poll the last one until done, then wait in an order that differs across ranks. */
    bool done = false;
    double t0 = now_s();
    while (!done && now_s() - t0 < 60) {
        TCHECK_OK(dsc_comm_test(req[3], &done));
        if (!done) usleep(100);
    }
    TCHECK(done);
    if (rank % 2) {
        for (int k = 3; k >= 0; k--) TCHECK_OK(dsc_comm_wait(req[k]));
    } else {
        TCHECK_OK(dsc_comm_wait_all(req, 4));
    }
    double tri = n * (n + 1) / 2.0;
    EXPECT_VALUES("iallreduce", y, DSC_F32, (size_t)N, tri + n * (double)i);
    EXPECT_VALUES("iallgather", g, DSC_F32, (size_t)n * N, (double)(i / N) + 1 + (double)(i % N));
    EXPECT_VALUES("ibroadcast", bc, DSC_F64, (size_t)N, 0.5 * (double)i);
    TCHECK_OK(dsc_comm_wait(NULL));
    free(x);
    free(y);
    free(g);
    free(bc);
}

static void test_nonblocking(void) {
    for (int n = 1; n <= 4; n++) run_world(n, NULL, 0, nonblocking_rank, NULL);
}

/* ---- debug check ------------------------------------------------------------------- */

static void divergence_rank(dsc_comm_t *c, int rank, int n, void *arg) {
    (void)n;
    (void)arg;
    TCHECK(dsc_comm_debug_check(c)); /* from DSC_COMM_DEBUG=1 */
    float *x = calloc(3 * 1024, sizeof *x), *y = calloc(3 * 1024, sizeof *y);
    for (int k = 0; k < 16; k++) TCHECK_OK(dsc_comm_allreduce(c, x, y, 1024, DSC_F32, DSC_REDUCE_SUM));
    /* Collective #17: rank 1 takes another code path. */
    if (rank == 1) dsc_comm_set_tag(c, "eval hook");
    dsc_status_t st = rank == 1 ? dsc_comm_allgather(c, x, y, 1024, DSC_F32)
                                : dsc_comm_allreduce(c, x, y, 1024, DSC_F32, DSC_REDUCE_SUM);
    dsc_comm_set_tag(c, NULL);
    TCHECK_MSG(st == DSC_ERR_COMM, "rank %d got %s", rank, dsc_status_string(st));
    const char *m = dsc_comm_errmsg(c);
    TCHECK_MSG(strstr(m, "collective #17: rank 1 called allgather(1024 f32) at \"eval hook\" but rank 0 called "
                         "allreduce(1024 f32 sum)") != NULL,
               "rank %d message: %s", rank, m);
    TCHECK(!dsc_comm_aborted(c));
    /* Nothing was issued: the ranks are still in step. */
    TCHECK_OK(dsc_comm_barrier(c));
    TCHECK(dsc_comm_seq(c) == 18);
    /* A difference in count only (rank 2 of 3). */
    st = dsc_comm_broadcast(c, x, rank == 2 ? 512 : 1024, DSC_F32, 0);
    TCHECK(st == DSC_ERR_COMM);
    TCHECK_MSG(strstr(dsc_comm_errmsg(c), "collective #19: rank 2 called broadcast(512 f32 root 0) but rank 0 called "
                                          "broadcast(1024 f32 root 0)") != NULL,
               "rank %d message: %s", rank, dsc_comm_errmsg(c));
    /* With the check off, the fake backend still refuses a mismatch (MPI would not). */
    dsc_comm_set_debug_check(c, false);
    st = dsc_comm_allreduce(c, x, y, rank == 0 ? 8 : 16, DSC_F32, DSC_REDUCE_SUM);
    TCHECK(st == DSC_ERR_COMM);
    TCHECK_MSG(strstr(dsc_comm_errmsg(c), "ranks disagree on collective #20") != NULL, "%s", dsc_comm_errmsg(c));
    free(x);
    free(y);
}

static void test_debug_divergence(void) {
    setenv("DSC_COMM_DEBUG", "1", 1);
    run_world(3, NULL, 0, divergence_rank, NULL);
    unsetenv("DSC_COMM_DEBUG");
}

/* ---- delays, failures, stopped ranks ----------------------------------------------- */

static void delay_rank(dsc_comm_t *c, int rank, int n, void *arg) {
    (void)arg;
    TCHECK_OK(dsc_comm_set_timeout(c, 30.0)); /* far above the 0.3 s delay, even on a busy machine */
    double x[4], y[4];
    double t0 = now_s();
    for (int k = 1; k <= 3; k++) {
        for (int i = 0; i < 4; i++) x[i] = k * (rank + 1);
        TCHECK_OK(dsc_comm_allreduce(c, x, y, 4, DSC_F64, DSC_REDUCE_SUM));
        EXPECT_VALUES("delayed allreduce", y, DSC_F64, (size_t)4, k * n * (n + 1) / 2.0);
    }
    double dt = now_s() - t0;
    TCHECK_MSG(dt >= 0.3 && dt < 30.0, "rank %d: three collectives with a 0.3 s delay took %.3f s", rank, dt);
}

static void test_delay_within_timeout(void) {
    dsc_comm_fault_t f = {DSC_COMM_FAULT_DELAY, 1, 2, 0.3};
    run_world(3, &f, 1, delay_rank, NULL);
}

static void fail_rank(dsc_comm_t *c, int rank, int n, void *arg) {
    (void)n;
    (void)arg;
    float x[4] = {1, 2, 3, 4}, y[4];
    dsc_status_t st = dsc_comm_allreduce(c, x, y, 4, DSC_F32, DSC_REDUCE_SUM);
    TCHECK(st == DSC_ERR_COMM);
    TCHECK_MSG(strstr(dsc_comm_errmsg(c), "collective #1 allreduce(4 f32 sum) failed: injected fault on rank 0"),
               "rank %d: %s", rank, dsc_comm_errmsg(c));
    TCHECK_OK(dsc_comm_allreduce(c, x, y, 4, DSC_F32, DSC_REDUCE_SUM));
    TCHECK(y[3] == 4.0f * n);
}

static void test_fail(void) {
    dsc_comm_fault_t f = {DSC_COMM_FAULT_FAIL, 0, 1, 0};
    run_world(2, &f, 1, fail_rank, NULL);
}

typedef struct stop_case {
    bool skip_in_code; /* rank 2 returns instead of calling #2 (no fault injection) */
    bool nonblocking;
    bool debug;
} stop_case_t;

static void stop_rank(dsc_comm_t *c, int rank, int n, void *arg) {
    (void)n;
    const stop_case_t *sc = arg;
    TCHECK_OK(dsc_comm_set_timeout(c, 1.0));
    dsc_comm_set_debug_check(c, sc->debug);
    float x[64] = {0}, y[64];
    TCHECK_OK(dsc_comm_allreduce(c, x, y, 64, DSC_F32, DSC_REDUCE_SUM)); /* #1 */
    if (rank == 2 && sc->skip_in_code) return;
    double t0 = now_s();
    dsc_status_t st;
    if (sc->nonblocking) {
        dsc_comm_request_t *r = NULL;
        st = dsc_comm_iallgather(c, x, y, 16, DSC_F32, &r);
        if (st == DSC_OK) st = dsc_comm_wait(r);
    } else {
        st = dsc_comm_allgather(c, x, y, 16, DSC_F32);
    }
    double dt = now_s() - t0;
    const char *m = dsc_comm_errmsg(c);
    if (rank == 2) {
        TCHECK(st == DSC_ERR_COMM);
        TCHECK_MSG(strstr(m, "rank 2 stopped participating at collective #2 allgather(16 f32)"), "%s", m);
        return;
    }
    TCHECK_MSG(st == DSC_ERR_TIMEOUT, "rank %d got %s: %s", rank, dsc_status_string(st), m);
    /* Not before the 1 s timeout; the upper bound only guards against a hang (a busy machine is slow). */
    TCHECK_MSG(dt >= 0.95 && dt < 30.0, "rank %d timed out after %.3f s (timeout 1 s)", rank, dt);
    TCHECK_MSG(strstr(m, "collective #2 allgather(16 f32) timed out after") != NULL, "rank %d: %s", rank, m);
    TCHECK_MSG(strstr(m, "ranks that never arrived: rank 2 (last issued #1 allreduce(64 f32 sum)") != NULL,
               "rank %d: %s", rank, m);
    TCHECK_MSG(strstr(m, "arrived: ranks 0,1") != NULL, "rank %d: %s", rank, m);
    if (!sc->skip_in_code) TCHECK_MSG(strstr(m, "stopped participating (fault injection)") != NULL, "%s", m);
    if (sc->debug) TCHECK_MSG(strstr(m, "(in its debug check)") != NULL, "%s", m);
    TCHECK(dsc_comm_aborted(c));
    /* The communicator is unusable afterwards. */
    TCHECK(dsc_comm_barrier(c) == DSC_ERR_COMM);
    TCHECK(strstr(dsc_comm_errmsg(c), "aborted") != NULL);
}

static void test_stopped_rank(void) {
    dsc_comm_fault_t f = {DSC_COMM_FAULT_STOP, 2, 2, 0};
    stop_case_t cases[] = {{false, false, false}, {false, true, false}, {true, false, false}, {false, false, true}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        double t0 = now_s();
        run_world(3, cases[i].skip_in_code ? NULL : &f, cases[i].skip_in_code ? 0 : 1, stop_rank, &cases[i]);
        CHECK_MSG(now_s() - t0 < 60.0, "stopped-rank case %zu took %.3f s", i, now_s() - t0);
    }
}

/* A rank delayed beyond the timeout: the others time out naming it as delayed; when it
 * finally arrives it finds the collective abandoned, and nothing writes freed memory. */
static void late_rank(dsc_comm_t *c, int rank, int n, void *arg) {
    (void)n;
    (void)arg;
    TCHECK_OK(dsc_comm_set_timeout(c, 0.5));
    float *x = calloc(256, sizeof *x), *y = calloc(256, sizeof *y);
    dsc_status_t st = dsc_comm_allreduce(c, x, y, 256, DSC_F32, DSC_REDUCE_SUM);
    free(x);
    free(y);
    if (rank == 1) {
        TCHECK_MSG(st == DSC_ERR_COMM || st == DSC_ERR_TIMEOUT, "late rank got %s", dsc_status_string(st));
    } else {
        TCHECK(st == DSC_ERR_TIMEOUT);
        TCHECK_MSG(strstr(dsc_comm_errmsg(c), "rank 1 (has issued no collective yet; sleeping in an injected "
                                              "delay)") != NULL ||
                       strstr(dsc_comm_errmsg(c), "sleeping in an injected delay") != NULL,
                   "%s", dsc_comm_errmsg(c));
    }
}

static void test_late_rank(void) {
    dsc_comm_fault_t f = {DSC_COMM_FAULT_DELAY, 1, 1, 1.2};
    run_world(2, &f, 1, late_rank, NULL);
}

/* ---- argument errors, self backend, world management ------------------------------- */

static void test_self_and_errors(void) {
    dsc_ctx_t *ctx = check_ctx_new(1);
    dsc_comm_t *c = NULL;
    CHECK_OK(dsc_comm_new_self(ctx, &c));
    CHECK(dsc_comm_world_size(c) == 1 && dsc_comm_rank(c) == 0 && !strcmp(dsc_comm_backend_name(c), "self"));
    CHECK(dsc_comm_timeout(c) == DSC_COMM_DEFAULT_TIMEOUT_S);
    float a[8] = {1, 2, 3, 4, 5, 6, 7, 8}, b[8] = {0};
    CHECK_OK(dsc_comm_allreduce(c, a, b, 8, DSC_F32, DSC_REDUCE_SUM));
    CHECK(b[7] == 8);
    uint16_t h[4] = {dsc_f32_to_bf16(1.5f), dsc_f32_to_bf16(-2), 0, 0}, hb[4];
    CHECK_OK(dsc_comm_allreduce(c, h, hb, 2, DSC_BF16, DSC_REDUCE_MAX));
    CHECK(dsc_bf16_to_f32(hb[1]) == -2.0f);
    CHECK_OK(dsc_comm_reduce_scatter(c, a, b, 4, DSC_F32));
    CHECK(b[3] == 4);
    CHECK_OK(dsc_comm_allgather(c, a, a, 8, DSC_F32)); /* in place: send == recv + 0 */
    CHECK_OK(dsc_comm_broadcast(c, a, 8, DSC_F32, 0));
    CHECK_OK(dsc_comm_barrier(c));
    dsc_comm_request_t *r = NULL;
    CHECK_OK(dsc_comm_iallreduce(c, a, b, 8, DSC_F32, DSC_REDUCE_SUM, &r));
    bool done = false;
    CHECK_OK(dsc_comm_test(r, &done));
    CHECK(done);
    CHECK_OK(dsc_comm_wait(r));
    CHECK(dsc_comm_seq(c) == 7);
    CHECK(dsc_comm_stats(c).total_sent_bytes == 0 && dsc_comm_stats(c).calls[DSC_COMM_ALLREDUCE] == 3);

    /* Invalid arguments: nothing is issued, the sequence does not advance. */
    CHECK(dsc_comm_allreduce(c, NULL, b, 8, DSC_F32, DSC_REDUCE_SUM) == DSC_ERR_INVALID);
    CHECK(strstr(dsc_comm_errmsg(c), "NULL buffer") != NULL);
    CHECK(dsc_comm_allreduce(c, a, a + 1, 4, DSC_F32, DSC_REDUCE_SUM) == DSC_ERR_INVALID);
    CHECK(dsc_comm_allreduce(c, a, b, 4, DSC_F32, (dsc_reduce_op_t)7) == DSC_ERR_INVALID);
    CHECK(dsc_comm_allreduce(c, a, b, 4, (dsc_dtype_t)99, DSC_REDUCE_SUM) == DSC_ERR_INVALID);
    CHECK(dsc_comm_broadcast(c, a, 4, DSC_F32, 1) == DSC_ERR_INVALID);
    CHECK(strstr(dsc_comm_errmsg(c), "root 1 is not a rank of a world of 1") != NULL);
    CHECK(dsc_comm_reduce_scatter(c, a, a + 1, 4, DSC_F32) == DSC_ERR_INVALID);
    CHECK(dsc_comm_iallreduce(c, a, b, 4, DSC_F32, DSC_REDUCE_SUM, NULL) == DSC_ERR_INVALID);
    CHECK(dsc_comm_seq(c) == 7);
    CHECK(dsc_comm_set_timeout(c, 0) == DSC_ERR_INVALID);
    CHECK(dsc_comm_set_timeout(c, NAN) == DSC_ERR_INVALID);
    CHECK_OK(dsc_comm_set_timeout(c, 3.5));
    CHECK(dsc_comm_timeout(c) == 3.5);
    CHECK(dsc_ctx_status(ctx) == DSC_ERR_INVALID); /* the first error stays on the context */
    dsc_ctx_clear_error(ctx);

    dsc_comm_abort(c, 1);
    CHECK(dsc_comm_aborted(c));
    CHECK(dsc_comm_barrier(c) == DSC_ERR_COMM);
    dsc_comm_free(c);
    dsc_comm_free(NULL);
    CHECK(dsc_comm_new_self(NULL, &c) == DSC_ERR_INVALID);

    /* Fake world management. */
    dsc_comm_fake_world_t *w = NULL;
    CHECK(dsc_comm_fake_world_new(0, &w) == DSC_ERR_INVALID);
    CHECK_OK(dsc_comm_fake_world_new(2, &w));
    dsc_comm_fault_t bad = {DSC_COMM_FAULT_STOP, 5, 1, 0};
    CHECK(dsc_comm_fake_world_add_fault(w, &bad) == DSC_ERR_INVALID);
    bad.rank = 1;
    bad.seq = 0;
    CHECK(dsc_comm_fake_world_add_fault(w, &bad) == DSC_ERR_INVALID);
    dsc_comm_t *c0 = NULL, *c0b = NULL;
    CHECK(dsc_comm_new_fake(ctx, w, 2, &c0) == DSC_ERR_INVALID);
    CHECK_OK(dsc_comm_new_fake(ctx, w, 0, &c0));
    CHECK(dsc_comm_new_fake(ctx, w, 0, &c0b) == DSC_ERR_MISUSE);
    CHECK(c0b == NULL);
    dsc_comm_fake_world_free(w); /* the communicator keeps the world alive */
    CHECK(dsc_comm_world_size(c0) == 2);
    dsc_comm_free(c0);
    dsc_ctx_free(ctx);
}

int main(void) {
    double t0 = now_s();
    test_self_and_errors();
    test_values();
    test_stats();
    test_nonblocking();
    test_debug_divergence();
    test_delay_within_timeout();
    test_fail();
    test_stopped_rank();
    test_late_rank();
    fprintf(stderr, "test_comm_fake: %.2f s\n", now_s() - t0);
    return check_finish("test_comm_fake");
}

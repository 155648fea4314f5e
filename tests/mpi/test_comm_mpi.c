/* The MPI backend under mpirun (ctest runs it with -np 1, 2, 3, 4): rank, world and local
 * rank from the launcher, every collective and dtype against closed-form values (blocking,
 * in place, non-blocking, large buffers), byte counters, and the debug check's divergence
 * report. Each rank checks its own results; mpirun exits non-zero if any rank fails.
 * A 30 s communicator timeout turns any bug into an abort with a message, not a hang. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "comm_check.h"

static int rank, n;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void test_identity(dsc_comm_t *c) {
    CHECK(!strcmp(dsc_comm_backend_name(c), "mpi"));
    const char *ws = getenv("OMPI_COMM_WORLD_SIZE"), *wr = getenv("OMPI_COMM_WORLD_RANK");
    const char *lr = getenv("OMPI_COMM_WORLD_LOCAL_RANK"), *ls = getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
    if (ws) CHECK(dsc_comm_world_size(c) == atoi(ws));
    if (wr) CHECK(dsc_comm_rank(c) == atoi(wr));
    if (lr) CHECK(dsc_comm_local_rank(c) == atoi(lr));
    if (ls) CHECK(dsc_comm_local_size(c) == atoi(ls));
    CHECK(dsc_comm_local_rank(c) >= 0 && dsc_comm_local_rank(c) < dsc_comm_local_size(c));
}

static void test_values(dsc_comm_t *c) { comm_check_values(c, rank, n); }

/* Buffers large enough for MPI's segmented / ring algorithms. */
static void test_large(dsc_comm_t *c) {
    enum { BIG = 1 << 20 };
    float *x = malloc((size_t)BIG * sizeof *x), *y = malloc((size_t)BIG * sizeof *y);
    for (size_t i = 0; i < BIG; i++) x[i] = (float)(rank + 1 + (int)(i % 101));
    CHECK_OK(dsc_comm_allreduce(c, x, y, BIG, DSC_F32, DSC_REDUCE_SUM));
    EXPECT_VALUES("large allreduce", y, DSC_F32, (size_t)BIG, n * (n + 1) / 2.0 + n * (double)(i % 101));
    /* bf16 sum of n values of up to 64: exact. */
    uint16_t *h = malloc((size_t)BIG * sizeof *h), *hg = malloc((size_t)BIG * sizeof *hg);
    for (size_t i = 0; i < BIG; i++) h[i] = dsc_f32_to_bf16((float)(rank + (int)(i % 61)));
    CHECK_OK(dsc_comm_allreduce(c, h, hg, BIG, DSC_BF16, DSC_REDUCE_SUM));
    EXPECT_VALUES("large bf16 allreduce", hg, DSC_BF16, (size_t)BIG, n * (n - 1) / 2.0 + n * (double)(i % 61));
    size_t per = BIG / 4;
    for (size_t i = 0; i < per; i++) x[i] = (float)(rank * 1000 + (int)(i % 997));
    CHECK_OK(dsc_comm_allgather(c, x, y, per, DSC_F32));
    EXPECT_VALUES("large allgather", y, DSC_F32, per * (size_t)n, 1000.0 * (double)(i / per) + (double)(i % per % 997));
    free(x);
    free(y);
    free(h);
    free(hg);
}

static void test_nonblocking(dsc_comm_t *c) {
    enum { N = 4096 };
    float *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y), *g = malloc((size_t)n * N * sizeof *g);
    double *bc = malloc(N * sizeof *bc);
    uint16_t *rs_in = malloc((size_t)n * N * sizeof *rs_in), *rs_out = malloc(N * sizeof *rs_out);
    for (int i = 0; i < N; i++) {
        x[i] = (float)(rank + 1 + i % 200);
        bc[i] = rank == 0 ? 0.5 * i : -1;
    }
    for (size_t i = 0; i < (size_t)n * N; i++) rs_in[i] = dsc_f32_to_f16((float)(rank + (int)(i % 50)));
    dsc_comm_request_t *req[5] = {NULL};
    uint64_t s0 = dsc_comm_seq(c);
    CHECK_OK(dsc_comm_iallreduce(c, x, y, N, DSC_F32, DSC_REDUCE_SUM, &req[0]));
    CHECK_OK(dsc_comm_iallgather(c, x, g, N, DSC_F32, &req[1]));
    CHECK_OK(dsc_comm_ibroadcast(c, bc, N, DSC_F64, 0, &req[2]));
    CHECK_OK(dsc_comm_ireduce_scatter(c, rs_in, rs_out, N, DSC_F16, &req[3]));
    CHECK_OK(dsc_comm_ibarrier(c, &req[4]));
    for (int k = 0; k < 5; k++) CHECK(dsc_comm_request_seq(req[k]) == s0 + 1 + (uint64_t)k);
    volatile double acc = 0;
    for (int i = 0; i < 200000; i++) acc += sqrt((double)i);
    (void)acc;
    bool done = false;
    double t0 = now_s();
    while (!done && now_s() - t0 < 60) {
        CHECK_OK(dsc_comm_test(req[0], &done));
        if (!done) usleep(50);
    }
    CHECK(done);
    if (rank % 2)
        for (int k = 4; k >= 0; k--) CHECK_OK(dsc_comm_wait(req[k]));
    else
        CHECK_OK(dsc_comm_wait_all(req, 5));
    double tri = n * (n + 1) / 2.0;
    EXPECT_VALUES("iallreduce", y, DSC_F32, N, tri + n * (double)(i % 200));
    EXPECT_VALUES("iallgather", g, DSC_F32, (size_t)n * N, (double)(i / N) + 1 + (double)(i % N % 200));
    EXPECT_VALUES("ibroadcast", bc, DSC_F64, N, 0.5 * (double)i);
    EXPECT_VALUES("ireduce_scatter f16", rs_out, DSC_F16, N, n * (n - 1) / 2.0 + n * (double)((rank * N + i) % 50));
    free(x);
    free(y);
    free(g);
    free(bc);
    free(rs_in);
    free(rs_out);
}

static void test_stats(dsc_comm_t *c) {
    dsc_comm_reset_stats(c);
    float a[64] = {0}, b[64 * 4];
    uint16_t h[16] = {0}, hb[16];
    CHECK_OK(dsc_comm_allreduce(c, a, b, 8, DSC_F32, DSC_REDUCE_SUM));    /* S = 32 */
    CHECK_OK(dsc_comm_allreduce(c, h, hb, 10, DSC_BF16, DSC_REDUCE_SUM)); /* S = 20 */
    CHECK_OK(dsc_comm_reduce_scatter(c, a, b, 8, DSC_F32));               /* S = 32 n */
    CHECK_OK(dsc_comm_allgather(c, a, b, 8, DSC_F32));                    /* S = 32 n */
    CHECK_OK(dsc_comm_broadcast(c, a, 8, DSC_F32, n - 1));                /* S = 32 */
    CHECK_OK(dsc_comm_barrier(c));
    dsc_comm_stats_t s = dsc_comm_stats(c);
    /* floor(2(n-1)/n x 32) + floor(2(n-1)/n x 20) for n = 1..4. */
    static const uint64_t ar[5] = {0, 0, 32 + 20, 42 + 26, 48 + 30};
    static const uint64_t rs[5] = {0, 0, 32, 64, 96}; /* (n-1) x 8 x 4 */
    uint64_t bc = (n > 1 && rank == n - 1) ? 32 : 0;
    CHECK_MSG(s.sent_bytes[DSC_COMM_ALLREDUCE] == ar[n], "allreduce sent %llu want %llu",
              (unsigned long long)s.sent_bytes[DSC_COMM_ALLREDUCE], (unsigned long long)ar[n]);
    CHECK(s.sent_bytes[DSC_COMM_REDUCE_SCATTER] == rs[n]);
    CHECK(s.sent_bytes[DSC_COMM_ALLGATHER] == rs[n]);
    CHECK(s.sent_bytes[DSC_COMM_BROADCAST] == bc);
    CHECK(s.total_sent_bytes == ar[n] + 2 * rs[n] + bc);
    CHECK(s.payload_bytes[DSC_COMM_ALLGATHER] == 32u * (uint64_t)n);
    CHECK(s.calls[DSC_COMM_ALLREDUCE] == 2 && s.calls[DSC_COMM_BARRIER] == 1);
}

static void test_debug_check(dsc_comm_t *c) {
    if (n < 2) return;
    dsc_comm_set_debug_check(c, true);
    float x[1024] = {0}, y[1024 * 4];
    CHECK_OK(dsc_comm_allreduce(c, x, y, 1024, DSC_F32, DSC_REDUCE_SUM));
    uint64_t s = dsc_comm_seq(c) + 1;
    int odd = n - 1;
    dsc_status_t st = rank == odd ? dsc_comm_allgather(c, x, y, 1024, DSC_F32)
                                  : dsc_comm_allreduce(c, x, y, 1024, DSC_F32, DSC_REDUCE_SUM);
    CHECK(st == DSC_ERR_COMM);
    char want[200];
    snprintf(want, sizeof want,
             "collective #%llu: rank %d called allgather(1024 f32) but rank 0 called allreduce(1024 f32 sum)",
             (unsigned long long)s, odd);
    CHECK_MSG(strstr(dsc_comm_errmsg(c), want) != NULL, "rank %d: got \"%s\", want \"%s\"", rank,
              dsc_comm_errmsg(c), want);
    CHECK_OK(dsc_comm_barrier(c)); /* still in step */
    dsc_comm_set_debug_check(c, false);
}

int main(void) {
    double t0 = now_s();
    dsc_ctx_t *ctx = check_ctx_new(1);
    dsc_comm_t *c = NULL;
    CHECK_OK(dsc_comm_new_mpi(ctx, &c));
    if (!c) {
        fprintf(stderr, "dsc_comm_new_mpi failed: %s\n", dsc_ctx_errmsg(ctx));
        dsc_ctx_free(ctx);
        return 1;
    }
    rank = dsc_comm_rank(c);
    n = dsc_comm_world_size(c);
    CHECK_OK(dsc_comm_set_timeout(c, 30));
    test_identity(c);
    test_values(c);
    test_large(c);
    test_nonblocking(c);
    test_stats(c);
    test_debug_check(c);
    CHECK(dsc_ctx_mem_stats(ctx, DSC_MEM_COMM).live_bytes == 0);
    CHECK(dsc_ctx_mem_stats(ctx, DSC_MEM_COMM).peak_bytes > 0); /* 16-bit reductions widened to f32 */
    dsc_comm_free(c);
    dsc_ctx_free(ctx);
    char name[64];
    snprintf(name, sizeof name, "test_comm_mpi rank %d of %d (%.2f s)", rank, n, now_s() - t0);
    return check_finish(name);
}

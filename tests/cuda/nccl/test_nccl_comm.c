/* Every collective of the communicator on GPU buffers, against sums computed by hand: run
 * by itself (world of one rank) and under mpirun (one GPU per rank for NCCL; the MPI
 * backend, DSC_COMM=mpi, also with every rank on one GPU). Rank r contributes
 * v(r, i) = (r + 1) * (i % 7 + 1) + r / 4 to element i: small multiples of 1/4, so every
 * sum over up to 4 ranks is exact in f32 and in bf16 and each result is checked for
 * equality. Also: in-place forms, uneven reduce-scatter slices (one rank owning none),
 * host buffers, non-blocking requests in flight together, the byte counters, and (with
 * DSC_COMM_DEBUG=1) the debug check's report of ranks that diverge. Skips
 * (exit 77, with the reason) without a GPU or without NCCL. DSC_COMM defaults to nccl. */
#include <math.h>
#include <unistd.h>

#include "check.h"
#include "core/device.h"
#include "nccl_test_env.h"

static dsc_ctx_t *ctx;
static dsc_comm_t *comm;
static int R, W;

static double v(int r, size_t i) { return (r + 1) * (double)(i % 7 + 1) + 0.25 * r; }
static double sum_v(size_t i) {
    double s = 0;
    for (int r = 0; r < W; r++) s += v(r, i);
    return s;
}
static double max_v(size_t i) { return v(W - 1, i); }
/* What receive buffers hold before a collective: never a right answer. */
static double poison(int r, size_t i) { return -64.0 - (double)(i % 5) - r; }

/* A device buffer of n elements of dt holding f(i) (host values converted). */
static void *dev_put(dsc_dtype_t dt, size_t n, double (*f)(int, size_t), int r, size_t i0) {
    size_t es = dsc_dtype_size(dt);
    void *d = dsc__dev_alloc_raw(ctx, n * es + 64);
    float *h = malloc((n + 1) * sizeof(float));
    int32_t *hi = malloc((n + 1) * sizeof(int32_t));
    void *conv = malloc(n * es + 64);
    for (size_t i = 0; i < n; i++) {
        h[i] = (float)f(r, i0 + i);
        hi[i] = (int32_t)(4 * f(r, i0 + i)); /* i32: the values times 4, integers */
    }
    if (dt == DSC_I32) memcpy(conv, hi, n * es);
    else dsc_convert(conv, dt, h, DSC_F32, n);
    dsc__dev_from_host(ctx, d, conv, n * es);
    free(h), free(hi), free(conv);
    return d;
}

/* The device buffer as doubles (i32 divided by 4 back). */
static double *dev_get(const void *d, dsc_dtype_t dt, size_t n) {
    size_t es = dsc_dtype_size(dt);
    void *raw = malloc(n * es + 64);
    float *h = malloc((n + 1) * sizeof(float));
    double *out = malloc((n + 1) * sizeof(double));
    dsc__dev_to_host(ctx, raw, d, n * es);
    if (dt == DSC_I32) {
        for (size_t i = 0; i < n; i++) out[i] = ((int32_t *)raw)[i] / 4.0;
    } else {
        dsc_convert(h, DSC_F32, raw, dt, n);
        for (size_t i = 0; i < n; i++) out[i] = h[i];
    }
    free(raw), free(h);
    return out;
}

static void expect(const char *what, const void *d, dsc_dtype_t dt, size_t n, double (*want)(size_t), size_t i0) {
    double *got = dev_get(d, dt, n);
    size_t bad = 0, first = 0;
    for (size_t i = 0; i < n; i++)
        if (got[i] != want(i0 + i) && bad++ == 0) first = i;
    CHECK_MSG(bad == 0, "rank %d, %s %s: %zu of %zu wrong, first [%zu] = %g, want %g", R, what, dsc_dtype_name(dt),
              bad, n, bad ? first : 0, bad ? got[first] : 0.0, bad ? want(i0 + first) : 0.0);
    free(got);
}

static size_t g_rank_of; /* rank whose values expect_rank wants */
static double want_rank(size_t i) { return v((int)g_rank_of, i); }

static void t_allreduce(dsc_dtype_t dt) {
    const size_t n = 1003;
    void *s = dev_put(dt, n, v, R, 0), *r = dev_put(dt, n, poison, 0, 0);
    CHECK_OK(dsc_comm_allreduce(comm, s, r, n, dt, DSC_REDUCE_SUM));
    expect("allreduce sum", r, dt, n, sum_v, 0);
    expect("allreduce leaves send", s, dt, n, (g_rank_of = (size_t)R, want_rank), 0);
    CHECK_OK(dsc_comm_allreduce(comm, s, s, n, dt, DSC_REDUCE_SUM));
    expect("allreduce sum in place", s, dt, n, sum_v, 0);
    if (dt != DSC_I32) {
        void *m = dev_put(dt, n, v, R, 0);
        CHECK_OK(dsc_comm_allreduce(comm, m, m, n, dt, DSC_REDUCE_MAX));
        expect("allreduce max in place", m, dt, n, max_v, 0);
        dsc__dev_free_raw(ctx, m, n * dsc_dtype_size(dt) + 64);
    }
    dsc__dev_free_raw(ctx, s, n * dsc_dtype_size(dt) + 64);
    dsc__dev_free_raw(ctx, r, n * dsc_dtype_size(dt) + 64);
}

static void t_reduce_scatter(dsc_dtype_t dt) {
    const size_t k = 37, es = dsc_dtype_size(dt);
    void *s = dev_put(dt, k * (size_t)W, v, R, 0), *r = dev_put(dt, k, poison, 0, 0);
    CHECK_OK(dsc_comm_reduce_scatter(comm, s, r, k, dt));
    expect("reduce_scatter", r, dt, k, sum_v, (size_t)R * k);
    CHECK_OK(dsc_comm_reduce_scatter(comm, s, (char *)s + (size_t)R * k * es, k, dt));
    expect("reduce_scatter in place", (char *)s + (size_t)R * k * es, dt, k, sum_v, (size_t)R * k);
    dsc__dev_free_raw(ctx, s, k * (size_t)W * es + 64);
    dsc__dev_free_raw(ctx, r, k * es + 64);
}

static size_t v_offset(const int64_t *counts, int q) {
    size_t off = 0;
    for (int p = 0; p < q; p++) off += (size_t)counts[p];
    return off;
}

/* Uneven slices: rank q owns q + 2 elements, rank 1 none (when there are two ranks or more). */
static void t_reduce_scatter_v(dsc_dtype_t dt) {
    int64_t counts[8], total = 0;
    for (int q = 0; q < W; q++) total += counts[q] = (W > 1 && q == 1) ? 0 : q + 2;
    const size_t es = dsc_dtype_size(dt), off = v_offset(counts, R), mine = (size_t)counts[R];
    void *s = dev_put(dt, (size_t)total, v, R, 0), *r = dev_put(dt, mine + 1, poison, 0, 0);
    CHECK_OK(dsc_comm_reduce_scatter_v(comm, s, r, counts, dt));
    expect("reduce_scatter_v", r, dt, mine, sum_v, off);
    CHECK_OK(dsc_comm_reduce_scatter_v(comm, s, (char *)s + off * es, counts, dt));
    expect("reduce_scatter_v in place", (char *)s + off * es, dt, mine, sum_v, off);
    dsc__dev_free_raw(ctx, s, (size_t)total * es + 64);
    dsc__dev_free_raw(ctx, r, (mine + 1) * es + 64);
}

static double gathered(size_t i) { return v((int)(i / 41), i % 41); } /* rank i / k's element i % k */

static void t_allgather(dsc_dtype_t dt) {
    const size_t k = 41, es = dsc_dtype_size(dt);
    void *s = dev_put(dt, k, v, R, 0), *r = dev_put(dt, k * (size_t)W, poison, 0, 0);
    CHECK_OK(dsc_comm_allgather(comm, s, r, k, dt));
    expect("allgather", r, dt, k * (size_t)W, gathered, 0);
    void *in = dev_put(dt, k * (size_t)W, poison, 0, 0);
    dsc__dev_copy(ctx, (char *)in + (size_t)R * k * es, s, k * es);
    CHECK_OK(dsc_comm_allgather(comm, (char *)in + (size_t)R * k * es, in, k, dt));
    expect("allgather in place", in, dt, k * (size_t)W, gathered, 0);
    dsc__dev_free_raw(ctx, s, k * es + 64);
    dsc__dev_free_raw(ctx, r, k * (size_t)W * es + 64);
    dsc__dev_free_raw(ctx, in, k * (size_t)W * es + 64);
}

static void t_broadcast(dsc_dtype_t dt) {
    const size_t n = 300;
    void *b = dev_put(dt, n, v, R, 0);
    CHECK_OK(dsc_comm_broadcast(comm, b, n, dt, W - 1));
    g_rank_of = (size_t)(W - 1);
    expect("broadcast from the last rank", b, dt, n, want_rank, 0);
    dsc__dev_free_raw(ctx, b, n * dsc_dtype_size(dt) + 64);
}

/* Host buffers (the ZeRO norm pair, checkpoint records) are staged by the backend. */
static void t_host(void) {
    double s[5], r[5];
    for (int i = 0; i < 5; i++) s[i] = v(R, (size_t)i);
    CHECK_OK(dsc_comm_allreduce(comm, s, r, 5, DSC_F64, DSC_REDUCE_SUM));
    for (int i = 0; i < 5; i++) CHECK_MSG(r[i] == sum_v((size_t)i), "rank %d, host allreduce [%d] = %g", R, i, r[i]);
    CHECK_OK(dsc_comm_allreduce(comm, s, s, 5, DSC_F64, DSC_REDUCE_MAX));
    for (int i = 0; i < 5; i++) CHECK_MSG(s[i] == max_v((size_t)i), "rank %d, host allreduce max [%d] = %g", R, i, s[i]);
    float g[4 * 8];
    for (int q = 0; q < W; q++) g[q] = -1;
    float mine = (float)R + 0.5f;
    CHECK_OK(dsc_comm_allgather(comm, &mine, g, 1, DSC_F32));
    for (int q = 0; q < W; q++) CHECK_MSG(g[q] == (float)q + 0.5f, "rank %d, host allgather [%d] = %g", R, q, g[q]);
}

/* Three requests in flight at once, waited together; then the barrier. */
static void t_nonblocking(void) {
    const size_t n = 2000, k = 16;
    void *a = dev_put(DSC_F32, n, v, R, 0), *s = dev_put(DSC_BF16, k * (size_t)W, v, R, 0),
         *r = dev_put(DSC_BF16, k, poison, 0, 0), *g = dev_put(DSC_F32, k * (size_t)W, poison, 0, 0),
         *gs = dev_put(DSC_F32, 41, v, R, 0);
    dsc_comm_request_t *req[3] = {NULL, NULL, NULL};
    CHECK_OK(dsc_comm_iallreduce(comm, a, a, n, DSC_F32, DSC_REDUCE_SUM, &req[0]));
    CHECK_OK(dsc_comm_ireduce_scatter(comm, s, r, k, DSC_BF16, &req[1]));
    void *g41 = dev_put(DSC_F32, 41 * (size_t)W, poison, 0, 0);
    CHECK_OK(dsc_comm_iallgather(comm, gs, g41, 41, DSC_F32, &req[2]));
    CHECK_OK(dsc_comm_wait_all(req, 3));
    expect("iallreduce", a, DSC_F32, n, sum_v, 0);
    expect("ireduce_scatter", r, DSC_BF16, k, sum_v, (size_t)R * k);
    expect("iallgather", g41, DSC_F32, 41 * (size_t)W, gathered, 0);
    CHECK_OK(dsc_comm_barrier(comm));
    dsc_comm_request_t *b = NULL;
    CHECK_OK(dsc_comm_ibarrier(comm, &b));
    CHECK_OK(dsc_comm_wait(b));
    dsc__dev_free_raw(ctx, a, n * 4 + 64);
    dsc__dev_free_raw(ctx, s, k * (size_t)W * 2 + 64);
    dsc__dev_free_raw(ctx, r, k * 2 + 64);
    dsc__dev_free_raw(ctx, g, k * (size_t)W * 4 + 64);
    dsc__dev_free_raw(ctx, gs, 41 * 4 + 64);
    dsc__dev_free_raw(ctx, g41, 41 * (size_t)W * 4 + 64);
}

/* The ring-convention byte counters (dsc/comm.h) hold on every backend. */
static void t_bytes(void) {
    const size_t n = 1000;
    void *a = dev_put(DSC_BF16, n, v, R, 0);
    dsc_comm_reset_stats(comm);
    CHECK_OK(dsc_comm_allreduce(comm, a, a, n, DSC_BF16, DSC_REDUCE_SUM));
    const uint64_t want = W > 1 ? (uint64_t)(2 * (W - 1) * n * 2 / (size_t)W) : 0;
    CHECK_MSG(dsc_comm_stats(comm).total_sent_bytes == want, "rank %d: %llu bytes sent, want %llu", R,
              (unsigned long long)dsc_comm_stats(comm).total_sent_bytes, (unsigned long long)want);
    dsc__dev_free_raw(ctx, a, n * 2 + 64);
}

/* With DSC_COMM_DEBUG=1 (the debug check): ranks that call different collectives get
 * DSC_ERR_COMM naming the divergence on every rank, before any data moves (on NCCL the
 * descriptors travel over its MPI side channel). */
static void t_debug_check(void) {
    if (!dsc_comm_debug_check(comm) || W < 2) return;
    float *d = dev_put(DSC_F32, 8, v, R, 0);
    dsc_status_t st = R == 0 ? dsc_comm_allreduce(comm, d, d, 8, DSC_F32, DSC_REDUCE_SUM)
                             : dsc_comm_broadcast(comm, d, 8, DSC_F32, 0);
    CHECK_MSG(st == DSC_ERR_COMM && strstr(dsc_comm_errmsg(comm), "debug check") &&
                  strstr(dsc_comm_errmsg(comm), "rank 1 called broadcast(8 f32 root 0)"),
              "rank %d: divergent collectives gave %s: %s", R, dsc_status_string(st), dsc_comm_errmsg(comm));
    g_rank_of = (size_t)R;
    expect("buffer of a refused collective", d, DSC_F32, 8, want_rank, 0);
    dsc__dev_free_raw(ctx, d, 8 * 4 + 64);
    printf("rank %d: debug check on %s: %s\n", R, dsc_comm_backend_name(comm), dsc_comm_errmsg(comm));
}

/* `test_nccl timeout`: the last rank computes (sleeps 60 s) instead of joining collective
 * #3; the others must report it within the 3 s timeout, naming the collective, its size and
 * the rank that never arrived, and abort the job (tests/cmake/nccl.cmake checks the output).
 * Each collective's result is then read on the host. On MPI the blocking all-reduce itself
 * waits for #3 and times out; on NCCL its wait only orders later device work after it and
 * returns, and the host read of its result is what blocks (polling #3's end first, never
 * inside CUDA's wait) until the communicator's watchdog finds #3 past its deadline and
 * aborts NCCL; the read's check then reports it ("noticed by a host read of device memory")
 * and ends the job. `test_nccl timeout_free` (NCCL only): after #3's ordered wait the host
 * frees device memory instead of reading (cudaFree waits for the whole device, #3's kernels
 * included): the free's check reports #3 ("noticed by a free of device memory, which waits
 * for the whole device") and ends the job, rather than the host blocking inside cudaFree. */
int nccl_comm_timeout_main(bool free_instead);
int nccl_comm_timeout_main(bool free_instead) {
    int rc = nccl_test_setup(free_instead ? "test_nccl timeout_free" : "test_nccl timeout", "nccl", &ctx, &comm);
    if (rc) return rc;
    R = dsc_comm_rank(comm);
    W = dsc_comm_world_size(comm);
    if (W < 2) {
        printf("test_nccl timeout: skipped: needs 2 ranks or more\n");
        return 77;
    }
    dsc_comm_set_timeout(comm, 3);
    void *d = dev_put(DSC_F32, 1024, v, R, 0);
    void *spare = free_instead ? dsc__dev_alloc_raw(ctx, 1 << 20) : NULL;
    if (free_instead && !spare) {
        fprintf(stderr, "rank %d: no device memory to free: %s\n", R, dsc_ctx_errmsg(ctx));
        return 1;
    }
    double want = 0; /* element 0 after each in-place sum: sum of v(r, 0), times W per further sum */
    for (int r = 0; r < W; r++) want += v(r, 0);
    for (int i = 1; i <= 3; i++) {
        if (i == 3) {
            dsc_comm_set_tag(comm, "train step 3");
            if (R == W - 1) {
                sleep(60);
                fprintf(stderr, "UNEXPECTED: rank %d woke up inside the job\n", R);
            }
        }
        if (dsc_comm_allreduce(comm, d, d, 1024, DSC_F32, DSC_REDUCE_SUM) != DSC_OK) {
            fprintf(stderr, "rank %d: collective #%d failed: %s\n", R, i, dsc_comm_errmsg(comm));
            return 1;
        }
        if (i == 3 && free_instead) {
            fprintf(stderr, "rank %d: collective #3's wait returned on %s (ordered); freeing device memory\n", R,
                    dsc_comm_backend_name(comm));
            dsc__dev_free_raw(ctx, spare, 1 << 20); /* reports #3 and ends the job */
            fprintf(stderr, "UNEXPECTED: rank %d freed device memory behind collective #3: %s\n", R,
                    dsc_ctx_errmsg(ctx));
            return 1;
        }
        if (i == 3)
            fprintf(stderr, "rank %d: collective #3's wait returned on %s (ordered); reading its result on the host\n", R,
                    dsc_comm_backend_name(comm));
        float got = 0;
        if (dsc__dev_to_host(ctx, &got, d, sizeof got) != DSC_OK) {
            fprintf(stderr, "rank %d: reading collective #%d's result failed: %s\n", R, i, dsc_ctx_errmsg(ctx));
            return 1;
        }
        if (i == 3) break;
        if (got != (float)want) {
            fprintf(stderr, "rank %d: collective #%d gave %g, want %g\n", R, i, (double)got, want);
            return 1;
        }
        want *= W;
    }
    fprintf(stderr, "UNEXPECTED: rank %d read the result of collective #3\n", R);
    return 1;
}

int nccl_comm_main(void);
int nccl_comm_main(void) {
    int rc = nccl_test_setup("test_nccl_comm", "nccl", &ctx, &comm);
    if (rc) return rc;
    R = dsc_comm_rank(comm);
    W = dsc_comm_world_size(comm);
    if (W > 8) {
        printf("test_nccl_comm: at most 8 ranks\n");
        return 1;
    }
    const dsc_dtype_t dts[] = {DSC_F32, DSC_BF16, DSC_F16, DSC_I32};
    for (int d = 0; d < 4; d++) {
        t_allreduce(dts[d]);
        if (dts[d] == DSC_I32) continue;
        t_reduce_scatter(dts[d]);
        t_reduce_scatter_v(dts[d]);
        t_allgather(dts[d]);
        t_broadcast(dts[d]);
    }
    t_host();
    t_nonblocking();
    t_bytes();
    t_debug_check(); /* last: it leaves an error on the context */
    char name[96];
    snprintf(name, sizeof name, "test_nccl_comm (%s) rank %d/%d", dsc_comm_backend_name(comm), R, W);
    rc = check_finish(name);
    dsc_comm_free(comm);
    dsc_ctx_free(ctx);
    return rc;
}

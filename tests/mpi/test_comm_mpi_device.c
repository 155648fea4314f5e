/* The MPI backend on buffers in device memory (ctest runs it with -np 1..4): the
 * communicator's context is on the guarded test device, whose memory faults on any host
 * touch, so MPI (which reads host memory) only works if the backend stages each buffer
 * through its host bounce buffers. Checked against hand-derived values:
 *   - bf16 and f16 all-reduce (sum out of place and in place, max), reduce-scatter (out of
 *     place and in place) and reduce-scatter-v on device buffers: rank r sends r + 1 + i,
 *     so element i sums to n(n+1)/2 + n i;
 *   - the sum is taken in f32 and rounded once: rank 0 sends 256 (bf16) or 2048 (f16),
 *     the others 1, where both formats step by 2; the exact sums 256 + (n - 1) round to
 *     even: 256, 256, 258, 260 for n = 1..4 (2048, 2048, 2050, 2052 for f16). Summing in
 *     the 16-bit format rank by rank would give 256 (2048) for every n;
 *   - f32 all-gather in place and broadcast from the last rank;
 *   - buffers of a second guarded context (the communicator's context does not own them);
 *   - host buffers go to MPI as they are: DSC_MEM_COMM stays 0 for an f32 all-reduce of host
 *     memory, and the bounce buffers are reused: a second identical round grows nothing;
 *     dsc_comm_free returns them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "dsc/comm.h"

enum { COUNT = 37, PER = 9 };

static int rank, n;

static dsc_ctx_t *guarded_ctx(void) {
    dsc_ctx_options_t o = DSC_CTX_OPTIONS_INIT;
    o.device = "guarded";
    dsc_ctx_t *ctx = NULL;
    if (dsc_ctx_new(&o, &ctx) != DSC_OK) {
        fprintf(stderr, "cannot create a guarded context\n");
        exit(2);
    }
    return ctx;
}

/* Host values (as doubles) converted to dt and written to device buffer dev at element off. */
static void put(dsc_ctx_t *ctx, void *dev, dsc_dtype_t dt, size_t off, const double *v, size_t count) {
    const size_t es = dsc_dtype_size(dt);
    void *h = malloc(count * es + 1);
    CHECK_OK(dsc_convert(h, dt, v, DSC_F64, count));
    CHECK_OK(dsc_ctx_from_host(ctx, (char *)dev + off * es, h, count * es));
    free(h);
}

/* count values of device buffer dev from element off, as doubles in out. */
static void get(dsc_ctx_t *ctx, const void *dev, dsc_dtype_t dt, size_t off, double *out, size_t count) {
    const size_t es = dsc_dtype_size(dt);
    void *h = malloc(count * es + 1);
    CHECK_OK(dsc_ctx_to_host(ctx, h, (const char *)dev + off * es, count * es));
    CHECK_OK(dsc_convert(out, DSC_F64, h, dt, count));
    free(h);
}

/* Every element of dev[off .. off + count) equals want(i). */
#define EXPECT(what, ctx, dev, dt, off, count, want_expr)                                                            \
    do {                                                                                                           \
        double got_[4 * COUNT];                                                                                    \
        get(ctx, dev, dt, off, got_, count);                                                                       \
        size_t bad_ = 0, first_ = 0;                                                                               \
        for (size_t i = 0; i < (size_t)(count); i++)                                                               \
            if (got_[i] != (double)(want_expr) && !bad_++) first_ = i;                                             \
        CHECK_MSG(bad_ == 0, "%s %s rank %d of %d: %zu wrong, first [%zu] = %g", what, dsc_dtype_name(dt), rank, n, \
                  bad_, first_, bad_ ? got_[first_] : 0.0);                                                        \
    } while (0)

/* One round of 16-bit reductions on buffers of `data` (guarded memory), through comm `c`. */
static void round_16bit(dsc_comm_t *c, dsc_ctx_t *data, dsc_dtype_t dt) {
    const size_t es = dsc_dtype_size(dt), bytes = 4 * COUNT * es;
    const double tri = n * (n + 1) / 2.0;
    double v[4 * COUNT];
    void *a = dsc_ctx_alloc(data, DSC_MEM_OTHER, bytes), *b = dsc_ctx_alloc(data, DSC_MEM_OTHER, bytes);
    CHECK(a && b);
    if (!a || !b) return;

    for (size_t i = 0; i < 4 * COUNT; i++) v[i] = rank + 1 + (double)i;
    put(data, a, dt, 0, v, COUNT);
    CHECK_OK(dsc_comm_allreduce(c, a, b, COUNT, dt, DSC_REDUCE_SUM));
    EXPECT("allreduce sum", data, b, dt, 0, COUNT, tri + n * (double)i);
    EXPECT("allreduce send untouched", data, a, dt, 0, COUNT, rank + 1 + (double)i);
    CHECK_OK(dsc_comm_allreduce(c, a, b, COUNT, dt, DSC_REDUCE_MAX));
    EXPECT("allreduce max", data, b, dt, 0, COUNT, n + (double)i);
    CHECK_OK(dsc_comm_allreduce(c, a, a, COUNT, dt, DSC_REDUCE_SUM));
    EXPECT("allreduce in place", data, a, dt, 0, COUNT, tri + n * (double)i);

    /* Rounded once from the f32 sum (see the head comment). */
    const double big = dt == DSC_BF16 ? 256 : 2048, once[4] = {0, 0, 2, 4};
    for (size_t i = 0; i < COUNT; i++) v[i] = rank == 0 ? big : 1;
    put(data, a, dt, 0, v, COUNT);
    CHECK_OK(dsc_comm_allreduce(c, a, b, COUNT, dt, DSC_REDUCE_SUM));
    EXPECT("allreduce rounded once", data, b, dt, 0, COUNT, big + once[n - 1]);

    for (size_t i = 0; i < (size_t)n * PER; i++) v[i] = rank + 1 + (double)i;
    put(data, a, dt, 0, v, (size_t)n * PER);
    CHECK_OK(dsc_comm_reduce_scatter(c, a, b, PER, dt));
    EXPECT("reduce_scatter", data, b, dt, 0, PER, tri + n * (double)(rank * PER + i));
    CHECK_OK(dsc_comm_reduce_scatter(c, a, (char *)a + (size_t)rank * PER * es, PER, dt));
    EXPECT("reduce_scatter in place", data, a, dt, (size_t)rank * PER, PER, tri + n * (double)(rank * PER + i));

    /* Uneven slices: counts[q] = 5q mod 7 (0, 5, 3, 1). */
    int64_t counts[4], off = 0, total = 0;
    for (int q = 0; q < n; q++) {
        counts[q] = (5 * q) % 7;
        if (q < rank) off += counts[q];
        total += counts[q];
    }
    put(data, a, dt, 0, v, (size_t)total);
    CHECK_OK(dsc_comm_reduce_scatter_v(c, a, b, counts, dt));
    EXPECT("reduce_scatter_v", data, b, dt, 0, (size_t)counts[rank], tri + n * (double)(off + (int64_t)i));
    dsc_ctx_release(data, DSC_MEM_OTHER, a, bytes);
    dsc_ctx_release(data, DSC_MEM_OTHER, b, bytes);
}

/* Data movement of f32 device buffers: all-gather in place, broadcast. */
static void round_moves(dsc_comm_t *c, dsc_ctx_t *data) {
    const size_t bytes = 4 * COUNT * sizeof(float);
    double v[4 * COUNT];
    void *b = dsc_ctx_alloc(data, DSC_MEM_OTHER, bytes);
    CHECK(b != NULL);
    if (!b) return;
    for (size_t i = 0; i < PER; i++) v[i] = 10.0 * rank + (double)i;
    put(data, b, DSC_F32, (size_t)rank * PER, v, PER);
    CHECK_OK(dsc_comm_allgather(c, (char *)b + (size_t)rank * PER * sizeof(float), b, PER, DSC_F32));
    EXPECT("allgather in place", data, b, DSC_F32, 0, (size_t)n * PER, 10.0 * (double)(i / PER) + (double)(i % PER));
    for (size_t i = 0; i < COUNT; i++) v[i] = rank == n - 1 ? 7.0 * (double)i + 3 : -1.0;
    put(data, b, DSC_F32, 0, v, COUNT);
    CHECK_OK(dsc_comm_broadcast(c, b, COUNT, DSC_F32, n - 1));
    EXPECT("broadcast", data, b, DSC_F32, 0, COUNT, 7.0 * (double)i + 3);
    dsc_ctx_release(data, DSC_MEM_OTHER, b, bytes);
}

int main(void) {
    dsc_ctx_t *ctx = guarded_ctx(), *other = guarded_ctx();
    dsc_comm_t *c = NULL;
    CHECK_OK(dsc_comm_new_mpi(ctx, &c));
    if (!c) {
        fprintf(stderr, "dsc_comm_new_mpi failed: %s\n", dsc_ctx_errmsg(ctx));
        return 1;
    }
    rank = dsc_comm_rank(c);
    n = dsc_comm_world_size(c);
    CHECK(n >= 1 && n <= 4);
    CHECK_OK(dsc_comm_set_timeout(c, 30));

    /* Host memory: no bounce buffer. */
    float host[COUNT];
    for (int i = 0; i < COUNT; i++) host[i] = (float)(rank + i);
    CHECK_OK(dsc_comm_allreduce(c, host, host, COUNT, DSC_F32, DSC_REDUCE_SUM));
    CHECK_MSG(host[5] == (float)(n * (n - 1) / 2 + 5 * n), "host allreduce: [5] = %g", (double)host[5]);
    CHECK_MSG(dsc_ctx_mem_stats(ctx, DSC_MEM_COMM).peak_bytes == 0,
              "an f32 collective on host memory used %zu bytes of staging",
              (size_t)dsc_ctx_mem_stats(ctx, DSC_MEM_COMM).peak_bytes);

    dsc_ctx_t *owners[2] = {ctx, other};
    size_t live_after_first = 0;
    for (int pass = 0; pass < 2; pass++) {
        for (int o = 0; o < 2; o++) {
            round_16bit(c, owners[o], DSC_BF16);
            round_16bit(c, owners[o], DSC_F16);
            round_moves(c, owners[o]);
        }
        const size_t live = (size_t)dsc_ctx_mem_stats(ctx, DSC_MEM_COMM).live_bytes;
        if (pass == 0) {
            CHECK_MSG(live > 0, "device buffers went to MPI without a bounce buffer");
            live_after_first = live;
        } else {
            CHECK_MSG(live == live_after_first, "bounce buffers grew from %zu to %zu bytes on a repeated round",
                      live_after_first, live);
        }
    }
    CHECK_MSG(dsc_ctx_status(ctx) == DSC_OK, "rank %d: %s", rank, dsc_ctx_errmsg(ctx));
    dsc_comm_free(c);
    CHECK_MSG(dsc_ctx_mem_stats(ctx, DSC_MEM_COMM).live_bytes == 0, "dsc_comm_free left %zu bytes of bounce buffers",
              (size_t)dsc_ctx_mem_stats(ctx, DSC_MEM_COMM).live_bytes);
    dsc_ctx_free(other);
    dsc_ctx_free(ctx);
    char name[64];
    snprintf(name, sizeof name, "test_comm_mpi_device rank %d of %d", rank, n);
    return check_finish(name);
}

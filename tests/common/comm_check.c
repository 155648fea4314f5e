#include "comm_check.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void comm_put(void *buf, dsc_dtype_t dt, size_t i, double v) {
    switch (dt) {
    case DSC_F32: ((float *)buf)[i] = (float)v; break;
    case DSC_F64: ((double *)buf)[i] = v; break;
    case DSC_F16: ((uint16_t *)buf)[i] = dsc_f32_to_f16((float)v); break;
    case DSC_BF16: ((uint16_t *)buf)[i] = dsc_f32_to_bf16((float)v); break;
    case DSC_I32: ((int32_t *)buf)[i] = (int32_t)v; break;
    default: break;
    }
}

double comm_get(const void *buf, dsc_dtype_t dt, size_t i) {
    switch (dt) {
    case DSC_F32: return ((const float *)buf)[i];
    case DSC_F64: return ((const double *)buf)[i];
    case DSC_F16: return dsc_f16_to_f32(((const uint16_t *)buf)[i]);
    case DSC_BF16: return dsc_bf16_to_f32(((const uint16_t *)buf)[i]);
    case DSC_I32: return ((const int32_t *)buf)[i];
    default: return NAN;
    }
}

enum { COUNT = 37 /* allreduce / broadcast elements */, PER = 9 /* reduce_scatter / allgather elements per rank */ };

void comm_check_values(dsc_comm_t *c, int rank, int n) {
    static const dsc_dtype_t dts[] = {DSC_F32, DSC_F64, DSC_BF16, DSC_F16, DSC_I32};
    uint64_t seq = dsc_comm_seq(c);
    const double tri = n * (n + 1) / 2.0;
    for (size_t k = 0; k < sizeof dts / sizeof dts[0]; k++) {
        const dsc_dtype_t dt = dts[k];
        const size_t es = dsc_dtype_size(dt);
        unsigned char *a = calloc(4 * COUNT, 8), *b = calloc(4 * COUNT, 8);
        /* allreduce sum: rank r contributes r + 1 + i; the sum is n(n+1)/2 + n i. */
        for (size_t i = 0; i < COUNT; i++) comm_put(a, dt, i, rank + 1 + (double)i);
        TCHECK_OK(dsc_comm_allreduce(c, a, b, COUNT, dt, DSC_REDUCE_SUM));
        EXPECT_VALUES("allreduce sum", b, dt, COUNT, tri + n * (double)i);
        EXPECT_VALUES("allreduce send untouched", a, dt, COUNT, rank + 1 + (double)i);
        /* max: n + i. */
        TCHECK_OK(dsc_comm_allreduce(c, a, b, COUNT, dt, DSC_REDUCE_MAX));
        EXPECT_VALUES("allreduce max", b, dt, COUNT, n + (double)i);
        /* in place. */
        TCHECK_OK(dsc_comm_allreduce(c, a, a, COUNT, dt, DSC_REDUCE_SUM));
        EXPECT_VALUES("allreduce in place", a, dt, COUNT, tri + n * (double)i);

        /* reduce_scatter: send[k] = r + 1 + k (k < n * PER); rank r gets
         * sum_s (s + 1 + r PER + j) = n(n+1)/2 + n (r PER + j). */
        for (size_t i = 0; i < (size_t)n * PER; i++) comm_put(a, dt, i, rank + 1 + (double)i);
        TCHECK_OK(dsc_comm_reduce_scatter(c, a, b, PER, dt));
        EXPECT_VALUES("reduce_scatter", b, dt, PER, tri + n * (double)(rank * PER + i));
        TCHECK_OK(dsc_comm_reduce_scatter(c, a, a + (size_t)rank * PER * es, PER, dt));
        EXPECT_VALUES("reduce_scatter in place", a + (size_t)rank * PER * es, dt, PER,
                      tri + n * (double)(rank * PER + i));

        /* reduce_scatter_v: uneven slices, counts[q] = 5q mod 7 (0, 5, 3, 1: one empty),
         * rank r's slice at off_r; it gets n(n+1)/2 + n (off_r + j). */
        {
            int64_t counts[4], off = 0, total = 0;
            for (int q = 0; q < n; q++) {
                counts[q] = (5 * q) % 7;
                if (q < rank) off += counts[q];
                total += counts[q];
            }
            for (size_t i = 0; i < (size_t)total; i++) comm_put(a, dt, i, rank + 1 + (double)i);
            TCHECK_OK(dsc_comm_reduce_scatter_v(c, a, b, counts, dt));
            EXPECT_VALUES("reduce_scatter_v", b, dt, (size_t)counts[rank], tri + n * (double)(off + (int64_t)i));
            TCHECK_OK(dsc_comm_reduce_scatter_v(c, a, a + (size_t)off * es, counts, dt));
            EXPECT_VALUES("reduce_scatter_v in place", a + (size_t)off * es, dt, (size_t)counts[rank],
                          tri + n * (double)(off + (int64_t)i));
        }

        /* allgather: rank r sends 10 r + j; recv[s PER + j] = 10 s + j. */
        for (size_t i = 0; i < PER; i++) comm_put(a, dt, i, 10.0 * rank + (double)i);
        memset(b, 0xff, 4 * COUNT * 8);
        TCHECK_OK(dsc_comm_allgather(c, a, b, PER, dt));
        EXPECT_VALUES("allgather", b, dt, (size_t)n * PER, 10.0 * (double)(i / PER) + (double)(i % PER));
        memset(b, 0, 4 * COUNT * 8);
        for (size_t i = 0; i < PER; i++) comm_put(b + (size_t)rank * PER * es, dt, i, 10.0 * rank + (double)i);
        TCHECK_OK(dsc_comm_allgather(c, b + (size_t)rank * PER * es, b, PER, dt));
        EXPECT_VALUES("allgather in place", b, dt, (size_t)n * PER, 10.0 * (double)(i / PER) + (double)(i % PER));

        /* broadcast from the last rank: 7 i + 3 (<= 255, exact in bf16). */
        for (size_t i = 0; i < COUNT; i++) comm_put(a, dt, i, rank == n - 1 ? 7.0 * (double)i + 3 : -1.0);
        TCHECK_OK(dsc_comm_broadcast(c, a, COUNT, dt, n - 1));
        EXPECT_VALUES("broadcast", a, dt, COUNT, 7.0 * (double)i + 3);
        TCHECK_OK(dsc_comm_barrier(c));
        seq += 11; /* 3 allreduce, 2 reduce_scatter, 2 reduce_scatter_v, 2 allgather, broadcast, barrier */
        TCHECK_MSG(dsc_comm_seq(c) == seq, "%s rank %d of %d: seq %llu want %llu", dsc_dtype_name(dt), rank, n,
                   (unsigned long long)dsc_comm_seq(c), (unsigned long long)seq);
        free(a);
        free(b);
    }
    /* Zero-element collectives are legal and still numbered. */
    TCHECK_OK(dsc_comm_allreduce(c, NULL, NULL, 0, DSC_F32, DSC_REDUCE_SUM));
    TCHECK(dsc_comm_seq(c) == seq + 1);
}

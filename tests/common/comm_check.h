/* What the collectives tests share (tests/unit/test_comm_fake.c, ranks as threads, and
 * tests/mpi/test_comm_mpi.c under mpirun): typed host buffers and every blocking collective in
 * every dtype against closed-form values. Checks are TCHECK (safe from rank threads). */
#ifndef DSC_TEST_COMM_CHECK_H
#define DSC_TEST_COMM_CHECK_H

#include "check.h"
#include "dsc/comm.h"

/* Element i of a buffer of dtype dt (f32, f64, f16, bf16, i32), written from / read as a double. */
void comm_put(void *buf, dsc_dtype_t dt, size_t i, double v);
double comm_get(const void *buf, dsc_dtype_t dt, size_t i);

/* Counts the elements i < n_elems of buf that differ from want_expr (an expression of i; all
 * values are small integers, exact in every dtype) and checks there are none; the message
 * names `what`, the dtype and the caller's `rank` and `n`, which must be in scope. */
#define EXPECT_VALUES(what, buf, dt, n_elems, want_expr)                                                            \
    do {                                                                                                           \
        size_t bad_ = 0, first_ = 0;                                                                               \
        for (size_t i = 0; i < (size_t)(n_elems); i++) {                                                           \
            if (comm_get(buf, dt, i) != (double)(want_expr)) {                                                     \
                if (!bad_) first_ = i;                                                                             \
                bad_++;                                                                                            \
            }                                                                                                      \
        }                                                                                                          \
        TCHECK_MSG(bad_ == 0, "%s %s rank %d of %d: %zu wrong, first [%zu] = %g", what, dsc_dtype_name(dt), rank, \
                   n, bad_, first_, bad_ ? comm_get(buf, dt, first_) : 0.0);                                       \
    } while (0)

/* Rank `rank` of `n` (1 to 4): allreduce (sum, max, in place), reduce_scatter and
 * reduce_scatter_v (uneven, one slice empty; in place too), allgather (in place too),
 * broadcast from the last rank and a barrier, in f32, f64, bf16, f16 and i32, each against its
 * closed form; the communicator numbers 11 collectives per dtype from its sequence number at
 * entry, and then a zero-element allreduce (legal, and numbered too). */
void comm_check_values(dsc_comm_t *c, int rank, int n);

#endif

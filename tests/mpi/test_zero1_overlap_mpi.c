/* ZeRO-1 with zero_optimization.overlap_comm under mpirun (docs/zero.md): each rank trains its
 * slice of the batch twice, reducing the accumulated gradients during the boundary backward
 * (overlap_comm true: one non-blocking reduce to owners per parameter, MPI_Ireduce_scatter)
 * and after it (false: one reduce-scatter of the flat buffer, MPI_Ireduce_scatter_block). The
 * parameters and losses must be bitwise the same, and so must the bytes sent per step
 * (docs/zero.md's (N-1)/N Psi (e_g + e_p) plus the norm all-reduce): fp32, bf16 accumulating
 * in fp32, and bf16 accumulating in bf16, with gradient accumulation 3. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "zero_check.h"

int main(void) {
    dsc_ctx_t *ctx = check_ctx_new(1);
    dsc_comm_t *comm = NULL;
    if (dsc_comm_new_mpi(ctx, &comm) != DSC_OK) {
        fprintf(stderr, "test_zero1_overlap_mpi: no MPI: %s\n", dsc_ctx_errmsg(ctx));
        return 1;
    }
    dsc_comm_set_timeout(comm, 120);
    const int n = dsc_comm_world_size(comm), rank = dsc_comm_rank(comm);
    /* Reduced (DSC_TEST_REDUCED: the ASan build's guarded pass): 3 steps instead of 6. */
    const int steps = check_reduced() ? 3 : 6;
    const char *precisions[] = {"fp32", "bf16", "bf16"};
    for (int v = 0; v < 3; v++) {
        const char *accum16 = v == 2 ? ", \"data_types\": {\"grad_accum_dtype\": \"bf16\"}" : NULL;
        zero_case_t on = {1, 3, precisions[v], steps, 2, 0, 0, 1, NULL}, off = on;
        off.overlap = 2;
        zero_result_t a, b;
        char what[160];
        snprintf(what, sizeof what, "mpirun -np %d, stage 1, gas 3, %s%s, rank %d", n, precisions[v],
                 accum16 ? " (bf16 accumulation)" : "", rank);
        const int rc_a = zero_run_extra(&on, NULL, accum16, comm, n, rank, &a);
        const int rc_b = zero_run_extra(&off, NULL, accum16, comm, n, rank, &b);
        CHECK_MSG(rc_a == 0 && rc_b == 0, "%s: %s%s", what, a.error, b.error);
        if (rc_a == 0 && rc_b == 0) {
            CHECK_MSG(a.numel == b.numel && !memcmp(a.params, b.params, sizeof(float) * (size_t)a.numel),
                      "%s: parameters with overlap_comm differ from the blocking reduction", what);
            CHECK_MSG(!memcmp(a.losses, b.losses, sizeof(double) * (size_t)steps), "%s: losses differ", what);
            CHECK_MSG(a.last_step_sent_bytes == b.last_step_sent_bytes &&
                          a.engine_reported_sent_bytes == b.engine_reported_sent_bytes,
                      "%s: %llu bytes sent in the last step with overlap_comm, %llu without", what,
                      (unsigned long long)a.last_step_sent_bytes, (unsigned long long)b.last_step_sent_bytes);
            if (!accum16) {
                const uint64_t want = zero_expected_sent_bytes(&on, n, &a);
                CHECK_MSG(a.last_step_sent_bytes == want, "%s: sent %llu bytes in the last step, want %llu", what,
                          (unsigned long long)a.last_step_sent_bytes, (unsigned long long)want);
            }
        }
        zero_result_free(&a);
        zero_result_free(&b);
    }
    char name[64];
    snprintf(name, sizeof name, "test_zero1_overlap_mpi rank %d/%d", rank, n);
    const int rc = check_finish(name);
    dsc_comm_free(comm);
    dsc_ctx_free(ctx);
    return rc;
}

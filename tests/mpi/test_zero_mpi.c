/* ZeRO stages 0-3 under mpirun: every rank trains its slice of the global batch and must
 * end with the parameters of a single-rank stage-0 run on the whole batch (each rank runs
 * that reference itself, in-process, once per precision and accumulation). With the argument "kill", rank 1 is killed (SIGKILL)
 * between collectives: the job must end non-zero within the limit, with mpirun naming the
 * killed rank (OpenMPI ends the job as soon as a process dies; a rank that stays alive
 * but stops taking part is the comm tests' timeout case, which names the missing rank). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <unistd.h>

#include "check.h"
#include "zero_check.h"

int main(int argc, char **argv) {
    bool kill_mode = argc > 1 && strcmp(argv[1], "kill") == 0;
    dsc_ctx_t *ctx = check_ctx_new(1);
    dsc_comm_t *comm = NULL;
    if (dsc_comm_new_mpi(ctx, &comm) != DSC_OK) {
        fprintf(stderr, "test_zero_mpi: no MPI: %s\n", dsc_ctx_errmsg(ctx));
        return 1;
    }
    int n = dsc_comm_world_size(comm), rank = dsc_comm_rank(comm);
    if (kill_mode) {
        /* Rank 1 dies after its third collective; the others wait at most 3 s. */
        dsc_comm_set_timeout(comm, 3);
        if (rank == 1) {
            for (int i = 0; i < 3; i++) dsc_comm_barrier(comm);
            raise(SIGKILL); /* killed: no MPI_Finalize, no goodbye */
        }
        for (int i = 0; i < 10; i++) dsc_comm_barrier(comm);
        fprintf(stderr, "test_zero_mpi: rank %d passed barriers that rank 1 never reached\n", rank);
        return 1;
    }
    dsc_comm_set_timeout(comm, 120);
    const char *precisions[] = {"fp32", "bf16"};
    /* The reference (stage 0, one rank, the whole batch) depends on the precision and the
     * accumulation, not on the stage: it is trained once for the four stages with
     * accumulation and once for stage 3 without (4 runs instead of 10, each n times the
     * rows of a rank's own run). */
    zero_result_t ref = {0};
    /* Reduced (DSC_TEST_REDUCED: the ASan build's guarded pass): 5 steps instead of 20. */
    const int steps = check_reduced() ? 5 : 20;
    if (rank == 0) printf("test_zero_mpi: %d ranks, %d steps per case\n", n, steps);
    int ref_p = -1, ref_gas = -1;
    for (int p = 0; p < 2; p++)
        for (int variant = 0; variant <= 4; variant++) { /* stages 0-3 with accumulation, stage 3 without */
            const int stage = variant < 4 ? variant : 3, gas = variant < 4 ? 2 : 1;
            zero_case_t c = {stage, gas, precisions[p], steps, 2, 0, variant == 4 ? 1000000000 : 0, stage == 2 ? 1 : 0, NULL};
            if (ref_p != p || ref_gas != gas) {
                zero_result_free(&ref);
                ref_p = ref_gas = -1;
                if (zero_run(&c, NULL, n, 0, &ref) != 0) {
                    CHECK_MSG(false, "stage %d %s: reference: %s", stage, precisions[p], ref.error);
                    zero_result_free(&ref);
                    continue;
                }
                ref_p = p, ref_gas = gas;
            }
            zero_result_t got;
            if (zero_run(&c, comm, n, rank, &got) != 0) {
                CHECK_MSG(false, "stage %d %s: %s", stage, precisions[p], got.error);
                zero_result_free(&got);
                continue;
            }
            char what[128];
            snprintf(what, sizeof what, "mpirun -np %d, stage %d, gas %d, %s, rank %d", n, stage, gas, precisions[p], rank);
            if (p == 0) {
                check_arrays_close_f32(what, got.params, ref.params, (size_t)ref.numel, 1e-5, 1e-2);
            } else {
                double d2 = 0, n2 = 0;
                for (int64_t i = 0; i < ref.numel; i++) {
                    double d = (double)got.params[i] - ref.params[i];
                    d2 += d * d, n2 += (double)ref.params[i] * ref.params[i];
                }
                CHECK_MSG(sqrt(d2 / n2) <= 1e-2, "%s: relative L2 difference %.3e", what, sqrt(d2 / n2));
            }
            zero_result_free(&got);
        }
    zero_result_free(&ref);
    char name[64];
    snprintf(name, sizeof name, "test_zero_mpi rank %d/%d", rank, n);
    int rc = check_finish(name);
    dsc_comm_free(comm);
    dsc_ctx_free(ctx);
    return rc;
}

/* A rank that never arrives: run under mpirun -np 3 by tests/mpi/expect_abort.cmake,
 * which asserts that the whole job exits non-zero within its limit and that the output
 * names rank 2 and the collective. Rank 2 takes another code path before collective #3:
 *   sleep  it computes for 60 s (not inside any MPI call);
 *   skip   it skips the collective and frees its communicator (MPI_Finalize);
 *   late   it initialises MPI but reaches its communicator's creation only after 60 s:
 *          the others' dsc_comm_new_mpi_ex(2 s) times out there (MPI_Comm_idup polled).
 * Ranks 0 and 1 time out after 2 s, report, and MPI_Abort the job. Never exits 0 when the
 * library behaves: reaching the end prints UNEXPECTED. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <mpi.h>

#include "dsc/dsc.h"
#include "dsc/comm.h"

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "sleep";
    dsc_ctx_t *ctx = NULL;
    if (dsc_ctx_new(NULL, &ctx) != DSC_OK) return 2; /* default sink: errors go to stderr */
    dsc_comm_t *c = NULL;
    const bool late = !strcmp(mode, "late");
    if (late) {
        int provided = 0, r = 0;
        MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
        MPI_Comm_rank(MPI_COMM_WORLD, &r);
        if (r == 2) sleep(60);
    }
    if (dsc_comm_new_mpi_ex(ctx, late ? 2.0 : 0.0, &c) != DSC_OK) {
        fprintf(stderr, "dsc_comm_new_mpi: %s\n", dsc_ctx_errmsg(ctx));
        return 2;
    }
    int rank = dsc_comm_rank(c);
    if (late) fprintf(stderr, "UNEXPECTED: rank %d created its communicator\n", rank);
    dsc_comm_set_timeout(c, 2.0);
    float x[1024] = {0}, y[1024];
    dsc_comm_allreduce(c, x, y, 1024, DSC_F32, DSC_REDUCE_SUM); /* #1 */
    dsc_comm_barrier(c);                                        /* #2 */
    if (rank == 2) {
        if (!strcmp(mode, "skip")) {
            dsc_comm_free(c); /* waits for the others (who never come), then aborts */
            dsc_ctx_free(ctx);
            fprintf(stderr, "UNEXPECTED: rank 2 finalised\n");
            return 0;
        }
        sleep(60);
        fprintf(stderr, "UNEXPECTED: rank 2 woke up\n");
    }
    dsc_comm_set_tag(c, "train step 3");
    dsc_status_t st = dsc_comm_allreduce(c, x, y, 1024, DSC_F32, DSC_REDUCE_SUM); /* #3 */
    fprintf(stderr, "UNEXPECTED: rank %d: collective #3 returned %s\n", rank, dsc_status_string(st));
    dsc_comm_free(c);
    dsc_ctx_free(ctx);
    return 0;
}

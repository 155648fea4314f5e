/* Ranks that disagree on a collective's size, under mpirun -np 3 (tests/cmake/mpi_agree.cmake):
 * rank 2 broadcasts 250 f32 where ranks 0 and 1 broadcast 500 from root 0. A message that
 * small travels eagerly, so MPI stops it at rank 2's buffer with MPI_ERR_TRUNCATE: rank 2
 * must return DSC_ERR_COMM with a message naming the collective and the rank (not MPI's
 * fatal handler), and nothing past its buffer may change. With "debug" the debug check runs
 * first and every rank refuses the collective, naming rank 2. Exits 1 on a rank that got
 * the error, 0 on the others; UNEXPECTED marks a wrong outcome. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dsc/dsc.h"

int main(int argc, char **argv) {
    const bool debug = argc > 1 && !strcmp(argv[1], "debug");
    dsc_ctx_t *ctx = NULL;
    if (dsc_ctx_new(NULL, &ctx) != DSC_OK) return 2;
    dsc_comm_t *c = NULL;
    if (dsc_comm_new_mpi_ex(ctx, 20.0, &c) != DSC_OK) {
        fprintf(stderr, "dsc_comm_new_mpi_ex: %s\n", dsc_ctx_errmsg(ctx));
        return 2;
    }
    dsc_comm_set_debug_check(c, debug);
    const int rank = dsc_comm_rank(c);
    const size_t n = rank == 2 ? 250 : 500;
    float *buf = malloc(sizeof *buf * 1000);
    for (int i = 0; i < 1000; i++) buf[i] = rank == 0 ? 1.0f : -1.0f; /* -1 past n: a guard */
    dsc_status_t st = dsc_comm_broadcast(c, buf, n, DSC_F32, 0);
    int touched = 0;
    for (size_t i = n; i < 1000; i++) touched += buf[i] != (rank == 0 ? 1.0f : -1.0f);
    if (touched) fprintf(stderr, "UNEXPECTED: rank %d: %d elements past its count changed\n", rank, touched);
    if (st != DSC_OK) fprintf(stderr, "rank %d: broadcast: %s: %s\n", rank, dsc_status_string(st), dsc_comm_errmsg(c));
    else if (rank == 2 || debug) fprintf(stderr, "UNEXPECTED: rank %d: the broadcast succeeded\n", rank);
    free(buf);
    dsc_comm_free(c);
    dsc_ctx_free(ctx);
    return st != DSC_OK;
}

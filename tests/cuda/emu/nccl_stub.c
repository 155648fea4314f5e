/* A stand-in for libnccl.so.2 on the CUDA emulator (tests only; DSC_NCCL_LIBRARY points the
 * emulated tests at it): NCCL's C entry points that src/comm/comm_nccl.c loads, for a world
 * of ONE rank, on the emulator's "device" memory (host memory; streams complete at once).
 * Every collective of one rank is a copy of its input, so the NCCL backend's loading,
 * staging, widening, in-place layouts and ordering run on every machine; sums across ranks
 * need a real NCCL on GPUs (tests/cuda/test_nccl_comm.c under mpirun).
 *
 * Fault injection for the watchdog's tests (tests/cuda/nccl/test_nccl_watchdog.c), counting
 * collective calls from 1 (a test process, so process-wide state is fine here):
 *   DSC_NCCL_STUB_HANG_AT=k          call k blocks until ncclCommAbort (from another thread)
 *                                    and then fails, as a real NCCL call stuck on an absent
 *                                    peer does;
 *   DSC_NCCL_STUB_ASYNC_ERROR_AT=k   from call k on, ncclCommGetAsyncError reports a remote
 *                                    error (6), as NCCL does when a peer's connection breaks;
 *   DSC_NCCL_STUB_ASYNC_ERROR_COMM=j with the above, only the j-th communicator made (from 1)
 *                                    reports it (two communicators on one context). */
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct stub_comm {
    int nranks;
    int destroyed;
    int index; /* made j-th, from 1 */
} stub_comm_t;
typedef struct {
    char internal[128];
} stub_id_t;

enum { OK = 0, INTERNAL_ERROR = 3, INVALID_ARGUMENT = 4, INVALID_USAGE = 5, REMOTE_ERROR = 6 };

static atomic_int calls;       /* collective calls so far */
static atomic_int comms_made;  /* communicators made so far */
static atomic_bool aborted;    /* ncclCommAbort ran */

static int env_int(const char *name) {
    const char *v = getenv(name);
    return v && *v ? atoi(v) : 0;
}

/* Counts a collective call; blocks in call DSC_NCCL_STUB_HANG_AT until ncclCommAbort.
 * Returns OK, or the error the call returns. */
static int enter(void) {
    const int k = atomic_fetch_add(&calls, 1) + 1;
    if (k != env_int("DSC_NCCL_STUB_HANG_AT")) return OK;
    const struct timespec ms = {0, 1000000};
    while (!atomic_load(&aborted)) nanosleep(&ms, NULL);
    return INTERNAL_ERROR;
}

static size_t esize(int dtype) {
    switch (dtype) {
    case 0: case 1: return 1;
    case 2: case 3: case 7: return 4;
    case 4: case 5: case 8: return 8;
    default: return 2; /* 6 f16, 9 bf16 */
    }
}

int ncclGetVersion(int *version) {
    *version = 22800; /* 2.28.0, the header this stub was checked against */
    return OK;
}
int ncclGetUniqueId(stub_id_t *id) {
    memset(id, 0, sizeof *id);
    memcpy(id->internal, "dsc-nccl-stub", 13);
    return OK;
}
int ncclCommInitRank(stub_comm_t **comm, int nranks, stub_id_t id, int rank) {
    if (nranks != 1 || rank != 0 || memcmp(id.internal, "dsc-nccl-stub", 13) != 0) return INVALID_USAGE;
    *comm = calloc(1, sizeof **comm);
    if (!*comm) return 2;
    (*comm)->nranks = 1;
    (*comm)->index = atomic_fetch_add(&comms_made, 1) + 1;
    return OK;
}
int ncclCommDestroy(stub_comm_t *comm) {
    free(comm);
    return OK;
}
int ncclCommAbort(stub_comm_t *comm) {
    atomic_store(&aborted, true);
    free(comm);
    return OK;
}
int ncclCommGetAsyncError(stub_comm_t *comm, int *err) {
    const int at = env_int("DSC_NCCL_STUB_ASYNC_ERROR_AT"), only = env_int("DSC_NCCL_STUB_ASYNC_ERROR_COMM");
    *err = !comm                                                                  ? INVALID_ARGUMENT
           : at > 0 && atomic_load(&calls) >= at && (!only || comm->index == only) ? REMOTE_ERROR
                                                                                  : OK;
    return OK;
}
const char *ncclGetErrorString(int rc) {
    return rc == OK ? "no error" : rc == REMOTE_ERROR ? "stub NCCL: remote error (injected)" : "stub NCCL error";
}

static int copy(const void *send, void *recv, size_t count, int dtype) {
    if (count && (!send || !recv)) return INVALID_ARGUMENT;
    if (send != recv) memmove(recv, send, count * esize(dtype));
    return OK;
}
int ncclAllReduce(const void *send, void *recv, size_t count, int dtype, int op, stub_comm_t *comm, void *stream) {
    const int e = enter();
    if (e != OK) return e;
    (void)op, (void)comm, (void)stream;
    return copy(send, recv, count, dtype);
}
int ncclReduceScatter(const void *send, void *recv, size_t count, int dtype, int op, stub_comm_t *comm, void *stream) {
    const int e = enter();
    if (e != OK) return e;
    (void)op, (void)comm, (void)stream;
    return copy(send, recv, count, dtype);
}
int ncclAllGather(const void *send, void *recv, size_t count, int dtype, stub_comm_t *comm, void *stream) {
    const int e = enter();
    if (e != OK) return e;
    (void)comm, (void)stream;
    return copy(send, recv, count, dtype);
}
int ncclBroadcast(const void *send, void *recv, size_t count, int dtype, int root, stub_comm_t *comm, void *stream) {
    const int e = enter();
    if (e != OK) return e;
    (void)comm, (void)stream;
    return root == 0 ? copy(send, recv, count, dtype) : INVALID_ARGUMENT;
}
int ncclReduce(const void *send, void *recv, size_t count, int dtype, int op, int root, stub_comm_t *comm,
               void *stream) {
    const int e = enter();
    if (e != OK) return e;
    (void)op, (void)comm, (void)stream;
    return root == 0 ? copy(send, recv, count, dtype) : INVALID_ARGUMENT;
}
int ncclGroupStart(void) { return OK; }
int ncclGroupEnd(void) { return OK; }

/* dsc/comm.h: collectives across data-parallel ranks.
 *
 * A dsc_comm_t is one rank's handle on a group of `world` ranks. It offers the
 * collectives ZeRO needs, each blocking or non-blocking:
 *
 *     allreduce       recv[i] = op over ranks of send[i]                    (count elements)
 *     reduce_scatter  recv[j] = sum over ranks of send[rank * count + j]     (send: world * count)
 *     allgather       recv[r * count + j] = send_of_rank_r[j]                (recv: world * count)
 *     broadcast       buf = root's buf                                       (count elements)
 *     barrier
 *
 * Sizes are element counts plus a dtype, never bytes. Reductions support DSC_F32, DSC_F64,
 * DSC_BF16, DSC_F16 and DSC_I32 (sum and max); 16-bit values are accumulated in f32 and
 * rounded once. Data movement (allgather, broadcast) supports every dtype.
 *
 * Backends:
 *   - self (dsc_comm_new_self): world 1, collectives are copies;
 *   - MPI (dsc_comm_new_mpi): one rank per process under mpirun (OpenMPI);
 *   - fake (dsc_comm_new_fake): N ranks as threads of one process, for tests, with fault
 *     injection (delay, fail, or stop a rank at its Nth collective).
 *
 * Ordering rule: every rank must issue the same collectives in the same order with the
 * same (operation, count, dtype, reduce op, root). Each collective a rank issues gets the
 * next sequence number (1, 2, ...; dsc_comm_seq), so "collective #17" means the same call
 * on every rank. The debug check (dsc_comm_set_debug_check, or DSC_COMM_DEBUG=1 in the
 * environment when the communicator is created) exchanges a descriptor before each
 * collective and fails with DSC_ERR_COMM on every rank, naming the first rank that
 * diverged, e.g. "collective #17: rank 1 called allgather(1024 f32) but rank 0 called
 * allreduce(1024 f32 sum)". Enable it on all ranks or none.
 *
 * Timeouts (never a silent hang): every collective must complete within the
 * communicator's timeout (default DSC_COMM_DEFAULT_TIMEOUT_S = 600 s, counted from the
 * issue). When it does not, the rank builds a DSC_ERR_TIMEOUT message naming the
 * operation, its sequence number, count and dtype, and which ranks never arrived (and what
 * they were last doing), logs it at ERROR level with this rank's recent collectives, and
 * ABORTS the communicator (dsc_comm_abort):
 *   - MPI backend: MPI_Abort, so THE WHOLE JOB EXITS NON-ZERO and the call never returns.
 *     This is the one exit path in the library; it is MPI's own, and a collective that
 *     never completes leaves nothing else to do.
 *   - fake and self backends: the call returns DSC_ERR_TIMEOUT and the communicator is
 *     unusable afterwards (every call returns DSC_ERR_COMM); other fake ranks time out in
 *     turn.
 *
 * Errors are recorded on the communicator (dsc_comm_errmsg: the latest) and on its
 * context (dsc_ctx_set_error: the first), and logged through the context's sink.
 *
 * Threads: a communicator is used from one thread (the one that created it; the MPI
 * backend asks for MPI_THREAD_FUNNELED). Fake ranks each use their own thread and context.
 *
 * Byte counters (dsc_comm_stats) count what each rank SENDS under ring algorithms, with
 * S = payload bytes and N = world (all zero when N = 1); see docs/comm.md:
 *     allreduce       S = count * esize,          sent = floor(2 (N-1) S / N)
 *     reduce_scatter  S = N * count * esize,      sent = (N-1) * count * esize
 *     reduce_scatter_v S = total * esize,         sent = (total - counts[rank]) * esize
 *     allgather       S = N * count * esize,      sent = (N-1) * count * esize
 *     broadcast       S = count * esize,          sent = S on the root, 0 elsewhere
 *     barrier         0
 * esize is the caller's dtype size (a 16-bit sum counts 2 bytes per element even when the
 * backend widens it to f32). Debug-check descriptor exchanges are not counted.
 */
#ifndef DSC_COMM_H
#define DSC_COMM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dsc/status.h"
#include "dsc/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

#define DSC_COMM_DEFAULT_TIMEOUT_S 600.0
/* The MPI_Abort error code used when a collective times out (mpirun exits with it). */
#define DSC_COMM_ABORT_CODE 1
/* Longest call-site tag kept (dsc_comm_set_tag), including the terminating NUL. */
#define DSC_COMM_TAG_MAX 32

typedef struct dsc_comm dsc_comm_t;
typedef struct dsc_comm_request dsc_comm_request_t;
typedef struct dsc_comm_fake_world dsc_comm_fake_world_t;

typedef enum dsc_reduce_op {
    DSC_REDUCE_SUM = 0,
    DSC_REDUCE_MAX,
    DSC_REDUCE_OP_COUNT
} dsc_reduce_op_t;

typedef enum dsc_comm_op {
    DSC_COMM_ALLREDUCE = 0,
    DSC_COMM_REDUCE_SCATTER,
    DSC_COMM_ALLGATHER,
    DSC_COMM_BROADCAST,
    DSC_COMM_BARRIER,
    DSC_COMM_REDUCE_SCATTER_V, /* reduce to owners: uneven slices (ZeRO-2 gradients) */
    DSC_COMM_OP_COUNT
} dsc_comm_op_t;

/* Static names: "allreduce", "reduce_scatter", "allgather", "broadcast", "barrier",
 * "reduce_scatter_v"; "?". */
const char *dsc_comm_op_name(dsc_comm_op_t op);
/* "sum", "max"; "?". */
const char *dsc_reduce_op_name(dsc_reduce_op_t op);

/* ---- Creation ---------------------------------------------------------------------- */

/* Every constructor takes the context that receives errors, logs and DSC_MEM_COMM
 * buffers (16-bit widening); it must outlive the communicator. On success *out owns a new
 * communicator freed with dsc_comm_free. */

/* World of one rank. Returns DSC_OK, DSC_ERR_NOMEM, DSC_ERR_INVALID (ctx or out NULL). */
dsc_status_t dsc_comm_new_self(dsc_ctx_t *ctx, dsc_comm_t **out);

/* One rank of MPI_COMM_WORLD. Initialises MPI (MPI_Init_thread, MPI_THREAD_FUNNELED) if no
 * one has; rank and world come from MPI_COMM_WORLD, the local rank and local size from
 * OMPI_COMM_WORLD_LOCAL_RANK / OMPI_COMM_WORLD_LOCAL_SIZE (else LOCAL_RANK /
 * LOCAL_WORLD_SIZE, else a shared-memory split of the world). Collective: every rank
 * calls it. Returns DSC_OK, DSC_ERR_COMM (MPI failed), DSC_ERR_MISUSE (MPI already
 * finalised), DSC_ERR_UNSUPPORTED (built without MPI), DSC_ERR_NOMEM, DSC_ERR_INVALID. */
dsc_status_t dsc_comm_new_mpi(dsc_ctx_t *ctx, dsc_comm_t **out);

/* dsc_comm_new_mpi whose timeout (seconds, > 0; 0 or less: the default) already governs
 * the creation itself: the duplicates of MPI_COMM_WORLD are made with MPI_Comm_idup and
 * polled, so a rank that never reaches its constructor makes the others abort the job
 * (MPI_Abort) after `timeout_s` with a message naming the step, instead of hanging.
 * (MPI_Init itself cannot time out: mpirun ends the job when a rank exits before it.) */
dsc_status_t dsc_comm_new_mpi_ex(dsc_ctx_t *ctx, double timeout_s, dsc_comm_t **out);

/* One rank of a GPU job (every rank on its own GPU): NCCL collectives on the context's
 * CUDA device, with an MPI communicator beside it (made as dsc_comm_new_mpi_ex with
 * `timeout_s`) for rank 0's NCCL unique id, the debug check, timeout queries and abort.
 * NCCL is loaded at run time (dlopen of libnccl.so.2, or the path in DSC_NCCL_LIBRARY), so
 * builds need no NCCL. NCCL_NVLS_ENABLE is set to 0 (NVLink multicast off) before NCCL
 * starts, whatever it was. Collectives run on a communication stream of the device, ordered
 * after the work issued on the context's stream before the call. Waiting for one (a blocking
 * collective's own wait, dsc_comm_wait) whose results are device buffers only orders the
 * context's later work after it and returns without blocking the host: a host read of the
 * results (a device-to-host copy) is what waits for it. A collective with host results,
 * and a barrier, still block until it completed. A collective that does not complete within
 * the timeout is found by the communicator's watchdog thread, which aborts NCCL; the next
 * call into the communicator or host read of device memory on its context reports it as
 * above and ends the job (see docs/cuda.md "NCCL").
 * Buffers may be device memory (no copy) or host memory (staged through device memory).
 * 16-bit sums are accumulated in f32 (widened on the device) unless DSC_NCCL_BF16=native.
 * Collective: every rank calls it. Returns DSC_OK; DSC_ERR_UNSUPPORTED (the context's device
 * is not cuda:N, two ranks share a GPU, NCCL cannot be loaded: the message says which);
 * DSC_ERR_COMM (NCCL or MPI failed); the errors of dsc_comm_new_mpi. */
dsc_status_t dsc_comm_new_nccl(dsc_ctx_t *ctx, double timeout_s, dsc_comm_t **out);

/* The communicator of a job under mpirun, as `dsc train` makes it. The environment
 * variable DSC_COMM picks the backend: "mpi" (dsc_comm_new_mpi_ex), "nccl"
 * (dsc_comm_new_nccl: its refusals are errors), or "auto"/unset: NCCL when the context's
 * device is a GPU (cuda:N), the world has more than one rank and no two ranks share a GPU
 * (same host and device ordinal) and libnccl loads; MPI otherwise (on a GPU, with device
 * buffers staged through pinned host memory; the reason is logged at INFO). Every rank
 * reaches the same choice. Returns as dsc_comm_new_mpi_ex / dsc_comm_new_nccl, and
 * DSC_ERR_INVALID for an unknown DSC_COMM. */
dsc_status_t dsc_comm_new_default(dsc_ctx_t *ctx, double timeout_s, dsc_comm_t **out);

/* Frees the communicator. Every request must have been waited on first. The MPI backend
 * calls MPI_Finalize only if this communicator initialised MPI (free that one last).
 * NULL is a no-op. */
void dsc_comm_free(dsc_comm_t *comm);

/* ---- Fake world (tests) ------------------------------------------------------------ */

/* A world of `n_ranks` (1..1024) in-process ranks. Each rank's thread calls
 * dsc_comm_new_fake(ctx, world, rank, &comm) once. The world lives until it and all its
 * communicators are freed (in any order). Returns DSC_OK, DSC_ERR_INVALID, DSC_ERR_NOMEM. */
dsc_status_t dsc_comm_fake_world_new(int n_ranks, dsc_comm_fake_world_t **out);
void dsc_comm_fake_world_free(dsc_comm_fake_world_t *world);
/* Rank `rank` of the world. Returns DSC_OK, DSC_ERR_INVALID (rank out of range),
 * DSC_ERR_MISUSE (that rank already has a communicator), DSC_ERR_NOMEM. */
dsc_status_t dsc_comm_new_fake(dsc_ctx_t *ctx, dsc_comm_fake_world_t *world, int rank, dsc_comm_t **out);

typedef enum dsc_comm_fault_kind {
    DSC_COMM_FAULT_DELAY = 1, /* the rank sleeps delay_s before joining collective #seq */
    DSC_COMM_FAULT_FAIL,      /* collective #seq fails with DSC_ERR_COMM on every rank */
    DSC_COMM_FAULT_STOP       /* from collective #seq on, the rank's collectives return
                                 DSC_ERR_COMM at once without joining: the others time out */
} dsc_comm_fault_kind_t;

typedef struct dsc_comm_fault {
    dsc_comm_fault_kind_t kind;
    int rank;       /* the faulty rank */
    uint64_t seq;   /* its collective number (1 = first), as dsc_comm_seq counts */
    double delay_s; /* DSC_COMM_FAULT_DELAY only */
} dsc_comm_fault_t;

/* Adds a fault (at most 16 per world). Set faults before the ranks start. Returns DSC_OK,
 * DSC_ERR_INVALID (bad kind, rank, seq 0, negative delay), DSC_ERR_NOMEM (too many). */
dsc_status_t dsc_comm_fake_world_add_fault(dsc_comm_fake_world_t *world, const dsc_comm_fault_t *fault);

/* ---- Properties and settings ------------------------------------------------------- */

int dsc_comm_rank(const dsc_comm_t *comm);
int dsc_comm_world_size(const dsc_comm_t *comm);
/* Rank among the ranks of this host, and their number (fake and self: rank and world). */
int dsc_comm_local_rank(const dsc_comm_t *comm);
int dsc_comm_local_size(const dsc_comm_t *comm);
/* "self", "mpi", "nccl" or "fake". */
const char *dsc_comm_backend_name(const dsc_comm_t *comm);

/* Timeout of each later collective, in seconds (> 0, finite). Returns DSC_ERR_INVALID
 * otherwise. Every rank should use the same value. */
dsc_status_t dsc_comm_set_timeout(dsc_comm_t *comm, double seconds);
double dsc_comm_timeout(const dsc_comm_t *comm);

/* Turns the cross-rank (operation, count, dtype) check before each collective on or off.
 * It costs one small allgather per collective. Without it, ranks that pass different
 * counts get MPI_ERR_TRUNCATE as DSC_ERR_COMM for small messages, but MPI may write past
 * a receive buffer for large ones (OpenMPI's single-copy shared-memory path): code that
 * cannot guarantee equal sizes (as dsc_initialize's agreement does) should turn it on. Default: DSC_COMM_DEBUG=1 in the
 * environment at creation, else off. Enable on every rank or none. */
void dsc_comm_set_debug_check(dsc_comm_t *comm, bool on);
bool dsc_comm_debug_check(const dsc_comm_t *comm);

/* A call-site label shown in timeout and divergence messages ("zero3 fetch h.3.attn"),
 * attached to every later collective until changed. Copied (truncated to
 * DSC_COMM_TAG_MAX - 1 bytes); NULL or "" clears it. */
void dsc_comm_set_tag(dsc_comm_t *comm, const char *tag);

/* Sequence number of the latest collective issued (0 before the first). */
uint64_t dsc_comm_seq(const dsc_comm_t *comm);

/* The latest error message on this communicator ("" if none). */
const char *dsc_comm_errmsg(const dsc_comm_t *comm);

/* True after a timeout or dsc_comm_abort: every call then returns DSC_ERR_COMM. */
bool dsc_comm_aborted(const dsc_comm_t *comm);

/* Aborts the communicator: MPI backend: MPI_Abort(errorcode) ends every rank of the job
 * and does not return; fake and self: the communicator becomes unusable (the fake world
 * sees the rank stop participating). */
void dsc_comm_abort(dsc_comm_t *comm, int errorcode);

/* ---- Start-up agreement ------------------------------------------------------------ */

/* A setting every rank must have the same value of (both strings are copied as needed;
 * a NULL value reads as "(null)"). */
typedef struct dsc_comm_field {
    const char *key;   /* "zero_optimization.stage" */
    const char *value; /* "2" */
} dsc_comm_field_t;

/* The start-up handshake: a collective (every rank calls it, in the same place of its
 * sequence) in which each rank contributes its local status (`mine`: DSC_OK, or the error
 * that stopped it before its first collective, with `my_error`) and `n_fields` settings
 * that must agree across ranks. Returns DSC_OK on every rank when every rank is OK and
 * every field agrees. Otherwise every rank returns an error and records the message
 * (dsc_comm_errmsg, and the context's error unless it already holds one):
 *   - a rank failed: a failing rank returns its own `mine` unchanged; the others return the
 *     status of the lowest failing rank R with "rank R of N failed: <its my_error>";
 *   - the fields differ: DSC_ERR_CONFIG naming the first field that differs and which
 *     ranks hold which value, e.g. "ranks disagree on model.n_layer: ranks 0 and 1 have 2,
 *     rank 2 has 3" (or a different number of fields, or different keys at a position).
 * Cost: one allgather of a fixed record (status, field count, a 64-bit XXH3 hash of all
 * fields, the message); only when the hashes differ, an allgather of one hash per field
 * and one of the first differing field's text. It obeys the communicator's timeout, never
 * runs the debug check (so a rank with the check on and another with it off still meet
 * here: put the check's setting among the fields), and counts as one or three allgathers
 * in dsc_comm_seq and the statistics. World 1: returns `mine` at once. Returns also
 * DSC_ERR_INVALID (fields NULL with n_fields > 0), DSC_ERR_NOMEM, and the errors and
 * timeouts of any collective. */
dsc_status_t dsc_comm_agree(dsc_comm_t *comm, dsc_status_t mine, const char *my_error, const dsc_comm_field_t *fields,
                            size_t n_fields);

/* ---- Byte counters ----------------------------------------------------------------- */

typedef struct dsc_comm_stats {
    uint64_t calls[DSC_COMM_OP_COUNT];         /* collectives issued, by operation */
    uint64_t payload_bytes[DSC_COMM_OP_COUNT]; /* S as defined in the file comment */
    uint64_t sent_bytes[DSC_COMM_OP_COUNT];    /* ring-convention bytes sent by this rank */
    uint64_t total_sent_bytes;                 /* sum of sent_bytes */
    uint64_t lifetime_sent_bytes;              /* total_sent_bytes since creation: a reset keeps it */
} dsc_comm_stats_t;

/* Counters since creation or the last reset (zeros for NULL; lifetime_sent_bytes counts
 * from creation). */
dsc_comm_stats_t dsc_comm_stats(const dsc_comm_t *comm);
void dsc_comm_reset_stats(dsc_comm_t *comm);

/* ---- Blocking collectives ---------------------------------------------------------- *
 * Each returns DSC_OK; DSC_ERR_INVALID (NULL buffer with count > 0, bad dtype / op / root,
 * overlapping buffers other than the in-place forms; nothing is issued); DSC_ERR_COMM
 * (backend failure, debug-check divergence, injected fault, aborted communicator);
 * DSC_ERR_TIMEOUT (fake and self only: MPI aborts the job); DSC_ERR_UNSUPPORTED (MPI:
 * count above INT_MAX elements; split the call); DSC_ERR_NOMEM. */

/* In place when send == recv. */
dsc_status_t dsc_comm_allreduce(dsc_comm_t *comm, const void *send, void *recv, size_t count, dsc_dtype_t dtype,
                                dsc_reduce_op_t op);
/* `send` holds world * count elements, `recv` count elements: this rank's slice of the
 * sum (sum only). In place when recv == send + rank * count elements: that slice of send
 * receives the result and the rest of send is clobbered. */
dsc_status_t dsc_comm_reduce_scatter(dsc_comm_t *comm, const void *send, void *recv, size_t count,
                                     dsc_dtype_t dtype);
/* `send` holds count elements, `recv` world * count. In place when send == recv + rank *
 * count elements. */
/* Reduce to owners with uneven slices: send holds total = sum of counts[0..world) elements,
 * rank q's slice at offset counts[0] + ... + counts[q-1]; recv (counts[rank] elements)
 * receives the sum over ranks of this rank's slice. Every rank passes the same counts;
 * counts may be 0. In place when recv is this rank's slice of send. A ZeRO-2 gradient range
 * that straddles a few partitions goes to its owners this way. */
dsc_status_t dsc_comm_reduce_scatter_v(dsc_comm_t *comm, const void *send, void *recv, const int64_t *counts,
                                       dsc_dtype_t dtype);
dsc_status_t dsc_comm_allgather(dsc_comm_t *comm, const void *send, void *recv, size_t count, dsc_dtype_t dtype);
dsc_status_t dsc_comm_broadcast(dsc_comm_t *comm, void *buf, size_t count, dsc_dtype_t dtype, int root);
dsc_status_t dsc_comm_barrier(dsc_comm_t *comm);

/* ---- Non-blocking collectives ------------------------------------------------------ *
 * Same arguments and errors as the blocking forms; on DSC_OK *req owns a request. The
 * buffers must stay valid and untouched (send unmodified, recv unread) until the request
 * completes. Any number of requests may be outstanding; complete each with
 * dsc_comm_wait. The timeout counts from the issue: a request that cannot complete within
 * it times out in dsc_comm_wait / dsc_comm_test (MPI: the job aborts). */
dsc_status_t dsc_comm_iallreduce(dsc_comm_t *comm, const void *send, void *recv, size_t count, dsc_dtype_t dtype,
                                 dsc_reduce_op_t op, dsc_comm_request_t **req);
dsc_status_t dsc_comm_ireduce_scatter(dsc_comm_t *comm, const void *send, void *recv, size_t count,
                                      dsc_dtype_t dtype, dsc_comm_request_t **req);
/* counts must stay valid until the request completes. */
dsc_status_t dsc_comm_ireduce_scatter_v(dsc_comm_t *comm, const void *send, void *recv, const int64_t *counts,
                                        dsc_dtype_t dtype, dsc_comm_request_t **req);
dsc_status_t dsc_comm_iallgather(dsc_comm_t *comm, const void *send, void *recv, size_t count, dsc_dtype_t dtype,
                                 dsc_comm_request_t **req);
dsc_status_t dsc_comm_ibroadcast(dsc_comm_t *comm, void *buf, size_t count, dsc_dtype_t dtype, int root,
                                 dsc_comm_request_t **req);
dsc_status_t dsc_comm_ibarrier(dsc_comm_t *comm, dsc_comm_request_t **req);

/* Blocks until the request completes (or times out), then frees it (always, even on
 * error). Returns the collective's status. NULL is DSC_OK. NCCL, results in device
 * buffers: returns once the context's later device work is ordered after the collective,
 * not blocking the host (dsc_comm_new_nccl). */
dsc_status_t dsc_comm_wait(dsc_comm_request_t *req);
/* Waits for every request of the array in order and frees them all; returns the first
 * error. NULL entries are skipped; the array itself is not freed. */
dsc_status_t dsc_comm_wait_all(dsc_comm_request_t **reqs, size_t n);
/* Progresses the request without blocking: *done tells whether it completed. Never frees
 * it: call dsc_comm_wait afterwards (it returns at once). Returns the collective's status
 * (DSC_OK while still in flight). */
dsc_status_t dsc_comm_test(dsc_comm_request_t *req, bool *done);
/* The request's collective sequence number. */
uint64_t dsc_comm_request_seq(const dsc_comm_request_t *req);

#ifdef __cplusplus
}
#endif
#endif

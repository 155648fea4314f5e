/* The NCCL backend's watchdog (src/comm/comm_watchdog.h) against the one-rank NCCL stub
 * (tests/cuda/emu/nccl_stub.c, whose fault injection these modes switch on), on the CUDA
 * emulator; each mode must end the job through MPI_Abort with the report tests/cmake/nccl.cmake
 * expects:
 *   test_nccl watchdog_hang    collective #3's NCCL call never returns (the host is stuck
 *                              inside it, never waiting): the watchdog finds it past its 1 s
 *                              deadline, aborts NCCL's communicator, which ends the call, and
 *                              the host reports #3 (operation, size, tag) as timed out;
 *   test_nccl watchdog_async   NCCL reports an asynchronous error from collective #2 on, a
 *                              non-blocking one the host queued and never waits on while it
 *                              does other work: the watchdog fires without any call into the
 *                              communicator (the timeout is 60 s: no deadline is involved),
 *                              and the host's next call reports #2 with NCCL's error;
 *   test_nccl watchdog_read    the same error, but the host's next step is a read of device
 *                              memory (no call into the communicator): the read's check
 *                              (dsc__comm_host_read_check) reports #2 and the job ends, so a
 *                              read that waited behind a collective the watchdog aborted
 *                              never hands the host what the aborted collective left;
 *   test_nccl watchdog_free    the same error, but the host's next step frees device memory
 *                              (cudaFree waits for the whole device): the free's check
 *                              reports #2 and the job ends, the buffer not handed back;
 *   test_nccl watchdog_two     two NCCL communicators on the context; the error is the
 *                              second's (its collective #1): the read's check, which polls
 *                              both, reports it as the second of the two;
 *   test_nccl watchdog_scratch the same error, the host's next step grows the CUDA device's
 *                              scratch (it frees the old one: cudaFree): reported by its check;
 *   test_nccl watchdog_upload  the same error, the host's next step a copy from page-locked
 *                              memory (it waits for the stream): reported by its check;
 *   test_nccl watchdog_probe   exit 0 where these can run (the stub is loaded), 77 elsewhere.
 * Nothing here measures time: the only clocks are the 1 s timeout (a lower bound of the
 * reported wait) and hang guards. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "comm/comm_internal.h"
#include "core/device.h"
#include "nccl_test_env.h"
#include "ops/cuda/cuda_device.h"

static bool stub_loaded(void) {
    const char *lib = getenv("DSC_NCCL_LIBRARY");
    return lib && strstr(lib, "nccl_stub") != NULL;
}

int nccl_watchdog_main(const char *mode);
int nccl_watchdog_main(const char *mode) {
    if (!stub_loaded()) {
        printf("test_nccl %s: skipped: needs the NCCL stub's fault injection (DSC_NCCL_LIBRARY=.../libnccl_stub.so)\n",
               mode);
        return 77;
    }
    const bool hang = !strcmp(mode, "watchdog_hang"), async = !strcmp(mode, "watchdog_async");
    const bool read = !strcmp(mode, "watchdog_read"), freeing = !strcmp(mode, "watchdog_free");
    const bool two = !strcmp(mode, "watchdog_two"), scratch = !strcmp(mode, "watchdog_scratch");
    const bool upload = !strcmp(mode, "watchdog_upload");
    if (hang) setenv("DSC_NCCL_STUB_HANG_AT", "3", 1);
    if (async || read || freeing || two || scratch || upload) setenv("DSC_NCCL_STUB_ASYNC_ERROR_AT", "2", 1);
    if (two) setenv("DSC_NCCL_STUB_ASYNC_ERROR_COMM", "2", 1); /* the second communicator's error only */
    dsc_ctx_t *ctx = NULL;
    dsc_comm_t *comm = NULL;
    int rc = nccl_test_setup("test_nccl watchdog", "nccl", &ctx, &comm);
    if (rc) return rc;
    if (strcmp(dsc_comm_backend_name(comm), "nccl") != 0) {
        printf("test_nccl %s: skipped: the backend is %s, not nccl\n", mode, dsc_comm_backend_name(comm));
        return 77;
    }
    if (!hang && !async && !read && !freeing && !two && !scratch && !upload) { /* the probe */
        dsc_comm_free(comm);
        dsc_ctx_free(ctx);
        return 0;
    }
    float *d = dsc__dev_alloc_raw(ctx, 1024 * sizeof(float));
    dsc__dev_zero(ctx, d, 1024 * sizeof(float));
    dsc_device_t *dev = dsc__ctx_device(ctx);
    float *pinned = upload ? dev->table->host_alloc_pinned(dev, 1024 * sizeof(float)) : NULL;
    if ((scratch && !dsc__cuda_scratch(dev, 64)) || (upload && !pinned)) { /* scratch: one to grow from */
        fprintf(stderr, "UNEXPECTED: no %s\n", scratch ? "device scratch" : "page-locked memory");
        return 1;
    }
    if (hang) {
        dsc_comm_set_timeout(comm, 1);
        for (int i = 1; i <= 3; i++) {
            if (i == 3) dsc_comm_set_tag(comm, "train step 3");
            if (dsc_comm_allreduce(comm, d, d, 1024, DSC_F32, DSC_REDUCE_SUM) != DSC_OK) {
                fprintf(stderr, "UNEXPECTED: collective #%d returned an error instead of aborting the job: %s\n", i,
                        dsc_comm_errmsg(comm));
                return 1;
            }
        }
        fprintf(stderr, "UNEXPECTED: collective #3 returned\n");
        return 1;
    }
    if (dsc_comm_allreduce(comm, d, d, 1024, DSC_F32, DSC_REDUCE_SUM) != DSC_OK) {
        fprintf(stderr, "UNEXPECTED: collective #1 failed: %s\n", dsc_comm_errmsg(comm));
        return 1;
    }
    dsc_comm_t *second = NULL; /* two: collective #2 of the stub is the second communicator's #1 */
    if (two && dsc_comm_new_nccl(ctx, 60, &second) != DSC_OK) {
        fprintf(stderr, "UNEXPECTED: no second NCCL communicator: %s\n", dsc_ctx_errmsg(ctx));
        return 1;
    }
    dsc_comm_t *erring = two ? second : comm;
    dsc_comm_request_t *req = NULL;
    if (dsc_comm_iallreduce(erring, d, d, 256, DSC_F32, DSC_REDUCE_SUM, &req) != DSC_OK) {
        fprintf(stderr, "UNEXPECTED: collective #2 was refused: %s\n", dsc_comm_errmsg(comm));
        return 1;
    }
    /* "Other work": no call into the communicator until the watchdog fired (hang guard 60 s). */
    const struct timespec tick = {0, 10 * 1000 * 1000};
    for (int t = 0; t < 6000 && !dsc__comm_nccl_watchdog_fired(erring); t++) nanosleep(&tick, NULL);
    if (!dsc__comm_nccl_watchdog_fired(erring)) {
        fprintf(stderr, "UNEXPECTED: the watchdog did not fire within 60 s\n");
        return 1;
    }
    fprintf(stderr, "test_nccl %s: the watchdog fired while the host made no call into the communicator\n", mode);
    if (two && dsc__comm_nccl_watchdog_fired(comm)) {
        fprintf(stderr, "UNEXPECTED: the first communicator's watchdog fired too\n");
        return 1;
    }
    if (read || two) {
        float x = 0;
        dsc__dev_to_host(ctx, &x, d, sizeof x); /* reports the collective and aborts the job */
        fprintf(stderr, "UNEXPECTED: the host read after the watchdog fired returned\n");
        return 1;
    }
    if (scratch) {
        dsc__cuda_scratch(dev, (size_t)1 << 24); /* reports #2 and aborts the job */
        fprintf(stderr, "UNEXPECTED: the scratch grew after the watchdog fired\n");
        return 1;
    }
    if (upload) {
        dsc__dev_from_host(ctx, d, pinned, 1024 * sizeof(float)); /* reports #2 and aborts the job */
        fprintf(stderr, "UNEXPECTED: the copy from page-locked memory after the watchdog fired returned\n");
        return 1;
    }
    if (freeing) {
        void *spare = dsc__dev_alloc_raw(ctx, 4096);
        dsc__dev_free_raw(ctx, spare, 4096); /* reports #2 and aborts the job */
        fprintf(stderr, "UNEXPECTED: the device free after the watchdog fired returned\n");
        return 1;
    }
    dsc_comm_wait(req); /* reports #2 and aborts the job */
    fprintf(stderr, "UNEXPECTED: waiting on collective #2 returned\n");
    return 1;
}

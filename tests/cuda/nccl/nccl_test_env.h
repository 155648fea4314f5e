/* Shared set-up of the multi-rank GPU tests (tests/cuda/nccl): the rank's context on its GPU
 * and the communicator DSC_COMM asks for, or a printed reason to skip (exit 77). */
#ifndef DSC_TEST_NCCL_ENV_H
#define DSC_TEST_NCCL_ENV_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dsc/comm.h"
#include "dsc/gpu.h"
#include "dsc/tensor.h"

static void nccl_test_quiet(dsc_log_level_t level, const char *message, void *user) {
    (void)user;
    if (level <= DSC_LOG_WARN || getenv("DSC_TEST_VERBOSE")) fprintf(stderr, "dsc: %s\n", message);
}

/* The rank's device: DSC_DEVICE when set, else cuda:(local rank mod GPUs): one GPU per rank
 * when there are enough, every rank on cuda:0 on a machine with one. */
static const char *nccl_test_device(char *buf, size_t n) {
    const char *env = getenv("DSC_DEVICE");
    if (env && *env) return env;
    const char *lr = getenv("OMPI_COMM_WORLD_LOCAL_RANK");
    int gpus = dsc_gpu_count(), local = lr ? atoi(lr) : 0;
    snprintf(buf, n, "cuda:%d", gpus > 0 ? local % gpus : 0);
    return buf;
}

/* Makes *ctx on the rank's GPU and *comm with dsc_comm_new_default (DSC_COMM, set to
 * `default_backend` when unset). Returns 0, or 77 after printing why the test cannot run
 * here (no GPU, no NCCL, ranks sharing a GPU with NCCL forced), or 1 on another error. */
static int nccl_test_setup(const char *prog, const char *default_backend, dsc_ctx_t **ctx, dsc_comm_t **comm) {
    if (!getenv("DSC_COMM")) setenv("DSC_COMM", default_backend, 1);
    if (!dsc_gpu_compiled() || dsc_gpu_count() <= 0) {
        printf("%s: skipped: no CUDA device is visible (%s)\n", prog,
               dsc_gpu_compiled() ? "no GPU or no driver" : "built without CUDA");
        return 77;
    }
    char dev[32];
    dsc_ctx_options_t o = DSC_CTX_OPTIONS_INIT;
    o.device = nccl_test_device(dev, sizeof dev);
    setenv("DSC_DEVICE", o.device, 1); /* the single-rank references run on the same GPU */
    o.log_fn = nccl_test_quiet;
    if (dsc_ctx_new(&o, ctx) != DSC_OK) {
        printf("%s: skipped: cannot open device %s\n", prog, o.device);
        return 77;
    }
    dsc_status_t st = dsc_comm_new_default(*ctx, 60, comm);
    if (st == DSC_ERR_UNSUPPORTED) {
        printf("%s: skipped (DSC_COMM=%s): %s\n", prog, getenv("DSC_COMM"), dsc_ctx_errmsg(*ctx));
        dsc_ctx_free(*ctx);
        return 77;
    }
    if (st != DSC_OK) {
        fprintf(stderr, "%s: no communicator: %s\n", prog, dsc_ctx_errmsg(*ctx));
        dsc_ctx_free(*ctx);
        return 1;
    }
    printf("%s: rank %d of %d on %s, backend %s\n", prog, dsc_comm_rank(*comm), dsc_comm_world_size(*comm),
           dsc_ctx_device_name(*ctx), dsc_comm_backend_name(*comm));
    return 0;
}

#endif

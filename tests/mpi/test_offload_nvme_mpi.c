/* The optimizer offload under mpirun: on every rank, parameters after 20 steps with
 * offload_optimizer.device "nvme" (each rank's swap file in the same nvme_path) are bitwise
 * equal to the same run with the state in memory, ZeRO stages 1-3, fp32 and bf16. The
 * directory is argv[1] (made by the test), and must be empty afterwards.
 * With argv[1] "cpu": offload_optimizer.device "cpu" on the guarded device (whatever
 * DSC_DEVICE says: its bytes fault on host access), the optimizer on the host, against the
 * run without offload on the guarded device.
 * With argv[1] "param": offload_param.device "cpu" at stage 3 on the guarded device (the
 * parameter partition in host memory), without and with offload_optimizer "cpu", against the
 * run without offload; the device's parameter bytes drop by the partition.
 * With argv[1] "pnvme" and argv[2] a directory: offload_param.device "nvme" at stage 3 (each
 * rank's parameter swap file in that nvme_path) on the guarded device, without the optimizer
 * offload and with offload_optimizer "nvme" (its swap files there too), against the run without
 * offload; the device's parameter bytes drop by the partition; the directory is empty after. */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "zero_check.h"

/* offload_param at stage 3 on 1-3 ranks (guarded device), fp32 and bf16, alone and with the
 * optimizer offloaded too: parameters bitwise the run without offload, device parameter bytes
 * down by the partition. dir NULL: "cpu" (the optimizer to "cpu"); else "nvme" under dir (the
 * optimizer to "nvme" there too), buffers of 1500 elements so the largest shards move in
 * pieces, the aio section's block size and queue depth set, and nothing left in dir. */
static int param_offload_main(const char *dir) {
    setenv("DSC_DEVICE", "guarded", 1);
    dsc_ctx_t *ctx = check_ctx_new(1);
    dsc_comm_t *comm = NULL;
    if (dsc_comm_new_mpi(ctx, &comm) != DSC_OK) {
        fprintf(stderr, "test_offload_nvme_mpi: no MPI: %s\n", dsc_ctx_errmsg(ctx));
        return 1;
    }
    dsc_comm_set_timeout(comm, 120);
    const int n = dsc_comm_world_size(comm), rank = dsc_comm_rank(comm);
    const char *prec[] = {"fp32", "bf16"};
    const char *where = dir ? "on NVMe" : "offloaded";
    const int steps = check_reduced() ? 5 : 20;
    for (int p = 0; p < 2; p++)
        for (int opt = 0; opt < 2; opt++) {
            /* opt 1 also keeps small parameters gathered and reuses: the re-gather after the step */
            zero_case_t c = {3, 2, prec[p], steps, 2, opt ? 2000 : 0, opt ? 1000000 : 0, 1, NULL};
            char zx[1024];
            if (!dir) {
                snprintf(zx, sizeof zx, "%s", opt ? ", \"offload_param\": {\"device\": \"cpu\"}, \"offload_optimizer\": "
                                                    "{\"device\": \"cpu\"}"
                                                  : ", \"offload_param\": {\"device\": \"cpu\", \"pin_memory\": false}");
            } else {
                int at = snprintf(zx, sizeof zx, ", \"offload_param\": {\"device\": \"nvme\", \"nvme_path\": \"%s\", "
                                  "\"buffer_count\": %d, \"buffer_size\": 1500, \"pin_memory\": %s}", dir, opt ? 4 : 2,
                                  opt ? "true" : "false");
                if (opt)
                    snprintf(zx + at, sizeof zx - (size_t)at, ", \"sub_group_size\": 2000, \"offload_optimizer\": "
                             "{\"device\": \"nvme\", \"nvme_path\": \"%s\", \"buffer_count\": 2, \"pipeline_read\": "
                             "true, \"pipeline_write\": true}", dir);
            }
            zero_result_t mem, off;
            int r1 = zero_run(&c, comm, n, rank, &mem);
            int r2 = zero_run_extra(&c, zx, dir ? ", \"aio\": {\"block_size\": 8192, \"queue_depth\": 4}" : NULL, comm,
                                    n, rank, &off);
            CHECK_MSG(r1 == 0 && r2 == 0, "np %d rank %d %s opt %d: %s | %s", n, rank, prec[p], opt, mem.error, off.error);
            if (r1 == 0 && r2 == 0) {
                CHECK_MSG(memcmp(mem.params, off.params, (size_t)mem.numel * 4) == 0, "np %d rank %d %s opt %d: "
                          "parameters with the partition %s differ from the run without offload", n, rank, prec[p],
                          opt, where);
                const size_t part = (size_t)off.shards * (p == 0 ? 4 : 2);
                CHECK_MSG(mem.mem_params - off.mem_params == part, "np %d rank %d %s opt %d: device parameter bytes "
                          "%zu -> %zu, partition %zu", n, rank, prec[p], opt, mem.mem_params, off.mem_params, part);
            }
            zero_result_free(&mem);
            zero_result_free(&off);
        }
    dsc_comm_barrier(comm);
    if (dir) {
        DIR *d = opendir(dir);
        int left = 0;
        for (struct dirent *e; d && (e = readdir(d));) left += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
        if (d) closedir(d);
        CHECK_MSG(d && left == 0, "%s: %d entries left (or unreadable)", dir, left);
    }
    char name[64];
    snprintf(name, sizeof name, "test_offload_%s_mpi rank %d/%d", dir ? "pnvme" : "param", rank, n);
    int rc = check_finish(name);
    dsc_comm_free(comm);
    dsc_ctx_free(ctx);
    return rc;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: test_offload_nvme_mpi NVME_DIR | cpu | param | pnvme NVME_DIR\n");
        return 2;
    }
    if (strcmp(argv[1], "param") == 0) return param_offload_main(NULL);
    if (strcmp(argv[1], "pnvme") == 0) return argc > 2 ? param_offload_main(argv[2]) : 2;
    const bool cpu = strcmp(argv[1], "cpu") == 0;
    if (cpu) setenv("DSC_DEVICE", "guarded", 1);
    dsc_ctx_t *ctx = check_ctx_new(1);
    dsc_comm_t *comm = NULL;
    if (dsc_comm_new_mpi(ctx, &comm) != DSC_OK) {
        fprintf(stderr, "test_offload_nvme_mpi: no MPI: %s\n", dsc_ctx_errmsg(ctx));
        return 1;
    }
    dsc_comm_set_timeout(comm, 120);
    const int n = dsc_comm_world_size(comm), rank = dsc_comm_rank(comm);
    char zx[700];
    snprintf(zx, sizeof zx,
             ", \"sub_group_size\": 2000, \"offload_optimizer\": {\"device\": \"nvme\", \"nvme_path\": \"%s\", "
             "\"buffer_count\": 2, \"pipeline_read\": true, \"pipeline_write\": %s}",
             argv[1], n == 2 ? "false" : "true");
    if (cpu) snprintf(zx, sizeof zx, ", \"offload_optimizer\": {\"device\": \"cpu\"}");
    const char *prec[] = {"fp32", "bf16"};
    /* DSC_TEST_REDUCED (the ASan build's guarded pass): every case, 5 steps instead of 20 */
    const int steps = check_reduced() ? 5 : 20;
    for (int stage = 1; stage <= 3; stage++)
        for (int p = 0; p < 2; p++) {
            zero_case_t c = {stage, 2, prec[p], steps, 2, 0, 0, 0, NULL};
            if (cpu && stage >= 2) c.overlap = 1; /* non-blocking sends: the host mirror follows their additions */
            zero_result_t mem, nvme;
            int r1 = zero_run(&c, comm, n, rank, &mem);
            int r2 = zero_run_extra(&c, zx, cpu ? NULL : ", \"aio\": {\"block_size\": 131072, \"queue_depth\": 2}",
                                    comm, n, rank, &nvme);
            CHECK_MSG(r1 == 0 && r2 == 0, "np %d rank %d stage %d %s: %s | %s", n, rank, stage, prec[p], mem.error,
                      nvme.error);
            if (r1 == 0 && r2 == 0)
                CHECK_MSG(memcmp(mem.params, nvme.params, (size_t)mem.numel * 4) == 0,
                          "np %d rank %d stage %d %s: %s-offloaded parameters differ from the run without offload", n,
                          rank, stage, prec[p], cpu ? "cpu" : "NVMe");
            if (r1 == 0 && r2 == 0 && cpu)
                CHECK_MSG(mem.mem_optim > 0 && nvme.mem_optim == 0, "np %d rank %d stage %d %s: device optimizer bytes "
                          "%zu -> %zu", n, rank, stage, prec[p], mem.mem_optim, nvme.mem_optim);
            zero_result_free(&mem);
            zero_result_free(&nvme);
        }
    dsc_comm_barrier(comm);
    DIR *d = cpu ? NULL : opendir(argv[1]);
    int left = 0;
    for (struct dirent *e; d && (e = readdir(d));) left += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    if (d) closedir(d);
    CHECK_MSG(cpu || (d && left == 0), "%s: %d entries left (or unreadable)", argv[1], left);
    char name[64];
    snprintf(name, sizeof name, "test_offload_%s_mpi rank %d/%d", cpu ? "cpu" : "nvme", rank, n);
    int rc = check_finish(name);
    dsc_comm_free(comm);
    dsc_ctx_free(ctx);
    return rc;
}

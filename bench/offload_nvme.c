/* NVMe optimizer offload (src/zero/offload_nvme.c): swap throughput beside the disk's own
 * sequential O_DIRECT bandwidth, measured in the same run on the same directory.
 *     ./build/bench/offload_nvme [--dir /tmp] [--mib 512] [--sub-group 8388608] [--buffers 4]
 *                                [--block-size 1048576] [--queue-depth 8] [--repeat 3] [--no-step]
 * 1. the disk: one file of --mib MiB written and read back sequentially with O_DIRECT in
 *    64 MiB pwrite/pread calls, synchronously (dd oflag=direct bs=64M; the write's figure
 *    leaves out the fsync after it, as the swap file is never synced);
 * 2. the swapper: a swap file of the same size (2 fp32 states, Adam's), one pass writing every
 *    sub-group and one reading it, through the buffers and io_uring as an optimizer step
 *    does (no compute); the best of --repeat of each, and its share of the disk's figure;
 * 3. (without --no-step) one AdamW step over the partition with the states in memory, and
 *    through the swap file with the pipeline off and with pipeline_read + pipeline_write.
 * Figures are GB/s (1e9 bytes). The directory's filesystem is printed (docs/offload.md). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>
#include <omp.h>

#include "bench_util.h"
#include "dsc/dsc.h"
#include "optim/optim_internal.h"
#include "zero/offload_nvme.h"

static const char *fs_name(const char *dir) {
    struct statfs s;
    if (statfs(dir, &s) != 0) return "?";
    switch ((unsigned long)s.f_type) {
    case 0xEF53: return "ext4";
    case 0x58465342: return "xfs";
    case 0x9123683E: return "btrfs";
    case 0x01021994: return "tmpfs";
    case 0x794c7630: return "overlayfs";
    default: return "other";
    }
}

/* The disk alone: sequential O_DIRECT write (+ fsync) and read of `bytes`, best of `repeat`. */
static int disk_baseline(const char *dir, size_t bytes, int repeat, double *wr, double *rd) {
    const size_t chunk = 64u << 20;
    char *buf = NULL;
    if (posix_memalign((void **)&buf, 4096, chunk) != 0) return -1;
    memset(buf, 0x5a, chunk);
    *wr = *rd = 0;
    for (int r = 0; r < repeat; r++) {
        int fd = open(dir, O_TMPFILE | O_RDWR | O_DIRECT, 0600);
        if (fd < 0) {
            fprintf(stderr, "offload_nvme: O_DIRECT file in %s: %s\n", dir, strerror(errno));
            free(buf);
            return -1;
        }
        double t0 = bench_now_s();
        for (size_t off = 0; off < bytes; off += chunk)
            if (pwrite(fd, buf, bytes - off < chunk ? bytes - off : chunk, (off_t)off) < 0) break;
        double t1 = bench_now_s(); /* no fsync in the figure: the swap file is never synced either */
        fsync(fd);
        const double t1b = bench_now_s();
        for (size_t off = 0; off < bytes; off += chunk)
            if (pread(fd, buf, bytes - off < chunk ? bytes - off : chunk, (off_t)off) < 0) break;
        double t2 = bench_now_s();
        close(fd);
        if (bytes / (t1 - t0) > *wr) *wr = bytes / (t1 - t0);
        if (bytes / (t2 - t1b) > *rd) *rd = bytes / (t2 - t1b);
    }
    free(buf);
    return 0;
}

int main(int argc, char **argv) {
    const char *dir = "/tmp";
    long mib = 512, sub = 8388608, buffers = 4, block = 1048576, qd = 8, repeat = 3;
    int step = 1;
    for (int i = 1; i < argc; i++) {
        const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(k, "--no-step")) {
            step = 0;
            continue;
        }
        if (!v) {
            fprintf(stderr, "offload_nvme: %s needs a value\n", k);
            return 2;
        }
        i++;
        if (!strcmp(k, "--dir")) dir = v;
        else if (!strcmp(k, "--mib")) mib = atol(v);
        else if (!strcmp(k, "--sub-group")) sub = atol(v);
        else if (!strcmp(k, "--buffers")) buffers = atol(v);
        else if (!strcmp(k, "--block-size")) block = atol(v);
        else if (!strcmp(k, "--queue-depth")) qd = atol(v);
        else if (!strcmp(k, "--repeat")) repeat = atol(v);
        else {
            fprintf(stderr, "offload_nvme: unknown option %s\n", k);
            return 2;
        }
    }
    if (mib < 1 || sub < 1 || repeat < 1) return 2;
    const int64_t n = (int64_t)mib * 1048576 / 8; /* 2 states of 4 bytes per element */
    double dw, dr;
    if (disk_baseline(dir, (size_t)mib << 20, (int)repeat, &dw, &dr) != 0) return 1;

    dsc_ctx_options_t co = DSC_CTX_OPTIONS_INIT;
    dsc_ctx_t *ctx = NULL;
    if (dsc_ctx_new(&co, &ctx) != DSC_OK) return 1;
    dsc_nvme_options_t o = {dir, sub, buffers, true, true, block, qd, false};
    dsc_nvme_t *nv = NULL;
    char err[512];
    if (dsc__nvme_new(ctx, &o, 0, n, 2, NULL, &nv, err, sizeof err) != DSC_OK) {
        fprintf(stderr, "offload_nvme: %s\n", err);
        return 1;
    }
    double sw = 0, sr = 0;
    const double bytes = (double)dsc__nvme_bytes(nv);
    for (int r = 0; r < repeat; r++) {
        double tw, tr;
        if (dsc__nvme_stream(nv, true, &tw) != DSC_OK || dsc__nvme_stream(nv, false, &tr) != DSC_OK) {
            fprintf(stderr, "offload_nvme: %s\n", dsc_ctx_errmsg(ctx));
            return 1;
        }
        if (bytes / tw > sw) sw = bytes / tw;
        if (bytes / tr > sr) sr = bytes / tr;
    }
    printf("offload_nvme: %s (%s), swap file %.0f MiB\n  %s\n", dir, fs_name(dir), bytes / 1048576.0,
           dsc__nvme_describe(nv));
    printf("| what | write GB/s | read GB/s |\n|---|---|---|\n");
    printf("| disk, sequential O_DIRECT, 64 MiB calls | %.2f | %.2f |\n", dw / 1e9, dr / 1e9);
    printf("| swap file, sub-groups of %ld x 2 states, %ld buffers, queue depth %ld x %ld KiB | %.2f (%.0f%%) | %.2f "
           "(%.0f%%) |\n", sub, buffers, qd, block / 1024, sw / 1e9, 100 * sw / dw, sr / 1e9, 100 * sr / dr);
    dsc__nvme_free(nv);

    if (step) {
        dsc_optim_params_t p = dsc_optim_default_params(DSC_OPTIM_ADAMW);
        p.weight_decay = 0.01;
        float *master = malloc((size_t)n * 4), *grad = malloc((size_t)n * 4);
        if (!master || !grad) return 1;
        for (int64_t i = 0; i < n; i++) master[i] = (float)(i % 1000) * 1e-3f, grad[i] = (float)(i % 7) * 1e-2f;
        dsc_optim_t *mem = NULL, *off = NULL;
        double t_mem = 0, t_off[2] = {0, 0};
        if (dsc_optim_new(ctx, &p, (size_t)n, NULL, 0, &mem) == DSC_OK) {
            dsc_optim_step(mem, master, grad, 1.0f, 1e-3, NULL, DSC_F32); /* first touch of the states */
            double t0 = bench_now_s();
            dsc_optim_step(mem, master, grad, 1.0f, 1e-3, NULL, DSC_F32);
            t_mem = bench_now_s() - t0;
            dsc_optim_free(mem);
        }
        for (int pipe = 0; pipe < 2; pipe++) {
            dsc_nvme_options_t so = o;
            so.pipeline_read = so.pipeline_write = pipe == 1;
            if (dsc__optim_new_unbacked(ctx, &p, (size_t)n, NULL, 0, &off) != DSC_OK ||
                dsc__nvme_new(ctx, &so, 0, n, 2, NULL, &nv, err, sizeof err) != DSC_OK) {
                fprintf(stderr, "offload_nvme: %s %s\n", err, dsc_ctx_errmsg(ctx));
                return 1;
            }
            dsc__nvme_step(nv, off, master, grad, 1.0f, 1e-3, NULL, DSC_F32);
            double t0 = bench_now_s();
            dsc__nvme_step(nv, off, master, grad, 1.0f, 1e-3, NULL, DSC_F32);
            t_off[pipe] = bench_now_s() - t0;
            dsc__nvme_free(nv);
            dsc_optim_free(off);
        }
        printf("\nAdamW step over %lld elements (%d OpenMP threads): states in memory %.3f s; through the swap file: "
               "pipeline off %.3f s, pipeline_read + pipeline_write %.3f s\n",
               (long long)n, omp_get_max_threads(), t_mem, t_off[0], t_off[1]);
        free(master);
        free(grad);
    }
    dsc_ctx_free(ctx);
    return 0;
}

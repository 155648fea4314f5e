/* Parameter offload to NVMe (zero_optimization.offload_param.device "nvme", stage 3): this
 * rank's parameter partition lives in a swap file under nvme_path and every gather reads its
 * shard from there (src/zero/param_nvme.c).
 * - The swapper alone: records written from a producer read back exactly, through buffers
 *   smaller than a shard (pieces), read-aheads used by the next read and dropped by a write,
 *   an edit of a range inside a shard.
 * - The engine, on the guarded device (whose bytes fault on host access) and on the cpu device
 *   (where "cpu" is a no-op but "nvme" is not): after 20 steps the parameters are bitwise those
 *   of the run without offload, fp32 and bf16, without and with the optimizer offloaded ("cpu"
 *   or "nvme"), with every parameter released after use and with persistent parameters,
 *   prefetch and reuse; the memory's parameter bytes drop by the partition, the host holds the
 *   swap buffers, dsc estimate plans both and the file's bytes; nvme_path is empty afterwards.
 * - An edit between steps reaches the file (bitwise the run without offload). The gathers
 *   upload the shards from the swap buffers with from_host_async (counted: the synchronous
 *   uploads are those of the run without offload); the guarded device fails a buffer refilled
 *   before the host waited for its upload.
 * - A bad nvme_path (missing, not a directory, not creatable, too small: RLIMIT_FSIZE) fails
 *   dsc_initialize with the key and the path, and leaves nothing behind.
 * tests/mpi/test_offload_nvme_mpi.c (argv "pnvme") compares on 1-3 ranks;
 * tests/cli/train_param_nvme_kill.sh kills a run and resumes it. */
#include <dirent.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "check.h"
#include "core/device.h"
#include "core/device_count.h"
#include "zero/param_nvme.h"
#include "zero_check.h"

static int dir_entries(const char *path) {
    DIR *d = opendir(path);
    if (!d) return -1;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    return n;
}

/* The producer of test_swapper: element k of the partition is k * 0.5 + gen (exact in fp32). */
typedef struct {
    float gen;
} pattern_t;
static dsc_status_t fill_pattern(void *user, int64_t local, int64_t n, void *host) {
    const pattern_t *p = user;
    for (int64_t k = 0; k < n; k++) ((float *)host)[k] = (float)(local + k) * 0.5f + p->gen;
    return DSC_OK;
}

static void test_swapper(const char *dir) {
    dsc_ctx_t *ctx = check_ctx_new(1); /* the cpu device: its memory is the destination */
    const int64_t shard[4] = {5000, 10, 1, 1000};
    const int n = 4;
    /* buffers of 1024 floats (4096 bytes): shard 0 needs 5 pieces, the others one */
    const dsc_pnvme_options_t o = {dir, 2, 1000, true, 1048576, 8, false};
    dsc_pnvme_t *pv = NULL;
    char err[512] = "";
    CHECK_MSG(dsc__pnvme_new(ctx, &o, 0, shard, n, DSC_F32, &pv, err, sizeof err) == DSC_OK, "%s", err);
    if (!pv) {
        dsc_ctx_free(ctx);
        return;
    }
    /* each record rounded to 4096 bytes: 20000 -> 20480, 40, 4, 4000 -> 4096 each */
    CHECK_MSG(dsc__pnvme_bytes(pv) == 20480 + 4096 + 4096 + 4096, "file %lld", (long long)dsc__pnvme_bytes(pv));
    CHECK_MSG(dsc__pnvme_host_bytes(pv) == 2 * 4096, "buffers %lld", (long long)dsc__pnvme_host_bytes(pv));
    CHECK_MSG(dir_entries(dir) == 0, "the swap file is visible in %s", dir); /* unnamed or unlinked */
    pattern_t pat = {3.0f};
    CHECK_OK(dsc__pnvme_write_all(pv, fill_pattern, &pat));
    float *got = malloc(5000 * sizeof *got);
    int64_t local = 0, bad = 0;
    for (int i = 0; i < n; i++) {
        memset(got, 0, 5000 * sizeof *got);
        CHECK_OK(dsc__pnvme_read(pv, i, got));
        for (int64_t k = 0; k < shard[i]; k++) bad += got[k] != (float)(local + k) * 0.5f + 3.0f;
        local += shard[i];
    }
    CHECK_MSG(bad == 0, "%lld elements read back wrong", (long long)bad);
    /* read-ahead: parameters 1 and 3 fit one buffer each, 0 does not */
    CHECK(!dsc__pnvme_prefetch(pv, 0));
    CHECK(dsc__pnvme_prefetch(pv, 1));
    CHECK(dsc__pnvme_prefetch(pv, 2));
    CHECK(!dsc__pnvme_prefetch(pv, 3)); /* both buffers hold read-aheads */
    const int64_t hits = dsc__pnvme_stats(pv).prefetch_hits;
    CHECK_OK(dsc__pnvme_read(pv, 2, got));
    CHECK(got[0] == 5010 * 0.5f + 3.0f);
    CHECK(dsc__pnvme_stats(pv).prefetch_hits == hits + 1);
    /* a read of a parameter not read ahead evicts a read-ahead when no buffer is free */
    CHECK(dsc__pnvme_prefetch(pv, 3));
    CHECK_OK(dsc__pnvme_read(pv, 0, got));
    CHECK(got[4999] == 4999 * 0.5f + 3.0f);
    /* an edit of [1500, 2500) of shard 0 (it spans two pieces), then a new generation: the
     * edit, then the whole partition rewritten, each visible, read-aheads never stale */
    CHECK(dsc__pnvme_prefetch(pv, 1));
    float edit[1000];
    for (int k = 0; k < 1000; k++) edit[k] = -1.0f - (float)k;
    CHECK_OK(dsc__pnvme_write_range(pv, 0, 1500, 1000, edit));
    CHECK_OK(dsc__pnvme_read(pv, 0, got));
    bad = 0;
    for (int64_t k = 0; k < 5000; k++)
        bad += got[k] != (k >= 1500 && k < 2500 ? -1.0f - (float)(k - 1500) : (float)k * 0.5f + 3.0f);
    CHECK_MSG(bad == 0, "after the edit: %lld elements wrong", (long long)bad);
    pat.gen = 7.0f;
    CHECK_OK(dsc__pnvme_write_all(pv, fill_pattern, &pat)); /* drops the read-ahead of parameter 1 */
    CHECK_OK(dsc__pnvme_read(pv, 1, got));
    CHECK_MSG(got[9] == 5009 * 0.5f + 7.0f, "parameter 1 after the rewrite: %g", got[9]);
    const dsc_pnvme_stats_t s = dsc__pnvme_stats(pv);
    CHECK_MSG(s.bytes_written > 0 && s.bytes_read > 0 && s.bytes_written % 4096 == 0 && s.bytes_read % 4096 == 0,
              "I/O in whole aligned blocks: read %lld, written %lld", (long long)s.bytes_read,
              (long long)s.bytes_written);
    printf("  swapper: %s; read %lld bytes, wrote %lld, %lld read-ahead hit(s)\n", dsc__pnvme_describe(pv),
           (long long)s.bytes_read, (long long)s.bytes_written, (long long)s.prefetch_hits);
    free(got);
    dsc__pnvme_free(pv);
    CHECK(dir_entries(dir) == 0);
    dsc_ctx_free(ctx);
}

static void estimate(const char *device, int prec, int opt, int buffer_count, bool nvme, dsc_memory_estimate_t *en) {
    dsc_gpt_config_t gc = DSC_GPT_CONFIG_TINY;
    gc.block_size = 16;
    dsc_estimate_options_t eo;
    dsc_estimate_options_default(&gc, &eo);
    eo.micro_batch = 2;
    eo.param_dtype = prec ? DSC_BF16 : DSC_F32;
    eo.accumulate_fp32 = prec == 1;
    eo.reduce_bucket_size = 5000;
    eo.persistence_threshold = 0;
    eo.max_reuse_distance = 0;
    eo.offload_device = (dsc_config_offload_device_t)opt;
    eo.sub_group_size = opt ? 2000 : eo.sub_group_size;
    eo.offload_buffer_count = 2;
    eo.offload_param_device = nvme ? DSC_CONFIG_OFFLOAD_NVME : DSC_CONFIG_OFFLOAD_NONE;
    eo.offload_param_buffer_count = buffer_count;
    eo.offload_param_buffer_size = 3000;
    eo.device_is_host = strcmp(device, "cpu") == 0;
    char err[256];
    CHECK_OK(dsc_estimate_memory(&eo, 3, false, en, err, sizeof err));
}

static void test_engine(const char *dir) {
    const char *devices[] = {"guarded", "cpu"}, *prec[] = {"fp32", "bf16"}, *opts[] = {"none", "cpu", "nvme"};
    const int steps = check_reduced() ? 5 : 20;
    for (int dv = 0; dv < 2; dv++)
        for (int pi = 0; pi < 2; pi++)
            for (int sched = 0; sched < 2; sched++) {
                setenv("DSC_DEVICE", devices[dv], 1);
                /* sched 0: every parameter released after use; 1: persistent ones, prefetch and reuse */
                zero_case_t c = {3, 2, prec[pi], steps, 2, sched ? 2000 : 0, sched ? 1000000 : 0, 0, NULL};
                dsc_ctx_t *cctx = check_ctx_new(1);
                dsc_comm_t *comm = NULL;
                CHECK_OK(dsc_comm_new_self(cctx, &comm));
                zero_result_t mem;
                const int r1 = zero_run(&c, comm, 1, 0, &mem);
                CHECK_MSG(r1 == 0, "%s %s sched %d, without offload: %s", devices[dv], prec[pi], sched, mem.error);
                for (int opt = 0; opt < 3 && r1 == 0; opt++) {
                    /* buffers of 3000 elements: wte's shard (4160) moves in two pieces, the others in one */
                    const int bc = sched ? 4 : 2;
                    char zx[1024];
                    int at = snprintf(zx, sizeof zx, ", \"offload_param\": {\"device\": \"nvme\", \"nvme_path\": \"%s\", "
                                      "\"buffer_count\": %d, \"buffer_size\": 3000}", dir, bc);
                    /* sub_group_size below the partition: the host step would run in parts (it must not:
                     * there is no 16-bit update to stage, and it reads the whole gradient partition) */
                    if (opt == 1)
                        snprintf(zx + at, sizeof zx - (size_t)at, ", \"sub_group_size\": 2000, \"offload_optimizer\": "
                                 "{\"device\": \"cpu\"}");
                    if (opt == 2)
                        snprintf(zx + at, sizeof zx - (size_t)at, ", \"sub_group_size\": 2000, \"offload_optimizer\": "
                                 "{\"device\": \"nvme\", \"nvme_path\": \"%s\", \"buffer_count\": 2}", dir);
                    zero_result_t off;
                    const int r2 = zero_run_extra(&c, zx, NULL, comm, 1, 0, &off);
                    CHECK_MSG(r2 == 0, "%s %s sched %d opt %s: %s", devices[dv], prec[pi], sched, opts[opt], off.error);
                    if (r2 == 0) {
                        CHECK_MSG(memcmp(mem.params, off.params, (size_t)mem.numel * 4) == 0,
                                  "%s %s sched %d opt %s: parameters with the partition on NVMe differ from the run "
                                  "without offload", devices[dv], prec[pi], sched, opts[opt]);
                        const size_t part = (size_t)off.shards * (pi == 0 ? 4 : 2);
                        CHECK_MSG(mem.mem_params - off.mem_params == part, "%s %s sched %d opt %s: parameter bytes "
                                  "%zu -> %zu, the partition is %zu", devices[dv], prec[pi], sched, opts[opt],
                                  mem.mem_params, off.mem_params, part);
                        dsc_memory_estimate_t en, en0;
                        estimate(devices[dv], pi, opt, bc, true, &en);
                        estimate(devices[dv], pi, opt, bc, false, &en0);
                        /* wte 65 x 64 = 4160 elements is the largest shard: a buffer holds 3000 */
                        const size_t buffers = (size_t)bc * (size_t)dsc__nvme_round(3000 * (pi == 0 ? 4 : 2));
                        const bool host_opt = opt > 0 && dv == 0; /* the optimizer on the host: its bytes too */
                        CHECK_MSG(en.host_bytes == (int64_t)off.offload_host && (host_opt || off.offload_host == buffers),
                                  "%s %s sched %d opt %s: host bytes %zu measured, %lld planned, swap buffers %zu",
                                  devices[dv], prec[pi], sched, opts[opt], off.offload_host, (long long)en.host_bytes,
                                  buffers);
                        if (sched == 0)
                            CHECK_MSG(en0.state.params - en.state.params == (int64_t)part &&
                                          en.param_nvme_bytes > (int64_t)part && en0.param_nvme_bytes == 0,
                                      "%s %s opt %s: planned parameter bytes drop %lld, file %lld, for a partition "
                                      "of %zu", devices[dv], prec[pi], opts[opt],
                                      (long long)(en0.state.params - en.state.params), (long long)en.param_nvme_bytes,
                                      part);
                        if (sched == 0 && opt == 0)
                            printf("  %s %s: parameter bytes %zu -> %zu (partition %zu), NVMe file %lld bytes "
                                   "(planned), host %zu (planned %lld)\n", devices[dv], prec[pi], mem.mem_params,
                                   off.mem_params, part, (long long)en.param_nvme_bytes, off.offload_host,
                                   (long long)en.host_bytes);
                    }
                    zero_result_free(&off);
                    CHECK_MSG(dir_entries(dir) == 0, "%s: %d entries left", dir, dir_entries(dir));
                }
                zero_result_free(&mem);
                dsc_comm_free(comm);
                dsc_ctx_free(cctx);
            }
    setenv("DSC_DEVICE", "guarded", 1);
}

/* An edit of wte between steps (gather, halve, release with a modifier rank) reaches the swap
 * file and the master: bitwise the run without offload (bf16, guarded device; zero_edit_run). */
static void test_edit(const char *dir) {
    static float a[200000], b[200000];
    char extra[2][512];
    snprintf(extra[0], sizeof extra[0], ", \"offload_param\": {\"device\": \"nvme\", \"nvme_path\": \"%s\", "
             "\"buffer_size\": 3000}", dir);
    snprintf(extra[1], sizeof extra[1], ", \"offload_param\": {\"device\": \"nvme\", \"nvme_path\": \"%s\"}, "
             "\"offload_optimizer\": {\"device\": \"cpu\"}", dir);
    int64_t na = 0, nb = 0;
    char ea[512] = "", eb[512] = "";
    dsc_device_counts_t ca = {0};
    const int ra = zero_edit_run(3, NULL, a, &na, &ca, ea, sizeof ea);
    for (int k = 0; k < 2; k++) {
        dsc_device_counts_t cb = {0};
        const int rb = zero_edit_run(3, extra[k], b, &nb, &cb, eb, sizeof eb);
        CHECK_MSG(ra == 0 && rb == 0 && na == nb && na <= 200000, "edit runs %d: %s | %s", k, ea, eb);
        if (ra == 0 && rb == 0)
            CHECK_MSG(memcmp(a, b, (size_t)na * 4) == 0, "case %d: after an edit of wte.weight the run with the "
                      "partition on NVMe differs from the run without offload", k);
        /* the guarded device has from_host_async: every gather's shard went up with it (each of
         * the 16 micro-steps gathers every parameter at least once: >= 16 x the partition's
         * bf16 bytes), none with the waiting from_host */
        const uint64_t part = (uint64_t)na * 2, async_bytes = cb.bytes[DSC_DEVCOUNT_FROM_HOST_ASYNC];
        CHECK_MSG(async_bytes >= 16 * part && cb.calls[DSC_DEVCOUNT_FROM_HOST] == ca.calls[DSC_DEVCOUNT_FROM_HOST] &&
                      ca.calls[DSC_DEVCOUNT_FROM_HOST_ASYNC] == 0,
                  "case %d: %llu bytes uploaded asynchronously (want >= %llu), %lld synchronous uploads (%lld without "
                  "offload)", k, (unsigned long long)async_bytes, (unsigned long long)(16 * part),
                  (long long)cb.calls[DSC_DEVCOUNT_FROM_HOST], (long long)ca.calls[DSC_DEVCOUNT_FROM_HOST]);
        printf("  edit case %d: gathers uploaded %llu bytes in %lld from_host_async calls; from_host calls %lld "
               "(without offload %lld)\n", k, (unsigned long long)async_bytes,
               (long long)cb.calls[DSC_DEVCOUNT_FROM_HOST_ASYNC], (long long)cb.calls[DSC_DEVCOUNT_FROM_HOST],
               (long long)ca.calls[DSC_DEVCOUNT_FROM_HOST]);
    }
    CHECK(dir_entries(dir) == 0);
}

/* A bad nvme_path: dsc_initialize fails, the message names the key and the path (and what
 * went wrong), no engine comes back and nothing is left in the directory. */
static void test_bad_path(const char *dir) {
    dsc_ctx_t *ctx = check_ctx_new(5);
    dsc_gpt_config_t gc = DSC_GPT_CONFIG_TINY;
    gc.block_size = 16;
    dsc_gpt_t *gpt = NULL;
    CHECK_OK(dsc_gpt_new(ctx, &gc, &gpt));
    char missing[600], file[600];
    snprintf(missing, sizeof missing, "%s/no-such-dir", dir);
    snprintf(file, sizeof file, "%s/a-file", dir);
    FILE *f = fopen(file, "w");
    if (f) fclose(f);
    const struct {
        const char *path, *why;
        bool small_fsize;
    } bad[] = {
        {missing, "No such file or directory", false},
        {file, "not a directory", false},
        {"/proc", "cannot create the swap file", false},
        {dir, "cannot reserve", true}, /* the file may not grow: as a full disk */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char json[1024], err[1024] = "", want[700];
        snprintf(json, sizeof json, "{\"train_batch_size\": 2, \"zero_optimization\": {\"stage\": 3, \"offload_param\": "
                 "{\"device\": \"nvme\", \"nvme_path\": \"%s\"}}, \"optimizer\": {\"type\": \"AdamW\"}}", bad[i].path);
        snprintf(want, sizeof want, "zero_optimization.offload_param.nvme_path '%s'", bad[i].path);
        struct rlimit saved;
        getrlimit(RLIMIT_FSIZE, &saved);
        void (*old)(int) = SIG_DFL;
        if (bad[i].small_fsize) {
            old = signal(SIGXFSZ, SIG_IGN); /* EFBIG instead of the signal */
            struct rlimit small = {4096, saved.rlim_max};
            setrlimit(RLIMIT_FSIZE, &small);
        }
        dsc_engine_options_t o = DSC_ENGINE_OPTIONS_INIT;
        o.config_json = json;
        dsc_initialize_result_t r = {0};
        const dsc_status_t st = dsc_initialize(gpt->model, &o, &r, err, sizeof err);
        if (bad[i].small_fsize) {
            setrlimit(RLIMIT_FSIZE, &saved);
            signal(SIGXFSZ, old);
        }
        CHECK_MSG(st == DSC_ERR_IO && r.engine == NULL, "case %zu: status %d", i, (int)st);
        CHECK_MSG(strstr(err, want) && strstr(err, bad[i].why), "case %zu: '%s' lacks '%s' or '%s'", i, err, want,
                  bad[i].why);
        CHECK_MSG(dir_entries(dir) == 1, "case %zu: %d entries in %s (the plain file only)", i, dir_entries(dir), dir);
        if (i == 3) printf("  %s\n", err);
        if (r.engine) dsc_engine_free(r.engine);
    }
    unlink(file);
    dsc_gpt_free(gpt);
    dsc_ctx_free(ctx);
}

int main(void) {
    char dir[256];
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/dsc_pnvme_XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    setenv("DSC_DEVICE", "cpu", 1); /* the swapper's destination is host memory */
    test_swapper(dir);
    setenv("DSC_DEVICE", "guarded", 1);
    test_engine(dir);
    test_edit(dir);
    test_bad_path(dir);
    check_rm_tree(dir);
    return check_finish("test_offload_param_nvme");
}

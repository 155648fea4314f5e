/* ZeRO-Infinity's optimizer state on NVMe (src/zero/offload_nvme.c, aio.c) on the CPU device:
 *  - every element-wise optimizer stepped in sub-groups through the swap file ends bitwise
 *    equal to the same optimizer stepping its state in memory (5 steps, many sub-groups,
 *    every pipeline setting, Adagrad's non-zero initial accumulator written to the file);
 *  - the engine with offload_optimizer.device "nvme" gives parameters bitwise equal to the
 *    in-memory run after 20 steps, stages 1-3, fp32 and bf16 (one rank; tests/mpi: 1-3);
 *  - "cpu" offload is accepted on the cpu device; Lamb is refused with nvme;
 *  - get/set across sub-groups round-trip; a missing directory, a file as nvme_path and a
 *    full disk (RLIMIT_FSIZE below the state's size) fail with the path and the reason;
 *  - an I/O error inside a step fails it naming the sub-group and marks the file unusable;
 *  - the swap file leaves nothing in nvme_path. */
#define _GNU_SOURCE
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "check.h"
#include "optim/optim_internal.h"
#include "zero/offload_nvme.h"
#include "zero_check.h"

static char g_dir[256];

static int count_entries(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

static dsc_nvme_options_t opts(int64_t sub_group, int64_t buffers, bool pr, bool pw) {
    return (dsc_nvme_options_t){g_dir, sub_group, buffers, pr, pw, 1048576, 8, false};
}

/* Optimizer `p` over n elements: in memory vs through the swap file (sub-groups of 37). */
static void optimizer_parts(const char *name, dsc_optim_params_t p, int half_kind, bool pr, bool pw, int64_t buffers) {
    enum { N = 1000, STEPS = 5 };
    dsc_ctx_t *ctx = check_ctx_new(7);
    dsc_optim_t *mem = NULL, *off = NULL;
    CHECK_OK(dsc_optim_new(ctx, &p, N, NULL, 0, &mem));
    CHECK_OK(dsc__optim_new_unbacked(ctx, &p, N, NULL, 0, &off));
    float *pm = malloc(N * 4), *po = malloc(N * 4), *g = malloc(N * 4);
    uint16_t hm[N], ho[N];
    for (int i = 0; i < N; i++) pm[i] = po[i] = (float)((i * 37 % 101) - 50) / 64.0f;
    const int ns = dsc_optim_num_states(mem);
    double init[3] = {0, 0, 0};
    for (int i = 0; i < ns; i++) init[i] = dsc__optim_state_initial(off, i);
    dsc_nvme_t *nv = NULL;
    char err[512];
    dsc_nvme_options_t o = opts(37, buffers, pr, pw);
    dsc_status_t st = dsc__nvme_new(ctx, &o, 0, N, ns, init, &nv, err, sizeof err);
    CHECK_MSG(st == DSC_OK, "%s: %s", name, err);
    const dsc_dtype_t hd = half_kind == 1 ? DSC_BF16 : DSC_F16;
    for (int t = 0; t < STEPS && nv; t++) {
        for (int i = 0; i < N; i++) g[i] = (float)(((i + 3 * t) * 53 % 97) - 48) / 32.0f;
        CHECK_OK(dsc_optim_step(mem, pm, g, 0.5f, 0.01, half_kind ? hm : NULL, hd));
        CHECK_OK(dsc__nvme_step(nv, off, po, g, 0.5f, 0.01, half_kind ? ho : NULL, hd));
    }
    CHECK_MSG(memcmp(pm, po, N * 4) == 0, "%s: parameters differ from the in-memory optimizer", name);
    if (half_kind) CHECK_MSG(memcmp(hm, ho, sizeof hm) == 0, "%s: 16-bit copy differs", name);
    CHECK(dsc_optim_step_count(off) == STEPS);
    float *a = malloc(N * 4), *b = malloc(N * 4);
    for (int s = 0; s < ns && nv; s++) {
        CHECK_OK(dsc_optim_get_state(mem, s, 0, N, a));
        CHECK_OK(dsc__nvme_get(nv, s, 0, 500, b));     /* ranges across sub-group edges */
        CHECK_OK(dsc__nvme_get(nv, s, 500, N - 500, b + 500));
        CHECK_MSG(memcmp(a, b, N * 4) == 0, "%s: state %d differs", name, s);
    }
    CHECK(dsc_optim_get_state(off, 0, 0, 1, a) == (ns ? DSC_ERR_MISUSE : DSC_ERR_INVALID));
    free(a), free(b), free(pm), free(po), free(g);
    dsc__nvme_free(nv);
    dsc_optim_free(mem);
    dsc_optim_free(off);
    CHECK_MSG(dsc_ctx_mem_stats(ctx, DSC_MEM_OPTIM).live_bytes == 0, "%s: swap buffers not released", name);
    dsc_ctx_free(ctx);
}

static void test_optimizers(void) {
    dsc_optim_params_t p = dsc_optim_default_params(DSC_OPTIM_ADAMW);
    p.weight_decay = 0.01;
    optimizer_parts("adamw, no pipeline, 1 buffer", p, 0, false, false, 1);
    optimizer_parts("adamw, bf16 copy, pipeline read+write, 4 buffers", p, 1, true, true, 4);
    optimizer_parts("adamw, f16 copy, pipeline read, 2 buffers", p, 2, true, false, 2);
    optimizer_parts("adamw, pipeline write, 3 buffers", p, 0, false, true, 3);
    p = dsc_optim_default_params(DSC_OPTIM_ADAGRAD);
    p.impl = DSC_OPTIM_IMPL_TORCH;
    p.initial_accumulator_value = 0.25;
    optimizer_parts("adagrad (torch, initial accumulator 0.25)", p, 0, true, true, 4);
    p = dsc_optim_default_params(DSC_OPTIM_LION);
    optimizer_parts("lion", p, 0, true, true, 4);
    p = dsc_optim_default_params(DSC_OPTIM_SGD);
    p.momentum = 0.9;
    optimizer_parts("sgd momentum", p, 0, true, true, 4);
    p = dsc_optim_default_params(DSC_OPTIM_RMSPROP);
    p.momentum = 0.5;
    p.centered = true;
    optimizer_parts("rmsprop centered momentum (3 states)", p, 0, true, true, 4);
    p = dsc_optim_default_params(DSC_OPTIM_ADAMAX);
    optimizer_parts("adamax", p, 0, false, true, 2);
}

/* The engine: the NVMe run equals the in-memory run bit for bit (stages 1-3, fp32, bf16). */
static void test_engine(void) {
    char zx[512], zcpu[] = ", \"offload_optimizer\": {\"device\": \"cpu\"}";
    snprintf(zx, sizeof zx,
             ", \"sub_group_size\": 3000, \"offload_optimizer\": {\"device\": \"nvme\", \"nvme_path\": \"%s\", "
             "\"buffer_count\": 3, \"pipeline_read\": true, \"pipeline_write\": true}",
             g_dir);
    const char *aio = ", \"aio\": {\"block_size\": 65536, \"queue_depth\": 4}";
    const char *prec[] = {"fp32", "bf16"};
    for (int stage = 1; stage <= 3; stage++)
        for (int pi = 0; pi < 2; pi++) {
            zero_case_t c = {stage, 2, prec[pi], 20, 2, 0, 0, 0, NULL};
            zero_result_t mem, nvme, cpu;
            dsc_ctx_t *cctx = check_ctx_new(1);
            dsc_comm_t *comm = NULL;
            CHECK_OK(dsc_comm_new_self(cctx, &comm));
            int r1 = zero_run(&c, comm, 1, 0, &mem);
            int r2 = zero_run_extra(&c, zx, aio, comm, 1, 0, &nvme);
            /* once: a no-op */
            int r3 = stage == 1 && pi == 0 ? zero_run_extra(&c, zcpu, NULL, comm, 1, 0, &cpu) : -1;
            CHECK_MSG(r1 == 0 && r2 == 0 && r3 <= 0, "stage %d %s: %s | %s | %s", stage, prec[pi], mem.error,
                      nvme.error, r3 > 0 ? cpu.error : "");
            if (r1 == 0 && r2 == 0) {
                CHECK_MSG(memcmp(mem.params, nvme.params, (size_t)mem.numel * 4) == 0,
                          "stage %d %s: NVMe-offloaded parameters differ from the in-memory run", stage, prec[pi]);
                /* the moments left memory: 8 bytes per element of the partition fewer (the
                 * 3 swap buffers of 3000 x 2 states come in) */
                CHECK_MSG(nvme.mem_optim < mem.mem_optim, "stage %d %s: optimizer memory %zu not below %zu", stage,
                          prec[pi], nvme.mem_optim, mem.mem_optim);
                /* dsc estimate's plan equals the measured optimizer bytes, with and without */
                dsc_estimate_options_t eo;
                zero_estimate_options(&c, &eo);
                dsc_memory_estimate_t em, en;
                char err[256];
                CHECK_OK(dsc_estimate_memory(&eo, stage, false, &em, err, sizeof err));
                eo.offload_device = DSC_CONFIG_OFFLOAD_NVME;
                eo.sub_group_size = 3000;
                eo.offload_buffer_count = 3;
                CHECK_OK(dsc_estimate_memory(&eo, stage, false, &en, err, sizeof err));
                /* off the cpu device the step runs on the host (engine_offload.c): no optimizer
                 * bytes on the device; the host holds master, copies and the swap buffers */
                const bool host_dev = !strcmp(dsc_ctx_device_name(cctx), "cpu");
                if (!host_dev) {
                    eo.device_is_host = false;
                    CHECK_OK(dsc_estimate_memory(&eo, stage, false, &en, err, sizeof err));
                }
                CHECK_MSG(em.state.optim == (int64_t)mem.mem_optim && en.state.optim == (int64_t)nvme.mem_optim &&
                              (host_dev || en.host_bytes == (int64_t)nvme.offload_host),
                          "stage %d %s: estimated optimizer bytes %lld / %lld (in memory / nvme), measured %zu / %zu; "
                          "host %lld planned, %zu measured", stage, prec[pi], (long long)em.state.optim,
                          (long long)en.state.optim, mem.mem_optim, nvme.mem_optim, (long long)en.host_bytes,
                          nvme.offload_host);
                CHECK_MSG((host_dev ? en.pinned_host_bytes == 3 * 24576 : en.host_bytes > 3 * 24576) &&
                              en.nvme_bytes > 0 && em.nvme_bytes == 0,
                          "stage %d %s: pinned %lld, host %lld, nvme %lld", stage, prec[pi],
                          (long long)en.pinned_host_bytes, (long long)en.host_bytes, (long long)en.nvme_bytes);
                printf("  stage %d %s: optimizer bytes in memory %zu, with nvme %zu (swap file %lld bytes)\n", stage,
                       prec[pi], mem.mem_optim, nvme.mem_optim, (long long)en.nvme_bytes);
            }
            if (r1 == 0 && r3 == 0)
                CHECK_MSG(memcmp(mem.params, cpu.params, (size_t)mem.numel * 4) == 0,
                          "stage %d %s: cpu offload (a no-op) differs", stage, prec[pi]);
            zero_result_free(&mem);
            zero_result_free(&nvme);
            if (r3 >= 0) zero_result_free(&cpu);
            dsc_comm_free(comm);
            dsc_ctx_free(cctx);
        }
    CHECK_MSG(count_entries(g_dir) == 0, "nvme_path %s is not empty after the runs", g_dir);
}

static void expect_init_error(const char *what, const char *zero_extra, const char *needle) {
    zero_case_t c = {1, 1, "fp32", 1, 2, 0, 0, 0, NULL};
    dsc_ctx_t *cctx = check_ctx_new(1);
    dsc_comm_t *comm = NULL;
    CHECK_OK(dsc_comm_new_self(cctx, &comm));
    zero_result_t r;
    int rc = zero_run_extra(&c, zero_extra, NULL, comm, 1, 0, &r);
    CHECK_MSG(rc != 0 && strstr(r.error, needle), "%s: expected an error containing '%s', got rc %d '%s'", what, needle,
              rc, r.error);
    zero_result_free(&r);
    dsc_comm_free(comm);
    dsc_ctx_free(cctx);
}

static void test_bad_input(void) {
    char z[700], missing[400], file[400];
    snprintf(missing, sizeof missing, "%s/no-such-dir", g_dir);
    snprintf(z, sizeof z, ", \"offload_optimizer\": {\"device\": \"nvme\", \"nvme_path\": \"%s\"}", missing);
    expect_init_error("missing nvme_path", z, "No such file or directory");
    expect_init_error("missing nvme_path names it", z, missing);
    snprintf(file, sizeof file, "%s/a-file", g_dir);
    FILE *f = fopen(file, "w");
    if (f) fclose(f);
    snprintf(z, sizeof z, ", \"offload_optimizer\": {\"device\": \"nvme\", \"nvme_path\": \"%s\"}", file);
    expect_init_error("nvme_path is a file", z, "not a directory");
    unlink(file);
    expect_init_error("nvme without nvme_path", ", \"offload_optimizer\": {\"device\": \"nvme\"}", "nvme_path");
    snprintf(z, sizeof z, ", \"offload_optimizer\": {\"device\": \"nvme\", \"nvme_path\": \"%s\", \"ratio\": 0.5}", g_dir);
    expect_init_error("ratio < 1 at stage 1", z, "ratio");
    /* Lamb: a config with its own optimizer section */
    {
        char json[1024];
        snprintf(json, sizeof json,
                 "{\"train_micro_batch_size_per_gpu\": 1, \"zero_optimization\": {\"stage\": 1, \"offload_optimizer\": "
                 "{\"device\": \"nvme\", \"nvme_path\": \"%s\"}}, \"optimizer\": {\"type\": \"Lamb\"}}",
                 g_dir);
        dsc_ctx_t *ctx = check_ctx_new(3);
        dsc_gpt_config_t gc = DSC_GPT_CONFIG_TINY;
        dsc_gpt_t *gpt = NULL;
        CHECK_OK(dsc_gpt_new(ctx, &gc, &gpt));
        dsc_engine_options_t o = DSC_ENGINE_OPTIONS_INIT;
        o.config_json = json;
        dsc_initialize_result_t init = {0};
        char err[1024] = "";
        dsc_status_t st = dsc_initialize(gpt->model, &o, &init, err, sizeof err);
        CHECK_MSG(st != DSC_OK && strstr(err, "Lamb"), "Lamb with nvme: %d '%s'", (int)st, err);
        dsc_engine_free(init.engine);
        dsc_gpt_free(gpt);
        dsc_ctx_free(ctx);
    }
    /* A full disk: the file's space is reserved at creation, past RLIMIT_FSIZE it fails. */
    struct rlimit old;
    getrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit small = {1 << 20, old.rlim_max};
    dsc_ctx_t *fctx = check_ctx_new(1); /* before the limit: the guarded device's memory is a file too */
    if (setrlimit(RLIMIT_FSIZE, &small) == 0) {
        dsc_ctx_t *ctx = fctx;
        dsc_nvme_t *nv = NULL;
        char err[512] = "";
        dsc_nvme_options_t o = opts(1 << 20, 4, false, false);
        dsc_status_t st = dsc__nvme_new(ctx, &o, 2, 1 << 20, 2, NULL, &nv, err, sizeof err); /* 8 MiB */
        CHECK_MSG(st == DSC_ERR_IO && strstr(err, "cannot reserve 8388608 bytes") && strstr(err, "rank 2") &&
                      strstr(err, g_dir),
                  "full disk: %d '%s'", (int)st, err);
        dsc__nvme_free(nv);
        setrlimit(RLIMIT_FSIZE, &old);
    }
    dsc_ctx_free(fctx);
    /* Bad aio settings: a block size O_DIRECT cannot use. */
    {
        dsc_ctx_t *ctx = check_ctx_new(1);
        dsc_nvme_t *nv = NULL;
        char err[512] = "";
        dsc_nvme_options_t o = opts(100, 2, false, false);
        o.block_size = 1000;
        dsc_status_t st = dsc__nvme_new(ctx, &o, 0, 1000, 2, NULL, &nv, err, sizeof err);
        if (st == DSC_OK) { /* buffered (the directory refuses O_DIRECT): any size works */
            CHECK(strstr(dsc__nvme_describe(nv), "refuses O_DIRECT") != NULL);
        } else {
            CHECK_MSG(st == DSC_ERR_CONFIG && strstr(err, "aio.block_size 1000"), "block size: %d '%s'", (int)st, err);
        }
        dsc__nvme_free(nv);
        dsc_ctx_free(ctx);
    }
    CHECK_MSG(count_entries(g_dir) == 0, "nvme_path %s is not empty after the failures", g_dir);
}

/* get/set across sub-groups; the set is flushed; tmpfs (no O_DIRECT) says so. */
static void test_get_set(const char *dir) {
    dsc_ctx_t *ctx = check_ctx_new(1);
    dsc_nvme_t *nv = NULL;
    char err[512] = "";
    dsc_nvme_options_t o = opts(300, 2, true, true);
    o.nvme_path = dir;
    enum { N = 1001 };
    double init[2] = {0, 1.5};
    dsc_status_t st = dsc__nvme_new(ctx, &o, 0, N, 2, init, &nv, err, sizeof err);
    CHECK_MSG(st == DSC_OK, "%s: %s", dir, err);
    if (!nv) {
        dsc_ctx_free(ctx);
        return;
    }
    CHECK(dsc__nvme_bytes(nv) == 3 * 4096 * 1 /* 2x300x4 = 2400 -> 4096 */ + 4096);
    float buf[N], back[N];
    CHECK_OK(dsc__nvme_get(nv, 1, 0, N, back));
    bool all = true;
    for (int i = 0; i < N; i++) all = all && back[i] == 1.5f;
    CHECK_MSG(all, "initial value 1.5 not read back");
    for (int i = 0; i < N; i++) buf[i] = (float)i * 0.5f;
    CHECK_OK(dsc__nvme_set(nv, 0, 250, 600, buf)); /* groups 0..2 */
    CHECK_OK(dsc__nvme_flush(nv));
    double sec = 0;
    CHECK_OK(dsc__nvme_stream(nv, false, &sec)); /* a read pass leaves the file as it is */
    CHECK_OK(dsc__nvme_get(nv, 0, 250, 600, back));
    CHECK(memcmp(buf, back, 600 * 4) == 0);
    CHECK_OK(dsc__nvme_get(nv, 0, 0, 250, back));
    all = true;
    for (int i = 0; i < 250; i++) all = all && back[i] == 0.0f;
    CHECK_MSG(all, "elements before the set changed");
    CHECK(dsc__nvme_get(nv, 2, 0, 1, back) == DSC_ERR_INVALID);
    CHECK(dsc__nvme_get(nv, 0, 1000, 2, back) == DSC_ERR_INVALID);
    printf("  %s: %s\n", dir, dsc__nvme_describe(nv));
    dsc__nvme_free(nv);
    dsc_ctx_free(ctx);
}

/* An I/O error inside a step (the swap file cut short behind the swapper's back): the step
 * fails naming the sub-group and the cause, and the file is refused from then on. */
static void test_io_error(void) {
    dsc_ctx_t *ctx = check_ctx_new(1);
    dsc_optim_params_t p = dsc_optim_default_params(DSC_OPTIM_ADAMW);
    dsc_optim_t *off = NULL;
    enum { N = 1000 };
    CHECK_OK(dsc__optim_new_unbacked(ctx, &p, N, NULL, 0, &off));
    dsc_nvme_t *nv = NULL;
    char err[512];
    dsc_nvme_options_t o = opts(100, 2, true, true);
    CHECK_OK(dsc__nvme_new(ctx, &o, 0, N, 2, NULL, &nv, err, sizeof err));
    /* the unnamed file is the newest descriptor whose link names g_dir */
    int fd = -1;
    for (int i = 3; i < 1024; i++) {
        char link[64], target[512];
        snprintf(link, sizeof link, "/proc/self/fd/%d", i);
        ssize_t len = readlink(link, target, sizeof target - 1);
        if (len <= 0) continue;
        target[len] = '\0';
        if (strstr(target, g_dir)) fd = i;
    }
    CHECK_MSG(fd >= 0, "the swap file's descriptor was not found under /proc/self/fd");
    float master[N], grad[N];
    for (int i = 0; i < N; i++) master[i] = 1.0f, grad[i] = 0.5f;
    if (nv && fd >= 0 && ftruncate(fd, 4096 * 3) == 0) { /* sub-groups 3.. are gone */
        dsc_status_t st = dsc__nvme_step(nv, off, master, grad, 1.0f, 1e-3, NULL, DSC_F32);
        CHECK_MSG(st == DSC_ERR_IO && strstr(dsc_ctx_errmsg(ctx), "reading of sub-group 3") &&
                      strstr(dsc_ctx_errmsg(ctx), "unexpected end of file") && strstr(dsc_ctx_errmsg(ctx), g_dir),
                  "short file: %d '%s'", (int)st, dsc_ctx_errmsg(ctx));
        CHECK(dsc_optim_step_count(off) == 0);
        dsc_ctx_clear_error(ctx);
        st = dsc__nvme_step(nv, off, master, grad, 1.0f, 1e-3, NULL, DSC_F32);
        CHECK_MSG(st == DSC_ERR_IO && strstr(dsc_ctx_errmsg(ctx), "inconsistent"), "after the error: %d '%s'", (int)st,
                  dsc_ctx_errmsg(ctx));
        dsc_ctx_clear_error(ctx);
        float v;
        CHECK(dsc__nvme_get(nv, 0, 0, 1, &v) == DSC_ERR_IO); /* no checkpoint from a half-swapped state */
    }
    dsc__nvme_free(nv);
    dsc_optim_free(off);
    dsc_ctx_free(ctx);
}

int main(void) {
    const char *base = getenv("DSC_TEST_NVME_DIR") ? getenv("DSC_TEST_NVME_DIR") : "/tmp";
    snprintf(g_dir, sizeof g_dir, "%s/dsc-nvme-test-XXXXXX", base);
    if (!mkdtemp(g_dir)) {
        fprintf(stderr, "cannot make a directory under %s\n", base);
        return 1;
    }
    test_optimizers();
    test_get_set(g_dir);
    if (access("/dev/shm", W_OK) == 0) test_get_set("/dev/shm");
    test_bad_input();
    test_io_error();
    test_engine();
    check_rm_tree(g_dir);
    return check_finish("test_offload_nvme");
}

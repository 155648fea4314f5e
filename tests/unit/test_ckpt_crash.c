/* Crash consistency under SIGKILL: a child process saves checkpoints in a loop (4 range
 * files of about 1 MB each plus the manifest, fsynced, old tags removed) and is killed at
 * 50 random moments (seeded delays scaled to the measured save time). After each kill,
 * loading `latest` with every checksum verified must succeed and give exactly the
 * contents of one complete save, never older than the one seen before. */
#define _GNU_SOURCE
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "dsc/ckpt.h"

#define WORLD 4
#define KILLS 50

typedef struct tdesc {
    const char *name;
    dsc_dtype_t dtype;
    int64_t rows, cols;
} tdesc_t;

static const tdesc_t model[] = {
    {"w0", DSC_F32, 512, 512}, {"w1", DSC_F32, 512, 512}, {"emb", DSC_BF16, 1000, 1},
    {"w2", DSC_F32, 512, 512}, {"w3", DSC_F32, 512, 512},
};
#define NT ((int)(sizeof model / sizeof model[0]))

static float value(int64_t step, int t, int64_t k) {
    if (model[t].dtype == DSC_BF16) return (float)((step + k) % 256); /* exact in bf16 */
    return (float)((step * 7919 + t * 104729 + k) % 1000003); /* exact in f32 */
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static dsc_status_t save(const char *sd, int64_t step, char *err, size_t errsz) {
    char tag[64];
    dsc_ckpt_default_tag(step, tag, sizeof tag);
    dsc_ckpt_save_t *s;
    dsc_status_t st = dsc_ckpt_save_begin(sd, tag, &s, err, errsz);
    if (st) return st;
    dsc_manifest_t *m;
    dsc_manifest_new(&m);
    int64_t total = 0;
    for (int t = 0; t < NT; t++) {
        dsc_manifest_tensor_t d = {0};
        d.name = model[t].name;
        d.kind = "param";
        d.dtype = model[t].dtype;
        d.ndim = 2;
        d.shape[0] = model[t].rows;
        d.shape[1] = model[t].cols;
        if (!st) st = dsc_manifest_add_tensor(m, &d, err, errsz);
        total += model[t].rows * model[t].cols;
    }
    int64_t part = (total + WORLD - 1) / WORLD;
    float *buf = malloc((size_t)part * sizeof *buf);
    for (int r = 0; r < WORLD && !st; r++) {
        char fname[64], path[1200];
        dsc_ckpt_rank_file_name(r, fname, sizeof fname);
        snprintf(path, sizeof path, "%s/%s", dsc_ckpt_save_dir(s), fname);
        dsc_st_writer_t *w;
        if ((st = dsc_st_writer_open(path, 0, &w, err, errsz))) break;
        int64_t lo = r * part, hi = lo + part < total ? lo + part : total;
        for (int pass = 0; pass < 2 && !st; pass++) {
            int64_t off = 0;
            for (int t = 0; t < NT && !st; t++) {
                int64_t n = model[t].rows * model[t].cols;
                int64_t b = lo > off ? lo - off : 0, e = hi - off < n ? hi - off : n;
                if (b < e && pass == 0) {
                    st = dsc_st_writer_declare_range(w, model[t].name, model[t].dtype, b, e, err, errsz);
                    if (!st) st = dsc_manifest_add_piece(m, model[t].name, fname, b, e, NULL, err, errsz);
                } else if (b < e) {
                    for (int64_t k = b; k < e; k++) buf[k - b] = value(step, t, k);
                    st = dsc_st_write(w, buf, DSC_F32, (size_t)(e - b), err, errsz);
                }
                off += n;
            }
        }
        if (st) {
            dsc_st_writer_abort(w);
            break;
        }
        dsc_st_file_info_t info;
        st = dsc_st_writer_close(w, &info, err, errsz);
        if (!st) st = dsc_manifest_add_file(m, fname, &info, err, errsz);
    }
    free(buf);
    dsc_manifest_counters_t c = DSC_MANIFEST_COUNTERS_INIT;
    c.global_steps = step;
    c.world_size = WORLD;
    if (!st) st = dsc_manifest_set_counters(m, &c, err, errsz);
    if (st) {
        dsc_ckpt_save_abort(s);
        dsc_manifest_free(m);
        return st;
    }
    st = dsc_ckpt_save_commit(s, m, true, err, errsz);
    dsc_manifest_free(m);
    return st;
}

/* The child: save forever, keeping the last two tags. */
static void child_loop(const char *sd, int64_t step) {
    char err[512];
    for (;; step++) {
        if (save(sd, step, err, sizeof err) != DSC_OK) {
            fprintf(stderr, "child: save %lld failed: %s\n", (long long)step, err);
            _exit(3);
        }
        char old[64];
        dsc_ckpt_default_tag(step - 2, old, sizeof old);
        dsc_ckpt_remove_tag(sd, old, NULL, 0);
    }
}

/* Loads latest, verifies every checksum and every value; returns its step or -1. */
static int64_t load_and_check(const char *sd) {
    char err[1024];
    dsc_ckpt_t *c;
    dsc_status_t st = dsc_ckpt_open(sd, NULL, DSC_CKPT_VERIFY_ALL, &c, err, sizeof err);
    CHECK_MSG(st == DSC_OK, "loading latest after a kill: %s", err);
    if (st) return -1;
    dsc_manifest_counters_t cn;
    dsc_manifest_counters(dsc_ckpt_manifest(c), &cn);
    int64_t step = cn.global_steps;
    char tag[64];
    dsc_ckpt_default_tag(step, tag, sizeof tag);
    CHECK(strcmp(dsc_ckpt_tag(c), tag) == 0);
    float *buf = malloc(512 * 512 * sizeof *buf);
    bool same = true;
    for (int t = 0; t < NT && same; t++) {
        int64_t n = model[t].rows * model[t].cols;
        st = dsc_ckpt_read(c, model[t].name, 0, n, buf, DSC_F32, err, sizeof err);
        CHECK_MSG(st == DSC_OK, "reading %s: %s", model[t].name, err);
        for (int64_t k = 0; k < n && same; k++) same = buf[k] == value(step, t, k);
    }
    CHECK_MSG(same, "checkpoint of step %lld does not hold that save's values", (long long)step);
    free(buf);
    dsc_ckpt_close(c);
    return step;
}

int main(void) {
    char root[256], sd[300];
    snprintf(root, sizeof root, "%s/dsc_crash_XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(root)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(sd, sizeof sd, "%s/ckpt", root);
    char err[1024];
    /* A first complete save, timed to scale the kill delays. */
    double t0 = now();
    CHECK_OK(save(sd, 1, err, sizeof err));
    double save_s = now() - t0;
    int64_t last = load_and_check(sd);
    CHECK(last == 1);
    uint64_t rng = 0x243f6a8885a308d3ull; /* seeded: the same kill schedule every run */
    int mid_save = 0, progressed = 0;
    double max_delay = 3.0 * save_s + 0.002;
    if (max_delay > 0.3) max_delay = 0.3;
    double start = now();
    for (int kill_i = 0; kill_i < KILLS; kill_i++) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        double delay = max_delay * (double)(rng >> 11) / 9007199254740992.0;
        fflush(NULL);
        pid_t pid = fork();
        if (pid < 0) {
            CHECK(!"fork failed");
            break;
        }
        if (pid == 0) child_loop(sd, last + 1);
        struct timespec ts = {(time_t)delay, (long)((delay - (double)(time_t)delay) * 1e9)};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        CHECK_MSG(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "child ended by itself (status %d)", status);
        mid_save += check_count_prefix(sd, ".tmp-") > 0;
        CHECK(check_count_prefix(sd, ".tmp-") <= 1);
        int64_t step = load_and_check(sd);
        CHECK_MSG(step >= last, "latest went back from step %lld to %lld", (long long)last, (long long)step);
        progressed += step > last;
        if (step >= 0) last = step;
    }
    double elapsed = now() - start;
    printf("test_ckpt_crash: one save %.1f ms; %d kills in %.1f s; %d left a partial save behind, %d came after new "
           "complete saves; last step %lld\n",
           save_s * 1e3, KILLS, elapsed, mid_save, progressed, (long long)last);
    /* (No bound on `elapsed`: the run time depends on the machine's load; ctest's TIMEOUT
     * catches a hang.) */
    CHECK(mid_save > 0); /* the kills did land inside saves */
    CHECK(progressed > 0); /* and saves did complete between kills */
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", root);
    return check_finish("test_ckpt_crash");
}

/* Engine-level crash safety under SIGKILL (issue 8): a child process resumes a training run
 * from `latest` with dsc_load_checkpoint, then trains and saves with dsc_save_checkpoint
 * after every step (keeping the last two tags, as `dsc train --save-every 1` would with
 * clean-up); the parent kills it with SIGKILL at 50 random moments (seeded delays, scaled to
 * the measured step + save time). After each kill the parent loads `latest` into an engine
 * of its own with dsc_load_checkpoint and checks that
 *   - the load succeeds (every checksum of the files it reads verified),
 *   - the checkpoint is the last one whose save had returned in the child, or the one whose
 *     save was in flight when the kill came (never an older one, never a torn one),
 *   - global_steps, global_samples and the lr equal those of the tag `latest` names, and
 *     every parameter equals, bitwise, the parameter an uninterrupted run has after that
 *     many steps (the parent trains that run alongside);
 * and the next child resumes from it, so each resume continues the run bit for bit (with
 * dropout 0.1 and AdamW, which also needs the RNG, optimizer and scheduler restored) or a
 * later checkpoint would differ from the uninterrupted run.
 * The child is this program re-executed (fork + exec of /proc/self/exe, so no OpenMP or
 * allocator state is inherited), dies with its parent (PR_SET_PDEATHSIG) and gives up after
 * 60 s on its own; the parent waits for it at most 60 s at a time, so nothing can hang. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

#define KILLS 50
#define ROWS 4
#define SEQ 16

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void quiet(dsc_log_level_t level, const char *message, void *user) { (void)level, (void)message, (void)user; }

/* One training run: the tiny GPT with dropout, AdamW and a warm-up schedule. Every engine of
 * this test (child, reference, verifier) is built the same way from the same seed. */
typedef struct run {
    dsc_ctx_t *ctx;
    dsc_gpt_t *gpt;
    dsc_engine_t *engine;
} run_t;

static dsc_status_t run_new(run_t *r, char *err, size_t errsz) {
    memset(r, 0, sizeof *r);
    dsc_ctx_options_t co = DSC_CTX_OPTIONS_INIT;
    co.seed = 4242;
    co.log_fn = quiet;
    dsc_status_t st = dsc_ctx_new(&co, &r->ctx);
    dsc_gpt_config_t gc = DSC_GPT_CONFIG_TINY;
    gc.block_size = SEQ;
    gc.dropout = 0.1;
    if (!st) st = dsc_gpt_new(r->ctx, &gc, &r->gpt);
    if (st) {
        snprintf(err, errsz, "building the model: %s", dsc_status_string(st));
        return st;
    }
    dsc_engine_options_t o = DSC_ENGINE_OPTIONS_INIT;
    o.config_json = "{\"train_batch_size\": 4, \"gradient_clipping\": 1.0, "
                    "\"optimizer\": {\"type\": \"AdamW\", \"params\": {\"lr\": 0.002, \"weight_decay\": 0.01}}, "
                    "\"scheduler\": {\"type\": \"WarmupLR\", \"params\": {\"warmup_num_steps\": 500, "
                    "\"warmup_max_lr\": 0.002}}}";
    dsc_initialize_result_t init = {0};
    st = dsc_initialize(r->gpt->model, &o, &init, err, errsz);
    r->engine = init.engine;
    return st;
}

static void run_free(run_t *r) {
    dsc_engine_free(r->engine);
    dsc_gpt_free(r->gpt);
    dsc_ctx_free(r->ctx);
    memset(r, 0, sizeof *r);
}

/* The optimizer step that takes global_steps from `step` to step + 1, on batch `step`. */
static dsc_status_t run_step(run_t *r, char *err, size_t errsz) {
    const int64_t step = dsc_engine_global_steps(r->engine);
    int32_t x[ROWS * SEQ], y[ROWS * SEQ];
    for (int row = 0; row < ROWS; row++) {
        uint64_t s = 0x9E3779B97F4A7C15ull * (uint64_t)(step * 16 + row + 1);
        for (int i = 0; i <= SEQ; i++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            int32_t v = (int32_t)((s >> 33) % 65);
            if (i < SEQ) x[row * SEQ + i] = v;
            if (i > 0) y[row * SEQ + i - 1] = v;
        }
    }
    dsc_tensor_t *loss = NULL;
    dsc_status_t st = dsc_gpt_forward(r->ctx, r->gpt, x, y, ROWS, SEQ, NULL, &loss);
    if (!st) st = dsc_backward(r->engine, loss);
    if (!st) st = dsc_step(r->engine);
    if (st) snprintf(err, errsz, "step %lld: %s", (long long)step, dsc_engine_errmsg(r->engine));
    return st;
}

/* ---- The child ------------------------------------------------------------------------- */

static void say(int fd, const char *fmt, long long v) {
    char line[64];
    int n = snprintf(line, sizeof line, fmt, v);
    if (write(fd, line, (size_t)n) != n) _exit(5); /* the parent is gone */
}

static int child_main(const char *sd, int fd) {
    char err[2048];
    run_t r;
    if (run_new(&r, err, sizeof err) != DSC_OK) {
        fprintf(stderr, "child: %s\n", err);
        return 3;
    }
    char tag[256];
    bool found = false;
    if (dsc_ckpt_latest_tag(sd, tag, sizeof tag, &found, err, sizeof err) != DSC_OK) {
        fprintf(stderr, "child: reading latest: %s\n", err);
        return 3;
    }
    if (found && dsc_load_checkpoint(r.engine, sd, NULL, true, true, false, NULL) != DSC_OK) {
        fprintf(stderr, "child: resuming from latest (%s): %s\n", tag, dsc_engine_errmsg(r.engine));
        return 3;
    }
    say(fd, "R %lld\n", (long long)dsc_engine_global_steps(r.engine));
    const double start = now();
    while (now() - start < 60.0) {
        if (run_step(&r, err, sizeof err) != DSC_OK) {
            fprintf(stderr, "child: %s\n", err);
            return 3;
        }
        const long long n = (long long)dsc_engine_global_steps(r.engine);
        say(fd, "B %lld\n", n);
        if (dsc_save_checkpoint(r.engine, sd, NULL, NULL, true) != DSC_OK) {
            fprintf(stderr, "child: saving step %lld: %s\n", n, dsc_engine_errmsg(r.engine));
            return 3;
        }
        say(fd, "D %lld\n", n);
        char old[64];
        dsc_ckpt_default_tag(n - 2, old, sizeof old);
        if (n >= 2 && dsc_ckpt_remove_tag(sd, old, err, sizeof err) != DSC_OK) {
            fprintf(stderr, "child: removing %s: %s\n", old, err);
            return 3;
        }
    }
    fprintf(stderr, "child: never killed in 60 s\n");
    return 4;
}

/* ---- The parent ------------------------------------------------------------------------ */

typedef struct msgs {
    char buf[1 << 16];
    size_t len;
    long long ready, begun, done; /* the last R, B and D values; -1: none yet */
    double ready_at, done_at;     /* when the R and the first D arrived (0: not yet) */
    bool eof;
} msgs_t;

/* Reads what the child wrote, waiting at most timeout_s for the first byte; parses full lines. */
static void msgs_read(msgs_t *m, int fd, double timeout_s) {
    struct pollfd p = {fd, POLLIN, 0};
    int rc = poll(&p, 1, (int)(timeout_s * 1000));
    if (rc <= 0) return;
    ssize_t n = read(fd, m->buf + m->len, sizeof m->buf - 1 - m->len);
    if (n <= 0) {
        m->eof = true;
        return;
    }
    m->len += (size_t)n;
    m->buf[m->len] = '\0';
    char *line = m->buf, *nl;
    while ((nl = strchr(line, '\n')) != NULL) {
        *nl = '\0';
        long long v = strtoll(line + 2, NULL, 10);
        if (line[0] == 'R') m->ready = v, m->ready_at = now();
        if (line[0] == 'B') m->begun = v;
        if (line[0] == 'D' && m->done < 0) m->done_at = now();
        if (line[0] == 'D') m->done = v;
        line = nl + 1;
    }
    m->len = strlen(line);
    memmove(m->buf, line, m->len + 1);
}

/* This program again, through /proc/self/exe (which still works if a rebuild replaced the file). */
static pid_t spawn_child(const char *sd, int fd_write, pid_t parent) {
    fflush(NULL);
    pid_t pid = fork();
    if (pid != 0) return pid;
    /* Die with the parent, whatever happens to it. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(6);
    fcntl(fd_write, F_SETFD, 0); /* keep the write end across exec */
    char fd_s[16];
    snprintf(fd_s, sizeof fd_s, "%d", fd_write);
    execl("/proc/self/exe", "test_ckpt_crash_engine", "--child", sd, fd_s, (char *)NULL);
    _exit(7);
}

/* The parameters of two runs bitwise equal (both fp32). */
static bool same_params(const run_t *a, const run_t *b, const char **which) {
    for (int i = 0; i < dsc_model_param_count(a->gpt->model); i++) {
        dsc_param_info_t pa, pb;
        dsc_model_param_info(a->gpt->model, i, &pa);
        dsc_model_param_info(b->gpt->model, i, &pb);
        const size_t bytes = sizeof(float) * (size_t)pa.numel;
        float *ha = malloc(bytes), *hb = malloc(bytes);
        const bool same = ha && hb && dsc_tensor_to_host(a->ctx, pa.tensor, ha, bytes) == DSC_OK &&
                          dsc_tensor_to_host(b->ctx, pb.tensor, hb, bytes) == DSC_OK && memcmp(ha, hb, bytes) == 0;
        free(ha);
        free(hb);
        if (!same) {
            *which = pa.name;
            return false;
        }
    }
    return true;
}

int main(int argc, char **argv) {
    if (argc == 4 && !strcmp(argv[1], "--child")) return child_main(argv[2], atoi(argv[3]));
    char root[256], sd[300], calib[300], err[2048];
    snprintf(root, sizeof root, "%s/dsc_crash_engine_XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(root)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(sd, sizeof sd, "%s/ckpt", root);
    snprintf(calib, sizeof calib, "%s/calib", root);
    run_t ref, ver;
    if (run_new(&ref, err, sizeof err) != DSC_OK || run_new(&ver, err, sizeof err) != DSC_OK) {
        fprintf(stderr, "test_ckpt_crash_engine: %s\n", err);
        return 1;
    }
    /* The kill delays scale with the time a child takes from resuming to its first complete
     * save: first one step + save timed on a scratch copy of the run, then what the children
     * show (a fresh process is slower at first, and fsync times vary). */
    run_t cal;
    CHECK_OK(run_new(&cal, err, sizeof err));
    double t0 = now();
    CHECK_OK(run_step(&cal, err, sizeof err));
    CHECK_OK(dsc_save_checkpoint(cal.engine, calib, NULL, NULL, true));
    const double cycle_s = now() - t0;
    run_free(&cal);
    double est = cycle_s, max_delay_seen = 0;

    /* A first complete checkpoint (step 0, the fresh run), so that every child resumes. */
    CHECK_OK(dsc_save_checkpoint(ref.engine, sd, NULL, NULL, true));
    uint64_t rng = 0x9e3779b97f4a7c15ull; /* seeded: the same kill schedule every run */
    long long latest = 0;                 /* the step `latest` names, as last verified */
    int mid_save = 0, progressed = 0, verified = 0;
    const pid_t me = getpid();
    const double start = now();
    for (int k = 0; k < KILLS; k++) {
        int fds[2];
        if (pipe2(fds, O_CLOEXEC) != 0) {
            CHECK(!"pipe2 failed");
            break;
        }
        pid_t pid = spawn_child(sd, fds[1], me);
        close(fds[1]);
        if (pid < 0) {
            close(fds[0]);
            CHECK(!"fork failed");
            break;
        }
        msgs_t m;
        memset(&m, 0, sizeof m);
        m.ready = m.begun = m.done = -1;
        /* Wait (60 s at most) for the child to have resumed, then let it run a random while. */
        double wait_until = now() + 60.0;
        while (m.ready < 0 && !m.eof && now() < wait_until) msgs_read(&m, fds[0], wait_until - now());
        CHECK_MSG(m.ready == latest, "kill %d: the child resumed at step %lld, latest is step %lld", k, m.ready,
                  latest);
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        /* Uniform over about two and a half first saves (at most 1 s), watching the child meanwhile. */
        double max_delay = 2.5 * est < 1.0 ? 2.5 * est : 1.0;
        double delay = m.ready >= 0 ? max_delay * (double)(rng >> 11) / 9007199254740992.0 : 0.0;
        max_delay_seen = max_delay > max_delay_seen ? max_delay : max_delay_seen;
        const double kill_at = now() + delay;
        while (!m.eof && now() < kill_at) msgs_read(&m, fds[0], kill_at - now());
        kill(pid, SIGKILL);
        if (m.done >= 0)
            est = 0.7 * est + 0.3 * (m.done_at - m.ready_at);
        else if (delay > est)
            est = 1.5 * delay;
        int status = 0;
        waitpid(pid, &status, 0);
        wait_until = now() + 60.0;
        while (!m.eof && now() < wait_until) msgs_read(&m, fds[0], wait_until - now());
        close(fds[0]);
        CHECK_MSG(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "kill %d: the child ended by itself (status %d)",
                  k, status);
        if (!WIFSIGNALED(status)) break; /* its message is above */
        const bool in_save = m.begun > m.done;
        mid_save += in_save;
        CHECK_MSG(check_count_prefix(sd, ".tmp-") <= 1, "kill %d: %d temporary directories", k, check_count_prefix(sd, ".tmp-"));
        /* Which checkpoint `latest` names: the last save that returned, or the one in flight. */
        char tag[256];
        bool found = false;
        CHECK_OK(dsc_ckpt_latest_tag(sd, tag, sizeof tag, &found, err, sizeof err));
        CHECK_MSG(found, "kill %d: `latest` vanished (it named step %lld)", k, latest);
        if (!found) break;
        long long n = -1;
        CHECK_MSG(sscanf(tag, "global_step%lld", &n) == 1, "kill %d: latest names '%s'", k, tag);
        long long last_done = m.done >= 0 ? m.done : latest;
        CHECK_MSG(n == last_done || (in_save && n == m.begun),
                  "kill %d: latest names step %lld; the last completed save was step %lld, the one in flight %lld", k,
                  n, last_done, in_save ? m.begun : -1LL);
        CHECK_MSG(n >= latest, "kill %d: latest went back from step %lld to %lld", k, latest, n);
        progressed += n > latest;
        /* Resuming from it succeeds and gives the uninterrupted run's state after n steps. */
        dsc_status_t st = dsc_load_checkpoint(ver.engine, sd, NULL, true, true, false, NULL);
        CHECK_MSG(st == DSC_OK, "kill %d: loading latest (%s): %s", k, tag, dsc_engine_errmsg(ver.engine));
        if (st != DSC_OK) break;
        while (dsc_engine_global_steps(ref.engine) < n)
            if (run_step(&ref, err, sizeof err) != DSC_OK) {
                CHECK_MSG(false, "the reference run: %s", err);
                break;
            }
        const char *which = NULL;
        CHECK_MSG(dsc_engine_global_steps(ver.engine) == n && dsc_engine_global_steps(ref.engine) == n,
                  "kill %d: loaded global_steps %lld, tag step %lld", k, (long long)dsc_engine_global_steps(ver.engine),
                  n);
        CHECK(dsc_engine_global_samples(ver.engine) == n * ROWS);
        CHECK_MSG(dsc_engine_lr(ver.engine) == dsc_engine_lr(ref.engine), "kill %d: lr %.9g, uninterrupted %.9g", k,
                  dsc_engine_lr(ver.engine), dsc_engine_lr(ref.engine));
        CHECK_MSG(same_params(&ver, &ref, &which), "kill %d: step %lld: '%s' differs from the uninterrupted run", k, n,
                  which);
        verified++;
        latest = n;
    }
    const double elapsed = now() - start;
    printf(
        "test_ckpt_crash_engine: one step + save %.1f ms in the parent, %.1f ms from resume to the first save in the "
        "children (delays up to %.1f ms); %d kills in %.1f s: %d inside a save, %d after new complete saves, %d loads "
        "verified; last step %lld\n",
        cycle_s * 1e3, est * 1e3, max_delay_seen * 1e3, KILLS, elapsed, mid_save, progressed, verified, latest);
    CHECK(verified == KILLS);
    CHECK(mid_save > 0);   /* the kills did land inside saves */
    CHECK(progressed > 0); /* and saves did complete between kills */
    run_free(&ref);
    run_free(&ver);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", root);
    return check_finish("test_ckpt_crash_engine");
}

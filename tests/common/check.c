#define _GNU_SOURCE /* pthread_timedjoin_np */
#include "check.h"

#include <dirent.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>
#include <time.h>

#include "core/internal.h"

int check_failures = 0;
int check_count = 0;
static pthread_mutex_t check_mu = PTHREAD_MUTEX_INITIALIZER;

void check_lock(void) { pthread_mutex_lock(&check_mu); }
void check_unlock(void) { pthread_mutex_unlock(&check_mu); }

void check_run_threads(int n, void *(*fn)(void *), void *args, size_t arg_size) {
    pthread_t th[16];
    if (n > 16) {
        fprintf(stderr, "FAIL: check_run_threads: %d threads, at most 16\n", n);
        _exit(1);
    }
    for (int r = 0; r < n; r++)
        if (pthread_create(&th[r], NULL, fn, (char *)args + (size_t)r * arg_size) != 0) {
            fprintf(stderr, "FAIL: pthread_create\n");
            _exit(1);
        }
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 60;
    for (int r = 0; r < n; r++)
        if (pthread_timedjoin_np(th[r], NULL, &dl) != 0) {
            fprintf(stderr, "FAIL: rank thread %d did not finish within 60 s (hang)\n", r);
            _exit(1);
        }
}

bool check_close(double a, double b, double rel_tol, double abs_floor) {
    if (isnan(a) || isnan(b)) return isnan(a) && isnan(b);
    if (isinf(a) || isinf(b)) return a == b;
    double scale = fmax(fmax(fabs(a), fabs(b)), abs_floor);
    return fabs(a - b) <= rel_tol * scale;
}

double check_arrays_close(const char *what, const double *got, const double *want, size_t n, double rel_tol,
                          double abs_floor) {
    double worst = 0;
    size_t worst_i = 0;
    bool ok = true;
    for (size_t i = 0; i < n; i++) {
        double scale = fmax(fmax(fabs(got[i]), fabs(want[i])), abs_floor);
        double err = fabs(got[i] - want[i]) / scale;
        if (isnan(err) || !check_close(got[i], want[i], rel_tol, abs_floor)) {
            ok = false;
            if (isnan(err)) err = INFINITY;
        }
        if (err > worst || (isinf(err) && !isinf(worst))) {
            worst = err;
            worst_i = i;
        }
    }
    check_count++;
    if (!ok) {
        check_failures++;
        fprintf(stderr, "FAIL %s: worst relative error %.3e at [%zu]: got %.10g want %.10g (tol %.1e)\n", what, worst,
                worst_i, got[worst_i], want[worst_i], rel_tol);
    }
    return worst;
}

double check_arrays_close_f32(const char *what, const float *got, const float *want, size_t n, double rel_tol,
                              double abs_floor) {
    double *g = malloc(n * sizeof *g), *w = malloc(n * sizeof *w);
    if (!g || !w) {
        free(g);
        free(w);
        check_failures++;
        return INFINITY;
    }
    for (size_t i = 0; i < n; i++) {
        g[i] = got[i];
        w[i] = want[i];
    }
    double worst = check_arrays_close(what, g, w, n, rel_tol, abs_floor);
    free(g);
    free(w);
    return worst;
}

/* Snapshots handed out by check_f32, freed at check_finish. */
static float **check_snapshots;
static size_t check_snapshot_count;

const float *check_f32(const dsc_tensor_t *t) {
    size_t n = t && t->numel > 0 ? (size_t)t->numel : 1;
    float *host = malloc(n * sizeof *host);
    float **grown = realloc(check_snapshots, (check_snapshot_count + 1) * sizeof *grown);
    if (!host || !grown || !t || check_tensor_get(t, host, DSC_F32, (size_t)t->numel) != DSC_OK) {
        free(host);
        if (grown) check_snapshots = grown;
        check_failures++;
        fprintf(stderr, "FAIL check_f32: could not copy the tensor to the host\n");
        return NULL;
    }
    check_snapshots = grown;
    check_snapshots[check_snapshot_count++] = host;
    return host;
}

int check_finish(const char *test_name) {
    for (size_t i = 0; i < check_snapshot_count; i++) free(check_snapshots[i]);
    free(check_snapshots);
    check_snapshots = NULL;
    check_snapshot_count = 0;
    printf("%s: %d checks, %d failed\n", test_name, check_count, check_failures);
    return check_failures ? 1 : 0;
}

static void quiet_sink(dsc_log_level_t level, const char *message, void *user) {
    (void)level;
    (void)message;
    (void)user;
}

dsc_ctx_t *check_ctx_new(uint64_t seed) {
    dsc_ctx_options_t opts = DSC_CTX_OPTIONS_INIT;
    opts.seed = seed;
    opts.log_fn = quiet_sink;
    dsc_ctx_t *ctx = NULL;
    if (dsc_ctx_new(&opts, &ctx) != DSC_OK) {
        fprintf(stderr, "cannot create a context\n");
        exit(2);
    }
    return ctx;
}

void check_rm_tree(const char *path) {
    DIR *d = opendir(path);
    if (!d) {
        unlink(path);
        return;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        char p[1200];
        snprintf(p, sizeof p, "%s/%s", path, de->d_name);
        check_rm_tree(p);
    }
    closedir(d);
    rmdir(path);
}

int check_count_prefix(const char *dir, const char *prefix) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) n += strncmp(e->d_name, prefix, strlen(prefix)) == 0;
    if (d) closedir(d);
    return n;
}

bool check_reduced(void) {
    const char *v = getenv("DSC_TEST_REDUCED");
    return v && *v && strcmp(v, "0") != 0;
}

void check_markov_row(int step, int micro, int row, int32_t *x, int32_t *y, int t) {
    uint64_t st = 0x9E3779B97F4A7C15ull * (uint64_t)(step * 1000 + micro * 100 + row + 1);
    int32_t prev = (int32_t)((step + row) % 65);
    for (int i = 0; i < t + 1; i++) {
        st = st * 6364136223846793005ull + 1442695040888963407ull;
        uint32_t rnd = (uint32_t)(st >> 33);
        int32_t v = (rnd % 4 != 0) ? (7 * prev + 3) % 65 : (int32_t)((rnd >> 8) % 65);
        if (i < t) x[i] = v;
        if (i > 0) y[i - 1] = v;
        prev = v;
    }
}

dsc_status_t check_tensor_get(const dsc_tensor_t *t, void *dst, dsc_dtype_t dst_dtype, size_t n) {
    if (!t) return DSC_ERR_INVALID;
    size_t bytes = n * dsc_dtype_size(t->dtype);
    void *host = malloc(bytes ? bytes : 1);
    if (!host) return DSC_ERR_NOMEM;
    dsc_status_t st = dsc_tensor_to_host(t->device->ctx, t, host, bytes);
    if (st == DSC_OK) st = dsc_convert(dst, dst_dtype, host, t->dtype, n);
    free(host);
    return st;
}

dsc_status_t check_tensor_set(dsc_tensor_t *t, const void *src, dsc_dtype_t src_dtype, size_t n) {
    if (!t) return DSC_ERR_INVALID;
    size_t bytes = n * dsc_dtype_size(t->dtype);
    void *host = malloc(bytes ? bytes : 1);
    if (!host) return DSC_ERR_NOMEM;
    dsc_status_t st = dsc_convert(host, t->dtype, src, src_dtype, n);
    if (st == DSC_OK) st = dsc_tensor_from_host(t->device->ctx, t, host, bytes);
    free(host);
    return st;
}

double check_tensor_at(const dsc_tensor_t *t, int64_t i) {
    if (!t || i < 0 || i >= t->numel) return NAN;
    double v = NAN;
    size_t es = dsc_dtype_size(t->dtype);
    unsigned char buf[8];
    if (dsc__dev_to_host(t->device->ctx, buf, (const char *)t->data + (size_t)i * es, es) == DSC_OK)
        dsc_convert(&v, DSC_F64, buf, t->dtype, 1);
    return v;
}

void *check_read_file(const char *path, size_t *len) {
    if (len) *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    long n = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    char *buf = n >= 0 && fseek(f, 0, SEEK_SET) == 0 ? malloc((size_t)n + 1) : NULL;
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (!buf) return NULL;
    buf[n] = '\0';
    if (len) *len = (size_t)n;
    return buf;
}

/* Forward + backward throughput of matmul, gelu and layernorm at 1024 x 1024, each beside
 * its anchor measured in the same run:
 *   matmul    dsc_matmul forward + autograd backward (3 sgemm: y, dx, dw) vs the same three
 *             cblas_sgemm calls made directly: the op layer's overhead must stay <= 5%.
 *   gelu      fwd + bwd vs a memory-bound copy anchor (GB/s of the bytes each must touch).
 *   layernorm fwd + bwd, same anchor.
 * Usage: ops_fwd_bwd [n (default 1024)] [repeats (default 20)]. Prints medians. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/internal.h"
#include "dsc/dsc.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return v[n / 2];
}

typedef enum { OP_MATMUL, OP_GELU, OP_LAYERNORM } op_kind_t;

/* One forward + backward of the op through dsc, on wrapped inputs, back-propagating an
 * upstream gradient of ones (as the raw calls use dy = 1): the op's own cost, no loss op. */
static double time_dsc(dsc_ctx_t *ctx, op_kind_t op, int n, float *x, float *dx, float *w, float *dw, float *b, float *db,
                       float *dy) {
    int64_t shape[2] = {n, n}, vshape[1] = {n};
    double t0 = now();
    dsc_tensor_t *xt = dsc_tensor_wrap(ctx, DSC_F32, 2, shape, x, dx, false);
    dsc_tensor_t *y = NULL;
    if (op == OP_MATMUL) {
        dsc_tensor_t *wt = dsc_tensor_wrap(ctx, DSC_F32, 2, shape, w, dw, false);
        y = dsc_matmul(ctx, xt, wt, false, true);
    } else if (op == OP_GELU) {
        y = dsc_gelu(ctx, xt);
    } else {
        dsc_tensor_t *wt = dsc_tensor_wrap(ctx, DSC_F32, 1, vshape, w, dw, false);
        dsc_tensor_t *bt = dsc_tensor_wrap(ctx, DSC_F32, 1, vshape, b, db, false);
        y = dsc_layernorm(ctx, xt, wt, bt, 1e-5);
    }
    dsc_tensor_t *g = dsc_tensor_wrap(ctx, DSC_F32, 2, shape, dy, NULL, false);
    if (dsc__autograd_backward_from(ctx, y, g) != DSC_OK) {
        fprintf(stderr, "ops_fwd_bwd: %s\n", dsc_ctx_errmsg(ctx));
        exit(1);
    }
    dsc_ctx_end_step(ctx);
    return now() - t0;
}

/* The three sgemm calls of a linear layer's forward and backward, made directly. */
static double time_raw_sgemm(int n, const float *x, float *dx, const float *w, float *dw, float *y, const float *dy) {
    double t0 = now();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.0f, x, n, w, n, 0.0f, y, n);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, dy, n, w, n, 1.0f, dx, n);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, n, n, 1.0f, dy, n, x, n, 1.0f, dw, n);
    return now() - t0;
}

static double time_copy(size_t n_bytes, char *dst, const char *src) {
    double t0 = now();
    memcpy(dst, src, n_bytes);
    return now() - t0;
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 1024;
    int reps = argc > 2 ? atoi(argv[2]) : 20;
    if (n < 8 || reps < 3) {
        fprintf(stderr, "usage: ops_fwd_bwd [n >= 8] [repeats >= 3]\n");
        return 2;
    }
    size_t nn = (size_t)n * n;
    float *x = malloc(nn * 4), *dx = calloc(nn, 4), *w = malloc(nn * 4), *dw = calloc(nn, 4), *y = malloc(nn * 4),
          *dy = malloc(nn * 4), *b = calloc((size_t)n, 4), *db = calloc((size_t)n, 4);
    char *copy_src = malloc(nn * 16), *copy_dst = malloc(nn * 16);
    if (!x || !dx || !w || !dw || !y || !dy || !b || !db || !copy_src || !copy_dst) return 1;
    for (size_t i = 0; i < nn; i++) {
        x[i] = (float)((i * 2654435761u) % 1000) / 1000.0f - 0.5f;
        w[i] = (float)((i * 40503u) % 1000) / 1000.0f - 0.5f;
        dy[i] = 1.0f;
    }
    memset(copy_src, 1, nn * 16);
    dsc_ctx_t *ctx = NULL;
    dsc_ctx_new(NULL, &ctx);
    double *t = malloc(sizeof(double) * (size_t)reps);

    printf("ops_fwd_bwd: n=%d, %d repeats, medians; OpenMP/OpenBLAS threads from the environment\n", n, reps);
    /* matmul: 3 GEMMs of 2 n^3 flops each. */
    double flops = 3.0 * 2.0 * n * (double)n * n;
    /* Interleaved, so load from other processes hits both sides alike. */
    double *t2 = malloc(sizeof(double) * (size_t)reps);
    for (int r = 0; r < reps; r++) {
        t[r] = time_raw_sgemm(n, x, dx, w, dw, y, dy);
        t2[r] = time_dsc(ctx, OP_MATMUL, n, x, dx, w, dw, NULL, NULL, dy);
    }
    double raw = median(t, reps);
    double ours = median(t2, reps);
    free(t2);
    printf("  matmul    fwd+bwd  dsc %8.3f ms  %7.1f GFLOP/s | raw sgemm x3 %8.3f ms  %7.1f GFLOP/s | overhead %+.1f%%\n",
           ours * 1e3, flops / ours * 1e-9, raw * 1e3, flops / raw * 1e-9, (ours / raw - 1) * 100);

    /* Elementwise ops: compare with copying the bytes they must move. gelu: fwd reads x,
     * writes y; bwd reads x, dy, dx and writes dx: 6 n^2 floats. layernorm adds the row
     * statistics but moves the same order: fwd reads x, writes y; bwd reads x, dy, dx, writes dx. */
    size_t bytes = nn * 4 * 6;
    for (int r = 0; r < reps; r++) t[r] = time_copy(bytes / 2, copy_dst, copy_src);
    double copy = median(t, reps);
    const char *names[2] = {"gelu", "layernorm"};
    for (int k = 0; k < 2; k++) {
        for (int r = 0; r < reps; r++) t[r] = time_dsc(ctx, k == 0 ? OP_GELU : OP_LAYERNORM, n, x, dx, w, dw, b, db, dy);
        double tk = median(t, reps);
        printf("  %-9s fwd+bwd  dsc %8.3f ms  %7.2f GB/s | memcpy of the same bytes %8.3f ms  %7.2f GB/s | %.2fx the copy time\n",
               names[k], tk * 1e3, bytes / tk * 1e-9, copy * 1e3, bytes / copy * 1e-9, tk / copy);
    }
    dsc_ctx_free(ctx);
    free(t);
    free(x), free(dx), free(w), free(dw), free(y), free(dy), free(b), free(db), free(copy_src), free(copy_dst);
    return 0;
}

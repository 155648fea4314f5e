/* Causal attention forward + backward through the op layer (dsc_attention and its tape
 * backward), timed in thread CPU time (CLOCK_THREAD_CPUTIME_ID) so that a shared, loaded
 * machine distorts the figure less than wall time would; run it with OMP_NUM_THREADS=1
 * for that reason. The same source builds against older trees (it uses only the public op
 * API and the internal backward entry), so a before/after comparison runs one binary of
 * each, interleaved.
 *
 * Usage: attention_time [repeats (default 30)] [dropout (default 0)]
 * Shapes: the default GPT's (B16 T64 C128 H4), d6's (B16 T64 C384 H6) and a long one
 * (B1 T1024 C768 H12, one 124M block). Prints the medians per shape in ms (fwd+bwd, and
 * the forward alone). */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "bench_util.h"
#include "core/internal.h"
#include "dsc/dsc.h"

static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    int reps = argc > 1 ? atoi(argv[1]) : 30;
    double p = argc > 2 ? atof(argv[2]) : 0.0;
    if (reps < 3) reps = 3;
    const int shapes[3][4] = {{16, 64, 128, 4}, {16, 64, 384, 6}, {1, 1024, 768, 12}};
    dsc_ctx_t *ctx = NULL;
    if (dsc_ctx_new(NULL, &ctx) != DSC_OK) return 1;
    double *t = malloc(sizeof(double) * (size_t)reps), *tf = malloc(sizeof(double) * (size_t)reps);
    for (int s = 0; s < 3; s++) {
        const int b = shapes[s][0], tt = shapes[s][1], c = shapes[s][2], h = shapes[s][3];
        const int n_reps = s == 2 ? (reps + 4) / 5 : reps;
        for (int r = 0; r < n_reps; r++) {
            dsc_ctx_end_step(ctx);
            int64_t shape[3] = {b, tt, 3 * c}, oshape[3] = {b, tt, c};
            dsc_tensor_t *qkv = dsc_tensor_new(ctx, DSC_F32, 3, shape);
            dsc_tensor_fill_uniform(ctx, qkv, -1, 1);
            dsc_tensor_set_requires_grad(qkv, true);
            dsc_tensor_t *up = dsc_tensor_new(ctx, DSC_F32, 3, oshape);
            dsc_tensor_fill_uniform(ctx, up, -1, 1);
            double t0 = cpu_now();
            dsc_tensor_t *out = dsc_attention(ctx, qkv, h, p);
            tf[r] = cpu_now() - t0;
            if (!out || dsc__autograd_backward_from(ctx, out, up) != DSC_OK) {
                fprintf(stderr, "attention_time: %s\n", dsc_ctx_errmsg(ctx));
                return 1;
            }
            t[r] = cpu_now() - t0;
        }
        qsort(t, (size_t)n_reps, sizeof *t, bench_cmp_double);
        qsort(tf, (size_t)n_reps, sizeof *tf, bench_cmp_double);
        printf("attention fwd+bwd B%d T%d C%d H%d p%g: %.3f ms CPU (forward %.3f ms; medians of %d)\n", b, tt, c, h,
               p, t[n_reps / 2] * 1e3, tf[n_reps / 2] * 1e3, n_reps);
    }
    free(t);
    free(tf);
    dsc_ctx_free(ctx);
    return 0;
}

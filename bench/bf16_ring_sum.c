/* 16-bit gradient sums across ranks: NCCL's native bf16 ring arithmetic against dsc's f32
 * accumulation, on real gradients. A simulation of the arithmetic on the CPU, not a GPU
 * measurement (no NCCL runs here):
 *     ./build/bench/bf16_ring_sum [train_steps]
 *
 * Gradients: the small GPT (4 layers x 128, vocab 256) trained train_steps (default 30)
 * steps in bf16 on one process, then, at those parameters, one backward per simulated rank
 * on that rank's own batch (a data-parallel rank's micro-batch), each gradient rounded into
 * bf16 once by the backward: what ZeRO-2/3 hand to the reduce-scatter (the engine runs with
 * data_types.grad_accum_dtype bf16 here so the bf16 gradients stay readable).
 *
 * Sums, per element of the flat gradient (P elements split into N equal slices, rank d
 * owning slice d; NCCL's ring reduce-scatter, and the reduce-scatter phase of its ring
 * all-reduce, start slice d's sum on rank d+1 and add ranks d+2, ..., d+N-1, d in turn,
 * ring order = rank order here):
 *   native: every hop adds in f32 and rounds to bf16 (NCCL's bf16 sum: __hadd2 on sm_80+,
 *           f32 add then rounding before); N-1 roundings;
 *   f32:    dsc's default: widened to f32, every hop adds in f32, one rounding to bf16 at
 *           the end;
 *   ideal:  the exact sum (double) rounded once to bf16: the best a bf16 result can be.
 * Errors against the exact sum: relative L2 (||r - e|| / ||e||) and the largest error
 * relative to the largest |e|; "differs" counts elements where native and f32 differ. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "dsc/dsc.h"

#define MAX_RANKS 8

static float bf16_round(float x) { return dsc_bf16_to_f32(dsc_f32_to_bf16(x)); }

/* A token stream with structure to learn: a fixed random bigram table walked with a
 * linear congruential generator (deterministic, seeded per batch). */
static void make_batch(int32_t *x, int32_t *y, int n, int vocab, uint32_t seed) {
    uint32_t s = seed * 2654435761u + 12345u;
    int tok = (int)(seed % (uint32_t)vocab);
    for (int i = 0; i <= n; i++) {
        s = s * 1664525u + 1013904223u;
        /* 3 of 4 times the bigram successor, otherwise a random token */
        const int next = (s >> 30) ? (tok * 37 + 11) % vocab : (int)((s >> 8) % (uint32_t)vocab);
        if (i < n) x[i] = tok;
        if (i > 0) y[i - 1] = tok;
        tok = next;
    }
}

typedef struct err_acc {
    double se, sref, maxerr;
} err_acc_t;

static void err_add(err_acc_t *a, double r, double e) {
    const double d = fabs(r - e);
    a->se += d * d;
    a->sref += e * e;
    if (d > a->maxerr) a->maxerr = d;
}

int main(int argc, char **argv) {
    const int train_steps = argc > 1 ? atoi(argv[1]) : 30, mb = 8, t = 64, vocab = 256;
    dsc_ctx_options_t co = DSC_CTX_OPTIONS_INIT;
    co.log_fn = bench_log_errors;
    dsc_ctx_t *ctx = NULL;
    if (dsc_ctx_new(&co, &ctx) != DSC_OK) return 1;
    dsc_gpt_config_t gc = {4, 4, 128, vocab, t, 0.0, 1e-5};
    dsc_gpt_t *gpt = NULL;
    if (dsc_gpt_new(ctx, &gc, &gpt) != DSC_OK) return 1;
    const char *json = "{\"train_micro_batch_size_per_gpu\": 8, \"bf16\": {\"enabled\": true}, "
                       "\"data_types\": {\"grad_accum_dtype\": \"bf16\"}, \"zero_optimization\": {\"stage\": 0}, "
                       "\"optimizer\": {\"type\": \"AdamW\", \"params\": {\"lr\": 0.003}}}";
    dsc_engine_options_t o = DSC_ENGINE_OPTIONS_INIT;
    o.config_json = json;
    dsc_initialize_result_t init;
    char err[1024];
    if (dsc_initialize(gpt->model, &o, &init, err, sizeof err) != DSC_OK) {
        fprintf(stderr, "bf16_ring_sum: %s\n", err);
        return 1;
    }
    int32_t *x = malloc(sizeof *x * mb * t), *y = malloc(sizeof *y * mb * t);
    double first_loss = 0, last_loss = 0;
    for (int s = 0; s < train_steps; s++) {
        make_batch(x, y, mb * t, vocab, 1000u + (uint32_t)s);
        dsc_tensor_t *loss = NULL;
        if (dsc_gpt_forward(ctx, gpt, x, y, mb, t, NULL, &loss) != DSC_OK ||
            (last_loss = dsc_tensor_item(loss), dsc_backward(init.engine, loss)) != DSC_OK ||
            dsc_step(init.engine) != DSC_OK) {
            fprintf(stderr, "bf16_ring_sum: training step %d: %s\n", s, dsc_engine_errmsg(init.engine));
            return 1;
        }
        if (s == 0) first_loss = last_loss;
    }
    /* One gradient per simulated rank, at the same parameters. */
    const int n_param = dsc_model_param_count(gpt->model);
    const int64_t P = dsc_model_numel(gpt->model);
    float *g[MAX_RANKS];
    for (int r = 0; r < MAX_RANKS; r++) {
        g[r] = calloc((size_t)P, sizeof(float));
        dsc_zero_grad(init.engine);
        make_batch(x, y, mb * t, vocab, 777000u + (uint32_t)r);
        dsc_tensor_t *loss = NULL;
        if (dsc_gpt_forward(ctx, gpt, x, y, mb, t, NULL, &loss) != DSC_OK || dsc_backward(init.engine, loss) != DSC_OK) {
            fprintf(stderr, "bf16_ring_sum: rank %d's backward: %s\n", r, dsc_engine_errmsg(init.engine));
            return 1;
        }
        for (int i = 0; i < n_param; i++) {
            dsc_param_info_t info;
            dsc_model_param_info(gpt->model, i, &info);
            dsc_tensor_t *gt = dsc_tensor_grad(info.tensor);
            if (!gt || dsc_tensor_dtype(gt) != DSC_BF16) {
                fprintf(stderr, "bf16_ring_sum: %s has no bf16 gradient\n", info.name);
                return 1;
            }
            const uint16_t *src = dsc_tensor_data(gt);
            for (int64_t k = 0; k < info.numel; k++) g[r][info.offset + k] = dsc_bf16_to_f32(src[k]);
        }
    }
    printf("bf16_ring_sum: GPT 4x128, vocab 256, %lld parameters, bf16, %d training steps (loss %.3f -> %.3f), "
           "one %dx%d-token micro-batch per rank\n"
           "simulated on the CPU: NCCL's ring order and rounding, not a GPU run\n"
           "ranks | rel. L2 error: native bf16   f32 accum   ideal | max error / max|sum|: native   f32 accum   "
           "ideal | native != f32\n",
           (long long)P, train_steps, first_loss, last_loss, mb, t);
    for (int N = 2; N <= MAX_RANKS; N *= 2) {
        err_acc_t en = {0}, ef = {0}, ei = {0};
        double maxref = 0;
        int64_t differs = 0;
        const int64_t slice = (P + N - 1) / N;
        for (int64_t i = 0; i < P; i++) {
            const int d = (int)(i / slice); /* the rank that owns (finishes) this element */
            double exact = 0;
            for (int q = 0; q < N; q++) exact += g[q][i];
            float nat = g[(d + 1) % N][i], wide = g[(d + 1) % N][i];
            for (int k = 2; k <= N; k++) {
                const float v = g[(d + k) % N][i];
                nat = bf16_round(nat + v);
                wide = wide + v;
            }
            wide = bf16_round(wide);
            err_add(&en, nat, exact);
            err_add(&ef, wide, exact);
            err_add(&ei, bf16_round((float)exact), exact);
            if (fabs(exact) > maxref) maxref = fabs(exact);
            differs += nat != wide;
        }
        printf("%5d | %26.3e %11.3e %7.3e | %31.3e %11.3e %7.3e | %.2f%%\n", N, sqrt(en.se / en.sref),
               sqrt(ef.se / ef.sref), sqrt(ei.se / ei.sref), en.maxerr / maxref, ef.maxerr / maxref,
               ei.maxerr / maxref, 100.0 * (double)differs / (double)P);
    }
    for (int r = 0; r < MAX_RANKS; r++) free(g[r]);
    free(x);
    free(y);
    dsc_engine_free(init.engine);
    dsc_gpt_free(gpt);
    dsc_ctx_free(ctx);
    return 0;
}

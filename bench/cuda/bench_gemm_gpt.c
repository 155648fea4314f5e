/* The gemms of one GPT-2 micro-batch, as the engine issues them, timed one by one with
 * cuBLASLt's first heuristic choice and, beside it, the best of its first 8 choices: where
 * issue 17's gemm time goes, and what alignment (the vocabulary's 50257 against a padded
 * 50304) and the choice of algorithm cost.
 *
 * Layouts (row-major, as src/ops/op_linalg.c calls backend.h's gemm):
 *   fwd  y[M,N]  = x[M,K] W[N,K]^T           beta 0
 *   dX   dx[M,K] += dy[M,N] W[N,K]           beta 1
 *   dW   dW[N,K] += dy[M,N]^T x[M,K]         beta 1
 * M = B*T tokens, bf16 operands, f32 accumulation.
 * Usage: bench_gemm_gpt [--batch B] [--embd C] [--vocab V] [--layers L]. Exits 77 without a GPU. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/cuda/cuda_kernels.h"

#define CK(call)                                                                                            \
    do {                                                                                                    \
        int rc_ = (call);                                                                                   \
        if (rc_) {                                                                                          \
            fprintf(stderr, "%s:%d: %s -> %d (%s)\n", __FILE__, __LINE__, #call, rc_, dsc_cuda_error_string(rc_)); \
            exit(1);                                                                                        \
        }                                                                                                   \
    } while (0)

typedef struct {
    const char *what;
    int64_t n, k; /* the linear layer: W is [n, k] */
    int64_t ld_n; /* row stride of y/dy (n, or n padded) */
    int count;    /* per micro-batch */
} layer_t;

static void *zeros_bf16(size_t n) {
    void *p = NULL;
    CK(dsc_cuda_malloc(&p, n * 2));
    /* 0x3c00 bf16 = 0.0078125: finite, non-zero data (zeros run faster on tensor cores) */
    CK(dsc_cuda_memset_async(p, 0x3c, n * 2, NULL));
    return p;
}

int main(int argc, char **argv) {
    int64_t b = 64, t = 1024, c = 768, v = 50257, layers = 12;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--batch")) b = atoll(argv[i + 1]);
        else if (!strcmp(argv[i], "--embd")) c = atoll(argv[i + 1]);
        else if (!strcmp(argv[i], "--vocab")) v = atoll(argv[i + 1]);
        else if (!strcmp(argv[i], "--layers")) layers = atoll(argv[i + 1]);
    }
    if (dsc_cuda_device_count() < 1) {
        printf("bench_gemm_gpt: SKIP: no CUDA device\n");
        return 77;
    }
    dsc_cuda_device_info_t info;
    CK(dsc_cuda_device_info(0, &info));
    const int64_t m = b * t, vp = (v + 63) / 64 * 64;
    printf("device: %s; gemms of one micro-batch: B %lld x T %lld = M %lld, C %lld, %lld layers, vocab %lld "
           "(padded %lld)\n",
           info.name, (long long)b, (long long)t, (long long)m, (long long)c, (long long)layers, (long long)v,
           (long long)vp);
    dsc_cuda_blas_t *blas = NULL;
    CK(dsc_cuda_blas_create(&blas, 32u << 20));
    const layer_t ls[] = {
        {"qkv", 3 * c, c, 3 * c, (int)layers},
        {"attn proj", c, c, c, (int)layers},
        {"fc", 4 * c, c, 4 * c, (int)layers},
        {"mlp proj", c, 4 * c, c, (int)layers},
        {"lm head V", v, c, v, 1},
        {"lm head V, ld Vp", v, c, vp, 1},
        {"lm head Vp", vp, c, vp, 1},
    };
    const int n_layers = (int)(sizeof ls / sizeof ls[0]);
    double total_h[3] = {0, 0, 0}, total_b[3] = {0, 0, 0}, total_padded_h = 0, total_padded_b = 0;
    printf("%-18s %-4s %10s %8s %10s %8s %6s\n", "layer", "op", "heur ms", "TFLOP/s", "best-of-8", "TFLOP/s", "#best");
    for (int li = 0; li < n_layers; li++) {
        const layer_t *L = &ls[li];
        void *x = zeros_bf16((size_t)(m * L->k)), *w = zeros_bf16((size_t)(L->n * L->k));
        void *y = zeros_bf16((size_t)(m * L->ld_n)), *dx = zeros_bf16((size_t)(m * L->k));
        void *dw = zeros_bf16((size_t)(L->n * L->k));
        const double flop = 2.0 * m * L->n * L->k;
        for (int op = 0; op < 3; op++) {
            dsc_cuda_gemm_probe_t pr;
            memset(&pr, 0, sizeof pr);
            pr.max_algos = 8, pr.reps = 3;
            if (op == 0) /* fwd */
                CK(dsc_cuda_gemm_probe(blas, NULL, DSC_BF16, false, true, m, L->n, L->k, x, L->k, w, L->k, 0.0, y,
                                       L->ld_n, &pr));
            else if (op == 1) /* dX */
                CK(dsc_cuda_gemm_probe(blas, NULL, DSC_BF16, false, false, m, L->k, L->n, y, L->ld_n, w, L->k, 1.0,
                                       dx, L->k, &pr));
            else /* dW */
                CK(dsc_cuda_gemm_probe(blas, NULL, DSC_BF16, true, false, L->n, L->k, m, y, L->ld_n, x, L->k, 1.0,
                                       dw, L->k, &pr));
            float best = -1;
            int best_i = -1;
            for (int i = 0; i < pr.n_algos; i++)
                if (pr.ms[i] > 0 && (best < 0 || pr.ms[i] < best)) best = pr.ms[i], best_i = i;
            const float h = pr.n_algos > 0 ? pr.ms[0] : -1;
            static const char *names[3] = {"fwd", "dX", "dW"};
            printf("%-18s %-4s %10.3f %8.1f %10.3f %8.1f %6d\n", L->what, names[op], h, h > 0 ? flop / (h * 1e-3) / 1e12 : 0,
                   best, best > 0 ? flop / (best * 1e-3) / 1e12 : 0, best_i);
            if (li < 4 || li == 4) {
                total_h[op] += L->count * (double)h;
                total_b[op] += L->count * (double)best;
            }
            if (li < 4 || li == 6) {
                total_padded_h += L->count * (double)h;
                total_padded_b += L->count * (double)best;
            }
        }
        dsc_cuda_free(x), dsc_cuda_free(w), dsc_cuda_free(y), dsc_cuda_free(dx), dsc_cuda_free(dw);
    }
    const double all_h = total_h[0] + total_h[1] + total_h[2], all_b = total_b[0] + total_b[1] + total_b[2];
    printf("per micro-batch (vocab %lld): fwd %.1f ms, dX %.1f ms, dW %.1f ms = %.1f ms heuristic; best-of-8 %.1f ms\n",
           (long long)v, total_h[0], total_h[1], total_h[2], all_h, all_b);
    printf("per micro-batch with the padded vocabulary %lld: %.1f ms heuristic, best-of-8 %.1f ms\n", (long long)vp,
           total_padded_h, total_padded_b);
    dsc_cuda_blas_destroy(blas);
    return 0;
}

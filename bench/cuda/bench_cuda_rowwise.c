/* Microbenchmark of the memory-bound kernels of a GPT-2 training step on CUDA at d12 B 64
 * shapes (65,536 rows of 768 / 3,072 / 50,304 bf16), each beside the hardware limit measured in
 * the same run: the bytes it must move at the device-to-device copy bandwidth. Per kernel: ms
 * (median of 10 after 2 warm-ups), GB/s of the bytes it must move, that as a share of the copy
 * bandwidth, and its share of an optimizer step (calls per micro-batch x 8 micro-batches),
 * so the rows say where the step's non-gemm time goes and what is left to gain.
 *
 * The embedding backward rows also print the unsorted kernel's time (no workspace) for
 * comparison.
 *
 * Usage: bench_cuda_rowwise [--rows N] (default 65536 = B 64 x T 1024). Exits 77 without a GPU. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/cuda/bench_cuda_util.h"

typedef struct row_ctx {
    bench_timer_t t;
    double copy_gbs;
    double step_ms; /* sum of the rows' per-step figures */
} row_ctx_t;

static void report(row_ctx_t *r, const char *what, float ms, double bytes, int calls_per_micro) {
    const double gbs = bytes / (ms * 1e-3) / 1e9, floor_ms = bytes / (r->copy_gbs * 1e9) * 1e3;
    const double per_step = ms * calls_per_micro * 8;
    r->step_ms += per_step;
    printf("%-46s %8.3f ms %6.0f GB/s %4.0f%% of copy (floor %.3f ms) x %3d/micro-batch = %6.1f ms/step\n", what, ms,
           gbs, 100 * gbs / r->copy_gbs, floor_ms, calls_per_micro, per_step);
}

int main(int argc, char **argv) {
    int64_t rows = 65536;
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], "--rows") == 0) rows = atoll(argv[++i]);
    if (dsc_cuda_device_count() < 1) {
        printf("bench_cuda_rowwise: SKIP: no CUDA device\n");
        return 77;
    }
    dsc_cuda_device_info_t info;
    BCK(dsc_cuda_device_info(0, &info));
    row_ctx_t r = {{NULL, NULL}, 0, 0};
    BCK(dsc_cuda_event_create(&r.t.ev0));
    BCK(dsc_cuda_event_create(&r.t.ev1));
    r.copy_gbs = bench_copy_gbs(&r.t);
    printf("device: %s; copy d2d %.0f GB/s (read + write); %lld rows, bf16\n", info.name, r.copy_gbs, (long long)rows);
    const dsc_dtype_t dt = DSC_BF16;
    const int64_t C = 768, C4 = 4 * C, C3 = 3 * C, V = 50257, VP = 50304;
    const double e = 2.0; /* bytes per bf16 */
    uint64_t seed = 88172645463325252ull;
    float ms = 0;

    /* layer norm: 25 per micro-batch (2 per block + the final one) */
    void *x = bench_rand_dev(dt, (size_t)(rows * C), -3, 3, &seed), *y = bench_rand_dev(dt, (size_t)(rows * C), 0, 0, &seed);
    void *dy = bench_rand_dev(dt, (size_t)(rows * C), -1, 1, &seed), *dx = bench_rand_dev(dt, (size_t)(rows * C), -1, 1, &seed);
    void *w = bench_rand_dev(dt, (size_t)C, 0.5f, 1.5f, &seed), *b = bench_rand_dev(dt, (size_t)C, -0.5f, 0.5f, &seed);
    void *dw = bench_rand_dev(dt, (size_t)C, 0, 0, &seed), *db = bench_rand_dev(dt, (size_t)C, 0, 0, &seed);
    void *mean = NULL, *rstd = NULL, *ws = NULL;
    const size_t wsb = 2 * dsc_cuda_col_sums_workspace_bytes(rows, C4);
    BCK(dsc_cuda_malloc(&mean, (size_t)rows * 4));
    BCK(dsc_cuda_malloc(&rstd, (size_t)rows * 4));
    BCK(dsc_cuda_malloc(&ws, wsb));
    const double act = (double)rows * C * e;
    BENCH_MS(&r.t, ms, 2, 10, BCK(dsc_cuda_layernorm(NULL, dt, rows, C, 1e-5, x, w, b, y, mean, rstd)));
    report(&r, "layernorm forward [rows, 768]", ms, 2 * act, 25);
    BENCH_MS(&r.t, ms, 2, 10,
             BCK(dsc_cuda_layernorm_backward_ws(NULL, dt, rows, C, x, w, mean, rstd, dy, dx, dw, db, ws, wsb)));
    report(&r, "layernorm backward dx += , dw, db", ms, 4 * act, 25);

    /* bias gradients: column sums (2 x 768, 2304 and 3072 wide per block) */
    BENCH_MS(&r.t, ms, 2, 10, BCK(dsc_cuda_sum_rows_acc_ws(NULL, dt, rows, C, 1.0, dy, dw, ws, wsb)));
    report(&r, "sum_rows_acc [rows, 768] (bias grad)", ms, act, 24);
    void *h = bench_rand_dev(dt, (size_t)(rows * C4), -3, 3, &seed), *hg = bench_rand_dev(dt, (size_t)(rows * C4), 0, 0, &seed);
    void *hd = bench_rand_dev(dt, (size_t)(rows * C4), -1, 1, &seed), *db4 = bench_rand_dev(dt, (size_t)C4, 0, 0, &seed);
    BENCH_MS(&r.t, ms, 2, 10, BCK(dsc_cuda_sum_rows_acc_ws(NULL, dt, rows, C4, 1.0, hd, db4, ws, wsb)));
    report(&r, "sum_rows_acc [rows, 3072] (bias grad)", ms, 4 * act, 12);
    BENCH_MS(&r.t, ms, 2, 10, BCK(dsc_cuda_sum_rows_acc_ws(NULL, dt, rows, C3, 1.0, hd, db4, ws, wsb)));
    report(&r, "sum_rows_acc [rows, 2304] (bias grad)", ms, 3 * act, 12);

    /* GELU on the MLP pre-activation: forward twice (forward, recomputed in backward), backward once */
    BENCH_MS(&r.t, ms, 2, 10, BCK(dsc_cuda_unary(NULL, dt, DSC_UNARY_GELU, rows * C4, h, hg)));
    report(&r, "gelu forward [rows, 3072]", ms, 2 * 4 * act, 24);
    BENCH_MS(&r.t, ms, 2, 10, BCK(dsc_cuda_unary_backward(NULL, dt, DSC_UNARY_GELU, rows * C4, h, NULL, hg, hd)));
    report(&r, "gelu backward dx += dy gelu'(x) [rows, 3072]", ms, 4 * 4 * act, 12);
    dsc_cuda_free(h), dsc_cuda_free(hg), dsc_cuda_free(hd), dsc_cuda_free(db4);

    /* residual stream: forward adds, gradient adds, zero fills */
    BENCH_MS(&r.t, ms, 2, 10, BCK(dsc_cuda_binary(NULL, dt, DSC_BINARY_ADD, rows * C, x, rows * C, y, y)));
    report(&r, "binary add [rows, 768] (residual)", ms, 3 * act, 24);
    BENCH_MS(&r.t, ms, 2, 10, BCK(dsc_cuda_axpy(NULL, dt, rows * C, 1.0, dy, dx)));
    report(&r, "axpy [rows, 768] (gradient add)", ms, 3 * act, 24);
    BENCH_MS(&r.t, ms, 2, 10, BCK(dsc_cuda_memset_async(dx, 0, (size_t)act, NULL)));
    report(&r, "memset [rows, 768] (a fresh gradient)", ms, act, 48);
    dsc_cuda_free(x), dsc_cuda_free(y), dsc_cuda_free(dy), dsc_cuda_free(dx), dsc_cuda_free(w), dsc_cuda_free(b);
    dsc_cuda_free(dw), dsc_cuda_free(db), dsc_cuda_free(mean), dsc_cuda_free(rstd), dsc_cuda_free(ws);

    /* cross-entropy over the padded LM head's logits (row stride 50,304, width 50,257) */
    {
        void *logits = bench_rand_dev(dt, (size_t)(rows * VP), -4, 4, &seed);
        int32_t *tg = malloc((size_t)rows * sizeof *tg);
        for (int64_t i = 0; i < rows; i++) tg[i] = (int32_t)((uint64_t)(i * 7919) % (uint64_t)V);
        void *dtg = NULL, *losses = NULL, *lse = NULL, *g = NULL;
        BCK(dsc_cuda_malloc(&dtg, (size_t)rows * 4));
        BCK(dsc_cuda_malloc(&losses, (size_t)rows * 4));
        BCK(dsc_cuda_malloc(&lse, (size_t)rows * 4));
        BCK(dsc_cuda_malloc(&g, 4));
        BCK(dsc_cuda_copy_h2d_async(dtg, tg, (size_t)rows * 4, NULL));
        const float gv = 1.0f / (float)rows;
        BCK(dsc_cuda_copy_h2d_async(g, &gv, 4, NULL));
        BCK(dsc_cuda_stream_sync(NULL));
        const double lb = (double)rows * V * e;
        BENCH_MS(&r.t, ms, 2, 10, BCK(dsc_cuda_cross_entropy(NULL, dt, rows, V, VP, logits, dtg, -100, losses, lse)));
        report(&r, "cross-entropy forward [rows, 50257]", ms, lb, 1);
        BENCH_MS(&r.t, ms, 2, 10,
                 BCK(dsc_cuda_cross_entropy_backward(NULL, dt, rows, V, VP, logits, lse, dtg, -100, g, logits, false)));
        report(&r, "cross-entropy backward, in place", ms, 2 * lb, 1);
        /* the LM head's loss with its gradient ahead (op_lm_head.c): both in one pass over each
         * row; the floor is one read and one write of the logits (the two calls above: 3) */
        BENCH_MS(&r.t, ms, 2, 10,
                 BCK(dsc_cuda_cross_entropy_with_grad(NULL, dt, rows, V, VP, logits, dtg, -100, losses, lse, g, logits)));
        report(&r, "cross-entropy forward + backward, one pass", ms, 2 * lb, 1);
        dsc_cuda_free(logits), dsc_cuda_free(dtg), dsc_cuda_free(losses), dsc_cuda_free(lse), dsc_cuda_free(g);
        free(tg);
    }
    /* embedding backward: wte (token ids, Zipf-distributed like text: the most frequent token
     * about 9% of the ids) and wpe (positions 0..1023 of each sequence); floor: dout read once,
     * each touched table row read and written once */
    {
        const int64_t T = 1024, tables[2] = {V, T};
        int32_t *ids = malloc((size_t)rows * sizeof *ids);
        double *cdf = malloc((size_t)V * sizeof *cdf), tot = 0;
        for (int64_t k = 0; k < V; k++) cdf[k] = (tot += 1.0 / (double)(k + 1));
        uint8_t *seen = calloc((size_t)V, 1);
        void *dids = NULL, *dout = bench_rand_dev(dt, (size_t)(rows * C), -1, 1, &seed), *ews = NULL;
        BCK(dsc_cuda_malloc(&dids, (size_t)rows * 4));
        const size_t ewsb = dsc_cuda_embedding_backward_workspace_bytes(dt, rows, C);
        BCK(dsc_cuda_malloc(&ews, ewsb));
        for (int t = 0; t < 2; t++) {
            int64_t distinct = 0;
            memset(seen, 0, (size_t)V);
            for (int64_t i = 0; i < rows; i++) {
                if (t == 0) { /* inverse CDF of 1/(k+1), scrambled so hot ids are spread over the table */
                    const double u = (bench_urand(&seed) * 0.5 + 0.5) * tot;
                    int64_t lo = 0, hi = V - 1;
                    while (lo < hi) {
                        const int64_t mid = (lo + hi) / 2;
                        if (cdf[mid] < u) lo = mid + 1;
                        else hi = mid;
                    }
                    ids[i] = (int32_t)((lo * 7919) % V);
                } else {
                    ids[i] = (int32_t)(i % T);
                }
                distinct += !seen[ids[i]];
                seen[ids[i]] = 1;
            }
            BCK(dsc_cuda_copy_h2d_async(dids, ids, (size_t)rows * 4, NULL));
            void *dtab = bench_rand_dev(dt, (size_t)(tables[t] * C), -1, 1, &seed);
            BCK(dsc_cuda_stream_sync(NULL));
            const double bytes = act + 2.0 * (double)distinct * C * e;
            char what[64];
            BENCH_MS(&r.t, ms, 1, 3,
                     BCK(dsc_cuda_embedding_backward(NULL, dt, rows, C, tables[t], dids, dout, dtab)));
            printf("  (before: the unsorted kernel, %s: %.3f ms; not in the sum)\n", t ? "wpe" : "wte", ms);
            BENCH_MS(&r.t, ms, 2, 10,
                     BCK(dsc_cuda_embedding_backward_ws(NULL, dt, rows, C, tables[t], dids, dout, dtab, ews, ewsb)));
            snprintf(what, sizeof what, "embedding backward %s (%lld ids)", t ? "wpe [1024, 768]" : "wte [50257, 768]",
                     (long long)distinct);
            report(&r, what, ms, bytes, 1);
            dsc_cuda_free(dtab);
        }
        free(ids), free(cdf), free(seen);
        dsc_cuda_free(dids), dsc_cuda_free(dout), dsc_cuda_free(ews);
    }
    printf("sum of the rows above: %.1f ms per optimizer step of 8 micro-batches\n", r.step_ms);
    dsc_cuda_event_destroy(r.t.ev0);
    dsc_cuda_event_destroy(r.t.ev1);
    return 0;
}

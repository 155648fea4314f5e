/* CPU optimizer-step benchmark: dsc's fused Adam step over flat fp32 buffers, beside a
 * STREAM-style triad measured in the same run on the same buffers, and beside the scalar path
 * of the same kernel.
 *
 * For 16M, 64M and 256M parameters (or the sizes in M given as arguments) at 1 and 2 threads:
 *   adam      AdamW step (FusedAdam semantics, wd 0.01), the path dsc picks on this CPU
 *   adam+bf16 the same step also writing the bf16 copy of the parameters in the pass
 *   scalar    the same kernel forced onto the scalar path
 *   triad     a[i] = b[i] + s*c[i] with ordinary stores, STREAM's convention: 12 bytes per
 *             element (read b, c; write a). The CPU also reads a's lines before writing them
 *             (write-allocate), so the real traffic is 16 B and the figure understates the
 *             bandwidth by up to 25%.
 *   triad-nt  the same with non-temporal stores (no write-allocate): 12 bytes per element
 *             really move; the closest thing to the machine's usable bandwidth.
 * Adam bytes: 28 per parameter (read p, g, m, v; write p, m, v), 30 with the bf16 copy. Every
 * written array is also read, so these are the bytes that really move.
 * Each time is the median of 11 / 7 / 5 rounds (16M / 64M / 256M; the scalar path 3) after one
 * warm-up step; a round runs triad, triad-nt, adam and adam+bf16 back to back, and the %
 * columns are the medians of the per-round ratios adam GB/s / triad GB/s, which cancels the
 * slow bandwidth drifts of a shared machine. Runtime < 2 minutes on the 2-core reference box
 * (256M parameters need 4.5 GiB: p, g, m, v and the bf16 copy).
 *
 * Usage: optim_cpu [-q] [-t 1,2,...] [size_in_M ...]   (-q: adam and triads only)
 *   e.g. `optim_cpu 16` for a quick run, or
 * `optim_cpu -t 1,2,4,8,16 256` on a bigger host. Defaults: -t 1,2 16 64 256. */
#define _GNU_SOURCE
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_util.h"
#include "dsc/dsc.h"
#include "dsc/optim.h"
#include "optim/optim_internal.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, bench_cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* ---- triad ---- */

static void triad_plain(float *a, const float *b, const float *c, float s, size_t n, int nt) {
#pragma omp parallel for schedule(static) num_threads(nt)
    for (size_t i = 0; i < n; i++) a[i] = b[i] + s * c[i];
}

#if defined(__x86_64__)
__attribute__((target("avx512f"))) static void triad_nt_avx512(float *a, const float *b, const float *c, float s,
                                                                 size_t n, int nt) {
    /* a is 64-byte aligned and every chunk boundary is a multiple of 16 elements */
    const size_t nv = n / 16;
    const __m512 sv = _mm512_set1_ps(s);
#pragma omp parallel for schedule(static) num_threads(nt)
    for (size_t k = 0; k < nv; k++) {
        __m512 x = _mm512_add_ps(_mm512_loadu_ps(b + 16 * k), _mm512_mul_ps(sv, _mm512_loadu_ps(c + 16 * k)));
        _mm512_stream_ps(a + 16 * k, x);
    }
    _mm_sfence();
    for (size_t i = nv * 16; i < n; i++) a[i] = b[i] + s * c[i];
}

__attribute__((target("avx2"))) static void triad_nt_avx2(float *a, const float *b, const float *c, float s, size_t n,
                                                            int nt) {
    const size_t nv = n / 8;
    const __m256 sv = _mm256_set1_ps(s);
#pragma omp parallel for schedule(static) num_threads(nt)
    for (size_t k = 0; k < nv; k++) {
        __m256 x = _mm256_add_ps(_mm256_loadu_ps(b + 8 * k), _mm256_mul_ps(sv, _mm256_loadu_ps(c + 8 * k)));
        _mm256_stream_ps(a + 8 * k, x);
    }
    _mm_sfence();
    for (size_t i = nv * 8; i < n; i++) a[i] = b[i] + s * c[i];
}
#endif

static int triad_nt(float *a, const float *b, const float *c, float s, size_t n, int nt) {
#if defined(__x86_64__)
    if (dsc__optim_isa_supported(DSC_OPTIM_ISA_AVX512)) {
        triad_nt_avx512(a, b, c, s, n, nt);
        return 1;
    }
    if (dsc__optim_isa_supported(DSC_OPTIM_ISA_AVX2)) {
        triad_nt_avx2(a, b, c, s, n, nt);
        return 1;
    }
#endif
    (void)a, (void)b, (void)c, (void)s, (void)n, (void)nt;
    return 0;
}

/* ---- driver ---- */

enum { K_ADAM, K_BF16, K_SCALAR, K_TRIAD, K_TRIAD_NT, K_COUNT };

static double adam_once(dsc_optim_t *opt, float *p, const float *g, uint16_t *half) {
    double t0 = bench_now_s();
    if (dsc_optim_step(opt, p, g, 1.0f, 1e-4, half, DSC_BF16) != DSC_OK) {
        fprintf(stderr, "step failed\n");
        exit(1);
    }
    return bench_now_s() - t0;
}

int main(int argc, char **argv) {
    size_t sizes_m[8] = {16, 64, 256};
    int n_sizes = 3, threads[16] = {1, 2}, n_threads = 2, given = 0, quick = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-q") == 0) {
            quick = 1;
        } else if (strcmp(argv[i], "-t") == 0 && i + 1 < argc) {
            n_threads = 0;
            for (char *s = argv[++i]; *s && n_threads < 16;) {
                threads[n_threads++] = (int)strtol(s, &s, 10);
                if (*s == ',') s++;
                else if (*s) break;
            }
        } else if (given < 8) {
            sizes_m[given++] = (size_t)atol(argv[i]);
            n_sizes = given;
        }
    }
    dsc_ctx_t *ctx = NULL;
    if (dsc_ctx_new(NULL, &ctx) != DSC_OK) return 1;
    const dsc_optim_isa_t best = dsc__optim_isa_best();
    printf("dsc CPU optimizer step: AdamW (FusedAdam semantics), fp32 p/g/m/v, one flat buffer\n");
    printf("kernel path: %s (scalar column: forced scalar path); omp_get_max_threads() = %d\n",
           dsc__optim_isa_name(best), omp_get_max_threads());
    printf("bytes: adam 28 B/param, adam+bf16 30 B/param, triad 12 B/elem (STREAM convention; +4 B write-allocate "
           "not counted), triad-nt 12 B/elem (non-temporal stores)\n\n");
    printf("%7s %3s | %9s %8s %7s %7s %7s | %9s %7s | %9s %8s %7s | %8s %8s\n", "params", "thr", "adam ms", "Gparam/s",
           "GB/s", "%triad", "%trNT", "+bf16 ms", "GB/s", "scalar ms", "Gparam/s", "GB/s", "triad", "triad-nt");
    double total0 = bench_now_s();
    for (int si = 0; si < n_sizes; si++) {
        const size_t n = sizes_m[si] << 20;
        const int reps = n <= (16u << 20) ? 11 : n <= (64u << 20) ? 7 : 5;
        float *p = aligned_alloc(64, n * sizeof(float)), *g = aligned_alloc(64, n * sizeof(float));
        uint16_t *half = aligned_alloc(64, n * sizeof(uint16_t));
        if (!p || !g || !half) {
            fprintf(stderr, "cannot allocate %zu M parameters\n", sizes_m[si]);
            return 1;
        }
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < n; i++) {
            uint32_t h = (uint32_t)(i * 2654435761u);
            p[i] = (float)(h >> 8) * 0x1p-24f - 0.5f;
            g[i] = (float)((h * 2246822519u) >> 8) * 0x1p-24f - 0.5f;
            half[i] = 0;
        }
        dsc_optim_params_t pr = dsc_optim_default_params(DSC_OPTIM_ADAMW);
        pr.weight_decay = 0.01;
        dsc_optim_t *opt = NULL;
        if (dsc_optim_new(ctx, &pr, n, NULL, 0, &opt) != DSC_OK) {
            fprintf(stderr, "optimizer: %s\n", dsc_ctx_errmsg(ctx));
            return 1;
        }
        /* fault in m and v from both threads */
        float *m = dsc_optim_state_data(opt, 0), *v = dsc_optim_state_data(opt, 1);
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < n; i++) m[i] = v[i] = 0.0f;
        for (int ti = 0; ti < n_threads; ti++) {
            const int nt = threads[ti] > 0 ? threads[ti] : 1;
            /* Rounds interleave every kind, so slow drifts of the machine's bandwidth (it is a
             * shared VM) hit all kinds alike; the % columns are medians of per-round ratios. */
            double t[K_COUNT][16], r_triad[16], r_nt[16];
            int n_scalar = 0, has_nt = 1;
            dsc_optim_set_threads(opt, nt);
            dsc__optim_force_isa(opt, best);
            adam_once(opt, p, g, NULL); /* warm-up */
            triad_plain(m, p, g, 0.5f, n, nt);
            for (int r = 0; r < reps; r++) {
                double t0 = bench_now_s();
                triad_plain(v, p, g, 0.5f, n, nt);
                t[K_TRIAD][r] = bench_now_s() - t0;
                t0 = bench_now_s();
                has_nt = triad_nt(v, p, g, 0.5f, n, nt);
                t[K_TRIAD_NT][r] = bench_now_s() - t0;
                /* the triads overwrote v: reset it so Adam runs on sane state */
#pragma omp parallel for schedule(static) num_threads(nt)
                for (size_t i = 0; i < n; i++) v[i] = 0.0f;
                t[K_ADAM][r] = adam_once(opt, p, g, NULL);
                t[K_BF16][r] = quick ? NAN : adam_once(opt, p, g, half);
                r_triad[r] = (28.0 / t[K_ADAM][r]) / (12.0 / t[K_TRIAD][r]);
                r_nt[r] = (28.0 / t[K_ADAM][r]) / (12.0 / t[K_TRIAD_NT][r]);
                if (r < 3 && !quick) {
                    dsc__optim_force_isa(opt, DSC_OPTIM_ISA_SCALAR);
                    if (r == 0) adam_once(opt, p, g, NULL);
                    t[K_SCALAR][n_scalar++] = adam_once(opt, p, g, NULL);
                    dsc__optim_force_isa(opt, best);
                }
            }
            const double ta = median(t[K_ADAM], reps), tb = quick ? NAN : median(t[K_BF16], reps);
            const double ts = n_scalar ? median(t[K_SCALAR], n_scalar) : NAN;
            const double tri = 12.0 * n / median(t[K_TRIAD], reps) * 1e-9;
            const double trnt = has_nt ? 12.0 * n / median(t[K_TRIAD_NT], reps) * 1e-9 : NAN;
            printf("%6zuM %3d | %9.2f %8.3f %7.2f %6.0f%% %6.0f%% | %9.2f %7.2f | %9.2f %8.3f %7.2f | %8.2f %8.2f\n",
                   sizes_m[si], nt, ta * 1e3, n / ta * 1e-9, 28.0 * n / ta * 1e-9, 100.0 * median(r_triad, reps),
                   has_nt ? 100.0 * median(r_nt, reps) : NAN, tb * 1e3, 30.0 * n / tb * 1e-9, ts * 1e3, n / ts * 1e-9,
                   28.0 * n / ts * 1e-9, tri, trnt);
            fflush(stdout);
        }
        dsc_optim_free(opt);
        free(p);
        free(g);
        free(half);
    }
    printf("\nanchor (shared/reference/anchor_runs.md §2, 16-core AVX-512 host, 2^28 params, 16 threads): "
           "DeepSpeedCPUAdam 0.0652 s/step = 4.117 Gparam/s = 115.3 GB/s; torch AdamW fused=True 0.0617 s = 121.9 GB/s; "
           "foreach=True 0.1884 s = 39.9 GB/s. Compare per thread and as %% of the triad, not in absolute terms.\n");
    printf("total bench time %.1f s\n", bench_now_s() - total0);
    dsc_ctx_free(ctx);
    return 0;
}

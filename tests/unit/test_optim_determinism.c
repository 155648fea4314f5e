/* Bitwise properties of the optimizer kernels, for every optimizer variant:
 *   - the same bits on every ISA path (scalar, AVX2, AVX-512: those this CPU has) and at 1
 *     and 2 threads (omp_set_num_threads and dsc_optim_set_threads), on a partition large
 *     enough to be split (100,003 elements: vector bodies, scalar tails, several Lamb blocks);
 *   - the fused bf16/f16 output equals dsc_f32_to_bf16/f16 of the new master weights;
 *   - grad_scale folding equals pre-scaling the gradient with one fp32 multiply;
 *   - the half conversions agree with dsc's scalar ones on special values (NaN payloads,
 *     infinities, rounding ties, f16 overflow/subnormal boundaries) on every path. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "dsc/optim.h"
#include "optim/optim_internal.h"

#define N 100003
#define STEPS 3

static dsc_ctx_t *ctx;
static float *p0, *g0;

/* One configuration per kernel variant and flag. */
static int make_config(int i, dsc_optim_params_t *pr, const char **label) {
#define CFG(lbl, type)                                                                        \
    *pr = dsc_optim_default_params(type);                                                     \
    *label = lbl;
    switch (i) {
    case 0: CFG("adamw wd", DSC_OPTIM_ADAMW); pr->weight_decay = 0.01; return 1;
    case 1: CFG("adam l2 wd", DSC_OPTIM_ADAM); pr->adam_w_mode = false; pr->weight_decay = 0.01; return 1;
    case 2: CFG("adam nobc", DSC_OPTIM_ADAM); pr->bias_correction = false; return 1;
    case 3: CFG("adam ds_cpu", DSC_OPTIM_ADAM); pr->impl = DSC_OPTIM_IMPL_DS_CPU; pr->weight_decay = 0.01; return 1;
    case 4: CFG("lamb wd", DSC_OPTIM_LAMB); pr->weight_decay = 0.01; return 1;
    case 5: CFG("lamb eps_inside nobc", DSC_OPTIM_LAMB); pr->eps_inside_sqrt = true; pr->bias_correction = false;
        pr->max_coeff = 0.6; return 1;
    case 6: CFG("lion", DSC_OPTIM_LION); pr->weight_decay = 0.1; return 1;
    case 7: CFG("lion ds_cpu", DSC_OPTIM_LION); pr->impl = DSC_OPTIM_IMPL_DS_CPU; pr->weight_decay = 0.1; return 1;
    case 8: CFG("adagrad", DSC_OPTIM_ADAGRAD); pr->weight_decay = 0.01; pr->lr_decay = 0.1;
        pr->initial_accumulator_value = 0.1; return 1;
    case 9: CFG("adagrad ds_cpu", DSC_OPTIM_ADAGRAD); pr->impl = DSC_OPTIM_IMPL_DS_CPU; pr->weight_decay = 0.01;
        return 1;
    case 10: CFG("sgd plain", DSC_OPTIM_SGD); pr->lr = 0.1; return 1;
    case 11: CFG("sgd momentum damp wd", DSC_OPTIM_SGD); pr->momentum = 0.9; pr->dampening = 0.1;
        pr->weight_decay = 0.01; return 1;
    case 12: CFG("sgd nesterov maximize", DSC_OPTIM_SGD); pr->momentum = 0.9; pr->nesterov = true;
        pr->maximize = true; return 1;
    case 13: CFG("rmsprop", DSC_OPTIM_RMSPROP); return 1;
    case 14: CFG("rmsprop centered momentum wd", DSC_OPTIM_RMSPROP); pr->centered = true; pr->momentum = 0.9;
        pr->weight_decay = 0.01; return 1;
    case 15: CFG("adamax wd", DSC_OPTIM_ADAMAX); pr->weight_decay = 0.01; return 1;
    default: return 0;
    }
#undef CFG
}

/* Lamb segments: several full blocks, partial blocks, a 1-element and an empty segment. */
static const dsc_optim_segment_t segs[5] = {{0, 5000}, {5000, 1}, {5001, 0}, {5001, 70000}, {75001, N - 75001}};

typedef struct result {
    float *p, *states[3];
    uint16_t *bf16, *f16;
    float coeffs[5];
    int n_states;
} result_t;

static void result_free(result_t *r) {
    free(r->p);
    for (int s = 0; s < 3; s++) free(r->states[s]);
    free(r->bf16);
    free(r->f16);
}

/* STEPS steps (bf16 output on every step but the last, f16 on the last) with `isa` and
 * `threads` (0: leave the optimizer's default, with omp_set_num_threads(omp_threads)). */
static int run(const dsc_optim_params_t *pr, dsc_optim_isa_t isa, int threads, int omp_threads, float grad_scale,
               const float *grad, result_t *out) {
    memset(out, 0, sizeof *out);
    dsc_optim_t *opt = NULL;
    CHECK_OK(dsc_optim_new(ctx, pr, N, segs, 5, &opt));
    if (!opt) return 0;
    CHECK_OK(dsc__optim_force_isa(opt, isa));
    CHECK_OK(dsc_optim_set_threads(opt, threads));
    omp_set_num_threads(omp_threads);
    out->p = malloc(N * sizeof(float));
    out->bf16 = malloc(N * sizeof(uint16_t));
    out->f16 = malloc(N * sizeof(uint16_t));
    memcpy(out->p, p0, N * sizeof(float));
    for (int t = 0; t < STEPS; t++) {
        const int last = t == STEPS - 1;
        CHECK_OK(dsc_optim_step(opt, out->p, grad, grad_scale, pr->lr * (1.0 + 0.1 * t), last ? out->f16 : out->bf16,
                                last ? DSC_F16 : DSC_BF16));
        if (t == STEPS - 2) {
            /* the bf16 copy written in the pass equals converting the new masters */
            int same = 1;
            for (size_t i = 0; i < N; i++) same &= out->bf16[i] == dsc_f32_to_bf16(out->p[i]);
            CHECK_MSG(same, "bf16 output != dsc_f32_to_bf16(master) (%s)", dsc__optim_isa_name(isa));
        }
    }
    int same = 1;
    for (size_t i = 0; i < N; i++) same &= out->f16[i] == dsc_f32_to_f16(out->p[i]);
    CHECK_MSG(same, "f16 output != dsc_f32_to_f16(master) (%s)", dsc__optim_isa_name(isa));
    out->n_states = dsc_optim_num_states(opt);
    for (int s = 0; s < out->n_states; s++) {
        out->states[s] = malloc(N * sizeof(float));
        CHECK_OK(dsc_ctx_to_host(ctx, out->states[s], dsc_optim_state_data(opt, s), N * sizeof(float)));
    }
    if (pr->type == DSC_OPTIM_LAMB) CHECK_OK(dsc_optim_lamb_coeffs(opt, out->coeffs, 5));
    dsc_optim_free(opt);
    omp_set_num_threads(2);
    return 1;
}

static int same_result(const result_t *a, const result_t *b) {
    if (memcmp(a->p, b->p, N * sizeof(float)) != 0) return 0;
    if (memcmp(a->bf16, b->bf16, N * sizeof(uint16_t)) != 0 || memcmp(a->f16, b->f16, N * sizeof(uint16_t)) != 0)
        return 0;
    for (int s = 0; s < a->n_states; s++)
        if (memcmp(a->states[s], b->states[s], N * sizeof(float)) != 0) return 0;
    return memcmp(a->coeffs, b->coeffs, sizeof a->coeffs) == 0;
}

static void test_paths_and_threads(void) {
    dsc_optim_params_t pr;
    const char *label;
    for (int c = 0; make_config(c, &pr, &label); c++) {
        result_t ref, other;
        if (!run(&pr, DSC_OPTIM_ISA_SCALAR, 1, 1, 1.0f, g0, &ref)) continue;
        /* the reference moved: a sanity check that the step did something */
        int moved = 0;
        for (size_t i = 0; i < N; i++) moved |= ref.p[i] != p0[i];
        CHECK_MSG(moved, "%s: parameters did not change", label);
        int n_paths = 0;
        for (int isa = DSC_OPTIM_ISA_SCALAR; isa <= DSC_OPTIM_ISA_AVX512; isa++) {
            if (!dsc__optim_isa_supported((dsc_optim_isa_t)isa)) continue;
            n_paths++;
            const int modes[3][2] = {{1, 1}, {0, 2}, {2, 1}}; /* (set_threads, omp threads) */
            for (int m = 0; m < 3; m++) {
                if (isa == DSC_OPTIM_ISA_SCALAR && m == 0) continue;
                if (!run(&pr, (dsc_optim_isa_t)isa, modes[m][0], modes[m][1], 1.0f, g0, &other)) continue;
                CHECK_MSG(same_result(&ref, &other), "%s: %s with threads (%d, omp %d) differs from scalar, 1 thread",
                          label, dsc__optim_isa_name((dsc_optim_isa_t)isa), modes[m][0], modes[m][1]);
                result_free(&other);
            }
        }
        CHECK(n_paths >= 1);
        result_free(&ref);
    }
}

/* grad_scale folded into the kernel == a pre-scaled gradient with grad_scale 1. */
static void test_grad_scale_folding(void) {
    const float s = 0.3712f;
    float *gs = malloc(N * sizeof(float));
    for (size_t i = 0; i < N; i++) gs[i] = g0[i] * s;
    dsc_optim_params_t pr;
    const char *label;
    const dsc_optim_isa_t best = dsc__optim_isa_best();
    for (int c = 0; make_config(c, &pr, &label); c++) {
        result_t a, b;
        if (!run(&pr, best, 0, 2, s, g0, &a)) continue;
        if (run(&pr, best, 0, 2, 1.0f, gs, &b)) {
            CHECK_MSG(same_result(&a, &b), "%s: folded grad_scale differs from pre-scaled gradient", label);
            result_free(&b);
        }
        result_free(&a);
    }
    free(gs);
}

/* Special values through the half conversions: plain SGD with lr 0 leaves the masters as
 * they are (p + (-0 * g)), so the outputs are the conversions of arbitrary bit patterns. */
static void test_half_specials(void) {
    enum { M = 4099 };
    static const uint32_t specials[] = {
        0x00000000u, 0x80000000u, 0x7f800000u, 0xff800000u, 0x7fc00000u, 0xffc00000u, 0x7f800001u, 0xff812345u,
        0x7fbfffffu, 0x7fffffffu, 0x00000001u, 0x807fffffu, 0x3f808000u, 0x3f818000u, 0x3f80ffffu, 0x3f817fffu,
        0x7f7fffffu, 0xff7fffffu, 0x7f7f8000u, 0x477fe000u, 0x477ff000u, 0x477fefffu, 0xc77ff000u, 0x38800000u,
        0x387fffffu, 0x33800000u, 0x33000000u, 0x33000001u, 0xb3800001u, 0x3e2aaaabu, 0x40490fdbu, 0x00800000u};
    const size_t ns = sizeof specials / sizeof specials[0];
    float *p = malloc(M * sizeof(float)), *g = calloc(M, sizeof(float)), *base = malloc(M * sizeof(float));
    uint16_t *h = malloc(M * sizeof(uint16_t));
    uint64_t x = 0x1234567u;
    for (size_t i = 0; i < M; i++) {
        uint32_t u;
        if (i < ns) {
            u = specials[i];
        } else {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            u = (uint32_t)(x >> 32);
        }
        memcpy(&base[i], &u, 4);
        g[i] = (float)((int)(i % 7) - 3);
    }
    dsc_optim_params_t pr = dsc_optim_default_params(DSC_OPTIM_SGD);
    for (int isa = DSC_OPTIM_ISA_SCALAR; isa <= DSC_OPTIM_ISA_AVX512; isa++) {
        if (!dsc__optim_isa_supported((dsc_optim_isa_t)isa)) continue;
        for (int k = 0; k < 2; k++) {
            const dsc_dtype_t dt = k ? DSC_F16 : DSC_BF16;
            dsc_optim_t *opt = NULL;
            CHECK_OK(dsc_optim_new(ctx, &pr, M, NULL, 0, &opt));
            if (!opt) continue;
            CHECK_OK(dsc__optim_force_isa(opt, (dsc_optim_isa_t)isa));
            memcpy(p, base, M * sizeof(float));
            CHECK_OK(dsc_optim_step(opt, p, g, 1.0f, 0.0, h, dt));
            int bad = -1;
            for (size_t i = 0; i < M && bad < 0; i++) {
                uint16_t want = k ? dsc_f32_to_f16(p[i]) : dsc_f32_to_bf16(p[i]);
                if (h[i] != want) bad = (int)i;
            }
            uint32_t pb = 0;
            if (bad >= 0) memcpy(&pb, &p[bad], 4);
            CHECK_MSG(bad < 0, "%s %s: element %d (0x%08x) converts to 0x%04x, want 0x%04x",
                      dsc__optim_isa_name((dsc_optim_isa_t)isa), dsc_dtype_name(dt), bad, pb, bad >= 0 ? h[bad] : 0,
                      bad >= 0 ? (k ? dsc_f32_to_f16(p[bad]) : dsc_f32_to_bf16(p[bad])) : 0);
            /* non-NaN masters are unchanged by a zero learning rate */
            int kept = 1;
            for (size_t i = 0; i < M; i++)
                if (!isnan(base[i])) kept &= p[i] == base[i];
            CHECK(kept);
            dsc_optim_free(opt);
        }
    }
    free(p);
    free(g);
    free(base);
    free(h);
}

int main(void) {
    ctx = check_ctx_new(11);
    printf("optimizer ISA paths on this CPU: scalar%s%s (auto: %s)\n",
           dsc__optim_isa_supported(DSC_OPTIM_ISA_AVX2) ? ", avx2" : "",
           dsc__optim_isa_supported(DSC_OPTIM_ISA_AVX512) ? ", avx512" : "",
           dsc__optim_isa_name(dsc__optim_isa_best()));
    CHECK(dsc__optim_isa_supported(DSC_OPTIM_ISA_SCALAR));
    CHECK(dsc__optim_force_isa(NULL, DSC_OPTIM_ISA_SCALAR) == DSC_ERR_INVALID);
    p0 = malloc(N * sizeof(float));
    g0 = malloc(N * sizeof(float));
    /* Normal values plus zeros, negative zeros, subnormals, large and tiny magnitudes. */
    for (size_t i = 0; i < N; i++) {
        p0[i] = (float)dsc_ctx_rand_normal(ctx);
        g0[i] = (float)dsc_ctx_rand_normal(ctx) * (i % 3 == 0 ? 1e-3f : 1.0f);
        switch (i % 97) {
        case 0: p0[i] = 0.0f; break;
        case 1: p0[i] = -0.0f; g0[i] = -0.0f; break;
        case 2: p0[i] = 1e-40f; g0[i] = -1e-41f; break;
        case 3: p0[i] = 3e5f; g0[i] = 2e3f; break;
        case 4: g0[i] = 0.0f; break;
        case 5: p0[i] = -7e-30f; g0[i] = 1e-20f; break;
        default: break;
        }
    }
    test_paths_and_threads();
    test_grad_scale_folding();
    test_half_specials();
    free(p0);
    free(g0);
    dsc_ctx_free(ctx);
    return check_finish("test_optim_determinism");
}

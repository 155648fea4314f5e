/* The memory-lean kernels through the CPU backend table (src/ops/backend.h contracts):
 *   - flash attention in f32 (SIMD kernels: several key tiles, a partial last query block,
 *     with and without dropout) against the f64 kernel, forward (out, lse) and backward;
 *     bitwise the same with 1 and 2 OpenMP threads;
 *   - bf16 / f16 attention: exactly the f32 kernels applied to the rounded inputs, their
 *     outputs rounded once (out) and their gradients added once (dqkv);
 *   - fused cross-entropy: losses and lse against values computed here; the in-place
 *     backward (dlogits aliasing logits) equals the accumulating one into zeros bit for
 *     bit; 16-bit logits give the f32 results of the rounded logits;
 *   - dsc_cross_entropy_consume: the in-place path is taken (the gradient shares the
 *     logits' memory) only when nothing else uses the logits and they are not a view of
 *     another tensor, and the upstream gradients
 *     equal those of dsc_cross_entropy. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/internal.h"
#include "ops/backend.h"

static double hash_unit(uint64_t i, uint64_t salt) {
    uint64_t z = i * 0x9E3779B97F4A7C15ull + salt;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return (double)((z ^ (z >> 31)) >> 11) / 9007199254740992.0;
}

/* worst |got - want| / (|want| + floor) */
static double worst_rel(const float *got, const double *want, size_t n, double floor) {
    double w = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - want[i]) / (fabs(want[i]) + floor);
        if (!(e <= w)) w = e; /* NaN counts as worst */
    }
    return w;
}

typedef struct {
    int64_t b, t, c, h;
    double p;
} attn_shape_t;

static void test_attention_f32_vs_f64(void) {
    const dsc_backend_t *be = dsc__backend_cpu();
    /* T = 150: query blocks 64, 64, 22; key tiles 0..2, the diagonal ones partial */
    const attn_shape_t cases[] = {{2, 150, 64, 2, 0.0}, {1, 150, 48, 3, 0.2}, {3, 7, 12, 2, 0.0}, {1, 64, 32, 1, 0.1}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        const attn_shape_t s = cases[k];
        const size_t nq = (size_t)(s.b * s.t * 3 * s.c), no = (size_t)(s.b * s.t * s.c), nl = (size_t)(s.b * s.h * s.t);
        double *qd = malloc(nq * 8), *od = malloc(no * 8), *ld = malloc(nl * 8), *gd = malloc(no * 8), *dqd = calloc(nq, 8);
        float *qf = malloc(nq * 4), *of = malloc(no * 4), *lf = malloc(nl * 4), *gf = malloc(no * 4), *dqf = calloc(nq, 4);
        float *of2 = malloc(no * 4), *lf2 = malloc(nl * 4), *dqf2 = calloc(nq, 4);
        for (size_t i = 0; i < nq; i++) qd[i] = (double)(qf[i] = (float)(4 * hash_unit(i, 1) - 2));
        for (size_t i = 0; i < no; i++) gd[i] = (double)(gf[i] = (float)(2 * hash_unit(i, 2) - 1));
        const uint64_t seed = 42, off = 1000;
        be->attention(NULL, DSC_F64, s.b, s.t, s.c, s.h, qd, s.p, seed, off, od, ld);
        be->attention_backward(NULL, DSC_F64, s.b, s.t, s.c, s.h, qd, od, ld, gd, s.p, seed, off, dqd);
        omp_set_num_threads(1);
        be->attention(NULL, DSC_F32, s.b, s.t, s.c, s.h, qf, s.p, seed, off, of, lf);
        be->attention_backward(NULL, DSC_F32, s.b, s.t, s.c, s.h, qf, of, lf, gf, s.p, seed, off, dqf);
        omp_set_num_threads(2);
        be->attention(NULL, DSC_F32, s.b, s.t, s.c, s.h, qf, s.p, seed, off, of2, lf2);
        be->attention_backward(NULL, DSC_F32, s.b, s.t, s.c, s.h, qf, of2, lf2, gf, s.p, seed, off, dqf2);
        omp_set_num_threads(1);
        double eo = worst_rel(of, od, no, 1e-2), el = worst_rel(lf, ld, nl, 1e-2), eg = worst_rel(dqf, dqd, nq, 1e-2);
        CHECK_MSG(eo < 1e-4 && el < 2e-6 && eg < 2e-4,
                  "attention f32 vs f64 B%lld T%lld C%lld H%lld p%g: out %.2e lse %.2e dqkv %.2e", (long long)s.b,
                  (long long)s.t, (long long)s.c, (long long)s.h, s.p, eo, el, eg);
        CHECK_MSG(memcmp(of, of2, no * 4) == 0 && memcmp(lf, lf2, nl * 4) == 0 && memcmp(dqf, dqf2, nq * 4) == 0,
                  "attention f32 B%lld T%lld: 1 and 2 threads differ", (long long)s.b, (long long)s.t);
        /* the f64 kernel itself: out rows are convex combinations, so |out| <= max |v| / (1 - p) */
        free(qd), free(od), free(ld), free(gd), free(dqd), free(qf), free(of), free(lf), free(gf), free(dqf);
        free(of2), free(lf2), free(dqf2);
    }
}

static float round16(dsc_dtype_t dt, float x) {
    return dt == DSC_BF16 ? dsc_bf16_to_f32(dsc_f32_to_bf16(x)) : dsc_f16_to_f32(dsc_f32_to_f16(x));
}
static uint16_t to16(dsc_dtype_t dt, float x) { return dt == DSC_BF16 ? dsc_f32_to_bf16(x) : dsc_f32_to_f16(x); }

static void test_attention_16(void) {
    const dsc_backend_t *be = dsc__backend_cpu();
    const int64_t B = 2, T = 70, C = 32, H = 2;
    const size_t nq = (size_t)(B * T * 3 * C), no = (size_t)(B * T * C), nl = (size_t)(B * H * T);
    for (int d = 0; d < 2; d++) {
        const dsc_dtype_t dt = d ? DSC_F16 : DSC_BF16;
        for (int drop = 0; drop < 2; drop++) {
            const double p = drop ? 0.25 : 0.0;
            uint16_t *q16 = malloc(nq * 2), *o16 = malloc(no * 2), *g16 = malloc(no * 2), *dq16 = malloc(nq * 2);
            float *qf = malloc(nq * 4), *of = malloc(no * 4), *lf = malloc(nl * 4), *l16 = malloc(nl * 4),
                  *gf = malloc(no * 4), *dqf = calloc(nq, 4), *of_r = malloc(no * 4);
            for (size_t i = 0; i < nq; i++) {
                qf[i] = round16(dt, (float)(4 * hash_unit(i, 3) - 2));
                q16[i] = to16(dt, qf[i]);
                dq16[i] = to16(dt, 0.0f);
            }
            for (size_t i = 0; i < no; i++) {
                gf[i] = round16(dt, (float)(2 * hash_unit(i, 4) - 1));
                g16[i] = to16(dt, gf[i]);
            }
            be->attention(NULL, DSC_F32, B, T, C, H, qf, p, 5, 64, of, lf);
            be->attention(NULL, dt, B, T, C, H, q16, p, 5, 64, o16, l16);
            int64_t bad = 0;
            for (size_t i = 0; i < no; i++) {
                if (o16[i] != to16(dt, of[i])) bad++;
                of_r[i] = round16(dt, of[i]); /* the 16-bit output the backward sees */
            }
            CHECK_MSG(bad == 0 && memcmp(lf, l16, nl * 4) == 0, "%s attention p=%g: %lld outputs differ from the "
                      "rounded f32 ones (lse equal: %d)", dsc_dtype_name(dt), p, (long long)bad,
                      memcmp(lf, l16, nl * 4) == 0);
            be->attention_backward(NULL, DSC_F32, B, T, C, H, qf, of_r, lf, gf, p, 5, 64, dqf);
            be->attention_backward(NULL, dt, B, T, C, H, q16, o16, l16, g16, p, 5, 64, dq16);
            bad = 0;
            for (size_t i = 0; i < nq; i++)
                if (dq16[i] != to16(dt, dqf[i])) bad++;
            CHECK_MSG(bad == 0, "%s attention backward p=%g: %lld gradients differ from the rounded f32 ones",
                      dsc_dtype_name(dt), p, (long long)bad);
            free(q16), free(o16), free(g16), free(dq16), free(qf), free(of), free(lf), free(l16), free(gf), free(dqf);
            free(of_r);
        }
    }
}

static void test_cross_entropy_kernels(void) {
    const dsc_backend_t *be = dsc__backend_cpu();
    const int64_t R = 9, V = 300;
    const int32_t ign = -1;
    int32_t tg[9];
    float *x = malloc(sizeof(float) * R * V), *x2 = malloc(sizeof(float) * R * V), *d = calloc((size_t)(R * V), 4);
    for (int64_t r = 0; r < R; r++) tg[r] = r == 4 ? ign : (int32_t)((r * 37) % V);
    for (int64_t i = 0; i < R * V; i++) x[i] = (float)(8 * hash_unit((uint64_t)i, 5) - 4);
    float loss[9], lse[9], g = 0.37f;
    be->cross_entropy(NULL, DSC_F32, R, V, V, x, tg, ign, loss, lse);
    int bad = 0;
    for (int64_t r = 0; r < R; r++) {
        if (tg[r] == ign) {
            if (loss[r] != 0 || lse[r] != 0) bad++;
            continue;
        }
        double z = 0;
        for (int64_t j = 0; j < V; j++) z += exp((double)x[r * V + j]);
        if (!check_close(lse[r], log(z), 1e-6, 0) || !check_close(loss[r], log(z) - x[r * V + tg[r]], 1e-6, 1e-6)) bad++;
    }
    CHECK_MSG(bad == 0, "cross-entropy losses / lse vs log sum exp: %d rows wrong", bad);
    /* accumulate into zeros vs in place over a copy of the logits: the same bits */
    memcpy(x2, x, sizeof(float) * R * V);
    be->cross_entropy_backward(NULL, DSC_F32, R, V, V, x, lse, tg, ign, &g, d, true);
    be->cross_entropy_backward(NULL, DSC_F32, R, V, V, x2, lse, tg, ign, &g, x2, false);
    CHECK(memcmp(d, x2, sizeof(float) * R * V) == 0);
    double worst = 0;
    for (int64_t r = 0; r < R; r++)
        for (int64_t j = 0; j < V; j++) {
            double want = tg[r] == ign ? 0 : g * (exp((double)x[r * V + j] - log(exp((double)lse[r]))) - (j == tg[r]));
            double e = fabs(d[r * V + j] - want);
            if (e > worst) worst = e;
        }
    CHECK_MSG(worst < 1e-7, "cross-entropy gradient worst abs error %.3g", worst);
    /* accumulate adds onto what is there */
    float *acc = malloc(sizeof(float) * R * V);
    for (int64_t i = 0; i < R * V; i++) acc[i] = 1.0f;
    be->cross_entropy_backward(NULL, DSC_F32, R, V, V, x, lse, tg, ign, &g, acc, true);
    bad = 0;
    for (int64_t i = 0; i < R * V; i++)
        if (acc[i] != 1.0f + d[i]) bad++;
    CHECK_MSG(bad == 0, "accumulate: %d elements not 1 + value", bad);
    /* a padded row stride (ld = V + 5, as the LM head's padded logits): the same bits in the
     * V columns, and the pad columns neither read (they hold a huge value that would change
     * the lse) nor written */
    {
        const int64_t ld = V + 5;
        float *xp = malloc(sizeof(float) * R * ld), lp[9], sp[9];
        for (int64_t r = 0; r < R; r++)
            for (int64_t j = 0; j < ld; j++) xp[r * ld + j] = j < V ? x[r * V + j] : 1e4f;
        be->cross_entropy(NULL, DSC_F32, R, V, ld, xp, tg, ign, lp, sp);
        CHECK(memcmp(lp, loss, sizeof lp) == 0 && memcmp(sp, lse, sizeof sp) == 0);
        be->cross_entropy_backward(NULL, DSC_F32, R, V, ld, xp, lse, tg, ign, &g, xp, false);
        bad = 0;
        for (int64_t r = 0; r < R; r++)
            for (int64_t j = 0; j < ld; j++)
                if (j < V ? memcmp(&xp[r * ld + j], &d[r * V + j], 4) != 0 : xp[r * ld + j] != 1e4f) bad++;
        CHECK_MSG(bad == 0, "padded rows (ld %lld): %d elements differ from the unpadded gradient or pad changed",
                  (long long)ld, bad);
        free(xp);
    }
    /* 16-bit logits: the f32 results of the rounded logits (losses and lse in f32) */
    for (int k = 0; k < 2; k++) {
        const dsc_dtype_t dt = k ? DSC_F16 : DSC_BF16;
        uint16_t *x16 = malloc(2 * (size_t)(R * V));
        for (int64_t i = 0; i < R * V; i++) {
            x2[i] = round16(dt, x[i]);
            x16[i] = to16(dt, x[i]);
        }
        float l32[9], s32[9], l16[9], s16[9];
        be->cross_entropy(NULL, DSC_F32, R, V, V, x2, tg, ign, l32, s32);
        be->cross_entropy(NULL, dt, R, V, V, x16, tg, ign, l16, s16);
        CHECK_MSG(memcmp(l32, l16, sizeof l32) == 0 && memcmp(s32, s16, sizeof s32) == 0, "%s cross-entropy losses",
                  dsc_dtype_name(dt));
        be->cross_entropy_backward(NULL, DSC_F32, R, V, V, x2, s32, tg, ign, &g, x2, false);
        be->cross_entropy_backward(NULL, dt, R, V, V, x16, s16, tg, ign, &g, x16, false); /* in place, 16-bit */
        bad = 0;
        for (int64_t i = 0; i < R * V; i++)
            if (x16[i] != to16(dt, x2[i])) bad++;
        CHECK_MSG(bad == 0, "%s cross-entropy in-place gradient: %d elements differ", dsc_dtype_name(dt), bad);
        free(x16);
    }
    free(x), free(x2), free(d), free(acc);
}

/* logits = 2 * x (an op output); the loss of dsc_cross_entropy_consume and its gradient
 * wrt x equal those of dsc_cross_entropy; `extra` also feeds the logits to a sum, which must
 * turn the in-place path off. */
static void consume_case(bool consume, bool extra, bool view, double *dx_out, double *loss_out, bool *in_place) {
    dsc_ctx_t *ctx = check_ctx_new(3);
    const int64_t R = 5, V = 11;
    dsc_tensor_t *x = dsc_tensor_new_2d(ctx, DSC_F64, R, V), *tg = dsc_tensor_new_1d(ctx, DSC_I32, R);
    double xv[5 * 11];
    int32_t tv[5];
    for (int64_t i = 0; i < R * V; i++) xv[i] = 3 * hash_unit((uint64_t)i, 9) - 1.5;
    for (int64_t r = 0; r < R; r++) tv[r] = r == 2 ? -100 : (int32_t)((r * 7) % V);
    CHECK_OK(check_tensor_set(x, xv, DSC_F64, (size_t)(R * V)));
    CHECK_OK(check_tensor_set(tg, tv, DSC_I32, (size_t)R));
    dsc_tensor_set_requires_grad(x, true);
    dsc_tensor_t *logits = dsc_scale(ctx, x, 2.0);
    if (view) logits = dsc_view(ctx, logits, 2, (int64_t[]){R, V}); /* shares the scale's output */
    dsc_tensor_t *loss = consume ? dsc_cross_entropy_consume(ctx, logits, tg, -100) : dsc_cross_entropy(ctx, logits, tg, -100);
    if (extra) loss = dsc_add(ctx, loss, dsc_scale(ctx, dsc_sum(ctx, logits), 0.01));
    *loss_out = loss ? dsc_tensor_item(loss) : NAN;
    CHECK_OK(dsc_autograd_backward(ctx, loss));
    *in_place = logits && logits->grad && logits->grad->data == logits->data;
    if (dsc_tensor_grad(x)) CHECK_OK(check_tensor_get(dsc_tensor_grad(x), dx_out, DSC_F64, (size_t)(R * V)));
    dsc_ctx_free(ctx);
}

static void test_consume(void) {
    double d_plain[55], d_cons[55], d_plain_x[55], d_cons_x[55], l1, l2, l3, l4;
    bool ip1, ip2, ip3, ip4;
    double d_view[55], l5;
    bool ip5;
    consume_case(false, false, false, d_plain, &l1, &ip1);
    consume_case(true, false, false, d_cons, &l2, &ip2);
    consume_case(false, true, false, d_plain_x, &l3, &ip3);
    consume_case(true, true, false, d_cons_x, &l4, &ip4);
    consume_case(true, false, true, d_view, &l5, &ip5);
    CHECK_MSG(!ip1 && ip2 && !ip3 && !ip4 && !ip5,
              "in-place taken: plain %d, consume %d, plain+sum %d, consume+sum %d, consume of a view %d", ip1, ip2, ip3,
              ip4, ip5);
    CHECK(l5 == l1 && memcmp(d_view, d_plain, sizeof d_plain) == 0);
    CHECK(l1 == l2 && l3 == l4);
    CHECK(memcmp(d_plain, d_cons, sizeof d_plain) == 0 && memcmp(d_plain_x, d_cons_x, sizeof d_plain_x) == 0);
    CHECK(memcmp(d_plain, d_plain_x, sizeof d_plain) != 0); /* the sum does contribute */
}

int main(void) {
    test_attention_f32_vs_f64();
    test_attention_16();
    test_cross_entropy_kernels();
    test_consume();
    return check_finish("test_flash_ops");
}

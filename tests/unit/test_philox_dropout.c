/* Philox-4x32-10 and the counter-based dropout (src/core/philox.h, the dropout and attention
 * kernels, the ops' stream bookkeeping):
 *   - Random123's known-answer vectors for philox4x32_10;
 *   - the stream convention (element g = lane g % 4 of counter g / 4, key = the seed's halves);
 *   - the CPU dropout kernel (f32, f64, bf16; forward and backward) equals a reference
 *     written here from dsc_philox_uniform values, at an offset that is not a multiple of 4;
 *   - the exact threshold: an element whose uniform equals p is kept, one 2^-25 above is not;
 *   - dsc_dropout and dsc_attention draw from the context's stream at its offset and advance
 *     it by whole counters; attention dropout element (b, h, i, j) uses position
 *     offset + ((b*H + h)*T + i)*T + j (checked against a naive f64 attention). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/internal.h"
#include "core/philox.h"
#include "ops/backend.h"

static void test_known_answers(void) {
    static const struct {
        uint32_t ctr[4], key[2], want[4];
    } kat[3] = {
        {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}},
        {{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu},
         {0xffffffffu, 0xffffffffu},
         {0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}},
        {{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u},
         {0xa4093822u, 0x299f31d0u},
         {0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}},
    };
    for (int k = 0; k < 3; k++) {
        dsc_philox4_t c = {{kat[k].ctr[0], kat[k].ctr[1], kat[k].ctr[2], kat[k].ctr[3]}};
        dsc_philox4_t r = dsc_philox4x32_10(c, kat[k].key[0], kat[k].key[1]);
        CHECK_MSG(memcmp(r.v, kat[k].want, sizeof r.v) == 0, "Random123 vector %d: got %08x %08x %08x %08x", k, r.v[0],
                  r.v[1], r.v[2], r.v[3]);
    }
    /* The stream: seed = key (lo, hi), element g = lane g % 4 of counter (lo, hi of g / 4, 0, 0). */
    const uint64_t seed = 0x299f31d0a4093822ull, g = (0x05a308d3ull << 32 | 0x243f6a88ull) * 4 + 2;
    dsc_philox4_t c = {{0x243f6a88u, 0x05a308d3u, 0, 0}};
    CHECK(dsc_philox_u32(seed, g) == dsc_philox4x32_10(c, 0xa4093822u, 0x299f31d0u).v[2]);
    CHECK(dsc_philox_u32(0, 0) == 0x6627e8d5u && dsc_philox_u32(0, 3) == 0x9b00dbd8u);
    CHECK(dsc_philox_uniform(0, 0) == (float)(0x6627e8d5u >> 8) / 16777216.0f);
    CHECK(dsc_philox_advance(0) == 0 && dsc_philox_advance(1) == 4 && dsc_philox_advance(4) == 4 &&
          dsc_philox_advance(1001) == 1004);
}

static uint16_t bf16_of(float x) { return dsc_f32_to_bf16(x); }

/* The dropout kernels against y[i] = uniform(seed, offset + i) >= p ? x[i] / (1 - p) : 0
 * (the scale as the float/double 1/(1-p), as the contract's CPU kernels apply it). */
static void test_dropout_kernel(void) {
    const dsc_backend_t *be = dsc__backend_cpu();
    const int64_t n = 1001;
    const double p = 0.3;
    const uint64_t seed = 0x0123456789abcdefull, offset = 10; /* not a whole counter */
    double *x = malloc(sizeof(double) * n), *dy = malloc(sizeof(double) * n), *y = malloc(sizeof(double) * n),
           *dx = malloc(sizeof(double) * n);
    float *xf = malloc(sizeof(float) * n), *yf = malloc(sizeof(float) * n), *dyf = malloc(sizeof(float) * n),
          *dxf = malloc(sizeof(float) * n);
    uint16_t *xb = malloc(2 * n), *yb = malloc(2 * n), *dxb = malloc(2 * n), *dyb = malloc(2 * n);
    for (int64_t i = 0; i < n; i++) {
        x[i] = sin(0.37 * (double)i) + 1.5;
        dy[i] = cos(0.11 * (double)i);
        xf[i] = (float)x[i];
        dyf[i] = (float)dy[i];
        xb[i] = bf16_of(xf[i]);
        dyb[i] = bf16_of(dyf[i]);
    }
    be->dropout(NULL, DSC_F64, n, p, seed, offset, x, y);
    be->dropout(NULL, DSC_F32, n, p, seed, offset, xf, yf);
    be->dropout(NULL, DSC_BF16, n, p, seed, offset, xb, yb);
    for (int64_t i = 0; i < n; i++) {
        dx[i] = 0.5;
        dxf[i] = 0.5f;
        dxb[i] = bf16_of(0.5f);
    }
    be->dropout_backward(NULL, DSC_F64, n, p, seed, offset, dy, dx);
    be->dropout_backward(NULL, DSC_F32, n, p, seed, offset, dyf, dxf);
    be->dropout_backward(NULL, DSC_BF16, n, p, seed, offset, dyb, dxb);
    const double ks = 1.0 / (1.0 - p);
    const float ksf = (float)ks;
    int64_t bad = 0, dropped = 0;
    for (int64_t i = 0; i < n; i++) {
        const bool keep = (double)dsc_philox_uniform(seed, offset + (uint64_t)i) >= p;
        dropped += !keep;
        if (y[i] != (keep ? x[i] * ks : 0.0)) bad++;
        if (yf[i] != (keep ? xf[i] * ksf : 0.0f)) bad++;
        if (yb[i] != bf16_of(keep ? dsc_bf16_to_f32(xb[i]) * ksf : 0.0f)) bad++;
        if (dx[i] != 0.5 + (keep ? dy[i] * ks : 0.0)) bad++;
        if (dxf[i] != (keep ? 0.5f + dyf[i] * ksf : 0.5f)) bad++;
        if (dxb[i] != bf16_of(0.5f + (keep ? dsc_bf16_to_f32(dyb[i]) * ksf : 0.0f))) bad++;
    }
    CHECK_MSG(bad == 0, "dropout kernels vs the Philox reference: %lld mismatches", (long long)bad);
    const double frac = (double)dropped / (double)n, sigma = sqrt(p * (1 - p) / (double)n);
    CHECK_MSG(fabs(frac - p) < 4 * sigma, "dropped fraction %.4f vs p %.2f", frac, p);

    /* The rule is uniform >= p exactly: p equal to an element's uniform keeps it; p one
     * half-step of the 24-bit grid above drops it. */
    const float u = dsc_philox_uniform(seed, offset);
    double one = 1.0, out = 0;
    be->dropout(NULL, DSC_F64, 1, (double)u, seed, offset, &one, &out);
    CHECK_MSG(out != 0, "uniform == p must keep (u = %.9g)", (double)u);
    be->dropout(NULL, DSC_F64, 1, (double)u + ldexp(1.0, -25), seed, offset, &one, &out);
    CHECK_MSG(out == 0, "uniform < p must drop (u = %.9g)", (double)u);
    free(x), free(dy), free(y), free(dx), free(xf), free(yf), free(dyf), free(dxf);
    free(xb), free(yb), free(dxb), free(dyb);
}

/* The ops take their range from the context's stream and advance it by whole counters. */
static void test_ops_stream(void) {
    dsc_ctx_t *ctx = check_ctx_new(7);
    dsc_ctx_set_dropout_stream(ctx, 0xfeedfacecafebeefull, 40);
    const int64_t n = 1001;
    dsc_tensor_t *x = dsc_tensor_new_1d(ctx, DSC_F64, n);
    double *xv = malloc((size_t)n * sizeof *xv), *yv = malloc((size_t)n * sizeof *yv);
    for (int64_t i = 0; i < n; i++) xv[i] = 1.0 + (double)i;
    CHECK_OK(check_tensor_set(x, xv, DSC_F64, (size_t)n));
    dsc_tensor_t *y = dsc_dropout(ctx, x, 0.25);
    if (y) CHECK_OK(check_tensor_get(y, yv, DSC_F64, (size_t)n));
    uint64_t seed, off;
    dsc_ctx_dropout_stream(ctx, &seed, &off);
    CHECK(seed == 0xfeedfacecafebeefull && off == 40 + 1004);
    int64_t bad = 0;
    for (int64_t i = 0; y && i < n; i++) {
        const bool keep = (double)dsc_philox_uniform(seed, 40 + (uint64_t)i) >= 0.25;
        if (yv[i] != (keep ? (1.0 + (double)i) * (1.0 / 0.75) : 0.0)) bad++;
    }
    CHECK_MSG(y && bad == 0, "dsc_dropout vs the stream at its offset: %lld mismatches", (long long)bad);

    /* Attention: [B, H, T, T] positions reserved; element (b, h, i, j) at
     * offset + ((b*H + h)*T + i)*T + j. Naive f64 reference with that mask. */
    const int64_t B = 2, T = 7, C = 6, H = 2, hd = C / H;
    const double p = 0.3;
    int64_t s[3] = {B, T, 3 * C};
    dsc_tensor_t *qkv = dsc_tensor_new(ctx, DSC_F64, 3, s);
    dsc_tensor_fill_uniform(ctx, qkv, -1, 1);
    const uint64_t at = off;
    dsc_tensor_t *out = dsc_attention(ctx, qkv, (int)H, p);
    dsc_ctx_dropout_stream(ctx, NULL, &off);
    CHECK(off == at + dsc_philox_advance((uint64_t)(B * H * T * T)));
    double q[2 * 7 * 18], ov[2 * 7 * 6];
    CHECK_OK(check_tensor_get(qkv, q, DSC_F64, (size_t)(B * T * 3 * C)));
    if (out) CHECK_OK(check_tensor_get(out, ov, DSC_F64, (size_t)(B * T * C)));
    double worst = 0;
    for (int64_t b = 0; out && b < B; b++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t i = 0; i < T; i++) {
                double sc[7], mx = -INFINITY, z = 0;
                for (int64_t j = 0; j <= i; j++) {
                    double d = 0;
                    for (int64_t e = 0; e < hd; e++) d += q[(b * T + i) * 3 * C + h * hd + e] * q[(b * T + j) * 3 * C + C + h * hd + e];
                    sc[j] = d / sqrt((double)hd);
                    if (sc[j] > mx) mx = sc[j];
                }
                for (int64_t j = 0; j <= i; j++) z += exp(sc[j] - mx);
                for (int64_t e = 0; e < hd; e++) {
                    double o = 0;
                    for (int64_t j = 0; j <= i; j++) {
                        const uint64_t pos = at + (uint64_t)(((b * H + h) * T + i) * T + j);
                        const double m = (double)dsc_philox_uniform(seed, pos) >= p ? 1.0 / (1.0 - p) : 0.0;
                        o += exp(sc[j] - mx) / z * m * q[(b * T + j) * 3 * C + 2 * C + h * hd + e];
                    }
                    const double got = ov[(b * T + i) * C + h * hd + e], err = fabs(got - o);
                    if (err > worst) worst = err;
                }
            }
    CHECK_MSG(out && worst < 1e-13, "attention dropout vs the naive reference: worst abs error %.3g", worst);
    CHECK(dsc_ctx_status(ctx) == DSC_OK);
    free(xv), free(yv);
    dsc_ctx_free(ctx);
}

int main(void) {
    test_known_answers();
    test_dropout_kernel();
    test_ops_stream();
    return check_finish("test_philox_dropout");
}

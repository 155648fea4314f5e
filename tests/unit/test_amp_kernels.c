/* Mixed-precision kernels: the overflow scan finds a single inf/NaN anywhere (first, last,
 * lane and block boundaries) for f32/bf16/f16 on every instruction-set path; its sum of squares
 * equals a double reference (bit for bit in the documented order, and close to a plain sum);
 * results do not depend on the thread count; per-segment reporting; every conversion path is
 * bit-identical to the scalar dsc_f32_to_bf16/f16 and back (random bits, all 65536 halves,
 * special values); accumulation into fp32; the unscale + clip coefficient against
 * hand-computed values. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amp/amp_internal.h"
#include "check.h"
#include "dsc/amp.h"

/* The public kernels run on this context's device; the buffers here are host arrays, which
 * every CPU-side device accepts (wrapped caller memory). */
static dsc_ctx_t *g_ctx;

static uint64_t rng_state = 0x243f6a8885a308d3ull;
static uint64_t rnd64(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}
static double rndu(void) { return (double)(rnd64() >> 11) / 9007199254740992.0; }

static uint32_t f2u(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static float u2f(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static const dsc_dtype_t DTYPES[3] = {DSC_F32, DSC_BF16, DSC_F16};

/* n random finite values of `dt` in a buffer (f32 or uint16) with |x| up to ~`mag`. */
static void *make_values(dsc_dtype_t dt, size_t n, double mag) {
    void *buf = malloc(n * (dt == DSC_F32 ? 4 : 2) + 64);
    for (size_t i = 0; i < n; i++) {
        float v = (float)((rndu() * 2 - 1) * mag * (rndu() < 0.1 ? 1e-3 : 1.0));
        if (dt == DSC_F32) ((float *)buf)[i] = v;
        else if (dt == DSC_BF16) ((uint16_t *)buf)[i] = dsc_f32_to_bf16(v);
        else ((uint16_t *)buf)[i] = dsc_f32_to_f16(v);
    }
    return buf;
}

static double value_at(const void *buf, dsc_dtype_t dt, size_t i) {
    if (dt == DSC_F32) return ((const float *)buf)[i];
    if (dt == DSC_BF16) return dsc_bf16_to_f32(((const uint16_t *)buf)[i]);
    return dsc_f16_to_f32(((const uint16_t *)buf)[i]);
}

/* The documented order, written out plainly: per block lanes j % 16, pairwise tree, blocks in order. */
static double ref_sumsq_ordered(const void *buf, dsc_dtype_t dt, size_t off, size_t n) {
    double seg = 0.0;
    for (size_t b = 0; b < n || (b == 0 && n == 0); b += DSC_AMP_BLOCK) {
        double lane[16] = {0};
        size_t len = n - b < DSC_AMP_BLOCK ? n - b : DSC_AMP_BLOCK;
        for (size_t j = 0; j < len; j++) {
            double v = value_at(buf, dt, off + b + j);
            lane[j % 16] += v * v;
        }
        double l8[8], l4[4];
        for (int i = 0; i < 8; i++) l8[i] = lane[2 * i] + lane[2 * i + 1];
        for (int i = 0; i < 4; i++) l4[i] = l8[2 * i] + l8[2 * i + 1];
        seg += (l4[0] + l4[1]) + (l4[2] + l4[3]);
        if (n == 0) break;
    }
    return seg;
}

static double ref_sumsq_plain(const void *buf, dsc_dtype_t dt, size_t off, size_t n) {
    long double s = 0;
    for (size_t i = 0; i < n; i++) {
        long double v = value_at(buf, dt, off + i);
        s += v * v;
    }
    return (double)s;
}

static void set_special(void *buf, dsc_dtype_t dt, size_t i, int kind) {
    /* kind 0: +inf, 1: -inf, 2: quiet NaN, 3: signalling NaN, 4: negative NaN */
    static const uint32_t f32[5] = {0x7f800000u, 0xff800000u, 0x7fc00000u, 0x7f800001u, 0xffc12345u};
    static const uint16_t b16[5] = {0x7f80u, 0xff80u, 0x7fc0u, 0x7f81u, 0xffc1u};
    static const uint16_t h16[5] = {0x7c00u, 0xfc00u, 0x7e00u, 0x7c01u, 0xfe01u};
    if (dt == DSC_F32) ((float *)buf)[i] = u2f(f32[kind]);
    else if (dt == DSC_BF16) ((uint16_t *)buf)[i] = b16[kind];
    else ((uint16_t *)buf)[i] = h16[kind];
}

static void copy_elem(void *dst, const void *src, dsc_dtype_t dt, size_t i) {
    size_t es = dt == DSC_F32 ? 4 : 2;
    memcpy((char *)dst + i * es, (const char *)src + i * es, es);
}

/* ---- scan ---------------------------------------------------------------------------------- */

static void test_scan_positions(void) {
    const size_t n = 3 * DSC_AMP_BLOCK + 37;
    const size_t pos[] = {0,
                          1,
                          15,
                          16,
                          17,
                          DSC_AMP_BLOCK - 1,
                          DSC_AMP_BLOCK,
                          DSC_AMP_BLOCK + 1,
                          2 * DSC_AMP_BLOCK - 1,
                          2 * DSC_AMP_BLOCK,
                          3 * DSC_AMP_BLOCK - 1,
                          3 * DSC_AMP_BLOCK,
                          n - 17,
                          n - 2,
                          n - 1,
                          12345};
    for (int d = 0; d < 3; d++) {
        dsc_dtype_t dt = DTYPES[d];
        void *buf = make_values(dt, n, dt == DSC_F16 ? 100.0 : 1e4);
        const double want = ref_sumsq_ordered(buf, dt, 0, n);
        const double plain = ref_sumsq_plain(buf, dt, 0, n);
        for (int isa = 0; isa < DSC_AMP_ISA_COUNT; isa++) {
            if (!dsc__amp_isa_supported((dsc_amp_isa_t)isa)) continue;
            const dsc_amp_segment_t all = {0, n};
            bool ovf = true;
            double ss = 0;
            CHECK_OK(dsc__amp_scan_segments_isa((dsc_amp_isa_t)isa, buf, dt, n, &all, 1, NULL, NULL, &ovf, &ss, NULL));
            CHECK_MSG(!ovf, "%s %s: false overflow", dsc_dtype_name(dt), dsc__amp_isa_name((dsc_amp_isa_t)isa));
            CHECK_MSG(ss == want, "%s %s: sumsq %.17g, ordered reference %.17g", dsc_dtype_name(dt),
                      dsc__amp_isa_name((dsc_amp_isa_t)isa), ss, want);
            CHECK(check_close(ss, plain, 1e-13, 0));
            for (size_t pi = 0; pi < sizeof pos / sizeof pos[0]; pi++)
                for (int kind = 0; kind < 5; kind++) {
                    void *cp = malloc(n * 4);
                    memcpy(cp, buf, n * (dt == DSC_F32 ? 4 : 2));
                    set_special(cp, dt, pos[pi], kind);
                    ovf = false;
                    CHECK_OK(dsc__amp_scan_segments_isa((dsc_amp_isa_t)isa, cp, dt, n, &all, 1, NULL, NULL, &ovf, &ss,
                                                        NULL));
                    CHECK_MSG(ovf && !isfinite(ss), "%s %s: special %d at %zu not found", dsc_dtype_name(dt),
                              dsc__amp_isa_name((dsc_amp_isa_t)isa), kind, pos[pi]);
                    /* the public entry point (best path) agrees */
                    bool ovf2 = false;
                    CHECK_OK(dsc_amp_scan(g_ctx, cp, dt, n, &ovf2, NULL));
                    CHECK(ovf2);
                    free(cp);
                }
        }
        /* Short buffers: every length below two lane groups, with the special at each position. */
        for (size_t len = 1; len <= 40; len++)
            for (size_t at = 0; at < len; at++) {
                void *cp = malloc(len * 4);
                for (size_t i = 0; i < len; i++) copy_elem(cp, buf, dt, i);
                set_special(cp, dt, at, (int)(at % 5));
                for (int isa = 0; isa < DSC_AMP_ISA_COUNT; isa++) {
                    if (!dsc__amp_isa_supported((dsc_amp_isa_t)isa)) continue;
                    const dsc_amp_segment_t all = {0, len};
                    bool ovf = false;
                    CHECK_OK(dsc__amp_scan_segments_isa((dsc_amp_isa_t)isa, cp, dt, len, &all, 1, NULL, NULL, &ovf,
                                                        NULL, NULL));
                    CHECK_MSG(ovf, "%s %s len %zu at %zu", dsc_dtype_name(dt), dsc__amp_isa_name((dsc_amp_isa_t)isa),
                              len, at);
                }
                free(cp);
            }
        /* Largest finite values: no false overflow (squares stay finite in double). */
        void *big = malloc(64 * 4);
        for (size_t i = 0; i < 64; i++) {
            if (dt == DSC_F32) ((float *)big)[i] = u2f(i & 1 ? 0xff7fffffu : 0x7f7fffffu);
            else if (dt == DSC_BF16) ((uint16_t *)big)[i] = i & 1 ? 0xff7fu : 0x7f7fu;
            else ((uint16_t *)big)[i] = i & 1 ? 0xfbffu : 0x7bffu;
        }
        bool ovf = true;
        double ss = 0;
        CHECK_OK(dsc_amp_scan(g_ctx, big, dt, 64, &ovf, &ss));
        CHECK(!ovf && isfinite(ss) && ss == ref_sumsq_ordered(big, dt, 0, 64));
        free(big);
        free(buf);
    }
    /* Empty and invalid. */
    bool ovf = true;
    double ss = -1;
    CHECK_OK(dsc_amp_scan(g_ctx, NULL, DSC_F32, 0, &ovf, &ss));
    CHECK(!ovf && ss == 0);
    CHECK(dsc_amp_scan(g_ctx, NULL, DSC_F32, 5, &ovf, &ss) == DSC_ERR_INVALID);
    float one = 1;
    CHECK(dsc_amp_scan(g_ctx, &one, DSC_F64, 1, &ovf, &ss) == DSC_ERR_INVALID);
    CHECK(dsc_amp_scan(g_ctx, &one, DSC_I32, 1, &ovf, &ss) == DSC_ERR_INVALID);
}

static void test_scan_threads(void) {
    /* More than one round of ROUND_BLOCKS (1024) blocks, so the round loop is exercised too. */
    const size_t n = 1024 * (size_t)DSC_AMP_BLOCK + 3 * DSC_AMP_BLOCK + 1001;
    const int saved = omp_get_max_threads();
    for (int d = 0; d < 3; d++) {
        dsc_dtype_t dt = DTYPES[d];
        void *buf = make_values(dt, n, dt == DSC_F16 ? 50.0 : 3.0);
        double ss[3];
        for (int t = 1; t <= 3; t++) {
            omp_set_num_threads(t);
            bool ovf = true;
            CHECK_OK(dsc_amp_scan(g_ctx, buf, dt, n, &ovf, &ss[t - 1]));
            CHECK(!ovf);
        }
        CHECK_MSG(ss[0] == ss[1] && ss[0] == ss[2], "%s: threads 1/2/3 give %.17g %.17g %.17g", dsc_dtype_name(dt),
                  ss[0], ss[1], ss[2]);
        CHECK(ss[0] == ref_sumsq_ordered(buf, dt, 0, n));
        CHECK(check_close(ss[0], ref_sumsq_plain(buf, dt, 0, n), 1e-12, 0));
        /* a NaN in the second round */
        set_special(buf, dt, n - 5, 2);
        omp_set_num_threads(2);
        bool ovf = false;
        CHECK_OK(dsc_amp_scan(g_ctx, buf, dt, n, &ovf, NULL));
        CHECK(ovf);
        free(buf);
    }
    omp_set_num_threads(saved);
}

static void test_scan_segments(void) {
    /* Tiling segments of awkward sizes, empty ones included. */
    const size_t sizes[] = {0, 5, DSC_AMP_BLOCK, DSC_AMP_BLOCK + 1, 1, 20000, 0, 3, 2 * DSC_AMP_BLOCK, 77};
    const size_t ns = sizeof sizes / sizeof sizes[0];
    dsc_amp_segment_t segs[10];
    size_t n = 0;
    for (size_t i = 0; i < ns; i++) {
        segs[i].offset = n;
        segs[i].numel = sizes[i];
        n += sizes[i];
    }
    const int saved = omp_get_max_threads();
    for (int d = 0; d < 3; d++) {
        dsc_dtype_t dt = DTYPES[d];
        void *buf = make_values(dt, n, 10.0);
        set_special(buf, dt, segs[2].offset + DSC_AMP_BLOCK - 1, 2); /* NaN at the end of segment 2 */
        set_special(buf, dt, segs[5].offset, 1);                      /* -inf at the start of segment 5 */
        set_special(buf, dt, segs[9].offset + 76, 0);                 /* +inf: last element of the buffer */
        for (int isa = 0; isa < DSC_AMP_ISA_COUNT; isa++) {
            if (!dsc__amp_isa_supported((dsc_amp_isa_t)isa)) continue;
            for (int t = 1; t <= 2; t++) {
                omp_set_num_threads(t);
                bool so[10];
                double sq[10];
                bool ovf = false;
                double total = 0;
                size_t nbad = 0;
                memset(so, 0xff, sizeof so);
                CHECK_OK(dsc__amp_scan_segments_isa((dsc_amp_isa_t)isa, buf, dt, n, segs, ns, so, sq, &ovf, &total,
                                                    &nbad));
                CHECK(ovf && nbad == 3 && !isfinite(total));
                for (size_t i = 0; i < ns; i++) {
                    const bool want_bad = i == 2 || i == 5 || i == 9;
                    CHECK_MSG(so[i] == want_bad, "%s %s seg %zu: overflow %d", dsc_dtype_name(dt),
                              dsc__amp_isa_name((dsc_amp_isa_t)isa), i, (int)so[i]);
                    if (!want_bad)
                        CHECK_MSG(sq[i] == ref_sumsq_ordered(buf, dt, segs[i].offset, segs[i].numel),
                                  "%s seg %zu sumsq %.17g", dsc_dtype_name(dt), i, sq[i]);
                    else
                        CHECK(!isfinite(sq[i]));
                }
                CHECK(sq[0] == 0 && sq[6] == 0);
            }
        }
        /* Clean buffer: total is the sum of the segment sums in order. */
        void *clean = make_values(dt, n, 10.0);
        double sq[10], total = 0;
        bool ovf = true;
        size_t nbad = 9;
        CHECK_OK(dsc_amp_scan_segments(g_ctx, clean, dt, n, segs, ns, NULL, sq, &ovf, &total, &nbad));
        double want = 0;
        for (size_t i = 0; i < ns; i++) want += ref_sumsq_ordered(clean, dt, segs[i].offset, segs[i].numel);
        CHECK(!ovf && nbad == 0 && total == want);
        /* Overlapping, out-of-order segments are allowed; one past the end is not. */
        dsc_amp_segment_t odd[3] = {{100, 50}, {0, 120}, {n - 10, 10}};
        bool so3[3];
        CHECK_OK(dsc_amp_scan_segments(g_ctx, buf, dt, n, odd, 3, so3, NULL, &ovf, NULL, &nbad));
        CHECK(!so3[0] && !so3[1] && so3[2] && nbad == 1 && ovf);
        dsc_amp_segment_t past = {n - 10, 11};
        CHECK(dsc_amp_scan_segments(g_ctx, buf, dt, n, &past, 1, NULL, NULL, &ovf, NULL, NULL) == DSC_ERR_INVALID);
        dsc_amp_segment_t wrap = {SIZE_MAX, 2};
        CHECK(dsc_amp_scan_segments(g_ctx, buf, dt, n, &wrap, 1, NULL, NULL, &ovf, NULL, NULL) == DSC_ERR_INVALID);
        CHECK(dsc_amp_scan_segments(g_ctx, buf, dt, n, NULL, 2, NULL, NULL, &ovf, NULL, NULL) == DSC_ERR_INVALID);
        /* No segments: nothing to do. */
        CHECK_OK(dsc_amp_scan_segments(g_ctx, buf, dt, n, NULL, 0, NULL, NULL, &ovf, &total, &nbad));
        CHECK(!ovf && total == 0 && nbad == 0);
        free(clean);
        free(buf);
    }
    omp_set_num_threads(saved);
}

/* ---- conversions ------------------------------------------------------------------------------ */

static const uint32_t SPECIAL_F32[] = {
    0x00000000u, 0x80000000u, 0x00000001u, 0x80000001u, 0x007fffffu, 0x807fffffu, 0x00400000u, 0x00008000u,
    0x00018000u, 0x0000ffffu, 0x00800000u, 0x80800000u, 0x7f7fffffu, 0xff7fffffu, 0x7f7f8000u, 0x7f7f7fffu,
    0x7f800000u, 0xff800000u, 0x7fc00000u, 0xffc00000u, 0x7f800001u, 0xff800001u, 0x7fbfffffu, 0x7f802000u,
    0x7fffffffu, 0x3f800000u, 0x3f808000u, 0x3f818000u, 0x3f80c000u, 0x3f807fffu, 0xbf808000u, 0x3effffffu,
    /* f16: max 65504, 65519.996 (rounds down), 65520 (rounds to inf), min normal, subnormals, ties */
    0x477fe000u, 0x477fefffu, 0x477ff000u, 0xc77ff000u, 0x38800000u, 0x387fffffu, 0x33800000u, 0x33000000u,
    0x33000001u, 0x337fffffu, 0x32ffffffu, 0x33c00000u, 0x34200000u, 0x3f801000u, 0x3f803000u, 0x3f802000u,
    0x38801000u, 0x38803000u, 0x477fd000u, 0x477ff001u, 0x3a000000u, 0x39ffffffu, 0x0f000000u, 0x8f000000u,
};

/* Fills src with random bit patterns (all classes: ~1/256 denormal, ~1/256 inf/NaN) mixed with
 * the specials, half of them uniformly random bits, half random floats. */
static void fill_f32_bits(float *src, size_t n) {
    const size_t nsp = sizeof SPECIAL_F32 / sizeof SPECIAL_F32[0];
    for (size_t i = 0; i < n; i++) {
        uint64_t r = rnd64();
        uint32_t u;
        if (i < nsp) u = SPECIAL_F32[i];
        else if ((r & 7) == 0) u = SPECIAL_F32[(r >> 3) % nsp];
        else if ((r & 7) < 5) u = (uint32_t)(r >> 32);
        else u = f2u((float)((rndu() * 2 - 1) * 70000.0));
        src[i] = u2f(u);
    }
}

static void test_conversions(void) {
    const size_t n = (1u << 20) + 29; /* several OpenMP chunks and a ragged tail */
    float *src = malloc(n * 4 + 64);
    uint16_t *want_b = malloc(n * 2), *want_h = malloc(n * 2), *got = malloc(n * 2 + 64);
    fill_f32_bits(src, n);
    for (size_t i = 0; i < n; i++) {
        want_b[i] = dsc_f32_to_bf16(src[i]);
        want_h[i] = dsc_f32_to_f16(src[i]);
    }
    /* Denormal-free buffer too, so the VCVTNE2PS2BF16 fast path covers whole groups. */
    float *clean = malloc(n * 4);
    uint16_t *want_cb = malloc(n * 2);
    for (size_t i = 0; i < n; i++) {
        uint32_t u = f2u(src[i]);
        if ((u & 0x7f800000u) == 0) u |= 0x00800000u;
        clean[i] = u2f(u);
        want_cb[i] = dsc_f32_to_bf16(clean[i]);
    }
    const int saved = omp_get_max_threads();
    for (int isa = 0; isa < DSC_AMP_ISA_COUNT; isa++) {
        if (!dsc__amp_isa_supported((dsc_amp_isa_t)isa)) {
            printf("  path %s: not supported on this CPU, skipped\n", dsc__amp_isa_name((dsc_amp_isa_t)isa));
            continue;
        }
        printf("  path %s: testing\n", dsc__amp_isa_name((dsc_amp_isa_t)isa));
        const char *nm = dsc__amp_isa_name((dsc_amp_isa_t)isa);
        for (int t = 1; t <= 2; t++) {
            omp_set_num_threads(t);
            /* unaligned start and every short length via offsets */
            for (size_t off = 0; off < 3; off++) {
                memset(got, 0xa5, n * 2);
                CHECK_OK(dsc__amp_f32_to_half_isa((dsc_amp_isa_t)isa, got, DSC_BF16, src + off, n - off));
                CHECK_MSG(!memcmp(got, want_b + off, (n - off) * 2), "%s f32->bf16 off %zu differs", nm, off);
                memset(got, 0xa5, n * 2);
                CHECK_OK(dsc__amp_f32_to_half_isa((dsc_amp_isa_t)isa, got, DSC_F16, src + off, n - off));
                CHECK_MSG(!memcmp(got, want_h + off, (n - off) * 2), "%s f32->f16 off %zu differs", nm, off);
            }
            CHECK_OK(dsc__amp_f32_to_half_isa((dsc_amp_isa_t)isa, got, DSC_BF16, clean, n));
            CHECK_MSG(!memcmp(got, want_cb, n * 2), "%s f32->bf16 (no denormals) differs", nm);
        }
        /* first differing element, for diagnosis */
        CHECK_OK(dsc__amp_f32_to_half_isa((dsc_amp_isa_t)isa, got, DSC_BF16, src, n));
        for (size_t i = 0; i < n; i++)
            if (got[i] != want_b[i]) {
                CHECK_MSG(0, "%s: bf16(%08x) = %04x, scalar %04x", nm, f2u(src[i]), got[i], want_b[i]);
                break;
            }
        CHECK_OK(dsc__amp_f32_to_half_isa((dsc_amp_isa_t)isa, got, DSC_F16, src, n));
        for (size_t i = 0; i < n; i++)
            if (got[i] != want_h[i]) {
                CHECK_MSG(0, "%s: f16(%08x) = %04x, scalar %04x", nm, f2u(src[i]), got[i], want_h[i]);
                break;
            }
        /* Short lengths 0..70 (tails of every vector width). */
        for (size_t len = 0; len <= 70; len++) {
            uint16_t small[80];
            CHECK_OK(dsc__amp_f32_to_half_isa((dsc_amp_isa_t)isa, small, DSC_BF16, src + 7, len));
            CHECK(len == 0 || !memcmp(small, want_b + 7, len * 2));
            CHECK_OK(dsc__amp_f32_to_half_isa((dsc_amp_isa_t)isa, small, DSC_F16, src + 7, len));
            CHECK(len == 0 || !memcmp(small, want_h + 7, len * 2));
        }
    }
    /* The public entry points. */
    CHECK_OK(dsc_amp_f32_to_half(g_ctx, got, DSC_BF16, src, n));
    CHECK(!memcmp(got, want_b, n * 2));
    CHECK_OK(dsc_amp_f32_to_half(g_ctx, got, DSC_F16, src, n));
    CHECK(!memcmp(got, want_h, n * 2));
    printf("  best path: %s\n", dsc_amp_isa_name());
    omp_set_num_threads(saved);
    free(src);
    free(want_b);
    free(want_h);
    free(got);
    free(clean);
    free(want_cb);
}

static void test_widening_and_accumulate(void) {
    /* Every 16-bit pattern, repeated with shifts so every pattern meets every lane position. */
    const size_t n = 65536 * 3 + 11;
    uint16_t *h = malloc(n * 2 + 64);
    for (size_t i = 0; i < n; i++) h[i] = (uint16_t)((i * 40503u + (i >> 16)) & 0xffffu);
    for (size_t i = 0; i < 65536; i++) h[i] = (uint16_t)i; /* the first copy in order */
    float *got = malloc(n * 4 + 64), *want = malloc(n * 4), *acc0 = malloc(n * 4), *acc = malloc(n * 4 + 64);
    for (size_t i = 0; i < n; i++) acc0[i] = (float)((rndu() * 2 - 1) * 1000.0);
    const int saved = omp_get_max_threads();
    for (int hd = 0; hd < 2; hd++) {
        const dsc_dtype_t dt = hd ? DSC_F16 : DSC_BF16;
        for (size_t i = 0; i < n; i++) want[i] = dt == DSC_BF16 ? dsc_bf16_to_f32(h[i]) : dsc_f16_to_f32(h[i]);
        for (int isa = 0; isa < DSC_AMP_ISA_COUNT; isa++) {
            if (!dsc__amp_isa_supported((dsc_amp_isa_t)isa)) continue;
            const char *nm = dsc__amp_isa_name((dsc_amp_isa_t)isa);
            for (int t = 1; t <= 2; t++) {
                omp_set_num_threads(t);
                for (size_t off = 0; off < 2; off++) {
                    memset(got, 0x5a, n * 4);
                    CHECK_OK(dsc__amp_half_to_f32_isa((dsc_amp_isa_t)isa, got, h + off, dt, n - off));
                    int first = -1;
                    for (size_t i = 0; i < n - off && first < 0; i++)
                        if (f2u(got[i]) != f2u(want[i + off])) first = (int)i;
                    CHECK_MSG(first < 0, "%s %s->f32 off %zu: %04x -> %08x, scalar %08x", nm, dsc_dtype_name(dt), off,
                              first < 0 ? 0 : h[first + off], first < 0 ? 0 : f2u(got[first]),
                              first < 0 ? 0 : f2u(want[first + off]));
                }
                /* acc += (float)g: bitwise, except that a NaN result only has to be a NaN (its
                 * payload comes from whichever operand the add picked). */
                memcpy(acc, acc0, n * 4);
                CHECK_OK(dsc__amp_accumulate_isa((dsc_amp_isa_t)isa, acc, h, dt, n));
                int first = -1;
                for (size_t i = 0; i < n && first < 0; i++) {
                    const float w = acc0[i] + want[i];
                    if (isnan(w) ? !isnan(acc[i]) : f2u(acc[i]) != f2u(w)) first = (int)i;
                }
                CHECK_MSG(first < 0, "%s acc %s differs at %d", nm, dsc_dtype_name(dt), first);
            }
        }
        CHECK_OK(dsc_amp_half_to_f32(g_ctx, got, h, dt, n));
        CHECK(!memcmp(got, want, n * 4));
    }
    /* f32 accumulation, and two micro-batches in a row. */
    float *g32 = malloc(n * 4);
    for (size_t i = 0; i < n; i++) g32[i] = (float)(rndu() - 0.5);
    for (int isa = 0; isa < DSC_AMP_ISA_COUNT; isa++) {
        if (!dsc__amp_isa_supported((dsc_amp_isa_t)isa)) continue;
        memcpy(acc, acc0, n * 4);
        CHECK_OK(dsc__amp_accumulate_isa((dsc_amp_isa_t)isa, acc, g32, DSC_F32, n));
        CHECK_OK(dsc__amp_accumulate_isa((dsc_amp_isa_t)isa, acc, g32, DSC_F32, n));
        int bad = 0;
        for (size_t i = 0; i < n; i++) bad += f2u(acc[i]) != f2u((acc0[i] + g32[i]) + g32[i]);
        CHECK_MSG(bad == 0, "%s acc f32: %d differ", dsc__amp_isa_name((dsc_amp_isa_t)isa), bad);
    }
    omp_set_num_threads(saved);
    /* Invalid arguments. */
    CHECK(dsc_amp_accumulate(g_ctx, acc, h, DSC_F64, 4) == DSC_ERR_INVALID);
    CHECK(dsc_amp_accumulate(g_ctx, NULL, h, DSC_BF16, 4) == DSC_ERR_INVALID);
    CHECK_OK(dsc_amp_accumulate(g_ctx, NULL, NULL, DSC_BF16, 0));
    CHECK(dsc_amp_half_to_f32(g_ctx, got, h, DSC_F32, 4) == DSC_ERR_INVALID);
    CHECK(dsc_amp_f32_to_half(g_ctx, h, DSC_I32, got, 4) == DSC_ERR_INVALID);
    CHECK(dsc_amp_f32_to_half(g_ctx, NULL, DSC_BF16, got, 4) == DSC_ERR_INVALID);
    free(g32);
    free(h);
    free(got);
    free(want);
    free(acc0);
    free(acc);
}

/* ---- unscale + clip ------------------------------------------------------------------------ */

static void test_unscale_clip(void) {
    dsc_amp_unscale_clip_t uc;
    /* Clipping binds: n_true = 5, c = 1: r = 5.000001, combined = r*S. */
    CHECK_OK(dsc_amp_unscale_clip(5.0 * 65536, 65536, 1.0, &uc));
    CHECK(uc.clipped);
    CHECK(uc.norm == 5.0);
    CHECK(uc.combined == (5.0 + 1e-6) * 65536);
    CHECK(uc.grad_scale == 1.0 / ((5.0 + 1e-6) * 65536));
    CHECK(check_close(uc.norm_clipped, 5.0 / 5.000001, 1e-15, 0));
    /* A gradient element g_s = S*0.3 comes out as 0.3 * 1/(n+1e-6) */
    CHECK(check_close(65536 * 0.3 * uc.grad_scale, 0.3 / 5.000001, 1e-15, 0));
    /* Clipping does not trigger: n_true = 0.5 < c = 1: pure unscale. */
    CHECK_OK(dsc_amp_unscale_clip(0.5 * 65536, 65536, 1.0, &uc));
    CHECK(!uc.clipped && uc.combined == 65536 && uc.grad_scale == 1.0 / 65536 && uc.norm == 0.5 &&
          uc.norm_clipped == 0.5);
    /* Just below the threshold: n_true + 1e-6 = c - 1e-9. */
    CHECK_OK(dsc_amp_unscale_clip((2.0 - 1e-6 - 1e-9) * 1024, 1024, 2.0, &uc));
    CHECK(!uc.clipped && uc.combined == 1024);
    /* Clipping off (c = 0): any norm, pure unscale. */
    CHECK_OK(dsc_amp_unscale_clip(1e9, 256, 0.0, &uc));
    CHECK(!uc.clipped && uc.combined == 256 && uc.grad_scale == 1.0 / 256 && uc.norm == 1e9 / 256);
    /* bf16 / fp32: S = 1, c = 0.5, n = 2: r = (2 + 1e-6)/0.5 = 4.000002 */
    CHECK_OK(dsc_amp_unscale_clip(2.0, 1.0, 0.5, &uc));
    CHECK(uc.clipped && uc.combined == (2.0 + 1e-6) / 0.5 && uc.grad_scale == 1.0 / ((2.0 + 1e-6) / 0.5));
    CHECK(check_close(uc.norm_clipped, 0.5 * 2.0 / (2.0 + 1e-6), 1e-15, 0));
    /* Zero gradients. */
    CHECK_OK(dsc_amp_unscale_clip(0.0, 4096, 1.0, &uc));
    CHECK(!uc.clipped && uc.norm == 0 && uc.grad_scale == 1.0 / 4096);
    /* Overflow: refused, norm reported as -1 as DeepSpeed does. */
    CHECK(dsc_amp_unscale_clip(INFINITY, 65536, 1.0, &uc) == DSC_ERR_INVALID && uc.norm == -1);
    CHECK(dsc_amp_unscale_clip(NAN, 65536, 1.0, &uc) == DSC_ERR_INVALID && uc.norm == -1);
    CHECK(dsc_amp_unscale_clip(1.0, 0.0, 1.0, &uc) == DSC_ERR_INVALID);
    CHECK(dsc_amp_unscale_clip(1.0, 1.0, -1.0, &uc) == DSC_ERR_INVALID);
    CHECK(dsc_amp_unscale_clip(1.0, 1.0, 1.0, NULL) == DSC_ERR_INVALID);

    /* The pre-update scale (spec §3.6 ordering bug). On the step where S doubles, the gradients
     * were produced with the OLD scale: unscaling with event.scale_before gives the true norm;
     * DeepSpeed HEAD divides by the updated scale and halves the update. */
    dsc_loss_scaler_params_t p = DSC_LOSS_SCALER_PARAMS_INIT;
    p.loss_scale_window = 2;
    dsc_loss_scaler_t s;
    CHECK_OK(dsc_loss_scaler_init(&s, &p));
    dsc_loss_scaler_event_t ev;
    CHECK_OK(dsc_loss_scaler_update(&s, false, &ev));
    CHECK_OK(dsc_loss_scaler_update(&s, false, &ev));
    const double S_used = dsc_loss_scaler_scale(&s); /* what backward multiplied the loss by */
    const double n_true = 0.25;
    CHECK_OK(dsc_loss_scaler_update(&s, false, &ev)); /* iter 2: doubles */
    CHECK(ev.action == DSC_LOSS_SCALE_RAISED && ev.scale_before == S_used && ev.scale_after == 2 * S_used);
    CHECK_OK(dsc_amp_unscale_clip(n_true * S_used, ev.scale_before, 1.0, &uc));
    CHECK(uc.norm == n_true && uc.grad_scale == 1.0 / S_used);
    CHECK_OK(dsc_amp_unscale_clip(n_true * S_used, ev.scale_after, 1.0, &uc)); /* HEAD's arithmetic */
    CHECK(uc.norm == n_true / 2);
}

int main(void) {
    g_ctx = check_ctx_new(1);
    printf("amp kernels: best path %s\n", dsc_amp_isa_name());
    test_scan_positions();
    test_scan_threads();
    test_scan_segments();
    test_conversions();
    test_widening_and_accumulate();
    test_unscale_clip();
    dsc_ctx_free(g_ctx);
    return check_finish("test_amp_kernels");
}

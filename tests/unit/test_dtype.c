/* Dtypes and memory accounting: f32 <-> f16 / bf16 conversions (exhaustive round trips,
 * ties to even, overflow, subnormals, signed zero, Inf/NaN, and 10M random patterns
 * against the F16C hardware conversion), dsc_convert between every dtype pair, the
 * context allocator's live/peak counters, and the step arena's activation counter. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "dsc/ops.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define HAVE_X86 1
#endif

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static float bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static bool f16_is_nan(uint16_t h) { return (h & 0x7c00u) == 0x7c00u && (h & 0x3ffu); }
static bool bf16_is_nan(uint16_t b) { return (b & 0x7f80u) == 0x7f80u && (b & 0x7fu); }

/* The value of a half from its fields, computed independently with ldexp. */
static double f16_ref(uint16_t h) {
    const int e = (h >> 10) & 0x1f, m = h & 0x3ff;
    const double s = (h & 0x8000u) ? -1.0 : 1.0;
    if (e == 0) return s * ldexp(m, -24);
    if (e == 31) return m ? NAN : s * INFINITY;
    return s * ldexp(1024 + m, e - 25);
}

/* ---- f16 ------------------------------------------------------------------------- */

static void test_f16_exhaustive(void) {
    int bad_value = 0, bad_trip = 0, bad_nan = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        const float f = dsc_f16_to_f32((uint16_t)h);
        const double want = f16_ref((uint16_t)h);
        if (f16_is_nan((uint16_t)h)) {
            /* NaN stays NaN, keeps its sign, and converts back to a NaN of the same sign */
            const uint16_t back = dsc_f32_to_f16(f);
            if (!isnan(f) || !f16_is_nan(back) || (back & 0x8000u) != (h & 0x8000u) || !!signbit(f) != !!(h & 0x8000u))
                bad_nan++;
            continue;
        }
        if ((double)f != want || !!signbit(f) != !!(h & 0x8000u)) bad_value++;
        if (dsc_f32_to_f16(f) != h) bad_trip++;
    }
    CHECK_MSG(bad_value == 0, "%d halves decode to the wrong f32", bad_value);
    CHECK_MSG(bad_trip == 0, "%d halves do not round-trip through f32", bad_trip);
    CHECK_MSG(bad_nan == 0, "%d NaN halves lose NaN-ness or sign", bad_nan);
}

/* Every pair of adjacent finite halves (h, h+1), normal and subnormal, both signs: the f32
 * midpoint (exact, f32 has 13 more bits) rounds to the one with the even mantissa; one f32
 * ulp above or below the midpoint rounds to the nearer one. */
static void test_f16_ties(void) {
    int bad = 0, n = 0;
    for (uint32_t sign = 0; sign <= 0x8000u; sign += 0x8000u) {
        for (uint32_t h = 0; h < 0x7bff; h++) {
            const uint16_t lo = (uint16_t)(sign | h), hi = (uint16_t)(sign | (h + 1));
            const double mid_d = (f16_ref(lo) + f16_ref(hi)) / 2;
            const float mid = (float)mid_d;
            if ((double)mid != mid_d) { /* must be exact */
                bad++;
                continue;
            }
            const uint16_t even = (h & 1) ? hi : lo;
            const float toward_hi = nextafterf(mid, sign ? -INFINITY : INFINITY);
            const float toward_lo = nextafterf(mid, sign ? INFINITY : -INFINITY);
            if (dsc_f32_to_f16(mid) != even) bad++;
            if (dsc_f32_to_f16(toward_hi) != hi) bad++;
            if (dsc_f32_to_f16(toward_lo) != lo) bad++;
            n++;
        }
    }
    CHECK_MSG(bad == 0, "%d of %d f16 tie cases round wrongly", bad, n);
    /* spot checks written out: 1 + 2^-11 lies halfway between 1 (0x3c00, even) and 1 + 2^-10 */
    CHECK(dsc_f32_to_f16(1.0f + 0x1p-11f) == 0x3c00);
    /* 1 + 3 * 2^-11 lies halfway between 0x3c01 (odd) and 0x3c02 (even) */
    CHECK(dsc_f32_to_f16(1.0f + 3 * 0x1p-11f) == 0x3c02);
    CHECK(dsc_f32_to_f16(-(1.0f + 3 * 0x1p-11f)) == 0xbc02);
    /* 2049 is halfway between 2048 (0x6800) and 2050 (0x6801): even is 2048 */
    CHECK(dsc_f32_to_f16(2049.0f) == 0x6800);
    CHECK(dsc_f32_to_f16(2051.0f) == 0x6802); /* between 2050 (odd) and 2052 */
}

static void test_f16_special(void) {
    /* overflow: 65504 is the largest half; 65520 is the midpoint to 65536 and rounds (to the
     * even side) to Inf; anything below rounds to 65504 */
    CHECK(dsc_f32_to_f16(65504.0f) == 0x7bff);
    CHECK(dsc_f32_to_f16(65519.0f) == 0x7bff);
    CHECK(dsc_f32_to_f16(nextafterf(65520.0f, 0)) == 0x7bff);
    CHECK(dsc_f32_to_f16(65520.0f) == 0x7c00);
    CHECK(dsc_f32_to_f16(-65520.0f) == 0xfc00);
    CHECK(dsc_f32_to_f16(1e10f) == 0x7c00);
    CHECK(dsc_f32_to_f16(3.0e38f) == 0x7c00);
    CHECK(dsc_f32_to_f16(-FLT_MAX) == 0xfc00);
    /* Inf, NaN (including payloads only in the low f32 bits, which truncation would lose) */
    CHECK(dsc_f32_to_f16(INFINITY) == 0x7c00 && dsc_f32_to_f16(-INFINITY) == 0xfc00);
    CHECK(isinf(dsc_f16_to_f32(0x7c00)) && dsc_f16_to_f32(0x7c00) > 0);
    CHECK(isinf(dsc_f16_to_f32(0xfc00)) && dsc_f16_to_f32(0xfc00) < 0);
    const uint32_t nans[] = {0x7fc00000u, 0x7f800001u, 0x7f801fffu, 0x7fffffffu, 0xffc00000u, 0xff800001u, 0x7fa00000u};
    for (size_t i = 0; i < sizeof nans / sizeof nans[0]; i++) {
        const uint16_t h = dsc_f32_to_f16(bits_f32(nans[i]));
        CHECK_MSG(f16_is_nan(h) && (h & 0x200u) && ((h & 0x8000u) != 0) == ((nans[i] >> 31) != 0),
                  "NaN 0x%08x -> 0x%04x", nans[i], h);
    }
    CHECK(isnan(dsc_f16_to_f32(0x7e00)) && isnan(dsc_f16_to_f32(0x7c01)) && isnan(dsc_f16_to_f32(0xfe00)));
    /* signed zero */
    CHECK(dsc_f32_to_f16(0.0f) == 0x0000 && dsc_f32_to_f16(-0.0f) == 0x8000);
    CHECK(dsc_f16_to_f32(0x8000) == 0 && signbit(dsc_f16_to_f32(0x8000)));
    CHECK(dsc_f16_to_f32(0x0000) == 0 && !signbit(dsc_f16_to_f32(0x0000)));
    /* subnormals: 2^-24 is the smallest half; 2^-25 ties between 0 and it (to 0, even);
     * just above 2^-25 rounds up; 3 * 2^-25 ties between 1 and 2 units (to 2) */
    CHECK(dsc_f32_to_f16(0x1p-24f) == 0x0001);
    CHECK(dsc_f32_to_f16(0x1p-25f) == 0x0000);
    CHECK(dsc_f32_to_f16(-0x1p-25f) == 0x8000);
    CHECK(dsc_f32_to_f16(nextafterf(0x1p-25f, 1)) == 0x0001);
    CHECK(dsc_f32_to_f16(3 * 0x1p-25f) == 0x0002);
    CHECK(dsc_f32_to_f16(0x1p-26f) == 0x0000);
    CHECK(dsc_f32_to_f16(1e-30f) == 0x0000 && dsc_f32_to_f16(-1e-30f) == 0x8000);
    CHECK(dsc_f32_to_f16(bits_f32(0x00000001u)) == 0x0000); /* f32 subnormal */
    CHECK(dsc_f32_to_f16(bits_f32(0x80000001u)) == 0x8000);
    CHECK(dsc_f32_to_f16(1023 * 0x1p-24f) == 0x03ff);     /* largest subnormal */
    CHECK(dsc_f32_to_f16(1023.5f * 0x1p-24f) == 0x0400);  /* tie with the smallest normal (even) */
    CHECK(dsc_f32_to_f16(0x1p-14f) == 0x0400);
    CHECK(dsc_f16_to_f32(0x0001) == 0x1p-24f && dsc_f16_to_f32(0x03ff) == 1023 * 0x1p-24f);
    /* ordinary values */
    CHECK(dsc_f32_to_f16(1.0f) == 0x3c00 && dsc_f32_to_f16(-2.0f) == 0xc000 && dsc_f32_to_f16(0.5f) == 0x3800);
    CHECK(dsc_f32_to_f16(1.0f / 3.0f) == 0x3555);
}

/* ---- bf16 ------------------------------------------------------------------------ */

static void test_bf16(void) {
    int bad_value = 0, bad_trip = 0, bad_nan = 0;
    for (uint32_t b = 0; b < 65536; b++) {
        const float f = dsc_bf16_to_f32((uint16_t)b);
        if (f32_bits(f) != b << 16) bad_value++;
        const uint16_t back = dsc_f32_to_bf16(f);
        if (bf16_is_nan((uint16_t)b)) {
            if (!isnan(f) || !bf16_is_nan(back) || (back & 0x8000u) != (b & 0x8000u)) bad_nan++;
        } else if (back != b) {
            bad_trip++;
        }
    }
    CHECK_MSG(bad_value == 0, "%d bf16 patterns decode wrongly", bad_value);
    CHECK_MSG(bad_trip == 0, "%d bf16 patterns do not round-trip", bad_trip);
    CHECK_MSG(bad_nan == 0, "%d bf16 NaNs lose NaN-ness or sign", bad_nan);

    /* ties: the f32 pattern halfway between b and b+1 is (b << 16) | 0x8000 */
    int bad = 0, n = 0;
    for (uint32_t sign = 0; sign <= 0x8000u; sign += 0x8000u) {
        for (uint32_t b = 0; b < 0x7f7f; b++) { /* up to the largest finite - 1 */
            const uint32_t lo = sign | b, hi = sign | (b + 1);
            const uint32_t mid = (lo << 16) | 0x8000u;
            const uint16_t even = (b & 1) ? (uint16_t)hi : (uint16_t)lo;
            if (dsc_f32_to_bf16(bits_f32(mid)) != even) bad++;
            if (dsc_f32_to_bf16(bits_f32(mid + 1)) != hi) bad++;
            if (dsc_f32_to_bf16(bits_f32(mid - 1)) != lo) bad++;
            n++;
        }
    }
    CHECK_MSG(bad == 0, "%d of %d bf16 tie cases round wrongly", bad, n);
    CHECK(dsc_f32_to_bf16(1.0f + 0x1p-8f) == 0x3f80);     /* tie, even below */
    CHECK(dsc_f32_to_bf16(1.0f + 3 * 0x1p-8f) == 0x3f82); /* tie, odd below: up */
    /* overflow: halfway between the largest bf16 (0x7f7f) and 2^128 rounds to Inf */
    CHECK(dsc_f32_to_bf16(bits_f32(0x7f7f8000u)) == 0x7f80);
    CHECK(dsc_f32_to_bf16(bits_f32(0x7f7f7fffu)) == 0x7f7f);
    CHECK(dsc_f32_to_bf16(FLT_MAX) == 0x7f80 && dsc_f32_to_bf16(-FLT_MAX) == 0xff80);
    CHECK(dsc_f32_to_bf16(INFINITY) == 0x7f80 && dsc_f32_to_bf16(-INFINITY) == 0xff80);
    /* NaN payloads only in the low 16 bits must not collapse to Inf */
    const uint32_t nans[] = {0x7fc00000u, 0x7f800001u, 0x7f80ffffu, 0xff800001u, 0x7fffffffu};
    for (size_t i = 0; i < sizeof nans / sizeof nans[0]; i++) {
        const uint16_t b = dsc_f32_to_bf16(bits_f32(nans[i]));
        CHECK_MSG(bf16_is_nan(b) && ((b & 0x8000u) != 0) == ((nans[i] >> 31) != 0), "NaN 0x%08x -> 0x%04x", nans[i],
                  b);
    }
    /* signed zero and subnormals (bf16 shares f32's exponent range) */
    CHECK(dsc_f32_to_bf16(0.0f) == 0 && dsc_f32_to_bf16(-0.0f) == 0x8000);
    CHECK(signbit(dsc_bf16_to_f32(0x8000)) && dsc_bf16_to_f32(0x8000) == 0);
    CHECK(dsc_f32_to_bf16(bits_f32(0x00010000u)) == 0x0001);
    CHECK(dsc_f32_to_bf16(bits_f32(0x00008000u)) == 0x0000); /* tie to 0 (even) */
    CHECK(dsc_f32_to_bf16(bits_f32(0x00018000u)) == 0x0002); /* tie to 2 (even) */
    CHECK(dsc_f32_to_bf16(bits_f32(0x80008001u)) == 0x8001);
    CHECK(dsc_f32_to_bf16(bits_f32(0x007fffffu)) == 0x0080); /* largest f32 subnormal rounds to 2^-126 */
    CHECK(dsc_f32_to_bf16(1.0f / 3.0f) == 0x3eab);
}

/* ---- against the hardware (F16C) --------------------------------------------------- */

#ifdef HAVE_X86
__attribute__((target("f16c"))) static uint16_t hw_f32_to_f16(float f) {
    return (uint16_t)_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT);
}
__attribute__((target("f16c"))) static float hw_f16_to_f32(uint16_t h) { return _cvtsh_ss(h); }
#endif

static uint64_t xorshift(uint64_t *s) {
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static void test_f16_vs_hardware(void) {
#ifdef HAVE_X86
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("f16c")) {
        printf("test_dtype: no F16C on this CPU, hardware comparison skipped\n");
        return;
    }
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        const float a = dsc_f16_to_f32((uint16_t)h), b = hw_f16_to_f32((uint16_t)h);
        if (isnan(b) ? !isnan(a) : f32_bits(a) != f32_bits(b)) bad++;
    }
    CHECK_MSG(bad == 0, "%d halves decode differently from F16C", bad);

    /* 10M uniformly random f32 bit patterns, then 2M with exponents near the half range,
     * where rounding, subnormals and overflow happen. */
    uint64_t s = 0x9E3779B97F4A7C15ull;
    long mismatches = 0, nan_mismatch = 0;
    uint32_t first_bad = 0;
    for (long i = 0; i < 12000000; i++) {
        uint32_t x = (uint32_t)(xorshift(&s) >> 16);
        if (i >= 10000000) { /* exponent in [96, 144]: 2^-31 .. 2^17 */
            const uint32_t e = 96 + (uint32_t)((xorshift(&s) >> 20) % 49);
            x = (x & 0x807fffffu) | (e << 23);
        }
        const float f = bits_f32(x);
        const uint16_t a = dsc_f32_to_f16(f), b = hw_f32_to_f16(f);
        if (isnan(f)) {
            if (!f16_is_nan(a) || !f16_is_nan(b) || (a & 0x8000u) != (b & 0x8000u)) nan_mismatch++;
        } else if (a != b) {
            if (!mismatches) first_bad = x;
            mismatches++;
        }
    }
    CHECK_MSG(mismatches == 0, "%ld of 12M f32 patterns convert differently from F16C (first 0x%08x)", mismatches,
              first_bad);
    CHECK_MSG(nan_mismatch == 0, "%ld NaN patterns differ from F16C", nan_mismatch);
#else
    printf("test_dtype: not x86, hardware comparison skipped\n");
#endif
}

/* ---- dsc_convert ----------------------------------------------------------------- */

#define N_VALS 6
/* Values exact in every dtype (i32 sees their truncation). */
static const double vals[N_VALS] = {0, 1, -2, 0.5, 3, -100.5};

/* Reads element i of an array of dtype dt without dsc_convert. */
static double read_elem(const void *p, dsc_dtype_t dt, size_t i) {
    switch (dt) {
    case DSC_F32: return ((const float *)p)[i];
    case DSC_F64: return ((const double *)p)[i];
    case DSC_F16: return dsc_f16_to_f32(((const uint16_t *)p)[i]);
    case DSC_BF16: return dsc_bf16_to_f32(((const uint16_t *)p)[i]);
    case DSC_I32: return ((const int32_t *)p)[i];
    default: return NAN;
    }
}

/* Writes the values into an array of dtype dt without dsc_convert. */
static void write_vals(void *p, dsc_dtype_t dt) {
    for (size_t i = 0; i < N_VALS; i++) {
        switch (dt) {
        case DSC_F32: ((float *)p)[i] = (float)vals[i]; break;
        case DSC_F64: ((double *)p)[i] = vals[i]; break;
        case DSC_F16: ((uint16_t *)p)[i] = dsc_f32_to_f16((float)vals[i]); break;
        case DSC_BF16: ((uint16_t *)p)[i] = dsc_f32_to_bf16((float)vals[i]); break;
        case DSC_I32: ((int32_t *)p)[i] = (int32_t)vals[i]; break;
        default: break;
        }
    }
}

static void test_convert(void) {
    /* hand-checked encodings */
    const uint16_t f16_want[N_VALS] = {0x0000, 0x3c00, 0xc000, 0x3800, 0x4200, 0xd648};
    const uint16_t bf16_want[N_VALS] = {0x0000, 0x3f80, 0xc000, 0x3f00, 0x4040, 0xc2c9};
    uint16_t h[N_VALS];
    CHECK_OK(dsc_convert(h, DSC_F16, vals, DSC_F64, N_VALS));
    for (int i = 0; i < N_VALS; i++) CHECK_MSG(h[i] == f16_want[i], "f64->f16 %g: 0x%04x", vals[i], h[i]);
    CHECK_OK(dsc_convert(h, DSC_BF16, vals, DSC_F64, N_VALS));
    for (int i = 0; i < N_VALS; i++) CHECK_MSG(h[i] == bf16_want[i], "f64->bf16 %g: 0x%04x", vals[i], h[i]);

    for (int s = 0; s < DSC_DTYPE_COUNT; s++) {
        for (int d = 0; d < DSC_DTYPE_COUNT; d++) {
            double src[N_VALS], dst[N_VALS + 1]; /* big enough for any dtype */
            write_vals(src, (dsc_dtype_t)s);
            memset(dst, 0xAB, sizeof dst);
            CHECK_OK(dsc_convert(dst, (dsc_dtype_t)d, src, (dsc_dtype_t)s, N_VALS));
            for (size_t i = 0; i < N_VALS; i++) {
                double want = read_elem(src, (dsc_dtype_t)s, i);
                if (d == DSC_I32) want = trunc(want);
                const double got = read_elem(dst, (dsc_dtype_t)d, i);
                CHECK_MSG(got == want, "convert %s -> %s [%zu]: got %g want %g", dsc_dtype_name((dsc_dtype_t)s),
                          dsc_dtype_name((dsc_dtype_t)d), i, got, want);
            }
            /* nothing written past n elements */
            const unsigned char *tail = (const unsigned char *)dst + N_VALS * dsc_dtype_size((dsc_dtype_t)d);
            CHECK(tail[0] == 0xAB);
        }
    }
    /* special values through the generic paths */
    const double spec[3] = {INFINITY, -INFINITY, NAN};
    uint16_t hs[3];
    float fs[3];
    CHECK_OK(dsc_convert(hs, DSC_F16, spec, DSC_F64, 3));
    CHECK(hs[0] == 0x7c00 && hs[1] == 0xfc00 && f16_is_nan(hs[2]));
    CHECK_OK(dsc_convert(fs, DSC_F32, hs, DSC_F16, 3));
    CHECK(isinf(fs[0]) && fs[0] > 0 && isinf(fs[1]) && fs[1] < 0 && isnan(fs[2]));
    CHECK_OK(dsc_convert(hs, DSC_BF16, hs, DSC_F16, 0)); /* zero elements: nothing to do */
    int32_t is[3] = {7, 7, 7};
    CHECK_OK(dsc_convert(is, DSC_I32, spec, DSC_F64, 3));
    CHECK(is[0] == 0 && is[1] == 0 && is[2] == 0); /* non-finite -> 0 */
    const float trunc_src[4] = {2.9f, -2.9f, 0.99f, -0.5f};
    CHECK_OK(dsc_convert(is, DSC_I32, trunc_src, DSC_F32, 3));
    CHECK(is[0] == 2 && is[1] == -2 && is[2] == 0);
    /* errors */
    CHECK(dsc_convert(hs, (dsc_dtype_t)99, spec, DSC_F64, 3) == DSC_ERR_INVALID);
    CHECK(dsc_convert(hs, DSC_F16, spec, DSC_DTYPE_COUNT, 3) == DSC_ERR_INVALID);
    CHECK(dsc_convert(NULL, DSC_F16, spec, DSC_F64, 3) == DSC_ERR_INVALID);
    CHECK(dsc_convert(hs, DSC_F16, NULL, DSC_F64, 3) == DSC_ERR_INVALID);
    CHECK(dsc_convert(NULL, DSC_F16, NULL, DSC_F64, 0) == DSC_OK);

    /* sizes and names */
    CHECK(dsc_dtype_size(DSC_F32) == 4 && dsc_dtype_size(DSC_F16) == 2 && dsc_dtype_size(DSC_BF16) == 2);
    CHECK(dsc_dtype_size(DSC_I32) == 4 && dsc_dtype_size(DSC_F64) == 8 && dsc_dtype_size(DSC_DTYPE_COUNT) == 0);
    CHECK(strcmp(dsc_dtype_name(DSC_F32), "f32") == 0 && strcmp(dsc_dtype_name(DSC_F16), "f16") == 0);
    CHECK(strcmp(dsc_dtype_name(DSC_BF16), "bf16") == 0 && strcmp(dsc_dtype_name(DSC_I32), "i32") == 0);
    CHECK(strcmp(dsc_dtype_name(DSC_F64), "f64") == 0 && strcmp(dsc_dtype_name((dsc_dtype_t)-1), "?") == 0);
}

/* ---- allocator counters -------------------------------------------------------------- */

static void test_allocator(void) {
    dsc_ctx_t *ctx = check_ctx_new(1);
    for (int c = 0; c < DSC_MEM_CATEGORY_COUNT; c++) {
        dsc_mem_stats_t m = dsc_ctx_mem_stats(ctx, (dsc_mem_category_t)c);
        CHECK(m.live_bytes == 0 && m.peak_bytes == 0);
    }
    unsigned char *p = dsc_ctx_alloc(ctx, DSC_MEM_PARAMS, 1000);
    unsigned char *q = dsc_ctx_alloc(ctx, DSC_MEM_PARAMS, 500);
    unsigned char *r = dsc_ctx_alloc(ctx, DSC_MEM_OPTIM, 4096);
    CHECK(p && q && r);
    CHECK(((uintptr_t)p % 64) == 0 && ((uintptr_t)q % 64) == 0 && ((uintptr_t)r % 64) == 0);
    bool zero = true;
    unsigned char host[1000];
    memset(host, 0xff, sizeof host);
    CHECK_OK(dsc_ctx_to_host(ctx, host, p, sizeof host));
    for (int i = 0; p && i < 1000; i++) zero = zero && host[i] == 0;
    CHECK(zero);
    dsc_mem_stats_t m = dsc_ctx_mem_stats(ctx, DSC_MEM_PARAMS);
    CHECK(m.live_bytes == 1500 && m.peak_bytes == 1500);
    m = dsc_ctx_mem_stats(ctx, DSC_MEM_OPTIM);
    CHECK(m.live_bytes == 4096 && m.peak_bytes == 4096);
    m = dsc_ctx_mem_stats(ctx, DSC_MEM_GRADS);
    CHECK(m.live_bytes == 0 && m.peak_bytes == 0);
    dsc_ctx_release(ctx, DSC_MEM_PARAMS, p, 1000);
    m = dsc_ctx_mem_stats(ctx, DSC_MEM_PARAMS);
    CHECK(m.live_bytes == 500 && m.peak_bytes == 1500);
    unsigned char *s = dsc_ctx_alloc(ctx, DSC_MEM_PARAMS, 200); /* below the old peak */
    m = dsc_ctx_mem_stats(ctx, DSC_MEM_PARAMS);
    CHECK(m.live_bytes == 700 && m.peak_bytes == 1500);
    dsc_ctx_mem_reset_peaks(ctx);
    m = dsc_ctx_mem_stats(ctx, DSC_MEM_PARAMS);
    CHECK(m.live_bytes == 700 && m.peak_bytes == 700);
    CHECK(dsc_ctx_mem_stats(ctx, DSC_MEM_OPTIM).peak_bytes == 4096);
    dsc_ctx_release(ctx, DSC_MEM_PARAMS, q, 500);
    dsc_ctx_release(ctx, DSC_MEM_PARAMS, s, 200);
    dsc_ctx_release(ctx, DSC_MEM_OPTIM, r, 4096);
    dsc_ctx_release(ctx, DSC_MEM_OPTIM, NULL, 4096); /* NULL: no-op, counters unchanged */
    CHECK(dsc_ctx_mem_stats(ctx, DSC_MEM_PARAMS).live_bytes == 0);
    CHECK(dsc_ctx_mem_stats(ctx, DSC_MEM_OPTIM).live_bytes == 0);
    CHECK(dsc_ctx_mem_stats(ctx, DSC_MEM_OPTIM).peak_bytes == 4096);
    /* zero bytes still gives a distinct pointer */
    void *z = dsc_ctx_alloc(ctx, DSC_MEM_OTHER, 0);
    CHECK(z != NULL);
    dsc_ctx_release(ctx, DSC_MEM_OTHER, z, 0);
    /* unknown category: NULL and an error */
    CHECK(dsc_ctx_alloc(ctx, (dsc_mem_category_t)42, 16) == NULL);
    CHECK(dsc_ctx_status(ctx) == DSC_ERR_INVALID && strstr(dsc_ctx_errmsg(ctx), "42") != NULL);
    dsc_ctx_clear_error(ctx);
    m = dsc_ctx_mem_stats(ctx, (dsc_mem_category_t)42);
    CHECK(m.live_bytes == 0 && m.peak_bytes == 0);
    CHECK(dsc_ctx_alloc(NULL, DSC_MEM_PARAMS, 16) == NULL);
    dsc_ctx_free(ctx);
}

/* ---- arena ----------------------------------------------------------------------- */

static void test_arena(void) {
    dsc_ctx_t *ctx = check_ctx_new(2);
    CHECK(dsc_ctx_mem_stats(ctx, DSC_MEM_ACTIVATIONS).live_bytes == 0);
    dsc_tensor_t *a = dsc_tensor_new_1d(ctx, DSC_F32, 1000);
    size_t l1 = dsc_ctx_mem_stats(ctx, DSC_MEM_ACTIVATIONS).live_bytes;
    CHECK(a && l1 >= 4000);
    dsc_tensor_t *b = dsc_tensor_new_2d(ctx, DSC_F64, 100, 100);
    size_t l2 = dsc_ctx_mem_stats(ctx, DSC_MEM_ACTIVATIONS).live_bytes;
    CHECK(b && l2 >= l1 + 80000);
    /* op outputs count too */
    dsc_tensor_t *c = dsc_scale(ctx, b, 2.0);
    size_t l3 = dsc_ctx_mem_stats(ctx, DSC_MEM_ACTIVATIONS).live_bytes;
    CHECK(c && l3 >= l2 + 80000);
    /* a tensor larger than the arena's first chunk */
    dsc_tensor_t *big = dsc_tensor_new_1d(ctx, DSC_F32, 3 << 20);
    size_t l4 = dsc_ctx_mem_stats(ctx, DSC_MEM_ACTIVATIONS).live_bytes;
    CHECK(big && l4 >= l3 + ((size_t)12 << 20));
    CHECK(big && check_tensor_at(big, (3 << 20) - 1) == 0.0); /* zero-filled */
    CHECK(dsc_ctx_mem_stats(ctx, DSC_MEM_ACTIVATIONS).peak_bytes == l4);
    /* arena memory is not counted under the other categories */
    CHECK(dsc_ctx_mem_stats(ctx, DSC_MEM_PARAMS).live_bytes == 0);

    dsc_ctx_end_step(ctx);
    dsc_mem_stats_t m = dsc_ctx_mem_stats(ctx, DSC_MEM_ACTIVATIONS);
    CHECK(m.live_bytes == 0 && m.peak_bytes == l4);
    /* a smaller second step: live rises again from 0, the peak stays */
    dsc_tensor_t *d = dsc_tensor_new_1d(ctx, DSC_F32, 10);
    m = dsc_ctx_mem_stats(ctx, DSC_MEM_ACTIVATIONS);
    CHECK(d && m.live_bytes >= 40 && m.live_bytes < l1 && m.peak_bytes == l4);
    for (int i = 0; d && i < 10; i++) CHECK(check_tensor_at(d, i) == 0.0); /* reused memory is zeroed */
    dsc_ctx_end_step(ctx);
    CHECK(dsc_ctx_mem_stats(ctx, DSC_MEM_ACTIVATIONS).live_bytes == 0);
    dsc_ctx_mem_reset_peaks(ctx);
    CHECK(dsc_ctx_mem_stats(ctx, DSC_MEM_ACTIVATIONS).peak_bytes == 0);
    /* many steps: no growth */
    for (int step = 0; step < 5; step++) {
        for (int k = 0; k < 100; k++) CHECK(dsc_tensor_new_1d(ctx, DSC_F32, 1000) != NULL);
        dsc_ctx_end_step(ctx);
    }
    m = dsc_ctx_mem_stats(ctx, DSC_MEM_ACTIVATIONS);
    CHECK(m.live_bytes == 0 && m.peak_bytes >= 400000 && m.peak_bytes < 500000);
    dsc_ctx_free(ctx);
}

int main(void) {
    test_f16_exhaustive();
    test_f16_ties();
    test_f16_special();
    test_bf16();
    test_f16_vs_hardware();
    test_convert();
    test_allocator();
    test_arena();
    return check_finish("test_dtype");
}

/* Body of the SIMD f32 kernels (contract in cpu_simd.h). Included once by each
 * cpu_simd_<isa>.c under that ISA's target, with VW (floats per vector) and SIMD_TABLE (the
 * name of the table to define) set; everything here is static to that file.
 *
 * Vectors are GCC/clang generic vectors of VW floats, so one body serves SSE2, AVX2 and
 * AVX-512. Every output element is computed by the same sequence of IEEE operations as the
 * scalar f32 kernels in cpu_basic.c / cpu_nn.c (the vectors run across independent outputs;
 * sums keep their order; the including file turns FMA contraction off), hence the same bits
 * on every path and for any thread count. */
#include <stdint.h>
#include <string.h>

typedef float vf __attribute__((vector_size(VW * 4)));
typedef int32_t vi __attribute__((vector_size(VW * 4)));

#define ALWAYS_INLINE static inline __attribute__((always_inline))

ALWAYS_INLINE vf vld(const float *p) {
    vf v;
    memcpy(&v, p, sizeof v);
    return v;
}
ALWAYS_INLINE void vst(float *p, vf v) { memcpy(p, &v, sizeof v); }
ALWAYS_INLINE vf vsplat(float x) { return (vf){0} + x; }

/* ---- GELU ------------------------------------------------------------------------ */

/* expf_vec of cpu_basic.c, lane by lane: clamp to [-87, 88], e^x = 2^n e^r with
 * n = round(x / ln 2) and e^r by a degree-6 Taylor polynomial (< 2 ulp). */
ALWAYS_INLINE vf vexp(vf x) {
    const vf lo = vsplat(-87.0f), hi = vsplat(88.0f);
    vi m = x < lo;
    x = (vf)(((vi)x & ~m) | ((vi)lo & m));
    m = x > hi;
    x = (vf)(((vi)x & ~m) | ((vi)hi & m));
    const vf n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    const vf r = (x - n * 0.693145751953125f) - n * 1.42860682030941723e-6f;
    vf p = vsplat(1.0f / 720.0f);
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    const vi bits = (__builtin_convertvector(n, vi) + 127) << 23;
    return p * (vf)bits;
}

#define SIMD_GELU_C 0.79788456080286535587989211986876 /* sqrt(2/pi) */
#define SIMD_GELU_A 0.044715

/* y = x sigmoid(2u), u = c (x + a x^3): the expression of cpu_basic.c's GELU. */
ALWAYS_INLINE vf vgelu(vf v) {
    return v / (1.0f + vexp((float)(-2 * SIMD_GELU_C) * (v + (float)SIMD_GELU_A * v * v * v)));
}

ALWAYS_INLINE vf vgelu_backward(vf v, vf dy, vf dx) {
    const vf s = 1.0f / (1.0f + vexp((float)(-2 * SIMD_GELU_C) * (v + (float)SIMD_GELU_A * v * v * v)));
    const vf d = s + v * s * (1.0f - s) * (float)(2 * SIMD_GELU_C) * (1.0f + (float)(3 * SIMD_GELU_A) * v * v);
    return dx + d * dy;
}

static void simd_gelu(int64_t n, const float *x, float *y) {
    int64_t i = 0;
    for (; i + VW <= n; i += VW) vst(y + i, vgelu(vld(x + i)));
    if (i < n) { /* the tail through one padded vector: the same operations */
        float tx[VW] = {0}, ty[VW];
        memcpy(tx, x + i, (size_t)(n - i) * sizeof *tx);
        vst(ty, vgelu(vld(tx)));
        memcpy(y + i, ty, (size_t)(n - i) * sizeof *ty);
    }
}

static void simd_gelu_backward(int64_t n, const float *x, const float *dy, float *dx) {
    int64_t i = 0;
    for (; i + VW <= n; i += VW) vst(dx + i, vgelu_backward(vld(x + i), vld(dy + i), vld(dx + i)));
    if (i < n) {
        float tx[VW] = {0}, tdy[VW] = {0}, tdx[VW] = {0};
        const size_t nb = (size_t)(n - i) * sizeof(float);
        memcpy(tx, x + i, nb);
        memcpy(tdy, dy + i, nb);
        memcpy(tdx, dx + i, nb);
        vst(tdx, vgelu_backward(vld(tx), vld(tdy), vld(tdx)));
        memcpy(dx + i, tdx, nb);
    }
}

/* ---- column sums ------------------------------------------------------------------- */

typedef double vdw __attribute__((vector_size(VW * 8))); /* VW doubles */

/* acc[j] += sum_r x[r * ld + j] (times w[r * ld + j] when w is set), rows in order, in double. */
static void simd_col_sums(int64_t n_rows, int64_t n_cols, int64_t ld, const float *x, const float *w, double *acc) {
    int64_t j = 0;
    for (; j + 2 * VW <= n_cols; j += 2 * VW) {
        vdw a0, a1;
        memcpy(&a0, acc + j, sizeof a0);
        memcpy(&a1, acc + j + VW, sizeof a1);
        for (int64_t r = 0; r < n_rows; r++) {
            vdw x0 = __builtin_convertvector(vld(x + r * ld + j), vdw);
            vdw x1 = __builtin_convertvector(vld(x + r * ld + j + VW), vdw);
            if (w) {
                x0 = x0 * __builtin_convertvector(vld(w + r * ld + j), vdw);
                x1 = x1 * __builtin_convertvector(vld(w + r * ld + j + VW), vdw);
            }
            a0 += x0;
            a1 += x1;
        }
        memcpy(acc + j, &a0, sizeof a0);
        memcpy(acc + j + VW, &a1, sizeof a1);
    }
    for (; j < n_cols; j++) {
        double a = acc[j];
        for (int64_t r = 0; r < n_rows; r++)
            a += w ? (double)x[r * ld + j] * (double)w[r * ld + j] : (double)x[r * ld + j];
        acc[j] = a;
    }
}

/* ---- softmax rows ------------------------------------------------------------------ */

/* Sums in double over 16 fixed lanes (element i goes to lane i % 16, each lane in index
 * order), the lanes then added in lane order: one order for every vector width, so every
 * path gives the same bits, and 16 independent chains instead of one. NACC accumulators of
 * VW doubles hold the 16 lanes. */
#define NACC (16 / VW)

ALWAYS_INLINE double lanes_total(const vdw *acc, const double *tail_terms, int64_t n_tail) {
    double lane[16];
    memcpy(lane, acc, sizeof lane);
    for (int64_t l = 0; l < n_tail; l++) lane[l] += tail_terms[l];
    double total = 0;
    for (int l = 0; l < 16; l++) total += lane[l];
    return total;
}

/* e[c] = exp(x[c] - sub) (vexp) for c < n (x and e may alias); returns the sum of the e[c]
 * in double over the 16 lanes. */
static double exp_sum_row(int64_t n, const float *x, float sub, float *e) {
    vdw acc[NACC];
    memset(acc, 0, sizeof acc);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int u = 0; u < NACC; u++) {
            const vf v = vexp(vld(x + i + u * VW) - sub);
            vst(e + i + u * VW, v);
            acc[u] += __builtin_convertvector(v, vdw);
        }
    double tail[16];
    const int64_t n_tail = n - i;
    if (n_tail > 0) {
        float tx[16] = {0}, te[16];
        memcpy(tx, x + i, (size_t)n_tail * sizeof *tx);
        for (int u = 0; u < NACC; u++) vst(te + u * VW, vexp(vld(tx + u * VW) - sub));
        memcpy(e + i, te, (size_t)n_tail * sizeof *te);
        for (int64_t l = 0; l < n_tail; l++) tail[l] = te[l];
    }
    return lanes_total(acc, tail, n_tail);
}

/* The same sum without storing the exponentials (the cross-entropy's log-sum-exp). */
static double simd_exp_sum(int64_t n, const float *x, float sub) {
    vdw acc[NACC];
    memset(acc, 0, sizeof acc);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int u = 0; u < NACC; u++) acc[u] += __builtin_convertvector(vexp(vld(x + i + u * VW) - sub), vdw);
    double tail[16];
    const int64_t n_tail = n - i;
    if (n_tail > 0) {
        float tx[16] = {0}, te[16];
        memcpy(tx, x + i, (size_t)n_tail * sizeof *tx);
        for (int u = 0; u < NACC; u++) vst(te + u * VW, vexp(vld(tx + u * VW) - sub));
        for (int64_t l = 0; l < n_tail; l++) tail[l] = te[l];
    }
    return lanes_total(acc, tail, n_tail);
}

/* d[j] = g * exp(x[j] - sub) (accumulate: d[j] += ...) for j < n; d may alias x. */
static void simd_exp_scale(int64_t n, const float *x, float sub, float g, float *d, int accumulate) {
    int64_t i = 0;
    for (; i + VW <= n; i += VW) {
        const vf v = g * vexp(vld(x + i) - sub);
        vst(d + i, accumulate ? vld(d + i) + v : v);
    }
    if (i < n) {
        float tx[VW] = {0}, td[VW] = {0};
        const size_t nb = (size_t)(n - i) * sizeof(float);
        memcpy(tx, x + i, nb);
        if (accumulate) memcpy(td, d + i, nb);
        const vf v = g * vexp(vld(tx) - sub);
        vst(td, accumulate ? vld(td) + v : v);
        memcpy(d + i, td, nb);
    }
}

ALWAYS_INLINE float exp1(float x) {
    const vf v = vexp(vsplat(x));
    return v[0];
}

/* ---- blocked products for attention -------------------------------------------------- */

/* Rows of C per block: the accumulators of RB rows x 2 vectors stay in registers (32 of
 * them with AVX-512, 16 otherwise). The block size changes no result. */
#if VW >= 16
#define RB 8
#else
#define RB 4
#endif

/* A block of at most RB rows r of C, columns [0, n_cols):
 *     C[r][j] = (init ? C[r][j] : 0) + sum_{kk = lo[r]}^{hi[r] - 1} A(r, kk) * B[kk][j]
 * with the sum taken in increasing kk, one multiply and one add per term (the order of the
 * scalar loops it replaces). A(r, kk) = a[r * a_rs + kk * a_ks]; B rows have stride b_ks,
 * C rows stride c_rs. Columns go two vectors, then one, then one at a time. */
typedef struct {
    const float *a;
    int64_t a_rs, a_ks;
    const float *b;
    int64_t b_ks;
    float *c;
    int64_t c_rs;
    int64_t lo[RB], hi[RB];
    int init;
} blk_t;

/* One term kk of the sum for every row of the block (rows outside their range skip it). */
#define BLK_TERM(NR, NVV, CHECK)                                                                        \
    do {                                                                                                 \
        TY bv[NVV];                                                                                      \
        for (int u = 0; u < (NVV); u++) bv[u] = LD(g->b + kk * g->b_ks + j + u * VW);                    \
        for (int r = 0; r < (NR); r++) {                                                                 \
            if ((CHECK) && (kk < g->lo[r] || kk >= g->hi[r])) continue;                                  \
            const float av = g->a[r * g->a_rs + kk * g->a_ks];                                           \
            for (int u = 0; u < (NVV); u++) acc[r][u] += av * bv[u];                                     \
        }                                                                                                \
    } while (0)

/* One column chunk of NV vectors (NV = 0: one scalar column) at column j, for NR rows: the
 * terms below the common range, the common range (every row), the terms above it. */
#define BLK_CHUNK(NR, NV)                                                                                    \
    do {                                                                                                     \
        enum { NVV = (NV) ? (NV) : 1 };                                                                      \
        TY acc[NR][NVV];                                                                                     \
        for (int r = 0; r < (NR); r++)                                                                       \
            for (int u = 0; u < NVV; u++) acc[r][u] = g->init ? LD(g->c + r * g->c_rs + j + u * VW) : ZERO; \
        int64_t lo_min = g->lo[0], lo_max = g->lo[0], hi_min = g->hi[0], hi_max = g->hi[0];                  \
        for (int r = 1; r < (NR); r++) {                                                                     \
            if (g->lo[r] < lo_min) lo_min = g->lo[r];                                                        \
            if (g->lo[r] > lo_max) lo_max = g->lo[r];                                                        \
            if (g->hi[r] < hi_min) hi_min = g->hi[r];                                                        \
            if (g->hi[r] > hi_max) hi_max = g->hi[r];                                                        \
        }                                                                                                    \
        int64_t c0 = lo_max, c1 = hi_min;                                                                    \
        if (c1 <= c0) c0 = c1 = hi_max; /* no common range: every term checked */                           \
        int64_t kk = lo_min;                                                                                 \
        for (; kk < c0; kk++) BLK_TERM(NR, NVV, 1);                                                          \
        for (; kk < c1; kk++) BLK_TERM(NR, NVV, 0);                                                          \
        for (; kk < hi_max; kk++) BLK_TERM(NR, NVV, 1);                                                      \
        for (int r = 0; r < (NR); r++)                                                                       \
            for (int u = 0; u < NVV; u++) ST(g->c + r * g->c_rs + j + u * VW, acc[r][u]);                    \
    } while (0)

ALWAYS_INLINE void blk_rows(const blk_t *g, int64_t n_cols, const int nr) {
    int64_t j = 0;
#define TY vf
#define LD(p) vld(p)
#define ST(p, v) vst((p), (v))
#define ZERO ((vf){0})
    for (; j + 2 * VW <= n_cols; j += 2 * VW) BLK_CHUNK(nr, 2);
    for (; j + VW <= n_cols; j += VW) BLK_CHUNK(nr, 1);
#undef TY
#undef LD
#undef ST
#undef ZERO
#define TY float
#define LD(p) (*(p))
#define ST(p, v) (*(p) = (v))
#define ZERO 0.0f
    for (; j < n_cols; j++) BLK_CHUNK(nr, 0);
#undef TY
#undef LD
#undef ST
#undef ZERO
}

enum { PROD_FULL, PROD_LOWER, PROD_UPPER };

/* For rows r < n_rows of C: C[r][:] (+)= sum_kk A(r, kk) B[kk][:] (see blk_t) with kk over
 * [0, k_n) (PROD_FULL), [0, r] (PROD_LOWER) or [r, k_n) (PROD_UPPER). With tri_cols set, a
 * block of rows r0.. needs only the columns below r0 + its row count (causal scores), rounded
 * up to whole vectors and at most n_cols; the others of those rows are left unspecified. */
static void prod(int kind, int64_t n_rows, int64_t k_n, const float *a, int64_t a_rs, int64_t a_ks, const float *b,
                 int64_t b_ks, float *c, int64_t c_rs, int64_t n_cols, int tri_cols, int init) {
    for (int64_t r0 = 0; r0 < n_rows; r0 += RB) {
        const int nr = n_rows - r0 < RB ? (int)(n_rows - r0) : RB;
        blk_t g = {.a = a + r0 * a_rs, .a_rs = a_rs, .a_ks = a_ks, .b = b, .b_ks = b_ks, .c = c + r0 * c_rs,
                   .c_rs = c_rs, .init = init};
        for (int r = 0; r < nr; r++) {
            g.lo[r] = kind == PROD_UPPER ? r0 + r : 0;
            g.hi[r] = kind == PROD_LOWER ? r0 + r + 1 : k_n;
        }
        int64_t nc = n_cols;
        if (tri_cols) {
            nc = (r0 + nr + VW - 1) / VW * VW;
            if (nc > n_cols) nc = n_cols;
        }
        switch (nr) { /* constant row counts, so the accumulators live in registers */
#if RB >= 8
        case 8: blk_rows(&g, nc, 8); break;
        case 7: blk_rows(&g, nc, 7); break;
        case 6: blk_rows(&g, nc, 6); break;
        case 5: blk_rows(&g, nc, 5); break;
#endif
        case 4: blk_rows(&g, nc, 4); break;
        case 3: blk_rows(&g, nc, 3); break;
        case 2: blk_rows(&g, nc, 2); break;
        case 1: blk_rows(&g, nc, 1); break;
        default: break;
        }
    }
}

/* dst[i][j] = src[j * ld + i] for i < hs, j < t; columns t..tp zero. */
static void transpose_head(int64_t t, int64_t hs, int64_t ld, const float *src, int64_t tp, float *dst) {
    for (int64_t i = 0; i < hs; i++) {
        float *d = dst + i * tp;
        for (int64_t j = 0; j < t; j++) d[j] = src[j * ld + i];
        for (int64_t j = t; j < tp; j++) d[j] = 0;
    }
}

/* ---- flash attention ------------------------------------------------------------------ */

#define FB DSC_FLASH_BLOCK

/* Forward of query rows [i0, i0 + nq) of one head: key tiles of FB in order, an online
 * softmax per row (running max m, running sum l in double, the output accumulator rescaled
 * when the max grows), then out = acc / l and lse = m + log(l). The tile on the diagonal
 * (j0 == i0) computes only its lower triangle. */
static void simd_flash_forward(const dsc_flash_head_t *a, int64_t i0, int64_t nq, float *scratch) {
    const int64_t hs = a->hs, ld = a->ld;
    if (nq <= 0 || hs <= 0) return;
    float *kt = scratch, *sc = kt + hs * FB, *acc = sc + FB * FB, *m = acc + FB * hs, *w = m + FB;
    double l[FB];
    for (int64_t r = 0; r < nq; r++) {
        m[r] = -INFINITY;
        l[r] = 0;
    }
    /* the first tile writes acc (init 0), later ones rescale and add to it */
    for (int64_t j0 = 0; j0 <= i0; j0 += FB) {
        const int diag = j0 == i0;
        const int64_t nk = diag ? nq : FB;
        transpose_head(nk, hs, ld, a->k + j0 * ld, FB, kt);
        prod(PROD_FULL, nq, hs, a->q + i0 * ld, ld, 1, kt, FB, sc, FB, nk, diag, 0);
        for (int64_t r = 0; r < nq; r++) {
            float *sr = sc + r * FB;
            const int64_t ncol = diag ? r + 1 : nk;
            float mx = -INFINITY;
            int64_t c0 = 0;
            if (ncol >= VW) {
                vf vm = vsplat(-INFINITY);
                for (; c0 + VW <= ncol; c0 += VW) {
                    const vf v = vld(sr + c0) * a->scale;
                    vst(sr + c0, v);
                    const vi gt = v > vm;
                    vm = (vf)(((vi)v & gt) | ((vi)vm & ~gt));
                }
                for (int lane = 0; lane < VW; lane++)
                    if (vm[lane] > mx) mx = vm[lane];
            }
            for (; c0 < ncol; c0++) {
                sr[c0] = sr[c0] * a->scale;
                if (sr[c0] > mx) mx = sr[c0];
            }
            const float m_new = mx > m[r] ? mx : m[r];
            const float alpha = j0 == 0 ? 1.0f : exp1(m[r] - m_new);
            /* (entries right of the diagonal stay unset: PROD_LOWER below never reads them) */
            const double sum = exp_sum_row(ncol, sr, m_new, sr);
            l[r] = l[r] * alpha + sum;
            if (a->drop_thr) {
                dsc__philox_keep_span(a->seed, a->pos0 + (uint64_t)((i0 + r) * a->t + j0), ncol, a->drop_thr,
                                      a->drop_scale, w);
                for (int64_t c = 0; c < ncol; c++) sr[c] = sr[c] * w[c];
            }
            if (j0 > 0 && alpha != 1.0f) {
                float *ar = acc + r * hs;
                for (int64_t d = 0; d < hs; d++) ar[d] = ar[d] * alpha;
            }
            m[r] = m_new;
        }
        prod(diag ? PROD_LOWER : PROD_FULL, nq, nk, sc, FB, 1, a->v + j0 * ld, ld, acc, hs, hs, 0, j0 > 0);
    }
    for (int64_t r = 0; r < nq; r++) {
        const float inv = (float)(1.0 / l[r]);
        const float *ar = acc + r * hs;
        float *o = a->out + (i0 + r) * a->ldo;
        for (int64_t d = 0; d < hs; d++) o[d] = ar[d] * inv;
        a->lse[i0 + r] = (float)((double)m[r] + log(l[r]));
    }
}

/* Backward of one head, query blocks in order, key tiles in order within each: recompute
 * s and p = exp(s - lse) per tile, dp = dout v^T (through the dropout mask),
 * ds = p (dp - D) scale with D = dout . out per row; dq += ds k, dk += ds^T q,
 * dv += p'^T dout. One task per head, so every sum has one order for any thread count. */
static void simd_flash_backward(const dsc_flash_head_t *a, float *scratch) {
    const int64_t t = a->t, hs = a->hs, ld = a->ld, ldo = a->ldo;
    if (t <= 0 || hs <= 0) return;
    const int64_t tp = dsc__simd_tpad(t);
    float *kt = scratch, *vt = kt + hs * tp, *ps = vt + hs * tp, *ds = ps + FB * FB, *dd = ds + FB * FB,
          *w = dd + FB;
    transpose_head(t, hs, ld, a->k, tp, kt);
    transpose_head(t, hs, ld, a->v, tp, vt);
    for (int64_t i0 = 0; i0 < t; i0 += FB) {
        const int64_t nq = t - i0 < FB ? t - i0 : FB;
        for (int64_t r = 0; r < nq; r++) {
            const float *g = a->dout + (i0 + r) * ldo, *o = a->out + (i0 + r) * ldo;
            double s = 0;
            for (int64_t d = 0; d < hs; d++) s += (double)g[d] * (double)o[d];
            dd[r] = (float)s;
        }
        for (int64_t j0 = 0; j0 <= i0; j0 += FB) {
            const int diag = j0 == i0;
            const int64_t nk = diag ? nq : FB;
            prod(PROD_FULL, nq, hs, a->q + i0 * ld, ld, 1, kt + j0, tp, ps, FB, nk, diag, 0);
            prod(PROD_FULL, nq, hs, a->dout + i0 * ldo, ldo, 1, vt + j0, tp, ds, FB, nk, diag, 0);
            for (int64_t r = 0; r < nq; r++) {
                float *pr = ps + r * FB, *dr = ds + r * FB;
                const int64_t ncol = diag ? r + 1 : nk, nv = (ncol + VW - 1) / VW * VW;
                const float lse = a->lse[i0 + r], dr0 = dd[r];
                for (int64_t c = 0; c < nv; c += VW) vst(pr + c, vexp(vld(pr + c) * a->scale - lse));
                if (a->drop_thr) {
                    dsc__philox_keep_span(a->seed, a->pos0 + (uint64_t)((i0 + r) * t + j0), ncol, a->drop_thr,
                                          a->drop_scale, w);
                    for (int64_t c = 0; c < ncol; c++) {
                        const float p = pr[c];
                        dr[c] = p * (dr[c] * w[c] - dr0) * a->scale;
                        pr[c] = p * w[c];
                    }
                } else {
                    for (int64_t c = 0; c < nv; c += VW) {
                        const vf p = vld(pr + c);
                        vst(dr + c, p * (vld(dr + c) - dr0) * a->scale);
                    }
                }
            }
            /* on the diagonal tile the triangular products read only j <= i */
            prod(diag ? PROD_LOWER : PROD_FULL, nq, nk, ds, FB, 1, a->k + j0 * ld, ld, a->dq + i0 * ld, ld, hs, 0, 1);
            prod(diag ? PROD_UPPER : PROD_FULL, nk, nq, ds, 1, FB, a->q + i0 * ld, ld, a->dk + j0 * ld, ld, hs, 0, 1);
            prod(diag ? PROD_UPPER : PROD_FULL, nk, nq, ps, 1, FB, a->dout + i0 * ldo, ldo, a->dv + j0 * ld, ld, hs,
                 0, 1);
        }
    }
}

#undef FB

const dsc_cpu_simd_t SIMD_TABLE = {
    .name = SIMD_NAME,
    .gelu = simd_gelu,
    .gelu_backward = simd_gelu_backward,
    .col_sums = simd_col_sums,
    .exp_sum = simd_exp_sum,
    .exp_scale = simd_exp_scale,
    .flash_forward = simd_flash_forward,
    .flash_backward = simd_flash_backward,
};

/* The CUDA mixed-precision and optimizer kernels against the CPU kernels, bit for bit:
 *  - amp: the overflow scan with sum of squares (per segment and total) vs
 *    dsc__amp_scan_segments_isa(SCALAR); accumulate vs dsc_amp_accumulate; unscale + clip vs
 *    dsc_amp_unscale_clip;
 *  - optim: every element-wise optimizer kernel (Adam/AdamW, Lion, Adagrad, SGD, RMSprop,
 *    Adamax, Lamb pass 2) in its configurations vs dsc__optim_kernels_scalar, with f32 and
 *    16-bit gradients and the bf16/f16 parameter copies; Lamb pass 1's block norms, the trust
 *    ratios computed on the device and pass 2 with the per-segment coefficients.
 * Each kernel also runs twice with identical bits. Exits 77 (skipped) without a GPU. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amp/amp_internal.h"
#include "cuda_check.h"
#include "optim/optim_internal.h"

/* ---- amp -------------------------------------------------------------------------------- */

static void t_scan(dsc_dtype_t dt, bool poison) {
    const size_t n = 100000;
    cc_buf_t x = cc_new(dt, (int64_t)n, -3, 3);
    if (poison) { /* an inf in segment 2 and a NaN in segment 4 */
        x.init[20000] = INFINITY;
        x.init[70001] = NAN;
        cc_reset(&x);
    }
    void *raw = cc_raw(x.d, n * dsc_dtype_size(dt));
    const dsc_amp_segment_t segs[] = {{0, 8192}, {8192, 1}, {8193, 30000}, {40000, 0}, {38193, 40000},
                                      {5, 70000}, {99999, 1}, {78193, 21807}};
    const size_t ns = sizeof segs / sizeof segs[0];
    bool c_seg_ovf[8], c_ovf = false;
    double c_seg_sq[8], c_sq = 0;
    size_t c_bad = 0;
    dsc__amp_scan_segments_isa(DSC_AMP_ISA_SCALAR, raw, dt, n, segs, ns, c_seg_ovf, c_seg_sq, &c_ovf, &c_sq, &c_bad);
    dsc_amp_segment_t *dsegs = cc_upload(segs, sizeof segs);
    const size_t wsb = dsc_cuda_amp_scan_workspace_bytes(segs, ns);
    void *ws = NULL, *outs = NULL;
    CK(dsc_cuda_malloc(&ws, wsb));
    CK(dsc_cuda_malloc(&outs, 256));
    uint8_t *d_seg_ovf = (uint8_t *)outs, *d_ovf = (uint8_t *)outs + 8;
    double *d_seg_sq = (double *)((char *)outs + 16), *d_sq = (double *)((char *)outs + 96);
    uint64_t *d_bad = (uint64_t *)((char *)outs + 104);
    unsigned char run[2][112];
    for (int r = 0; r < 2; r++) {
        CK(dsc_cuda_memset_async(outs, 0xAB, 256, NULL));
        CK(dsc_cuda_amp_scan_segments(NULL, x.d, dt, dsegs, ns, ws, wsb, d_seg_ovf, d_seg_sq, d_ovf, d_sq, d_bad));
        CK(dsc_cuda_copy_d2h_async(run[r], outs, 112, NULL));
    }
    const char *what = poison ? "amp scan (with inf/NaN)" : "amp scan";
    cc_repeat(what, dt, run[0], run[1], 112);
    uint8_t want_ovf[8];
    for (size_t s = 0; s < ns; s++) want_ovf[s] = c_seg_ovf[s];
    char name[96];
    snprintf(name, sizeof name, "%s seg overflow", what);
    cc_bits(name, dt, run[0], want_ovf, ns);
    snprintf(name, sizeof name, "%s overflow", what);
    const uint8_t w1 = c_ovf;
    cc_bits(name, dt, run[0] + 8, &w1, 1);
    if (!poison) { /* with inf/NaN the sums are inf/NaN: the flags are the contract */
        snprintf(name, sizeof name, "%s seg sumsq", what);
        cc_bits(name, dt, run[0] + 16, c_seg_sq, ns * 8);
        snprintf(name, sizeof name, "%s total sumsq", what);
        cc_bits(name, dt, run[0] + 96, &c_sq, 8);
    }
    const uint64_t wb = c_bad;
    snprintf(name, sizeof name, "%s n_bad", what);
    cc_bits(name, dt, run[0] + 104, &wb, 8);
    free(raw);
    dsc_cuda_free(ws), dsc_cuda_free(outs), dsc_cuda_free(dsegs);
    cc_free(&x);
}

static void t_accumulate(dsc_dtype_t dt) {
    const int64_t n = 54321;
    cc_buf_t g = cc_new(dt, n, -2, 2), acc = cc_new(DSC_F32, n, -1, 1);
    float *ref = malloc((size_t)n * 4);
    memcpy(ref, acc.init, (size_t)n * 4);
    void *graw = cc_raw(g.d, (size_t)n * dsc_dtype_size(dt));
    dsc__amp_accumulate_isa(DSC_AMP_ISA_SCALAR, ref, graw, dt, (size_t)n); /* every ISA gives these bits */
    cc_reset(&acc);
    CK(dsc_cuda_amp_accumulate(NULL, (float *)acc.d, g.d, dt, n));
    float *r1 = cc_get(&acc);
    cc_reset(&acc);
    CK(dsc_cuda_amp_accumulate(NULL, (float *)acc.d, g.d, dt, n));
    float *r2 = cc_get(&acc);
    cc_repeat("amp accumulate", dt, r1, r2, (size_t)n * 4);
    cc_bits("amp accumulate vs CPU", dt, r1, ref, (size_t)n * 4);
    free(ref), free(graw), free(r1), free(r2);
    cc_free(&g), cc_free(&acc);
}

static void t_unscale_clip(void) {
    const double cases[][3] = {{1234.5, 65536, 1.0}, {10.0, 1024, 100.0}, {3e6, 32768, 0.0}, {INFINITY, 2, 1.0}};
    double *dsq = NULL;
    float *dout = NULL;
    double *dnorm = NULL;
    CK(dsc_cuda_malloc((void **)&dsq, 8));
    CK(dsc_cuda_malloc((void **)&dout, 4));
    CK(dsc_cuda_malloc((void **)&dnorm, 16));
    for (int c = 0; c < 4; c++) {
        const double sn = cases[c][0], sq = sn * sn;
        CK(dsc_cuda_copy_h2d_async(dsq, &sq, 8, NULL));
        CK(dsc_cuda_amp_unscale_clip(NULL, dsq, cases[c][1], NULL, cases[c][2], dout, dnorm));
        float gs = 0;
        double nm[2];
        CK(dsc_cuda_copy_d2h_async(&gs, dout, 4, NULL));
        CK(dsc_cuda_copy_d2h_async(nm, dnorm, 16, NULL));
        dsc_amp_unscale_clip_t uc;
        const dsc_status_t st = dsc_amp_unscale_clip(sqrt(sq), cases[c][1], cases[c][2], &uc);
        const float want = st == DSC_OK ? (float)uc.grad_scale : 0.0f;
        const double wn[2] = {uc.norm, uc.norm_clipped};
        char name[64];
        snprintf(name, sizeof name, "amp unscale_clip case %d scale", c);
        cc_bits(name, DSC_F32, &gs, &want, 4);
        snprintf(name, sizeof name, "amp unscale_clip case %d norms", c);
        cc_bits(name, DSC_F64, nm, wn, 16);
    }
    dsc_cuda_free(dsq), dsc_cuda_free(dout), dsc_cuda_free(dnorm);
}

/* ---- optimizers ----------------------------------------------------------------------------- */

typedef struct optim_case {
    const char *name;
    dsc_cuda_optim_kind_t kind;
    int n_state;
    dsc_optim_scalars_t s;
} optim_case_t;

static dsc_optim_scalars_t base_scalars(void) {
    dsc_optim_scalars_t s;
    memset(&s, 0, sizeof s);
    s.gs = 0.5f;
    s.b1 = 0.9f, s.b2 = 0.95f, s.omb1 = 1.0f - 0.9f, s.omb2 = 1.0f - 0.95f;
    s.eps = 1e-8f, s.wd = 0, s.decay = 1.0f, s.nstep = -1e-3f / 0.1f, s.bc2s = sqrtf(0.05f);
    s.lr = 1e-3f, s.nlr = -1e-3f, s.coef = -2e-3f;
    return s;
}

static dsc_optim_kernel_fn cpu_kernel(dsc_cuda_optim_kind_t k) {
    const dsc_optim_kernels_t *t = &dsc__optim_kernels_scalar;
    switch (k) {
    case DSC_CUDA_OPTIM_ADAM: return t->adam;
    case DSC_CUDA_OPTIM_LION: return t->lion;
    case DSC_CUDA_OPTIM_ADAGRAD: return t->adagrad;
    case DSC_CUDA_OPTIM_SGD: return t->sgd;
    case DSC_CUDA_OPTIM_RMSPROP: return t->rmsprop;
    case DSC_CUDA_OPTIM_ADAMAX: return t->adamax;
    default: return t->lamb2;
    }
}

static void run_optim_case(const optim_case_t *c, dsc_dtype_t g_dt, int half_kind) {
    /* not a multiple of 4: Adam's vector kernel (four elements per thread) and its scalar tail */
    const int64_t n = 40003;
    dsc_optim_scalars_t s = c->s;
    s.half = half_kind;
    cc_buf_t p = cc_new(DSC_F32, n, -1, 1), g = cc_new(g_dt, n, -2, 2);
    cc_buf_t st[3] = {cc_new(DSC_F32, n, -0.1, 0.1), cc_new(DSC_F32, n, 0.0, 0.01), cc_new(DSC_F32, n, -0.01, 0.01)};
    if (c->kind == DSC_CUDA_OPTIM_RMSPROP) /* square_avg >= grad_avg^2 (centered) */
        for (int64_t i = 0; i < n; i++) st[0].init[i] = 0.01f + fabsf(st[0].init[i]);
    /* Adagrad's sum of squares is never negative: a negative one made sqrt NaN, and the two
     * devices write different NaN bit patterns (the first GPU run, H100, failed on exactly that). */
    if (c->kind == DSC_CUDA_OPTIM_ADAGRAD)
        for (int64_t i = 0; i < n; i++) st[0].init[i] = fabsf(st[0].init[i]);
    for (int k = 0; k < 3; k++) cc_reset(&st[k]);
    uint16_t *dhalf = NULL;
    if (half_kind) CK(dsc_cuda_malloc((void **)&dhalf, (size_t)n * 2));
    /* CPU: the scalar kernel on the same values (16-bit gradients converted exactly) */
    float *cp = malloc((size_t)n * 4), *cs[3];
    memcpy(cp, p.init, (size_t)n * 4);
    for (int k = 0; k < 3; k++) {
        cs[k] = malloc((size_t)n * 4);
        memcpy(cs[k], st[k].init, (size_t)n * 4);
    }
    uint16_t *chalf = half_kind ? malloc((size_t)n * 2) : NULL;
    cpu_kernel(c->kind)(&s, cp, g.init, cs[0], cs[1], cs[2], chalf, (size_t)n);
    unsigned char *runs[2];
    const size_t bytes = (size_t)n * 4;
    for (int r = 0; r < 2; r++) {
        cc_reset(&p);
        for (int k = 0; k < c->n_state; k++) cc_reset(&st[k]);
        CK(dsc_cuda_optim_step(NULL, c->kind, &s, (float *)p.d, g.d, g_dt, (float *)st[0].d, (float *)st[1].d,
                               (float *)st[2].d, dhalf, n, NULL));
        runs[r] = malloc(bytes * 4 + (size_t)n * 2);
        void *a = cc_raw(p.d, bytes);
        memcpy(runs[r], a, bytes);
        free(a);
        for (int k = 0; k < 3; k++) {
            a = cc_raw(st[k].d, bytes);
            memcpy(runs[r] + bytes * (1 + k), a, bytes);
            free(a);
        }
        if (half_kind) {
            a = cc_raw(dhalf, (size_t)n * 2);
            memcpy(runs[r] + bytes * 4, a, (size_t)n * 2);
            free(a);
        }
    }
    char name[96];
    snprintf(name, sizeof name, "optim %s g=%s half=%d", c->name, dsc_dtype_name(g_dt), half_kind);
    cc_repeat(name, DSC_F32, runs[0], runs[1], bytes * 4 + (half_kind ? (size_t)n * 2 : 0));
    snprintf(name, sizeof name, "optim %s param g=%s", c->name, dsc_dtype_name(g_dt));
    cc_bits(name, DSC_F32, runs[0], cp, bytes);
    for (int k = 0; k < c->n_state; k++) {
        snprintf(name, sizeof name, "optim %s state%d g=%s", c->name, k, dsc_dtype_name(g_dt));
        cc_bits(name, DSC_F32, runs[0] + bytes * (1 + k), cs[k], bytes);
    }
    if (half_kind) {
        snprintf(name, sizeof name, "optim %s %s copy", c->name, half_kind == DSC_OPTIM_HALF_BF16 ? "bf16" : "f16");
        cc_bits(name, half_kind == DSC_OPTIM_HALF_BF16 ? DSC_BF16 : DSC_F16, runs[0] + bytes * 4, chalf, (size_t)n * 2);
    }
    free(runs[0]), free(runs[1]), free(cp), free(chalf);
    for (int k = 0; k < 3; k++) free(cs[k]), cc_free(&st[k]);
    if (dhalf) dsc_cuda_free(dhalf);
    cc_free(&p), cc_free(&g);
}

static void t_optim(void) {
    optim_case_t cases[16];
    int nc = 0;
    dsc_optim_scalars_t s = base_scalars();
    s.decay = 1.0f - 1e-3f * 0.1f; /* AdamW: decoupled decay */
    cases[nc++] = (optim_case_t){"adamw", DSC_CUDA_OPTIM_ADAM, 2, s};
    s = base_scalars();
    s.l2 = 1, s.wd = 0.01f; /* Adam with L2 */
    cases[nc++] = (optim_case_t){"adam-l2", DSC_CUDA_OPTIM_ADAM, 2, s};
    s = base_scalars();
    s.decay = 0.999f;
    cases[nc++] = (optim_case_t){"lion", DSC_CUDA_OPTIM_LION, 1, s};
    s.flag = 1;
    cases[nc++] = (optim_case_t){"lion-cpu-sign", DSC_CUDA_OPTIM_LION, 1, s};
    s = base_scalars();
    s.nstep = -0.01f, s.eps = 1e-10f, s.l2 = 1, s.wd = 0.001f;
    cases[nc++] = (optim_case_t){"adagrad", DSC_CUDA_OPTIM_ADAGRAD, 1, s};
    s.flag = 1;
    cases[nc++] = (optim_case_t){"adagrad-ds-num", DSC_CUDA_OPTIM_ADAGRAD, 1, s};
    s = base_scalars();
    s.nstep = -0.1f;
    cases[nc++] = (optim_case_t){"sgd", DSC_CUDA_OPTIM_SGD, 0, s};
    s.momentum = 1, s.b1 = 0.9f, s.omb1 = 1.0f - 0.1f;
    cases[nc++] = (optim_case_t){"sgd-momentum", DSC_CUDA_OPTIM_SGD, 1, s};
    s.flag2 = 1;
    cases[nc++] = (optim_case_t){"sgd-nesterov", DSC_CUDA_OPTIM_SGD, 1, s};
    s.flag = 1;
    cases[nc++] = (optim_case_t){"sgd-first-step", DSC_CUDA_OPTIM_SGD, 1, s};
    s = base_scalars();
    s.b2 = 0.99f, s.omb2 = 1.0f - 0.99f, s.nstep = -0.01f;
    cases[nc++] = (optim_case_t){"rmsprop", DSC_CUDA_OPTIM_RMSPROP, 1, s};
    s.flag = 1, s.flag2 = 1, s.b1 = 0.5f;
    cases[nc++] = (optim_case_t){"rmsprop-centered-mom", DSC_CUDA_OPTIM_RMSPROP, 3, s};
    s = base_scalars();
    s.l2 = 1, s.wd = 0.01f;
    cases[nc++] = (optim_case_t){"adamax", DSC_CUDA_OPTIM_ADAMAX, 2, s};
    s = base_scalars();
    s.l2 = 1, s.wd = 0.01f;
    cases[nc++] = (optim_case_t){"lamb2", DSC_CUDA_OPTIM_LAMB2, 2, s};
    s.flag = 1;
    cases[nc++] = (optim_case_t){"lamb2-eps-inside", DSC_CUDA_OPTIM_LAMB2, 2, s};
    for (int c = 0; c < nc; c++) {
        run_optim_case(&cases[c], DSC_F32, DSC_OPTIM_HALF_NONE);
        run_optim_case(&cases[c], DSC_BF16, DSC_OPTIM_HALF_BF16);
        run_optim_case(&cases[c], DSC_F32, DSC_OPTIM_HALF_F16);
    }
}

/* Lamb pass 1 over 3 segments' blocks (DSC_LAMB_BLOCK each, the last of a segment short). */
static void t_lamb1(void) {
    const int64_t n = 3 * DSC_LAMB_BLOCK + 1000 + 700;
    uint64_t blk[16];
    int64_t nb = 0;
    const int64_t seg_len[3] = {2 * DSC_LAMB_BLOCK + 1000, 700, DSC_LAMB_BLOCK};
    int64_t off = 0;
    for (int s = 0; s < 3; s++) {
        for (int64_t a = 0; a < seg_len[s]; a += DSC_LAMB_BLOCK) {
            blk[2 * nb] = (uint64_t)(off + a);
            blk[2 * nb + 1] = (uint64_t)(seg_len[s] - a < DSC_LAMB_BLOCK ? seg_len[s] - a : DSC_LAMB_BLOCK);
            nb++;
        }
        off += seg_len[s];
    }
    dsc_optim_scalars_t s = base_scalars();
    s.l2 = 1, s.wd = 0.01f;
    cc_buf_t p = cc_new(DSC_F32, n, -1, 1), g = cc_new(DSC_F32, n, -1, 1);
    cc_buf_t m = cc_new(DSC_F32, n, -0.1, 0.1), v = cc_new(DSC_F32, n, 0, 0.01);
    float *cm = malloc((size_t)n * 4), *cv = malloc((size_t)n * 4);
    memcpy(cm, m.init, (size_t)n * 4);
    memcpy(cv, v.init, (size_t)n * 4);
    double cpart[16];
    for (int64_t b = 0; b < nb; b++) {
        double acc[2 * DSC_LAMB_LANES] = {0};
        const size_t a = blk[2 * b], len = blk[2 * b + 1];
        dsc__optim_kernels_scalar.lamb1(&s, p.init + a, g.init + a, cm + a, cv + a, len, acc);
        cpart[2 * b] = dsc__optim_tree16(acc);
        cpart[2 * b + 1] = dsc__optim_tree16(acc + DSC_LAMB_LANES);
    }
    uint64_t *dblk = cc_upload(blk, (size_t)nb * 16);
    double *dpart = NULL;
    CK(dsc_cuda_malloc((void **)&dpart, (size_t)nb * 16));
    double *gp[2];
    for (int r = 0; r < 2; r++) {
        cc_reset(&m), cc_reset(&v);
        CK(dsc_cuda_lamb1(NULL, &s, (const float *)p.d, (const float *)g.d, (float *)m.d, (float *)v.d, dblk, nb, dpart));
        gp[r] = cc_raw(dpart, (size_t)nb * 16);
    }
    cc_repeat("lamb1 partials", DSC_F64, gp[0], gp[1], (size_t)nb * 16);
    cc_bits("lamb1 partials vs CPU", DSC_F64, gp[0], cpart, (size_t)nb * 16);
    float *gm = cc_get(&m), *gv = cc_get(&v);
    cc_bits("lamb1 m vs CPU", DSC_F32, gm, cm, (size_t)n * 4);
    cc_bits("lamb1 v vs CPU", DSC_F32, gv, cv, (size_t)n * 4);
    /* trust ratios on the device (optim.c's run_lamb formula, written out here) and pass 2 */
    int64_t first[4], bseg[16], b_at = 0;
    for (int sg = 0; sg < 3; sg++) {
        first[sg] = b_at;
        b_at += (seg_len[sg] + DSC_LAMB_BLOCK - 1) / DSC_LAMB_BLOCK;
        for (int64_t b = first[sg]; b < b_at; b++) bseg[b] = sg;
    }
    first[3] = b_at;
    const double lr_eff = 1e-3, min_c = 0.01, max_c = 10.0;
    float ccoef[3], cseg[3];
    for (int sg = 0; sg < 3; sg++) {
        double wsq = 0.0, usq = 0.0;
        for (int64_t b = first[sg]; b < first[sg + 1]; b++) wsq += cpart[2 * b], usq += cpart[2 * b + 1];
        const double wn = sqrt(wsq), un = sqrt(usq);
        double r = 1.0;
        if (wn != 0.0 && un != 0.0) {
            r = wn / un;
            if (r > max_c) r = max_c;
            if (r < min_c) r = min_c;
        }
        ccoef[sg] = (float)r, cseg[sg] = (float)(-(lr_eff * r));
    }
    int64_t *dfirst = cc_upload(first, sizeof first), *dbseg = cc_upload(bseg, (size_t)nb * 8);
    float *dcoef = NULL, *dseg = NULL;
    uint16_t *dhalf = NULL;
    CK(dsc_cuda_malloc((void **)&dcoef, 16));
    CK(dsc_cuda_malloc((void **)&dseg, 16));
    CK(dsc_cuda_malloc((void **)&dhalf, (size_t)n * 2));
    CK(dsc_cuda_lamb_coef(NULL, dpart, dfirst, 3, lr_eff, min_c, max_c, dcoef, dseg));
    float *gc = cc_raw(dcoef, 12), *gs = cc_raw(dseg, 12);
    cc_bits("lamb trust ratios vs CPU formula", DSC_F32, gc, ccoef, 12);
    cc_bits("lamb segment coefficients vs CPU formula", DSC_F32, gs, cseg, 12);
    s.half = DSC_OPTIM_HALF_BF16;
    float *cp2 = malloc((size_t)n * 4);
    memcpy(cp2, p.init, (size_t)n * 4);
    uint16_t *chalf = malloc((size_t)n * 2);
    for (int64_t b = 0; b < nb; b++) {
        dsc_optim_scalars_t sl = s;
        sl.coef = cseg[bseg[b]];
        const size_t a = blk[2 * b], len = blk[2 * b + 1];
        dsc__optim_kernels_scalar.lamb2(&sl, cp2 + a, NULL, cm + a, cv + a, NULL, chalf + a, len);
    }
    void *r2[2];
    for (int r = 0; r < 2; r++) {
        cc_reset(&p);
        CK(dsc_cuda_lamb2_blocks(NULL, &s, (float *)p.d, (const float *)m.d, (const float *)v.d, dhalf, dblk, dbseg, nb,
                                 dseg));
        r2[r] = cc_raw(p.d, (size_t)n * 4);
    }
    cc_repeat("lamb2 blocks", DSC_F32, r2[0], r2[1], (size_t)n * 4);
    cc_bits("lamb2 blocks param vs CPU", DSC_F32, r2[0], cp2, (size_t)n * 4);
    uint16_t *gh = cc_raw(dhalf, (size_t)n * 2);
    cc_bits("lamb2 blocks bf16 copy vs CPU", DSC_BF16, gh, chalf, (size_t)n * 2);
    free(gh), free(r2[0]), free(r2[1]), free(cp2), free(chalf), free(gc), free(gs);
    dsc_cuda_free(dfirst), dsc_cuda_free(dbseg), dsc_cuda_free(dcoef), dsc_cuda_free(dseg), dsc_cuda_free(dhalf);
    free(gm), free(gv), free(gp[0]), free(gp[1]), free(cm), free(cv);
    dsc_cuda_free(dblk), dsc_cuda_free(dpart);
    cc_free(&p), cc_free(&g), cc_free(&m), cc_free(&v);
}

int main(void) {
    cc_require_gpu("test_cuda_optim");
    const dsc_dtype_t dts[] = {DSC_F32, DSC_BF16, DSC_F16};
    for (int k = 0; k < 3; k++) {
        t_scan(dts[k], false);
        t_scan(dts[k], true);
        t_accumulate(dts[k]);
    }
    t_unscale_clip();
    t_optim();
    t_lamb1();
    return cc_finish("test_cuda_optim");
}

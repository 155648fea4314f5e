/* The optimizer kernels, written once over a small set of vector macros and instantiated by
 * optim_k_scalar.c (W = 1), optim_k_avx2.c (W = 8) and optim_k_avx512.c (W = 16). Because
 * every path expands the same expression sequence, and contraction is off (optim_internal.h),
 * all paths compute the same fp32 bits.
 *
 * The including file defines:
 *   DSC_ISA             suffix of the function names (scalar, avx2, avx512)
 *   W, V                vector width in floats and the vector type
 *   VLOAD(p) VSTORE(p,v) VSET(x)
 *   VADD VSUB VMUL VDIV VSQRT VABS
 *   VMAX(a,b)           a > b ? a : b per lane (maxps semantics)
 *   VSELGT0(c,a,b)      c > 0 ? a : b per lane (ordered compare: NaN gives b)
 *   VCOPYSIGN(m,s)      |m| with the sign bit of s (m >= 0)
 *   VSTORE_BF16(h,v) VSTORE_F16(h,v)   W 16-bit values, round to nearest even
 *   DW, LT, LZERO, LLOAD(p), LSTORE(p,a), LSQ_ADD(acc, k, v)
 *                       Lamb norm lanes: LT holds DW doubles; LSQ_ADD adds the squares (in
 *                       double) of the W floats of v, which sit at lanes k..k+W-1, into
 *                       acc[k/DW ...].
 * Every kernel follows the contract in optim_internal.h. */

#define DSC_KCAT2(a, b) a##_##b
#define DSC_KCAT(a, b) DSC_KCAT2(a, b)
#define KFN(name) DSC_KCAT(dsc__optim_k_##name, DSC_ISA)

/* Software prefetch: once per 64-byte line, DSC_OPTIM_PF_DIST floats (4 KiB) ahead on each
 * input stream (vector paths only). On the 16-core AVX-512 host at 256M parameters this took
 * the Adam step from 343-364 / 208-228 / 62 ms to 278-321 / 161-176 / 59 ms at 1 / 2 / 16
 * threads (docs/performance.md): the hardware prefetchers alone do not keep 4 read streams
 * per core busy enough. The address is formed
 * through uintptr_t: it may lie past the end of the array, which a prefetch never faults on. */
#ifndef DSC_OPTIM_PF_DIST
#define DSC_OPTIM_PF_DIST 1024
#endif
#if W > 1
#define PF_LINE(i) (((i) & 15) == 0)
#define PF(ptr, i) _mm_prefetch((const char *)((uintptr_t)((ptr) + (i)) + 4u * DSC_OPTIM_PF_DIST), _MM_HINT_T0)
#else
#define PF_LINE(i) 0
#define PF(ptr, i) ((void)0)
#endif

#define STORE_HALF(half, i, v, kind)                                                          \
    do {                                                                                      \
        if (half) {                                                                           \
            if ((kind) == DSC_OPTIM_HALF_BF16)                                                \
                VSTORE_BF16((half) + (i), (v));                                               \
            else                                                                              \
                VSTORE_F16((half) + (i), (v));                                                \
        }                                                                                     \
    } while (0)

/* Adam / AdamW (FusedAdam, torch, DeepSpeedCPUAdam): s0 = exp_avg, s1 = exp_avg_sq. */
static size_t KFN(adam)(const dsc_optim_scalars_t *s, float *p, const float *g, float *s0, float *s1, float *s2,
                        uint16_t *half, size_t n) {
    (void)s2;
    const V gs = VSET(s->gs), b1 = VSET(s->b1), b2 = VSET(s->b2), omb1 = VSET(s->omb1), omb2 = VSET(s->omb2);
    const V eps = VSET(s->eps), wd = VSET(s->wd), decay = VSET(s->decay), nstep = VSET(s->nstep);
    const V bc2s = VSET(s->bc2s);
    const int l2 = s->l2, hk = s->half;
    const size_t nv = n / W * W;
    for (size_t i = 0; i < nv; i += W) {
        if (PF_LINE(i)) {
            PF(p, i);
            PF(g, i);
            PF(s0, i);
            PF(s1, i);
        }
        V pv = VLOAD(p + i);
        V gv = VMUL(VLOAD(g + i), gs);
        if (l2) gv = VADD(gv, VMUL(wd, pv));
        V m = VADD(VMUL(VLOAD(s0 + i), b1), VMUL(omb1, gv));
        V v = VADD(VMUL(VLOAD(s1 + i), b2), VMUL(VMUL(omb2, gv), gv));
        V d = VADD(VDIV(VSQRT(v), bc2s), eps);
        pv = VMUL(pv, decay);
        pv = VADD(pv, VDIV(VMUL(nstep, m), d));
        VSTORE(s0 + i, m);
        VSTORE(s1 + i, v);
        VSTORE(p + i, pv);
        STORE_HALF(half, i, pv, hk);
    }
    return nv;
}

/* Lamb raw update u from the updated moments (both passes use this, so pass 2 recomputes
 * exactly pass 1's u). flag = eps_inside_sqrt. */
#define LAMB_U(u, mv, vv, pv)                                                                 \
    do {                                                                                      \
        V d_ = eps_inside ? VSQRT(VADD((vv), eps)) : VADD(VSQRT(vv), eps);                    \
        (u) = VDIV((mv), d_);                                                                 \
        if (l2) (u) = VADD((u), VMUL(wd, (pv)));                                              \
    } while (0)

/* Lamb pass 1 on [0, n): m, v updated, squares of p and u added to the lanes. */
static size_t KFN(lamb1)(const dsc_optim_scalars_t *s, const float *p, const float *g, float *m, float *v, size_t n,
                         double *acc) {
    const V gs = VSET(s->gs), b1 = VSET(s->b1), b2 = VSET(s->b2), omb1 = VSET(s->omb1), omb2 = VSET(s->omb2);
    const V eps = VSET(s->eps), wd = VSET(s->wd);
    const int l2 = s->l2, eps_inside = s->flag;
    LT ap[DSC_LAMB_LANES / DW], au[DSC_LAMB_LANES / DW];
    for (int j = 0; j < DSC_LAMB_LANES / DW; j++) {
        ap[j] = LLOAD(acc + j * DW);
        au[j] = LLOAD(acc + DSC_LAMB_LANES + j * DW);
    }
#if W == 1
    const size_t nv = n;
    for (size_t i = 0; i < n; i++) {
        const int k = (int)(i & (DSC_LAMB_LANES - 1));
#else
    const size_t nv = n / DSC_LAMB_LANES * DSC_LAMB_LANES;
    for (size_t i0 = 0; i0 < nv; i0 += DSC_LAMB_LANES)
    for (int k = 0; k < DSC_LAMB_LANES; k += W) {
        const size_t i = i0 + (size_t)k;
        if (PF_LINE(i)) {
            PF(p, i);
            PF(g, i);
            PF(m, i);
            PF(v, i);
        }
#endif
        V pv = VLOAD(p + i);
        V gv = VMUL(VLOAD(g + i), gs);
        V mv = VADD(VMUL(VLOAD(m + i), b1), VMUL(omb1, gv));
        V vv = VADD(VMUL(VLOAD(v + i), b2), VMUL(VMUL(omb2, gv), gv));
        V u;
        LAMB_U(u, mv, vv, pv);
        VSTORE(m + i, mv);
        VSTORE(v + i, vv);
        LSQ_ADD(ap, k, pv);
        LSQ_ADD(au, k, u);
    }
    for (int j = 0; j < DSC_LAMB_LANES / DW; j++) {
        LSTORE(acc + j * DW, ap[j]);
        LSTORE(acc + DSC_LAMB_LANES + j * DW, au[j]);
    }
    return nv;
}

/* Lamb pass 2: p += coef * u (coef = -(eta * r) of the segment). s0 = m, s1 = v. */
static size_t KFN(lamb2)(const dsc_optim_scalars_t *s, float *p, const float *g, float *s0, float *s1, float *s2,
                         uint16_t *half, size_t n) {
    (void)g;
    (void)s2;
    const V eps = VSET(s->eps), wd = VSET(s->wd), coef = VSET(s->coef);
    const int l2 = s->l2, eps_inside = s->flag, hk = s->half;
    const size_t nv = n / W * W;
    for (size_t i = 0; i < nv; i += W) {
        if (PF_LINE(i)) {
            PF(p, i);
            PF(s0, i);
            PF(s1, i);
        }
        V pv = VLOAD(p + i);
        V u;
        LAMB_U(u, VLOAD(s0 + i), VLOAD(s1 + i), pv);
        pv = VADD(pv, VMUL(coef, u));
        VSTORE(p + i, pv);
        STORE_HALF(half, i, pv, hk);
    }
    return nv;
}

/* Lion: s0 = exp_avg. flag: DeepSpeedCPULion sign rule (p - copysign(lr, c)). */
static size_t KFN(lion)(const dsc_optim_scalars_t *s, float *p, const float *g, float *s0, float *s1, float *s2,
                        uint16_t *half, size_t n) {
    (void)s1;
    (void)s2;
    const V gs = VSET(s->gs), b1 = VSET(s->b1), b2 = VSET(s->b2), omb1 = VSET(s->omb1), omb2 = VSET(s->omb2);
    const V decay = VSET(s->decay), lr = VSET(s->lr), nlr = VSET(s->nlr);
    const int cpu_sign = s->flag, hk = s->half;
    const size_t nv = n / W * W;
    for (size_t i = 0; i < nv; i += W) {
        if (PF_LINE(i)) {
            PF(p, i);
            PF(g, i);
            PF(s0, i);
        }
        V pv = VLOAD(p + i);
        V gv = VMUL(VLOAD(g + i), gs);
        V mv = VLOAD(s0 + i);
        V c = VADD(VMUL(mv, b1), VMUL(omb1, gv));
        pv = VMUL(pv, decay);
        if (cpu_sign)
            pv = VSUB(pv, VCOPYSIGN(lr, c));
        else
            pv = VADD(pv, VSELGT0(c, nlr, lr));
        mv = VADD(VMUL(mv, b2), VMUL(omb2, gv));
        VSTORE(s0 + i, mv);
        VSTORE(p + i, pv);
        STORE_HALF(half, i, pv, hk);
    }
    return nv;
}

/* Adagrad: s0 = sum. flag: DeepSpeedCPUAdagrad numerator (raw g). */
static size_t KFN(adagrad)(const dsc_optim_scalars_t *s, float *p, const float *g, float *s0, float *s1, float *s2,
                           uint16_t *half, size_t n) {
    (void)s1;
    (void)s2;
    const V gs = VSET(s->gs), eps = VSET(s->eps), wd = VSET(s->wd), nstep = VSET(s->nstep);
    const int l2 = s->l2, raw_num = s->flag, hk = s->half;
    const size_t nv = n / W * W;
    for (size_t i = 0; i < nv; i += W) {
        if (PF_LINE(i)) {
            PF(p, i);
            PF(g, i);
            PF(s0, i);
        }
        V pv = VLOAD(p + i);
        V gv = VMUL(VLOAD(g + i), gs);
        V gd = l2 ? VADD(gv, VMUL(wd, pv)) : gv;
        V v = VADD(VLOAD(s0 + i), VMUL(gd, gd));
        V d = VADD(VSQRT(v), eps);
        pv = VADD(pv, VDIV(VMUL(nstep, raw_num ? gv : gd), d));
        VSTORE(s0 + i, v);
        VSTORE(p + i, pv);
        STORE_HALF(half, i, pv, hk);
    }
    return nv;
}

/* SGD: s0 = momentum_buffer (when momentum != 0). b1 = momentum, omb1 = 1 - dampening,
 * flag = first step (buffer = g), flag2 = nesterov. */
static size_t KFN(sgd)(const dsc_optim_scalars_t *s, float *p, const float *g, float *s0, float *s1, float *s2,
                       uint16_t *half, size_t n) {
    (void)s1;
    (void)s2;
    const V gs = VSET(s->gs), wd = VSET(s->wd), mom = VSET(s->b1), omd = VSET(s->omb1), nstep = VSET(s->nstep);
    const int l2 = s->l2, use_mom = s->momentum, first = s->flag, nesterov = s->flag2, hk = s->half;
    const size_t nv = n / W * W;
    for (size_t i = 0; i < nv; i += W) {
        if (PF_LINE(i)) {
            PF(p, i);
            PF(g, i);
            if (use_mom) PF(s0, i);
        }
        V pv = VLOAD(p + i);
        V gv = VMUL(VLOAD(g + i), gs);
        if (l2) gv = VADD(gv, VMUL(wd, pv));
        if (use_mom) {
            V b = first ? gv : VADD(VMUL(VLOAD(s0 + i), mom), VMUL(omd, gv));
            VSTORE(s0 + i, b);
            gv = nesterov ? VADD(gv, VMUL(mom, b)) : b;
        }
        pv = VADD(pv, VMUL(nstep, gv));
        VSTORE(p + i, pv);
        STORE_HALF(half, i, pv, hk);
    }
    return nv;
}

/* RMSprop: s0 = square_avg, s1 = momentum_buffer (flag2), s2 = grad_avg (flag = centered).
 * b2 = alpha, omb2 = 1 - alpha, b1 = momentum. */
static size_t KFN(rmsprop)(const dsc_optim_scalars_t *s, float *p, const float *g, float *s0, float *s1, float *s2,
                           uint16_t *half, size_t n) {
    const V gs = VSET(s->gs), wd = VSET(s->wd), alpha = VSET(s->b2), oma = VSET(s->omb2), mom = VSET(s->b1);
    const V eps = VSET(s->eps), nstep = VSET(s->nstep);
    const int l2 = s->l2, centered = s->flag, use_mom = s->flag2, hk = s->half;
    const size_t nv = n / W * W;
    for (size_t i = 0; i < nv; i += W) {
        if (PF_LINE(i)) {
            PF(p, i);
            PF(g, i);
            PF(s0, i);
        }
        V pv = VLOAD(p + i);
        V gv = VMUL(VLOAD(g + i), gs);
        if (l2) gv = VADD(gv, VMUL(wd, pv));
        V sq = VADD(VMUL(VLOAD(s0 + i), alpha), VMUL(VMUL(oma, gv), gv));
        VSTORE(s0 + i, sq);
        V avg;
        if (centered) {
            V ga = VADD(VMUL(VLOAD(s2 + i), alpha), VMUL(oma, gv));
            VSTORE(s2 + i, ga);
            avg = VSQRT(VSUB(sq, VMUL(ga, ga)));
        } else {
            avg = VSQRT(sq);
        }
        avg = VADD(avg, eps);
        if (use_mom) {
            V b = VADD(VMUL(VLOAD(s1 + i), mom), VDIV(gv, avg));
            VSTORE(s1 + i, b);
            pv = VADD(pv, VMUL(nstep, b));
        } else {
            pv = VADD(pv, VDIV(VMUL(nstep, gv), avg));
        }
        VSTORE(p + i, pv);
        STORE_HALF(half, i, pv, hk);
    }
    return nv;
}

/* Adamax: s0 = exp_avg, s1 = exp_inf. */
static size_t KFN(adamax)(const dsc_optim_scalars_t *s, float *p, const float *g, float *s0, float *s1, float *s2,
                          uint16_t *half, size_t n) {
    (void)s2;
    const V gs = VSET(s->gs), b1 = VSET(s->b1), b2 = VSET(s->b2), omb1 = VSET(s->omb1);
    const V eps = VSET(s->eps), wd = VSET(s->wd), nstep = VSET(s->nstep);
    const int l2 = s->l2, hk = s->half;
    const size_t nv = n / W * W;
    for (size_t i = 0; i < nv; i += W) {
        if (PF_LINE(i)) {
            PF(p, i);
            PF(g, i);
            PF(s0, i);
            PF(s1, i);
        }
        V pv = VLOAD(p + i);
        V gv = VMUL(VLOAD(g + i), gs);
        if (l2) gv = VADD(gv, VMUL(wd, pv));
        V m = VADD(VMUL(VLOAD(s0 + i), b1), VMUL(omb1, gv));
        V u = VMAX(VMUL(VLOAD(s1 + i), b2), VADD(VABS(gv), eps));
        pv = VADD(pv, VDIV(VMUL(nstep, m), u));
        VSTORE(s0 + i, m);
        VSTORE(s1 + i, u);
        VSTORE(p + i, pv);
        STORE_HALF(half, i, pv, hk);
    }
    return nv;
}

const dsc_optim_kernels_t DSC_KCAT(dsc__optim_kernels, DSC_ISA) = {
    .adam = KFN(adam),
    .lamb2 = KFN(lamb2),
    .lion = KFN(lion),
    .adagrad = KFN(adagrad),
    .sgd = KFN(sgd),
    .rmsprop = KFN(rmsprop),
    .adamax = KFN(adamax),
    .lamb1 = KFN(lamb1),
};

/* Optimizer objects: creation over a partition, the per-step scalars, the ISA dispatch, the
 * OpenMP split (contiguous chunks for the element-wise kernels, fixed blocks for Lamb), and
 * the state accessors used by checkpoints. The arithmetic is in optim_kernels.inc.h. */
#include "optim/optim_internal.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>


#include "core/internal.h"
#include "ops/backend.h"
#include "ops/cpu/cpu_features.h"

/* Partitions smaller than this run on the calling thread (OpenMP start-up costs more). */
#define DSC_OPTIM_PAR_MIN 32768
/* Chunk starts are multiples of this many elements (256 bytes). */
#define DSC_OPTIM_CHUNK_ALIGN 64

enum { ROLE_0 = 0, ROLE_1, ROLE_2, ROLE_COUNT };

struct dsc_optim {
    dsc_ctx_t *ctx;
    dsc_optim_params_t params;
    size_t n;
    size_t n_seg;
    dsc_optim_segment_t *seg;
    int64_t step;
    int n_threads;
    dsc_optim_isa_t isa;
    const dsc_optim_kernels_t *k;
    /* State buffers by kernel role (s0, s1, s2); NULL when unused. */
    float *role[ROLE_COUNT];
    int n_states;
    int state_role[ROLE_COUNT];        /* state index -> role */
    const char *state_name[ROLE_COUNT];
    /* Lamb */
    size_t n_blocks;
    dsc_optim_block_t *blocks;
    double *partials; /* 2 per block: sum p^2, sum u^2 */
    float *coeffs;    /* per segment, last step's trust ratio */
    float *seg_coef;  /* per segment, -(eta * r) for pass 2 */
    bool coeffs_valid;
    bool unbacked; /* no state buffers: the caller steps parts over its own (dsc__optim_run_part) */
};

/* ---- ISA selection ------------------------------------------------------------------- */

/* From the one CPU feature detection (src/ops/cpu/cpu_features.c). The AVX2 path also
 * needs FMA and F16C (FMA is not used for arithmetic). */
static void cpu_features(int *avx2, int *avx512) {
    const dsc_cpu_features_t *f = dsc__cpu_features();
    *avx2 = f->avx2 && f->fma && f->f16c;
    *avx512 = f->avx512f;
}

int dsc__optim_isa_supported(dsc_optim_isa_t isa) {
    int avx2, avx512;
    cpu_features(&avx2, &avx512);
    switch (isa) {
    case DSC_OPTIM_ISA_AUTO:
    case DSC_OPTIM_ISA_SCALAR: return 1;
    case DSC_OPTIM_ISA_AVX2: return avx2;
    case DSC_OPTIM_ISA_AVX512: return avx512;
    default: return 0;
    }
}

dsc_optim_isa_t dsc__optim_isa_best(void) {
    int avx2, avx512;
    cpu_features(&avx2, &avx512);
    return avx512 ? DSC_OPTIM_ISA_AVX512 : avx2 ? DSC_OPTIM_ISA_AVX2 : DSC_OPTIM_ISA_SCALAR;
}

const char *dsc__optim_isa_name(dsc_optim_isa_t isa) {
    switch (isa) {
    case DSC_OPTIM_ISA_AUTO: return "auto";
    case DSC_OPTIM_ISA_SCALAR: return "scalar";
    case DSC_OPTIM_ISA_AVX2: return "avx2";
    case DSC_OPTIM_ISA_AVX512: return "avx512";
    default: return "?";
    }
}

static const dsc_optim_kernels_t *kernels_for(dsc_optim_isa_t isa) {
    switch (isa) {
    case DSC_OPTIM_ISA_AVX2: return &dsc__optim_kernels_avx2;
    case DSC_OPTIM_ISA_AVX512: return &dsc__optim_kernels_avx512;
    default: return &dsc__optim_kernels_scalar;
    }
}

dsc_status_t dsc__optim_force_isa(dsc_optim_t *opt, dsc_optim_isa_t isa) {
    if (!opt) return DSC_ERR_INVALID;
    if ((unsigned)isa >= DSC_OPTIM_ISA_COUNT)
        return dsc_ctx_set_error(opt->ctx, DSC_ERR_INVALID, "optimizer: invalid ISA %d", (int)isa);
    if (!dsc__optim_isa_supported(isa))
        return dsc_ctx_set_error(opt->ctx, DSC_ERR_UNSUPPORTED, "optimizer: this CPU has no %s support",
                                 dsc__optim_isa_name(isa));
    if (isa == DSC_OPTIM_ISA_AUTO) isa = dsc__optim_isa_best();
    opt->isa = isa;
    opt->k = kernels_for(isa);
    return DSC_OK;
}

dsc_optim_isa_t dsc__optim_get_isa(const dsc_optim_t *opt) { return opt ? opt->isa : DSC_OPTIM_ISA_AUTO; }

/* ---- creation ------------------------------------------------------------------------ */

static void set_state_layout(dsc_optim_t *o) {
    const dsc_optim_params_t *p = &o->params;
    int n = 0;
#define ADD_STATE(role_, name_)                                                               \
    do {                                                                                      \
        o->state_role[n] = (role_);                                                           \
        o->state_name[n] = (name_);                                                           \
        n++;                                                                                  \
    } while (0)
    switch (p->type) {
    case DSC_OPTIM_ADAM:
    case DSC_OPTIM_ADAMW:
    case DSC_OPTIM_LAMB:
        ADD_STATE(ROLE_0, "exp_avg");
        ADD_STATE(ROLE_1, "exp_avg_sq");
        break;
    case DSC_OPTIM_ADAMAX:
        ADD_STATE(ROLE_0, "exp_avg");
        ADD_STATE(ROLE_1, "exp_inf");
        break;
    case DSC_OPTIM_LION: ADD_STATE(ROLE_0, "exp_avg"); break;
    case DSC_OPTIM_ADAGRAD: ADD_STATE(ROLE_0, "sum"); break;
    case DSC_OPTIM_SGD:
        if (p->momentum != 0.0) ADD_STATE(ROLE_0, "momentum_buffer");
        break;
    case DSC_OPTIM_RMSPROP:
        ADD_STATE(ROLE_0, "square_avg");
        if (p->momentum > 0.0) ADD_STATE(ROLE_1, "momentum_buffer");
        if (p->centered) ADD_STATE(ROLE_2, "grad_avg");
        break;
    default: break;
    }
#undef ADD_STATE
    o->n_states = n;
}

static void optim_release(dsc_optim_t *o) {
    dsc_ctx_t *ctx = o->ctx;
    for (int r = 0; r < ROLE_COUNT; r++) dsc_ctx_release(ctx, DSC_MEM_OPTIM, o->role[r], o->n * sizeof(float));
    dsc__host_free(ctx, DSC_MEM_OTHER, o->seg, o->n_seg * sizeof *o->seg);
    dsc__host_free(ctx, DSC_MEM_OTHER, o->blocks, o->n_blocks * sizeof *o->blocks);
    dsc__host_free(ctx, DSC_MEM_OTHER, o->partials, o->n_blocks * 2 * sizeof(double));
    dsc__host_free(ctx, DSC_MEM_OTHER, o->coeffs, o->n_seg * sizeof(float));
    dsc__host_free(ctx, DSC_MEM_OTHER, o->seg_coef, o->n_seg * sizeof(float));
    dsc__host_free(ctx, DSC_MEM_OTHER, o, sizeof *o);
}

static dsc_status_t optim_create(dsc_ctx_t *ctx, const dsc_optim_params_t *params, size_t n_elems,
                                 const dsc_optim_segment_t *segments, size_t n_segments, bool states, dsc_optim_t **out);

dsc_status_t dsc_optim_new(dsc_ctx_t *ctx, const dsc_optim_params_t *params, size_t n_elems,
                           const dsc_optim_segment_t *segments, size_t n_segments, dsc_optim_t **out) {
    return optim_create(ctx, params, n_elems, segments, n_segments, true, out);
}

dsc_status_t dsc__optim_new_unbacked(dsc_ctx_t *ctx, const dsc_optim_params_t *params, size_t n_elems,
                                     const dsc_optim_segment_t *segments, size_t n_segments, dsc_optim_t **out) {
    return optim_create(ctx, params, n_elems, segments, n_segments, false, out);
}

static dsc_status_t optim_create(dsc_ctx_t *ctx, const dsc_optim_params_t *params, size_t n_elems,
                                 const dsc_optim_segment_t *segments, size_t n_segments, bool states, dsc_optim_t **out) {
    if (!ctx) return DSC_ERR_INVALID;
    if (!params || !out)
        return dsc_ctx_set_error(ctx, DSC_ERR_INVALID, "dsc_optim_new: NULL %s", params ? "out" : "params");
    *out = NULL;
    char msg[512];
    dsc_status_t st = dsc_optim_validate_params(params, msg, sizeof msg);
    if (st != DSC_OK) return dsc_ctx_set_error(ctx, st, "dsc_optim_new: %s", msg);
    if (n_elems == 0) return dsc_ctx_set_error(ctx, DSC_ERR_INVALID, "dsc_optim_new: empty partition (n_elems 0)");
    if (n_elems > SIZE_MAX / (2 * sizeof(double)))
        return dsc_ctx_set_error(ctx, DSC_ERR_INVALID, "dsc_optim_new: n_elems %zu too large", n_elems);
    if (n_segments && !segments)
        return dsc_ctx_set_error(ctx, DSC_ERR_INVALID, "dsc_optim_new: segments NULL with n_segments %zu", n_segments);
    if (n_segments) {
        size_t expect = 0;
        for (size_t i = 0; i < n_segments; i++) {
            if (segments[i].offset != expect || segments[i].numel > n_elems - expect)
                return dsc_ctx_set_error(ctx, DSC_ERR_INVALID,
                                         "dsc_optim_new: segment %zu (offset %zu, numel %zu) does not continue the "
                                         "tiling of [0, %zu) at %zu",
                                         i, segments[i].offset, segments[i].numel, n_elems, expect);
            expect += segments[i].numel;
        }
        if (expect != n_elems)
            return dsc_ctx_set_error(ctx, DSC_ERR_INVALID,
                                     "dsc_optim_new: segments cover [0, %zu) but the partition has %zu elements",
                                     expect, n_elems);
    }
    dsc_optim_t *o = dsc__host_alloc(ctx, DSC_MEM_OTHER, sizeof *o);
    if (!o) return dsc_ctx_status(ctx);
    o->ctx = ctx;
    o->params = *params;
    if (o->params.type == DSC_OPTIM_ADAMW) o->params.adam_w_mode = true;
    o->n = n_elems;
    o->n_seg = segments && n_segments ? n_segments : 1;
    o->seg = dsc__host_alloc(ctx, DSC_MEM_OTHER, o->n_seg * sizeof *o->seg);
    if (!o->seg) goto nomem;
    if (segments && n_segments)
        memcpy(o->seg, segments, n_segments * sizeof *segments);
    else
        o->seg[0] = (dsc_optim_segment_t){0, n_elems};
    set_state_layout(o);
    o->unbacked = !states;
    for (int i = 0; states && i < o->n_states; i++) {
        float *buf = dsc_ctx_alloc(ctx, DSC_MEM_OPTIM, n_elems * sizeof(float));
        if (!buf) goto nomem;
        o->role[o->state_role[i]] = buf;
    }
    if (states && o->params.type == DSC_OPTIM_ADAGRAD && o->params.impl == DSC_OPTIM_IMPL_TORCH &&
        o->params.initial_accumulator_value != 0.0) {
        const float init = (float)o->params.initial_accumulator_value;
        ctx->backend->fill(&ctx->device, DSC_F32, (int64_t)n_elems, init, o->role[ROLE_0]); /* on the device */
    }
    if (o->params.type == DSC_OPTIM_LAMB) {
        size_t nb = 0;
        for (size_t s = 0; s < o->n_seg; s++) nb += (o->seg[s].numel + DSC_LAMB_BLOCK - 1) / DSC_LAMB_BLOCK;
        o->n_blocks = nb;
        o->blocks = dsc__host_alloc(ctx, DSC_MEM_OTHER, (nb ? nb : 1) * sizeof *o->blocks);
        o->partials = dsc__host_alloc(ctx, DSC_MEM_OTHER, (nb ? nb : 1) * 2 * sizeof(double));
        o->coeffs = dsc__host_alloc(ctx, DSC_MEM_OTHER, o->n_seg * sizeof(float));
        o->seg_coef = dsc__host_alloc(ctx, DSC_MEM_OTHER, o->n_seg * sizeof(float));
        if (!o->blocks || !o->partials || !o->coeffs || !o->seg_coef) goto nomem;
        size_t b = 0;
        for (size_t s = 0; s < o->n_seg; s++)
            for (size_t off = 0; off < o->seg[s].numel; off += DSC_LAMB_BLOCK) {
                size_t len = o->seg[s].numel - off;
                o->blocks[b++] = (dsc_optim_block_t){o->seg[s].offset + off, len < DSC_LAMB_BLOCK ? len : DSC_LAMB_BLOCK, s};
            }
    }
    o->isa = dsc__optim_isa_best();
    o->k = kernels_for(o->isa);
    *out = o;
    return DSC_OK;
nomem:
    optim_release(o);
    return dsc_ctx_status(ctx) != DSC_OK ? dsc_ctx_status(ctx) : DSC_ERR_NOMEM;
}

void dsc_optim_free(dsc_optim_t *opt) {
    if (opt) optim_release(opt);
}

/* ---- step ---------------------------------------------------------------------------- */

static int thread_count(const dsc_optim_t *o) {
    int nt = o->n_threads > 0 ? o->n_threads : omp_get_max_threads();
    if (nt < 1) nt = 1;
    if (o->n < DSC_OPTIM_PAR_MIN) nt = 1;
    return nt;
}

static const dsc_optim_ops_t *optim_ops(const dsc_optim_t *o) { return o->ctx->device.table->optim; }

/* Lamb: pass 1 on the device (partial norms per block), the per-segment trust ratios on the
 * host (shared by every device), pass 2 on the device. */
static void run_lamb(dsc_optim_t *o, const dsc_optim_scalars_t *s, float *p, const float *g, uint16_t *half,
                     double lr_eff) {
    const dsc_optim_block_t *blocks = o->blocks;
    double *partials = o->partials;
    const int nt = thread_count(o);
    optim_ops(o)->lamb_norms(&o->ctx->device, o->k, s, blocks, o->n_blocks, nt, p, g, o->role[ROLE_0],
                             o->role[ROLE_1], partials);
    /* Per segment, blocks in order: deterministic. */
    const dsc_optim_params_t *pr = &o->params;
    size_t b = 0;
    for (size_t sg = 0; sg < o->n_seg; sg++) {
        double wsq = 0.0, usq = 0.0;
        for (; b < o->n_blocks && blocks[b].seg == sg; b++) {
            wsq += partials[2 * b];
            usq += partials[2 * b + 1];
        }
        const double wn = sqrt(wsq), un = sqrt(usq);
        double r = 1.0;
        if (wn != 0.0 && un != 0.0) {
            r = wn / un;
            if (r > pr->max_coeff) r = pr->max_coeff;
            if (r < pr->min_coeff) r = pr->min_coeff;
        }
        o->coeffs[sg] = (float)r;
        o->seg_coef[sg] = (float)(-(lr_eff * r));
    }
    o->coeffs_valid = true;
    optim_ops(o)->lamb_apply(&o->ctx->device, o->k, s, blocks, o->n_blocks, nt, o->seg_coef, p, o->role[ROLE_0],
                             o->role[ROLE_1], half);
}

/* The step's scalars, kernel and step number from the hyper-parameters (shared by the whole
 * partition step and the part steps of an offloaded state). */
static dsc_status_t derive_step(dsc_optim_t *opt, float grad_scale, double lr, bool half_out, dsc_dtype_t half_dtype,
                                dsc__optim_prepared_t *out) {
    dsc_ctx_t *ctx = opt->ctx;
    int hk = DSC_OPTIM_HALF_NONE;
    if (half_out) {
        if (half_dtype == DSC_BF16)
            hk = DSC_OPTIM_HALF_BF16;
        else if (half_dtype == DSC_F16)
            hk = DSC_OPTIM_HALF_F16;
        else
            return dsc_ctx_set_error(ctx, DSC_ERR_INVALID,
                                     "dsc_optim_step: half_out dtype must be bf16 or f16, got %s",
                                     dsc_dtype_name(half_dtype));
    }
    const dsc_optim_params_t *pr = &opt->params;
    if (lr == DSC_OPTIM_LR_DEFAULT) lr = pr->lr;
    if (!isfinite(lr) || lr < 0.0)
        return dsc_ctx_set_error(ctx, DSC_ERR_INVALID, "dsc_optim_step: invalid learning rate %g", lr);
    if (!isfinite(grad_scale))
        return dsc_ctx_set_error(ctx, DSC_ERR_INVALID, "dsc_optim_step: grad_scale must be finite, got %g",
                                 (double)grad_scale);

    const int64_t t = opt->step + 1;
    const double td = (double)t;
    const double wd = pr->weight_decay;
    const bool ds_cpu = pr->impl == DSC_OPTIM_IMPL_DS_CPU;
    const bool torch = pr->impl == DSC_OPTIM_IMPL_TORCH;
    dsc_optim_scalars_t s;
    memset(&s, 0, sizeof s);
    s.gs = (torch && pr->maximize) ? -grad_scale : grad_scale;
    s.b1 = (float)pr->beta1;
    s.b2 = (float)pr->beta2;
    s.omb1 = (float)(1.0 - pr->beta1);
    s.omb2 = (float)(1.0 - pr->beta2);
    s.eps = (float)pr->eps;
    s.wd = (float)wd;
    s.decay = 1.0f;
    s.half = hk;
    dsc_optim_kernel_id_t id = DSC_OPTIM_K_ADAM;
    double lamb_eta = 0.0;

    switch (pr->type) {
    case DSC_OPTIM_ADAM:
    case DSC_OPTIM_ADAMW: {
        const bool w = pr->type == DSC_OPTIM_ADAMW || pr->adam_w_mode;
        const bool use_wd = ds_cpu ? wd > 0.0 : wd != 0.0;
        const bool bc = pr->bias_correction || torch;
        const double bc1 = bc ? 1.0 - pow(pr->beta1, td) : 1.0;
        const double bc2 = bc ? 1.0 - pow(pr->beta2, td) : 1.0;
        s.l2 = use_wd && !w;
        if (use_wd && w) s.decay = (float)(1.0 - lr * wd);
        s.nstep = (float)(-(lr / bc1));
        s.bc2s = (float)sqrt(bc2);
        id = DSC_OPTIM_K_ADAM;
        break;
    }
    case DSC_OPTIM_LAMB: {
        const double bc1 = 1.0 - pow(pr->beta1, td), bc2 = 1.0 - pow(pr->beta2, td);
        lamb_eta = pr->bias_correction ? lr * sqrt(bc2) / bc1 : lr;
        s.l2 = wd != 0.0;
        s.flag = pr->eps_inside_sqrt;
        id = DSC_OPTIM_K_LAMB2;
        break;
    }
    case DSC_OPTIM_LION:
        if (!ds_cpu || wd > 0.0) s.decay = (float)(1.0 - lr * wd);
        s.lr = (float)lr;
        s.nlr = -s.lr;
        s.flag = ds_cpu;
        id = DSC_OPTIM_K_LION;
        break;
    case DSC_OPTIM_ADAGRAD:
        if (ds_cpu) {
            s.l2 = wd > 0.0;
            s.flag = 1;
            s.nstep = (float)(-lr);
        } else {
            s.l2 = wd != 0.0;
            s.nstep = (float)(-(lr / (1.0 + (td - 1.0) * pr->lr_decay)));
        }
        id = DSC_OPTIM_K_ADAGRAD;
        break;
    case DSC_OPTIM_SGD:
        s.l2 = wd != 0.0;
        s.momentum = pr->momentum != 0.0;
        s.b1 = (float)pr->momentum;
        s.omb1 = (float)(1.0 - pr->dampening);
        s.flag = t == 1;
        s.flag2 = pr->nesterov;
        s.nstep = (float)(-lr);
        id = DSC_OPTIM_K_SGD;
        break;
    case DSC_OPTIM_RMSPROP:
        s.l2 = wd != 0.0;
        s.b1 = (float)pr->momentum;
        s.b2 = (float)pr->alpha;
        s.omb2 = (float)(1.0 - pr->alpha);
        s.flag = pr->centered;
        s.flag2 = pr->momentum > 0.0;
        s.nstep = (float)(-lr);
        id = DSC_OPTIM_K_RMSPROP;
        break;
    case DSC_OPTIM_ADAMAX:
        s.l2 = wd != 0.0;
        s.nstep = (float)(-(lr / (1.0 - pow(pr->beta1, td))));
        id = DSC_OPTIM_K_ADAMAX;
        break;
    default: return dsc_ctx_set_error(ctx, DSC_ERR_INVALID, "dsc_optim_step: invalid optimizer type");
    }
    out->s = s;
    out->id = id;
    out->t = t;
    out->lamb_eta = lamb_eta;
    return DSC_OK;
}

dsc_status_t dsc_optim_step(dsc_optim_t *opt, float *master, const float *grad, float grad_scale, double lr,
                            void *half_out, dsc_dtype_t half_dtype) {
    if (!opt) return DSC_ERR_INVALID;
    dsc_ctx_t *ctx = opt->ctx;
    if (!master || !grad)
        return dsc_ctx_set_error(ctx, DSC_ERR_INVALID, "dsc_optim_step: NULL %s", master ? "grad" : "master");
    if (opt->unbacked && opt->n_states > 0)
        return dsc_ctx_set_error(ctx, DSC_ERR_MISUSE, "dsc_optim_step: the %s state is offloaded (stepped in parts by "
                                 "the engine)", dsc_optim_class_name(&opt->params));
    dsc__optim_prepared_t pp;
    dsc_status_t rc = derive_step(opt, grad_scale, lr, half_out != NULL, half_dtype, &pp);
    if (rc != DSC_OK) return rc;
    if (opt->params.type == DSC_OPTIM_LAMB)
        run_lamb(opt, &pp.s, master, grad, half_out, pp.lamb_eta);
    else
        optim_ops(opt)->elementwise(&ctx->device, opt->k, pp.id, &pp.s, opt->n, thread_count(opt), master, grad,
                                    opt->role[ROLE_0], opt->role[ROLE_1], opt->role[ROLE_2], half_out);
    opt->step = pp.t;
    return DSC_OK;
}

dsc_status_t dsc__optim_prepare(dsc_optim_t *opt, float grad_scale, double lr, bool half_out, dsc_dtype_t half_dtype,
                                dsc__optim_prepared_t *out) {
    if (!opt || !out) return DSC_ERR_INVALID;
    if (opt->params.type == DSC_OPTIM_LAMB)
        return dsc_ctx_set_error(opt->ctx, DSC_ERR_UNSUPPORTED, "Lamb cannot step its state in parts (its trust ratio "
                                 "needs the norms of whole tensors first): offload needs an element-wise optimizer");
    return derive_step(opt, grad_scale, lr, half_out, half_dtype, out);
}

void dsc__optim_run_part(dsc_optim_t *opt, const dsc__optim_prepared_t *pp, size_t n, float *master, const float *grad,
                         float *const *states, void *half_out) {
    float *role[ROLE_COUNT] = {NULL, NULL, NULL};
    for (int i = 0; i < opt->n_states; i++) role[opt->state_role[i]] = states[i];
    int nt = opt->n_threads > 0 ? opt->n_threads : omp_get_max_threads();
    if (nt < 1 || n < DSC_OPTIM_PAR_MIN) nt = 1;
    optim_ops(opt)->elementwise(&opt->ctx->device, opt->k, pp->id, &pp->s, n, nt, master, grad, role[ROLE_0],
                                role[ROLE_1], role[ROLE_2], half_out);
}

void dsc__optim_commit(dsc_optim_t *opt, const dsc__optim_prepared_t *pp) { opt->step = pp->t; }

double dsc__optim_state_initial(const dsc_optim_t *opt, int index) {
    if (index < 0 || index >= opt->n_states || opt->state_role[index] != ROLE_0) return 0.0;
    if (opt->params.type == DSC_OPTIM_ADAGRAD && opt->params.impl == DSC_OPTIM_IMPL_TORCH)
        return (double)(float)opt->params.initial_accumulator_value;
    return 0.0;
}

/* ---- accessors ----------------------------------------------------------------------- */

dsc_status_t dsc_optim_set_threads(dsc_optim_t *opt, int n_threads) {
    if (!opt) return DSC_ERR_INVALID;
    if (n_threads < 0)
        return dsc_ctx_set_error(opt->ctx, DSC_ERR_INVALID, "dsc_optim_set_threads: negative count %d", n_threads);
    opt->n_threads = n_threads;
    return DSC_OK;
}

const dsc_optim_params_t *dsc_optim_get_params(const dsc_optim_t *opt) { return opt ? &opt->params : NULL; }

dsc_status_t dsc_optim_set_params(dsc_optim_t *opt, const dsc_optim_params_t *params) {
    if (!opt) return DSC_ERR_INVALID;
    if (!params) return dsc_ctx_set_error(opt->ctx, DSC_ERR_INVALID, "dsc_optim_set_params: NULL params");
    char msg[512];
    dsc_status_t st = dsc_optim_validate_params(params, msg, sizeof msg);
    if (st != DSC_OK) return dsc_ctx_set_error(opt->ctx, st, "dsc_optim_set_params: %s", msg);
    const dsc_optim_params_t *o = &opt->params;
    if (params->type != o->type || params->impl != o->impl)
        return dsc_ctx_set_error(opt->ctx, DSC_ERR_INVALID,
                                 "dsc_optim_set_params: cannot change the optimizer class (%s -> %s)",
                                 dsc_optim_class_name(o), dsc_optim_class_name(params));
    if ((o->type == DSC_OPTIM_SGD && (params->momentum != 0.0) != (o->momentum != 0.0)) ||
        (o->type == DSC_OPTIM_RMSPROP &&
         ((params->momentum > 0.0) != (o->momentum > 0.0) || params->centered != o->centered)))
        return dsc_ctx_set_error(opt->ctx, DSC_ERR_INVALID,
                                 "dsc_optim_set_params: the change would alter the state buffers of %s",
                                 dsc_optim_class_name(o));
    opt->params = *params;
    if (opt->params.type == DSC_OPTIM_ADAMW) opt->params.adam_w_mode = true;
    return DSC_OK;
}

size_t dsc_optim_numel(const dsc_optim_t *opt) { return opt ? opt->n : 0; }
size_t dsc_optim_num_segments(const dsc_optim_t *opt) { return opt ? opt->n_seg : 0; }

int64_t dsc_optim_step_count(const dsc_optim_t *opt) { return opt ? opt->step : 0; }

dsc_status_t dsc_optim_set_step_count(dsc_optim_t *opt, int64_t step) {
    if (!opt) return DSC_ERR_INVALID;
    if (step < 0)
        return dsc_ctx_set_error(opt->ctx, DSC_ERR_INVALID, "dsc_optim_set_step_count: negative step %lld",
                                 (long long)step);
    opt->step = step;
    return DSC_OK;
}

int dsc_optim_num_states(const dsc_optim_t *opt) { return opt ? opt->n_states : 0; }

const char *dsc_optim_state_name(const dsc_optim_t *opt, int index) {
    if (!opt || index < 0 || index >= opt->n_states) return NULL;
    return opt->state_name[index];
}

int dsc_optim_state_index(const dsc_optim_t *opt, const char *name) {
    if (!opt || !name) return -1;
    for (int i = 0; i < opt->n_states; i++)
        if (strcmp(opt->state_name[i], name) == 0) return i;
    return -1;
}

float *dsc_optim_state_data(dsc_optim_t *opt, int index) {
    if (!opt || index < 0 || index >= opt->n_states) return NULL;
    return opt->role[opt->state_role[index]];
}

static dsc_status_t check_range(const dsc_optim_t *opt, const char *fn, int index, size_t offset, size_t n,
                                const void *buf) {
    if (index < 0 || index >= opt->n_states)
        return dsc_ctx_set_error(opt->ctx, DSC_ERR_INVALID, "%s: state index %d out of range (%s has %d)", fn, index,
                                 dsc_optim_class_name(&opt->params), opt->n_states);
    if (offset > opt->n || n > opt->n - offset)
        return dsc_ctx_set_error(opt->ctx, DSC_ERR_INVALID, "%s: range [%zu, %zu + %zu) outside the partition of %zu",
                                 fn, offset, offset, n, opt->n);
    if (n && !buf) return dsc_ctx_set_error(opt->ctx, DSC_ERR_INVALID, "%s: NULL buffer", fn);
    if (opt->unbacked)
        return dsc_ctx_set_error(opt->ctx, DSC_ERR_MISUSE, "%s: the optimizer's state is offloaded to files (the "
                                 "engine's checkpoints read it)", fn);
    return DSC_OK;
}

dsc_status_t dsc_optim_get_state(const dsc_optim_t *opt, int index, size_t offset, size_t n, float *dst) {
    if (!opt) return DSC_ERR_INVALID;
    dsc_status_t st = check_range(opt, "dsc_optim_get_state", index, offset, n, dst);
    if (st != DSC_OK) return st;
    return dsc__dev_to_host(opt->ctx, dst, opt->role[opt->state_role[index]] + offset, n * sizeof(float));
}

dsc_status_t dsc_optim_set_state(dsc_optim_t *opt, int index, size_t offset, size_t n, const float *src) {
    if (!opt) return DSC_ERR_INVALID;
    dsc_status_t st = check_range(opt, "dsc_optim_set_state", index, offset, n, src);
    if (st != DSC_OK) return st;
    return dsc__dev_from_host(opt->ctx, opt->role[opt->state_role[index]] + offset, src, n * sizeof(float));
}

dsc_status_t dsc_optim_lamb_coeffs(const dsc_optim_t *opt, float *out, size_t n_out) {
    if (!opt) return DSC_ERR_INVALID;
    if (opt->params.type != DSC_OPTIM_LAMB || !out)
        return dsc_ctx_set_error(opt->ctx, DSC_ERR_INVALID, "dsc_optim_lamb_coeffs: %s",
                                 out ? "the optimizer is not Lamb" : "NULL out");
    if (!opt->coeffs_valid)
        return dsc_ctx_set_error(opt->ctx, DSC_ERR_MISUSE, "dsc_optim_lamb_coeffs: no step has run yet");
    memcpy(out, opt->coeffs, (n_out < opt->n_seg ? n_out : opt->n_seg) * sizeof(float));
    return DSC_OK;
}

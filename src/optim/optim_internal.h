/* Private definitions of the optimizers: the object layout, the per-step scalars handed to
 * the kernels, the kernel table of each ISA path and the ISA selection. Never installed.
 *
 * Determinism contract of the kernels: every ISA path performs the same IEEE fp32 operations
 * in the same order. Floating-point contraction (a*b+c -> fma) is switched off for every file
 * that includes this header (GCC: optimize pragma; clang: STDC FP_CONTRACT), so neither the
 * intrinsics nor the scalar code can be fused differently on different paths. */
#ifndef DSC_OPTIM_INTERNAL_H
#define DSC_OPTIM_INTERNAL_H

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/bf16.h"
#include "core/device.h"
#include "dsc/optim.h"

/* Kernel ISA paths. */
typedef enum dsc_optim_isa {
    DSC_OPTIM_ISA_AUTO = 0, /* the best the CPU supports */
    DSC_OPTIM_ISA_SCALAR,
    DSC_OPTIM_ISA_AVX2,     /* AVX2 + FMA + F16C (FMA is not used for arithmetic) */
    DSC_OPTIM_ISA_AVX512,   /* AVX-512F */
    DSC_OPTIM_ISA_COUNT
} dsc_optim_isa_t;

/* Lamb norm blocks: fixed size, independent of threads and ISA. Each block is summed in
 * float64 over DSC_LAMB_LANES interleaved lanes (element j of the block goes to lane j % 16),
 * lanes combined by a fixed pairwise tree, blocks of a segment summed in order. */
#define DSC_LAMB_BLOCK 4096
#define DSC_LAMB_LANES 16

/* Half output kinds. */
enum { DSC_OPTIM_HALF_NONE = 0, DSC_OPTIM_HALF_BF16 = 1, DSC_OPTIM_HALF_F16 = 2 };

/* Per-step scalars, fp32, derived in double from the params once per step. Which fields a
 * kernel reads depends on the optimizer (see dsc/optim.h for the formulas). */
typedef struct dsc_optim_scalars {
    float gs;       /* grad_scale (negated for maximize) */
    float b1, b2;   /* betas (Adam, Lamb, Lion, Adamax); alpha in b2 for RMSprop, momentum in b1 */
    float omb1, omb2; /* 1 - b1, 1 - b2 (RMSprop: 1 - alpha in omb2); SGD: 1 - dampening in omb1 */
    float eps;
    float wd;       /* L2 coefficient added to g (0 = none) */
    float decay;    /* decoupled factor p *= decay (1 = none) */
    float nstep;    /* negative step size: -lr/bc1 (Adam, Adamax), -clr (Adagrad), -lr (SGD, RMSprop) */
    float bc2s;     /* sqrt(bc2) (Adam) */
    float lr;       /* Lion: +lr */
    float nlr;      /* Lion: -lr */
    float coef;     /* Lamb pass 2: -(eta * r) of the block's segment */
    int l2;         /* add wd*p to g */
    int flag;       /* Lamb: eps_inside_sqrt; Lion: DS-CPU sign rule; SGD: 1 first step;
                       RMSprop: centered; Adagrad: DS-CPU numerator rule */
    int flag2;      /* SGD: nesterov; RMSprop: momentum > 0 */
    int momentum;   /* SGD: momentum != 0 */
    int half;       /* DSC_OPTIM_HALF_* */
} dsc_optim_scalars_t;

/* An element-wise kernel: processes elements [0, n') of the given pointers, where n' is n for
 * the scalar path and n rounded down to the vector width for vector paths; returns n'. State
 * pointers the optimizer does not use may be NULL. `half` is uint16_t[n] or NULL. */
typedef size_t (*dsc_optim_kernel_fn)(const dsc_optim_scalars_t *s, float *p, const float *g, float *s0,
                                      float *s1, float *s2, uint16_t *half, size_t n);
/* Lamb pass 1 over one block-aligned run: updates m (s0), v (s1) and adds p^2 into acc[0..15]
 * and u^2 into acc[16..31] (lane = element index % 16, element 0 in lane 0). Vector paths
 * process n rounded down to 16 and return that count; the scalar path processes all n. */
typedef size_t (*dsc_optim_lamb1_fn)(const dsc_optim_scalars_t *s, const float *p, const float *g, float *m,
                                     float *v, size_t n, double *acc);

typedef struct dsc_optim_kernels {
    dsc_optim_kernel_fn adam, lamb2, lion, adagrad, sgd, rmsprop, adamax;
    dsc_optim_lamb1_fn lamb1;
} dsc_optim_kernels_t;

extern const dsc_optim_kernels_t dsc__optim_kernels_scalar;
extern const dsc_optim_kernels_t dsc__optim_kernels_avx2;
extern const dsc_optim_kernels_t dsc__optim_kernels_avx512;

/* Kernel ids of the element-wise update. */
typedef enum dsc_optim_kernel_id {
    DSC_OPTIM_K_ADAM = 0,
    DSC_OPTIM_K_LION,
    DSC_OPTIM_K_ADAGRAD,
    DSC_OPTIM_K_SGD,
    DSC_OPTIM_K_RMSPROP,
    DSC_OPTIM_K_ADAMAX,
    DSC_OPTIM_K_LAMB2
} dsc_optim_kernel_id_t;

/* One Lamb norm block: elements [start, start + len) of segment seg. */
typedef struct dsc_optim_block {
    size_t start, len, seg;
} dsc_optim_block_t;

/* The optimizer entries of a device's table (src/core/device.h). The host derives the
 * per-step scalars (dsc_optim_scalars_t) once and hands them to these; p, g, s0..s2 and
 * half are device buffers of n elements (state pointers the optimizer does not use and
 * half may be NULL). `isa` is the CPU path the optimizer asked for (other devices ignore
 * it); n_threads the CPU thread count (0: OpenMP's). Lamb: norms writes the two squared
 * norms of each block into host partials[2b], [2b+1] (the host turns them into per-segment
 * trust ratios); apply runs pass 2 with coef = seg_coef[block's segment] (host array). */
typedef struct dsc_optim_ops {
    void (*elementwise)(dsc_device_t *dev, const dsc_optim_kernels_t *isa, dsc_optim_kernel_id_t id,
                        const dsc_optim_scalars_t *s, size_t n, int n_threads, float *p, const float *g, float *s0,
                        float *s1, float *s2, uint16_t *half);
    void (*lamb_norms)(dsc_device_t *dev, const dsc_optim_kernels_t *isa, const dsc_optim_scalars_t *s,
                       const dsc_optim_block_t *blocks, size_t n_blocks, int n_threads, const float *p, const float *g,
                       float *m, float *v, double *partials);
    void (*lamb_apply)(dsc_device_t *dev, const dsc_optim_kernels_t *isa, const dsc_optim_scalars_t *s,
                       const dsc_optim_block_t *blocks, size_t n_blocks, int n_threads, const float *seg_coef, float *p,
                       float *m, float *v, uint16_t *half);
} dsc_optim_ops_t;

extern const dsc_optim_ops_t dsc__optim_ops_cpu;
extern const dsc_optim_ops_t dsc__optim_ops_guarded;

/* True when this CPU (and OS) supports the path. SCALAR and AUTO are always supported. */
int dsc__optim_isa_supported(dsc_optim_isa_t isa);
/* The path AUTO resolves to on this CPU. */
dsc_optim_isa_t dsc__optim_isa_best(void);
const char *dsc__optim_isa_name(dsc_optim_isa_t isa);
/* Forces an optimizer's kernel path (tests and benchmarks). DSC_ERR_UNSUPPORTED when the CPU
 * lacks it, DSC_ERR_INVALID for a bad value. */
dsc_status_t dsc__optim_force_isa(dsc_optim_t *opt, dsc_optim_isa_t isa);
dsc_optim_isa_t dsc__optim_get_isa(const dsc_optim_t *opt);

/* ---- stepping in parts (the NVMe offload, src/zero/offload_nvme.c) ---------------------
 * An unbacked optimizer owns no state buffers (dsc_optim_step, get_state and set_state refuse
 * it): the caller holds the state and steps the partition part by part, every part with the
 * same scalars: prepare once (Lamb is refused: its trust ratio needs whole tensors), run each
 * part (n elements; master, grad and half point at the part's first element, states[i] at
 * state i's values for it), commit once (the step counter). Element-wise kernels are bitwise
 * independent of how the partition is cut, so the result equals one dsc_optim_step. */
typedef struct dsc__optim_prepared {
    dsc_optim_scalars_t s;
    dsc_optim_kernel_id_t id;
    int64_t t;
    double lamb_eta;
} dsc__optim_prepared_t;

dsc_status_t dsc__optim_new_unbacked(dsc_ctx_t *ctx, const dsc_optim_params_t *params, size_t n_elems,
                                     const dsc_optim_segment_t *segments, size_t n_segments, dsc_optim_t **out);
dsc_status_t dsc__optim_prepare(dsc_optim_t *opt, float grad_scale, double lr, bool half_out, dsc_dtype_t half_dtype,
                                dsc__optim_prepared_t *out);
void dsc__optim_run_part(dsc_optim_t *opt, const dsc__optim_prepared_t *pp, size_t n, float *master, const float *grad,
                         float *const *states, void *half_out);
void dsc__optim_commit(dsc_optim_t *opt, const dsc__optim_prepared_t *pp);
/* The value state `index` starts at (Adagrad's initial_accumulator_value, else 0). */
double dsc__optim_state_initial(const dsc_optim_t *opt, int index);

/* Scalar helpers shared by every path (identical to dsc_f32_to_bf16 / the tree sum). */
static inline uint16_t dsc__optim_bf16(float x) { return dsc__bf16_round(x); }

/* Fixed pairwise tree over 16 lanes. */
static inline double dsc__optim_tree16(const double *a) {
    double s8[8], s4[4];
    for (int i = 0; i < 8; i++) s8[i] = a[2 * i] + a[2 * i + 1];
    for (int i = 0; i < 4; i++) s4[i] = s8[2 * i] + s8[2 * i + 1];
    return (s4[0] + s4[1]) + (s4[2] + s4[3]);
}

#endif

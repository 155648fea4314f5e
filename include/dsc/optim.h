/* dsc/optim.h: optimizers over flat fp32 buffers (Adam/AdamW, Lamb, Lion, Adagrad, SGD,
 * RMSprop, Adamax), with DeepSpeed's configuration rules.
 *
 * Model.
 *   An optimizer updates one contiguous range of fp32 master weights ("the partition": a
 *   whole flat buffer, one param group, or the ZeRO partition a rank owns) from a gradient
 *   range of the same length. It owns its state buffers (moments, accumulators), allocated
 *   zero-filled from the context under DSC_MEM_OPTIM. The master weights and gradients are
 *   the caller's. One optimizer = one param group: it keeps one step counter t (1-based
 *   while stepping: t is incremented before the update, as DeepSpeed and torch do), so
 *   DeepSpeed's "per-group step" is this counter. Use one optimizer per param group.
 *
 *   Segments: the partition is described as a list of (offset, numel) segments that tile
 *   [0, n_elems) in order, one per parameter tensor. Only Lamb uses them (its trust ratio is
 *   per tensor); the others are element-wise and ignore them. NOTE (DeepSpeed fidelity):
 *   under the fp16/bf16 wrappers and ZeRO, DeepSpeed's basic optimizer sees ONE flat tensor
 *   per group, so FusedLamb's ratio is computed over the whole partition: pass a single
 *   segment (or NULL) there, and per-tensor segments only for plain fp32 training.
 *
 * One step is ONE fused pass over the buffers (Lamb: two passes, see below): it reads the
 * gradient once with the combined scale folded in (g = grad[i] * grad_scale, in fp32), applies
 * weight decay, updates the state and the master weight, and, when half_out is given, writes
 * the bf16/f16 copy of the new master weight (round to nearest even, bit-identical to
 * dsc_f32_to_bf16 / dsc_f32_to_f16) in the same pass. Kernels: AVX-512, AVX2(+FMA, F16C) or
 * scalar, chosen at run time from the CPU; OpenMP threads over contiguous chunks.
 *
 * Determinism: the result bits do not depend on the thread count, nor on the ISA path (all
 * paths perform the same IEEE fp32 operations in the same order, never fused multiply-add;
 * sqrt and division are correctly rounded on every path). Lamb's norms are summed in float64
 * over fixed 4096-element blocks with 16 interleaved lanes, independent of threads and ISA.
 * The only exception is the payload of a NaN produced from NaN inputs (its sign/payload may
 * differ between paths; it stays a NaN).
 *
 * Per-element formulas (fp32; hyper-parameter scalars are derived in double and rounded to
 * fp32 once per step; g = grad * grad_scale; "if wd" means weight_decay != 0):
 *   ADAM/ADAMW (FusedAdam, torch.optim.Adam/AdamW; t-th step, bc1 = 1 - b1^t, bc2 = 1 - b2^t,
 *     both 1 without bias_correction):
 *       L2 mode (adam_w_mode false): if wd: g = g + wd*p
 *       m = m*b1 + (1-b1)*g;  v = v*b2 + ((1-b2)*g)*g;  d = sqrt(v)/sqrt(bc2) + eps
 *       AdamW mode: p = p*(1 - lr*wd)
 *       p = p + ((-lr/bc1)*m)/d
 *     DeepSpeedCPUAdam semantics (impl DSC_OPTIM_IMPL_DS_CPU): identical maths, but weight decay
 *     only when wd > 0 (negative wd ignored) and amsgrad accepted and ignored.
 *   LAMB (FusedLamb): m, v as Adam with the raw g (no L2);  d = sqrt(v) + eps, or sqrt(v + eps)
 *     with eps_inside_sqrt;  u = m/d (+ wd*p if wd);  per segment r = clamp(||p||/||u||,
 *     min_coeff, max_coeff) when both norms are non-zero, else 1;  eta = lr*sqrt(bc2)/bc1
 *     (lr without bias_correction);  p = p + (-(eta*r))*u.  Two passes: pass 1 updates m, v and
 *     sums ||p||^2, ||u||^2; pass 2 recomputes u (same bits) and updates p (+ half copy).
 *   LION (FusedLion): c = m*b1 + (1-b1)*g;  p = p*(1 - lr*wd);  p = p + (c > 0 ? -lr : +lr);
 *     m = m*b2 + (1-b2)*g.  DS_CPU impl (DeepSpeedCPULion): decay only when wd > 0 and
 *     p = p - copysign(lr, c) (c = +0 gives -lr, c = -0 gives +lr).
 *   ADAGRAD (torch.optim.Adagrad): if wd: g = g + wd*p;  clr = lr/(1 + (t-1)*lr_decay);
 *     v = v + g*g (v starts at initial_accumulator_value);  p = p + ((-clr)*g)/(sqrt(v) + eps).
 *     DS_CPU impl (DeepSpeedCPUAdagrad): v = v + (g + wd*p)^2 (decay only when wd > 0);
 *     p = p + ((-lr)*g)/(sqrt(v) + eps) with the RAW g in the numerator; no lr_decay.
 *   SGD (torch.optim.SGD): if wd: g = g + wd*p;  if momentum != 0: b = g on the first step
 *     (t == 1), else b = b*momentum + (1-dampening)*g;  g = nesterov ? g + momentum*b : b;
 *     p = p + (-lr)*g.
 *   RMSPROP (torch.optim.RMSprop): if wd: g = g + wd*p;  s = s*alpha + ((1-alpha)*g)*g;
 *     centered: a = a*alpha + (1-alpha)*g, d = sqrt(s - a*a) + eps; else d = sqrt(s) + eps;
 *     momentum > 0: b = b*momentum + g/d, p = p + (-lr)*b;  else p = p + ((-lr)*g)/d.
 *   ADAMAX (torch.optim.Adamax): if wd: g = g + wd*p;  m = m*b1 + (1-b1)*g;
 *     u = max(u*b2, |g| + eps) (a NaN in u*b2 does not propagate);  p = p + ((-lr/bc1)*m)/u.
 *   maximize (torch optimizers): g = -g first (folded into grad_scale; exact).
 *
 * Errors: every call that can fail returns a dsc_status_t and records a message on the
 * context the optimizer was created with (dsc_ctx_errmsg). The functions that have no
 * optimizer yet (name resolution, config) write their message into a caller buffer.
 */
#ifndef DSC_OPTIM_H
#define DSC_OPTIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dsc/status.h"
#include "dsc/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum dsc_optim_type {
    DSC_OPTIM_ADAM = 0, /* "adam": Adam; decoupled decay unless adam_w_mode is false (default true) */
    DSC_OPTIM_ADAMW,    /* "adamw": Adam with decoupled weight decay, always */
    DSC_OPTIM_LAMB,     /* "lamb": FusedLamb */
    DSC_OPTIM_LION,     /* "lion": FusedLion / DeepSpeedCPULion */
    DSC_OPTIM_ADAGRAD,  /* "adagrad": torch.optim.Adagrad / DeepSpeedCPUAdagrad */
    DSC_OPTIM_SGD,      /* "SGD": torch.optim.SGD (exact case) */
    DSC_OPTIM_RMSPROP,  /* "RMSprop": torch.optim.RMSprop (exact case) */
    DSC_OPTIM_ADAMAX,   /* "Adamax": torch.optim.Adamax (exact case) */
    DSC_OPTIM_TYPE_COUNT
} dsc_optim_type_t;

/* Which DeepSpeed/torch class's semantics an optimizer follows (they differ in corner cases,
 * see the formulas above). dsc_optim_params_from_config picks it the way DeepSpeed's engine
 * picks the class. */
typedef enum dsc_optim_impl {
    DSC_OPTIM_IMPL_FUSED = 0, /* DeepSpeed's default class: FusedAdam, FusedLamb, FusedLion */
    DSC_OPTIM_IMPL_DS_CPU,    /* optimizer offload classes: DeepSpeedCPUAdam/Adagrad/Lion */
    DSC_OPTIM_IMPL_TORCH      /* torch.optim.* (Adagrad, SGD, RMSprop, Adamax; Adam with torch_adam) */
} dsc_optim_impl_t;

/* Hyper-parameters. Start from dsc_optim_default_params(type); fields a type does not use are
 * ignored. All values are doubles as in DeepSpeed's JSON; the kernels round them to fp32 once
 * per step. */
typedef struct dsc_optim_params {
    dsc_optim_type_t type;
    dsc_optim_impl_t impl;
    double lr;             /* the configured (base) learning rate; see dsc_optim_step's lr */
    double beta1, beta2;   /* Adam, Lamb, Lion, Adamax: betas[0], betas[1] */
    double eps;
    double weight_decay;
    bool bias_correction;  /* Adam, Lamb (torch Adam/Adamax always correct: true) */
    bool adam_w_mode;      /* Adam: decoupled weight decay (forced true for ADAMW) */
    bool amsgrad;          /* Adam: must be false except with DS_CPU (ignored there) */
    bool eps_inside_sqrt;  /* Lamb */
    double max_coeff, min_coeff; /* Lamb trust-ratio clamp */
    double momentum;       /* SGD, RMSprop */
    double dampening;      /* SGD */
    bool nesterov;         /* SGD */
    double alpha;          /* RMSprop smoothing constant */
    bool centered;         /* RMSprop */
    double lr_decay;       /* Adagrad (torch) */
    double initial_accumulator_value; /* Adagrad (torch): initial value of the sum state */
    bool maximize;         /* torch optimizers: ascend instead of descend */
} dsc_optim_params_t;

/* Defaults of DeepSpeed's default (no offload, no torch_adam) class for `type`, exactly as
 * DeepSpeed/torch define them (spec §1.4): ADAM/ADAMW -> FusedAdam (lr 1e-3, betas (0.9,
 * 0.999), eps 1e-8, wd 0, bias_correction, adam_w_mode true); LAMB -> FusedLamb (eps 1e-8,
 * max_coeff 10, min_coeff 0.01); LION -> FusedLion (lr 1e-3, betas (0.9, 0.999)); ADAGRAD ->
 * torch (lr 1e-2, eps 1e-10); SGD -> torch (lr 1e-3); RMSPROP -> torch (lr 1e-2, alpha 0.99,
 * eps 1e-8); ADAMAX -> torch (lr 2e-3, eps 1e-8). An invalid type gives ADAM's defaults with
 * type set to the invalid value (dsc_optim_new then rejects it). */
dsc_optim_params_t dsc_optim_default_params(dsc_optim_type_t type);
/* The same for an explicit class: e.g. (ADAMW, TORCH) is torch.optim.AdamW (wd 0.01). */
dsc_optim_params_t dsc_optim_default_params_impl(dsc_optim_type_t type, dsc_optim_impl_t impl);

/* Static names: "adam", "adamw", "lamb", "lion", "adagrad", "SGD", "RMSprop", "Adamax" (the
 * spelling DeepSpeed's config uses); "?" for an invalid type. */
const char *dsc_optim_type_name(dsc_optim_type_t type);
/* The DeepSpeed/torch class the params select: "FusedAdam", "DeepSpeedCPUAdam",
 * "torch.optim.Adam", "torch.optim.AdamW", "FusedLamb", "FusedLion", "DeepSpeedCPULion",
 * "torch.optim.Adagrad", "DeepSpeedCPUAdagrad", "torch.optim.SGD", "torch.optim.RMSprop",
 * "torch.optim.Adamax"; "?" for an invalid combination. Static. */
const char *dsc_optim_class_name(const dsc_optim_params_t *params);

/* DeepSpeed's name resolution of `optimizer.type` (spec §1.4): if the lower-cased name is one
 * of DeepSpeed's names (adagrad, adam, adamw, lamb, onebitadam, zerooneadam, onebitlamb,
 * muadam, muadamw, musgd, lion, muon) it is used case-insensitively; otherwise it must be a
 * torch.optim class name with exact case ("SGD", "RMSprop", "Adamax"; "sgd" is rejected).
 * Returns DSC_OK and sets *out; DSC_ERR_UNSUPPORTED for a name DeepSpeed accepts but dsc does
 * not implement (OneBitAdam, ZeroOneAdam, OneBitLamb, MuAdam, MuAdamW, MuSGD, Muon, and torch's
 * NAdam, RAdam, Adadelta, ASGD, Rprop, LBFGS, SparseAdam); DSC_ERR_CONFIG for an unknown name
 * ("sgd is not a supported DeepSpeed Optimizer"); DSC_ERR_INVALID for a NULL name or out. Error
 * messages name the supported list and go to err (NUL-terminated, truncated to errsz; err may
 * be NULL when errsz is 0). */
dsc_status_t dsc_optim_type_from_name(const char *name, dsc_optim_type_t *out, char *err, size_t errsz);

/* One `optimizer.params` entry: a number (bools as 0/1) or a list of numbers (betas). */
typedef struct dsc_optim_kv {
    const char *key;
    const double *values;
    size_t n_values;
} dsc_optim_kv_t;

/* Builds the params of a DeepSpeed `optimizer` section the way the engine does
 * (_configure_basic_optimizer, spec §1.4): resolves `type_name`; pops `torch_adam` and
 * `adam_w_mode` (Adam/AdamW: effective_w_mode = type is adamw OR adam_w_mode, default true);
 * picks the class (torch_adam -> torch Adam/AdamW; `offload` (optimizer offload to cpu/nvme)
 * -> DeepSpeedCPUAdam/Adagrad/Lion; else FusedAdam, FusedLamb, FusedLion, torch Adagrad...),
 * starts from that class's defaults and applies the remaining keys. Keys are the class's
 * constructor arguments ("lr", "betas", "eps", "weight_decay", "bias_correction", "amsgrad",
 * "eps_inside_sqrt", "max_coeff", "min_coeff", "momentum", "dampening", "nesterov", "alpha",
 * "centered", "lr_decay", "initial_accumulator_value", "maximize", plus accepted no-ops such
 * as "set_grad_none", "fp32_optimizer_states", "foreach", "capturable", "differentiable",
 * "fused" false). Errors (message in err):
 *   "max_grad_norm" -> DSC_ERR_CONFIG "'max_grad_norm' is not supported as an optimizer
 *     parameter, please switch to using the deepspeed parameter 'gradient_clipping'";
 *   a key the class does not take -> DSC_ERR_CONFIG "<Class>.__init__() got an unexpected
 *     keyword argument '<key>'"; a wrong value count/kind -> DSC_ERR_CONFIG;
 *   amsgrad true with FusedAdam -> DSC_ERR_CONFIG "FusedAdam does not support the AMSGrad
 *     variant." (torch Adam with amsgrad -> DSC_ERR_UNSUPPORTED);
 *   then every dsc_optim_validate_params error. kv may be NULL when n_kv is 0. */
dsc_status_t dsc_optim_params_from_config(const char *type_name, const dsc_optim_kv_t *kv, size_t n_kv,
                                          bool offload, dsc_optim_params_t *out, char *err, size_t errsz);

/* Checks a params struct: DSC_ERR_INVALID for an invalid type/impl pair or a non-finite value;
 * torch classes also apply torch's range checks with torch's messages ("Invalid learning rate:
 * -1", "Invalid beta parameter at index 0: 1", "Nesterov momentum requires a momentum and zero
 * dampening", ...); DSC_ERR_CONFIG for amsgrad with FusedAdam; DSC_ERR_UNSUPPORTED for amsgrad
 * with torch Adam. */
dsc_status_t dsc_optim_validate_params(const dsc_optim_params_t *params, char *err, size_t errsz);

/* ZeRO compatibility (spec §4.1): true when DeepSpeed's ZeRO (stage >= 1) accepts the class
 * without "zero_allow_untested_optimizer": torch Adam/AdamW, FusedAdam, DeepSpeedCPUAdam,
 * torch Adagrad, DeepSpeedCPUAdagrad, FusedLion, DeepSpeedCPULion. False for FusedLamb, SGD,
 * RMSprop, Adamax. */
bool dsc_optim_zero_compatible(const dsc_optim_params_t *params);
/* The rule as the engine applies it: stage 0 or a compatible class -> DSC_OK with err "";
 * an untested class with allow_untested -> DSC_OK with a warning text in err (the caller logs
 * it at WARN); otherwise DSC_ERR_CONFIG "You are using an untested ZeRO Optimizer. Please add
 * <"zero_allow_untested_optimizer": true> in the configuration file to use it." */
dsc_status_t dsc_optim_check_zero(const dsc_optim_params_t *params, int zero_stage, bool allow_untested, char *err,
                                  size_t errsz);

/* Number of fp32 state buffers (each n_elems long) the params need: Adam/Lamb/Adamax 2,
 * Lion 1, Adagrad 1, SGD 1 if momentum != 0 else 0, RMSprop 1 + (momentum > 0) + centered.
 * -1 for invalid params. For memory estimates: state bytes = 4 * n_elems * this. */
int dsc_optim_params_num_states(const dsc_optim_params_t *params);

/* ---- Optimizer objects --------------------------------------------------------------- */

typedef struct dsc_optim dsc_optim_t;

/* One parameter tensor inside the partition: elements [offset, offset + numel). */
typedef struct dsc_optim_segment {
    size_t offset;
    size_t numel;
} dsc_optim_segment_t;

/* Creates an optimizer over a partition of `n_elems` fp32 elements (n_elems >= 1). `segments`
 * (copied) must tile [0, n_elems) in order without gaps or overlap (numel 0 allowed);
 * n_segments 0 (segments may then be NULL) means one segment. State buffers are allocated zero-filled (Adagrad's sum:
 * initial_accumulator_value) under DSC_MEM_OPTIM; bookkeeping under DSC_MEM_OTHER. `ctx` must
 * outlive the optimizer. The step counter starts at 0.
 * Returns DSC_OK (*out owns the optimizer; free with dsc_optim_free), DSC_ERR_INVALID (NULL
 * ctx/params/out, n_elems 0, bad segments, invalid params), DSC_ERR_CONFIG/UNSUPPORTED (see
 * dsc_optim_validate_params), DSC_ERR_NOMEM. */
dsc_status_t dsc_optim_new(dsc_ctx_t *ctx, const dsc_optim_params_t *params, size_t n_elems,
                           const dsc_optim_segment_t *segments, size_t n_segments, dsc_optim_t **out);
/* Frees the state and the optimizer. NULL is a no-op. */
void dsc_optim_free(dsc_optim_t *opt);

/* Pass as lr to dsc_optim_step to use params.lr. */
#define DSC_OPTIM_LR_DEFAULT (-1.0)

/* One optimizer step over the whole partition, on the device of the optimizer's context
 * (master, grad, half_out and the state are buffers of that device): t += 1, then the
 * update above.
 *   master     n_elems fp32 master weights, updated in place.
 *   grad       n_elems fp32 gradients, read only (may not alias master or half_out).
 *   grad_scale multiplies every gradient element in fp32 before anything else: pass
 *              clip_coef / loss_scale (1 for none). Folding is bit-identical to pre-scaling
 *              the gradient array with one fp32 multiply per element and passing 1.
 *   lr         this step's learning rate (from the scheduler), or DSC_OPTIM_LR_DEFAULT.
 *   half_out   NULL, or n_elems 16-bit outputs receiving the new master weights converted to
 *              half_dtype (DSC_BF16 or DSC_F16), round to nearest even, in the same pass.
 * Returns DSC_OK; DSC_ERR_INVALID for NULL opt/master/grad, a bad half_dtype, or a negative or
 * non-finite lr / non-finite grad_scale (state untouched, t not incremented). Non-finite
 * gradients are NOT checked (the engine skips the step on overflow before calling). */
dsc_status_t dsc_optim_step(dsc_optim_t *opt, float *master, const float *grad, float grad_scale, double lr,
                            void *half_out, dsc_dtype_t half_dtype);

/* Threads used by steps: 0 (default) = omp_get_max_threads() at each step; the result bits do
 * not depend on it. DSC_ERR_INVALID for n < 0. */
dsc_status_t dsc_optim_set_threads(dsc_optim_t *opt, int n_threads);

/* The optimizer's params (valid while it lives). */
const dsc_optim_params_t *dsc_optim_get_params(const dsc_optim_t *opt);
/* Changes hyper-parameters between steps (e.g. OneCycle cycling betas/momentum). The new
 * params must validate and keep the type, impl and state layout (SGD momentum zero-ness,
 * RMSprop centered/momentum zero-ness): DSC_ERR_INVALID otherwise, nothing changed. Changing
 * initial_accumulator_value affects nothing after creation. */
dsc_status_t dsc_optim_set_params(dsc_optim_t *opt, const dsc_optim_params_t *params);

size_t dsc_optim_numel(const dsc_optim_t *opt);

/* ---- State for checkpoints ----------------------------------------------------------- */

/* The step counter t (number of steps applied so far; 0 before the first). Setting it (from a
 * checkpoint) makes the next step use t + 1 for bias correction / Adagrad lr_decay / SGD's
 * first-step rule. DSC_ERR_INVALID for step < 0. */
int64_t dsc_optim_step_count(const dsc_optim_t *opt);
dsc_status_t dsc_optim_set_step_count(dsc_optim_t *opt, int64_t step);

/* State buffers, each n_elems fp32 in partition order. Names follow torch's state dict keys:
 * Adam/Lamb "exp_avg", "exp_avg_sq"; Lion "exp_avg"; Adagrad "sum"; SGD "momentum_buffer";
 * RMSprop "square_avg" [, "momentum_buffer"] [, "grad_avg"]; Adamax "exp_avg", "exp_inf". */
int dsc_optim_num_states(const dsc_optim_t *opt);
/* Static name of state `index`, or NULL when out of range. */
const char *dsc_optim_state_name(const dsc_optim_t *opt, int index);
/* Index of the state named `name`, or -1. */
int dsc_optim_state_index(const dsc_optim_t *opt, const char *name);
/* Direct pointer to state `index` (n_elems floats on the context's device, owned by the
 * optimizer), NULL if out of range. For zero-copy checkpoint writes/reads on a "cpu"
 * context; elsewhere use dsc_optim_get_state / set_state. Not concurrently with a step.
 * The engine's optimizer under offload_optimizer.device "nvme" keeps its state in a swap
 * file (docs/offload.md): then this is NULL and get_state / set_state fail with
 * DSC_ERR_MISUSE; the engine's checkpoints read it. */
float *dsc_optim_state_data(dsc_optim_t *opt, int index);
/* Copies elements [offset, offset + n) of state `index` out of / into the optimizer (host
 * buffers; a device-to-host or host-to-device copy).
 * DSC_ERR_INVALID for a bad index, a range outside [0, n_elems) or a NULL buffer (n > 0). */
dsc_status_t dsc_optim_get_state(const dsc_optim_t *opt, int index, size_t offset, size_t n, float *dst);
dsc_status_t dsc_optim_set_state(dsc_optim_t *opt, int index, size_t offset, size_t n, const float *src);

/* Lamb: the trust ratio r of each segment from the last step (DeepSpeed's get_lamb_coeffs()).
 * Writes min(n_out, n_segments) values. DSC_ERR_INVALID if opt is not Lamb or out is NULL,
 * DSC_ERR_MISUSE before the first step. */
dsc_status_t dsc_optim_lamb_coeffs(const dsc_optim_t *opt, float *out, size_t n_out);
size_t dsc_optim_num_segments(const dsc_optim_t *opt);

#ifdef __cplusplus
}
#endif
#endif

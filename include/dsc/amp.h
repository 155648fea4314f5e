/* dsc/amp.h: mixed precision building blocks: the fp16 loss scaler, the unscale + clip
 * coefficient, and the CPU kernels over flat 16-bit / 32-bit gradient and weight buffers
 * (overflow scan with sum of squares, conversions, accumulation into fp32).
 *
 * Reference: DeepSpeed commit edaa7221 (spec §3). Choices and differences from DeepSpeed:
 * docs/deepspeed-compat.md, section "Mixed precision and loss scaling".
 *
 * What an engine does with these, once per optimizer step (accumulation boundary):
 *   backward       scaled_loss = float32(loss) * dsc_loss_scaler_scale(&s)   (always, also
 *                  without ZeRO: DeepSpeed HEAD forgets it there, spec §3.4), divided by GAS.
 *                  For fp16/bf16 gradients accumulated in fp32: dsc_amp_accumulate.
 *   overflow+norm  dsc_amp_scan (or dsc_amp_scan_segments) over the rank's gradients;
 *                  all-reduce: overflow with MAX (logical OR), sumsq with SUM.
 *   update         S_used = dsc_loss_scaler_scale(&s);
 *                  rc = dsc_loss_scaler_update(&s, overflow, &ev); log ev.message if non-empty;
 *                  rc == DSC_ERR_NUMERIC: stop training with dsc_loss_scaler_errmsg(&s).
 *   skip           on overflow: zero the gradients, no optimizer/scheduler step, count a
 *                  skipped step; on the first overflow, name the tensors with
 *                  dsc_amp_scan_segments.
 *   unscale+clip   dsc_amp_unscale_clip(sqrt(sumsq), ev.scale_before, clip, &uc) -- the scale
 *                  that was USED in backward, not the updated one (spec §3.6 ordering bug);
 *                  then dsc_optim_step(..., (float)uc.grad_scale, ...).
 *   weights        the optimizer writes the 16-bit copy (dsc_optim_step half_out), or
 *                  dsc_amp_f32_to_half.
 *
 * Every function here holds no global state; the scaler is a plain value (no allocation,
 * copyable, not thread-safe). Kernels are deterministic: results do not depend on the
 * OpenMP thread count nor on the instruction-set path picked at run time.
 */
#ifndef DSC_AMP_H
#define DSC_AMP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dsc/config.h"
#include "dsc/status.h"
#include "dsc/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Loss scaler ---------------------------------------------------------------------- */

/* Which dynamic algorithm (only used when the scaler is dynamic, see below). */
typedef enum dsc_loss_scaler_algo {
    /* DeepSpeed's DynamicLossScaler (ZeRO 1/2/3, spec §3.2): hysteresis ("delayed shift"),
     * consecutive_hysteresis. DeepSpeed raises a fatal error on an overflow at the minimum
     * scale; dsc applies max_consecutive_skips_at_min instead. dsc uses this everywhere. */
    DSC_LOSS_SCALER_ZERO = 0,
    /* DeepSpeed's FP16_Optimizer / FP16_UnfusedOptimizer (no ZeRO, spec §3.3): hysteresis
     * and consecutive_hysteresis ignored; overflow always halves (clamped at the minimum). */
    DSC_LOSS_SCALER_FP16_OPTIMIZER
} dsc_loss_scaler_algo_t;

/* Scaler parameters, named as in the DeepSpeed "fp16" section (spec §1.6). Start from
 * DSC_LOSS_SCALER_PARAMS_INIT or dsc_loss_scaler_params_from_config.
 *   dtype            the model (gradient) dtype. DSC_F16: loss scaling as below. DSC_BF16 /
 *                    DSC_F32: no scaling, S = 1 always (DeepSpeed's static S = 1 scaler);
 *                    overflows can still be reported (bf16.check_grad_overflow) and count
 *                    towards max_consecutive_skips_at_min.
 *   loss_scale       > 0: static scale S = loss_scale (update changes nothing); 0: dynamic.
 *   initial_scale_power      dynamic S0 = 2^initial_scale_power (16).
 *   loss_scale_window        good steps between doublings (1000), > 0.
 *   hysteresis               overflows tolerated before lowering S (2), >= 1. ZERO algo only.
 *   consecutive_hysteresis   refill hysteresis on every good step (false). ZERO algo only.
 *   min_loss_scale           S never drops below it (1), > 0 and <= S0.
 *   algo                     see dsc_loss_scaler_algo_t (DSC_LOSS_SCALER_ZERO).
 *   max_consecutive_skips_at_min  (dsc policy, every mode) the K-th consecutive overflow
 *                    (skipped step) at which S could not be lowered -- dynamic S already at
 *                    min_loss_scale (overflows absorbed by hysteresis there count too), a
 *                    static scale, or no scaling -- makes dsc_loss_scaler_update return
 *                    DSC_ERR_NUMERIC with a message that says so and suggests bf16 / a lower
 *                    learning rate. A good step resets the count. 0 = never stop (skip
 *                    forever, as FP16_Optimizer does). Default 10. DeepSpeed ZeRO instead
 *                    raises on the first overflow at the minimum once hysteresis is spent.
 *   rank             the rank named in the log line ("Rank 0"); only rank 0 logs in DeepSpeed. */
typedef struct dsc_loss_scaler_params {
    dsc_dtype_t dtype;
    double loss_scale;
    int64_t initial_scale_power;
    int64_t loss_scale_window;
    int64_t hysteresis;
    bool consecutive_hysteresis;
    double min_loss_scale;
    dsc_loss_scaler_algo_t algo;
    int64_t max_consecutive_skips_at_min;
    int rank;
} dsc_loss_scaler_params_t;
#define DSC_LOSS_SCALER_PARAMS_INIT {DSC_F16, 0.0, 16, 1000, 2, false, 1.0, DSC_LOSS_SCALER_ZERO, 10, 0}

/* Fills *out from a parsed config: dtype F16 when fp16.enabled, BF16 when bf16.enabled, else
 * F32; the fp16 keys; algo ZERO; max_consecutive_skips_at_min 10; rank 0.
 * Returns DSC_ERR_INVALID for NULL arguments. */
dsc_status_t dsc_loss_scaler_params_from_config(const dsc_config_t *cfg, dsc_loss_scaler_params_t *out);

/* What one update did. */
typedef enum dsc_loss_scaler_action {
    DSC_LOSS_SCALE_KEPT = 0,    /* good step, S unchanged */
    DSC_LOSS_SCALE_RAISED,      /* good step, S doubled (window of good steps completed) */
    DSC_LOSS_SCALE_LOWERED,     /* overflow, S halved (clamped at min_loss_scale) */
    DSC_LOSS_SCALE_HYSTERESIS,  /* overflow, S kept, hysteresis decremented (ZERO algo) */
    DSC_LOSS_SCALE_AT_MINIMUM,  /* overflow, dynamic S already at min_loss_scale: kept */
    DSC_LOSS_SCALE_NOT_DYNAMIC  /* overflow with a static scale or no scaling: S kept */
} dsc_loss_scaler_action_t;

/* Static lower-case name of an action ("kept", "raised", "lowered", "hysteresis",
 * "at-minimum", "not-dynamic"; "?" when invalid). */
const char *dsc_loss_scaler_action_name(dsc_loss_scaler_action_t action);

typedef struct dsc_loss_scaler_event {
    dsc_loss_scaler_action_t action;
    bool overflow;                    /* the step must be skipped */
    double scale_before;              /* S used for this step's backward: unscale with this */
    double scale_after;               /* S for the next backward */
    int64_t hysteresis_before, hysteresis_after;
    int64_t consecutive_skips_at_min; /* after this update */
    bool stop;                        /* the at-minimum limit was reached (status NUMERIC) */
    /* DeepSpeed's log line for an overflow (spec §6.6), empty on a good step:
     *   ZERO, lowered:    "[deepspeed] OVERFLOW! Rank 0 Skipping step. Attempted loss scale:
     *                      65536, reducing to 32768"
     *   ZERO, hysteresis: "[deepspeed] OVERFLOW! Rank 0 Skipping step. Attempted loss scale:
     *                      65536, but hysteresis is 2. Reducing hysteresis to 1"
     *   FP16_OPTIMIZER:   "Overflow detected. Skipping step. Attempted loss scale: 65536,
     *                      reducing to 32768"
     *   bf16 / fp32:      "[deepspeed] OVERFLOW! Rank 0 Skipping step."
     * At the minimum or with a static scale, dsc's own wording after the same prefix. */
    char message[384];
} dsc_loss_scaler_event_t;

/* The scaler's mutable state (checkpointed). DeepSpeed names: cur_scale, cur_iter,
 * last_overflow_iter, cur_hysteresis. */
typedef struct dsc_loss_scaler_state {
    double scale;
    int64_t iter;               /* updates so far */
    int64_t last_overflow_iter; /* -1: none yet */
    int64_t hysteresis;         /* remaining tolerated overflows (ZERO algo; H otherwise) */
    int64_t consecutive_skips_at_min;
} dsc_loss_scaler_state_t;

/* A scaler. Fields are read through the functions below; treat them as private. */
typedef struct dsc_loss_scaler {
    dsc_loss_scaler_params_t params;
    bool dynamic;            /* fp16 with loss_scale == 0 */
    double static_scale;     /* S when not dynamic (loss_scale or 1) */
    double init_scale;       /* 2^initial_scale_power when dynamic */
    dsc_loss_scaler_state_t st;
    char errmsg[512];
} dsc_loss_scaler_t;

/* Validates `params` (NULL: DSC_LOSS_SCALER_PARAMS_INIT) and starts the scaler:
 * S = 2^initial_scale_power (dynamic), loss_scale (static) or 1 (bf16/fp32); iter 0,
 * last_overflow -1, hysteresis H. Returns DSC_ERR_INVALID (s NULL), DSC_ERR_CONFIG naming
 * the fp16 key for: dtype not F16/BF16/F32; loss_scale negative or non-finite; and, when
 * dynamic, loss_scale_window <= 0, hysteresis < 1, min_loss_scale <= 0 or non-finite,
 * 2^initial_scale_power not a finite positive double, or below min_loss_scale; algo invalid;
 * max_consecutive_skips_at_min < 0. The message: dsc_loss_scaler_errmsg. */
dsc_status_t dsc_loss_scaler_init(dsc_loss_scaler_t *s, const dsc_loss_scaler_params_t *params);

/* One update, exactly once per optimizer step (accumulation boundary), with the global
 * overflow flag (any inf/NaN gradient on any rank). Dynamic ZERO algo (spec §3.2):
 *   overflow:  if H == 1 or h == 1: S = max(S/2, min)  [S == min: AT_MINIMUM, kept]
 *              else h = h - 1;  last_overflow = iter
 *   good step: if consecutive: h = H
 *              stable = iter - last_overflow - 1
 *              if stable > 0 and stable % window == 0: (if !consecutive: h = H); S = 2S
 *   iter = iter + 1
 * FP16_OPTIMIZER algo (spec §3.3): the same without hysteresis. Static / no scaling: only
 * iter and the skip count move. S is never raised past the largest finite double.
 * `event` may be NULL. Returns DSC_OK; DSC_ERR_INVALID for s NULL; DSC_ERR_NUMERIC when this
 * overflow makes max_consecutive_skips_at_min consecutive skips at which S could not be
 * lowered (the state is still updated, and later overflows keep returning it until a good
 * step); the message (dsc_loss_scaler_errmsg) gives the count, the scale and what to do. */
dsc_status_t dsc_loss_scaler_update(dsc_loss_scaler_t *s, bool overflow, dsc_loss_scaler_event_t *event);

/* The scale for the next backward (1 for bf16/fp32). NaN for s NULL. */
double dsc_loss_scaler_scale(const dsc_loss_scaler_t *s);
/* True for fp16 with loss_scale 0. */
bool dsc_loss_scaler_is_dynamic(const dsc_loss_scaler_t *s);
/* The last error message (static empty string when none). */
const char *dsc_loss_scaler_errmsg(const dsc_loss_scaler_t *s);

/* Checkpoint state. get: copies the state. set: restores it; the scaler then continues
 * exactly as the saving one would have. Dynamic: everything is restored (a hysteresis
 * above the configured H is clamped to H). Static / no scaling: the configured scale is
 * kept (the config wins), the counters are restored. Returns DSC_ERR_INVALID for NULL
 * arguments, or (set) a scale that is not finite and > 0 in a dynamic scaler, iter < 0,
 * last_overflow_iter outside [-1, iter), hysteresis < 1 (ZERO algo), or a negative skip
 * count; the scaler is unchanged then. */
dsc_status_t dsc_loss_scaler_state_get(const dsc_loss_scaler_t *s, dsc_loss_scaler_state_t *out);
dsc_status_t dsc_loss_scaler_state_set(dsc_loss_scaler_t *s, const dsc_loss_scaler_state_t *state);

/* ---- Unscale + clip --------------------------------------------------------------------- */

/* The one multiplication that unscales and clips (spec §3.6), computed in double:
 *   combined = S;  if c > 0: r = (n_s/S + 1e-6)/c; if r > 1: combined = r*S
 *   grad_scale = 1/combined   (multiply every scaled gradient by it)
 * which gives g_true * min(1, c/(n_true + 1e-6)) with n_true = n_s/S. */
typedef struct dsc_amp_unscale_clip {
    double grad_scale;   /* 1/combined */
    double combined;     /* S, or r*S when clipping binds */
    double norm;         /* n_s/S: the true global norm before clipping (get_global_grad_norm) */
    double norm_clipped; /* the true norm after clipping: norm/r when clipping binds, else norm */
    bool clipped;        /* r > 1 */
} dsc_amp_unscale_clip_t;

/* scaled_norm = n_s, the global L2 norm of the scaled gradients (after data-parallel
 * averaging); scale = the S USED in this step's backward (event.scale_before: the
 * pre-update scale, not DeepSpeed HEAD's updated one); clip = gradient_clipping (0 = off).
 * Returns DSC_ERR_INVALID for out NULL, scaled_norm negative or not finite (an overflow:
 * skip the step instead; out->norm is set to -1 as DeepSpeed reports), scale not finite
 * and > 0, clip negative or not finite. */
dsc_status_t dsc_amp_unscale_clip(double scaled_norm, double scale, double clip, dsc_amp_unscale_clip_t *out);

/* ---- Kernels ---------------------------------------------------------------------------- */

/* Elements per reduction block of the scans. Sum-of-squares order (fixed, independent of
 * threads and ISA): within a block, element j goes to lane j % 16 (double); lanes are
 * combined by a fixed pairwise tree; blocks of a segment are added in order; segments are
 * added in order. Squares of f32/bf16/f16 values are exact in double, so the sum is finite
 * exactly when no element is inf or NaN. */
#define DSC_AMP_BLOCK 8192

/* The kernels below run on the context's device (dsc_ctx_options_t.device): data, dst,
 * src, acc and g are buffers of that device (dsc_ctx_alloc, tensor data); segment lists
 * and the scan's outputs are host memory. ctx NULL: DSC_ERR_INVALID. */

/* A range of a flat buffer (one tensor, or a tensor's slice in a partition). */
typedef struct dsc_amp_segment {
    size_t offset;
    size_t numel;
} dsc_amp_segment_t;

/* Overflow scan, one fused pass over `n` elements of `data` (DSC_F32, DSC_BF16 or DSC_F16):
 * *overflow = any element is +-inf or NaN; *sumsq = sum of squares in double (meaningful
 * only without overflow; inf/NaN otherwise). Either output may be NULL.
 * Returns DSC_ERR_INVALID for another dtype or data NULL with n > 0. */
dsc_status_t dsc_amp_scan(dsc_ctx_t *ctx, const void *data, dsc_dtype_t dtype, size_t n, bool *overflow, double *sumsq);

/* The same per segment: seg_overflow[i] / seg_sumsq[i] for segment i (each may be NULL);
 * *overflow / *sumsq over all segments (sum in segment order); *n_bad = segments holding
 * inf/NaN. Segments may be in any order, overlap or leave gaps; each must lie within [0, n).
 * Use it on the first overflow to name the tensors that held inf/NaN.
 * Returns DSC_ERR_INVALID for a bad dtype, NULL data/segments with work to do, or a segment
 * outside [0, n). */
dsc_status_t dsc_amp_scan_segments(dsc_ctx_t *ctx, const void *data, dsc_dtype_t dtype, size_t n, const dsc_amp_segment_t *segs,
                                   size_t n_segs, bool *seg_overflow, double *seg_sumsq, bool *overflow,
                                   double *sumsq, size_t *n_bad);

/* f32 -> bf16/f16 (round to nearest even, bit-identical to dsc_f32_to_bf16 / dsc_f32_to_f16,
 * NaN included) and bf16/f16 -> f32 (exact, bit-identical to dsc_bf16_to_f32 /
 * dsc_f16_to_f32). `half_dtype` is DSC_BF16 or DSC_F16. Buffers may not overlap.
 * Returns DSC_ERR_INVALID for another dtype or NULL pointers with n > 0. */
dsc_status_t dsc_amp_f32_to_half(dsc_ctx_t *ctx, void *dst, dsc_dtype_t half_dtype, const float *src, size_t n);
dsc_status_t dsc_amp_half_to_f32(dsc_ctx_t *ctx, float *dst, const void *src, dsc_dtype_t half_dtype, size_t n);

/* acc[i] += (float)g[i] for g of DSC_BF16, DSC_F16 or DSC_F32 (one fp32 add per element:
 * 16-bit gradients accumulated over micro-batches in fp32). acc and g may not overlap.
 * Returns DSC_ERR_INVALID for another dtype or NULL pointers with n > 0. */
dsc_status_t dsc_amp_accumulate(dsc_ctx_t *ctx, float *acc, const void *g, dsc_dtype_t dtype, size_t n);

/* The instruction-set path the kernels use on this CPU: "avx512bf16", "avx512", "avx2" or
 * "scalar" (for logs and benchmarks). */
const char *dsc_amp_isa_name(void);

#ifdef __cplusplus
}
#endif
#endif

/* The fp16 loss scaler (DeepSpeed's DynamicLossScaler, spec §3.2, and the FP16_Optimizer
 * variant, §3.3), dsc's stop-at-minimum policy, and the unscale + clip coefficient (§3.6). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "dsc/amp.h"

static dsc_status_t fail(dsc_loss_scaler_t *s, dsc_status_t rc, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

static dsc_status_t fail(dsc_loss_scaler_t *s, dsc_status_t rc, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->errmsg, sizeof s->errmsg, fmt, ap);
    va_end(ap);
    return rc;
}

/* DeepSpeed prints int(S); dsc prints integral scales the same way and others with %g. */
static const char *fmt_scale(char *buf, size_t sz, double v) {
    if (isfinite(v) && v == floor(v) && fabs(v) < 9.0e18)
        snprintf(buf, sz, "%lld", (long long)v);
    else
        snprintf(buf, sz, "%g", v);
    return buf;
}

dsc_status_t dsc_loss_scaler_params_from_config(const dsc_config_t *cfg, dsc_loss_scaler_params_t *out) {
    if (!cfg || !out) return DSC_ERR_INVALID;
    const dsc_loss_scaler_params_t init = DSC_LOSS_SCALER_PARAMS_INIT;
    *out = init;
    out->dtype = cfg->fp16.enabled ? DSC_F16 : cfg->bf16.enabled ? DSC_BF16 : DSC_F32;
    out->loss_scale = cfg->fp16.loss_scale;
    out->initial_scale_power = cfg->fp16.initial_scale_power;
    out->loss_scale_window = cfg->fp16.loss_scale_window;
    out->hysteresis = cfg->fp16.hysteresis;
    out->consecutive_hysteresis = cfg->fp16.consecutive_hysteresis;
    out->min_loss_scale = (double)cfg->fp16.min_loss_scale;
    return DSC_OK;
}

const char *dsc_loss_scaler_action_name(dsc_loss_scaler_action_t a) {
    switch (a) {
    case DSC_LOSS_SCALE_KEPT: return "kept";
    case DSC_LOSS_SCALE_RAISED: return "raised";
    case DSC_LOSS_SCALE_LOWERED: return "lowered";
    case DSC_LOSS_SCALE_HYSTERESIS: return "hysteresis";
    case DSC_LOSS_SCALE_AT_MINIMUM: return "at-minimum";
    case DSC_LOSS_SCALE_NOT_DYNAMIC: return "not-dynamic";
    default: return "?";
    }
}

dsc_status_t dsc_loss_scaler_init(dsc_loss_scaler_t *s, const dsc_loss_scaler_params_t *params) {
    if (!s) return DSC_ERR_INVALID;
    const dsc_loss_scaler_params_t defaults = DSC_LOSS_SCALER_PARAMS_INIT;
    const dsc_loss_scaler_params_t p = params ? *params : defaults;
    memset(s, 0, sizeof *s);
    s->params = p;
    if (p.dtype != DSC_F16 && p.dtype != DSC_BF16 && p.dtype != DSC_F32)
        return fail(s, DSC_ERR_CONFIG, "loss scaler: model dtype %s is not f16, bf16 or f32", dsc_dtype_name(p.dtype));
    if (p.algo != DSC_LOSS_SCALER_ZERO && p.algo != DSC_LOSS_SCALER_FP16_OPTIMIZER)
        return fail(s, DSC_ERR_CONFIG, "loss scaler: unknown algorithm %d", (int)p.algo);
    if (p.max_consecutive_skips_at_min < 0)
        return fail(s, DSC_ERR_CONFIG, "loss scaler: max_consecutive_skips_at_min must be >= 0 (0 = never stop), got %lld",
                    (long long)p.max_consecutive_skips_at_min);
    double scale = 1.0;
    if (p.dtype == DSC_F16) {
        if (!isfinite(p.loss_scale) || p.loss_scale < 0)
            return fail(s, DSC_ERR_CONFIG, "fp16.loss_scale must be a finite number >= 0 (0 = dynamic), got %g",
                        p.loss_scale);
        if (p.loss_scale > 0) {
            scale = p.loss_scale;
        } else {
            s->dynamic = true;
            if (p.loss_scale_window <= 0)
                return fail(s, DSC_ERR_CONFIG, "fp16.loss_scale_window must be > 0 with dynamic loss scaling, got %lld",
                            (long long)p.loss_scale_window);
            if (p.algo == DSC_LOSS_SCALER_ZERO && p.hysteresis < 1)
                return fail(s, DSC_ERR_CONFIG,
                            "fp16.hysteresis must be >= 1 (1 = lower the scale on every overflow), got %lld",
                            (long long)p.hysteresis);
            if (!isfinite(p.min_loss_scale) || p.min_loss_scale <= 0)
                return fail(s, DSC_ERR_CONFIG, "fp16.min_loss_scale must be > 0 with dynamic loss scaling, got %g",
                            p.min_loss_scale);
            if (p.initial_scale_power < -1074 || p.initial_scale_power > 1023)
                return fail(s, DSC_ERR_CONFIG,
                            "fp16.initial_scale_power %lld gives a loss scale 2^%lld outside the double range",
                            (long long)p.initial_scale_power, (long long)p.initial_scale_power);
            scale = ldexp(1.0, (int)p.initial_scale_power);
            if (scale < p.min_loss_scale)
                return fail(s, DSC_ERR_CONFIG,
                            "fp16.initial_scale_power %lld gives an initial loss scale %g below fp16.min_loss_scale %g",
                            (long long)p.initial_scale_power, scale, p.min_loss_scale);
            s->init_scale = scale;
        }
    }
    s->static_scale = s->dynamic ? 0.0 : scale;
    s->st.scale = scale;
    s->st.iter = 0;
    s->st.last_overflow_iter = -1;
    s->st.hysteresis = p.hysteresis;
    s->st.consecutive_skips_at_min = 0;
    return DSC_OK;
}

double dsc_loss_scaler_scale(const dsc_loss_scaler_t *s) { return s ? s->st.scale : NAN; }
bool dsc_loss_scaler_is_dynamic(const dsc_loss_scaler_t *s) { return s && s->dynamic; }
const char *dsc_loss_scaler_errmsg(const dsc_loss_scaler_t *s) { return s ? s->errmsg : ""; }

/* The overflow line's tail for a skip at which the scale could not be lowered. */
static void skip_note(const dsc_loss_scaler_t *s, const char *what, char *buf, size_t sz) {
    const long long k = (long long)s->params.max_consecutive_skips_at_min;
    const long long c = (long long)s->st.consecutive_skips_at_min;
    if (k > 0)
        snprintf(buf, sz, " (%s: %lld consecutive skip%s, training stops at %lld)", what, c, c == 1 ? "" : "s", k);
    else
        snprintf(buf, sz, " (%s: %lld consecutive skip%s)", what, c, c == 1 ? "" : "s");
}

static void stop_message(dsc_loss_scaler_t *s) {
    const dsc_loss_scaler_params_t *p = &s->params;
    const long long c = (long long)s->st.consecutive_skips_at_min;
    char sb[64];
    fmt_scale(sb, sizeof sb, s->st.scale);
    if (s->dynamic)
        fail(s, DSC_ERR_NUMERIC,
             "loss scale stuck at its minimum: %lld consecutive optimizer steps overflowed (inf/NaN gradients) at the "
             "minimum loss scale %s (fp16.min_loss_scale) and were skipped, so training stopped "
             "(max_consecutive_skips_at_min = %lld). fp16's range is too small for this run: train in bf16 "
             "(\"bf16\": {\"enabled\": true}, no loss scaling needed) or lower the learning rate, and check the data and "
             "the loss for inf/NaN",
             c, sb, (long long)p->max_consecutive_skips_at_min);
    else if (p->dtype == DSC_F16)
        fail(s, DSC_ERR_NUMERIC,
             "%lld consecutive optimizer steps overflowed (inf/NaN gradients) at the static loss scale %s "
             "(fp16.loss_scale) and were skipped, so training stopped (max_consecutive_skips_at_min = %lld). Use dynamic "
             "loss scaling (fp16.loss_scale 0) or bf16 (\"bf16\": {\"enabled\": true}), or lower the learning rate, and "
             "check the data and the loss for inf/NaN",
             c, sb, (long long)p->max_consecutive_skips_at_min);
    else
        fail(s, DSC_ERR_NUMERIC,
             "%lld consecutive optimizer steps had inf/NaN gradients (%s, no loss scaling) and were skipped, so training "
             "stopped (max_consecutive_skips_at_min = %lld). Lower the learning rate, and check the data and the loss "
             "for inf/NaN",
             c, dsc_dtype_name(p->dtype), (long long)p->max_consecutive_skips_at_min);
}

dsc_status_t dsc_loss_scaler_update(dsc_loss_scaler_t *s, bool overflow, dsc_loss_scaler_event_t *event) {
    if (!s) return DSC_ERR_INVALID;
    const dsc_loss_scaler_params_t *p = &s->params;
    dsc_loss_scaler_state_t *st = &s->st;
    dsc_loss_scaler_event_t ev;
    memset(&ev, 0, sizeof ev);
    ev.action = DSC_LOSS_SCALE_KEPT;
    ev.overflow = overflow;
    ev.scale_before = st->scale;
    ev.hysteresis_before = st->hysteresis;
    const double S = st->scale;
    const int r = p->rank;
    char a[32], b[32], note[128];
    note[0] = '\0';

    if (overflow) {
        /* The scale is at its floor when it cannot be lowered by this or any later overflow. */
        const bool floor_ = !s->dynamic || S <= p->min_loss_scale;
        st->consecutive_skips_at_min = floor_ ? st->consecutive_skips_at_min + 1 : 0;
        fmt_scale(a, sizeof a, S);
        if (!s->dynamic) {
            ev.action = DSC_LOSS_SCALE_NOT_DYNAMIC;
            if (p->dtype == DSC_F16) {
                skip_note(s, "static loss scale, not changed", note, sizeof note);
                snprintf(ev.message, sizeof ev.message, "[deepspeed] OVERFLOW! Rank %d Skipping step. Attempted loss scale: %s%s",
                         r, a, note);
            } else {
                skip_note(s, "no loss scaling", note, sizeof note);
                snprintf(ev.message, sizeof ev.message, "[deepspeed] OVERFLOW! Rank %d Skipping step.%s", r, note);
            }
        } else if (p->algo == DSC_LOSS_SCALER_ZERO && p->hysteresis != 1 && st->hysteresis != 1) {
            /* DeepSpeed: "delayed shift": tolerate the overflow, keep S. */
            if (floor_) skip_note(s, "at the minimum loss scale", note, sizeof note);
            snprintf(ev.message, sizeof ev.message,
                     "[deepspeed] OVERFLOW! Rank %d Skipping step. Attempted loss scale: %s, but hysteresis is %lld. "
                     "Reducing hysteresis to %lld%s",
                     r, a, (long long)st->hysteresis, (long long)(st->hysteresis - 1), note);
            st->hysteresis -= 1;
            ev.action = DSC_LOSS_SCALE_HYSTERESIS;
        } else {
            const char *prefix = p->algo == DSC_LOSS_SCALER_ZERO ? "[deepspeed] OVERFLOW! Rank %d Skipping step. "
                                                                 : "Overflow detected. Skipping step. ";
            char head[96];
            snprintf(head, sizeof head, prefix, r);
            if (floor_) {
                /* DeepSpeed ZeRO raises "Current loss scale already at minimum" here; FP16_Optimizer
                 * loops forever. dsc skips and counts (max_consecutive_skips_at_min). */
                ev.action = DSC_LOSS_SCALE_AT_MINIMUM;
                skip_note(s, "already at the minimum loss scale", note, sizeof note);
                snprintf(ev.message, sizeof ev.message, "%sAttempted loss scale: %s, reducing to %s%s", head, a, a, note);
            } else {
                const double next = fmax(S / 2.0, p->min_loss_scale);
                st->scale = next;
                ev.action = DSC_LOSS_SCALE_LOWERED;
                snprintf(ev.message, sizeof ev.message, "%sAttempted loss scale: %s, reducing to %s", head, a,
                         fmt_scale(b, sizeof b, next));
            }
        }
        st->last_overflow_iter = st->iter;
    } else {
        st->consecutive_skips_at_min = 0;
        if (s->dynamic) {
            const bool zero = p->algo == DSC_LOSS_SCALER_ZERO;
            if (zero && p->consecutive_hysteresis) st->hysteresis = p->hysteresis;
            const int64_t stable = st->iter - st->last_overflow_iter - 1;
            if (stable > 0 && stable % p->loss_scale_window == 0) {
                if (zero && !p->consecutive_hysteresis) st->hysteresis = p->hysteresis;
                if (isfinite(S * 2.0)) { /* never past the largest finite double */
                    st->scale = S * 2.0;
                    ev.action = DSC_LOSS_SCALE_RAISED;
                }
            }
        }
    }
    st->iter += 1;

    dsc_status_t rc = DSC_OK;
    if (overflow && p->max_consecutive_skips_at_min > 0 &&
        st->consecutive_skips_at_min >= p->max_consecutive_skips_at_min) {
        stop_message(s);
        ev.stop = true;
        rc = DSC_ERR_NUMERIC;
    }
    ev.scale_after = st->scale;
    ev.hysteresis_after = st->hysteresis;
    ev.consecutive_skips_at_min = st->consecutive_skips_at_min;
    if (event) *event = ev;
    return rc;
}

dsc_status_t dsc_loss_scaler_state_get(const dsc_loss_scaler_t *s, dsc_loss_scaler_state_t *out) {
    if (!s || !out) return DSC_ERR_INVALID;
    *out = s->st;
    return DSC_OK;
}

dsc_status_t dsc_loss_scaler_state_set(dsc_loss_scaler_t *s, const dsc_loss_scaler_state_t *in) {
    if (!s || !in) return DSC_ERR_INVALID;
    if (in->iter < 0 || in->last_overflow_iter < -1 || in->last_overflow_iter >= in->iter)
        return fail(s, DSC_ERR_INVALID,
                    "loss scaler state: iter %lld / last_overflow_iter %lld are inconsistent (need -1 <= last < iter)",
                    (long long)in->iter, (long long)in->last_overflow_iter);
    if (in->consecutive_skips_at_min < 0)
        return fail(s, DSC_ERR_INVALID, "loss scaler state: negative skip count %lld",
                    (long long)in->consecutive_skips_at_min);
    dsc_loss_scaler_state_t st = *in;
    if (s->dynamic) {
        if (!isfinite(in->scale) || in->scale <= 0)
            return fail(s, DSC_ERR_INVALID, "loss scaler state: scale %g is not a finite number > 0", in->scale);
        if (s->params.algo == DSC_LOSS_SCALER_ZERO) {
            if (in->hysteresis < 1)
                return fail(s, DSC_ERR_INVALID, "loss scaler state: hysteresis %lld is below 1", (long long)in->hysteresis);
            if (st.hysteresis > s->params.hysteresis) st.hysteresis = s->params.hysteresis;
        } else {
            st.hysteresis = s->params.hysteresis;
        }
    } else {
        st.scale = s->static_scale; /* the configured scale wins */
        st.hysteresis = s->params.hysteresis;
    }
    s->st = st;
    return DSC_OK;
}

dsc_status_t dsc_amp_unscale_clip(double scaled_norm, double scale, double clip, dsc_amp_unscale_clip_t *out) {
    if (!out) return DSC_ERR_INVALID;
    memset(out, 0, sizeof *out);
    if (!isfinite(scaled_norm) || scaled_norm < 0) {
        out->norm = out->norm_clipped = -1.0; /* DeepSpeed reports an inf/NaN norm as -1 */
        return DSC_ERR_INVALID;
    }
    if (!isfinite(scale) || scale <= 0 || !isfinite(clip) || clip < 0) return DSC_ERR_INVALID;
    const double norm = scaled_norm / scale;
    double combined = scale, r = 1.0;
    if (clip > 0) {
        r = (norm + 1e-6) / clip;
        if (r > 1) {
            combined = r * scale;
            out->clipped = true;
        }
    }
    out->combined = combined;
    out->grad_scale = 1.0 / combined;
    out->norm = norm;
    out->norm_clipped = out->clipped ? norm / r : norm;
    return DSC_OK;
}

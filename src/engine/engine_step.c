/* dsc_backward and dsc_step: gradient accumulation, global-norm clipping, the optimizer
 * update, LR scheduling and DeepSpeed's counters (spec 6.2, 6.3, 6.5). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "engine/engine_internal.h"

static void format_progress(const dsc_engine_t *e, int64_t step, char *buf, size_t n);

static dsc_status_t need_optimizer(dsc_engine_t *e, const char *what) {
    if (e->optimizer) return DSC_OK;
    return dsc__engine_fail(e, DSC_ERR_MISUSE, "%s: must provide optimizer during init in order to use backward/step "
                            "(add an \"optimizer\" section to the config or pass a client optimizer)", what);
}

dsc_status_t dsc_backward(dsc_engine_t *e, dsc_tensor_t *loss) {
    if (!e) return DSC_ERR_INVALID;
    dsc_status_t rc = need_optimizer(e, "dsc_backward");
    if (rc != DSC_OK) return rc;
    if (dsc_ctx_status(e->ctx) != DSC_OK) { /* the forward pass failed: keep its message */
        snprintf(e->errmsg, sizeof e->errmsg, "%s", dsc_ctx_errmsg(e->ctx));
        dsc_ctx_end_step(e->ctx);
        return dsc_ctx_status(e->ctx);
    }
    if (!loss || dsc_tensor_numel(loss) != 1) {
        dsc_ctx_end_step(e->ctx);
        return dsc__engine_fail(e, DSC_ERR_INVALID, "dsc_backward: loss must be a 1-element tensor");
    }
    e->last_loss = dsc_tensor_item(loss);
    /* DeepSpeed divides the incoming gradient by GAS so the update uses the mean over the
     * accumulated micro-batches (spec 6.2). In unmanaged mode every step is a boundary. */
    double seed = e->config->managed_gradient_accumulation ? 1.0 / e->gas : 1.0;
    rc = dsc_autograd_backward_scaled(e->ctx, loss, seed);
    if (rc != DSC_OK) snprintf(e->errmsg, sizeof e->errmsg, "%s", dsc_ctx_errmsg(e->ctx));
    dsc_ctx_end_step(e->ctx);
    if (rc == DSC_OK) e->backwards_since_step++;
    return rc;
}

bool dsc_is_gradient_accumulation_boundary(const dsc_engine_t *e) {
    if (!e) return false;
    if (!e->config->managed_gradient_accumulation) return true;
    return (e->micro_steps + 1) % e->gas == 0;
}

void dsc_zero_grad(dsc_engine_t *e) {
    if (e && e->grads) memset(e->grads, 0, (size_t)e->numel * sizeof(float));
}

/* Global L2 norm: per-tensor sums of squares in double, added in parameter order, so the
 * result does not depend on threads (spec 6.5: sqrt(sum ||g_i||^2)). Reports the first
 * parameter holding inf or NaN through *bad_param. */
static double global_grad_norm(const dsc_engine_t *e, int *bad_param) {
    double total = 0;
    *bad_param = -1;
    for (int i = 0; i < dsc_model_param_count(e->model); i++) {
        dsc_param_info_t info;
        dsc_model_param_info(e->model, i, &info);
        const float *g = e->grads + info.offset;
        double s = 0;
        for (int64_t k = 0; k < info.numel; k++) s += (double)g[k] * g[k];
        if (!isfinite(s) && *bad_param < 0) *bad_param = i;
        total += s;
    }
    return sqrt(total);
}

/* OneCycle (or a client schedule) may set beta1 / momentum for the next update. */
static dsc_status_t apply_scheduled_momentum(dsc_engine_t *e) {
    if (!e->scheduler) return DSC_OK;
    bool has = false;
    double mom = dsc_sched_get_momentum(e->scheduler, &has);
    if (!has) return DSC_OK;
    dsc_optim_params_t p = *dsc_optim_get_params(e->optimizer);
    if (p.type == DSC_OPTIM_SGD || p.type == DSC_OPTIM_RMSPROP)
        p.momentum = mom;
    else
        p.beta1 = mom;
    bool has_b2 = false;
    double b2 = dsc_sched_get_beta2(e->scheduler, &has_b2);
    if (has_b2) p.beta2 = b2;
    return dsc_optim_set_params(e->optimizer, &p);
}

static dsc_status_t take_model_step(dsc_engine_t *e) {
    int bad = -1;
    double norm = global_grad_norm(e, &bad);
    e->grad_norm = norm;
    if (bad >= 0) {
        /* fp32 training has no loss scaler to absorb an overflow: refuse to write NaN into
         * the weights, and say where it came from. The gradients are kept for inspection. */
        dsc_param_info_t info;
        dsc_model_param_info(e->model, bad, &info);
        return dsc__engine_fail(e, DSC_ERR_NUMERIC,
                                "step %lld: gradient of %s (and maybe others) holds inf or NaN; the update was not "
                                "applied. Lower the learning rate, check the loss, or enable bf16/fp16 with loss scaling",
                                (long long)e->global_steps + 1, info.name);
    }
    double clip = e->config->gradient_clipping;
    double coef = 1.0;
    /* fp32 path (spec 6.5): always multiply by min(1, c / (n + 1e-6)) when clipping is on. */
    if (clip > 0) coef = fmin(1.0, clip / (norm + 1e-6));
    e->grad_norm_clipped = norm * coef;
    dsc_status_t rc = apply_scheduled_momentum(e);
    if (rc == DSC_OK)
        rc = dsc_optim_step(e->optimizer, e->params, e->grads, (float)coef, dsc__engine_current_lr(e), NULL, DSC_F32);
    if (rc != DSC_OK) return dsc__engine_fail(e, rc, "optimizer step failed: %s", dsc_ctx_errmsg(e->ctx));
    dsc_zero_grad(e);
    if (e->scheduler) {
        rc = dsc_sched_step(e->scheduler);
        if (rc != DSC_OK) return dsc__engine_fail(e, rc, "LR scheduler step failed: %s", dsc_sched_errmsg(e->scheduler));
    }
    /* DeepSpeed prints after the scheduler step, so the line shows the next lr (spec 6.2). */
    const dsc_config_opt_int_t *spp = &e->config->steps_per_print;
    if (spp->set && spp->value > 0 && e->rank == 0 && (e->global_steps + 1) % spp->value == 0) {
        char line[512];
        format_progress(e, e->global_steps + 1, line, sizeof line);
        dsc_ctx_log(e->ctx, DSC_LOG_INFO, "%s", line);
    }
    return DSC_OK;
}

dsc_status_t dsc_step(dsc_engine_t *e) {
    if (!e) return DSC_ERR_INVALID;
    dsc_status_t rc = need_optimizer(e, "dsc_step");
    if (rc != DSC_OK) return rc;
    if (e->backwards_since_step == 0)
        return dsc__engine_fail(e, DSC_ERR_MISUSE, "dsc_step: no dsc_backward since the last step");
    if (dsc_is_gradient_accumulation_boundary(e)) {
        rc = take_model_step(e);
        if (rc != DSC_OK) return rc;
        e->global_steps++;
        e->global_samples += e->config->managed_gradient_accumulation
                                 ? e->train_batch_size
                                 : (int64_t)(e->train_batch_size / e->gas) * e->backwards_since_step;
        e->backwards_since_step = 0;
    }
    e->micro_steps++;
    return DSC_OK;
}

static void format_progress(const dsc_engine_t *e, int64_t step, char *buf, size_t n) {
    double beta2;
    double mom = dsc_engine_momentum(e, &beta2);
    char mom_s[96];
    if (isnan(mom))
        snprintf(mom_s, sizeof mom_s, "[]");
    else if (!isnan(beta2))
        snprintf(mom_s, sizeof mom_s, "[(%.10g, %.10g)]", mom, beta2);
    else
        snprintf(mom_s, sizeof mom_s, "[%.10g]", mom);
    snprintf(buf, n, "[Rank %d] step=%lld, skipped=%lld, lr=[%.10g], mom=%s", e->rank, (long long)step,
             (long long)e->skipped_steps, dsc__engine_current_lr(e), mom_s);
}

void dsc_engine_progress_line(const dsc_engine_t *e, char *buf, size_t n) {
    if (!buf || n == 0) return;
    if (!e) {
        snprintf(buf, n, "(no engine)");
        return;
    }
    format_progress(e, e->global_steps, buf, n);
}

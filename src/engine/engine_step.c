/* dsc_backward and dsc_step: gradient accumulation, global-norm clipping, the optimizer
 * update, LR scheduling and DeepSpeed's counters (spec 6.2, 6.3, 6.5). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/device.h"
#include "engine/engine_internal.h"

static void format_progress(const dsc_engine_t *e, int64_t step, char *buf, size_t n);

static dsc_status_t need_optimizer(dsc_engine_t *e, const char *what) {
    if (e->optimizer) return DSC_OK;
    return dsc__engine_fail(e, DSC_ERR_MISUSE, "%s: must provide optimizer during init in order to use backward/step "
                            "(add an \"optimizer\" section to the config or pass a client optimizer)", what);
}

/* The loss into slot n_losses of loss_dev, as a double, by the device (a copy of one
 * element: nothing is read on the host). */
static dsc_status_t keep_loss(dsc_engine_t *e, dsc_tensor_t *loss) {
    if (e->n_losses == e->loss_cap) { /* more backwards than the accumulation holds: grow */
        const int cap = e->loss_cap ? 2 * e->loss_cap : (e->gas > 0 ? e->gas : 1);
        double *grown = dsc__dev_alloc(e->ctx, DSC_MEM_OTHER, sizeof *grown * (size_t)cap);
        if (!grown) return dsc__engine_fail(e, DSC_ERR_NOMEM, "dsc_backward: out of memory keeping the loss");
        if (e->n_losses) dsc__dev_copy(e->ctx, grown, e->loss_dev, sizeof *grown * (size_t)e->n_losses);
        dsc__dev_free(e->ctx, DSC_MEM_OTHER, e->loss_dev, sizeof *grown * (size_t)e->loss_cap);
        e->loss_dev = grown;
        e->loss_cap = cap;
    }
    dsc_status_t rc = dsc__dev_convert(e->ctx, e->loss_dev + e->n_losses, DSC_F64, dsc_tensor_data(loss),
                                       dsc_tensor_dtype(loss), 1);
    if (rc != DSC_OK) return dsc__engine_fail(e, rc, "dsc_backward: keeping the loss: %s", dsc_ctx_errmsg(e->ctx));
    e->last_loss_slot = e->n_losses++;
    e->last_loss_read = false;
    return DSC_OK;
}

/* At the boundary micro-step: the monitor's training loss, every micro-batch's loss of the
 * accumulation in one device-to-host read; nothing is read without a monitor. */
static dsc_status_t monitor_losses(dsc_engine_t *e) {
    const int n = e->n_losses;
    e->n_losses = 0; /* the next accumulation starts at slot 0 */
    if (!dsc__engine_monitor_wants_loss(e->monitor) || n == 0) return DSC_OK;
    double *host = malloc(sizeof *host * (size_t)n);
    if (!host) return dsc__engine_fail(e, DSC_ERR_NOMEM, "dsc_backward: out of memory reading the losses");
    dsc_status_t rc = dsc__dev_to_host(e->ctx, host, e->loss_dev, sizeof *host * (size_t)n);
    e->host_reads++;
    if (rc == DSC_OK) {
        dsc__engine_monitor_losses(e->monitor, host, n, e->config->managed_gradient_accumulation ? e->gas : 1,
                                   e->global_samples);
        e->last_loss = host[n - 1];
        e->last_loss_read = true;
    }
    free(host);
    return rc == DSC_OK ? DSC_OK : dsc__engine_fail(e, rc, "dsc_backward: reading the losses: %s", dsc_ctx_errmsg(e->ctx));
}

double dsc__engine_last_loss(dsc_engine_t *e) {
    if (e->last_loss_slot >= 0 && !e->last_loss_read) { /* read on demand: the caller's sync */
        double v = NAN;
        if (dsc__dev_to_host(e->ctx, &v, e->loss_dev + e->last_loss_slot, sizeof v) == DSC_OK) e->last_loss = v;
        e->last_loss_read = true;
    }
    return e->last_loss;
}

dsc_status_t dsc_backward(dsc_engine_t *e, dsc_tensor_t *loss) {
    if (!e) return DSC_ERR_INVALID;
    dsc_status_t rc = need_optimizer(e, "dsc_backward");
    if (rc != DSC_OK) return rc;
    dsc__dev_mark(e->ctx, "mark: dsc_backward begins");
    if (dsc_ctx_status(e->ctx) != DSC_OK) { /* the forward pass failed: keep its message */
        snprintf(e->errmsg, sizeof e->errmsg, "%s", dsc_ctx_errmsg(e->ctx));
        dsc_ctx_end_step(e->ctx);
        dsc__zero_after_backward(e->zero, false); /* nothing stays gathered */
        return dsc_ctx_status(e->ctx);
    }
    if (!loss || dsc_tensor_numel(loss) != 1) {
        dsc_ctx_end_step(e->ctx);
        return dsc__engine_fail(e, DSC_ERR_INVALID, "dsc_backward: loss must be a 1-element tensor");
    }
    rc = keep_loss(e, loss); /* on the device: no host sync */
    if (rc != DSC_OK) {
        dsc_ctx_end_step(e->ctx);
        dsc__zero_after_backward(e->zero, false);
        return rc;
    }
    dsc__engine_monitor_backward_begin(e->monitor);
    /* DeepSpeed divides the incoming gradient by GAS so the update uses the mean over the
     * accumulated micro-batches (spec 6.2). In unmanaged mode every step is a boundary. */
    /* Under fp16 the loss is multiplied by the loss scale S, at every ZeRO stage (DeepSpeed
     * forgets it at stage 0: docs/deepspeed-compat.md). */
    const double seed = dsc__engine_loss_seed(e);
    dsc__dev_mark(e->ctx, "mark: autograd begins");
    /* stage 1 with overlap_comm reduces during the boundary micro-step's backward; optimizer
     * offload: on the boundary micro-step the reduced gradients go to the host as they land */
    dsc__zero_begin_backward(e->zero, dsc_is_gradient_accumulation_boundary(e));
    /* the step ends right after: activations' gradients may go back as backward passes them */
    e->ctx->release_grads = true;
    rc = dsc_autograd_backward_scaled(e->ctx, loss, seed);
    e->ctx->release_grads = false;
    dsc__dev_mark(e->ctx, "mark: autograd done");
    if (rc != DSC_OK) snprintf(e->errmsg, sizeof e->errmsg, "%s", dsc_ctx_errmsg(e->ctx));
    dsc_ctx_end_step(e->ctx);
    dsc__dev_mark(e->ctx, "mark: step arena released");
    if (rc != DSC_OK) dsc__zero_after_backward(e->zero, false);
    if (rc == DSC_OK && dsc_is_gradient_accumulation_boundary(e)) rc = monitor_losses(e);
    dsc__engine_monitor_backward_inner_end(e->monitor);
    if (rc == DSC_OK) rc = dsc__zero_after_backward(e->zero, true); /* fp32 accumulation; stages 2-3: the unscoped sends */
    dsc__engine_monitor_backward_end(e->monitor);
    if (rc == DSC_OK) e->backwards_since_step++;
    return rc;
}

bool dsc_is_gradient_accumulation_boundary(const dsc_engine_t *e) {
    if (!e) return false;
    if (!e->config->managed_gradient_accumulation) return true;
    return (e->micro_steps + 1) % e->gas == 0;
}

void dsc_zero_grad(dsc_engine_t *e) {
    if (e && e->zero) dsc__zero_zero_grads(e->zero);
}

/* Logs which parameter tensors hold inf or NaN (at most 8 names, then a count). */
static void log_bad_tensors(dsc_engine_t *e) {
    const int *segment_param = NULL;
    size_t n_segments = 0;
    const dsc_amp_segment_t *segments = dsc__zero_segments(e->zero, &segment_param, &n_segments);
    bool *bad = calloc(n_segments + 1, sizeof *bad);
    if (!bad) return;
    bool any;
    double sumsq;
    size_t n_bad = 0;
    dsc_amp_scan_segments(e->ctx, e->acc32, DSC_F32, (size_t)e->n_local, segments, n_segments, bad, NULL, &any, &sumsq,
                          &n_bad);
    char names[1024] = "";
    size_t off = 0, listed = 0;
    for (size_t i = 0; i < n_segments && off < sizeof names; i++) {
        if (!bad[i]) continue;
        dsc_param_info_t info;
        dsc_model_param_info(e->model, segment_param[i], &info);
        if (listed++ < 8) off += (size_t)snprintf(names + off, sizeof names - off, "%s%s", listed > 1 ? ", " : "", info.name);
    }
    if (listed > 8 && off < sizeof names) snprintf(names + off, sizeof names - off, " and %zu more", listed - 8);
    if (n_bad)
        dsc_ctx_log(e->ctx, DSC_LOG_WARN, "step %lld: rank %d: inf/NaN gradients in %zu tensor(s): %s; update skipped",
                    (long long)e->global_steps + 1, e->rank, n_bad, names);
    else
        dsc_ctx_log(e->ctx, DSC_LOG_WARN, "step %lld: rank %d: inf/NaN gradients on another rank's partition; update skipped",
                    (long long)e->global_steps + 1, e->rank);
    free(bad);
}

/* OneCycle (or a client schedule) may set beta1 / momentum for the next update. */
dsc_status_t dsc__engine_apply_scheduled_momentum(dsc_engine_t *e) {
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
    dsc__engine_monitor_reduce_begin(e->monitor);
    /* The summed gradient, its overflow flag and sum of squares over all ranks. */
    bool overflow = false;
    double sumsq = 0;
    dsc__dev_mark(e->ctx, "mark: boundary begins");
    dsc_status_t rc = dsc__zero_reduce_gradients(e->zero, &overflow, &sumsq);
    dsc__dev_mark(e->ctx, "mark: gradients reduced and scanned");
    e->host_reads++; /* the step's one read of device values: overflow and norm */
    dsc__engine_monitor_reduce_end(e->monitor);
    if (rc != DSC_OK) return rc;
    overflow = overflow && e->check_overflow;
    /* acc32 holds sums over ranks: the mean is 1/N of it (folded into the scale below). */
    const double inv_world = 1.0 / e->world_size;
    dsc_loss_scaler_event_t ev;
    rc = dsc_loss_scaler_update(&e->scaler, overflow, &ev);
    e->loss_scale_used = ev.scale_before;
    if (ev.message[0] && e->rank == 0) dsc_ctx_log(e->ctx, DSC_LOG_INFO, "%s", ev.message);
    if (overflow) {
        log_bad_tensors(e); /* a second scan, on skipped steps only */
        e->host_reads++;
        e->grad_norm = e->grad_norm_clipped = NAN;
        e->skipped_steps++;
        dsc_zero_grad(e);
        if (rc != DSC_OK) return dsc__engine_fail(e, rc, "%s", dsc_loss_scaler_errmsg(&e->scaler));
        return DSC_OK; /* no update and no scheduler step on a skipped step (spec 3.5) */
    }
    /* Unscale and clip are one multiplication, with the scale the backward used (spec 3.6;
     * DeepSpeed uses the updated one: docs/deepspeed-compat.md). */
    dsc_amp_unscale_clip_t uc;
    dsc_amp_unscale_clip(sqrt(sumsq) * inv_world, ev.scale_before, e->config->gradient_clipping, &uc);
    e->grad_norm = uc.norm;
    e->grad_norm_clipped = uc.norm_clipped;
    rc = dsc__engine_apply_scheduled_momentum(e);
    if (rc == DSC_OK)
        rc = dsc__engine_optim_step(e, (float)(uc.grad_scale * inv_world), dsc__engine_current_lr(e),
                                    e->model_dtype != DSC_F32 ? dsc__zero_local_params(e->zero) : NULL,
                                    e->model_dtype); /* through the NVMe swap file when offloaded */
    if (rc != DSC_OK) return dsc__engine_fail(e, rc, "optimizer step failed: %s", dsc_ctx_errmsg(e->ctx));
    dsc__dev_mark(e->ctx, "mark: optimizer step done");
    rc = dsc__zero_finish_step(e->zero); /* the update on every rank; gradients zeroed */
    dsc__dev_mark(e->ctx, "mark: zero finish done");
    if (rc != DSC_OK) return rc;
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

double dsc__engine_loss_seed(const dsc_engine_t *e) {
    return (e->config->managed_gradient_accumulation ? 1.0 / e->gas : 1.0) * dsc_loss_scaler_scale(&e->scaler);
}

void dsc__engine_note_seed_hint(dsc_engine_t *e) { e->ctx->loss_grad.seed_hint = dsc__engine_loss_seed(e); }

dsc_status_t dsc_step(dsc_engine_t *e) {
    if (!e) return DSC_ERR_INVALID;
    dsc_status_t rc = need_optimizer(e, "dsc_step");
    if (rc != DSC_OK) return rc;
    dsc__dev_mark(e->ctx, "mark: dsc_step begins");
    if (e->backwards_since_step == 0)
        return dsc__engine_fail(e, DSC_ERR_MISUSE, "dsc_step: no dsc_backward since the last step");
    dsc__engine_monitor_step_begin(e->monitor);
    const bool boundary = dsc_is_gradient_accumulation_boundary(e);
    if (boundary) {
        rc = take_model_step(e);
        if (rc != DSC_OK) return rc;
        e->global_steps++;
        e->global_samples += e->config->managed_gradient_accumulation
                                 ? e->train_batch_size
                                 : (int64_t)(e->train_batch_size / e->gas) * e->backwards_since_step;
        e->backwards_since_step = 0;
        uint64_t sent = dsc_comm_stats(e->comm).lifetime_sent_bytes;
        /* The mark was taken at the end of the previous step (lifetime counts survive a
         * caller's reset of the counters). */
        e->comm_sent_last_step = sent - e->comm_sent_mark;
        e->comm_sent_mark = sent; /* the next step counts from here: ZeRO-3's forward gathers come before its backward */
    }
    dsc__engine_monitor_step_end(e->monitor, boundary, e->global_samples, dsc__engine_current_lr(e),
                                 e->model_dtype == DSC_F16, dsc_engine_loss_scale(e));
    e->micro_steps++;
    dsc__engine_note_seed_hint(e); /* the loss scale may have moved */
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

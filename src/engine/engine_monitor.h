/* The engine's monitors and wall-clock timers (issue 9; DeepSpeed spec §1.12, §6.6).
 *
 * The engine holds one dsc_engine_monitor_t (NULL-safe everywhere: every call on NULL is a
 * no-op) and calls, in this order:
 *
 *   dsc_initialize:  dsc__engine_monitor_new(ctx, config, rank, &m, err, errsz)
 *   dsc_backward:    dsc__engine_monitor_backward_begin(m)
 *                    ... autograd ...
 *                    dsc__engine_monitor_losses(m, losses, n, gas, global_samples) at the boundary
 *                    dsc__engine_monitor_backward_inner_end(m)
 *                    ... stage 2 reduce-scatter (dsc__zero_after_backward) ...
 *                    dsc__engine_monitor_backward_end(m)
 *   dsc_step:        dsc__engine_monitor_step_begin(m)
 *                    ... at the boundary, around dsc__zero_reduce_gradients (with the overflow / norm scan):
 *                    dsc__engine_monitor_reduce_begin(m) / dsc__engine_monitor_reduce_end(m)
 *                    ... counters updated (global_steps, global_samples) ...
 *                    dsc__engine_monitor_step_end(m, boundary, global_samples, lr, fp16, loss_scale)
 *   dsc_engine_free: dsc__engine_monitor_free(m)
 *
 * What it writes, as DeepSpeed's engine does (rank 0 only):
 *   - at the boundary micro-step's backward: Train/Samples/train_loss = the mean of the
 *     accumulated micro-batch losses (sum of loss / GAS), step = global_samples before the
 *     update;
 *   - at the end of a boundary step: Train/Samples/lr (the lr the next update uses) and, under
 *     fp16, Train/Samples/loss_scale, step = global_samples after the update;
 *   - with wall_clock_breakdown: after every step the line
 *     "[Rank 0] time (ms) | fwd_microstep: .. | bwd_microstep: .. | bwd_inner_microstep: .. |
 *      bwd_allreduce_microstep: .. | step_microstep: .." and at boundaries
 *     "[Rank 0] time (ms) | fwd: .. | bwd: .. | bwd_inner: .. | bwd_allreduce: .. | step: .."
 *     (global timers summed over the accumulation), and the monitor events
 *     Train/Samples/elapsed_time_ms_{forward,backward,backward_inner,backward_allreduce,step}.
 *
 * Timers: forward runs outside the engine, so unless the caller brackets it with
 * dsc__engine_monitor_forward_begin/_end (public as dsc_engine_forward_begin/_end), the
 * forward time is the time from the end of the previous engine call (initialisation, step)
 * to dsc_backward. bwd = bwd_inner + bwd_allreduce (the per-micro-step reduce-scatter of stage
 * 2, plus the boundary reduction of stages 0-1 which dsc runs inside dsc_step, as DeepSpeed
 * runs it in the backward of the boundary micro-step); step excludes that reduction. */
#ifndef DSC_ENGINE_MONITOR_H
#define DSC_ENGINE_MONITOR_H

#include <stdbool.h>
#include <stdint.h>

#include "dsc/config.h"
#include "dsc/monitor.h"
#include "dsc/tensor.h"

typedef struct dsc_engine_monitor dsc_engine_monitor_t;

/* Creates the monitors the config enables (rank 0; other ranks still time when
 * wall_clock_breakdown is set, but print and write nothing). *out is NULL when nothing is
 * enabled (no monitor, no wall_clock_breakdown): every call below is then a no-op.
 * Errors: dsc_monitor_new's (DSC_ERR_IO naming the directory, DSC_ERR_UNSUPPORTED). */
dsc_status_t dsc__engine_monitor_new(dsc_ctx_t *ctx, const dsc_config_t *cfg, int rank, dsc_engine_monitor_t **out,
                                     char *err, size_t errsz);
void dsc__engine_monitor_free(dsc_engine_monitor_t *m);

void dsc__engine_monitor_forward_begin(dsc_engine_monitor_t *m);
/* One caller event (dsc_engine_monitor_write) at step global_samples. */
void dsc__engine_monitor_event(dsc_engine_monitor_t *m, const char *name, double value, int64_t global_samples);
void dsc__engine_monitor_forward_end(dsc_engine_monitor_t *m);
void dsc__engine_monitor_backward_begin(dsc_engine_monitor_t *m);
/* Whether the monitor writes the training loss (then the engine reads the losses at the
 * boundary). */
bool dsc__engine_monitor_wants_loss(const dsc_engine_monitor_t *m);
/* At the boundary micro-step's backward: the micro-batch losses (unscaled) of the
 * accumulation, in order; global_samples before the update. A failed monitor write is
 * logged (WARN) once and the monitor switched off; training goes on. */
void dsc__engine_monitor_losses(dsc_engine_monitor_t *m, const double *losses, int n, int gas, int64_t global_samples);
void dsc__engine_monitor_backward_inner_end(dsc_engine_monitor_t *m);
void dsc__engine_monitor_backward_end(dsc_engine_monitor_t *m);
void dsc__engine_monitor_step_begin(dsc_engine_monitor_t *m);
void dsc__engine_monitor_reduce_begin(dsc_engine_monitor_t *m);
void dsc__engine_monitor_reduce_end(dsc_engine_monitor_t *m);
void dsc__engine_monitor_step_end(dsc_engine_monitor_t *m, bool boundary, int64_t global_samples, double lr,
                                  bool fp16, double loss_scale);

/* The timer values (ms) last printed, for tests: `global` false gives the last micro-step's
 * line, true the last boundary line (sums over the accumulation). Index order: forward,
 * backward, backward_inner, backward_allreduce, step. */
void dsc__engine_monitor_timers(const dsc_engine_monitor_t *m, bool global, double out_ms[5]);

#endif

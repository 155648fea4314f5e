/* zero_optimization.offload_optimizer in the engine: "cpu" on a host device is a no-op (the
 * state is in host memory already); "cpu" from any other device (guarded, cuda:N) runs the
 * optimizer on the host, in a second context on the cpu device: the fp32 master (ZeRO puts it
 * there), the optimizer's states and a host copy of this rank's reduced gradient partition
 * live in host memory, the update runs with the CPU's kernels, and the updated 16-bit (or
 * fp32) values of the partition go back to the device's working copy, from where ZeRO's
 * all-gather (stages 1-2) or re-gather (stage 3) spreads them as without offload. "nvme"
 * puts the optimizer's state of this rank's partition in a swap file (src/zero/offload_nvme.c)
 * that the optimizer step and checkpoints go through.
 *
 * The gradient partition is reduced, scanned for inf/NaN and its norm taken on the device,
 * as without offload (dsc__zero_reduce_gradients): those need every rank's sum before any
 * update, the device holds it first, and the same kernels give the same overflow decision
 * and clipping factor bit for bit; only an update that will happen copies it to the host. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/device.h"
#include "engine/engine_internal.h"
#include "optim/optim_internal.h"
#include "zero/offload_nvme.h"

bool dsc__engine_offload_nvme(const dsc_engine_t *e) {
    const dsc_config_zero_t *z = &e->config->zero_optimization;
    return z->stage > 0 && z->offload_optimizer.device == DSC_CONFIG_OFFLOAD_NVME;
}

bool dsc__engine_offload_host(const dsc_engine_t *e) {
    const dsc_config_zero_t *z = &e->config->zero_optimization;
    return z->stage > 0 && z->offload_optimizer.device != DSC_CONFIG_OFFLOAD_NONE && e->ctx->device.kind != DSC_DEVICE_CPU;
}

dsc_ctx_t *dsc__engine_optim_ctx(const dsc_engine_t *e) { return e->host_ctx ? e->host_ctx : e->ctx; }

static void forward_log(dsc_log_level_t level, const char *message, void *user) {
    dsc_ctx_log((dsc_ctx_t *)user, level, "%s", message);
}

dsc_status_t dsc__engine_open_host(dsc_engine_t *e, char *err, size_t errsz) {
    if (!dsc__engine_offload_host(e)) return DSC_OK;
    dsc_ctx_options_t o = DSC_CTX_OPTIONS_INIT;
    o.device = "cpu";
    o.log_fn = forward_log; /* its messages (out of memory, ...) land in the engine's log */
    o.log_user = e->ctx;
    if (dsc_ctx_new(&o, &e->host_ctx) != DSC_OK) {
        snprintf(err, errsz, "zero_optimization.offload_optimizer.device \"cpu\": cannot create the host context "
                 "for the optimizer (out of memory)");
        return DSC_ERR_NOMEM;
    }
    return DSC_OK;
}

void dsc__engine_close_host(dsc_engine_t *e) {
    dsc_ctx_free(e->host_ctx);
    e->host_ctx = NULL;
}

dsc_status_t dsc__engine_check_offload(dsc_engine_t *e, char *err, size_t errsz) {
    const dsc_config_zero_t *z = &e->config->zero_optimization;
    const dsc_config_offload_device_t dev = z->offload_optimizer.device;
    if (z->stage == 0 || dev == DSC_CONFIG_OFFLOAD_NONE) return DSC_OK;
    if (dev == DSC_CONFIG_OFFLOAD_NVME && e->optim_params.type == DSC_OPTIM_LAMB) {
        snprintf(err, errsz, "%s: zero_optimization.offload_optimizer.device \"nvme\": Lamb cannot be offloaded (its "
                 "trust ratio needs whole tensors; DeepSpeed offloads Adam, Adagrad and Lion)", e->config->source_name);
        return DSC_ERR_UNSUPPORTED;
    }
    if (dsc__engine_offload_host(e)) { /* "cpu", or "nvme" with the step on the host (ZeRO-Infinity) */
        if (z->offload_optimizer.fast_init && e->rank == 0) /* DeepSpeed reads it for NVMe only */
            dsc_ctx_log(e->ctx, DSC_LOG_INFO, "zero_optimization.offload_optimizer.fast_init has no effect with device "
                        "\"cpu\": the host state is allocated and filled once at start (DeepSpeed uses it for NVMe)");
        return DSC_OK;
    }
    if (dev == DSC_CONFIG_OFFLOAD_CPU && e->rank == 0)
        dsc_ctx_log(e->ctx, DSC_LOG_INFO, "zero_optimization.offload_optimizer.device \"cpu\" is a no-op on the %s "
                    "device: the optimizer state already lives in host memory", e->ctx->device.name);
    return DSC_OK;
}

/* Whether the host step runs in parts, its 16-bit update staged part by part (host_step):
 * an element-wise optimizer with its states in memory (Lamb needs whole tensors; the NVMe
 * swapper steps its own sub-groups into a whole-partition copy), and a 16-bit update to stage
 * (none with offload_param: the step writes into the host partition, or ZeRO rounds the master
 * into the swap file; host_step then reads the whole gradient partition, so it is not streamed
 * in parts either). */
static bool steps_in_parts(const dsc_engine_t *e) {
    return e->model_dtype != DSC_F32 && !e->nvme && !dsc__engine_offload_nvme(e) &&
           e->optim_params.type != DSC_OPTIM_LAMB && !dsc__zero_params_offloaded(e->zero);
}

/* Bytes per element of the host copy of the 16-bit update: none in fp32, and none when the
 * parameter partition itself is host memory (offload_param: the step writes into it). */
static size_t half_host_size(const dsc_engine_t *e) {
    if (e->model_dtype == DSC_F32 || dsc__zero_params_offloaded(e->zero)) return 0; /* "nvme": ZeRO rounds into the file */
    return dsc_dtype_size(e->model_dtype);
}

/* Staging buffers of the 16-bit update: two when stepping a partition of several parts on a
 * device with from_host_async (part j goes up from one while the CPU steps part j+1 into the
 * other), else one. dsc estimate counts the same (every device that offloads has the entry). */
static int half_buffers(const dsc_engine_t *e) {
    return steps_in_parts(e) && e->n_local > e->half_elems && dsc__dev_has_from_host_async(e->ctx) ? 2 : 1;
}

/* The events that mark the ends of the asynchronous copies (engine_internal.h): for the
 * update's staging buffers when the device uploads asynchronously and the step runs in parts,
 * for the streamed gradient's buffers when it copies down asynchronously. */
static dsc_status_t setup_copy_events(dsc_engine_t *e) {
    const bool up = steps_in_parts(e) && e->half_host && dsc__dev_has_from_host_async(e->ctx);
    const bool down = e->grad_stream && dsc__dev_has_to_host_async(e->ctx);
    for (int b = 0; b < 2; b++) {
        if (up && b < e->half_bufs && !(e->half_up[b] = dsc__dev_event_new(e->ctx))) return DSC_ERR_NOMEM;
        if (down && !(e->grad_down[b] = dsc__dev_event_new(e->ctx))) return DSC_ERR_NOMEM;
    }
    return DSC_OK;
}

/* The host copies of the gradient partition and of the 16-bit update (one part of it when
 * stepping in parts, two with an asynchronous upload: 2 bytes per element of the partition
 * saved on the host), pinned when asked and the device offers it; the log line says what
 * lives where. */
static dsc_status_t setup_host(dsc_engine_t *e, char *err, size_t errsz) {
    const size_t n = (size_t)e->n_local, hs = half_host_size(e);
    const bool pin = e->config->zero_optimization.offload_optimizer.pin_memory;
    e->half_elems = steps_in_parts(e) ? dsc__offload_part_elems(e->n_local, e->config->zero_optimization.sub_group_size)
                                      : e->n_local;
    e->half_bufs = half_buffers(e);
    e->grad_stream = steps_in_parts(e) && dsc__offload_grad_streams(e->n_local, e->half_elems);
    const size_t grad_elems = e->grad_stream ? 2 * (size_t)e->half_elems : n;
    e->grad_host = dsc__host_buffer_alloc(e->host_ctx, e->ctx, DSC_MEM_GRAD_ACCUM, grad_elems * 4, pin, &e->grad_pinned,
                                          "the offloaded optimizer's gradient partition");
    if (e->grad_host && hs)
        e->half_host = dsc__host_buffer_alloc(e->host_ctx, e->ctx, DSC_MEM_PARAMS,
                                              (size_t)e->half_bufs * (size_t)e->half_elems * hs, pin, &e->half_pinned,
                                              "the offloaded optimizer's 16-bit update");
    if (!e->grad_host || (hs && !e->half_host)) {
        snprintf(err, errsz, "zero_optimization.offload_optimizer.device \"cpu\": out of host memory for the "
                 "gradient partition (%zu elements)", n);
        return DSC_ERR_NOMEM;
    }
    if (setup_copy_events(e) != DSC_OK) {
        snprintf(err, errsz, "zero_optimization.offload_optimizer.device \"cpu\": %s", dsc_ctx_errmsg(e->ctx));
        return DSC_ERR_NOMEM;
    }
    /* mirrored as backward reduces it, when the device copies asynchronously (not when streamed) */
    e->grad_mirrored = dsc__zero_mirror_set(e->zero, e->grad_stream ? NULL : e->grad_host);
    bool master_pinned = false;
    dsc__zero_master_on_host(e->zero, &master_pinned);
    const bool all_pinned = master_pinned && e->grad_pinned && (!hs || e->half_pinned);
    const size_t pinned = (master_pinned ? n * 4 : 0) + (e->grad_pinned ? grad_elems * 4 : 0) +
                          (e->half_pinned ? (size_t)e->half_bufs * (size_t)e->half_elems * hs : 0);
    const bool nvme = dsc__engine_offload_nvme(e);
    const size_t states = nvme ? 0 : (size_t)dsc_optim_num_states(e->optimizer) * n * 4;
    dsc_ctx_log(e->ctx, DSC_LOG_INFO, "rank %d: optimizer (%s) offloaded from %s to the host: fp32 master, %d state(s)%s "
                "and the gradient partition of %zu elements in host memory (%zu bytes pinned%s, %zu bytes of states); "
                "the step runs on the CPU in parts of %lld elements, %s; gradients go to the host %s", e->rank,
                dsc_optim_class_name(&e->optim_params), e->ctx->device.name, dsc_optim_num_states(e->optimizer),
                nvme ? " (on NVMe, below)" : "", n, pinned,
                all_pinned ? "" : !pin ? ", pin_memory false" : ", the device offers no pinned host memory", states,
                (long long)(steps_in_parts(e) ? e->half_elems : e->n_local),
                e->half_up[0] ? (e->half_bufs == 2 ? "each part's update going back while the next is stepped"
                                                   : "the update going back without waiting")
                              : "each part's update going back before the next is stepped",
                e->grad_stream ? "part by part at the step, through two part-sized buffers"
                : e->grad_mirrored ? "as they are reduced" : "at the step (the device has no asynchronous copy)");
    return DSC_OK;
}

static void free_host(dsc_engine_t *e) {
    dsc__dev_sync(e->ctx); /* no copy may still be writing into grad_host or reading half_host */
    /* (ZeRO is gone by now: the size from what was allocated) */
    const size_t n = (size_t)e->n_local, hs = e->half_host ? dsc_dtype_size(e->model_dtype) : 0;
    dsc__host_buffer_free(e->host_ctx, e->ctx, DSC_MEM_GRAD_ACCUM, e->grad_host,
                          (e->grad_stream ? 2 * (size_t)e->half_elems : n) * 4, e->grad_pinned);
    dsc__host_buffer_free(e->host_ctx, e->ctx, DSC_MEM_PARAMS, e->half_host,
                          (size_t)e->half_bufs * (size_t)e->half_elems * hs, e->half_pinned);
    for (int b = 0; b < 2; b++) {
        dsc__dev_event_free(e->ctx, e->half_up[b]);
        dsc__dev_event_free(e->ctx, e->grad_down[b]);
        e->half_up[b] = e->grad_down[b] = NULL;
    }
    e->grad_host = NULL;
    e->half_host = NULL;
}

dsc_status_t dsc__engine_setup_offload(dsc_engine_t *e, char *err, size_t errsz) {
    if (e->host_ctx && e->optimizer) {
        dsc_status_t rc = setup_host(e, err, errsz);
        if (rc != DSC_OK) return rc;
    }
    if (!dsc__engine_offload_nvme(e) || !e->optimizer) return DSC_OK;
    /* off a host device the swapper runs in the host context: its buffers are the states the
     * host optimizer steps (no device window) */
    dsc_ctx_t *octx = dsc__engine_optim_ctx(e);
    const dsc_config_t *c = e->config;
    const dsc_config_offload_optimizer_t *oo = &c->zero_optimization.offload_optimizer;
    const dsc_nvme_options_t o = {oo->nvme_path, c->zero_optimization.sub_group_size, oo->buffer_count,
                                  oo->pipeline_read, oo->pipeline_write, c->aio.block_size, c->aio.queue_depth,
                                  c->aio.single_submit};
    const int ns = dsc_optim_num_states(e->optimizer);
    if (ns == 0) {
        if (e->rank == 0)
            dsc_ctx_log(e->ctx, DSC_LOG_INFO, "zero_optimization.offload_optimizer.device \"nvme\": the %s optimizer "
                        "keeps no state: nothing to swap", dsc_optim_class_name(&e->optim_params));
        return DSC_OK;
    }
    double initial[3] = {0, 0, 0};
    for (int i = 0; i < ns && i < 3; i++) initial[i] = dsc__optim_state_initial(e->optimizer, i);
    dsc_status_t rc = dsc__nvme_new(octx, &o, e->rank, e->n_local, ns, initial, &e->nvme, err, errsz);
    if (rc != DSC_OK) return rc;
    dsc_ctx_log(e->ctx, DSC_LOG_INFO, "rank %d: optimizer state (%s) on NVMe: %s", e->rank,
                dsc_optim_class_name(&e->optim_params), dsc__nvme_describe(e->nvme));
    return DSC_OK;
}

void dsc__engine_free_offload(dsc_engine_t *e) {
    dsc__nvme_free(e->nvme);
    e->nvme = NULL;
    if (e->host_ctx) free_host(e);
}

/* The update on the host: the reduced partition comes over, the CPU steps master and states
 * and writes the 16-bit copy into half_host, which goes back into the device's working copy
 * (fp32: ZeRO copies the master back in dsc__zero_finish_step). */
static dsc_status_t host_step(dsc_engine_t *e, float grad_scale, double lr, void *half, dsc_dtype_t half_dtype) {
    const size_t n = (size_t)e->n_local;
    /* mirrored during backward: only what the boundary backward did not touch still moves */
    dsc_status_t rc = e->grad_mirrored ? dsc__zero_mirror_finish(e->zero) : dsc__dev_to_host(e->ctx, e->grad_host, e->acc32, n * 4);
    if (rc != DSC_OK) return rc;
    /* offload_param: the partition is host memory, the step writes the update straight into it */
    const bool in_place = dsc__zero_params_on_host(e->zero, NULL);
    if (in_place && (rc = dsc__zero_params_host_idle(e->zero)) != DSC_OK) return rc; /* the gathers' uploads read it */
    void *hh = half && !in_place ? e->half_host : half;
    rc = e->nvme && dsc_optim_num_states(e->optimizer) > 0 /* ZeRO-Infinity: the states through the swap file */
             ? dsc__nvme_step(e->nvme, e->optimizer, e->master, e->grad_host, grad_scale, lr, hh, half_dtype)
             : dsc_optim_step(e->optimizer, e->master, e->grad_host, grad_scale, lr, hh, half_dtype);
    if (rc != DSC_OK) {
        dsc_ctx_set_error(e->ctx, rc, "the offloaded optimizer's step: %s", dsc_ctx_errmsg(e->host_ctx));
        return rc;
    }
    return half && !in_place ? dsc__dev_from_host(e->ctx, half, e->half_host, n * dsc_dtype_size(half_dtype)) : DSC_OK;
}

static double seconds_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The host waits for the copy that ev ends (timed: copy_wait_s). */
static dsc_status_t wait_copy(dsc_engine_t *e, dsc_device_event_t *ev) {
    const double t0 = seconds_now();
    const dsc_status_t rc = dsc__dev_event_sync(e->ctx, ev);
    e->copy_wait_s += seconds_now() - t0;
    return rc;
}

/* No upload still reads half_host (before the host writes it outside the step). */
static dsc_status_t half_host_idle(dsc_engine_t *e) {
    dsc_status_t rc = DSC_OK;
    for (int b = 0; b < 2 && rc == DSC_OK; b++)
        if (e->half_up[b]) rc = wait_copy(e, e->half_up[b]);
    return rc;
}

/* The same update in parts of half_elems elements: each part's 16-bit values are written
 * into a staging buffer of half_host and copied into the device's working copy. With the
 * device's from_host_async the copy of part j goes up from buffer j % half_bufs while the
 * CPU steps part j+1 into the other; the host waits for a buffer's previous upload only
 * before refilling it, and not at all for the last ones: the step returns while they move,
 * and the device's stream orders the next forward (and ZeRO's all-gather) after them.
 * Without it each part's copy returns before the next part is stepped. The element-wise
 * kernels give the same bits however the partition is cut (the NVMe swapper relies on it
 * too), and the copies move the same bytes, so this equals host_step. */
static dsc_status_t host_step_parts(dsc_engine_t *e, float grad_scale, double lr, void *half, dsc_dtype_t half_dtype) {
    const int64_t n = e->n_local, k = e->half_elems > 0 ? e->half_elems : 1;
    const size_t hs = dsc_dtype_size(half_dtype);
    dsc_status_t rc = e->grad_stream    ? DSC_OK
                      : e->grad_mirrored ? dsc__zero_mirror_finish(e->zero)
                                         : dsc__dev_to_host(e->ctx, e->grad_host, e->acc32, (size_t)n * 4);
    if (rc != DSC_OK) return rc;
    dsc__optim_prepared_t pp;
    if ((rc = dsc__optim_prepare(e->optimizer, grad_scale, lr, true, half_dtype, &pp)) != DSC_OK) {
        dsc_ctx_set_error(e->ctx, rc, "the offloaded optimizer's step: %s", dsc_ctx_errmsg(e->host_ctx));
        return rc;
    }
    const int ns = dsc_optim_num_states(e->optimizer);
    float *states[8] = {NULL};
    if (ns > 8) /* no optimizer keeps more than 3 */
        return dsc__engine_fail(e, DSC_ERR_INVALID, "the offloaded optimizer keeps %d states", ns);
    /* streamed: part j's gradient is in buffer j % 2 once its copy's event is reached; part
     * j+1's copy is then issued and moves while the CPU steps part j. Part j-1's update is
     * held until then and goes up after it: the device's stream is ordered after each upload
     * and a gradient copy after the stream, so issued the other way round the gradient would
     * queue behind the update instead of both moving at once (each direction has its copy
     * engine) */
    const bool down = e->grad_stream && e->grad_down[0];
    if (down) rc = dsc__dev_to_host_async_ev(e->ctx, e->grad_host, e->acc32, (size_t)(n < k ? n : k) * 4, e->grad_down[0]);
    struct {
        void *dst, *stage;
        size_t bytes;
        dsc_device_event_t *ev;
    } held = {NULL, NULL, 0, NULL};
    for (int64_t a = 0, j = 0; a < n && rc == DSC_OK; a += k, j++) {
        const int64_t m = n - a < k ? n - a : k;
        const float *grad = e->grad_host + a;
        if (e->grad_stream) {
            float *buf = e->grad_host + (size_t)(j % 2) * (size_t)k, *next = e->grad_host + (size_t)((j + 1) % 2) * (size_t)k;
            rc = down ? wait_copy(e, e->grad_down[j % 2]) : dsc__dev_to_host(e->ctx, buf, e->acc32 + a, (size_t)m * 4);
            const int64_t b = a + m, mb = n - b < k ? n - b : k;
            if (rc == DSC_OK && down && b < n)
                rc = dsc__dev_to_host_async_ev(e->ctx, next, e->acc32 + b, (size_t)mb * 4, e->grad_down[(j + 1) % 2]);
            if (rc != DSC_OK) break;
            grad = buf;
        }
        if (held.ev && (rc = dsc__dev_from_host_async(e->ctx, held.dst, held.stage, held.bytes, held.ev)) != DSC_OK) break;
        held.ev = NULL;
        const int buf_i = (int)(j % e->half_bufs);
        void *stage = (char *)e->half_host + (size_t)buf_i * (size_t)k * hs;
        dsc_device_event_t *up = e->half_up[buf_i];
        if (up && (rc = wait_copy(e, up)) != DSC_OK) break; /* its previous upload has read it */
        for (int i = 0; i < ns; i++) states[i] = dsc_optim_state_data(e->optimizer, i) + a;
        dsc__optim_run_part(e->optimizer, &pp, (size_t)m, e->master + a, grad, states, stage);
        void *dst = (char *)half + (size_t)a * hs;
        if (up && down) /* after the next part's gradient copy */
            held.dst = dst, held.stage = stage, held.bytes = (size_t)m * hs, held.ev = up;
        else
            rc = up ? dsc__dev_from_host_async(e->ctx, dst, stage, (size_t)m * hs, up)
                    : dsc__dev_from_host(e->ctx, dst, stage, (size_t)m * hs);
    }
    if (rc == DSC_OK && held.ev) rc = dsc__dev_from_host_async(e->ctx, held.dst, held.stage, held.bytes, held.ev);
    if (rc != DSC_OK && (down || e->half_up[0])) dsc__dev_sync(e->ctx); /* no copy still writing or reading */
    if (rc == DSC_OK) dsc__optim_commit(e->optimizer, &pp);
    return rc;
}

dsc_status_t dsc__engine_optim_step(dsc_engine_t *e, float grad_scale, double lr, void *half, dsc_dtype_t half_dtype) {
    if (e->host_ctx && half && e->half_host && steps_in_parts(e)) return host_step_parts(e, grad_scale, lr, half, half_dtype);
    if (e->host_ctx) return host_step(e, grad_scale, lr, half, half_dtype);
    /* offload_param with the optimizer on the device: no 16-bit output into host memory;
     * ZeRO rounds the updated master into the partition (dsc__zero_finish_step) */
    if (dsc__zero_params_on_host(e->zero, NULL)) half = NULL;
    if (!e->nvme) return dsc_optim_step(e->optimizer, e->master, e->acc32, grad_scale, lr, half, half_dtype);
    if (dsc_optim_num_states(e->optimizer) == 0) /* nothing swapped: unbacked and stateless, one part */
        return dsc_optim_step(e->optimizer, e->master, e->acc32, grad_scale, lr, half, half_dtype);
    return dsc__nvme_step(e->nvme, e->optimizer, e->master, e->acc32, grad_scale, lr, half, half_dtype);
}

dsc_status_t dsc__engine_state_get(dsc_engine_t *e, int state, int64_t offset, int64_t n, float *host) {
    if (e->nvme) return dsc__nvme_get(e->nvme, state, offset, n, host);
    return dsc__dev_to_host(dsc__engine_optim_ctx(e), host, dsc_optim_state_data(e->optimizer, state) + offset,
                            (size_t)n * 4);
}

dsc_status_t dsc__engine_state_set(dsc_engine_t *e, int state, int64_t offset, int64_t n, const float *host) {
    if (e->nvme) return dsc__nvme_set(e->nvme, state, offset, n, host);
    return dsc__dev_from_host(dsc__engine_optim_ctx(e), dsc_optim_state_data(e->optimizer, state) + offset, host,
                              (size_t)n * 4);
}

/* The master lives where ZeRO put it: the host context's memory when offloaded. */
dsc_status_t dsc__engine_master_get(dsc_engine_t *e, int64_t offset, int64_t n, float *host) {
    return dsc__dev_to_host(dsc__engine_optim_ctx(e), host, e->master + offset, (size_t)n * 4);
}

dsc_status_t dsc__engine_master_set(dsc_engine_t *e, int64_t offset, int64_t n, const float *host) {
    return dsc__dev_from_host(dsc__engine_optim_ctx(e), e->master + offset, host, (size_t)n * 4);
}

dsc_status_t dsc__engine_rebuild_working_copy(dsc_engine_t *e) {
    if (dsc__zero_params_offloaded(e->zero)) return dsc__zero_params_from_master(e->zero); /* offload_param */
    void *local = dsc__zero_local_params(e->zero);
    if (!e->host_ctx) return dsc_amp_f32_to_half(e->ctx, local, e->model_dtype, e->master, (size_t)e->n_local);
    /* rounded on the host (the same rounding as the device's), then copied over, through
     * half_host part by part; without an optimizer (a module-only engine) there is no
     * half_host */
    const size_t hs = dsc_dtype_size(e->model_dtype), n = (size_t)e->n_local;
    const size_t k = e->half_host && e->half_elems > 0 ? (size_t)e->half_elems : n;
    dsc_status_t rc = half_host_idle(e); /* the last step's uploads may still read it */
    if (rc != DSC_OK) return rc;
    void *half = e->half_host ? e->half_host : malloc(k * hs > 0 ? k * hs : 1);
    if (!half) return dsc__engine_fail(e, DSC_ERR_NOMEM, "out of memory rebuilding the working copy");
    for (size_t a = 0; a < n && rc == DSC_OK; a += k) {
        const size_t m = n - a < k ? n - a : k;
        rc = dsc_amp_f32_to_half(e->host_ctx, half, e->model_dtype, e->master + a, m);
        if (rc != DSC_OK) dsc_ctx_set_error(e->ctx, rc, "%s", dsc_ctx_errmsg(e->host_ctx));
        else rc = dsc__dev_from_host(e->ctx, (char *)local + a * hs, half, m * hs);
    }
    if (half != e->half_host) free(half);
    return rc;
}

dsc_status_t dsc__engine_state_flush(dsc_engine_t *e) { return e->nvme ? dsc__nvme_flush(e->nvme) : DSC_OK; }

size_t dsc_engine_offload_host_bytes(const dsc_engine_t *e, size_t *pinned) {
    if (pinned) *pinned = 0;
    if (!e) return 0;
    size_t param_pinned = 0; /* offload_param's partition (engine_param_offload.c) */
    const size_t param_bytes = dsc__engine_param_host_bytes(e, &param_pinned);
    if (pinned) *pinned = param_pinned;
    if (!e->host_ctx) return param_bytes;
    /* master and states (OPTIM), the gradient's copy (GRAD_ACCUM), the 16-bit update's (PARAMS);
     * the optimizer's bookkeeping (OTHER) is not state */
    const size_t total = dsc_ctx_mem_stats(e->host_ctx, DSC_MEM_OPTIM).live_bytes +
                         dsc_ctx_mem_stats(e->host_ctx, DSC_MEM_GRAD_ACCUM).live_bytes +
                         dsc_ctx_mem_stats(e->host_ctx, DSC_MEM_PARAMS).live_bytes;
    bool master_pinned = false;
    dsc__zero_master_on_host(e->zero, &master_pinned);
    const size_t n = (size_t)e->n_local;
    if (pinned)
        *pinned = param_pinned + (master_pinned ? n * 4 : 0) +
                  (e->grad_pinned ? (e->grad_stream ? 2 * (size_t)e->half_elems : n) * 4 : 0) +
                  (e->half_pinned ? (size_t)e->half_bufs * (size_t)e->half_elems * dsc_dtype_size(e->model_dtype) : 0);
    return total + param_bytes;
}

double dsc_engine_offload_wait_seconds(const dsc_engine_t *e) { return e ? e->copy_wait_s : 0.0; }

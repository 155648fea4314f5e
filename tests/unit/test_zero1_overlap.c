/* ZeRO-1 with zero_optimization.overlap_comm (docs/zero.md "Communication"): on the boundary
 * micro-step each parameter's accumulated gradient is reduced to its owners while backward
 * goes on, instead of one reduce-scatter after it. In-process ranks (the fake communicator,
 * one thread per rank):
 *   - the trained parameters and the losses are bitwise those of the blocking stage 1, on 2
 *     and 3 ranks, fp32 and bf16 (fp32 accumulation, and bf16 accumulation), gradient
 *     accumulation 3, and the bytes each rank sends per step are the same (docs/zero.md);
 *   - the collectives really start during the boundary backward: through the parameter
 *     hooks the engine installs, the communicator's sequence number is read when the
 *     backward reaches its last layer (the input embedding, whose gradient is complete last);
 *     by then collectives have been issued, none on the other micro-steps' backward, and
 *     none at all in backward without overlap_comm (stage 2 with overlap_comm, checked the
 *     same way, for comparison). */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/internal.h"
#include "zero_check.h"

/* ---- bitwise equality with the blocking reduction -------------------------------------- */

/* Runs case c on n fake ranks; results[r] per rank (freed by the caller). */
static void run_ranks(const zero_case_t *c, const char *zero_extra, const char *top_extra, int n,
                      zero_result_t *results) {
    int rcs[4];
    zero_run_fake_ranks(c, zero_extra, top_extra, n, 120, results, rcs);
    for (int r = 0; r < n; r++)
        CHECK_MSG(rcs[r] == 0, "stage 1, %d ranks, %s, overlap %d, rank %d: %s", n, c->precision, c->overlap, r,
                  results[r].error);
}

/* zero_extra, top_extra: zero_run_extra's (NULL: none); top_extra here is bf16 accumulation. */
static void check_bitwise(int n, const char *precision, const char *zero_extra, const char *top_extra, int steps) {
    zero_result_t on[4], off[4];
    zero_case_t c_on = {1, 3, precision, steps, 2, 0, 0, 1, NULL}, c_off = c_on;
    c_off.overlap = 2;
    run_ranks(&c_on, zero_extra, top_extra, n, on);
    run_ranks(&c_off, zero_extra, top_extra, n, off);
    const bool accum16 = top_extra != NULL;
    for (int r = 0; r < n; r++) {
        char what[160];
        snprintf(what, sizeof what, "stage 1, %d ranks, %s%s%s, gas 3, rank %d", n, precision,
                 accum16 ? " (bf16 accumulation)" : "", zero_extra ? zero_extra : "", r);
        if (!on[r].params || !off[r].params) continue;
        CHECK_MSG(on[r].numel == off[r].numel &&
                      !memcmp(on[r].params, off[r].params, sizeof(float) * (size_t)on[r].numel),
                  "%s: parameters with overlap_comm differ from the blocking reduction", what);
        CHECK_MSG(!memcmp(on[r].losses, off[r].losses, sizeof(double) * (size_t)steps), "%s: losses differ", what);
        /* the same bytes: docs/zero.md's (N-1)/N Psi (e_g + e_p), plus the norm all-reduce */
        CHECK_MSG(on[r].last_step_sent_bytes == off[r].last_step_sent_bytes &&
                      on[r].engine_reported_sent_bytes == off[r].engine_reported_sent_bytes,
                  "%s: %llu bytes sent in the last step with overlap_comm, %llu without", what,
                  (unsigned long long)on[r].last_step_sent_bytes, (unsigned long long)off[r].last_step_sent_bytes);
        if (!accum16) {
            const uint64_t want = zero_expected_sent_bytes(&c_on, n, &on[r]);
            CHECK_MSG(on[r].last_step_sent_bytes == want && on[r].engine_reported_sent_bytes == want,
                      "%s: sent %llu bytes in the last step (engine: %llu), want %llu", what,
                      (unsigned long long)on[r].last_step_sent_bytes,
                      (unsigned long long)on[r].engine_reported_sent_bytes, (unsigned long long)want);
        }
        /* and the same memory: no buffer of its own */
        CHECK_MSG(on[r].mem_grads == off[r].mem_grads && on[r].mem_grad_accum == off[r].mem_grad_accum &&
                      on[r].mem_comm == off[r].mem_comm,
                  "%s: gradient memory %zu / %zu / %zu bytes with overlap_comm, %zu / %zu / %zu without", what,
                  on[r].mem_grads, on[r].mem_grad_accum, on[r].mem_comm, off[r].mem_grads, off[r].mem_grad_accum,
                  off[r].mem_comm);
        zero_result_free(&on[r]);
        zero_result_free(&off[r]);
    }
}

/* ---- the collectives start during backward ------------------------------------------- */

/* Wraps the engine's parameter hooks: every backward acquire records the communicator's
 * sequence number (collectives this rank has issued so far). */
typedef struct {
    const dsc_param_hooks_t *inner;
    dsc_param_hooks_t hooks;
    dsc_comm_t *comm;
    uint64_t seq_last_acquire; /* at the latest acquire for backward */
    int backward_acquires;
} spy_t;

static dsc_status_t spy_acquire(void *user, dsc_tensor_t *const *params, int n, bool for_backward) {
    spy_t *s = user;
    if (for_backward) {
        s->seq_last_acquire = dsc_comm_seq(s->comm);
        s->backward_acquires++;
    }
    return s->inner->acquire(s->inner->user, params, n, for_backward);
}
static dsc_status_t spy_release(void *user, dsc_tensor_t *const *params, int n, bool after_backward) {
    spy_t *s = user;
    return s->inner->release(s->inner->user, params, n, after_backward);
}
static dsc_status_t spy_use(void *user, dsc_tensor_t *param) {
    spy_t *s = user;
    return s->inner->use(s->inner->user, param);
}

enum { GAS = 3, STEPS = 2 };

typedef struct {
    dsc_comm_fake_world_t *world;
    int stage, overlap, rank; /* overlap: 1 true, 2 false */
    bool hooked;              /* the engine installed parameter hooks */
    /* per micro-step: collectives issued in dsc_backward, and before its last layer's backward */
    uint64_t in_backward[STEPS * GAS], before_last_layer[STEPS * GAS];
    char error[512];
    int rc;
} spy_arg_t;

static void *spy_main(void *p) {
    spy_arg_t *a = p;
    dsc_ctx_t *ctx = check_ctx_new(1);
    dsc_comm_t *comm = NULL;
    dsc_gpt_t *gpt = NULL;
    dsc_initialize_result_t init = {0};
    a->rc = 1;
    if (dsc_comm_new_fake(ctx, a->world, a->rank, &comm) != DSC_OK) goto out;
    dsc_comm_set_timeout(comm, 120);
    dsc_gpt_config_t gc = DSC_GPT_CONFIG_TINY;
    gc.block_size = 16;
    if (dsc_gpt_new(ctx, &gc, &gpt) != DSC_OK) goto out;
    char json[512];
    snprintf(json, sizeof json,
             "{\"train_micro_batch_size_per_gpu\": 2, \"gradient_accumulation_steps\": %d, \"bf16\": {\"enabled\": true},"
             " \"zero_optimization\": {\"stage\": %d, \"overlap_comm\": %s, \"reduce_bucket_size\": 5000},"
             " \"optimizer\": {\"type\": \"AdamW\", \"params\": {\"lr\": 0.001}}}",
             GAS, a->stage, a->overlap == 1 ? "true" : "false");
    dsc_engine_options_t o = DSC_ENGINE_OPTIONS_INIT;
    o.config_json = json;
    o.comm = comm;
    if (dsc_initialize(gpt->model, &o, &init, a->error, sizeof a->error) != DSC_OK) goto out;
    spy_t spy = {ctx->param_hooks, {0}, comm, 0, 0};
    spy.hooks = (dsc_param_hooks_t){&spy, spy_acquire, spy_release, spy_use};
    a->hooked = ctx->param_hooks != NULL;
    if (a->hooked) ctx->param_hooks = &spy.hooks;
    int32_t x[2 * 16], y[2 * 16];
    for (int m = 0; m < STEPS * GAS; m++) {
        for (int r = 0; r < 2; r++) check_markov_row(m / GAS, m % GAS, 2 * a->rank + r, x + r * 16, y + r * 16, 16);
        dsc_tensor_t *loss = NULL;
        dsc_gpt_forward(ctx, gpt, x, y, 2, 16, NULL, &loss);
        spy.backward_acquires = 0;
        const uint64_t seq0 = dsc_comm_seq(comm);
        if (dsc_backward(init.engine, loss) != DSC_OK) {
            snprintf(a->error, sizeof a->error, "micro-step %d: backward: %s", m, dsc_engine_errmsg(init.engine));
            goto out;
        }
        a->in_backward[m] = dsc_comm_seq(comm) - seq0;
        /* the last backward acquire is the input embedding's: its backward is the last layer's */
        a->before_last_layer[m] = spy.backward_acquires ? spy.seq_last_acquire - seq0 : 0;
        if (dsc_step(init.engine) != DSC_OK) {
            snprintf(a->error, sizeof a->error, "micro-step %d: step: %s", m, dsc_engine_errmsg(init.engine));
            goto out;
        }
    }
    if (a->hooked) ctx->param_hooks = spy.inner; /* the engine removes its own at free */
    a->rc = 0;
out:
    if (a->rc && !a->error[0]) snprintf(a->error, sizeof a->error, "setup failed: %s", dsc_ctx_errmsg(ctx));
    dsc_engine_free(init.engine);
    dsc_gpt_free(gpt);
    dsc_comm_free(comm);
    dsc_ctx_free(ctx);
    return NULL;
}

static void check_during_backward(int stage, int overlap) {
    enum { N = 2 };
    dsc_comm_fake_world_t *world = NULL;
    CHECK_OK(dsc_comm_fake_world_new(N, &world));
    spy_arg_t args[N];
    pthread_t th[N];
    for (int r = 0; r < N; r++) {
        memset(&args[r], 0, sizeof args[r]);
        args[r].world = world, args[r].stage = stage, args[r].overlap = overlap, args[r].rank = r;
        pthread_create(&th[r], NULL, spy_main, &args[r]);
    }
    for (int r = 0; r < N; r++) pthread_join(th[r], NULL);
    for (int r = 0; r < N; r++) {
        const spy_arg_t *a = &args[r];
        CHECK_MSG(a->rc == 0, "stage %d, overlap %d, rank %d: %s", stage, overlap, r, a->error);
        if (a->rc) continue;
        for (int m = 0; m < STEPS * GAS; m++) {
            const bool boundary = m % GAS == GAS - 1;
            if (overlap == 2) { /* blocking stage 1: no hooks, nothing in backward */
                CHECK_MSG(!a->hooked && a->in_backward[m] == 0,
                          "stage %d without overlap_comm, rank %d, micro-step %d: %llu collectives in backward", stage,
                          r, m, (unsigned long long)a->in_backward[m]);
            } else if (stage == 1 && !boundary) { /* ZeRO-1 communicates on the boundary only */
                CHECK_MSG(a->in_backward[m] == 0, "stage 1, rank %d, micro-step %d: %llu collectives in a "
                          "non-boundary backward", r, m, (unsigned long long)a->in_backward[m]);
            } else {
                /* Sends started before the last layer's backward: the tiny GPT has 2 blocks, so
                 * well over 10 parameters (head, blocks, norms) are on their way by then. The
                 * first step records the uses, so at stage 1 the first boundary (micro-step 2)
                 * already knows them. */
                CHECK_MSG(a->hooked && a->before_last_layer[m] >= 10 && a->in_backward[m] > a->before_last_layer[m],
                          "stage %d with overlap_comm, rank %d, micro-step %d: %llu collectives issued before the "
                          "last layer's backward, %llu in all of backward", stage, r, m,
                          (unsigned long long)a->before_last_layer[m], (unsigned long long)a->in_backward[m]);
            }
        }
    }
    dsc_comm_fake_world_free(world);
}

/* ---- a parameter used a different number of times on the boundary ------------------- */

/* A model of scopes of its own: h = x W^T, then A applied `uses` times (each use in its own
 * scope, h = tanh(h A^T)), loss = mse(h V^T, t). A's uses per micro-step vary. */
enum { VIN = 6, VHID = 8, VOUT = 3, VROWS = 2, VSTEPS = 3 };

typedef struct {
    dsc_comm_fake_world_t *world;
    int rank, overlap, other_uses, boundary_uses; /* A's uses on the other micro-steps, on the boundary */
    float params[VHID * VIN + VHID * VHID + VOUT * VHID];
    int64_t a_offset, a_numel, numel;
    uint64_t sent_last_step;
    char error[512];
    int rc;
} vary_t;

static dsc_tensor_t *scoped(dsc_ctx_t *ctx, dsc_tensor_t *h, dsc_tensor_t *w, bool squash) {
    dsc_param_scope_t sc;
    dsc_param_scope_enter(ctx, &sc, 1, &w);
    dsc_tensor_t *y = dsc_matmul(ctx, h, dsc_param_compute(ctx, w), false, true);
    if (squash) y = dsc_tanh(ctx, y);
    dsc_param_scope_exit(ctx, &sc);
    return y;
}

static void *vary_main(void *p) {
    vary_t *a = p;
    dsc_ctx_t *ctx = check_ctx_new(31);
    dsc_comm_t *comm = NULL;
    dsc_model_t *m = NULL;
    dsc_initialize_result_t init = {0};
    a->rc = 1;
    if (dsc_comm_new_fake(ctx, a->world, a->rank, &comm) != DSC_OK) goto out;
    dsc_comm_set_timeout(comm, 60);
    dsc_model_new(ctx, &m);
    int64_t sw[2] = {VHID, VIN}, sa[2] = {VHID, VHID}, sv[2] = {VOUT, VHID};
    dsc_tensor_t *w = dsc_model_param(m, "w", 2, sw, DSC_INIT_NORMAL, 0.4);
    dsc_tensor_t *am = dsc_model_param(m, "a", 2, sa, DSC_INIT_NORMAL, 0.4); /* not the last: no padding in its range */
    dsc_tensor_t *v = dsc_model_param(m, "v", 2, sv, DSC_INIT_NORMAL, 0.4);
    char json[512];
    snprintf(json, sizeof json,
             "{\"train_micro_batch_size_per_gpu\": %d, \"gradient_accumulation_steps\": 3,"
             " \"zero_optimization\": {\"stage\": 1, \"overlap_comm\": %s},"
             " \"zero_allow_untested_optimizer\": true,"
             " \"optimizer\": {\"type\": \"SGD\", \"params\": {\"lr\": 0.05}}}",
             VROWS, a->overlap == 1 ? "true" : "false");
    dsc_engine_options_t o = DSC_ENGINE_OPTIONS_INIT;
    o.config_json = json;
    o.comm = comm;
    if (dsc_initialize(m, &o, &init, a->error, sizeof a->error) != DSC_OK) goto out;
    for (int step = 0; step < VSTEPS; step++)
        for (int micro = 0; micro < 3; micro++) {
            float xs[VROWS * VIN], ts[VROWS * VOUT];
            for (int i = 0; i < VROWS * VIN; i++) xs[i] = (float)sin(0.37 * (step * 29 + micro * 11 + a->rank * 5 + i));
            for (int i = 0; i < VROWS * VOUT; i++) ts[i] = (float)cos(0.23 * (step * 13 + micro * 7 + a->rank * 3 + i));
            dsc_tensor_t *x = dsc_tensor_new_2d(ctx, DSC_F32, VROWS, VIN), *t = dsc_tensor_new_2d(ctx, DSC_F32, VROWS, VOUT);
            dsc_tensor_copy_from_f32(x, xs, VROWS * VIN);
            dsc_tensor_copy_from_f32(t, ts, VROWS * VOUT);
            dsc_tensor_t *h = scoped(ctx, x, w, false);
            const int uses = micro == 2 ? a->boundary_uses : a->other_uses;
            for (int u = 0; u < uses; u++) h = scoped(ctx, h, am, true);
            dsc_tensor_t *loss = dsc_mse(ctx, scoped(ctx, h, v, false), t);
            if (dsc_backward(init.engine, loss) != DSC_OK || dsc_step(init.engine) != DSC_OK) {
                snprintf(a->error, sizeof a->error, "step %d: %s", step, dsc_engine_errmsg(init.engine));
                goto out;
            }
        }
    a->sent_last_step = dsc_engine_comm_bytes_last_step(init.engine);
    a->numel = dsc_model_numel(m);
    for (int i = 0; i < dsc_model_param_count(m); i++) {
        dsc_param_info_t info;
        dsc_model_param_info(m, i, &info);
        if (info.tensor == am) a->a_offset = info.offset, a->a_numel = info.numel;
        if (check_tensor_get(info.tensor, a->params + info.offset, DSC_F32, (size_t)info.numel) != DSC_OK) goto out;
    }
    a->rc = 0;
out:
    if (a->rc && !a->error[0]) snprintf(a->error, sizeof a->error, "%s", dsc_ctx_errmsg(ctx));
    dsc_engine_free(init.engine);
    dsc_model_free(m);
    dsc_comm_free(comm);
    dsc_ctx_free(ctx);
    return NULL;
}

/* A used other_uses times on the other micro-steps and boundary_uses times on the boundary:
 * with more uses its range was sent once as many uses as before were done and the rest goes
 * in a second send (correct, rounded as two reductions, (n_A - own_A) more elements sent);
 * with fewer, or none (its gradient is the earlier micro-steps' only), it is sent at the end of
 * the backward (bitwise, the same bytes). */
static void check_varying_uses(int other_uses, int boundary_uses) {
    enum { N = 2 };
    vary_t runs[2][N];
    for (int mode = 0; mode < 2; mode++) {
        dsc_comm_fake_world_t *world = NULL;
        CHECK_OK(dsc_comm_fake_world_new(N, &world));
        pthread_t th[N];
        for (int r = 0; r < N; r++) {
            memset(&runs[mode][r], 0, sizeof runs[mode][r]);
            runs[mode][r].world = world, runs[mode][r].rank = r, runs[mode][r].overlap = mode + 1;
            runs[mode][r].other_uses = other_uses, runs[mode][r].boundary_uses = boundary_uses;
            pthread_create(&th[r], NULL, vary_main, &runs[mode][r]);
        }
        for (int r = 0; r < N; r++) pthread_join(th[r], NULL);
        dsc_comm_fake_world_free(world);
    }
    for (int r = 0; r < N; r++) {
        const vary_t *on = &runs[0][r], *off = &runs[1][r];
        CHECK_MSG(on->rc == 0 && off->rc == 0, "%d uses on the boundary, rank %d: %s / %s", boundary_uses, r,
                  on->error, off->error);
        if (on->rc || off->rc) continue;
        const size_t np = sizeof on->params / sizeof on->params[0];
        const int64_t padded = (on->numel + 2 * N - 1) / (2 * N) * (2 * N), k = padded / N;
        const int64_t lo = on->a_offset > r * k ? on->a_offset : r * k,
                      hi = on->a_offset + on->a_numel < (r + 1) * k ? on->a_offset + on->a_numel : (r + 1) * k;
        const uint64_t resent = 4 * (uint64_t)(on->a_numel - (hi > lo ? hi - lo : 0));
        if (boundary_uses <= other_uses) {
            CHECK_MSG(!memcmp(on->params, off->params, sizeof on->params) && on->sent_last_step == off->sent_last_step,
                      "%d use(s) on the boundary, rank %d: not bitwise the blocking run (%llu / %llu bytes)",
                      boundary_uses, r, (unsigned long long)on->sent_last_step, (unsigned long long)off->sent_last_step);
        } else {
            double d2 = 0, n2 = 0;
            for (size_t i = 0; i < np; i++) {
                const double d = (double)on->params[i] - off->params[i];
                d2 += d * d, n2 += (double)off->params[i] * off->params[i];
            }
            CHECK_MSG(sqrt(d2 / n2) < 1e-6, "%d uses on the boundary, rank %d: relative difference %.3e", boundary_uses,
                      r, sqrt(d2 / n2));
            CHECK_MSG(on->sent_last_step == off->sent_last_step + resent,
                      "%d uses on the boundary, rank %d: %llu bytes sent, want %llu + %llu (A's range again)",
                      boundary_uses, r, (unsigned long long)on->sent_last_step,
                      (unsigned long long)off->sent_last_step, (unsigned long long)resent);
        }
    }
}

int main(void) {
    /* DSC_TEST_REDUCED (the ASan build's guarded pass): 2 steps instead of 4 */
    const int steps = check_reduced() ? 2 : 4;
    for (int n = 2; n <= 3; n++) {
        check_bitwise(n, "fp32", NULL, NULL, steps);
        check_bitwise(n, "bf16", NULL, NULL, steps);
    }
    /* bf16 gradients accumulated in bf16: the 16-bit flat buffer itself is reduced */
    check_bitwise(3, "bf16", NULL, ", \"data_types\": {\"grad_accum_dtype\": \"bf16\"}", steps);
    /* the optimizer offloaded: off a host device (DSC_DEVICE=guarded) the reduced ranges go
     * to the host mirror as their sends land during backward */
    check_bitwise(2, "bf16", ", \"offload_optimizer\": {\"device\": \"cpu\"}", NULL, steps);
    check_varying_uses(1, 2);
    check_varying_uses(2, 1);
    check_varying_uses(1, 0);
    check_during_backward(1, 1);
    check_during_backward(1, 2);
    check_during_backward(2, 1);
    return check_finish("test_zero1_overlap");
}

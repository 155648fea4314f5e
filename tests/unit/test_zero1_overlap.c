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
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/internal.h"
#include "zero_check.h"

/* ---- bitwise equality with the blocking reduction -------------------------------------- */

typedef struct {
    const zero_case_t *c;
    const char *zero_extra, *top_extra;
    dsc_comm_fake_world_t *world;
    int n, rank;
    zero_result_t result;
    int rc;
} rank_arg_t;

static void *rank_main(void *p) {
    rank_arg_t *a = p;
    dsc_ctx_t *ctx = check_ctx_new(1);
    dsc_comm_t *comm = NULL;
    a->rc = dsc_comm_new_fake(ctx, a->world, a->rank, &comm) == DSC_OK ? 0 : 1;
    if (!a->rc) {
        dsc_comm_set_timeout(comm, 120);
        a->rc = zero_run_extra(a->c, a->zero_extra, a->top_extra, comm, a->n, a->rank, &a->result);
    }
    dsc_comm_free(comm);
    dsc_ctx_free(ctx);
    return NULL;
}

/* Runs case c on n fake ranks; results[r] per rank (freed by the caller). */
static void run_ranks(const zero_case_t *c, const char *zero_extra, const char *top_extra, int n,
                      zero_result_t *results) {
    dsc_comm_fake_world_t *world = NULL;
    CHECK_OK(dsc_comm_fake_world_new(n, &world));
    rank_arg_t args[4];
    pthread_t th[4];
    for (int r = 0; r < n; r++) {
        args[r] = (rank_arg_t){c, zero_extra, top_extra, world, n, r, {0}, 0};
        pthread_create(&th[r], NULL, rank_main, &args[r]);
    }
    for (int r = 0; r < n; r++) pthread_join(th[r], NULL);
    for (int r = 0; r < n; r++) {
        CHECK_MSG(args[r].rc == 0, "stage 1, %d ranks, %s, overlap %d, rank %d: %s", n, c->precision, c->overlap, r,
                  args[r].result.error);
        results[r] = args[r].result;
    }
    dsc_comm_fake_world_free(world);
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
    check_during_backward(1, 1);
    check_during_backward(1, 2);
    check_during_backward(2, 1);
    return check_finish("test_zero1_overlap");
}

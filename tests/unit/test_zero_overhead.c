/* What ZeRO stages 1-3 ask of the device on one rank beyond stage 0 (issue 17: stages 1-3
 * at world size 1 within 2% of stage 0; docs/zero.md "Cost on one rank"). The tiny GPT,
 * bf16 with fp32 accumulation and master weights, AdamW, GA 3, one rank; the device's table
 * is counted (src/core/device_count.h) over one micro-batch that is not the boundary and over
 * the boundary's dsc_step, in the third step (the pools have filled, ZeRO-3 has its
 * schedule). With P0 parameters, P = P0 padded to a multiple of 2 (stages 0-2), E the tied
 * embedding's elements (vocab x width), 2 bytes a bf16 element and 4 an fp32 one, the bytes
 * moved (src/core/device_count.h's convention: fills written, copies read + written, the
 * fp32 accumulation 2 + 8 per element) differ from stage 0's by exactly:
 *   micro-batch  stage 1: 0 (both accumulate the P gradients into P fp32 sums and zero them)
 *                stage 2: 12 (P0 + E - P): every parameter's gradient buffer is zeroed (2 per
 *                         element) and added into the fp32 partition (10) on its own, the tied
 *                         embedding twice (once per use); stage 0 does P in one piece
 *                stage 3: stage 2's, plus 4 G for the gathers (G: elements of the
 *                         non-persistent parameters, each gathered once per micro-batch under
 *                         the default reuse window: a shard-to-buffer copy at one rank)
 *   dsc_step     stage 1: 12 P + 4 P: the P fp32 sums added into the partition (4 + 8 per
 *                         element) and zeroed; the step's end zeroes the bf16 gradients and
 *                         the partition as stage 0 does, the sums not again
 *                stage 2: -2 P (no full bf16 gradient buffer to zero)
 *                stage 3: -2 P + 4 (P0 - G) (the persistent parameters gathered again after
 *                         the update) - 38 (P - P0) (the optimizer, 30 per element, the scan
 *                         and the zeroing of the fp32 sums, 4 each, run on P0 elements instead
 *                         of P; and no bf16 buffer of P to zero). The tiny GPT has P = P0.
 * and no stage allocates or frees device memory in either (on CUDA each cudaFree waits for
 * the device: stage 2 freed and allocated every layer's gradient buffers on every
 * micro-batch before its pool kept one of each size), nor waits for the device more often
 * than stage 0. */
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "core/device_count.h"

enum { B = 2, T = 16, GA = 3 };

typedef struct {
    dsc_device_counts_t mb, step;
    int64_t p0;
    int rc;
} run_t;

static void batch(int k, int32_t *x, int32_t *y) {
    for (int i = 0; i < B * T; i++) {
        x[i] = (int32_t)((7 * (k * B * T + i) + 3) % 65);
        y[i] = (int32_t)((5 * (k * B * T + i) + 1) % 65);
    }
}

static run_t run(int stage, const char *extra) {
    run_t r = {0};
    dsc_ctx_t *ctx = check_ctx_new(11);
    dsc_gpt_config_t gc = DSC_GPT_CONFIG_TINY;
    dsc_gpt_t *gpt = NULL;
    CHECK_OK(dsc_gpt_new(ctx, &gc, &gpt));
    char json[768];
    snprintf(json, sizeof json,
             "{\"train_micro_batch_size_per_gpu\": %d, \"gradient_accumulation_steps\": %d, \"bf16\": {\"enabled\": true},"
             " \"gradient_clipping\": 1.0, \"optimizer\": {\"type\": \"AdamW\", \"params\": {\"lr\": 0.001}},"
             " \"zero_optimization\": {\"stage\": %d%s}}",
             B, GA, stage, extra);
    dsc_engine_options_t o = DSC_ENGINE_OPTIONS_INIT;
    o.config_json = json;
    dsc_initialize_result_t init = {0};
    char err[1024];
    dsc_status_t rc = gpt ? dsc_initialize(gpt->model, &o, &init, err, sizeof err) : DSC_ERR_INVALID;
    CHECK_MSG(rc == DSC_OK, "stage %d: initialize: %s", stage, err);
    r.rc = rc != DSC_OK;
    for (int i = 0; rc == DSC_OK && i < dsc_model_param_count(gpt->model); i++) {
        dsc_param_info_t info;
        dsc_model_param_info(gpt->model, i, &info);
        r.p0 += info.numel;
    }
    dsc_device_counts_t counts = {0}, before;
    if (rc == DSC_OK) rc = dsc__device_count_begin(ctx, &counts);
    int32_t x[B * T], y[B * T];
    for (int s = 0; rc == DSC_OK && s < 3; s++) {
        for (int m = 0; rc == DSC_OK && m < GA; m++) {
            before = counts;
            batch(s * GA + m, x, y);
            dsc_tensor_t *loss = NULL;
            rc = dsc_gpt_forward(ctx, gpt, x, y, B, T, NULL, &loss);
            if (rc == DSC_OK) rc = dsc_backward(init.engine, loss);
            if (rc == DSC_OK && m == GA - 1) { /* the boundary: its dsc_step alone */
                before = counts;
                rc = dsc_step(init.engine);
                if (s == 2) r.step = dsc__device_counts_diff(&counts, &before);
            } else if (rc == DSC_OK) {
                rc = dsc_step(init.engine);
                if (s == 2 && m == 0) r.mb = dsc__device_counts_diff(&counts, &before);
            }
        }
    }
    CHECK_MSG(rc == DSC_OK, "stage %d: training: %s", stage, init.engine ? dsc_engine_errmsg(init.engine) : "");
    r.rc |= rc != DSC_OK;
    dsc__device_count_end(ctx);
    dsc_engine_free(init.engine);
    dsc_gpt_free(gpt);
    dsc_ctx_free(ctx);
    return r;
}

static int64_t moved(const dsc_device_counts_t *c) { return (int64_t)dsc__device_counts_moved(c); }

static void check_run(const char *what, const run_t *r, const run_t *r0, int64_t want_mb, int64_t want_step) {
    if (r->rc || r0->rc) return;
    for (int w = 0; w < 2; w++) {
        const dsc_device_counts_t *c = w ? &r->step : &r->mb, *c0 = w ? &r0->step : &r0->mb;
        const char *phase = w ? "dsc_step" : "micro-batch";
        CHECK_MSG(c->calls[DSC_DEVCOUNT_ALLOC] == 0 && c->calls[DSC_DEVCOUNT_FREE] == 0,
                  "%s, %s: %lld allocations and %lld frees of device memory, want none", what, phase,
                  (long long)c->calls[DSC_DEVCOUNT_ALLOC], (long long)c->calls[DSC_DEVCOUNT_FREE]);
        CHECK_MSG(dsc__device_counts_blocking(c) == dsc__device_counts_blocking(c0),
                  "%s, %s: %lld calls that wait for the device, stage 0 %lld", what, phase,
                  (long long)dsc__device_counts_blocking(c), (long long)dsc__device_counts_blocking(c0));
        const int64_t got = moved(c) - moved(c0), want = w ? want_step : want_mb;
        CHECK_MSG(got == want, "%s, %s: %lld bytes moved, stage 0 %lld: %+lld, want %+lld", what, phase,
                  (long long)moved(c), (long long)moved(c0), (long long)got, (long long)want);
    }
}

int main(void) {
    const dsc_gpt_config_t gc = DSC_GPT_CONFIG_TINY;
    const int64_t C = gc.n_embd, E = (int64_t)gc.vocab_size * C;
    /* GPT-2's parameters: the embeddings, per block 2 LayerNorms (4C), qkv (3C^2 + 3C), the
     * attention's projection (C^2 + C), the MLP (4C^2 + 4C and 4C^2 + C); the final LayerNorm */
    const int64_t P0 = E + (int64_t)gc.block_size * C + gc.n_layer * (12 * C * C + 13 * C) + 2 * C;
    const int64_t P = (P0 + 1) / 2 * 2;
    const run_t r0 = run(0, ""), r1 = run(1, ""), r2 = run(2, ""), r3 = run(3, ""),
                r3p = run(3, ", \"stage3_param_persistence_threshold\": 0");
    CHECK_MSG(r0.p0 == P0, "the tiny GPT has %lld parameters, the formula %lld", (long long)r0.p0, (long long)P0);
    /* stage 0 itself, by kind: the accumulation 10 P per micro-batch; the step's scan reads
     * the P fp32 sums (4 P), the zeroing writes 2 P + 4 P, AdamW moves 30 P */
    CHECK(r0.mb.bytes[DSC_DEVCOUNT_AMP_ACCUMULATE] == (uint64_t)(10 * P) && r0.mb.calls[DSC_DEVCOUNT_AMP_ACCUMULATE] == 1);
    CHECK_MSG(r0.step.bytes[DSC_DEVCOUNT_FILL] == (uint64_t)(6 * P) &&
                  r0.step.bytes[DSC_DEVCOUNT_AMP_SCAN] == (uint64_t)(4 * P) &&
                  r0.step.bytes[DSC_DEVCOUNT_OPTIM] == (uint64_t)(30 * P),
              "stage 0 step: fill %llu scan %llu optim %llu bytes, want %lld %lld %lld",
              (unsigned long long)r0.step.bytes[DSC_DEVCOUNT_FILL], (unsigned long long)r0.step.bytes[DSC_DEVCOUNT_AMP_SCAN],
              (unsigned long long)r0.step.bytes[DSC_DEVCOUNT_OPTIM], (long long)(6 * P), (long long)(4 * P),
              (long long)(30 * P));
    /* the tiny GPT's largest tensor (16k elements) is under the default persistence
     * threshold (1e5): at stage 3 every parameter persists (G = 0); with threshold 0, G = P0 */
    const int64_t pad = P - P0;
    check_run("stage 1", &r1, &r0, 0, 16 * P);
    check_run("stage 2", &r2, &r0, 12 * (P0 + E - P), -2 * P);
    check_run("stage 3", &r3, &r0, 12 * (P0 + E - P), -2 * P + 4 * P0 - 38 * pad);
    check_run("stage 3, nothing persistent", &r3p, &r0, 12 * (P0 + E - P) + 4 * P0, -2 * P - 38 * pad);
    return check_finish("test_zero_overhead");
}

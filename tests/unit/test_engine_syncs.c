/* Host syncs of one training step (issue 15 item 8): the engine reads step values (losses,
 * overflow and gradient norm) from the device at most once per optimizer step, twice with
 * a monitor that writes the training loss; dsc_backward reads nothing; the loss the caller
 * asks for afterwards (dsc_engine_last_loss) is still the micro-batch's loss. And ZeRO-3's
 * per-use buffers come from its pool: nothing is allocated after the first step. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "check.h"
#include "engine/engine_internal.h"
#include "zero/zero_internal.h"

enum { IN = 4, OUT = 2, B = 3 };

typedef struct {
    dsc_ctx_t *ctx;
    dsc_model_t *model;
    dsc_linear_t lin;
} toy_t;

/* loss = mse(x W^T + b, t) on micro-batch k of a fixed dataset. */
static dsc_tensor_t *toy_loss(toy_t *m, int k) {
    float xs[B * IN], ts[B * OUT];
    for (int i = 0; i < B * IN; i++) xs[i] = (float)sin(0.37 * (k * B * IN + i) + 0.1);
    for (int i = 0; i < B * OUT; i++) ts[i] = (float)cos(0.91 * (k * B * OUT + i));
    dsc_tensor_t *x = dsc_tensor_new_2d(m->ctx, DSC_F32, B, IN);
    dsc_tensor_t *t = dsc_tensor_new_2d(m->ctx, DSC_F32, B, OUT);
    dsc_tensor_copy_from_f32(x, xs, B * IN);
    dsc_tensor_copy_from_f32(t, ts, B * OUT);
    return dsc_mse(m->ctx, dsc_linear_forward(m->ctx, &m->lin, x), t);
}

static void run(const char *extra_json, int gas, int64_t reads_per_step, bool pooled) {
    toy_t m;
    m.ctx = check_ctx_new(5);
    dsc_model_new(m.ctx, &m.model);
    dsc_linear_init(m.model, &m.lin, "lin", IN, OUT, true, 0.5);
    char json[1024];
    snprintf(json, sizeof json,
             "{\"train_micro_batch_size_per_gpu\": %d, \"gradient_accumulation_steps\": %d,%s"
             " \"optimizer\": {\"type\": \"AdamW\", \"params\": {\"lr\": 0.01}}}",
             B, gas, extra_json);
    dsc_engine_options_t o = DSC_ENGINE_OPTIONS_INIT;
    o.config_json = json;
    dsc_initialize_result_t r;
    char err[1024];
    dsc_status_t rc = dsc_initialize(m.model, &o, &r, err, sizeof err);
    CHECK_MSG(rc == DSC_OK, "initialize: %s", err);
    dsc_engine_t *e = rc == DSC_OK ? r.engine : NULL;
    int64_t allocs_after_first = -1;
    for (int s = 0; e && s < 3; s++) {
        const int64_t before = e->host_reads;
        double want = NAN;
        for (int k = 0; k < gas; k++) {
            dsc_tensor_t *loss = toy_loss(&m, s * gas + k);
            want = dsc_tensor_item(loss); /* the test's own read */
            const int64_t at = e->host_reads;
            CHECK_OK(dsc_backward(e, loss));
            if (k < gas - 1) CHECK_MSG(e->host_reads == at, "dsc_backward read %lld values on the host",
                                       (long long)(e->host_reads - at));
            CHECK_OK(dsc_step(e));
        }
        CHECK_MSG(e->host_reads - before == reads_per_step, "step %d (gas %d, %s): %lld host reads, want %lld", s, gas,
                  extra_json, (long long)(e->host_reads - before), (long long)reads_per_step);
        if (pooled && s == 0) {
            allocs_after_first = e->zero->pool_allocs;
            CHECK_MSG(allocs_after_first > 0, "ZeRO-3 pool: %lld buffers allocated in the first step", (long long)allocs_after_first);
        } else if (pooled) {
            CHECK_MSG(e->zero->pool_allocs == allocs_after_first, "ZeRO-3 pool: step %d allocated %lld more buffers", s,
                      (long long)(e->zero->pool_allocs - allocs_after_first));
        }
        CHECK(dsc_engine_global_steps(e) == s + 1);
        /* The caller's read of the newest loss (its own sync, not counted as the step's): the
         * micro-batch's value, bit for bit. */
        const double got = dsc_engine_last_loss(e);
        CHECK_MSG(got == want, "last loss %.17g, want %.17g", got, want);
    }
    dsc_engine_free(e);
    dsc_model_free(m.model);
    dsc_ctx_free(m.ctx);
}

int main(void) {
    run("", 1, 1, false);
    run("", 4, 1, false);
    run(" \"zero_optimization\": {\"stage\": 3, \"stage3_param_persistence_threshold\": 0},", 2, 1, true);
    char tmpl[] = "/tmp/dsc_syncs_XXXXXX", json[512];
    const char *dir = mkdtemp(tmpl);
    CHECK(dir != NULL);
    if (dir) {
        snprintf(json, sizeof json, " \"csv_monitor\": {\"enabled\": true, \"output_path\": \"%s\", \"job_name\": \"s\"},",
                 dir);
        run(json, 3, 2, false); /* the losses for the monitor, then overflow + norm */
        check_rm_tree(dir);
    }
    return check_finish("test_engine_syncs");
}

/* ZeRO-Offload of the optimizer from a device whose memory the host cannot touch
 * (offload_optimizer.device "cpu" on the guarded device, whatever DSC_DEVICE says): the fp32
 * master, the optimizer's states and the host copy of the gradient partition live in host
 * memory and the update runs on the CPU. After 20 steps the parameters are bitwise equal to
 * the run without offload on the same device, ZeRO stages 1-3, fp32, bf16 and fp16 (whose
 * loss scale of 2^32 overflows: the skipped steps and the clipping decide the same), and the
 * device holds no optimizer bytes; dsc estimate's device and host bytes are the measured ones;
 * an edit of a parameter between steps (gather, release with a modifier) reaches the host
 * master as without offload. tests/mpi/test_offload_nvme_mpi.c does the comparison on 1-3
 * ranks. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "zero_check.h"

static void test_engine(void) {
    const char *zcpu = ", \"offload_optimizer\": {\"device\": \"cpu\", \"pin_memory\": true}";
    const char *prec[] = {"fp32", "bf16", "fp16"};
    const int steps = check_reduced() ? 5 : 20;
    for (int stage = 1; stage <= 3; stage++)
        for (int pi = 0; pi < 3; pi++) {
            zero_case_t c = {stage, 2, prec[pi], steps, 2, 0, 0, 0, NULL};
            zero_result_t mem, off;
            dsc_ctx_t *cctx = check_ctx_new(1);
            dsc_comm_t *comm = NULL;
            CHECK_OK(dsc_comm_new_self(cctx, &comm));
            int r1 = zero_run(&c, comm, 1, 0, &mem);
            int r2 = zero_run_extra(&c, zcpu, NULL, comm, 1, 0, &off);
            CHECK_MSG(r1 == 0 && r2 == 0, "stage %d %s: %s | %s", stage, prec[pi], mem.error, off.error);
            if (r1 == 0 && r2 == 0) {
                CHECK_MSG(memcmp(mem.params, off.params, (size_t)mem.numel * 4) == 0,
                          "stage %d %s: parameters with the optimizer offloaded to the host differ from the run "
                          "without offload", stage, prec[pi]);
                /* master and states left the device; the rest stays as it was */
                CHECK_MSG(mem.mem_optim > 0 && off.mem_optim == 0, "stage %d %s: device optimizer bytes %zu -> %zu",
                          stage, prec[pi], mem.mem_optim, off.mem_optim);
                CHECK_MSG(off.mem_params == mem.mem_params && off.mem_grad_accum == mem.mem_grad_accum &&
                              off.mem_grads == mem.mem_grads,
                          "stage %d %s: device params/grads/accum %zu/%zu/%zu, without offload %zu/%zu/%zu", stage,
                          prec[pi], off.mem_params, off.mem_grads, off.mem_grad_accum, mem.mem_params, mem.mem_grads,
                          mem.mem_grad_accum);
                /* dsc estimate's plan: the device's optimizer bytes and the host's, as measured */
                dsc_estimate_options_t eo;
                zero_estimate_options(&c, &eo);
                eo.offload_device = DSC_CONFIG_OFFLOAD_CPU;
                eo.device_is_host = false;
                dsc_memory_estimate_t en;
                char err[256], what[64];
                CHECK_OK(dsc_estimate_memory(&eo, stage, false, &en, err, sizeof err));
                snprintf(what, sizeof what, "stage %d %s", stage, prec[pi]);
                zero_check_offload_estimate(what, &en, &off);
                /* of the host bytes, the optimizer's states are not pinned */
                CHECK_MSG(en.pinned_host_bytes < en.host_bytes, "stage %d %s: %lld of %lld host bytes pinned", stage,
                          prec[pi], (long long)en.pinned_host_bytes, (long long)en.host_bytes);
                CHECK_MSG(mem.offload_host == 0, "stage %d %s: host offload bytes %zu without offload", stage, prec[pi],
                          mem.offload_host);
                printf("  stage %d %s: device optimizer bytes %zu without offload, %zu with; host %zu (planned %lld, "
                       "%lld of it pinned)\n", stage, prec[pi], mem.mem_optim, off.mem_optim, off.offload_host,
                       (long long)en.host_bytes, (long long)en.pinned_host_bytes);
                /* sub_group_size 777: the host step runs in parts of 777 elements, each part's
                 * 16-bit update staged in a 777-element buffer on its way to the device: the same
                 * bits, 2 bytes per element of the partition fewer on the host (bf16, fp16) */
                zero_result_t parts;
                char zparts[256];
                snprintf(zparts, sizeof zparts, "%s, \"sub_group_size\": 777", zcpu);
                const int r3 = pi == 0 ? 1 : zero_run_extra(&c, zparts, NULL, comm, 1, 0, &parts);
                if (pi > 0) CHECK_MSG(r3 == 0, "stage %d %s in parts: %s", stage, prec[pi], parts.error);
                if (pi > 0 && r3 == 0) {
                    CHECK_MSG(memcmp(mem.params, parts.params, (size_t)mem.numel * 4) == 0,
                              "stage %d %s: parameters stepped in parts of 777 differ from the run without offload",
                              stage, prec[pi]);
                    eo.sub_group_size = 777;
                    dsc_memory_estimate_t ep;
                    CHECK_OK(dsc_estimate_memory(&eo, stage, false, &ep, err, sizeof err));
                    CHECK_MSG(ep.host_bytes == (int64_t)parts.offload_host && parts.offload_host < off.offload_host,
                              "stage %d %s in parts: host bytes %zu measured, %lld planned; whole-partition staging "
                              "%zu", stage, prec[pi], parts.offload_host, (long long)ep.host_bytes, off.offload_host);
                    zero_result_free(&parts);
                }
            }
            zero_result_free(&mem);
            zero_result_free(&off);
            dsc_comm_free(comm);
            dsc_ctx_free(cctx);
        }
}

/* An edit of a parameter between steps (dsc_engine_gather_params, then release with a
 * modifier rank) reaches the master weights on the host: 4 steps, wte.weight scaled by 0.5,
 * 4 more; the parameters equal the run without offload bit for bit (stages 1-3, bf16). */
static void test_edit(void) {
    for (int stage = 1; stage <= 3; stage++) {
        static float a[200000], b[200000];
        int64_t na = 0, nb = 0;
        char ea[512] = "", eb[512] = "";
        int ra = zero_edit_run(stage, NULL, a, &na, NULL, ea, sizeof ea),
            rb = zero_edit_run(stage, ", \"offload_optimizer\": {\"device\": \"cpu\"}", b, &nb, NULL, eb, sizeof eb);
        CHECK_MSG(ra == 0 && rb == 0 && na == nb && na <= 200000, "stage %d edit runs: %s | %s", stage, ea, eb);
        if (ra == 0 && rb == 0)
            CHECK_MSG(memcmp(a, b, (size_t)na * 4) == 0, "stage %d: after an edit of wte.weight the offloaded run "
                      "differs from the run without offload", stage);
    }
}

/* One rank at stages 1-2 starts without a temporary fp32 copy of every parameter on the
 * device: the initial values go through the gradient partition, which spans them all. The
 * device's peak right after dsc_initialize is its live bytes (the model state: bf16
 * parameters and the fp32 partition, with and without offload); before, 4 bytes per
 * parameter more with offload (without it the optimizer's states, allocated later, are
 * larger than the temporary was). The estimate's state bytes are those live bytes. */
static void test_start_peak(void) {
    for (int stage = 1; stage <= 2; stage++)
        for (int off = 0; off <= 1; off++) {
            dsc_ctx_t *ctx = check_ctx_new(3);
            dsc_gpt_config_t gc = DSC_GPT_CONFIG_TINY;
            gc.block_size = 16;
            dsc_gpt_t *gpt = NULL;
            CHECK_OK(dsc_gpt_new(ctx, &gc, &gpt));
            char json[512], err[512] = "";
            snprintf(json, sizeof json,
                     "{\"train_micro_batch_size_per_gpu\": 2, \"bf16\": {\"enabled\": true}, \"zero_optimization\": "
                     "{\"stage\": %d%s}, \"optimizer\": {\"type\": \"AdamW\", \"params\": {\"lr\": 0.001}}}", stage,
                     off ? ", \"offload_optimizer\": {\"device\": \"cpu\"}" : "");
            dsc_engine_options_t o = DSC_ENGINE_OPTIONS_INIT;
            o.config_json = json;
            dsc_initialize_result_t init = {0};
            const bool ok = dsc_initialize(gpt->model, &o, &init, err, sizeof err) == DSC_OK;
            CHECK_MSG(ok, "stage %d offload %d: %s", stage, off, err);
            size_t live = 0, peak = 0;
            CHECK_OK(dsc_ctx_device_memory(ctx, &live, &peak));
            dsc_estimate_options_t eo;
            dsc_estimate_options_default(&gc, &eo);
            eo.param_dtype = DSC_BF16;
            eo.accumulate_fp32 = true;
            eo.offload_device = off ? DSC_CONFIG_OFFLOAD_CPU : DSC_CONFIG_OFFLOAD_NONE;
            eo.device_is_host = false;
            dsc_memory_estimate_t en;
            CHECK_OK(dsc_estimate_memory(&eo, stage, false, &en, err, sizeof err));
            const int64_t state = en.state.params + en.state.grads + en.state.optim + en.state.grad_accum + en.state.comm;
            CHECK_MSG(ok && peak == live && (int64_t)live >= state && (int64_t)live < state + 4 * en.numel,
                      "stage %d offload %d: device peak %zu after dsc_initialize, live %zu, the plan's state %lld "
                      "(a temporary fp32 copy of the %lld parameters would add %lld)", stage, off, peak, live,
                      (long long)state, (long long)en.numel, (long long)(4 * en.numel));
            dsc_engine_free(init.engine);
            dsc_gpt_free(gpt);
            dsc_ctx_free(ctx);
        }
}

int main(void) {
    setenv("DSC_DEVICE", "guarded", 1); /* the proof needs a device whose bytes the host cannot touch */
    test_engine();
    test_edit();
    test_start_peak();
    return check_finish("test_offload_cpu");
}

/* Parameter offload (zero_optimization.offload_param.device "cpu", stage 3) from a device whose
 * memory the host cannot touch (the guarded device, whatever DSC_DEVICE says): this rank's
 * parameter partition lives in host memory and every gather copies its shard to the device
 * first. Only the place changes, not the arithmetic: after 20 steps the parameters are bitwise
 * those of the run without offload, fp32, bf16 and fp16, with and without offload_optimizer
 * "cpu", with every parameter released after use and with persistent parameters, prefetch and
 * reuse (the re-gather after the step). The device's parameter bytes drop by the partition
 * (sum of shards x element size), and so does the device's peak (fp32 without the optimizer
 * offload: unchanged, its master stays on the device), the host holds it, and dsc estimate plans
 * both as measured.
 * An edit between steps reaches the host partition. The gathers upload their shards with the
 * device's from_host_async (the host does not wait for the copy): counted, the synchronous
 * uploads are those of the run without offload; the guarded device fails a host write of the
 * partition (the step, the edit's write-back) before the host waited for those uploads.
 * tests/mpi/test_offload_nvme_mpi.c (argv
 * "param") compares on 1-3 ranks; tests/cli/train_offload_param_resume.sh checkpoints. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/device_count.h"
#include "zero_check.h"

/* dsc estimate for case c at stage 3 with the given offloads; returns its device parameter bytes */
static int64_t estimate(const zero_case_t *c, bool offload_opt, bool offload_param, dsc_memory_estimate_t *en) {
    dsc_estimate_options_t eo;
    zero_estimate_options(c, &eo);
    eo.offload_device = offload_opt ? DSC_CONFIG_OFFLOAD_CPU : DSC_CONFIG_OFFLOAD_NONE;
    eo.offload_param_device = offload_param ? DSC_CONFIG_OFFLOAD_CPU : DSC_CONFIG_OFFLOAD_NONE;
    eo.device_is_host = false;
    char err[256];
    CHECK_OK(dsc_estimate_memory(&eo, 3, false, en, err, sizeof err));
    return en->state.params;
}

static void test_engine(void) {
    const char *prec[] = {"fp32", "bf16", "fp16"};
    const int steps = check_reduced() ? 5 : 20;
    for (int pi = 0; pi < 3; pi++)
        for (int opt = 0; opt < 2; opt++)
            for (int sched = 0; sched < 2; sched++) {
                /* sched 0: every parameter released after use; 1: persistent ones, prefetch and reuse */
                zero_case_t c = {3, 2, prec[pi], steps, 2, sched ? 2000 : 0, sched ? 1000000 : 0, 0, NULL};
                char zx[256];
                /* sub_group_size far below the partition: the host step must still read the whole
                 * gradient partition in one piece (it once streamed it into a part-sized buffer) */
                snprintf(zx, sizeof zx, ", \"offload_param\": {\"device\": \"cpu\"}%s",
                         opt ? ", \"sub_group_size\": 2000, \"offload_optimizer\": {\"device\": \"cpu\"}" : "");
                zero_result_t mem, off;
                dsc_ctx_t *cctx = check_ctx_new(1);
                dsc_comm_t *comm = NULL;
                CHECK_OK(dsc_comm_new_self(cctx, &comm));
                int r1 = zero_run(&c, comm, 1, 0, &mem);
                int r2 = zero_run_extra(&c, zx, NULL, comm, 1, 0, &off);
                CHECK_MSG(r1 == 0 && r2 == 0, "%s opt %d sched %d: %s | %s", prec[pi], opt, sched, mem.error, off.error);
                if (r1 == 0 && r2 == 0) {
                    CHECK_MSG(memcmp(mem.params, off.params, (size_t)mem.numel * 4) == 0,
                              "%s opt %d sched %d: parameters with the partition offloaded differ from the run without "
                              "offload", prec[pi], opt, sched);
                    const size_t ms = pi == 0 ? 4 : 2, part = (size_t)off.shards * ms;
                    /* the partition left the device's parameter bytes and is on the host */
                    CHECK_MSG(mem.mem_params - off.mem_params == part, "%s opt %d sched %d: device parameter bytes %zu "
                              "-> %zu, the partition is %zu", prec[pi], opt, sched, mem.mem_params, off.mem_params, part);
                    CHECK_MSG(off.mem_grad_accum == mem.mem_grad_accum,
                              "%s opt %d sched %d: grad accum %zu, without offload %zu", prec[pi], opt, sched,
                              off.mem_grad_accum, mem.mem_grad_accum);
                    /* and the device's peak with it (bf16/fp16, or fp32 with the optimizer offloaded; an
                     * fp32 model with the optimizer on the device keeps an fp32 master there instead) */
                    const size_t drop = pi == 0 && !opt ? 0 : part;
                    size_t base_peak = mem.device_peak; /* with the optimizer offload: that run's peak */
                    if (opt) {
                        zero_result_t oo;
                        int r3 = zero_run_extra(&c, ", \"offload_optimizer\": {\"device\": \"cpu\"}", NULL, comm, 1,
                                                0, &oo);
                        CHECK_MSG(r3 == 0, "%s sched %d, optimizer offload only: %s", prec[pi], sched, oo.error);
                        base_peak = r3 == 0 ? oo.device_peak : 0;
                        zero_result_free(&oo);
                    }
                    CHECK_MSG(base_peak - off.device_peak == drop, "%s opt %d sched %d: device peak %zu -> %zu, "
                              "expected a drop of %zu", prec[pi], opt, sched, base_peak, off.device_peak, drop);
                    if (sched == 0) {
                        /* dsc estimate: the drop, the device's optimizer bytes (an fp32 model's master
                         * stays on the device for a device optimizer) and the host bytes, as measured */
                        dsc_memory_estimate_t en, e0;
                        const int64_t with = estimate(&c, opt, true, &en), without = estimate(&c, opt, false, &e0);
                        char what[64];
                        snprintf(what, sizeof what, "%s opt %d", prec[pi], opt);
                        zero_check_offload_estimate(what, &en, &off);
                        /* the plan's parameter bytes drop by the partition, all of it pinned (planned) */
                        CHECK_MSG(without - with == (int64_t)part && en.pinned_host_bytes >= (int64_t)part,
                                  "%s opt %d: estimated params drop %lld, pinned %lld, partition %zu", prec[pi], opt,
                                  (long long)(without - with), (long long)en.pinned_host_bytes, part);
                        printf("  %s%s: device parameter bytes %zu -> %zu (partition %zu), device optimizer %zu, "
                               "host %zu (planned %lld), device peak %zu -> %zu\n", prec[pi],
                               opt ? " + offload_optimizer" : "", mem.mem_params, off.mem_params, part, off.mem_optim,
                               off.offload_host, (long long)en.host_bytes, base_peak, off.device_peak);
                    }
                }
                zero_result_free(&mem);
                zero_result_free(&off);
                dsc_comm_free(comm);
                dsc_ctx_free(cctx);
            }
}

/* An edit of a parameter between steps (gather, release with a modifier rank) reaches the host
 * partition and the master: 4 steps, wte.weight halved, 4 more; bitwise the run without
 * offload (bf16, zero_edit_run). */
static void test_edit(void) {
    static float a[200000], b[200000];
    const char *extra[] = {", \"offload_param\": {\"device\": \"cpu\"}",
                           ", \"offload_param\": {\"device\": \"cpu\"}, \"offload_optimizer\": {\"device\": \"cpu\"}"};
    int64_t na = 0, nb = 0;
    char ea[512] = "", eb[512] = "";
    dsc_device_counts_t ca = {0};
    int ra = zero_edit_run(3, NULL, a, &na, &ca, ea, sizeof ea);
    CHECK_MSG(ca.calls[DSC_DEVCOUNT_FROM_HOST_ASYNC] == 0, "without offload: %lld asynchronous uploads",
              (long long)ca.calls[DSC_DEVCOUNT_FROM_HOST_ASYNC]);
    for (int k = 0; k < 2; k++) {
        dsc_device_counts_t cb = {0};
        int rb = zero_edit_run(3, extra[k], b, &nb, &cb, eb, sizeof eb);
        CHECK_MSG(ra == 0 && rb == 0 && na == nb && na <= 200000, "edit runs %d: %s | %s", k, ea, eb);
        if (ra == 0 && rb == 0)
            CHECK_MSG(memcmp(a, b, (size_t)na * 4) == 0, "case %d: after an edit of wte.weight the run with the "
                      "partition offloaded differs from the run without offload", k);
        /* every gather's shard went up with from_host_async (persistence threshold 0: each of the
         * 16 micro-steps gathers every parameter at least once, so at least 16 x the partition's
         * bytes; measured: 17.1 x, the edit's gather of wte.weight on top), none with the
         * waiting from_host */
        const int64_t async_calls = cb.calls[DSC_DEVCOUNT_FROM_HOST_ASYNC];
        const uint64_t async_bytes = cb.bytes[DSC_DEVCOUNT_FROM_HOST_ASYNC];
        const uint64_t part = (uint64_t)na * 2; /* bf16, one rank: the partition is every parameter */
        CHECK_MSG(async_calls > 0 && async_bytes >= 16 * part &&
                      cb.calls[DSC_DEVCOUNT_FROM_HOST] == ca.calls[DSC_DEVCOUNT_FROM_HOST],
                  "case %d: %lld asynchronous uploads (%llu bytes, want >= %llu), %lld synchronous (%lld without "
                  "offload)", k, (long long)async_calls, (unsigned long long)async_bytes,
                  (unsigned long long)(16 * part), (long long)cb.calls[DSC_DEVCOUNT_FROM_HOST],
                  (long long)ca.calls[DSC_DEVCOUNT_FROM_HOST]);
        printf("  edit case %d: gathers uploaded %llu bytes in %lld from_host_async calls; from_host calls %lld "
               "(without offload %lld)\n", k, (unsigned long long)async_bytes, (long long)async_calls,
               (long long)cb.calls[DSC_DEVCOUNT_FROM_HOST], (long long)ca.calls[DSC_DEVCOUNT_FROM_HOST]);
    }
}

/* Bad configurations name the key: offload_param below stage 3, an unknown device, "nvme" with a
 * missing nvme_path directory. */
static void test_refusals(void) {
    dsc_ctx_t *ctx = check_ctx_new(5);
    dsc_gpt_config_t gc = DSC_GPT_CONFIG_TINY;
    gc.block_size = 16;
    dsc_gpt_t *gpt = NULL;
    CHECK_OK(dsc_gpt_new(ctx, &gc, &gpt));
    const struct {
        const char *json, *want;
    } bad[] = {
        {"{\"train_batch_size\": 2, \"zero_optimization\": {\"stage\": 2, \"offload_param\": {\"device\": \"cpu\"}}}",
         "parameter offload needs ZeRO stage 3"},
        {"{\"train_batch_size\": 2, \"zero_optimization\": {\"stage\": 3, \"offload_param\": {\"device\": \"gpu\"}}}",
         "zero_optimization.offload_param.device"},
        {"{\"train_batch_size\": 2, \"zero_optimization\": {\"stage\": 3, \"offload_param\": {\"device\": \"nvme\", "
         "\"nvme_path\": \"/nonexistent-dsc-swap\"}}}", "zero_optimization.offload_param.nvme_path '/nonexistent-dsc-swap'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        dsc_engine_options_t o = DSC_ENGINE_OPTIONS_INIT;
        o.config_json = bad[i].json;
        dsc_initialize_result_t r = {0};
        char err[512] = "";
        CHECK(dsc_initialize(gpt->model, &o, &r, err, sizeof err) != DSC_OK && r.engine == NULL);
        CHECK_MSG(strstr(err, bad[i].want), "case %zu: '%s' lacks '%s'", i, err, bad[i].want);
    }
    dsc_gpt_free(gpt);
    dsc_ctx_free(ctx);
}

int main(void) {
    setenv("DSC_DEVICE", "guarded", 1); /* the proof needs a device whose bytes the host cannot touch */
    test_engine();
    test_edit();
    test_refusals();
    return check_finish("test_offload_param");
}

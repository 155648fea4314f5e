/* One GPT block in bf16, forward and backward, against PyTorch autocast-bf16, from
 * tests/golden/gpt/gpt_block_bf16.gold (written by tools/gen_golden_gpt_bf16.py, whose
 * docstring lists what PyTorch autocast computes in which dtype and where dsc differs).
 *
 * The model: a 1-block GPT (width 64, 4 heads, vocabulary 65, T = 32, B = 4) bound to
 * bf16 parameter and gradient buffers, as a bf16 engine binds it, so every activation
 * between the embedding and the logits is a bf16 tensor (src/nn/gpt.c) and the ops run
 * their 16-bit kernels (f32 arithmetic, one rounding per output). The golden parameters
 * are bf16 values, so dsc and PyTorch start from the same numbers.
 *
 * Tolerance, per array (logits, loss, every parameter gradient), in bf16 units of
 * roundoff u = 2^-8:
 *   relative L2 error ||dsc - torch|| / ||torch|| <= 16 u (2^-4): each side carries its
 *     own bf16 rounding error, measured by the generator as 1.4 to 6.1 u (rel L2) from the
 *     exact float64 result, so two correct bf16 implementations that round at different
 *     places differ by up to about twice that, 12 u; 16 u leaves headroom;
 *   worst element (golden.h's metric, floor 0.1 of the array's max) <= 64 u (2^-2):
 *     PyTorch itself is up to 37 u from exact on single elements (bias gradients sum 128
 *     rows of bf16 values); this bound catches a wrong row, column or element.
 * Measured: dsc is 0.0 to 5.9 u (rel L2) and at most 43 u (worst element) from PyTorch.
 * A wrong formula or a missing term gives O(1) relative errors; scaling the bias
 * gradients by 0.9 (a 10% error) already fails the L2 bound (checked). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "golden.h"

#define GOLDEN_PATH "tests/golden/gpt/gpt_block_bf16.gold"
#define U_BF16 (1.0 / 256.0)
#define BF16_TOL_L2 (16 * U_BF16)
#define BF16_TOL_WORST (64 * U_BF16)

static double rel_l2(const float *got, const float *want, int64_t n) {
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        const double d = (double)got[i] - want[i];
        num += d * d;
        den += (double)want[i] * want[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

static double worst_l2 = 0, worst_elem = 0;

static void compare(const char *what, const float *got, const golden_array_t *want) {
    size_t wi = 0;
    const double l2 = rel_l2(got, golden_f32(want), want->numel);
    const double worst = golden_worst_rel_err(got, golden_f32(want), (size_t)want->numel, GOLDEN_FLOOR_FRAC, &wi);
    printf("    %-28s rel L2 %.2e (%4.1f u)  worst %.2e (%4.1f u)\n", what, l2, l2 / U_BF16, worst, worst / U_BF16);
    CHECK_MSG(l2 <= BF16_TOL_L2, "%s: relative L2 error %.3e > %.3e (16 bf16 units)", what, l2, BF16_TOL_L2);
    CHECK_MSG(worst <= BF16_TOL_WORST, "%s: worst error %.3e at [%zu]: got %.6g want %.6g (bound %.3e)", what, worst,
              wi, (double)got[wi], (double)golden_f32(want)[wi], BF16_TOL_WORST);
    if (l2 > worst_l2) worst_l2 = l2;
    if (worst > worst_elem) worst_elem = worst;
}

int main(void) {
    golden_file_t *gf = NULL;
    char err[256];
    if (golden_load(GOLDEN_PATH, &gf, err, sizeof err) != DSC_OK) {
        CHECK_MSG(false, "%s", err);
        return check_finish("test_gpt_bf16_golden");
    }
    const double *c = golden_f64(golden_find(gf, "config"));
    CHECK_MSG(c != NULL, "no config record");
    if (!c) return check_finish("test_gpt_bf16_golden");
    dsc_gpt_config_t cfg = DSC_GPT_CONFIG_TINY;
    cfg.n_layer = (int)c[0];
    cfg.n_head = (int)c[1];
    cfg.n_embd = (int)c[2];
    cfg.vocab_size = (int)c[3];
    cfg.block_size = (int)c[4];
    cfg.dropout = c[5];
    cfg.ln_eps = c[6];
    CHECK(cfg.n_layer == 1);

    dsc_ctx_t *ctx = check_ctx_new(1);
    dsc_gpt_t *g = NULL;
    CHECK_OK(dsc_gpt_new(ctx, &cfg, &g));
    const int64_t n = dsc_model_numel(g->model);
    uint16_t *params = calloc((size_t)n, 2), *grads = calloc((size_t)n, 2);
    CHECK_OK(dsc_model_bind(g->model, DSC_BF16, params, grads));
    for (int i = 0; i < dsc_model_param_count(g->model); i++) {
        dsc_param_info_t info;
        CHECK_OK(dsc_model_param_info(g->model, i, &info));
        const golden_array_t *p = golden_findf(gf, "param/%s", info.name);
        CHECK_MSG(p && p->numel == info.numel && golden_f32(p), "no golden value for %s", info.name);
        if (!p || p->numel != info.numel || !golden_f32(p)) continue;
        dsc_convert(params + info.offset, DSC_BF16, golden_f32(p), DSC_F32, (size_t)p->numel);
        for (int64_t k = 0; k < p->numel; k++) /* the golden values are bf16 numbers: exact */
            if (dsc_bf16_to_f32(params[info.offset + k]) != golden_f32(p)[k]) {
                CHECK_MSG(false, "%s[%lld] is not a bf16 value", info.name, (long long)k);
                break;
            }
    }
    const golden_array_t *tok = golden_find(gf, "tokens"), *tgt = golden_find(gf, "targets");
    const int b = (int)tok->shape[0], t = (int)tok->shape[1];
    dsc_tensor_t *logits = NULL, *loss = NULL;
    dsc_status_t st = dsc_gpt_forward(ctx, g, golden_i32(tok), golden_i32(tgt), b, t, &logits, &loss);
    CHECK_MSG(st == DSC_OK, "forward: %s", dsc_ctx_errmsg(ctx));
    if (st == DSC_OK) {
        CHECK(dsc_tensor_dtype(logits) == DSC_F32 && dsc_tensor_dtype(loss) == DSC_F32);
        printf("bf16 GPT block vs PyTorch autocast-bf16 (B=%d T=%d):\n", b, t);
        /* Host snapshots: the outputs live on the context's device. */
        const float *got_logits = check_f32(logits), *got_loss = check_f32(loss);
        if (got_logits && got_loss) {
            compare("logits", got_logits, golden_find(gf, "logits"));
            compare("loss", got_loss, golden_find(gf, "loss"));
            printf("    loss dsc %.6f, torch %.6f\n", (double)got_loss[0], (double)golden_f32(golden_find(gf, "loss"))[0]);
        }
        st = dsc_autograd_backward(ctx, loss);
        CHECK_MSG(st == DSC_OK, "backward: %s", dsc_ctx_errmsg(ctx));
        float *got = malloc((size_t)n * sizeof *got);
        dsc_convert(got, DSC_F32, grads, DSC_BF16, (size_t)n);
        for (int i = 0; st == DSC_OK && i < dsc_model_param_count(g->model); i++) {
            dsc_param_info_t info;
            dsc_model_param_info(g->model, i, &info);
            CHECK(dsc_tensor_dtype(dsc_tensor_grad(info.tensor)) == DSC_BF16);
            const golden_array_t *want = golden_findf(gf, "grad/%s", info.name);
            CHECK_MSG(want && want->numel == info.numel, "no golden gradient for %s", info.name);
            if (!want || want->numel != info.numel) continue;
            char what[GOLDEN_MAX_NAME + 8];
            snprintf(what, sizeof what, "grad %s", info.name);
            compare(what, got + info.offset, want);
        }
        free(got);
    }
    printf("worst over all arrays: rel L2 %.2e (%.1f u, bound 16 u), element %.2e (%.1f u, bound 64 u)\n", worst_l2,
           worst_l2 / U_BF16, worst_elem, worst_elem / U_BF16);
    dsc_ctx_end_step(ctx);
    dsc_gpt_free(g);
    free(params);
    free(grads);
    dsc_ctx_free(ctx);
    golden_free(gf);
    return check_finish("test_gpt_bf16_golden");
}

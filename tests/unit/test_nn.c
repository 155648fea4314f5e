/* Models over flat buffers: declaration order, offsets, binding, initialisation
 * statistics, GPT-2 parameter names and counts, and error reporting. */
#include <math.h>
#include <string.h>

#include <stdlib.h>

#include "check.h"

static void test_declare_and_bind(void) {
    dsc_ctx_t *ctx = check_ctx_new(1);
    dsc_model_t *m = NULL;
    CHECK_OK(dsc_model_new(ctx, &m));
    dsc_linear_t a, b;
    CHECK_OK(dsc_linear_init(m, &a, "a", 3, 5, true, 0.02));
    CHECK_OK(dsc_linear_init(m, &b, "b", 5, 2, false, 0.02));
    CHECK(dsc_model_param_count(m) == 3);
    CHECK(dsc_model_numel(m) == 15 + 5 + 10);
    dsc_param_info_t info;
    CHECK_OK(dsc_model_param_info(m, 1, &info));
    CHECK(strcmp(info.name, "a.bias") == 0 && info.offset == 15 && info.numel == 5);
    CHECK_OK(dsc_model_param_info(m, 2, &info));
    CHECK(strcmp(info.name, "b.weight") == 0 && info.offset == 20 && info.shape[0] == 2 && info.shape[1] == 5);
    CHECK(dsc_model_param_info(m, 3, &info) == DSC_ERR_INVALID);
    CHECK(dsc_tensor_data(a.weight) == NULL); /* not bound yet */

    /* Duplicate names are rejected with the name in the message. */
    CHECK(dsc_model_param(m, "a.bias", 1, (int64_t[]){1}, DSC_INIT_ZEROS, 0) == NULL);
    CHECK(strstr(dsc_ctx_errmsg(ctx), "duplicate parameter name a.bias") != NULL);
    dsc_ctx_clear_error(ctx);

    float params[30], grads[30];
    CHECK_OK(dsc_model_bind(m, DSC_F32, params, grads));
    CHECK(dsc_tensor_f32(a.bias) == params + 15);
    CHECK(dsc_tensor_f32(dsc_tensor_grad(b.weight)) == grads + 20);
    /* Declaring after binding is misuse. */
    CHECK(dsc_model_param(m, "late", 1, (int64_t[]){1}, DSC_INIT_ZEROS, 0) == NULL);
    CHECK(dsc_ctx_status(ctx) == DSC_ERR_MISUSE);
    dsc_model_free(m);
    dsc_ctx_free(ctx);
}

static void test_alloc_init_and_counters(void) {
    dsc_ctx_t *ctx = check_ctx_new(7);
    dsc_model_t *m = NULL;
    CHECK_OK(dsc_model_new(ctx, &m));
    dsc_linear_t big;
    CHECK_OK(dsc_linear_init(m, &big, "big", 200, 300, true, 0.5));
    dsc_layernorm_t ln;
    CHECK_OK(dsc_layernorm_init(m, &ln, "ln", 7, 1e-5));
    CHECK_OK(dsc_model_alloc(m, DSC_F32));
    int64_t n = dsc_model_numel(m);
    CHECK(dsc_ctx_mem_stats(ctx, DSC_MEM_PARAMS).live_bytes == (size_t)n * 4);
    CHECK(dsc_ctx_mem_stats(ctx, DSC_MEM_GRADS).live_bytes == (size_t)n * 4);
    /* N(0, 0.5^2) over 60000 weights: mean within 4 sigma of 0, std within 2%. */
    float *w = malloc(60000 * sizeof *w);
    CHECK_OK(check_tensor_get(big.weight, w, DSC_F32, 60000));
    double s = 0, s2 = 0;
    for (int i = 0; i < 60000; i++) {
        s += w[i];
        s2 += (double)w[i] * w[i];
    }
    free(w);
    double mean = s / 60000, std = sqrt(s2 / 60000 - mean * mean);
    CHECK_MSG(fabs(mean) < 4 * 0.5 / sqrt(60000.0), "mean %g", mean);
    CHECK_MSG(fabs(std - 0.5) < 0.01, "std %g", std);
    float bias[300], lw[7], lb[7];
    CHECK_OK(check_tensor_get(big.bias, bias, DSC_F32, 300));
    CHECK_OK(check_tensor_get(ln.weight, lw, DSC_F32, 7));
    CHECK_OK(check_tensor_get(ln.bias, lb, DSC_F32, 7));
    bool ok = true;
    for (int i = 0; i < 300; i++) ok &= bias[i] == 0.0f;
    for (int i = 0; i < 7; i++) ok &= lw[i] == 1.0f && lb[i] == 0.0f;
    CHECK(ok);
    /* Same seed, same model. */
    dsc_ctx_t *ctx2 = check_ctx_new(7);
    dsc_model_t *m2 = NULL;
    CHECK_OK(dsc_model_new(ctx2, &m2));
    dsc_linear_t big2;
    dsc_layernorm_t ln2;
    dsc_linear_init(m2, &big2, "big", 200, 300, true, 0.5);
    dsc_layernorm_init(m2, &ln2, "ln", 7, 1e-5);
    CHECK_OK(dsc_model_alloc(m2, DSC_F32));
    void *p1 = malloc((size_t)n * 4), *p2 = malloc((size_t)n * 4);
    CHECK_OK(dsc_ctx_to_host(ctx, p1, dsc_model_params_data(m), (size_t)n * 4));
    CHECK_OK(dsc_ctx_to_host(ctx2, p2, dsc_model_params_data(m2), (size_t)n * 4));
    CHECK(memcmp(p1, p2, (size_t)n * 4) == 0);
    free(p1);
    free(p2);
    dsc_model_free(m2);
    dsc_ctx_free(ctx2);
    dsc_model_free(m);
    CHECK(dsc_ctx_mem_stats(ctx, DSC_MEM_PARAMS).live_bytes == 0);
    CHECK(dsc_ctx_mem_stats(ctx, DSC_MEM_GRADS).live_bytes == 0);
    dsc_ctx_free(ctx);
}

static void test_gpt_structure(void) {
    dsc_ctx_t *ctx = check_ctx_new(3);
    dsc_gpt_config_t cfg = DSC_GPT_CONFIG_TINY;
    dsc_gpt_t *g = NULL;
    CHECK_OK(dsc_gpt_new(ctx, &cfg, &g));
    const int64_t V = 65, C = 64, T = 32, L = 2;
    int64_t expect = V * C + T * C + L * (12 * C * C + 13 * C) + 2 * C;
    CHECK_MSG(dsc_model_numel(g->model) == expect, "%lld vs %lld", (long long)dsc_model_numel(g->model), (long long)expect);
    CHECK(dsc_model_param_count(g->model) == 2 + 12 * L + 2);
    const char *names[] = {"wte.weight", "wpe.weight", "h.0.ln_1.weight", "h.0.ln_1.bias", "h.0.attn.c_attn.weight",
                           "h.0.attn.c_attn.bias", "h.0.attn.c_proj.weight", "h.0.attn.c_proj.bias", "h.0.ln_2.weight",
                           "h.0.ln_2.bias", "h.0.mlp.c_fc.weight", "h.0.mlp.c_fc.bias", "h.0.mlp.c_proj.weight",
                           "h.0.mlp.c_proj.bias", "h.1.ln_1.weight"};
    for (int i = 0; i < (int)(sizeof names / sizeof names[0]); i++) {
        dsc_param_info_t info;
        dsc_model_param_info(g->model, i, &info);
        CHECK_MSG(strcmp(info.name, names[i]) == 0, "param %d is %s, want %s", i, info.name, names[i]);
    }
    dsc_tensor_t *w = dsc_model_find_param(g->model, "h.1.attn.c_attn.weight");
    CHECK(w && dsc_tensor_dim(w, 0) == 3 * C && dsc_tensor_dim(w, 1) == C);
    CHECK(dsc_model_find_param(g->model, "ln_f.bias") != NULL);
    /* Residual projections use std 0.02 / sqrt(2L). */
    dsc_param_info_t info;
    for (int i = 0; i < dsc_model_param_count(g->model); i++) {
        dsc_model_param_info(g->model, i, &info);
        if (strstr(info.name, "c_proj.weight"))
            CHECK_MSG(fabs(info.init_std - 0.02 / sqrt(4.0)) < 1e-15, "%s std %g", info.name, info.init_std);
    }
    /* Forward before binding is a clear misuse error. */
    int32_t tok[4] = {1, 2, 3, 4};
    dsc_tensor_t *loss = NULL;
    CHECK(dsc_gpt_forward(ctx, g, tok, tok, 1, 4, NULL, &loss) == DSC_ERR_MISUSE);
    CHECK(strstr(dsc_ctx_errmsg(ctx), "not bound") != NULL);
    dsc_gpt_free(g);

    /* Invalid configs name the field. */
    dsc_gpt_config_t bad = cfg;
    bad.n_head = 3;
    CHECK(dsc_gpt_new(ctx, &bad, &g) == DSC_ERR_INVALID);
    dsc_ctx_clear_error(ctx);
    char err[256];
    CHECK(dsc_gpt_config_validate(&bad, err, sizeof err) == DSC_ERR_INVALID);
    CHECK(strstr(err, "n_embd (64) must be divisible by n_head (3)") != NULL);
    dsc_ctx_free(ctx);
}

int main(void) {
    test_declare_and_bind();
    test_alloc_init_and_counters();
    test_gpt_structure();
    return check_finish("test_nn");
}

/* Linear, LayerNorm, Embedding and GPT-2's MLP: parameter declarations plus forward as
 * ops compositions (autograd comes from the ops). */
#include <math.h>
#include <stdio.h>

#include "core/internal.h"
#include "dsc/nn.h"
#include "ops/ops_internal.h"

/* "<prefix>.<leaf>" into buf. */
static const char *join(char *buf, size_t n, const char *prefix, const char *leaf) {
    snprintf(buf, n, "%s%s%s", prefix ? prefix : "", prefix && *prefix ? "." : "", leaf);
    return buf;
}

dsc_status_t dsc_linear_init(dsc_model_t *model, dsc_linear_t *layer, const char *prefix, int64_t in_features,
                             int64_t out_features, bool bias, double std) {
    if (!model || !layer) return DSC_ERR_INVALID;
    dsc_ctx_t *ctx = dsc_model_ctx(model);
    if (in_features <= 0 || out_features <= 0)
        return dsc_ctx_set_error(ctx, DSC_ERR_INVALID, "linear %s: sizes must be positive, got in=%lld out=%lld",
                                 prefix ? prefix : "", (long long)in_features, (long long)out_features);
    char name[512];
    int64_t wshape[2] = {out_features, in_features}, bshape[1] = {out_features};
    /* torch.nn.Linear's default init is U(-1/sqrt(in), 1/sqrt(in)) for weight and bias. */
    bool torch_default = std <= 0;
    double bound = 1.0 / sqrt((double)in_features);
    layer->in_features = in_features;
    layer->out_features = out_features;
    layer->weight = dsc_model_param(model, join(name, sizeof name, prefix, "weight"), 2, wshape,
                                    torch_default ? DSC_INIT_UNIFORM : DSC_INIT_NORMAL, torch_default ? bound : std);
    layer->bias = bias ? dsc_model_param(model, join(name, sizeof name, prefix, "bias"), 1, bshape,
                                         torch_default ? DSC_INIT_UNIFORM : DSC_INIT_ZEROS, torch_default ? bound : 0)
                       : NULL;
    return dsc_ctx_status(ctx);
}

dsc_tensor_t *dsc_param_compute(dsc_ctx_t *ctx, dsc_tensor_t *param) {
    if (!param) return NULL;
    /* ZeRO-2/3: a use outside any scope is held (gathered, with a gradient buffer) until
     * the micro-step ends. */
    if (ctx && ctx->param_hooks && ctx->param_hooks->use(ctx->param_hooks->user, param) != DSC_OK) return NULL;
    return param; /* in its own dtype: 16-bit parameters feed the 16-bit kernels directly */
}

dsc_tensor_t *dsc_param_compute_as(dsc_ctx_t *ctx, dsc_tensor_t *param, const dsc_tensor_t *like) {
    dsc_tensor_t *p = dsc_param_compute(ctx, param);
    if (!p || !like || dsc_tensor_dtype(like) == dsc_tensor_dtype(p)) return p;
    return dsc_cast(ctx, p, dsc_tensor_dtype(like)); /* the explicit conversion of the dtype rules */
}

/* The layer's parameters in their scope around one linear op: dsc_linear, dsc_gelu_linear
 * (gelu_input: an MLP's output projection), or dsc_linear_residual (residual given). */
static dsc_tensor_t *linear_forward(dsc_ctx_t *ctx, const dsc_linear_t *layer, dsc_tensor_t *x, bool gelu_input,
                                    dsc_tensor_t *residual) {
    if (!layer) return NULL;
    dsc_param_scope_t scope;
    dsc_tensor_t *params[2] = {layer->weight, layer->bias};
    dsc_param_scope_enter(ctx, &scope, 2, params);
    /* one op, one output: the gemm with its bias */
    dsc_tensor_t *w = dsc_param_compute_as(ctx, layer->weight, x);
    dsc_tensor_t *b = layer->bias ? dsc_param_compute_as(ctx, layer->bias, x) : NULL;
    dsc_tensor_t *y = residual     ? dsc_linear_residual(ctx, x, w, b, residual, gelu_input)
                      : gelu_input ? dsc_gelu_linear(ctx, x, w, b)
                                   : dsc_linear(ctx, x, w, b);
    dsc_param_scope_exit(ctx, &scope);
    return y;
}

dsc_tensor_t *dsc_linear_forward(dsc_ctx_t *ctx, const dsc_linear_t *layer, dsc_tensor_t *x) {
    return linear_forward(ctx, layer, x, false, NULL);
}

dsc_tensor_t *dsc_linear_forward_residual(dsc_ctx_t *ctx, const dsc_linear_t *layer, dsc_tensor_t *x,
                                          dsc_tensor_t *residual) {
    if (!residual) return NULL;
    return linear_forward(ctx, layer, x, false, residual);
}

dsc_status_t dsc_layernorm_init(dsc_model_t *model, dsc_layernorm_t *layer, const char *prefix, int64_t n, double eps) {
    if (!model || !layer) return DSC_ERR_INVALID;
    char name[512];
    int64_t shape[1] = {n};
    layer->eps = eps;
    layer->weight = dsc_model_param(model, join(name, sizeof name, prefix, "weight"), 1, shape, DSC_INIT_ONES, 0);
    layer->bias = dsc_model_param(model, join(name, sizeof name, prefix, "bias"), 1, shape, DSC_INIT_ZEROS, 0);
    return dsc_ctx_status(dsc_model_ctx(model));
}

dsc_tensor_t *dsc_layernorm_forward(dsc_ctx_t *ctx, const dsc_layernorm_t *layer, dsc_tensor_t *x) {
    if (!layer) return NULL;
    dsc_param_scope_t scope;
    dsc_tensor_t *params[2] = {layer->weight, layer->bias};
    dsc_param_scope_enter(ctx, &scope, 2, params);
    dsc_tensor_t *y =
        dsc_layernorm(ctx, x, dsc_param_compute_as(ctx, layer->weight, x), dsc_param_compute_as(ctx, layer->bias, x), layer->eps);
    dsc_param_scope_exit(ctx, &scope);
    return y;
}

dsc_status_t dsc_embedding_init(dsc_model_t *model, dsc_embedding_layer_t *layer, const char *prefix, int64_t num,
                                int64_t dim, double std) {
    if (!model || !layer) return DSC_ERR_INVALID;
    char name[512];
    int64_t shape[2] = {num, dim};
    layer->weight = dsc_model_param(model, join(name, sizeof name, prefix, "weight"), 2, shape, DSC_INIT_NORMAL, std);
    return dsc_ctx_status(dsc_model_ctx(model));
}

dsc_tensor_t *dsc_embedding_forward(dsc_ctx_t *ctx, const dsc_embedding_layer_t *layer, dsc_tensor_t *ids) {
    if (!layer) return NULL;
    dsc_param_scope_t scope;
    dsc_param_scope_enter(ctx, &scope, 1, &layer->weight);
    dsc_tensor_t *y = dsc_embedding(ctx, ids, dsc_param_compute(ctx, layer->weight));
    dsc_param_scope_exit(ctx, &scope);
    return y;
}

dsc_status_t dsc_mlp_init(dsc_model_t *model, dsc_mlp_t *mlp, const char *prefix, int64_t n, double std,
                          double proj_std) {
    if (!model || !mlp) return DSC_ERR_INVALID;
    char name[512];
    dsc_linear_init(model, &mlp->c_fc, join(name, sizeof name, prefix, "c_fc"), n, 4 * n, true, std);
    dsc_linear_init(model, &mlp->c_proj, join(name, sizeof name, prefix, "c_proj"), 4 * n, n, true, proj_std);
    return dsc_ctx_status(dsc_model_ctx(model));
}

/* c_fc's output; on a device whose gemm applies GELU in its epilogue also its GELU, left for
 * c_proj (dsc__linear_gelu_ahead) so that forward makes no separate GELU pass */
static dsc_tensor_t *mlp_fc(dsc_ctx_t *ctx, const dsc_mlp_t *mlp, dsc_tensor_t *x) {
    const dsc_linear_t *layer = &mlp->c_fc;
    dsc_param_scope_t scope;
    dsc_tensor_t *params[2] = {layer->weight, layer->bias};
    dsc_param_scope_enter(ctx, &scope, 2, params);
    dsc_tensor_t *w = dsc_param_compute_as(ctx, layer->weight, x);
    dsc_tensor_t *b = layer->bias ? dsc_param_compute_as(ctx, layer->bias, x) : NULL;
    dsc_tensor_t *y = dsc__linear_gelu_ahead(ctx, x, w, b);
    dsc_param_scope_exit(ctx, &scope);
    return y;
}

dsc_tensor_t *dsc_mlp_forward(dsc_ctx_t *ctx, const dsc_mlp_t *mlp, dsc_tensor_t *x) {
    if (!mlp) return NULL;
    /* c_proj(gelu(c_fc(x))) keeping c_fc's output only: the GELU is recomputed in backward */
    return linear_forward(ctx, &mlp->c_proj, mlp_fc(ctx, mlp, x), true, NULL);
}

dsc_tensor_t *dsc_mlp_forward_residual(dsc_ctx_t *ctx, const dsc_mlp_t *mlp, dsc_tensor_t *x, dsc_tensor_t *residual) {
    if (!mlp || !residual) return NULL;
    return linear_forward(ctx, &mlp->c_proj, mlp_fc(ctx, mlp, x), true, residual);
}

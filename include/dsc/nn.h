/* dsc/nn.h: models as named parameters in flat buffers, and the basic layers.
 *
 * A dsc_model_t is a list of named parameters ("h.0.attn.c_attn.weight"), declared
 * before any memory exists, so the total size (and every ZeRO partition of it) is known
 * before allocation. Each parameter is a persistent tensor header whose data and gradient
 * pointers are set when the model is bound to flat buffers: parameter i occupies elements
 * [offset_i, offset_i + numel_i) of the flat parameter buffer and the same range of the
 * flat gradient buffer, in declaration order with no gaps.
 *
 * Who binds: dsc_model_alloc lets the model own its buffers (standalone training); the
 * engine (dsc/engine.h) owns them otherwise and calls dsc_model_bind.
 *
 * Layers are plain structs holding their parameter tensors; forward functions are ops
 * compositions, so autograd needs nothing layer-specific.
 */
#ifndef DSC_NN_H
#define DSC_NN_H

#include "dsc/ops.h"
#include "dsc/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dsc_model dsc_model_t;

/* How dsc_model_init_params fills a parameter. */
typedef enum dsc_init_kind {
    DSC_INIT_ZEROS = 0,
    DSC_INIT_ONES,
    DSC_INIT_NORMAL,  /* N(0, std^2) */
    DSC_INIT_UNIFORM  /* U[-bound, bound) with bound = std (torch Linear: 1/sqrt(fan_in)) */
} dsc_init_kind_t;

/* Describes one declared parameter (dsc_model_param_info). Pointers stay valid while the
 * model lives. */
typedef struct dsc_param_info {
    const char *name;
    int ndim;
    int64_t shape[DSC_MAX_DIMS];
    int64_t numel;
    int64_t offset;        /* element offset in the flat buffers */
    dsc_init_kind_t init;
    double init_std;
    dsc_tensor_t *tensor;  /* the parameter; data is NULL until bound */
} dsc_param_info_t;

/* Creates an empty model on `ctx` (which must outlive it). Returns DSC_OK or DSC_ERR_NOMEM. */
dsc_status_t dsc_model_new(dsc_ctx_t *ctx, dsc_model_t **out);
/* Frees the model, its parameter headers and, if it owns them, its flat buffers. NULL ok. */
void dsc_model_free(dsc_model_t *model);
dsc_ctx_t *dsc_model_ctx(const dsc_model_t *model);

/* Declares a parameter (name copied) and returns its tensor, whose data appears when the
 * model is bound. Errors (duplicate name, bad shape, model already bound) are recorded on
 * the context and return NULL. */
dsc_tensor_t *dsc_model_param(dsc_model_t *model, const char *name, int ndim, const int64_t *shape,
                              dsc_init_kind_t init, double init_std);

int dsc_model_param_count(const dsc_model_t *model);
/* Information about parameter i (0-based, declaration order). DSC_ERR_INVALID if out of range. */
dsc_status_t dsc_model_param_info(const dsc_model_t *model, int i, dsc_param_info_t *out);
/* The parameter named `name`, or NULL. */
dsc_tensor_t *dsc_model_find_param(const dsc_model_t *model, const char *name);
/* Total elements over all parameters: the length of the flat buffers. */
int64_t dsc_model_numel(const dsc_model_t *model);

/* Points every parameter into caller-owned flat buffers of dsc_model_numel elements of
 * `dtype` (f32 or f64). `grads` may be NULL (then no parameter requires grad). Rebinding
 * is allowed (ZeRO moves parameters). DSC_ERR_INVALID for a NULL params or bad dtype. */
dsc_status_t dsc_model_bind(dsc_model_t *model, dsc_dtype_t dtype, void *params, void *grads);
/* The same with a gradient buffer of another dtype than the parameters (mixed precision:
 * bf16 parameters with f32 gradient accumulation). grads may be NULL. */
dsc_status_t dsc_model_bind_mixed(dsc_model_t *model, dsc_dtype_t param_dtype, void *params, dsc_dtype_t grad_dtype,
                                  void *grads);
/* Binds for ZeRO stages 2 and 3: every parameter gets `dtype`, a gradient header without
 * data, and requires grad; its data is in `params` (flat layout; stage 2) or, with params
 * NULL, nowhere (stage 3). The engine gives gradient buffers (and, at stage 3, gathered
 * values) around each use (parameter scopes below). */
dsc_status_t dsc_model_bind_partitioned(dsc_model_t *model, dsc_dtype_t dtype, void *params);
/* Allocates flat parameter and gradient buffers owned by the model (counted as
 * DSC_MEM_PARAMS and DSC_MEM_GRADS), binds them and initialises the parameters. */
dsc_status_t dsc_model_alloc(dsc_model_t *model, dsc_dtype_t dtype);
/* Fills every bound parameter from its init kind using the context RNG, in declaration
 * order (so the same seed gives the same model). */
dsc_status_t dsc_model_init_params(dsc_model_t *model);
/* The model's own flat buffers (NULL unless dsc_model_alloc was used). */
void *dsc_model_params_data(dsc_model_t *model);
void *dsc_model_grads_data(dsc_model_t *model);
/* Zeroes the bound gradient buffer. */
void dsc_model_zero_grad(dsc_model_t *model);

/* A parameter as ops consume it: the tensor itself, in its stored dtype (under bf16/fp16
 * mixed precision a 16-bit tensor, which the ops take directly and compute on in f32;
 * nothing is copied). Under ZeRO-2/3 a use outside any parameter scope is registered with
 * the engine. Returns NULL if param is NULL or the engine's hook fails (error on ctx). */
dsc_tensor_t *dsc_param_compute(dsc_ctx_t *ctx, dsc_tensor_t *param);
/* dsc_param_compute, converted to like's dtype when the two differ (dsc_cast, whose
 * backward rounds the gradient into the parameter's once): ops refuse mixed dtypes, so a
 * layer that meets an input of another dtype than its parameters (f32 data into a bf16
 * model) converts its parameters explicitly. like may be NULL (no conversion). */
dsc_tensor_t *dsc_param_compute_as(dsc_ctx_t *ctx, dsc_tensor_t *param, const dsc_tensor_t *like);

/* ---- Parameter scopes (ZeRO stage 3) ----
 * Under ZeRO-3 each rank stores only a slice of every parameter (docs/zero.md). A layer
 * wraps the code that uses its parameters in a scope: entering gathers them, leaving frees
 * the gathered copy; in backward the scope gathers them again before the layer's backward
 * and, after it, sends the layer's gradients to their owners and frees both. Without
 * ZeRO-3 a scope does nothing. The built-in layers and GPT use scopes; a model of your own
 * needs them only for memory: a partitioned parameter used outside any scope is gathered
 * on first use and kept until the end of the micro-step.
 * Inside a scope, do not keep views of a parameter's data beyond the scope's end.
 * Scopes nest; a parameter in two live scopes is gathered once. */
#define DSC_PARAM_SCOPE_MAX 8
typedef struct dsc_param_scope {
    dsc_tensor_t *params[DSC_PARAM_SCOPE_MAX];
    int n;
    bool entered; /* the parameters were acquired (exit releases them) */
} dsc_param_scope_t;
/* Enters a scope over up to DSC_PARAM_SCOPE_MAX parameters (NULL entries are skipped).
 * Returns the context's status: DSC_ERR_INVALID (more than DSC_PARAM_SCOPE_MAX), or the
 * gather's error (DSC_ERR_COMM naming the rank, DSC_ERR_NOMEM). Always pair with exit. */
dsc_status_t dsc_param_scope_enter(dsc_ctx_t *ctx, dsc_param_scope_t *scope, int n, dsc_tensor_t *const *params);
void dsc_param_scope_exit(dsc_ctx_t *ctx, dsc_param_scope_t *scope);

/* ---- Layers ---- */

/* y = x W^T + b, W: [out, in] (torch.nn.Linear's layout), b: [out]. */
typedef struct dsc_linear {
    dsc_tensor_t *weight;
    dsc_tensor_t *bias; /* NULL without bias */
    int64_t in_features, out_features;
} dsc_linear_t;
/* Declares "<prefix>.weight" (and "<prefix>.bias") on the model with the given init std
 * (normal); std <= 0 means torch's default U(-1/sqrt(in), 1/sqrt(in)) for both. */
dsc_status_t dsc_linear_init(dsc_model_t *model, dsc_linear_t *layer, const char *prefix, int64_t in_features,
                             int64_t out_features, bool bias, double std);
dsc_tensor_t *dsc_linear_forward(dsc_ctx_t *ctx, const dsc_linear_t *layer, dsc_tensor_t *x);
/* residual + layer(x) as one op and one output (dsc_linear_residual): a transformer's
 * projection onto its residual stream. residual: the output's shape and dtype. */
dsc_tensor_t *dsc_linear_forward_residual(dsc_ctx_t *ctx, const dsc_linear_t *layer, dsc_tensor_t *x,
                                          dsc_tensor_t *residual);

typedef struct dsc_layernorm {
    dsc_tensor_t *weight, *bias;
    double eps;
} dsc_layernorm_t;
dsc_status_t dsc_layernorm_init(dsc_model_t *model, dsc_layernorm_t *layer, const char *prefix, int64_t n, double eps);
dsc_tensor_t *dsc_layernorm_forward(dsc_ctx_t *ctx, const dsc_layernorm_t *layer, dsc_tensor_t *x);

typedef struct dsc_embedding_layer {
    dsc_tensor_t *weight; /* [num, dim] */
} dsc_embedding_layer_t;
dsc_status_t dsc_embedding_init(dsc_model_t *model, dsc_embedding_layer_t *layer, const char *prefix, int64_t num,
                                int64_t dim, double std);
dsc_tensor_t *dsc_embedding_forward(dsc_ctx_t *ctx, const dsc_embedding_layer_t *layer, dsc_tensor_t *ids);

/* GPT-2's MLP: c_proj(gelu(c_fc(x))), hidden = 4 * n. */
typedef struct dsc_mlp {
    dsc_linear_t c_fc, c_proj;
} dsc_mlp_t;
dsc_status_t dsc_mlp_init(dsc_model_t *model, dsc_mlp_t *mlp, const char *prefix, int64_t n, double std,
                          double proj_std);
dsc_tensor_t *dsc_mlp_forward(dsc_ctx_t *ctx, const dsc_mlp_t *mlp, dsc_tensor_t *x);
/* residual + mlp(x), the output projection and the add in one op (dsc_linear_residual). */
dsc_tensor_t *dsc_mlp_forward_residual(dsc_ctx_t *ctx, const dsc_mlp_t *mlp, dsc_tensor_t *x, dsc_tensor_t *residual);

#ifdef __cplusplus
}
#endif
#endif

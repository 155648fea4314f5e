/* Named parameters declared first, bound to flat buffers later (see dsc/nn.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "ops/backend.h"
#include "dsc/nn.h"

typedef struct param_entry {
    char *name;
    dsc_param_info_t info;
} param_entry_t;

struct dsc_model {
    dsc_ctx_t *ctx;
    param_entry_t *params;
    int n_params, cap_params;
    int64_t numel;
    dsc_dtype_t bound_dtype;
    bool bound;
    /* Buffers owned by the model (dsc_model_alloc), else NULL. */
    void *own_params, *own_grads;
    size_t own_bytes;
    /* Where the gradient buffer is (owned or not), for zero_grad. */
    void *grads;
};

dsc_status_t dsc_model_new(dsc_ctx_t *ctx, dsc_model_t **out) {
    if (!ctx || !out) return DSC_ERR_INVALID;
    *out = calloc(1, sizeof **out);
    if (!*out) return dsc_ctx_set_error(ctx, DSC_ERR_NOMEM, "out of memory creating a model");
    (*out)->ctx = ctx;
    return DSC_OK;
}

void dsc_model_free(dsc_model_t *m) {
    if (!m) return;
    for (int i = 0; i < m->n_params; i++) {
        dsc_tensor_t *t = m->params[i].info.tensor;
        free(m->params[i].name);
        if (t) free(t->grad); /* bound gradient headers are separate allocations */
        dsc_tensor_free_persistent(m->ctx, t);
    }
    free(m->params);
    if (m->own_params) {
        dsc_ctx_release(m->ctx, DSC_MEM_PARAMS, m->own_params, m->own_bytes);
        dsc_ctx_release(m->ctx, DSC_MEM_GRADS, m->own_grads, m->own_bytes);
    }
    free(m);
}

dsc_ctx_t *dsc_model_ctx(const dsc_model_t *m) { return m ? m->ctx : NULL; }

dsc_tensor_t *dsc_model_param(dsc_model_t *m, const char *name, int ndim, const int64_t *shape, dsc_init_kind_t init,
                              double init_std) {
    if (!m) return NULL;
    dsc_ctx_t *ctx = m->ctx;
    if (!name || !*name) return dsc__fail(ctx, DSC_ERR_INVALID, "dsc_model_param: empty parameter name");
    if (m->bound) return dsc__fail(ctx, DSC_ERR_MISUSE, "dsc_model_param %s: model is already bound to buffers", name);
    if (dsc_model_find_param(m, name))
        return dsc__fail(ctx, DSC_ERR_INVALID, "dsc_model_param: duplicate parameter name %s", name);
    if (m->n_params == m->cap_params) {
        int cap = m->cap_params ? m->cap_params * 2 : 32;
        param_entry_t *p = realloc(m->params, (size_t)cap * sizeof *p);
        if (!p) return dsc__fail(ctx, DSC_ERR_NOMEM, "out of memory declaring parameter %s", name);
        m->params = p;
        m->cap_params = cap;
    }
    /* A placeholder pointer until bound: the header needs non-NULL data to be created. */
    static const double placeholder = 0;
    dsc_tensor_t *t = dsc_tensor_wrap(ctx, DSC_F32, ndim, shape, (void *)&placeholder, NULL, true);
    if (!t) return NULL;
    char *copy = strdup(name);
    if (!copy) {
        dsc_tensor_free_persistent(ctx, t);
        return dsc__fail(ctx, DSC_ERR_NOMEM, "out of memory declaring parameter %s", name);
    }
    t->data = NULL;
    t->name = copy;
    param_entry_t *e = &m->params[m->n_params++];
    memset(e, 0, sizeof *e);
    e->name = copy;
    e->info.name = copy;
    e->info.ndim = ndim;
    for (int d = 0; d < ndim; d++) e->info.shape[d] = shape[d];
    e->info.numel = t->numel;
    e->info.offset = m->numel;
    e->info.init = init;
    e->info.init_std = init_std;
    e->info.tensor = t;
    m->numel += t->numel;
    return t;
}

int dsc_model_param_count(const dsc_model_t *m) { return m ? m->n_params : 0; }

dsc_status_t dsc_model_param_info(const dsc_model_t *m, int i, dsc_param_info_t *out) {
    if (!m || !out || i < 0 || i >= m->n_params) return DSC_ERR_INVALID;
    *out = m->params[i].info;
    return DSC_OK;
}

dsc_tensor_t *dsc_model_find_param(const dsc_model_t *m, const char *name) {
    if (!m || !name) return NULL;
    for (int i = 0; i < m->n_params; i++)
        if (strcmp(m->params[i].name, name) == 0) return m->params[i].info.tensor;
    return NULL;
}

int64_t dsc_model_numel(const dsc_model_t *m) { return m ? m->numel : 0; }

dsc_status_t dsc_model_bind(dsc_model_t *m, dsc_dtype_t dtype, void *params, void *grads) {
    return dsc_model_bind_mixed(m, dtype, params, dtype, grads);
}

/* The gradient header of parameter t (created on first binding). Parameter headers are
 * allocated without room for a gradient header (dsc_tensor_wrap, persistent), so it is a
 * separate allocation, freed by dsc_model_free. NULL after recording DSC_ERR_NOMEM. */
static dsc_tensor_t *grad_header(dsc_model_t *m, dsc_tensor_t *t) {
    if (t->grad) return t->grad;
    dsc_tensor_t *g = calloc(1, sizeof *g);
    if (!g) {
        dsc_ctx_set_error(m->ctx, DSC_ERR_NOMEM, "out of memory binding %s", t->name);
        return NULL;
    }
    *g = *t;
    g->grad = NULL;
    g->producer = NULL;
    g->requires_grad = false;
    g->grad_is_external = false;
    t->grad = g;
    t->grad_is_external = true;
    return g;
}

dsc_status_t dsc_model_bind_partitioned(dsc_model_t *m, dsc_dtype_t dtype, void *params) {
    if (!m) return DSC_ERR_INVALID;
    if (!dsc__is_float(dtype))
        return dsc_ctx_set_error(m->ctx, DSC_ERR_INVALID, "dsc_model_bind_partitioned: dtype %s is not a float type",
                                 dsc_dtype_name(dtype));
    for (int i = 0; i < m->n_params; i++) {
        dsc_tensor_t *t = m->params[i].info.tensor;
        if (!grad_header(m, t)) return DSC_ERR_NOMEM;
        t->dtype = t->grad->dtype = dtype;
        t->data = params ? (char *)params + (size_t)m->params[i].info.offset * dsc_dtype_size(dtype) : NULL;
        t->grad->data = NULL;
        t->requires_grad = true;
    }
    m->bound = true;
    m->bound_dtype = dtype;
    m->grads = NULL;
    return DSC_OK;
}

dsc_status_t dsc_model_bind_mixed(dsc_model_t *m, dsc_dtype_t dtype, void *params, dsc_dtype_t grad_dtype, void *grads) {
    if (!m) return DSC_ERR_INVALID;
    if (grads && !dsc__is_float(grad_dtype))
        return dsc_ctx_set_error(m->ctx, DSC_ERR_INVALID, "dsc_model_bind: gradient dtype %s is not a float type",
                                 dsc_dtype_name(grad_dtype));
    if (!params) return dsc_ctx_set_error(m->ctx, DSC_ERR_INVALID, "dsc_model_bind: params buffer is NULL");
    if (!dsc__is_float(dtype))
        return dsc_ctx_set_error(m->ctx, DSC_ERR_INVALID, "dsc_model_bind: dtype %s is not a float type", dsc_dtype_name(dtype));
    size_t es = dsc_dtype_size(dtype), ges = dsc_dtype_size(grad_dtype);
    for (int i = 0; i < m->n_params; i++) {
        dsc_param_info_t *p = &m->params[i].info;
        dsc_tensor_t *t = p->tensor;
        t->dtype = dtype;
        t->data = (char *)params + (size_t)p->offset * es;
        t->requires_grad = grads != NULL;
        if (grads) {
            if (!grad_header(m, t)) return DSC_ERR_NOMEM;
            t->grad->dtype = grad_dtype;
            t->grad->data = (char *)grads + (size_t)p->offset * ges;
        }
    }
    m->bound = true;
    m->bound_dtype = grad_dtype;
    m->grads = grads;
    return DSC_OK;
}

dsc_status_t dsc_model_init_params(dsc_model_t *m) {
    if (!m) return DSC_ERR_INVALID;
    if (!m->bound) return dsc_ctx_set_error(m->ctx, DSC_ERR_MISUSE, "dsc_model_init_params: model is not bound to buffers");
    for (int i = 0; i < m->n_params; i++) {
        dsc_param_info_t *p = &m->params[i].info;
        dsc_tensor_t *t = p->tensor;
        dsc_status_t rc = DSC_OK;
        switch (p->init) {
        case DSC_INIT_ZEROS: m->ctx->backend->fill(&m->ctx->device, t->dtype, t->numel, 0.0, t->data); break;
        case DSC_INIT_ONES: m->ctx->backend->fill(&m->ctx->device, t->dtype, t->numel, 1.0, t->data); break;
        case DSC_INIT_NORMAL: rc = dsc_tensor_fill_normal(m->ctx, t, p->init_std); break;
        case DSC_INIT_UNIFORM: rc = dsc_tensor_fill_uniform(m->ctx, t, -p->init_std, p->init_std); break;
        }
        if (rc != DSC_OK) return rc;
    }
    return DSC_OK;
}

dsc_status_t dsc_model_alloc(dsc_model_t *m, dsc_dtype_t dtype) {
    if (!m) return DSC_ERR_INVALID;
    if (m->own_params) return dsc_ctx_set_error(m->ctx, DSC_ERR_MISUSE, "dsc_model_alloc: model already owns buffers");
    if (dtype != DSC_F32 && dtype != DSC_F64)
        return dsc_ctx_set_error(m->ctx, DSC_ERR_INVALID, "dsc_model_alloc: dtype must be f32 or f64, got %s", dsc_dtype_name(dtype));
    size_t bytes = (size_t)m->numel * dsc_dtype_size(dtype);
    m->own_params = dsc_ctx_alloc(m->ctx, DSC_MEM_PARAMS, bytes);
    m->own_grads = m->own_params ? dsc_ctx_alloc(m->ctx, DSC_MEM_GRADS, bytes) : NULL;
    if (!m->own_grads) {
        dsc_ctx_release(m->ctx, DSC_MEM_PARAMS, m->own_params, bytes);
        m->own_params = NULL;
        return dsc_ctx_status(m->ctx);
    }
    m->own_bytes = bytes;
    dsc_status_t rc = dsc_model_bind(m, dtype, m->own_params, m->own_grads);
    return rc == DSC_OK ? dsc_model_init_params(m) : rc;
}

void *dsc_model_params_data(dsc_model_t *m) { return m ? m->own_params : NULL; }
void *dsc_model_grads_data(dsc_model_t *m) { return m ? m->own_grads : NULL; }

void dsc_model_zero_grad(dsc_model_t *m) {
    if (m && m->grads) dsc__dev_zero(m->ctx, m->grads, (size_t)m->numel * dsc_dtype_size(m->bound_dtype));
}

/* Tensor headers, creation in the arena, wrapping caller memory, accessors. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"

static bool check_shape(dsc_ctx_t *ctx, const char *what, dsc_dtype_t dtype, int ndim, const int64_t *shape,
                        int64_t *numel_out) {
    if (dsc_dtype_size(dtype) == 0) {
        dsc__fail(ctx, DSC_ERR_INVALID, "%s: unknown dtype %d", what, (int)dtype);
        return false;
    }
    if (ndim < 1 || ndim > DSC_MAX_DIMS || !shape) {
        dsc__fail(ctx, DSC_ERR_INVALID, "%s: ndim must be 1..%d, got %d", what, DSC_MAX_DIMS, ndim);
        return false;
    }
    int64_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0 || (shape[i] > 0 && numel > INT64_MAX / 16 / shape[i])) {
            dsc__fail(ctx, DSC_ERR_INVALID, "%s: dimension %d has invalid size %lld", what, i, (long long)shape[i]);
            return false;
        }
        numel *= shape[i];
    }
    *numel_out = numel;
    return true;
}

static void fill_header(dsc_ctx_t *ctx, dsc_tensor_t *t, dsc_dtype_t dtype, int ndim, const int64_t *shape,
                        int64_t numel) {
    memset(t, 0, sizeof *t);
    t->device = &ctx->device;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    t->numel = numel;
    t->dtype = dtype;
}

dsc_tensor_t *dsc__tensor_empty(dsc_ctx_t *ctx, dsc_dtype_t dtype, int ndim, const int64_t *shape) {
    int64_t numel;
    if (!check_shape(ctx, "tensor", dtype, ndim, shape, &numel)) return NULL;
    dsc_tensor_t *t = dsc__arena_alloc(ctx, sizeof *t);
    if (!t) return NULL;
    fill_header(ctx, t, dtype, ndim, shape, numel);
    t->data = dsc__arena_alloc_data(ctx, (size_t)numel * dsc_dtype_size(dtype));
    return t->data ? t : NULL;
}

dsc_tensor_t *dsc__tensor_empty_like(dsc_ctx_t *ctx, const dsc_tensor_t *like) {
    return dsc__tensor_empty(ctx, like->dtype, like->ndim, like->shape);
}

dsc_tensor_t *dsc__tensor_zeros_like(dsc_ctx_t *ctx, const dsc_tensor_t *like) {
    dsc_tensor_t *t = dsc__tensor_empty_like(ctx, like);
    if (t) dsc__dev_zero(ctx, t->data, dsc_tensor_nbytes(t));
    return t;
}

dsc_tensor_t *dsc_tensor_new(dsc_ctx_t *ctx, dsc_dtype_t dtype, int ndim, const int64_t *shape) {
    if (!ctx) return NULL;
    dsc_tensor_t *t = dsc__tensor_empty(ctx, dtype, ndim, shape);
    if (t) dsc__dev_zero(ctx, t->data, dsc_tensor_nbytes(t));
    return t;
}

dsc_tensor_t *dsc_tensor_new_1d(dsc_ctx_t *ctx, dsc_dtype_t dtype, int64_t n0) {
    int64_t s[1] = {n0};
    return dsc_tensor_new(ctx, dtype, 1, s);
}
dsc_tensor_t *dsc_tensor_new_2d(dsc_ctx_t *ctx, dsc_dtype_t dtype, int64_t n0, int64_t n1) {
    int64_t s[2] = {n0, n1};
    return dsc_tensor_new(ctx, dtype, 2, s);
}
dsc_tensor_t *dsc_tensor_new_3d(dsc_ctx_t *ctx, dsc_dtype_t dtype, int64_t n0, int64_t n1, int64_t n2) {
    int64_t s[3] = {n0, n1, n2};
    return dsc_tensor_new(ctx, dtype, 3, s);
}

dsc_tensor_t *dsc_tensor_wrap(dsc_ctx_t *ctx, dsc_dtype_t dtype, int ndim, const int64_t *shape, void *data,
                              void *grad, bool persistent) {
    if (!ctx) return NULL;
    int64_t numel;
    if (!check_shape(ctx, "dsc_tensor_wrap", dtype, ndim, shape, &numel)) return NULL;
    if (!data && numel > 0) return dsc__fail(ctx, DSC_ERR_INVALID, "dsc_tensor_wrap: data is NULL");
    int n_headers = grad ? 2 : 1;
    dsc_tensor_t *t = persistent ? calloc((size_t)n_headers, sizeof *t) : dsc__arena_alloc(ctx, n_headers * sizeof *t);
    if (!t) return dsc__fail(ctx, DSC_ERR_NOMEM, "out of memory wrapping a tensor");
    fill_header(ctx, t, dtype, ndim, shape, numel);
    t->data = data;
    t->persistent = persistent;
    if (grad) {
        dsc_tensor_t *g = t + 1; /* the gradient header shares the allocation */
        fill_header(ctx, g, dtype, ndim, shape, numel);
        g->data = grad;
        g->persistent = persistent;
        t->grad = g;
        t->grad_is_external = true;
        t->requires_grad = true;
    }
    return t;
}

void dsc_tensor_free_persistent(dsc_ctx_t *ctx, dsc_tensor_t *t) {
    (void)ctx;
    if (t && t->persistent) free(t);
}

int dsc_tensor_ndim(const dsc_tensor_t *t) { return t ? t->ndim : 0; }
int64_t dsc_tensor_dim(const dsc_tensor_t *t, int axis) {
    if (!t) return 0;
    if (axis < 0) axis += t->ndim;
    return (axis >= 0 && axis < t->ndim) ? t->shape[axis] : 0;
}
int64_t dsc_tensor_numel(const dsc_tensor_t *t) { return t ? t->numel : 0; }
dsc_dtype_t dsc_tensor_dtype(const dsc_tensor_t *t) { return t ? t->dtype : DSC_DTYPE_COUNT; }
size_t dsc_tensor_nbytes(const dsc_tensor_t *t) { return t ? (size_t)t->numel * dsc_dtype_size(t->dtype) : 0; }
bool dsc_tensor_is_host(const dsc_tensor_t *t) {
    return t && (!t->data || dsc__dev_host_accessible(t->device->ctx, t->data));
}
void *dsc_tensor_data(dsc_tensor_t *t) { return t ? t->data : NULL; }

/* A typed host pointer, or NULL with an error naming the tensor when its data is on a
 * device the host cannot read. */
static void *host_data(dsc_tensor_t *t, dsc_dtype_t dtype, const char *fn) {
    if (!t || t->dtype != dtype) return NULL;
    if (dsc_tensor_is_host(t)) return t->data;
    dsc_ctx_set_error(t->device->ctx, DSC_ERR_MISUSE,
                      "%s: tensor %s lives on device %s, which the host cannot read; copy it with dsc_tensor_to_host",
                      fn, dsc_tensor_name(t), t->device->name);
    return NULL;
}
float *dsc_tensor_f32(dsc_tensor_t *t) { return host_data(t, DSC_F32, "dsc_tensor_f32"); }
double *dsc_tensor_f64(dsc_tensor_t *t) { return host_data(t, DSC_F64, "dsc_tensor_f64"); }
int32_t *dsc_tensor_i32(dsc_tensor_t *t) { return host_data(t, DSC_I32, "dsc_tensor_i32"); }

static dsc_status_t check_copy(dsc_ctx_t *ctx, const dsc_tensor_t *t, const void *host, size_t n_bytes,
                               const char *fn) {
    if (!ctx) return DSC_ERR_INVALID;
    if (!t || (!host && n_bytes))
        return dsc_ctx_set_error(ctx, DSC_ERR_INVALID, "%s: %s is NULL", fn, t ? "the host buffer" : "the tensor");
    if (n_bytes > dsc_tensor_nbytes(t))
        return dsc_ctx_set_error(ctx, DSC_ERR_INVALID, "%s: %zu bytes asked of tensor %s, which holds %zu", fn, n_bytes,
                                 dsc_tensor_name(t), dsc_tensor_nbytes(t));
    return DSC_OK;
}

dsc_status_t dsc_tensor_to_host(dsc_ctx_t *ctx, const dsc_tensor_t *t, void *host_dst, size_t n_bytes) {
    dsc_status_t st = check_copy(ctx, t, host_dst, n_bytes, "dsc_tensor_to_host");
    return st != DSC_OK ? st : dsc__dev_to_host(ctx, host_dst, t->data, n_bytes);
}

dsc_status_t dsc_tensor_from_host(dsc_ctx_t *ctx, dsc_tensor_t *t, const void *host_src, size_t n_bytes) {
    dsc_status_t st = check_copy(ctx, t, host_src, n_bytes, "dsc_tensor_from_host");
    return st != DSC_OK ? st : dsc__dev_from_host(ctx, t->data, host_src, n_bytes);
}

dsc_tensor_t *dsc_tensor_grad(dsc_tensor_t *t) { return t ? t->grad : NULL; }
void dsc_tensor_set_requires_grad(dsc_tensor_t *t, bool requires_grad) {
    if (t) t->requires_grad = requires_grad;
}
bool dsc_tensor_requires_grad(const dsc_tensor_t *t) { return t && t->requires_grad; }
void dsc_tensor_set_name(dsc_tensor_t *t, const char *name) {
    if (t) t->name = name;
}
const char *dsc_tensor_name(const dsc_tensor_t *t) { return t && t->name ? t->name : "(unnamed)"; }

double dsc_tensor_item(const dsc_tensor_t *t) {
    if (!t || t->numel != 1) return NAN;
    return dsc__dev_read_scalar(t->device->ctx, t->data, t->dtype);
}

static dsc_status_t fill(dsc_ctx_t *ctx, dsc_tensor_t *t, bool normal, double a, double b) {
    if (!ctx || !t) return DSC_ERR_INVALID;
    if (!dsc__is_float(t->dtype))
        return dsc_ctx_set_error(ctx, DSC_ERR_INVALID, "fill of tensor %s: dtype %s is not a float type",
                                 dsc_tensor_name(t), dsc_dtype_name(t->dtype));
    /* The values come from the host RNG: made in a host buffer, then copied to the device. */
    size_t es = dsc_dtype_size(t->dtype);
    char *host = malloc(dsc_tensor_nbytes(t) ? dsc_tensor_nbytes(t) : 1);
    if (!host)
        return dsc_ctx_set_error(ctx, DSC_ERR_NOMEM, "fill of tensor %s: out of memory for the host staging buffer",
                                 dsc_tensor_name(t));
    /* Chunks over threads, each value at its position in the RNG's sequence: the same bits
     * as drawing them one by one (a GPT-2 1.5B initialised in seconds, not a minute). */
    enum { CHUNK = 4096 };
    const uint64_t s0 = dsc_ctx_rng_state(ctx);
    const int64_t n_chunks = (t->numel + CHUNK - 1) / CHUNK;
#pragma omp parallel for schedule(static) if (t->numel >= 8 * CHUNK)
    for (int64_t ch = 0; ch < n_chunks; ch++) {
        double v[CHUNK];
        const int64_t i0 = ch * CHUNK, m = t->numel - i0 < CHUNK ? t->numel - i0 : CHUNK;
        for (int64_t k = 0; k < m; k++)
            v[k] = normal ? a * dsc__rng_normal_at(s0, (uint64_t)(i0 + k))
                          : a + (b - a) * dsc__rng_uniform_at(s0, (uint64_t)(i0 + k));
        dsc_convert(host + (size_t)i0 * es, t->dtype, v, DSC_F64, (size_t)m);
    }
    dsc__rng_skip(ctx, (uint64_t)t->numel * (normal ? 2u : 1u));
    dsc_status_t st = dsc__dev_from_host(ctx, t->data, host, dsc_tensor_nbytes(t));
    free(host);
    return st;
}

dsc_status_t dsc_tensor_fill_normal(dsc_ctx_t *ctx, dsc_tensor_t *t, double std) { return fill(ctx, t, true, std, 0); }
dsc_status_t dsc_tensor_fill_uniform(dsc_ctx_t *ctx, dsc_tensor_t *t, double lo, double hi) {
    return fill(ctx, t, false, lo, hi);
}

dsc_status_t dsc_tensor_copy_from_f32(dsc_tensor_t *t, const float *src, size_t n_elems) {
    if (!t || !src || (int64_t)n_elems > t->numel || !dsc__is_float(t->dtype)) return DSC_ERR_INVALID;
    dsc_ctx_t *ctx = t->device->ctx;
    if (t->dtype == DSC_F32) return dsc__dev_from_host(ctx, t->data, src, n_elems * sizeof(float));
    size_t n_bytes = n_elems * dsc_dtype_size(t->dtype);
    void *host = malloc(n_bytes ? n_bytes : 1);
    if (!host) return dsc_ctx_set_error(ctx, DSC_ERR_NOMEM, "dsc_tensor_copy_from_f32: out of memory");
    dsc_convert(host, t->dtype, src, DSC_F32, n_elems);
    dsc_status_t st = dsc__dev_from_host(ctx, t->data, host, n_bytes);
    free(host);
    return st;
}

const char *dsc__shape_str(const dsc_tensor_t *t, char *buf, size_t n) {
    if (!t) {
        snprintf(buf, n, "(null)");
        return buf;
    }
    size_t off = 0;
    off += (size_t)snprintf(buf + off, n - off, "(");
    for (int i = 0; i < t->ndim && off < n; i++)
        off += (size_t)snprintf(buf + off, n - off, i ? ", %lld" : "%lld", (long long)t->shape[i]);
    if (off < n) snprintf(buf + off, n - off, ")");
    return buf;
}

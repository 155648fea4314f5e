#include "gradcheck.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"

#define GC_MAX_INPUTS 8

typedef struct {
    dsc_ctx_t *ctx;
    gradcheck_fn fn;
    void *user;
    int n;
    const gradcheck_input_t *spec;
    void *values[GC_MAX_INPUTS];      /* host copies the finite differences perturb */
    double *grads[GC_MAX_INPUTS];     /* host copies of the analytic gradients */
    void *dev_values[GC_MAX_INPUTS];  /* the same on the context's device */
    void *dev_grads[GC_MAX_INPUTS];
    size_t bytes[GC_MAX_INPUTS];
    uint64_t rng_state;
} gc_state_t;

static int64_t numel_of(const gradcheck_input_t *in) {
    int64_t n = 1;
    for (int d = 0; d < in->ndim; d++) n *= in->shape[d];
    return n;
}

/* Wraps the inputs for one evaluation and runs the case. */
static dsc_tensor_t *eval(gc_state_t *s, bool with_grad, dsc_tensor_t **wrapped) {
    dsc_ctx_end_step(s->ctx);
    dsc_ctx_set_rng_state(s->ctx, s->rng_state);
    dsc_ctx_set_dropout_stream(s->ctx, s->rng_state, 0); /* every evaluation draws the same dropout masks */
    for (int k = 0; k < s->n; k++) {
        const gradcheck_input_t *in = &s->spec[k];
        bool grad = with_grad && in->differentiable;
        dsc_ctx_from_host(s->ctx, s->dev_values[k], s->values[k], s->bytes[k]);
        wrapped[k] = dsc_tensor_wrap(s->ctx, in->dtype, in->ndim, in->shape, s->dev_values[k],
                                     grad ? s->dev_grads[k] : NULL, false);
    }
    return s->fn(s->ctx, wrapped, s->user);
}

static double objective(dsc_ctx_t *ctx, dsc_tensor_t *out, const double *r) {
    double f = 0;
    double *y = malloc(dsc_tensor_nbytes(out) + 8);
    if (!y || dsc_tensor_to_host(ctx, out, y, dsc_tensor_nbytes(out)) != DSC_OK) {
        free(y);
        return NAN;
    }
    for (int64_t i = 0; i < dsc_tensor_numel(out); i++) f += y[i] * r[i];
    free(y);
    return f;
}

double gradcheck(const char *name, gradcheck_fn fn, void *user, int n_inputs, const gradcheck_input_t *inputs,
                 double rel_tol, uint64_t seed) {
    gc_state_t s = {0};
    s.ctx = check_ctx_new(seed);
    s.fn = fn;
    s.user = user;
    s.n = n_inputs;
    s.spec = inputs;
    s.rng_state = seed * 7919 + 17;
    double worst = 0;
    dsc_tensor_t *wrapped[GC_MAX_INPUTS];

    /* Input values from a separate deterministic stream. */
    uint64_t vstate = seed ^ 0xA5A5A5A5u;
    for (int k = 0; k < n_inputs; k++) {
        int64_t n = numel_of(&inputs[k]);
        s.bytes[k] = ((size_t)n + 1) * 8;
        s.values[k] = calloc((size_t)n + 1, 8);
        s.grads[k] = calloc((size_t)n + 1, 8);
        s.dev_values[k] = dsc_ctx_alloc(s.ctx, DSC_MEM_OTHER, s.bytes[k]);
        s.dev_grads[k] = dsc_ctx_alloc(s.ctx, DSC_MEM_OTHER, s.bytes[k]);
        dsc_ctx_set_rng_state(s.ctx, vstate + (uint64_t)k * 1000003u);
        for (int64_t i = 0; i < n; i++) {
            double u = dsc_ctx_rand_uniform(s.ctx);
            if (inputs[k].dtype == DSC_I32)
                ((int32_t *)s.values[k])[i] = (int32_t)(inputs[k].lo + floor(u * (inputs[k].hi - inputs[k].lo)));
            else
                ((double *)s.values[k])[i] = inputs[k].lo + u * (inputs[k].hi - inputs[k].lo);
        }
    }

    dsc_tensor_t *out = eval(&s, true, wrapped);
    CHECK_MSG(out != NULL, "%s: forward failed: %s", name, dsc_ctx_errmsg(s.ctx));
    if (!out) goto done;
    CHECK_MSG(dsc_tensor_dtype(out) == DSC_F64, "%s: output is not f64", name);
    int64_t n_out = dsc_tensor_numel(out);
    double *r = malloc((size_t)n_out * sizeof *r);
    for (int64_t i = 0; i < n_out; i++) r[i] = 2.0 * dsc_ctx_rand_uniform(s.ctx) - 1.0;
    dsc_tensor_t *rt = dsc_tensor_new(s.ctx, DSC_F64, out->ndim, out->shape);
    dsc_tensor_from_host(s.ctx, rt, r, (size_t)n_out * sizeof *r);
    dsc_status_t rc = dsc__autograd_backward_from(s.ctx, out, rt);
    CHECK_MSG(rc == DSC_OK, "%s: backward failed: %s", name, dsc_ctx_errmsg(s.ctx));
    for (int k = 0; k < n_inputs && rc == DSC_OK; k++)
        if (inputs[k].differentiable) dsc_ctx_to_host(s.ctx, s.grads[k], s.dev_grads[k], s.bytes[k]);

    for (int k = 0; k < n_inputs && rc == DSC_OK; k++) {
        if (!inputs[k].differentiable) continue;
        int64_t n = numel_of(&inputs[k]);
        double *x = s.values[k];
        double *fd = malloc((size_t)n * sizeof *fd);
        dsc_ctx_no_grad_begin(s.ctx);
        for (int64_t i = 0; i < n; i++) {
            double x0 = x[i];
            double h = 1e-5 * fmax(1.0, fabs(x0));
            x[i] = x0 + h;
            double fp = objective(s.ctx, eval(&s, false, wrapped), r);
            x[i] = x0 - h;
            double fm = objective(s.ctx, eval(&s, false, wrapped), r);
            x[i] = x0;
            fd[i] = (fp - fm) / (2 * h);
        }
        dsc_ctx_no_grad_end(s.ctx);
        char label[256];
        snprintf(label, sizeof label, "%s: input %d gradient vs finite differences", name, k);
        /* The absolute floor keeps near-zero gradients from dominating: FD error is ~1e-9. */
        double e = check_arrays_close(label, s.grads[k], fd, (size_t)n, rel_tol, 1e-3);
        if (e > worst) worst = e;
        free(fd);
    }
    free(r);
done:
    for (int k = 0; k < n_inputs; k++) {
        free(s.values[k]);
        free(s.grads[k]);
        dsc_ctx_release(s.ctx, DSC_MEM_OTHER, s.dev_values[k], s.bytes[k]);
        dsc_ctx_release(s.ctx, DSC_MEM_OTHER, s.dev_grads[k], s.bytes[k]);
    }
    dsc_ctx_free(s.ctx);
    return worst;
}

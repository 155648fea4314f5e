/* Gradient checking against central finite differences in double precision.
 *
 * A case builds one op (or a composition) from its inputs. The checker runs it in f64,
 * back-propagates a fixed random upstream gradient R through the tape, and compares each
 * input's analytic gradient with (f(x+h) - f(x-h)) / 2h of f = sum(out * R), element by
 * element. The RNG state is restored before every evaluation so dropout masks repeat. */
#ifndef DSC_TEST_GRADCHECK_H
#define DSC_TEST_GRADCHECK_H

#include "check.h"

typedef struct gradcheck_input {
    dsc_dtype_t dtype;   /* DSC_F64 for differentiable inputs, DSC_I32 for ids/targets */
    int ndim;
    int64_t shape[DSC_MAX_DIMS];
    bool differentiable; /* checked against finite differences */
    double lo, hi;       /* uniform init range for f64 inputs; for i32, ids in [lo, hi) */
} gradcheck_input_t;

/* Builds the op's output from the wrapped inputs (same order as the specs). */
typedef dsc_tensor_t *(*gradcheck_fn)(dsc_ctx_t *ctx, dsc_tensor_t **inputs, void *user);

/* Runs the check; returns the worst relative error over all inputs (and counts a CHECK
 * failure when it is above rel_tol). `name` labels failures. */
double gradcheck(const char *name, gradcheck_fn fn, void *user, int n_inputs, const gradcheck_input_t *inputs,
                 double rel_tol, uint64_t seed);

#endif

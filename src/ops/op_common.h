/* Small helpers shared by the op files (src/ops/op_*.c): dtype checks, shape checks and
 * broadcasting rules, each recording an error that names the op, the argument(s) and
 * their shapes. All are static inline; nothing here allocates.
 *
 * Usage pattern in an op:
 *
 *     if (!ctx || !a || !b) return NULL;                       // NULL propagates quietly
 *     if (!dsc__op_check_kernel_float(ctx, "dsc_add", "a", a)) return NULL;
 *     if (!dsc__op_check_same_dtype(ctx, "dsc_add", "a", a, "b", b)) return NULL;
 *     int bc = dsc__op_broadcast(ctx, "dsc_add", "a", a, "b", b);
 *     if (bc < 0) return NULL;
 */
#ifndef DSC_OPS_OP_COMMON_H
#define DSC_OPS_OP_COMMON_H

#include <stdbool.h>
#include <stdint.h>

#include "core/internal.h"
#include "ops/backend.h"

/* Size of a buffer for dsc__shape_str ("(a, b, c, d)" with 64-bit dims fits easily). */
#define DSC_OP_SHAPE_BUF 96

/* Results of dsc__op_broadcast. */
#define DSC_BCAST_SAME 0   /* shapes equal */
#define DSC_BCAST_B 1      /* b is the smaller operand (a trailing part of a's shape) */
#define DSC_BCAST_A 2      /* a is the smaller operand (a trailing part of b's shape) */

/* Dtype rules of the ops.
 *
 * Ops take f32, f64, or (under bf16/fp16 mixed precision) the 16-bit dtypes bf16 and f16,
 * whose kernels compute in f32 and round each output once (src/ops/backend.h). An op's
 * float inputs must share ONE dtype and its float outputs have that dtype; a mix (an f32
 * activation with a bf16 weight) is refused with DSC_ERR_INVALID naming the op, both
 * tensors and their dtypes, never converted silently: converting is explicit, with
 * dsc_cast (whose backward rounds the gradient back once). The layers of src/nn do that
 * cast for a parameter whose dtype differs from its input's (dsc_param_compute_as).
 * Exceptions, each stated by its op: layer norm's saved mean/rstd are f32 for 16-bit x;
 * losses (cross-entropy) are f32 for 16-bit logits. Ops whose kernels have no 16-bit
 * body yet check with dsc__op_check_float (f32/f64 only, "cast to f32 first"). */

/* True for f32 and f64 (the wide float dtypes). */
static inline bool dsc__op_is_compute_dtype(dsc_dtype_t dt) { return dt == DSC_F32 || dt == DSC_F64; }
/* True for the 16-bit float dtypes (bf16, f16). */
static inline bool dsc__op_is_half(dsc_dtype_t dt) { return dt == DSC_BF16 || dt == DSC_F16; }
/* True for every dtype the kernels take (f32, f64, bf16, f16). */
static inline bool dsc__op_is_kernel_dtype(dsc_dtype_t dt) { return dsc__op_is_compute_dtype(dt) || dsc__op_is_half(dt); }

/* Checks that `t` (argument `arg` of `op`) is f32 or f64: for ops without 16-bit kernels.
 * f16/bf16 get an error telling to cast to f32 first; other dtypes an error naming the
 * dtype. Returns false after recording DSC_ERR_INVALID. */
static inline bool dsc__op_check_float(dsc_ctx_t *ctx, const char *op, const char *arg, const dsc_tensor_t *t) {
    if (dsc__op_is_compute_dtype(t->dtype)) return true;
    char s[DSC_OP_SHAPE_BUF];
    if (t->dtype == DSC_F16 || t->dtype == DSC_BF16)
        dsc__fail(ctx, DSC_ERR_INVALID,
                  "%s: %s (tensor %s, shape %s) has dtype %s; this op computes in f32 or f64 only, cast to f32 "
                  "first (dsc_cast)",
                  op, arg, dsc_tensor_name(t), dsc__shape_str(t, s, sizeof s), dsc_dtype_name(t->dtype));
    else
        dsc__fail(ctx, DSC_ERR_INVALID, "%s: %s (tensor %s, shape %s) has dtype %s, expected f32 or f64", op, arg,
                  dsc_tensor_name(t), dsc__shape_str(t, s, sizeof s), dsc_dtype_name(t->dtype));
    return false;
}

/* Checks that `t` is a float dtype the kernels take (f32, f64, bf16, f16). */
static inline bool dsc__op_check_kernel_float(dsc_ctx_t *ctx, const char *op, const char *arg,
                                              const dsc_tensor_t *t) {
    if (dsc__op_is_kernel_dtype(t->dtype)) return true;
    char s[DSC_OP_SHAPE_BUF];
    dsc__fail(ctx, DSC_ERR_INVALID, "%s: %s (tensor %s, shape %s) has dtype %s, expected f32, f64, bf16 or f16", op,
              arg, dsc_tensor_name(t), dsc__shape_str(t, s, sizeof s), dsc_dtype_name(t->dtype));
    return false;
}

/* Checks that `t` has exactly dtype `dt` (e.g. i32 ids). */
static inline bool dsc__op_check_dtype(dsc_ctx_t *ctx, const char *op, const char *arg, const dsc_tensor_t *t,
                                       dsc_dtype_t dt) {
    if (t->dtype == dt) return true;
    char s[DSC_OP_SHAPE_BUF];
    dsc__fail(ctx, DSC_ERR_INVALID, "%s: %s (tensor %s, shape %s) has dtype %s, expected %s", op, arg,
              dsc_tensor_name(t), dsc__shape_str(t, s, sizeof s), dsc_dtype_name(t->dtype), dsc_dtype_name(dt));
    return false;
}

/* Checks that a and b are both kernel floats (f32, f64, bf16, f16) of the same dtype; a
 * mix is refused (see the dtype rules above). */
static inline bool dsc__op_check_same_dtype(dsc_ctx_t *ctx, const char *op, const char *name_a,
                                            const dsc_tensor_t *a, const char *name_b, const dsc_tensor_t *b) {
    if (!dsc__op_check_kernel_float(ctx, op, name_a, a) || !dsc__op_check_kernel_float(ctx, op, name_b, b))
        return false;
    if (a->dtype == b->dtype) return true;
    char sa[DSC_OP_SHAPE_BUF], sb[DSC_OP_SHAPE_BUF];
    dsc__fail(ctx, DSC_ERR_INVALID,
              "%s: %s (tensor %s, shape %s) has dtype %s but %s (tensor %s, shape %s) has dtype %s (inputs must "
              "share one dtype; convert one with dsc_cast)",
              op, name_a, dsc_tensor_name(a), dsc__shape_str(a, sa, sizeof sa), dsc_dtype_name(a->dtype), name_b,
              dsc_tensor_name(b), dsc__shape_str(b, sb, sizeof sb), dsc_dtype_name(b->dtype));
    return false;
}

/* True when a and b have the same ndim and dims. */
static inline bool dsc__op_same_shape(const dsc_tensor_t *a, const dsc_tensor_t *b) {
    if (a->ndim != b->ndim) return false;
    for (int d = 0; d < a->ndim; d++)
        if (a->shape[d] != b->shape[d]) return false;
    return true;
}

/* True when small's shape equals the trailing small->ndim dims of big's shape
 * (small->ndim <= big->ndim). Equal shapes count as a suffix. */
static inline bool dsc__op_is_suffix(const dsc_tensor_t *big, const dsc_tensor_t *small) {
    if (small->ndim > big->ndim) return false;
    int off = big->ndim - small->ndim;
    for (int d = 0; d < small->ndim; d++)
        if (big->shape[off + d] != small->shape[d]) return false;
    return true;
}

/* Checks that a and b have exactly the same shape; the error names both shapes. */
static inline bool dsc__op_check_same_shape(dsc_ctx_t *ctx, const char *op, const char *name_a,
                                            const dsc_tensor_t *a, const char *name_b, const dsc_tensor_t *b) {
    if (dsc__op_same_shape(a, b)) return true;
    char sa[DSC_OP_SHAPE_BUF], sb[DSC_OP_SHAPE_BUF];
    dsc__fail(ctx, DSC_ERR_INVALID, "%s: %s %s and %s %s must have the same shape", op, name_a,
              dsc__shape_str(a, sa, sizeof sa), name_b, dsc__shape_str(b, sb, sizeof sb));
    return false;
}

/* The broadcasting rule of binary ops: the shapes are equal, or one equals a trailing part
 * of the other. Returns DSC_BCAST_SAME, DSC_BCAST_B (b is the smaller), DSC_BCAST_A (a is
 * the smaller), or -1 after recording an error naming both shapes. */
static inline int dsc__op_broadcast(dsc_ctx_t *ctx, const char *op, const char *name_a, const dsc_tensor_t *a,
                                    const char *name_b, const dsc_tensor_t *b) {
    if (dsc__op_same_shape(a, b)) return DSC_BCAST_SAME;
    if (b->ndim <= a->ndim && dsc__op_is_suffix(a, b)) return DSC_BCAST_B;
    if (a->ndim < b->ndim && dsc__op_is_suffix(b, a)) return DSC_BCAST_A;
    char sa[DSC_OP_SHAPE_BUF], sb[DSC_OP_SHAPE_BUF];
    dsc__fail(ctx, DSC_ERR_INVALID,
              "%s: shapes of %s %s and %s %s do not broadcast (they must be equal, or one must equal a trailing "
              "part of the other)",
              op, name_a, dsc__shape_str(a, sa, sizeof sa), name_b, dsc__shape_str(b, sb, sizeof sb));
    return -1;
}

/* Checks that t is a [*, n] tensor whose last dim equals `n` (e.g. a bias or norm
 * weight against x's last dim). `what` describes where n comes from ("the last dim of x"). */
static inline bool dsc__op_check_vector(dsc_ctx_t *ctx, const char *op, const char *arg, const dsc_tensor_t *t,
                                        int64_t n, const char *what) {
    if (t->ndim == 1 && t->shape[0] == n) return true;
    char s[DSC_OP_SHAPE_BUF];
    dsc__fail(ctx, DSC_ERR_INVALID, "%s: %s has shape %s, expected (%lld) to match %s", op, arg,
              dsc__shape_str(t, s, sizeof s), (long long)n, what);
    return false;
}

/* Checks t->ndim within [lo, hi]. */
static inline bool dsc__op_check_ndim(dsc_ctx_t *ctx, const char *op, const char *arg, const dsc_tensor_t *t, int lo,
                                      int hi) {
    if (t->ndim >= lo && t->ndim <= hi) return true;
    char s[DSC_OP_SHAPE_BUF];
    if (lo == hi)
        dsc__fail(ctx, DSC_ERR_INVALID, "%s: %s has shape %s, expected %d dims", op, arg,
                  dsc__shape_str(t, s, sizeof s), lo);
    else
        dsc__fail(ctx, DSC_ERR_INVALID, "%s: %s has shape %s, expected %d to %d dims", op, arg,
                  dsc__shape_str(t, s, sizeof s), lo, hi);
    return false;
}

/* Last dim of t, and the product of the others (rows of a [*, N] view). */
static inline int64_t dsc__op_last_dim(const dsc_tensor_t *t) { return t->ndim > 0 ? t->shape[t->ndim - 1] : 1; }
static inline int64_t dsc__op_rows(const dsc_tensor_t *t) {
    int64_t n = 1;
    for (int d = 0; d + 1 < t->ndim; d++) n *= t->shape[d];
    return n;
}

/* Cross-entropy's target check (src/ops/op_loss.c, also used by the LM head's fused loss):
 * every target of `targets` (i32, one per row) is ignore_index or in [0, v); returns the
 * number of rows not ignored, or -1 after recording DSC_ERR_INVALID naming the position (or
 * a device error). host_targets: the same values on the host when the caller has them (no
 * device read); NULL reads them from the tensor. logits_shape: for the message. */
int64_t dsc__ce_check_targets(dsc_ctx_t *ctx, const char *op, const dsc_tensor_t *targets, const int32_t *host_targets,
                              int64_t v, int32_t ignore_index, const char *logits_shape);

#endif

/* The LM head and its loss as one op: loss = mean cross-entropy of (x W^T) against targets,
 * with the logits held inside the op (never returned), so it may shape them for speed:
 *
 *   - The vocabulary is padded to the device's gemm_pad_elems (src/core/device.h): the op
 *     gemms against Wp, a copy of W with zero rows appended, and gives the logits a row
 *     stride of the padded width. cuBLASLt runs GPT-2's 50257-wide bf16 LM-head gemms 5-9x
 *     slower than 50304-wide ones on an H100 (bench/cuda/bench_gemm_gpt): the three gemms of
 *     one 64 x 1024-token micro-batch took 115 ms unpadded and 17 ms padded. The pad columns
 *     of the logits are x . 0 = 0: cross-entropy never reads them (its row stride is the
 *     padded width, its width the true V), the in-place gradient leaves them 0, and the
 *     zero rows of Wp make their part of dx vanish exactly. dW comes out [Vp, C] into a
 *     scratch whose first V rows are added to W's gradient.
 *   - The logits' gradient is written over the logits (cross-entropy's in-place path: no
 *     second [rows, V] buffer).
 *   - The targets' range check may use the caller's host copy (no device read, no sync).
 *   - The gradient ahead: under an engine the seed of the coming backward is known before
 *     the forward (ctx->loss_grad.seed_hint: 1/GAS times the loss scale), so the forward
 *     writes the logits' gradient over them while each row is still in cache (one read of
 *     the logits instead of two: the backend's cross_entropy_with_grad, or the same two
 *     kernels back to back), and backward goes straight to the gemms. Backward checks the
 *     guess: if this loss is not the root of the running backward or the seed differs (a
 *     caller who scaled or combined the loss), it recomputes the logits with the forward's
 *     gemm and takes the ordinary path: the same bits either way.
 * On devices that pad nothing (the CPU) the op is the matmul + cross_entropy_consume pair,
 * with the same gemms and kernels. */
#include <stdio.h>

#include "ops/op_common.h"

/* in: x [rows, C], w [V, C], targets [rows]; saved: lse [rows], logits [rows, vp] (in place
 * gradient), wp (w, or its padded copy); i[0] = ignore_index, i[1] = counted rows, i[2] = vp,
 * i[3] = 1 when the forward wrote the gradient for the seed f[0]. */
static void lm_head_backward(dsc_ctx_t *ctx, dsc_node_t *node) {
    dsc_tensor_t *x = node->in[0], *w = node->in[1], *targets = node->in[2];
    dsc_tensor_t *lse = node->saved[0], *logits = node->saved[1], *wp = node->saved[2], *out = node->out;
    const int64_t count = node->i[1], vp = node->i[2], v = w->shape[0], c = w->shape[1], rows = lse->numel;
    const dsc_dtype_t dt = x->dtype;
    const dsc_backend_t *be = ctx->backend;
    if (count == 0) { /* every target ignored: zero gradients */
        dsc__grad(ctx, x);
        dsc__grad(ctx, w);
        return;
    }
    const bool ahead_holds = node->i[3] && ctx->loss_grad.root == out && ctx->loss_grad.seed == node->f[0];
    if (!ahead_holds) {
        if (node->i[3]) /* the forward's guess was wrong: the logits again, then as without it */
            be->gemm(&ctx->device, dt, false, true, rows, vp, c, 1.0, x->data, c, wp->data, c, 0.0, logits->data, vp);
        /* g = d(loss) / count on the device; dlogits = g (softmax - onehot), over the logits */
        int64_t one = 1;
        dsc_tensor_t *g = dsc__tensor_empty(ctx, out->dtype, 1, &one);
        if (!g) return;
        be->scale(&ctx->device, out->dtype, 1, 1.0 / (double)count, out->grad->data, g->data);
        be->cross_entropy_backward(&ctx->device, dt, rows, v, vp, logits->data, lse->data, targets->data,
                                   (int32_t)node->i[0], g->data, logits->data, false);
    }
    bool overwrite;
    dsc_tensor_t *gx = dsc__grad_overwrite(ctx, x, &overwrite);
    if (gx) /* dx [rows, C] (+)= dlogits [rows, vp] Wp [vp, C] */
        be->gemm(&ctx->device, dt, false, false, rows, c, vp, 1.0, logits->data, vp, wp->data, c,
                 overwrite ? 0.0 : 1.0, gx->data, c);
    dsc_tensor_t *gw = dsc__grad(ctx, w);
    if (!gw) return;
    if (vp == v) { /* dW [V, C] += dlogits^T [V, rows] x [rows, C] */
        be->gemm(&ctx->device, dt, true, false, v, c, rows, 1.0, logits->data, vp, x->data, c, 1.0, gw->data, c);
        return;
    }
    dsc_tensor_t *scratch = dsc__tensor_empty(ctx, dt, 2, (int64_t[]){vp, c});
    if (!scratch) return;
    be->gemm(&ctx->device, dt, true, false, vp, c, rows, 1.0, logits->data, vp, x->data, c, 0.0, scratch->data, c);
    be->axpy(&ctx->device, dt, v * c, 1.0, scratch->data, gw->data); /* the pad rows are 0 and dropped */
}

dsc_tensor_t *dsc__linear_cross_entropy_host(dsc_ctx_t *ctx, dsc_tensor_t *x, dsc_tensor_t *w, dsc_tensor_t *targets,
                                             const int32_t *host_targets, int32_t ignore_index) {
    static const char *op = "dsc_linear_cross_entropy";
    if (!ctx || !x || !w || !targets) return NULL;
    if (!dsc__op_check_kernel_float(ctx, op, "x", x)) return NULL;
    if (!dsc__op_check_same_dtype(ctx, op, "x", x, "weight", w)) return NULL;
    if (!dsc__op_check_dtype(ctx, op, "targets", targets, DSC_I32)) return NULL;
    char sx[DSC_OP_SHAPE_BUF], sw[DSC_OP_SHAPE_BUF], st[DSC_OP_SHAPE_BUF];
    const int64_t c = dsc__op_last_dim(x), rows = dsc__op_rows(x);
    if (w->ndim != 2 || w->shape[1] != c || w->shape[0] < 1)
        return dsc__fail(ctx, DSC_ERR_INVALID, "%s: weight (tensor %s) has shape %s; x %s needs [V, %lld]", op,
                         dsc_tensor_name(w), dsc__shape_str(w, sw, sizeof sw), dsc__shape_str(x, sx, sizeof sx),
                         (long long)c);
    if (targets->numel != rows)
        return dsc__fail(ctx, DSC_ERR_INVALID, "%s: targets %s has %lld elements but x %s has %lld rows", op,
                         dsc__shape_str(targets, st, sizeof st), (long long)targets->numel,
                         dsc__shape_str(x, sx, sizeof sx), (long long)rows);
    const int64_t v = w->shape[0];
    if (rows > INT32_MAX || v > INT32_MAX || c > INT32_MAX)
        return dsc__fail(ctx, DSC_ERR_UNSUPPORTED, "%s: x %s, weight %s: a dimension exceeds 2^31 - 1", op,
                         dsc__shape_str(x, sx, sizeof sx), dsc__shape_str(w, sw, sizeof sw));
    char shape_msg[64];
    snprintf(shape_msg, sizeof shape_msg, "[%lld, %lld]", (long long)rows, (long long)v);
    const int64_t count = dsc__ce_check_targets(ctx, op, targets, host_targets, v, ignore_index, shape_msg);
    if (count < 0) return NULL;

    const int pad = ctx->device.table ? ctx->device.table->gemm_pad_elems : 0;
    const int64_t vp = pad > 1 ? (v + pad - 1) / pad * pad : v;
    const dsc_backend_t *be = ctx->backend;
    dsc_tensor_t *wp = w;
    if (vp != v) { /* Wp = [W; 0] */
        wp = dsc__tensor_empty(ctx, w->dtype, 2, (int64_t[]){vp, c});
        if (!wp) return NULL;
        const size_t es = dsc_dtype_size(w->dtype);
        if (dsc__dev_copy(ctx, wp->data, w->data, (size_t)(v * c) * es) != DSC_OK ||
            dsc__dev_zero(ctx, (char *)wp->data + (size_t)(v * c) * es, (size_t)((vp - v) * c) * es) != DSC_OK)
            return NULL;
    }
    dsc_tensor_t *logits = dsc__tensor_empty(ctx, x->dtype, 2, (int64_t[]){rows, vp});
    const dsc_dtype_t ldt = x->dtype == DSC_F64 ? DSC_F64 : DSC_F32; /* losses are f32 for 16-bit logits */
    int64_t one = 1;
    dsc_tensor_t *losses = dsc__tensor_empty(ctx, ldt, 1, (int64_t[]){rows});
    dsc_tensor_t *lse = dsc__tensor_empty(ctx, ldt, 1, (int64_t[]){rows});
    dsc_tensor_t *out = dsc__tensor_empty(ctx, ldt, 1, &one);
    if (!logits || !losses || !lse || !out) return NULL;
    be->gemm(&ctx->device, x->dtype, false, true, rows, vp, c, 1.0, x->data, c, wp->data, c, 0.0, logits->data, vp);
    dsc_tensor_t *in[3] = {x, w, targets};
    const bool needs_grad = dsc__needs_grad(ctx, 3, in);
    const double hint = ctx->loss_grad.seed_hint;
    const bool ahead = needs_grad && hint > 0 && count > 0;
    if (ahead) { /* g = seed / count as backward would make it, then the loss and dlogits together */
        dsc_tensor_t *seed = dsc__tensor_empty(ctx, ldt, 1, &one), *g = dsc__tensor_empty(ctx, ldt, 1, &one);
        if (!seed || !g || dsc__dev_write_scalar(ctx, seed->data, ldt, hint) != DSC_OK) return NULL;
        be->scale(&ctx->device, ldt, 1, 1.0 / (double)count, seed->data, g->data);
        if (be->cross_entropy_with_grad) {
            be->cross_entropy_with_grad(&ctx->device, x->dtype, rows, v, vp, logits->data, targets->data, ignore_index,
                                        losses->data, lse->data, g->data, logits->data);
        } else {
            be->cross_entropy(&ctx->device, x->dtype, rows, v, vp, logits->data, targets->data, ignore_index,
                              losses->data, lse->data);
            be->cross_entropy_backward(&ctx->device, x->dtype, rows, v, vp, logits->data, lse->data, targets->data,
                                       ignore_index, g->data, logits->data, false);
        }
    } else {
        be->cross_entropy(&ctx->device, x->dtype, rows, v, vp, logits->data, targets->data, ignore_index, losses->data,
                          lse->data);
    }
    be->fill(&ctx->device, ldt, 1, 0.0, out->data); /* the mean over the counted rows, on the device */
    if (count) be->sum_rows_acc(&ctx->device, ldt, rows, 1, 1.0 / (double)count, losses->data, out->data);
    if (needs_grad) {
        dsc_node_t *node = dsc__record(ctx, op, lm_head_backward, out, 3, in);
        if (!node) return NULL;
        node->saved[0] = lse;
        node->saved[1] = logits;
        node->saved[2] = wp;
        node->i[0] = ignore_index;
        node->i[1] = count;
        node->i[2] = vp;
        node->i[3] = ahead;
        node->f[0] = hint;
    }
    return out;
}

dsc_tensor_t *dsc_linear_cross_entropy(dsc_ctx_t *ctx, dsc_tensor_t *x, dsc_tensor_t *weight, dsc_tensor_t *targets,
                                       int32_t ignore_index) {
    return dsc__linear_cross_entropy_host(ctx, x, weight, targets, NULL, ignore_index);
}

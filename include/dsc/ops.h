/* dsc/ops.h: differentiable tensor ops.
 *
 * Every op takes the context first, returns a new tensor in the step arena, and, when
 * gradients are enabled and an input requires grad, records itself on the tape so that
 * dsc_autograd_backward computes input gradients. Float ops accept f32 or f64 (all inputs
 * the same dtype); f16/bf16 tensors must be cast first (dsc_cast). On bad input an op
 * records an error on the context naming the op, the argument and the shapes, and
 * returns NULL; an op given a NULL input returns NULL quietly (see dsc/tensor.h).
 *
 * Shapes: "[*, N]" means any number of leading dims (flattened), last dim N.
 */
#ifndef DSC_OPS_H
#define DSC_OPS_H

#include "dsc/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* out = op(a) @ op(b), op = transpose when the flag is set.
 * a: [*, K] with trans_a false (leading dims flattened into M), or exactly 2-D [K, M]
 * with trans_a true. b: 2-D [K, N], or [N, K] with trans_b. out: a's leading dims + [N]. */
dsc_tensor_t *dsc_matmul(dsc_ctx_t *ctx, dsc_tensor_t *a, dsc_tensor_t *b, bool trans_a, bool trans_b);

/* The linear layer as one op: out = x @ w^T + bias. x: [*, K]; w: [N, K] (as a linear
 * layer stores it); bias: [N] or NULL. out: x's leading dims + [N]. One output where
 * dsc_matmul + dsc_bias_add keep two; in 16-bit the bias joins the f32 sum and the result
 * is rounded once (the pair rounds twice); in f32/f64 the same values as the pair. */
dsc_tensor_t *dsc_linear(dsc_ctx_t *ctx, dsc_tensor_t *x, dsc_tensor_t *w, dsc_tensor_t *bias);
/* dsc_linear(gelu(pre), w, bias) keeping only pre: the GELU output lives in scratch while
 * the op runs and is recomputed in backward (as llm.c does), so an MLP keeps its
 * pre-activation and not its GELU output. The same values as dsc_gelu then dsc_linear. */
dsc_tensor_t *dsc_gelu_linear(dsc_ctx_t *ctx, dsc_tensor_t *pre, dsc_tensor_t *w, dsc_tensor_t *bias);
/* residual + dsc_linear(x, w, bias) (gelu_input: + dsc_gelu_linear(x, w, bias)) as one op
 * and one output: a transformer's projection onto its residual stream keeps one tensor
 * where the linear and dsc_add keep two. residual: the output's shape and dtype. The same
 * values as dsc_add(residual, the linear op's output). */
dsc_tensor_t *dsc_linear_residual(dsc_ctx_t *ctx, dsc_tensor_t *x, dsc_tensor_t *w, dsc_tensor_t *bias,
                                  dsc_tensor_t *residual, bool gelu_input);

/* Elementwise a (+, -, *) b. The shapes must be equal, or one must equal a trailing part
 * of the other (broadcast over leading dims, e.g. [B, T, C] + [T, C]). out has the larger shape. */
dsc_tensor_t *dsc_add(dsc_ctx_t *ctx, dsc_tensor_t *a, dsc_tensor_t *b);
dsc_tensor_t *dsc_sub(dsc_ctx_t *ctx, dsc_tensor_t *a, dsc_tensor_t *b);
dsc_tensor_t *dsc_mul(dsc_ctx_t *ctx, dsc_tensor_t *a, dsc_tensor_t *b);
/* x: [*, N] plus bias: [N]. */
dsc_tensor_t *dsc_bias_add(dsc_ctx_t *ctx, dsc_tensor_t *x, dsc_tensor_t *bias);
/* x * s for a constant s. */
dsc_tensor_t *dsc_scale(dsc_ctx_t *ctx, dsc_tensor_t *x, double s);
/* Sum / mean of all elements: a 1-element tensor of shape [1]. */
dsc_tensor_t *dsc_sum(dsc_ctx_t *ctx, dsc_tensor_t *x);
dsc_tensor_t *dsc_mean(dsc_ctx_t *ctx, dsc_tensor_t *x);

/* A tensor of a new shape sharing x's data (tensors are contiguous, so any shape with the
 * same element count works; one dim may be -1 and is inferred). dsc_view is the same op
 * under PyTorch's other name. */
dsc_tensor_t *dsc_reshape(dsc_ctx_t *ctx, dsc_tensor_t *x, int ndim, const int64_t *shape);
dsc_tensor_t *dsc_view(dsc_ctx_t *ctx, dsc_tensor_t *x, int ndim, const int64_t *shape);
/* Swaps dims d0 and d1 (negative counts from the end); the result is a contiguous copy. */
dsc_tensor_t *dsc_transpose(dsc_ctx_t *ctx, dsc_tensor_t *x, int d0, int d1);

dsc_tensor_t *dsc_relu(dsc_ctx_t *ctx, dsc_tensor_t *x);
/* GELU, tanh approximation (GPT-2's): 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). */
dsc_tensor_t *dsc_gelu(dsc_ctx_t *ctx, dsc_tensor_t *x);
dsc_tensor_t *dsc_tanh(dsc_ctx_t *ctx, dsc_tensor_t *x);
/* Softmax over the last dim. */
dsc_tensor_t *dsc_softmax(dsc_ctx_t *ctx, dsc_tensor_t *x);
/* Layer norm over the last dim N: (x - mean) / sqrt(var + eps) * weight + bias, biased
 * variance as PyTorch. weight, bias: [N]; bias may be NULL. */
dsc_tensor_t *dsc_layernorm(dsc_ctx_t *ctx, dsc_tensor_t *x, dsc_tensor_t *weight, dsc_tensor_t *bias, double eps);
/* Rows of table [V, C] picked by ids (i32, any shape [*]): out [*, C]. An id outside
 * [0, V) is an error naming the position and value. */
dsc_tensor_t *dsc_embedding(dsc_ctx_t *ctx, dsc_tensor_t *ids, dsc_tensor_t *table);
/* Inverted dropout with probability p (0 <= p < 1): in training mode zeroes each element
 * with probability p and scales the rest by 1/(1-p); the mask comes from the context's
 * dropout stream (Philox, a function of (seed, offset), dsc_ctx_dropout_stream) and is not
 * stored: backward redraws it. Identity in eval mode or when p == 0. */
dsc_tensor_t *dsc_dropout(dsc_ctx_t *ctx, dsc_tensor_t *x, double p);
/* Causal multi-head self-attention core. qkv: [B, T, 3C], laid out as GPT-2's c_attn output
 * (q, k, v each [B, T, C], heads split C into n_head slices of C/n_head).
 * out: [B, T, C], softmax(q k^T / sqrt(C/n_head) + causal mask) v, heads concatenated.
 * attn_dropout applies dropout to the attention probabilities (0 disables; the mask comes
 * from the dropout stream). Keeps only out and a per-row log-sum-exp for backward. */
dsc_tensor_t *dsc_attention(dsc_ctx_t *ctx, dsc_tensor_t *qkv, int n_head, double attn_dropout);
/* Cross-entropy from logits [*, V] and targets (i32, [*]): mean over the positions whose
 * target is not ignore_index (PyTorch's default reduction). Result [1]. A target outside
 * [0, V) that is not ignore_index is an error. If every target is ignored the loss is 0. */
dsc_tensor_t *dsc_cross_entropy(dsc_ctx_t *ctx, dsc_tensor_t *logits, dsc_tensor_t *targets, int32_t ignore_index);
/* The same loss, but the caller gives the logits up: when no other recorded op uses them
 * and nothing else has accumulated into their gradient, backward writes the gradient over
 * the logits' own memory (no second [*, V] buffer), so their values are gone after
 * backward. Otherwise it behaves exactly as dsc_cross_entropy. The GPT's forward uses it
 * when the caller does not ask for the logits. */
dsc_tensor_t *dsc_cross_entropy_consume(dsc_ctx_t *ctx, dsc_tensor_t *logits, dsc_tensor_t *targets,
                                        int32_t ignore_index);
/* The LM head and its loss in one op: the mean cross-entropy (as dsc_cross_entropy) of the
 * logits x @ weight^T against targets, for x [*, C], weight [V, C] (same float dtype),
 * targets i32 [*] (one per row of x). The logits stay inside the op (they are not returned,
 * and their gradient is written over them in backward); a device that computes faster on
 * padded widths (a GPU) pads the vocabulary to its preferred multiple, which changes nothing
 * in the result but the summation order of its gemms. Gradients reach x and weight. Result
 * [1] (f32 for 16-bit x, as dsc_cross_entropy). Errors as dsc_matmul and dsc_cross_entropy:
 * DSC_ERR_INVALID naming the tensor and shapes or the bad target's position. The GPT's
 * forward uses it when the caller does not ask for the logits. */
dsc_tensor_t *dsc_linear_cross_entropy(dsc_ctx_t *ctx, dsc_tensor_t *x, dsc_tensor_t *weight, dsc_tensor_t *targets,
                                       int32_t ignore_index);
/* Mean squared error mean((pred - target)^2), same shapes. Result [1]. */
dsc_tensor_t *dsc_mse(dsc_ctx_t *ctx, dsc_tensor_t *pred, dsc_tensor_t *target);
/* Converts to another float dtype; the gradient is converted back. */
dsc_tensor_t *dsc_cast(dsc_ctx_t *ctx, dsc_tensor_t *x, dsc_dtype_t dtype);

#ifdef __cplusplus
}
#endif
#endif

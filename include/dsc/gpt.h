/* dsc/gpt.h: the built-in GPT-2 family.
 *
 * Parameter names follow Hugging Face's GPT-2 ("wte.weight", "h.0.attn.c_attn.weight",
 * ...), with linear weights in torch.nn.Linear's [out, in] layout (Hugging Face's Conv1D
 * stores the transpose). The LM head is tied to wte. Initialisation is GPT-2's: N(0, 0.02)
 * for weights and embeddings, zero biases, unit LayerNorm weights, and the residual
 * projections (attn.c_proj, mlp.c_proj) scaled to 0.02 / sqrt(2 * n_layer).
 */
#ifndef DSC_GPT_H
#define DSC_GPT_H

#include "dsc/nn.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dsc_gpt_config {
    int n_layer;
    int n_head;
    int n_embd;      /* must be divisible by n_head */
    int vocab_size;
    int block_size;  /* maximum context length */
    double dropout;  /* embedding, attention and residual dropout (GPT-2 used 0.1) */
    double ln_eps;   /* 1e-5 */
} dsc_gpt_config_t;

/* GPT-2 124M ("d12"): 12 layers, 12 heads, 768 wide, vocab 50257, context 1024. */
#define DSC_GPT_CONFIG_D12 {12, 12, 768, 50257, 1024, 0.0, 1e-5}
/* The test model: 2 layers, 4 heads, 64 wide, vocab 65, context 32. */
#define DSC_GPT_CONFIG_TINY {2, 4, 64, 65, 32, 0.0, 1e-5}

typedef struct dsc_gpt_block {
    dsc_layernorm_t ln_1;
    dsc_linear_t c_attn; /* [3C, C] */
    dsc_linear_t c_proj; /* attention output projection [C, C] */
    dsc_layernorm_t ln_2;
    dsc_mlp_t mlp;
} dsc_gpt_block_t;

typedef struct dsc_gpt {
    dsc_gpt_config_t config;
    dsc_model_t *model;     /* owns the parameters */
    dsc_embedding_layer_t wte, wpe;
    dsc_gpt_block_t *blocks; /* n_layer */
    dsc_layernorm_t ln_f;
    int checkpoint_every;    /* activation checkpointing: see dsc_gpt_set_checkpointing */
} dsc_gpt_t;

/* Checks a config: every error names the field and its value. */
dsc_status_t dsc_gpt_config_validate(const dsc_gpt_config_t *config, char *errbuf, size_t errbuf_size);
/* Declares the GPT's parameters on a new model (not bound). Errors go to ctx. */
dsc_status_t dsc_gpt_new(dsc_ctx_t *ctx, const dsc_gpt_config_t *config, dsc_gpt_t **out);
void dsc_gpt_free(dsc_gpt_t *gpt);

/* Activation checkpointing of the transformer blocks (dsc/checkpoint.h): with every = k
 * > 0, blocks 0, k, 2k, ... run under dsc_checkpoint (k = 1: every block), keeping only
 * their inputs and recomputing them in backward; gradients are bitwise those without.
 * every = 0 (the default) follows the context: the engine's
 * activation_checkpointing.number_checkpoints = N checkpoints N blocks spread evenly
 * (dsc_actckpt_layer_selected), and without it none. DSC_ERR_INVALID for every < 0. */
dsc_status_t dsc_gpt_set_checkpointing(dsc_gpt_t *gpt, int every);

/* Forward over B sequences of T tokens (T <= block_size; tokens in [0, vocab)).
 * *logits_out (may be NULL) receives [B, T, vocab] in f32; when targets is non-NULL, *loss_out
 * receives the mean cross-entropy, f32 (targets < 0 are ignored). The activations between
 * have the parameters' dtype: with 16-bit (bf16/f16) parameters, as under a bf16/fp16
 * engine, the blocks run on 16-bit tensors with f32 arithmetic in the kernels. Returns DSC_OK or the
 * context's error (bad token id names its position). */
dsc_status_t dsc_gpt_forward(dsc_ctx_t *ctx, dsc_gpt_t *gpt, const int32_t *tokens, const int32_t *targets, int b,
                             int t, dsc_tensor_t **logits_out, dsc_tensor_t **loss_out);

#ifdef __cplusplus
}
#endif
#endif

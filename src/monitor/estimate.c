/* Per-rank memory estimate for the GPT (dsc estimate): the model state from the ZeRO plan
 * the engine allocates with (dsc_zero_plan_memory) plus the step arena's peak, counted
 * allocation by allocation as the ops of dsc_gpt_forward and their backward make them; and
 * DeepSpeed's estimators (spec §5.9) for comparison. docs/monitor.md derives the sums. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/internal.h"
#include "dsc/monitor.h"
#include "dsc/optim.h"
#include "monitor/monitor_internal.h"
#include "zero/offload_nvme.h"
#include "zero/param_nvme.h"
#include "zero/zero.h"

/* ---- model size ------------------------------------------------------------------------ */

int64_t dsc_gpt_param_count(const dsc_gpt_config_t *m) {
    if (!m || dsc_gpt_config_validate(m, NULL, 0) != DSC_OK) return -1;
    const int64_t c = m->n_embd;
    /* wte, wpe; per block ln_1 2C, c_attn 3C^2+3C, c_proj C^2+C, ln_2 2C, c_fc 4C^2+4C,
     * mlp.c_proj 4C^2+C; ln_f 2C (the LM head is tied to wte) */
    return (int64_t)m->vocab_size * c + (int64_t)m->block_size * c + (int64_t)m->n_layer * (12 * c * c + 13 * c) + 2 * c;
}

int64_t dsc_gpt_largest_layer_params(const dsc_gpt_config_t *m) {
    if (!m || dsc_gpt_config_validate(m, NULL, 0) != DSC_OK) return -1;
    const int64_t c = m->n_embd;
    int64_t sizes[] = {(int64_t)m->vocab_size * c, (int64_t)m->block_size * c, 3 * c * c + 3 * c, c * c + c,
                       4 * c * c + 4 * c, 4 * c * c + c, 2 * c};
    int64_t best = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        if (sizes[i] > best) best = sizes[i];
    return best;
}

/* ---- the step arena ---------------------------------------------------------------------
 * Every arena allocation is rounded up to DSC_ALIGN (a 0-byte one takes DSC_ALIGN too).
 * The forward's allocations stay until the end of the step (without activation
 * checkpointing). The terms, each split into what the forward allocates (f) and what the
 * backward allocates in the arena (b):
 *   tensor(n)   an op output or saved tensor: header + data of n bytes (f);
 *   recorded(n) an output the tape records: tensor(n) and its node (f); its gradient comes
 *               from the gradient pool in backward (below), not from the arena.
 * Parameters cost nothing here: ops take them in their own dtype (dsc_param_compute).
 * Activations have the parameters' dtype, es bytes per element: 4 for fp32, 2 for fp16/bf16
 * (src/nn/gpt.c); under 16-bit, layer-norm statistics, attention's log-sum-exp and the
 * cross-entropy's per-row values and loss stay f32.
 *
 * Gradients of activations (the engine's backward, src/core/grad_pool.c): a tensor's
 * gradient is taken from the pool (al(n) bytes, counted as activations) when the backward
 * of its first consumer runs, and given back once the backward of its producer has run.
 * Each segment (embeddings, one block, the head) records its ops as a small graph, and
 * pool_peak replays its backward to find the most gradient bytes alive at once. Between
 * segments one [B, T, C] gradient is alive (the residual stream's). */

#define SIM_MAX 64

typedef struct {
    int64_t f, b;
    bool mixed;
    bool scopes; /* ZeRO-2/3: layers record parameter-scope markers (src/nn/param_scope.c) */
    int64_t es; /* bytes per activation element */
    /* the segment's recorded tensors and ops, in tape order */
    int64_t f_peak; /* the forward's arena bytes plus an op's scratch, at their largest */
    int nt, nn;
    int64_t pool_bytes[SIM_MAX]; /* tensor k's pooled gradient (0: its gradient is not pooled) */
    int node_out[SIM_MAX], node_in[SIM_MAX][2];
    int64_t node_scratch[SIM_MAX]; /* pool scratch the op's backward holds while it runs */
} arena_t;

static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }
static int64_t al(int64_t n) { return ((n ? n : 1) + DSC_ALIGN - 1) / DSC_ALIGN * DSC_ALIGN; }
static int64_t header(void) { return al((int64_t)sizeof(struct dsc_tensor)); }
static int64_t node(void) { return al((int64_t)sizeof(dsc_node_t)); }
static void tensor(arena_t *a, int64_t n) { a->f += header() + al(n); }
/* The segment's input: a tensor made by an earlier segment (its gradient is pooled). */
static int input(arena_t *a, int64_t n) {
    a->pool_bytes[a->nt] = al(n);
    return a->nt++;
}
/* A recorded op's output of n bytes made from tensors in0, in1 (-1: none, or a parameter). */
static int recorded(arena_t *a, int64_t n, int in0, int in1) {
    tensor(a, n);   /* forward output */
    a->f += node(); /* tape node */
    int id = input(a, n);
    a->node_out[a->nn] = id;
    a->node_in[a->nn][0] = in0;
    a->node_in[a->nn][1] = in1;
    a->nn++;
    return id;
}

/* Replays the segment's backward with the gradient pool: the last op's output has its
 * gradient at the start; an op's backward takes its inputs' gradients (first time only)
 * and then gives its output's back. keep_last: the last output's gradient belongs to an
 * activation checkpoint's output, given back after the whole recompute. Returns the most
 * pooled bytes alive at once, the starting gradient included. */
static int64_t pool_peak(const arena_t *a, bool keep_last) {
    bool has[SIM_MAX] = {false};
    const int last = a->node_out[a->nn - 1];
    has[last] = true;
    int64_t live = a->pool_bytes[last], peak = live;
    for (int k = a->nn; k-- > 0;) {
        const int o = a->node_out[k];
        if (!has[o]) continue; /* no gradient reached it: the backward is skipped */
        for (int i = 0; i < 2; i++) {
            const int x = a->node_in[k][i];
            if (x >= 0 && !has[x]) {
                has[x] = true;
                live += a->pool_bytes[x];
            }
        }
        peak = max64(peak, live + a->node_scratch[k]);
        if (o != last || !keep_last) live -= a->pool_bytes[o];
    }
    return peak;
}

/* n parameter scopes (stages 2-3): each records a begin and an end marker, a node and a
 * record of DSC_PARAM_SCOPE_MAX parameter pointers (and its count) each. */
static void scopes(arena_t *a, int n) {
    if (a->scopes) a->f += 2 * n * (al(8 + 8 * DSC_PARAM_SCOPE_MAX) + node());
}

/* rows = B*T; statistics are f32 in every mode. */
static int layernorm(arena_t *a, int x, int64_t rows, int64_t c) {
    int y = recorded(a, a->es * rows * c, x, -1);
    tensor(a, 4 * rows); /* mean */
    tensor(a, 4 * rows); /* rstd */
    return y;
}

/* dsc_linear: one output (the gemm with its bias) */
static int linear(arena_t *a, int x, int64_t rows, int64_t out) { return recorded(a, a->es * rows * out, x, -1); }

/* dsc_gelu_linear on a [rows, in] pre-activation (residual >= 0: onto that tensor,
 * dsc_linear_residual): its GELU lives in pool scratch of the input's size while the op
 * runs, in forward (after the output) and in backward. */
static int gelu_linear(arena_t *a, int pre, int residual, int64_t rows, int64_t in, int64_t out) {
    const int64_t scratch = al(a->es * rows * in);
    a->f_peak = max64(a->f_peak, a->f + header() + al(a->es * rows * out) + scratch);
    int y = recorded(a, a->es * rows * out, pre, residual);
    a->node_scratch[a->nn - 1] = scratch;
    return y;
}

static int dropout(arena_t *a, int x, int64_t n, bool active) {
    if (!active) return x;                   /* p == 0 or eval: the op returns its input */
    return recorded(a, a->es * n, x, -1); /* no mask: backward redraws it from the Philox stream */
}

/* One transformer block (gpt.c block_forward). Without dropout the projections add onto
 * the residual stream in their own op (dsc_linear_residual): no separate output. */
static void block(arena_t *a, const dsc_gpt_config_t *m, int64_t b, int64_t t, bool drop) {
    const int64_t c = m->n_embd, rows = b * t;
    const int x = input(a, a->es * rows * c);
    scopes(a, 6); /* ln_1, attn.c_attn, attn.c_proj, ln_2, mlp.c_fc, mlp.c_proj */
    int h = layernorm(a, x, rows, c);
    h = linear(a, h, rows, 3 * c);
    tensor(a, 4 * b * m->n_head * t);       /* attention's per-row log-sum-exp, f32 (flash style: no [B,H,T,T]) */
    h = recorded(a, a->es * rows * c, h, -1); /* attention output */
    if (!drop) {
        const int x2 = recorded(a, a->es * rows * c, h, x); /* c_proj onto x */
        h = layernorm(a, x2, rows, c);
        h = linear(a, h, rows, 4 * c);                 /* the MLP's pre-activation */
        gelu_linear(a, h, x2, rows, 4 * c, c);         /* GELU, c_proj, onto x2 */
        return;
    }
    h = linear(a, h, rows, c);
    h = dropout(a, h, rows * c, drop);
    const int x2 = recorded(a, a->es * rows * c, x, h); /* residual add */
    h = layernorm(a, x2, rows, c);
    h = linear(a, h, rows, 4 * c);      /* the MLP's pre-activation */
    h = gelu_linear(a, h, -1, rows, 4 * c, c); /* its GELU is never kept */
    h = dropout(a, h, rows * c, drop);
    recorded(a, a->es * rows * c, x2, h); /* residual add */
}

/* dsc_actckpt_layer_selected for a model setting `every` or the config's number_checkpoints. */
static bool selected(int every, int number, int layer, int n_layers) {
    if (every > 0) return layer % every == 0;
    if (number <= 0) return false;
    if (number >= n_layers) return true;
    int64_t j = ((int64_t)layer * number + n_layers - 1) / n_layers;
    return j < number && (j * n_layers) / number == layer;
}

/* What a checkpointed block keeps through the step (src/nn/gpt.c block_checkpointed and
 * src/core/recompute.c dsc_checkpoint): the block's call record (block_call_t, 40 bytes),
 * the checkpoint record (ckpt_record_t, 80 bytes, plus 3 tensor pointers), its output
 * tensor, the array of differentiable outputs and the checkpoint's tape node. */
#define CKPT_BLOCK_CALL_BYTES 40
#define CKPT_RECORD_BYTES (80 + 3 * 8)

/* The activations' peak (arena and gradient pool together); *arena_peak: the step arena's
 * own peak (what dsc_ctx_reserve_step_memory should hold: the pool allocates apart). */
static int64_t gpt_activations(const dsc_gpt_config_t *m, int micro_batch, int context, dsc_dtype_t param_dtype,
                               bool training, int checkpoint_every, int number_checkpoints, bool with_scopes,
                               int vocab_pad, int64_t *arena_peak) {
    if (!m || dsc_gpt_config_validate(m, NULL, 0) != DSC_OK || micro_batch < 1 || context < 1 ||
        context > m->block_size || checkpoint_every < 0 || number_checkpoints < 0)
        return -1;
    if (param_dtype != DSC_F32 && param_dtype != DSC_F16 && param_dtype != DSC_BF16) return -1;
    const int64_t b = micro_batch, t = context, c = m->n_embd, v = m->vocab_size, rows = b * t;
    const bool drop = training && m->dropout > 0, mixed = param_dtype != DSC_F32;
    /* embeddings: token ids, positions, two lookups, their sum (and dropout) */
    const int64_t es = mixed ? 2 : 4;
    arena_t emb = {.mixed = mixed, .es = es, .scopes = with_scopes};
    scopes(&emb, 2); /* wte, wpe */
    tensor(&emb, 4 * rows);
    tensor(&emb, 4 * t);
    int e_tok = recorded(&emb, es * rows * c, -1, -1);
    int e_pos = recorded(&emb, es * t * c, -1, -1);
    dropout(&emb, recorded(&emb, es * rows * c, e_tok, e_pos), rows * c, drop);
    /* one block (all blocks allocate alike) */
    arena_t blk = {.mixed = mixed, .es = es, .scopes = with_scopes};
    block(&blk, m, b, t, drop);
    /* final norm, tied LM head, targets, fused cross-entropy: per-row losses and lse (f32),
     * the loss and its seed gradient (the arena: it stays valid after backward). The LM head
     * and its loss are one op (dsc_linear_cross_entropy): its logits (padded to vp columns
     * on a device that pads) have no node of their own and take their gradient in place;
     * with a padded vocabulary also the padded weight copy [vp, C] (forward) and the [vp, C]
     * scratch of the weight's gradient (backward, arena). */
    arena_t head = {.mixed = mixed, .es = es, .scopes = with_scopes};
    scopes(&head, 2); /* ln_f, the tied LM head */
    int xf = layernorm(&head, input(&head, es * rows * c), rows, c);
    const int64_t vp = vocab_pad > 1 ? (v + vocab_pad - 1) / vocab_pad * vocab_pad : v;
    if (vp != v) {
        tensor(&head, es * vp * c);
        head.b += header() + al(es * vp * c);
    }
    tensor(&head, es * rows * vp); /* logits, in the activations' dtype */
    tensor(&head, 4 * rows);      /* targets */
    tensor(&head, 4 * rows);      /* per-row losses */
    tensor(&head, 4 * rows);      /* per-row lse */
    recorded(&head, 4, xf, -1); /* the loss: the op's node, x its pooled input */
    head.pool_bytes[head.nt - 1] = 0;
    head.b += header() + al(4); /* the loss's gradient */
    head.b += header() + al(4); /* gradient scale */

    const int64_t emb_pool = pool_peak(&emb, false), blk_pool = pool_peak(&blk, false),
                  head_pool = pool_peak(&head, false);
    const int L = m->n_layer;
    int n_ckpt = 0;
    for (int l = 0; l < L; l++) n_ckpt += selected(checkpoint_every, number_checkpoints, l, L);
    const int64_t blk_fwd = max64(blk.f, blk.f_peak); /* a block's forward at its largest */
    if (n_ckpt == 0) {
        *arena_peak = emb.f + L * blk.f + head.f + head.b;
        return max64(emb.f + (L - 1) * blk.f + blk_fwd,
                     emb.f + L * blk.f + head.f + head.b + max64(head_pool, max64(blk_pool, emb_pool)));
    }

    /* With checkpoints the arena grows and shrinks: follow it and keep the maximum. */
    const int64_t act = header() + al(es * rows * c); /* one [B, T, C] tensor */
    const int64_t kept = al(CKPT_BLOCK_CALL_BYTES) + al(CKPT_RECORD_BYTES) + act + al(8) + node();
    const int64_t ckpt_pool = pool_peak(&blk, true);
    int64_t cur = emb.f, peak = cur, apeak = cur; /* apeak: the arena alone */
    for (int l = 0; l < L; l++) {
        if (selected(checkpoint_every, number_checkpoints, l, L)) {
            peak = max64(peak, cur + al(CKPT_BLOCK_CALL_BYTES) + al(CKPT_RECORD_BYTES) + blk_fwd);
            apeak = max64(apeak, cur + al(CKPT_BLOCK_CALL_BYTES) + al(CKPT_RECORD_BYTES) + blk.f);
            cur += kept; /* the intermediates went back to the arena */
        } else {
            peak = max64(peak, cur + blk_fwd);
            cur += blk.f;
        }
    }
    cur += head.f + head.b;
    peak = max64(peak, cur + head_pool);
    apeak = max64(apeak, cur);
    for (int l = L - 1; l >= 0; l--) {
        if (selected(checkpoint_every, number_checkpoints, l, L)) {
            /* recompute (plus the recomputed-outputs array) and backward above a mark, then rewound */
            peak = max64(peak, cur + al(8) + blk.f + ckpt_pool);
            apeak = max64(apeak, cur + al(8) + blk.f);
        } else {
            peak = max64(peak, cur + blk_pool);
        }
    }
    *arena_peak = apeak;
    return max64(peak, cur + emb_pool);
}

int64_t dsc_estimate_gpt_activations(const dsc_gpt_config_t *m, int micro_batch, int context, dsc_dtype_t param_dtype,
                                     bool training, int checkpoint_every, int number_checkpoints) {
    int64_t arena;
    return gpt_activations(m, micro_batch, context, param_dtype, training, checkpoint_every, number_checkpoints, false, 0,
                           &arena);
}

/* ---- options ------------------------------------------------------------------------------ */

void dsc_estimate_options_default(const dsc_gpt_config_t *model, dsc_estimate_options_t *o) {
    if (!o) return;
    memset(o, 0, sizeof *o);
    if (model) o->model = *model;
    o->micro_batch = 1;
    o->context = model ? model->block_size : 0;
    o->world_size = 1;
    o->rank = 0;
    o->param_dtype = DSC_F32;
    o->optimizer_states = 2;
    o->accumulate_fp32 = false;
    o->reduce_bucket_size = 500000000;
    o->training = true;
    o->checkpoint_every = 1;
    o->number_checkpoints = 0;
    o->persistence_threshold = 100000;
    o->model_persistence_threshold = INT64_MAX;
    o->prefetch_bucket_size = 50000000;
    o->max_reuse_distance = 1000000000;
    o->offload_device = DSC_CONFIG_OFFLOAD_NONE;
    o->sub_group_size = 1000000000;
    o->offload_buffer_count = 4;
    o->device_is_host = true;
    o->offload_pin_memory = true;
    o->optimizer_elementwise = true;
    o->offload_param_device = DSC_CONFIG_OFFLOAD_NONE;
    o->offload_param_pin_memory = true;
    o->offload_param_buffer_count = 5;
    o->offload_param_buffer_size = 100000000;
}

dsc_status_t dsc_estimate_options_from_config(const dsc_config_t *cfg, dsc_estimate_options_t *o, char *err,
                                              size_t errsz) {
    if (err && errsz) err[0] = '\0';
    if (!cfg || !o) return dsc__mon_fail(err, errsz, DSC_ERR_INVALID, "dsc_estimate_options_from_config: NULL argument");
    /* dtypes as the engine chooses them (engine.c choose_dtypes) */
    o->param_dtype = cfg->fp16.enabled ? DSC_F16 : cfg->bf16.enabled ? DSC_BF16 : DSC_F32;
    dsc_config_dtype_t acc = cfg->data_types.grad_accum_dtype;
    o->accumulate_fp32 = o->param_dtype != DSC_F32 &&
                         (acc == DSC_CONFIG_DTYPE_FP32 || (acc == DSC_CONFIG_DTYPE_NONE && o->param_dtype == DSC_BF16));
    o->reduce_bucket_size = cfg->zero_optimization.reduce_bucket_size;
    o->persistence_threshold = cfg->zero_optimization.stage3_param_persistence_threshold;
    o->overlap_comm = cfg->zero_optimization.overlap_comm;
    o->prefetch_bucket_size = cfg->zero_optimization.stage3_prefetch_bucket_size;
    o->max_reuse_distance = cfg->zero_optimization.stage3_max_reuse_distance;
    o->model_persistence_threshold = cfg->zero_optimization.stage3_model_persistence_threshold;
    o->offload_device = cfg->zero_optimization.offload_optimizer.device;
    o->sub_group_size = cfg->zero_optimization.sub_group_size;
    o->offload_buffer_count = cfg->zero_optimization.offload_optimizer.buffer_count;
    o->offload_pin_memory = cfg->zero_optimization.offload_optimizer.pin_memory;
    o->offload_param_device = cfg->zero_optimization.offload_param.device;
    o->offload_param_pin_memory = cfg->zero_optimization.offload_param.pin_memory;
    o->offload_param_buffer_count = cfg->zero_optimization.offload_param.buffer_count;
    o->offload_param_buffer_size = cfg->zero_optimization.offload_param.buffer_size;
    if (cfg->train_micro_batch_size_per_gpu.set) o->micro_batch = (int)cfg->train_micro_batch_size_per_gpu.value;
    if (cfg->activation_checkpointing.number_checkpoints.set && cfg->activation_checkpointing.number_checkpoints.value > 0 &&
        cfg->activation_checkpointing.number_checkpoints.value <= 1000000) {
        o->checkpoint_every = 0; /* the engine hands number_checkpoints to the model */
        o->number_checkpoints = (int)cfg->activation_checkpointing.number_checkpoints.value;
    }
    if (cfg->optimizer.kind == DSC_CONFIG_OPTIM_NONE) return DSC_OK; /* keep the caller's state count */
    /* the optimizer's state buffers, from the parameters the file gave (engine_build.c) */
    const dsc_config_params_t *ps = &cfg->optimizer.params;
    dsc_optim_kv_t kv[64];
    double scalars[64];
    size_t n = 0;
    for (size_t i = 0; i < ps->count && n < 64; i++) {
        const dsc_config_param_t *p = &ps->items[i];
        if (p->source.origin != DSC_CONFIG_FILE) continue;
        kv[n].key = p->name;
        if (p->kind == DSC_CONFIG_PARAM_BOOL || p->kind == DSC_CONFIG_PARAM_NUMBER) {
            scalars[n] = p->kind == DSC_CONFIG_PARAM_BOOL ? (p->boolean ? 1.0 : 0.0) : p->number;
            kv[n].values = &scalars[n];
            kv[n].n_values = 1;
        } else if (p->kind == DSC_CONFIG_PARAM_LIST) {
            kv[n].values = p->list;
            kv[n].n_values = p->list_len;
        } else {
            continue;
        }
        n++;
    }
    dsc_optim_params_t op;
    char why[512];
    dsc_status_t rc = dsc_optim_params_from_config(cfg->optimizer.type, kv, n, false, &op, why, sizeof why);
    if (rc != DSC_OK) return dsc__mon_fail(err, errsz, rc, "%s: optimizer (type %s): %s", cfg->source_name, cfg->optimizer.type, why);
    int states = dsc_optim_params_num_states(&op);
    if (states < 0) return dsc__mon_fail(err, errsz, DSC_ERR_CONFIG, "%s: optimizer (type %s): invalid parameters",
                                         cfg->source_name, cfg->optimizer.type);
    o->optimizer_states = states;
    o->optimizer_elementwise = op.type != DSC_OPTIM_LAMB;
    return DSC_OK;
}

/* ---- stages 2-3: per parameter, per layer -------------------------------------------
 * The GPT's parameters in declaration order (src/nn/gpt.c), grouped by the parameter scope
 * that uses them (a layer: embedding, layer norm, linear; the tied LM head uses wte again). */
typedef struct {
    int64_t numel[2];
    int n;
} scope_t;

static int gpt_scopes(const dsc_gpt_config_t *m, scope_t *out, int cap) {
    const int64_t c = m->n_embd;
    int n = 0;
#define SCOPE(a, b, k) \
    do { \
        if (n < cap) out[n] = (scope_t){{(a), (b)}, (k)}; \
        n++; \
    } while (0)
    SCOPE((int64_t)m->vocab_size * c, 0, 1); /* wte */
    SCOPE((int64_t)m->block_size * c, 0, 1); /* wpe */
    for (int l = 0; l < m->n_layer; l++) {
        SCOPE(c, c, 2);                 /* ln_1 */
        SCOPE(3 * c * c, 3 * c, 2);     /* attn.c_attn */
        SCOPE(c * c, c, 2);             /* attn.c_proj */
        SCOPE(c, c, 2);                 /* ln_2 */
        SCOPE(4 * c * c, 4 * c, 2);     /* mlp.c_fc */
        SCOPE(4 * c * c, c, 2);         /* mlp.c_proj */
    }
    SCOPE(c, c, 2); /* ln_f */
#undef SCOPE
    return n; /* the LM head's scope is wte's again */
}

/* offload_param "nvme" (src/zero/param_nvme.h): the swap file's bytes (every parameter's shard
 * rounded up to the alignment) and the largest shard (it caps a buffer). */
static int64_t param_swap_bytes(const dsc_estimate_options_t *o, int64_t *largest) {
    scope_t scopes[4 + 6 * 1024];
    const int ns = gpt_scopes(&o->model, scopes, (int)(sizeof scopes / sizeof scopes[0]));
    const int64_t pb = (int64_t)dsc_dtype_size(o->param_dtype);
    int64_t file = 0;
    *largest = 1;
    for (int i = 0; i < ns && i < (int)(sizeof scopes / sizeof scopes[0]); i++)
        for (int j = 0; j < scopes[i].n; j++) {
            const int64_t k = dsc_zero3_shard(scopes[i].numel[j], o->world_size);
            file += dsc__nvme_round(k * pb);
            if (k > *largest) *largest = k;
        }
    return file;
}

/* Stage 2: no full gradient buffer; the largest layer's gradients live during its
 * backward. Stage 3: every parameter's shard ceil(numel / N) (params, master, states, fp32
 * gradient), persistent parameters gathered for good, and the largest layer gathered with
 * its gradients during its backward (src/zero/zero_scopes.c). The schedule's knobs raise
 * the layer term (upper bounds): a reuse window keeps parameters gathered from forward to
 * backward (taken as all of them), prefetching adds up to stage3_prefetch_bucket_size
 * elements in flight. */
static void layered_state(const dsc_estimate_options_t *o, int stage, dsc_zero_memory_t *st) {
    scope_t scopes[4 + 6 * 1024];
    const int ns = gpt_scopes(&o->model, scopes, (int)(sizeof scopes / sizeof scopes[0]));
    const int64_t pb = (int64_t)dsc_dtype_size(o->param_dtype), N = o->world_size;
    int64_t shards = 0, persistent = 0, persist_total = 0, worst = 0, worst_grads = 0, gathered_total = 0;
    for (int i = 0; i < ns && i < (int)(sizeof scopes / sizeof scopes[0]); i++) {
        int64_t live = 0, grads = 0;
        for (int j = 0; j < scopes[i].n; j++) {
            const int64_t numel = scopes[i].numel[j], k = dsc_zero3_shard(numel, (int)N);
            if (stage == 2) {
                live += numel * pb;
                continue;
            }
            shards += k;
            const bool keep = dsc__zero3_persists(numel, o->persistence_threshold, o->model_persistence_threshold,
                                                  &persist_total);
            if (keep) {
                persistent += k * N * pb;
            } else {
                gathered_total += k * N * pb;
            }
            grads += k * N * pb;
            live += k * N * pb * (keep ? 1 : 2); /* gradient buffer, and the gathered copy */
        }
        if (live > worst) worst = live;
        if (grads > worst_grads) worst_grads = grads;
    }
    if (stage == 3 && o->max_reuse_distance > 0) {
        if (gathered_total + worst_grads > worst) worst = gathered_total + worst_grads;
    } else if (stage == 3 && o->prefetch_bucket_size > 0) {
        const int64_t ahead = o->prefetch_bucket_size * pb;
        worst += ahead < gathered_total ? ahead : gathered_total;
    }
    /* overlap_comm: earlier layers' gradient sends still in flight, at most reduce_bucket_size
     * elements (an upper bound: the queue is usually shorter). */
    const int64_t total_grad_elems = stage == 2 ? dsc_gpt_param_count(&o->model) : shards * N;
    if (o->overlap_comm && N > 1)
        worst += (o->reduce_bucket_size < total_grad_elems ? o->reduce_bucket_size : total_grad_elems) * pb;
    st->transient = worst;
    if (stage == 2) return;
    const bool mixed = o->param_dtype != DSC_F32;
    st->params = shards * pb + persistent;
    st->grads = 0;
    st->optim = (mixed ? 4 * shards : 0) + 4 * (int64_t)o->optimizer_states * shards;
    st->grad_accum = 4 * shards;
    st->comm = 0;
}

dsc_status_t dsc_estimate_memory(const dsc_estimate_options_t *o, int stage, bool checkpointing,
                                 dsc_memory_estimate_t *out, char *err, size_t errsz) {
    if (err && errsz) err[0] = '\0';
    if (!o || !out) return dsc__mon_fail(err, errsz, DSC_ERR_INVALID, "dsc_estimate_memory: NULL argument");
    memset(out, 0, sizeof *out);
    out->stage = stage;
    out->checkpointing = checkpointing;
    char why[256];
    if (dsc_gpt_config_validate(&o->model, why, sizeof why) != DSC_OK)
        return dsc__mon_fail(err, errsz, DSC_ERR_INVALID, "%s", why);
    if (o->micro_batch < 1 || o->context < 1 || o->context > o->model.block_size)
        return dsc__mon_fail(err, errsz, DSC_ERR_INVALID, "micro batch %d and context %d: need B >= 1 and 1 <= T <= %d",
                             o->micro_batch, o->context, o->model.block_size);
    if (o->param_dtype != DSC_F32 && o->param_dtype != DSC_F16 && o->param_dtype != DSC_BF16)
        return dsc__mon_fail(err, errsz, DSC_ERR_INVALID, "parameter dtype %s: expected f32, f16 or bf16",
                             dsc_dtype_name(o->param_dtype));
    if (checkpointing && o->checkpoint_every <= 0 && o->number_checkpoints <= 0)
        return dsc__mon_fail(err, errsz, DSC_ERR_INVALID, "activation checkpointing asked for, but checkpoint_every and "
                             "number_checkpoints are both 0 (no block would be checkpointed)");
    if (o->optimizer_states < 0 || o->reduce_bucket_size < 1)
        return dsc__mon_fail(err, errsz, DSC_ERR_INVALID, "optimizer states %d / reduce_bucket_size %lld must be >= 0 / >= 1",
                             o->optimizer_states, (long long)o->reduce_bucket_size);
    out->numel = dsc_gpt_param_count(&o->model);
    dsc_zero_plan_t plan;
    if (dsc_zero_plan_make(stage, o->world_size, o->rank, out->numel, &plan) != DSC_OK)
        return dsc__mon_fail(err, errsz, DSC_ERR_INVALID, "ZeRO stage %d on %d ranks (rank %d): invalid plan", stage,
                             o->world_size, o->rank);
    out->implemented = true;
    out->padded = plan.padded;
    out->state = dsc_zero_plan_memory(&plan, (int)dsc_dtype_size(o->param_dtype), o->optimizer_states,
                                      o->accumulate_fp32, o->reduce_bucket_size);
    if (stage >= 2) layered_state(o, stage, &out->state);
    out->activations = gpt_activations(&o->model, o->micro_batch, o->context, o->param_dtype, o->training,
                                       checkpointing ? o->checkpoint_every : 0,
                                       checkpointing ? o->number_checkpoints : 0, stage >= 2, o->vocab_pad,
                                       &out->step_arena);
    if (out->activations < 0)
        return dsc__mon_fail(err, errsz, DSC_ERR_INVALID, "checkpoint_every %d / number_checkpoints %d must be >= 0",
                             o->checkpoint_every, o->number_checkpoints);
    const int64_t n_local = stage == 3 ? out->state.grad_accum / 4 : plan.part; /* stage 3: the sum of the shards */
    const bool offloaded = stage >= 1 && o->offload_device != DSC_CONFIG_OFFLOAD_NONE;
    int64_t swap_buffers = 0;
    if (offloaded && o->offload_device == DSC_CONFIG_OFFLOAD_NVME && o->optimizer_states > 0) {
        /* The states leave for the swap file; buffer_count sub-group buffers come in. */
        const int64_t sgs = o->sub_group_size > 0 ? o->sub_group_size : 1;
        out->nvme_bytes = dsc__nvme_file_bytes(n_local, o->optimizer_states, sgs);
        swap_buffers = dsc__nvme_buffer_bytes(n_local, o->optimizer_states, sgs, o->offload_buffer_count);
        if (o->device_is_host) {
            out->pinned_host_bytes = swap_buffers;
            out->state.optim += swap_buffers - 4 * (int64_t)o->optimizer_states * n_local;
        }
    }
    /* src/zero/zero_param_offload.c: the partition of the working copy leaves the device */
    const bool param_off = stage == 3 && o->offload_param_device == DSC_CONFIG_OFFLOAD_CPU && !o->device_is_host;
    /* src/zero/param_nvme.c: the partition in a swap file, on any device */
    const bool param_nvme = stage == 3 && o->offload_param_device == DSC_CONFIG_OFFLOAD_NVME;
    if (offloaded && !o->device_is_host) {
        /* src/engine/engine_offload.c: master and states leave the device (state.optim); the
         * host holds the master, the gradient partition's copy, the 16-bit update's (one part
         * of it when an element-wise optimizer steps from memory; none when the partition
         * itself is there: offload_param) and the states ("cpu") or the swap buffers ("nvme") */
        const bool nvme = o->offload_device == DSC_CONFIG_OFFLOAD_NVME && o->optimizer_states > 0;
        const bool parts = o->optimizer_elementwise && o->offload_device != DSC_CONFIG_OFFLOAD_NVME && !param_off &&
                           !param_nvme; /* offload_param: no 16-bit update to stage (engine_offload.c) */
        const int64_t half_elems = parts ? dsc__offload_part_elems(n_local, o->sub_group_size) : n_local;
        /* two staging buffers for a partition of several parts: one goes up while the CPU
         * fills the other (every device that offloads has from_host_async) */
        const int64_t half_bufs = parts && n_local > half_elems ? 2 : 1;
        const int64_t half = o->param_dtype != DSC_F32 && !param_off && !param_nvme
                                     ? (int64_t)dsc_dtype_size(o->param_dtype) * half_elems * half_bufs
                                     : 0;
        const bool stream = parts && o->param_dtype != DSC_F32 && dsc__offload_grad_streams(n_local, half_elems);
        const int64_t copies = 4 * n_local /* master */ + 4 * (stream ? 2 * half_elems : n_local) /* gradient */ + half;
        out->host_bytes = copies + (nvme ? swap_buffers : 4 * (int64_t)o->optimizer_states * n_local);
        out->pinned_host_bytes = o->offload_pin_memory ? copies : 0;
        out->state.optim = 0;
    }
    if (param_off || param_nvme) {
        const int64_t part = (int64_t)dsc_dtype_size(o->param_dtype) * n_local;
        out->state.params -= part;
        if (!(offloaded && !o->device_is_host) && o->param_dtype == DSC_F32)
            out->state.optim += 4 * n_local; /* the device optimizer's master: no longer the shards themselves */
        if (param_off) {
            out->host_bytes += part;
            if (o->offload_param_pin_memory) out->pinned_host_bytes += part;
        }
    }
    if (param_nvme) {
        int64_t largest = 1;
        out->param_nvme_bytes = param_swap_bytes(o, &largest);
        const int64_t buffers = dsc__pnvme_buffer_count(o->offload_param_buffer_count) *
                                dsc__pnvme_buffer_bytes(o->offload_param_buffer_size > 0 ? o->offload_param_buffer_size : 1,
                                                        largest, dsc_dtype_size(o->param_dtype));
        out->host_bytes += buffers;
        if (o->offload_param_pin_memory && !o->device_is_host) out->pinned_host_bytes += buffers;
    }
    out->total = out->state.params + out->state.grads + out->state.optim + out->state.grad_accum + out->state.comm +
                 out->state.transient + out->activations;
    return DSC_OK;
}

/* ---- DeepSpeed's estimators (deepspeed/runtime/zero/stage_1_and_2.py and stage3.py) -----
 * Python evaluates left to right: integer products stay exact, the first float factor
 * turns the rest into doubles, int() truncates. */

void dsc_deepspeed_zero2_estimate(int64_t psi, int gpus_per_node, int nodes, bool cpu_offload, double f,
                                  int64_t *cpu_bytes, int64_t *gpu_bytes) {
    const int64_t total_gpus = (int64_t)nodes * gpus_per_node;
    double cpu, gpu;
    if (cpu_offload) {
        gpu = (double)(2 * psi);
        int64_t m = 4 * total_gpus > 16 ? 4 * total_gpus : 16;
        cpu = (double)(psi * m) * f;
    } else {
        gpu = (double)(2 * psi + (int64_t)(18.0 * (double)psi / (double)total_gpus));
        cpu = (double)(psi * 4 * gpus_per_node) * f;
    }
    if (cpu_bytes) *cpu_bytes = (int64_t)cpu;
    if (gpu_bytes) *gpu_bytes = (int64_t)gpu;
}

void dsc_deepspeed_zero3_estimate(int64_t psi, int64_t largest_layer, int gpus_per_node, int nodes, bool cpu_offload,
                                  bool cpu_offload_params, bool zero_init, double f, int64_t *cpu_bytes,
                                  int64_t *gpu_bytes, int64_t *largest_layer_bytes) {
    const int64_t total_gpus = (int64_t)nodes * gpus_per_node;
    const double gf = 1.0 / nodes;
    const int64_t ll = 4 * largest_layer;
    double cpu, gpu;
    if (cpu_offload) {
        if (cpu_offload_params) {
            gpu = (double)ll;
            cpu = zero_init ? (double)(psi * 18) * gf * f : (double)psi * fmax(4.0 * gpus_per_node, 18.0 * gf) * f;
        } else {
            gpu = (double)(ll + (int64_t)(2.0 * (double)psi / (double)total_gpus));
            cpu = zero_init ? (double)(psi * 16) * gf * f : (double)psi * fmax(4.0 * gpus_per_node, 16.0 * gf) * f;
        }
    } else {
        gpu = (double)(ll + (int64_t)(18.0 * (double)psi / (double)total_gpus));
        cpu = zero_init ? (double)(largest_layer * 4 * gpus_per_node) * f : (double)(psi * 4 * gpus_per_node) * f;
    }
    if (cpu_bytes) *cpu_bytes = (int64_t)cpu;
    if (gpu_bytes) *gpu_bytes = (int64_t)gpu;
    if (largest_layer_bytes) *largest_layer_bytes = ll;
}

/* The Hugging Face GPT-2 export layout of the consolidator: which checkpoint tensors are the
 * built-in GPT's parameters (dsc/gpt.h), and which of them Hugging Face stores transposed
 * (its Conv1D modules keep weights as [in, out], dsc's Linear as [out, in]). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt/ckpt_internal.h"

#define GPT2_PER_LAYER 12

/* Parses "h.<l>." (l a decimal without leading zeros, below 2^30) and returns the rest of
 * the name, or NULL. */
static const char *layer_of(const char *name, int *layer) {
    if (strncmp(name, "h.", 2) != 0) return NULL;
    const char *p = name + 2;
    if (*p < '0' || *p > '9' || (*p == '0' && p[1] >= '0' && p[1] <= '9')) return NULL;
    long v = 0;
    for (; *p >= '0' && *p <= '9'; p++) {
        v = v * 10 + (*p - '0');
        if (v >= (1L << 30)) return NULL;
    }
    if (*p != '.') return NULL;
    *layer = (int)v;
    return p + 1;
}

/* Within a block: the parameter's shape in units of C (rows, cols; cols 0 for a vector). */
typedef struct block_param {
    const char *suffix;
    int rows, cols;
    bool conv1d;
} block_param_t;

static const block_param_t block_params[GPT2_PER_LAYER] = {
    {"ln_1.weight", 1, 0, false},      {"ln_1.bias", 1, 0, false},         {"attn.c_attn.weight", 3, 1, true},
    {"attn.c_attn.bias", 3, 0, false}, {"attn.c_proj.weight", 1, 1, true}, {"attn.c_proj.bias", 1, 0, false},
    {"ln_2.weight", 1, 0, false},      {"ln_2.bias", 1, 0, false},         {"mlp.c_fc.weight", 4, 1, true},
    {"mlp.c_fc.bias", 4, 0, false},    {"mlp.c_proj.weight", 1, 4, true},  {"mlp.c_proj.bias", 1, 0, false},
};

static const block_param_t *block_param(const char *suffix) {
    for (int i = 0; i < GPT2_PER_LAYER; i++)
        if (!strcmp(block_params[i].suffix, suffix)) return &block_params[i];
    return NULL;
}

bool dsc_ckpt_hf_gpt2_is_conv1d(const char *name) {
    int layer;
    const char *rest = name ? layer_of(name, &layer) : NULL;
    const block_param_t *bp = rest ? block_param(rest) : NULL;
    return bp && bp->conv1d;
}

static bool selected(const dsc_manifest_tensor_t *t, const char *kind) { return !kind || !strcmp(kind, t->kind); }

static void shape_str(int ndim, const int64_t *shape, char *buf, size_t n) {
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int d = 0; d < ndim && k < n; d++)
        k += (size_t)snprintf(buf + k, n - k, d ? ", %lld" : "%lld", (long long)shape[d]);
    if (k < n) snprintf(buf + k, n - k, "]");
}

/* The expected shape of GPT parameter `name` for width C, vocabulary V, positions P and L
 * layers; false when `name` is not one. */
static bool expected_shape(const char *name, const dsc_ckpt_gpt2_shape_t *g, int *ndim, int64_t shape[2]) {
    const int64_t c = g->n_embd;
    if (!strcmp(name, "wte.weight") || !strcmp(name, "wpe.weight")) {
        *ndim = 2, shape[0] = name[1] == 't' ? g->vocab_size : g->n_positions, shape[1] = c;
        return true;
    }
    if (!strcmp(name, "ln_f.weight") || !strcmp(name, "ln_f.bias")) {
        *ndim = 1, shape[0] = c;
        return true;
    }
    int layer;
    const char *rest = layer_of(name, &layer);
    const block_param_t *bp = rest ? block_param(rest) : NULL;
    if (!bp || layer >= g->n_layer) return false;
    *ndim = bp->cols ? 2 : 1;
    shape[0] = bp->rows * c;
    shape[1] = bp->cols * c;
    return true;
}

dsc_status_t dsc_ckpt_gpt2_shape(dsc_ckpt_t *c, const char *kind, dsc_ckpt_gpt2_shape_t *shape, char *err,
                                 size_t errsz) {
    if (!c) return dsc__ck_fail(err, errsz, DSC_ERR_INVALID, "dsc_ckpt_gpt2_shape: NULL argument");
    const dsc_manifest_t *m = dsc_ckpt_manifest(c);
    const char *dir = dsc_ckpt_dir(c);
    char got[160], want[160];
    dsc_ckpt_gpt2_shape_t g = {0, 0, 0, 0};
    /* The width, vocabulary and context from the embeddings; the depth from the block names. */
    int wte = dsc_manifest_find(m, "wte.weight"), wpe = dsc_manifest_find(m, "wpe.weight");
    dsc_manifest_tensor_t t;
    for (int k = 0; k < 2; k++) {
        int idx = k ? wpe : wte;
        const char *nm = k ? "wpe.weight" : "wte.weight";
        if (idx >= 0) dsc_manifest_tensor_at(m, idx, &t);
        if (idx < 0 || strcmp(t.name, nm) != 0 || !selected(&t, kind))
            return dsc__ck_fail(err, errsz, DSC_ERR_INVALID,
                                "checkpoint '%s' is not the built-in GPT: it has no tensor '%s'%s%s%s (the Hugging "
                                "Face GPT-2 layout needs every parameter of dsc's GPT)",
                                dir, nm, kind ? " of kind '" : "", kind ? kind : "", kind ? "'" : "");
        if (t.ndim != 2 || t.shape[1] < 1 || t.shape[0] < 1 || (k && t.shape[1] != g.n_embd)) {
            shape_str(t.ndim, t.shape, got, sizeof got);
            return dsc__ck_fail(err, errsz, DSC_ERR_INVALID,
                                "checkpoint '%s': tensor '%s' has shape %s; the built-in GPT's is [%s, n_embd%s]", dir,
                                nm, got, k ? "n_positions" : "vocab_size", k ? " of wte.weight" : "");
        }
        if (k)
            g.n_positions = t.shape[0];
        else
            g.vocab_size = t.shape[0], g.n_embd = t.shape[1];
    }
    int n = dsc_manifest_tensor_count(m), n_selected = 0;
    for (int i = 0; i < n; i++) {
        dsc_manifest_tensor_at(m, i, &t);
        int layer;
        if (!selected(&t, kind)) continue;
        n_selected++;
        if (layer_of(t.name, &layer) && layer + 1 > g.n_layer) g.n_layer = layer + 1;
    }
    /* Every selected tensor is a GPT parameter of the right shape; with the count, the set is exact. */
    for (int i = 0; i < n; i++) {
        dsc_manifest_tensor_at(m, i, &t);
        if (!selected(&t, kind)) continue;
        int ndim;
        int64_t sh[2];
        if (!expected_shape(t.name, &g, &ndim, sh))
            return dsc__ck_fail(
                err, errsz, DSC_ERR_INVALID,
                "checkpoint '%s': tensor '%s' is not a parameter of the built-in GPT, so it has no place "
                "in the Hugging Face GPT-2 layout (use the stored layout)",
                dir, t.name);
        if (t.ndim != ndim || t.shape[0] != sh[0] || (ndim == 2 && t.shape[1] != sh[1])) {
            shape_str(t.ndim, t.shape, got, sizeof got);
            shape_str(ndim, sh, want, sizeof want);
            return dsc__ck_fail(err, errsz, DSC_ERR_INVALID,
                                "checkpoint '%s': tensor '%s' has shape %s; the built-in GPT with n_embd %lld has %s",
                                dir, t.name, got, (long long)g.n_embd, want);
        }
        for (int a = 0; a < t.n_aliases; a++)
            if (strcmp(t.name, "wte.weight") != 0 || strcmp(t.aliases[a], "lm_head.weight") != 0)
                return dsc__ck_fail(
                    err, errsz, DSC_ERR_INVALID,
                    "checkpoint '%s': tensor '%s' has the alias '%s'; the Hugging Face GPT-2 layout ties "
                    "only lm_head.weight to wte.weight",
                    dir, t.name, t.aliases[a]);
    }
    int64_t expected = 4 + (int64_t)GPT2_PER_LAYER * g.n_layer;
    if (n_selected != expected) {
        /* Some parameter is missing: name the first. */
        char name[96];
        for (int l = 0; l < g.n_layer; l++)
            for (int k = 0; k < GPT2_PER_LAYER; k++) {
                snprintf(name, sizeof name, "h.%d.%s", l, block_params[k].suffix);
                int idx = dsc_manifest_find(m, name);
                if (idx >= 0) dsc_manifest_tensor_at(m, idx, &t);
                if (idx < 0 || strcmp(t.name, name) != 0 || !selected(&t, kind))
                    return dsc__ck_fail(
                        err, errsz, DSC_ERR_INVALID,
                        "checkpoint '%s' is not the built-in GPT: it has layers up to h.%d but no tensor "
                        "'%s'",
                        dir, g.n_layer - 1, name);
            }
        static const char *const top[2] = {"ln_f.weight", "ln_f.bias"};
        for (int k = 0; k < 2; k++) {
            int idx = dsc_manifest_find(m, top[k]);
            if (idx >= 0) dsc_manifest_tensor_at(m, idx, &t);
            if (idx < 0 || strcmp(t.name, top[k]) != 0 || !selected(&t, kind))
                return dsc__ck_fail(err, errsz, DSC_ERR_INVALID,
                                    "checkpoint '%s' is not the built-in GPT: it has no tensor '%s'", dir, top[k]);
        }
        return dsc__ck_fail(err, errsz, DSC_ERR_INVALID,
                            "checkpoint '%s' is not the built-in GPT: %d tensors where %lld were expected", dir,
                            n_selected, (long long)expected);
    }
    if (g.n_layer < 1)
        return dsc__ck_fail(err, errsz, DSC_ERR_INVALID, "checkpoint '%s' is not the built-in GPT: it has no block h.0",
                            dir);
    if (shape) *shape = g;
    return DSC_OK;
}

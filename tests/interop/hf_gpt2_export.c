/* The Hugging Face GPT-2 export of `dsc zero-to-fp32` (dsc_ckpt_consolidate_layout with
 * DSC_CKPT_LAYOUT_HF_GPT2, tools/cmd_zero_to_fp32.c linked in).
 *
 *   hf_gpt2_export              the ctest ckpt_hf_gpt2_export:
 *     1. hand-derived values: a 1-layer GPT of width 2 written through the storage API with
 *        value 100*t + k at flat index k of tensor t, every tensor split over two range
 *        files; h.0.attn.c_attn.weight [6, 2] must come out as [2, 6] rows
 *        {0,2,4,6,8,10} and {1,3,5,7,9,11} (+100t), and so on for each Conv1D weight;
 *     2. a tiny GPT trained 3 steps by the engine and saved with the client state `dsc train`
 *        writes: every output element [j][i] of a transposed weight equals master [i][j]
 *        bitwise (f32 and bf16, and with chunk sizes that force a band per column, several
 *        columns per band and the whole tensor), every other tensor equals the master;
 *     3. the tool: --layout auto picks hf-gpt2 for that checkpoint and dsc for one without
 *        a client state, --hf-config writes the GPT2Config, usage errors exit 2;
 *     4. checkpoints that are not the built-in GPT are refused, naming the tensor.
 *   hf_gpt2_export save DIR     the helper of check_hf_gpt2.py: writes the trained
 *     checkpoint to DIR/ckpt and DIR/expected.safetensors with "tokens" (I32 [2, 16]) and
 *     dsc's "logits" for them (F32 [2, 16, vocab]) in eval mode. */
#include <dirent.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "dsc/ckpt.h"

int dsc_cmd_zero_to_fp32(int argc, char **argv);

static char err[2048];

/* ---- 1. A synthetic GPT through the storage API ----------------------------------------- */

typedef struct syn_tensor {
    char name[64];
    int ndim;
    int64_t shape[2];
} syn_tensor_t;

/* The built-in GPT's parameters in dsc's order, for L layers of width C, vocab V, P positions. */
static int gpt_tensors(int L, int64_t C, int64_t V, int64_t P, syn_tensor_t *out) {
    int n = 0;
#define ADD(nm, d, a, b)                                                                                               \
    (snprintf(out[n].name, sizeof out[n].name, "%s", nm), out[n].ndim = d, out[n].shape[0] = a, out[n].shape[1] = b,   \
     n++)
    ADD("wte.weight", 2, V, C);
    ADD("wpe.weight", 2, P, C);
    for (int l = 0; l < L; l++) {
        static const struct {
            const char *s;
            int rows, cols;
        } blk[12] = {{"ln_1.weight", 1, 0},      {"ln_1.bias", 1, 0},          {"attn.c_attn.weight", 3, 1},
                     {"attn.c_attn.bias", 3, 0}, {"attn.c_proj.weight", 1, 1}, {"attn.c_proj.bias", 1, 0},
                     {"ln_2.weight", 1, 0},      {"ln_2.bias", 1, 0},          {"mlp.c_fc.weight", 4, 1},
                     {"mlp.c_fc.bias", 4, 0},    {"mlp.c_proj.weight", 1, 4},  {"mlp.c_proj.bias", 1, 0}};
        for (int k = 0; k < 12; k++) {
            char nm[64];
            snprintf(nm, sizeof nm, "h.%d.%s", l, blk[k].s);
            ADD(nm, blk[k].cols ? 2 : 1, blk[k].rows * C, blk[k].cols * C);
        }
    }
    ADD("ln_f.weight", 1, C, 0);
    ADD("ln_f.bias", 1, C, 0);
#undef ADD
    return n;
}

static int64_t numel_of(const syn_tensor_t *t) { return t->ndim == 2 ? t->shape[0] * t->shape[1] : t->shape[0]; }

/* Writes <sd>/<tag>: tensor t holds 100*t + k at flat index k, split at numel/2 + 1 between
 * two range files. `alias` (may be NULL) is added as an alias of tensor alias_of. */
static dsc_status_t write_synthetic(const char *sd, const char *tag, const syn_tensor_t *ts, int n, const char *alias,
                                    int alias_of, const char *client_state) {
    dsc_ckpt_save_t *s;
    dsc_status_t st = dsc_ckpt_save_begin(sd, tag, &s, err, sizeof err);
    if (st) return st;
    dsc_manifest_t *m;
    dsc_manifest_new(&m);
    for (int t = 0; t < n && !st; t++) {
        dsc_manifest_tensor_t d = {0};
        const char *aliases[1] = {alias};
        d.name = ts[t].name, d.kind = "param", d.dtype = DSC_F32, d.ndim = ts[t].ndim;
        d.shape[0] = ts[t].shape[0], d.shape[1] = ts[t].shape[1];
        if (alias && t == alias_of) d.n_aliases = 1, d.aliases = aliases;
        st = dsc_manifest_add_tensor(m, &d, err, sizeof err);
    }
    for (int r = 0; r < 2 && !st; r++) {
        char fname[64], path[1400];
        dsc_ckpt_rank_file_name(r, fname, sizeof fname);
        snprintf(path, sizeof path, "%s/%s", dsc_ckpt_save_dir(s), fname);
        dsc_st_writer_t *w;
        if ((st = dsc_st_writer_open(path, DSC_ST_NO_FSYNC, &w, err, sizeof err))) break;
        for (int pass = 0; pass < 2 && !st; pass++)
            for (int t = 0; t < n && !st; t++) {
                int64_t ne = numel_of(&ts[t]), mid = ne / 2 + 1 < ne ? ne / 2 + 1 : ne;
                int64_t b = r ? mid : 0, e = r ? ne : mid;
                if (b >= e) continue;
                if (pass == 0) {
                    st = dsc_st_writer_declare_range(w, ts[t].name, DSC_F32, b, e, err, sizeof err);
                    if (!st) st = dsc_manifest_add_piece(m, ts[t].name, fname, b, e, NULL, err, sizeof err);
                } else {
                    for (int64_t k = b; k < e && !st; k++) {
                        float v = (float)(100 * t + k);
                        st = dsc_st_write(w, &v, DSC_F32, 1, err, sizeof err);
                    }
                }
            }
        if (st) {
            dsc_st_writer_abort(w);
            break;
        }
        dsc_st_file_info_t info;
        st = dsc_st_writer_close(w, &info, err, sizeof err);
        if (!st) st = dsc_manifest_add_file(m, fname, &info, err, sizeof err);
    }
    if (!st && client_state) st = dsc_manifest_set_blob(m, DSC_MANIFEST_CLIENT_STATE, client_state, err, sizeof err);
    if (st) {
        dsc_ckpt_save_abort(s);
        dsc_manifest_free(m);
        return st;
    }
    st = dsc_ckpt_save_commit(s, m, true, err, sizeof err);
    dsc_manifest_free(m);
    return st;
}

/* Reads tensor `name` of a safetensors file as f32 (malloc'ed) with its shape. */
static float *read_out(const char *path, const char *name, int *ndim, int64_t shape[2]) {
    dsc_st_reader_t *rd = NULL;
    if (dsc_st_reader_open(path, &rd, err, sizeof err) != DSC_OK) {
        CHECK_MSG(false, "%s", err);
        return NULL;
    }
    int k = dsc_st_reader_find(rd, name);
    dsc_st_tensor_info_t ti;
    float *v = NULL;
    if (k >= 0 && dsc_st_reader_info(rd, k, &ti) == DSC_OK) {
        *ndim = ti.ndim;
        shape[0] = ti.ndim > 0 ? ti.shape[0] : 1, shape[1] = ti.ndim > 1 ? ti.shape[1] : 0;
        v = malloc(sizeof(float) * (size_t)(ti.numel + 1));
        CHECK_OK(dsc_st_read(rd, k, 0, ti.numel, v, DSC_F32, err, sizeof err));
    }
    CHECK_MSG(v, "%s has no tensor '%s'", path, name);
    dsc_st_reader_close(rd);
    return v;
}

static void test_hand_values(const char *root) {
    char sd[600], out[700];
    snprintf(sd, sizeof sd, "%s/syn", root);
    snprintf(out, sizeof out, "%s/syn_hf.safetensors", root);
    syn_tensor_t ts[40];
    int n = gpt_tensors(1, 2, 3, 2, ts);
    CHECK(n == 16);
    CHECK_OK(write_synthetic(sd, "t", ts, n, NULL, 0, NULL));
    dsc_ckpt_t *c = NULL;
    CHECK_OK(dsc_ckpt_open(sd, NULL, DSC_CKPT_VERIFY_ALL, &c, err, sizeof err));
    if (!c) return;
    dsc_ckpt_gpt2_shape_t g;
    CHECK_OK(dsc_ckpt_gpt2_shape(c, "param", &g, err, sizeof err));
    CHECK(g.n_layer == 1 && g.n_embd == 2 && g.vocab_size == 3 && g.n_positions == 2);
    /* A chunk of 16 bytes: bands of one column, two reads per row across the two files. */
    for (int chunk = 0; chunk < 2; chunk++) {
        dsc_ckpt_consolidate_options_t o = DSC_CKPT_CONSOLIDATE_OPTIONS_INIT;
        o.kind = "param", o.dtype = DSC_F32, o.chunk_bytes = chunk ? 16 : 0, o.writer_flags = DSC_ST_NO_FSYNC;
        CHECK_OK(dsc_ckpt_consolidate_layout(c, out, &o, DSC_CKPT_LAYOUT_HF_GPT2, NULL, err, sizeof err));
        int nd;
        int64_t sh[2];
        /* Tensor 4 (h.0.attn.c_attn.weight) [6, 2] holds 400..411: out [2, 6]. */
        static const float c_attn[12] = {400, 402, 404, 406, 408, 410, 401, 403, 405, 407, 409, 411};
        float *v = read_out(out, "h.0.attn.c_attn.weight", &nd, sh);
        CHECK(v && nd == 2 && sh[0] == 2 && sh[1] == 6 && !memcmp(v, c_attn, sizeof c_attn));
        free(v);
        /* Tensor 6 (h.0.attn.c_proj.weight) [2, 2] holds 600..603: out [[600, 602], [601, 603]]. */
        static const float c_proj[4] = {600, 602, 601, 603};
        v = read_out(out, "h.0.attn.c_proj.weight", &nd, sh);
        CHECK(v && nd == 2 && sh[0] == 2 && sh[1] == 2 && !memcmp(v, c_proj, sizeof c_proj));
        free(v);
        /* Tensor 10 (h.0.mlp.c_fc.weight) [8, 2]: out [2, 8], row j = 1000 + j + 2i. */
        static const float c_fc[16] = {1000, 1002, 1004, 1006, 1008, 1010, 1012, 1014,
                                       1001, 1003, 1005, 1007, 1009, 1011, 1013, 1015};
        v = read_out(out, "h.0.mlp.c_fc.weight", &nd, sh);
        CHECK(v && nd == 2 && sh[0] == 2 && sh[1] == 8 && !memcmp(v, c_fc, sizeof c_fc));
        free(v);
        /* Tensor 12 (h.0.mlp.c_proj.weight) [2, 8]: out [8, 2], row j = 1200 + j, 1208 + j. */
        static const float mlp_proj[16] = {1200, 1208, 1201, 1209, 1202, 1210, 1203, 1211,
                                           1204, 1212, 1205, 1213, 1206, 1214, 1207, 1215};
        v = read_out(out, "h.0.mlp.c_proj.weight", &nd, sh);
        CHECK(v && nd == 2 && sh[0] == 8 && sh[1] == 2 && !memcmp(v, mlp_proj, sizeof mlp_proj));
        free(v);
        /* Not transposed: wte [3, 2] = 0..5, the c_attn bias [6] = 500..505. */
        static const float wte[6] = {0, 1, 2, 3, 4, 5}, bias[6] = {500, 501, 502, 503, 504, 505};
        v = read_out(out, "wte.weight", &nd, sh);
        CHECK(v && nd == 2 && sh[0] == 3 && sh[1] == 2 && !memcmp(v, wte, sizeof wte));
        free(v);
        v = read_out(out, "h.0.attn.c_attn.bias", &nd, sh);
        CHECK(v && nd == 1 && sh[0] == 6 && !memcmp(v, bias, sizeof bias));
        free(v);
    }
    dsc_ckpt_close(c);
}

/* ---- 4. Checkpoints that are not the built-in GPT --------------------------------------- */

static void expect_refused(const char *root, const char *what, syn_tensor_t *ts, int n, const char *alias, int alias_of,
                           const char *needle) {
    static int k;
    char sd[600];
    snprintf(sd, sizeof sd, "%s/bad%d", root, k++);
    if (write_synthetic(sd, "t", ts, n, alias, alias_of, NULL) != DSC_OK) {
        CHECK_MSG(false, "%s: writing the checkpoint: %s", what, err);
        return;
    }
    dsc_ckpt_t *c = NULL;
    CHECK_OK(dsc_ckpt_open(sd, NULL, DSC_CKPT_VERIFY_LAZY, &c, err, sizeof err));
    if (!c) return;
    dsc_status_t st = dsc_ckpt_gpt2_shape(c, "param", NULL, err, sizeof err);
    CHECK_MSG(st == DSC_ERR_INVALID && strstr(err, needle) && strstr(err, sd), "%s: %s: %s", what,
              dsc_status_string(st), err);
    char out[700];
    snprintf(out, sizeof out, "%s/refused.safetensors", root);
    st = dsc_ckpt_consolidate_layout(c, out, NULL, DSC_CKPT_LAYOUT_HF_GPT2, NULL, err, sizeof err);
    CHECK_MSG(st == DSC_ERR_INVALID && strstr(err, needle) && access(out, F_OK) != 0, "%s: consolidate: %s", what, err);
    dsc_ckpt_close(c);
}

static void test_refusals(const char *root) {
    syn_tensor_t ts[40];
    int n = gpt_tensors(2, 2, 3, 2, ts);
    syn_tensor_t t2[40];
    /* h.1.mlp.c_fc.bias missing. */
    int m = 0;
    for (int i = 0; i < n; i++)
        if (strcmp(ts[i].name, "h.1.mlp.c_fc.bias") != 0) t2[m++] = ts[i];
    expect_refused(root, "missing tensor", t2, m, NULL, 0, "no tensor 'h.1.mlp.c_fc.bias'");
    /* An unknown tensor. */
    memcpy(t2, ts, sizeof ts);
    snprintf(t2[n].name, sizeof t2[n].name, "h.0.attn.rotary.weight");
    t2[n].ndim = 1, t2[n].shape[0] = 2;
    expect_refused(root, "unknown tensor", t2, n + 1, NULL, 0, "'h.0.attn.rotary.weight' is not a parameter");
    /* A misshapen weight ([C, 3C] where [3C, C] belongs). */
    memcpy(t2, ts, sizeof ts);
    for (int i = 0; i < n; i++)
        if (!strcmp(t2[i].name, "h.1.attn.c_attn.weight")) t2[i].shape[0] = 2, t2[i].shape[1] = 6;
    expect_refused(root, "misshapen weight", t2, n, NULL, 0, "'h.1.attn.c_attn.weight' has shape [2, 6]");
    /* wpe of another width. */
    memcpy(t2, ts, sizeof ts);
    t2[1].shape[1] = 3;
    expect_refused(root, "wpe width", t2, n, NULL, 0, "'wpe.weight' has shape [2, 3]");
    /* An alias other than the tied head. */
    expect_refused(root, "alias", ts, n, "final_norm.weight", n - 2, "alias 'final_norm.weight'");
    /* No wte at all. */
    expect_refused(root, "no wte", ts + 1, n - 1, NULL, 0, "no tensor 'wte.weight'");
    /* The tied head as an alias of wte is the GPT's own. */
    char sd[600];
    snprintf(sd, sizeof sd, "%s/tied", root);
    CHECK_OK(write_synthetic(sd, "t", ts, n, "lm_head.weight", 0, NULL));
    dsc_ckpt_t *c = NULL;
    CHECK_OK(dsc_ckpt_open(sd, NULL, DSC_CKPT_VERIFY_LAZY, &c, err, sizeof err));
    if (c) {
        dsc_ckpt_gpt2_shape_t g;
        CHECK_OK(dsc_ckpt_gpt2_shape(c, "param", &g, err, sizeof err));
        CHECK(g.n_layer == 2);
        char out[700];
        snprintf(out, sizeof out, "%s/tied.safetensors", root);
        dsc_ckpt_consolidate_options_t o = DSC_CKPT_CONSOLIDATE_OPTIONS_INIT;
        o.write_aliases = true;
        CHECK_OK(dsc_ckpt_consolidate_layout(c, out, &o, DSC_CKPT_LAYOUT_HF_GPT2, NULL, err, sizeof err));
        dsc_st_reader_t *rd = NULL;
        CHECK_OK(dsc_st_reader_open(out, &rd, err, sizeof err));
        CHECK(rd && dsc_st_reader_count(rd) == n && dsc_st_reader_find(rd, "lm_head.weight") < 0);
        dsc_st_reader_close(rd);
        o.include_frozen = false;
        CHECK(dsc_ckpt_consolidate_layout(c, out, &o, DSC_CKPT_LAYOUT_HF_GPT2, NULL, err, sizeof err) ==
              DSC_ERR_INVALID);
        dsc_ckpt_close(c);
    }
}

/* ---- 2. A trained GPT ------------------------------------------------------------------- */

#define T_LEN 16

static void make_tokens(int step, int32_t *x, int32_t *y, int n, int vocab) {
    uint64_t s = 0x9E3779B97F4A7C15ull * (uint64_t)(step + 1);
    for (int i = 0; i < n + 1; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        int32_t v = (int32_t)((s >> 33) % (uint64_t)vocab);
        if (i < n) x[i] = v;
        if (i > 0) y[i - 1] = v;
    }
}

/* Trains the tiny GPT 3 steps, saves it to <dir>/ckpt with the client state `dsc train`
 * writes, and (expected != NULL) writes tokens and dsc's logits to `expected`. */
static int train_and_save(const char *dir, const char *expected) {
    const dsc_gpt_config_t gc = {2, 4, 32, 50, T_LEN, 0.0, 1e-5};
    dsc_ctx_options_t co = DSC_CTX_OPTIONS_INIT;
    co.seed = 7;
    co.log_level = DSC_LOG_WARN;
    dsc_ctx_t *ctx = NULL;
    dsc_gpt_t *gpt = NULL;
    dsc_initialize_result_t init = {0};
    int rc = 1;
    if (dsc_ctx_new(&co, &ctx) != DSC_OK || dsc_gpt_new(ctx, &gc, &gpt) != DSC_OK) goto out;
    dsc_engine_options_t eo = DSC_ENGINE_OPTIONS_INIT;
    eo.config_json = "{\"train_batch_size\": 2, \"optimizer\": {\"type\": \"AdamW\", \"params\": {\"lr\": 0.01}}}";
    if (dsc_initialize(gpt->model, &eo, &init, err, sizeof err) != DSC_OK) goto out;
    int32_t x[2 * T_LEN], y[2 * T_LEN];
    for (int step = 0; step < 3; step++) {
        make_tokens(step, x, y, 2 * T_LEN, gc.vocab_size);
        dsc_tensor_t *loss = NULL;
        if (dsc_gpt_forward(ctx, gpt, x, y, 2, T_LEN, NULL, &loss) != DSC_OK ||
            dsc_backward(init.engine, loss) != DSC_OK || dsc_step(init.engine) != DSC_OK) {
            snprintf(err, sizeof err, "training step %d: %s", step, dsc_engine_errmsg(init.engine));
            goto out;
        }
    }
    char sd[1200], client[512];
    snprintf(sd, sizeof sd, "%s/ckpt", dir);
    snprintf(client, sizeof client,
             "{\"text_state\":\"1\",\"model\":{\"n_layer\":%d,\"n_head\":%d,\"n_embd\":%d,\"vocab_size\":%d,"
             "\"block_size\":%d}}",
             gc.n_layer, gc.n_head, gc.n_embd, gc.vocab_size, gc.block_size);
    if (dsc_save_checkpoint(init.engine, sd, NULL, client, true) != DSC_OK) {
        snprintf(err, sizeof err, "save: %s", dsc_engine_errmsg(init.engine));
        goto out;
    }
    if (expected) {
        make_tokens(99, x, y, 2 * T_LEN, gc.vocab_size);
        dsc_engine_eval(init.engine);
        dsc_ctx_no_grad_begin(ctx);
        dsc_tensor_t *logits = NULL;
        dsc_status_t st = dsc_gpt_forward(ctx, gpt, x, NULL, 2, T_LEN, &logits, NULL);
        dsc_ctx_no_grad_end(ctx);
        dsc_st_writer_t *w = NULL;
        const int64_t ts[2] = {2, T_LEN}, ls[3] = {2, T_LEN, gc.vocab_size};
        if (!st) st = dsc_st_writer_open(expected, DSC_ST_NO_FSYNC, &w, err, sizeof err);
        if (!st) st = dsc_st_writer_declare(w, "tokens", DSC_I32, 2, ts, err, sizeof err);
        if (!st) st = dsc_st_writer_declare(w, "logits", DSC_F32, 3, ls, err, sizeof err);
        if (!st) st = dsc_st_write(w, x, DSC_I32, 2 * T_LEN, err, sizeof err);
        /* The logits live on the context's device: the writer takes a host copy. */
        const size_t n_logits = (size_t)(2 * T_LEN * gc.vocab_size);
        float *host_logits = st ? NULL : malloc(n_logits * sizeof *host_logits);
        if (!st && !host_logits) st = DSC_ERR_NOMEM;
        if (!st) st = dsc_tensor_to_host(ctx, logits, host_logits, n_logits * sizeof *host_logits);
        if (!st) st = dsc_st_write(w, host_logits, DSC_F32, n_logits, err, sizeof err);
        free(host_logits);
        if (w) st = st ? (dsc_st_writer_abort(w), st) : dsc_st_writer_close(w, NULL, err, sizeof err);
        dsc_ctx_end_step(ctx);
        if (st) goto out;
    }
    rc = 0;
out:
    if (rc && !err[0]) snprintf(err, sizeof err, "%s", ctx ? dsc_ctx_errmsg(ctx) : "no context");
    dsc_engine_free(init.engine);
    dsc_gpt_free(gpt);
    dsc_ctx_free(ctx);
    return rc;
}

/* Every tensor of `out` against the checkpoint's master, read in `dt`: Conv1D weights
 * transposed (hf) or not. */
static void compare_with_master(const char *what, dsc_ckpt_t *c, const char *out, dsc_dtype_t dt, bool hf) {
    const dsc_manifest_t *m = dsc_ckpt_manifest(c);
    dsc_st_reader_t *rd = NULL;
    CHECK_OK(dsc_st_reader_open(out, &rd, err, sizeof err));
    if (!rd) return;
    CHECK_MSG(dsc_st_reader_metadata(rd, "format") && !strcmp(dsc_st_reader_metadata(rd, "format"), "pt"),
              "%s: metadata format", what);
    int n_params = 0, n_transposed = 0;
    const size_t es = dsc_dtype_size(dt);
    for (int i = 0; i < dsc_manifest_tensor_count(m); i++) {
        dsc_manifest_tensor_t t;
        dsc_manifest_tensor_at(m, i, &t);
        if (strcmp(t.kind, "param") != 0) continue;
        n_params++;
        int k = dsc_st_reader_find(rd, t.name);
        dsc_st_tensor_info_t ti;
        if (k < 0 || dsc_st_reader_info(rd, k, &ti) != DSC_OK) {
            CHECK_MSG(false, "%s: no tensor '%s'", what, t.name);
            continue;
        }
        const bool tr = hf && dsc_ckpt_hf_gpt2_is_conv1d(t.name);
        n_transposed += tr;
        CHECK_MSG(ti.dtype == dt && ti.ndim == t.ndim && ti.numel == t.numel, "%s: '%s' dtype/shape", what, t.name);
        if (tr)
            CHECK_MSG(ti.shape[0] == t.shape[1] && ti.shape[1] == t.shape[0],
                      "%s: '%s' is [%lld, %lld], want [%lld, %lld]", what, t.name, (long long)ti.shape[0],
                      (long long)ti.shape[1], (long long)t.shape[1], (long long)t.shape[0]);
        unsigned char *want = malloc((size_t)t.numel * es), *got = malloc((size_t)t.numel * es);
        CHECK_OK(dsc_ckpt_read(c, t.name, 0, t.numel, want, dt, err, sizeof err));
        CHECK_OK(dsc_st_read(rd, k, 0, t.numel, got, dt, err, sizeof err));
        int64_t bad = -1;
        const int64_t rows = t.shape[0], cols = t.ndim == 2 ? t.shape[1] : 1;
        for (int64_t a = 0; a < rows && bad < 0; a++)
            for (int64_t b = 0; b < cols && bad < 0; b++) {
                const unsigned char *g = tr ? got + (size_t)(b * rows + a) * es : got + (size_t)(a * cols + b) * es;
                if (memcmp(g, want + (size_t)(a * cols + b) * es, es) != 0) bad = a * cols + b;
            }
        CHECK_MSG(bad < 0, "%s: '%s' differs from the master at flat index %lld%s", what, t.name, (long long)bad,
                  tr ? " (transposed)" : "");
        free(want);
        free(got);
    }
    CHECK_MSG(dsc_st_reader_count(rd) == n_params && n_params == 4 + 12 * 2, "%s: %d tensors for %d parameters", what,
              dsc_st_reader_count(rd), n_params);
    CHECK_MSG(n_transposed == (hf ? 8 : 0), "%s: %d transposed", what, n_transposed);
    dsc_st_reader_close(rd);
}

static int run_tool(const char *a0, const char *a1, const char *a2, const char *a3, const char *a4, const char *a5) {
    const char *all[] = {a0, a1, a2, a3, a4, a5};
    char *argv[8] = {"zero-to-fp32"};
    int argc = 1;
    for (int i = 0; i < 6; i++)
        if (all[i]) argv[argc++] = (char *)all[i];
    fflush(stdout);
    return dsc_cmd_zero_to_fp32(argc, argv);
}

static void test_trained(const char *root) {
    if (train_and_save(root, NULL) != 0) {
        CHECK_MSG(false, "train and save: %s", err);
        return;
    }
    char sd[600], out[700];
    snprintf(sd, sizeof sd, "%s/ckpt", root);
    snprintf(out, sizeof out, "%s/trained.safetensors", root);
    dsc_ckpt_t *c = NULL;
    CHECK_OK(dsc_ckpt_open(sd, NULL, DSC_CKPT_VERIFY_ALL, &c, err, sizeof err));
    if (!c) return;
    /* Chunks: 8 MiB (whole tensors), 4 KiB (several columns per band: c_fc rows are 512 B),
     * 64 B (smaller than a row: one column per band, rows in their own buffers). */
    static const size_t chunks[3] = {0, 4096, 64};
    for (int k = 0; k < 3; k++)
        for (int b = 0; b < 2; b++) {
            dsc_ckpt_consolidate_options_t o = DSC_CKPT_CONSOLIDATE_OPTIONS_INIT;
            o.kind = "param", o.dtype = b ? DSC_BF16 : DSC_F32, o.chunk_bytes = chunks[k];
            o.writer_flags = DSC_ST_NO_FSYNC;
            CHECK_OK(dsc_ckpt_consolidate_layout(c, out, &o, DSC_CKPT_LAYOUT_HF_GPT2, NULL, err, sizeof err));
            char what[96];
            snprintf(what, sizeof what, "hf-gpt2 %s, chunk %zu", b ? "bf16" : "f32", chunks[k]);
            compare_with_master(what, c, out, o.dtype, true);
        }
    dsc_ckpt_consolidate_options_t po = DSC_CKPT_CONSOLIDATE_OPTIONS_INIT;
    po.kind = "param";
    CHECK_OK(dsc_ckpt_consolidate(c, out, &po, NULL, err, sizeof err));
    compare_with_master("stored layout", c, out, DSC_F32, false);
    dsc_ckpt_gpt2_shape_t g;
    CHECK_OK(dsc_ckpt_gpt2_shape(c, "param", &g, err, sizeof err));
    CHECK(g.n_layer == 2 && g.n_embd == 32 && g.vocab_size == 50 && g.n_positions == T_LEN);
    CHECK(dsc_ckpt_gpt2_shape(c, "exp_avg", &g, err, sizeof err) == DSC_ERR_INVALID);
    CHECK(dsc_ckpt_hf_gpt2_is_conv1d("h.11.mlp.c_proj.weight") && !dsc_ckpt_hf_gpt2_is_conv1d("h.11.mlp.c_proj.bias") &&
          !dsc_ckpt_hf_gpt2_is_conv1d("h.01.attn.c_attn.weight") &&
          !dsc_ckpt_hf_gpt2_is_conv1d("x.h.0.mlp.c_fc.weight") &&
          !dsc_ckpt_hf_gpt2_is_conv1d("exp_avg/h.0.mlp.c_fc.weight") && !dsc_ckpt_hf_gpt2_is_conv1d(NULL));

    /* 3. The tool: auto is hf-gpt2 here (the client state records the GPT). */
    char cfg[700], syn[600];
    snprintf(cfg, sizeof cfg, "%s/config.json", root);
    CHECK(run_tool(sd, out, "--hf-config", cfg, NULL, NULL) == 0);
    compare_with_master("tool, auto", c, out, DSC_F32, true);
    json_error_t je;
    json_t *j = json_load_file(cfg, 0, &je);
    CHECK_MSG(j, "config.json: %s", je.text);
    if (j) {
        json_int_t want[5] = {2, 4, 32, 50, T_LEN};
        const char *keys[5] = {"n_layer", "n_head", "n_embd", "vocab_size", "n_positions"};
        for (int k = 0; k < 5; k++)
            CHECK_MSG(json_integer_value(json_object_get(j, keys[k])) == want[k], "config.json %s", keys[k]);
        CHECK(!strcmp(json_string_value(json_object_get(j, "model_type")), "gpt2"));
        CHECK(!strcmp(json_string_value(json_object_get(j, "activation_function")), "gelu_new"));
        CHECK(json_is_true(json_object_get(j, "tie_word_embeddings")));
        CHECK(json_real_value(json_object_get(j, "layer_norm_epsilon")) == 1e-5);
        json_decref(j);
    }
    CHECK(run_tool(sd, out, "--layout", "dsc", NULL, NULL) == 0);
    compare_with_master("tool, --layout dsc", c, out, DSC_F32, false);
    CHECK(run_tool(sd, out, "--layout", "hf-gpt2", "--dtype", "bf16") == 0);
    compare_with_master("tool, --layout hf-gpt2 --dtype bf16", c, out, DSC_BF16, true);
    CHECK(run_tool(sd, out, "--layout", "hf", NULL, NULL) == 2);
    CHECK(run_tool(sd, out, "--layout", "dsc", "--hf-config", cfg) == 2);
    CHECK(run_tool(sd, out, "--layout", NULL, NULL, NULL) == 2);
    dsc_ckpt_close(c);
    /* Without a client state auto keeps the stored layout; hf-gpt2 is asked for by name,
     * and the config cannot be written (n_head is unknown). */
    snprintf(syn, sizeof syn, "%s/syn", root);
    CHECK(run_tool(syn, out, NULL, NULL, NULL, NULL) == 0);
    int nd;
    int64_t sh[2];
    float *v = read_out(out, "h.0.attn.c_attn.weight", &nd, sh);
    CHECK(v && sh[0] == 6 && sh[1] == 2 && v[1] == 401.0f);
    free(v);
    CHECK(run_tool(syn, out, "--layout", "hf-gpt2", NULL, NULL) == 0);
    v = read_out(out, "h.0.attn.c_attn.weight", &nd, sh);
    CHECK(v && sh[0] == 2 && sh[1] == 6 && v[1] == 402.0f);
    free(v);
    CHECK(run_tool(syn, out, "--layout", "hf-gpt2", "--hf-config", cfg) == 1);
    CHECK(run_tool(syn, out, "--hf-config", cfg, NULL, NULL) == 1);
    /* A client state whose model disagrees with the tensors is refused. */
    syn_tensor_t ts[40];
    int n = gpt_tensors(1, 2, 3, 2, ts);
    snprintf(syn, sizeof syn, "%s/syn_client", root);
    CHECK_OK(write_synthetic(syn, "t", ts, n, NULL, 0,
                             "{\"model\": {\"n_layer\": 2, \"n_head\": 1, \"n_embd\": 2, \"vocab_size\": 3, "
                             "\"block_size\": 2}}"));
    CHECK(run_tool(syn, out, NULL, NULL, NULL, NULL) == 1);
    CHECK(run_tool(syn, out, "--layout", "dsc", NULL, NULL) == 0);
    /* A program's own "model" entry is not the GPT's record: auto keeps the stored layout. */
    snprintf(syn, sizeof syn, "%s/syn_own", root);
    CHECK_OK(write_synthetic(syn, "t", ts, n, NULL, 0, "{\"model\": {\"name\": \"mine\", \"n_layer\": 1}}"));
    CHECK(run_tool(syn, out, NULL, NULL, NULL, NULL) == 0);
    v = read_out(out, "h.0.attn.c_attn.weight", &nd, sh);
    CHECK(v && sh[0] == 6 && sh[1] == 2 && v[1] == 401.0f);
    free(v);
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "save")) {
        char expected[1200];
        snprintf(expected, sizeof expected, "%s/expected.safetensors", argv[2]);
        mkdir(argv[2], 0777);
        if (train_and_save(argv[2], expected) != 0) {
            fprintf(stderr, "hf_gpt2_export save: %s\n", err);
            return 1;
        }
        return 0;
    }
    if (argc != 1) {
        fprintf(stderr, "usage: hf_gpt2_export [save DIR]\n");
        return 2;
    }
    char root[256];
    snprintf(root, sizeof root, "%s/dsc_hfexport_XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(root)) {
        perror("mkdtemp");
        return 1;
    }
    test_hand_values(root);
    test_refusals(root);
    test_trained(root);
    check_rm_tree(root);
    return check_finish("ckpt_hf_gpt2_export");
}

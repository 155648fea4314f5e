/* `dsc zero-to-fp32 CKPT_DIR OUT.safetensors [--tag TAG] [--dtype fp32|bf16|fp16]
 * [--layout auto|hf-gpt2|dsc] [--hf-config CONFIG.json]`: the model weights of a checkpoint
 * written by dsc_save_checkpoint (any world size, any ZeRO stage) as one Hugging Face
 * safetensors file, streamed tensor by tensor with bounded memory (DeepSpeed's
 * zero_to_fp32.py, without the offline merge: dsc checkpoints store tensors by name and
 * range). For the built-in GPT the default layout is Hugging Face GPT-2's (Conv1D weights
 * transposed), so the file loads in transformers; --hf-config writes the matching
 * config.json. Exit status: 0 written, 1 error (message on stderr), 2 usage. */
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dsc/ckpt.h"

int dsc_cmd_zero_to_fp32(int argc, char **argv);

static void usage(FILE *out) {
    fprintf(out,
            "usage: dsc zero-to-fp32 CKPT_DIR OUT.safetensors [--tag TAG] [--dtype fp32|bf16|fp16]\n"
            "                        [--layout auto|hf-gpt2|dsc] [--hf-config CONFIG.json]\n"
            "\n"
            "Writes the fp32 master weights of every parameter of a dsc checkpoint, full-shaped under the\n"
            "parameter's name, to one safetensors file (metadata {\"format\": \"pt\"}), reading each tensor from\n"
            "the range files of whichever ranks saved it, through one 8 MiB buffer. Optimizer state is left\n"
            "out. Every file read is checked against its checksum.\n"
            "\n"
            "  CKPT_DIR        a save directory (the checkpoint its 'latest' file names, or --tag), or one\n"
            "                  checkpoint directory (the one holding manifest.json)\n"
            "  --tag TAG       the checkpoint <CKPT_DIR>/TAG instead of the latest\n"
            "  --dtype D       fp32 (default), bf16 or fp16 (round to nearest even; bf16 gives exactly the\n"
            "                  working copy a bf16 run trains with)\n"
            "  --layout L      hf-gpt2: Hugging Face GPT-2, for the built-in GPT: the same names (those of\n"
            "                  transformers' GPT2Model and of the published gpt2 model.safetensors), with the\n"
            "                  2-D weights of attn.c_attn, attn.c_proj, mlp.c_fc and mlp.c_proj transposed to\n"
            "                  Conv1D's [in, out]; lm_head.weight is not written (transformers ties it to\n"
            "                  wte.weight). The checkpoint must hold exactly the GPT's parameters.\n"
            "                  dsc: every tensor as stored (Linear weights [out, in]; tied names as copies).\n"
            "                  auto (default): hf-gpt2 when the checkpoint's client state records the GPT's\n"
            "                  shape (\"model\": n_layer, n_head, n_embd, vocab_size, block_size, as\n"
            "                  `dsc train --save` writes), dsc otherwise.\n"
            "  --hf-config F   also write transformers' GPT2Config for the model to F (name it config.json\n"
            "                  beside OUT, named model.safetensors, for from_pretrained); needs the hf-gpt2\n"
            "                  layout and n_head in the client state\n"
            "  -h, --help      this text\n"
            "\n"
            "exit status: 0 written, 1 error (printed on stderr), 2 usage error\n"
            "\n"
            "examples:\n"
            "  dsc zero-to-fp32 checkpoints/ model.safetensors --dtype bf16\n"
            "  dsc zero-to-fp32 checkpoints/ hf/model.safetensors --hf-config hf/config.json\n"
            "      then in Python: transformers.GPT2LMHeadModel.from_pretrained(\"hf\")\n");
}

/* manifest.xxh3 (written by dsc_save_checkpoint) must match manifest.json when present. */
static int check_sidecar(const char *dir, char *err, size_t errsz) {
    char spath[4200], mpath[4200], line[128] = "";
    snprintf(spath, sizeof spath, "%s/manifest.xxh3", dir);
    snprintf(mpath, sizeof mpath, "%s/%s", dir, DSC_CKPT_MANIFEST_NAME);
    FILE *f = fopen(spath, "rb");
    if (!f) {
        fprintf(stderr, "dsc zero-to-fp32: warning: '%s' not found: the manifest is not verified\n", spath);
        return 0;
    }
    size_t n = fread(line, 1, sizeof line - 1, f);
    fclose(f);
    line[n] = '\0';
    /* Exactly "<16 lower-case hex digits>  manifest.json\n". */
    unsigned long long want = 0;
    bool ok = n == 16 + 2 + strlen(DSC_CKPT_MANIFEST_NAME) + 1 && !strncmp(line + 16, "  ", 2) &&
              !strncmp(line + 18, DSC_CKPT_MANIFEST_NAME, strlen(DSC_CKPT_MANIFEST_NAME)) && line[n - 1] == '\n';
    for (int i = 0; ok && i < 16; i++) {
        char ch = line[i];
        int v = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
        ok = v >= 0;
        want = want << 4 | (unsigned long long)(v & 15);
    }
    dsc_st_file_info_t info;
    if (!ok) {
        snprintf(err, errsz, "checkpoint file '%.1900s' is corrupt", spath);
        return 1;
    }
    if (dsc_ckpt_checksum_file(mpath, &info, err, errsz) != DSC_OK) return 1;
    if (info.xxh3 != want) {
        snprintf(err, errsz,
                 "checkpoint file '%.1900s' fails its checksum (xxh3_64 %016llx, manifest.xxh3 records %016llx)", mpath,
                 (unsigned long long)info.xxh3, want);
        return 1;
    }
    return 0;
}

/* The "model" object of the client state that `dsc train --save` writes (integers "n_layer",
 * "n_head", "n_embd", "vocab_size", "block_size"), or NULL when there is none or it has other
 * fields (a program's own "model" entry); *root receives the parsed JSON to free. */
static json_t *client_model(const dsc_manifest_t *m, json_t **root) {
    const char *client = dsc_manifest_blob(m, DSC_MANIFEST_CLIENT_STATE);
    *root = client ? json_loads(client, JSON_DECODE_ANY, NULL) : NULL;
    json_t *model = json_is_object(*root) ? json_object_get(*root, "model") : NULL;
    static const char *const keys[5] = {"n_layer", "n_head", "n_embd", "vocab_size", "block_size"};
    for (int k = 0; k < 5 && model; k++)
        if (!json_is_integer(json_object_get(model, keys[k]))) model = NULL;
    return json_is_object(model) ? model : NULL;
}

/* The client state's record of the model must agree with the tensors. */
static int check_client_model(json_t *model, const dsc_ckpt_gpt2_shape_t *g, const char *dir, char *err, size_t errsz) {
    const char *keys[4] = {"n_layer", "n_embd", "vocab_size", "block_size"};
    const long long have[4] = {g->n_layer, (long long)g->n_embd, (long long)g->vocab_size, (long long)g->n_positions};
    for (int k = 0; k < 4; k++) {
        json_t *v = json_object_get(model, keys[k]);
        if (json_integer_value(v) != have[k]) {
            snprintf(err, errsz,
                     "checkpoint '%.1800s': its client state records model.%s = %lld but the tensors give %lld", dir,
                     keys[k], (long long)json_integer_value(v), have[k]);
            return 1;
        }
    }
    return 0;
}

/* transformers' GPT2Config for the exported model (keys not written take transformers'
 * defaults: dropout 0.1, which only matters for training there). */
static int write_hf_config(const char *path, const dsc_ckpt_gpt2_shape_t *g, long long n_head, const char *dtype_s,
                           char *err, size_t errsz) {
    const char *torch_dtype = !strcmp(dtype_s, "bf16") ? "bfloat16" : !strcmp(dtype_s, "fp16") ? "float16" : "float32";
    json_t *cfg =
        json_pack("{s:[s], s:s, s:I, s:I, s:I, s:I, s:I, s:n, s:s, s:f, s:f, s:b, s:n, s:n, s:s}", "architectures",
                  "GPT2LMHeadModel", "model_type", "gpt2", "vocab_size", (json_int_t)g->vocab_size, "n_positions",
                  (json_int_t)g->n_positions, "n_embd", (json_int_t)g->n_embd, "n_layer", (json_int_t)g->n_layer,
                  "n_head", (json_int_t)n_head, "n_inner", "activation_function", "gelu_new", "layer_norm_epsilon",
                  1e-5, "initializer_range", 0.02, "tie_word_embeddings", 1, "bos_token_id", "eos_token_id",
                  "torch_dtype", torch_dtype);
    char *text = cfg ? json_dumps(cfg, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6)) : NULL;
    json_decref(cfg);
    if (!text) {
        snprintf(err, errsz, "out of memory writing '%.1900s'", path);
        return 1;
    }
    size_t n = strlen(text);
    text[n] = '\n'; /* the file ends with a newline (json_dumps' NUL is not written) */
    dsc_status_t st = dsc_write_file_atomic(path, text, n + 1, err, errsz);
    free(text);
    return st != DSC_OK;
}

/* True when a and b name the same file (or the same not-yet-existing path). */
static bool same_file(const char *a, const char *b) {
    struct stat sa, sb;
    if (stat(a, &sa) == 0 && stat(b, &sb) == 0) return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
    return strcmp(a, b) == 0;
}

int dsc_cmd_zero_to_fp32(int argc, char **argv) {
    const char *in = NULL, *out = NULL, *tag = NULL, *dtype_s = "fp32", *layout_s = "auto", *hf_config = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--tag") || !strcmp(a, "--dtype") || !strcmp(a, "--layout") ||
                   !strcmp(a, "--hf-config")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "dsc zero-to-fp32: %s needs a value\n\n", a);
                usage(stderr);
                return 2;
            }
            const char **dst = !strcmp(a, "--tag")      ? &tag
                               : !strcmp(a, "--dtype")  ? &dtype_s
                               : !strcmp(a, "--layout") ? &layout_s
                                                        : &hf_config;
            *dst = argv[++i];
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "dsc zero-to-fp32: unknown option '%s'\n\n", a);
            usage(stderr);
            return 2;
        } else if (!in) {
            in = a;
        } else if (!out) {
            out = a;
        } else {
            fprintf(stderr, "dsc zero-to-fp32: unexpected argument '%s'\n\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!in || !out) {
        usage(stderr);
        return 2;
    }
    dsc_dtype_t dtype = !strcmp(dtype_s, "fp32")   ? DSC_F32
                        : !strcmp(dtype_s, "bf16") ? DSC_BF16
                        : !strcmp(dtype_s, "fp16") ? DSC_F16
                                                   : DSC_DTYPE_COUNT;
    if (dtype == DSC_DTYPE_COUNT) {
        fprintf(stderr, "dsc zero-to-fp32: --dtype must be fp32, bf16 or fp16, got '%s'\n", dtype_s);
        return 2;
    }
    if (strcmp(layout_s, "auto") != 0 && strcmp(layout_s, "hf-gpt2") != 0 && strcmp(layout_s, "dsc") != 0) {
        fprintf(stderr, "dsc zero-to-fp32: --layout must be auto, hf-gpt2 or dsc, got '%s'\n", layout_s);
        return 2;
    }
    if (hf_config && !strcmp(layout_s, "dsc")) {
        fprintf(stderr, "dsc zero-to-fp32: --hf-config needs the hf-gpt2 layout, not --layout dsc\n");
        return 2;
    }
    char err[2048] = "";
    dsc_ckpt_t *c = NULL;
    dsc_status_t st;
    char probe[4200];
    struct stat sb;
    snprintf(probe, sizeof probe, "%s/%s", in, DSC_CKPT_MANIFEST_NAME);
    if (!tag && stat(probe, &sb) == 0)
        st = dsc_ckpt_open_dir(in, DSC_CKPT_VERIFY_LAZY, &c, err, sizeof err);
    else
        st = dsc_ckpt_open(in, tag, DSC_CKPT_VERIFY_LAZY, &c, err, sizeof err);
    if (st == DSC_OK && check_sidecar(dsc_ckpt_dir(c), err, sizeof err)) st = DSC_ERR_CORRUPT;
    /* The layout: auto is hf-gpt2 when the client state says the model is the built-in GPT. */
    json_t *root = NULL, *model = st == DSC_OK ? client_model(dsc_ckpt_manifest(c), &root) : NULL;
    const bool hf = !strcmp(layout_s, "hf-gpt2") || (!strcmp(layout_s, "auto") && model);
    dsc_ckpt_gpt2_shape_t g = {0, 0, 0, 0};
    if (st == DSC_OK && hf) {
        st = dsc_ckpt_gpt2_shape(c, "param", &g, err, sizeof err);
        if (st == DSC_OK && model && check_client_model(model, &g, dsc_ckpt_dir(c), err, sizeof err))
            st = DSC_ERR_INVALID;
    }
    if (st == DSC_OK && hf_config && !hf) {
        snprintf(
            err, sizeof err,
            "--hf-config needs the hf-gpt2 layout; checkpoint '%.1800s' records no model shape in its client state "
            "(pass --layout hf-gpt2)",
            dsc_ckpt_dir(c));
        st = DSC_ERR_INVALID;
    }
    json_t *nh = model ? json_object_get(model, "n_head") : NULL;
    long long n_head = json_is_integer(nh) ? (long long)json_integer_value(nh) : 0;
    if (st == DSC_OK && hf_config && (n_head < 1 || g.n_embd % n_head != 0)) {
        snprintf(err, sizeof err,
                 "--hf-config: checkpoint '%.1800s' does not record a valid n_head in its client state (model.n_head, "
                 "written by `dsc train --save`), and the weights do not tell it",
                 dsc_ckpt_dir(c));
        st = DSC_ERR_INVALID;
    }
    json_decref(root);
    /* Nothing may be written into the checkpoint being read (the output is checked by the
     * consolidation itself), nor the two outputs onto each other. */
    if (st == DSC_OK) st = dsc_ckpt_check_output_path(c, out, err, sizeof err);
    if (st == DSC_OK && hf_config) st = dsc_ckpt_check_output_path(c, hf_config, err, sizeof err);
    if (st == DSC_OK && hf_config && same_file(out, hf_config)) {
        snprintf(err, sizeof err, "--hf-config '%.900s' and the output '%.900s' are the same file", hf_config, out);
        st = DSC_ERR_INVALID;
    }
    dsc_ckpt_consolidate_options_t o = DSC_CKPT_CONSOLIDATE_OPTIONS_INIT;
    o.kind = "param";
    o.dtype = dtype;
    o.write_aliases = true;
    dsc_st_file_info_t info = {0, 0};
    if (st == DSC_OK)
        st = dsc_ckpt_consolidate_layout(c, out, &o, hf ? DSC_CKPT_LAYOUT_HF_GPT2 : DSC_CKPT_LAYOUT_STORED, &info, err,
                                         sizeof err);
    if (st == DSC_OK && hf_config && write_hf_config(hf_config, &g, n_head, dtype_s, err, sizeof err)) st = DSC_ERR_IO;
    if (st != DSC_OK) {
        fprintf(stderr, "dsc zero-to-fp32: %s\n", err);
        dsc_ckpt_close(c);
        return 1;
    }
    const dsc_manifest_t *m = dsc_ckpt_manifest(c);
    long long tensors = 0, elements = 0, transposed = 0;
    for (int i = 0; i < dsc_manifest_tensor_count(m); i++) {
        dsc_manifest_tensor_t t;
        dsc_manifest_tensor_at(m, i, &t);
        if (strcmp(t.kind, "param") != 0) continue;
        tensors += 1 + (hf ? 0 : t.n_aliases);
        elements += t.numel;
        transposed += hf && dsc_ckpt_hf_gpt2_is_conv1d(t.name);
    }
    dsc_manifest_counters_t k;
    dsc_manifest_counters(m, &k);
    printf("%s: %lld tensors, %lld parameters (%s) from %s (step %lld, %d rank(s), ZeRO stage %d); %llu bytes, "
           "xxh3_64 %016llx\n",
           out, tensors, elements, dtype_s, dsc_ckpt_dir(c), (long long)k.global_steps, k.world_size, k.zero_stage,
           (unsigned long long)info.size, (unsigned long long)info.xxh3);
    if (hf)
        printf("layout hf-gpt2%s: %d layers, n_embd %lld, vocab %lld, %lld positions; %lld weights transposed to "
               "Conv1D's [in, out]; lm_head.weight tied to wte.weight by transformers\n",
               strcmp(layout_s, "auto") ? "" : " (auto: the client state records the built-in GPT)", g.n_layer,
               (long long)g.n_embd, (long long)g.vocab_size, (long long)g.n_positions, transposed);
    else
        printf("layout dsc: every tensor as stored (Linear weights [out, in])\n");
    if (hf_config) printf("%s: transformers GPT2Config (n_head %lld)\n", hf_config, n_head);
    dsc_ckpt_close(c);
    return 0;
}

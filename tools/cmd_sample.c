/* `dsc sample`: generates text from a checkpoint written by `dsc train --save` on text data. */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "dsc/dsc.h"

static void usage(FILE *out) {
    fprintf(out, "usage: dsc sample CKPT_DIR [--tag TAG] [--prompt TEXT] [--tokens N] [--temperature T] [--seed N]\n\n"
                 "Generates text from a checkpoint that `dsc train --save CKPT_DIR` wrote while training on\n"
                 "text (the checkpoint holds the model's shape and its character vocabulary).\n"
                 "Defaults: the latest tag, an empty prompt (starts from a newline), 200 tokens, temperature 0.8.\n\n"
                 "example:\n  dsc train --steps 300 --save ckpt && dsc sample ckpt --prompt 'The ' --tokens 300\n");
}

static int fail(const char *fmt, const char *what) {
    fprintf(stderr, "dsc sample: ");
    fprintf(stderr, fmt, what);
    fprintf(stderr, "\n");
    return 1;
}

int dsc_cmd_sample(int argc, char **argv) {
    const char *dir = NULL, *tag = NULL, *prompt = "\n";
    long n_tokens = 200, seed = 1;
    double temperature = 0.8;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        }
        if (argv[i][0] != '-') {
            dir = argv[i];
            continue;
        }
        if (i + 1 >= argc) return fail("%s needs a value (dsc sample --help)", argv[i]), 2;
        const char *k = argv[i], *v = argv[++i];
        char *end = NULL;
        if (!strcmp(k, "--tag")) tag = v;
        else if (!strcmp(k, "--prompt")) prompt = v;
        else if (!strcmp(k, "--tokens")) n_tokens = strtol(v, &end, 10);
        else if (!strcmp(k, "--seed")) seed = strtol(v, &end, 10);
        else if (!strcmp(k, "--temperature")) temperature = strtod(v, &end);
        else return fail("unknown option %s (dsc sample --help)", k), 2;
        if (end && (*end || n_tokens < 1 || n_tokens > 1000000 || !(temperature > 0)))
            return fail("invalid value for %s", k), 2;
    }
    if (!dir) {
        usage(stderr);
        return 2;
    }
    /* The model's shape and vocabulary from the checkpoint's client state. */
    char err[2048];
    dsc_ckpt_t *ck = NULL;
    if (dsc_ckpt_open(dir, tag, DSC_CKPT_VERIFY_LAZY, &ck, err, sizeof err) != DSC_OK) return fail("%s", err);
    const char *client = dsc_manifest_blob(dsc_ckpt_manifest(ck), DSC_MANIFEST_CLIENT_STATE);
    json_t *root = client ? json_loads(client, 0, NULL) : NULL;
    dsc_ckpt_close(ck);
    json_t *model = root ? json_object_get(root, "model") : NULL, *vocab = root ? json_object_get(root, "vocab") : NULL;
    if (!json_is_object(model) || !json_is_array(vocab)) {
        json_decref(root);
        return fail("%s has no model shape and character vocabulary (write it with `dsc train --save` on text data)", dir);
    }
    dsc_gpt_config_t cfg = {(int)json_integer_value(json_object_get(model, "n_layer")),
                            (int)json_integer_value(json_object_get(model, "n_head")),
                            (int)json_integer_value(json_object_get(model, "n_embd")),
                            (int)json_integer_value(json_object_get(model, "vocab_size")),
                            (int)json_integer_value(json_object_get(model, "block_size")), 0.0, 1e-5};
    int32_t byte_to_id[256];
    unsigned char id_to_byte[256] = {0};
    for (int c = 0; c < 256; c++) byte_to_id[c] = -1;
    for (size_t i = 0; i < json_array_size(vocab) && i < 256; i++) {
        int c = (int)json_integer_value(json_array_get(vocab, i)) & 255;
        byte_to_id[c] = (int32_t)i;
        id_to_byte[i] = (unsigned char)c;
    }
    json_decref(root);
    if (dsc_gpt_config_validate(&cfg, err, sizeof err) != DSC_OK) return fail("checkpoint model shape: %s", err);

    dsc_ctx_options_t co = DSC_CTX_OPTIONS_INIT;
    co.seed = (uint64_t)seed;
    dsc_ctx_t *ctx = NULL;
    dsc_gpt_t *gpt = NULL;
    dsc_initialize_result_t init = {0};
    int32_t *ids = NULL;
    float *probs = NULL, *logits_host = NULL;
    int status = 1;
    if (dsc_ctx_new(&co, &ctx) != DSC_OK || dsc_gpt_new(ctx, &cfg, &gpt) != DSC_OK) goto out;
    dsc_engine_options_t eo = DSC_ENGINE_OPTIONS_INIT;
    eo.config_json = "{\"train_batch_size\": 1, \"optimizer\": {\"type\": \"AdamW\"}}";
    if (dsc_initialize(gpt->model, &eo, &init, err, sizeof err) != DSC_OK) {
        fail("%s", err);
        goto out;
    }
    if (dsc_load_checkpoint(init.engine, dir, tag, false, false, true, NULL) != DSC_OK) {
        fail("%s", dsc_engine_errmsg(init.engine));
        goto out;
    }
    dsc_engine_eval(init.engine);
    const int T = cfg.block_size;
    ids = malloc(sizeof(int32_t) * (size_t)(strlen(prompt) + (size_t)n_tokens + 1));
    probs = malloc(sizeof(float) * (size_t)cfg.vocab_size);
    logits_host = malloc(sizeof(float) * (size_t)T * (size_t)cfg.vocab_size); /* the logits live on the device */
    if (!ids || !probs || !logits_host) goto out;
    long len = 0;
    for (const char *p = prompt; *p; p++) {
        int32_t id = byte_to_id[(unsigned char)*p];
        if (id < 0) {
            char c[2] = {*p, 0};
            fail("the prompt character '%s' is not in the model's vocabulary", c);
            goto out;
        }
        ids[len++] = id;
        fputc(*p, stdout);
    }
    for (long k = 0; k < n_tokens; k++) {
        int t = len < T ? (int)len : T;
        dsc_tensor_t *logits = NULL;
        dsc_ctx_no_grad_begin(ctx);
        dsc_status_t rc = dsc_gpt_forward(ctx, gpt, ids + len - t, NULL, 1, t, &logits, NULL);
        dsc_ctx_no_grad_end(ctx);
        if (rc != DSC_OK) {
            fail("%s", dsc_ctx_errmsg(ctx));
            goto out;
        }
        if (dsc_tensor_dtype(logits) != DSC_F32 ||
            dsc_tensor_to_host(ctx, logits, logits_host, sizeof(float) * (size_t)t * (size_t)cfg.vocab_size) != DSC_OK) {
            fail("reading the logits: %s", dsc_ctx_errmsg(ctx));
            goto out;
        }
        const float *last = logits_host + (size_t)(t - 1) * cfg.vocab_size;
        double mx = -INFINITY, sum = 0;
        for (int v = 0; v < cfg.vocab_size; v++) mx = fmax(mx, last[v]);
        for (int v = 0; v < cfg.vocab_size; v++) sum += probs[v] = (float)exp((last[v] - mx) / temperature);
        double r = dsc_ctx_rand_uniform(ctx) * sum, acc = 0;
        int32_t next = cfg.vocab_size - 1;
        for (int v = 0; v < cfg.vocab_size; v++)
            if ((acc += probs[v]) >= r) {
                next = v;
                break;
            }
        dsc_ctx_end_step(ctx);
        ids[len++] = next;
        fputc(id_to_byte[next], stdout);
    }
    fputc('\n', stdout);
    status = 0;
out:
    free(ids);
    free(probs);
    free(logits_host);
    dsc_engine_free(init.engine);
    dsc_gpt_free(gpt);
    dsc_ctx_free(ctx);
    return status;
}

/* Checkpoints and the Philox dropout stream (src/engine/engine_ckpt.c):
 *   - a save records each rank's (seed, offset) as the manifest's "dropout_seed" and
 *     "dropout_offset" RNG entries; a load restores them (and the next step's dropout
 *     masks are those of the run that saved);
 *   - a checkpoint without them (written before the Philox dropout) loads, with a warning,
 *     the stream restarting at (the saved "ctx" RNG state, 0);
 *   - a checkpoint with only one of the two is refused as corrupt, naming the missing one.
 * The older checkpoint is made by deleting the entries from manifest.json and rewriting
 * manifest.xxh3 the way the engine writes it. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "dsc/ckpt.h"
#include "dsc/dsc.h"

static char warned[1024];

static void capture(dsc_log_level_t level, const char *message, void *user) {
    (void)user;
    if (level == DSC_LOG_WARN) snprintf(warned, sizeof warned, "%s", message);
}

typedef struct {
    dsc_ctx_t *ctx;
    dsc_gpt_t *gpt;
    dsc_engine_t *engine;
} run_t;

static bool run_new(run_t *r, uint64_t seed) {
    dsc_ctx_options_t co = DSC_CTX_OPTIONS_INIT;
    co.seed = seed;
    co.log_fn = capture;
    dsc_gpt_config_t gc = {2, 2, 16, 19, 8, 0.2, 1e-5};
    char err[1024];
    dsc_engine_options_t o = DSC_ENGINE_OPTIONS_INIT;
    o.config_json = "{\"train_micro_batch_size_per_gpu\": 2, \"optimizer\": {\"type\": \"AdamW\", \"params\": {\"lr\": 0.01}}}";
    dsc_initialize_result_t init;
    if (dsc_ctx_new(&co, &r->ctx) != DSC_OK || dsc_gpt_new(r->ctx, &gc, &r->gpt) != DSC_OK ||
        dsc_initialize(r->gpt->model, &o, &init, err, sizeof err) != DSC_OK) {
        fprintf(stderr, "setup: %s\n", err);
        return false;
    }
    r->engine = init.engine;
    return true;
}

static void run_free(run_t *r) {
    dsc_engine_free(r->engine);
    dsc_gpt_free(r->gpt);
    dsc_ctx_free(r->ctx);
}

/* One training step; returns the loss. */
static double step(run_t *r) {
    int32_t x[16], y[16];
    for (int i = 0; i < 16; i++) x[i] = (i * 5) % 19, y[i] = (i * 7 + 3) % 19;
    dsc_tensor_t *loss = NULL;
    CHECK_OK(dsc_gpt_forward(r->ctx, r->gpt, x, y, 2, 8, NULL, &loss));
    CHECK_OK(dsc_backward(r->engine, loss));
    CHECK_OK(dsc_step(r->engine));
    return dsc_engine_last_loss(r->engine);
}

/* Drops the manifest's RNG entries named `drop_a` / `drop_b` (NULL: none) and rewrites the
 * sidecar checksum, as an older writer would have left the checkpoint. */
static bool edit_manifest(const char *dir, const char *drop_a, const char *drop_b) {
    char mpath[1200], spath[1200];
    snprintf(mpath, sizeof mpath, "%s/manifest.json", dir);
    snprintf(spath, sizeof spath, "%s/manifest.xxh3", dir);
    json_error_t je;
    json_t *root = json_load_file(mpath, 0, &je), *rng = root ? json_object_get(root, "rng") : NULL;
    if (!json_is_array(rng)) return false;
    for (size_t i = json_array_size(rng); i-- > 0;) {
        const char *name = json_string_value(json_object_get(json_array_get(rng, i), "name"));
        if (name && ((drop_a && !strcmp(name, drop_a)) || (drop_b && !strcmp(name, drop_b)))) json_array_remove(rng, i);
    }
    char *text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (!text) return false;
    size_t len = strlen(text);
    char *full = malloc(len + 2);
    memcpy(full, text, len);
    full[len] = '\n';
    full[len + 1] = '\0';
    free(text);
    FILE *f = fopen(mpath, "wb");
    bool ok = f && fwrite(full, 1, len + 1, f) == len + 1;
    if (f) fclose(f);
    f = fopen(spath, "wb");
    ok = ok && f && fprintf(f, "%016llx  manifest.json\n", (unsigned long long)dsc_ckpt_checksum(full, len + 1)) > 0;
    if (f) fclose(f);
    free(full);
    return ok;
}

int main(void) {
    char root[512];
    snprintf(root, sizeof root, "%s/dsc_ckpt_dropout_XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(root)) return 1;
    run_t a;
    if (!run_new(&a, 11)) return 1;
    step(&a);
    step(&a);
    uint64_t seed_a, off_a;
    dsc_ctx_dropout_stream(a.ctx, &seed_a, &off_a);
    CHECK(seed_a == 11 && off_a > 0);
    CHECK_OK(dsc_save_checkpoint(a.engine, root, "t", NULL, true));
    const uint64_t rng_a = dsc_ctx_rng_state(a.ctx);
    const double next_a = step(&a); /* the step after the save, with dropout */

    char dir[600], *text;
    snprintf(dir, sizeof dir, "%s/t/manifest.json", root);
    text = check_read_file(dir, NULL);
    CHECK(text && strstr(text, "\"dropout_seed\"") && strstr(text, "\"dropout_offset\""));
    free(text);

    /* a load restores the stream: the next step is the saving run's next step */
    run_t b;
    if (!run_new(&b, 99)) return 1;
    CHECK_OK(dsc_load_checkpoint(b.engine, root, "t", true, true, false, NULL));
    uint64_t seed_b, off_b;
    dsc_ctx_dropout_stream(b.ctx, &seed_b, &off_b);
    CHECK(seed_b == seed_a && off_b == off_a);
    CHECK_MSG(step(&b) == next_a, "the resumed step's loss differs from the saving run's");
    run_free(&b);

    /* one entry of the two: refused, naming the missing one */
    snprintf(dir, sizeof dir, "%s/t", root);
    CHECK(edit_manifest(dir, "dropout_offset", NULL));
    if (!run_new(&b, 99)) return 1;
    CHECK(dsc_load_checkpoint(b.engine, root, "t", true, true, false, NULL) == DSC_ERR_CORRUPT);
    CHECK_MSG(strstr(dsc_ctx_errmsg(b.ctx), "dropout stream's seed but not its offset") != NULL, "message: %s",
              dsc_ctx_errmsg(b.ctx));
    run_free(&b);

    /* neither (an older checkpoint): loads with a warning, the stream at (ctx state, 0) */
    CHECK(edit_manifest(dir, "dropout_seed", "dropout_offset"));
    if (!run_new(&b, 99)) return 1;
    warned[0] = '\0';
    CHECK_OK(dsc_load_checkpoint(b.engine, root, "t", true, true, false, NULL));
    dsc_ctx_dropout_stream(b.ctx, &seed_b, &off_b);
    CHECK_MSG(seed_b == rng_a && off_b == 0, "older checkpoint: stream (%llu, %llu), want (%llu, 0)",
              (unsigned long long)seed_b, (unsigned long long)off_b, (unsigned long long)rng_a);
    CHECK_MSG(strstr(warned, "predates the Philox dropout stream") != NULL, "warning: '%s'", warned);
    run_free(&b);

    run_free(&a);
    check_rm_tree(root);
    return check_finish("test_ckpt_dropout_stream");
}

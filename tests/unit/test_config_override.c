/* dsc_config_override_t (issue 21): a front end's values on top of the config text. Each is
 * validated as a value in the file, counts as given, and shows its note as the source; the
 * file's other values keep their positions; "auto" is still refused by the library; a bad
 * path or JSON text is an error naming the override. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "dsc/config.h"

static dsc_config_t *parse(const char *text, const dsc_config_override_t *ov, size_t n, char *err, size_t errsz) {
    dsc_config_parse_options_t o = DSC_CONFIG_PARSE_OPTIONS_INIT;
    o.overrides = ov;
    o.n_overrides = n;
    dsc_config_t *cfg = NULL;
    dsc_config_parse_string(text, &o, &cfg, err, errsz);
    return cfg;
}

static void source_is(const dsc_config_t *cfg, const char *path, const char *value, const char *source) {
    char v[256], s[256];
    dsc_config_source_t src;
    CHECK_MSG(dsc_config_get(cfg, path, v, sizeof v, &src) == DSC_OK, "%s", path);
    dsc_config_source_format(cfg, &src, s, sizeof s);
    CHECK_MSG(strcmp(v, value) == 0, "%s = %s, want %s", path, v, value);
    CHECK_MSG(strcmp(s, source) == 0, "%s source '%s', want '%s'", path, s, source);
}

int main(void) {
    char err[1024];
    /* A value replaced, one added inside an existing section, a whole new section. */
    const char *text = "{\"train_micro_batch_size_per_gpu\": \"auto\",\n"
                       " \"gradient_clipping\": 1.0,\n"
                       " \"zero_optimization\": {\"stage\": 1}}";
    const dsc_config_override_t ov[] = {
        {"train_micro_batch_size_per_gpu", "8", "auto: --micro-batch"},
        {"zero_optimization.reduce_bucket_size", "4096", "auto: hidden x hidden"},
        {"optimizer.type", "\"AdamW\"", "dsc train: no optimizer"},
        {"optimizer.params.lr", "0.0003", "command line: --lr"},
        {"zero_optimization.stage", "2", "first"},
        {"zero_optimization.stage", "3", "command line: --zero-stage"}, /* the later one wins */
    };
    dsc_config_t *cfg = parse(text, ov, sizeof ov / sizeof ov[0], err, sizeof err);
    CHECK_MSG(cfg != NULL, "%s", err);
    if (cfg) {
        CHECK(cfg->train_micro_batch_size_per_gpu.set && cfg->train_micro_batch_size_per_gpu.value == 8);
        CHECK(cfg->zero_optimization.stage == 3 && cfg->zero_optimization.reduce_bucket_size == 4096);
        CHECK(cfg->optimizer.kind == DSC_CONFIG_OPTIM_ADAMW && fabs(cfg->optimizer.lr - 3e-4) < 1e-18);
        source_is(cfg, "train_micro_batch_size_per_gpu", "8", "auto: --micro-batch");
        source_is(cfg, "zero_optimization.reduce_bucket_size", "4096", "auto: hidden x hidden");
        source_is(cfg, "zero_optimization.stage", "3", "command line: --zero-stage");
        source_is(cfg, "optimizer.type", "\"adamw\"", "dsc train: no optimizer");
        source_is(cfg, "optimizer.params.lr", "0.0003", "command line: --lr");
        source_is(cfg, "gradient_clipping", "1.0", "<string>:2:23"); /* the file's own value keeps its place */
        /* given, not defaulted: the batch resolution takes the override as the file's value */
        CHECK(dsc_config_resolve_batch(cfg, 2, err, sizeof err) == DSC_OK && cfg->train_batch_size.value == 16);
        dsc_config_free(cfg);
    }
    /* The library alone still refuses "auto", in the file and in an override. */
    CHECK(parse(text, NULL, 0, err, sizeof err) == NULL && strstr(err, "\"auto\" is a placeholder"));
    const dsc_config_override_t ok_mb = {"train_micro_batch_size_per_gpu", "8", "m"};
    const dsc_config_override_t auto_ov[] = {ok_mb, {"gradient_clipping", "\"auto\"", "command line: --clip"}};
    CHECK(parse(text, auto_ov, 2, err, sizeof err) == NULL && strstr(err, "gradient_clipping: \"auto\""));
    /* An override's value is validated as the file's. */
    const dsc_config_override_t bad[] = {ok_mb, {"zero_optimization.stage", "7", "command line: --zero-stage"}};
    CHECK(parse(text, bad, 2, err, sizeof err) == NULL && strstr(err, "zero_optimization.stage"));
    /* Not JSON, or a path through a non-object: named with the override's note. */
    const dsc_config_override_t notjson[] = {ok_mb, {"gradient_clipping", "1.0.0", "command line: --clip"}};
    CHECK(parse(text, notjson, 2, err, sizeof err) == NULL && strstr(err, "command line: --clip") &&
          strstr(err, "is not JSON"));
    const dsc_config_override_t through[] = {ok_mb, {"gradient_clipping.x", "1", "note-x"}};
    CHECK(parse(text, through, 2, err, sizeof err) == NULL && strstr(err, "note-x") && strstr(err, "not an object"));
    /* all_errors: every bad key of the file, one per line in file order; without it the first. */
    const char *bad_text = "{\"gradient_clipping\": -1,\n \"zero_optimization\": {\"stage\": 7, \"reduce_bucket_sise\": 5},\n"
                      " \"fp16\": {\"enabled\": \"auto\"}, \"steps_per_prnt\": 1}";
    dsc_config_parse_options_t o = DSC_CONFIG_PARSE_OPTIONS_INIT;
    dsc_config_t *cfg2 = NULL;
    CHECK(dsc_config_parse_string(bad_text, &o, &cfg2, err, sizeof err) == DSC_ERR_CONFIG && !strchr(err, '\n') &&
          strstr(err, "<string>:1:23: gradient_clipping"));
    o.all_errors = true;
    CHECK(dsc_config_parse_string(bad_text, &o, &cfg2, err, sizeof err) == DSC_ERR_CONFIG && cfg2 == NULL);
    const char *want[] = {"<string>:1:23: gradient_clipping: must be >= 0", "\n<string>:2:33: zero_optimization.stage: must be in 0..3",
                          "\n<string>:2:36: zero_optimization.reduce_bucket_sise: unknown key",
                          "\n<string>:3:22: fp16.enabled: \"auto\" is a placeholder", "\n<string>:3:31: steps_per_prnt: unknown key"};
    const char *at = err;
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const char *hit = strstr(at, want[i]);
        CHECK_MSG(hit != NULL, "error %zu '%s' not found (in order) in:\n%s", i, want[i], err);
        if (hit) at = hit + 1;
    }
    int lines = 1;
    for (const char *c = err; *c; c++) lines += *c == '\n';
    CHECK_MSG(lines == 5, "%d error lines:\n%s", lines, err);
    return check_finish("test_config_override");
}

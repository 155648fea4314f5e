/* DeepSpeed config parsing: every file under tests/configs (valid ones with their .expect
 * values, invalid ones with the substrings their error must contain), the batch-size table
 * of spec 1.2 row by row, the HEAD defaults of spec 0, aliases and deprecated keys, the
 * unknown-key options, positions, dsc_config_check_supported and the position scanner. */
#include <ctype.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "dsc/config.h"
#include "config/config_internal.h"

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The sorted *.json names of a directory; returns the count. */
static size_t list_json(const char *dir, char ***out) {
    DIR *d = opendir(dir);
    size_t n = 0, cap = 0;
    char **names = NULL;
    if (!d) {
        *out = NULL;
        return 0;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len < 6 || strcmp(e->d_name + len - 5, ".json") != 0) continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            names = realloc(names, cap * sizeof *names);
        }
        names[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp_str);
    *out = names;
    return n;
}

/* Runs fn on each *.json of dir with its sidecar (the name with `suffix` for ".json"), in name
 * order; the directory must hold at least 30. */
static void run_dir(const char *dir, const char *suffix, void (*fn)(const char *json_path, const char *side_path)) {
    char **names;
    size_t n = list_json(dir, &names);
    CHECK_MSG(n >= 30, "only %zu configs in %s", n, dir);
    for (size_t i = 0; i < n; i++) {
        char jp[512], sp[512];
        snprintf(jp, sizeof jp, "%s/%s", dir, names[i]);
        snprintf(sp, sizeof sp, "%s/%.*s%s", dir, (int)(strlen(names[i]) - 5), names[i], suffix);
        fn(jp, sp);
        free(names[i]);
    }
    free(names);
}

static char *trim(char *s) {
    while (isspace((unsigned char)*s)) s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1])) s[--n] = '\0';
    return s;
}

/* Replaces $FILE in `in` with `file`. */
static void subst_file(const char *in, const char *file, char *out, size_t n) {
    const char *at = strstr(in, "$FILE");
    if (at) snprintf(out, n, "%.*s%s%s", (int)(at - in), in, file, at + 5);
    else snprintf(out, n, "%s", in);
}

typedef struct {
    int count;
    int last_level;
} log_sink_t;

static void count_log(dsc_log_level_t level, const char *message, void *user) {
    (void)message;
    log_sink_t *s = user;
    s->count++;
    s->last_level = (int)level;
}

/* ---- tests/configs/valid ------------------------------------------------------------------ */

static int n_valid_files, n_valid_checks;

static void run_valid(const char *json_path, const char *expect_path) {
    char *expect = check_read_file(expect_path, NULL);
    CHECK_MSG(expect != NULL, "%s: missing .expect file", json_path);
    if (!expect) return;
    long long world_size = 1;
    bool allow_unknown = false;
    for (char *l = strtok(expect, "\n"); l; l = strtok(NULL, "\n")) {
        l = trim(l);
        if (!strncmp(l, "world_size:", 11)) world_size = atoll(l + 11);
        if (!strcmp(l, "allow_unknown: true")) allow_unknown = true;
    }
    free(expect);
    expect = check_read_file(expect_path, NULL);

    dsc_config_parse_options_t opts = DSC_CONFIG_PARSE_OPTIONS_INIT;
    log_sink_t sink = {0, -1};
    opts.log_fn = count_log;
    opts.log_user = &sink;
    opts.unknown_top_level_keys_warn = allow_unknown;
    dsc_config_t *cfg = NULL;
    char err[2048];
    dsc_status_t st = dsc_config_parse_file(json_path, &opts, &cfg, err, sizeof err);
    CHECK_MSG(st == DSC_OK, "%s: %s", json_path, err);
    if (st != DSC_OK) {
        free(expect);
        return;
    }
    st = dsc_config_resolve_batch(cfg, world_size, err, sizeof err);
    CHECK_MSG(st == DSC_OK, "%s: resolve: %s", json_path, err);
    CHECK_MSG(cfg->batch_resolved && cfg->train_batch_size.value == cfg->train_micro_batch_size_per_gpu.value *
                                                                          cfg->gradient_accumulation_steps.value *
                                                                          cfg->data_parallel_size,
              "%s: batch invariant", json_path);
    CHECK((size_t)sink.count == cfg->n_warnings);
    n_valid_files++;

    char *save = NULL;
    for (char *l = strtok_r(expect, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        l = trim(l);
        if (!*l || l[0] == '#' || !strncmp(l, "world_size:", 11) || !strncmp(l, "allow_unknown:", 14)) continue;
        n_valid_checks++;
        if (!strncmp(l, "warnings:", 9)) {
            CHECK_MSG(cfg->n_warnings == (size_t)atoi(l + 9), "%s: %zu warnings, expected %s", json_path,
                      cfg->n_warnings, l + 9);
            continue;
        }
        if (!strncmp(l, "print~", 6)) {
            char *text = NULL;
            size_t len = 0;
            FILE *mem = open_memstream(&text, &len);
            if (mem) {
                dsc_config_print(cfg, mem);
                fclose(mem);
            }
            char want[1024];
            subst_file(trim(l + 6), json_path, want, sizeof want);
            CHECK_MSG(text && strstr(text, want), "%s: the print does not contain '%s'", json_path, want);
            free(text);
            continue;
        }
        if (!strncmp(l, "warning~", 8)) {
            char want[1024];
            subst_file(trim(l + 8), json_path, want, sizeof want);
            bool found = false;
            for (size_t i = 0; i < cfg->n_warnings; i++) found = found || strstr(cfg->warnings[i], want);
            CHECK_MSG(found, "%s: no warning contains '%s'", json_path, want);
            continue;
        }
        char *eq = strstr(l, " = "), *at = strstr(l, " @ ");
        if (eq && at && at < eq) eq = NULL; /* the first separator wins */
        if (eq && at && eq < at) at = NULL;
        char *sep = eq ? eq : at;
        CHECK_MSG(sep != NULL, "%s: bad expectation line '%s'", expect_path, l);
        if (!sep) continue;
        *sep = '\0';
        const char *path = trim(l), *want = trim(sep + 3);
        char got[4096], src[1024], want_s[1024];
        dsc_config_source_t s;
        st = dsc_config_get(cfg, path, got, sizeof got, &s);
        CHECK_MSG(st == DSC_OK, "%s: dsc_config_get(%s) failed", json_path, path);
        if (st != DSC_OK) continue;
        if (sep == eq) {
            CHECK_MSG(strcmp(got, want) == 0, "%s: %s = %s, expected %s", json_path, path, got, want);
        } else {
            dsc_config_source_format(cfg, &s, src, sizeof src);
            subst_file(want, json_path, want_s, sizeof want_s);
            CHECK_MSG(strncmp(src, want_s, strlen(want_s)) == 0, "%s: %s @ '%s', expected '%s'", json_path, path, src,
                      want_s);
        }
    }
    free(expect);
    /* printing and the support check run on every valid config */
    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    CHECK(mem && dsc_config_print(cfg, mem) == DSC_OK);
    if (mem) fclose(mem);
    CHECK_MSG(text && strstr(text, "\"zero_optimization\": {") && strstr(text, "// "), "%s: print", json_path);
    free(text);
    static const char *const all[] = {"*", NULL};
    dsc_config_support_t none = {all, NULL};
    (void)dsc_config_check_supported(cfg, &none, err, sizeof err);
    dsc_config_free(cfg);
}

/* ---- tests/configs/invalid ------------------------------------------------------------------ */

static int n_invalid_files, n_invalid_checks;

static void run_invalid(const char *json_path, const char *expected_path) {
    char *expected = check_read_file(expected_path, NULL);
    CHECK_MSG(expected != NULL, "%s: missing .expected file", json_path);
    if (!expected) return;
    dsc_config_parse_options_t opts = DSC_CONFIG_PARSE_OPTIONS_INIT;
    log_sink_t sink = {0, -1};
    opts.log_fn = count_log;
    opts.log_user = &sink;
    long long world_size = 0;
    char *save = NULL;
    char *lines[32];
    int n_lines = 0;
    for (char *l = strtok_r(expected, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        l = trim(l);
        if (!*l || l[0] == '#') continue;
        if (!strncmp(l, "world_size:", 11)) world_size = atoll(l + 11);
        else if (n_lines < 32) lines[n_lines++] = l;
    }
    CHECK_MSG(n_lines >= 1, "%s: no expected substrings", expected_path);
    dsc_config_t *cfg = NULL;
    char err[4096];
    dsc_status_t st = dsc_config_parse_file(json_path, &opts, &cfg, err, sizeof err);
    if (st == DSC_OK && world_size) st = dsc_config_resolve_batch(cfg, world_size, err, sizeof err);
    CHECK_MSG(st != DSC_OK, "%s: accepted, expected an error", json_path);
    if (st == DSC_OK) snprintf(err, sizeof err, "(no error)");
    if (st != DSC_OK && !world_size) CHECK(cfg == NULL);
    CHECK_MSG(strncmp(err, json_path, strlen(json_path)) == 0, "%s: message does not start with the file: %s", json_path,
              err);
    for (int i = 0; i < n_lines; i++) {
        n_invalid_checks++;
        CHECK_MSG(strstr(err, lines[i]) != NULL, "%s: error\n    %s\n  does not contain '%s'", json_path, err, lines[i]);
    }
    n_invalid_files++;
    dsc_config_free(cfg);
    free(expected);
}

/* ---- helpers for inline configs ---------------------------------------------------------------- */

/* Parses `text` with warnings counted (not printed) into *cfg; the message in err. */
static dsc_status_t parse_text(const char *text, dsc_config_t **cfg, char *err, size_t errsz) {
    dsc_config_parse_options_t opts = DSC_CONFIG_PARSE_OPTIONS_INIT;
    log_sink_t sink = {0, -1};
    opts.log_fn = count_log;
    opts.log_user = &sink;
    *cfg = NULL;
    return dsc_config_parse_string(text, &opts, cfg, err, errsz);
}

static dsc_config_t *parse_ok(const char *text) {
    dsc_config_t *cfg;
    char err[2048];
    dsc_status_t st = parse_text(text, &cfg, err, sizeof err);
    CHECK_MSG(st == DSC_OK, "parse failed: %s\n  for %s", err, text);
    return cfg;
}

/* Parses `text` expecting failure; checks the message contains every NULL-terminated needle. */
static void parse_fails(const char *text, const char *n1, const char *n2) {
    dsc_config_t *cfg;
    char err[2048];
    dsc_status_t st = parse_text(text, &cfg, err, sizeof err);
    CHECK_MSG(st == DSC_ERR_CONFIG, "expected DSC_ERR_CONFIG for %s", text);
    CHECK(cfg == NULL);
    CHECK_MSG(!n1 || strstr(err, n1), "'%s' not in: %s", n1, err);
    CHECK_MSG(!n2 || strstr(err, n2), "'%s' not in: %s", n2, err);
    dsc_config_free(cfg);
}

static void get_is(const dsc_config_t *cfg, const char *path, const char *want) {
    char got[1024];
    dsc_status_t st = dsc_config_get(cfg, path, got, sizeof got, NULL);
    CHECK_MSG(st == DSC_OK && strcmp(got, want) == 0, "%s = %s, expected %s", path, st == DSC_OK ? got : "(error)", want);
}

/* ---- spec 1.2: the worked examples, every row ------------------------------------------------- */

static void batch_row(const char *json, long long ws, long long tb, long long mb, long long gas, const char *error) {
    dsc_config_t *cfg = parse_ok(json);
    if (!cfg) return;
    char err[2048];
    dsc_status_t st = dsc_config_resolve_batch(cfg, ws, err, sizeof err);
    if (error) {
        CHECK_MSG(st == DSC_ERR_CONFIG, "%s ws=%lld: expected an error", json, ws);
        CHECK_MSG(strstr(err, error) != NULL, "%s ws=%lld: '%s' not in: %s", json, ws, error, err);
        CHECK_MSG(strstr(err, "world_size=") != NULL && strstr(err, "<string>") != NULL, "no sources in: %s", err);
        CHECK(!cfg->batch_resolved);
    } else {
        CHECK_MSG(st == DSC_OK, "%s: %s", json, err);
        CHECK_MSG(cfg->train_batch_size.value == tb && cfg->train_micro_batch_size_per_gpu.value == mb &&
                      cfg->gradient_accumulation_steps.value == gas,
                  "%s ws=%lld: got %lld %lld %lld", json, ws, (long long)cfg->train_batch_size.value,
                  (long long)cfg->train_micro_batch_size_per_gpu.value, (long long)cfg->gradient_accumulation_steps.value);
    }
    dsc_config_free(cfg);
}

static void test_batch_table(void) {
    /* | TB | mb | GAS | ws | Result | */
    batch_row("{\"train_batch_size\": 32}", 4, 32, 8, 1, NULL);
    batch_row("{\"train_batch_size\": 32, \"train_micro_batch_size_per_gpu\": 4}", 4, 32, 4, 2, NULL);
    batch_row("{\"train_batch_size\": 32, \"gradient_accumulation_steps\": 2}", 4, 32, 4, 2, NULL);
    batch_row("{\"train_micro_batch_size_per_gpu\": 4, \"gradient_accumulation_steps\": 2}", 4, 32, 4, 2, NULL);
    batch_row("{\"train_micro_batch_size_per_gpu\": 4}", 4, 16, 4, 1, NULL);
    batch_row("{\"train_batch_size\": 30, \"train_micro_batch_size_per_gpu\": 4}", 4, 0, 0, 0,
              "Check batch related parameters. train_batch_size is not equal to micro_batch_per_gpu * "
              "gradient_acc_step * world_size 30 != 4 * 1 * 4");
    batch_row("{\"train_batch_size\": 32, \"gradient_accumulation_steps\": 3}", 4, 0, 0, 0,
              "train_batch_size is not equal to micro_batch_per_gpu * gradient_acc_step * world_size 32 != 2 * 3 * 4");
    batch_row("{\"train_batch_size\": 3}", 4, 0, 0, 0, "Micro batch size per gpu: 0 has to be greater than 0");
    batch_row("{\"train_batch_size\": 32, \"train_micro_batch_size_per_gpu\": 4, \"gradient_accumulation_steps\": 4}", 4,
              0, 0, 0, "32 != 4 * 4 * 4");
    /* GAS only, or none */
    batch_row("{\"gradient_accumulation_steps\": 4}", 4, 0, 0, 0,
              "Either train_batch_size or train_micro_batch_size_per_gpu needs to be provided");
    batch_row("{}", 1, 0, 0, 0, "Either train_batch_size or train_micro_batch_size_per_gpu needs to be provided");
    /* derived GAS of 0: the GAS assertion (after TB and mb) */
    batch_row("{\"train_batch_size\": 8, \"train_micro_batch_size_per_gpu\": 4}", 4, 0, 0, 0,
              "Gradient accumulation steps: 0 has to be greater than 0");
    /* the message names each value's source and the world size */
    dsc_config_t *cfg = parse_ok("{\n  \"train_batch_size\": 30,\n  \"train_micro_batch_size_per_gpu\": 4\n}");
    if (cfg) {
        char err[2048];
        CHECK(dsc_config_resolve_batch_from(cfg, 4, "OMPI_COMM_WORLD_SIZE", err, sizeof err) == DSC_ERR_CONFIG);
        CHECK_MSG(strstr(err, "train_batch_size=30 from <string>:2:23") && strstr(err, "train_micro_batch_size_per_gpu=4 from <string>:3:37") &&
                      strstr(err, "gradient_accumulation_steps=1 derived: (train_batch_size // train_micro_batch_size_per_gpu) // world_size = (30 // 4) // 4") &&
                      strstr(err, "world_size=4: OMPI_COMM_WORLD_SIZE"),
                  "sources missing: %s", err);
        /* the same config resolves with another world size; a later failure restores the file values */
        CHECK(dsc_config_resolve_batch(cfg, 1, err, sizeof err) == DSC_ERR_CONFIG); /* 30 // 4 = 7 != 28 */
        CHECK(dsc_config_resolve_batch(cfg, 0, err, sizeof err) == DSC_ERR_INVALID);
        dsc_config_free(cfg);
    }
    cfg = parse_ok("{\"train_batch_size\": 64, \"train_micro_batch_size_per_gpu\": 8}");
    if (cfg) {
        char err[2048];
        CHECK(dsc_config_resolve_batch(cfg, 2, err, sizeof err) == DSC_OK);
        CHECK(cfg->gradient_accumulation_steps.value == 4 && cfg->world_size == 2);
        CHECK(dsc_config_resolve_batch(cfg, 8, err, sizeof err) == DSC_OK);
        CHECK(cfg->gradient_accumulation_steps.value == 1 && cfg->world_size == 8);
        CHECK(dsc_config_resolve_batch(cfg, 16, err, sizeof err) == DSC_ERR_CONFIG); /* GAS 0 */
        CHECK(!cfg->gradient_accumulation_steps.set && cfg->train_batch_size.value == 64 && !cfg->batch_resolved);
        dsc_config_free(cfg);
    }
    /* sequence parallelism divides the world size */
    cfg = parse_ok("{\"train_micro_batch_size_per_gpu\": 2, \"sequence_parallel_size\": 4}");
    if (cfg) {
        char err[2048];
        CHECK(dsc_config_resolve_batch(cfg, 16, err, sizeof err) == DSC_OK);
        CHECK(cfg->data_parallel_size == 4 && cfg->train_batch_size.value == 8);
        CHECK(dsc_config_resolve_batch(cfg, 6, err, sizeof err) == DSC_ERR_CONFIG && strstr(err, "not divisible by 4"));
        dsc_config_free(cfg);
    }
    /* unset is not 0 */
    cfg = parse_ok("{\"train_micro_batch_size_per_gpu\": 2}");
    if (cfg) {
        CHECK(!cfg->train_batch_size.set && cfg->train_micro_batch_size_per_gpu.set && !cfg->batch_resolved);
        dsc_config_free(cfg);
    }
    /* overflow is an error, not undefined behaviour */
    batch_row("{\"train_micro_batch_size_per_gpu\": 4611686018427387904, \"gradient_accumulation_steps\": 4}", 2, 0, 0, 0,
              "overflows");
    /* values set in code count as given */
    cfg = NULL;
    CHECK_OK(dsc_config_new_default(&cfg));
    if (cfg) {
        char err2[1024];
        cfg->train_micro_batch_size_per_gpu = (dsc_config_opt_int_t){true, 4};
        CHECK(dsc_config_resolve_batch(cfg, 2, err2, sizeof err2) == DSC_OK && cfg->train_batch_size.value == 8);
        CHECK(dsc_config_resolve_batch(cfg, 3, err2, sizeof err2) == DSC_OK && cfg->train_batch_size.value == 12);
        dsc_config_free(cfg);
    }
    /* the world size given at parse time */
    dsc_config_parse_options_t opts = DSC_CONFIG_PARSE_OPTIONS_INIT;
    opts.world_size = 4;
    char err[2048];
    CHECK(dsc_config_parse_string("{\"train_batch_size\": 30, \"train_micro_batch_size_per_gpu\": 4}", &opts, &cfg,
                                  err, sizeof err) == DSC_ERR_CONFIG &&
          strstr(err, "30 != 4 * 1 * 4") && cfg == NULL);
}

/* ---- spec 0 and the other defaults ------------------------------------------------------------- */

static void test_defaults(void) {
    dsc_config_t *cfg = NULL;
    CHECK_OK(dsc_config_new_default(&cfg));
    if (!cfg) return;
    /* spec 0: version-sensitive defaults at HEAD */
    CHECK(cfg->gradient_clipping == 1.0);
    CHECK(!cfg->steps_per_print.set);
    CHECK(cfg->bf16.check_grad_overflow == true);
    CHECK(cfg->managed_gradient_accumulation == true);
    CHECK(cfg->gradient_allreduce_op == DSC_CONFIG_ALLREDUCE_MEAN);
    /* spec 1.3 */
    CHECK(!cfg->wall_clock_breakdown && !cfg->memory_breakdown && !cfg->prescale_gradients);
    CHECK(cfg->gradient_predivide_factor == 1.0);
    CHECK(cfg->communication_data_type == DSC_CONFIG_DTYPE_NONE);
    CHECK(cfg->communication_data_type_effective == DSC_CONFIG_DTYPE_FP32);
    CHECK(cfg->seq_parallel_communication_data_type == DSC_CONFIG_DTYPE_FP32);
    CHECK(!cfg->zero_allow_untested_optimizer && cfg->zero_force_ds_cpu_optimizer);
    CHECK(!cfg->vocabulary_size.set && !cfg->log_level && !cfg->dataloader_drop_last);
    CHECK(!cfg->train_batch_size.set && !cfg->train_micro_batch_size_per_gpu.set && !cfg->gradient_accumulation_steps.set);
    /* 1.4 / 1.5 */
    CHECK(cfg->optimizer.kind == DSC_CONFIG_OPTIM_NONE && cfg->optimizer.type == NULL);
    CHECK(cfg->scheduler.kind == DSC_CONFIG_SCHED_NONE);
    /* 1.6 fp16 */
    CHECK(!cfg->fp16.enabled && !cfg->fp16.auto_cast && cfg->fp16.loss_scale == 0);
    CHECK(cfg->fp16.initial_scale_power == 16 && cfg->fp16.loss_scale_window == 1000 && cfg->fp16.hysteresis == 2);
    CHECK(!cfg->fp16.consecutive_hysteresis && cfg->fp16.min_loss_scale == 1 && !cfg->fp16.fp16_master_weights_and_grads);
    /* 1.7 bf16 */
    CHECK(!cfg->bf16.enabled && !cfg->bf16.immediate_grad_update && !cfg->bf16.bf16_master_weights_and_grads &&
          !cfg->bf16.bf16_optimizer_states);
    /* 1.8 */
    CHECK(cfg->data_types.grad_accum_dtype == DSC_CONFIG_DTYPE_NONE && cfg->data_types.param_dtype == DSC_CONFIG_DTYPE_NONE);
    CHECK(cfg->data_types.grad_accum_dtype_effective == DSC_CONFIG_DTYPE_FP32);
    /* 1.9 zero */
    const dsc_config_zero_t *z = &cfg->zero_optimization;
    CHECK(z->stage == 0 && z->contiguous_gradients && !z->overlap_comm && z->reduce_scatter);
    CHECK(z->reduce_bucket_size == 500000000 && z->allgather_bucket_size == 500000000);
    CHECK(z->use_multi_rank_bucket_allreduce && z->allgather_partitions && z->load_from_fp32_weights);
    CHECK(!z->elastic_checkpoint && z->sub_group_size == 1000000000);
    CHECK(z->stage3_prefetch_bucket_size == 50000000 && z->stage3_param_persistence_threshold == 100000);
    CHECK(z->stage3_model_persistence_threshold == INT64_MAX && z->stage3_max_live_parameters == 1000000000);
    CHECK(z->stage3_max_reuse_distance == 1000000000 && !z->stage3_gather_16bit_weights_on_model_save);
    CHECK(z->ignore_unused_parameters && !z->round_robin_gradients && z->zero_hpz_partition_size == 1);
    CHECK(z->mics_shard_size == -1 && z->memory_efficient_linear && z->override_module_apply);
    CHECK(!z->offload_optimizer.present && z->offload_optimizer.device == DSC_CONFIG_OFFLOAD_NONE);
    CHECK(z->offload_optimizer.buffer_count == 4 && z->offload_optimizer.pin_memory && z->offload_optimizer.ratio == 1.0);
    CHECK(z->offload_optimizer.cpuadam_cores_perc == 0.8);
    CHECK(z->offload_param.buffer_count == 5 && z->offload_param.buffer_size == 100000000 &&
          z->offload_param.max_in_cpu == 1000000000 && z->offload_param.pin_memory);
    /* 1.10 - 1.14 */
    CHECK(!cfg->activation_checkpointing.partition_activations && !cfg->activation_checkpointing.number_checkpoints.set);
    CHECK(cfg->checkpoint.tag_validation == DSC_CONFIG_TAG_WARN && cfg->checkpoint.checkpoint_serialization);
    CHECK(cfg->checkpoint.writer.type == DSC_CONFIG_WRITER_FAST && cfg->checkpoint.writer.io_buffer_size == 64 << 20);
    CHECK(cfg->aio.block_size == 1048576 && cfg->aio.queue_depth == 8 && cfg->aio.overlap_events);
    CHECK(!cfg->tensorboard.enabled && strcmp(cfg->tensorboard.job_name, "DeepSpeedJobName") == 0 &&
          strcmp(cfg->tensorboard.output_path, "") == 0);
    CHECK(strcmp(cfg->wandb.project, "deepspeed") == 0 && cfg->comet.samples_log_interval == 100 && !cfg->comet.online.set);
    CHECK(!cfg->flops_profiler.enabled && cfg->flops_profiler.profile_step == 1 && cfg->flops_profiler.module_depth == -1 &&
          cfg->flops_profiler.top_modules == 1 && cfg->flops_profiler.detailed);
    CHECK(cfg->timers_throughput.enabled && cfg->timers_throughput.synchronized);
    CHECK(!cfg->comms_logger.enabled && cfg->comms_logger.prof_all && cfg->comms_logger.prof_ops.set &&
          cfg->comms_logger.prof_ops.count == 0);
    CHECK(!cfg->pipeline.present && !cfg->elasticity.in_use);
    /* every default reads back through dsc_config_get with a "default" source */
    get_is(cfg, "gradient_clipping", "1.0");
    get_is(cfg, "steps_per_print", "null");
    get_is(cfg, "bf16.check_grad_overflow", "true");
    get_is(cfg, "gradient_allreduce_op", "\"mean\"");
    get_is(cfg, "zero_optimization.stage3_model_persistence_threshold", "9223372036854775807");
    dsc_config_source_t s;
    CHECK(dsc_config_get(cfg, "fp16.enabled", NULL, 0, &s) == DSC_OK && s.origin == DSC_CONFIG_DEFAULT);
    CHECK(dsc_config_get(cfg, "zero_optimization", NULL, 0, NULL) == DSC_ERR_INVALID);
    CHECK(dsc_config_get(cfg, "no_such_key", NULL, 0, NULL) == DSC_ERR_INVALID);
    CHECK(dsc_config_get(cfg, "fp16.enabled.x", NULL, 0, NULL) == DSC_ERR_INVALID);
    dsc_config_free(cfg);

    /* optimizer defaults follow the class DeepSpeed builds */
    cfg = parse_ok("{\"optimizer\": {\"type\": \"Adagrad\"}}");
    if (cfg) {
        CHECK(cfg->optimizer.kind == DSC_CONFIG_OPTIM_ADAGRAD && cfg->optimizer.lr == 1e-2 && cfg->optimizer.eps == 1e-10);
        CHECK(strcmp(cfg->optimizer.implementation, "torch.optim.Adagrad") == 0);
        dsc_config_free(cfg);
    }
    cfg = parse_ok("{\"optimizer\": {\"type\": \"ADAMW\", \"params\": {\"torch_adam\": true}}}");
    if (cfg) {
        CHECK(strcmp(cfg->optimizer.type, "adamw") == 0 && cfg->optimizer.weight_decay == 1e-2);
        CHECK(strcmp(cfg->optimizer.implementation, "torch.optim.AdamW") == 0 && cfg->optimizer.adam_w_mode);
        dsc_config_free(cfg);
    }
    cfg = parse_ok("{\"optimizer\": {\"type\": \"Adam\", \"params\": {\"adam_w_mode\": false}}}");
    if (cfg) {
        CHECK(!cfg->optimizer.adam_w_mode && cfg->optimizer.kind == DSC_CONFIG_OPTIM_ADAM);
        dsc_config_free(cfg);
    }
    cfg = parse_ok("{\"optimizer\": {\"type\": \"AdamW\", \"params\": {\"adam_w_mode\": false}}}");
    if (cfg) { /* adamw always decouples: the flag has no effect, and dsc says so */
        CHECK(cfg->optimizer.adam_w_mode && cfg->n_warnings == 1 && strstr(cfg->warnings[0], "has no effect"));
        FILE *full = fopen("/dev/full", "w");
        if (full) {
            CHECK(dsc_config_print(cfg, full) == DSC_ERR_IO);
            fclose(full);
        }
        dsc_config_free(cfg);
    }
    cfg = parse_ok("{\"optimizer\": {\"type\": \"Adam\"}}"); /* Adam means AdamW unless adam_w_mode: false */
    if (cfg) {
        CHECK(cfg->optimizer.adam_w_mode && cfg->optimizer.betas[0] == 0.9 && cfg->optimizer.betas[1] == 0.999);
        dsc_config_free(cfg);
    }
    cfg = parse_ok("{\"scheduler\": {\"type\": \"OneCycle\", \"params\": {\"cycle_min_lr\": 1e-4, \"cycle_max_lr\": 1e-3}}}");
    if (cfg) {
        const dsc_config_scheduler_t *s2 = &cfg->scheduler;
        CHECK(s2->cycle_first_step_size == 2000 && s2->cycle_second_step_size == 2000 && s2->cycle_momentum);
        CHECK(s2->cycle_min_mom == 0.8 && s2->cycle_max_mom == 0.9 && s2->last_batch_iteration == -1);
        dsc_config_free(cfg);
    }
}

/* ---- aliases, deprecated keys, legacy spellings -------------------------------------------------- */

static void test_aliases(void) {
    dsc_config_t *cfg = parse_ok("{\"zero_optimization\": {\"stage\": 3, \"prefetch_bucket_size\": 1000, "
                                 "\"max_live_parameters\": 7, \"gather_16bit_weights_on_model_save\": true}}");
    if (cfg) {
        CHECK(cfg->zero_optimization.stage3_prefetch_bucket_size == 1000);
        CHECK(cfg->zero_optimization.stage3_max_live_parameters == 7);
        CHECK(cfg->zero_optimization.stage3_gather_16bit_weights_on_model_save);
        get_is(cfg, "zero_optimization.prefetch_bucket_size", "1000");
        get_is(cfg, "zero_optimization.stage3_prefetch_bucket_size", "1000");
        dsc_config_source_t s;
        CHECK(dsc_config_get(cfg, "zero_optimization.stage3_prefetch_bucket_size", NULL, 0, &s) == DSC_OK &&
              s.origin == DSC_CONFIG_FILE && s.line == 1);
        dsc_config_free(cfg);
    }
    parse_fails("{\"zero_optimization\": {\"stage3_prefetch_bucket_size\": 1, \"prefetch_bucket_size\": 2}}",
                "zero_optimization.stage3_prefetch_bucket_size", "same setting");
    /* bfloat16 is read as bf16, with a warning */
    cfg = parse_ok("{\"bfloat16\": {\"enabled\": true}}");
    if (cfg) {
        CHECK(cfg->bf16.enabled && cfg->bf16.from_legacy_key && cfg->n_warnings == 1);
        get_is(cfg, "bfloat16.enabled", "true");
        CHECK(cfg->communication_data_type_effective == DSC_CONFIG_DTYPE_BF16);
        dsc_config_free(cfg);
    }
    parse_fails("{\"bf16\": {\"enabled\": true}, \"bfloat16\": {\"enabled\": false}}", "bfloat16", "\"bf16\"");
    cfg = parse_ok("{\"bf16\": null, \"bfloat16\": {\"enabled\": true}}"); /* DeepSpeed reads bfloat16 then */
    if (cfg) {
        CHECK(cfg->bf16.enabled && cfg->bf16.from_legacy_key);
        dsc_config_free(cfg);
    }
    parse_fails("{\"bfloat16\": {\"enabld\": true}}", "bfloat16.enabld", "did you mean \"enabled\"");
    /* deprecated zero keys: copied to the replacement, with a warning; both -> error */
    cfg = parse_ok("{\"zero_optimization\": {\"stage\": 2, \"cpu_offload\": true}}");
    if (cfg) {
        CHECK(cfg->zero_optimization.offload_optimizer.device == DSC_CONFIG_OFFLOAD_CPU);
        CHECK(cfg->zero_optimization.offload_optimizer.present && cfg->n_warnings == 1);
        CHECK(strstr(cfg->warnings[0], "cpu_offload is deprecated use offload_optimizer instead") != NULL);
        dsc_config_source_t s;
        CHECK(dsc_config_get(cfg, "zero_optimization.offload_optimizer.device", NULL, 0, &s) == DSC_OK &&
              s.origin == DSC_CONFIG_DERIVED && s.line == 1);
        dsc_config_free(cfg);
    }
    cfg = parse_ok("{\"zero_optimization\": {\"stage\": 2, \"cpu_offload\": false}}");
    if (cfg) {
        CHECK(!cfg->zero_optimization.offload_optimizer.present);
        dsc_config_free(cfg);
    }
    cfg = parse_ok("{\"zero_optimization\": {\"stage\": 3, \"cpu_offload_param\": true, "
                   "\"stage3_gather_fp16_weights_on_model_save\": true, \"cpu_offload_use_pin_memory\": true}}");
    if (cfg) {
        CHECK(cfg->zero_optimization.offload_param.device == DSC_CONFIG_OFFLOAD_CPU);
        CHECK(cfg->zero_optimization.stage3_gather_16bit_weights_on_model_save);
        CHECK(cfg->n_warnings == 3);
        dsc_config_free(cfg);
    }
    parse_fails("{\"zero_optimization\": {\"stage\": 3, \"cpu_offload_param\": true, \"offload_param\": null}}",
                "Cannot provide deprecated parameter 'cpu_offload_param' and replacing parameter 'offload_param' together",
                NULL);
    parse_fails("{\"zero_optimization\": {\"stage3_gather_fp16_weights_on_model_save\": true, "
                "\"gather_16bit_weights_on_model_save\": false}}",
                "Cannot provide deprecated parameter", NULL);
    /* legacy boolean zero_optimization with top-level allgather_size */
    cfg = parse_ok("{\"zero_optimization\": true, \"allgather_size\": 2e8}");
    if (cfg) {
        CHECK(cfg->zero_optimization.stage == 1 && cfg->zero_optimization.from_legacy_bool);
        CHECK(cfg->zero_optimization.allgather_bucket_size == 200000000);
        dsc_config_free(cfg);
    }
    cfg = parse_ok("{\"zero_optimization\": false}");
    if (cfg) {
        CHECK(cfg->zero_optimization.stage == 0);
        dsc_config_free(cfg);
    }
    parse_fails("{\"zero_optimization\": {\"stage\": 1}, \"allgather_size\": 2e8}", "allgather_size",
                "allgather_bucket_size");
    parse_fails("{\"zero_optimization\": 1}", "zero_optimization", "expected an object");
    /* case rules: DeepSpeed names any case, torch names exact, enums per DeepSpeed */
    cfg = parse_ok("{\"optimizer\": {\"type\": \"LaMb\"}, \"gradient_allreduce_op\": \"MEAN\", "
                   "\"communication_data_type\": \"BF16\", \"checkpoint\": {\"tag_validation\": \"FAIL\"}}");
    if (cfg) {
        CHECK(strcmp(cfg->optimizer.type, "lamb") == 0);
        CHECK(cfg->communication_data_type == DSC_CONFIG_DTYPE_BF16);
        CHECK(cfg->checkpoint.tag_validation == DSC_CONFIG_TAG_FAIL);
        dsc_config_free(cfg);
    }
    parse_fails("{\"optimizer\": {\"type\": \"rmsprop\"}}", "rmsprop is not a supported DeepSpeed Optimizer",
                "did you mean \"RMSprop\"");
    parse_fails("{\"scheduler\": {\"type\": \"warmuplr\", \"params\": {}}}", "does not recognize LR scheduler warmuplr",
                "WarmupLR");
    parse_fails("{\"data_types\": {\"grad_accum_dtype\": \"FP32\"}}", "data_types.grad_accum_dtype", "\"FP32\"");
    cfg = parse_ok("{\"bf16\": {\"enabled\": true}, \"data_types\": {\"grad_accum_dtype\": \"torch.float32\", "
                   "\"param_dtype\": \"bfloat16\"}}");
    if (cfg) {
        CHECK(cfg->data_types.grad_accum_dtype == DSC_CONFIG_DTYPE_FP32 && cfg->data_types.param_dtype == DSC_CONFIG_DTYPE_BF16);
        dsc_config_free(cfg);
    }
}

/* ---- unknown keys ---------------------------------------------------------------------------------- */

static void test_unknown_keys(void) {
    const char *text = "{\n  \"train_batch_size\": 8,\n  \"my_experiment_tag\": \"x\",\n  \"gradient_acumulation_steps\": 2\n}";
    dsc_config_t *cfg = NULL;
    char err[2048];
    dsc_config_parse_options_t opts = DSC_CONFIG_PARSE_OPTIONS_INIT;
    log_sink_t sink = {0, -1};
    opts.log_fn = count_log;
    opts.log_user = &sink;
    CHECK(dsc_config_parse_string(text, &opts, &cfg, err, sizeof err) == DSC_ERR_CONFIG);
    CHECK_MSG(strstr(err, "<string>:3:3: my_experiment_tag: unknown key") != NULL, "%s", err);
    CHECK(sink.count == 0);
    /* the warn option: DeepSpeed's behaviour, but said out loud */
    opts.unknown_top_level_keys_warn = true;
    CHECK(dsc_config_parse_string(text, &opts, &cfg, err, sizeof err) == DSC_OK);
    CHECK(sink.count == 2 && sink.last_level == DSC_LOG_WARN);
    if (cfg) {
        CHECK(cfg->n_warnings == 2);
        CHECK_MSG(strstr(cfg->warnings[1], "<string>:4:3: gradient_acumulation_steps: unknown key ignored") &&
                      strstr(cfg->warnings[1], "did you mean \"gradient_accumulation_steps\"?"),
                  "%s", cfg->warnings[1]);
        CHECK(!cfg->gradient_accumulation_steps.set);
        dsc_config_free(cfg);
    }
    /* ...but never inside the strict sections */
    CHECK(dsc_config_parse_string("{\"fp16\": {\"enable\": true}}", &opts, &cfg, err, sizeof err) == DSC_ERR_CONFIG);
    CHECK_MSG(strstr(err, "fp16.enable: unknown key") && strstr(err, "did you mean \"enabled\"?"), "%s", err);
    /* plain-dict sections have their own option */
    const char *plain = "{\"activation_checkpointing\": {\"partitioned_activations\": true}}";
    CHECK(dsc_config_parse_string(plain, &opts, &cfg, err, sizeof err) == DSC_ERR_CONFIG);
    CHECK_MSG(strstr(err, "activation_checkpointing.partitioned_activations") &&
                  strstr(err, "did you mean \"partition_activations\"?"),
              "%s", err);
    opts.unknown_section_keys_warn = true;
    CHECK(dsc_config_parse_string(plain, &opts, &cfg, err, sizeof err) == DSC_OK);
    if (cfg) {
        CHECK(!cfg->activation_checkpointing.partition_activations && cfg->n_warnings == 1);
        dsc_config_free(cfg);
    }
    /* optimizer params are never relaxed: the constructor would fail in DeepSpeed too */
    CHECK(dsc_config_parse_string("{\"optimizer\": {\"type\": \"adam\", \"params\": {\"learning_rate\": 1}}}", &opts,
                                  &cfg, err, sizeof err) == DSC_ERR_CONFIG);
    CHECK_MSG(strstr(err, "optimizer.params.learning_rate: unknown key"), "%s", err);
    /* a key of another section is pointed to */
    parse_fails("{\"stage\": 2}", "did you mean zero_optimization.stage?", NULL);
    parse_fails("{\"micro_batch_size\": 2}", "did you mean \"train_micro_batch_size_per_gpu\"", NULL);
    parse_fails("{\"zero_optimization\": {\"offload_optimizer\": {\"device\": \"cpu\", \"pin_memroy\": true}}}",
                "zero_optimization.offload_optimizer.pin_memroy", "did you mean \"pin_memory\"");
    /* did-you-mean distance: transpositions count once */
    CHECK(cfg_edit_distance("trian_batch_size", "train_batch_size") == 1);
    CHECK(cfg_edit_distance("stage", "stage") == 0 && cfg_edit_distance("", "abc") == 3);
    CHECK(cfg_edit_distance("Stage", "stage") == 0);
}

/* ---- positions, "auto", types -------------------------------------------------------------------- */

static void test_positions_and_values(void) {
    /* a multi-byte character before the key: columns count characters */
    parse_fails("{\"tensorboard\": {\"job_name\": \"\xc3\xa9t\xc3\xa9\", \"enabled\": 1}}",
                "<string>:1:48: tensorboard.enabled: expected true or false, got an integer", NULL);
    parse_fails("{\n\"zero_optimization\": {\n    \"stage\": 2,\n    \"reduce_bucket_size\": 0\n  }\n}",
                "<string>:4:27: zero_optimization.reduce_bucket_size: must be > 0, got 0", NULL);
    /* escaped key names are matched after decoding */
    dsc_config_t *cfg = parse_ok("{\"\\u0074rain_batch_size\": 4, \"fp16\": {\"en\\u0061bled\": true}}");
    if (cfg) {
        CHECK(cfg->train_batch_size.value == 4 && cfg->fp16.enabled);
        dsc_config_source_t s;
        CHECK(dsc_config_get(cfg, "fp16.enabled", NULL, 0, &s) == DSC_OK && s.line == 1 && s.col == 55);
        dsc_config_free(cfg);
    }
    parse_fails("{\"fp16\": {\"en\\u0061bled\": \"yes\"}}", "<string>:1:27: fp16.enabled: expected true or false", NULL);
    /* integers: 5e8 is fine, 1.5 is not */
    cfg = parse_ok("{\"zero_optimization\": {\"reduce_bucket_size\": 5e8, \"allgather_bucket_size\": 2.0E8}}");
    if (cfg) {
        CHECK(cfg->zero_optimization.reduce_bucket_size == 500000000);
        CHECK(cfg->zero_optimization.allgather_bucket_size == 200000000);
        dsc_config_free(cfg);
    }
    parse_fails("{\"train_batch_size\": 1.5}", "train_batch_size: expected an integer, got 1.5", NULL);
    parse_fails("{\"fp16\": {\"initial_scale_power\": 1e300}}", "fp16.initial_scale_power", "64-bit");
    parse_fails("{\"gradient_clipping\": \"1.0\"}", "gradient_clipping: expected a number, got a string", NULL);
    parse_fails("{\"gradient_clipping\": -1}", "gradient_clipping: must be >= 0, got -1", NULL);
    parse_fails("{\"gradient_clipping\": true}", "expected a number, got a boolean", NULL);
    /* "auto" everywhere */
    parse_fails("{\"train_micro_batch_size_per_gpu\": \"auto\"}", "train_micro_batch_size_per_gpu: \"auto\" is a placeholder",
                "HF Accelerate");
    parse_fails("{\"zero_optimization\": {\"reduce_bucket_size\": \"auto\"}}", "DeepSpeed's default: 500000000", NULL);
    parse_fails("{\"optimizer\": {\"type\": \"AdamW\", \"params\": {\"betas\": \"auto\"}}}",
                "optimizer.params.betas: \"auto\"", "[0.9, 0.999]");
    parse_fails("{\"scheduler\": {\"type\": \"WarmupLR\", \"params\": {\"warmup_max_lr\": \"auto\"}}}",
                "scheduler.params.warmup_max_lr", "placeholder");
    parse_fails("{\"fp16\": {\"enabled\": \"auto\"}}", "fp16.enabled: \"auto\"", NULL);
    parse_fails("{\"optimizer\": \"auto\"}", "<string>:1:15: optimizer: \"auto\"", "placeholder");
    /* jansson's parse errors keep its line and column */
    parse_fails("{\n  \"a\": 1,\n  \"b\" 2\n}", "<string>:3:", "invalid JSON");
    parse_fails("", "<string>:1:", "invalid JSON");
    parse_fails("{\"a\": 1} x", "invalid JSON", NULL);
    parse_fails("{\n  \"fp16\": {\"enabled\": true},\n  \"fp16\": {}\n}", "<string>:3:3: fp16: duplicate key",
                "first given at line 2, column 3");
    parse_fails("[]", "<string>:1:1: the config must be a JSON object", NULL);
    parse_fails("{\"steps_per_print\": 0}", "steps_per_print: must be > 0, got 0", NULL);
    /* a UTF-8 byte order mark is accepted */
    cfg = parse_ok("\xEF\xBB\xBF{\"train_batch_size\": 2}");
    if (cfg) {
        CHECK(cfg->train_batch_size.value == 2);
        dsc_config_free(cfg);
    }
    /* buffers need not be NUL-terminated; parse_string labels the source */
    char buf[] = {'{', '}', 'x'};
    CHECK(dsc_config_parse_buffer(buf, 2, "mem", NULL, &cfg, NULL, 0) == DSC_OK);
    if (cfg) {
        CHECK(strcmp(cfg->source_name, "mem") == 0);
        dsc_config_free(cfg);
    }
    char err[256];
    CHECK(dsc_config_parse_file("tests/configs/no_such_file.json", NULL, &cfg, err, sizeof err) == DSC_ERR_IO);
    CHECK(cfg == NULL && strstr(err, "no_such_file.json: cannot open"));
    CHECK(dsc_config_parse_string(NULL, NULL, &cfg, err, sizeof err) == DSC_ERR_INVALID);
    CHECK(dsc_config_parse_string("{}", NULL, NULL, err, sizeof err) == DSC_ERR_INVALID);
    /* a tiny error buffer is fine */
    CHECK(dsc_config_parse_string("{\"x\": 1}", NULL, &cfg, err, 8) == DSC_ERR_CONFIG && strlen(err) == 7);
    dsc_config_free(NULL);
}

/* ---- dsc_config_check_supported ---------------------------------------------------------------- */

static void test_supported(void) {
    const char *text = "{\n"
                       "  \"train_batch_size\": 8,\n"
                       "  \"fp16\": {\"enabled\": false},\n"
                       "  \"zero_optimization\": {\n"
                       "    \"stage\": 2,\n"
                       "    \"overlap_comm\": false,\n"
                       "    \"offload_optimizer\": {\"device\": \"cpu\"}\n"
                       "  },\n"
                       "  \"optimizer\": {\"type\": \"AdamW\", \"params\": {\"lr\": 0.001, \"weight_decay\": 0.1}}\n"
                       "}";
    dsc_config_t *cfg = parse_ok(text);
    if (!cfg) return;
    char err[2048];
    static const char *const full[] = {"train_batch_size", "zero_optimization.stage=1", "zero_optimization.stage=2",
                                       "zero_optimization.offload_optimizer.*", "optimizer.type=adamw",
                                       "optimizer.params.weight_decay", NULL};
    dsc_config_support_t sup = {full, "the test engine"};
    /* fp16.enabled false and overlap_comm false equal their defaults; lr 0.001 equals FusedAdam's... */
    CHECK_MSG(dsc_config_check_supported(cfg, &sup, err, sizeof err) == DSC_OK, "%s", err);
    static const char *const stage1[] = {"train_batch_size", "zero_optimization.stage=0", "zero_optimization.stage=1",
                                         "optimizer.*", NULL};
    sup.keys = stage1;
    CHECK(dsc_config_check_supported(cfg, &sup, err, sizeof err) == DSC_ERR_UNSUPPORTED);
    CHECK_MSG(strstr(err, "<string>:5:14: zero_optimization.stage: 2 is not supported yet by the test engine (accepted: 0, 1)") &&
                  strstr(err, "and 1 more unsupported key: zero_optimization.offload_optimizer.device"),
              "%s", err);
    sup.keys = NULL; /* nothing implemented: every non-default key is reported */
    CHECK(dsc_config_check_supported(cfg, &sup, err, sizeof err) == DSC_ERR_UNSUPPORTED);
    CHECK_MSG(strstr(err, "<string>:2:23: train_batch_size is not supported yet by the test engine (set to 8; only the "
                          "default is accepted)") &&
                  strstr(err, "optimizer.type") && strstr(err, "optimizer.params.weight_decay") &&
                  !strstr(err, "optimizer.params.lr") && !strstr(err, "fp16.enabled"),
              "%s", err);
    dsc_config_free(cfg);
    /* a value derived from a deprecated key points at that key */
    cfg = parse_ok("{\"zero_optimization\": {\"stage\": 1,\n \"cpu_offload\": true}}");
    if (cfg) {
        static const char *const k[] = {"zero_optimization.stage", NULL};
        sup.keys = k;
        CHECK(dsc_config_check_supported(cfg, &sup, err, sizeof err) == DSC_ERR_UNSUPPORTED);
        CHECK_MSG(strstr(err, "<string>:2:17: zero_optimization.offload_optimizer.device is not supported yet") &&
                      strstr(err, "from deprecated zero_optimization.cpu_offload"),
                  "%s", err);
        dsc_config_free(cfg);
    }
    /* sections kept as JSON are unsupported when in use, fine when switched off */
    cfg = parse_ok("{\"elasticity\": {\"enabled\": false, \"max_train_batch_size\": 100}, \"pipeline\": {\"stages\": 2}}");
    if (cfg) {
        sup.keys = NULL;
        CHECK(dsc_config_check_supported(cfg, &sup, err, sizeof err) == DSC_ERR_UNSUPPORTED);
        CHECK_MSG(strstr(err, "pipeline is not supported yet") && !strstr(err, "elasticity"), "%s", err);
        CHECK(!cfg->elasticity.in_use && cfg->elasticity.present && cfg->pipeline.in_use);
        char *out = NULL;
        size_t len = 0;
        FILE *mem = open_memstream(&out, &len);
        CHECK(mem && dsc_config_print(cfg, mem) == DSC_OK);
        if (mem) fclose(mem);
        CHECK(out && strstr(out, "\"pipeline\": {\"stages\":2},") && strstr(out, "\"datastates\": null "));
        free(out);
        dsc_config_free(cfg);
    }
    /* elastic batch sizing is refused by the batch resolution */
    cfg = parse_ok("{\"train_batch_size\": 8, \"elasticity\": {\"enabled\": true}}");
    if (cfg) {
        CHECK(dsc_config_resolve_batch(cfg, 1, err, sizeof err) == DSC_ERR_UNSUPPORTED && strstr(err, "elasticity"));
        dsc_config_free(cfg);
    }
    /* scheduler params are compared with the class defaults */
    cfg = parse_ok("{\"scheduler\": {\"type\": \"WarmupLR\", \"params\": {\"warmup_num_steps\": 1000, \"warmup_type\": \"linear\"}}}");
    if (cfg) {
        static const char *const k[] = {"scheduler.type=WarmupLR", NULL};
        sup.keys = k;
        CHECK(dsc_config_check_supported(cfg, &sup, err, sizeof err) == DSC_ERR_UNSUPPORTED);
        CHECK_MSG(strstr(err, "scheduler.params.warmup_type is not supported yet") && !strstr(err, "warmup_num_steps"),
                  "%s", err);
        dsc_config_free(cfg);
    }
}

/* ---- the position scanner survives any bytes ---------------------------------------------------- */

static void test_pos_scanner(void) {
    cfg_arena_t a = {0};
    const char *doc = "{\"a\": [1, {\"b\": null}], \"c\": \"x\\\"y\", \"d\": {\"e\": true}}";
    cfg_pos_scan_t s = cfg_pos_scan(&a, doc, strlen(doc), false);
    CHECK(s.complete && s.root && s.root->n_children == 3);
    const cfg_pos_t *arr = cfg_pos_member(s.root, "a", NULL);
    const cfg_pos_t *b = cfg_pos_member(cfg_pos_element(arr, 1), "b", NULL);
    CHECK(b && b->col == 17 && b->key_col == 12);
    char path[128];
    cfg_pos_path(b, path, sizeof path);
    CHECK_MSG(strcmp(path, "a[1].b") == 0, "%s", path);
    cfg_pos_scan_t d = cfg_pos_scan(&a, "{\"x\": {\"k\": 1, \"k\": 2}}", 24, true);
    CHECK(d.dup && d.dup_first && d.dup->key_col == 16 && d.dup_first->key_col == 8);
    /* truncated and random input: partial trees, no reads past the end (ASan) */
    uint64_t x = 88172645463325252ull;
    char buf[256];
    for (int iter = 0; iter < 20000; iter++) {
        size_t n = (size_t)(iter % 200);
        for (size_t i = 0; i < n; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            static const char alphabet[] = "{}[]\",:\\u0123456789abcdeftrunlsE.-+ \n\t\x80\xc3\xa9";
            buf[i] = (iter & 1) ? (char)(x & 0xff) : alphabet[x % (sizeof alphabet - 1)];
        }
        char *heap = malloc(n ? n : 1);
        memcpy(heap, buf, n);
        cfg_pos_scan_t r = cfg_pos_scan(&a, heap, n, iter & 2);
        (void)r;
        free(heap);
    }
    size_t deep = 5000;
    char *nest = malloc(deep * 2);
    for (size_t i = 0; i < deep; i++) nest[i] = '[';
    for (size_t i = 0; i < deep; i++) nest[deep + i] = ']';
    cfg_pos_scan_t r = cfg_pos_scan(&a, nest, deep * 2, false);
    CHECK(!r.complete);
    free(nest);
    cfg_arena_free(&a);
    CHECK(1);
}

int main(void) {
    run_dir("tests/configs/valid", ".expect", run_valid);
    run_dir("tests/configs/invalid", ".expected", run_invalid);
    test_batch_table();
    test_defaults();
    test_aliases();
    test_unknown_keys();
    test_positions_and_values();
    test_supported();
    test_pos_scanner();
    printf("config files: %d valid (%d expectations), %d invalid (%d substrings)\n", n_valid_files, n_valid_checks,
           n_invalid_files, n_invalid_checks);
    return check_finish("test_config");
}

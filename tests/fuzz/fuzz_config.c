/* libFuzzer target for the DeepSpeed config parser. The first byte picks the options:
 * bits 0-4 the world size (0 exercises the invalid-world-size path), bit 5 unknown top-level
 * keys as warnings, bit 6 unknown plain-section keys as warnings. The rest is the config
 * text. Every accepted config is resolved, printed, read back key by key and checked
 * against a support list, and everything is freed (LeakSanitizer checks). The position
 * scanner also runs on the raw bytes, which jansson has not validated. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dsc/config.h"
#include "config/config_internal.h"

static void quiet(dsc_log_level_t level, const char *message, void *user) {
    (void)level;
    (void)message;
    (*(int *)user)++;
}

static const char *const paths[] = {
    "train_batch_size", "gradient_accumulation_steps", "zero_optimization.stage", "zero_optimization.overlap_comm",
    "zero_optimization.prefetch_bucket_size", "bfloat16.enabled", "fp16.loss_scale", "optimizer.type",
    "optimizer.params.lr", "optimizer.params.betas", "optimizer.implementation", "scheduler.type",
    "scheduler.params.warmup_num_steps", "comms_logger.prof_ops", "pipeline", "checkpoint.writer.type",
    "no.such.key", "", ".", "optimizer.", "fp16..enabled", NULL};

static const char *const support_keys[] = {
    "train_batch_size", "train_micro_batch_size_per_gpu", "gradient_accumulation_steps", "zero_optimization.stage=1",
    "zero_optimization.stage=2", "fp16.*", "optimizer.type=adamw", "optimizer.params.lr", "scheduler.params.*",
    "bf16.enabled=true", ".*", "=", "", NULL};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    uint8_t flags = data[0];
    const char *text = (const char *)data + 1;
    size_t len = size - 1;

    /* the scanner on arbitrary bytes, with and without duplicate detection */
    cfg_arena_t arena = {0};
    cfg_pos_scan_t scan = cfg_pos_scan(&arena, text, len, (flags & 0x80) != 0);
    if (scan.dup) {
        char path[CFG_PATH_MAX];
        cfg_pos_path(scan.dup, path, sizeof path);
    }
    if (scan.root) (void)cfg_pos_member(scan.root, "zero_optimization", NULL);
    cfg_arena_free(&arena);

    int warnings = 0;
    dsc_config_parse_options_t opts = DSC_CONFIG_PARSE_OPTIONS_INIT;
    opts.unknown_top_level_keys_warn = (flags & 0x20) != 0;
    opts.unknown_section_keys_warn = (flags & 0x40) != 0;
    opts.log_fn = quiet;
    opts.log_user = &warnings;
    dsc_config_t *cfg = NULL;
    char err[1024];
    dsc_status_t st = dsc_config_parse_buffer(text, len, "fuzz.json", &opts, &cfg, err, sizeof err);
    if (st != DSC_OK) {
        if (cfg) abort(); /* a failed parse returns no config */
        if (!memchr(err, '\0', sizeof err)) abort();
        return 0;
    }
    if ((size_t)warnings != cfg->n_warnings) abort();
    int64_t world_size = flags & 0x1F;
    st = dsc_config_resolve_batch(cfg, world_size, err, sizeof err);
    if (st == DSC_OK) {
        const dsc_config_t *c = cfg;
        if (c->train_batch_size.value !=
            c->train_micro_batch_size_per_gpu.value * c->gradient_accumulation_steps.value * c->data_parallel_size)
            abort(); /* the invariant DeepSpeed asserts */
        (void)dsc_config_resolve_batch(cfg, world_size + 1, err, sizeof err);
    }
    FILE *sink = fopen("/dev/null", "w");
    if (sink) {
        if (dsc_config_print(cfg, sink) != DSC_OK) abort();
        fclose(sink);
    }
    char value[512];
    dsc_config_source_t src;
    for (size_t i = 0; paths[i]; i++) {
        if (dsc_config_get(cfg, paths[i], value, sizeof value, &src) == DSC_OK) {
            char where[512];
            dsc_config_source_format(cfg, &src, where, sizeof where);
        }
    }
    dsc_config_support_t support = {support_keys, "fuzz"};
    (void)dsc_config_check_supported(cfg, &support, err, sizeof err);
    dsc_config_support_t none = {NULL, NULL};
    (void)dsc_config_check_supported(cfg, &none, err, 16);
    dsc_config_free(cfg);
    return 0;
}

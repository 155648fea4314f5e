/* `dsc config check FILE [--world-size N] [--allow-unknown]`: validates a DeepSpeed config,
 * resolves the batch sizes for the world size and prints the effective config with the
 * source of every value. Exit status: 0 valid, 1 invalid (the error on stderr), 2 usage. */
#define _GNU_SOURCE /* memmem */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "trainer_config.h"
#include "dsc/config.h"
#include "dsc/engine.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: dsc config check FILE [--world-size N] [--allow-unknown] [dsc train's flags]\n"
            "\n"
            "Validates a DeepSpeed JSON config the way dsc reads it (DeepSpeed %s semantics, stricter:\n"
            "unknown keys, \"auto\" and out-of-range values are errors), derives the missing batch size\n"
            "for the world size, and prints the effective config with the source of each value\n"
            "(file:line:col, default, or derived).\n"
            "\n"
            "options:\n"
            "  --world-size N   number of ranks (default: $WORLD_SIZE, $OMPI_COMM_WORLD_SIZE, else 1)\n"
            "  --allow-unknown  unknown top-level keys (and unknown keys in sections DeepSpeed reads as\n"
            "                   plain dicts) are warnings instead of errors, as in DeepSpeed\n"
            "  --embd N, --model NAME  the model's width, for \"auto\" ZeRO bucket sizes (as dsc train;\n"
            "                   default 128)\n"
            "  -h, --help       this text\n"
            "\n"
            "dsc train's flags, each overriding its key as in dsc train (source \"command line\"); with\n"
            "them, or with \"auto\" values in FILE, the check shows what dsc train would run: \"auto\"\n"
            "filled in (source \"auto: ...\") and AdamW when FILE has no optimizer:\n",
            DSC_CONFIG_DEEPSPEED_VERSION);
    dsc_trainer_flags_usage(out);
    fprintf(out, "\n"
            "exit status: 0 valid, 1 invalid (the error is printed on stderr), 2 usage error\n"
            "\n"
            "example:\n"
            "  dsc config check ds_config.json --world-size 8\n"
            "  # a config with \"train_batch_size\": 256 and \"train_micro_batch_size_per_gpu\": 8 prints\n"
            "  #   \"gradient_accumulation_steps\": 4,  // derived: (train_batch_size // ...) // world_size = (256 // 8) // 8\n"
            "  dsc config check ds_auto.json --world-size 4 --lr 3e-4 --micro-batch 8 --bf16\n");
}

static void warn_to_stderr(dsc_log_level_t level, const char *message, void *user) {
    (void)level;
    (void)user;
    fprintf(stderr, "warning: %s\n", message);
}

/* Prints each line of `text` as "error: <line>", except lines containing `skip`; returns how
 * many it printed. */
static int print_errors(const char *text, const char *skip) {
    int n = 0;
    for (const char *s = text; *s;) {
        size_t len = strcspn(s, "\n");
        if (!skip || !memmem(s, len, skip, strlen(skip))) {
            fprintf(stderr, "error: %.*s\n", (int)len, s);
            n++;
        }
        s += len + (s[len] == '\n');
    }
    return n;
}

static bool parse_size(const char *s, long long *out) {
    if (!s || !*s) return false;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v <= 0) return false;
    *out = v;
    return true;
}

int dsc_cmd_config(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "check") != 0) {
        fprintf(stderr, "dsc config: unknown subcommand '%s'\n\n", argv[1]);
        usage(stderr);
        return 2;
    }
    const char *file = NULL;
    long long world_size = 0;
    bool allow_unknown = false;
    dsc_trainer_flags_t tf;
    dsc_trainer_flags_init(&tf);
    tf.hidden = 128; /* dsc train's default model */
    tf.hidden_origin = "dsc train's default width; --embd N for another";
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        int t = dsc_trainer_flag(argc, argv, &i, &tf, "dsc config check");
        if (t == 2) return 2;
        if (t == 1) continue;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--embd") || !strcmp(a, "--model")) {
            static const struct { const char *name; int embd; } presets[] = {
                {"gpt2-tiny", 64}, {"d6", 384}, {"d12", 768}, {"d24", 1024}, {"d36", 1280}, {"d48", 1600}};
            const char *v = i + 1 < argc ? argv[++i] : "";
            long long n = 0;
            for (size_t m = 0; a[2] == 'm' && m < sizeof presets / sizeof presets[0]; m++)
                if (!strcmp(v, presets[m].name)) n = presets[m].embd;
            if ((a[2] == 'e' && !parse_size(v, &n)) || n <= 0 || n > 1000000) {
                fprintf(stderr, "dsc config check: invalid value '%s' for %s\n", v, a);
                return 2;
            }
            tf.hidden = (int)n;
            tf.hidden_origin = a[2] == 'e' ? "--embd" : "--model";
        } else if (!strcmp(a, "--allow-unknown")) {
            allow_unknown = true;
        } else if (!strcmp(a, "--world-size") || !strncmp(a, "--world-size=", 13)) {
            const char *v = a[12] == '=' ? a + 13 : (i + 1 < argc ? argv[++i] : NULL);
            if (!parse_size(v, &world_size)) {
                fprintf(stderr, "dsc config check: --world-size needs a positive integer, got '%s'\n", v ? v : "");
                return 2;
            }
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "dsc config check: unknown option '%s'\n\n", a);
            usage(stderr);
            return 2;
        } else if (!file) {
            file = a;
        } else {
            fprintf(stderr, "dsc config check: one FILE only (got '%s' and '%s')\n", file, a);
            return 2;
        }
    }
    if (!file) {
        fprintf(stderr, "dsc config check: missing FILE\n\n");
        usage(stderr);
        return 2;
    }
    const char *origin = "--world-size";
    if (!world_size) {
        const char *env = getenv("WORLD_SIZE");
        origin = "$WORLD_SIZE";
        if (!parse_size(env, &world_size)) {
            env = getenv("OMPI_COMM_WORLD_SIZE");
            origin = "$OMPI_COMM_WORLD_SIZE";
            if (!parse_size(env, &world_size)) {
                world_size = 1;
                origin = "assumed 1: no --world-size, $WORLD_SIZE or $OMPI_COMM_WORLD_SIZE";
            }
        }
    }
    /* dsc train's part: "auto" filled in, flags over keys, AdamW when there is none (only when
     * flags or "auto" say the file is meant for dsc train). Every unresolved "auto" at once. */
    dsc_trainer_overrides_t *ov = calloc(1, sizeof *ov);
    char err[4096];
    if (!ov) {
        fprintf(stderr, "dsc config check: out of memory\n");
        return 1;
    }
    tf.world_size = world_size;
    tf.keep_optimizer_absent = true;
    bool resolved = dsc_trainer_resolve(file, NULL, &tf, ov, err, sizeof err);
    if (resolved && (tf.any || ov->n_auto)) {
        tf.keep_optimizer_absent = false;
        resolved = dsc_trainer_resolve(file, NULL, &tf, ov, err, sizeof err);
    }
    /* The "auto" values no rule fills in; the parse below still reports every other problem. */
    int n_errors = 0;
    if (!resolved) n_errors += print_errors(err, NULL);
    for (size_t i = 0; i < ov->n; i++) printf("// %s = %s (%s)\n", ov->path[i], ov->json[i], ov->note[i]);
    if (ov->summary[0]) printf("// dsc train: %s\n", ov->summary);
    if (ov->warning[0]) printf("// dsc train: warning: %s\n", ov->warning);
    dsc_config_parse_options_t opts = DSC_CONFIG_PARSE_OPTIONS_INIT;
    opts.overrides = ov->items;
    opts.n_overrides = ov->n;
    opts.unknown_top_level_keys_warn = allow_unknown;
    opts.unknown_section_keys_warn = allow_unknown;
    opts.log_fn = warn_to_stderr;
    opts.all_errors = true; /* every problem of the file at once */
    dsc_config_t *cfg = NULL;
    dsc_status_t st = dsc_config_parse_file(file, &opts, &cfg, err, sizeof err);
    if (st == DSC_OK) st = dsc_config_resolve_batch_from(cfg, world_size, origin, err, sizeof err);
    if (st != DSC_OK || n_errors) {
        /* the unresolved "auto" values were reported above, with what would fill them */
        if (st != DSC_OK) n_errors += print_errors(err, resolved ? NULL : "\"auto\" is a placeholder");
        if (n_errors > 1) fprintf(stderr, "%d problems\n", n_errors);
        dsc_config_free(cfg);
        free(ov);
        return 1;
    }
    st = dsc_config_print(cfg, stdout);
    if (st != DSC_OK) {
        dsc_config_free(cfg);
        free(ov);
        fprintf(stderr, "dsc config check: cannot write the output\n");
        return 1;
    }
    /* Valid DeepSpeed, but would dsc's engine run it? Same check as dsc_initialize. */
    dsc_config_support_t support = {dsc_engine_supported_keys(), "the dsc engine"};
    st = dsc_config_check_supported(cfg, &support, err, sizeof err);
    dsc_config_free(cfg);
    free(ov);
    if (st != DSC_OK) {
        fprintf(stderr, "valid DeepSpeed config, but: %s\n", err);
        return 1;
    }
    return 0;
}

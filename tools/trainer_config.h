/* The trainer's view of a DeepSpeed config (tools/trainer_config.c), shared by `dsc train`
 * and `dsc config check`: the common knobs as flags (--lr, --micro-batch, ...), "auto"
 * values resolved from those flags, the model and the world size the way the Hugging Face
 * DeepSpeed integration resolves them, and AdamW plus a warmup-cosine schedule when the
 * config has no optimizer. The result is a list of dsc_config_override_t that the library
 * applies on top of the file (the library itself still refuses "auto"). */
#ifndef DSC_TOOLS_TRAINER_CONFIG_H
#define DSC_TOOLS_TRAINER_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "dsc/config.h"

/* dsc train's defaults for what the config leaves to the trainer (the built-in config's). */
#define DSC_TRAINER_DEFAULT_LR 0.002
#define DSC_TRAINER_DEFAULT_MICRO_BATCH 16
#define DSC_TRAINER_DEFAULT_STEPS 200
#define DSC_TRAINER_DEFAULT_CLIP 1.0

/* Flags; each 0 / NAN / false when not given. */
typedef struct {
    double lr, clip;
    int micro_batch, grad_accum, zero_stage, warmup; /* zero_stage: -1 not given */
    bool bf16, fp16;
    int steps;      /* --steps (0: the default, 200) */
    int hidden;     /* the model's width (hidden size), for the ZeRO bucket "auto" values */
    const char *hidden_origin; /* "--embd", "the model", ... */
    int64_t world_size;
    bool keep_optimizer_absent; /* true: no AdamW when the config has none (plain `dsc config check`) */
    bool any;                   /* set by dsc_trainer_flag: a trainer flag was given */
} dsc_trainer_flags_t;

void dsc_trainer_flags_init(dsc_trainer_flags_t *f);

/* If argv[*i] is one of the trainer flags, reads it (and its value, advancing *i) and
 * returns 1; 0 when it is not one; 2 after printing "<cmd>: ..." for a bad value. */
int dsc_trainer_flag(int argc, char **argv, int *i, dsc_trainer_flags_t *f, const char *cmd);

/* The help lines of those flags. */
void dsc_trainer_flags_usage(FILE *out);

enum { DSC_TRAINER_MAX_OVERRIDES = 48 };

typedef struct {
    dsc_config_override_t items[DSC_TRAINER_MAX_OVERRIDES];
    size_t n;
    char path[DSC_TRAINER_MAX_OVERRIDES][96];
    char json[DSC_TRAINER_MAX_OVERRIDES][160];
    char note[DSC_TRAINER_MAX_OVERRIDES][192];
    int n_auto;              /* how many "auto" values were resolved */
    bool supplied_optimizer; /* the config had no optimizer: AdamW (and a schedule) added */
    char summary[512];       /* one line saying what was supplied (empty when nothing) */
    char warning[512];       /* one line about a schedule shorter than --steps (empty: none) */
} dsc_trainer_overrides_t;

/* Reads the config (a file, or `json` text when path is NULL) and fills `out`. A config that
 * is not valid JSON yields no overrides (the library's parse then reports it). Returns false
 * with every problem in err (one per line: each "auto" no rule resolves) otherwise. */
bool dsc_trainer_resolve(const char *path, const char *json, const dsc_trainer_flags_t *f, dsc_trainer_overrides_t *out,
                         char *err, size_t errsz);

#endif

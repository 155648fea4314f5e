/* The trainer's view of a DeepSpeed config: flags for the common knobs, "auto" resolved as
 * the Hugging Face DeepSpeed integration resolves it (HfTrainerDeepSpeedConfig:
 * trainer_config_process and trainer_config_finalize), and an optimizer and schedule when
 * the config has none (the Trainer creates its own). See trainer_config.h. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "trainer_config.h"

void dsc_trainer_flags_init(dsc_trainer_flags_t *f) {
    memset(f, 0, sizeof *f);
    f->lr = NAN;
    f->clip = NAN;
    f->zero_stage = -1;
    f->world_size = 1;
}

void dsc_trainer_flags_usage(FILE *out) {
    fprintf(out,
            "  --lr X              peak learning rate: optimizer.params.lr (and the warmup peak of WarmupLR /\n"
            "                      WarmupDecayLR); default 0.002 when the config leaves it to dsc train\n"
            "  --micro-batch N     train_micro_batch_size_per_gpu (alias --batch-size; default 16)\n"
            "  --grad-accum N      gradient_accumulation_steps (default 1)\n"
            "  --bf16, --fp16      bf16.enabled / fp16.enabled (the other one is switched off)\n"
            "  --zero-stage N      zero_optimization.stage (0-3)\n"
            "  --warmup N          scheduler.params.warmup_num_steps (default 15%% of --steps)\n"
            "  --clip X            gradient_clipping (default 1.0 for \"auto\")\n"
            "  --steps N           optimizer steps (default 200); the built-in config's schedule and\n"
            "                      \"auto\" total_num_steps follow it\n"
            "                      Each flag overrides its config key; `dsc config check` takes the same\n"
            "                      flags and shows the source \"command line\". Values written \"auto\" in the\n"
            "                      config are filled from these flags, the model and the world size.\n");
}

static bool parse_long(const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = s ? strtol(s, &end, 10) : 0;
    if (!s || errno || end == s || *end || v < lo || v > hi) return false;
    *out = v;
    return true;
}

static bool parse_real(const char *s, double lo, double *out) {
    char *end;
    errno = 0;
    double v = s ? strtod(s, &end) : 0;
    if (!s || errno || end == s || *end || !isfinite(v) || v < lo) return false;
    *out = v;
    return true;
}

int dsc_trainer_flag(int argc, char **argv, int *i, dsc_trainer_flags_t *f, const char *cmd) {
    static const char *const valued[] = {"--lr", "--micro-batch", "--batch-size", "--grad-accum", "--zero-stage",
                                         "--warmup", "--clip", "--steps"};
    const char *arg = argv[*i];
    if (!strcmp(arg, "--bf16") || !strcmp(arg, "--fp16")) {
        bool bf = arg[2] == 'b';
        if ((bf && f->fp16) || (!bf && f->bf16)) {
            fprintf(stderr, "%s: --bf16 and --fp16 exclude each other\n", cmd);
            return 2;
        }
        if (bf) f->bf16 = true;
        else f->fp16 = true;
        f->any = true;
        return 1;
    }
    char name[32];
    const char *value = NULL;
    const char *eq = strchr(arg, '=');
    size_t n = eq ? (size_t)(eq - arg) : strlen(arg);
    if (n >= sizeof name) return 0;
    memcpy(name, arg, n);
    name[n] = '\0';
    bool known = false;
    for (size_t k = 0; k < sizeof valued / sizeof valued[0]; k++) known = known || !strcmp(name, valued[k]);
    if (!known) return 0;
    if (eq) value = eq + 1;
    else if (*i + 1 < argc) value = argv[++*i];
    else {
        fprintf(stderr, "%s: %s needs a value (%s --help)\n", cmd, name, cmd);
        return 2;
    }
    long v = 0;
    bool ok;
    if (!strcmp(name, "--lr")) ok = parse_real(value, 0, &f->lr) && f->lr > 0;
    else if (!strcmp(name, "--clip")) ok = parse_real(value, 0, &f->clip);
    else if (!strcmp(name, "--zero-stage")) ok = parse_long(value, 0, 3, &v), f->zero_stage = (int)v;
    else if (!strcmp(name, "--warmup")) ok = parse_long(value, 1, 1000000000, &v), f->warmup = (int)v;
    else if (!strcmp(name, "--steps")) ok = parse_long(value, 1, 100000000, &v), f->steps = (int)v;
    else if (!strcmp(name, "--grad-accum")) ok = parse_long(value, 1, 1000000, &v), f->grad_accum = (int)v;
    else ok = parse_long(value, 1, 100000000, &v), f->micro_batch = (int)v; /* --micro-batch, --batch-size */
    if (!ok) {
        fprintf(stderr, "%s: invalid value '%s' for %s\n", cmd, value, name);
        return 2;
    }
    f->any = true;
    return 1;
}

/* ---- overrides ---------------------------------------------------------------------------- */

static void set(dsc_trainer_overrides_t *o, const char *path, const char *json, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void set(dsc_trainer_overrides_t *o, const char *path, const char *json, const char *fmt, ...) {
    size_t k = 0;
    while (k < o->n && strcmp(o->path[k], path) != 0) k++; /* a later value for a path replaces it */
    if (k == DSC_TRAINER_MAX_OVERRIDES) return;
    if (k == o->n) o->n++;
    snprintf(o->path[k], sizeof o->path[k], "%s", path);
    snprintf(o->json[k], sizeof o->json[k], "%s", json);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(o->note[k], sizeof o->note[k], fmt, ap);
    va_end(ap);
    o->items[k] = (dsc_config_override_t){o->path[k], o->json[k], o->note[k]};
}

/* The shortest text that reads back to x (JSON). */
static const char *num(double x, char *buf, size_t n) {
    if (x == floor(x) && fabs(x) < 1e15) {
        snprintf(buf, n, "%.0f", x);
        return buf;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, n, "%.*g", prec, x);
        if (strtod(buf, NULL) == x) break;
    }
    return buf;
}

static bool is_auto(const json_t *v) { return json_is_string(v) && !strcasecmp(json_string_value(v), "auto"); }

/* The value at a dotted path (no arrays), or NULL. */
static json_t *at(json_t *root, const char *path) {
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    json_t *v = root;
    for (char *seg = strtok(buf, "."); seg && v; seg = strtok(NULL, ".")) v = json_is_object(v) ? json_object_get(v, seg) : NULL;
    return v;
}

static bool number_at(json_t *root, const char *path, double *out) {
    json_t *v = at(root, path);
    if (!json_is_number(v)) return false;
    *out = json_number_value(v);
    return true;
}

/* Every "auto" in the tree, by dotted path (array elements as [i]). */
typedef struct {
    char path[32][160];
    int n, dropped;
} auto_list_t;

static void find_autos(json_t *v, const char *base, auto_list_t *l) {
    if (is_auto(v)) {
        if (l->n < 32) snprintf(l->path[l->n++], sizeof l->path[0], "%s", base);
        else l->dropped++;
        return;
    }
    char p[160];
    if (json_is_object(v)) {
        const char *k;
        json_t *c;
        json_object_foreach(v, k, c) {
            snprintf(p, sizeof p, "%s%s%s", base, *base ? "." : "", k);
            find_autos(c, p, l);
        }
    } else if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++) {
            snprintf(p, sizeof p, "%s[%zu]", base, i);
            find_autos(json_array_get(v, i), p, l);
        }
    }
}

static bool present(json_t *root, const char *key) {
    json_t *v = json_object_get(root, key);
    return v && !json_is_null(v);
}

bool dsc_trainer_resolve(const char *path, const char *json, const dsc_trainer_flags_t *f, dsc_trainer_overrides_t *o,
                         char *err, size_t errsz) {
    memset(o, 0, sizeof *o);
    if (err && errsz) err[0] = '\0';
    json_error_t je;
    json_t *root = path ? json_load_file(path, JSON_DECODE_ANY, &je) : json_loads(json, JSON_DECODE_ANY, &je);
    if (!json_is_object(root)) { /* not JSON, or not an object: the library's parse says why */
        json_decref(root);
        return true;
    }
    char b[64];
    const int steps = f->steps ? f->steps : DSC_TRAINER_DEFAULT_STEPS;
    const int warmup = f->warmup ? f->warmup : (steps * 3 / 20 > 0 ? steps * 3 / 20 : 1);
    const char *warmup_why = f->warmup ? "--warmup" : "dsc train default: 15% of --steps";
    /* The optimizer's lr as the config will have it: --lr, a number in the file, else ours. */
    double lr = DSC_TRAINER_DEFAULT_LR, file_lr;
    const char *lr_why = "dsc train default";
    if (!isnan(f->lr)) lr = f->lr, lr_why = "--lr";
    else if (number_at(root, "optimizer.params.lr", &file_lr)) lr = file_lr, lr_why = "optimizer.params.lr";
    double d;
    int micro = DSC_TRAINER_DEFAULT_MICRO_BATCH, gas = 1;
    if (f->micro_batch) micro = f->micro_batch;
    else if (number_at(root, "train_micro_batch_size_per_gpu", &d)) micro = (int)d;
    if (f->grad_accum) gas = f->grad_accum;
    else if (number_at(root, "gradient_accumulation_steps", &d)) gas = (int)d;
    const long long h = f->hidden > 0 ? f->hidden : 0;

    /* "auto", key by key (HfTrainerDeepSpeedConfig). */
    auto_list_t autos = {0};
    find_autos(root, "", &autos);
    size_t used = 0;
    for (int i = 0; i < autos.n; i++) {
        const char *p = autos.path[i];
        bool done = true;
        if (!strcmp(p, "train_micro_batch_size_per_gpu"))
            set(o, p, num(micro, b, sizeof b), "auto: %s", f->micro_batch ? "--micro-batch" : "dsc train default");
        else if (!strcmp(p, "gradient_accumulation_steps"))
            set(o, p, num(gas, b, sizeof b), "auto: %s", f->grad_accum ? "--grad-accum" : "dsc train default");
        else if (!strcmp(p, "train_batch_size"))
            set(o, p, num((double)f->world_size * micro * gas, b, sizeof b),
                "auto: world size %lld x micro batch %d x accumulation %d", (long long)f->world_size, micro, gas);
        else if (!strcmp(p, "gradient_clipping"))
            set(o, p, num(isnan(f->clip) ? DSC_TRAINER_DEFAULT_CLIP : f->clip, b, sizeof b), "auto: %s",
                isnan(f->clip) ? "dsc train default" : "--clip");
        else if (!strcmp(p, "optimizer.params.lr"))
            set(o, p, num(lr, b, sizeof b), "auto: %s", isnan(f->lr) ? "dsc train default" : "--lr");
        else if (!strcmp(p, "optimizer.params.betas"))
            set(o, p, "[0.9, 0.999]", "auto: dsc train default (Adam's)");
        else if (!strcmp(p, "optimizer.params.eps"))
            set(o, p, "1e-08", "auto: dsc train default (Adam's)");
        else if (!strcmp(p, "optimizer.params.weight_decay"))
            set(o, p, "0.0", "auto: dsc train default");
        else if (!strcmp(p, "scheduler.params.warmup_min_lr"))
            set(o, p, "0", "auto: dsc train default");
        else if (!strcmp(p, "scheduler.params.warmup_max_lr"))
            set(o, p, num(lr, b, sizeof b), "auto: the optimizer's lr (%s)", lr_why);
        else if (!strcmp(p, "scheduler.params.warmup_num_steps"))
            set(o, p, num(warmup, b, sizeof b), "auto: %s", warmup_why);
        else if (!strcmp(p, "scheduler.params.total_num_steps"))
            set(o, p, num(steps, b, sizeof b), "auto: %s", f->steps ? "--steps" : "dsc train default steps");
        else if (!strcmp(p, "fp16.enabled"))
            set(o, p, f->fp16 ? "true" : "false", "auto: %s", f->fp16 ? "--fp16" : "no --fp16");
        else if (!strcmp(p, "bf16.enabled") || !strcmp(p, "bfloat16.enabled"))
            set(o, p, f->bf16 ? "true" : "false", "auto: %s", f->bf16 ? "--bf16" : "no --bf16");
        else if (!strcmp(p, "zero_optimization.stage") && f->zero_stage >= 0)
            set(o, p, num(f->zero_stage, b, sizeof b), "auto: --zero-stage");
        else if (h && !strcmp(p, "zero_optimization.reduce_bucket_size"))
            set(o, p, num((double)(h * h), b, sizeof b), "auto: hidden x hidden = %lld x %lld (%s)", h, h, f->hidden_origin);
        else if (h && (!strcmp(p, "zero_optimization.stage3_prefetch_bucket_size") ||
                       !strcmp(p, "zero_optimization.prefetch_bucket_size")))
            set(o, p, num((double)(long long)(0.9 * (double)(h * h)), b, sizeof b),
                "auto: 0.9 x hidden x hidden = 0.9 x %lld x %lld (%s)", h, h, f->hidden_origin);
        else if (h && (!strcmp(p, "zero_optimization.stage3_param_persistence_threshold") ||
                       !strcmp(p, "zero_optimization.param_persistence_threshold")))
            set(o, p, num((double)(10 * h), b, sizeof b), "auto: 10 x hidden = 10 x %lld (%s)", h, f->hidden_origin);
        else done = false;
        if (done) {
            o->n_auto++;
            continue;
        }
        if (err && used < errsz)
            used += (size_t)snprintf(err + used, errsz - used, "%s%s: %s: \"auto\" has no value dsc train can fill in%s",
                                     used ? "\n" : "", path ? path : "<built-in config>", p,
                                     !strcmp(p, "zero_optimization.stage") ? ": pass --zero-stage N or write 0-3"
                                     : !h && strstr(p, "zero_optimization.") ? ": it needs the model's width"
                                                                          : ": write the value");
    }
    if (autos.dropped && err && used < errsz)
        used += (size_t)snprintf(err + used, errsz - used, "\n... and %d more \"auto\" values", autos.dropped);
    if (used) {
        json_decref(root);
        return false;
    }

    /* No optimizer: AdamW from the flags, as the Trainer creates one; and its schedule. */
    const bool has_opt = present(root, "optimizer"), has_sched = present(root, "scheduler");
    if (!has_opt && !f->keep_optimizer_absent) {
        o->supplied_optimizer = true;
        const char *why = "dsc train: no optimizer in the config";
        set(o, "optimizer.type", "\"AdamW\"", "%s", why);
        set(o, "optimizer.params.lr", num(lr, b, sizeof b), "%s", isnan(f->lr) ? why : "command line: --lr");
        set(o, "optimizer.params.betas", "[0.9, 0.99]", "%s", why);
        set(o, "optimizer.params.weight_decay", "0.01", "%s", why);
        if (!has_sched) {
            set(o, "scheduler.type", "\"WarmupCosineLR\"", "dsc train: no scheduler in the config");
            set(o, "scheduler.params.total_num_steps", num(steps, b, sizeof b), "%s",
                f->steps ? "command line: --steps" : "dsc train default: 200 steps");
            set(o, "scheduler.params.warmup_num_steps", num(warmup, b, sizeof b), "%s",
                f->warmup ? "command line: --warmup" : warmup_why);
            set(o, "scheduler.params.warmup_type", "\"linear\"", "dsc train: no scheduler in the config");
        }
        if (has_sched)
            snprintf(o->summary, sizeof o->summary,
                     "no optimizer in the config: AdamW (lr %s, betas 0.9/0.99, weight decay 0.01) with the config's "
                     "scheduler", num(lr, b, sizeof b));
        else
            snprintf(o->summary, sizeof o->summary,
                     "no optimizer in the config: AdamW (lr %s, betas 0.9/0.99, weight decay 0.01), linear warmup %d "
                     "steps, cosine decay to step %d", num(lr, b, sizeof b), warmup, steps);
    }

    /* Flags: each overrides its key (where "auto" did not already take it). */
    json_t *sched_type = at(root, "scheduler.type");
    const char *stype = json_is_string(sched_type) ? json_string_value(sched_type) : "";
    if (!isnan(f->lr) && has_opt && !is_auto(at(root, "optimizer.params.lr")))
        set(o, "optimizer.params.lr", num(f->lr, b, sizeof b), "command line: --lr");
    if (!isnan(f->lr) && (!strcmp(stype, "WarmupLR") || !strcmp(stype, "WarmupDecayLR")) &&
        !is_auto(at(root, "scheduler.params.warmup_max_lr")))
        set(o, "scheduler.params.warmup_max_lr", num(f->lr, b, sizeof b), "command line: --lr");
    if (f->micro_batch && !is_auto(at(root, "train_micro_batch_size_per_gpu")))
        set(o, "train_micro_batch_size_per_gpu", num(f->micro_batch, b, sizeof b), "command line: --micro-batch");
    if (f->grad_accum && !is_auto(at(root, "gradient_accumulation_steps")))
        set(o, "gradient_accumulation_steps", num(f->grad_accum, b, sizeof b), "command line: --grad-accum");
    /* A train_batch_size number stays the global batch (the library derives the accumulation)
     * unless the accumulation is fixed too, by --grad-accum or the file: then it is recomputed. */
    if ((f->micro_batch || f->grad_accum) && json_is_number(at(root, "train_batch_size")) &&
        (f->grad_accum || json_is_number(at(root, "gradient_accumulation_steps"))))
        set(o, "train_batch_size", num((double)f->world_size * micro * gas, b, sizeof b),
            "command line: world size %lld x micro batch %d x accumulation %d", (long long)f->world_size, micro, gas);
    if (f->bf16 || f->fp16) {
        const char *flag = f->bf16 ? "--bf16" : "--fp16";
        if (!is_auto(at(root, f->bf16 ? "bf16.enabled" : "fp16.enabled")))
            set(o, f->bf16 ? "bf16.enabled" : "fp16.enabled", "true", "command line: %s", flag);
        json_t *other = at(root, f->bf16 ? "fp16.enabled" : "bf16.enabled");
        if (json_is_true(other)) set(o, f->bf16 ? "fp16.enabled" : "bf16.enabled", "false", "command line: %s", flag);
    }
    if (f->zero_stage >= 0 && !is_auto(at(root, "zero_optimization.stage")))
        set(o, "zero_optimization.stage", num(f->zero_stage, b, sizeof b), "command line: --zero-stage");
    if (f->warmup && has_sched && !is_auto(at(root, "scheduler.params.warmup_num_steps")))
        set(o, "scheduler.params.warmup_num_steps", num(f->warmup, b, sizeof b), "command line: --warmup");
    if (!isnan(f->clip) && !is_auto(at(root, "gradient_clipping")))
        set(o, "gradient_clipping", num(f->clip, b, sizeof b), "command line: --clip");
    double total;
    if (has_sched && number_at(root, "scheduler.params.total_num_steps", &total) && total < steps)
        snprintf(o->warning, sizeof o->warning,
                 "scheduler.params.total_num_steps is %.0f but --steps is %d: from step %.0f on the lr stays at the "
                 "schedule's end value (write \"auto\" there to follow --steps)", total, steps, total);
    json_decref(root);
    return true;
}

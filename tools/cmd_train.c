/* `dsc train`: trains the built-in GPT on character-level text with a DeepSpeed config. */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "commands.h"
#include "stop_signal.h"
#include "trainer_config.h"
#include "train_progress.h"
#include "dsc/dsc.h"

/* The default run: a small GPT on the English text Debian's fortunes-min package ships,
 * AdamW with warmup and cosine decay, DeepSpeed's progress line every 10 steps. */
static const char *const default_corpus[] = {
    "/usr/share/games/fortunes/fortunes",
    "/usr/share/games/fortunes/literature",
    "/usr/share/games/fortunes/riddles",
};
static int64_t state_bytes(const dsc_zero_memory_t *m) {
    return m->params + m->grads + m->optim + m->grad_accum + m->comm;
}

/* dsc estimate's plan for this engine's config, model, context and checkpointing. */
static dsc_status_t memory_plan(const dsc_engine_t *engine, const dsc_gpt_config_t *model, int context,
                                int checkpoint_every, dsc_memory_estimate_t *plan) {
    dsc_estimate_options_t o;
    char err[256];
    dsc_estimate_options_default(model, &o);
    dsc_status_t rc = dsc_estimate_options_from_config(dsc_engine_config(engine), &o, err, sizeof err);
    if (rc != DSC_OK) return rc;
    o.micro_batch = dsc_engine_micro_batch_size(engine);
    o.context = context;
    o.world_size = dsc_engine_world_size(engine);
    o.rank = dsc_engine_rank(engine);
    o.checkpoint_every = checkpoint_every > 0 ? checkpoint_every : 0;
    o.vocab_pad = dsc_ctx_gemm_pad_elems(dsc_engine_ctx(engine)); /* the device's padded LM head */
    o.device_is_host = strcmp(dsc_ctx_device_name(dsc_engine_ctx(engine)), "cpu") == 0; /* "cpu" offload moves state */
    const bool ckpt = o.checkpoint_every > 0 || o.number_checkpoints > 0;
    return dsc_estimate_memory(&o, (int)dsc_engine_config(engine)->zero_optimization.stage, ckpt, plan, err, sizeof err);
}

/* The embedded default: only the micro batch, so the global batch is 16 per rank and
 * `mpirun -np N dsc train` works as it is. The "auto" values are dsc train's flags (their
 * defaults: micro batch 16, lr 0.002, 200 steps with 30 of warmup), so the schedule always
 * spans --steps. */
static const char default_config[] =
    "{\n"
    "  \"train_micro_batch_size_per_gpu\": \"auto\",\n"
    "  \"steps_per_print\": 50,\n"
    "  \"gradient_clipping\": \"auto\",\n"
    "  \"optimizer\": {\"type\": \"AdamW\", \"params\": {\"lr\": \"auto\", \"betas\": [0.9, 0.99], \"weight_decay\": 0.01}},\n"
    "  \"scheduler\": {\"type\": \"WarmupCosineLR\",\n"
    "                \"params\": {\"total_num_steps\": \"auto\", \"warmup_num_steps\": \"auto\", \"warmup_type\": \"linear\"}}\n"
    "}\n";

typedef struct {
    const char *config_path;
    const char *data[16];
    int n_data;
    const char *val_data; /* llm.c shards only */
    int vocab;            /* llm.c shards: model vocabulary (default 50257, GPT-2's) */
    int steps; /* 0: the default, 200 */
    uint64_t seed;
    dsc_gpt_config_t model;
    int layers, heads, embd; /* --layers/--heads/--embd (0: the preset's or the default) */
    int context;
    int eval_every, eval_batches;
    bool allow_unknown;
    double comm_timeout; /* seconds; 0: the default (600) */
    int checkpoint_every; /* --checkpoint-activations [k]: 0 = the config decides */
    const char *save_dir; /* --save DIR */
    const char *device;   /* --device D (NULL: DSC_DEVICE, else cpu) */
    int save_every;       /* --save-every N (0: only at the end) */
    bool resume;          /* --resume [TAG] */
    const char *resume_tag;
    dsc_trainer_flags_t trainer; /* --lr, --micro-batch, --steps, ... (trainer_config.h) */
    bool model_given, context_given; /* --model, --context on the command line */
    bool no_progress;     /* --no-progress: plain lines even on a terminal */
    int local_rank;       /* --local_rank N (-1: not given) */
} train_args_t;

static void usage(FILE *out) {
    fprintf(out,
            "usage: dsc train [options]\n\n"
            "Trains a GPT-2-style model on character-level text with a DeepSpeed JSON config.\n"
            "Without options: a 4-layer, 128-wide GPT on the fortunes corpus (Debian's fortunes-min),\n"
            "AdamW with linear warmup + cosine decay, 200 steps.\n\n"
            "options:\n"
            "  --config FILE       DeepSpeed JSON config (batch sizes, optimizer, scheduler, clipping); also\n"
            "                      --deepspeed_config FILE or --deepspeed FILE. Without an optimizer in it,\n"
            "                      dsc train uses AdamW (and, without a scheduler, warmup + cosine decay\n"
            "                      over --steps); \"auto\" values are filled in from the flags below\n"
            "  --data FILE         a text file to train on (repeat for several; default: the fortunes corpus),\n"
            "                      or llm.c token shards: a .bin file or a quoted glob ('data/train_*.bin')\n"
            "  --val-data PATTERN  llm.c validation shards (with .bin --data)\n"
            "  --vocab N           vocabulary of .bin shards (default 50257, GPT-2's)\n"
            "  --seed N            RNG seed for init, dropout and batches (default 1234)\n"
            "  --device D          where the model trains: cpu (default), cuda or cuda:N (a GPU of a build\n"
            "                      with CUDA); the environment variable DSC_DEVICE says the same\n"
            "  --model NAME        gpt2-tiny | d6 | d12 | d24 | d36 | d48 (d12 is GPT-2 124M's shape)\n"
            "  --layers N --heads N --embd N   model size (default 4, 4, 128)\n"
            "  --context N         sequence length T (default 64)\n"
            "  --dropout P         dropout probability (default 0)\n"
            "  --eval-every N      validation loss every N steps (default 50; 0 disables); it goes to the\n"
            "                      config's csv / tensorboard monitors as Train/Samples/val_loss\n"
            "  --no-progress       no progress bar: a plain line every 10 steps (as without a terminal or\n"
            "                      under mpirun)\n"
            "  --local_rank N      accepted for launchers that pass it; must match the MPI local rank\n"
            "  --allow-unknown-keys  unknown top-level config keys warn instead of failing\n"
            "  --comm-timeout S    seconds a collective may wait for the other ranks (default: the config's\n"
            "                      dsc.comm_timeout, else 600)\n"
            "  --save DIR          save checkpoints under DIR (DIR/<tag>/, DIR/latest) at the end\n"
            "  --save-every N      ... and every N steps. With --save, Ctrl-C (SIGINT) or SIGTERM finishes the\n"
            "                      current optimizer step, saves, and exits 130 / 143; a second signal exits at\n"
            "                      once. Under mpirun a signal to any one rank stops every rank after the same\n"
            "                      step; mpirun forwards SIGTERM to the ranks and kills them\n"
            "                      odls_base_sigkill_timeout s later (1 by default: for a large model, signal a\n"
            "                      rank or run mpirun --mca odls_base_sigkill_timeout 60)\n"
            "  --resume [TAG]      continue from DIR/TAG (default: DIR/latest) given by --save DIR:\n"
            "                      weights, optimizer, scheduler, loss scale, RNG and data position; the\n"
            "                      model's shape and context come from the checkpoint unless given\n"
            "  --checkpoint-activations [K]  activation checkpointing: recompute every K-th block in\n"
            "                      backward (default K = 1: every block); without it the config's\n"
            "                      activation_checkpointing.number_checkpoints decides\n"
            "  -h, --help          this text\n\n"
            "trainer flags:\n");
    dsc_trainer_flags_usage(out);
    fprintf(out, "\n"
            "examples:\n"
            "  dsc train\n"
            "  dsc train --config ds_config.json --data input.txt --steps 2000 --layers 6 --embd 384 --heads 6\n"
            "  mpirun -np 4 dsc train --config ds_zero2.json --data 'shards/train_*.bin' --val-data 'shards/val_*.bin'\n"
            "\nUnder mpirun each process is one data-parallel rank (rank and world size come from MPI);\n"
            "train_batch_size in the config is the global batch over all ranks.\n");
}

static bool parse_int(const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return false;
    *out = v;
    return true;
}

static int parse_args(int argc, char **argv, train_args_t *a) {
    for (int i = 1; i < argc; i++) {
        const char *k = argv[i];
        if (!strcmp(k, "-h") || !strcmp(k, "--help")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(k, "--allow-unknown-keys")) {
            a->allow_unknown = true;
            continue;
        }
        if (!strcmp(k, "--no-progress")) {
            a->no_progress = true;
            continue;
        }
        int tf = dsc_trainer_flag(argc, argv, &i, &a->trainer, "dsc train");
        if (tf == 2) return 2;
        if (tf == 1) continue;
        /* DeepSpeed's and the HF Trainer's spellings: --deepspeed_config FILE, --deepspeed FILE
         * (a bare --deepspeed switch is accepted too), --local_rank N / --local_rank=N. */
        if (!strcmp(k, "--deepspeed") && (i + 1 >= argc || argv[i + 1][0] == '-')) continue;
        if (!strncmp(k, "--local_rank", 12) || !strncmp(k, "--local-rank", 12)) {
            const char *v = k[12] == '=' ? k + 13 : k[12] == '\0' && i + 1 < argc ? argv[++i] : NULL;
            long n = 0;
            if (!v || !parse_int(v, 0, 100000, &n)) {
                fprintf(stderr, "dsc train: --local_rank needs a rank number >= 0\n");
                return 2;
            }
            a->local_rank = (int)n;
            continue;
        }
        if (!strcmp(k, "--resume")) { /* optional TAG */
            a->resume = true;
            if (i + 1 < argc && argv[i + 1][0] != '-') a->resume_tag = argv[++i];
            continue;
        }
        if (!strcmp(k, "--checkpoint-activations")) { /* optional value K */
            long n = 1;
            if (i + 1 < argc && argv[i + 1][0] != '-' && !parse_int(argv[++i], 1, 1000000, &n)) {
                fprintf(stderr, "dsc train: invalid value '%s' for --checkpoint-activations (a block interval >= 1)\n", argv[i]);
                return 2;
            }
            a->checkpoint_every = (int)n;
            continue;
        }
        static const char *const value_options[] = {
            "--config", "--val-data", "--save", "--save-every", "--model", "--comm-timeout", "--vocab", "--data",
            "--deepspeed_config", "--deepspeed", "--seed", "--layers", "--heads", "--embd", "--context", "--eval-every", "--dropout", "--device"};
        bool known = false;
        for (size_t o = 0; o < sizeof value_options / sizeof value_options[0]; o++) known = known || !strcmp(k, value_options[o]);
        if (!known && k[0] == '-') {
            fprintf(stderr, "dsc train: unknown option %s (dsc train --help)\n", k);
            return 2;
        }
        if (!known) {
            fprintf(stderr, "dsc train: unexpected argument '%s': options start with -- (dsc train --help)\n", k);
            return 2;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "dsc train: %s needs a value (dsc train --help)\n", k);
            return 2;
        }
        const char *v = argv[++i];
        long n = 0;
        bool ok = true;
        if (!strcmp(k, "--config") || !strcmp(k, "--deepspeed_config") || !strcmp(k, "--deepspeed")) a->config_path = v;
        else if (!strcmp(k, "--val-data")) a->val_data = v;
        else if (!strcmp(k, "--save")) a->save_dir = v;
        else if (!strcmp(k, "--device")) a->device = v;
        else if (!strcmp(k, "--save-every")) ok = parse_int(v, 1, 100000000, &n), a->save_every = (int)n;
        else if (!strcmp(k, "--model")) {
            a->model_given = true;
            /* llm.c's depth presets (dN: N layers, width 64 N, N heads, capped as GPT-2's). */
            static const struct { const char *name; int layers, heads, embd; } presets[] = {
                {"gpt2-tiny", 2, 4, 64}, {"d6", 6, 6, 384},     {"d12", 12, 12, 768},
                {"d24", 24, 16, 1024},   {"d36", 36, 20, 1280}, {"d48", 48, 25, 1600},
            };
            ok = false;
            for (size_t m = 0; m < sizeof presets / sizeof presets[0]; m++)
                if (!strcmp(v, presets[m].name)) {
                    a->model.n_layer = presets[m].layers, a->model.n_head = presets[m].heads, a->model.n_embd = presets[m].embd;
                    ok = true;
                }
            if (!ok) {
                fprintf(stderr, "dsc train: unknown --model '%s' (gpt2-tiny, d6, d12, d24, d36, d48; d12 is GPT-2 124M)\n", v);
                return 2;
            }
        }
        else if (!strcmp(k, "--comm-timeout")) {
            char *end;
            a->comm_timeout = strtod(v, &end);
            ok = *end == '\0' && a->comm_timeout > 0;
        }
        else if (!strcmp(k, "--vocab")) ok = parse_int(v, 2, 10000000, &n), a->vocab = (int)n;
        else if (!strcmp(k, "--data")) {
            if (a->n_data == 16) {
                fprintf(stderr, "dsc train: at most 16 --data files\n");
                return 2;
            }
            a->data[a->n_data++] = v;
        } else if (!strcmp(k, "--seed")) ok = parse_int(v, 0, 2147483647, &n), a->seed = (uint64_t)n;
        else if (!strcmp(k, "--layers")) ok = parse_int(v, 1, 1000, &n), a->layers = (int)n;
        else if (!strcmp(k, "--heads")) ok = parse_int(v, 1, 1000, &n), a->heads = (int)n;
        else if (!strcmp(k, "--embd")) ok = parse_int(v, 1, 100000, &n), a->embd = (int)n;
        else if (!strcmp(k, "--context")) ok = parse_int(v, 2, 100000, &n), a->context = (int)n, a->context_given = true;
        else if (!strcmp(k, "--eval-every")) ok = parse_int(v, 0, 100000000, &n), a->eval_every = (int)n;
        else if (!strcmp(k, "--dropout")) {
            char *end;
            a->model.dropout = strtod(v, &end);
            ok = *end == '\0' && a->model.dropout >= 0 && a->model.dropout < 1;
        } else {
            fprintf(stderr, "dsc train: unknown option %s (dsc train --help)\n", k);
            return 2;
        }
        if (!ok) {
            fprintf(stderr, "dsc train: invalid value '%s' for %s\n", v, k);
            return 2;
        }
    }
    /* --layers / --heads / --embd override the --model preset whatever their order. */
    if (a->layers) a->model.n_layer = a->layers;
    if (a->heads) a->model.n_head = a->heads;
    if (a->embd) a->model.n_embd = a->embd;
    a->steps = a->trainer.steps;
    /* A launcher's --local_rank must be the rank MPI gave this process on its node. */
    const char *mpi_local = getenv("OMPI_COMM_WORLD_LOCAL_RANK");
    if (a->local_rank >= 0 && mpi_local && atoi(mpi_local) != a->local_rank) {
        fprintf(stderr, "dsc train: --local_rank %d, but MPI made this process local rank %s (OMPI_COMM_WORLD_LOCAL_RANK): "
                "dsc takes ranks from MPI; drop --local_rank or launch with mpirun\n", a->local_rank, mpi_local);
        return 2;
    }
    return -1; /* continue */
}

/* Where batches come from: character-level text, or llm.c token shards. */
typedef struct {
    dsc_text_dataset_t *text;
    uint64_t text_state;
    dsc_shard_loader_t *train, *val;
} batch_source_t;

static bool is_shard_path(const char *p) {
    size_t n = strlen(p);
    return n >= 4 && !strcasecmp(p + n - 4, ".bin");
}

/* The validation shards in order (no shuffle), every token checked against the model's
 * vocabulary up front, as the training shards are: a bad file is named before training. */
static dsc_status_t val_loader_new(const char *pattern, int b, int t, const dsc_engine_t *engine, int vocab,
                                   dsc_shard_loader_t **out, char *err, size_t errsz) {
    dsc_shard_loader_options_t o = DSC_SHARD_LOADER_OPTIONS_INIT;
    o.shuffle = false;
    o.vocab_size = vocab;
    o.check_vocab = true;
    char msg[1800];
    dsc_status_t rc = dsc_shard_loader_new_ex(pattern, b, t, dsc_engine_rank(engine), dsc_engine_world_size(engine), 0,
                                              &o, out, msg, sizeof msg);
    if (rc != DSC_OK) snprintf(err, errsz, "--val-data: %s", msg);
    return rc;
}

static void source_free(batch_source_t *src) {
    dsc_text_dataset_free(src->text);
    dsc_shard_loader_free(src->train);
    dsc_shard_loader_free(src->val);
}

static dsc_status_t source_next(batch_source_t *src, int32_t *x, int32_t *y, int b, int t, char *err, size_t errsz) {
    if (src->text) {
        dsc_status_t rc = dsc_text_dataset_batch(src->text, DSC_SPLIT_TRAIN, b, t, &src->text_state, x, y);
        if (rc != DSC_OK) snprintf(err, errsz, "the training text is shorter than one window of %d tokens", t + 1);
        return rc;
    }
    dsc_status_t rc = dsc_shard_loader_next(src->train, x, y);
    if (rc != DSC_OK) snprintf(err, errsz, "%s", dsc_shard_loader_errmsg(src->train));
    return rc;
}

/* The k-th validation batch; the same batches every evaluation, so the curve compares. */
static dsc_status_t source_val(batch_source_t *src, int k, uint64_t *st, int32_t *x, int32_t *y, int b, int t) {
    if (src->text) return dsc_text_dataset_batch(src->text, DSC_SPLIT_VAL, b, t, st, x, y);
    if (!src->val) return DSC_ERR_INVALID;
    if (k == 0) dsc_shard_loader_reset(src->val);
    return dsc_shard_loader_next(src->val, x, y);
}

/* The data position as JSON (the checkpoint's client state), and back. */
/* The checkpoint's client state (JSON, malloc'ed): the data position, the model's shape and,
 * for text, the character vocabulary, so `dsc sample` can rebuild the model from it. */
static char *client_state_new(const batch_source_t *src, const dsc_gpt_config_t *mc) {
    json_t *root = json_object();
    char num[32];
    if (src->text) {
        snprintf(num, sizeof num, "%llu", (unsigned long long)src->text_state);
        json_object_set_new(root, "text_state", json_string(num));
        json_t *vocab = json_array();
        for (int i = 0; i < dsc_text_dataset_vocab_size(src->text); i++)
            json_array_append_new(vocab, json_integer(dsc_text_dataset_decode(src->text, i)));
        json_object_set_new(root, "vocab", vocab);
    } else {
        dsc_sampler_state_t st;
        dsc_shard_loader_state_get(src->train, &st);
        json_object_set_new(root, "epoch", json_integer(st.epoch));
        json_object_set_new(root, "index", json_integer(st.index));
        json_object_set_new(root, "n_samples", json_integer(st.n_samples));
        json_object_set_new(root, "world_size", json_integer(st.world_size));
        snprintf(num, sizeof num, "%llu", (unsigned long long)st.seed);
        json_object_set_new(root, "seed", json_string(num));
    }
    json_object_set_new(root, "model", json_pack("{s:i, s:i, s:i, s:i, s:i}", "n_layer", mc->n_layer, "n_head", mc->n_head,
                                                 "n_embd", mc->n_embd, "vocab_size", mc->vocab_size, "block_size",
                                                 mc->block_size));
    char *text = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    return text;
}

/* The client state is the JSON written by client_state_new (parsed with jansson). */
static long long json_int(json_t *root, const char *key, bool *ok) {
    json_t *v = json_object_get(root, key);
    if (json_is_integer(v)) return (long long)json_integer_value(v);
    if (json_is_string(v)) return (long long)strtoull(json_string_value(v), NULL, 10);
    *ok = false;
    return 0;
}

/* Restores the data position from the checkpoint's client state; false with a message
 * naming the checkpoint and what differs. A text checkpoint also records its character
 * vocabulary, which must be the one --data gives (else the ids would mean other characters). */
static bool source_state_restore(batch_source_t *src, const char *text, const char *where, char *err, size_t errsz) {
    json_t *root = text ? json_loads(text, 0, NULL) : NULL;
    if (!json_is_object(root)) {
        snprintf(err, errsz, "the checkpoint in %s holds no data position (its client state is not dsc train's)", where);
        json_decref(root);
        return false;
    }
    bool ok = true;
    if (src->text) {
        src->text_state = (uint64_t)json_int(root, "text_state", &ok);
        if (!ok)
            snprintf(err, errsz, "the checkpoint in %s holds no position in text data (was it trained on token "
                     "shards?)", where);
        json_t *vocab = json_object_get(root, "vocab");
        const int n = dsc_text_dataset_vocab_size(src->text);
        for (int i = 0; ok && json_is_array(vocab) && i < (int)json_array_size(vocab) && i < n; i++) {
            const long long want = json_integer_value(json_array_get(vocab, (size_t)i));
            const int have = dsc_text_dataset_decode(src->text, i);
            if (want != have) {
                snprintf(err, errsz, "the checkpoint in %s was trained on text whose character %d is byte %lld, but "
                         "the --data text's is byte %d: the vocabularies differ (%zu vs %d characters); resume with "
                         "the same --data files", where, i, want, have, json_array_size(vocab), n);
                ok = false;
            }
        }
        if (ok && json_is_array(vocab) && (int)json_array_size(vocab) != n) {
            snprintf(err, errsz, "the checkpoint in %s was trained on text of %zu distinct characters, but the --data "
                     "text has %d: resume with the same --data files", where, json_array_size(vocab), n);
            ok = false;
        }
    } else {
        dsc_sampler_state_t st;
        st.epoch = json_int(root, "epoch", &ok);
        st.index = json_int(root, "index", &ok);
        st.n_samples = json_int(root, "n_samples", &ok);
        st.world_size = json_int(root, "world_size", &ok);
        st.seed = (uint64_t)json_int(root, "seed", &ok);
        if (!ok) {
            snprintf(err, errsz, "the checkpoint in %s holds no position in token shards (was it trained on text?)",
                     where);
        } else if (dsc_shard_loader_state_set(src->train, &st) != DSC_OK) {
            snprintf(err, errsz, "the data position in the checkpoint in %s does not fit these shards and ranks: %s",
                     where, dsc_shard_loader_errmsg(src->train));
            ok = false;
        }
    }
    json_decref(root);
    return ok;
}

/* The stop signal any rank received (0: none), agreed by every rank at the same step
 * boundary: one all-reduce (max) of one integer per optimizer step. A signal sent to one
 * rank, or by mpirun to all, stops them all after the same step. */
static dsc_status_t agree_stop(dsc_comm_t *comm, int *signo) {
    int32_t v = (int32_t)dsc_tool_stop_requested();
    if (comm && dsc_comm_world_size(comm) > 1) {
        dsc_status_t rc = dsc_comm_allreduce(comm, &v, &v, 1, DSC_I32, DSC_REDUCE_MAX);
        if (rc != DSC_OK) return rc;
    }
    *signo = (int)v;
    return DSC_OK;
}

/* --resume: the model's shape (and a shard vocabulary) from the checkpoint's client state,
 * which dsc train writes with every save. A shape flag given on the command line must agree
 * with the checkpoint: one that differs is refused, naming the flag and both values (the
 * checkpoint's model cannot load into another shape). False with a message when the
 * checkpoint cannot be read or a flag conflicts. */
static bool shape_from_checkpoint(train_args_t *a, bool shards, char *err, size_t errsz) {
    const bool shape_flags = a->model_given || a->layers || a->heads || a->embd;
    dsc_ckpt_t *ck = NULL;
    if (dsc_ckpt_open(a->save_dir, a->resume_tag, DSC_CKPT_VERIFY_LAZY, &ck, err, errsz) != DSC_OK) return false;
    const char *client = dsc_manifest_blob(dsc_ckpt_manifest(ck), DSC_MANIFEST_CLIENT_STATE);
    json_t *root = client ? json_loads(client, 0, NULL) : NULL;
    dsc_ckpt_close(ck);
    json_t *m = root ? json_object_get(root, "model") : NULL;
    if (!json_is_object(m)) { /* not written by dsc train: the flags (or defaults) decide */
        json_decref(root);
        return true;
    }
    int layers = (int)json_integer_value(json_object_get(m, "n_layer")), heads = (int)json_integer_value(json_object_get(m, "n_head"));
    int embd = (int)json_integer_value(json_object_get(m, "n_embd")), ctx = (int)json_integer_value(json_object_get(m, "block_size"));
    int vocab = (int)json_integer_value(json_object_get(m, "vocab_size"));
    json_decref(root);
    if (layers > 0 && heads > 0 && embd > 0 && ctx > 1) {
        const char *preset = a->model_given ? "--model" : NULL;
        const struct {
            const char *flag;
            bool given;
            int *field, saved;
            const char *what;
        } f[] = {{a->layers ? "--layers" : preset, a->layers || a->model_given, &a->model.n_layer, layers, "layers"},
                 {a->heads ? "--heads" : preset, a->heads || a->model_given, &a->model.n_head, heads, "heads"},
                 {a->embd ? "--embd" : preset, a->embd || a->model_given, &a->model.n_embd, embd, "width"},
                 {"--context", a->context_given, &a->context, ctx, "context"}};
        for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
            if (f[i].given && *f[i].field != f[i].saved) {
                snprintf(err, errsz, "%s: %s %d, but the checkpoint in %s has %s %d; leave the flag out to take the "
                         "checkpoint's shape",
                         f[i].flag, f[i].what, *f[i].field, a->save_dir, f[i].what, f[i].saved);
                return false;
            }
            *f[i].field = f[i].saved;
        }
    }
    if (shards && !a->vocab && vocab > 1) a->vocab = vocab;
    const char *rank = getenv("OMPI_COMM_WORLD_RANK");
    if (!rank || !strcmp(rank, "0"))
        fprintf(stderr, "dsc train: resuming %s: model shape from the checkpoint: %d layers, %d heads, width %d, context %d%s\n",
            a->save_dir, a->model.n_layer, a->model.n_head, a->model.n_embd, a->context,
            shape_flags ? " (layers, heads and width from the command line)" : "");
    return true;
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Mean loss over a few validation batches, without recording the tape; NAN with a message
 * in err when a batch cannot be read or evaluated. */
static double eval_loss(dsc_ctx_t *ctx, dsc_gpt_t *gpt, batch_source_t *src, int b, int t, int n_batches, int32_t *x,
                        int32_t *y, char *err, size_t errsz) {
    uint64_t st = 999; /* the same batches every time, so the curve is comparable */
    double sum = 0;
    bool was_training = dsc_ctx_training(ctx);
    dsc_ctx_set_training(ctx, false);
    dsc_ctx_no_grad_begin(ctx);
    for (int k = 0; k < n_batches; k++) {
        if (source_val(src, k, &st, x, y, b, t) != DSC_OK) {
            snprintf(err, errsz, "validation batch %d: %s", k,
                     src->val ? dsc_shard_loader_errmsg(src->val)
                              : "the validation text is shorter than one window (context + 1 tokens)");
            sum = NAN;
            break;
        }
        dsc_tensor_t *loss = NULL;
        if (dsc_gpt_forward(ctx, gpt, x, y, b, t, NULL, &loss) != DSC_OK) {
            snprintf(err, errsz, "validation batch %d: %s", k, dsc_ctx_errmsg(ctx));
            sum = NAN;
            break;
        }
        sum += dsc_tensor_item(loss);
        dsc_ctx_end_step(ctx);
    }
    dsc_ctx_no_grad_end(ctx);
    dsc_ctx_set_training(ctx, was_training);
    dsc_ctx_end_step(ctx);
    return sum / n_batches;
}

int dsc_cmd_train(int argc, char **argv) {
    train_args_t a = {0};
    a.seed = 1234;
    a.model = (dsc_gpt_config_t){4, 4, 128, 0, 64, 0.0, 1e-5};
    a.context = 64;
    a.eval_every = 50;
    a.eval_batches = 8;
    a.local_rank = -1;
    dsc_trainer_flags_init(&a.trainer);
    int rc = parse_args(argc, argv, &a);
    if (rc >= 0) return rc;

    char err[2048];
    batch_source_t src = {0};
    src.text_state = a.seed * 2654435761u + 1;
    bool shards = a.n_data >= 1 && is_shard_path(a.data[0]);
    for (int k = 0; k < a.n_data; k++)
        if (a.n_data > 1 && is_shard_path(a.data[k])) {
            fprintf(stderr, "dsc train: --data %s is an llm.c token shard (.bin) among %d --data arguments: give the "
                    "shards as one quoted pattern (--data 'dir/train_*.bin'); text files and shards do not mix\n",
                    a.data[k], a.n_data);
            return 2;
        }
    if (a.resume && a.save_dir && !shape_from_checkpoint(&a, shards, err, sizeof err)) {
        fprintf(stderr, "dsc train: --resume: %s\n", err);
        return 1;
    }
    /* Options that only shards use are refused for text rather than ignored. */
    if (!shards && (a.vocab || a.val_data)) {
        fprintf(stderr, "dsc train: %s applies to llm.c token shards (.bin --data) only; with text data the "
                "vocabulary is the text's characters and the last 10%% of the text is the validation split\n",
                a.vocab ? "--vocab" : "--val-data");
        return 2;
    }
    if (!shards) {
        const char *const *paths = a.n_data ? a.data : default_corpus;
        int n_paths = a.n_data ? a.n_data : (int)(sizeof default_corpus / sizeof default_corpus[0]);
        if (dsc_text_dataset_load(paths, n_paths, 0.1, &src.text, err, sizeof err) != DSC_OK) {
            fprintf(stderr, "dsc train: %s\n", err);
            if (!a.n_data) fprintf(stderr, "dsc train: the default corpus comes from Debian's fortunes-min package "
                                           "(apt-get install fortunes-min, or run `make train`), or pass --data FILE\n");
            return 1;
        }
        a.model.vocab_size = dsc_text_dataset_vocab_size(src.text);
    } else {
        a.model.vocab_size = a.vocab ? a.vocab : 50257;
    }
    a.model.block_size = a.context;

    progress_t pg = {-1, false, false};
    dsc_ctx_options_t co = DSC_CTX_OPTIONS_INIT;
    co.seed = a.seed;
    co.device = a.device; /* a refused device is reported by dsc_ctx_new (stderr) */
    co.log_fn = dsc_progress_log;
    co.log_user = &pg;
    dsc_ctx_t *ctx = NULL;
    dsc_comm_t *comm = NULL;
    dsc_gpt_t *gpt = NULL;
    dsc_initialize_result_t init = {0};
    int32_t *x = NULL, *y = NULL;
    int status = 1;
    dsc_trainer_overrides_t *trainer_ov = NULL;
    dsc_memory_estimate_t plan;
    bool plan_ok = false;
    if (dsc_ctx_new(&co, &ctx) != DSC_OK) goto out;
    const bool on_device = strcmp(dsc_ctx_device_name(ctx), "cpu") != 0;
    size_t device_workspace = 0; /* what the device holds before any tensor: cuBLASLt's workspace */
    dsc_ctx_device_memory(ctx, &device_workspace, NULL);
    /* Under mpirun (OpenMPI sets OMPI_COMM_WORLD_SIZE) the ranks train data-parallel. */
    if (getenv("OMPI_COMM_WORLD_SIZE")) {
        /* MPI, or NCCL on one GPU per rank (DSC_COMM=mpi|nccl|auto); the timeout covers its creation */
        if (dsc_comm_new_default(ctx, a.comm_timeout, &comm) != DSC_OK) {
            fprintf(stderr, "dsc train: %s\n", dsc_ctx_errmsg(ctx));
            goto out;
        }
        /* Different batches per rank from the text corpus (shards split by the sampler). */
        src.text_state += (uint64_t)dsc_comm_rank(comm) * 0x9E3779B97F4A7C15ull;
    }
    if ((rc = dsc_gpt_new(ctx, &a.model, &gpt)) != DSC_OK) {
        fprintf(stderr, "dsc train: %s\n", dsc_ctx_errmsg(ctx));
        if (comm) dsc_comm_agree(comm, rc, dsc_ctx_errmsg(ctx), NULL, 0); /* the others stop with this error */
        goto out;
    }
    dsc_gpt_set_checkpointing(gpt, a.checkpoint_every);
    /* The trainer's part: flags over config keys, "auto" filled in, AdamW when none. */
    dsc_trainer_overrides_t *ov = calloc(1, sizeof *ov);
    if (!ov) {
        fprintf(stderr, "dsc train: out of memory\n");
        goto out;
    }
    a.trainer.hidden = a.model.n_embd;
    a.trainer.hidden_origin = "the model's width";
    a.trainer.world_size = comm ? dsc_comm_world_size(comm) : 1;
    if (!dsc_trainer_resolve(a.config_path, a.config_path ? NULL : default_config, &a.trainer, ov, err, sizeof err)) {
        fprintf(stderr, "dsc train: %s\n", err);
        free(ov);
        goto out;
    }
    trainer_ov = ov;
    if (!comm || dsc_comm_rank(comm) == 0) {
        if (ov->summary[0]) fprintf(stderr, "dsc train: %s\n", ov->summary);
        if (ov->warning[0]) fprintf(stderr, "dsc train: warning: %s\n", ov->warning);
        for (size_t i = 0; a.config_path && i < ov->n; i++) /* the built-in config's values are the flags' */
            if (!strncmp(ov->note[i], "auto:", 5))
                fprintf(stderr, "dsc train: %s = %s (%s)\n", ov->path[i], ov->json[i], ov->note[i]);
    }
    dsc_engine_options_t eo = DSC_ENGINE_OPTIONS_INIT;
    eo.config_overrides = ov->items;
    eo.n_config_overrides = ov->n;
    eo.config_path = a.config_path;
    eo.config_json = a.config_path ? NULL : default_config;
    eo.allow_unknown_top_level_keys = a.allow_unknown;
    eo.comm = comm;
    eo.comm_timeout = a.comm_timeout; /* wins over the config's dsc.comm_timeout */
    /* What every rank must share besides the engine's own fingerprint (dsc_initialize). */
    static const char *const fp_keys[] = {"--layers", "--heads", "--embd", "vocabulary size (--vocab or the text)",
                                          "--context", "--dropout", "--steps", "--save", "--save-every", "--resume",
                                          "--eval-every"};
    enum { N_FP = sizeof fp_keys / sizeof fp_keys[0] };
    char fp_values[N_FP][160];
    dsc_comm_field_t fp[N_FP];
    snprintf(fp_values[0], 160, "%d", a.model.n_layer), snprintf(fp_values[1], 160, "%d", a.model.n_head);
    snprintf(fp_values[2], 160, "%d", a.model.n_embd), snprintf(fp_values[3], 160, "%d", a.model.vocab_size);
    snprintf(fp_values[4], 160, "%d", a.context), snprintf(fp_values[5], 160, "%g", a.model.dropout);
    snprintf(fp_values[6], 160, "%d", a.steps), snprintf(fp_values[7], 160, "%s", a.save_dir ? a.save_dir : "(none)");
    snprintf(fp_values[8], 160, "%d", a.save_every), snprintf(fp_values[10], 160, "%d", a.eval_every);
    snprintf(fp_values[9], 160, "%s", a.resume ? (a.resume_tag ? a.resume_tag : "latest") : "no");
    for (int i = 0; i < N_FP; i++) fp[i] = (dsc_comm_field_t){fp_keys[i], fp_values[i]};
    eo.fingerprint = fp;
    eo.n_fingerprint = N_FP;
    if (dsc_initialize(gpt->model, &eo, &init, err, sizeof err) != DSC_OK) {
        fprintf(stderr, "dsc train: %s\n", err);
        goto out;
    }
    dsc_engine_t *engine = init.engine;
    const int b = dsc_engine_micro_batch_size(engine), t = a.context, gas = dsc_engine_gradient_accumulation_steps(engine);
    int steps = a.steps ? a.steps : 200;
    if (shards) {
        dsc_shard_loader_options_t lo = DSC_SHARD_LOADER_OPTIONS_INIT;
        lo.vocab_size = a.model.vocab_size;
        lo.check_vocab = true;
        if (dsc_shard_loader_new_ex(a.data[0], b, t, dsc_engine_rank(engine), dsc_engine_world_size(engine), a.seed, &lo,
                                    &src.train, err, sizeof err) != DSC_OK ||
            (a.val_data && val_loader_new(a.val_data, b, t, engine, a.model.vocab_size, &src.val, err, sizeof err) !=
                               DSC_OK)) {
            fprintf(stderr, "dsc train: %s\n", err);
            goto out;
        }
        if (!a.val_data) a.eval_every = 0;
    }
    x = malloc(sizeof(int32_t) * b * t);
    y = malloc(sizeof(int32_t) * b * t);
    if (!x || !y) {
        fprintf(stderr, "dsc train: out of memory for one micro batch of %d x %d tokens (%.1f MiB of token ids): "
                "lower train_micro_batch_size_per_gpu (or train_batch_size) or --context\n", b, t,
                2.0 * sizeof(int32_t) * b * t / 1048576.0);
        goto out;
    }
    const bool rank0 = dsc_engine_rank(engine) == 0;
    {
        /* The memory plan: what this rank holds, by category (the allocator's counters), and
         * what the training step will add (dsc estimate's plan for this config). */
        const char *names[] = {"parameters", "gradients", "optimizer state", "fp32 grad accumulation", "comm buffers"};
        dsc_mem_category_t cats[] = {DSC_MEM_PARAMS, DSC_MEM_GRADS, DSC_MEM_OPTIM, DSC_MEM_GRAD_ACCUM, DSC_MEM_COMM};
        if (rank0) {
            fprintf(stderr, "dsc train: memory per rank (ZeRO stage %lld, %d rank(s)):",
                    (long long)dsc_engine_config(engine)->zero_optimization.stage, dsc_engine_world_size(engine));
            for (int i = 0; i < 5; i++)
                fprintf(stderr, "%s %s %.2f MiB", i ? "," : "", names[i], dsc_ctx_mem_stats(ctx, cats[i]).live_bytes / 1048576.0);
            fprintf(stderr, "\n");
        }
        plan_ok = memory_plan(engine, &a.model, t, a.checkpoint_every, &plan) == DSC_OK;
        if (rank0 && plan_ok)
            fprintf(stderr, "dsc train: memory plan per rank: model state %.2f MiB + per-layer %.2f MiB + activations "
                    "%.2f MiB = %.2f MiB at the peak (dsc estimate)\n", state_bytes(&plan.state) / 1048576.0,
                    plan.state.transient / 1048576.0, plan.activations / 1048576.0, plan.total / 1048576.0);
        if (rank0 && plan_ok && plan.nvme_bytes > 0 && plan.host_bytes == 0) /* "nvme" on the cpu device */
            fprintf(stderr, "dsc train: optimizer offload per rank: NVMe swap file %.2f MiB (%lld bytes), swap buffers "
                    "(pinned host) %.2f MiB, in the optimizer state above (dsc estimate)\n", plan.nvme_bytes / 1048576.0,
                    (long long)plan.nvme_bytes, plan.pinned_host_bytes / 1048576.0);
        else if (rank0 && plan_ok && plan.nvme_bytes > 0) /* "nvme" from a device: swap buffers in the host line */
            fprintf(stderr, "dsc train: optimizer offload per rank: NVMe swap file %.2f MiB (%lld bytes) (dsc estimate)\n",
                    plan.nvme_bytes / 1048576.0, (long long)plan.nvme_bytes);
        size_t off_pinned = 0, off_host = dsc_engine_offload_host_bytes(engine, &off_pinned);
        const dsc_config_zero_t *zc = &dsc_engine_config(engine)->zero_optimization;
        const bool param_off = zc->stage == 3 && zc->offload_param.device == DSC_CONFIG_OFFLOAD_CPU;
        const bool opt_off = zc->offload_optimizer.device != DSC_CONFIG_OFFLOAD_NONE;
        const bool param_nvme = zc->stage == 3 && zc->offload_param.device == DSC_CONFIG_OFFLOAD_NVME;
        if (rank0 && param_nvme) /* the partition in a swap file; its buffers are host memory */
            fprintf(stderr, "dsc train: parameter offload per rank: NVMe swap file %.2f MiB (%lld bytes) for the parameter "
                    "partition, which memory no longer holds; host memory %.2f MiB (%zu bytes; plan %lld)%s (dsc "
                    "estimate)\n", plan_ok ? plan.param_nvme_bytes / 1048576.0 : -1.0,
                    plan_ok ? (long long)plan.param_nvme_bytes : -1LL, off_host / 1048576.0, off_host,
                    plan_ok ? (long long)plan.host_bytes : -1LL,
                    opt_off ? ": its swap buffers, and from a device the optimizer offload's host memory"
                            : ": its swap buffers");
        else if (rank0 && (off_host > 0 || (plan_ok && plan.host_bytes > 0)) && !opt_off) /* offload_param alone */
            fprintf(stderr, "dsc train: parameter offload per rank: host memory %.2f MiB (%zu bytes; plan %lld), of which "
                    "pinned %.2f MiB (%zu bytes; plan %lld): the parameter partition, which the device no longer "
                    "holds (dsc estimate)\n", off_host / 1048576.0, off_host,
                    plan_ok ? (long long)plan.host_bytes : -1LL, off_pinned / 1048576.0, off_pinned,
                    plan_ok ? (long long)plan.pinned_host_bytes : -1LL);
        else if (rank0 && (off_host > 0 || (plan_ok && plan.host_bytes > 0))) /* offload_optimizer.device "cpu" from a device */
            fprintf(stderr, "dsc train: optimizer offload per rank: host memory %.2f MiB (%zu bytes; plan %lld), of which "
                    "pinned %.2f MiB (%zu bytes; plan %lld): fp32 master, %s, gradient partition%s; the "
                    "device keeps none of them (dsc estimate)\n", off_host / 1048576.0, off_host,
                    plan_ok ? (long long)plan.host_bytes : -1LL, off_pinned / 1048576.0, off_pinned,
                    plan_ok ? (long long)plan.pinned_host_bytes : -1LL,
                    plan_ok && plan.nvme_bytes > 0 ? "NVMe swap buffers" : "optimizer state",
                    param_off ? ", parameter partition (the host step writes the update into it)"
                    : dsc_engine_config(engine)->bf16.enabled || dsc_engine_config(engine)->fp16.enabled
                        ? ", 16-bit update" : "");
        /* Hold the plan's step arena in one piece from the start: the first step then needs
         * no more device memory than the plan says (otherwise its arena grows by doubling);
         * the gradient pool, the rest of the activations, takes its blocks apart. */
        if (plan_ok && dsc_ctx_reserve_step_memory(ctx, plan.step_arena) != DSC_OK)
            fprintf(stderr, "dsc train: warning: %s (the step allocates as it goes)\n", dsc_ctx_errmsg(ctx));
        if (rank0 && plan_ok && on_device)
            fprintf(stderr, "dsc train: device %s memory plan: %.2f MiB + %.2f MiB device workspace = %.2f MiB\n",
                    dsc_ctx_device_name(ctx), plan.total / 1048576.0, device_workspace / 1048576.0,
                    (plan.total + device_workspace) / 1048576.0);
    }
    if (rank0) fprintf(stderr, "dsc train: GPT %d layers, %d heads, width %d, vocab %d, context %d: %lld parameters; "
                    "%lld train / %lld val tokens; micro batch %d x %d tokens, %d accumulation step(s), %d steps\n",
            a.model.n_layer, a.model.n_head, a.model.n_embd, a.model.vocab_size, t,
            (long long)dsc_model_numel(gpt->model),
            (long long)(src.text ? dsc_text_dataset_size(src.text, DSC_SPLIT_TRAIN) : dsc_shards_tokens(dsc_shard_loader_shards(src.train))),
            (long long)(src.text ? dsc_text_dataset_size(src.text, DSC_SPLIT_VAL) : src.val ? dsc_shards_tokens(dsc_shard_loader_shards(src.val)) : 0),
            b, t, gas, steps);

    double t0 = now_seconds(), t_last = t0;
    /* A progress bar on a terminal; plain lines (no carriage returns) otherwise, under mpirun
     * (its output is a log however it reaches the screen) and with --no-progress. */
    const bool tty = rank0 && !a.no_progress && isatty(STDOUT_FILENO) && !getenv("OMPI_COMM_WORLD_SIZE");
    if (tty) {
        pg.fd = dsc_progress_fd_open();
        pg.on = true;
    }
    long tokens_since = 0;
    int first_step = 1;
    if (a.resume) {
        if (!a.save_dir) {
            fprintf(stderr, "dsc train: --resume needs --save DIR (the directory to resume from)\n");
            goto out;
        }
        char *client = NULL;
        if (dsc_load_checkpoint(engine, a.save_dir, a.resume_tag, true, true, false, &client) != DSC_OK) {
            fprintf(stderr, "dsc train: resuming from %s: %s\n", a.save_dir, dsc_engine_errmsg(engine));
            goto out;
        }
        bool restored = source_state_restore(&src, client, a.save_dir, err, sizeof err);
        free(client);
        if (!restored) {
            fprintf(stderr, "dsc train: %s\n", err);
            goto out;
        }
        first_step = (int)dsc_engine_global_steps(engine) + 1;
        if (first_step - 1 > steps) {
            fprintf(stderr, "dsc train: --steps %d, but the checkpoint in %s is already at step %d: nothing to train "
                    "(pass --steps above %d to continue)\n", steps, a.save_dir, first_step - 1, first_step - 1);
            goto out;
        }
        if (rank0) fprintf(stderr, "dsc train: resumed from %s at step %d%s\n", a.save_dir, first_step - 1,
                           first_step > steps ? ", which is --steps: nothing left to train" : "");
    }
    /* With --save, Ctrl-C or SIGTERM ends the run after the current optimizer step, saved. */
    if (a.save_dir) dsc_tool_stop_signals_install();
    for (int step = first_step; step <= steps; step++) {
        double loss_sum = 0;
        for (int micro = 0; micro < gas; micro++) {
            if (source_next(&src, x, y, b, t, err, sizeof err) != DSC_OK) {
                dsc_progress_clear(&pg), fprintf(stderr, "dsc train: step %d: %s\n", step, err);
                goto out;
            }
            dsc_tensor_t *loss = NULL;
            if (dsc_gpt_forward(ctx, gpt, x, y, b, t, NULL, &loss) != DSC_OK) {
                dsc_progress_clear(&pg), fprintf(stderr, "dsc train: step %d: forward pass of a micro batch of %d x %d tokens: %s\n", step, b, t,
                        dsc_ctx_errmsg(ctx));
                goto out;
            }
            if (dsc_backward(engine, loss) != DSC_OK || dsc_step(engine) != DSC_OK) {
                dsc_progress_clear(&pg), fprintf(stderr, "dsc train: step %d: %s\n", step, dsc_engine_errmsg(engine));
                goto out;
            }
            loss_sum += dsc_engine_last_loss(engine);
            tokens_since += (long)b * t * dsc_engine_world_size(engine); /* all ranks */
        }
        if (tty) {
            double now = now_seconds();
            if (!dsc_tool_stop_requested()) /* stopping: nothing between the step and the save */
                dsc_progress_bar(&pg, step, steps, step - first_step + 1, loss_sum / gas, dsc_engine_lr(engine),
                             (double)(step - first_step + 1) * b * t * gas * dsc_engine_world_size(engine) / (now - t0),
                             now - t0);
            if (step == steps && pg.drawn) { /* the last frame stays */
                dsc_progress_write(&pg, "\n", 1);
                pg.drawn = false;
            }
        } else if (rank0 && (step == 1 || step % 10 == 0 || step == steps)) {
            double now = now_seconds();
            printf("step %5d/%d | loss %.4f | lr %.3e | grad norm %.3f (clipped %.3f) | loss scale %g | skipped %lld | %.0f tokens/s | %.1f s\n",
                   step, steps, loss_sum / gas, dsc_engine_lr(engine), dsc_engine_grad_norm(engine),
                   dsc_engine_grad_norm_clipped(engine),
                   dsc_engine_loss_scale(engine), (long long)dsc_engine_skipped_steps(engine),
                   tokens_since / (now - t_last), now - t0);
            fflush(stdout);
            t_last = now;
            tokens_since = 0;
        }
        int stop = 0;
        if (a.save_dir && agree_stop(comm, &stop) != DSC_OK) {
            dsc_progress_clear(&pg), fprintf(stderr, "dsc train: step %d: agreeing on a stop request: %s\n", step, dsc_comm_errmsg(comm));
            goto out;
        }
        if (a.save_dir && ((a.save_every && step % a.save_every == 0) || step == steps || stop)) {
            char *client = client_state_new(&src, &a.model);
            dsc_status_t saved = client ? dsc_save_checkpoint(engine, a.save_dir, NULL, client, true) : DSC_ERR_NOMEM;
            free(client);
            if (saved != DSC_OK) {
                dsc_progress_clear(&pg), fprintf(stderr, "dsc train: saving a checkpoint in %s: %s\n", a.save_dir, dsc_engine_errmsg(engine));
                goto out;
            }
        }
        if (stop) {
            char tag[64];
            dsc_ckpt_default_tag(dsc_engine_global_steps(engine), tag, sizeof tag);
            dsc_progress_clear(&pg);
            if (rank0)
                fprintf(stderr, "dsc train: stopped by %s after step %d of %d: saved checkpoint %s/%s (continue with "
                        "the same command and --resume)\n", stop == SIGINT ? "SIGINT" : stop == SIGTERM ?
                        "SIGTERM" : "a signal", step, steps, a.save_dir, tag);
            status = 128 + stop;
            goto out;
        }
        if (a.eval_every && (step % a.eval_every == 0 || step == steps)) {
            err[0] = '\0';
            double vl = eval_loss(ctx, gpt, &src, b, t, a.eval_batches, x, y, err, sizeof err);
            if (err[0]) {
                dsc_progress_clear(&pg), fprintf(stderr, "dsc train: step %d: %s\n", step, err);
                goto out;
            }
            dsc_progress_clear(&pg);
            if (rank0) printf("step %5d/%d | val loss %.4f\n", step, steps, vl);
            dsc_engine_monitor_write(engine, "Train/Samples/val_loss", vl);
            fflush(stdout);
        }
    }
    status = 0;
    if (rank0 && plan_ok) { /* the plan beside what the allocator saw */
        double peak = 0;
        dsc_mem_category_t cats[] = {DSC_MEM_PARAMS, DSC_MEM_GRADS, DSC_MEM_OPTIM, DSC_MEM_GRAD_ACCUM, DSC_MEM_COMM,
                                     DSC_MEM_ACTIVATIONS};
        for (int i = 0; i < 6; i++) peak += (double)dsc_ctx_mem_stats(ctx, cats[i]).peak_bytes;
        const double comm_peak = (double)dsc_ctx_mem_stats(ctx, DSC_MEM_COMM).peak_bytes;
        fprintf(stderr, "dsc train: measured peak per rank %.2f MiB (sum of each category's peak; planned %.2f MiB)",
                peak / 1048576.0, plan.total / 1048576.0);
        if (comm_peak > (double)plan.state.comm) /* MPI sums 16-bit data in fp32 staging buffers */
            fprintf(stderr, "; %.2f MiB of it communication staging the plan does not count", (comm_peak - (double)plan.state.comm) / 1048576.0);
        fprintf(stderr, "\n");
        size_t device_peak = 0;
        dsc_ctx_device_memory(ctx, NULL, &device_peak);
        const double planned = (double)plan.total + (double)device_workspace;
        if (on_device)
            fprintf(stderr, "dsc train: device %s: peak of dsc's device memory %.2f MiB, planned %.2f MiB (%+.1f%%); "
                    "the driver's CUDA context comes on top\n",
                    dsc_ctx_device_name(ctx), device_peak / 1048576.0, planned / 1048576.0,
                    planned > 0 ? 100.0 * ((double)device_peak - planned) / planned : 0.0);
    }
out:
    if (a.save_dir) dsc_tool_stop_signals_restore();
    dsc_progress_clear(&pg);
    if (pg.fd >= 0) close(pg.fd);
    free(trainer_ov);
    free(x);
    free(y);
    dsc_engine_free(init.engine);
    dsc_comm_free(comm);
    dsc_gpt_free(gpt);
    dsc_ctx_free(ctx);
    source_free(&src);
    return status;
}

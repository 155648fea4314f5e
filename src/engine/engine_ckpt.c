/* dsc_save_checkpoint and dsc_load_checkpoint (dsc/engine.h): the engine's state over the
 * checkpoint storage layer (dsc/ckpt.h). docs/checkpoint-format.md, section "Engine save and
 * load", is the specification; in short:
 *   - every parameter's fp32 master weights are the tensor "<name>" (kind "param"), each
 *     optimizer state the tensor "<state>/<name>" (kind "<state>"), all F32, stored by
 *     element range: at stages 0-2 rank r writes the flat range [r*k, (r+1)*k) of the ZeRO
 *     layout (k = P / world, at every stage, so the ranks write 1/N each in parallel), at
 *     stage 3 its shard of every parameter, to rank%05d.safetensors; padding is never
 *     stored;
 *   - a load reads the ranges the rank owns under its *current* layout (any world size,
 *     any stage), after checking every file it needs, so a bad checkpoint leaves the engine
 *     untouched;
 *   - both calls are collective; a rank that does not join makes the others fail with the
 *     communicator's timeout message naming it.
 * The counters, loss scaler, LR scheduler, per-rank RNG states and the client state go
 * into the manifest; manifest.xxh3 beside it holds the manifest's own checksum. */
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "dsc/ckpt.h"
#include "engine/engine_internal.h"
#include "core/device.h"
#include "zero/zero.h"

#define CK_MSG 480
#define CK_TEXT 4092
#define CK_SIDECAR "manifest.xxh3"
/* The dropout stream's manifest RNG entries (beside "ctx"); checkpoints written before
 * the Philox dropout have neither. */
#define CK_RNG_DROP_SEED "dropout_seed"
#define CK_RNG_DROP_OFFSET "dropout_offset"

/* One rank's contribution to an exchange (sent as int32 words). */
typedef struct ck_rec {
    int32_t status;
    int32_t flag;    /* hello: mid-accumulation; report: wrote a file */
    uint64_t a, b, c; /* hello: tag hash, -, -; report: file size, file xxh3, ctx RNG state */
    uint64_t drop_seed, drop_offset; /* report: the dropout stream (Philox seed, offset) */
    char msg[CK_MSG];
} ck_rec_t;
/* A status and a text from rank 0 (the temporary directory, or the commit's result). */
typedef struct ck_bcast {
    int32_t status;
    char text[CK_TEXT];
} ck_bcast_t;
_Static_assert(sizeof(ck_rec_t) % 4 == 0 && sizeof(ck_bcast_t) % 4 == 0, "exchanged as int32 words");

/* ---- layout ------------------------------------------------------------------------ */

/* Elements [*a, *b) of parameter i (its own indices) that rank q writes (and reads back
 * under the same layout); false when none. Stages 0-2: the overlap of the parameter with
 * the flat range [q*k, (q+1)*k), k = P / world (at stage 0 too, so the ranks write 1/N
 * each); stage 3: rank q's shard of the parameter. */
static bool ck_piece(const dsc_engine_t *e, int q, const dsc_param_info_t *p, int i, int64_t *a, int64_t *b) {
    (void)i;
    return dsc__zero_slice(&e->plan, q, p->offset, p->numel, a, b);
}

/* Index in master (and each optimizer state) of element a of parameter i on this rank. */
static int64_t ck_local(const dsc_engine_t *e, const dsc_param_info_t *p, int i, int64_t a) {
    (void)p;
    return dsc__zero_local_index(e->zero, i, a);
}

/* True when rank q writes anything. */
static bool ck_writes(const dsc_engine_t *e, int q) {
    for (int i = 0; i < dsc_model_param_count(e->model); i++) {
        dsc_param_info_t p;
        int64_t a, b;
        dsc_model_param_info(e->model, i, &p);
        if (ck_piece(e, q, &p, i, &a, &b)) return true;
    }
    return false;
}

static char *ck_join(const char *a, const char *sep, const char *b) {
    size_t n = strlen(a) + strlen(sep) + strlen(b) + 1;
    char *s = malloc(n);
    if (s) snprintf(s, n, "%s%s%s", a, sep, b);
    return s;
}

static int ck_n_states(const dsc_engine_t *e) { return e->optimizer ? dsc_optim_num_states(e->optimizer) : 0; }

/* ---- collectives ------------------------------------------------------------------- */

static dsc_status_t ck_comm_fail(dsc_engine_t *e, dsc_status_t rc, const char *fn, const char *what) {
    return dsc__engine_fail(e, rc,
                            "%s on rank %d of %d: %s failed: %s (%s is collective: every rank must call it, with the "
                            "same arguments; a rank that does not is reported after the communicator's timeout of "
                            "%.3g s)",
                            fn, e->rank, e->world_size, what, dsc_comm_errmsg(e->comm), fn, dsc_comm_timeout(e->comm));
}

static dsc_status_t ck_gather(dsc_engine_t *e, const ck_rec_t *mine, ck_rec_t *all) {
    if (e->world_size == 1) {
        all[0] = *mine;
        return DSC_OK;
    }
    return dsc_comm_allgather(e->comm, mine, all, sizeof *mine / 4, DSC_I32);
}

static dsc_status_t ck_bcast(dsc_engine_t *e, ck_bcast_t *b) {
    return e->world_size == 1 ? DSC_OK : dsc_comm_broadcast(e->comm, b, sizeof *b / 4, DSC_I32, 0);
}

static dsc_status_t ck_status_of(int32_t s) {
    return s > 0 && s < DSC_STATUS_COUNT ? (dsc_status_t)s : DSC_ERR_COMM;
}

/* The first failure among the gathered records (lowest rank), reported on this rank with
 * the failing rank named; DSC_OK when none. `mine` is this rank's full message. */
static dsc_status_t ck_first_failure(dsc_engine_t *e, const char *fn, const ck_rec_t *all, const char *mine) {
    for (int q = 0; q < e->world_size; q++) {
        if (all[q].status == DSC_OK) continue;
        if (q == e->rank) return dsc__engine_fail(e, ck_status_of(all[q].status), "%s: %s", fn, mine);
        return dsc__engine_fail(e, ck_status_of(all[q].status), "%s: rank %d of %d failed: %.*s", fn, q,
                                e->world_size, CK_MSG, all[q].msg);
    }
    return DSC_OK;
}

/* Every rank learns every rank's status; all return the first failure. */
static dsc_status_t ck_agree(dsc_engine_t *e, const char *fn, dsc_status_t rc, const char *msg) {
    ck_rec_t mine, *all = calloc((size_t)e->world_size, sizeof *all);
    memset(&mine, 0, sizeof mine);
    if (!all) return dsc__engine_fail(e, DSC_ERR_NOMEM, "%s: out of memory", fn);
    mine.status = (int32_t)rc;
    snprintf(mine.msg, sizeof mine.msg, "%s", msg);
    dsc_status_t st = ck_gather(e, &mine, all);
    st = st ? ck_comm_fail(e, st, fn, "the status exchange") : ck_first_failure(e, fn, all, msg);
    free(all);
    return st;
}

/* ---- save --------------------------------------------------------------------------- */

/* Local checks before anything collective. */
static dsc_status_t ck_save_checks(dsc_engine_t *e, const char *save_dir, const char *tag, const char *client_state,
                                   char *tagbuf, char *msg, size_t n) {
    if (!save_dir || !*save_dir) {
        snprintf(msg, n, "save_dir is empty");
        return DSC_ERR_INVALID;
    }
    if (tag) {
        if (dsc_ckpt_check_tag(tag, msg, n) != DSC_OK) return DSC_ERR_INVALID;
        snprintf(tagbuf, DSC_CKPT_TAG_MAX + 1, "%s", tag);
    } else {
        dsc_ckpt_default_tag(e->global_steps, tagbuf, DSC_CKPT_TAG_MAX + 1);
    }
    if (e->backwards_since_step) {
        snprintf(msg, n,
                 "called in the middle of gradient accumulation (%lld micro-batch(es) since the last update): "
                 "their gradients would be lost; save after the dsc_step that ends an accumulation window",
                 (long long)e->backwards_since_step);
        return DSC_ERR_MISUSE;
    }
    if (client_state && e->rank == 0) {
        json_error_t je;
        json_t *j = json_loads(client_state, JSON_DECODE_ANY, &je);
        if (!j) {
            snprintf(msg, n, "client_state is not JSON: line %d column %d: %s", je.line, je.column, je.text);
            return DSC_ERR_INVALID;
        }
        json_decref(j);
    }
    return DSC_OK;
}

/* Writes this rank's range file into `dir`: master weights, then each optimizer state. */
/* Files are written and read on the host: a piece of the master weights or of an optimizer
 * state goes through a host buffer, by the device's copy calls. */
/* State s (-1: the master weights), elements [local, local + count) of this rank's extent;
 * optimizer states go through dsc__engine_state_get (the NVMe swap file when offloaded). */
static dsc_status_t ck_write_piece(dsc_engine_t *e, dsc_st_writer_t *w, int s, int64_t local, size_t count, char *msg,
                                   size_t n) {
    float *host = malloc(count * sizeof *host + 1);
    if (!host) {
        snprintf(msg, n, "out of memory");
        return DSC_ERR_NOMEM;
    }
    dsc_status_t st = s < 0 ? dsc__engine_master_get(e, local, (int64_t)count, host)
                            : dsc__engine_state_get(e, s, local, (int64_t)count, host);
    if (!st) st = dsc_st_write(w, host, DSC_F32, count, msg, n);
    else snprintf(msg, n, "reading the engine's state from the device: %s", dsc_ctx_errmsg(e->ctx));
    free(host);
    return st;
}

static dsc_status_t ck_read_piece(dsc_engine_t *e, dsc_ckpt_t *c, const char *name, int64_t a, int64_t b, int s,
                                  int64_t local, char *msg, size_t n) {
    const size_t count = (size_t)(b - a);
    float *host = malloc(count * sizeof *host + 1);
    if (!host) {
        snprintf(msg, n, "out of memory");
        return DSC_ERR_NOMEM;
    }
    dsc_status_t st = dsc_ckpt_read(c, name, a, b, host, DSC_F32, msg, n);
    if (!st && (st = s < 0 ? dsc__engine_master_set(e, local, (int64_t)count, host)
                           : dsc__engine_state_set(e, s, local, (int64_t)count, host)))
        snprintf(msg, n, "writing the engine's state to the device: %s", dsc_ctx_errmsg(e->ctx));
    free(host);
    return st;
}

static dsc_status_t ck_write_file(dsc_engine_t *e, const char *dir, bool *wrote, dsc_st_file_info_t *info, char *msg,
                                  size_t n) {
    *wrote = false;
    if (!ck_writes(e, e->rank)) return DSC_OK; /* this rank owns padding only */
    char file[64];
    dsc_ckpt_rank_file_name(e->rank, file, sizeof file);
    char *path = ck_join(dir, "/", file);
    if (!path) {
        snprintf(msg, n, "out of memory");
        return DSC_ERR_NOMEM;
    }
    dsc_st_writer_t *w = NULL;
    dsc_status_t st = dsc_st_writer_open(path, 0, &w, msg, n);
    free(path);
    if (st) return st;
    char val[32];
    snprintf(val, sizeof val, "%d", e->rank);
    st = dsc_st_writer_set_metadata(w, "rank", val, msg, n);
    snprintf(val, sizeof val, "%d", e->world_size);
    if (!st) st = dsc_st_writer_set_metadata(w, "world_size", val, msg, n);
    const int np = dsc_model_param_count(e->model), ns = ck_n_states(e);
    for (int pass = 0; pass < 2 && !st; pass++) /* 0: declare, 1: write */
        for (int s = -1; s < ns && !st; s++) {
            for (int i = 0; i < np && !st; i++) {
                dsc_param_info_t p;
                int64_t a, b;
                dsc_model_param_info(e->model, i, &p);
                if (!ck_piece(e, e->rank, &p, i, &a, &b)) continue;
                if (pass == 1) {
                    st = ck_write_piece(e, w, s, ck_local(e, &p, i, a), (size_t)(b - a), msg, n);
                    continue;
                }
                char *name = s < 0 ? ck_join(p.name, "", "") : ck_join(dsc_optim_state_name(e->optimizer, s), "/", p.name);
                st = name ? dsc_st_writer_declare_range(w, name, DSC_F32, a, b, msg, n) : DSC_ERR_NOMEM;
                if (!name) snprintf(msg, n, "out of memory");
                free(name);
            }
        }
    if (st) {
        dsc_st_writer_abort(w);
        return st;
    }
    st = dsc_st_writer_close(w, info, msg, n);
    *wrote = st == DSC_OK;
    return st;
}

/* The effective config as `dsc config check` prints it (informative). */
static char *ck_config_text(const dsc_config_t *c) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return NULL;
    dsc_config_print(c, f);
    fclose(f);
    return buf;
}

/* The optimizer section: its type and class, step count, state names and hyper-parameters
 * (informative: the config in use wins on load), and the loss scaler's skip count. */
static char *ck_optimizer_json(const dsc_engine_t *e) {
    const dsc_optim_params_t *p = dsc_optim_get_params(e->optimizer);
    json_t *o = json_object(), *states = json_array(), *ls = json_object(), *betas = json_array();
    json_object_set_new(o, "type", json_string(dsc_optim_type_name(p->type)));
    json_object_set_new(o, "class", json_string(dsc_optim_class_name(p)));
    json_object_set_new(o, "step", json_integer(dsc_optim_step_count(e->optimizer)));
    for (int j = 0; j < ck_n_states(e); j++) json_array_append_new(states, json_string(dsc_optim_state_name(e->optimizer, j)));
    json_object_set_new(o, "states", states);
    json_object_set_new(o, "lr", json_real(dsc__engine_current_lr(e)));
    json_array_append_new(betas, json_real(p->beta1));
    json_array_append_new(betas, json_real(p->beta2));
    json_object_set_new(o, "betas", betas);
    json_object_set_new(o, "eps", json_real(p->eps));
    json_object_set_new(o, "weight_decay", json_real(p->weight_decay));
    json_object_set_new(o, "momentum", json_real(p->momentum));
    dsc_loss_scaler_state_t ss;
    dsc_loss_scaler_state_get(&e->scaler, &ss);
    json_object_set_new(ls, "consecutive_skips_at_min", json_integer(ss.consecutive_skips_at_min));
    json_object_set_new(o, "loss_scaler", ls);
    char *text = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(17));
    json_decref(o);
    return text;
}

/* Rank 0: the manifest of the files every rank reported in `all`. */
static dsc_status_t ck_build_manifest(dsc_engine_t *e, const ck_rec_t *all, const char *client_state,
                                      dsc_manifest_t **out, char *msg, size_t n) {
    dsc_manifest_t *m = NULL;
    if (dsc_manifest_new(&m) != DSC_OK) {
        snprintf(msg, n, "out of memory");
        return DSC_ERR_NOMEM;
    }
    dsc_manifest_counters_t c = DSC_MANIFEST_COUNTERS_INIT;
    dsc_loss_scaler_state_t ss;
    dsc_loss_scaler_state_get(&e->scaler, &ss);
    c.global_steps = e->global_steps;
    c.global_samples = e->global_samples;
    c.skipped_steps = e->skipped_steps;
    c.micro_steps = e->micro_steps;
    c.world_size = e->world_size;
    c.zero_stage = e->plan.stage;
    c.loss_scaler = (dsc_ckpt_loss_scaler_t){dsc_loss_scaler_is_dynamic(&e->scaler), ss.scale, ss.iter,
                                             ss.last_overflow_iter, (int)ss.hysteresis};
    dsc_status_t st = dsc_manifest_set_counters(m, &c, msg, n);
    char *text = st ? NULL : ck_config_text(e->config);
    if (!st && text) st = dsc_manifest_set_config(m, text, msg, n);
    free(text);
    if (!st && e->scheduler) {
        dsc_sched_state_t ls;
        dsc_sched_state_get(e->scheduler, &ls);
        char js[64];
        snprintf(js, sizeof js, "{\"last_batch_iteration\": %lld}", (long long)ls.last_batch_iteration);
        st = dsc_manifest_set_blob(m, DSC_MANIFEST_LR_SCHEDULER, js, msg, n);
    }
    if (!st && e->optimizer) {
        text = ck_optimizer_json(e);
        st = text ? dsc_manifest_set_blob(m, DSC_MANIFEST_OPTIMIZER, text, msg, n) : DSC_ERR_NOMEM;
        free(text);
    }
    if (!st && client_state) st = dsc_manifest_set_blob(m, DSC_MANIFEST_CLIENT_STATE, client_state, msg, n);
    for (int q = 0; q < e->world_size && !st; q++) {
        st = dsc_manifest_add_rng(m, q, "ctx", all[q].c, msg, n);
        if (!st) st = dsc_manifest_add_rng(m, q, CK_RNG_DROP_SEED, all[q].drop_seed, msg, n);
        if (!st) st = dsc_manifest_add_rng(m, q, CK_RNG_DROP_OFFSET, all[q].drop_offset, msg, n);
    }
    const int np = dsc_model_param_count(e->model), ns = ck_n_states(e);
    for (int s = -1; s < ns && !st; s++)
        for (int i = 0; i < np && !st; i++) {
            dsc_param_info_t p;
            dsc_model_param_info(e->model, i, &p);
            char *name = s < 0 ? ck_join(p.name, "", "") : ck_join(dsc_optim_state_name(e->optimizer, s), "/", p.name);
            if (!name) {
                st = DSC_ERR_NOMEM;
                break;
            }
            dsc_manifest_tensor_t t;
            memset(&t, 0, sizeof t);
            t.name = name;
            t.kind = s < 0 ? "param" : dsc_optim_state_name(e->optimizer, s);
            t.dtype = DSC_F32;
            t.ndim = p.ndim;
            for (int d = 0; d < p.ndim; d++) t.shape[d] = p.shape[d];
            t.frozen = !dsc_tensor_requires_grad(p.tensor);
            st = dsc_manifest_add_tensor(m, &t, msg, n);
            for (int q = 0; q < e->world_size && !st; q++) {
                int64_t a, b;
                if (!all[q].flag || !ck_piece(e, q, &p, i, &a, &b)) continue;
                char file[64];
                dsc_ckpt_rank_file_name(q, file, sizeof file);
                st = dsc_manifest_add_piece(m, name, file, a, b, NULL, msg, n);
            }
            free(name);
        }
    for (int q = 0; q < e->world_size && !st; q++) {
        if (!all[q].flag) continue;
        char file[64];
        dsc_ckpt_rank_file_name(q, file, sizeof file);
        dsc_st_file_info_t fi = {all[q].a, all[q].b};
        st = dsc_manifest_add_file(m, file, &fi, msg, n);
    }
    if (st == DSC_ERR_NOMEM && !msg[0]) snprintf(msg, n, "out of memory building the manifest");
    if (st) {
        dsc_manifest_free(m);
        return st;
    }
    *out = m;
    return DSC_OK;
}

/* manifest.xxh3: the XXH3-64 of the bytes dsc_ckpt_save_commit writes as manifest.json
 * (its JSON and a newline), as "<16 hex digits>  manifest.json\n" (xxhsum's layout). */
static dsc_status_t ck_write_sidecar(dsc_manifest_t *m, const char *dir, char *msg, size_t n) {
    char *text = dsc_manifest_to_json(m, msg, n);
    if (!text) return DSC_ERR_INVALID;
    size_t len = strlen(text);
    text[len] = '\n';
    uint64_t h = dsc_ckpt_checksum(text, len + 1);
    free(text);
    char line[96], *path = ck_join(dir, "/", CK_SIDECAR);
    int w = snprintf(line, sizeof line, "%016llx  %s\n", (unsigned long long)h, DSC_CKPT_MANIFEST_NAME);
    if (!path) {
        snprintf(msg, n, "out of memory");
        return DSC_ERR_NOMEM;
    }
    dsc_status_t st = dsc_write_file_atomic(path, line, (size_t)w, msg, n); /* the message says why */
    free(path);
    return st;
}

/* Rank 0: abort on any rank's failure, else manifest + sidecar + commit. */
static dsc_status_t ck_commit(dsc_engine_t *e, dsc_ckpt_save_t *s, const ck_rec_t *all, const char *client_state,
                              bool save_latest, char *msg, size_t n) {
    for (int q = 0; q < e->world_size; q++) {
        if (all[q].status == DSC_OK) continue;
        if (q != 0) snprintf(msg, n, "rank %d of %d failed: %.*s", q, e->world_size, CK_MSG, all[q].msg);
        dsc_ckpt_save_abort(s);
        return ck_status_of(all[q].status);
    }
    dsc_manifest_t *m = NULL;
    dsc_status_t st = ck_build_manifest(e, all, client_state, &m, msg, n);
    if (!st) st = ck_write_sidecar(m, dsc_ckpt_save_dir(s), msg, n);
    if (st) {
        dsc_ckpt_save_abort(s);
    } else {
        st = dsc_ckpt_save_commit(s, m, save_latest, msg, n);
    }
    dsc_manifest_free(m);
    return st;
}

static double ck_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

dsc_status_t dsc_save_checkpoint(dsc_engine_t *e, const char *save_dir, const char *tag, const char *client_state,
                                 bool save_latest) {
    static const char fn[] = "dsc_save_checkpoint";
    if (!e) return DSC_ERR_INVALID;
    const double t0 = ck_now();
    const int world = e->world_size;
    char tagbuf[DSC_CKPT_TAG_MAX + 1] = "", msg[DSC_ENGINE_ERRMSG_MAX] = "";
    ck_rec_t mine, *all = calloc((size_t)world, sizeof *all);
    ck_bcast_t *bc = calloc(1, sizeof *bc);
    if (!all || !bc) {
        free(all);
        free(bc);
        return dsc__engine_fail(e, DSC_ERR_NOMEM, "%s: out of memory", fn);
    }
    dsc_comm_set_tag(e->comm, fn);
    dsc_ckpt_save_t *s = NULL;
    dsc_status_t rc = ck_save_checks(e, save_dir, tag, client_state, tagbuf, msg, sizeof msg), st;

    /* 1. Every rank is here (else the communicator's timeout names the absent ones), and
     *    every rank can save, with the same tag (checkpoint.tag_validation). */
    memset(&mine, 0, sizeof mine);
    mine.status = (int32_t)rc;
    mine.a = dsc_ckpt_checksum(tagbuf, strlen(tagbuf));
    snprintf(mine.msg, sizeof mine.msg, "%s", msg);
    st = ck_gather(e, &mine, all);
    if (st) {
        st = ck_comm_fail(e, st, fn, "the first exchange");
        goto out;
    }
    if ((st = ck_first_failure(e, fn, all, msg))) goto out;
    const dsc_config_tag_validation_t tv = e->config->checkpoint.tag_validation;
    for (int q = 1; q < world && tv != DSC_CONFIG_TAG_IGNORE; q++) {
        if (all[q].a == all[0].a) continue;
        if (tv == DSC_CONFIG_TAG_FAIL) {
            st = dsc__engine_fail(e, DSC_ERR_INVALID, "%s: the checkpoint tag name '%s' is not consistent across all "
                                  "ranks (rank %d's differs from rank 0's; checkpoint.tag_validation is Fail)",
                                  fn, tagbuf, q);
            goto out;
        }
        if (e->rank == 0)
            dsc_ctx_log(e->ctx, DSC_LOG_WARN, "%s: the checkpoint tag name '%s' is not consistent across all ranks "
                        "(rank %d's differs); rank 0's is used (checkpoint.tag_validation: Warn)", fn, tagbuf, q);
        break;
    }

    /* 2. Rank 0 creates the temporary directory; every rank learns its path. */
    memset(bc, 0, sizeof *bc);
    if (e->rank == 0) {
        rc = dsc_ckpt_save_begin(save_dir, tagbuf, &s, msg, sizeof msg);
        if (!rc && strlen(dsc_ckpt_save_dir(s)) >= sizeof bc->text) {
            snprintf(msg, sizeof msg, "the checkpoint path '%.200s...' is too long", dsc_ckpt_save_dir(s));
            rc = DSC_ERR_INVALID;
        }
        bc->status = (int32_t)rc;
        snprintf(bc->text, sizeof bc->text, "%s", rc ? msg : dsc_ckpt_save_dir(s));
    }
    if ((st = ck_bcast(e, bc))) {
        st = ck_comm_fail(e, st, fn, "sharing the temporary directory");
        goto out;
    }
    if (bc->status) {
        st = dsc__engine_fail(e, ck_status_of(bc->status), "%s: rank 0: %s", fn, bc->text);
        goto out;
    }

    /* 3. Each rank writes its ranges; 4. reports (file, size, checksum, RNG) to rank 0. */
    bool wrote = false;
    dsc_st_file_info_t info = {0, 0};
    msg[0] = '\0';
    rc = ck_write_file(e, bc->text, &wrote, &info, msg, sizeof msg);
    memset(&mine, 0, sizeof mine);
    mine.status = (int32_t)rc;
    mine.flag = wrote;
    mine.a = info.size;
    mine.b = info.xxh3;
    mine.c = dsc_ctx_rng_state(e->ctx);
    dsc_ctx_dropout_stream(e->ctx, &mine.drop_seed, &mine.drop_offset);
    snprintf(mine.msg, sizeof mine.msg, "%s", msg);
    if ((st = ck_gather(e, &mine, all))) {
        st = ck_comm_fail(e, st, fn, "reporting the written files");
        goto out;
    }

    /* 5. Rank 0 commits (or aborts); 6. everyone learns the result. */
    memset(bc, 0, sizeof *bc);
    if (e->rank == 0) {
        rc = ck_commit(e, s, all, client_state, save_latest, msg, sizeof msg);
        s = NULL; /* commit and abort free it */
        bc->status = (int32_t)rc;
        snprintf(bc->text, sizeof bc->text, "%s", rc ? msg : "");
    }
    if ((st = ck_bcast(e, bc))) {
        st = ck_comm_fail(e, st, fn, "sharing the commit's result");
        goto out;
    }
    if (bc->status) {
        st = dsc__engine_fail(e, ck_status_of(bc->status), "%s: %s", fn, bc->text);
        goto out;
    }
    if (e->rank == 0) {
        uint64_t bytes = 0;
        int files = 0;
        for (int q = 0; q < world; q++) files += all[q].flag, bytes += all[q].a;
        dsc_ctx_log(e->ctx, DSC_LOG_INFO, "saved checkpoint %s/%s: step %lld, %d file(s), %.1f MiB, %.2f s", save_dir,
                    tagbuf, (long long)e->global_steps, files, (double)bytes / 1048576.0, ck_now() - t0);
    }
out:
    if (s) dsc_ckpt_save_abort(s);
    dsc_comm_set_tag(e->comm, NULL);
    free(all);
    free(bc);
    return st;
}

/* ---- load --------------------------------------------------------------------------- */

/* What a load restores, parsed and checked before anything changes. */
typedef struct ck_load {
    dsc_ckpt_t *c;
    char dir_tag[DSC_CKPT_TAG_MAX + 1];
    dsc_manifest_counters_t counters;
    int64_t opt_step, skips_at_min;
    bool load_opt, load_sched, module_only, has_sched;
    int64_t sched_it;
    uint64_t rng;
    uint64_t drop_seed, drop_offset; /* the dropout stream this rank resumes */
    int rng_from; /* the saved rank whose RNG state this rank takes */
    char *client_state;
} ck_load_t;

static dsc_status_t ck_fail_msg(char *msg, size_t n, dsc_status_t st, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
static dsc_status_t ck_fail_msg(char *msg, size_t n, dsc_status_t st, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, n, fmt, ap);
    va_end(ap);
    return st;
}

/* Checks manifest.json against manifest.xxh3 before the manifest is trusted. */
static dsc_status_t ck_verify_manifest(const char *dir, char *msg, size_t n) {
    char *mpath = ck_join(dir, "/", DSC_CKPT_MANIFEST_NAME), *spath = ck_join(dir, "/", CK_SIDECAR);
    dsc_status_t st = DSC_OK;
    char line[128] = "";
    if (!mpath || !spath) st = ck_fail_msg(msg, n, DSC_ERR_NOMEM, "out of memory");
    FILE *f = st ? NULL : fopen(spath, "rb");
    if (!st && !f)
        st = ck_fail_msg(msg, n, DSC_ERR_IO, "checkpoint file '%s' is missing: the manifest cannot be verified", spath);
    size_t got = f ? fread(line, 1, sizeof line - 1, f) : 0;
    if (f) fclose(f);
    line[got] = '\0';
    char want[64];
    snprintf(want, sizeof want, "  %s\n", DSC_CKPT_MANIFEST_NAME);
    uint64_t h = 0;
    bool ok = got == 16 + strlen(want) && strcmp(line + 16, want) == 0;
    for (int i = 0; ok && i < 16; i++) {
        char ch = line[i];
        int v = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
        ok = v >= 0;
        h = (h << 4) | (uint64_t)(v & 15);
    }
    if (!st && !ok)
        st = ck_fail_msg(msg, n, DSC_ERR_CORRUPT, "checkpoint file '%s' is corrupt (expected \"<16 hex digits>  %s\")",
                         spath, DSC_CKPT_MANIFEST_NAME);
    dsc_st_file_info_t info;
    char err[600];
    if (!st && dsc_ckpt_checksum_file(mpath, &info, err, sizeof err) != DSC_OK)
        st = ck_fail_msg(msg, n, DSC_ERR_IO, "checkpoint file '%s' is missing or unreadable: %s", mpath, err);
    if (!st && info.xxh3 != h)
        st = ck_fail_msg(msg, n, DSC_ERR_CORRUPT,
                         "checkpoint file '%s' fails its checksum (xxh3_64 %016llx, %s records %016llx)", mpath,
                         (unsigned long long)info.xxh3, CK_SIDECAR, (unsigned long long)h);
    free(mpath);
    free(spath);
    return st;
}

/* Reads one element of every piece of `name` that overlaps [a, b): opens (and, lazily,
 * verifies the checksum of) every file this rank will read from. */
static dsc_status_t ck_probe(dsc_ckpt_t *c, const char *name, int64_t a, int64_t b, char *msg, size_t n) {
    const dsc_manifest_t *m = dsc_ckpt_manifest(c);
    dsc_manifest_tensor_t t;
    dsc_manifest_tensor_at(m, dsc_manifest_find(m, name), &t);
    for (int j = 0; j < t.n_pieces; j++) {
        dsc_manifest_piece_t p;
        dsc_manifest_piece_at(m, dsc_manifest_find(m, name), j, &p);
        if (p.end <= a || p.begin >= b) continue;
        float x;
        int64_t at = p.begin > a ? p.begin : a;
        dsc_status_t st = dsc_ckpt_read(c, name, at, at + 1, &x, DSC_F32, msg, n);
        if (st) return st;
    }
    return DSC_OK;
}

/* The checkpoint's tensor `name` must exist as `kind` with the shape of parameter p. */
static dsc_status_t ck_check_tensor(const dsc_ckpt_t *c, const char *name, const char *kind, const dsc_param_info_t *p,
                                    char *msg, size_t n) {
    const dsc_manifest_t *m = dsc_ckpt_manifest(c);
    int ti = dsc_manifest_find(m, name);
    if (ti < 0)
        return ck_fail_msg(msg, n, DSC_ERR_INVALID, "checkpoint '%s' has no %s '%s'%s", dsc_ckpt_dir(c),
                           strcmp(kind, "param") ? "optimizer state" : "parameter", name,
                           strcmp(kind, "param") ? "" : " (was it saved from another model?)");
    dsc_manifest_tensor_t t;
    dsc_manifest_tensor_at(m, ti, &t);
    bool same = t.ndim == p->ndim && strcmp(t.kind, kind) == 0;
    for (int d = 0; same && d < p->ndim; d++) same = t.shape[d] == p->shape[d];
    if (!same)
        return ck_fail_msg(msg, n, DSC_ERR_INVALID,
                           "checkpoint '%s': tensor '%s' (kind %s, %d dims, %lld elements) does not match the model's "
                           "parameter '%s' (kind %s, %d dims, %lld elements)",
                           dsc_ckpt_dir(c), name, t.kind, t.ndim, (long long)t.numel, p->name, kind, p->ndim,
                           (long long)p->numel);
    return DSC_OK;
}

/* The optimizer section's type and step; the engine's optimizer must be of the same type. */
static dsc_status_t ck_check_optimizer(dsc_engine_t *e, ck_load_t *L, char *msg, size_t n) {
    const char *blob = dsc_manifest_blob(dsc_ckpt_manifest(L->c), DSC_MANIFEST_OPTIMIZER);
    const char *mine = dsc_optim_type_name(dsc_optim_get_params(e->optimizer)->type);
    if (!blob)
        return ck_fail_msg(msg, n, DSC_ERR_INVALID, "checkpoint '%s' holds no optimizer state (it was saved without an "
                           "optimizer): load it with load_optimizer_states false", dsc_ckpt_dir(L->c));
    json_t *j = json_loads(blob, 0, NULL), *ls;
    const char *type = j ? json_string_value(json_object_get(j, "type")) : NULL;
    json_t *step = j ? json_object_get(j, "step") : NULL;
    dsc_status_t st = DSC_OK;
    if (!type || !json_is_integer(step) || json_integer_value(step) < 0)
        st = ck_fail_msg(msg, n, DSC_ERR_CORRUPT, "checkpoint '%s': %s: the optimizer section lacks \"type\" or \"step\"",
                         dsc_ckpt_dir(L->c), DSC_CKPT_MANIFEST_NAME);
    else if (strcmp(type, mine) != 0)
        st = ck_fail_msg(msg, n, DSC_ERR_INVALID, "checkpoint '%s' holds the state of a %s optimizer but this engine's "
                         "optimizer is %s: load it with load_optimizer_states false to take the weights only",
                         dsc_ckpt_dir(L->c), type, mine);
    if (!st) {
        L->opt_step = json_integer_value(step);
        ls = json_object_get(json_object_get(j, "loss_scaler"), "consecutive_skips_at_min");
        L->skips_at_min = json_is_integer(ls) && json_integer_value(ls) >= 0 ? json_integer_value(ls) : 0;
    }
    json_decref(j);
    return st;
}

/* The LR scheduler's {"last_batch_iteration": N}. */
static dsc_status_t ck_check_scheduler(ck_load_t *L, char *msg, size_t n) {
    const char *blob = dsc_manifest_blob(dsc_ckpt_manifest(L->c), DSC_MANIFEST_LR_SCHEDULER);
    if (!blob)
        return ck_fail_msg(msg, n, DSC_ERR_INVALID, "checkpoint '%s' holds no LR scheduler state (it was saved without "
                           "a scheduler): load it with load_lr_scheduler_states false to start the schedule from its "
                           "beginning", dsc_ckpt_dir(L->c));
    json_t *j = json_loads(blob, 0, NULL), *it = j ? json_object_get(j, "last_batch_iteration") : NULL;
    bool ok = json_is_integer(it) && json_integer_value(it) >= -1;
    if (ok) L->sched_it = json_integer_value(it);
    L->has_sched = ok;
    json_decref(j);
    return ok ? DSC_OK : ck_fail_msg(msg, n, DSC_ERR_CORRUPT, "checkpoint '%s': %s: lr_scheduler has no valid "
                                     "\"last_batch_iteration\"", dsc_ckpt_dir(L->c), DSC_CKPT_MANIFEST_NAME);
}

/* splitmix64 finaliser: derives the RNG state of a rank the saving run did not have. */
static uint64_t ck_mix(uint64_t z) {
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Phase 1, local and read-only: open, verify and check everything this rank will read. */
static dsc_status_t ck_load_prepare(dsc_engine_t *e, const char *load_dir, const char *tag, ck_load_t *L, char *msg,
                                    size_t n) {
    if (!load_dir || !*load_dir) return ck_fail_msg(msg, n, DSC_ERR_INVALID, "load_dir is empty");
    dsc_status_t st;
    if (!tag) {
        bool found = false;
        if ((st = dsc_ckpt_latest_tag(load_dir, L->dir_tag, sizeof L->dir_tag, &found, msg, n))) return st;
        if (!found)
            return ck_fail_msg(msg, n, DSC_ERR_IO, "no checkpoint in '%s': the file '%s/%s' does not exist (pass a tag, "
                               "or check the directory)", load_dir, load_dir, DSC_CKPT_LATEST_NAME);
    } else {
        if ((st = dsc_ckpt_check_tag(tag, msg, n))) return st;
        snprintf(L->dir_tag, sizeof L->dir_tag, "%s", tag);
    }
    char *dir = ck_join(load_dir, "/", L->dir_tag);
    struct stat sb;
    if (!dir) return ck_fail_msg(msg, n, DSC_ERR_NOMEM, "out of memory");
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        st = tag ? ck_fail_msg(msg, n, DSC_ERR_IO, "checkpoint directory '%s' does not exist", dir)
                 : ck_fail_msg(msg, n, DSC_ERR_IO, "'%s/%s' names checkpoint '%s', but '%s' does not exist", load_dir,
                               DSC_CKPT_LATEST_NAME, L->dir_tag, dir);
    if (!st) st = ck_verify_manifest(dir, msg, n);
    if (!st) st = dsc_ckpt_open_dir(dir, DSC_CKPT_VERIFY_LAZY, &L->c, msg, n);
    free(dir);
    if (st) return st;
    const dsc_manifest_t *m = dsc_ckpt_manifest(L->c);
    dsc_manifest_counters(m, &L->counters);

    /* Parameters: every one of the model's, nothing else of kind "param". */
    int64_t a, b;
    const int np = dsc_model_param_count(e->model);
    for (int i = 0; i < np && !st; i++) {
        dsc_param_info_t p;
        dsc_model_param_info(e->model, i, &p);
        st = ck_check_tensor(L->c, p.name, "param", &p, msg, n);
        if (!st && ck_piece(e, e->rank, &p, i, &a, &b)) st = ck_probe(L->c, p.name, a, b, msg, n);
    }
    for (int t = 0; t < dsc_manifest_tensor_count(m) && !st; t++) {
        dsc_manifest_tensor_t mt;
        dsc_manifest_tensor_at(m, t, &mt);
        if (strcmp(mt.kind, "param") == 0 && !dsc_model_find_param(e->model, mt.name))
            st = ck_fail_msg(msg, n, DSC_ERR_INVALID, "checkpoint '%s' holds parameter '%s', which the model does not "
                             "have (was it saved from another model?)", dsc_ckpt_dir(L->c), mt.name);
    }
    /* Optimizer state by name and range. */
    if (!st && L->load_opt && !e->optimizer) {
        L->load_opt = false;
        dsc_ctx_log(e->ctx, DSC_LOG_WARN, "dsc_load_checkpoint: the engine has no optimizer: the checkpoint's optimizer "
                    "state is not loaded");
    }
    if (!st && L->load_opt) st = ck_check_optimizer(e, L, msg, n);
    for (int s = 0; s < (L->load_opt ? ck_n_states(e) : 0) && !st; s++)
        for (int i = 0; i < np && !st; i++) {
            dsc_param_info_t p;
            dsc_model_param_info(e->model, i, &p);
            char *name = ck_join(dsc_optim_state_name(e->optimizer, s), "/", p.name);
            st = name ? ck_check_tensor(L->c, name, dsc_optim_state_name(e->optimizer, s), &p, msg, n)
                      : ck_fail_msg(msg, n, DSC_ERR_NOMEM, "out of memory");
            if (!st && ck_piece(e, e->rank, &p, i, &a, &b)) st = ck_probe(L->c, name, a, b, msg, n);
            free(name);
        }
    if (!st && L->load_sched && e->scheduler) st = ck_check_scheduler(L, msg, n);
    /* RNG: this rank's own state; a rank the saving run did not have derives one. */
    if (!st && !L->module_only) {
        L->rng_from = e->rank < L->counters.world_size ? e->rank : e->rank % L->counters.world_size;
        if (dsc_manifest_rng(m, L->rng_from, "ctx", &L->rng) != DSC_OK)
            st = ck_fail_msg(msg, n, DSC_ERR_CORRUPT, "checkpoint '%s': %s has no RNG state for rank %d",
                             dsc_ckpt_dir(L->c), DSC_CKPT_MANIFEST_NAME, L->rng_from);
        else if (L->rng_from != e->rank)
            L->rng = ck_mix(L->rng ^ ck_mix((uint64_t)e->rank));
        /* The dropout stream. A checkpoint from before the Philox dropout has none: its
         * masks came from the sequential generator, whose position has no counterpart in
         * the Philox stream, so the stream restarts at (that saved state, 0): a resume is
         * still reproducible, but draws other masks than the old code would have. */
        bool has_seed = dsc_manifest_rng(m, L->rng_from, CK_RNG_DROP_SEED, &L->drop_seed) == DSC_OK;
        bool has_offset = dsc_manifest_rng(m, L->rng_from, CK_RNG_DROP_OFFSET, &L->drop_offset) == DSC_OK;
        if (!st && has_seed != has_offset)
            st = ck_fail_msg(msg, n, DSC_ERR_CORRUPT,
                             "checkpoint '%s': %s has the dropout stream's %s but not its %s for rank %d",
                             dsc_ckpt_dir(L->c), DSC_CKPT_MANIFEST_NAME, has_seed ? "seed" : "offset",
                             has_seed ? "offset" : "seed", L->rng_from);
        else if (!st && !has_seed) {
            dsc_ctx_log(e->ctx, DSC_LOG_WARN,
                        "checkpoint '%s' predates the Philox dropout stream (no %s / %s for rank %d): dropout "
                        "restarts from (seed = its saved RNG state, offset 0), so the masks differ from an "
                        "uninterrupted run",
                        dsc_ckpt_dir(L->c), CK_RNG_DROP_SEED, CK_RNG_DROP_OFFSET, L->rng_from);
            L->drop_seed = L->rng;
            L->drop_offset = 0;
        } else if (!st && L->rng_from != e->rank) {
            L->drop_seed = ck_mix(L->drop_seed ^ ck_mix((uint64_t)e->rank));
        }
    }
    const char *cs = dsc_manifest_blob(m, DSC_MANIFEST_CLIENT_STATE);
    if (!st && cs && !(L->client_state = strdup(cs))) st = ck_fail_msg(msg, n, DSC_ERR_NOMEM, "out of memory");
    return st;
}

/* Phase 2, local: reads this rank's ranges into the engine, restores the scheduler and
 * the loss scaler. */
static dsc_status_t ck_load_read(dsc_engine_t *e, ck_load_t *L, char *msg, size_t n) {
    int64_t a, b;
    const int np = dsc_model_param_count(e->model);
    dsc_status_t st = DSC_OK;
    for (int s = -1; s < (L->load_opt ? ck_n_states(e) : 0) && !st; s++) {
        for (int i = 0; i < np && !st; i++) {
            dsc_param_info_t p;
            dsc_model_param_info(e->model, i, &p);
            if (!ck_piece(e, e->rank, &p, i, &a, &b)) continue;
            char *name = s < 0 ? ck_join(p.name, "", "") : ck_join(dsc_optim_state_name(e->optimizer, s), "/", p.name);
            st = name ? ck_read_piece(e, L->c, name, a, b, s, ck_local(e, &p, i, a), msg, n)
                      : ck_fail_msg(msg, n, DSC_ERR_NOMEM, "out of memory");
            free(name);
        }
    }
    if (!st && L->load_opt && (st = dsc__engine_state_flush(e))) /* the NVMe swap file complete */
        snprintf(msg, n, "%s", dsc_ctx_errmsg(e->ctx));
    if (!st && L->load_opt) {
        st = dsc_optim_set_step_count(e->optimizer, L->opt_step);
        dsc_loss_scaler_state_t ss;
        dsc_loss_scaler_state_get(&e->scaler, &ss);
        const dsc_ckpt_loss_scaler_t *ls = &L->counters.loss_scaler;
        if (ls->dynamic == dsc_loss_scaler_is_dynamic(&e->scaler)) {
            ss = (dsc_loss_scaler_state_t){ls->scale, ls->iter, ls->last_overflow_iter, ls->hysteresis, L->skips_at_min};
            if (!st && dsc_loss_scaler_state_set(&e->scaler, &ss) != DSC_OK)
                st = ck_fail_msg(msg, n, DSC_ERR_CORRUPT, "checkpoint '%s': invalid loss scaler state (scale %g, iter "
                                 "%lld)", dsc_ckpt_dir(L->c), ls->scale, (long long)ls->iter);
        } else if (e->rank == 0) {
            dsc_ctx_log(e->ctx, DSC_LOG_WARN, "dsc_load_checkpoint: the checkpoint's loss scaler is %s but this "
                        "engine's is %s: the loss scaler starts afresh", ls->dynamic ? "dynamic" : "static",
                        ls->dynamic ? "static" : "dynamic");
        }
    }
    if (!st && L->has_sched) {
        dsc_sched_state_t ss = {L->sched_it};
        if (dsc_sched_state_set(e->scheduler, &ss) != DSC_OK)
            st = ck_fail_msg(msg, n, DSC_ERR_INVALID, "restoring the LR scheduler: %s", dsc_sched_errmsg(e->scheduler));
        /* what the next update's momentum will be, as dsc_step sets it */
        if (!st && e->optimizer) dsc__engine_apply_scheduled_momentum(e);
    }
    return st;
}

/* A checkpoint is saved at an accumulation boundary of the run that saved it; the resumed
 * run may accumulate over another number of micro-batches (another micro batch size or
 * world size for the same train_batch_size). Its first update must come after a whole
 * window of its own, so micro_steps (whose multiples of GAS are the boundaries) is rounded
 * up to the next multiple of this run's GAS. */
static int64_t ck_resume_micro_steps(int64_t saved, int gas) {
    if (gas < 1 || saved < 0) return saved;
    const int64_t r = saved % gas;
    return r ? saved + (gas - r) : saved;
}

/* Phase 3, collective: stage 0 assembles the replicated buffers from every rank's range,
 * then the working copy is rebuilt from the fp32 master. */
static dsc_status_t ck_load_finish(dsc_engine_t *e, const ck_load_t *L, const char *fn) {
    const int64_t k = e->plan.padded / e->world_size;
    dsc_status_t st = DSC_OK;
    if (e->plan.stage == 0 && e->world_size > 1)
        for (int s = -1; s < (L->load_opt ? ck_n_states(e) : 0) && !st; s++) {
            float *buf = s < 0 ? e->master : dsc_optim_state_data(e->optimizer, s);
            st = dsc_comm_allgather(e->comm, buf + (size_t)e->rank * (size_t)k, buf, (size_t)k, DSC_F32);
            if (st) return ck_comm_fail(e, st, fn, "assembling the replicated state");
        }
    if (e->model_dtype != DSC_F32) {
        st = dsc__engine_rebuild_working_copy(e);
        if (st) return dsc__engine_fail(e, st, "%s: rebuilding the working copy failed", fn);
    }
    if ((st = dsc__zero_finish_step(e->zero))) return st; /* its message names the rank; gradients zeroed */
    e->backwards_since_step = 0;
    e->last_loss = e->grad_norm = e->grad_norm_clipped = NAN;
    e->last_loss_slot = -1;
    e->n_losses = 0;
    e->loss_scale_used = dsc_loss_scaler_scale(&e->scaler);
    dsc__engine_note_seed_hint(e);
    if (L->module_only) return DSC_OK;
    e->global_steps = L->counters.global_steps;
    e->global_samples = L->counters.global_samples;
    e->skipped_steps = L->counters.skipped_steps;
    e->micro_steps = ck_resume_micro_steps(L->counters.micro_steps, e->gas);
    dsc_ctx_set_rng_state(e->ctx, L->rng);
    dsc_ctx_set_dropout_stream(e->ctx, L->drop_seed, L->drop_offset);
    if (e->micro_steps != L->counters.micro_steps && e->rank == 0)
        dsc_ctx_log(e->ctx, DSC_LOG_INFO, "%s: the checkpoint's %lld micro-step(s) are not a whole number of this "
                    "run's accumulation windows (%d micro-batch(es) per update, saved with %d rank(s), now %d): "
                    "micro_steps restarts at %lld, so the next update comes after %d new micro-batch(es)", fn,
                    (long long)L->counters.micro_steps, e->gas, L->counters.world_size, e->world_size,
                    (long long)e->micro_steps, e->gas);
    return DSC_OK;
}

dsc_status_t dsc_load_checkpoint(dsc_engine_t *e, const char *load_dir, const char *tag, bool load_optimizer_states,
                                 bool load_lr_scheduler_states, bool load_module_only, char **client_state_out) {
    static const char fn[] = "dsc_load_checkpoint";
    if (client_state_out) *client_state_out = NULL;
    if (!e) return DSC_ERR_INVALID;
    const double t0 = ck_now();
    ck_load_t L;
    memset(&L, 0, sizeof L);
    L.module_only = load_module_only;
    L.load_opt = load_optimizer_states && !load_module_only;
    L.load_sched = load_lr_scheduler_states && !load_module_only;
    char msg[DSC_ENGINE_ERRMSG_MAX] = "";
    dsc_comm_set_tag(e->comm, fn);
    dsc_status_t rc = ck_load_prepare(e, load_dir, tag, &L, msg, sizeof msg);
    dsc_status_t st = ck_agree(e, fn, rc, msg); /* nothing changed yet */
    if (!st) {
        msg[0] = '\0';
        rc = ck_load_read(e, &L, msg, sizeof msg);
        st = ck_agree(e, fn, rc, msg);
        if (st) {
            snprintf(msg, sizeof msg, "%s", e->errmsg);
            dsc__engine_fail(e, st, "%s (the engine is partially loaded: load a checkpoint again before training)",
                             msg);
        }
    }
    if (!st) st = ck_load_finish(e, &L, fn);
    if (!st && e->rank == 0) {
        const dsc_manifest_counters_t *c = &L.counters;
        dsc_ctx_log(e->ctx, DSC_LOG_INFO, "loaded checkpoint %s (step %lld, saved by %d rank(s) at ZeRO stage %d; now "
                    "%d rank(s) at stage %d): weights%s%s%s in %.2f s", dsc_ckpt_dir(L.c), (long long)c->global_steps,
                    c->world_size, c->zero_stage, e->world_size, e->plan.stage, L.load_opt ? ", optimizer state" : "",
                    L.has_sched ? ", LR scheduler" : "", L.module_only ? "" : ", counters and RNG", ck_now() - t0);
    }
    if (!st && !L.module_only && L.rng_from != e->rank)
        dsc_ctx_log(e->ctx, DSC_LOG_INFO, "%s: rank %d did not exist in the saving run (%d ranks): its RNG state is "
                    "derived from rank %d's", fn, e->rank, L.counters.world_size, L.rng_from);
    if (!st && client_state_out) {
        *client_state_out = L.client_state;
        L.client_state = NULL;
    }
    dsc_comm_set_tag(e->comm, NULL);
    dsc_ckpt_close(L.c);
    free(L.client_state);
    return st;
}

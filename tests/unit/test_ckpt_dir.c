/* Checkpoint directories end to end: a simulated 3-rank ZeRO-style save (each rank writes
 * the element ranges of its flat partition to its own range file), atomic commit and
 * `latest`, loading any element range under another "world size", consolidation, re-saving
 * a tag, leftovers of a crashed save, checksum mismatch / missing / truncated files (each
 * named), `latest` naming a missing tag, removal, and the manifest's strict validation. */
#define _GNU_SOURCE
#include <dirent.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "dsc/ckpt.h"

static char root[256];
static char errbuf[1024];

typedef struct tdesc {
    const char *name, *kind;
    dsc_dtype_t dtype;
    int ndim;
    int64_t shape[2];
    bool frozen;
    const char *alias;
} tdesc_t;

static const tdesc_t model[] = {
    {"wte.weight", "param", DSC_F32, 2, {37, 11}, false, "lm_head.weight"},
    {"h.0.ln.weight", "param", DSC_F32, 1, {11, 0}, true, NULL},
    {"h.0.w", "param", DSC_BF16, 2, {11, 13}, false, NULL},
    {"pos", "param", DSC_F16, 2, {5, 3}, false, NULL},
    {"count", "buffer", DSC_I32, 1, {7, 0}, false, NULL},
    {"wte.weight/exp_avg", "exp_avg", DSC_F32, 2, {37, 11}, false, NULL},
};
#define NT ((int)(sizeof model / sizeof model[0]))

static int64_t numel_of(int t) {
    return model[t].ndim == 1 ? model[t].shape[0] : model[t].shape[0] * model[t].shape[1];
}

/* The value of element k of tensor t in the checkpoint of `step` (salted), as float before
 * rounding to the stored dtype. */
static float value(int64_t step, int salt, int t, int64_t k) {
    if (model[t].dtype == DSC_I32) return (float)(step * 1000 + salt * 100 + k);
    return (float)step * 0.5f + (float)salt * 0.125f + (float)t * 3.0f - (float)k * 0.0625f;
}

/* The stored value as f64 (through the stored dtype). */
static double stored(int64_t step, int salt, int t, int64_t k) {
    float v = value(step, salt, t, k);
    unsigned char b[8];
    double d;
    dsc_convert(b, model[t].dtype, &v, DSC_F32, 1);
    dsc_convert(&d, DSC_F64, b, model[t].dtype, 1);
    return d;
}

/* "a/b" in one of 8 rotating buffers (a must not point into them for the 8 calls). */
static char *path2(const char *a, const char *b) {
    static char buf[8][1024];
    static int k;
    char *p = buf[k++ % 8];
    size_t la = strlen(a), lb = strlen(b);
    if (la + lb + 2 > sizeof buf[0]) la = lb = 0;
    memmove(p, a, la);
    p[la] = '/';
    memmove(p + la + 1, b, lb + 1);
    return p;
}

/* Saves a checkpoint as `world` ranks would: the tensors are concatenated into one flat
 * space split in `world` equal parts; rank r writes every piece of part r. */
static dsc_status_t save(const char *save_dir, const char *tag, int64_t step, int salt, int world) {
    char tagbuf[64];
    if (!tag) {
        dsc_ckpt_default_tag(step, tagbuf, sizeof tagbuf);
        tag = tagbuf;
    }
    dsc_ckpt_save_t *s;
    dsc_status_t st = dsc_ckpt_save_begin(save_dir, tag, &s, errbuf, sizeof errbuf);
    if (st) return st;
    dsc_manifest_t *m;
    dsc_manifest_new(&m);
    int64_t total = 0;
    for (int t = 0; t < NT; t++) total += numel_of(t);
    int64_t part = (total + world - 1) / world;
    for (int t = 0; t < NT && !st; t++) {
        dsc_manifest_tensor_t d;
        memset(&d, 0, sizeof d);
        d.name = model[t].name;
        d.kind = model[t].kind;
        d.dtype = model[t].dtype;
        d.ndim = model[t].ndim;
        d.shape[0] = model[t].shape[0];
        d.shape[1] = model[t].shape[1];
        d.frozen = model[t].frozen;
        d.n_aliases = model[t].alias ? 1 : 0;
        d.aliases = &model[t].alias;
        st = dsc_manifest_add_tensor(m, &d, errbuf, sizeof errbuf);
    }
    /* Each rank: its own writer, declarations, then data. */
    for (int r = 0; r < world && !st; r++) {
        char fname[64];
        dsc_ckpt_rank_file_name(r, fname, sizeof fname);
        int64_t lo = r * part, hi = (r + 1) * part < total ? (r + 1) * part : total;
        dsc_st_writer_t *w;
        st = dsc_st_writer_open(path2(dsc_ckpt_save_dir(s), fname), DSC_ST_NO_FSYNC, &w, errbuf, sizeof errbuf);
        if (st) break;
        dsc_st_writer_set_metadata(w, "rank", fname, NULL, 0);
        int64_t off = 0;
        for (int pass = 0; pass < 2 && !st; pass++) {
            off = 0;
            for (int t = 0; t < NT && !st; t++) {
                int64_t n = numel_of(t);
                int64_t b = lo > off ? lo - off : 0, e = hi - off < n ? hi - off : n;
                if (b < e) {
                    if (pass == 0) {
                        st = dsc_st_writer_declare_range(w, model[t].name, model[t].dtype, b, e, errbuf, sizeof errbuf);
                        if (!st)
                            st = dsc_manifest_add_piece(m, model[t].name, fname, b, e, NULL, errbuf, sizeof errbuf);
                    } else {
                        float *v = malloc((size_t)(e - b) * sizeof *v);
                        for (int64_t k = b; k < e; k++) v[k - b] = value(step, salt, t, k);
                        /* two calls per piece: ranges of a tensor written in parts */
                        int64_t h = (e - b) / 2;
                        st = dsc_st_write(w, v, DSC_F32, (size_t)h, errbuf, sizeof errbuf);
                        if (!st) st = dsc_st_write(w, v + h, DSC_F32, (size_t)(e - b - h), errbuf, sizeof errbuf);
                        free(v);
                    }
                }
                off += n;
            }
        }
        dsc_st_file_info_t info;
        if (st) {
            dsc_st_writer_abort(w);
            break;
        }
        st = dsc_st_writer_close(w, &info, errbuf, sizeof errbuf);
        if (!st) st = dsc_manifest_add_file(m, fname, &info, errbuf, sizeof errbuf);
    }
    dsc_manifest_counters_t c = DSC_MANIFEST_COUNTERS_INIT;
    c.global_steps = step;
    c.global_samples = step * 8;
    c.skipped_steps = salt;
    c.micro_steps = step * 2;
    c.world_size = world;
    c.zero_stage = 2;
    c.loss_scaler = (dsc_ckpt_loss_scaler_t){true, 32768.0, step, 3, 2};
    if (!st) st = dsc_manifest_set_counters(m, &c, errbuf, sizeof errbuf);
    if (!st) st = dsc_manifest_set_config(m, "{\"train_batch_size\": 8}\n", errbuf, sizeof errbuf);
    if (!st)
        st =
            dsc_manifest_set_blob(m, DSC_MANIFEST_LR_SCHEDULER, "{\"last_batch_iteration\": 4}", errbuf, sizeof errbuf);
    if (!st)
        st = dsc_manifest_set_blob(m, DSC_MANIFEST_DATA_LOADER, "{\"epoch\": 1, \"index\": 17}", errbuf, sizeof errbuf);
    if (!st)
        st = dsc_manifest_set_blob(m, DSC_MANIFEST_CLIENT_STATE, "[1, \"two\", {\"x\": null}]", errbuf, sizeof errbuf);
    if (!st)
        st = dsc_manifest_set_blob(m, DSC_MANIFEST_OPTIMIZER, "{\"type\": \"adamw\", \"step\": 5, \"lr\": 0.001}",
                                   errbuf, sizeof errbuf);
    for (int r = 0; r < world && !st; r++)
        st = dsc_manifest_add_rng(m, r, "ctx", 0xfedcba9876543210ull + (uint64_t)r, errbuf, sizeof errbuf);
    if (st) {
        dsc_ckpt_save_abort(s);
        dsc_manifest_free(m);
        return st;
    }
    st = dsc_ckpt_save_commit(s, m, true, errbuf, sizeof errbuf);
    dsc_manifest_free(m);
    return st;
}

/* Checks a loaded checkpoint against (step, salt): every tensor in full and random ranges. */
static void check_values(dsc_ckpt_t *c, int64_t step, int salt) {
    for (int t = 0; t < NT; t++) {
        int64_t n = numel_of(t);
        double *got = malloc((size_t)n * sizeof *got);
        CHECK_OK(dsc_ckpt_read(c, model[t].name, 0, n, got, DSC_F64, errbuf, sizeof errbuf));
        bool same = true;
        for (int64_t k = 0; k < n; k++) same = same && got[k] == stored(step, salt, t, k);
        CHECK_MSG(same, "tensor %s of step %lld", model[t].name, (long long)step);
        for (int trial = 0; trial < 10; trial++) {
            int64_t b = rand() % n, e = b + rand() % (n - b + 1);
            float f[512];
            CHECK_OK(dsc_ckpt_read(c, model[t].name, b, e, f, DSC_F32, errbuf, sizeof errbuf));
            same = true;
            for (int64_t k = b; k < e; k++) same = same && f[k - b] == (float)stored(step, salt, t, k);
            CHECK_MSG(same, "tensor %s range [%lld, %lld)", model[t].name, (long long)b, (long long)e);
        }
        free(got);
    }
    /* Through the alias. */
    float a[3];
    CHECK_OK(dsc_ckpt_read(c, "lm_head.weight", 5, 8, a, DSC_F32, errbuf, sizeof errbuf));
    CHECK(a[0] == (float)stored(step, salt, 0, 5) && a[2] == (float)stored(step, salt, 0, 7));
    const dsc_manifest_t *m = dsc_ckpt_manifest(c);
    dsc_manifest_counters_t cn;
    dsc_manifest_counters(m, &cn);
    CHECK(cn.global_steps == step && cn.global_samples == step * 8 && cn.skipped_steps == salt &&
          cn.micro_steps == step * 2 && cn.zero_stage == 2 && cn.loss_scaler.dynamic &&
          cn.loss_scaler.scale == 32768.0 && cn.loss_scaler.iter == step && cn.loss_scaler.last_overflow_iter == 3 &&
          cn.loss_scaler.hysteresis == 2);
}

static int count_dot_entries(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL)
        if (e->d_name[0] == '.' && strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    if (d) closedir(d);
    return n;
}

static char *read_text(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    static char buf[4096];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static void test_save_load(const char *sd) {
    CHECK_OK(save(sd, NULL, 5, 0, 3));
    CHECK(strcmp(read_text(path2(sd, "latest")), "global_step5") == 0);
    CHECK(count_dot_entries(sd) == 0);
    CHECK(access(path2(sd, "latest.tmp"), F_OK) != 0);
    bool found;
    char tag[64];
    CHECK_OK(dsc_ckpt_latest_tag(sd, tag, sizeof tag, &found, errbuf, sizeof errbuf));
    CHECK(found && strcmp(tag, "global_step5") == 0);
    dsc_ckpt_t *c;
    CHECK_OK(dsc_ckpt_open(sd, NULL, DSC_CKPT_VERIFY_ALL, &c, errbuf, sizeof errbuf));
    if (!c) return;
    CHECK(strcmp(dsc_ckpt_tag(c), "global_step5") == 0);
    check_values(c, 5, 0);
    const dsc_manifest_t *m = dsc_ckpt_manifest(c);
    CHECK(strcmp(dsc_manifest_config(m), "{\"train_batch_size\": 8}\n") == 0);
    CHECK(strcmp(dsc_manifest_blob(m, DSC_MANIFEST_LR_SCHEDULER), "{\"last_batch_iteration\":4}") == 0);
    CHECK(strcmp(dsc_manifest_blob(m, DSC_MANIFEST_DATA_LOADER), "{\"epoch\":1,\"index\":17}") == 0);
    CHECK(strcmp(dsc_manifest_blob(m, DSC_MANIFEST_CLIENT_STATE), "[1,\"two\",{\"x\":null}]") == 0);
    CHECK(strcmp(dsc_manifest_blob(m, DSC_MANIFEST_OPTIMIZER), "{\"type\":\"adamw\",\"step\":5,\"lr\":0.001}") == 0);
    uint64_t rs;
    CHECK_OK(dsc_manifest_rng(m, 2, "ctx", &rs));
    CHECK(rs == 0xfedcba9876543212ull);
    CHECK(dsc_manifest_rng(m, 3, "ctx", &rs) == DSC_ERR_INVALID);
    CHECK(dsc_manifest_file_count(m) == 3 && dsc_manifest_tensor_count(m) == NT);
    int wi = dsc_manifest_find(m, "lm_head.weight");
    dsc_manifest_tensor_t t;
    CHECK_OK(dsc_manifest_tensor_at(m, wi, &t));
    CHECK(strcmp(t.name, "wte.weight") == 0 && t.n_aliases == 1 && strcmp(t.aliases[0], "lm_head.weight") == 0 &&
          !t.frozen && t.numel == 407);
    CHECK_OK(dsc_manifest_tensor_at(m, dsc_manifest_find(m, "h.0.ln.weight"), &t));
    CHECK(t.frozen && strcmp(t.kind, "param") == 0);
    /* Bad reads. */
    float f[4];
    CHECK(dsc_ckpt_read(c, "nope", 0, 1, f, DSC_F32, errbuf, sizeof errbuf) == DSC_ERR_INVALID);
    CHECK(strstr(errbuf, "'nope'") != NULL);
    CHECK(dsc_ckpt_read(c, "pos", 14, 16, f, DSC_F32, errbuf, sizeof errbuf) == DSC_ERR_INVALID);

    /* Consolidation: all tensors, stored dtypes, tiny chunks. */
    dsc_ckpt_consolidate_options_t o = DSC_CKPT_CONSOLIDATE_OPTIONS_INIT;
    o.chunk_bytes = 24;
    o.writer_flags = DSC_ST_NO_FSYNC;
    const char *full = path2(root, "full.safetensors");
    CHECK_OK(dsc_ckpt_consolidate(c, full, &o, NULL, errbuf, sizeof errbuf));
    dsc_st_reader_t *r;
    CHECK_OK(dsc_st_reader_open(full, &r, errbuf, sizeof errbuf));
    if (r) {
        CHECK(dsc_st_reader_count(r) == NT && strcmp(dsc_st_reader_metadata(r, "format"), "pt") == 0);
        for (int ti = 0; ti < NT; ti++) {
            int idx = dsc_st_reader_find(r, model[ti].name);
            dsc_st_tensor_info_t info;
            CHECK_OK(dsc_st_reader_info(r, idx, &info));
            CHECK(info.dtype == model[ti].dtype && info.ndim == model[ti].ndim && info.shape[0] == model[ti].shape[0]);
            double *g = malloc((size_t)info.numel * sizeof *g);
            CHECK_OK(dsc_st_read(r, idx, 0, info.numel, g, DSC_F64, errbuf, sizeof errbuf));
            bool same = true;
            for (int64_t k = 0; k < info.numel; k++) same = same && g[k] == stored(5, 0, ti, k);
            CHECK_MSG(same, "consolidated %s", model[ti].name);
            free(g);
        }
        dsc_st_reader_close(r);
    }
    /* Params only, as bf16, aliases written, frozen excluded. */
    o.kind = "param";
    o.dtype = DSC_BF16;
    o.write_aliases = true;
    o.include_frozen = false;
    dsc_st_file_info_t info;
    CHECK_OK(dsc_ckpt_consolidate(c, full, &o, &info, errbuf, sizeof errbuf));
    CHECK_OK(dsc_st_reader_open(full, &r, errbuf, sizeof errbuf));
    if (r) {
        CHECK(dsc_st_reader_count(r) == 4); /* wte, lm_head, h.0.w, pos */
        CHECK(dsc_st_reader_find(r, "h.0.ln.weight") < 0 && dsc_st_reader_find(r, "count") < 0);
        int a = dsc_st_reader_find(r, "lm_head.weight"), w = dsc_st_reader_find(r, "wte.weight");
        CHECK(a == w + 1);
        float x[407], y[407];
        CHECK_OK(dsc_st_read(r, a, 0, 407, x, DSC_F32, errbuf, sizeof errbuf));
        CHECK_OK(dsc_st_read(r, w, 0, 407, y, DSC_F32, errbuf, sizeof errbuf));
        bool same = true;
        for (int k = 0; k < 407; k++)
            same = same && x[k] == y[k] && x[k] == dsc_bf16_to_f32(dsc_f32_to_bf16((float)stored(5, 0, 0, k)));
        CHECK(same);
        dsc_st_reader_close(r);
    }
    dsc_st_file_info_t again;
    CHECK_OK(dsc_ckpt_checksum_file(full, &again, errbuf, sizeof errbuf));
    CHECK(again.size == info.size && again.xxh3 == info.xxh3);
    o.kind = "no-such-kind";
    CHECK(dsc_ckpt_consolidate(c, full, &o, NULL, errbuf, sizeof errbuf) == DSC_ERR_INVALID);
    /* A failed consolidation leaves the previous output as it was (issue 14). */
    CHECK_OK(dsc_ckpt_checksum_file(full, &again, errbuf, sizeof errbuf));
    CHECK(again.size == info.size && again.xxh3 == info.xxh3);
    /* ... and never writes into the checkpoint it reads. */
    char inside[1200];
    snprintf(inside, sizeof inside, "%s/rank00000.safetensors", dsc_ckpt_dir(c));
    dsc_st_file_info_t before;
    CHECK_OK(dsc_ckpt_checksum_file(inside, &before, errbuf, sizeof errbuf));
    o.kind = "param";
    CHECK(dsc_ckpt_consolidate(c, inside, &o, NULL, errbuf, sizeof errbuf) == DSC_ERR_INVALID);
    CHECK(strstr(errbuf, "refusing to write") != NULL);
    CHECK_OK(dsc_ckpt_checksum_file(inside, &again, errbuf, sizeof errbuf));
    CHECK(again.size == before.size && again.xxh3 == before.xxh3);
    unlink(full);
    dsc_ckpt_close(c);

    /* Loading under another world size is just other ranges: the same reads work. The tag can
     * also be given explicitly, or the directory. */
    CHECK_OK(dsc_ckpt_open(sd, "global_step5", DSC_CKPT_VERIFY_NONE, &c, errbuf, sizeof errbuf));
    if (c) {
        check_values(c, 5, 0);
        CHECK_OK(dsc_ckpt_verify_files(c, errbuf, sizeof errbuf));
        dsc_ckpt_close(c);
    }
    CHECK_OK(dsc_ckpt_open_dir(path2(sd, "global_step5/"), DSC_CKPT_VERIFY_LAZY, &c, errbuf, sizeof errbuf));
    if (c) {
        CHECK(strcmp(dsc_ckpt_tag(c), "global_step5") == 0);
        dsc_ckpt_close(c);
    }
}

static void test_resave_same_tag(const char *sd) {
    /* Same tag, other world size and data: replaced atomically. */
    CHECK_OK(save(sd, "global_step5", 5, 1, 2));
    CHECK(count_dot_entries(sd) == 0);
    dsc_ckpt_t *c;
    CHECK_OK(dsc_ckpt_open(sd, NULL, DSC_CKPT_VERIFY_ALL, &c, errbuf, sizeof errbuf));
    if (c) {
        check_values(c, 5, 1);
        CHECK(dsc_manifest_file_count(dsc_ckpt_manifest(c)) == 2);
        dsc_ckpt_close(c);
    }
    /* World size larger than the elements of the last ranks: empty rank files are fine. */
    CHECK_OK(save(sd, "many", 6, 2, 7));
    CHECK_OK(dsc_ckpt_open(sd, "many", DSC_CKPT_VERIFY_ALL, &c, errbuf, sizeof errbuf));
    if (c) {
        check_values(c, 6, 2);
        dsc_ckpt_close(c);
    }
}

static pid_t dead_pid(void) {
    pid_t p = fork();
    if (p == 0) _exit(0);
    waitpid(p, NULL, 0);
    return p;
}

static void test_crash_leftovers(const char *sd) {
    CHECK_OK(save(sd, NULL, 6, 0, 3));
    /* A save that crashed: a temp dir with a half-written rank file and no manifest, and a
     * crashed latest update. */
    char tmpname[128];
    snprintf(tmpname, sizeof tmpname, ".tmp-global_step7-%ld", (long)dead_pid());
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s", path2(sd, tmpname));
    CHECK(mkdir(tmp, 0755) == 0);
    write_text(path2(tmp, "rank00000.safetensors"), "\x40\x00\x00\x00\x00\x00\x00\x00{\"a\":{\"dty");
    write_text(path2(sd, "latest.tmp"), "global_step7");
    /* A complete directory whose commit crashed before `latest` moved. */
    CHECK_OK(save(sd, "global_step9", 9, 0, 3));
    write_text(path2(sd, "latest"), "global_step6");
    dsc_ckpt_t *c;
    CHECK_OK(dsc_ckpt_open(sd, NULL, DSC_CKPT_VERIFY_ALL, &c, errbuf, sizeof errbuf));
    if (c) {
        CHECK(strcmp(dsc_ckpt_tag(c), "global_step6") == 0);
        check_values(c, 6, 0);
        dsc_ckpt_close(c);
    }
    /* An in-progress save of a live process must survive the cleanup; a stale one must not. */
    char livename[128];
    snprintf(livename, sizeof livename, ".tmp-other-%ld", (long)getppid());
    CHECK(mkdir(path2(sd, livename), 0755) == 0);
    CHECK_OK(save(sd, NULL, 8, 0, 2));
    CHECK(access(tmp, F_OK) != 0);
    CHECK(access(path2(sd, livename), F_OK) == 0);
    rmdir(path2(sd, livename));
    CHECK(strcmp(read_text(path2(sd, "latest")), "global_step8") == 0);
    CHECK(access(path2(sd, "latest.tmp"), F_OK) != 0);
    CHECK_OK(dsc_ckpt_open(sd, NULL, DSC_CKPT_VERIFY_ALL, &c, errbuf, sizeof errbuf));
    if (c) {
        check_values(c, 8, 0);
        dsc_ckpt_close(c);
    }
}

static bool copy_file(const char *from, const char *to) {
    FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
    bool ok = a && b;
    char buf[65536];
    size_t n;
    while (ok && (n = fread(buf, 1, sizeof buf, a)) > 0) ok = fwrite(buf, 1, n, b) == n;
    if (a) fclose(a);
    if (b) ok = fclose(b) == 0 && ok;
    return ok;
}

static void test_damaged_files(const char *sd) {
    CHECK_OK(save(sd, NULL, 10, 0, 3));
    char dir[1024], r1[1100], keep[700];
    snprintf(dir, sizeof dir, "%s", path2(sd, "global_step10"));
    snprintf(r1, sizeof r1, "%s/rank00001.safetensors", dir);
    snprintf(keep, sizeof keep, "%s/keep", root);
    CHECK(copy_file(r1, keep));
    /* Checksum mismatch: one data byte flipped, size unchanged. */
    FILE *f = fopen(r1, "r+b");
    fseek(f, -3, SEEK_END);
    int ch = fgetc(f);
    fseek(f, -3, SEEK_END);
    fputc(ch ^ 0x10, f);
    fclose(f);
    dsc_ckpt_t *c;
    CHECK(dsc_ckpt_open(sd, NULL, DSC_CKPT_VERIFY_ALL, &c, errbuf, sizeof errbuf) == DSC_ERR_CORRUPT);
    CHECK_MSG(strstr(errbuf, r1) && strstr(errbuf, "checksum"), "%s", errbuf);
    /* Lazily: reads from the intact files work, the first touching rank 1 fails naming it. */
    CHECK_OK(dsc_ckpt_open(sd, NULL, DSC_CKPT_VERIFY_LAZY, &c, errbuf, sizeof errbuf));
    if (c) {
        float v[4];
        CHECK_OK(dsc_ckpt_read(c, "wte.weight", 0, 4, v, DSC_F32, errbuf, sizeof errbuf));
        dsc_status_t st = DSC_OK;
        for (int t = 0; t < NT && !st; t++) {
            double *g = malloc((size_t)numel_of(t) * sizeof *g);
            st = dsc_ckpt_read(c, model[t].name, 0, numel_of(t), g, DSC_F64, errbuf, sizeof errbuf);
            free(g);
        }
        CHECK(st == DSC_ERR_CORRUPT && strstr(errbuf, r1) != NULL);
        CHECK(dsc_ckpt_verify_files(c, errbuf, sizeof errbuf) == DSC_ERR_CORRUPT && strstr(errbuf, r1) != NULL);
        dsc_ckpt_close(c);
    }
    CHECK(copy_file(keep, r1));
    /* Truncated by one byte. */
    CHECK(truncate(r1, 1000) == 0);
    CHECK(dsc_ckpt_open(sd, NULL, DSC_CKPT_VERIFY_NONE, &c, errbuf, sizeof errbuf) == DSC_ERR_CORRUPT);
    CHECK_MSG(strstr(errbuf, r1) && strstr(errbuf, "truncated"), "%s", errbuf);
    CHECK(copy_file(keep, r1));
    /* Every file deleted in turn. */
    DIR *d = opendir(dir);
    struct dirent *e;
    char names[16][256];
    int n = 0;
    while (d && (e = readdir(d)) != NULL && n < 16)
        if (e->d_name[0] != '.') snprintf(names[n++], 256, "%s", e->d_name);
    if (d) closedir(d);
    CHECK(n == 4); /* manifest.json + 3 rank files */
    for (int i = 0; i < n; i++) {
        char p[8192];
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        CHECK(rename(p, keep) == 0);
        dsc_status_t st = dsc_ckpt_open(sd, NULL, DSC_CKPT_VERIFY_LAZY, &c, errbuf, sizeof errbuf);
        CHECK_MSG(st == DSC_ERR_IO && strstr(errbuf, p) && strstr(errbuf, "missing"), "deleting %s: %s (%s)", names[i],
                  dsc_status_string(st), errbuf);
        CHECK(rename(keep, p) == 0);
    }
    CHECK_OK(dsc_ckpt_open(sd, NULL, DSC_CKPT_VERIFY_ALL, &c, errbuf, sizeof errbuf));
    dsc_ckpt_close(c);
    /* A piece whose key is absent from its file (a manifest that lies). */
    char mp[1100];
    snprintf(mp, sizeof mp, "%s/manifest.json", dir);
    CHECK(copy_file(mp, keep));
    json_t *j = json_load_file(mp, 0, NULL);
    json_t *piece = json_array_get(json_object_get(json_array_get(json_object_get(j, "tensors"), 0), "pieces"), 0);
    json_object_set_new(piece, "key", json_string("wrong@0:1"));
    json_dump_file(j, mp, 0);
    json_decref(j);
    CHECK_OK(dsc_ckpt_open(sd, NULL, DSC_CKPT_VERIFY_LAZY, &c, errbuf, sizeof errbuf));
    if (c) {
        float v;
        CHECK(dsc_ckpt_read(c, "wte.weight", 0, 1, &v, DSC_F32, errbuf, sizeof errbuf) == DSC_ERR_CORRUPT);
        CHECK(strstr(errbuf, "rank00000.safetensors' has no tensor 'wrong@0:1'") != NULL);
        dsc_ckpt_close(c);
    }
    CHECK(copy_file(keep, mp));
    /* Malformed manifest: named. */
    write_text(mp, "{\"format\": \"dsc-checkpoint\", \"version\": 1");
    CHECK(dsc_ckpt_open(sd, NULL, DSC_CKPT_VERIFY_LAZY, &c, errbuf, sizeof errbuf) == DSC_ERR_CORRUPT);
    CHECK(strstr(errbuf, mp) != NULL);
    CHECK(copy_file(keep, mp));
    unlink(keep);
}

static void test_latest(const char *sd) {
    dsc_ckpt_t *c;
    write_text(path2(sd, "latest"), "global_step999\n");
    CHECK(dsc_ckpt_open(sd, NULL, DSC_CKPT_VERIFY_LAZY, &c, errbuf, sizeof errbuf) == DSC_ERR_IO);
    CHECK_MSG(strstr(errbuf, "names checkpoint 'global_step999'") != NULL, "%s", errbuf);
    write_text(path2(sd, "latest"), "../../etc");
    CHECK(dsc_ckpt_open(sd, NULL, DSC_CKPT_VERIFY_LAZY, &c, errbuf, sizeof errbuf) == DSC_ERR_CORRUPT);
    CHECK(strstr(errbuf, "latest") != NULL);
    write_text(path2(sd, "latest"), "  global_step10 \n"); /* whitespace stripped */
    CHECK_OK(dsc_ckpt_open(sd, NULL, DSC_CKPT_VERIFY_LAZY, &c, errbuf, sizeof errbuf));
    dsc_ckpt_close(c);
    CHECK(dsc_ckpt_open(sd, "global_step998", DSC_CKPT_VERIFY_LAZY, &c, errbuf, sizeof errbuf) == DSC_ERR_IO);
    CHECK(strstr(errbuf, "global_step998") != NULL);
    CHECK(dsc_ckpt_open(sd, "../x", DSC_CKPT_VERIFY_LAZY, &c, errbuf, sizeof errbuf) == DSC_ERR_INVALID);
    /* No latest at all. */
    const char *empty = path2(root, "empty");
    mkdir(empty, 0755);
    bool found = true;
    char tag[64];
    CHECK_OK(dsc_ckpt_latest_tag(empty, tag, sizeof tag, &found, errbuf, sizeof errbuf));
    CHECK(!found);
    CHECK(dsc_ckpt_open(empty, NULL, DSC_CKPT_VERIFY_LAZY, &c, errbuf, sizeof errbuf) == DSC_ERR_IO);
    CHECK(strstr(errbuf, "latest") != NULL && strstr(errbuf, empty) != NULL);
    /* Removal. */
    CHECK(dsc_ckpt_remove_tag(sd, "global_step10", errbuf, sizeof errbuf) == DSC_ERR_INVALID);
    CHECK(strstr(errbuf, "'latest' names it") != NULL);
    CHECK_OK(dsc_ckpt_remove_tag(sd, "global_step6", errbuf, sizeof errbuf));
    CHECK(access(path2(sd, "global_step6"), F_OK) != 0);
    CHECK(dsc_ckpt_remove_tag(sd, "global_step6", errbuf, sizeof errbuf) == DSC_ERR_IO);
    CHECK(count_dot_entries(sd) == 0);
    /* Tags. */
    CHECK(dsc_ckpt_check_tag("a/b", NULL, 0) == DSC_ERR_INVALID);
    CHECK(dsc_ckpt_check_tag(".hidden", NULL, 0) == DSC_ERR_INVALID);
    CHECK(dsc_ckpt_check_tag("latest", NULL, 0) == DSC_ERR_INVALID);
    CHECK(dsc_ckpt_check_tag("with space", NULL, 0) == DSC_ERR_INVALID);
    CHECK(dsc_ckpt_check_tag("", NULL, 0) == DSC_ERR_INVALID);
    CHECK_OK(dsc_ckpt_check_tag("global_step7_v2.final", NULL, 0));
    char dt[32];
    CHECK_OK(dsc_ckpt_default_tag(42, dt, sizeof dt));
    CHECK(strcmp(dt, "global_step42") == 0);
    CHECK_OK(dsc_ckpt_rank_file_name(3, dt, sizeof dt));
    CHECK(strcmp(dt, "rank00003.safetensors") == 0);
}

static void test_commit_errors(const char *sd) {
    /* A manifest listing a file nobody wrote: commit fails naming it; nothing visible changes. */
    dsc_ckpt_save_t *s;
    CHECK_OK(dsc_ckpt_save_begin(sd, "broken", &s, errbuf, sizeof errbuf));
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s", dsc_ckpt_save_dir(s));
    dsc_manifest_t *m;
    dsc_manifest_new(&m);
    dsc_st_file_info_t info = {16, 0};
    CHECK_OK(dsc_manifest_add_file(m, "rank00000.safetensors", &info, errbuf, sizeof errbuf));
    CHECK(dsc_ckpt_save_commit(s, m, true, errbuf, sizeof errbuf) == DSC_ERR_IO);
    CHECK(strstr(errbuf, "rank00000.safetensors") && strstr(errbuf, "was not written"));
    CHECK(access(tmp, F_OK) != 0 && access(path2(sd, "broken"), F_OK) != 0);
    CHECK(strcmp(read_text(path2(sd, "latest")), "  global_step10 \n") == 0);
    dsc_manifest_free(m);
    /* An incomplete manifest (a tensor with a hole): refused, naming the tensor. */
    CHECK_OK(dsc_ckpt_save_begin(sd, "broken", &s, errbuf, sizeof errbuf));
    dsc_manifest_new(&m);
    dsc_manifest_tensor_t t = {0};
    t.name = "w";
    t.kind = "param";
    t.dtype = DSC_F32;
    t.ndim = 1;
    t.shape[0] = 10;
    CHECK_OK(dsc_manifest_add_tensor(m, &t, errbuf, sizeof errbuf));
    CHECK_OK(dsc_manifest_add_file(m, "f", &info, errbuf, sizeof errbuf));
    CHECK_OK(dsc_manifest_add_piece(m, "w", "f", 0, 4, NULL, errbuf, sizeof errbuf));
    CHECK_OK(dsc_manifest_add_piece(m, "w", "f", 6, 10, NULL, errbuf, sizeof errbuf));
    CHECK(dsc_ckpt_save_commit(s, m, true, errbuf, sizeof errbuf) == DSC_ERR_INVALID);
    CHECK_MSG(strstr(errbuf, "tensor 'w': elements [4, 6) are in no piece") != NULL, "%s", errbuf);
    CHECK(count_dot_entries(sd) == 0);
    dsc_manifest_free(m);
    CHECK(dsc_ckpt_save_begin(sd, "bad/tag", &s, errbuf, sizeof errbuf) == DSC_ERR_INVALID);
    /* Abort removes the temp dir. */
    CHECK_OK(dsc_ckpt_save_begin(sd, "aborted", &s, errbuf, sizeof errbuf));
    snprintf(tmp, sizeof tmp, "%s", dsc_ckpt_save_dir(s));
    write_text(path2(tmp, "x"), "x");
    dsc_ckpt_save_abort(s);
    CHECK(access(tmp, F_OK) != 0);
}

/* ---- manifest strictness ---- */

static char *valid_manifest_text(void) {
    dsc_manifest_t *m;
    dsc_manifest_new(&m);
    dsc_manifest_tensor_t t = {0};
    const char *al[] = {"tied"};
    t.name = "w";
    t.kind = "param";
    t.dtype = DSC_BF16;
    t.ndim = 2;
    t.shape[0] = 2;
    t.shape[1] = 5;
    t.n_aliases = 1;
    t.aliases = al;
    dsc_manifest_add_tensor(m, &t, NULL, 0);
    dsc_st_file_info_t info = {100, 0x0123456789abcdefull};
    dsc_manifest_add_file(m, "a.safetensors", &info, NULL, 0);
    dsc_manifest_add_file(m, "b.safetensors", &info, NULL, 0);
    dsc_manifest_add_piece(m, "w", "b.safetensors", 4, 10, NULL, NULL, 0);
    dsc_manifest_add_piece(m, "w", "a.safetensors", 0, 4, NULL, NULL, 0);
    dsc_manifest_add_rng(m, 0, "ctx", UINT64_MAX, NULL, 0);
    char *text = dsc_manifest_to_json(m, errbuf, sizeof errbuf);
    dsc_manifest_free(m);
    return text;
}

/* Applies `edit` to the valid manifest and expects `want` with `needle` in the message. */
static void expect_manifest(void (*edit)(json_t *), dsc_status_t want, const char *needle) {
    char *text = valid_manifest_text();
    json_t *j = json_loads(text, 0, NULL);
    free(text);
    edit(j);
    char *t2 = json_dumps(j, 0);
    json_decref(j);
    dsc_manifest_t *m = NULL;
    dsc_status_t st = dsc_manifest_parse(t2, strlen(t2), "M.json", &m, errbuf, sizeof errbuf);
    free(t2);
    CHECK_MSG(st == want && (want == DSC_OK || (strstr(errbuf, needle) && strstr(errbuf, "M.json"))),
              "want %s '%s', got %s '%s'", dsc_status_string(want), needle, dsc_status_string(st), errbuf);
    dsc_manifest_free(m);
}

static json_t *tensor0(json_t *j) { return json_array_get(json_object_get(j, "tensors"), 0); }
static json_t *piece0(json_t *j) { return json_array_get(json_object_get(tensor0(j), "pieces"), 0); }
static void e_none(json_t *j) { (void)j; }
static void e_del_steps(json_t *j) { json_object_del(j, "global_steps"); }
static void e_steps_str(json_t *j) { json_object_set_new(j, "global_steps", json_string("3")); }
static void e_unknown(json_t *j) { json_object_set_new(j, "globalsteps", json_integer(3)); }
static void e_version(json_t *j) { json_object_set_new(j, "version", json_integer(2)); }
static void e_format(json_t *j) { json_object_set_new(j, "format", json_string("torch")); }
static void e_end_str(json_t *j) { json_object_set_new(piece0(j), "end", json_string("4")); }
static void e_overlap(json_t *j) { json_object_set_new(piece0(j), "end", json_integer(5)); }
static void e_gap(json_t *j) { json_object_set_new(piece0(j), "end", json_integer(3)); }
static void e_file_unknown(json_t *j) { json_object_set_new(piece0(j), "file", json_string("c.safetensors")); }
static void e_file_path(json_t *j) {
    json_object_set_new(json_array_get(json_object_get(j, "files"), 0), "name", json_string("../a.safetensors"));
}
static void e_hex(json_t *j) {
    json_object_set_new(json_array_get(json_object_get(j, "files"), 0), "xxh3_64", json_string("0123"));
}
static void e_dtype(json_t *j) { json_object_set_new(tensor0(j), "dtype", json_string("U8")); }
static void e_shape(json_t *j) { json_array_set_new(json_object_get(tensor0(j), "shape"), 0, json_integer(-1)); }
static void e_alias_dup(json_t *j) { json_array_append_new(json_object_get(tensor0(j), "aliases"), json_string("w")); }
static void e_frozen(json_t *j) { json_object_set_new(tensor0(j), "frozen", json_integer(0)); }
static void e_scale(json_t *j) { json_object_set_new(json_object_get(j, "loss_scaler"), "scale", json_real(-1)); }
static void e_stage(json_t *j) { json_object_set_new(j, "zero_stage", json_integer(4)); }
static void e_sched(json_t *j) { json_object_set_new(j, "lr_scheduler", json_integer(4)); }
static void e_optim(json_t *j) { json_object_set_new(j, "optimizer", json_string("adam")); }
static void e_no_optim(json_t *j) { json_object_del(j, "optimizer"); }
static void e_rng_dup(json_t *j) {
    json_array_append(json_object_get(j, "rng"), json_array_get(json_object_get(j, "rng"), 0));
}
static void e_root_array(json_t *j) { json_object_clear(j); }

static void test_manifest_strict(void) {
    expect_manifest(e_none, DSC_OK, "");
    expect_manifest(e_del_steps, DSC_ERR_CORRUPT, "field 'global_steps': missing");
    expect_manifest(e_steps_str, DSC_ERR_CORRUPT, "field 'global_steps': expected an integer, got a string");
    expect_manifest(e_unknown, DSC_ERR_CORRUPT, "field 'globalsteps': unknown field");
    expect_manifest(e_version, DSC_ERR_UNSUPPORTED, "version 2 is newer");
    expect_manifest(e_format, DSC_ERR_CORRUPT, "field 'format'");
    expect_manifest(e_end_str, DSC_ERR_CORRUPT, "field 'tensors[0].pieces[0].end': expected an integer");
    expect_manifest(e_overlap, DSC_ERR_CORRUPT, "tensor 'w': pieces overlap at element 4");
    expect_manifest(e_gap, DSC_ERR_CORRUPT, "tensor 'w': elements [3, 4) are in no piece");
    expect_manifest(e_file_unknown, DSC_ERR_CORRUPT, "piece file 'c.safetensors' is not in the file list");
    expect_manifest(e_file_path, DSC_ERR_CORRUPT, "field 'files[0]'");
    expect_manifest(e_hex, DSC_ERR_CORRUPT, "field 'files[0].xxh3_64': expected 16 lower-case hex digits");
    expect_manifest(e_dtype, DSC_ERR_CORRUPT, "field 'tensors[0].dtype'");
    expect_manifest(e_shape, DSC_ERR_CORRUPT, "field 'tensors[0].shape'");
    expect_manifest(e_alias_dup, DSC_ERR_CORRUPT, "alias 'w' already used");
    expect_manifest(e_frozen, DSC_ERR_CORRUPT, "field 'tensors[0].frozen': expected a boolean");
    expect_manifest(e_scale, DSC_ERR_CORRUPT, "field 'loss_scaler.scale'");
    expect_manifest(e_stage, DSC_ERR_CORRUPT, "field 'zero_stage': 4 is outside [0, 3]");
    expect_manifest(e_sched, DSC_ERR_CORRUPT, "field 'lr_scheduler': expected an object or null");
    expect_manifest(e_optim, DSC_ERR_CORRUPT, "field 'optimizer': expected an object or null");
    expect_manifest(e_no_optim, DSC_ERR_CORRUPT, "field 'optimizer': missing");
    expect_manifest(e_rng_dup, DSC_ERR_CORRUPT, "field 'rng[1]'");
    expect_manifest(e_root_array, DSC_ERR_CORRUPT, "field 'format'");
    dsc_manifest_t *m = NULL;
    CHECK(dsc_manifest_parse("[]", 2, "M.json", &m, errbuf, sizeof errbuf) == DSC_ERR_CORRUPT);
    CHECK(dsc_manifest_parse("{", 1, "M.json", &m, errbuf, sizeof errbuf) == DSC_ERR_CORRUPT);
    CHECK(strstr(errbuf, "not valid JSON") != NULL);
    /* Round trip of the text: parse(to_json(parse(x))) == to_json(parse(x)); pieces sorted. */
    char *text = valid_manifest_text();
    CHECK_OK(dsc_manifest_parse(text, strlen(text), "M.json", &m, errbuf, sizeof errbuf));
    if (m) {
        dsc_manifest_piece_t p;
        CHECK_OK(dsc_manifest_piece_at(m, 0, 0, &p));
        CHECK(strcmp(p.file, "a.safetensors") == 0 && strcmp(p.key, "w@0:4") == 0 && p.begin == 0 && p.end == 4);
        uint64_t s;
        CHECK_OK(dsc_manifest_rng(m, 0, "ctx", &s));
        CHECK(s == UINT64_MAX);
        char *again = dsc_manifest_to_json(m, errbuf, sizeof errbuf);
        CHECK(again && strcmp(again, text) == 0);
        free(again);
        dsc_manifest_free(m);
    }
    free(text);
    /* Builder argument checks. */
    dsc_manifest_new(&m);
    dsc_manifest_counters_t c = DSC_MANIFEST_COUNTERS_INIT;
    c.world_size = 0;
    CHECK(dsc_manifest_set_counters(m, &c, errbuf, sizeof errbuf) == DSC_ERR_INVALID);
    CHECK(dsc_manifest_set_blob(m, DSC_MANIFEST_LR_SCHEDULER, "[1]", errbuf, sizeof errbuf) == DSC_ERR_INVALID);
    CHECK(dsc_manifest_set_blob(m, DSC_MANIFEST_DATA_LOADER, "{bad", errbuf, sizeof errbuf) == DSC_ERR_INVALID);
    CHECK_OK(dsc_manifest_set_blob(m, DSC_MANIFEST_CLIENT_STATE, "42", errbuf, sizeof errbuf));
    CHECK(strcmp(dsc_manifest_blob(m, DSC_MANIFEST_CLIENT_STATE), "42") == 0);
    CHECK_OK(dsc_manifest_set_blob(m, DSC_MANIFEST_CLIENT_STATE, NULL, errbuf, sizeof errbuf));
    CHECK(dsc_manifest_blob(m, DSC_MANIFEST_CLIENT_STATE) == NULL);
    dsc_st_file_info_t info = {1, 1};
    CHECK(dsc_manifest_add_file(m, ".hidden", &info, errbuf, sizeof errbuf) == DSC_ERR_INVALID);
    CHECK(dsc_manifest_add_file(m, "manifest.json", &info, errbuf, sizeof errbuf) == DSC_ERR_INVALID);
    CHECK(dsc_manifest_add_piece(m, "nothing", "f", 0, 1, NULL, errbuf, sizeof errbuf) == DSC_ERR_INVALID);
    dsc_manifest_free(m);
}

/* dsc_atomic_file: an aborted or failed write leaves the previous file; a commit replaces
 * it and keeps its permissions; nothing is left beside it (issue 14). */
static void test_atomic_file(void) {
    char dir[600], path[700];
    snprintf(dir, sizeof dir, "%s/atomic", root);
    CHECK(mkdir(dir, 0755) == 0);
    snprintf(path, sizeof path, "%s/out.txt", dir);
    CHECK_OK(dsc_write_file_atomic(path, "first", 5, errbuf, sizeof errbuf));
    CHECK(strcmp(read_text(path), "first") == 0);
    CHECK(chmod(path, 0600) == 0);
    dsc_atomic_file_t *f = NULL;
    CHECK_OK(dsc_atomic_file_open(path, &f, errbuf, sizeof errbuf));
    CHECK(f && strcmp(dsc_atomic_file_path(f), path) == 0);
    CHECK(f && write(dsc_atomic_file_fd(f), "half", 4) == 4);
    CHECK(strcmp(read_text(path), "first") == 0); /* not visible before the commit */
    dsc_atomic_file_abort(f);
    CHECK(strcmp(read_text(path), "first") == 0);
    CHECK_OK(dsc_write_file_atomic(path, "second", 6, errbuf, sizeof errbuf));
    CHECK(strcmp(read_text(path), "second") == 0);
    struct stat sb;
    CHECK(stat(path, &sb) == 0 && (sb.st_mode & 0777) == 0600);
    /* A directory in the way, a missing directory: refused with the path named. */
    CHECK(dsc_write_file_atomic(dir, "x", 1, errbuf, sizeof errbuf) == DSC_ERR_IO && strstr(errbuf, "is a directory"));
    char missing[800];
    snprintf(missing, sizeof missing, "%s/no/such/file", dir);
    CHECK(dsc_write_file_atomic(missing, "x", 1, errbuf, sizeof errbuf) == DSC_ERR_IO && strstr(errbuf, missing));
    /* A write that fails half way (a file-size limit standing in for a full disk): the
     * message gives the reason, the old content stays. In a child: the limit is per process. */
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        struct rlimit rl = {8, 8};
        signal(SIGXFSZ, SIG_IGN);
        char big[4096], msg[512] = "";
        memset(big, 'x', sizeof big);
        int ok = setrlimit(RLIMIT_FSIZE, &rl) == 0 &&
                 dsc_write_file_atomic(path, big, sizeof big, msg, sizeof msg) == DSC_ERR_IO &&
                 strstr(msg, "File too large") && strstr(msg, path) && strcmp(read_text(path), "second") == 0;
        if (!ok) fprintf(stderr, "atomic write under a file-size limit: %s\n", msg);
        _exit(ok ? 0 : 1);
    }
    int status = -1;
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK(strcmp(read_text(path), "second") == 0);
    DIR *d = opendir(dir);
    int entries = 0;
    for (struct dirent *e; d && (e = readdir(d));) entries += e->d_name[0] != '.' || strlen(e->d_name) > 2;
    if (d) closedir(d);
    CHECK(entries == 1); /* out.txt only: no temporary file left */
}

int main(void) {
    srand(7);
    snprintf(root, sizeof root, "%s/dsc_ckptdir_XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(root)) {
        perror("mkdtemp");
        return 1;
    }
    char sd[400];
    snprintf(sd, sizeof sd, "%s/run/checkpoints", root); /* created by the first save */
    test_save_load(sd);
    test_resave_same_tag(sd);
    test_crash_leftovers(sd);
    test_damaged_files(sd);
    test_latest(sd);
    test_commit_errors(sd);
    test_manifest_strict();
    test_atomic_file();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", root);
    return check_finish("test_ckpt_dir");
}

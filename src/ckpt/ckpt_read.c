/* Reading a committed checkpoint: <load_dir>/<tag>/manifest.json names every tensor and
 * the pieces (file, key, element range) that hold it. dsc_ckpt_read gathers any element
 * range from the pieces that overlap it, opening each file lazily (a small LRU of open
 * readers bounds the descriptors) and verifying its checksum first under VERIFY_LAZY. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ckpt/ckpt_internal.h"

#define MAX_OPEN_READERS 64

typedef struct dsc__ck_file_slot {
    dsc_st_reader_t *reader; /* NULL when not open */
    bool verified;
    uint64_t last_use;
} dsc__ck_file_slot_t;

struct dsc_ckpt {
    char *dir;
    char *tag;
    dsc_manifest_t *m;
    dsc_ckpt_verify_t verify;
    dsc__ck_file_slot_t *files;
    int n_open;
    uint64_t clock;
};

void dsc_ckpt_close(dsc_ckpt_t *c) {
    if (!c) return;
    if (c->files)
        for (int i = 0; i < dsc_manifest_file_count(c->m); i++) dsc_st_reader_close(c->files[i].reader);
    free(c->files);
    dsc_manifest_free(c->m);
    free(c->dir);
    free(c->tag);
    free(c);
}

static dsc_status_t verify_file(dsc_ckpt_t *c, int i, char *err, size_t errsz) {
    dsc_manifest_file_t f;
    dsc_manifest_file_at(c->m, i, &f);
    char *path = dsc__ck_join(c->dir, f.name);
    if (!path) return dsc__ck_fail(err, errsz, DSC_ERR_NOMEM, "out of memory");
    dsc_st_file_info_t info;
    dsc_status_t st = dsc_ckpt_checksum_file(path, &info, err, errsz);
    if (!st && info.size != f.size)
        st = dsc__ck_fail(err, errsz, DSC_ERR_CORRUPT,
                          "checkpoint file '%s' is %llu bytes but the manifest records %llu (truncated or replaced?)",
                          path, (unsigned long long)info.size, (unsigned long long)f.size);
    else if (!st && info.xxh3 != f.xxh3) {
        char got[17], want[17];
        dsc__ck_hex64(info.xxh3, got);
        dsc__ck_hex64(f.xxh3, want);
        st = dsc__ck_fail(err, errsz, DSC_ERR_CORRUPT,
                          "checkpoint file '%s' fails its checksum (xxh3_64 %s, manifest records %s)", path, got, want);
    }
    free(path);
    if (!st) c->files[i].verified = true;
    return st;
}

static dsc_status_t open_impl(char *dir, char *tag, dsc_ckpt_verify_t verify, dsc_ckpt_t **out, char *err,
                              size_t errsz) {
    dsc_ckpt_t *c = calloc(1, sizeof *c);
    if (!c) {
        free(dir);
        free(tag);
        return dsc__ck_fail(err, errsz, DSC_ERR_NOMEM, "out of memory");
    }
    c->dir = dir;
    c->tag = tag;
    c->verify = verify;
    dsc_status_t st = DSC_OK;
    struct stat sb;
    if (!c->dir || !c->tag)
        st = dsc__ck_fail(err, errsz, DSC_ERR_NOMEM, "out of memory");
    else if (stat(c->dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        st = dsc__ck_fail(err, errsz, DSC_ERR_IO, "checkpoint directory '%s' does not exist", c->dir);
    if (!st) {
        char *mpath = dsc__ck_join(c->dir, DSC_CKPT_MANIFEST_NAME);
        if (!mpath)
            st = dsc__ck_fail(err, errsz, DSC_ERR_NOMEM, "out of memory");
        else
            st = dsc_manifest_read(mpath, &c->m, err, errsz);
        free(mpath);
    }
    int nf = st ? 0 : dsc_manifest_file_count(c->m);
    if (!st && !(c->files = calloc((size_t)nf + 1, sizeof *c->files)))
        st = dsc__ck_fail(err, errsz, DSC_ERR_NOMEM, "out of memory");
    for (int i = 0; i < nf && !st; i++) {
        dsc_manifest_file_t f;
        dsc_manifest_file_at(c->m, i, &f);
        char *path = dsc__ck_join(c->dir, f.name);
        if (!path)
            st = dsc__ck_fail(err, errsz, DSC_ERR_NOMEM, "out of memory");
        else if (stat(path, &sb) != 0)
            st = dsc__ck_fail(err, errsz, DSC_ERR_IO, "checkpoint file '%s' is missing: %s", path, strerror(errno));
        else if (!S_ISREG(sb.st_mode))
            st = dsc__ck_fail(err, errsz, DSC_ERR_CORRUPT, "checkpoint file '%s' is %s, not a file (replaced?)", path,
                              S_ISDIR(sb.st_mode) ? "a directory" : "a FIFO, socket or device");
        else if ((uint64_t)sb.st_size != f.size)
            st = dsc__ck_fail(
                err, errsz, DSC_ERR_CORRUPT,
                "checkpoint file '%s' is %lld bytes but the manifest records %llu (truncated or replaced?)", path,
                (long long)sb.st_size, (unsigned long long)f.size);
        free(path);
    }
    for (int i = 0; i < nf && !st && verify == DSC_CKPT_VERIFY_ALL; i++) st = verify_file(c, i, err, errsz);
    if (st) {
        dsc_ckpt_close(c);
        return st;
    }
    *out = c;
    return DSC_OK;
}

static char *base_name(const char *dir) {
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/') n--;
    size_t b = n;
    while (b > 0 && dir[b - 1] != '/') b--;
    char *s = malloc(n - b + 1);
    if (s) {
        memcpy(s, dir + b, n - b);
        s[n - b] = '\0';
    }
    return s;
}

dsc_status_t dsc_ckpt_open_dir(const char *dir, dsc_ckpt_verify_t verify, dsc_ckpt_t **out, char *err, size_t errsz) {
    if (!out || !dir || !*dir) return dsc__ck_fail(err, errsz, DSC_ERR_INVALID, "dsc_ckpt_open_dir: bad argument");
    *out = NULL;
    return open_impl(dsc__ck_strdup(dir), base_name(dir), verify, out, err, errsz);
}

dsc_status_t dsc_ckpt_open(const char *load_dir, const char *tag, dsc_ckpt_verify_t verify, dsc_ckpt_t **out, char *err,
                           size_t errsz) {
    if (!out || !load_dir || !*load_dir)
        return dsc__ck_fail(err, errsz, DSC_ERR_INVALID, "dsc_ckpt_open: bad argument");
    *out = NULL;
    char buf[DSC_CKPT_TAG_MAX + 1];
    dsc_status_t st;
    if (!tag) {
        bool found;
        st = dsc_ckpt_latest_tag(load_dir, buf, sizeof buf, &found, err, errsz);
        if (st) return st;
        if (!found)
            return dsc__ck_fail(err, errsz, DSC_ERR_IO, "no checkpoint in '%s': the file 'latest' does not exist",
                                load_dir);
        tag = buf;
        char *dir = dsc__ck_join(load_dir, tag);
        struct stat sb;
        if (dir && (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))) {
            st = dsc__ck_fail(err, errsz, DSC_ERR_IO, "'%s/latest' names checkpoint '%s', but '%s' does not exist",
                              load_dir, tag, dir);
            free(dir);
            return st;
        }
        return open_impl(dir, dsc__ck_strdup(tag), verify, out, err, errsz);
    }
    if ((st = dsc_ckpt_check_tag(tag, err, errsz))) return st;
    return open_impl(dsc__ck_join(load_dir, tag), dsc__ck_strdup(tag), verify, out, err, errsz);
}

const dsc_manifest_t *dsc_ckpt_manifest(const dsc_ckpt_t *c) { return c ? c->m : NULL; }
const char *dsc_ckpt_dir(const dsc_ckpt_t *c) { return c ? c->dir : NULL; }
const char *dsc_ckpt_tag(const dsc_ckpt_t *c) { return c ? c->tag : NULL; }

dsc_status_t dsc_ckpt_verify_files(dsc_ckpt_t *c, char *err, size_t errsz) {
    if (!c) return dsc__ck_fail(err, errsz, DSC_ERR_INVALID, "dsc_ckpt_verify_files: NULL checkpoint");
    for (int i = 0; i < dsc_manifest_file_count(c->m); i++) {
        if (c->files[i].verified) continue;
        dsc_status_t st = verify_file(c, i, err, errsz);
        if (st) return st;
    }
    return DSC_OK;
}

/* The open reader of file i, opening (and maybe verifying) it first. */
static dsc_status_t get_reader(dsc_ckpt_t *c, int i, dsc_st_reader_t **out, char *err, size_t errsz) {
    dsc__ck_file_slot_t *s = &c->files[i];
    s->last_use = ++c->clock;
    if (s->reader) {
        *out = s->reader;
        return DSC_OK;
    }
    if (c->verify == DSC_CKPT_VERIFY_LAZY && !s->verified) {
        dsc_status_t st = verify_file(c, i, err, errsz);
        if (st) return st;
    }
    if (c->n_open >= MAX_OPEN_READERS) {
        int lru = -1;
        for (int k = 0; k < dsc_manifest_file_count(c->m); k++)
            if (c->files[k].reader && (lru < 0 || c->files[k].last_use < c->files[lru].last_use)) lru = k;
        if (lru >= 0) {
            dsc_st_reader_close(c->files[lru].reader);
            c->files[lru].reader = NULL;
            c->n_open--;
        }
    }
    dsc_manifest_file_t f;
    dsc_manifest_file_at(c->m, i, &f);
    char *path = dsc__ck_join(c->dir, f.name);
    if (!path) return dsc__ck_fail(err, errsz, DSC_ERR_NOMEM, "out of memory");
    dsc_status_t st = dsc_st_reader_open(path, &s->reader, err, errsz);
    free(path);
    if (st) return st;
    c->n_open++;
    *out = s->reader;
    return DSC_OK;
}

dsc_status_t dsc_ckpt_read(dsc_ckpt_t *c, const char *name, int64_t begin, int64_t end, void *dst,
                           dsc_dtype_t dst_dtype, char *err, size_t errsz) {
    if (!c || !name) return dsc__ck_fail(err, errsz, DSC_ERR_INVALID, "dsc_ckpt_read: NULL argument");
    int ti = dsc_manifest_find(c->m, name);
    if (ti < 0)
        return dsc__ck_fail(err, errsz, DSC_ERR_INVALID, "checkpoint '%s' has no tensor named '%s'", c->dir, name);
    dsc_manifest_tensor_t t;
    dsc_manifest_tensor_at(c->m, ti, &t);
    size_t dsz = dsc_dtype_size(dst_dtype);
    if (begin < 0 || end < begin || end > t.numel || (end > begin && !dst) || !dsz)
        return dsc__ck_fail(
            err, errsz, DSC_ERR_INVALID,
            "checkpoint '%s': tensor '%s': bad read of [%lld, %lld) (it has %lld elements) or bad dtype", c->dir,
            t.name, (long long)begin, (long long)end, (long long)t.numel);
    if (end == begin) return DSC_OK;
    /* First piece whose end is past `begin` (pieces are sorted and tile [0, numel)). */
    int lo = 0, hi = t.n_pieces - 1;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        dsc_manifest_piece_t p;
        dsc_manifest_piece_at(c->m, ti, mid, &p);
        if (p.end <= begin)
            lo = mid + 1;
        else
            hi = mid;
    }
    unsigned char *d = dst;
    for (int k = lo; k < t.n_pieces; k++) {
        dsc_manifest_piece_t p;
        dsc_manifest_piece_at(c->m, ti, k, &p);
        if (p.begin >= end) break;
        int fi = dsc_manifest_find_file(c->m, p.file);
        dsc_st_reader_t *r = NULL;
        dsc_status_t st = get_reader(c, fi, &r, err, errsz);
        if (st) return st;
        int ki = dsc_st_reader_find(r, p.key);
        dsc_st_tensor_info_t info;
        if (ki < 0)
            return dsc__ck_fail(err, errsz, DSC_ERR_CORRUPT, "checkpoint file '%s' has no tensor '%s' (listed in %s)",
                                dsc_st_reader_path(r), p.key, DSC_CKPT_MANIFEST_NAME);
        dsc_st_reader_info(r, ki, &info);
        if (info.dtype != t.dtype || info.numel != p.end - p.begin)
            return dsc__ck_fail(
                err, errsz, DSC_ERR_CORRUPT,
                "checkpoint file '%s': tensor '%s' is %s with %lld elements but %s records %s with %lld",
                dsc_st_reader_path(r), p.key, info.dtype_name, (long long)info.numel, DSC_CKPT_MANIFEST_NAME,
                dsc_st_dtype_name(t.dtype), (long long)(p.end - p.begin));
        int64_t a = begin > p.begin ? begin : p.begin;
        int64_t b = end < p.end ? end : p.end;
        st = dsc_st_read(r, ki, a - p.begin, b - a, d + (size_t)(a - begin) * dsz, dst_dtype, err, errsz);
        if (st) return st;
    }
    return DSC_OK;
}

/* Strict manifest parsing: every field present with its type, no unknown field, every
 * value in range; errors name the source file and the field path
 * ("tensors[3].pieces[0].end"). No input crashes it (tests/fuzz/fuzz_manifest.c). */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt/manifest_internal.h"

#define MANIFEST_MAX_BYTES ((size_t)1 << 30)

typedef struct pctx {
    const char *source;
    char *err;
    size_t errsz;
} pctx_t;

static dsc_status_t perr(pctx_t *p, const char *field, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static dsc_status_t perr(pctx_t *p, const char *field, const char *fmt, ...) {
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return dsc__ck_fail(p->err, p->errsz, DSC_ERR_CORRUPT, "manifest '%s': field '%s': %s", p->source, field, msg);
}

/* Path "prefix.key" into buf. */
static const char *fpath(char *buf, size_t n, const char *prefix, const char *key) {
    if (prefix && *prefix)
        snprintf(buf, n, "%s.%s", prefix, key);
    else
        snprintf(buf, n, "%s", key);
    return buf;
}

/* Checks that `obj` (at `path`) has exactly the keys in `keys` (NULL-terminated). */
static dsc_status_t check_keys(pctx_t *p, json_t *obj, const char *path, const char *const *keys) {
    char fb[300];
    if (!json_is_object(obj)) return perr(p, path && *path ? path : "(root)", "is %s, not an object", dsc__json_kind(obj));
    const char *k;
    json_t *v;
    json_object_foreach(obj, k, v) {
        bool known = false;
        for (int i = 0; keys[i]; i++) known = known || strcmp(keys[i], k) == 0;
        if (!known) return perr(p, fpath(fb, sizeof fb, path, k), "unknown field");
    }
    for (int i = 0; keys[i]; i++)
        if (!json_object_get(obj, keys[i])) return perr(p, fpath(fb, sizeof fb, path, keys[i]), "missing");
    return DSC_OK;
}

static dsc_status_t get_int(pctx_t *p, json_t *obj, const char *path, const char *key, int64_t lo, int64_t hi,
                            int64_t *out) {
    char fb[300];
    json_t *v = json_object_get(obj, key);
    if (!json_is_integer(v)) return perr(p, fpath(fb, sizeof fb, path, key), "expected an integer, got %s", dsc__json_kind(v));
    json_int_t x = json_integer_value(v);
    if (x < lo || x > hi)
        return perr(p, fpath(fb, sizeof fb, path, key), "%lld is outside [%lld, %lld]", (long long)x, (long long)lo,
                    (long long)hi);
    *out = (int64_t)x;
    return DSC_OK;
}

static dsc_status_t get_str(pctx_t *p, json_t *obj, const char *path, const char *key, bool nonempty,
                            const char **out) {
    char fb[300];
    json_t *v = json_object_get(obj, key);
    if (!json_is_string(v)) return perr(p, fpath(fb, sizeof fb, path, key), "expected a string, got %s", dsc__json_kind(v));
    if (nonempty && json_string_length(v) == 0) return perr(p, fpath(fb, sizeof fb, path, key), "is empty");
    *out = json_string_value(v);
    return DSC_OK;
}

static dsc_status_t get_bool(pctx_t *p, json_t *obj, const char *path, const char *key, bool *out) {
    char fb[300];
    json_t *v = json_object_get(obj, key);
    if (!json_is_boolean(v)) return perr(p, fpath(fb, sizeof fb, path, key), "expected a boolean, got %s", dsc__json_kind(v));
    *out = json_is_true(v);
    return DSC_OK;
}

static dsc_status_t get_hex(pctx_t *p, json_t *obj, const char *path, const char *key, uint64_t *out) {
    char fb[300];
    const char *s;
    dsc_status_t st = get_str(p, obj, path, key, false, &s);
    if (st) return st;
    if (!dsc__ck_parse_hex64(s, out))
        return perr(p, fpath(fb, sizeof fb, path, key), "expected 16 lower-case hex digits, got '%.40s'", s);
    return DSC_OK;
}

static dsc_status_t nomem(pctx_t *p) {
    return dsc__ck_fail(p->err, p->errsz, DSC_ERR_NOMEM, "out of memory reading manifest '%s'", p->source);
}

/* Maps a builder error (DSC_ERR_INVALID with a message) to CORRUPT naming the field. */
static dsc_status_t from_builder(pctx_t *p, dsc_status_t st, const char *field, const char *msg) {
    if (st == DSC_ERR_NOMEM) return nomem(p);
    return perr(p, field, "%s", msg);
}

static dsc_status_t parse_counters(pctx_t *p, json_t *root, dsc_manifest_t *m) {
    static const char *const ls_keys[] = {"dynamic", "scale", "iter", "last_overflow_iter", "hysteresis", NULL};
    dsc_manifest_counters_t c;
    int64_t ws, zs, hy;
    dsc_status_t st;
    if ((st = get_int(p, root, "", "global_steps", 0, INT64_MAX, &c.global_steps)) ||
        (st = get_int(p, root, "", "global_samples", 0, INT64_MAX, &c.global_samples)) ||
        (st = get_int(p, root, "", "skipped_steps", 0, INT64_MAX, &c.skipped_steps)) ||
        (st = get_int(p, root, "", "micro_steps", 0, INT64_MAX, &c.micro_steps)) ||
        (st = get_int(p, root, "", "world_size", 1, INT32_MAX, &ws)) ||
        (st = get_int(p, root, "", "zero_stage", 0, 3, &zs)))
        return st;
    json_t *ls = json_object_get(root, "loss_scaler");
    if ((st = check_keys(p, ls, "loss_scaler", ls_keys))) return st;
    json_t *scale = json_object_get(ls, "scale");
    if (!json_is_number(scale)) return perr(p, "loss_scaler.scale", "expected a number, got %s", dsc__json_kind(scale));
    c.loss_scaler.scale = json_number_value(scale);
    if (!isfinite(c.loss_scaler.scale) || c.loss_scaler.scale <= 0)
        return perr(p, "loss_scaler.scale", "%g is not finite > 0", c.loss_scaler.scale);
    if ((st = get_bool(p, ls, "loss_scaler", "dynamic", &c.loss_scaler.dynamic)) ||
        (st = get_int(p, ls, "loss_scaler", "iter", 0, INT64_MAX, &c.loss_scaler.iter)) ||
        (st = get_int(p, ls, "loss_scaler", "last_overflow_iter", -1, INT64_MAX, &c.loss_scaler.last_overflow_iter)) ||
        (st = get_int(p, ls, "loss_scaler", "hysteresis", 0, INT32_MAX, &hy)))
        return st;
    c.world_size = (int)ws;
    c.zero_stage = (int)zs;
    c.loss_scaler.hysteresis = (int)hy;
    m->c = c;
    return DSC_OK;
}

static dsc_status_t parse_rng(pctx_t *p, json_t *root, dsc_manifest_t *m) {
    static const char *const keys[] = {"rank", "name", "state", NULL};
    json_t *arr = json_object_get(root, "rng");
    if (!json_is_array(arr)) return perr(p, "rng", "expected an array, got %s", dsc__json_kind(arr));
    for (size_t i = 0; i < json_array_size(arr); i++) {
        char path[64], msg[300];
        snprintf(path, sizeof path, "rng[%zu]", i);
        json_t *e = json_array_get(arr, i);
        dsc_status_t st;
        int64_t rank;
        const char *name;
        uint64_t state;
        if ((st = check_keys(p, e, path, keys)) || (st = get_int(p, e, path, "rank", 0, INT32_MAX, &rank)) ||
            (st = get_str(p, e, path, "name", true, &name)) || (st = get_hex(p, e, path, "state", &state)))
            return st;
        st = dsc_manifest_add_rng(m, (int)rank, name, state, msg, sizeof msg);
        if (st) return from_builder(p, st, path, msg);
    }
    return DSC_OK;
}

static dsc_status_t parse_files(pctx_t *p, json_t *root, dsc_manifest_t *m) {
    static const char *const keys[] = {"name", "size", "xxh3_64", NULL};
    json_t *arr = json_object_get(root, "files");
    if (!json_is_array(arr)) return perr(p, "files", "expected an array, got %s", dsc__json_kind(arr));
    for (size_t i = 0; i < json_array_size(arr); i++) {
        char path[64], msg[400];
        snprintf(path, sizeof path, "files[%zu]", i);
        json_t *e = json_array_get(arr, i);
        dsc_status_t st;
        const char *name;
        int64_t size;
        dsc_st_file_info_t info;
        if ((st = check_keys(p, e, path, keys)) || (st = get_str(p, e, path, "name", true, &name)) ||
            (st = get_int(p, e, path, "size", 0, INT64_MAX, &size)) ||
            (st = get_hex(p, e, path, "xxh3_64", &info.xxh3)))
            return st;
        info.size = (uint64_t)size;
        st = dsc_manifest_add_file(m, name, &info, msg, sizeof msg);
        if (st) return from_builder(p, st, path, msg);
    }
    return DSC_OK;
}

static dsc_status_t parse_pieces(pctx_t *p, json_t *arr, const char *tpath, const char *tname, dsc_manifest_t *m) {
    static const char *const keys[] = {"file", "key", "begin", "end", NULL};
    char path[96], msg[400];
    snprintf(path, sizeof path, "%s.pieces", tpath);
    if (!json_is_array(arr)) return perr(p, path, "expected an array, got %s", dsc__json_kind(arr));
    for (size_t k = 0; k < json_array_size(arr); k++) {
        snprintf(path, sizeof path, "%s.pieces[%zu]", tpath, k);
        json_t *e = json_array_get(arr, k);
        dsc_status_t st;
        const char *file, *key;
        int64_t b, en;
        if ((st = check_keys(p, e, path, keys)) || (st = get_str(p, e, path, "file", true, &file)) ||
            (st = get_str(p, e, path, "key", true, &key)) || (st = get_int(p, e, path, "begin", 0, INT64_MAX, &b)) ||
            (st = get_int(p, e, path, "end", 0, INT64_MAX, &en)))
            return st;
        st = dsc_manifest_add_piece(m, tname, file, b, en, key, msg, sizeof msg);
        if (st) return from_builder(p, st, path, msg);
    }
    return DSC_OK;
}

static dsc_status_t parse_tensors(pctx_t *p, json_t *root, dsc_manifest_t *m) {
    static const char *const keys[] = {"name", "kind", "dtype", "shape", "frozen", "aliases", "pieces", NULL};
    json_t *arr = json_object_get(root, "tensors");
    if (!json_is_array(arr)) return perr(p, "tensors", "expected an array, got %s", dsc__json_kind(arr));
    for (size_t i = 0; i < json_array_size(arr); i++) {
        char path[64], fb[128], msg[400];
        snprintf(path, sizeof path, "tensors[%zu]", i);
        json_t *e = json_array_get(arr, i);
        dsc_status_t st;
        dsc_manifest_tensor_t t;
        memset(&t, 0, sizeof t);
        const char *dtype;
        if ((st = check_keys(p, e, path, keys)) || (st = get_str(p, e, path, "name", true, &t.name)) ||
            (st = get_str(p, e, path, "kind", true, &t.kind)) || (st = get_str(p, e, path, "dtype", true, &dtype)) ||
            (st = get_bool(p, e, path, "frozen", &t.frozen)))
            return st;
        t.dtype = dsc_st_dtype_from_name(dtype);
        if (t.dtype == DSC_DTYPE_COUNT)
            return perr(p, fpath(fb, sizeof fb, path, "dtype"), "'%.20s' is not F32, F16, BF16, I32 or F64", dtype);
        json_t *shape = json_object_get(e, "shape");
        if (!json_is_array(shape) || json_array_size(shape) > DSC_ST_MAX_DIMS)
            return perr(p, fpath(fb, sizeof fb, path, "shape"), "expected an array of at most %d integers",
                        DSC_ST_MAX_DIMS);
        t.ndim = (int)json_array_size(shape);
        for (int k = 0; k < t.ndim; k++) {
            json_t *d = json_array_get(shape, (size_t)k);
            if (!json_is_integer(d) || json_integer_value(d) < 0)
                return perr(p, fpath(fb, sizeof fb, path, "shape"), "dim %d is not a non-negative integer", k);
            t.shape[k] = (int64_t)json_integer_value(d);
        }
        json_t *al = json_object_get(e, "aliases");
        if (!json_is_array(al))
            return perr(p, fpath(fb, sizeof fb, path, "aliases"), "expected an array, got %s", dsc__json_kind(al));
        size_t na = json_array_size(al);
        const char **aliases = na ? calloc(na, sizeof *aliases) : NULL;
        if (na && !aliases) return nomem(p);
        for (size_t k = 0; k < na; k++) {
            json_t *a = json_array_get(al, k);
            if (!json_is_string(a)) {
                free(aliases);
                return perr(p, fpath(fb, sizeof fb, path, "aliases"), "entry %zu is %s, not a string", k, dsc__json_kind(a));
            }
            aliases[k] = json_string_value(a);
        }
        t.aliases = aliases;
        t.n_aliases = (int)na;
        st = dsc_manifest_add_tensor(m, &t, msg, sizeof msg);
        free(aliases);
        if (st) return from_builder(p, st, path, msg);
        st = parse_pieces(p, json_object_get(e, "pieces"), path, t.name, m);
        if (st) return st;
    }
    return DSC_OK;
}

static dsc_status_t parse_root(pctx_t *p, json_t *root, dsc_manifest_t *m) {
    static const char *const keys[] = {"format",
                                       "version",
                                       "dsc_version",
                                       "global_steps",
                                       "global_samples",
                                       "skipped_steps",
                                       "micro_steps",
                                       "world_size",
                                       "zero_stage",
                                       "loss_scaler",
                                       "lr_scheduler",
                                       "data_loader",
                                       "client_state",
                                       "optimizer",
                                       "rng",
                                       "config",
                                       "files",
                                       "tensors",
                                       NULL};
    if (!json_is_object(root)) return perr(p, "(root)", "is %s, not an object", dsc__json_kind(root));
    /* format and version first, so a newer or foreign file is named as such. */
    const char *format;
    int64_t version;
    dsc_status_t st;
    if ((st = get_str(p, root, "", "format", false, &format))) return st;
    if (strcmp(format, MF_FORMAT) != 0) return perr(p, "format", "'%.40s' is not '%s'", format, MF_FORMAT);
    if ((st = get_int(p, root, "", "version", 1, INT32_MAX, &version))) return st;
    if (version > MF_VERSION)
        return dsc__ck_fail(p->err, p->errsz, DSC_ERR_UNSUPPORTED,
                            "manifest '%s': version %lld is newer than this dsc reads (%d)", p->source,
                            (long long)version, MF_VERSION);
    if ((st = check_keys(p, root, "", keys))) return st;
    const char *ver;
    if ((st = get_str(p, root, "", "dsc_version", false, &ver))) return st;
    if ((st = parse_counters(p, root, m))) return st;
    static const char *const blobs[DSC_MANIFEST_BLOB_COUNT] = {"lr_scheduler", "data_loader", "client_state",
                                                               "optimizer"};
    for (int b = 0; b < DSC_MANIFEST_BLOB_COUNT; b++) {
        json_t *v = json_object_get(root, blobs[b]);
        if (json_is_null(v)) continue;
        if (b != DSC_MANIFEST_CLIENT_STATE && !json_is_object(v))
            return perr(p, blobs[b], "expected an object or null, got %s", dsc__json_kind(v));
        json_incref(v);
        if (dsc__mf_set_blob_json(m, (dsc_manifest_blob_t)b, v) != DSC_OK) return nomem(p);
    }
    json_t *cfg = json_object_get(root, "config");
    if (!json_is_null(cfg)) {
        if (!json_is_string(cfg)) return perr(p, "config", "expected a string or null, got %s", dsc__json_kind(cfg));
        if (dsc_manifest_set_config(m, json_string_value(cfg), NULL, 0) != DSC_OK) return nomem(p);
    }
    if ((st = parse_rng(p, root, m)) || (st = parse_files(p, root, m)) || (st = parse_tensors(p, root, m))) return st;
    char msg[400];
    st = dsc_manifest_validate(m, msg, sizeof msg);
    if (st == DSC_ERR_NOMEM) return nomem(p);
    if (st) return perr(p, "tensors", "%s", msg);
    return DSC_OK;
}

dsc_status_t dsc_manifest_parse(const char *text, size_t len, const char *source, dsc_manifest_t **out, char *err,
                                size_t errsz) {
    if (!out || (!text && len)) return dsc__ck_fail(err, errsz, DSC_ERR_INVALID, "dsc_manifest_parse: bad argument");
    *out = NULL;
    pctx_t p = {source ? source : "(text)", err, errsz};
    json_error_t jerr;
    json_t *root = json_loadb(text ? text : "", len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return dsc__ck_fail(err, errsz, DSC_ERR_CORRUPT, "manifest '%s': not valid JSON: %s (line %d, column %d)",
                            p.source, jerr.text, jerr.line, jerr.column);
    dsc_manifest_t *m;
    if (dsc_manifest_new(&m) != DSC_OK) {
        json_decref(root);
        return nomem(&p);
    }
    dsc_status_t st = parse_root(&p, root, m);
    json_decref(root);
    if (st) {
        dsc_manifest_free(m);
        return st;
    }
    *out = m;
    return DSC_OK;
}

dsc_status_t dsc_manifest_read(const char *path, dsc_manifest_t **out, char *err, size_t errsz) {
    if (!path || !out) return dsc__ck_fail(err, errsz, DSC_ERR_INVALID, "dsc_manifest_read: NULL argument");
    *out = NULL;
    char *text;
    size_t len;
    int rc = dsc__ck_read_file(path, MANIFEST_MAX_BYTES, &text, &len);
    if (rc == ENOENT) return dsc__ck_fail(err, errsz, DSC_ERR_IO, "manifest '%s' is missing", path);
    if (rc == EFBIG) return dsc__ck_fail(err, errsz, DSC_ERR_CORRUPT, "manifest '%s' is larger than 1 GiB", path);
    if (rc) return dsc__ck_fail(err, errsz, DSC_ERR_IO, "cannot read manifest '%s': %s", path, dsc__ck_read_strerror(rc));
    dsc_status_t st = dsc_manifest_parse(text, len, path, out, err, errsz);
    free(text);
    return st;
}

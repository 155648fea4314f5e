/* Streaming safetensors writer: tensors are declared first, so the header (and every
 * tensor's offset) is fixed before the first data byte; then the data is appended in
 * declaration order through a bounded buffer, hashed on the way (XXH3-64), and fsynced at
 * close. The header is compact JSON ("__metadata__" first, then the tensors in declaration
 * order with keys dtype, shape, data_offsets) padded with spaces to a multiple of 8 bytes, as
 * the reference implementation writes it. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ckpt/ckpt_internal.h"

#define WBUF_CAP ((size_t)1 << 20)

typedef struct st_decl {
    char *name;
    dsc_dtype_t dtype;
    int ndim;
    int64_t shape[DSC_ST_MAX_DIMS];
    uint64_t numel;
    uint64_t begin; /* byte offsets in the data section */
} st_decl_t;

struct dsc_st_writer {
    char *path;
    dsc_atomic_file_t *file; /* the temporary file renamed over `path` at close */
    int fd;
    unsigned flags;
    st_decl_t *t;
    int n, cap;
    char **meta; /* key, value pairs */
    int n_meta, cap_meta;
    dsc__ck_index_t names;
    bool started; /* header written */
    int cur; /* tensor being written */
    uint64_t done; /* elements of t[cur] written */
    uint64_t data_bytes;
    unsigned char *buf;
    size_t buf_len;
    uint64_t file_size;
    dsc__ck_hash_t *hash;
    dsc_status_t failed;
    char failmsg[512];
};

static dsc_status_t wfail(dsc_st_writer_t *w, char *err, size_t errsz, dsc_status_t st, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 5, 6)))
#endif
    ;

/* Marks the writer failed (sticky) with a message. */
static dsc_status_t wfail(dsc_st_writer_t *w, char *err, size_t errsz, dsc_status_t st, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->failmsg, sizeof w->failmsg, fmt, ap);
    va_end(ap);
    w->failed = st;
    dsc__ck_set(err, errsz, w->failmsg);
    return st;
}

dsc_status_t dsc_st_writer_open(const char *path, unsigned flags, dsc_st_writer_t **out, char *err, size_t errsz) {
    if (!out) return dsc__ck_fail(err, errsz, DSC_ERR_INVALID, "dsc_st_writer_open: out is NULL");
    *out = NULL;
    if (!path || !*path) return dsc__ck_fail(err, errsz, DSC_ERR_INVALID, "dsc_st_writer_open: empty path");
    dsc_st_writer_t *w = calloc(1, sizeof *w);
    if (!w) return dsc__ck_fail(err, errsz, DSC_ERR_NOMEM, "out of memory opening '%s'", path);
    w->fd = -1;
    w->path = dsc__ck_strdup(path);
    w->buf = malloc(WBUF_CAP);
    w->hash = dsc__ck_hash_new();
    if (!w->path || !w->buf || !w->hash) {
        free(w->path);
        free(w->buf);
        dsc__ck_hash_free(w->hash);
        free(w);
        return dsc__ck_fail(err, errsz, DSC_ERR_NOMEM, "out of memory opening '%s'", path);
    }
    w->flags = flags;
    dsc_status_t st = dsc_atomic_file_open(path, &w->file, err, errsz);
    if (st) {
        free(w->path);
        free(w->buf);
        dsc__ck_hash_free(w->hash);
        free(w);
        return st;
    }
    w->fd = dsc_atomic_file_fd(w->file);
    *out = w;
    return DSC_OK;
}

static void writer_free(dsc_st_writer_t *w) {
    for (int i = 0; i < w->n; i++) free(w->t[i].name);
    for (int i = 0; i < 2 * w->n_meta; i++) free(w->meta[i]);
    free(w->t);
    free(w->meta);
    dsc__ck_index_free(&w->names);
    free(w->buf);
    dsc__ck_hash_free(w->hash);
    free(w->path);
    free(w);
}

void dsc_st_writer_abort(dsc_st_writer_t *w) {
    if (!w) return;
    dsc_atomic_file_abort(w->file);
    writer_free(w);
}

static bool valid_utf8_string(const char *s) {
    json_t *j = json_string(s); /* NULL for invalid UTF-8 */
    bool ok = j != NULL;
    json_decref(j);
    return ok;
}

dsc_status_t dsc_st_writer_set_metadata(dsc_st_writer_t *w, const char *key, const char *value, char *err,
                                        size_t errsz) {
    if (!w) return dsc__ck_fail(err, errsz, DSC_ERR_INVALID, "dsc_st_writer_set_metadata: writer is NULL");
    if (w->failed) return dsc__ck_fail(err, errsz, w->failed, "%s", w->failmsg);
    if (w->started)
        return dsc__ck_fail(err, errsz, DSC_ERR_MISUSE, "'%s': metadata must be set before the first write", w->path);
    if (!key || !value || !valid_utf8_string(key) || !valid_utf8_string(value))
        return dsc__ck_fail(err, errsz, DSC_ERR_INVALID, "'%s': metadata key and value must be UTF-8 strings", w->path);
    for (int i = 0; i < w->n_meta; i++)
        if (strcmp(w->meta[2 * i], key) == 0)
            return dsc__ck_fail(err, errsz, DSC_ERR_INVALID, "'%s': duplicate metadata key '%s'", w->path, key);
    if (w->n_meta == w->cap_meta) {
        int cap = w->cap_meta ? 2 * w->cap_meta : 8;
        char **m = realloc(w->meta, (size_t)cap * 2 * sizeof *m);
        if (!m) return dsc__ck_fail(err, errsz, DSC_ERR_NOMEM, "out of memory");
        w->meta = m;
        w->cap_meta = cap;
    }
    char *k = dsc__ck_strdup(key), *v = dsc__ck_strdup(value);
    if (!k || !v) {
        free(k);
        free(v);
        return dsc__ck_fail(err, errsz, DSC_ERR_NOMEM, "out of memory");
    }
    w->meta[2 * w->n_meta] = k;
    w->meta[2 * w->n_meta + 1] = v;
    w->n_meta++;
    return DSC_OK;
}

dsc_status_t dsc_st_writer_declare(dsc_st_writer_t *w, const char *name, dsc_dtype_t dtype, int ndim,
                                   const int64_t *shape, char *err, size_t errsz) {
    if (!w) return dsc__ck_fail(err, errsz, DSC_ERR_INVALID, "dsc_st_writer_declare: writer is NULL");
    if (w->failed) return dsc__ck_fail(err, errsz, w->failed, "%s", w->failmsg);
    if (w->started)
        return dsc__ck_fail(err, errsz, DSC_ERR_MISUSE, "'%s': tensor '%s' declared after the first write", w->path,
                            name ? name : "(null)");
    if (!name || !*name || !valid_utf8_string(name))
        return dsc__ck_fail(err, errsz, DSC_ERR_INVALID, "'%s': a tensor name must be a non-empty UTF-8 string",
                            w->path);
    if (strcmp(name, "__metadata__") == 0)
        return dsc__ck_fail(err, errsz, DSC_ERR_INVALID, "'%s': '__metadata__' is not a valid tensor name", w->path);
    if (!dsc_st_dtype_name(dtype))
        return dsc__ck_fail(err, errsz, DSC_ERR_INVALID, "'%s': tensor '%s': invalid dtype %d", w->path, name,
                            (int)dtype);
    if (ndim < 0 || ndim > DSC_ST_MAX_DIMS || (ndim > 0 && !shape))
        return dsc__ck_fail(err, errsz, DSC_ERR_INVALID, "'%s': tensor '%s': ndim %d outside 0..%d", w->path, name,
                            ndim, DSC_ST_MAX_DIMS);
    int64_t numel;
    uint64_t nbytes, end;
    if (!dsc__ck_shape_numel(ndim, shape, &numel) ||
        __builtin_mul_overflow((uint64_t)numel, (uint64_t)dsc_dtype_size(dtype), &nbytes) ||
        __builtin_add_overflow(w->data_bytes, nbytes, &end) || end > (uint64_t)INT64_MAX)
        return dsc__ck_fail(err, errsz, DSC_ERR_INVALID, "'%s': tensor '%s': negative dim or size overflow", w->path,
                            name);
    if (dsc__ck_index_get(&w->names, name) >= 0)
        return dsc__ck_fail(err, errsz, DSC_ERR_INVALID, "'%s': tensor '%s' declared twice", w->path, name);
    if (w->n == w->cap) {
        int cap = w->cap ? 2 * w->cap : 16;
        st_decl_t *t = realloc(w->t, (size_t)cap * sizeof *t);
        if (!t) return dsc__ck_fail(err, errsz, DSC_ERR_NOMEM, "out of memory");
        w->t = t;
        w->cap = cap;
        /* the index points at the names, which do not move */
    }
    st_decl_t *d = &w->t[w->n];
    memset(d, 0, sizeof *d);
    d->name = dsc__ck_strdup(name);
    if (!d->name) return dsc__ck_fail(err, errsz, DSC_ERR_NOMEM, "out of memory");
    if (dsc__ck_index_put(&w->names, d->name, w->n) < 0) {
        free(d->name);
        return dsc__ck_fail(err, errsz, DSC_ERR_NOMEM, "out of memory");
    }
    d->dtype = dtype;
    d->ndim = ndim;
    for (int i = 0; i < ndim; i++) d->shape[i] = shape[i];
    d->numel = (uint64_t)numel;
    d->begin = w->data_bytes;
    w->data_bytes = end;
    w->n++;
    return DSC_OK;
}

dsc_status_t dsc_st_writer_declare_range(dsc_st_writer_t *w, const char *name, dsc_dtype_t dtype, int64_t begin,
                                         int64_t end, char *err, size_t errsz) {
    if (!w) return dsc__ck_fail(err, errsz, DSC_ERR_INVALID, "dsc_st_writer_declare_range: writer is NULL");
    if (!name || begin < 0 || end <= begin)
        return dsc__ck_fail(err, errsz, DSC_ERR_INVALID, "'%s': range piece of '%s': invalid range [%lld, %lld)",
                            w->path, name ? name : "(null)", (long long)begin, (long long)end);
    size_t n = strlen(name) + 48;
    char *key = malloc(n);
    if (!key) return dsc__ck_fail(err, errsz, DSC_ERR_NOMEM, "out of memory");
    dsc_ckpt_range_key(name, begin, end, key, n);
    int64_t len = end - begin;
    dsc_status_t st = dsc_st_writer_declare(w, key, dtype, 1, &len, err, errsz);
    free(key);
    return st;
}

/* Sends bytes to the file through the buffer, hashing them. */
static int emit(dsc_st_writer_t *w, const void *p, size_t n) {
    dsc__ck_hash_update(w->hash, p, n);
    w->file_size += n;
    if (w->buf_len + n <= WBUF_CAP) {
        memcpy(w->buf + w->buf_len, p, n);
        w->buf_len += n;
        return 0;
    }
    if (w->buf_len) {
        int rc = dsc__ck_write_all(w->fd, w->buf, w->buf_len);
        w->buf_len = 0;
        if (rc) return rc;
    }
    if (n >= WBUF_CAP) return dsc__ck_write_all(w->fd, p, n);
    memcpy(w->buf, p, n);
    w->buf_len = n;
    return 0;
}

static int flush_buf(dsc_st_writer_t *w) {
    int rc = w->buf_len ? dsc__ck_write_all(w->fd, w->buf, w->buf_len) : 0;
    w->buf_len = 0;
    return rc;
}

/* Builds the header JSON text (unpadded). */
static char *header_json(dsc_st_writer_t *w) {
    json_t *root = json_object();
    if (!root) return NULL;
    bool ok = true;
    if (w->n_meta) {
        json_t *meta = json_object();
        ok = meta && json_object_set_new(root, "__metadata__", meta) == 0;
        for (int i = 0; ok && i < w->n_meta; i++)
            ok = json_object_set_new(meta, w->meta[2 * i], json_string(w->meta[2 * i + 1])) == 0;
    }
    for (int i = 0; ok && i < w->n; i++) {
        const st_decl_t *d = &w->t[i];
        json_t *e = json_object(), *shape = json_array(), *offs = json_array();
        ok = e && shape && offs;
        for (int k = 0; ok && k < d->ndim; k++) ok = json_array_append_new(shape, json_integer(d->shape[k])) == 0;
        uint64_t nbytes = d->numel * dsc_dtype_size(d->dtype);
        ok = ok && json_array_append_new(offs, json_integer((json_int_t)d->begin)) == 0 &&
             json_array_append_new(offs, json_integer((json_int_t)(d->begin + nbytes))) == 0 &&
             json_object_set_new(e, "dtype", json_string(dsc_st_dtype_name(d->dtype))) == 0 &&
             json_object_set(e, "shape", shape) == 0 && json_object_set(e, "data_offsets", offs) == 0 &&
             json_object_set(root, d->name, e) == 0;
        json_decref(shape);
        json_decref(offs);
        json_decref(e);
    }
    char *text = ok ? json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(root);
    return text;
}

static dsc_status_t start(dsc_st_writer_t *w, char *err, size_t errsz) {
    char *json = header_json(w);
    if (!json) return wfail(w, err, errsz, DSC_ERR_NOMEM, "'%s': out of memory building the header", w->path);
    size_t len = strlen(json);
    size_t padded = (len + 7) / 8 * 8;
    if (padded > DSC_ST_MAX_HEADER) {
        free(json);
        return wfail(w, err, errsz, DSC_ERR_INVALID, "'%s': header of %zu bytes exceeds the %u-byte limit", w->path,
                     padded, DSC_ST_MAX_HEADER);
    }
    unsigned char lenbytes[8];
    for (int i = 0; i < 8; i++) lenbytes[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    static const char spaces[8] = "        ";
    int rc = emit(w, lenbytes, 8);
    if (!rc) rc = emit(w, json, len);
    if (!rc) rc = emit(w, spaces, padded - len);
    free(json);
    w->started = true;
    if (rc) return wfail(w, err, errsz, DSC_ERR_IO, "cannot write '%s': %s", w->path, strerror(rc));
    return DSC_OK;
}

static void skip_empty(dsc_st_writer_t *w) {
    while (w->cur < w->n && w->done == w->t[w->cur].numel) {
        w->cur++;
        w->done = 0;
    }
}

dsc_status_t dsc_st_write(dsc_st_writer_t *w, const void *src, dsc_dtype_t src_dtype, size_t n_elems, char *err,
                          size_t errsz) {
    if (!w) return dsc__ck_fail(err, errsz, DSC_ERR_INVALID, "dsc_st_write: writer is NULL");
    if (w->failed) return dsc__ck_fail(err, errsz, w->failed, "%s", w->failmsg);
    if (!w->started) {
        dsc_status_t st = start(w, err, errsz);
        if (st) return st;
    }
    skip_empty(w);
    if (n_elems == 0) return DSC_OK;
    if (w->cur >= w->n)
        return wfail(w, err, errsz, DSC_ERR_MISUSE, "'%s': %zu more elements written but every tensor is complete",
                     w->path, n_elems);
    st_decl_t *d = &w->t[w->cur];
    if (!src || !dsc_dtype_size(src_dtype))
        return wfail(w, err, errsz, DSC_ERR_INVALID, "'%s': tensor '%s': NULL source or invalid source dtype", w->path,
                     d->name);
    if ((uint64_t)n_elems > d->numel - w->done)
        return wfail(w, err, errsz, DSC_ERR_INVALID,
                     "'%s': tensor '%s': %zu elements written but only %llu of its %llu remain", w->path, d->name,
                     n_elems, (unsigned long long)(d->numel - w->done), (unsigned long long)d->numel);
    size_t esz = dsc_dtype_size(d->dtype);
    int rc = 0;
    if (src_dtype == d->dtype) {
        rc = emit(w, src, n_elems * esz);
    } else {
        /* Convert through a stack-independent chunk: 64 KiB of output at a time. */
        size_t chunk = ((size_t)64 << 10) / 8;
        unsigned char tmp[(size_t)64 << 10];
        const unsigned char *s = src;
        size_t ssz = dsc_dtype_size(src_dtype);
        for (size_t off = 0; off < n_elems && !rc; off += chunk) {
            size_t m = n_elems - off < chunk ? n_elems - off : chunk;
            if (dsc_convert(tmp, d->dtype, s + off * ssz, src_dtype, m) != DSC_OK)
                return wfail(w, err, errsz, DSC_ERR_INVALID, "'%s': tensor '%s': cannot convert %s to %s", w->path,
                             d->name, dsc_dtype_name(src_dtype), dsc_dtype_name(d->dtype));
            rc = emit(w, tmp, m * esz);
        }
    }
    if (rc) return wfail(w, err, errsz, DSC_ERR_IO, "cannot write '%s': %s", w->path, strerror(rc));
    w->done += n_elems;
    skip_empty(w);
    return DSC_OK;
}

const char *dsc_st_writer_current(const dsc_st_writer_t *w, int64_t *elems_done) {
    if (elems_done) *elems_done = 0;
    if (!w) return NULL;
    int cur = w->cur;
    uint64_t done = w->done;
    while (cur < w->n && done == w->t[cur].numel) {
        cur++;
        done = 0;
    }
    if (cur >= w->n) return NULL;
    if (elems_done) *elems_done = (int64_t)done;
    return w->t[cur].name;
}

dsc_status_t dsc_st_writer_close(dsc_st_writer_t *w, dsc_st_file_info_t *info, char *err, size_t errsz) {
    if (!w) return dsc__ck_fail(err, errsz, DSC_ERR_INVALID, "dsc_st_writer_close: writer is NULL");
    dsc_status_t st = w->failed;
    if (st) dsc__ck_set(err, errsz, w->failmsg);
    if (!st && !w->started) st = start(w, err, errsz);
    if (!st) {
        skip_empty(w);
        if (w->cur < w->n)
            st = dsc__ck_fail(err, errsz, DSC_ERR_MISUSE,
                              "'%s': closed with tensor '%s' incomplete (%llu of %llu elements written)", w->path,
                              w->t[w->cur].name, (unsigned long long)w->done, (unsigned long long)w->t[w->cur].numel);
    }
    if (!st) {
        int rc = flush_buf(w);
        if (rc) st = dsc__ck_fail(err, errsz, DSC_ERR_IO, "cannot write '%s': %s", w->path, strerror(rc));
    }
    /* The file replaces `path` only now, complete: a failure leaves an older file there. */
    if (st)
        dsc_atomic_file_abort(w->file);
    else
        st = dsc_atomic_file_commit(w->file, !(w->flags & DSC_ST_NO_FSYNC), err, errsz);
    w->file = NULL;
    w->fd = -1;
    if (!st && info) {
        info->size = w->file_size;
        info->xxh3 = dsc__ck_hash_digest(w->hash);
    }
    writer_free(w);
    return st;
}

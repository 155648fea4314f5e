/* Validating safetensors reader. Only the header is read at open; tensor data is read by
 * element range with pread (bounded chunks when converting). Every check names the file
 * and the tensor; no input crashes it (tests/fuzz/fuzz_safetensors.c). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckpt/ckpt_internal.h"

#define SCRATCH_BYTES ((size_t)256 << 10)

typedef struct st_entry {
    char *name;
    const dsc__ck_st_dtype_t *dt;
    int ndim;
    int64_t shape[DSC_ST_MAX_DIMS];
    int64_t numel;
    uint64_t begin, end; /* byte offsets in the data section */
} st_entry_t;

struct dsc_st_reader {
    char *path;
    int fd;
    uint64_t file_size;
    uint64_t data_start;
    st_entry_t *t;
    int n;
    char **meta; /* key, value pairs */
    int n_meta;
    dsc__ck_index_t index;
    unsigned char *scratch;
};

void dsc_st_reader_close(dsc_st_reader_t *r) {
    if (!r) return;
    if (r->fd >= 0) close(r->fd);
    for (int i = 0; i < r->n; i++) free(r->t[i].name);
    for (int i = 0; i < 2 * r->n_meta; i++) free(r->meta[i]);
    free(r->t);
    free(r->meta);
    dsc__ck_index_free(&r->index);
    free(r->scratch);
    free(r->path);
    free(r);
}

/* Formats "[a, b, c]" of a shape into buf. */
static void shape_str(const st_entry_t *e, char *buf, size_t n) {
    size_t k = 0;
    k += (size_t)snprintf(buf + k, n - k, "[");
    for (int i = 0; i < e->ndim && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, "%s%lld", i ? ", " : "", (long long)e->shape[i]);
    if (k < n) snprintf(buf + k, n - k, "]");
}

static dsc_status_t parse_entry(dsc_st_reader_t *r, const char *key, json_t *v, st_entry_t *e, char *err,
                                size_t errsz) {
    const char *p = r->path;
    if (!json_is_object(v))
        return dsc__ck_fail(err, errsz, DSC_ERR_CORRUPT,
                            "safetensors file '%s': tensor '%s': entry is %s, not an object", p, key, dsc__json_kind(v));
    const char *field;
    json_t *fv;
    json_object_foreach(v, field, fv) {
        if (strcmp(field, "dtype") && strcmp(field, "shape") && strcmp(field, "data_offsets"))
            return dsc__ck_fail(err, errsz, DSC_ERR_CORRUPT, "safetensors file '%s': tensor '%s': unknown field '%s'",
                                p, key, field);
    }
    json_t *dt = json_object_get(v, "dtype"), *shape = json_object_get(v, "shape"),
           *offs = json_object_get(v, "data_offsets");
    if (!dt || !shape || !offs)
        return dsc__ck_fail(err, errsz, DSC_ERR_CORRUPT, "safetensors file '%s': tensor '%s': missing field '%s'", p,
                            key,
                            !dt      ? "dtype"
                            : !shape ? "shape"
                                     : "data_offsets");
    if (!json_is_string(dt))
        return dsc__ck_fail(err, errsz, DSC_ERR_CORRUPT,
                            "safetensors file '%s': tensor '%s': dtype is %s, not a string", p, key, dsc__json_kind(dt));
    e->dt = dsc__ck_st_dtype_lookup(json_string_value(dt));
    if (!e->dt)
        return dsc__ck_fail(err, errsz, DSC_ERR_UNSUPPORTED,
                            "safetensors file '%s': tensor '%s': unknown dtype '%.40s'", p, key, json_string_value(dt));
    if (!json_is_array(shape))
        return dsc__ck_fail(err, errsz, DSC_ERR_CORRUPT,
                            "safetensors file '%s': tensor '%s': shape is %s, not an array", p, key, dsc__json_kind(shape));
    size_t nd = json_array_size(shape);
    if (nd > DSC_ST_MAX_DIMS)
        return dsc__ck_fail(err, errsz, DSC_ERR_UNSUPPORTED,
                            "safetensors file '%s': tensor '%s': %zu dims (dsc reads up to %d)", p, key, nd,
                            DSC_ST_MAX_DIMS);
    e->ndim = (int)nd;
    for (size_t i = 0; i < nd; i++) {
        json_t *d = json_array_get(shape, i);
        if (!json_is_integer(d) || json_integer_value(d) < 0)
            return dsc__ck_fail(err, errsz, DSC_ERR_CORRUPT,
                                "safetensors file '%s': tensor '%s': shape[%zu] is not a non-negative integer", p, key,
                                i);
        e->shape[i] = (int64_t)json_integer_value(d);
    }
    if (!dsc__ck_shape_numel(e->ndim, e->shape, &e->numel))
        return dsc__ck_fail(err, errsz, DSC_ERR_CORRUPT, "safetensors file '%s': tensor '%s': element count overflows",
                            p, key);
    if (!json_is_array(offs) || json_array_size(offs) != 2)
        return dsc__ck_fail(err, errsz, DSC_ERR_CORRUPT,
                            "safetensors file '%s': tensor '%s': data_offsets is not an array of 2 integers", p, key);
    json_t *b = json_array_get(offs, 0), *en = json_array_get(offs, 1);
    if (!json_is_integer(b) || !json_is_integer(en) || json_integer_value(b) < 0 || json_integer_value(en) < 0)
        return dsc__ck_fail(err, errsz, DSC_ERR_CORRUPT,
                            "safetensors file '%s': tensor '%s': data_offsets are not non-negative integers", p, key);
    e->begin = (uint64_t)json_integer_value(b);
    e->end = (uint64_t)json_integer_value(en);
    if (e->end < e->begin)
        return dsc__ck_fail(err, errsz, DSC_ERR_CORRUPT,
                            "safetensors file '%s': tensor '%s': data_offsets [%llu, %llu] end before they begin", p,
                            key, (unsigned long long)e->begin, (unsigned long long)e->end);
    uint64_t nbytes;
    if (__builtin_mul_overflow((uint64_t)e->numel, (uint64_t)e->dt->size, &nbytes))
        return dsc__ck_fail(err, errsz, DSC_ERR_CORRUPT, "safetensors file '%s': tensor '%s': byte size overflows", p,
                            key);
    if (e->end - e->begin != nbytes) {
        char s[160];
        shape_str(e, s, sizeof s);
        return dsc__ck_fail(
            err, errsz, DSC_ERR_CORRUPT,
            "safetensors file '%s': tensor '%s': data_offsets [%llu, %llu] hold %llu bytes but dtype %s and "
            "shape %s need %llu",
            p, key, (unsigned long long)e->begin, (unsigned long long)e->end, (unsigned long long)(e->end - e->begin),
            e->dt->name, s, (unsigned long long)nbytes);
    }
    e->name = dsc__ck_strdup(key);
    if (!e->name) return dsc__ck_fail(err, errsz, DSC_ERR_NOMEM, "out of memory reading '%s'", p);
    return DSC_OK;
}

/* Stable merge sort of entry indices by (begin, end); qsort's comparator cannot carry
 * context portably and there is no global state. */
static void sort_by_offsets(const st_entry_t *t, int *idx, int *tmp, int n) {
    if (n < 2) return;
    int h = n / 2;
    sort_by_offsets(t, idx, tmp, h);
    sort_by_offsets(t, idx + h, tmp, n - h);
    int i = 0, j = h, k = 0;
    while (i < h && j < n) {
        const st_entry_t *x = &t[idx[i]], *y = &t[idx[j]];
        bool take_left = x->begin < y->begin || (x->begin == y->begin && x->end <= y->end);
        tmp[k++] = take_left ? idx[i++] : idx[j++];
    }
    while (i < h) tmp[k++] = idx[i++];
    while (j < n) tmp[k++] = idx[j++];
    memcpy(idx, tmp, (size_t)n * sizeof *idx);
}

static dsc_status_t check_layout(dsc_st_reader_t *r, uint64_t data_size, char *err, size_t errsz) {
    if (r->n == 0) {
        if (data_size != 0)
            return dsc__ck_fail(err, errsz, DSC_ERR_CORRUPT,
                                "safetensors file '%s': %llu bytes of data after a header that lists no tensor",
                                r->path, (unsigned long long)data_size);
        return DSC_OK;
    }
    int *idx = malloc((size_t)r->n * sizeof *idx), *tmp = malloc((size_t)r->n * sizeof *tmp);
    if (!idx || !tmp) {
        free(idx);
        free(tmp);
        return dsc__ck_fail(err, errsz, DSC_ERR_NOMEM, "out of memory reading '%s'", r->path);
    }
    for (int i = 0; i < r->n; i++) idx[i] = i;
    sort_by_offsets(r->t, idx, tmp, r->n);
    dsc_status_t st = DSC_OK;
    uint64_t expect = 0;
    const st_entry_t *prev = NULL;
    for (int k = 0; k < r->n && !st; k++) {
        const st_entry_t *e = &r->t[idx[k]];
        if (e->begin < expect)
            st = dsc__ck_fail(err, errsz, DSC_ERR_CORRUPT,
                              "safetensors file '%s': tensors '%s' [%llu, %llu] and '%s' [%llu, %llu] overlap", r->path,
                              prev->name, (unsigned long long)prev->begin, (unsigned long long)prev->end, e->name,
                              (unsigned long long)e->begin, (unsigned long long)e->end);
        else if (e->begin > expect)
            st = dsc__ck_fail(err, errsz, DSC_ERR_CORRUPT,
                              "safetensors file '%s': gap of %llu bytes before tensor '%s' (data_offsets [%llu, %llu])",
                              r->path, (unsigned long long)(e->begin - expect), e->name, (unsigned long long)e->begin,
                              (unsigned long long)e->end);
        else if (e->end > data_size)
            st = dsc__ck_fail(
                err, errsz, DSC_ERR_CORRUPT,
                "safetensors file '%s': tensor '%s' data_offsets [%llu, %llu] run past the end of the data "
                "(%llu bytes; truncated?)",
                r->path, e->name, (unsigned long long)e->begin, (unsigned long long)e->end,
                (unsigned long long)data_size);
        expect = e->end > expect ? e->end : expect;
        prev = e;
    }
    if (!st && expect != data_size)
        st = dsc__ck_fail(err, errsz, DSC_ERR_CORRUPT,
                          "safetensors file '%s': %llu unexpected bytes after the last tensor '%s'", r->path,
                          (unsigned long long)(data_size - expect), prev->name);
    free(idx);
    free(tmp);
    return st;
}

static dsc_status_t parse_metadata(dsc_st_reader_t *r, json_t *v, char *err, size_t errsz) {
    if (json_is_null(v)) return DSC_OK;
    if (!json_is_object(v))
        return dsc__ck_fail(err, errsz, DSC_ERR_CORRUPT, "safetensors file '%s': __metadata__ is %s, not an object",
                            r->path, dsc__json_kind(v));
    size_t n = json_object_size(v);
    r->meta = calloc(2 * n + 1, sizeof *r->meta);
    if (!r->meta) return dsc__ck_fail(err, errsz, DSC_ERR_NOMEM, "out of memory reading '%s'", r->path);
    const char *k;
    json_t *val;
    json_object_foreach(v, k, val) {
        if (!json_is_string(val))
            return dsc__ck_fail(err, errsz, DSC_ERR_CORRUPT,
                                "safetensors file '%s': __metadata__ value of '%s' is %s, not a string", r->path, k,
                                dsc__json_kind(val));
        char *kk = dsc__ck_strdup(k), *vv = dsc__ck_strdup(json_string_value(val));
        r->meta[2 * r->n_meta] = kk;
        r->meta[2 * r->n_meta + 1] = vv;
        r->n_meta++;
        if (!kk || !vv) return dsc__ck_fail(err, errsz, DSC_ERR_NOMEM, "out of memory reading '%s'", r->path);
    }
    return DSC_OK;
}

static dsc_status_t parse(dsc_st_reader_t *r, char *err, size_t errsz) {
    const char *p = r->path;
    struct stat st;
    if (fstat(r->fd, &st) != 0)
        return dsc__ck_fail(err, errsz, DSC_ERR_IO, "cannot stat safetensors file '%s': %s", p, strerror(errno));
    if (S_ISDIR(st.st_mode)) return dsc__ck_fail(err, errsz, DSC_ERR_IO, "safetensors file '%s' is a directory", p);
    r->file_size = (uint64_t)st.st_size;
    if (r->file_size < 8)
        return dsc__ck_fail(err, errsz, DSC_ERR_CORRUPT,
                            "safetensors file '%s': %llu bytes, too short for the 8-byte header length (truncated?)", p,
                            (unsigned long long)r->file_size);
    unsigned char lb[8];
    int rc = dsc__ck_pread_all(r->fd, lb, 8, 0);
    if (rc)
        return dsc__ck_fail(err, errsz, DSC_ERR_IO, "cannot read safetensors file '%s': %s", p,
                            rc < 0 ? "unexpected end of file" : strerror(rc));
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | lb[i];
    if (hlen > DSC_ST_MAX_HEADER)
        return dsc__ck_fail(
            err, errsz, DSC_ERR_CORRUPT,
            "safetensors file '%s': header length %llu exceeds the %u-byte limit (not a safetensors file?)", p,
            (unsigned long long)hlen, DSC_ST_MAX_HEADER);
    if (hlen > r->file_size - 8)
        return dsc__ck_fail(err, errsz, DSC_ERR_CORRUPT,
                            "safetensors file '%s': header length %llu runs past the end of the file (%llu bytes; "
                            "truncated?)",
                            p, (unsigned long long)hlen, (unsigned long long)r->file_size);
    if (hlen < 2)
        return dsc__ck_fail(err, errsz, DSC_ERR_CORRUPT, "safetensors file '%s': header length %llu is too small", p,
                            (unsigned long long)hlen);
    char *hdr = malloc((size_t)hlen);
    if (!hdr) return dsc__ck_fail(err, errsz, DSC_ERR_NOMEM, "out of memory reading '%s'", p);
    rc = dsc__ck_pread_all(r->fd, hdr, (size_t)hlen, 8);
    if (rc) {
        free(hdr);
        return dsc__ck_fail(err, errsz, DSC_ERR_IO, "cannot read safetensors file '%s': %s", p,
                            rc < 0 ? "unexpected end of file" : strerror(rc));
    }
    if (hdr[0] != '{') {
        free(hdr);
        return dsc__ck_fail(err, errsz, DSC_ERR_CORRUPT, "safetensors file '%s': header does not start with '{'", p);
    }
    json_error_t jerr;
    json_t *root = json_loadb(hdr, (size_t)hlen, JSON_REJECT_DUPLICATES, &jerr);
    free(hdr);
    if (!root)
        return dsc__ck_fail(err, errsz, DSC_ERR_CORRUPT,
                            "safetensors file '%s': header is not valid JSON: %s (header byte %d)", p, jerr.text,
                            jerr.position);
    dsc_status_t s = DSC_OK;
    if (!json_is_object(root)) {
        s = dsc__ck_fail(err, errsz, DSC_ERR_CORRUPT, "safetensors file '%s': header is %s, not an object", p,
                         dsc__json_kind(root));
        json_decref(root);
        return s;
    }
    size_t n = json_object_size(root);
    r->t = calloc(n + 1, sizeof *r->t);
    if (!r->t) {
        json_decref(root);
        return dsc__ck_fail(err, errsz, DSC_ERR_NOMEM, "out of memory reading '%s'", p);
    }
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        if (strcmp(key, "__metadata__") == 0)
            s = parse_metadata(r, v, err, errsz);
        else {
            s = parse_entry(r, key, v, &r->t[r->n], err, errsz);
            if (!s) r->n++;
        }
        if (s) break;
    }
    json_decref(root);
    if (s) return s;
    r->data_start = 8 + hlen;
    s = check_layout(r, r->file_size - r->data_start, err, errsz);
    if (s) return s;
    for (int i = 0; i < r->n; i++)
        if (dsc__ck_index_put(&r->index, r->t[i].name, i) < 0)
            return dsc__ck_fail(err, errsz, DSC_ERR_NOMEM, "out of memory reading '%s'", p);
    return DSC_OK;
}

static dsc_status_t open_common(int fd, const char *name, dsc_st_reader_t **out, char *err, size_t errsz) {
    dsc_st_reader_t *r = calloc(1, sizeof *r);
    char *path = dsc__ck_strdup(name);
    if (!r || !path) {
        free(r);
        free(path);
        close(fd);
        return dsc__ck_fail(err, errsz, DSC_ERR_NOMEM, "out of memory opening '%s'", name);
    }
    r->fd = fd;
    r->path = path;
    dsc_status_t st = parse(r, err, errsz);
    if (st) {
        dsc_st_reader_close(r);
        return st;
    }
    *out = r;
    return DSC_OK;
}

dsc_status_t dsc_st_reader_open(const char *path, dsc_st_reader_t **out, char *err, size_t errsz) {
    if (!out || !path) return dsc__ck_fail(err, errsz, DSC_ERR_INVALID, "dsc_st_reader_open: NULL argument");
    *out = NULL;
    int fd, orc = dsc__ck_open_regular(path, &fd);
    if (orc)
        return dsc__ck_fail(err, errsz, DSC_ERR_IO, "cannot open safetensors file '%s': %s", path,
                            dsc__ck_read_strerror(orc));
    return open_common(fd, path, out, err, errsz);
}

dsc_status_t dsc_st_reader_open_fd(int fd, const char *name, dsc_st_reader_t **out, char *err, size_t errsz) {
    if (!out || fd < 0) return dsc__ck_fail(err, errsz, DSC_ERR_INVALID, "dsc_st_reader_open_fd: bad argument");
    *out = NULL;
    if (!name) name = "(fd)";
    int d = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (d < 0)
        return dsc__ck_fail(err, errsz, DSC_ERR_IO, "cannot dup the descriptor of '%s': %s", name, strerror(errno));
    return open_common(d, name, out, err, errsz);
}

const char *dsc_st_reader_path(const dsc_st_reader_t *r) { return r ? r->path : NULL; }
int dsc_st_reader_count(const dsc_st_reader_t *r) { return r ? r->n : 0; }

dsc_status_t dsc_st_reader_info(const dsc_st_reader_t *r, int index, dsc_st_tensor_info_t *out) {
    if (!r || !out || index < 0 || index >= r->n) return DSC_ERR_INVALID;
    const st_entry_t *e = &r->t[index];
    memset(out, 0, sizeof *out);
    out->name = e->name;
    out->dtype_name = e->dt->name;
    out->dtype = e->dt->dsc;
    out->elem_size = e->dt->size;
    out->ndim = e->ndim;
    for (int i = 0; i < e->ndim; i++) out->shape[i] = e->shape[i];
    out->numel = e->numel;
    out->file_offset = r->data_start + e->begin;
    out->nbytes = e->end - e->begin;
    return DSC_OK;
}

int dsc_st_reader_find(const dsc_st_reader_t *r, const char *name) {
    return r && name ? dsc__ck_index_get(&r->index, name) : -1;
}

const char *dsc_st_reader_metadata(const dsc_st_reader_t *r, const char *key) {
    if (!r || !key) return NULL;
    for (int i = 0; i < r->n_meta; i++)
        if (strcmp(r->meta[2 * i], key) == 0) return r->meta[2 * i + 1];
    return NULL;
}

int dsc_st_reader_metadata_count(const dsc_st_reader_t *r) { return r ? r->n_meta : 0; }

dsc_status_t dsc_st_reader_metadata_at(const dsc_st_reader_t *r, int i, const char **key, const char **value) {
    if (!r || i < 0 || i >= r->n_meta) return DSC_ERR_INVALID;
    if (key) *key = r->meta[2 * i];
    if (value) *value = r->meta[2 * i + 1];
    return DSC_OK;
}

static dsc_status_t check_range(dsc_st_reader_t *r, int index, int64_t begin, int64_t n, const void *dst, char *err,
                                size_t errsz) {
    if (!r) return dsc__ck_fail(err, errsz, DSC_ERR_INVALID, "dsc_st_read: reader is NULL");
    if (index < 0 || index >= r->n)
        return dsc__ck_fail(err, errsz, DSC_ERR_INVALID, "safetensors file '%s': no tensor index %d (%d tensors)",
                            r->path, index, r->n);
    const st_entry_t *e = &r->t[index];
    if (begin < 0 || n < 0 || begin > e->numel || n > e->numel - begin || (n > 0 && !dst))
        return dsc__ck_fail(err, errsz, DSC_ERR_INVALID,
                            "safetensors file '%s': tensor '%s': range [%lld, %lld + %lld) outside its %lld elements",
                            r->path, e->name, (long long)begin, (long long)begin, (long long)n, (long long)e->numel);
    return DSC_OK;
}

static dsc_status_t pread_data(dsc_st_reader_t *r, const st_entry_t *e, uint64_t off, void *dst, size_t nbytes,
                               char *err, size_t errsz) {
    int rc = dsc__ck_pread_all(r->fd, dst, nbytes, r->data_start + e->begin + off);
    if (rc)
        return dsc__ck_fail(err, errsz, DSC_ERR_IO, "safetensors file '%s': tensor '%s': %s", r->path, e->name,
                            rc < 0 ? "short read (the file shrank after it was opened?)" : strerror(rc));
    return DSC_OK;
}

dsc_status_t dsc_st_read_raw(dsc_st_reader_t *r, int index, int64_t begin, int64_t n, void *dst, char *err,
                             size_t errsz) {
    dsc_status_t st = check_range(r, index, begin, n, dst, err, errsz);
    if (st || n == 0) return st;
    const st_entry_t *e = &r->t[index];
    return pread_data(r, e, (uint64_t)begin * e->dt->size, dst, (size_t)n * e->dt->size, err, errsz);
}

dsc_status_t dsc_st_read(dsc_st_reader_t *r, int index, int64_t begin, int64_t n, void *dst, dsc_dtype_t dst_dtype,
                         char *err, size_t errsz) {
    dsc_status_t st = check_range(r, index, begin, n, dst, err, errsz);
    if (st) return st;
    const st_entry_t *e = &r->t[index];
    size_t dsz = dsc_dtype_size(dst_dtype);
    if (!dsz)
        return dsc__ck_fail(err, errsz, DSC_ERR_INVALID,
                            "safetensors file '%s': tensor '%s': invalid destination dtype %d", r->path, e->name,
                            (int)dst_dtype);
    if (e->dt->dsc == dst_dtype) return dsc_st_read_raw(r, index, begin, n, dst, err, errsz);
    if (e->dt->dsc == DSC_DTYPE_COUNT)
        return dsc__ck_fail(err, errsz, DSC_ERR_UNSUPPORTED,
                            "safetensors file '%s': tensor '%s': cannot convert %s to %s", r->path, e->name,
                            e->dt->name, dsc_dtype_name(dst_dtype));
    if (n == 0) return DSC_OK;
    if (!r->scratch && !(r->scratch = malloc(SCRATCH_BYTES)))
        return dsc__ck_fail(err, errsz, DSC_ERR_NOMEM, "out of memory reading '%s'", r->path);
    size_t ssz = e->dt->size;
    size_t chunk = SCRATCH_BYTES / ssz;
    unsigned char *d = dst;
    for (int64_t done = 0; done < n;) {
        size_t m = (size_t)(n - done) < chunk ? (size_t)(n - done) : chunk;
        st = pread_data(r, e, (uint64_t)(begin + done) * ssz, r->scratch, m * ssz, err, errsz);
        if (st) return st;
        if (dsc_convert(d + (size_t)done * dsz, dst_dtype, r->scratch, e->dt->dsc, m) != DSC_OK)
            return dsc__ck_fail(err, errsz, DSC_ERR_INVALID,
                                "safetensors file '%s': tensor '%s': cannot convert %s to %s", r->path, e->name,
                                e->dt->name, dsc_dtype_name(dst_dtype));
        done += (int64_t)m;
    }
    return DSC_OK;
}

/* Golden-file reader (format in golden.h): every length is checked against the bytes that
 * remain before it is used, so malformed input yields DSC_ERR_CORRUPT, never an over-read. */
#include "golden.h"

#include <math.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GOLDEN_MAX_FILE_BYTES ((size_t)1 << 30)

typedef struct reader {
    const unsigned char *p;
    size_t len, off;
    char *err;
    size_t err_size;
} reader_t;

static dsc_status_t fail(reader_t *r, dsc_status_t st, const char *fmt, ...) {
    if (r->err && r->err_size) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(r->err, r->err_size, fmt, ap);
        va_end(ap);
    }
    return st;
}

static bool take(reader_t *r, void *dst, size_t n) {
    if (r->len - r->off < n) return false;
    memcpy(dst, r->p + r->off, n);
    r->off += n;
    return true;
}

static bool read_u32(reader_t *r, uint32_t *v) {
    unsigned char b[4];
    if (!take(r, b, 4)) return false;
    *v = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
    return true;
}

static bool read_i64(reader_t *r, int64_t *v) {
    unsigned char b[8];
    if (!take(r, b, 8)) return false;
    uint64_t u = 0;
    for (int i = 7; i >= 0; i--) u = u << 8 | b[i];
    memcpy(v, &u, sizeof u);
    return true;
}

static size_t dtype_size(uint32_t dtype) {
    switch (dtype) {
    case GOLDEN_F32: return 4;
    case GOLDEN_I32: return 4;
    case GOLDEN_F64: return 8;
    default: return 0;
    }
}

const char *golden_dtype_name(golden_dtype_t dtype) {
    switch (dtype) {
    case GOLDEN_F32: return "f32";
    case GOLDEN_I32: return "i32";
    case GOLDEN_F64: return "f64";
    default: return "?";
    }
}

void golden_free(golden_file_t *f) {
    if (!f) return;
    for (int i = 0; i < f->count; i++) free(f->arrays[i].data);
    free(f->arrays);
    free(f);
}

/* One record at r->off into a (a->data allocated on success). */
static dsc_status_t read_record(reader_t *r, int index, golden_array_t *a) {
    size_t start = r->off;
    uint32_t name_len, dtype, ndim;
    if (!read_u32(r, &name_len))
        return fail(r, DSC_ERR_CORRUPT, "golden: record %d at offset %zu: truncated name length", index, start);
    if (name_len < 1 || name_len > GOLDEN_MAX_NAME)
        return fail(r, DSC_ERR_CORRUPT, "golden: record %d at offset %zu: name length %u not in 1..%d", index, start,
                    name_len, GOLDEN_MAX_NAME);
    if (!take(r, a->name, name_len))
        return fail(r, DSC_ERR_CORRUPT, "golden: record %d at offset %zu: truncated name (%u bytes)", index, start,
                    name_len);
    a->name[name_len] = '\0';
    for (uint32_t i = 0; i < name_len; i++)
        if (a->name[i] < 0x20 || a->name[i] > 0x7e)
            return fail(r, DSC_ERR_CORRUPT, "golden: record %d at offset %zu: name has a non-printable byte", index,
                        start);
    if (!read_u32(r, &dtype) || !read_u32(r, &ndim))
        return fail(r, DSC_ERR_CORRUPT, "golden: record %s: truncated header", a->name);
    size_t es = dtype_size(dtype);
    if (es == 0) return fail(r, DSC_ERR_CORRUPT, "golden: record %s: unknown dtype %u", a->name, dtype);
    if (ndim < 1 || ndim > GOLDEN_MAX_DIMS)
        return fail(r, DSC_ERR_CORRUPT, "golden: record %s: ndim %u not in 1..%d", a->name, ndim, GOLDEN_MAX_DIMS);
    a->dtype = (golden_dtype_t)dtype;
    a->ndim = (int)ndim;
    bool has_zero = false;
    for (uint32_t d = 0; d < ndim; d++) {
        if (!read_i64(r, &a->shape[d])) return fail(r, DSC_ERR_CORRUPT, "golden: record %s: truncated shape", a->name);
        if (a->shape[d] < 0)
            return fail(r, DSC_ERR_CORRUPT, "golden: record %s: negative dim %lld", a->name, (long long)a->shape[d]);
        if (a->shape[d] == 0) has_zero = true;
    }
    /* numel must fit in the bytes that remain; checked before each multiplication so the
     * product never overflows. */
    const int64_t max_elems = (int64_t)((r->len - r->off) / es);
    int64_t numel = has_zero ? 0 : 1;
    for (uint32_t d = 0; d < ndim && numel > 0; d++) {
        if (numel > max_elems / a->shape[d])
            return fail(r, DSC_ERR_CORRUPT, "golden: record %s: truncated data (shape larger than the %lld bytes left)",
                        a->name, (long long)(r->len - r->off));
        numel *= a->shape[d];
    }
    a->numel = numel;
    size_t bytes = (size_t)numel * es;
    if (r->len - r->off < bytes)
        return fail(r, DSC_ERR_CORRUPT, "golden: record %s: truncated data (%zu bytes needed, %zu left)", a->name,
                    bytes, r->len - r->off);
    a->data = malloc(bytes ? bytes : 1);
    if (!a->data) return fail(r, DSC_ERR_NOMEM, "golden: out of memory reading %s", a->name);
    take(r, a->data, bytes);
    return DSC_OK;
}

dsc_status_t golden_parse(const void *buf, size_t len, golden_file_t **out, char *err, size_t err_size) {
    reader_t r = {buf, len, 0, err, err_size};
    if (err && err_size) err[0] = '\0';
    if (!out || (!buf && len)) return fail(&r, DSC_ERR_INVALID, "golden: NULL argument");
    *out = NULL;
    if (len > GOLDEN_MAX_FILE_BYTES) return fail(&r, DSC_ERR_CORRUPT, "golden: file larger than 1 GiB");
    char magic[8];
    uint32_t version, count;
    if (!take(&r, magic, 8) || memcmp(magic, GOLDEN_MAGIC, 8) != 0)
        return fail(&r, DSC_ERR_CORRUPT, "golden: bad magic (not a golden file)");
    if (!read_u32(&r, &version) || !read_u32(&r, &count))
        return fail(&r, DSC_ERR_CORRUPT, "golden: truncated header");
    if (version != GOLDEN_VERSION)
        return fail(&r, DSC_ERR_CORRUPT, "golden: version %u, this reader knows %u", version, GOLDEN_VERSION);
    /* Each record takes at least 4 + 1 + 4 + 4 + 8 = 21 bytes. */
    if (count > (len - r.off) / 21) return fail(&r, DSC_ERR_CORRUPT, "golden: record count %u larger than the file", count);
    golden_file_t *f = calloc(1, sizeof *f);
    if (!f) return fail(&r, DSC_ERR_NOMEM, "golden: out of memory");
    f->arrays = calloc(count ? count : 1, sizeof *f->arrays);
    if (!f->arrays) {
        free(f);
        return fail(&r, DSC_ERR_NOMEM, "golden: out of memory");
    }
    for (uint32_t i = 0; i < count; i++) {
        dsc_status_t st = read_record(&r, (int)i, &f->arrays[i]);
        if (st != DSC_OK) {
            f->count = (int)i + 1; /* frees a partially read record's NULL data too */
            golden_free(f);
            return st;
        }
        f->count = (int)i + 1;
        for (uint32_t j = 0; j < i; j++) {
            if (strcmp(f->arrays[j].name, f->arrays[i].name) == 0) {
                fail(&r, DSC_ERR_CORRUPT, "golden: duplicate record name %s", f->arrays[i].name);
                golden_free(f);
                return DSC_ERR_CORRUPT;
            }
        }
    }
    if (r.off != len) {
        fail(&r, DSC_ERR_CORRUPT, "golden: %zu trailing bytes after %u records", len - r.off, count);
        golden_free(f);
        return DSC_ERR_CORRUPT;
    }
    *out = f;
    return DSC_OK;
}

dsc_status_t golden_load(const char *path, golden_file_t **out, char *err, size_t err_size) {
    if (err && err_size) err[0] = '\0';
    if (!path || !out) return DSC_ERR_INVALID;
    *out = NULL;
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        if (err && err_size) snprintf(err, err_size, "golden: cannot open %s (run tests from the source root)", path);
        return DSC_ERR_IO;
    }
    size_t cap = 1 << 16, len = 0;
    unsigned char *buf = malloc(cap);
    dsc_status_t st = buf ? DSC_OK : DSC_ERR_NOMEM;
    while (st == DSC_OK) {
        if (len == cap) {
            if (cap >= GOLDEN_MAX_FILE_BYTES) {
                st = DSC_ERR_CORRUPT;
                if (err && err_size) snprintf(err, err_size, "golden: %s is larger than 1 GiB", path);
                break;
            }
            unsigned char *nb = realloc(buf, cap * 2);
            if (!nb) {
                st = DSC_ERR_NOMEM;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + len, 1, cap - len, fp);
        len += got;
        if (got == 0) {
            if (ferror(fp)) {
                st = DSC_ERR_IO;
                if (err && err_size) snprintf(err, err_size, "golden: error reading %s", path);
            }
            break;
        }
    }
    fclose(fp);
    if (st == DSC_OK) {
        st = golden_parse(buf, len, out, err, err_size);
        if (st != DSC_OK && err && err_size) {
            size_t n = strlen(err);
            snprintf(err + n, err_size - n, " (%s)", path);
        }
    }
    free(buf);
    return st;
}

const golden_array_t *golden_find(const golden_file_t *f, const char *name) {
    if (!f || !name) return NULL;
    for (int i = 0; i < f->count; i++)
        if (strcmp(f->arrays[i].name, name) == 0) return &f->arrays[i];
    return NULL;
}

const golden_array_t *golden_findf(const golden_file_t *f, const char *fmt, ...) {
    char name[GOLDEN_MAX_NAME + 2];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    if (n < 0 || n > GOLDEN_MAX_NAME) return NULL;
    return golden_find(f, name);
}

const float *golden_f32(const golden_array_t *a) { return a && a->dtype == GOLDEN_F32 ? a->data : NULL; }
const int32_t *golden_i32(const golden_array_t *a) { return a && a->dtype == GOLDEN_I32 ? a->data : NULL; }
const double *golden_f64(const golden_array_t *a) { return a && a->dtype == GOLDEN_F64 ? a->data : NULL; }

double golden_worst_rel_err(const float *got, const float *want, size_t n, double floor_frac, size_t *worst_index) {
    double maxabs = 0;
    for (size_t i = 0; i < n; i++)
        if (isfinite(want[i]) && fabs((double)want[i]) > maxabs) maxabs = fabs((double)want[i]);
    double floor = floor_frac * maxabs, worst = 0;
    size_t wi = 0;
    for (size_t i = 0; i < n; i++) {
        double g = got[i], w = want[i], e;
        if (g == w || (isnan(g) && isnan(w)))
            e = 0;
        else if (isnan(g) || isnan(w) || isinf(g) || isinf(w))
            e = INFINITY;
        else
            e = fabs(g - w) / fmax(fmax(fabs(g), fabs(w)), floor);
        if (e > worst) {
            worst = e;
            wi = i;
        }
    }
    if (worst_index) *worst_index = wi;
    return worst;
}

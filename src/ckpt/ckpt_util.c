/* Checkpoint-layer helpers: messages, careful POSIX I/O (EINTR, short transfers, fsync),
 * directory creation and removal, a string index, and the safetensors dtype table. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckpt/ckpt_internal.h"

dsc_status_t dsc__ck_fail(char *err, size_t errsz, dsc_status_t status, const char *fmt, ...) {
    if (err && errsz) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errsz, fmt, ap);
        va_end(ap);
    }
    return status;
}

void dsc__ck_set(char *err, size_t errsz, const char *msg) {
    if (err && errsz) snprintf(err, errsz, "%s", msg);
}

char *dsc__ck_asprintf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return NULL;
    char *s = malloc((size_t)n + 1);
    if (!s) return NULL;
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

char *dsc__ck_strdup(const char *s) {
    size_t n = strlen(s);
    char *d = malloc(n + 1);
    if (d) memcpy(d, s, n + 1);
    return d;
}

char *dsc__ck_join(const char *dir, const char *name) {
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/') n--;
    return dsc__ck_asprintf("%.*s/%s", (int)n, dir, name);
}

int dsc__ck_write_all(int fd, const void *buf, size_t n) {
    const unsigned char *p = buf;
    while (n > 0) {
        size_t chunk = n > ((size_t)1 << 30) ? ((size_t)1 << 30) : n;
        ssize_t w = write(fd, p, chunk);
        if (w < 0) {
            if (errno == EINTR) continue;
            return errno ? errno : EIO;
        }
        if (w == 0) return EIO;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int dsc__ck_pread_all(int fd, void *buf, size_t n, uint64_t offset) {
    unsigned char *p = buf;
    while (n > 0) {
        size_t chunk = n > ((size_t)1 << 30) ? ((size_t)1 << 30) : n;
        if (offset > (uint64_t)INT64_MAX) return -1;
        ssize_t r = pread(fd, p, chunk, (off_t)offset);
        if (r < 0) {
            if (errno == EINTR) continue;
            return errno ? errno : EIO;
        }
        if (r == 0) return -1;
        p += r;
        n -= (size_t)r;
        offset += (uint64_t)r;
    }
    return 0;
}

int dsc__ck_open_regular(const char *path, int *fd_out) {
    *fd_out = -1;
    /* O_NONBLOCK: a FIFO in place of the file is refused instead of blocking the open. */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return errno;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return e;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return S_ISDIR(st.st_mode) ? EISDIR : DSC__CK_NOT_REGULAR;
    }
    (void)fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    *fd_out = fd;
    return 0;
}

const char *dsc__ck_read_strerror(int rc) {
    if (rc == EISDIR) return "it is a directory, not a file";
    if (rc == DSC__CK_NOT_REGULAR) return "it is a FIFO, socket or device, not a regular file";
    return rc > 0 ? strerror(rc) : "unexpected end of file";
}

int dsc__ck_fsync_path(const char *path, bool directory) {
    int fd = open(path, (directory ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC);
    if (fd < 0) return errno;
    int rc = 0;
    while (fsync(fd) != 0) {
        if (errno == EINTR) continue;
        /* Some file systems refuse fsync on directories; their renames are durable anyway. */
        if (directory && (errno == EINVAL || errno == EROFS)) break;
        rc = errno;
        break;
    }
    close(fd);
    return rc;
}

int dsc__ck_read_file(const char *path, size_t max_bytes, char **out, size_t *len) {
    *out = NULL;
    *len = 0;
    int fd, orc = dsc__ck_open_regular(path, &fd);
    if (orc) return orc;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return e;
    }
    if ((uint64_t)st.st_size > max_bytes) {
        close(fd);
        return EFBIG;
    }
    size_t n = (size_t)st.st_size;
    char *buf = malloc(n + 1);
    if (!buf) {
        close(fd);
        return ENOMEM;
    }
    int rc = dsc__ck_pread_all(fd, buf, n, 0);
    close(fd);
    if (rc != 0) {
        free(buf);
        return rc < 0 ? EIO : rc;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}

int dsc__ck_mkdirs(const char *path) {
    char *p = dsc__ck_strdup(path);
    if (!p) return ENOMEM;
    size_t n = strlen(p);
    while (n > 1 && p[n - 1] == '/') p[--n] = '\0';
    int rc = 0;
    for (char *s = p + 1;; s++) {
        if (*s == '/' || *s == '\0') {
            char c = *s;
            *s = '\0';
            if (mkdir(p, 0755) != 0 && errno != EEXIST) {
                rc = errno;
                break;
            }
            *s = c;
            if (c == '\0') break;
        }
    }
    if (rc == 0) {
        struct stat st;
        if (stat(p, &st) != 0)
            rc = errno;
        else if (!S_ISDIR(st.st_mode))
            rc = ENOTDIR;
    }
    free(p);
    return rc;
}

static int remove_one(const char *path, const struct stat *sb, int type, struct FTW *ftw) {
    (void)sb;
    (void)ftw;
    int rc = (type == FTW_DP) ? rmdir(path) : unlink(path);
    return rc != 0 && errno != ENOENT ? errno : 0;
}

int dsc__ck_remove_tree(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0) return errno == ENOENT ? 0 : errno;
    if (!S_ISDIR(st.st_mode)) return unlink(path) != 0 ? errno : 0;
    return nftw(path, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- string index ---- */

static uint64_t str_hash(const char *s) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static int index_grow(dsc__ck_index_t *ix) {
    size_t cap = ix->cap ? ix->cap * 2 : 16;
    const char **keys = calloc(cap, sizeof *keys);
    int *values = calloc(cap, sizeof *values);
    if (!keys || !values) {
        free(keys);
        free(values);
        return -1;
    }
    for (size_t i = 0; i < ix->cap; i++) {
        if (!ix->keys[i]) continue;
        size_t j = (size_t)str_hash(ix->keys[i]) & (cap - 1);
        while (keys[j]) j = (j + 1) & (cap - 1);
        keys[j] = ix->keys[i];
        values[j] = ix->values[i];
    }
    free(ix->keys);
    free(ix->values);
    ix->keys = keys;
    ix->values = values;
    ix->cap = cap;
    return 0;
}

int dsc__ck_index_put(dsc__ck_index_t *ix, const char *key, int value) {
    if (dsc__ck_index_get(ix, key) >= 0) return 1;
    if ((ix->count + 1) * 2 > ix->cap && index_grow(ix) != 0) return -1;
    size_t j = (size_t)str_hash(key) & (ix->cap - 1);
    while (ix->keys[j]) j = (j + 1) & (ix->cap - 1);
    ix->keys[j] = key;
    ix->values[j] = value;
    ix->count++;
    return 0;
}

int dsc__ck_index_get(const dsc__ck_index_t *ix, const char *key) {
    if (ix->cap == 0) return -1;
    size_t j = (size_t)str_hash(key) & (ix->cap - 1);
    while (ix->keys[j]) {
        if (strcmp(ix->keys[j], key) == 0) return ix->values[j];
        j = (j + 1) & (ix->cap - 1);
    }
    return -1;
}

void dsc__ck_index_free(dsc__ck_index_t *ix) {
    free(ix->keys);
    free(ix->values);
    ix->keys = NULL;
    ix->values = NULL;
    ix->cap = ix->count = 0;
}

/* ---- dtypes and shapes ---- */

static const dsc__ck_st_dtype_t st_dtypes[] = {
    {"BOOL", 1, DSC_DTYPE_COUNT},
    {"U8", 1, DSC_DTYPE_COUNT},
    {"I8", 1, DSC_DTYPE_COUNT},
    {"F8_E5M2", 1, DSC_DTYPE_COUNT},
    {"F8_E4M3", 1, DSC_DTYPE_COUNT},
    {"I16", 2, DSC_DTYPE_COUNT},
    {"U16", 2, DSC_DTYPE_COUNT},
    {"F16", 2, DSC_F16},
    {"BF16", 2, DSC_BF16},
    {"I32", 4, DSC_I32},
    {"U32", 4, DSC_DTYPE_COUNT},
    {"F32", 4, DSC_F32},
    {"F64", 8, DSC_F64},
    {"I64", 8, DSC_DTYPE_COUNT},
    {"U64", 8, DSC_DTYPE_COUNT},
};

const dsc__ck_st_dtype_t *dsc__ck_st_dtype_lookup(const char *name) {
    for (size_t i = 0; i < sizeof st_dtypes / sizeof st_dtypes[0]; i++)
        if (strcmp(st_dtypes[i].name, name) == 0) return &st_dtypes[i];
    return NULL;
}

const char *dsc_st_dtype_name(dsc_dtype_t dtype) {
    switch (dtype) {
    case DSC_F32: return "F32";
    case DSC_F16: return "F16";
    case DSC_BF16: return "BF16";
    case DSC_I32: return "I32";
    case DSC_F64: return "F64";
    default: return NULL;
    }
}

dsc_dtype_t dsc_st_dtype_from_name(const char *name) {
    const dsc__ck_st_dtype_t *d = name ? dsc__ck_st_dtype_lookup(name) : NULL;
    return d ? d->dsc : DSC_DTYPE_COUNT;
}

bool dsc__ck_shape_numel(int ndim, const int64_t *shape, int64_t *numel) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) return false;
        if (__builtin_mul_overflow(n, shape[i], &n)) return false;
    }
    *numel = n;
    return true;
}

dsc_status_t dsc_ckpt_range_key(const char *name, int64_t begin, int64_t end, char *buf, size_t n) {
    if (!name || !buf || begin < 0 || end <= begin) return DSC_ERR_INVALID;
    int w = snprintf(buf, n, "%s@%lld:%lld", name, (long long)begin, (long long)end);
    if (w < 0 || (size_t)w >= n) return DSC_ERR_INVALID;
    return DSC_OK;
}


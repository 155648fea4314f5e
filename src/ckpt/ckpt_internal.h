/* Internal helpers of the checkpoint layer (src/ckpt/): error messages, careful POSIX I/O,
 * the streaming checksum, a string index, and the safetensors dtype table. */
#ifndef DSC_CKPT_INTERNAL_H
#define DSC_CKPT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/json_kind.h"
#include "dsc/ckpt.h"

/* Formats a message into err (when err && errsz) and returns `status`. */
dsc_status_t dsc__ck_fail(char *err, size_t errsz, dsc_status_t status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
/* Copies a message (err may be NULL). */
void dsc__ck_set(char *err, size_t errsz, const char *msg);

/* malloc'ed printf; NULL on failure. */
char *dsc__ck_asprintf(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;
char *dsc__ck_strdup(const char *s);
/* "<dir>/<name>" malloc'ed. */
char *dsc__ck_join(const char *dir, const char *name);

/* write()/pread() whole buffers, retrying on EINTR and short transfers. Return 0 or an
 * errno value; dsc__ck_pread_all returns -1 (errno untouched) when the file ended early. */
int dsc__ck_write_all(int fd, const void *buf, size_t n);
int dsc__ck_pread_all(int fd, void *buf, size_t n, uint64_t offset);
/* fsync of a path (a file or a directory). 0 or errno. */
int dsc__ck_fsync_path(const char *path, bool directory);
/* Reads a whole (small) file into a malloc'ed buffer with a trailing NUL. 0 or errno
 * (EFBIG when over max_bytes, EISDIR for a directory, DSC__CK_NOT_REGULAR for a FIFO, socket
 * or device, which is never opened for blocking reads). dsc__ck_read_strerror says which. */
#define DSC__CK_NOT_REGULAR (-2)
const char *dsc__ck_read_strerror(int rc);
/* Opens a regular file for reading (never blocking on a FIFO): 0 and *fd, or an errno /
 * DSC__CK_NOT_REGULAR (dsc__ck_read_strerror). */
int dsc__ck_open_regular(const char *path, int *fd);
int dsc__ck_read_file(const char *path, size_t max_bytes, char **out, size_t *len);
/* mkdir -p. 0 or errno. */
int dsc__ck_mkdirs(const char *path);
/* rm -rf without following symlinks. 0 or errno. */
int dsc__ck_remove_tree(const char *path);

/* Streaming XXH3-64. */
typedef struct dsc__ck_hash dsc__ck_hash_t;
dsc__ck_hash_t *dsc__ck_hash_new(void);
void dsc__ck_hash_update(dsc__ck_hash_t *h, const void *data, size_t n);
uint64_t dsc__ck_hash_digest(const dsc__ck_hash_t *h);
void dsc__ck_hash_free(dsc__ck_hash_t *h);
/* The checksum as 16 lower-case hex digits (buf of 17), and back (false if malformed). */
void dsc__ck_hex64(uint64_t v, char buf[17]);
bool dsc__ck_parse_hex64(const char *s, uint64_t *v);

/* An open-addressing index from strings (not owned) to ints. */
typedef struct dsc__ck_index {
    const char **keys;
    int *values;
    size_t cap; /* power of two; 0 when empty */
    size_t count;
} dsc__ck_index_t;
/* Inserts; returns 0, 1 when the key is present (value untouched), -1 on NOMEM. */
int dsc__ck_index_put(dsc__ck_index_t *ix, const char *key, int value);
/* The value of `key` or -1. */
int dsc__ck_index_get(const dsc__ck_index_t *ix, const char *key);
void dsc__ck_index_free(dsc__ck_index_t *ix);

/* The safetensors dtype table. */
typedef struct dsc__ck_st_dtype {
    const char *name;
    size_t size;
    dsc_dtype_t dsc; /* DSC_DTYPE_COUNT when none */
} dsc__ck_st_dtype_t;
/* The entry of a safetensors dtype name, or NULL. */
const dsc__ck_st_dtype_t *dsc__ck_st_dtype_lookup(const char *name);

/* Multiplies dims into *numel; false on a negative dim or int64 overflow. */
bool dsc__ck_shape_numel(int ndim, const int64_t *shape, int64_t *numel);

#endif

/* Atomic file replacement (dsc/ckpt.h, "Atomic files"): every user-visible file dsc writes
 * (safetensors outputs and range files, manifests, `latest`, exported configs, plots) goes
 * through here, so a failure at any point -- a full disk, a killed process, a bad tensor --
 * leaves the previous file at `path` untouched:
 *   create ".<name>.tmp-<random>-<pid>" in the same directory (O_EXCL, so never someone
 *   else's file) -> write -> fsync -> close -> rename over <path> -> fsync the directory.
 * The pid at the end lets dsc_ckpt_save_begin's clean-up of dead processes' leftovers
 * recognise a temporary file in a save directory. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ckpt/ckpt_internal.h"

struct dsc_atomic_file {
    char *path; /* the destination */
    char *tmp;  /* the temporary file beside it */
    char *dir;  /* the directory holding both (fsynced after the rename) */
    int fd;
};

static void atomic_free(dsc_atomic_file_t *f) {
    free(f->path);
    free(f->tmp);
    free(f->dir);
    free(f);
}

/* The directory part of `path` ("." when none), malloc'ed. */
static char *dir_of(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) return dsc__ck_strdup(".");
    if (slash == path) return dsc__ck_strdup("/");
    char *d = malloc((size_t)(slash - path) + 1);
    if (d) {
        memcpy(d, path, (size_t)(slash - path));
        d[slash - path] = '\0';
    }
    return d;
}

/* A name for the temporary file that another process (or another handle of ours) is
 * unlikely to pick: the handle's address and the clock, mixed; O_EXCL decides. */
static uint64_t mix64(uint64_t z) {
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

dsc_status_t dsc_atomic_file_open(const char *path, dsc_atomic_file_t **out, char *err, size_t errsz) {
    if (!out) return dsc__ck_fail(err, errsz, DSC_ERR_INVALID, "dsc_atomic_file_open: out is NULL");
    *out = NULL;
    if (!path || !*path) return dsc__ck_fail(err, errsz, DSC_ERR_INVALID, "dsc_atomic_file_open: empty path");
    size_t n = strlen(path);
    if (path[n - 1] == '/')
        return dsc__ck_fail(err, errsz, DSC_ERR_INVALID, "cannot write '%s': it names a directory, not a file", path);
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
        return dsc__ck_fail(err, errsz, DSC_ERR_IO, "cannot write '%s': it is a directory", path);
    const bool existed = stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
    dsc_atomic_file_t *f = calloc(1, sizeof *f);
    if (!f) return dsc__ck_fail(err, errsz, DSC_ERR_NOMEM, "out of memory opening '%s'", path);
    f->fd = -1;
    f->path = dsc__ck_strdup(path);
    f->dir = dir_of(path);
    if (!f->path || !f->dir) {
        atomic_free(f);
        return dsc__ck_fail(err, errsz, DSC_ERR_NOMEM, "out of memory opening '%s'", path);
    }
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t r = mix64((uint64_t)(uintptr_t)f ^ ((uint64_t)ts.tv_sec << 30) ^ (uint64_t)ts.tv_nsec);
    int e = 0;
    for (int attempt = 0; attempt < 16 && f->fd < 0; attempt++, r = mix64(r)) {
        free(f->tmp);
        /* The file name part stays within NAME_MAX: the base is cut at 200 bytes. */
        char *name = dsc__ck_asprintf(".%.200s.tmp-%08llx-%ld", base, (unsigned long long)(r & 0xffffffffu),
                                      (long)getpid());
        f->tmp = name ? (slash ? dsc__ck_join(f->dir, name) : dsc__ck_strdup(name)) : NULL;
        free(name);
        if (!f->tmp) {
            atomic_free(f);
            return dsc__ck_fail(err, errsz, DSC_ERR_NOMEM, "out of memory opening '%s'", path);
        }
        f->fd = open(f->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        e = errno;
        if (f->fd < 0 && e != EEXIST) break;
    }
    if (f->fd < 0) {
        dsc_status_t st = dsc__ck_fail(err, errsz, DSC_ERR_IO, "cannot create a file beside '%s' to write it: %s",
                                       path, strerror(e));
        atomic_free(f);
        return st;
    }
    if (existed) (void)fchmod(f->fd, sb.st_mode & 07777); /* a replaced file keeps its permissions */
    *out = f;
    return DSC_OK;
}

int dsc_atomic_file_fd(const dsc_atomic_file_t *f) { return f ? f->fd : -1; }
const char *dsc_atomic_file_path(const dsc_atomic_file_t *f) { return f ? f->path : NULL; }

void dsc_atomic_file_abort(dsc_atomic_file_t *f) {
    if (!f) return;
    if (f->fd >= 0) close(f->fd);
    unlink(f->tmp);
    atomic_free(f);
}

dsc_status_t dsc_atomic_file_commit(dsc_atomic_file_t *f, bool durable, char *err, size_t errsz) {
    if (!f) return dsc__ck_fail(err, errsz, DSC_ERR_INVALID, "dsc_atomic_file_commit: file is NULL");
    int rc = 0;
    while (durable && fsync(f->fd) != 0) {
        if (errno == EINTR) continue;
        rc = errno;
        break;
    }
    if (close(f->fd) != 0 && rc == 0) rc = errno;
    f->fd = -1;
    dsc_status_t st = DSC_OK;
    if (rc)
        st = dsc__ck_fail(err, errsz, DSC_ERR_IO, "cannot write '%s': %s (the previous file, if any, is untouched)",
                          f->path, strerror(rc));
    else if (rename(f->tmp, f->path) != 0)
        st = dsc__ck_fail(err, errsz, DSC_ERR_IO, "cannot replace '%s': %s (the previous file, if any, is untouched)",
                          f->path, strerror(errno));
    else if (durable && (rc = dsc__ck_fsync_path(f->dir, true)) != 0)
        st = dsc__ck_fail(err, errsz, DSC_ERR_IO, "'%s' is written but its directory '%s' cannot be fsynced: %s",
                          f->path, f->dir, strerror(rc));
    if (st) unlink(f->tmp); /* a no-op once renamed */
    atomic_free(f);
    return st;
}

dsc_status_t dsc_write_file_atomic(const char *path, const void *data, size_t n, char *err, size_t errsz) {
    dsc_atomic_file_t *f;
    dsc_status_t st = dsc_atomic_file_open(path, &f, err, errsz);
    if (st) return st;
    int rc = dsc__ck_write_all(f->fd, data, n);
    if (rc) {
        st = dsc__ck_fail(err, errsz, DSC_ERR_IO, "cannot write '%s': %s (the previous file, if any, is untouched)",
                          path, strerror(rc));
        dsc_atomic_file_abort(f);
        return st;
    }
    return dsc_atomic_file_commit(f, true, err, errsz);
}

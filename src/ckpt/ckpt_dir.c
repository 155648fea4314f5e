/* Atomic checkpoint directories. A save writes into <save_dir>/.tmp-<tag>-<pid>/, and the
 * commit makes it visible in one rename after every byte is durable:
 *   fsync every file -> write + fsync manifest.json -> fsync the temp dir ->
 *   rename temp -> <tag> (RENAME_EXCHANGE when <tag> exists) -> fsync save_dir ->
 *   latest through dsc_write_file_atomic (temp file, fsync, rename, fsync save_dir).
 * A crash at any point leaves either the old or the new checkpoint complete, and `latest`
 * naming a complete one; leftovers are hidden dot-directories, removed by the next save. */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckpt/ckpt_internal.h"

struct dsc_ckpt_save {
    char *save_dir;
    char *tag;
    char *tmp;
};

dsc_status_t dsc_ckpt_default_tag(int64_t global_steps, char *buf, size_t n) {
    if (!buf || global_steps < 0) return DSC_ERR_INVALID;
    int w = snprintf(buf, n, "global_step%lld", (long long)global_steps);
    return (w < 0 || (size_t)w >= n) ? DSC_ERR_INVALID : DSC_OK;
}

dsc_status_t dsc_ckpt_rank_file_name(int rank, char *buf, size_t n) {
    if (!buf || rank < 0) return DSC_ERR_INVALID;
    int w = snprintf(buf, n, "rank%05d.safetensors", rank);
    return (w < 0 || (size_t)w >= n) ? DSC_ERR_INVALID : DSC_OK;
}

dsc_status_t dsc_ckpt_check_tag(const char *tag, char *err, size_t errsz) {
    if (!tag) return dsc__ck_fail(err, errsz, DSC_ERR_INVALID, "checkpoint tag is NULL");
    size_t n = strlen(tag);
    if (n == 0 || n > DSC_CKPT_TAG_MAX)
        return dsc__ck_fail(err, errsz, DSC_ERR_INVALID, "checkpoint tag '%.*s' must be 1..%d bytes", 60, tag,
                            DSC_CKPT_TAG_MAX);
    if (tag[0] == '.')
        return dsc__ck_fail(err, errsz, DSC_ERR_INVALID, "checkpoint tag '%.60s' must not start with '.'", tag);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)tag[i];
        if (c < 0x21 || c > 0x7e || c == '/' || c == '\\')
            return dsc__ck_fail(err, errsz, DSC_ERR_INVALID,
                                "checkpoint tag '%.60s' may hold only printable ASCII without spaces, '/' or '\\'",
                                tag);
    }
    if (strcmp(tag, DSC_CKPT_LATEST_NAME) == 0 || strcmp(tag, "latest.tmp") == 0)
        return dsc__ck_fail(err, errsz, DSC_ERR_INVALID, "checkpoint tag '%s' is reserved", tag);
    return DSC_OK;
}

/* Parses the pid at the end of ".tmp-<tag>-<pid>" style names; 0 if none. */
static long trailing_pid(const char *name) {
    const char *dash = strrchr(name, '-');
    if (!dash || !dash[1]) return 0;
    char *end;
    errno = 0;
    long pid = strtol(dash + 1, &end, 10);
    if (errno || *end || pid <= 0) return 0;
    return pid;
}

/* Removes temp dirs of processes that no longer exist on this host. */
static void clean_stale(const char *save_dir) {
    DIR *d = opendir(save_dir);
    if (!d) return;
    struct dirent *e;
    long self = (long)getpid();
    while ((e = readdir(d)) != NULL) {
        const char *nm = e->d_name;
        /* dsc's own leftovers: temp, old and deleted checkpoint directories, atomic files'
         * temporaries (".<name>.tmp-<random>-<pid>"), and older versions' latest.tmp. */
        if (strcmp(nm, "latest.tmp") == 0) {
            char *path = dsc__ck_join(save_dir, nm);
            if (path) unlink(path);
            free(path);
            continue;
        }
        if (strncmp(nm, ".tmp-", 5) && strncmp(nm, ".old-", 5) && strncmp(nm, ".del-", 5) &&
            !(nm[0] == '.' && strstr(nm, ".tmp-")))
            continue;
        long pid = trailing_pid(nm);
        if (pid == self) continue; /* maybe an overlapping save of ours */
        if (pid > 0 && (kill((pid_t)pid, 0) == 0 || errno != ESRCH)) continue; /* alive */
        char *path = dsc__ck_join(save_dir, nm);
        if (path) dsc__ck_remove_tree(path);
        free(path);
    }
    closedir(d);
}

static void save_free(dsc_ckpt_save_t *s) {
    if (!s) return;
    free(s->save_dir);
    free(s->tag);
    free(s->tmp);
    free(s);
}

/* A save may replace <save_dir>/<tag> only when it is a checkpoint (it holds manifest.json)
 * or absent: a user's directory that happens to carry a tag's name is never deleted. */
static dsc_status_t check_replaceable(const char *save_dir, const char *tag, const char *what, char *err,
                                      size_t errsz) {
    char *final = dsc__ck_join(save_dir, tag);
    char *manifest = final ? dsc__ck_join(final, DSC_CKPT_MANIFEST_NAME) : NULL;
    dsc_status_t st = DSC_OK;
    struct stat sb, mb;
    if (!final || !manifest)
        st = dsc__ck_fail(err, errsz, DSC_ERR_NOMEM, "out of memory");
    else if (lstat(final, &sb) != 0)
        st = DSC_OK; /* absent */
    else if (!S_ISDIR(sb.st_mode))
        st = dsc__ck_fail(err, errsz, DSC_ERR_INVALID,
                          "refusing to %s '%s': it exists and is not a checkpoint directory (move it away, or use "
                          "another tag)", what, final);
    else if (lstat(manifest, &mb) != 0 || !S_ISREG(mb.st_mode)) {
        /* An empty directory holds nothing to lose. */
        DIR *d = opendir(final);
        bool empty = d != NULL;
        for (struct dirent *e; d && (e = readdir(d));)
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) empty = false;
        if (d) closedir(d);
        if (!empty)
            st = dsc__ck_fail(err, errsz, DSC_ERR_INVALID,
                              "refusing to %s '%s': the directory exists and is not a dsc checkpoint (it has no %s), "
                              "so it may hold your files; move it away, or use another tag",
                              what, final, DSC_CKPT_MANIFEST_NAME);
    }
    free(manifest);
    free(final);
    return st;
}

dsc_status_t dsc_ckpt_save_begin(const char *save_dir, const char *tag, dsc_ckpt_save_t **out, char *err,
                                 size_t errsz) {
    if (!out) return dsc__ck_fail(err, errsz, DSC_ERR_INVALID, "dsc_ckpt_save_begin: out is NULL");
    *out = NULL;
    if (!save_dir || !*save_dir) return dsc__ck_fail(err, errsz, DSC_ERR_INVALID, "checkpoint save_dir is empty");
    dsc_status_t st = dsc_ckpt_check_tag(tag, err, errsz);
    if (st) return st;
    int rc = dsc__ck_mkdirs(save_dir);
    if (rc)
        return dsc__ck_fail(err, errsz, DSC_ERR_IO, "cannot create checkpoint directory '%s': %s", save_dir,
                            strerror(rc));
    if ((st = check_replaceable(save_dir, tag, "save a checkpoint over", err, errsz))) return st;
    clean_stale(save_dir);
    dsc_ckpt_save_t *s = calloc(1, sizeof *s);
    if (!s) return dsc__ck_fail(err, errsz, DSC_ERR_NOMEM, "out of memory");
    s->save_dir = dsc__ck_strdup(save_dir);
    s->tag = dsc__ck_strdup(tag);
    char *base = dsc__ck_asprintf(".tmp-%s-%ld", tag, (long)getpid());
    s->tmp = base ? dsc__ck_join(save_dir, base) : NULL;
    free(base);
    if (!s->save_dir || !s->tag || !s->tmp) {
        save_free(s);
        return dsc__ck_fail(err, errsz, DSC_ERR_NOMEM, "out of memory");
    }
    dsc__ck_remove_tree(s->tmp); /* an earlier failed attempt of this process */
    if (mkdir(s->tmp, 0755) != 0) {
        st = dsc__ck_fail(err, errsz, DSC_ERR_IO, "cannot create '%s': %s", s->tmp, strerror(errno));
        save_free(s);
        return st;
    }
    *out = s;
    return DSC_OK;
}

const char *dsc_ckpt_save_dir(const dsc_ckpt_save_t *s) { return s ? s->tmp : NULL; }
const char *dsc_ckpt_save_tag(const dsc_ckpt_save_t *s) { return s ? s->tag : NULL; }

void dsc_ckpt_save_abort(dsc_ckpt_save_t *s) {
    if (!s) return;
    dsc__ck_remove_tree(s->tmp);
    save_free(s);
}

/* fsyncs every regular file directly inside `dir`. */
static dsc_status_t fsync_files(const char *dir, char *err, size_t errsz) {
    DIR *d = opendir(dir);
    if (!d) return dsc__ck_fail(err, errsz, DSC_ERR_IO, "cannot list '%s': %s", dir, strerror(errno));
    dsc_status_t st = DSC_OK;
    struct dirent *e;
    while (!st && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        char *path = dsc__ck_join(dir, e->d_name);
        if (!path) {
            st = dsc__ck_fail(err, errsz, DSC_ERR_NOMEM, "out of memory");
            break;
        }
        struct stat sb;
        if (lstat(path, &sb) == 0 && S_ISREG(sb.st_mode)) {
            int rc = dsc__ck_fsync_path(path, false);
            if (rc) st = dsc__ck_fail(err, errsz, DSC_ERR_IO, "cannot fsync '%s': %s", path, strerror(rc));
        }
        free(path);
    }
    closedir(d);
    return st;
}

/* Moves `from` onto `to`, replacing an existing directory atomically where the file
 * system supports RENAME_EXCHANGE. */
static dsc_status_t move_into_place(dsc_ckpt_save_t *s, const char *final, char *err, size_t errsz) {
    if (rename(s->tmp, final) == 0) return DSC_OK;
    if (errno != ENOTEMPTY && errno != EEXIST)
        return dsc__ck_fail(err, errsz, DSC_ERR_IO, "cannot rename '%s' to '%s': %s", s->tmp, final, strerror(errno));
#ifdef RENAME_EXCHANGE
    if (renameat2(AT_FDCWD, s->tmp, AT_FDCWD, final, RENAME_EXCHANGE) == 0) {
        dsc__ck_remove_tree(s->tmp); /* now holds the previous checkpoint of this tag */
        return DSC_OK;
    }
#endif
    /* Fallback: move the old one aside first (a crash in between leaves <tag> missing but
     * both copies on disk as dot-directories). */
    char *base = dsc__ck_asprintf(".old-%s-%ld", s->tag, (long)getpid());
    char *old = base ? dsc__ck_join(s->save_dir, base) : NULL;
    free(base);
    if (!old) return dsc__ck_fail(err, errsz, DSC_ERR_NOMEM, "out of memory");
    dsc__ck_remove_tree(old);
    dsc_status_t st = DSC_OK;
    if (rename(final, old) != 0)
        st = dsc__ck_fail(err, errsz, DSC_ERR_IO, "cannot move '%s' aside: %s", final, strerror(errno));
    else if (rename(s->tmp, final) != 0) {
        st = dsc__ck_fail(err, errsz, DSC_ERR_IO, "cannot rename '%s' to '%s': %s", s->tmp, final, strerror(errno));
        rename(old, final);
    } else {
        dsc__ck_remove_tree(old);
    }
    free(old);
    return st;
}

static dsc_status_t write_latest(const char *save_dir, const char *tag, char *err, size_t errsz) {
    char *latest = dsc__ck_join(save_dir, DSC_CKPT_LATEST_NAME);
    if (!latest) return dsc__ck_fail(err, errsz, DSC_ERR_NOMEM, "out of memory");
    dsc_status_t st = dsc_write_file_atomic(latest, tag, strlen(tag), err, errsz);
    free(latest);
    return st;
}

dsc_status_t dsc_ckpt_save_commit(dsc_ckpt_save_t *s, dsc_manifest_t *m, bool save_latest, char *err, size_t errsz) {
    if (!s || !m) {
        dsc_ckpt_save_abort(s);
        return dsc__ck_fail(err, errsz, DSC_ERR_INVALID, "dsc_ckpt_save_commit: NULL argument");
    }
    char msg[600];
    dsc_status_t st = dsc_manifest_validate(m, msg, sizeof msg);
    if (st) {
        dsc__ck_fail(err, errsz, st, "checkpoint '%s': manifest is incomplete: %s", s->tag, msg);
        dsc_ckpt_save_abort(s);
        return st;
    }
    for (int i = 0; i < dsc_manifest_file_count(m) && !st; i++) {
        dsc_manifest_file_t f;
        dsc_manifest_file_at(m, i, &f);
        char *path = dsc__ck_join(s->tmp, f.name);
        struct stat sb;
        if (!path)
            st = dsc__ck_fail(err, errsz, DSC_ERR_NOMEM, "out of memory");
        else if (stat(path, &sb) != 0)
            st = dsc__ck_fail(err, errsz, DSC_ERR_IO, "checkpoint file '%s' listed in the manifest was not written: %s",
                              path, strerror(errno));
        else if (!S_ISREG(sb.st_mode) || (uint64_t)sb.st_size != f.size)
            st = dsc__ck_fail(err, errsz, DSC_ERR_CORRUPT,
                              "checkpoint file '%s' is %lld bytes but the manifest records %llu", path,
                              (long long)sb.st_size, (unsigned long long)f.size);
        free(path);
    }
    if (!st) st = fsync_files(s->tmp, err, errsz);
    char *mpath = dsc__ck_join(s->tmp, DSC_CKPT_MANIFEST_NAME);
    char *final = dsc__ck_join(s->save_dir, s->tag);
    if (!st && (!mpath || !final)) st = dsc__ck_fail(err, errsz, DSC_ERR_NOMEM, "out of memory");
    if (!st) st = dsc_manifest_write(m, mpath, err, errsz);
    int rc;
    if (!st && (rc = dsc__ck_fsync_path(s->tmp, true)) != 0)
        st = dsc__ck_fail(err, errsz, DSC_ERR_IO, "cannot fsync '%s': %s", s->tmp, strerror(rc));
    if (!st) st = check_replaceable(s->save_dir, s->tag, "save a checkpoint over", err, errsz);
    if (!st) st = move_into_place(s, final, err, errsz);
    if (!st && (rc = dsc__ck_fsync_path(s->save_dir, true)) != 0)
        st = dsc__ck_fail(err, errsz, DSC_ERR_IO, "cannot fsync '%s': %s", s->save_dir, strerror(rc));
    if (!st && save_latest) st = write_latest(s->save_dir, s->tag, err, errsz);
    free(mpath);
    free(final);
    if (st)
        dsc_ckpt_save_abort(s);
    else
        save_free(s);
    return st;
}

dsc_status_t dsc_ckpt_latest_tag(const char *save_dir, char *tag, size_t n, bool *found, char *err, size_t errsz) {
    if (found) *found = false;
    if (!save_dir || !tag || !n || !found)
        return dsc__ck_fail(err, errsz, DSC_ERR_INVALID, "dsc_ckpt_latest_tag: bad argument");
    tag[0] = '\0';
    char *path = dsc__ck_join(save_dir, DSC_CKPT_LATEST_NAME);
    if (!path) return dsc__ck_fail(err, errsz, DSC_ERR_NOMEM, "out of memory");
    char *text;
    size_t len;
    int rc = dsc__ck_read_file(path, 4096, &text, &len);
    dsc_status_t st = DSC_OK;
    if (rc == ENOENT) {
        free(path);
        return DSC_OK;
    }
    if (rc == EFBIG)
        st = dsc__ck_fail(err, errsz, DSC_ERR_CORRUPT, "'%s' is too large to hold a tag", path);
    else if (rc)
        st = dsc__ck_fail(err, errsz, DSC_ERR_IO, "cannot read '%s': %s", path, dsc__ck_read_strerror(rc));
    if (!st) {
        size_t b = 0, e = len;
        while (b < e && isspace((unsigned char)text[b])) b++;
        while (e > b && isspace((unsigned char)text[e - 1])) e--;
        text[e] = '\0';
        char msg[300];
        if (memchr(text + b, '\0', e - b) || dsc_ckpt_check_tag(text + b, msg, sizeof msg) != DSC_OK)
            st = dsc__ck_fail(err, errsz, DSC_ERR_CORRUPT, "'%s' does not hold a valid checkpoint tag", path);
        else if (e - b + 1 > n)
            st = dsc__ck_fail(err, errsz, DSC_ERR_INVALID, "tag in '%s' does not fit the %zu-byte buffer", path, n);
        else {
            memcpy(tag, text + b, e - b + 1);
            *found = true;
        }
        free(text);
    }
    free(path);
    return st;
}

dsc_status_t dsc_ckpt_remove_tag(const char *save_dir, const char *tag, char *err, size_t errsz) {
    if (!save_dir) return dsc__ck_fail(err, errsz, DSC_ERR_INVALID, "dsc_ckpt_remove_tag: save_dir is NULL");
    dsc_status_t st = dsc_ckpt_check_tag(tag, err, errsz);
    if (st) return st;
    char latest[DSC_CKPT_TAG_MAX + 1];
    bool found;
    st = dsc_ckpt_latest_tag(save_dir, latest, sizeof latest, &found, err, errsz);
    if (st) return st;
    if (found && strcmp(latest, tag) == 0)
        return dsc__ck_fail(err, errsz, DSC_ERR_INVALID,
                            "refusing to remove checkpoint '%s' of '%s': 'latest' names it", tag, save_dir);
    if ((st = check_replaceable(save_dir, tag, "remove", err, errsz))) return st;
    char *path = dsc__ck_join(save_dir, tag);
    char *base = dsc__ck_asprintf(".del-%s-%ld", tag, (long)getpid());
    char *del = base ? dsc__ck_join(save_dir, base) : NULL;
    free(base);
    if (!path || !del) st = dsc__ck_fail(err, errsz, DSC_ERR_NOMEM, "out of memory");
    if (!st) {
        dsc__ck_remove_tree(del);
        if (rename(path, del) != 0)
            st = dsc__ck_fail(err, errsz, DSC_ERR_IO, "cannot remove checkpoint '%s': %s", path, strerror(errno));
        else {
            dsc__ck_fsync_path(save_dir, true);
            if (dsc__ck_remove_tree(del) != 0)
                st = dsc__ck_fail(err, errsz, DSC_ERR_IO, "checkpoint '%s' hidden as '%s' but not fully removed", path,
                                  del);
        }
    }
    free(path);
    free(del);
    return st;
}

/* llm.c token shards: header checks, glob, on-demand reads, and the batch loader
 * (see dsc/shards.h for the format and the contract). */
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dsc/shards.h"

#define CHUNK_TOKENS 32768 /* 64 KiB of uint16 per pread */
#define LLAMA3_MAGIC 20240801

typedef struct shard {
    char *name;
    int64_t n_tokens;
    int64_t first;            /* index of its first token in the concatenated stream */
    int64_t size;             /* file size when opened (bytes) */
    const unsigned char *mem; /* memory shard: its token bytes (borrowed); NULL for files */
    int fd;                   /* -1 while closed */
    uint64_t used;            /* clock of the last use, for closing the least recent */
} shard_t;

struct dsc_shards {
    int n;
    shard_t *s;
    int64_t total;
    int n_open;
    uint64_t clock;
    unsigned char buf[CHUNK_TOKENS * 2];
};

struct dsc_shard_loader {
    dsc_shards_t *sh;
    dsc_sampler_t *sampler;
    int B, T;
    dsc_shard_loader_options_t opt;
    int32_t *win; /* T + 1 tokens */
    char err[1024];
};

#define ERR(status, ...)                                      \
    do {                                                      \
        if (err && errsz) snprintf(err, errsz, __VA_ARGS__);  \
        return (status);                                      \
    } while (0)

static int32_t le32(const unsigned char *p) {
    return (int32_t)((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
}

/* Checks a header against the file size; `hdr` holds min(size, 1024) bytes. */
static dsc_status_t check_header(const char *name, const unsigned char *hdr, int64_t size, int64_t *n_tokens,
                                 char *err, size_t errsz) {
    if (size == 0)
        ERR(DSC_ERR_CORRUPT, "%s: empty file (0 bytes); an llm.c shard starts with a %d-byte header", name,
            DSC_SHARD_HEADER_BYTES);
    if (size < DSC_SHARD_HEADER_BYTES)
        ERR(DSC_ERR_CORRUPT, "%s: file is %lld bytes, shorter than the %d-byte llm.c shard header", name,
            (long long)size, DSC_SHARD_HEADER_BYTES);
    int32_t magic = le32(hdr), version = le32(hdr + 4), count = le32(hdr + 8);
    if (magic == LLAMA3_MAGIC)
        ERR(DSC_ERR_UNSUPPORTED,
            "%s: LLaMA-3 shard (magic %d, uint32 tokens) is not supported; dsc reads GPT-2 shards (magic %d)", name,
            LLAMA3_MAGIC, DSC_SHARD_MAGIC);
    if (magic != DSC_SHARD_MAGIC)
        ERR(DSC_ERR_CORRUPT, "%s: bad magic %" PRId32 " (expected %d): not an llm.c token shard", name, magic,
            DSC_SHARD_MAGIC);
    if (version != DSC_SHARD_VERSION)
        ERR(DSC_ERR_CORRUPT, "%s: unsupported shard version %" PRId32 " (expected %d)", name, version,
            DSC_SHARD_VERSION);
    if (count == 0) ERR(DSC_ERR_CORRUPT, "%s: empty shard: the header's token count is 0", name);
    if (count < 0) ERR(DSC_ERR_CORRUPT, "%s: negative token count %" PRId32 " in the header", name, count);
    int64_t payload = size - DSC_SHARD_HEADER_BYTES, want = 2 * (int64_t)count;
    if (payload < want)
        ERR(DSC_ERR_CORRUPT,
            "%s: truncated: the header declares %" PRId32 " tokens (%lld bytes) but only %lld bytes follow the header",
            name, count, (long long)want, (long long)payload);
    if (payload > want)
        ERR(DSC_ERR_CORRUPT,
            "%s: %lld trailing bytes after the %" PRId32 " tokens the header declares (file is %lld bytes, expected %lld)",
            name, (long long)(payload - want), count, (long long)size, (long long)(want + DSC_SHARD_HEADER_BYTES));
    *n_tokens = count;
    return DSC_OK;
}

/* pread until n bytes, EOF or an error; returns the bytes read, or -1 (errno set). */
static ssize_t pread_full(int fd, unsigned char *buf, size_t n, int64_t off) {
    size_t got = 0;
    while (got < n) {
        ssize_t r = pread(fd, buf + got, n - got, (off_t)(off + (int64_t)got));
        if (r < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (r == 0) break;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

/* Opens shard i's file and checks it is a regular file (of its recorded size, once known). */
static dsc_status_t open_file(shard_t *s, int *fd_out, char *err, size_t errsz) {
    int fd = open(s->name, O_RDONLY | O_CLOEXEC | O_NONBLOCK); /* O_NONBLOCK: a FIFO must not hang us */
    if (fd < 0) ERR(DSC_ERR_IO, "%s: cannot open: %s", s->name, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        ERR(DSC_ERR_IO, "%s: cannot stat: %s", s->name, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        ERR(DSC_ERR_IO, "%s: not a regular file", s->name);
    }
    if (s->size >= 0 && (int64_t)st.st_size != s->size) {
        close(fd);
        ERR(DSC_ERR_CORRUPT, "%s: size changed from %lld to %lld bytes since it was opened", s->name,
            (long long)s->size, (long long)st.st_size);
    }
    s->size = (int64_t)st.st_size;
    *fd_out = fd;
    return DSC_OK;
}

static void close_lru(dsc_shards_t *sh) {
    int victim = -1;
    for (int i = 0; i < sh->n; i++)
        if (sh->s[i].fd >= 0 && (victim < 0 || sh->s[i].used < sh->s[victim].used)) victim = i;
    if (victim >= 0) {
        close(sh->s[victim].fd);
        sh->s[victim].fd = -1;
        sh->n_open--;
    }
}

static dsc_status_t shard_fd(dsc_shards_t *sh, int i, int *fd, char *err, size_t errsz) {
    shard_t *s = &sh->s[i];
    if (s->fd < 0) {
        if (sh->n_open >= DSC_SHARDS_MAX_OPEN) close_lru(sh);
        dsc_status_t rc = open_file(s, &s->fd, err, errsz);
        if (rc != DSC_OK) return rc;
        sh->n_open++;
    }
    s->used = ++sh->clock;
    *fd = s->fd;
    return DSC_OK;
}

/* Reads tokens [off, off + count) of shard i (a range inside it) into out. */
static dsc_status_t read_span(dsc_shards_t *sh, int i, int64_t off, int64_t count, int32_t *out, char *err,
                              size_t errsz) {
    shard_t *s = &sh->s[i];
    while (count > 0) {
        int64_t k = count < CHUNK_TOKENS ? count : CHUNK_TOKENS;
        const unsigned char *src;
        if (s->mem) {
            src = s->mem + 2 * off;
        } else {
            int fd;
            dsc_status_t rc = shard_fd(sh, i, &fd, err, errsz);
            if (rc != DSC_OK) return rc;
            int64_t at = DSC_SHARD_HEADER_BYTES + 2 * off;
            ssize_t got = pread_full(fd, sh->buf, (size_t)(2 * k), at);
            if (got < 0) ERR(DSC_ERR_IO, "%s: read error at byte %lld: %s", s->name, (long long)at, strerror(errno));
            if (got < 2 * k)
                ERR(DSC_ERR_CORRUPT, "%s: file ends at byte %lld, before the %lld tokens its header declares "
                    "(truncated since it was opened?)", s->name, (long long)(at + got), (long long)s->n_tokens);
            src = sh->buf;
        }
        for (int64_t t = 0; t < k; t++) out[t] = (int32_t)((uint32_t)src[2 * t] | (uint32_t)src[2 * t + 1] << 8);
        out += k;
        off += k;
        count -= k;
    }
    return DSC_OK;
}

/* The shard holding stream position pos (0 <= pos < total). */
static int locate(const dsc_shards_t *sh, int64_t pos) {
    int lo = 0, hi = sh->n - 1;
    while (lo < hi) {
        int mid = lo + (hi - lo + 1) / 2;
        if (sh->s[mid].first <= pos) lo = mid;
        else hi = mid - 1;
    }
    return lo;
}

static dsc_shards_t *shards_alloc(int n) {
    dsc_shards_t *sh = calloc(1, sizeof *sh);
    if (!sh) return NULL;
    sh->s = calloc((size_t)n, sizeof *sh->s);
    if (!sh->s) {
        free(sh);
        return NULL;
    }
    sh->n = n;
    for (int i = 0; i < n; i++) {
        sh->s[i].fd = -1;
        sh->s[i].size = -1;
    }
    return sh;
}

void dsc_shards_free(dsc_shards_t *sh) {
    if (!sh) return;
    for (int i = 0; i < sh->n; i++) {
        if (sh->s[i].fd >= 0) close(sh->s[i].fd);
        free(sh->s[i].name);
    }
    free(sh->s);
    free(sh);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Opens, checks and records shard i (its name already set). */
static dsc_status_t open_shard_file(dsc_shards_t *sh, int i, char *err, size_t errsz) {
    shard_t *s = &sh->s[i];
    int fd;
    dsc_status_t rc = open_file(s, &fd, err, errsz);
    if (rc != DSC_OK) return rc;
    unsigned char hdr[DSC_SHARD_HEADER_BYTES];
    size_t want = s->size < DSC_SHARD_HEADER_BYTES ? (size_t)s->size : DSC_SHARD_HEADER_BYTES;
    ssize_t got = pread_full(fd, hdr, want, 0);
    if (got < 0 || (size_t)got < want) {
        int e = got < 0 ? errno : 0;
        close(fd);
        if (e) ERR(DSC_ERR_IO, "%s: cannot read the header: %s", s->name, strerror(e));
        ERR(DSC_ERR_IO, "%s: cannot read the header: file shrank while reading", s->name);
    }
    rc = check_header(s->name, hdr, s->size, &s->n_tokens, err, errsz);
    if (rc != DSC_OK) {
        close(fd);
        return rc;
    }
    if (sh->n_open < DSC_SHARDS_MAX_OPEN) {
        s->fd = fd;
        s->used = ++sh->clock;
        sh->n_open++;
    } else {
        close(fd);
    }
    return DSC_OK;
}

static void finish_offsets(dsc_shards_t *sh) {
    sh->total = 0;
    for (int i = 0; i < sh->n; i++) {
        sh->s[i].first = sh->total;
        sh->total += sh->s[i].n_tokens;
    }
}

dsc_status_t dsc_shards_open(const char *pattern, dsc_shards_t **out, char *err, size_t errsz) {
    if (!out) ERR(DSC_ERR_INVALID, "shards: out is NULL");
    *out = NULL;
    if (!pattern || !*pattern) ERR(DSC_ERR_INVALID, "shards: empty file pattern");
    glob_t g;
    memset(&g, 0, sizeof g);
    int grc = glob(pattern, 0, NULL, &g);
    if (grc == GLOB_NOMATCH || (grc == 0 && g.gl_pathc == 0)) {
        globfree(&g);
        ERR(DSC_ERR_IO, "shards: no file matches the pattern '%s'", pattern);
    }
    if (grc == GLOB_NOSPACE) {
        globfree(&g);
        ERR(DSC_ERR_NOMEM, "shards: out of memory matching '%s'", pattern);
    }
    if (grc != 0) {
        globfree(&g);
        ERR(DSC_ERR_IO, "shards: cannot read a directory while matching '%s'", pattern);
    }
    if (g.gl_pathc > (size_t)1 << 24) {
        globfree(&g);
        ERR(DSC_ERR_INVALID, "shards: '%s' matches %zu files; at most %d are supported", pattern, g.gl_pathc,
            1 << 24);
    }
    int n = (int)g.gl_pathc;
    dsc_shards_t *sh = shards_alloc(n);
    if (!sh) {
        globfree(&g);
        ERR(DSC_ERR_NOMEM, "shards: out of memory for %d shards", n);
    }
    for (int i = 0; i < n; i++) {
        if (!(sh->s[i].name = strdup(g.gl_pathv[i]))) {
            globfree(&g);
            dsc_shards_free(sh);
            ERR(DSC_ERR_NOMEM, "shards: out of memory for %d shards", n);
        }
    }
    globfree(&g);
    /* glob sorts by the locale's collation; strcmp makes the order the same everywhere. */
    char **names = malloc((size_t)n * sizeof *names);
    if (!names) {
        dsc_shards_free(sh);
        ERR(DSC_ERR_NOMEM, "shards: out of memory for %d shards", n);
    }
    for (int i = 0; i < n; i++) names[i] = sh->s[i].name;
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    for (int i = 0; i < n; i++) sh->s[i].name = names[i];
    free(names);
    for (int i = 0; i < n; i++) {
        dsc_status_t rc = open_shard_file(sh, i, err, errsz);
        if (rc != DSC_OK) {
            dsc_shards_free(sh);
            return rc;
        }
    }
    finish_offsets(sh);
    *out = sh;
    return DSC_OK;
}

dsc_status_t dsc_shards_open_memory(int n, const void *const *data, const size_t *sizes, const char *const *names,
                                    dsc_shards_t **out, char *err, size_t errsz) {
    if (!out) ERR(DSC_ERR_INVALID, "shards: out is NULL");
    *out = NULL;
    if (n < 1 || !data || !sizes) ERR(DSC_ERR_INVALID, "shards: no memory shards given");
    dsc_shards_t *sh = shards_alloc(n);
    if (!sh) ERR(DSC_ERR_NOMEM, "shards: out of memory for %d shards", n);
    for (int i = 0; i < n; i++) {
        char fallback[32];
        snprintf(fallback, sizeof fallback, "<memory %d>", i);
        const char *name = names && names[i] ? names[i] : fallback;
        shard_t *s = &sh->s[i];
        if (!(s->name = strdup(name))) {
            dsc_shards_free(sh);
            ERR(DSC_ERR_NOMEM, "shards: out of memory");
        }
        if (!data[i] && sizes[i] > 0) {
            dsc_shards_free(sh);
            ERR(DSC_ERR_INVALID, "%s: NULL data with size %zu", name, sizes[i]);
        }
        if (sizes[i] > (size_t)INT64_MAX / 2) {
            dsc_shards_free(sh);
            ERR(DSC_ERR_INVALID, "%s: size %zu is too large", name, sizes[i]);
        }
        s->size = (int64_t)sizes[i];
        dsc_status_t rc = check_header(s->name, data[i], s->size, &s->n_tokens, err, errsz);
        if (rc != DSC_OK) {
            dsc_shards_free(sh);
            return rc;
        }
        s->mem = (const unsigned char *)data[i] + DSC_SHARD_HEADER_BYTES;
    }
    finish_offsets(sh);
    *out = sh;
    return DSC_OK;
}

int dsc_shards_count(const dsc_shards_t *sh) { return sh ? sh->n : 0; }
const char *dsc_shards_name(const dsc_shards_t *sh, int i) { return sh && i >= 0 && i < sh->n ? sh->s[i].name : NULL; }
int64_t dsc_shards_shard_tokens(const dsc_shards_t *sh, int i) {
    return sh && i >= 0 && i < sh->n ? sh->s[i].n_tokens : 0;
}
int64_t dsc_shards_tokens(const dsc_shards_t *sh) { return sh ? sh->total : 0; }

dsc_status_t dsc_shards_read(dsc_shards_t *sh, int64_t start, int64_t count, int32_t *out, char *err,
                             size_t errsz) {
    if (!sh) ERR(DSC_ERR_INVALID, "shards: read from a NULL shard set");
    if (start < 0 || count < 0 || start > sh->total || count > sh->total - start)
        ERR(DSC_ERR_INVALID, "shards: read of tokens [%lld, %lld + %lld) is outside the %lld tokens of the set",
            (long long)start, (long long)start, (long long)count, (long long)sh->total);
    if (count == 0) return DSC_OK;
    if (!out) ERR(DSC_ERR_INVALID, "shards: read into a NULL buffer");
    int i = locate(sh, start);
    while (count > 0) {
        int64_t off = start - sh->s[i].first;
        int64_t k = sh->s[i].n_tokens - off;
        if (k > count) k = count;
        dsc_status_t rc = read_span(sh, i, off, k, out, err, errsz);
        if (rc != DSC_OK) return rc;
        out += k;
        start += k;
        count -= k;
        i++;
    }
    return DSC_OK;
}

dsc_status_t dsc_shards_check_vocab(dsc_shards_t *sh, int vocab_size, int32_t *max_token, char *err,
                                    size_t errsz) {
    if (!sh) ERR(DSC_ERR_INVALID, "shards: vocabulary check of a NULL shard set");
    if (vocab_size < 1) ERR(DSC_ERR_INVALID, "shards: vocab_size must be >= 1, got %d", vocab_size);
    int32_t *buf = malloc(CHUNK_TOKENS * sizeof *buf);
    if (!buf) ERR(DSC_ERR_NOMEM, "shards: out of memory");
    int32_t max = 0;
    for (int i = 0; i < sh->n; i++) {
        for (int64_t off = 0; off < sh->s[i].n_tokens; off += CHUNK_TOKENS) {
            int64_t k = sh->s[i].n_tokens - off;
            if (k > CHUNK_TOKENS) k = CHUNK_TOKENS;
            dsc_status_t rc = read_span(sh, i, off, k, buf, err, errsz);
            if (rc != DSC_OK) {
                free(buf);
                return rc;
            }
            for (int64_t t = 0; t < k; t++) {
                if (buf[t] >= vocab_size) {
                    int32_t v = buf[t];
                    free(buf);
                    ERR(DSC_ERR_INVALID, "%s: token %" PRId32 " at position %lld (0-based token index in the file) "
                        "is outside the model's vocabulary (vocab_size %d)", sh->s[i].name, v,
                        (long long)(off + t), vocab_size);
                }
                if (buf[t] > max) max = buf[t];
            }
        }
    }
    free(buf);
    if (max_token) *max_token = max;
    return DSC_OK;
}

/* ---- loader ---------------------------------------------------------------------------- */

dsc_status_t dsc_shard_loader_from_shards(dsc_shards_t *shards, int B, int T, int rank, int world, uint64_t seed,
                                          const dsc_shard_loader_options_t *opts, dsc_shard_loader_t **out,
                                          char *err, size_t errsz) {
    dsc_status_t rc = DSC_OK;
    dsc_shard_loader_t *l = NULL;
    if (out) *out = NULL;
#define FAIL(status, ...)                                     \
    do {                                                      \
        if (err && errsz) snprintf(err, errsz, __VA_ARGS__);  \
        rc = (status);                                        \
        goto fail;                                            \
    } while (0)
    if (!out) FAIL(DSC_ERR_INVALID, "shard loader: out is NULL");
    if (!shards) FAIL(DSC_ERR_INVALID, "shard loader: shard set is NULL");
    dsc_shard_loader_options_t o = DSC_SHARD_LOADER_OPTIONS_INIT;
    if (opts) o = *opts;
    if (B < 1 || T < 1) FAIL(DSC_ERR_INVALID, "shard loader: B and T must be >= 1, got B=%d T=%d", B, T);
    if ((int64_t)B * T > (int64_t)1 << 30)
        FAIL(DSC_ERR_INVALID, "shard loader: B*T = %lld is too large (at most 2^30)", (long long)B * T);
    if (world < 1 || rank < 0 || rank >= world)
        FAIL(DSC_ERR_INVALID, "shard loader: rank %d is outside 0..%d (world size %d)", rank, world - 1, world);
    int64_t n_windows = dsc_windows_count(shards->total, T);
    if (n_windows < 1)
        FAIL(DSC_ERR_INVALID, "shard loader: %s%s has %lld tokens; one window of T=%d needs %lld", shards->s[0].name,
             shards->n > 1 ? " (and the rest of the set)" : "", (long long)shards->total, T, (long long)T + 1);
    if (o.vocab_size > 0 && o.check_vocab) {
        rc = dsc_shards_check_vocab(shards, o.vocab_size, NULL, err, errsz);
        if (rc != DSC_OK) goto fail;
    }
    if (!(l = calloc(1, sizeof *l)) || !(l->win = malloc(((size_t)T + 1) * sizeof *l->win)))
        FAIL(DSC_ERR_NOMEM, "shard loader: out of memory");
    dsc_sampler_options_t so = DSC_SAMPLER_OPTIONS_INIT;
    so.n_samples = n_windows;
    so.world_size = world;
    so.rank = rank;
    so.seed = seed;
    so.shuffle = o.shuffle;
    so.drop_last = o.drop_last;
    rc = dsc_sampler_new(&so, &l->sampler, err, errsz);
    if (rc != DSC_OK) goto fail;
    l->sh = shards;
    l->B = B;
    l->T = T;
    l->opt = o;
    *out = l;
    return DSC_OK;
fail:
    if (l) {
        free(l->win);
        free(l);
    }
    dsc_shards_free(shards);
    return rc;
#undef FAIL
}

dsc_status_t dsc_shard_loader_new_ex(const char *pattern, int B, int T, int rank, int world, uint64_t seed,
                                     const dsc_shard_loader_options_t *opts, dsc_shard_loader_t **out, char *err,
                                     size_t errsz) {
    if (!out) ERR(DSC_ERR_INVALID, "shard loader: out is NULL");
    *out = NULL;
    dsc_shards_t *sh = NULL;
    dsc_status_t rc = dsc_shards_open(pattern, &sh, err, errsz);
    if (rc != DSC_OK) return rc;
    return dsc_shard_loader_from_shards(sh, B, T, rank, world, seed, opts, out, err, errsz);
}

dsc_status_t dsc_shard_loader_new(const char *pattern, int B, int T, int rank, int world, uint64_t seed,
                                  dsc_shard_loader_t **out, char *err, size_t errsz) {
    return dsc_shard_loader_new_ex(pattern, B, T, rank, world, seed, NULL, out, err, errsz);
}

dsc_status_t dsc_shard_loader_new_val(const char *pattern, int B, int T, int rank, int world,
                                      dsc_shard_loader_t **out, char *err, size_t errsz) {
    dsc_shard_loader_options_t o = DSC_SHARD_LOADER_OPTIONS_INIT;
    o.shuffle = false;
    return dsc_shard_loader_new_ex(pattern, B, T, rank, world, 0, &o, out, err, errsz);
}

void dsc_shard_loader_free(dsc_shard_loader_t *l) {
    if (!l) return;
    dsc_sampler_free(l->sampler);
    dsc_shards_free(l->sh);
    free(l->win);
    free(l);
}

dsc_status_t dsc_shard_loader_next(dsc_shard_loader_t *l, int32_t *x, int32_t *y) {
    if (!l) return DSC_ERR_INVALID;
    l->err[0] = '\0';
    char *err = l->err;
    size_t errsz = sizeof l->err;
    if (!x || !y) ERR(DSC_ERR_INVALID, "shard loader: next with a NULL x or y");
    dsc_sampler_state_t saved;
    dsc_sampler_state_get(l->sampler, &saved);
    const int T = l->T;
    for (int b = 0; b < l->B; b++) {
        int64_t w = 0;
        dsc_status_t rc = dsc_sampler_next(l->sampler, &w);
        int64_t start = w * T;
        if (rc == DSC_OK) rc = dsc_shards_read(l->sh, start, (int64_t)T + 1, l->win, err, errsz);
        if (rc == DSC_OK && l->opt.vocab_size > 0) {
            for (int t = 0; t <= T; t++) {
                if (l->win[t] >= l->opt.vocab_size) {
                    int i = locate(l->sh, start + t);
                    snprintf(err, errsz, "%s: token %" PRId32 " at position %lld (0-based token index in the file) "
                             "is outside the model's vocabulary (vocab_size %d)", l->sh->s[i].name, l->win[t],
                             (long long)(start + t - l->sh->s[i].first), l->opt.vocab_size);
                    rc = DSC_ERR_INVALID;
                    break;
                }
            }
        }
        if (rc != DSC_OK) {
            dsc_sampler_state_set(l->sampler, &saved, NULL, 0);
            return rc;
        }
        memcpy(x + (size_t)b * T, l->win, (size_t)T * sizeof *x);
        memcpy(y + (size_t)b * T, l->win + 1, (size_t)T * sizeof *y);
    }
    return DSC_OK;
}

void dsc_shard_loader_state_get(const dsc_shard_loader_t *l, dsc_sampler_state_t *state) {
    if (l) dsc_sampler_state_get(l->sampler, state);
}

dsc_status_t dsc_shard_loader_state_set(dsc_shard_loader_t *l, const dsc_sampler_state_t *state) {
    if (!l) return DSC_ERR_INVALID;
    l->err[0] = '\0';
    return dsc_sampler_state_set(l->sampler, state, l->err, sizeof l->err);
}

void dsc_shard_loader_reset(dsc_shard_loader_t *l) {
    if (l) dsc_sampler_set_epoch(l->sampler, 0);
}

const char *dsc_shard_loader_errmsg(const dsc_shard_loader_t *l) { return l ? l->err : ""; }

int64_t dsc_shard_loader_windows(const dsc_shard_loader_t *l) { return l ? dsc_sampler_n_samples(l->sampler) : 0; }
int64_t dsc_shard_loader_rank_windows(const dsc_shard_loader_t *l) {
    return l ? dsc_sampler_per_rank(l->sampler) : 0;
}
int64_t dsc_shard_loader_batches_per_epoch(const dsc_shard_loader_t *l) {
    if (!l) return 0;
    int64_t p = dsc_sampler_per_rank(l->sampler);
    return p / l->B + (p % l->B != 0);
}

dsc_shards_t *dsc_shard_loader_shards(dsc_shard_loader_t *l) { return l ? l->sh : NULL; }

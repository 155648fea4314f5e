/* Character-level text dataset (see dsc/data.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dsc/data.h"

struct dsc_text_dataset {
    int32_t *tokens;
    int64_t n_tokens, n_train;
    int vocab_size;
    unsigned char id_to_byte[256];
    int32_t byte_to_id[256];
};

#define ERR(status, ...)                                      \
    do {                                                      \
        if (err && errsz) snprintf(err, errsz, __VA_ARGS__);  \
        return (status);                                      \
    } while (0)

dsc_status_t dsc_text_dataset_from_text(const char *text, size_t n, double val_fraction, dsc_text_dataset_t **out,
                                        char *err, size_t errsz) {
    if (!out) ERR(DSC_ERR_INVALID, "dataset: out is NULL");
    *out = NULL;
    if (!text || n < 2) ERR(DSC_ERR_INVALID, "dataset: text has %zu bytes; need at least 2", text ? n : 0);
    if (!(val_fraction >= 0 && val_fraction <= 0.5))
        ERR(DSC_ERR_INVALID, "dataset: val_fraction must be in [0, 0.5], got %g", val_fraction);
    dsc_text_dataset_t *ds = calloc(1, sizeof *ds);
    if (!ds || !(ds->tokens = malloc(n * sizeof(int32_t)))) {
        free(ds);
        ERR(DSC_ERR_NOMEM, "dataset: out of memory for %zu tokens", n);
    }
    bool seen[256] = {false};
    for (size_t i = 0; i < n; i++) seen[(unsigned char)text[i]] = true;
    for (int c = 0; c < 256; c++) {
        ds->byte_to_id[c] = -1;
        if (seen[c]) {
            ds->id_to_byte[ds->vocab_size] = (unsigned char)c;
            ds->byte_to_id[c] = ds->vocab_size++;
        }
    }
    for (size_t i = 0; i < n; i++) ds->tokens[i] = ds->byte_to_id[(unsigned char)text[i]];
    ds->n_tokens = (int64_t)n;
    ds->n_train = (int64_t)((double)n * (1.0 - val_fraction));
    *out = ds;
    return DSC_OK;
}

dsc_status_t dsc_text_dataset_load(const char *const *paths, int n_paths, double val_fraction,
                                   dsc_text_dataset_t **out, char *err, size_t errsz) {
    if (!paths || n_paths < 1) ERR(DSC_ERR_INVALID, "dataset: no input files");
    char *text = NULL;
    size_t len = 0;
    for (int k = 0; k < n_paths; k++) {
        /* O_NONBLOCK: a FIFO (or a device) is refused below instead of blocking the open. */
        int fd = open(paths[k], O_RDONLY | O_NONBLOCK | O_CLOEXEC);
        struct stat sb;
        if (fd < 0 || fstat(fd, &sb) != 0) {
            int e = errno;
            if (fd >= 0) close(fd);
            free(text);
            ERR(DSC_ERR_IO, "dataset: cannot open %s: %s", paths[k], strerror(e));
        }
        if (!S_ISREG(sb.st_mode)) {
            close(fd);
            free(text);
            ERR(DSC_ERR_INVALID, "dataset: %s is %s, not a text file", paths[k],
                S_ISDIR(sb.st_mode)    ? "a directory"
                : S_ISFIFO(sb.st_mode) ? "a FIFO (named pipe)"
                                       : "not a regular file (a socket or device)");
        }
        (void)fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
        FILE *f = fdopen(fd, "rb");
        if (!f) {
            close(fd);
            free(text);
            ERR(DSC_ERR_NOMEM, "dataset: out of memory opening %s", paths[k]);
        }
        const size_t file_start = len;
        char buf[65536];
        size_t got;
        while ((got = fread(buf, 1, sizeof buf, f)) > 0) {
            char *grown = realloc(text, len + got);
            if (!grown) {
                fclose(f);
                free(text);
                ERR(DSC_ERR_NOMEM, "dataset: out of memory reading %s", paths[k]);
            }
            text = grown;
            memcpy(text + len, buf, got);
            len += got;
        }
        int read_errno = ferror(f) ? errno : 0;
        bool failed = ferror(f);
        fclose(f);
        if (failed) {
            free(text);
            ERR(DSC_ERR_IO, "dataset: cannot read %s: %s", paths[k], strerror(read_errno ? read_errno : EIO));
        }
        /* An llm.c token shard (int32 magic 20240520 first) is binary tokens, not text. */
        if (len - file_start >= 4) {
            const unsigned char *h = (const unsigned char *)text + file_start;
            const uint32_t magic = (uint32_t)h[0] | (uint32_t)h[1] << 8 | (uint32_t)h[2] << 16 | (uint32_t)h[3] << 24;
            if (magic == 20240520u) {
                free(text);
                ERR(DSC_ERR_INVALID, "dataset: %s is an llm.c token shard (header magic 20240520), not text: give "
                    "shards as one --data pattern ending in .bin", paths[k]);
            }
        }
    }
    dsc_status_t rc = dsc_text_dataset_from_text(text, len, val_fraction, out, err, errsz);
    free(text);
    return rc;
}

void dsc_text_dataset_free(dsc_text_dataset_t *ds) {
    if (!ds) return;
    free(ds->tokens);
    free(ds);
}

int dsc_text_dataset_vocab_size(const dsc_text_dataset_t *ds) { return ds ? ds->vocab_size : 0; }

int64_t dsc_text_dataset_size(const dsc_text_dataset_t *ds, dsc_split_t split) {
    if (!ds) return 0;
    return split == DSC_SPLIT_TRAIN ? ds->n_train : ds->n_tokens - ds->n_train;
}

unsigned char dsc_text_dataset_decode(const dsc_text_dataset_t *ds, int32_t id) {
    return ds && id >= 0 && id < ds->vocab_size ? ds->id_to_byte[id] : 0;
}

int32_t dsc_text_dataset_encode(const dsc_text_dataset_t *ds, unsigned char byte) { return ds ? ds->byte_to_id[byte] : -1; }

static uint64_t next_u64(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

dsc_status_t dsc_text_dataset_batch(const dsc_text_dataset_t *ds, dsc_split_t split, int b, int t, uint64_t *rng_state,
                                    int32_t *x, int32_t *y) {
    if (!ds || !rng_state || !x || !y || b < 1 || t < 1) return DSC_ERR_INVALID;
    int64_t start = split == DSC_SPLIT_TRAIN ? 0 : ds->n_train;
    int64_t n = dsc_text_dataset_size(ds, split);
    if (n < (int64_t)t + 1) return DSC_ERR_INVALID;
    for (int i = 0; i < b; i++) {
        int64_t off = start + (int64_t)(next_u64(rng_state) % (uint64_t)(n - t));
        memcpy(x + (size_t)i * t, ds->tokens + off, (size_t)t * sizeof(int32_t));
        memcpy(y + (size_t)i * t, ds->tokens + off + 1, (size_t)t * sizeof(int32_t));
    }
    return DSC_OK;
}

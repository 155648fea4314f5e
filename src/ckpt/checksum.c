/* File checksums: XXH3-64 (seed 0) from Debian's libxxhash-dev, compiled inline
 * (XXH_INLINE_ALL) so only the header is needed and nothing is linked. */
#if defined(__has_include)
#if !__has_include(<xxhash.h>)
#error "dsc needs xxhash.h: install Debian's libxxhash-dev (scripts/deps.sh does)"
#endif
#endif
#define XXH_INLINE_ALL
#include <xxhash.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ckpt/ckpt_internal.h"

struct dsc__ck_hash {
    XXH3_state_t *state;
};

dsc__ck_hash_t *dsc__ck_hash_new(void) {
    dsc__ck_hash_t *h = malloc(sizeof *h);
    if (!h) return NULL;
    h->state = XXH3_createState();
    if (!h->state || XXH3_64bits_reset(h->state) != XXH_OK) {
        XXH3_freeState(h->state);
        free(h);
        return NULL;
    }
    return h;
}

void dsc__ck_hash_update(dsc__ck_hash_t *h, const void *data, size_t n) {
    if (n) XXH3_64bits_update(h->state, data, n);
}

uint64_t dsc__ck_hash_digest(const dsc__ck_hash_t *h) { return (uint64_t)XXH3_64bits_digest(h->state); }

void dsc__ck_hash_free(dsc__ck_hash_t *h) {
    if (!h) return;
    XXH3_freeState(h->state);
    free(h);
}

uint64_t dsc_ckpt_checksum(const void *data, size_t n) { return (uint64_t)XXH3_64bits(n ? data : "", n); }

void dsc__ck_hex64(uint64_t v, char buf[17]) { snprintf(buf, 17, "%016llx", (unsigned long long)v); }

bool dsc__ck_parse_hex64(const char *s, uint64_t *v) {
    uint64_t x = 0;
    int i = 0;
    for (; i < 16; i++) {
        char c = s[i];
        unsigned d;
        if (c >= '0' && c <= '9')
            d = (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            d = (unsigned)(c - 'a' + 10);
        else
            return false;
        x = (x << 4) | d;
    }
    if (s[i] != '\0') return false;
    *v = x;
    return true;
}

dsc_status_t dsc_ckpt_checksum_file(const char *path, dsc_st_file_info_t *info, char *err, size_t errsz) {
    if (!path || !info) return dsc__ck_fail(err, errsz, DSC_ERR_INVALID, "dsc_ckpt_checksum_file: NULL argument");
    int fd, orc = dsc__ck_open_regular(path, &fd);
    if (orc) return dsc__ck_fail(err, errsz, DSC_ERR_IO, "cannot open '%s': %s", path, dsc__ck_read_strerror(orc));
    size_t cap = (size_t)4 << 20;
    unsigned char *buf = malloc(cap);
    dsc__ck_hash_t *h = dsc__ck_hash_new();
    if (!buf || !h) {
        free(buf);
        dsc__ck_hash_free(h);
        close(fd);
        return dsc__ck_fail(err, errsz, DSC_ERR_NOMEM, "out of memory hashing '%s'", path);
    }
    uint64_t total = 0;
    dsc_status_t st = DSC_OK;
    for (;;) {
        ssize_t r = read(fd, buf, cap);
        if (r < 0) {
            if (errno == EINTR) continue;
            st = dsc__ck_fail(err, errsz, DSC_ERR_IO, "cannot read '%s': %s", path, strerror(errno));
            break;
        }
        if (r == 0) break;
        dsc__ck_hash_update(h, buf, (size_t)r);
        total += (uint64_t)r;
    }
    if (st == DSC_OK) {
        info->size = total;
        info->xxh3 = dsc__ck_hash_digest(h);
    }
    free(buf);
    dsc__ck_hash_free(h);
    close(fd);
    return st;
}

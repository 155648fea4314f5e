/* A small PNG writer: 8-bit RGB, filter 0, one zlib stream compressed with deflate's fixed
 * Huffman codes and LZ77 matches at three distances (the previous byte, the previous pixel,
 * the previous row), which is what plots need: long runs of one colour and repeated rows.
 * RFC 1950 (zlib), RFC 1951 (deflate), PNG spec (chunks, CRC-32). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dsc/ckpt.h"
#include "dsc/monitor.h"
#include "monitor/monitor_internal.h"

typedef struct {
    uint8_t *p;
    size_t n, cap;
    uint64_t bits;
    int nbits;
    bool oom;
} out_t;

static void put_byte(out_t *o, uint8_t v) {
    if (o->oom) return;
    if (o->n == o->cap) {
        size_t cap = o->cap ? 2 * o->cap : 4096;
        uint8_t *p = realloc(o->p, cap);
        if (!p) {
            o->oom = true;
            return;
        }
        o->p = p;
        o->cap = cap;
    }
    o->p[o->n++] = v;
}

/* Deflate's bit order: values LSB first. */
static void put_bits(out_t *o, uint32_t v, int n) {
    o->bits |= (uint64_t)v << o->nbits;
    o->nbits += n;
    while (o->nbits >= 8) {
        put_byte(o, (uint8_t)o->bits);
        o->bits >>= 8;
        o->nbits -= 8;
    }
}

/* Huffman codes are sent most significant bit first. */
static void put_code(out_t *o, uint32_t code, int len) {
    uint32_t r = 0;
    for (int i = 0; i < len; i++) r |= ((code >> i) & 1u) << (len - 1 - i);
    put_bits(o, r, len);
}

static void put_litlen(out_t *o, int v) {
    if (v < 144) put_code(o, 0x30u + (uint32_t)v, 8);
    else if (v < 256) put_code(o, 0x190u + (uint32_t)(v - 144), 9);
    else if (v < 280) put_code(o, (uint32_t)(v - 256), 7);
    else put_code(o, 0xC0u + (uint32_t)(v - 280), 8);
}

static const int len_base[29] = {3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27,
                                 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258};
static const int len_extra[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
static const int dist_base[30] = {1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193,
                                  257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577};
static const int dist_extra[30] = {0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};

static void put_match(out_t *o, int len, int dist) {
    int c = 28;
    while (len_base[c] > len) c--;
    put_litlen(o, 257 + c);
    if (len_extra[c]) put_bits(o, (uint32_t)(len - len_base[c]), len_extra[c]);
    int d = 29;
    while (dist_base[d] > dist) d--;
    put_code(o, (uint32_t)d, 5);
    if (dist_extra[d]) put_bits(o, (uint32_t)(dist - dist_base[d]), dist_extra[d]);
}

static size_t match_len(const uint8_t *data, size_t n, size_t i, size_t dist) {
    if (dist == 0 || dist > i || dist > 32768) return 0;
    size_t max = n - i < 258 ? n - i : 258, k = 0;
    while (k < max && data[i + k] == data[i + k - dist]) k++;
    return k;
}

/* zlib stream of `data` in one fixed-Huffman block; `stride` is the PNG row length. */
static void zlib_compress(out_t *o, const uint8_t *data, size_t n, size_t stride) {
    put_byte(o, 0x78);
    put_byte(o, 0x01); /* (0x78 * 256 + 0x01) % 31 == 0 */
    put_bits(o, 1, 1); /* BFINAL */
    put_bits(o, 1, 2); /* BTYPE = 01: fixed Huffman codes */
    const size_t dists[3] = {1, 3, stride};
    for (size_t i = 0; i < n;) {
        size_t best = 0, best_d = 0;
        for (int k = 0; k < 3; k++) {
            size_t l = match_len(data, n, i, dists[k]);
            if (l > best) {
                best = l;
                best_d = dists[k];
            }
        }
        if (best >= 3) {
            put_match(o, (int)best, (int)best_d);
            i += best;
        } else {
            put_litlen(o, data[i++]);
        }
    }
    put_litlen(o, 256); /* end of block */
    if (o->nbits) put_bits(o, 0, 8 - o->nbits);
    uint32_t a = 1, b = 0; /* Adler-32 */
    for (size_t i = 0; i < n; i++) {
        a = (a + data[i]) % 65521u;
        b = (b + a) % 65521u;
    }
    uint32_t adler = b << 16 | a;
    for (int i = 3; i >= 0; i--) put_byte(o, (uint8_t)(adler >> (8 * i)));
}

static uint32_t crc32_update(uint32_t c, const uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
    }
    return c;
}

static bool write_chunk(FILE *f, const char type[4], const uint8_t *data, size_t n) {
    uint8_t len[4] = {(uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n};
    uint32_t c = crc32_update(0xFFFFFFFFu, (const uint8_t *)type, 4);
    c = crc32_update(c, data, n) ^ 0xFFFFFFFFu;
    uint8_t crc[4] = {(uint8_t)(c >> 24), (uint8_t)(c >> 16), (uint8_t)(c >> 8), (uint8_t)c};
    return fwrite(len, 1, 4, f) == 4 && fwrite(type, 1, 4, f) == 4 && (n == 0 || fwrite(data, 1, n, f) == n) &&
           fwrite(crc, 1, 4, f) == 4;
}

dsc_status_t dsc_png_write_rgb(const char *path, const uint8_t *rgb, int width, int height, char *err, size_t errsz) {
    if (err && errsz) err[0] = '\0';
    if (!path || !rgb || width < 1 || height < 1 || width > 10000 || height > 10000)
        return dsc__mon_fail(err, errsz, DSC_ERR_INVALID, "dsc_png_write_rgb: invalid arguments (%dx%d image)", width,
                             height);
    const size_t stride = 1 + (size_t)width * 3, n = stride * (size_t)height;
    uint8_t *raw = malloc(n);
    if (!raw) return dsc__mon_fail(err, errsz, DSC_ERR_NOMEM, "out of memory encoding %s", path);
    for (int y = 0; y < height; y++) {
        raw[(size_t)y * stride] = 0; /* filter type None */
        memcpy(raw + (size_t)y * stride + 1, rgb + (size_t)y * width * 3, (size_t)width * 3);
    }
    out_t z = {0};
    zlib_compress(&z, raw, n, stride);
    free(raw);
    if (z.oom) {
        free(z.p);
        return dsc__mon_fail(err, errsz, DSC_ERR_NOMEM, "out of memory encoding %s", path);
    }
    uint8_t ihdr[13] = {(uint8_t)(width >> 24), (uint8_t)(width >> 16), (uint8_t)(width >> 8), (uint8_t)width,
                        (uint8_t)(height >> 24), (uint8_t)(height >> 16), (uint8_t)(height >> 8), (uint8_t)height,
                        8, 2, 0, 0, 0}; /* 8-bit, RGB, deflate, filter method 0, no interlace */
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
    /* Encoded in memory, then written atomically (dsc/ckpt.h): a failure keeps an older plot. */
    char *png = NULL;
    size_t png_len = 0;
    FILE *f = open_memstream(&png, &png_len);
    dsc_status_t rc = DSC_OK;
    if (!f) {
        rc = dsc__mon_fail(err, errsz, DSC_ERR_NOMEM, "out of memory encoding %s", path);
    } else {
        bool ok = fwrite(sig, 1, 8, f) == 8 && write_chunk(f, "IHDR", ihdr, 13) && write_chunk(f, "IDAT", z.p, z.n) &&
                  write_chunk(f, "IEND", NULL, 0);
        if (!ok | (fclose(f) != 0)) rc = dsc__mon_fail(err, errsz, DSC_ERR_NOMEM, "out of memory encoding %s", path);
        else rc = dsc_write_file_atomic(path, png, png_len, err, errsz);
    }
    free(png);
    free(z.p);
    return rc;
}

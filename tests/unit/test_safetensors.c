/* safetensors writer and reader: round trips of every dsc dtype with odd shapes and chunked
 * writes, range reads with dtype conversion, the byte-exact golden file (header bytes
 * computed by hand below), and every corruption (each header byte mutated, every
 * truncation, bad header lengths, overlapping / gapped / out-of-bounds offsets, bad JSON):
 * each must give an error naming the file, never a crash. */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "dsc/ckpt.h"

#define GOLDEN "tests/golden/ckpt/small.safetensors"

static char tmpdir[256];
static char errbuf[1024];

static char *tpath(const char *name) {
    static char buf[8][512];
    static int k;
    char *b = buf[k++ % 8];
    snprintf(b, 512, "%s/%s", tmpdir, name);
    return b;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}
static float rndf(void) { return (float)((double)(rnd() >> 11) / 9007199254740992.0 * 8.0 - 4.0); }

static bool write_bytes(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return false;
    bool ok = fwrite(p, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

/* ---- the golden file ---- */

/* Hand-counted: {"__metadata__":{"format":"pt"},  = 32 bytes
 *   "a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},        = 53
 *   "b":{"dtype":"BF16","shape":[1,3],"data_offsets":[8,14]},    = 57
 *   "c":{"dtype":"I32","shape":[],"data_offsets":[14,18]},       = 54
 *   "d":{"dtype":"F16","shape":[2],"data_offsets":[18,22]}}      = 55
 * total 251, padded with 5 spaces to 256 = 0x100; data 22 bytes; file 8 + 256 + 22 = 286. */
static const char golden_header[] = "{\"__metadata__\":{\"format\":\"pt\"},"
                                    "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                                    "\"b\":{\"dtype\":\"BF16\",\"shape\":[1,3],\"data_offsets\":[8,14]},"
                                    "\"c\":{\"dtype\":\"I32\",\"shape\":[],\"data_offsets\":[14,18]},"
                                    "\"d\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[18,22]}}";
static const unsigned char golden_len_bytes[8] = {0x00, 0x01, 0, 0, 0, 0, 0, 0};
static const unsigned char golden_data[22] = {
    0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0xc0, /* a: 1.0f, -2.0f */
    0x80, 0x3f, 0x00, 0x3f, 0x40, 0xc0, /* b: bf16 1.0, 0.5, -3.0 */
    0x07, 0x00, 0x00, 0x00, /* c: 7 */
    0x00, 0x3c, 0x00, 0xb8, /* d: f16 1.0, -0.5 */
};

static dsc_status_t write_small(const char *path) {
    dsc_st_writer_t *w;
    dsc_status_t st = dsc_st_writer_open(path, DSC_ST_NO_FSYNC, &w, errbuf, sizeof errbuf);
    if (st) return st;
    int64_t s2[1] = {2}, s13[2] = {1, 3};
    float a[2] = {1.0f, -2.0f}, b[3] = {1.0f, 0.5f, -3.0f}, d[2] = {1.0f, -0.5f};
    int32_t c = 7;
    if ((st = dsc_st_writer_set_metadata(w, "format", "pt", errbuf, sizeof errbuf)) ||
        (st = dsc_st_writer_declare(w, "a", DSC_F32, 1, s2, errbuf, sizeof errbuf)) ||
        (st = dsc_st_writer_declare(w, "b", DSC_BF16, 2, s13, errbuf, sizeof errbuf)) ||
        (st = dsc_st_writer_declare(w, "c", DSC_I32, 0, NULL, errbuf, sizeof errbuf)) ||
        (st = dsc_st_writer_declare(w, "d", DSC_F16, 1, s2, errbuf, sizeof errbuf)) ||
        (st = dsc_st_write(w, a, DSC_F32, 2, errbuf, sizeof errbuf)) ||
        (st = dsc_st_write(w, b, DSC_F32, 1, errbuf, sizeof errbuf)) || /* b in two calls, converted */
        (st = dsc_st_write(w, b + 1, DSC_F32, 2, errbuf, sizeof errbuf)) ||
        (st = dsc_st_write(w, &c, DSC_I32, 1, errbuf, sizeof errbuf)) ||
        (st = dsc_st_write(w, d, DSC_F32, 2, errbuf, sizeof errbuf))) {
        dsc_st_writer_abort(w);
        return st;
    }
    return dsc_st_writer_close(w, NULL, errbuf, sizeof errbuf);
}

static void test_golden(void) {
    CHECK(strlen(golden_header) == 251);
    const char *p = tpath("small.safetensors");
    CHECK_OK(write_small(p));
    size_t n = 0, gn = 0;
    unsigned char *got = check_read_file(p, &n);
    CHECK(got && n == 286);
    if (!got || n != 286) {
        free(got);
        return;
    }
    CHECK(memcmp(got, golden_len_bytes, 8) == 0);
    CHECK(memcmp(got + 8, golden_header, 251) == 0);
    CHECK(memcmp(got + 8 + 251, "     ", 5) == 0);
    CHECK(memcmp(got + 264, golden_data, 22) == 0);
    /* DSC_UPDATE_GOLDEN=1 rewrites the golden file, only when the hand-derived bytes match. */
    if (getenv("DSC_UPDATE_GOLDEN") && check_failures == 0) write_bytes(GOLDEN, got, n);
    unsigned char *golden = check_read_file(GOLDEN, &gn);
    CHECK_MSG(golden && gn == n && memcmp(golden, got, n) == 0, "%s differs from the writer's output", GOLDEN);
    free(golden);
    free(got);

    /* Read the golden file back. */
    dsc_st_reader_t *r;
    CHECK_OK(dsc_st_reader_open(GOLDEN, &r, errbuf, sizeof errbuf));
    if (!r) return;
    CHECK(dsc_st_reader_count(r) == 4);
    CHECK(strcmp(dsc_st_reader_metadata(r, "format"), "pt") == 0);
    CHECK(dsc_st_reader_metadata(r, "nope") == NULL);
    dsc_st_tensor_info_t info;
    CHECK_OK(dsc_st_reader_info(r, dsc_st_reader_find(r, "b"), &info));
    CHECK(info.dtype == DSC_BF16 && strcmp(info.dtype_name, "BF16") == 0 && info.ndim == 2 && info.shape[0] == 1 &&
          info.shape[1] == 3 && info.numel == 3 && info.file_offset == 264 + 8 && info.nbytes == 6);
    float f[3];
    CHECK_OK(dsc_st_read(r, dsc_st_reader_find(r, "b"), 0, 3, f, DSC_F32, errbuf, sizeof errbuf));
    CHECK(f[0] == 1.0f && f[1] == 0.5f && f[2] == -3.0f);
    CHECK_OK(dsc_st_read(r, dsc_st_reader_find(r, "d"), 1, 1, f, DSC_F32, errbuf, sizeof errbuf));
    CHECK(f[0] == -0.5f);
    CHECK_OK(dsc_st_reader_info(r, dsc_st_reader_find(r, "c"), &info));
    CHECK(info.ndim == 0 && info.numel == 1);
    double dv;
    CHECK_OK(dsc_st_read(r, dsc_st_reader_find(r, "c"), 0, 1, &dv, DSC_F64, errbuf, sizeof errbuf));
    CHECK(dv == 7.0);
    CHECK(dsc_st_read(r, dsc_st_reader_find(r, "a"), 1, 2, f, DSC_F32, errbuf, sizeof errbuf) == DSC_ERR_INVALID);
    CHECK(strstr(errbuf, "'a'") != NULL);
    dsc_st_reader_close(r);
}

/* ---- round trips ---- */

typedef struct spec {
    const char *name;
    dsc_dtype_t dtype;
    int ndim;
    int64_t shape[4];
} spec_t;

static void test_round_trip(void) {
    const spec_t specs[] = {
        {"layer.0.weight", DSC_F32, 3, {3, 5, 7}},
        {"emb/bf16", DSC_BF16, 2, {7, 3}},
        {"h\"quoted\"\\half", DSC_F16, 3, {1, 1, 13}},
        {"ids", DSC_I32, 1, {5}},
        {"double", DSC_F64, 2, {2, 3}},
        {"scalar", DSC_F32, 0, {0}},
        {"empty", DSC_F32, 2, {0, 4}},
        {"big", DSC_F32, 1, {300001}}, /* larger than the writer buffer and the read scratch */
        {"big_bf16", DSC_BF16, 2, {517, 1031}},
    };
    const int ns = (int)(sizeof specs / sizeof specs[0]);
    float *src[16];
    int64_t numel[16];
    const char *p = tpath("rt.safetensors");
    dsc_st_writer_t *w;
    CHECK_OK(dsc_st_writer_open(p, 0, &w, errbuf, sizeof errbuf));
    if (!w) return;
    CHECK_OK(dsc_st_writer_set_metadata(w, "k", "v\n\"x\"", errbuf, sizeof errbuf));
    for (int i = 0; i < ns; i++) {
        CHECK_OK(dsc_st_writer_declare(w, specs[i].name, specs[i].dtype, specs[i].ndim, specs[i].shape, errbuf,
                                       sizeof errbuf));
        numel[i] = 1;
        for (int k = 0; k < specs[i].ndim; k++) numel[i] *= specs[i].shape[k];
        src[i] = malloc((size_t)(numel[i] + 1) * sizeof(float));
        for (int64_t k = 0; k < numel[i]; k++)
            src[i][k] = specs[i].dtype == DSC_I32 ? (float)((int)(rnd() % 2001) - 1000) : rndf();
    }
    CHECK(strcmp(dsc_st_writer_current(w, NULL), "layer.0.weight") == 0);
    for (int i = 0; i < ns; i++) {
        /* Random chunking; half of the tensors written from f32 (converted), the others from
         * their own dtype. */
        bool convert = (i % 2) == 0;
        size_t esz = dsc_dtype_size(specs[i].dtype);
        unsigned char *native = malloc((size_t)numel[i] * esz + 1);
        dsc_convert(native, specs[i].dtype, src[i], DSC_F32, (size_t)numel[i]);
        int64_t done = 0;
        while (done < numel[i]) {
            int64_t m = 1 + (int64_t)(rnd() % (uint64_t)(numel[i] - done < 70000 ? numel[i] - done : 70000));
            if (convert)
                CHECK_OK(dsc_st_write(w, src[i] + done, DSC_F32, (size_t)m, errbuf, sizeof errbuf));
            else
                CHECK_OK(
                    dsc_st_write(w, native + (size_t)done * esz, specs[i].dtype, (size_t)m, errbuf, sizeof errbuf));
            done += m;
        }
        free(native);
    }
    CHECK(dsc_st_writer_current(w, NULL) == NULL);
    dsc_st_file_info_t info;
    CHECK_OK(dsc_st_writer_close(w, &info, errbuf, sizeof errbuf));
    dsc_st_file_info_t again;
    CHECK_OK(dsc_ckpt_checksum_file(p, &again, errbuf, sizeof errbuf));
    CHECK(again.size == info.size && again.xxh3 == info.xxh3);

    dsc_st_reader_t *r;
    CHECK_OK(dsc_st_reader_open(p, &r, errbuf, sizeof errbuf));
    if (!r) return;
    CHECK(dsc_st_reader_count(r) == ns);
    CHECK(strcmp(dsc_st_reader_metadata(r, "k"), "v\n\"x\"") == 0);
    for (int i = 0; i < ns; i++) {
        int idx = dsc_st_reader_find(r, specs[i].name);
        CHECK_MSG(idx == i, "tensor %s at %d", specs[i].name, idx);
        dsc_st_tensor_info_t ti;
        CHECK_OK(dsc_st_reader_info(r, idx, &ti));
        CHECK(ti.dtype == specs[i].dtype && ti.ndim == specs[i].ndim && ti.numel == numel[i]);
        for (int k = 0; k < ti.ndim; k++) CHECK(ti.shape[k] == specs[i].shape[k]);
        /* Expected values: src rounded to the stored dtype. */
        size_t esz = dsc_dtype_size(specs[i].dtype);
        unsigned char *want_native = malloc((size_t)numel[i] * esz + 1);
        float *want = malloc((size_t)(numel[i] + 1) * sizeof(float));
        dsc_convert(want_native, specs[i].dtype, src[i], DSC_F32, (size_t)numel[i]);
        dsc_convert(want, DSC_F32, want_native, specs[i].dtype, (size_t)numel[i]);
        /* Full read in the stored dtype: byte-exact. */
        unsigned char *got_native = malloc((size_t)numel[i] * esz + 1);
        CHECK_OK(dsc_st_read(r, idx, 0, numel[i], got_native, specs[i].dtype, errbuf, sizeof errbuf));
        CHECK_MSG(memcmp(got_native, want_native, (size_t)numel[i] * esz) == 0, "tensor %s bytes", specs[i].name);
        /* Random ranges converted to f32 and f64. */
        float *got = malloc((size_t)(numel[i] + 1) * sizeof(float));
        double *gd = malloc((size_t)(numel[i] + 1) * sizeof(double));
        for (int trial = 0; trial < 20 && numel[i] > 0; trial++) {
            int64_t b = (int64_t)(rnd() % (uint64_t)numel[i]);
            int64_t n = (int64_t)(rnd() % (uint64_t)(numel[i] - b + 1));
            CHECK_OK(dsc_st_read(r, idx, b, n, got, DSC_F32, errbuf, sizeof errbuf));
            CHECK_OK(dsc_st_read(r, idx, b, n, gd, DSC_F64, errbuf, sizeof errbuf));
            bool same = true;
            for (int64_t k = 0; k < n; k++) same = same && got[k] == want[b + k] && gd[k] == (double)want[b + k];
            CHECK_MSG(same, "tensor %s range [%lld, +%lld)", specs[i].name, (long long)b, (long long)n);
        }
        /* Out-of-range reads are errors naming the tensor. */
        CHECK(dsc_st_read(r, idx, numel[i], 1, got, DSC_F32, errbuf, sizeof errbuf) == DSC_ERR_INVALID);
        CHECK(strstr(errbuf, specs[i].name) != NULL && strstr(errbuf, p) != NULL);
        free(got);
        free(gd);
        free(got_native);
        free(want_native);
        free(want);
        free(src[i]);
    }
    /* f32 -> bf16 on read rounds to nearest even. */
    int idx = dsc_st_reader_find(r, "layer.0.weight");
    float v;
    uint16_t h;
    CHECK_OK(dsc_st_read(r, idx, 17, 1, &v, DSC_F32, errbuf, sizeof errbuf));
    CHECK_OK(dsc_st_read(r, idx, 17, 1, &h, DSC_BF16, errbuf, sizeof errbuf));
    CHECK(h == dsc_f32_to_bf16(v));
    dsc_st_reader_close(r);
}

static void test_ranges_and_misuse(void) {
    const char *p = tpath("range.safetensors");
    dsc_st_writer_t *w;
    CHECK_OK(dsc_st_writer_open(p, DSC_ST_NO_FSYNC, &w, errbuf, sizeof errbuf));
    if (!w) return;
    CHECK_OK(dsc_st_writer_declare_range(w, "h.0.w", DSC_F32, 10, 14, errbuf, sizeof errbuf));
    CHECK(dsc_st_writer_declare_range(w, "h.0.w", DSC_F32, 10, 14, errbuf, sizeof errbuf) == DSC_ERR_INVALID);
    CHECK(strstr(errbuf, "declared twice") != NULL);
    CHECK(dsc_st_writer_declare_range(w, "x", DSC_F32, 5, 5, errbuf, sizeof errbuf) == DSC_ERR_INVALID);
    CHECK(dsc_st_writer_declare(w, "__metadata__", DSC_F32, 0, NULL, errbuf, sizeof errbuf) == DSC_ERR_INVALID);
    CHECK(dsc_st_writer_declare(w, "", DSC_F32, 0, NULL, errbuf, sizeof errbuf) == DSC_ERR_INVALID);
    CHECK(dsc_st_writer_declare(w, "bad\xff", DSC_F32, 0, NULL, errbuf, sizeof errbuf) == DSC_ERR_INVALID);
    int64_t neg[1] = {-1};
    CHECK(dsc_st_writer_declare(w, "neg", DSC_F32, 1, neg, errbuf, sizeof errbuf) == DSC_ERR_INVALID);
    int64_t huge[2] = {INT64_MAX / 2, 4};
    CHECK(dsc_st_writer_declare(w, "huge", DSC_F32, 2, huge, errbuf, sizeof errbuf) == DSC_ERR_INVALID);
    CHECK(dsc_st_writer_declare(w, "nodtype", DSC_DTYPE_COUNT, 0, NULL, errbuf, sizeof errbuf) == DSC_ERR_INVALID);
    CHECK_OK(dsc_st_writer_declare_range(w, "h.0.w", DSC_F32, 14, 20, errbuf, sizeof errbuf));
    float a[6] = {1, 2, 3, 4, 5, 6};
    CHECK_OK(dsc_st_write(w, a, DSC_F32, 4, errbuf, sizeof errbuf));
    CHECK(dsc_st_writer_declare(w, "late", DSC_F32, 0, NULL, errbuf, sizeof errbuf) == DSC_ERR_MISUSE);
    CHECK(dsc_st_writer_set_metadata(w, "late", "x", errbuf, sizeof errbuf) == DSC_ERR_MISUSE);
    int64_t done;
    CHECK(strcmp(dsc_st_writer_current(w, &done), "h.0.w@14:20") == 0 && done == 0);
    CHECK_OK(dsc_st_write(w, a, DSC_F32, 6, errbuf, sizeof errbuf));
    CHECK_OK(dsc_st_writer_close(w, NULL, errbuf, sizeof errbuf));
    dsc_st_reader_t *r;
    CHECK_OK(dsc_st_reader_open(p, &r, errbuf, sizeof errbuf));
    if (r) {
        CHECK(dsc_st_reader_find(r, "h.0.w@10:14") == 0 && dsc_st_reader_find(r, "h.0.w@14:20") == 1);
        dsc_st_reader_close(r);
    }
    char key[64];
    CHECK_OK(dsc_ckpt_range_key("abc", 0, 12, key, sizeof key));
    CHECK(strcmp(key, "abc@0:12") == 0);
    CHECK(dsc_ckpt_range_key("abc", 0, 12, key, 5) == DSC_ERR_INVALID);

    /* Writing too much: error naming the tensor; the failed writer removes its file at close. */
    const char *q = tpath("toomuch.safetensors");
    CHECK_OK(dsc_st_writer_open(q, DSC_ST_NO_FSYNC, &w, errbuf, sizeof errbuf));
    int64_t s3[1] = {3};
    CHECK_OK(dsc_st_writer_declare(w, "t3", DSC_F32, 1, s3, errbuf, sizeof errbuf));
    CHECK(dsc_st_write(w, a, DSC_F32, 4, errbuf, sizeof errbuf) == DSC_ERR_INVALID);
    CHECK(strstr(errbuf, "'t3'") != NULL && strstr(errbuf, q) != NULL);
    CHECK(dsc_st_write(w, a, DSC_F32, 1, errbuf, sizeof errbuf) == DSC_ERR_INVALID); /* sticky */
    CHECK(dsc_st_writer_close(w, NULL, errbuf, sizeof errbuf) == DSC_ERR_INVALID);
    CHECK(access(q, F_OK) != 0);
    /* Closing with a tensor incomplete: error naming it, file removed. */
    CHECK_OK(dsc_st_writer_open(q, DSC_ST_NO_FSYNC, &w, errbuf, sizeof errbuf));
    CHECK_OK(dsc_st_writer_declare(w, "t3", DSC_F32, 1, s3, errbuf, sizeof errbuf));
    CHECK_OK(dsc_st_write(w, a, DSC_F32, 2, errbuf, sizeof errbuf));
    CHECK(dsc_st_writer_close(w, NULL, errbuf, sizeof errbuf) == DSC_ERR_MISUSE);
    CHECK(strstr(errbuf, "'t3' incomplete (2 of 3") != NULL);
    CHECK(access(q, F_OK) != 0);
    /* Writing after every tensor is complete. */
    CHECK_OK(dsc_st_writer_open(q, DSC_ST_NO_FSYNC, &w, errbuf, sizeof errbuf));
    CHECK_OK(dsc_st_writer_declare(w, "t3", DSC_F32, 1, s3, errbuf, sizeof errbuf));
    CHECK_OK(dsc_st_write(w, a, DSC_F32, 3, errbuf, sizeof errbuf));
    CHECK(dsc_st_write(w, a, DSC_F32, 1, errbuf, sizeof errbuf) == DSC_ERR_MISUSE);
    dsc_st_writer_abort(w);
    CHECK(access(q, F_OK) != 0);
    /* An empty file (no tensors) is valid: 8 + "{}" padded to 8. */
    CHECK_OK(dsc_st_writer_open(q, DSC_ST_NO_FSYNC, &w, errbuf, sizeof errbuf));
    dsc_st_file_info_t info;
    CHECK_OK(dsc_st_writer_close(w, &info, errbuf, sizeof errbuf));
    CHECK(info.size == 16);
    CHECK_OK(dsc_st_reader_open(q, &r, errbuf, sizeof errbuf));
    if (r) {
        CHECK(dsc_st_reader_count(r) == 0);
        dsc_st_reader_close(r);
    }
    /* Non-dsc dtypes: listed, raw-readable, not convertible. */
    const char *hdr = "{\"u\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[0,3]},"
                      "\"l\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[3,11]}}";
    unsigned char buf[256];
    size_t hl = strlen(hdr);
    memset(buf, 0, sizeof buf);
    buf[0] = (unsigned char)hl;
    memcpy(buf + 8, hdr, hl);
    memcpy(buf + 8 + hl, "\x01\x02\x03\x05\0\0\0\0\0\0\0", 11);
    CHECK(write_bytes(q, buf, 8 + hl + 11));
    CHECK_OK(dsc_st_reader_open(q, &r, errbuf, sizeof errbuf));
    if (r) {
        dsc_st_tensor_info_t ti;
        CHECK_OK(dsc_st_reader_info(r, 1, &ti));
        CHECK(ti.dtype == DSC_DTYPE_COUNT && strcmp(ti.dtype_name, "I64") == 0 && ti.elem_size == 8);
        unsigned char u[3];
        CHECK_OK(dsc_st_read_raw(r, 0, 0, 3, u, errbuf, sizeof errbuf));
        CHECK(u[0] == 1 && u[2] == 3);
        float f;
        CHECK(dsc_st_read(r, 0, 0, 1, &f, DSC_F32, errbuf, sizeof errbuf) == DSC_ERR_UNSUPPORTED);
        CHECK(strstr(errbuf, "'u'") != NULL);
        dsc_st_reader_close(r);
    }
}

/* ---- corruption ---- */

/* Opens `bytes` as a file; returns the status. On success reads every tensor fully as f32
 * (must succeed). On failure the message must name the file. */
static dsc_status_t try_open(const unsigned char *bytes, size_t n, const char *what, size_t i) {
    const char *p = tpath("corrupt.safetensors");
    if (!write_bytes(p, bytes, n)) {
        CHECK(!"cannot write scratch file");
        return DSC_ERR_IO;
    }
    dsc_st_reader_t *r = NULL;
    errbuf[0] = '\0';
    dsc_status_t st = dsc_st_reader_open(p, &r, errbuf, sizeof errbuf);
    if (st != DSC_OK) {
        CHECK_MSG(strstr(errbuf, p) != NULL, "%s %zu: message does not name the file: %s", what, i, errbuf);
        CHECK_MSG(st == DSC_ERR_CORRUPT || st == DSC_ERR_UNSUPPORTED, "%s %zu: status %s", what, i,
                  dsc_status_string(st));
        CHECK(r == NULL);
        return st;
    }
    for (int t = 0; t < dsc_st_reader_count(r); t++) {
        dsc_st_tensor_info_t info;
        dsc_st_reader_info(r, t, &info);
        unsigned char *buf = malloc((size_t)info.nbytes + 8);
        dsc_status_t rs = dsc_st_read_raw(r, t, 0, info.numel, buf, errbuf, sizeof errbuf);
        CHECK_MSG(rs == DSC_OK, "%s %zu: opened but tensor %d unreadable: %s", what, i, t, errbuf);
        free(buf);
    }
    dsc_st_reader_close(r);
    return st;
}

static void test_corruptions(void) {
    size_t n;
    unsigned char *good = check_read_file(GOLDEN, &n);
    CHECK(good && n == 286);
    if (!good || n != 286) {
        free(good);
        return;
    }
    unsigned char *b = malloc(n);
    /* Every header byte (length field and JSON) mutated four ways. */
    const unsigned char flips[] = {0x01, 0x20, 0x80, 0xff};
    int detected = 0, total = 0;
    for (size_t i = 0; i < 8 + 256; i++)
        for (size_t f = 0; f < sizeof flips; f++) {
            memcpy(b, good, n);
            b[i] ^= flips[f];
            total++;
            if (try_open(b, n, "header byte", i) != DSC_OK) detected++;
        }
    /* Some flips give another valid file (a name letter changed, a digit in a shape
     * swapped with consistent offsets is impossible) but most must be caught. */
    CHECK_MSG(detected > total * 8 / 10, "only %d of %d header mutations detected", detected, total);
    /* Every truncation. */
    for (size_t len = 0; len < n; len++)
        CHECK_MSG(try_open(good, len, "truncated at", len) == DSC_ERR_CORRUPT, "truncation at %zu not detected", len);
    /* Trailing bytes. */
    memcpy(b, good, n);
    unsigned char *longer = malloc(n + 3);
    memcpy(longer, good, n);
    memset(longer + n, 0, 3);
    CHECK(try_open(longer, n + 3, "trailing", 3) == DSC_ERR_CORRUPT);
    CHECK(strstr(errbuf, "3 unexpected bytes after the last tensor 'd'") != NULL);
    free(longer);
    /* Wrong header lengths. */
    const uint64_t lens[] = {0, 1, 255, 257, 278, 279, 100000001ull, 0x8000000000000000ull, UINT64_MAX};
    for (size_t k = 0; k < sizeof lens / sizeof lens[0]; k++) {
        memcpy(b, good, n);
        for (int j = 0; j < 8; j++) b[j] = (unsigned char)(lens[k] >> (8 * j));
        CHECK_MSG(try_open(b, n, "header length", (size_t)lens[k]) == DSC_ERR_CORRUPT, "header length %llu accepted",
                  (unsigned long long)lens[k]);
    }
    free(b);
    free(good);
}

/* Builds a file from a header text and `data_len` zero bytes, opens it, expects `want` and
 * a message containing `needle` and the file name. */
static void expect_bad(const char *header, size_t data_len, dsc_status_t want, const char *needle) {
    size_t hl = strlen(header);
    size_t padded = (hl + 7) / 8 * 8;
    unsigned char *buf = calloc(1, 8 + padded + data_len + 1);
    for (int j = 0; j < 8; j++) buf[j] = (unsigned char)((uint64_t)padded >> (8 * j));
    memcpy(buf + 8, header, hl);
    memset(buf + 8 + hl, ' ', padded - hl);
    const char *p = tpath("bad.safetensors");
    write_bytes(p, buf, 8 + padded + data_len);
    free(buf);
    dsc_st_reader_t *r = NULL;
    errbuf[0] = '\0';
    dsc_status_t st = dsc_st_reader_open(p, &r, errbuf, sizeof errbuf);
    CHECK_MSG(st == want, "header %s: got %s (%s)", header, dsc_status_string(st), errbuf);
    if (want != DSC_OK)
        CHECK_MSG(strstr(errbuf, needle) != NULL && strstr(errbuf, p) != NULL, "header %s: message '%s' lacks '%s'",
                  header, errbuf, needle);
    dsc_st_reader_close(r);
}

static void test_bad_headers(void) {
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
               "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
               12, DSC_ERR_CORRUPT, "tensors 'a' [0, 8] and 'b' [4, 12] overlap");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
               "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
               8, DSC_ERR_CORRUPT, "overlap");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, DSC_ERR_CORRUPT,
               "gap of 4 bytes before tensor 'a'");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4, DSC_ERR_CORRUPT,
               "tensor 'a' data_offsets [0, 8] run past the end");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, DSC_ERR_CORRUPT,
               "tensor 'a': data_offsets [0, 8] hold 8 bytes but dtype F32 and shape [3] need 12");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8, DSC_ERR_CORRUPT,
               "end before they begin");
    expect_bad("{\"a\":{\"dtype\":\"Q7\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, DSC_ERR_UNSUPPORTED,
               "tensor 'a': unknown dtype 'Q7'");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,2],\"data_offsets\":[0,8]}}", 8,
               DSC_ERR_UNSUPPORTED, "9 dims");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8, DSC_ERR_CORRUPT,
               "shape[0] is not a non-negative integer");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2.0],\"data_offsets\":[0,8]}}", 8, DSC_ERR_CORRUPT, "shape[0]");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],\"data_offsets\":[0,8]}}", 8,
               DSC_ERR_CORRUPT, "element count overflows");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", 8, DSC_ERR_CORRUPT,
               "data_offsets is not an array of 2 integers");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"extra\":1}}", 8, DSC_ERR_CORRUPT,
               "unknown field 'extra'");
    expect_bad("{\"a\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 8, DSC_ERR_CORRUPT, "missing field 'dtype'");
    expect_bad("{\"a\":[1,2]}", 0, DSC_ERR_CORRUPT, "tensor 'a': entry is an array, not an object");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
               "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}",
               16, DSC_ERR_CORRUPT, "not valid JSON");
    expect_bad("{\"__metadata__\":{\"k\":1}}", 0, DSC_ERR_CORRUPT, "__metadata__ value of 'k' is an integer");
    expect_bad("{\"__metadata__\":[]}", 0, DSC_ERR_CORRUPT, "__metadata__ is an array");
    expect_bad("[1,2]", 0, DSC_ERR_CORRUPT, "does not start with '{'");
    expect_bad("{\"a\":1} x", 0, DSC_ERR_CORRUPT, "not valid JSON");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}", 8, DSC_ERR_CORRUPT, "not valid JSON");
    expect_bad("{}", 4, DSC_ERR_CORRUPT, "4 bytes of data after a header that lists no tensor");
    /* Empty tensors may sit anywhere on a boundary. */
    const char *ok = "{\"e\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,8]},"
                     "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
    expect_bad(ok, 8, DSC_OK, "");
    /* Bad inputs to open. */
    dsc_st_reader_t *r;
    CHECK(dsc_st_reader_open(tpath("does-not-exist"), &r, errbuf, sizeof errbuf) == DSC_ERR_IO);
    CHECK(strstr(errbuf, "does-not-exist") != NULL);
    CHECK(dsc_st_reader_open(tmpdir, &r, errbuf, sizeof errbuf) == DSC_ERR_IO);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "%s/dsc_st_XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_golden();
    test_round_trip();
    test_ranges_and_misuse();
    test_corruptions();
    test_bad_headers();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return check_finish("test_safetensors");
}

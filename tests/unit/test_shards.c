/* llm.c token shards: exact tokens across shard boundaries, glob ordering, every
 * malformed file giving an error that names it, vocabulary checks, the descriptor cache,
 * and the loader's windows. Shards are written here, in a mkdtemp directory. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "dsc/shards.h"

static char dir[] = "/tmp/dsc_shards_XXXXXX";
static char created[256][600];
static int n_created;

static const char *path_of(const char *name) {
    static char buf[4][600];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

static void remember(const char *path) {
    for (int i = 0; i < n_created; i++)
        if (strcmp(created[i], path) == 0) return;
    if (n_created < 256) snprintf(created[n_created++], sizeof created[0], "%s", path);
}

static void put32(unsigned char *p, int32_t v) {
    uint32_t u = (uint32_t)v;
    for (int k = 0; k < 4; k++) p[k] = (unsigned char)(u >> (8 * k));
}

/* Writes a header (magic, version, count) and n_tok little-endian tokens, then `extra`
 * stray bytes; count need not equal n_tok. Returns the path. */
static const char *write_raw(const char *name, int32_t magic, int32_t version, int32_t count, const uint16_t *tok,
                             int n_tok, int extra) {
    const char *path = path_of(name);
    unsigned char hdr[DSC_SHARD_HEADER_BYTES] = {0};
    put32(hdr, magic);
    put32(hdr + 4, version);
    put32(hdr + 8, count);
    FILE *f = fopen(path, "wb");
    CHECK_MSG(f != NULL, "cannot create %s", path);
    if (!f) return path;
    fwrite(hdr, 1, sizeof hdr, f);
    for (int i = 0; i < n_tok; i++) {
        unsigned char b[2] = {(unsigned char)(tok[i] & 0xff), (unsigned char)(tok[i] >> 8)};
        fwrite(b, 1, 2, f);
    }
    for (int i = 0; i < extra; i++) fputc(0x5a, f);
    fclose(f);
    remember(path);
    return path;
}

static const char *write_shard(const char *name, const uint16_t *tok, int n) {
    return write_raw(name, DSC_SHARD_MAGIC, DSC_SHARD_VERSION, n, tok, n, 0);
}

/* Opens `pattern` (relative to dir) expecting `status` and a message containing both
 * `file` (relative to dir; NULL: the pattern) and `what`. */
static void expect_open_error(const char *pattern, dsc_status_t status, const char *file, const char *what) {
    char err[512] = "";
    dsc_shards_t *sh = (dsc_shards_t *)err;
    const char *p = path_of(pattern);
    char full[600];
    snprintf(full, sizeof full, "%s", file ? path_of(file) : p);
    dsc_status_t rc = dsc_shards_open(p, &sh, err, sizeof err);
    CHECK_MSG(rc == status, "%s: got %s, want %s (%s)", pattern, dsc_status_string(rc), dsc_status_string(status),
              err);
    CHECK_MSG(sh == NULL, "%s: *out not NULL after failure", pattern);
    CHECK_MSG(strstr(err, full) != NULL && strstr(err, what) != NULL, "%s: message '%s' lacks '%s' or '%s'",
              pattern, err, full, what);
}

/* Three shards of 5, 3 and 7 tokens (written out of order) read back as one stream. */
static void test_stream(void) {
    const uint16_t a[5] = {50256, 1, 0x1234, 65535, 7}, b[3] = {256, 255, 0}, c[7] = {9, 8, 7, 6, 5, 4, 50256};
    write_shard("train_002.bin", c, 7);
    write_shard("train_000.bin", a, 5);
    write_shard("train_001.bin", b, 3);
    write_shard("val_000.bin", b, 3);
    int32_t want[15];
    for (int i = 0; i < 5; i++) want[i] = a[i];
    for (int i = 0; i < 3; i++) want[5 + i] = b[i];
    for (int i = 0; i < 7; i++) want[8 + i] = c[i];
    dsc_shards_t *sh = NULL;
    char err[512];
    CHECK_OK(dsc_shards_open(path_of("train_*.bin"), &sh, err, sizeof err));
    if (!sh) return;
    CHECK(dsc_shards_count(sh) == 3 && dsc_shards_tokens(sh) == 15);
    CHECK(strcmp(dsc_shards_name(sh, 0), path_of("train_000.bin")) == 0);
    CHECK(strcmp(dsc_shards_name(sh, 1), path_of("train_001.bin")) == 0);
    CHECK(strcmp(dsc_shards_name(sh, 2), path_of("train_002.bin")) == 0);
    CHECK(dsc_shards_shard_tokens(sh, 0) == 5 && dsc_shards_shard_tokens(sh, 1) == 3 &&
          dsc_shards_shard_tokens(sh, 2) == 7);
    CHECK(dsc_shards_name(sh, 3) == NULL && dsc_shards_shard_tokens(sh, -1) == 0);
    int32_t got[15];
    CHECK_OK(dsc_shards_read(sh, 0, 15, got, err, sizeof err));
    CHECK(memcmp(got, want, sizeof want) == 0);
    /* Every sub-range, including those spanning one or two boundaries. */
    bool all = true;
    for (int s = 0; s <= 15; s++)
        for (int n = 0; s + n <= 15; n++) {
            memset(got, 0xff, sizeof got);
            all = all && dsc_shards_read(sh, s, n, got, err, sizeof err) == DSC_OK &&
                  memcmp(got, want + s, (size_t)n * sizeof *got) == 0;
        }
    CHECK(all);
    CHECK(dsc_shards_read(sh, 14, 2, got, err, sizeof err) == DSC_ERR_INVALID && strstr(err, "outside"));
    CHECK(dsc_shards_read(sh, -1, 1, got, err, sizeof err) == DSC_ERR_INVALID);
    CHECK(dsc_shards_read(sh, 0, 1, NULL, err, sizeof err) == DSC_ERR_INVALID);
    /* Vocabulary: the largest token is 65535 (train_000.bin, position 3). */
    int32_t max = -1;
    CHECK_OK(dsc_shards_check_vocab(sh, 65536, &max, err, sizeof err));
    CHECK(max == 65535);
    CHECK(dsc_shards_check_vocab(sh, 50257, &max, err, sizeof err) == DSC_ERR_INVALID);
    CHECK_MSG(strstr(err, path_of("train_000.bin")) && strstr(err, "token 65535 at position 3") &&
              strstr(err, "vocab_size 50257"), "%s", err);
    CHECK(dsc_shards_check_vocab(sh, 0, &max, err, sizeof err) == DSC_ERR_INVALID);
    dsc_shards_free(sh);

    /* A plain path is a pattern that matches itself. */
    CHECK_OK(dsc_shards_open(path_of("train_001.bin"), &sh, err, sizeof err));
    CHECK(dsc_shards_count(sh) == 1 && dsc_shards_tokens(sh) == 3);
    dsc_shards_free(sh);
    CHECK_OK(dsc_shards_open(path_of("*_001.bin"), &sh, err, sizeof err));
    CHECK(dsc_shards_count(sh) == 1);
    dsc_shards_free(sh);
}

/* Ordering is byte order of the paths (strcmp), not numeric: 10 < 9. */
static void test_glob_order(void) {
    const uint16_t t[2] = {1, 2};
    const char *names[] = {"ord_9.bin", "ord_10.bin", "ord_B.bin", "ord_a.bin", "ord_1.bin"};
    const char *sorted[] = {"ord_1.bin", "ord_10.bin", "ord_9.bin", "ord_B.bin", "ord_a.bin"};
    for (int i = 0; i < 5; i++) write_shard(names[i], t, 2);
    dsc_shards_t *sh = NULL;
    char err[512];
    CHECK_OK(dsc_shards_open(path_of("ord_*.bin"), &sh, err, sizeof err));
    CHECK(dsc_shards_count(sh) == 5 && dsc_shards_tokens(sh) == 10);
    for (int i = 0; i < 5 && sh; i++)
        CHECK_MSG(strcmp(dsc_shards_name(sh, i), path_of(sorted[i])) == 0, "position %d: %s", i,
                  dsc_shards_name(sh, i));
    dsc_shards_free(sh);
}

static void test_malformed(void) {
    uint16_t tok[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    write_raw("bad_magic.bin", 20240519, 1, 8, tok, 8, 0);
    expect_open_error("bad_magic.bin", DSC_ERR_CORRUPT, "bad_magic.bin", "bad magic 20240519 (expected 20240520)");
    write_raw("llama3.bin", 20240801, 7, 8, tok, 8, 0);
    expect_open_error("llama3.bin", DSC_ERR_UNSUPPORTED, "llama3.bin", "LLaMA-3");
    write_raw("bad_version.bin", DSC_SHARD_MAGIC, 2, 8, tok, 8, 0);
    expect_open_error("bad_version.bin", DSC_ERR_CORRUPT, "bad_version.bin", "version 2 (expected 1)");
    write_raw("truncated.bin", DSC_SHARD_MAGIC, 1, 10, tok, 8, 0);
    expect_open_error("truncated.bin", DSC_ERR_CORRUPT, "truncated.bin",
                      "truncated: the header declares 10 tokens (20 bytes) but only 16 bytes follow");
    write_raw("half_token.bin", DSC_SHARD_MAGIC, 1, 8, tok, 7, 1);
    expect_open_error("half_token.bin", DSC_ERR_CORRUPT, "half_token.bin", "truncated");
    write_raw("trailing.bin", DSC_SHARD_MAGIC, 1, 6, tok, 8, 0);
    expect_open_error("trailing.bin", DSC_ERR_CORRUPT, "trailing.bin", "4 trailing bytes after the 6 tokens");
    write_raw("odd.bin", DSC_SHARD_MAGIC, 1, 8, tok, 8, 1);
    expect_open_error("odd.bin", DSC_ERR_CORRUPT, "odd.bin", "1 trailing bytes");
    write_raw("empty_shard.bin", DSC_SHARD_MAGIC, 1, 0, tok, 0, 0);
    expect_open_error("empty_shard.bin", DSC_ERR_CORRUPT, "empty_shard.bin", "empty shard");
    write_raw("negative.bin", DSC_SHARD_MAGIC, 1, -5, tok, 0, 0);
    expect_open_error("negative.bin", DSC_ERR_CORRUPT, "negative.bin", "negative token count -5");

    /* Shorter than the header, and empty. */
    FILE *f = fopen(path_of("short.bin"), "wb");
    if (f) {
        unsigned char hdr[100] = {0};
        put32(hdr, DSC_SHARD_MAGIC);
        fwrite(hdr, 1, sizeof hdr, f);
        fclose(f);
    }
    remember(path_of("short.bin"));
    expect_open_error("short.bin", DSC_ERR_CORRUPT, "short.bin", "100 bytes, shorter than the 1024-byte");
    f = fopen(path_of("zero.bin"), "wb");
    if (f) fclose(f);
    remember(path_of("zero.bin"));
    expect_open_error("zero.bin", DSC_ERR_CORRUPT, "zero.bin", "empty file (0 bytes)");

    /* Nothing matches. */
    expect_open_error("nothing_*.bin", DSC_ERR_IO, NULL, "no file matches the pattern");
    expect_open_error("missing.bin", DSC_ERR_IO, NULL, "no file matches the pattern");

    /* Unreadable: a dangling symlink, a directory; a file without read permission (when
     * not root, who reads it anyway). */
    const char *link = path_of("dangling.bin");
    CHECK(symlink(path_of("no_such_target"), link) == 0);
    remember(link);
    expect_open_error("dangling.bin", DSC_ERR_IO, "dangling.bin", "cannot open");
    const char *sub = path_of("dir.bin");
    CHECK(mkdir(sub, 0700) == 0);
    expect_open_error("dir.bin", DSC_ERR_IO, "dir.bin", "not a regular file");
    rmdir(sub);
    if (geteuid() != 0) {
        const char *p = write_shard("noperm.bin", tok, 8);
        chmod(p, 0);
        expect_open_error("noperm.bin", DSC_ERR_IO, "noperm.bin", "cannot open");
    }

    /* One bad file among good ones: the message names the bad one. */
    write_shard("mix_0.bin", tok, 8);
    write_raw("mix_1.bin", DSC_SHARD_MAGIC, 1, 9, tok, 8, 0);
    write_shard("mix_2.bin", tok, 8);
    expect_open_error("mix_*.bin", DSC_ERR_CORRUPT, "mix_1.bin", "truncated");

    /* The same checks on memory images. */
    unsigned char img[DSC_SHARD_HEADER_BYTES + 4] = {0};
    put32(img, DSC_SHARD_MAGIC);
    put32(img + 4, 1);
    put32(img + 8, 2);
    img[DSC_SHARD_HEADER_BYTES] = 0x34, img[DSC_SHARD_HEADER_BYTES + 1] = 0x12;
    img[DSC_SHARD_HEADER_BYTES + 2] = 0xff, img[DSC_SHARD_HEADER_BYTES + 3] = 0xff;
    const void *data[2] = {img, img};
    size_t sizes[2] = {sizeof img, sizeof img};
    const char *names[2] = {"first", "second"};
    dsc_shards_t *sh = NULL;
    char err[512];
    CHECK_OK(dsc_shards_open_memory(2, data, sizes, names, &sh, err, sizeof err));
    int32_t got[4];
    CHECK_OK(dsc_shards_read(sh, 0, 4, got, err, sizeof err));
    CHECK(got[0] == 0x1234 && got[1] == 0xffff && got[2] == 0x1234 && got[3] == 0xffff);
    CHECK(dsc_shards_check_vocab(sh, 65535, NULL, err, sizeof err) == DSC_ERR_INVALID);
    CHECK_MSG(strstr(err, "first: token 65535 at position 1"), "%s", err);
    dsc_shards_free(sh);
    sizes[1] = sizeof img - 1;
    CHECK(dsc_shards_open_memory(2, data, sizes, names, &sh, err, sizeof err) == DSC_ERR_CORRUPT);
    CHECK_MSG(strstr(err, "second: truncated") && sh == NULL, "%s", err);
    sizes[1] = 10;
    CHECK(dsc_shards_open_memory(2, data, sizes, NULL, &sh, err, sizeof err) == DSC_ERR_CORRUPT);
    CHECK_MSG(strstr(err, "<memory 1>: file is 10 bytes"), "%s", err);
    CHECK(dsc_shards_open_memory(0, data, sizes, NULL, &sh, err, sizeof err) == DSC_ERR_INVALID);
    CHECK(dsc_shards_open(NULL, &sh, err, sizeof err) == DSC_ERR_INVALID);
    CHECK(dsc_shards_open("", &sh, err, sizeof err) == DSC_ERR_INVALID);
}

/* More shards than DSC_SHARDS_MAX_OPEN: descriptors are closed and reopened; a file that
 * changes size after opening is reported, by name, when it is read. */
static void test_many_shards(void) {
    enum { N = DSC_SHARDS_MAX_OPEN + 6, PER = 3 };
    char name[64];
    for (int k = 0; k < N; k++) {
        uint16_t t[PER] = {(uint16_t)(k * PER), (uint16_t)(k * PER + 1), (uint16_t)(k * PER + 2)};
        snprintf(name, sizeof name, "many_%03d.bin", k);
        write_shard(name, t, PER);
    }
    dsc_shards_t *sh = NULL;
    char err[512];
    CHECK_OK(dsc_shards_open(path_of("many_*.bin"), &sh, err, sizeof err));
    if (!sh) return;
    CHECK(dsc_shards_count(sh) == N && dsc_shards_tokens(sh) == N * PER);
    int32_t got[N * PER];
    bool ok = true;
    for (int pass = 0; pass < 3; pass++) { /* forward, backward, strided */
        for (int k = 0; k < N; k++) {
            int s = pass == 0 ? k : pass == 1 ? N - 1 - k : (k * 37) % N;
            int32_t one[PER + 1];
            int n = s < N - 1 ? PER + 1 : PER;
            ok = ok && dsc_shards_read(sh, (int64_t)s * PER, n, one, err, sizeof err) == DSC_OK;
            for (int i = 0; i < n; i++) ok = ok && one[i] == s * PER + i;
        }
    }
    CHECK(ok);
    CHECK_OK(dsc_shards_read(sh, 0, N * PER, got, err, sizeof err));
    for (int i = 0; i < N * PER; i++) ok = ok && got[i] == i;
    CHECK(ok);
    /* Read many_000 so its descriptor is open, then truncate the file under it. */
    CHECK_OK(dsc_shards_read(sh, 0, 1, got, err, sizeof err));
    CHECK(truncate(path_of("many_000.bin"), DSC_SHARD_HEADER_BYTES + 2) == 0);
    CHECK(dsc_shards_read(sh, 0, PER, got, err, sizeof err) == DSC_ERR_CORRUPT);
    CHECK_MSG(strstr(err, path_of("many_000.bin")) && strstr(err, "file ends at byte 1026"), "%s", err);
    /* many_001 is closed after reading the last 64 shards; truncate it, then read it. */
    CHECK_OK(dsc_shards_read(sh, 6 * PER, (N - 6) * PER, got, err, sizeof err));
    CHECK(truncate(path_of("many_001.bin"), DSC_SHARD_HEADER_BYTES + 2) == 0);
    CHECK(dsc_shards_read(sh, PER, 1, got, err, sizeof err) == DSC_ERR_CORRUPT);
    CHECK_MSG(strstr(err, path_of("many_001.bin")) && strstr(err, "size changed from 1030 to 1026"), "%s", err);
    /* ... and one that disappeared. */
    unlink(path_of("many_002.bin"));
    CHECK(dsc_shards_read(sh, 2 * PER, 1, got, err, sizeof err) == DSC_ERR_IO);
    CHECK_MSG(strstr(err, path_of("many_002.bin")) && strstr(err, "cannot open"), "%s", err);
    dsc_shards_free(sh);
}

/* The loader: windows tokens[i*T .. i*T+T] (spanning shards), epochs in order without
 * shuffle, errors for impossible shapes, and the per-batch vocabulary check. */
static void test_loader(void) {
    /* Stream 0..29 over shards of 11, 7 and 12 tokens: T = 4 gives floor(29/4) = 7 windows. */
    uint16_t t[30];
    for (int i = 0; i < 30; i++) t[i] = (uint16_t)(100 + i);
    write_shard("ld_0.bin", t, 11);
    write_shard("ld_1.bin", t + 11, 7);
    write_shard("ld_2.bin", t + 18, 12);
    char pattern[600];
    snprintf(pattern, sizeof pattern, "%s", path_of("ld_*.bin"));
    char err[512];
    dsc_shard_loader_options_t o = DSC_SHARD_LOADER_OPTIONS_INIT;
    o.shuffle = false;
    dsc_shard_loader_t *l = NULL;
    CHECK_OK(dsc_shard_loader_new_ex(pattern, 2, 4, 0, 1, 0, &o, &l, err, sizeof err));
    if (!l) return;
    CHECK(dsc_shard_loader_windows(l) == 7 && dsc_shard_loader_rank_windows(l) == 7 &&
          dsc_shard_loader_batches_per_epoch(l) == 4);
    CHECK(dsc_shards_count(dsc_shard_loader_shards(l)) == 3);
    int32_t x[8], y[8];
    bool ok = true;
    /* Windows 0..6, then epoch 1 again from 0: batch 3 is windows 6 and 0. */
    const int order[10] = {0, 1, 2, 3, 4, 5, 6, 0, 1, 2};
    for (int s = 0; s < 5; s++) {
        CHECK_OK(dsc_shard_loader_next(l, x, y));
        for (int b = 0; b < 2; b++)
            for (int i = 0; i < 4; i++) {
                int w = order[s * 2 + b];
                ok = ok && x[b * 4 + i] == 100 + w * 4 + i && y[b * 4 + i] == 101 + w * 4 + i;
            }
    }
    CHECK(ok);
    dsc_sampler_state_t st;
    dsc_shard_loader_state_get(l, &st);
    CHECK(st.epoch == 1 && st.index == 3);
    CHECK(dsc_shard_loader_next(l, NULL, y) == DSC_ERR_INVALID && strstr(dsc_shard_loader_errmsg(l), "NULL"));
    dsc_shard_loader_free(l);

    /* Per-batch vocabulary check: token 128 (stream 28, ld_2.bin position 10) is the last
     * token of window 6's y. The failing call leaves the position where it was. */
    o.vocab_size = 128;
    CHECK_OK(dsc_shard_loader_new_ex(pattern, 1, 4, 0, 1, 0, &o, &l, err, sizeof err));
    for (int s = 0; s < 6; s++) CHECK_OK(dsc_shard_loader_next(l, x, y));
    CHECK(dsc_shard_loader_next(l, x, y) == DSC_ERR_INVALID);
    const char *msg = dsc_shard_loader_errmsg(l);
    CHECK_MSG(strstr(msg, path_of("ld_2.bin")) && strstr(msg, "token 128 at position 10") &&
              strstr(msg, "vocab_size 128"), "%s", msg);
    dsc_shard_loader_state_get(l, &st);
    CHECK(st.epoch == 0 && st.index == 6);
    dsc_shard_loader_free(l);
    /* ... and the full scan at creation, which also sees token 129 (stream 29), past the
     * last window. */
    o.vocab_size = 129;
    CHECK_OK(dsc_shard_loader_new_ex(pattern, 1, 4, 0, 1, 0, &o, &l, err, sizeof err));
    dsc_shard_loader_free(l);
    o.check_vocab = true;
    CHECK(dsc_shard_loader_new_ex(pattern, 1, 4, 0, 1, 0, &o, &l, err, sizeof err) == DSC_ERR_INVALID);
    CHECK_MSG(l == NULL && strstr(err, path_of("ld_2.bin")) && strstr(err, "token 129 at position 11"), "%s", err);
    o.vocab_size = 130;
    CHECK_OK(dsc_shard_loader_new_ex(pattern, 1, 4, 0, 1, 0, &o, &l, err, sizeof err));
    dsc_shard_loader_free(l);

    /* Impossible shapes and arguments. */
    CHECK(dsc_shard_loader_new(pattern, 1, 30, 0, 1, 0, &l, err, sizeof err) == DSC_ERR_INVALID);
    CHECK_MSG(strstr(err, "30 tokens; one window of T=30 needs 31"), "%s", err);
    CHECK_OK(dsc_shard_loader_new(pattern, 1, 29, 0, 1, 0, &l, err, sizeof err));
    CHECK(dsc_shard_loader_windows(l) == 1);
    dsc_shard_loader_free(l);
    CHECK(dsc_shard_loader_new(pattern, 0, 4, 0, 1, 0, &l, err, sizeof err) == DSC_ERR_INVALID);
    CHECK(dsc_shard_loader_new(pattern, 1, 4, 2, 2, 0, &l, err, sizeof err) == DSC_ERR_INVALID && strstr(err, "rank 2"));
    CHECK(dsc_shard_loader_new(pattern, 1 << 16, 1 << 16, 0, 1, 0, &l, err, sizeof err) == DSC_ERR_INVALID);
    o = (dsc_shard_loader_options_t)DSC_SHARD_LOADER_OPTIONS_INIT;
    o.drop_last = true;
    CHECK(dsc_shard_loader_new_ex(pattern, 1, 4, 0, 8, 0, &o, &l, err, sizeof err) == DSC_ERR_INVALID);
    CHECK_MSG(strstr(err, "drop_last"), "%s", err);
    CHECK(dsc_shard_loader_new(path_of("none_*.bin"), 1, 4, 0, 1, 0, &l, err, sizeof err) == DSC_ERR_IO);
    CHECK(strstr(err, path_of("none_*.bin")) != NULL);
    CHECK(dsc_shard_loader_new(path_of("mix_*.bin"), 1, 4, 0, 1, 0, &l, err, sizeof err) == DSC_ERR_CORRUPT);
    CHECK(strstr(err, path_of("mix_1.bin")) != NULL);
    /* from_shards frees the set it was given even when it fails. */
    dsc_shards_t *sh = NULL;
    CHECK_OK(dsc_shards_open(pattern, &sh, err, sizeof err));
    CHECK(dsc_shard_loader_from_shards(sh, 1, 4, 5, 2, 0, NULL, &l, err, sizeof err) == DSC_ERR_INVALID);
    dsc_shard_loader_free(NULL);
}

int main(void) {
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_stream();
    test_glob_order();
    test_malformed();
    test_many_shards();
    test_loader();
    for (int i = 0; i < n_created; i++) unlink(created[i]);
    CHECK_MSG(rmdir(dir) == 0, "temp dir %s not empty", dir);
    return check_finish("test_shards");
}

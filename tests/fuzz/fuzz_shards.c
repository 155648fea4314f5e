/* libFuzzer target: llm.c shard images (header checks, reads across shards, vocabulary
 * scan) and the shard loader over them, all in memory (dsc_shards_open_memory).
 *
 * Input: byte 0 chooses the mode and the loader's options, byte 1 a split point and the
 * vocabulary / rank, the rest is the body.
 *   mode 0: the body is one raw shard image     mode 1: two raw images, split at byte 1
 *   mode 2: a valid header + the body's tokens  mode 3: two such shards, split at byte 1
 * Modes 2 and 3 reach the reader and loader without the fuzzer having to find the magic.
 * Besides "no crash, no leak, no UB", the oracle checks that tokens read back equal the
 * little-endian bytes of the image and that y is x shifted by one. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dsc/shards.h"

static void put32(unsigned char *p, uint32_t v) {
    for (int k = 0; k < 4; k++) p[k] = (unsigned char)(v >> (8 * k));
}

/* A valid header followed by the even prefix of [p, p + n). */
static unsigned char *synth(const uint8_t *p, size_t n, size_t *size) {
    size_t tokens = n / 2;
    if (tokens > INT32_MAX) tokens = INT32_MAX;
    unsigned char *img = calloc(1, DSC_SHARD_HEADER_BYTES + 2 * tokens + 1);
    if (!img) return NULL;
    put32(img, DSC_SHARD_MAGIC);
    put32(img + 4, DSC_SHARD_VERSION);
    put32(img + 8, (uint32_t)tokens);
    if (tokens) memcpy(img + DSC_SHARD_HEADER_BYTES, p, 2 * tokens);
    *size = DSC_SHARD_HEADER_BYTES + 2 * tokens;
    return img;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    const uint8_t c = data[0], k = data[1];
    const uint8_t *body = data + 2;
    const size_t len = size - 2;
    const size_t split = len * k / 255;
    const void *img[2] = {body, body + split};
    size_t sizes[2] = {len, len - split};
    unsigned char *own[2] = {NULL, NULL};
    int n = 1;
    switch (c & 3) {
    case 0: break;
    case 1: sizes[0] = split, n = 2; break;
    case 2:
        own[0] = synth(body, len, &sizes[0]);
        img[0] = own[0];
        break;
    default:
        own[0] = synth(body, split, &sizes[0]);
        own[1] = synth(body + split, len - split, &sizes[1]);
        img[0] = own[0], img[1] = own[1];
        n = 2;
        break;
    }
    if ((c & 2) && (!own[0] || (n == 2 && !own[1]))) goto done;

    char err[256];
    dsc_shards_t *sh = NULL;
    if (dsc_shards_open_memory(n, img, sizes, NULL, &sh, err, sizeof err) != DSC_OK) goto done;
    int64_t total = dsc_shards_tokens(sh);
    /* Read everything in odd-sized chunks and compare with the image bytes. */
    int32_t buf[97];
    int shard = 0;
    int64_t in_shard = 0;
    for (int64_t off = 0; off < total; off += 97) {
        int64_t m = total - off < 97 ? total - off : 97;
        if (dsc_shards_read(sh, off, m, buf, err, sizeof err) != DSC_OK) __builtin_trap();
        for (int64_t t = 0; t < m; t++) {
            while (in_shard >= dsc_shards_shard_tokens(sh, shard)) shard++, in_shard = 0;
            const unsigned char *p = (const unsigned char *)img[shard] + DSC_SHARD_HEADER_BYTES + 2 * in_shard;
            if (buf[t] != (int32_t)(p[0] | p[1] << 8)) __builtin_trap();
            in_shard++;
        }
    }
    if (dsc_shards_read(sh, total, 1, buf, err, sizeof err) != DSC_ERR_INVALID) __builtin_trap();
    int vocab = 1 + k * 257;
    int32_t max = -1;
    dsc_status_t vrc = dsc_shards_check_vocab(sh, vocab, &max, err, sizeof err);
    if (vrc == DSC_OK && (max < 0 || max >= vocab)) __builtin_trap();

    dsc_shard_loader_options_t o = DSC_SHARD_LOADER_OPTIONS_INIT;
    o.shuffle = c & 4;
    o.drop_last = c & 8;
    o.vocab_size = (c & 16) ? vocab : 0;
    int B = 1 + ((c >> 5) & 1), T = 1 + (c >> 6) * 5, world = 1 + (k & 3), rank = (k >> 2) % world;
    dsc_shard_loader_t *l = NULL;
    if (dsc_shard_loader_from_shards(sh, B, T, rank, world, k, &o, &l, err, sizeof err) != DSC_OK) goto done;
    int32_t x[2 * 16], y[2 * 16];
    for (int s = 0; s < 5; s++) {
        dsc_status_t rc = dsc_shard_loader_next(l, x, y);
        if (rc != DSC_OK) {
            if (rc != DSC_ERR_INVALID || !o.vocab_size || !dsc_shard_loader_errmsg(l)[0]) __builtin_trap();
            break;
        }
        for (int b = 0; b < B; b++)
            for (int t = 0; t + 1 < T; t++)
                if (y[b * T + t] != x[b * T + t + 1]) __builtin_trap();
    }
    dsc_sampler_state_t st;
    dsc_shard_loader_state_get(l, &st);
    dsc_shard_loader_reset(l);
    if (dsc_shard_loader_state_set(l, &st) != DSC_OK) __builtin_trap();
    dsc_shard_loader_free(l);
done:
    free(own[0]);
    free(own[1]);
    return 0;
}

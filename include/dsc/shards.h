/* dsc/shards.h: llm.c token shards and the training-loop data loader over them.
 *
 * Format (llm.c, GPT-2 tokens; docs/data.md): a .bin file is a header of 256 little-endian
 * int32 (1,024 bytes) followed by uint16 little-endian tokens:
 *     header[0] = 20240520 (magic)   header[1] = 1 (version)   header[2] = token count
 *     header[3..255] unused (llm.c writes zeros; dsc ignores them)
 * The file size must be exactly 1024 + 2 * count, and count must be >= 1.
 *
 * A shard set is the files matching a glob(3) pattern, ordered by strcmp of their paths,
 * seen as one stream of tokens (shard k's tokens follow shard k-1's). Tokens are read on
 * demand with pread(2); nothing is loaded whole. At most DSC_SHARDS_MAX_OPEN files are
 * open at once (least recently used are closed), so thousands of shards are fine.
 *
 * Errors: every call returns a dsc_status_t. Malformed content is DSC_ERR_CORRUPT, with a
 * message that starts with the file's path (or the memory shard's name) and says what is
 * wrong: file shorter than the header, wrong magic, wrong version, zero or negative token
 * count, token count that disagrees with the file size (truncated, or trailing bytes).
 * A pattern that matches nothing, a file that cannot be opened or read, or a match that is
 * not a regular file is DSC_ERR_IO (message names the pattern or file). llm.c's LLaMA-3
 * shards (magic 20240801, uint32 tokens) are DSC_ERR_UNSUPPORTED. No input crashes the
 * reader (tests/fuzz/fuzz_shards.c).
 *
 * Ownership and threads: objects are owned by their creator and freed with their _free
 * (NULL is accepted). A shard set or loader is used from one thread at a time (reads move
 * its file-descriptor cache); separate objects are independent. Nothing is global.
 */
#ifndef DSC_SHARDS_H
#define DSC_SHARDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dsc/sampler.h"
#include "dsc/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define DSC_SHARD_MAGIC 20240520
#define DSC_SHARD_VERSION 1
#define DSC_SHARD_HEADER_INTS 256
#define DSC_SHARD_HEADER_BYTES 1024
#define DSC_SHARDS_MAX_OPEN 64

/* ---- shard sets ---------------------------------------------------------------------- */

typedef struct dsc_shards dsc_shards_t;

/* Opens every file matching `pattern` (glob(3); a plain path matches itself) and checks
 * each header and size. On success *out is the caller's (dsc_shards_free). On failure
 * *out is NULL and err names the pattern (nothing matched) or the offending file. */
dsc_status_t dsc_shards_open(const char *pattern, dsc_shards_t **out, char *err, size_t errsz);

/* The same over n in-memory shard images (header + tokens, exactly as in a file). The
 * buffers are borrowed, not copied: they must stay valid and unchanged until
 * dsc_shards_free. names[k] is used in messages (names NULL, or names[k] NULL: "<memory k>").
 * Same checks and status codes as for files. Meant for tests and fuzzing. */
dsc_status_t dsc_shards_open_memory(int n, const void *const *data, const size_t *sizes, const char *const *names,
                                    dsc_shards_t **out, char *err, size_t errsz);

void dsc_shards_free(dsc_shards_t *sh);

/* Number of shards; the path (or memory name) and token count of shard i (NULL / 0 when i
 * is out of range); the total token count of the set. */
int dsc_shards_count(const dsc_shards_t *sh);
const char *dsc_shards_name(const dsc_shards_t *sh, int i);
int64_t dsc_shards_shard_tokens(const dsc_shards_t *sh, int i);
int64_t dsc_shards_tokens(const dsc_shards_t *sh);

/* Reads tokens [start, start + count) of the concatenated stream into out (count int32
 * values), crossing shard boundaries as needed. DSC_ERR_INVALID when the range is not
 * inside 0..dsc_shards_tokens() or out is NULL with count > 0; DSC_ERR_IO / DSC_ERR_CORRUPT
 * (message names the file) when a file cannot be reopened or read, or changed size since
 * it was opened. */
dsc_status_t dsc_shards_read(dsc_shards_t *sh, int64_t start, int64_t count, int32_t *out, char *err,
                             size_t errsz);

/* Scans every token and checks it is < vocab_size (the model's vocabulary, >= 1). On
 * DSC_OK, *max_token (may be NULL) is the largest token in the set. A token that is too
 * large gives DSC_ERR_INVALID with a message naming the file, the token's position in that
 * file (0-based token index) and its value; DSC_ERR_IO / DSC_ERR_CORRUPT as dsc_shards_read.
 * Reads the whole set once (sequential, in 64 KiB chunks). */
dsc_status_t dsc_shards_check_vocab(dsc_shards_t *sh, int vocab_size, int32_t *max_token, char *err,
                                    size_t errsz);

/* ---- the loader ------------------------------------------------------------------------
 *
 * Batches of B windows of T+1 tokens over a shard set. The set's N tokens form
 * n = dsc_windows_count(N, T) = floor((N-1)/T) non-overlapping windows (llm.c's stride):
 * window i is x = tokens[i*T .. i*T+T), y = tokens[i*T+1 .. i*T+T+1) and may span two
 * shards. A dsc_sampler (dsc/sampler.h) over the n windows chooses this rank's windows;
 * row b of a batch is the b-th next window of the sampler, so an epoch may end inside a
 * batch (the rest of the batch comes from the next epoch) and epochs advance by themselves.
 * The position (epoch, windows taken in the epoch) is a dsc_sampler_state_t: save it in a
 * checkpoint with dsc_shard_loader_state_get, and after dsc_shard_loader_state_set a new
 * loader over the same files, B, T, rank, world and seed yields exactly the batches the
 * saved run would have.
 */

typedef struct dsc_shard_loader dsc_shard_loader_t;

typedef struct dsc_shard_loader_options {
    bool shuffle;      /* sampler shuffle (see dsc/sampler.h) */
    bool drop_last;    /* sampler drop_last */
    int vocab_size;    /* > 0: every token a batch reads must be < vocab_size (cheap, per batch) */
    bool check_vocab;  /* with vocab_size > 0: also scan all tokens at creation */
} dsc_shard_loader_options_t;
/* Training defaults: shuffled, padded (drop_last off), no vocabulary check. */
#define DSC_SHARD_LOADER_OPTIONS_INIT {true, false, 0, false}

/* A training loader over the files matching `pattern`: B >= 1 rows of T >= 1 tokens,
 * this process's rank in 0..world-1, the shuffle seed. Equivalent to dsc_shard_loader_new_ex
 * with DSC_SHARD_LOADER_OPTIONS_INIT. */
dsc_status_t dsc_shard_loader_new(const char *pattern, int B, int T, int rank, int world, uint64_t seed,
                                  dsc_shard_loader_t **out, char *err, size_t errsz);

/* A validation loader: windows in file order (no shuffle, drop_last off), split over the
 * ranks the same way. Call dsc_shard_loader_reset before each evaluation pass. */
dsc_status_t dsc_shard_loader_new_val(const char *pattern, int B, int T, int rank, int world,
                                      dsc_shard_loader_t **out, char *err, size_t errsz);

/* Any options (opts NULL: DSC_SHARD_LOADER_OPTIONS_INIT). Status codes: those of
 * dsc_shards_open (and dsc_shards_check_vocab with check_vocab); DSC_ERR_INVALID for B < 1,
 * T < 1, B*T > 2^30, a rank outside 0..world-1, a set with fewer than T+1 tokens (no
 * window), or drop_last with fewer windows than ranks. On failure *out is NULL. */
dsc_status_t dsc_shard_loader_new_ex(const char *pattern, int B, int T, int rank, int world, uint64_t seed,
                                     const dsc_shard_loader_options_t *opts, dsc_shard_loader_t **out, char *err,
                                     size_t errsz);

/* The same over an already opened set. Takes ownership of `shards` in every case: the
 * loader frees it, and on failure it is freed before returning. */
dsc_status_t dsc_shard_loader_from_shards(dsc_shards_t *shards, int B, int T, int rank, int world, uint64_t seed,
                                          const dsc_shard_loader_options_t *opts, dsc_shard_loader_t **out,
                                          char *err, size_t errsz);

void dsc_shard_loader_free(dsc_shard_loader_t *l);

/* Fills x and y (B*T int32 each, row-major [B][T]) with the next batch and advances the
 * position. On failure the position is unchanged and the message is in
 * dsc_shard_loader_errmsg: DSC_ERR_INVALID (NULL argument, or a token >= vocab_size:
 * message names the file, position and value), DSC_ERR_IO / DSC_ERR_CORRUPT (a file
 * became unreadable or changed; message names it). */
dsc_status_t dsc_shard_loader_next(dsc_shard_loader_t *l, int32_t *x, int32_t *y);

/* The position, for checkpoints (see dsc_sampler_state_t). */
void dsc_shard_loader_state_get(const dsc_shard_loader_t *l, dsc_sampler_state_t *state);
/* Restores a saved position. DSC_ERR_INVALID (message in dsc_shard_loader_errmsg, position
 * unchanged) when the state is out of range or was saved with a different number of
 * windows, world size or seed (see dsc_sampler_state_set). */
dsc_status_t dsc_shard_loader_state_set(dsc_shard_loader_t *l, const dsc_sampler_state_t *state);
/* Back to epoch 0, index 0 (start of a validation pass). */
void dsc_shard_loader_reset(dsc_shard_loader_t *l);

/* The last error message of a loader call ("" if none). Valid until the next call. */
const char *dsc_shard_loader_errmsg(const dsc_shard_loader_t *l);

/* Windows in an epoch (all ranks), this rank's windows per epoch, and this rank's batches
 * per epoch (ceil(per_rank / B)). */
int64_t dsc_shard_loader_windows(const dsc_shard_loader_t *l);
int64_t dsc_shard_loader_rank_windows(const dsc_shard_loader_t *l);
int64_t dsc_shard_loader_batches_per_epoch(const dsc_shard_loader_t *l);
/* The loader's shard set (borrowed; owned by the loader): counts, names, check_vocab. */
dsc_shards_t *dsc_shard_loader_shards(dsc_shard_loader_t *l);

#ifdef __cplusplus
}
#endif
#endif

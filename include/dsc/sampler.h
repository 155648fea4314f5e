/* dsc/sampler.h: a distributed sampler over the samples of an epoch (torch's
 * DistributedSampler), with a position that checkpoints save and restore.
 *
 * Samples are the integers 0 .. n_samples-1 (for token data: window i is
 * x = tokens[i*T .. i*T+T), y = tokens[i*T+1 .. i*T+T+1), see dsc_windows_count).
 *
 * One epoch, for every rank (the same computation everywhere, so the slices agree):
 * 1. order: the identity 0..n-1, or, with shuffle, a permutation P of it produced by
 *    Fisher-Yates driven by splitmix64 seeded with (seed + epoch), as torch seeds its
 *    generator with seed + epoch:
 *        state = seed + epoch                        (uint64 arithmetic, wraps)
 *        next(): state += 0x9E3779B97F4A7C15; z = state;
 *                z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9;
 *                z = (z ^ (z >> 27)) * 0x94D049BB133111EB;  return z ^ (z >> 31)
 *        bounded(m): t = (2^64 - m) mod m; draw r = next() until r >= t; return r mod m
 *        P = [0, 1, ..., n-1]; for i = n-1 down to 1: j = bounded(i + 1); swap P[i], P[j]
 *    (docs/data.md has the same in Python.)
 * 2. size: drop_last false: every rank gets per_rank = ceil(n / world) samples; the order
 *    is padded to per_rank * world by repeating it from its start (cycling if n < world
 *    needs more than one repeat), exactly as torch. drop_last true: per_rank =
 *    floor(n / world); the order is truncated to per_rank * world.
 * 3. slice: rank r takes positions r, r + world, r + 2*world, ... (torch's strided
 *    indices[rank:total:world]). Without padding the ranks' slices are disjoint and
 *    (drop_last false) their union is every sample.
 *
 * Position: (epoch, index) where index counts the samples this rank has already taken
 * in the epoch (0 .. per_rank). dsc_sampler_next at index == per_rank moves to epoch+1,
 * index 0 first (automatic epoch advance), so (epoch, per_rank) and (epoch + 1, 0) give
 * the same next sample. Restoring a saved position continues at exactly that sample.
 *
 * Ownership and threads: a sampler is owned by its creator (dsc_sampler_free); it keeps
 * a permutation of n_samples uint32 values when shuffling (4 bytes per sample) and
 * allocates nothing after dsc_sampler_new. Use one sampler from one thread at a time.
 */
#ifndef DSC_SAMPLER_H
#define DSC_SAMPLER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dsc/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dsc_sampler dsc_sampler_t;

typedef struct dsc_sampler_options {
    int64_t n_samples; /* samples in an epoch, >= 1 (with shuffle at most UINT32_MAX) */
    int world_size;    /* >= 1 */
    int rank;          /* 0 .. world_size-1 */
    uint64_t seed;
    bool shuffle;
    bool drop_last;
} dsc_sampler_options_t;
/* n_samples 0 (must be set), one rank, seed 0, shuffle on, drop_last off: torch's defaults. */
#define DSC_SAMPLER_OPTIONS_INIT {0, 1, 0, 0, true, false}

/* A resumable position. dsc_sampler_state_get fills every field; dsc_sampler_state_set
 * uses epoch and index and checks the other three against the sampler (a state saved by
 * a differently configured run is refused rather than silently resumed elsewhere). Save
 * the five integers in a checkpoint as they are. */
typedef struct dsc_sampler_state {
    int64_t epoch;     /* >= 0 */
    int64_t index;     /* samples already taken by this rank in `epoch`, 0 .. per_rank */
    int64_t n_samples; /* the configuration the position belongs to */
    int64_t world_size;
    uint64_t seed;
} dsc_sampler_state_t;

/* Creates a sampler at epoch 0, index 0. DSC_ERR_INVALID (message in err) for n_samples < 1,
 * world_size < 1, rank outside 0..world_size-1, or drop_last with n_samples < world_size
 * (no rank would get a sample); DSC_ERR_UNSUPPORTED for shuffle with n_samples > UINT32_MAX;
 * DSC_ERR_NOMEM. On success *out is the caller's (dsc_sampler_free); on failure *out is NULL. */
dsc_status_t dsc_sampler_new(const dsc_sampler_options_t *opts, dsc_sampler_t **out, char *err, size_t errsz);
void dsc_sampler_free(dsc_sampler_t *s);

/* Samples each rank takes per epoch (ceil or floor of n / world, see above). */
int64_t dsc_sampler_per_rank(const dsc_sampler_t *s);
/* The configured n_samples. */
int64_t dsc_sampler_n_samples(const dsc_sampler_t *s);

/* The next sample of this rank, advancing the position (and the epoch at its end).
 * DSC_ERR_INVALID for NULL arguments; otherwise DSC_OK (it allocates nothing). */
dsc_status_t dsc_sampler_next(dsc_sampler_t *s, int64_t *sample);

/* Moves to (epoch, 0), torch's set_epoch. DSC_ERR_INVALID for epoch < 0 or INT64_MAX. */
dsc_status_t dsc_sampler_set_epoch(dsc_sampler_t *s, int64_t epoch);

void dsc_sampler_state_get(const dsc_sampler_t *s, dsc_sampler_state_t *state);
/* Restores a position. DSC_ERR_INVALID (message in err, the sampler unchanged) for epoch < 0
 * or INT64_MAX,
 * index outside 0..per_rank, or n_samples / world_size / seed that differ from the sampler's. */
dsc_status_t dsc_sampler_state_set(dsc_sampler_t *s, const dsc_sampler_state_t *state, char *err, size_t errsz);

/* Non-overlapping windows of t+1 tokens in a stream of n_tokens: floor((n_tokens - 1) / t)
 * (window i reads tokens i*t .. i*t+t inclusive; 0 when t < 1 or n_tokens < t + 1). */
int64_t dsc_windows_count(int64_t n_tokens, int t);

#ifdef __cplusplus
}
#endif
#endif

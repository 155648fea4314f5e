/* Distributed sampler (see dsc/sampler.h for the exact semantics). */
#include <stdio.h>
#include <stdlib.h>

#include "dsc/sampler.h"

struct dsc_sampler {
    dsc_sampler_options_t opt;
    int64_t per_rank;
    int64_t epoch, index;
    int64_t perm_epoch; /* the epoch `perm` holds, -1 before the first fill */
    uint32_t *perm;     /* shuffle only: the order of the current epoch */
};

#define ERR(status, ...)                                      \
    do {                                                      \
        if (err && errsz) snprintf(err, errsz, __VA_ARGS__);  \
        return (status);                                      \
    } while (0)

static uint64_t splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform in [0, m) without modulo bias: reject the lowest 2^64 mod m values. */
static uint64_t bounded(uint64_t *state, uint64_t m) {
    uint64_t threshold = (0 - m) % m;
    uint64_t r;
    do r = splitmix64(state);
    while (r < threshold);
    return r % m;
}

static void fill_perm(dsc_sampler_t *s) {
    if (!s->opt.shuffle || s->perm_epoch == s->epoch) return;
    uint64_t n = (uint64_t)s->opt.n_samples;
    uint64_t state = s->opt.seed + (uint64_t)s->epoch;
    for (uint64_t i = 0; i < n; i++) s->perm[i] = (uint32_t)i;
    for (uint64_t i = n - 1; i >= 1; i--) {
        uint64_t j = bounded(&state, i + 1);
        uint32_t t = s->perm[i];
        s->perm[i] = s->perm[j];
        s->perm[j] = t;
    }
    s->perm_epoch = s->epoch;
}

dsc_status_t dsc_sampler_new(const dsc_sampler_options_t *opts, dsc_sampler_t **out, char *err, size_t errsz) {
    if (!out) ERR(DSC_ERR_INVALID, "sampler: out is NULL");
    *out = NULL;
    if (!opts) ERR(DSC_ERR_INVALID, "sampler: options are NULL");
    if (opts->n_samples < 1) ERR(DSC_ERR_INVALID, "sampler: n_samples must be >= 1, got %lld", (long long)opts->n_samples);
    if (opts->world_size < 1) ERR(DSC_ERR_INVALID, "sampler: world_size must be >= 1, got %d", opts->world_size);
    if (opts->rank < 0 || opts->rank >= opts->world_size)
        ERR(DSC_ERR_INVALID, "sampler: rank %d is outside 0..%d (world_size %d)", opts->rank, opts->world_size - 1,
            opts->world_size);
    if (opts->drop_last && opts->n_samples < opts->world_size)
        ERR(DSC_ERR_INVALID, "sampler: drop_last with %lld samples over %d ranks leaves every rank empty",
            (long long)opts->n_samples, opts->world_size);
    if (opts->shuffle && (uint64_t)opts->n_samples > UINT32_MAX)
        ERR(DSC_ERR_UNSUPPORTED, "sampler: shuffling %lld samples (more than 2^32-1) is not supported",
            (long long)opts->n_samples);
    dsc_sampler_t *s = calloc(1, sizeof *s);
    if (!s) ERR(DSC_ERR_NOMEM, "sampler: out of memory");
    s->opt = *opts;
    int64_t n = opts->n_samples, w = opts->world_size;
    s->per_rank = opts->drop_last ? n / w : n / w + (n % w != 0);
    s->perm_epoch = -1;
    if (opts->shuffle) {
        s->perm = malloc((size_t)n * sizeof *s->perm);
        if (!s->perm) {
            free(s);
            ERR(DSC_ERR_NOMEM, "sampler: out of memory for a permutation of %lld samples", (long long)n);
        }
    }
    *out = s;
    return DSC_OK;
}

void dsc_sampler_free(dsc_sampler_t *s) {
    if (!s) return;
    free(s->perm);
    free(s);
}

int64_t dsc_sampler_per_rank(const dsc_sampler_t *s) { return s ? s->per_rank : 0; }
int64_t dsc_sampler_n_samples(const dsc_sampler_t *s) { return s ? s->opt.n_samples : 0; }

dsc_status_t dsc_sampler_next(dsc_sampler_t *s, int64_t *sample) {
    if (!s || !sample) return DSC_ERR_INVALID;
    if (s->index >= s->per_rank) {
        s->epoch++;
        s->index = 0;
    }
    int64_t n = s->opt.n_samples;
    /* Position in the padded (or truncated) order; padding repeats the order from its start. */
    int64_t pos = (int64_t)s->opt.rank + s->index * (int64_t)s->opt.world_size;
    if (pos >= n) pos = (pos - n) % n;
    if (s->opt.shuffle) {
        fill_perm(s);
        *sample = s->perm[pos];
    } else {
        *sample = pos;
    }
    s->index++;
    return DSC_OK;
}

dsc_status_t dsc_sampler_set_epoch(dsc_sampler_t *s, int64_t epoch) {
    if (!s || epoch < 0 || epoch == INT64_MAX) return DSC_ERR_INVALID;
    s->epoch = epoch;
    s->index = 0;
    return DSC_OK;
}

void dsc_sampler_state_get(const dsc_sampler_t *s, dsc_sampler_state_t *state) {
    if (!s || !state) return;
    state->epoch = s->epoch;
    state->index = s->index;
    state->n_samples = s->opt.n_samples;
    state->world_size = s->opt.world_size;
    state->seed = s->opt.seed;
}

dsc_status_t dsc_sampler_state_set(dsc_sampler_t *s, const dsc_sampler_state_t *state, char *err, size_t errsz) {
    if (!s || !state) ERR(DSC_ERR_INVALID, "sampler: state_set with a NULL argument");
    if (state->n_samples != s->opt.n_samples || state->world_size != s->opt.world_size)
        ERR(DSC_ERR_INVALID,
            "sampler: saved position belongs to %lld samples over %lld ranks; this run has %lld samples over %d ranks",
            (long long)state->n_samples, (long long)state->world_size, (long long)s->opt.n_samples,
            s->opt.world_size);
    if (state->seed != s->opt.seed)
        ERR(DSC_ERR_INVALID, "sampler: saved position belongs to seed %llu; this run has seed %llu",
            (unsigned long long)state->seed, (unsigned long long)s->opt.seed);
    if (state->epoch < 0 || state->epoch == INT64_MAX)
        ERR(DSC_ERR_INVALID, "sampler: saved epoch %lld is out of range", (long long)state->epoch);
    if (state->index < 0 || state->index > s->per_rank)
        ERR(DSC_ERR_INVALID, "sampler: saved index %lld is outside 0..%lld (samples per rank)",
            (long long)state->index, (long long)s->per_rank);
    s->epoch = state->epoch;
    s->index = state->index;
    return DSC_OK;
}

int64_t dsc_windows_count(int64_t n_tokens, int t) {
    if (t < 1 || n_tokens < (int64_t)t + 1) return 0;
    return (n_tokens - 1) / t;
}

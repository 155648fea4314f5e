/* The distributed sampler (torch DistributedSampler semantics) and the shard loader's
 * position: golden permutations, disjoint rank slices and their padding, determinism,
 * epoch rollover, and exact resume from a saved state. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "dsc/sampler.h"
#include "dsc/shards.h"

/* One rank's samples of one epoch (per_rank of them) into out. */
static void epoch_samples(dsc_sampler_t *s, int64_t epoch, int64_t *out) {
    CHECK_OK(dsc_sampler_set_epoch(s, epoch));
    for (int64_t i = 0; i < dsc_sampler_per_rank(s); i++) CHECK_OK(dsc_sampler_next(s, &out[i]));
}

static dsc_sampler_t *make(int64_t n, int world, int rank, uint64_t seed, bool shuffle, bool drop_last) {
    dsc_sampler_options_t o = DSC_SAMPLER_OPTIONS_INIT;
    o.n_samples = n;
    o.world_size = world;
    o.rank = rank;
    o.seed = seed;
    o.shuffle = shuffle;
    o.drop_last = drop_last;
    dsc_sampler_t *s = NULL;
    char err[256];
    CHECK_OK(dsc_sampler_new(&o, &s, err, sizeof err));
    return s;
}

/* Values from the Python reference in docs/data.md (permutation / rank_samples). */
static void test_golden(void) {
    const int64_t p0[10] = {0, 1, 8, 6, 4, 3, 7, 2, 9, 5}, p1[10] = {8, 4, 9, 1, 7, 3, 0, 6, 5, 2};
    const int64_t r2[4] = {8, 3, 9, 1}; /* n=10, world 3, rank 2: padded order [..., 0, 1] */
    int64_t got[10];
    dsc_sampler_t *s = make(10, 1, 0, 1234, true, false);
    epoch_samples(s, 0, got);
    CHECK(memcmp(got, p0, sizeof p0) == 0);
    epoch_samples(s, 1, got);
    CHECK(memcmp(got, p1, sizeof p1) == 0);
    dsc_sampler_free(s);
    s = make(10, 3, 2, 1234, true, false);
    CHECK(dsc_sampler_per_rank(s) == 4);
    epoch_samples(s, 0, got);
    CHECK(memcmp(got, r2, sizeof r2) == 0);
    dsc_sampler_free(s);
    /* No shuffle: rank r takes r, r+world, ...; the padding wraps to 0, 1, ... */
    s = make(7, 3, 1, 99, false, false);
    epoch_samples(s, 0, got);
    CHECK(dsc_sampler_per_rank(s) == 3 && got[0] == 1 && got[1] == 4 && got[2] == 0);
    dsc_sampler_free(s);
    s = make(1, 1, 0, 5, true, false);
    epoch_samples(s, 3, got);
    CHECK(got[0] == 0);
    dsc_sampler_free(s);
}

/* For n samples over 1-4 ranks: every rank's slice is the strided slice of the padded
 * (or truncated) base order, so slices are disjoint, the union covers every sample, and
 * the only repeats are the padding order[0 .. pad). */
static void test_partition(void) {
    const int64_t ns[] = {1, 2, 3, 5, 10, 17, 64, 101};
    for (size_t a = 0; a < sizeof ns / sizeof ns[0]; a++) {
        int64_t n = ns[a];
        for (int shuffle = 0; shuffle < 2; shuffle++) {
            int64_t *base = malloc((size_t)n * sizeof *base);
            dsc_sampler_t *b = make(n, 1, 0, 42, shuffle, false);
            epoch_samples(b, 2, base);
            dsc_sampler_free(b);
            /* The base order is a permutation. */
            int *seen = calloc((size_t)n, sizeof *seen);
            for (int64_t i = 0; i < n; i++) seen[base[i]]++;
            bool perm = true;
            for (int64_t i = 0; i < n; i++) perm = perm && seen[i] == 1;
            CHECK_MSG(perm, "n=%lld: epoch order is not a permutation", (long long)n);
            for (int world = 1; world <= 4; world++) {
                for (int drop = 0; drop < 2; drop++) {
                    if (drop && n < world) continue;
                    int64_t per = drop ? n / world : (n + world - 1) / world;
                    int64_t total = per * world, pad = total - n;
                    memset(seen, 0, (size_t)n * sizeof *seen);
                    bool match = true, counts = true;
                    for (int r = 0; r < world; r++) {
                        dsc_sampler_t *s = make(n, world, r, 42, shuffle, drop);
                        counts = counts && dsc_sampler_per_rank(s) == per;
                        int64_t *got = malloc((size_t)per * sizeof *got);
                        epoch_samples(s, 2, got);
                        for (int64_t i = 0; i < per; i++) {
                            int64_t pos = r + i * world;
                            match = match && got[i] == base[pos % n];
                            seen[got[i]]++;
                        }
                        free(got);
                        dsc_sampler_free(s);
                    }
                    CHECK_MSG(counts, "n=%lld world=%d drop=%d: per_rank", (long long)n, world, drop);
                    CHECK_MSG(match, "n=%lld world=%d drop=%d shuffle=%d: slices", (long long)n, world, drop, shuffle);
                    /* Expected multiplicity: drop_last: base[0 .. total) once, the rest never;
                     * padded: every sample once, plus once more per turn of the padding. */
                    bool cover = true;
                    int *want = calloc((size_t)n, sizeof *want);
                    for (int64_t p = 0; p < total; p++) want[base[p % n]]++;
                    int64_t dups = 0;
                    for (int64_t i = 0; i < n; i++) {
                        cover = cover && seen[i] == want[i] && (drop || seen[i] >= 1);
                        if (seen[i] > 1) dups += seen[i] - 1;
                    }
                    if (drop) CHECK(pad <= 0 && dups == 0);
                    else CHECK_MSG(dups == pad, "n=%lld world=%d: %lld repeats, padding %lld", (long long)n, world,
                                   (long long)dups, (long long)pad);
                    CHECK_MSG(cover, "n=%lld world=%d drop=%d: union", (long long)n, world, drop);
                    free(want);
                }
            }
            free(seen);
            free(base);
        }
    }
}

static void test_determinism(void) {
    enum { N = 100 };
    int64_t a[N], b[N], e[5][N];
    dsc_sampler_t *s1 = make(N, 1, 0, 7, true, false), *s2 = make(N, 1, 0, 7, true, false);
    epoch_samples(s1, 3, a);
    epoch_samples(s2, 3, b);
    CHECK(memcmp(a, b, sizeof a) == 0);
    for (int ep = 0; ep < 5; ep++) epoch_samples(s1, ep, e[ep]);
    for (int i = 0; i < 5; i++)
        for (int j = i + 1; j < 5; j++) CHECK_MSG(memcmp(e[i], e[j], sizeof a) != 0, "epochs %d and %d", i, j);
    /* Re-generating an old epoch after others gives the same order again. */
    epoch_samples(s2, 0, b);
    CHECK(memcmp(e[0], b, sizeof b) == 0);
    dsc_sampler_free(s2);
    s2 = make(N, 1, 0, 8, true, false);
    epoch_samples(s2, 3, b);
    CHECK(memcmp(e[3], b, sizeof b) != 0);
    dsc_sampler_free(s1);
    dsc_sampler_free(s2);
}

static void test_rollover_and_resume(void) {
    /* n=5, world 2, rank 1: per_rank 3; epochs advance by themselves. */
    dsc_sampler_t *s = make(5, 2, 1, 11, true, false);
    int64_t ep0[3], ep1[3], v;
    epoch_samples(s, 0, ep0);
    dsc_sampler_state_t st;
    dsc_sampler_state_get(s, &st);
    CHECK(st.epoch == 0 && st.index == 3 && st.n_samples == 5 && st.world_size == 2 && st.seed == 11);
    CHECK_OK(dsc_sampler_next(s, &v));
    dsc_sampler_state_get(s, &st);
    CHECK(st.epoch == 1 && st.index == 1);
    dsc_sampler_t *t = make(5, 2, 1, 11, true, false);
    epoch_samples(t, 1, ep1);
    CHECK(v == ep1[0]);
    /* (0, per_rank) and (1, 0) continue identically. */
    dsc_sampler_state_t end0 = {0, 3, 5, 2, 11}, start1 = {1, 0, 5, 2, 11};
    int64_t a, b;
    CHECK_OK(dsc_sampler_state_set(s, &end0, NULL, 0));
    CHECK_OK(dsc_sampler_state_set(t, &start1, NULL, 0));
    CHECK_OK(dsc_sampler_next(s, &a));
    CHECK_OK(dsc_sampler_next(t, &b));
    CHECK(a == b && a == ep1[0]);

    /* Save mid-epoch, restore in a fresh sampler: the next 20 samples (over 6 epochs) match. */
    dsc_sampler_t *u = make(17, 3, 2, 5, true, false);
    int64_t ref[40];
    for (int i = 0; i < 40; i++) CHECK_OK(dsc_sampler_next(u, &ref[i]));
    for (int cut = 0; cut <= 20; cut += 4) {
        dsc_sampler_t *w = make(17, 3, 2, 5, true, false);
        for (int i = 0; i < cut; i++) CHECK_OK(dsc_sampler_next(w, &v));
        dsc_sampler_state_t saved;
        dsc_sampler_state_get(w, &saved);
        dsc_sampler_free(w);
        dsc_sampler_t *r = make(17, 3, 2, 5, true, false);
        CHECK_OK(dsc_sampler_state_set(r, &saved, NULL, 0));
        bool same = true;
        for (int i = cut; i < cut + 20; i++) {
            CHECK_OK(dsc_sampler_next(r, &v));
            same = same && v == ref[i];
        }
        CHECK_MSG(same, "resume at %d", cut);
        dsc_sampler_free(r);
    }

    /* Refused states leave the position alone and say why. */
    char err[256];
    dsc_sampler_state_get(u, &st);
    dsc_sampler_state_t bad = st;
    bad.n_samples = 18;
    CHECK(dsc_sampler_state_set(u, &bad, err, sizeof err) == DSC_ERR_INVALID && strstr(err, "18 samples over 3"));
    bad = st;
    bad.world_size = 4;
    CHECK(dsc_sampler_state_set(u, &bad, err, sizeof err) == DSC_ERR_INVALID && strstr(err, "over 4 ranks"));
    bad = st;
    bad.seed = 6;
    CHECK(dsc_sampler_state_set(u, &bad, err, sizeof err) == DSC_ERR_INVALID && strstr(err, "seed 6"));
    bad = st;
    bad.index = 7; /* per_rank is 6 */
    CHECK(dsc_sampler_state_set(u, &bad, err, sizeof err) == DSC_ERR_INVALID && strstr(err, "index 7"));
    bad = st;
    bad.epoch = -1;
    CHECK(dsc_sampler_state_set(u, &bad, err, sizeof err) == DSC_ERR_INVALID && strstr(err, "epoch"));
    dsc_sampler_state_t now;
    dsc_sampler_state_get(u, &now);
    CHECK(now.epoch == st.epoch && now.index == st.index);
    CHECK(dsc_sampler_set_epoch(u, -2) == DSC_ERR_INVALID);
    dsc_sampler_free(u);
    dsc_sampler_free(s);
    dsc_sampler_free(t);
}

static void test_bad_options(void) {
    char err[256];
    dsc_sampler_t *s = (dsc_sampler_t *)&err; /* must be reset to NULL on failure */
    dsc_sampler_options_t o = DSC_SAMPLER_OPTIONS_INIT;
    CHECK(dsc_sampler_new(&o, &s, err, sizeof err) == DSC_ERR_INVALID && s == NULL && strstr(err, "n_samples"));
    o.n_samples = 10;
    o.world_size = 0;
    CHECK(dsc_sampler_new(&o, &s, err, sizeof err) == DSC_ERR_INVALID && strstr(err, "world_size"));
    o.world_size = 4;
    o.rank = 4;
    CHECK(dsc_sampler_new(&o, &s, err, sizeof err) == DSC_ERR_INVALID && strstr(err, "rank 4"));
    o.rank = 0;
    o.n_samples = 3;
    o.drop_last = true;
    CHECK(dsc_sampler_new(&o, &s, err, sizeof err) == DSC_ERR_INVALID && strstr(err, "drop_last"));
    o.drop_last = false;
    o.n_samples = (int64_t)UINT32_MAX + 1;
    CHECK(dsc_sampler_new(&o, &s, err, sizeof err) == DSC_ERR_UNSUPPORTED);
    o.shuffle = false; /* without shuffle nothing is stored, so any size works */
    CHECK_OK(dsc_sampler_new(&o, &s, err, sizeof err));
    int64_t v;
    CHECK_OK(dsc_sampler_next(s, &v));
    CHECK(v == 0 && dsc_sampler_per_rank(s) == ((int64_t)UINT32_MAX + 4) / 4);
    dsc_sampler_free(s);
    CHECK(dsc_sampler_new(NULL, &s, err, sizeof err) == DSC_ERR_INVALID);
    CHECK(dsc_sampler_next(NULL, &v) == DSC_ERR_INVALID);
    dsc_sampler_free(NULL);
    CHECK(dsc_windows_count(15, 3) == 4 && dsc_windows_count(16, 3) == 5 && dsc_windows_count(4, 3) == 1);
    CHECK(dsc_windows_count(3, 3) == 0 && dsc_windows_count(100, 0) == 0);
}

/* ---- the shard loader's position ------------------------------------------------------ */

static void put32(unsigned char *p, int32_t v) {
    uint32_t u = (uint32_t)v;
    for (int k = 0; k < 4; k++) p[k] = (unsigned char)(u >> (8 * k));
}

static void write_shard(const char *path, const uint16_t *tok, int n) {
    unsigned char hdr[DSC_SHARD_HEADER_BYTES] = {0};
    put32(hdr, DSC_SHARD_MAGIC);
    put32(hdr + 4, DSC_SHARD_VERSION);
    put32(hdr + 8, n);
    FILE *f = fopen(path, "wb");
    CHECK_MSG(f != NULL, "cannot create %s", path);
    if (!f) return;
    fwrite(hdr, 1, sizeof hdr, f);
    for (int i = 0; i < n; i++) {
        unsigned char b[2] = {(unsigned char)(tok[i] & 0xff), (unsigned char)(tok[i] >> 8)};
        fwrite(b, 1, 2, f);
    }
    fclose(f);
}

enum { B = 3, T = 4, SHARDS = 3, PER_SHARD = 29 }; /* 87 tokens -> 21 windows */

static dsc_shard_loader_t *loader(const char *pattern, int rank, int world, uint64_t seed) {
    dsc_shard_loader_t *l = NULL;
    char err[512];
    CHECK_OK(dsc_shard_loader_new(pattern, B, T, rank, world, seed, &l, err, sizeof err));
    return l;
}

static void test_loader_resume(void) {
    char dir[] = "/tmp/dsc_sampler_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char paths[SHARDS][512], pattern[600];
    uint16_t tok[PER_SHARD];
    for (int k = 0; k < SHARDS; k++) {
        snprintf(paths[k], sizeof paths[k], "%s/tok_%d.bin", dir, k);
        for (int i = 0; i < PER_SHARD; i++) tok[i] = (uint16_t)(k * PER_SHARD + i); /* token == stream index */
        write_shard(paths[k], tok, PER_SHARD);
    }
    snprintf(pattern, sizeof pattern, "%s/tok_*.bin", dir);
    for (int world = 1; world <= 3; world++) {
        for (int rank = 0; rank < world; rank++) {
            dsc_shard_loader_t *l = loader(pattern, rank, world, 77);
            if (!l) continue;
            int64_t per = dsc_shard_loader_rank_windows(l);
            CHECK(dsc_shard_loader_windows(l) == 21 && per == (21 + world - 1) / world);
            CHECK(dsc_shard_loader_batches_per_epoch(l) == (per + B - 1) / B);
            /* The uninterrupted run: 3 epochs and a bit, batches cross epoch ends. */
            enum { STEPS = 24 };
            int32_t ref_x[STEPS][B * T], ref_y[STEPS][B * T];
            bool shaped = true;
            for (int s = 0; s < STEPS; s++) {
                CHECK_OK(dsc_shard_loader_next(l, ref_x[s], ref_y[s]));
                for (int b = 0; b < B; b++) {
                    int32_t w0 = ref_x[s][b * T];
                    shaped = shaped && w0 % T == 0;
                    for (int t = 0; t < T; t++)
                        shaped = shaped && ref_x[s][b * T + t] == w0 + t && ref_y[s][b * T + t] == w0 + t + 1;
                }
            }
            CHECK_MSG(shaped, "world %d rank %d: windows are not tokens[i*T .. i*T+T]", world, rank);
            dsc_sampler_state_t end;
            dsc_shard_loader_state_get(l, &end);
            CHECK(end.epoch * per + end.index == (int64_t)STEPS * B);
            /* The windows of each of the first 3 epochs: this rank's sampler slice. */
            dsc_sampler_t *smp = make(21, world, rank, 77, true, false);
            int64_t ws[3 * 21];
            for (int e = 0; e < 3; e++) epoch_samples(smp, e, ws + e * per);
            bool slices = true;
            for (int64_t k = 0; k < 3 * per; k++) slices = slices && ref_x[k / B][(k % B) * T] == ws[k] * T;
            CHECK_MSG(slices, "world %d rank %d: batches do not follow the sampler", world, rank);
            dsc_sampler_free(smp);
            dsc_shard_loader_free(l);
            /* Interrupt after `cut` steps; resume in a new loader from the saved state. */
            for (int cut = 1; cut < STEPS; cut += 5) {
                dsc_shard_loader_t *a = loader(pattern, rank, world, 77);
                int32_t x[B * T], y[B * T];
                for (int s = 0; s < cut; s++) CHECK_OK(dsc_shard_loader_next(a, x, y));
                dsc_sampler_state_t saved;
                dsc_shard_loader_state_get(a, &saved);
                dsc_shard_loader_free(a);
                dsc_shard_loader_t *r = loader(pattern, rank, world, 77);
                CHECK_OK(dsc_shard_loader_state_set(r, &saved));
                bool same = true;
                for (int s = cut; s < STEPS; s++) {
                    CHECK_OK(dsc_shard_loader_next(r, x, y));
                    same = same && memcmp(x, ref_x[s], sizeof x) == 0 && memcmp(y, ref_y[s], sizeof y) == 0;
                }
                CHECK_MSG(same, "world %d rank %d: resume after %d steps", world, rank, cut);
                dsc_shard_loader_free(r);
            }
        }
    }
    /* Ranks of one step see disjoint windows (21 windows over 3 ranks: no padding). */
    dsc_shard_loader_t *ls[3];
    for (int r = 0; r < 3; r++) ls[r] = loader(pattern, r, 3, 1);
    int seen[21] = {0};
    for (int s = 0; s < 3; s++) /* 7 windows per rank per epoch; 9 drawn (2 into epoch 1) */
        for (int r = 0; r < 3; r++) {
            int32_t x[B * T], y[B * T];
            CHECK_OK(dsc_shard_loader_next(ls[r], x, y));
            for (int b = 0; b < B; b++)
                if (s * B + b < 7) seen[x[b * T] / T]++;
        }
    bool once = true;
    for (int i = 0; i < 21; i++) once = once && seen[i] == 1;
    CHECK_MSG(once, "three ranks' first epoch is not a partition of the 21 windows");
    /* A state from another configuration is refused with a message. */
    dsc_sampler_state_t st;
    dsc_shard_loader_state_get(ls[0], &st);
    st.world_size = 2;
    CHECK(dsc_shard_loader_state_set(ls[1], &st) == DSC_ERR_INVALID);
    CHECK(strstr(dsc_shard_loader_errmsg(ls[1]), "over 2 ranks") != NULL);
    for (int r = 0; r < 3; r++) dsc_shard_loader_free(ls[r]);

    /* The validation loader reads in file order, rank r taking windows r, r+world, ...,
     * and reset starts the pass again. */
    dsc_shard_loader_t *v = NULL;
    char err[512];
    CHECK_OK(dsc_shard_loader_new_val(pattern, 2, T, 1, 2, &v, err, sizeof err));
    if (v) {
        int32_t x[2 * T], y[2 * T], x0[2 * T];
        CHECK_OK(dsc_shard_loader_next(v, x0, y));
        CHECK(x0[0] == 1 * T && x0[T] == 3 * T);
        CHECK_OK(dsc_shard_loader_next(v, x, y));
        CHECK(x[0] == 5 * T && x[T] == 7 * T);
        dsc_shard_loader_reset(v);
        CHECK_OK(dsc_shard_loader_next(v, x, y));
        CHECK(memcmp(x, x0, sizeof x) == 0);
        dsc_shard_loader_free(v);
    }
    for (int k = 0; k < SHARDS; k++) unlink(paths[k]);
    rmdir(dir);
}

int main(void) {
    test_golden();
    test_partition();
    test_determinism();
    test_rollover_and_resume();
    test_bad_options();
    test_loader_resume();
    return check_finish("test_sampler");
}

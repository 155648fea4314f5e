/* The start-up agreement (dsc_comm_agree): every rank says whether it is fine and what
 * settings it has, in one fixed-size allgather, before any data moves. A rank that failed
 * locally (a missing config file) thus stops every rank with its own message, and ranks
 * whose models or settings differ stop before a broadcast of different sizes can corrupt
 * memory. The fields travel as 64-bit hashes; their text only for the first one that
 * differs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if !__has_include(<xxhash.h>)
#error "dsc needs xxhash.h: install Debian's libxxhash-dev (scripts/deps.sh does)"
#endif
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "comm/comm_internal.h"

#define AGREE_MSG 1024
#define AGREE_KEY 96
#define AGREE_VALUE 160
#define AGREE_ABSENT 0u /* the hash of a field a rank does not have */

/* What every rank contributes first. Plain bytes, a multiple of 4 (travels as i32). */
typedef struct agree_rec {
    int32_t status;   /* dsc_status_t */
    int32_t n_fields;
    uint32_t hash[2]; /* XXH3-64 of the per-field hashes and their number */
    char msg[AGREE_MSG];
} agree_rec_t;

/* The text of the first differing field, as each rank has it. */
typedef struct agree_text {
    int32_t present;
    char key[AGREE_KEY];
    char value[AGREE_VALUE];
} agree_text_t;

_Static_assert(sizeof(agree_rec_t) % 4 == 0, "agreement record must travel as i32 elements");
_Static_assert(sizeof(agree_text_t) % 4 == 0, "agreement text must travel as i32 elements");

static const char *value_of(const dsc_comm_field_t *f) { return f->value ? f->value : "(null)"; }

static uint64_t field_hash(const dsc_comm_field_t *f) {
    const char *k = f->key ? f->key : "", *v = value_of(f);
    uint64_t h = XXH3_64bits_withSeed(k, strlen(k), 0x6473636167726565ull); /* "dscagree" */
    h = XXH3_64bits_withSeed(v, strlen(v), h);
    return h == AGREE_ABSENT ? 1 : h;
}

static void copy_text(char *dst, size_t n, const char *src) {
    snprintf(dst, n, "%s", src ? src : "");
}

/* "rank 2" / "ranks 0 and 1" / "ranks 0, 1 and 3" (at most 16 listed) into buf. */
static void rank_list(const int *ranks, int n, char *buf, size_t size) {
    size_t len = 0;
    len += (size_t)snprintf(buf, size, "%s", n == 1 ? "rank " : "ranks ");
    for (int i = 0; i < n && len < size; i++) {
        if (i == 16) {
            snprintf(buf + len, size - len, " and %d more", n - 16);
            return;
        }
        const char *sep = i == 0 ? "" : (i == n - 1 ? " and " : ", ");
        len += (size_t)snprintf(buf + len, size - len, "%s%d", sep, ranks[i]);
    }
}

/* The message for field position `pos`, where the ranks' hashes `h` (world entries)
 * differ: the ranks grouped by hash, each group with its text. */
static void disagreement(dsc_comm_t *c, size_t pos, const uint64_t *h, const agree_text_t *texts, char *msg,
                         size_t size) {
    const int w = c->world;
    bool same_key = true;
    const char *key0 = NULL;
    for (int p = 0; p < w; p++) {
        if (!texts[p].present) {
            same_key = false;
            continue;
        }
        if (!key0) key0 = texts[p].key;
        else if (strcmp(key0, texts[p].key)) same_key = false;
    }
    size_t len;
    if (same_key && key0)
        len = (size_t)snprintf(msg, size, "ranks disagree on %s: ", key0);
    else
        len = (size_t)snprintf(msg, size, "ranks disagree on setting #%zu (their lists of settings differ): ",
                               pos + 1);
    int *group = malloc(sizeof *group * (size_t)w);
    bool *done = calloc((size_t)w, sizeof *done);
    if (!group || !done) {
        free(group);
        free(done);
        return;
    }
    int groups = 0;
    for (int p = 0; p < w && len < size; p++) {
        if (done[p]) continue;
        int n = 0;
        for (int q = p; q < w; q++)
            if (!done[q] && h[q] == h[p]) {
                done[q] = true;
                group[n++] = q;
            }
        if (groups++ == 8) {
            snprintf(msg + len, size - len, ", ...");
            break;
        }
        char who[160];
        rank_list(group, n, who, sizeof who);
        const agree_text_t *t = &texts[p];
        const char *verb = n == 1 ? "has" : "have";
        if (!t->present)
            len += (size_t)snprintf(msg + len, size - len, "%s%s %s no such setting", groups > 1 ? ", " : "", who,
                                    verb);
        else if (same_key)
            len += (size_t)snprintf(msg + len, size - len, "%s%s %s %s", groups > 1 ? ", " : "", who, verb, t->value);
        else
            len += (size_t)snprintf(msg + len, size - len, "%s%s %s %s = %s", groups > 1 ? ", " : "", who, verb,
                                    t->key, t->value);
    }
    free(group);
    free(done);
}

/* All hashes agree or the first differing field, as a message on every rank. */
static dsc_status_t compare_fields(dsc_comm_t *c, const agree_rec_t *all, const uint64_t *mine, size_t n_mine,
                                   const dsc_comm_field_t *fields) {
    const int w = c->world;
    bool same = true;
    int32_t max_n = 0;
    for (int p = 0; p < w; p++) {
        if (all[p].n_fields > max_n) max_n = all[p].n_fields;
        same = same && all[p].n_fields == all[0].n_fields && all[p].hash[0] == all[0].hash[0] &&
               all[p].hash[1] == all[0].hash[1];
    }
    if (same) return DSC_OK;
    /* Every rank computed the same max_n from the same records: the same collective. */
    const size_t m = (size_t)(max_n > 0 ? max_n : 1);
    uint64_t *padded = calloc(m, sizeof *padded), *hashes = calloc(m * (size_t)w, sizeof *hashes);
    uint64_t *at = calloc((size_t)w, sizeof *at);
    agree_text_t *texts = calloc((size_t)w, sizeof *texts), text;
    if (!padded || !hashes || !at || !texts) {
        free(padded);
        free(hashes);
        free(at);
        free(texts);
        return dsc__comm_fail(c, DSC_ERR_NOMEM, "out of memory comparing the settings of %d ranks", w);
    }
    memcpy(padded, mine, n_mine * sizeof *mine);
    dsc_status_t st =
        dsc__comm_allgather_unchecked(c, padded, hashes, m * 2, DSC_I32, "agreement: field hashes");
    size_t pos = 0;
    if (st == DSC_OK) {
        for (pos = 0; pos < m; pos++) {
            bool differ = false;
            for (int p = 1; p < w; p++) differ = differ || hashes[(size_t)p * m + pos] != hashes[pos];
            if (differ) break;
        }
        if (pos == m) pos = 0; /* the combined hashes differ but no field does: cannot happen */
        memset(&text, 0, sizeof text);
        if (pos < n_mine) {
            text.present = 1;
            copy_text(text.key, sizeof text.key, fields[pos].key);
            copy_text(text.value, sizeof text.value, value_of(&fields[pos]));
        }
        st = dsc__comm_allgather_unchecked(c, &text, texts, sizeof text / 4, DSC_I32, "agreement: field text");
    }
    if (st == DSC_OK) {
        for (int p = 0; p < w; p++) {
            at[p] = hashes[(size_t)p * m + pos];
            texts[p].key[AGREE_KEY - 1] = texts[p].value[AGREE_VALUE - 1] = '\0'; /* whatever a peer sent */
        }
        char msg[DSC_ERRMSG_MAX];
        msg[0] = '\0';
        disagreement(c, pos, at, texts, msg, sizeof msg);
        st = dsc__comm_fail(c, DSC_ERR_CONFIG, "%s", msg);
    }
    free(padded);
    free(hashes);
    free(at);
    free(texts);
    return st;
}

dsc_status_t dsc_comm_agree(dsc_comm_t *c, dsc_status_t mine, const char *my_error, const dsc_comm_field_t *fields,
                            size_t n_fields) {
    if (!c) return DSC_ERR_INVALID;
    if (n_fields && !fields) return dsc__comm_fail(c, DSC_ERR_INVALID, "dsc_comm_agree: fields is NULL");
    if (n_fields > (size_t)INT32_MAX / 8)
        return dsc__comm_fail(c, DSC_ERR_INVALID, "dsc_comm_agree: %zu fields is too many", n_fields);
    if (c->world == 1) return mine;
    agree_rec_t me, *all = calloc((size_t)c->world, sizeof *all);
    uint64_t *hashes = malloc((n_fields ? n_fields : 1) * sizeof *hashes);
    if (!all || !hashes) {
        free(all);
        free(hashes);
        return dsc__comm_fail(c, DSC_ERR_NOMEM, "out of memory for the start-up agreement of %d ranks", c->world);
    }
    memset(&me, 0, sizeof me);
    me.status = (int32_t)mine;
    if (mine != DSC_OK) {
        copy_text(me.msg, sizeof me.msg, my_error && *my_error ? my_error : dsc_status_string(mine));
    } else {
        me.n_fields = (int32_t)n_fields;
        for (size_t i = 0; i < n_fields; i++) hashes[i] = field_hash(&fields[i]);
        uint64_t all_h = XXH3_64bits_withSeed(hashes, n_fields * sizeof *hashes, (uint64_t)n_fields);
        me.hash[0] = (uint32_t)all_h;
        me.hash[1] = (uint32_t)(all_h >> 32);
    }
    char tag[DSC_COMM_TAG_MAX];
    copy_text(tag, sizeof tag, c->tag[0] ? c->tag : "start-up agreement"); /* the caller's tag, if any */
    dsc_status_t st = dsc__comm_allgather_unchecked(c, &me, all, sizeof me / 4, DSC_I32, tag);
    if (st == DSC_OK) {
        int failed = -1, n_failed = 0;
        for (int p = 0; p < c->world; p++)
            if (all[p].status != DSC_OK) {
                if (failed < 0) failed = p;
                n_failed++;
            }
        if (failed >= 0) {
            const agree_rec_t *f = &all[failed];
            dsc_status_t fs = f->status > DSC_OK && f->status < DSC_STATUS_COUNT ? (dsc_status_t)f->status : DSC_ERR_COMM;
            if (mine != DSC_OK) {
                st = mine; /* its own message is already recorded */
            } else {
                char more[64] = "";
                if (n_failed > 1) snprintf(more, sizeof more, " (and %d more rank%s failed)", n_failed - 1,
                                           n_failed > 2 ? "s" : "");
                st = dsc__comm_fail(c, fs, "rank %d of %d failed%s: %.*s", failed, c->world, more, AGREE_MSG - 1,
                                    f->msg);
            }
        } else {
            st = compare_fields(c, all, hashes, n_fields, fields);
        }
    }
    free(all);
    free(hashes);
    return st;
}

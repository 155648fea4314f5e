/* The checkpoint manifest: building, querying, validating (pieces tile every tensor) and
 * serialising to JSON. Parsing is in manifest_parse.c. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt/manifest_internal.h"
#include "dsc/dsc.h"

static const char *const blob_names[DSC_MANIFEST_BLOB_COUNT] = {"lr_scheduler", "data_loader", "client_state",
                                                                "optimizer"};

dsc_status_t dsc_manifest_new(dsc_manifest_t **out) {
    if (!out) return DSC_ERR_INVALID;
    dsc_manifest_t *m = calloc(1, sizeof *m);
    if (!m) return DSC_ERR_NOMEM;
    dsc_manifest_counters_t c = DSC_MANIFEST_COUNTERS_INIT;
    m->c = c;
    *out = m;
    return DSC_OK;
}

void dsc_manifest_free(dsc_manifest_t *m) {
    if (!m) return;
    free(m->config);
    for (int i = 0; i < DSC_MANIFEST_BLOB_COUNT; i++) {
        json_decref(m->blob[i]);
        free(m->blob_text[i]);
    }
    for (int i = 0; i < m->n_rng; i++) free(m->rng[i].name);
    free(m->rng);
    for (int i = 0; i < m->n_t; i++) {
        mf_tensor_t *t = &m->t[i];
        free(t->name);
        free(t->kind);
        for (int k = 0; k < t->n_aliases; k++) free(t->aliases[k]);
        free(t->aliases);
        for (int k = 0; k < t->n_pieces; k++) {
            free(t->pieces[k].file);
            free(t->pieces[k].key);
        }
        free(t->pieces);
    }
    free(m->t);
    dsc__ck_index_free(&m->tindex);
    for (int i = 0; i < m->n_f; i++) free(m->f[i].name);
    free(m->f);
    dsc__ck_index_free(&m->findex);
    free(m);
}

const char *dsc__mf_check_counters(const dsc_manifest_counters_t *c) {
    if (c->global_steps < 0) return "global_steps is negative";
    if (c->global_samples < 0) return "global_samples is negative";
    if (c->skipped_steps < 0) return "skipped_steps is negative";
    if (c->micro_steps < 0) return "micro_steps is negative";
    if (c->world_size < 1) return "world_size is below 1";
    if (c->zero_stage < 0 || c->zero_stage > 3) return "zero_stage is outside 0..3";
    if (!isfinite(c->loss_scaler.scale) || c->loss_scaler.scale <= 0) return "loss_scaler.scale is not finite > 0";
    if (c->loss_scaler.iter < 0) return "loss_scaler.iter is negative";
    if (c->loss_scaler.last_overflow_iter < -1) return "loss_scaler.last_overflow_iter is below -1";
    if (c->loss_scaler.hysteresis < 0) return "loss_scaler.hysteresis is negative";
    return NULL;
}

dsc_status_t dsc_manifest_set_counters(dsc_manifest_t *m, const dsc_manifest_counters_t *c, char *err, size_t errsz) {
    if (!m || !c) return dsc__ck_fail(err, errsz, DSC_ERR_INVALID, "dsc_manifest_set_counters: NULL argument");
    const char *why = dsc__mf_check_counters(c);
    if (why) return dsc__ck_fail(err, errsz, DSC_ERR_INVALID, "manifest counters: %s", why);
    m->c = *c;
    return DSC_OK;
}

void dsc_manifest_counters(const dsc_manifest_t *m, dsc_manifest_counters_t *out) {
    if (m && out) *out = m->c;
}

dsc_status_t dsc_manifest_set_config(dsc_manifest_t *m, const char *text, char *err, size_t errsz) {
    if (!m) return dsc__ck_fail(err, errsz, DSC_ERR_INVALID, "dsc_manifest_set_config: manifest is NULL");
    char *copy = NULL;
    if (text) {
        json_t *j = json_string(text);
        if (!j) return dsc__ck_fail(err, errsz, DSC_ERR_INVALID, "manifest config text is not valid UTF-8");
        json_decref(j);
        copy = dsc__ck_strdup(text);
        if (!copy) return dsc__ck_fail(err, errsz, DSC_ERR_NOMEM, "out of memory");
    }
    free(m->config);
    m->config = copy;
    return DSC_OK;
}

const char *dsc_manifest_config(const dsc_manifest_t *m) { return m ? m->config : NULL; }

dsc_status_t dsc__mf_set_blob_json(dsc_manifest_t *m, dsc_manifest_blob_t which, json_t *j) {
    char *text = NULL;
    if (j) {
        text = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
        if (!text) {
            json_decref(j);
            return DSC_ERR_NOMEM;
        }
    }
    json_decref(m->blob[which]);
    free(m->blob_text[which]);
    m->blob[which] = j;
    m->blob_text[which] = text;
    return DSC_OK;
}

dsc_status_t dsc_manifest_set_blob(dsc_manifest_t *m, dsc_manifest_blob_t which, const char *json_text, char *err,
                                   size_t errsz) {
    if (!m || (unsigned)which >= DSC_MANIFEST_BLOB_COUNT)
        return dsc__ck_fail(err, errsz, DSC_ERR_INVALID, "dsc_manifest_set_blob: bad argument");
    json_t *j = NULL;
    if (json_text) {
        json_error_t jerr;
        j = json_loads(json_text, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
        if (!j)
            return dsc__ck_fail(err, errsz, DSC_ERR_INVALID, "manifest %s: not valid JSON: %s (line %d, column %d)",
                                blob_names[which], jerr.text, jerr.line, jerr.column);
        if (which != DSC_MANIFEST_CLIENT_STATE && !json_is_object(j)) {
            json_decref(j);
            return dsc__ck_fail(err, errsz, DSC_ERR_INVALID, "manifest %s: must be a JSON object", blob_names[which]);
        }
    }
    if (dsc__mf_set_blob_json(m, which, j) != DSC_OK) return dsc__ck_fail(err, errsz, DSC_ERR_NOMEM, "out of memory");
    return DSC_OK;
}

const char *dsc_manifest_blob(const dsc_manifest_t *m, dsc_manifest_blob_t which) {
    if (!m || (unsigned)which >= DSC_MANIFEST_BLOB_COUNT) return NULL;
    return m->blob_text[which];
}

dsc_status_t dsc_manifest_add_rng(dsc_manifest_t *m, int rank, const char *name, uint64_t state, char *err,
                                  size_t errsz) {
    if (!m || !name || !*name || rank < 0)
        return dsc__ck_fail(err, errsz, DSC_ERR_INVALID, "manifest rng: need rank >= 0 and a non-empty name");
    json_t *j = json_string(name);
    if (!j) return dsc__ck_fail(err, errsz, DSC_ERR_INVALID, "manifest rng: name is not valid UTF-8");
    json_decref(j);
    uint64_t dummy;
    if (dsc_manifest_rng(m, rank, name, &dummy) == DSC_OK)
        return dsc__ck_fail(err, errsz, DSC_ERR_INVALID, "manifest rng: (rank %d, '%s') added twice", rank, name);
    if (m->n_rng == m->cap_rng) {
        int cap = m->cap_rng ? 2 * m->cap_rng : 8;
        mf_rng_t *r = realloc(m->rng, (size_t)cap * sizeof *r);
        if (!r) return dsc__ck_fail(err, errsz, DSC_ERR_NOMEM, "out of memory");
        m->rng = r;
        m->cap_rng = cap;
    }
    char *copy = dsc__ck_strdup(name);
    if (!copy) return dsc__ck_fail(err, errsz, DSC_ERR_NOMEM, "out of memory");
    m->rng[m->n_rng++] = (mf_rng_t){rank, copy, state};
    return DSC_OK;
}

dsc_status_t dsc_manifest_rng(const dsc_manifest_t *m, int rank, const char *name, uint64_t *state) {
    if (!m || !name) return DSC_ERR_INVALID;
    for (int i = 0; i < m->n_rng; i++)
        if (m->rng[i].rank == rank && strcmp(m->rng[i].name, name) == 0) {
            if (state) *state = m->rng[i].state;
            return DSC_OK;
        }
    return DSC_ERR_INVALID;
}

int dsc_manifest_rng_count(const dsc_manifest_t *m) { return m ? m->n_rng : 0; }

dsc_status_t dsc_manifest_rng_at(const dsc_manifest_t *m, int i, int *rank, const char **name, uint64_t *state) {
    if (!m || i < 0 || i >= m->n_rng) return DSC_ERR_INVALID;
    if (rank) *rank = m->rng[i].rank;
    if (name) *name = m->rng[i].name;
    if (state) *state = m->rng[i].state;
    return DSC_OK;
}

static bool utf8_ok(const char *s) {
    json_t *j = json_string(s);
    json_decref(j);
    return j != NULL;
}

dsc_status_t dsc_manifest_add_tensor(dsc_manifest_t *m, const dsc_manifest_tensor_t *t, char *err, size_t errsz) {
    if (!m || !t || !t->name || !*t->name || !utf8_ok(t->name))
        return dsc__ck_fail(err, errsz, DSC_ERR_INVALID, "manifest tensor: a non-empty UTF-8 name is required");
    const char *nm = t->name;
    if (!t->kind || !*t->kind || !utf8_ok(t->kind))
        return dsc__ck_fail(err, errsz, DSC_ERR_INVALID, "manifest tensor '%s': a non-empty UTF-8 kind is required",
                            nm);
    if (!dsc_st_dtype_name(t->dtype))
        return dsc__ck_fail(err, errsz, DSC_ERR_INVALID, "manifest tensor '%s': invalid dtype %d", nm, (int)t->dtype);
    int64_t numel;
    if (t->ndim < 0 || t->ndim > DSC_ST_MAX_DIMS || !dsc__ck_shape_numel(t->ndim, t->shape, &numel))
        return dsc__ck_fail(err, errsz, DSC_ERR_INVALID, "manifest tensor '%s': invalid shape", nm);
    if (t->n_aliases < 0 || (t->n_aliases > 0 && !t->aliases))
        return dsc__ck_fail(err, errsz, DSC_ERR_INVALID, "manifest tensor '%s': invalid aliases", nm);
    if (dsc__ck_index_get(&m->tindex, nm) >= 0)
        return dsc__ck_fail(err, errsz, DSC_ERR_INVALID, "manifest tensor '%s': name already used", nm);
    for (int k = 0; k < t->n_aliases; k++) {
        const char *a = t->aliases[k];
        if (!a || !*a || !utf8_ok(a))
            return dsc__ck_fail(err, errsz, DSC_ERR_INVALID,
                                "manifest tensor '%s': alias %d is not a non-empty UTF-8 name", nm, k);
        if (dsc__ck_index_get(&m->tindex, a) >= 0 || strcmp(a, nm) == 0)
            return dsc__ck_fail(err, errsz, DSC_ERR_INVALID, "manifest tensor '%s': alias '%s' already used", nm, a);
        for (int q = 0; q < k; q++)
            if (strcmp(t->aliases[q], a) == 0)
                return dsc__ck_fail(err, errsz, DSC_ERR_INVALID, "manifest tensor '%s': alias '%s' given twice", nm, a);
    }
    if (m->n_t == m->cap_t) {
        int cap = m->cap_t ? 2 * m->cap_t : 16;
        mf_tensor_t *nt = realloc(m->t, (size_t)cap * sizeof *nt);
        if (!nt) return dsc__ck_fail(err, errsz, DSC_ERR_NOMEM, "out of memory");
        m->t = nt;
        m->cap_t = cap;
    }
    mf_tensor_t *d = &m->t[m->n_t];
    memset(d, 0, sizeof *d);
    d->name = dsc__ck_strdup(nm);
    d->kind = dsc__ck_strdup(t->kind);
    d->aliases = t->n_aliases ? calloc((size_t)t->n_aliases, sizeof *d->aliases) : NULL;
    bool ok = d->name && d->kind && (!t->n_aliases || d->aliases);
    for (int k = 0; ok && k < t->n_aliases; k++) {
        d->aliases[k] = dsc__ck_strdup(t->aliases[k]);
        ok = d->aliases[k] != NULL;
        if (ok) d->n_aliases++;
    }
    ok = ok && dsc__ck_index_put(&m->tindex, d->name, m->n_t) == 0;
    for (int k = 0; ok && k < d->n_aliases; k++) ok = dsc__ck_index_put(&m->tindex, d->aliases[k], m->n_t) == 0;
    if (!ok) {
        /* Roll back the index entries of this tensor, then its strings. */
        dsc__ck_index_t fresh = {0};
        for (int i = 0; i < m->n_t; i++) {
            dsc__ck_index_put(&fresh, m->t[i].name, i);
            for (int k = 0; k < m->t[i].n_aliases; k++) dsc__ck_index_put(&fresh, m->t[i].aliases[k], i);
        }
        dsc__ck_index_free(&m->tindex);
        m->tindex = fresh;
        free(d->name);
        free(d->kind);
        for (int k = 0; k < d->n_aliases; k++) free(d->aliases[k]);
        free(d->aliases);
        return dsc__ck_fail(err, errsz, DSC_ERR_NOMEM, "out of memory");
    }
    d->dtype = t->dtype;
    d->ndim = t->ndim;
    for (int k = 0; k < t->ndim; k++) d->shape[k] = t->shape[k];
    d->numel = numel;
    d->frozen = t->frozen;
    m->n_t++;
    return DSC_OK;
}

dsc_status_t dsc_manifest_add_piece(dsc_manifest_t *m, const char *tensor, const char *file, int64_t begin, int64_t end,
                                    const char *key, char *err, size_t errsz) {
    if (!m || !tensor || !file)
        return dsc__ck_fail(err, errsz, DSC_ERR_INVALID, "dsc_manifest_add_piece: NULL argument");
    int i = dsc__ck_index_get(&m->tindex, tensor);
    if (i < 0 || strcmp(m->t[i].name, tensor) != 0)
        return dsc__ck_fail(err, errsz, DSC_ERR_INVALID, "manifest piece: no tensor named '%s'", tensor);
    mf_tensor_t *t = &m->t[i];
    if (begin < 0 || end <= begin || end > t->numel)
        return dsc__ck_fail(err, errsz, DSC_ERR_INVALID,
                            "manifest tensor '%s': piece [%lld, %lld) outside its %lld elements", tensor,
                            (long long)begin, (long long)end, (long long)t->numel);
    const char *why = dsc__mf_check_file_name(file);
    if (why)
        return dsc__ck_fail(err, errsz, DSC_ERR_INVALID, "manifest tensor '%s': piece file '%s': %s", tensor, file,
                            why);
    if (t->n_pieces == t->cap_pieces) {
        int cap = t->cap_pieces ? 2 * t->cap_pieces : 4;
        mf_piece_t *p = realloc(t->pieces, (size_t)cap * sizeof *p);
        if (!p) return dsc__ck_fail(err, errsz, DSC_ERR_NOMEM, "out of memory");
        t->pieces = p;
        t->cap_pieces = cap;
    }
    char *k;
    if (key) {
        if (!*key || !utf8_ok(key))
            return dsc__ck_fail(err, errsz, DSC_ERR_INVALID, "manifest tensor '%s': piece key is not a UTF-8 name",
                                tensor);
        k = dsc__ck_strdup(key);
    } else {
        k = dsc__ck_asprintf("%s@%lld:%lld", tensor, (long long)begin, (long long)end);
    }
    char *f = dsc__ck_strdup(file);
    if (!k || !f) {
        free(k);
        free(f);
        return dsc__ck_fail(err, errsz, DSC_ERR_NOMEM, "out of memory");
    }
    t->pieces[t->n_pieces++] = (mf_piece_t){f, k, begin, end};
    return DSC_OK;
}

const char *dsc__mf_check_file_name(const char *name) {
    size_t n = strlen(name);
    if (n == 0) return "empty file name";
    if (n > 255) return "file name longer than 255 bytes";
    if (name[0] == '.') return "file name starts with '.'";
    if (strcmp(name, DSC_CKPT_MANIFEST_NAME) == 0) return "file name is reserved for the manifest";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c == '/' || c == '\\' || c < 0x20 || c == 0x7f) return "file name contains '/', '\\' or a control byte";
    }
    if (!utf8_ok(name)) return "file name is not valid UTF-8";
    return NULL;
}

dsc_status_t dsc_manifest_add_file(dsc_manifest_t *m, const char *file, const dsc_st_file_info_t *info, char *err,
                                   size_t errsz) {
    if (!m || !file || !info) return dsc__ck_fail(err, errsz, DSC_ERR_INVALID, "dsc_manifest_add_file: NULL argument");
    const char *why = dsc__mf_check_file_name(file);
    if (why) return dsc__ck_fail(err, errsz, DSC_ERR_INVALID, "manifest file '%s': %s", file, why);
    if (dsc__ck_index_get(&m->findex, file) >= 0)
        return dsc__ck_fail(err, errsz, DSC_ERR_INVALID, "manifest file '%s' added twice", file);
    if (info->size > (uint64_t)INT64_MAX)
        return dsc__ck_fail(err, errsz, DSC_ERR_INVALID, "manifest file '%s': size too large", file);
    if (m->n_f == m->cap_f) {
        int cap = m->cap_f ? 2 * m->cap_f : 16;
        mf_file_t *nf = realloc(m->f, (size_t)cap * sizeof *nf);
        if (!nf) return dsc__ck_fail(err, errsz, DSC_ERR_NOMEM, "out of memory");
        m->f = nf;
        m->cap_f = cap;
    }
    char *copy = dsc__ck_strdup(file);
    if (!copy || dsc__ck_index_put(&m->findex, copy, m->n_f) != 0) {
        free(copy);
        return dsc__ck_fail(err, errsz, DSC_ERR_NOMEM, "out of memory");
    }
    m->f[m->n_f++] = (mf_file_t){copy, info->size, info->xxh3};
    return DSC_OK;
}

int dsc_manifest_tensor_count(const dsc_manifest_t *m) { return m ? m->n_t : 0; }

dsc_status_t dsc_manifest_tensor_at(const dsc_manifest_t *m, int index, dsc_manifest_tensor_t *out) {
    if (!m || !out || index < 0 || index >= m->n_t) return DSC_ERR_INVALID;
    const mf_tensor_t *t = &m->t[index];
    memset(out, 0, sizeof *out);
    out->name = t->name;
    out->kind = t->kind;
    out->dtype = t->dtype;
    out->ndim = t->ndim;
    for (int k = 0; k < t->ndim; k++) out->shape[k] = t->shape[k];
    out->frozen = t->frozen;
    out->n_aliases = t->n_aliases;
    out->aliases = (const char *const *)t->aliases;
    out->numel = t->numel;
    out->n_pieces = t->n_pieces;
    return DSC_OK;
}

int dsc_manifest_find(const dsc_manifest_t *m, const char *name) {
    return m && name ? dsc__ck_index_get(&m->tindex, name) : -1;
}

dsc_status_t dsc_manifest_piece_at(const dsc_manifest_t *m, int index, int j, dsc_manifest_piece_t *out) {
    if (!m || !out || index < 0 || index >= m->n_t || j < 0 || j >= m->t[index].n_pieces) return DSC_ERR_INVALID;
    const mf_piece_t *p = &m->t[index].pieces[j];
    out->file = p->file;
    out->key = p->key;
    out->begin = p->begin;
    out->end = p->end;
    return DSC_OK;
}

int dsc_manifest_file_count(const dsc_manifest_t *m) { return m ? m->n_f : 0; }

dsc_status_t dsc_manifest_file_at(const dsc_manifest_t *m, int i, dsc_manifest_file_t *out) {
    if (!m || !out || i < 0 || i >= m->n_f) return DSC_ERR_INVALID;
    out->name = m->f[i].name;
    out->size = m->f[i].size;
    out->xxh3 = m->f[i].xxh3;
    return DSC_OK;
}

int dsc_manifest_find_file(const dsc_manifest_t *m, const char *name) {
    return m && name ? dsc__ck_index_get(&m->findex, name) : -1;
}

/* Sorts pieces by begin (merge sort; stable). */
static void sort_pieces(mf_piece_t *p, mf_piece_t *tmp, int n) {
    if (n < 2) return;
    int h = n / 2;
    sort_pieces(p, tmp, h);
    sort_pieces(p + h, tmp, n - h);
    int i = 0, j = h, k = 0;
    while (i < h && j < n) tmp[k++] = p[i].begin <= p[j].begin ? p[i++] : p[j++];
    while (i < h) tmp[k++] = p[i++];
    while (j < n) tmp[k++] = p[j++];
    memcpy(p, tmp, (size_t)n * sizeof *p);
}

dsc_status_t dsc_manifest_validate(dsc_manifest_t *m, char *err, size_t errsz) {
    if (!m) return dsc__ck_fail(err, errsz, DSC_ERR_INVALID, "dsc_manifest_validate: manifest is NULL");
    dsc__ck_index_t keys = {0};
    char **owned = NULL;
    size_t n_owned = 0, cap_owned = 0;
    dsc_status_t st = DSC_OK;
    for (int i = 0; i < m->n_t && !st; i++) {
        mf_tensor_t *t = &m->t[i];
        if (t->n_pieces > 1) {
            mf_piece_t *tmp = malloc((size_t)t->n_pieces * sizeof *tmp);
            if (!tmp) {
                st = dsc__ck_fail(err, errsz, DSC_ERR_NOMEM, "out of memory");
                break;
            }
            sort_pieces(t->pieces, tmp, t->n_pieces);
            free(tmp);
        }
        int64_t expect = 0;
        for (int k = 0; k < t->n_pieces && !st; k++) {
            const mf_piece_t *p = &t->pieces[k];
            if (p->begin < 0 || p->end <= p->begin || p->end > t->numel)
                st = dsc__ck_fail(err, errsz, DSC_ERR_INVALID,
                                  "tensor '%s': piece [%lld, %lld) outside its %lld elements", t->name,
                                  (long long)p->begin, (long long)p->end, (long long)t->numel);
            else if (p->begin < expect)
                st = dsc__ck_fail(err, errsz, DSC_ERR_INVALID, "tensor '%s': pieces overlap at element %lld (in '%s')",
                                  t->name, (long long)p->begin, p->file);
            else if (p->begin > expect)
                st = dsc__ck_fail(err, errsz, DSC_ERR_INVALID, "tensor '%s': elements [%lld, %lld) are in no piece",
                                  t->name, (long long)expect, (long long)p->begin);
            else if (dsc__ck_index_get(&m->findex, p->file) < 0)
                st = dsc__ck_fail(err, errsz, DSC_ERR_INVALID, "tensor '%s': piece file '%s' is not in the file list",
                                  t->name, p->file);
            if (st) break;
            expect = p->end;
            /* (file, key) pairs must be distinct: '/' never occurs in a file name. */
            if (n_owned == cap_owned) {
                size_t cap = cap_owned ? 2 * cap_owned : 64;
                char **o = realloc(owned, cap * sizeof *o);
                if (!o) {
                    st = dsc__ck_fail(err, errsz, DSC_ERR_NOMEM, "out of memory");
                    break;
                }
                owned = o;
                cap_owned = cap;
            }
            char *fk = dsc__ck_asprintf("%s/%s", p->file, p->key);
            if (!fk) {
                st = dsc__ck_fail(err, errsz, DSC_ERR_NOMEM, "out of memory");
                break;
            }
            owned[n_owned++] = fk;
            int rc = dsc__ck_index_put(&keys, fk, i);
            if (rc < 0)
                st = dsc__ck_fail(err, errsz, DSC_ERR_NOMEM, "out of memory");
            else if (rc > 0)
                st = dsc__ck_fail(err, errsz, DSC_ERR_INVALID,
                                  "tensor '%s': key '%s' of file '%s' is used by two pieces", t->name, p->key, p->file);
        }
        if (!st && expect != t->numel)
            st = dsc__ck_fail(err, errsz, DSC_ERR_INVALID, "tensor '%s': elements [%lld, %lld) are in no piece",
                              t->name, (long long)expect, (long long)t->numel);
    }
    dsc__ck_index_free(&keys);
    for (size_t i = 0; i < n_owned; i++) free(owned[i]);
    free(owned);
    return st;
}

static json_t *jhex(uint64_t v) {
    char b[17];
    dsc__ck_hex64(v, b);
    return json_string(b);
}

/* Builds the JSON tree; NULL on allocation failure. */
static json_t *to_tree(const dsc_manifest_t *m) {
    json_t *root = json_object();
    if (!root) return NULL;
    const dsc_manifest_counters_t *c = &m->c;
    bool ok = true;
#define SET(obj, key, val) ok = ok && json_object_set_new(obj, key, val) == 0
    SET(root, "format", json_string(MF_FORMAT));
    SET(root, "version", json_integer(MF_VERSION));
    SET(root, "dsc_version", json_string(DSC_VERSION_STRING));
    SET(root, "global_steps", json_integer(c->global_steps));
    SET(root, "global_samples", json_integer(c->global_samples));
    SET(root, "skipped_steps", json_integer(c->skipped_steps));
    SET(root, "micro_steps", json_integer(c->micro_steps));
    SET(root, "world_size", json_integer(c->world_size));
    SET(root, "zero_stage", json_integer(c->zero_stage));
    json_t *ls = json_object();
    SET(root, "loss_scaler", ls);
    if (ok) {
        SET(ls, "dynamic", json_boolean(c->loss_scaler.dynamic));
        SET(ls, "scale", json_real(c->loss_scaler.scale));
        SET(ls, "iter", json_integer(c->loss_scaler.iter));
        SET(ls, "last_overflow_iter", json_integer(c->loss_scaler.last_overflow_iter));
        SET(ls, "hysteresis", json_integer(c->loss_scaler.hysteresis));
    }
    for (int b = 0; b < DSC_MANIFEST_BLOB_COUNT; b++)
        SET(root, blob_names[b], m->blob[b] ? json_deep_copy(m->blob[b]) : json_null());
    json_t *rng = json_array();
    SET(root, "rng", rng);
    for (int i = 0; ok && i < m->n_rng; i++) {
        json_t *e = json_object();
        ok = e && json_array_append_new(rng, e) == 0;
        SET(e, "rank", json_integer(m->rng[i].rank));
        SET(e, "name", json_string(m->rng[i].name));
        SET(e, "state", jhex(m->rng[i].state));
    }
    SET(root, "config", m->config ? json_string(m->config) : json_null());
    json_t *files = json_array();
    SET(root, "files", files);
    for (int i = 0; ok && i < m->n_f; i++) {
        json_t *e = json_object();
        ok = e && json_array_append_new(files, e) == 0;
        SET(e, "name", json_string(m->f[i].name));
        SET(e, "size", json_integer((json_int_t)m->f[i].size));
        SET(e, "xxh3_64", jhex(m->f[i].xxh3));
    }
    json_t *tensors = json_array();
    SET(root, "tensors", tensors);
    for (int i = 0; ok && i < m->n_t; i++) {
        const mf_tensor_t *t = &m->t[i];
        json_t *e = json_object();
        ok = e && json_array_append_new(tensors, e) == 0;
        SET(e, "name", json_string(t->name));
        SET(e, "kind", json_string(t->kind));
        SET(e, "dtype", json_string(dsc_st_dtype_name(t->dtype)));
        json_t *shape = json_array();
        SET(e, "shape", shape);
        for (int k = 0; ok && k < t->ndim; k++) ok = json_array_append_new(shape, json_integer(t->shape[k])) == 0;
        SET(e, "frozen", json_boolean(t->frozen));
        json_t *al = json_array();
        SET(e, "aliases", al);
        for (int k = 0; ok && k < t->n_aliases; k++) ok = json_array_append_new(al, json_string(t->aliases[k])) == 0;
        json_t *pieces = json_array();
        SET(e, "pieces", pieces);
        for (int k = 0; ok && k < t->n_pieces; k++) {
            const mf_piece_t *p = &t->pieces[k];
            json_t *pe = json_object();
            ok = pe && json_array_append_new(pieces, pe) == 0;
            SET(pe, "file", json_string(p->file));
            SET(pe, "key", json_string(p->key));
            SET(pe, "begin", json_integer(p->begin));
            SET(pe, "end", json_integer(p->end));
        }
    }
#undef SET
    if (!ok) {
        json_decref(root);
        return NULL;
    }
    return root;
}

char *dsc_manifest_to_json(dsc_manifest_t *m, char *err, size_t errsz) {
    char msg[512];
    if (dsc_manifest_validate(m, msg, sizeof msg) != DSC_OK) {
        dsc__ck_fail(err, errsz, DSC_ERR_INVALID, "manifest is incomplete: %s", msg);
        return NULL;
    }
    json_t *root = to_tree(m);
    char *text = root ? json_dumps(root, JSON_INDENT(1)) : NULL;
    json_decref(root);
    if (!text) {
        dsc__ck_fail(err, errsz, DSC_ERR_NOMEM, "out of memory serialising the manifest");
        return NULL;
    }
    return text;
}

dsc_status_t dsc_manifest_write(dsc_manifest_t *m, const char *path, char *err, size_t errsz) {
    if (!m || !path) return dsc__ck_fail(err, errsz, DSC_ERR_INVALID, "dsc_manifest_write: NULL argument");
    char msg[512];
    char *text = dsc_manifest_to_json(m, msg, sizeof msg);
    if (!text) return dsc__ck_fail(err, errsz, DSC_ERR_INVALID, "cannot write manifest '%s': %s", path, msg);
    size_t n = strlen(text);
    text[n] = '\n'; /* replace the NUL: the file ends with a newline */
    dsc_status_t st = dsc_write_file_atomic(path, text, n + 1, err, errsz);
    free(text);
    return st;
}

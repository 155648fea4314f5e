/* Streaming consolidation of a checkpoint's range pieces into one full safetensors file
 * (the engine of `dsc zero-to-fp32`): tensors are declared up front, then copied one at a
 * time through a single chunk buffer, so memory is bounded by opts->chunk_bytes however
 * large the model. The Hugging Face GPT-2 layout (consolidate_hf.c says which tensors)
 * transposes some 2-D weights on the way, a band of output rows at a time. */
#define _GNU_SOURCE /* realpath */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt/ckpt_internal.h"

static bool selected(const dsc_manifest_tensor_t *t, const dsc_ckpt_consolidate_options_t *o) {
    if (o->kind && strcmp(o->kind, t->kind) != 0) return false;
    if (t->frozen && !o->include_frozen) return false;
    return true;
}

/* dst[j][i] = src[i][j] for src [rows, cols] of elements of es bytes, in 32 x 32 tiles. */
#define TRANSPOSE_TILED(T)                                                                                             \
    do {                                                                                                               \
        const T *s_ = src;                                                                                             \
        T *d_ = dst;                                                                                                   \
        for (int64_t i0 = 0; i0 < rows; i0 += 32)                                                                      \
            for (int64_t j0 = 0; j0 < cols; j0 += 32)                                                                  \
                for (int64_t i = i0; i < rows && i < i0 + 32; i++)                                                     \
                    for (int64_t j = j0; j < cols && j < j0 + 32; j++) d_[j * rows + i] = s_[i * cols + j];            \
    } while (0)

static void transpose(void *dst, const void *src, int64_t rows, int64_t cols, size_t es) {
    if (es == 4)
        TRANSPOSE_TILED(uint32_t);
    else if (es == 2)
        TRANSPOSE_TILED(uint16_t);
    else if (es == 8)
        TRANSPOSE_TILED(uint64_t);
    else
        for (int64_t i = 0; i < rows; i++)
            for (int64_t j = 0; j < cols; j++)
                memcpy((unsigned char *)dst + (size_t)(j * rows + i) * es,
                       (const unsigned char *)src + (size_t)(i * cols + j) * es, es);
}

/* Writes the [rows, cols] tensor t transposed ([cols, rows]) as dtype dt. Output rows
 * [j0, j1) are column band [j0, j1) of the input: `rows` reads of j1 - j0 elements into
 * `band` (rows x w), regrouped into `out` (w x rows) and written. One read when the band
 * is the whole tensor. The two halves of `buf` (chunk_bytes) hold them, or two mallocs of
 * one output row each when a row is larger than half the chunk. */
static dsc_status_t write_transposed(dsc_ckpt_t *c, dsc_st_writer_t *w, const dsc_manifest_tensor_t *t, dsc_dtype_t dt,
                                     unsigned char *buf, size_t chunk_bytes, char *err, size_t errsz) {
    const int64_t rows = t->shape[0], cols = t->shape[1];
    if (rows == 0 || cols == 0) return DSC_OK;
    const size_t es = dsc_dtype_size(dt), row_bytes = (size_t)rows * es;
    int64_t width = (int64_t)(chunk_bytes / 2 / row_bytes);
    if (width < 1) width = 1;
    if (width > cols) width = cols;
    /* The two halves of the chunk buffer, unless one output row does not fit in half of it. */
    const bool own = 2 * row_bytes > chunk_bytes;
    unsigned char *band = own ? malloc(row_bytes) : buf,
                  *out = own ? malloc(row_bytes) : buf + (size_t)width * row_bytes;
    dsc_status_t st = DSC_OK;
    if (!band || !out)
        st = dsc__ck_fail(err, errsz, DSC_ERR_NOMEM, "consolidate: out of memory transposing '%s' (%lld x %lld)",
                          t->name, (long long)rows, (long long)cols);
    for (int64_t j0 = 0; j0 < cols && !st; j0 += width) {
        const int64_t wd = cols - j0 < width ? cols - j0 : width;
        if (wd == cols) {
            st = dsc_ckpt_read(c, t->name, 0, rows * cols, band, dt, err, errsz);
        } else {
            for (int64_t i = 0; i < rows && !st; i++)
                st = dsc_ckpt_read(c, t->name, i * cols + j0, i * cols + j0 + wd, band + (size_t)(i * wd) * es, dt, err,
                                   errsz);
        }
        if (!st) transpose(out, band, rows, wd, es);
        if (!st) st = dsc_st_write(w, out, dt, (size_t)(wd * rows), err, errsz);
    }
    if (own) {
        free(band);
        free(out);
    }
    return st;
}

/* `path` with symbolic links resolved in its directory (the file itself may not exist),
 * malloc'ed; NULL when the directory does not resolve. */
static char *resolved_destination(const char *path) {
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    if (!*base || !strcmp(base, ".") || !strcmp(base, "..")) return realpath(path, NULL);
    char *dir = slash ? dsc__ck_asprintf("%.*s", (int)(slash == path ? 1 : slash - path), path) : dsc__ck_strdup(".");
    char *rdir = dir ? realpath(dir, NULL) : NULL;
    free(dir);
    char *out = rdir ? dsc__ck_asprintf("%s%s%s", rdir, strcmp(rdir, "/") ? "/" : "", base) : NULL;
    free(rdir);
    return out;
}

/* True when `p` is `root` or lies below it (both resolved). */
static bool path_within(const char *p, const char *root) {
    size_t n = strlen(root);
    return strncmp(p, root, n) == 0 && (p[n] == '\0' || p[n] == '/' || (n == 1 && root[0] == '/'));
}

dsc_status_t dsc_ckpt_check_output_path(const dsc_ckpt_t *c, const char *path, char *err, size_t errsz) {
    if (!c || !path || !*path) return dsc__ck_fail(err, errsz, DSC_ERR_INVALID, "dsc_ckpt_check_output_path: bad argument");
    char *root = realpath(dsc_ckpt_dir(c), NULL);
    char *parent_in = root ? dsc__ck_asprintf("%s/..", root) : NULL;
    char *parent = parent_in ? realpath(parent_in, NULL) : NULL;
    char *latest = parent ? dsc__ck_asprintf("%s%s%s", parent, strcmp(parent, "/") ? "/" : "", DSC_CKPT_LATEST_NAME)
                          : NULL;
    /* The destination as named (its directory resolved), and the file it leads to if any. */
    char *cand[2] = {resolved_destination(path), realpath(path, NULL)};
    dsc_status_t st = DSC_OK;
    if (!root || !latest)
        st = dsc__ck_fail(err, errsz, DSC_ERR_IO, "cannot resolve the path of checkpoint '%s'", dsc_ckpt_dir(c));
    for (int i = 0; i < 2 && !st; i++) {
        if (!cand[i]) continue;
        if (path_within(cand[i], root))
            st = dsc__ck_fail(err, errsz, DSC_ERR_INVALID,
                              "refusing to write '%s': it is inside checkpoint '%s' (%s), which is being read; "
                              "write the output outside the checkpoint",
                              path, dsc_ckpt_dir(c), cand[i]);
        else if (strcmp(cand[i], latest) == 0)
            st = dsc__ck_fail(err, errsz, DSC_ERR_INVALID,
                              "refusing to write '%s': it is the '%s' file of the save directory of checkpoint '%s' "
                              "(%s); write the output elsewhere",
                              path, DSC_CKPT_LATEST_NAME, dsc_ckpt_dir(c), cand[i]);
    }
    free(cand[0]);
    free(cand[1]);
    free(root);
    free(parent_in);
    free(parent);
    free(latest);
    return st;
}

dsc_status_t dsc_ckpt_consolidate_layout(dsc_ckpt_t *c, const char *out_path,
                                         const dsc_ckpt_consolidate_options_t *opts, dsc_ckpt_layout_t layout,
                                         dsc_st_file_info_t *info, char *err, size_t errsz) {
    if (!c || !out_path) return dsc__ck_fail(err, errsz, DSC_ERR_INVALID, "dsc_ckpt_consolidate: NULL argument");
    dsc_status_t refused = dsc_ckpt_check_output_path(c, out_path, err, errsz);
    if (refused) return refused;
    dsc_ckpt_consolidate_options_t o = DSC_CKPT_CONSOLIDATE_OPTIONS_INIT;
    if (opts) o = *opts;
    if (o.dtype != DSC_DTYPE_COUNT && !dsc_st_dtype_name(o.dtype))
        return dsc__ck_fail(err, errsz, DSC_ERR_INVALID, "consolidate: invalid output dtype %d", (int)o.dtype);
    const bool hf = layout == DSC_CKPT_LAYOUT_HF_GPT2;
    if (!hf && layout != DSC_CKPT_LAYOUT_STORED)
        return dsc__ck_fail(err, errsz, DSC_ERR_INVALID, "consolidate: invalid layout %d", (int)layout);
    if (hf && !o.include_frozen)
        return dsc__ck_fail(err, errsz, DSC_ERR_INVALID,
                            "consolidate: the Hugging Face GPT-2 layout needs every parameter, frozen ones included");
    if (hf) {
        dsc_status_t st = dsc_ckpt_gpt2_shape(c, o.kind, NULL, err, errsz);
        if (st) return st;
        o.write_aliases = false; /* transformers ties lm_head.weight to wte.weight itself */
    }
    size_t chunk_bytes = o.chunk_bytes ? o.chunk_bytes : ((size_t)8 << 20);
    if (chunk_bytes < 8) chunk_bytes = 8;
    const dsc_manifest_t *m = dsc_ckpt_manifest(c);
    dsc_st_writer_t *w;
    dsc_status_t st = dsc_st_writer_open(out_path, o.writer_flags, &w, err, errsz);
    if (st) return st;
    st = dsc_st_writer_set_metadata(w, "format", "pt", err, errsz);
    int n = dsc_manifest_tensor_count(m), n_selected = 0;
    /* Pass 1: declare every output tensor (aliases as their own copies when asked). */
    for (int i = 0; i < n && !st; i++) {
        dsc_manifest_tensor_t t;
        dsc_manifest_tensor_at(m, i, &t);
        if (!selected(&t, &o)) continue;
        n_selected++;
        dsc_dtype_t dt = o.dtype == DSC_DTYPE_COUNT ? t.dtype : o.dtype;
        if (hf && dsc_ckpt_hf_gpt2_is_conv1d(t.name)) {
            const int64_t shape[2] = {t.shape[1], t.shape[0]};
            st = dsc_st_writer_declare(w, t.name, dt, 2, shape, err, errsz);
            continue;
        }
        st = dsc_st_writer_declare(w, t.name, dt, t.ndim, t.shape, err, errsz);
        for (int k = 0; !st && o.write_aliases && k < t.n_aliases; k++)
            st = dsc_st_writer_declare(w, t.aliases[k], dt, t.ndim, t.shape, err, errsz);
    }
    if (!st && n_selected == 0)
        st = dsc__ck_fail(err, errsz, DSC_ERR_INVALID, "consolidate: no tensor of checkpoint '%s' matches (kind %s)",
                          dsc_ckpt_dir(c), o.kind ? o.kind : "any");
    unsigned char *buf = st ? NULL : malloc(chunk_bytes);
    if (!st && !buf) st = dsc__ck_fail(err, errsz, DSC_ERR_NOMEM, "consolidate: out of memory");
    /* Pass 2: copy, in the declaration order. */
    for (int i = 0; i < n && !st; i++) {
        dsc_manifest_tensor_t t;
        dsc_manifest_tensor_at(m, i, &t);
        if (!selected(&t, &o)) continue;
        dsc_dtype_t dt = o.dtype == DSC_DTYPE_COUNT ? t.dtype : o.dtype;
        if (hf && dsc_ckpt_hf_gpt2_is_conv1d(t.name)) {
            st = write_transposed(c, w, &t, dt, buf, chunk_bytes, err, errsz);
            continue;
        }
        int64_t per = (int64_t)(chunk_bytes / dsc_dtype_size(dt));
        int copies = 1 + (o.write_aliases ? t.n_aliases : 0);
        for (int copy = 0; copy < copies && !st; copy++)
            for (int64_t b = 0; b < t.numel && !st; b += per) {
                int64_t e = t.numel - b < per ? t.numel : b + per;
                st = dsc_ckpt_read(c, t.name, b, e, buf, dt, err, errsz);
                if (!st) st = dsc_st_write(w, buf, dt, (size_t)(e - b), err, errsz);
            }
    }
    free(buf);
    if (st) {
        dsc_st_writer_abort(w);
        return st;
    }
    return dsc_st_writer_close(w, info, err, errsz);
}

dsc_status_t dsc_ckpt_consolidate(dsc_ckpt_t *c, const char *out_path, const dsc_ckpt_consolidate_options_t *opts,
                                  dsc_st_file_info_t *info, char *err, size_t errsz) {
    return dsc_ckpt_consolidate_layout(c, out_path, opts, DSC_CKPT_LAYOUT_STORED, info, err, errsz);
}

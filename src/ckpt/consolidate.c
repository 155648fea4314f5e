/* Streaming consolidation of a checkpoint's range pieces into one full safetensors file
 * (the engine of `dsc zero-to-fp32`): tensors are declared up front, then copied one at a
 * time through a single chunk buffer, so memory is bounded by opts->chunk_bytes however
 * large the model. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt/ckpt_internal.h"

static bool selected(const dsc_manifest_tensor_t *t, const dsc_ckpt_consolidate_options_t *o) {
    if (o->kind && strcmp(o->kind, t->kind) != 0) return false;
    if (t->frozen && !o->include_frozen) return false;
    return true;
}

dsc_status_t dsc_ckpt_consolidate(dsc_ckpt_t *c, const char *out_path, const dsc_ckpt_consolidate_options_t *opts,
                                  dsc_st_file_info_t *info, char *err, size_t errsz) {
    if (!c || !out_path) return dsc__ck_fail(err, errsz, DSC_ERR_INVALID, "dsc_ckpt_consolidate: NULL argument");
    dsc_ckpt_consolidate_options_t o = DSC_CKPT_CONSOLIDATE_OPTIONS_INIT;
    if (opts) o = *opts;
    if (o.dtype != DSC_DTYPE_COUNT && !dsc_st_dtype_name(o.dtype))
        return dsc__ck_fail(err, errsz, DSC_ERR_INVALID, "consolidate: invalid output dtype %d", (int)o.dtype);
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

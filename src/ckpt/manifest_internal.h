/* The manifest's in-memory form, shared by manifest.c (build, query, validate, serialise)
 * and manifest_parse.c (strict parsing). */
#ifndef DSC_CKPT_MANIFEST_INTERNAL_H
#define DSC_CKPT_MANIFEST_INTERNAL_H

#include <jansson.h>

#include "ckpt/ckpt_internal.h"

#define MF_FORMAT "dsc-checkpoint"
#define MF_VERSION 1

typedef struct mf_piece {
    char *file;
    char *key;
    int64_t begin, end;
} mf_piece_t;

typedef struct mf_tensor {
    char *name;
    char *kind;
    dsc_dtype_t dtype;
    int ndim;
    int64_t shape[DSC_ST_MAX_DIMS];
    int64_t numel;
    bool frozen;
    char **aliases;
    int n_aliases;
    mf_piece_t *pieces;
    int n_pieces, cap_pieces;
} mf_tensor_t;

typedef struct mf_file {
    char *name;
    uint64_t size, xxh3;
} mf_file_t;

typedef struct mf_rng {
    int rank;
    char *name;
    uint64_t state;
} mf_rng_t;

struct dsc_manifest {
    dsc_manifest_counters_t c;
    char *config;
    json_t *blob[DSC_MANIFEST_BLOB_COUNT];
    char *blob_text[DSC_MANIFEST_BLOB_COUNT];
    mf_rng_t *rng;
    int n_rng, cap_rng;
    mf_tensor_t *t;
    int n_t, cap_t;
    dsc__ck_index_t tindex; /* names and aliases -> tensor index */
    mf_file_t *f;
    int n_f, cap_f;
    dsc__ck_index_t findex;
};

/* Checks of single values shared by the builder and the parser; each returns NULL when
 * fine, else a static reason. */
const char *dsc__mf_check_file_name(const char *name);
const char *dsc__mf_check_counters(const dsc_manifest_counters_t *c);
/* Stores a blob (takes the reference). */
dsc_status_t dsc__mf_set_blob_json(dsc_manifest_t *m, dsc_manifest_blob_t which, json_t *j);

#endif

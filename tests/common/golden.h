/* Reader for the PyTorch golden files in tests/golden/ (written by tools/gen_golden_*.py).
 *
 * Format, version 1 (all integers little-endian; the same text is in tools/gen_golden_ops.py):
 *
 *     magic     8 bytes  "DSCGOLD1"
 *     version   u32      1
 *     count     u32      number of records
 *     count records, each:
 *       name_len  u32      1..255
 *       name      name_len bytes, printable ASCII, no NUL; unique within the file
 *       dtype     u32      0 = float32, 1 = int32, 2 = float64
 *       ndim      u32      1..4
 *       shape     ndim x i64, each >= 0
 *       data      prod(shape) elements of dtype, row-major, little-endian
 *     nothing after the last record
 *
 * Names group records: "<case>/<field>" (e.g. "matmul.nt/dx1", "b4t32/grad/wte.weight").
 *
 * The reader checks every length against the bytes that remain before reading it, so a
 * truncated or corrupted file gives DSC_ERR_CORRUPT with a message naming the offset and
 * the record, never a crash or an over-read. Data is copied into aligned buffers owned by
 * the golden_file_t. (This reader assumes a little-endian host, as dsc does.)
 *
 * Comparison bound used by the golden tests: element i passes when
 *     |got_i - want_i| <= GOLDEN_REL_TOL * max(|got_i|, |want_i|, GOLDEN_FLOOR_FRAC * max_j |want_j|)
 * i.e. 1e-5 relative, with an absolute floor of 1e-6 of the array's largest magnitude for
 * elements that are small only because of cancellation. f32 resolves 6e-8 relative, so the
 * floor is ~16 ulps of the array's largest element: a correct f32 implementation meets it
 * (the generators check that PyTorch's own f32 computation does) while any formula error
 * (wrong scale, sign, missing term, wrong axis) gives errors of order 1.
 */
#ifndef DSC_TEST_GOLDEN_H
#define DSC_TEST_GOLDEN_H

#include <stddef.h>
#include <stdint.h>

#include "dsc/status.h"

#define GOLDEN_MAGIC "DSCGOLD1"
#define GOLDEN_VERSION 1u
#define GOLDEN_MAX_DIMS 4
#define GOLDEN_MAX_NAME 255
#define GOLDEN_REL_TOL 1e-5
#define GOLDEN_FLOOR_FRAC 1e-1 /* keep in sync with FLOOR_FRAC in tools/gen_golden_ops.py */

typedef enum golden_dtype {
    GOLDEN_F32 = 0,
    GOLDEN_I32 = 1,
    GOLDEN_F64 = 2,
} golden_dtype_t;

typedef struct golden_array {
    char name[GOLDEN_MAX_NAME + 1];
    golden_dtype_t dtype;
    int ndim;
    int64_t shape[GOLDEN_MAX_DIMS];
    int64_t numel;
    void *data; /* numel elements of dtype (float, int32_t or double) */
} golden_array_t;

typedef struct golden_file {
    int count;
    golden_array_t *arrays; /* in file order */
} golden_file_t;

/* Parses `len` bytes at `buf`. On success *out owns a new golden_file_t (golden_free).
 * Errors: DSC_ERR_CORRUPT (malformed or truncated: message in err), DSC_ERR_NOMEM,
 * DSC_ERR_INVALID (NULL arguments). `err` may be NULL. */
dsc_status_t golden_parse(const void *buf, size_t len, golden_file_t **out, char *err, size_t err_size);
/* Reads and parses the file at `path`; DSC_ERR_IO when it cannot be read. */
dsc_status_t golden_load(const char *path, golden_file_t **out, char *err, size_t err_size);
void golden_free(golden_file_t *file);

/* The record named `name`, or NULL. The f-form formats the name printf-style. */
const golden_array_t *golden_find(const golden_file_t *file, const char *name);
const golden_array_t *golden_findf(const golden_file_t *file, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Typed access: the data pointer when the record's dtype matches, else NULL. */
const float *golden_f32(const golden_array_t *a);
const int32_t *golden_i32(const golden_array_t *a);
const double *golden_f64(const golden_array_t *a);
/* Static name of a dtype ("f32", "i32", "f64", "?"). */
const char *golden_dtype_name(golden_dtype_t dtype);

/* The comparison bound above: returns the worst error |got - want| / max(|got|, |want|,
 * floor_frac * max|want|) over the n elements (0 when all are equal, NaN matches only NaN,
 * infinities must match exactly, the floor uses finite values only); *worst_index
 * (may be NULL) receives where it occurs. */
double golden_worst_rel_err(const float *got, const float *want, size_t n, double floor_frac, size_t *worst_index);

#endif

/* Helper of tests/interop/check_safetensors.py.
 *   st_interop_helper write <dir>   writes <dir>/interop_main.safetensors and
 *                                   <dir>/interop_bf16.safetensors (values below, which the
 *                                   Python side recomputes)
 *   st_interop_helper read <file>   prints every tensor of a file (any writer) as
 *                                   "name dtype [shape] v0 v1 ..." with %.17g values and
 *                                   the metadata as "meta key value" lines
 * Exit status 0 on success, 1 with the error on stderr. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dsc/ckpt.h"

static char err[1024];

#define TRY(call)                                                                                                      \
    do {                                                                                                               \
        if ((call) != DSC_OK) {                                                                                        \
            fprintf(stderr, "st_interop_helper: %s\n", err);                                                           \
            return 1;                                                                                                  \
        }                                                                                                              \
    } while (0)

static int write_tensor(dsc_st_writer_t *w, dsc_dtype_t dtype, int64_t n, double (*f)(int64_t)) {
    double *v = malloc((size_t)(n + 1) * sizeof *v);
    for (int64_t i = 0; i < n; i++) v[i] = f(i);
    dsc_status_t st = dsc_st_write(w, v, DSC_F64, (size_t)n, err, sizeof err);
    free(v);
    return st == DSC_OK ? 0 : 1;
}

static double f_f32(int64_t i) { return (double)i * 0.5 - 10.0; }
static double f_f16(int64_t i) { return (double)(i % 50) * 0.25 - 3.0; }
static double f_i32(int64_t i) { return (double)(i * i - 50); }
static double f_f64(int64_t i) { return (double)i / 3.0; }
static double f_scalar(int64_t i) { return 3.5 + (double)i; }
static double f_range(int64_t i) { return (double)(10 + i); }
static double f_bf16(int64_t i) { return (double)(i - 12) * 0.5; }
static double f_f32b(int64_t i) { return (double)(i + 1); }

static int do_write(const char *dir) {
    char path[4096];
    dsc_st_writer_t *w;
    snprintf(path, sizeof path, "%s/interop_main.safetensors", dir);
    TRY(dsc_st_writer_open(path, 0, &w, err, sizeof err));
    int64_t s357[3] = {3, 5, 7}, s73[2] = {7, 3}, s11[1] = {11}, s23[2] = {2, 3}, s04[2] = {0, 4};
    TRY(dsc_st_writer_set_metadata(w, "format", "pt", err, sizeof err));
    TRY(dsc_st_writer_set_metadata(w, "producer", "dsc", err, sizeof err));
    TRY(dsc_st_writer_declare(w, "f32", DSC_F32, 3, s357, err, sizeof err));
    TRY(dsc_st_writer_declare(w, "f16", DSC_F16, 2, s73, err, sizeof err));
    TRY(dsc_st_writer_declare(w, "i32", DSC_I32, 1, s11, err, sizeof err));
    TRY(dsc_st_writer_declare(w, "f64", DSC_F64, 2, s23, err, sizeof err));
    TRY(dsc_st_writer_declare(w, "scalar", DSC_F32, 0, NULL, err, sizeof err));
    TRY(dsc_st_writer_declare(w, "empty", DSC_F32, 2, s04, err, sizeof err));
    TRY(dsc_st_writer_declare_range(w, "w", DSC_F32, 10, 14, err, sizeof err));
    if (write_tensor(w, DSC_F32, 105, f_f32) || write_tensor(w, DSC_F16, 21, f_f16) ||
        write_tensor(w, DSC_I32, 11, f_i32) || write_tensor(w, DSC_F64, 6, f_f64) ||
        write_tensor(w, DSC_F32, 1, f_scalar) || write_tensor(w, DSC_F32, 4, f_range)) {
        fprintf(stderr, "st_interop_helper: %s\n", err);
        dsc_st_writer_abort(w);
        return 1;
    }
    TRY(dsc_st_writer_close(w, NULL, err, sizeof err));
    snprintf(path, sizeof path, "%s/interop_bf16.safetensors", dir);
    TRY(dsc_st_writer_open(path, 0, &w, err, sizeof err));
    int64_t s46[2] = {4, 6}, s2[1] = {2};
    TRY(dsc_st_writer_declare(w, "bf16", DSC_BF16, 2, s46, err, sizeof err));
    TRY(dsc_st_writer_declare(w, "f32b", DSC_F32, 1, s2, err, sizeof err));
    if (write_tensor(w, DSC_BF16, 24, f_bf16) || write_tensor(w, DSC_F32, 2, f_f32b)) {
        fprintf(stderr, "st_interop_helper: %s\n", err);
        dsc_st_writer_abort(w);
        return 1;
    }
    TRY(dsc_st_writer_close(w, NULL, err, sizeof err));
    return 0;
}

static int do_read(const char *path) {
    dsc_st_reader_t *r;
    TRY(dsc_st_reader_open(path, &r, err, sizeof err));
    for (int i = 0; i < dsc_st_reader_metadata_count(r); i++) {
        const char *k, *v;
        dsc_st_reader_metadata_at(r, i, &k, &v);
        printf("meta %s %s\n", k, v);
    }
    for (int i = 0; i < dsc_st_reader_count(r); i++) {
        dsc_st_tensor_info_t info;
        dsc_st_reader_info(r, i, &info);
        printf("%s %s [", info.name, info.dtype_name);
        for (int d = 0; d < info.ndim; d++) printf("%s%lld", d ? "," : "", (long long)info.shape[d]);
        printf("]");
        double *v = malloc((size_t)(info.numel + 1) * sizeof *v);
        if (dsc_st_read(r, i, 0, info.numel, v, DSC_F64, err, sizeof err) != DSC_OK) {
            fprintf(stderr, "st_interop_helper: %s\n", err);
            free(v);
            dsc_st_reader_close(r);
            return 1;
        }
        for (int64_t k = 0; k < info.numel; k++) printf(" %.17g", v[k]);
        printf("\n");
        free(v);
    }
    dsc_st_reader_close(r);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "write") == 0) return do_write(argv[2]);
    if (argc == 3 && strcmp(argv[1], "read") == 0) return do_read(argv[2]);
    fprintf(stderr, "usage: st_interop_helper write <dir> | read <file>\n");
    return 2;
}

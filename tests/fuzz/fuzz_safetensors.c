/* libFuzzer target for the safetensors reader: the input is a whole file, served from a
 * memory file (memfd). Every accepted file is then read back completely: each tensor raw,
 * converted to f32 and f64 where its dtype allows, and in two sub-ranges, checking that
 * the converted values agree with a conversion of the raw bytes. No input may crash, leak
 * or trigger UB; a rejected input must leave a message naming the file. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "dsc/ckpt.h"

static int memfd = -1;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (memfd < 0) memfd = memfd_create("fuzz_safetensors", MFD_CLOEXEC);
    if (memfd < 0) abort();
    if (ftruncate(memfd, 0) != 0 || pwrite(memfd, data, size, 0) != (ssize_t)size) abort();
    char err[512] = "";
    dsc_st_reader_t *r = NULL;
    dsc_status_t st = dsc_st_reader_open_fd(memfd, "fuzz.safetensors", &r, err, sizeof err);
    if (st != DSC_OK) {
        if (r != NULL || strstr(err, "fuzz.safetensors") == NULL) abort();
        return 0;
    }
    for (int i = 0; i < dsc_st_reader_count(r); i++) {
        dsc_st_tensor_info_t info;
        if (dsc_st_reader_info(r, i, &info) != DSC_OK) abort();
        if (dsc_st_reader_find(r, info.name) != i) abort();
        /* The layout check guarantees the data lies inside the (small) input. */
        if (info.file_offset + info.nbytes > size || info.nbytes != (uint64_t)info.numel * info.elem_size) abort();
        unsigned char *raw = malloc(info.nbytes + 1);
        float *f = malloc((size_t)info.numel * sizeof *f + 1);
        double *d = malloc((size_t)info.numel * sizeof *d + 1);
        if (dsc_st_read_raw(r, i, 0, info.numel, raw, err, sizeof err) != DSC_OK) abort();
        if (memcmp(raw, data + info.file_offset, info.nbytes) != 0) abort();
        if (info.dtype != DSC_DTYPE_COUNT) {
            if (dsc_st_read(r, i, 0, info.numel, f, DSC_F32, err, sizeof err) != DSC_OK) abort();
            if (dsc_st_read(r, i, 0, info.numel, d, DSC_F64, err, sizeof err) != DSC_OK) abort();
            float *g = malloc((size_t)info.numel * sizeof *g + 1);
            dsc_convert(g, DSC_F32, raw, info.dtype, (size_t)info.numel);
            if (memcmp(f, g, (size_t)info.numel * sizeof *g) != 0) abort();
            free(g);
            int64_t h = info.numel / 2;
            if (dsc_st_read(r, i, h, info.numel - h, f, DSC_BF16, err, sizeof err) != DSC_OK) abort();
            if (dsc_st_read(r, i, 0, h, d, DSC_I32, err, sizeof err) != DSC_OK) abort();
        } else if (info.numel > 0 && dsc_st_read(r, i, 0, 1, f, DSC_F32, err, sizeof err) != DSC_ERR_UNSUPPORTED) {
            abort();
        }
        if (dsc_st_read(r, i, info.numel, 1, f, DSC_F32, err, sizeof err) != DSC_ERR_INVALID) abort();
        free(raw);
        free(f);
        free(d);
    }
    for (int i = 0; i < dsc_st_reader_metadata_count(r); i++) {
        const char *k, *v;
        if (dsc_st_reader_metadata_at(r, i, &k, &v) != DSC_OK || !k || !v) abort();
    }
    dsc_st_reader_close(r);
    return 0;
}

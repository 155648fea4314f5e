/* The runtime entries of cuda_kernels.h for the CPU emulator build (DSC_CUDA_EMU): device
 * memory is host memory, streams and events are tokens, every call completes at once. gemm
 * is not emulated (it is cuBLASLt's): it refuses with cudaErrorInvalidValue. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/cuda/cuda_common.cuh"

static char dsc_emu_token;

extern "C" int dsc_cuda_device_count(void) { return 1; }
extern "C" const char *dsc_cuda_error_string(int code) { return code ? "emulated error" : "no error"; }
extern "C" int dsc_cuda_set_device(int ordinal) { return ordinal == 0 ? 0 : 1; }
extern "C" int dsc_cuda_device_info(int ordinal, dsc_cuda_device_info_t *out) {
    if (!out || ordinal != 0) return 1;
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "CPU emulator of the CUDA kernels (no GPU)");
    out->cc_major = 9;
    out->sm_count = 1;
    return 0;
}
extern "C" int dsc_cuda_malloc(void **ptr, size_t bytes) {
    *ptr = malloc(bytes ? bytes : 1);
    return *ptr ? 0 : 2;
}
extern "C" int dsc_cuda_free(void *ptr) {
    free(ptr);
    return 0;
}
extern "C" int dsc_cuda_malloc_host(void **ptr, size_t bytes) { return dsc_cuda_malloc(ptr, bytes); }
extern "C" int dsc_cuda_free_host(void *ptr) { return dsc_cuda_free(ptr); }
extern "C" int dsc_cuda_memset_async(void *dst, int value, size_t bytes, void *) {
    memset(dst, value, bytes);
    return 0;
}
extern "C" int dsc_cuda_copy_h2d_async(void *dst, const void *src, size_t bytes, void *) {
    memmove(dst, src, bytes);
    return 0;
}
extern "C" int dsc_cuda_copy_d2h_async(void *dst, const void *src, size_t bytes, void *) {
    memmove(dst, src, bytes);
    return 0;
}
extern "C" int dsc_cuda_copy_d2d_async(void *dst, const void *src, size_t bytes, void *) {
    memmove(dst, src, bytes);
    return 0;
}
extern "C" int dsc_cuda_stream_create(void **stream) {
    *stream = &dsc_emu_token;
    return 0;
}
extern "C" int dsc_cuda_stream_destroy(void *) { return 0; }
extern "C" int dsc_cuda_stream_sync(void *) { return 0; }
extern "C" int dsc_cuda_device_sync(void) { return 0; }
extern "C" int dsc_cuda_event_create(void **event) {
    *event = &dsc_emu_token;
    return 0;
}
extern "C" int dsc_cuda_event_destroy(void *) { return 0; }
extern "C" int dsc_cuda_event_record(void *, void *) { return 0; }
extern "C" int dsc_cuda_stream_wait_event(void *, void *) { return 0; }
extern "C" int dsc_cuda_event_sync(void *) { return 0; }
extern "C" int dsc_cuda_event_elapsed_ms(void *, void *, float *ms) {
    *ms = 0;
    return 0;
}

struct dsc_cuda_blas {
    int unused;
};
extern "C" int dsc_cuda_blas_create(dsc_cuda_blas_t **out, size_t) {
    *out = (dsc_cuda_blas_t *)calloc(1, sizeof(dsc_cuda_blas_t));
    return *out ? 0 : 2;
}
extern "C" void dsc_cuda_blas_destroy(dsc_cuda_blas_t *blas) { free(blas); }
extern "C" int dsc_cuda_gemm(dsc_cuda_blas_t *, void *, dsc_dtype_t, bool, bool, int64_t, int64_t, int64_t, double,
                             const void *, int64_t, const void *, int64_t, double, void *, int64_t) {
    return 1;
}
extern "C" int dsc_cuda_gemm_epilogue(dsc_cuda_blas_t *, void *, dsc_dtype_t, bool, bool, int64_t, int64_t, int64_t,
                                      double, const void *, int64_t, const void *, int64_t, void *, int64_t,
                                      dsc_cuda_epilogue_t, const void *, void *, int64_t) {
    return 1;
}

/* The runtime entries of cuda_kernels.h for the CPU emulator build (DSC_CUDA_EMU): device
 * memory is host memory (allocations are remembered, so dsc_cuda_is_device_pointer answers
 * as on a GPU), streams and events are tokens, every call completes at once. cuBLASLt cannot
 * be emulated: dsc_cuda_gemm is the CPU backend's gemm (so on the emulator the engine's
 * matrix products are the CPU's bits); of the epilogue variant, the bias epilogue of the
 * linear layer is the CPU's linear, the others refuse. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <map>
#include <mutex>

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
/* The live "device" allocations: start -> size (test tooling: one table per process). */
static std::map<const char *, size_t> &dsc_emu_allocations() {
    static std::map<const char *, size_t> live;
    return live;
}
static std::mutex dsc_emu_alloc_lock;

extern "C" int dsc_cuda_malloc(void **ptr, size_t bytes) {
    *ptr = malloc(bytes ? bytes : 1);
    if (!*ptr) return 2;
    std::lock_guard<std::mutex> g(dsc_emu_alloc_lock);
    dsc_emu_allocations()[(const char *)*ptr] = bytes ? bytes : 1;
    return 0;
}
extern "C" int dsc_cuda_free(void *ptr) {
    if (!ptr) return 0;
    {
        std::lock_guard<std::mutex> g(dsc_emu_alloc_lock);
        if (!dsc_emu_allocations().erase((const char *)ptr)) return 1; /* not a device allocation */
    }
    free(ptr);
    return 0;
}
extern "C" bool dsc_cuda_is_device_pointer(const void *ptr) {
    const char *p = (const char *)ptr;
    std::lock_guard<std::mutex> g(dsc_emu_alloc_lock);
    auto &live = dsc_emu_allocations();
    auto it = live.upper_bound(p);
    if (it == live.begin()) return false;
    --it;
    return p >= it->first && p < it->first + it->second;
}
extern "C" bool dsc_cuda_is_pinned_host_pointer(const void *) { return false; } /* copies complete at once */
extern "C" int dsc_cuda_malloc_host(void **ptr, size_t bytes) {
    *ptr = malloc(bytes ? bytes : 1);
    return *ptr ? 0 : 2;
}
extern "C" int dsc_cuda_free_host(void *ptr) {
    free(ptr);
    return 0;
}
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
extern "C" int dsc_cuda_event_query(void *, bool *done) {
    *done = true;
    return 0;
}
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
/* src/ops/cpu/cpu_kernels.h (a C header): the CPU backend's gemm. */
extern "C" void dsc_cpu_gemm(dsc_dtype_t dt, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
                             double alpha, const void *a, int64_t lda, const void *b, int64_t ldb, double beta,
                             void *c, int64_t ldc);
extern "C" int dsc_cuda_gemm(dsc_cuda_blas_t *, void *, dsc_dtype_t dt, bool ta, bool tb, int64_t m, int64_t n,
                             int64_t k, double alpha, const void *a, int64_t lda, const void *b, int64_t ldb,
                             double beta, void *c, int64_t ldc) {
    dsc_cpu_gemm(dt, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return 0;
}
/* The CPU backend's linear (src/ops/cpu/cpu_kernels.h): the bias epilogue of the linear
 * layer's form (y = x w^T + bias, dense) is emulated by it, the CPU's bits; the GELU and DGELU
 * epilogues answer as cuBLASLt does when it has no algorithm
 * (DSC_CUDA_BLAS_NOT_SUPPORTED), so the device's fallbacks run here; any other form refuses. */
extern "C" void dsc_cpu_linear(dsc_dtype_t dt, int64_t m, int64_t n, int64_t k, const void *x, const void *w,
                               const void *bias, void *y);
extern "C" int dsc_cuda_gemm_epilogue(dsc_cuda_blas_t *, void *, dsc_dtype_t dt, bool ta, bool tb, int64_t m, int64_t n,
                                      int64_t k, double alpha, const void *a, int64_t lda, const void *b, int64_t ldb,
                                      void *c, int64_t ldc, dsc_cuda_epilogue_t epi, const void *bias, void *pre,
                                      int64_t) {
    if (epi == DSC_CUDA_EPI_DGELU || epi == DSC_CUDA_EPI_BIAS_GELU) return DSC_CUDA_BLAS_NOT_SUPPORTED;
    if (epi != DSC_CUDA_EPI_BIAS || !bias || pre || ta || !tb || alpha != 1.0 || lda != k || ldb != k || ldc != n ||
        dt == DSC_F64)
        return 1;
    dsc_cpu_linear(dt, m, n, k, a, b, bias, c);
    return 0;
}
extern "C" int dsc_cuda_linear_residual(dsc_cuda_blas_t *, void *, dsc_dtype_t, int64_t, int64_t, int64_t,
                                        const void *, const void *, const void *, const void *, void *) {
    return DSC_CUDA_BLAS_NOT_SUPPORTED;
}

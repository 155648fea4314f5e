/* The runtime entries of cuda_kernels.h for the CPU emulator build (DSC_CUDA_EMU): device
 * memory is host memory (allocations are remembered, so dsc_cuda_is_device_pointer answers
 * as on a GPU, and so are page-locked ones), streams are tokens, every call completes at
 * once. A host-to-device copy from page-locked memory is one a GPU's copy engine reads
 * later: its source's bytes are kept until the host is known to have waited for it (an
 * event recorded after it synchronised or found done, a stream or device synchronised), and
 * that wait fails (an emulated error, the source named on stderr) when the source changed
 * before: a staging buffer refilled too early is caught here as on a GPU it would corrupt
 * the device's copy. cuBLASLt cannot
 * be emulated: dsc_cuda_gemm is the CPU backend's gemm (so on the emulator the engine's
 * matrix products are the CPU's bits); of the epilogue variant, the bias epilogue of the
 * linear layer is the CPU's linear, the others refuse. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <map>
#include <mutex>
#include <vector>

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
/* The live page-locked allocations (start -> size) and the pinned-source copies not yet
 * waited for, in issue order (seq: a count of copies; an event remembers the count at its
 * record). */
static std::map<const char *, size_t> &dsc_emu_pinned() {
    static std::map<const char *, size_t> live;
    return live;
}
struct dsc_emu_upload {
    const char *src;
    std::vector<char> bytes;
    unsigned long long seq;
};
static std::vector<dsc_emu_upload> &dsc_emu_uploads() {
    static std::vector<dsc_emu_upload> pending;
    return pending;
}
static unsigned long long dsc_emu_upload_seq;
struct dsc_emu_runtime_event {
    unsigned long long seq;
};

extern "C" bool dsc_cuda_is_pinned_host_pointer(const void *ptr) {
    const char *p = (const char *)ptr;
    std::lock_guard<std::mutex> g(dsc_emu_alloc_lock);
    auto &live = dsc_emu_pinned();
    auto it = live.upper_bound(p);
    if (!p || it == live.begin()) return false;
    --it;
    return p >= it->first && p < it->first + it->second;
}
/* The copies up to seq are done (0: none; every copy call checks so, catching a source
 * changed under a copy that is never waited for): each source must still hold the bytes it
 * was copied with; those copies, and any whose source changed (reported once), are dropped. */
static int dsc_emu_uploads_done(unsigned long long seq) {
    std::lock_guard<std::mutex> g(dsc_emu_alloc_lock);
    auto &pending = dsc_emu_uploads();
    int rc = 0;
    size_t kept = 0;
    for (size_t k = 0; k < pending.size(); k++) {
        const bool changed = memcmp(pending[k].src, pending[k].bytes.data(), pending[k].bytes.size()) != 0;
        if (changed && rc == 0) {
            fprintf(stderr, "cuda emulator: the page-locked source of a host-to-device copy (%zu bytes at %p) "
                    "changed before the host waited for the copy\n", pending[k].bytes.size(), (const void *)pending[k].src);
            rc = 1;
        }
        if (!changed && pending[k].seq > seq) {
            if (kept != k) pending[kept] = std::move(pending[k]);
            kept++;
        }
    }
    pending.resize(kept);
    return rc;
}
extern "C" int dsc_cuda_malloc_host(void **ptr, size_t bytes) {
    *ptr = malloc(bytes ? bytes : 1);
    if (!*ptr) return 2;
    std::lock_guard<std::mutex> g(dsc_emu_alloc_lock);
    dsc_emu_pinned()[(const char *)*ptr] = bytes ? bytes : 1;
    return 0;
}
/* (cudaFreeHost synchronises the device: the copies are waited for) */
extern "C" int dsc_cuda_free_host(void *ptr) {
    if (!ptr) return 0;
    const int rc = dsc_emu_uploads_done(~0ull);
    {
        std::lock_guard<std::mutex> g(dsc_emu_alloc_lock);
        if (!dsc_emu_pinned().erase((const char *)ptr)) return 1; /* not page-locked memory */
    }
    free(ptr);
    return rc;
}
extern "C" int dsc_cuda_memset_async(void *dst, int value, size_t bytes, void *) {
    memset(dst, value, bytes);
    return 0;
}
extern "C" int dsc_cuda_copy_h2d_async(void *dst, const void *src, size_t bytes, void *) {
    if (dsc_emu_uploads_done(0) != 0) return 1;
    memmove(dst, src, bytes);
    if (bytes && dsc_cuda_is_pinned_host_pointer(src)) {
        std::lock_guard<std::mutex> g(dsc_emu_alloc_lock);
        const char *s = (const char *)src;
        dsc_emu_uploads().push_back(dsc_emu_upload{s, std::vector<char>(s, s + bytes), ++dsc_emu_upload_seq});
    }
    return 0;
}
extern "C" int dsc_cuda_copy_d2h_async(void *dst, const void *src, size_t bytes, void *) {
    if (dsc_emu_uploads_done(0) != 0) return 1;
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
/* (streams are not told apart: a synchronised stream counts every copy as waited for, which
 * can miss a wrong wait but never flags a right one) */
extern "C" int dsc_cuda_stream_sync(void *) { return dsc_emu_uploads_done(~0ull); }
extern "C" int dsc_cuda_device_sync(void) { return dsc_emu_uploads_done(~0ull); }
extern "C" int dsc_cuda_event_create(void **event) {
    *event = calloc(1, sizeof(dsc_emu_runtime_event));
    return *event ? 0 : 2;
}
extern "C" int dsc_cuda_event_destroy(void *event) {
    free(event);
    return 0;
}
extern "C" int dsc_cuda_event_record(void *event, void *) {
    std::lock_guard<std::mutex> g(dsc_emu_alloc_lock);
    ((dsc_emu_runtime_event *)event)->seq = dsc_emu_upload_seq;
    return 0;
}
extern "C" int dsc_cuda_stream_wait_event(void *, void *) { return 0; }
static unsigned long long dsc_emu_event_seq(void *event) {
    std::lock_guard<std::mutex> g(dsc_emu_alloc_lock);
    return ((dsc_emu_runtime_event *)event)->seq;
}
extern "C" int dsc_cuda_event_sync(void *event) { return dsc_emu_uploads_done(dsc_emu_event_seq(event)); }
extern "C" int dsc_cuda_event_query(void *event, bool *done) {
    *done = true;
    return dsc_emu_uploads_done(dsc_emu_event_seq(event));
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

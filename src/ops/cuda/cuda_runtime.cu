/* CUDA runtime wrappers (device query, memory, streams, events) and the cuBLASLt gemm.
 *
 * gemm: backend.h's row-major C = alpha op(A) op(B) + beta C is the column-major product
 * C^T = op(B)^T op(A)^T, so cuBLASLt gets B as its first operand and A as its second, with the
 * same transpose flags and the row strides as leading dimensions. f32 uses CUBLAS_COMPUTE_32F
 * (never TF32: the CPU oracle is exact f32); bf16/f16 operands accumulate in f32. The algorithm
 * is cuBLASLt's first heuristic choice with the handle's fixed workspace, which is
 * deterministic for a fixed shape on one GPU. */
#include <cublasLt.h>
#include <stdio.h>
#include <string.h>

#include "ops/cuda/cuda_common.cuh"

extern "C" int dsc_cuda_device_count(void) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        (void)cudaGetLastError();
        return 0;
    }
    return n;
}

extern "C" const char *dsc_cuda_error_string(int code) {
    if (code >= 1000 && code < 2000) return "cuBLAS status (code - 1000)";
    return cudaGetErrorString((cudaError_t)code);
}

extern "C" int dsc_cuda_set_device(int ordinal) { return (int)cudaSetDevice(ordinal); }

extern "C" int dsc_cuda_device_info(int ordinal, dsc_cuda_device_info_t *out) {
    if (!out) return (int)cudaErrorInvalidValue;
    memset(out, 0, sizeof *out);
    cudaDeviceProp p;
    DSC_CUDA_CHECK(cudaGetDeviceProperties(&p, ordinal));
    snprintf(out->name, sizeof out->name, "%s", p.name);
    out->ordinal = ordinal;
    out->cc_major = p.major;
    out->cc_minor = p.minor;
    out->sm_count = p.multiProcessorCount;
    out->total_mem = p.totalGlobalMem;
    out->l2_bytes = (size_t)p.l2CacheSize;
    out->smem_per_block_optin = p.sharedMemPerBlockOptin;
    int prev = 0;
    DSC_CUDA_CHECK(cudaGetDevice(&prev));
    DSC_CUDA_CHECK(cudaSetDevice(ordinal));
    size_t free_b = 0, total_b = 0;
    DSC_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
    DSC_CUDA_CHECK(cudaSetDevice(prev));
    out->free_mem = free_b;
    DSC_CUDA_CHECK(cudaDriverGetVersion(&out->driver_version));
    DSC_CUDA_CHECK(cudaRuntimeGetVersion(&out->runtime_version));
    out->cublaslt_version = cublasLtGetVersion();
    int mem_khz = 0, bus_bits = 0;
    cudaDeviceGetAttribute(&mem_khz, cudaDevAttrMemoryClockRate, ordinal);
    cudaDeviceGetAttribute(&bus_bits, cudaDevAttrGlobalMemoryBusWidth, ordinal);
    (void)cudaGetLastError();
    out->mem_bandwidth_gbs = 2.0 * mem_khz * 1e3 * (bus_bits / 8.0) / 1e9;
    return 0;
}

extern "C" int dsc_cuda_malloc(void **ptr, size_t bytes) { return (int)cudaMalloc(ptr, bytes ? bytes : 1); }
extern "C" int dsc_cuda_free(void *ptr) { return (int)cudaFree(ptr); }
extern "C" bool dsc_cuda_is_device_pointer(const void *ptr) {
    cudaPointerAttributes a;
    if (!ptr || cudaPointerGetAttributes(&a, ptr) != cudaSuccess) {
        (void)cudaGetLastError(); /* an unregistered host pointer is not an error to keep */
        return false;
    }
    return a.type == cudaMemoryTypeDevice;
}
extern "C" int dsc_cuda_malloc_host(void **ptr, size_t bytes) { return (int)cudaMallocHost(ptr, bytes ? bytes : 1); }
extern "C" int dsc_cuda_free_host(void *ptr) { return (int)cudaFreeHost(ptr); }
extern "C" int dsc_cuda_memset_async(void *dst, int value, size_t bytes, void *stream) {
    return (int)cudaMemsetAsync(dst, value, bytes, DSC_STREAM(stream));
}
extern "C" int dsc_cuda_copy_h2d_async(void *dst, const void *src, size_t bytes, void *stream) {
    return (int)cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, DSC_STREAM(stream));
}
extern "C" int dsc_cuda_copy_d2h_async(void *dst, const void *src, size_t bytes, void *stream) {
    return (int)cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, DSC_STREAM(stream));
}
extern "C" int dsc_cuda_copy_d2d_async(void *dst, const void *src, size_t bytes, void *stream) {
    return (int)cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, DSC_STREAM(stream));
}
extern "C" int dsc_cuda_stream_create(void **stream) {
    return (int)cudaStreamCreateWithFlags((cudaStream_t *)stream, cudaStreamNonBlocking);
}
extern "C" int dsc_cuda_stream_destroy(void *stream) { return (int)cudaStreamDestroy(DSC_STREAM(stream)); }
extern "C" int dsc_cuda_stream_sync(void *stream) { return (int)cudaStreamSynchronize(DSC_STREAM(stream)); }
extern "C" int dsc_cuda_device_sync(void) { return (int)cudaDeviceSynchronize(); }
extern "C" int dsc_cuda_event_create(void **event) { return (int)cudaEventCreate((cudaEvent_t *)event); }
extern "C" int dsc_cuda_event_destroy(void *event) { return (int)cudaEventDestroy((cudaEvent_t)event); }
extern "C" int dsc_cuda_event_record(void *event, void *stream) {
    return (int)cudaEventRecord((cudaEvent_t)event, DSC_STREAM(stream));
}
extern "C" int dsc_cuda_stream_wait_event(void *stream, void *event) {
    return (int)cudaStreamWaitEvent(DSC_STREAM(stream), (cudaEvent_t)event, 0);
}
extern "C" int dsc_cuda_event_sync(void *event) { return (int)cudaEventSynchronize((cudaEvent_t)event); }
extern "C" int dsc_cuda_event_query(void *event, bool *done) {
    cudaError_t rc = cudaEventQuery((cudaEvent_t)event);
    *done = rc == cudaSuccess;
    if (rc == cudaErrorNotReady) {
        (void)cudaGetLastError();
        return 0;
    }
    return (int)rc;
}
extern "C" int dsc_cuda_event_elapsed_ms(void *start, void *stop, float *ms) {
    return (int)cudaEventElapsedTime(ms, (cudaEvent_t)start, (cudaEvent_t)stop);
}

/* ---- cuBLASLt ------------------------------------------------------------------------- */

struct dsc_cuda_blas {
    cublasLtHandle_t lt;
    void *workspace;
    size_t workspace_bytes;
};

#define BLAS_CHECK(expr)                                      \
    do {                                                      \
        cublasStatus_t b_ = (expr);                           \
        if (b_ != CUBLAS_STATUS_SUCCESS) { rc = 1000 + (int)b_; goto done; } \
    } while (0)

extern "C" int dsc_cuda_blas_create(dsc_cuda_blas_t **out, size_t workspace_bytes) {
    if (!out) return (int)cudaErrorInvalidValue;
    *out = NULL;
    dsc_cuda_blas_t *b = (dsc_cuda_blas_t *)calloc(1, sizeof *b);
    if (!b) return (int)cudaErrorMemoryAllocation;
    cublasStatus_t st = cublasLtCreate(&b->lt);
    if (st != CUBLAS_STATUS_SUCCESS) {
        free(b);
        return 1000 + (int)st;
    }
    b->workspace_bytes = workspace_bytes;
    if (workspace_bytes) {
        cudaError_t e = cudaMalloc(&b->workspace, workspace_bytes);
        if (e != cudaSuccess) {
            cublasLtDestroy(b->lt);
            free(b);
            return (int)e;
        }
    }
    *out = b;
    return 0;
}

extern "C" void dsc_cuda_blas_destroy(dsc_cuda_blas_t *b) {
    if (!b) return;
    if (b->workspace) cudaFree(b->workspace);
    cublasLtDestroy(b->lt);
    free(b);
}

static_assert(DSC_CUDA_BLAS_NOT_SUPPORTED == 1000 + (int)CUBLAS_STATUS_NOT_SUPPORTED, "cuda_kernels.h's code");

static int gemm_lt(dsc_cuda_blas_t *blas, cudaStream_t stream, dsc_dtype_t dt, bool trans_a, bool trans_b, int64_t m,
                   int64_t n, int64_t k, double alpha, const void *a, int64_t lda, const void *b, int64_t ldb,
                   double beta, void *c, int64_t ldc, dsc_cuda_epilogue_t epi, const void *bias, void *pre,
                   int64_t ld_pre, dsc_cuda_gemm_probe_t *probe = NULL, const void *c_in = NULL) {
    /* C (read with beta) is c_in when given (same layout as the output D = c), else c */
    const void *cc = c_in ? c_in : c;
    cudaDataType_t ty;
    cublasComputeType_t ct;
    cudaDataType_t st;
    switch (dt) {
    case DSC_F32: ty = CUDA_R_32F; ct = CUBLAS_COMPUTE_32F; st = CUDA_R_32F; break;
    case DSC_BF16: ty = CUDA_R_16BF; ct = CUBLAS_COMPUTE_32F; st = CUDA_R_32F; break;
    case DSC_F16: ty = CUDA_R_16F; ct = CUBLAS_COMPUTE_32F; st = CUDA_R_32F; break;
    case DSC_F64: ty = CUDA_R_64F; ct = CUBLAS_COMPUTE_64F; st = CUDA_R_64F; break;
    default: return (int)cudaErrorInvalidValue;
    }
    int rc = 0;
    cublasLtMatmulDesc_t op = NULL;
    cublasLtMatrixLayout_t la = NULL, lb = NULL, lc = NULL;
    cublasLtMatmulPreference_t pref = NULL;
    cublasLtMatmulHeuristicResult_t heur;
    int n_res = 0;
    /* column-major view: D[n, m] = op_b(B)[n, k] * op_a(A)[k, m] */
    const cublasOperation_t opa = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N; /* first operand: B */
    const cublasOperation_t opb = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N; /* second operand: A */
    const float alpha_f = (float)alpha, beta_f = (float)beta;
    const void *pa = dt == DSC_F64 ? (const void *)&alpha : (const void *)&alpha_f;
    const void *pb = dt == DSC_F64 ? (const void *)&beta : (const void *)&beta_f;
    BLAS_CHECK(cublasLtMatmulDescCreate(&op, ct, st));
    BLAS_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &opa, sizeof opa));
    BLAS_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &opb, sizeof opb));
    if (epi != DSC_CUDA_EPI_NONE) {
        cublasLtEpilogue_t e = CUBLASLT_EPILOGUE_BIAS;
        if (epi == DSC_CUDA_EPI_BIAS_GELU) e = pre ? CUBLASLT_EPILOGUE_GELU_AUX_BIAS : CUBLASLT_EPILOGUE_GELU_BIAS;
        if (epi == DSC_CUDA_EPI_DGELU) e = CUBLASLT_EPILOGUE_DGELU;
        /* the operands are swapped (column-major view below): our first operand is cuBLASLt's B */
        if (epi == DSC_CUDA_EPI_BGRADB) e = CUBLASLT_EPILOGUE_BGRADB;
        BLAS_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE, &e, sizeof e));
        if (bias) {
            BLAS_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias));
            cudaDataType_t bt = ty;
            BLAS_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bt, sizeof bt));
        }
        if (pre) {
            const int64_t ldp = ld_pre;
            BLAS_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &pre, sizeof pre));
            BLAS_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &ldp, sizeof ldp));
        }
    }
    /* first operand B: stored [K, N] row-major = [N, K] column-major (ld ldb) when !trans_b */
    BLAS_CHECK(cublasLtMatrixLayoutCreate(&la, ty, trans_b ? (uint64_t)k : (uint64_t)n, trans_b ? (uint64_t)n : (uint64_t)k, ldb));
    BLAS_CHECK(cublasLtMatrixLayoutCreate(&lb, ty, trans_a ? (uint64_t)m : (uint64_t)k, trans_a ? (uint64_t)k : (uint64_t)m, lda));
    BLAS_CHECK(cublasLtMatrixLayoutCreate(&lc, ty, (uint64_t)n, (uint64_t)m, ldc));
    BLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    BLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                    &blas->workspace_bytes, sizeof blas->workspace_bytes));
    if (probe) {
        /* the probe: time each of cuBLASLt's first probe->max_algos heuristic choices */
        cublasLtMatmulHeuristicResult_t hs[16];
        int want = probe->max_algos < 16 ? probe->max_algos : 16;
        BLAS_CHECK(cublasLtMatmulAlgoGetHeuristic(blas->lt, op, la, lb, lc, lc, pref, want, hs, &n_res));
        cudaEvent_t e0 = NULL, e1 = NULL;
        cudaEventCreate(&e0);
        cudaEventCreate(&e1);
        probe->n_algos = 0;
        for (int i = 0; i < n_res; i++) {
            float best = 1e30f;
            for (int rep = 0; rep < probe->reps + 1; rep++) {
                cudaEventRecord(e0, stream);
                cublasStatus_t s2 = cublasLtMatmul(blas->lt, op, pa, b, la, a, lb, pb, cc, lc, c, lc, &hs[i].algo,
                                                   blas->workspace, blas->workspace_bytes, stream);
                cudaEventRecord(e1, stream);
                cudaEventSynchronize(e1);
                float ms = 0;
                cudaEventElapsedTime(&ms, e0, e1);
                if (s2 != CUBLAS_STATUS_SUCCESS) { best = -1; break; }
                if (rep > 0 && ms < best) best = ms; /* rep 0 warms up */
            }
            probe->ms[probe->n_algos++] = best;
        }
        cudaEventDestroy(e0);
        cudaEventDestroy(e1);
        goto done;
    }
    BLAS_CHECK(cublasLtMatmulAlgoGetHeuristic(blas->lt, op, la, lb, lc, lc, pref, 1, &heur, &n_res));
    if (n_res < 1) {
        rc = 1000 + (int)CUBLAS_STATUS_NOT_SUPPORTED;
        goto done;
    }
    BLAS_CHECK(cublasLtMatmul(blas->lt, op, pa, b, la, a, lb, pb, cc, lc, c, lc, &heur.algo, blas->workspace,
                              blas->workspace_bytes, stream));
done:
    if (pref) cublasLtMatmulPreferenceDestroy(pref);
    if (lc) cublasLtMatrixLayoutDestroy(lc);
    if (lb) cublasLtMatrixLayoutDestroy(lb);
    if (la) cublasLtMatrixLayoutDestroy(la);
    if (op) cublasLtMatmulDescDestroy(op);
    return rc;
}

extern "C" int dsc_cuda_gemm(dsc_cuda_blas_t *blas, void *stream, dsc_dtype_t dt, bool trans_a, bool trans_b,
                             int64_t m, int64_t n, int64_t k, double alpha, const void *a, int64_t lda, const void *b,
                             int64_t ldb, double beta, void *c, int64_t ldc) {
    if (!blas) return (int)cudaErrorInvalidValue;
    if (m <= 0 || n <= 0) return 0;
    if (k <= 0) return (int)cudaErrorInvalidValue; /* C = beta C: the caller scales (CPU does it in the gemm) */
    return gemm_lt(blas, DSC_STREAM(stream), dt, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc,
                   DSC_CUDA_EPI_NONE, NULL, NULL, 0);
}

extern "C" int dsc_cuda_gemm_epilogue(dsc_cuda_blas_t *blas, void *stream, dsc_dtype_t dt, bool trans_a, bool trans_b,
                                      int64_t m, int64_t n, int64_t k, double alpha, const void *a, int64_t lda,
                                      const void *b, int64_t ldb, void *c, int64_t ldc, dsc_cuda_epilogue_t epi,
                                      const void *bias, void *pre, int64_t ld_pre) {
    const bool needs_bias = epi == DSC_CUDA_EPI_BIAS || epi == DSC_CUDA_EPI_BIAS_GELU;
    if (!blas || (needs_bias && !bias) || (epi == DSC_CUDA_EPI_DGELU && (!pre || bias)) || epi == DSC_CUDA_EPI_BGRADB ||
        dt == DSC_F64)
        return (int)cudaErrorInvalidValue;
    if (m <= 0 || n <= 0) return 0;
    if (k <= 0) return (int)cudaErrorInvalidValue;
    return gemm_lt(blas, DSC_STREAM(stream), dt, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, 0.0, c, ldc, epi,
                   bias, pre, ld_pre);
}

extern "C" int dsc_cuda_linear_residual(dsc_cuda_blas_t *blas, void *stream, dsc_dtype_t dt, int64_t m, int64_t n,
                                        int64_t k, const void *x, const void *w, const void *bias, const void *residual,
                                        void *y) {
    if (!blas || !residual) return (int)cudaErrorInvalidValue;
    if (dt == DSC_F64) return DSC_CUDA_BLAS_NOT_SUPPORTED;
    if (m <= 0 || n <= 0) return 0;
    if (k <= 0) return (int)cudaErrorInvalidValue;
    return gemm_lt(blas, DSC_STREAM(stream), dt, false, true, m, n, k, 1.0, x, k, w, k, 1.0, y, n,
                   bias ? DSC_CUDA_EPI_BIAS : DSC_CUDA_EPI_NONE, bias, NULL, 0, NULL, residual);
}

extern "C" int dsc_cuda_gemm_bgradb(dsc_cuda_blas_t *blas, void *stream, dsc_dtype_t dt, int64_t m, int64_t n,
                                    int64_t k, const void *g, const void *x, void *dw, void *db) {
    if (!blas || !db || dt == DSC_F64) return (int)cudaErrorInvalidValue;
    if (m <= 0 || n <= 0 || k <= 0) return (int)cudaErrorInvalidValue;
    /* dw [n, k] += g^T [n, m] x [m, k]: the gemm's m = n, n = k, k = m */
    return gemm_lt(blas, DSC_STREAM(stream), dt, true, false, n, k, m, 1.0, g, n, x, k, 1.0, dw, k,
                   DSC_CUDA_EPI_BGRADB, db, NULL, 0);
}

extern "C" int dsc_cuda_gemm_probe(dsc_cuda_blas_t *blas, void *stream, dsc_dtype_t dt, bool trans_a, bool trans_b,
                                   int64_t m, int64_t n, int64_t k, const void *a, int64_t lda, const void *b,
                                   int64_t ldb, double beta, void *c, int64_t ldc, dsc_cuda_gemm_probe_t *probe) {
    if (!blas || !probe || m <= 0 || n <= 0 || k <= 0) return (int)cudaErrorInvalidValue;
    return gemm_lt(blas, DSC_STREAM(stream), dt, trans_a, trans_b, m, n, k, 1.0, a, lda, b, ldb, beta, c, ldc,
                   DSC_CUDA_EPI_NONE, NULL, NULL, 0, probe);
}

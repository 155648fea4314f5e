/* The CUDA device's fused op entries (src/ops/backend.h), apart from cuda_backend.c, each one
 * cuBLASLt gemm with an epilogue:
 *  - linear: the forward with the bias added to the f32 accumulator, the output rounded once.
 *    f64 (no epilogue for it), a missing bias or an empty K run the gemm and then the bias as
 *    the binary add;
 *  - linear_gelu: the MLP's first projection with its GELU (GELU_AUX_BIAS epilogue: the GELU
 *    output and the pre-activation as its auxiliary output), each rounded once;
 *  - linear_residual: the same onto a residual stream (beta 1, the residual read as C and the
 *    output written as D), rounded once;
 *  - gemm_dgelu: the MLP's backward through GELU, GELU's derivative applied to the gemm's f32
 *    result (DGELU epilogue, the pre-activation as its auxiliary input), rounded once;
 * Where cuBLASLt has no algorithm for an epilogue (DSC_CUDA_BLAS_NOT_SUPPORTED, remembered on
 * the device), the separate kernels run: the same values up to the intermediate rounding. */
#include "core/internal.h"
#include "ops/backend.h"
#include "ops/cuda/cuda_device.h"

void dsc__cu_linear(struct dsc_device *dev, dsc_dtype_t dt, int64_t m, int64_t n, int64_t k, const void *x,
                    const void *w, const void *bias, void *y) {
    if (m <= 0 || n <= 0) return;
    void *stream = dsc__cuda_stream(dev);
    if (bias && dt != DSC_F64 && k > 0) {
        dsc__cuda_check(dev,
                        dsc_cuda_gemm_epilogue(dsc__cuda_dev(dev)->blas, stream, dt, false, true, m, n, k, 1.0, x, k, w,
                                               k, y, n, DSC_CUDA_EPI_BIAS, bias, NULL, 0),
                        "linear (gemm NT + bias epilogue)");
        return;
    }
    if (k > 0)
        dsc__cuda_check(dev, dsc_cuda_gemm(dsc__cuda_dev(dev)->blas, stream, dt, false, true, m, n, k, 1.0, x, k, w, k,
                                           0.0, y, n),
                        "linear (gemm NT)");
    else
        dsc__cuda_check(dev, dsc_cuda_fill(stream, dt, m * n, 0.0, y), "linear (empty K)");
    if (bias) dsc__cuda_check(dev, dsc_cuda_binary(stream, dt, DSC_BINARY_ADD, m * n, y, n, bias, y), "linear (bias)");
}

void dsc__cu_gemm_dgelu(struct dsc_device *dev, dsc_dtype_t dt, int64_t m, int64_t n, int64_t k, const void *g,
                        const void *w, const void *pre, void *dpre) {
    if (m <= 0 || k <= 0) return;
    dsc_cuda_dev_t *c = dsc__cuda_dev(dev);
    void *stream = c->stream;
    if (n > 0 && dt != DSC_F64 && !c->no_dgelu_epilogue) {
        /* dpre [m, k] = g [m, n] w [n, k], then * gelu'(pre) in the epilogue */
        const int rc = dsc_cuda_gemm_epilogue(c->blas, stream, dt, false, false, m, k, n, 1.0, g, n, w, k, dpre, k,
                                              DSC_CUDA_EPI_DGELU, NULL, (void *)pre, k);
        if (rc != DSC_CUDA_BLAS_NOT_SUPPORTED) {
            dsc__cuda_check(dev, rc, "gemm NN + dgelu epilogue");
            return;
        }
        c->no_dgelu_epilogue = true;
    }
    if (n > 0)
        dsc__cuda_check(dev, dsc_cuda_gemm(c->blas, stream, dt, false, false, m, k, n, 1.0, g, n, w, k, 0.0, dpre, k),
                        "gemm NN, C = AB (for gelu')");
    else
        dsc__cuda_check(dev, dsc_cuda_fill(stream, dt, m * k, 0.0, dpre), "gemm_dgelu (empty K)");
    dsc__cuda_check(dev, dsc_cuda_gelu_grad_mul(stream, dt, m * k, pre, dpre), "gelu' in place");
}

void dsc__cu_linear_residual(struct dsc_device *dev, dsc_dtype_t dt, int64_t m, int64_t n, int64_t k, const void *x,
                             const void *w, const void *bias, const void *residual, void *y) {
    if (m <= 0 || n <= 0) return;
    dsc_cuda_dev_t *c = dsc__cuda_dev(dev);
    if (k > 0 && dt != DSC_F64 && !c->no_residual_epilogue) {
        const int rc = dsc_cuda_linear_residual(c->blas, c->stream, dt, m, n, k, x, w, bias, residual, y);
        if (rc != DSC_CUDA_BLAS_NOT_SUPPORTED) {
            dsc__cuda_check(dev, rc, "linear onto residual (gemm NT, beta 1 + bias epilogue)");
            return;
        }
        c->no_residual_epilogue = true;
    }
    dsc__cu_linear(dev, dt, m, n, k, x, w, bias, y);
    dsc__cuda_check(dev, dsc_cuda_binary(c->stream, dt, DSC_BINARY_ADD, m * n, residual, m * n, y, y),
                    "linear onto residual (add)");
}

void dsc__cu_linear_gelu(struct dsc_device *dev, dsc_dtype_t dt, int64_t m, int64_t n, int64_t k, const void *x,
                         const void *w, const void *bias, void *pre, void *gelu) {
    if (m <= 0 || n <= 0) return;
    dsc_cuda_dev_t *c = dsc__cuda_dev(dev);
    if (k > 0 && dt != DSC_F64 && !c->no_gelu_epilogue) {
        const int rc = dsc_cuda_gemm_epilogue(c->blas, c->stream, dt, false, true, m, n, k, 1.0, x, k, w, k, gelu, n,
                                              DSC_CUDA_EPI_BIAS_GELU, bias, pre, n);
        if (rc != DSC_CUDA_BLAS_NOT_SUPPORTED) {
            dsc__cuda_check(dev, rc, "linear + gelu (gemm NT + gelu_aux_bias epilogue)");
            return;
        }
        c->no_gelu_epilogue = true;
    }
    dsc__cu_linear(dev, dt, m, n, k, x, w, bias, pre);
    dsc__cuda_check(dev, dsc_cuda_unary(c->stream, dt, DSC_UNARY_GELU, m * n, pre, gelu), "linear + gelu (gelu)");
}

/* The CUDA device's fused op entries (src/ops/backend.h), apart from cuda_backend.c: the
 * linear layer's forward as one cuBLASLt gemm with a bias epilogue (the bias added to the
 * f32 accumulator, the output rounded once). f64 (no epilogue for it), a missing bias or an
 * empty K run the gemm and then the bias as the binary add. */
#include "core/internal.h"
#include "ops/backend.h"
#include "ops/cuda/cuda_device.h"

void dsc__cu_linear(struct dsc_device *dev, dsc_dtype_t dt, int64_t m, int64_t n, int64_t k, const void *x,
                    const void *w, const void *bias, void *y);

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

/* CPU kernels of the fused entries of src/ops/backend.h: the linear layer's forward, the
 * gemm and its bias in one call. f32/f64: the gemm then the bias added as the binary add
 * does (the same bits as dsc_matmul followed by dsc_bias_add). 16-bit: x and w widened to
 * f32, the f32 gemm, the bias added in f32 and the sum rounded once (the unfused pair rounds
 * the product and then the sum). */
#include <stdlib.h>

#include "ops/cpu/cpu_half.h"
#include "ops/cpu/cpu_kernels.h"

void dsc_cpu_linear(dsc_dtype_t dt, int64_t m, int64_t n, int64_t k, const void *x, const void *w, const void *bias,
                    void *y) {
    if (m <= 0 || n <= 0) return;
    if (dt == DSC_F32 || dt == DSC_F64) {
        dsc_cpu_gemm(dt, false, true, m, n, k, 1.0, x, k, w, k, 0.0, y, n);
        if (bias) dsc_cpu_binary(dt, DSC_BINARY_ADD, m * n, y, n, bias, y);
        return;
    }
    float *xf = malloc(sizeof(float) * (size_t)(m * k + n * k + m * n + n) + 1);
    if (!xf) { /* no scratch: the unfused pair (two roundings) rather than nothing */
        dsc_cpu_gemm(dt, false, true, m, n, k, 1.0, x, k, w, k, 0.0, y, n);
        if (bias) dsc_cpu_binary(dt, DSC_BINARY_ADD, m * n, y, n, bias, y);
        return;
    }
    float *wf = xf + m * k, *yf = wf + n * k, *bf = yf + m * n;
    dsc__cpu_half_to_f32(dt, m * k, x, xf);
    dsc__cpu_half_to_f32(dt, n * k, w, wf);
    dsc_cpu_gemm(DSC_F32, false, true, m, n, k, 1.0, xf, k, wf, k, 0.0, yf, n);
    if (bias) {
        dsc__cpu_half_to_f32(dt, n, bias, bf);
        dsc_cpu_binary(DSC_F32, DSC_BINARY_ADD, m * n, yf, n, bf, yf);
    }
    dsc__cpu_f32_to_half(dt, m * n, yf, y);
    free(xf);
}

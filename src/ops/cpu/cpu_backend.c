/* The CPU backend table. */
#include "ops/cpu/cpu_kernels.h"

static void cpu_sum_to(dsc_dtype_t dt, int64_t n, double mul, double div, const void *x, void *out) {
    dsc_cpu_fill(dt, 1, dsc_cpu_sum(dt, n, x) * mul / div, out);
}

static void cpu_convert(dsc_dtype_t dst_dt, dsc_dtype_t src_dt, int64_t n, const void *x, void *y) {
    dsc_convert(y, dst_dt, x, src_dt, (size_t)n);
}

static const dsc_backend_t cpu_backend = {
    .api_version = DSC_BACKEND_API_VERSION,
    .name = "cpu",
    .gemm = dsc_cpu_gemm,
    .binary = dsc_cpu_binary,
    .axpy = dsc_cpu_axpy,
    .mul_acc = dsc_cpu_mul_acc,
    .sum_rows_acc = dsc_cpu_sum_rows_acc,
    .sum_rows_mul_acc = dsc_cpu_sum_rows_mul_acc,
    .sum = dsc_cpu_sum,
    .sum_to = cpu_sum_to,
    .scale = dsc_cpu_scale,
    .fill = dsc_cpu_fill,
    .convert = cpu_convert,
    .unary = dsc_cpu_unary,
    .unary_backward = dsc_cpu_unary_backward,
    .transpose = dsc_cpu_transpose,
    .softmax = dsc_cpu_softmax,
    .softmax_backward = dsc_cpu_softmax_backward,
    .layernorm = dsc_cpu_layernorm,
    .layernorm_backward = dsc_cpu_layernorm_backward,
    .embedding = dsc_cpu_embedding,
    .embedding_backward = dsc_cpu_embedding_backward,
    .dropout = dsc_cpu_dropout,
    .dropout_backward = dsc_cpu_dropout_backward,
    .attention = dsc_cpu_attention,
    .attention_backward = dsc_cpu_attention_backward,
    .cross_entropy = dsc_cpu_cross_entropy,
    .cross_entropy_backward = dsc_cpu_cross_entropy_backward,
};

const dsc_backend_t *dsc__backend_cpu(void) { return &cpu_backend; }

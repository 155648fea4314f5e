/* Mixed-precision kernels on CUDA, bit for bit with src/amp (dsc/amp.h's scan order):
 *  - the overflow scan with sum of squares: DSC_AMP_BLOCK-element blocks cut from each
 *    segment's start; in a block, element j goes to lane j % 16 and each lane adds its squares
 *    in index order in double (one thread per lane); the 16 lanes combine by xor-shuffles
 *    1, 2, 4, 8, which is exactly dsc__amp_tree16's pairwise tree; blocks of a segment are
 *    added in order, then segments in order (one thread each). Squares are exact in double,
 *    so the order is the only thing that could change bits, and it is the CPU's.
 *  - accumulate: acc += (float)g, one f32 add (built with -fmad=false);
 *  - unscale + clip: dsc_amp_unscale_clip's arithmetic in double, on the device. */
#include <math.h>

#include "ops/cuda/cuda_common.cuh"

#define SCAN_GROUPS_PER_BLOCK 8 /* 16-thread groups per 128-thread CUDA block */

static size_t round8(size_t x) { return (x + 7) / 8 * 8; }

extern "C" size_t dsc_cuda_amp_scan_workspace_bytes(const dsc_amp_segment_t *segs, size_t n_segs) {
    size_t n_blocks = 0;
    for (size_t s = 0; s < n_segs; s++) n_blocks += segs[s].numel ? (segs[s].numel + DSC_AMP_BLOCK - 1) / DSC_AMP_BLOCK : 1;
    /* first_block[n_segs + 1] (int64), seg sums [n_segs] (double), block partials (double) */
    return round8((n_segs + 1) * 8) + round8(n_segs * 8) + round8(n_blocks * 8) + 64;
}

__global__ void k_scan_prefix(const dsc_amp_segment_t *segs, size_t n_segs, int64_t *first_block) {
    int64_t acc = 0;
    for (size_t s = 0; s < n_segs; s++) {
        first_block[s] = acc;
        acc += segs[s].numel ? (int64_t)((segs[s].numel + DSC_AMP_BLOCK - 1) / DSC_AMP_BLOCK) : 1;
    }
    first_block[n_segs] = acc;
}

template <typename T>
__global__ void k_scan_blocks(const T *data, const dsc_amp_segment_t *segs, size_t n_segs, const int64_t *first_block,
                              double *part) {
    const int64_t total = first_block[n_segs];
    const int lane = threadIdx.x & 15;
    const int64_t group = (int64_t)blockIdx.x * SCAN_GROUPS_PER_BLOCK + (threadIdx.x >> 4);
    const int64_t stride = (int64_t)gridDim.x * SCAN_GROUPS_PER_BLOCK;
    /* every warp runs the same number of iterations (its two groups differ by one), so the
     * shuffles below always have all 32 lanes */
    const int64_t warp_group0 = group & ~(int64_t)1;
    for (int64_t base = warp_group0; base < total; base += stride) {
        const int64_t q = base + ((threadIdx.x >> 4) & 1);
        double acc = 0;
        const bool valid = q < total;
        if (valid) {
            size_t lo = 0, hi = n_segs - 1; /* the segment s with first_block[s] <= q < first_block[s+1] */
            while (lo < hi) {
                const size_t mid = (lo + hi + 1) / 2;
                if (first_block[mid] <= q) lo = mid;
                else hi = mid - 1;
            }
            const size_t pos = (size_t)(q - first_block[lo]) * DSC_AMP_BLOCK;
            const size_t numel = segs[lo].numel;
            const size_t len = numel - pos < DSC_AMP_BLOCK ? numel - pos : DSC_AMP_BLOCK;
            const T *x = data + segs[lo].offset + pos;
            for (size_t j = lane; j < len; j += 16) {
                const double v = (double)ld(x, (int64_t)j);
                acc += v * v;
            }
        }
        for (int o = 1; o < 16; o <<= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
        if (valid && lane == 0) part[q] = acc;
    }
}

__global__ void k_scan_fold(size_t n_segs, const int64_t *first_block, const double *part, double *seg_acc_ws,
                            uint8_t *seg_overflow, double *seg_sumsq, uint8_t *overflow, double *sumsq,
                            uint64_t *n_bad) {
    for (size_t s = threadIdx.x; s < n_segs; s += blockDim.x) {
        double a = 0.0;
        for (int64_t b = first_block[s]; b < first_block[s + 1]; b++) a += part[b];
        seg_acc_ws[s] = a;
        if (seg_overflow) seg_overflow[s] = !isfinite(a);
        if (seg_sumsq) seg_sumsq[s] = a;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        double total = 0.0;
        uint64_t bad = 0;
        for (size_t s = 0; s < n_segs; s++) {
            bad += !isfinite(seg_acc_ws[s]);
            total += seg_acc_ws[s];
        }
        if (overflow) *overflow = bad > 0;
        if (sumsq) *sumsq = total;
        if (n_bad) *n_bad = bad;
    }
}

template <typename T>
static int scan_t(cudaStream_t s, const void *data, const dsc_amp_segment_t *segs, size_t n_segs, char *ws,
                  uint8_t *seg_overflow, double *seg_sumsq, uint8_t *overflow, double *sumsq, uint64_t *n_bad) {
    int64_t *first_block = (int64_t *)ws;
    double *seg_acc = (double *)(ws + round8((n_segs + 1) * 8));
    double *part = (double *)(ws + round8((n_segs + 1) * 8) + round8(n_segs * 8));
    DSC_LAUNCH_FLAT(1, 1, s, k_scan_prefix)(segs, n_segs, first_block);
    DSC_LAUNCH(132 * 16, 16 * SCAN_GROUPS_PER_BLOCK, s, k_scan_blocks<T>)((const T *)data, segs, n_segs, first_block, part);
    DSC_LAUNCH(1, 256, s, k_scan_fold)(n_segs, first_block, part, seg_acc, seg_overflow, seg_sumsq, overflow, sumsq, n_bad);
    DSC_CUDA_LAUNCHED();
}

extern "C" int dsc_cuda_amp_scan_segments(void *stream, const void *data, dsc_dtype_t dt, const dsc_amp_segment_t *segs,
                                          size_t n_segs, void *workspace, size_t workspace_bytes,
                                          uint8_t *seg_overflow, double *seg_sumsq, uint8_t *overflow, double *sumsq,
                                          uint64_t *n_bad) {
    (void)workspace_bytes; /* sized by dsc_cuda_amp_scan_workspace_bytes for these segments */
    if (n_segs == 0) {
        cudaStream_t s = DSC_STREAM(stream);
        if (overflow) DSC_CUDA_CHECK(cudaMemsetAsync(overflow, 0, 1, s));
        if (sumsq) DSC_CUDA_CHECK(cudaMemsetAsync(sumsq, 0, 8, s));
        if (n_bad) DSC_CUDA_CHECK(cudaMemsetAsync(n_bad, 0, 8, s));
        return 0;
    }
    if (!workspace || !segs) return (int)cudaErrorInvalidValue;
    cudaStream_t s = DSC_STREAM(stream);
    char *ws = (char *)workspace;
    switch (dt) {
    case DSC_F32: return scan_t<float>(s, data, segs, n_segs, ws, seg_overflow, seg_sumsq, overflow, sumsq, n_bad);
    case DSC_BF16: return scan_t<dsc_bf16>(s, data, segs, n_segs, ws, seg_overflow, seg_sumsq, overflow, sumsq, n_bad);
    case DSC_F16: return scan_t<dsc_f16>(s, data, segs, n_segs, ws, seg_overflow, seg_sumsq, overflow, sumsq, n_bad);
    default: return (int)cudaErrorInvalidValue;
    }
}

template <typename T>
__global__ void k_amp_acc(float *acc, const T *g, int64_t n) {
    DSC_GRID_STRIDE(i, n) acc[i] = acc[i] + ld(g, i);
}
extern "C" int dsc_cuda_amp_accumulate(void *stream, float *acc, const void *g, dsc_dtype_t dt, int64_t n) {
    if (n <= 0) return 0;
    cudaStream_t s = DSC_STREAM(stream);
    const unsigned grid = dsc_grid(n, 256);
    switch (dt) {
    case DSC_F32: DSC_LAUNCH_FLAT(grid, 256, s, k_amp_acc<float>)(acc, (const float *)g, n); break;
    case DSC_BF16: DSC_LAUNCH_FLAT(grid, 256, s, k_amp_acc<dsc_bf16>)(acc, (const dsc_bf16 *)g, n); break;
    case DSC_F16: DSC_LAUNCH_FLAT(grid, 256, s, k_amp_acc<dsc_f16>)(acc, (const dsc_f16 *)g, n); break;
    default: return (int)cudaErrorInvalidValue;
    }
    DSC_CUDA_LAUNCHED();
}

/* dsc_amp_unscale_clip (src/amp/loss_scaler.c) from sumsq, in double. */
__global__ void k_unscale_clip(const double *sumsq, double scale, const double *scale_dev, double clip, float *out,
                               double *out_norm) {
    const double S = scale_dev ? *scale_dev : scale;
    const double scaled_norm = sqrt(*sumsq);
    if (!isfinite(scaled_norm) || scaled_norm < 0) {
        *out = 0.0f;
        if (out_norm) out_norm[0] = out_norm[1] = -1.0;
        return;
    }
    const double norm = scaled_norm / S;
    double combined = S, r = 1.0;
    bool clipped = false;
    if (clip > 0) {
        r = (norm + 1e-6) / clip;
        if (r > 1) {
            combined = r * S;
            clipped = true;
        }
    }
    *out = (float)(1.0 / combined);
    if (out_norm) {
        out_norm[0] = norm;
        out_norm[1] = clipped ? norm / r : norm;
    }
}
extern "C" int dsc_cuda_amp_unscale_clip(void *stream, const double *sumsq, double scale, const double *scale_dev,
                                         double clip, float *out, double *out_norm) {
    DSC_LAUNCH_FLAT(1, 1, DSC_STREAM(stream), k_unscale_clip)(sumsq, scale, scale_dev, clip, out, out_norm);
    DSC_CUDA_LAUNCHED();
}

/* The CPU device's optimizer entries (dsc_optim_ops_t): the ISA path chosen by the
 * optimizer, the vector kernel on whole vectors and the scalar one on the tail, and the
 * OpenMP split (contiguous chunks for the element-wise kernels, fixed blocks for Lamb).
 * The bits do not depend on the split (element-wise) or the thread count (Lamb's blocks
 * are fixed). */
#include "optim/optim_internal.h"

#include <omp.h>

/* Chunk starts are multiples of this many elements (256 bytes). */
#define CHUNK_ALIGN 64

#define OFF(ptr, a) ((ptr) ? (ptr) + (a) : NULL)

static dsc_optim_kernel_fn pick(const dsc_optim_kernels_t *k, dsc_optim_kernel_id_t id) {
    switch (id) {
    case DSC_OPTIM_K_ADAM: return k->adam;
    case DSC_OPTIM_K_LION: return k->lion;
    case DSC_OPTIM_K_ADAGRAD: return k->adagrad;
    case DSC_OPTIM_K_SGD: return k->sgd;
    case DSC_OPTIM_K_RMSPROP: return k->rmsprop;
    case DSC_OPTIM_K_ADAMAX: return k->adamax;
    default: return k->lamb2;
    }
}

/* Runs kernel `id` on [a, b). */
static void run_range(const dsc_optim_kernels_t *k, dsc_optim_kernel_id_t id, const dsc_optim_scalars_t *s, float *p,
                      const float *g, float *const *st, uint16_t *half, size_t a, size_t b) {
    const size_t n = b - a;
    size_t done = pick(k, id)(s, p + a, OFF(g, a), OFF(st[0], a), OFF(st[1], a), OFF(st[2], a), OFF(half, a), n);
    if (done < n) {
        const size_t c = a + done;
        pick(&dsc__optim_kernels_scalar, id)(s, p + c, OFF(g, c), OFF(st[0], c), OFF(st[1], c), OFF(st[2], c),
                                             OFF(half, c), n - done);
    }
}

static void cpu_elementwise(dsc_device_t *dev, const dsc_optim_kernels_t *k, dsc_optim_kernel_id_t id,
                            const dsc_optim_scalars_t *s, size_t n, int nt, float *p, const float *g, float *s0,
                            float *s1, float *s2, uint16_t *half) {
    (void)dev;
    float *st[3] = {s0, s1, s2};
    if (nt <= 1) {
        run_range(k, id, s, p, g, st, half, 0, n);
        return;
    }
#pragma omp parallel num_threads(nt)
    {
        const size_t T = (size_t)omp_get_num_threads(), t = (size_t)omp_get_thread_num();
        size_t chunk = (n + T - 1) / T;
        chunk = (chunk + CHUNK_ALIGN - 1) / CHUNK_ALIGN * CHUNK_ALIGN;
        const size_t a = t * chunk < n ? t * chunk : n;
        const size_t b = a + chunk < n ? a + chunk : n;
        if (a < b) run_range(k, id, s, p, g, st, half, a, b);
    }
}

static void cpu_lamb_norms(dsc_device_t *dev, const dsc_optim_kernels_t *k, const dsc_optim_scalars_t *s,
                           const dsc_optim_block_t *blocks, size_t n_blocks, int nt, const float *p, const float *g,
                           float *m, float *v, double *partials) {
    (void)dev;
    const long nb = (long)n_blocks;
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (long b = 0; b < nb; b++) {
        double acc[2 * DSC_LAMB_LANES] = {0};
        const size_t a = blocks[b].start, len = blocks[b].len;
        size_t done = k->lamb1(s, p + a, g + a, m + a, v + a, len, acc);
        if (done < len)
            dsc__optim_kernels_scalar.lamb1(s, p + a + done, g + a + done, m + a + done, v + a + done, len - done, acc);
        partials[2 * b] = dsc__optim_tree16(acc);
        partials[2 * b + 1] = dsc__optim_tree16(acc + DSC_LAMB_LANES);
    }
}

static void cpu_lamb_apply(dsc_device_t *dev, const dsc_optim_kernels_t *k, const dsc_optim_scalars_t *s,
                           const dsc_optim_block_t *blocks, size_t n_blocks, int nt, const float *seg_coef, float *p,
                           float *m, float *v, uint16_t *half) {
    (void)dev;
    const long nb = (long)n_blocks;
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (long bb = 0; bb < nb; bb++) {
        dsc_optim_scalars_t sl = *s;
        sl.coef = seg_coef[blocks[bb].seg];
        float *st[3] = {m, v, NULL};
        run_range(k, DSC_OPTIM_K_LAMB2, &sl, p, NULL, st, half, blocks[bb].start, blocks[bb].start + blocks[bb].len);
    }
}

const dsc_optim_ops_t dsc__optim_ops_cpu = {cpu_elementwise, cpu_lamb_norms, cpu_lamb_apply};

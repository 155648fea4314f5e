/* The guarded test device's optimizer entries: the CPU device's, with every buffer
 * translated to the read-write alias of its pages (src/core/device_guarded.c). Block
 * lists, partial norms and segment coefficients are host arrays and pass unchanged. */
#include "optim/optim_internal.h"

#define G(p) dsc__guarded_host_alias(p)

static void g_elementwise(dsc_device_t *dev, const dsc_optim_kernels_t *k, dsc_optim_kernel_id_t id,
                          const dsc_optim_scalars_t *s, size_t n, int nt, float *p, const float *g, float *s0, float *s1,
                          float *s2, uint16_t *half) {
    dsc__optim_ops_cpu.elementwise(dev, k, id, s, n, nt, G(p), G(g), G(s0), G(s1), G(s2), G(half));
}
static void g_lamb_norms(dsc_device_t *dev, const dsc_optim_kernels_t *k, const dsc_optim_scalars_t *s,
                         const dsc_optim_block_t *blocks, size_t nb, int nt, const float *p, const float *g, float *m,
                         float *v, double *partials) {
    dsc__optim_ops_cpu.lamb_norms(dev, k, s, blocks, nb, nt, G(p), G(g), G(m), G(v), partials);
}
static void g_lamb_apply(dsc_device_t *dev, const dsc_optim_kernels_t *k, const dsc_optim_scalars_t *s,
                         const dsc_optim_block_t *blocks, size_t nb, int nt, const float *seg_coef, float *p, float *m,
                         float *v, uint16_t *half) {
    dsc__optim_ops_cpu.lamb_apply(dev, k, s, blocks, nb, nt, seg_coef, G(p), G(m), G(v), G(half));
}

const dsc_optim_ops_t dsc__optim_ops_guarded = {g_elementwise, g_lamb_norms, g_lamb_apply};

/* Op entry points for the library's own layers (src/nn), beyond the public include/dsc/ops.h. */
#ifndef DSC_OPS_OPS_INTERNAL_H
#define DSC_OPS_OPS_INTERNAL_H

#include "dsc/ops.h"

/* dsc_linear_cross_entropy with the targets also on the host (host_targets: their values,
 * the same as the tensor's; may be NULL): the range check reads them there instead of
 * copying the tensor back from the device (no host synchronisation). */
dsc_tensor_t *dsc__linear_cross_entropy_host(dsc_ctx_t *ctx, dsc_tensor_t *x, dsc_tensor_t *w, dsc_tensor_t *targets,
                                             const int32_t *host_targets, int32_t ignore_index);

/* dsc_linear for an MLP's first projection: the same output and tape, and where the backend
 * has linear_gelu (cuBLASLt's GELU epilogue) the GELU of the output too, made by the same gemm
 * into pool scratch and left on the context (ctx->gelu_ahead) for the dsc_gelu_linear /
 * dsc_linear_residual(gelu_input) that reads this output next: it skips its own GELU pass. */
dsc_tensor_t *dsc__linear_gelu_ahead(dsc_ctx_t *ctx, dsc_tensor_t *x, dsc_tensor_t *w, dsc_tensor_t *bias);

#endif

/* Scalar instantiation of the optimizer kernels (W = 1): the fallback on any x86-64 (or other)
 * CPU and the tail of every vector path. Same operation order as the vector paths. */
#include "optim/optim_internal.h"

#include <math.h>

#define DSC_ISA scalar
#define W 1
#define V float
#define VLOAD(p) (*(p))
#define VSTORE(p, v) (*(p) = (v))
#define VSET(x) (x)
#define VADD(a, b) ((a) + (b))
#define VSUB(a, b) ((a) - (b))
#define VMUL(a, b) ((a) * (b))
#define VDIV(a, b) ((a) / (b))
#define VSQRT(a) sqrtf(a)
#define VABS(a) fabsf(a)
#define VMAX(a, b) dsc__k_max(a, b)
#define VSELGT0(c, a, b) ((c) > 0.0f ? (a) : (b))
#define VCOPYSIGN(m, s) copysignf((m), (s))
#define VSTORE_BF16(h, v) (*(h) = dsc__optim_bf16(v))
#define VSTORE_F16(h, v) (*(h) = dsc_f32_to_f16(v))
#define DW 1
#define LT double
#define LLOAD(p) (*(p))
#define LSTORE(p, a) (*(p) = (a))
#define LSQ_ADD(acc, k, v)                                                                    \
    do {                                                                                      \
        double d_ = (double)(v);                                                              \
        (acc)[(k)] += d_ * d_;                                                                \
    } while (0)

/* maxps semantics: a if a > b, else b (so a NaN in either gives b). */
static inline float dsc__k_max(float a, float b) { return a > b ? a : b; }

#include "optim/optim_kernels.inc.h"

/* ZeRO inside the library (not installed): the one definition of "rank q's slice of a
 * parameter" and stage 3's persistence rule, shared by ZeRO (src/zero), checkpoints
 * (src/engine/engine_ckpt.c) and the memory estimator (src/monitor/estimate.c). The
 * public partition arithmetic is dsc/zero.h. */
#ifndef DSC_ZERO_ZERO_H
#define DSC_ZERO_ZERO_H

#include <stdbool.h>
#include <stdint.h>

#include "dsc/zero.h"

/* Elements [*a, *b) (the parameter's own indices) of a parameter occupying the flat range
 * [offset, offset + numel) that rank q holds under `plan`; false when it holds none of it.
 *   stages 0-2: the overlap with rank q's partition [q*k, (q+1)*k) of the padded flat
 *               buffer (stage 0 is replicated, but its checkpoints are written 1/N per rank
 *               by the same rule);
 *   stage 3:    rank q's shard [q*s, min((q+1)*s, numel)), s = dsc_zero3_shard(numel, N).
 * *a and *b are set even when false. */
bool dsc__zero_slice(const dsc_zero_plan_t *plan, int q, int64_t offset, int64_t numel, int64_t *a, int64_t *b);

/* Stage 3's persistence rule (DeepSpeed's): a parameter of numel elements stays gathered
 * when numel <= param_threshold and the running total of persistent elements stays within
 * model_threshold; *total (the running total, in parameter order) grows when it does. */
bool dsc__zero3_persists(int64_t numel, int64_t param_threshold, int64_t model_threshold, int64_t *total);

#endif

/* The engine's side of activation checkpointing (src/engine/engine_actckpt.c). */
#ifndef DSC_ENGINE_ACTCKPT_H
#define DSC_ENGINE_ACTCKPT_H

#include <stddef.h>

#include "dsc/engine.h"

/* Applies the config's activation_checkpointing section to the model's context
 * (dsc_actckpt_configure): number_checkpoints, synchronize_checkpoint_boundary and profile
 * take effect; partition_activations, cpu_checkpointing and contiguous_memory_optimization
 * are accepted and logged (rank 0) as having no effect here. Idempotent. Returns DSC_OK or
 * DSC_ERR_CONFIG with the message in err. */
dsc_status_t dsc__engine_setup_actckpt(dsc_engine_t *e, char *err, size_t errsz);
/* Puts the context's activation-checkpointing settings back to their defaults (when the
 * engine is freed, so the context does not keep a dead engine's settings). */
void dsc__engine_teardown_actckpt(dsc_engine_t *e);

#endif

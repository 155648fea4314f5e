/* dsc/dsc.h: the umbrella header. Including it gives the whole public API. */
#ifndef DSC_DSC_H
#define DSC_DSC_H

#include "dsc/status.h"
#include "dsc/tensor.h"
#include "dsc/gpu.h"
#include "dsc/ops.h"
#include "dsc/nn.h"
#include "dsc/gpt.h"
#include "dsc/data.h"
#include "dsc/sampler.h"
#include "dsc/shards.h"
#include "dsc/config.h"
#include "dsc/optim.h"
#include "dsc/sched.h"
#include "dsc/engine.h"
#include "dsc/amp.h"
#include "dsc/comm.h"
#include "dsc/zero.h"
#include "dsc/ckpt.h"
#include "dsc/monitor.h"
#include "dsc/checkpoint.h"

#define DSC_VERSION_STRING "0.1.0"

#endif

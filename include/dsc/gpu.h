/* The GPUs this process can use, for tools and callers that choose a device (`dsc doctor`,
 * `dsc train --device cuda:N`). Every call is safe without a GPU, without a driver and in a
 * build without CUDA: the answers then say so. Holds no state. */
#ifndef DSC_GPU_H
#define DSC_GPU_H

#include <stdbool.h>
#include <stddef.h>

#include "dsc/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dsc_gpu_info {
    char name[256];            /* "NVIDIA H100 80GB HBM3" */
    int ordinal;               /* N of cuda:N */
    int cc_major, cc_minor;    /* compute capability (9.0 for H100/H200) */
    int sm_count;
    size_t total_bytes, free_bytes;
    int driver_version;        /* CUDA version the driver supports, e.g. 13000 */
    int runtime_version;       /* the CUDA runtime dsc was built with */
    size_t cublaslt_version;   /* e.g. 130100 */
} dsc_gpu_info_t;

/* True when this build of dsc has the CUDA device (configure found nvcc and cuBLASLt). */
bool dsc_gpu_compiled(void);
/* The number of CUDA devices visible to this process: 0 without a GPU or driver, in a build
 * without CUDA, or when CUDA_VISIBLE_DEVICES hides them all. */
int dsc_gpu_count(void);
/* Facts about GPU `ordinal`. DSC_ERR_INVALID (out NULL, ordinal out of range),
 * DSC_ERR_UNSUPPORTED (a build without CUDA), DSC_ERR_DEVICE (the driver refused; err
 * names its error). err may be NULL. */
dsc_status_t dsc_gpu_info(int ordinal, dsc_gpu_info_t *out, char *err, size_t err_len);

#ifdef __cplusplus
}
#endif
#endif

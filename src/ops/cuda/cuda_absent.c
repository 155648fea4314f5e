/* The CUDA device in a build without CUDA (no nvcc or cuBLASLt at configure time, or
 * -DDSC_CUDA=OFF): cuda:N is refused with the reason and what to do. */
#include <stdio.h>

#include "core/device.h"
#include "dsc/gpu.h"

dsc_status_t dsc__device_cuda_init(dsc_device_t *dev, int ordinal, char *err, size_t err_len) {
    (void)ordinal;
    snprintf(err, err_len,
             "device %s: this build of dsc has no CUDA device compiled in (configure found no nvcc and "
             "cuBLASLt, or DSC_CUDA=OFF); devices: cpu, guarded",
             dev->name);
    return DSC_ERR_UNSUPPORTED;
}

bool dsc_gpu_compiled(void) { return false; }

int dsc_gpu_count(void) { return 0; }

dsc_status_t dsc_gpu_info(int ordinal, dsc_gpu_info_t *out, char *err, size_t err_len) {
    (void)out;
    if (err) snprintf(err, err_len, "GPU %d: this build of dsc has no CUDA device compiled in", ordinal);
    return DSC_ERR_UNSUPPORTED;
}

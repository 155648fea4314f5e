/* The CUDA device's asynchronous copies (core/device.h: from_host_async on the upload stream,
 * to_host_async with an event, event_sync): the cases of tests/common/copy_async_cases.h.
 * On a GPU from page-locked memory, 64 MiB per copy so that a wait which returned before the
 * copy engine had read the source would let the refill reach the device. On the emulator
 * (test_cuda_copy_async_emu) the runtime checks the contract itself (a page-locked source
 * changed before the wait fails that wait), so the early-reuse cases run there too.
 * Exits 77 (skipped) without a GPU. */
#include <stdio.h>

#include "../common/copy_async_cases.h"
#include "ops/cuda/cuda_kernels.h"

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    if (dsc_cuda_device_count() <= 0) {
        printf("test_cuda_copy_async: SKIPPED: no CUDA device visible\n");
        return 77;
    }
#ifdef DSC_CUDA_EMU
    ca_run_device("cuda:0", (size_t)1 << 20, true);
#else
    ca_run_device("cuda:0", (size_t)64 << 20, false);
#endif
    printf("test_cuda_copy_async: %d checks, %d failed\n", ca_checks, ca_failures);
    return ca_failures ? 1 : 0;
}

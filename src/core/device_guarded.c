/* The guarded test device (placeholder until its memory mapping lands). */
#include <stdio.h>

#include "core/internal.h"

dsc_status_t dsc__device_guarded_init(dsc_device_t *dev, char *err, size_t err_len) {
    (void)dev;
    snprintf(err, err_len, "device \"guarded\" is not built yet");
    return DSC_ERR_UNSUPPORTED;
}

void *dsc__guarded_host_alias(const void *ptr) { return (void *)ptr; }

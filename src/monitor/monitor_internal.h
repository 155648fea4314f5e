/* Helpers shared by the monitor files (src/monitor/): directories and messages. */
#ifndef DSC_MONITOR_INTERNAL_H
#define DSC_MONITOR_INTERNAL_H

#include <stddef.h>

#include "dsc/status.h"

/* printf into err (errsz bytes) when err is non-NULL; returns status. */
dsc_status_t dsc__mon_fail(char *err, size_t errsz, dsc_status_t status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
/* mkdir -p (mode 0777 before the umask). DSC_ERR_IO naming the component that failed. */
dsc_status_t dsc__mon_mkdir_p(const char *path, char *err, size_t errsz);
/* Python's os.path.join(a, b) for two components: b alone when a is empty, else a + "/" + b
 * (no doubled '/'); b absolute replaces a. A malloc'ed string, NULL on out of memory. */
char *dsc__mon_path_join(const char *a, const char *b);

#endif

/* dsc/status.h: status codes, per-context error messages and the log callback.
 *
 * Every fallible dsc call returns a dsc_status_t (0 = DSC_OK). The library never exits
 * or aborts on bad input: it returns a status and records a message (naming the key,
 * tensor, rank or file involved) on the handle the call was made with; read it with
 * dsc_ctx_errmsg() or dsc_engine_errmsg().
 */
#ifndef DSC_STATUS_H
#define DSC_STATUS_H

#include <stdarg.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum dsc_status {
    DSC_OK = 0,
    DSC_ERR_NOMEM,       /* an allocation failed */
    DSC_ERR_INVALID,     /* an argument is invalid: wrong shape, dtype, range */
    DSC_ERR_MISUSE,      /* the API was called in the wrong order or state */
    DSC_ERR_CONFIG,      /* a configuration (JSON or struct) is invalid */
    DSC_ERR_UNSUPPORTED, /* valid request that dsc does not implement (yet) */
    DSC_ERR_IO,          /* a file could not be opened, read or written */
    DSC_ERR_CORRUPT,     /* a file's contents are malformed or fail a checksum */
    DSC_ERR_COMM,        /* a collective failed */
    DSC_ERR_TIMEOUT,     /* a collective or wait ran past its timeout */
    DSC_ERR_NUMERIC,     /* training cannot continue numerically (loss scale stuck) */
    DSC_ERR_DEVICE,      /* a device (GPU) call failed: driver, launch, device memory */
    DSC_STATUS_COUNT
} dsc_status_t;

/* A short static English name for a status ("out of memory", ...). Never NULL. */
const char *dsc_status_string(dsc_status_t status);

/* Log levels, most severe first. */
typedef enum dsc_log_level {
    DSC_LOG_ERROR = 0,
    DSC_LOG_WARN,
    DSC_LOG_INFO,
    DSC_LOG_DEBUG
} dsc_log_level_t;

/* A log sink. `message` is one line without the trailing newline, valid only during the
 * call. `user` is the pointer given with the callback. Called from the thread that made
 * the dsc call. The default sink (when none is set) writes ERROR/WARN/INFO lines to stderr. */
typedef void (*dsc_log_fn)(dsc_log_level_t level, const char *message, void *user);

#ifdef __cplusplus
}
#endif
#endif

/* Status strings, the per-context sticky error, and logging. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/internal.h"

const char *dsc_status_string(dsc_status_t status) {
    static const char *const names[] = {
        [DSC_OK] = "ok",
        [DSC_ERR_NOMEM] = "out of memory",
        [DSC_ERR_INVALID] = "invalid argument",
        [DSC_ERR_MISUSE] = "API misuse",
        [DSC_ERR_CONFIG] = "invalid configuration",
        [DSC_ERR_UNSUPPORTED] = "not supported",
        [DSC_ERR_IO] = "I/O error",
        [DSC_ERR_CORRUPT] = "corrupt data",
        [DSC_ERR_COMM] = "communication error",
        [DSC_ERR_TIMEOUT] = "timeout",
        [DSC_ERR_NUMERIC] = "numerical failure",
        [DSC_ERR_DEVICE] = "device failure",
    };
    _Static_assert(sizeof(names) / sizeof(names[0]) == DSC_STATUS_COUNT, "update names[] for new status codes");
    if ((unsigned)status >= DSC_STATUS_COUNT) return "unknown status";
    return names[status];
}

static const char *level_name(dsc_log_level_t level) {
    switch (level) {
    case DSC_LOG_ERROR: return "ERROR";
    case DSC_LOG_WARN: return "WARN";
    case DSC_LOG_INFO: return "INFO";
    default: return "DEBUG";
    }
}

static void default_sink(dsc_log_level_t level, const char *message, void *user) {
    (void)user;
    fprintf(stderr, "[dsc %s] %s\n", level_name(level), message);
}

static void vlog(dsc_ctx_t *ctx, dsc_log_level_t level, const char *fmt, va_list ap) {
    if (!ctx || level > ctx->log_level) return;
    char line[DSC_ERRMSG_MAX];
    vsnprintf(line, sizeof line, fmt, ap);
    (ctx->log_fn ? ctx->log_fn : default_sink)(level, line, ctx->log_user);
}

void dsc_ctx_log(dsc_ctx_t *ctx, dsc_log_level_t level, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vlog(ctx, level, fmt, ap);
    va_end(ap);
}

void dsc_ctx_set_log(dsc_ctx_t *ctx, dsc_log_fn fn, void *user, dsc_log_level_t level) {
    if (!ctx) return;
    ctx->log_fn = fn;
    ctx->log_user = user;
    ctx->log_level = level;
}

static dsc_status_t vset_error(dsc_ctx_t *ctx, dsc_status_t status, const char *fmt, va_list ap) {
    if (!ctx) return status;
    if (ctx->status != DSC_OK) return status; /* keep the first error: it is the cause */
    ctx->status = status;
    vsnprintf(ctx->errmsg, sizeof ctx->errmsg, fmt, ap);
    dsc_ctx_log(ctx, DSC_LOG_ERROR, "%s", ctx->errmsg);
    return status;
}

dsc_status_t dsc_ctx_set_error(dsc_ctx_t *ctx, dsc_status_t status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vset_error(ctx, status, fmt, ap);
    va_end(ap);
    return status;
}

void *dsc__fail(dsc_ctx_t *ctx, dsc_status_t status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vset_error(ctx, status, fmt, ap);
    va_end(ap);
    return NULL;
}

dsc_status_t dsc_ctx_status(const dsc_ctx_t *ctx) { return ctx ? ctx->status : DSC_ERR_MISUSE; }

const char *dsc_ctx_errmsg(const dsc_ctx_t *ctx) {
    if (!ctx) return "context is NULL";
    return ctx->errmsg;
}

void dsc_ctx_clear_error(dsc_ctx_t *ctx) {
    if (!ctx) return;
    ctx->status = DSC_OK;
    ctx->errmsg[0] = '\0';
}

/* What the CPU benchmarks (the programs in bench/) share: a monotonic clock, a comparator for
 * sorting timings, log callbacks that keep the engine's info lines off the tables, and the
 * small GPT that bench/zero_cpu and bench/zero_overhead measure, and the model-shape flags. Header-only: each bench is
 * one translation unit (CMakeLists.txt builds every .c file in bench/ as its own program). */
#ifndef DSC_BENCH_UTIL_H
#define DSC_BENCH_UTIL_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dsc/dsc.h"

/* 4 layers, 4 heads, 128 wide, vocab 88, context 64, no dropout (0.8M parameters) */
#define BENCH_GPT_SMALL {4, 4, 128, 88, 64, 0.0, 1e-5}

/* Seconds on CLOCK_MONOTONIC (wall time, for differences only). */
static inline double bench_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* qsort comparator: doubles in ascending order. */
static inline int bench_cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* dsc log callbacks (dsc_ctx_options_t.log_fn): only errors, or warnings and errors, to stderr. */
static inline void bench_log_errors(dsc_log_level_t level, const char *message, void *user) {
    (void)user;
    if (level == DSC_LOG_ERROR) fprintf(stderr, "%s\n", message);
}

static inline void bench_log_warnings(dsc_log_level_t level, const char *message, void *user) {
    (void)user;
    if (level <= DSC_LOG_WARN) fprintf(stderr, "%s\n", message);
}

/* The model-shape flags, for a usage line, and one "flag value" pair of them taken into gc
 * (atoi/atof, as the benches' other flags); false when flag is none of them. */
#define BENCH_GPT_FLAGS_USAGE "[--layers N] [--heads N] [--embd N] [--vocab N] [--context T] [--dropout P]"
static inline bool bench_gpt_flag(dsc_gpt_config_t *gc, const char *flag, const char *value) {
    if (!strcmp(flag, "--layers")) gc->n_layer = atoi(value);
    else if (!strcmp(flag, "--heads")) gc->n_head = atoi(value);
    else if (!strcmp(flag, "--embd")) gc->n_embd = atoi(value);
    else if (!strcmp(flag, "--vocab")) gc->vocab_size = atoi(value);
    else if (!strcmp(flag, "--context")) gc->block_size = atoi(value);
    else if (!strcmp(flag, "--dropout")) gc->dropout = atof(value);
    else return false;
    return true;
}

#endif

/* Minimal test harness: CHECK macros that count failures and print where, and helpers
 * for comparing arrays with relative tolerances. A test's main returns check_finish(),
 * which is non-zero when anything failed, so no test can pass by accident. */
#ifndef DSC_TEST_CHECK_H
#define DSC_TEST_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "dsc/dsc.h"

extern int check_failures;
extern int check_count;

#define CHECK(cond)                                                                          \
    do {                                                                                     \
        check_count++;                                                                       \
        if (!(cond)) {                                                                       \
            check_failures++;                                                                \
            fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);                  \
        }                                                                                    \
    } while (0)

#define CHECK_MSG(cond, ...)                                                                 \
    do {                                                                                     \
        check_count++;                                                                       \
        if (!(cond)) {                                                                       \
            check_failures++;                                                                \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                  \
            fprintf(stderr, __VA_ARGS__);                                                    \
            fputc('\n', stderr);                                                             \
        }                                                                                    \
    } while (0)

/* Fails (and returns from the calling function) when a dsc call did not return DSC_OK. */
#define CHECK_OK(call)                                                                       \
    do {                                                                                     \
        check_count++;                                                                       \
        dsc_status_t check_rc_ = (call);                                                     \
        if (check_rc_ != DSC_OK) {                                                           \
            check_failures++;                                                                \
            fprintf(stderr, "FAIL %s:%d: %s returned %s\n", __FILE__, __LINE__, #call,       \
                    dsc_status_string(check_rc_));                                           \
        }                                                                                    \
    } while (0)

/* The same from several threads (rank threads of the fake communicator): the counters are
 * global, so each check holds one process-wide lock (check_lock / check_unlock). */
void check_lock(void);
void check_unlock(void);
#define TCHECK(cond)                                                                         \
    do {                                                                                     \
        check_lock();                                                                        \
        CHECK(cond);                                                                         \
        check_unlock();                                                                      \
    } while (0)
#define TCHECK_MSG(cond, ...)                                                                \
    do {                                                                                     \
        check_lock();                                                                        \
        CHECK_MSG(cond, __VA_ARGS__);                                                        \
        check_unlock();                                                                      \
    } while (0)
#define TCHECK_OK(call)                                                                      \
    do {                                                                                     \
        dsc_status_t tst_ = (call);                                                          \
        TCHECK_MSG(tst_ == DSC_OK, "%s -> %s", #call, dsc_status_string(tst_));              \
    } while (0)

/* Runs fn on n threads (at most 16), thread r on (char *)args + r * arg_size, and joins them
 * with a 60 s deadline; a thread that cannot start or does not finish ends the process
 * (FAIL on stderr, exit status 1): a hung rank cannot hang the test. */
void check_run_threads(int n, void *(*fn)(void *), void *args, size_t arg_size);

/* |a - b| <= tol * max(|a|, |b|, floor): relative with an absolute floor for values near 0. */
bool check_close(double a, double b, double rel_tol, double abs_floor);
/* Compares n values; prints the worst index on failure; returns the max relative error. */
double check_arrays_close(const char *what, const double *got, const double *want, size_t n, double rel_tol,
                          double abs_floor);
double check_arrays_close_f32(const char *what, const float *got, const float *want, size_t n, double rel_tol,
                              double abs_floor);
/* Prints "test: N checks, M failed" and returns the exit status. */
int check_finish(const char *test_name);

/* Host access to tensor data on any device (the suite also runs on the guarded device,
 * where a direct read faults): get copies n values of t into dst converted to dst_dtype;
 * set copies n values of src_dtype into t converted to t's dtype. Return DSC_OK or the
 * copy's status. */
dsc_status_t check_tensor_get(const dsc_tensor_t *t, void *dst, dsc_dtype_t dst_dtype, size_t n);
dsc_status_t check_tensor_set(dsc_tensor_t *t, const void *src, dsc_dtype_t src_dtype, size_t n);
/* One element of t as a double (NaN on error). */
double check_tensor_at(const dsc_tensor_t *t, int64_t i);
/* A host snapshot of all of t's values as f32 (the read-only stand-in for dsc_tensor_f32 in
 * comparisons); owned by the check module and freed by check_finish. NULL (and a failure
 * counted) when the copy fails. */
const float *check_f32(const dsc_tensor_t *t);

/* A context whose errors are quiet (tests that expect errors check the message instead). */
dsc_ctx_t *check_ctx_new(uint64_t seed);

/* Row `row` of the global batch at micro-step `micro` of step `step` of the ZeRO and
 * checkpoint harnesses: a noisy Markov chain over 65 tokens (next = 7 * prev + 3 mod 65 with
 * probability 3/4); x gets t inputs, y the t next tokens. */
void check_markov_row(int step, int micro, int row, int32_t *x, int32_t *y, int t);

/* True when DSC_TEST_REDUCED is set in the environment: the ASan build's pass on the guarded
 * device (`make test`) sets it, and the slowest tests then run every configuration of their
 * matrix with fewer training steps (each says which). The other passes (cpu and guarded
 * with the normal build, cpu under ASan) run the full tests. */
bool check_reduced(void);

/* Files: the whole of path, malloc'ed with a NUL byte after its *len bytes (len may be NULL),
 * or NULL (and *len 0) when it cannot be opened or read in full. */
void *check_read_file(const char *path, size_t *len);
/* Files: removes a directory tree (or a file); counts the entries of dir whose names start
 * with prefix (0 when dir cannot be read). */
void check_rm_tree(const char *path);
int check_count_prefix(const char *dir, const char *prefix);

#endif

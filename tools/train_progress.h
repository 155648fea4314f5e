/* dsc train's progress bar (tools/train_progress.c). */
#ifndef DSC_TOOLS_TRAIN_PROGRESS_H
#define DSC_TOOLS_TRAIN_PROGRESS_H

#include <stdbool.h>
#include <stddef.h>

#include "dsc/status.h"

/* The bar's state: where it is drawn, and whether a frame is on the screen now (a log line
 * first clears it, so no line is ever glued onto the bar). */
typedef struct {
    int fd;     /* dsc_progress_fd_open's descriptor, or -1 */
    bool on;    /* the bar is drawn on a terminal */
    bool drawn; /* a frame is on the current line */
} progress_t;

/* The terminal on stdout reopened non-blocking (see the .c), or -1. */
int dsc_progress_fd_open(void);
/* Writes to the bar's terminal without ever blocking (a frame that does not fit is dropped). */
void dsc_progress_write(progress_t *pg, const char *text, size_t n);
/* Clears the bar's line when a frame is on it, so the next line starts clean at column 0. */
void dsc_progress_clear(progress_t *pg);
/* Draws one frame of step / steps (`done`: the steps this run made, for the ETA), no wider
 * than the terminal less one column. */
void dsc_progress_bar(progress_t *pg, int step, int steps, int done, double loss, double lr, double tok_s,
                      double elapsed);
/* A dsc_log_fn (user: the progress_t) printing as the default sink, after clearing the bar. */
void dsc_progress_log(dsc_log_level_t level, const char *message, void *user);

#endif

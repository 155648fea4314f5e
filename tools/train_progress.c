/* dsc train's progress display: a one-line bar on a terminal, rewritten in place, that log
 * lines clear first (see train_progress.h). */
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "train_progress.h"

/* The progress bar's own descriptor: the terminal reopened non-blocking, so a frame that the
 * terminal cannot take now is dropped instead of stopping training (a terminal nobody drains:
 * a stalled ssh, a suspended pager; under mpirun, where dsc train no longer draws the bar,
 * a full pty once held rank 0 past mpirun's SIGTERM so that it never saved). A fresh open
 * gives a private file description: stdout's, shared with the shell, stays blocking. -1 when
 * the terminal cannot be reopened (frames then go out only when poll says the terminal takes
 * them). */
int dsc_progress_fd_open(void) {
    const char *name = ttyname(STDOUT_FILENO);
    return name ? open(name, O_WRONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC) : -1;
}

void dsc_progress_write(progress_t *pg, const char *text, size_t n) {
    int fd = pg->fd;
    if (fd < 0) {
        struct pollfd p = {.fd = STDOUT_FILENO, .events = POLLOUT};
        if (poll(&p, 1, 0) != 1 || !(p.revents & POLLOUT)) return; /* dropped: the next frame redraws it all */
        fd = STDOUT_FILENO;
    }
    (void)!write(fd, text, n); /* EAGAIN or a short write: dropped, the next frame starts with \r */
}

/* Clears the bar's line, so that the next line printed starts at column 0 on a clean line. */
void dsc_progress_clear(progress_t *pg) {
    if (!pg->on || !pg->drawn) return;
    fflush(stdout);
    dsc_progress_write(pg, "\r\033[K", 4);
    pg->drawn = false;
}

/* One frame: "[=====>    ] 120/260 loss 2.3456 lr 1.23e-03 45678 tok/s ETA 0:42", never wider
 * than the terminal (80 columns when it does not say) less one column, so it cannot wrap. */
void dsc_progress_bar(progress_t *pg, int step, int steps, int done, double loss, double lr, double tok_s,
                         double elapsed) {
    struct winsize ws;
    int cols = ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 ? ws.ws_col : 80;
    if (cols > 120) cols = 120;
    double eta = done > 0 ? elapsed / done * (steps - step) : 0; /* done: steps this run (a resume starts later) */
    char tail[160], frame[256], bar[64];
    int tn = snprintf(tail, sizeof tail, " %d/%d loss %.4f lr %.2e %.0f tok/s ETA %d:%02d", step, steps, loss, lr, tok_s,
                      (int)(eta / 60), (int)eta % 60);
    if (tn < 0) return;
    int width = cols - 1 - tn - 2; /* the brackets */
    if (width > 30) width = 30;
    if (width < 5) width = 0; /* a narrow terminal: the numbers only */
    int filled = (int)((double)step / steps * width);
    for (int i = 0; i < width; i++) bar[i] = i < filled ? '=' : (i == filled ? '>' : ' ');
    bar[width] = '\0';
    int n = width ? snprintf(frame, sizeof frame, "\r[%s]%s", bar, tail) : snprintf(frame, sizeof frame, "\r%s", tail + 1);
    if (n <= 0) return;
    if (n > cols) n = cols; /* "\r" + at most cols - 1 characters */
    frame[n] = '\0';
    n += snprintf(frame + n, sizeof frame - (size_t)n, "\033[K"); /* what a longer frame left */
    fflush(stdout); /* lines printed before stay before the frame */
    dsc_progress_write(pg, frame, (size_t)n);
    pg->drawn = true;
}

/* The library's log lines (warnings, wall_clock_breakdown) on their own line, never after the
 * bar; the format of the default sink. */
void dsc_progress_log(dsc_log_level_t level, const char *message, void *user) {
    progress_t *pg = user;
    if (pg) dsc_progress_clear(pg);
    const char *name = level == DSC_LOG_ERROR ? "ERROR" : level == DSC_LOG_WARN ? "WARN" : level == DSC_LOG_INFO ? "INFO"
                                                                                                                  : "DEBUG";
    fprintf(stderr, "[dsc %s] %s\n", name, message);
}

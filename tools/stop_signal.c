/* Graceful stop for `dsc train --save`: the first SIGINT or SIGTERM only records a request
 * (the training loop finishes its optimizer step, saves and exits 128 + signal); a second
 * one exits at once, as the default action would. Process-wide state lives here, in the
 * tool: the library keeps none (two engines coexist). */
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "stop_signal.h"

static volatile sig_atomic_t requested; /* 0, or the first signal's number */
static struct sigaction previous_int, previous_term;

/* Async-signal-safe: write(2), _exit. */
static void on_stop_signal(int sig) {
    if (requested) {
        static const char msg[] = "\ndsc train: second signal: exiting at once, without saving\n";
        (void)!write(STDERR_FILENO, msg, sizeof msg - 1);
        _exit(128 + sig);
    }
    requested = sig;
    static const char msg[] = "\ndsc train: stop requested: finishing this optimizer step, then saving (signal again "
                              "to exit at once)\n";
    (void)!write(STDERR_FILENO, msg, sizeof msg - 1);
}

void dsc_tool_stop_signals_install(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART; /* blocking reads and MPI progress resume after the handler */
    requested = 0;
    sigaction(SIGINT, &sa, &previous_int);
    sigaction(SIGTERM, &sa, &previous_term);
}

void dsc_tool_stop_signals_restore(void) {
    sigaction(SIGINT, &previous_int, NULL);
    sigaction(SIGTERM, &previous_term, NULL);
}

int dsc_tool_stop_requested(void) { return (int)requested; }

/* Graceful stop on SIGINT / SIGTERM for the dsc tool (tools/stop_signal.c). */
#ifndef DSC_TOOLS_STOP_SIGNAL_H
#define DSC_TOOLS_STOP_SIGNAL_H

/* From now on the first SIGINT or SIGTERM is only recorded (dsc_tool_stop_requested) and a
 * second one exits the process at once with status 128 + signal. */
void dsc_tool_stop_signals_install(void);
/* The handlers in place before install. */
void dsc_tool_stop_signals_restore(void);
/* 0, or the number of the first stop signal received. */
int dsc_tool_stop_requested(void);

#endif

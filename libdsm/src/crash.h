/*
 * crash.h - a rank's last words when a fatal signal kills it.
 *
 * A rank that dies of SIGSEGV, SIGBUS, SIGFPE, SIGILL or SIGABRT prints, before the
 * default action kills it:
 *
 *   dsm: rank R: fatal signal SIGSEGV: invalid write at 0x0, outside the global space (...)
 *   dsm: rank R:   at #0 ./prog(+0x1234) [0x55d0c0a01234]
 *   dsm: rank R:   at #1 ...
 *
 * dsmrun puts this first in a failed job's report (scripts/dsmrun, CRASH_LINE). Only signals
 * whose action was the default get a handler; an application's own handler is left alone,
 * and the SIGSEGV of the global space reports from fault.c's chain to the previous action.
 */
#ifndef DSM_CRASH_H
#define DSM_CRASH_H

#include <signal.h>

#include "dsm_status.h"

/* Load the unwinder now (backtrace() allocates on its first call, which a signal handler
 * must not) and take the default-action fatal signals other than SIGSEGV. */
dsm_status_t dsm_crash_install(void);
void dsm_crash_uninstall(void);
/* Print the report for signal sig (async-signal-safe); uc is the interrupted context. */
void dsm_crash_report(int sig, const siginfo_t *si, const void *uc);

#endif

/*
 * fault.h - the SIGSEGV handler that turns an access to a protected page of the global
 * space into FAULT -> GRANT -> mprotect on the faulting thread's channel.
 *
 * Faults outside the space (and SIGSEGVs sent with kill) go to the action installed before
 * dsm_init, or, where that was the default or "ignore", kill the process with SIGSEGV as if
 * libdsm were not there, after the report of crash.h. The handler is async-signal-safe. A
 * fault the daemon cannot serve, a lost daemon, or a fault wait longer than
 * $DSM_FAULT_TIMEOUT seconds prints a message and ends the rank with _exit(1): the faulting
 * instruction cannot be given an error code.
 */
#ifndef DSM_FAULT_H
#define DSM_FAULT_H

#include "dsm_status.h"

/* x86-64 page-fault error code bits (REG_ERR of the signal context): the access was a
 * write; it was an instruction fetch. */
#define DSM_X86_PF_WRITE 2
#define DSM_X86_PF_INSTR 16

/* Install the handler (dsm_rt must describe the mapped space). Returns 0 or DSM_ESYS (logged). */
dsm_status_t dsm_fault_install(void);

/* Put back the action found at install time, unless the application replaced ours since. */
void dsm_fault_uninstall(void);

#endif

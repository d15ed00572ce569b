/*
 * service.h - the rank's service thread: applies the daemon's protection changes
 * (PROTECT -> mprotect -> PROTECT_ACK) and its ABORT, on the service channel.
 *
 * The thread blocks every signal. When the daemon goes away while the rank is not
 * finalizing, or sends ABORT, the thread prints why ("dsm: rank R: ...") and ends the
 * rank with _exit(1): the job is failing and the application cannot repair it.
 */
#ifndef DSM_SERVICE_H
#define DSM_SERVICE_H

#include "dsm_status.h"

/* Connect the service channel (HELLO_SERVICE) and start the thread. Returns 0 or a status (logged). */
dsm_status_t dsm_service_start(void);

/*
 * Stop the thread (dsm_finalize, state FINALIZING, after the FINALIZE reply): shut the
 * channel down, join the thread, close the channel.
 */
void dsm_service_stop(void);

/*
 * A thread that saw its own channel end calls this before reporting: if the service
 * thread is ending the rank (or will, having seen the same end), the rank dies with the
 * service thread's message rather than a second one. Returns after a few seconds if it
 * does not. Async-signal-safe.
 */
void dsm_service_grace(void);

#endif

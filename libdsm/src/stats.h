/*
 * stats.h - the rank's own counters, reported to its daemon in FINALIZE (the daemon adds
 * what only it can count: pages fetched, invalidations, messages and bytes).
 *
 * Counters are relaxed atomics: any thread, and the fault handler, may bump them.
 */
#ifndef DSM_STATS_H
#define DSM_STATS_H

#include <stdbool.h>

#include "dsm_chan.h"

/* Zero the counters and start the wall clock (dsm_init). */
void dsm_stats_start(void);
/* Count one fault of the global space; async-signal-safe. */
void dsm_stats_fault(bool write);
void dsm_stats_lock_acquired(void);
void dsm_stats_barrier(void);
/* Fill a FINALIZE message's a..e (read faults, write faults, lock acquires, barriers, wall ns). */
void dsm_stats_fill(struct dsmc_msg *m);

#endif

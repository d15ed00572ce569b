/*
 * stats.h - the rank's own clocks, reported to its daemon in FINALIZE (the daemon counts
 * everything else: faults, pages fetched, invalidations, locks, barriers, messages, bytes).
 *
 * The time breakdown: every wait in the runtime is timed and added to one of four clocks
 * (faults, locks and condition variables, barriers, the rest: atomics, fences, allocation);
 * wall time minus their sum is the time the rank computed. With several threads the waits
 * of all of them add up (as CPU time does), so they can exceed the wall time.
 *
 * The clocks are relaxed atomics: any thread, and the fault handler, may add to them.
 */
#ifndef DSM_STATS_H
#define DSM_STATS_H

#include <stdbool.h>

#include "dsm_chan.h"

/* Zero the counters and start the wall clock (dsm_init). */
void dsm_stats_start(void);
enum dsm_wait { DSM_WAIT_FAULT, DSM_WAIT_LOCK, DSM_WAIT_BARRIER, DSM_WAIT_OTHER, DSM_WAIT_KINDS };

/* Now on CLOCK_MONOTONIC, in ns; async-signal-safe. */
uint64_t dsm_stats_clock(void);
/* A wait of `kind` that began at `since` (dsm_stats_clock) ended now; async-signal-safe. */
void dsm_stats_waited(enum dsm_wait kind, uint64_t since);
/* Fill a FINALIZE message's a..e: the fault, lock, barrier and other waits, and the wall
 * time, in ns. */
void dsm_stats_fill(struct dsmc_msg *m);

#endif

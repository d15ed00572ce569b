/*
 * hits.h - node-local hits in the rank: a fault on a page its node already holds is resolved
 * by the faulting thread itself (claim, check, mprotect), without a message to the daemon.
 * The protocol and its invariants: dsm_hits.h.
 */
#ifndef DSM_SRC_HITS_H
#define DSM_SRC_HITS_H

#include <stdbool.h>
#include <stdint.h>

#include "dsm_status.h"

/* Map the node's table from the frame memfd (it follows the space_bytes of frames); lrank is
 * this rank's row. Returns 0 or a status (logged). */
dsm_status_t dsm_hits_attach(int memfd, uint64_t space_bytes, uint32_t lrank);
void dsm_hits_detach(void);

/* Resolve a fault on page (a write if write) from the node's frames: true if the page is now
 * mapped with that access (and perhaps a run after it), false if the daemon must be asked.
 * Async-signal-safe: atomics, thread-local state and one mprotect. */
bool dsm_hits_try(uint64_t page, bool write);

/* The daemon granted this thread a run of n pages from page at scan length `scan` (GRANT's
 * d; n for a direct read): a scan the thread's next faults continue, its length as the
 * daemon's. The thread's scans see every fault it takes (hits, direct reads, the daemon's
 * grants), so they alone say whether a fault continues one (dsm_hits_scan_hint). */
void dsm_hits_note(uint64_t page, uint32_t n, uint32_t scan);

/* A block was freed: every thread's scans end (the next allocation on its pages starts
 * none). Async-signal-safe. */
void dsm_hits_forget_scans(void);

/* The run this thread's scans would give a fault on page (0: none extends to it), for the
 * daemon's grants and reads ahead (FAULT's c): 0 tells the daemon the fault starts no scan
 * whatever the faults it saw itself say, since it does not see the thread's hits and
 * direct reads in between. */
uint32_t dsm_hits_scan_hint(uint64_t page);

/* The node's door[] (dsm_direct.h), read-write; NULL when the daemon offers no direct reads. */
uint16_t *dsm_hits_door(void);
/* DSM_HITS_DELAY_US: a busy pause inside a race window (tests only; async-signal-safe). */
void dsm_hits_test_delay(void);
/* A hit on page is under way in this rank (its mprotect may not have landed yet). */
bool dsm_hits_busy(uint64_t page);

#endif

/*
 * affinity.h - where dsm_parallel's threads run: the rank's placement settings and the
 * machine's topology (loaded once, at the first dsm_parallel), the plan for a thread count,
 * the --report-bindings lines, and binding the calling thread.
 *
 * The rank's part of the machine comes from DSM_LOCAL_RANK / DSM_LOCAL_RANKS /
 * DSM_LOCAL_NODES (dsmrun sets them; a standalone rank is rank 0 of 1 with one daemon), so
 * the plan keeps the cores that the machine's daemons take out of the workers' set exactly
 * as the daemons compute it (dsm_place.h). The topology stays loaded until the process exits.
 */
#ifndef DSM_AFFINITY_H
#define DSM_AFFINITY_H

#include <stdbool.h>

#include "dsm_place.h"

/* The plan for `nthreads` threads of this rank into *plan (dsm_place_plan_fini it).
 * Returns 0 or a status (logged). */
dsm_status_t dsm_affinity_plan(int nthreads, struct dsm_place_plan *plan);

/*
 * When DSM_REPORT_BINDINGS=1, print "rank R thread T -> pu P core C numa N package K"
 * (or "-> unbound") for every thread of the plan on stderr, in one write; once per thread
 * count in a row (a loop of dsm_parallel calls reports once).
 */
void dsm_affinity_report(const struct dsm_place_plan *plan);

/* Bind the calling thread to `loc` (nothing for an unbound location or a topology that is
 * not this machine's). A failure is logged once per process and otherwise ignored. */
void dsm_affinity_bind(const struct dsm_place_loc *loc);

/* The calling thread's CPU binding, to give back with dsm_affinity_restore; NULL when
 * there is nothing to restore (no binding applies). */
hwloc_bitmap_t dsm_affinity_save(void);
/* Give the calling thread the binding `saved` again and free it (NULL: nothing). */
void dsm_affinity_restore(hwloc_bitmap_t saved);

#endif

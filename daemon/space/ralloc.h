/*
 * ralloc.h - a first-fit allocator of page ranges.
 *
 * Hands out runs of consecutive pages from one interval [first, first+n) and remembers
 * every run it gave out, so a free needs only the run's first page. Used for the global
 * space's collective area (on node 0) and for each node's dsm_malloc arena.
 * Invariants: free runs are sorted, disjoint and never adjacent (merged on free); every
 * page of the interval is in exactly one free or allocated run.
 */
#ifndef DSMD_RALLOC_H
#define DSMD_RALLOC_H

#include <stddef.h>
#include <stdint.h>

#include "dsm_status.h"

struct dsmd_run {
    uint64_t first;
    uint64_t n;
};

struct dsmd_ralloc {
    struct dsmd_run *free;  /* sorted by first */
    size_t nfree, capfree;
    struct dsmd_run *used;  /* sorted by first */
    size_t nused, capused;
    uint64_t total_free;    /* pages */
};

dsm_status_t dsmd_ralloc_init(struct dsmd_ralloc *r, uint64_t first, uint64_t n);
void dsmd_ralloc_fini(struct dsmd_ralloc *r);
/* Allocate n > 0 pages; DSM_ENOSPACE if no free run is long enough. */
dsm_status_t dsmd_ralloc_alloc(struct dsmd_ralloc *r, uint64_t n, uint64_t *first);
/* Length of the allocated run starting at `first`; DSM_EINVAL if there is none. */
dsm_status_t dsmd_ralloc_find(const struct dsmd_ralloc *r, uint64_t first, uint64_t *n);
/* The allocated run holding `page` into *run; DSM_EINVAL if the page is in none. */
dsm_status_t dsmd_ralloc_holding(const struct dsmd_ralloc *r, uint64_t page, struct dsmd_run *run);
/* Free the allocated run starting at `first`; *n gets its length. DSM_EINVAL if none. */
dsm_status_t dsmd_ralloc_free(struct dsmd_ralloc *r, uint64_t first, uint64_t *n);
/* Longest free run, in pages. */
uint64_t dsmd_ralloc_largest(const struct dsmd_ralloc *r);

#endif

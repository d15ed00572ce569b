/*
 * space.h - the layout of the global address space and the home of every page.
 *
 * The space is npages pages. The lower half is the collective area: dsm_coalloc regions,
 * allocated by node 0 and homed block-wise over the nodes. The upper half is cut into one
 * equal arena per node for dsm_malloc; a page in node n's arena is homed on n, so its home
 * follows from its number alone (no message needed to find it).
 *
 *   page 0                 coll_pages            coll_pages + k*arena_pages
 *   | collective (coalloc) | arena node 0 | arena node 1 | ... | (tail, unused)
 */
#ifndef DSMD_SPACE_H
#define DSMD_SPACE_H

#include <stdint.h>

#include "dsm_status.h"

#define DSMD_NO_HOME (-1)
#define DSMD_HOME_UNDECIDED (-2) /* a first-touch page nobody has touched (firsttouch.c) */

struct dsmd_space {
    uint64_t npages;
    int      nnodes;
    int      arena_nodes;   /* nodes with a dsm_malloc arena: the first ones */
    uint64_t coll_pages;   /* pages [0, coll_pages) are the collective area */
    uint64_t arena_pages;  /* pages per node arena */
    int16_t *home;         /* per page; DSMD_NO_HOME while unallocated in the collective area */
};

/* nnodes nodes hold homes; the first arena_nodes of them (those that run ranks: memory
 * nodes have no use for one) each get a dsm_malloc arena. */
dsm_status_t dsmd_space_init(struct dsmd_space *s, uint64_t npages, int nnodes, int arena_nodes);
void dsmd_space_fini(struct dsmd_space *s);

/* First page of node n's dsm_malloc arena. */
static inline uint64_t dsmd_space_arena_first(const struct dsmd_space *s, int n)
{
    return s->coll_pages + (uint64_t)n * s->arena_pages;
}

/* The node whose arena holds page p, or DSMD_NO_HOME if p is in no arena. */
int dsmd_space_arena_node(const struct dsmd_space *s, uint64_t p);

/* Home of page p, DSMD_NO_HOME if p is not allocated / out of range, DSMD_HOME_UNDECIDED
 * for a first-touch page whose home this node has not learned. */
static inline int dsmd_space_home(const struct dsmd_space *s, uint64_t p)
{
    return p < s->npages ? s->home[p] : DSMD_NO_HOME;
}

/* Home of page i of a collective region of n pages under block placement. */
int dsmd_space_block_home(uint64_t i, uint64_t n, int nnodes);

/* A collective region [first, first+n) was allocated, its homes placed by `place`
 * (enum dsmw_place: block over the nodes; cyclic, `arg` pages per node in turn; all on
 * node `arg`; first touch: undecided), or freed. */
void dsmd_space_region_add(struct dsmd_space *s, uint64_t first, uint64_t n, int place, uint64_t arg);
void dsmd_space_region_free(struct dsmd_space *s, uint64_t first, uint64_t n);

#endif

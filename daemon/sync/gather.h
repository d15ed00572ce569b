/*
 * gather.h - node 0's count of one barrier-like exchange (a barrier, or finalize): which
 * epoch it is at and how many nodes have arrived in it. daemon/sync.c and the protocol test
 * harness run the same two steps, so they agree on what an arrival may be.
 *
 * Decided here: an ARRIVE must name the epoch the manager is at (a node cannot arrive at the
 * next barrier before it was released from this one); anything else is DSM_EPROTO.
 */
#ifndef DSMD_GATHER_H
#define DSMD_GATHER_H

#include <stdint.h>

#include "dsm_status.h"

struct dsmd_gather_mgr {
    uint64_t epoch;    /* exchanges this manager has released */
    int      arrived;  /* nodes arrived in the current one */
};

/* A node arrives with `epoch`: DSM_EPROTO if it is not the current one, else counted. */
static inline dsm_status_t dsmd_gather_arrive(struct dsmd_gather_mgr *g, uint64_t epoch)
{
    if (epoch != g->epoch)
        return DSM_EPROTO;
    g->arrived++;
    return DSM_OK;
}

/* 1 when all nnodes have arrived: the exchange ends (release everyone with its epoch,
 * g->epoch - 1 after this returns) and the next one starts empty; else 0. */
static inline int dsmd_gather_complete(struct dsmd_gather_mgr *g, int nnodes)
{
    if (g->arrived < nnodes)
        return 0;
    g->arrived = 0;
    g->epoch++;
    return 1;
}

#endif

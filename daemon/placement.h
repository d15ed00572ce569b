/*
 * placement.h - where dsmd's progress thread runs and how the node's frames are placed.
 *
 * At start-up the daemon computes the machine's placement plan (dsm_place.h) from its
 * environment (DSM_PLACEMENT, DSM_LOCAL_NODE/NODES, DSM_LOCAL_RANKS, DSM_NETDEV, set by
 * dsmrun) and binds its thread, the event loop that makes every protocol step (the
 * "progress thread"), to its core: one in the NUMA domain nearest its network device
 * (DSM_NETDEV; tcp over loopback has none, and the core is then chosen by the policy).
 * Ranks compute the same plan and leave that core to the daemon when the machine has
 * cores to spare. With DSM_REPORT_BINDINGS=1 it prints "rank R dsmd -> ..." for each of
 * its ranks on stderr, before READY, so ahead of any rank's output. When the topology is
 * not this machine's, node 0's daemon says so in one note line and nothing is bound.
 *
 * The frames get the first-touch memory policy (dsm_topo_firsttouch; the memfd's shared
 * policy, so the ranks' mappings have it too): a home page lands on the NUMA domain of the
 * thread that touches it first, a rank's thread for pages the node uses itself, the daemon
 * (near the network device) for pages first served to other nodes. Policy none leaves the
 * frames with the kernel's default.
 */
#ifndef DSMD_PLACEMENT_H
#define DSMD_PLACEMENT_H

#include <stddef.h>

#include "dsmd.h"

/* Compute, bind, report. Returns 0, or DSM_ECONFIG (logged) for bad settings; a topology
 * or binding failure is only a warning: the daemon runs unbound. */
dsm_status_t dsmd_placement_start(const struct dsmd_config *cfg);

/* First-touch policy on the daemon's view of the frames (a failure is a warning). */
void dsmd_placement_frames(void *frames, size_t len);

void dsmd_placement_fini(void);

#endif

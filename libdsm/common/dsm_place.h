/*
 * dsm_place.h - where the threads of a rank and the daemons of a machine run: the placement
 * policy, its settings from the environment, and the plan it gives for one hwloc topology.
 *
 * The plan is a pure function of (topology, policy, this rank's index among the ranks on
 * the machine, their number, the number of daemons on the machine, the rank's thread count,
 * the usable PUs, the PUs near the daemons' network device): it binds nothing. Every rank
 * and every daemon of a machine computes it alike from the same inputs, so they agree on
 * the daemons' cores without talking; dsmrun passes the counts in the environment.
 *
 * The plan, for policy compact or scatter:
 *   cores    every core with a usable PU (a PU that has no core is its own core).
 *   order    compact: by NUMA domain, then core index, so one domain fills before the
 *            next; scatter: round-robin over packages, within a package over its NUMA
 *            domains, within a domain the cores in order, so consecutive threads land in
 *            different domains.
 *   daemons  daemon d takes the first PU of candidate core d (mod the core count), the
 *            candidates being the cores in the policy order reversed, cores of the NUMA
 *            domain nearest the network device first. When the machine has cores to spare
 *            the daemons' cores are left out of the workers' set, otherwise they are shared:
 *            to spare means every rank still gets a core of its own (cores >= daemons +
 *            ranks) and the daemons take at most 1/DSM_PLACE_SPARE_SHARE of the cores, so
 *            a small machine (2 cores: half of it) is not taken from the workers.
 *   ranks    the workers' cores, in policy order, are cut into `local_ranks` consecutive
 *            blocks whose sizes differ by at most one; the rank's part is block local_rank.
 *            With more ranks than cores the cut is made over the slots below instead (and
 *            with more ranks than PUs rank i shares slot i mod the slot count).
 *   threads  the rank's slots are the first PU of each core of its part, in order, then the
 *            second PU of each, ...: hyperthreads only after every core has one thread.
 *            Thread t runs on slot t mod the slot count.
 * Policy none: nothing is bound; every location is "unbound" and the part is every usable PU.
 *
 * Reported ids: pu and numa are operating-system numbers (what taskset and numactl use);
 * core and package are hwloc logical indexes (package 0 where the topology has none).
 */
#ifndef DSM_PLACE_H
#define DSM_PLACE_H

#include <hwloc.h>
#include <stdbool.h>
#include <stddef.h>

#include "dsm_status.h"

enum dsm_place_policy { DSM_PLACE_NONE = 0, DSM_PLACE_COMPACT, DSM_PLACE_SCATTER };

/* The daemons' cores are kept from the workers only while they are at most this share of
 * the cores (1/4), besides leaving every rank a core. */
#define DSM_PLACE_SPARE_SHARE 4

/* The policy when neither dsmrun --placement nor DSM_PLACEMENT names one. */
#define DSM_PLACE_DEFAULT DSM_PLACE_COMPACT

/* Inputs of the plan. */
struct dsm_place_params {
    enum dsm_place_policy policy;
    int local_rank;   /* this rank's index among the ranks on the machine */
    int local_ranks;  /* ranks on the machine (>= 1) */
    int local_nodes;  /* daemons on the machine (>= 0) */
    int nthreads;     /* threads of this rank to place (>= 0) */
    hwloc_const_cpuset_t usable; /* PUs that may be used; NULL: the topology's allowed set */
    hwloc_const_cpuset_t near;   /* PUs near the network device; NULL: no device */
};

/* Where one thread runs; pu < 0: unbound (the other fields are then -1 too). */
struct dsm_place_loc {
    int pu, core, numa, package;
};

struct dsm_place_plan {
    bool bound;                    /* policy is compact or scatter */
    bool spare;                    /* the daemons' cores are kept from the workers */
    int  ncores;                   /* usable cores */
    int  nnodes;                   /* = local_nodes */
    struct dsm_place_loc *node;    /* [nnodes]: daemon i of the machine */
    int  nthreads;                 /* = nthreads */
    struct dsm_place_loc *thread;  /* [nthreads]: thread t of this rank */
    hwloc_bitmap_t part;           /* the rank's part of the machine (PUs) */
};

/*
 * Compute the plan for `p` on `topo` into *plan (free it with dsm_place_plan_fini).
 * Returns 0; DSM_EINVAL for inconsistent parameters; DSM_ECONFIG when no usable PU is in
 * the topology; DSM_ENOMEM. Logs nothing: the caller knows what the inputs meant.
 */
dsm_status_t dsm_place_compute(hwloc_topology_t topo, const struct dsm_place_params *p,
                               struct dsm_place_plan *plan);
void dsm_place_plan_fini(struct dsm_place_plan *plan);

/* "pu P core C numa N package K", or "unbound"; returns what snprintf does. */
int dsm_place_format(const struct dsm_place_loc *loc, char *buf, size_t n);

/* "compact", "scatter", "none". */
const char *dsm_place_policy_name(enum dsm_place_policy p);
/* The policy named `s`; -1 for an unknown name. */
int dsm_place_policy_parse(const char *s);

/*
 * The placement settings of a process, from its environment (set by dsmrun):
 *   DSM_PLACEMENT        compact | scatter | none (default DSM_PLACE_DEFAULT)
 *   DSM_REPORT_BINDINGS  1: print the bindings (dsmrun --report-bindings)
 *   DSM_LOCAL_RANK, DSM_LOCAL_RANKS   this rank among the ranks on the machine (default 0, 1)
 *   DSM_LOCAL_NODE, DSM_LOCAL_NODES   this daemon among the daemons on the machine (0, 1)
 *   DSM_NETDEV           the network or RDMA device the daemons use (eth0, mlx5_0, ...);
 *                        unset: none (tcp over loopback has none)
 */
struct dsm_place_env {
    enum dsm_place_policy policy;
    bool report;
    int  local_rank, local_ranks, local_node, local_nodes;
    const char *netdev; /* NULL: none */
};

/* Read the settings; local_ranks defaults to `dflt_local_ranks`. Returns 0 or DSM_ECONFIG
 * (logged, naming the variable). */
dsm_status_t dsm_place_env_read(struct dsm_place_env *e, int dflt_local_ranks);

#endif

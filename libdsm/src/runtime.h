/*
 * runtime.h - the rank's runtime record: who it is in the job, where its daemon is, the
 * global space, and the lifecycle state every public call checks first.
 *
 * The record is written by dsm_init before the state becomes READY and not changed until
 * dsm_finalize, so readers (the fault handler included) need no lock.
 */
#ifndef DSM_RUNTIME_H
#define DSM_RUNTIME_H

#include <stdatomic.h>
#include <stdbool.h>
#include <sys/un.h>

#include "dsm_chan.h"
#include "sigsafe.h"
#include "vm.h"

enum dsm_rt_state {
    DSM_RT_NEW = 0,      /* before dsm_init (or after a failed one) */
    DSM_RT_STARTING,     /* inside dsm_init */
    DSM_RT_READY,        /* between dsm_init and dsm_finalize */
    DSM_RT_FINALIZING,   /* inside dsm_finalize: losing the daemon is expected now */
    DSM_RT_DONE,         /* after dsm_finalize; dsm_init may not be called again */
};

struct dsm_runtime {
    int           rank, nranks, node, nnodes;
    int           lrank;         /* this rank's index among its node's (its row of dsm_hits.h) */
    int           memory_nodes;  /* the last nodes, which run no rank and have no dsm_malloc arena */
    struct dsm_vm vm;
    char          consistency[16];  /* the model's name, as the daemon gave it */
    enum dsm_model model;           /* and its id (dsm_chan.h) */
    int           alloc_sites;      /* send allocations' call sites (dsmrun --hotspots) */
    char          socket_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    int           fault_timeout_s;  /* receive timeout of fault waits; 0 = none */
    int           fault_spin_us;    /* polling before a fault wait sleeps */
    int           hits_delay_us;    /* a pause inside each hit's race windows (tests only) */
    int           main_fd;          /* main channel (the dsm_init thread's) */
    int           service_fd;       /* service channel */
    _Atomic uint32_t *applied;      /* per page: grants applied by fault handlers (dsm_chan.h) */
    bool          standalone;       /* socket_path is in a private directory of ours */
    _Atomic int   exit_status;      /* dsm_abort's status for dsm_rt_die, 0: the usual 1 */
};

extern struct dsm_runtime dsm_rt;

enum dsm_rt_state dsm_rt_state(void);
void dsm_rt_set_state(enum dsm_rt_state st);
/* Move from `from` to `to` atomically; false if the state was not `from`. */
bool dsm_rt_transition(enum dsm_rt_state from, enum dsm_rt_state to);

/*
 * Gate of every public call but dsm_init/dsm_strerror: 0 when READY, else DSM_ESTATE after
 * logging "<fn> called before dsm_init" (or after dsm_finalize).
 */
dsm_status_t dsm_rt_check(const char *fn);

/*
 * End the rank from any context (async-signal-safe): emit the line, remove a standalone
 * rank's socket and private directory (its daemon sees its stdin close and exits), and
 * _exit(1), or with dsm_abort's status once it was called.
 */
_Noreturn void dsm_rt_die(struct dsm_sline *l);

#endif

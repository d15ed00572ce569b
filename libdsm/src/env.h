/*
 * env.h - the rank's configuration from its environment.
 *
 *   DSM_SOCKET         the node daemon's socket (set by dsmrun); unset or empty: standalone
 *   DSM_RANK, DSM_NRANKS, DSM_NODE   the rank's place in the job (required with DSM_SOCKET,
 *                      except DSM_NODE); standalone: rank 0 of 1 on node 0
 *   DSM_FAULT_TIMEOUT  seconds a fault may wait for its grant (default 300, 0 = forever)
 *   DSM_FAULT_SPIN_US  microseconds a fault polls for its grant before it sleeps (default
 *                      DSM_FAULT_SPIN_DEFAULT on machines with more than
 *                      DSM_FAULT_SPIN_MIN_CPUS cores, else 0: where ranks and daemons
 *                      outnumber the cores, a polling rank takes the core its daemon needs)
 */
#ifndef DSM_ENV_H
#define DSM_ENV_H

#include "dsm_status.h"

#define DSM_FAULT_TIMEOUT_DEFAULT 300
#define DSM_FAULT_SPIN_DEFAULT    100
#define DSM_FAULT_SPIN_MIN_CPUS   4

struct dsm_env {
    const char *socket; /* NULL when standalone */
    int         rank, nranks, node;
    int         fault_timeout_s;
    int         fault_spin_us;
    int         hits_delay_us; /* DSM_HITS_DELAY_US: tests widen a hit's race windows */
};

/* Read and check the variables. Returns 0 or DSM_ECONFIG (logged, naming the variable). */
dsm_status_t dsm_env_read(struct dsm_env *env);

#endif

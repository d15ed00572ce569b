/* affinity.c - where dsm_parallel's threads run; see affinity.h. */
#include "affinity.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "dsm_log.h"
#include "dsm_topo.h"
#include "runtime.h"

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static struct dsm_place_env g_env;
static struct dsm_topo g_topo;
static dsm_status_t g_load_st;
static _Atomic int g_reported;     /* thread count of the last report, 0 before any */
static _Atomic int g_bind_warned;

/* pthread_once routine: settings and topology, result in g_load_st. */
static void load(void)
{
    g_load_st = dsm_place_env_read(&g_env, 1);
    if (g_load_st == 0)
        g_load_st = dsm_topo_load(&g_topo, g_env.netdev, NULL, NULL);
    if (g_load_st == 0 && !g_topo.thissystem && g_env.policy != DSM_PLACE_NONE)
        DSM_INFO("the hwloc topology is not this machine's (%s): threads are placed by it but not bound",
                 g_topo.source);
}

dsm_status_t dsm_affinity_plan(int nthreads, struct dsm_place_plan *plan)
{
    struct dsm_place_params p;
    dsm_status_t st;

    pthread_once(&g_once, load);
    if (g_load_st != 0)
        return g_load_st; /* logged by load() */
    p = (struct dsm_place_params){ .policy = g_env.policy, .local_rank = g_env.local_rank,
                                   .local_ranks = g_env.local_ranks, .local_nodes = g_env.local_nodes,
                                   .nthreads = nthreads, .usable = g_topo.usable, .near = g_topo.near };
    st = dsm_place_compute(g_topo.topo, &p, plan);
    if (st != 0)
        DSM_ERR("dsm_parallel: no placement for %d threads (%s policy, local rank %d of %d, %d daemons): %s",
                nthreads, dsm_place_policy_name(p.policy), p.local_rank, p.local_ranks, p.local_nodes,
                dsm_status_str(st));
    return st;
}

void dsm_affinity_report(const struct dsm_place_plan *plan)
{
    size_t cap = (size_t)plan->nthreads * 96 + 1, len = 0;
    char *buf;

    if (!g_env.report || atomic_exchange(&g_reported, plan->nthreads) == plan->nthreads)
        return;
    buf = malloc(cap);
    if (buf == NULL)
        return; /* a report is not worth failing the call for */
    for (int t = 0; t < plan->nthreads && len < cap; t++) {
        len += (size_t)snprintf(buf + len, cap - len, "rank %d thread %d -> ", dsm_rt.rank, t);
        if (len < cap)
            len += (size_t)dsm_place_format(&plan->thread[t], buf + len, cap - len);
        if (len < cap)
            buf[len++] = '\n';
    }
    if (len > cap)
        len = cap;
    /* one write: the lines stay together and ahead of anything the threads print */
    if (write(STDERR_FILENO, buf, len) < 0)
        DSM_DEBUG("writing the binding report: stderr is gone");
    free(buf);
}

void dsm_affinity_bind(const struct dsm_place_loc *loc)
{
    if (loc->pu < 0 || dsm_topo_bind_thread(&g_topo, loc->pu) == 0)
        return;
    if (atomic_exchange(&g_bind_warned, 1) == 0)
        DSM_WARN("dsm_parallel: cannot bind a thread to pu %d; threads run unbound where binding fails", loc->pu);
}

hwloc_bitmap_t dsm_affinity_save(void)
{
    hwloc_bitmap_t set;

    if (!g_topo.thissystem || g_env.policy == DSM_PLACE_NONE)
        return NULL;
    set = hwloc_bitmap_alloc();
    if (set != NULL && dsm_topo_get_thread(&g_topo, set) != 0) {
        hwloc_bitmap_free(set);
        set = NULL;
    }
    return set;
}

void dsm_affinity_restore(hwloc_bitmap_t saved)
{
    if (saved == NULL)
        return;
    if (dsm_topo_set_thread(&g_topo, saved) != 0)
        DSM_WARN("dsm_parallel: cannot give the calling thread its CPU binding back");
    hwloc_bitmap_free(saved);
}

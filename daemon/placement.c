/* placement.c - dsmd's progress thread binding and frame placement; see placement.h. */
#include "placement.h"

#include <stdbool.h>
#include <stdio.h>
#include <unistd.h>

#include "dsm_log.h"
#include "dsm_place.h"
#include "dsm_topo.h"

static struct dsm_topo g_topo;
static bool g_loaded; /* a topology is loaded and the policy binds */

/* "rank R dsmd -> LOC (WHY)" for every rank of this node, in one write. */
static void report(const struct dsmd_config *cfg, const struct dsm_place_loc *loc, const char *why)
{
    char where[64], line[512];

    dsm_place_format(loc, where, sizeof(where));
    for (int r = cfg->first_rank; r < cfg->first_rank + cfg->local_ranks; r++) {
        int n = snprintf(line, sizeof(line), "rank %d dsmd -> %s (%s)\n", r, where, why);

        if (n > 0 && write(STDERR_FILENO, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1) < 0)
            return;
    }
}

/* Bind the progress thread to loc, or say why not. */
static void bind_self(const struct dsmd_config *cfg, const struct dsm_place_loc *loc)
{
    if (!g_topo.thissystem) {
        if (cfg->node == 0)
            dprintf(STDERR_FILENO, "dsm: note: the hwloc topology is not this machine's (%s): placement is "
                    "computed and reported from it, nothing is bound\n", g_topo.source);
        return;
    }
    if (dsm_topo_bind_thread(&g_topo, loc->pu) != 0)
        DSM_WARN("cannot bind the progress thread to pu %d; it runs unbound", loc->pu);
}

dsm_status_t dsmd_placement_start(const struct dsmd_config *cfg)
{
    struct dsm_place_env e;
    struct dsm_place_params p;
    struct dsm_place_plan plan;
    char why[256];
    dsm_status_t st = dsm_place_env_read(&e, cfg->local_ranks > 0 ? cfg->local_ranks : 1); /* memory node: 0 */

    if (st != 0)
        return st;
    if (e.policy == DSM_PLACE_NONE) {
        if (e.report)
            report(cfg, &(struct dsm_place_loc){ -1, -1, -1, -1 }, "placement none");
        return 0;
    }
    if (dsm_topo_load(&g_topo, e.netdev, cfg->transport, cfg->listen) != 0) {
        DSM_WARN("no topology: the progress thread runs unbound"); /* the cause is logged */
        return 0;
    }
    p = (struct dsm_place_params){ .policy = e.policy, .local_ranks = e.local_ranks,
                                   .local_nodes = e.local_nodes, .usable = g_topo.usable, .near = g_topo.near };
    st = dsm_place_compute(g_topo.topo, &p, &plan);
    if (st != 0) {
        DSM_WARN("no placement (%s): the progress thread runs unbound", dsm_status_str(st));
        dsm_topo_fini(&g_topo);
        return 0;
    }
    g_loaded = true;
    bind_self(cfg, &plan.node[e.local_node]);
    if (e.report) {
        snprintf(why, sizeof(why), "%s%s%s; core %s the workers", g_topo.where,
                 g_topo.near ? "" : ", chosen by policy ", g_topo.near ? "" : dsm_place_policy_name(e.policy),
                 plan.spare ? "kept from" : "shared with");
        report(cfg, &plan.node[e.local_node], why);
    }
    dsm_place_plan_fini(&plan);
    return 0;
}

void dsmd_placement_frames(void *frames, size_t len)
{
    if (g_loaded && dsm_topo_firsttouch(&g_topo, frames, len) != 0)
        DSM_WARN("cannot give the frames the first-touch memory policy (mbind refused); they keep the default");
}

void dsmd_placement_fini(void)
{
    if (g_loaded)
        dsm_topo_fini(&g_topo);
    g_loaded = false;
}

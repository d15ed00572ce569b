/* dsm_place.c - the placement plan of a rank's threads and a machine's daemons; see dsm_place.h. */
#include "dsm_place.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dsm_log.h"

/* One usable core: hwloc object, reported ids, usable PUs (OS numbers, logical order). */
struct core {
    hwloc_obj_t obj;
    int core, numa, numa_l, package;
    int npus;
    int *pus;
};

struct cores {
    struct core *v;
    int n;
    int *pubuf; /* storage of every core's pus */
};

/* A thread's place in a part: core (index into cores.v) and its pu-th usable PU. */
struct slot {
    int core, pu;
};

/* The NUMA node whose cpuset meets `set` first in logical order, or NULL. */
static hwloc_obj_t numa_of(hwloc_topology_t topo, hwloc_const_cpuset_t set)
{
    hwloc_obj_t n = NULL;

    while ((n = hwloc_get_next_obj_by_type(topo, HWLOC_OBJ_NUMANODE, n)) != NULL)
        if (n->cpuset != NULL && hwloc_bitmap_intersects(n->cpuset, set))
            return n;
    return NULL;
}

/* Fill c's ids and usable PUs (into buf) from its object. Returns the PU count. */
static int core_fill(hwloc_topology_t topo, hwloc_const_cpuset_t usable, struct core *c, int *buf)
{
    hwloc_obj_t numa = numa_of(topo, c->obj->cpuset);
    hwloc_obj_t pkg = hwloc_get_ancestor_obj_by_type(topo, HWLOC_OBJ_PACKAGE, c->obj);
    hwloc_obj_t pu = NULL;

    c->core = (int)c->obj->logical_index;
    c->numa = numa ? (int)numa->os_index : 0;
    c->numa_l = numa ? (int)numa->logical_index : 0;
    c->package = pkg ? (int)pkg->logical_index : 0;
    c->pus = buf;
    c->npus = 0;
    if (c->obj->type == HWLOC_OBJ_PU) {
        c->pus[c->npus++] = (int)c->obj->os_index;
        return 1;
    }
    while ((pu = hwloc_get_next_obj_inside_cpuset_by_type(topo, c->obj->cpuset, HWLOC_OBJ_PU, pu)) != NULL)
        if (hwloc_bitmap_isset(usable, pu->os_index))
            c->pus[c->npus++] = (int)pu->os_index;
    return c->npus;
}

/* Collect every core with a usable PU, in logical order. Returns 0 or DSM_ENOMEM. */
static dsm_status_t cores_collect(hwloc_topology_t topo, hwloc_const_cpuset_t usable, struct cores *cs)
{
    int npu = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_PU), used = 0;
    hwloc_obj_t pu = NULL;

    memset(cs, 0, sizeof(*cs));
    if (npu <= 0)
        return 0;
    cs->v = calloc((size_t)npu, sizeof(*cs->v));
    cs->pubuf = calloc((size_t)npu, sizeof(*cs->pubuf));
    if (cs->v == NULL || cs->pubuf == NULL)
        return DSM_ENOMEM;
    while ((pu = hwloc_get_next_obj_by_type(topo, HWLOC_OBJ_PU, pu)) != NULL) {
        hwloc_obj_t c = hwloc_get_ancestor_obj_by_type(topo, HWLOC_OBJ_CORE, pu);
        int i;

        if (!hwloc_bitmap_isset(usable, pu->os_index))
            continue;
        if (c == NULL)
            c = pu;
        for (i = cs->n - 1; i >= 0 && cs->v[i].obj != c; i--)
            ;
        if (i >= 0)
            continue; /* its core is in already, with all of its usable PUs */
        cs->v[cs->n].obj = c;
        used += core_fill(topo, usable, &cs->v[cs->n], cs->pubuf + used);
        cs->n++;
    }
    return 0;
}

static void cores_free(struct cores *cs)
{
    free(cs->v);
    free(cs->pubuf);
}

/* qsort context: the cores being ordered (qsort has no argument for it). */
static __thread const struct cores *g_sort_cores;

/* Compact order: NUMA domain, then logical order (the index itself). */
static int by_domain(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    const struct core *cx = &g_sort_cores->v[x], *cy = &g_sort_cores->v[y];

    if (cx->numa_l != cy->numa_l)
        return cx->numa_l < cy->numa_l ? -1 : 1;
    return (x > y) - (x < y);
}

/* Scatter grouping: package, then NUMA domain, then logical order. */
static int by_package(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    const struct core *cx = &g_sort_cores->v[x], *cy = &g_sort_cores->v[y];

    if (cx->package != cy->package)
        return cx->package < cy->package ? -1 : 1;
    return by_domain(a, b);
}

/*
 * Round-robin over the runs [start[j], start[j] + len[j]) of `in`: out gets the first
 * element of every run, then every second one, ..., skipping exhausted runs.
 */
static void interleave(const int *in, const int *start, const int *len, int nruns, int *out)
{
    int k = 0, took = 1;

    for (int r = 0; took; r++) {
        took = 0;
        for (int j = 0; j < nruns; j++) {
            if (r < len[j]) {
                out[k++] = in[start[j] + r];
                took = 1;
            }
        }
    }
}

/*
 * Cut s[lo, hi) into runs of equal key (key(i) of element s[i]); fill start/len; return
 * how many. Keys: 0 = (package, domain), 1 = package.
 */
static int runs_of(const struct cores *cs, const int *s, int lo, int hi, int key, int *start, int *len)
{
    int n = 0;

    for (int i = lo; i < hi; i++) {
        const struct core *c = &cs->v[s[i]], *p = i > lo ? &cs->v[s[i - 1]] : NULL;
        bool same = p != NULL && p->package == c->package && (key == 1 || p->numa_l == c->numa_l);

        if (!same) {
            start[n] = i;
            len[n++] = 0;
        }
        len[n - 1]++;
    }
    return n;
}

/* The cores in the policy's order into `order` [cs->n]. Returns 0 or DSM_ENOMEM. */
static dsm_status_t policy_order(const struct cores *cs, enum dsm_place_policy policy, int *order)
{
    int n = cs->n, npk;
    int *s = malloc(sizeof(int) * (size_t)n * 4), *start, *len, *tmp;

    if (s == NULL)
        return DSM_ENOMEM;
    start = s + n;
    len = s + 2 * n;
    tmp = s + 3 * n;
    for (int i = 0; i < n; i++)
        s[i] = i;
    g_sort_cores = cs;
    qsort(s, (size_t)n, sizeof(int), policy == DSM_PLACE_SCATTER ? by_package : by_domain);
    if (policy != DSM_PLACE_SCATTER) {
        memcpy(order, s, sizeof(int) * (size_t)n);
        free(s);
        return 0;
    }
    /* within each package, its domains round-robin; then the packages round-robin */
    npk = runs_of(cs, s, 0, n, 1, start, len);
    memcpy(tmp, s, sizeof(int) * (size_t)n);
    for (int p = 0; p < npk; p++) {
        int *dstart = malloc(sizeof(int) * 2 * (size_t)len[p]), nd;

        if (dstart == NULL) {
            free(s);
            return DSM_ENOMEM;
        }
        nd = runs_of(cs, s, start[p], start[p] + len[p], 0, dstart, dstart + len[p]);
        interleave(s, dstart, dstart + len[p], nd, tmp + start[p]);
        free(dstart);
    }
    interleave(tmp, start, len, npk, order);
    free(s);
    return 0;
}

/* Whether core c has a PU in `set`. */
static bool core_in(const struct core *c, hwloc_const_cpuset_t set)
{
    for (int i = 0; i < c->npus; i++)
        if (hwloc_bitmap_isset(set, (unsigned)c->pus[i]))
            return true;
    return false;
}

/* The daemons' cores into dcore[nnodes]: see "daemons" in dsm_place.h. */
static void daemon_cores(const struct cores *cs, const int *order, hwloc_const_cpuset_t near, int nnodes,
                         int *cand, int *dcore)
{
    int n = cs->n, k = 0;

    for (int pass = 0; pass < 2; pass++)
        for (int i = n - 1; i >= 0; i--)
            if ((near != NULL && core_in(&cs->v[order[i]], near)) == (pass == 0))
                cand[k++] = order[i];
    for (int d = 0; d < nnodes; d++)
        dcore[d] = cand[d % n];
}

/* The slots of the cores list[0..n): first PUs in list order, then second PUs, ... */
static int slots_of(const struct cores *cs, const int *list, int n, struct slot *out)
{
    int k = 0, maxp = 0;

    for (int i = 0; i < n; i++)
        if (cs->v[list[i]].npus > maxp)
            maxp = cs->v[list[i]].npus;
    for (int p = 0; p < maxp; p++)
        for (int i = 0; i < n; i++)
            if (p < cs->v[list[i]].npus)
                out[k++] = (struct slot){ list[i], p };
    return k;
}

/* Block `i` of `n` items cut into `parts` blocks differing by at most one: *first, *count. */
static void block(int n, int parts, int i, int *first, int *count)
{
    int base = n / parts, extra = n % parts;

    *count = base + (i < extra);
    *first = i * base + (i < extra ? i : extra);
}

static struct dsm_place_loc loc_of(const struct cores *cs, struct slot s)
{
    const struct core *c = &cs->v[s.core];

    return (struct dsm_place_loc){ .pu = c->pus[s.pu], .core = c->core, .numa = c->numa, .package = c->package };
}

/*
 * The rank's slots into *slots (allocated) given the workers' cores avail[0..navail):
 * see "ranks" and "threads" in dsm_place.h. Returns the slot count, or DSM_ENOMEM.
 */
static int rank_slots(const struct cores *cs, const int *avail, int navail, const struct dsm_place_params *p,
                      struct slot **slots)
{
    int first, count, total = 0;
    struct slot *all;

    for (int i = 0; i < navail; i++)
        total += cs->v[avail[i]].npus;
    all = calloc((size_t)total, sizeof(*all));
    if (all == NULL)
        return DSM_ENOMEM;
    if (p->local_ranks <= navail) {
        block(navail, p->local_ranks, p->local_rank, &first, &count);
        total = slots_of(cs, avail + first, count, all);
    } else {
        total = slots_of(cs, avail, navail, all);
        if (p->local_ranks <= total) {
            block(total, p->local_ranks, p->local_rank, &first, &count);
        } else {
            first = p->local_rank % total;
            count = 1;
        }
        memmove(all, all + first, sizeof(*all) * (size_t)count);
        total = count;
    }
    *slots = all;
    return total;
}

static bool params_ok(const struct dsm_place_params *p)
{
    return p->policy >= DSM_PLACE_NONE && p->policy <= DSM_PLACE_SCATTER && p->local_ranks >= 1 &&
           p->local_rank >= 0 && p->local_rank < p->local_ranks && p->local_nodes >= 0 && p->nthreads >= 0;
}

/* Unbound locations for policy none. */
static void plan_unbound(struct dsm_place_plan *plan)
{
    static const struct dsm_place_loc none = { -1, -1, -1, -1 };

    for (int i = 0; i < plan->nnodes; i++)
        plan->node[i] = none;
    for (int i = 0; i < plan->nthreads; i++)
        plan->thread[i] = none;
}

/* The bound plan once the cores are known. Returns 0 or DSM_ENOMEM. */
static dsm_status_t plan_bound(const struct cores *cs, const struct dsm_place_params *p, struct dsm_place_plan *plan)
{
    int n = cs->n, navail = 0, nslots;
    int *buf = malloc(sizeof(int) * ((size_t)n * 3 + (size_t)p->local_nodes));
    int *order, *cand, *avail, *dcore;
    struct slot *slots = NULL;
    dsm_status_t st;

    if (buf == NULL)
        return DSM_ENOMEM;
    order = buf;
    cand = buf + n;
    avail = buf + 2 * n;
    dcore = buf + 3 * n;
    st = policy_order(cs, p->policy, order);
    if (st != 0)
        goto out;
    daemon_cores(cs, order, p->near, p->local_nodes, cand, dcore);
    plan->spare = p->local_nodes > 0 && n >= p->local_nodes + p->local_ranks &&
                  p->local_nodes * DSM_PLACE_SPARE_SHARE <= n;
    for (int d = 0; d < p->local_nodes; d++)
        plan->node[d] = loc_of(cs, (struct slot){ dcore[d], 0 });
    for (int i = 0; i < n; i++) {
        bool taken = false;

        for (int d = 0; plan->spare && d < p->local_nodes; d++)
            taken = taken || dcore[d] == order[i];
        if (!taken)
            avail[navail++] = order[i];
    }
    nslots = rank_slots(cs, avail, navail, p, &slots);
    if (nslots < 0) {
        st = nslots;
        goto out;
    }
    for (int s = 0; s < nslots; s++)
        hwloc_bitmap_set(plan->part, (unsigned)cs->v[slots[s].core].pus[slots[s].pu]);
    for (int t = 0; t < p->nthreads; t++)
        plan->thread[t] = loc_of(cs, slots[t % nslots]);
out:
    free(slots);
    free(buf);
    return st;
}

dsm_status_t dsm_place_compute(hwloc_topology_t topo, const struct dsm_place_params *p, struct dsm_place_plan *plan)
{
    hwloc_const_cpuset_t usable = p->usable ? p->usable : hwloc_topology_get_allowed_cpuset(topo);
    struct cores cs;
    dsm_status_t st;

    memset(plan, 0, sizeof(*plan));
    if (!params_ok(p))
        return DSM_EINVAL;
    plan->bound = p->policy != DSM_PLACE_NONE;
    plan->nnodes = p->local_nodes;
    plan->nthreads = p->nthreads;
    plan->node = calloc((size_t)p->local_nodes + 1, sizeof(*plan->node));
    plan->thread = calloc((size_t)p->nthreads + 1, sizeof(*plan->thread));
    plan->part = hwloc_bitmap_alloc();
    st = cores_collect(topo, usable, &cs);
    if (st == 0 && (plan->node == NULL || plan->thread == NULL || plan->part == NULL))
        st = DSM_ENOMEM;
    if (st == 0 && cs.n == 0)
        st = DSM_ECONFIG;
    plan->ncores = cs.n;
    if (st == 0 && !plan->bound) {
        plan_unbound(plan);
        hwloc_bitmap_and(plan->part, usable, hwloc_topology_get_topology_cpuset(topo));
    } else if (st == 0) {
        st = plan_bound(&cs, p, plan);
    }
    cores_free(&cs);
    if (st != 0)
        dsm_place_plan_fini(plan);
    return st;
}

void dsm_place_plan_fini(struct dsm_place_plan *plan)
{
    free(plan->node);
    free(plan->thread);
    if (plan->part)
        hwloc_bitmap_free(plan->part);
    memset(plan, 0, sizeof(*plan));
}

int dsm_place_format(const struct dsm_place_loc *loc, char *buf, size_t n)
{
    if (loc->pu < 0)
        return snprintf(buf, n, "unbound");
    return snprintf(buf, n, "pu %d core %d numa %d package %d", loc->pu, loc->core, loc->numa, loc->package);
}

const char *dsm_place_policy_name(enum dsm_place_policy p)
{
    switch (p) {
    case DSM_PLACE_COMPACT: return "compact";
    case DSM_PLACE_SCATTER: return "scatter";
    case DSM_PLACE_NONE:    return "none";
    }
    return "?";
}

int dsm_place_policy_parse(const char *s)
{
    static const enum dsm_place_policy all[] = { DSM_PLACE_NONE, DSM_PLACE_COMPACT, DSM_PLACE_SCATTER };

    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        if (strcmp(s, dsm_place_policy_name(all[i])) == 0)
            return (int)all[i];
    return -1;
}

/* Variable `name` as an integer in [min, max], or dflt when unset or empty. 0 or DSM_ECONFIG (logged). */
static dsm_status_t env_int(const char *name, int min, int max, int dflt, int *out)
{
    const char *s = getenv(name);
    char *end;
    long v;

    *out = dflt;
    if (s == NULL || *s == '\0')
        return 0;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max) {
        DSM_ERR("%s=\"%s\" is not an integer in [%d, %d]", name, s, min, max);
        return DSM_ECONFIG;
    }
    *out = (int)v;
    return 0;
}

dsm_status_t dsm_place_env_read(struct dsm_place_env *e, int dflt_local_ranks)
{
    const char *pol = getenv("DSM_PLACEMENT");
    const char *rep = getenv("DSM_REPORT_BINDINGS");
    const char *dev = getenv("DSM_NETDEV");
    dsm_status_t st;

    memset(e, 0, sizeof(*e));
    e->policy = DSM_PLACE_DEFAULT;
    if (pol != NULL && *pol != '\0') {
        int v = dsm_place_policy_parse(pol);

        if (v < 0) {
            DSM_ERR("DSM_PLACEMENT=\"%s\" is not a placement policy (compact, scatter or none)", pol);
            return DSM_ECONFIG;
        }
        e->policy = (enum dsm_place_policy)v;
    }
    e->report = rep != NULL && strcmp(rep, "1") == 0;
    e->netdev = dev != NULL && *dev != '\0' ? dev : NULL;
    if ((st = env_int("DSM_LOCAL_RANKS", 1, 1 << 24, dflt_local_ranks, &e->local_ranks)) != 0 ||
        (st = env_int("DSM_LOCAL_RANK", 0, e->local_ranks - 1, 0, &e->local_rank)) != 0 ||
        (st = env_int("DSM_LOCAL_NODES", 1, 1 << 24, 1, &e->local_nodes)) != 0 ||
        (st = env_int("DSM_LOCAL_NODE", 0, e->local_nodes - 1, 0, &e->local_node)) != 0)
        return st;
    return 0;
}

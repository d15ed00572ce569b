/*
 * test_place.c - the placement plan (libdsm/common/dsm_place.h) on synthetic topologies:
 * compact and scatter orders, hyperthreads last, several ranks per machine with disjoint
 * parts, the daemons' cores kept from the workers only when cores are to spare, the
 * network device's domain, an asymmetric machine (written to XML and loaded back), policy
 * none, bad parameters; and dsm_topo's view of a foreign topology (nothing bound).
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "dsm_place.h"
#include "dsm_topo.h"

#define BIG    "pack:2 numa:2 core:4 pu:2" /* 16 cores, 32 PUs, PU p on core p/2, domain p/8 */
#define LAPTOP "core:4 pu:2"               /* one domain, no package */

static hwloc_topology_t synthetic(const char *desc)
{
    hwloc_topology_t t;

    cr_assert_eq(hwloc_topology_init(&t), 0);
    cr_assert_eq(hwloc_topology_set_synthetic(t, desc), 0, "synthetic '%s'", desc);
    cr_assert_eq(hwloc_topology_load(t), 0);
    return t;
}

static struct dsm_place_params params(enum dsm_place_policy pol, int rank, int ranks, int nodes, int threads)
{
    return (struct dsm_place_params){ .policy = pol, .local_rank = rank, .local_ranks = ranks,
                                      .local_nodes = nodes, .nthreads = threads };
}

static void plan(hwloc_topology_t t, struct dsm_place_params p, struct dsm_place_plan *out)
{
    dsm_status_t st = dsm_place_compute(t, &p, out);

    cr_assert_eq(st, 0, "dsm_place_compute: %d", st);
}

/* The PUs of threads [0, n) of a plan, checked against `want`. */
static void expect_pus(const struct dsm_place_plan *pl, const int *want, int n)
{
    for (int i = 0; i < n; i++)
        cr_expect_eq(pl->thread[i].pu, want[i], "thread %d on pu %d, expected %d", i, pl->thread[i].pu, want[i]);
}

Test(place, compact_fills_one_domain_before_the_next)
{
    hwloc_topology_t t = synthetic(BIG);
    struct dsm_place_plan pl;

    plan(t, params(DSM_PLACE_COMPACT, 0, 1, 1, 8), &pl);
    cr_expect(pl.bound);
    cr_expect_eq(pl.ncores, 16);
    cr_expect(pl.spare, "16 cores, 1 daemon, 1 rank: cores to spare");
    for (int i = 0; i < 8; i++) {
        cr_expect_eq(pl.thread[i].pu, 2 * i, "thread %d: first PU of core %d", i, i);
        cr_expect_eq(pl.thread[i].core, i);
        cr_expect_eq(pl.thread[i].numa, i / 4);
        cr_expect_eq(pl.thread[i].package, 0);
    }
    /* the daemon: last core of the machine (compact order reversed), its first PU */
    cr_expect_eq(pl.node[0].pu, 30);
    cr_expect_eq(pl.node[0].core, 15);
    cr_expect_eq(pl.node[0].numa, 3);
    cr_expect_eq(pl.node[0].package, 1);
    cr_expect_eq(hwloc_bitmap_weight(pl.part), 30, "every PU but the daemon's core");
    cr_expect(!hwloc_bitmap_isset(pl.part, 30) && !hwloc_bitmap_isset(pl.part, 31));
    dsm_place_plan_fini(&pl);
    hwloc_topology_destroy(t);
}

Test(place, hyperthreads_only_after_every_core_has_a_thread)
{
    hwloc_topology_t t = synthetic(BIG);
    struct dsm_place_plan pl;

    plan(t, params(DSM_PLACE_COMPACT, 0, 1, 1, 31), &pl);
    /* 15 worker cores: threads 0..14 on their first PUs, 15..29 on the second, then wrap */
    for (int i = 0; i < 15; i++) {
        cr_expect_eq(pl.thread[i].pu, 2 * i);
        cr_expect_eq(pl.thread[15 + i].pu, 2 * i + 1);
        cr_expect_eq(pl.thread[15 + i].core, i);
    }
    cr_expect_eq(pl.thread[30].pu, 0, "more threads than PUs wrap around");
    dsm_place_plan_fini(&pl);
    hwloc_topology_destroy(t);
}

Test(place, scatter_round_robins_over_domains_and_packages)
{
    hwloc_topology_t t = synthetic(BIG);
    struct dsm_place_plan pl;
    static const int numa[8] = { 0, 2, 1, 3, 0, 2, 1, 3 };
    static const int pus[8] = { 0, 16, 8, 24, 2, 18, 10, 26 };

    plan(t, params(DSM_PLACE_SCATTER, 0, 1, 0, 8), &pl);
    cr_expect(!pl.spare, "no daemon: nothing to keep");
    for (int i = 0; i < 8; i++) {
        cr_expect_eq(pl.thread[i].numa, numa[i], "thread %d in domain %d", i, pl.thread[i].numa);
        cr_expect_eq(pl.thread[i].package, numa[i] / 2);
    }
    expect_pus(&pl, pus, 8);
    dsm_place_plan_fini(&pl);
    /* the daemon: scatter order reversed, so the last core of the last domain visited */
    plan(t, params(DSM_PLACE_SCATTER, 0, 1, 2, 4), &pl);
    cr_expect_eq(pl.node[0].core, 15);
    cr_expect_eq(pl.node[1].core, 7, "the second daemon goes to another package");
    for (int i = 0; i < 4; i++)
        cr_expect_eq(pl.thread[i].numa, numa[i]);
    dsm_place_plan_fini(&pl);
    hwloc_topology_destroy(t);
}

/* The cores holding at least one PU of `set`, as a bitmap of core indexes. */
static hwloc_bitmap_t cores_of(hwloc_const_bitmap_t set)
{
    hwloc_bitmap_t c = hwloc_bitmap_alloc();
    int pu;

    hwloc_bitmap_foreach_begin(pu, set) hwloc_bitmap_set(c, (unsigned)pu / 2);
    hwloc_bitmap_foreach_end();
    return c;
}

/* R ranks and D daemons on BIG: disjoint parts on disjoint cores, none on a kept daemon core,
 * threads inside the part, distinct cores until every core of the part has a thread. */
static void check_ranks(enum dsm_place_policy pol, int nranks, int ndaemons)
{
    hwloc_topology_t t = synthetic(BIG);
    hwloc_bitmap_t seen = hwloc_bitmap_alloc();
    struct dsm_place_plan daemons;

    plan(t, params(pol, 0, nranks, ndaemons, 0), &daemons);
    for (int r = 0; r < nranks; r++) {
        struct dsm_place_plan pl;
        hwloc_bitmap_t cores, used = hwloc_bitmap_alloc();
        int ncores;

        plan(t, params(pol, r, nranks, ndaemons, 64), &pl);
        cores = cores_of(pl.part);
        ncores = hwloc_bitmap_weight(cores);
        cr_expect_gt(ncores, 0, "rank %d has a part", r);
        cr_expect(!hwloc_bitmap_intersects(cores, seen), "rank %d's cores are its own", r);
        hwloc_bitmap_or(seen, seen, cores);
        for (int d = 0; d < ndaemons; d++) {
            cr_expect_eq(pl.node[d].pu, daemons.node[d].pu, "every rank agrees on daemon %d", d);
            if (pl.spare)
                cr_expect(!hwloc_bitmap_isset(cores, (unsigned)pl.node[d].core),
                          "rank %d avoids daemon %d's core %d", r, d, pl.node[d].core);
        }
        for (int i = 0; i < 64; i++) {
            cr_expect(hwloc_bitmap_isset(pl.part, (unsigned)pl.thread[i].pu), "thread %d in the part", i);
            if (i < ncores) {
                cr_expect(!hwloc_bitmap_isset(used, (unsigned)pl.thread[i].core),
                          "rank %d thread %d shares core %d before every core has a thread", r, i,
                          pl.thread[i].core);
                hwloc_bitmap_set(used, (unsigned)pl.thread[i].core);
            }
        }
        cr_expect(hwloc_bitmap_isequal(used, cores), "rank %d: the first threads cover its cores", r);
        hwloc_bitmap_free(used);
        hwloc_bitmap_free(cores);
        dsm_place_plan_fini(&pl);
    }
    cr_expect_eq(hwloc_bitmap_weight(seen) + (daemons.spare ? ndaemons : 0), 16,
                 "the parts (and kept daemon cores) cover the machine");
    dsm_place_plan_fini(&daemons);
    hwloc_bitmap_free(seen);
    hwloc_topology_destroy(t);
}

Test(place, several_ranks_get_disjoint_parts)
{
    for (int pol = DSM_PLACE_COMPACT; pol <= DSM_PLACE_SCATTER; pol++)
        for (int nranks = 1; nranks <= 6; nranks++)
            for (int nd = 0; nd <= 2; nd++)
                check_ranks((enum dsm_place_policy)pol, nranks, nd);
}

Test(place, compact_ranks_take_consecutive_blocks)
{
    hwloc_topology_t t = synthetic(BIG);
    struct dsm_place_plan pl;

    /* 2 daemons keep cores 15 and 14; 14 cores for 4 ranks: blocks of 4, 4, 3, 3 */
    for (int r = 0; r < 4; r++) {
        static const int first[4] = { 0, 4, 8, 11 }, count[4] = { 4, 4, 3, 3 };

        plan(t, params(DSM_PLACE_COMPACT, r, 4, 2, count[r]), &pl);
        cr_expect(pl.spare);
        cr_expect_eq(pl.node[0].core, 15);
        cr_expect_eq(pl.node[1].core, 14);
        for (int i = 0; i < count[r]; i++)
            cr_expect_eq(pl.thread[i].core, first[r] + i, "rank %d thread %d", r, i);
        cr_expect_eq(hwloc_bitmap_weight(pl.part), 2 * count[r]);
        dsm_place_plan_fini(&pl);
    }
    hwloc_topology_destroy(t);
}

Test(place, laptop_one_domain)
{
    hwloc_topology_t t = synthetic(LAPTOP);
    struct dsm_place_plan pl;
    static const int four[4] = { 0, 2, 4, 1 };

    plan(t, params(DSM_PLACE_COMPACT, 0, 1, 1, 4), &pl);
    cr_expect(pl.spare);
    cr_expect_eq(pl.node[0].pu, 6, "daemon on the last core");
    cr_expect_eq(pl.node[0].package, 0, "no package object: package 0");
    expect_pus(&pl, four, 4);
    dsm_place_plan_fini(&pl);
    /* scatter on one domain is compact */
    plan(t, params(DSM_PLACE_SCATTER, 0, 1, 1, 4), &pl);
    expect_pus(&pl, four, 4);
    dsm_place_plan_fini(&pl);
    /* 4 ranks and a daemon on 4 cores: nothing to spare, the daemon shares rank 3's core */
    plan(t, params(DSM_PLACE_COMPACT, 3, 4, 1, 2), &pl);
    cr_expect(!pl.spare);
    cr_expect_eq(pl.node[0].core, 3);
    cr_expect_eq(pl.thread[0].pu, 6);
    cr_expect_eq(pl.thread[1].pu, 7);
    dsm_place_plan_fini(&pl);
    hwloc_topology_destroy(t);
}

Test(place, daemons_keep_their_cores_only_when_few)
{
    static const struct { const char *topo; int ranks, daemons; bool spare; } cases[] = {
        { "core:2 pu:1", 1, 1, false }, /* half the machine: shared */
        { "core:3 pu:1", 1, 1, false },
        { "core:4 pu:1", 1, 1, true },  /* a quarter */
        { "core:4 pu:1", 3, 1, true },
        { "core:4 pu:1", 4, 1, false }, /* a rank would have no core */
        { "core:8 pu:2", 2, 2, true },
        { "core:8 pu:2", 2, 3, false },
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        hwloc_topology_t t = synthetic(cases[i].topo);
        struct dsm_place_plan pl;
        int ncores = hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_CORE);

        plan(t, params(DSM_PLACE_COMPACT, 0, cases[i].ranks, cases[i].daemons, ncores), &pl);
        cr_expect_eq(pl.spare, cases[i].spare, "%s, %d ranks, %d daemons", cases[i].topo, cases[i].ranks,
                     cases[i].daemons);
        if (!pl.spare && cases[i].ranks == 1) {
            cr_expect_eq(hwloc_bitmap_weight(pl.part), hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_PU),
                         "a lone rank gets the whole machine, the daemon's core too");
            cr_expect_eq(pl.thread[ncores - 1].core, pl.node[0].core);
        }
        dsm_place_plan_fini(&pl);
        hwloc_topology_destroy(t);
    }
}

Test(place, more_ranks_than_cores_split_pus_then_share)
{
    hwloc_topology_t t = synthetic(LAPTOP);
    hwloc_bitmap_t seen = hwloc_bitmap_alloc();
    struct dsm_place_plan pl;

    /* 6 ranks on 4 cores / 8 PUs, no daemon: disjoint PU sets of 2, 2, 1, 1, 1, 1 */
    for (int r = 0; r < 6; r++) {
        plan(t, params(DSM_PLACE_COMPACT, r, 6, 0, 1), &pl);
        cr_expect_eq(hwloc_bitmap_weight(pl.part), r < 2 ? 2 : 1, "rank %d", r);
        cr_expect(!hwloc_bitmap_intersects(pl.part, seen), "rank %d's PUs are its own", r);
        hwloc_bitmap_or(seen, seen, pl.part);
        dsm_place_plan_fini(&pl);
    }
    cr_expect_eq(hwloc_bitmap_weight(seen), 8);
    /* 9 ranks on 8 PUs: rank 8 shares rank 0's first PU */
    plan(t, params(DSM_PLACE_COMPACT, 8, 9, 0, 1), &pl);
    cr_expect_eq(pl.thread[0].pu, 0);
    dsm_place_plan_fini(&pl);
    hwloc_bitmap_free(seen);
    hwloc_topology_destroy(t);
}

/* 2 packages of one domain each; package 1 restricted to one core: 4 + 1 cores. Written to
 * XML and loaded back, as HWLOC_XMLFILE would give it. */
static hwloc_topology_t asymmetric(void)
{
    hwloc_topology_t src = synthetic("pack:2 numa:1 core:4 pu:2"), t;
    hwloc_bitmap_t keep = hwloc_bitmap_alloc();
    char path[] = "/tmp/dsm-test-place-XXXXXX";
    int fd = mkstemp(path);

    cr_assert_geq(fd, 0);
    close(fd);
    hwloc_bitmap_set_range(keep, 0, 9); /* cores 0-3 of package 0, core 4 of package 1 */
    cr_assert_eq(hwloc_topology_restrict(src, keep, 0), 0);
    cr_assert_eq(hwloc_topology_export_xml(src, path, 0), 0);
    cr_assert_eq(hwloc_topology_init(&t), 0);
    cr_assert_eq(hwloc_topology_set_xml(t, path), 0);
    cr_assert_eq(hwloc_topology_load(t), 0);
    unlink(path);
    hwloc_bitmap_free(keep);
    hwloc_topology_destroy(src);
    cr_assert_eq(hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_CORE), 5);
    cr_assert_eq(hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_NUMANODE), 2);
    return t;
}

Test(place, asymmetric_machine_from_xml)
{
    hwloc_topology_t t = asymmetric();
    struct dsm_place_plan pl;
    static const int scatter_cores[4] = { 0, 4, 1, 2 };

    /* compact: the daemon takes the lone core of domain 1; the workers fill domain 0 */
    plan(t, params(DSM_PLACE_COMPACT, 0, 1, 1, 4), &pl);
    cr_expect_eq(pl.node[0].core, 4);
    cr_expect_eq(pl.node[0].numa, 1);
    for (int i = 0; i < 4; i++)
        cr_expect_eq(pl.thread[i].core, i);
    dsm_place_plan_fini(&pl);
    /* scatter: domains alternate while both have cores, then domain 0 alone */
    plan(t, params(DSM_PLACE_SCATTER, 0, 1, 0, 4), &pl);
    for (int i = 0; i < 4; i++)
        cr_expect_eq(pl.thread[i].core, scatter_cores[i], "thread %d on core %d", i, pl.thread[i].core);
    dsm_place_plan_fini(&pl);
    /* scatter with a daemon: it takes the last core of the order (core 3), not the lone one */
    plan(t, params(DSM_PLACE_SCATTER, 0, 1, 1, 4), &pl);
    cr_expect_eq(pl.node[0].core, 3);
    for (int i = 0; i < 4; i++)
        cr_expect_eq(pl.thread[i].core, scatter_cores[i]);
    dsm_place_plan_fini(&pl);
    /* two ranks: the scatter order 0 4 1 2 3 cut 3 + 2 */
    plan(t, params(DSM_PLACE_SCATTER, 1, 2, 0, 2), &pl);
    cr_expect_eq(pl.thread[0].core, 2);
    cr_expect_eq(pl.thread[1].core, 3);
    dsm_place_plan_fini(&pl);
    hwloc_topology_destroy(t);
}

Test(place, daemon_goes_near_the_network_device)
{
    hwloc_topology_t t = synthetic(BIG);
    hwloc_bitmap_t dev = hwloc_bitmap_alloc(), near = hwloc_bitmap_alloc();
    struct dsm_place_params p = params(DSM_PLACE_SCATTER, 0, 1, 2, 4);
    struct dsm_place_plan pl;

    /* a device attached to PU 9's domain: domain 1 (PUs 8-15) is the nearest */
    hwloc_bitmap_only(dev, 9);
    cr_assert_eq(dsm_topo_nearest_domain(t, dev, near), 0);
    cr_expect_eq(hwloc_bitmap_first(near), 8);
    cr_expect_eq(hwloc_bitmap_last(near), 15);
    p.near = near;
    plan(t, p, &pl);
    cr_expect_eq(pl.node[0].core, 7, "the last core of the device's domain");
    cr_expect_eq(pl.node[1].core, 6);
    cr_expect_eq(pl.node[0].numa, 1);
    for (int i = 0; i < 4; i++)
        cr_expect_neq(pl.thread[i].core, 7);
    dsm_place_plan_fini(&pl);
    /* the same under compact */
    p.policy = DSM_PLACE_COMPACT;
    plan(t, p, &pl);
    cr_expect_eq(pl.node[0].core, 7);
    dsm_place_plan_fini(&pl);
    /* a synthetic topology has no I/O devices */
    cr_expect_eq(dsm_topo_device_cpuset(t, false, "eth0", dev), DSM_EINVAL);
    hwloc_bitmap_free(dev);
    hwloc_bitmap_free(near);
    hwloc_topology_destroy(t);
}

Test(place, usable_pus_restrict_the_plan)
{
    hwloc_topology_t t = synthetic(BIG);
    hwloc_bitmap_t usable = hwloc_bitmap_alloc();
    struct dsm_place_params p = params(DSM_PLACE_COMPACT, 0, 1, 1, 4);
    struct dsm_place_plan pl;

    hwloc_bitmap_set_range(usable, 8, 15); /* domain 1 only */
    p.usable = usable;
    plan(t, p, &pl);
    cr_expect_eq(pl.ncores, 4);
    cr_expect_eq(pl.node[0].pu, 14);
    for (int i = 0; i < 3; i++)
        cr_expect_eq(pl.thread[i].pu, 8 + 2 * i);
    cr_expect_eq(pl.thread[3].pu, 9);
    dsm_place_plan_fini(&pl);
    hwloc_bitmap_zero(usable);
    hwloc_bitmap_set(usable, 200);
    cr_expect_eq(dsm_place_compute(t, &p, &pl), DSM_ECONFIG, "no usable PU in the topology");
    hwloc_bitmap_free(usable);
    hwloc_topology_destroy(t);
}

Test(place, none_binds_nothing)
{
    hwloc_topology_t t = synthetic(BIG);
    struct dsm_place_plan pl;
    char buf[64];

    plan(t, params(DSM_PLACE_NONE, 1, 2, 1, 3), &pl);
    cr_expect(!pl.bound);
    cr_expect(!pl.spare);
    cr_expect_eq(pl.node[0].pu, -1);
    for (int i = 0; i < 3; i++)
        cr_expect_eq(pl.thread[i].pu, -1);
    cr_expect_eq(hwloc_bitmap_weight(pl.part), 32);
    dsm_place_format(&pl.thread[0], buf, sizeof(buf));
    cr_expect_str_eq(buf, "unbound");
    dsm_place_plan_fini(&pl);
    hwloc_topology_destroy(t);
}

Test(place, bad_parameters)
{
    hwloc_topology_t t = synthetic(LAPTOP);
    struct dsm_place_plan pl;
    struct dsm_place_params bad[] = {
        params(DSM_PLACE_COMPACT, 2, 2, 1, 1), params(DSM_PLACE_COMPACT, 0, 0, 1, 1),
        params(DSM_PLACE_COMPACT, -1, 2, 1, 1), params(DSM_PLACE_COMPACT, 0, 1, -1, 1),
        params(DSM_PLACE_COMPACT, 0, 1, 1, -1), params((enum dsm_place_policy)7, 0, 1, 1, 1),
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_expect_eq(dsm_place_compute(t, &bad[i], &pl), DSM_EINVAL, "case %zu", i);
    hwloc_topology_destroy(t);
}

Test(place, format_and_policy_names)
{
    struct dsm_place_loc l = { 5, 2, 1, 0 };
    char buf[64];

    dsm_place_format(&l, buf, sizeof(buf));
    cr_expect_str_eq(buf, "pu 5 core 2 numa 1 package 0");
    cr_expect_eq(dsm_place_policy_parse("compact"), DSM_PLACE_COMPACT);
    cr_expect_eq(dsm_place_policy_parse("scatter"), DSM_PLACE_SCATTER);
    cr_expect_eq(dsm_place_policy_parse("none"), DSM_PLACE_NONE);
    cr_expect_eq(dsm_place_policy_parse("spread"), -1);
}

Test(place, settings_from_the_environment)
{
    struct dsm_place_env e;

    unsetenv("DSM_PLACEMENT");
    unsetenv("DSM_LOCAL_RANK");
    unsetenv("DSM_LOCAL_RANKS");
    unsetenv("DSM_LOCAL_NODE");
    unsetenv("DSM_LOCAL_NODES");
    unsetenv("DSM_NETDEV");
    setenv("DSM_REPORT_BINDINGS", "1", 1);
    cr_assert_eq(dsm_place_env_read(&e, 3), 0);
    cr_expect_eq(e.policy, DSM_PLACE_DEFAULT);
    cr_expect(e.report);
    cr_expect_eq(e.local_rank, 0);
    cr_expect_eq(e.local_ranks, 3);
    cr_expect_eq(e.local_nodes, 1);
    cr_expect_null(e.netdev);
    setenv("DSM_PLACEMENT", "scatter", 1);
    setenv("DSM_LOCAL_RANKS", "4", 1);
    setenv("DSM_LOCAL_RANK", "3", 1);
    setenv("DSM_NETDEV", "mlx5_0", 1);
    cr_assert_eq(dsm_place_env_read(&e, 1), 0);
    cr_expect_eq(e.policy, DSM_PLACE_SCATTER);
    cr_expect_eq(e.local_rank, 3);
    cr_expect_str_eq(e.netdev, "mlx5_0");
    setenv("DSM_LOCAL_RANK", "4", 1);
    cr_expect_eq(dsm_place_env_read(&e, 1), DSM_ECONFIG, "local rank out of range");
    setenv("DSM_LOCAL_RANK", "0", 1);
    setenv("DSM_PLACEMENT", "spread", 1);
    cr_expect_eq(dsm_place_env_read(&e, 1), DSM_ECONFIG, "unknown policy");
}

Test(topo, foreign_topology_is_planned_but_not_bound)
{
    struct dsm_topo t;
    cpu_set_t before, after;

    setenv("HWLOC_SYNTHETIC", BIG, 1);
    cr_assert_eq(dsm_topo_load(&t, NULL, "tcp", "127.0.0.1"), 0);
    cr_expect(!t.thissystem);
    cr_expect(strstr(t.source, "HWLOC_SYNTHETIC") != NULL, "source: %s", t.source);
    cr_expect(strstr(t.where, "no network device") != NULL, "where: %s", t.where);
    cr_expect_eq(hwloc_bitmap_weight(t.usable), 32);
    cr_assert_eq(sched_getaffinity(0, sizeof(before), &before), 0);
    cr_expect_eq(dsm_topo_bind_thread(&t, 31), 0, "binding by a foreign topology is skipped");
    cr_assert_eq(sched_getaffinity(0, sizeof(after), &after), 0);
    cr_expect(CPU_EQUAL(&before, &after), "the thread's affinity is unchanged");
    dsm_topo_fini(&t);
    unsetenv("HWLOC_SYNTHETIC");
}

Test(topo, this_machine_binds)
{
    struct dsm_topo t;
    cpu_set_t set;
    int pu;

    unsetenv("HWLOC_SYNTHETIC");
    unsetenv("HWLOC_XMLFILE");
    cr_assert_eq(dsm_topo_load(&t, NULL, NULL, NULL), 0);
    cr_assert(t.thissystem);
    pu = hwloc_bitmap_last(t.usable);
    cr_assert_eq(dsm_topo_bind_thread(&t, pu), 0);
    cr_assert_eq(sched_getaffinity(0, sizeof(set), &set), 0);
    cr_expect_eq(CPU_COUNT(&set), 1);
    cr_expect(CPU_ISSET(pu, &set), "bound to pu %d", pu);
    dsm_topo_fini(&t);
}

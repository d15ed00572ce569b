/*
 * test_causal.c - unit suite for the causal consistency module
 * (consistency/causal/causal.c: replication, updates tagged with vector clocks and
 * applied in causal order) over the in-process harness (proto_harness.h), with the timer
 * fired explicitly and locks and barriers driven as daemon/sync.c drives the sync hooks.
 *
 * Scenario tests check that writes are local, that a timer tick sends one UPDATE to every
 * other node without any synchronisation, that an update is held until everything it
 * depends on is applied and is applied atomically, that a remote update does not come
 * back as the receiver's own write, that acquires wait for the releaser's updates, and
 * what happens to write faults during a flush. Randomized schedules check that MP, WRC and
 * CoRR never show a forbidden outcome; the litmus tests run one schedule under causal and
 * under sequential and check that causal produces outcomes that sequential forbids (SB,
 * IRIW). Partial replicas (a bounded cache): absent pages fetched from their homes, a home
 * answering only once its clock covers the requester's, its twin sent while it writes the
 * page, updates kept during a fetch, a fetched page shut until the clock covers the home's,
 * eviction, malformed messages, and the randomized schedules again with evictions.
 */
#include <criterion/criterion.h>

#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "ahead.h"
#include "diff.h"
#include "proto_prog.h"

#define R DSM_ACCESS_READ
#define W DSM_ACCESS_WRITE
#define NONE DSM_ACCESS_NONE
#define PS 4096u

enum {
    UPDATE = DSMW__TYPE__UPDATE,
    UNLOCK = DSMW__TYPE__UNLOCK,
};

/* every page homed at node 0 (causal only asks whether one is allocated); room for an
 * interval's bound and more */
static const int home0[DSMP_CAUSAL_INTERVAL_PAGES + 1024] = { 0 };

static struct ph *mk(int nnodes, uint64_t npages, enum ph_revoke_mode mode)
{
    cr_assert_leq(npages, sizeof(home0) / sizeof(home0[0]), "mk: %llu pages, home0 has fewer",
                  (unsigned long long)npages);
    return pp_make(&dsmp_causal_ops, nnodes, npages, PS, home0, mode);
}

/* Partial replicas (svc.partial), as under a bounded cache. */
static struct ph *mkp(int nnodes, uint64_t npages, const int *home, enum ph_revoke_mode mode)
{
    struct ph *h;

    pp_partial = 1;
    h = pp_make(&dsmp_causal_ops, nnodes, npages, PS, home, mode);
    pp_partial = 0;
    return h;
}

#define NO_ERRORS(h) cr_assert_eq(ph_errors(h), 0, "harness: %s", ph_first_error(h))
#define FAULT(h, node, page, acc) \
    cr_assert_eq(ph_fault((h), (node), (page), (acc), ph_rank(node)), 0, "fault not allowed")

#define BOTH_MODES(name)                                        \
    static void name(enum ph_revoke_mode mode);                 \
    Test(causal, name##_sync) { name(PH_REVOKE_SYNC); }         \
    Test(causal, name##_deferred) { name(PH_REVOKE_DEFERRED); } \
    static void name(enum ph_revoke_mode mode)

/* Complete every pending revocation, oldest first (what the ranks would do on their own). */
static void settle(struct ph *h)
{
    while (ph_complete_revoke(h, 0))
        ;
    NO_ERRORS(h);
}

/* Counter c summed over every rank of an nnodes-node harness. */
static uint64_t all_ranks(struct ph *h, int nnodes, enum dsmp_counter c)
{
    uint64_t k = 0;

    for (int r = 0; r < nnodes * PH_RANKS_PER_NODE; r++)
        k += ph_counter(h, r, c);
    return k;
}

/* Fire the node's timer and let its ranks acknowledge the write-protection. */
static void tick(struct ph *h, int node)
{
    cr_assert_eq(ph_tick(h, node), 1, "node %d: no timer armed", node);
    settle(h);
}

/* ---- registry, initial state, local writes ------------------------------------------- */

Test(causal, registry_and_hooks)
{
    const struct dsmp_ops *o = dsmp_find("causal");

    cr_assert_eq(o, &dsmp_causal_ops);
    cr_assert_str_eq(o->name, "causal");
    cr_assert_eq(o->model, DSM_MODEL_CAUSAL);
    cr_assert_not_null(o->tick);
    cr_assert_not_null(o->sync);
    cr_assert_not_null(o->sync->release);
    cr_assert_not_null(o->sync->acquired);
}

Test(causal, every_node_holds_every_page)
{
    struct ph *h = mk(3, 4, PH_REVOKE_SYNC);

    for (uint64_t p = 0; p < 4; p++)
        for (int n = 0; n < 3; n++)
            cr_assert_eq(ph_access(h, n, p), R, "page %llu node %d", (unsigned long long)p, n);
    cr_assert_eq(ph_nsent(h), 0);
    for (int n = 0; n < 3; n++)
        cr_assert_eq(ph_timer(h, n), -1);
    ph_destroy(h);
}

BOTH_MODES(write_is_local_and_arms_the_timer)
{
    struct ph *h = mk(3, 4, mode);

    FAULT(h, 1, 2, W);
    cr_assert_eq(ph_access(h, 1, 2), W, "granted at once");
    cr_assert_eq(ph_fault_pending(h, 1, 2), 0);
    cr_assert_eq(ph_nsent(h), 0, "a write is local");
    cr_assert_eq(ph_timer(h, 1), 2000, "default delay: 2 ms, got %lld", (long long)ph_timer(h, 1));
    cr_assert_eq(ph_timer_requests(h, 1), 1);
    pp_write(h, 1, 3, 0, 9);
    cr_assert_eq(ph_timer_requests(h, 1), 1, "the armed timer was asked for again");
    cr_assert_eq(ph_timer(h, 0), -1);
    cr_assert_eq(ph_access(h, 0, 2), R);
    cr_assert_eq(ph_access(h, 2, 2), R);
    cr_assert_eq(pp_peek(h, 0, 3, 0), 0, "the write reached another node without a flush");
    ph_destroy(h);
}

static int64_t delay_with_env(const char *value)
{
    struct ph *h;
    int64_t us;

    setenv("DSM_CAUSAL_DELAY_US", value, 1);
    h = mk(2, 1, PH_REVOKE_SYNC);
    unsetenv("DSM_CAUSAL_DELAY_US");
    pp_write(h, 0, 0, 0, 1);
    us = ph_timer(h, 0);
    ph_destroy(h);
    return us;
}

Test(causal, delay_from_the_environment)
{
    cr_assert_eq(delay_with_env("500"), 500);
    cr_assert_eq(delay_with_env("10000000"), 10000000);
    cr_assert_eq(delay_with_env("0"), 2000, "0 falls back to the default");
    cr_assert_eq(delay_with_env("20000000"), 2000, "over 10 s falls back to the default");
}

/* ---- propagation without synchronisation ----------------------------------------------- */

BOTH_MODES(tick_sends_one_update_to_every_other_node)
{
    struct ph *h = mk(3, 4, mode);
    const struct ph_sent *s;

    pp_write(h, 1, 0, 0, 100);
    pp_write(h, 1, 2, 5, 102);
    cr_assert_eq(ph_nsent(h), 0);
    tick(h, 1);
    cr_assert_eq(ph_nsent(h), 2);
    cr_assert_eq(ph_count(h, UPDATE, 1, 0), 1);
    cr_assert_eq(ph_count(h, UPDATE, 1, 2), 1);
    s = ph_sent_at(h, 0);
    cr_assert_eq(s->n_vclock, 3);
    cr_assert(s->vclock[0] == 0 && s->vclock[1] == 1 && s->vclock[2] == 0, "vclock %llu %llu %llu",
              (unsigned long long)s->vclock[0], (unsigned long long)s->vclock[1], (unsigned long long)s->vclock[2]);
    cr_assert_eq(ph_access(h, 1, 0), R, "write-protected at the end of the interval");
    cr_assert_eq(ph_access(h, 1, 2), R);
    cr_assert_eq(ph_timer(h, 1), -1);
    cr_assert_eq(all_ranks(h, 3, DSMP_DIFFS), 2);
    cr_assert_eq(all_ranks(h, 3, DSMP_WRITE_NOTICES), 1);
    pp_run(h);
    for (int n = 0; n < 3; n++) {
        cr_assert_eq(pp_peek(h, n, 0, 0), 100, "node %d", n);
        cr_assert_eq(pp_peek(h, n, 2, 5), 102, "node %d", n);
        cr_assert_eq(ph_access(h, n, 0), R);
        cr_assert_eq(ph_access(h, n, 2), R);
    }
    cr_assert_eq(ph_count_events(h, 0, PH_EV_REVOKE, 0, NONE), 1, "the receiver's ranks are kept out while patched");
    cr_assert_eq(ph_count_events(h, 0, PH_EV_REVOKE, 1, PH_ANY), 0, "a page the update does not touch");
    cr_assert_eq(all_ranks(h, 3, DSMP_DIFFS), 2 + 2 * 2, "2 made, 2 applied at each of 2 nodes");
    cr_assert_eq(all_ranks(h, 3, DSMP_WRITE_NOTICES), 3);
    cr_assert_eq(ph_nsent(h), 2, "nothing but the UPDATEs");
    cr_assert_eq(ph_tick(h, 1), 0, "the timer re-armed with nothing written");
    ph_destroy(h);
}

/* A flush that the timer starts belongs to no rank; its diffs and notice must still be
 * counted to a rank of the flushing node (svc->any_rank), and its UPDATE must not name
 * another node's rank as its origin. */
Test(causal, timer_flush_is_counted_to_a_rank_of_its_node)
{
    struct ph *h = mk(2, 1, PH_REVOKE_SYNC);
    int r1 = ph_rank(1);

    pp_write(h, 1, 0, 0, 5);
    tick(h, 1);
    cr_assert_eq(ph_count(h, UPDATE, 1, 0), 1);
    cr_expect_geq(ph_sent_at(h, 0)->origin, r1, "node 1's UPDATE names rank %d, of node 0, as its origin",
                  ph_sent_at(h, 0)->origin);
    cr_expect_eq(ph_counter(h, r1, DSMP_DIFFS) + ph_counter(h, r1 + 1, DSMP_DIFFS), 1,
                 "node 1's diff was counted to another node's rank");
    cr_expect_eq(ph_counter(h, r1, DSMP_WRITE_NOTICES) + ph_counter(h, r1 + 1, DSMP_WRITE_NOTICES), 1);
    ph_destroy(h);
}

Test(causal, spin_on_a_flag_finishes_without_synchronisation)
{
    struct ph *h = mk(2, 1, PH_REVOKE_DEFERRED);
    int spins = 0;

    pp_write(h, 0, 0, 0, 1);
    while (pp_read(h, 1, 0, 0) != 1) {
        cr_assert_lt(++spins, 1000, "the reader spins for ever");
        if (!ph_tick(h, 0) && !ph_tick(h, 1))
            cr_assert_eq(ph_step(h), 1, "nothing left to happen and the flag is still 0");
    }
    cr_assert_gt(spins, 0, "the flag was visible before any tick");
    NO_ERRORS(h);
    ph_destroy(h);
}

/* ---- causal order ------------------------------------------------------------------------- */

/* WRC: A writes x; B reads x and writes y; C gets B's update first and must hold it until
 * A's arrives. */
BOTH_MODES(update_waits_for_the_updates_it_depends_on)
{
    struct ph *h = mk(3, 2, mode);
    size_t first_x = SIZE_MAX, first_y = SIZE_MAX;

    pp_write(h, 0, 0, 0, 1);                    /* A: x = 1 */
    tick(h, 0);
    cr_assert_eq(ph_deliver(h, 0, 1), 1);       /* only B gets it */
    settle(h);
    cr_assert_eq(pp_read(h, 1, 0, 0), 1);
    pp_write(h, 1, 1, 0, 1);                    /* B: y = 1, after reading x */
    tick(h, 1);
    cr_assert_eq(ph_sent_at(h, ph_nsent(h) - 1)->vclock[0], 1, "B's update does not depend on A's");

    ph_clear_log(h);
    cr_assert_eq(ph_deliver(h, 1, 2), 1);       /* B's update reaches C first */
    settle(h);
    cr_assert_eq(ph_count_events(h, 2, PH_EV_REVOKE, 1, PH_ANY), 0, "C started applying B's update");
    cr_assert_eq(pp_peek(h, 2, 1, 0), 0, "C applied B's update before A's");
    cr_assert_eq(pp_read(h, 2, 1, 0), 0);
    cr_assert_eq(pp_read(h, 2, 0, 0), 0);

    cr_assert_eq(ph_deliver(h, 0, 2), 1);       /* A's arrives: both are applied, A's first */
    settle(h);
    cr_assert_eq(pp_read(h, 2, 0, 0), 1);
    cr_assert_eq(pp_read(h, 2, 1, 0), 1);
    for (size_t i = 0; i < ph_nevents(h); i++) {
        const struct ph_event *e = ph_event_at(h, i);

        if (e->node == 2 && e->kind == PH_EV_REVOKE && e->page == 0 && first_x == SIZE_MAX)
            first_x = i;
        if (e->node == 2 && e->kind == PH_EV_REVOKE && e->page == 1 && first_y == SIZE_MAX)
            first_y = i;
    }
    cr_assert(first_x < first_y, "C applied y (event %zu) before x (event %zu)", first_y, first_x);
    pp_run(h);
    ph_destroy(h);
}

Test(causal, update_is_applied_atomically)
{
    struct ph *h = mk(2, 2, PH_REVOKE_DEFERRED);

    pp_write(h, 0, 0, 0, 10);
    pp_write(h, 0, 1, 0, 11);
    tick(h, 0);
    cr_assert_eq(ph_deliver(h, 0, 1), 1);
    cr_assert_eq(ph_revokes_pending(h), 2, "both pages are taken from the ranks first");
    cr_assert_eq(ph_access(h, 1, 0), NONE);
    cr_assert_eq(ph_access(h, 1, 1), NONE);
    cr_assert_eq(ph_complete_revoke(h, 0), 1);
    cr_assert_eq(pp_peek(h, 1, 0, 0), 0, "page 0 patched while page 1 is still readable by a rank");
    cr_assert_eq(pp_peek(h, 1, 1, 0), 0);
    cr_assert_eq(ph_complete_revoke(h, 0), 1);
    cr_assert_eq(pp_peek(h, 1, 0, 0), 10);
    cr_assert_eq(pp_peek(h, 1, 1, 0), 11);
    cr_assert_eq(ph_access(h, 1, 0), R);
    cr_assert_eq(ph_access(h, 1, 1), R);
    NO_ERRORS(h);
    ph_destroy(h);
}

/* A page being written locally receives another node's update of other bytes: the twin is
 * patched too, so the receiver's next update carries only its own bytes (a stale copy of the
 * other node's byte would overwrite that node's newer write wherever it lands later). */
BOTH_MODES(remote_update_is_not_sent_back_as_a_local_write)
{
    struct ph *h = mk(3, 1, mode);

    pp_write_byte(h, 0, 0, 0, 1);
    pp_write_byte(h, 1, 0, 8, 1);               /* node 1 writes the same page: twinned */
    tick(h, 0);
    cr_assert_eq(ph_deliver(h, 0, 1), 1);       /* node 1 applies node 0's byte 0 = 1 */
    settle(h);
    cr_assert_eq(ph_access(h, 1, 0), W, "the open interval's write access is back");
    cr_assert_eq(pp_read_byte(h, 1, 0, 0), 1);
    pp_write_byte(h, 0, 0, 0, 2);               /* node 0 again: byte 0 = 2 */
    tick(h, 0);
    tick(h, 1);                                 /* node 1's update: must not carry byte 0 */
    cr_assert_eq(ph_deliver(h, 0, 2), 1);
    cr_assert_eq(ph_deliver(h, 0, 2), 1);
    cr_assert_eq(ph_deliver(h, 1, 2), 1);
    settle(h);
    pp_run(h);
    for (int n = 0; n < 3; n++) {
        cr_assert_eq(pp_read_byte(h, n, 0, 0), 2, "node %d: byte 0 went back to a stale value", n);
        cr_assert_eq(pp_read_byte(h, n, 0, 8), 1, "node %d", n);
    }
    ph_destroy(h);
}

/* ---- synchronisation ------------------------------------------------------------------------ */

Test(causal, acquire_waits_for_the_releasers_updates)
{
    struct ph *h = mk(3, 1, PH_REVOKE_SYNC);
    int unlocked = 0, locked = 0;
    size_t upd = SIZE_MAX, unl = SIZE_MAX;

    pp_lock(h, 0, 2);                           /* lock 2: managed by node 2 */
    pp_write(h, 0, 0, 0, 7);
    ph_clear_log(h);
    ph_unlock(h, 0, 2, &unlocked);
    cr_assert_eq(unlocked, 1);
    for (size_t i = 0; i < ph_nsent(h); i++) {
        if (ph_sent_at(h, i)->type == UPDATE && upd == SIZE_MAX)
            upd = i;
        if (ph_sent_at(h, i)->type == UNLOCK)
            unl = i;
    }
    cr_assert(upd < unl, "the UNLOCK went before the release's UPDATE");
    cr_assert_eq(ph_deliver(h, 0, 2), 1);
    cr_assert_eq(ph_deliver(h, 0, 2), 1);       /* UPDATE and UNLOCK at the manager */
    ph_lock(h, 1, 2, &locked);
    cr_assert_eq(ph_deliver(h, 1, 2), 1);
    cr_assert_eq(ph_deliver(h, 2, 1), 1);       /* the grant reaches node 1 before the update */
    cr_assert_eq(locked, 0, "the acquire completed before the releaser's update was applied");
    cr_assert_eq(pp_peek(h, 1, 0, 0), 0);
    cr_assert_eq(ph_deliver(h, 0, 1), 1);
    cr_assert_eq(locked, 1);
    cr_assert_eq(pp_read(h, 1, 0, 0), 7);
    NO_ERRORS(h);
    ph_destroy(h);
}

Test(causal, barrier_every_word_on_every_node)
{
    for (uint64_t seed = 1; seed <= 30; seed++) {
        struct ph *h = mk(4, 2, seed % 2 ? PH_REVOKE_DEFERRED : PH_REVOKE_SYNC);
        int done[4] = { 0 };
        uint64_t s = seed;

        for (int n = 0; n < 4; n++)
            for (uint64_t p = 0; p < 2; p++)
                for (size_t w = (size_t)n; w < 64; w += 4)
                    pp_write(h, n, p, w, (uint64_t)n << 32 | p << 16 | w);
        for (int n = 0; n < 4; n++)
            ph_barrier(h, n, &done[n]);
        cr_assert_geq(ph_run_random(h, &s, PP_LIMIT), 0);
        NO_ERRORS(h);
        for (int n = 0; n < 4; n++) {
            cr_assert_eq(done[n], 1);
            for (uint64_t p = 0; p < 2; p++)
                for (size_t w = 0; w < 64; w++)
                    cr_assert_eq(pp_read(h, n, p, w), (uint64_t)(w % 4) << 32 | p << 16 | w,
                                 "seed %llu node %d page %llu word %zu", (unsigned long long)seed, n,
                                 (unsigned long long)p, w);
        }
        ph_destroy(h);
    }
}

Test(causal, lock_counter_random_schedules, .timeout = 120)
{
    for (uint64_t seed = 1; seed <= 60; seed++) {
        int nn = 2 + (int)(seed % 3);
        struct ph *h;

        pp_ahead = seed % 4 < 2 ? 2 : 0; /* half the seeds with writes ahead */
        h = mk(nn, 2, seed % 2 ? PH_REVOKE_DEFERRED : PH_REVOKE_SYNC);
        pp_ahead = 0;
        pp_lock_counter(h, nn, seed % 2, (uint32_t)(seed % 5), 25, seed);
        ph_destroy(h);
    }
}

/* ---- writes ahead ----------------------------------------------------------------------------- */

#define FAULT_AHEAD(h, node, page, acc, ahead) \
    cr_assert_eq(ph_fault_ahead((h), (node), (page), (acc), ph_rank(node), (ahead)), 0, "fault not allowed")

/* A scan's write fault makes the held pages after it writable too, before its grant and
 * without a message; they join the open interval, but only the pages written travel in its
 * update. */
BOTH_MODES(write_ahead_makes_held_pages_writable_with_the_fault)
{
    struct ph *h = mk(2, 8, mode);
    uint64_t diffs;

    FAULT_AHEAD(h, 1, 2, W, 4);
    for (uint64_t p = 0; p < 8; p++)
        cr_assert_eq(ph_access(h, 1, p), p >= 2 && p < 6 ? W : R, "page %llu", (unsigned long long)p);
    pp_opened_ahead(h, 1, 4);
    pp_run(h);
    pp_write_held(h, 1, 2, 0, 12);
    pp_write_held(h, 1, 4, 0, 14);
    diffs = ph_counter(h, ph_rank(1), DSMP_DIFFS);
    ph_clear_log(h);
    tick(h, 1);
    pp_run(h);
    cr_assert_eq(ph_count(h, UPDATE, 1, 0), 1);
    cr_assert_eq(ph_counter(h, ph_rank(1), DSMP_DIFFS) - diffs, 2, "diffs of pages not written");
    for (uint64_t p = 2; p < 6; p++) {
        cr_assert_eq(ph_access(h, 1, p), R, "page %llu still writable after the flush", (unsigned long long)p);
        cr_assert_eq(pp_read(h, 0, p, 0), p == 2 ? 12 : p == 4 ? 14 : 0, "page %llu", (unsigned long long)p);
    }
    NO_ERRORS(h);
    ph_destroy(h);
}

/* Writes ahead stop where the open interval is full: the faulting page keeps its place in it,
 * and no interval holds more than its bound. */
Test(causal, write_ahead_stops_at_the_intervals_bound)
{
    enum { B = DSMP_CAUSAL_INTERVAL_PAGES, NPG = B + 44 };
    struct ph *h = mk(2, NPG, PH_REVOKE_SYNC);

    for (uint64_t p = 0; p < B - 6; p++)
        pp_write(h, 0, p, 0, 1000 + p);
    cr_assert_eq(ph_count(h, UPDATE, 0, 1), 0, "an update before the bound");
    FAULT_AHEAD(h, 0, B - 6, W, 16);
    for (uint64_t p = B - 6; p < B + 14; p++)
        cr_assert_eq(ph_access(h, 0, p), p < B ? W : R, "page %llu", (unsigned long long)p);
    pp_run(h);
    for (uint64_t p = B - 6; p < B; p++)
        pp_write(h, 0, p, 0, 1000 + p);
    pp_write(h, 0, B, 0, 1000 + B); /* the interval is full: this one starts the next */
    cr_assert_gt(ph_count(h, UPDATE, 0, 1), 0, "the full interval was not sent (in parts)");
    tick(h, 0);
    pp_run(h);
    for (uint64_t p = 0; p <= B; p++)
        cr_assert_eq(pp_read(h, 1, p, 0), 1000 + p, "page %llu", (unsigned long long)p);
    NO_ERRORS(h);
    ph_destroy(h);
}

/* ---- the interval's delay backs off under churn ------------------------------------------ */

/* One interval of node 0 that writes pages [first, first + n) and ends by its timer: the
 * timer's delay as armed at the interval's first write. */
static int64_t interval(struct ph *h, uint64_t first, uint64_t n, uint64_t v)
{
    int64_t us;

    pp_write(h, 0, first, 0, v);
    us = ph_timer(h, 0);
    for (uint64_t p = first + 1; p < first + n; p++)
        pp_write(h, 0, p, 0, v);
    tick(h, 0);
    pp_run(h);
    return us;
}

/* Intervals that mostly write again what the flushes just before them write-protected (a
 * write set that the delay cuts, each cut only a fault per page) double the delay, up to 64
 * times; intervals of other pages halve it back. Every value still arrives. */
Test(causal, the_delay_backs_off_while_intervals_write_their_pages_again)
{
    static const int64_t up[] = { 2000, 2000, 4000, 8000, 16000, 32000, 64000, 128000, 128000, 128000 };
    static const int64_t down[] = { 128000, 64000, 32000, 16000, 8000, 4000, 2000, 2000 };
    struct ph *h = mk(2, 64, PH_REVOKE_SYNC);
    uint64_t v = 1;

    for (size_t i = 0; i < sizeof(up) / sizeof(up[0]); i++, v++)
    {
        int64_t us = interval(h, 0, 4, v);

        cr_assert_eq(us, up[i], "interval %zu writing pages 0-3 again: delay %lld, want %lld", i, (long long)us,
                     (long long)up[i]);
    }
    /* fresh pages each time: written 8 or more flushes ago, or never */
    for (size_t i = 0; i < sizeof(down) / sizeof(down[0]); i++, v++) {
        int64_t us = interval(h, 8 + 6 * i, 4, v);

        cr_assert_eq(us, down[i], "interval %zu of other pages: delay %lld, want %lld", i, (long long)us,
                     (long long)down[i]);
    }
    for (uint64_t p = 0; p < 4; p++)
        cr_assert_eq(pp_read(h, 1, p, 0), sizeof(up) / sizeof(up[0]), "page %llu", (unsigned long long)p);
    cr_assert_eq(pp_read(h, 1, 8 + 6 * 7, 0), v - 1);
    NO_ERRORS(h);
    ph_destroy(h);
}

/* Churn grows the interval's bound too: a write set larger than it, cut by every interval's
 * end, gets intervals that hold it whole; intervals without churn shrink it back. */
Test(causal, the_intervals_bound_grows_while_its_ends_cut_a_write_set)
{
    enum { B = DSMP_CAUSAL_INTERVAL_PAGES, SET = B + B / 2 };
    struct ph *h = mk(2, 3 * B, PH_REVOKE_SYNC);
    size_t sent;

    for (uint64_t v = 1; v <= 2; v++) /* the second interval writes the first's pages again */
        cr_assert_eq(interval(h, 0, B / 2, v), 2000);
    sent = ph_count(h, UPDATE, 0, 1);
    for (uint64_t p = 0; p < SET; p++)
        pp_write(h, 0, p, 0, 100 + p);
    cr_assert_eq(ph_count(h, UPDATE, 0, 1), sent, "%d pages did not fit the grown bound", SET);
    tick(h, 0);
    pp_run(h);
    for (uint64_t p = 0; p < SET; p++)
        cr_assert_eq(pp_read(h, 1, p, 0), 100 + p, "page %llu", (unsigned long long)p);
    /* an interval of fresh pages halves it back: SET pages no longer fit */
    sent = ph_count(h, UPDATE, 0, 1);
    for (uint64_t p = SET; p < 2 * SET && p < 3 * B; p++)
        pp_write(h, 0, p, 0, 7);
    cr_assert_gt(ph_count(h, UPDATE, 0, 1), sent, "the bound did not shrink back");
    NO_ERRORS(h);
    ph_destroy(h);
}

/* An interval some of whose pages another node's update wrote too (write-write false
 * sharing: applying it took them from this node's writers) doubles the delay as well. */
Test(causal, the_delay_backs_off_when_updates_cross_the_pages_written)
{
    struct ph *h = mk(2, 4, PH_REVOKE_SYNC);

    pp_write(h, 0, 0, 0, 7);
    cr_assert_eq(ph_timer(h, 0), 2000);
    pp_write(h, 1, 0, 1, 8); /* another word of the same page */
    tick(h, 1);
    pp_run(h);
    cr_assert_eq(pp_peek(h, 0, 0, 1), 8, "node 1's update applied at node 0");
    tick(h, 0);
    pp_run(h);
    cr_assert_eq(interval(h, 2, 1, 9), 4000, "the interval an update crossed did not double the delay");
    cr_assert_eq(interval(h, 3, 1, 10), 2000, "an interval nothing crossed did not halve it back");
    for (int n = 0; n < 2; n++)
        cr_assert(pp_peek(h, n, 0, 0) == 7 && pp_peek(h, n, 0, 1) == 8, "node %d: both words", n);
    NO_ERRORS(h);
    ph_destroy(h);
}

/* ---- write faults during a flush, full intervals ------------------------------------------ */

Test(causal, write_faults_during_a_flush_start_the_next_interval)
{
    struct ph *h = mk(2, 2, PH_REVOKE_DEFERRED);

    pp_write(h, 0, 0, 0, 1);
    cr_assert_eq(ph_tick(h, 0), 1);
    cr_assert_eq(ph_revokes_pending(h), 1);     /* the flush waits for page 0's ranks */
    FAULT(h, 0, 1, W);                          /* a page outside the interval */
    FAULT(h, 0, 0, W);                          /* the page being flushed */
    cr_assert_eq(ph_access(h, 0, 1), R, "a write was granted while the flush is out");
    cr_assert_eq(ph_count(h, UPDATE, PH_ANY, PH_ANY), 0);
    settle(h);
    cr_assert_eq(ph_count(h, UPDATE, 0, 1), 1);
    cr_assert_eq(ph_access(h, 0, 1), W, "the waiting write was not granted after the flush");
    cr_assert_eq(ph_access(h, 0, 0), W);
    cr_assert_neq(ph_timer(h, 0), -1, "the next interval armed no timer");
    pp_write(h, 0, 1, 0, 21);
    pp_write(h, 0, 0, 0, 20);
    tick(h, 0);
    cr_assert_eq(ph_count(h, UPDATE, 0, 1), 2);
    cr_assert_eq(ph_sent_at(h, ph_nsent(h) - 1)->vclock[0], 2);
    pp_run(h);
    cr_assert_eq(pp_read(h, 1, 0, 0), 20);
    cr_assert_eq(pp_read(h, 1, 1, 0), 21);
    ph_destroy(h);
}

/* Worst-case changes (every other byte) to `page` at node n. */
static void scribble(struct ph *h, int n, uint64_t page, uint8_t v)
{
    pp_access(h, n, page, W);
    for (size_t b = 0; b < PS; b += 2)
        ph_frame(h, n, page)[b] = (uint8_t)(v + b / 2 % 7 + 1);
}

static int scribbled(struct ph *h, int n, uint64_t page, uint8_t v)
{
    for (size_t b = 0; b < PS; b += 2)
        if (ph_frame(h, n, page)[b] != (uint8_t)(v + b / 2 % 7 + 1))
            return 0;
    return 1;
}

/* An update larger than one message travels in parts and is applied only when whole. */
BOTH_MODES(large_update_travels_in_parts_and_is_applied_whole)
{
    enum { NPG = 24 };
    struct ph *h = mk(2, NPG, mode);
    size_t parts;

    for (uint64_t p = 0; p < NPG; p++)
        scribble(h, 0, p, (uint8_t)p);
    tick(h, 0);
    parts = ph_count(h, UPDATE, 0, 1);
    cr_assert_geq(parts, 2, "%d pages of worst-case diffs (%u KiB) in %zu message(s)", NPG,
                  NPG * (unsigned)dsmp_diff_max(PS) / 1024, parts);
    NO_ERRORS(h);                               /* every part fitted a message */
    for (size_t i = 0; i + 1 < parts; i++) {
        cr_assert_eq(ph_deliver(h, 0, 1), 1);
        settle(h);
        cr_assert_eq(ph_count_events(h, 1, PH_EV_REVOKE, 0, PH_ANY), 0, "applying started before the last part");
        for (uint64_t p = 0; p < NPG; p++)
            cr_assert_eq(ph_frame(h, 1, p)[0], 0, "part %zu: page %llu patched early", i, (unsigned long long)p);
    }
    cr_assert_eq(ph_deliver(h, 0, 1), 1);
    settle(h);
    for (uint64_t p = 0; p < NPG; p++) {
        cr_assert(scribbled(h, 1, p, (uint8_t)p), "page %llu not applied whole", (unsigned long long)p);
        cr_assert_eq(ph_access(h, 1, p), R);
    }
    cr_assert_eq(ph_queued(h, PH_ANY, PH_ANY), 0);
    ph_destroy(h);
}

/* An interval has a bound in pages: writing many pages with no tick and no synchronisation
 * still sends updates, and every page arrives intact. */
Test(causal, an_interval_holds_a_bounded_number_of_pages)
{
    enum { NPG = DSMP_CAUSAL_INTERVAL_PAGES + 344 };
    struct ph *h = mk(2, NPG, PH_REVOKE_SYNC);

    for (uint64_t p = 0; p < NPG; p++)
        pp_write(h, 0, p, 0, 1000 + p);
    cr_assert_gt(ph_count(h, UPDATE, 0, 1), 0, "%d pages written and no update sent", NPG);
    tick(h, 0);
    pp_run(h);
    for (uint64_t p = 0; p < NPG; p++)
        cr_assert_eq(pp_read(h, 1, p, 0), 1000 + p, "page %llu", (unsigned long long)p);
    ph_destroy(h);
}

/* Many write faults pile up while a flush is out; when it ends they all join the next
 * interval, whose worst-case diffs must still all arrive intact. */
Test(causal, write_faults_piled_up_during_a_flush_all_arrive)
{
    enum { K = 30 };
    struct ph *h = mk(2, K + 1, PH_REVOKE_DEFERRED);

    pp_write(h, 0, K, 0, 1);
    cr_assert_eq(ph_tick(h, 0), 1);             /* the flush waits for page K's ranks */
    for (uint64_t p = 0; p < K; p++)
        FAULT(h, 0, p, W);
    for (uint64_t p = 0; p < K; p++)
        cr_assert_eq(ph_access(h, 0, p), R, "page %llu granted during the flush", (unsigned long long)p);
    settle(h);                                  /* flush out: the waiting writes are granted */
    /* write what is granted; finish the rest the way the ranks and the timer would */
    for (int round = 0; round < 64; round++) {
        for (uint64_t p = 0; p < K; p++)
            if (ph_access(h, 0, p) == W && !scribbled(h, 0, p, (uint8_t)p))
                scribble(h, 0, p, (uint8_t)p);
        if (ph_timer(h, 0) >= 0)
            tick(h, 0);
        pp_run(h);
        if (ph_idle(h) && ph_timer(h, 0) < 0)
            break;
    }
    NO_ERRORS(h);
    for (uint64_t p = 0; p < K; p++) {
        cr_assert(scribbled(h, 0, p, (uint8_t)p), "page %llu never written", (unsigned long long)p);
        cr_assert(scribbled(h, 1, p, (uint8_t)p), "page %llu did not arrive intact", (unsigned long long)p);
    }
    ph_destroy(h);
}

/* A part out of order (a part missing) is refused. */
Test(causal, update_part_out_of_order_is_eproto)
{
    struct ph *h = mk(2, 2, PH_REVOKE_SYNC);
    uint64_t vc[2] = { 1, 0 };
    uint8_t data[12 + 5] = { 0 };
    dsmw_msg_t m;

    data[8] = 5;        /* page 0, a 5-byte diff: one run of one byte at 0 */
    data[14] = 1;
    data[16] = 9;
    dsmw_init(&m, DSMW__TYPE__UPDATE);
    m.origin = (uint32_t)ph_rank(0);
    m.vclock = vc;
    m.n_vclock = 2;
    m.data.data = data;
    m.data.len = sizeof(data);
    m.count = 2;
    m.seq = 1;          /* part 0 never came */
    cr_assert_eq(ph_inject(h, 0, 1, &m, DSMP_NO_FRAME), DSM_EPROTO);
    cr_assert_eq(pp_peek(h, 1, 0, 0), 0);
    NO_ERRORS(h);
    ph_destroy(h);
}

/* ---- randomized schedules: causal order is never broken --------------------------------------- */

/*
 * Node 0 writes d (page 0) = 1, then f (page 1) = 1, then x (page 3) = 1 and x = 2 in later
 * intervals; node 1, once it reads d == 1, writes y (page 2) = 1. Timers fire and messages
 * and revocations complete in random order. After every step, nodes 2 and 3 look:
 *   MP   f == 1 implies d == 1          (node 0's writes in order)
 *   WRC  y == 1 implies d == 1          (node 1 wrote y after reading d)
 *   CoRR x never goes back from 2 to 1  (per reader)
 */
struct rw_state {
    int pc0, pc1, wait0, wait1;
    uint64_t last_x[4];
};

/* A rank's store: fault if it may not write, and write as soon as it may (a fault granted
 * at once writes in the same step). *waiting says a fault was issued for this store. */
static void writer_step(struct ph *h, int n, uint64_t page, uint64_t value, int *pc, int *waiting)
{
    if (ph_access(h, n, page) != W && ph_fault_pending(h, n, page) == 0) {
        cr_assert_eq(ph_fault(h, n, page, W, ph_rank(n)), 0);
        *waiting = 1;
    }
    if (ph_access(h, n, page) == W) {
        memcpy(ph_frame(h, n, page), &value, 8);
        ++*pc;
        *waiting = 0;
    }
}

static void observe(struct ph *h, struct rw_state *st, uint64_t seed)
{
    for (int n = 2; n < 4; n++) {
        int readable = 1;

        for (uint64_t p = 0; p < 4; p++)
            readable &= ph_access(h, n, p) >= R;
        if (!readable)
            continue; /* a rank would wait in a fault */
        {
            uint64_t f = pp_peek(h, n, 1, 0), y = pp_peek(h, n, 2, 0), d = pp_peek(h, n, 0, 0), x = pp_peek(h, n, 3, 0);

            cr_assert(!(f == 1 && d == 0), "seed %llu: MP broken at node %d", (unsigned long long)seed, n);
            cr_assert(!(y == 1 && d == 0), "seed %llu: WRC broken at node %d", (unsigned long long)seed, n);
            cr_assert_geq(x, st->last_x[n], "seed %llu: CoRR broken at node %d (x %llu after %llu)",
                          (unsigned long long)seed, n, (unsigned long long)x, (unsigned long long)st->last_x[n]);
            st->last_x[n] = x;
        }
    }
}

/* The schedules above, over full replicas (partial 0) or over partial ones (a bounded
 * cache: pages homed on different nodes, the readers fetching them, pages evicted at
 * random). Returns the evictions made. */
static uint64_t mp_wrc_corr_schedules(int partial)
{
    static const int home[4] = { 1, 2, 3, 0 };
    uint64_t evictions = 0;

    for (uint64_t seed = 1; seed <= 300; seed++) {
        enum ph_revoke_mode mode = seed % 2 ? PH_REVOKE_DEFERRED : PH_REVOKE_SYNC;
        struct ph *h;
        struct rw_state st = { 0 };
        uint64_t s = seed;
        long steps = 0;

        pp_ahead = seed % 3 == 0 ? 4 : 0; /* a third of the seeds with writes ahead */
        h = partial ? mkp(4, 4, home, mode) : mk(4, 4, mode);
        pp_ahead = 0;
        ph_set_evict_pct(h, partial ? 15 : 0);
        while (st.pc0 < 4 || st.pc1 < 1 || !ph_idle(h) || ph_timer(h, 0) >= 0 || ph_timer(h, 1) >= 0) {
            uint32_t what;

            cr_assert_lt(steps++, 100000, "seed %llu: stuck", (unsigned long long)seed);
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            what = (uint32_t)(s >> 33) % (partial ? 12 : 10);
            if (what < 2 && st.pc0 < 4) {
                static const uint64_t page[4] = { 0, 1, 3, 3 }, value[4] = { 1, 1, 1, 2 };

                /* each write in its own interval: wait for the previous one's flush */
                if (st.pc0 == 0 || st.wait0 || ph_timer(h, 0) < 0)
                    writer_step(h, 0, page[st.pc0], value[st.pc0], &st.pc0, &st.wait0);
            } else if (what < 3 && st.pc1 < 1) {
                if (st.wait1 || (ph_access(h, 1, 0) >= R && pp_peek(h, 1, 0, 0) == 1))
                    writer_step(h, 1, 2, 1, &st.pc1, &st.wait1);
                else if (ph_access(h, 1, 0) < R)
                    (void)ph_fault(h, 1, 0, R, ph_rank(1)); /* partial: fetch d to look at it */
            } else if (what < 5) {
                ph_tick(h, (int)((s >> 20) % 2));
            } else if (partial && what < 6) {
                int n = 2 + (int)((s >> 20) % 2);

                for (uint64_t p = 0; p < 4; p++) /* a reader wants every page */
                    if (ph_access(h, n, p) < R)
                        (void)ph_fault(h, n, p, R, ph_rank(n));
            } else if (!ph_step_random(h, &s)) {
                ph_tick(h, (int)((s >> 20) % 2));
            }
            NO_ERRORS(h);
            observe(h, &st, seed);
        }
        for (int n = 0; n < 4; n++) {
            cr_assert_eq(pp_read(h, n, 0, 0), 1, "seed %llu node %d", (unsigned long long)seed, n);
            cr_assert_eq(pp_read(h, n, 1, 0), 1);
            cr_assert_eq(pp_read(h, n, 2, 0), 1);
            cr_assert_eq(pp_read(h, n, 3, 0), 2);
        }
        evictions += ph_evictions(h);
        ph_destroy(h);
    }
    return evictions;
}

Test(causal, random_schedules_keep_mp_wrc_corr, .timeout = 120)
{
    mp_wrc_corr_schedules(0);
}

/* ---- litmus: causal relaxes what sequential forbids ----------------------------------------- */

/* SB: x=1; r0=y || y=1; r1=x, then the timers fire and the updates are delivered. */
static void sb(const struct dsmp_ops *ops, uint64_t *r0, uint64_t *r1, uint64_t *late0, uint64_t *late1)
{
    struct ph *h = pp_make(ops, 2, 2, PS, home0, PH_REVOKE_SYNC);

    pp_write(h, 0, 0, 0, 1);
    pp_write(h, 1, 1, 0, 1);
    *r0 = pp_read(h, 0, 1, 0);
    *r1 = pp_read(h, 1, 0, 0);
    ph_tick(h, 0);
    ph_tick(h, 1);
    pp_run(h);
    *late0 = pp_read(h, 0, 1, 0);
    *late1 = pp_read(h, 1, 0, 0);
    ph_destroy(h);
}

Test(causal, litmus_sb_relaxed_outcome_that_sequential_forbids)
{
    uint64_t r0, r1, l0, l1;

    sb(&dsmp_causal_ops, &r0, &r1, &l0, &l1);
    cr_assert(r0 == 0 && r1 == 0, "causal: r0=%llu r1=%llu, want the relaxed 0 0", (unsigned long long)r0,
              (unsigned long long)r1);
    cr_assert(l0 == 1 && l1 == 1, "causal: the writes never arrived");
    sb(&dsmp_sequential_ops, &r0, &r1, &l0, &l1);
    cr_assert(!(r0 == 0 && r1 == 0), "sequential produced SB's forbidden 0 0");
    cr_assert(r0 == 1 && r1 == 1, "sequential: r0=%llu r1=%llu", (unsigned long long)r0, (unsigned long long)r1);
}

/*
 * IRIW: x=1 || y=1 || r1=x; r2=y || r3=y; r4=x. One schedule: nodes 0 and 1 write (and
 * their timers fire), node 0's update reaches node 2 and node 1's reaches node 3, then the
 * readers read. Two readers see two independent writes in opposite orders.
 */
static void iriw(const struct dsmp_ops *ops, uint64_t r[4])
{
    struct ph *h = pp_make(ops, 4, 2, PS, home0, PH_REVOKE_SYNC);

    pp_write(h, 0, 0, 0, 1);
    pp_write(h, 1, 1, 0, 1);
    ph_tick(h, 0);
    ph_tick(h, 1);
    ph_deliver(h, 0, 2);
    ph_deliver(h, 1, 3);
    r[0] = pp_read(h, 2, 0, 0);
    r[1] = pp_read(h, 2, 1, 0);
    r[2] = pp_read(h, 3, 1, 0);
    r[3] = pp_read(h, 3, 0, 0);
    pp_run(h);
    ph_destroy(h);
}

Test(causal, litmus_iriw_relaxed_outcome_that_sequential_forbids)
{
    uint64_t r[4];

    iriw(&dsmp_causal_ops, r);
    cr_assert(r[0] == 1 && r[1] == 0 && r[2] == 1 && r[3] == 0,
              "causal: %llu %llu %llu %llu, want the relaxed 1 0 1 0", (unsigned long long)r[0],
              (unsigned long long)r[1], (unsigned long long)r[2], (unsigned long long)r[3]);
    iriw(&dsmp_sequential_ops, r);
    cr_assert(!(r[0] == 1 && r[1] == 0 && r[2] == 1 && r[3] == 0), "sequential produced IRIW's forbidden 1 0 1 0");
    cr_assert(r[0] == 1 && r[1] == 1 && r[2] == 1 && r[3] == 1, "sequential: %llu %llu %llu %llu",
              (unsigned long long)r[0], (unsigned long long)r[1], (unsigned long long)r[2], (unsigned long long)r[3]);
}

/* Locked scans (proto_prog.h) under random delivery: every scan sees every increment. */
Test(causal, lock_scan_random_schedules, .timeout = 120)
{
    for (uint64_t seed = 1; seed <= 40; seed++) {
        int nn = 2 + (int)(seed % 3);
        struct ph *h;

        pp_ahead = 6; /* reads: nothing (causal never fetches on one); writes: writes ahead */
        h = mk(nn, 12, seed % 2 ? PH_REVOKE_DEFERRED : PH_REVOKE_SYNC);
        pp_ahead = 0;
        pp_lock_scan(h, nn, 12, (uint32_t)(seed % 5), 6, seed);
        ph_destroy(h);
    }
}

/* ---- partial replicas: a bounded cache, memory nodes (svc.partial) --------------------------- */

enum { PAGE_GET = DSMW__TYPE__PAGE_GET, PAGE = DSMW__TYPE__PAGE };

/* The last message sent of `type` from src to dst, or NULL. */
static const struct ph_sent *last_sent(struct ph *h, int type, int src, int dst)
{
    for (size_t i = ph_nsent(h); i-- > 0;) {
        const struct ph_sent *s = ph_sent_at(h, i);

        if (s->type == type && s->src == src && s->dst == dst)
            return s;
    }
    return NULL;
}

BOTH_MODES(partial_pages_homed_elsewhere_start_absent_and_are_fetched)
{
    static const int home[4] = { 0, 1, 2, 0 };
    struct ph *h = mkp(3, 4, home, mode);
    const struct ph_sent *s;

    for (uint64_t p = 0; p < 4; p++)
        for (int n = 0; n < 3; n++)
            cr_assert_eq(ph_access(h, n, p), home[p] == n ? R : NONE, "page %llu node %d", (unsigned long long)p, n);
    pp_write(h, 0, 0, 0, 5);
    cr_assert_eq(ph_tick(h, 0), 0, "a page no other node holds is written privately: no interval (C6)");
    pp_run(h);
    ph_clear_log(h);
    cr_assert_eq(pp_read(h, 1, 0, 0), 5);
    cr_assert_eq(ph_count(h, PAGE_GET, 1, 0), 1);
    s = last_sent(h, PAGE_GET, 1, 0);
    cr_assert_eq(s->n_vclock, 3, "the request carries the requester's clock");
    s = last_sent(h, PAGE, 0, 1);
    cr_assert(s != NULL && s->framed && s->data_len == 0 && s->n_vclock == 3, "the home's frame and clock");
    cr_assert_eq(s->vclock[0], 0, "the opening's interval was empty: no update");
    cr_assert_eq(ph_count(h, DSMW__TYPE__UPDATE, PH_ANY, PH_ANY), 0);
    cr_assert_eq(ph_counter(h, ph_rank(1), DSMP_PAGES_FETCHED), 1);
    cr_assert_eq(pp_read(h, 1, 0, 0), 5);
    cr_assert_eq(ph_count(h, PAGE_GET, PH_ANY, PH_ANY), 1, "a held page is read locally");
    /* a held copy follows the updates; an absent one is never written (C4) */
    pp_write(h, 0, 0, 0, 6);
    tick(h, 0);
    pp_run(h);
    cr_assert_eq(pp_peek(h, 1, 0, 0), 6);
    cr_assert_eq(pp_peek(h, 2, 0, 0), 0, "an update wrote a page node 2 does not hold");
    s = last_sent(h, DSMW__TYPE__UPDATE, 0, 1);
    cr_assert(s != NULL && s->data_len > 0, "the page's diff goes to the node the home served");
    s = last_sent(h, DSMW__TYPE__UPDATE, 0, 2);
    cr_assert(s != NULL && s->data_len == 0 && s->vclock[0] == 1, "node 2 gets the interval without the page");
    cr_assert_eq(ph_access(h, 2, 0), NONE);
    cr_assert_eq(ph_count(h, PAGE_GET, PH_ANY, PH_ANY), 1);
    NO_ERRORS(h);
    ph_destroy(h);
}

/* Node 1 has applied node 2's update; the home has not: it answers only once it has, so
 * the copy node 1 gets holds node 2's write. */
BOTH_MODES(a_fetch_waits_until_the_home_has_what_the_requester_has)
{
    static const int home[2] = { 0, 2 };
    struct ph *h = mkp(3, 2, home, mode);

    pp_write(h, 2, 0, 0, 7);
    tick(h, 2);
    cr_assert_eq(ph_deliver(h, 2, 1), 1);
    settle(h);
    ph_clear_log(h);
    FAULT(h, 1, 0, R);
    cr_assert(!dsmp_causal_ops.settled(ph_proto(h, 1), 0, 1), "a fetch is out");
    cr_assert_eq(ph_deliver(h, 1, 0), 1);
    cr_assert_eq(ph_count(h, PAGE, 0, 1), 0, "the home answered before it had node 2's update");
    cr_assert(!dsmp_causal_ops.settled(ph_proto(h, 0), 0, 1), "a request waits at the home");
    cr_assert(dsmp_causal_ops.settled(ph_proto(h, 0), 1, 1));
    cr_assert_eq(ph_deliver(h, 2, 0), 1);
    pp_run(h);
    cr_assert_eq(ph_count(h, PAGE, 0, 1), 1);
    cr_assert_eq(ph_access(h, 1, 0), R);
    cr_assert_eq(pp_peek(h, 1, 0, 0), 7);
    cr_assert(dsmp_causal_ops.settled(ph_proto(h, 0), 0, 2) && dsmp_causal_ops.settled(ph_proto(h, 1), 0, 2));
    NO_ERRORS(h);
    ph_destroy(h);
}

/* The home's unsent writes do not travel ahead of their interval: it sends its twin. (Node
 * 1 holds the page first, so that the home's writes are tracked, not private.) */
BOTH_MODES(the_home_sends_its_twin_while_it_writes_the_page)
{
    static const int home[1] = { 0 };
    struct ph *h = mkp(3, 1, home, mode);
    const struct ph_sent *s;

    cr_assert_eq(pp_read(h, 1, 0, 0), 0);
    pp_write(h, 0, 0, 0, 3);
    tick(h, 0);
    pp_run(h);
    pp_write(h, 0, 0, 0, 4);
    cr_assert_eq(pp_read(h, 2, 0, 0), 3, "node 2 saw the home's unsent write");
    s = last_sent(h, PAGE, 0, 2);
    cr_assert(s != NULL && !s->framed && s->data_len == PS, "the twin travels in the message");
    tick(h, 0);
    pp_run(h);
    cr_assert_eq(pp_read(h, 2, 0, 0), 4);
    cr_assert_eq(pp_read(h, 1, 0, 0), 4);
    NO_ERRORS(h);
    ph_destroy(h);
}

/* A private page (C6) stays writable across intervals without a twin, and a node asking
 * for it gets it only after the home has sent the writes it made before: the node that
 * sees the flag sees the data written ahead of it. */
BOTH_MODES(a_private_page_is_served_after_the_writes_before_it)
{
    static const int home[2] = { 0, 0 };
    struct ph *h = mkp(2, 2, home, mode);

    cr_assert_eq(pp_read(h, 1, 0, 0), 0);          /* node 1 holds the data page */
    pp_write(h, 0, 1, 0, 7);                       /* the flag page: private */
    pp_write(h, 0, 0, 0, 1);                       /* data: tracked */
    tick(h, 0);
    pp_run(h);
    cr_assert_eq(pp_peek(h, 1, 0, 0), 1);
    pp_write_held(h, 0, 1, 0, 8);                  /* no fault: the interval left it alone */
    pp_write(h, 0, 0, 0, 2);                       /* data, in the open interval */
    pp_write_held(h, 0, 1, 0, 9);                  /* the flag, after it */
    cr_assert_eq(ph_count(h, DSMW__TYPE__UPDATE, 0, 1), 1, "the flag page never went out");
    cr_assert_eq(pp_peek(h, 1, 0, 0), 1, "the interval is still open");
    ph_clear_log(h);
    FAULT(h, 1, 1, R);
    pp_run(h);
    cr_assert_eq(ph_count(h, PAGE, 0, 1), 0, "served before the interval went out");
    cr_assert_eq(ph_count(h, DSMW__TYPE__UPDATE, 0, 1), 0, "no flush is forced: the interval's timer ends it");
    tick(h, 0);
    pp_run(h);
    cr_assert_eq(ph_count(h, PAGE, 0, 1), 1);
    cr_assert_eq(pp_read(h, 1, 1, 0), 9);
    cr_assert_eq(pp_read(h, 1, 0, 0), 2, "node 1 saw the flag without the data written before it");
    /* tracked from now on: the home's next write reaches node 1 in an update */
    pp_write(h, 0, 1, 0, 10);
    tick(h, 0);
    pp_run(h);
    cr_assert_eq(pp_peek(h, 1, 1, 0), 10);
    NO_ERRORS(h);
    ph_destroy(h);
}

/* An update applied while the page is being fetched, which the home's copy lacks, is
 * applied over that copy when it arrives. */
BOTH_MODES(updates_applied_during_a_fetch_are_kept_for_its_page)
{
    static const int home[1] = { 0 };
    struct ph *h = mkp(3, 1, home, mode);

    pp_write(h, 2, 0, 0, 9);
    tick(h, 2);
    FAULT(h, 1, 0, R);
    cr_assert_eq(ph_deliver(h, 1, 0), 1);          /* the home answers at once: 0 */
    cr_assert_eq(ph_count(h, PAGE, 0, 1), 1);
    cr_assert_eq(ph_deliver(h, 2, 1), 1);          /* node 1 applies node 2's update first */
    settle(h);
    cr_assert_eq(ph_access(h, 1, 0), NONE);
    cr_assert_eq(ph_deliver(h, 0, 1), 1);          /* then the home's copy arrives */
    settle(h);
    cr_assert_eq(ph_access(h, 1, 0), R);
    cr_assert_eq(pp_peek(h, 1, 0, 0), 9, "the update applied during the fetch was lost");
    pp_run(h);
    cr_assert_eq(pp_peek(h, 0, 0, 0), 9);
    NO_ERRORS(h);
    ph_destroy(h);
}

/* The home's copy holds node 0's write x = 8, made after it read node 2's x = 7. Node 1 has
 * applied neither: the page stays shut to its ranks until it has, and neither update
 * (both in the copy) is applied to it again. */
BOTH_MODES(a_fetched_page_stays_shut_until_the_clock_covers_the_homes)
{
    static const int home[1] = { 0 };
    struct ph *h = mkp(3, 1, home, mode);
    uint64_t diffs;

    pp_write(h, 2, 0, 0, 7);
    tick(h, 2);
    cr_assert_eq(ph_deliver(h, 2, 0), 1);
    settle(h);
    cr_assert_eq(pp_read(h, 0, 0, 0), 7);
    pp_write(h, 0, 0, 0, 8);
    tick(h, 0);
    FAULT(h, 1, 0, R);
    cr_assert_eq(ph_deliver(h, 1, 0), 1);
    cr_assert_eq(ph_deliver(h, 0, 1), 1);          /* node 0's update: waits for node 2's */
    cr_assert_eq(ph_deliver(h, 0, 1), 1);          /* the PAGE */
    settle(h);
    cr_assert_eq(ph_access(h, 1, 0), NONE, "node 1 may read x = 8 before it applied what x = 8 depends on");
    cr_assert_neq(ph_fault_pending(h, 1, 0), 0);
    cr_assert_eq(pp_peek(h, 1, 0, 0), 8);
    diffs = ph_counter(h, ph_rank(1), DSMP_DIFFS);
    cr_assert_eq(ph_deliver(h, 2, 1), 1);
    settle(h);
    cr_assert_eq(pp_peek(h, 1, 0, 0), 8);
    pp_run(h);
    cr_assert_eq(ph_counter(h, ph_rank(1), DSMP_DIFFS), diffs, "an update the copy holds was applied again");
    cr_assert_eq(ph_access(h, 1, 0), R);
    cr_assert_eq(pp_peek(h, 1, 0, 0), 8);
    NO_ERRORS(h);
    ph_destroy(h);
}

BOTH_MODES(eviction_drops_a_clean_copy_and_ends_an_interval_that_wrote_it)
{
    static const int home[1] = { 0 };
    struct ph *h = mkp(2, 1, home, mode);
    uint8_t before[PS];
    int done = 0, r;

    cr_assert_eq(pp_read(h, 1, 0, 0), 0);
    ph_clear_log(h);
    cr_assert_eq(ph_evict(h, 1, 0, &done), 1);
    settle(h);
    cr_assert_eq(done, 1);
    cr_assert_eq(ph_nsent(h), 0, "a clean page goes without a message");
    cr_assert_eq(ph_access(h, 1, 0), NONE);
    pp_write(h, 1, 0, 0, 5);
    ph_clear_log(h);
    /* the interval ends first; its revocations done at once, the page is clean at once */
    r = ph_evict(h, 1, 0, &done);
    cr_assert_eq(r, mode == PH_REVOKE_SYNC, "a page of the open interval was evicted (%d)", r);
    settle(h);
    cr_assert_eq(ph_count(h, UPDATE, 1, 0), 1, "the eviction did not end the interval");
    if (r == 0)
        cr_assert_eq(ph_evict(h, 1, 0, &done), 1);
    settle(h);
    cr_assert_eq(done, 2);
    pp_run(h);
    cr_assert_eq(pp_read(h, 0, 0, 0), 5, "the evicted page's write was lost");
    memcpy(before, ph_frame(h, 1, 0), PS);
    pp_write(h, 0, 0, 0, 6);
    tick(h, 0);
    pp_run(h);
    cr_assert(memcmp(before, ph_frame(h, 1, 0), PS) == 0, "an update wrote an evicted frame");
    cr_assert_eq(pp_read(h, 1, 0, 0), 6);
    NO_ERRORS(h);
    ph_destroy(h);
}

Test(causal, malformed_partial_messages_are_eproto)
{
    static const int home[3] = { 0, 1, DSMP_NO_HOME };
    struct ph *h = mkp(3, 3, home, PH_REVOKE_SYNC);
    uint64_t vc[3] = { 0, 0, 0 }, page[PS / 8];
    dsmw_msg_t m;

    memset(page, 0, sizeof(page));
    dsmw_init(&m, DSMW__TYPE__PAGE);
    m.page = 0;
    m.origin = 0;
    m.vclock = vc;
    m.n_vclock = 3;
    cr_assert_eq(ph_inject(h, 0, 1, &m, 0), DSM_EPROTO, "a PAGE nobody asked for");
    FAULT(h, 1, 0, R);
    cr_assert_eq(ph_inject(h, 2, 1, &m, 0), DSM_EPROTO, "a PAGE from a node that is not the home");
    vc[1] = 5;
    cr_assert_eq(ph_inject(h, 0, 1, &m, 0), DSM_EPROTO, "a home clock ahead of the requester's own intervals");
    vc[1] = 0;
    m.data.data = (uint8_t *)page;
    m.data.len = 10;
    cr_assert_eq(ph_inject(h, 0, 1, &m, DSMP_NO_FRAME), DSM_EPROTO, "a page of 10 bytes");
    m.n_vclock = 2;
    m.data.len = PS;
    cr_assert_eq(ph_inject(h, 0, 1, &m, DSMP_NO_FRAME), DSM_EPROTO, "a clock of the wrong length");
    cr_assert_eq(ph_access(h, 1, 0), NONE);
    dsmw_init(&m, DSMW__TYPE__PAGE_GET);
    m.page = 1;
    m.node = 1;
    m.origin = 2;
    m.vclock = vc;
    m.n_vclock = 3;
    cr_assert_eq(ph_inject(h, 1, 0, &m, DSMP_NO_FRAME), DSM_EPROTO, "a request for a page homed elsewhere");
    m.page = 0;
    vc[0] = 7;
    cr_assert_eq(ph_inject(h, 1, 0, &m, DSMP_NO_FRAME), DSM_EPROTO, "a request claiming intervals the home never sent");
    cr_assert(dsmp_causal_ops.settled(ph_proto(h, 0), 0, 1), "a request that can never be answered waits");
    vc[0] = 0;
    m.page = 2;
    ph_clear_log(h);
    cr_assert_eq(ph_inject(h, 1, 0, &m, DSMP_NO_FRAME), DSM_OK, "a request for a freed page");
    cr_assert_eq(ph_count(h, PAGE, 0, 1), 1, "a request for a freed page goes unanswered");
    cr_assert(!last_sent(h, PAGE, 0, 1)->framed);
    ph_discard(h);
    ph_destroy(h);
}

/* Locked scans with random evictions: every scan sees every increment. */
Test(causal, lock_scans_with_evictions, .timeout = 120)
{
    struct pp_scan_totals t = pp_lock_scans(&dsmp_causal_ops, 0, 0, 20);

    cr_assert_gt(t.evictions, 300, "only %llu evictions", (unsigned long long)t.evictions);
}

/* Requests for more pages ahead than a home sends, and a refusal of a page nobody asked
 * for ahead, are malformed. */
Test(causal, malformed_read_ahead_messages_are_eproto)
{
    static const int home[2] = { 0, 0 };
    struct ph *h = mkp(2, 2, home, PH_REVOKE_SYNC);
    uint64_t vc[2] = { 0, 0 };
    dsmw_msg_t m;

    dsmw_init(&m, DSMW__TYPE__PAGE_GET);
    m.page = 0;
    m.node = 1;
    m.origin = (uint32_t)ph_rank(1);
    m.vclock = vc;
    m.n_vclock = 2;
    m.count = DSMP_AHEAD_MAX + 1;
    cr_assert_eq(ph_inject(h, 1, 0, &m, DSMP_NO_FRAME), DSM_EPROTO, "more pages ahead than a home sends");
    m.count = 2;
    cr_assert_eq(ph_inject(h, 1, 0, &m, DSMP_NO_FRAME), DSM_EPROTO, "pages ahead past the space");
    FAULT(h, 1, 0, R);
    dsmw_init(&m, DSMW__TYPE__PAGE);
    m.page = 0;
    m.status = DSM_EBUSY;
    cr_assert_eq(ph_inject(h, 0, 1, &m, DSMP_NO_FRAME), DSM_EPROTO, "a refusal of the asked page");
    ph_discard(h);
    ph_destroy(h);
}

/* An update writing a page its home holds privately (C6) cannot come from a node of the
 * same job (both run partial replicas): the home fails the job rather than let copies part. */
Test(causal, a_write_to_a_private_page_fails_the_job, .signal = SIGABRT)
{
    static const int home[1] = { 0 };
    struct ph *h = mkp(2, 1, home, PH_REVOKE_SYNC);
    uint8_t cur[PS], twin[PS], diff[3 * PS], rec[3 * PS];
    uint64_t vc[2] = { 0, 1 };
    dsmw_msg_t m;
    size_t len;

    pp_write(h, 0, 0, 0, 5); /* private to node 0 */
    memset(twin, 0, PS);
    memset(cur, 0, PS);
    cur[0] = 9;
    len = dsmp_diff_make(cur, twin, PS, diff);
    len = dsmp_rec_put(rec, 0, diff, len);
    dsmw_init(&m, DSMW__TYPE__UPDATE);
    m.origin = (uint32_t)ph_rank(1);
    m.vclock = vc;
    m.n_vclock = 2;
    m.count = 1;
    m.data.data = rec;
    m.data.len = len;
    (void)ph_inject(h, 1, 0, &m, DSMP_NO_FRAME);
    pp_run(h);
}

/* MP, WRC and CoRR (random_schedules_keep_mp_wrc_corr) over partial replicas, pages homed
 * on different nodes, the readers fetching them and pages evicted at random. */
Test(causal, partial_random_schedules_keep_mp_wrc_corr, .timeout = 120)
{
    uint64_t evictions = mp_wrc_corr_schedules(1);

    cr_assert_gt(evictions, 1000, "only %llu evictions", (unsigned long long)evictions);
}

/* A page written in the open interval and then freed (reset) leaves the interval: its
 * writes are void, and the interval's end finds no page without its twin (C2). */
BOTH_MODES(a_freed_page_leaves_the_open_interval)
{
    struct ph *h = mk(2, 2, mode);

    pp_write(h, 1, 0, 0, 5);
    pp_write(h, 1, 1, 0, 6);
    ph_reset(h, 0, 1);
    tick(h, 1);
    pp_run(h);
    cr_assert_eq(ph_count(h, UPDATE, 1, 0), 1, "the interval's other page was not sent");
    cr_assert_eq(pp_peek(h, 0, 0, 0), 0, "a freed page's write arrived");
    cr_assert_eq(pp_peek(h, 0, 1, 0), 6);
    NO_ERRORS(h);
    ph_destroy(h);
}

/* Free a range as the daemon does under causal (daemon/alloc.c): the freeing node's request
 * carries its clock after its release (fill_free); every node's range settles only once it
 * has applied that clock (freeing, settled); then it is reset. */
static void free_release_done(dsmp_t *p, void *arg)
{
    (void)p;
    ++*(int *)arg;
}

static void free_request(struct ph *h, int nnodes, int node, uint64_t *vc)
{
    dsmw_msg_t m;
    int done = 0;

    dsmp_causal_ops.sync->release(ph_proto(h, node), ph_rank(node), free_release_done, &done);
    settle(h);
    cr_assert_eq(done, 1, "the release before a free did not complete");
    dsmw_init(&m, DSMW__TYPE__COFREE_REQ);
    dsmp_causal_ops.sync->fill_free(ph_proto(h, node), &m);
    cr_assert_eq(m.n_vclock, (size_t)nnodes);
    memcpy(vc, m.vclock, m.n_vclock * sizeof(*vc));
}

static void freeing(struct ph *h, int nnodes, int node, uint64_t first, uint64_t n, uint64_t *vc)
{
    dsmw_msg_t m;

    dsmw_init(&m, DSMW__TYPE__REGION_FREE);
    m.vclock = vc;
    m.n_vclock = (size_t)nnodes;
    dsmp_causal_ops.sync->freeing(ph_proto(h, node), first, n, &m);
}

static int all_settled(struct ph *h, int nnodes, uint64_t first, uint64_t n)
{
    for (int k = 0; k < nnodes; k++)
        if (!dsmp_causal_ops.settled(ph_proto(h, k), first, n))
            return 0;
    return 1;
}

/* An update sent before a free must not land on the range's next allocation: the free's
 * clock holds every node's reset back until that update is applied there (before, node 0
 * and 2 applied it after the reset: the new allocation read the old write). */
BOTH_MODES(a_free_waits_for_the_updates_sent_before_it)
{
    struct ph *h = mk(3, 2, mode);
    uint64_t vc[3];

    pp_write(h, 1, 0, 0, 5);
    pp_write(h, 1, 1, 0, 6);
    tick(h, 1);                                  /* the update is out, not delivered */
    cr_assert_eq(ph_count(h, UPDATE, 1, 0), 1);
    free_request(h, 3, 1, vc);
    cr_assert_eq(vc[1], 1, "the free's clock lacks node 1's interval");
    for (int n = 0; n < 3; n++) {
        freeing(h, 3, n, 0, 1, vc);
        cr_assert_eq(dsmp_causal_ops.settled(ph_proto(h, n), 0, 1), n == 1,
                     "node %d: settled with an update from before the free still to come", n);
        cr_assert(dsmp_causal_ops.settled(ph_proto(h, n), 1, 1), "node %d: a range outside the free waits", n);
    }
    /* as the daemon: the free resets the range once every node has settled it, and the
     * next allocation resets it again; whatever is in flight is delivered after */
    for (long steps = 0; !all_settled(h, 3, 0, 1); steps++)
        cr_assert(steps < 1000 && ph_step(h), "the free never settled");
    ph_reset(h, 0, 1);
    ph_reset(h, 0, 1);
    pp_run(h);
    for (int n = 0; n < 3; n++) {
        cr_assert_eq(pp_peek(h, n, 0, 0), 0, "node %d: the new allocation holds an old write", n);
        cr_assert_eq(pp_peek(h, n, 1, 0), 6, "node %d", n);
    }
    NO_ERRORS(h);
    ph_destroy(h);
}

/* The release before a free's request flushes the node's open interval, so the free's
 * clock covers the writes it held. */
Test(causal, a_free_request_covers_the_open_interval)
{
    struct ph *h = mk(2, 1, PH_REVOKE_SYNC);
    uint64_t vc[2];

    pp_write(h, 1, 0, 0, 5);                     /* open interval, not flushed */
    free_request(h, 2, 1, vc);
    cr_assert_eq(vc[1], 1, "the open interval was not ended before the free's clock was taken");
    freeing(h, 2, 0, 0, 1, vc);
    cr_assert_not(dsmp_causal_ops.settled(ph_proto(h, 0), 0, 1));
    pp_run(h);
    cr_assert(dsmp_causal_ops.settled(ph_proto(h, 0), 0, 1));
    ph_destroy(h);
}

/* A free whose clock claims intervals of this node it never sent fails the job (it could
 * never settle). */
Test(causal, a_free_with_a_clock_from_the_future_fails, .signal = SIGABRT)
{
    struct ph *h = mk(2, 1, PH_REVOKE_SYNC);
    uint64_t vc[2] = { 7, 0 };

    freeing(h, 2, 0, 0, 1, vc);
}

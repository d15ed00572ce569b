/*
 * test_release.c - unit suite for the release consistency module
 * (consistency/release/release.c, home-based lazy release consistency) over the in-process
 * harness (proto_harness.h), with locks and barriers driven as daemon/sync.c drives the
 * module's sync hooks.
 *
 * Scenario tests check exact message counts (a fault is PAGE_GET + PAGE; a release sends
 * one DIFF per home of its changed cached pages, each naming them all, once every page is
 * write-protected, and completes only after the DIFF_ACKs; an acquire drops
 * exactly the pages named by notices it has not seen), multiple writers, transitivity, a
 * copy dropped while it is being fetched, and lock counters under random schedules. The
 * litmus tests run one schedule under release and under sequential and check that release
 * produces an outcome that sequential forbids (SB, MP) and that locks forbid it again.
 */
#include <criterion/criterion.h>

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
    PAGE_GET = DSMW__TYPE__PAGE_GET,
    PAGE = DSMW__TYPE__PAGE,
    DIFF = DSMW__TYPE__DIFF,
    DIFF_ACK = DSMW__TYPE__DIFF_ACK,
    UNLOCK = DSMW__TYPE__UNLOCK,
    LOCK_REQ = DSMW__TYPE__LOCK_REQ,
    LOCK_GRANT = DSMW__TYPE__LOCK_GRANT,
};

static const int home0[64] = { 0 };

static struct ph *mk(int nnodes, uint64_t npages, const int *home, enum ph_revoke_mode mode)
{
    return pp_make(&dsmp_release_ops, nnodes, npages, PS, home, mode);
}

#define NO_ERRORS(h) cr_assert_eq(ph_errors(h), 0, "harness: %s", ph_first_error(h))
#define FAULT(h, node, page, acc) \
    cr_assert_eq(ph_fault((h), (node), (page), (acc), ph_rank(node)), 0, "fault not allowed")

#define BOTH_MODES(name)                                         \
    static void name(enum ph_revoke_mode mode);                  \
    Test(release, name##_sync) { name(PH_REVOKE_SYNC); }         \
    Test(release, name##_deferred) { name(PH_REVOKE_DEFERRED); } \
    static void name(enum ph_revoke_mode mode)

static void expect_sent(struct ph *h, size_t i, int type, int src, int dst, uint64_t page, int framed)
{
    const struct ph_sent *s = ph_sent_at(h, i);

    cr_assert_not_null(s, "message #%zu missing (only %zu sent)", i, ph_nsent(h));
    cr_assert(s->type == type && s->src == src && s->dst == dst && s->page == page && s->framed == framed,
              "message #%zu: got %s %d->%d page %llu framed %d, want %s %d->%d page %llu framed %d", i,
              dsmw_type_name(s->type), s->src, s->dst, (unsigned long long)s->page, s->framed, dsmw_type_name(type),
              src, dst, (unsigned long long)page, framed);
}

/* Put `value` in word 0 of the home's master copy, as earlier released writes would have. */
static void seed_home(struct ph *h, int home, uint64_t page, uint64_t value)
{
    memcpy(ph_frame(h, home, page), &value, 8);
}

/* ---- registry and initial state ------------------------------------------------------- */

Test(release, registry_and_hooks)
{
    const struct dsmp_ops *o = dsmp_find("release");

    cr_assert_eq(o, &dsmp_release_ops);
    cr_assert_str_eq(o->name, "release");
    cr_assert_eq(o->model, DSM_MODEL_RELEASE);
    cr_assert_not_null(o->sync);
    cr_assert_not_null(o->sync->release);
    cr_assert_not_null(o->sync->fill_release);
    cr_assert_not_null(o->sync->fill_acquire);
    cr_assert_not_null(o->sync->lock_released);
    cr_assert_not_null(o->sync->fill_grant);
    cr_assert_not_null(o->sync->barrier_arrived);
    cr_assert_not_null(o->sync->fill_barrier);
    cr_assert_not_null(o->sync->acquired);
}

Test(release, initial_state_home_reads_others_none)
{
    static const int home[4] = { 0, 1, 2, 1 };
    struct ph *h = mk(3, 4, home, PH_REVOKE_SYNC);

    for (uint64_t p = 0; p < 4; p++)
        for (int n = 0; n < 3; n++)
            cr_assert_eq(ph_access(h, n, p), n == home[p] ? R : NONE, "page %llu node %d", (unsigned long long)p, n);
    cr_assert_eq(ph_nsent(h), 0);
    ph_destroy(h);
}

/* ---- faults ---------------------------------------------------------------------------- */

BOTH_MODES(read_fault_at_non_home_is_page_get_and_page)
{
    struct ph *h = mk(3, 4, home0, mode);

    seed_home(h, 0, 2, 1234);
    FAULT(h, 1, 2, R);
    cr_assert_eq(ph_nsent(h), 1);
    expect_sent(h, 0, PAGE_GET, 1, 0, 2, 0);
    cr_assert_eq(ph_sent_at(h, 0)->node, 1);
    cr_assert_eq(ph_sent_at(h, 0)->origin, ph_rank(1));
    cr_assert_eq(ph_access(h, 1, 2), NONE);
    cr_assert_eq(ph_deliver(h, 1, 0), 1);
    cr_assert_eq(ph_nsent(h), 2);
    expect_sent(h, 1, PAGE, 0, 1, 2, 1);
    cr_assert_eq(ph_deliver(h, 0, 1), 1);
    pp_run(h);
    cr_assert_eq(ph_nsent(h), 2, "exactly PAGE_GET and PAGE");
    cr_assert_eq(ph_access(h, 1, 2), R);
    cr_assert_eq(pp_peek(h, 1, 2, 0), 1234);
    cr_assert_eq(ph_fault_pending(h, 1, 2), 0);
    cr_assert_eq(ph_count_events(h, 0, PH_EV_REVOKE, 2, PH_ANY), 0, "a read takes nothing from the home");
    cr_assert_eq(ph_counter(h, ph_rank(1), DSMP_PAGES_FETCHED), 1);
    cr_assert_eq(ph_fault(h, 1, 2, R, ph_rank(1)), -1, "already readable");
    ph_destroy(h);
}

BOTH_MODES(write_fault_at_non_home_fetches_then_writes_locally)
{
    struct ph *h = mk(3, 2, home0, mode);

    seed_home(h, 0, 1, 77);
    FAULT(h, 2, 1, W);
    pp_run(h);
    cr_assert_eq(ph_nsent(h), 2);
    expect_sent(h, 0, PAGE_GET, 2, 0, 1, 0);
    expect_sent(h, 1, PAGE, 0, 2, 1, 1);
    cr_assert_eq(ph_access(h, 2, 1), W);
    cr_assert_eq(ph_access(h, 0, 1), R, "multiple writers: the home keeps its copy");
    cr_assert_eq(pp_peek(h, 2, 1, 0), 77);
    /* a write fault on a page already readable needs no message */
    ph_clear_log(h);
    cr_assert_eq(pp_read(h, 1, 1, 0), 77);
    ph_clear_log(h);
    FAULT(h, 1, 1, W);
    pp_run(h);
    cr_assert_eq(ph_nsent(h), 0, "a twin is local");
    cr_assert_eq(ph_access(h, 1, 1), W);
    cr_assert_eq(ph_access(h, 2, 1), W, "two writers at once");
    ph_destroy(h);
}

BOTH_MODES(home_writes_in_place_without_messages_or_diffs)
{
    struct ph *h = mk(2, 2, home0, mode);

    pp_lock(h, 0, 1);
    ph_clear_log(h);
    pp_write(h, 0, 0, 0, 5);
    cr_assert_eq(ph_nsent(h), 0);
    cr_assert_eq(ph_access(h, 0, 0), W);
    pp_unlock(h, 0, 1);
    cr_assert_eq(ph_count(h, DIFF, PH_ANY, PH_ANY), 0, "the home's writes are already in the master copy");
    cr_assert_eq(ph_count(h, UNLOCK, 0, 1), 1);
    /* R6: nobody else has fetched page 0, so nothing needs to hear of the write */
    cr_assert_eq(ph_access(h, 0, 0), W, "an unshared home page stays writable");
    cr_assert_eq(ph_counter(h, ph_rank(0), DSMP_WRITE_NOTICES), 0, "no notice for an unshared home page");
    cr_assert_eq(ph_counter(h, ph_rank(0), DSMP_DIFFS), 0);
    /* node 1 sees it after acquiring the lock (its fetch gets the master copy) */
    pp_lock(h, 1, 1);
    cr_assert_eq(pp_read(h, 1, 0, 0), 5);
    pp_unlock(h, 1, 1);
    /* now shared: the fetch write-protected it at the home, so the next home write is noticed */
    cr_assert_eq(ph_access(h, 0, 0), R, "write-protected by the first fetch");
    pp_lock(h, 0, 1);
    pp_write(h, 0, 0, 0, 6);
    pp_unlock(h, 0, 1);
    cr_assert_eq(ph_counter(h, ph_rank(0), DSMP_WRITE_NOTICES), 1, "the interval's notice");
    cr_assert_eq(ph_access(h, 0, 0), R, "write-protected at the release");
    pp_lock(h, 1, 1);
    cr_assert_eq(pp_read(h, 1, 0, 0), 6, "node 1 dropped its copy and refetched");
    ph_destroy(h);
}

/* ---- release ---------------------------------------------------------------------------- */

BOTH_MODES(release_sends_one_diff_per_home)
{
    static const int home[6] = { 0, 0, 0, 1, 2, 2 };
    struct ph *h = mk(3, 6, home, mode);

    pp_lock(h, 1, 2);
    for (uint64_t p = 0; p < 3; p++)
        pp_write(h, 1, p, p, 100 + p);
    pp_write(h, 1, 3, 0, 103);                  /* its own home page: in place */
    pp_access(h, 1, 4, W);                      /* twinned, never changed */
    pp_write(h, 1, 5, 1, 105);
    ph_clear_log(h);
    pp_unlock(h, 1, 2);

    cr_assert_eq(ph_count(h, DIFF, PH_ANY, PH_ANY), 2, "%zu DIFFs", ph_count(h, DIFF, PH_ANY, PH_ANY));
    cr_assert_eq(ph_count(h, DIFF, 1, 0), 1, "pages 0-2 in one DIFF");
    cr_assert_eq(ph_count(h, DIFF, 1, 2), 1, "page 5 alone (page 4 unchanged)");
    cr_assert_eq(ph_count(h, DIFF_ACK, 0, 1), 1);
    cr_assert_eq(ph_count(h, DIFF_ACK, 2, 1), 1);
    cr_assert_eq(ph_count(h, UNLOCK, 1, 2), 1);
    cr_assert_eq(ph_count(h, PAGE_GET, PH_ANY, PH_ANY) + ph_count(h, PAGE, PH_ANY, PH_ANY), 0);
    cr_assert_eq(ph_nsent(h), 5);
    cr_assert_eq(ph_sent_at(h, 4)->type, UNLOCK, "the UNLOCK goes after every DIFF_ACK");
    for (size_t i = 0; i < 4; i++) {
        const struct ph_sent *s = ph_sent_at(h, i);

        if (s->type == DIFF_ACK) /* names each page of its DIFF */
            cr_assert_eq(s->data_len, s->src == 0 ? 3 * 8u : 8u, "ack from %d: %zu bytes", s->src, s->data_len);
    }
    for (uint64_t p = 0; p < 6; p++)
        if (p != 3) /* page 3 is node 1's own and unshared: it stays writable (R6) */
            cr_assert_eq(ph_access(h, 1, p), R, "page %llu not write-protected", (unsigned long long)p);
    cr_assert_eq(ph_access(h, 1, 3), W, "an unshared home page stays writable");
    for (uint64_t p = 0; p < 3; p++)
        cr_assert_eq(pp_peek(h, 0, p, p), 100 + p, "home lacks page %llu's write", (unsigned long long)p);
    cr_assert_eq(pp_peek(h, 2, 5, 1), 105, "home 2 lacks page 5's write");
    cr_assert_eq(ph_counter(h, ph_rank(1), DSMP_DIFFS), 4, "a diff is counted per page");
    cr_assert_eq(ph_counter(h, ph_rank(1), DSMP_WRITE_NOTICES), 1);
    /* a release with nothing written sends nothing but the UNLOCK */
    pp_lock(h, 1, 2);
    ph_clear_log(h);
    pp_unlock(h, 1, 2);
    cr_assert_eq(ph_nsent(h), 1);
    cr_assert_eq(ph_counter(h, ph_rank(1), DSMP_WRITE_NOTICES), 1, "an empty interval is no notice");
    ph_destroy(h);
}

Test(release, release_completes_only_after_every_diff_ack)
{
    static const int home[3] = { 0, 0, 2 };
    struct ph *h = mk(3, 3, home, PH_REVOKE_DEFERRED);
    int done = 0;

    pp_lock(h, 1, 2);                           /* managed by node 2 */
    pp_write(h, 1, 0, 0, 1);
    pp_write(h, 1, 1, 0, 2);
    pp_write(h, 1, 2, 0, 3);
    ph_clear_log(h);
    ph_unlock(h, 1, 2, &done);
    cr_assert_eq(ph_revokes_pending(h), 3, "every page is write-protected first");
    cr_assert_eq(ph_complete_revoke(h, 0), 1);
    cr_assert_eq(ph_complete_revoke(h, 0), 1);
    cr_assert_eq(ph_count(h, DIFF, PH_ANY, PH_ANY), 0, "diffs went before every page was write-protected");
    cr_assert_eq(ph_complete_revoke(h, 0), 1);
    cr_assert_eq(ph_count(h, DIFF, 1, 0), 1, "pages 0 and 1: one DIFF");
    cr_assert_eq(ph_count(h, DIFF, 1, 2), 1);
    cr_assert_eq(done, 0);
    cr_assert_eq(ph_deliver(h, 1, 0), 1);       /* the DIFF at home 0 */
    cr_assert_eq(ph_deliver(h, 0, 1), 1);       /* its ack */
    cr_assert_eq(done, 0, "the release completed with a diff unacknowledged");
    cr_assert_eq(ph_count(h, UNLOCK, PH_ANY, PH_ANY), 0, "UNLOCK sent with a diff unacknowledged");
    cr_assert_eq(ph_deliver(h, 1, 2), 1);
    cr_assert_eq(done, 0);
    cr_assert_eq(ph_deliver(h, 2, 1), 1);
    cr_assert_eq(done, 1, "the release did not complete after the last DIFF_ACK");
    cr_assert_eq(ph_count(h, UNLOCK, 1, 2), 1);
    NO_ERRORS(h);
    pp_run(h);
    ph_destroy(h);
}

/* Node 1 writes word 0 of pages 0 and 1 (home 0) under lock 0 and unlocks; of the release,
 * only page 0 is write-protected so far: its diff waits in the outbox (deferred revokes). */
static void half_released(struct ph *h, uint64_t v0, uint64_t v1, int *done)
{
    pp_lock(h, 1, 0);
    pp_write(h, 1, 0, 0, v0);
    pp_write(h, 1, 1, 0, v1);
    ph_clear_log(h);
    ph_unlock(h, 1, 0, done);
    cr_assert_eq(ph_revokes_pending(h), 2);
    cr_assert_eq(ph_complete_revoke(h, 0), 1);
}

/* A release's diffs wait in the home's outbox until every page is write-protected. A page
 * of it evicted meanwhile (its writes already queued, no early diff) and fetched again must
 * not overtake them: the PAGE_GET goes behind the DIFF, and the node reads its own write. */
Test(release, a_fetch_goes_behind_the_diffs_queued_for_its_home)
{
    struct ph *h = mk(2, 2, home0, PH_REVOKE_DEFERRED);
    int done = 0, evicted = 0;
    size_t diff_at = 99, get_at = 99;

    half_released(h, 7, 8, &done);
    cr_assert_eq(ph_evict(h, 1, 0, &evicted), 1);
    cr_assert_eq(ph_complete_revoke(h, 1), 1);  /* the eviction's: page 0 at NONE */
    cr_assert_eq(evicted, 1);
    cr_assert_eq(ph_count(h, DIFF, PH_ANY, PH_ANY), 0, "page 1 is not write-protected yet");
    FAULT(h, 1, 0, R);
    for (size_t i = 0; i < ph_nsent(h); i++) {
        if (ph_sent_at(h, i)->type == DIFF && diff_at == 99)
            diff_at = i;
        if (ph_sent_at(h, i)->type == PAGE_GET)
            get_at = i;
    }
    cr_assert(diff_at < get_at, "PAGE_GET (#%zu) went before the queued DIFF (#%zu)", get_at, diff_at);
    pp_run(h);
    cr_assert_eq(done, 1);
    cr_assert_eq(pp_read(h, 1, 0, 0), 7, "the node lost its own write");
    cr_assert_eq(pp_read(h, 0, 1, 0), 8);
    NO_ERRORS(h);
    ph_destroy(h);
}

/* An atomic requested while a release's diffs wait in the outbox goes behind them: the home
 * applies the node's store before the atomic, and every copy ends with the atomic's word
 * (before, the DIFF landed after it and the home's word lost the increment that the
 * requester's copy kept, for good). */
Test(release, an_atomic_goes_behind_the_diffs_queued_for_its_home)
{
    struct ph *h = mk(3, 2, home0, PH_REVOKE_DEFERRED);
    int done = 0, adone = 0;
    uint64_t old = 0;

    half_released(h, 100, 8, &done);
    ph_atomic(h, 1, 0, DSMW_AOP_FETCH_ADD, 1, 0, &old, &adone);
    cr_assert_eq(ph_count(h, DIFF, 1, 0), 1, "the queued diff did not go ahead of the ATOMIC_REQ");
    pp_run(h);
    cr_assert_eq(adone, 1);
    cr_assert_eq(done, 1);
    cr_assert_eq(old, 100, "the atomic ran before the node's store reached the home");
    pp_barrier(h);
    for (int n = 0; n < 3; n++)
        cr_assert_eq(pp_read(h, n, 0, 0), 101, "node %d", n);
    cr_assert_eq(pp_read(h, 0, 1, 0), 8);
    NO_ERRORS(h);
    ph_destroy(h);
}

/* ---- acquire ---------------------------------------------------------------------------- */

BOTH_MODES(acquire_drops_exactly_the_pages_named_and_not_its_home_pages)
{
    static const int home[8] = { 0, 0, 0, 0, 2, 0, 0, 0 };
    struct ph *h = mk(3, 8, home, mode);

    for (uint64_t p = 0; p < 8; p++) {
        seed_home(h, home[p], p, 10 + p);
        cr_assert_eq(pp_read(h, 2, p, 0), 10 + p);
    }
    cr_assert_eq(pp_read(h, 0, 4, 0), 14);       /* node 0 caches page 4 */
    pp_lock(h, 1, 0);
    pp_write(h, 1, 1, 0, 501);
    pp_write(h, 1, 3, 0, 503);
    pp_write(h, 1, 4, 0, 504);                  /* homed at node 2 */
    pp_unlock(h, 1, 0);
    cr_assert_eq(pp_peek(h, 2, 4, 0), 504, "node 2 is page 4's home: the diff is in its frame");

    ph_clear_log(h);
    pp_lock(h, 2, 0);
    for (uint64_t p = 0; p < 8; p++) {
        int named = p == 1 || p == 3;

        cr_assert_eq(ph_count_events(h, 2, PH_EV_REVOKE, p, PH_ANY), (size_t)named,
                     "page %llu: %zu revocations at node 2", (unsigned long long)p,
                     ph_count_events(h, 2, PH_EV_REVOKE, p, PH_ANY));
        cr_assert_eq(ph_access(h, 2, p), named ? NONE : R, "page %llu", (unsigned long long)p);
    }
    cr_assert_eq(ph_nsent(h), 2, "the acquire is LOCK_REQ and LOCK_GRANT only");
    cr_assert_gt(ph_sent_at(h, 1)->data_len, 0, "the grant carries no notices");
    cr_assert_eq(ph_counter(h, ph_rank(2), DSMP_WRITE_NOTICES), 1);

    ph_clear_log(h);
    cr_assert_eq(pp_read(h, 2, 1, 0), 501);
    cr_assert_eq(pp_read(h, 2, 3, 0), 503);
    cr_assert_eq(pp_read(h, 2, 4, 0), 504);
    cr_assert_eq(pp_read(h, 2, 0, 0), 10);
    cr_assert_eq(ph_count(h, PAGE_GET, 2, 0), 2, "only the dropped pages are fetched again");
    cr_assert_eq(ph_nsent(h), 4);

    /* seen notices are not applied again */
    pp_unlock(h, 2, 0);
    ph_clear_log(h);
    pp_lock(h, 2, 0);
    cr_assert_eq(ph_count_events(h, 2, PH_EV_REVOKE, 1, PH_ANY), 0, "a notice already seen dropped page 1 again");
    cr_assert_eq(ph_access(h, 2, 1), R);
    pp_unlock(h, 2, 0);

    /* node 0, home of pages 1 and 3, drops only its cached copy of page 4 */
    ph_clear_log(h);
    pp_lock(h, 0, 0);
    cr_assert_eq(ph_count_events(h, 0, PH_EV_REVOKE, 1, PH_ANY), 0, "the home dropped its master copy");
    cr_assert_eq(ph_count_events(h, 0, PH_EV_REVOKE, 3, PH_ANY), 0, "the home dropped its master copy");
    cr_assert_eq(ph_count_events(h, 0, PH_EV_REVOKE, 4, NONE), 1);
    cr_assert_eq(ph_access(h, 0, 1), R);
    cr_assert_eq(pp_read(h, 0, 4, 0), 504);
    pp_unlock(h, 0, 0);

    /* a barrier release carries node 1's interval again: node 2 has seen it, drops nothing */
    ph_clear_log(h);
    pp_barrier(h);
    for (uint64_t p = 0; p < 8; p++)
        cr_assert_eq(ph_count_events(h, 2, PH_EV_REVOKE, p, PH_ANY), 0, "the barrier dropped page %llu again",
                     (unsigned long long)p);
    ph_destroy(h);
}

BOTH_MODES(barrier_drops_exactly_the_pages_written_elsewhere)
{
    struct ph *h = mk(3, 6, home0, mode);

    for (uint64_t p = 0; p < 6; p++) {
        pp_read(h, 1, p, 0);
        pp_read(h, 2, p, 0);
    }
    pp_write(h, 1, 2, 0, 12);
    pp_write(h, 2, 4, 0, 24);
    ph_clear_log(h);
    pp_barrier(h);
    for (uint64_t p = 0; p < 6; p++) {
        cr_assert_eq(ph_access(h, 1, p), p == 4 ? NONE : R, "node 1 page %llu", (unsigned long long)p);
        cr_assert_eq(ph_access(h, 2, p), p == 2 ? NONE : R, "node 2 page %llu", (unsigned long long)p);
    }
    cr_assert_eq(ph_count(h, DIFF, PH_ANY, PH_ANY), 2);
    cr_assert_eq(pp_read(h, 1, 4, 0), 24);
    cr_assert_eq(pp_read(h, 2, 2, 0), 12);
    cr_assert_eq(pp_read(h, 0, 2, 0), 12);
    cr_assert_eq(pp_read(h, 0, 4, 0), 24);
    ph_destroy(h);
}

/* ---- multiple writers -------------------------------------------------------------------- */

BOTH_MODES(two_writers_of_one_page_in_one_interval_both_survive)
{
    struct ph *h = mk(3, 1, home0, mode);

    pp_read(h, 1, 0, 0);
    pp_read(h, 2, 0, 0);
    /* the same words, different bytes: node 1 the even bytes, node 2 the odd ones */
    for (size_t b = 0; b < PS; b += 2) {
        pp_write_byte(h, 1, 0, b, (uint8_t)(b / 2 + 1));
        pp_write_byte(h, 2, 0, b + 1, (uint8_t)(b / 2 + 101));
    }
    cr_assert_eq(ph_access(h, 1, 0), W);
    cr_assert_eq(ph_access(h, 2, 0), W);
    ph_clear_log(h);
    pp_barrier(h);
    cr_assert_eq(ph_count(h, DIFF, 1, 0), 1);
    cr_assert_eq(ph_count(h, DIFF, 2, 0), 1);
    for (int n = 0; n < 3; n++)
        for (size_t b = 0; b < PS; b += 2) {
            cr_assert_eq(pp_read_byte(h, n, 0, b), (uint8_t)(b / 2 + 1), "node %d byte %zu", n, b);
            cr_assert_eq(pp_read_byte(h, n, 0, b + 1), (uint8_t)(b / 2 + 101), "node %d byte %zu", n, b + 1);
        }
    ph_destroy(h);
}

/* The multiple-writer shape: N nodes write disjoint words of the same pages in one
 * interval; after a barrier every word is right on every node, whatever the delivery order. */
Test(release, n_writers_disjoint_words_random_schedules)
{
    static const int home[4] = { 0, 1, 2, 3 };

    for (uint64_t seed = 1; seed <= 40; seed++) {
        struct ph *h = mk(4, 4, home, seed % 2 ? PH_REVOKE_DEFERRED : PH_REVOKE_SYNC);
        int done[4] = { 0 };
        uint64_t s = seed;

        for (int n = 0; n < 4; n++)
            for (uint64_t p = 0; p < 4; p++)
                for (size_t w = (size_t)n; w < PS / 8; w += 4)
                    if (w % 64 < 8) /* a few words per page keeps it quick */
                        pp_write(h, n, p, w, (uint64_t)n << 32 | p << 16 | w);
        for (int n = 0; n < 4; n++)
            ph_barrier(h, n, &done[n]);
        cr_assert_geq(ph_run_random(h, &s, PP_LIMIT), 0);
        NO_ERRORS(h);
        for (int n = 0; n < 4; n++)
            cr_assert_eq(done[n], 1);
        for (int n = 0; n < 4; n++)
            for (uint64_t p = 0; p < 4; p++)
                for (size_t w = 0; w < PS / 8; w++)
                    if (w % 64 < 8)
                        cr_assert_eq(pp_read(h, n, p, w), (uint64_t)(w % 4) << 32 | p << 16 | w,
                                     "seed %llu: node %d page %llu word %zu", (unsigned long long)seed, n,
                                     (unsigned long long)p, w);
        ph_destroy(h);
    }
}

/* A node holding unsent writes to a page that an acquire drops sends them first (an early
 * diff), so neither its bytes nor the other writer's are lost. */
BOTH_MODES(a_dropped_page_with_unsent_writes_sends_them_first)
{
    struct ph *h = mk(3, 1, home0, mode);

    pp_read(h, 1, 0, 0);
    pp_read(h, 2, 0, 0);
    pp_lock(h, 1, 0);
    pp_write_byte(h, 1, 0, 8, 0x11);
    pp_unlock(h, 1, 0);
    pp_write_byte(h, 2, 0, 16, 0x22);           /* node 2: open interval, twinned */
    ph_clear_log(h);
    pp_lock(h, 2, 0);                           /* names page 0: dropped */
    cr_assert_eq(ph_access(h, 2, 0), NONE);
    cr_assert_eq(ph_count(h, DIFF, 2, 0), 1, "no early diff");
    cr_assert_eq(pp_read_byte(h, 2, 0, 8), 0x11, "node 1's write is missing");
    cr_assert_eq(pp_read_byte(h, 2, 0, 16), 0x22, "node 2's own unsent write was lost");
    pp_unlock(h, 2, 0);
    cr_assert_eq(pp_read_byte(h, 0, 0, 16), 0x22);
    pp_lock(h, 1, 0);
    cr_assert_eq(pp_read_byte(h, 1, 0, 16), 0x22, "node 2's interval did not name page 0");
    cr_assert_eq(pp_read_byte(h, 1, 0, 8), 0x11);
    ph_destroy(h);
}

/* ---- transitivity -------------------------------------------------------------------------- */

/* A (node 1) writes x and releases L; B (node 2) acquires L and releases M; C (node 3)
 * acquires M and must drop x's page and read A's value - though A and C never shared a lock. */
static void transitivity(enum ph_revoke_mode mode, int b_caches_x)
{
    enum { L = 4, M = 7 };                      /* managers: node 0 and node 3 */
    struct ph *h = mk(4, 2, home0, mode);

    cr_assert_eq(pp_read(h, 3, 0, 0), 0);       /* C caches x (page 0) and y (page 1) */
    cr_assert_eq(pp_read(h, 3, 1, 0), 0);
    if (b_caches_x)
        cr_assert_eq(pp_read(h, 2, 0, 0), 0);
    pp_lock(h, 1, L);
    pp_write(h, 1, 0, 0, 42);
    pp_unlock(h, 1, L);
    pp_lock(h, 2, M);
    pp_lock(h, 2, L);
    if (b_caches_x)
        cr_assert_eq(pp_read(h, 2, 0, 0), 42);
    pp_unlock(h, 2, L);
    pp_unlock(h, 2, M);
    ph_clear_log(h);
    pp_lock(h, 3, M);
    cr_assert_eq(ph_access(h, 3, 0), NONE, "C kept its stale copy of x");
    cr_assert_eq(ph_access(h, 3, 1), R, "C dropped y, which nobody wrote");
    cr_assert_eq(pp_read(h, 3, 0, 0), 42);
    ph_destroy(h);
}

BOTH_MODES(transitivity_through_two_locks)
{
    transitivity(mode, 0);
    transitivity(mode, 1);
}

/* ---- a copy dropped while it is being fetched ----------------------------------------------- */

Test(release, page_dropped_while_fetching_is_fetched_again)
{
    struct ph *h = mk(3, 1, home0, PH_REVOKE_SYNC);
    int done = 0, unlocked = 0;

    pp_lock(h, 1, 1);                           /* lock 1: managed by node 1 */
    pp_write(h, 1, 0, 0, 5);
    ph_clear_log(h);
    FAULT(h, 2, 0, R);                          /* one rank of node 2 reads page 0 */
    cr_assert_eq(ph_deliver(h, 2, 0), 1);       /* the home answers with what it has: 0 */
    cr_assert_eq(ph_queued(h, 0, 2), 1);
    ph_unlock(h, 1, 1, &unlocked);
    cr_assert_eq(ph_deliver(h, 1, 0), 1);       /* node 1's diff reaches the home */
    cr_assert_eq(ph_deliver(h, 0, 1), 1);       /* DIFF_ACK: the release completes */
    cr_assert_eq(unlocked, 1);
    cr_assert_eq(ph_deliver(h, 1, 1), 1);       /* UNLOCK at the manager (node 1 itself) */
    cr_assert_eq(ph_queued(h, 0, 2), 1, "the stale PAGE is still on its way");
    ph_lock(h, 2, 1, &done);                    /* another rank of node 2 takes the lock */
    cr_assert_eq(ph_deliver(h, 2, 1), 1);
    cr_assert_eq(ph_deliver(h, 1, 2), 1);       /* the grant overtakes the PAGE */
    cr_assert_eq(done, 1);
    cr_assert_eq(ph_deliver(h, 0, 2), 1);       /* the stale PAGE */
    cr_assert_eq(ph_access(h, 2, 0), NONE, "a copy older than the acquire was granted");
    pp_run(h);
    cr_assert_eq(ph_access(h, 2, 0), R);
    cr_assert_eq(pp_peek(h, 2, 0, 0), 5, "node 2 reads a value older than its acquire");
    cr_assert_eq(ph_count(h, PAGE_GET, 2, 0), 2);
    cr_assert_eq(ph_count(h, PAGE, 0, 2), 2);
    ph_destroy(h);
}

/*
 * Two ranks of one node acquire two locks at once, and both grants carry the same notice
 * (lost increments seen with 2 ranks per node, issue "Never lose a write"): the first
 * acquire starts dropping the page; the second must not complete while that drop's
 * revocation is still out, or its rank reads the stale frame before the PROTECT lands.
 */
Test(release, two_acquires_of_one_node_wait_for_the_same_drop)
{
    static const int home1[1] = { 1 };
    struct ph *h = mk(2, 1, home1, PH_REVOKE_DEFERRED);
    int l1 = 0, l2 = 0, delivered;

    cr_assert_eq(pp_read(h, 0, 0, 0), 0);       /* node 0 caches the page */
    pp_lock(h, 1, 1);                           /* node 1 writes 7 under locks 1 and 2 */
    pp_lock(h, 1, 2);
    pp_write(h, 1, 0, 0, 7);
    pp_unlock(h, 1, 1);
    pp_unlock(h, 1, 2);
    pp_run(h);
    cr_assert_eq(ph_access(h, 0, 0), R, "node 0 keeps its (now stale) copy until it acquires");
    ph_lock(h, 0, 1, &l1);                      /* two ranks of node 0 acquire at once */
    ph_lock(h, 0, 2, &l2);
    do {                                        /* every message, no revocation completes */
        delivered = 0;
        for (int s = 0; s < 2; s++)
            for (int d = 0; d < 2; d++)
                delivered += ph_deliver(h, s, d);
    } while (delivered > 0);
    cr_assert_eq(ph_access(h, 0, 0), NONE);
    cr_assert_gt(ph_revokes_pending(h), 0, "the drop's revocation is still out");
    cr_assert_eq(l1 + l2, 0, "an acquire completed while its page was still being dropped");
    pp_run(h);
    cr_assert_eq(l1 + l2, 2);
    cr_assert_eq(pp_read(h, 0, 0, 0), 7, "node 0 reads a value older than its acquires");
    NO_ERRORS(h);
    ph_destroy(h);
}

/* ---- read-ahead ------------------------------------------------------------------------------ */

#define FAULT_AHEAD(h, node, page, acc, ahead) \
    cr_assert_eq(ph_fault_ahead((h), (node), (page), (acc), ph_rank(node), (ahead)), 0, "fault not allowed")

/* A scan's read fault brings the pages after it homed on the same node in one PAGE_GET and
 * one PAGE; a page homed elsewhere ends what is asked. */
BOTH_MODES(read_ahead_brings_the_next_pages_in_one_page)
{
    static const int home[16] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1 };
    struct ph *h = mk(2, 16, home, mode);

    for (uint64_t p = 0; p < 11; p++)
        seed_home(h, 0, p, 100 + p);
    ph_clear_log(h);
    FAULT_AHEAD(h, 1, 3, R, 16);
    pp_run(h);
    cr_assert_eq(ph_nsent(h), 2);
    expect_sent(h, 0, PAGE_GET, 1, 0, 3, 0);
    expect_sent(h, 1, PAGE, 0, 1, 3, 1);
    for (uint64_t p = 0; p < 16; p++)
        cr_assert_eq(ph_access(h, 1, p), p >= 3 ? R : NONE, "page %llu", (unsigned long long)p); /* 11..: home */
    for (uint64_t p = 3; p < 11; p++)
        cr_assert_eq(pp_peek(h, 1, p, 0), 100 + p, "page %llu holds the wrong data", (unsigned long long)p);
    cr_assert_eq(ph_count_events(h, 1, PH_EV_GRANT, 3, R), 1);
    cr_assert_eq(ph_count_events(h, 1, PH_EV_GRANT, 4, R), 0, "nobody faulted on page 4: no grant");
    cr_assert_eq(ph_counter(h, ph_rank(1), DSMP_PAGES_FETCHED), 8);
    cr_assert_eq(ph_counter(h, ph_rank(1), DSMP_PAGES_READ_AHEAD), 7);
    ph_destroy(h);
}

/* Pages past the asked page's allocation are not sent (a neighbouring block may be being
 * freed); a rank that faulted on one meanwhile gets it by a fetch of its own. */
BOTH_MODES(read_ahead_stays_inside_the_allocation)
{
    struct ph_config cfg = {
        .ops = &dsmp_release_ops, .nnodes = 2, .npages = 16, .page_size = PS, .home = home0,
        .revoke = mode, .daemon_revoke = 1, .alloc_pages = 8,
    };
    struct ph *h = ph_create(&cfg);

    cr_assert_not_null(h);
    FAULT_AHEAD(h, 1, 3, R, 16);   /* asks 4..15 */
    FAULT(h, 1, 9, R);             /* waits for that answer */
    pp_run(h);
    for (uint64_t p = 3; p < 8; p++)
        cr_assert_eq(ph_access(h, 1, p), R, "page %llu", (unsigned long long)p);
    for (uint64_t p = 8; p < 16; p++)
        cr_assert_eq(ph_access(h, 1, p), p == 9 ? R : NONE, "page %llu sent past its allocation",
                     (unsigned long long)p);
    cr_assert_eq(ph_counter(h, ph_rank(1), DSMP_PAGES_READ_AHEAD), 4);
    cr_assert_eq(ph_count(h, PAGE_GET, 1, 0), 2);
    ph_destroy(h);
}

/* Pages the home wrote unnoticed (R6) are write-protected at the home and listed before they
 * go, as the asked page is: the home's next write is noticed, and an acquirer drops them. */
BOTH_MODES(read_ahead_pages_follow_r6)
{
    struct ph *h = mk(2, 8, home0, mode);

    for (uint64_t p = 0; p < 4; p++)
        pp_write(h, 0, p, 0, 7 + p);
    FAULT_AHEAD(h, 1, 0, R, 4);
    pp_run(h);
    for (uint64_t p = 0; p < 4; p++) {
        cr_assert_eq(ph_access(h, 0, p), R, "page %llu still writable at the home", (unsigned long long)p);
        cr_assert_eq(pp_peek(h, 1, p, 0), 7 + p);
    }
    pp_lock(h, 0, 1);
    for (uint64_t p = 0; p < 4; p++)
        pp_write(h, 0, p, 0, 70 + p);
    pp_unlock(h, 0, 1);
    pp_lock(h, 1, 1);
    for (uint64_t p = 0; p < 4; p++)
        cr_assert_eq(pp_read(h, 1, p, 0), 70 + p, "page %llu: the home's write after the fetch is lost",
                     (unsigned long long)p);
    pp_unlock(h, 1, 1);
    ph_destroy(h);
}

/* A page asked ahead that a notice drops while the PAGE is on its way is not used: the rank
 * waiting for it gets a fresh copy. */
Test(release, read_ahead_page_dropped_on_its_way_is_fetched_again)
{
    struct ph *h = mk(3, 2, home0, PH_REVOKE_SYNC);
    int done = 0, unlocked = 0;

    pp_lock(h, 1, 1);
    pp_write(h, 1, 1, 0, 5);                    /* node 1 writes page 1 under lock 1 */
    ph_clear_log(h);
    FAULT_AHEAD(h, 2, 0, R, 2);                 /* node 2 reads page 0, page 1 ahead */
    FAULT(h, 2, 1, R);                          /* and another rank waits for page 1 */
    cr_assert_eq(ph_deliver(h, 2, 0), 1);       /* the home sends what it has: page 1 = 0 */
    ph_unlock(h, 1, 1, &unlocked);
    cr_assert_eq(ph_deliver(h, 1, 0), 1);       /* node 1's diff */
    cr_assert_eq(ph_deliver(h, 0, 1), 1);       /* DIFF_ACK */
    cr_assert_eq(ph_deliver(h, 1, 1), 1);       /* UNLOCK */
    ph_lock(h, 2, 1, &done);
    cr_assert_eq(ph_deliver(h, 2, 1), 1);
    cr_assert_eq(ph_deliver(h, 1, 2), 1);       /* the grant (its notice names page 1) first */
    cr_assert_eq(done, 1);
    pp_run(h);
    cr_assert_eq(ph_access(h, 2, 0), R);
    cr_assert_eq(pp_peek(h, 2, 1, 0), 5, "node 2 was given the stale page read ahead");
    cr_assert_eq(ph_count(h, PAGE_GET, 2, 0), 2);
    ph_destroy(h);
}

/* Read-ahead messages that do not match what was asked are refused. */
Test(release, read_ahead_malformed_is_eproto)
{
    struct ph *h = mk(2, 32, home0, PH_REVOKE_SYNC);
    uint8_t junk[2 * PS] = { 0 };
    dsmw_msg_t m;

    dsmw_init(&m, DSMW__TYPE__PAGE_GET);
    m.page = 0;
    m.node = 1;
    m.origin = (uint32_t)ph_rank(1);
    m.count = DSMP_AHEAD_MAX + 1;
    cr_assert_eq(ph_inject(h, 1, 0, &m, DSMP_NO_FRAME), DSM_EPROTO);
    FAULT_AHEAD(h, 1, 4, R, 3);                 /* pages 5 and 6 asked */
    dsmw_init(&m, DSMW__TYPE__PAGE);
    m.page = 4;
    m.origin = (uint32_t)ph_rank(1);
    m.count = 0x4;                              /* a page that was not asked for */
    m.data.data = junk;
    m.data.len = PS;
    cr_assert_eq(ph_inject(h, 0, 1, &m, 4), DSM_EPROTO);
    m.count = 0x3;                              /* two pages, one page of data */
    cr_assert_eq(ph_inject(h, 0, 1, &m, 4), DSM_EPROTO);
    m.count = 0;                                /* data with no page */
    cr_assert_eq(ph_inject(h, 0, 1, &m, 4), DSM_EPROTO);
    cr_assert_eq(ph_access(h, 1, 5), NONE, "a refused PAGE changes nothing");
    ph_discard(h);
    ph_destroy(h);
}

/* DIFFs and DIFF_ACKs that make no sense are refused, whole: no record of a refused DIFF is
 * applied, and a refused DIFF_ACK counts no ack. */
Test(release, diff_and_ack_malformed_are_eproto)
{
    static const int home[3] = { 0, 0, 1 };
    struct ph *h = mk(2, 3, home, PH_REVOKE_DEFERRED);
    uint8_t buf[3 * (DSMP_REC_HDR + 16)], run[12] = { 0, 0, 8, 0, 1, 2, 3, 4, 5, 6, 7, 8 }, ack[16];
    size_t o;
    int done = 0;
    dsmw_msg_t m;

    dsmw_init(&m, DSMW__TYPE__DIFF);
    m.page = 0;
    m.origin = (uint32_t)ph_rank(1);
    m.data.data = buf;
    o = dsmp_rec_put(buf, 0, run, sizeof(run));
    o += dsmp_rec_put(buf + o, 2, run, sizeof(run)); /* page 2 is homed at node 1, not 0 */
    m.data.len = o;
    cr_assert_eq(ph_inject(h, 1, 0, &m, DSMP_NO_FRAME), DSM_EPROTO);
    cr_assert_eq(pp_peek(h, 0, 0, 0), 0, "a record of a refused DIFF was applied");
    o = dsmp_rec_put(buf, 0, run, sizeof(run));
    o += dsmp_rec_put(buf + o, 1, run, sizeof(run));
    m.data.len = o - 1;                                /* the second record cut short */
    cr_assert_eq(ph_inject(h, 1, 0, &m, DSMP_NO_FRAME), DSM_EPROTO);
    m.data.len = o;
    buf[DSMP_REC_HDR + sizeof(run) + DSMP_REC_HDR + 2] = 9; /* its run says 9 bytes, 8 follow */
    cr_assert_eq(ph_inject(h, 1, 0, &m, DSMP_NO_FRAME), DSM_EPROTO);
    cr_assert_eq(pp_peek(h, 0, 0, 0), 0, "a record of a refused DIFF was applied");
    dsm_put_le(buf, 7, 8);                             /* no such page */
    cr_assert_eq(ph_inject(h, 1, 0, &m, DSMP_NO_FRAME), DSM_EPROTO);
    m.data.len = 0;
    cr_assert_eq(ph_inject(h, 1, 0, &m, DSMP_NO_FRAME), DSM_EPROTO);
    cr_assert_eq(ph_count(h, DIFF_ACK, PH_ANY, PH_ANY), 0);

    /* node 1 has two diffs out to node 0, for pages 0 and 1, in one DIFF */
    pp_lock(h, 1, 0);
    pp_write(h, 1, 0, 0, 5);
    pp_write(h, 1, 1, 0, 6);
    ph_unlock(h, 1, 0, &done);
    cr_assert_eq(ph_complete_revoke(h, 0), 1);
    cr_assert_eq(ph_complete_revoke(h, 0), 1);
    cr_assert_eq(ph_count(h, DIFF, 1, 0), 1);
    dsmw_init(&m, DSMW__TYPE__DIFF_ACK);
    m.page = 0;
    m.data.data = ack;
    dsm_put_le(ack, 0, 8);
    dsm_put_le(ack + 8, 0, 8);
    m.data.len = 16;                                   /* page 0 twice: one diff out for it */
    cr_assert_eq(ph_inject(h, 0, 1, &m, DSMP_NO_FRAME), DSM_EPROTO);
    dsm_put_le(ack + 8, 2, 8);
    cr_assert_eq(ph_inject(h, 0, 1, &m, DSMP_NO_FRAME), DSM_EPROTO); /* page 2: homed at node 1 */
    dsm_put_le(ack, 2, 8);
    m.data.len = 8;                                    /* page 2 alone */
    cr_assert_eq(ph_inject(h, 0, 1, &m, DSMP_NO_FRAME), DSM_EPROTO);
    m.data.len = 7;
    cr_assert_eq(ph_inject(h, 0, 1, &m, DSMP_NO_FRAME), DSM_EPROTO);
    cr_assert_eq(done, 0);
    pp_run(h);                                         /* the real DIFF and its ack */
    cr_assert_eq(done, 1, "a refused DIFF_ACK was counted");
    cr_assert_eq(pp_peek(h, 0, 0, 0), 5);
    cr_assert_eq(pp_peek(h, 0, 1, 0), 6);
    ph_discard(h);
    ph_destroy(h);
}

/* A page size whose worst diff cannot fit one DIFF is refused at start (not a hang later). */
Test(release, pages_too_large_for_one_diff_are_refused)
{
    struct dsmp_services svc = { .page_size = 32768, .npages = 4, .nnodes = 2 };
    dsmp_t *p = NULL;

    cr_assert_eq(dsmp_release_ops.create(&svc, &p), DSM_ECONFIG);
    svc.page_size = 16384;
    cr_assert_eq(dsmp_release_ops.create(&svc, &p), DSM_OK);
    dsmp_release_ops.destroy(p);
}

/* Locked scans with read-ahead under random delivery: every scan sees every increment. */
Test(release, lock_scan_read_ahead_random_schedules, .timeout = 120)
{
    uint64_t ahead = pp_lock_scans(&dsmp_release_ops, 6, 0, 0).read_ahead;

    cr_assert_gt(ahead, 200, "only %llu pages were read ahead", (unsigned long long)ahead);
}

/* ---- fetching again at an acquire (fetch_again) ---------------------------------------------- */

/* The home rewrites pages 0-3 before each of 4 barriers and node 1 reads them after it.
 * With fetching again on: round 1's barrier drops copies nobody wanted back yet; node 1
 * reads them again, so round 2's barrier fetches them again at its end, in one PAGE_GET
 * (one run, one home), and node 1 reads the new values without a fault; round 3's does it
 * again (the harness counts a copy the node may access as mapped). Off
 * (DSM_RELEASE_FETCH_AGAIN=0): node 1 faults on every page every round. */
static void again_rounds(enum ph_revoke_mode mode, int on)
{
    struct ph_config cfg = {
        .ops = &dsmp_release_ops, .nnodes = 2, .npages = 8, .page_size = PS, .home = home0,
        .revoke = mode, .daemon_revoke = 1, .mapped = 1,
    };
    struct ph *h;

    cr_assert_eq(on ? unsetenv("DSM_RELEASE_FETCH_AGAIN") : setenv("DSM_RELEASE_FETCH_AGAIN", "0", 1), 0);
    h = ph_create(&cfg);
    cr_assert_not_null(h);
    for (uint64_t round = 0; round < 4; round++) {
        int again = on && round >= 2;
        uint64_t faults;

        for (uint64_t p = 0; p < 4; p++)
            pp_write(h, 0, p, 0, 10 * round + p);
        ph_clear_log(h);
        pp_barrier(h);
        cr_assert_eq(ph_count(h, PAGE_GET, 1, 0), again ? 1 : 0, "round %llu", (unsigned long long)round);
        cr_assert_eq(ph_counter(h, ph_rank(1), DSMP_PAGES_FETCHED_AGAIN), again ? 4 * (round - 1) : 0);
        faults = ph_faults_issued(h);
        for (uint64_t p = 0; p < 4; p++)
            cr_assert_eq(pp_read(h, 1, p, 0), 10 * round + p, "round %llu page %llu", (unsigned long long)round,
                         (unsigned long long)p);
        cr_assert_eq(ph_faults_issued(h) - faults, again ? 0 : 4, "round %llu", (unsigned long long)round);
    }
    cr_assert_eq(ph_counter(h, ph_rank(1), DSMP_PAGES_FETCHED), 4 * 4);
    NO_ERRORS(h);
    ph_destroy(h);
    cr_assert_eq(unsetenv("DSM_RELEASE_FETCH_AGAIN"), 0);
}

BOTH_MODES(an_acquire_fetches_again_pages_read_after_a_drop)
{
    again_rounds(mode, 1);
}

Test(release, fetching_again_off)
{
    again_rounds(PH_REVOKE_DEFERRED, 0);
}

/* Lock scans with pages fetched again at every lock grant that drops them, random
 * schedules: every scan's sum still holds (pp_lock_scan checks it). */
Test(release, lock_scan_fetch_again_random_schedules, .timeout = 120)
{
    struct pp_scan_totals t;

    pp_mapped = 1;
    t = pp_lock_scans(&dsmp_release_ops, 6, 1, 0);
    pp_mapped = 0;
    cr_assert_gt(t.fetched_again, 100, "only %llu pages were fetched again", (unsigned long long)t.fetched_again);
}

/* ---- lock counters --------------------------------------------------------------------------- */

Test(release, lock_counter_random_schedules, .timeout = 120)
{
    static const int home[2] = { 0, 1 };

    for (uint64_t seed = 1; seed <= 60; seed++) {
        int nn = 2 + (int)(seed % 3);
        struct ph *h = mk(nn, 2, home, seed % 2 ? PH_REVOKE_DEFERRED : PH_REVOKE_SYNC);

        pp_lock_counter(h, nn, seed % 2, (uint32_t)(seed % 5), 25, seed);
        ph_destroy(h);
    }
}

/*
 * Many intervals between two barriers: nodes 1 and 2 take turns incrementing a counter under
 * a lock, then everyone meets at a barrier and node 1 reads the counter. Node 1 holds a
 * cached copy from its last turn; node 2's last interval is one it has not seen, so the
 * barrier must drop that copy. `iters` per node: 200 (a few KiB of notices) and 1500 (3000
 * intervals: the notices since the last barrier no longer fit one message).
 */
static void counter_then_barrier(int iters)
{
    struct ph *h = mk(3, 1, home0, PH_REVOKE_SYNC);
    uint64_t v;

    for (int i = 0; i < iters; i++)
        for (int n = 1; n <= 2; n++) {
            pp_lock(h, n, 0);
            pp_write(h, n, 0, 0, pp_read(h, n, 0, 0) + 1);
            pp_unlock(h, n, 0);
        }
    pp_barrier(h);
    v = pp_read(h, 1, 0, 0);
    cr_expect_eq(v, 2u * (unsigned)iters, "after the barrier node 1 reads %llu, want %u (a stale copy)",
                 (unsigned long long)v, 2u * (unsigned)iters);
    ph_destroy(h);
}

Test(release, counter_then_barrier_few_intervals)
{
    counter_then_barrier(200);
}

Test(release, counter_then_barrier_many_intervals, .timeout = 120)
{
    counter_then_barrier(1500);
}

/* One interval that writes many scattered pages (every other page of 10400): its notice
 * alone is larger than a message can carry. Node 1, holding a cached copy of one of those
 * pages, must still drop it at the barrier and read the new value. */
Test(release, interval_writing_many_scattered_pages, .timeout = 120)
{
    enum { NP = 10400, SMALL_PS = 64 };
    static int home[NP]; /* all homed at node 0 */
    struct ph *h = pp_make(&dsmp_release_ops, 2, NP, SMALL_PS, home, PH_REVOKE_SYNC);

    cr_assert_eq(pp_read(h, 1, 4000, 0), 0);
    for (uint64_t p = 0; p < NP; p += 2)
        pp_write(h, 0, p, 0, 1000 + p);        /* the home writes in place: no messages */
    pp_barrier(h);
    cr_expect_eq(ph_access(h, 1, 4000), NONE, "node 1 kept its copy of page 4000 through the barrier");
    cr_expect_eq(pp_read(h, 1, 4000, 0), 5000);
    ph_destroy(h);
}

/* ---- litmus: release relaxes what sequential forbids ------------------------------------------ */

/*
 * SB: x=1; r0=y || y=1; r1=x. One schedule, each access run to completion in this order:
 * node 0 reads y and node 1 reads x (each caches a copy), node 0 writes x, node 1 writes y,
 * node 0 reads y, node 1 reads x. x and y live on pages homed at node 2.
 */
static void sb(const struct dsmp_ops *ops, uint64_t *r0, uint64_t *r1)
{
    static const int home[2] = { 2, 2 };
    struct ph *h = pp_make(ops, 3, 2, PS, home, PH_REVOKE_SYNC);

    pp_read(h, 0, 1, 0);
    pp_read(h, 1, 0, 0);
    pp_write(h, 0, 0, 0, 1);
    pp_write(h, 1, 1, 0, 1);
    *r0 = pp_read(h, 0, 1, 0);
    *r1 = pp_read(h, 1, 0, 0);
    ph_destroy(h);
}

Test(release, litmus_sb_relaxed_outcome_that_sequential_forbids)
{
    uint64_t r0 = 9, r1 = 9;

    sb(&dsmp_release_ops, &r0, &r1);
    cr_assert(r0 == 0 && r1 == 0, "release: r0=%llu r1=%llu, want the relaxed 0 0", (unsigned long long)r0,
              (unsigned long long)r1);
    sb(&dsmp_sequential_ops, &r0, &r1);
    cr_assert(!(r0 == 0 && r1 == 0), "sequential produced SB's forbidden 0 0");
    cr_assert(r0 == 1 && r1 == 1, "sequential: r0=%llu r1=%llu", (unsigned long long)r0, (unsigned long long)r1);
}

/*
 * MP: d=1; f=1 || r1=f; r2=d, the reader holding a cached copy of d. d and f live on pages
 * homed at `writer_home`. With `lock`, the writer writes inside lock 1 and the reader reads
 * inside it; with `writer_release`, the writer alone releases lock 1 after its writes (the
 * reader never acquires it).
 */
static void mp(const struct dsmp_ops *ops, int writer_home, int lock, int writer_release, uint64_t *r1,
               uint64_t *r2)
{
    int home[2] = { writer_home, writer_home };
    struct ph *h = pp_make(ops, 3, 2, PS, home, PH_REVOKE_SYNC);

    pp_read(h, 1, 0, 0);                        /* the reader caches d */
    if (lock || writer_release)
        pp_lock(h, 0, 1);
    pp_write(h, 0, 0, 0, 1);
    pp_write(h, 0, 1, 0, 1);
    if (lock || writer_release)
        pp_unlock(h, 0, 1);
    if (lock)
        pp_lock(h, 1, 1);
    *r1 = pp_read(h, 1, 1, 0);
    *r2 = pp_read(h, 1, 0, 0);
    if (lock)
        pp_unlock(h, 1, 1);
    ph_destroy(h);
}

Test(release, litmus_mp_relaxed_outcome_that_sequential_forbids)
{
    uint64_t r1, r2;

    /* the writer is the home: its writes are in the master copy at once */
    mp(&dsmp_release_ops, 0, 0, 0, &r1, &r2);
    cr_assert(r1 == 1 && r2 == 0, "release: r1=%llu r2=%llu, want the relaxed 1 0", (unsigned long long)r1,
              (unsigned long long)r2);
    mp(&dsmp_sequential_ops, 0, 0, 0, &r1, &r2);
    cr_assert(r1 == 1 && r2 == 1, "sequential: r1=%llu r2=%llu", (unsigned long long)r1, (unsigned long long)r2);

    /* the writer caches and releases a lock the reader never takes */
    mp(&dsmp_release_ops, 2, 0, 1, &r1, &r2);
    cr_assert(r1 == 1 && r2 == 0, "release: r1=%llu r2=%llu, want the relaxed 1 0", (unsigned long long)r1,
              (unsigned long long)r2);
    mp(&dsmp_sequential_ops, 2, 0, 1, &r1, &r2);
    cr_assert(r1 == 1 && r2 == 1, "sequential: r1=%llu r2=%llu", (unsigned long long)r1, (unsigned long long)r2);
}

Test(release, litmus_mp_with_a_lock_is_not_relaxed)
{
    uint64_t r1, r2;

    for (int writer_home = 0; writer_home < 3; writer_home++) {
        mp(&dsmp_release_ops, writer_home, 1, 0, &r1, &r2);
        cr_assert(r1 == 1 && r2 == 1, "release, home %d: r1=%llu r2=%llu under a lock", writer_home,
                  (unsigned long long)r1, (unsigned long long)r2);
    }
}

/* ---- failing the job instead of carrying on ------------------------------------------- */

static int fail_calls;
static dsm_status_t fail_status;

static void stub_fail(void *ctx, dsm_status_t st, const char *why)
{
    (void)ctx;
    (void)why;
    fail_calls++;
    fail_status = st;
}

static uint8_t stub_frames[4 * PS];
static int stub_home(void *ctx, uint64_t page) { (void)ctx; (void)page; return 0; }
static void *stub_frame(void *ctx, uint64_t page) { (void)ctx; return stub_frames + page * PS; }

/* Malformed write notices with a barrier arrival, an unlock or an acquire used to be logged
 * and skipped: the pages they name were then never invalidated. Now the job fails. */
Test(release, malformed_notices_fail_the_job)
{
    struct dsmp_services svc = { .self = 0, .nnodes = 2, .npages = 4, .page_size = PS, .home = stub_home,
                                 .frame = stub_frame, .fail = stub_fail };
    uint8_t junk[5] = { 1, 0, 0, 0, 0 }; /* a record header cut short */
    uint64_t vc[2] = { 0, 1 };
    dsmw_msg_t m;
    dsmp_t *p;

    cr_assert_eq(dsmp_release_ops.create(&svc, &p), DSM_OK);
    dsmw_init(&m, DSMW__TYPE__BARRIER_ARRIVE);
    m.data.data = junk;
    m.data.len = sizeof(junk);
    m.n_vclock = 2;
    m.vclock = vc;
    fail_calls = 0;
    dsmp_release_ops.sync->barrier_arrived(p, &m);
    cr_assert_eq(fail_calls, 1, "a barrier arrival with malformed notices did not fail the job");
    cr_assert_eq(fail_status, DSM_EPROTO);
    dsmw_init(&m, DSMW__TYPE__UNLOCK);
    m.data.data = junk;
    m.data.len = sizeof(junk);
    m.n_vclock = 2;
    m.vclock = vc;
    dsmp_release_ops.sync->lock_released(p, 3, &m);
    cr_assert_eq(fail_calls, 2, "an unlock with malformed notices did not fail the job");
    dsmp_release_ops.destroy(p);
}

/* ---- eviction (bounded cache) ---------------------------------------------------------------- */

/* A clean copy goes without a message; the next read fetches it again. */
BOTH_MODES(evict_clean_copy)
{
    struct ph *h = mk(2, 1, home0, mode);
    int done = 0;

    pp_write(h, 0, 0, 0, 42);
    cr_assert_eq(pp_read(h, 1, 0, 0), 42);
    ph_clear_log(h);
    cr_assert_eq(ph_evict(h, 1, 0, &done), 1);
    pp_run(h);
    cr_assert_eq(done, 1);
    cr_assert_eq(ph_nsent(h), 0, "a clean page's eviction sent a message");
    cr_assert_eq(ph_access(h, 1, 0), DSM_ACCESS_NONE);
    cr_assert_eq(pp_read(h, 1, 0, 0), 42);
    cr_assert_eq(ph_count(h, PAGE_GET, 1, 0), 1);
    cr_assert_eq(ph_evict(h, 0, 0, &done), -1, "a home page was evicted");
    ph_destroy(h);
}

/* A page written in the open interval goes home as an early diff (R5); the release still
 * names it in its notice and waits for that diff (R3), so the next acquirer of the lock sees
 * the write. */
BOTH_MODES(evict_dirty_page_sends_its_diff)
{
    struct ph *h = mk(3, 1, home0, mode);
    int done = 0;

    pp_lock(h, 1, 0);
    cr_assert_eq(pp_read(h, 2, 0, 1), 0); /* node 2 caches the page before the write */
    pp_write(h, 1, 0, 1, 7);
    ph_clear_log(h);
    cr_assert_eq(ph_evict(h, 1, 0, &done), 1);
    pp_run(h);
    cr_assert_eq(done, 1);
    cr_assert_eq(ph_count(h, DIFF, 1, 0), 1, "the evicted writes did not go home");
    cr_assert_eq(ph_counter(h, ph_rank(1), DSMP_WRITEBACKS), 1);
    cr_assert_eq(pp_peek(h, 0, 0, 1), 7);
    pp_unlock(h, 1, 0);
    pp_lock(h, 2, 0);
    cr_assert_eq(pp_read(h, 2, 0, 1), 7, "the notice of the interval no longer named the evicted page");
    pp_unlock(h, 2, 0);
    ph_destroy(h);
}

static void count_done(dsmp_t *p, void *arg)
{
    (void)p;
    ++*(int *)arg;
}

/* A page being fetched is busy: the module declines. */
Test(release, evict_declines_a_page_being_fetched)
{
    struct ph *h = mk(2, 1, home0, PH_REVOKE_SYNC);
    int done = 0;

    FAULT(h, 1, 0, DSM_ACCESS_READ);
    cr_assert_eq(dsmp_release_ops.evict(ph_proto(h, 1), 0, count_done, &done), 0);
    pp_run(h);
    cr_assert_eq(done, 0);
    ph_destroy(h);
}

/* Lock counters and locked scans with pages evicted at random (dirty ones among them):
 * every increment is seen. */
Test(release, lock_counter_with_evictions, .timeout = 120)
{
    static const int home[2] = { 0, 1 };
    uint64_t ev = 0;

    for (uint64_t seed = 1; seed <= 60; seed++) {
        int nn = 2 + (int)(seed % 3);
        struct ph *h = mk(nn, 2, home, seed % 2 ? PH_REVOKE_DEFERRED : PH_REVOKE_SYNC);

        ph_set_evict_pct(h, 20);
        pp_lock_counter(h, nn, seed % 2, (uint32_t)(seed % 5), 25, seed);
        ev += ph_evictions(h);
        ph_destroy(h);
    }
    cr_assert_gt(ev, 300, "only %llu evictions", (unsigned long long)ev);
}

Test(release, lock_scan_with_evictions, .timeout = 120)
{
    uint64_t ev = pp_lock_scans(&dsmp_release_ops, 6, 1, 20).evictions;

    cr_assert_gt(ev, 500, "only %llu evictions", (unsigned long long)ev);
}

/* A diff that crossed its page's free is acknowledged, not applied; settled waits for the
 * acks of a node's diffs. */
Test(release, diff_after_free_is_acked_and_settled_waits)
{
    static const int home[2] = { 0, DSMP_NO_HOME };
    struct ph *h = mk(2, 2, home, PH_REVOKE_SYNC);
    int done = 0;
    uint8_t rec[DSMP_REC_HDR];
    dsmw_msg_t m;

    pp_lock(h, 1, 0);
    pp_write(h, 1, 0, 0, 5);
    cr_assert_eq(ph_evict(h, 1, 0, &done), 1);     /* early diff out */
    cr_assert(!dsmp_release_ops.settled(ph_proto(h, 1), 0, 1), "a diff is unacknowledged");
    pp_run(h);
    cr_assert(dsmp_release_ops.settled(ph_proto(h, 1), 0, 2));
    pp_unlock(h, 1, 0);
    cr_assert_eq(dsmp_rec_put(rec, 1, NULL, 0), DSMP_REC_HDR); /* page 1, nothing changed */
    dsmw_init(&m, DSMW__TYPE__DIFF);
    m.page = 1;
    m.origin = 2;
    m.data.data = rec;
    m.data.len = sizeof(rec);
    ph_clear_log(h);
    cr_assert_eq(ph_inject(h, 1, 0, &m, DSMP_NO_FRAME), DSM_OK, "a diff for a freed page was refused");
    expect_sent(h, 0, DIFF_ACK, 0, 1, 1, 0);
    ph_discard(h);
    ph_destroy(h);
}

/* ---- writes ahead ---------------------------------------------------------------------------- */

/* A scan's write fault on a held page makes the held pages after it writable too, before its
 * grant (no message); a page not held, or one being fetched, ends them. At the release only
 * the pages written send diffs; every page made writable is named by the notice. */
BOTH_MODES(write_ahead_makes_held_pages_writable_with_the_fault)
{
    struct ph *h = mk(2, 8, home0, mode);
    uint64_t diffs;

    for (uint64_t p = 0; p < 4; p++)
        cr_assert_eq(pp_read(h, 1, p, 0), 0);
    FAULT(h, 1, 5, R);                 /* page 5: fetching, left alone */
    ph_clear_log(h);
    FAULT_AHEAD(h, 1, 0, W, 8);
    for (uint64_t p = 0; p < 4; p++)
        cr_assert_eq(ph_access(h, 1, p), W, "page %llu", (unsigned long long)p);
    cr_assert_eq(ph_access(h, 1, 4), NONE, "a page the node does not hold was made writable");
    pp_opened_ahead(h, 1, 2);
    pp_run(h);
    pp_write_held(h, 1, 0, 0, 10);
    pp_write_held(h, 1, 2, 0, 12);
    ph_clear_log(h);
    diffs = ph_counter(h, ph_rank(1), DSMP_DIFFS);
    pp_barrier(h);
    cr_assert_eq(ph_counter(h, ph_rank(1), DSMP_DIFFS) - diffs, 2, "diffs of unwritten pages");
    cr_assert_eq(ph_count(h, DIFF, 1, 0), 1);
    cr_assert_eq(pp_read(h, 0, 0, 0), 10);
    cr_assert_eq(pp_read(h, 0, 2, 0), 12);
    NO_ERRORS(h);
    ph_destroy(h);
}

/* A scan's write fault that fetches asks for the pages after it and makes them writable on
 * arrival; none past the allocation. */
BOTH_MODES(write_ahead_of_a_fetch_opens_the_pages_read_ahead)
{
    struct ph_config cfg = {
        .ops = &dsmp_release_ops, .nnodes = 2, .npages = 16, .page_size = PS, .home = home0,
        .revoke = mode, .daemon_revoke = 1, .alloc_pages = 8,
    };
    struct ph *h = ph_create(&cfg);

    cr_assert_not_null(h);
    seed_home(h, 0, 6, 66);
    FAULT_AHEAD(h, 1, 4, W, 16);
    pp_run(h);
    cr_assert_eq(ph_count(h, PAGE_GET, 1, 0), 1);
    for (uint64_t p = 0; p < 16; p++)
        cr_assert_eq(ph_access(h, 1, p), p >= 4 && p < 8 ? W : NONE, "page %llu", (unsigned long long)p);
    cr_assert_eq(pp_peek(h, 1, 6, 0), 66);
    pp_write(h, 1, 6, 0, 67);
    pp_barrier(h);
    cr_assert_eq(pp_read(h, 0, 6, 0), 67);
    NO_ERRORS(h);
    ph_destroy(h);
}

/* A page written ahead by two nodes (false sharing) merges both writers' bytes. */
BOTH_MODES(write_ahead_under_false_sharing_loses_no_byte)
{
    static const int home[4] = { 2, 2, 2, 2 };
    struct ph *h = mk(3, 4, home, mode);

    for (int n = 0; n < 2; n++) {
        for (uint64_t p = 0; p < 4; p++)
            (void)pp_read(h, n, p, 0);
        FAULT_AHEAD(h, n, 0, W, 4);
        pp_run(h);
        for (uint64_t p = 0; p < 4; p++)
            pp_write_byte(h, n, p, (size_t)n, (uint8_t)(10 * n + p + 1));
    }
    pp_barrier(h);
    for (int n = 0; n < 3; n++)
        for (uint64_t p = 0; p < 4; p++) {
            cr_assert_eq(pp_read_byte(h, n, p, 0), 1 + p, "node %d page %llu byte 0", n, (unsigned long long)p);
            cr_assert_eq(pp_read_byte(h, n, p, 1), 11 + p, "node %d page %llu byte 1", n, (unsigned long long)p);
        }
    NO_ERRORS(h);
    ph_destroy(h);
}

/* An evicted page that was made writable ahead and never written sends no diff and is not
 * counted as a write-back. */
BOTH_MODES(evicting_a_page_written_ahead_but_unwritten_is_no_writeback)
{
    struct ph *h = mk(2, 4, home0, mode);
    int done = 0;

    for (uint64_t p = 0; p < 4; p++)
        (void)pp_read(h, 1, p, 0);
    FAULT_AHEAD(h, 1, 0, W, 4);
    pp_run(h);
    cr_assert_eq(ph_access(h, 1, 2), W);
    ph_clear_log(h);
    cr_assert_eq(ph_evict(h, 1, 2, &done), 1);
    pp_run(h);
    cr_assert_eq(done, 1);
    cr_assert_eq(ph_count(h, DIFF, 1, 0), 0, "an empty diff went home");
    cr_assert_eq(ph_counter(h, ph_rank(1), DSMP_WRITEBACKS), 0, "an unwritten page counted as a write-back");
    NO_ERRORS(h);
    ph_destroy(h);
}

/* A page written in the open interval and then freed (reset) leaves the interval: the
 * interval's notice does not name it, so a node that holds the page again keeps it. */
BOTH_MODES(a_freed_page_leaves_the_open_interval)
{
    struct ph *h = mk(3, 2, home0, mode);

    pp_write(h, 1, 0, 0, 5);
    pp_write(h, 1, 1, 0, 6);
    ph_reset(h, 0, 1);
    cr_assert_eq(pp_read(h, 2, 0, 0), 0);
    pp_barrier(h);
    cr_assert_eq(ph_access(h, 2, 0), R, "a freed page's stale notice dropped a copy");
    cr_assert_eq(pp_read(h, 2, 1, 0), 6);
    NO_ERRORS(h);
    ph_destroy(h);
}

/* ---- self-invalidation against write notices (DSM_RELEASE_INVALIDATE) ---------------------- */

static struct ph *mk_inval(const char *how, int nnodes, uint64_t npages, enum ph_revoke_mode mode)
{
    struct ph *h;

    cr_assert_eq(setenv("DSM_RELEASE_INVALIDATE", how, 1), 0);
    h = mk(nnodes, npages, home0, mode);
    cr_assert_eq(unsetenv("DSM_RELEASE_INVALIDATE"), 0);
    return h;
}

/* Nodes 1 and 2 hold pages 0-5; node 2 writes page 2, then (next barrier) page 4, and node
 * 1 page 5. At the second barrier notices drop only what it names (node 1: page 4); self-
 * invalidation drops at node 1 page 2 too (node 2 wrote it before), never a page only this
 * node writes (node 2 keeps 2 and 4), nor one nobody wrote. */
BOTH_MODES(self_invalidation_drops_every_page_another_node_wrote)
{
    for (int self = 0; self < 2; self++) {
        struct ph *h = mk_inval(self ? "self" : "notices", 3, 6, mode);

        for (uint64_t p = 0; p < 6; p++) {
            pp_read(h, 1, p, 0);
            pp_read(h, 2, p, 0);
        }
        pp_write(h, 2, 2, 0, 12);
        pp_barrier(h);
        cr_assert_eq(pp_read(h, 1, 2, 0), 12);
        pp_write(h, 2, 4, 0, 24);
        pp_write(h, 1, 5, 0, 15);
        pp_barrier(h);
        for (uint64_t p = 0; p < 6; p++) {
            int n1 = p == 4 || (self && p == 2) ? NONE : R;

            cr_assert_eq(ph_access(h, 1, p), n1, "%s: node 1 page %llu", self ? "self" : "notices",
                         (unsigned long long)p);
            cr_assert_eq(ph_access(h, 2, p), p == 5 ? NONE : R, "%s: node 2 page %llu", self ? "self" : "notices",
                         (unsigned long long)p);
        }
        cr_assert_eq(pp_read(h, 1, 2, 0), 12);
        cr_assert_eq(pp_read(h, 1, 4, 0), 24);
        cr_assert_eq(pp_read(h, 2, 5, 0), 15);
        NO_ERRORS(h);
        ph_destroy(h);
    }
}

/* A freed page loses its class: its next allocation is not shared-written until written. */
Test(release, self_invalidation_forgets_a_freed_page)
{
    struct ph *h = mk_inval("self", 3, 6, PH_REVOKE_SYNC);

    pp_read(h, 1, 2, 0);
    pp_write(h, 2, 2, 0, 12);
    pp_barrier(h);
    ph_reset(h, 2, 1);
    cr_assert_eq(pp_read(h, 1, 2, 0), 0);
    pp_write(h, 2, 4, 0, 24);
    pp_barrier(h);
    cr_assert_eq(ph_access(h, 1, 2), R, "a freed page kept its class");
    NO_ERRORS(h);
    ph_destroy(h);
}

/* Every lock counter and locked scan stays right when acquires drop more than notices name. */
Test(release, self_invalidation_random_schedules, .timeout = 120)
{
    static const int home[2] = { 0, 1 };

    cr_assert_eq(setenv("DSM_RELEASE_INVALIDATE", "self", 1), 0);
    for (uint64_t seed = 1; seed <= 40; seed++) {
        int nn = 2 + (int)(seed % 3);
        struct ph *h = mk(nn, 2, home, seed % 2 ? PH_REVOKE_DEFERRED : PH_REVOKE_SYNC);

        ph_set_evict_pct(h, seed % 4 ? 0 : 20);
        pp_lock_counter(h, nn, seed % 2, (uint32_t)(seed % 5), 25, seed);
        ph_destroy(h);
    }
    cr_assert_gt(pp_lock_scans(&dsmp_release_ops, 6, 0, 20).evictions, 500);
}

Test(release, an_unknown_invalidation_is_refused)
{
    struct dsmp_services svc = { .page_size = PS, .npages = 4, .nnodes = 2 };
    dsmp_t *p = NULL;

    cr_assert_eq(setenv("DSM_RELEASE_FETCH_AGAIN", "sometimes", 1), 0);
    cr_assert_eq(dsmp_release_ops.create(&svc, &p), DSM_ECONFIG);
    cr_assert_eq(unsetenv("DSM_RELEASE_FETCH_AGAIN"), 0);
    cr_assert_eq(setenv("DSM_RELEASE_INVALIDATE", "sometimes", 1), 0);
    cr_assert_eq(dsmp_release_ops.create(&svc, &p), DSM_ECONFIG);
    cr_assert_eq(setenv("DSM_RELEASE_INVALIDATE", "self", 1), 0);
    cr_assert_eq(dsmp_release_ops.create(&svc, &p), DSM_OK);
    dsmp_release_ops.destroy(p);
}

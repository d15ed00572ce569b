/*
 * test_sequential.c - unit suite for the sequential consistency module
 * (consistency/sequential/sequential.c) over the in-process harness (proto_harness.h).
 * Long on purpose: one case per transition and per refusal of the module, in table order.
 *
 * Scenario tests check exact behaviour: which messages go where, in which order, with
 * which access and whether a frame moves; which node ends with which access; that the
 * data a node receives is the last value written. Most run twice, with revocations
 * completing inside revoke() and with revocations completing later (deferred). The
 * randomized tests run many fixed-seed schedules of random faults and writes and check
 * the single-writer/data invariants after every step and liveness at the end.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <string.h>

#include "ahead.h"
#include "proto_harness.h"
#include "proto_prog.h"

#define R DSM_ACCESS_READ
#define W DSM_ACCESS_WRITE
#define NONE DSM_ACCESS_NONE
#define PS 4096u
#define LIMIT 100000

enum {
    READ_REQ = DSMW__TYPE__READ_REQ,
    WRITE_REQ = DSMW__TYPE__WRITE_REQ,
    GRANT = DSMW__TYPE__GRANT,
    INV = DSMW__TYPE__INV,
    INV_ACK = DSMW__TYPE__INV_ACK,
    FETCH = DSMW__TYPE__FETCH,
    FETCH_REPLY = DSMW__TYPE__FETCH_REPLY,
    EVICT = DSMW__TYPE__EVICT,
    EVICTED = DSMW__TYPE__EVICTED,
};

static struct ph *mk(int nnodes, uint64_t npages, const int *home, enum ph_revoke_mode mode, int write_on_grant)
{
    struct ph_config cfg = {
        .ops = &dsmp_sequential_ops, .nnodes = nnodes, .npages = npages, .page_size = PS, .home = home,
        .revoke = mode, .write_on_grant = write_on_grant, .check_each_step = 1,
    };
    struct ph *h = ph_create(&cfg);

    cr_assert_not_null(h, "harness creation failed");
    cr_assert_eq(ph_errors(h), 0, "%s", ph_first_error(h));
    return h;
}

/* Home 0 for every page. */
static const int home0[16] = { 0 };

#define NO_ERRORS(h) cr_assert_eq(ph_errors(h), 0, "harness: %s", ph_first_error(h))
#define RUN(h)                                                                   \
    do {                                                                         \
        cr_assert_geq(ph_run((h), LIMIT), 0, "no quiescence in %d steps", LIMIT); \
        NO_ERRORS(h);                                                            \
    } while (0)
#define QUIET(h)                                         \
    do {                                                 \
        const char *why_ = ph_check_quiescent(h);        \
        cr_assert_null(why_, "%s", why_ ? why_ : "");    \
        NO_ERRORS(h);                                    \
    } while (0)
#define FAULT(h, node, page, acc) \
    cr_assert_eq(ph_fault((h), (node), (page), (acc), ph_rank(node)), 0, "fault not allowed")

/* The i-th message sent since the last clear is exactly this. */
static void expect_sent(struct ph *h, size_t i, int type, int src, int dst, uint64_t page, int framed)
{
    const struct ph_sent *s = ph_sent_at(h, i);

    cr_assert_not_null(s, "message #%zu missing (only %zu sent)", i, ph_nsent(h));
    cr_assert(s->type == type && s->src == src && s->dst == dst && s->page == page && s->framed == framed,
              "message #%zu: got %s %d->%d page %llu framed %d, want %s %d->%d page %llu framed %d", i,
              dsmw_type_name(s->type), s->src, s->dst, (unsigned long long)s->page, s->framed, dsmw_type_name(type),
              src, dst, (unsigned long long)page, framed);
}

/* Every node's access to page is want[node]. */
static void expect_access(struct ph *h, uint64_t page, const int *want, int nnodes)
{
    for (int i = 0; i < nnodes; i++)
        cr_assert_eq(ph_access(h, i, page), want[i], "page %llu node %d: access %d, want %d",
                     (unsigned long long)page, i, ph_access(h, i, page), want[i]);
}

/* Run a scenario once with synchronous and once with deferred revocation. */
#define BOTH_MODES(name)                                            \
    static void name(enum ph_revoke_mode mode);                     \
    Test(sequential, name##_sync) { name(PH_REVOKE_SYNC); }         \
    Test(sequential, name##_deferred) { name(PH_REVOKE_DEFERRED); } \
    static void name(enum ph_revoke_mode mode)

/* ---- registry and creation ------------------------------------------------------------ */

Test(sequential, registry)
{
    const struct dsmp_ops *o = dsmp_find("sequential");

    cr_assert_eq(o, &dsmp_sequential_ops);
    cr_assert_str_eq(o->name, "sequential");
    cr_assert_eq(o->model, DSM_MODEL_SEQUENTIAL);
    cr_assert_not_null(o->create);
    cr_assert_not_null(o->destroy);
    cr_assert_not_null(o->fault);
    cr_assert_not_null(o->message);
    cr_assert_not_null(o->reset);
    cr_assert_null(dsmp_find("bogus"));
    cr_assert_null(dsmp_find(""));
    cr_assert_null(dsmp_find("sequentia"));
    cr_assert_null(dsmp_find("sequential "));
}

static int dummy_home(void *ctx, uint64_t page) { return 0; }

/* Services of one home node (node 0) that record what it sends; revocations finish at once. */
#define BIG_NODES 130 /* past the 64 nodes one word of node bits holds, and past 128 */
static int big_sent[BIG_NODES][DSMW__TYPE__UPDATE + 1];
static int big_granted = -1;
static dsmp_t *big_p;

static dsm_status_t big_send(void *ctx, int node, dsmw_msg_t *m, uint64_t attach)
{
    (void)ctx;
    (void)attach;
    cr_assert(node >= 0 && node < BIG_NODES && m->type <= DSMW__TYPE__UPDATE);
    big_sent[node][m->type]++;
    if (m->type == DSMW__TYPE__GRANT)
        big_granted = node;
    return DSM_OK;
}

static void big_access(void *ctx, uint64_t page, int access) { (void)ctx; (void)page; (void)access; }

static void big_revoke(void *ctx, uint64_t page, int access, dsmp_done_fn done, void *arg)
{
    (void)ctx;
    (void)page;
    (void)access;
    done(big_p, arg);
}

static void big_request(dsmp_t *p, int type, int node)
{
    dsmw_msg_t m;

    dsmw_init(&m, type);
    m.page = 0;
    m.node = (uint32_t)node;
    m.origin = (uint32_t)node;
    m.access = type == DSMW__TYPE__WRITE_REQ ? DSM_ACCESS_WRITE : DSM_ACCESS_READ;
    cr_assert_eq(dsmp_sequential_ops.message(p, node, &m, 0), DSM_OK);
}

/* 130 nodes read a page, then the last one writes it: the home invalidates exactly the 128
 * other remote copies (its own copy goes through a local revocation), waits for every
 * acknowledgement, and only then grants the write. */
Test(sequential, copysets_hold_any_number_of_nodes)
{
    struct dsmp_services svc = { .self = 0, .nnodes = BIG_NODES, .npages = 4, .page_size = PS,
                                 .home = dummy_home, .send = big_send, .grant = big_access,
                                 .set_access = big_access, .revoke = big_revoke };
    dsmp_t *p = NULL;
    int w = BIG_NODES - 1;

    cr_assert_eq(dsmp_sequential_ops.create(&svc, &p), DSM_OK);
    big_p = p;
    dsmp_sequential_ops.reset(p, 0, 4);
    for (int n = 1; n < BIG_NODES; n++)
        big_request(p, DSMW__TYPE__READ_REQ, n);
    for (int n = 1; n < BIG_NODES; n++)
        cr_assert_eq(big_sent[n][DSMW__TYPE__GRANT], 1, "node %d: no read grant", n);
    big_granted = -1;
    big_request(p, DSMW__TYPE__WRITE_REQ, w);
    for (int n = 1; n < BIG_NODES; n++)
        cr_assert_eq(big_sent[n][DSMW__TYPE__INV], n == w ? 0 : 1, "node %d: %d INVs", n, big_sent[n][DSMW__TYPE__INV]);
    for (int n = 1; n < w; n++) {
        dsmw_msg_t ack;

        cr_assert_eq(big_granted, -1, "write granted before node %d acknowledged", n);
        dsmw_init(&ack, DSMW__TYPE__INV_ACK);
        ack.page = 0;
        ack.origin = (uint32_t)w;
        cr_assert_eq(dsmp_sequential_ops.message(p, n, &ack, 0), DSM_OK, "INV_ACK from node %d", n);
    }
    cr_assert_eq(big_granted, w, "the writer got no grant after every acknowledgement");
    /* a second acknowledgement from a node no longer asked is a protocol error */
    {
        dsmw_msg_t ack;

        dsmw_init(&ack, DSMW__TYPE__INV_ACK);
        ack.page = 0;
        cr_assert_eq(dsmp_sequential_ops.message(p, 70, &ack, 0), DSM_EPROTO);
    }
    dsmp_sequential_ops.destroy(p);
}

Test(sequential, initial_state_home_reads_others_none)
{
    static const int home[4] = { 0, 1, 2, 1 };
    struct ph *h = mk(3, 4, home, PH_REVOKE_SYNC, 0);

    for (uint64_t p = 0; p < 4; p++)
        for (int n = 0; n < 3; n++)
            cr_assert_eq(ph_access(h, n, p), n == home[p] ? R : NONE, "page %llu node %d", (unsigned long long)p, n);
    cr_assert_eq(ph_nsent(h), 0);
    ph_destroy(h);
}

/* ---- read faults ---------------------------------------------------------------------- */

BOTH_MODES(read_fault_at_non_home)
{
    struct ph *h = mk(3, 4, home0, mode, 0);

    ph_poke(h, 0, 2, 1234);                      /* the home's data */
    FAULT(h, 1, 2, R);
    cr_assert_eq(ph_nsent(h), 1);
    expect_sent(h, 0, READ_REQ, 1, 0, 2, 0);
    cr_assert_eq(ph_sent_at(h, 0)->node, 1);
    cr_assert_eq(ph_sent_at(h, 0)->origin, ph_rank(1));
    cr_assert_eq(ph_access(h, 1, 2), NONE, "no access before the grant");

    cr_assert_eq(ph_deliver(h, 1, 0), 1);
    NO_ERRORS(h);
    cr_assert_eq(ph_nsent(h), 2, "the home answers at once from its own copy");
    expect_sent(h, 1, GRANT, 0, 1, 2, 1);
    cr_assert_eq(ph_sent_at(h, 1)->access, R);
    cr_assert_eq(ph_sent_at(h, 1)->origin, ph_rank(1));
    cr_assert_eq(ph_deliver(h, 0, 1), 1);
    RUN(h);

    cr_assert_eq(ph_nsent(h), 2, "exactly READ_REQ and GRANT");
    expect_access(h, 2, (int[]){ R, R, NONE }, 3);
    cr_assert(ph_frame_is(h, 1, 2, 1234), "the reader got the home's data");
    cr_assert_eq(ph_fault_pending(h, 1, 2), 0);
    cr_assert_eq(ph_count_events(h, 0, PH_EV_REVOKE, 2, PH_ANY), 0, "a read takes nothing from the home");
    cr_assert_eq(ph_count_events(h, 1, PH_EV_GRANT, 2, R), 1);
    cr_assert_eq(ph_counter(h, ph_rank(1), DSMP_PAGES_FETCHED), 1);
    /* other pages are untouched */
    for (uint64_t p = 0; p < 4; p++)
        if (p != 2)
            expect_access(h, p, (int[]){ R, NONE, NONE }, 3);
    QUIET(h);
    ph_destroy(h);
}

BOTH_MODES(second_reader_is_served_by_the_home_too)
{
    struct ph *h = mk(4, 2, home0, mode, 0);

    ph_poke(h, 0, 1, 77);
    FAULT(h, 1, 1, R);
    RUN(h);
    FAULT(h, 3, 1, R);
    RUN(h);
    cr_assert_eq(ph_nsent(h), 4);
    cr_assert_eq(ph_count(h, GRANT, 0, 3), 1);
    cr_assert_eq(ph_count(h, FETCH, PH_ANY, PH_ANY), 0);
    expect_access(h, 1, (int[]){ R, R, NONE, R }, 4);
    cr_assert(ph_frame_is(h, 3, 1, 77));
    QUIET(h);
    ph_destroy(h);
}

/* ---- write faults with copies ---------------------------------------------------------- */

/* 6 nodes, home 0, readers 1..k; `writer` write-faults. */
static void write_with_k_copies(enum ph_revoke_mode mode, int k, int writer)
{
    struct ph *h = mk(6, 2, home0, mode, 0);
    int in_copyset = writer >= 1 && writer <= k;
    size_t invs = (size_t)(writer == 0 ? k : in_copyset ? k - 1 : k);

    ph_poke(h, 0, 0, 999);
    for (int n = 1; n <= k; n++) {
        FAULT(h, n, 0, R);
        RUN(h);
    }
    ph_clear_log(h);
    FAULT(h, writer, 0, W);
    RUN(h);

    cr_assert_eq(ph_count(h, WRITE_REQ, writer, 0), 1);
    cr_assert_eq(ph_count(h, INV, PH_ANY, PH_ANY), invs, "k %d writer %d: %zu INVs, want %zu", k, writer,
                 ph_count(h, INV, PH_ANY, PH_ANY), invs);
    for (int n = 1; n <= k; n++)
        cr_assert_eq(ph_count(h, INV, 0, n), n == writer ? 0u : 1u, "k %d writer %d: INV to node %d", k, writer, n);
    cr_assert_eq(ph_count(h, INV, 0, 0), 0, "the home's copy goes by a local revoke, not a message");
    cr_assert_eq(ph_count(h, INV_ACK, PH_ANY, 0), invs);
    cr_assert_eq(ph_count(h, FETCH, PH_ANY, PH_ANY), 0);
    cr_assert_eq(ph_count(h, FETCH_REPLY, PH_ANY, PH_ANY), 0);
    if (writer == 0) {
        cr_assert_eq(ph_count(h, GRANT, PH_ANY, PH_ANY), 0, "the home grants itself without a message");
        cr_assert_eq(ph_nsent(h), 1 + 2 * invs);
    } else {
        cr_assert_eq(ph_count(h, GRANT, 0, writer), 1);
        cr_assert_eq(ph_sent_at(h, ph_nsent(h) - 1)->type, GRANT, "the grant comes after every INV_ACK");
        cr_assert_eq(ph_sent_at(h, ph_nsent(h) - 1)->access, W);
        cr_assert_eq(ph_sent_at(h, ph_nsent(h) - 1)->origin, ph_rank(writer));
        cr_assert_eq(ph_sent_at(h, ph_nsent(h) - 1)->framed, !in_copyset,
                     "data moves only to a writer without a copy");
        cr_assert_eq(ph_nsent(h), 2 + 2 * invs);
        cr_assert_eq(ph_count_events(h, 0, PH_EV_REVOKE, 0, NONE), 1, "the home's own copy is revoked");
    }
    for (int n = 0; n < 6; n++)
        cr_assert_eq(ph_access(h, n, 0), n == writer ? W : NONE, "k %d writer %d: node %d access %d", k, writer, n,
                     ph_access(h, n, 0));
    cr_assert(ph_frame_is(h, writer, 0, 999), "the writer holds the current data");
    QUIET(h);
    ph_destroy(h);
}

BOTH_MODES(write_fault_invalidates_every_copy)
{
    for (int k = 0; k <= 4; k++) {
        write_with_k_copies(mode, k, 5);        /* writer without a copy: k INVs */
        write_with_k_copies(mode, k, 0);        /* the home writes: k INVs */
        if (k >= 1)
            write_with_k_copies(mode, k, 1);    /* writer holds a copy: k - 1 INVs */
    }
}

/* ---- ownership moves -------------------------------------------------------------------- */

BOTH_MODES(read_after_remote_write_fetches_from_the_owner)
{
    struct ph *h = mk(3, 1, home0, mode, 0);
    uint64_t v;

    FAULT(h, 1, 0, W);
    RUN(h);
    expect_access(h, 0, (int[]){ NONE, W, NONE }, 3);
    v = ph_write(h, 1, 0);
    ph_clear_log(h);

    FAULT(h, 2, 0, R);
    RUN(h);
    cr_assert_eq(ph_nsent(h), 4);
    expect_sent(h, 0, READ_REQ, 2, 0, 0, 0);
    expect_sent(h, 1, FETCH, 0, 1, 0, 0);
    cr_assert_eq(ph_sent_at(h, 1)->access, R, "the owner keeps a read copy");
    expect_sent(h, 2, FETCH_REPLY, 1, 0, 0, 1);
    expect_sent(h, 3, GRANT, 0, 2, 0, 1);
    cr_assert_eq(ph_sent_at(h, 3)->access, R);
    cr_assert_eq(ph_count_events(h, 1, PH_EV_REVOKE, 0, R), 1, "the owner is downgraded to READ");
    expect_access(h, 0, (int[]){ R, R, R }, 3);
    for (int n = 0; n < 3; n++)
        cr_assert(ph_frame_is(h, n, 0, v), "node %d does not hold the written value", n);
    cr_assert_eq(ph_counter(h, ph_rank(2), DSMP_PAGES_FETCHED), 1);
    QUIET(h);

    /* now a write by the reader: one INV (to the old owner), the home's copy revoked locally */
    ph_clear_log(h);
    FAULT(h, 2, 0, W);
    RUN(h);
    cr_assert_eq(ph_nsent(h), 4);
    cr_assert_eq(ph_count(h, INV, 0, 1), 1);
    cr_assert_eq(ph_count(h, INV_ACK, 1, 0), 1);
    cr_assert_eq(ph_count(h, GRANT, 0, 2), 1);
    cr_assert_eq(ph_sent_at(h, 3)->framed, 0, "node 2 already has the data");
    expect_access(h, 0, (int[]){ NONE, NONE, W }, 3);
    QUIET(h);
    ph_destroy(h);
}

BOTH_MODES(write_after_remote_write_moves_ownership_and_data)
{
    struct ph *h = mk(3, 1, home0, mode, 0);
    uint64_t v1, v2;

    FAULT(h, 1, 0, W);
    RUN(h);
    v1 = ph_write(h, 1, 0);
    ph_clear_log(h);

    FAULT(h, 2, 0, W);
    RUN(h);
    cr_assert_eq(ph_nsent(h), 4);
    expect_sent(h, 0, WRITE_REQ, 2, 0, 0, 0);
    expect_sent(h, 1, FETCH, 0, 1, 0, 0);
    cr_assert_eq(ph_sent_at(h, 1)->access, NONE, "the old owner keeps nothing");
    expect_sent(h, 2, FETCH_REPLY, 1, 0, 0, 1);
    expect_sent(h, 3, GRANT, 0, 2, 0, 1);
    cr_assert_eq(ph_sent_at(h, 3)->access, W);
    expect_access(h, 0, (int[]){ NONE, NONE, W }, 3);
    cr_assert(ph_frame_is(h, 2, 0, v1), "the new owner got the old owner's data");

    v2 = ph_write(h, 2, 0);
    ph_clear_log(h);
    FAULT(h, 1, 0, W);   /* and back */
    RUN(h);
    cr_assert_eq(ph_nsent(h), 4);
    cr_assert_eq(ph_count(h, FETCH, 0, 2), 1);
    expect_access(h, 0, (int[]){ NONE, W, NONE }, 3);
    cr_assert(ph_frame_is(h, 1, 0, v2));
    QUIET(h);
    ph_destroy(h);
}

/* ---- the home's own faults -------------------------------------------------------------- */

BOTH_MODES(home_write_when_it_holds_the_only_copy)
{
    struct ph *h = mk(3, 1, home0, mode, 0);

    FAULT(h, 0, 0, W);
    cr_assert_eq(ph_nsent(h), 1);
    expect_sent(h, 0, WRITE_REQ, 0, 0, 0, 0);   /* to itself, through the queue */
    cr_assert_eq(ph_access(h, 0, 0), R, "nothing happens before the request is delivered");
    RUN(h);
    cr_assert_eq(ph_nsent(h), 1, "no INV, no GRANT message");
    expect_access(h, 0, (int[]){ W, NONE, NONE }, 3);
    cr_assert_eq(ph_count_events(h, 0, PH_EV_GRANT, 0, W), 1);
    QUIET(h);
    ph_destroy(h);
}

BOTH_MODES(remote_faults_when_the_home_owns)
{
    struct ph *h = mk(3, 1, home0, mode, 0);
    uint64_t v;

    FAULT(h, 0, 0, W);
    RUN(h);
    v = ph_write(h, 0, 0);
    ph_clear_log(h);

    FAULT(h, 1, 0, R);                           /* the home downgrades itself and sends its copy */
    RUN(h);
    cr_assert_eq(ph_nsent(h), 2);
    expect_sent(h, 0, READ_REQ, 1, 0, 0, 0);
    expect_sent(h, 1, GRANT, 0, 1, 0, 1);
    cr_assert_eq(ph_count_events(h, 0, PH_EV_REVOKE, 0, R), 1);
    expect_access(h, 0, (int[]){ R, R, NONE }, 3);
    cr_assert(ph_frame_is(h, 1, 0, v));

    /* the home writes again (INV to 1), then node 2 writes: the home gives up its copy */
    FAULT(h, 0, 0, W);
    RUN(h);
    v = ph_write(h, 0, 0);
    ph_clear_log(h);
    FAULT(h, 2, 0, W);
    RUN(h);
    cr_assert_eq(ph_nsent(h), 2);
    expect_sent(h, 0, WRITE_REQ, 2, 0, 0, 0);
    expect_sent(h, 1, GRANT, 0, 2, 0, 1);
    cr_assert_eq(ph_count_events(h, 0, PH_EV_REVOKE, 0, NONE), 1);
    expect_access(h, 0, (int[]){ NONE, NONE, W }, 3);
    cr_assert(ph_frame_is(h, 2, 0, v));
    QUIET(h);
    ph_destroy(h);
}

BOTH_MODES(home_faults_when_another_node_owns)
{
    struct ph *h = mk(3, 1, home0, mode, 0);
    uint64_t v;

    FAULT(h, 1, 0, W);
    RUN(h);
    v = ph_write(h, 1, 0);
    ph_clear_log(h);

    FAULT(h, 0, 0, R);
    RUN(h);
    cr_assert_eq(ph_nsent(h), 3);
    expect_sent(h, 0, READ_REQ, 0, 0, 0, 0);
    expect_sent(h, 1, FETCH, 0, 1, 0, 0);
    cr_assert_eq(ph_sent_at(h, 1)->access, R);
    expect_sent(h, 2, FETCH_REPLY, 1, 0, 0, 1);
    expect_access(h, 0, (int[]){ R, R, NONE }, 3);
    cr_assert(ph_frame_is(h, 0, 0, v));
    cr_assert_eq(ph_count_events(h, 0, PH_EV_GRANT, 0, R), 1, "the home's fault ends with a grant");

    FAULT(h, 1, 0, W);                           /* node 1 owns again (INV-free: the home revokes itself) */
    RUN(h);
    v = ph_write(h, 1, 0);
    ph_clear_log(h);
    FAULT(h, 0, 0, W);
    RUN(h);
    cr_assert_eq(ph_nsent(h), 3);
    expect_sent(h, 0, WRITE_REQ, 0, 0, 0, 0);
    expect_sent(h, 1, FETCH, 0, 1, 0, 0);
    cr_assert_eq(ph_sent_at(h, 1)->access, NONE);
    expect_sent(h, 2, FETCH_REPLY, 1, 0, 0, 1);
    expect_access(h, 0, (int[]){ W, NONE, NONE }, 3);
    cr_assert(ph_frame_is(h, 0, 0, v));
    QUIET(h);
    ph_destroy(h);
}

BOTH_MODES(pages_with_different_homes_are_independent)
{
    static const int home[3] = { 2, 0, 1 };
    struct ph *h = mk(3, 3, home, mode, 1);

    FAULT(h, 0, 0, W);   /* home 2 */
    FAULT(h, 1, 1, R);   /* home 0 */
    FAULT(h, 2, 2, W);   /* home 1 */
    RUN(h);
    cr_assert_eq(ph_count(h, WRITE_REQ, 0, 2), 1);
    cr_assert_eq(ph_count(h, READ_REQ, 1, 0), 1);
    cr_assert_eq(ph_count(h, WRITE_REQ, 2, 1), 1);
    expect_access(h, 0, (int[]){ W, NONE, NONE }, 3);
    expect_access(h, 1, (int[]){ R, R, NONE }, 3);
    expect_access(h, 2, (int[]){ NONE, NONE, W }, 3);
    QUIET(h);
    ph_destroy(h);
}

/* ---- concurrency ------------------------------------------------------------------------ */

BOTH_MODES(concurrent_writers_are_serialized)
{
    struct ph *h = mk(5, 1, home0, mode, 1);
    int last_writer = -1;

    for (int n = 1; n <= 4; n++)
        FAULT(h, n, 0, W);
    RUN(h);
    cr_assert_eq(ph_count(h, WRITE_REQ, PH_ANY, 0), 4);
    cr_assert_eq(ph_count(h, GRANT, 0, PH_ANY), 4);
    cr_assert_eq(ph_count(h, FETCH, 0, PH_ANY), 3, "each writer after the first fetches from the one before");
    cr_assert_eq(ph_count(h, FETCH_REPLY, PH_ANY, 0), 3);
    cr_assert_eq(ph_count(h, INV, PH_ANY, PH_ANY), 0);
    cr_assert_eq(ph_nsent(h), 14);
    for (size_t i = 0; i < ph_nsent(h); i++)
        if (ph_sent_at(h, i)->type == GRANT) {
            cr_assert(ph_sent_at(h, i)->framed, "every writer lacked the data");
            last_writer = ph_sent_at(h, i)->dst;
        }
    for (int n = 0; n < 5; n++)
        cr_assert_eq(ph_access(h, n, 0), n == last_writer ? W : NONE);
    cr_assert_eq(ph_faults_granted(h), 4);
    QUIET(h);
    ph_destroy(h);
}

BOTH_MODES(concurrent_readers_and_writers_all_complete)
{
    struct ph *h = mk(6, 2, home0, mode, 1);

    for (int n = 0; n < 6; n++) {
        FAULT(h, n, 0, n == 0 || n % 2 ? W : R);   /* the home reads already: it can only write */
        if (n != 0)
            FAULT(h, n, 1, n % 3 ? R : W);
    }
    RUN(h);
    cr_assert_eq(ph_faults_granted(h), 11);
    QUIET(h);
    ph_destroy(h);
}

Test(sequential, requests_wait_behind_the_running_transaction)
{
    struct ph *h = mk(4, 1, home0, PH_REVOKE_DEFERRED, 0);
    size_t before;
    uint64_t v;

    FAULT(h, 1, 0, W);
    RUN(h);
    v = ph_write(h, 1, 0);
    ph_clear_log(h);

    FAULT(h, 2, 0, R);
    FAULT(h, 3, 0, W);
    FAULT(h, 0, 0, R);
    cr_assert_eq(ph_deliver(h, 2, 0), 1);           /* the read starts: FETCH to the owner */
    cr_assert_eq(ph_count(h, FETCH, 0, 1), 1);
    before = ph_nsent(h);
    cr_assert_eq(ph_deliver(h, 3, 0), 1);           /* the write waits */
    cr_assert_eq(ph_deliver(h, 0, 0), 1);           /* and so does the home's own read */
    cr_assert_eq(ph_nsent(h), before, "a request was started while another runs");

    cr_assert_eq(ph_deliver(h, 0, 1), 1);           /* FETCH at the owner: revoke to READ, not done yet */
    cr_assert_eq(ph_revokes_pending(h), 1);
    cr_assert_eq(ph_access(h, 1, 0), R);
    cr_assert_eq(ph_nsent(h), before, "the owner answered before its ranks gave up WRITE");
    cr_assert_eq(ph_complete_revoke(h, 0), 1);
    expect_sent(h, before, FETCH_REPLY, 1, 0, 0, 1);
    cr_assert_eq(ph_deliver(h, 1, 0), 1);           /* the read ends, the write starts at once */
    expect_sent(h, before + 1, GRANT, 0, 2, 0, 1);
    cr_assert_eq(ph_count(h, INV, 0, 1), 1);
    cr_assert_eq(ph_count(h, INV, 0, 2), 1, "the reader just granted is invalidated after its grant");
    cr_assert_eq(ph_count(h, GRANT, 0, 3), 0, "the writer waits for the INV_ACKs");
    NO_ERRORS(h);
    RUN(h);

    /* grants in arrival order: node 2 READ, node 3 WRITE, then the home READ */
    {
        int order[3], k = 0;

        for (size_t i = 0; i < ph_nevents(h) && k < 3; i++) {
            const struct ph_event *e = ph_event_at(h, i);

            if (e->kind == PH_EV_GRANT)
                order[k++] = e->node * 10 + e->access;
        }
        cr_assert_eq(k, 3);
        cr_assert_eq(order[0], 2 * 10 + R);
        cr_assert_eq(order[1], 3 * 10 + W);
        cr_assert_eq(order[2], 0 * 10 + R);
    }
    expect_access(h, 0, (int[]){ R, NONE, NONE, R }, 4);
    for (int n = 0; n < 4; n++)
        if (ph_access(h, n, 0) != NONE)
            cr_assert(ph_frame_is(h, n, 0, v));
    QUIET(h);
    ph_destroy(h);
}

/* ---- read-ahead ------------------------------------------------------------------------------ */

static struct ph *mk_ahead(int nnodes, uint64_t npages, const int *home, enum ph_revoke_mode mode, uint32_t ahead)
{
    struct ph_config cfg = {
        .ops = &dsmp_sequential_ops, .nnodes = nnodes, .npages = npages, .page_size = PS, .home = home,
        .revoke = mode, .check_each_step = 1, .ahead = ahead,
    };
    struct ph *h = ph_create(&cfg);

    cr_assert_not_null(h, "harness creation failed");
    return h;
}

#define FAULT_AHEAD(h, node, page, acc, ahead) \
    cr_assert_eq(ph_fault_ahead((h), (node), (page), (acc), ph_rank(node), (ahead)), 0, "fault not allowed")

/* A scan's read fault brings the pages after it in one READ_REQ and one GRANT. */
BOTH_MODES(read_ahead_brings_the_next_pages_in_one_grant)
{
    struct ph *h = mk(2, 16, home0, mode, 0);
    uint64_t v[16];

    for (uint64_t p = 0; p < 16; p++) {
        v[p] = 100 + p;
        ph_poke(h, 0, p, v[p]);
    }
    ph_clear_log(h);
    FAULT_AHEAD(h, 1, 3, R, 8);
    RUN(h);
    cr_assert_eq(ph_nsent(h), 2);
    expect_sent(h, 0, READ_REQ, 1, 0, 3, 0);
    expect_sent(h, 1, GRANT, 0, 1, 3, 1);
    for (uint64_t p = 0; p < 16; p++) {
        cr_assert_eq(ph_access(h, 1, p), p >= 3 && p < 11 ? R : NONE, "page %llu", (unsigned long long)p);
        if (p >= 3 && p < 11)
            cr_assert(ph_frame_is(h, 1, p, v[p]), "page %llu holds the wrong data", (unsigned long long)p);
    }
    cr_assert_eq(ph_count_events(h, 1, PH_EV_GRANT, 3, R), 1);
    cr_assert_eq(ph_count_events(h, 1, PH_EV_SET_ACCESS, 4, R), 1); /* nobody faulted on it: no grant */
    cr_assert_eq(ph_counter(h, ph_rank(1), DSMP_PAGES_FETCHED), 8);
    cr_assert_eq(ph_counter(h, ph_rank(1), DSMP_PAGES_READ_AHEAD), 7);
    /* the node is in each page's copyset: a write elsewhere invalidates all of them */
    ph_clear_log(h);
    FAULT(h, 0, 6, W);
    RUN(h);
    cr_assert_eq(ph_count(h, INV, 0, 1), 1);
    cr_assert_eq(ph_access(h, 1, 6), NONE);
    QUIET(h);
    ph_destroy(h);
}

/* Pages the home's own ranks hold for writing are taken down to READ first, then sent. */
BOTH_MODES(read_ahead_takes_the_homes_own_writes)
{
    struct ph *h = mk(2, 8, home0, mode, 0);
    uint64_t v[4];

    for (uint64_t p = 0; p < 4; p++) {
        FAULT(h, 0, p, W);
        RUN(h);
        v[p] = ph_write(h, 0, p);
    }
    ph_clear_log(h);
    FAULT_AHEAD(h, 1, 0, R, 4);
    RUN(h);
    cr_assert_eq(ph_nsent(h), 2, "one READ_REQ, one GRANT (got %zu messages)", ph_nsent(h));
    for (uint64_t p = 0; p < 4; p++) {
        cr_assert_eq(ph_access(h, 0, p), R);
        cr_assert_eq(ph_access(h, 1, p), R);
        cr_assert(ph_frame_is(h, 1, p, v[p]), "page %llu: the home's write did not arrive", (unsigned long long)p);
    }
    QUIET(h);
    ph_destroy(h);
}

/* A page another node owns is left out (it needs a FETCH); the rest still come. A page
 * homed elsewhere ends what is asked. */
BOTH_MODES(read_ahead_skips_pages_owned_elsewhere)
{
    static const int home[8] = { 0, 0, 0, 0, 0, 2, 2, 2 };
    struct ph *h = mk(3, 8, home, mode, 0);

    FAULT(h, 2, 2, W);
    RUN(h);
    ph_write(h, 2, 2);
    ph_clear_log(h);
    FAULT_AHEAD(h, 1, 0, R, 8);
    RUN(h);
    cr_assert_eq(ph_nsent(h), 2);
    cr_assert_eq(ph_access(h, 1, 1), R);
    cr_assert_eq(ph_access(h, 1, 2), NONE);
    cr_assert_eq(ph_access(h, 1, 3), R);
    cr_assert_eq(ph_access(h, 1, 4), R);
    cr_assert_eq(ph_access(h, 1, 5), NONE); /* homed on node 2: not asked */
    cr_assert_eq(ph_counter(h, ph_rank(1), DSMP_PAGES_READ_AHEAD), 3);
    FAULT(h, 1, 2, R);
    RUN(h);
    cr_assert_eq(ph_count(h, FETCH, 0, 2), 1);
    cr_assert(ph_frame_is(h, 1, 2, ph_last(h, 2)));
    QUIET(h);
    ph_destroy(h);
}

/* A fault on a page asked for with an earlier one sends nothing: that page's GRANT answers
 * it (I5). One the home could not serve is requested then, with the access faulted for. */
BOTH_MODES(read_ahead_faults_on_asked_pages_wait_for_the_grant)
{
    static const int home[8] = { 0, 0, 0, 0, 0, 0, 0, 0 };
    struct ph *h = mk(3, 8, home, mode, 0);

    FAULT(h, 2, 2, W);
    RUN(h);
    ph_write(h, 2, 2);
    ph_clear_log(h);
    FAULT_AHEAD(h, 1, 0, R, 4);
    FAULT(h, 1, 1, R);
    FAULT(h, 1, 2, W);
    cr_assert_eq(ph_nsent(h), 1, "only the first READ_REQ goes out");
    RUN(h);
    NO_ERRORS(h);
    cr_assert_eq(ph_fault_pending(h, 1, 1), 0);
    cr_assert_eq(ph_count_events(h, 1, PH_EV_GRANT, 1, R), 1); /* its waiter is woken */
    cr_assert_eq(ph_access(h, 1, 2), W);                       /* requested after the GRANT */
    cr_assert_eq(ph_count(h, WRITE_REQ, 1, 0), 1);
    cr_assert_eq(ph_access(h, 1, 3), R);
    QUIET(h);
    ph_destroy(h);
}

/* Pages past the asked page's allocation are not served (a neighbouring block may be being
 * freed); a rank that faulted on one meanwhile gets it by a request of its own. */
BOTH_MODES(read_ahead_stays_inside_the_allocation)
{
    struct ph_config cfg = {
        .ops = &dsmp_sequential_ops, .nnodes = 2, .npages = 16, .page_size = PS, .home = home0,
        .revoke = mode, .check_each_step = 1, .alloc_pages = 8,
    };
    struct ph *h = ph_create(&cfg);

    cr_assert_not_null(h);
    FAULT_AHEAD(h, 1, 3, R, 16);   /* asks 4..15 */
    FAULT(h, 1, 9, R);             /* waits for that answer */
    RUN(h);
    for (uint64_t p = 3; p < 8; p++)
        cr_assert_eq(ph_access(h, 1, p), R, "page %llu", (unsigned long long)p);
    for (uint64_t p = 8; p < 16; p++)
        cr_assert_eq(ph_access(h, 1, p), p == 9 ? R : NONE, "page %llu served past its allocation",
                     (unsigned long long)p);
    cr_assert_eq(ph_counter(h, ph_rank(1), DSMP_PAGES_READ_AHEAD), 4);
    cr_assert_eq(ph_count(h, READ_REQ, 1, 0), 2);
    QUIET(h);
    ph_destroy(h);
}

/* Writes are never batched, and neither is a page whose home is the faulting node. */
Test(sequential, read_ahead_only_for_remote_reads)
{
    struct ph *h = mk(2, 8, home0, PH_REVOKE_SYNC, 0);

    FAULT_AHEAD(h, 1, 0, W, 8);
    RUN(h);
    cr_assert_eq(ph_access(h, 1, 1), NONE);
    FAULT_AHEAD(h, 1, 2, R, 8); /* page 2..7: reads go ahead */
    RUN(h);
    cr_assert_eq(ph_access(h, 1, 7), R);
    FAULT_AHEAD(h, 0, 0, R, 8); /* the home reads its own page back: one page */
    RUN(h);
    cr_assert_eq(ph_access(h, 0, 0), R);
    cr_assert_eq(ph_access(h, 0, 1), R); /* the home's pages were READ already */
    cr_assert_eq(ph_counter(h, ph_rank(0), DSMP_PAGES_READ_AHEAD), 0);
    QUIET(h);
    ph_destroy(h);
}

/* A page reset while the batch waits for the home's own ranks is left out of the GRANT. */
Test(sequential, read_ahead_leaves_out_pages_reset_meanwhile)
{
    struct ph *h = mk(2, 8, home0, PH_REVOKE_DEFERRED, 0);

    for (uint64_t p = 0; p < 3; p++) {
        FAULT(h, 0, p, W);
        RUN(h);
        ph_write(h, 0, p);
    }
    ph_clear_log(h);
    FAULT_AHEAD(h, 1, 0, R, 3);
    cr_assert_eq(ph_deliver(h, 1, 0), 1);
    cr_assert_eq(ph_revokes_pending(h), 3, "the home takes its 3 pages down to READ");
    ph_reset(h, 2, 1);
    RUN(h);
    cr_assert_eq(ph_access(h, 1, 0), R);
    cr_assert_eq(ph_access(h, 1, 1), R);
    cr_assert_eq(ph_access(h, 1, 2), NONE);
    cr_assert_eq(ph_counter(h, ph_rank(1), DSMP_PAGES_READ_AHEAD), 1);
    FAULT(h, 1, 2, R); /* a normal request after the reset */
    RUN(h);
    cr_assert(ph_frame_is(h, 1, 2, 0));
    QUIET(h);
    ph_destroy(h);
}

/* Read-ahead messages that do not match what was asked are refused. */
Test(sequential, read_ahead_malformed_is_eproto)
{
    static const int home[32] = { 0 };
    struct ph *h = mk(2, 32, home, PH_REVOKE_SYNC, 0);
    uint8_t junk[2 * PS] = { 0 };
    dsmw_msg_t m;

    dsmw_init(&m, DSMW__TYPE__READ_REQ); /* more pages than one reply can carry */
    m.page = 0;
    m.node = 1;
    m.origin = (uint32_t)ph_rank(1);
    m.count = DSMP_AHEAD_MAX + 1;
    cr_assert_eq(ph_inject(h, 1, 0, &m, DSMP_NO_FRAME), DSM_EPROTO);
    dsmw_init(&m, DSMW__TYPE__WRITE_REQ); /* writes ask for one page */
    m.page = 0;
    m.node = 1;
    m.origin = (uint32_t)ph_rank(1);
    m.count = 1;
    cr_assert_eq(ph_inject(h, 1, 0, &m, DSMP_NO_FRAME), DSM_EPROTO);

    FAULT_AHEAD(h, 1, 4, R, 3); /* pages 5 and 6 asked */
    dsmw_init(&m, DSMW__TYPE__GRANT); /* a page that was not asked for */
    m.page = 4;
    m.access = R;
    m.origin = (uint32_t)ph_rank(1);
    m.count = 0x4;
    m.data.data = junk;
    m.data.len = PS;
    cr_assert_eq(ph_inject(h, 0, 1, &m, 4), DSM_EPROTO);
    m.count = 0x3; /* two pages, one page of data */
    cr_assert_eq(ph_inject(h, 0, 1, &m, 4), DSM_EPROTO);
    m.count = 0;   /* data with no page */
    cr_assert_eq(ph_inject(h, 0, 1, &m, 4), DSM_EPROTO);
    m.count = 0x1; /* pages ahead of a write grant */
    m.access = W;
    cr_assert_eq(ph_inject(h, 0, 1, &m, 4), DSM_EPROTO);
    cr_assert_eq(ph_access(h, 1, 5), NONE, "a refused GRANT changes nothing");
    ph_discard(h);
    ph_destroy(h);
}

/* ---- randomized schedules ---------------------------------------------------------------- */

static uint32_t rnd(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(*s >> 33);
}

/* Random faults, writes by WRITE holders and random delivery order, invariants checked after
 * every step (check_each_step); then quiescence and liveness. With `ahead`, fault hints go
 * up to it (read-ahead), pages are homed in blocks of 4 so that batches meet owned, shared,
 * busy and asked pages in every order, and reads are twice as frequent as writes. Returns
 * the pages read ahead. */
static uint64_t random_schedule(uint64_t seed, int nnodes, uint64_t npages, int steps, uint32_t ahead)
{
    int home[16];
    uint64_t s = seed, got = 0;
    enum ph_revoke_mode mode = seed % 2 ? PH_REVOKE_DEFERRED : PH_REVOKE_SYNC;
    struct ph *h;
    long left;

    for (uint64_t p = 0; p < npages; p++)
        home[p] = (int)((ahead ? p / 4 + seed : p * 7 + seed) % (uint64_t)nnodes);
    h = ahead ? mk_ahead(nnodes, npages, home, mode, ahead) : mk(nnodes, npages, home, mode, 1);
    for (int i = 0; i < steps; i++) {
        uint32_t what = rnd(&s) % 100;
        int node = (int)(rnd(&s) % (uint32_t)nnodes);
        uint64_t page = rnd(&s) % npages;

        if (what < 35 || (what >= 45 && ph_idle(h))) {
            int acc = ahead ? (rnd(&s) % 3 ? R : W) : (rnd(&s) % 2 ? W : R);

            (void)ph_fault(h, node, page, acc, ph_rank(node) + (int)(rnd(&s) % PH_RANKS_PER_NODE));
        } else if (what < 45) {
            if (ph_access(h, node, page) == W)
                ph_write(h, node, page);
        } else {
            ph_step_random(h, &s);
        }
        cr_assert_eq(ph_errors(h), 0, "seed %llu step %d: %s", (unsigned long long)seed, i, ph_first_error(h));
    }
    left = ph_run_random(h, &s, LIMIT);
    cr_assert_geq(left, 0, "seed %llu: no quiescence", (unsigned long long)seed);
    cr_assert_eq(ph_errors(h), 0, "seed %llu: %s", (unsigned long long)seed, ph_first_error(h));
    {
        const char *why = ph_check_quiescent(h);

        cr_assert_null(why, "seed %llu (%d nodes, %s revoke): %s", (unsigned long long)seed, nnodes,
                       mode == PH_REVOKE_SYNC ? "sync" : "deferred", why ? why : "");
    }
    cr_assert_gt(ph_faults_issued(h), 0);
    for (int r = 0; r < nnodes * PH_RANKS_PER_NODE; r++)
        got += ph_counter(h, r, DSMP_PAGES_READ_AHEAD);
    ph_destroy(h);
    return got;
}

Test(sequential, random_schedules_few_nodes, .timeout = 120)
{
    for (uint64_t seed = 1; seed <= 400; seed++)
        random_schedule(seed, 2 + (int)(seed % 4), 3, 400, 0);
}

Test(sequential, random_schedules_one_hot_page_many_nodes, .timeout = 120)
{
    for (uint64_t seed = 1000; seed < 1200; seed++)
        random_schedule(seed, 8, 1, 600, 0);
}

Test(sequential, random_schedules_many_pages, .timeout = 120)
{
    for (uint64_t seed = 5000; seed < 5060; seed++)
        random_schedule(seed, 5, 8, 1500, 0);
}

Test(sequential, random_schedules_read_ahead, .timeout = 120)
{
    uint64_t ahead = 0;

    for (uint64_t seed = 9000; seed < 9300; seed++)
        ahead += random_schedule(seed, 2 + (int)(seed % 3), 16, 800, 6);
    cr_assert_gt(ahead, 1000, "the schedules read only %llu pages ahead", (unsigned long long)ahead);
    printf("random_schedules_read_ahead: %llu pages read ahead over 300 schedules\n", (unsigned long long)ahead);
}

/* Locked scans (proto_prog.h) with read-ahead, the daemon's revoke semantics and random
 * delivery: every scan sees every increment. */
Test(sequential, lock_scan_read_ahead_random_schedules, .timeout = 120)
{
    uint64_t ahead = pp_lock_scans(&dsmp_sequential_ops, 6, 0, 0).read_ahead;

    cr_assert_gt(ahead, 200, "only %llu pages were read ahead", (unsigned long long)ahead);
}

/* ---- messages out of place ----------------------------------------------------------------- */

static dsmw_msg_t msg(int type, uint64_t page, int access, int node, int origin)
{
    dsmw_msg_t m;

    dsmw_init(&m, (Dsmw__Type)type);
    m.page = page;
    m.access = (uint32_t)access;
    m.node = (uint32_t)node;
    m.origin = (uint32_t)origin;
    return m;
}

Test(sequential, replies_nobody_waits_for_are_eproto)
{
    struct ph *h = mk(3, 2, home0, PH_REVOKE_SYNC, 0);
    dsmw_msg_t m;

    m = msg(INV_ACK, 0, NONE, 1, ph_rank(1));
    cr_assert_eq(ph_inject(h, 1, 0, &m, DSMP_NO_FRAME), DSM_EPROTO, "INV_ACK with no transaction running");
    m = msg(FETCH_REPLY, 0, NONE, 1, ph_rank(1));
    cr_assert_eq(ph_inject(h, 1, 0, &m, 0), DSM_EPROTO, "FETCH_REPLY with no transaction running");
    m = msg(INV_ACK, 1, NONE, 0, ph_rank(0));
    cr_assert_eq(ph_inject(h, 0, 2, &m, DSMP_NO_FRAME), DSM_EPROTO, "INV_ACK at a node that is not the home");
    NO_ERRORS(h);
    /* nothing was changed by them: a normal read still takes two messages */
    FAULT(h, 1, 0, R);
    RUN(h);
    cr_assert_eq(ph_nsent(h), 2);
    QUIET(h);
    ph_destroy(h);
}

Test(sequential, requests_for_pages_homed_elsewhere_are_eproto)
{
    static const int home[2] = { 0, 1 };
    struct ph *h = mk(3, 2, home, PH_REVOKE_SYNC, 0);
    dsmw_msg_t m;

    m = msg(READ_REQ, 1, R, 2, ph_rank(2));
    cr_assert_eq(ph_inject(h, 2, 0, &m, DSMP_NO_FRAME), DSM_EPROTO, "READ_REQ for page 1 at node 0");
    m = msg(WRITE_REQ, 0, W, 2, ph_rank(2));
    cr_assert_eq(ph_inject(h, 2, 1, &m, DSMP_NO_FRAME), DSM_EPROTO, "WRITE_REQ for page 0 at node 1");
    cr_assert_eq(ph_nsent(h), 0, "a refused request starts nothing");
    NO_ERRORS(h);
    ph_destroy(h);
}

Test(sequential, non_coherence_types_are_eproto)
{
    struct ph *h = mk(2, 1, home0, PH_REVOKE_SYNC, 0);
    static const int types[] = { DSMW__TYPE__LOCK_REQ, DSMW__TYPE__BARRIER_ARRIVE, DSMW__TYPE__ALLOC_REQ,
                                 DSMW__TYPE__ABORT };

    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        dsmw_msg_t m = msg(types[i], 0, NONE, 1, ph_rank(1));

        cr_assert_eq(ph_inject(h, 1, 0, &m, DSMP_NO_FRAME), DSM_EPROTO, "%s", dsmw_type_name(types[i]));
    }
    NO_ERRORS(h);
    ph_destroy(h);
}

Test(sequential, reply_with_the_wrong_framing_is_eproto)
{
    struct ph *h = mk(3, 1, home0, PH_REVOKE_SYNC, 0);
    dsmw_msg_t m;
    uint64_t v;

    FAULT(h, 1, 0, W);
    RUN(h);
    v = ph_write(h, 1, 0);
    FAULT(h, 2, 0, R);
    cr_assert_eq(ph_deliver(h, 2, 0), 1);            /* the home now waits for node 1's FETCH_REPLY */
    cr_assert_eq(ph_queued(h, 0, 1), 1);
    m = msg(FETCH_REPLY, 0, NONE, 0, ph_rank(2));
    cr_assert_eq(ph_inject(h, 1, 0, &m, DSMP_NO_FRAME), DSM_EPROTO, "FETCH_REPLY without its frame");
    m = msg(INV_ACK, 0, NONE, 0, ph_rank(2));
    /* an INV_ACK cannot carry a frame: the framed flag alone must be refused */
    cr_assert_eq(ph_access(h, 0, 0), NONE);
    cr_assert_eq(ph_inject(h, 1, 0, &m, 0), DSM_EPROTO, "INV_ACK with a frame");
    NO_ERRORS(h);
    /* the real reply still completes the transaction correctly */
    RUN(h);
    expect_access(h, 0, (int[]){ R, R, R }, 3);
    cr_assert(ph_frame_is(h, 2, 0, v));
    QUIET(h);
    ph_destroy(h);
}

/*
 * A reply of the other kind from the very node the home asked: an INV_ACK where a FETCH_REPLY
 * is due would end a read with the home's stale frame sent to the reader; a FETCH_REPLY
 * where an INV_ACK is due is an answer to a question never asked.
 */
Test(sequential, reply_of_the_wrong_kind_from_an_asked_node_is_eproto)
{
    struct ph *h = mk(4, 1, home0, PH_REVOKE_SYNC, 0);
    dsmw_msg_t m;

    FAULT(h, 1, 0, W);
    RUN(h);
    ph_write(h, 1, 0);
    FAULT(h, 2, 0, R);
    cr_assert_eq(ph_deliver(h, 2, 0), 1);            /* the home waits for node 1's FETCH_REPLY */
    m = msg(INV_ACK, 0, NONE, 0, ph_rank(2));
    cr_assert_eq(ph_inject(h, 1, 0, &m, DSMP_NO_FRAME), DSM_EPROTO, "INV_ACK where a FETCH_REPLY is due");
    cr_assert_eq(ph_count(h, GRANT, 0, 2), 0, "the reader was granted the home's stale copy");
    RUN(h);
    QUIET(h);

    ph_clear_log(h);
    FAULT(h, 3, 0, W);                               /* copies at 0, 1, 2: INVs to 1 and 2 */
    cr_assert_eq(ph_deliver(h, 3, 0), 1);
    cr_assert_eq(ph_count(h, INV, 0, 1), 1);
    m = msg(FETCH_REPLY, 0, NONE, 0, ph_rank(3));
    cr_assert_eq(ph_inject(h, 1, 0, &m, 0), DSM_EPROTO, "FETCH_REPLY where an INV_ACK is due");
    ph_destroy(h);
}

/*
 * The next two tests expect the module to refuse messages that only a broken or confused
 * peer could send in this state (dsmp.h: "DSM_EPROTO for a message that makes no sense in
 * the page's state"): replies from nodes that were not asked, and orders (GRANT, INV,
 * FETCH) from a node that is not the page's home. Accepting them corrupts the directory
 * (e.g. WRITE granted while two nodes still hold READ, then the honest acks are refused).
 */
Test(sequential, ack_from_a_node_that_was_not_asked_is_eproto)
{
    struct ph *h = mk(4, 1, home0, PH_REVOKE_SYNC, 0);
    dsmw_msg_t m;

    FAULT(h, 1, 0, R);
    RUN(h);
    FAULT(h, 2, 0, R);
    RUN(h);
    FAULT(h, 3, 0, W);
    cr_assert_eq(ph_deliver(h, 3, 0), 1);            /* INVs out to 1 and 2, the home waits for two acks */
    cr_assert_eq(ph_queued(h, 0, PH_ANY), 2);
    m = msg(INV_ACK, 0, NONE, 3, ph_rank(3));
    cr_assert_eq(ph_inject(h, 3, 0, &m, DSMP_NO_FRAME), DSM_EPROTO,
                 "INV_ACK from node 3, which was sent no INV, was accepted");
    m = msg(FETCH_REPLY, 0, NONE, 3, ph_rank(3));
    cr_assert_eq(ph_inject(h, 3, 0, &m, 0), DSM_EPROTO,
                 "FETCH_REPLY while the home waits for INV_ACKs was accepted");
    /* with the forged replies refused, the writer is granted only after both real acks */
    cr_assert_eq(ph_count(h, GRANT, 0, 3), 0, "WRITE granted while nodes 1 and 2 still hold READ");
    ph_destroy(h);
}

Test(sequential, coherence_orders_from_a_node_that_is_not_the_home_are_eproto)
{
    static const int home[1] = { 0 };
    struct ph *h = mk(3, 1, home, PH_REVOKE_SYNC, 0);
    dsmw_msg_t m;

    FAULT(h, 2, 0, R);                               /* node 2 waits for a grant from node 0 */
    m = msg(GRANT, 0, W, 1, ph_rank(2));
    cr_assert_eq(ph_inject(h, 1, 2, &m, DSMP_NO_FRAME), DSM_EPROTO, "GRANT from node 1, not the home");
    cr_assert_eq(ph_access(h, 2, 0), NONE, "a forged GRANT gave node 2 access");
    RUN(h);
    cr_assert_eq(ph_access(h, 2, 0), R);
    m = msg(INV, 0, NONE, 1, ph_rank(1));
    cr_assert_eq(ph_inject(h, 1, 2, &m, DSMP_NO_FRAME), DSM_EPROTO, "INV from node 1, not the home");
    m = msg(FETCH, 0, NONE, 1, ph_rank(1));
    cr_assert_eq(ph_inject(h, 1, 2, &m, DSMP_NO_FRAME), DSM_EPROTO, "FETCH from node 1, not the home");
    ph_destroy(h);
}

/* ---- reset -------------------------------------------------------------------------------- */

BOTH_MODES(reset_restores_the_initial_state)
{
    static const int home[4] = { 0, 1, 2, 0 };
    struct ph *h = mk(3, 4, home, mode, 1);

    FAULT(h, 1, 0, W);      /* node 1 owns page 0 */
    FAULT(h, 2, 1, R);      /* node 2 shares page 1 */
    FAULT(h, 0, 2, W);      /* node 0 owns page 2 */
    FAULT(h, 2, 3, W);      /* node 2 owns page 3 */
    RUN(h);
    QUIET(h);

    ph_reset(h, 0, 3);      /* page 3 keeps its state */
    NO_ERRORS(h);
    for (uint64_t p = 0; p < 3; p++)
        for (int n = 0; n < 3; n++) {
            cr_assert_eq(ph_access(h, n, p), n == home[p] ? R : NONE, "page %llu node %d", (unsigned long long)p, n);
            cr_assert(ph_frame_is(h, n, p, 0), "page %llu node %d not zero", (unsigned long long)p, n);
        }
    expect_access(h, 3, (int[]){ NONE, NONE, W }, 3);

    /* the directory forgot the owner: a read is served by the home, no FETCH */
    ph_clear_log(h);
    FAULT(h, 2, 0, R);
    RUN(h);
    cr_assert_eq(ph_nsent(h), 2);
    expect_sent(h, 0, READ_REQ, 2, 0, 0, 0);
    expect_sent(h, 1, GRANT, 0, 2, 0, 1);
    /* and the old sharer of page 1 is not in the copyset any more: no INV to node 2 */
    ph_clear_log(h);
    FAULT(h, 0, 1, W);
    RUN(h);
    cr_assert_eq(ph_count(h, INV, PH_ANY, PH_ANY), 0);
    cr_assert_eq(ph_nsent(h), 2);
    /* page 3 still has its owner: a read goes through FETCH */
    ph_clear_log(h);
    FAULT(h, 1, 3, R);
    RUN(h);
    cr_assert_eq(ph_count(h, FETCH, 0, 2), 1);
    QUIET(h);
    ph_destroy(h);
}

Test(sequential, reset_drops_queued_requests_and_ends_the_transaction)
{
    struct ph *h = mk(4, 1, home0, PH_REVOKE_SYNC, 0);

    FAULT(h, 1, 0, W);
    RUN(h);
    FAULT(h, 2, 0, R);
    FAULT(h, 3, 0, W);
    cr_assert_eq(ph_deliver(h, 2, 0), 1);   /* running: FETCH to node 1 */
    cr_assert_eq(ph_deliver(h, 3, 0), 1);   /* queued behind it */
    ph_discard(h);                          /* the region is freed: in-flight traffic is gone */
    ph_reset(h, 0, 1);
    NO_ERRORS(h);
    expect_access(h, 0, (int[]){ R, NONE, NONE, NONE }, 4);
    ph_clear_log(h);
    FAULT(h, 3, 0, W);                      /* not busy any more: starts at once */
    RUN(h);
    cr_assert_eq(ph_nsent(h), 2, "the reset page still looked busy or kept its old owner");
    expect_access(h, 0, (int[]){ NONE, NONE, NONE, W }, 4);
    QUIET(h);
    ph_destroy(h);                          /* LeakSanitizer: the dropped queue entry was freed */
}

/* ---- eviction (bounded cache) -------------------------------------------------------------- */

/* Node `node` takes WRITE on page, writes it, and starts evicting it (log cleared first):
 * the value written. */
static uint64_t owner_evicts(struct ph *h, int node, uint64_t page, int *done)
{
    uint64_t v;

    FAULT(h, node, page, W);
    RUN(h);
    v = ph_write(h, node, page);
    ph_clear_log(h);
    cr_assert_eq(ph_evict(h, node, page, done), 1);
    return v;
}

/* A read copy goes back: EVICT, the home's INV and its ack, EVICTED; the home forgets the
 * copy (a later write there invalidates nobody) and a new read brings the data again. */
BOTH_MODES(evict_read_copy)
{
    struct ph *h = mk(2, 1, home0, mode, 0);
    uint64_t v;
    int done = 0;

    FAULT(h, 0, 0, W);
    RUN(h);
    v = ph_write(h, 0, 0);
    FAULT(h, 1, 0, R);
    RUN(h);
    ph_clear_log(h);
    cr_assert_eq(ph_evict(h, 1, 0, &done), 1);
    RUN(h);
    cr_assert_eq(done, 1, "the eviction never finished");
    expect_sent(h, 0, EVICT, 1, 0, 0, 0);
    expect_sent(h, 1, INV, 0, 1, 0, 0);
    expect_sent(h, 2, INV_ACK, 1, 0, 0, 0);
    expect_sent(h, 3, EVICTED, 0, 1, 0, 0);
    cr_assert_eq(ph_nsent(h), 4);
    expect_access(h, 0, (int[]){ R, NONE }, 2);
    ph_clear_log(h);
    FAULT(h, 0, 0, W);                      /* node 1 left the copyset: no INV */
    RUN(h);
    cr_assert_eq(ph_count(h, INV, PH_ANY, PH_ANY), 0);
    v = ph_write(h, 0, 0);
    FAULT(h, 1, 0, R);                      /* its frame was punched: the data comes again */
    RUN(h);
    cr_assert(ph_frame_is(h, 1, 0, v));
    QUIET(h);
    ph_destroy(h);
}

/* An owner's dirty page goes back with its data and ownership (FETCH(NONE)): the home holds
 * the writes, and a third node reads them from the home without asking the evicter. */
BOTH_MODES(evict_dirty_page_writes_it_back)
{
    struct ph *h = mk(3, 1, home0, mode, 0);
    uint64_t v;
    int done = 0;

    v = owner_evicts(h, 1, 0, &done);
    RUN(h);
    cr_assert_eq(done, 1);
    expect_sent(h, 0, EVICT, 1, 0, 0, 0);
    expect_sent(h, 1, FETCH, 0, 1, 0, 0);
    expect_sent(h, 2, FETCH_REPLY, 1, 0, 0, 1);
    expect_sent(h, 3, EVICTED, 0, 1, 0, 0);
    cr_assert(ph_frame_is(h, 0, 0, v), "the home lacks the evicted writes");
    cr_assert_eq(ph_counter(h, ph_rank(1), DSMP_WRITEBACKS), 1);
    expect_access(h, 0, (int[]){ R, NONE, NONE }, 3);
    ph_clear_log(h);
    FAULT(h, 2, 0, R);
    RUN(h);
    cr_assert_eq(ph_count(h, FETCH, PH_ANY, PH_ANY), 0, "the home still thought node 1 owned the page");
    cr_assert(ph_frame_is(h, 2, 0, v));
    QUIET(h);
    ph_destroy(h);
}

/* A page the node holds no copy of goes at once, without a message. */
Test(sequential, evict_page_without_copy_needs_no_message)
{
    struct ph *h = mk(2, 1, home0, PH_REVOKE_SYNC, 0);
    int done = 0;

    cr_assert_eq(ph_evict(h, 1, 0, &done), 1);
    cr_assert_eq(done, 1);
    cr_assert_eq(ph_nsent(h), 0);
    cr_assert_eq(ph_evict(h, 0, 0, &done), -1, "a home page was evicted");
    QUIET(h);
    ph_destroy(h);
}

static void count_done(dsmp_t *p, void *arg)
{
    (void)p;
    ++*(int *)arg;
}

/* A page with a request out is busy (I5): the module declines. */
Test(sequential, evict_declines_a_page_with_a_request_out)
{
    struct ph *h = mk(2, 1, home0, PH_REVOKE_SYNC, 0);
    int done = 0;

    FAULT(h, 1, 0, R);
    cr_assert_eq(dsmp_sequential_ops.evict(ph_proto(h, 1), 0, count_done, &done), 0);
    RUN(h);
    cr_assert_eq(done, 0);
    QUIET(h);
    ph_destroy(h);
}

/* Node 2's write reaches the home before node 1's EVICT: the INV of the write takes node 1's
 * copy, and the eviction then finds nothing to take (EVICTED at once). */
BOTH_MODES(evict_after_a_write_took_the_copy)
{
    struct ph *h = mk(3, 1, home0, mode, 0);
    int done = 0;

    FAULT(h, 1, 0, R);
    RUN(h);
    FAULT(h, 2, 0, W);
    cr_assert_eq(ph_deliver(h, 2, 0), 1);   /* WRITE_REQ: INV to node 1 */
    cr_assert_eq(ph_evict(h, 1, 0, &done), 1);
    RUN(h);
    cr_assert_eq(done, 1);
    cr_assert_eq(ph_count(h, INV, 0, 1), 1, "node 1 was invalidated twice");
    expect_access(h, 0, (int[]){ NONE, NONE, W }, 3);
    QUIET(h);
    ph_destroy(h);
}

/* A rank faulting on a page being evicted waits for EVICTED, then asks again. */
BOTH_MODES(evict_then_fault_waits_and_refetches)
{
    struct ph *h = mk(2, 1, home0, mode, 0);
    uint64_t v;
    int done = 0;

    v = owner_evicts(h, 1, 0, &done);
    cr_assert_eq(ph_deliver(h, 1, 0), 1);   /* EVICT: FETCH(NONE) to node 1 */
    cr_assert_eq(ph_deliver(h, 0, 1), 1);   /* node 1 gives the page up */
    if (mode == PH_REVOKE_DEFERRED)
        cr_assert_eq(ph_complete_revoke(h, 0), 1);
    cr_assert_eq(ph_access(h, 1, 0), NONE);
    FAULT(h, 1, 0, R);                      /* EVICTED not there yet: the fault waits */
    cr_assert_eq(ph_count(h, READ_REQ, PH_ANY, PH_ANY), 0, "a request went out during the eviction (I5)");
    RUN(h);
    cr_assert_eq(done, 1);
    cr_assert_eq(ph_access(h, 1, 0), R);
    cr_assert(ph_frame_is(h, 1, 0, v), "the evicted writes were lost");
    QUIET(h);
    ph_destroy(h);
}

/* A reset drops an eviction under way: its late EVICTED is ignored. */
Test(sequential, reset_drops_an_eviction)
{
    struct ph *h = mk(2, 1, home0, PH_REVOKE_SYNC, 0);
    int done = 0;
    dsmw_msg_t m;

    FAULT(h, 1, 0, R);
    RUN(h);
    cr_assert_eq(ph_evict(h, 1, 0, &done), 1);
    ph_discard(h);
    ph_reset(h, 0, 1);
    dsmw_init(&m, DSMW__TYPE__EVICTED);
    m.page = 0;
    m.origin = 0;
    cr_assert_eq(ph_inject(h, 0, 1, &m, DSMP_NO_FRAME), DSM_OK);
    cr_assert_eq(done, 0);
    FAULT(h, 1, 0, R);
    RUN(h);
    QUIET(h);
    ph_destroy(h);
}

/* Malformed eviction traffic is refused; traffic that crossed a free is answered. */
Test(sequential, malformed_eviction_messages)
{
    static const int home[3] = { 0, 1, DSMP_NO_HOME };
    struct ph *h = mk(3, 3, home, PH_REVOKE_SYNC, 0);
    int done = 0;
    dsmw_msg_t m;

    dsmw_init(&m, DSMW__TYPE__EVICT);
    m.page = 0;
    m.node = 0;
    m.origin = 0;
    cr_assert_eq(ph_inject(h, 0, 0, &m, DSMP_NO_FRAME), DSM_EPROTO, "the home evicting from itself");
    m.node = 2;
    cr_assert_eq(ph_inject(h, 2, 1, &m, DSMP_NO_FRAME), DSM_EPROTO, "EVICT to a node that is not the home");
    cr_assert_eq(ph_inject(h, 1, 0, &m, DSMP_NO_FRAME), DSM_EPROTO, "EVICT naming another node");
    /* a page freed meanwhile (no home any more): EVICTED at once */
    m.page = 2;
    ph_clear_log(h);
    cr_assert_eq(ph_inject(h, 2, 0, &m, DSMP_NO_FRAME), DSM_OK);
    expect_sent(h, 0, EVICTED, 0, 2, 2, 0);
    cr_assert_eq(ph_sent_at(h, 0)->count, 1, "the answer does not say nothing was taken");
    ph_discard(h);
    FAULT(h, 2, 0, R);
    RUN(h);
    cr_assert_eq(ph_evict(h, 2, 0, &done), 1);
    dsmw_init(&m, DSMW__TYPE__EVICTED);
    m.page = 0;
    cr_assert_eq(ph_inject(h, 1, 2, &m, DSMP_NO_FRAME), DSM_EPROTO, "EVICTED from a node that is not the home");
    cr_assert_eq(ph_inject(h, 0, 2, &m, DSMP_NO_FRAME), DSM_EPROTO,
                 "EVICTED saying the home took a copy the node still holds");
    /* a home that reset the page answers without taking the copy: the evicter drops it */
    m.count = 1;
    cr_assert_eq(ph_inject(h, 0, 2, &m, DSMP_NO_FRAME), DSM_OK);
    cr_assert_eq(done, 1);
    cr_assert_eq(ph_access(h, 2, 0), NONE);
    RUN(h);                                 /* the real exchange: INV, INV_ACK, EVICTED (ignored) */
    QUIET(h);
    ph_destroy(h);
}

/* A free waits for the evictions crossing it (settled): as evicter until EVICTED, as home
 * while the eviction's transaction runs. */
Test(sequential, settled_waits_for_evictions)
{
    struct ph *h = mk(2, 2, home0, PH_REVOKE_SYNC, 0);
    int done = 0;

    FAULT(h, 1, 0, W);
    RUN(h);
    ph_write(h, 1, 0);
    cr_assert(dsmp_sequential_ops.settled(ph_proto(h, 1), 0, 2));
    cr_assert_eq(ph_evict(h, 1, 0, &done), 1);
    cr_assert(!dsmp_sequential_ops.settled(ph_proto(h, 1), 0, 2), "the evicter has an EVICT out");
    cr_assert(dsmp_sequential_ops.settled(ph_proto(h, 1), 1, 1), "another page is busy");
    cr_assert_eq(ph_deliver(h, 1, 0), 1);   /* EVICT: FETCH to node 1 */
    cr_assert(!dsmp_sequential_ops.settled(ph_proto(h, 0), 0, 1), "the home's transaction runs");
    RUN(h);
    cr_assert_eq(done, 1);
    cr_assert(dsmp_sequential_ops.settled(ph_proto(h, 0), 0, 2));
    cr_assert(dsmp_sequential_ops.settled(ph_proto(h, 1), 0, 2));
    QUIET(h);
    ph_destroy(h);
}

/* Random schedules with evictions at random (the daemon's rules: ph_evict), invariants after
 * every step, then quiescence: every eviction done, no write lost. */
static uint64_t random_schedule_evict(uint64_t seed, int nnodes, uint64_t npages, int steps, uint32_t ahead)
{
    int home[16];
    uint64_t s = seed, ev;
    enum ph_revoke_mode mode = seed % 2 ? PH_REVOKE_DEFERRED : PH_REVOKE_SYNC;
    struct ph *h;

    for (uint64_t p = 0; p < npages; p++)
        home[p] = (int)((p / 2 + seed) % (uint64_t)nnodes);
    h = mk_ahead(nnodes, npages, home, mode, ahead);
    ph_set_evict_pct(h, 15);
    for (int i = 0; i < steps; i++) {
        uint32_t what = rnd(&s) % 100;
        int node = (int)(rnd(&s) % (uint32_t)nnodes);
        uint64_t page = rnd(&s) % npages;

        if (what < 30 || (what >= 40 && ph_idle(h)))
            (void)ph_fault(h, node, page, rnd(&s) % 2 ? W : R, ph_rank(node));
        else if (what < 40 && ph_access(h, node, page) == W)
            ph_write(h, node, page);
        else
            ph_step_random(h, &s);
        cr_assert_eq(ph_errors(h), 0, "seed %llu step %d: %s", (unsigned long long)seed, i, ph_first_error(h));
    }
    cr_assert_geq(ph_run_random(h, &s, LIMIT), 0, "seed %llu: no quiescence", (unsigned long long)seed);
    cr_assert_eq(ph_errors(h), 0, "seed %llu: %s", (unsigned long long)seed, ph_first_error(h));
    {
        const char *why = ph_check_quiescent(h);

        cr_assert_null(why, "seed %llu: %s", (unsigned long long)seed, why ? why : "");
    }
    ev = ph_evictions(h);
    ph_destroy(h);
    return ev;
}

Test(sequential, random_schedules_with_evictions, .timeout = 120)
{
    uint64_t ev = 0;

    for (uint64_t seed = 20000; seed < 20300; seed++)
        ev += random_schedule_evict(seed, 2 + (int)(seed % 4), 1 + seed % 6, 600, seed % 3 ? 0 : 4);
    cr_assert_gt(ev, 3000, "only %llu evictions over the schedules", (unsigned long long)ev);
    printf("random_schedules_with_evictions: %llu evictions over 300 schedules\n", (unsigned long long)ev);
}

/* Locked scans with pages evicted at random: every scan sees every increment. */
Test(sequential, lock_scan_with_evictions, .timeout = 120)
{
    uint64_t ev = pp_lock_scans(&dsmp_sequential_ops, 6, 1, 20).evictions;

    cr_assert_gt(ev, 500, "only %llu evictions", (unsigned long long)ev);
}

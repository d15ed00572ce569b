/*
 * test_lockq.c - the lock manager's table (daemon/sync/lockq.c) and node 0's barrier count
 * (daemon/sync/gather.h), the code the daemon and the protocol harness share: FIFO grants,
 * a try of a held lock, unlocks by the holder only, arrivals of the current epoch only.
 */
#include <criterion/criterion.h>

#include "sync/gather.h"
#include "sync/lockq.h"

static dsmw_msg_t req(uint32_t lock, int node, int origin, uint64_t token, int try)
{
    dsmw_msg_t m;

    dsmw_init(&m, DSMW__TYPE__LOCK_REQ);
    m.lock = lock;
    m.node = (uint32_t)node;
    m.origin = (uint32_t)origin;
    m.seq = token;
    m.count = (uint64_t)try;
    return m;
}

Test(lockq, grants_in_fifo_order_and_only_the_holder_unlocks)
{
    struct dsmd_lockq *q = dsmd_lockq_new(4);
    struct dsmd_lockq_waiter *g;
    dsmw_msg_t m;

    cr_assert_not_null(q);
    m = req(7, 0, 10, 100, 0);
    cr_assert_eq(dsmd_lockq_request(q, &m, &g), DSM_OK);
    cr_assert(g != NULL && g->origin == 10 && g->token == 100 && g->lock == 7, "a free lock is granted at once");
    dsmd_lockq_done(g);
    for (int r = 11; r <= 13; r++) {
        m = req(7, r - 10, r, (uint64_t)r * 10, 0);
        cr_assert_eq(dsmd_lockq_request(q, &m, &g), DSM_OK);
        cr_assert_null(g, "a held lock queues the request");
    }
    m = req(7, 4, 14, 140, 1);
    cr_assert_eq(dsmd_lockq_request(q, &m, &g), DSM_EBUSY, "a try of a held lock");
    cr_assert_null(g);
    cr_assert_eq(dsmd_lockq_release(q, 7, 11, &g), DSM_EPROTO, "an unlock by a waiter, not the holder");
    cr_assert_eq(dsmd_lockq_release(q, 8, 10, &g), DSM_EPROTO, "an unlock of a lock nobody holds");
    for (int r = 10; r <= 12; r++) {
        cr_assert_eq(dsmd_lockq_release(q, 7, r, &g), DSM_OK);
        cr_assert(g != NULL && g->origin == r + 1 && g->token == (uint64_t)(r + 1) * 10,
                  "the lock passes to the longest waiter (rank %d)", r + 1);
        dsmd_lockq_done(g);
    }
    cr_assert_eq(dsmd_lockq_release(q, 7, 13, &g), DSM_OK);
    cr_assert_null(g, "the try was never queued: the lock is free");
    m = req(7, 4, 14, 141, 1);
    cr_assert_eq(dsmd_lockq_request(q, &m, &g), DSM_OK);
    cr_assert(g != NULL && g->origin == 14, "a try of a free lock takes it");
    dsmd_lockq_done(g);
    dsmd_lockq_free(q);
}

Test(gather, arrivals_of_the_current_epoch_only)
{
    struct dsmd_gather_mgr g = { 0 };

    for (int round = 0; round < 3; round++) {
        cr_assert_eq(dsmd_gather_arrive(&g, (uint64_t)round + 1), DSM_EPROTO, "an arrival from the future");
        for (int n = 0; n < 3; n++) {
            cr_assert_eq(dsmd_gather_complete(&g, 3), 0, "%d of 3 arrived", n);
            cr_assert_eq(dsmd_gather_arrive(&g, (uint64_t)round), DSM_OK);
        }
        cr_assert_eq(dsmd_gather_complete(&g, 3), 1, "all 3 arrived: released");
        cr_assert_eq(g.epoch, (uint64_t)round + 1);
        cr_assert_eq(dsmd_gather_arrive(&g, (uint64_t)round), DSM_EPROTO, "an arrival at a released barrier");
    }
}

/*
 * lockq.h - the lock manager's table: for each lock id a holder and a FIFO of waiting
 * requests. Pure state, no messages: daemon/sync.c drives it from LOCK_REQ and UNLOCK,
 * and the protocol test harness (tests/unit/proto_harness.c) drives the same code, so the
 * two cannot disagree on what a manager accepts.
 *
 * Decided once, here: a request of a held lock waits in FIFO order (a try is refused
 * instead, DSM_EBUSY, and nothing is queued); an UNLOCK from a rank that does not hold the
 * lock is DSM_EPROTO (every node checks its ranks' unlocks before sending one, so such a
 * message comes from a broken peer, whose messages the daemon stops taking).
 */
#ifndef DSMD_LOCKQ_H
#define DSMD_LOCKQ_H

#include <stddef.h>
#include <stdint.h>

#include "dsm_status.h"
#include "wire.h"

/* A waiting (or just granted) request: whom to answer and the acquirer's clock, for the
 * module's fill_grant. */
struct dsmd_lockq_waiter {
    struct dsmd_lockq_waiter *next;
    uint32_t lock;
    int      node, origin;
    uint64_t token;
    size_t   n_vclock;
    uint64_t vclock[];
};

struct dsmd_lockq;

/* A table sized for about `buckets` locks in use (a power of two is not needed). */
struct dsmd_lockq *dsmd_lockq_new(size_t buckets);
void dsmd_lockq_free(struct dsmd_lockq *q);

/* LOCK_REQ m (lock, node, origin, seq as the token, vclock; count != 0 for a try). When
 * the lock is free, *grant gets the request, now the holder: the caller sends the grant
 * and frees it (dsmd_lockq_done). Otherwise *grant is NULL and the request waits (a try:
 * DSM_EBUSY, nothing queued). DSM_ENOMEM when out of memory. */
dsm_status_t dsmd_lockq_request(struct dsmd_lockq *q, const dsmw_msg_t *m, struct dsmd_lockq_waiter **grant);

/* UNLOCK of `lock` by rank `origin`: DSM_EPROTO if it does not hold it; else the lock goes
 * to the next waiter, returned in *grant (NULL: the lock is free now) as above. */
dsm_status_t dsmd_lockq_release(struct dsmd_lockq *q, uint32_t lock, int origin, struct dsmd_lockq_waiter **grant);

void dsmd_lockq_done(struct dsmd_lockq_waiter *w);

/* Each held lock: fn(arg, lock, holder, first waiter or NULL). */
void dsmd_lockq_each_held(const struct dsmd_lockq *q,
                          void (*fn)(void *arg, uint32_t lock, int holder, const struct dsmd_lockq_waiter *waiters),
                          void *arg);

#endif

/*
 * proto_harness.h - an in-process multi-node harness for consistency protocol modules
 * (consistency/include/dsmp.h), used by the protocol unit suites.
 *
 * N simulated nodes live in one process, each with its own module instance (created through
 * the module's ops table), its own frame memory and its own node-level access per page. The
 * services table the harness lends each node does what the daemon would:
 *   - send() encodes the message with dsmw_encode and queues it on the FIFO of its (src, dst)
 *     channel (self included); an attached frame is snapshotted at send time. Delivery
 *     decodes with dsmw_decode (so the wire layer checks every message), writes the snapshot
 *     into the receiver's frame of the same page, then calls the receiver's message hook.
 *   - grant() / set_access() / revoke() change the node-level access and are logged;
 *     revoke() calls `done` at once (PH_REVOKE_SYNC) or queues it (PH_REVOKE_DEFERRED) until
 *     the test or the scheduler completes it.
 *   - timer() records the requested delay; the timer fires only when the test calls ph_tick().
 *   - locks and barriers run as daemon/sync.c runs them, driving the module's sync hooks
 *     (ph_lock, ph_unlock, ph_barrier); their messages travel through the same queues.
 * Nothing runs behind the test's back: messages move only in ph_deliver / ph_step_* / ph_run*,
 * and every run has a step limit. Anything a module does that a daemon would not accept
 * (a grant with no fault outstanding, a revoke that raises access, a message the wire layer
 * rejects, a hook returning an error...) is recorded as a harness error; with check_each_step
 * the single-writer and data invariants are also checked after every step.
 */
#ifndef PROTO_HARNESS_H
#define PROTO_HARNESS_H

#include <stddef.h>
#include <stdint.h>

#include "dsmp.h"

#define PH_MAX_NODES       8
#define PH_MAX_LOCKS       64  /* lock ids the harness's lock managers know: 0 .. PH_MAX_LOCKS-1 */
#define PH_RANKS_PER_NODE  2   /* rank r lives on node r / PH_RANKS_PER_NODE */
#define PH_ANY             (-1)

enum ph_revoke_mode { PH_REVOKE_SYNC, PH_REVOKE_DEFERRED };

struct ph_config {
    const struct dsmp_ops *ops;
    int      nnodes;            /* 1 .. PH_MAX_NODES */
    uint64_t npages;
    size_t   page_size;         /* a multiple of 8 */
    const int *home;            /* home node of every page (npages entries) */
    enum ph_revoke_mode revoke;
    int      write_on_grant;    /* a WRITE grant is followed at once by a write of a new value */
    int      check_each_step;   /* check the invariants after every step (errors on violation) */
    /* Revocations and faults exactly as the daemon handles them (daemon/pages.c): revoke()
     * only ever lowers the access (a revoke to a level above the current one changes
     * nothing and is not an error), and a fault on a page with revocations pending waits
     * until they are done, then is satisfied by the access the page has then, or handed
     * to fault() (so does a refault), and ph_step_random completes one page's
     * revocations in the order they were asked for. Off: the behaviour the sequential
     * suite was written against. */
    int      daemon_revoke;
    /* Read-ahead: the largest `ahead` hint fault() gets (0 or 1: always 1). Hints vary from
     * fault to fault over [1, ahead], as a daemon's scan detection would, deterministically. */
    uint32_t ahead;
    /* Allocations, for svc->alloc_end: consecutive blocks of this many pages from page 0
     * (0: the whole space is one allocation). */
    uint64_t alloc_pages;
    /* Bounded cache: each ph_step_random first tries, with this chance in percent, to evict
     * a random page of a random node as the daemon would (ph_evict). 0: never. */
    int      evict_pct;
    /* svc->partial: the node may hold only some pages (what a bounded cache tells a module);
     * 0 also runs causal with full replicas (DSM_CAUSAL_REPLICAS=full). */
    int      partial;
    /* svc->mapped given: a node's copy counts as its rank's mapping while the node may
     * access the page (release then fetches pages again at acquires, fetch_again). 0: no
     * svc->mapped. */
    int      mapped;
};

enum ph_event_kind { PH_EV_GRANT, PH_EV_SET_ACCESS, PH_EV_REVOKE };

/* One call of grant / set_access / revoke by a node's module. */
struct ph_event {
    int node;
    enum ph_event_kind kind;
    uint64_t page;
    int access;
};

/* One message a module (or the harness's lock and barrier managers) sent. */
struct ph_sent {
    int src, dst, type;
    uint64_t page;
    int access, origin, node;
    int framed;
    uint32_t lock;
    size_t data_len;                 /* bytes in the `data` field */
    uint64_t count;
    int n_vclock;                    /* entries in `vclock` (at most PH_MAX_NODES kept) */
    uint64_t vclock[PH_MAX_NODES];
};

struct ph;

/* Create the nodes and reset every page (home READ, others NONE). NULL on failure (logged
 * to stderr); a module whose create() fails also gives NULL. */
struct ph *ph_create(const struct ph_config *cfg);
void ph_destroy(struct ph *h);

dsmp_t *ph_proto(struct ph *h, int node);
int ph_rank(int node);   /* the first rank of a node */

/* A rank of `node` needs `access` to page: calls the module's fault(). Returns 0, or -1
 * (and calls nothing) when the node already has that access or a fault is outstanding. */
int ph_fault(struct ph *h, int node, uint64_t page, int access, int origin);
/* The same with the `ahead` hint given (0: the config's, see ph_config.ahead). */
int ph_fault_ahead(struct ph *h, int node, uint64_t page, int access, int origin, uint32_t ahead);
/* The access of the node's outstanding fault on page, or 0 if none. */
int ph_fault_pending(struct ph *h, int node, uint64_t page);

/* ---- scheduling ---- */
/* Deliver the oldest message of channel src -> dst. 1 if one was delivered, 0 if empty. */
int ph_deliver(struct ph *h, int src, int dst);
size_t ph_queued(struct ph *h, int src, int dst);   /* PH_ANY matches every node */
size_t ph_revokes_pending(struct ph *h);
/* Complete the i-th pending (deferred) revocation, oldest first. 1 if done, 0 if none. */
int ph_complete_revoke(struct ph *h, size_t i);
int ph_idle(struct ph *h);
/* One step: a refault, an oldest deferred revoke, or the next channel round-robin. */
int ph_step(struct ph *h);
/* One step chosen at random among everything that can happen next (rng state *seed). */
int ph_step_random(struct ph *h, uint64_t *seed);
/* Steps until idle. Returns the number of steps, or -1 if `limit` steps were not enough. */
long ph_run(struct ph *h, long limit);
long ph_run_random(struct ph *h, uint64_t *seed, long limit);
/* Drop every queued message and pending revocation (their `done` is never called). */
void ph_discard(struct ph *h);

/* Deliver m from src to dst directly, bypassing the queues and the harness's lock and
 * barrier managers: every type goes to the module's message hook (through encode/decode, with
 * the frame of `attach` copied from src's frame first unless DSMP_NO_FRAME; as a forged
 * message may, it lands whatever the receiver's access). Returns the hook's status, or
 * DSM_EINVAL if the wire layer rejected the message (no hook call). */
dsm_status_t ph_inject(struct ph *h, int src, int dst, const dsmw_msg_t *m, uint64_t attach);

/* Reset pages [first, first+n) as the daemon does: zero frames, access NONE, faults
 * forgotten, then the module's reset() on every node. */
void ph_reset(struct ph *h, uint64_t first, uint64_t n);

/* ---- eviction (the bounded cache, dsmp.h evict) ---- */
/* The daemon evicts page from node: the module's evict hook. At its done the harness checks
 * the node's access is NONE, fills the frame with garbage (the punched frame: nothing may read
 * it again before a fetch overwrites it) and increments *done (NULL: not counted). Returns the
 * hook's result (1 started, 0 busy), or -1 without calling it where the daemon would not: the
 * page is homed there, a fault or revocation of it is pending there, or it is being evicted.
 * A fault on a page being evicted waits for the eviction's done, as in the daemon. */
int ph_evict(struct ph *h, int node, uint64_t page, int *done);
/* Whether node is evicting page (its done has not run). */
int ph_evicting(struct ph *h, int node, uint64_t page);
/* Evictions completed so far. */
uint64_t ph_evictions(struct ph *h);
/* Set ph_config.evict_pct of a harness made already. */
void ph_set_evict_pct(struct ph *h, int pct);

/* ---- timer (svc->timer) ---- */
/* The delay in microseconds the node's module last asked for, or -1 if no timer is armed. */
int64_t ph_timer(struct ph *h, int node);
/* How many times the node's module called timer(). */
size_t ph_timer_requests(struct ph *h, int node);
/* The node's timer expires: its module's tick() is called if a timer is armed (disarmed
 * first, as a one-shot timerfd is). 1 if tick() was called, 0 if none was armed. */
int ph_tick(struct ph *h, int node);

/* ---- synchronisation, as daemon/sync.c drives the sync hooks (dsmp.h) ---- */
/* The node's first rank asks for lock `lock` (< PH_MAX_LOCKS; manager: node lock % nnodes):
 * LOCK_REQ (fill_acquire) to the manager, which grants in FIFO order (fill_grant); at the
 * acquirer acquired() runs and, when it calls done, *done is incremented. */
void ph_lock(struct ph *h, int node, uint32_t lock, int *done);
/* The node's first rank releases a lock it holds: release() (the flush), then UNLOCK
 * (fill_release) to the manager and *done incremented; the manager calls lock_released()
 * and passes the lock on. */
void ph_unlock(struct ph *h, int node, uint32_t lock, int *done);
/* Every rank of the node has arrived at the barrier: release(), then BARRIER_ARRIVE
 * (fill_release) to node 0, which calls barrier_arrived() for each and, once every node has
 * arrived, sends BARRIER_RELEASE (fill_barrier) to every node; there acquired() runs and
 * *done is incremented when it calls done. */
void ph_barrier(struct ph *h, int node, int *done);
/* The node's first rank performs an atomic (enum dsmw_aop, wire.h) on the 64-bit word at
 * the start of page, as daemon/atomics.c does: ATOMIC_REQ to the home through the queues,
 * the module's prepare hook there, the word updated in the home's frame, applied, then
 * ATOMIC_REPLY back and the done hook at the node; then *old gets the word before and *done
 * is incremented. A page used with atomics is left out of ph_check's value comparison (its
 * frames hold words, not the harness's patterns): do not ph_write it. */
void ph_atomic(struct ph *h, int node, uint64_t page, int aop, uint64_t a, uint64_t b, uint64_t *old, int *done);
/* Whether the node's first rank holds the lock (its acquire has completed, no unlock yet). */
int ph_holds(struct ph *h, int node, uint32_t lock);

/* ---- state ---- */
int ph_access(struct ph *h, int node, uint64_t page);
uint8_t *ph_frame(struct ph *h, int node, uint64_t page);
/* Write a new value into the node's frame (the node must hold WRITE); returns the value. */
uint64_t ph_write(struct ph *h, int node, uint64_t page);
/* Test set-up: put `value` in the node's frame and make it the page's current value. */
void ph_poke(struct ph *h, int node, uint64_t page, uint64_t value);
/* The page's current (last written) value; 0 (zeroes) until written. */
uint64_t ph_last(struct ph *h, uint64_t page);
/* Whether the node's frame holds exactly `value`'s pattern. */
int ph_frame_is(struct ph *h, int node, uint64_t page, uint64_t value);
/* Counter c reported for rank `origin`. */
uint64_t ph_counter(struct ph *h, int origin, enum dsmp_counter c);
uint64_t ph_faults_issued(struct ph *h);
uint64_t ph_faults_granted(struct ph *h);

/* ---- logs ---- */
size_t ph_nsent(struct ph *h);
const struct ph_sent *ph_sent_at(struct ph *h, size_t i);
/* Messages of `type` (PH_ANY: all) from src to dst (PH_ANY: any) since the last clear. */
size_t ph_count(struct ph *h, int type, int src, int dst);
size_t ph_nevents(struct ph *h);
const struct ph_event *ph_event_at(struct ph *h, size_t i);
size_t ph_count_events(struct ph *h, int node, enum ph_event_kind kind, uint64_t page, int access);
void ph_clear_log(struct ph *h);

/* ---- verdicts ---- */
size_t ph_errors(struct ph *h);
const char *ph_first_error(struct ph *h);   /* "" when there is none */
/* Safety now: per page at most one WRITE holder, a WRITE holder is alone, every node with
 * access holds the current value. NULL if it holds, else a description (static buffer). */
const char *ph_check(struct ph *h);
/* After quiescence: ph_check, idle, no fault outstanding, every fault granted, no eviction
 * under way, and every page without a writer readable at its home. */
const char *ph_check_quiescent(struct ph *h);

#endif

/*
 * dsmp.h - the consistency protocol hook table, and the services the daemon lends it.
 *
 * A protocol module decides *when* page copies move and become valid or invalid; the
 * daemon does everything else. The module sees its node's frames, the network and the
 * local ranks' protections only through `struct dsmp_services`, so the same module runs
 * over TCP, RDMA or the in-process test transport unchanged.
 *
 * Node-level access. For every page the daemon keeps the access this node may hand to
 * its ranks (NONE, READ, WRITE). A module raises it with grant() (which also wakes the
 * ranks waiting in faults) or set_access() (which does not), and lowers it with revoke(),
 * which returns once no local rank holds more than the new level.
 *
 * Faults. When a rank faults on a page whose node-level access is too low, the daemon
 * calls fault() once for all local waiters (coalescing): at most one call per page is
 * outstanding until the module calls grant() for that page. Waiters that the grant does
 * not satisfy cause a new fault() call.
 *
 * Re-entrancy. Services may call back into the module synchronously (revoke() may call
 * its `done` before returning; send() to this node is queued, never delivered inline).
 */
#ifndef DSMP_H
#define DSMP_H

#include <stddef.h>
#include <stdint.h>

#include "dsm_chan.h"
#include "dsm_status.h"
#include "wire.h"

typedef struct dsmp dsmp_t;

#define DSMP_NO_HOME (-1)
#define DSMP_HOME_UNDECIDED (-2)

/* `attach` value of send() for a message that carries no frame. */
#define DSMP_NO_FRAME UINT64_MAX

/* Causal: the pages one interval (one update) holds before a write past them ends it, and
 * the most it grows to while its ends only cost faults (a write set larger than the bound,
 * write-protected by every interval's end: radix's scatter writes 256 streams per rank).
 * The bound keeps a stream's intervals, and so its updates, small enough to overlap with
 * the writing; the most bounds a node's twins and an update (16 MiB of 4 KiB pages). */
#define DSMP_CAUSAL_INTERVAL_PAGES 256
#define DSMP_CAUSAL_INTERVAL_PAGES_MAX 4096

/* Counters a module reports; the daemon attributes them to a rank. */
enum dsmp_counter {
    DSMP_PAGES_FETCHED,  /* a page's contents arrived at this node */
    DSMP_DIFFS,          /* a diff was made or applied (later modules) */
    DSMP_WRITE_NOTICES,  /* a write notice was sent or applied (later modules) */
    DSMP_PAGES_READ_AHEAD, /* a page arrived along with another page's fetch (read-ahead) */
    DSMP_WRITEBACKS,     /* an evicted page's writes went to its home (bounded cache) */
    DSMP_PAGES_FETCHED_AGAIN, /* an acquire asked again for a page it dropped (release) */
};

typedef void (*dsmp_done_fn)(dsmp_t *p, void *arg);

struct dsmp_services {
    void    *ctx;
    int      self;       /* this node */
    int      any_rank;   /* a rank of this node: node-level work is counted to it */
    int      nnodes;
    uint64_t npages;
    size_t   page_size;
    /* 1 when nodes may hold only some of the pages (a bounded cache, or a job with memory
     * nodes, which hold their homes and add capacity only if the others do not replicate
     * them): a module that otherwise replicates every page (causal) then starts pages homed
     * elsewhere absent and fetches them on a fault. */
    int      partial;

    /* Home node of a page: DSMP_NO_HOME if the page is not allocated, DSMP_HOME_UNDECIDED for
     * a first-touch page nobody has touched (the daemon calls fault() for a page only once
     * its home is known here; reset() runs again at the home when it is decided). */
    int (*home)(void *ctx, uint64_t page);
    /* The page after the allocation holding `page`, as this node knows it (a collective
     * region; a dsm_malloc block when the page is in this node's arena), page + 1 when it
     * knows none. A home serves pages read ahead only inside the asked page's allocation: a
     * rank faulting on that one keeps it alive, while a neighbouring block may be freed, and
     * each node forgets a freed block at its own time. */
    uint64_t (*alloc_end)(void *ctx, uint64_t page);
    /* This node's frame for a page (the daemon's view). */
    void *(*frame)(void *ctx, uint64_t page);
    /* Send m to node (this node included: queued, delivered from the event loop), with
     * frame `attach` moving along unless it is DSMP_NO_FRAME. m->origin attributes it. */
    dsm_status_t (*send)(void *ctx, int node, dsmw_msg_t *m, uint64_t attach);
    /* Node-level access of page becomes `access`; wake the ranks it satisfies. Ends the
     * outstanding fault() for the page. */
    void (*grant)(void *ctx, uint64_t page, int access);
    /* Raise node-level access without waking anyone or ending a fault(). */
    void (*set_access)(void *ctx, uint64_t page, int access);
    /* Lower node-level access to `access` and take every local rank down to it; call
     * done(p, arg) when the ranks have acknowledged (possibly before revoke returns). */
    void (*revoke)(void *ctx, uint64_t page, int access, dsmp_done_fn done, void *arg);
    /* Count an event for rank `origin`. */
    void (*count)(void *ctx, int origin, enum dsmp_counter c, uint64_t n);
    /* Call the module's tick() once, `us` microseconds from now (re-arming replaces the
     * previous request). */
    void (*timer)(void *ctx, uint64_t us);
    /* The module cannot go on correctly (out of memory where a write or an invalidation
     * would be lost, a peer's malformed notices): fail the job with `why`. The daemon tells
     * every rank and stops; the module may return normally afterwards. */
    void (*fail)(void *ctx, dsm_status_t st, const char *why);
    /* The module is about to apply node src's diff (dsmp_diff encoding, not yet checked) to
     * this node's frame of page (release: at the home; causal: an update's page). For the
     * daemon's false-sharing diagnosis, which must see the frame before; may be NULL. */
    void (*applying)(void *ctx, uint64_t page, int src, const uint8_t *diff, size_t len);
    /* The module is about to ask page's home for page on its own (a page read ahead): 1 if
     * it may, 0 if a rank of this node is fetching it from the home directly (the daemon's
     * direct path, direct.c; the module then leaves the page out). NULL: always 1. */
    int (*take)(void *ctx, uint64_t page);
    /* 1 while a rank of this node reads page from its home directly (the copy it lands may
     * predate what an acquire names: the module drops it, and the daemon runs that
     * revocation once the copy is in). Does not stop a new read. NULL: never. */
    int (*claimed)(void *ctx, uint64_t page);
    /* The module's state of page changed in a way no other service told the daemon (a drop,
     * a diff acknowledged, a page read ahead that was not sent): the daemon looks again at
     * what it offers for page (its door, the daemon's hits.c). Called before the module
     * answers anyone for the change, so a rank woken by that answer finds the door as the
     * new state allows. NULL: nothing to do. */
    void (*sync)(void *ctx, uint64_t page);
    /* 1 if a rank of this node has page mapped (readable or writable): the module learns
     * whether a copy it holds was used. A hint, read without a lock. NULL: never asked. */
    int (*mapped)(void *ctx, uint64_t page);
};

/*
 * Invariant checks at the modules' transitions (the I*, R*, C* lists at the top of each
 * module): compiled in debug, sanitizer and fuzzing builds (DSM_CHECK_INVARIANTS, set by
 * CMake), nothing otherwise. A failed check is a bug in the module, not bad input (which
 * the modules refuse with DSM_EPROTO): it names the invariant and aborts.
 */
#ifdef DSM_CHECK_INVARIANTS
#define DSMP_INVARIANT(cond, name) ((cond) ? (void)0 : dsmp_invariant_failed(name, #cond, __FILE__, __LINE__))
#else
#define DSMP_INVARIANT(cond, name) ((void)0)
#endif
void dsmp_invariant_failed(const char *name, const char *cond, const char *file, int line)
    __attribute__((noreturn));

/* svc->sync, where the daemon gives one. */
static inline void dsmp_sync(const struct dsmp_services *svc, uint64_t page)
{
    if (svc->sync != NULL)
        svc->sync(svc->ctx, page);
}

/* Fail the job through svc->fail with a formatted reason (logged here if there is no fail
 * service, as in a harness that sets none). */
void dsmp_fail(const struct dsmp_services *svc, dsm_status_t st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * Synchronisation. The daemon runs locks and barriers (daemon/sync.c); a module that
 * needs consistency information to travel with them fills and reads the `vclock` and
 * `data` fields of the messages involved through these hooks. Any hook may be NULL.
 *
 *   rank releases (unlock, barrier, finalize)   -> release(): flush; done() lets it go on
 *   outgoing UNLOCK / BARRIER_ARRIVE / FINI_ARRIVE -> fill_release()
 *   outgoing LOCK_REQ                           -> fill_acquire()
 *   lock manager: UNLOCK arrives                -> lock_released()
 *   lock manager: LOCK_GRANT goes out           -> fill_grant()
 *   node 0: BARRIER_ARRIVE / FINI_ARRIVE        -> barrier_arrived()
 *   node 0: BARRIER_RELEASE / FINI_RELEASE out  -> fill_barrier()
 *   LOCK_GRANT / BARRIER_RELEASE / FINI_RELEASE at the acquirer -> acquired(); done()
 *                                                 lets the rank(s) go on
 *   rank frees (dsm_cofree, dsm_free)           -> release(), then the outgoing COFREE_REQ /
 *                                                 FREE_REQ -> fill_free() (only if set)
 *   REGION_FREE at every node                   -> freeing(): settled() of the range waits
 *                                                 for what it names
 *
 * fill_free and freeing exist for a model whose messages carry data to every node (causal's
 * updates): one sent before a free must not land after the range was reset and allocated
 * again. fill_free puts in the request what every node must have applied before it resets
 * the range (causal: the node's clock); the free's REGION_FREE carries the merge of every
 * request's (node 0 merges a cofree's), and freeing() hands it to the module.
 *
 * fill_* set pointers into buffers the module owns, valid until its next fill_* call.
 */
struct dsmp_sync_ops {
    void (*release)(dsmp_t *p, int origin, dsmp_done_fn done, void *arg);
    void (*fill_release)(dsmp_t *p, dsmw_msg_t *out);
    void (*fill_acquire)(dsmp_t *p, dsmw_msg_t *out);
    void (*lock_released)(dsmp_t *p, uint32_t lock, const dsmw_msg_t *unlock);
    void (*fill_grant)(dsmp_t *p, uint32_t lock, const dsmw_msg_t *req, dsmw_msg_t *grant);
    void (*barrier_arrived)(dsmp_t *p, const dsmw_msg_t *arrive);
    void (*fill_barrier)(dsmp_t *p, dsmw_msg_t *release);
    void (*acquired)(dsmp_t *p, const dsmw_msg_t *m, dsmp_done_fn done, void *arg);
    void (*fill_free)(dsmp_t *p, dsmw_msg_t *out);
    void (*freeing)(dsmp_t *p, uint64_t first, uint64_t n, const dsmw_msg_t *m);
};

/*
 * Atomics (daemon/atomics.c). An atomic is performed by the home's daemon on the home's
 * frame, one at a time per node, and answered to the requester's node:
 *
 *   requester's node:  requesting(), then ATOMIC_REQ goes
 *   home: ATOMIC_REQ   -> prepare(); ready() lets the daemon update the frame ->
 *                         applied(); done() sends ATOMIC_REPLY with *stamp
 *   requester's node: ATOMIC_REPLY -> done(); its done() answers the rank
 *
 * requesting sends, ahead of the request, what of this node's the home must have applied
 * before the operation (release: the diffs queued for that home, which would otherwise
 * land after the atomic and overwrite its word there only); it is synchronous.
 * prepare makes the home's frame the copy the operation must use (sequential: current,
 * and for a `write` the only one); applied makes a change reach the other nodes as the
 * model requires and may set *stamp (valid until done is called); done, at the
 * requester, makes the caller's later accesses follow the atomic (`len` bytes at `off`
 * now hold `val`; val is NULL when the word did not change). Any hook may be NULL: the
 * step is immediate. A reset() of the page drops a prepare that has not called ready (the
 * daemon answers that operation itself).
 */
struct dsmp_atomic_ops {
    void (*requesting)(dsmp_t *p, uint64_t page, int home);
    void (*prepare)(dsmp_t *p, uint64_t page, int origin, int write, dsmp_done_fn ready, void *arg);
    void (*applied)(dsmp_t *p, uint64_t page, int origin, uint64_t *stamp, dsmp_done_fn done, void *arg);
    void (*done)(dsmp_t *p, uint64_t page, int origin, int home, uint64_t stamp, size_t off, size_t len,
                 const void *val, dsmp_done_fn done, void *arg);
};

struct dsmp_ops {
    const char *name;
    enum dsm_model model;
    /* Most nodes a job may have under this model (0: no limit of its own). */
    int max_nodes;
    /* 1 if a read fault() may fetch pages after the asked one (`ahead`): the daemon then
     * budgets frames of a bounded cache for them; 0 and it hands every read ahead = 1. */
    int reads_ahead;
    /* 1 if a write fault() on a held page may make pages after it writable too (`ahead`:
     * the scan's length); 0 and the daemon hands such a write ahead = 1. A write that
     * fetches is handed what a read would be (reads_ahead: its fetch ramp, or 1). */
    int writes_ahead;
    /* Create the module's state for this node. */
    dsm_status_t (*create)(const struct dsmp_services *svc, dsmp_t **out);
    void (*destroy)(dsmp_t *p);
    /* Local ranks need `access` to page (node access is lower); origin = first waiter.
     * `ahead` (>= 1) is how many pages from `page` on the waiter is expected to touch next
     * (the daemon's scan detection, capped by DSM_READ_AHEAD): a module may fetch the ones
     * after `page` in the same request (read-ahead), or ignore it. */
    void (*fault)(dsmp_t *p, uint64_t page, int access, int origin, uint32_t ahead);
    /* A coherence message from node src; `framed` says whether a frame came with it (it
     * is already in place in frame m->page). Returns DSM_EPROTO for a message that makes
     * no sense in the page's state (the daemon treats the sender as broken). */
    dsm_status_t (*message)(dsmp_t *p, int src, const dsmw_msg_t *m, int framed);
    /* Pages [first, first+n) hold zeroes on every node and no rank has access: (re)start
     * their coherence state. Called at start-up for all pages, and when a region is
     * allocated or freed, after the daemon has reset its own view of them. */
    void (*reset)(dsmp_t *p, uint64_t first, uint64_t n);
    /* The timer requested through svc->timer() expired. */
    void (*tick)(dsmp_t *p);
    /* Bounded cache (daemon/cache.c): give up this node's copy of `page`, whose home is
     * elsewhere, so that its frame can be punched: write back what the model requires, take
     * node access to NONE (svc->revoke), then call done(p, arg) once no incoming message can
     * write the frame and nothing here needs its contents. Returns 1 if the eviction started
     * (done may run before evict returns), 0 if the page is busy here (a fetch, drop or flush
     * under way): the daemon picks another. The daemon calls fault() for the page only after
     * done, and never for a page it is evicting. done runs exactly once, also when a reset()
     * came first (the daemon then ignores it). NULL: the model cannot evict (no bounded
     * cache). */
    int (*evict)(dsmp_t *p, uint64_t page, dsmp_done_fn done, void *arg);
    /* 1 when no exchange of this node's on pages [first, first+n) is in flight: none of its
     * evictions (as evicter or as home) and no diff unacknowledged. A region free waits for
     * it before zeroing the range's frames and calling reset(), so that an eviction that
     * crossed the free (the daemon evicts on its own) cannot land a stale page or diff in a
     * frame after it was zeroed, and every node acknowledges the free only once its own
     * exchanges are over. The daemon asks again before its loop sleeps. NULL: always. */
    int (*settled)(dsmp_t *p, uint64_t first, uint64_t n);
    /* 1 when a rank of this node may read page straight from its home (the direct path,
     * daemon direct.c): the home is another node, this node holds no copy and has no
     * request of its own out for it. NULL: the model has no direct path (and the two
     * hooks below are NULL too). */
    int (*direct_idle)(dsmp_t *p, uint64_t page);
    /* Home: node's rank `origin` reads page directly: run it as a read request of node's
     * (its answer, the GRANT or PAGE the module sends node, goes to the rank). */
    dsm_status_t (*direct_read)(dsmp_t *p, int node, uint64_t page, int origin);
    /* Requester: rank `origin`'s direct read of page is in its frame and mapped READ in that
     * rank: the page is this node's as the home's answer would have made it. */
    dsm_status_t (*direct_landed)(dsmp_t *p, uint64_t page, int origin);
    /* Synchronisation hooks; NULL when locks and barriers carry nothing. */
    const struct dsmp_sync_ops *sync;
    /* Atomics hooks; NULL when every step is immediate. */
    const struct dsmp_atomic_ops *atomic;
};

extern const struct dsmp_ops dsmp_sequential_ops;
extern const struct dsmp_ops dsmp_release_ops;
extern const struct dsmp_ops dsmp_causal_ops;

/* Find a protocol by model name; NULL if unknown. */
const struct dsmp_ops *dsmp_find(const char *name);
/* The i-th protocol of this build, or NULL past the last. */
const struct dsmp_ops *dsmp_at(size_t i);

#endif

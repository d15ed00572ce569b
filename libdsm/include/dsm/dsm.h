/*
 * dsm.h - the public API of libdsm, a page-based distributed shared memory runtime.
 *
 * A job is N ranks (processes), possibly on several nodes, that share one global address
 * space mapped at the same virtual address in every rank. Memory obtained from
 * dsm_coalloc()/dsm_malloc() is read and written with plain loads and stores; the runtime
 * keeps the copies consistent under the job's consistency model (dsm_consistency()).
 *
 * Launch a job with `dsmrun -n N -- ./program args`; a program started without dsmrun runs
 * as a one-rank job with a private daemon.
 *
 * Every function that returns int returns 0 on success or a negative DSM error code;
 * dsm_strerror() names it. Functions returning pointers return NULL on failure and print
 * the reason on stderr.
 */
#ifndef DSM_DSM_H
#define DSM_DSM_H

#include <stddef.h>
#include <stdint.h>

#include <dsm/dsm_version.h> /* DSM_VERSION_MAJOR, _MINOR, _PATCH, _STRING, DSM_VERSION_AT_LEAST */

#ifdef __cplusplus
extern "C" {
#endif

/* Error codes (negative values are returned). */
enum dsm_error {
    DSM_OK = 0,
    DSM_EINVAL = -1,     /* invalid argument */
    DSM_ENOMEM = -2,     /* out of local memory */
    DSM_ENOSPACE = -3,   /* global address space exhausted */
    DSM_ENODAEMON = -4,  /* no daemon reachable */
    DSM_EPROTO = -5,     /* malformed or unexpected message */
    DSM_EPEER = -6,      /* a peer node was lost */
    DSM_ETIMEDOUT = -7,  /* a wait ran out of time */
    DSM_ESYS = -8,       /* a system call failed (see errno in the log) */
    DSM_ESTATE = -9,     /* call not valid in this state (e.g. before dsm_init) */
    DSM_EBUSY = -10,     /* the address range is already in use */
    DSM_ECONFIG = -11,   /* bad configuration (environment, options) */
    DSM_ENOTSUP = -12,   /* not supported by this build or transport */
};

int         dsm_init(int *argc, char ***argv);  /* 0, or a negative DSM error code */
int         dsm_finalize(void);
int         dsm_rank(void);
int         dsm_nranks(void);
int         dsm_node(void);            /* this rank's node (its daemon), 0 .. dsm_nnodes() - 1 */
int         dsm_nnodes(void);          /* nodes of the job (dsmrun -n / --ranks-per-node), memory nodes
                                        * (dsmrun --memory-nodes: the last ones, no rank) included */
size_t      dsm_page_size(void);
const char *dsm_consistency(void);     /* "sequential", "release" or "causal" */
void       *dsm_coalloc(size_t size);  /* collective, same address on every rank, page-aligned, zeroed */

/* Where the pages of a collective allocation have their home (the node that keeps their
 * master copy and answers their faults). */
enum dsm_placement {
    DSM_PLACE_BLOCK = 0,  /* one contiguous block per node, in node order (dsm_coalloc's) */
    DSM_PLACE_CYCLIC = 1, /* block_pages pages per node in turn: 0, 1, ..., n-1, 0, ... */
    DSM_PLACE_NODE = 2,   /* every page on node `node` */
    DSM_PLACE_FIRST_TOUCH = 3, /* the node that first touches a page (a fault, or an atomic)
                                * becomes its home; node 0 arbitrates, one round trip per
                                * page at its first touch. Under causal, where reads never
                                * fault, the first write or atomic decides. */
};

/* Attributes of dsm_coalloc_ex; start from DSM_ALLOC_ATTR_INIT. `reserved` must stay zero:
 * it is where later attributes go (a non-zero one is refused). */
struct dsm_alloc_attr {
    enum dsm_placement placement;
    size_t   block_pages;    /* DSM_PLACE_CYCLIC: pages per block, at least 1 */
    int      node;           /* DSM_PLACE_NODE: 0 .. number of nodes - 1 */
    uint64_t reserved[4];
};
#define DSM_ALLOC_ATTR_INIT { DSM_PLACE_BLOCK, 0, 0, { 0, 0, 0, 0 } }

/* dsm_coalloc with a placement (attr NULL: block): *out gets the region, or NULL. Returns
 * 0; DSM_EINVAL for a size of 0, an unknown placement, block_pages 0, a node out of range
 * or a non-zero reserved field (nothing is allocated, the job goes on); DSM_ENOSPACE when
 * the collective area has no room. Collective: every rank's k-th call must give the same
 * size and placement, or the job fails naming both. */
int         dsm_coalloc_ex(size_t size, const struct dsm_alloc_attr *attr, void **out);
void        dsm_cofree(void *ptr);     /* collective */
void       *dsm_malloc(size_t size);   /* any rank, any time; homed on the caller's node; zeroed */
void        dsm_free(void *ptr);
int         dsm_lock(uint32_t id);     /* global lock, any id but UINT32_MAX (the fences') */
int         dsm_unlock(uint32_t id);
/* dsm_lock without waiting: 0 when the lock was free (the caller now holds it, with what
 * dsm_lock's acquire gives under the job's model), DSM_EBUSY when someone holds it (nothing
 * is acquired then), DSM_EINVAL when the calling thread already holds it. */
int         dsm_trylock(uint32_t id);
int         dsm_barrier(void);         /* all ranks */
/* Condition variables, any id, used with a global lock as pthread_cond_* with a mutex.
 * dsm_cond_wait: the calling thread must hold `lock` (DSM_EINVAL otherwise); it releases
 * it (with dsm_unlock's release), sleeps until a signal, and returns holding it again (with
 * dsm_lock's acquire). A signal sent after the waiter's lock was released is never lost;
 * as with pthreads, wake-ups may be spurious: wait in a loop on the condition. Other
 * threads of the waiter's rank cannot take `lock` while it waits. dsm_cond_signal wakes
 * the longest waiter, dsm_cond_broadcast all; with no waiter they do nothing. */
int         dsm_cond_wait(uint32_t cond, uint32_t lock);
/* Fences, to publish through plain memory (a flag) under the relaxed models: writes made
 * before a dsm_release are seen by any rank after a dsm_acquire that follows it. A reader
 * polls with the acquire inside the loop: `do dsm_acquire(); while (!*flag);`. Each is a
 * full fence (a round trip to one job-wide manager); under sequential they do nothing. */
int         dsm_acquire(void);
int         dsm_release(void);
int         dsm_cond_signal(uint32_t cond);
int         dsm_cond_broadcast(uint32_t cond);

/*
 * Atomics on global memory: aligned 32- and 64-bit words of an allocation, performed by
 * the daemon of the word's home node on its copy, without moving the page to the caller.
 * Each returns 0, or DSM_EINVAL (nothing done) for an address outside the global space,
 * in no allocation, or not aligned to its size. `old` (may be NULL) gets the word as it
 * was just before the operation; dsm_atomic_cas_* stores `desired` only when the word
 * equals `expected` (it succeeded when *old == expected).
 *
 * Under every model the atomics on one word are linearizable: they happen one at a time
 * at the home, each between its call and its return, and every caller sees their one
 * order. How they order plain loads and stores:
 *   sequential  an atomic is a write at the home: plain accesses and atomics are
 *               sequentially consistent together.
 *   release     an atomic orders nothing by itself (relaxed); it is part of the calling
 *               rank's interval, so a plain load sees it after any acquire that follows
 *               the caller's next release (lock, barrier, dsm_release). The caller's own
 *               plain loads after it returns see the word as it left it, or newer. Use
 *               dsm_release() before an atomic that publishes data and dsm_acquire()
 *               after the one that observes it.
 *   causal      an atomic is a write by the home node, which the caller has read: it
 *               returns once the caller's node has the update, so the caller's later
 *               writes and releases causally follow it; no ordering beyond that.
 * While atomics on a word may be in flight, access it only through them: a plain store
 * to it races with them under every model (as in C11).
 */
int dsm_atomic_load_32(const uint32_t *addr, uint32_t *out);
int dsm_atomic_load_64(const uint64_t *addr, uint64_t *out);
int dsm_atomic_store_32(uint32_t *addr, uint32_t value);
int dsm_atomic_store_64(uint64_t *addr, uint64_t value);
int dsm_atomic_fetch_add_32(uint32_t *addr, uint32_t value, uint32_t *old);  /* wraps modulo 2^32 */
int dsm_atomic_fetch_add_64(uint64_t *addr, uint64_t value, uint64_t *old);  /* wraps modulo 2^64 */
int dsm_atomic_swap_32(uint32_t *addr, uint32_t value, uint32_t *old);
int dsm_atomic_swap_64(uint64_t *addr, uint64_t value, uint64_t *old);
int dsm_atomic_cas_32(uint32_t *addr, uint32_t expected, uint32_t desired, uint32_t *old);
int dsm_atomic_cas_64(uint64_t *addr, uint64_t expected, uint64_t desired, uint64_t *old);

const char *dsm_strerror(int err);
/* The running library's version, "MAJOR.MINOR.PATCH" (DSM_VERSION_STRING is the headers'). */
const char *dsm_version(void);
/* End the whole job now, from any rank and thread, before or after dsm_init: every rank
 * stops and the job (dsmrun) exits with status code & 255, or 1 when that is 0 (an aborted
 * job never reports success); dsmrun names this rank's call as the cause. Never returns. */
void        dsm_abort(int code) __attribute__((noreturn));
/* Run fn(tid, nthreads, arg) on nthreads threads of this rank (tid 0 is the caller) and
 * return when all are done: 0, or the first failure of a dsm_thread_barrier. Threads are
 * bound by the job's placement (dsmrun --placement); locks taken inside are held by the
 * thread, which alone may unlock them. One call at a time per rank; not nestable. */
int         dsm_parallel(int nthreads, void (*fn)(int tid, int nthreads, void *arg), void *arg);
/* Inside dsm_parallel: wait for every thread of every rank (thread counts may differ
 * between ranks; every rank's threads call it equally often). Use it, not dsm_barrier,
 * in a team of several threads. */
int         dsm_thread_barrier(void);

#ifdef __cplusplus
}
#endif

#endif /* DSM_DSM_H */

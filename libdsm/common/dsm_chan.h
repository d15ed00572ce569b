/*
 * dsm_chan.h - the rank <-> daemon channel protocol (one node, AF_UNIX SOCK_SEQPACKET).
 *
 * Fixed-size binary messages, one per send/recv, so the SIGSEGV handler can speak it with
 * nothing but send(2)/recv(2): no allocation, no protobuf, no locks.
 *
 * Connections of a rank to its daemon (the daemon's socket path is $DSM_SOCKET):
 *   main     HELLO_MAIN first; the reply carries the job description and, as SCM_RIGHTS,
 *            the node's frame memfd. Used afterwards by the thread that called dsm_init.
 *   thread   HELLO_THREAD first (reply: REPLY). One per further application thread,
 *            opened lazily at its first fault or call.
 *   service  HELLO_SERVICE first (reply: REPLY). Daemon -> rank protection changes
 *            (PROTECT, answered by PROTECT_ACK with the same seq) and ABORT.
 *
 * On main/thread channels every request gets exactly one reply, in order. A fault is
 * FAULT -> GRANT, then the handler's mprotect, unless the node already holds the page and the
 * handler takes it itself (dsm_hits.h): no message at all.
 *
 * Grant ordering without acknowledgements: a PROTECT of a single page carries in `d` the
 * number of GRANTs of that page the daemon has sent the rank so far (modulo 2^32). The
 * rank counts, per page, the grants its fault handlers have applied (after their
 * mprotect), and the service thread applies the PROTECT only once that count has reached
 * `d`. So a revocation never lands before a grant sent ahead of it, although the two
 * travel on different channels, and a fault costs two messages, not three.
 *
 * Field use per op (unlisted fields are zero):
 *   HELLO_MAIN    rank->d  rank, a=pid
 *     reply       d->rank  REPLY status, rank, nranks, node, nnodes, a=base address,
 *                          b=space size, c=page size, d=consistency id, text=consistency,
 *                          e=flags (DSMC_WELCOME_*), seq=the rank's index among its node's
 *                          (its row of the node-local hits table after the frames, dsm_hits.h)
 *   HELLO_THREAD  rank->d  rank              reply REPLY status
 *   HELLO_SERVICE rank->d  rank              reply REPLY status
 *   FAULT         rank->d  a=page index, b=1 for a write, c=the run the thread's own scans
 *                          (which see all its faults: hits, direct reads, grants) give the
 *                          page, 0: it continues none (then the daemon's scans of the
 *                          channel, which miss those faults, extend nothing either)
 *                                                           reply GRANT status, a=page, b=access,
 *                          c=pages from a on that the grant opens (0 or 1: a alone; at most
 *                          DSMC_GRANT_RUN_MAX): one mprotect, each page's grant counted;
 *                          d=the scan length the daemon gave the fault (at most
 *                          DSMC_GRANT_RUN_MAX), which the thread's scan takes on
 *   COALLOC       rank->d  a=bytes, b=placement, c=its argument, d=the caller's offset in
 *                          its module, text=the module's path (when the welcome asked for
 *                          them: DSMC_WELCOME_ALLOC_SITES; else 0 and "")
 *                                            reply REPLY status, a=address
 *   COFREE        rank->d  a=address         reply REPLY status (after every rank freed it)
 *   MALLOC        rank->d  a=bytes, d and text as COALLOC's   reply REPLY status, a=address
 *   FREE          rank->d  a=address         reply REPLY status
 *   LOCK/UNLOCK   rank->d  a=lock id         reply REPLY status
 *   BARRIER       rank->d                    reply REPLY status (when every rank arrived)
 *   FINALIZE      rank->d  a, b, c, d: the rank's waits for faults, locks, barriers and the
 *                          rest (atomics, fences, allocation), e: its wall time, all in ns
 *                                            reply REPLY status (after every rank finalized)
 *   PROTECT       d->rank  seq, a=first page, b=page count, c=access, d=grants of page a
 *                          sent so far when that page has a grant the daemon has not seen
 *                          applied yet (then b=1); else 0: a run of b contiguous pages, one
 *                          mprotect                                   (service channel)
 *   PROTECT_ACK   rank->d  seq               (no reply)
 *   ABORT         d->rank  status, text=reason: the job is failing; print and exit
 */
#ifndef DSM_CHAN_H
#define DSM_CHAN_H

#include <stdint.h>

#define DSMC_MAGIC 0x44534d31u /* "DSM1" */

/* Page access levels, ordered: a higher level allows everything a lower one does. */
enum dsm_access { DSM_ACCESS_NONE = 0, DSM_ACCESS_READ = 1, DSM_ACCESS_WRITE = 2 };

/* Most pages one GRANT opens (the daemon's grants ahead of a sequential scan). */
#define DSMC_GRANT_RUN_MAX 64u

/* The next run of a page-by-page scan that reached n pages (0: none yet): doubled, up to a
 * grant's run. The daemon's grants ahead and the ranks' node-local hits ramp alike. */
static inline uint32_t dsmc_ramp_next(uint32_t n)
{
    return n == 0 ? 1 : n * 2 < DSMC_GRANT_RUN_MAX ? n * 2 : DSMC_GRANT_RUN_MAX;
}

/* Flags of the HELLO_MAIN reply's e field. */
#define DSMC_WELCOME_ALLOC_SITES 1u /* send allocations' call sites (d, text): --hotspots */

/* Atomic operations (DSMC_ATOMIC's d); the same numbers as the wire's (wire.h). */
enum dsmc_aop { DSMC_AOP_LOAD = 0, DSMC_AOP_STORE, DSMC_AOP_FETCH_ADD, DSMC_AOP_SWAP, DSMC_AOP_CAS };

/* Consistency model ids (d field of the HELLO_MAIN reply). */
enum dsm_model { DSM_MODEL_SEQUENTIAL = 0, DSM_MODEL_RELEASE = 1, DSM_MODEL_CAUSAL = 2 };

enum dsmc_op {
    DSMC_HELLO_MAIN = 1,
    DSMC_HELLO_THREAD,
    DSMC_HELLO_SERVICE,
    DSMC_REPLY,
    DSMC_FAULT,
    DSMC_GRANT,
    DSMC_COALLOC,
    DSMC_COFREE,
    DSMC_MALLOC,
    DSMC_FREE,
    DSMC_LOCK,
    DSMC_UNLOCK,
    DSMC_BARRIER,
    DSMC_FINALIZE,
    DSMC_PROTECT,
    DSMC_PROTECT_ACK,
    DSMC_ABORT,
    DSMC_TRYLOCK,    /* a: lock id; reply status DSM_EBUSY when it is held */
    DSMC_ABORT_JOB,  /* a: dsm_abort's code (int64); the rank called it (reply, then the job ends) */
    DSMC_COND_WAIT,  /* a: cond, b: lock (held); reply once it is held again after a wake */
    DSMC_COND_SIGNAL,/* a: cond, b: 1 to wake every waiter; reply at once */
    DSMC_ATOMIC,     /* a: address, b: operand, c: operand 2 (CAS's desired), d: enum dsmc_aop,
                      * e: width in bytes (4, 8); reply REPLY status, a: the word before */
    DSMC_DIRECT_INFO, /* a: a node; reply REPLY status (DSM_ENOTSUP: it takes no direct reads),
                       * a: its direct port, text: its host (dsm_direct.h) */
    DSMC_DIRECT_PROOF,/* a: a node, b..e: the nonce its daemon sent; reply REPLY, b..e: the HELLO's mac */
    DSMC_DIRECT_DONE, /* a: page: the rank's direct read of it is in its frame and mapped (no reply) */
    DSMC_OP_MAX
};

struct dsmc_msg {
    uint32_t magic;  /* DSMC_MAGIC */
    uint32_t op;     /* enum dsmc_op */
    int32_t  status; /* 0 or a negative dsm_error */
    uint32_t rank;
    uint32_t nranks;
    uint32_t node;
    uint32_t nnodes;
    uint32_t pad;
    uint64_t seq;
    uint64_t a, b, c, d, e;
    char     text[80]; /* NUL-terminated */
};

_Static_assert(sizeof(struct dsmc_msg) == 160, "channel message size is part of the protocol");

#endif

/*
 * proto_prog.h - small programs over the protocol harness (proto_harness.h): one rank per
 * node reads and writes words of pages, takes locks and enters barriers, each step run
 * until the harness is idle. Used by the release and causal suites, and to run the same
 * litmus shapes under the sequential module. The helpers assert (Criterion), so they are
 * called from inside tests only.
 */
#ifndef PROTO_PROG_H
#define PROTO_PROG_H

#include <stdint.h>

#include "proto_harness.h"

#define PP_LIMIT 1000000L   /* steps a helper may run before it calls the harness stuck */

/* ph_config.ahead (read-ahead hints) of the harnesses pp_make creates from now on; 0 at start. */
extern uint32_t pp_ahead;
/* ph_config.partial of the harnesses pp_make creates from now on; 0 at start. */
extern int pp_partial;
/* ph_config.mapped of the harnesses pp_make creates from now on; 0 at start. */
extern int pp_mapped;

/* A harness for `ops` with the daemon's revoke semantics and no per-step invariant checks
 * (they are those of a single-writer protocol). */
struct ph *pp_make(const struct dsmp_ops *ops, int nnodes, uint64_t npages, size_t page_size, const int *home,
                   enum ph_revoke_mode mode);
/* Run until idle; fail the test on a harness error or if it does not get there. */
void pp_run(struct ph *h);
/* The node's rank gets at least `access` to page: fault if it lacks it, then run until
 * idle unless the module granted the fault at once (so queued traffic that the fault does
 * not need stays queued). */
void pp_access(struct ph *h, int node, uint64_t page, int access);

/* A rank's plain accesses to 64-bit word `word` (or byte `off`) of a page. */
uint64_t pp_read(struct ph *h, int node, uint64_t page, size_t word);
void pp_write(struct ph *h, int node, uint64_t page, size_t word, uint64_t value);
uint8_t pp_read_byte(struct ph *h, int node, uint64_t page, size_t off);
void pp_write_byte(struct ph *h, int node, uint64_t page, size_t off, uint8_t value);
/* What the node's frame holds, whatever its access (no fault). */
uint64_t pp_peek(struct ph *h, int node, uint64_t page, size_t word);

/* Writes ahead: the node's write fault just issued opened `page` (one it made writable ahead)
 * to the node before its grant, with no message sent since the log was cleared. */
void pp_opened_ahead(struct ph *h, int node, uint64_t page);
/* pp_write of a page that must be writable already: the test fails if it faults. */
void pp_write_held(struct ph *h, int node, uint64_t page, size_t word, uint64_t value);

/* Synchronisation of the node's rank, run to completion (the test fails if it does not
 * complete). */
void pp_lock(struct ph *h, int node, uint32_t lock);
void pp_unlock(struct ph *h, int node, uint32_t lock);
/* Every node enters the barrier; run until all are released. */
void pp_barrier(struct ph *h);

/* The lock counter: every node adds 1 to word 0 of `page` under lock `lock`, `iters`
 * times, the nodes' steps interleaved at random with random message delivery and
 * revocation order (seed). Then every node reads the counter under the lock and must see
 * nnodes * iters. */
void pp_lock_counter(struct ph *h, int nnodes, uint64_t page, uint32_t lock, int iters, uint64_t seed);

/* The lock scan: `iters` times, each node takes lock `lock`, reads word 0 of every page in
 * order (a scan: read-ahead hints apply) and checks their sum equals the increments made so
 * far, then adds 1 to word 0 of one page; the nodes' steps interleaved at random with random
 * delivery and revocation order (seed). */
void pp_lock_scan(struct ph *h, int nnodes, uint64_t npages, uint32_t lock, int iters, uint64_t seed);

/* Totals of pp_lock_scans. */
struct pp_scan_totals {
    uint64_t read_ahead, evictions, fetched_again;
};

/* 60 lock scans of `ops` over 12 pages homed in blocks of 4, on 2-4 nodes, alternating sync
 * and deferred revocations: read-ahead hints up to `ahead` (0: none; `ahead_odd_only`: only on
 * odd seeds), pages evicted at random with `evict_pct` (ph_config.evict_pct; the nodes are then
 * partial replicas, ph_config.partial, as under a bounded cache). */
struct pp_scan_totals pp_lock_scans(const struct dsmp_ops *ops, uint32_t ahead, int ahead_odd_only, int evict_pct);

#endif

/*
 * dsmd.h - the state of one node's daemon, shared by the daemon's modules.
 *
 *   main.c      start-up, the READY/PEERS/MESH rendezvous with dsmrun, signals
 *   node.c      the node's state built and torn down, end-of-job checks, STATS, exit
 *   watchdog.c  heartbeats, silent peers, ranks that stop taking their messages
 *   loop.c      the epoll loop
 *   clients.c   the ranks' channels (AF_UNIX SOCK_SEQPACKET, dsm_chan.h)
 *   pages.c     node-level page access, fault coalescing, the ranks' protections
 *   peers.c     other daemons: encode/decode, dispatch, messages to self, lost peers
 *   sync.c      locks (manager per id) and barriers (manager node 0), finalize
 *   alloc.c     dsm_coalloc/cofree (node 0), dsm_malloc/free (per-node arenas)
 *   atomics.c   dsm_atomic_*: performed at the page's home
 *   firsttouch.c  first-touch homes: claims to node 0, the arbiter
 *   trace.c     --trace: the timeline of ranks' requests, transactions and messages
 *   hotspots.c  --hotspots: per-page faults, invalidations, bytes; allocations' call sites
 *   falseshare.c  --false-sharing: pages written at disjoint bytes by several nodes
 *   hits.c      node-local hits: the table shared with the ranks (open[], prot rows, door[])
 *   direct.c    direct reads: the listener for other nodes' ranks, and this node's doors
 *   space/      address-space layout, homes, page-range allocator
 *   transport/  the transports behind dsmt.h
 */
#ifndef DSMD_H
#define DSMD_H

#include <stddef.h>
#include <stdint.h>

#include "dsm_chan.h"
#include "dsm_hits.h"
#include "dsm_status.h"
#include "dsmp.h"
#include "dsmt.h"
#include "loop.h"
#include "space/ralloc.h"
#include "space/space.h"
#include "wire.h"

#define DSMD_MAX_NODES 1024
#define DSMD_LOCK_BUCKETS 1024

struct dsmd_config {
    int         node, nnodes, nranks, first_rank, local_ranks;
    const char *consistency;
    const char *transport;
    const char *device;      /* --device: the RDMA device (NULL: the listen address's) */
    const char *listen;
    const char *socket;
    uint64_t    space_size;
    uint64_t    base;
    uint64_t    job_id;
    uint8_t     secret[32];  /* the job secret (dsmt_config.secret): the SECRET line dsmrun
                              * writes first on stdin; standalone: random */
    int         standalone;
    int         poll_us;     /* DSM_DAEMON_POLL_US: polling while a remote reply is due */
    uint64_t    peer_timeout_ms; /* DSM_PEER_TIMEOUT_MS: silence that fails the job */
    int         trace;       /* --trace: record the timeline (trace.c) */
    int         page_stats;  /* --page-stats: per-page counts and allocation sites (hotspots.c) */
    int         false_sharing; /* --false-sharing: the diagnosis of falseshare.c */
    int         grant_ahead; /* DSM_GRANT_AHEAD: most pages one GRANT may open (1: no runs) */
    int         read_ahead;  /* DSM_READ_AHEAD: most pages one protocol fetch may bring (1: one) */
    uint64_t    cache_size;  /* DSM_CACHE_SIZE: bytes of frames for pages homed elsewhere (0: no bound) */
    int         memory_nodes; /* --memory-nodes: the job's last nodes hold homes and run no rank */
    int         local_hits;  /* DSM_LOCAL_HITS: ranks take held pages without a message (hits.c) */
    int         direct;      /* DSM_DIRECT: ranks read pages straight from their homes (direct.c) */
};

#define DSMD_SCANS 4 /* interleaved scans one channel's faults are matched against (pages.c) */

enum dsmd_chan_kind { CHAN_NEW = 0, CHAN_MAIN, CHAN_THREAD, CHAN_SERVICE };

/* One connection of a local rank. */
struct dsmd_chan {
    struct dsmd *d;
    int      fd;
    int      id;          /* index in dsmd.chans */
    int      kind;
    int      lrank;       /* local rank index, -1 before hello */
    /* a fault waiting for node-level access */
    int      waiting;
    uint64_t wait_page;
    int      wait_access;
    struct dsmd_chan *wnext;
    uint64_t hint_page;   /* the last FAULT's page and the run its thread's hits' scan gives it */
    uint32_t hint;
    /* a request waiting for its answer: its op (DSMC_*, 0: none) and what it waits on
     * (the lock or cond, the collective's number, the atomic's page) */
    uint32_t pending_op;
    uint64_t pending_seq;
    uint8_t  atomic_replied;  /* DSMC_ATOMIC: the home's reply came, the done hook runs */
    struct dsmd_chan *pnext;
    /* the last GRANT sent here (its first page and page count), until the channel's next
     * message proves it applied (a thread sends nothing between a fault and that fault's
     * mprotect); -1: none */
    int64_t  unconfirmed;
    uint32_t unconfirmed_n;
    /* scan detection (pages.c), for grants and reads ahead: up to DSMD_SCANS interleaved
     * scans (a stencil reads one array while it writes another), each the page it would
     * fault on next, the length its runs have reached (doubling, up to DSMC_GRANT_RUN_MAX)
     * and the pages its last fault asked the protocol for (0: granted from the node's
     * pages); `start` is the page it began at, where a sweep that repeats it (the next
     * phase's pass over the same array) takes up its length; `last` orders them for
     * replacement. The fault handed to the protocol last: its page and the pages it asked
     * for, until its grant. */
    struct dsmd_scan { uint64_t next, start, last; uint32_t len, fetched; } scans[DSMD_SCANS];
    uint64_t scan_clock;
    uint64_t asked_page;
    uint32_t asked;
    /* messages the rank's socket had no room for, oldest first (clients.c) */
    struct dsmc_msg *outq;
    uint32_t oq_head, oq_len, oq_cap, oq_peak;
    int      broken;       /* the socket failed: the rank is gone, its close follows */
    uint32_t lost;         /* messages the failed socket never took */
    int64_t  stalled_ns;   /* when the queue last stopped moving (0: empty) */
    uint64_t msgs_out, msgs_in; /* messages queued for the rank / taken from it */
    /* the request being answered, for --trace and --hotspots (trace.c): its op (0: none),
     * when it came, its a field, a fault's write flag, an allocation's call site */
    uint32_t tr_op;
    int      tr_write;
    int64_t  tr_t0;
    uint64_t tr_a, tr_site;
    char     tr_module[sizeof(((struct dsmc_msg *)0)->text)];
};

/* A revocation of node-level access waiting for, or in, its turn. */
struct dsmd_revoke {
    struct dsmd_revoke *next;
    int          access;
    int          started;
    int64_t      t0;       /* when it started (--trace) */
    dsmp_done_fn done;
    void        *arg;
};

/* dsmd_page.cache (cache.c) */
#define DSMD_CACHED     0x1  /* holds a frame of the bounded cache */
#define DSMD_CACHE_REF  0x2  /* CLOCK's reference bit */
#define DSMD_EVICTING   0x4  /* the protocol is giving it up: faults wait */
#define DSMD_FRAMEWAIT  0x8  /* a fault on it waits for a free frame */

/* A message of a home about a claimed page, held back until the claim ends (direct.c). */
struct dsmd_held {
    struct dsmd_held *next;
    uint64_t page;
    int      src;
    size_t   len;
    uint8_t  buf[];
};

/* dsmd_page.direct (direct.c): the daemon's side of a rank's claim of door[p] */
#define DSMD_DIRECT_COUNTED 0x1 /* its grant counted ahead (a free: dsmd_direct_count_ahead) */
#define DSMD_DIRECT_SETTLE  0x2 /* found DONE: ends at the next flush */

/* Node-level state of one page. */
struct dsmd_page {
    uint8_t  access;   /* what this node may give its ranks */
    uint8_t  pending;  /* a fault() is outstanding at the protocol */
    uint8_t  clearing; /* in a range being cleared (dsmd_pages_clear_range): access stays NONE */
    uint8_t  cache;    /* DSMD_CACHED... (bounded cache only) */
    uint16_t protect_acks;  /* PROTECT acknowledgements awaited by the head revocation */
    uint8_t  reserve;  /* frames reserved for the pending fault's pages read ahead (cache.c) */
    uint8_t  direct;   /* a rank's direct read of it: DSMD_DIRECT_* (direct.c) */
    struct dsmd_chan   *waiters;
    struct dsmd_revoke *revq;
};

struct dsmd_counters {
    uint64_t read_faults, write_faults, pages_fetched, invalidations;
    uint64_t protects;   /* PROTECT messages (each one run of pages: one mprotect) */
    uint64_t messages_sent, bytes_sent, lock_acquires, barriers, wall_ns;
    uint64_t diffs, write_notices;
    uint64_t pages_ahead;  /* pages opened by a GRANT beyond the page that faulted */
    uint64_t pages_read_ahead; /* pages the protocol fetched along with a faulting one */
    uint64_t pages_fetched_again; /* pages an acquire fetched again on its own (release) */
    uint64_t pages_evicted;  /* bounded cache: frames given back (node-level: the first rank's) */
    uint64_t writebacks;     /* evicted pages whose writes went to their home */
    uint64_t notice_bytes;   /* data of synchronisation messages sent to peers: release's notices */
    uint64_t local_hits;     /* faults the rank resolved itself from the node's frames (hits.c) */
    uint64_t direct_faults;  /* read faults the rank resolved from the home directly (direct.c) */
    uint64_t wait_ns[4];  /* the rank's own clocks at dsm_finalize: fault, lock, barrier, other */
};

struct dsmd_lock_held {
    uint32_t *ids;
    size_t    n, cap;
};

struct dsmd_rank {
    int      rank;            /* global */
    int      connected;       /* hello seen on the main channel */
    int      finalized;       /* FINALIZE seen */
    int      exited;          /* dsmrun saw it exit (EXIT line), with exit_status */
    int      exit_status;
    int      absent;          /* it exited without ever calling dsm_init */
    int64_t  joined_ns;       /* its hello (the daemon's clock), for wall time without finalize */
    int64_t  left_ns;         /* its main channel closed */
    int      nchans;          /* open channels */
    struct dsmd_chan *service;
    uint64_t coalloc_seq;     /* collective allocations this rank has started */
    struct dsmd_lock_held held;
    struct dsmd_counters c;
    uint8_t *prot;            /* access granted to this rank, per page: its row of the shared
                               * table (dsm_hits.h); read and written through dsmd_prot_* */
    uint32_t *grants;         /* GRANTs sent to this rank, per page (dsm_chan.h) */
    uint8_t *unconfirmed;     /* per page: GRANTs not yet proven applied (dsmd_chan) */
    /* protection changes (pages.c): the run being gathered, and those awaiting an ACK */
    struct dsmd_protect_run { uint64_t seq, first, n; int64_t sent_ns; int access; } open;
    struct dsmd_protect_run *acks;
    size_t   acks_head, acks_len, acks_cap;
    uint64_t protects_sent, protect_pages, protects_acked, protects_abandoned;
    /* channel messages of closed channels: queued for the rank, taken from it, left
     * undelivered at close (0 unless the rank died), most ever waiting in one queue */
    uint64_t chan_out, chan_in, chan_undelivered, chan_queue_peak;
};

struct dsmd_sync;
struct dsmd_alloc;
struct dsmd_ft;
struct dsmd_atomics;
struct dsmd_trace;
struct dsmd_hot;
struct dsmd_fs;
struct dsmd_cache;

struct dsmd {
    struct dsmd_config cfg;
    uint64_t npages;
    size_t   page_size;
    int      memfd;
    uint8_t *frames;             /* daemon's view of the node's frames */
    struct dsm_hits_head *hits;  /* the table shared with the ranks, after the frames (hits.c) */
    uint8_t *hits_open;          /* its open[] */
    uint16_t *hits_door;         /* its door[] (direct.c); NULL when direct reads are off */
    struct dsmd_loop *loop;
    struct dsmd_space space;
    struct dsmw_limits limits;

    /* transport and peers */
    const struct dsmt_ops *tops;
    dsmt_t  *t;
    char     listen_addr[128];
    char   **peer_addr;          /* by node */
    int     *peer_up;
    int      npeers_up;
    int      mesh_done;

    /* protocol */
    const struct dsmp_ops *pops;
    dsmp_t  *p;
    struct dsmp_services svc;

    /* local ranks and their channels */
    int       listen_fd;
    int       listen_paused;     /* out of descriptors: not accepting until the watchdog's tick */
    struct dsmd_rank *ranks;     /* local_ranks entries */
    struct dsmd_chan **chans;    /* by id */
    int       nchans, capchans;
    int       ranks_gone;        /* local ranks that finalized and closed every channel */
    int       ranks_absent;      /* local ranks that exited without dsm_init */
    int       job_heard;         /* a peer sent more than liveness: the job did something here */
    int       lost_early;        /* a peer lost before any local rank joined, or -1 */

    struct dsmd_page *pages;
    struct dsmd_counters node_c; /* a memory node's counts (it has no rank to count them to) */

    /* messages to self, delivered from the loop's idle work */
    struct dsmd_selfmsg *selfq_head, *selfq_tail;

    struct dsmd_sync  *sync;
    struct dsmd_alloc *alloc;
    struct dsmd_ft    *ft;
    struct dsmd_atomics *atomics;
    struct dsmd_trace *trace;    /* NULL unless --trace */
    struct dsmd_hot   *hot;      /* NULL unless --page-stats */
    struct dsmd_fs    *fs;       /* NULL unless --false-sharing */
    struct dsmd_cache *cache;    /* NULL unless DSM_CACHE_SIZE */
    struct dsmd_direct *direct;  /* the listener for other nodes' ranks: NULL unless DSM_DIRECT */
    /* direct reads of this node's ranks (direct.c): messages of the homes held back for
     * claimed pages (in arrival order), and claims found done that end at the next flush */
    struct dsmd_land {
        struct dsmd_held *held, **held_tail;
        size_t    nheld;
        uint64_t *settle;
        size_t    nsettle, capsettle;
    } land;

    struct dsmd_range_op *ranges; /* range revocations in progress (pages.c) */
    uint64_t protect_seq;
    uint64_t faults_inflight;
    int      timerfd;            /* the protocol's timer (svc->timer) */
    uint64_t node_messages, node_bytes;
    /* liveness (watchdog.c): peers heard from, ranks' channels moving */
    int      watchfd;
    int64_t  peer_timeout_ns;    /* silence that fails the job (DSM_PEER_TIMEOUT_MS) */
    int64_t *peer_heard;         /* by node: when anything last arrived from it */
    uint64_t heartbeats_sent;
    int      sigfd;
    int      fini_sent;          /* this node's ranks have all finalized (FINI_ARRIVE sent) */
    int      finishing;          /* every rank finalized: peers may leave */
    int      peers_left;         /* peers that left after finishing */
    int64_t  done_ns;            /* when every local rank had finalized and gone */
    uint64_t answers;            /* messages sent to ranks' main and thread channels */
    uint64_t answers_seen;       /* ... at the last watchdog tick (waits.c) */
    int64_t  stall_since;        /* every local rank waiting since then (0: not stalled) */
    int      stall_told;         /* dsmrun was told STALLED */
    int      aborting;
};

/* ---- hits.c ---- */
/* Size the memfd for the table after the frames, map it, fill its head (frames_create). */
dsm_status_t dsmd_hits_create(struct dsmd *d);
void dsmd_hits_destroy(struct dsmd *d);
/* Local rank lrank's prot row in the table. */
uint8_t *dsmd_hits_prot_row(struct dsmd *d, int lrank);
/* Set open[page] to what the page's state allows now (dsm_hits.h). */
void dsmd_hits_sync(struct dsmd *d, uint64_t page);
/* Close door[page] (dsm_direct.h): 0, or 1 if a rank's claim holds it (it stays). */
int dsmd_hits_close_door(struct dsmd *d, uint64_t page);
/* open[page] := NONE, ordered before the prot reads that follow; door[page] closed. */
void dsmd_hits_close(struct dsmd *d, uint64_t page);
/* The level of rk's access to page as the daemon knows it (a claim counts). */
int dsmd_prot_level(const struct dsmd_rank *rk, uint64_t page);
/* A grant: rk's level becomes at least access, written plain (replacing a claim). */
void dsmd_prot_raise(struct dsmd_rank *rk, uint64_t page, int access);
/* A revocation: rk's level becomes access if above it; 1 if it was (rk needs a PROTECT). */
int dsmd_prot_lower(struct dsmd_rank *rk, uint64_t page, int access);
/* A range cleared: NONE for every page of it (the range's PROTECT goes to every rank). */
void dsmd_prot_reset(struct dsmd_rank *rk, uint64_t first, uint64_t n);
/* rk may have page mapped: a level above NONE that is not a claim left by a hit that backed off. */
int dsmd_prot_mapped(const struct dsmd_rank *rk, uint64_t page);
/* The first page whose open[] promises more than its state allows now, whose door[] offers
 * a page its state does not, or whose direct read stands while the node holds or asks for
 * it; or -1 (the invariants of hits.c and direct.c; checked between events by the node
 * fuzzer). */
int64_t dsmd_hits_check(const struct dsmd *d);
/* Add the ranks' hits to their counters (before they are reported). */
void dsmd_hits_fold(struct dsmd *d);

/* ---- direct.c ---- */
/* Listen for other nodes' ranks (cfg.direct); nothing otherwise. */
dsm_status_t dsmd_direct_init(struct dsmd *d);
void dsmd_direct_fini(struct dsmd *d);
/* As home: m, a GRANT to node, answers a rank's direct READ: its page went to the rank
 * (1), and m goes on without the frame; 0: not a direct read's. */
int dsmd_direct_answer(struct dsmd *d, int node, const dsmw_msg_t *m);
/* As home: pages [first, first+n) were reset (freed): refuse the direct reads of them that
 * wait for the model's answer, which will not come. */
void dsmd_direct_reset(struct dsmd *d, uint64_t first, uint64_t n);
/* door[page] holds a rank's claim (dsm_direct.h); any page of a range does. */
int dsmd_direct_claimed(const struct dsmd *d, uint64_t page);
int dsmd_direct_range_claimed(const struct dsmd *d, uint64_t first, uint64_t n);
/* The claimant's local rank index, or -1. */
int dsmd_direct_claimant(const struct dsmd *d, uint64_t page);
/* Something of the node waits on page (a fault): 1 if a claim holds it (the claimant is
 * asked to say when it is done, or the claim ends at the next flush), 0 if none does. */
int dsmd_direct_park(struct dsmd *d, uint64_t page);
/* End page's claim now if its rank is done (a fault is about to look at the page). */
void dsmd_direct_settle(struct dsmd *d, uint64_t page);
/* A free clears page while a claim holds it: count the claim's grant now, so the free's
 * PROTECT (sent alone) waits for the rank's mprotect. */
void dsmd_direct_count_ahead(struct dsmd *d, uint64_t page);
/* A message of the home about a claimed page: 1 if held back until the claim ends (or the
 * job failed); 0 to deliver it now (the claim ended first if its rank was done). */
int dsmd_direct_hold(struct dsmd *d, int src, const dsmw_msg_t *m, const uint8_t *buf, size_t len, int framed);
/* End the claims found done meanwhile (before the loop sleeps). */
void dsmd_direct_flush(struct dsmd *d);
/* DIRECT_DONE on c: 0, or non-zero if the channel must close (a page past the space). */
int dsmd_direct_done(struct dsmd *d, struct dsmd_chan *c, uint64_t page);
/* Count the direct reads done but not yet ended (before the counters are reported). */
void dsmd_direct_fold(struct dsmd *d);
/* DIRECT_INFO and DIRECT_PROOF on c. */
void dsmd_direct_request(struct dsmd *d, struct dsmd_chan *c, const struct dsmc_msg *m);
/* A peer's DIRECT_PORT. */
dsm_status_t dsmd_direct_message(struct dsmd *d, int src, const dsmw_msg_t *m);
/* A peer is up: tell it this node's direct port. */
void dsmd_direct_peer_up(struct dsmd *d, int node);
/* Watchdog: drop connections that never said HELLO. */
void dsmd_direct_check(struct dsmd *d, int64_t now_ns);
/* The listener's port (0: none). */
uint16_t dsmd_direct_port(const struct dsmd *d);
/* As home: READs answered with a page, and refused. */
void dsmd_direct_stats(const struct dsmd *d, uint64_t *reads, uint64_t *refused);

/* ---- pages.c ---- */
dsm_status_t dsmd_pages_init(struct dsmd *d);
void dsmd_pages_fini(struct dsmd *d);
/* A rank faulted (FAULT on channel c). */
void dsmd_pages_fault(struct dsmd *d, struct dsmd_chan *c, uint64_t page, int write, uint64_t hint);
/* The rank applied a PROTECT (PROTECT_ACK with seq). */
void dsmd_pages_protect_ack(struct dsmd *d, struct dsmd_chan *c, uint64_t seq);
/* A channel closes: forget its waits (a service channel: its PROTECTs count as applied). */
void dsmd_pages_chan_gone(struct dsmd *d, struct dsmd_chan *c);
/* A message arrived on c: the grant sent before it on c has been applied. */
void dsmd_pages_chan_heard(struct dsmd *d, struct dsmd_chan *c);
/* Grant a page's waiting faults what the node has, ask the protocol for the rest. */
void dsmd_pages_kick(struct dsmd *d, uint64_t page);
/* A rank's direct read of page has landed: run the revocations that waited for it, then
 * kick the page's faults. */
void dsmd_pages_landed(struct dsmd *d, uint64_t page);
/* Send every gathered run of protection changes (before the loop sleeps). */
void dsmd_pages_flush(struct dsmd *d);
/* Fail the job if a rank has left a protection change unapplied longer than the peer
 * timeout (watchdog). */
void dsmd_pages_check_stalls(struct dsmd *d, int64_t now_ns);
/* Take every local rank's access to [first, first+n) to NONE, wait until the protocol's
 * exchanges on the range are over (dsmp.h settled), punch the frames to zero, reset the
 * pages' state; then call done(d, arg). `arg` is heap memory the call owns until
 * done runs: if the daemon ends first, dsmd_pages_fini frees it. */
void dsmd_pages_clear_range(struct dsmd *d, uint64_t first, uint64_t n,
                            void (*done)(struct dsmd *d, void *arg), void *arg);
/* Give frames [first, first+n) back to the system (fallocate PUNCH_HOLE: they read as zeroes
 * after): 0; 1 where the transport pins the frames (RDMA: punched pages would go on being
 * written by the NIC), nothing done; -1 if the punch failed (logged). */
int dsmd_pages_punch(struct dsmd *d, uint64_t first, uint64_t n);
/* Zero frames [first, first+n): punched, or zeroed in place where that is not possible. */
void dsmd_pages_zero(struct dsmd *d, uint64_t first, uint64_t n);
/* Services table for the protocol. */
void dsmd_pages_services(struct dsmd *d, struct dsmp_services *svc);

/* ---- cache.c (bounded page cache) ---- */
/* Smallest cache, in pages, for `faulting` threads that can fault at once. */
uint64_t dsmd_cache_min_pages(int faulting);
dsm_status_t dsmd_cache_init(struct dsmd *d);
void dsmd_cache_fini(struct dsmd *d);
/* A thread channel opened: fail the job if the node's threads that can fault at once need
 * more than its cache (dsmd_cache_min_pages). */
dsm_status_t dsmd_cache_check_threads(struct dsmd *d);
/* A fault on page is about to go to the protocol with read-ahead *ahead: 1 if it may (a frame
 * taken, *ahead cut to the frames free and reserved), 0 if it waits for a frame (queued; the
 * page is kicked again by dsmd_cache_pump). Always 1 without a bound and for home pages. */
int dsmd_cache_admit(struct dsmd *d, uint64_t page, uint32_t *ahead);
/* The protocol raised the node's access to page: it holds a frame now. */
void dsmd_cache_opened(struct dsmd *d, uint64_t page);
/* page's outstanding fault was granted: its read-ahead reservation ends. */
void dsmd_cache_granted(struct dsmd *d, uint64_t page);
/* A rank faulted on page (CLOCK's reference bit). */
void dsmd_cache_touched(struct dsmd *d, uint64_t page);
/* The node's access to page went to NONE: first in line for eviction. */
void dsmd_cache_invalidated(struct dsmd *d, uint64_t page);
/* [first, first+n) are being cleared (region free): forget their frames and evictions. */
void dsmd_cache_cleared(struct dsmd *d, uint64_t first, uint64_t n);
/* Before the loop sleeps: admit queued faults while frames are free, start evictions for
 * the rest. */
void dsmd_cache_pump(struct dsmd *d);
/* Most pages the cache ever held (0 without a bound). */
uint64_t dsmd_cache_peak(const struct dsmd *d);

/* ---- clients.c ---- */
dsm_status_t dsmd_clients_init(struct dsmd *d);
void dsmd_clients_fini(struct dsmd *d);
/* Send one channel message; on failure the channel is closed. */
dsm_status_t dsmd_chan_send(struct dsmd *d, struct dsmd_chan *c, struct dsmc_msg *m);
/* Reply on channel c with `status` and value a. */
void dsmd_chan_reply(struct dsmd *d, struct dsmd_chan *c, int status, uint64_t a);
struct dsmd_chan *dsmd_chan_by_id(struct dsmd *d, int id);
/* Fail the job if a rank has left a channel's messages untaken for longer than allowed. */
void dsmd_clients_check_stalls(struct dsmd *d, int64_t now_ns);
/* Tell every local rank the job is failing, then stop. */
void dsmd_abort_ranks(struct dsmd *d, int status, const char *text);
/* 1 once any local rank has called dsm_init. */
int dsmd_clients_any_joined(const struct dsmd *d);
/* dsmrun saw local rank `rank` exit with `status` (shell convention: 128+S for signal S). */
void dsmd_clients_rank_exited(struct dsmd *d, int rank, int status);

/* ---- peers.c ---- */
dsm_status_t dsmd_peers_init(struct dsmd *d);
dsm_status_t dsmd_peers_connect(struct dsmd *d);
void dsmd_peers_fini(struct dsmd *d);
/* Send m to node (self included). m->origin attributes it for statistics. */
dsm_status_t dsmd_send(struct dsmd *d, int node, dsmw_msg_t *m, uint64_t attach);
/* Deliver an encoded message of node src again (one held back: direct.c). */
void dsmd_peers_redeliver(struct dsmd *d, int src, const uint8_t *buf, size_t len);
/* Send m to every node (self included). */
void dsmd_broadcast(struct dsmd *d, dsmw_msg_t *m);
/* The job cannot go on: tell everyone (peers and local ranks), then stop. */
void dsmd_abort(struct dsmd *d, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* The same, when one rank is the cause: dsmrun gets "CULPRIT <rank> <kind> <text>" first, kind
 * one word it knows (exited: left without dsm_finalize; absent: exited without dsm_init;
 * finalized: called dsm_finalize while others wait in a barrier; stalled; deadlock). */
void dsmd_abort_rank(struct dsmd *d, int rank, const char *kind, int status, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* Nodes that run ranks: the first nnodes - memory_nodes. */
#define DSMD_COMPUTE_NODES(d) ((d)->cfg.nnodes - (d)->cfg.memory_nodes)
/* Statistics: count for global rank `origin` (non-local ranks count to this node's first; a
 * memory node's to its own node_c). */
struct dsmd_counters *dsmd_counters_for(struct dsmd *d, int origin);

/* ---- waits.c (deadlock watchdog) ---- */
/* Watchdog tick: "STALLED <ms>" / "RUNNING" to dsmrun. */
void dsmd_waits_tick(struct dsmd *d, int64_t now);
/* dsmrun asked (stdin "WAITS"): what every local rank waits for, then "WAITS-END <node>". */
void dsmd_waits_report(struct dsmd *d);

/* ---- sync.c ---- */
dsm_status_t dsmd_sync_init(struct dsmd *d);
/* For the deadlock report: "WAITS" lines on the locks managed here with waiters, and at
 * node 0 the barrier and finalize arrivals so far. */
void dsmd_sync_describe(struct dsmd *d);
/* Local rank `rank` exited (status) without dsm_init: tell every node (RANK_ABSENT). */
void dsmd_sync_rank_absent(struct dsmd *d, int rank, int status);
void dsmd_sync_fini(struct dsmd *d);
/* A RANK_ABSENT (a rank that exited without dsm_init) came from node (-1: from any). */
int dsmd_sync_absent_from(const struct dsmd *d, int node);
/* Barriers completed at this node (the window of falseshare.c). */
uint64_t dsmd_sync_barriers(const struct dsmd *d);
void dsmd_sync_request(struct dsmd *d, struct dsmd_chan *c, const struct dsmc_msg *m);
dsm_status_t dsmd_sync_message(struct dsmd *d, int src, const dsmw_msg_t *m);
/* A channel closes: forget its waits. */
void dsmd_sync_chan_gone(struct dsmd *d, struct dsmd_chan *c);

/* ---- alloc.c ---- */
dsm_status_t dsmd_alloc_init(struct dsmd *d);
void dsmd_alloc_fini(struct dsmd *d);
void dsmd_alloc_request(struct dsmd *d, struct dsmd_chan *c, const struct dsmc_msg *m);
dsm_status_t dsmd_alloc_message(struct dsmd *d, int src, const dsmw_msg_t *m);
void dsmd_alloc_chan_gone(struct dsmd *d, struct dsmd_chan *c);
/* The page after the allocation holding `page`, as this node knows it (a collective region;
 * a dsm_malloc block of this node's arena), or page + 1 when it knows none. */
uint64_t dsmd_alloc_end(struct dsmd *d, uint64_t page);

/* ---- atomics.c ---- */
dsm_status_t dsmd_atomics_init(struct dsmd *d);
void dsmd_atomics_fini(struct dsmd *d);
/* Pages [first, first+n) were reset (freed): atomics still in the protocol's prepare step
 * for them are answered DSM_EINVAL (the protocol dropped their continuations). */
void dsmd_atomics_region_reset(struct dsmd *d, uint64_t first, uint64_t n);
/* A rank's DSMC_ATOMIC: checked, then sent to the page's home. */
void dsmd_atomic_request(struct dsmd *d, struct dsmd_chan *c, const struct dsmc_msg *m);
/* ATOMIC_REQ (at the home) or ATOMIC_REPLY (at the requester's node). */
dsm_status_t dsmd_atomic_message(struct dsmd *d, int src, const dsmw_msg_t *m);

/* ---- firsttouch.c ---- */
dsm_status_t dsmd_ft_init(struct dsmd *d);
void dsmd_ft_fini(struct dsmd *d);
/* Page has no home yet (DSMD_HOME_UNDECIDED): claim it (once per page) and, when its home
 * is known here, kick its faults (dsmd_pages_kick) and call fn(d, arg) if fn is not NULL
 * (continuations in order; `arg` is one heap block, freed by fini if the daemon ends first). */
void dsmd_ft_wait(struct dsmd *d, uint64_t page, void (*fn)(struct dsmd *d, void *arg), void *arg);
/* HOME_CLAIM (node 0), HOME_IS (claimant), HOME_ACK (node 0). */
dsm_status_t dsmd_ft_message(struct dsmd *d, int src, const dsmw_msg_t *m);
/* Node 0: a region's pages are undecided again (it was freed). */
void dsmd_ft_region_reset(struct dsmd *d, uint64_t first, uint64_t n);
/* Claims this node sent (statistics). */
uint64_t dsmd_ft_claims(const struct dsmd *d);

/* ---- trace.c (d->trace set: every call but init, fini, print, mesh_up and
 * clock_message needs it) ---- */
dsm_status_t dsmd_trace_init(struct dsmd *d);
void dsmd_trace_fini(struct dsmd *d);
/* A rank's request m arrived on c (also used by --page-stats for allocation sites). */
void dsmd_trace_request(struct dsmd *d, struct dsmd_chan *c, const struct dsmc_msg *m);
/* m answers c's request (REPLY or GRANT): its event ends. */
void dsmd_trace_answer(struct dsmd *d, struct dsmd_chan *c, const struct dsmc_msg *m);
/* The protocol's fault() for page starts; its grant() ends it. */
void dsmd_trace_fetch_start(struct dsmd *d, uint64_t page);
void dsmd_trace_fetch_done(struct dsmd *d, uint64_t page, int access);
/* A revocation of page to access, started at t0, is done. */
void dsmd_trace_revoke(struct dsmd *d, uint64_t page, int access, int64_t t0);
/* A message to (out) or from peer, `bytes` long in all. */
void dsmd_trace_message(struct dsmd *d, int out, int peer, const dsmw_msg_t *m, size_t bytes);
/* The mesh is up: measure the clock offset to node 0 (traced jobs, nodes but 0). */
void dsmd_trace_mesh_up(struct dsmd *d);
/* CLOCK_REQ (node 0) or CLOCK_REPLY. */
dsm_status_t dsmd_trace_clock_message(struct dsmd *d, int src, const dsmw_msg_t *m);
/* "TRACE-CLOCK", "T" lines on stdout. */
void dsmd_trace_print(struct dsmd *d);

/* ---- hotspots.c (d->hot set, but for init, fini, print and writers) ---- */
dsm_status_t dsmd_hot_init(struct dsmd *d);
void dsmd_hot_fini(struct dsmd *d);
void dsmd_hot_fault(struct dsmd *d, int rank, uint64_t page, int write);
/* A local rank's access to page was taken to NONE. */
void dsmd_hot_inval(struct dsmd *d, uint64_t page);
/* A message to a peer, `bytes` long in all: counted to its page if it carries one. */
void dsmd_hot_sent(struct dsmd *d, const dsmw_msg_t *m, size_t bytes);
/* c's allocation request was answered with addr (size bytes). */
void dsmd_hot_alloc(struct dsmd *d, struct dsmd_chan *c, uint64_t addr, uint64_t size);
/* Mask of the global ranks < 64 that took write faults on page here (0 without d->hot). */
uint64_t dsmd_hot_writers(const struct dsmd *d, uint64_t page);
/* "PAGE", "ALLOC" lines on stdout. */
void dsmd_hot_print(struct dsmd *d);

/* ---- falseshare.c (d->fs set, but for init, fini, reset, print, message) ---- */
dsm_status_t dsmd_fs_init(struct dsmd *d);
void dsmd_fs_fini(struct dsmd *d);
/* A local rank gets write access to page. */
void dsmd_fs_write_grant(struct dsmd *d, uint64_t page);
/* Every local rank's access to page is down to `access` (all applied). */
void dsmd_fs_revoked(struct dsmd *d, uint64_t page, int access);
/* Every local rank arrived at a barrier or finalize: this node's writes of the window so
 * far go home. */
void dsmd_fs_window_end(struct dsmd *d);
/* svc->applying: the protocol is about to apply node src's diff to page's frame. */
void dsmd_fs_applying(struct dsmd *d, uint64_t page, int src, const uint8_t *diff, size_t len);
/* FS_WROTE at the home. */
dsm_status_t dsmd_fs_message(struct dsmd *d, int src, const dsmw_msg_t *m);
/* Pages [first, first+n) were reset (allocated or freed). */
void dsmd_fs_reset(struct dsmd *d, uint64_t first, uint64_t n);
/* "FS" lines on stdout. */
void dsmd_fs_print(struct dsmd *d);

/* ---- watchdog.c ---- */
/* Heartbeats to every peer and the silence check, every fifth of the peer timeout. */
dsm_status_t dsmd_watchdog_init(struct dsmd *d);
void dsmd_watchdog_fini(struct dsmd *d);
/* Something arrived from node: it is alive. */
void dsmd_watchdog_heard(struct dsmd *d, int node);
int64_t dsmd_now_ns(void);

/* ---- node.c ---- */
/* Frames, page table, protocol, sync and alloc for d->cfg (the loop exists already). */
dsm_status_t dsmd_node_setup(struct dsmd *d);
/* Undo everything the node holds (whatever part of set-up ran), the loop included. */
void dsmd_node_teardown(struct dsmd *d);
/* After a clean run: every channel message delivered, every protection change applied. */
dsm_status_t dsmd_node_check_channels(struct dsmd *d);
/* "STATS <json>" on stdout. */
void dsmd_node_print_stats(struct dsmd *d);
/* Print one line for the launcher on stdout. */
void dsmd_announce(struct dsmd *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Every local rank has finalized and gone, or stdin closed: wind down. */
void dsmd_maybe_exit(struct dsmd *d);

static inline struct dsmd_rank *dsmd_rank_of(struct dsmd *d, struct dsmd_chan *c)
{
    return c->lrank >= 0 ? &d->ranks[c->lrank] : NULL;
}

#endif

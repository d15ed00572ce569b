/*
 * sequential.c - sequential consistency: single writer / multiple readers, write-invalidate,
 * with a fixed home per page that keeps the page's directory entry (IVY's fixed
 * distributed manager, home-based).
 *
 * Every page has a home node (chosen at allocation). The home's directory entry holds
 * `owner` (the node with the only writable copy, or NONE) and `copyset` (the nodes holding
 * a valid copy). Each node also knows its own access to the page (`local`).
 *
 * Invariants (per page):
 *   I1  owner != NONE  =>  copyset == { owner } and owner is the only node with WRITE.
 *   I2  owner == NONE  =>  home is in copyset and the home's frame holds the current data;
 *                          every node in copyset has READ and holds the same data.
 *   I3  A node not in copyset has local NONE and no rank of it can touch the frame, so an
 *       incoming frame may be written in place.
 *   I4  The home runs one transaction per page at a time (busy); requests that arrive
 *       meanwhile wait in the page's queue, in arrival order. Every grant, invalidation
 *       and fetch for a page is sent by its home, and messages between two nodes stay in
 *       order, so a node sees a page's grants and invalidations in the order the home
 *       decided them.
 *   I5  A node has at most one request per page outstanding (the daemon coalesces
 *       faults); it sends another only after the grant of the first.
 *
 * Directory state at the home (S = |copyset|):
 *
 *              READ_REQ from R                       WRITE_REQ from W
 *   SHARED  ------------------> SHARED (+R)   SHARED ----------------> EXCL(W)
 *   (owner NONE)                              INV to copyset-{W}, wait INV_ACKs,
 *                                             data to W if W was not in copyset
 *
 *   EXCL(O) ------------------> SHARED        EXCL(O) ---------------> EXCL(W)
 *            FETCH(READ) to O, FETCH_REPLY             FETCH(NONE) to O, FETCH_REPLY
 *            data to home, then to R                   data to home, then to W
 *
 *              EVICT from E (bounded cache: E gives its copy back)
 *   EXCL(E) ------------------> SHARED {home}   FETCH(NONE) to E, FETCH_REPLY: data to home
 *   SHARED (E in copyset) ----> SHARED (-E)     INV to E, INV_ACK
 *   otherwise ----------------> unchanged       (E's copy went meanwhile)
 *            then EVICTED to E: its frame may go
 *
 * Transitions and the functions that perform them:
 *   fault at a node                      -> seq_fault        (READ_REQ / WRITE_REQ to home)
 *   READ_REQ / WRITE_REQ at home         -> seq_request      (queue or start a transaction)
 *   start of a read transaction          -> txn_read
 *   READ_REQ with pages ahead at home    -> batch_start (batch_revoked, batch_send)
 *   start of a write transaction         -> txn_write
 *   INV at a copy holder                 -> seq_give_up      (revoke to NONE, then INV_ACK)
 *   FETCH at the owner                   -> seq_give_up      (revoke to READ/NONE, FETCH_REPLY + frame)
 *   INV_ACK / FETCH_REPLY at home        -> txn_ack          (count down, then txn_finish)
 *   end of a transaction                 -> txn_finish       (GRANT to requester, next request)
 *   GRANT at the requester               -> seq_grant        (node access up, wake ranks;
 *                                                             pages read ahead: ahead_arrived)
 *   the daemon evicts a page (its cache)  -> seq_evict        (EVICT to home; nothing if NONE)
 *   start of an eviction at home          -> txn_evict        (FETCH(NONE) or INV to the evicter)
 *   EVICTED at the evicter                -> seq_evicted      (the daemon punches the frame)
 *
 * The home talks to itself through the same messages (the daemon queues messages to
 * self), so a home's own ranks follow exactly the paths above.
 *
 * Read-ahead. A read fault of a scanning thread (the daemon's `ahead` hint) asks, in the
 * same READ_REQ, for the pages after it that have the same home and that this node has no
 * copy of and no request out for (`count` of them, at most dsmp_ahead_cap). If the faulting
 * page needs no FETCH (the home's frame is current, or the home itself owns the page), the
 * home runs one batch transaction over it and every asked page it can serve the same way
 * (not busy, not owned by another node): its own ranks go down to READ where the home owned
 * a page, then one GRANT carries the faulting page as its frame and the others in `data`
 * (`count` = bitmap of those served), and the requester joins each page's copyset. Pages
 * not served go the normal way when a rank faults on them. A batch's pages are busy
 * together, so I4 holds page by page; a requester's asked pages count as requested for I5
 * until the GRANT of the page they were asked with (a fault on one waits for it).
 *
 * Eviction. A node gives a page back only with no request of its own out for it (I5): it
 * sends EVICT and counts it as its request (RQ_EVICT) until EVICTED. The home runs it as a
 * transaction like any other (I4): the evicter's copy goes by the same FETCH(NONE) or INV a
 * writer's request would send, so a dirty page's data (ownership) is back at the home before
 * EVICTED leaves it, and messages in order mean the evicter has given its copy up when
 * EVICTED arrives. A page at NONE with nothing out is evicted at once, without a message.
 * The daemon evicts on its own, so an eviction may cross the page's free: a region free
 * waits at every node until its evictions there are over (seq_settled, as evicter and as
 * home), so no FETCH_REPLY lands in a zeroed frame; a home that no longer has the page
 * answers EVICT at once, and an evicter still holding a copy then drops it.
 *
 * Atomics (dsm_atomic_*) are transactions of the home for itself: an atomic write runs
 * txn_write with the home as the writer (every other copy goes, the owner's data comes
 * back), an atomic load txn_read; at their end, instead of a GRANT message, the daemon
 * performs the operation on the home's frame (seq_atomic_prepare -> txn_finish). So an
 * atomic is a write (or read) of the home's, ordered with every plain access by the
 * directory: sequential consistency holds for plain accesses and atomics together.
 */
#include <stdlib.h>
#include <string.h>

#include "ahead.h"
#include "dsm_log.h"
#include "dsmp.h"
#include "pending.h"

#define NO_NODE (-1)

/* A transaction's type: READ_REQ or WRITE_REQ, or'ed with SEQ_ATOMIC for the home's own
 * transaction before an atomic operation. */
#define SEQ_ATOMIC 0x100
#define TXN_KIND(t) ((t) & ~SEQ_ATOMIC)

/* A request waiting at the home behind the running transaction. */
struct seq_req {
    struct seq_req *next;
    int type;    /* see SEQ_ATOMIC */
    int node;
    int origin;
    dsmp_done_fn ready; /* SEQ_ATOMIC: the daemon's continuation */
    void *arg;
};

/* Requester side, per page (rq): the request this node has out for it (I5). */
enum {
    RQ_LEAD = 1,        /* a READ_REQ/WRITE_REQ for this page is out */
    RQ_EXTRA = 2,       /* asked for along with the page lead_off[] before it */
    RQ_WANT_READ = 4,   /* RQ_EXTRA, and a local rank faulted on it meanwhile */
    RQ_WANT_WRITE = 8,
    RQ_EVICT = 16,      /* an EVICT for this page is out */
};

/* Evicter side: an eviction waiting for its EVICTED (few: the daemon's frame queue), then
 * for the revocation of a stale copy (on `revoking`, pending.h). */
struct seq_evict {
    struct dsmp_pending link; /* first: on `revoking` once its EVICTED came */
    struct seq_evict *next;
    uint64_t page;
    dsmp_done_fn done;
    void *arg;
};

/* The continuation of an atomic transaction that is running. */
struct seq_atomic {
    struct seq_atomic *next;
    uint64_t page;
    dsmp_done_fn ready;
    void *arg;
};

/* Directory entry, meaningful at the page's home only. Its two node sets, the copyset
 * and the nodes whose reply the transaction awaits, live in dsmp.sets (set_of()). */
struct seq_dir {
    int32_t  expect;     /* the reply it awaits from them: INV_ACK or FETCH_REPLY */
    int16_t  owner;      /* NO_NODE when shared */
    uint8_t  busy;       /* a transaction is running */
    uint8_t  need_data;  /* the requester lacks the data */
    int16_t  acks;       /* replies still expected */
    int16_t  t_node;     /* requester of the running transaction */
    int32_t  t_origin;
    int32_t  t_type;
    struct seq_req *qhead, *qtail;
};

struct dsmp {
    struct dsmp_services svc;
    uint8_t        *local;  /* this node's access per page */
    struct seq_dir *dir;
    /* Node sets, two per page (COPYSET, ASKED), `words` 64-bit words each: any number of
     * nodes, at 2 * ceil(nnodes / 64) * 8 bytes per page of the space. */
    uint64_t       *sets;
    size_t          words;
    struct seq_atomic *atomics; /* running atomic transactions (few) */
    struct seq_evict *evicts;   /* EVICTs out */
    struct dsmp_pending *revoking; /* revocations out whose done() answers a peer or ends an
                                    * eviction: seq_reply, seq_evict (pending.h) */
    /* read-ahead: requester's state per page (RQ_*), pages asked with a lead page (at the
     * lead), distance of an asked page from its lead (at the asked page); home's batches */
    uint8_t        *rq;
    uint8_t        *extras;
    uint8_t        *lead_off;
    struct dsmp_batch *batches; /* home: read-ahead batches being served */
    uint32_t        ahead_cap;
    uint8_t        *scratch;    /* a batch GRANT's data: ahead_cap pages */
};

enum { COPYSET = 0, ASKED = 1 };

/* Node set `which` of page's directory entry. */
static uint64_t *set_of(dsmp_t *p, uint64_t page, int which)
{
    return &p->sets[(page * 2 + (uint64_t)which) * p->words];
}

static int set_has(const uint64_t *s, int n)
{
    return (s[n / 64] >> (n % 64)) & 1;
}

static void set_add(uint64_t *s, int n)
{
    s[n / 64] |= 1ull << (n % 64);
}

static void set_del(uint64_t *s, int n)
{
    s[n / 64] &= ~(1ull << (n % 64));
}

/* Make s the set { n }. */
static void set_only(dsmp_t *p, uint64_t *s, int n)
{
    memset(s, 0, p->words * sizeof(*s));
    set_add(s, n);
}

/* 1 if the set holds node n and no other. */
static int set_is_only(const dsmp_t *p, const uint64_t *s, int n)
{
    for (size_t w = 0; w < p->words; w++)
        if (s[w] != ((size_t)n / 64 == w ? 1ull << (n % 64) : 0))
            return 0;
    return 1;
}

static void txn_start(dsmp_t *p, uint64_t page, int type, int node, int origin);
static void batch_revoked(dsmp_t *p, void *arg);
static dsm_status_t txn_queue(dsmp_t *p, uint64_t page, int type, int node, int origin, dsmp_done_fn ready,
                              void *arg);

static int is_home(dsmp_t *p, uint64_t page)
{
    return p->svc.home(p->svc.ctx, page) == p->svc.self;
}

static void send_msg(dsmp_t *p, int node, int type, uint64_t page, int access, int origin,
                     uint64_t attach)
{
    dsmw_msg_t m;

    dsmw_init(&m, type);
    m.page = page;
    m.access = (uint32_t)access;
    m.origin = (uint32_t)origin;
    m.node = (uint32_t)p->svc.self;
    p->svc.send(p->svc.ctx, node, &m, attach);
}

/* Home: EVICTED to the evicter; `untaken` when this node took no copy from it (none known
 * here: another transaction took it, or a free reset the page meanwhile). */
static void send_evicted(dsmp_t *p, int node, uint64_t page, int origin, int untaken)
{
    dsmw_msg_t m;

    dsmw_init(&m, DSMW__TYPE__EVICTED);
    m.page = page;
    m.origin = (uint32_t)origin;
    m.node = (uint32_t)p->svc.self;
    m.count = (uint64_t)untaken;
    p->svc.send(p->svc.ctx, node, &m, DSMP_NO_FRAME);
}

/* Requester: page q may be asked for ahead: no copy here, no request out (dsmp_ahead_count). */
static int ahead_absent(dsmp_t *p, uint64_t q)
{
    return p->local[q] == DSM_ACCESS_NONE && p->rq[q] == 0 && (p->svc.take == NULL || p->svc.take(p->svc.ctx, q));
}

/* Requester: a rank may read page from its home directly (dsmp.h direct_idle). */
static int seq_direct_idle(dsmp_t *p, uint64_t page)
{
    return !is_home(p, page) && p->local[page] == DSM_ACCESS_NONE && p->rq[page] == 0;
}

/* Requester side: ask the home for `access` (and, for a scan's read, the pages after it). */
static void seq_fault(dsmp_t *p, uint64_t page, int access, int origin, uint32_t ahead)
{
    int home = p->svc.home(p->svc.ctx, page);
    uint32_t n = 0;
    dsmw_msg_t m;

    if (p->rq[page] & RQ_EXTRA) { /* asked with an earlier page: its GRANT answers (I5) */
        p->rq[page] |= access == DSM_ACCESS_WRITE ? RQ_WANT_WRITE : RQ_WANT_READ;
        return;
    }
    if (access == DSM_ACCESS_READ && home != p->svc.self)
        n = dsmp_ahead_count(p, &p->svc, page, home, ahead, p->ahead_cap, ahead_absent);
    if (home != p->svc.self) /* the home's own requests end in txn_finish, not in a GRANT */
        p->rq[page] = RQ_LEAD;
    p->extras[page] = (uint8_t)n;
    for (uint32_t i = 1; i <= n; i++) {
        p->rq[page + i] = RQ_EXTRA;
        p->lead_off[page + i] = (uint8_t)i;
    }
    dsmw_init(&m, access == DSM_ACCESS_WRITE ? DSMW__TYPE__WRITE_REQ : DSMW__TYPE__READ_REQ);
    m.page = page;
    m.access = (uint32_t)access;
    m.origin = (uint32_t)origin;
    m.node = (uint32_t)p->svc.self;
    m.count = n;
    p->svc.send(p->svc.ctx, home, &m, DSMP_NO_FRAME);
}

/* Home: an atomic transaction starts; keep its continuation. */
static void atomic_started(dsmp_t *p, uint64_t page, dsmp_done_fn ready, void *arg)
{
    struct seq_atomic *a = malloc(sizeof(*a)), **pp;

    if (a == NULL) {
        dsmp_fail(&p->svc, DSM_ENOMEM, "sequential: out of memory for an atomic operation");
        return;
    }
    *a = (struct seq_atomic){ .page = page, .ready = ready, .arg = arg };
    for (pp = &p->atomics; *pp; pp = &(*pp)->next)
        ;
    *pp = a;
}

/* Home: the atomic transaction of page has its access: let the daemon do the operation. */
static void atomic_run(dsmp_t *p, uint64_t page)
{
    for (struct seq_atomic **pp = &p->atomics; *pp; pp = &(*pp)->next) {
        struct seq_atomic *a = *pp;

        if (a->page == page) {
            *pp = a->next;
            a->ready(p, a->arg);
            free(a);
            return;
        }
    }
}

/* Home: the page's transaction is over: start the one queued next, if any. */
static void txn_next(dsmp_t *p, uint64_t page)
{
    struct seq_dir *d = &p->dir[page];
    struct seq_req *next = d->qhead;

    d->busy = 0;
    if (next == NULL)
        return;
    d->qhead = next->next;
    if (d->qhead == NULL)
        d->qtail = NULL;
    if (next->type & SEQ_ATOMIC)
        atomic_started(p, page, next->ready, next->arg);
    txn_start(p, page, next->type, next->node, next->origin);
    free(next);
}

/* Home: end the running transaction with a grant to its requester, then start the next. */
static void txn_finish(dsmp_t *p, uint64_t page)
{
    struct seq_dir *d = &p->dir[page];
    int node = d->t_node, access;

    if (TXN_KIND(d->t_type) == DSMW__TYPE__EVICT) {
        /* the evicter's copy is gone (FETCH_REPLY / INV_ACK updated the entry) */
        DSMP_INVARIANT(d->owner != node && !set_has(set_of(p, page, COPYSET), node), "I3");
        send_evicted(p, node, page, d->t_origin, !d->need_data);
        txn_next(p, page);
        return;
    }
    if (TXN_KIND(d->t_type) == DSMW__TYPE__WRITE_REQ) {
        d->owner = (int16_t)node;
        set_only(p, set_of(p, page, COPYSET), node);
        access = DSM_ACCESS_WRITE;
    } else {
        d->owner = NO_NODE;
        set_add(set_of(p, page, COPYSET), node);
        access = DSM_ACCESS_READ;
    }
    if (node == p->svc.self && (d->t_type & SEQ_ATOMIC)) {
        p->local[page] = (uint8_t)access; /* for the daemon's update; no fault of the home's ended */
        p->svc.set_access(p->svc.ctx, page, access);
    } else if (node == p->svc.self) {
        p->local[page] = (uint8_t)access;
        p->svc.grant(p->svc.ctx, page, access);
    } else {
        send_msg(p, node, DSMW__TYPE__GRANT, page, access, d->t_origin,
                 d->need_data ? page : DSMP_NO_FRAME);
    }
    DSMP_INVARIANT(d->owner == NO_NODE || set_is_only(p, set_of(p, page, COPYSET), d->owner), "I1");
    DSMP_INVARIANT(d->owner != NO_NODE || set_has(set_of(p, page, COPYSET), p->svc.self), "I2");
    if (d->t_type & SEQ_ATOMIC)
        atomic_run(p, page);
    txn_next(p, page);
}

/* Home: one expected reply (INV_ACK, FETCH_REPLY or a local revocation) has come. */
static void txn_ack(dsmp_t *p, uint64_t page)
{
    struct seq_dir *d = &p->dir[page];

    if (--d->acks == 0)
        txn_finish(p, page);
}

static void local_revoked(dsmp_t *p, void *arg)
{
    txn_ack(p, (uint64_t)(uintptr_t)arg);
}

/* Home: serve a read. The data is at the home unless another node owns the page. */
static void txn_read(dsmp_t *p, uint64_t page)
{
    struct seq_dir *d = &p->dir[page];
    int self = p->svc.self;

    d->need_data = 1;
    d->acks = 1;
    if (d->owner == NO_NODE) {
        txn_ack(p, page);
    } else if (d->owner == self) {
        p->local[page] = DSM_ACCESS_READ;
        p->svc.revoke(p->svc.ctx, page, DSM_ACCESS_READ, local_revoked, (void *)(uintptr_t)page);
    } else {
        set_only(p, set_of(p, page, ASKED), d->owner);
        d->expect = DSMW__TYPE__FETCH_REPLY;
        send_msg(p, d->owner, DSMW__TYPE__FETCH, page, DSM_ACCESS_READ, d->t_origin, DSMP_NO_FRAME);
    }
}

/* Home: serve a write: every other copy goes, and the writer gets the data if it lacks it. */
static void txn_write(dsmp_t *p, uint64_t page)
{
    struct seq_dir *d = &p->dir[page];
    int self = p->svc.self, w = d->t_node;
    uint64_t *copyset = set_of(p, page, COPYSET), *asked = set_of(p, page, ASKED);

    d->need_data = !set_has(copyset, w);
    if (d->owner != NO_NODE && d->owner != w) {
        d->acks = 1;
        if (d->owner == self) {
            p->local[page] = DSM_ACCESS_NONE;
            p->svc.revoke(p->svc.ctx, page, DSM_ACCESS_NONE, local_revoked, (void *)(uintptr_t)page);
        } else {
            set_only(p, asked, d->owner);
            d->expect = DSMW__TYPE__FETCH_REPLY;
            send_msg(p, d->owner, DSMW__TYPE__FETCH, page, DSM_ACCESS_NONE, d->t_origin, DSMP_NO_FRAME);
        }
        return;
    }
    d->acks = 1; /* held until every invalidation is out, so a synchronous ack cannot finish early */
    for (int n = 0; n < p->svc.nnodes; n++) {
        if (n == w || !set_has(copyset, n))
            continue;
        d->acks++;
        if (n == self) {
            p->local[page] = DSM_ACCESS_NONE;
            p->svc.revoke(p->svc.ctx, page, DSM_ACCESS_NONE, local_revoked, (void *)(uintptr_t)page);
        } else {
            set_add(asked, n);
            d->expect = DSMW__TYPE__INV_ACK;
            send_msg(p, n, DSMW__TYPE__INV, page, DSM_ACCESS_NONE, d->t_origin, DSMP_NO_FRAME);
        }
    }
    txn_ack(p, page);
}

/* Home: node E gives its copy back: the owner's data comes home (FETCH(NONE)), a reader's
 * copy is invalidated (INV); one it no longer has needs nothing. EVICTED ends it. */
static void txn_evict(dsmp_t *p, uint64_t page)
{
    struct seq_dir *d = &p->dir[page];
    int e = d->t_node;

    d->need_data = 0; /* here: whether the evicter's copy is taken by this transaction */
    d->acks = 1;
    if (d->owner == e || set_has(set_of(p, page, COPYSET), e)) {
        d->need_data = 1;
        set_only(p, set_of(p, page, ASKED), e);
        d->expect = d->owner == e ? DSMW__TYPE__FETCH_REPLY : DSMW__TYPE__INV_ACK;
        send_msg(p, e, d->owner == e ? DSMW__TYPE__FETCH : DSMW__TYPE__INV, page, DSM_ACCESS_NONE, d->t_origin,
                 DSMP_NO_FRAME);
        return;
    }
    txn_ack(p, page);
}

static void txn_start(dsmp_t *p, uint64_t page, int type, int node, int origin)
{
    struct seq_dir *d = &p->dir[page];

    DSMP_INVARIANT(!d->busy, "I4");
    d->busy = 1;
    d->t_type = type;
    d->t_node = (int16_t)node;
    d->t_origin = origin;
    if (TXN_KIND(type) == DSMW__TYPE__WRITE_REQ)
        txn_write(p, page);
    else if (type == DSMW__TYPE__EVICT)
        txn_evict(p, page);
    else
        txn_read(p, page);
}

/* Home: page q can be read by `node` right away, in a batch: nothing runs on it, no other
 * node owns it, and `node` holds no copy. */
static int batch_page_ok(dsmp_t *p, uint64_t q, int node)
{
    const struct seq_dir *d = &p->dir[q];

    return is_home(p, q) && !d->busy && (d->owner == NO_NODE || d->owner == p->svc.self) &&
           !set_has(set_of(p, q, COPYSET), node);
}

/* Home: q joins batch b: busy until the batch's GRANT; the home's ranks go down to READ
 * where the home owned it (the frame must not change while it is copied). */
static void batch_take(dsmp_t *p, struct dsmp_batch *b, uint64_t q)
{
    struct seq_dir *d = &p->dir[q];

    DSMP_INVARIANT(!d->busy, "I4");
    d->busy = 1;
    d->acks = 0; /* a batch awaits no INV_ACK or FETCH_REPLY: any is refused */
    d->t_type = DSMW__TYPE__READ_REQ;
    d->t_node = (int16_t)b->node;
    d->t_origin = b->origin;
    if (d->owner == p->svc.self) {
        p->local[q] = DSM_ACCESS_READ;
        b->pending++;
        p->svc.revoke(p->svc.ctx, q, DSM_ACCESS_READ, batch_revoked, b);
    }
}

/* Home: q's part of a batch is over: the requester holds a copy, the next request may run. */
static void batch_release(dsmp_t *p, struct dsmp_batch *b, uint64_t q)
{
    struct seq_dir *d = &p->dir[q];

    if (!b->dead) {
        d->owner = NO_NODE;
        set_add(set_of(p, q, COPYSET), b->node);
        DSMP_INVARIANT(set_has(set_of(p, q, COPYSET), p->svc.self), "I2");
    }
    txn_next(p, q);
}

/* Home: every page of batch b is READ here: one GRANT carries them all (see the top). */
static void batch_send(dsmp_t *p, struct dsmp_batch *b)
{
    dsmw_msg_t m;

    dsmp_batch_unlink(&p->batches, b);
    if (!b->dead) {
        dsmw_init(&m, DSMW__TYPE__GRANT);
        m.page = b->first;
        m.access = DSM_ACCESS_READ;
        m.origin = (uint32_t)b->origin;
        m.node = (uint32_t)p->svc.self;
        dsmp_ahead_pack(&p->svc, &m, b->first, b->served, p->ahead_cap, p->scratch);
        p->svc.send(p->svc.ctx, b->node, &m, b->first);
        batch_release(p, b, b->first);
    }
    for (uint32_t i = 1; i <= p->ahead_cap; i++)
        if (b->served & (1u << (i - 1)))
            batch_release(p, b, b->first + i);
    free(b);
}

static void batch_revoked(dsmp_t *p, void *arg)
{
    struct dsmp_batch *b = arg;

    if (--b->pending == 0)
        batch_send(p, b);
}

/* Home: a READ_REQ for `page` with `count` pages after it, when `page` needs no FETCH: serve
 * it and every asked page that batch_page_ok allows in one batch. */
static dsm_status_t batch_start(dsmp_t *p, uint64_t page, int node, int origin, uint32_t count)
{
    struct dsmp_batch *b = dsmp_batch_new(&p->batches, page, node, origin);
    uint64_t end;

    if (b == NULL) {
        DSM_ERR("sequential: out of memory for a read-ahead batch");
        return DSM_ENOMEM;
    }
    batch_take(p, b, page);
    end = p->svc.alloc_end(p->svc.ctx, page);
    for (uint32_t i = 1; i <= count && page + i < end; i++)
        if (batch_page_ok(p, page + i, node)) {
            b->served |= 1u << (i - 1);
            batch_take(p, b, page + i);
        }
    batch_revoked(p, b); /* the hold of batch_start */
    return DSM_OK;
}

/* Home: a request arrives; run it now or queue it behind the running transaction. */
static dsm_status_t seq_request(dsmp_t *p, const dsmw_msg_t *m)
{
    struct seq_dir *d = &p->dir[m->page];

    if (!is_home(p, m->page) && m->type == DSMW__TYPE__EVICT && (int)m->node != p->svc.self &&
        p->svc.home(p->svc.ctx, m->page) == DSMP_NO_HOME) {
        /* an eviction that crossed the page's free: nothing is kept here any more */
        send_evicted(p, (int)m->node, m->page, (int)m->origin, 1);
        return DSM_OK;
    }
    if (!is_home(p, m->page)) {
        DSM_ERR("sequential: request for page %llu from node %u, which is not homed here",
                (unsigned long long)m->page, m->node);
        return DSM_EPROTO;
    }
    if (m->type == DSMW__TYPE__EVICT && (int)m->node == p->svc.self) {
        DSM_ERR("sequential: the home of page %llu asked itself to evict it", (unsigned long long)m->page);
        return DSM_EPROTO;
    }
    if (m->count > (m->type == DSMW__TYPE__READ_REQ ? p->ahead_cap : 0) || ((int)m->node == p->svc.self && m->count)) {
        DSM_ERR("sequential: node %u asked for %llu pages after page %llu (at most %u, reads only)", m->node,
                (unsigned long long)m->count, (unsigned long long)m->page, p->ahead_cap);
        return DSM_EPROTO;
    }
    if (m->count > 0 && !d->busy && (d->owner == NO_NODE || d->owner == p->svc.self))
        return batch_start(p, m->page, (int)m->node, (int)m->origin, (uint32_t)m->count);
    if (!d->busy) {
        txn_start(p, m->page, m->type, (int)m->node, (int)m->origin);
        return DSM_OK;
    }
    return txn_queue(p, m->page, m->type, (int)m->node, (int)m->origin, NULL, NULL);
}

/* Home: queue a transaction behind the running one. */
static dsm_status_t txn_queue(dsmp_t *p, uint64_t page, int type, int node, int origin, dsmp_done_fn ready,
                              void *arg)
{
    struct seq_dir *d = &p->dir[page];
    struct seq_req *r = malloc(sizeof(*r));

    if (r == NULL) {
        DSM_ERR("sequential: out of memory queueing a request");
        return DSM_ENOMEM;
    }
    *r = (struct seq_req){ .type = type, .node = node, .origin = origin, .ready = ready, .arg = arg };
    if (d->qtail)
        d->qtail->next = r;
    else
        d->qhead = r;
    d->qtail = r;
    return DSM_OK;
}


/* Home, before an atomic: for a write, the home must hold the only copy; for a load, a
 * current one. When it already does, the operation goes at once; else a transaction of
 * the home for itself runs (or queues) and ends in atomic_run. A reset of the page drops
 * the continuation (the daemon answers the operation then: dsmp.h). */
static void seq_atomic_prepare(dsmp_t *p, uint64_t page, int origin, int write, dsmp_done_fn ready, void *arg)
{
    struct seq_dir *d = &p->dir[page];
    int self = p->svc.self;
    int type = (write ? DSMW__TYPE__WRITE_REQ : DSMW__TYPE__READ_REQ) | SEQ_ATOMIC;

    if (!d->busy) {
        if (d->owner == self || (d->owner == NO_NODE && (!write || set_is_only(p, set_of(p, page, COPYSET), self)))) {
            ready(p, arg);
            return;
        }
        atomic_started(p, page, ready, arg);
        txn_start(p, page, type, self, origin);
        return;
    }
    if (txn_queue(p, page, type, self, origin, ready, arg) != DSM_OK)
        dsmp_fail(&p->svc, DSM_ENOMEM, "sequential: out of memory queueing an atomic operation");
}

/* A revocation asked for by the home has finished: answer it. */
struct seq_reply {
    struct dsmp_pending link; /* first: on `revoking` until reply_revoked */
    int      type;   /* INV_ACK or FETCH_REPLY */
    int      home;
    int      origin;
    uint64_t page;
};

static void reply_revoked(dsmp_t *p, void *arg)
{
    struct seq_reply *r = arg;

    dsmp_pending_del(&p->revoking, &r->link);
    send_msg(p, r->home, r->type, r->page, DSM_ACCESS_NONE, r->origin,
             r->type == DSMW__TYPE__FETCH_REPLY ? r->page : DSMP_NO_FRAME);
    free(r);
}

/* Copy holder / owner: give up access as the home asks, then reply. */
static dsm_status_t seq_give_up(dsmp_t *p, int src, const dsmw_msg_t *m, int reply_type, int access)
{
    struct seq_reply *r = malloc(sizeof(*r));

    if (r == NULL) {
        DSM_ERR("sequential: out of memory answering node %d", src);
        return DSM_ENOMEM;
    }
    r->type = reply_type;
    r->home = src;
    r->origin = (int)m->origin;
    r->page = m->page;
    p->local[m->page] = (uint8_t)access;
    dsmp_pending_add(&p->revoking, &r->link);
    p->svc.revoke(p->svc.ctx, m->page, access, reply_revoked, r);
    return DSM_OK;
}

/* Requester: a GRANT's read-ahead part makes sense: pages only among those asked with
 * m->page, data for exactly those. */
static int ahead_ok(dsmp_t *p, const dsmw_msg_t *m, int framed)
{
    /* a GRANT for a page reset since its request (no RQ_LEAD) may still carry pages: they
     * are not used, but must be well formed */
    uint32_t asked = (p->rq[m->page] & RQ_LEAD) ? p->extras[m->page] : p->ahead_cap;

    if (p->rq[m->page] & RQ_EXTRA)
        return 0; /* its answer is the GRANT of the page it was asked with */
    if (m->count == 0)
        return m->data.len == 0;
    return framed && m->access == DSM_ACCESS_READ && (m->count >> asked) == 0 &&
           m->data.len == (size_t)__builtin_popcountll(m->count) * p->svc.page_size;
}

/* Requester: the pages asked with `lead` are answered (served ones are in m->data). Pages
 * reset since they were asked (lead_off no longer points at `lead`) are left alone; asked
 * pages a rank faulted on meanwhile are granted, or requested now if not served. */
static void ahead_arrived(dsmp_t *p, uint64_t lead, const dsmw_msg_t *m)
{
    uint32_t n = p->extras[lead];
    const uint8_t *data = m->data.data;
    uint64_t fetched = 0;

    p->extras[lead] = 0;
    for (uint32_t i = 1; i <= n; i++) {
        uint64_t q = lead + i;
        int served = (m->count >> (i - 1)) & 1, f = p->rq[q];

        if (served)
            data += p->svc.page_size;
        if (!(f & RQ_EXTRA) || p->lead_off[q] != i)
            continue;
        p->rq[q] = 0;
        p->lead_off[q] = 0;
        if (served) {
            DSMP_INVARIANT(p->local[q] == DSM_ACCESS_NONE, "I3");
            memcpy(p->svc.frame(p->svc.ctx, q), data - p->svc.page_size, p->svc.page_size);
            p->local[q] = DSM_ACCESS_READ;
            fetched++;
            if (f & (RQ_WANT_READ | RQ_WANT_WRITE))
                p->svc.grant(p->svc.ctx, q, DSM_ACCESS_READ); /* a write waiter faults again */
            else
                p->svc.set_access(p->svc.ctx, q, DSM_ACCESS_READ);
        } else if (f & (RQ_WANT_READ | RQ_WANT_WRITE)) {
            seq_fault(p, q, (f & RQ_WANT_WRITE) ? DSM_ACCESS_WRITE : DSM_ACCESS_READ, (int)m->origin, 1);
        } else {
            dsmp_sync(&p->svc, q); /* not sent: its door may open again */
        }
    }
    if (fetched) {
        p->svc.count(p->svc.ctx, (int)m->origin, DSMP_PAGES_FETCHED, fetched);
        p->svc.count(p->svc.ctx, (int)m->origin, DSMP_PAGES_READ_AHEAD, fetched);
    }
}

/* Requester: the home granted access (the frame is in place if data moved). Pages read
 * ahead are opened first, so the daemon's grant of m->page can run over them. */
static dsm_status_t seq_grant(dsmp_t *p, const dsmw_msg_t *m, int framed)
{
    if (!ahead_ok(p, m, framed)) {
        DSM_ERR("sequential: GRANT of page %llu carries pages %#llx and %zu bytes it was not asked for",
                (unsigned long long)m->page, (unsigned long long)m->count, m->data.len);
        return DSM_EPROTO;
    }
    if (framed)
        p->svc.count(p->svc.ctx, (int)m->origin, DSMP_PAGES_FETCHED, 1);
    if (p->rq[m->page] & RQ_LEAD) {
        p->rq[m->page] = 0;
        ahead_arrived(p, m->page, m);
    }
    p->local[m->page] = (uint8_t)m->access;
    p->svc.grant(p->svc.ctx, m->page, (int)m->access);
    return DSM_OK;
}

/* Evicter: the daemon wants page's frame back. A page with a request out is busy (I5); one
 * this node holds goes back to its home (EVICT, see the top); one at NONE goes at once. */
static int seq_evict(dsmp_t *p, uint64_t page, dsmp_done_fn done, void *arg)
{
    struct seq_evict *e;

    if (is_home(p, page) || p->rq[page] != 0)
        return 0;
    if (p->local[page] == DSM_ACCESS_NONE) {
        done(p, arg); /* I3: no copy, nothing can write the frame until a request of ours */
        return 1;
    }
    e = malloc(sizeof(*e));
    if (e == NULL)
        return 0; /* another page may do; the fault waits meanwhile */
    *e = (struct seq_evict){ .next = p->evicts, .page = page, .done = done, .arg = arg };
    p->evicts = e;
    p->rq[page] = RQ_EVICT;
    if (p->local[page] == DSM_ACCESS_WRITE)
        p->svc.count(p->svc.ctx, p->svc.any_rank, DSMP_WRITEBACKS, 1);
    send_msg(p, p->svc.home(p->svc.ctx, page), DSMW__TYPE__EVICT, page, DSM_ACCESS_NONE, p->svc.any_rank,
             DSMP_NO_FRAME);
    return 1;
}

/* Nothing of this node's on [first, first+n) is in flight (dsmp.h settled): no request or
 * eviction out as requester, no transaction running or queued as home, whatever its kind. */
static int seq_settled(dsmp_t *p, uint64_t first, uint64_t n)
{
    for (uint64_t pg = first; pg < first + n; pg++)
        if (p->rq[pg] != 0 || p->dir[pg].busy || p->dir[pg].qhead != NULL)
            return 0; /* a request of ours out (its GRANT would land a frame), or the home's */
    return 1;
}

/* A stale copy's revocation is done (seq_evicted): the eviction ends. */
static void evicted_revoked(dsmp_t *p, void *arg)
{
    struct seq_evict *e = arg;

    dsmp_pending_del(&p->revoking, &e->link);
    e->done(p, e->arg);
    free(e);
}

/* Evicter: the home took our copy back (its INV or FETCH came first, messages in order): the
 * frame may go. A home that reset the page meanwhile (a free crossing the eviction) answers
 * without taking anything: a copy still here is stale then, and goes down to NONE first.
 * An EVICTED matching no eviction (ours was dropped by a reset) is ignored. */
static dsm_status_t seq_evicted(dsmp_t *p, const dsmw_msg_t *m)
{
    for (struct seq_evict **pp = &p->evicts; *pp; pp = &(*pp)->next) {
        struct seq_evict *e = *pp;

        if (e->page != m->page || !(p->rq[m->page] & RQ_EVICT))
            continue;
        if (p->local[m->page] != DSM_ACCESS_NONE && m->count != 1) {
            DSM_ERR("sequential: EVICTED for page %llu says the home took the copy this node still holds",
                    (unsigned long long)m->page);
            return DSM_EPROTO;
        }
        *pp = e->next;
        p->rq[m->page] = 0;
        dsmp_pending_add(&p->revoking, &e->link);
        if (p->local[m->page] == DSM_ACCESS_NONE) {
            evicted_revoked(p, e);
        } else {
            p->local[m->page] = DSM_ACCESS_NONE;
            p->svc.revoke(p->svc.ctx, m->page, DSM_ACCESS_NONE, evicted_revoked, e);
        }
        return DSM_OK;
    }
    return DSM_OK;
}

/* Home: a rank of node reads page directly (dsmp.h direct_read): node's read request. */
static dsm_status_t seq_direct_read(dsmp_t *p, int node, uint64_t page, int origin)
{
    dsmw_msg_t m;

    dsmw_init(&m, DSMW__TYPE__READ_REQ);
    m.page = page;
    m.access = DSM_ACCESS_READ;
    m.origin = (uint32_t)origin;
    m.node = (uint32_t)node;
    return seq_request(p, &m);
}

/* Requester: a rank's direct read is in (dsmp.h direct_landed): the home's GRANT, whose
 * frame the rank took. */
static dsm_status_t seq_direct_landed(dsmp_t *p, uint64_t page, int origin)
{
    dsmw_msg_t m;

    dsmw_init(&m, DSMW__TYPE__GRANT);
    m.page = page;
    m.access = DSM_ACCESS_READ;
    m.origin = (uint32_t)origin;
    m.node = (uint32_t)p->svc.home(p->svc.ctx, page);
    return seq_grant(p, &m, 0);
}

static dsm_status_t seq_message(dsmp_t *p, int src, const dsmw_msg_t *m, int framed)
{
    struct seq_dir *d = &p->dir[m->page];
    int from_home = p->svc.home(p->svc.ctx, m->page) == src;

    switch (m->type) {
    case DSMW__TYPE__READ_REQ:
    case DSMW__TYPE__WRITE_REQ:
    case DSMW__TYPE__EVICT:
        if ((int)m->node != src) /* the reply goes to m->node */
            break;
        return seq_request(p, m);
    case DSMW__TYPE__EVICTED:
        if (!from_home || framed)
            break;
        return seq_evicted(p, m);
    /* orders for a page come from its home only (I4) */
    case DSMW__TYPE__GRANT:
        if (!from_home)
            break;
        return seq_grant(p, m, framed);
    case DSMW__TYPE__INV:
        if (!from_home)
            break;
        return seq_give_up(p, src, m, DSMW__TYPE__INV_ACK, DSM_ACCESS_NONE);
    case DSMW__TYPE__FETCH:
        if (!from_home)
            break;
        return seq_give_up(p, src, m, DSMW__TYPE__FETCH_REPLY, (int)m->access);
    case DSMW__TYPE__INV_ACK:
    case DSMW__TYPE__FETCH_REPLY:
        if (!d->busy || d->acks <= 0 || !is_home(p, m->page) || !set_has(set_of(p, m->page, ASKED), src) ||
            (int)m->type != d->expect || framed != (m->type == DSMW__TYPE__FETCH_REPLY))
            break;
        set_del(set_of(p, m->page, ASKED), src);
        if (TXN_KIND(d->t_type) == DSMW__TYPE__EVICT) {
            /* the evicter's copy is gone; an owner's data is the home's again (I2) */
            set_del(set_of(p, m->page, COPYSET), src);
            if (m->type == DSMW__TYPE__FETCH_REPLY) {
                set_only(p, set_of(p, m->page, COPYSET), p->svc.self);
                d->owner = NO_NODE;
                p->local[m->page] = DSM_ACCESS_READ;
                p->svc.set_access(p->svc.ctx, m->page, DSM_ACCESS_READ);
            }
        } else if (m->type == DSMW__TYPE__FETCH_REPLY && TXN_KIND(d->t_type) == DSMW__TYPE__READ_REQ) {
            /* the old owner keeps a read copy and the home's frame is current again */
            set_only(p, set_of(p, m->page, COPYSET), src);
            set_add(set_of(p, m->page, COPYSET), p->svc.self);
            d->owner = NO_NODE;
            p->local[m->page] = DSM_ACCESS_READ;
            p->svc.set_access(p->svc.ctx, m->page, DSM_ACCESS_READ);
        }
        txn_ack(p, m->page);
        return DSM_OK;
    default:
        break;
    }
    DSM_ERR("sequential: unexpected %s for page %llu from node %d", dsmw_type_name(m->type),
            (unsigned long long)m->page, src);
    return DSM_EPROTO;
}

static void seq_reset(dsmp_t *p, uint64_t first, uint64_t n)
{
    /* atomic transactions of these pages end here: the daemon answers their ops (reset) */
    for (struct seq_atomic **pp = &p->atomics; *pp;) {
        struct seq_atomic *a = *pp;

        if (a->page >= first && a->page < first + n) {
            *pp = a->next;
            free(a);
        } else {
            pp = &a->next;
        }
    }
    dsmp_batch_reset(p->batches, first, n, p->ahead_cap);
    for (struct seq_evict **pp = &p->evicts; *pp;) { /* dropped: done once, ignored (dsmp.h) */
        struct seq_evict *e = *pp;

        if (e->page >= first && e->page < first + n) {
            *pp = e->next;
            e->done(p, e->arg);
            free(e);
        } else {
            pp = &e->next;
        }
    }
    /* pages asked with a page of the range (outside it) will get no answer: ask again for
     * those a rank waits for */
    for (uint64_t pg = first; pg < first + n; pg++)
        for (uint32_t i = 1; (p->rq[pg] & RQ_LEAD) && i <= p->extras[pg]; i++) {
            uint64_t q = pg + i;
            int f = p->rq[q];

            if (q < first + n || !(f & RQ_EXTRA) || p->lead_off[q] != i)
                continue;
            p->rq[q] = 0;
            p->lead_off[q] = 0;
            if (f & (RQ_WANT_READ | RQ_WANT_WRITE))
                seq_fault(p, q, (f & RQ_WANT_WRITE) ? DSM_ACCESS_WRITE : DSM_ACCESS_READ, p->svc.any_rank, 1);
        }
    memset(p->rq + first, 0, n);
    memset(p->extras + first, 0, n);
    memset(p->lead_off + first, 0, n);
    for (uint64_t pg = first; pg < first + n; pg++) {
        struct seq_dir *d = &p->dir[pg];
        struct seq_req *r;

        while ((r = d->qhead) != NULL) {
            d->qhead = r->next;
            free(r);
        }
        memset(d, 0, sizeof(*d));
        memset(set_of(p, pg, COPYSET), 0, 2 * p->words * sizeof(uint64_t));
        d->owner = NO_NODE;
        p->local[pg] = DSM_ACCESS_NONE;
        if (is_home(p, pg)) {
            set_only(p, set_of(p, pg, COPYSET), p->svc.self);
            p->local[pg] = DSM_ACCESS_READ;
            p->svc.set_access(p->svc.ctx, pg, DSM_ACCESS_READ);
        }
    }
}

static dsm_status_t seq_create(const struct dsmp_services *svc, dsmp_t **out)
{
    dsmp_t *p;

    if (svc->nnodes > INT16_MAX) { /* owner and t_node are int16_t */
        DSM_ERR("sequential: at most %d nodes are supported (job has %d)", INT16_MAX, svc->nnodes);
        return DSM_ECONFIG;
    }
    p = calloc(1, sizeof(*p));
    if (p == NULL)
        goto fail;
    p->svc = *svc;
    p->local = calloc(svc->npages, 1);
    if (p->local == NULL)
        goto fail_local;
    p->dir = calloc(svc->npages, sizeof(*p->dir));
    if (p->dir == NULL)
        goto fail_dir;
    p->words = ((size_t)svc->nnodes + 63) / 64;
    p->sets = calloc(svc->npages * 2, p->words * sizeof(uint64_t));
    if (p->sets == NULL)
        goto fail_sets;
    p->ahead_cap = dsmp_ahead_cap(svc->page_size);
    p->rq = calloc(svc->npages, 3);
    if (p->rq == NULL)
        goto fail_rq;
    p->extras = p->rq + svc->npages;
    p->lead_off = p->extras + svc->npages;
    p->scratch = malloc(p->ahead_cap * svc->page_size + 1);
    if (p->scratch == NULL)
        goto fail_scratch;
    *out = p;
    return DSM_OK;

fail_scratch:
    free(p->rq);
fail_rq:
    free(p->sets);
fail_sets:
    free(p->dir);
fail_dir:
    free(p->local);
fail_local:
    free(p);
fail:
    DSM_ERR("sequential: out of memory for %llu pages", (unsigned long long)svc->npages);
    return DSM_ENOMEM;
}

static void seq_destroy(dsmp_t *p)
{
    if (p == NULL)
        return;
    for (uint64_t pg = 0; pg < p->svc.npages; pg++) {
        struct seq_req *r;

        while ((r = p->dir[pg].qhead) != NULL) {
            p->dir[pg].qhead = r->next;
            free(r);
        }
    }
    while (p->atomics) {
        struct seq_atomic *a = p->atomics;

        p->atomics = a->next;
        free(a);
    }
    dsmp_batch_free_all(&p->batches);
    while (p->evicts) {
        struct seq_evict *e = p->evicts;

        p->evicts = e->next;
        free(e);
    }
    dsmp_pending_free_all(&p->revoking);
    free(p->scratch);
    free(p->rq);
    free(p->sets);
    free(p->dir);
    free(p->local);
    free(p);
}

static const struct dsmp_atomic_ops seq_atomic = {
    .prepare = seq_atomic_prepare,
};

const struct dsmp_ops dsmp_sequential_ops = {
    .name = "sequential",
    .model = DSM_MODEL_SEQUENTIAL,
    .reads_ahead = 1,

    .create = seq_create,
    .destroy = seq_destroy,
    .fault = seq_fault,
    .message = seq_message,
    .reset = seq_reset,
    .evict = seq_evict,
    .settled = seq_settled,
    .direct_idle = seq_direct_idle,
    .direct_read = seq_direct_read,
    .direct_landed = seq_direct_landed,
    .atomic = &seq_atomic,
};

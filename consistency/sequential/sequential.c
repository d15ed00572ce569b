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
 * Transitions and the functions that perform them:
 *   fault at a node                      -> seq_fault        (READ_REQ / WRITE_REQ to home)
 *   READ_REQ / WRITE_REQ at home         -> seq_request      (queue or start a transaction)
 *   start of a read transaction          -> txn_read
 *   start of a write transaction         -> txn_write
 *   INV at a copy holder                 -> seq_give_up      (revoke to NONE, then INV_ACK)
 *   FETCH at the owner                   -> seq_give_up      (revoke to READ/NONE, FETCH_REPLY + frame)
 *   INV_ACK / FETCH_REPLY at home        -> txn_ack          (count down, then txn_finish)
 *   end of a transaction                 -> txn_finish       (GRANT to requester, next request)
 *   GRANT at the requester               -> seq_grant        (node access up, wake ranks)
 *
 * The home talks to itself through the same messages (the daemon queues messages to
 * self), so a home's own ranks follow exactly the paths above.
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

#include "dsm_log.h"
#include "dsmp.h"

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

/* Requester side: ask the home for `access`. */
static void seq_fault(dsmp_t *p, uint64_t page, int access, int origin)
{
    int home = p->svc.home(p->svc.ctx, page);

    send_msg(p, home, access == DSM_ACCESS_WRITE ? DSMW__TYPE__WRITE_REQ : DSMW__TYPE__READ_REQ,
             page, access, origin, DSMP_NO_FRAME);
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

/* Home: end the running transaction with a grant to its requester, then start the next. */
static void txn_finish(dsmp_t *p, uint64_t page)
{
    struct seq_dir *d = &p->dir[page];
    int node = d->t_node, access;
    struct seq_req *next;

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
    d->busy = 0;
    next = d->qhead;
    if (next != NULL) {
        d->qhead = next->next;
        if (d->qhead == NULL)
            d->qtail = NULL;
        if (next->type & SEQ_ATOMIC)
            atomic_started(p, page, next->ready, next->arg);
        txn_start(p, page, next->type, next->node, next->origin);
        free(next);
    }
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
    else
        txn_read(p, page);
}

/* Home: a request arrives; run it now or queue it behind the running transaction. */
static dsm_status_t seq_request(dsmp_t *p, const dsmw_msg_t *m)
{
    struct seq_dir *d = &p->dir[m->page];

    if (!is_home(p, m->page)) {
        DSM_ERR("sequential: request for page %llu from node %u, which is not homed here",
                (unsigned long long)m->page, m->node);
        return DSM_EPROTO;
    }
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
    int      type;   /* INV_ACK or FETCH_REPLY */
    int      home;
    int      origin;
    uint64_t page;
};

static void reply_revoked(dsmp_t *p, void *arg)
{
    struct seq_reply *r = arg;

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
    p->svc.revoke(p->svc.ctx, m->page, access, reply_revoked, r);
    return DSM_OK;
}

/* Requester: the home granted access (the frame is in place if data moved). */
static dsm_status_t seq_grant(dsmp_t *p, const dsmw_msg_t *m, int framed)
{
    if (framed)
        p->svc.count(p->svc.ctx, (int)m->origin, DSMP_PAGES_FETCHED, 1);
    p->local[m->page] = (uint8_t)m->access;
    p->svc.grant(p->svc.ctx, m->page, (int)m->access);
    return DSM_OK;
}

static dsm_status_t seq_message(dsmp_t *p, int src, const dsmw_msg_t *m, int framed)
{
    struct seq_dir *d = &p->dir[m->page];
    int from_home = p->svc.home(p->svc.ctx, m->page) == src;

    switch (m->type) {
    case DSMW__TYPE__READ_REQ:
    case DSMW__TYPE__WRITE_REQ:
        return seq_request(p, m);
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
        if (m->type == DSMW__TYPE__FETCH_REPLY && TXN_KIND(d->t_type) == DSMW__TYPE__READ_REQ) {
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
    *out = p;
    return DSM_OK;

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

    .create = seq_create,
    .destroy = seq_destroy,
    .fault = seq_fault,
    .message = seq_message,
    .reset = seq_reset,
    .atomic = &seq_atomic,
};

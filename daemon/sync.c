/*
 * sync.c - locks, barriers and the finalize barrier, condition variables. (About 800 lines:
 * the lock manager's table is sync/lockq.c; the rest shares the steps that wait for the
 * consistency module.)
 *
 * Locks: lock `id` is managed by node id % nnodes, which keeps whether it is held, by
 * which rank, and a FIFO of waiting requests (sync/lockq.c, whose code the protocol test
 * harness runs too: an UNLOCK from a non-holder is DSM_EPROTO). A LOCK_REQ carries the
 * requesting channel's id as its token so the grant finds the waiting thread again. Unlock is checked locally
 * (a rank may only unlock what it holds) and answered at once; the manager hands the lock
 * to the next waiter. Messages between two nodes stay in order, so an unlock followed by
 * a lock from the same node reaches the manager in that order.
 *
 * Barriers: a node waits for all of its ranks, then sends one BARRIER_ARRIVE to node 0;
 * node 0 releases every node when all have arrived. Epochs number the barriers, so a
 * release can be checked against the barrier it ends. Finalize is the same exchange with
 * its own message types; after its release peers may leave without alarming anyone.
 *
 * A barrier that can no longer complete fails the job at once, naming the rank that left:
 * a rank calls dsm_finalize while another waits in dsm_barrier (seen by the node where both
 * wait, or by node 0 when whole nodes arrived at different exchanges), or a rank exited
 * without ever calling dsm_init (dsmrun's EXIT line; its node tells every node with
 * RANK_ABSENT) while another waits in either. A job whose ranks all skip dsm_init is no dsm
 * job at all and ends normally (main.c).
 *
 * Condition variables: cond C is managed by node C % nnodes, which keeps a FIFO of waiters.
 * dsm_cond_wait(C, L) flushes like an unlock, queues at the manager (COND_WAIT), and only
 * once queued (COND_QUEUED) releases L with an ordinary UNLOCK: a signal that follows the
 * release of L therefore finds the waiter queued, and none is lost. A signal pops one
 * waiter (broadcast: all), COND_WAKE sends it back to its node, which re-acquires L with an
 * ordinary LOCK_REQ and answers the rank when it holds L again (with its acquire).
 *
 * Consistency modules ride along (dsmp.h, struct dsmp_sync_ops): a release (unlock,
 * barrier arrival, finalize) first lets the module flush, and only then sends its message,
 * filled by the module; a grant or barrier release is handed to the module, and the ranks
 * go on when it is done applying it. Without hooks (sequential) every step is immediate.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dsm_log.h"
#include "dsmd.h"
#include "sync/gather.h"
#include "sync/lockq.h"

/* A synchronisation step waiting for the module (release flush, acquire apply). */
struct sync_step {
    struct sync_step *next, *prev; /* the node's steps in flight (freed with it if it ends first) */
    struct dsmd *d;
    int type;                 /* the message it sends or applies */
    int chan;                 /* channel to answer, or -1 */
    uint32_t lock;
    uint32_t cond;            /* DSMC_COND_WAIT: the condition variable */
    int origin;
    uint64_t epoch;
};

struct cond_waiter;

/* A condition variable at its manager: its waiters. (Locks: sync/lockq.h.) */
struct lock_ent {
    struct lock_ent *next;
    uint32_t id;
    struct cond_waiter *cqh, *cqt;
};

/* One barrier-like exchange (barrier or finalize). */
struct gather {
    int      local_arrived;     /* ranks of this node in the current epoch */
    uint64_t epoch;             /* epochs completed at this node */
    struct dsmd_chan *waiting;  /* local channels to release */
    struct dsmd_gather_mgr mgr; /* node 0: the count (sync/gather.h) */
    int      mgr_origin;        /* node 0: a rank of the first node that arrived */
    int      mgr_node;          /* and that node */
};

/* A rank waiting on a condition variable, at its manager. */
struct cond_waiter {
    struct cond_waiter *next;
    int node, origin;
    uint32_t lock;
    uint64_t token;
};

struct dsmd_sync {
    struct dsmd_lockq *locks;   /* the locks this node manages */
    struct lock_ent *conds[DSMD_LOCK_BUCKETS];
    struct gather barrier, fini;
    struct sync_step *steps;
    int      absent;            /* a rank that exited without dsm_init, or -1 */
    int      absent_status;     /* its exit status */
    int      absent_node;       /* and node */
    uint8_t  absent_from[DSMD_MAX_NODES]; /* a RANK_ABSENT came from that node */
};

int dsmd_sync_absent_from(const struct dsmd *d, int node)
{
    if (d->sync == NULL)
        return 0;
    if (node < 0)
        return d->sync->absent >= 0;
    return node < DSMD_MAX_NODES && d->sync->absent_from[node];
}

uint64_t dsmd_sync_barriers(const struct dsmd *d)
{
    return d->sync->barrier.epoch;
}

dsm_status_t dsmd_sync_init(struct dsmd *d)
{
    d->sync = calloc(1, sizeof(*d->sync));
    if (d->sync == NULL || (d->sync->locks = dsmd_lockq_new(DSMD_LOCK_BUCKETS)) == NULL)
        return DSM_ENOMEM;
    d->sync->absent = -1;
    return DSM_OK;
}

/* Free a table of lock_ents and whatever waits in them. */
static void table_free(struct lock_ent **table)
{
    for (int b = 0; b < DSMD_LOCK_BUCKETS; b++) {
        struct lock_ent *e, *en;

        for (e = table[b]; e; e = en) {
            en = e->next;
            for (struct cond_waiter *w = e->cqh, *wn; w; w = wn) {
                wn = w->next;
                free(w);
            }
            free(e);
        }
    }
}

void dsmd_sync_fini(struct dsmd *d)
{
    if (d->sync == NULL)
        return;
    dsmd_lockq_free(d->sync->locks);
    table_free(d->sync->conds);
    while (d->sync->steps != NULL) {
        struct sync_step *st = d->sync->steps;

        d->sync->steps = st->next;
        free(st);
    }
    free(d->sync);
    d->sync = NULL;
}

/* The entry for id in table, made (zeroed) if missing; NULL when out of memory. */
static struct lock_ent *table_get(struct lock_ent **table, uint32_t id)
{
    struct lock_ent **b = &table[id % DSMD_LOCK_BUCKETS], *e;

    for (e = *b; e; e = e->next)
        if (e->id == id)
            return e;
    e = calloc(1, sizeof(*e));
    if (e == NULL)
        return NULL;
    e->id = id;
    e->next = *b;
    *b = e;
    return e;
}

static struct lock_ent *cond_get(struct dsmd *d, uint32_t id)
{
    return table_get(d->sync->conds, id);
}

static int held_find(const struct dsmd_lock_held *h, uint32_t id)
{
    for (size_t i = 0; i < h->n; i++)
        if (h->ids[i] == id)
            return (int)i;
    return -1;
}

static dsm_status_t held_add(struct dsmd_lock_held *h, uint32_t id)
{
    if (h->n == h->cap) {
        size_t ncap = h->cap ? h->cap * 2 : 8;
        uint32_t *v = realloc(h->ids, ncap * sizeof(*v));

        if (v == NULL)
            return DSM_ENOMEM;
        h->ids = v;
        h->cap = ncap;
    }
    h->ids[h->n++] = id;
    return DSM_OK;
}

static const struct dsmp_sync_ops *hooks(struct dsmd *d)
{
    static const struct dsmp_sync_ops none;

    return d->pops->sync ? d->pops->sync : &none;
}

static int lock_manager(struct dsmd *d, uint32_t id)
{
    return (int)(id % (uint32_t)d->cfg.nnodes);
}

/* Send a lock message; the module adds what it carries to requests and releases. A
 * request with `try` set (count = 1) is answered at once: granted, or DSM_EBUSY. */
static void send_lock_msg(struct dsmd *d, int node, int type, uint32_t id, int origin, uint64_t token, int try)
{
    dsmw_msg_t m;

    dsmw_init(&m, type);
    m.count = try ? 1 : 0;
    m.lock = id;
    m.origin = (uint32_t)origin;
    m.node = (uint32_t)d->cfg.node;
    m.seq = token;
    if (type == DSMW__TYPE__LOCK_REQ && hooks(d)->fill_acquire)
        hooks(d)->fill_acquire(d->p, &m);
    if (type == DSMW__TYPE__UNLOCK && hooks(d)->fill_release)
        hooks(d)->fill_release(d->p, &m);
    dsmd_send(d, node, &m, DSMT_NO_PAGE);
}

static struct sync_step *step_new(struct dsmd *d, int type, struct dsmd_chan *c, uint32_t lock, int origin)
{
    struct sync_step *s = calloc(1, sizeof(*s));

    if (s == NULL) {
        dsmd_abort(d, DSM_ENOMEM, "out of memory in a synchronisation step");
        return NULL;
    }
    s->d = d;
    s->type = type;
    s->chan = c ? c->id : -1;
    s->lock = lock;
    s->origin = origin;
    s->next = d->sync->steps;
    if (s->next)
        s->next->prev = s;
    d->sync->steps = s;
    return s;
}

static void step_free(struct sync_step *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        s->d->sync->steps = s->next;
    if (s->next)
        s->next->prev = s->prev;
    free(s);
}

/* Run step s after the module's release flush (at once without one). */
static void after_release(struct dsmd *d, struct sync_step *s, dsmp_done_fn fn)
{
    if (hooks(d)->release)
        hooks(d)->release(d->p, s->origin, fn, s);
    else
        fn(d->p, s);
}

/* Run step s after the module has applied what message m carries (at once without one). */
static void after_acquire(struct dsmd *d, const dsmw_msg_t *m, struct sync_step *s, dsmp_done_fn fn)
{
    if (hooks(d)->acquired)
        hooks(d)->acquired(d->p, m, fn, s);
    else
        fn(d->p, s);
}

static int cond_manager(struct dsmd *d, uint32_t cond)
{
    return (int)(cond % (uint32_t)d->cfg.nnodes);
}

/* A condition message (COND_WAIT, _QUEUED, _SIGNAL, _WAKE) to node. */
static void send_cond_msg(struct dsmd *d, int node, int type, uint32_t cond, uint32_t lock, int origin,
                          uint64_t token, uint64_t count)
{
    dsmw_msg_t m;

    dsmw_init(&m, type);
    m.cond = cond;
    m.lock = lock;
    m.origin = (uint32_t)origin;
    m.node = (uint32_t)d->cfg.node;
    m.seq = token;
    m.count = count;
    dsmd_send(d, node, &m, DSMT_NO_PAGE);
}

/* The release flush of a dsm_cond_wait is done: queue at the condition's manager (the
 * lock is released once it says the waiter is queued). */
static void cond_wait_flushed(dsmp_t *p, void *arg)
{
    struct sync_step *s = arg;

    (void)p;
    send_cond_msg(s->d, cond_manager(s->d, s->cond), DSMW__TYPE__COND_WAIT, s->cond, s->lock, s->origin,
                  (uint64_t)s->chan, 0);
    step_free(s);
}

/* Manager: a waiter for condition m->cond; tell its node it is queued. */
static dsm_status_t cond_enqueue(struct dsmd *d, const dsmw_msg_t *m)
{
    struct lock_ent *e = cond_get(d, m->cond);
    struct cond_waiter *w = e ? calloc(1, sizeof(*w)) : NULL;

    if (w == NULL)
        return DSM_ENOMEM;
    w->node = (int)m->node;
    w->origin = (int)m->origin;
    w->lock = m->lock;
    w->token = m->seq;
    if (e->cqt)
        e->cqt->next = w;
    else
        e->cqh = w;
    e->cqt = w;
    send_cond_msg(d, w->node, DSMW__TYPE__COND_QUEUED, m->cond, m->lock, w->origin, w->token, 0);
    return DSM_OK;
}

/* Manager: wake the longest waiter of m->cond (every one when m->count is 1). */
static void cond_signal(struct dsmd *d, const dsmw_msg_t *m)
{
    struct lock_ent *e = cond_get(d, m->cond);
    struct cond_waiter *w;

    while (e != NULL && (w = e->cqh) != NULL) {
        e->cqh = w->next;
        if (e->cqh == NULL)
            e->cqt = NULL;
        send_cond_msg(d, w->node, DSMW__TYPE__COND_WAKE, m->cond, w->lock, w->origin, w->token, 0);
        free(w);
        if (m->count == 0)
            break;
    }
}

/* Waiter's node: queued (release the lock now) or woken (take the lock again, answering
 * the rank once it holds it). A rank that went away meanwhile still lets the lock go. */
static void cond_reply(struct dsmd *d, const dsmw_msg_t *m)
{
    struct dsmd_chan *c = dsmd_chan_by_id(d, (int)m->seq);
    struct dsmd_rank *rk = c ? dsmd_rank_of(d, c) : NULL;
    int ours = rk != NULL && c->pending_op == DSMC_COND_WAIT && rk->rank == (int)m->origin;
    int i;

    if (m->type == DSMW__TYPE__COND_QUEUED) {
        if (ours && (i = held_find(&rk->held, m->lock)) < 0) {
            /* another thread of the rank let the lock go meanwhile: nothing to release (an
             * UNLOCK by a non-holder would be a protocol error at the manager) */
            DSM_WARN("rank %d: lock %u was released while its thread queued on condition %u", rk->rank,
                     m->lock, m->cond);
            return;
        }
        if (ours)
            rk->held.ids[i] = rk->held.ids[--rk->held.n];
        send_lock_msg(d, lock_manager(d, m->lock), DSMW__TYPE__UNLOCK, m->lock, (int)m->origin, 0, 0);
        return;
    }
    if (!ours)
        return;
    c->pending_op = DSMC_LOCK;
    c->pending_seq = m->lock;
    send_lock_msg(d, lock_manager(d, m->lock), DSMW__TYPE__LOCK_REQ, m->lock, rk->rank, (uint64_t)c->id, 0);
}

/* The release flush of an unlock is done: tell the manager, let the rank go on. */
static void unlock_flushed(dsmp_t *p, void *arg)
{
    struct sync_step *s = arg;
    struct dsmd *d = s->d;
    struct dsmd_chan *c = dsmd_chan_by_id(d, s->chan);

    (void)p;
    send_lock_msg(d, lock_manager(d, s->lock), DSMW__TYPE__UNLOCK, s->lock, s->origin, 0, 0);
    if (c != NULL) {
        c->pending_op = 0;
        dsmd_chan_reply(d, c, DSM_OK, 0);
    }
    step_free(s);
}

/* Every local rank arrived and the module flushed: tell node 0. */
static void arrive_flushed(dsmp_t *p, void *arg)
{
    struct sync_step *s = arg;
    struct dsmd *d = s->d;
    dsmw_msg_t m;

    (void)p;
    if (s->type == DSMW__TYPE__FINI_ARRIVE)
        d->fini_sent = 1;
    dsmw_init(&m, s->type);
    m.epoch = s->epoch;
    m.origin = (uint32_t)s->origin;
    if (hooks(d)->fill_release)
        hooks(d)->fill_release(d->p, &m);
    dsmd_send(d, 0, &m, DSMT_NO_PAGE);
    step_free(s);
}

/* A rank of the job never joined it: fail if anyone waits in a barrier or finalize here
 * (locally, or at node 0 for whole nodes), since that can never complete. */
static void absent_check(struct dsmd *d)
{
    struct dsmd_sync *s = d->sync;
    const char *in;

    if (s->absent < 0 || d->aborting)
        return;
    if (s->barrier.waiting || s->barrier.mgr.arrived)
        in = "dsm_barrier";
    else if (s->fini.waiting || s->fini.mgr.arrived)
        in = "dsm_finalize";
    else
        return;
    dsmd_abort_rank(d, s->absent, "absent", DSM_ESTATE,
                    "rank %d (node %d) exited (status %d) without calling dsm_init, while other ranks joined "
                    "the job and wait for it in %s", s->absent, s->absent_node, s->absent_status, in);
}

/* Called as rank `rank` (of this node) enters gather g: a rank of this node waiting in the
 * other exchange means one called dsm_finalize while another waits in dsm_barrier. */
static int gather_conflict(struct dsmd *d, struct gather *g, int rank)
{
    struct dsmd_sync *s = d->sync;
    struct gather *other = g == &s->fini ? &s->barrier : &s->fini;
    int them;

    if (other->waiting == NULL)
        return 0;
    them = d->ranks[other->waiting->lrank].rank;
    dsmd_abort_rank(d, g == &s->fini ? rank : them, "finalized", DSM_ESTATE,
                    "rank %d called dsm_finalize while rank %d waits in dsm_barrier (barrier %llu): "
                    "that barrier can never complete", g == &s->fini ? rank : them,
                    g == &s->fini ? them : rank, (unsigned long long)s->barrier.epoch + 1);
    return 1;
}

static void gather_arrive(struct dsmd *d, struct gather *g, struct dsmd_chan *c, int arrive_type)
{
    struct sync_step *s;

    if (gather_conflict(d, g, d->ranks[c->lrank].rank))
        return;

    for (struct dsmd_chan *w = g->waiting; w != NULL; w = w->pnext)
        if (w->lrank == c->lrank) {
            DSM_WARN("rank %d entered a barrier twice (from two threads?)", d->ranks[c->lrank].rank);
            c->pending_op = 0;
            dsmd_chan_reply(d, c, DSM_EINVAL, 0);
            return;
        }
    c->pnext = g->waiting;
    g->waiting = c;
    absent_check(d);
    if (d->aborting || ++g->local_arrived < d->cfg.local_ranks)
        return;
    g->local_arrived = 0;
    if (d->fs != NULL)
        dsmd_fs_window_end(d); /* before the arrival: its FS_WROTEs reach homes that still wait */
    s = step_new(d, arrive_type, NULL, 0, d->ranks[c->lrank].rank);
    if (s == NULL)
        return;
    s->epoch = g->epoch;
    after_release(d, s, arrive_flushed);
}

void dsmd_sync_request(struct dsmd *d, struct dsmd_chan *c, const struct dsmc_msg *m)
{
    struct dsmd_rank *rk = dsmd_rank_of(d, c);
    uint32_t id = (uint32_t)m->a;
    struct sync_step *s;
    int i;

    switch (m->op) {
    case DSMC_LOCK:
    case DSMC_TRYLOCK:
        if (held_find(&rk->held, id) >= 0) {
            DSM_WARN("rank %d locks lock %u, which it already holds", rk->rank, id);
            dsmd_chan_reply(d, c, DSM_EINVAL, 0);
            return;
        }
        c->pending_op = m->op;
        c->pending_seq = id; /* for the deadlock report (waits.c) */
        send_lock_msg(d, lock_manager(d, id), DSMW__TYPE__LOCK_REQ, id, rk->rank, (uint64_t)c->id,
                      m->op == DSMC_TRYLOCK);
        return;
    case DSMC_UNLOCK:
        i = held_find(&rk->held, id);
        if (i < 0) {
            DSM_WARN("rank %d unlocks lock %u, which it does not hold", rk->rank, id);
            dsmd_chan_reply(d, c, DSM_EINVAL, 0);
            return;
        }
        rk->held.ids[i] = rk->held.ids[--rk->held.n];
        c->pending_op = DSMC_UNLOCK;
        s = step_new(d, DSMW__TYPE__UNLOCK, c, id, rk->rank);
        if (s != NULL)
            after_release(d, s, unlock_flushed);
        return;
    case DSMC_COND_WAIT:
        if (held_find(&rk->held, (uint32_t)m->b) < 0) {
            DSM_WARN("rank %d waits on condition %u with lock %u, which it does not hold", rk->rank, id,
                     (uint32_t)m->b);
            dsmd_chan_reply(d, c, DSM_EINVAL, 0);
            return;
        }
        c->pending_op = DSMC_COND_WAIT;
        c->pending_seq = (uint32_t)m->b; /* the lock, for the deadlock report */
        s = step_new(d, DSMW__TYPE__COND_WAIT, c, (uint32_t)m->b, rk->rank);
        if (s != NULL) {
            s->cond = id;
            after_release(d, s, cond_wait_flushed);
        }
        return;
    case DSMC_COND_SIGNAL:
        send_cond_msg(d, cond_manager(d, id), DSMW__TYPE__COND_SIGNAL, id, 0, rk->rank, 0, m->b ? 1 : 0);
        dsmd_chan_reply(d, c, DSM_OK, 0);
        return;
    case DSMC_BARRIER:
        c->pending_op = DSMC_BARRIER;
        gather_arrive(d, &d->sync->barrier, c, DSMW__TYPE__BARRIER_ARRIVE);
        return;
    case DSMC_FINALIZE:
        /* the rank's own clock; locks and barriers are counted here as they are served */
        rk->finalized = 1;
        rk->c.wall_ns = m->e;
        rk->c.wait_ns[0] = m->a; /* faults, locks, barriers, the rest (dsm_chan.h) */
        rk->c.wait_ns[1] = m->b;
        rk->c.wait_ns[2] = m->c;
        rk->c.wait_ns[3] = m->d;
        c->pending_op = DSMC_FINALIZE;
        gather_arrive(d, &d->sync->fini, c, DSMW__TYPE__FINI_ARRIVE);
        return;
    }
}

/* Manager: the grant of its lock to waiter w (now the holder), with what the module wants it
 * to carry; w is freed. Nothing for NULL (the lock is free). */
static void send_grant(struct dsmd *d, struct dsmd_lockq_waiter *w)
{
    dsmw_msg_t m, req;

    if (w == NULL)
        return;
    dsmw_init(&m, DSMW__TYPE__LOCK_GRANT);
    m.lock = w->lock;
    m.origin = (uint32_t)w->origin;
    m.node = (uint32_t)d->cfg.node;
    m.seq = w->token;
    if (hooks(d)->fill_grant) {
        dsmw_init(&req, DSMW__TYPE__LOCK_REQ);
        req.vclock = w->vclock;
        req.n_vclock = w->n_vclock;
        hooks(d)->fill_grant(d->p, w->lock, &req, &m);
    }
    dsmd_send(d, w->node, &m, DSMT_NO_PAGE);
    dsmd_lockq_done(w);
}

static dsm_status_t lock_request(struct dsmd *d, const dsmw_msg_t *m)
{
    struct dsmd_lockq_waiter *g;
    dsm_status_t st = dsmd_lockq_request(d->sync->locks, m, &g);

    if (st == DSM_EBUSY) { /* dsm_trylock of a held lock: no wait, nothing acquired */
        dsmw_msg_t busy;

        dsmw_init(&busy, DSMW__TYPE__LOCK_GRANT);
        busy.lock = m->lock;
        busy.origin = m->origin;
        busy.node = (uint32_t)d->cfg.node;
        busy.seq = m->seq;
        busy.status = DSM_EBUSY;
        dsmd_send(d, (int)m->node, &busy, DSMT_NO_PAGE);
        return DSM_OK;
    }
    if (st != DSM_OK)
        return st;
    send_grant(d, g);
    return DSM_OK;
}

/* The module has applied a lock grant: the rank holds the lock now. */
static void lock_applied(dsmp_t *p, void *arg)
{
    struct sync_step *s = arg;
    struct dsmd_chan *c = dsmd_chan_by_id(s->d, s->chan);

    (void)p;
    if (c != NULL && (c->pending_op == DSMC_LOCK || c->pending_op == DSMC_TRYLOCK)) {
        c->pending_op = 0;
        dsmd_rank_of(s->d, c)->c.lock_acquires++;
        dsmd_chan_reply(s->d, c, DSM_OK, 0);
    }
    step_free(s);
}

static void lock_granted(struct dsmd *d, const dsmw_msg_t *m)
{
    struct dsmd_chan *c = dsmd_chan_by_id(d, (int)m->seq);
    struct dsmd_rank *rk = c ? dsmd_rank_of(d, c) : NULL;
    struct sync_step *s;

    if (m->status == DSM_EBUSY) { /* a dsm_trylock of a held lock */
        if (rk != NULL && c->pending_op == DSMC_TRYLOCK && rk->rank == (int)m->origin) {
            c->pending_op = 0;
            dsmd_chan_reply(d, c, DSM_EBUSY, 0);
        }
        return;
    }
    if (rk == NULL || (c->pending_op != DSMC_LOCK && c->pending_op != DSMC_TRYLOCK) || rk->rank != (int)m->origin) {
        /* the rank went away while waiting: hand the lock straight back */
        DSM_WARN("lock %u granted to rank %u, which no longer waits for it", m->lock, m->origin);
        send_lock_msg(d, lock_manager(d, m->lock), DSMW__TYPE__UNLOCK, m->lock, (int)m->origin, 0, 0);
        return;
    }
    if (held_add(&rk->held, m->lock) != DSM_OK) {
        dsmd_abort(d, DSM_ENOMEM, "out of memory recording a held lock");
        return;
    }
    s = step_new(d, DSMW__TYPE__LOCK_GRANT, c, m->lock, rk->rank);
    if (s != NULL)
        after_acquire(d, m, s, lock_applied);
}

/* Node 0: node src arrived at g; release everyone when all have. Whole nodes waiting at
 * both exchanges means a rank finalized while others wait in a barrier. */
static void gather_manager(struct dsmd *d, int src, struct gather *g, const dsmw_msg_t *arrive,
                           int release_type)
{
    struct gather *bar = &d->sync->barrier, *fin = &d->sync->fini;
    dsmw_msg_t m;

    if (hooks(d)->barrier_arrived)
        hooks(d)->barrier_arrived(d->p, arrive);
    if (g->mgr.arrived == 1) { /* counted already (dsmd_sync_message) */
        g->mgr_origin = (int)arrive->origin;
        g->mgr_node = src;
    }
    if (bar->mgr.arrived && fin->mgr.arrived) {
        dsmd_abort_rank(d, fin->mgr_origin, "finalized", DSM_ESTATE,
                        "rank %d (node %d) called dsm_finalize while rank %d (node %d) waits in dsm_barrier "
                        "(barrier %llu): that barrier can never complete", fin->mgr_origin, fin->mgr_node,
                        bar->mgr_origin, bar->mgr_node, (unsigned long long)bar->epoch + 1);
        return;
    }
    absent_check(d);
    if (d->aborting || !dsmd_gather_complete(&g->mgr, DSMD_COMPUTE_NODES(d))) /* memory nodes never arrive */
        return;
    dsmw_init(&m, release_type);
    m.epoch = arrive->epoch;
    m.origin = (uint32_t)d->cfg.first_rank;
    if (hooks(d)->fill_barrier)
        hooks(d)->fill_barrier(d->p, &m);
    dsmd_broadcast(d, &m);
}

static dsm_status_t gather_release(struct dsmd *d, struct gather *g, uint64_t epoch)
{
    struct dsmd_chan *c, *next;

    if (epoch != g->epoch) {
        DSM_ERR("release of barrier epoch %llu, but this node is at %llu", (unsigned long long)epoch,
                (unsigned long long)g->epoch);
        return DSM_EPROTO;
    }
    g->epoch++;
    for (c = g->waiting; c; c = next) {
        next = c->pnext;
        c->pnext = NULL;
        if (g == &d->sync->barrier)
            dsmd_rank_of(d, c)->c.barriers++;
        c->pending_op = 0;
        dsmd_chan_reply(d, c, DSM_OK, 0);
    }
    g->waiting = NULL;
    return DSM_OK;
}

/* The module has applied a barrier (or finalize) release: let the local ranks go. */
static void release_applied(dsmp_t *p, void *arg)
{
    struct sync_step *s = arg;
    struct dsmd *d = s->d;

    (void)p;
    if (s->type == DSMW__TYPE__FINI_RELEASE) {
        d->finishing = 1;
        if (gather_release(d, &d->sync->fini, s->epoch) != DSM_OK)
            dsmd_abort(d, DSM_EPROTO, "finalize released out of order");
        else if (d->cfg.local_ranks == 0)
            dsmd_maybe_exit(d); /* a memory node has no rank whose leaving would look again */
    } else if (gather_release(d, &d->sync->barrier, s->epoch) != DSM_OK) {
        dsmd_abort(d, DSM_EPROTO, "barrier released out of order");
    }
    step_free(s);
}

dsm_status_t dsmd_sync_message(struct dsmd *d, int src, const dsmw_msg_t *m)
{
    struct dsmd_sync *s = d->sync;
    struct dsmd_lockq_waiter *g;
    struct sync_step *step;

    switch (m->type) {
    case DSMW__TYPE__LOCK_REQ:
        if (m->lock % (uint32_t)d->cfg.nnodes != (uint32_t)d->cfg.node)
            return DSM_EPROTO;
        return lock_request(d, m);
    case DSMW__TYPE__LOCK_GRANT:
        lock_granted(d, m);
        return DSM_OK;
    case DSMW__TYPE__UNLOCK:
        if (m->lock % (uint32_t)d->cfg.nnodes != (uint32_t)d->cfg.node ||
            dsmd_lockq_release(s->locks, m->lock, (int)m->origin, &g) != DSM_OK) {
            DSM_ERR("node %d unlocked lock %u for rank %u, which does not hold it", src, m->lock, m->origin);
            return DSM_EPROTO;
        }
        if (hooks(d)->lock_released)
            hooks(d)->lock_released(d->p, m->lock, m);
        send_grant(d, g);
        return DSM_OK;
    case DSMW__TYPE__BARRIER_ARRIVE:
    case DSMW__TYPE__FINI_ARRIVE:
        if (d->cfg.node != 0 || src >= DSMD_COMPUTE_NODES(d) ||
            dsmd_gather_arrive(m->type == DSMW__TYPE__BARRIER_ARRIVE ? &s->barrier.mgr : &s->fini.mgr, m->epoch) !=
                DSM_OK) {
            DSM_ERR("node %d arrived at %s epoch %llu, which is not the one under way", src,
                    m->type == DSMW__TYPE__BARRIER_ARRIVE ? "barrier" : "finalize", (unsigned long long)m->epoch);
            return DSM_EPROTO;
        }
        gather_manager(d, src, m->type == DSMW__TYPE__BARRIER_ARRIVE ? &s->barrier : &s->fini, m,
                       m->type == DSMW__TYPE__BARRIER_ARRIVE ? DSMW__TYPE__BARRIER_RELEASE : DSMW__TYPE__FINI_RELEASE);
        return DSM_OK;
    case DSMW__TYPE__BARRIER_RELEASE:
    case DSMW__TYPE__FINI_RELEASE:
        if (src != 0)
            return DSM_EPROTO;
        step = step_new(d, m->type, NULL, 0, d->cfg.first_rank);
        if (step == NULL)
            return DSM_ENOMEM;
        step->epoch = m->epoch;
        if (m->type == DSMW__TYPE__FINI_RELEASE || d->cfg.local_ranks == 0) {
            /* nothing can be read after dsm_finalize: no acquire to apply, and from now on
             * peers may leave (node 0 has released everyone); a memory node has no rank to
             * acquire for (waiting, its releases could complete out of order) */
            release_applied(d->p, step);
            return DSM_OK;
        }
        after_acquire(d, m, step, release_applied);
        return DSM_OK;
    case DSMW__TYPE__COND_WAIT:
        if (cond_manager(d, m->cond) != d->cfg.node)
            return DSM_EPROTO;
        return cond_enqueue(d, m);
    case DSMW__TYPE__COND_SIGNAL:
        if (cond_manager(d, m->cond) != d->cfg.node)
            return DSM_EPROTO;
        cond_signal(d, m);
        return DSM_OK;
    case DSMW__TYPE__COND_QUEUED:
    case DSMW__TYPE__COND_WAKE:
        if (src != cond_manager(d, m->cond))
            return DSM_EPROTO;
        cond_reply(d, m);
        return DSM_OK;
    case DSMW__TYPE__RANK_ABSENT:
        s->absent_from[src] = 1;
        if (s->absent < 0) {
            s->absent = (int)m->origin;
            s->absent_status = m->status;
            s->absent_node = (int)m->node;
        }
        absent_check(d);
        return DSM_OK;
    default:
        return DSM_EPROTO;
    }
}

/* One WAITS line for a lock held here: its holder and waiters. */
static void describe_lock(void *arg, uint32_t lock, int holder, const struct dsmd_lockq_waiter *waiters)
{
    struct dsmd *d = arg;
    char line[200];
    size_t n = (size_t)snprintf(line, sizeof(line), "lock %u (managed here) is held by rank %d", lock, holder);

    for (const struct dsmd_lockq_waiter *w = waiters; w && n < sizeof(line); w = w->next)
        n += (size_t)snprintf(line + n, sizeof(line) - n, "%s%d",
                              w != waiters ? ", " : w->next ? "; waiting: ranks " : "; waiting: rank ", w->origin);
    dsmd_announce(d, "WAITS %s", line);
}

void dsmd_sync_describe(struct dsmd *d)
{
    struct dsmd_sync *s = d->sync;

    dsmd_lockq_each_held(s->locks, describe_lock, d);
    if (d->cfg.node == 0 && s->barrier.mgr.arrived)
        dsmd_announce(d, "WAITS barrier %llu: %d of %d nodes arrived", (unsigned long long)s->barrier.epoch + 1,
                      s->barrier.mgr.arrived, DSMD_COMPUTE_NODES(d));
    if (d->cfg.node == 0 && s->fini.mgr.arrived)
        dsmd_announce(d, "WAITS dsm_finalize: %d of %d nodes arrived", s->fini.mgr.arrived, DSMD_COMPUTE_NODES(d));
}

void dsmd_sync_rank_absent(struct dsmd *d, int rank, int status)
{
    dsmw_msg_t m;

    dsmw_init(&m, DSMW__TYPE__RANK_ABSENT);
    m.origin = (uint32_t)rank;
    m.node = (uint32_t)d->cfg.node;
    m.status = status;
    dsmd_broadcast(d, &m);
}

void dsmd_sync_chan_gone(struct dsmd *d, struct dsmd_chan *c)
{
    struct gather *gs[2] = { &d->sync->barrier, &d->sync->fini };

    for (int i = 0; i < 2; i++)
        for (struct dsmd_chan **pp = &gs[i]->waiting; *pp; pp = &(*pp)->pnext)
            if (*pp == c) {
                *pp = c->pnext;
                break;
            }
}

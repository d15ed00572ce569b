/*
 * atomics.c - atomic operations on global memory (dsm_atomic_*), performed at the home.
 *
 * A rank's DSMC_ATOMIC names an address; its daemon checks it and sends ATOMIC_REQ to the
 * page's home (itself included: messages to self are queued like any other). The home
 * runs the protocol's prepare hook, updates the word in its frame with a CPU atomic (its
 * own ranks may be reading the frame meanwhile), runs the applied hook and answers
 * ATOMIC_REPLY with the old value. The requester's node runs the done hook and answers
 * the rank. The page never moves to the requester for it.
 *
 * Linearizability: every atomic on a word is performed by the one daemon of its home, in
 * its event loop, between the request's arrival and the reply's departure; the event loop
 * does one at a time, so they take effect in one order, each within its call.
 *
 *   requester's node                     home
 *   DSMC_ATOMIC -> atomic_request  --ATOMIC_REQ-->  atomic_arrived -> prepare() ->
 *                                                   op_ready (frame updated) -> applied() ->
 *   reply_arrived <-- ATOMIC_REPLY --------------   op_applied
 *   -> done() -> wait_done: REPLY to the rank
 *
 * A rank whose channel closes while its atomic is in flight gets no answer; the operation
 * still happens (as a store the dying thread had issued).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dsm_log.h"
#include "atomic_word.h"
#include "dsmd.h"

_Static_assert((int)DSMC_AOP_LOAD == (int)DSMW_AOP_LOAD && (int)DSMC_AOP_CAS == (int)DSMW_AOP_CAS &&
                   (int)DSMC_AOP_FETCH_ADD == (int)DSMW_AOP_FETCH_ADD && (int)DSMC_AOP_SWAP == (int)DSMW_AOP_SWAP,
               "the channel and the wire number atomic operations alike");

/* An operation at the home, from its arrival to its reply. Every op and wait is also on
 * the daemon's list (struct dsmd_atomics), so one a hook never finishes (the region was
 * freed under it, a peer's reply names a clock that never comes) is freed at the end. */
struct atomic_op {
    struct atomic_op *next, *prev;
    struct dsmd *d;
    int      preparing;  /* in the protocol's prepare hook (a region reset drops it there) */
    int      src;        /* requester's node */
    uint32_t origin;     /* requesting rank */
    uint64_t token;      /* requester's channel id */
    uint64_t page, off, size, operand, operand2;
    uint32_t aop;
    uint64_t value;      /* the word before */
    uint64_t stamp;      /* set by the applied hook */
};

/* A reply at the requester's node, waiting for the done hook. */
struct atomic_wait {
    struct atomic_wait *next, *prev;
    struct dsmd *d;
    int      chan;
    uint32_t origin;
    uint64_t value;
};

struct dsmd_atomics {
    struct atomic_op *ops;
    struct atomic_wait *waits;
};

dsm_status_t dsmd_atomics_init(struct dsmd *d)
{
    d->atomics = calloc(1, sizeof(*d->atomics));
    return d->atomics != NULL ? DSM_OK : DSM_ENOMEM;
}

void dsmd_atomics_fini(struct dsmd *d)
{
    if (d->atomics == NULL)
        return;
    while (d->atomics->ops) {
        struct atomic_op *op = d->atomics->ops;

        d->atomics->ops = op->next;
        free(op);
    }
    while (d->atomics->waits) {
        struct atomic_wait *w = d->atomics->waits;

        d->atomics->waits = w->next;
        free(w);
    }
    free(d->atomics);
    d->atomics = NULL;
}

/* Link x (an op or a wait: next and prev first) at the head of *head; unlink it. */
#define LIST_ADD(head, x)                \
    do {                                 \
        (x)->prev = NULL;                \
        (x)->next = *(head);             \
        if (*(head) != NULL)             \
            (*(head))->prev = (x);       \
        *(head) = (x);                   \
    } while (0)
#define LIST_DEL(head, x)                \
    do {                                 \
        if ((x)->prev != NULL)           \
            (x)->prev->next = (x)->next; \
        else                             \
            *(head) = (x)->next;         \
        if ((x)->next != NULL)           \
            (x)->next->prev = (x)->prev; \
    } while (0)

static const struct dsmp_atomic_ops *hooks(const struct dsmd *d)
{
    static const struct dsmp_atomic_ops none;

    return d->pops->atomic ? d->pops->atomic : &none;
}

static int is_write(uint32_t aop)
{
    return aop != DSMW_AOP_LOAD;
}

/* ---- requester's node ---- */

static void reply_rank(struct dsmd *d, struct dsmd_chan *c, int status, uint64_t value, const char *why)
{
    struct dsmc_msg m = { .op = DSMC_REPLY, .status = status, .a = value };

    c->pending_op = 0;
    c->atomic_replied = 0;
    if (why != NULL)
        snprintf(m.text, sizeof(m.text), "%s", why);
    dsmd_chan_send(d, c, &m);
}

/* The channel still waiting for an atomic of rank `origin` with id `id`, or NULL; with
 * `replied`, one whose reply has come (its done hook runs), else one whose has not. */
static struct dsmd_chan *waiting_chan(struct dsmd *d, int id, uint32_t origin, int replied)
{
    struct dsmd_chan *c = dsmd_chan_by_id(d, id);
    struct dsmd_rank *rk = c ? dsmd_rank_of(d, c) : NULL;

    return rk != NULL && c->pending_op == DSMC_ATOMIC && rk->rank == (int)origin &&
                   c->atomic_replied == replied ? c : NULL;
}

/* An atomic parked until its first-touch page has a home. */
struct atomic_parked {
    int chan;
    uint32_t origin;
    struct dsmc_msg req;
};

static void atomic_resume(struct dsmd *d, void *arg)
{
    struct atomic_parked *a = arg;
    struct dsmd_chan *c = waiting_chan(d, a->chan, a->origin, 0);

    if (c != NULL) {
        c->pending_op = 0;
        dsmd_atomic_request(d, c, &a->req);
    }
    free(a);
}

void dsmd_atomic_request(struct dsmd *d, struct dsmd_chan *c, const struct dsmc_msg *m)
{
    struct dsmd_rank *rk = dsmd_rank_of(d, c);
    uint64_t size = m->e, space = d->npages * d->page_size, rel, page;
    dsmw_msg_t req;
    int home;

    if ((size != 4 && size != 8) || m->d > DSMW_AOP_MAX || (size == 4 && (m->b >> 32 || m->c >> 32))) {
        reply_rank(d, c, DSM_EINVAL, 0, "malformed atomic request");
        return;
    }
    if (m->a < d->cfg.base || m->a - d->cfg.base >= space || m->a % size != 0) {
        reply_rank(d, c, DSM_EINVAL, 0, "not an aligned address of the global space");
        return;
    }
    rel = m->a - d->cfg.base;
    page = rel / d->page_size;
    home = dsmd_space_home(&d->space, page);
    if (home == DSMD_NO_HOME) {
        reply_rank(d, c, DSM_EINVAL, 0, "the address is in no allocation");
        return;
    }
    c->pending_op = DSMC_ATOMIC;
    c->pending_seq = page; /* for the deadlock report */
    if (home == DSMD_HOME_UNDECIDED) { /* the atomic touches the page first: claim it */
        struct atomic_parked *a = malloc(sizeof(*a));

        if (a == NULL) {
            reply_rank(d, c, DSM_ENOMEM, 0, "out of memory in the daemon");
            return;
        }
        *a = (struct atomic_parked){ .chan = c->id, .origin = (uint32_t)rk->rank, .req = *m };
        dsmd_ft_wait(d, page, atomic_resume, a);
        return;
    }
    dsmw_init(&req, DSMW__TYPE__ATOMIC_REQ);
    req.page = page;
    req.addr = rel % d->page_size;
    req.size = size;
    req.aop = (uint32_t)m->d;
    req.operand = m->b;
    req.operand2 = m->c;
    req.node = (uint32_t)d->cfg.node;
    req.origin = (uint32_t)rk->rank;
    req.seq = (uint64_t)c->id;
    if (hooks(d)->requesting)
        hooks(d)->requesting(d->p, page, home);
    dsmd_send(d, home, &req, DSMT_NO_PAGE);
}

static void wait_done(dsmp_t *p, void *arg)
{
    struct atomic_wait *w = arg;
    struct dsmd_chan *c = waiting_chan(w->d, w->chan, w->origin, 1);

    (void)p;
    if (c != NULL)
        reply_rank(w->d, c, DSM_OK, w->value, NULL);
    LIST_DEL(&w->d->atomics->waits, w);
    free(w);
}

static dsm_status_t reply_arrived(struct dsmd *d, int src, const dsmw_msg_t *m)
{
    struct dsmd_chan *c = waiting_chan(d, (int)m->seq, m->origin, 0);
    int home = dsmd_space_home(&d->space, m->page);
    struct atomic_wait *w;
    uint64_t now;

    if (m->addr >= d->page_size || m->size > d->page_size - m->addr)
        return DSM_EPROTO;
    if (c == NULL) /* the thread went away (or a peer answers what nobody asked) */
        return DSM_OK;
    if (c->pending_seq != m->page) /* not the page this thread asked about */
        return DSM_EPROTO;
    if (m->status != 0 || home < 0) { /* refused, or the memory was freed meanwhile */
        reply_rank(d, c, m->status ? m->status : DSM_EINVAL, 0,
                   m->text && *m->text ? m->text : "the address is in no allocation");
        return DSM_OK;
    }
    if (src != home) /* only the home performs atomics on its pages */
        return DSM_EPROTO;
    c->atomic_replied = 1; /* a second reply is refused while the done hook runs */
    w = malloc(sizeof(*w));
    if (w == NULL) {
        dsmd_abort(d, DSM_ENOMEM, "out of memory finishing an atomic operation");
        return DSM_OK;
    }
    *w = (struct atomic_wait){ .d = d, .chan = (int)m->seq, .origin = m->origin, .value = m->value };
    LIST_ADD(&d->atomics->waits, w);
    now = dsmd_atomic_after(m->aop, m->value, m->operand, m->operand2, m->size);
    if (hooks(d)->done) {
        uint32_t v32 = (uint32_t)now;
        const void *val = now == m->value ? NULL : m->size == 4 ? (const void *)&v32 : (const void *)&now;

        hooks(d)->done(d->p, m->page, (int)m->origin, src, m->stamp, m->addr, m->size, val, wait_done, w);
    } else {
        wait_done(d->p, w);
    }
    return DSM_OK;
}

/* ---- home ---- */

static void send_reply(struct dsmd *d, const struct atomic_op *op, int status, const char *why)
{
    dsmw_msg_t m;

    dsmw_init(&m, DSMW__TYPE__ATOMIC_REPLY);
    m.page = op->page;
    m.addr = op->off;
    m.size = op->size;
    m.aop = op->aop;
    m.operand = op->operand;
    m.operand2 = op->operand2;
    m.value = op->value;
    m.stamp = op->stamp;
    m.status = status;
    m.origin = op->origin;
    m.seq = op->token;
    if (why != NULL)
        m.text = (char *)why;
    dsmd_send(d, op->src, &m, DSMT_NO_PAGE);
}

static void op_applied(dsmp_t *p, void *arg)
{
    struct atomic_op *op = arg;

    (void)p;
    send_reply(op->d, op, DSM_OK, NULL);
    LIST_DEL(&op->d->atomics->ops, op);
    free(op);
}

static void op_ready(dsmp_t *p, void *arg)
{
    struct atomic_op *op = arg;
    struct dsmd *d = op->d;

    op->preparing = 0;
    uint8_t *frame = d->svc.frame(d->svc.ctx, op->page);

    op->value = dsmd_atomic_perform(frame + op->off, op->size, op->aop, op->operand, op->operand2);
    if (hooks(d)->applied)
        hooks(d)->applied(p, op->page, (int)op->origin, &op->stamp, op_applied, op);
    else
        op_applied(p, op);
}

static dsm_status_t atomic_arrived(struct dsmd *d, int src, const dsmw_msg_t *m)
{
    struct atomic_op *op;

    if ((int)m->node != src || m->addr >= d->page_size || m->size > d->page_size - m->addr)
        return DSM_EPROTO;
    op = calloc(1, sizeof(*op));
    if (op == NULL) {
        dsmd_abort(d, DSM_ENOMEM, "out of memory performing an atomic operation");
        return DSM_OK;
    }
    *op = (struct atomic_op){ .d = d, .src = src, .origin = m->origin, .token = m->seq, .page = m->page,
                              .off = m->addr, .size = m->size, .operand = m->operand, .operand2 = m->operand2,
                              .aop = m->aop };
    if (dsmd_space_home(&d->space, m->page) != d->cfg.node) {
        /* the region was freed (and perhaps reallocated) while the request travelled */
        send_reply(d, op, DSM_EINVAL, "the address is in no allocation");
        free(op);
        return DSM_OK;
    }
    LIST_ADD(&d->atomics->ops, op);
    op->preparing = 1;
    if (hooks(d)->prepare)
        hooks(d)->prepare(d->p, m->page, (int)m->origin, is_write(m->aop), op_ready, op);
    else
        op_ready(d->p, op);
    return DSM_OK;
}

void dsmd_atomics_region_reset(struct dsmd *d, uint64_t first, uint64_t n)
{
    for (struct atomic_op *op = d->atomics->ops, *next; op; op = next) {
        next = op->next;
        if (!op->preparing || op->page < first || op->page >= first + n)
            continue;
        send_reply(d, op, DSM_EINVAL, "the memory was freed while the atomic waited");
        LIST_DEL(&d->atomics->ops, op);
        free(op);
    }
}

dsm_status_t dsmd_atomic_message(struct dsmd *d, int src, const dsmw_msg_t *m)
{
    switch (m->type) {
    case DSMW__TYPE__ATOMIC_REQ:   return atomic_arrived(d, src, m);
    case DSMW__TYPE__ATOMIC_REPLY: return reply_arrived(d, src, m);
    default:                       return DSM_EPROTO;
    }
}

/*
 * firsttouch.c - homes chosen by the first touch (DSM_PLACE_FIRST_TOUCH).
 *
 * The pages of a first-touch region start with no home (DSMD_HOME_UNDECIDED) on every
 * node. The first fault or atomic on such a page at a node parks there and asks node 0,
 * the arbiter, with HOME_CLAIM; node 0 gives the page to the first claimant and tells it
 * with HOME_IS. The new home resets its protocol state for the page as its home and
 * answers HOME_ACK; only then does node 0 answer the claims that came meanwhile (and
 * later ones, at once), so no node can send a request for the page to a home that does
 * not know it is one yet. A node learns a page's home only when it needs it: a node that
 * never touches the page never asks.
 *
 * Invariants:
 *   F1  A node holds at most one claim per page; its parked faults and atomics wait for
 *       the answer (page_kick, then the continuations).
 *   F2  Node 0 decides each page once per allocation (the table `decided`), and answers
 *       claimants other than the home only after the home's HOME_ACK.
 *   F3  Until its HOME_IS, no node sends a protocol message about the page: the daemon
 *       does not hand a fault on it to the protocol (dsmd_pages_fault, page_kick) and
 *       holds atomics on it back.
 *
 *   claimant                               node 0 (arbiter)
 *   fault/atomic -> dsmd_ft_wait ---CLAIM-->  claim_arrived: undecided? decide, pending
 *                                             decided and acked? HOME_IS at once
 *   home: is_arrived: reset, ACK <--IS---  <-ACK-- ack_arrived: HOME_IS to the waiters
 *   others: is_arrived: kick, continuations
 */
#include <stdlib.h>
#include <string.h>

#include "dsm_log.h"
#include "dsmd.h"

/* A continuation waiting for a page's home. */
struct ft_cont {
    struct ft_cont *next;
    void (*fn)(struct dsmd *d, void *arg);
    void *arg;
};

/* This node's claim of a page. */
struct ft_claim {
    struct ft_claim *next;
    uint64_t page;
    struct ft_cont *conts;
};

/* Node 0: a page decided, whose home has not acknowledged yet; the claims meanwhile. */
struct ft_pending {
    struct ft_pending *next;
    uint64_t page;
    int home;
    int nwait;
    int *waiters;      /* claimant nodes to answer after the ACK */
};

struct dsmd_ft {
    struct ft_claim *claims;
    struct ft_pending *pending;
    int16_t *decided;  /* node 0: the home given per page, DSMD_HOME_UNDECIDED if none */
    uint64_t claims_sent, decisions;
};

dsm_status_t dsmd_ft_init(struct dsmd *d)
{
    d->ft = calloc(1, sizeof(*d->ft));
    if (d->ft == NULL)
        return DSM_ENOMEM;
    if (d->cfg.node == 0) {
        d->ft->decided = malloc(d->npages * sizeof(int16_t));
        if (d->ft->decided == NULL)
            return DSM_ENOMEM;
        for (uint64_t p = 0; p < d->npages; p++)
            d->ft->decided[p] = DSMD_HOME_UNDECIDED;
    }
    return DSM_OK;
}

void dsmd_ft_fini(struct dsmd *d)
{
    if (d->ft == NULL)
        return;
    while (d->ft->claims) {
        struct ft_claim *c = d->ft->claims;

        d->ft->claims = c->next;
        while (c->conts) {
            struct ft_cont *k = c->conts;

            c->conts = k->next;
            free(k->arg);
            free(k);
        }
        free(c);
    }
    while (d->ft->pending) {
        struct ft_pending *p = d->ft->pending;

        d->ft->pending = p->next;
        free(p->waiters);
        free(p);
    }
    free(d->ft->decided);
    free(d->ft);
    d->ft = NULL;
}

static void send_ft(struct dsmd *d, int node, int type, uint64_t page, int home, int status)
{
    dsmw_msg_t m;

    dsmw_init(&m, type);
    m.page = page;
    m.node = (uint32_t)home;
    m.status = status;
    m.origin = (uint32_t)d->cfg.first_rank;
    dsmd_send(d, node, &m, DSMT_NO_PAGE);
}

void dsmd_ft_wait(struct dsmd *d, uint64_t page, void (*fn)(struct dsmd *d, void *arg), void *arg)
{
    struct ft_claim *c;

    for (c = d->ft->claims; c && c->page != page; c = c->next)
        ;
    if (c == NULL) {
        c = calloc(1, sizeof(*c));
        if (c == NULL) {
            free(arg);
            dsmd_abort(d, DSM_ENOMEM, "out of memory claiming a first-touch page");
            return;
        }
        c->page = page;
        c->next = d->ft->claims;
        d->ft->claims = c;
        d->ft->claims_sent++;
        send_ft(d, 0, DSMW__TYPE__HOME_CLAIM, page, d->cfg.node, 0);
    }
    if (fn != NULL) {
        struct ft_cont *k = malloc(sizeof(*k)), **pp;

        if (k == NULL) {
            free(arg);
            dsmd_abort(d, DSM_ENOMEM, "out of memory waiting for a first-touch page's home");
            return;
        }
        *k = (struct ft_cont){ .fn = fn, .arg = arg };
        for (pp = &c->conts; *pp; pp = &(*pp)->next)
            ;
        *pp = k; /* in arrival order */
    }
}

/* Claimant: the page's home is `home` (or the page is gone: NO_HOME). */
static void is_arrived(struct dsmd *d, const dsmw_msg_t *m)
{
    struct ft_claim **pp, *c;
    int home = m->status != 0 ? DSMD_NO_HOME : (int)m->node;

    for (pp = &d->ft->claims; *pp && (*pp)->page != m->page; pp = &(*pp)->next)
        ;
    if ((c = *pp) == NULL) {
        DSM_WARN("home of page %llu given without a claim", (unsigned long long)m->page);
        return;
    }
    *pp = c->next;
    if (dsmd_space_home(&d->space, m->page) == DSMD_HOME_UNDECIDED) {
        d->space.home[m->page] = (int16_t)home;
        if (home == d->cfg.node) {
            d->pops->reset(d->p, m->page, 1); /* untouched until now: zero, no access anywhere */
            send_ft(d, 0, DSMW__TYPE__HOME_ACK, m->page, home, 0);
        }
    }
    dsmd_pages_kick(d, m->page);
    while (c->conts) {
        struct ft_cont *k = c->conts;

        c->conts = k->next;
        k->fn(d, k->arg);
        free(k);
    }
    free(c);
}

/* Node 0: a claim. */
static void claim_arrived(struct dsmd *d, int src, const dsmw_msg_t *m)
{
    struct dsmd_ft *ft = d->ft;
    struct ft_pending *p;
    int home = dsmd_space_home(&d->space, m->page);

    for (p = ft->pending; p && p->page != m->page; p = p->next)
        ;
    if (p != NULL) { /* decided, the home has not acknowledged yet */
        int *w = realloc(p->waiters, (size_t)(p->nwait + 1) * sizeof(int));

        if (w == NULL) {
            dsmd_abort(d, DSM_ENOMEM, "out of memory queueing a first-touch claim");
            return;
        }
        p->waiters = w;
        p->waiters[p->nwait++] = src;
        return;
    }
    if (home == DSMD_HOME_UNDECIDED)
        home = ft->decided[m->page]; /* node 0 learns a home only when it claims one */
    if (home == DSMD_NO_HOME) {
        send_ft(d, src, DSMW__TYPE__HOME_IS, m->page, 0, DSM_EINVAL); /* freed meanwhile */
        return;
    }
    if (home != DSMD_HOME_UNDECIDED) {
        send_ft(d, src, DSMW__TYPE__HOME_IS, m->page, home, 0);
        return;
    }
    p = calloc(1, sizeof(*p));
    if (p == NULL) {
        dsmd_abort(d, DSM_ENOMEM, "out of memory deciding a first-touch page");
        return;
    }
    p->page = m->page;
    p->home = src;
    p->next = ft->pending;
    ft->pending = p;
    ft->decided[m->page] = (int16_t)src;
    ft->decisions++;
    send_ft(d, src, DSMW__TYPE__HOME_IS, m->page, src, 0);
}

/* Node 0: the new home has set the page up; answer the claims that waited. */
static dsm_status_t ack_arrived(struct dsmd *d, int src, const dsmw_msg_t *m)
{
    struct ft_pending **pp, *p;

    for (pp = &d->ft->pending; *pp && (*pp)->page != m->page; pp = &(*pp)->next)
        ;
    if ((p = *pp) == NULL || p->home != src) {
        /* a decision the region's free took back (dsmd_ft_region_reset) before this came */
        DSM_DEBUG("first touch: stale HOME_ACK of page %llu from node %d", (unsigned long long)m->page, src);
        return DSM_OK;
    }
    *pp = p->next;
    for (int i = 0; i < p->nwait; i++)
        send_ft(d, p->waiters[i], DSMW__TYPE__HOME_IS, p->page, p->home, 0);
    free(p->waiters);
    free(p);
    return DSM_OK;
}

void dsmd_ft_region_reset(struct dsmd *d, uint64_t first, uint64_t n)
{
    if (d->ft == NULL || d->ft->decided == NULL)
        return;
    for (uint64_t p = first; p < first + n && p < d->npages; p++)
        d->ft->decided[p] = DSMD_HOME_UNDECIDED;
    /* decisions still waiting for their home's ACK: the region went first (a program that
     * freed memory other ranks were touching); their waiters learn the page is gone */
    for (struct ft_pending **pp = &d->ft->pending; *pp;) {
        struct ft_pending *p = *pp;

        if (p->page < first || p->page >= first + n) {
            pp = &p->next;
            continue;
        }
        *pp = p->next;
        for (int i = 0; i < p->nwait; i++)
            send_ft(d, p->waiters[i], DSMW__TYPE__HOME_IS, p->page, 0, DSM_EINVAL);
        free(p->waiters);
        free(p);
    }
}

uint64_t dsmd_ft_claims(const struct dsmd *d)
{
    return d->ft ? d->ft->claims_sent : 0;
}

dsm_status_t dsmd_ft_message(struct dsmd *d, int src, const dsmw_msg_t *m)
{
    switch (m->type) {
    case DSMW__TYPE__HOME_CLAIM:
        if (d->cfg.node != 0 || (int)m->node != src)
            return DSM_EPROTO;
        claim_arrived(d, src, m);
        return DSM_OK;
    case DSMW__TYPE__HOME_IS:
        if (src != 0)
            return DSM_EPROTO;
        is_arrived(d, m);
        return DSM_OK;
    case DSMW__TYPE__HOME_ACK:
        return d->cfg.node == 0 ? ack_arrived(d, src, m) : DSM_EPROTO;
    default:
        return DSM_EPROTO;
    }
}

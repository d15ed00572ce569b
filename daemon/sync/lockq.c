/* lockq.c - see lockq.h. */
#include "lockq.h"

#include <stdlib.h>
#include <string.h>

struct lock {
    struct lock *next;
    uint32_t id;
    int held, holder;
    struct dsmd_lockq_waiter *qh, *qt;
};

struct dsmd_lockq {
    size_t nbuckets;
    struct lock *bucket[];
};

struct dsmd_lockq *dsmd_lockq_new(size_t buckets)
{
    struct dsmd_lockq *q = calloc(1, sizeof(*q) + (buckets ? buckets : 1) * sizeof(struct lock *));

    if (q != NULL)
        q->nbuckets = buckets ? buckets : 1;
    return q;
}

void dsmd_lockq_free(struct dsmd_lockq *q)
{
    if (q == NULL)
        return;
    for (size_t b = 0; b < q->nbuckets; b++) {
        struct lock *l, *ln;

        for (l = q->bucket[b]; l; l = ln) {
            ln = l->next;
            for (struct dsmd_lockq_waiter *w = l->qh, *wn; w; w = wn) {
                wn = w->next;
                free(w);
            }
            free(l);
        }
    }
    free(q);
}

/* The entry of lock id, made (free, nobody waiting) if `make`; NULL if absent or out of
 * memory. */
static struct lock *lock_of(struct dsmd_lockq *q, uint32_t id, int make)
{
    struct lock **b = &q->bucket[id % q->nbuckets], *l;

    for (l = *b; l; l = l->next)
        if (l->id == id)
            return l;
    if (!make || (l = calloc(1, sizeof(*l))) == NULL)
        return NULL;
    l->id = id;
    l->next = *b;
    *b = l;
    return l;
}

/* Make the first waiter the holder and hand it out; NULL (lock free) when none waits. */
static struct dsmd_lockq_waiter *pass(struct lock *l)
{
    struct dsmd_lockq_waiter *w = l->qh;

    l->held = w != NULL;
    if (w == NULL)
        return NULL;
    l->qh = w->next;
    if (l->qh == NULL)
        l->qt = NULL;
    w->next = NULL;
    l->holder = w->origin;
    return w;
}

dsm_status_t dsmd_lockq_request(struct dsmd_lockq *q, const dsmw_msg_t *m, struct dsmd_lockq_waiter **grant)
{
    struct lock *l = lock_of(q, m->lock, 1);
    struct dsmd_lockq_waiter *w;

    *grant = NULL;
    if (l == NULL)
        return DSM_ENOMEM;
    if (m->count && l->held)
        return DSM_EBUSY;
    w = calloc(1, sizeof(*w) + m->n_vclock * sizeof(uint64_t));
    if (w == NULL)
        return DSM_ENOMEM;
    w->lock = m->lock;
    w->node = (int)m->node;
    w->origin = (int)m->origin;
    w->token = m->seq;
    w->n_vclock = m->n_vclock;
    if (m->n_vclock)
        memcpy(w->vclock, m->vclock, m->n_vclock * sizeof(uint64_t));
    if (l->qt)
        l->qt->next = w;
    else
        l->qh = w;
    l->qt = w;
    if (!l->held)
        *grant = pass(l);
    return DSM_OK;
}

dsm_status_t dsmd_lockq_release(struct dsmd_lockq *q, uint32_t lock, int origin, struct dsmd_lockq_waiter **grant)
{
    struct lock *l = lock_of(q, lock, 0);

    *grant = NULL;
    if (l == NULL || !l->held || l->holder != origin)
        return DSM_EPROTO;
    *grant = pass(l);
    return DSM_OK;
}

void dsmd_lockq_done(struct dsmd_lockq_waiter *w)
{
    free(w);
}

void dsmd_lockq_each_held(const struct dsmd_lockq *q,
                          void (*fn)(void *arg, uint32_t lock, int holder, const struct dsmd_lockq_waiter *waiters),
                          void *arg)
{
    for (size_t b = 0; b < q->nbuckets; b++)
        for (const struct lock *l = q->bucket[b]; l; l = l->next)
            if (l->held)
                fn(arg, l->id, l->holder, l->qh);
}

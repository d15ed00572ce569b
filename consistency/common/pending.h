/*
 * pending.h - closures a protocol hands the daemon and only their done() frees: the
 * argument of a revocation (svc->revoke) that answers a peer once it ends.
 *
 * When the daemon ends with a revocation still out (a job failing, a peer lost), its done()
 * never runs. Each such closure starts with a struct dsmp_pending and sits on one of the
 * protocol's lists from the moment it is handed over until its done(); the protocol's
 * destroy frees whatever is left (dsmp_pending_free_all). Unlinking is O(1): a node may
 * have a revocation out for every page.
 */
#ifndef DSMP_PENDING_H
#define DSMP_PENDING_H

#include <stdlib.h>

struct dsmp_pending {
    struct dsmp_pending *next, *prev;
};

/* Put n (the first member of its closure) at the head of *head. */
static inline void dsmp_pending_add(struct dsmp_pending **head, struct dsmp_pending *n)
{
    n->prev = NULL;
    n->next = *head;
    if (*head != NULL)
        (*head)->prev = n;
    *head = n;
}

/* Take n off *head (its done() runs; the caller frees the closure). */
static inline void dsmp_pending_del(struct dsmp_pending **head, struct dsmp_pending *n)
{
    if (n->prev != NULL)
        n->prev->next = n->next;
    else
        *head = n->next;
    if (n->next != NULL)
        n->next->prev = n->prev;
    n->next = n->prev = NULL;
}

/* Free every closure left on *head (the protocol's destroy: their done() will never run). */
static inline void dsmp_pending_free_all(struct dsmp_pending **head)
{
    while (*head != NULL) {
        struct dsmp_pending *n = *head;

        *head = n->next;
        free(n);
    }
}

#endif

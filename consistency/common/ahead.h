/*
 * ahead.h - what the protocols share for reads ahead (docs/PROTOCOL.md, "Reads ahead"):
 * how many pages one reply may carry, packing them into it, and the home's batches.
 *
 * A home answers a fetch with pages read ahead in one reply: the asked page as its frame,
 * the others in the message's `data`, `count` = a bitmap of them (bit i-1: page first+i). A
 * batch is such a reply being prepared, while the home's own ranks give up write access to
 * its pages; a reset of its pages meanwhile takes them out of it (the asked page: the batch
 * answers nobody).
 */
#ifndef DSMP_AHEAD_H
#define DSMP_AHEAD_H

#include <stddef.h>
#include <stdint.h>

#include "dsmp.h"

/* Most pages a module fetches ahead of a faulting one in one request: the replies carry
 * them in one message (DSMW_MAX_MSG), so fewer when pages are larger (dsmp_ahead_cap). */
#define DSMP_AHEAD_MAX 15u

struct dsmp_batch {
    struct dsmp_batch *next;
    uint64_t first;     /* the asked page */
    uint32_t served;    /* bit i-1: page first+i goes along */
    int      node, origin;
    int      pending;   /* steps still out (revocations), plus one while it is being built */
    int      dead;      /* the asked page was reset meanwhile: answer nobody */
};

/* Most pages after a faulting one that one reply can carry with pages of page_size bytes
 * (at most DSMP_AHEAD_MAX; 0 when pages are too large for read-ahead). */
uint32_t dsmp_ahead_cap(size_t page_size);

/* Requester: how many pages after `page` to ask for with it: up to ahead-1 (and cap),
 * contiguous, with the same home as `page` (home), each one absent(p, q) says this node
 * has no copy of and nothing under way for. */
uint32_t dsmp_ahead_count(dsmp_t *p, const struct dsmp_services *svc, uint64_t page, int home, uint32_t ahead,
                          uint32_t cap, int (*absent)(dsmp_t *p, uint64_t q));

/* Read-ahead reply: the pages first+i for each bit i-1 of `served` (i <= cap), one after
 * the other into buf (cap pages of room). Sets m's `count` (the bitmap) and `data` (buf). */
void dsmp_ahead_pack(const struct dsmp_services *svc, dsmw_msg_t *m, uint64_t first, uint32_t served, uint32_t cap,
                     uint8_t *buf);

/* A new batch for `first`, asked by node (for rank origin), at the head of *list, with its
 * one pending hold; NULL when out of memory. */
struct dsmp_batch *dsmp_batch_new(struct dsmp_batch **list, uint64_t first, int node, int origin);
/* Take b off *list (it is answered or dropped; the caller frees it). */
void dsmp_batch_unlink(struct dsmp_batch **list, struct dsmp_batch *b);
/* Pages [first, first+n) were reset: the batches of *list leave them out. */
void dsmp_batch_reset(struct dsmp_batch *list, uint64_t first, uint64_t n, uint32_t cap);
/* Free every batch of *list. */
void dsmp_batch_free_all(struct dsmp_batch **list);

#endif

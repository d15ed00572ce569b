/*
 * alloc.c - dsm_coalloc / dsm_cofree (collective, node 0 allocates) and dsm_malloc /
 * dsm_free (per-node arenas).
 *
 * Collective allocation: the k-th dsm_coalloc of every rank is the same allocation. Each
 * rank's request (ALLOC_REQ #k) goes to node 0. The first request for #k takes pages
 * from the collective area and announces the region to every node (REGION_ADD: each node
 * records the homes, block placement, and resets the pages); once every node has
 * acknowledged, node 0 answers all requests for #k, those waiting and those still to come.
 * So no rank can touch a region before every node knows where its pages live.
 *
 * dsm_cofree is answered at once; node 0 counts the frees of a region and, when every rank
 * has freed it, has every node revoke its ranks' access, zero the frames and reset the
 * pages (REGION_FREE) before the pages go back to the allocator.
 *
 * dsm_malloc takes pages from this node's arena: no message at all. dsm_free goes to the
 * block's home, which clears it on every node the same way before reusing it.
 *
 * Memory a program freed is there for its next allocation, although frees end later than
 * they are answered: an allocation that does not fit waits while a free under way may
 * make room (COLL_ROOM; a dsm_malloc in `room_wait`), and fails only when none can. For a
 * collective #k that is while a region is being cleared, or while some rank has freed a
 * region and not every rank has asked for #k yet: a rank's COFREE_REQ always reaches node
 * 0 before its next ALLOC_REQ (the same link; under a model that sends frees after its
 * release, the ALLOC_REQ waits in `held` behind them), so once every rank has asked, no
 * free that precedes #k is still to come. For an arena, while a free of this node's own
 * ranks is on its way here or a block of the arena is being cleared. A free by a rank of
 * another node races with an allocation here, as frees in one process's threads do.
 *
 * Under a model that fills them (dsmp.h fill_free: causal), a free's request leaves after
 * the model's release and carries its clock; REGION_FREE carries their merge (node 0 merges
 * a region's cofrees), and every node resets the range only once it has applied that much
 * (freeing, settled): an update sent before the free never lands on the next allocation.
 * The request leaves when the release is done; the model completes releases in order, so
 * it still goes ahead of what the rank does next (its finalize's FINI_ARRIVE).
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <dsm/dsm.h>

#include "dsm_log.h"
#include "dsmd.h"

_Static_assert((int)DSM_PLACE_BLOCK == (int)DSMW_PLACE_BLOCK && (int)DSM_PLACE_CYCLIC == (int)DSMW_PLACE_CYCLIC &&
                   (int)DSM_PLACE_NODE == (int)DSMW_PLACE_NODE &&
                   (int)DSM_PLACE_FIRST_TOUCH == (int)DSMW_PLACE_FIRST_TOUCH,
               "dsm.h and the wire number placements alike");

enum { COLL_NONE = 0, COLL_ROOM, COLL_ADDING, COLL_READY, COLL_FREEING, COLL_FREED };

struct coll_wait {
    struct coll_wait *next;
    int node, origin;
    uint64_t size;
    uint32_t place;
    uint64_t place_arg;
};

/* Node 0's record of collective allocation #k. */
struct coll {
    int      state;
    int      status;
    uint64_t size, first, n;
    uint32_t place;           /* home placement (enum dsmw_place) and its parameter */
    uint64_t place_arg;
    int      origin;          /* the rank whose request came first (and set size, place) */
    int      requests;        /* ALLOC_REQs for it so far */
    int      frees;
    uint64_t *vc;             /* merged clocks of the frees' requests (fill_free), or NULL */
    size_t   nvc;
    struct coll_wait *waiting;
};

/* A free's request waiting for the model's release (free_request). */
struct free_req {
    struct free_req *next;
    struct dsmd *d;
    int type, node, origin;
    uint64_t page;
};

/* An ALLOC_REQ held behind free requests still waiting for the model's release. */
struct held_req {
    struct held_req *next;
    uint64_t seq, size, place_arg;
    uint32_t place;
    int      origin;
};

/* A REGION_ADD / REGION_FREE this node sent, waiting for every node's acknowledgement. */
struct region_op {
    struct region_op *next;
    uint64_t first, n;
    int      is_free;
    int      acks;
    uint64_t k;              /* collective #k, or UINT64_MAX for an arena block */
};

struct dsmd_alloc {
    struct dsmd_ralloc coll_area;  /* node 0 only */
    struct coll *colls;
    size_t ncolls;
    struct dsmd_ralloc arena;      /* this node's dsm_malloc arena */
    struct region_op *ops;
    struct dsmd_chan *waiting;     /* local ranks waiting for ALLOC_REPLY */
    struct free_req *freeing;      /* frees' requests waiting for the model's release */
    struct held_req *held;         /* and the ALLOC_REQs behind them, oldest first */
    struct dsmd_chan *room_wait;   /* local ranks' dsm_malloc waiting for a free to end */
    uint64_t self_frees;           /* FREE_REQs of local ranks to this node not yet here */
    uint64_t colls_room;           /* node 0: collectives in COLL_ROOM */
    uint64_t colls_freeing;        /* node 0: collectives in COLL_FREEING */
    uint64_t colls_part_freed;     /* node 0: live collectives some ranks, not all, freed */
    struct dsmd_run *regions;      /* the live collective regions (every node) */
    size_t nregions, capregions;
};

static int region_find(struct dsmd *d, uint64_t first)
{
    for (size_t i = 0; i < d->alloc->nregions; i++)
        if (d->alloc->regions[i].first == first)
            return (int)i;
    return -1;
}

static dsm_status_t region_remember(struct dsmd *d, uint64_t first, uint64_t count)
{
    struct dsmd_alloc *a = d->alloc;

    if (a->nregions == a->capregions) {
        size_t n = a->capregions ? a->capregions * 2 : 16;
        struct dsmd_run *v = realloc(a->regions, n * sizeof(*v));

        if (v == NULL)
            return DSM_ENOMEM;
        a->regions = v;
        a->capregions = n;
    }
    a->regions[a->nregions++] = (struct dsmd_run){ first, count };
    return DSM_OK;
}

static void region_forget(struct dsmd *d, uint64_t first)
{
    int i = region_find(d, first);

    if (i >= 0)
        d->alloc->regions[i] = d->alloc->regions[--d->alloc->nregions];
}

uint64_t dsmd_alloc_end(struct dsmd *d, uint64_t page)
{
    struct dsmd_alloc *a = d->alloc;
    struct dsmd_run run;

    if (a == NULL)
        return page + 1;
    if (dsmd_space_arena_node(&d->space, page) == d->cfg.node)
        return dsmd_ralloc_holding(&a->arena, page, &run) == DSM_OK ? run.first + run.n : page + 1;
    for (size_t i = 0; i < a->nregions; i++)
        if (page - a->regions[i].first < a->regions[i].n)
            return a->regions[i].first + a->regions[i].n;
    return page + 1;
}

dsm_status_t dsmd_alloc_init(struct dsmd *d)
{
    struct dsmd_alloc *a = calloc(1, sizeof(*a));
    dsm_status_t st;

    if (a == NULL)
        return DSM_ENOMEM;
    d->alloc = a;
    st = dsmd_ralloc_init(&a->coll_area, 0, d->cfg.node == 0 ? d->space.coll_pages : 0);
    if (st == DSM_OK)
        st = dsmd_ralloc_init(&a->arena, dsmd_space_arena_first(&d->space, d->cfg.node), d->space.arena_pages);
    return st;
}

void dsmd_alloc_fini(struct dsmd *d)
{
    struct dsmd_alloc *a = d->alloc;

    if (a == NULL)
        return;
    for (size_t k = 0; k < a->ncolls; k++) {
        struct coll_wait *w, *wn;

        for (w = a->colls[k].waiting; w; w = wn) {
            wn = w->next;
            free(w);
        }
        free(a->colls[k].vc);
    }
    while (a->ops) {
        struct region_op *o = a->ops;

        a->ops = o->next;
        free(o);
    }
    while (a->freeing) { /* an abort left their releases unfinished */
        struct free_req *r = a->freeing;

        a->freeing = r->next;
        free(r);
    }
    while (a->held) {
        struct held_req *h = a->held;

        a->held = h->next;
        free(h);
    }
    free(a->colls);
    free(a->regions);
    dsmd_ralloc_fini(&a->coll_area);
    dsmd_ralloc_fini(&a->arena);
    free(a);
    d->alloc = NULL;
}

static uint64_t pages_for(struct dsmd *d, uint64_t bytes)
{
    return (bytes + d->page_size - 1) / d->page_size;
}

static uint64_t addr_of(struct dsmd *d, uint64_t page)
{
    return d->cfg.base + page * d->page_size;
}

/* Page number of a global address, or UINT64_MAX if it is not page-aligned in the space. */
static uint64_t page_of(struct dsmd *d, uint64_t addr)
{
    uint64_t off = addr - d->cfg.base;

    if (addr < d->cfg.base || off % d->page_size || off / d->page_size >= d->npages)
        return UINT64_MAX;
    return off / d->page_size;
}

/* Announce a region to every node; node acks come back to this node. */
static void region_announce(struct dsmd *d, int is_free, uint64_t first, uint64_t n, uint64_t k, int origin,
                            uint32_t place, uint64_t place_arg, const uint64_t *vc, size_t nvc)
{
    struct region_op *o = calloc(1, sizeof(*o));
    dsmw_msg_t m;

    if (o == NULL) {
        dsmd_abort(d, DSM_ENOMEM, "out of memory announcing a region");
        return;
    }
    o->first = first;
    o->n = n;
    o->is_free = is_free;
    o->acks = d->cfg.nnodes;
    o->k = k;
    o->next = d->alloc->ops;
    d->alloc->ops = o;
    dsmw_init(&m, is_free ? DSMW__TYPE__REGION_FREE : DSMW__TYPE__REGION_ADD);
    m.addr = first;
    m.count = n;
    m.seq = k;
    m.origin = (uint32_t)origin;
    m.place = place;
    m.place_arg = place_arg;
    m.vclock = (uint64_t *)vc;
    m.n_vclock = nvc;
    dsmd_broadcast(d, &m);
}

static void reply_alloc(struct dsmd *d, int node, int origin, uint64_t k, int status, uint64_t first)
{
    dsmw_msg_t m;

    dsmw_init(&m, DSMW__TYPE__ALLOC_REPLY);
    m.seq = k;
    m.origin = (uint32_t)origin;
    m.status = status;
    m.addr = first;
    dsmd_send(d, node, &m, DSMT_NO_PAGE);
}

static struct coll *coll_get(struct dsmd *d, uint64_t k)
{
    struct dsmd_alloc *a = d->alloc;

    if (k >= a->ncolls) {
        size_t n = k + 16;
        struct coll *v = realloc(a->colls, n * sizeof(*v));

        if (v == NULL)
            return NULL;
        memset(v + a->ncolls, 0, (n - a->ncolls) * sizeof(*v));
        a->colls = v;
        a->ncolls = n;
    }
    return &a->colls[k];
}

/* "block", "cyclic(4)", "node(2)" or "first_touch" into buf. */
static const char *place_name(char *buf, size_t n, uint32_t place, uint64_t arg)
{
    snprintf(buf, n, place == DSMW_PLACE_CYCLIC ? "cyclic(%llu)" : place == DSMW_PLACE_NODE ? "node(%llu)"
                     : place == DSMW_PLACE_FIRST_TOUCH ? "first_touch" : "block",
             (unsigned long long)arg);
    return buf;
}

/* Node 0: the answer for one request of collective #k whose state is settled. */
static void coll_answer(struct dsmd *d, struct coll *c, uint64_t k, int node, int origin, uint64_t size,
                        uint32_t place, uint64_t place_arg)
{
    if (size != c->size) { /* one rank with memory, another without: the job cannot go on right */
        dsmd_abort_rank(d, origin, "collective", DSM_EINVAL,
                        "rank %d called dsm_coalloc (collective call #%llu) for %llu bytes, rank %d for %llu: "
                        "a collective allocation takes the same size on every rank", origin,
                        (unsigned long long)k + 1, (unsigned long long)size, c->origin, (unsigned long long)c->size);
        return;
    }
    if (place != c->place || place_arg != c->place_arg) {
        char mine[48], theirs[48];

        dsmd_abort_rank(d, origin, "collective", DSM_EINVAL,
                        "rank %d called dsm_coalloc_ex (collective call #%llu) with placement %s, rank %d with %s: "
                        "a collective allocation takes the same placement on every rank", origin,
                        (unsigned long long)k + 1, place_name(mine, sizeof(mine), place, place_arg), c->origin,
                        place_name(theirs, sizeof(theirs), c->place, c->place_arg));
        return;
    }
    reply_alloc(d, node, origin, k, c->status, c->first);
}

/* Node 0: answer every request of #k that waits, now that its state is settled. */
static void coll_settle(struct dsmd *d, struct coll *c, uint64_t k)
{
    while (c->waiting) {
        struct coll_wait *w = c->waiting;

        c->waiting = w->next;
        coll_answer(d, c, k, w->node, w->origin, w->size, w->place, w->place_arg);
        free(w);
    }
}

/* Node 0: whether a free under way may still make room for collective c (see the top). */
static bool coll_room_coming(struct dsmd *d, const struct coll *c)
{
    return d->alloc->colls_freeing > 0 || (d->alloc->colls_part_freed > 0 && c->requests < d->cfg.nranks);
}

/* Node 0: find pages for collective #k (COLL_ROOM): announce it, wait on for room, or fail
 * it and answer its requests. */
static void coll_place(struct dsmd *d, uint64_t k)
{
    struct coll *c = &d->alloc->colls[k];

    c->status = c->size == 0 || c->n > d->space.coll_pages ? DSM_ENOSPACE
                : dsmd_ralloc_alloc(&d->alloc->coll_area, c->n, &c->first);
    if (c->status == DSM_OK) {
        d->alloc->colls_room--;
        c->state = COLL_ADDING;
        region_announce(d, 0, c->first, c->n, k, c->origin, c->place, c->place_arg, NULL, 0);
        return;
    }
    if (c->status == DSM_ENOSPACE && c->size != 0 && c->n <= d->space.coll_pages && coll_room_coming(d, c))
        return; /* a region's free under way may make room: asked again when it ends */
    DSM_WARN("collective allocation #%llu of %llu bytes does not fit: the largest free run of the "
             "collective area is %llu bytes (of %llu)", (unsigned long long)k, (unsigned long long)c->size,
             (unsigned long long)(dsmd_ralloc_largest(&d->alloc->coll_area) * d->page_size),
             (unsigned long long)(d->space.coll_pages * d->page_size));
    d->alloc->colls_room--;
    c->state = COLL_READY;
    coll_settle(d, c, k);
}

/* Node 0: a collective region's pages are free again; allocations waiting for room retry,
 * oldest first. */
static void coll_room_made(struct dsmd *d)
{
    for (uint64_t k = 0; d->alloc->colls_room > 0 && k < d->alloc->ncolls; k++)
        if (d->alloc->colls[k].state == COLL_ROOM)
            coll_place(d, k);
}

/* Node 0: ALLOC_REQ #k from `node` on behalf of rank `origin`. */
static dsm_status_t coll_request(struct dsmd *d, int node, const dsmw_msg_t *m)
{
    struct coll *c = coll_get(d, m->seq);
    struct coll_wait *w;

    if (c == NULL)
        return DSM_ENOMEM;
    if (c->state == COLL_NONE) {
        c->size = m->size;
        c->place = m->place;
        c->place_arg = m->place_arg;
        c->origin = (int)m->origin;
        c->n = pages_for(d, m->size);
        c->state = COLL_ROOM;
        d->alloc->colls_room++;
    }
    c->requests++;
    if (c->state != COLL_ROOM && c->state != COLL_ADDING) {
        coll_answer(d, c, m->seq, node, (int)m->origin, m->size, m->place, m->place_arg);
        return DSM_OK;
    }
    w = calloc(1, sizeof(*w));
    if (w == NULL)
        return DSM_ENOMEM;
    w->node = node;
    w->origin = (int)m->origin;
    w->size = m->size;
    w->place = m->place;
    w->place_arg = m->place_arg;
    w->next = c->waiting;
    c->waiting = w;
    if (c->state == COLL_ROOM)
        coll_place(d, m->seq); /* first try, or one request more may settle that none comes */
    return DSM_OK;
}

/* Whether a free under way may still make room in this node's arena (see the top). */
static bool arena_room_coming(struct dsmd *d)
{
    if (d->alloc->self_frees > 0)
        return true;
    for (const struct region_op *o = d->alloc->ops; o; o = o->next)
        if (o->is_free && o->k == UINT64_MAX)
            return true;
    return false;
}

/* dsm_malloc of n pages for the rank on channel c: 0 with *first, DSM_ENOSPACE (said) when
 * it does not fit and no free under way can make room, or 1 when one may: wait for it. */
static int arena_alloc(struct dsmd *d, struct dsmd_chan *c, uint64_t n, uint64_t *first)
{
    dsm_status_t st = n == 0 ? DSM_EINVAL : n > d->space.arena_pages ? DSM_ENOSPACE
                      : dsmd_ralloc_alloc(&d->alloc->arena, n, first);

    if (st == DSM_ENOSPACE && n <= d->space.arena_pages && arena_room_coming(d))
        return 1;
    if (st == DSM_ENOSPACE)
        DSM_WARN("dsm_malloc(%llu) by rank %d: this node's arena has %llu bytes free, at most %llu in one piece",
                 (unsigned long long)(n * d->page_size), dsmd_rank_of(d, c)->rank,
                 (unsigned long long)(d->alloc->arena.total_free * d->page_size),
                 (unsigned long long)(dsmd_ralloc_largest(&d->alloc->arena) * d->page_size));
    return st;
}

/* A free of this node's arena ended, or one on its way turned out to free nothing: the
 * dsm_mallocs waiting for room try again, oldest first. */
static void arena_room_made(struct dsmd *d)
{
    struct dsmd_chan **pp = &d->alloc->room_wait;

    while (*pp) {
        struct dsmd_chan *c = *pp;
        uint64_t first = 0;
        int st = arena_alloc(d, c, c->pending_seq, &first);

        if (st == 1) {
            pp = &c->pnext;
            continue;
        }
        *pp = c->pnext;
        c->pnext = NULL;
        c->pending_op = 0;
        dsmd_chan_reply(d, c, st, st == DSM_OK ? addr_of(d, first) : 0);
    }
}

/* The sender of a region announcement: every node has acknowledged. */
static void region_done(struct dsmd *d, struct region_op *o)
{
    struct coll *c;
    uint64_t n;

    if (o->k == UINT64_MAX) {
        /* every node's exchanges on the block are over (dsmp.h settled): a diff that crossed
         * the free may have landed after this node zeroed it; zero it again before reuse */
        dsmd_pages_zero(d, o->first, o->n);
        if (dsmd_ralloc_free(&d->alloc->arena, o->first, &n) != DSM_OK)
            DSM_ERR("freed arena block at page %llu was not allocated", (unsigned long long)o->first);
        arena_room_made(d);
        return;
    }
    c = &d->alloc->colls[o->k];
    if (o->is_free) {
        c->state = COLL_FREED;
        d->alloc->colls_freeing--;
        if (dsmd_ralloc_free(&d->alloc->coll_area, o->first, &n) != DSM_OK)
            DSM_ERR("freed region at page %llu was not allocated", (unsigned long long)o->first);
        coll_room_made(d);
        return;
    }
    c->state = COLL_READY;
    coll_settle(d, c, o->k);
}

static dsm_status_t region_ack(struct dsmd *d, const dsmw_msg_t *m)
{
    for (struct region_op **pp = &d->alloc->ops; *pp; pp = &(*pp)->next) {
        struct region_op *o = *pp;

        if (o->first != m->addr || o->is_free != (m->access != 0))
            continue;
        if (--o->acks == 0) {
            *pp = o->next;
            region_done(d, o);
            free(o);
        }
        return DSM_OK;
    }
    return DSM_EPROTO;
}

struct free_ctx {
    int      src;
    uint64_t first, n, k;
    int      origin;
};

static void send_region_ack(struct dsmd *d, int dst, uint64_t first, int is_free, int origin)
{
    dsmw_msg_t m;

    dsmw_init(&m, DSMW__TYPE__REGION_ACK);
    m.addr = first;
    m.access = (uint32_t)is_free;
    m.origin = (uint32_t)origin;
    dsmd_send(d, dst, &m, DSMT_NO_PAGE);
}

static void region_cleared(struct dsmd *d, void *arg)
{
    struct free_ctx *f = arg;

    dsmd_space_region_free(&d->space, f->first, f->n);
    dsmd_ft_region_reset(d, f->first, f->n);
    d->pops->reset(d->p, f->first, f->n);
    dsmd_atomics_region_reset(d, f->first, f->n);
    send_region_ack(d, f->src, f->first, 1, f->origin);
    free(f);
}

/* Every node: a region is born or dies. */
static dsm_status_t region_message(struct dsmd *d, int src, const dsmw_msg_t *m)
{
    struct free_ctx *f;

    if (m->type == DSMW__TYPE__REGION_ADD) {
        if (m->addr + m->count > d->space.coll_pages)
            return DSM_EPROTO;
        /* node 0 hands out pages no region holds, and freed pages only once every node has
         * acknowledged their clearing: a page this node still knows in a region (live, or
         * its free not over) is no page to add (a direct read of it may stand) */
        for (uint64_t p = m->addr; p < m->addr + m->count; p++)
            if (dsmd_space_home(&d->space, p) != DSMD_NO_HOME || d->pages[p].clearing)
                return DSM_EPROTO;
        if (region_remember(d, m->addr, m->count) != DSM_OK)
            return DSM_ENOMEM;
        dsmd_space_region_add(&d->space, m->addr, m->count, (int)m->place, m->place_arg);
        d->pops->reset(d->p, m->addr, m->count);
        for (uint64_t p = m->addr; d->hits_door != NULL && p < m->addr + m->count; p++)
            dsmd_hits_sync(d, p); /* the direct path's doors open on pages homed elsewhere */
        send_region_ack(d, src, m->addr, 0, (int)m->origin);
        return DSM_OK;
    }
    f = calloc(1, sizeof(*f));
    if (f == NULL)
        return DSM_ENOMEM;
    region_forget(d, m->addr);
    f->src = src;
    f->first = m->addr;
    f->n = m->count;
    f->origin = (int)m->origin;
    if (d->pops->sync != NULL && d->pops->sync->freeing != NULL)
        d->pops->sync->freeing(d->p, m->addr, m->count, m); /* before the range can settle */
    dsmd_pages_clear_range(d, m->addr, m->count, region_cleared, f);
    return DSM_OK;
}

/* Node 0: one rank freed collective region starting at page `first`. */
static dsm_status_t coll_free(struct dsmd *d, const dsmw_msg_t *m)
{
    struct dsmd_alloc *a = d->alloc;

    for (size_t k = 0; k < a->ncolls; k++) {
        struct coll *c = &a->colls[k];

        if (c->state != COLL_READY || c->status != DSM_OK || c->first != m->addr)
            continue;
        if (m->n_vclock != 0 && m->n_vclock != (size_t)d->cfg.nnodes)
            return DSM_EPROTO;
        if (m->n_vclock > 0) { /* merge the request's clock (fill_free) */
            if (c->vc == NULL) {
                if ((c->vc = calloc(m->n_vclock, sizeof(*c->vc))) == NULL)
                    return DSM_ENOMEM;
                c->nvc = m->n_vclock;
            }
            if (m->n_vclock != c->nvc)
                return DSM_EPROTO;
            for (size_t i = 0; i < m->n_vclock; i++)
                if (m->vclock[i] > c->vc[i])
                    c->vc[i] = m->vclock[i];
        }
        if (++c->frees == 1 && d->cfg.nranks > 1)
            a->colls_part_freed++;
        if (c->frees == d->cfg.nranks) {
            if (d->cfg.nranks > 1)
                a->colls_part_freed--;
            a->colls_freeing++;
            c->state = COLL_FREEING;
            region_announce(d, 1, c->first, c->n, k, (int)m->origin, DSMW_PLACE_BLOCK, 0, c->vc, c->nvc);
            free(c->vc);
            c->vc = NULL;
            c->nvc = 0;
        }
        return DSM_OK;
    }
    DSM_WARN("dsm_cofree by rank %u of address 0x%llx, which is not a live collective allocation", m->origin,
             (unsigned long long)addr_of(d, m->addr));
    return DSM_OK;
}

/* Home of an arena block: free it everywhere, then reuse it. */
static dsm_status_t arena_free_block(struct dsmd *d, const dsmw_msg_t *m)
{
    uint64_t n;

    for (struct region_op *o = d->alloc->ops; o; o = o->next) {
        if (o->first == m->addr) {
            DSM_WARN("dsm_free by rank %u of 0x%llx, which is already being freed", m->origin,
                     (unsigned long long)addr_of(d, m->addr));
            return DSM_OK;
        }
    }
    if (m->n_vclock != 0 && m->n_vclock != (size_t)d->cfg.nnodes)
        return DSM_EPROTO;
    if (dsmd_ralloc_find(&d->alloc->arena, m->addr, &n) != DSM_OK) {
        DSM_WARN("dsm_free by rank %u of 0x%llx, which was not returned by dsm_malloc", m->origin,
                 (unsigned long long)addr_of(d, m->addr));
        return DSM_OK;
    }
    region_announce(d, 1, m->addr, n, UINT64_MAX, (int)m->origin, DSMW_PLACE_BLOCK, 0, m->vclock, m->n_vclock);
    return DSM_OK;
}

/* Home of an arena block: FREE_REQ from a rank of node m->node. */
static dsm_status_t arena_free(struct dsmd *d, const dsmw_msg_t *m)
{
    dsm_status_t st;

    if (m->node == (uint32_t)d->cfg.node && d->alloc->self_frees > 0)
        d->alloc->self_frees--;
    st = arena_free_block(d, m);
    if (d->alloc->room_wait != NULL)
        arena_room_made(d); /* this free's own clearing now counts, or it freed nothing */
    return st;
}

static void alloc_reply_arrived(struct dsmd *d, const dsmw_msg_t *m)
{
    for (struct dsmd_chan **pp = &d->alloc->waiting; *pp; pp = &(*pp)->pnext) {
        struct dsmd_chan *c = *pp;

        if (c->pending_seq != m->seq || d->ranks[c->lrank].rank != (int)m->origin)
            continue;
        *pp = c->pnext;
        c->pnext = NULL;
        c->pending_op = 0;
        dsmd_chan_reply(d, c, m->status, m->status == DSM_OK ? addr_of(d, m->addr) : 0);
        return;
    }
    DSM_WARN("allocation reply for rank %u that nobody waits for", m->origin);
}

dsm_status_t dsmd_alloc_message(struct dsmd *d, int src, const dsmw_msg_t *m)
{
    switch (m->type) {
    case DSMW__TYPE__ALLOC_REQ:
        return d->cfg.node == 0 ? coll_request(d, src, m) : DSM_EPROTO;
    case DSMW__TYPE__ALLOC_REPLY:
        alloc_reply_arrived(d, m);
        return DSM_OK;
    case DSMW__TYPE__REGION_ADD:
    case DSMW__TYPE__REGION_FREE:
        return region_message(d, src, m);
    case DSMW__TYPE__REGION_ACK:
        return region_ack(d, m);
    case DSMW__TYPE__COFREE_REQ:
        return d->cfg.node == 0 ? coll_free(d, m) : DSM_EPROTO;
    case DSMW__TYPE__FREE_REQ:
        return dsmd_space_arena_node(&d->space, m->addr) == d->cfg.node ? arena_free(d, m) : DSM_EPROTO;
    default:
        return DSM_EPROTO;
    }
}

/* The request itself, with the model's clock where it fills one (fill_free). */
static void free_req_out(struct dsmd *d, int type, int node, uint64_t page, int origin)
{
    const struct dsmp_sync_ops *s = d->pops->sync;
    dsmw_msg_t m;

    dsmw_init(&m, type);
    m.addr = page;
    m.origin = (uint32_t)origin;
    m.node = (uint32_t)d->cfg.node;
    if (s != NULL && s->fill_free != NULL)
        s->fill_free(d->p, &m);
    dsmd_send(d, node, &m, DSMT_NO_PAGE);
}

/* Send a rank's ALLOC_REQ to node 0. */
static void alloc_req_send(struct dsmd *d, const struct held_req *h)
{
    dsmw_msg_t req;

    dsmw_init(&req, DSMW__TYPE__ALLOC_REQ);
    req.seq = h->seq;
    req.size = h->size;
    req.origin = (uint32_t)h->origin;
    req.node = (uint32_t)d->cfg.node;
    req.place = h->place;
    req.place_arg = h->place_arg;
    dsmd_send(d, 0, &req, DSMT_NO_PAGE);
}

/* Send the ALLOC_REQs held behind free requests once none of those waits any more. */
static void alloc_held_send(struct dsmd *d)
{
    while (d->alloc->freeing == NULL && d->alloc->held != NULL) {
        struct held_req *h = d->alloc->held;

        d->alloc->held = h->next;
        alloc_req_send(d, h);
        free(h);
    }
}

/* The model's release before a free's request is done. */
static void free_req_send(dsmp_t *p, void *arg)
{
    struct free_req *r = arg;

    (void)p;
    for (struct free_req **pp = &r->d->alloc->freeing; *pp; pp = &(*pp)->next)
        if (*pp == r) {
            *pp = r->next;
            break;
        }
    free_req_out(r->d, r->type, r->node, r->page, r->origin);
    alloc_held_send(r->d);
    free(r);
}

/* Send a free's request (COFREE_REQ, FREE_REQ) to node; under a model that fills one, after
 * its release (see the top). The rank already has its answer. */
static void free_request(struct dsmd *d, int type, int node, uint64_t page, int origin)
{
    const struct dsmp_sync_ops *s = d->pops->sync;
    struct free_req *r;

    if (s == NULL || s->fill_free == NULL) {
        free_req_out(d, type, node, page, origin);
        return;
    }
    r = malloc(sizeof(*r));
    if (r == NULL) {
        dsmd_abort(d, DSM_ENOMEM, "out of memory freeing page %llu", (unsigned long long)page);
        return;
    }
    *r = (struct free_req){ .d = d, .type = type, .node = node, .origin = origin, .page = page,
                            .next = d->alloc->freeing };
    d->alloc->freeing = r;
    if (s->release != NULL)
        s->release(d->p, origin, free_req_send, r);
    else
        free_req_send(d->p, r);
}

void dsmd_alloc_request(struct dsmd *d, struct dsmd_chan *c, const struct dsmc_msg *m)
{
    struct dsmd_rank *rk = dsmd_rank_of(d, c);
    uint64_t page, first, n;

    switch (m->op) {
    case DSMC_COALLOC: {
        struct held_req req = { .size = m->a, .place = (uint32_t)m->b, .place_arg = m->c, .origin = rk->rank };

        /* libdsm checked the placement (b, c); a rank that did not is refused here */
        if (!dsmw_place_ok((uint32_t)m->b, m->c, (uint32_t)d->cfg.nnodes)) {
            DSM_WARN("dsm_coalloc by rank %d: unknown placement %llu/%llu", rk->rank, (unsigned long long)m->b,
                     (unsigned long long)m->c);
            dsmd_chan_reply(d, c, DSM_EINVAL, 0);
            return;
        }
        c->pending_op = DSMC_COALLOC;
        c->pending_seq = rk->coalloc_seq++;
        c->pnext = d->alloc->waiting;
        d->alloc->waiting = c;
        req.seq = c->pending_seq;
        if (d->alloc->freeing != NULL) { /* behind the frees (see the top): free_req_send */
            struct held_req *h = malloc(sizeof(*h)), **pp = &d->alloc->held;

            if (h == NULL) {
                dsmd_abort(d, DSM_ENOMEM, "out of memory holding an allocation request");
                return;
            }
            *h = req;
            while (*pp)
                pp = &(*pp)->next;
            *pp = h;
            return;
        }
        alloc_req_send(d, &req);
        return;
    }
    case DSMC_COFREE:
        page = page_of(d, m->a);
        if (page == UINT64_MAX || region_find(d, page) < 0) {
            DSM_WARN("dsm_cofree(0x%llx) by rank %d: not a collective allocation", (unsigned long long)m->a, rk->rank);
            dsmd_chan_reply(d, c, DSM_EINVAL, 0);
            return;
        }
        free_request(d, DSMW__TYPE__COFREE_REQ, 0, page, rk->rank);
        dsmd_chan_reply(d, c, DSM_OK, 0);
        return;
    case DSMC_MALLOC: {
        int r;

        n = pages_for(d, m->a);
        r = arena_alloc(d, c, n, &first);
        if (r == 1) { /* a free under way may make room: arena_room_made answers */
            struct dsmd_chan **pp = &d->alloc->room_wait;

            while (*pp)
                pp = &(*pp)->pnext;
            c->pending_op = DSMC_MALLOC;
            c->pending_seq = n;
            c->pnext = NULL;
            *pp = c;
            return;
        }
        dsmd_chan_reply(d, c, r, r == DSM_OK ? addr_of(d, first) : 0);
        return;
    }
    case DSMC_FREE:
        page = page_of(d, m->a);
        if (page == UINT64_MAX || dsmd_space_arena_node(&d->space, page) == DSMD_NO_HOME ||
            (dsmd_space_arena_node(&d->space, page) == d->cfg.node &&
             dsmd_ralloc_find(&d->alloc->arena, page, &n) != DSM_OK)) {
            DSM_WARN("dsm_free(0x%llx) by rank %d: not an address returned by dsm_malloc", (unsigned long long)m->a,
                     rk->rank);
            dsmd_chan_reply(d, c, DSM_EINVAL, 0);
            return;
        }
        if (dsmd_space_arena_node(&d->space, page) == d->cfg.node)
            d->alloc->self_frees++; /* its room counts from now (arena_room_coming) */
        free_request(d, DSMW__TYPE__FREE_REQ, dsmd_space_arena_node(&d->space, page), page, rk->rank);
        dsmd_chan_reply(d, c, DSM_OK, 0);
        return;
    }
}

void dsmd_alloc_chan_gone(struct dsmd *d, struct dsmd_chan *c)
{
    for (struct dsmd_chan **pp = &d->alloc->waiting; *pp; pp = &(*pp)->pnext)
        if (*pp == c) {
            *pp = c->pnext;
            return;
        }
    for (struct dsmd_chan **pp = &d->alloc->room_wait; *pp; pp = &(*pp)->pnext)
        if (*pp == c) {
            *pp = c->pnext;
            return;
        }
}

/*
 * cache.c - the bounded page cache (DSM_CACHE_SIZE, dsmrun --cache-size): a node holds at
 * most `limit` frames of pages whose home is elsewhere. Home pages are never counted nor
 * evicted (they are the node's share of the space).
 *
 * Accounting. A page is cached from the moment the daemon hands a fault on it to the
 * protocol (its frame is about to be written) or the protocol opens it without one (a page
 * read ahead), until its eviction punches the frame or a region free clears it. Read-ahead
 * is budgeted: a fault may ask for as many pages after it as frames are free, and those stay
 * reserved until the fault's grant. So cached + reserved <= limit whenever a fault starts,
 * and cached <= limit always.
 *
 * Eviction (CLOCK). A fault that needs a frame when none is free waits (its page joins the
 * frame queue, FIFO) and the hand looks for victims among the cached pages: every fault on a
 * page and every opening sets its reference bit (the daemon sees faults, not loads and
 * stores), an invalidation clears it, and the hand clears it as it passes; it evicts the
 * first page whose bit is clear and that nothing pins: a fault outstanding, a revocation
 * queued, waiters, a range being cleared, or the protocol busy with it (its evict hook
 * declines); pages with a grant a rank has not applied yet only when no other page will do.
 * The protocol writes the page back as its model requires and takes node access to NONE;
 * then the frame is punched (fallocate PUNCH_HOLE; left as it is where the transport pins
 * the frames: the registration keeps them resident anyway, and a fetch overwrites the whole
 * page) and the frame queue is looked at again before the loop sleeps (dsmd_cache_pump).
 *
 * A page's states (flags in dsmd_page.cache):
 *
 *                 fault admitted, or opened
 *   not cached ------------------------------> CACHED --evict()--> CACHED|EVICTING
 *        |   ^                                    |                       |
 *        |   +------ region cleared --------------+---- done: punched ----+
 *        +-- fault, no frame free --> FRAMEWAIT --(frame freed: pump)--> fault admitted
 *
 * Transitions and the functions that perform them:
 *   fault reaching the protocol      -> dsmd_cache_admit (page_kick)
 *   protocol raises access           -> dsmd_cache_opened (svc_grant, svc_set_access)
 *   the fault's grant                -> dsmd_cache_granted (reservation back)
 *   node access lowered to NONE      -> dsmd_cache_invalidated
 *   before the loop sleeps           -> dsmd_cache_pump -> clock_victim -> evict_start
 *   the protocol's done              -> evict_done (punch)
 *   region freed                     -> dsmd_cache_cleared
 */
#include <stdlib.h>

#include "ahead.h"
#include "dsm_log.h"
#include "dsmd.h"

#define NO_PAGE UINT64_MAX

/* An eviction handed to the protocol; `dead` once its page's region was cleared. */
struct dsmd_evict {
    struct dsmd_evict *next;
    struct dsmd *d;
    uint64_t page;
    int dead;
};

struct dsmd_cache {
    uint64_t limit;           /* frames */
    uint64_t cached, reserved, evicting, peak;
    uint64_t *ring;           /* cached pages in their CLOCK slots (NO_PAGE: free slot) */
    uint64_t cap, hand;
    uint32_t *slot;           /* per page: its ring slot + 1, 0 when not cached */
    uint64_t *free_slots;
    uint64_t nfree;
    uint64_t *fq;             /* the frame queue: pages whose fault waits for a frame */
    uint64_t fq_head, fq_len;
    uint64_t pumping;         /* the queued page being admitted now (NO_PAGE: none) */
    struct dsmd_evict *inflight;
};

/* The smallest cache a node may have: 4 frames per thread that can fault at once (one x86
 * instruction can touch up to 4 pages: a straddling load and a straddling store). */
uint64_t dsmd_cache_min_pages(int faulting)
{
    return 4 * (uint64_t)(faulting > 0 ? faulting : 1);
}

dsm_status_t dsmd_cache_init(struct dsmd *d)
{
    struct dsmd_cache *c;
    uint64_t limit = d->cfg.cache_size / d->page_size;

    if (d->cfg.cache_size == 0)
        return DSM_OK;
    if (d->pops->evict == NULL) {
        DSM_ERR("a bounded cache (DSM_CACHE_SIZE) needs a model that can evict pages; %s cannot", d->pops->name);
        return DSM_ECONFIG;
    }
    if (limit < dsmd_cache_min_pages(d->cfg.local_ranks)) {
        DSM_ERR("cache of %llu bytes (%llu pages) is too small for %d rank%s on node %d: the minimum is %llu "
                "bytes (4 pages per faulting thread)", (unsigned long long)d->cfg.cache_size,
                (unsigned long long)limit, d->cfg.local_ranks, d->cfg.local_ranks == 1 ? "" : "s", d->cfg.node,
                (unsigned long long)(dsmd_cache_min_pages(d->cfg.local_ranks) * d->page_size));
        return DSM_ECONFIG;
    }
    if (limit > d->npages)
        limit = d->npages;
    c = calloc(1, sizeof(*c));
    if (c == NULL)
        return DSM_ENOMEM;
    c->limit = limit;
    c->pumping = NO_PAGE;
    /* a few slots beyond the limit: pages opened by a fault whose region was freed before
     * its grant lose their reservation (dsmd_cache_cleared) yet may still be opened */
    c->cap = limit + 2 * DSMP_AHEAD_MAX;
    c->ring = malloc(c->cap * sizeof(*c->ring));
    c->free_slots = malloc(c->cap * sizeof(*c->free_slots));
    c->slot = calloc(d->npages, sizeof(*c->slot));
    c->fq = malloc(d->npages * sizeof(*c->fq));
    if (c->ring == NULL || c->free_slots == NULL || c->slot == NULL || c->fq == NULL) {
        d->cache = c;
        dsmd_cache_fini(d);
        return DSM_ENOMEM;
    }
    for (uint64_t i = 0; i < c->cap; i++) {
        c->ring[i] = NO_PAGE;
        c->free_slots[c->nfree++] = c->cap - 1 - i;
    }
    d->cache = c;
    DSM_INFO("node %d: page cache of %llu pages (%llu bytes)", d->cfg.node, (unsigned long long)limit,
             (unsigned long long)(limit * d->page_size));
    return DSM_OK;
}

dsm_status_t dsmd_cache_check_threads(struct dsmd *d)
{
    int faulting = 0;

    if (d->cache == NULL)
        return DSM_OK;
    for (int i = 0; i < d->nchans; i++)
        if (d->chans[i] != NULL && (d->chans[i]->kind == CHAN_MAIN || d->chans[i]->kind == CHAN_THREAD))
            faulting++;
    if (dsmd_cache_min_pages(faulting) <= d->cache->limit)
        return DSM_OK;
    dsmd_abort(d, DSM_ECONFIG, "node %d: %d threads can fault at once, too many for its cache of %llu pages: "
               "the minimum is %llu bytes (4 pages per faulting thread, counting those connected so far); "
               "raise --cache-size", d->cfg.node,
               faulting, (unsigned long long)d->cache->limit,
               (unsigned long long)(dsmd_cache_min_pages(faulting) * d->page_size));
    return DSM_ECONFIG;
}

void dsmd_cache_fini(struct dsmd *d)
{
    struct dsmd_cache *c = d->cache;

    if (c == NULL)
        return;
    while (c->inflight) {
        struct dsmd_evict *e = c->inflight;

        c->inflight = e->next;
        free(e);
    }
    free(c->ring);
    free(c->free_slots);
    free(c->slot);
    free(c->fq);
    free(c);
    d->cache = NULL;
}

static int homed_here(struct dsmd *d, uint64_t page)
{
    return dsmd_space_home(&d->space, page) == d->cfg.node;
}

/* page takes a ring slot. 0, or DSM_ENOMEM if none is left (a bug: see cap). */
static dsm_status_t enter(struct dsmd *d, uint64_t page)
{
    struct dsmd_cache *c = d->cache;
    uint64_t s;

    if (c->nfree == 0) {
        dsmd_abort(d, DSM_ENOMEM, "node %d: page cache accounting overflow at page %llu (%llu cached, limit %llu)",
                   d->cfg.node, (unsigned long long)page, (unsigned long long)c->cached,
                   (unsigned long long)c->limit);
        return DSM_ENOMEM;
    }
    s = c->free_slots[--c->nfree];
    c->ring[s] = page;
    c->slot[page] = (uint32_t)(s + 1);
    d->pages[page].cache |= DSMD_CACHED | DSMD_CACHE_REF;
    if (++c->cached > c->peak)
        c->peak = c->cached;
    return DSM_OK;
}

/* page leaves the cache (evicted or cleared). */
static void leave(struct dsmd *d, uint64_t page)
{
    struct dsmd_cache *c = d->cache;
    uint64_t s = c->slot[page] - 1;

    c->ring[s] = NO_PAGE;
    c->free_slots[c->nfree++] = s;
    c->slot[page] = 0;
    c->cached--;
    d->pages[page].cache &= (uint8_t)~(DSMD_CACHED | DSMD_CACHE_REF | DSMD_EVICTING);
}

int dsmd_cache_admit(struct dsmd *d, uint64_t page, uint32_t *ahead)
{
    struct dsmd_cache *c = d->cache;
    struct dsmd_page *pg = &d->pages[page];
    uint64_t need, used, spare;

    if (c == NULL || homed_here(d, page))
        return 1;
    need = (pg->cache & DSMD_CACHED) ? 0 : 1;
    used = c->cached + c->reserved;
    /* first come, first served: a new page waits behind the queued ones */
    if (need && (used + need > c->limit || (c->fq_len > 0 && page != c->pumping))) {
        if (!(pg->cache & DSMD_FRAMEWAIT)) {
            pg->cache |= DSMD_FRAMEWAIT;
            c->fq[(c->fq_head + c->fq_len++) % d->npages] = page;
        }
        return 0;
    }
    spare = used + need < c->limit && c->fq_len == 0 ? c->limit - used - need : 0; /* queued faults first */
    if (*ahead - 1 > spare)
        *ahead = (uint32_t)(1 + spare);
    if (need && enter(d, page) != DSM_OK)
        return 0;
    pg->cache |= DSMD_CACHE_REF;
    pg->reserve = (uint8_t)(*ahead - 1);
    c->reserved += pg->reserve;
    return 1;
}

void dsmd_cache_opened(struct dsmd *d, uint64_t page)
{
    struct dsmd_page *pg = &d->pages[page];

    if (d->cache == NULL || homed_here(d, page))
        return;
    if (!(pg->cache & DSMD_CACHED))
        (void)enter(d, page);
    pg->cache |= DSMD_CACHE_REF;
}

void dsmd_cache_granted(struct dsmd *d, uint64_t page)
{
    struct dsmd_page *pg = &d->pages[page];

    if (d->cache == NULL)
        return;
    d->cache->reserved -= pg->reserve;
    pg->reserve = 0;
}

void dsmd_cache_invalidated(struct dsmd *d, uint64_t page)
{
    if (d->cache != NULL)
        d->pages[page].cache &= (uint8_t)~DSMD_CACHE_REF;
}

void dsmd_cache_touched(struct dsmd *d, uint64_t page)
{
    if (d->cache != NULL)
        d->pages[page].cache |= DSMD_CACHE_REF;
}

void dsmd_cache_cleared(struct dsmd *d, uint64_t first, uint64_t n)
{
    struct dsmd_cache *c = d->cache;

    if (c == NULL)
        return;
    for (struct dsmd_evict *e = c->inflight; e; e = e->next)
        if (!e->dead && e->page >= first && e->page < first + n) {
            e->dead = 1; /* the protocol's reset drops it; a late done is ignored */
            c->evicting--;
        }
    for (uint64_t p = first; p < first + n; p++) {
        struct dsmd_page *pg = &d->pages[p];

        if (pg->cache & DSMD_CACHED)
            leave(d, p);
        c->reserved -= pg->reserve;
        pg->reserve = 0;
    }
}

/* Every rank of the node is at NONE for page: nothing can read the punched frame. */
static int ranks_out(struct dsmd *d, uint64_t page)
{
    for (int i = 0; i < d->cfg.local_ranks; i++)
        if (dsmd_prot_mapped(&d->ranks[i], page))
            return 0;
    return 1;
}

/* The protocol gave the page up: punch its frame, let its waiters and the queue go on. */
static void evict_done(dsmp_t *p, void *arg)
{
    struct dsmd_evict *e = arg, **pp;
    struct dsmd *d = e->d;
    struct dsmd_cache *c = d->cache;
    uint64_t page = e->page;
    int dead = e->dead;

    (void)p;
    for (pp = &c->inflight; *pp != e; pp = &(*pp)->next)
        ;
    *pp = e->next;
    free(e);
    if (dead || d->aborting)
        return;
    if (d->pages[page].access != DSM_ACCESS_NONE || !ranks_out(d, page)) {
        dsmd_abort(d, DSM_EPROTO, "node %d: the %s protocol evicted page %llu but left it accessible (bug)",
                   d->cfg.node, d->pops->name, (unsigned long long)page);
        return;
    }
    /* not punched (pinned, failed): the page stays resident, which only costs memory; the
     * protocol refetches it whole */
    (void)dsmd_pages_punch(d, page, 1);
    c->evicting--;
    leave(d, page);
    dsmd_counters_for(d, d->cfg.first_rank)->pages_evicted++;
    dsmd_hits_sync(d, page); /* NONE now; kept in step all the same */
    if (d->pages[page].waiters != NULL)
        dsmd_pages_kick(d, page);
}

/* Hand page to the protocol's evict hook. 1 if it started. */
static int evict_start(struct dsmd *d, uint64_t page)
{
    struct dsmd_cache *c = d->cache;
    struct dsmd_evict *e = calloc(1, sizeof(*e));

    if (e == NULL) {
        dsmd_abort(d, DSM_ENOMEM, "out of memory evicting page %llu", (unsigned long long)page);
        return 0;
    }
    e->d = d;
    e->page = page;
    e->next = c->inflight;
    c->inflight = e;
    c->evicting++;
    d->pages[page].cache |= DSMD_EVICTING;
    dsmd_hits_close(d, page);
    if (d->pops->evict(d->p, page, evict_done, e))
        return 1;
    c->evicting--;
    d->pages[page].cache &= (uint8_t)~DSMD_EVICTING;
    dsmd_hits_sync(d, page);
    c->inflight = e->next; /* not started: still at the head */
    free(e);
    return 0;
}

/* Nothing pins the page: it may be evicted now. A grant some rank has not applied yet (the
 * access it faulted for has not run) pins it too, unless `unapplied` allows it: a thread that
 * stops making requests after its grant (spinning, blocked elsewhere) would pin it for ever,
 * and taking the page is safe (its PROTECT waits for the grant, dsm_chan.h), only wasteful. */
static int evictable(struct dsmd *d, uint64_t page, int unapplied)
{
    const struct dsmd_page *pg = &d->pages[page];

    if ((pg->cache & DSMD_EVICTING) || pg->pending || pg->revq != NULL || pg->waiters != NULL || pg->clearing)
        return 0;
    for (int i = 0; i < d->cfg.local_ranks && !unapplied; i++)
        if (d->ranks[i].unconfirmed[page] > 0)
            return 0;
    return 1;
}

/* One CLOCK sweep (at most two turns of the hand): evict the first unpinned page whose
 * reference bit is clear. 1 if an eviction started. */
static int clock_sweep(struct dsmd *d, int unapplied)
{
    struct dsmd_cache *c = d->cache;

    for (uint64_t step = 0; step < 2 * c->cap; step++) {
        uint64_t page = c->ring[c->hand];

        c->hand = (c->hand + 1) % c->cap;
        if (page == NO_PAGE || !evictable(d, page, unapplied))
            continue;
        if (d->pages[page].cache & DSMD_CACHE_REF) {
            d->pages[page].cache &= (uint8_t)~DSMD_CACHE_REF;
            continue;
        }
        if (evict_start(d, page))
            return 1;
    }
    return 0;
}

/* A victim, pages whose grants are applied first. 1 if an eviction started. */
static int clock_victim(struct dsmd *d)
{
    return clock_sweep(d, 0) || clock_sweep(d, 1);
}

void dsmd_cache_pump(struct dsmd *d)
{
    struct dsmd_cache *c = d->cache;

    if (c == NULL)
        return;
    while (!d->aborting) {
        /* queued faults first, oldest first, while frames are free (an admitted one takes one) */
        while (c->fq_len > 0 && c->cached + c->reserved < c->limit) {
            uint64_t page = c->fq[c->fq_head];

            c->fq_head = (c->fq_head + 1) % d->npages;
            c->fq_len--;
            d->pages[page].cache &= (uint8_t)~DSMD_FRAMEWAIT;
            c->pumping = page;
            dsmd_pages_kick(d, page);
            c->pumping = NO_PAGE;
        }
        /* then as many evictions under way as faults waiting (one done at once frees its
         * frame now: back to the queue) */
        if (c->fq_len == 0 || c->evicting >= c->fq_len || !clock_victim(d))
            break; /* all pinned: looked at again when the loop next wakes */
    }
}

uint64_t dsmd_cache_peak(const struct dsmd *d)
{
    return d->cache != NULL ? d->cache->peak : 0;
}

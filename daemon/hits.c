/*
 * hits.c - the daemon's side of node-local hits (dsm_hits.h): the shared table in the frame
 * memfd, the open[] byte of each page, the ranks' prot rows, and the hits' counts.
 *
 * open[p] must never promise more than page_kick would grant at once; it may promise less
 * (then the fault just takes the daemon's path). So it is lowered (dsmd_hits_close) before
 * every change that ends an immediate grant and recomputed (dsmd_hits_sync) where one may
 * begin again:
 *   svc_revoke          close, before the revocation reads the ranks' prot
 *   range_reset         close (the range is being cleared)
 *   evict_start         close (DSMD_EVICTING)
 *   svc_set_access      sync (the access moves either way)
 *   page_kick           sync (a revocation, an eviction or a clearing ended; a grant)
 *   range_finish        sync (the home's reset, or the region freed: NO_HOME)
 * A page is never opened where the daemon must see every fault: pages homed elsewhere under
 * a bounded cache (its LRU), write access under --false-sharing (its write grants), and not
 * at all under --trace or --page-stats (the faults are what they record).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "dsm_direct.h"
#include "dsm_log.h"
#include "dsmd.h"

dsm_status_t dsmd_hits_create(struct dsmd *d)
{
    struct dsm_hits_head h = { .magic = DSM_HITS_MAGIC };
    uint32_t nr = d->cfg.local_ranks > 0 ? (uint32_t)d->cfg.local_ranks : 0;
    void *m;

    dsm_hits_layout(&h, d->npages, nr, d->page_size);
    if (ftruncate(d->memfd, (off_t)(d->cfg.space_size + h.size)) < 0) {
        DSM_ERR("sizing the node's page table (%llu bytes): %s", (unsigned long long)h.size, strerror(errno));
        return DSM_ESYS;
    }
    m = mmap(NULL, h.size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, d->memfd, (off_t)d->cfg.space_size);
    if (m == MAP_FAILED) {
        DSM_ERR("mapping the node's page table: %s", strerror(errno));
        return DSM_ESYS;
    }
    d->hits = m;
    *d->hits = h;
    d->hits->run_max = (uint32_t)d->cfg.grant_ahead;
    d->hits->enabled = d->cfg.local_hits && !d->cfg.trace && !d->cfg.page_stats;
    d->hits_open = (uint8_t *)m + h.open_off;
    /* direct reads ride on hits (a direct read is a hit whose frame comes from the home),
     * and only where every fault need not pass the daemon (cache LRU, --false-sharing); not
     * on an RDMA mesh, where they are untested (the ranks' connections are TCP anyway) */
    d->hits->direct = d->cfg.direct && d->hits->enabled && d->cfg.cache_size == 0 && !d->cfg.false_sharing &&
                      d->cfg.nnodes > 1 && d->pops->direct_idle != NULL && strcmp(d->cfg.transport, "rdma") != 0;
    d->hits_door = d->hits->direct ? (uint16_t *)((uint8_t *)m + h.door_off) : NULL;
    d->land.held_tail = &d->land.held;
    return DSM_OK;
}

void dsmd_hits_destroy(struct dsmd *d)
{
    if (d->hits != NULL && munmap(d->hits, d->hits->size) != 0)
        DSM_WARN("unmapping the node's page table: %s", strerror(errno));
    d->hits = NULL;
    d->hits_open = NULL;
    d->hits_door = NULL;
}

uint8_t *dsmd_hits_prot_row(struct dsmd *d, int lrank)
{
    return (uint8_t *)d->hits + d->hits->prot_off + d->hits->prot_stride * (uint64_t)lrank;
}

/* What a rank may take of page on its own now (see the file comment). */
static uint8_t open_level(const struct dsmd *d, uint64_t page)
{
    const struct dsmd_page *pg = &d->pages[page];
    int home = dsmd_space_home(&d->space, page);
    uint8_t a = pg->access;

    if (!d->hits->enabled || pg->revq != NULL || pg->clearing || (pg->cache & DSMD_EVICTING) || home < 0 ||
        dsmd_direct_claimed(d, page))
        return DSM_ACCESS_NONE;
    if (d->cfg.cache_size > 0 && home != d->cfg.node)
        return DSM_ACCESS_NONE;
    if (d->cfg.false_sharing && a > DSM_ACCESS_READ)
        a = DSM_ACCESS_READ;
    return a;
}

/* What door[page] offers now (dsm_direct.h): the home + 1 while nothing of this node's is
 * under way for the page, else 0. */
static uint16_t door_level(const struct dsmd *d, uint64_t page)
{
    const struct dsmd_page *pg = &d->pages[page];
    int home = dsmd_space_home(&d->space, page);

    if (d->p == NULL || home < 0 || home == d->cfg.node || pg->access != DSM_ACCESS_NONE || pg->pending || pg->waiters != NULL ||
        pg->revq != NULL || pg->clearing || pg->cache != 0 || pg->direct != 0 || !d->pops->direct_idle(d->p, page))
        return 0;
    return (uint16_t)(home + 1);
}

/* door[page] := door_level, unless a rank claimed it (only the claim's end clears that). */
static void door_sync(struct dsmd *d, uint64_t page)
{
    uint16_t v = __atomic_load_n(&d->hits_door[page], __ATOMIC_SEQ_CST), want;

    if (v & DSM_DOOR_CLAIM)
        return;
    d->pages[page].direct = 0; /* what a claim refused and let go left (COUNTED) */
    want = door_level(d, page);
    if (v != want)
        (void)__atomic_compare_exchange_n(&d->hits_door[page], &v, want, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
}

int dsmd_hits_close_door(struct dsmd *d, uint64_t page)
{
    uint16_t v;

    if (d->hits_door == NULL)
        return 0;
    v = __atomic_load_n(&d->hits_door[page], __ATOMIC_SEQ_CST);
    while (v != 0 && !(v & DSM_DOOR_CLAIM))
        if (__atomic_compare_exchange_n(&d->hits_door[page], &v, 0, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
            return 0;
    return (v & DSM_DOOR_CLAIM) != 0;
}

void dsmd_hits_sync(struct dsmd *d, uint64_t page)
{
    uint8_t a = open_level(d, page);

    if (__atomic_load_n(&d->hits_open[page], __ATOMIC_RELAXED) != a)
        __atomic_store_n(&d->hits_open[page], a, __ATOMIC_SEQ_CST);
    if (d->hits_door != NULL)
        door_sync(d, page);
}

/* The prot reads that follow are sequentially consistent too, so they come after this store
 * (or the earlier one that already closed the page: only the daemon writes open[]) in the
 * single order the hits' claims and re-reads take part in (dsm_hits.h). */
void dsmd_hits_close(struct dsmd *d, uint64_t page)
{
    if (__atomic_load_n(&d->hits_open[page], __ATOMIC_RELAXED) != DSM_ACCESS_NONE)
        __atomic_store_n(&d->hits_open[page], DSM_ACCESS_NONE, __ATOMIC_SEQ_CST);
    (void)dsmd_hits_close_door(d, page);
}

int dsmd_prot_level(const struct dsmd_rank *rk, uint64_t page)
{
    return DSM_HITS_LEVEL(__atomic_load_n(&rk->prot[page], __ATOMIC_SEQ_CST));
}

void dsmd_prot_raise(struct dsmd_rank *rk, uint64_t page, int access)
{
    uint8_t v = __atomic_load_n(&rk->prot[page], __ATOMIC_SEQ_CST);
    uint8_t want;

    /* a plain value even when the level stays: the daemon's word replaces a rank's claim, so
     * a claim that is undone later cannot take back this grant */
    do {
        want = (uint8_t)(DSM_HITS_LEVEL(v) > (unsigned)access ? DSM_HITS_LEVEL(v) : (unsigned)access);
    } while (v != want && !__atomic_compare_exchange_n(&rk->prot[page], &v, want, 0, __ATOMIC_SEQ_CST,
                                                        __ATOMIC_SEQ_CST));
}

int dsmd_prot_lower(struct dsmd_rank *rk, uint64_t page, int access)
{
    uint8_t v = __atomic_load_n(&rk->prot[page], __ATOMIC_SEQ_CST);

    do {
        if (DSM_HITS_LEVEL(v) <= (unsigned)access)
            return 0;
    } while (!__atomic_compare_exchange_n(&rk->prot[page], &v, (uint8_t)access, 0, __ATOMIC_SEQ_CST,
                                          __ATOMIC_SEQ_CST));
    return 1;
}

void dsmd_prot_reset(struct dsmd_rank *rk, uint64_t first, uint64_t n)
{
    for (uint64_t p = first; p < first + n; p++)
        __atomic_store_n(&rk->prot[p], DSM_ACCESS_NONE, __ATOMIC_SEQ_CST);
}

int dsmd_prot_mapped(const struct dsmd_rank *rk, uint64_t page)
{
    uint8_t v = __atomic_load_n(&rk->prot[page], __ATOMIC_SEQ_CST);

    return DSM_HITS_LEVEL(v) != DSM_ACCESS_NONE && !(v & DSM_HITS_CLAIM);
}

int64_t dsmd_hits_check(const struct dsmd *d)
{
    for (uint64_t p = 0; d->hits != NULL && p < d->npages; p++) {
        uint16_t door = d->hits_door != NULL ? __atomic_load_n(&d->hits_door[p], __ATOMIC_RELAXED) : 0;

        if (__atomic_load_n(&d->hits_open[p], __ATOMIC_RELAXED) > open_level(d, p))
            return (int64_t)p;
        if (door != 0 && !(door & DSM_DOOR_CLAIM) && door != door_level(d, p))
            return (int64_t)p;
        /* while a rank's direct read stands, the node holds nothing of the page and has asked
         * for nothing (its model would not know what to do with the home's answer); only a
         * drop may wait for it (its revocation parked: release's acquire) */
        if ((door & DSM_DOOR_CLAIM) && (d->pages[p].pending || d->pages[p].access != DSM_ACCESS_NONE ||
                                        (!d->pops->direct_idle(d->p, p) && d->pages[p].revq == NULL)))
            return (int64_t)p;
    }
    return -1;
}

void dsmd_hits_fold(struct dsmd *d)
{
    for (int i = 0; d->hits != NULL && i < d->cfg.local_ranks; i++) {
        struct dsm_hits_count *h = &d->hits->count[i];
        struct dsmd_counters *c = &d->ranks[i].c;
        uint64_t r = __atomic_exchange_n(&h->reads, 0, __ATOMIC_RELAXED);
        uint64_t w = __atomic_exchange_n(&h->writes, 0, __ATOMIC_RELAXED);

        c->read_faults += r;
        c->write_faults += w;
        c->local_hits += r + w;
        c->pages_ahead += __atomic_exchange_n(&h->pages_ahead, 0, __ATOMIC_RELAXED);
    }
}

/*
 * hotspots.c - per-page counts for dsmrun --hotspots: faults, invalidations and bytes of
 * each page at this node, the ranks that touched it, and the allocations (with the call
 * site the rank sent) that pages belong to.
 *
 * The table is one entry per page of the space, allocated zeroed (calloc maps it lazily:
 * pages nobody touches cost no memory) only when the job asked for it. Counts are this
 * node's view: faults of its ranks, their invalidations (a rank's access taken to NONE),
 * the bytes of page-carrying messages it sent for the page (frames, diffs, requests;
 * release's DIFF and DIFF_ACK, which name many pages, shared evenly among them; causal's
 * UPDATE counts in the totals only). dsmrun adds the nodes up.
 *
 * Output lines (after STATS):
 *   PAGE <page> <read_faults> <write_faults> <invalidations> <bytes> <ranks> <writers>
 *        (ranks, writers: masks, 0x hex, of the global ranks < 64 that faulted, that wrote)
 *   ALLOC <address> <bytes> <rank> <call> <site> <module>
 *        (call: coalloc or malloc; site: the caller's offset in module, hex; module last,
 *        as the rest of the line)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diff.h"
#include "dsm_log.h"
#include "dsmd.h"

struct hot_page {
    uint32_t rfaults, wfaults, invals, pad;
    uint64_t bytes, ranks, writers;
};

struct hot_alloc {
    uint64_t addr, size, site;
    int      rank, malloc;
    char     module[sizeof(((struct dsmc_msg *)0)->text)];
};

struct dsmd_hot {
    struct hot_page  *pg;
    struct hot_alloc *allocs;
    size_t nallocs, cap;
};

dsm_status_t dsmd_hot_init(struct dsmd *d)
{
    if (!d->cfg.page_stats)
        return DSM_OK;
    d->hot = calloc(1, sizeof(*d->hot));
    if (d->hot == NULL || (d->hot->pg = calloc(d->npages, sizeof(struct hot_page))) == NULL) {
        free(d->hot);
        d->hot = NULL;
        return DSM_ENOMEM;
    }
    return DSM_OK;
}

void dsmd_hot_fini(struct dsmd *d)
{
    if (d->hot == NULL)
        return;
    free(d->hot->pg);
    free(d->hot->allocs);
    free(d->hot);
    d->hot = NULL;
}

static uint64_t rank_bit(int rank)
{
    return rank >= 0 && rank < 64 ? 1ull << rank : 0;
}

void dsmd_hot_fault(struct dsmd *d, int rank, uint64_t page, int write)
{
    struct hot_page *p = &d->hot->pg[page];

    if (write) {
        p->wfaults++;
        p->writers |= rank_bit(rank);
    } else {
        p->rfaults++;
    }
    p->ranks |= rank_bit(rank);
}

void dsmd_hot_inval(struct dsmd *d, uint64_t page)
{
    d->hot->pg[page].invals++;
}

uint64_t dsmd_hot_writers(const struct dsmd *d, uint64_t page)
{
    return d->hot != NULL ? d->hot->pg[page].writers : 0;
}

/* The next page a release DIFF (records) or DIFF_ACK (u64 pages) names, at byte *o (moved
 * past it); -1 after the last. */
static int many_next(const struct dsmd *d, const dsmw_msg_t *m, size_t *o, uint64_t *page)
{
    const uint8_t *diff;
    size_t dl;

    if (m->type == DSMW__TYPE__DIFF)
        return *o < m->data.len ? dsmp_rec_next(m->data.data, m->data.len, o, d->npages, page, &diff, &dl) : -1;
    if (m->data.len - *o < 8)
        return -1;
    *page = dsm_get_le(m->data.data + *o, 8);
    *o += 8;
    return *page < d->npages ? 0 : -1;
}

/* Share a release DIFF's or DIFF_ACK's bytes among the pages it names (the first takes the
 * remainder). */
static void hot_sent_many(struct dsmd *d, const dsmw_msg_t *m, size_t bytes)
{
    uint64_t page;
    size_t n = 0, o = 0;

    while (many_next(d, m, &o, &page) == 0)
        n++;
    if (n == 0) {
        if (m->page < d->npages)
            d->hot->pg[m->page].bytes += bytes;
        return;
    }
    o = 0;
    for (size_t k = 0; many_next(d, m, &o, &page) == 0; k++)
        d->hot->pg[page].bytes += bytes / n + (k == 0 ? bytes % n : 0);
}

void dsmd_hot_sent(struct dsmd *d, const dsmw_msg_t *m, size_t bytes)
{
    switch (m->type) {
    case DSMW__TYPE__DIFF: case DSMW__TYPE__DIFF_ACK:
        hot_sent_many(d, m, bytes);
        break;
    case DSMW__TYPE__READ_REQ: case DSMW__TYPE__WRITE_REQ: case DSMW__TYPE__GRANT:
    case DSMW__TYPE__INV: case DSMW__TYPE__INV_ACK: case DSMW__TYPE__FETCH:
    case DSMW__TYPE__FETCH_REPLY: case DSMW__TYPE__PAGE_GET: case DSMW__TYPE__PAGE:
    case DSMW__TYPE__ATOMIC_REQ:
    case DSMW__TYPE__ATOMIC_REPLY: case DSMW__TYPE__EVICT: case DSMW__TYPE__EVICTED:
        if (m->page < d->npages)
            d->hot->pg[m->page].bytes += bytes;
        break;
    default:
        break;
    }
}

void dsmd_hot_alloc(struct dsmd *d, struct dsmd_chan *c, uint64_t addr, uint64_t size)
{
    struct dsmd_hot *h = d->hot;
    struct hot_alloc *a;

    if (h->nallocs == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        struct hot_alloc *n = realloc(h->allocs, cap * sizeof(*n));

        if (n == NULL) {
            DSM_WARN("out of memory recording an allocation for --hotspots: it will be unnamed");
            return;
        }
        h->allocs = n;
        h->cap = cap;
    }
    a = &h->allocs[h->nallocs++];
    a->addr = addr;
    a->size = size;
    a->site = c->tr_site;
    a->rank = dsmd_rank_of(d, c)->rank;
    a->malloc = c->tr_op == DSMC_MALLOC;
    memcpy(a->module, c->tr_module, sizeof(a->module));
    a->module[sizeof(a->module) - 1] = '\0';
}

void dsmd_hot_print(struct dsmd *d)
{
    struct dsmd_hot *h = d->hot;

    if (h == NULL)
        return;
    for (uint64_t p = 0; p < d->npages; p++) {
        const struct hot_page *e = &h->pg[p];

        if (e->rfaults || e->wfaults || e->invals || e->bytes)
            printf("PAGE %llu %u %u %u %llu %#llx %#llx\n", (unsigned long long)p, e->rfaults, e->wfaults, e->invals,
                   (unsigned long long)e->bytes, (unsigned long long)e->ranks, (unsigned long long)e->writers);
    }
    for (size_t i = 0; i < h->nallocs; i++) {
        const struct hot_alloc *a = &h->allocs[i];

        printf("ALLOC %#llx %llu %d %s %#llx %s\n", (unsigned long long)a->addr, (unsigned long long)a->size, a->rank,
               a->malloc ? "malloc" : "coalloc", (unsigned long long)a->site, a->module[0] ? a->module : "?");
    }
    fflush(stdout);
}

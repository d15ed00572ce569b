/*
 * cache_race.c - evictions crossing what the program does meanwhile, under a tiny cache
 * (dsmrun --cache-size): the daemon evicts on its own, at any time.
 *
 * usage: cache_race free|cofree|atomic [-i ITERS]
 *
 *   free    rank 0 fills a dsm_malloc block, every rank reads it, rank 0 frees it while the
 *           others scan another region (evicting the block's pages meanwhile); the next
 *           dsm_malloc must come back zeroed. Every value read is checked.
 *   cofree  the same with a collective region, dsm_coalloc / dsm_cofree.
 *   atomic  rank 2 alternates a plain write and an atomic add on one page while rank 3 scans
 *           (its node's copy of that page is evicted meanwhile); the counter must end at
 *           ITERS (an atomic lost to an evicted page's diff would show). Needs 4 ranks.
 * Output: "cache_race MODE: OK" from rank 0, or FAILED lines; exit 1 on a wrong value.
 */
#include "lt_common.h"

#include <dsm/dsm.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RPAGES 16   /* pages of the freed block */
#define XPAGES 64   /* pages the others scan to evict */

static int bad;

static void fail(const char *what, long it, long p, uint64_t got, uint64_t want)
{
    if (bad++ < 8)
        printf("cache_race: FAILED rank %d %s iteration %ld page %ld: %llu, want %llu\n", dsm_rank(), what, it, p,
               (unsigned long long)got, (unsigned long long)want);
}

/* Scan x (homed on node 0) three times: with a tiny cache, every page of the block the rank
 * just read is evicted meanwhile. */
static uint64_t scan(volatile uint64_t *x, size_t w)
{
    uint64_t s = 0;

    for (int k = 0; k < 3; k++)
        for (int p = 0; p < XPAGES; p++)
            s += x[p * w];
    return s;
}

static void frees(int collective, long iters, volatile uint64_t *x, volatile uint64_t *volatile *slot, size_t w)
{
    for (long it = 0; it < iters; it++) {
        volatile uint64_t *r;

        if (collective) {
            r = dsm_coalloc(RPAGES * dsm_page_size());
        } else {
            if (dsm_rank() == 0)
                slot[0] = dsm_malloc(RPAGES * dsm_page_size());
            dsm_barrier();
            r = slot[0];
        }
        if (r == NULL) {
            fail("allocation", it, -1, 0, 1);
            return;
        }
        if (dsm_rank() == 0) {
            for (long p = 0; p < RPAGES; p++) {
                if (r[p * w] != 0 || r[p * w + w - 1] != 0)
                    fail("fresh block not zero", it, p, r[p * w], 0);
                r[p * w] = (uint64_t)(it * 1000 + p);
                r[p * w + w - 1] = (uint64_t)(it * 1000 + p);
            }
        }
        dsm_barrier();
        for (long p = 0; p < RPAGES; p++)
            if (r[p * w] != (uint64_t)(it * 1000 + p))
                fail("block", it, p, r[p * w], (uint64_t)(it * 1000 + p));
        if (dsm_rank() != 0 && (dsm_rank() % 2) == 1)
            for (long p = 0; p < RPAGES; p++) /* a write that the eviction sends home */
                r[p * w + 1 + (uint64_t)dsm_rank()] = 7;
        dsm_barrier();
        if (collective) {
            dsm_cofree((void *)r);
            if (dsm_rank() != 0 && scan(x, w) != 0)
                fail("scan", it, -1, 1, 0);
        } else if (dsm_rank() == 0) {
            dsm_free((void *)r);
        } else if (scan(x, w) != 0) {
            fail("scan", it, -1, 1, 0);
        }
        dsm_barrier();
    }
}

static void atomics(long iters, volatile uint64_t *x, size_t w)
{
    void *av;
    struct dsm_alloc_attr at = DSM_ALLOC_ATTR_INIT;
    volatile uint64_t *a;
    uint64_t old, v;

    at.placement = DSM_PLACE_NODE;
    at.node = 0;
    if (dsm_coalloc_ex(dsm_page_size(), &at, &av) != 0) {
        fail("allocation", 0, -1, 0, 1);
        return;
    }
    a = av;
    dsm_barrier();
    if (dsm_rank() == 2) {
        for (long i = 0; i < iters; i++) {
            a[0] = (uint64_t)i; /* a plain write: the page is twinned */
            dsm_atomic_fetch_add_64((uint64_t *)&a[w / 2], 1, &old);
        }
    } else if (dsm_rank() == 3) {
        for (long i = 0; i < iters / 20; i++)
            if (scan(x, w) != 0)
                fail("scan", i, -1, 1, 0);
    }
    dsm_barrier();
    dsm_atomic_load_64((uint64_t *)&a[w / 2], &v);
    if (v != (uint64_t)iters)
        fail("atomic counter", iters, 0, v, (uint64_t)iters);
    dsm_barrier();
}

int main(int argc, char **argv)
{
    long iters = 0;
    const char *mode;
    struct dsm_alloc_attr at = DSM_ALLOC_ATTR_INIT;
    void *xv, *sv;
    size_t w;

    if (dsm_init(&argc, &argv) != 0)
        return 2;
    mode = argc > 1 ? argv[1] : "";
    if (argc == 4 && strcmp(argv[2], "-i") == 0 && lt_parse_long(argv[3], 1, 1000000, &iters) != 0)
        iters = -1;
    if ((strcmp(mode, "free") && strcmp(mode, "cofree") && strcmp(mode, "atomic")) || (argc != 2 && argc != 4) ||
        iters < 0 || (!strcmp(mode, "atomic") && dsm_nranks() < 4)) {
        fprintf(stderr, "usage: cache_race free|cofree|atomic [-i ITERS] (atomic: 4 ranks)\n");
        dsm_finalize();
        return 2;
    }
    w = dsm_page_size() / 8;
    at.placement = DSM_PLACE_NODE;
    at.node = 0;
    if (dsm_coalloc_ex(XPAGES * dsm_page_size(), &at, &xv) != 0 || dsm_coalloc_ex(dsm_page_size(), &at, &sv) != 0) {
        fprintf(stderr, "cache_race: allocation failed\n");
        dsm_abort(2);
    }
    if (!strcmp(mode, "atomic"))
        atomics(iters ? iters : 5000, xv, w);
    else
        frees(!strcmp(mode, "cofree"), iters ? iters : 100, xv, sv, w);
    if (dsm_rank() == 0 && bad == 0)
        printf("cache_race %s: OK\n", mode);
    dsm_finalize();
    return bad ? 1 : 0;
}

/*
 * direct_race.c - direct reads (dsm_direct.h) crossing what the other ranks of the reader's
 * node do meanwhile. 4 ranks, 2 per node: ranks 2 and 3 share node 1; the pages are homed
 * on node 0. Each iteration `it`:
 *   1. rank 0 writes word 1 of every page (it); a barrier: node 1's copies go.
 *   2. At once:
 *      - rank 3 reads word 1 of every page in no scan's order (direct reads): each is it;
 *      - rank 2 adds 1 atomically to word 0 of every page, in another order, and reads the
 *        word plainly at once: it sees its own add (the home's ATOMIC_REPLY for a page waits
 *        for a direct read of the page standing at the node);
 *      - rank 1 writes word 2 of every page and then the flag, under lock 1; rank 2 takes
 *        the lock until it sees the flag, then reads word 2 of every page: each is it (an
 *        acquire's drop of a page waits for a direct read of it that stands: release).
 *   3. A barrier.
 * Every model runs it. DSM_HITS_DELAY_US widens the windows: a direct read then waits with
 * the page claimed, and again with the page in the frame but not yet mapped.
 *
 * usage: direct_race [-i ITERS]  (default 30)
 * Output: "direct_race: OK" from rank 0, or FAILED lines; exit 1 on a wrong value.
 */
#include <dsm/dsm.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PAGES 61 /* prime: any stride below it visits every page once, in no scan's order */
#define LOCK  1

static long bad;
static int  stuck; /* rank 2 gave up waiting for the flag */

static void fail(const char *what, long it, long q, uint64_t got, uint64_t want)
{
    if (bad++ < 8)
        printf("direct_race: FAILED rank %d %s iteration %ld page %ld: %llu, want %llu\n", dsm_rank(), what, it, q,
               (unsigned long long)got, (unsigned long long)want);
}

static uint64_t now_ms(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

int main(int argc, char **argv)
{
    long iters = 30, w;
    volatile uint64_t *base, *flag, *verdict;
    uint64_t expect0[PAGES] = { 0 };
    int opt, rc = dsm_init(&argc, &argv);

    if (rc != 0) {
        fprintf(stderr, "direct_race: dsm_init: %s\n", dsm_strerror(rc));
        return 1;
    }
    setvbuf(stdout, NULL, _IOLBF, 0); /* a job stopped for its time keeps what was said */
    while ((opt = getopt(argc, argv, "i:")) != -1)
        if (opt == 'i')
            iters = atol(optarg);
    if (dsm_nranks() != 4 || iters < 1) {
        fprintf(stderr, "direct_race: needs 4 ranks (2 per node) and -i >= 1\n");
        return 2;
    }
    w = (long)(dsm_page_size() / sizeof(uint64_t));
    /* block placement gives node 0 the first half: PAGES + 1 pages of it hold the data and
     * the flag; the verdicts go in the last page */
    base = dsm_coalloc(4 * (PAGES + 1) * dsm_page_size());
    if (base == NULL)
        return 1;
    flag = base + PAGES * w;
    verdict = base + (4 * (PAGES + 1) - 1) * w;
    dsm_barrier();
    for (long it = 1; it <= iters; it++) {
        if (dsm_rank() == 0)
            for (long q = 0; q < PAGES; q++)
                base[q * w + 1] = (uint64_t)it;
        dsm_barrier();
        if (dsm_rank() == 3) {
            for (long i = 0; i < PAGES; i++) {
                long q = i * 7 % PAGES;

                if (base[q * w + 1] != (uint64_t)it)
                    fail("word 1", it, q, base[q * w + 1], (uint64_t)it);
            }
        } else if (dsm_rank() == 2) {
            for (long i = 0; i < PAGES; i++) {
                long q = i * 11 % PAGES;
                uint64_t old;

                if (dsm_atomic_fetch_add_64((uint64_t *)&base[q * w], 1, &old) != 0 || old != expect0[q])
                    fail("atomic's old word 0", it, q, old, expect0[q]);
                expect0[q] = old + 1;
                if (base[q * w] != expect0[q])
                    fail("word 0 after its own atomic", it, q, base[q * w], expect0[q]);
            }
            for (uint64_t f = 0, t0 = now_ms(); f != (uint64_t)it && !stuck;) {
                dsm_lock(LOCK);
                f = *flag;
                dsm_unlock(LOCK);
                if (f != (uint64_t)it && now_ms() - t0 > 10000) {
                    fail("flag, still after 10 s under the lock,", it, PAGES, f, (uint64_t)it);
                    stuck = 1; /* later iterations would wait as long: check the rest only */
                }
            }
            for (long i = 0; i < PAGES; i++) {
                long q = i * 13 % PAGES;

                if (base[q * w + 2] != (uint64_t)it)
                    fail("word 2 after the lock", it, q, base[q * w + 2], (uint64_t)it);
            }
        } else if (dsm_rank() == 1) {
            dsm_lock(LOCK);
            for (long q = 0; q < PAGES; q++)
                base[q * w + 2] = (uint64_t)it;
            *flag = (uint64_t)it;
            dsm_unlock(LOCK);
        }
        dsm_barrier();
    }
    verdict[dsm_rank()] = (uint64_t)bad;
    dsm_barrier();
    if (dsm_rank() == 0) {
        uint64_t all = 0;

        for (int r = 0; r < 4; r++)
            all += verdict[r];
        printf(all == 0 ? "direct_race: OK (%ld iterations)\n" : "direct_race: FAILED (%ld iterations)\n", iters);
        bad += (long)all;
    }
    rc = dsm_finalize();
    return rc != 0 || bad != 0;
}

/*
 * counts.c - a job whose page traffic is known exactly, for checking the statistics.
 *
 * usage: counts PAGES [scan|scan2|local|direct|again|sweep|private|refault|realloc|unseen|resweep]
 * Ranks: any layout with at least one rank on node 0 and one elsewhere. Pages are
 * collectively allocated so that the first half are homed on node 0 and the second half
 * on the last node (block placement over 2 nodes, or the first and last block).
 *
 * Phase 0 (with `scan`): rank 0 reads one word of each of those pages, in order: they are
 *   homed on its node, so its daemon grants them in runs that double as the scan goes on
 *   (grants ahead, daemon/pages.c). With `scan2` it reads them as two interleaved scans, page
 *   i of the first half then page i of the second, as a stencil reads one array and writes
 *   another: each scan's runs double on their own.
 * Phase 1 (read): every rank not on node 0 reads one word of each of the PAGES pages homed
 *   on node 0, all at once (ranks of one node race for the same pages: coalescing).
 * Phase 2 (write): rank 0 writes each of those pages (its node is their home), which
 *   invalidates the copies every other node holds.
 * With `local` instead, only this runs: rank 0 writes one word of each of the PAGES pages,
 *   then (after a barrier) rank 1 reads one word of each: both on node 0, their home, so
 *   every fault finds the page in the node's frames (node-local hits, dsm_hits.h).
 * With `direct` instead: the last rank (on the last node) reads one word of each of the
 *   PAGES pages homed on node 0, in an order no scan follows (stride 7); rank 0 then writes
 *   each (invalidating the reader's copies); the reader reads them all again, the same way,
 *   and must see the new values (DSM_DIRECT=1: each read straight from the home, dsm_direct.h).
 * With `again` instead (release: fetching again at an acquire): five rounds; in each the
 *   last rank reads one word of each of the PAGES pages homed on node 0, in order, except
 *   in round 3, then rank 0 writes round + 1 into each, and a barrier drops the reader's
 *   copies. It must read round r's value in round r.
 * With `sweep` instead (release: a scan taken up again): three rounds; in each rank 0 writes
 *   round + 1 into each of the PAGES pages homed on its node, in order from the first, and
 *   after a barrier the last rank reads them all (so that they are shared and each release
 *   write-protects them again) and must see that value. Rounds 1 and 2 start where round
 *   0's scan started: the daemon takes up the run that scan reached.
 * With `private` instead (causal: home pages nobody else holds): as `sweep`, but the reader
 *   reads the pages only after the third round, and must see 3 in each.
 * With `refault` instead (a lone fault repeated is no scan): the last rank reads the PAGES
 *   pages homed on node 0 in an order no scan follows (stride 7: page x + 1 comes 55 or more
 *   visits after x), four at a time; rank 0 writes each group (invalidating the reader's
 *   copies) and the reader reads it again, in the same order, before the next group. Each
 *   second fault on a page is one its scan state saw start a scan of one page.
 * With `realloc` instead (a freed block's scans end with it): PAGES / 8 times, the last rank
 *   reads pages 0, 2, 4 and 6 of the block homed on node 0, every rank frees the block and
 *   allocates until it gets the same block back, and the reader reads pages 1,
 *   3, 5 and 7 of the new block, which would extend the old block's scans; freed and
 *   allocated once more before the next time.
 * With `unseen` instead (the daemon's scans miss the faults it does not see): PAGES / 8
 *   times, the last rank reads page 4i of those homed on node 0, then four pages homed on
 *   its own node (node-local hits, no message; stride 7, no scan), then page 4i + 1, which
 *   continues no scan of the thread: its four hits came after page 4i.
 * With `resweep` instead (a thread's scans are as long as the daemon's): the last rank reads
 *   the PAGES pages homed on node 0 in order, one fetched page a fault (no reads ahead);
 *   rank 0 writes each (invalidating them); the rank before the reader, on its node, reads
 *   them all back into the node; the reader reads them again from the first, now in the
 *   node's frames: node-local hits that take up the length its first sweep reached.
 * counts_check.py runs this with PAGES = 0 and PAGES = P and checks the differences in the
 * --stats output, which depend only on P and the job's layout.
 */
#include <dsm/dsm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    int rc = dsm_init(&argc, &argv);
    long pages, nodes_pages;
    size_t ps;
    volatile char *base;
    long sum = 0;

    if (rc != 0) {
        fprintf(stderr, "counts: dsm_init: %s\n", dsm_strerror(rc));
        return 1;
    }
    pages = argc > 1 ? atol(argv[1]) : 8;
    ps = dsm_page_size();
    /* block placement gives node 0 the first ceil(total/nnodes) pages: allocate enough
     * that the first `pages` pages are all homed there */
    nodes_pages = pages > 0 ? pages * dsm_nranks() : 1;
    base = dsm_coalloc((size_t)nodes_pages * ps);
    if (base == NULL)
        return 1;
    dsm_barrier();
    if (argc > 2 && strcmp(argv[2], "local") == 0) {
        if (dsm_rank() == 0)
            for (long p = 0; p < pages; p++)
                base[p * (long)ps] = 0;
        dsm_barrier();
        if (dsm_rank() == 1)
            for (long p = 0; p < pages; p++)
                sum += base[p * (long)ps];
        dsm_barrier();
        printf("counts: rank %d done (sum %ld)\n", dsm_rank(), sum);
        return dsm_finalize() != 0 || sum != 0;
    }
    if (argc > 2 && strcmp(argv[2], "direct") == 0) {
        int reader = dsm_nranks() - 1;
        long want = 0;

        for (int round = 0; round < 2; round++) {
            if (dsm_rank() == reader)
                for (long i = 0; i < pages; i++)
                    sum += base[(i * 7 % pages) * (long)ps];
            dsm_barrier();
            if (round == 0 && dsm_rank() == 0)
                for (long p = 0; p < pages; p++)
                    base[p * (long)ps] = 1;
            dsm_barrier();
        }
        if (dsm_rank() == reader)
            want = pages; /* 0 each the first time, 1 each the second */
        printf("counts: rank %d done (sum %ld)\n", dsm_rank(), sum);
        return dsm_finalize() != 0 || sum != want;
    }
    if (argc > 2 && strcmp(argv[2], "again") == 0) {
        int reader = dsm_nranks() - 1;
        long want = 0;

        for (int round = 0; round < 5; round++) {
            if (dsm_rank() == reader && round != 3) {
                for (long p = 0; p < pages; p++)
                    sum += base[p * (long)ps];
                want += round * pages;
            }
            dsm_barrier();
            if (round < 4 && dsm_rank() == 0)
                for (long p = 0; p < pages; p++)
                    base[p * (long)ps] = (char)(round + 1);
            dsm_barrier();
        }
        printf("counts: rank %d done (sum %ld)\n", dsm_rank(), sum);
        return dsm_finalize() != 0 || sum != want;
    }
    if (argc > 2 && strcmp(argv[2], "sweep") == 0) {
        int reader = dsm_nranks() - 1;
        long want = 0;

        for (int round = 0; round < 3; round++) {
            if (dsm_rank() == 0)
                for (long p = 0; p < pages; p++)
                    base[p * (long)ps] = (char)(round + 1);
            dsm_barrier();
            if (dsm_rank() == reader) {
                for (long p = 0; p < pages; p++)
                    sum += base[p * (long)ps];
                want += (round + 1) * pages;
            }
            dsm_barrier();
        }
        printf("counts: rank %d done (sum %ld)\n", dsm_rank(), sum);
        return dsm_finalize() != 0 || sum != want;
    }
    if (argc > 2 && strcmp(argv[2], "private") == 0) {
        int reader = dsm_nranks() - 1;
        long want = dsm_rank() == reader ? 3 * pages : 0;

        for (int round = 0; round < 3; round++) {
            if (dsm_rank() == 0)
                for (long p = 0; p < pages; p++)
                    base[p * (long)ps] = (char)(round + 1);
            dsm_barrier();
        }
        if (dsm_rank() == reader)
            for (long p = 0; p < pages; p++)
                sum += base[p * (long)ps];
        printf("counts: rank %d done (sum %ld)\n", dsm_rank(), sum);
        return dsm_finalize() != 0 || sum != want;
    }
    if (argc > 2 && strcmp(argv[2], "refault") == 0) {
        int reader = dsm_nranks() - 1;
        long want = dsm_rank() == reader ? pages : 0; /* 0 each the first time, 1 each the second */

        for (long g = 0; g < pages; g += 4) {
            long end = g + 4 < pages ? g + 4 : pages;

            for (int round = 0; round < 2; round++) {
                if (dsm_rank() == reader)
                    for (long j = g; j < end; j++)
                        sum += base[(j * 7 % pages) * (long)ps];
                dsm_barrier();
                if (round == 0 && dsm_rank() == 0)
                    for (long j = g; j < end; j++)
                        base[(j * 7 % pages) * (long)ps] = 1;
                dsm_barrier();
            }
        }
        printf("counts: rank %d done (sum %ld)\n", dsm_rank(), sum);
        return dsm_finalize() != 0 || sum != want;
    }
    if (argc > 2 && strcmp(argv[2], "unseen") == 0) {
        long own = nodes_pages - pages; /* homed on the last node, the reader's */

        if (dsm_rank() == dsm_nranks() - 1)
            for (long i = 0; i < pages / 8; i++) {
                sum += base[4 * i * (long)ps];
                for (long j = 4 * i; j < 4 * i + 4; j++)
                    sum += base[(own + j * 7 % pages) * (long)ps];
                sum += base[(4 * i + 1) * (long)ps];
            }
        dsm_barrier();
        printf("counts: rank %d done (sum %ld)\n", dsm_rank(), sum);
        return dsm_finalize() != 0 || sum != 0;
    }
    if (argc > 2 && strcmp(argv[2], "resweep") == 0) {
        int reader = dsm_nranks() - 1;
        long want = dsm_rank() >= reader - 1 && dsm_rank() > 0 ? pages : 0; /* the 1s read back */

        for (int step = 0; step < 4; step++) {
            if ((step == 0 || step == 3) && dsm_rank() == reader)
                for (long p = 0; p < pages; p++)
                    sum += base[p * (long)ps];
            if (step == 1 && dsm_rank() == 0)
                for (long p = 0; p < pages; p++)
                    base[p * (long)ps] = 1;
            if (step == 2 && dsm_rank() == reader - 1)
                for (long p = 0; p < pages; p++)
                    sum += base[p * (long)ps];
            dsm_barrier();
        }
        printf("counts: rank %d done (sum %ld)\n", dsm_rank(), sum);
        return dsm_finalize() != 0 || sum != want;
    }
    if (argc > 2 && strcmp(argv[2], "realloc") == 0) {
        int reader = dsm_nranks() - 1;

        for (long g = 0; g + 8 <= pages; g += 8)
            for (int half = 0; half < 2; half++) {
                volatile char *again;

                if (dsm_rank() == reader)
                    for (long j = half; j < 8; j += 2)
                        sum += base[j * (long)ps];
                dsm_barrier();
                dsm_cofree((void *)base);
                /* the block is the allocator's again once every node has cleared it: until
                 * then an allocation lands elsewhere (freed at once, untouched) */
                for (int tries = 0; (again = dsm_coalloc((size_t)nodes_pages * ps)) != base; tries++) {
                    if (again == NULL || tries == 1000) {
                        fprintf(stderr, "counts: the freed block (%p) did not come back (%p)\n", (void *)base,
                                (void *)again);
                        return 1;
                    }
                    dsm_cofree((void *)again);
                    dsm_barrier();
                }
                dsm_barrier();
            }
        printf("counts: rank %d done (sum %ld)\n", dsm_rank(), sum);
        return dsm_finalize() != 0 || sum != 0;
    }
    if (argc > 2 && strcmp(argv[2], "scan") == 0 && dsm_rank() == 0)
        for (long p = 0; p < pages; p++)
            sum += base[p * (long)ps];
    if (argc > 2 && strcmp(argv[2], "scan2") == 0 && dsm_rank() == 0)
        for (long p = 0; p < pages / 2; p++)
            sum += base[p * (long)ps] + base[(pages / 2 + p) * (long)ps];
    dsm_barrier();
    if (getenv("DSM_NODE") == NULL || atoi(getenv("DSM_NODE")) != 0)
        for (long p = 0; p < pages; p++)
            sum += base[p * (long)ps];
    dsm_barrier();
    if (dsm_rank() == 0)
        for (long p = 0; p < pages; p++)
            base[p * (long)ps] = 1;
    dsm_barrier();
    printf("counts: rank %d done (sum %ld)\n", dsm_rank(), sum);
    return dsm_finalize() != 0 || sum != 0;
}

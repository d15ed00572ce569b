/*
 * interleave.c - every rank writes its interleaved bytes of the same pages; none may be lost.
 *
 * usage: interleave [-p PAGES] [-r ROUNDS]   (defaults 4 pages x 4 rounds;
 *                                             16 x 20 with DSM_STRESS=1)
 *
 * In each round, rank r writes every byte i (counted over the whole region) with
 * i % nranks == r, so all ranks write into every page at the same time: the worst case of
 * false sharing. After a barrier every rank checks every byte of the region; after another
 * barrier the next round writes new values. A protocol that keeps one writer's page and
 * drops another's bytes (a lost invalidation, a stale page shipped, a lost diff) shows up
 * as a wrong byte. Ranks start on different pages so that pages really change hands while
 * being written. Exit 1 on any wrong byte.
 */
#include "lt_common.h"

#include <dsm/dsm.h>

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

/* The byte every rank expects at index i in round `round` (never the zero of a new page). */
static uint8_t expected(size_t i, long round, int nranks)
{
    return (uint8_t)(1 + (i * 131 + (size_t)round * 29 + (i % (size_t)nranks) * 7) % 255);
}

/* Parse -p and -r; 0 or -1 (usage printed). */
static int parse_args(int argc, char **argv, long *pages, long *rounds)
{
    int c;

    *pages = lt_scaled(4, 16);
    *rounds = lt_scaled(4, 20);
    while ((c = getopt(argc, argv, "p:r:")) != -1) {
        if (c == 'p' && lt_parse_long(optarg, 1, 65536, pages) == 0)
            continue;
        if (c == 'r' && lt_parse_long(optarg, 1, 1000000, rounds) == 0)
            continue;
        fprintf(stderr, "usage: interleave [-p PAGES] [-r ROUNDS]\n");
        return -1;
    }
    return 0;
}

/* Write this rank's bytes of every page, starting at page `rank % npages`. */
static void write_mine(volatile uint8_t *base, long npages, size_t pg, long round)
{
    int r = dsm_rank(), nr = dsm_nranks();

    for (long k = 0; k < npages; k++) {
        size_t first = (size_t)((k + r) % npages) * pg;
        size_t i = first + (size_t)((nr - (long)(first % (size_t)nr) + r) % nr);

        for (; i < first + pg; i += (size_t)nr)
            base[i] = expected(i, round, nr);
    }
}

/* Count wrong bytes in the region; print the first. */
static long check_all(volatile uint8_t *base, size_t bytes, long round)
{
    int  nr = dsm_nranks();
    long wrong = 0;

    for (size_t i = 0; i < bytes; i++) {
        uint8_t got = base[i], want = expected(i, round, nr);

        if (got != want && wrong++ == 0)
            fprintf(stderr,
                    "interleave: rank %d round %ld: byte %zu (page %zu, writer rank %zu) is %u, "
                    "expected %u\n",
                    dsm_rank(), round, i, i / dsm_page_size(), i % (size_t)nr, got, want);
    }
    return wrong;
}

/* Everything between dsm_init and dsm_finalize; returns the exit status. */
static int interleave_main(int argc, char **argv)
{
    long             pages, rounds, wrong = 0, total = 0;
    size_t           pg = dsm_page_size();
    volatile uint8_t *base;
    long            *all;
    int              nnodes, rc = 0;

    if (parse_args(argc, argv, &pages, &rounds) != 0)
        return 2;
    nnodes = lt_nnodes();
    if (nnodes < 0)
        return 1;
    pages = (pages + nnodes - 1) / nnodes * nnodes; /* every node homes as many pages */
    base = dsm_coalloc((size_t)pages * pg);
    all = dsm_coalloc((size_t)dsm_nranks() * sizeof(long));
    if (base == NULL || all == NULL)
        return 1;
    for (long round = 0; rc == 0 && round < rounds; round++) {
        write_mine(base, pages, pg, round);
        rc = dsm_barrier();
        if (rc == 0)
            wrong += check_all(base, (size_t)pages * pg, round);
        if (rc == 0)
            rc = dsm_barrier();
    }
    all[dsm_rank()] = wrong;
    if (rc == 0)
        rc = dsm_barrier();
    if (rc != 0) {
        fprintf(stderr, "interleave: rank %d: dsm_barrier: %s\n", dsm_rank(), dsm_strerror(rc));
        return 1;
    }
    if (dsm_rank() != 0)
        return wrong != 0;
    for (int r = 0; r < dsm_nranks(); r++)
        total += all[r];
    printf("interleave: %d ranks, %ld pages on %d nodes, %ld rounds: %ld wrong bytes seen: %s\n",
           dsm_nranks(), pages, nnodes, rounds, total, total ? "FAILED" : "OK");
    return total != 0;
}

int main(int argc, char **argv)
{
    int rc = dsm_init(&argc, &argv), status;

    if (rc != 0) {
        fprintf(stderr, "interleave: dsm_init: %s\n", dsm_strerror(rc));
        return 1;
    }
    status = interleave_main(argc, argv);
    rc = dsm_finalize();
    if (rc != 0) {
        fprintf(stderr, "interleave: dsm_finalize: %s\n", dsm_strerror(rc));
        status = 1;
    }
    return status;
}

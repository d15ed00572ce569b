/*
 * lock_counter.c - shared counters incremented under dsm_lock must lose no update.
 *
 * usage: lock_counter [-k K]     (K default 200, 2000 with DSM_STRESS=1)
 *
 * Two counters sit on pages homed on different nodes (when there are two), each guarded by
 * its own lock id. Every rank increments each counter K times, alternating between them,
 * with a read-modify-write that is deliberately slow (a short random pause between the
 * read and the write) so that a lock that fails to exclude loses updates. An "inside" flag
 * next to each counter catches two holders at once directly. After a barrier every rank
 * checks that each counter equals nranks * K; rank 0 prints the result. Exit 1 on any
 * lost update or overlap.
 */
#include "lt_common.h"

#include <dsm/dsm.h>

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#define NCOUNTERS 2
#define LOCK_ID0  7u

/* One guarded counter (the first bytes of its page). */
struct counter {
    volatile long count;
    volatile int  inside; /* set while a rank holds the lock */
};

/* Per-rank error tallies, published for rank 0. */
struct tally {
    long overlaps; /* entered a critical section someone else was in */
    long failures; /* dsm_lock/unlock errors */
    long wrong;    /* counters with the wrong final value, as this rank sees them */
};

/* Parse -k; 0 or -1 (usage printed). */
static int parse_args(int argc, char **argv, long *k)
{
    int c;

    *k = lt_scaled(200, 2000);
    while ((c = getopt(argc, argv, "k:")) != -1) {
        if (c == 'k' && lt_parse_long(optarg, 1, 100000000, k) == 0)
            continue;
        fprintf(stderr, "usage: lock_counter [-k K]\n");
        return -1;
    }
    return 0;
}

/* One increment of c under lock `id`; tallies overlaps and lock failures in t. */
static void increment(struct counter *c, uint32_t id, uint64_t *seed, struct tally *t)
{
    long v;

    if (dsm_lock(id) != 0) {
        t->failures++;
        return;
    }
    if (c->inside)
        t->overlaps++;
    c->inside = 1;
    v = c->count;
    lt_jitter(seed, 2000);
    c->count = v + 1;
    c->inside = 0;
    if (dsm_unlock(id) != 0)
        t->failures++;
}

/* Check the counters after the final barrier; rank 0 also sums every rank's tally. */
static int check(struct counter *ctr[], long expect, struct tally *all, struct tally *mine)
{
    int  nr = dsm_nranks(), rc;
    long overlaps = 0, failures = 0, wrong = 0;

    for (int i = 0; i < NCOUNTERS; i++)
        mine->wrong += ctr[i]->count != expect;
    all[dsm_rank()] = *mine;
    rc = dsm_barrier();
    if (rc != 0) {
        fprintf(stderr, "lock_counter: rank %d: dsm_barrier: %s\n", dsm_rank(), dsm_strerror(rc));
        return 1;
    }
    if (dsm_rank() != 0)
        return 0;
    for (int r = 0; r < nr; r++) {
        overlaps += all[r].overlaps;
        failures += all[r].failures;
        wrong += all[r].wrong;
    }
    printf("lock_counter: %d ranks x %ld increments of %d counters: counters %ld and %ld, "
           "expected %ld; %ld overlaps, %ld lock errors, %ld wrong views: %s\n",
           nr, expect / nr, NCOUNTERS, ctr[0]->count, ctr[1]->count, expect, overlaps, failures,
           wrong, overlaps || failures || wrong ? "FAILED" : "OK");
    return overlaps || failures || wrong ? 1 : 0;
}

/* Everything between dsm_init and dsm_finalize; returns the exit status. */
static int counter_main(int argc, char **argv)
{
    int             nr = dsm_nranks(), nnodes, rc;
    size_t          pg = dsm_page_size();
    long            k;
    char           *region;
    struct tally   *all, mine = {0, 0, 0};
    struct counter *ctr[NCOUNTERS];
    uint64_t        seed = 0x1234567ULL + (uint64_t)dsm_rank() * 7919;

    if (parse_args(argc, argv, &k) != 0)
        return 2;
    nnodes = lt_nnodes();
    if (nnodes < 0)
        return 1;
    /* One page per node: counter 0 on node 0's page, counter 1 on the last node's page. */
    region = dsm_coalloc((size_t)nnodes * pg);
    all = dsm_coalloc((size_t)nr * sizeof(*all));
    if (region == NULL || all == NULL)
        return 1;
    ctr[0] = (struct counter *)region;
    ctr[1] = (struct counter *)(region + (size_t)(nnodes - 1) * pg + (nnodes == 1 ? 256 : 0));
    rc = dsm_barrier();
    for (long i = 0; rc == 0 && i < k; i++)
        for (int j = 0; j < NCOUNTERS; j++) {
            int c = (j + dsm_rank()) % NCOUNTERS; /* ranks start on different counters */

            increment(ctr[c], LOCK_ID0 + (uint32_t)c, &seed, &mine);
        }
    if (rc == 0)
        rc = dsm_barrier();
    if (rc != 0) {
        fprintf(stderr, "lock_counter: rank %d: dsm_barrier: %s\n", dsm_rank(), dsm_strerror(rc));
        return 1;
    }
    return check(ctr, (long)nr * k, all, &mine);
}

int main(int argc, char **argv)
{
    int rc = dsm_init(&argc, &argv), status;

    if (rc != 0) {
        fprintf(stderr, "lock_counter: dsm_init: %s\n", dsm_strerror(rc));
        return 1;
    }
    status = counter_main(argc, argv);
    rc = dsm_finalize();
    if (rc != 0) {
        fprintf(stderr, "lock_counter: dsm_finalize: %s\n", dsm_strerror(rc));
        status = 1;
    }
    return status;
}

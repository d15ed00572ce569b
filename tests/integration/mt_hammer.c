/*
 * mt_hammer.c - several threads per rank, and several ranks, hammer the same few pages.
 *
 * usage: mt_hammer [-t THREADS] [-i ITERS] [-R ROUNDS]
 *        (defaults 4 threads, 200 iterations, 3 rounds; 2000 iterations with DSM_STRESS=1)
 *
 * Every thread of every rank is a "writer" w with a slot (one 64-bit word) in each of a few
 * shared pages; all slots of all writers share those pages. In iteration i of round r a
 * thread picks page (i + t) % npages, stores r*ITERS + i + 1 (always increasing) into its
 * slot there, reads its own slot back (nobody
 * else writes it), and reads every other writer's slot of that page, checking that no
 * value ever goes backwards (per-location coherence: sequential and causal models
 * guarantee it). Every fourth iteration it also increments counter t (all counters share
 * one page) under lock LOCK_BASE + t, which thread t of every other rank contends for too;
 * an "inside" flag catches two holders at once. So the threads of one rank hold and wait
 * for different locks at the same time, and each lock is contended across ranks. (Locks
 * belong to ranks: two threads of one rank may not take the same id at once.) Threads of
 * one rank start together, so they fault on the same pages concurrently. Each round starts
 * fresh threads and ends with them joined and a barrier, so threads that used DSM memory
 * come and go while the rank lives on. After the last round every rank checks every slot's
 * final value and the counters. Exit 1 on any error.
 */
#include "lt_common.h"

#include <dsm/dsm.h>

#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_THREADS 16
#define LOCK_BASE   77u /* thread t uses lock LOCK_BASE + t */

/* One thread index's shared counter (all of them on one page). */
struct guarded {
    volatile long count;
    volatile int  inside;
};

/* The job-wide shared state and parameters, identical in every thread. */
struct hammer {
    long            iters;
    int             rounds, round; /* round: the one running now */
    int             nthreads, npages, writers, monotonic;
    size_t          page;
    char           *pages;   /* npages shared pages of slots */
    struct guarded *counters; /* [nthreads] */
    long           *errors;  /* per rank, published at the end */
};

/* One thread's identity and results. */
struct worker {
    struct hammer *h;
    pthread_t      tid;
    int            t, w;     /* thread index in the rank, writer index in the job */
    long           errors;
    uint64_t      *last;     /* last value seen per (page, writer) */
};

/* Slot of writer w in page q. */
static uint64_t *slot(const struct hammer *h, int q, int w)
{
    return (uint64_t *)(h->pages + (size_t)q * h->page) + w;
}

/* The value thread t stores in iteration i of round r. */
static uint64_t value(const struct hammer *h, int r, long i)
{
    return (uint64_t)r * (uint64_t)h->iters + (uint64_t)i + 1;
}

/* The final value thread t of any rank leaves in page q: its last store there, or 0. */
static uint64_t final_value(const struct hammer *h, int t, int q)
{
    for (int r = h->rounds - 1; r >= 0; r--)
        for (long i = h->iters - 1; i >= 0; i--)
            if ((i + t) % h->npages == q)
                return value(h, r, i);
    return 0;
}

/* One increment of counter t under lock LOCK_BASE + t; counts overlaps and lock errors. */
static void locked_increment(struct hammer *h, int t, long *errors)
{
    struct guarded *g = &h->counters[t];
    uint32_t        id = LOCK_BASE + (uint32_t)t;

    if (dsm_lock(id) != 0) {
        (*errors)++;
        return;
    }
    if (__atomic_exchange_n(&g->inside, 1, __ATOMIC_SEQ_CST) != 0) {
        fprintf(stderr, "mt_hammer: rank %d: two holders of lock %u at once\n", dsm_rank(), id);
        (*errors)++;
    }
    g->count = g->count + 1;
    __atomic_store_n(&g->inside, 0, __ATOMIC_SEQ_CST);
    if (dsm_unlock(id) != 0)
        (*errors)++;
}

/* Read the other writers' slots of page q, checking values stay in range and never drop. */
static void check_page(struct worker *me, int q)
{
    struct hammer *h = me->h;

    for (int w = 0; w < h->writers; w++) {
        uint64_t v = __atomic_load_n(slot(h, q, w), __ATOMIC_SEQ_CST);
        uint64_t *last = &me->last[(size_t)q * (size_t)h->writers + (size_t)w];

        if (v > value(h, h->rounds - 1, h->iters - 1) || (h->monotonic && v < *last)) {
            if (me->errors++ < 5)
                fprintf(stderr, "mt_hammer: rank %d thread %d: page %d writer %d reads %lu after %lu\n",
                        dsm_rank(), me->t, q, w, (unsigned long)v, (unsigned long)*last);
        }
        *last = v;
    }
}

/* Thread body: the iterations described at the top of the file. */
static void *worker_main(void *arg)
{
    struct worker *me = arg;
    struct hammer *h = me->h;

    for (long i = 0; i < h->iters; i++) {
        int q = (int)((i + me->t) % h->npages);
        uint64_t *mine = slot(h, q, me->w);

        __atomic_store_n(mine, value(h, h->round, i), __ATOMIC_SEQ_CST);
        if (__atomic_load_n(mine, __ATOMIC_SEQ_CST) != value(h, h->round, i) && me->errors++ < 5)
            fprintf(stderr, "mt_hammer: rank %d thread %d: own slot lost its value\n", dsm_rank(), me->t);
        check_page(me, q);
        if (i % 4 == 0)
            locked_increment(h, me->t, &me->errors);
    }
    return NULL;
}

/* Start the threads, join them; returns the sum of their errors (and of failed starts). */
static long run_threads(struct hammer *h)
{
    struct worker ws[MAX_THREADS];
    long          errors = 0;
    int           started = 0;

    memset(ws, 0, sizeof(ws));
    for (int t = 0; t < h->nthreads; t++) {
        ws[t] = (struct worker){.h = h, .t = t, .w = dsm_rank() * h->nthreads + t};
        ws[t].last = calloc((size_t)h->npages * (size_t)h->writers, sizeof(uint64_t));
        if (ws[t].last == NULL || pthread_create(&ws[t].tid, NULL, worker_main, &ws[t]) != 0) {
            fprintf(stderr, "mt_hammer: rank %d: cannot start thread %d\n", dsm_rank(), t);
            free(ws[t].last);
            errors++;
            break;
        }
        started++;
    }
    for (int t = 0; t < started; t++) {
        pthread_join(ws[t].tid, NULL);
        errors += ws[t].errors;
        free(ws[t].last);
    }
    return errors;
}

/* After the barrier: every slot and counter holds its final value. Wrong count. */
static long check_final(const struct hammer *h)
{
    long wrong = 0, want = (long)dsm_nranks() * h->rounds * ((h->iters + 3) / 4);

    for (int q = 0; q < h->npages; q++)
        for (int w = 0; w < h->writers; w++) {
            uint64_t v = *slot(h, q, w), e = final_value(h, w % h->nthreads, q);

            if (v != e && wrong++ < 5)
                fprintf(stderr, "mt_hammer: rank %d: page %d writer %d ends at %lu, expected %lu\n",
                        dsm_rank(), q, w, (unsigned long)v, (unsigned long)e);
        }
    for (int t = 0; t < h->nthreads; t++)
        if (h->counters[t].count != want) {
            fprintf(stderr, "mt_hammer: rank %d: counter %d is %ld, expected %ld\n", dsm_rank(),
                    t, h->counters[t].count, want);
            wrong++;
        }
    return wrong;
}

/* Parse -t, -i and -R into h; 0 or -1 (usage printed). */
static int parse_args(int argc, char **argv, struct hammer *h)
{
    long t = 4, rounds = 3;
    int  c;

    h->iters = lt_scaled(200, 2000);
    while ((c = getopt(argc, argv, "t:i:R:")) != -1) {
        if (c == 't' && lt_parse_long(optarg, 1, MAX_THREADS, &t) == 0)
            continue;
        if (c == 'i' && lt_parse_long(optarg, 1, 10000000, &h->iters) == 0)
            continue;
        if (c == 'R' && lt_parse_long(optarg, 1, 1000, &rounds) == 0)
            continue;
        fprintf(stderr, "usage: mt_hammer [-t THREADS (1..%d)] [-i ITERS] [-R ROUNDS]\n",
                MAX_THREADS);
        return -1;
    }
    h->nthreads = (int)t;
    h->rounds = (int)rounds;
    return 0;
}

/* Allocate the shared pages (a multiple of the node count), counter and error slots. */
static int setup(struct hammer *h, int nnodes)
{
    h->page = dsm_page_size();
    h->writers = dsm_nranks() * h->nthreads;
    h->npages = (4 + nnodes - 1) / nnodes * nnodes;
    h->monotonic = (lt_model() & (LT_SEQUENTIAL | LT_CAUSAL)) != 0;
    if ((size_t)h->writers * sizeof(uint64_t) > h->page) {
        fprintf(stderr, "mt_hammer: too many writers for one page\n");
        return -1;
    }
    h->pages = dsm_coalloc((size_t)h->npages * h->page);
    h->counters = dsm_coalloc((size_t)h->nthreads * sizeof(struct guarded));
    h->errors = dsm_coalloc((size_t)dsm_nranks() * sizeof(long));
    return h->pages && h->counters && h->errors ? 0 : -1;
}

/* Everything between dsm_init and dsm_finalize; returns the exit status. */
static int hammer_main(int argc, char **argv)
{
    struct hammer h;
    long          errors, total = 0, sum = 0;
    int           nnodes, rc;

    memset(&h, 0, sizeof(h));
    if (parse_args(argc, argv, &h) != 0)
        return 2;
    nnodes = lt_nnodes();
    if (nnodes < 0 || setup(&h, nnodes) != 0)
        return 1;
    rc = dsm_barrier();
    errors = 0;
    for (h.round = 0; rc == 0 && h.round < h.rounds; h.round++) {
        errors += run_threads(&h);
        rc = dsm_barrier();
    }
    if (rc == 0) {
        errors += check_final(&h);
        h.errors[dsm_rank()] = errors;
        rc = dsm_barrier();
    }
    if (rc != 0) {
        fprintf(stderr, "mt_hammer: rank %d: dsm_barrier: %s\n", dsm_rank(), dsm_strerror(rc));
        return 1;
    }
    if (dsm_rank() != 0)
        return errors != 0;
    for (int r = 0; r < dsm_nranks(); r++)
        total += h.errors[r];
    for (int t = 0; t < h.nthreads; t++)
        sum += h.counters[t].count;
    printf("mt_hammer: %d ranks x %d threads, %d pages, %d rounds x %ld iterations, counters "
           "sum %ld: %ld errors: %s\n", dsm_nranks(), h.nthreads, h.npages, h.rounds, h.iters,
           sum, total, total ? "FAILED" : "OK");
    return total != 0;
}

int main(int argc, char **argv)
{
    int rc = dsm_init(&argc, &argv), status;

    if (rc != 0) {
        fprintf(stderr, "mt_hammer: dsm_init: %s\n", dsm_strerror(rc));
        return 1;
    }
    status = hammer_main(argc, argv);
    rc = dsm_finalize();
    if (rc != 0) {
        fprintf(stderr, "mt_hammer: dsm_finalize: %s\n", dsm_strerror(rc));
        status = 1;
    }
    return status;
}

/*
 * mt_hammer.c - several threads per rank, and several ranks, hammer the same few pages.
 *
 * usage: mt_hammer [-t THREADS] [-i ITERS]   (defaults 4 threads, 200 iterations;
 *                                            2000 iterations with DSM_STRESS=1)
 *
 * Every thread of every rank is a "writer" w with a slot (one 64-bit word) in each of a few
 * shared pages; all slots of all writers share those pages. In iteration i a thread picks
 * page (i + t) % npages, stores i+1 into its slot there, reads its own slot back (nobody
 * else writes it), and reads every other writer's slot of that page, checking that no
 * value ever goes backwards (per-location coherence: sequential and causal models
 * guarantee it). Every fourth iteration it also increments a shared counter under a lock
 * shared by all threads of all ranks, with an "inside" flag that catches two holders at
 * once. Threads of one rank start together, so they fault on the same pages concurrently.
 * After the threads are joined and a barrier, every rank checks every slot's final value
 * and the counter. Exit 1 on any error.
 */
#include "lt_common.h"

#include <dsm/dsm.h>

#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_THREADS 16
#define LOCK_ID     77u

/* The shared counter, on a page of its own. */
struct guarded {
    volatile long count;
    volatile int  inside;
};

/* The job-wide shared state and parameters, identical in every thread. */
struct hammer {
    long            iters;
    int             nthreads, npages, writers, monotonic;
    size_t          page;
    char           *pages;   /* npages shared pages of slots */
    struct guarded *counter;
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

/* The final value writer (rank, t) leaves in page q: 1 + its last iteration on q, or 0. */
static uint64_t final_value(const struct hammer *h, int t, int q)
{
    for (long i = h->iters - 1; i >= 0; i--)
        if ((i + t) % h->npages == q)
            return (uint64_t)i + 1;
    return 0;
}

/* One locked increment; counts overlaps and lock errors into *errors. */
static void locked_increment(struct hammer *h, long *errors)
{
    if (dsm_lock(LOCK_ID) != 0) {
        (*errors)++;
        return;
    }
    if (__atomic_exchange_n(&h->counter->inside, 1, __ATOMIC_SEQ_CST) != 0) {
        fprintf(stderr, "mt_hammer: rank %d: two holders of lock %u at once\n", dsm_rank(), LOCK_ID);
        (*errors)++;
    }
    h->counter->count = h->counter->count + 1;
    __atomic_store_n(&h->counter->inside, 0, __ATOMIC_SEQ_CST);
    if (dsm_unlock(LOCK_ID) != 0)
        (*errors)++;
}

/* Read the other writers' slots of page q, checking values stay in range and never drop. */
static void check_page(struct worker *me, int q)
{
    struct hammer *h = me->h;

    for (int w = 0; w < h->writers; w++) {
        uint64_t v = __atomic_load_n(slot(h, q, w), __ATOMIC_SEQ_CST);
        uint64_t *last = &me->last[(size_t)q * (size_t)h->writers + (size_t)w];

        if (v > (uint64_t)h->iters || (h->monotonic && v < *last)) {
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

        __atomic_store_n(mine, (uint64_t)i + 1, __ATOMIC_SEQ_CST);
        if (__atomic_load_n(mine, __ATOMIC_SEQ_CST) != (uint64_t)i + 1 && me->errors++ < 5)
            fprintf(stderr, "mt_hammer: rank %d thread %d: own slot lost its value\n", dsm_rank(), me->t);
        check_page(me, q);
        if (i % 4 == 0)
            locked_increment(h, &me->errors);
    }
    return NULL;
}

/* Start the threads, join them; returns the sum of their errors (or -1 if none started). */
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

/* After the barrier: every slot and the counter hold their final values. Wrong count. */
static long check_final(const struct hammer *h)
{
    long wrong = 0, want = (long)dsm_nranks() * h->nthreads * ((h->iters + 3) / 4);

    for (int q = 0; q < h->npages; q++)
        for (int w = 0; w < h->writers; w++) {
            uint64_t v = *slot(h, q, w), e = final_value(h, w % h->nthreads, q);

            if (v != e && wrong++ < 5)
                fprintf(stderr, "mt_hammer: rank %d: page %d writer %d ends at %lu, expected %lu\n",
                        dsm_rank(), q, w, (unsigned long)v, (unsigned long)e);
        }
    if (h->counter->count != want) {
        fprintf(stderr, "mt_hammer: rank %d: counter %ld, expected %ld\n", dsm_rank(),
                h->counter->count, want);
        wrong++;
    }
    return wrong;
}

/* Parse -t and -i into h; 0 or -1 (usage printed). */
static int parse_args(int argc, char **argv, struct hammer *h)
{
    long t = 4;
    int  c;

    h->iters = lt_scaled(200, 2000);
    while ((c = getopt(argc, argv, "t:i:")) != -1) {
        if (c == 't' && lt_parse_long(optarg, 1, MAX_THREADS, &t) == 0)
            continue;
        if (c == 'i' && lt_parse_long(optarg, 1, 10000000, &h->iters) == 0)
            continue;
        fprintf(stderr, "usage: mt_hammer [-t THREADS (1..%d)] [-i ITERS]\n", MAX_THREADS);
        return -1;
    }
    h->nthreads = (int)t;
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
    h->counter = dsm_coalloc(sizeof(struct guarded));
    h->errors = dsm_coalloc((size_t)dsm_nranks() * sizeof(long));
    return h->pages && h->counter && h->errors ? 0 : -1;
}

/* Everything between dsm_init and dsm_finalize; returns the exit status. */
static int hammer_main(int argc, char **argv)
{
    struct hammer h;
    long          errors, total = 0;
    int           nnodes, rc;

    memset(&h, 0, sizeof(h));
    if (parse_args(argc, argv, &h) != 0)
        return 2;
    nnodes = lt_nnodes();
    if (nnodes < 0 || setup(&h, nnodes) != 0)
        return 1;
    rc = dsm_barrier();
    errors = rc == 0 ? run_threads(&h) : 0;
    if (rc == 0)
        rc = dsm_barrier();
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
    printf("mt_hammer: %d ranks x %d threads, %d pages, %ld iterations, counter %ld: %ld errors: %s\n",
           dsm_nranks(), h.nthreads, h.npages, h.iters, h.counter->count, total,
           total ? "FAILED" : "OK");
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

/*
 * mtbench.c - what dsm_parallel's threads cost: dsm_thread_barrier against dsm_barrier, and
 * a remote read fault taken while the other threads of the rank run.
 *
 * usage: mtbench [-r SAMPLES] [-t MAXTHREADS] [-p PAGES] [-k ROUNDS]
 *        (defaults 400, 4, 400, 8); run it with at least 2 ranks: dsmrun -n 2 -- mtbench
 *
 * Every figure is the median of per-call samples taken by thread 0 of rank 0, and the
 * samples of the figures compared are taken in ROUNDS interleaved rounds (each round does
 * a share of every figure), so that the machine's drift hits them alike.
 *
 * Barriers: dsm_barrier outside dsm_parallel (the baseline); dsm_thread_barrier with
 * T = 1, 2, 4, ... MAXTHREADS threads per rank; a pthread barrier of T threads in private
 * memory beside it (the purely local part's floor, mean per round). Then the cost of one
 * dsm_parallel call of an empty function (start, bind and join T threads), SAMPLES/ROUNDS
 * calls on each rank.
 *
 * Faults: thread 0 of rank 0 reads one word of each of PAGES fresh pages homed on the last
 * node (each read is one remote read fault: request to the home, grant with the page),
 * with (a) no other thread (the baseline), (b) T-1 other threads of the rank computing in
 * private memory, (c) T-1 other threads faulting on fresh pages of their own, homed there
 * too. Fresh pages come from a new dsm_coalloc per measurement; nothing touches them before,
 * and each thread visits its pages in a strided order that extends no scan, so the daemon
 * grants and fetches nothing ahead (apps/common/coldpage.h); thread 0 checks, untimed, that
 * each page it times is not readable yet, and a page that was fails the run.
 *
 * Rank 0 prints one line per figure: median per call or fault and the ratio to its
 * baseline. Timings are for docs/BENCHMARKS.md, never checked: the exit status says only
 * whether the DSM calls succeeded and every timed fault was one.
 */
#include <dsm/dsm.h>

#include "coldpage.h"

#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_T 64

struct opts {
    long samples, maxthreads, pages, rounds;
};

/* Samples of one figure (microseconds), gathered over the rounds. */
struct figure {
    double *v;
    long    n, cap;
};

enum sibling { SIB_NONE, SIB_COMPUTE, SIB_FAULT };

/* One fault measurement: the pages, what the siblings do, thread 0's samples. */
struct fault_run {
    char         *region; /* DSM: nnodes blocks; the last per_node pages are homed on the last node */
    long          per_node, pages;
    size_t        page;
    enum sibling  sib;
    _Atomic int   done;   /* thread 0 finished: siblings stop */
    struct coldpage_warm warm; /* thread 0's pages found readable before their timed load */
    int           probe[2]; /* thread 0: a pipe for coldpage_readable */
    struct figure *fig;
};

/* One thread-barrier measurement. */
struct bar_run {
    long           reps;
    struct figure *fig;
};

static _Atomic long g_errors;

static double now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec * 1e-3;
}

static void failed(const char *what, int rc)
{
    fprintf(stderr, "mtbench: rank %d: %s: %s\n", dsm_rank(), what, dsm_strerror(rc));
    atomic_fetch_add(&g_errors, 1);
}

static void add(struct figure *f, double us)
{
    if (f->n < f->cap)
        f->v[f->n++] = us;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

/* The q-quantile (0.5: median) of the samples, nearest rank. */
static double quantile(struct figure *f, double q)
{
    if (f->n == 0)
        return 0.0;
    qsort(f->v, (size_t)f->n, sizeof(double), cmp_double);
    return f->v[(long)(q * (double)(f->n - 1) + 0.5)];
}

static double median(struct figure *f)
{
    return quantile(f, 0.5);
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
    int c;

    *o = (struct opts){ .samples = 400, .maxthreads = 4, .pages = 400, .rounds = 8 };
    while ((c = getopt(argc, argv, "r:t:p:k:")) != -1) {
        long *dst = c == 'r' ? &o->samples : c == 't' ? &o->maxthreads : c == 'p' ? &o->pages
                  : c == 'k' ? &o->rounds : NULL;
        char *end;

        if (dst != NULL) {
            *dst = strtol(optarg, &end, 10);
            if (*end == '\0' && *dst >= 1 && *dst <= 100000 && (dst != &o->maxthreads || *dst <= MAX_T))
                continue;
        }
        fprintf(stderr, "usage: mtbench [-r SAMPLES] [-t MAXTHREADS (1..%d)] [-p PAGES] [-k ROUNDS]\n", MAX_T);
        return -1;
    }
    if (o->samples < o->rounds || o->pages < o->rounds) {
        fprintf(stderr, "mtbench: SAMPLES and PAGES must be at least ROUNDS\n");
        return -1;
    }
    return 0;
}

/* ---- barriers ---- */

static void bar_body(int tid, int nt, void *arg)
{
    struct bar_run *b = arg;
    int rc;

    (void)nt;
    if ((rc = dsm_thread_barrier()) != 0) /* start together */
        failed("dsm_thread_barrier", rc);
    for (long i = 0; i < b->reps; i++) {
        double t0 = now_us();

        if ((rc = dsm_thread_barrier()) != 0) {
            failed("dsm_thread_barrier", rc);
            return;
        }
        if (tid == 0)
            add(b->fig, now_us() - t0);
    }
}

struct pbar {
    pthread_barrier_t bar;
    long reps;
};

static void *pbar_thread(void *arg)
{
    struct pbar *p = arg;

    for (long i = 0; i < p->reps; i++)
        pthread_barrier_wait(&p->bar);
    return NULL;
}

/* Mean us per pthread_barrier_wait round of nt threads (private memory, no DSM). */
static double pthread_barrier_us(int nt, long reps)
{
    struct pbar p = { .reps = reps };
    pthread_t th[MAX_T];
    double t0, us;

    if (pthread_barrier_init(&p.bar, NULL, (unsigned)nt) != 0)
        return -1.0;
    for (int i = 1; i < nt; i++) {
        if (pthread_create(&th[i], NULL, pbar_thread, &p) != 0) {
            fprintf(stderr, "mtbench: pthread_create failed\n");
            exit(1); /* the started threads wait on the barrier for ever */
        }
    }
    t0 = now_us();
    pbar_thread(&p);
    us = (now_us() - t0) / (double)reps;
    for (int i = 1; i < nt; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&p.bar);
    return us;
}

static void barriers(const struct opts *o)
{
    long per = o->samples / o->rounds;
    int nfig = 0, rc;
    struct figure figs[8];
    double pbar[8] = { 0 }, base;

    for (int nt = 1; nt <= o->maxthreads; nt *= 2)
        nfig++;
    for (int i = 0; i <= nfig; i++)
        figs[i] = (struct figure){ .v = calloc((size_t)o->samples, sizeof(double)), .cap = o->samples };
    if ((rc = dsm_barrier()) != 0)
        failed("dsm_barrier", rc);
    for (long round = 0; round < o->rounds; round++) {
        for (long i = 0; i < per; i++) {
            double t0 = now_us();

            if ((rc = dsm_barrier()) != 0)
                failed("dsm_barrier", rc);
            add(&figs[0], now_us() - t0);
        }
        for (int k = 0, nt = 1; k < nfig; k++, nt *= 2) {
            struct bar_run b = { .reps = per, .fig = &figs[k + 1] };

            if ((rc = dsm_parallel(nt, bar_body, &b)) != 0)
                failed("dsm_parallel", rc);
            if (dsm_rank() == 0)
                pbar[k] += pthread_barrier_us(nt, per) / (double)o->rounds;
        }
    }
    base = median(&figs[0]);
    if (dsm_rank() == 0) {
        printf("mtbench: %-44s threads %2d: %9.1f us/call (median; p90 %.1f)\n", "dsm_barrier (outside dsm_parallel)",
               1, base, quantile(&figs[0], 0.9));
        for (int k = 0, nt = 1; k < nfig; k++, nt *= 2) {
            double m = median(&figs[k + 1]);

            printf("mtbench: %-44s threads %2d: %9.1f us/call  x%.2f dsm_barrier  (p90 %.1f)\n",
                   "dsm_thread_barrier", nt, m, m / base, quantile(&figs[k + 1], 0.9));
            printf("mtbench: %-44s threads %2d: %9.2f us/call (mean)\n", "pthread_barrier (private memory, no DSM)", nt,
                   pbar[k]);
        }
        fflush(stdout);
    }
    for (int i = 0; i <= nfig; i++)
        free(figs[i].v);
}

/* ---- dsm_parallel itself ---- */

static void empty_body(int tid, int nt, void *arg)
{
    (void)tid;
    (void)nt;
    (void)arg;
}

/* Median us of dsm_parallel(T, empty) on rank 0: starting, binding and joining the threads. */
static void parallel_cost(const struct opts *o)
{
    struct figure f = { .v = calloc((size_t)o->samples, sizeof(double)), .cap = o->samples };
    int rc;

    for (int nt = 1; nt <= o->maxthreads; nt *= 2) {
        f.n = 0;
        for (long i = 0; i < o->samples / o->rounds; i++) {
            double t0 = now_us();

            if ((rc = dsm_parallel(nt, empty_body, NULL)) != 0)
                failed("dsm_parallel", rc);
            add(&f, now_us() - t0);
        }
        if (dsm_rank() == 0)
            printf("mtbench: %-44s threads %2d: %9.1f us/call (median; p90 %.1f)\n", "dsm_parallel of an empty function",
                   nt, median(&f), quantile(&f, 0.9));
    }
    fflush(stdout);
    free(f.v);
}

/* ---- faults ---- */

/* Page k of the last per_node pages, homed on the last node. */
static volatile char *fault_page(const struct fault_run *f, long k)
{
    return f->region + ((size_t)(dsm_nranks() - 1) * (size_t)f->per_node + (size_t)k) * f->page;
}

static void fault_body(int tid, int nt, void *arg)
{
    struct fault_run *f = arg;
    volatile uint64_t spin = 0;
    long sum = 0;
    size_t stride = coldpage_stride((size_t)f->pages); /* no scan: nothing granted ahead */

    (void)nt;
    if (tid == 0) {
        for (long i = 0; i < f->pages; i++) {
            volatile char *p = fault_page(f, (long)((size_t)i * stride % (size_t)f->pages));
            double t0;

            if (coldpage_readable(f->probe, p) != 0) /* untimed: it must fault */
                coldpage_warm_add(&f->warm, (size_t)i * stride % (size_t)f->pages);
            t0 = now_us();
            sum += *p;
            add(f->fig, now_us() - t0);
        }
        atomic_store(&f->done, 1);
    } else if (f->sib == SIB_COMPUTE) {
        while (!atomic_load_explicit(&f->done, memory_order_relaxed))
            spin = spin * 6364136223846793005ull + 1442695040888963407ull;
    } else if (f->sib == SIB_FAULT) {
        /* each sibling its own stretch of pages after thread 0's, until thread 0 is done */
        for (long i = 0; i < f->pages && !atomic_load(&f->done); i++)
            sum += *fault_page(f, f->pages * tid + (long)((size_t)i * stride % (size_t)f->pages));
    }
    if (sum != 0) /* fresh pages read as zeroes */
        atomic_fetch_add(&g_errors, 1);
}

/* One fault measurement on every rank (collective allocation, barriers); samples on rank 0. */
static void fault_case(long pages, int nt, enum sibling sib, struct figure *fig)
{
    struct fault_run f = { .per_node = pages * nt, .pages = pages, .page = dsm_page_size(), .sib = sib, .fig = fig };
    int rc, nr = dsm_nranks();

    f.region = dsm_coalloc((size_t)nr * (size_t)f.per_node * f.page);
    if (f.region == NULL) {
        failed("dsm_coalloc", DSM_ENOSPACE);
        return;
    }
    if ((rc = dsm_barrier()) != 0)
        failed("dsm_barrier", rc);
    if (dsm_rank() == 0 && pipe(f.probe) != 0) {
        perror("mtbench: pipe");
        failed("pipe", DSM_ESYS);
    } else if (dsm_rank() == 0) {
        if ((rc = dsm_parallel(sib == SIB_NONE ? 1 : nt, fault_body, &f)) != 0)
            failed("dsm_parallel", rc);
        close(f.probe[0]);
        close(f.probe[1]);
        if (f.warm.n != 0) { /* the figure would time loads, not faults (dsm_parallel joined) */
            coldpage_warm_report(&f.warm, "mtbench", (size_t)pages, "load");
            atomic_fetch_add(&g_errors, 1);
        }
    }
    if ((rc = dsm_barrier()) != 0)
        failed("dsm_barrier", rc);
    dsm_cofree(f.region);
}

static void faults(const struct opts *o)
{
    static const char *const what[] = { "remote read fault, no other thread",
                                        "remote read fault, other threads compute",
                                        "remote read fault, other threads fault too" };
    long per = o->pages / o->rounds;
    int nfig = 1;
    struct figure figs[16];
    double base;

    for (int nt = 2; nt <= o->maxthreads; nt *= 2)
        nfig += 2;
    for (int i = 0; i < nfig; i++)
        figs[i] = (struct figure){ .v = calloc((size_t)o->pages, sizeof(double)), .cap = o->pages };
    for (long round = 0; round < o->rounds; round++) {
        int k = 1;

        fault_case(per, 1, SIB_NONE, &figs[0]);
        for (int nt = 2; nt <= o->maxthreads; nt *= 2)
            for (int sib = SIB_COMPUTE; sib <= SIB_FAULT; sib++)
                fault_case(per, nt, (enum sibling)sib, &figs[k++]);
    }
    base = median(&figs[0]);
    if (dsm_rank() == 0) {
        int k = 1;

        printf("mtbench: %-44s threads %2d: %9.1f us/fault (median; p90 %.1f)\n", what[0], 1, base,
               quantile(&figs[0], 0.9));
        for (int nt = 2; nt <= o->maxthreads; nt *= 2) {
            for (int sib = SIB_COMPUTE; sib <= SIB_FAULT; sib++, k++) {
                double m = median(&figs[k]);

                printf("mtbench: %-44s threads %2d: %9.1f us/fault  x%.2f alone  (p90 %.1f)\n", what[sib], nt, m,
                       m / base, quantile(&figs[k], 0.9));
            }
        }
        fflush(stdout);
    }
    for (int i = 0; i < nfig; i++)
        free(figs[i].v);
}

int main(int argc, char **argv)
{
    struct opts o;
    int rc;

    if (parse_opts(argc, argv, &o) != 0)
        return 2;
    if ((rc = dsm_init(&argc, &argv)) != 0) {
        fprintf(stderr, "mtbench: dsm_init: %s\n", dsm_strerror(rc));
        return 1;
    }
    if (dsm_rank() == 0)
        printf("mtbench: %d ranks, %s consistency, %ld samples, %ld pages, %ld rounds\n", dsm_nranks(),
               dsm_consistency(), o.samples, o.pages, o.rounds);
    barriers(&o);
    parallel_cost(&o);
    if (dsm_nranks() >= 2)
        faults(&o);
    else if (dsm_rank() == 0)
        printf("mtbench: faults need 2 ranks on 2 nodes (dsmrun -n 2)\n");
    if ((rc = dsm_finalize()) != 0)
        failed("dsm_finalize", rc);
    return atomic_load(&g_errors) != 0;
}

/*
 * mtstencil.c - a multithreaded integer stencil in DSM memory, verified against a sequential run.
 *
 * Every rank runs dsm_parallel with T threads (or T and T+1 alternately with --uneven, so
 * the ranks' thread counts differ). The N x N grid of 32-bit cells lives in two coalloc'd
 * buffers; the interior rows are cut into one block per rank and that block into one
 * stripe per thread, so the threads of a rank fault on their neighbours' pages, their own
 * rank's and other ranks', at the same time. Each step a thread computes its stripe from
 * the other buffer, adds its stripe's sum to sums[step] under lock (step % NLOCKS), which
 * every thread of every rank contends for (threads of one rank too), and meets the others
 * at dsm_thread_barrier. The arithmetic is exact (unsigned wrap-around), so a sequential
 * run in private memory gives the same grid bit for bit and the same per-step sums.
 *
 * Every rank checks the whole final grid and every step's sum against its own sequential
 * run; rank 0 prints one result line and the time of the steps. Exit status 0 only when
 * every rank verified and no DSM call failed.
 *
 * usage: mtstencil [-n N] [-i STEPS] [-t THREADS] [--uneven]   (defaults 256, 20, 2)
 */
#include <dsm/dsm.h>

#include <getopt.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NLOCKS    3
#define LOCK_BASE 500u

struct opts {
    long n, steps, threads;
    int  uneven;
};

/* What every thread of the rank shares: the job's DSM buffers and the rank's error count. */
struct job {
    long      n, steps;
    uint32_t *grid[2];   /* DSM: the two buffers */
    uint64_t *sums;      /* DSM: [steps] sums of all new cells per step */
    int      *verdict;   /* DSM: [nranks] 0 = verified */
    long      lo, hi;    /* this rank's interior rows */
    double    secs;      /* thread 0's time of the steps */
    _Atomic long errors; /* failed DSM calls on this rank */
};

static int parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    long  v = strtol(s, &end, 10);

    if (*s == '\0' || *end != '\0' || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
    static const struct option longopts[] = { { "uneven", no_argument, NULL, 'u' }, { NULL, 0, NULL, 0 } };
    int c;

    *o = (struct opts){ .n = 256, .steps = 20, .threads = 2 };
    while ((c = getopt_long(argc, argv, "n:i:t:", longopts, NULL)) != -1) {
        if ((c == 'n' && parse_long(optarg, 4, 8192, &o->n) == 0) ||
            (c == 'i' && parse_long(optarg, 0, 100000, &o->steps) == 0) ||
            (c == 't' && parse_long(optarg, 1, 256, &o->threads) == 0))
            continue;
        if (c == 'u') {
            o->uneven = 1;
            continue;
        }
        fprintf(stderr, "usage: mtstencil [-n N (4..8192)] [-i STEPS] [-t THREADS (1..256)] [--uneven]\n");
        return -1;
    }
    return 0;
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Initial cell (i, j): a fixed pattern, different on the border. */
static uint32_t init_cell(long i, long j)
{
    return (uint32_t)(i * 2654435761u) ^ (uint32_t)(j * 40503u) ^ 0x9e3779b9u;
}

/* Rows [lo, hi) of both buffers get their initial values. */
static void init_rows(uint32_t *g0, uint32_t *g1, long n, long lo, long hi)
{
    for (long i = lo; i < hi; i++)
        for (long j = 0; j < n; j++)
            g0[i * n + j] = g1[i * n + j] = init_cell(i, j);
}

/* The new value of an interior cell at step s: exact, order-free arithmetic. */
static uint32_t cell_step(const uint32_t *src, long n, long i, long j, long s)
{
    uint32_t v = src[(i - 1) * n + j] + src[(i + 1) * n + j] + src[i * n + j - 1] + src[i * n + j + 1] +
                 3u * src[i * n + j] + (uint32_t)s;

    return v ^ (v >> 7);
}

/* Step s on interior rows [lo, hi) from src into dst; returns the sum of the new cells. */
static uint64_t step_rows(const uint32_t *src, uint32_t *dst, long n, long lo, long hi, long s)
{
    uint64_t sum = 0;

    for (long i = lo; i < hi; i++)
        for (long j = 1; j < n - 1; j++)
            sum += dst[i * n + j] = cell_step(src, n, i, j, s);
    return sum;
}

/* Stripe [*lo, *hi) of thread t of nt over rows [a, b). */
static void stripe(long a, long b, int t, int nt, long *lo, long *hi)
{
    *lo = a + (b - a) * t / nt;
    *hi = a + (b - a) * (t + 1) / nt;
}

/* Count a failed DSM call of this rank, saying which. */
static void failed(struct job *j, const char *what, int rc)
{
    fprintf(stderr, "mtstencil: rank %d: %s: %s\n", dsm_rank(), what, dsm_strerror(rc));
    atomic_fetch_add(&j->errors, 1);
}

/* Add `sum` to sums[s] under the step's lock. */
static void add_sum(struct job *j, long s, uint64_t sum)
{
    uint32_t id = LOCK_BASE + (uint32_t)(s % NLOCKS);
    int rc = dsm_lock(id);

    if (rc != 0) {
        failed(j, "dsm_lock", rc);
        return;
    }
    j->sums[s] += sum;
    rc = dsm_unlock(id);
    if (rc != 0)
        failed(j, "dsm_unlock", rc);
}

/* dsm_parallel body: initialise the stripe (first touch), then the steps. */
static void worker(int tid, int nt, void *arg)
{
    struct job *j = arg;
    long lo, hi, n = j->n;
    double t0 = 0.0;
    int rc;

    stripe(j->lo, j->hi, tid, nt, &lo, &hi);
    init_rows(j->grid[0], j->grid[1], n, lo, hi);
    if (j->lo == 1 && tid == 0)
        init_rows(j->grid[0], j->grid[1], n, 0, 1);
    if (j->hi == n - 1 && tid == nt - 1)
        init_rows(j->grid[0], j->grid[1], n, n - 1, n);
    if ((rc = dsm_thread_barrier()) != 0)
        failed(j, "dsm_thread_barrier", rc);
    if (tid == 0)
        t0 = now_s();
    for (long s = 0; s < j->steps; s++) {
        add_sum(j, s, step_rows(j->grid[s % 2], j->grid[(s + 1) % 2], n, lo, hi, s));
        if ((rc = dsm_thread_barrier()) != 0) {
            failed(j, "dsm_thread_barrier", rc);
            return; /* the others are stuck or gone too: the job is failing */
        }
    }
    if (tid == 0)
        j->secs = now_s() - t0;
}

/* The sequential run: final grid into *out (malloc'd) and per-step sums into sums. 0 or -1. */
static int sequential(long n, long steps, uint32_t **out, uint64_t *sums)
{
    uint32_t *g[2] = { malloc((size_t)(n * n) * sizeof(uint32_t)), malloc((size_t)(n * n) * sizeof(uint32_t)) };

    if (g[0] == NULL || g[1] == NULL) {
        free(g[0]);
        free(g[1]);
        return -1;
    }
    init_rows(g[0], g[1], n, 0, n);
    for (long s = 0; s < steps; s++)
        sums[s] = step_rows(g[s % 2], g[(s + 1) % 2], n, 1, n - 1, s);
    *out = g[steps % 2];
    free(g[(steps + 1) % 2]);
    return 0;
}

/* 0 when the DSM result equals the sequential one, else 1 (the first difference printed). */
static int check(const struct job *j)
{
    long n = j->n, cells = n * n;
    uint64_t *want_sums = calloc((size_t)j->steps + 1, sizeof(uint64_t));
    uint32_t *want = NULL;
    const uint32_t *got = j->grid[j->steps % 2];
    int bad = 0;

    if (want_sums == NULL || sequential(n, j->steps, &want, want_sums) != 0) {
        fprintf(stderr, "mtstencil: rank %d: out of memory for the sequential run\n", dsm_rank());
        free(want_sums);
        return 1;
    }
    for (long k = 0; k < cells && !bad; k++) {
        if (got[k] != want[k]) {
            fprintf(stderr, "mtstencil: rank %d: cell (%ld,%ld) is %" PRIu32 ", expected %" PRIu32 "\n",
                    dsm_rank(), k / n, k % n, got[k], want[k]);
            bad = 1;
        }
    }
    for (long s = 0; s < j->steps && !bad; s++) {
        if (j->sums[s] != want_sums[s]) {
            fprintf(stderr, "mtstencil: rank %d: step %ld sum is %" PRIu64 ", expected %" PRIu64 "\n",
                    dsm_rank(), s, j->sums[s], want_sums[s]);
            bad = 1;
        }
    }
    free(want);
    free(want_sums);
    return bad;
}

/* A grid fingerprint for the result line. */
static uint64_t checksum(const uint32_t *g, long n)
{
    uint64_t h = 1469598103934665603ull;

    for (long k = 0; k < n * n; k++)
        h = (h ^ g[k]) * 1099511628211ull;
    return h;
}

/* Verify, gather the verdicts, print on rank 0; returns this rank's exit status. */
static int report(struct job *j, const struct opts *o, int nt)
{
    int r = dsm_rank(), nr = dsm_nranks(), bad = 0, rc;

    j->verdict[r] = check(j) || atomic_load(&j->errors) != 0;
    if ((rc = dsm_barrier()) != 0) {
        fprintf(stderr, "mtstencil: rank %d: dsm_barrier: %s\n", r, dsm_strerror(rc));
        return 1;
    }
    for (int k = 0; k < nr; k++)
        bad += j->verdict[k] != 0;
    if (r == 0) {
        printf("mtstencil: grid %ld steps %ld ranks %d threads %ld%s: checksum %016" PRIx64 ", %s\n", o->n,
               o->steps, nr, o->threads, o->uneven ? " (+1 on odd ranks)" : "",
               checksum(j->grid[j->steps % 2], j->n), bad ? "FAILED" : "verified OK");
        printf("mtstencil: rank 0: %d threads, %.6f s for %ld steps (%.1f us/step)\n", nt, j->secs, o->steps,
               o->steps ? j->secs * 1e6 / (double)o->steps : 0.0);
        fflush(stdout);
    }
    return j->verdict[r] != 0 || bad != 0;
}

int main(int argc, char **argv)
{
    struct opts o;
    struct job j = { 0 };
    size_t bytes;
    int rc, status = 1, nt, r, nr;

    if (parse_opts(argc, argv, &o) != 0)
        return 2;
    if ((rc = dsm_init(&argc, &argv)) != 0) {
        fprintf(stderr, "mtstencil: dsm_init: %s\n", dsm_strerror(rc));
        return 1;
    }
    r = dsm_rank();
    nr = dsm_nranks();
    nt = (int)o.threads + (o.uneven && r % 2);
    bytes = (size_t)(o.n * o.n) * sizeof(uint32_t);
    j.n = o.n;
    j.steps = o.steps;
    j.lo = 1 + (o.n - 2) * r / nr;
    j.hi = 1 + (o.n - 2) * (r + 1) / nr;
    j.grid[0] = dsm_coalloc(bytes);
    j.grid[1] = dsm_coalloc(bytes);
    j.sums = dsm_coalloc((size_t)(o.steps + 1) * sizeof(uint64_t));
    j.verdict = dsm_coalloc((size_t)nr * sizeof(int));
    if (j.grid[0] == NULL || j.grid[1] == NULL || j.sums == NULL || j.verdict == NULL) {
        fprintf(stderr, "mtstencil: dsm_coalloc failed for a %ld x %ld grid\n", o.n, o.n);
        goto out;
    }
    rc = dsm_parallel(nt, worker, &j);
    if (rc != 0)
        failed(&j, "dsm_parallel", rc);
    status = report(&j, &o, nt);
out:
    if ((rc = dsm_finalize()) != 0) {
        fprintf(stderr, "mtstencil: dsm_finalize: %s\n", dsm_strerror(rc));
        status = 1;
    }
    return status;
}

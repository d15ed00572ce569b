/*
 * jacobi.c - 2-D Jacobi stencil on an N x N grid in DSM memory, verified bitwise.
 *
 * Two grids are allocated with dsm_coalloc. Rank r sweeps a contiguous block of rows (block
 * home placement puts most of those rows' pages on r's own node), and a dsm_barrier
 * separates sweeps, so each sweep only reads the neighbours' boundary rows remotely. At the
 * end every rank recomputes the whole run privately in ordinary memory with the same sweep
 * function and compares every cell bit for bit; rank 0 gathers the verdicts and prints one
 * result line. Exit status 0 only when every rank verified the grid.
 *
 * With --native T the same sweeps run on T pthreads in ordinary shared memory (no DSM, no
 * daemon; a pthread barrier between sweeps), timed and verified the same way: the baseline
 * that a DSM run with T ranks is compared with.
 *
 * usage: jacobi [-n N] [-i ITERS] [--native T]      (defaults: N = 512, ITERS = 50)
 */
#include <dsm/dsm.h>

#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct opts {
    long n;
    long iters;
    long native;  /* threads of a native run; 0: a DSM run */
};

/* The first cell where the DSM grid and the private grid differ. */
struct mismatch {
    long   i, j;
    double got, want;
};

/* Parse a positive long in [lo, hi] from `s` into *out; 0 on success, -1 otherwise. */
static int parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    long  v = strtol(s, &end, 10);

    if (*s == '\0' || *end != '\0' || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

/* Parse -n, -i and --native into *o; 0 on success, -1 (usage printed) on bad input. */
static int parse_opts(int argc, char **argv, struct opts *o)
{
    static const struct option longopts[] = {{"native", required_argument, NULL, 'T'},
                                             {NULL, 0, NULL, 0}};
    int c;

    o->n = 512;
    o->iters = 50;
    o->native = 0;
    while ((c = getopt_long(argc, argv, "n:i:", longopts, NULL)) != -1) {
        if (c == 'n' && parse_long(optarg, 3, 16384, &o->n) == 0)
            continue;
        if (c == 'i' && parse_long(optarg, 0, 1000000, &o->iters) == 0)
            continue;
        if (c == 'T' && parse_long(optarg, 1, 1024, &o->native) == 0)
            continue;
        fprintf(stderr, "usage: jacobi [-n N (3..16384)] [-i ITERS] [--native THREADS]\n");
        return -1;
    }
    return 0;
}

/* Seconds on the monotonic clock. */
static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Initial value of cell (i, j): a hot top edge, cold other edges, a fixed pattern inside. */
static double init_cell(long n, long i, long j)
{
    if (i == 0)
        return 1.0;
    if (i == n - 1 || j == 0 || j == n - 1)
        return 0.0;
    return (double)((i * 31 + j * 17) % 97) / 97.0;
}

/* Write the initial values of rows [lo, hi) of the n x n grid g. */
static void init_rows(double *g, long n, long lo, long hi)
{
    for (long i = lo; i < hi; i++)
        for (long j = 0; j < n; j++)
            g[i * n + j] = init_cell(n, i, j);
}

/*
 * One Jacobi sweep of rows [lo, hi) from src into dst (n x n): interior cells get the mean
 * of their four neighbours, boundary cells are copied. Both the DSM run and the private
 * check call this same function, so their results agree bit for bit.
 */
static void sweep_rows(const double *src, double *dst, long n, long lo, long hi)
{
    for (long i = lo; i < hi; i++) {
        const double *up = src + (i - 1) * n, *row = src + i * n, *down = src + (i + 1) * n;
        double       *out = dst + i * n;

        if (i == 0 || i == n - 1) {
            memcpy(out, row, (size_t)n * sizeof(double));
            continue;
        }
        out[0] = row[0];
        for (long j = 1; j < n - 1; j++)
            out[j] = 0.25 * ((up[j] + down[j]) + (row[j - 1] + row[j + 1]));
        out[n - 1] = row[n - 1];
    }
}

/* Run `iters` sweeps privately in ordinary memory; returns the final grid (malloc'd) or NULL. */
static double *private_run(long n, long iters)
{
    double *a = malloc((size_t)(n * n) * sizeof(double));
    double *b = malloc((size_t)(n * n) * sizeof(double));

    if (a == NULL || b == NULL) {
        free(a);
        free(b);
        return NULL;
    }
    init_rows(a, n, 0, n);
    for (long it = 0; it < iters; it++) {
        double *t;

        sweep_rows(a, b, n, 0, n);
        t = a;
        a = b;
        b = t;
    }
    free(b);
    return a;
}

/* Compare grids bitwise; 0 when equal, else 1 with the first difference in *m. */
static int compare_grids(const double *got, const double *want, long n, struct mismatch *m)
{
    for (long k = 0; k < n * n; k++) {
        if (memcmp(&got[k], &want[k], sizeof(double)) != 0) {
            m->i = k / n;
            m->j = k % n;
            m->got = got[k];
            m->want = want[k];
            return 1;
        }
    }
    return 0;
}

/* Sum of all cells in row-major order (a fingerprint printed with the result). */
static double checksum(const double *g, long n)
{
    double s = 0.0;

    for (long k = 0; k < n * n; k++)
        s += g[k];
    return s;
}

/*
 * The parallel part: initialise own rows of `a`, then `iters` sweeps with a barrier after
 * each. Returns the grid holding the result, or NULL if a barrier failed. *secs gets the
 * time of the sweeps.
 */
static double *dsm_run(double *a, double *b, long n, long iters, double *secs)
{
    int  r = dsm_rank(), nr = dsm_nranks();
    long lo = n * r / nr, hi = n * (r + 1) / nr;
    int  rc;

    init_rows(a, n, lo, hi);
    rc = dsm_barrier();
    double t0 = now_s();
    for (long it = 0; rc == 0 && it < iters; it++) {
        double *t;

        sweep_rows(a, b, n, lo, hi);
        rc = dsm_barrier();
        t = a;
        a = b;
        b = t;
    }
    *secs = now_s() - t0;
    if (rc != 0) {
        fprintf(stderr, "jacobi: rank %d: dsm_barrier: %s\n", r, dsm_strerror(rc));
        return NULL;
    }
    return a;
}

/*
 * Verify the DSM result on this rank, publish the verdict in verdict[rank], and on rank 0
 * print the result line once every rank has published. Returns this rank's exit status.
 */
static int verify_and_report(const double *grid, long n, long iters, double secs, int *verdict)
{
    int             r = dsm_rank(), nr = dsm_nranks(), bad = 0, rc;
    struct mismatch m;
    double         *want = private_run(n, iters);

    if (want == NULL) {
        fprintf(stderr, "jacobi: rank %d: out of memory for the private check\n", r);
        verdict[r] = 2;
    } else if (compare_grids(grid, want, n, &m)) {
        fprintf(stderr, "jacobi: rank %d: cell (%ld,%ld) is %.17g (%a), expected %.17g (%a)\n", r,
                m.i, m.j, m.got, m.got, m.want, m.want);
        verdict[r] = 1;
    } else {
        verdict[r] = 0;
    }
    free(want);
    rc = dsm_barrier();
    if (rc != 0) {
        fprintf(stderr, "jacobi: rank %d: dsm_barrier: %s\n", r, dsm_strerror(rc));
        return 1;
    }
    for (int k = 0; k < nr; k++)
        bad += verdict[k] != 0;
    if (r == 0) {
        printf("jacobi: grid %ld iters %ld ranks %d: checksum %.17g, %s", n, iters, nr,
               checksum(grid, n), bad ? "FAILED" : "verified OK");
        if (bad)
            printf(" (%d of %d ranks saw a mismatch)", bad, nr);
        printf("\njacobi: wall %.6f s for %ld sweeps (%.1f us/sweep), consistency %s\n", secs,
               iters, iters ? secs * 1e6 / (double)iters : 0.0, dsm_consistency());
        fflush(stdout);
    }
    return verdict[r] != 0 || bad != 0;
}

/* One pthread of the native run: its rows, the grids, the common barrier, its time. */
struct native_worker {
    double            *a, *b;
    long               n, iters, lo, hi;
    pthread_barrier_t *bar;
    double             secs;
};

/* Thread body: what a rank does in dsm_run, with a pthread barrier for dsm_barrier. */
static void *native_thread(void *arg)
{
    struct native_worker *w = arg;
    double               *a = w->a, *b = w->b, t0;

    init_rows(a, w->n, w->lo, w->hi);
    pthread_barrier_wait(w->bar);
    t0 = now_s();
    for (long it = 0; it < w->iters; it++) {
        double *t;

        sweep_rows(a, b, w->n, w->lo, w->hi);
        pthread_barrier_wait(w->bar);
        t = a;
        a = b;
        b = t;
    }
    w->secs = now_s() - t0;
    return NULL;
}

/*
 * Run the sweeps on `nt` threads over grids a and b; 0, or -1 if a thread could not start
 * (then the process exits: the threads that did start wait on the barrier for ever).
 * *secs: thread 0's time of the sweeps, measured as rank 0's is.
 */
static int native_sweeps(double *a, double *b, const struct opts *o, long nt, double *secs)
{
    struct native_worker *w = calloc((size_t)nt, sizeof(*w));
    pthread_t            *tid = calloc((size_t)nt, sizeof(*tid));
    pthread_barrier_t     bar;
    int                   err = -1;

    if (w == NULL || tid == NULL || pthread_barrier_init(&bar, NULL, (unsigned)nt) != 0)
        goto out;
    for (long t = 0; t < nt; t++) {
        w[t] = (struct native_worker){.a = a, .b = b, .n = o->n, .iters = o->iters,
                                      .lo = o->n * t / nt, .hi = o->n * (t + 1) / nt, .bar = &bar};
        err = pthread_create(&tid[t], NULL, native_thread, &w[t]);
        if (err != 0) {
            fprintf(stderr, "jacobi: pthread_create: %s\n", strerror(err));
            _exit(1);
        }
    }
    for (long t = 0; t < nt; t++)
        pthread_join(tid[t], NULL);
    pthread_barrier_destroy(&bar);
    *secs = w[0].secs;
    err = 0;
out:
    free(tid);
    free(w);
    return err;
}

/* The native run on o->native threads, verified like a DSM run; returns the exit status. */
static int native_main(const struct opts *o)
{
    size_t          cells = (size_t)(o->n * o->n);
    double         *a = calloc(cells, sizeof(double)), *b = calloc(cells, sizeof(double));
    double         *want = NULL, secs = 0.0;
    const double   *grid = o->iters % 2 ? b : a;
    struct mismatch m;
    int             bad = 1;

    if (a == NULL || b == NULL || native_sweeps(a, b, o, o->native, &secs) != 0 ||
        (want = private_run(o->n, o->iters)) == NULL) {
        fprintf(stderr, "jacobi: native run: out of memory or no barrier\n");
        goto out;
    }
    bad = compare_grids(grid, want, o->n, &m);
    if (bad)
        fprintf(stderr, "jacobi: native: cell (%ld,%ld) is %.17g (%a), expected %.17g (%a)\n",
                m.i, m.j, m.got, m.got, m.want, m.want);
    printf("jacobi: grid %ld iters %ld threads %ld: checksum %.17g, %s\n", o->n, o->iters,
           o->native, checksum(grid, o->n), bad ? "FAILED" : "verified OK");
    printf("jacobi: wall %.6f s for %ld sweeps (%.1f us/sweep), native pthreads\n", secs,
           o->iters, o->iters ? secs * 1e6 / (double)o->iters : 0.0);
    fflush(stdout);
out:
    free(want);
    free(b);
    free(a);
    return bad;
}

int main(int argc, char **argv)
{
    struct opts o;
    double     *a, *b, *grid, secs = 0.0;
    int        *verdict;
    int         rc, status = 1;

    /* Options first: a native run must not start (or need) a daemon. */
    if (parse_opts(argc, argv, &o) != 0)
        return 2;
    if (o.native > 0)
        return native_main(&o);
    rc = dsm_init(&argc, &argv);
    if (rc != 0) {
        fprintf(stderr, "jacobi: dsm_init: %s\n", dsm_strerror(rc));
        return 1;
    }
    a = dsm_coalloc((size_t)(o.n * o.n) * sizeof(double));
    b = dsm_coalloc((size_t)(o.n * o.n) * sizeof(double));
    verdict = dsm_coalloc((size_t)dsm_nranks() * sizeof(int));
    if (a == NULL || b == NULL || verdict == NULL) {
        fprintf(stderr, "jacobi: dsm_coalloc failed for a %ld x %ld grid\n", o.n, o.n);
        goto out;
    }
    grid = dsm_run(a, b, o.n, o.iters, &secs);
    if (grid != NULL)
        status = verify_and_report(grid, o.n, o.iters, secs, verdict);
out:
    rc = dsm_finalize();
    if (rc != 0) {
        fprintf(stderr, "jacobi: dsm_finalize: %s\n", dsm_strerror(rc));
        status = 1;
    }
    return status;
}

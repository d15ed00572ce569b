/*
 * matmul.c - dense matrix product C = A x B in DSM memory, verified exactly.
 *
 * A, B and C (n x n doubles) are allocated with dsm_coalloc. Each rank fills its block of
 * rows of A and B, a barrier publishes them, each rank computes its block of rows of C
 * (reading all of B remotely), and after another barrier every rank recomputes the product
 * privately and compares all of C. The entries are small integers, so every partial sum is
 * an exactly representable integer and the comparison is exact (tolerance 0). Rank 0
 * gathers the verdicts and prints one result line; exit status 0 only if all ranks agree.
 *
 * With --native T the same product runs on T pthreads in ordinary shared memory (no DSM, no
 * daemon; pthread barriers where the DSM run has dsm_barrier), timed and verified the same
 * way: the baseline that a DSM run with T ranks is compared with.
 *
 * usage: matmul [-n N] [--native T]      (default N = 256)
 */
#include <dsm/dsm.h>

#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Parse a long in [lo, hi] from `s` into *out; 0 on success, -1 otherwise. */
static int parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    long  v = strtol(s, &end, 10);

    if (*s == '\0' || *end != '\0' || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

/* Parse -n into *n and --native into *native (0 if absent); 0, or -1 (usage printed). */
static int parse_opts(int argc, char **argv, long *n, long *native)
{
    static const struct option longopts[] = {{"native", required_argument, NULL, 'T'},
                                             {NULL, 0, NULL, 0}};
    int c;

    *n = 256;
    *native = 0;
    while ((c = getopt_long(argc, argv, "n:", longopts, NULL)) != -1) {
        if (c == 'n' && parse_long(optarg, 1, 4096, n) == 0)
            continue;
        if (c == 'T' && parse_long(optarg, 1, 1024, native) == 0)
            continue;
        fprintf(stderr, "usage: matmul [-n N (1..4096)] [--native THREADS]\n");
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

/* Entries in [-5, 5]: with n <= 4096 every sum stays below 2^53, so doubles are exact. */
static double a_entry(long i, long k) { return (double)((i * 7 + k * 3) % 11 - 5); }
static double b_entry(long k, long j) { return (double)((k * 5 + j * 13 + 1) % 11 - 5); }

/* Fill rows [lo, hi) of A and B. */
static void fill_rows(double *a, double *b, long n, long lo, long hi)
{
    for (long i = lo; i < hi; i++)
        for (long j = 0; j < n; j++) {
            a[i * n + j] = a_entry(i, j);
            b[i * n + j] = b_entry(i, j);
        }
}

/* Rows [lo, hi) of C = A x B (i-k-j order: B is read row by row). */
static void multiply_rows(const double *a, const double *b, double *c, long n, long lo, long hi)
{
    for (long i = lo; i < hi; i++) {
        double *ci = c + i * n;

        for (long j = 0; j < n; j++)
            ci[j] = 0.0;
        for (long k = 0; k < n; k++) {
            double aik = a[i * n + k];
            const double *bk = b + k * n;

            for (long j = 0; j < n; j++)
                ci[j] += aik * bk[j];
        }
    }
}

/*
 * Check C against a product computed privately from the entry formulas (not from the DSM
 * copies of A and B, so a corrupted input shows up too). Returns 0 if equal, 1 on a
 * mismatch (printed), 2 if out of memory.
 */
static int verify(const double *c, long n)
{
    size_t  bytes = (size_t)(n * n) * sizeof(double);
    double *pa = malloc(bytes), *pb = malloc(bytes), *pc = malloc(bytes);
    int     res = 0;

    if (pa == NULL || pb == NULL || pc == NULL) {
        fprintf(stderr, "matmul: rank %d: out of memory for the private check\n", dsm_rank());
        res = 2;
        goto out;
    }
    fill_rows(pa, pb, n, 0, n);
    multiply_rows(pa, pb, pc, n, 0, n);
    for (long k = 0; k < n * n; k++) {
        if (c[k] != pc[k]) {
            fprintf(stderr, "matmul: rank %d: C[%ld][%ld] is %.17g, expected %.17g\n",
                    dsm_rank(), k / n, k % n, c[k], pc[k]);
            res = 1;
            break;
        }
    }
out:
    free(pc);
    free(pb);
    free(pa);
    return res;
}

/* Sum of all entries of C (an integer, printed as a fingerprint). */
static double checksum(const double *c, long n)
{
    double s = 0.0;

    for (long k = 0; k < n * n; k++)
        s += c[k];
    return s;
}

/* Fill, barrier, multiply own rows, barrier; 0 or a DSM error code. *secs: compute time. */
static int dsm_product(double *a, double *b, double *c, long n, double *secs)
{
    int    r = dsm_rank(), nr = dsm_nranks(), rc;
    long   lo = n * r / nr, hi = n * (r + 1) / nr;
    double t0;

    fill_rows(a, b, n, lo, hi);
    rc = dsm_barrier();
    if (rc != 0)
        return rc;
    t0 = now_s();
    multiply_rows(a, b, c, n, lo, hi);
    rc = dsm_barrier();
    *secs = now_s() - t0;
    return rc;
}

/* Verify, publish verdict[rank], barrier, and print the result on rank 0; exit status. */
static int verify_and_report(const double *c, long n, double secs, int *verdict)
{
    int r = dsm_rank(), nr = dsm_nranks(), bad = 0, rc;

    verdict[r] = verify(c, n);
    rc = dsm_barrier();
    if (rc != 0) {
        fprintf(stderr, "matmul: rank %d: dsm_barrier: %s\n", r, dsm_strerror(rc));
        return 1;
    }
    for (int k = 0; k < nr; k++)
        bad += verdict[k] != 0;
    if (r == 0) {
        printf("matmul: n %ld ranks %d: checksum %.17g, %s (exact comparison, tolerance 0)\n", n,
               nr, checksum(c, n), bad ? "FAILED" : "verified OK");
        printf("matmul: wall %.6f s for the product (%.3f GFLOP/s), consistency %s\n", secs,
               secs > 0 ? 2.0 * (double)n * (double)n * (double)n / secs * 1e-9 : 0.0,
               dsm_consistency());
        fflush(stdout);
    }
    return verdict[r] != 0 || bad != 0;
}

/* One pthread of the native run: its rows, the matrices, the common barrier, its time. */
struct native_worker {
    double            *a, *b, *c;
    long               n, lo, hi;
    pthread_barrier_t *bar;
    double             secs;
};

/* Thread body: what a rank does in dsm_product, with pthread barriers for dsm_barrier. */
static void *native_thread(void *arg)
{
    struct native_worker *w = arg;
    double                t0;

    fill_rows(w->a, w->b, w->n, w->lo, w->hi);
    pthread_barrier_wait(w->bar);
    t0 = now_s();
    multiply_rows(w->a, w->b, w->c, w->n, w->lo, w->hi);
    pthread_barrier_wait(w->bar);
    w->secs = now_s() - t0;
    return NULL;
}

/*
 * The product on `nt` threads; 0, or -1 when out of memory (a thread that cannot start
 * ends the process: the others would wait on the barrier for ever). *secs: thread 0's
 * time of the product, measured as rank 0's is.
 */
static int native_product(double *a, double *b, double *c, long n, long nt, double *secs)
{
    struct native_worker *w = calloc((size_t)nt, sizeof(*w));
    pthread_t            *tid = calloc((size_t)nt, sizeof(*tid));
    pthread_barrier_t     bar;
    int                   err = -1;

    if (w == NULL || tid == NULL || pthread_barrier_init(&bar, NULL, (unsigned)nt) != 0)
        goto out;
    for (long t = 0; t < nt; t++) {
        w[t] = (struct native_worker){.a = a, .b = b, .c = c, .n = n, .lo = n * t / nt,
                                      .hi = n * (t + 1) / nt, .bar = &bar};
        err = pthread_create(&tid[t], NULL, native_thread, &w[t]);
        if (err != 0) {
            fprintf(stderr, "matmul: pthread_create: %s\n", strerror(err));
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

/* The native run on `nt` threads, verified like a DSM run; returns the exit status. */
static int native_main(long n, long nt)
{
    size_t  cells = (size_t)(n * n);
    double *a = calloc(cells, sizeof(double)), *b = calloc(cells, sizeof(double));
    double *c = calloc(cells, sizeof(double)), secs = 0.0;
    int     bad = 1;

    if (a == NULL || b == NULL || c == NULL || native_product(a, b, c, n, nt, &secs) != 0) {
        fprintf(stderr, "matmul: native run: out of memory or no barrier\n");
        goto out;
    }
    bad = verify(c, n) != 0;
    printf("matmul: n %ld threads %ld: checksum %.17g, %s (exact comparison, tolerance 0)\n", n,
           nt, checksum(c, n), bad ? "FAILED" : "verified OK");
    printf("matmul: wall %.6f s for the product (%.3f GFLOP/s), native pthreads\n", secs,
           secs > 0 ? 2.0 * (double)n * (double)n * (double)n / secs * 1e-9 : 0.0);
    fflush(stdout);
out:
    free(c);
    free(b);
    free(a);
    return bad;
}

int main(int argc, char **argv)
{
    long    n, native;
    double *a, *b, *c, secs = 0.0;
    int    *verdict;
    int     rc, status = 1;

    /* Options first: a native run must not start (or need) a daemon. */
    if (parse_opts(argc, argv, &n, &native) != 0)
        return 2;
    if (native > 0)
        return native_main(n, native);
    rc = dsm_init(&argc, &argv);
    if (rc != 0) {
        fprintf(stderr, "matmul: dsm_init: %s\n", dsm_strerror(rc));
        return 1;
    }
    a = dsm_coalloc((size_t)(n * n) * sizeof(double));
    b = dsm_coalloc((size_t)(n * n) * sizeof(double));
    c = dsm_coalloc((size_t)(n * n) * sizeof(double));
    verdict = dsm_coalloc((size_t)dsm_nranks() * sizeof(int));
    if (a == NULL || b == NULL || c == NULL || verdict == NULL) {
        fprintf(stderr, "matmul: dsm_coalloc failed for n = %ld\n", n);
        goto out;
    }
    rc = dsm_product(a, b, c, n, &secs);
    if (rc != 0) {
        fprintf(stderr, "matmul: rank %d: dsm_barrier: %s\n", dsm_rank(), dsm_strerror(rc));
        goto out;
    }
    status = verify_and_report(c, n, secs, verdict);
out:
    rc = dsm_finalize();
    if (rc != 0) {
        fprintf(stderr, "matmul: dsm_finalize: %s\n", dsm_strerror(rc));
        status = 1;
    }
    return status;
}

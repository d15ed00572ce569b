/*
 * falseshare.c - a result matrix whose rows are interleaved across ranks on shared pages:
 * heavy false sharing, verified bitwise.
 *
 * Two ROWS x COLS matrices of 64-bit words live in DSM memory (dsm_coalloc). Row r belongs
 * to rank r % nranks, and a row is much smaller than a page, so every page holds rows of
 * every rank. A phase computes the destination matrix from the source matrix: each rank
 * seeds its rows from the source (its own row and the next row, which another rank wrote
 * in the previous phase: true sharing across a barrier), then makes PASSES more passes over
 * all its rows, each updating every word in place. A dsm_barrier ends the phase and the
 * matrices swap. Every pass touches every page while the other ranks write their rows of
 * the same pages:
 *   - sequential (single writer): each pass faults pages back from the other writers, so
 *     pages ping-pong between ranks many times per phase;
 *   - release (multiple writers): the first write of a phase twins the page, the rest of
 *     the phase runs locally, and the barrier merges each rank's diff at the home.
 * At the end every rank recomputes the whole run privately (the same functions on ordinary
 * memory) and compares every word; rank 0 gathers the verdicts and prints the result. Exit
 * status 0 only when every rank verified the matrix.
 *
 * With --native T the same computation runs on T pthreads in ordinary shared memory (no
 * DSM, no daemon), with a pthread barrier per phase, and is verified the same way.
 *
 * usage: falseshare [-r ROWS] [-c COLS] [-p PHASES] [-k PASSES] [--native T]
 *        (defaults: 512 rows of 64 words = 8 rows per 4 KiB page, 8 phases, 4 passes)
 */
#include <dsm/dsm.h>

#include <getopt.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct opts {
    long rows, cols, phases, passes;
    long native;  /* threads of the native run; 0: a DSM run */
};

/* One worker's share of a run: worker w of nw owns the rows r with r % nw == w. */
struct share {
    uint64_t *m[2];
    long      rows, cols, phases, passes;
    int       w, nw;
};

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

/* Parse the options into *o; 0 on success, -1 (usage printed) on bad input. */
static int parse_opts(int argc, char **argv, struct opts *o)
{
    static const struct option longopts[] = {{"native", required_argument, NULL, 'T'},
                                             {NULL, 0, NULL, 0}};
    int c;

    *o = (struct opts){.rows = 512, .cols = 64, .phases = 8, .passes = 4, .native = 0};
    while ((c = getopt_long(argc, argv, "r:c:p:k:", longopts, NULL)) != -1) {
        if (c == 'r' && parse_long(optarg, 1, 1L << 20, &o->rows) == 0)
            continue;
        if (c == 'c' && parse_long(optarg, 1, 1L << 16, &o->cols) == 0)
            continue;
        if (c == 'p' && parse_long(optarg, 0, 1000000, &o->phases) == 0)
            continue;
        if (c == 'k' && parse_long(optarg, 0, 1000000, &o->passes) == 0)
            continue;
        if (c == 'T' && parse_long(optarg, 1, 1024, &o->native) == 0)
            continue;
        fprintf(stderr, "usage: falseshare [-r ROWS] [-c COLS] [-p PHASES] [-k PASSES] "
                        "[--native THREADS]\n");
        return -1;
    }
    if (optind != argc) {
        fprintf(stderr, "falseshare: unexpected argument '%s'\n", argv[optind]);
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

/* A 64-bit mixing step (splitmix64's finaliser): every input bit changes the output. */
static uint64_t mix(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xBF58476D1CE4E5B9ULL;
    x ^= x >> 27;
    x *= 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

/* Initial value of word (r, j): never zero, so a page nobody wrote cannot pass. */
static uint64_t init_word(long r, long j) { return mix((uint64_t)r << 32 | (uint64_t)j) | 1; }

/* Write the initial values of worker w's rows of m. */
static void init_rows(const struct share *s, uint64_t *m)
{
    for (long r = s->w; r < s->rows; r += s->nw)
        for (long j = 0; j < s->cols; j++)
            m[r * s->cols + j] = init_word(r, j);
}

/*
 * One phase of worker w: seed its rows of dst from its row and the next row of src, then
 * `passes` in-place passes over all its rows. Every run (DSM, native, private check) calls
 * this, so their results agree bit for bit whatever the number of workers.
 */
static void phase_rows(const struct share *s, const uint64_t *src, uint64_t *dst, long phase)
{
    long c = s->cols;

    for (long r = s->w; r < s->rows; r += s->nw) {
        const uint64_t *own = src + r * c, *next = src + ((r + 1) % s->rows) * c;

        for (long j = 0; j < c; j++)
            dst[r * c + j] = mix(own[j] ^ (next[j] << 1) ^ (uint64_t)phase);
    }
    for (long k = 0; k < s->passes; k++)
        for (long r = s->w; r < s->rows; r += s->nw)
            for (long j = 0; j < c; j++)
                dst[r * c + j] = mix(dst[r * c + j] + (uint64_t)k);
}

/* The whole run on one worker in private memory; the final matrix (malloc'd) or NULL. */
static uint64_t *private_run(const struct opts *o)
{
    size_t    n = (size_t)(o->rows * o->cols);
    uint64_t *a = malloc(n * sizeof(uint64_t)), *b = malloc(n * sizeof(uint64_t));
    struct share s = {.m = {a, b}, .rows = o->rows, .cols = o->cols, .phases = o->phases,
                      .passes = o->passes, .w = 0, .nw = 1};

    if (a == NULL || b == NULL) {
        free(a);
        free(b);
        return NULL;
    }
    init_rows(&s, a);
    for (long p = 0; p < o->phases; p++)
        phase_rows(&s, s.m[p % 2], s.m[(p + 1) % 2], p);
    free(s.m[(o->phases + 1) % 2]);
    return s.m[o->phases % 2];
}

/* Compare the run's matrix with the private one; 0 if equal, else 1 (first word printed). */
static int compare(const uint64_t *got, const uint64_t *want, const struct opts *o,
                   const char *who)
{
    for (long k = 0; k < o->rows * o->cols; k++) {
        if (got[k] != want[k]) {
            fprintf(stderr, "falseshare: %s: word (%ld,%ld) is %#llx, expected %#llx\n", who,
                    k / o->cols, k % o->cols, (unsigned long long)got[k],
                    (unsigned long long)want[k]);
            return 1;
        }
    }
    return 0;
}

/* XOR of all words (a fingerprint printed with the result). */
static uint64_t checksum(const uint64_t *m, const struct opts *o)
{
    uint64_t x = 0;

    for (long k = 0; k < o->rows * o->cols; k++)
        x ^= mix(x + m[k]);
    return x;
}

/* Print the two result lines; `who` is "ranks N" or "threads N", `model` the memory. */
static void print_result(const struct opts *o, const char *who, uint64_t sum, int bad,
                         double secs, const char *model)
{
    printf("falseshare: rows %ld cols %ld phases %ld passes %ld %s: checksum %016llx, %s\n",
           o->rows, o->cols, o->phases, o->passes, who, (unsigned long long)sum,
           bad ? "FAILED" : "verified OK");
    printf("falseshare: wall %.6f s for %ld phases (%.1f us/phase), %s\n", secs, o->phases,
           o->phases ? secs * 1e6 / (double)o->phases : 0.0, model);
    fflush(stdout);
}

/* ---- DSM run ------------------------------------------------------------------------- */

/* Initialise, then every phase with a barrier after it; 0 or a DSM error. *secs: phases. */
static int dsm_phases(struct share *s, double *secs)
{
    int    rc;
    double t0;

    init_rows(s, s->m[0]);
    rc = dsm_barrier();
    t0 = now_s();
    for (long p = 0; rc == 0 && p < s->phases; p++) {
        phase_rows(s, s->m[p % 2], s->m[(p + 1) % 2], p);
        rc = dsm_barrier();
    }
    *secs = now_s() - t0;
    if (rc != 0)
        fprintf(stderr, "falseshare: rank %d: dsm_barrier: %s\n", s->w, dsm_strerror(rc));
    return rc;
}

/* Verify on this rank, publish verdict[rank], barrier, report on rank 0; exit status. */
static int dsm_verify(const struct share *s, const struct opts *o, double secs, int *verdict)
{
    const uint64_t *got = s->m[o->phases % 2];
    uint64_t       *want = private_run(o);
    int             bad = 0, rc;
    char            who[32];

    snprintf(who, sizeof(who), "rank %d", s->w);
    if (want == NULL)
        fprintf(stderr, "falseshare: rank %d: out of memory for the private check\n", s->w);
    verdict[s->w] = want == NULL ? 2 : compare(got, want, o, who);
    free(want);
    rc = dsm_barrier();
    if (rc != 0) {
        fprintf(stderr, "falseshare: rank %d: dsm_barrier: %s\n", s->w, dsm_strerror(rc));
        return 1;
    }
    for (int k = 0; k < s->nw; k++)
        bad += verdict[k] != 0;
    if (s->w == 0) {
        char model[64];

        snprintf(who, sizeof(who), "ranks %d", s->nw);
        snprintf(model, sizeof(model), "consistency %s", dsm_consistency());
        print_result(o, who, checksum(got, o), bad, secs, model);
        if (bad)
            printf("falseshare: %d of %d ranks saw a mismatch\n", bad, s->nw);
    }
    return verdict[s->w] != 0 || bad != 0;
}

/* Everything between dsm_init and dsm_finalize; returns the exit status. */
static int dsm_main(const struct opts *o)
{
    size_t bytes = (size_t)(o->rows * o->cols) * sizeof(uint64_t);
    struct share s = {.rows = o->rows, .cols = o->cols, .phases = o->phases,
                      .passes = o->passes, .w = dsm_rank(), .nw = dsm_nranks()};
    int   *verdict;
    double secs = 0.0;

    s.m[0] = dsm_coalloc(bytes);
    s.m[1] = dsm_coalloc(bytes);
    verdict = dsm_coalloc((size_t)s.nw * sizeof(int));
    if (s.m[0] == NULL || s.m[1] == NULL || verdict == NULL) {
        fprintf(stderr, "falseshare: dsm_coalloc failed for %ld x %ld words\n", o->rows, o->cols);
        return 1;
    }
    if (dsm_phases(&s, &secs) != 0)
        return 1;
    return dsm_verify(&s, o, secs, verdict);
}

/* ---- native run ---------------------------------------------------------------------- */

/* One pthread of the native run: its share, the common barrier, its result. */
struct native_worker {
    struct share       s;
    pthread_barrier_t *bar;
    double             secs;
};

/* Thread body: the same phases as a rank, with a pthread barrier in place of dsm_barrier. */
static void *native_thread(void *arg)
{
    struct native_worker *nw = arg;
    struct share         *s = &nw->s;
    double                t0;

    init_rows(s, s->m[0]);
    pthread_barrier_wait(nw->bar);
    t0 = now_s();
    for (long p = 0; p < s->phases; p++) {
        phase_rows(s, s->m[p % 2], s->m[(p + 1) % 2], p);
        pthread_barrier_wait(nw->bar);
    }
    nw->secs = now_s() - t0;
    return NULL;
}

/* Start `n` workers on the matrices of `tmpl`; returns how many started. */
static long native_start(struct native_worker *w, pthread_t *tid, long n,
                         const struct share *tmpl, pthread_barrier_t *bar)
{
    for (long t = 0; t < n; t++) {
        int err;

        w[t] = (struct native_worker){.s = *tmpl, .bar = bar};
        w[t].s.w = (int)t;
        w[t].s.nw = (int)n;
        err = pthread_create(&tid[t], NULL, native_thread, &w[t]);
        if (err != 0) {
            fprintf(stderr, "falseshare: pthread_create: %s\n", strerror(err));
            return t;
        }
    }
    return n;
}

/* The native run on o->native threads, verified; returns the exit status. */
static int native_main(const struct opts *o)
{
    long                  n = o->native, started = 0;
    size_t                words = (size_t)(o->rows * o->cols);
    struct share          tmpl = {.m = {calloc(words, 8), calloc(words, 8)}, .rows = o->rows,
                                  .cols = o->cols, .phases = o->phases, .passes = o->passes};
    struct native_worker *w = calloc((size_t)n, sizeof(*w));
    pthread_t            *tid = calloc((size_t)n, sizeof(*tid));
    uint64_t             *want = NULL;
    pthread_barrier_t     bar;
    int                   status = 1;
    char                  who[32];

    if (tmpl.m[0] == NULL || tmpl.m[1] == NULL || w == NULL || tid == NULL)
        goto out_mem;
    if (pthread_barrier_init(&bar, NULL, (unsigned)n) != 0)
        goto out_mem;
    started = native_start(w, tid, n, &tmpl, &bar);
    if (started < n) {
        /* The barrier counts n threads: those that started would wait forever. */
        fprintf(stderr, "falseshare: only %ld of %ld threads started\n", started, n);
        _exit(1);
    }
    for (long t = 0; t < n; t++)
        pthread_join(tid[t], NULL);
    pthread_barrier_destroy(&bar);
    want = private_run(o);
    if (want == NULL)
        goto out_mem;
    status = compare(tmpl.m[o->phases % 2], want, o, "native");
    snprintf(who, sizeof(who), "threads %ld", n);
    print_result(o, who, checksum(tmpl.m[o->phases % 2], o), status, w[0].secs,
                 "native pthreads");
    goto out;
out_mem:
    fprintf(stderr, "falseshare: out of memory for the native run\n");
out:
    free(want);
    free(tid);
    free(w);
    free(tmpl.m[1]);
    free(tmpl.m[0]);
    return status;
}

int main(int argc, char **argv)
{
    struct opts o;
    int         rc, status;

    if (parse_opts(argc, argv, &o) != 0)
        return 2;
    if (o.native > 0)
        return native_main(&o);
    rc = dsm_init(&argc, &argv);
    if (rc != 0) {
        fprintf(stderr, "falseshare: dsm_init: %s\n", dsm_strerror(rc));
        return 1;
    }
    status = dsm_main(&o);
    rc = dsm_finalize();
    if (rc != 0) {
        fprintf(stderr, "falseshare: dsm_finalize: %s\n", dsm_strerror(rc));
        status = 1;
    }
    return status;
}

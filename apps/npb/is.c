/*
 * is.c - NAS Parallel Benchmarks kernel IS (integer sort), written from the NPB
 * specification: 2^K keys in [0, 2^B) from the NPB generator (seed 314159265, multiplier
 * 5^13, each key the scaled sum of four numbers) are ranked ten times, two keys changed
 * before each ranking; five test keys' ranks must match the specification's published
 * values (partial verification), and the final full sort must be in order (full
 * verification): 5 x 10 + 1 checks, as the specification counts them.
 *
 * Sharing pattern: all-to-all. Each member histograms its own slice of the keys into its
 * own row of a shared table; after a barrier each member adds one range of key values
 * across every row (reading a column block of every other member's row), and member 0
 * turns the totals into ranks. The final sort scatters every member's keys across the
 * whole output array: many writers per page (false sharing by design).
 *
 * usage: is [-c S|W|A] [--native T]        (default class S: 2^16 keys below 2^11)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "npb_rand.h"
#include "team.h"

#define IS_A 1220703125ull   /* 5^13 */
#define IS_SEED 314159265ull
#define ITERATIONS 10
#define TESTS 5

struct is_class {
    char name;
    int keys_log2, max_log2;
    long index[TESTS], rank[TESTS];   /* the specification's test keys and their ranks */
};

static const struct is_class classes[] = {
    { 'S', 16, 11, { 48427, 17148, 23627, 62548, 4431 }, { 0, 18, 346, 64917, 65463 } },
    { 'W', 20, 16, { 357773, 934767, 875723, 898999, 404505 }, { 1249, 11698, 1039987, 1043896, 1048018 } },
    { 'A', 23, 19, { 2112377, 662041, 5336171, 3642833, 4250760 }, { 104, 17523, 123928, 8288932, 8388264 } },
};

/* The rank the specification expects for test key i in iteration it (its shifts per class). */
static long expected_rank(const struct is_class *c, int i, long it)
{
    switch (c->name) {
    case 'S': return i <= 2 ? c->rank[i] + it : c->rank[i] - it;
    case 'W': return i < 2 ? c->rank[i] + (it - 2) : c->rank[i] - it;
    default:  return i <= 2 ? c->rank[i] + (it - 1) : c->rank[i] - (it - 1);
    }
}

struct is_shared {
    int32_t *keys, *sorted, *hist, *total, *start;  /* hist: n rows of max; start: exclusive prefix */
    int *verdict;
};

/* Keys [lo, hi) of the sequence. */
static void make_keys(int32_t *keys, long lo, long hi, long max)
{
    uint64_t seed = npb_mul46(npb_pow46(IS_A, 4 * (uint64_t)lo), IS_SEED);
    long k = max / 4;

    for (long i = lo; i < hi; i++) {
        double x = npb_randlc(&seed, IS_A);

        x += npb_randlc(&seed, IS_A);
        x += npb_randlc(&seed, IS_A);
        x += npb_randlc(&seed, IS_A);
        keys[i] = (int32_t)((double)k * x);
    }
}

/* One ranking: histogram own keys, add up own value range, member 0 checks the tests.
 * Returns the checks passed (member 0), or -1 when a barrier failed. */
static int rank_keys(struct team *t, const struct is_class *c, struct is_shared *s, long it)
{
    long nkeys = 1L << c->keys_log2, max = 1L << c->max_log2;
    long lo = nkeys * t->id / t->n, hi = nkeys * (t->id + 1) / t->n;
    long vlo = max * t->id / t->n, vhi = max * (t->id + 1) / t->n;
    int32_t *row = s->hist + (size_t)t->id * (size_t)max, test_vals[TESTS];
    int passed = 0;

    if (t->id == 0) {
        s->keys[it] = (int32_t)it;
        s->keys[it + ITERATIONS] = (int32_t)(max - it);
        for (int i = 0; i < TESTS; i++)
            test_vals[i] = s->keys[c->index[i]];
    }
    if (team_barrier(t) != 0)
        return -1;
    memset(row, 0, (size_t)max * sizeof(*row));
    for (long i = lo; i < hi; i++)
        row[s->keys[i]]++;
    if (team_barrier(t) != 0)
        return -1;
    for (long v = vlo; v < vhi; v++) {
        int32_t sum = 0;

        for (int m = 0; m < t->n; m++)
            sum += s->hist[(size_t)m * (size_t)max + (size_t)v];
        s->total[v] = sum;
    }
    if (team_barrier(t) != 0)
        return -1;
    if (t->id == 0) {
        int32_t acc = 0;

        for (long v = 0; v < max; v++) {
            s->start[v] = acc;  /* keys below v: the rank of a key v */
            acc += s->total[v];
        }
        for (int i = 0; i < TESTS; i++) {
            long k = test_vals[i];

            if (0 < k && k <= nkeys - 1) {
                long got = s->start[k - 1] + s->total[k - 1]; /* keys <= k - 1 */

                if (got == expected_rank(c, i, it))
                    passed++;
                else
                    fprintf(stderr, "is: iteration %ld: test key %d (value %ld) has rank %ld, expected %ld\n", it,
                            i, k, got, expected_rank(c, i, it));
            }
        }
    }
    return passed;
}

/* The full sort: every member scatters its keys to their places; member 0 checks order
 * and counts. Returns 1 when sorted, 0 if not, -1 when a barrier failed. */
static int full_sort(struct team *t, const struct is_class *c, struct is_shared *s)
{
    long nkeys = 1L << c->keys_log2, max = 1L << c->max_log2;
    long lo = nkeys * t->id / t->n, hi = nkeys * (t->id + 1) / t->n;
    int32_t *next = malloc((size_t)max * sizeof(int32_t));
    int ok = 1;

    if (team_barrier(t) != 0 || next == NULL) {
        free(next);
        return -1;
    }
    for (long v = 0; v < max; v++) {
        next[v] = s->start[v];
        for (int m = 0; m < t->id; m++)
            next[v] += s->hist[(size_t)m * (size_t)max + (size_t)v];
    }
    for (long i = lo; i < hi; i++)
        s->sorted[next[s->keys[i]]++] = s->keys[i];
    free(next);
    if (team_barrier(t) != 0)
        return -1;
    if (t->id == 0) {
        for (long i = 1; i < nkeys && ok; i++)
            ok = s->sorted[i - 1] <= s->sorted[i];
        for (long v = 0; v < max && ok; v++) /* and a permutation: each value as often as counted */
            ok = s->total[v] == 0 || (s->sorted[s->start[v]] == v && s->sorted[s->start[v] + s->total[v] - 1] == v);
        if (!ok)
            fprintf(stderr, "is: the full sort is not in order\n");
    }
    return ok;
}

static int is_body(struct team *t, void *arg)
{
    const struct is_class *c = arg;
    long nkeys = 1L << c->keys_log2, max = 1L << c->max_log2, passed = 0;
    struct is_shared s;
    double t0, secs;
    int r;

    s.keys = team_alloc(t, (size_t)nkeys * sizeof(int32_t));
    s.sorted = team_alloc(t, (size_t)nkeys * sizeof(int32_t));
    s.hist = team_alloc(t, (size_t)t->n * (size_t)max * sizeof(int32_t));
    s.total = team_alloc(t, (size_t)max * sizeof(int32_t));
    s.start = team_alloc(t, (size_t)max * sizeof(int32_t));
    s.verdict = team_alloc(t, sizeof(int));
    if (!s.keys || !s.sorted || !s.hist || !s.total || !s.start || !s.verdict) {
        fprintf(stderr, "is: member %d: out of memory\n", t->id);
        return 1;
    }
    make_keys(s.keys, nkeys * t->id / t->n, nkeys * (t->id + 1) / t->n, max);
    if (team_barrier(t) != 0) /* member 0 reads test keys from every slice */
        return 1;
    t0 = team_now();
    for (long it = 1; it <= ITERATIONS; it++) {
        if ((r = rank_keys(t, c, &s, it)) < 0)
            return 1;
        passed += r;
    }
    if ((r = full_sort(t, c, &s)) < 0)
        return 1;
    secs = team_now() - t0;
    if (t->id == 0) {
        passed += r;
        *s.verdict = passed != TESTS * ITERATIONS + 1;
        printf("is: class %c (2^%d keys below 2^%d), %d members (%s): %ld of %d checks passed; wall %.6f s\n", c->name,
               c->keys_log2, c->max_log2, t->n, team_model(t), passed, TESTS * ITERATIONS + 1, secs);
        printf("is: VERIFICATION %s\n", *s.verdict ? "FAILED" : "SUCCESSFUL");
        fflush(stdout);
    }
    return team_verdict(t, s.verdict);
}

int main(int argc, char **argv)
{
    long native = team_native_arg(&argc, argv);
    int k = team_class_arg(argc, argv, "SWA");

    if (native < 0 || k < 0) {
        fprintf(stderr, "usage: is [-c S|W|A] [--native THREADS]\n");
        return 2;
    }
    return team_main(&argc, &argv, "is", native, is_body, (void *)&classes[k]);
}

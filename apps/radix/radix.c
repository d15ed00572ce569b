/*
 * radix.c - parallel LSD radix sort of 32-bit keys (SPLASH-2 style), verified as a sorted
 * permutation against a private qsort of the same keys.
 *
 * Four passes of 8-bit digits. In each pass a member counts the digits of its slice of
 * the source array into its own row of a shared histogram; after a barrier every member
 * computes where its keys of each digit go (the keys of smaller digits, then those of the
 * same digit in lower members) and scatters its slice into the destination array; a
 * barrier ends the pass and source and destination trade places.
 *
 * Sharing pattern: the histogram is all-to-all (every member reads every row); the scatter
 * writes every part of the destination from every member: pages with several writers
 * (false sharing at run boundaries) in every pass.
 *
 * usage: radix [-n KEYS] [-s SEED] [--native T]      (defaults: 1048576 keys, seed 1)
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "team.h"

#define DIGITS 256
#define PASSES 4

struct radix_run {
    long n;
    uint64_t seed;
};

/* Key i of the input: splitmix64 of (seed, i), so any member can make any slice. */
static uint32_t key_at(uint64_t seed, uint64_t i)
{
    uint64_t z = seed * 0x9e3779b97f4a7c15ull + (i + 1) * 0xbf58476d1ce4e5b9ull;

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return (uint32_t)((z ^ (z >> 31)) >> 32);
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

    return x < y ? -1 : x > y;
}

static int radix_body(struct team *t, void *arg)
{
    const struct radix_run *run = arg;
    long n = run->n, lo = n * t->id / t->n, hi = n * (t->id + 1) / t->n;
    uint32_t *a = team_alloc(t, (size_t)n * sizeof(uint32_t)), *b = team_alloc(t, (size_t)n * sizeof(uint32_t));
    uint32_t *hist = team_alloc(t, (size_t)t->n * DIGITS * sizeof(uint32_t));
    int *verdict = team_alloc(t, sizeof(int));
    double t0, secs;

    if (!a || !b || !hist || !verdict) {
        fprintf(stderr, "radix: member %d: out of memory\n", t->id);
        return 1;
    }
    for (long i = lo; i < hi; i++)
        a[i] = key_at(run->seed, (uint64_t)i);
    if (team_barrier(t) != 0)
        return 1;
    t0 = team_now();
    for (int pass = 0; pass < PASSES; pass++) {
        uint32_t *row = hist + (size_t)t->id * DIGITS, next[DIGITS], *tmp;
        int shift = 8 * pass;

        memset(row, 0, DIGITS * sizeof(uint32_t));
        for (long i = lo; i < hi; i++)
            row[(a[i] >> shift) & 0xff]++;
        if (team_barrier(t) != 0)
            return 1;
        for (uint32_t d = 0, base = 0; d < DIGITS; d++) {
            next[d] = base;
            for (int m = 0; m < t->n; m++) {
                if (m < t->id)
                    next[d] += hist[(size_t)m * DIGITS + d];
                base += hist[(size_t)m * DIGITS + d];
            }
        }
        for (long i = lo; i < hi; i++)
            b[next[(a[i] >> shift) & 0xff]++] = a[i];
        if (team_barrier(t) != 0) /* also: every row read before the next pass clears it */
            return 1;
        tmp = a;
        a = b;
        b = tmp;
    }
    secs = team_now() - t0;
    if (t->id == 0) {
        uint32_t *want = malloc((size_t)n * sizeof(uint32_t));
        long bad = -1;

        if (want == NULL) {
            fprintf(stderr, "radix: out of memory for the check\n");
            *verdict = 1;
        } else {
            for (long i = 0; i < n; i++)
                want[i] = key_at(run->seed, (uint64_t)i);
            qsort(want, (size_t)n, sizeof(uint32_t), cmp_u32);
            for (long i = 0; i < n && bad < 0; i++)
                if (a[i] != want[i])
                    bad = i;
            *verdict = bad >= 0;
            if (bad >= 0)
                fprintf(stderr, "radix: key %ld is %u, expected %u\n", bad, a[bad], want[bad]);
            free(want);
        }
        printf("radix: %ld keys (seed %llu), %d members (%s): %s; wall %.6f s\n", n, (unsigned long long)run->seed,
               t->n, team_model(t), *verdict ? "FAILED" : "verified OK", secs);
        fflush(stdout);
    }
    return team_verdict(t, verdict);
}

int main(int argc, char **argv)
{
    long native = team_native_arg(&argc, argv);
    struct radix_run run = { 1L << 20, 1 };
    int c;

    while (native >= 0 && (c = getopt(argc, argv, "n:s:")) != -1) {
        if (c == 'n' && (run.n = atol(optarg)) >= 1 && run.n <= (1L << 28))
            continue;
        if (c == 's') {
            run.seed = strtoull(optarg, NULL, 10);
            continue;
        }
        native = -1;
    }
    if (native < 0 || optind != argc) {
        fprintf(stderr, "usage: radix [-n KEYS (1..2^28)] [-s SEED] [--native THREADS]\n");
        return 2;
    }
    return team_main(&argc, &argv, "radix", native, radix_body, &run);
}

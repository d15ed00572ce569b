/*
 * cache_walk.c - a shared array far larger than a node's page cache (dsmrun --cache-size),
 * walked sequentially and at random, written and read, every value checked.
 *
 * usage: cache_walk [-m MIB] [-s SEED] [-k READS]
 *
 * The array (MIB MiB of 64-bit words, collective, homes in blocks over the nodes) goes
 * through four phases, a barrier after each:
 *   1. rank r writes every word of the pages p with p % nranks == r: v1(i);
 *   2. every rank reads the whole array in order and checks v1 (each node walks all of it);
 *   3. rank r visits its pages in a random order and rewrites one word in four, v2(i);
 *   4. every rank reads READS random words anywhere and checks v1 or v2; rank 0 then sums
 *      the whole array and compares with the sum computed here.
 * Values are pure functions of (seed, word), so the check is independent of the runtime.
 * Output: "cache_walk: M MiB, N ranks: OK" from rank 0, or FAILED lines naming the rank,
 * phase, word, value seen and expected; exit 1 on any wrong value.
 */
#include "lt_common.h"

#include <dsm/dsm.h>

#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#define MAX_REPORT 8

static uint64_t seed_g;

static uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static uint64_t v1(uint64_t i) { return mix(seed_g ^ (i * 2 + 1)); }
static uint64_t v2(uint64_t i) { return mix(seed_g ^ (i * 2 + 2)) | 1; }
static int rewritten(uint64_t i) { return (mix(seed_g + i) & 3) == 0; }
static uint64_t expect(uint64_t i) { return rewritten(i) ? v2(i) : v1(i); }

static int bad;

static void check(int rank, int phase, uint64_t i, uint64_t got, uint64_t want)
{
    if (got == want)
        return;
    if (bad++ < MAX_REPORT)
        printf("cache_walk: FAILED rank %d phase %d word %" PRIu64 " (page %" PRIu64 "): %#" PRIx64 ", want %#" PRIx64
               "\n", rank, phase, i, i * 8 / dsm_page_size(), got, want);
}

int main(int argc, char **argv)
{
    long mib = 32, seed = 1, reads = 200000;
    int c, rank, n;
    uint64_t words, wpp, npg, sum = 0, want_sum = 0, *perm, s;
    volatile uint64_t *a;

    if (dsm_init(&argc, &argv) != 0)
        return 2;
    while ((c = getopt(argc, argv, "m:s:k:")) != -1) {
        long *dst = c == 'm' ? &mib : c == 's' ? &seed : c == 'k' ? &reads : NULL;

        if (dst == NULL || lt_parse_long(optarg, c == 'm' ? 1 : 0, c == 'm' ? 65536 : 1L << 40, dst) != 0) {
            fprintf(stderr, "usage: cache_walk [-m MIB] [-s SEED] [-k READS]\n");
            dsm_finalize();
            return 2;
        }
    }
    seed_g = mix((uint64_t)seed);
    rank = dsm_rank();
    n = dsm_nranks();
    words = (uint64_t)mib << 17;
    wpp = dsm_page_size() / 8;
    npg = words / wpp;
    a = dsm_coalloc(words * 8);
    perm = malloc(npg * sizeof(*perm));
    if (a == NULL || perm == NULL) {
        fprintf(stderr, "cache_walk: cannot allocate %ld MiB\n", mib);
        dsm_abort(2);
    }

    for (uint64_t p = (uint64_t)rank; p < npg; p += (uint64_t)n)
        for (uint64_t i = p * wpp; i < (p + 1) * wpp; i++)
            a[i] = v1(i);
    dsm_barrier();

    for (uint64_t i = 0; i < words; i++)
        check(rank, 2, i, a[i], v1(i));
    dsm_barrier();

    /* rank's pages in a random order (Fisher-Yates over its share) */
    {
        uint64_t k = 0;

        for (uint64_t p = (uint64_t)rank; p < npg; p += (uint64_t)n)
            perm[k++] = p;
        s = seed_g ^ (uint64_t)rank;
        for (uint64_t j = k; j > 1; j--) {
            uint64_t r = lt_rand(&s) % j, t = perm[j - 1];

            perm[j - 1] = perm[r];
            perm[r] = t;
        }
        for (uint64_t j = 0; j < k; j++)
            for (uint64_t i = perm[j] * wpp; i < (perm[j] + 1) * wpp; i++)
                if (rewritten(i))
                    a[i] = v2(i);
    }
    dsm_barrier();

    s = seed_g ^ ((uint64_t)rank << 32) ^ 0x5555;
    for (long k = 0; k < reads; k++) {
        uint64_t i = lt_rand(&s) % words;

        check(rank, 4, i, a[i], expect(i));
    }
    if (rank == 0) {
        for (uint64_t i = 0; i < words; i++) {
            sum += a[i];
            want_sum += expect(i);
        }
        if (sum != want_sum && bad++ < MAX_REPORT)
            printf("cache_walk: FAILED rank 0: sum %#" PRIx64 ", want %#" PRIx64 "\n", sum, want_sum);
    }
    dsm_barrier();
    if (rank == 0 && bad == 0)
        printf("cache_walk: %ld MiB, %d ranks: OK\n", mib, n);
    free(perm);
    dsm_finalize();
    return bad ? 1 : 0;
}

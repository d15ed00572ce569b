/*
 * drf_check.c - a randomized, data-race-free checker: whatever the model, a program whose
 * every conflicting access is ordered by locks and barriers must see exactly the values a
 * sequential execution would produce.
 *
 * usage: drf_check [-s SEED] [-n SEEDS] [-r ROUNDS] [-o OPS] [-c COUNTERS] [-l LOCKS]
 *                  [-p PAGES] [-m KIB] [-j JITTER_NS] [-v]
 *
 * One run (one seed) allocates, collectively:
 *   - COUNTERS 64-bit counters spread over PAGES pages (counter i on page i % PAGES), each
 *     guarded by lock LOCK0 + i % LOCKS: a page holds counters of several locks, so ranks
 *     of one node and of others write one page at once under different locks (twins, diffs
 *     and write notices of ranks that share a node's frames).
 *   - a bulk array of KIB KiB, cut per page into one slice per rank.
 * Each round, every rank performs OPS operations, each under the lock(s) that guard it: add
 * a random delta to one counter (read, pause, write), or move an amount between two
 * counters under two locks taken in id order. Then every rank writes its slice of a random
 * set of bulk pages (hundreds of pages between two synchronisations at real sizes). After
 * a barrier every rank checks every counter and every bulk word against a private replay
 * of all ranks' random choices: the choices depend only on (seed, round, rank, op), and
 * sums commute, so the expected values do not depend on the interleaving.
 *
 * Output: one line per seed from rank 0, "drf_check: seed S ...: OK" or FAILED, with the
 * first wrong values named (seed, round, rank, counter or page, value seen and expected).
 * Exit 1 on any wrong value; a failure replays with `-s S -n 1` and the same job shape.
 */
#include "lt_common.h"

#include <dsm/dsm.h>

#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOCK0      5000u
#define MAX_REPORT 8   /* wrong values printed per rank and seed */

struct opts {
    long seed, nseeds, rounds, ops, counters, locks, pages, kib, jitter;
    int  verbose;
};

/* splitmix64: the value of a random choice, as a pure function of its coordinates. */
static uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static uint64_t choice(uint64_t seed, uint64_t round, uint64_t rank, uint64_t op, uint64_t what)
{
    return mix(mix(mix(mix(mix(seed) ^ round) ^ rank) ^ op) ^ what);
}

/* One operation of rank `rank`: counters a and b (b == a: a single add) and the amount. */
struct op {
    long     a, b;
    uint64_t delta;
};

static struct op op_of(const struct opts *o, uint64_t seed, long round, int rank, long i)
{
    struct op x;

    x.a = (long)(choice(seed, (uint64_t)round, (uint64_t)rank, (uint64_t)i, 1) % (uint64_t)o->counters);
    x.b = x.a;
    if (choice(seed, (uint64_t)round, (uint64_t)rank, (uint64_t)i, 2) % 4 == 0)
        x.b = (long)(choice(seed, (uint64_t)round, (uint64_t)rank, (uint64_t)i, 3) % (uint64_t)o->counters);
    if (x.b % o->locks == x.a % o->locks)
        x.b = x.a; /* same lock: a single add */
    x.delta = 1 + choice(seed, (uint64_t)round, (uint64_t)rank, (uint64_t)i, 4) % 1000;
    return x;
}

/* Whether bulk page j is written in `round` (the same set for every rank). */
static int bulk_written(uint64_t seed, long round, long j)
{
    return choice(seed, (uint64_t)round, 0xb01c, (uint64_t)j, 5) % 3 == 0;
}

/* The word rank `owner` writes at index w of its slice of bulk page j in `round`. */
static uint64_t bulk_word(uint64_t seed, long round, long j, int owner, size_t w)
{
    return choice(seed, (uint64_t)round, (uint64_t)owner, (uint64_t)j, 0x1000 + w) | 1;
}

struct run {
    const struct opts *o;
    uint64_t  seed;
    int       rank, nranks;
    size_t    pg, slice_words;
    char     *ctr_region;
    uint64_t *bulk;
    long      bulk_pages;
    uint64_t *expect;     /* counters, replayed */
    long     *last_round; /* bulk page -> last round written (-1: never) */
    long      wrong, reported;
};

static volatile uint64_t *counter(struct run *r, long i)
{
    long page = i % r->o->pages, slot = i / r->o->pages;

    return (volatile uint64_t *)(r->ctr_region + (size_t)page * r->pg) + slot;
}

static uint32_t lock_of(const struct run *r, long i)
{
    return LOCK0 + (uint32_t)(i % r->o->locks);
}

static void report(struct run *r, const char *fmt, long round, long what, uint64_t seen, uint64_t want)
{
    r->wrong++;
    if (r->reported++ < MAX_REPORT)
        fprintf(stderr, "drf_check: seed %" PRIu64 ": rank %d: round %ld: %s %ld = %" PRIu64 ", expected %" PRIu64 "\n",
                r->seed, r->rank, round, fmt, what, seen, want);
}

static int locked(int rc, const char *what, uint32_t id)
{
    if (rc != 0)
        fprintf(stderr, "drf_check: %s(%u): %s\n", what, id, dsm_strerror(rc));
    return rc;
}

/* This rank's operations of one round. */
static int do_ops(struct run *r, long round, uint64_t *jit)
{
    for (long i = 0; i < r->o->ops; i++) {
        struct op x = op_of(r->o, r->seed, round, r->rank, i);
        uint32_t la = lock_of(r, x.a), lb = lock_of(r, x.b);
        uint32_t first = la < lb ? la : lb, second = la < lb ? lb : la;
        uint64_t v;

        if (locked(dsm_lock(first), "dsm_lock", first) != 0)
            return -1;
        if (second != first && locked(dsm_lock(second), "dsm_lock", second) != 0)
            return -1;
        v = *counter(r, x.a);
        lt_jitter(jit, r->o->jitter);
        if (x.b == x.a) {
            *counter(r, x.a) = v + x.delta;
        } else {
            *counter(r, x.a) = v - x.delta;
            v = *counter(r, x.b);
            lt_jitter(jit, r->o->jitter);
            *counter(r, x.b) = v + x.delta;
        }
        if (second != first && locked(dsm_unlock(second), "dsm_unlock", second) != 0)
            return -1;
        if (locked(dsm_unlock(first), "dsm_unlock", first) != 0)
            return -1;
    }
    return 0;
}

/* This rank's slices of the bulk pages written this round. */
static void do_bulk(struct run *r, long round)
{
    for (long j = 0; j < r->bulk_pages; j++) {
        uint64_t *s;

        if (!bulk_written(r->seed, round, j))
            continue;
        s = r->bulk + (size_t)j * (r->pg / 8) + (size_t)r->rank * r->slice_words;
        for (size_t w = 0; w < r->slice_words; w++)
            s[w] = bulk_word(r->seed, round, j, r->rank, w);
    }
}

/* Replay every rank's choices of `round` and check all counters and bulk words. */
static void check_round(struct run *r, long round)
{
    for (int k = 0; k < r->nranks; k++)
        for (long i = 0; i < r->o->ops; i++) {
            struct op x = op_of(r->o, r->seed, round, k, i);

            if (x.b == x.a) {
                r->expect[x.a] += x.delta;
            } else {
                r->expect[x.a] -= x.delta;
                r->expect[x.b] += x.delta;
            }
        }
    for (long i = 0; i < r->o->counters; i++)
        if (*counter(r, i) != r->expect[i])
            report(r, "counter", round, i, *counter(r, i), r->expect[i]);
    for (long j = 0; j < r->bulk_pages; j++) {
        const uint64_t *p = r->bulk + (size_t)j * (r->pg / 8);

        if (bulk_written(r->seed, round, j))
            r->last_round[j] = round;
        for (int k = 0; k < r->nranks; k++)
            for (size_t w = 0; w < r->slice_words; w++) {
                uint64_t want = r->last_round[j] < 0 ? 0 : bulk_word(r->seed, r->last_round[j], j, k, w);
                uint64_t seen = p[(size_t)k * r->slice_words + w];

                if (seen != want) {
                    report(r, "bulk page", round, j, seen, want);
                    break;
                }
            }
    }
}

/* One seed, collective. Returns 0 (checked, maybe wrong values in r->wrong) or -1. */
static int run_seed(struct run *r, long *all_wrong)
{
    const struct opts *o = r->o;
    uint64_t jit = r->seed * 2654435761u + (uint64_t)r->rank + 1;
    size_t ctr_bytes = (size_t)o->pages * r->pg;
    size_t bulk_bytes = (size_t)r->bulk_pages * r->pg;
    int rc = 0;

    r->ctr_region = dsm_coalloc(ctr_bytes);
    r->bulk = bulk_bytes ? dsm_coalloc(bulk_bytes) : NULL;
    r->expect = calloc((size_t)o->counters, sizeof(uint64_t));
    r->last_round = malloc(((size_t)r->bulk_pages + 1) * sizeof(long));
    if (r->ctr_region == NULL || (bulk_bytes && r->bulk == NULL) || r->expect == NULL || r->last_round == NULL) {
        fprintf(stderr, "drf_check: rank %d: out of memory for seed %" PRIu64 "\n", r->rank, r->seed);
        return -1;
    }
    for (long j = 0; j < r->bulk_pages; j++)
        r->last_round[j] = -1;
    r->wrong = r->reported = 0;
    for (long round = 0; rc == 0 && round < o->rounds; round++) {
        rc = do_ops(r, round, &jit);
        if (rc == 0)
            do_bulk(r, round);
        if (rc == 0)
            rc = dsm_barrier();
        if (rc == 0)
            check_round(r, round);
        if (rc == 0)
            rc = dsm_barrier(); /* nobody writes the next round while another checks */
    }
    if (rc != 0) {
        fprintf(stderr, "drf_check: rank %d: seed %" PRIu64 ": %s\n", r->rank, r->seed, dsm_strerror(rc));
        return -1;
    }
    /* every rank's verdict reaches rank 0 through a lock-protected sum */
    if (dsm_lock(LOCK0 - 1) != 0)
        return -1;
    *(volatile long *)(r->ctr_region + ctr_bytes - sizeof(long)) += r->wrong;
    if (dsm_unlock(LOCK0 - 1) != 0 || dsm_barrier() != 0)
        return -1;
    *all_wrong = *(volatile long *)(r->ctr_region + ctr_bytes - sizeof(long));
    if (dsm_barrier() != 0)
        return -1;
    free(r->expect);
    free(r->last_round);
    if (r->bulk)
        dsm_cofree(r->bulk);
    dsm_cofree(r->ctr_region);
    return 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: drf_check [-s SEED] [-n SEEDS] [-r ROUNDS] [-o OPS] [-c COUNTERS] [-l LOCKS]\n"
                    "                 [-p PAGES] [-m KIB] [-j JITTER_NS] [-v]\n");
}

static int parse(int argc, char **argv, struct opts *o)
{
    int c;

    *o = (struct opts){ .seed = 1, .nseeds = lt_scaled(3, 20), .rounds = lt_scaled(6, 12), .ops = lt_scaled(40, 150),
                        .counters = 48, .locks = 6, .pages = 4, .kib = lt_scaled(512, 8192), .jitter = 3000 };
    while ((c = getopt(argc, argv, "s:n:r:o:c:l:p:m:j:v")) != -1) {
        long *dst = NULL, lo = 1, hi = 1L << 30;

        switch (c) {
        case 's': dst = &o->seed; lo = 0; hi = 0x7fffffffffffL; break;
        case 'n': dst = &o->nseeds; break;
        case 'r': dst = &o->rounds; break;
        case 'o': dst = &o->ops; lo = 0; break;
        case 'c': dst = &o->counters; break;
        case 'l': dst = &o->locks; hi = 1000; break;
        case 'p': dst = &o->pages; hi = 4096; break;
        case 'm': dst = &o->kib; lo = 0; hi = 1L << 22; break;
        case 'j': dst = &o->jitter; lo = 0; hi = 1000000000L; break;
        case 'v': o->verbose = 1; continue;
        default: usage(); return -1;
        }
        if (lt_parse_long(optarg, lo, hi, dst) != 0) {
            usage();
            return -1;
        }
    }
    /* the last word of the counter pages holds the verdict sum */
    if (optind != argc || o->counters > o->pages * (long)(dsm_page_size() / 8) - 1) {
        usage();
        return -1;
    }
    return 0;
}

static int drf_main(int argc, char **argv)
{
    struct opts o;
    struct run r;
    long failed = 0;

    if (parse(argc, argv, &o) != 0)
        return 2;
    memset(&r, 0, sizeof(r));
    r.o = &o;
    r.rank = dsm_rank();
    r.nranks = dsm_nranks();
    r.pg = dsm_page_size();
    r.slice_words = r.pg / 8 / (size_t)r.nranks;
    r.bulk_pages = o.kib * 1024 / (long)r.pg;
    if (r.slice_words == 0) {
        fprintf(stderr, "drf_check: more ranks than words in a page\n");
        return 2;
    }
    for (long s = 0; s < o.nseeds; s++) {
        long all_wrong = 0;
        int64_t t0 = lt_now_ns();

        r.seed = (uint64_t)(o.seed + s);
        if (run_seed(&r, &all_wrong) != 0)
            return 1;
        if (r.rank == 0)
            printf("drf_check: seed %" PRIu64 ": %d ranks, %s, %ld rounds x %ld ops on %ld counters / %ld locks / %ld pages, "
                   "%ld bulk pages: %ld wrong values (%.2f s): %s\n",
                   r.seed, r.nranks, dsm_consistency(), o.rounds, o.ops, o.counters, o.locks, o.pages, r.bulk_pages,
                   all_wrong, (double)(lt_now_ns() - t0) / 1e9, all_wrong ? "FAILED" : "OK");
        fflush(stdout);
        failed += all_wrong != 0;
    }
    if (r.rank == 0)
        printf("drf_check: %ld of %ld seeds failed (first seed %ld): %s\n", failed, o.nseeds, o.seed,
               failed ? "FAILED" : "OK");
    return failed ? 1 : 0;
}

int main(int argc, char **argv)
{
    int rc = dsm_init(&argc, &argv), status;

    if (rc != 0) {
        fprintf(stderr, "drf_check: dsm_init: %s\n", dsm_strerror(rc));
        return 1;
    }
    status = drf_main(argc, argv);
    rc = dsm_finalize();
    if (rc != 0) {
        fprintf(stderr, "drf_check: dsm_finalize: %s\n", dsm_strerror(rc));
        status = 1;
    }
    return status;
}

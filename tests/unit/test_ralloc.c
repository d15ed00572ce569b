/*
 * test_ralloc.c - unit suite for the first-fit page-range allocator (daemon/space/ralloc.h).
 *
 * Fixed cases pin down the contract (first fit, exhaustion, merging of freed neighbours,
 * invalid frees, bookkeeping); a randomized case (fixed seeds) replays thousands of
 * alloc/free calls against a bitmap model that knows, page by page, what is taken.
 */
#include <criterion/criterion.h>

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "space/ralloc.h"

#define BASE 1000u  /* the interval does not start at page 0, to catch offset mistakes */

/* Allocate n pages and return the first; fails the test if the allocator refuses. */
static uint64_t must_alloc(struct dsmd_ralloc *r, uint64_t n)
{
    uint64_t first = UINT64_MAX;
    dsm_status_t st = dsmd_ralloc_alloc(r, n, &first);

    cr_assert_eq(st, DSM_OK, "alloc(%llu) failed: %d", (unsigned long long)n, st);
    return first;
}

/* Free the run at first and check that its recorded length is n. */
static void must_free(struct dsmd_ralloc *r, uint64_t first, uint64_t n)
{
    uint64_t got = 0;

    cr_assert_eq(dsmd_ralloc_free(r, first, &got), DSM_OK, "free(%llu) failed", (unsigned long long)first);
    cr_assert_eq(got, n, "free(%llu) returned length %llu, expected %llu", (unsigned long long)first,
                 (unsigned long long)got, (unsigned long long)n);
}

Test(ralloc, first_fit_is_sequential_from_the_start)
{
    struct dsmd_ralloc r;
    uint64_t n = 0;

    cr_assert_eq(dsmd_ralloc_init(&r, BASE, 100), DSM_OK);
    cr_assert_eq(r.total_free, 100);
    cr_assert_eq(dsmd_ralloc_largest(&r), 100);
    cr_assert_eq(must_alloc(&r, 10), BASE);
    cr_assert_eq(must_alloc(&r, 1), BASE + 10);
    cr_assert_eq(must_alloc(&r, 5), BASE + 11);
    cr_assert_eq(r.total_free, 84);
    cr_assert_eq(dsmd_ralloc_largest(&r), 84);
    cr_assert_eq(dsmd_ralloc_find(&r, BASE, &n), DSM_OK);
    cr_assert_eq(n, 10);
    cr_assert_eq(dsmd_ralloc_find(&r, BASE + 10, &n), DSM_OK);
    cr_assert_eq(n, 1);
    cr_assert_eq(dsmd_ralloc_find(&r, BASE + 11, &n), DSM_OK);
    cr_assert_eq(n, 5);
    dsmd_ralloc_fini(&r);
}

/* The run holding a page: every page of an allocated run finds it, free pages find none. */
Test(ralloc, holding_finds_the_run_of_any_of_its_pages)
{
    struct dsmd_ralloc r;
    struct dsmd_run run;

    cr_assert_eq(dsmd_ralloc_init(&r, BASE, 100), DSM_OK);
    cr_assert_eq(must_alloc(&r, 10), BASE);
    cr_assert_eq(must_alloc(&r, 5), BASE + 10);
    cr_assert_eq(must_alloc(&r, 7), BASE + 15);
    must_free(&r, BASE + 10, 5);
    for (uint64_t q = BASE; q < BASE + 10; q++) {
        cr_assert_eq(dsmd_ralloc_holding(&r, q, &run), DSM_OK, "page %llu", (unsigned long long)q);
        cr_assert(run.first == BASE && run.n == 10);
    }
    for (uint64_t q = BASE + 10; q < BASE + 15; q++) /* freed */
        cr_assert_eq(dsmd_ralloc_holding(&r, q, &run), DSM_EINVAL);
    cr_assert_eq(dsmd_ralloc_holding(&r, BASE + 21, &run), DSM_OK);
    cr_assert(run.first == BASE + 15 && run.n == 7);
    cr_assert_eq(dsmd_ralloc_holding(&r, BASE + 22, &run), DSM_EINVAL); /* past the last run */
    cr_assert_eq(dsmd_ralloc_holding(&r, BASE - 1, &run), DSM_EINVAL);  /* before the interval */
    dsmd_ralloc_fini(&r);
}

Test(ralloc, first_fit_takes_the_lowest_hole_that_fits)
{
    struct dsmd_ralloc r;
    uint64_t a, b, c, d, e;

    cr_assert_eq(dsmd_ralloc_init(&r, BASE, 40), DSM_OK);
    a = must_alloc(&r, 4);   /* [0,4) */
    b = must_alloc(&r, 8);   /* [4,12) */
    c = must_alloc(&r, 2);   /* [12,14) */
    d = must_alloc(&r, 6);   /* [14,20) */
    must_free(&r, a, 4);     /* hole of 4 at 0 */
    must_free(&r, c, 2);     /* hole of 2 at 12 */
    cr_assert_eq(must_alloc(&r, 5), BASE + 20, "no hole below 20 holds 5 pages");
    cr_assert_eq(must_alloc(&r, 2), BASE + 0, "the lowest hole that fits is at 0");
    cr_assert_eq(must_alloc(&r, 2), BASE + 2, "the rest of the hole at 0");
    e = must_alloc(&r, 2);
    cr_assert_eq(e, BASE + 12, "then the hole at 12");
    must_free(&r, b, 8);
    must_free(&r, d, 6);
    cr_assert_eq(dsmd_ralloc_largest(&r), 15, "[4,12) and [14,20) are apart; [25,40) is the largest");
    must_free(&r, e, 2);
    cr_assert_eq(must_alloc(&r, 14), BASE + 4, "[4,20) merged into one hole of 16");
    dsmd_ralloc_fini(&r);
}

Test(ralloc, exhaustion_returns_enospace)
{
    struct dsmd_ralloc r;
    uint64_t first = 777;

    cr_assert_eq(dsmd_ralloc_init(&r, BASE, 16), DSM_OK);
    cr_assert_eq(dsmd_ralloc_alloc(&r, 17, &first), DSM_ENOSPACE);
    cr_assert_eq(first, 777, "a failed alloc must not write *first");
    cr_assert_eq(r.total_free, 16, "a failed alloc must not change the free count");
    cr_assert_eq(must_alloc(&r, 16), BASE);
    cr_assert_eq(r.total_free, 0);
    cr_assert_eq(dsmd_ralloc_largest(&r), 0);
    cr_assert_eq(dsmd_ralloc_alloc(&r, 1, &first), DSM_ENOSPACE);
    cr_assert_eq(dsmd_ralloc_alloc(&r, UINT64_MAX, &first), DSM_ENOSPACE);
    dsmd_ralloc_fini(&r);
}

Test(ralloc, fragmented_space_refuses_a_run_longer_than_any_hole)
{
    struct dsmd_ralloc r;
    uint64_t pages[10], first;

    cr_assert_eq(dsmd_ralloc_init(&r, BASE, 20), DSM_OK);
    for (int i = 0; i < 10; i++)
        pages[i] = must_alloc(&r, 2);
    for (int i = 0; i < 10; i += 2)
        must_free(&r, pages[i], 2);
    cr_assert_eq(r.total_free, 10);
    cr_assert_eq(dsmd_ralloc_largest(&r), 2);
    cr_assert_eq(dsmd_ralloc_alloc(&r, 3, &first), DSM_ENOSPACE, "10 pages free, but no 3 in a row");
    dsmd_ralloc_fini(&r);
}

Test(ralloc, zero_pages_is_invalid)
{
    struct dsmd_ralloc r;
    uint64_t first = 5;

    cr_assert_eq(dsmd_ralloc_init(&r, BASE, 8), DSM_OK);
    cr_assert_eq(dsmd_ralloc_alloc(&r, 0, &first), DSM_EINVAL);
    cr_assert_eq(r.total_free, 8);
    dsmd_ralloc_fini(&r);
}

Test(ralloc, empty_interval_has_nothing_to_give)
{
    struct dsmd_ralloc r;
    uint64_t first, n;

    cr_assert_eq(dsmd_ralloc_init(&r, BASE, 0), DSM_OK);
    cr_assert_eq(r.total_free, 0);
    cr_assert_eq(dsmd_ralloc_largest(&r), 0);
    cr_assert_eq(dsmd_ralloc_alloc(&r, 1, &first), DSM_ENOSPACE);
    cr_assert_eq(dsmd_ralloc_find(&r, BASE, &n), DSM_EINVAL);
    cr_assert_eq(dsmd_ralloc_free(&r, BASE, &n), DSM_EINVAL);
    dsmd_ralloc_fini(&r);
}

Test(ralloc, invalid_free_and_find_return_einval)
{
    struct dsmd_ralloc r;
    uint64_t a, n = 99;

    cr_assert_eq(dsmd_ralloc_init(&r, BASE, 32), DSM_OK);
    a = must_alloc(&r, 4);
    cr_assert_eq(dsmd_ralloc_free(&r, a + 1, &n), DSM_EINVAL, "inside a run, not its start");
    cr_assert_eq(dsmd_ralloc_free(&r, a + 4, &n), DSM_EINVAL, "a free page");
    cr_assert_eq(dsmd_ralloc_free(&r, 0, &n), DSM_EINVAL, "below the interval");
    cr_assert_eq(dsmd_ralloc_free(&r, BASE + 32, &n), DSM_EINVAL, "past the interval");
    cr_assert_eq(dsmd_ralloc_free(&r, UINT64_MAX, &n), DSM_EINVAL);
    cr_assert_eq(dsmd_ralloc_find(&r, a + 1, &n), DSM_EINVAL);
    cr_assert_eq(dsmd_ralloc_find(&r, a + 4, &n), DSM_EINVAL);
    cr_assert_eq(n, 99, "a failed free/find must not write *n");
    cr_assert_eq(r.total_free, 28, "failed frees must not change the free count");
    must_free(&r, a, 4);
    cr_assert_eq(dsmd_ralloc_free(&r, a, &n), DSM_EINVAL, "double free");
    cr_assert_eq(dsmd_ralloc_find(&r, a, &n), DSM_EINVAL, "find after free");
    cr_assert_eq(r.total_free, 32);
    dsmd_ralloc_fini(&r);
}

/* Fill the interval with `k` runs of `len` pages, free them in `order`, check a full alloc. */
static void free_in_order_then_full_alloc(const int *order, int k, uint64_t len)
{
    struct dsmd_ralloc r;
    uint64_t runs[16], first;

    cr_assert(k <= 16);
    cr_assert_eq(dsmd_ralloc_init(&r, BASE, (uint64_t)k * len), DSM_OK);
    for (int i = 0; i < k; i++)
        runs[i] = must_alloc(&r, len);
    cr_assert_eq(dsmd_ralloc_alloc(&r, 1, &first), DSM_ENOSPACE);
    for (int i = 0; i < k; i++) {
        must_free(&r, runs[order[i]], len);
        cr_assert_eq(r.total_free, (uint64_t)(i + 1) * len);
    }
    cr_assert_eq(dsmd_ralloc_largest(&r), (uint64_t)k * len, "every neighbour merged back");
    cr_assert_eq(r.nfree, 1, "one free run left, not %zu", r.nfree);
    cr_assert_eq(r.nused, 0);
    cr_assert_eq(must_alloc(&r, (uint64_t)k * len), BASE);
    dsmd_ralloc_fini(&r);
}

Test(ralloc, free_merges_neighbours_in_every_order_of_four)
{
    /* every permutation of 4 runs: merges with the left, the right, both and neither */
    int order[4];

    for (int a = 0; a < 4; a++)
        for (int b = 0; b < 4; b++)
            for (int c = 0; c < 4; c++)
                for (int d = 0; d < 4; d++) {
                    if (a == b || a == c || a == d || b == c || b == d || c == d)
                        continue;
                    order[0] = a, order[1] = b, order[2] = c, order[3] = d;
                    free_in_order_then_full_alloc(order, 4, 3);
                }
}

Test(ralloc, free_merges_neighbours_in_fixed_orders)
{
    static const int asc[12] = { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11 };
    static const int desc[12] = { 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0 };
    static const int evens_first[12] = { 0, 2, 4, 6, 8, 10, 1, 3, 5, 7, 9, 11 };
    static const int outside_in[12] = { 0, 11, 1, 10, 2, 9, 3, 8, 4, 7, 5, 6 };
    static const int inside_out[12] = { 5, 6, 4, 7, 3, 8, 2, 9, 1, 10, 0, 11 };

    free_in_order_then_full_alloc(asc, 12, 1);
    free_in_order_then_full_alloc(desc, 12, 2);
    free_in_order_then_full_alloc(evens_first, 12, 1);
    free_in_order_then_full_alloc(outside_in, 12, 5);
    free_in_order_then_full_alloc(inside_out, 12, 7);
}

Test(ralloc, free_runs_stay_sorted_disjoint_and_unadjacent)
{
    struct dsmd_ralloc r;
    uint64_t runs[8];

    cr_assert_eq(dsmd_ralloc_init(&r, BASE, 64), DSM_OK);
    for (int i = 0; i < 8; i++)
        runs[i] = must_alloc(&r, 8);
    must_free(&r, runs[6], 8);
    must_free(&r, runs[1], 8);
    must_free(&r, runs[3], 8);
    must_free(&r, runs[2], 8);   /* joins 1 and 3 */
    cr_assert_eq(r.nfree, 2);
    cr_assert_eq(r.free[0].first, BASE + 8);
    cr_assert_eq(r.free[0].n, 24);
    cr_assert_eq(r.free[1].first, BASE + 48);
    cr_assert_eq(r.free[1].n, 8);
    cr_assert_eq(dsmd_ralloc_largest(&r), 24);
    dsmd_ralloc_fini(&r);
}

/* ---- randomized, against a bitmap model ----------------------------------------------- */

#define MODEL_PAGES 200u

struct model {
    bool     used[MODEL_PAGES];
    uint64_t len[MODEL_PAGES];   /* length of the run allocated at this index, 0 if none */
};

static uint32_t rnd(uint64_t *s)
{
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint32_t)(*s >> 33);
}

/* First-fit in the model: start of the lowest maximal free run of at least n pages. */
static bool model_fit(const struct model *m, uint64_t n, uint64_t *at)
{
    uint64_t run = 0;

    for (uint64_t p = 0; p < MODEL_PAGES; p++) {
        run = m->used[p] ? 0 : run + 1;
        if (run == n) {
            *at = p + 1 - n;
            return true;
        }
    }
    return false;
}

static void model_stats(const struct model *m, uint64_t *total, uint64_t *largest)
{
    uint64_t run = 0;

    *total = 0;
    *largest = 0;
    for (uint64_t p = 0; p < MODEL_PAGES; p++) {
        run = m->used[p] ? 0 : run + 1;
        *total += !m->used[p];
        if (run > *largest)
            *largest = run;
    }
}

static void random_run(uint64_t seed, int ops)
{
    struct dsmd_ralloc r;
    struct model *m = calloc(1, sizeof(*m));
    uint64_t s = seed;

    cr_assert_not_null(m);
    cr_assert_eq(dsmd_ralloc_init(&r, BASE, MODEL_PAGES), DSM_OK);
    for (int op = 0; op < ops; op++) {
        uint32_t what = rnd(&s) % 10;
        uint64_t total, largest, n, at, first, got;

        if (what < 5) {                        /* alloc, usually small, sometimes large */
            n = 1 + (rnd(&s) % 4 == 0 ? rnd(&s) % MODEL_PAGES : rnd(&s) % 12);
            if (model_fit(m, n, &at)) {
                cr_assert_eq(dsmd_ralloc_alloc(&r, n, &first), DSM_OK,
                             "seed %llu op %d: alloc(%llu) refused, model fits at %llu",
                             (unsigned long long)seed, op, (unsigned long long)n, (unsigned long long)at);
                cr_assert_eq(first, BASE + at, "seed %llu op %d: alloc(%llu) at %llu, first fit is %llu",
                             (unsigned long long)seed, op, (unsigned long long)n,
                             (unsigned long long)(first - BASE), (unsigned long long)at);
                for (uint64_t p = at; p < at + n; p++)
                    m->used[p] = true;
                m->len[at] = n;
            } else {
                cr_assert_eq(dsmd_ralloc_alloc(&r, n, &first), DSM_ENOSPACE,
                             "seed %llu op %d: alloc(%llu) should not fit", (unsigned long long)seed, op,
                             (unsigned long long)n);
            }
        } else if (what < 9) {                 /* free a random page: valid only at a run start */
            at = rnd(&s) % MODEL_PAGES;
            if (m->len[at] != 0) {
                cr_assert_eq(dsmd_ralloc_find(&r, BASE + at, &got), DSM_OK);
                cr_assert_eq(got, m->len[at]);
                got = 0;
                cr_assert_eq(dsmd_ralloc_free(&r, BASE + at, &got), DSM_OK,
                             "seed %llu op %d: free(%llu)", (unsigned long long)seed, op, (unsigned long long)at);
                cr_assert_eq(got, m->len[at]);
                for (uint64_t p = at; p < at + m->len[at]; p++)
                    m->used[p] = false;
                m->len[at] = 0;
            } else {
                cr_assert_eq(dsmd_ralloc_free(&r, BASE + at, &got), DSM_EINVAL,
                             "seed %llu op %d: free(%llu) of no run start", (unsigned long long)seed, op,
                             (unsigned long long)at);
                cr_assert_eq(dsmd_ralloc_find(&r, BASE + at, &got), DSM_EINVAL);
            }
        } else {                               /* free everything in a random rotation */
            uint64_t start = rnd(&s) % MODEL_PAGES;

            for (uint64_t k = 0; k < MODEL_PAGES; k++) {
                at = (start + k) % MODEL_PAGES;
                if (m->len[at] == 0)
                    continue;
                must_free(&r, BASE + at, m->len[at]);
                for (uint64_t p = at; p < at + m->len[at]; p++)
                    m->used[p] = false;
                m->len[at] = 0;
            }
            cr_assert_eq(r.nfree, 1, "seed %llu op %d: everything free must be one run",
                         (unsigned long long)seed, op);
        }
        model_stats(m, &total, &largest);
        cr_assert_eq(r.total_free, total, "seed %llu op %d: total_free %llu, model %llu",
                     (unsigned long long)seed, op, (unsigned long long)r.total_free, (unsigned long long)total);
        cr_assert_eq(dsmd_ralloc_largest(&r), largest, "seed %llu op %d: largest %llu, model %llu",
                     (unsigned long long)seed, op, (unsigned long long)dsmd_ralloc_largest(&r),
                     (unsigned long long)largest);
        for (size_t i = 0; i < r.nfree; i++) {
            cr_assert_gt(r.free[i].n, 0);
            if (i > 0)
                cr_assert_gt(r.free[i].first, r.free[i - 1].first + r.free[i - 1].n,
                             "seed %llu op %d: free runs %zu and %zu overlap or touch",
                             (unsigned long long)seed, op, i - 1, i);
        }
    }
    dsmd_ralloc_fini(&r);
    free(m);
}

Test(ralloc, randomized_against_bitmap_model)
{
    for (uint64_t seed = 1; seed <= 40; seed++)
        random_run(seed * 0x9e3779b97f4a7c15ULL, 2000);
}

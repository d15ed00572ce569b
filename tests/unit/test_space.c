/*
 * test_space.c - unit suite for the global space layout and page homes (daemon/space/space.h).
 *
 * The layout is checked exhaustively for small spaces: for every npages in a range and
 * every node count 1..8, each page's home is compared with a layout built independently,
 * page by page (collective area = lower half, then one equal arena per node, then a tail
 * shorter than one page per node). Block placement is checked for every region size up to
 * a few hundred pages by its defining properties rather than by its formula.
 */
#include <criterion/criterion.h>

#include <stdint.h>
#include <stdlib.h>

#include "space/space.h"
#include "wire.h"

#define MAX_NODES 8
#define MAX_PAGES 160u

/* The expected home of every page of a fresh space, built by walking the pages in order. */
static void expected_layout(uint64_t npages, int nnodes, int *home, uint64_t *coll, uint64_t *arena)
{
    uint64_t p = 0;

    *coll = npages / 2;
    *arena = (npages - *coll) / (uint64_t)nnodes;
    for (; p < *coll; p++)
        home[p] = DSMD_NO_HOME;
    for (int n = 0; n < nnodes; n++)
        for (uint64_t j = 0; j < *arena; j++)
            home[p++] = n;
    for (; p < npages; p++)
        home[p] = DSMD_NO_HOME;
}

Test(space, layout_of_every_small_space)
{
    int *want = malloc(MAX_PAGES * sizeof(*want));

    cr_assert_not_null(want);
    for (int k = 1; k <= MAX_NODES; k++) {
        for (uint64_t np = 2 * (uint64_t)k; np <= MAX_PAGES; np++) {
            struct dsmd_space s;
            uint64_t coll, arena, tail;

            cr_assert_eq(dsmd_space_init(&s, np, k, k), DSM_OK, "npages %llu nnodes %d", (unsigned long long)np, k);
            expected_layout(np, k, want, &coll, &arena);
            cr_assert_eq(s.npages, np);
            cr_assert_eq(s.nnodes, k);
            cr_assert_eq(s.coll_pages, coll, "npages %llu nnodes %d: coll %llu, want %llu", (unsigned long long)np,
                         k, (unsigned long long)s.coll_pages, (unsigned long long)coll);
            cr_assert_eq(s.arena_pages, arena, "npages %llu nnodes %d: arena %llu, want %llu",
                         (unsigned long long)np, k, (unsigned long long)s.arena_pages, (unsigned long long)arena);
            cr_assert_geq(s.arena_pages, 1, "every node gets an arena page");
            tail = np - s.coll_pages - (uint64_t)k * s.arena_pages;
            cr_assert_lt(tail, (uint64_t)k, "npages %llu nnodes %d: unused tail of %llu pages is too long",
                         (unsigned long long)np, k, (unsigned long long)tail);
            for (int n = 0; n < k; n++)
                cr_assert_eq(dsmd_space_arena_first(&s, n), coll + (uint64_t)n * arena);
            for (uint64_t p = 0; p < np; p++) {
                cr_assert_eq(dsmd_space_home(&s, p), want[p], "npages %llu nnodes %d page %llu: home %d, want %d",
                             (unsigned long long)np, k, (unsigned long long)p, dsmd_space_home(&s, p), want[p]);
                cr_assert_eq(dsmd_space_arena_node(&s, p), want[p], "npages %llu nnodes %d page %llu: arena node",
                             (unsigned long long)np, k, (unsigned long long)p);
            }
            for (uint64_t p = np; p < np + 4; p++) {
                cr_assert_eq(dsmd_space_home(&s, p), DSMD_NO_HOME);
                cr_assert_eq(dsmd_space_arena_node(&s, p), DSMD_NO_HOME);
            }
            cr_assert_eq(dsmd_space_home(&s, UINT64_MAX), DSMD_NO_HOME);
            cr_assert_eq(dsmd_space_arena_node(&s, UINT64_MAX), DSMD_NO_HOME);
            dsmd_space_fini(&s);
            cr_assert_null(s.home);
        }
    }
    free(want);
}

Test(space, odd_and_indivisible_sizes)
{
    struct dsmd_space s;

    /* 11 pages, 3 nodes: collective [0,5), arenas [5,7) [7,9) [9,11), no tail */
    cr_assert_eq(dsmd_space_init(&s, 11, 3, 3), DSM_OK);
    cr_assert_eq(s.coll_pages, 5);
    cr_assert_eq(s.arena_pages, 2);
    cr_assert_eq(dsmd_space_home(&s, 4), DSMD_NO_HOME);
    cr_assert_eq(dsmd_space_home(&s, 5), 0);
    cr_assert_eq(dsmd_space_home(&s, 8), 1);
    cr_assert_eq(dsmd_space_home(&s, 10), 2);
    dsmd_space_fini(&s);

    /* 13 pages, 3 nodes: collective [0,6), arenas of 2 pages, page 12 is the unused tail */
    cr_assert_eq(dsmd_space_init(&s, 13, 3, 3), DSM_OK);
    cr_assert_eq(s.coll_pages, 6);
    cr_assert_eq(s.arena_pages, 2);
    cr_assert_eq(dsmd_space_home(&s, 11), 2);
    cr_assert_eq(dsmd_space_home(&s, 12), DSMD_NO_HOME);
    dsmd_space_fini(&s);
}

Test(space, too_small_or_no_nodes_is_econfig)
{
    struct dsmd_space s;

    for (int k = 1; k <= MAX_NODES; k++) {
        for (uint64_t np = 0; np < 2 * (uint64_t)k; np++)
            cr_assert_eq(dsmd_space_init(&s, np, k, k), DSM_ECONFIG, "npages %llu nnodes %d",
                         (unsigned long long)np, k);
        cr_assert_eq(dsmd_space_init(&s, 2 * (uint64_t)k, k, k), DSM_OK, "2 pages per node is enough");
        cr_assert_eq(s.arena_pages, 1);
        dsmd_space_fini(&s);
    }
    cr_assert_eq(dsmd_space_init(&s, 100, 0, 1), DSM_ECONFIG);
    cr_assert_eq(dsmd_space_init(&s, 100, -1, 1), DSM_ECONFIG);
    cr_assert_eq(dsmd_space_init(&s, 100, -100000, 1), DSM_ECONFIG);
}

/* Block placement by its defining properties: consecutive pages, node 0 first, homes never
 * decrease, every node that gets pages gets ceil(n/k) of them except the last one used,
 * which gets the rest (at least one); fewer pages than nodes means one page per node. */
static void check_block(uint64_t n, int k)
{
    uint64_t per = (n + (uint64_t)k - 1) / (uint64_t)k;
    uint64_t count[MAX_NODES] = { 0 };
    int prev = 0, last = 0;

    for (uint64_t i = 0; i < n; i++) {
        int h = dsmd_space_block_home(i, n, k);

        cr_assert(h >= 0 && h < k, "n %llu k %d page %llu: home %d out of range", (unsigned long long)n, k,
                  (unsigned long long)i, h);
        if (i == 0)
            cr_assert_eq(h, 0, "n %llu k %d: the first page is homed on node 0", (unsigned long long)n, k);
        cr_assert(h == prev || h == prev + 1, "n %llu k %d page %llu: home %d after %d",
                  (unsigned long long)n, k, (unsigned long long)i, h, prev);
        prev = h;
        last = h;
        count[h]++;
    }
    for (int h = 0; h < last; h++)
        cr_assert_eq(count[h], per, "n %llu k %d: node %d has %llu pages, want %llu", (unsigned long long)n, k,
                     h, (unsigned long long)count[h], (unsigned long long)per);
    cr_assert(count[last] >= 1 && count[last] <= per);
    for (int h = last + 1; h < k; h++)
        cr_assert_eq(count[h], 0);
    if (n <= (uint64_t)k)
        for (uint64_t i = 0; i < n; i++)
            cr_assert_eq(dsmd_space_block_home(i, n, k), (int)i, "n %llu < k %d: page %llu alone on its node",
                         (unsigned long long)n, k, (unsigned long long)i);
    if (n % (uint64_t)k == 0)
        cr_assert_eq(last, k - 1, "n %llu divisible by k %d: every node gets n/k pages", (unsigned long long)n, k);
}

Test(space, block_home_for_every_region_size)
{
    for (int k = 1; k <= MAX_NODES; k++)
        for (uint64_t n = 1; n <= 300; n++)
            check_block(n, k);
}

Test(space, block_home_examples)
{
    /* 10 pages over 4 nodes: blocks of 3: 0 0 0 1 1 1 2 2 2 3 */
    static const int ten_over_four[10] = { 0, 0, 0, 1, 1, 1, 2, 2, 2, 3 };

    for (uint64_t i = 0; i < 10; i++)
        cr_assert_eq(dsmd_space_block_home(i, 10, 4), ten_over_four[i], "page %llu", (unsigned long long)i);
    for (uint64_t i = 0; i < 7; i++)
        cr_assert_eq(dsmd_space_block_home(i, 7, 1), 0);
    cr_assert_eq(dsmd_space_block_home(0, 1, 8), 0);
    cr_assert_eq(dsmd_space_block_home(2, 3, 8), 2);
}

Test(space, region_add_places_cyclic_and_on_one_node)
{
    struct dsmd_space s;

    cr_assert_eq(dsmd_space_init(&s, 64, 3, 3), DSM_OK);
    dsmd_space_region_add(&s, 0, 10, DSMW_PLACE_CYCLIC, 2); /* 0,0,1,1,2,2,0,0,1,1 */
    for (uint64_t i = 0; i < 10; i++)
        cr_assert_eq(dsmd_space_home(&s, i), (int)((i / 2) % 3), "cyclic page %llu", (unsigned long long)i);
    dsmd_space_region_add(&s, 10, 5, DSMW_PLACE_NODE, 2);
    for (uint64_t i = 10; i < 15; i++)
        cr_assert_eq(dsmd_space_home(&s, i), 2, "page %llu placed on node 2", (unsigned long long)i);
    cr_assert(dsmw_place_ok(DSMW_PLACE_NODE, 2, 3) && !dsmw_place_ok(DSMW_PLACE_NODE, 3, 3));
    cr_assert(!dsmw_place_ok(DSMW_PLACE_CYCLIC, 0, 3) && !dsmw_place_ok(DSMW_PLACE_BLOCK, 1, 3));
    cr_assert(!dsmw_place_ok(4, 0, 3), "an unknown placement");
    cr_assert(dsmw_place_ok(DSMW_PLACE_FIRST_TOUCH, 0, 3) && !dsmw_place_ok(DSMW_PLACE_FIRST_TOUCH, 1, 3));
    dsmd_space_region_add(&s, 15, 4, DSMW_PLACE_FIRST_TOUCH, 0);
    for (uint64_t i = 15; i < 19; i++)
        cr_assert_eq(dsmd_space_home(&s, i), DSMD_HOME_UNDECIDED, "first-touch page %llu", (unsigned long long)i);
    dsmd_space_fini(&s);
}

Test(space, region_add_sets_block_homes_and_free_clears_them)
{
    struct dsmd_space s;

    cr_assert_eq(dsmd_space_init(&s, 64, 4, 4), DSM_OK);   /* collective [0,32), arenas of 8 */
    dsmd_space_region_add(&s, 3, 10, DSMW_PLACE_BLOCK, 0); /* blocks of 3: 3,3,3,1 */
    for (uint64_t p = 0; p < 3; p++)
        cr_assert_eq(dsmd_space_home(&s, p), DSMD_NO_HOME, "page %llu before the region", (unsigned long long)p);
    for (uint64_t i = 0; i < 10; i++)
        cr_assert_eq(dsmd_space_home(&s, 3 + i), (int)(i / 3), "region page %llu", (unsigned long long)i);
    for (uint64_t p = 13; p < 32; p++)
        cr_assert_eq(dsmd_space_home(&s, p), DSMD_NO_HOME, "page %llu after the region", (unsigned long long)p);

    dsmd_space_region_add(&s, 13, 2, DSMW_PLACE_BLOCK, 0); /* the adjacent region: one page each on 0 and 1 */
    cr_assert_eq(dsmd_space_home(&s, 13), 0);
    cr_assert_eq(dsmd_space_home(&s, 14), 1);

    dsmd_space_region_free(&s, 3, 10);
    for (uint64_t p = 3; p < 13; p++)
        cr_assert_eq(dsmd_space_home(&s, p), DSMD_NO_HOME, "freed page %llu", (unsigned long long)p);
    cr_assert_eq(dsmd_space_home(&s, 13), 0, "the neighbour region is untouched");
    cr_assert_eq(dsmd_space_home(&s, 14), 1);

    dsmd_space_region_add(&s, 30, 2, DSMW_PLACE_BLOCK, 0); /* the last pages of the collective area */
    cr_assert_eq(dsmd_space_home(&s, 30), 0);
    cr_assert_eq(dsmd_space_home(&s, 31), 1);
    cr_assert_eq(dsmd_space_home(&s, 32), 0, "the arena of node 0 keeps its home");
    dsmd_space_region_free(&s, 30, 2);
    cr_assert_eq(dsmd_space_home(&s, 31), DSMD_NO_HOME);
    cr_assert_eq(dsmd_space_home(&s, 32), 0);

    /* freeing arena pages (a dsm_malloc block) gives them back to the arena's node */
    dsmd_space_region_free(&s, 40, 8);
    for (uint64_t p = 40; p < 48; p++)
        cr_assert_eq(dsmd_space_home(&s, p), 1, "arena page %llu of node 1", (unsigned long long)p);
    dsmd_space_fini(&s);
}

Test(space, region_of_fewer_pages_than_nodes)
{
    struct dsmd_space s;

    cr_assert_eq(dsmd_space_init(&s, 40, 8, 8), DSM_OK);   /* collective [0,20) */
    dsmd_space_region_add(&s, 5, 3, DSMW_PLACE_BLOCK, 0);
    cr_assert_eq(dsmd_space_home(&s, 5), 0);
    cr_assert_eq(dsmd_space_home(&s, 6), 1);
    cr_assert_eq(dsmd_space_home(&s, 7), 2);
    cr_assert_eq(dsmd_space_home(&s, 8), DSMD_NO_HOME);
    dsmd_space_region_add(&s, 10, 1, DSMW_PLACE_BLOCK, 0);
    cr_assert_eq(dsmd_space_home(&s, 10), 0);
    dsmd_space_fini(&s);
}

/* Memory nodes (the last ones) get no dsm_malloc arena: the arenas split over the others. */
Test(space, arenas_skip_memory_nodes)
{
    struct dsmd_space s;

    cr_assert_eq(dsmd_space_init(&s, 64, 4, 2), DSM_OK);   /* collective [0,32), 2 arenas of 16 */
    cr_assert_eq(s.arena_pages, 16);
    cr_assert_eq(dsmd_space_arena_node(&s, 32), 0);
    cr_assert_eq(dsmd_space_arena_node(&s, 48), 1);
    cr_assert_eq(dsmd_space_arena_node(&s, 63), 1);
    cr_assert_eq(dsmd_space_init(&s, 64, 4, 5), DSM_ECONFIG);
    cr_assert_eq(dsmd_space_init(&s, 64, 4, 0), DSM_ECONFIG);
    dsmd_space_fini(&s);
}

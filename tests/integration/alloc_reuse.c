/*
 * alloc_reuse.c - dsm_malloc / dsm_free and dsm_coalloc / dsm_cofree across ranks.
 *
 * 1. Every rank dsm_mallocs a block (homed on its node), fills it with its own pattern and
 *    publishes the address in a collective table; every rank then checks every block.
 * 2. Each rank frees its block and allocates the same size again, ROUNDS times: each new
 *    block must read as zeroes on every rank, however the old one was written and cached.
 * 3. ROUNDS times: a collective allocation, written in stripes by all, checked by all, freed
 *    by all; every new one must read as zeroes.
 * 4. dsm_free and dsm_cofree of addresses they never returned are refused without harm.
 * Exit 1 on any wrong byte.
 */
#include <dsm/dsm.h>

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define BLOCK  (3 * 4096 + 100) /* not a page multiple: rounded up */
#define ROUNDS 12
#define COLL   (64 * 4096)

static long bad;

static void expect(int cond, const char *what, long i)
{
    if (!cond && bad++ < 10)
        fprintf(stderr, "alloc_reuse: rank %d: %s (index %ld)\n", dsm_rank(), what, i);
}

static uint8_t pattern(int rank, long i) { return (uint8_t)(rank * 37 + i * 11 + 1); }

/* Check that every rank's published block reads as zero (want_zero) or its pattern. */
static void check_blocks(uint8_t *volatile *table, int want_zero)
{
    for (int r = 0; r < dsm_nranks(); r++)
        for (long i = 0; i < BLOCK; i++)
            expect(table[r][i] == (want_zero ? 0 : pattern(r, i)),
                   want_zero ? "reused dsm_malloc block not zero" : "wrong byte in a remote block", i);
}

int main(int argc, char **argv)
{
    int rc = dsm_init(&argc, &argv), me, n;
    uint8_t *volatile *table;

    if (rc != 0) {
        fprintf(stderr, "alloc_reuse: dsm_init: %s\n", dsm_strerror(rc));
        return 1;
    }
    me = dsm_rank();
    n = dsm_nranks();
    table = dsm_coalloc((size_t)n * sizeof(*table));
    if (table == NULL)
        return 1;

    /* 1 */
    table[me] = dsm_malloc(BLOCK);
    expect(table[me] != NULL, "dsm_malloc failed", 0);
    for (long i = 0; i < BLOCK; i++)
        table[me][i] = pattern(me, i);
    dsm_barrier();
    check_blocks(table, 0);
    dsm_barrier();

    /* 2 */
    for (int round = 0; round < ROUNDS; round++) {
        dsm_free(table[me]);
        table[me] = dsm_malloc(BLOCK);
        expect(table[me] != NULL, "dsm_malloc after dsm_free failed", round);
        dsm_barrier();
        check_blocks(table, 1);
        dsm_barrier();
        for (long i = 0; i < BLOCK; i++)
            table[me][i] = pattern(me, i);
        dsm_barrier();
        check_blocks(table, 0);
        dsm_barrier();
    }

    /* 3 */
    for (int round = 0; round < ROUNDS; round++) {
        uint8_t *c = dsm_coalloc(COLL);

        expect(c != NULL, "dsm_coalloc failed", round);
        for (long i = 0; i < COLL; i++)
            expect(c[i] == 0, "new collective allocation not zero", i);
        dsm_barrier();
        for (long i = me; i < COLL; i += n)
            c[i] = (uint8_t)(round + i);
        dsm_barrier();
        for (long i = 0; i < COLL; i++)
            expect(c[i] == (uint8_t)(round + i), "wrong byte in a collective allocation", i);
        dsm_barrier();
        dsm_cofree(c);
    }

    /* 4: refused with a message, and nothing else changes */
    dsm_free((char *)table[me] + 1);
    dsm_cofree((char *)table + 4096 * 1000);
    dsm_barrier();
    check_blocks(table, 0);

    printf("alloc_reuse: rank %d: %s\n", me, bad ? "FAILED" : "all blocks verified OK");
    dsm_finalize();
    return bad != 0;
}

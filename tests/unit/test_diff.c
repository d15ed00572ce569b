/*
 * test_diff.c - unit suite for twins and diffs (consistency/common/diff.h): round trips
 * over random pages with fixed seeds, the byte-granular merge of two writers' changes to
 * the same words (false sharing), the empty diff, malformed encodings refused with nothing
 * written, and a remote diff applied to a page and its twin together.
 */
#include <criterion/criterion.h>

#include <stdlib.h>
#include <string.h>

#include "diff.h"

#define PS 4096u

static uint32_t rnd(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(*s >> 33);
}

static void random_bytes(uint8_t *b, size_t n, uint64_t *s)
{
    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)rnd(s);
}

/* Change some bytes of page: single bytes, short runs and an occasional long run. */
static void random_changes(uint8_t *page, size_t ps, uint64_t *s)
{
    int k = (int)(rnd(s) % 40);

    for (int i = 0; i < k; i++) {
        size_t off = rnd(s) % ps, len = rnd(s) % 4 == 0 ? rnd(s) % 300 + 1 : rnd(s) % 9 + 1;

        if (len > ps - off)
            len = ps - off;
        for (size_t j = off; j < off + len; j++)
            page[j] = (uint8_t)(page[j] + 1 + rnd(s) % 255); /* always a different value */
    }
}

/* Walk an encoding and check it is canonical: runs ascending, disjoint, not adjacent, each
 * byte really changed. */
static void check_canonical(const uint8_t *d, size_t len, const uint8_t *cur, const uint8_t *twin, size_t ps)
{
    size_t i = 0, prev_end = 0;
    int first = 1;

    while (i < len) {
        size_t off, n;

        cr_assert_geq(len - i, 4, "truncated run header");
        off = d[i] | (size_t)d[i + 1] << 8;
        n = d[i + 2] | (size_t)d[i + 3] << 8;
        cr_assert_gt(n, 0, "empty run at %zu", off);
        cr_assert(first || off > prev_end, "run at %zu does not start after the previous end %zu", off, prev_end);
        cr_assert_leq(off + n, ps);
        for (size_t j = off; j < off + n; j++) {
            cr_assert_neq(cur[j], twin[j], "unchanged byte %zu inside a run", j);
            cr_assert_eq(d[i + 4 + (j - off)], cur[j]);
        }
        prev_end = off + n;
        first = 0;
        i += 4 + n;
    }
    cr_assert_eq(i, len);
}

static void round_trip(size_t ps, uint64_t seed)
{
    uint8_t *twin = malloc(ps), *cur = malloc(ps), *out = malloc(dsmp_diff_max(ps)), *page = malloc(ps),
            *twin2 = malloc(ps);
    uint64_t s = seed;
    size_t len;

    cr_assert(twin && cur && out && page && twin2);
    random_bytes(twin, ps, &s);
    memcpy(cur, twin, ps);
    random_changes(cur, ps, &s);
    len = dsmp_diff_make(cur, twin, ps, out);
    cr_assert_leq(len, dsmp_diff_max(ps));
    check_canonical(out, len, cur, twin, ps);
    cr_assert_eq(len == 0, memcmp(cur, twin, ps) == 0, "seed %llu: empty diff iff no change", (unsigned long long)seed);

    memcpy(page, twin, ps);
    memcpy(twin2, twin, ps);
    cr_assert_eq(dsmp_diff_apply(page, NULL, ps, out, len), DSM_OK, "seed %llu", (unsigned long long)seed);
    cr_assert_eq(memcmp(page, cur, ps), 0, "seed %llu (page %zu): twin + diff != page", (unsigned long long)seed, ps);
    memcpy(page, twin, ps);
    cr_assert_eq(dsmp_diff_apply(page, twin2, ps, out, len), DSM_OK);
    cr_assert_eq(memcmp(page, cur, ps), 0);
    cr_assert_eq(memcmp(twin2, cur, ps), 0, "the twin was not updated with the page");
    free(twin);
    free(cur);
    free(out);
    free(page);
    free(twin2);
}

Test(diff, random_round_trips)
{
    for (uint64_t seed = 1; seed <= 2000; seed++)
        round_trip(PS, seed);
}

Test(diff, random_round_trips_other_page_sizes)
{
    static const size_t sizes[] = { 8, 16, 64, 520, 8192, 65528 };

    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++)
        for (uint64_t seed = 1; seed <= 200; seed++)
            round_trip(sizes[k], seed * 31 + k);
}

Test(diff, edges_of_the_page_and_word_boundaries)
{
    uint8_t twin[PS], cur[PS], out[dsmp_diff_max(PS)], page[PS];
    static const size_t offs[] = { 0, 7, 8, 15, 4088, 4095 };
    size_t len;

    memset(twin, 0xaa, PS);
    memcpy(cur, twin, PS);
    for (size_t k = 0; k < sizeof(offs) / sizeof(offs[0]); k++)
        cur[offs[k]] = 0x55;
    len = dsmp_diff_make(cur, twin, PS, out);
    /* 0, 7-8, 15, 4088, 4095: five runs (7 and 8 are adjacent across a word boundary) */
    cr_assert_eq(len, 5 * 4 + 6, "len %zu", len);
    check_canonical(out, len, cur, twin, PS);
    memcpy(page, twin, PS);
    cr_assert_eq(dsmp_diff_apply(page, NULL, PS, out, len), DSM_OK);
    cr_assert_eq(memcmp(page, cur, PS), 0);
}

Test(diff, worst_case_fits_diff_max)
{
    uint8_t twin[PS], cur[PS], out[dsmp_diff_max(PS)], page[PS];
    size_t len;

    memset(twin, 0, PS);
    for (size_t i = 0; i < PS; i++)
        cur[i] = i % 2 == 0 ? 1 : 0; /* every other byte */
    len = dsmp_diff_make(cur, twin, PS, out);
    cr_assert_eq(len, PS / 2 * 5);
    cr_assert_leq(len, dsmp_diff_max(PS));
    memcpy(page, twin, PS);
    cr_assert_eq(dsmp_diff_apply(page, NULL, PS, out, len), DSM_OK);
    cr_assert_eq(memcmp(page, cur, PS), 0);

    memset(cur, 0xff, PS);             /* the whole page: one run */
    len = dsmp_diff_make(cur, twin, PS, out);
    cr_assert_eq(len, 4 + PS);
    memcpy(page, twin, PS);
    cr_assert_eq(dsmp_diff_apply(page, NULL, PS, out, len), DSM_OK);
    cr_assert_eq(memcmp(page, cur, PS), 0);
}

Test(diff, empty_diff)
{
    uint8_t twin[PS], out[8] = { 0 }, page[PS];

    memset(twin, 0x3c, PS);
    cr_assert_eq(dsmp_diff_make(twin, twin, PS, out), 0);
    memset(page, 0x11, PS);
    cr_assert_eq(dsmp_diff_apply(page, NULL, PS, out, 0), DSM_OK);
    for (size_t i = 0; i < PS; i++)
        cr_assert_eq(page[i], 0x11, "an empty diff wrote byte %zu", i);
}

/*
 * False sharing: two nodes hold the same page (same twin), each writes different bytes of
 * the SAME words. Each diff must carry only the bytes its writer changed, so the home ends
 * with both writers' bytes whichever diff lands first.
 */
Test(diff, two_writers_of_the_same_words_merge_byte_by_byte)
{
    uint8_t base[PS], a[PS], b[PS], da[dsmp_diff_max(PS)], db[dsmp_diff_max(PS)], home[PS], want[PS];
    size_t la, lb;
    uint64_t s = 42;

    random_bytes(base, PS, &s);
    memcpy(a, base, PS);
    memcpy(b, base, PS);
    memcpy(want, base, PS);
    for (size_t i = 0; i < PS; i++) {
        if (i % 2 == 0)
            a[i] = want[i] = (uint8_t)(base[i] ^ 0x5a); /* A: even bytes of every word */
        else if (i % 8 != 7)
            b[i] = want[i] = (uint8_t)(base[i] ^ 0xa5); /* B: odd bytes, but the last of each word */
    }
    la = dsmp_diff_make(a, base, PS, da);
    lb = dsmp_diff_make(b, base, PS, db);
    cr_assert_gt(la, 0);
    cr_assert_gt(lb, 0);

    memcpy(home, base, PS);
    cr_assert_eq(dsmp_diff_apply(home, NULL, PS, da, la), DSM_OK);
    cr_assert_eq(dsmp_diff_apply(home, NULL, PS, db, lb), DSM_OK);
    cr_assert_eq(memcmp(home, want, PS), 0, "A then B lost bytes");

    memcpy(home, base, PS);
    cr_assert_eq(dsmp_diff_apply(home, NULL, PS, db, lb), DSM_OK);
    cr_assert_eq(dsmp_diff_apply(home, NULL, PS, da, la), DSM_OK);
    cr_assert_eq(memcmp(home, want, PS), 0, "B then A lost bytes");
}

/* ---- malformed encodings: refused, nothing written ---------------------------------------- */

static size_t run(uint8_t *d, size_t o, unsigned off, unsigned n, uint8_t fill)
{
    d[o] = (uint8_t)off;
    d[o + 1] = (uint8_t)(off >> 8);
    d[o + 2] = (uint8_t)n;
    d[o + 3] = (uint8_t)(n >> 8);
    memset(d + o + 4, fill, n);
    return o + 4 + n;
}

static void expect_refused(const uint8_t *d, size_t len, const char *what)
{
    uint8_t page[PS], twin[PS];

    memset(page, 0x77, PS);
    memset(twin, 0x66, PS);
    cr_assert_eq(dsmp_diff_apply(page, twin, PS, d, len), DSM_EPROTO, "%s: accepted", what);
    for (size_t i = 0; i < PS; i++) {
        cr_assert_eq(page[i], 0x77, "%s: page byte %zu written", what, i);
        cr_assert_eq(twin[i], 0x66, "%s: twin byte %zu written", what, i);
    }
}

Test(diff, malformed_encodings_are_refused_and_write_nothing)
{
    uint8_t d[256];
    size_t o;

    /* each starts with a valid run, so a decoder that writes as it goes would be caught */
    o = run(d, 0, 0, 8, 1);
    o = run(d, o, 4, 8, 2);
    expect_refused(d, o, "overlapping runs");

    o = run(d, 0, 100, 4, 1);
    o = run(d, o, 10, 4, 2);
    expect_refused(d, o, "unsorted runs");

    o = run(d, 0, 0, 4, 1);
    o = run(d, o, 50, 4, 2);
    o = run(d, o, 50, 4, 3);
    expect_refused(d, o, "the same run twice");

    o = run(d, 0, 0, 4, 1);
    o = run(d, o, 20, 0, 2);
    expect_refused(d, o, "zero length run");

    o = run(d, 0, 0, 4, 1);
    o = run(d, o, PS - 4, 8, 2);
    expect_refused(d, o, "run past the end of the page");

    o = run(d, 0, 0, 4, 1);
    o = run(d, o, PS, 1, 2);
    expect_refused(d, o, "run starting at the page size");

    o = run(d, 0, 0, 4, 1);
    o = run(d, o, 65535, 1, 2);
    expect_refused(d, o, "offset far past the page");

    o = run(d, 0, 0, 4, 1);
    o = run(d, o, 100, 16, 2);
    expect_refused(d, o - 1, "last run's data truncated");
    expect_refused(d, 8 + 3, "truncated run header");
    expect_refused(d, 8 + 1, "one stray byte after a run");
    expect_refused(d, 2, "header only half there");
}

Test(diff, adjacent_runs_are_accepted)
{
    uint8_t d[64], page[PS];
    size_t o;

    /* the encoder merges adjacent bytes, but two adjacent runs are still well formed */
    o = run(d, 0, 8, 4, 1);
    o = run(d, o, 12, 4, 2);
    memset(page, 0, PS);
    cr_assert_eq(dsmp_diff_apply(page, NULL, PS, d, o), DSM_OK);
    cr_assert_eq(page[8], 1);
    cr_assert_eq(page[15], 2);
    cr_assert_eq(page[7], 0);
    cr_assert_eq(page[16], 0);
}

/*
 * A node writing a page (twinned) receives another node's diff of other bytes: applied to
 * the page and the twin together, the remote bytes are not mistaken for local writes at the
 * next diff, and the local writes are still there.
 */
Test(diff, remote_diff_updates_page_and_twin_together)
{
    uint8_t twin[PS], cur[PS], remote[PS], dr[dsmp_diff_max(PS)], dl[dsmp_diff_max(PS)], check[PS];
    size_t lr, ll;

    memset(twin, 0, PS);
    memcpy(cur, twin, PS);
    cur[10] = 0x10;                    /* local write */
    cur[4000] = 0x40;
    memcpy(remote, twin, PS);
    remote[11] = 0x11;                 /* remote writes: same word as a local one, and elsewhere */
    remote[2048] = 0x20;
    lr = dsmp_diff_make(remote, twin, PS, dr);
    cr_assert_eq(dsmp_diff_apply(cur, twin, PS, dr, lr), DSM_OK);
    cr_assert_eq(cur[10], 0x10, "local write lost");
    cr_assert_eq(cur[11], 0x11);
    cr_assert_eq(twin[11], 0x11, "twin not updated");
    cr_assert_eq(twin[2048], 0x20);
    cr_assert_eq(twin[10], 0, "a local write leaked into the twin");

    ll = dsmp_diff_make(cur, twin, PS, dl);
    cr_assert_eq(ll, 2 * (4 + 1), "the local diff should hold exactly bytes 10 and 4000 (len %zu)", ll);
    memset(check, 0, PS);
    cr_assert_eq(dsmp_diff_apply(check, NULL, PS, dl, ll), DSM_OK);
    cr_assert_eq(check[10], 0x10);
    cr_assert_eq(check[4000], 0x40);
    cr_assert_eq(check[11], 0, "a remote byte was sent back as a local write");
    cr_assert_eq(check[2048], 0);
}

/*
 * test_notices.c - unit suite for write notices, page runs and vector clocks
 * (consistency/common/notices.h): the store, encoding the notices of a clock range, walking
 * (and refusing) encodings, runs built from page lists, and the clock helpers.
 */
#include <criterion/criterion.h>

#include <stdlib.h>
#include <string.h>

#include "notices.h"

static uint64_t get_le(const uint8_t *p, int bytes)
{
    uint64_t v = 0;

    for (int k = 0; k < bytes; k++)
        v |= (uint64_t)p[k] << (8 * k);
    return v;
}

static void put_le(uint8_t *p, uint64_t v, int bytes)
{
    for (int k = 0; k < bytes; k++)
        p[k] = (uint8_t)(v >> (8 * k));
}

/* Runs naming one page `page` (12 bytes). */
static void one_page(uint8_t *r, uint64_t page)
{
    put_le(r, page, 8);
    put_le(r + 8, 1, 4);
}

/* ---- the store ---------------------------------------------------------------------------- */

Test(notices, add_and_get)
{
    struct dsmp_notices s;
    uint8_t r1[12], r2[12];
    const struct dsmp_notice *n;

    cr_assert_eq(dsmp_notices_init(&s, 3), DSM_OK);
    one_page(r1, 7);
    one_page(r2, 9);
    cr_assert_null(dsmp_notices_get(&s, 0, 1));
    cr_assert_eq(dsmp_notices_add(&s, 1, 1, r1, 12), DSM_OK);
    n = dsmp_notices_get(&s, 1, 1);
    cr_assert_not_null(n);
    cr_assert_eq(n->len, 12);
    cr_assert_neq(n->runs, r1, "the store must copy the runs");
    cr_assert_eq(memcmp(n->runs, r1, 12), 0);
    memset(r1, 0xff, 12);                      /* the caller's buffer is reused */
    cr_assert_eq(get_le(dsmp_notices_get(&s, 1, 1)->runs, 8), 7);

    /* a known interval is kept as it is */
    cr_assert_eq(dsmp_notices_add(&s, 1, 1, r2, 12), DSM_OK);
    cr_assert_eq(get_le(dsmp_notices_get(&s, 1, 1)->runs, 8), 7);

    /* other nodes and intervals are unknown */
    cr_assert_null(dsmp_notices_get(&s, 0, 1));
    cr_assert_null(dsmp_notices_get(&s, 2, 1));
    cr_assert_null(dsmp_notices_get(&s, 1, 2));
    cr_assert_null(dsmp_notices_get(&s, 1, 0));
    cr_assert_null(dsmp_notices_get(&s, -1, 1));
    cr_assert_null(dsmp_notices_get(&s, 3, 1));

    /* bad arguments */
    cr_assert_eq(dsmp_notices_add(&s, 1, 0, r2, 12), DSM_EINVAL);
    cr_assert_eq(dsmp_notices_add(&s, 3, 1, r2, 12), DSM_EINVAL);
    cr_assert_eq(dsmp_notices_add(&s, -1, 1, r2, 12), DSM_EINVAL);

    /* an empty notice (an interval that wrote nothing) is still known */
    cr_assert_eq(dsmp_notices_add(&s, 2, 1, r2, 0), DSM_OK);
    n = dsmp_notices_get(&s, 2, 1);
    cr_assert_not_null(n);
    cr_assert_eq(n->len, 0);
    dsmp_notices_fini(&s);
}

Test(notices, sparse_and_growing_intervals)
{
    struct dsmp_notices s;
    uint8_t r[12];

    cr_assert_eq(dsmp_notices_init(&s, 2), DSM_OK);
    for (uint32_t i = 1; i <= 1000; i += 3) {
        one_page(r, i);
        cr_assert_eq(dsmp_notices_add(&s, 0, i, r, 12), DSM_OK);
    }
    one_page(r, 5);
    cr_assert_eq(dsmp_notices_add(&s, 1, 100000, r, 12), DSM_OK);
    for (uint32_t i = 1; i <= 1002; i++) {
        const struct dsmp_notice *n = dsmp_notices_get(&s, 0, i);

        if (i % 3 == 1 && i <= 1000) {
            cr_assert_not_null(n, "interval %u lost", i);
            cr_assert_eq(get_le(n->runs, 8), i);
        } else {
            cr_assert_null(n, "interval %u invented", i);
        }
    }
    cr_assert_not_null(dsmp_notices_get(&s, 1, 100000));
    cr_assert_null(dsmp_notices_get(&s, 1, 99999));
    dsmp_notices_fini(&s);
    dsmp_notices_fini(&s); /* twice is harmless */
}

/* ---- encode and walk ---------------------------------------------------------------------- */

struct seen {
    int n;
    int node[64];
    uint32_t i[64], last[64];
    uint64_t first[64];
    dsm_status_t fail_at;   /* return this status at record `stop` */
    int stop;
};

static dsm_status_t collect(void *arg, int node, uint32_t i, uint32_t last, const uint8_t *runs, uint32_t rlen)
{
    struct seen *s = arg;

    if (s->stop > 0 && s->n + 1 == s->stop)
        return s->fail_at;
    cr_assert_lt(s->n, 64);
    s->node[s->n] = node;
    s->i[s->n] = i;
    s->last[s->n] = last;
    s->first[s->n] = rlen >= 12 ? get_le(runs, 8) : UINT64_MAX;
    s->n++;
    return DSM_OK;
}

/* Store: node n wrote page 100*n + i in interval i, for i = 1..5, n = 0..2. */
static void fill_store(struct dsmp_notices *s)
{
    uint8_t r[12];

    cr_assert_eq(dsmp_notices_init(s, 3), DSM_OK);
    for (int n = 0; n < 3; n++)
        for (uint32_t i = 1; i <= 5; i++) {
            one_page(r, 100u * (unsigned)n + i);
            cr_assert_eq(dsmp_notices_add(s, n, i, r, 12), DSM_OK);
        }
}

Test(notices, encode_the_range_from_to_per_node)
{
    struct dsmp_notices s;
    uint32_t from[3] = { 0, 2, 5 }, to[3] = { 2, 5, 5 };
    uint8_t buf[1024];
    size_t len = 12345;
    struct seen seen = { 0 };
    static const int want_node[] = { 0, 0, 1, 1, 1 };
    static const uint32_t want_i[] = { 1, 2, 3, 4, 5 };

    fill_store(&s);
    cr_assert_eq(dsmp_notices_encode(&s, from, to, buf, sizeof(buf), &len), DSM_OK);
    cr_assert_eq(len, 5 * (10 + 12));
    /* exact layout of the first record: [u16 node][u32 interval][u32 bytes][runs] */
    cr_assert_eq(get_le(buf, 2), 0);
    cr_assert_eq(get_le(buf + 2, 4), 1);
    cr_assert_eq(get_le(buf + 6, 4), 12);
    cr_assert_eq(get_le(buf + 10, 8), 1);
    cr_assert_eq(get_le(buf + 18, 4), 1);

    cr_assert_eq(dsmp_notices_walk(buf, len, 3, collect, &seen), DSM_OK);
    cr_assert_eq(seen.n, 5);
    for (int k = 0; k < 5; k++) {
        cr_assert_eq(seen.node[k], want_node[k], "record %d", k);
        cr_assert_eq(seen.i[k], want_i[k], "record %d", k);
        cr_assert_eq(seen.first[k], 100u * (unsigned)want_node[k] + want_i[k]);
    }

    /* nothing in range: an empty encoding, which walks to nothing */
    memcpy(to, from, sizeof(to));
    cr_assert_eq(dsmp_notices_encode(&s, from, to, buf, sizeof(buf), &len), DSM_OK);
    cr_assert_eq(len, 0);
    memset(&seen, 0, sizeof(seen));
    cr_assert_eq(dsmp_notices_walk(buf, 0, 3, collect, &seen), DSM_OK);
    cr_assert_eq(seen.n, 0);
    dsmp_notices_fini(&s);
}

static void expect_walk_refused(const uint8_t *b, size_t len, int nnodes, int calls_before, const char *what);

/* A merged record stands for a range of intervals: the walk hands it over once, the store
 * keeps one copy of its runs for all of them, and a merged encoding of the range reads it
 * once (a record of 2^20 intervals walked per interval took minutes: fuzz_wire). */
Test(notices, a_merged_range_is_one_call_and_one_copy)
{
    const uint32_t first = 10, last = 10 + (1u << 20);
    struct dsmp_notices s;
    struct seen seen = { 0 };
    uint8_t r[12], r2[12], b[64];
    uint32_t from[2] = { 0, 4 }, to[2] = { 0, last };
    const struct dsmp_notice *a, *z;
    size_t len;

    put_le(r, 7, 8);
    put_le(r + 8, 3, 4); /* pages 7..9 */
    put_le(b, 1 | 0x8000, 2);
    put_le(b + 2, first, 4);
    put_le(b + 6, 12, 4);
    memcpy(b + 10, r, 12);
    put_le(b + 22, last, 4);
    cr_assert_eq(dsmp_notices_walk(b, 26, 2, collect, &seen), DSM_OK);
    cr_assert_eq(seen.n, 1);
    cr_assert_eq(seen.node[0], 1);
    cr_assert_eq(seen.i[0], first);
    cr_assert_eq(seen.last[0], last);
    cr_assert_eq(seen.first[0], 7);
    put_le(b + 22, first + DSMP_NOTICES_SPAN_MAX + 1, 4);
    expect_walk_refused(b, 26, 2, 0, "a merged span past DSMP_NOTICES_SPAN_MAX");

    cr_assert_eq(dsmp_notices_init(&s, 2), DSM_OK);
    cr_assert_eq(dsmp_notices_add_range(&s, 1, first, last, r, 12), DSM_OK);
    a = dsmp_notices_get(&s, 1, first);
    z = dsmp_notices_get(&s, 1, last);
    cr_assert(a != NULL && z != NULL);
    cr_assert_eq(a->runs, z->runs, "the intervals of one range share one copy");
    cr_assert_eq(z->len, 12);
    cr_assert_null(dsmp_notices_get(&s, 1, first - 1));
    cr_assert_null(dsmp_notices_get(&s, 1, last + 1));
    /* an overlapping range fills only what is unknown */
    one_page(r2, 40);
    cr_assert_eq(dsmp_notices_add_range(&s, 1, 5, first + 1, r2, 12), DSM_OK);
    cr_assert_eq(get_le(dsmp_notices_get(&s, 1, 5)->runs, 8), 40);
    cr_assert_eq(get_le(dsmp_notices_get(&s, 1, first - 1)->runs, 8), 40);
    cr_assert_eq(dsmp_notices_get(&s, 1, first + 1)->runs, a->runs);
    cr_assert_eq(dsmp_notices_add_range(&s, 1, 1, 2 + DSMP_NOTICES_SPAN_MAX, r2, 12), DSM_EINVAL);
    cr_assert_eq(dsmp_notices_add_range(&s, 1, 3, 2, r2, 12), DSM_EINVAL);

    /* (4, last] merged: pages 40 (intervals 5..9) and 7..9 (10..last), each read once */
    cr_assert_eq(dsmp_notices_encode_merged(&s, from, to, 1024, b, sizeof(b), &len), DSM_OK);
    memset(&seen, 0, sizeof(seen));
    cr_assert_eq(dsmp_notices_walk(b, len, 2, collect, &seen), DSM_OK);
    cr_assert_eq(seen.n, 1);
    cr_assert_eq(seen.i[0], 5);
    cr_assert_eq(seen.last[0], last);
    cr_assert_eq(get_le(b + 6, 4), 24, "two runs: 7..9 and 40");
    cr_assert_eq(seen.first[0], 7);
    dsmp_notices_fini(&s); /* one free per copy: LeakSanitizer and ASan check it */
}

Test(notices, encode_without_a_needed_notice_is_estate)
{
    struct dsmp_notices s;
    uint32_t from[3] = { 0, 0, 0 }, to[3] = { 5, 6, 0 };
    uint8_t buf[1024];
    size_t len = 0;

    fill_store(&s);
    cr_assert_eq(dsmp_notices_encode(&s, from, to, buf, sizeof(buf), &len), DSM_ESTATE, "interval 6 of node 1");
    to[1] = 5;
    to[2] = 5;
    cr_assert_eq(dsmp_notices_encode(&s, from, to, buf, sizeof(buf), &len), DSM_OK);
    cr_assert_eq(len, 15 * 22);
    dsmp_notices_fini(&s);

    /* a gap in the middle */
    cr_assert_eq(dsmp_notices_init(&s, 2), DSM_OK);
    {
        uint8_t r[12];

        one_page(r, 1);
        cr_assert_eq(dsmp_notices_add(&s, 1, 1, r, 12), DSM_OK);
        cr_assert_eq(dsmp_notices_add(&s, 1, 3, r, 12), DSM_OK);
    }
    {
        uint32_t f[2] = { 0, 0 }, t[2] = { 0, 3 };

        cr_assert_eq(dsmp_notices_encode(&s, f, t, buf, sizeof(buf), &len), DSM_ESTATE);
        f[1] = 2;
        cr_assert_eq(dsmp_notices_encode(&s, f, t, buf, sizeof(buf), &len), DSM_OK, "(2, 3] needs only 3");
        cr_assert_eq(len, 22);
    }
    dsmp_notices_fini(&s);
}

Test(notices, encode_that_does_not_fit_is_enospace)
{
    struct dsmp_notices s;
    uint32_t from[3] = { 0, 0, 0 }, to[3] = { 5, 5, 5 };
    uint8_t buf[15 * 22];
    size_t len = 0;

    fill_store(&s);
    cr_assert_eq(dsmp_notices_encode(&s, from, to, buf, sizeof(buf), &len), DSM_OK, "exactly enough room");
    cr_assert_eq(len, sizeof(buf));
    cr_assert_eq(dsmp_notices_encode(&s, from, to, buf, sizeof(buf) - 1, &len), DSM_ENOSPACE);
    cr_assert_eq(dsmp_notices_encode(&s, from, to, buf, 9, &len), DSM_ENOSPACE, "less than one header");
    cr_assert_eq(dsmp_notices_encode(&s, from, to, buf, 0, &len), DSM_ENOSPACE);
    dsmp_notices_fini(&s);
}

/* A valid two-record encoding to corrupt. */
static size_t two_records(uint8_t *b)
{
    size_t o = 0;

    put_le(b + o, 1, 2);
    put_le(b + o + 2, 1, 4);
    put_le(b + o + 6, 12, 4);
    one_page(b + o + 10, 3);
    o += 22;
    put_le(b + o, 2, 2);
    put_le(b + o + 2, 4, 4);
    put_le(b + o + 6, 24, 4);
    one_page(b + o + 10, 5);
    one_page(b + o + 22, 8);
    return o + 34;
}

static void expect_walk_refused(const uint8_t *b, size_t len, int nnodes, int calls_before, const char *what)
{
    struct seen seen = { 0 };

    cr_assert_eq(dsmp_notices_walk(b, len, nnodes, collect, &seen), DSM_EPROTO, "%s: accepted", what);
    cr_assert_eq(seen.n, calls_before, "%s: fn called %d times, want %d", what, seen.n, calls_before);
}

Test(notices, walk_refuses_malformed_encodings)
{
    uint8_t b[128];
    size_t len = two_records(b);
    struct seen seen = { 0 };

    cr_assert_eq(dsmp_notices_walk(b, len, 3, collect, &seen), DSM_OK);
    cr_assert_eq(seen.n, 2);
    cr_assert_eq(seen.node[1], 2);
    cr_assert_eq(seen.i[1], 4);

    expect_walk_refused(b, len, 2, 1, "node 2 in a 2-node job");
    expect_walk_refused(b, len - 1, 3, 1, "second record's runs truncated");
    expect_walk_refused(b, 22 + 9, 3, 1, "second header truncated");
    expect_walk_refused(b, 5, 3, 0, "first header truncated");

    len = two_records(b);
    put_le(b + 2, 0, 4);
    expect_walk_refused(b, len, 3, 0, "interval 0");

    len = two_records(b);
    put_le(b + 22 + 6, 23, 4);
    expect_walk_refused(b, len, 3, 1, "runs not a multiple of 12");

    len = two_records(b);
    put_le(b + 6, 12000, 4);
    expect_walk_refused(b, len, 3, 0, "runs longer than the buffer");
    put_le(b + 6, 0xfffffff0u, 4);   /* a multiple of 12 near 2^32 */
    expect_walk_refused(b, len, 3, 0, "runs far longer than the buffer");

    len = two_records(b);
    put_le(b, 0xffff, 2);
    expect_walk_refused(b, len, 3, 0, "node 65535");
}

Test(notices, walk_stops_at_the_callbacks_error)
{
    uint8_t b[128];
    size_t len = two_records(b);
    struct seen seen = { .fail_at = DSM_ENOMEM, .stop = 1 };

    cr_assert_eq(dsmp_notices_walk(b, len, 3, collect, &seen), DSM_ENOMEM);
    cr_assert_eq(seen.n, 0);
}

/* ---- runs ---------------------------------------------------------------------------------- */

static uint64_t got[4096];
static size_t ngot;

static void record_page(void *arg, uint64_t page)
{
    (void)arg;
    cr_assert_lt(ngot, 4096);
    got[ngot++] = page;
}

Test(notices, runs_build_and_each_round_trip)
{
    static const uint64_t pages[] = { 0, 1, 2, 5, 7, 8, 100, 4095 };
    uint8_t out[12 * 8];
    uint32_t len = dsmp_runs_build(pages, 8, out);

    cr_assert_eq(len, 5 * 12, "0-2, 5, 7-8, 100, 4095: five runs");
    cr_assert_eq(get_le(out, 8), 0);
    cr_assert_eq(get_le(out + 8, 4), 3);
    cr_assert_eq(get_le(out + 24, 8), 7);
    cr_assert_eq(get_le(out + 32, 4), 2);
    ngot = 0;
    cr_assert_eq(dsmp_runs_each(out, len, 4096, record_page, NULL), DSM_OK);
    cr_assert_eq(ngot, 8);
    for (size_t k = 0; k < 8; k++)
        cr_assert_eq(got[k], pages[k]);

    cr_assert_eq(dsmp_runs_build(pages, 0, out), 0);
    ngot = 0;
    cr_assert_eq(dsmp_runs_each(out, 0, 4096, record_page, NULL), DSM_OK);
    cr_assert_eq(ngot, 0);
}

Test(notices, runs_random_round_trips)
{
    uint64_t s = 7, pages[512];
    uint8_t out[12 * 512];

    for (int round = 0; round < 300; round++) {
        size_t n = 0;
        uint64_t p = 0;
        uint32_t len;

        while (n < 512) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            p += 1 + (s >> 60) % 3; /* steps of 1..3: runs and gaps */
            pages[n++] = p;
            if ((s >> 40) % 97 == 0)
                break;
        }
        len = dsmp_runs_build(pages, n, out);
        cr_assert_leq(len, 12 * n);
        ngot = 0;
        cr_assert_eq(dsmp_runs_each(out, len, p + 1, record_page, NULL), DSM_OK);
        cr_assert_eq(ngot, n);
        for (size_t k = 0; k < n; k++)
            cr_assert_eq(got[k], pages[k], "round %d page %zu", round, k);
        ngot = 0;
        cr_assert_eq(dsmp_runs_each(out, len, p, record_page, NULL), DSM_EPROTO, "last page = npages accepted");
        cr_assert_eq(ngot, 0, "pages reported before the check failed");
    }
}

Test(notices, runs_out_of_range_or_malformed_are_refused)
{
    uint8_t r[36];

    ngot = 0;
    put_le(r, 2, 8);
    put_le(r + 8, 3, 4);        /* 2..4, fine in 5 pages */
    put_le(r + 12, 9, 8);
    put_le(r + 20, 1, 4);       /* page 9 of 5 */
    cr_assert_eq(dsmp_runs_each(r, 24, 5, record_page, NULL), DSM_EPROTO);
    cr_assert_eq(ngot, 0, "a valid run was reported before the bad one was refused");
    cr_assert_eq(dsmp_runs_each(r, 12, 5, record_page, NULL), DSM_OK);
    cr_assert_eq(ngot, 3);

    ngot = 0;
    put_le(r + 12, 4, 8);
    put_le(r + 20, 2, 4);       /* 4..5 of 5 pages */
    cr_assert_eq(dsmp_runs_each(r, 24, 5, record_page, NULL), DSM_EPROTO, "run past npages");
    put_le(r + 12, UINT64_MAX - 1, 8);
    put_le(r + 20, 4, 4);       /* wraps around */
    cr_assert_eq(dsmp_runs_each(r, 24, 5, record_page, NULL), DSM_EPROTO, "wrapping run");
    put_le(r + 12, 1, 8);
    put_le(r + 20, 0xffffffffu, 4);
    cr_assert_eq(dsmp_runs_each(r, 24, 5, record_page, NULL), DSM_EPROTO, "huge count");
    cr_assert_eq(dsmp_runs_each(r, 13, 5, record_page, NULL), DSM_EPROTO, "length not a multiple of 12");
    cr_assert_eq(dsmp_runs_each(r, 11, 5, record_page, NULL), DSM_EPROTO);
    cr_assert_eq(ngot, 0);
}

/* ---- vector clocks ------------------------------------------------------------------------- */

Test(notices, vector_clock_helpers)
{
    uint32_t a[4] = { 1, 5, 0, 7 }, b[4] = { 2, 5, 3, 6 }, m[4];

    memcpy(m, a, sizeof(m));
    dsmp_vc_max(m, b, 4);
    cr_assert_eq(m[0], 2);
    cr_assert_eq(m[1], 5);
    cr_assert_eq(m[2], 3);
    cr_assert_eq(m[3], 7);
    cr_assert_eq(b[0], 2, "max changed its source");

    cr_assert(dsmp_vc_covered(a, m, 4));
    cr_assert(dsmp_vc_covered(b, m, 4));
    cr_assert(dsmp_vc_covered(a, a, 4), "a clock covers itself");
    cr_assert_not(dsmp_vc_covered(a, b, 4), "a[3] > b[3]");
    cr_assert_not(dsmp_vc_covered(b, a, 4), "b[0] > a[0]");
    cr_assert_not(dsmp_vc_covered(m, a, 4));
    cr_assert(dsmp_vc_covered(m, a, 0), "empty clocks");
    /* only the first n entries count */
    cr_assert(dsmp_vc_covered(a, b, 2));
}

/*
 * test_wire.c - unit suite for daemon-to-daemon message encoding, decoding and checking
 * (daemon/wire/wire.h, dsm_wire.proto).
 *
 * Covers: a round trip of every message type with every field set; garbage input (random
 * bytes and bit-flipped valid encodings, fixed seeds) that must never crash and must either
 * be rejected or yield a message dsmw_check accepts; every truncation of valid encodings;
 * the size limit (DSMW_MAX_MSG itself accepted, one byte more rejected); unknown types;
 * per-type range checks of page, node, rank, access and region fields; encoding into
 * buffers that are too small.
 */
#include <criterion/criterion.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dsm_chan.h"  /* enum dsm_access */
#include "wire.h"

#define NPAGES 100u
#define NNODES 4u
#define NRANKS 8u

static const struct dsmw_limits LIM = { .npages = NPAGES, .nnodes = NNODES, .nranks = NRANKS };

/* Every type the daemons exchange. */
static const int all_types[] = {
    DSMW__TYPE__READ_REQ,       DSMW__TYPE__WRITE_REQ,     DSMW__TYPE__GRANT,        DSMW__TYPE__INV,
    DSMW__TYPE__INV_ACK,        DSMW__TYPE__FETCH,         DSMW__TYPE__FETCH_REPLY,  DSMW__TYPE__EVICT,
    DSMW__TYPE__EVICTED,        DSMW__TYPE__LOCK_REQ,
    DSMW__TYPE__LOCK_GRANT,     DSMW__TYPE__UNLOCK,        DSMW__TYPE__BARRIER_ARRIVE,
    DSMW__TYPE__BARRIER_RELEASE, DSMW__TYPE__FINI_ARRIVE,  DSMW__TYPE__FINI_RELEASE, DSMW__TYPE__RANK_ABSENT,
    DSMW__TYPE__ALLOC_REQ,
    DSMW__TYPE__ALLOC_REPLY,    DSMW__TYPE__REGION_ADD,    DSMW__TYPE__REGION_FREE,  DSMW__TYPE__REGION_ACK,
    DSMW__TYPE__COFREE_REQ,     DSMW__TYPE__FREE_REQ,      DSMW__TYPE__ABORT,
    DSMW__TYPE__COND_WAIT,      DSMW__TYPE__COND_QUEUED,   DSMW__TYPE__COND_SIGNAL,  DSMW__TYPE__COND_WAKE,
};
#define NTYPES (sizeof(all_types) / sizeof(all_types[0]))

static uint64_t vclock_vals[] = { 1, 0, UINT64_MAX, 42 };
static uint8_t payload[300];

/* A message of `type` with every field set to an in-range, non-default value. */
static void full_msg(dsmw_msg_t *m, int type)
{
    dsmw_init(m, (Dsmw__Type)type);
    m->page = NPAGES - 1;
    m->origin = NRANKS - 1;
    m->access = DSM_ACCESS_WRITE;
    m->node = NNODES - 1;
    m->seq = 0x0123456789abcdefULL;
    m->lock = 0xdeadbeef;
    m->addr = 7;                 /* region [7, 7+count) fits in NPAGES */
    m->size = UINT64_MAX;
    m->status = -11;
    m->count = NPAGES - 7;
    m->epoch = 1ull << 40;
    m->text = "text with \xc3\xa9 and spaces";
    for (size_t i = 0; i < sizeof(payload); i++)
        payload[i] = (uint8_t)(i * 7 + 3);
    m->data.data = payload;
    m->data.len = sizeof(payload);
    m->n_vclock = 4;
    m->vclock = vclock_vals;
}

/* Encode into a fresh heap buffer of exactly the needed size (so ASan sees overreads). */
static uint8_t *encode_exact(const dsmw_msg_t *m, size_t *len)
{
    uint8_t *buf = malloc(DSMW_MAX_MSG * 4);
    uint8_t *exact;

    cr_assert_not_null(buf);
    cr_assert_eq(dsmw_encode(m, buf, DSMW_MAX_MSG * 4, len), DSM_OK);
    exact = malloc(*len ? *len : 1);
    cr_assert_not_null(exact);
    memcpy(exact, buf, *len);
    free(buf);
    return exact;
}

/* Decode and expect a rejection with a reason. */
static void expect_reject(const uint8_t *buf, size_t len, const char *what)
{
    dsmw_msg_t *out = (dsmw_msg_t *)0x1;
    const char *why = NULL;

    cr_assert_eq(dsmw_decode(buf, len, &LIM, &out, &why), DSM_EPROTO, "%s: accepted", what);
    cr_assert_null(out, "%s: *out must be NULL after a rejection", what);
    cr_assert_not_null(why, "%s: a rejection needs a reason", what);
}

/* Decode and expect acceptance; returns the message (caller frees). */
static dsmw_msg_t *expect_accept(const uint8_t *buf, size_t len, const char *what)
{
    dsmw_msg_t *out = NULL;
    const char *why = NULL;
    dsm_status_t st = dsmw_decode(buf, len, &LIM, &out, &why);

    cr_assert_eq(st, DSM_OK, "%s: rejected (%s)", what, why ? why : "no reason");
    cr_assert_not_null(out);
    return out;
}

/* Encode m and decode it back: accepted or rejected as `ok` says. */
static void expect_msg(const dsmw_msg_t *m, int ok, const char *what)
{
    size_t len;
    uint8_t *buf = encode_exact(m, &len);

    if (ok) {
        dsmw_free(expect_accept(buf, len, what));
        cr_assert_null(dsmw_check(m, &LIM), "%s: dsmw_check disagrees with dsmw_decode", what);
    } else {
        expect_reject(buf, len, what);
        cr_assert_not_null(dsmw_check(m, &LIM), "%s: dsmw_check disagrees with dsmw_decode", what);
    }
    free(buf);
}

static uint64_t rnd64(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* ---- round trip ------------------------------------------------------------------------ */

Test(wire, round_trip_of_every_type)
{
    for (size_t t = 0; t < NTYPES; t++) {
        dsmw_msg_t m, *d;
        size_t len;
        uint8_t *buf;

        full_msg(&m, all_types[t]);
        buf = encode_exact(&m, &len);
        d = expect_accept(buf, len, dsmw_type_name(all_types[t]));
        cr_assert_eq((int)d->type, all_types[t]);
        cr_assert_eq(d->page, m.page);
        cr_assert_eq(d->origin, m.origin);
        cr_assert_eq(d->access, m.access);
        cr_assert_eq(d->node, m.node);
        cr_assert_eq(d->seq, m.seq);
        cr_assert_eq(d->lock, m.lock);
        cr_assert_eq(d->addr, m.addr);
        cr_assert_eq(d->size, m.size);
        cr_assert_eq(d->status, m.status);
        cr_assert_eq(d->count, m.count);
        cr_assert_eq(d->epoch, m.epoch);
        cr_assert_str_eq(d->text, m.text);
        cr_assert_eq(d->data.len, m.data.len);
        cr_assert_eq(memcmp(d->data.data, m.data.data, m.data.len), 0);
        cr_assert_eq(d->n_vclock, m.n_vclock);
        for (size_t i = 0; i < m.n_vclock; i++)
            cr_assert_eq(d->vclock[i], m.vclock[i]);
        dsmw_free(d);
        free(buf);
    }
}

Test(wire, round_trip_of_a_minimal_message)
{
    dsmw_msg_t m, *d;
    size_t len;
    uint8_t *buf;

    dsmw_init(&m, DSMW__TYPE__INV);
    cr_assert_eq((int)m.type, DSMW__TYPE__INV);
    cr_assert_eq(m.page, 0);
    buf = encode_exact(&m, &len);
    cr_assert_eq(len, 2, "an INV for page 0 is just its type field (got %zu bytes)", len);
    d = expect_accept(buf, len, "minimal INV");
    cr_assert_eq((int)d->type, DSMW__TYPE__INV);
    cr_assert_eq(d->page, 0);
    cr_assert_eq(d->origin, 0);
    cr_assert_eq(d->n_vclock, 0);
    cr_assert_eq(d->data.len, 0);
    dsmw_free(d);
    dsmw_free(NULL);  /* documented as harmless */
    free(buf);
}

Test(wire, encoding_is_deterministic)
{
    uint8_t a[1024], b[1024];
    size_t la, lb;

    for (size_t t = 0; t < NTYPES; t++) {
        dsmw_msg_t m;

        full_msg(&m, all_types[t]);
        cr_assert_eq(dsmw_encode(&m, a, sizeof(a), &la), DSM_OK);
        cr_assert_eq(dsmw_encode(&m, b, sizeof(b), &lb), DSM_OK);
        cr_assert_eq(la, lb);
        cr_assert_eq(memcmp(a, b, la), 0);
        cr_assert_eq(la, dsmw__msg__get_packed_size(&m));
    }
}

Test(wire, type_names)
{
    cr_assert_str_eq(dsmw_type_name(DSMW__TYPE__READ_REQ), "READ_REQ");
    cr_assert_str_eq(dsmw_type_name(DSMW__TYPE__FETCH_REPLY), "FETCH_REPLY");
    cr_assert_str_eq(dsmw_type_name(DSMW__TYPE__ABORT), "ABORT");
    cr_assert_str_eq(dsmw_type_name(DSMW__TYPE__EVICT), "EVICT");
    cr_assert_str_eq(dsmw_type_name(18), "unknown");
    cr_assert_str_eq(dsmw_type_name(-1), "unknown");
    cr_assert_str_eq(dsmw_type_name(1 << 30), "unknown");
    for (size_t t = 0; t < NTYPES; t++)
        cr_assert_str_neq(dsmw_type_name(all_types[t]), "unknown");
}

/* ---- too small buffers ----------------------------------------------------------------- */

Test(wire, encode_into_a_too_small_buffer_fails_cleanly)
{
    static uint8_t buf[1024];

    for (size_t t = 0; t < NTYPES; t++) {
        dsmw_msg_t m;
        size_t need, len;

        full_msg(&m, all_types[t]);
        need = dsmw__msg__get_packed_size(&m);
        cr_assert_lt(need, sizeof(buf));
        for (size_t cap = 0; cap < need; cap++) {
            memset(buf, 0xa5, sizeof(buf));
            len = 4242;
            cr_assert_eq(dsmw_encode(&m, buf, cap, &len), DSM_EINVAL, "%s into %zu of %zu bytes",
                         dsmw_type_name(all_types[t]), cap, need);
            cr_assert_eq(len, 4242, "*len written on failure");
            for (size_t i = 0; i < sizeof(buf); i++)
                cr_assert_eq(buf[i], 0xa5, "byte %zu written by a failed encode", i);
        }
        cr_assert_eq(dsmw_encode(&m, buf, need, &len), DSM_OK, "exact fit");
        cr_assert_eq(len, need);
        cr_assert_eq(buf[need], 0xa5, "wrote past the message");
    }
}

/* ---- size limit ------------------------------------------------------------------------ */

/* A valid ABORT whose encoding is exactly `want` bytes (text padded to fit). */
static uint8_t *abort_of_size(size_t want, size_t *len)
{
    char *text = malloc(want + 1);
    dsmw_msg_t m;
    size_t n;
    uint8_t *buf;

    cr_assert_not_null(text);
    dsmw_init(&m, DSMW__TYPE__ABORT);
    m.text = text;
    /* the text's length prefix is 3 bytes from 128^2 up; find the text length that fits */
    for (n = want; n > 0; n--) {
        memset(text, 'x', n);
        text[n] = '\0';
        if (dsmw__msg__get_packed_size(&m) <= want)
            break;
    }
    cr_assert_eq(dsmw__msg__get_packed_size(&m), want, "could not build a message of %zu bytes", want);
    buf = encode_exact(&m, len);
    free(text);
    return buf;
}

Test(wire, size_limit_is_exact)
{
    size_t len;
    uint8_t *buf;

    buf = abort_of_size(DSMW_MAX_MSG, &len);
    cr_assert_eq(len, DSMW_MAX_MSG);
    dsmw_free(expect_accept(buf, len, "message of exactly DSMW_MAX_MSG bytes"));
    free(buf);

    buf = abort_of_size(DSMW_MAX_MSG + 1, &len);
    cr_assert_eq(len, DSMW_MAX_MSG + 1);
    expect_reject(buf, len, "message of DSMW_MAX_MSG + 1 bytes");
    free(buf);

    buf = abort_of_size(3 * DSMW_MAX_MSG, &len);
    expect_reject(buf, len, "message of 3 * DSMW_MAX_MSG bytes");
    free(buf);
}

/* ---- unknown types --------------------------------------------------------------------- */

Test(wire, unknown_types_are_rejected)
{
    static const int bad[] = { DSMW__TYPE__T_NONE, 18, 19, 27, 28, 29, 31, 100, 1 << 20, INT32_MAX, -1,
                               INT32_MIN };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        dsmw_msg_t m;
        char what[64];

        full_msg(&m, DSMW__TYPE__INV);
        m.type = (Dsmw__Type)bad[i];
        snprintf(what, sizeof(what), "type %d", bad[i]);
        expect_msg(&m, 0, what);
    }
}

Test(wire, empty_input_is_rejected)
{
    static const uint8_t nothing[1] = { 0 };

    expect_reject(nothing, 0, "zero bytes (type T_NONE)");
}

/* ---- per-type range checks ------------------------------------------------------------- */

/* Which fields each type relies on, as dsm_wire.proto documents them. */
enum { P = 1, N = 2, O = 4, A = 8, R = 16 };

static unsigned fields_of(int type)
{
    switch (type) {
    case DSMW__TYPE__READ_REQ:
    case DSMW__TYPE__WRITE_REQ:
    case DSMW__TYPE__EVICT:           return P | N | O;
    case DSMW__TYPE__EVICTED:         return P | O;
    case DSMW__TYPE__GRANT:           return P | O | A;
    case DSMW__TYPE__INV:
    case DSMW__TYPE__INV_ACK:
    case DSMW__TYPE__FETCH_REPLY:     return P | O;
    case DSMW__TYPE__FETCH:           return P | O | A;
    case DSMW__TYPE__LOCK_REQ:        return N | O;
    case DSMW__TYPE__LOCK_GRANT:
    case DSMW__TYPE__UNLOCK:
    case DSMW__TYPE__ALLOC_REQ:
    case DSMW__TYPE__ALLOC_REPLY:
    case DSMW__TYPE__COFREE_REQ:
    case DSMW__TYPE__FREE_REQ:        return O;
    case DSMW__TYPE__REGION_ADD:
    case DSMW__TYPE__REGION_FREE:     return R;
    default:                          return 0;
    }
}

Test(wire, page_node_rank_access_ranges_per_type)
{
    for (size_t t = 0; t < NTYPES; t++) {
        int type = all_types[t];
        unsigned f = fields_of(type);
        const char *name = dsmw_type_name(type);
        char what[96];
        dsmw_msg_t m;

        full_msg(&m, type);
        snprintf(what, sizeof(what), "%s with every field at its largest valid value", name);
        expect_msg(&m, 1, what);
        if (f & P) {
            static const uint64_t bad[] = { NPAGES, NPAGES + 1, UINT64_MAX };

            for (size_t i = 0; i < 3; i++) {
                full_msg(&m, type);
                m.page = bad[i];
                snprintf(what, sizeof(what), "%s page %llu", name, (unsigned long long)bad[i]);
                expect_msg(&m, 0, what);
            }
            full_msg(&m, type);
            m.page = 0;
            expect_msg(&m, 1, name);
        }
        if (f & N) {
            static const uint32_t bad[] = { NNODES, NNODES + 1, UINT32_MAX };

            for (size_t i = 0; i < 3; i++) {
                full_msg(&m, type);
                m.node = bad[i];
                snprintf(what, sizeof(what), "%s node %u", name, bad[i]);
                expect_msg(&m, 0, what);
            }
        }
        if (f & O) {
            static const uint32_t bad[] = { NRANKS, NRANKS + 1, UINT32_MAX };

            for (size_t i = 0; i < 3; i++) {
                full_msg(&m, type);
                m.origin = bad[i];
                snprintf(what, sizeof(what), "%s origin %u", name, bad[i]);
                expect_msg(&m, 0, what);
            }
        }
        if (f & A) {
            static const uint32_t bad[] = { 3, 4, UINT32_MAX };

            for (uint32_t a = DSM_ACCESS_NONE; a <= DSM_ACCESS_WRITE; a++) {
                full_msg(&m, type);
                m.access = a;
                snprintf(what, sizeof(what), "%s access %u", name, a);
                expect_msg(&m, 1, what);
            }
            for (size_t i = 0; i < 3; i++) {
                full_msg(&m, type);
                m.access = bad[i];
                snprintf(what, sizeof(what), "%s access %u", name, bad[i]);
                expect_msg(&m, 0, what);
            }
        }
    }
}

Test(wire, region_ranges)
{
    static const struct { uint64_t addr, count; int ok; } cases[] = {
        { 0, NPAGES, 1 },          { 0, 1, 1 },           { NPAGES - 1, 1, 1 },     { 50, 50, 1 },
        { 0, 0, 0 },               { 5, 0, 0 },           { 0, NPAGES + 1, 0 },     { NPAGES - 1, 2, 0 },
        { NPAGES, 1, 0 },          { 50, 51, 0 },         { 1, UINT64_MAX, 0 },     { UINT64_MAX, 1, 0 },
        { UINT64_MAX, UINT64_MAX, 0 }, { NPAGES, 0, 0 },
    };

    for (int type = DSMW__TYPE__REGION_ADD; type <= DSMW__TYPE__REGION_FREE; type++) {
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
            dsmw_msg_t m;
            char what[96];

            full_msg(&m, type);
            m.addr = cases[i].addr;
            m.count = cases[i].count;
            snprintf(what, sizeof(what), "%s addr %llu count %llu", dsmw_type_name(type),
                     (unsigned long long)cases[i].addr, (unsigned long long)cases[i].count);
            expect_msg(&m, cases[i].ok, what);
        }
    }
}

/* ---- truncation ------------------------------------------------------------------------ */

Test(wire, every_truncation_is_rejected_or_checked)
{
    for (size_t t = 0; t < NTYPES; t++) {
        dsmw_msg_t m;
        size_t len;
        uint8_t *full;

        full_msg(&m, all_types[t]);
        full = encode_exact(&m, &len);
        for (size_t cut = 0; cut < len; cut++) {
            uint8_t *part = malloc(cut ? cut : 1);
            dsmw_msg_t *out = NULL;
            const char *why = NULL;

            cr_assert_not_null(part);
            memcpy(part, full, cut);
            if (dsmw_decode(part, cut, &LIM, &out, &why) == DSM_OK) {
                cr_assert_not_null(out);
                cr_assert_null(dsmw_check(out, &LIM), "%s cut at %zu: accepted but fails the check",
                               dsmw_type_name(all_types[t]), cut);
                dsmw_free(out);
            } else {
                cr_assert_null(out);
                cr_assert_not_null(why);
            }
            free(part);
        }
        free(full);
    }
}

Test(wire, truncation_inside_a_field_is_rejected)
{
    /* a GRANT whose last field is 300 bytes of data: tag (1) + length (2) + payload */
    dsmw_msg_t m;
    size_t len, fields_before;
    uint8_t *full;

    dsmw_init(&m, DSMW__TYPE__GRANT);
    m.page = 3;
    m.access = DSM_ACCESS_READ;
    m.origin = 1;
    fields_before = dsmw__msg__get_packed_size(&m);
    m.data.data = payload;
    m.data.len = sizeof(payload);
    full = encode_exact(&m, &len);
    cr_assert_eq(len, fields_before + 3 + sizeof(payload));
    for (size_t cut = fields_before + 1; cut < len; cut++) {
        char what[96];

        snprintf(what, sizeof(what), "GRANT cut at %zu of %zu (inside the data field)", cut, len);
        expect_reject(full, cut, what);
    }
    /* cut exactly before the data field: a complete, valid GRANT without data */
    {
        dsmw_msg_t *d = expect_accept(full, fields_before, "GRANT cut before its data");

        cr_assert_eq(d->page, 3);
        cr_assert_eq(d->access, DSM_ACCESS_READ);
        cr_assert_eq(d->data.len, 0);
        dsmw_free(d);
    }
    /* a multi-byte varint cut in its middle */
    {
        dsmw_msg_t v;
        uint8_t buf[64];
        size_t vlen;

        dsmw_init(&v, DSMW__TYPE__BARRIER_ARRIVE);
        v.epoch = UINT64_MAX;   /* 10-byte varint after a 1-byte tag */
        cr_assert_eq(dsmw_encode(&v, buf, sizeof(buf), &vlen), DSM_OK);
        cr_assert_eq(vlen, 2 + 1 + 10);
        for (size_t cut = vlen - 10; cut < vlen; cut++)
            expect_reject(buf, cut, "BARRIER_ARRIVE with its epoch varint cut");
    }
    free(full);
}

/* ---- garbage ---------------------------------------------------------------------------- */

/* Decode buf; accepted messages must pass the check. Returns 1 if accepted. */
static int decode_any(const uint8_t *buf, size_t len, uint64_t seed, int i)
{
    dsmw_msg_t *out = NULL;
    const char *why = NULL;
    dsm_status_t st = dsmw_decode(buf, len, &LIM, &out, &why);

    if (st == DSM_OK) {
        cr_assert_not_null(out, "seed %llu iteration %d", (unsigned long long)seed, i);
        cr_assert_null(dsmw_check(out, &LIM), "seed %llu iteration %d: accepted a message that fails the check",
                       (unsigned long long)seed, i);
        dsmw_free(out);
        return 1;
    }
    cr_assert_eq(st, DSM_EPROTO, "seed %llu iteration %d: status %d", (unsigned long long)seed, i, st);
    cr_assert_null(out);
    cr_assert_not_null(why);
    return 0;
}

Test(wire, random_bytes_never_crash)
{
    uint64_t s = 0x5eed1234abcdULL;
    int accepted = 0;

    for (int i = 0; i < 200000; i++) {
        size_t len = (size_t)(rnd64(&s) % 96);
        uint8_t *buf = malloc(len ? len : 1);

        cr_assert_not_null(buf);
        for (size_t j = 0; j < len; j++)
            buf[j] = (uint8_t)rnd64(&s);
        accepted += decode_any(buf, len, 0x5eed1234abcdULL, i);
        free(buf);
    }
    /* not an assertion about protobuf, just a sign that the check path was exercised */
    cr_log_info("random bytes: %d of 200000 accepted", accepted);
}

Test(wire, mutated_valid_messages_never_crash)
{
    uint64_t s = 0xfeedface12345ULL;
    int accepted = 0, rejected = 0;

    for (int i = 0; i < 100000; i++) {
        dsmw_msg_t m;
        size_t len;
        uint8_t *buf;
        int flips = 1 + (int)(rnd64(&s) % 4);

        full_msg(&m, all_types[rnd64(&s) % NTYPES]);
        if (rnd64(&s) % 2) {     /* a short message: mutations then hit the header fields */
            m.text = "";
            m.data.len = 0;
            m.n_vclock = 0;
        }
        buf = encode_exact(&m, &len);
        for (int f = 0; f < flips; f++) {
            size_t at = (size_t)(rnd64(&s) % len);

            if (rnd64(&s) % 2)
                buf[at] ^= (uint8_t)(1u << (rnd64(&s) % 8));
            else
                buf[at] = (uint8_t)rnd64(&s);
        }
        if (rnd64(&s) % 4 == 0)
            len -= (size_t)(rnd64(&s) % len);
        if (decode_any(buf, len, 0xfeedface12345ULL, i))
            accepted++;
        else
            rejected++;
        free(buf);
    }
    /* both outcomes must occur, or the mutations did not reach the checks */
    cr_assert_gt(accepted, 0);
    cr_assert_gt(rejected, 0);
}

/* notices.c - see notices.h. */
#include "notices.h"

#include <stdlib.h>
#include <string.h>

#include "dsm_le.h"

/* Runs shared by the intervals that name them. */
struct dsmp_runs_blob {
    uint64_t refs;
    uint8_t runs[];
};

dsm_status_t dsmp_notices_init(struct dsmp_notices *s, int nnodes)
{
    s->nnodes = nnodes;
    s->rec = calloc((size_t)nnodes, sizeof(*s->rec));
    s->cap = calloc((size_t)nnodes, sizeof(*s->cap));
    return s->rec && s->cap ? DSM_OK : DSM_ENOMEM;
}

void dsmp_notices_fini(struct dsmp_notices *s)
{
    for (int n = 0; s->rec && n < s->nnodes; n++) {
        for (uint32_t i = 0; i < s->cap[n]; i++)
            if (s->rec[n][i].blob != NULL && --s->rec[n][i].blob->refs == 0)
                free(s->rec[n][i].blob);
        free(s->rec[n]);
    }
    free(s->rec);
    free(s->cap);
    s->rec = NULL;
    s->cap = NULL;
}

/* Make room for node n's intervals up to `last`. */
static dsm_status_t grow(struct dsmp_notices *s, int n, uint32_t last)
{
    uint64_t ncap = s->cap[n] ? s->cap[n] : 64;
    struct dsmp_notice *v;

    if (last <= s->cap[n])
        return DSM_OK;
    while (ncap < last)
        ncap *= 2;
    if (ncap > UINT32_MAX)
        ncap = UINT32_MAX;
    v = realloc(s->rec[n], ncap * sizeof(*v));
    if (v == NULL)
        return DSM_ENOMEM;
    memset(v + s->cap[n], 0, (ncap - s->cap[n]) * sizeof(*v));
    s->rec[n] = v;
    s->cap[n] = (uint32_t)ncap;
    return DSM_OK;
}

dsm_status_t dsmp_notices_add_range(struct dsmp_notices *s, int n, uint32_t first, uint32_t last,
                                    const uint8_t *runs, uint32_t len)
{
    struct dsmp_runs_blob *b = NULL;
    dsm_status_t st;

    if (n < 0 || n >= s->nnodes || first == 0 || last < first || last - first > DSMP_NOTICES_SPAN_MAX ||
        (uint64_t)first - 1 > (uint64_t)s->cap[n] + DSMP_NOTICES_SPAN_MAX)
        return DSM_EINVAL;
    if ((st = grow(s, n, last)) != DSM_OK)
        return st;
    for (uint32_t i = first;; i++) {
        struct dsmp_notice *r = &s->rec[n][i - 1];

        if (r->runs == NULL) {
            if (b == NULL) {
                if ((b = malloc(sizeof(*b) + (len ? len : 1))) == NULL)
                    return DSM_ENOMEM;
                b->refs = 0;
                if (len > 0)
                    memcpy(b->runs, runs, len);
            }
            *r = (struct dsmp_notice){ b->runs, len, b };
            b->refs++;
        }
        if (i == last)
            break;
    }
    return DSM_OK;
}

dsm_status_t dsmp_notices_add(struct dsmp_notices *s, int n, uint32_t i, const uint8_t *runs, uint32_t len)
{
    return dsmp_notices_add_range(s, n, i, i, runs, len);
}

const struct dsmp_notice *dsmp_notices_get(const struct dsmp_notices *s, int n, uint32_t i)
{
    if (n < 0 || n >= s->nnodes || i == 0 || i > s->cap[n] || s->rec[n][i - 1].runs == NULL)
        return NULL;
    return &s->rec[n][i - 1];
}

dsm_status_t dsmp_notices_encode(const struct dsmp_notices *s, const uint32_t *from, const uint32_t *to,
                                 uint8_t *out, size_t cap, size_t *len)
{
    size_t o = 0;

    for (int n = 0; n < s->nnodes; n++) {
        for (uint32_t i = from[n] + 1; i <= to[n]; i++) {
            const struct dsmp_notice *r = dsmp_notices_get(s, n, i);

            if (r == NULL)
                return DSM_ESTATE;
            if (cap - o < DSMP_NOTICE_HDR + (size_t)r->len)
                return DSM_ENOSPACE;
            dsm_put_le(out + o, (uint64_t)n, 2);
            dsm_put_le(out + o + 2, i, 4);
            dsm_put_le(out + o + 6, r->len, 4);
            memcpy(out + o + DSMP_NOTICE_HDR, r->runs, r->len);
            o += DSMP_NOTICE_HDR + r->len;
        }
    }
    *len = o;
    return DSM_OK;
}

#define MERGED 0x8000u

dsm_status_t dsmp_notices_walk(const uint8_t *buf, size_t len, int nnodes, dsmp_notice_fn fn, void *arg)
{
    size_t o = 0;

    while (o < len) {
        unsigned raw;
        int node;
        uint32_t i, last, rlen, extra;
        dsm_status_t st;

        if (len - o < DSMP_NOTICE_HDR)
            return DSM_EPROTO;
        raw = (unsigned)dsm_get_le(buf + o, 2);
        node = (int)(raw & ~MERGED);
        i = (uint32_t)dsm_get_le(buf + o + 2, 4);
        rlen = (uint32_t)dsm_get_le(buf + o + 6, 4);
        extra = raw & MERGED ? DSMP_NOTICE_TRAILER : 0;
        if (node >= nnodes || i == 0 || rlen % DSMP_RUN_BYTES != 0 || len - o - DSMP_NOTICE_HDR < (size_t)rlen + extra)
            return DSM_EPROTO;
        last = extra ? (uint32_t)dsm_get_le(buf + o + DSMP_NOTICE_HDR + rlen, 4) : i;
        if (last < i || last - i > DSMP_NOTICES_SPAN_MAX)
            return DSM_EPROTO;
        if ((st = fn(arg, node, i, last, buf + o + DSMP_NOTICE_HDR, rlen)) != DSM_OK)
            return st;
        o += DSMP_NOTICE_HDR + rlen + extra;
    }
    return DSM_OK;
}

struct run {
    uint64_t first, count;
};

static int cmp_run(const void *a, const void *b)
{
    const struct run *x = a, *y = b;

    return x->first < y->first ? -1 : x->first > y->first;
}

/* The union of node n's intervals (from, to] as sorted, merged runs in *out (malloc'd). */
static dsm_status_t union_runs(const struct dsmp_notices *s, int n, uint32_t from, uint32_t to, uint64_t npages,
                               struct run **out, size_t *nout)
{
    struct run *v = NULL;
    size_t nv = 0, cap = 0, m = 0;

    const struct dsmp_runs_blob *prev = NULL;

    for (uint32_t i = from + 1; i <= to; i++) {
        const struct dsmp_notice *r = dsmp_notices_get(s, n, i);
        const struct dsmp_runs_blob *key = r ? r->blob : NULL;
        struct run whole = { 0, npages };
        size_t k = r ? r->len / DSMP_RUN_BYTES : 1;

        if (i > from + 1 && key == prev)
            continue; /* the same runs as the interval before (a merged record, or unknown) */
        prev = key;

        if (nv + k > cap) {
            size_t ncap = cap ? cap * 2 : 64;
            struct run *nvv;

            while (ncap < nv + k)
                ncap *= 2;
            nvv = realloc(v, ncap * sizeof(*v));
            if (nvv == NULL) {
                free(v);
                return DSM_ENOMEM;
            }
            v = nvv;
            cap = ncap;
        }
        if (r == NULL) {
            v[nv++] = whole; /* unknown interval: assume it wrote everything */
            continue;
        }
        for (size_t j = 0; j < k; j++) {
            v[nv].first = dsm_get_le(r->runs + DSMP_RUN_BYTES * j, 8);
            v[nv].count = dsm_get_le(r->runs + DSMP_RUN_BYTES * j + 8, 4);
            nv++;
        }
    }
    if (nv > 0) {
        qsort(v, nv, sizeof(*v), cmp_run);
        for (size_t j = 1; j < nv; j++) {
            if (v[j].first <= v[m].first + v[m].count) {
                uint64_t end = v[j].first + v[j].count;

                if (end > v[m].first + v[m].count)
                    v[m].count = end - v[m].first;
            } else {
                v[++m] = v[j];
            }
        }
        m++;
    }
    *out = v;
    *nout = m;
    return DSM_OK;
}

dsm_status_t dsmp_notices_encode_merged(const struct dsmp_notices *s, const uint32_t *from, const uint32_t *to,
                                        uint64_t npages, uint8_t *out, size_t cap, size_t *len)
{
    size_t o = 0, need = 0;
    struct run **u = calloc((size_t)s->nnodes, sizeof(*u));
    size_t *nu = calloc((size_t)s->nnodes, sizeof(*nu));
    dsm_status_t st = u && nu ? DSM_OK : DSM_ENOMEM;

    for (int n = 0; st == DSM_OK && n < s->nnodes; n++) {
        if (to[n] <= from[n])
            continue;
        st = union_runs(s, n, from[n], to[n], npages, &u[n], &nu[n]);
        need += DSMP_NOTICE_HDR + DSMP_NOTICE_TRAILER + DSMP_RUN_BYTES * nu[n];
    }
    for (int n = 0; st == DSM_OK && n < s->nnodes; n++) {
        uint32_t rlen;

        if (to[n] <= from[n] || nu[n] == 0)
            continue;
        if (need > cap) { /* coarsen: one run from the first to the last page written */
            struct run *last = &u[n][nu[n] - 1];

            u[n][0].count = last->first + last->count - u[n][0].first;
            nu[n] = 1;
        }
        rlen = (uint32_t)(DSMP_RUN_BYTES * nu[n]);
        if (cap - o < DSMP_NOTICE_HDR + DSMP_NOTICE_TRAILER + (size_t)rlen) {
            st = DSM_ENOSPACE;
            break;
        }
        dsm_put_le(out + o, (uint64_t)n | MERGED, 2);
        dsm_put_le(out + o + 2, from[n] + 1, 4);
        dsm_put_le(out + o + 6, rlen, 4);
        for (size_t j = 0; j < nu[n]; j++) {
            dsm_put_le(out + o + DSMP_NOTICE_HDR + DSMP_RUN_BYTES * j, u[n][j].first, 8);
            dsm_put_le(out + o + DSMP_NOTICE_HDR + DSMP_RUN_BYTES * j + 8, u[n][j].count, 4);
        }
        dsm_put_le(out + o + DSMP_NOTICE_HDR + rlen, to[n], 4);
        o += DSMP_NOTICE_HDR + DSMP_NOTICE_TRAILER + rlen;
    }
    for (int n = 0; u && n < s->nnodes; n++)
        free(u[n]);
    free(u);
    free(nu);
    *len = o;
    return st;
}

uint32_t dsmp_runs_build(const uint64_t *pages, size_t n, uint8_t *out)
{
    uint32_t o = 0;

    for (size_t k = 0; k < n;) {
        size_t j = k + 1;

        while (j < n && pages[j] == pages[j - 1] + 1)
            j++;
        dsm_put_le(out + o, pages[k], 8);
        dsm_put_le(out + o + 8, (uint64_t)(j - k), 4);
        o += DSMP_RUN_BYTES;
        k = j;
    }
    return o;
}

dsm_status_t dsmp_runs_each(const uint8_t *runs, uint32_t len, uint64_t npages,
                            void (*fn)(void *arg, uint64_t page), void *arg)
{
    if (len % DSMP_RUN_BYTES != 0)
        return DSM_EPROTO;
    for (uint32_t o = 0; o < len; o += DSMP_RUN_BYTES) {
        uint64_t first = dsm_get_le(runs + o, 8), count = dsm_get_le(runs + o + 8, 4);

        if (first >= npages || count > npages - first)
            return DSM_EPROTO;
    }
    for (uint32_t o = 0; o < len; o += DSMP_RUN_BYTES) {
        uint64_t first = dsm_get_le(runs + o, 8), count = dsm_get_le(runs + o + 8, 4);

        for (uint64_t p = first; p < first + count; p++)
            fn(arg, p);
    }
    return DSM_OK;
}

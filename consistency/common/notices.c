/* notices.c - see notices.h. */
#include "notices.h"

#include <stdlib.h>
#include <string.h>

static void put_le(uint8_t *p, uint64_t v, int bytes)
{
    for (int k = 0; k < bytes; k++)
        p[k] = (uint8_t)(v >> (8 * k));
}

static uint64_t get_le(const uint8_t *p, int bytes)
{
    uint64_t v = 0;

    for (int k = 0; k < bytes; k++)
        v |= (uint64_t)p[k] << (8 * k);
    return v;
}

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
            free(s->rec[n][i].runs);
        free(s->rec[n]);
    }
    free(s->rec);
    free(s->cap);
    s->rec = NULL;
    s->cap = NULL;
}

dsm_status_t dsmp_notices_add(struct dsmp_notices *s, int n, uint32_t i, const uint8_t *runs, uint32_t len)
{
    struct dsmp_notice *r;

    if (n < 0 || n >= s->nnodes || i == 0)
        return DSM_EINVAL;
    if (i > s->cap[n]) {
        uint32_t ncap = s->cap[n] ? s->cap[n] : 64;
        struct dsmp_notice *v;

        while (ncap < i)
            ncap *= 2;
        v = realloc(s->rec[n], ncap * sizeof(*v));
        if (v == NULL)
            return DSM_ENOMEM;
        memset(v + s->cap[n], 0, (ncap - s->cap[n]) * sizeof(*v));
        s->rec[n] = v;
        s->cap[n] = ncap;
    }
    r = &s->rec[n][i - 1];
    if (r->runs != NULL)
        return DSM_OK;
    r->runs = malloc(len ? len : 1);
    if (r->runs == NULL)
        return DSM_ENOMEM;
    memcpy(r->runs, runs, len);
    r->len = len;
    return DSM_OK;
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
            if (cap - o < 10 + (size_t)r->len)
                return DSM_ENOSPACE;
            put_le(out + o, (uint64_t)n, 2);
            put_le(out + o + 2, i, 4);
            put_le(out + o + 6, r->len, 4);
            memcpy(out + o + 10, r->runs, r->len);
            o += 10 + r->len;
        }
    }
    *len = o;
    return DSM_OK;
}

dsm_status_t dsmp_notices_walk(const uint8_t *buf, size_t len, int nnodes,
                               dsm_status_t (*fn)(void *arg, int node, uint32_t i, const uint8_t *runs,
                                                  uint32_t rlen),
                               void *arg)
{
    size_t o = 0;

    while (o < len) {
        int node;
        uint32_t i, rlen;
        dsm_status_t st;

        if (len - o < 10)
            return DSM_EPROTO;
        node = (int)get_le(buf + o, 2);
        i = (uint32_t)get_le(buf + o + 2, 4);
        rlen = (uint32_t)get_le(buf + o + 6, 4);
        if (node >= nnodes || i == 0 || rlen % 12 != 0 || len - o - 10 < rlen)
            return DSM_EPROTO;
        st = fn(arg, node, i, buf + o + 10, rlen);
        if (st != DSM_OK)
            return st;
        o += 10 + rlen;
    }
    return DSM_OK;
}

uint32_t dsmp_runs_build(const uint64_t *pages, size_t n, uint8_t *out)
{
    uint32_t o = 0;

    for (size_t k = 0; k < n;) {
        size_t j = k + 1;

        while (j < n && pages[j] == pages[j - 1] + 1)
            j++;
        put_le(out + o, pages[k], 8);
        put_le(out + o + 8, (uint64_t)(j - k), 4);
        o += 12;
        k = j;
    }
    return o;
}

dsm_status_t dsmp_runs_each(const uint8_t *runs, uint32_t len, uint64_t npages,
                            void (*fn)(void *arg, uint64_t page), void *arg)
{
    if (len % 12 != 0)
        return DSM_EPROTO;
    for (uint32_t o = 0; o < len; o += 12) {
        uint64_t first = get_le(runs + o, 8), count = get_le(runs + o + 8, 4);

        if (first >= npages || count > npages - first)
            return DSM_EPROTO;
    }
    for (uint32_t o = 0; o < len; o += 12) {
        uint64_t first = get_le(runs + o, 8), count = get_le(runs + o + 8, 4);

        for (uint64_t p = first; p < first + count; p++)
            fn(arg, p);
    }
    return DSM_OK;
}

/* dsmp.c - the registry of consistency protocols, and what they share. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dsm_log.h"
#include "dsmp.h"

static const struct dsmp_ops *const protocols[] = {
    &dsmp_sequential_ops,
    &dsmp_release_ops,
    &dsmp_causal_ops,
};

const struct dsmp_ops *dsmp_find(const char *name)
{
    for (size_t i = 0; i < sizeof(protocols) / sizeof(protocols[0]); i++)
        if (strcmp(protocols[i]->name, name) == 0)
            return protocols[i];
    return NULL;
}

const struct dsmp_ops *dsmp_at(size_t i)
{
    return i < sizeof(protocols) / sizeof(protocols[0]) ? protocols[i] : NULL;
}

void dsmp_invariant_failed(const char *name, const char *cond, const char *file, int line)
{
    DSM_ERR("invariant %s broken at %s:%d: %s", name, file, line, cond);
    abort();
}

void dsmp_fail(const struct dsmp_services *svc, dsm_status_t st, const char *fmt, ...)
{
    char why[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    if (svc->fail != NULL)
        svc->fail(svc->ctx, st, why);
    else
        DSM_ERR("%s", why);
}

/* Room kept in a read-ahead reply for everything but the pages: the header fields, the lead
 * page's number and the protobuf framing of the data. */
#define AHEAD_MSG_SLACK 1024u

uint32_t dsmp_ahead_cap(size_t page_size)
{
    size_t n = page_size == 0 ? 0 : (DSMW_MAX_MSG - AHEAD_MSG_SLACK) / page_size;

    return n > DSMP_AHEAD_MAX ? DSMP_AHEAD_MAX : (uint32_t)n;
}

void dsmp_ahead_pack(const struct dsmp_services *svc, dsmw_msg_t *m, uint64_t first, uint32_t served, uint32_t cap,
                     uint8_t *buf)
{
    size_t len = 0;

    for (uint32_t i = 1; i <= cap; i++)
        if (served & (1u << (i - 1))) {
            memcpy(buf + len, svc->frame(svc->ctx, first + i), svc->page_size);
            len += svc->page_size;
        }
    m->count = served;
    m->data.data = buf;
    m->data.len = len;
}

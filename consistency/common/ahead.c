/* ahead.c - see ahead.h. */
#include "ahead.h"

#include <stdlib.h>
#include <string.h>

/* Room kept in a read-ahead reply for everything but the pages: the header fields, the lead
 * page's number and the protobuf framing of the data. */
#define AHEAD_MSG_SLACK 1024u

uint32_t dsmp_ahead_cap(size_t page_size)
{
    size_t n = page_size == 0 ? 0 : (DSMW_MAX_MSG - AHEAD_MSG_SLACK) / page_size;

    return n > DSMP_AHEAD_MAX ? DSMP_AHEAD_MAX : (uint32_t)n;
}

uint32_t dsmp_ahead_count(dsmp_t *p, const struct dsmp_services *svc, uint64_t page, int home, uint32_t ahead,
                          uint32_t cap, int (*absent)(dsmp_t *p, uint64_t q))
{
    uint32_t want = ahead > 1 ? ahead - 1 : 0, n = 0;

    if (want > cap)
        want = cap;
    while (n < want && page + n + 1 < svc->npages && svc->home(svc->ctx, page + n + 1) == home &&
           absent(p, page + n + 1))
        n++;
    return n;
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

struct dsmp_batch *dsmp_batch_new(struct dsmp_batch **list, uint64_t first, int node, int origin)
{
    struct dsmp_batch *b = malloc(sizeof(*b));

    if (b == NULL)
        return NULL;
    *b = (struct dsmp_batch){ .next = *list, .first = first, .node = node, .origin = origin, .pending = 1 };
    *list = b;
    return b;
}

void dsmp_batch_unlink(struct dsmp_batch **list, struct dsmp_batch *b)
{
    for (struct dsmp_batch **pp = list; *pp; pp = &(*pp)->next)
        if (*pp == b) {
            *pp = b->next;
            return;
        }
}

void dsmp_batch_reset(struct dsmp_batch *list, uint64_t first, uint64_t n, uint32_t cap)
{
    for (struct dsmp_batch *b = list; b; b = b->next) {
        b->dead |= b->first >= first && b->first < first + n;
        for (uint32_t i = 1; i <= cap; i++)
            if (b->first + i >= first && b->first + i < first + n)
                b->served &= ~(1u << (i - 1));
    }
}

void dsmp_batch_free_all(struct dsmp_batch **list)
{
    while (*list) {
        struct dsmp_batch *b = *list;

        *list = b->next;
        free(b);
    }
}

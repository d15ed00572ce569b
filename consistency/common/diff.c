/* diff.c - see diff.h. Scans a word at a time, then narrows to bytes where a word differs. */
#include "diff.h"

#include <string.h>

static void put16(uint8_t *p, unsigned v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

size_t dsmp_diff_make(const uint8_t *cur, const uint8_t *twin, size_t page_size, uint8_t *out)
{
    size_t n = 0, i = 0;

    while (i < page_size) {
        size_t start, end;

        /* skip equal words, then equal bytes */
        while (i + 8 <= page_size) {
            uint64_t a, b;

            memcpy(&a, cur + i, 8);
            memcpy(&b, twin + i, 8);
            if (a != b)
                break;
            i += 8;
        }
        while (i < page_size && cur[i] == twin[i])
            i++;
        if (i == page_size)
            break;
        start = i;
        while (i < page_size && cur[i] != twin[i])
            i++;
        end = i;
        put16(out + n, (unsigned)start);
        put16(out + n + 2, (unsigned)(end - start));
        memcpy(out + n + 4, cur + start, end - start);
        n += 4 + (end - start);
    }
    return n;
}

dsm_status_t dsmp_diff_check(const uint8_t *diff, size_t len, size_t page_size)
{
    size_t i = 0, prev_end = 0;

    while (i < len) {
        size_t off, n;

        if (len - i < 4)
            return DSM_EPROTO;
        (void)dsmp_diff_run(diff, i, &off, &n);
        if (n == 0 || off < prev_end || off + n > page_size || len - i - 4 < n)
            return DSM_EPROTO;
        prev_end = off + n;
        i += 4 + n;
    }
    return DSM_OK;
}

dsm_status_t dsmp_diff_apply(uint8_t *page, uint8_t *twin, size_t page_size, const uint8_t *diff,
                             size_t len)
{
    size_t off, n;

    if (dsmp_diff_check(diff, len, page_size) != DSM_OK)
        return DSM_EPROTO; /* nothing written */
    for (size_t i = 0; i < len;) {
        size_t run = i + 4;

        i = dsmp_diff_run(diff, i, &off, &n);
        memcpy(page + off, diff + run, n);
        if (twin != NULL)
            memcpy(twin + off, diff + run, n);
    }
    return DSM_OK;
}

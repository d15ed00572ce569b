/* sigsafe.c - async-signal-safe line building and output; see sigsafe.h. */
#include "sigsafe.h"

#include <errno.h>
#include <unistd.h>

static void put(struct dsm_sline *l, char c)
{
    if (l->len < sizeof(l->buf) - 1) /* keep room for the newline */
        l->buf[l->len++] = c;
}

void dsm_sline_begin(struct dsm_sline *l, int rank)
{
    l->len = 0;
    dsm_sline_str(l, "dsm: rank ");
    dsm_sline_i64(l, rank);
    dsm_sline_str(l, ": ");
}

void dsm_sline_str(struct dsm_sline *l, const char *s)
{
    while (s != NULL && *s != '\0')
        put(l, *s++);
}

void dsm_sline_u64(struct dsm_sline *l, uint64_t v)
{
    char tmp[20];
    int n = 0;

    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    while (n > 0)
        put(l, tmp[--n]);
}

void dsm_sline_i64(struct dsm_sline *l, int64_t v)
{
    if (v < 0) {
        put(l, '-');
        dsm_sline_u64(l, (uint64_t)0 - (uint64_t)v); /* also right for INT64_MIN */
    } else {
        dsm_sline_u64(l, (uint64_t)v);
    }
}

void dsm_sline_hex(struct dsm_sline *l, uint64_t v)
{
    static const char digits[] = "0123456789abcdef";
    char tmp[16];
    int n = 0;

    do {
        tmp[n++] = digits[v & 15];
        v >>= 4;
    } while (v != 0);
    dsm_sline_str(l, "0x");
    while (n > 0)
        put(l, tmp[--n]);
}

void dsm_sline_emit(struct dsm_sline *l)
{
    size_t off = 0;

    l->buf[l->len++] = '\n'; /* put() always leaves room for it */
    while (off < l->len) {
        ssize_t n = write(STDERR_FILENO, l->buf + off, l->len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break; /* a closed stderr: nowhere better to report it */
        off += (size_t)n;
    }
    l->len--;
}

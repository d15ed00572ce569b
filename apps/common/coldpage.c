/*
 * coldpage.c - fresh pages for the fault benchmarks (see coldpage.h).
 */
#include "coldpage.h"

#include <errno.h>
#include <stdio.h>
#include <unistd.h>

/* Greatest common divisor. */
static size_t gcd(size_t a, size_t b)
{
    while (b != 0) {
        size_t t = a % b;

        a = b;
        b = t;
    }
    return a;
}

size_t coldpage_stride(size_t n)
{
    /* large strides for large n keep neighbouring visits far apart in memory too */
    for (size_t s = n > 64 ? 37 : 2; s < n; s++) {
        size_t k = 1;

        while (k <= 8 && s * k % n != 1) /* x + 1 comes k visits after x when s*k = 1 mod n */
            k++;
        if (k > 8 && gcd(n, s) == 1)
            return s;
    }
    /* n < 10 has no such step: a falling order then (x + 1 always comes before x), which
     * the daemon never takes for a scan; it follows rising ones only */
    return n > 2 ? n - 1 : 1;
}

int coldpage_readable(const int fds[2], const volatile void *p)
{
    char    buf[8];
    ssize_t n = write(fds[1], (const void *)p, sizeof(buf));

    if (n < 0)
        return errno == EFAULT ? 0 : -1;
    return read(fds[0], buf, sizeof(buf)) == n ? 1 : -1;
}

void coldpage_warm_add(struct coldpage_warm *w, size_t page)
{
    if (w->n < COLDPAGE_WARM_KEPT)
        w->page[w->n] = page;
    w->n++;
}

void coldpage_warm_report(const struct coldpage_warm *w, const char *who, size_t total, const char *access)
{
    fprintf(stderr, "%s: %zu of %zu pages were readable (or not probeable) before their timed %s: not cold "
            "faults (page%s", who, w->n, total, access, w->n > 1 ? "s" : "");
    for (size_t i = 0; i < w->n && i < COLDPAGE_WARM_KEPT; i++)
        fprintf(stderr, "%s %zu", i ? "," : "", w->page[i]);
    fprintf(stderr, "%s of the block)\n", w->n > COLDPAGE_WARM_KEPT ? ", ..." : "");
}

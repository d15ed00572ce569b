/*
 * coldpage.h - fresh pages for the fault benchmarks (microbench, mtbench): an order of visit
 * the daemon cannot read or grant ahead of, and an untimed check that a load will fault.
 *
 * The daemon opens and fetches pages ahead of a thread that scans page by page (a fault on
 * the page after one of the thread's last 4 faults). A benchmark that times "one cold
 * fault" per page must visit its pages so that no fault extends a scan, and should check
 * that it did: otherwise it times loads of pages already granted.
 */
#ifndef APP_COLDPAGE_H
#define APP_COLDPAGE_H

#include <stddef.h>

/* A step s for visiting n pages in the order 0, s, 2s, ... (mod n): every page once, and
 * page x + 1 more than 8 visits after page x; n - 1 (a falling order) when n < 10 has no
 * such step; 1 when n < 3. */
size_t coldpage_stride(size_t n);

/* Whether `p` can be read without a fault: 1 yes, 0 no (the kernel's read of it for a
 * write() to the pipe `fds` failed with EFAULT, no signal), -1 on another error. The pipe
 * is the caller's (pipe(2)), drained here. */
int coldpage_readable(const int fds[2], const volatile void *p);

/* The pages a benchmark found readable before their timed access: how many, and the first
 * COLDPAGE_WARM_KEPT of them (their index in the block), for the failure's message. */
#define COLDPAGE_WARM_KEPT 8
struct coldpage_warm {
    size_t n;
    size_t page[COLDPAGE_WARM_KEPT];
};

void coldpage_warm_add(struct coldpage_warm *w, size_t page);

/* Print "benchmark: what: N of TOTAL pages were readable (or not probeable) before their
 * timed ACCESS: not cold faults (pages a, b, ...)" to stderr. */
void coldpage_warm_report(const struct coldpage_warm *w, const char *who, size_t total, const char *access);

#endif

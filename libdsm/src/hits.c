/* hits.c - node-local hits in the rank; see hits.h and dsm_hits.h. */
#include "hits.h"

#include <errno.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "dsm_chan.h"
#include "dsm_hits.h"
#include "dsm_log.h"
#include "runtime.h"
#include "sigsafe.h"

#define SCANS 4 /* interleaved scans told apart, as the daemon's (pages.c) */

/* Three mappings of the table, so that a stray store of the rank cannot rewrite what the
 * daemon or the node's other ranks rely on: the head and counts, open[] read-only, and this
 * rank's own prot row. */
static struct {
    struct dsm_hits_head *head;  /* NULL: not attached */
    size_t   head_len;
    uint8_t *open;               /* the daemon's open[] (read-only here) */
    uint8_t *prot;               /* this rank's prot row */
    uint64_t row_len;
    struct dsm_hits_count *count;
    _Atomic uint8_t *busy;       /* per page: 1 while a hit of this rank holds it (private) */
    uint16_t *door;              /* the direct path's door[] (dsm_direct.h); NULL: off */
    uint64_t door_len;
    uint64_t npages;
    uint32_t run_max;
} g;

/* A scan of this thread's hits: its next page, the page it started at and the run it was
 * last given (for grants ahead, as the daemon's scan detection does for the faults it sees,
 * a sweep that repeats one from its start included). */
struct hit_scan {
    uint64_t next, start;
    uint32_t len, last;
};
static __thread struct hit_scan tls_scans[SCANS] __attribute__((tls_model("initial-exec")));
static __thread uint32_t tls_clock __attribute__((tls_model("initial-exec")));
/* dsm_hits_forget_scans' count; a thread whose scans predate the last one drops them */
static _Atomic uint32_t scan_epoch;
static __thread uint32_t tls_epoch __attribute__((tls_model("initial-exec")));

/* Map len bytes of the memfd at off; NULL (logged) on failure. */
static void *map_part(int memfd, uint64_t off, uint64_t len, int prot, const char *what)
{
    void *p = mmap(NULL, (size_t)len, prot, MAP_SHARED | MAP_NORESERVE, memfd, (off_t)off);

    if (p == MAP_FAILED) {
        DSM_ERR("cannot map the node's page table (%s, %llu bytes): %s", what, (unsigned long long)len,
                strerror(errno));
        return NULL;
    }
    return p;
}

dsm_status_t dsm_hits_attach(int memfd, uint64_t space_bytes, uint32_t lrank)
{
    struct dsm_hits_head h;
    struct stat sb;
    uint64_t ps = 1ull << dsm_rt.vm.page_shift;
    void *p;

    /* read the head with pread: a memfd without a table (another dsmd build) has nothing
     * after the frames, and a mapping of it would fault (SIGBUS) before any check */
    if (fstat(memfd, &sb) != 0 || (uint64_t)sb.st_size < space_bytes + ps ||
        pread(memfd, &h, sizeof(h), (off_t)space_bytes) != (ssize_t)sizeof(h) || h.magic != DSM_HITS_MAGIC ||
        h.npages != dsm_vm_npages(&dsm_rt.vm) || lrank >= h.local_ranks ||
        (uint64_t)sb.st_size < space_bytes + h.size) {
        DSM_ERR("the daemon's frame memory has no page table for this job after its %llu bytes of frames "
                "(a dsmd of another build?)", (unsigned long long)space_bytes);
        return DSM_EPROTO;
    }
    g.head_len = (size_t)h.open_off;
    g.row_len = h.prot_stride;
    if ((p = map_part(memfd, space_bytes, h.open_off, PROT_READ | PROT_WRITE, "head")) == NULL)
        goto fail;
    g.head = p;
    if ((p = map_part(memfd, space_bytes + h.open_off, h.prot_stride, PROT_READ, "open")) == NULL)
        goto fail;
    g.open = p;
    if ((p = map_part(memfd, space_bytes + h.prot_off + h.prot_stride * lrank, h.prot_stride,
                      PROT_READ | PROT_WRITE, "prot")) == NULL)
        goto fail;
    g.prot = p;
    if (h.direct) {
        if ((p = map_part(memfd, space_bytes + h.door_off, h.door_len, PROT_READ | PROT_WRITE, "door")) == NULL)
            goto fail;
        g.door = p;
        g.door_len = h.door_len;
    }
    g.busy = mmap(NULL, (size_t)h.npages, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                  -1, 0);
    if (g.busy == MAP_FAILED) {
        DSM_ERR("cannot map the hit flags (%llu bytes): %s", (unsigned long long)h.npages, strerror(errno));
        g.busy = NULL;
        goto fail;
    }
    g.npages = h.npages;
    g.run_max = h.run_max < 1 ? 1 : h.run_max > DSMC_GRANT_RUN_MAX ? DSMC_GRANT_RUN_MAX : h.run_max;
    g.count = &g.head->count[lrank];
    return 0;
fail:
    g.npages = h.npages;
    dsm_hits_detach();
    return DSM_ESYS;
}

void dsm_hits_detach(void)
{
    int bad = 0;

    bad |= g.busy != NULL && munmap((void *)g.busy, (size_t)g.npages) != 0;
    bad |= g.prot != NULL && munmap(g.prot, (size_t)g.row_len) != 0;
    bad |= g.door != NULL && munmap(g.door, (size_t)g.door_len) != 0;
    bad |= g.open != NULL && munmap(g.open, (size_t)g.row_len) != 0;
    bad |= g.head != NULL && munmap(g.head, g.head_len) != 0;
    if (bad)
        DSM_WARN("unmapping the node's page table: %s", strerror(errno));
    memset(&g, 0, sizeof(g));
}

bool dsm_hits_busy(uint64_t page)
{
    return g.busy != NULL && page < g.npages && atomic_load(&g.busy[page]) != 0;
}

void dsm_hits_forget_scans(void)
{
    atomic_fetch_add(&scan_epoch, 1);
}

static struct hit_scan *scan_of(uint64_t page)
{
    uint32_t epoch = atomic_load(&scan_epoch);

    if (tls_epoch != epoch) { /* in a signal handler too: plain stores */
        for (int i = 0; i < SCANS; i++)
            tls_scans[i].len = 0;
        tls_epoch = epoch;
    }
    for (int i = 0; i < SCANS; i++)
        if (tls_scans[i].len > 0 && tls_scans[i].next == page)
            return &tls_scans[i];
    for (int i = 0; i < SCANS; i++) /* a sweep repeated, as the daemon's: not a lone fault */
        if (tls_scans[i].len > 1 && tls_scans[i].start == page)
            return &tls_scans[i];
    return NULL;
}

/* A run of n pages from page, given at scan length `scan`, extends (or starts) a scan. */
static void scan_note(uint64_t page, uint32_t n, uint32_t scan)
{
    struct hit_scan *s = scan_of(page);

    if (s == NULL) {
        s = &tls_scans[0];
        for (int i = 1; i < SCANS; i++)
            if (tls_scans[i].last < s->last)
                s = &tls_scans[i];
    }
    if (s->next != page)
        s->start = page;
    s->next = page + n;
    s->len = scan;
    s->last = ++tls_clock;
}

/* DSM_HITS_DELAY_US: hold a hit inside its race window, where the daemon's revocations
 * meet it, long enough for them to land there (the tests' way to reach the interleavings
 * a hit must survive; dsm_hits.h). A busy wait: clock_gettime is async-signal-safe. */
void dsm_hits_test_delay(void)
{
    struct timespec t0, t;

    if (dsm_rt.hits_delay_us <= 0 || clock_gettime(CLOCK_MONOTONIC, &t0) != 0)
        return;
    do {
        if (clock_gettime(CLOCK_MONOTONIC, &t) != 0)
            return;
    } while ((t.tv_sec - t0.tv_sec) * 1000000L + (t.tv_nsec - t0.tv_nsec) / 1000 < dsm_rt.hits_delay_us);
}

uint16_t *dsm_hits_door(void)
{
    return g.door;
}

uint32_t dsm_hits_scan_hint(uint64_t page)
{
    const struct hit_scan *s = g.head != NULL ? scan_of(page) : NULL;

    return s != NULL ? dsmc_ramp_next(s->len) : 0;
}

void dsm_hits_note(uint64_t page, uint32_t n, uint32_t scan)
{
    if (g.head != NULL)
        scan_note(page, n, scan > n ? scan : n);
}

static uint8_t level_of(uint64_t q)
{
    return (uint8_t)DSM_HITS_LEVEL(__atomic_load_n(&g.prot[q], __ATOMIC_SEQ_CST));
}

/* Step 1-2 of a hit on q (dsm_hits.h): hold q and claim `want` unless the daemon already
 * records it. Returns false if another hit of this rank holds q; *claimed and *old say what
 * to undo. */
static bool take(uint64_t q, uint8_t want, bool *claimed, uint8_t *old)
{
    uint8_t v, idle = 0;

    if (!atomic_compare_exchange_strong(&g.busy[q], &idle, 1))
        return false;
    *claimed = false;
    v = __atomic_load_n(&g.prot[q], __ATOMIC_SEQ_CST);
    while (DSM_HITS_LEVEL(v) < want) {
        if (__atomic_compare_exchange_n(&g.prot[q], &v, (uint8_t)(want | DSM_HITS_CLAIM), 0, __ATOMIC_SEQ_CST,
                                        __ATOMIC_SEQ_CST)) {
            *claimed = true;
            *old = v;
            break;
        }
    }
    return true;
}

/* End a claim on q: back to `to` if it is still ours (the daemon's writes replace it). */
static void unclaim(uint64_t q, uint8_t want, uint8_t to)
{
    uint8_t v = (uint8_t)(want | DSM_HITS_CLAIM);

    __atomic_compare_exchange_n(&g.prot[q], &v, to, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
}

bool dsm_hits_try(uint64_t page, bool write)
{
    uint8_t want = write ? DSM_ACCESS_WRITE : DSM_ACCESS_READ;
    uint8_t old[DSMC_GRANT_RUN_MAX];
    bool claimed[DSMC_GRANT_RUN_MAX];
    const struct hit_scan *s;
    uint32_t scan, lim, n = 0, m = 0;

    if (g.head == NULL || !g.head->enabled || page >= g.npages ||
        __atomic_load_n(&g.open[page], __ATOMIC_SEQ_CST) < want)
        return false;
    dsm_hits_test_delay(); /* between the first look and the claim */
    s = scan_of(page);
    scan = dsmc_ramp_next(s != NULL ? s->len : 0);
    lim = scan < g.run_max ? scan : g.run_max;
    while (n < lim && page + n < g.npages) {
        uint64_t q = page + n;

        /* beyond the faulting page, only pages the node offers and the rank lacks */
        if (n > 0 && (__atomic_load_n(&g.open[q], __ATOMIC_SEQ_CST) < want || level_of(q) >= want))
            break;
        if (!take(q, want, &claimed[n], &old[n]))
            break;
        n++;
    }
    /* step 3: the re-read that the daemon's close-then-read pairs with */
    while (m < n && __atomic_load_n(&g.open[page + m], __ATOMIC_SEQ_CST) >= want)
        m++;
    for (uint32_t i = m; i < n; i++)
        if (claimed[i])
            unclaim(page + i, want, old[i]);
    if (m > 0)
        dsm_hits_test_delay(); /* between the re-read and the mprotect */
    if (m > 0 && dsm_vm_protect(&dsm_rt.vm, page, m, want) != 0) {
        struct dsm_sline l;
        int err = errno;

        dsm_sline_begin(&l, dsm_rt.rank);
        dsm_sline_str(&l, "node-local hit at page ");
        dsm_sline_u64(&l, page);
        dsm_sline_str(&l, ": ");
        dsm_sline_str(&l, dsm_vm_protect_why(err));
        dsm_sline_str(&l, " (errno ");
        dsm_sline_i64(&l, err);
        dsm_sline_str(&l, ")");
        dsm_rt_die(&l);
    }
    for (uint32_t i = 0; i < m; i++)
        if (claimed[i])
            unclaim(page + i, want, want);
    for (uint32_t i = 0; i < n; i++)
        atomic_store(&g.busy[page + i], 0);
    if (m == 0)
        return false;
    __atomic_fetch_add(write ? &g.count->writes : &g.count->reads, 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&g.count->pages_ahead, m - 1, __ATOMIC_RELAXED);
    scan_note(page, m, scan);
    return true;
}

/*
 * launcher_prog.c - a small dsm program whose behaviour each launcher test chooses.
 *
 *   launcher_prog ok                 env agrees with the API; every rank writes its byte of a
 *                                    shared page, rank 0 checks them all; exit 0
 *   launcher_prog fail R:CODE:MS...  rank R exits with CODE after MS ms (no finalize); the
 *                                    other ranks wait in a barrier
 *   launcher_prog spin               prints "rank R started", then spins forever
 *   launcher_prog loop               prints "rank R started", then shared-page traffic and
 *                                    barriers forever (until the runtime stops it)
 *   launcher_prog segv R             rank R dereferences NULL after dsm_init
 *   launcher_prog freeze             rank 1 stops itself (SIGSTOP) holding a copy that rank 0
 *                                    then needs revoked
 *   launcher_prog stats              faults, a lock and barriers, then finalize; exit 0
 *   launcher_prog finalize R         rank R calls dsm_finalize and exits 0 while the others
 *                                    wait in a barrier
 *   launcher_prog noinit R           rank R exits 0 without dsm_init; the others barrier
 *   launcher_prog plain              no rank calls dsm_init: prints "rank R plain", exit 0
 *   launcher_prog deadlock           rank 0 takes lock 1 and waits in a barrier; the others
 *                                    wait for lock 1: a deadlock
 *   launcher_prog slow MS            rank 0 computes MS ms outside the runtime while the
 *                                    others wait in a barrier: slow, not a deadlock; exit 0
 *   launcher_prog api                dsm_trylock (free, held elsewhere, held here, and what
 *                                    it acquires), dsm_version; exit 0
 *   launcher_prog abort R CODE       rank R calls dsm_abort(CODE) while the others wait in
 *                                    a barrier
 *   launcher_prog mismatch [place]   rank 1 asks dsm_coalloc for two pages, the others one
 *                                    (place: the same size, rank 1 with cyclic placement)
 *   launcher_prog cond K             ranks 1.. each put K items in a shared queue under lock 9
 *                                    and signal condition 3; rank 0 takes them all, waiting on
 *                                    the condition while the queue is empty, and checks the
 *                                    sum; exit 0
 *   launcher_prog flag               rank 0 writes 4 pages of data, dsm_release, sets a flag,
 *                                    dsm_release; the others poll the flag with dsm_acquire
 *                                    in the loop and check the data; exit 0
 *   launcher_prog maps PAGES         a block of PAGES pages; rank r writes the pages p with
 *                                    p % nranks == r, barrier, then every rank reads and checks
 *                                    all of them: protections that alternate page by page (one
 *                                    memory map per page); exit 0
 *   launcher_prog refree MIB K       K times: every rank writes its pages of a fresh MIB MiB
 *                                    dsm_coalloc (checking it reads zero first), barrier,
 *                                    dsm_cofree, and at once the next dsm_coalloc; then K
 *                                    times rank 0 the same with a MIB/2 MiB dsm_malloc and
 *                                    dsm_free of its own; then a dsm_coalloc that cannot
 *                                    fit beside a live one must fail (NULL) at once; exit 0
 *   launcher_prog atomics K          bad atomics are DSM_EINVAL; every rank does K fetch-adds
 *                                    (64-bit on node 0, 32-bit on the last node: the old values
 *                                    are a permutation), K CAS increments, K swaps (values
 *                                    conserved), a 32-bit wrap, store/load, and a flag
 *                                    published with dsm_release + atomic store, read with
 *                                    atomic load + dsm_acquire; plain reads after a barrier
 *                                    see every result, and a rank's read after its own
 *                                    fetch-add sees it; exit 0
 *   launcher_prog firsttouch [race]  a 3-page first-touch region: rank 1 writes page 0 and does
 *                                    an atomic on page 2, then rank 0 writes page 1, then rank 0
 *                                    reads pages 0 and 2 (homed on rank 1's node: with --stats,
 *                                    2 fetches for rank 0 and none for rank 1 on two nodes);
 *                                    with race, then every rank writes its word of each page of
 *                                    a 64-page first-touch region at once (racing claims); all
 *                                    checked
 *   launcher_prog breakdown          rank 0 takes lock 3, spends 300 ms outside the runtime
 *                                    (compute, to the breakdown), lets the lock go, joins
 *                                    a barrier; rank 1 waits for lock 3, then reads a page
 *                                    homed on the last node; the others wait in the barrier:
 *                                    with --stats, the time breakdown shows each of these
 *   launcher_prog freescan ITERS     rank 0 mallocs block A (32 pages) and, each iteration, a
 *                                    block B after it (16 pages), writes it, and frees it
 *                                    while the other ranks scan A (their reads ahead reach
 *                                    into B); every other rank checks B's new contents each
 *                                    iteration: no access outlives a free; "freescan ok"
 *   launcher_prog placement          bad dsm_coalloc_ex attributes are refused, then three
 *                                    4-page regions (block, cyclic 1, node 1) of which rank 0
 *                                    reads the first 2 pages: with --stats, its fetches say
 *                                    where their homes are (0 + 1 + 2 on two nodes)
 *   launcher_prog insight W          two allocations: "own", 2 pages per rank, each rank
 *                                    writing only its own 2 pages (sharing nothing), and
 *                                    "shared", one page where rank r writes bytes
 *                                    [64r, 64r+63], and "mixed", one page with a counter every
 *                                    rank increments under lock 1 (true sharing) beside the
 *                                    same slots; W windows of these writes, each ended by a
 *                                    dsm_barrier; prints the addresses (rank 0) and checks
 *                                    every slot, page and the count after the last barrier
 *
 *   launcher_prog outofturn          the last rank opens a thread channel of its own to its
 *                                    daemon (DSM_SOCKET) and sends a PROTECT_ACK on it, which
 *                                    only a service channel may send; then every rank waits
 *                                    in a barrier: the daemon must fail the job, naming it
 *
 * Any further argument is ignored: tests append a unique marker so that pgrep can find the
 * job's processes. Exit status 3 means this program found something wrong itself.
 */
#include <dsm/dsm.h>

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "dsm_chan.h" /* the rank-daemon channel's messages, for outofturn */

#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BAD 3

/* Print a failure of this program and return BAD. */
static int bad(const char *what)
{
    fprintf(stderr, "launcher_prog rank %d: %s\n", dsm_rank(), what);
    return BAD;
}

/* Sleep ms milliseconds. */
static void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* Integer value of environment variable name, or -1 when absent or malformed. */
static long env_long(const char *name)
{
    const char *v = getenv(name);
    char *end;
    long x;

    if (!v || !*v)
        return -1;
    x = strtol(v, &end, 10);
    return *end ? -1 : x;
}

/* Announce that this rank is running (tests wait for every rank's line). */
static void started(void)
{
    printf("rank %d started\n", dsm_rank());
    fflush(stdout);
}

/* ok: the launcher's environment matches what libdsm reports; a shared page works. */
static int run_ok(void)
{
    int r = dsm_rank(), n = dsm_nranks();
    unsigned char *page;

    if (env_long("DSM_RANK") != r || env_long("DSM_NRANKS") != n)
        return bad("DSM_RANK/DSM_NRANKS disagree with dsm_rank()/dsm_nranks()");
    if (!getenv("DSM_PEER_ADDRS") || env_long("DSM_NODE") < 0)
        return bad("DSM_PEER_ADDRS or DSM_NODE missing");
    page = dsm_coalloc(dsm_page_size());
    if (!page)
        return bad("dsm_coalloc failed");
    page[r] = (unsigned char)(r + 1);
    if (dsm_barrier() != 0)
        return bad("dsm_barrier failed");
    for (int i = 0; r == 0 && i < n; i++)
        if (page[i] != (unsigned char)(i + 1))
            return bad("shared page lost a rank's byte");
    printf("rank %d of %d ok node %ld peers %s\n", r, n, env_long("DSM_NODE"),
           getenv("DSM_PEER_ADDRS"));
    return dsm_barrier() ? bad("dsm_barrier failed") : 0;
}

/* fail: ranks named in specs "R:CODE:MS" exit with CODE after MS ms; the others block. */
static int run_fail(int nspec, char **spec)
{
    for (int i = 0; i < nspec; i++) {
        int rank, code, ms;
        if (sscanf(spec[i], "%d:%d:%d", &rank, &code, &ms) != 3)
            continue; /* the marker */
        if (rank == dsm_rank()) {
            sleep_ms(ms);
            fprintf(stderr, "rank %d failing with %d\n", rank, code);
            exit(code);
        }
    }
    dsm_barrier(); /* never completes: a rank is gone */
    sleep_ms(60000);
    return bad("still running a minute after a rank failed");
}

/* spin: compute forever without calling the runtime. */
static int run_spin(void)
{
    volatile unsigned long x = 0;

    started();
    for (;;)
        x++;
    return 0;
}

/* loop: keep every rank touching shared pages and meeting at barriers. */
static int run_loop(void)
{
    int r = dsm_rank(), n = dsm_nranks();
    volatile long *cells = dsm_coalloc((size_t)n * dsm_page_size());

    if (!cells)
        return bad("dsm_coalloc failed");
    started();
    for (long it = 0;; it++) {
        long stride = (long)(dsm_page_size() / sizeof(long));
        cells[r * stride] = it;
        (void)cells[((r + 1) % n) * stride];
        if (dsm_barrier() != 0)
            return bad("dsm_barrier failed");
        sleep_ms(10);
    }
}

/* segv: a real NULL dereference, outside the global space (volatile: the store stays;
 * no UBSan check: the crash is the point). */
__attribute__((no_sanitize("undefined"))) static int run_segv(int victim)
{
    volatile int *volatile null = NULL;

    if (dsm_barrier() != 0)
        return bad("dsm_barrier failed");
    if (dsm_rank() == victim)
        *null = 42;
    dsm_barrier(); /* never completes */
    sleep_ms(60000);
    return bad("still running a minute after a rank crashed");
}

/* freeze: rank 1 takes a read copy of a page, then stops itself (SIGSTOP: every thread,
 * its service thread too); rank 0 then writes the page, whose revocation needs rank 1. */
static int run_freeze(void)
{
    volatile long *cell = dsm_coalloc(dsm_page_size());

    if (!cell)
        return bad("dsm_coalloc failed");
    started();
    if (dsm_rank() == 1)
        (void)cell[0];
    if (dsm_barrier() != 0)
        return bad("dsm_barrier failed");
    if (dsm_rank() == 1) {
        raise(SIGSTOP);
    } else if (dsm_rank() == 0) {
        sleep_ms(1000); /* rank 1 stops meanwhile */
        cell[0] = 1;
    }
    dsm_barrier();
    sleep_ms(60000);
    return bad("still running a minute after rank 1 froze");
}

/* stats: each rank writes its own page, reads its neighbour's, takes a lock, 2 barriers. */
static int run_stats(void)
{
    int r = dsm_rank(), n = dsm_nranks();
    size_t ps = dsm_page_size();
    unsigned char *pages = dsm_coalloc((size_t)n * ps);

    if (!pages)
        return bad("dsm_coalloc failed");
    memset(pages + (size_t)r * ps, r + 1, ps);
    if (dsm_barrier() != 0)
        return bad("dsm_barrier failed");
    if (pages[(size_t)((r + 1) % n) * ps] != (unsigned char)((r + 1) % n + 1))
        return bad("neighbour's page has the wrong content");
    if (dsm_lock(7) != 0 || dsm_unlock(7) != 0)
        return bad("dsm_lock/dsm_unlock failed");
    return dsm_barrier() ? bad("dsm_barrier failed") : 0;
}

/* deadlock: a lock held across a barrier that the lock's waiters never reach. */
static int run_deadlock(void)
{
    if (dsm_rank() == 0) {
        if (dsm_lock(1) != 0)
            return bad("dsm_lock failed");
        started();
        dsm_barrier(); /* the others wait for lock 1 instead */
    } else {
        sleep_ms(200);
        started();
        dsm_lock(1);
    }
    sleep_ms(60000);
    return bad("still running a minute into a deadlock");
}

/* slow: rank 0 computes (sleeps) outside the runtime while the others wait for it. */
static int run_slow(long ms)
{
    if (dsm_rank() == 0)
        sleep_ms(ms);
    return dsm_barrier() ? bad("dsm_barrier failed") : 0;
}

/* api: dsm_trylock and dsm_version. A value written under lock 5 by rank 0 must be seen by
 * the rank whose dsm_trylock(5) succeeds after rank 0's unlock, under every model. */
static int run_api(void)
{
    int r = dsm_rank(), n = dsm_nranks(), rc;
    volatile long *cell = dsm_coalloc(dsm_page_size());
    char want[32];

    snprintf(want, sizeof(want), "%d.%d.%d", DSM_VERSION_MAJOR, DSM_VERSION_MINOR, DSM_VERSION_PATCH);
    if (strcmp(dsm_version(), want) != 0 || strcmp(DSM_VERSION_STRING, want) != 0 ||
        !DSM_VERSION_AT_LEAST(0, 0, 1) || DSM_VERSION_AT_LEAST(DSM_VERSION_MAJOR + 1, 0, 0))
        return bad("dsm_version() and the DSM_VERSION macros disagree");
    if (!cell)
        return bad("dsm_coalloc failed");
    if (r == 0) {
        if (dsm_trylock(5) != 0)
            return bad("dsm_trylock of a free lock failed");
        if (dsm_trylock(5) != DSM_EINVAL)
            return bad("dsm_trylock of a lock this thread holds is not DSM_EINVAL");
        cell[0] = 4242;
    }
    if (dsm_barrier() != 0)
        return bad("dsm_barrier failed");
    if (r != 0 && (rc = dsm_trylock(5)) != DSM_EBUSY)
        return bad(rc == 0 ? "dsm_trylock took a lock rank 0 holds" : "dsm_trylock of a held lock is not DSM_EBUSY");
    if (dsm_barrier() != 0)
        return bad("dsm_barrier failed");
    if (r == 0 && dsm_unlock(5) != 0)
        return bad("dsm_unlock failed");
    if (dsm_barrier() != 0)
        return bad("dsm_barrier failed");
    if (r == n - 1) {
        while ((rc = dsm_trylock(5)) == DSM_EBUSY)
            ;
        if (rc != 0)
            return bad("dsm_trylock of a free lock failed");
        if (cell[0] != 4242)
            return bad("dsm_trylock acquired the lock but not the value written under it");
        cell[0] = 4343;
        if (dsm_unlock(5) != 0)
            return bad("dsm_unlock after dsm_trylock failed");
    }
    if (dsm_barrier() != 0)
        return bad("dsm_barrier failed");
    if (cell[0] != 4343)
        return bad("the value written under the lock is not seen after the barrier");
    printf("rank %d api ok\n", r);
    return 0;
}

/* abort: rank `who` ends the job with dsm_abort(code). */
static int run_abort(int who, int code)
{
    if (dsm_barrier() != 0)
        return bad("dsm_barrier failed");
    if (dsm_rank() == who)
        dsm_abort(code);
    dsm_barrier(); /* never completes */
    sleep_ms(60000);
    return bad("still running a minute after dsm_abort");
}

/* mismatch: a collective allocation of different sizes (or placements). */
static int run_mismatch(int place)
{
    struct dsm_alloc_attr attr = DSM_ALLOC_ATTR_INIT;
    void *p;

    if (place) {
        attr.placement = dsm_rank() == 1 ? DSM_PLACE_CYCLIC : DSM_PLACE_BLOCK;
        attr.block_pages = dsm_rank() == 1 ? 1 : 0;
        (void)dsm_coalloc_ex(dsm_page_size(), &attr, &p);
    } else {
        p = dsm_coalloc(dsm_page_size() * (dsm_rank() == 1 ? 2 : 1));
    }
    (void)p;
    dsm_barrier(); /* the job has failed by now */
    sleep_ms(60000);
    return bad("still running a minute after a mismatched dsm_coalloc");
}

/* cond: a producer/consumer queue in global memory, protected by lock 9, with condition 3
 * for "not empty" and condition 4 for "not full". */
#define COND_QCAP 8
struct cond_queue {
    long head, tail;       /* items taken, items put */
    long item[COND_QCAP];
};

static int run_cond(long k)
{
    int r = dsm_rank(), n = dsm_nranks();
    struct cond_queue *q = dsm_coalloc(sizeof(*q));
    long got = 0, sum = 0, want = 0;

    if (!q)
        return bad("dsm_coalloc failed");
    if (dsm_cond_wait(3, 9) != DSM_EINVAL)
        return bad("dsm_cond_wait without the lock is not DSM_EINVAL");
    if (dsm_barrier() != 0)
        return bad("dsm_barrier failed");
    for (int p = 1; p < n; p++)
        for (long i = 0; i < k; i++)
            want += p * 1000 + i;
    if (r == 0) {
        while (got < (n - 1) * k) {
            if (dsm_lock(9) != 0)
                return bad("dsm_lock failed");
            while (q->head == q->tail)
                if (dsm_cond_wait(3, 9) != 0)
                    return bad("dsm_cond_wait failed");
            while (q->head < q->tail) {
                sum += q->item[q->head % COND_QCAP];
                q->head++;
                got++;
            }
            if (dsm_cond_broadcast(4) != 0 || dsm_unlock(9) != 0)
                return bad("dsm_cond_broadcast or dsm_unlock failed");
        }
        if (sum != want) {
            fprintf(stderr, "launcher_prog: cond: took %ld items summing to %ld, expected %ld\n", got, sum, want);
            return bad("the consumer's sum is wrong");
        }
        printf("cond: %ld items from %d producers, sum %ld ok\n", got, n - 1, sum);
    } else {
        for (long i = 0; i < k; i++) {
            if (dsm_lock(9) != 0)
                return bad("dsm_lock failed");
            while (q->tail - q->head == COND_QCAP)
                if (dsm_cond_wait(4, 9) != 0)
                    return bad("dsm_cond_wait failed");
            q->item[q->tail % COND_QCAP] = r * 1000 + i;
            q->tail++;
            if (dsm_cond_signal(3) != 0 || dsm_unlock(9) != 0)
                return bad("dsm_cond_signal or dsm_unlock failed");
        }
    }
    return dsm_barrier() ? bad("dsm_barrier failed") : 0;
}

/* flag: publish through a flag with the fences (no lock). */
static int run_flag(void)
{
    size_t ps = dsm_page_size(), nwords = 4 * ps / sizeof(long);
    long *data = dsm_coalloc(4 * ps);
    volatile long *flag = dsm_coalloc(ps);
    struct timespec t0, t;

    if (!data || !flag)
        return bad("dsm_coalloc failed");
    if (dsm_lock(UINT32_MAX) != DSM_EINVAL || dsm_unlock(UINT32_MAX) != DSM_EINVAL)
        return bad("the fences' lock was not refused to the program");
    if (dsm_barrier() != 0)
        return bad("dsm_barrier failed");
    if (dsm_rank() == 0) {
        for (size_t i = 0; i < nwords; i++)
            data[i] = (long)i * 7 + 1;
        if (dsm_release() != 0)
            return bad("dsm_release failed");
        *flag = 1;
        if (dsm_release() != 0)
            return bad("dsm_release failed");
    } else {
        clock_gettime(CLOCK_MONOTONIC, &t0);
        do {
            if (dsm_acquire() != 0)
                return bad("dsm_acquire failed");
            clock_gettime(CLOCK_MONOTONIC, &t);
            if (t.tv_sec - t0.tv_sec > 20)
                return bad("the flag never showed after 20 s of dsm_acquire");
        } while (*flag == 0);
        for (size_t i = 0; i < nwords; i++)
            if (data[i] != (long)i * 7 + 1)
                return bad("the flag showed but the data written before it did not");
    }
    printf("rank %d flag ok\n", dsm_rank());
    return dsm_barrier() ? bad("dsm_barrier failed") : 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

/* atomics: see the header. */
static int run_atomics(long k)
{
    size_t ps = dsm_page_size();
    int r = dsm_rank(), n = dsm_nranks();
    struct dsm_alloc_attr last = DSM_ALLOC_ATTR_INIT;
    uint64_t *w = dsm_coalloc(ps), *olds = dsm_coalloc((size_t)n * (size_t)k * 2 * sizeof(uint64_t));
    uint64_t *data = dsm_coalloc(4 * ps), *gone, v, sum_in = 0, sum_old = 0;
    uint32_t *w32 = NULL, v32, local32 = 0;
    void *p;

    last.placement = DSM_PLACE_NODE;
    last.node = dsm_nnodes() - 1;
    if (!w || !olds || !data || dsm_coalloc_ex(ps, &last, &p) != 0)
        return bad("dsm_coalloc failed");
    w32 = p;
    /* bad calls: refused, nothing done */
    if (dsm_atomic_fetch_add_32((uint32_t *)((char *)w + 2), 1, NULL) != DSM_EINVAL ||
        dsm_atomic_load_64((uint64_t *)((char *)w + 4), &v) != DSM_EINVAL ||
        dsm_atomic_store_32(&local32, 1) != DSM_EINVAL || local32 != 0)
        return bad("a misaligned or non-global atomic was not DSM_EINVAL");
    gone = (uint64_t *)((char *)w + 4096 * ps); /* in the collective area, past every allocation */
    if (dsm_atomic_fetch_add_64(gone, 1, NULL) != DSM_EINVAL)
        return bad("an atomic on unallocated memory was not DSM_EINVAL");
    /* every rank caches the words' pages (plain reads, no plain writes): only the
     * protocol's handling of the atomics can make the reads after the barrier current */
    if (w[0] != 0 || w[1] != 0 || w32[5] != 0)
        return bad("a fresh allocation does not read as zeroes");
    if (dsm_barrier() != 0)
        return bad("dsm_barrier failed");
    /* fetch-add: w[0] (64-bit, node 0), w32[5] (32-bit, last node) */
    for (long i = 0; i < k; i++) {
        if (dsm_atomic_fetch_add_64(&w[0], 1, &olds[(size_t)r * (size_t)k * 2 + (size_t)i]) != 0 ||
            dsm_atomic_fetch_add_32(&w32[5], 1, &v32) != 0)
            return bad("dsm_atomic_fetch_add failed");
        olds[(size_t)r * (size_t)k * 2 + (size_t)k + (size_t)i] = v32;
    }
    /* CAS increments of w[1]; swaps on w[2] */
    for (long i = 0; i < k; i++) {
        uint64_t seen = 0, old;

        do {
            old = seen;
            if (dsm_atomic_cas_64(&w[1], old, old + 1, &seen) != 0)
                return bad("dsm_atomic_cas_64 failed");
        } while (seen != old);
        v = ((uint64_t)r + 1) * 1000003u + (uint64_t)i;
        if (dsm_atomic_swap_64(&w[2], v, &old) != 0)
            return bad("dsm_atomic_swap_64 failed");
        sum_in += v;
        sum_old += old;
    }
    data[r] = sum_in - sum_old; /* what this rank's swaps added to the pool */
    /* in rank order (a turn passed through an atomic on another page): a rank's plain
     * read right after its own fetch-add of a word nobody else touches meanwhile sees it */
    {
        struct timespec t0, t;
        uint64_t turn, old;

        clock_gettime(CLOCK_MONOTONIC, &t0);
        do {
            if (dsm_atomic_load_64(&data[4 * ps / sizeof(uint64_t) - 1], &turn) != 0)
                return bad("dsm_atomic_load_64 failed");
            clock_gettime(CLOCK_MONOTONIC, &t);
            if (t.tv_sec - t0.tv_sec > 20)
                return bad("the turn never came after 20 s");
        } while (turn != (uint64_t)r);
        if (dsm_atomic_fetch_add_64(&w[5], 1, &old) != 0)
            return bad("dsm_atomic_fetch_add_64 failed");
        if (w[5] != old + 1)
            return bad("a plain read right after the rank's own fetch-add does not see it");
        if (dsm_atomic_store_64(&data[4 * ps / sizeof(uint64_t) - 1], (uint64_t)r + 1) != 0)
            return bad("dsm_atomic_store_64 failed");
    }
    if (r == 0) {
        if (dsm_atomic_store_32(&w32[9], UINT32_MAX) != 0 || dsm_atomic_fetch_add_32(&w32[9], 2, &v32) != 0 ||
            v32 != UINT32_MAX || dsm_atomic_load_32(&w32[9], &v32) != 0 || v32 != 1)
            return bad("a 32-bit fetch-add does not wrap modulo 2^32");
        if (dsm_atomic_store_64(&w[3], 0xdeadbeefcafef00dull) != 0)
            return bad("dsm_atomic_store_64 failed");
    }
    if (dsm_barrier() != 0)
        return bad("dsm_barrier failed");
    /* plain reads after the barrier see every atomic, under every model */
    if (w[0] != (uint64_t)n * (uint64_t)k || w32[5] != (uint32_t)(n * k) || w[1] != (uint64_t)n * (uint64_t)k)
        return bad("a plain read after the barrier does not see every fetch-add and CAS");
    if (w[3] != 0xdeadbeefcafef00dull || dsm_atomic_load_64(&w[3], &v) != 0 || v != 0xdeadbeefcafef00dull)
        return bad("an atomic store is not seen by plain and atomic loads");
    if (r == 0) {
        uint64_t *all = malloc((size_t)n * (size_t)k * sizeof(uint64_t)), pool = 0;

        for (int half = 0; half < 2 && all; half++) {
            for (int q = 0; q < n; q++)
                memcpy(all + (size_t)q * (size_t)k, olds + (size_t)q * (size_t)k * 2 + (size_t)half * (size_t)k,
                       (size_t)k * sizeof(uint64_t));
            qsort(all, (size_t)n * (size_t)k, sizeof(uint64_t), cmp_u64);
            for (size_t i = 0; i < (size_t)n * (size_t)k; i++)
                if (all[i] != i) {
                    free(all);
                    return bad(half ? "the 32-bit fetch-add's old values are not 0..N*K-1 once each"
                                    : "the 64-bit fetch-add's old values are not 0..N*K-1 once each");
                }
        }
        free(all);
        for (int q = 0; q < n; q++)
            pool += data[q];
        if (pool != w[2])
            return bad("swaps lost or duplicated a value");
        printf("atomics: %ld x %d fetch-adds, CAS and swaps ok\n", k, n);
        /* publish through an atomic flag */
        for (size_t i = 0; i < 4 * ps / sizeof(uint64_t) - 1; i++)
            data[i] = i * 31 + 7;
        if (dsm_release() != 0 || dsm_atomic_store_64(&w[4], 1) != 0)
            return bad("publishing the flag failed");
    } else {
        struct timespec t0, t;

        clock_gettime(CLOCK_MONOTONIC, &t0);
        do {
            if (dsm_atomic_load_64(&w[4], &v) != 0)
                return bad("dsm_atomic_load_64 failed");
            clock_gettime(CLOCK_MONOTONIC, &t);
            if (t.tv_sec - t0.tv_sec > 20)
                return bad("the atomic flag never showed after 20 s");
        } while (v == 0);
        if (dsm_acquire() != 0)
            return bad("dsm_acquire failed");
        for (size_t i = 0; i < 4 * ps / sizeof(uint64_t) - 1; i++)
            if (data[i] != i * 31 + 7)
                return bad("the atomic flag showed but the data released before it did not");
    }
    printf("rank %d atomics ok\n", r);
    return dsm_barrier() ? bad("dsm_barrier failed") : 0;
}

/* firsttouch: see the header. */
static int run_firsttouch(int race)
{
    struct dsm_alloc_attr ft = DSM_ALLOC_ATTR_INIT;
    size_t ps = dsm_page_size(), words = ps / sizeof(uint64_t);
    int r = dsm_rank(), n = dsm_nranks();
    uint64_t *a, *b, v;
    void *p;

    ft.placement = DSM_PLACE_FIRST_TOUCH;
    if (dsm_coalloc_ex(3 * ps, &ft, &p) != 0)
        return bad("dsm_coalloc_ex with first-touch placement failed");
    a = p;
    if (dsm_coalloc_ex(64 * ps, &ft, &p) != 0)
        return bad("dsm_coalloc_ex with first-touch placement failed");
    b = p;
    if (dsm_barrier() != 0)
        return bad("dsm_barrier failed");
    if (r == 1 % n) {
        a[0] = 1001;
        if (dsm_atomic_fetch_add_64(&a[2 * words], 7, NULL) != 0)
            return bad("dsm_atomic_fetch_add_64 on a first-touch page failed");
    }
    if (dsm_barrier() != 0)
        return bad("dsm_barrier failed");
    if (r == 0)
        a[words] = 1002;
    if (dsm_barrier() != 0)
        return bad("dsm_barrier failed");
    if (r == 0 && (a[0] != 1001 || a[words] != 1002 || a[2 * words] != 7))
        return bad("first-touch pages do not hold what was written");
    for (size_t pg = 0; pg < 64 && race; pg++)
        b[pg * words + (size_t)r] = ((uint64_t)pg << 16) | (uint64_t)r;
    if (dsm_barrier() != 0)
        return bad("dsm_barrier failed");
    for (size_t pg = 0; pg < 64 && race; pg++)
        for (int q = 0; q < n; q++)
            if ((v = b[pg * words + (size_t)q]) != (((uint64_t)pg << 16) | (uint64_t)q))
                return bad("a write to a first-touch page with racing claims was lost");
    printf("rank %d firsttouch ok\n", r);
    return dsm_barrier() ? bad("dsm_barrier failed") : 0;
}

/* insight: see the header. */
static int run_insight(long windows)
{
    size_t ps = dsm_page_size();
    int r = dsm_rank(), n = dsm_nranks();
    unsigned char *own = dsm_coalloc(2 * ps * (size_t)n);
    unsigned char *shared = dsm_coalloc(ps);
    unsigned char *mixed = dsm_coalloc(ps);

    if (own == NULL || shared == NULL || mixed == NULL)
        return bad("dsm_coalloc failed");
    if ((size_t)(n + 1) * 64 > ps)
        return bad("too many ranks for one shared page");
    if (r == 0)
        printf("insight own %p shared %p mixed %p\n", (void *)own, (void *)shared, (void *)mixed);
    for (long w = 1; w <= windows; w++) {
        memset(own + 2 * ps * (size_t)r, (int)(w + r), 2 * ps);
        memset(shared + 64 * r, (int)(w + r), 64);
        memset(mixed + 64 * (r + 1), (int)(w + r), 64);
        if (dsm_lock(1) != 0)
            return bad("dsm_lock failed");
        (*(volatile uint64_t *)mixed)++;
        if (dsm_unlock(1) != 0 || dsm_barrier() != 0)
            return bad("dsm_unlock/dsm_barrier failed");
    }
    if (*(volatile uint64_t *)mixed != (uint64_t)(n * windows))
        return bad("the counter under lock 1 lost an increment");
    for (int q = 0; q < n; q++)
        for (size_t i = 0; i < 64; i++)
            if (shared[64 * q + i] != (unsigned char)(windows + q) || own[2 * ps * (size_t)q + i * 64] !=
                                                                        (unsigned char)(windows + q))
                return bad("a write was lost");
    printf("rank %d insight ok\n", r);
    return 0;
}

/* breakdown: see the header. */
static int run_breakdown(void)
{
    struct dsm_alloc_attr last = DSM_ALLOC_ATTR_INIT;
    volatile char *far;
    void *p;
    long sum = 0;

    last.placement = DSM_PLACE_NODE;
    last.node = dsm_nnodes() - 1;
    if (dsm_coalloc_ex(dsm_page_size(), &last, &p) != 0)
        return bad("dsm_coalloc_ex failed");
    far = p;
    if (dsm_rank() == 0 && dsm_lock(3) != 0)
        return bad("dsm_lock failed");
    if (dsm_barrier() != 0)
        return bad("dsm_barrier failed");
    if (dsm_rank() == 0) {
        sleep_ms(300); /* outside the runtime: compute, as the breakdown counts it */
        if (dsm_unlock(3) != 0)
            return bad("dsm_unlock failed");
    } else if (dsm_rank() == 1) {
        if (dsm_lock(3) != 0 || dsm_unlock(3) != 0)
            return bad("dsm_lock/dsm_unlock failed");
        sum += far[0];
    }
    if (dsm_barrier() != 0)
        return bad("dsm_barrier failed");
    printf("rank %d breakdown ok %ld\n", dsm_rank(), sum);
    return 0;
}

/* freescan: see the header. */
static int run_freescan(long iters)
{
    enum { SCAN = 32, NEXT = 16 };
    size_t ps = dsm_page_size(), w = ps / sizeof(uint64_t);
    volatile uint64_t *volatile *slot = dsm_coalloc(ps);
    volatile uint64_t *a, *b;
    uint64_t sum = 0;

    if (slot == NULL)
        return bad("dsm_coalloc failed");
    if (dsm_rank() == 0 && (slot[0] = dsm_malloc(SCAN * ps)) == NULL)
        return bad("dsm_malloc of the scanned block failed");
    if (dsm_barrier() != 0)
        return bad("dsm_barrier failed");
    a = slot[0];
    for (long it = 0; it < iters; it++) {
        if (dsm_rank() == 0) {
            if ((b = dsm_malloc(NEXT * ps)) == NULL)
                return bad("dsm_malloc of the next block failed");
            for (size_t pg = 0; pg < NEXT; pg++)
                b[pg * w] = (uint64_t)it + 1;
            for (size_t pg = 0; pg < SCAN; pg++)
                a[pg * w] = (uint64_t)it; /* the others' copies of A go */
            slot[1] = b;
        }
        if (dsm_barrier() != 0)
            return bad("dsm_barrier failed");
        b = slot[1];
        for (size_t pg = 0; pg < NEXT && dsm_rank() != 0; pg++)
            if (b[pg * w] != (uint64_t)it + 1) {
                fprintf(stderr, "launcher_prog rank %d: iteration %ld: page %zu of the new block reads %llu, "
                        "want %ld\n", dsm_rank(), it, pg, (unsigned long long)b[pg * w], it + 1);
                return BAD;
            }
        if (dsm_barrier() != 0)
            return bad("dsm_barrier failed");
        if (dsm_rank() == 0)
            dsm_free((void *)b);
        else
            for (size_t pg = 0; pg < SCAN; pg++)
                sum += a[pg * w];
        if (dsm_barrier() != 0)
            return bad("dsm_barrier failed");
    }
    printf("rank %d freescan ok (%llu)\n", dsm_rank(), (unsigned long long)sum);
    return 0;
}

/* maps: see the header. */
static int run_maps(long pages)
{
    size_t ps = dsm_page_size(), w = ps / sizeof(uint64_t);
    int r = dsm_rank(), n = dsm_nranks();
    volatile uint64_t *a = pages > 0 ? dsm_coalloc((size_t)pages * ps) : NULL;

    if (a == NULL)
        return bad("dsm_coalloc failed");
    for (long pg = r; pg < pages; pg += n)
        a[(size_t)pg * w] = (uint64_t)pg + 1;
    if (dsm_barrier() != 0)
        return bad("dsm_barrier failed");
    for (long pg = 0; pg < pages; pg++)
        if (a[(size_t)pg * w] != (uint64_t)pg + 1) {
            fprintf(stderr, "launcher_prog rank %d: page %ld reads %llu, want %ld\n", r, pg,
                    (unsigned long long)a[(size_t)pg * w], pg + 1);
            return BAD;
        }
    if (dsm_barrier() != 0)
        return bad("dsm_barrier failed");
    printf("rank %d maps ok\n", r);
    return 0;
}

/* Every page of a fresh block of n pages reads zero; then this rank writes its pages
 * (every `stride`-th from `from`) with v. 0, or BAD (said). */
static int fresh_block(volatile uint64_t *a, size_t n, size_t from, size_t stride, uint64_t v, const char *what)
{
    size_t w = dsm_page_size() / sizeof(uint64_t);

    for (size_t pg = from; pg < n; pg += stride) {
        if (a[pg * w] != 0 || a[pg * w + w - 1] != 0) {
            fprintf(stderr, "launcher_prog rank %d: %s: page %zu of a fresh block is not zero\n", dsm_rank(),
                    what, pg);
            return BAD;
        }
        a[pg * w] = v;
    }
    return 0;
}

/* outofturn (see the top). Returns BAD if the channel could not be set up. */
static int run_outofturn(void)
{
    if (dsm_rank() == dsm_nranks() - 1) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        const char *path = getenv("DSM_SOCKET");
        struct dsmc_msg m = { .magic = DSMC_MAGIC, .op = DSMC_HELLO_THREAD, .rank = (uint32_t)dsm_rank() };
        int fd = socket(AF_UNIX, SOCK_SEQPACKET, 0);

        if (path == NULL || strlen(path) >= sizeof(sa.sun_path) || fd < 0)
            return bad("no daemon socket");
        strcpy(sa.sun_path, path);
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || send(fd, &m, sizeof(m), 0) != sizeof(m) ||
            recv(fd, &m, sizeof(m), 0) != sizeof(m) || m.op != DSMC_REPLY || m.status != 0)
            return bad("the daemon refused a thread channel");
        printf("rank %d sends a PROTECT_ACK on a thread channel\n", dsm_rank());
        fflush(stdout); /* before: the daemon may end this rank as soon as it is sent */
        m = (struct dsmc_msg){ .magic = DSMC_MAGIC, .op = DSMC_PROTECT_ACK, .rank = (uint32_t)dsm_rank() };
        if (send(fd, &m, sizeof(m), 0) != sizeof(m))
            return bad("send");
    }
    dsm_barrier(); /* the job ends here, failed by the daemon */
    return bad("the job went on after a request out of turn");
}

/* refree: see the header. */
static int run_refree(long mib, long k)
{
    size_t bytes = (size_t)mib << 20, n = bytes / dsm_page_size();
    int r = dsm_rank(), nr = dsm_nranks();
    volatile uint64_t *a, *b;

    for (long i = 0; i < k; i++) {
        if ((a = dsm_coalloc(bytes)) == NULL)
            return bad("dsm_coalloc right after a dsm_cofree of as much failed");
        if (fresh_block(a, n, (size_t)r, (size_t)nr, (uint64_t)i + 1, "dsm_coalloc") != 0)
            return BAD;
        if (dsm_barrier() != 0)
            return bad("dsm_barrier failed");
        dsm_cofree((void *)a);
    }
    for (long i = 0; i < k && r == 0; i++) { /* alone in its node's arena */
        if ((a = dsm_malloc(bytes / 2)) == NULL)
            return bad("dsm_malloc right after a dsm_free of as much failed");
        if (fresh_block(a, n / 2, 0, 1, (uint64_t)i + 1, "dsm_malloc") != 0)
            return BAD;
        dsm_free((void *)a);
    }
    if ((a = dsm_coalloc(bytes)) == NULL)
        return bad("dsm_coalloc failed");
    if (dsm_barrier() != 0)
        return bad("dsm_barrier failed");
    if ((b = dsm_coalloc(bytes)) != NULL)
        return bad("a dsm_coalloc that cannot fit beside a live one succeeded");
    dsm_cofree((void *)a);
    if ((b = dsm_coalloc(bytes)) == NULL)
        return bad("dsm_coalloc after the live one's dsm_cofree failed");
    if (dsm_barrier() != 0)
        return bad("dsm_barrier failed");
    printf("rank %d refree ok\n", r);
    return 0;
}

/* placement: see the header. Every rank makes the same calls (they are collective). */
static int run_placement(void)
{
    struct dsm_alloc_attr attr = DSM_ALLOC_ATTR_INIT, bad_attr;
    size_t ps = dsm_page_size();
    volatile char *r[3];
    void *p = (void *)1;
    long sum = 0;

    bad_attr = attr;
    bad_attr.placement = (enum dsm_placement)7;
    if (dsm_coalloc_ex(ps, &bad_attr, &p) != DSM_EINVAL || p != NULL)
        return bad("an unknown placement was not DSM_EINVAL with *out NULL");
    bad_attr = attr;
    bad_attr.placement = DSM_PLACE_NODE;
    bad_attr.node = dsm_nranks(); /* one node per rank here: out of range */
    if (dsm_coalloc_ex(ps, &bad_attr, &p) != DSM_EINVAL)
        return bad("a node out of range was not DSM_EINVAL");
    bad_attr = attr;
    bad_attr.placement = DSM_PLACE_CYCLIC;
    if (dsm_coalloc_ex(ps, &bad_attr, &p) != DSM_EINVAL)
        return bad("cyclic with block_pages 0 was not DSM_EINVAL");
    bad_attr = attr;
    bad_attr.reserved[2] = 1;
    if (dsm_coalloc_ex(ps, &bad_attr, &p) != DSM_EINVAL || dsm_coalloc_ex(0, NULL, &p) != DSM_EINVAL ||
        dsm_coalloc_ex(ps, NULL, NULL) != DSM_EINVAL)
        return bad("a reserved field, a size of 0 or a NULL out was not DSM_EINVAL");
    if (dsm_coalloc_ex(4 * ps, NULL, &p) != 0)
        return bad("dsm_coalloc_ex with block placement failed");
    r[0] = p;
    attr.placement = DSM_PLACE_CYCLIC;
    attr.block_pages = 1;
    if (dsm_coalloc_ex(4 * ps, &attr, &p) != 0)
        return bad("dsm_coalloc_ex with cyclic placement failed");
    r[1] = p;
    attr = (struct dsm_alloc_attr)DSM_ALLOC_ATTR_INIT;
    attr.placement = DSM_PLACE_NODE;
    attr.node = 1;
    if (dsm_coalloc_ex(4 * ps, &attr, &p) != 0)
        return bad("dsm_coalloc_ex on node 1 failed");
    r[2] = p;
    if (dsm_barrier() != 0)
        return bad("dsm_barrier failed");
    for (int k = 0; k < 3 && dsm_rank() == 0; k++)
        for (int pg = 0; pg < 2; pg++)
            sum += r[k][(size_t)pg * ps];
    if (sum != 0)
        return bad("a fresh region does not read as zeroes");
    return dsm_barrier() ? bad("dsm_barrier failed") : 0;
}

/* finalize: rank `early` leaves the job while the others wait in a barrier. */
static int run_finalize(int early)
{
    if (dsm_rank() == early) {
        fprintf(stderr, "rank %d finalizing early\n", early);
        return 0; /* main() calls dsm_finalize */
    }
    dsm_barrier(); /* never completes */
    sleep_ms(60000);
    return bad("still running a minute after a rank finalized");
}

int main(int argc, char **argv)
{
    int err, rc;

    if (argc < 2) {
        fprintf(stderr, "usage: launcher_prog ok|fail|spin|loop|segv|freeze|stats|finalize|noinit|plain|deadlock|slow|"
                        "api|abort|mismatch|placement|cond|flag|atomics|firsttouch|breakdown "
                        "[ARGS...]\n");
        return 2;
    }
    /* modes where some or all ranks never join the job: DSM_RANK is all they have */
    if (!strcmp(argv[1], "plain")) {
        printf("rank %ld plain\n", env_long("DSM_RANK"));
        return 0;
    }
    if (!strcmp(argv[1], "noinit") && argc > 2 && env_long("DSM_RANK") == atol(argv[2])) {
        fprintf(stderr, "rank %s leaving without dsm_init\n", argv[2]);
        return 0;
    }
    err = dsm_init(&argc, &argv);
    if (err) {
        fprintf(stderr, "launcher_prog: dsm_init: %s\n", dsm_strerror(err));
        return BAD;
    }
    if (!strcmp(argv[1], "ok"))
        rc = run_ok();
    else if (!strcmp(argv[1], "fail"))
        rc = run_fail(argc - 2, argv + 2);
    else if (!strcmp(argv[1], "spin"))
        rc = run_spin();
    else if (!strcmp(argv[1], "loop"))
        rc = run_loop();
    else if (!strcmp(argv[1], "segv") && argc > 2)
        rc = run_segv(atoi(argv[2]));
    else if (!strcmp(argv[1], "freeze"))
        rc = run_freeze();
    else if (!strcmp(argv[1], "stats"))
        rc = run_stats();
    else if (!strcmp(argv[1], "api"))
        rc = run_api();
    else if (!strcmp(argv[1], "abort") && argc > 3)
        rc = run_abort(atoi(argv[2]), atoi(argv[3]));
    else if (!strcmp(argv[1], "mismatch"))
        rc = run_mismatch(argc > 2 && !strcmp(argv[2], "place"));
    else if (!strcmp(argv[1], "cond") && argc > 2)
        rc = run_cond(atol(argv[2]));
    else if (!strcmp(argv[1], "flag"))
        rc = run_flag();
    else if (!strcmp(argv[1], "freescan") && argc > 2)
        rc = run_freescan(atol(argv[2]));
    else if (!strcmp(argv[1], "maps") && argc > 2)
        rc = run_maps(atol(argv[2]));
    else if (!strcmp(argv[1], "refree") && argc > 3)
        rc = run_refree(atol(argv[2]), atol(argv[3]));
    else if (!strcmp(argv[1], "placement"))
        rc = run_placement();
    else if (!strcmp(argv[1], "outofturn"))
        rc = run_outofturn();
    else if (!strcmp(argv[1], "insight") && argc > 2)
        rc = run_insight(atol(argv[2]));
    else if (!strcmp(argv[1], "breakdown"))
        rc = run_breakdown();
    else if (!strcmp(argv[1], "firsttouch"))
        rc = run_firsttouch(argc > 2 && !strcmp(argv[2], "race"));
    else if (!strcmp(argv[1], "atomics") && argc > 2)
        rc = run_atomics(atol(argv[2]));
    else if (!strcmp(argv[1], "deadlock"))
        rc = run_deadlock();
    else if (!strcmp(argv[1], "slow") && argc > 2)
        rc = run_slow(atol(argv[2]));
    else if (!strcmp(argv[1], "finalize") && argc > 2)
        rc = run_finalize(atoi(argv[2]));
    else if (!strcmp(argv[1], "noinit") && argc > 2)
        rc = run_fail(0, NULL); /* the barrier, which rank argv[2] never reaches */
    else
        rc = bad("unknown mode");
    if (rc == 0 && (err = dsm_finalize()) != 0)
        rc = bad(dsm_strerror(err));
    return rc;
}

/*
 * release.c - release consistency: home-based lazy release consistency (HLRC) with
 * multiple writers, twins and diffs. (Past 800 lines: one state machine, whose transitions
 * table below names the functions that follow; split, a transition would sit apart from the
 * state it reads.)
 *
 * Every page has a home whose frame is the master copy. Other nodes cache copies. Writes
 * are local: the first write of an interval to a cached page takes a twin; at a release
 * (unlock, barrier, finalize) the node ends its interval: every page it wrote becomes READ
 * again, the changed bytes (diff against the twin) go to the page's home, and once every
 * home has acknowledged, the interval's write notice ("node n wrote pages X in interval
 * i") joins the node's store and its vector clock. Lock grants and barrier releases carry
 * the notices the acquirer has not seen; the acquirer drops exactly the pages they name
 * (unless it is their home), and its next access fetches the whole page from the home.
 * Intervals are per node: a release by any rank of a node ends the node's interval.
 *
 * Invariants:
 *   R1  The home's frame is the master copy; the home never drops it and never twins it.
 *   R2  A page with a twin is valid locally (READ or WRITE) and not at its home; the bytes
 *       that differ from the twin are exactly this node's unsent writes to it.
 *   R3  A release completes only when every diff of the interval is acknowledged by its
 *       home, so whoever acts on the interval's notice fetches data that includes it.
 *   R4  The store holds every notice (n, i) with i <= vc[n] (vc = what this node has
 *       applied); a lock manager holds every notice covered by the lock's clock.
 *   R5  A dropped page that still has unsent writes sends its diff first ("early diff"),
 *       or already has it queued in its home's outbox (a release's): concurrent writers
 *       of one page (false sharing) never lose bytes.
 *   R6  A home page no other node has fetched is written without write notices and stays
 *       writable across releases (nobody holds a copy to invalidate). The first PAGE_GET
 *       for it write-protects it at the home and lists it in the open interval before the
 *       page is sent, so every later home write is noticed.
 *   R7  An acquire completes only when every page its notices name is invalid in every
 *       local rank. Several ranks of a node acquire at once and their notices overlap: a
 *       page another acquire is still dropping (its PROTECTs out) is dropped again, queued
 *       behind the first, so the second acquirer never reads the stale frame meanwhile.
 *   R8  A release's diffs wait in a per-home outbox until every page of its interval is
 *       write-protected, then go as one DIFF per home. Whatever this node sends a home
 *       that must see those writes goes behind them on the FIFO link: a PAGE_GET
 *       (fetch), an early diff (send_diff) and an ATOMIC_REQ (rel_atomic_requesting) send
 *       the home's outbox first.
 *
 * Page states at a node that is not the home:
 *
 *      fault R/W        PAGE                   W fault: twin
 *   NONE ------> FETCHING ----> READ ---------------------------> WRITE
 *     ^                           ^  flush: revoke to READ,         |
 *     |                           +--- diff to home, free twin ------+
 *     +--- notice at acquire (drop; early diff if twinned) ----- READ/WRITE
 *       (a copy a rank had mapped and wanted back after its last drop: FETCHING again at
 *        the acquire's end, fetch_again)
 *
 * Transitions and the functions that perform them:
 *   fault at a node                         -> rel_fault (PAGE_GET, or twin + grant;
 *                                              write_ahead)
 *   PAGE_GET at home / PAGE at requester    -> serve_get (batch_share, batch_send) /
 *                                              page_arrived (ahead_arrived)
 *   release (unlock, barrier arrival, fini) -> rel_release -> flush_run -> flushed_page
 *   DIFF at home / DIFF_ACK at writer       -> diff_arrived / diff_acked -> flush_check
 *   grant or barrier release at acquirer    -> rel_acquired -> drop_page (self_invalidate)
 *                                              -> drop_start -> drop_revoked
 *                                              -> acquire_done -> fetch_again
 *   lock manager / barrier manager          -> rel_lock_released, rel_fill_grant,
 *                                              rel_barrier_arrived, rel_fill_barrier
 *   atomic done at the requester's node     -> rel_atomic_done
 *   the daemon evicts a page (its cache)    -> rel_evict -> drop_start -> drop_revoked
 *   a rank's direct read at home / landed   -> rel_direct_read (serve_get) /
 *                                              rel_direct_landed
 *
 * Read-ahead. A read fault of a scanning thread (the daemon's `ahead` hint) asks in its
 * PAGE_GET for the pages after it with the same home that this node has no copy of and
 * nothing under way for (`count`, at most dsmp_ahead_cap). The home sends them all in the
 * one PAGE (`count` = bitmap of those sent, their bytes in `data`), each after the R6 step
 * the page needs; they are FETCHING at the requester until it arrives, so a fault on one
 * waits for it and a notice that drops one meanwhile makes the copy stale (refetch), as for
 * any fetch. A page sent ahead that nobody faulted on becomes READ without a grant.
 *
 * Fetching again at an acquire (fetch_again; DSM_RELEASE_FETCH_AGAIN=0 turns it off). A
 * page that a notice drops, whose copy here came after an earlier acquire's drop (a rank
 * wanted it back: `again` WANTED) and that a rank still has mapped (the daemon's
 * `mapped`), is asked for again as soon as the acquire's drops are done, before the rank
 * goes on: a page that every phase rewrites elsewhere and reads here (false sharing, a
 * stencil's boundary) is then on its way before the rank's first fault on it. Runs of
 * consecutive such pages with one home go in one PAGE_GET each (read-ahead's bound). A
 * guess, like a read ahead: a page fetched so and then not mapped when the next notice
 * drops it is not fetched again until a rank wants it back. Never where nodes hold only
 * some pages (svc->partial: the daemon admits every frame a page cache fills, page_kick;
 * memory nodes). The fetch is an ordinary one, asked after the notice (R3: its writes are
 * at the home), so nothing else changes.
 *
 * Writes ahead (write_ahead). A write fault of a scanning thread makes the pages after it
 * that this node holds at READ writable too (the daemon's `ahead`: up to the grant run,
 * DSM_GRANT_AHEAD), before its grant, so that the daemon's grant run opens them all (a
 * write fault that fetches asks for the pages after it as a read does, and makes them
 * writable on arrival). A guess: an unwritten page so twinned costs an empty diff and a
 * name in the notice.
 *
 * Eviction (bounded cache) is a drop the node decides itself: the page goes to NONE and, if
 * it has unsent writes, they go to the home first as an early diff, or are queued already
 * (R5, R8; counted as the release's diff, not as a write-back); it stays in the
 * open interval's written list, so the interval's notice still names it and the release
 * still waits for that diff's ack (R3). A page being fetched, dropped or flushed is busy.
 * The home keeps no copyset, so a clean page goes without a message. The daemon evicts on
 * its own, so an early diff may cross the page's free: a free waits at every node until its
 * diffs there are acknowledged (rel_settled), and a home that no longer has the page acks a
 * diff without applying it.
 *
 * Self-invalidation, measured against notices (DSM_RELEASE_INVALIDATE=self; the default is
 * `notices`). An acquire then drops every copy it holds of a page it knows another node
 * has written (the page's class, shared-written: `sw`), whether or not the acquire's
 * notices name it; pages only this node writes (private or single-writer) and pages nobody
 * writes (read-only) stay. The class is learnt from the notices themselves, an oracle a
 * real self-invalidating protocol would pay a directory for, and the notices still travel:
 * the mode measures the extra fetches, and `notice_bytes` in the statistics what the
 * notices cost. docs/BENCHMARKS.md "Self-invalidation or write notices" has the numbers
 * and why notices stay the default. Dropping more pages than the notices name is always
 * safe (R7 and the refetch of a page being fetched apply to every drop alike).
 *
 * Direct reads (the daemon's direct.c, docs/PROTOCOL.md "Direct reads"). A rank may read a
 * page straight from its home while this node has no copy, nothing under way and no diff
 * of it unacknowledged (rel_direct_idle: the rank's READ does not queue behind this node's
 * DIFFs as a PAGE_GET does, R8). The home serves it as this node's PAGE_GET of the page
 * alone. The daemon tells this module when the copy has landed (READ, as a fetch would
 * leave it). A notice naming a page a rank is reading so (the daemon's `claimed`) drops it
 * like a copy: its revocation waits for the landing, and the landed copy stays NONE here
 * (R7 holds: the rank's mapping is taken back before the acquire completes).
 *
 * Atomics change the home's master copy directly (R1). The requester's node then counts
 * the change as its own write: the page joins its open interval (so the notice of its
 * next release names it and acquirers drop their stale copies), and a valid local copy
 * and its twin get the new word (the twin too, so no diff carries it back). A home page
 * nobody else has fetched needs no notice (R6).
 */
#include <stdlib.h>
#include <string.h>

#include "ahead.h"
#include "diff.h"
#include "dsm_log.h"
#include "dsmp.h"
#include "notices.h"
#include "pending.h"

#define LOCK_BUCKETS 256
#define SCRATCH_BYTES (60u * 1024u) /* notices per message: stays under DSMW_MAX_MSG */
#define BATCH_BYTES (60u * 1024u)   /* a DIFF's records: stays under DSMW_MAX_MSG */
/* the largest page whose worst diff (dsmp_diff_max) fits a DIFF alone: 16 KiB pages do */
#define RELEASE_MAX_PAGE ((BATCH_BYTES - DSMP_REC_HDR - 4u) / 5u * 2u)
/* a DIFF_ACK names each page of its DIFF in 8 bytes; a DIFF's records take >= DSMP_REC_HDR */
#define ACK_BYTES (DSMW_MAX_MSG / DSMP_REC_HDR * 8u)

/* rel_page.again: an acquire dropped the page's copy and none has come since (DROPPED); the
 * copy here came after such a drop (WANTED: a rank faulted on it again, or an acquire
 * fetched it again). */
#define AGAIN_DROPPED 1u
#define AGAIN_WANTED  2u

struct rel_page {
    uint8_t  local;     /* enum dsm_access */
    uint8_t  written;   /* in the open interval's written list */
    uint8_t  fetching;  /* PAGE_GET out */
    uint8_t  refetch;   /* dropped while fetching: the PAGE on its way may be stale */
    uint8_t  want;      /* access the fetch is for */
    uint8_t  shared;    /* at the home: another node has fetched the page */
    uint8_t  extras;    /* fetching: pages after it asked in the same PAGE_GET (read-ahead) */
    uint8_t  lead_off;  /* fetching as an extra: its distance from the page it was asked with */
    uint8_t  again;     /* AGAIN_*: fetching again at an acquire (fetch_again) */
    uint16_t dropping;  /* drops whose revocation has not completed (R7) */
    uint16_t diffs;     /* diffs sent for it and not acknowledged yet (rel_settled) */
    int32_t  origin;
    uint8_t *twin;
};

/* Diffs queued for one home, sent together in one DIFF (diffs_send). */
struct rel_outbox {
    uint8_t *buf;       /* records (diff.h): [u64 page][u32 len][diff] */
    size_t len;
    uint64_t first;     /* the first record's page: the message's `page` */
    uint32_t n;
};

struct rel_waiter {
    struct rel_waiter *next;
    dsmp_done_fn done;
    void *arg;
};

/* A lock: at its manager, the clock of its releases; at a holder, the clock it got. */
struct rel_lock {
    struct rel_lock *next;
    uint32_t id;
    uint32_t vc[];
};

/* An acquire being applied. */
struct rel_acquire {
    struct dsmp_pending link; /* first: on p->acquires until acquire_done frees it */
    dsmp_done_fn done;
    void *arg;
    int pending;
    uint32_t vc[];
};

struct dsmp {
    struct dsmp_services svc;
    struct dsmp_pending *drops;    /* copies being dropped: rel_drop until drop_revoked */
    struct dsmp_pending *acquires; /* acquires waiting for their drops (pending.h) */
    int nn;
    struct rel_page *pg;
    uint64_t *written;        /* the open interval's written pages */
    size_t nwritten, capwritten;
    /* the flush (end of interval) in progress */
    int flushing;
    int fl_origin;            /* the rank whose release started it (statistics) */
    int fl_pending;           /* revocations not done yet */
    uint64_t diffs_out;       /* diffs not acknowledged yet (flush and early) */
    struct rel_outbox *out;   /* per home: the flush's diffs, sent once it is write-protected */
    size_t outcap;            /* bytes of each outbox's buffer */
    int outboxes;             /* outboxes holding records */
    uint8_t *ackbuf;          /* a DIFF_ACK's pages (ACK_BYTES) */
    struct rel_waiter *fl_waiters, *next_waiters;
    uint32_t *vc;             /* intervals applied, per node */
    uint32_t *bar_vc;         /* clock of the last barrier */
    uint32_t *bar_acc;        /* node 0: clocks of this barrier's arrivals */
    uint32_t *zero_vc;
    struct dsmp_notices store;
    struct rel_lock *mgr[LOCK_BUCKETS], *held[LOCK_BUCKETS];
    uint8_t *scratch;         /* fill_* data */
    uint64_t *scratch_vc;     /* fill_* vclock */
    uint8_t *diffbuf;
    uint8_t *runsbuf;
    size_t runscap;
    struct dsmp_batch *batches; /* home: PAGE_GETs waiting for R6 revocations */
    uint32_t ahead_cap;
    int fetch_again;           /* DSM_RELEASE_FETCH_AGAIN (on unless 0; never when svc->partial) */
    uint64_t *again;           /* pages acquires dropped that are to be fetched again */
    size_t nagain, capagain;
    uint8_t *pagebuf;          /* a PAGE's pages read ahead: ahead_cap pages */
    /* DSM_RELEASE_INVALIDATE=self (see the top): per page SW_* bits, and the pages ever
     * listed, each once; NULL under notices */
    uint8_t *sw;
    uint64_t *swlist;
    size_t nsw, capsw;
};

#define SW_LISTED  1u /* in swlist (kept across a free, so a page is listed once) */
#define SW_WRITTEN 2u /* another node wrote it (a notice named it) since its allocation */

static void flush_run(dsmp_t *p);
static void diffs_send(dsmp_t *p, int node, int origin);

static int is_home(dsmp_t *p, uint64_t page)
{
    return p->svc.home(p->svc.ctx, page) == p->svc.self;
}

static void send_page_msg(dsmp_t *p, int node, int type, uint64_t page, int origin, const uint8_t *data,
                          size_t len, uint64_t attach)
{
    dsmw_msg_t m;

    dsmw_init(&m, type);
    m.page = page;
    m.node = (uint32_t)p->svc.self;
    m.origin = (uint32_t)origin;
    m.data.data = (uint8_t *)data;
    m.data.len = len;
    p->svc.send(p->svc.ctx, node, &m, attach);
}

/* ---- faults ---- */

/* List page in the open interval's written pages (for its notice). */
static dsm_status_t written_add(dsmp_t *p, uint64_t page)
{
    struct rel_page *g = &p->pg[page];

    if (!g->written) {
        if (dsmp_pages_reserve(&p->written, p->nwritten, &p->capwritten) != DSM_OK)
            return DSM_ENOMEM;
        p->written[p->nwritten++] = page;
        g->written = 1;
    }
    return DSM_OK;
}

/* Make page writable here: twin it (not at home) and list it for the interval's notice
 * (not a home page nobody else has: R6). */
static dsm_status_t start_write(dsmp_t *p, uint64_t page)
{
    struct rel_page *g = &p->pg[page];
    int home = is_home(p, page);

    DSMP_INVARIANT(!home || g->twin == NULL, "R1");
    if (!home && g->twin == NULL) {
        g->twin = malloc(p->svc.page_size);
        if (g->twin == NULL)
            return DSM_ENOMEM;
        memcpy(g->twin, p->svc.frame(p->svc.ctx, page), p->svc.page_size);
    }
    if ((!home || g->shared) && written_add(p, page) != DSM_OK)
        return DSM_ENOMEM;
    g->local = DSM_ACCESS_WRITE;
    return DSM_OK;
}

/* Hand out `access` to the local ranks now that the page's data is here. */
static void grant_local(dsmp_t *p, uint64_t page, int access)
{
    if (access == DSM_ACCESS_WRITE && start_write(p, page) != DSM_OK) {
        DSM_ERR("release: out of memory for a twin of page %llu", (unsigned long long)page);
        access = DSM_ACCESS_READ; /* the rank faults again; nothing is lost */
    }
    if (p->pg[page].local < access)
        p->pg[page].local = (uint8_t)access;
    p->svc.grant(p->svc.ctx, page, access);
}

/* Requester: page q may be asked for ahead: no copy here, nothing under way (fetch, drop,
 * twin, a rank's direct read) (dsmp_ahead_count). */
static int ahead_absent(dsmp_t *p, uint64_t q)
{
    const struct rel_page *g = &p->pg[q];

    return g->local == DSM_ACCESS_NONE && !g->fetching && !g->dropping && g->twin == NULL &&
           (p->svc.take == NULL || p->svc.take(p->svc.ctx, q));
}

/* Requester: ask the home for page (and, for a scan's read, the pages after it). */
static void fetch(dsmp_t *p, uint64_t page, int origin, uint32_t ahead)
{
    int home = p->svc.home(p->svc.ctx, page);
    uint32_t n = dsmp_ahead_count(p, &p->svc, page, home, ahead, p->ahead_cap, ahead_absent);
    dsmw_msg_t m;

    p->pg[page].fetching = 1;
    p->pg[page].extras = (uint8_t)n;
    for (uint32_t i = 1; i <= n; i++) {
        p->pg[page + i].fetching = 1;
        p->pg[page + i].lead_off = (uint8_t)i;
        p->pg[page + i].origin = origin;
    }
    dsmw_init(&m, DSMW__TYPE__PAGE_GET);
    m.page = page;
    m.node = (uint32_t)p->svc.self;
    m.origin = (uint32_t)origin;
    m.count = n;
    diffs_send(p, home, origin); /* the copy must include this node's writes (R3) */
    p->svc.send(p->svc.ctx, home, &m, DSMP_NO_FRAME);
}

/*
 * Writes ahead: a write fault of a scanning thread (the daemon's `ahead` hint) makes up to
 * ahead - 1 pages after it writable too, so that the grant opens them all in one run: pages
 * this node holds at READ with nothing under way, in the same allocation, as start_write
 * would at their own faults. A guess, like a read ahead: a page so twinned and then not
 * written costs an empty diff, and the interval's notice names it (its readers drop it).
 */
static void write_ahead(dsmp_t *p, uint64_t page, uint32_t ahead)
{
    uint64_t end = p->svc.alloc_end(p->svc.ctx, page);

    for (uint64_t q = page + 1; q < page + ahead && q < end && q < p->svc.npages; q++) {
        struct rel_page *g = &p->pg[q];

        if (g->local != DSM_ACCESS_READ || g->fetching || g->dropping || g->twin != NULL || g->want ||
            start_write(p, q) != DSM_OK)
            break;
        p->svc.set_access(p->svc.ctx, q, DSM_ACCESS_WRITE);
    }
}

static void rel_fault(dsmp_t *p, uint64_t page, int access, int origin, uint32_t ahead)
{
    struct rel_page *g = &p->pg[page];

    if (g->local == DSM_ACCESS_NONE && is_home(p, page))
        g->local = DSM_ACCESS_READ; /* R1: the master copy is always valid */
    if (g->local != DSM_ACCESS_NONE) {
        if (access == DSM_ACCESS_WRITE)
            write_ahead(p, page, ahead); /* before the grant: its run takes them */
        grant_local(p, page, access);
        return;
    }
    if (access > g->want)
        g->want = (uint8_t)access;
    g->origin = origin;
    if (!g->fetching)
        fetch(p, page, origin, ahead);
}

/* Requester: a PAGE's read-ahead part makes sense: pages only among those asked with
 * m->page, data for exactly those. */
static int ahead_ok(dsmp_t *p, const dsmw_msg_t *m)
{
    const struct rel_page *g = &p->pg[m->page];
    uint32_t asked = g->fetching ? g->extras : 0;

    return (m->count >> asked) == 0 && m->data.len == (size_t)__builtin_popcountll(m->count) * p->svc.page_size;
}

/* A copy of the page came (a fetch, a rank's direct read): one that follows an acquire's
 * drop was wanted back (fetch_again). */
static void copy_came(struct rel_page *g)
{
    g->again = (g->again & AGAIN_DROPPED) ? AGAIN_WANTED : 0;
}

/* Requester: a fetched page is here (in its frame): hand it to the ranks that wait, or
 * just open it to the node if none does. */
static void fetched(dsmp_t *p, uint64_t page, int origin)
{
    struct rel_page *g = &p->pg[page];
    int want = g->want;

    g->fetching = 0;
    g->want = 0;
    g->local = DSM_ACCESS_READ;
    copy_came(g);
    p->svc.count(p->svc.ctx, origin, DSMP_PAGES_FETCHED, 1);
    if (want)
        grant_local(p, page, want);
    else
        p->svc.set_access(p->svc.ctx, page, DSM_ACCESS_READ);
}

/* Requester: the pages asked with `lead` are answered. One reset since (lead_off no longer
 * points at `lead`) is left alone; one dropped meanwhile (refetch) or not sent is fetched
 * again if a rank waits for it. */
static void ahead_arrived(dsmp_t *p, uint64_t lead, const dsmw_msg_t *m)
{
    uint32_t n = p->pg[lead].extras;
    const uint8_t *data = m->data.data;

    p->pg[lead].extras = 0;
    for (uint32_t i = 1; i <= n; i++) {
        uint64_t q = lead + i;
        struct rel_page *g = &p->pg[q];
        int served = (m->count >> (i - 1)) & 1;

        if (served)
            data += p->svc.page_size;
        if (!g->fetching || g->lead_off != i)
            continue;
        g->lead_off = 0;
        if (served && !g->refetch) {
            memcpy(p->svc.frame(p->svc.ctx, q), data - p->svc.page_size, p->svc.page_size);
            p->svc.count(p->svc.ctx, (int)m->origin, DSMP_PAGES_READ_AHEAD, 1);
            fetched(p, q, (int)m->origin);
            continue;
        }
        g->refetch = 0;
        g->fetching = 0;
        if (g->want)
            fetch(p, q, g->origin, 1);
        else
            dsmp_sync(&p->svc, q); /* not sent: its door may open again */
    }
}

static dsm_status_t page_arrived(dsmp_t *p, const dsmw_msg_t *m)
{
    struct rel_page *g = &p->pg[m->page];
    uint32_t extras = g->extras;

    if (!g->fetching || g->lead_off != 0 || !ahead_ok(p, m))
        return DSM_EPROTO;
    ahead_arrived(p, m->page, m);
    if (g->refetch) {
        /* a notice dropped the page while this copy was on its way: ask again */
        g->refetch = 0;
        fetch(p, m->page, g->origin, 1);
        return DSM_OK;
    }
    if (g->want == DSM_ACCESS_WRITE)
        write_ahead(p, m->page, extras + 1); /* the pages that came with it */
    fetched(p, m->page, (int)m->origin);
    return DSM_OK;
}

/* ---- end of interval ---- */

static void add_waiter(dsmp_t *p, struct rel_waiter **list, dsmp_done_fn done, void *arg)
{
    struct rel_waiter *w = malloc(sizeof(*w));

    if (w == NULL) {
        dsmp_fail(&p->svc, DSM_ENOMEM, "release: out of memory waiting for a release");
        return;
    }
    w->done = done;
    w->arg = arg;
    w->next = *list;
    *list = w;
}

/* The flush is complete when its revocations are done and every diff is acknowledged; its
 * diffs go home, one DIFF per home, once every revocation is done. */
static void flush_check(dsmp_t *p)
{
    struct rel_waiter *w, *next;

    for (int n = 0; n < p->nn && p->outboxes > 0 && p->flushing && p->fl_pending == 0; n++)
        diffs_send(p, n, p->fl_origin);
    if (!p->flushing || p->fl_pending > 0 || p->diffs_out > 0)
        return;
    p->flushing = 0;
    w = p->fl_waiters;
    p->fl_waiters = NULL;
    for (; w; w = next) {
        next = w->next;
        w->done(p, w->arg);
        free(w);
    }
    if (p->next_waiters != NULL) {
        p->fl_waiters = p->next_waiters;
        p->next_waiters = NULL;
        flush_run(p);
    }
}

/* Send the diffs queued for node in one DIFF (none queued: nothing). Every message this
 * module sends a home that depends on this node's writes (PAGE_GET, an early diff) calls
 * this first: the link is FIFO, so the home applies them before it answers. */
static void diffs_send(dsmp_t *p, int node, int origin)
{
    struct rel_outbox *o = &p->out[node];

    if (o->n == 0)
        return;
    send_page_msg(p, node, DSMW__TYPE__DIFF, o->first, origin, o->buf, o->len, DSMP_NO_FRAME);
    o->n = 0;
    o->len = 0;
    p->outboxes--;
}

/* Queue the unsent writes of a twinned page for its home's next DIFF (R2, R3, R5); the
 * twin goes. Returns the home, or -1 if there were none. */
static int diff_queue(dsmp_t *p, uint64_t page, int origin)
{
    struct rel_page *g = &p->pg[page];
    struct rel_outbox *o;
    size_t len;
    int home;

    if (g->twin == NULL)
        return -1;
    DSMP_INVARIANT(!is_home(p, page), "R2"); /* (valid locally, except while a drop sends it: R5) */
    len = dsmp_diff_make(p->svc.frame(p->svc.ctx, page), g->twin, p->svc.page_size, p->diffbuf);
    free(g->twin);
    g->twin = NULL;
    if (len == 0)
        return -1;
    home = p->svc.home(p->svc.ctx, page);
    o = &p->out[home];
    if (o->len + DSMP_REC_HDR + len > p->outcap)
        diffs_send(p, home, origin);
    if (o->buf == NULL && (o->buf = malloc(p->outcap)) == NULL) {
        dsmp_fail(&p->svc, DSM_ENOMEM, "release: out of memory queueing the diff of page %llu",
                  (unsigned long long)page);
        return -1;
    }
    if (o->n++ == 0) {
        o->first = page;
        p->outboxes++;
    }
    o->len += dsmp_rec_put(o->buf + o->len, page, p->diffbuf, len);
    p->diffs_out++;
    g->diffs++;
    p->svc.count(p->svc.ctx, origin, DSMP_DIFFS, 1);
    return home;
}

/* Send the unsent writes of a twinned page to its home now (an early diff: R5), behind
 * whatever is queued for it. Returns 1 if there were any. */
static int send_diff(dsmp_t *p, uint64_t page, int origin)
{
    int home = diff_queue(p, page, origin);

    if (home < 0)
        return 0;
    diffs_send(p, home, origin);
    return 1;
}

/* A page of the flush is write-protected in every local rank: its diff can be made. */
static void flushed_page(dsmp_t *p, void *arg)
{
    uint64_t page = (uint64_t)(uintptr_t)arg;
    struct rel_page *g = &p->pg[page];

    diff_queue(p, page, p->fl_origin);
    if (g->local == DSM_ACCESS_WRITE)
        g->local = DSM_ACCESS_READ;
    p->fl_pending--;
    flush_check(p);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

/* End the open interval: notice, write-protect, diffs (see flush_check for the end). */
static void flush_run(dsmp_t *p)
{
    uint64_t *w = p->written;
    size_t n = p->nwritten;
    uint32_t len;

    p->flushing = 1;
    p->fl_pending = 1; /* held while the revocations go out */
    p->written = NULL;
    p->nwritten = p->capwritten = 0;
    if (n > 0) {
        qsort(w, n, sizeof(*w), cmp_u64);
        if (p->runscap < DSMP_RUN_BYTES * n) {
            uint8_t *b = realloc(p->runsbuf, DSMP_RUN_BYTES * n);

            if (b != NULL) {
                p->runsbuf = b;
                p->runscap = DSMP_RUN_BYTES * n;
            }
        }
        if (p->runscap >= DSMP_RUN_BYTES * n) {
            len = dsmp_runs_build(w, n, p->runsbuf);
            p->vc[p->svc.self]++;
            if (dsmp_notices_add(&p->store, p->svc.self, p->vc[p->svc.self], p->runsbuf, len) != DSM_OK)
                dsmp_fail(&p->svc, DSM_ENOMEM, "release: out of memory storing a write notice");
            p->svc.count(p->svc.ctx, p->fl_origin, DSMP_WRITE_NOTICES, 1);
        } else {
            dsmp_fail(&p->svc, DSM_ENOMEM, "release: out of memory building a write notice of %zu pages", n);
        }
        for (size_t k = 0; k < n; k++) {
            p->pg[w[k]].written = 0;
            p->fl_pending++;
            p->svc.revoke(p->svc.ctx, w[k], DSM_ACCESS_READ, flushed_page, (void *)(uintptr_t)w[k]);
        }
    }
    free(w);
    p->fl_pending--;
    flush_check(p);
}

static void rel_release(dsmp_t *p, int origin, dsmp_done_fn done, void *arg)
{
    if (p->flushing) {
        add_waiter(p, &p->next_waiters, done, arg); /* needs a flush that starts after now */
        return;
    }
    add_waiter(p, &p->fl_waiters, done, arg);
    p->fl_origin = origin;
    flush_run(p);
}

/* ---- eviction ---- */

/* A copy being dropped: by a notice at an acquire, or by the daemon's eviction. */
struct rel_drop {
    struct dsmp_pending link; /* first: on p->drops until drop_revoked */
    dsmp_done_fn done;
    void *arg;
    uint64_t page;
    int evict;      /* count its unsent writes as a write-back */
};

/* Every local rank is at NONE for a dropped page: its unsent writes go home (R5; the diff is
 * copied into the message, so an evicted frame may be punched after done). */
static void drop_revoked(dsmp_t *p, void *arg)
{
    struct rel_drop *d = arg;
    struct rel_page *g = &p->pg[d->page];

    dsmp_pending_del(&p->drops, &d->link);
    if (g->dropping > 0) /* a region reset may have cleared it */
        g->dropping--;
    /* a write-back only if it carried writes (not a page made writable ahead, unwritten) */
    if (send_diff(p, d->page, p->svc.any_rank) && d->evict)
        p->svc.count(p->svc.ctx, p->svc.any_rank, DSMP_WRITEBACKS, 1);
    /* the door may open now: before the acquire this completes answers its rank */
    dsmp_sync(&p->svc, d->page);
    d->done(p, d->arg);
    free(d);
}

/* Take this node's copy of page to NONE, then its early diff (drop_revoked), then done. A
 * drop already in flight makes the page busy for eviction, and a second drop (another
 * acquire's notice) queues behind it (R7). DSM_ENOMEM: nothing started. */
static dsm_status_t drop_start(dsmp_t *p, uint64_t page, int evict, dsmp_done_fn done, void *arg)
{
    struct rel_drop *d = malloc(sizeof(*d));

    if (d == NULL)
        return DSM_ENOMEM;
    *d = (struct rel_drop){ .done = done, .arg = arg, .page = page, .evict = evict };
    p->pg[page].local = DSM_ACCESS_NONE;
    p->pg[page].dropping++;
    dsmp_pending_add(&p->drops, &d->link);
    p->svc.revoke(p->svc.ctx, page, DSM_ACCESS_NONE, drop_revoked, d);
    return DSM_OK;
}

/* No eviction's revocation, fetch or diff of this node's on [first, first+n) is in flight
 * (dsmp.h settled): a free of the range may zero its frames. */
static int rel_settled(dsmp_t *p, uint64_t first, uint64_t n)
{
    for (uint64_t pg = first; pg < first + n; pg++)
        if (p->pg[pg].dropping || p->pg[pg].diffs || p->pg[pg].fetching)
            return 0; /* a fetch's PAGE would land a frame */
    return 1;
}

/* The daemon wants page's frame back (see the top). */
static int rel_evict(dsmp_t *p, uint64_t page, dsmp_done_fn done, void *arg)
{
    struct rel_page *g = &p->pg[page];

    if (is_home(p, page) || g->fetching || g->dropping)
        return 0;
    if (g->local == DSM_ACCESS_NONE && g->twin == NULL) {
        done(p, arg);
        return 1;
    }
    return drop_start(p, page, 1, done, arg) == DSM_OK; /* else another page may do */
}

/* ---- homes ---- */

/* Home: a DIFF's records, each a page's diff, are checked, all of them, then applied to
 * the master copies (R1), and one DIFF_ACK names every page. A record whose page is no
 * longer allocated crossed the page's free (an eviction's, or writes freed unreleased):
 * nothing to apply it to, the writer only needs its ack. */
static dsm_status_t diff_arrived(dsmp_t *p, int src, const dsmw_msg_t *m)
{
    const uint8_t *d = m->data.data, *diff;
    size_t len = m->data.len, o, dl, n = 0;
    uint64_t page;

    for (o = 0; o < len; n++)
        if (dsmp_rec_next(d, len, &o, p->svc.npages, &page, &diff, &dl) != 0 ||
            dsmp_diff_check(diff, dl, p->svc.page_size) != DSM_OK ||
            (!is_home(p, page) && p->svc.home(p->svc.ctx, page) != DSMP_NO_HOME)) {
            DSM_ERR("release: malformed DIFF from node %d (record %zu at byte %zu)", src, n, o);
            return DSM_EPROTO;
        }
    if (n == 0) { /* (n <= len / DSMP_REC_HDR: the ack fits ACK_BYTES) */
        DSM_ERR("release: an empty DIFF from node %d", src);
        return DSM_EPROTO;
    }
    for (o = 0, n = 0; o < len; n++) {
        dsmp_rec_next(d, len, &o, p->svc.npages, &page, &diff, &dl);
        dsm_put_le(p->ackbuf + n * 8, page, 8);
        if (!is_home(p, page))
            continue;
        if (p->svc.applying)
            p->svc.applying(p->svc.ctx, page, src, diff, dl);
        dsmp_diff_apply(p->svc.frame(p->svc.ctx, page), NULL, p->svc.page_size, diff, dl); /* checked */
    }
    send_page_msg(p, src, DSMW__TYPE__DIFF_ACK, dsm_get_le(p->ackbuf, 8), (int)m->origin, p->ackbuf, n * 8,
                  DSMP_NO_FRAME);
    return DSM_OK;
}

/* Writer: the home applied the diffs of the pages a DIFF_ACK names. A free waits for its
 * node's diffs (rel_settled), so their home is still the sender. */
static dsm_status_t diff_acked(dsmp_t *p, int src, const dsmw_msg_t *m)
{
    size_t n = m->data.len / 8, k;

    if (n == 0 || m->data.len % 8 != 0 || n > p->diffs_out)
        goto bad;
    for (k = 0; k < n; k++) {
        uint64_t page = dsm_get_le(m->data.data + k * 8, 8);

        if (page >= p->svc.npages || p->svc.home(p->svc.ctx, page) != src || p->pg[page].diffs == 0)
            break; /* (a page named twice finds its count spent) */
        p->pg[page].diffs--;
        p->diffs_out--;
    }
    if (k < n) { /* refused whole: give back what the entries before counted */
        while (k-- > 0) {
            p->pg[dsm_get_le(m->data.data + k * 8, 8)].diffs++;
            p->diffs_out++;
        }
        goto bad;
    }
    for (k = 0; k < n; k++) { /* a dropped page's last diff home: its door may open again */
        uint64_t page = dsm_get_le(m->data.data + k * 8, 8);

        if (p->pg[page].diffs == 0 && p->pg[page].local == DSM_ACCESS_NONE)
            dsmp_sync(&p->svc, page);
    }
    flush_check(p);
    return DSM_OK;
bad:
    DSM_ERR("release: a DIFF_ACK from node %d names a page with no diff out to it", src);
    return DSM_EPROTO;
}

/* Home: every page of batch b may go: one PAGE carries them (the asked one as its frame). */
static void batch_send(dsmp_t *p, struct dsmp_batch *b)
{
    dsmw_msg_t m;

    dsmp_batch_unlink(&p->batches, b);
    if (!b->dead) {
        dsmw_init(&m, DSMW__TYPE__PAGE);
        m.page = b->first;
        m.node = (uint32_t)p->svc.self;
        m.origin = (uint32_t)b->origin;
        dsmp_ahead_pack(&p->svc, &m, b->first, b->served, p->ahead_cap, p->pagebuf);
        p->svc.send(p->svc.ctx, b->node, &m, b->first);
    }
    free(b);
}

static void batch_revoked(dsmp_t *p, void *arg)
{
    struct dsmp_batch *b = arg;

    if (--b->pending == 0)
        batch_send(p, b);
}

/* Home: page is about to be sent to another node. The first fetch of a page the home writes
 * unnoticed (R6) write-protects it here first and lists it, so no home write escapes the
 * notices; b waits for that. */
static dsm_status_t batch_share(dsmp_t *p, struct dsmp_batch *b, uint64_t page)
{
    struct rel_page *g = &p->pg[page];

    if (g->shared)
        return DSM_OK;
    g->shared = 1;
    if (g->local != DSM_ACCESS_WRITE)
        return DSM_OK;
    if (written_add(p, page) != DSM_OK)
        return DSM_ENOMEM;
    g->local = DSM_ACCESS_READ;
    b->pending++;
    p->svc.revoke(p->svc.ctx, page, DSM_ACCESS_READ, batch_revoked, b);
    return DSM_OK;
}

/* Home: send the master copy of the asked page and of the `count` pages after it that are
 * homed here, in one PAGE (see the top). */
static dsm_status_t serve_get(dsmp_t *p, int src, const dsmw_msg_t *m)
{
    struct dsmp_batch *b;
    dsm_status_t st;
    uint64_t end;

    if (m->count > p->ahead_cap || src == p->svc.self) {
        DSM_ERR("release: node %d asked for %llu pages after page %llu (at most %u)", src,
                (unsigned long long)m->count, (unsigned long long)m->page, p->ahead_cap);
        return DSM_EPROTO;
    }
    b = dsmp_batch_new(&p->batches, m->page, src, (int)m->origin);
    if (b == NULL)
        return DSM_ENOMEM;
    st = batch_share(p, b, m->page);
    end = p->svc.alloc_end(p->svc.ctx, m->page);
    for (uint32_t i = 1; st == DSM_OK && i <= m->count && m->page + i < end; i++)
        if (is_home(p, m->page + i)) {
            b->served |= 1u << (i - 1);
            st = batch_share(p, b, m->page + i);
        }
    if (st != DSM_OK)
        dsmp_fail(&p->svc, st, "release: out of memory serving page %llu", (unsigned long long)m->page);
    batch_revoked(p, b); /* the hold of serve_get */
    return DSM_OK;
}

/* ---- direct reads (dsmp.h direct_idle; the daemon's direct.c) ---- */

/* Requester: a rank may read page straight from its home: no copy here, nothing under way,
 * and none of this node's writes to it unacknowledged (the rank's read does not queue
 * behind this node's DIFFs on the link as a PAGE_GET does: R8). */
static int rel_direct_idle(dsmp_t *p, uint64_t page)
{
    const struct rel_page *g = &p->pg[page];

    return !is_home(p, page) && g->local == DSM_ACCESS_NONE && !g->fetching && !g->dropping && g->twin == NULL &&
           g->diffs == 0;
}

/* Home: a rank of node reads page directly: node's PAGE_GET of page alone. */
static dsm_status_t rel_direct_read(dsmp_t *p, int node, uint64_t page, int origin)
{
    dsmw_msg_t m;

    if (!is_home(p, page))
        return DSM_EPROTO;
    dsmw_init(&m, DSMW__TYPE__PAGE_GET);
    m.page = page;
    m.node = (uint32_t)node;
    m.origin = (uint32_t)origin;
    return serve_get(p, node, &m);
}

/* Requester: a rank's direct read of page is in its frame (dsmp.h direct_landed). An
 * acquire that named the page meanwhile (drop_page) queued its drop behind the read: the
 * copy may predate the notice, so it stays NONE here and that drop takes the rank's back. */
static dsm_status_t rel_direct_landed(dsmp_t *p, uint64_t page, int origin)
{
    struct rel_page *g = &p->pg[page];

    (void)origin;
    if (is_home(p, page) || g->local != DSM_ACCESS_NONE || g->fetching || g->twin != NULL)
        return DSM_EPROTO;
    if (g->dropping)
        return DSM_OK;
    g->local = DSM_ACCESS_READ;
    copy_came(g);
    p->svc.set_access(p->svc.ctx, page, DSM_ACCESS_READ);
    return DSM_OK;
}

static dsm_status_t rel_message(dsmp_t *p, int src, const dsmw_msg_t *m, int framed)
{
    switch (m->type) {
    case DSMW__TYPE__PAGE_GET:
        if (!is_home(p, m->page))
            break;
        return serve_get(p, src, m);
    case DSMW__TYPE__PAGE:
        if (!framed || p->svc.home(p->svc.ctx, m->page) != src)
            break;
        return page_arrived(p, m);
    case DSMW__TYPE__DIFF:
        return diff_arrived(p, src, m);
    case DSMW__TYPE__DIFF_ACK:
        return diff_acked(p, src, m);
    default:
        break;
    }
    DSM_ERR("release: unexpected %s for page %llu from node %d", dsmw_type_name(m->type),
            (unsigned long long)m->page, src);
    return DSM_EPROTO;
}

/* ---- acquire ---- */

/* Fetch again the listed pages whose drops are done and that nothing has brought back
 * since (see the top): each run of consecutive listed pages with one home in as few
 * PAGE_GETs as read-ahead allows. Pages still being dropped (another acquire's) stay
 * listed for that acquire's end. */
static void fetch_again(dsmp_t *p)
{
    size_t i = 0, keep = 0;

    if (p->nagain == 0)
        return;
    qsort(p->again, p->nagain, sizeof(*p->again), cmp_u64);
    while (i < p->nagain) {
        uint64_t page = p->again[i];
        struct rel_page *g = &p->pg[page];
        int home = p->svc.home(p->svc.ctx, page);
        size_t run = 1;

        if (g->dropping) {
            p->again[keep++] = page;
            i++;
            continue;
        }
        while (i + run < p->nagain && p->again[i + run] == page + run)
            run++;
        if (g->again != AGAIN_DROPPED || home < 0 || home == p->svc.self || !ahead_absent(p, page)) {
            i++;
            continue;
        }
        fetch(p, page, p->svc.any_rank, run > UINT32_MAX ? UINT32_MAX : (uint32_t)run);
        p->svc.count(p->svc.ctx, p->svc.any_rank, DSMP_PAGES_FETCHED_AGAIN, 1u + g->extras);
        i += 1u + g->extras;
    }
    p->nagain = keep;
}

static void acquire_done(dsmp_t *p, struct rel_acquire *a)
{
    if (--a->pending > 0)
        return;
    dsmp_vc_max(p->vc, a->vc, p->nn);
    dsmp_pending_del(&p->acquires, &a->link);
    fetch_again(p); /* asked before the rank goes on: its first faults find them coming */
    a->done(p, a->arg);
    free(a);
}

/* A notice's drop of a page is done: one step of its acquire. */
static void acquire_dropped(dsmp_t *p, void *arg)
{
    acquire_done(p, arg);
}

struct drop_ctx {
    dsmp_t *p;
    struct rel_acquire *a;
};

/* A notice names the page: drop our copy unless we are its home (R1, R5). */
static void drop_page(void *arg, uint64_t page)
{
    struct drop_ctx *c = arg;
    dsmp_t *p = c->p;
    struct rel_page *g = &p->pg[page];

    if (is_home(p, page))
        return;
    if (g->fetching) {
        g->refetch = 1;
        return;
    }
    /* a rank's direct read may land a copy older than the notice: drop it too, once in */
    if (g->local == DSM_ACCESS_NONE && g->dropping == 0 && (p->svc.claimed == NULL || !p->svc.claimed(p->svc.ctx, page)))
        return;
    /* wanted back after its last drop and still mapped: fetched again at the acquire's end */
    if (p->fetch_again && g->again == AGAIN_WANTED && g->local != DSM_ACCESS_NONE &&
        p->svc.mapped(p->svc.ctx, page)) {
        if (dsmp_pages_reserve(&p->again, p->nagain, &p->capagain) != DSM_OK) {
            dsmp_fail(&p->svc, DSM_ENOMEM, "release: out of memory listing page %llu", (unsigned long long)page);
            return;
        }
        p->again[p->nagain++] = page;
    }
    g->again = AGAIN_DROPPED;
    /* a drop already in flight (another acquire of this node) has not taken every rank's
     * copy yet: this acquire must wait for it too (R7), so queue behind it */
    c->a->pending++;
    if (drop_start(p, page, 0, acquire_dropped, c->a) != DSM_OK) {
        c->a->pending--;
        dsmp_fail(&p->svc, DSM_ENOMEM, "release: out of memory dropping page %llu", (unsigned long long)page);
    }
}

struct walk_ctx {
    dsmp_t *p;
    struct rel_acquire *a;
};

/* Self-invalidation: another node wrote page, which is shared-written from now on. */
static void sw_mark(void *arg, uint64_t page)
{
    dsmp_t *p = arg;

    if (is_home(p, page) || (p->sw[page] & SW_WRITTEN))
        return;
    if (!(p->sw[page] & SW_LISTED)) {
        if (dsmp_pages_reserve(&p->swlist, p->nsw, &p->capsw) != DSM_OK) {
            dsmp_fail(&p->svc, DSM_ENOMEM, "release: out of memory classing page %llu", (unsigned long long)page);
            return;
        }
        p->swlist[p->nsw++] = page;
    }
    p->sw[page] = SW_LISTED | SW_WRITTEN;
}

static dsm_status_t apply_notice(void *arg, int node, uint32_t first, uint32_t last, const uint8_t *runs,
                                 uint32_t rlen)
{
    struct walk_ctx *w = arg;
    dsmp_t *p = w->p;
    struct drop_ctx dc = { p, w->a };
    dsm_status_t st;

    if ((st = dsmp_notices_add_range(&p->store, node, first, last, runs, rlen)) != DSM_OK)
        return st;
    if (node == p->svc.self || last <= p->vc[node])
        return DSM_OK;
    /* intervals new to this node: max(first, vc + 1)..last, all with these runs */
    p->svc.count(p->svc.ctx, p->svc.any_rank, DSMP_WRITE_NOTICES,
                 last - (first > p->vc[node] ? first - 1 : p->vc[node]));
    if (p->sw != NULL) /* self-invalidation: the notice only classes its pages */
        return dsmp_runs_each(runs, rlen, p->svc.npages, sw_mark, p);
    return dsmp_runs_each(runs, rlen, p->svc.npages, drop_page, &dc);
}

/* Self-invalidation at an acquire: drop every copy of a page another node has written. */
static void self_invalidate(dsmp_t *p, struct rel_acquire *a)
{
    struct drop_ctx dc = { p, a };

    for (size_t i = 0; i < p->nsw; i++)
        if (p->sw[p->swlist[i]] & SW_WRITTEN)
            drop_page(&dc, p->swlist[i]);
}

/* Copy a message's vclock into vc (zeroes past its end). */
static void vc_from(dsmp_t *p, const dsmw_msg_t *m, uint32_t *vc)
{
    for (int k = 0; k < p->nn; k++)
        vc[k] = k < (int)m->n_vclock ? (uint32_t)m->vclock[k] : 0;
}

static struct rel_lock **lock_slot(struct rel_lock **tab, uint32_t id)
{
    struct rel_lock **pp = &tab[id % LOCK_BUCKETS];

    while (*pp && (*pp)->id != id)
        pp = &(*pp)->next;
    return pp;
}

static struct rel_lock *lock_get(dsmp_t *p, struct rel_lock **tab, uint32_t id)
{
    struct rel_lock **pp = lock_slot(tab, id);

    if (*pp == NULL) {
        *pp = calloc(1, sizeof(**pp) + (size_t)p->nn * sizeof(uint32_t));
        if (*pp != NULL)
            (*pp)->id = id;
    }
    return *pp;
}

static void rel_acquired(dsmp_t *p, const dsmw_msg_t *m, dsmp_done_fn done, void *arg)
{
    struct rel_acquire *a = calloc(1, sizeof(*a) + (size_t)p->nn * sizeof(uint32_t));
    struct walk_ctx w = { p, a };
    struct rel_lock *l;

    if (a == NULL) {
        dsmp_fail(&p->svc, DSM_ENOMEM, "release: out of memory applying an acquire");
        done(p, arg);
        return;
    }
    a->done = done;
    a->arg = arg;
    a->pending = 1;
    dsmp_pending_add(&p->acquires, &a->link);
    vc_from(p, m, a->vc);
    if (m->type == DSMW__TYPE__LOCK_GRANT) {
        l = lock_get(p, p->held, m->lock);
        if (l != NULL)
            memcpy(l->vc, a->vc, (size_t)p->nn * sizeof(uint32_t));
    } else {
        memcpy(p->bar_vc, a->vc, (size_t)p->nn * sizeof(uint32_t));
    }
    if (dsmp_notices_walk(m->data.data, m->data.len, p->nn, apply_notice, &w) != DSM_OK)
        dsmp_fail(&p->svc, DSM_EPROTO, "release: malformed write notices with a %s", dsmw_type_name(m->type));
    else if (p->sw != NULL)
        self_invalidate(p, a);
    acquire_done(p, a);
}

/* ---- what synchronisation messages carry ---- */

static void fill(dsmp_t *p, dsmw_msg_t *out, const uint32_t *from, const uint32_t *to)
{
    size_t len = 0;
    dsm_status_t st = dsmp_notices_encode(&p->store, from, to, p->scratch, SCRATCH_BYTES, &len);

    if (st != DSM_OK) {
        /* too many to list one by one (or not all known here): merge them per node, which
         * makes the receiver drop a superset of the pages */
        if (st == DSM_ESTATE)
            DSM_WARN("release: write notices missing from the store; sending a conservative summary");
        st = dsmp_notices_encode_merged(&p->store, from, to, p->svc.npages, p->scratch, SCRATCH_BYTES, &len);
        if (st != DSM_OK)
            dsmp_fail(&p->svc, st, "release: cannot encode write notices even merged (%s)", dsm_status_str(st));
    }
    for (int k = 0; k < p->nn; k++)
        p->scratch_vc[k] = to[k];
    out->vclock = p->scratch_vc;
    out->n_vclock = (size_t)p->nn;
    out->data.data = p->scratch;
    out->data.len = st == DSM_OK ? len : 0;
}

/* A release sends what its receiver may lack: for an unlock, what is newer than the
 * lock's clock at our grant; for a barrier, what is newer than the last barrier. */
static void rel_fill_release(dsmp_t *p, dsmw_msg_t *out)
{
    const uint32_t *from = p->bar_vc;

    if (out->type == DSMW__TYPE__UNLOCK) {
        struct rel_lock *l = *lock_slot(p->held, out->lock);

        from = l ? l->vc : p->zero_vc;
    }
    fill(p, out, from, p->vc);
}

static void rel_fill_acquire(dsmp_t *p, dsmw_msg_t *out)
{
    for (int k = 0; k < p->nn; k++)
        p->scratch_vc[k] = p->vc[k];
    out->vclock = p->scratch_vc;
    out->n_vclock = (size_t)p->nn;
}

static dsm_status_t keep_notice(void *arg, int node, uint32_t first, uint32_t last, const uint8_t *runs,
                                uint32_t rlen)
{
    dsmp_t *p = arg;

    return dsmp_notices_add_range(&p->store, node, first, last, runs, rlen);
}

/* Lock manager: a release's notices and clock join the lock (R4). */
static void rel_lock_released(dsmp_t *p, uint32_t lock, const dsmw_msg_t *unlock)
{
    struct rel_lock *l = lock_get(p, p->mgr, lock);
    uint32_t *vc = calloc((size_t)p->nn, sizeof(uint32_t));

    if (l == NULL || vc == NULL) {
        dsmp_fail(&p->svc, DSM_ENOMEM, "release: out of memory at the manager of lock %u", lock);
        free(vc);
        return;
    }
    if (dsmp_notices_walk(unlock->data.data, unlock->data.len, p->nn, keep_notice, p) != DSM_OK)
        dsmp_fail(&p->svc, DSM_EPROTO, "release: malformed write notices with an unlock of lock %u", lock);
    vc_from(p, unlock, vc);
    dsmp_vc_max(l->vc, vc, p->nn);
    free(vc);
}

static void rel_fill_grant(dsmp_t *p, uint32_t lock, const dsmw_msg_t *req, dsmw_msg_t *grant)
{
    struct rel_lock *l = lock_get(p, p->mgr, lock);
    uint32_t *from = calloc((size_t)p->nn, sizeof(uint32_t));

    if (l == NULL || from == NULL) {
        dsmp_fail(&p->svc, DSM_ENOMEM, "release: out of memory granting lock %u", lock);
        free(from);
        return;
    }
    vc_from(p, req, from);
    for (int k = 0; k < p->nn; k++)
        if (from[k] > l->vc[k])
            from[k] = l->vc[k];
    fill(p, grant, from, l->vc);
    free(from);
}

static void rel_barrier_arrived(dsmp_t *p, const dsmw_msg_t *arrive)
{
    uint32_t *vc = calloc((size_t)p->nn, sizeof(uint32_t));

    if (vc == NULL) {
        dsmp_fail(&p->svc, DSM_ENOMEM, "release: out of memory at a barrier arrival");
        return;
    }
    if (dsmp_notices_walk(arrive->data.data, arrive->data.len, p->nn, keep_notice, p) != DSM_OK)
        dsmp_fail(&p->svc, DSM_EPROTO, "release: malformed write notices with a barrier arrival");
    vc_from(p, arrive, vc);
    dsmp_vc_max(p->bar_acc, vc, p->nn);
    free(vc);
}

static void rel_fill_barrier(dsmp_t *p, dsmw_msg_t *release)
{
    fill(p, release, p->bar_vc, p->bar_acc);
}

/* ---- life ---- */

static void rel_reset(dsmp_t *p, uint64_t first, uint64_t n)
{
    /* pages asked with a page of the range (outside it) will get no answer: fetch again
     * those a rank waits for */
    for (uint64_t pg = first; pg < first + n; pg++)
        for (uint32_t i = 1; p->pg[pg].fetching && i <= p->pg[pg].extras; i++) {
            struct rel_page *g = &p->pg[pg + i];

            if (pg + i < first + n || !g->fetching || g->lead_off != i)
                continue;
            g->lead_off = 0;
            g->fetching = 0;
            g->refetch = 0;
            if (g->want)
                fetch(p, pg + i, g->origin, 1);
        }
    dsmp_batch_reset(p->batches, first, n, p->ahead_cap);
    /* a freed page's writes are void: a notice naming it would only drop copies */
    p->nwritten = dsmp_pages_without(p->written, p->nwritten, first, n);
    p->nagain = dsmp_pages_without(p->again, p->nagain, first, n);
    for (uint64_t pg = first; pg < first + n; pg++) {
        struct rel_page *g = &p->pg[pg];
        uint16_t diffs = g->diffs; /* their acks still come (rel_settled) */

        free(g->twin);
        memset(g, 0, sizeof(*g));
        g->diffs = diffs;
        if (p->sw != NULL)
            p->sw[pg] &= (uint8_t)~SW_WRITTEN;
        if (is_home(p, pg)) {
            g->local = DSM_ACCESS_READ;
            p->svc.set_access(p->svc.ctx, pg, DSM_ACCESS_READ);
        }
    }
}

static void rel_destroy(dsmp_t *p)
{
    if (p == NULL)
        return;
    for (uint64_t pg = 0; p->pg && pg < p->svc.npages; pg++)
        free(p->pg[pg].twin);
    for (int b = 0; b < LOCK_BUCKETS; b++) {
        struct rel_lock *tabs[2] = { p->mgr[b], p->held[b] };

        for (int t = 0; t < 2; t++)
            while (tabs[t]) {
                struct rel_lock *next = tabs[t]->next;

                free(tabs[t]);
                tabs[t] = next;
            }
    }
    while (p->fl_waiters || p->next_waiters) {
        struct rel_waiter **l = p->fl_waiters ? &p->fl_waiters : &p->next_waiters, *w = *l;

        *l = w->next;
        free(w);
    }
    dsmp_batch_free_all(&p->batches);
    dsmp_pending_free_all(&p->drops);
    dsmp_pending_free_all(&p->acquires);
    for (int n = 0; p->out && n < p->nn; n++)
        free(p->out[n].buf);
    free(p->out);
    free(p->ackbuf);
    free(p->pagebuf);
    dsmp_notices_fini(&p->store);
    free(p->pg);
    free(p->written);
    free(p->vc);
    free(p->bar_vc);
    free(p->bar_acc);
    free(p->zero_vc);
    free(p->scratch);
    free(p->scratch_vc);
    free(p->diffbuf);
    free(p->runsbuf);
    free(p->sw);
    free(p->swlist);
    free(p->again);
    free(p);
}

static dsm_status_t rel_create(const struct dsmp_services *svc, dsmp_t **out)
{
    dsmp_t *p = calloc(1, sizeof(*p));
    const char *inval = getenv("DSM_RELEASE_INVALIDATE");
    const char *again = getenv("DSM_RELEASE_FETCH_AGAIN");
    int self_inval;

    if (p == NULL)
        return DSM_ENOMEM;
    p->svc = *svc;
    /* a limit of the diff encoding and of one message, not of memory: the largest diff of a
     * page (every other byte changed) must fit one DIFF */
    if (svc->page_size > DSMP_DIFF_MAX_PAGE || DSMP_REC_HDR + dsmp_diff_max(svc->page_size) > BATCH_BYTES) {
        DSM_ERR("release: pages of %zu bytes; its diffs describe pages of at most %zu bytes", svc->page_size,
                (size_t)RELEASE_MAX_PAGE);
        free(p);
        return DSM_ECONFIG;
    }
    if (inval != NULL && strcmp(inval, "notices") != 0 && strcmp(inval, "self") != 0) {
        DSM_ERR("release: DSM_RELEASE_INVALIDATE=%s; use notices (the default) or self", inval);
        free(p);
        return DSM_ECONFIG;
    }
    if (again != NULL && strcmp(again, "0") != 0 && strcmp(again, "1") != 0) {
        DSM_ERR("release: DSM_RELEASE_FETCH_AGAIN=%s; use 1 (the default) or 0", again);
        free(p);
        return DSM_ECONFIG;
    }
    p->nn = svc->nnodes;
    p->fetch_again = (again == NULL || again[0] == '1') && !svc->partial && svc->mapped != NULL;
    p->pg = calloc(svc->npages, sizeof(*p->pg));
    self_inval = inval != NULL && strcmp(inval, "self") == 0;
    p->sw = self_inval ? calloc(svc->npages, 1) : NULL;
    if (self_inval)
        DSM_INFO("release: acquires self-invalidate (DSM_RELEASE_INVALIDATE=self), a measurement mode");
    p->vc = calloc((size_t)p->nn, sizeof(uint32_t));
    p->bar_vc = calloc((size_t)p->nn, sizeof(uint32_t));
    p->bar_acc = calloc((size_t)p->nn, sizeof(uint32_t));
    p->zero_vc = calloc((size_t)p->nn, sizeof(uint32_t));
    p->scratch = malloc(SCRATCH_BYTES);
    p->scratch_vc = calloc((size_t)p->nn, sizeof(uint64_t));
    p->diffbuf = malloc(dsmp_diff_max(svc->page_size));
    p->out = calloc((size_t)p->nn, sizeof(*p->out));
    p->outcap = BATCH_BYTES;
    p->ackbuf = malloc(ACK_BYTES);
    p->ahead_cap = dsmp_ahead_cap(svc->page_size);
    p->pagebuf = malloc(p->ahead_cap * svc->page_size + 1);
    if (p->pagebuf == NULL || p->pg == NULL || p->vc == NULL || p->bar_vc == NULL || p->bar_acc == NULL ||
        p->zero_vc == NULL || p->scratch == NULL || p->scratch_vc == NULL || p->diffbuf == NULL ||
        p->out == NULL || p->ackbuf == NULL || (self_inval && p->sw == NULL) ||
        dsmp_notices_init(&p->store, p->nn) != DSM_OK) {
        DSM_ERR("release: cannot set up for %llu pages", (unsigned long long)svc->npages);
        rel_destroy(p);
        return DSM_ENOMEM;
    }
    *out = p;
    return DSM_OK;
}

/* Requester's node: the home performed an atomic on page (see the header). */
static void rel_atomic_done(dsmp_t *p, uint64_t page, int origin, int home, uint64_t stamp, size_t off, size_t len,
                            const void *val, dsmp_done_fn done, void *arg)
{
    struct rel_page *g = &p->pg[page];

    (void)origin;
    (void)home;
    (void)stamp;
    if (val != NULL && !is_home(p, page)) {
        uint8_t *f = (uint8_t *)p->svc.frame(p->svc.ctx, page) + off;

        /* a twinned page being evicted is at NONE but its diff is still to be made from the
         * frame: the word goes in both, or the diff would carry the old word back */
        if ((g->local != DSM_ACCESS_NONE || g->twin != NULL) && !g->fetching) {
            /* ranks may be reading the word: one aligned store, never torn */
            if (len == 4)
                __atomic_store_n((uint32_t *)f, *(const uint32_t *)val, __ATOMIC_SEQ_CST);
            else
                __atomic_store_n((uint64_t *)f, *(const uint64_t *)val, __ATOMIC_SEQ_CST);
        }
        if (g->twin != NULL)
            memcpy(g->twin + off, val, len);
    }
    if (val != NULL && (!is_home(p, page) || g->shared) && written_add(p, page) != DSM_OK)
        dsmp_fail(&p->svc, DSM_ENOMEM, "release: out of memory listing page %llu for a write notice",
                  (unsigned long long)page);
    done(p, arg);
}

/* Requester's node, before its ATOMIC_REQ: the diffs queued for the home go first, so the
 * home applies this node's writes before the atomic, as it did when they left at once. */
static void rel_atomic_requesting(dsmp_t *p, uint64_t page, int home)
{
    (void)page;
    if (home >= 0 && home < p->nn)
        diffs_send(p, home, p->svc.any_rank);
}

static const struct dsmp_atomic_ops rel_atomic = {
    .requesting = rel_atomic_requesting,
    .done = rel_atomic_done,
};

static const struct dsmp_sync_ops rel_sync = {
    .release = rel_release,
    .fill_release = rel_fill_release,
    .fill_acquire = rel_fill_acquire,
    .lock_released = rel_lock_released,
    .fill_grant = rel_fill_grant,
    .barrier_arrived = rel_barrier_arrived,
    .fill_barrier = rel_fill_barrier,
    .acquired = rel_acquired,
};

const struct dsmp_ops dsmp_release_ops = {
    .name = "release",
    .model = DSM_MODEL_RELEASE,
    .reads_ahead = 1,
    .writes_ahead = 1,
    .create = rel_create,
    .destroy = rel_destroy,
    .fault = rel_fault,
    .message = rel_message,
    .reset = rel_reset,
    .evict = rel_evict,
    .settled = rel_settled,
    .direct_idle = rel_direct_idle,
    .direct_read = rel_direct_read,
    .direct_landed = rel_direct_landed,
    .sync = &rel_sync,
    .atomic = &rel_atomic,
};

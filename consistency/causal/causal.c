/*
 * causal.c - causal consistency: every node keeps a replica, writes are local, and each
 * node's writes travel to every other node as updates (diffs against twins) tagged with
 * vector clocks and applied in causal order. A replica is partial by default: a node holds
 * its home pages and fetches the others from their homes on a fault; DSM_CAUSAL_REPLICAS=
 * full gives every node every page instead. (Past 800 lines: one state machine, whose
 * transitions table below names the functions that follow.)
 *
 * A node's open interval collects the pages its ranks write (a twin at the first write of
 * each). The interval ends when a timer expires (DSM_CAUSAL_DELAY_US, default 2 ms: writes
 * reach everyone within a bounded time without any synchronisation), at a release (unlock,
 * barrier, finalize), or when it holds PAGES_PER_UPDATE pages. Ending it write-protects its
 * pages, turns them into one update (vc[self]+1 and the diffs) and sends it to every other
 * node, in UPDATE messages of at most PART_BYTES each (`seq` part of `count`); a receiver
 * assembles the parts (they arrive in order) and applies the update only when it is whole.
 *
 * A node applies an UPDATE from node s with clock u once u[s] == vc[s] + 1 and u[k] <=
 * vc[k] for every other k: everything the writer had seen, it has seen. Since a node's
 * clock advances with every update it applies, every later write of its ranks depends on
 * everything they could have read: reads carry their writers' dependencies. An update is
 * applied atomically for the local ranks: every page it touches is taken to NONE first,
 * then all are patched (frame, and twin if the page is being written here too), then the
 * ranks may fault back in. Locks and barriers carry clocks; an acquirer waits until it has
 * applied everything its releaser had.
 *
 * Partial replicas (the default; always with a bounded cache or memory nodes, svc.partial).
 * A node holds its home pages and the pages it fetched; a page homed elsewhere starts
 * absent. A fault on an absent page sends PAGE_GET with the node's clock V to the home, which answers once its
 * own clock H covers V (everything the requester had seen is in the home's copy, the
 * requester's own intervals included) with its frame, or its twin while it writes the page
 * itself (its unsent writes must not travel ahead of their interval), and H. Updates
 * keep flowing meanwhile (pausing them could deadlock two nodes fetching from each other):
 * the diffs of a page being fetched are kept and, when the PAGE comes, those the home had
 * not applied (u[src] > H[src]) are applied over it; until V covers H the page stays shut
 * to the ranks (reading a write whose interval is not applied here would let this node's
 * next writes overtake it) and updates that H holds skip it. An eviction drops a clean
 * page (no message: its writes went out with its interval's update); a page written in
 * the open interval is declined and the interval ends early, so the next try finds it
 * clean. A scan's fetch asks for the absent pages after it with the same home too (the
 * daemon's `ahead`); the home sends those of the asked page's allocation first, each in its
 * own PAGE with its clock, refuses the others (NOT_AHEAD: fetched again if a rank waits),
 * and then the asked page, whose grant then opens the run.
 *
 * Home pages nobody else holds (partial, up to 64 nodes). A home records which nodes it
 * served each of its pages (holders; they may have evicted it since). Its writes to a page
 * no other node was served need no diff: an update carries them only to the holders, and
 * the other nodes get the interval's clock alone (update_for). Such a page is private: a
 * write fault opens it for writing with no twin and outside the intervals, and it stays
 * writable, so a stencil's own rows cost no fault per interval. A node that asks for it
 * waits while the home takes it back to READ and until the home's open interval has gone
 * out in an update (open_start; the interval's own timer or release ends it, none is
 * forced): the frame it then gets goes with a clock that counts every write the home made
 * before, as a tracked page's would. Pages homed elsewhere go to every node in every
 * update: only their home knows who holds them.
 *
 * Invariants:
 *   C1  A held page's node access is never below READ except while an update is applied
 *       to it or its cover is pending; without partial, every allocated page is held.
 *   C2  A page with a twin is in the open interval or in the flush under way; frame minus
 *       twin is exactly this node's unsent writes.
 *   C3  Updates from one node are applied in the order they were sent, and after every
 *       update they depend on (the vector clock rule above).
 *   C4  (partial) A home page is always held; a page not held has node access NONE and
 *       no twin, and no update writes its frame.
 *   C5  (partial) A fetched page's frame is the home's copy at H plus exactly the updates
 *       applied here that H lacks; the ranks get it once the node's clock covers H.
 *   C6  (partial) A private page is a home page no other node was served, with no twin,
 *       outside the open interval; it is never served while private, nor while opening.
 *
 * Page states at a node:
 *
 *            W fault: twin              flush: revoke to READ, diff into UPDATE
 *   READ  --------------------> WRITE -----------------------------------------> READ
 *     |  remote UPDATE: revoke to NONE, patch frame (+twin), back to READ/WRITE      ^
 *     +-------------------------------------------------------------------------------+
 *
 *   partial:  absent --fault: PAGE_GET--> fetching --PAGE--> cover --clock covers--> READ
 *               ^                           (diffs kept)    (NONE)                    |
 *               +---------------------- evict (clean): revoke to NONE ----------------+
 *
 *   home, unheld:  READ --W fault--> private (WRITE, no twin) --PAGE_GET--> opening --revoked,
 *                  interval ended--> READ, served: the requester holds it, writes are tracked
 *
 * Transitions and the functions that perform them:
 *   fault                        -> cau_fault (twin, write_ahead; flush first if the
 *                                   interval is full; partial: fetch_start for an absent
 *                                   page)
 *   timer / release / full       -> flush_start -> flush_page_done -> flush_send
 *   UPDATE arrives               -> update_arrived (queue) -> deliver -> apply_start ->
 *                                   apply_page_revoked -> apply_finish (rec_add for a page
 *                                   being fetched) -> gets_check, covers_check
 *   PAGE_GET at the home         -> get_arrived -> (clock covers) serve_get; a private
 *                                   page: open_start -> open_revoked -> (its flush sent)
 *                                   opens_check -> gets_check first
 *   W fault, unheld home page    -> cau_fault (private_ahead)
 *   an update's records per node -> update_for, update_send
 *   PAGE at the requester        -> page_arrived (kept diffs, cover) -> covers_check
 *   evict                        -> cau_evict (clean: revoke to NONE; written: flush_start)
 *   acquire (grant, barrier)     -> cau_acquired -> acquire_check
 *   atomic at the home           -> cau_atomic_prepare (twin, open interval), the daemon's
 *                                   update of the frame, cau_atomic_applied (flush; the
 *                                   stamp is the interval that carries it)
 *   atomic at the requester      -> cau_atomic_done (wait until that interval is applied)
 *   free's request (after a release) -> cau_fill_free (this node's clock)
 *   REGION_FREE                  -> cau_freeing (the merged clock) -> cau_settled waits until
 *                                   this node has applied it -> cau_reset
 *
 * Frees. Every update goes to every node, so one sent before a free could otherwise be
 * applied after the range was reset and allocated again, on the new allocation's pages.
 * A free's request carries the requester's clock after its release, REGION_FREE their
 * merge, and each node resets the range only once it has applied that much: every update
 * with writes to the range is then in (a data-race-free program writes a range only
 * before freeing it), and later ones cannot name it.
 *
 * An atomic is thus a write of the home node's, sent to every node in the home's update,
 * and the requester returns only once its node has applied that update: the requester
 * has "read" the home's write, and everything it does next causally follows it.
 *
 * Backoff (delay_adapt). An interval's end write-protects its pages, so a write set that
 * intervals keep cutting costs a fault per page per cut, and a node whose faults are slow
 * then makes little headway between cuts: radix's scatter (256 streams per rank) took one
 * fault per key. Each flush therefore looks back at the interval it ends. If other nodes'
 * updates wrote its pages too (false sharing: applying them took the pages from its
 * writers), or half its pages or more were written again after a recent flush that no
 * release asked for (AGAIN_FLUSHES, no release since), the next delay doubles, up to
 * DELAY_BACKOFF_MAX times DSM_CAUSAL_DELAY_US; in the second case the interval's bound
 * doubles as well, up to PAGES_PER_UPDATE_MAX. Any other interval halves both back. Writes
 * again after a release are an iteration's, not churn: a stencil keeps 2 ms and 256 pages,
 * whose updates overlap with its sweep. Visibility without synchronisation stays bounded:
 * 64 times the delay at most.
 *
 * Writes ahead (write_ahead), as release's: a write fault of a scanning thread (the daemon's
 * `ahead`, up to DSM_GRANT_AHEAD) twins the held READ pages after it and opens them to the
 * node before its grant, so the grant's run makes them writable with it: one fault per run
 * instead of one per page, each interval's flush having write-protected them. Only as many
 * as the open interval has room for; an unwritten one makes an empty diff, never sent.
 */
#include <stdlib.h>
#include <string.h>

#include "ahead.h"
#include "diff.h"
#include "dsm_le.h"
#include "dsm_log.h"
#include "dsmp.h"
#include "notices.h"

#define DEFAULT_DELAY_US 2000
#define DELAY_BACKOFF_MAX 64                /* the delay grows to at most this many times */
#define AGAIN_FLUSHES 8                     /* "written again": within this many flushes */
#define PART_BYTES (DSMW_MAX_MSG - 1024)  /* an update travels in parts of this size */
#define PAGES_PER_UPDATE DSMP_CAUSAL_INTERVAL_PAGES /* an interval ends when it holds this many */
#define PAGES_PER_UPDATE_MAX DSMP_CAUSAL_INTERVAL_PAGES_MAX /* ... grown to at most this many */
#define REC_HDR DSMP_REC_HDR                /* an update's page record (diff.h) */
#define LOCK_BUCKETS 256
#define NOT_AHEAD DSM_EBUSY                 /* a PAGE's status: asked ahead, not sent */

struct cau_rec;

struct cau_page {
    uint8_t  local;
    uint8_t  written;   /* in the open interval */
    uint8_t  updating;  /* an update is being applied to it */
    uint8_t  want;      /* a fault that waits for the update to finish */
    uint8_t  held;      /* the frame holds the page (always, unless partial: C4) */
    uint8_t  fetching;  /* partial: PAGE_GET out */
    uint8_t  priv;      /* a private home page: writable to the ranks, untracked (C6) */
    uint8_t  opening;   /* a private page asked for: its writes join an interval first */
    uint8_t  extra;     /* partial: being fetched ahead of another page */
    uint16_t flushed;   /* the flush (its number, modulo 2^16) that last took it */
    int32_t  origin;
    uint8_t *twin;
    uint32_t *cover;    /* partial: fetched at this home clock, not yet covered here (C5) */
    struct cau_rec *rec; /* fetching: the diffs of updates applied meanwhile, oldest first */
};

/* An update's diff of a page being fetched, kept for the PAGE (C5). */
struct cau_rec {
    struct cau_rec *next;
    int src;
    uint32_t seq;      /* the update's clock entry of src */
    size_t len;
    uint8_t diff[];
};

/* Home: a PAGE_GET waiting until this node has applied everything the requester had. */
struct cau_get {
    struct cau_get *next;
    uint64_t page;
    uint32_t count;    /* pages after it asked for too (read ahead) */
    int node, origin;
    uint32_t vc[];
};

/* A free whose reset waits until this node has applied the clock vc (cau_freeing). */
struct cau_free {
    struct cau_free *next;
    uint64_t first, n;
    uint32_t vc[];
};

struct cau_update {
    struct cau_update *next;
    int src;
    uint32_t *vc;
    uint8_t *data;
    size_t len;
};

struct cau_waiter {
    struct cau_waiter *next;
    dsmp_done_fn done;
    void *arg;
    uint32_t vc[];     /* acquire: what must have been applied */
};

struct cau_lock {
    struct cau_lock *next;
    uint32_t id;
    uint32_t vc[];
};

struct dsmp {
    struct dsmp_services svc;
    int nn;
    int partial;                   /* svc.partial: pages homed elsewhere may be absent */
    struct cau_page *pg;
    uint64_t *written;
    size_t nwritten, capwritten;
    size_t pages_per_update;       /* the open interval's bound: PAGES_PER_UPDATE or more */
    uint64_t delay_us;             /* DSM_CAUSAL_DELAY_US */
    uint64_t delay_now;            /* the open interval's: delay_us, or more (backoff) */
    size_t crossed;                /* open interval's pages other nodes' updates wrote too */
    size_t again;                  /* its pages a recent flush took since the last release */
    uint16_t flushes;              /* flushes started, modulo 2^16 */
    uint16_t last_release;         /* the number of the last flush a release asked for */
    uint64_t flush_no, flush_done; /* flushes started and sent (opens_check) */
    struct cau_open *opens;        /* home: private pages asked for, waiting for a flush */
    int timer_armed;
    /* flush */
    int flushing;
    int fl_pending;
    int fl_origin;
    uint64_t *fl_pages;
    size_t nfl;
    uint64_t *deferred;            /* pages whose write fault waits for the flush */
    size_t ndeferred, capdeferred;
    struct cau_waiter *fl_waiters, *next_waiters;
    /* delivery */
    uint32_t *vc;
    struct cau_update *queue;      /* received, not yet deliverable */
    struct cau_update *applying;   /* being applied */
    int ap_pending;
    struct cau_waiter *acquires;   /* acquires waiting for the clock */
    /* partial replicas */
    struct cau_get *gets;          /* home: PAGE_GETs waiting for the clock */
    struct cau_free *frees;        /* frees whose reset waits for the clock (cau_freeing) */
    uint64_t *covering;            /* pages with a cover (some entries stale: cover NULL) */
    size_t ncovering, capcovering;
    /* synchronisation */
    struct cau_lock *mgr[LOCK_BUCKETS];
    uint32_t *bar_acc;
    uint64_t *scratch_vc;
    uint8_t *buf;                  /* an update being built */
    size_t bufcap;
    uint64_t *holders;             /* partial, nn <= 64: per home page, the nodes served it */
    uint8_t *cut;                  /* one node's share of an update (update_for) */
    size_t cutcap;
    struct cau_asm { uint8_t *data; size_t len, cap; uint64_t parts, count; } *asm_; /* per source */
    uint8_t *diffbuf;
};

static void flush_start(dsmp_t *p);
static void deliver(dsmp_t *p);
static void fetch_start(dsmp_t *p, uint64_t page, uint32_t ahead);
static void opens_check(dsmp_t *p);
static void fill_vc(dsmp_t *p, dsmw_msg_t *out, const uint32_t *vc);

/* ---- local writes ---- */

/* A home page no other node was served: no node needs its diff (update_for). */
static int unheld(const dsmp_t *p, uint64_t page)
{
    return p->holders != NULL && p->holders[page] == 0 && p->svc.home(p->svc.ctx, page) == p->svc.self;
}

/* A write may make page private (C6): unheld, held here, nothing under way on it. */
static int private_ok(const dsmp_t *p, uint64_t page)
{
    const struct cau_page *g = &p->pg[page];

    return unheld(p, page) && g->held && g->twin == NULL && !g->written && !g->opening && !g->updating &&
           !g->fetching && g->cover == NULL;
}

/* A private write fault of a scanning thread opens the private pages after it too, as
 * write_ahead does, without twins and without the interval's bound. */
static void private_ahead(dsmp_t *p, uint64_t page, uint32_t ahead)
{
    uint64_t end = p->svc.alloc_end(p->svc.ctx, page);

    for (uint64_t q = page + 1; q < page + ahead && q < end && q < p->svc.npages; q++) {
        struct cau_page *g = &p->pg[q];

        if (g->local != DSM_ACCESS_READ || g->want || !private_ok(p, q))
            break;
        g->priv = 1;
        g->local = DSM_ACCESS_WRITE;
        p->svc.set_access(p->svc.ctx, q, DSM_ACCESS_WRITE);
    }
}

static dsm_status_t written_add(dsmp_t *p, uint64_t page)
{
    if (dsmp_pages_reserve(&p->written, p->nwritten, &p->capwritten) != DSM_OK)
        return DSM_ENOMEM;
    p->written[p->nwritten++] = page;
    p->pg[page].written = 1;
    {
        uint16_t age = (uint16_t)(p->flushes - p->pg[page].flushed);

        if (age < AGAIN_FLUSHES && age < (uint16_t)(p->flushes - p->last_release))
            p->again++; /* a flush no release asked for write-protected it for nothing */
    }
    if (!p->timer_armed) {
        p->timer_armed = 1;
        p->svc.timer(p->svc.ctx, p->delay_now);
    }
    return DSM_OK;
}

/* The page joins the open interval: its twin (kept from a flush still under way, or taken
 * now) and its place in the written list. DSM_ENOMEM: neither. */
static dsm_status_t start_write(dsmp_t *p, uint64_t page)
{
    struct cau_page *g = &p->pg[page];

    if (g->twin == NULL) {
        g->twin = malloc(p->svc.page_size);
        if (g->twin == NULL)
            return DSM_ENOMEM;
        memcpy(g->twin, p->svc.frame(p->svc.ctx, page), p->svc.page_size);
    }
    g->priv = 0; /* an atomic at the home: tracked from here on */
    return written_add(p, page);
}

/* Grant `access`; a write joins the open interval (twin at its first write). */
static void grant_local(dsmp_t *p, uint64_t page, int access)
{
    struct cau_page *g = &p->pg[page];

    if (access == DSM_ACCESS_WRITE && !g->written && start_write(p, page) != DSM_OK) {
        DSM_ERR("causal: out of memory for a twin of page %llu", (unsigned long long)page);
        access = DSM_ACCESS_READ;
    }
    g->local = (uint8_t)access;
    p->svc.grant(p->svc.ctx, page, access);
}

/*
 * Writes ahead, as release's: a write fault of a scanning thread (the daemon's `ahead`
 * hint) makes up to ahead - 1 pages after it writable too, before its grant, so that the
 * daemon's grant run opens them all: held pages at READ with nothing under way, in the same
 * allocation, no more than the open interval has room for beside the faulting page. A
 * guess: a page so twinned and not written makes an empty diff, which no update carries.
 */
static void write_ahead(dsmp_t *p, uint64_t page, uint32_t ahead)
{
    uint64_t end = p->svc.alloc_end(p->svc.ctx, page);
    size_t room = p->pages_per_update - (p->pg[page].written ? 0 : 1);

    for (uint64_t q = page + 1; q < page + ahead && q < end && q < p->svc.npages && p->nwritten < room; q++) {
        struct cau_page *g = &p->pg[q];

        if (!g->held || g->local != DSM_ACCESS_READ || g->written || g->updating || g->want || g->fetching ||
            g->cover != NULL || start_write(p, q) != DSM_OK)
            break;
        g->local = DSM_ACCESS_WRITE;
        p->svc.set_access(p->svc.ctx, q, DSM_ACCESS_WRITE);
    }
}

static dsm_status_t defer(dsmp_t *p, uint64_t page)
{
    if (dsmp_pages_reserve(&p->deferred, p->ndeferred, &p->capdeferred) != DSM_OK)
        return DSM_ENOMEM;
    p->deferred[p->ndeferred++] = page;
    return DSM_OK;
}

static void cau_fault(dsmp_t *p, uint64_t page, int access, int origin, uint32_t ahead)
{
    struct cau_page *g = &p->pg[page];

    if (access > g->want)
        g->want = (uint8_t)access;
    g->origin = origin;
    if (g->updating)
        return; /* apply_finish grants it */
    if (!g->held) {
        if (!g->fetching)
            fetch_start(p, page, ahead);
        return; /* page_arrived, then covers_check, grant it */
    }
    if (g->cover != NULL)
        return; /* covers_check grants it */
    if (access == DSM_ACCESS_WRITE && private_ok(p, page)) {
        g->want = 0;
        private_ahead(p, page, ahead);
        g->priv = 1;
        g->local = DSM_ACCESS_WRITE;
        p->svc.grant(p->svc.ctx, page, DSM_ACCESS_WRITE);
        return;
    }
    if (access == DSM_ACCESS_WRITE && !g->written && (p->flushing || p->nwritten >= p->pages_per_update)) {
        /* a write to a page outside the open interval while it is being flushed, or when it
         * is full: it starts the next interval once the flush is out (flush_send) */
        if (defer(p, page) != DSM_OK) {
            dsmp_fail(&p->svc, DSM_ENOMEM, "causal: out of memory deferring a write fault");
            return;
        }
        flush_start(p);
        return;
    }
    g->want = 0;
    if (access == DSM_ACCESS_WRITE)
        write_ahead(p, page, ahead); /* before the grant: its run takes them */
    grant_local(p, page, access);
}

/* ---- the end of an interval ---- */

static void add_waiter(dsmp_t *p, struct cau_waiter **list, dsmp_done_fn done, void *arg)
{
    struct cau_waiter *w = calloc(1, sizeof(*w));

    if (w == NULL) {
        dsmp_fail(&p->svc, DSM_ENOMEM, "causal: out of memory; a synchronisation completes early");
        done(p, arg);
        return;
    }
    w->done = done;
    w->arg = arg;
    while (*list) /* in order: a free's request leaves before a later FINI_ARRIVE */
        list = &(*list)->next;
    *list = w;
}

/* Grant the faults that waited for the flush (writes to pages outside the interval). */
static void regrant_waiting(dsmp_t *p, const uint64_t *pages, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        struct cau_page *g = &p->pg[pages[k]];

        if (g->want && !g->updating) {
            int want = g->want;

            g->want = 0;
            grant_local(p, pages[k], want);
        }
    }
}

/* Whether node n gets page's record: pages homed elsewhere always, this node's only if
 * it served n the page. */
static int update_to(const dsmp_t *p, int n, uint64_t page)
{
    return p->svc.home(p->svc.ctx, page) != p->svc.self || (p->holders[page] & 1ull << n);
}

/* The records of the update in p->buf (o bytes) that node n needs (*d, the length
 * returned): all of them, except this node's home pages that n was never served (holders)
 * and so cannot hold. A home's own writes are in the frame it serves, with a clock that
 * counts them, so a later fetch of such a page misses nothing; pages homed elsewhere go
 * to every node, whose holders only their home knows. */
static size_t update_for(dsmp_t *p, int n, size_t o, const uint8_t **d)
{
    size_t at = 0, all = 0, kept = 0, len = 0;
    uint64_t page;
    const uint8_t *diff;
    size_t dl;

    *d = p->buf;
    if (p->holders == NULL)
        return o;
    while (at < o && dsmp_rec_next(p->buf, o, &at, p->svc.npages, &page, &diff, &dl) == 0) {
        all++;
        kept += update_to(p, n, page);
    }
    if (kept == all)
        return o; /* nothing to cut: no copy */
    if (kept == 0)
        return 0;
    if (o > p->cutcap) {
        uint8_t *b = realloc(p->cut, o);

        if (b == NULL)
            return o; /* all of it: more than n needs, nothing lost */
        p->cut = b;
        p->cutcap = o;
    }
    for (at = 0; at < o && dsmp_rec_next(p->buf, o, &at, p->svc.npages, &page, &diff, &dl) == 0;)
        if (update_to(p, n, page))
            len += dsmp_rec_put(p->cut + len, page, diff, dl);
    *d = p->cut;
    return len;
}

/* Send node n an update of len bytes at d, in parts of PART_BYTES; one empty part when it
 * carries no page (n still counts the interval, C3). */
static void update_send(dsmp_t *p, int n, dsmw_msg_t *m, const uint8_t *d, size_t len)
{
    m->count = len > 0 ? (len + PART_BYTES - 1) / PART_BYTES : 1;
    for (m->seq = 0; m->seq < m->count; m->seq++) {
        size_t at = (size_t)m->seq * PART_BYTES;

        m->data.data = len > 0 ? (uint8_t *)d + at : NULL;
        m->data.len = len - at < PART_BYTES ? len - at : PART_BYTES;
        p->svc.send(p->svc.ctx, n, m, DSMP_NO_FRAME);
    }
}

/* Every page of the flush is write-protected: build the UPDATE and send it to everyone. */
static void flush_send(dsmp_t *p)
{
    size_t o = 0;
    dsmw_msg_t m;
    struct cau_waiter *w, *next;

    for (size_t k = 0; k < p->nfl; k++) {
        uint64_t page = p->fl_pages[k];
        struct cau_page *g = &p->pg[page];
        size_t len;

        if (g->twin == NULL)
            continue;
        len = unheld(p, page) ? 0 /* no node needs it */
                              : dsmp_diff_make(p->svc.frame(p->svc.ctx, page), g->twin, p->svc.page_size, p->diffbuf);
        free(g->twin);
        g->twin = NULL;
        if (len == 0)
            continue;
        if (o + REC_HDR + len > p->bufcap) {
            size_t ncap = (p->bufcap ? p->bufcap : PART_BYTES) * 2;
            uint8_t *b;

            while (ncap < o + REC_HDR + len)
                ncap *= 2;
            b = realloc(p->buf, ncap);
            if (b == NULL) {
                dsmp_fail(&p->svc, DSM_ENOMEM,
                          "causal: out of memory building an update; page %llu's writes are lost",
                          (unsigned long long)page);
                continue;
            }
            p->buf = b;
            p->bufcap = ncap;
        }
        o += dsmp_rec_put(p->buf + o, page, p->diffbuf, len);
        p->svc.count(p->svc.ctx, p->fl_origin, DSMP_DIFFS, 1);
    }
    if (o > 0) {
        p->vc[p->svc.self]++;
        for (int k = 0; k < p->nn; k++)
            p->scratch_vc[k] = p->vc[k];
        dsmw_init(&m, DSMW__TYPE__UPDATE);
        m.origin = (uint32_t)p->fl_origin;
        m.vclock = p->scratch_vc;
        m.n_vclock = (size_t)p->nn;
        for (int n = 0; n < p->nn; n++) {
            const uint8_t *d;
            size_t len;

            if (n == p->svc.self)
                continue;
            len = update_for(p, n, o, &d);
            update_send(p, n, &m, d, len);
        }
        p->svc.count(p->svc.ctx, p->fl_origin, DSMP_WRITE_NOTICES, 1);
    }
    p->flushing = 0;
    p->flush_done = p->flush_no;
    for (size_t k = 0; k < p->nfl; k++)
        if (p->pg[p->fl_pages[k]].local == DSM_ACCESS_WRITE)
            p->pg[p->fl_pages[k]].local = DSM_ACCESS_READ;
    free(p->fl_pages);
    p->fl_pages = NULL;
    p->nfl = 0;
    w = p->fl_waiters;
    p->fl_waiters = NULL;
    for (; w; w = next) { /* one may start the next flush itself */
        next = w->next;
        w->done(p, w->arg);
        free(w);
    }
    if (p->next_waiters && !p->flushing) {
        p->fl_waiters = p->next_waiters;
        p->next_waiters = NULL;
        flush_start(p);
    }
    /* writes that waited for this flush may go now (into the next interval) */
    if (!p->flushing && p->ndeferred > 0) {
        uint64_t *d = p->deferred;
        size_t n = p->ndeferred;

        p->deferred = NULL;
        p->ndeferred = p->capdeferred = 0;
        regrant_waiting(p, d, n);
        free(d);
    }
    if (p->nwritten > 0 && !p->timer_armed) { /* writes that came during the flush: bounded */
        p->timer_armed = 1;
        p->svc.timer(p->svc.ctx, p->delay_now);
    }
    opens_check(p);
}

static void flush_page_done(dsmp_t *p, void *arg)
{
    (void)arg;
    if (--p->fl_pending == 0)
        flush_send(p);
}

/* v doubled (up) or halved, kept within [lo, hi]. */
static uint64_t backoff(uint64_t v, int up, uint64_t lo, uint64_t hi)
{
    v = up ? v * 2 : v / 2;
    return v < lo ? lo : v > hi ? hi : v;
}

/* The next interval's delay and bound (see the top). Churn, where an interval's end only
 * costs its writers faults, doubles them up to DELAY_BACKOFF_MAX times the configured delay
 * and PAGES_PER_UPDATE_MAX pages; an interval without halves them back:
 *   - other nodes' updates wrote pages of the interval too (crossed: the delay);
 *   - half its pages or more are written again after a flush that no release asked for,
 *     within AGAIN_FLUSHES flushes and with no release since (again: both). */
static void delay_adapt(dsmp_t *p)
{
    int again = p->nwritten > 0 && p->again * 2 >= p->nwritten;

    p->delay_now = backoff(p->delay_now, p->crossed > 0 || again, p->delay_us, p->delay_us * DELAY_BACKOFF_MAX);
    p->pages_per_update = (size_t)backoff(p->pages_per_update, again, PAGES_PER_UPDATE, PAGES_PER_UPDATE_MAX);
    p->crossed = 0;
    p->again = 0;
}

static void flush_start(dsmp_t *p)
{
    if (p->flushing)
        return;
    delay_adapt(p);
    p->flushing = 1;
    p->flushes++;
    p->flush_no++;
    if (p->fl_waiters != NULL)
        p->last_release = p->flushes; /* a release's: what it protects is no churn */
    p->fl_pages = p->written;
    p->nfl = p->nwritten;
    for (size_t k = 0; k < p->nfl; k++)
        DSMP_INVARIANT(p->pg[p->fl_pages[k]].twin != NULL, "C2");
    p->written = NULL;
    p->nwritten = p->capwritten = 0;
    p->fl_pending = 1;
    for (size_t k = 0; k < p->nfl; k++) {
        p->pg[p->fl_pages[k]].written = 0;
        p->pg[p->fl_pages[k]].flushed = p->flushes;
        p->fl_pending++;
        p->svc.revoke(p->svc.ctx, p->fl_pages[k], DSM_ACCESS_READ, flush_page_done, NULL);
    }
    flush_page_done(p, NULL);
}

static void cau_tick(dsmp_t *p)
{
    p->timer_armed = 0;
    if (p->nwritten > 0 && !p->flushing) {
        p->fl_origin = p->svc.any_rank; /* no rank asked for it */
        flush_start(p);
    }
}

static void cau_release(dsmp_t *p, int origin, dsmp_done_fn done, void *arg)
{
    if (p->flushing) {
        add_waiter(p, &p->next_waiters, done, arg);
        return;
    }
    add_waiter(p, &p->fl_waiters, done, arg);
    p->fl_origin = origin;
    flush_start(p);
}

/* ---- remote updates ---- */

static int deliverable(dsmp_t *p, const struct cau_update *u)
{
    for (int k = 0; k < p->nn; k++) {
        if (k == u->src ? u->vc[k] != p->vc[k] + 1 : u->vc[k] > p->vc[k])
            return 0;
    }
    return 1;
}

/* Check the pages of an update's data; 0 if well formed. */
static int update_check(dsmp_t *p, const uint8_t *d, size_t len)
{
    for (size_t o = 0; o < len;) {
        uint64_t page;
        const uint8_t *diff;
        size_t dl;

        if (dsmp_rec_next(d, len, &o, p->svc.npages, &page, &diff, &dl) != 0)
            return -1;
    }
    return 0;
}

static void acquire_check(dsmp_t *p)
{
    for (struct cau_waiter **pp = &p->acquires; *pp;) {
        struct cau_waiter *w = *pp;

        if (dsmp_vc_covered(w->vc, p->vc, p->nn)) {
            *pp = w->next;
            w->done(p, w->arg);
            free(w);
        } else {
            pp = &w->next;
        }
    }
}

/* ---- partial replicas (svc.partial) ---- */

/* Update u writes page g's frame here: it is held, and its copy does not hold u already. */
static int applies(const struct cau_page *g, const struct cau_update *u)
{
    return g->held && (g->cover == NULL || u->vc[u->src] > g->cover[u->src]);
}

/* Keep u's diff of a page being fetched: the PAGE may come from before u (C5). */
static void rec_add(dsmp_t *p, struct cau_page *g, const struct cau_update *u, const uint8_t *diff, size_t len)
{
    struct cau_rec *r = malloc(sizeof(*r) + len), **tail;

    if (r == NULL) {
        dsmp_fail(&p->svc, DSM_ENOMEM, "causal: out of memory keeping an update for a page being fetched");
        return;
    }
    r->next = NULL;
    r->src = u->src;
    r->seq = u->vc[u->src];
    r->len = len;
    memcpy(r->diff, diff, len);
    for (tail = &g->rec; *tail; tail = &(*tail)->next)
        ;
    *tail = r;
}

static void rec_free(struct cau_page *g)
{
    while (g->rec) {
        struct cau_rec *next = g->rec->next;

        free(g->rec);
        g->rec = next;
    }
}

/* Requester: page q may be asked for ahead: absent, nothing under way (dsmp_ahead_count). */
static int ahead_absent(dsmp_t *p, uint64_t q)
{
    const struct cau_page *g = &p->pg[q];

    return !g->held && !g->fetching && g->cover == NULL && !g->want &&
           (p->svc.take == NULL || p->svc.take(p->svc.ctx, q));
}

/* Requester: ask the page's home for it, and for a scan's read the absent pages after it
 * that the home holds too (`ahead`), with everything this node has applied. */
static void fetch_start(dsmp_t *p, uint64_t page, uint32_t ahead)
{
    struct cau_page *g = &p->pg[page];
    int home = p->svc.home(p->svc.ctx, page);
    uint32_t n;
    dsmw_msg_t m;

    if (home < 0 || home == p->svc.self) { /* the daemon faults only on allocated pages, C4 */
        dsmp_fail(&p->svc, DSM_EPROTO, "causal: fault on page %llu, which has no home to fetch it from",
                  (unsigned long long)page);
        return;
    }
    n = dsmp_ahead_count(p, &p->svc, page, home, ahead, DSMP_AHEAD_MAX, ahead_absent);
    g->fetching = 1;
    for (uint32_t i = 1; i <= n; i++) {
        p->pg[page + i].fetching = 1;
        p->pg[page + i].extra = 1;
        p->pg[page + i].origin = g->origin;
    }
    dsmw_init(&m, DSMW__TYPE__PAGE_GET);
    m.page = page;
    m.count = n;
    m.node = (uint32_t)p->svc.self;
    m.origin = (uint32_t)g->origin;
    fill_vc(p, &m, p->vc);
    p->svc.send(p->svc.ctx, home, &m, DSMP_NO_FRAME);
}

/* Home: send page with this node's clock: the frame, or the twin while the page has
 * unsent writes here (C2); status DSM_EINVAL when it was freed meanwhile, NOT_AHEAD if
 * `refuse`. */
static void serve_get(dsmp_t *p, uint64_t page, int node, int origin, int refuse)
{
    struct cau_page *g = &p->pg[page];
    uint64_t attach = DSMP_NO_FRAME;
    dsmw_msg_t m;

    dsmw_init(&m, DSMW__TYPE__PAGE);
    m.page = page;
    m.origin = (uint32_t)origin;
    if (p->svc.home(p->svc.ctx, page) != p->svc.self) {
        m.status = DSM_EINVAL;
    } else if (refuse) {
        m.status = NOT_AHEAD;
    } else {
        fill_vc(p, &m, p->vc);
        if (p->holders != NULL)
            p->holders[page] |= 1ull << node;
        if (g->twin != NULL) {
            m.data.data = g->twin;
            m.data.len = p->svc.page_size;
        } else {
            attach = page;
        }
    }
    p->svc.send(p->svc.ctx, node, &m, attach);
}

static void gets_check(dsmp_t *p);

/* Home: a private page asked for (C6) is served once every write this node made before it
 * was taken back has left in an update: that flush's number is o->need. */
struct cau_open {
    struct cau_open *next;
    uint64_t page, need;
};

static void open_done(dsmp_t *p, struct cau_open *o)
{
    p->pg[o->page].opening = 0;
    free(o);
}

/* Home: the openings whose flush is out may be served (gets_check). */
static void opens_check(dsmp_t *p)
{
    int served = 0;

    for (struct cau_open **pp = &p->opens; *pp;) {
        struct cau_open *o = *pp;

        if (o->need > p->flush_done) {
            pp = &o->next;
            continue;
        }
        *pp = o->next;
        open_done(p, o);
        served = 1;
    }
    if (served)
        gets_check(p);
}

/* The page is READ to the ranks: what they wrote before is in the open interval or in a
 * flush under way. Wait for the flush that takes the open interval (its timer's at the
 * latest, within DSM_CAUSAL_DELAY_US even while backed off), or for the one under way when
 * the interval is empty. No flush is forced: the openings of a burst of fetches share one,
 * and the home's intervals are not cut at each (which cost radix twice the write faults). */
static void open_revoked(dsmp_t *p, void *arg)
{
    struct cau_open *o = arg;

    o->need = p->flush_no + (p->nwritten > 0);
    if (o->need <= p->flush_done) {
        open_done(p, o);
        gets_check(p);
        return;
    }
    o->next = p->opens;
    p->opens = o;
    if (p->nwritten > 0 && (!p->timer_armed || p->delay_now > p->delay_us)) {
        p->timer_armed = 1; /* a backed-off interval ends within the configured delay now */
        p->svc.timer(p->svc.ctx, p->delay_us);
    }
}

/* Home: a node asks for a private page (C6). Its writes so far are untracked: take it back
 * to READ (a later write twins it), and serve it only once the writes this node made before
 * are out in an update (open_revoked, opens_check, then gets_check): the frame then goes
 * with a clock that counts them all, and the requester cannot see one write of this node
 * without those before it. */
static void open_start(dsmp_t *p, uint64_t page)
{
    struct cau_page *g = &p->pg[page];
    struct cau_open *o = calloc(1, sizeof(*o));

    g->priv = 0;
    g->opening = 1;
    if (o == NULL) {
        dsmp_fail(&p->svc, DSM_ENOMEM, "causal: out of memory serving page %llu", (unsigned long long)page);
        return;
    }
    o->page = page;
    g->local = DSM_ACCESS_READ;
    p->svc.revoke(p->svc.ctx, page, DSM_ACCESS_READ, open_revoked, o);
}

/* Home: the pages q is answered with: its page, and those asked ahead that this node
 * homes in the same allocation (the others are refused: not this home's, or a neighbouring
 * block that may be freed at its own time). */
static int get_serves(dsmp_t *p, const struct cau_get *q, uint32_t i)
{
    uint64_t page = q->page + i;

    return i == 0 || (page < p->svc.alloc_end(p->svc.ctx, q->page) && p->svc.home(p->svc.ctx, page) == p->svc.self);
}

enum { GET_READY, GET_WAIT, GET_OPENED };

/* Home: may q be answered (its clock covered)? Not while a page it serves is private
 * (open_start starts on it: GET_OPENED, which may have answered q already) or opening. */
static int get_ready(dsmp_t *p, const struct cau_get *q)
{
    int wait = 0;

    for (uint32_t i = 0; i <= q->count; i++) {
        const struct cau_page *g = &p->pg[q->page + i];

        if (!get_serves(p, q, i))
            continue;
        if (g->priv) {
            open_start(p, q->page + i);
            return GET_OPENED;
        }
        wait |= g->opening;
    }
    return wait ? GET_WAIT : GET_READY;
}

/* Home: answer the PAGE_GETs whose requesters' clocks this node's now covers, in order. */
static void gets_check(dsmp_t *p)
{
    for (struct cau_get **pp = &p->gets; *pp;) {
        struct cau_get *q = *pp;
        int st = dsmp_vc_covered(q->vc, p->vc, p->nn) ? get_ready(p, q) : GET_WAIT;

        if (st == GET_OPENED) {
            pp = &p->gets; /* q may be gone: look again from the start */
        } else if (st == GET_WAIT) {
            pp = &q->next;
        } else {
            *pp = q->next;
            for (uint32_t i = 1; i <= q->count; i++) /* ahead first: open when the lead's grant runs */
                serve_get(p, q->page + i, q->node, q->origin, !get_serves(p, q, i));
            serve_get(p, q->page, q->node, q->origin, 0);
            free(q);
        }
    }
}

/* A peer's clock in m makes sense here: one entry per node, each a 32-bit interval, and
 * none of this node's intervals it never sent. 0, or -1 (the message is malformed). */
static int peer_clock_ok(const dsmp_t *p, const dsmw_msg_t *m)
{
    if ((int)m->n_vclock != p->nn || m->vclock[p->svc.self] > p->vc[p->svc.self])
        return -1;
    for (int k = 0; k < p->nn; k++)
        if (m->vclock[k] > UINT32_MAX)
            return -1;
    return 0;
}

static dsm_status_t get_arrived(dsmp_t *p, int src, const dsmw_msg_t *m)
{
    int home = p->svc.home(p->svc.ctx, m->page);
    struct cau_get *q, **tail;

    if (src == p->svc.self || (home != p->svc.self && home != DSMP_NO_HOME) || (int)m->node != src ||
        peer_clock_ok(p, m) != 0 || m->count > DSMP_AHEAD_MAX || m->count >= p->svc.npages - m->page)
        return DSM_EPROTO;
    if ((q = malloc(sizeof(*q) + (size_t)p->nn * sizeof(uint32_t))) == NULL)
        return DSM_ENOMEM;
    q->next = NULL;
    q->page = m->page;
    q->count = (uint32_t)m->count;
    q->node = src;
    q->origin = (int)m->origin;
    for (int k = 0; k < p->nn; k++)
        q->vc[k] = (uint32_t)m->vclock[k];
    for (tail = &p->gets; *tail; tail = &(*tail)->next)
        ;
    *tail = q;
    gets_check(p);
    return DSM_OK;
}

/* Requester: a fetched page may go to the ranks (C5): the fault that asked for it, or
 * just READ for the node. */
static void fetched_open(dsmp_t *p, uint64_t page)
{
    struct cau_page *g = &p->pg[page];
    int want = g->want;

    g->want = 0;
    if (want) {
        cau_fault(p, page, want, g->origin, 1);
    } else {
        g->local = DSM_ACCESS_READ;
        p->svc.set_access(p->svc.ctx, page, DSM_ACCESS_READ);
    }
}

/* Requester: open the fetched pages whose home clocks this node's now covers. */
static void covers_check(dsmp_t *p)
{
    size_t keep = 0;

    if (p->applying != NULL)
        return; /* an update is half applied: apply_finish calls again */
    for (size_t k = 0; k < p->ncovering; k++) {
        uint64_t page = p->covering[k];
        struct cau_page *g = &p->pg[page];

        if (g->cover == NULL)
            continue; /* reset meanwhile */
        if (!dsmp_vc_covered(g->cover, p->vc, p->nn)) {
            p->covering[keep++] = page;
            continue;
        }
        free(g->cover);
        g->cover = NULL;
        fetched_open(p, page);
    }
    p->ncovering = keep;
}

static dsm_status_t page_arrived(dsmp_t *p, int src, const dsmw_msg_t *m, int framed)
{
    struct cau_page *g = &p->pg[m->page];
    uint8_t *frame = p->svc.frame(p->svc.ctx, m->page);
    uint32_t *h;

    if (src != p->svc.home(p->svc.ctx, m->page) || !g->fetching || (m->status == NOT_AHEAD && !g->extra))
        return DSM_EPROTO;
    if (m->status != 0) { /* freed at the home (the free resets it here too), or not sent ahead */
        g->fetching = 0;
        g->extra = 0;
        rec_free(g);
        if (m->status == NOT_AHEAD && g->want)
            fetch_start(p, m->page, 1); /* a rank faulted on it meanwhile */
        return DSM_OK;
    }
    if (peer_clock_ok(p, m) != 0 || m->data.len != (framed ? 0 : p->svc.page_size))
        return DSM_EPROTO;
    if (dsmp_pages_reserve(&p->covering, p->ncovering, &p->capcovering) != DSM_OK)
        return DSM_ENOMEM;
    if ((h = malloc((size_t)p->nn * sizeof(uint32_t))) == NULL)
        return DSM_ENOMEM;
    for (int k = 0; k < p->nn; k++)
        h[k] = (uint32_t)m->vclock[k];
    if (!framed)
        memcpy(frame, m->data.data, p->svc.page_size);
    for (struct cau_rec *r = g->rec; r; r = r->next)
        if (r->seq > h[r->src] && dsmp_diff_apply(frame, NULL, p->svc.page_size, r->diff, r->len) != DSM_OK)
            dsmp_fail(&p->svc, DSM_EPROTO, "causal: malformed diff of page %llu from node %d",
                      (unsigned long long)m->page, r->src);
    rec_free(g);
    g->fetching = 0;
    g->held = 1;
    g->local = DSM_ACCESS_NONE;
    p->svc.count(p->svc.ctx, g->origin, DSMP_PAGES_FETCHED, 1);
    if (g->extra)
        p->svc.count(p->svc.ctx, g->origin, DSMP_PAGES_READ_AHEAD, 1);
    g->extra = 0;
    g->cover = h;
    p->covering[p->ncovering++] = m->page;
    covers_check(p);
    return DSM_OK;
}

/* Give up a clean copy (its writes left with its interval's update); a page written in
 * the open interval ends the interval, so that a later try finds it clean. */
static int cau_evict(dsmp_t *p, uint64_t page, dsmp_done_fn done, void *arg)
{
    struct cau_page *g = &p->pg[page];

    if (g->written && !p->flushing) {
        p->fl_origin = p->svc.any_rank;
        flush_start(p);
    }
    if (g->updating || g->fetching || g->cover != NULL || g->twin != NULL || g->written)
        return 0;
    g->held = 0;
    g->local = DSM_ACCESS_NONE;
    p->svc.revoke(p->svc.ctx, page, DSM_ACCESS_NONE, done, arg);
    return 1;
}

/* No fetch of this node's, nor a PAGE_GET waiting here, on [first, first+n). */
static int cau_settled(dsmp_t *p, uint64_t first, uint64_t n)
{
    for (uint64_t pg = first; pg < first + n; pg++)
        if (p->pg[pg].fetching)
            return 0;
    for (const struct cau_get *q = p->gets; q; q = q->next)
        if (q->page < first + n && first <= q->page + q->count)
            return 0;
    for (const struct cau_free *f = p->frees; f; f = f->next)
        if (f->first < first + n && first < f->first + f->n)
            for (int k = 0; k < p->nn; k++)
                if (p->vc[k] < f->vc[k])
                    return 0; /* an update from before the free is still to come */
    return 1;
}

/* A free's request leaves after the node's release(): the clock it carries covers every
 * update this node sent with writes to the range (dsmp.h fill_free). */
static void cau_fill_free(dsmp_t *p, dsmw_msg_t *out)
{
    fill_vc(p, out, p->vc);
}

/* REGION_FREE of [first, first+n) with the merged clocks of the requests: the range resets
 * only once this node has applied all of it (cau_settled), so no update from before the
 * free lands on the pages of their next allocation. A clock of the wrong length, or one
 * that claims intervals of this node it never sent, fails the job (the latter could never
 * be covered; other nodes' entries cannot be checked here). */
static void cau_freeing(dsmp_t *p, uint64_t first, uint64_t n, const dsmw_msg_t *m)
{
    struct cau_free *f;

    if (peer_clock_ok(p, m) != 0) {
        dsmp_fail(&p->svc, DSM_EPROTO, "causal: the free of pages %llu+%llu carries a bad clock",
                  (unsigned long long)first, (unsigned long long)n);
        return;
    }
    f = malloc(sizeof(*f) + (size_t)p->nn * sizeof(uint32_t));
    if (f == NULL) {
        dsmp_fail(&p->svc, DSM_ENOMEM, "causal: out of memory freeing pages %llu+%llu",
                  (unsigned long long)first, (unsigned long long)n);
        return;
    }
    f->first = first;
    f->n = n;
    for (int k = 0; k < p->nn; k++)
        f->vc[k] = (uint32_t)m->vclock[k];
    f->next = p->frees;
    p->frees = f;
}

/* Every page of the update is at NONE for the local ranks: patch them all, reopen. */
static void apply_finish(dsmp_t *p)
{
    struct cau_update *u = p->applying;

    for (size_t o = 0; o < u->len;) {
        uint64_t page = dsm_get_le(u->data + o, 8);
        size_t dl = (size_t)dsm_get_le(u->data + o + 8, 4);
        struct cau_page *g = &p->pg[page];

        if (g->fetching)
            rec_add(p, g, u, u->data + o + REC_HDR, dl);
        if (!applies(g, u)) {
            o += REC_HDR + dl;
            continue;
        }
        if (p->svc.applying)
            p->svc.applying(p->svc.ctx, page, u->src, u->data + o + REC_HDR, dl);
        if (g->written)
            p->crossed++; /* taken from its writers here for a patch: delay_adapt */
        if (dsmp_diff_apply(p->svc.frame(p->svc.ctx, page), g->twin, p->svc.page_size, u->data + o + REC_HDR, dl) !=
            DSM_OK)
            dsmp_fail(&p->svc, DSM_EPROTO, "causal: malformed diff of page %llu from node %d",
                      (unsigned long long)page, u->src);
        p->svc.count(p->svc.ctx, p->svc.any_rank, DSMP_DIFFS, 1);
        o += REC_HDR + dl;
    }
    for (size_t o = 0; o < u->len;) {
        uint64_t page = dsm_get_le(u->data + o, 8);
        size_t dl = (size_t)dsm_get_le(u->data + o + 8, 4);
        struct cau_page *g = &p->pg[page];

        o += REC_HDR + dl;
        if (!g->updating)
            continue;
        g->updating = 0;
        if (g->cover != NULL)
            continue; /* shut until covers_check */
        g->local = g->written ? DSM_ACCESS_WRITE : DSM_ACCESS_READ;
        p->svc.set_access(p->svc.ctx, page, g->local);
        if (g->want) {
            int want = g->want;

            g->want = 0;
            cau_fault(p, page, want, g->origin, 1);
        }
    }
    p->svc.count(p->svc.ctx, p->svc.any_rank, DSMP_WRITE_NOTICES, 1);
    p->vc[u->src] = u->vc[u->src];
    p->applying = NULL;
    free(u->vc);
    free(u->data);
    free(u);
    acquire_check(p);
    gets_check(p);
    covers_check(p);
    deliver(p);
}

static void apply_page_revoked(dsmp_t *p, void *arg)
{
    (void)arg;
    if (--p->ap_pending == 0)
        apply_finish(p);
}

static void apply_start(dsmp_t *p, struct cau_update *u)
{
    p->applying = u;
    p->ap_pending = 1;
    for (size_t o = 0; o < u->len;) {
        uint64_t page = dsm_get_le(u->data + o, 8);
        size_t dl = (size_t)dsm_get_le(u->data + o + 8, 4);
        struct cau_page *g = &p->pg[page];

        o += REC_HDR + dl;
        if (g->priv) { /* C6: no other node holds it, so none writes it */
            dsmp_fail(&p->svc, DSM_EPROTO, "causal: node %d sent writes to page %llu, which its home (this node) "
                      "never served it (DSM_CAUSAL_REPLICAS differs between the nodes?)", u->src,
                      (unsigned long long)page);
            continue;
        }
        if (g->updating || !applies(g, u))
            continue; /* the same page twice in one update; absent, fetching, or in its copy */
        g->updating = 1;
        g->local = DSM_ACCESS_NONE;
        p->ap_pending++;
        p->svc.revoke(p->svc.ctx, page, DSM_ACCESS_NONE, apply_page_revoked, NULL);
    }
    apply_page_revoked(p, NULL);
}

/* Apply the queued updates that have become deliverable, one at a time. */
static void deliver(dsmp_t *p)
{
    if (p->applying != NULL)
        return;
    for (struct cau_update **pp = &p->queue; *pp; pp = &(*pp)->next) {
        struct cau_update *u = *pp;

        if (deliverable(p, u)) {
            *pp = u->next;
            apply_start(p, u);
            return;
        }
    }
}

/* Collect the parts of an update from src; returns 1 when the whole update is in a->data,
 * 0 while parts are missing, -1 for a part out of order. */
static int assemble(dsmp_t *p, int src, const dsmw_msg_t *m)
{
    struct cau_asm *a = &p->asm_[src];

    if (m->count == 0 || m->seq != a->parts || (m->seq > 0 && m->count != a->count) ||
        m->count > (uint64_t)PAGES_PER_UPDATE_MAX * 4)
        return -1;
    a->count = m->count;
    if (a->len + m->data.len > a->cap) {
        size_t ncap = a->cap ? a->cap * 2 : 2 * PART_BYTES;
        uint8_t *b;

        while (ncap < a->len + m->data.len)
            ncap *= 2;
        b = realloc(a->data, ncap);
        if (b == NULL)
            return -1;
        a->data = b;
        a->cap = ncap;
    }
    if (m->data.len > 0) /* an empty part carries no buffer at all */
        memcpy(a->data + a->len, m->data.data, m->data.len);
    a->len += m->data.len;
    a->parts++;
    return a->parts == m->count;
}

static dsm_status_t update_arrived(dsmp_t *p, int src, const dsmw_msg_t *m)
{
    struct cau_update *u;
    struct cau_asm *a = &p->asm_[src];
    int whole;

    if (src == p->svc.self || (int)m->n_vclock != p->nn)
        return DSM_EPROTO;
    whole = assemble(p, src, m);
    if (whole < 0) {
        DSM_ERR("causal: part %llu of %llu of an update from node %d is out of order", (unsigned long long)m->seq,
                (unsigned long long)m->count, src);
        return DSM_EPROTO;
    }
    if (whole == 0)
        return DSM_OK;
    a->parts = 0;
    if (update_check(p, a->data, a->len) != 0) {
        a->len = 0;
        return DSM_EPROTO;
    }
    u = calloc(1, sizeof(*u));
    if (u == NULL)
        return DSM_ENOMEM;
    u->src = src;
    u->vc = malloc((size_t)p->nn * sizeof(uint32_t));
    u->data = a->len > 0 ? a->data : malloc(1); /* an update of no pages has no buffer */
    if (u->vc == NULL || u->data == NULL) {
        free(u->vc);
        if (a->len == 0)
            free(u->data);
        free(u);
        return DSM_ENOMEM;
    }
    for (int k = 0; k < p->nn; k++)
        u->vc[k] = (uint32_t)m->vclock[k];
    if (a->len > 0) { /* the buffer goes with the update: no copy, none kept at an interval's peak */
        a->data = NULL;
        a->cap = 0;
    }
    u->len = a->len;
    a->len = 0;
    if (u->vc[src] <= p->vc[src]) {
        DSM_ERR("causal: update %u from node %d is older than one already applied", u->vc[src], src);
        free(u->vc);
        free(u->data);
        free(u);
        return DSM_EPROTO;
    }
    /* queue at the tail: updates of one node arrive in order */
    {
        struct cau_update **pp = &p->queue;

        while (*pp)
            pp = &(*pp)->next;
        *pp = u;
    }
    deliver(p);
    return DSM_OK;
}

static dsm_status_t cau_message(dsmp_t *p, int src, const dsmw_msg_t *m, int framed)
{
    dsm_status_t st = DSM_EPROTO;

    if (m->type == DSMW__TYPE__UPDATE && !framed)
        return update_arrived(p, src, m);
    if (m->type == DSMW__TYPE__PAGE_GET && !framed)
        st = get_arrived(p, src, m);
    else if (m->type == DSMW__TYPE__PAGE && p->partial)
        st = page_arrived(p, src, m, framed);
    if (st != DSM_EPROTO)
        return st;
    DSM_ERR("causal: unexpected %s for page %llu from node %d", dsmw_type_name(m->type),
            (unsigned long long)m->page, src);
    return DSM_EPROTO;
}

/* ---- synchronisation: clocks only ---- */

static void fill_vc(dsmp_t *p, dsmw_msg_t *out, const uint32_t *vc)
{
    for (int k = 0; k < p->nn; k++)
        p->scratch_vc[k] = vc[k];
    out->vclock = p->scratch_vc;
    out->n_vclock = (size_t)p->nn;
}

static void cau_fill_release(dsmp_t *p, dsmw_msg_t *out)
{
    fill_vc(p, out, p->vc);
}

static struct cau_lock *lock_get(dsmp_t *p, uint32_t id)
{
    struct cau_lock **pp = &p->mgr[id % LOCK_BUCKETS];

    while (*pp && (*pp)->id != id)
        pp = &(*pp)->next;
    if (*pp == NULL) {
        *pp = calloc(1, sizeof(**pp) + (size_t)p->nn * sizeof(uint32_t));
        if (*pp != NULL)
            (*pp)->id = id;
    }
    return *pp;
}

static void vc_merge_msg(dsmp_t *p, uint32_t *into, const dsmw_msg_t *m)
{
    for (int k = 0; k < p->nn && k < (int)m->n_vclock; k++)
        if ((uint32_t)m->vclock[k] > into[k])
            into[k] = (uint32_t)m->vclock[k];
}

static void cau_lock_released(dsmp_t *p, uint32_t lock, const dsmw_msg_t *unlock)
{
    struct cau_lock *l = lock_get(p, lock);

    if (l != NULL)
        vc_merge_msg(p, l->vc, unlock);
}

static void cau_fill_grant(dsmp_t *p, uint32_t lock, const dsmw_msg_t *req, dsmw_msg_t *grant)
{
    struct cau_lock *l = lock_get(p, lock);

    (void)req;
    if (l != NULL)
        fill_vc(p, grant, l->vc);
}

static void cau_barrier_arrived(dsmp_t *p, const dsmw_msg_t *arrive)
{
    vc_merge_msg(p, p->bar_acc, arrive);
}

static void cau_fill_barrier(dsmp_t *p, dsmw_msg_t *release)
{
    fill_vc(p, release, p->bar_acc);
}

/* Go on once every update the releaser had applied is applied here too. */
static void cau_acquired(dsmp_t *p, const dsmw_msg_t *m, dsmp_done_fn done, void *arg)
{
    struct cau_waiter *w = calloc(1, sizeof(*w) + (size_t)p->nn * sizeof(uint32_t));

    if (w == NULL) {
        dsmp_fail(&p->svc, DSM_ENOMEM, "causal: out of memory waiting for an acquire");
        done(p, arg);
        return;
    }
    w->done = done;
    w->arg = arg;
    vc_merge_msg(p, w->vc, m);
    w->next = p->acquires;
    p->acquires = w;
    acquire_check(p);
}

/* ---- life ---- */

static void cau_reset(dsmp_t *p, uint64_t first, uint64_t n)
{
    /* the free of exactly this range is done (a first-touch claim resets single pages) */
    for (struct cau_free **pp = &p->frees; *pp;) {
        struct cau_free *f = *pp;

        if (f->first == first && f->n == n) {
            *pp = f->next;
            free(f);
        } else {
            pp = &f->next;
        }
    }
    /* a freed page leaves the open interval with its twin (C2): its writes are void */
    p->nwritten = dsmp_pages_without(p->written, p->nwritten, first, n);
    for (uint64_t pg = first; pg < first + n; pg++) {
        struct cau_page *g = &p->pg[pg];
        int home = p->svc.home(p->svc.ctx, pg);

        free(g->twin);
        free(g->cover);
        rec_free(g);
        memset(g, 0, sizeof(*g));
        if (p->holders != NULL)
            p->holders[pg] = 0; /* every node drops the range (after this, C4) */
        /* allocated (first-touch ones too); partial: only the home pages (C4) */
        if (home != DSMP_NO_HOME && (!p->partial || home == p->svc.self)) {
            g->held = 1;
            g->local = DSM_ACCESS_READ;
            p->svc.set_access(p->svc.ctx, pg, DSM_ACCESS_READ); /* C1 */
        }
    }
}

static void free_waiters(struct cau_waiter *w)
{
    while (w) {
        struct cau_waiter *next = w->next;

        free(w);
        w = next;
    }
}

static void cau_destroy(dsmp_t *p)
{
    if (p == NULL)
        return;
    for (uint64_t pg = 0; p->pg && pg < p->svc.npages; pg++) {
        free(p->pg[pg].twin);
        free(p->pg[pg].cover);
        rec_free(&p->pg[pg]);
    }
    while (p->gets) {
        struct cau_get *q = p->gets;

        p->gets = q->next;
        free(q);
    }
    while (p->frees) {
        struct cau_free *f = p->frees;

        p->frees = f->next;
        free(f);
    }
    while (p->opens) {
        struct cau_open *o = p->opens;

        p->opens = o->next;
        free(o);
    }
    free(p->covering);
    while (p->queue) {
        struct cau_update *u = p->queue;

        p->queue = u->next;
        free(u->vc);
        free(u->data);
        free(u);
    }
    if (p->applying) {
        free(p->applying->vc);
        free(p->applying->data);
        free(p->applying);
    }
    for (int b = 0; b < LOCK_BUCKETS; b++)
        while (p->mgr[b]) {
            struct cau_lock *next = p->mgr[b]->next;

            free(p->mgr[b]);
            p->mgr[b] = next;
        }
    free_waiters(p->fl_waiters);
    free_waiters(p->next_waiters);
    free_waiters(p->acquires);
    free(p->pg);
    free(p->written);
    free(p->fl_pages);
    free(p->deferred);
    free(p->vc);
    free(p->bar_acc);
    free(p->scratch_vc);
    free(p->buf);
    free(p->cut);
    free(p->holders);
    free(p->diffbuf);
    for (int n = 0; p->asm_ && n < p->nn; n++)
        free(p->asm_[n].data);
    free(p->asm_);
    free(p);
}

/* DSM_CAUSAL_REPLICAS: `partial` (the default: a node holds its home pages and those it
 * fetched) or `full` (every node every page, all updates everywhere: no fetch, no holders),
 * which a bounded cache or memory nodes rule out. */
static dsm_status_t replicas_partial(const struct dsmp_services *svc, int *partial)
{
    const char *env = getenv("DSM_CAUSAL_REPLICAS");

    *partial = 1;
    if (env == NULL || strcmp(env, "partial") == 0)
        return DSM_OK;
    if (strcmp(env, "full") != 0) {
        DSM_ERR("causal: DSM_CAUSAL_REPLICAS=%s: expected partial or full", env);
        return DSM_ECONFIG;
    }
    if (svc->partial) {
        DSM_ERR("causal: DSM_CAUSAL_REPLICAS=full needs every node to hold every page; a bounded cache "
                "(--cache-size) or memory nodes keep replicas partial");
        return DSM_ECONFIG;
    }
    *partial = 0;
    return DSM_OK;
}

static dsm_status_t cau_create(const struct dsmp_services *svc, dsmp_t **out)
{
    dsmp_t *p = calloc(1, sizeof(*p));
    const char *env = getenv("DSM_CAUSAL_DELAY_US");

    if (p == NULL)
        return DSM_ENOMEM;
    p->svc = *svc;
    if (svc->page_size > DSMP_DIFF_MAX_PAGE) { /* a limit of the diff encoding, not of memory */
        DSM_ERR("causal: pages of %zu bytes; diffs describe pages of at most %u bytes", svc->page_size,
                DSMP_DIFF_MAX_PAGE);
        free(p);
        return DSM_ECONFIG;
    }
    p->nn = svc->nnodes;
    if (replicas_partial(svc, &p->partial) != DSM_OK) {
        free(p);
        return DSM_ECONFIG;
    }
    p->delay_us = env ? strtoull(env, NULL, 10) : DEFAULT_DELAY_US;
    if (p->delay_us == 0 || p->delay_us > 10000000)
        p->delay_us = DEFAULT_DELAY_US;
    p->delay_now = p->delay_us;
    p->flushes = AGAIN_FLUSHES; /* a page never flushed (`flushed` 0) is not written again */
    p->pages_per_update = PAGES_PER_UPDATE;
    p->asm_ = calloc((size_t)p->nn, sizeof(*p->asm_));
    p->pg = calloc(svc->npages, sizeof(*p->pg));
    p->vc = calloc((size_t)p->nn, sizeof(uint32_t));
    p->bar_acc = calloc((size_t)p->nn, sizeof(uint32_t));
    p->scratch_vc = calloc((size_t)p->nn, sizeof(uint64_t));
    p->bufcap = PART_BYTES;
    p->buf = malloc(p->bufcap);
    p->diffbuf = malloc(dsmp_diff_max(svc->page_size));
    if (p->partial && p->nn <= 64) /* holders: one bit per node */
        p->holders = calloc(svc->npages, sizeof(uint64_t));
    if ((p->partial && p->nn <= 64 && p->holders == NULL) || p->pages_per_update == 0 || p->pg == NULL ||
        p->vc == NULL || p->bar_acc == NULL || p->scratch_vc == NULL || p->buf == NULL || p->diffbuf == NULL ||
        p->asm_ == NULL) {
        DSM_ERR("causal: cannot set up for %llu pages", (unsigned long long)svc->npages);
        cau_destroy(p);
        return DSM_ENOMEM;
    }
    *out = p;
    return DSM_OK;
}

/* ---- atomics ---- */

/* Home, before an atomic write: the page joins the open interval with a twin taken before
 * the change, so the change is in the interval's diff. A page of the flush under way (a
 * twin, not in the open interval: C2) needs nothing: the change rides that flush, whose
 * diff is made once its revocations are done, after this. */
static void cau_atomic_prepare(dsmp_t *p, uint64_t page, int origin, int write, dsmp_done_fn ready, void *arg)
{
    struct cau_page *g = &p->pg[page];

    (void)origin;
    if (write && g->twin == NULL) {
        g->twin = malloc(p->svc.page_size);
        if (g->twin == NULL || written_add(p, page) != DSM_OK) {
            dsmp_fail(&p->svc, DSM_ENOMEM, "causal: out of memory for a twin of page %llu",
                      (unsigned long long)page);
            free(g->twin);
            g->twin = NULL;
        } else {
            memcpy(g->twin, p->svc.frame(p->svc.ctx, page), p->svc.page_size);
        }
    }
    ready(p, arg);
}

struct cau_applied {
    uint64_t *stamp;
    dsmp_done_fn done;
    void *arg;
};

static void atomic_flushed(dsmp_t *p, void *arg)
{
    struct cau_applied *a = arg;

    *a->stamp = p->vc[p->svc.self];
    a->done(p, a->arg);
    free(a);
}

/* Home, after the update of the frame: end the interval that holds it; the stamp is the
 * home's clock once it is sent (a load's too: it read what the home's intervals hold). */
static void cau_atomic_applied(dsmp_t *p, uint64_t page, int origin, uint64_t *stamp, dsmp_done_fn done, void *arg)
{
    struct cau_applied *a = malloc(sizeof(*a));

    (void)page;
    if (a == NULL) {
        dsmp_fail(&p->svc, DSM_ENOMEM, "causal: out of memory finishing an atomic operation");
        return;
    }
    *a = (struct cau_applied){ .stamp = stamp, .done = done, .arg = arg };
    cau_release(p, origin, atomic_flushed, a);
}

/* Requester's node: go on once the home's update with the atomic is applied here. */
static void cau_atomic_done(dsmp_t *p, uint64_t page, int origin, int home, uint64_t stamp, size_t off, size_t len,
                            const void *val, dsmp_done_fn done, void *arg)
{
    struct cau_waiter *w;

    (void)page, (void)origin, (void)off, (void)len, (void)val;
    if (home == p->svc.self || stamp <= p->vc[home]) {
        done(p, arg);
        return;
    }
    if (stamp > UINT32_MAX) {
        dsmp_fail(&p->svc, DSM_EPROTO, "causal: node %d answered an atomic with interval %llu", home,
                  (unsigned long long)stamp);
        return;
    }
    if ((w = calloc(1, sizeof(*w) + (size_t)p->nn * sizeof(uint32_t))) == NULL) {
        dsmp_fail(&p->svc, DSM_ENOMEM, "causal: out of memory waiting for the update of an atomic");
        return;
    }
    w->done = done;
    w->arg = arg;
    w->vc[home] = (uint32_t)stamp;
    w->next = p->acquires;
    p->acquires = w;
}

static const struct dsmp_atomic_ops cau_atomic = {
    .prepare = cau_atomic_prepare,
    .applied = cau_atomic_applied,
    .done = cau_atomic_done,
};

static const struct dsmp_sync_ops cau_sync = {
    .release = cau_release,
    .fill_release = cau_fill_release,
    .lock_released = cau_lock_released,
    .fill_grant = cau_fill_grant,
    .barrier_arrived = cau_barrier_arrived,
    .fill_barrier = cau_fill_barrier,
    .acquired = cau_acquired,
    .fill_free = cau_fill_free,
    .freeing = cau_freeing,
};

const struct dsmp_ops dsmp_causal_ops = {
    .name = "causal",
    .model = DSM_MODEL_CAUSAL,
    .reads_ahead = 1,
    .writes_ahead = 1,
    .create = cau_create,
    .destroy = cau_destroy,
    .fault = cau_fault,
    .message = cau_message,
    .reset = cau_reset,
    .tick = cau_tick,
    .evict = cau_evict,
    .settled = cau_settled,
    .sync = &cau_sync,
    .atomic = &cau_atomic,
};

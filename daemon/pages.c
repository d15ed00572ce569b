/*
 * pages.c - node-level page access, fault coalescing and the local ranks' protections.
 *
 * The protocol decides what this node may do with a page (`access`); this file hands that
 * out to the ranks and takes it back:
 *   - A rank's fault waits on the page's waiter list. Waiters that the node's access
 *     satisfies are granted at once (another rank or thread of this node already brought
 *     the page); otherwise one fault() goes to the protocol for all of them (coalescing),
 *     and `pending` stays set until the protocol's grant().
 *   - A grant may open a run of pages after the faulting one that the node already holds
 *     (run_length: for a channel scanning page by page), in one GRANT and one mprotect;
 *     every page of it is counted as granted, as below.
 *   - Grants to a rank are counted per page. A grant is "unconfirmed" until its channel
 *     carries its next message (a thread sends nothing between receiving a grant and
 *     applying it). A PROTECT of a page with an unconfirmed grant goes alone and carries
 *     the page's grant count: the rank applies it only after its fault handlers have
 *     applied that many grants, so an invalidation never overtakes a grant (the grant's
 *     mprotect would otherwise land after it and leave a stale copy readable).
 *   - Revocations queue per page and run one at a time: every rank that holds more than
 *     the new level gets the change, then done() once every PROTECT_ACK is in. Faults
 *     arriving meanwhile wait and are looked at again when the queue empties.
 *   - Changes travel in bulk: a rank's changes of one loop iteration are gathered into
 *     runs (contiguous pages, one access level, every grant confirmed) and each run is one
 *     PROTECT, one mprotect and one PROTECT_ACK, sent before the loop sleeps
 *     (dsmd_pages_flush). A release or barrier that changes K pages costs messages in the
 *     number of runs, not of pages. A rank acknowledges in order, so the runs awaiting an
 *     ACK are a FIFO per rank.
 *   - A rank takes what open[p] offers without asking (node-local hits, dsm_hits.h, hits.c):
 *     prot[r][p] is shared with the ranks, and every change here that ends an immediate
 *     grant closes open[p] first.
 *
 * Invariant: for every rank r and page p, prot[r][p] <= the node's access to p, except
 * between a revocation's start and its done(), while the PROTECTs are out, and where a hit
 * backed off from a level it had claimed (dsm_hits.h: over-stated, never mapped).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "dsm_log.h"
#include "dsmd.h"

/* PROTECT sequence numbers: even = a run of page revocations, odd = a range op. */
#define SEQ_IS_RANGE(s) ((s) & 1)

struct dsmd_range_op {
    struct dsmd_range_op *next;
    uint64_t id;
    uint64_t first, n;
    int acks;
    uint8_t *awaiting;   /* per local rank: its ACK is still due */
    void (*done)(struct dsmd *d, void *arg);
    void *arg;
};

static void page_kick(struct dsmd *d, uint64_t page);
static void revoke_run(struct dsmd *d, uint64_t page);
static void ranges_drain(struct dsmd *d);
static void timer_ready(void *arg, uint32_t events);

dsm_status_t dsmd_pages_init(struct dsmd *d)
{
    d->pages = calloc(d->npages, sizeof(*d->pages));
    if (d->pages == NULL)
        goto fail;
    d->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (d->timerfd < 0 || dsmd_loop_add(d->loop, d->timerfd, EPOLLIN, timer_ready, d) != DSM_OK) {
        DSM_ERR("timerfd: %s", strerror(errno));
        return DSM_ESYS;
    }
    for (int r = 0; r < d->cfg.local_ranks; r++) {
        d->ranks[r].prot = dsmd_hits_prot_row(d, r);
        d->ranks[r].grants = calloc(d->npages, sizeof(uint32_t));
        d->ranks[r].unconfirmed = calloc(d->npages, 1);
        if (d->ranks[r].prot == NULL || d->ranks[r].grants == NULL || d->ranks[r].unconfirmed == NULL)
            goto fail;
    }
    return DSM_OK;
fail:
    DSM_ERR("out of memory for the page table (%llu pages)", (unsigned long long)d->npages);
    dsmd_pages_fini(d);
    return DSM_ENOMEM;
}

void dsmd_pages_fini(struct dsmd *d)
{
    if (d->pages) {
        for (uint64_t p = 0; p < d->npages; p++) {
            struct dsmd_revoke *r;

            while ((r = d->pages[p].revq) != NULL) {
                d->pages[p].revq = r->next;
                free(r);
            }
        }
    }
    free(d->pages);
    d->pages = NULL;
    if (d->timerfd > 0)
        close(d->timerfd);
    d->timerfd = -1;
    for (int r = 0; d->ranks && r < d->cfg.local_ranks; r++) {
        free(d->ranks[r].grants);
        free(d->ranks[r].unconfirmed);
        free(d->ranks[r].acks);
        d->ranks[r].prot = NULL;
        d->ranks[r].grants = NULL;
        d->ranks[r].unconfirmed = NULL;
        d->ranks[r].acks = NULL;
    }
    while (d->ranges) {
        struct dsmd_range_op *o = d->ranges;

        d->ranges = o->next;
        free(o->arg); /* the daemon ended before the range was cleared: done never runs */
        free(o->awaiting);
        free(o);
    }
}

/* Page q may join a run granted to rk at `access`: the node holds that much, nothing is
 * under way for it (no revocation, fault, waiter, or grant of rk's not yet applied), and rk
 * has less (one mprotect sets the whole run: a write run also upgrades pages rk reads). */
static int run_page_ok(struct dsmd *d, struct dsmd_rank *rk, uint64_t q, int access)
{
    const struct dsmd_page *pg = &d->pages[q];

    return pg->access >= access && pg->revq == NULL && !pg->pending && pg->waiters == NULL &&
           !(pg->cache & DSMD_EVICTING) &&
           dsmd_prot_level(rk, q) < access && rk->unconfirmed[q] == 0 && dsmd_space_home(&d->space, q) >= 0 &&
           !dsmd_direct_claimed(d, q);
}

/*
 * Scan detection, shared by grants ahead and reads ahead: a channel whose faults follow one
 * of its last DSMD_SCANS runs page by page (it faults on the page right after that run) is
 * scanning, and the run it may get doubles with each such fault, up to DSMC_GRANT_RUN_MAX.
 * Several scans are told apart because loops interleave them (jacobi reads one grid and
 * writes the other, row by row). A fault on the page a scan started at repeats that sweep
 * (an iteration's pass over the same array, after the synchronisation that took the pages
 * back) and takes up the length it reached, if it got past that page; a freed range's
 * scans end with it. Any other fault starts a new scan at 1, in place of the one least
 * recently extended. The daemon sees only the faults that reach it, not the thread's hits
 * and direct reads in between, so its scans could take a fault for the next of a run the
 * thread left many faults ago; the thread's own scans see them all (dsm_hits.h), and a
 * FAULT whose hint says that none of them reaches the page extends no scan here either.
 * Reads ahead double on their own: a scan of held pages that runs into
 * pages homed elsewhere (a stencil reaching its neighbour's boundary row) fetches 1, 2,
 * 4... pages, not the length its free local runs reached, which would fetch pages it
 * never reads and that their writer then has to take back.
 */
static struct dsmd_scan *scan_of(struct dsmd_chan *c, uint64_t page)
{
    if (c->hint_page == page && c->hint == 0)
        return NULL; /* the thread's scans, which saw its every fault, reach no further */
    for (int i = 0; i < DSMD_SCANS; i++)
        if (c->scans[i].len > 0 && c->scans[i].next == page)
            return &c->scans[i];
    /* a sweep that repeats one from its first page; a lone fault (len 1) was no sweep, and
     * repeating it (a page read again after its invalidation) extends nothing */
    for (int i = 0; i < DSMD_SCANS; i++)
        if (c->scans[i].len > 1 && c->scans[i].start == page)
            return &c->scans[i];
    return NULL;
}

/* A freed range (dsmd_pages_clear_range) has no access pattern left: the scans whose last
 * page or first page lay in it end, so that the next allocation there starts none. */
static void scans_forget(struct dsmd *d, uint64_t first, uint64_t n)
{
    for (int i = 0; i < d->nchans; i++) {
        struct dsmd_chan *c = d->chans[i];

        for (int j = 0; c != NULL && j < DSMD_SCANS; j++) {
            struct dsmd_scan *s = &c->scans[j];

            if ((s->next > first && s->next <= first + n) || (s->start >= first && s->start < first + n))
                s->len = 0;
        }
    }
}

/* A thread's hits extend its scans without the daemon seeing them: its FAULT says what run
 * its own scan state would give the page (hint), and the longer of the two counts. */
static uint32_t scan_want(struct dsmd_chan *c, uint64_t page)
{
    const struct dsmd_scan *s = scan_of(c, page);
    uint32_t n = dsmc_ramp_next(s != NULL ? s->len : 0);

    return c->hint_page == page && c->hint > n ? c->hint : n;
}

/* The pages a fault on `page` that goes to the protocol may ask for (reads ahead). */
static uint32_t fetch_want(struct dsmd_chan *c, uint64_t page)
{
    const struct dsmd_scan *s = scan_of(c, page);

    return dsmc_ramp_next(s != NULL ? s->fetched : 0);
}

/* The scan a run of n pages from `page`, of length `scan`, extends (or starts). */
static void scan_note(struct dsmd_chan *c, uint64_t page, uint32_t n, uint32_t scan)
{
    struct dsmd_scan *s = scan_of(c, page);

    if (s == NULL) {
        s = &c->scans[0];
        for (int i = 1; i < DSMD_SCANS; i++)
            if (c->scans[i].last < s->last)
                s = &c->scans[i];
    }
    if (s->next != page)
        s->start = page; /* a new scan, or one taken up again from its start */
    s->next = page + n;
    s->len = scan;
    s->fetched = c->asked_page == page ? c->asked : 0;
    s->last = ++c->scan_clock;
    c->asked_page = UINT64_MAX;
    for (int i = 0; i < DSMD_SCANS; i++) /* one scan per next page */
        if (&c->scans[i] != s && c->scans[i].next == s->next)
            c->scans[i].len = 0;
}

/*
 * Grants ahead: how many pages from `page` on one GRANT to c opens: scan_want's length, at
 * most cfg.grant_ahead, of the pages after it this node already holds (the home's own pages,
 * a page another rank of the node fetched, causal's replicas, a protocol's read-ahead): one
 * fault and one mprotect instead of one per page. Pages the node does not hold end the run:
 * fetching them is the protocol's business. *scan_out: the scan's length (GRANT's d).
 */
static uint32_t run_length(struct dsmd *d, struct dsmd_chan *c, struct dsmd_rank *rk, uint64_t page, int access,
                           uint32_t *scan_out)
{
    uint32_t scan = scan_want(c, page), n = 1;
    uint32_t want = scan < (uint32_t)d->cfg.grant_ahead ? scan : (uint32_t)d->cfg.grant_ahead;

    while (n < want && page + n < d->npages && run_page_ok(d, rk, page + n, access))
        n++;
    scan_note(c, page, n, scan);
    *scan_out = scan;
    return n;
}

/* Hand `access` to the rank behind channel c for page (and the run after it, run_length)
 * and count each page's grant as unacknowledged. */
static void grant_rank(struct dsmd *d, struct dsmd_chan *c, uint64_t page, int access)
{
    struct dsmd_rank *rk = dsmd_rank_of(d, c);
    uint32_t scan, n = run_length(d, c, rk, page, access, &scan);
    struct dsmc_msg m = { .op = DSMC_GRANT, .a = page, .b = (uint64_t)access, .c = n, .d = scan };

    dsmd_pages_chan_heard(d, c); /* a channel has at most one request outstanding */
    c->unconfirmed = (int64_t)page;
    c->unconfirmed_n = n;
    rk->c.pages_ahead += n - 1;
    for (uint64_t q = page; q < page + n; q++) {
        dsmd_prot_raise(rk, q, access);
        rk->grants[q]++;
        rk->unconfirmed[q]++;
        if (d->fs != NULL && access == DSM_ACCESS_WRITE)
            dsmd_fs_write_grant(d, q);
    }
    dsmd_chan_send(d, c, &m);
}

void dsmd_pages_chan_heard(struct dsmd *d, struct dsmd_chan *c)
{
    struct dsmd_rank *rk = dsmd_rank_of(d, c);

    for (uint32_t i = 0; c->unconfirmed >= 0 && rk != NULL && i < c->unconfirmed_n; i++)
        rk->unconfirmed[c->unconfirmed + i]--;
    c->unconfirmed = -1;
    c->unconfirmed_n = 0;
}

/* ---- protection changes to a rank, in runs ---- */

/* Send the rank's gathered run, if any, and await its ACK. */
static void protect_send(struct dsmd *d, struct dsmd_rank *rk)
{
    struct dsmd_protect_run *o = &rk->open;
    struct dsmc_msg m = { .op = DSMC_PROTECT, .a = o->first, .b = o->n, .c = (uint64_t)o->access };

    if (o->n == 0)
        return;
    if (rk->acks_len == rk->acks_cap) {
        size_t ncap = rk->acks_cap ? rk->acks_cap * 2 : 64;
        struct dsmd_protect_run *v = malloc(ncap * sizeof(*v));

        if (v == NULL) {
            dsmd_abort(d, DSM_ENOMEM, "out of memory sending protection changes to rank %d", rk->rank);
            return;
        }
        for (size_t i = 0; i < rk->acks_len; i++)
            v[i] = rk->acks[(rk->acks_head + i) % rk->acks_cap];
        free(rk->acks);
        rk->acks = v;
        rk->acks_head = 0;
        rk->acks_cap = ncap;
    }
    o->seq = (++d->protect_seq) << 1;
    o->sent_ns = dsmd_now_ns();
    m.seq = o->seq;
    /* a single page may have a grant in flight: the rank waits for it (dsm_chan.h) */
    m.d = o->n == 1 ? rk->grants[o->first] : 0;
    rk->acks[(rk->acks_head + rk->acks_len++) % rk->acks_cap] = *o;
    rk->protects_sent++;
    rk->protect_pages += o->n;
    rk->c.protects++;
    o->n = 0;
    dsmd_chan_send(d, rk->service, &m);
}

/* Take the rank's access to page down to `access`; `alone` sends it as a PROTECT of its
 * own that waits for the page's grants (a grant not yet applied). 1 if an ACK is awaited. */
static int protect_change(struct dsmd *d, struct dsmd_rank *rk, uint64_t page, int access, int alone)
{
    struct dsmd_protect_run *o = &rk->open;

    if (rk->service == NULL)
        return 0;
    if (o->n > 0 && !alone && o->access == access && page == o->first + o->n &&
        !(o->n == 1 && rk->unconfirmed[o->first] > 0)) {
        o->n++;
        return 1;
    }
    protect_send(d, rk);
    o->first = page;
    o->n = 1;
    o->access = access;
    if (alone)
        protect_send(d, rk);
    return 1;
}

static int protect_add(struct dsmd *d, struct dsmd_rank *rk, uint64_t page, int access)
{
    return protect_change(d, rk, page, access, rk->unconfirmed[page] > 0);
}

static int protect_alone(struct dsmd *d, struct dsmd_rank *rk, uint64_t page, int access)
{
    return protect_change(d, rk, page, access, 1);
}

/* A rank applies a PROTECT as soon as the grants before it are applied, which its own fault
 * handlers do at once: one left unapplied for the peer timeout means the rank is stopped
 * (SIGSTOP, a debugger) or stuck, and the page's revocation, with every fault waiting on it
 * anywhere in the job, with it. */
void dsmd_pages_check_stalls(struct dsmd *d, int64_t now_ns)
{
    for (int i = 0; d->ranks && i < d->cfg.local_ranks && !d->aborting; i++) {
        struct dsmd_rank *rk = &d->ranks[i];
        int64_t quiet;

        if (rk->acks_len == 0)
            continue;
        quiet = now_ns - rk->acks[rk->acks_head].sent_ns;
        if (quiet > d->peer_timeout_ns)
            dsmd_abort_rank(d, rk->rank, "stalled", DSM_ETIMEDOUT,
                       "rank %d has not applied a protection change from its daemon (node %d) for %.1f s "
                       "(%zu waiting): it is stopped or stuck", rk->rank, d->cfg.node, (double)quiet / 1e9,
                       rk->acks_len);
    }
}

void dsmd_pages_flush(struct dsmd *d)
{
    dsmd_direct_flush(d); /* before the ranges: a claim that ends lets one finish */
    if (d->ranges != NULL) {
        ranges_drain(d);
        if (d->land.nsettle > 0) { /* claims the drain found done */
            dsmd_direct_flush(d);
            ranges_drain(d);
        }
    }
    dsmd_cache_pump(d); /* evictions' revocations join this iteration's runs */
    for (int i = 0; d->ranks && i < d->cfg.local_ranks; i++)
        if (d->ranks[i].service != NULL)
            protect_send(d, &d->ranks[i]);
}

/* The oldest run awaiting the rank's ACK is done with (applied, or abandoned at the rank's
 * finalize): count it for each of its pages, whose revocations may finish now. */
static void acks_pop(struct dsmd *d, struct dsmd_rank *rk)
{
    struct dsmd_protect_run o = rk->acks[rk->acks_head];

    rk->acks_head = (rk->acks_head + 1) % rk->acks_cap;
    rk->acks_len--;
    for (uint64_t p = o.first; p < o.first + o.n; p++)
        if (d->pages[p].protect_acks > 0 && --d->pages[p].protect_acks == 0)
            revoke_run(d, p);
}

/* The rank applied the oldest run awaiting its ACK. */
static void protect_acked(struct dsmd *d, struct dsmd_rank *rk, uint64_t seq)
{
    if (rk->acks_len == 0 || rk->acks[rk->acks_head].seq != seq) {
        dsmd_abort(d, DSM_EPROTO, "rank %d acknowledged protection change %llu, which is not the next it was sent",
                   rk->rank, (unsigned long long)seq);
        return;
    }
    acks_pop(d, rk);
    rk->protects_acked++;
}

static void waiter_remove(struct dsmd_page *pg, struct dsmd_chan *c)
{
    for (struct dsmd_chan **pp = &pg->waiters; *pp; pp = &(*pp)->wnext) {
        if (*pp == c) {
            *pp = c->wnext;
            c->wnext = NULL;
            c->waiting = 0;
            return;
        }
    }
}

/* Answer a fault on a page in no allocation: DSM_EINVAL (the rank reports it and ends). */
static void refuse_unallocated(struct dsmd *d, struct dsmd_chan *c, uint64_t page)
{
    struct dsmc_msg m = { .op = DSMC_GRANT, .status = DSM_EINVAL, .a = page };

    snprintf(m.text, sizeof(m.text), "access to global memory that is not allocated");
    dsmd_chan_send(d, c, &m);
}

/* Grant what the node's access allows; ask the protocol for the rest (once). */
static void page_kick(struct dsmd *d, uint64_t page)
{
    struct dsmd_page *pg = &d->pages[page];
    struct dsmd_chan *c, *next, *asker = NULL;
    int need = DSM_ACCESS_NONE, origin = -1, home;
    uint32_t ahead = 1;

    dsmd_hits_sync(d, page);
    if (pg->revq != NULL || pg->clearing || (pg->cache & DSMD_EVICTING))
        return; /* looked at again when the revocations are done, the range is cleared, or the
                 * eviction is done */
    if (dsmd_direct_park(d, page))
        return; /* a rank reads it from its home (direct.c): kicked again when that ends */
    home = dsmd_space_home(&d->space, page);
    if (home == DSMD_HOME_UNDECIDED) {
        if (pg->waiters != NULL)
            dsmd_ft_wait(d, page, NULL, NULL); /* kicked again once the home is known (F3) */
        return;
    }
    if (home == DSMD_NO_HOME) { /* freed while they waited */
        while ((c = pg->waiters) != NULL) {
            waiter_remove(pg, c);
            refuse_unallocated(d, c, page);
        }
        return;
    }
    for (c = pg->waiters; c != NULL; c = next) {
        next = c->wnext;
        if (c->wait_access <= pg->access) {
            waiter_remove(pg, c);
            grant_rank(d, c, page, c->wait_access);
        } else if (c->wait_access > need) {
            need = c->wait_access;
            origin = d->ranks[c->lrank].rank;
            asker = c;
        }
    }
    if (need != DSM_ACCESS_NONE && !pg->pending) {
        /* what comes ahead: a fault that fetches follows its scan's fetch ramp, within what
         * one PAGE carries (DSM_READ_AHEAD); a write to a held page (writes ahead: the held
         * pages after it made writable too, for the grant's run) the scan's own length,
         * within the runs a grant may open (DSM_GRANT_AHEAD), and needs no frame or message */
        int fetches = pg->access == DSM_ACCESS_NONE;
        int ok = need == DSM_ACCESS_READ || fetches ? d->pops->reads_ahead : d->pops->writes_ahead;
        uint32_t budget;

        ahead = !ok ? 1 : fetches ? fetch_want(asker, page) : scan_want(asker, page);
        if (fetches && ahead > (uint32_t)d->cfg.read_ahead)
            ahead = (uint32_t)d->cfg.read_ahead;
        if (!fetches && ahead > (uint32_t)d->cfg.grant_ahead)
            ahead = (uint32_t)d->cfg.grant_ahead;
        budget = fetches ? ahead : 1;
        if (!dsmd_cache_admit(d, page, &budget))
            return; /* waits for a frame (cache.c) */
        if (fetches)
            ahead = budget;
        asker->asked_page = page;
        asker->asked = fetches ? ahead : 0;
        pg->pending = 1;
        d->faults_inflight++;
        if (d->trace != NULL)
            dsmd_trace_fetch_start(d, page);
        d->pops->fault(d->p, page, need, origin, ahead);
    }
}

void dsmd_pages_kick(struct dsmd *d, uint64_t page)
{
    if (page < d->npages)
        page_kick(d, page);
}

void dsmd_pages_landed(struct dsmd *d, uint64_t page)
{
    if (d->pages[page].revq != NULL)
        revoke_run(d, page); /* which kicks the page when they are done */
    else
        page_kick(d, page);
}

void dsmd_pages_fault(struct dsmd *d, struct dsmd_chan *c, uint64_t page, int write, uint64_t hint)
{
    struct dsmd_page *pg;
    struct dsmd_rank *rk = dsmd_rank_of(d, c);

    c->hint_page = page;
    c->hint = hint < DSMC_GRANT_RUN_MAX ? (uint32_t)hint : DSMC_GRANT_RUN_MAX;

    if (page >= d->npages || dsmd_space_home(&d->space, page) == DSMD_NO_HOME) {
        DSM_WARN("rank %d touched page %llu, which is not allocated", rk->rank, (unsigned long long)page);
        refuse_unallocated(d, c, page);
        return;
    }
    if (write)
        rk->c.write_faults++;
    else
        rk->c.read_faults++;
    if (d->hot != NULL)
        dsmd_hot_fault(d, rk->rank, page, write);
    dsmd_cache_touched(d, page);
    dsmd_direct_settle(d, page); /* a direct read of it that is over ends first */
    pg = &d->pages[page];
    c->waiting = 1;
    c->wait_page = page;
    c->wait_access = write ? DSM_ACCESS_WRITE : DSM_ACCESS_READ;
    c->wnext = pg->waiters;
    pg->waiters = c;
    page_kick(d, page);
}

/* Start the head revocation of a page if it can start; finish it if nothing is out. */
static void revoke_run(struct dsmd *d, uint64_t page)
{
    struct dsmd_page *pg = &d->pages[page];
    struct dsmd_revoke *r;

    while ((r = pg->revq) != NULL) {
        if (!r->started) {
            /* a rank's direct read of the page lands first: the revocation then takes it
             * back too (dsmd_pages_landed comes back here) */
            if (dsmd_direct_park(d, page))
                return;
            r->started = 1;
            r->t0 = d->trace != NULL ? dsmd_now_ns() : 0;
            for (int i = 0; i < d->cfg.local_ranks; i++) {
                struct dsmd_rank *rk = &d->ranks[i];

                if (!dsmd_prot_lower(rk, page, r->access))
                    continue; /* open[page] is closed (svc_revoke): no hit can raise it unseen */
                if (r->access == DSM_ACCESS_NONE) {
                    rk->c.invalidations++;
                    if (d->hot != NULL)
                        dsmd_hot_inval(d, page);
                }
                pg->protect_acks += (uint16_t)protect_add(d, rk, page, r->access);
            }
        }
        if (pg->protect_acks > 0)
            return; /* dsmd_pages_protect_ack() comes back here */
        pg->revq = r->next;
        if (d->fs != NULL)
            dsmd_fs_revoked(d, page, r->access);
        if (d->trace != NULL)
            dsmd_trace_revoke(d, page, r->access, r->t0);
        r->done(d->p, r->arg);
        free(r);
    }
    page_kick(d, page);
}

/* Every rank of a range op is at NONE and the protocol has nothing in flight for the range:
 * zero the frames, reset, and let the range's waiters go on. */
static void range_finish(struct dsmd *d, struct dsmd_range_op *o)
{
    /* punching gives the memory back and makes the frames read as zeroes; but where
     * the transport pinned the frames for its device (RDMA), the NIC would go on
     * writing the punched-out pages: zero them in place there */
    dsmd_pages_zero(d, o->first, o->n);
    for (uint64_t p = o->first; p < o->first + o->n; p++)
        d->pages[p].clearing = 0;
    o->done(d, o->arg); /* the protocol's reset() may raise the home's access now */
    dsmd_direct_reset(d, o->first, o->n);
    for (uint64_t p = o->first; p < o->first + o->n && !d->aborting; p++) {
        if (d->pages[p].waiters != NULL)
            page_kick(d, p); /* which syncs open[p] too */
        else
            dsmd_hits_sync(d, p); /* open again, or freed (NO_HOME): closed for good */
    }
    free(o->awaiting);
    free(o);
}

int dsmd_pages_punch(struct dsmd *d, uint64_t first, uint64_t n)
{
    if (d->tops != NULL && (d->tops->flags & DSMT_PINS_FRAMES))
        return 1;
    if (fallocate(d->memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)(first * d->page_size),
                  (off_t)(n * d->page_size)) < 0) {
        DSM_WARN("giving frames back: fallocate: %s", strerror(errno));
        return -1;
    }
    return 0;
}

void dsmd_pages_zero(struct dsmd *d, uint64_t first, uint64_t n)
{
    if (dsmd_pages_punch(d, first, n) != 0) /* pinned, or the punch failed: zero in place */
        memset(d->frames + first * d->page_size, 0, n * d->page_size);
}

/* The protocol's exchanges on the range are over (dsmp.h settled): nothing can land in its
 * frames any more. Without the hook, at once. */
static int range_settled(struct dsmd *d, const struct dsmd_range_op *o)
{
    /* a rank's direct read still writing its frame counts as an exchange in flight */
    return (d->pops->settled == NULL || d->pops->settled(d->p, o->first, o->n)) &&
           !dsmd_direct_range_claimed(d, o->first, o->n);
}

/* One ACK of range op `seq`: from local rank lrank, or (-1) the op's own hold. */
static void range_ack(struct dsmd *d, uint64_t seq, int lrank)
{
    for (struct dsmd_range_op **pp = &d->ranges; *pp; pp = &(*pp)->next) {
        struct dsmd_range_op *o = *pp;

        if (o->id != seq)
            continue;
        if (lrank >= 0) {
            if (!o->awaiting[lrank])
                break;
            o->awaiting[lrank] = 0;
        }
        if (--o->acks == 0 && range_settled(d, o)) {
            *pp = o->next;
            range_finish(d, o);
        }
        return;
    }
    dsmd_abort(d, DSM_EPROTO, "a rank of node %d acknowledged a range protection change it was not sent (%llu)",
               d->cfg.node, (unsigned long long)seq);
}

/* Ranges whose ranks are all at NONE but whose protocol exchanges (an eviction's) were still
 * in flight: finish those that have settled (before the loop sleeps). */
static void ranges_drain(struct dsmd *d)
{
    for (struct dsmd_range_op **pp = &d->ranges; *pp && !d->aborting;) {
        struct dsmd_range_op *o = *pp;

        if (o->acks == 0 && range_settled(d, o)) {
            *pp = o->next;
            range_finish(d, o);
            pp = &d->ranges; /* range_finish may have changed the list */
        } else {
            /* a direct read still standing in the range: ask its rank to say when it is
             * done (or end it at the next flush if it is) */
            for (uint64_t p = o->first; o->acks == 0 && p < o->first + o->n; p++)
                (void)dsmd_direct_park(d, p);
            pp = &o->next;
        }
    }
}

void dsmd_pages_protect_ack(struct dsmd *d, struct dsmd_chan *c, uint64_t seq)
{
    if (SEQ_IS_RANGE(seq)) {
        dsmd_rank_of(d, c)->protects_acked++;
        range_ack(d, seq, c->lrank);
    } else
        protect_acked(d, dsmd_rank_of(d, c), seq);
}

void dsmd_pages_chan_gone(struct dsmd *d, struct dsmd_chan *c)
{
    struct dsmd_rank *rk = dsmd_rank_of(d, c);

    dsmd_pages_chan_heard(d, c);
    if (c->waiting)
        waiter_remove(&d->pages[c->wait_page], c);
    if (rk == NULL || c->kind != CHAN_SERVICE)
        return;
    /* the rank has finalized (or the job is failing): it touches the space no more, so
     * what it was asked to give up counts as given up (not as acknowledged) */
    rk->service = NULL;
    rk->open.n = 0;
    for (struct dsmd_range_op *o = d->ranges, *next; o != NULL && !d->aborting; o = next) {
        next = o->next; /* range_ack may free o */
        if (o->awaiting[c->lrank]) {
            rk->protects_abandoned++;
            range_ack(d, o->id, c->lrank);
        }
    }
    while (rk->acks_len > 0 && !d->aborting) {
        acks_pop(d, rk);
        rk->protects_abandoned++;
    }
    rk->acks_len = 0;
}

/* A range's ranks are all at NONE: zero the frames and reset the pages' state. */
static void range_reset(struct dsmd *d, struct dsmd_range_op *o)
{
    for (uint64_t p = o->first; p < o->first + o->n; p++) {
        /* close the door first: after that no claim can start; one that stands has its
         * grant counted now, so the range's PROTECT waits for its mprotect */
        if (dsmd_hits_close_door(d, p))
            dsmd_direct_count_ahead(d, p);
        d->pages[p].access = DSM_ACCESS_NONE;
        d->pages[p].clearing = 1;
        dsmd_hits_close(d, p);
        if (d->pages[p].pending) {
            d->pages[p].pending = 0;
            d->faults_inflight--;
        }
    }
    dsmd_cache_cleared(d, o->first, o->n);
    dsmd_fs_reset(d, o->first, o->n);
    scans_forget(d, o->first, o->n);
}

void dsmd_pages_clear_range(struct dsmd *d, uint64_t first, uint64_t n,
                            void (*done)(struct dsmd *d, void *arg), void *arg)
{
    struct dsmd_range_op *o = calloc(1, sizeof(*o));

    if (o != NULL && (o->awaiting = calloc((size_t)(d->cfg.local_ranks ? d->cfg.local_ranks : 1), 1)) == NULL) {
        free(o);
        o = NULL;
    }
    if (o == NULL) {
        dsmd_abort(d, DSM_ENOMEM, "out of memory freeing a region");
        return;
    }
    o->id = ((++d->protect_seq) << 1) | 1;
    o->first = first;
    o->n = n;
    o->done = done;
    o->arg = arg;
    o->acks = 1; /* held while the PROTECTs go out */
    o->next = d->ranges;
    d->ranges = o;
    range_reset(d, o);
    for (int i = 0; i < d->cfg.local_ranks; i++) {
        struct dsmd_rank *rk = &d->ranks[i];
        struct dsmc_msg m = { .op = DSMC_PROTECT, .seq = o->id, .a = first, .b = n, .c = DSM_ACCESS_NONE,
                              .d = n == 1 ? rk->grants[first] : 0 };

        /* a grant not yet applied (a run reaching into the range: the rank never touched
         * it) would land after the range's mprotect: each such page first goes alone, held
         * back by the rank until that grant is applied (dsm_chan.h) */
        for (uint64_t p = first; rk->service != NULL && p < first + n; p++)
            if (rk->unconfirmed[p] > 0 || dsmd_direct_claimant(d, p) == i)
                (void)protect_alone(d, rk, p, DSM_ACCESS_NONE);
        dsmd_prot_reset(rk, first, n);
        if (rk->service == NULL)
            continue;
        protect_send(d, rk); /* in order behind what was gathered before */
        rk->protects_sent++;
        rk->c.protects++;
        if (dsmd_chan_send(d, rk->service, &m) == DSM_OK) {
            o->acks++;
            o->awaiting[i] = 1;
        }
    }
    range_ack(d, o->id, -1);
}

/* ---- services lent to the protocol ---- */

static int svc_home(void *ctx, uint64_t page)
{
    struct dsmd *d = ctx;

    return dsmd_space_home(&d->space, page);
}

static uint64_t svc_alloc_end(void *ctx, uint64_t page)
{
    return dsmd_alloc_end(ctx, page);
}

static void *svc_frame(void *ctx, uint64_t page)
{
    struct dsmd *d = ctx;

    return d->frames + page * d->page_size;
}

static dsm_status_t svc_send(void *ctx, int node, dsmw_msg_t *m, uint64_t attach)
{
    return dsmd_send(ctx, node, m, attach);
}

/*
 * While a range is being cleared (its PROTECTs out, its frames not yet zeroed), a protocol
 * may still hand out its pages: a reply that left the home before the home saw the free (a
 * page read ahead next to a scanned block). The access such a grant gives is not raised: the
 * pages are about to be zeroed and reset, and a rank given access now would keep it past the
 * reset (stale data nobody invalidates).
 */
static void svc_grant(void *ctx, uint64_t page, int access)
{
    struct dsmd *d = ctx;

    if (!d->pages[page].clearing) {
        d->pages[page].access = (uint8_t)access;
        if (access != DSM_ACCESS_NONE)
            dsmd_cache_opened(d, page);
    }
    if (d->pages[page].pending) {
        d->pages[page].pending = 0;
        d->faults_inflight--;
        dsmd_cache_granted(d, page);
        if (d->trace != NULL)
            dsmd_trace_fetch_done(d, page, access);
    }
    page_kick(d, page);
}

static void svc_set_access(void *ctx, uint64_t page, int access)
{
    struct dsmd *d = ctx;

    if (d->pages[page].clearing)
        return; /* see svc_grant */
    d->pages[page].access = (uint8_t)access;
    if (access != DSM_ACCESS_NONE)
        dsmd_cache_opened(d, page);
    dsmd_hits_sync(d, page);
}

static void svc_revoke(void *ctx, uint64_t page, int access, dsmp_done_fn done, void *arg)
{
    struct dsmd *d = ctx;
    struct dsmd_page *pg = &d->pages[page];
    struct dsmd_revoke *r = calloc(1, sizeof(*r)), **tail;

    if (r == NULL) {
        dsmd_abort(d, DSM_ENOMEM, "out of memory revoking page %llu", (unsigned long long)page);
        return;
    }
    if (pg->access > access)
        pg->access = (uint8_t)access;
    dsmd_hits_close(d, page); /* before revoke_run reads the ranks' prot (dsm_hits.h) */
    if (access == DSM_ACCESS_NONE)
        dsmd_cache_invalidated(d, page);
    r->access = access;
    r->done = done;
    r->arg = arg;
    for (tail = &pg->revq; *tail; tail = &(*tail)->next)
        ;
    *tail = r;
    if (pg->revq == r)
        revoke_run(d, page);
}

/* The model asks for page on its own (a page read ahead): close the door first. */
static int svc_take(void *ctx, uint64_t page)
{
    return !dsmd_hits_close_door(ctx, page);
}

static int svc_claimed(void *ctx, uint64_t page)
{
    return dsmd_direct_claimed(ctx, page);
}

static void svc_sync(void *ctx, uint64_t page)
{
    dsmd_hits_sync(ctx, page);
}

static int svc_mapped(void *ctx, uint64_t page)
{
    struct dsmd *d = ctx;

    for (int i = 0; i < d->cfg.local_ranks; i++)
        if (dsmd_prot_level(&d->ranks[i], page) != DSM_ACCESS_NONE)
            return 1;
    return 0;
}

static void timer_ready(void *arg, uint32_t events)
{
    struct dsmd *d = arg;
    uint64_t n;

    (void)events;
    if (read(d->timerfd, &n, sizeof(n)) == (ssize_t)sizeof(n) && d->pops->tick && !d->aborting)
        d->pops->tick(d->p);
}

static void svc_timer(void *ctx, uint64_t us)
{
    struct dsmd *d = ctx;
    struct itimerspec its = { .it_value = { .tv_sec = (time_t)(us / 1000000), .tv_nsec = (long)(us % 1000000) * 1000 } };

    if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0)
        its.it_value.tv_nsec = 1;
    if (timerfd_settime(d->timerfd, 0, &its, NULL) < 0)
        DSM_ERR("timerfd_settime: %s", strerror(errno));
}

static void svc_count(void *ctx, int origin, enum dsmp_counter c, uint64_t n)
{
    struct dsmd_counters *k = dsmd_counters_for(ctx, origin);

    switch (c) {
    case DSMP_PAGES_FETCHED:  k->pages_fetched += n; break;
    case DSMP_DIFFS:          k->diffs += n; break;
    case DSMP_WRITE_NOTICES:  k->write_notices += n; break;
    case DSMP_PAGES_READ_AHEAD: k->pages_read_ahead += n; break;
    case DSMP_WRITEBACKS:     k->writebacks += n; break;
    case DSMP_PAGES_FETCHED_AGAIN: k->pages_fetched_again += n; break;
    }
}

static void svc_fail(void *ctx, dsm_status_t st, const char *why)
{
    dsmd_abort(ctx, st, "%s", why);
}

static void svc_applying(void *ctx, uint64_t page, int src, const uint8_t *diff, size_t len)
{
    dsmd_fs_applying(ctx, page, src, diff, len);
}

void dsmd_pages_services(struct dsmd *d, struct dsmp_services *svc)
{
    memset(svc, 0, sizeof(*svc));
    svc->ctx = d;
    svc->self = d->cfg.node;
    svc->any_rank = d->cfg.first_rank;
    svc->nnodes = d->cfg.nnodes;
    svc->npages = d->npages;
    svc->page_size = d->page_size;
    svc->partial = d->cfg.cache_size > 0 || d->cfg.memory_nodes > 0;
    svc->home = svc_home;
    svc->alloc_end = svc_alloc_end;
    svc->frame = svc_frame;
    svc->send = svc_send;
    svc->grant = svc_grant;
    svc->set_access = svc_set_access;
    svc->revoke = svc_revoke;
    svc->count = svc_count;
    svc->timer = svc_timer;
    svc->fail = svc_fail;
    svc->applying = d->cfg.false_sharing ? svc_applying : NULL;
    svc->take = svc_take;
    svc->claimed = svc_claimed;
    svc->sync = svc_sync;
    svc->mapped = svc_mapped;
}

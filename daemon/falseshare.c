/*
 * falseshare.c - the false-sharing diagnosis of dsmrun --false-sharing: pages that several
 * nodes write between the same two barriers at disjoint bytes.
 *
 * Each page's home collects, per barrier epoch (the window), which bytes each node wrote:
 *   - another node's writes under release and causal: the diffs the protocol applies at
 *     the home (svc->applying, called before the frame changes);
 *   - the home's own writes, and every node's writes under sequential (whose single writer
 *     makes no diffs): this module twins the page when the node's first rank gets write
 *     access and diffs it when that access is revoked (every rank's PROTECT applied, so the
 *     frame holds all of them) and when the node arrives at a barrier (its ranks are all in
 *     it; the twin is taken again), so a window's writes are never counted in a later one;
 *     a node that is not the home sends the bytes, with its window, in FS_WROTE;
 *   - before the protocol applies a diff to a twinned frame, the node's own writes so far
 *     are recorded and the twin taken again, then patched like the frame: the twin's next
 *     diff holds only this node's later writes (a byte both wrote counts for both).
 * Atomics performed at a home on a twinned page count as the home's writes. Writes after
 * the last barrier count when the node arrives at dsm_finalize's exchange.
 * When a page's window closes with two or more writers, it counts as falsely shared if
 * their bytes are pairwise disjoint, and as truly shared otherwise. The first falsely
 * shared window's byte ranges are kept for the report.
 *
 * Records can arrive a window late: an FS_WROTE races the barrier release that another
 * path brings to the home, and a protocol's diff is applied when it arrives (its window is
 * then the home's). So two windows stay open per page; a record of a newer one closes the
 * older, a record older than both is counted late and otherwise ignored, and the job's end
 * closes both.
 *
 * Output lines (after STATS), at the home, for pages with a window of several writers:
 *   FS <page> <false_windows> <true_windows> <late> <node>:<ranks>:<ranges> ...
 * (ranks: hex mask of the node's writing ranks < 64 where known, 0 otherwise; ranges of
 * the first falsely shared window as lo-hi byte offsets, comma-separated, at most 8).
 * The diagnosis costs a twin and a diff per written page and window, and under sequential
 * one message per transfer of a written page: it is off unless asked for.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diff.h"
#include "dsm_log.h"
#include "dsmd.h"

#define FS_WRITERS 8     /* writers tracked per page and window; more are counted */
#define FS_RANGES  8     /* ranges printed per writer */

struct fs_writer {
    int      node;
    uint64_t ranks;
    uint8_t *bits;       /* page_size bits: the bytes it wrote in the window */
};

struct fs_window {
    uint64_t window;
    int      open, nw, more;
    struct fs_writer w[FS_WRITERS];
};

struct fs_page {
    struct fs_window win[2];
    uint32_t false_windows, true_windows, late;
    char    *example;    /* the first falsely shared window, as printed */
};

struct dsmd_fs {
    uint8_t **twin;      /* per page: this node's twin while its ranks may write */
    uint64_t *twinned;   /* pages that may have a twin (some may have lost it since) */
    uint8_t  *listed;    /* per page: in twinned */
    size_t   ntwinned, captwinned;
    struct fs_page **pg; /* per page, at its home: the windows seen */
    uint8_t *diff;       /* scratch: dsmp_diff_max(page_size) */
    uint8_t *others;     /* scratch: page_size bits */
};

dsm_status_t dsmd_fs_init(struct dsmd *d)
{
    struct dsmd_fs *f;

    if (!d->cfg.false_sharing)
        return DSM_OK;
    if ((f = calloc(1, sizeof(*f))) == NULL)
        return DSM_ENOMEM;
    d->fs = f;
    f->twin = calloc(d->npages, sizeof(*f->twin));
    f->listed = calloc(d->npages, 1);
    f->pg = calloc(d->npages, sizeof(*f->pg));
    f->diff = malloc(dsmp_diff_max(d->page_size));
    f->others = malloc(d->page_size / 8);
    if (f->twin == NULL || f->listed == NULL || f->pg == NULL || f->diff == NULL || f->others == NULL) {
        dsmd_fs_fini(d);
        return DSM_ENOMEM;
    }
    return DSM_OK;
}

static void fs_page_free(struct fs_page *p)
{
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < FS_WRITERS; i++)
            free(p->win[k].w[i].bits);
    free(p->example);
    free(p);
}

void dsmd_fs_fini(struct dsmd *d)
{
    struct dsmd_fs *f = d->fs;

    if (f == NULL)
        return;
    for (uint64_t p = 0; p < d->npages; p++) {
        if (f->twin && f->twin[p])
            free(f->twin[p]);
        if (f->pg && f->pg[p])
            fs_page_free(f->pg[p]);
    }
    free(f->twin);
    free(f->twinned);
    free(f->listed);
    free(f->pg);
    free(f->diff);
    free(f->others);
    free(f);
    d->fs = NULL;
}

static int bit(const uint8_t *bits, size_t i)
{
    return bits[i / 8] >> (i % 8) & 1;
}

/* The ranges of `bits` as "lo-hi,..." into out (at most FS_RANGES, then "+N"). A gap that
 * no byte of `others` falls in joins its neighbours: a diff omits bytes rewritten with the
 * value they had, and the report is about where writers meet, not about those. */
static void ranges_text(const uint8_t *bits, const uint8_t *others, size_t nbits, char *out, size_t cap)
{
    size_t len = 0, shown = 0, more = 0;

    out[0] = '\0';
    for (size_t i = 0; i < nbits;) {
        size_t j = i, k;

        if (!bit(bits, i)) {
            i++;
            continue;
        }
        for (;;) {
            while (j < nbits && bit(bits, j))
                j++;
            for (k = j; k < nbits && !bit(bits, k) && !bit(others, k); k++)
                ;
            if (k < nbits && k > j && bit(bits, k))
                j = k; /* a gap nobody else wrote in */
            else
                break;
        }
        if (shown < FS_RANGES && len < cap) {
            len += (size_t)snprintf(out + len, cap - len, "%s%zu-%zu", shown ? "," : "", i, j - 1);
            shown++;
        } else {
            more++;
        }
        i = j;
    }
    if (more && len < cap)
        snprintf(out + len, cap - len, ",+%zu", more);
}

/* Close window p->win[k]: false if its writers' bytes are pairwise disjoint, true otherwise. */
static void window_close(struct dsmd *d, struct fs_page *pg, int k)
{
    struct fs_window *p = &pg->win[k];
    size_t nbytes = d->page_size / 8;
    int disjoint = 1;

    if (p->nw >= 2) {
        for (int i = 0; i < p->nw && disjoint; i++)
            for (int j = i + 1; j < p->nw && disjoint; j++)
                for (size_t b = 0; b < nbytes; b++)
                    if (p->w[i].bits[b] & p->w[j].bits[b]) {
                        disjoint = 0;
                        break;
                    }
        if (!disjoint) {
            pg->true_windows++;
        } else if (pg->false_windows++ == 0) {
            size_t cap = (size_t)p->nw * (40 + FS_RANGES * 12), len = 0;

            if ((pg->example = malloc(cap)) != NULL) {
                for (int i = 0; i < p->nw; i++) {
                    char r[FS_RANGES * 12 + 16];
                    int n;

                    memset(d->fs->others, 0, nbytes);
                    for (int j = 0; j < p->nw; j++)
                        for (size_t b = 0; j != i && b < nbytes; b++)
                            d->fs->others[b] |= p->w[j].bits[b];
                    ranges_text(p->w[i].bits, d->fs->others, d->page_size, r, sizeof(r));
                    n = snprintf(pg->example + len, cap - len, "%s%d:%llx:%s", i ? " " : "", p->w[i].node,
                                 (unsigned long long)p->w[i].ranks, r);
                    if (n < 0 || (size_t)n >= cap - len)
                        break; /* cut short: it stays a valid, shorter list */
                    len += (size_t)n;
                }
            }
        }
    }
    p->nw = 0;
    p->more = 0;
    p->open = 0;
}

/* The open window of pg for `window`, opening it (and closing the older of the two) when
 * it is newer than both; NULL when it is older than both (late). */
static struct fs_window *window_for(struct dsmd *d, struct fs_page *pg, uint64_t window)
{
    int old;

    for (int k = 0; k < 2; k++)
        if (pg->win[k].open && pg->win[k].window == window)
            return &pg->win[k];
    for (int k = 0; k < 2; k++)
        if (pg->win[k].open && pg->win[k].window > window && pg->win[!k].open && pg->win[!k].window > window)
            return NULL;
    old = !pg->win[0].open ? 0 : !pg->win[1].open ? 1 : pg->win[0].window < pg->win[1].window ? 0 : 1;
    if (pg->win[old].open && pg->win[!old].open && pg->win[old].window > window)
        return NULL;
    if (pg->win[old].open)
        window_close(d, pg, old);
    pg->win[old].open = 1;
    pg->win[old].window = window;
    return &pg->win[old];
}

/* Close pg's open windows, older first. */
static void windows_close(struct dsmd *d, struct fs_page *pg)
{
    int first = pg->win[0].window <= pg->win[1].window ? 0 : 1;

    window_close(d, pg, first);
    window_close(d, pg, !first);
}

/* At the home: `node` wrote the bytes of diff (len bytes, dsmp_diff encoding) of page in
 * window `window`. DSM_EPROTO for a malformed diff. */
static dsm_status_t fs_record(struct dsmd *d, uint64_t page, int node, uint64_t window, uint64_t ranks,
                              const uint8_t *diff, size_t len)
{
    struct dsmd_fs *f = d->fs;
    struct fs_page *pg = f->pg[page];
    struct fs_window *p;
    struct fs_writer *w = NULL;
    size_t off, n;

    if (dsmp_diff_check(diff, len, d->page_size) != DSM_OK)
        return DSM_EPROTO; /* before any state changes */
    if (pg == NULL && (pg = f->pg[page] = calloc(1, sizeof(*pg))) == NULL)
        return DSM_ENOMEM;
    if ((p = window_for(d, pg, window)) == NULL) {
        pg->late++;
        return DSM_OK;
    }
    for (int i = 0; i < p->nw && w == NULL; i++)
        if (p->w[i].node == node)
            w = &p->w[i];
    if (w == NULL) {
        if (p->nw == FS_WRITERS) {
            p->more++;
            return DSM_OK;
        }
        w = &p->w[p->nw];
        if (w->bits == NULL && (w->bits = malloc(d->page_size / 8)) == NULL)
            return DSM_ENOMEM;
        memset(w->bits, 0, d->page_size / 8);
        w->node = node;
        w->ranks = 0;
        p->nw++;
    }
    w->ranks |= ranks;
    for (size_t i = 0; i < len;) {
        i = dsmp_diff_run(diff, i, &off, &n);
        for (size_t b = off; b < off + n; b++)
            w->bits[b / 8] |= (uint8_t)(1u << (b % 8));
    }
    return DSM_OK;
}

static int fs_twins_here(struct dsmd *d, uint64_t page)
{
    return d->pops->model == DSM_MODEL_SEQUENTIAL || dsmd_space_home(&d->space, page) == d->cfg.node;
}

void dsmd_fs_write_grant(struct dsmd *d, uint64_t page)
{
    struct dsmd_fs *f = d->fs;

    if (f->twin[page] != NULL || !fs_twins_here(d, page))
        return;
    if (!f->listed[page] && f->ntwinned == f->captwinned) {
        size_t cap = f->captwinned ? f->captwinned * 2 : 256;
        uint64_t *n = realloc(f->twinned, cap * sizeof(*n));

        if (n == NULL) {
            DSM_WARN("out of memory twinning page %llu for --false-sharing: its writes go undiagnosed",
                     (unsigned long long)page);
            return;
        }
        f->twinned = n;
        f->captwinned = cap;
    }
    if ((f->twin[page] = malloc(d->page_size)) == NULL) {
        DSM_WARN("out of memory twinning page %llu for --false-sharing: its writes go undiagnosed",
                 (unsigned long long)page);
        return;
    }
    memcpy(f->twin[page], d->frames + page * d->page_size, d->page_size);
    if (!f->listed[page]) {
        f->listed[page] = 1;
        f->twinned[f->ntwinned++] = page;
    }
}

/* This node's writes to page since its twin (in f->diff, len bytes) go to the page's home
 * as the current window's. */
static void deliver(struct dsmd *d, uint64_t page, size_t len)
{
    struct dsmd_fs *f = d->fs;
    int home = dsmd_space_home(&d->space, page);
    uint64_t window = dsmd_sync_barriers(d), ranks = dsmd_hot_writers(d, page);

    if (len == 0 || home < 0)
        return;
    if (home == d->cfg.node) {
        if (fs_record(d, page, home, window, ranks, f->diff, len) == DSM_ENOMEM)
            DSM_WARN("out of memory diagnosing page %llu for --false-sharing", (unsigned long long)page);
    } else {
        dsmw_msg_t m;

        dsmw_init(&m, DSMW__TYPE__FS_WROTE);
        m.page = page;
        m.epoch = window;
        m.count = ranks;
        m.origin = (uint32_t)d->cfg.first_rank;
        m.data.data = f->diff;
        m.data.len = len;
        (void)dsmd_send(d, home, &m, DSMT_NO_PAGE); /* a lost home fails the job there */
    }
}

void dsmd_fs_revoked(struct dsmd *d, uint64_t page, int access)
{
    struct dsmd_fs *f = d->fs;
    size_t len;

    if (f->twin[page] == NULL || access == DSM_ACCESS_WRITE)
        return;
    len = dsmp_diff_make(d->frames + page * d->page_size, f->twin[page], d->page_size, f->diff);
    free(f->twin[page]);
    f->twin[page] = NULL;
    deliver(d, page, len);
}

void dsmd_fs_window_end(struct dsmd *d)
{
    struct dsmd_fs *f = d->fs;
    size_t kept = 0;

    for (size_t i = 0; i < f->ntwinned; i++) {
        uint64_t page = f->twinned[i];
        uint8_t *frame = d->frames + page * d->page_size;

        if (f->twin[page] == NULL) {
            f->listed[page] = 0; /* revoked since */
            continue;
        }
        deliver(d, page, dsmp_diff_make(frame, f->twin[page], d->page_size, f->diff));
        memcpy(f->twin[page], frame, d->page_size);
        f->twinned[kept++] = page;
    }
    f->ntwinned = kept;
}

void dsmd_fs_applying(struct dsmd *d, uint64_t page, int src, const uint8_t *diff, size_t len)
{
    struct dsmd_fs *f = d->fs;
    uint8_t *frame = d->frames + page * d->page_size;

    if (f == NULL || page >= d->npages || len == 0)
        return;
    if (f->twin[page] != NULL) {
        deliver(d, page, dsmp_diff_make(frame, f->twin[page], d->page_size, f->diff));
        memcpy(f->twin[page], frame, d->page_size);
        (void)dsmp_diff_apply(f->twin[page], NULL, d->page_size, diff, len); /* malformed: nothing written */
    }
    if (src != d->cfg.node && dsmd_space_home(&d->space, page) == d->cfg.node &&
        fs_record(d, page, src, dsmd_sync_barriers(d), 0, diff, len) == DSM_ENOMEM)
        DSM_WARN("out of memory diagnosing page %llu for --false-sharing", (unsigned long long)page);
}

dsm_status_t dsmd_fs_message(struct dsmd *d, int src, const dsmw_msg_t *m)
{
    dsm_status_t st;

    if (d->fs == NULL || m->data.len == 0)
        return DSM_EPROTO;
    if (dsmd_space_home(&d->space, m->page) != d->cfg.node)
        return DSM_OK; /* freed (or reallocated elsewhere) while it travelled: a stale diagnosis */
    st = fs_record(d, m->page, src, m->epoch, m->count, m->data.data, m->data.len);
    if (st == DSM_ENOMEM) {
        DSM_WARN("out of memory diagnosing page %llu for --false-sharing", (unsigned long long)m->page);
        return DSM_OK;
    }
    return st;
}

void dsmd_fs_reset(struct dsmd *d, uint64_t first, uint64_t n)
{
    struct dsmd_fs *f = d->fs;

    for (uint64_t p = first; f != NULL && p < first + n && p < d->npages; p++) {
        free(f->twin[p]);
        f->twin[p] = NULL;
        if (f->pg[p] != NULL)
            windows_close(d, f->pg[p]);
    }
}

void dsmd_fs_print(struct dsmd *d)
{
    struct dsmd_fs *f = d->fs;

    if (f == NULL)
        return;
    for (uint64_t p = 0; p < d->npages; p++) {
        struct fs_page *e = f->pg[p];

        if (e == NULL)
            continue;
        windows_close(d, e);
        if (e->false_windows || e->true_windows)
            printf("FS %llu %u %u %u %s\n", (unsigned long long)p, e->false_windows, e->true_windows, e->late,
                   e->example ? e->example : "-");
    }
    fflush(stdout);
}

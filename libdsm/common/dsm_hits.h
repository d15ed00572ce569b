/*
 * dsm_hits.h - node-local hits: the table a node's daemon and ranks share so that a fault on
 * a page the node already holds is resolved in the rank, without a message.
 *
 * The table lives in the node's frame memfd, right after the frames (offset = the space's
 * size), so the rank maps it from the fd its HELLO_MAIN reply carries. It holds:
 *   open[p]       written by the daemon only: the access any local rank may take to page p on
 *                 its own. It is the node's access while the daemon would grant a fault at
 *                 once (no revocation queued, no range being cleared, no eviction, the home
 *                 known), else NONE. Lowered before anything that needs the ranks' access
 *                 known (a revocation reading prot), raised when that is over.
 *   prot[r][p]    the daemon's record of rank r's access (before this table: its private
 *                 rk->prot): an upper bound of what rank r may have mapped. The daemon
 *                 raises it when it grants and lowers it when it revokes, by compare-and-swap;
 *                 rank r raises it, with DSM_HITS_CLAIM set, when it takes a hit.
 *   count[r]      rank r's hits, folded into its fault counts when the daemon reports.
 *   door[p]       (uint16) the direct path's offer and claim of page p (dsm_direct.h): 0
 *                 when direct reads are off.
 *
 * A hit (libdsm hits.c), for access L to page p by rank r:
 *   1. busy[p] := 1 in the rank (its own memory; one hit per page per rank at a time: a
 *      page another thread's hit holds goes to the daemon);
 *   2. prot[r][p] := L|CLAIM (CAS from a level below L; a level >= L needs no claim);
 *   3. re-read open[p]: below L -> undo the claim (CAS back, fails harmlessly if the daemon
 *      wrote meanwhile), busy[p] := 0, ask the daemon instead;
 *   4. mprotect(p, L); clear the claim bit (CAS, fails harmlessly); busy[p] := 0.
 * A revocation of p (daemon pages.c): open[p] := NONE, then read every prot[r][p] and send
 * PROTECT where the level is above the new one. Steps 2-3 against these two are Dekker's
 * handshake (all sequentially consistent): either the rank's re-read sees the revocation's
 * NONE and backs off, or the revocation sees the claim and sends the rank a PROTECT. That
 * PROTECT must not land before the hit's mprotect: the service thread applies a PROTECT only
 * once busy[q] is 0 for each of its pages (libdsm service.c), as it waits for applied grants.
 *
 * Invariants: prot[r][p] (its level) >= what rank r has mapped, outside a hit's steps 2-4 of
 * which the daemon knows through the claim. A value the daemon writes never has CLAIM set,
 * so a claim ends with its hit (undone or cleared) unless the daemon replaced it first; a
 * grant replaces it with the higher of the two levels, which may then over-state what the
 * rank mapped (the hit backed off): that costs a needless PROTECT at the next revocation,
 * never a stale page. A CLAIM seen after a revocation lowered the byte is a hit about to back
 * off (open[p] was closed before): the eviction's check that every rank is out of the page
 * (dsmd_prot_mapped) does not count it.
 */
#ifndef DSM_HITS_H
#define DSM_HITS_H

#include <stdint.h>

#define DSM_HITS_MAGIC 0x44534d49u /* "DSMI": the layout with door[] (another build's is refused) */
#define DSM_HITS_CLAIM 0x80u       /* prot[r][p]: a rank's own raise, still being checked */
#define DSM_HITS_LEVEL(v) ((v) & 0x3u)

struct dsm_hits_count {
    uint64_t reads, writes; /* faults resolved as hits */
    uint64_t pages_ahead;   /* pages a hit's run opened beyond the faulting one */
    uint64_t pad;
};

struct dsm_hits_head {
    uint32_t magic;       /* DSM_HITS_MAGIC */
    uint32_t enabled;     /* 0: every fault goes to the daemon (DSM_LOCAL_HITS=0, --trace...) */
    uint64_t npages;
    uint32_t local_ranks;
    uint32_t run_max;     /* most pages one hit opens (the daemon's DSM_GRANT_AHEAD) */
    uint64_t open_off;    /* offsets from the table's start: open[], then prot rows */
    uint64_t prot_off;
    uint64_t prot_stride; /* bytes between two ranks' prot rows */
    uint64_t door_off;    /* door[] (uint16 per page), after the prot rows */
    uint64_t door_len;
    uint32_t direct;      /* 1: the daemon offers direct reads (door[] may open) */
    uint32_t pad;
    uint64_t size;        /* the whole table */
    struct dsm_hits_count count[]; /* one per local rank */
};

static inline uint64_t dsm_hits_round(uint64_t n, uint64_t page_size)
{
    return (n + page_size - 1) / page_size * page_size;
}

/* Lay the table out for npages pages and local_ranks ranks (fills the offsets and size). Every
 * part is page-aligned: a rank maps the head, open[] (read-only) and its own row apart. */
static inline void dsm_hits_layout(struct dsm_hits_head *h, uint64_t npages, uint32_t local_ranks,
                                   uint64_t page_size)
{
    h->npages = npages;
    h->local_ranks = local_ranks;
    h->open_off = dsm_hits_round(sizeof(*h) + (uint64_t)local_ranks * sizeof(struct dsm_hits_count), page_size);
    h->prot_stride = dsm_hits_round(npages, page_size);
    h->prot_off = h->open_off + h->prot_stride;
    h->door_off = h->prot_off + h->prot_stride * local_ranks;
    h->door_len = dsm_hits_round(npages * sizeof(uint16_t), page_size);
    h->size = h->door_off + h->door_len;
}

#endif

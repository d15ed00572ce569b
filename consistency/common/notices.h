/*
 * notices.h - write notices ("node n wrote these pages in its interval i") and vector
 * clocks, for the multiple-writer protocols.
 *
 * A node's store holds every notice it knows, per writer node, by interval number
 * (1, 2, ...). A vector clock vc says "intervals 1..vc[n] of every node n". Notices travel
 * in a message's `data` field as records [u16 node][u32 interval][u32 bytes][runs], runs
 * being [u64 first page][u32 page count], so contiguous writes stay small. When the exact
 * notices do not fit one message, a merged record stands for a range of one node's
 * intervals with the union of their pages ([u16 node | 0x8000][u32 first][u32 bytes][runs]
 * [u32 last]), coarsened to one covering run per node if even that is too big: receivers
 * then drop more pages than needed, never fewer.
 */
#ifndef DSMP_NOTICES_H
#define DSMP_NOTICES_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "dsm_status.h"

/* A run, [u64 first page][u32 count]; a record's header, [u16 node][u32 interval][u32 bytes];
 * a merged record's trailer, [u32 last]. */
#define DSMP_RUN_BYTES 12
#define DSMP_NOTICE_HDR 10
#define DSMP_NOTICE_TRAILER 4

/* The most intervals one merged record may stand for, and the furthest a notice may lie
 * past what a store knows: bounds the work and memory one message can cause (a job whose
 * node releases more often than this between two synchronisations of another is refused
 * with DSM_EPROTO / DSM_EINVAL rather than looping for minutes). */
#define DSMP_NOTICES_SPAN_MAX (1u << 24)

struct dsmp_notice {
    const uint8_t *runs;      /* encoded [u64 first][u32 count]...; NULL: interval unknown */
    uint32_t len;
    struct dsmp_runs_blob *blob; /* holds runs; shared by the intervals of a merged record */
};

struct dsmp_notices {
    int                   nnodes;
    struct dsmp_notice  **rec;    /* rec[n][i - 1]: interval i of node n, runs NULL if unknown */
    uint32_t             *cap;
};

dsm_status_t dsmp_notices_init(struct dsmp_notices *s, int nnodes);
void dsmp_notices_fini(struct dsmp_notices *s);

/* Remember that node n wrote `runs` in each of its intervals first..last (one copy, shared
 * by all of them, so a merged record costs one copy of its runs, not one per interval).
 * Known intervals are kept as they are. DSM_EINVAL past DSMP_NOTICES_SPAN_MAX. */
dsm_status_t dsmp_notices_add_range(struct dsmp_notices *s, int n, uint32_t first, uint32_t last,
                                    const uint8_t *runs, uint32_t len);
/* The same for one interval i. */
dsm_status_t dsmp_notices_add(struct dsmp_notices *s, int n, uint32_t i, const uint8_t *runs, uint32_t len);
const struct dsmp_notice *dsmp_notices_get(const struct dsmp_notices *s, int n, uint32_t i);

/* Encode every notice i with from[n] < i <= to[n] into out (cap bytes). DSM_ENOSPACE if it
 * does not fit; DSM_ESTATE if the store lacks one of them. */
dsm_status_t dsmp_notices_encode(const struct dsmp_notices *s, const uint32_t *from, const uint32_t *to,
                                 uint8_t *out, size_t cap, size_t *len);

/* Encode notices (from, to] merged per node (see above); always fits when cap is at least
 * 30 bytes per node. Intervals missing from the store count as writing every page. */
dsm_status_t dsmp_notices_encode_merged(const struct dsmp_notices *s, const uint32_t *from, const uint32_t *to,
                                        uint64_t npages, uint8_t *out, size_t cap, size_t *len);

/* Walk the records of an encoding, checking them: fn(arg, node, first, last, runs, len) once
 * per record, for node's intervals first..last (first == last but for a merged record), so
 * the work of a walk grows with the encoding's size, not with the intervals it stands for.
 * DSM_EPROTO for a malformed encoding (fn is not called for anything after it). */
typedef dsm_status_t (*dsmp_notice_fn)(void *arg, int node, uint32_t first, uint32_t last, const uint8_t *runs,
                                       uint32_t rlen);
dsm_status_t dsmp_notices_walk(const uint8_t *buf, size_t len, int nnodes, dsmp_notice_fn fn, void *arg);

/* Build runs from a sorted page list; out must hold DSMP_RUN_BYTES * n bytes. Returns the
 * length. */
uint32_t dsmp_runs_build(const uint64_t *pages, size_t n, uint8_t *out);
/* Remove the pages of [first, first+n) from the list v of len pages, keeping the others'
 * order; returns the new length (a freed range leaves an interval's written list). */
static inline size_t dsmp_pages_without(uint64_t *v, size_t len, uint64_t first, uint64_t n)
{
    size_t keep = 0;

    for (size_t k = 0; k < len; k++)
        if (v[k] < first || v[k] - first >= n)
            v[keep++] = v[k];
    return keep;
}
/* Room for one more page in the list *v of n pages (capacity *cap): DSM_OK, or DSM_ENOMEM
 * with the list as it was. */
static inline dsm_status_t dsmp_pages_reserve(uint64_t **v, size_t n, size_t *cap)
{
    if (n == *cap) {
        size_t ncap = *cap ? *cap * 2 : 64;
        uint64_t *nv = realloc(*v, ncap * sizeof(**v));

        if (nv == NULL)
            return DSM_ENOMEM;
        *v = nv;
        *cap = ncap;
    }
    return DSM_OK;
}
/* Call fn(arg, page) for every page of some runs; DSM_EPROTO if malformed or past npages. */
dsm_status_t dsmp_runs_each(const uint8_t *runs, uint32_t len, uint64_t npages,
                            void (*fn)(void *arg, uint64_t page), void *arg);

/* Vector clocks of nnodes entries. */
static inline void dsmp_vc_max(uint32_t *into, const uint32_t *b, int n)
{
    for (int k = 0; k < n; k++)
        if (b[k] > into[k])
            into[k] = b[k];
}

/* a <= b in every entry */
static inline int dsmp_vc_covered(const uint32_t *a, const uint32_t *b, int n)
{
    for (int k = 0; k < n; k++)
        if (a[k] > b[k])
            return 0;
    return 1;
}

#endif

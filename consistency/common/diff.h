/*
 * diff.h - twins and diffs: the bytes of a page that changed since its twin was taken.
 *
 * A diff is a list of runs, each [u16 offset][u16 length][length bytes], offsets
 * ascending, runs disjoint, within one page. Byte-granular on purpose: two nodes may write
 * different bytes of one word in the same interval (false sharing), and a word-granular
 * diff would carry the twin's stale copy of the other node's byte.
 */
#ifndef DSMP_DIFF_H
#define DSMP_DIFF_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "dsm_le.h"
#include "dsm_status.h"

/* The largest page the encoding can describe: run offsets and lengths are u16. */
#define DSMP_DIFF_MAX_PAGE 65535u

/* Largest encoding of one page's diff (every other byte changed). */
static inline size_t dsmp_diff_max(size_t page_size)
{
    return page_size / 2 * 5 + 4;
}

/* Encode the changes of `cur` against `twin` into out (cap >= dsmp_diff_max(page_size)).
 * Returns the encoding's length (0: nothing changed). */
size_t dsmp_diff_make(const uint8_t *cur, const uint8_t *twin, size_t page_size, uint8_t *out);

/* DSM_OK if `diff` (len bytes) is a well-formed encoding for a page of page_size bytes
 * (runs non-empty, ascending, disjoint, inside the page), else DSM_EPROTO. */
dsm_status_t dsmp_diff_check(const uint8_t *diff, size_t len, size_t page_size);

/* The run of a checked diff at byte i: its offset and length in the page; returns the
 * index of the next run (len after the last). */
static inline size_t dsmp_diff_run(const uint8_t *diff, size_t i, size_t *off, size_t *n)
{
    *off = (size_t)diff[i] | (size_t)diff[i + 1] << 8;
    *n = (size_t)diff[i + 2] | (size_t)diff[i + 3] << 8;
    return i + 4 + *n;
}

/* Apply an encoded diff to `page` (and to `twin` too unless NULL). DSM_EPROTO if the
 * encoding is malformed or runs past the page; nothing is written then. */
dsm_status_t dsmp_diff_apply(uint8_t *page, uint8_t *twin, size_t page_size, const uint8_t *diff,
                             size_t len);

/*
 * Page records: one message's pages and their diffs, each [u64 page][u32 diff bytes][diff]
 * (release's DIFF, causal's UPDATE).
 */
#define DSMP_REC_HDR 12

/* Write a record of page's len-byte diff at out (room for DSMP_REC_HDR + len); returns the
 * bytes written. */
static inline size_t dsmp_rec_put(uint8_t *out, uint64_t page, const uint8_t *diff, size_t len)
{
    dsm_put_le(out, page, 8);
    dsm_put_le(out + 8, len, 4);
    if (len > 0)
        memcpy(out + DSMP_REC_HDR, diff, len);
    return DSMP_REC_HDR + len;
}

/* The record at *o of a len-byte list: its page and diff; *o moves past it. -1 if it is cut
 * short or names a page >= npages (the diff itself is not checked: dsmp_diff_check). */
static inline int dsmp_rec_next(const uint8_t *d, size_t len, size_t *o, uint64_t npages, uint64_t *page,
                                const uint8_t **diff, size_t *dl)
{
    if (len - *o < DSMP_REC_HDR)
        return -1;
    *page = dsm_get_le(d + *o, 8);
    *dl = (size_t)dsm_get_le(d + *o + 8, 4);
    if (*page >= npages || len - *o - DSMP_REC_HDR < *dl)
        return -1;
    *diff = d + *o + DSMP_REC_HDR;
    *o += DSMP_REC_HDR + *dl;
    return 0;
}

#endif

/*
 * mwriter.c - multiple writers: every rank writes disjoint words of the same pages in one
 * interval; after a barrier every word must be right on every rank.
 *
 * usage: mwriter [-i ITERS] [-p PAGES]   (defaults 200 iterations of 2 pages;
 *                                         2000 with DSM_STRESS=1)
 *
 * Every iteration uses FRESH pages (one region is coalloc'd up front; iteration `it` takes
 * PAGES pages of its own, homed on node (k + it) % nnodes for its k-th page, so the homes
 * rotate). Word w of those pages (32-bit words, counted over the iteration's pages) is
 *   - left alone when w % (nranks + 1) == nranks (it must stay 0: a writer that ships a
 *     whole page, or a diff computed against the wrong twin, overwrites it), else
 *   - written by rank (w % (nranks + 1) + it) % nranks, with a value that names the word
 *     and the iteration.
 * So every page has words of every rank, interleaved, written in the same interval, which
 * a single-writer protocol serialises (pages change hands) and a multiple-writer protocol
 * merges from the writers' diffs at the home. Ranks start writing on different pages, after
 * a jitter, so the writes overlap. A barrier ends the interval; then every rank checks
 * every word of the iteration's pages, and another barrier separates the iterations. Rank 0
 * gathers the counts of wrong words and exits 1 if any rank saw one.
 */
#include "lt_common.h"

#include <dsm/dsm.h>

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#define JITTER_NS 20000

/* The geometry of one run. */
struct mw {
    long      iters, pages;
    int       rank, nranks, nnodes;
    size_t    page, words;  /* page size; 32-bit words per iteration */
    uint32_t *base;         /* nnodes blocks of iters*pages pages */
};

/* Parse -i and -p; 0 or -1 (usage printed). */
static int parse_args(int argc, char **argv, struct mw *m)
{
    int c;

    m->iters = lt_scaled(200, 2000);
    m->pages = 2;
    while ((c = getopt(argc, argv, "i:p:")) != -1) {
        if (c == 'i' && lt_parse_long(optarg, 1, 1000000, &m->iters) == 0)
            continue;
        if (c == 'p' && lt_parse_long(optarg, 1, 64, &m->pages) == 0)
            continue;
        fprintf(stderr, "usage: mwriter [-i ITERS] [-p PAGES]\n");
        return -1;
    }
    return 0;
}

/* Word w of iteration it: in page k = w / words-per-page, homed on node (k + it) % nnodes. */
static volatile uint32_t *word_addr(const struct mw *m, long it, size_t w)
{
    size_t per_page = m->page / sizeof(uint32_t), k = w / per_page;
    size_t blk = (size_t)m->iters * (size_t)m->pages;
    size_t home = ((size_t)k + (size_t)it) % (size_t)m->nnodes;
    size_t pg = home * blk + (size_t)it * (size_t)m->pages + k;

    return (volatile uint32_t *)((char *)m->base + pg * m->page) + w % per_page;
}

/* The writer of word w in iteration it, or -1 for a word nobody writes. */
static int writer_of(const struct mw *m, long it, size_t w)
{
    size_t slot = w % (size_t)(m->nranks + 1);

    if (slot == (size_t)m->nranks)
        return -1;
    return (int)((slot + (size_t)it) % (size_t)m->nranks);
}

/* The value word w holds after iteration it: never 0 when written. */
static uint32_t value_of(const struct mw *m, long it, size_t w)
{
    if (writer_of(m, it, w) < 0)
        return 0u;
    return ((uint32_t)(w * 2654435761u) ^ (uint32_t)it << 20) | 1u;
}

/* Write this rank's words of iteration it, starting on page rank % pages. */
static void write_mine(const struct mw *m, long it)
{
    size_t per_page = m->page / sizeof(uint32_t);

    for (long j = 0; j < m->pages; j++) {
        size_t k = (size_t)((j + m->rank) % m->pages);

        for (size_t w = k * per_page; w < (k + 1) * per_page; w++)
            if (writer_of(m, it, w) == m->rank)
                *word_addr(m, it, w) = value_of(m, it, w);
    }
}

/* Count the wrong words of iteration it on this rank; print the first. */
static long check_all(const struct mw *m, long it)
{
    long wrong = 0;

    for (size_t w = 0; w < m->words; w++) {
        uint32_t got = *word_addr(m, it, w), want = value_of(m, it, w);

        if (got != want && wrong++ == 0)
            fprintf(stderr, "mwriter: rank %d iteration %ld: word %zu (writer %d) is %#x, "
                            "expected %#x\n", m->rank, it, w, writer_of(m, it, w), got, want);
    }
    return wrong;
}

/* Every iteration: barrier, jitter, write, barrier, check. Wrong words, or a DSM error. */
static long run_iterations(const struct mw *m)
{
    uint64_t seed = 0xD1B54A32D192ED03ULL ^ ((uint64_t)m->rank + 1) * 0x9E3779B97F4A7C15ULL;
    long     wrong = 0;
    int      rc = 0;

    for (long it = 0; rc == 0 && it < m->iters; it++) {
        rc = dsm_barrier();
        if (rc != 0)
            break;
        lt_jitter(&seed, JITTER_NS);
        write_mine(m, it);
        rc = dsm_barrier();
        if (rc == 0)
            wrong += check_all(m, it);
    }
    if (rc != 0) {
        fprintf(stderr, "mwriter: rank %d: dsm_barrier: %s\n", m->rank, dsm_strerror(rc));
        return rc;
    }
    return wrong;
}

/* Everything between dsm_init and dsm_finalize; returns the exit status. */
static int mwriter_main(int argc, char **argv)
{
    struct mw m = {.rank = dsm_rank(), .nranks = dsm_nranks(), .page = dsm_page_size()};
    long     *all, wrong, total = 0;
    int       rc;

    if (parse_args(argc, argv, &m) != 0)
        return 2;
    m.nnodes = lt_nnodes();
    if (m.nnodes < 0)
        return 1;
    m.words = (size_t)m.pages * m.page / sizeof(uint32_t);
    m.base = dsm_coalloc((size_t)m.nnodes * (size_t)m.iters * (size_t)m.pages * m.page);
    all = dsm_coalloc((size_t)m.nranks * sizeof(long));
    if (m.base == NULL || all == NULL)
        return 1;
    wrong = run_iterations(&m);
    if (wrong < 0)
        return 1;
    all[m.rank] = wrong;
    rc = dsm_barrier();
    if (rc != 0) {
        fprintf(stderr, "mwriter: rank %d: dsm_barrier: %s\n", m.rank, dsm_strerror(rc));
        return 1;
    }
    if (m.rank != 0)
        return wrong != 0;
    for (int r = 0; r < m.nranks; r++)
        total += all[r];
    printf("mwriter: %d ranks on %d nodes, %ld iterations of %ld pages, consistency %s: "
           "%ld wrong words seen: %s\n", m.nranks, m.nnodes, m.iters, m.pages,
           dsm_consistency(), total, total ? "FAILED" : "OK");
    return total != 0;
}

int main(int argc, char **argv)
{
    int rc = dsm_init(&argc, &argv), status;

    if (rc != 0) {
        fprintf(stderr, "mwriter: dsm_init: %s\n", dsm_strerror(rc));
        return 1;
    }
    status = mwriter_main(argc, argv);
    rc = dsm_finalize();
    if (rc != 0) {
        fprintf(stderr, "mwriter: dsm_finalize: %s\n", dsm_strerror(rc));
        status = 1;
    }
    return status;
}

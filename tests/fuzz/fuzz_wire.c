/*
 * fuzz_wire.c - libFuzzer target: everything a peer's bytes reach before any protocol
 * state: the wire decoder and checker (wire.c), and the payload parsers of the multiple-
 * writer protocols (diffs, write-notice encodings, page runs).
 *
 * Properties checked beyond "no crash, no sanitizer report": a message the decoder accepts
 * re-encodes and decodes to the same type and checked fields; a diff that applies writes
 * only inside the page and leaves page and twin identical; a rejected diff writes nothing;
 * a walk of notices never hands out a node or run outside the job.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "diff.h"
#include "notices.h"
#include "wire.h"

#define PS 4096u
#define NNODES 4
#define NPAGES 1024

static uint64_t runs_pages;

static void count_page(void *arg, uint64_t page)
{
    (void)arg;
    if (page >= NPAGES)
        abort(); /* runs_each promised pages < npages */
    runs_pages++;
}

static dsm_status_t notice(void *arg, int node, uint32_t first, uint32_t last, const uint8_t *runs, uint32_t rlen)
{
    (void)arg;
    if (node < 0 || node >= NNODES || first == 0 || last < first || last - first > DSMP_NOTICES_SPAN_MAX)
        abort(); /* walk promised a checked record */
    (void)dsmp_runs_each(runs, rlen, NPAGES, count_page, NULL);
    return DSM_OK;
}

static void fuzz_diff(const uint8_t *data, size_t size)
{
    static uint8_t page[PS], twin[PS], before[PS];

    memset(page, 0xa5, sizeof(page));
    memcpy(twin, page, sizeof(twin));
    memcpy(before, page, sizeof(before));
    if (dsmp_diff_apply(page, twin, PS, data, size) != DSM_OK) {
        if (memcmp(page, before, PS) != 0 || memcmp(twin, before, PS) != 0)
            abort(); /* a rejected diff must write nothing */
        return;
    }
    if (memcmp(page, twin, PS) != 0)
        abort();
}

static void fuzz_message(const uint8_t *data, size_t size)
{
    const struct dsmw_limits lim = { .npages = NPAGES, .nnodes = NNODES, .nranks = 8 };
    dsmw_msg_t *m = NULL, *again = NULL;
    const char *why;
    uint8_t buf[DSMW_MAX_MSG];
    size_t len;

    if (dsmw_decode(data, size, &lim, &m, &why) != DSM_OK)
        return;
    if (dsmw_encode(m, buf, sizeof(buf), &len) != DSM_OK || dsmw_decode(buf, len, &lim, &again, &why) != DSM_OK)
        abort(); /* an accepted message must survive its own round trip */
    if (again->type != m->type || again->page != m->page || again->node != m->node || again->origin != m->origin)
        abort();
    if (m->data.len > 0) {
        fuzz_diff(m->data.data, m->data.len);
        (void)dsmp_notices_walk(m->data.data, m->data.len, NNODES, notice, NULL);
    }
    dsmw_free(again);
    dsmw_free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* first byte: which parser gets the rest raw, besides the decoder */
    if (size < 1)
        return 0;
    fuzz_message(data + 1, size - 1);
    switch (data[0] % 3) {
    case 0: fuzz_diff(data + 1, size - 1); break;
    case 1: (void)dsmp_notices_walk(data + 1, size - 1, NNODES, notice, NULL); break;
    default: (void)dsmp_runs_each(data + 1, (uint32_t)(size - 1), NPAGES, count_page, NULL); break;
    }
    return 0;
}

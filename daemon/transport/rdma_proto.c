/*
 * rdma_proto.c - the RDMA transport's hello, KEYS and segment rules (see rdma_proto.h; the
 * layouts and the handshake are described in rdma_wire.h).
 */
#include "rdma_proto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dsmt.h"
#include "dsm_le.h"

#define PAYLOAD DSMT_RDMA_PAYLOAD

void dsmt_rdma_hello_encode(const struct dsmt_rdma_geom *g, const uint8_t *nonce, uint8_t *out)
{
    memset(out, 0, DSMT_RDMA_HELLO_LEN);
    dsm_put32(out + DSMT_RDMA_H_MAGIC, DSMT_RDMA_MAGIC);
    dsm_put16(out + DSMT_RDMA_H_VERSION, DSMT_RDMA_VERSION);
    dsm_put32(out + DSMT_RDMA_H_NODE, (uint32_t)g->self);
    dsm_put32(out + DSMT_RDMA_H_NNODES, (uint32_t)g->nnodes);
    dsm_put64(out + DSMT_RDMA_H_JOB, g->job_id);
    dsm_put32(out + DSMT_RDMA_H_PAGE_SIZE, g->page_size);
    dsm_put32(out + DSMT_RDMA_H_MAX_MSG, g->max_msg);
    dsm_put64(out + DSMT_RDMA_H_NPAGES, g->npages);
    memcpy(out + DSMT_RDMA_H_NONCE, nonce, DSMT_RDMA_NONCE_LEN);
}

const char *dsmt_rdma_hello_check(const struct dsmt_rdma_geom *g, int expect, const uint8_t *b, size_t len,
                                  int *node, uint8_t *nonce, int *code, char *why, size_t wl)
{
    uint32_t n;

    *code = DSMT_RDMA_REFUSE_VERSION;
    if (len < DSMT_RDMA_HELLO_LEN || dsm_get32(b + DSMT_RDMA_H_MAGIC) != DSMT_RDMA_MAGIC)
        return "bad hello: wrong magic (not a dsm transport peer)";
    if (dsm_get32(b + DSMT_RDMA_H_VERSION) != DSMT_RDMA_VERSION) /* version + reserved, both fixed */
        return "bad hello: unsupported protocol version";
    *code = DSMT_RDMA_REFUSE_JOB;
    if (dsm_get64(b + DSMT_RDMA_H_JOB) != g->job_id) {
        snprintf(why, wl, "bad hello: job id %#llx, this job is %#llx",
                 (unsigned long long)dsm_get64(b + DSMT_RDMA_H_JOB), (unsigned long long)g->job_id);
        return why;
    }
    *code = DSMT_RDMA_REFUSE_GEOMETRY;
    if (dsm_get32(b + DSMT_RDMA_H_NNODES) != (uint32_t)g->nnodes ||
        dsm_get32(b + DSMT_RDMA_H_PAGE_SIZE) != g->page_size || dsm_get64(b + DSMT_RDMA_H_NPAGES) != g->npages ||
        dsm_get32(b + DSMT_RDMA_H_MAX_MSG) != g->max_msg)
        return "bad hello: job geometry differs (nnodes, page size, npages or max_msg)";
    n = dsm_get32(b + DSMT_RDMA_H_NODE);
    *code = DSMT_RDMA_REFUSE_NODE;
    if (expect >= 0 && n != (uint32_t)expect) {
        snprintf(why, wl, "bad hello: answered as node %u", n);
        return why;
    }
    if (expect < 0 && (n >= (uint32_t)g->nnodes || n <= (uint32_t)g->self)) {
        snprintf(why, wl, "bad hello: node %u may not connect to node %d of %d", n, g->self, g->nnodes);
        return why;
    }
    *node = (int)n;
    memcpy(nonce, b + DSMT_RDMA_H_NONCE, DSMT_RDMA_NONCE_LEN);
    return NULL;
}

const char *dsmt_rdma_keys_parse(const struct dsmt_rdma_geom *g, const uint8_t *p, struct dsmt_rdma_keys *k)
{
    uint32_t credits = dsm_get32(p + DSMT_RDMA_K_CREDITS);

    if (credits == 0 || credits > UINT16_MAX)
        return "KEYS grants no (or absurd) credits";
    if (dsm_get64(p + DSMT_RDMA_K_FRAMES_LEN) != g->npages * g->page_size)
        return "KEYS names frames of another size";
    k->addr = dsm_get64(p + DSMT_RDMA_K_ADDR);
    k->rkey = dsm_get32(p + DSMT_RDMA_K_RKEY);
    k->credits = credits;
    return NULL;
}

/* A segment that continues the message being reassembled. */
static const char *asm_continue(struct dsmt_rdma_asm *a, uint8_t flags, uint32_t length, uint64_t page,
                                const uint8_t *p, size_t plen, struct dsmt_rdma_msg *out)
{
    bool last = flags & DSMT_RDMA_F_LAST;

    if (!a->on)
        return "continuation segment without a first one";
    if (length != 0 || page != DSMT_NO_PAGE || (flags & DSMT_RDMA_F_FRAME) || a->len + plen > a->total ||
        (last && a->len + plen != a->total))
        return "continuation segment does not fit its message";
    memcpy(a->buf + a->len, p, plen);
    a->len += plen;
    if (last) {
        a->on = false;
        *out = (struct dsmt_rdma_msg){ a->buf, a->total, a->page };
    }
    return NULL;
}

const char *dsmt_rdma_asm_segment(struct dsmt_rdma_asm *a, const struct dsmt_rdma_geom *g, const uint8_t *b,
                                  size_t plen, struct dsmt_rdma_msg *out, char *why, size_t wl)
{
    uint8_t flags = b[DSMT_RDMA_M_FLAGS];
    uint32_t length = dsm_get32(b + DSMT_RDMA_M_LENGTH);
    uint64_t page = dsm_get64(b + DSMT_RDMA_M_PAGE);
    const uint8_t *p = b + DSMT_RDMA_HDR_LEN;
    bool last = flags & DSMT_RDMA_F_LAST;

    out->msg = NULL;
    if (flags & ~(DSMT_RDMA_F_FIRST | DSMT_RDMA_F_LAST | DSMT_RDMA_F_FRAME))
        return "unknown segment flags";
    if (plen > PAYLOAD)
        return "segment longer than a receive slot";
    if (!last && plen != PAYLOAD)
        return "a segment other than the last is not full";
    if (!(flags & DSMT_RDMA_F_FIRST))
        return asm_continue(a, flags, length, page, p, plen, out);
    if (a->on)
        return "a new message before the last one was complete";
    if (length > g->max_msg) {
        snprintf(why, wl, "message of %u bytes exceeds max_msg %u", length, g->max_msg);
        return why;
    }
    if ((flags & DSMT_RDMA_F_FRAME) && page >= g->npages) {
        snprintf(why, wl, "frame for page %llu beyond %llu pages", (unsigned long long)page,
                 (unsigned long long)g->npages);
        return why;
    }
    if (!(flags & DSMT_RDMA_F_FRAME) && page != DSMT_NO_PAGE)
        return "page named without a frame";
    if (plen > length || (last && plen != length))
        return "segment length does not match the message length";
    if (last) {
        *out = (struct dsmt_rdma_msg){ p, plen, page };
        return NULL;
    }
    if (a->buf == NULL && (a->buf = malloc(g->max_msg)) == NULL)
        return "out of memory reassembling a message";
    memcpy(a->buf, p, plen);
    *a = (struct dsmt_rdma_asm){ a->buf, plen, length, page, true };
    return NULL;
}

void dsmt_rdma_asm_free(struct dsmt_rdma_asm *a)
{
    free(a->buf);
    *a = (struct dsmt_rdma_asm){ 0 };
}

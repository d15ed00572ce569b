/*
 * fuzz_rdma.c - libFuzzer target: what an RDMA peer's bytes reach (daemon/transport/
 * rdma_proto.c): the hello in a connect request or in the answer to ours, the KEYS payload,
 * and a stream of MSG segments through reassembly. The verbs around them need a device;
 * these rules do not, so they are fuzzed on every machine.
 *
 * The first byte picks the part: 0 connect request, 1 answer, 2 KEYS, 3 segments. Beyond
 * "no crash, no sanitizer report" it checks: an accepted hello is exactly the hello that
 * node would encode (every byte is a checked field or the nonce); an accepted request comes
 * from a node above ours, an accepted answer from the node we called; accepted KEYS grant
 * 1..65535 credits; every delivered message is at most max_msg bytes, names no page out of
 * range, and holds exactly the payload bytes of the segments that made it, in order.
 *
 * Segments are described compactly so that multi-segment messages fit small inputs: per
 * segment, a 16-byte header, a u16 payload length (modulo a slot's payload + 1) and a fill
 * byte; the payload is the fill byte plus the offset, so the harness knows what it sent.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dsmt.h"
#include "rdma_proto.h"

#define PAYLOAD DSMT_RDMA_PAYLOAD
#define MAX_MSG (8u * PAYLOAD + 100u)

static const struct dsmt_rdma_geom geom = {
    .self = 1, .nnodes = 4, .job_id = 0x1234abcdull, .page_size = 4096, .max_msg = MAX_MSG, .npages = 64,
};

static uint8_t seg[DSMT_RDMA_SLOT];
static uint8_t shadow[MAX_MSG]; /* what the harness sent of the message being assembled */
static size_t shadow_len;

static void hello(const uint8_t *b, size_t n, int expect)
{
    uint8_t nonce[DSMT_RDMA_NONCE_LEN], again[DSMT_RDMA_HELLO_LEN];
    struct dsmt_rdma_geom sender = geom;
    char why[160];
    int node = -1, code = 0;

    if (dsmt_rdma_hello_check(&geom, expect, b, n, &node, nonce, &code, why, sizeof(why)) != NULL) {
        if (code < DSMT_RDMA_REFUSE_VERSION || code > DSMT_RDMA_REFUSE_NODE)
            abort();
        return;
    }
    if (expect >= 0 ? node != expect : node <= geom.self || node >= geom.nnodes)
        abort();
    sender.self = node;
    dsmt_rdma_hello_encode(&sender, nonce, again);
    if (memcmp(again, b, DSMT_RDMA_HELLO_LEN) != 0)
        abort();
}

static void keys(const uint8_t *b, size_t n)
{
    uint8_t p[DSMT_RDMA_KEYS_LEN] = { 0 };
    struct dsmt_rdma_keys k;

    memcpy(p, b, n < sizeof(p) ? n : sizeof(p));
    if (dsmt_rdma_keys_parse(&geom, p, &k) == NULL && (k.credits == 0 || k.credits > UINT16_MAX))
        abort();
}

/* One described segment out of b[n] (see the top); the bytes consumed, or 0 at the end. */
static size_t segment(struct dsmt_rdma_asm *a, const uint8_t *b, size_t n)
{
    struct dsmt_rdma_msg m;
    size_t plen, i;
    char why[160];
    uint8_t fill;

    if (n < DSMT_RDMA_HDR_LEN + 3)
        return 0;
    memcpy(seg, b, DSMT_RDMA_HDR_LEN);
    plen = (size_t)(b[16] | b[17] << 8) % (PAYLOAD + 1);
    fill = b[18];
    for (i = 0; i < plen; i++)
        seg[DSMT_RDMA_HDR_LEN + i] = (uint8_t)(fill + i);
    if (dsmt_rdma_asm_segment(a, &geom, seg, plen, &m, why, sizeof(why)) != NULL) {
        dsmt_rdma_asm_free(a); /* the connection is dropped: a fresh one starts clean */
        shadow_len = 0;
        return DSMT_RDMA_HDR_LEN + 3;
    }
    if (seg[DSMT_RDMA_M_FLAGS] & DSMT_RDMA_F_FIRST)
        shadow_len = 0;
    if (shadow_len + plen > sizeof(shadow))
        abort(); /* accepted more than max_msg */
    memcpy(shadow + shadow_len, seg + DSMT_RDMA_HDR_LEN, plen);
    shadow_len += plen;
    if (m.msg != NULL) {
        if (m.len > geom.max_msg || m.len != shadow_len || memcmp(m.msg, shadow, m.len) != 0 ||
            (m.page != DSMT_NO_PAGE && m.page >= geom.npages))
            abort();
        shadow_len = 0;
    }
    return DSMT_RDMA_HDR_LEN + 3;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct dsmt_rdma_asm a = { 0 };
    size_t used;

    if (size < 1)
        return 0;
    switch (data[0] & 3) {
    case 0: hello(data + 1, size - 1, -1); break;
    case 1: hello(data + 1, size - 1, 2); break;
    case 2: keys(data + 1, size - 1); break;
    default:
        data++, size--;
        shadow_len = 0;
        while ((used = segment(&a, data, size)) != 0)
            data += used, size -= used;
        dsmt_rdma_asm_free(&a);
        break;
    }
    return 0;
}

/*
 * rdma_proto.h - the RDMA transport's byte rules without verbs: the hello (encode, check),
 * the KEYS payload (parse, check) and the reassembly of MSG segments into messages.
 *
 * rdma.c feeds these what rdma_cm and the receive completions hand it; tests/fuzz/fuzz_rdma
 * feeds them arbitrary bytes. Nothing here touches a device, so everything a peer can put
 * on the wire before and after the handshake is checked by code that runs without one.
 * Layouts are in rdma_wire.h; every function here only reads the bytes it is given.
 */
#ifndef DSMT_RDMA_PROTO_H
#define DSMT_RDMA_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rdma_wire.h"

/* What both ends of a connection must agree on (the hello carries it). */
struct dsmt_rdma_geom {
    int self, nnodes;
    uint64_t job_id;
    uint32_t page_size, max_msg;
    uint64_t npages;
};

/* Our hello with `nonce` into out[DSMT_RDMA_HELLO_LEN]. */
void dsmt_rdma_hello_encode(const struct dsmt_rdma_geom *g, const uint8_t *nonce, uint8_t *out);

/* Why the hello b[0, len) is unacceptable, or NULL. expect >= 0: it answers our connection
 * to node `expect`; expect < 0: it is a connect request, which only a node above ours may
 * send. On NULL *node is the sender and nonce[DSMT_RDMA_NONCE_LEN] its nonce; either way
 * *code is the refusal to send back. Text that names values is formatted into why[wl]. (The
 * CM pads private data with zeroes, so a short hello reads as one with zero fields.) Whether
 * the node is connected already is the caller's to check. */
const char *dsmt_rdma_hello_check(const struct dsmt_rdma_geom *g, int expect, const uint8_t *b, size_t len,
                                  int *node, uint8_t *nonce, int *code, char *why, size_t wl);

/* A peer's KEYS payload, once checked. */
struct dsmt_rdma_keys {
    uint64_t addr;
    uint32_t rkey;
    uint32_t credits;
};

/* Parse the KEYS payload p[DSMT_RDMA_KEYS_LEN] into *k: NULL, or what is wrong with it. The
 * proof at p + DSMT_RDMA_K_PROOF is the caller's to check (it needs the secret and nonce). */
const char *dsmt_rdma_keys_parse(const struct dsmt_rdma_geom *g, const uint8_t *p, struct dsmt_rdma_keys *k);

/* A message being reassembled from MSG segments (one per connection; zero-initialised). */
struct dsmt_rdma_asm {
    uint8_t *buf;   /* max_msg bytes, allocated at the first multi-segment message */
    size_t len, total;
    uint64_t page;
    bool on;
};

/* A whole message out of dsmt_rdma_asm_segment: msg[len] is valid until the next call. */
struct dsmt_rdma_msg {
    const uint8_t *msg;
    size_t len;
    uint64_t page;  /* DSMT_NO_PAGE, or the frame's page (< npages) */
};

/* Take in one MSG SEND: b is its header, b + DSMT_RDMA_HDR_LEN its plen payload bytes
 * (plen <= DSMT_RDMA_SLOT - DSMT_RDMA_HDR_LEN). NULL with out->msg NULL: kept for the rest
 * of its message; NULL with out->msg set: a whole message (no longer than max_msg); else
 * what is wrong (the connection is then broken: the caller drops it). */
const char *dsmt_rdma_asm_segment(struct dsmt_rdma_asm *a, const struct dsmt_rdma_geom *g, const uint8_t *b,
                                  size_t plen, struct dsmt_rdma_msg *out, char *why, size_t wl);

void dsmt_rdma_asm_free(struct dsmt_rdma_asm *a);

#endif

/*
 * tcp_wire.h - byte layout of the TCP transport's stream (the rules are at the top of tcp.c).
 *
 * All integers are little-endian. Each side first sends one hello, then its proof, then
 * frames. Order: the connecting side C sends its hello; the accepting side A checks it and
 * answers with its hello; C checks that and sends its proof; A checks the proof, sends its
 * own and counts C up; C counts A up once A's proof checks out. So A proves nothing to a
 * connection that has not proved first. A proof is 32 bytes:
 *
 *   HMAC-SHA256(job secret, the *other* side's hello nonce || u32 own node id || u64 job id)
 *
 * (integers little-endian, as on the wire). Nonces are fresh per connection, so a proof
 * recorded from one connection is useless on another.
 *
 *   hello (64 bytes)                       frame header (16 bytes)
 *     0  u32 magic   DSMT_TCP_MAGIC          0  u32 len     message bytes that follow (<= max_msg)
 *     4  u16 version DSMT_TCP_VERSION        4  u32 flags   DSMT_TCP_F_FRAME or 0; other bits invalid
 *     6  u16 reserved, 0                     8  u64 page    frame page, or DSMT_NO_PAGE without a frame
 *     8  u32 node    sender's node id      then len bytes of message, then page_size bytes of frame
 *    12  u32 nnodes                        when DSMT_TCP_F_FRAME is set.
 *    16  u64 job_id
 *    24  u64 page_size
 *    32  u64 npages
 *    40  u64 max_msg
 *    48  u8[16] nonce  random, fresh for this connection
 *
 * Kept in its own header so the conformance suite can build raw (and broken) streams.
 */
#ifndef DSMT_TCP_WIRE_H
#define DSMT_TCP_WIRE_H

#define DSMT_TCP_MAGIC     0x544d5344u /* "DSMT" as little-endian bytes */
#define DSMT_TCP_VERSION   2u  /* 2: nonce in the hello, proofs after it */
#define DSMT_TCP_HELLO_LEN 64u
#define DSMT_TCP_NONCE_LEN 16u
#define DSMT_TCP_PROOF_LEN 32u /* an HMAC-SHA256 */
#define DSMT_TCP_HDR_LEN   16u
#define DSMT_TCP_F_FRAME   0x1u

/* Offsets inside the hello. */
enum {
    DSMT_TCP_H_MAGIC = 0,
    DSMT_TCP_H_VERSION = 4,
    DSMT_TCP_H_RESERVED = 6,
    DSMT_TCP_H_NODE = 8,
    DSMT_TCP_H_NNODES = 12,
    DSMT_TCP_H_JOB = 16,
    DSMT_TCP_H_PAGE_SIZE = 24,
    DSMT_TCP_H_NPAGES = 32,
    DSMT_TCP_H_MAX_MSG = 40,
    DSMT_TCP_H_NONCE = 48,
};

/* Offsets inside a frame header. */
enum {
    DSMT_TCP_F_LEN = 0,
    DSMT_TCP_F_FLAGS = 4,
    DSMT_TCP_F_PAGE = 8,
};

#endif

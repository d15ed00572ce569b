/*
 * rdma_wire.h - byte layout of the RDMA transport's bootstrap and messages (rules in rdma.c).
 *
 * All integers are little-endian.
 *
 * Hello: the rdma_cm private data of the connect request (connecting side) and of the accept
 * (accepting side). 56 bytes, all a connect request may carry:
 *     0  u32 magic     DSMT_RDMA_MAGIC        16  u64 job_id
 *     4  u16 version   DSMT_RDMA_VERSION      24  u32 page_size
 *     6  u16 reserved, 0                      28  u32 max_msg
 *     8  u32 node      sender's node id       32  u64 npages
 *    12  u32 nnodes                           40  u8[16] nonce, fresh for this connection
 * A refused request is rejected with 8 bytes of private data: u32 magic, u32 reason (enum
 * dsmt_rdma_refusal), so the connecting side can tell a dsm peer's refusal from "nobody
 * listens here" (retried until the connect timeout, like ECONNREFUSED over TCP).
 *
 * Proofs (dsmt.h: a connection is a peer only once both sides proved they hold the job's
 * secret): a side's proof is HMAC-SHA256(secret, the *other* side's nonce || u32 own node id
 * || u64 job id), as over TCP. After the hellos, the connecting side C sends AUTH with its
 * proof; the accepting side A checks it, only then sends KEYS (its frames' rkey, and its own
 * proof); C checks that proof, only then sends its KEYS (its proof again). So neither side
 * hands out an rkey before the other has proved itself.
 *
 * Messages: every SEND starts with a 16-byte header, then up to DSMT_RDMA_SLOT - 16 bytes of
 * payload (receive buffers are DSMT_RDMA_SLOT bytes):
 *     0  u8  kind      DSMT_RDMA_K_*
 *     1  u8  flags     DSMT_RDMA_F_* (only with kind MSG)
 *     2  u16 credits   receive buffers the sender has re-posted since it last said so
 *     4  u32 length    MSG with F_FIRST: the whole message's length (<= max_msg); else 0
 *     8  u64 page      MSG with F_FIRST and F_FRAME: the frame's page; else DSMT_NO_PAGE
 * A message longer than one SEND's payload goes as consecutive segments: the first has
 * F_FIRST, the last F_LAST (a one-segment message has both). Its frame, if any, was written
 * by an RDMA WRITE posted just before the first segment (same RC queue pair, so it is in
 * place before the first segment's receive completes).
 *
 * AUTH (C's first SEND), 32 bytes of payload: the proof. KEYS (A's first SEND, C's second),
 * 56 bytes of payload:
 *     0  u64 addr      the frames' virtual address at the sender
 *     8  u32 rkey      the frames' remote key (RDMA WRITE only)
 *    12  u32 credits   data SENDs the receiver of KEYS may have outstanding
 *    16  u64 frames_len npages * page_size (checked)
 *    24  u8[32] proof  the sender's proof (checked on both sides)
 * A side counts the peer up once it has sent its KEYS and received (and checked) the peer's.
 * CREDIT carries only the header (credit return when there is no message to piggyback on).
 */
#ifndef DSMT_RDMA_WIRE_H
#define DSMT_RDMA_WIRE_H

#define DSMT_RDMA_MAGIC     0x524d5344u /* "DSMR" as little-endian bytes */
#define DSMT_RDMA_VERSION   2u  /* 2: nonces and proofs */
#define DSMT_RDMA_HELLO_LEN 56u
#define DSMT_RDMA_NONCE_LEN 16u
#define DSMT_RDMA_PROOF_LEN 32u /* an HMAC-SHA256 */
#define DSMT_RDMA_REJ_LEN   8u
#define DSMT_RDMA_HDR_LEN   16u
#define DSMT_RDMA_KEYS_LEN  56u
#define DSMT_RDMA_SLOT      8192u
#define DSMT_RDMA_PAYLOAD   (DSMT_RDMA_SLOT - DSMT_RDMA_HDR_LEN) /* payload bytes per SEND */

enum {
    DSMT_RDMA_H_MAGIC = 0,
    DSMT_RDMA_H_VERSION = 4,
    DSMT_RDMA_H_RESERVED = 6,
    DSMT_RDMA_H_NODE = 8,
    DSMT_RDMA_H_NNODES = 12,
    DSMT_RDMA_H_JOB = 16,
    DSMT_RDMA_H_PAGE_SIZE = 24,
    DSMT_RDMA_H_MAX_MSG = 28,
    DSMT_RDMA_H_NPAGES = 32,
    DSMT_RDMA_H_NONCE = 40,
};

enum dsmt_rdma_refusal {
    DSMT_RDMA_REFUSE_VERSION = 1,  /* unsupported version or reserved bits */
    DSMT_RDMA_REFUSE_JOB = 2,      /* another job */
    DSMT_RDMA_REFUSE_GEOMETRY = 3, /* nnodes, page size, npages or max_msg differ */
    DSMT_RDMA_REFUSE_NODE = 4,     /* that node may not connect to this one */
    DSMT_RDMA_REFUSE_DUPLICATE = 5,/* that node is connected already, or was lost */
    DSMT_RDMA_REFUSE_RESOURCES = 6,/* the accepting side could not set the connection up */
};

enum { DSMT_RDMA_K_KEYS = 1, DSMT_RDMA_K_MSG = 2, DSMT_RDMA_K_CREDIT = 3, DSMT_RDMA_K_AUTH = 4 };
enum { DSMT_RDMA_F_FIRST = 0x1, DSMT_RDMA_F_LAST = 0x2, DSMT_RDMA_F_FRAME = 0x4 };

enum {
    DSMT_RDMA_M_KIND = 0,
    DSMT_RDMA_M_FLAGS = 1,
    DSMT_RDMA_M_CREDITS = 2,
    DSMT_RDMA_M_LENGTH = 4,
    DSMT_RDMA_M_PAGE = 8,
};

enum {
    DSMT_RDMA_K_ADDR = 0,
    DSMT_RDMA_K_RKEY = 8,
    DSMT_RDMA_K_CREDITS = 12,
    DSMT_RDMA_K_FRAMES_LEN = 16,
    DSMT_RDMA_K_PROOF = 24,
};

#endif

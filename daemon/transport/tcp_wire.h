/*
 * tcp_wire.h - byte layout of the TCP transport's stream (the rules are at the top of tcp.c).
 *
 * All integers are little-endian. Each side first sends one hello, then frames:
 *
 *   hello (48 bytes)                       frame header (16 bytes)
 *     0  u32 magic   DSMT_TCP_MAGIC          0  u32 len     message bytes that follow (<= max_msg)
 *     4  u16 version DSMT_TCP_VERSION        4  u32 flags   DSMT_TCP_F_FRAME or 0; other bits invalid
 *     6  u16 reserved, 0                     8  u64 page    frame page, or DSMT_NO_PAGE without a frame
 *     8  u32 node    sender's node id      then len bytes of message, then page_size bytes of frame
 *    12  u32 nnodes                        when DSMT_TCP_F_FRAME is set.
 *    16  u64 job_id
 *    24  u64 page_size
 *    32  u64 npages
 *    40  u64 max_msg
 *
 * Kept in its own header so the conformance suite can build raw (and broken) streams.
 */
#ifndef DSMT_TCP_WIRE_H
#define DSMT_TCP_WIRE_H

#define DSMT_TCP_MAGIC     0x544d5344u /* "DSMT" as little-endian bytes */
#define DSMT_TCP_VERSION   1u
#define DSMT_TCP_HELLO_LEN 48u
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
};

/* Offsets inside a frame header. */
enum {
    DSMT_TCP_F_LEN = 0,
    DSMT_TCP_F_FLAGS = 4,
    DSMT_TCP_F_PAGE = 8,
};

#endif

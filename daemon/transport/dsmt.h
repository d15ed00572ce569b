/*
 * dsmt.h - the transport ops table: how one node's daemon reaches the others.
 *
 * A transport moves two things between daemons: active messages (an opaque, already
 * encoded protocol message of at most `max_msg` bytes) and page frames. A frame travels
 * attached to a message: the sender names a page of its frame memory, and the receiver has
 * the page's bytes in the *same* page of its own frame memory before its on_message
 * callback runs. TCP copies the frame through the socket straight into place; RDMA moves
 * it with an RDMA WRITE into the registered frames, then sends the message. Protocol code
 * never sees the difference but one: an RDMA frame lands when the NIC places it, any time
 * between send() and the delivery, even before the receiver has delivered earlier messages
 * from the same sender. So a receiver must not write a page it is about to receive (its
 * writes could be lost, or land over the frame), and two framed messages for the same page
 * from one sender must not be in flight at once if the receiver reads the page when the
 * first one is delivered.
 *
 * Peers are numbered 0..nnodes-1. The daemon listens, then connects to every peer with a
 * lower number; the peer with the higher number is always the connecting side, so each
 * pair shares exactly one connection. A connection is a peer only after its hello (node
 * id, job geometry) checks out; a connection that sends anything malformed before that is
 * dropped with a log line and does not disturb anyone else.
 *
 * Threading: none. Everything runs on the daemon's event loop thread: the daemon polls
 * event_fd() and calls progress() when it is readable (and after each batch of sends).
 */
#ifndef DSMT_H
#define DSMT_H

#include <stddef.h>
#include <stdint.h>

#include "dsm_status.h"

#define DSMT_NO_PAGE UINT64_MAX
#define DSMT_SECRET_LEN 32 /* bytes of dsmt_config.secret */

typedef struct dsmt dsmt_t;

/* Upcalls into the daemon. Called only from inside progress(), send() or drop(). */
struct dsmt_handler {
    void *ctx;
    /* Peer `node` completed its hello: messages may flow both ways. */
    void (*on_peer_up)(void *ctx, int node);
    /* A message from `node`. `msg` is valid during the call only. If a frame was attached,
     * its bytes already sit in frame `page`; otherwise page == DSMT_NO_PAGE. Messages from
     * one peer arrive in the order they were sent. */
    void (*on_message)(void *ctx, int node, const uint8_t *msg, size_t len, uint64_t page);
    /* Peer `node` is gone (closed, reset, protocol violation): `reason` says why. No more
     * messages will come from it and sends to it fail. Called once per peer. */
    void (*on_peer_lost)(void *ctx, int node, const char *reason);
};

struct dsmt_config {
    int      self;        /* this node's id */
    int      nnodes;      /* job size in nodes */
    void    *frames;      /* the node's frame memory (daemon's view) */
    uint64_t npages;      /* pages in `frames` */
    size_t   page_size;
    size_t   max_msg;     /* largest message accepted; larger input is a protocol violation */
    uint64_t job_id;      /* carried in the hello; peers of another job are refused */
    /* The job's secret, shared by its daemons only (dsmrun hands it to each on stdin;
     * a standalone daemon makes its own). A connection is a peer only after both sides
     * proved they hold it: each answers the other's fresh nonce with HMAC-SHA256(secret,
     * nonce || own node id || job id) (hmac.h; tcp_wire.h has TCP's exchange). */
    uint8_t  secret[DSMT_SECRET_LEN];
    const char *device;   /* RDMA: the device to use (NULL: the one the listen address is on) */
    int      poll_us;     /* RDMA: after a send, poll for completions this long before the
                           * caller sleeps on event_fd() (0: never; see rdma.c) */
};

/* dsmt_ops.flags */
#define DSMT_PINS_FRAMES 0x1u /* the frames are registered (pinned) with a device: their pages
                               * must stay in place (no hole punching); zero them instead */

struct dsmt_ops {
    const char *name;
    unsigned    flags;    /* DSMT_* above */
    /* Make a transport instance; no sockets yet. */
    dsm_status_t (*create)(const struct dsmt_config *cfg, const struct dsmt_handler *h, dsmt_t **out);
    /* Listen on `addr` ("host" or "host:port"; port 0 or none = any). Writes the address
     * peers must use, "host:port", into bound. */
    dsm_status_t (*listen)(dsmt_t *t, const char *addr, char *bound, size_t boundlen);
    /* Connect to peer `node` at "host:port" and send the hello. May complete later: the
     * peer counts as up at on_peer_up. Fails (or later reports on_peer_lost) if the peer
     * cannot be reached within `timeout_ms`. */
    dsm_status_t (*connect)(dsmt_t *t, int node, const char *addr, int timeout_ms);
    /* Queue `msg` (len <= max_msg) for `node`, with frame `page` attached unless page ==
     * DSMT_NO_PAGE. Never blocks. The frame's bytes are captured at the call: the caller may
     * change the frame as soon as send returns. Returns DSM_EPEER if the peer is gone. */
    dsm_status_t (*send)(dsmt_t *t, int node, const void *msg, size_t len, uint64_t page);
    /* Close the connection to peer `node` (it broke the protocol above the transport):
     * on_peer_lost(node, reason) follows, as for any lost peer. */
    void (*drop)(dsmt_t *t, int node, const char *reason);
    /* An fd that becomes readable when progress() has work (epoll-able). */
    int (*event_fd)(dsmt_t *t);
    /* Do all work that is ready without blocking: accept, read, deliver, write queued data. */
    dsm_status_t (*progress)(dsmt_t *t);
    /* Bytes queued but not yet handed to the kernel/NIC, over all peers (flow-control view). */
    size_t (*backlog)(dsmt_t *t);
    /* Close everything and free the instance. */
    void (*destroy)(dsmt_t *t);
};

/* The transports this build has (rdma only where libibverbs and librdmacm were found). */
extern const struct dsmt_ops dsmt_tcp_ops;
extern const struct dsmt_ops dsmt_rdma_ops;

/* Look a transport up by name ("tcp", "rdma"); NULL if this build lacks it. */
const struct dsmt_ops *dsmt_find(const char *name);

/* The i-th transport of this build, from 0; NULL past the last. */
const struct dsmt_ops *dsmt_at(size_t i);

#endif

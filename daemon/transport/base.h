/*
 * base.h - what every transport shares (UCX's uct_base idea, kept small): a connection's
 * out queue, address strings, the proof of the hello, the connect/accept deadline timer,
 * and closing a descriptor with one log line. tcp.c and rdma.c keep their own connection
 * objects and state machines; these are the helpers they had written twice.
 */
#ifndef DSMT_BASE_H
#define DSMT_BASE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "dsm_status.h"
#include "dsmt.h"

#define DSMT_NONCE_LEN 16u   /* each side's hello nonce */
#define DSMT_PROOF_LEN 32u   /* an HMAC-SHA256 */
#define DSMT_OUTQ_MIN  (64u * 1024)  /* an out queue's first allocation */

#define DSMT_MAX_MSG_LIMIT (64u << 20) /* sanity bound on cfg->max_msg (a length is a u32) */

/* The peer table: per node, the connection that stands for it and where it is. A peer is
 * P_UP only after the hellos and proofs; a lost one is reported once and never readmitted. */
enum dsmt_peer_state { DSMT_P_NONE, DSMT_P_PENDING, DSMT_P_UP, DSMT_P_LOST };
struct dsmt_peer {
    void *conn;                 /* the transport's connection object, or NULL */
    enum dsmt_peer_state st;
};

/* Whether cfg and h describe a transport that can run (create() refuses otherwise). */
bool dsmt_config_ok(const struct dsmt_config *cfg, const struct dsmt_handler *h);

/* send()'s checks of its arguments (DSM_EINVAL, logged) and of the peer (DSM_EPEER when it
 * was lost: reported already through on_peer_lost; DSM_ESTATE before it is up, logged).
 * 0: the message may go to peer[node].conn. */
dsm_status_t dsmt_send_check(const char *tname, const struct dsmt_config *cfg, const struct dsmt_peer *peer,
                             int node, const void *msg, size_t len, uint64_t page);

/* connect()'s check: the higher node connects, once per peer (DSM_EINVAL / DSM_ESTATE,
 * logged); 0 when it may. */
dsm_status_t dsmt_connect_check(const char *tname, const struct dsmt_config *cfg, const struct dsmt_peer *peer,
                                int node, int timeout_ms);

/* drop()'s check: 1 when node is one of the job's other nodes (else 0, logged). */
int dsmt_drop_check(const char *tname, const struct dsmt_config *cfg, int node);

/* The connection standing for `node` is gone: the table forgets it, marks the node lost
 * and, when `report`, tells the daemon (on_peer_lost, exactly once per node). */
void dsmt_peer_lost(struct dsmt_peer *peer, const struct dsmt_handler *h, int node, const char *reason,
                    int report);

/* Bytes waiting to be sent on a connection: [head, tail) of buf. */
struct dsmt_outq {
    uint8_t *buf;
    size_t head, tail, cap;
};

/* Room for n more bytes at the tail: compacts when the consumed head is at least as large
 * as what is left (so each byte moves O(1) times), else grows. 0 or DSM_ENOMEM. */
dsm_status_t dsmt_outq_reserve(struct dsmt_outq *q, size_t n);
/* Free the queue's memory; it is empty again. */
void dsmt_outq_free(struct dsmt_outq *q);

/* "host", "host:port", "[v6]", "[v6]:port" or a bare IPv6 address into host and port
 * (port "" when absent). 0, or -1 when malformed or too long. */
int dsmt_split_addr(const char *addr, char *host, size_t hl, char *port, size_t pl);
/* "a.b.c.d:port" or "[v6]:port" of an IPv4/IPv6 socket address; "?" otherwise. */
void dsmt_addr_fmt(const struct sockaddr *sa, char *buf, size_t buflen);

/* The proof that the sender of a hello holds the job secret: HMAC-SHA256 under the secret
 * of (the other side's nonce, the prover's node, the job id). */
void dsmt_proof(const struct dsmt_config *cfg, const uint8_t nonce[DSMT_NONCE_LEN], int node,
                uint8_t out[DSMT_PROOF_LEN]);

/* Arm timerfd tfd for the absolute CLOCK_MONOTONIC time `when` in ms (UINT64_MAX:
 * disarm), unless *armed says it already is; `tname` names the transport in the log. */
void dsmt_timer_set(const char *tname, int tfd, uint64_t when, uint64_t *armed);

/* close(fd), a warning naming the transport and `what` if it fails. */
void dsmt_xclose(const char *tname, int fd, const char *what);

#endif

/*
 * tcp_int.h - the TCP transport's objects and the calls its files make of each other: tcp.c
 * (connections, the out queue and writing, the ops), tcp_rx.c (reading and checking the
 * stream, delivery), tcp_cm.c (connecting, accepting, the deadline timer). How it works is
 * at the top of tcp.c.
 */
#ifndef DSMT_TCP_INT_H
#define DSMT_TCP_INT_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* accept4 */
#endif
#include "dsmt.h"
#include "tcp_wire.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "dsm_log.h"
#include "base.h"
#include "hmac.h"
#include "dsm_le.h"


#define RX_SLACK          (128u * 1024) /* staging room beyond one message: a read takes many */
#define READ_BUDGET       (4u << 20)    /* bytes read per connection per progress(), fairness */
#define OUTQ_KEEP         (1u << 20)    /* an emptied out queue larger than this is freed */
#define ACCEPT_HELLO_MS   10000         /* an accepted connection must say hello within this */
#define RETRY_MS          50            /* connect retry period while the peer refuses */
#define KEEPALIVE_IDLE_S  5             /* an idle peer host is probed after this, */
#define KEEPALIVE_INTVL_S 1             /* every second, */
#define KEEPALIVE_COUNT   3             /* and declared gone after this many misses */
#define USER_TIMEOUT_MS   30000         /* data unacknowledged (or stuck behind a zero window)
                                         * this long: the peer is gone, not just slow */
#define MAX_EVENTS        64
#define ACCEPT_BATCH      32            /* accepts per progress(): a flood cannot starve peers */
#define UNPROVEN_EXTRA    16            /* accepted, not yet said hello: at most nnodes + this */
#define ACCEPT_PAUSE_MS   100           /* out of descriptors: stop accepting this long, */
#define ACCEPT_PAUSE_MAX  2000          /* doubling up to this while it lasts */

enum conn_state { C_RETRY, C_CONNECTING, C_HELLO, C_UP, C_DEAD };
enum rx_state { RX_HELLO, RX_PROOF, RX_HDR, RX_MSG, RX_FRAME };

/* Unwritten bytes are buf[head, tail). */
struct conn {
    struct conn *next;
    int fd;                   /* -1 while waiting to retry a connect */
    int node;                 /* peer id; -1 for an accepted connection before its hello */
    bool outgoing;
    bool watched;             /* fd is in the epoll set */
    bool want_out;            /* EPOLLOUT is in its interest set */
    enum conn_state state;
    uint64_t deadline;        /* before C_UP: give up at this time (ms, monotonic) */
    uint64_t retry_at;        /* C_RETRY: next connect attempt */
    int timeout_ms;
    int last_err;             /* last connect errno, for the give-up message */
    struct sockaddr_storage sa;
    socklen_t salen;
    char where[80];           /* "host:port" of the other end, for log lines */
    /* Receive: rbuf[rpos, rlen) is unparsed input. In RX_MSG/RX_FRAME the header fields
     * are in mlen/flags/page; in RX_FRAME the message is at rbuf[moff, moff + mlen) and
     * fgot frame bytes are in place. */
    enum rx_state rx;
    uint8_t *rbuf;
    size_t rcap, rlen, rpos;
    size_t mlen, moff, fgot;
    uint32_t flags;
    uint64_t page;
    struct dsmt_outq q;
    uint8_t my_nonce[DSMT_TCP_NONCE_LEN];   /* sent in our hello; the peer's proof covers it */
    uint8_t peer_nonce[DSMT_TCP_NONCE_LEN]; /* from the peer's hello; our proof covers it */
};

struct tcp {
    struct dsmt_config cfg;
    struct dsmt_handler h;
    int epfd, lfd, tfd;
    struct conn *conns;       /* every connection, dead ones until reaped */
    struct dsmt_peer *peer;        /* [nnodes] */
    size_t backlog;           /* sum of out-queue bytes */
    int depth;                /* progress() nesting guard */
    uint64_t armed_for;       /* deadline the timerfd is set to; UINT64_MAX = disarmed */
    uint64_t accept_at;       /* accepting paused until then (0: not paused) */
    uint64_t accept_pause;    /* the current pause, ms (0 after a successful accept) */
    uint8_t hello[DSMT_TCP_HELLO_LEN];
};

static inline struct tcp *tcp_of(dsmt_t *t)
{
    return (struct tcp *)t;
}

/* ---- between the files ---- */

/* tcp.c */
void dsmt_tcp_conn_kill_errno(struct tcp *t, struct conn *c, const char *what, int err);
void dsmt_tcp_conn_kill(struct tcp *t, struct conn *c, enum dsm_log_level lvl, const char *reason);
struct conn *dsmt_tcp_conn_new(struct tcp *t, int fd, int node, bool outgoing);
int dsmt_tcp_conn_watch(struct tcp *t, struct conn *c, bool want_out);
int dsmt_tcp_sock_tune(int fd);
uint8_t *dsmt_tcp_frame_at(struct tcp *t, uint64_t page);
uint64_t dsmt_tcp_now_ms(void);
void dsmt_tcp_conn_close_fd(struct tcp *t, struct conn *c);
dsm_status_t dsmt_tcp_conn_queue_proof(struct tcp *t, struct conn *c);
dsm_status_t dsmt_tcp_conn_queue_hello(struct tcp *t, struct conn *c);

/* tcp_rx.c */
void dsmt_tcp_conn_read(struct tcp *t, struct conn *c);

/* tcp_cm.c */
void dsmt_tcp_accept_all(struct tcp *t);
void dsmt_tcp_timer_fire(struct tcp *t);
void dsmt_tcp_timer_arm(struct tcp *t);
int dsmt_tcp_connect_try(struct tcp *t, struct conn *c, char *why, size_t len);
void dsmt_tcp_connect_done(struct tcp *t, struct conn *c);

#endif

/*
 * rdma_int.h - the RDMA transport's objects and the calls its files make of each other:
 * rdma.c (connections' life cycle and the ops), rdma_data.c (posting, the out queue,
 * receiving), rdma_dev.c (devices: protection domains, the frames' registration,
 * completion channels) and rdma_cm.c (connection set-up through librdmacm's events, and
 * the deadline timer). How it all works is at the top of rdma.c.
 */
#ifndef DSMT_RDMA_INT_H
#define DSMT_RDMA_INT_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "dsmt.h"
#include "rdma_proto.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <infiniband/verbs.h>
#include <netdb.h>
#include <netinet/in.h>
#include <rdma/rdma_cma.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "dsm_log.h"
#include "base.h"
#include "hmac.h"
#include "dsm_le.h"


#define CREDITS       32u           /* MSG segments a peer may have outstanding at us */
#define RX_EXTRA      6u            /* receives beyond CREDITS: AUTH, KEYS, CREDIT (bound 4) */
#define RX_SLOTS      (CREDITS + RX_EXTRA)
#define TX_SLOTS      (CREDITS + RX_EXTRA)
#define CREDIT_BATCH  (CREDITS / 2) /* pending returns that trigger a CREDIT message */
#define SLOT          DSMT_RDMA_SLOT
#define PAYLOAD       DSMT_RDMA_PAYLOAD
#define CQ_DEPTH      (RX_SLOTS + 2 * TX_SLOTS + 8) /* a flush completes every WR, signalled or not */
#define SIGNAL_EVERY  8u            /* SENDs are signalled one in this many (see post_seg) */
#define CQ_BUDGET     256           /* completions per connection per progress(), fairness */
#define RESOLVE_MS    2000          /* rdma_resolve_addr/route, capped by the connect deadline */
#define ACCEPT_MS     10000         /* an accepted connection must be up within this */
#define DRAIN_MS      1000          /* destroy(): time for sent messages to be acknowledged */
#define RETRY_MS      50            /* connect retry period while nobody listens */
#define LISTEN_BACKLOG 64
#define MAX_EVENTS    64
#define OUTQ_KEEP     (1u << 20)
#define REC_HDR       16u           /* queued record: u32 len, u32 framed, u64 page */
#define PDATA_MAX     256

enum wr_kind { WR_RECV = 1, WR_SEND = 2, WR_WRITE = 3 };
enum conn_state { C_RETRY, C_RESOLVING, C_CONNECTING, C_ACCEPTING, C_KEYS, C_UP, C_DEAD };

/* One RDMA device in use: its protection domain, the frames' registration, the channel. */
struct rdev {
    struct rdev *next;
    struct ibv_context *verbs;
    struct ibv_pd *pd;
    struct ibv_mr *frames_mr;       /* NULL when there are no frames (npages == 0) */
    struct ibv_comp_channel *cc;
    bool watched;                   /* cc's fd is in the epoll set */
};

/* Unsent bytes are buf[head, tail): records of REC_HDR + message + frame, 8-byte aligned. */
struct conn {
    struct conn *next;
    struct rdma_cm_id *id;          /* NULL while waiting to retry */
    struct rdev *dev;
    struct ibv_cq *cq;
    struct ibv_mr *mr;
    uint8_t *buf;                   /* rx slots | tx slots | bounce pages */
    size_t buflen;
    int node;                       /* peer id; accepted connections know it from the hello */
    bool outgoing;
    bool qp_made;
    bool connected;                 /* ESTABLISHED seen: disconnect when killed */
    bool rearm;                     /* a CQ event was consumed: re-arm before polling */
    bool sent_keys, got_keys;
    bool authed;                    /* accepted: the peer's AUTH proof checked out */
    uint8_t my_nonce[DSMT_RDMA_NONCE_LEN];   /* in our hello; the peer's proof covers it */
    uint8_t peer_nonce[DSMT_RDMA_NONCE_LEN]; /* from the peer's hello; our proof covers it */
    enum conn_state state;
    uint64_t deadline;              /* before C_UP: give up at this time (ms, monotonic) */
    uint64_t retry_at;              /* C_RETRY: next attempt */
    int timeout_ms;
    char where[80];                 /* "host:port" of the other end */
    char why[160];                  /* last connect failure, for the give-up message */
    struct sockaddr_storage dst;    /* outgoing: the peer's address */
    /* the peer's frames and our right to send */
    uint64_t raddr;
    uint32_t rkey;
    uint32_t credits;               /* MSG segments we may still post */
    uint32_t credit_max;            /* what the peer granted in its KEYS */
    uint32_t ret_pending;           /* receive slots re-posted, not yet returned */
    uint32_t tx_head, tx_tail;      /* send slots in use: [tail, head) modulo TX_SLOTS */
    uint32_t tx_signaled;           /* tx_head of the last signalled SEND */
    struct dsmt_rdma_asm reasm;     /* a segmented message being reassembled */
    /* messages waiting for credits or send slots */
    struct dsmt_outq q;
    size_t q_off;                   /* bytes of the head record's message already posted */
};

struct rdma {
    struct dsmt_config cfg;
    struct dsmt_handler h;
    bool closing;                   /* in destroy(): no more upcalls (drain_sends) */
    int epfd, tfd, kfd;
    struct rdma_event_channel *ec;
    struct rdma_cm_id *lid;         /* the listener */
    struct sockaddr_storage src;    /* listen address, port 0: source of outgoing connections */
    bool have_src;
    struct rdev *devs;
    struct conn *conns;             /* every connection, dead ones until reaped */
    struct dsmt_peer *peer;              /* [nnodes] */
    size_t backlog;
    int depth;                      /* progress() nesting guard */
    bool kicked;                    /* the eventfd holds a wake-up */
    uint64_t armed_for;             /* deadline the timerfd is set to; UINT64_MAX = disarmed */
    uint64_t spin_until;            /* busy-poll window (ns, monotonic) */
    uint64_t delivered;             /* messages delivered so far */
    struct dsmt_rdma_geom geom;     /* what the hellos carry and check */
};

/* A CM event, copied so the event can be acknowledged before it is handled (an id may only
 * be destroyed once its events are acknowledged). */
struct cm_ev {
    enum rdma_cm_event_type type;
    int status;
    struct rdma_cm_id *id;
    uint8_t pdata[PDATA_MAX];
    size_t plen;
};

static inline struct rdma *rdma_of(dsmt_t *t)
{
    return (struct rdma *)t;
}

/* ---- between the files ---- */

/* rdma.c: helpers, a connection's buffer and life cycle */
uint64_t dsmt_rdma_now_ms(void);
int dsmt_rdma_set_nonblock(int fd);
uint8_t *dsmt_rdma_rx_slot(struct conn *c, uint32_t i);
uint8_t *dsmt_rdma_tx_slot(struct conn *c, uint32_t i);
uint8_t *dsmt_rdma_bounce_page(struct rdma *t, struct conn *c, uint32_t i);
uint8_t *dsmt_rdma_frame_at(struct rdma *t, uint64_t page);
uint32_t dsmt_rdma_tx_free(const struct conn *c);
int dsmt_rdma_post_recv(struct conn *c, uint32_t i);
struct conn *dsmt_rdma_conn_new(struct rdma *t, int node, bool outgoing);
void dsmt_rdma_conn_kill(struct rdma *t, struct conn *c, enum dsm_log_level lvl, const char *reason);
void dsmt_rdma_conn_kill_errno(struct rdma *t, struct conn *c, const char *what, int err);
void dsmt_rdma_conn_release(struct conn *c);
int dsmt_rdma_conn_resources(struct rdma *t, struct conn *c, char *why, size_t wl);

/* rdma_dev.c */
struct rdev *dsmt_rdma_rdev_get(struct rdma *t, struct ibv_context *verbs);
void dsmt_rdma_rdev_free(struct rdma *t, struct rdev *d);

/* rdma_data.c */
void dsmt_rdma_kick(struct rdma *t);
int dsmt_rdma_post_seg(struct rdma *t, struct conn *c, uint8_t kind, uint8_t flags, uint32_t length, uint64_t page,
             const void *payload, size_t plen, const uint8_t *frame);
int dsmt_rdma_post_msg(struct rdma *t, struct conn *c, const uint8_t *msg, size_t len, uint64_t page,
             const uint8_t *frame, size_t *off);
dsm_status_t dsmt_rdma_enqueue(struct rdma *t, struct conn *c, const void *msg, size_t len, uint64_t page);
void dsmt_rdma_conn_push(struct rdma *t, struct conn *c);
int dsmt_rdma_conn_poll(struct rdma *t, struct conn *c, int budget);
int dsmt_rdma_send_auth(struct rdma *t, struct conn *c);
void dsmt_rdma_cc_drain(struct rdma *t, struct rdev *d);
bool dsmt_rdma_poll_all(struct rdma *t);

/* rdma_cm.c */
void dsmt_rdma_cm_drain(struct rdma *t);
int dsmt_rdma_connect_try(struct rdma *t, struct conn *c, char *why, size_t wl);
void dsmt_rdma_timer_arm(struct rdma *t);
void dsmt_rdma_timer_fire(struct rdma *t);

#endif

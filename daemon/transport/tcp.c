/*
 * tcp.c - the TCP transport behind dsmt_tcp_ops: one stream socket per peer pair.
 *
 * Stream (byte layout in tcp_wire.h): each side sends one hello first, then frames of
 * { u32 len, u32 flags, u64 page } + len bytes of message + page_size bytes of frame when
 * flags has DSMT_TCP_F_FRAME. The connecting side (the higher node id) says hello first;
 * the accepting side checks it and answers with its own hello; then each side proves it
 * holds the job secret by a MAC over the other's nonce, the connecting side first (order
 * and proof in tcp_wire.h). Each side counts the peer up once the other's proof checks out.
 *
 * Invariants:
 *  - A connection is a peer (peer[node].st == P_UP) only after the hellos and proofs. A wrong
 *    proof (another job, a stranger, a replay) drops the connection like anything malformed.
 *    Anything malformed drops that one connection with one log line; a dropped peer gets
 *    on_peer_lost exactly once and is never readmitted (a later hello naming it is refused
 *    as a duplicate).
 *  - A frame header is checked (len <= max_msg, known flags, page < npages) before a single
 *    byte is written to the frames; frame bytes are read straight to page * page_size when
 *    they arrive in a read of their own, or copied there from the staging buffer.
 *  - Messages from a connection are delivered in stream order, each after its frame is
 *    complete, from the connection's staging buffer (no copy, no malloc per message).
 *  - send() writes directly only when the connection's out queue is empty; whatever the
 *    socket does not take is copied to the queue (so frame bytes are captured at the call),
 *    and the queue is flushed on EPOLLOUT. Stream order is therefore call order.
 *  - Callbacks run inside progress(), send() or drop() only. A connection killed in a callback
 *    keeps its memory until the end of progress() (or destroy), so no loop loses its footing.
 *  - Outgoing connections are nonblocking: refused attempts are retried every RETRY_MS until
 *    the connect timeout; a timerfd in the epoll set enforces connect and hello deadlines.
 *  - Strangers are bounded: at most nnodes + UNPROVEN_EXTRA accepted connections without a
 *    hello (more are closed at once), ACCEPT_BATCH accepts per progress(), and out of file
 *    descriptors the listener rests (ACCEPT_PAUSE_MS, doubling) instead of spinning.
 */
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

_Static_assert(DSMT_TCP_NONCE_LEN == DSMT_NONCE_LEN && DSMT_TCP_PROOF_LEN == DSMT_PROOF_LEN,
               "the hello's nonce and proof are the transport base's");

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
#define MAX_MSG_LIMIT     (64u << 20)   /* sanity bound on cfg->max_msg (the length is a u32) */

enum conn_state { C_RETRY, C_CONNECTING, C_HELLO, C_UP, C_DEAD };
enum rx_state { RX_HELLO, RX_PROOF, RX_HDR, RX_MSG, RX_FRAME };
enum peer_state { P_NONE, P_PENDING, P_UP, P_LOST };

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

struct peer {
    struct conn *conn;
    enum peer_state st;
};

struct tcp {
    struct dsmt_config cfg;
    struct dsmt_handler h;
    int epfd, lfd, tfd;
    struct conn *conns;       /* every connection, dead ones until reaped */
    struct peer *peer;        /* [nnodes] */
    size_t backlog;           /* sum of out-queue bytes */
    int depth;                /* progress() nesting guard */
    uint64_t armed_for;       /* deadline the timerfd is set to; UINT64_MAX = disarmed */
    uint64_t accept_at;       /* accepting paused until then (0: not paused) */
    uint64_t accept_pause;    /* the current pause, ms (0 after a successful accept) */
    uint8_t hello[DSMT_TCP_HELLO_LEN];
};

static struct tcp *tcp_of(dsmt_t *t)
{
    return (struct tcp *)t;
}

/* ---- small helpers ---------------------------------------------------------------- */

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts); /* cannot fail for CLOCK_MONOTONIC */
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint8_t *frame_at(struct tcp *t, uint64_t page)
{
    return (uint8_t *)t->cfg.frames + page * t->cfg.page_size;
}

/* Per-connection socket options: no Nagle delay for small protocol messages, and keepalive
 * plus a user timeout so a peer host that vanishes without a FIN is noticed within seconds.
 * 0, or -1 with errno set. */
static int sock_tune(int fd)
{
    static const struct { int level, name, value; } opts[] = {
        { IPPROTO_TCP, TCP_NODELAY, 1 },
        { SOL_SOCKET, SO_KEEPALIVE, 1 },
        { IPPROTO_TCP, TCP_KEEPIDLE, KEEPALIVE_IDLE_S },
        { IPPROTO_TCP, TCP_KEEPINTVL, KEEPALIVE_INTVL_S },
        { IPPROTO_TCP, TCP_KEEPCNT, KEEPALIVE_COUNT },
        { IPPROTO_TCP, TCP_USER_TIMEOUT, USER_TIMEOUT_MS },
    };

    for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++)
        if (setsockopt(fd, opts[i].level, opts[i].name, &opts[i].value, sizeof(int)) < 0)
            return -1;
    return 0;
}

/* ---- connections ------------------------------------------------------------------ */

/* A new connection with its staging buffer, linked into t->conns; NULL if out of memory. */
static struct conn *conn_new(struct tcp *t, int fd, int node, bool outgoing)
{
    struct conn *c = calloc(1, sizeof(*c));

    if (c == NULL)
        return NULL;
    c->rcap = t->cfg.max_msg + DSMT_TCP_HDR_LEN + RX_SLACK;
    c->rbuf = malloc(c->rcap);
    if (c->rbuf == NULL) {
        free(c);
        return NULL;
    }
    c->fd = fd;
    c->node = node;
    c->outgoing = outgoing;
    c->state = C_HELLO;
    c->rx = RX_HELLO;
    c->next = t->conns;
    t->conns = c;
    return c;
}

static const char *conn_label(const struct conn *c, char *buf, size_t len)
{
    if (c->node >= 0)
        snprintf(buf, len, "node %d (%s)", c->node, c->where);
    else
        snprintf(buf, len, "connection from %s", c->where);
    return buf;
}

/* Put the connection's fd in the epoll set, or change its interest. 0 or -errno. */
static int conn_watch(struct tcp *t, struct conn *c, bool want_out)
{
    struct epoll_event ev = { .events = EPOLLIN | (want_out ? EPOLLOUT : 0u), .data.ptr = c };

    if (c->state == C_CONNECTING)
        ev.events = EPOLLOUT; /* nothing to read before the connect completes */
    if (epoll_ctl(t->epfd, c->watched ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c->fd, &ev) < 0)
        return -errno;
    c->watched = true;
    c->want_out = want_out;
    return 0;
}

static void conn_close_fd(struct tcp *t, struct conn *c)
{
    if (c->fd < 0)
        return;
    if (c->watched && epoll_ctl(t->epfd, EPOLL_CTL_DEL, c->fd, NULL) < 0)
        DSM_WARN("tcp: epoll_ctl(DEL, fd %d): %s", c->fd, strerror(errno));
    dsmt_xclose("tcp", c->fd, "connection");
    c->fd = -1;
    c->watched = false;
    c->want_out = false;
}

static void outq_release(struct tcp *t, struct dsmt_outq *q)
{
    t->backlog -= q->tail - q->head;
    dsmt_outq_free(q);
}

/* Drop the connection: one log line at `lvl`, close, and if it stood for a peer (up or being
 * connected to), mark that peer lost and tell the daemon. Idempotent. Memory stays until reaped. */
static void conn_kill(struct tcp *t, struct conn *c, enum dsm_log_level lvl, const char *reason)
{
    char label[128];
    bool peer;

    if (c->state == C_DEAD)
        return;
    peer = c->node >= 0 && t->peer[c->node].conn == c;
    dsm_log(lvl, "tcp: %s %s: %s", peer ? "lost" : "dropped",
            conn_label(c, label, sizeof(label)), reason);
    conn_close_fd(t, c);
    outq_release(t, &c->q);
    c->state = C_DEAD;
    if (!peer)
        return;
    t->peer[c->node].conn = NULL;
    t->peer[c->node].st = P_LOST;
    t->h.on_peer_lost(t->h.ctx, c->node, reason);
}

static void conn_kill_errno(struct tcp *t, struct conn *c, const char *what, int err)
{
    char reason[160];

    snprintf(reason, sizeof(reason), "%s: %s", what, strerror(err));
    conn_kill(t, c, DSM_LOG_INFO, reason);
}

static void conn_free(struct conn *c)
{
    free(c->rbuf);
    free(c->q.buf);
    free(c);
}

/* Free connections that died; only outside callbacks (no caller may hold one). */
static void reap(struct tcp *t)
{
    struct conn **pp = &t->conns;

    while (*pp != NULL) {
        struct conn *c = *pp;
        if (c->state == C_DEAD) {
            *pp = c->next;
            conn_free(c);
        } else {
            pp = &c->next;
        }
    }
}

/* ---- out queue and writing -------------------------------------------------------- */

/* Copy the bytes of iov[] from byte `skip` on to the queue (room was reserved). */
static void outq_append(struct tcp *t, struct dsmt_outq *q, const struct iovec *iov, int n, size_t skip)
{
    for (int i = 0; i < n; i++) {
        size_t len = iov[i].iov_len;
        if (skip >= len) {
            skip -= len;
            continue;
        }
        memcpy(q->buf + q->tail, (const uint8_t *)iov[i].iov_base + skip, len - skip);
        q->tail += len - skip;
        t->backlog += len - skip;
        skip = 0;
    }
}

/* Write what the socket takes from the out queue; adjust EPOLLOUT interest. A write error
 * kills the connection (and may call on_peer_lost). 0, or DSM_EPEER if it died. */
static dsm_status_t conn_flush(struct tcp *t, struct conn *c)
{
    struct dsmt_outq *q = &c->q;
    int err;

    while (q->head < q->tail) {
        ssize_t w = send(c->fd, q->buf + q->head, q->tail - q->head, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w >= 0) {
            q->head += (size_t)w;
            t->backlog -= (size_t)w;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            break;
        } else if (errno != EINTR) {
            conn_kill_errno(t, c, "write", errno);
            return DSM_EPEER;
        }
    }
    if (q->head == q->tail) {
        q->head = q->tail = 0;
        if (q->cap > OUTQ_KEEP)
            outq_release(t, q);
    }
    if ((q->head < q->tail) != c->want_out && (err = conn_watch(t, c, q->head < q->tail)) < 0) {
        conn_kill_errno(t, c, "epoll_ctl", -err);
        return DSM_EPEER;
    }
    return 0;
}

/* Queue len handshake bytes on a connection and ask for EPOLLOUT to send them. */
static dsm_status_t conn_queue_raw(struct tcp *t, struct conn *c, void *b, size_t len)
{
    struct iovec iov = { .iov_base = b, .iov_len = len };

    if (dsmt_outq_reserve(&c->q, len) < 0)
        return DSM_ENOMEM;
    outq_append(t, &c->q, &iov, 1, 0);
    return conn_watch(t, c, true) < 0 ? DSM_ESYS : 0;
}

/* Queue our hello with a fresh nonce for this connection. */
static dsm_status_t conn_queue_hello(struct tcp *t, struct conn *c)
{
    uint8_t b[DSMT_TCP_HELLO_LEN];

    if (getrandom(c->my_nonce, sizeof(c->my_nonce), 0) != (ssize_t)sizeof(c->my_nonce)) {
        DSM_ERR("tcp: getrandom: %s", strerror(errno));
        return DSM_ESYS;
    }
    memcpy(b, t->hello, sizeof(b));
    memcpy(b + DSMT_TCP_H_NONCE, c->my_nonce, sizeof(c->my_nonce));
    return conn_queue_raw(t, c, b, sizeof(b));
}

/* Queue our proof: our MAC over the peer's nonce. */
static dsm_status_t conn_queue_proof(struct tcp *t, struct conn *c)
{
    uint8_t b[DSMT_TCP_PROOF_LEN];

    dsmt_proof(&t->cfg, c->peer_nonce, t->cfg.self, b);
    return conn_queue_raw(t, c, b, sizeof(b));
}

/* ---- receiving -------------------------------------------------------------------- */

/* Why a hello is unacceptable on this connection, or NULL if it is fine. */
static const char *hello_problem(struct tcp *t, struct conn *c, const uint8_t *b, char *why, size_t len)
{
    uint32_t node = dsm_get32(b + DSMT_TCP_H_NODE);

    if (dsm_get32(b + DSMT_TCP_H_MAGIC) != DSMT_TCP_MAGIC)
        return "bad hello: wrong magic (not a dsm transport peer)";
    if (dsm_get32(b + DSMT_TCP_H_VERSION) != DSMT_TCP_VERSION) /* version + reserved, both fixed */
        return "bad hello: unsupported protocol version";
    if (dsm_get64(b + DSMT_TCP_H_JOB) != t->cfg.job_id) {
        snprintf(why, len, "bad hello: job id %#llx, this job is %#llx",
                 (unsigned long long)dsm_get64(b + DSMT_TCP_H_JOB), (unsigned long long)t->cfg.job_id);
        return why;
    }
    if (dsm_get32(b + DSMT_TCP_H_NNODES) != (uint32_t)t->cfg.nnodes ||
        dsm_get64(b + DSMT_TCP_H_PAGE_SIZE) != t->cfg.page_size ||
        dsm_get64(b + DSMT_TCP_H_NPAGES) != t->cfg.npages ||
        dsm_get64(b + DSMT_TCP_H_MAX_MSG) != t->cfg.max_msg)
        return "bad hello: job geometry differs (nnodes, page size, npages or max_msg)";
    if (c->outgoing && node != (uint32_t)c->node) {
        snprintf(why, len, "bad hello: answered as node %u", node);
        return why;
    }
    if (!c->outgoing && (node >= (uint32_t)t->cfg.nnodes || node <= (uint32_t)t->cfg.self)) {
        snprintf(why, len, "bad hello: node %u may not connect to node %d of %d",
                 node, t->cfg.self, t->cfg.nnodes);
        return why;
    }
    if (!c->outgoing && t->peer[node].st != P_NONE) {
        snprintf(why, len, "bad hello: node %u is already connected or was lost", node);
        return why;
    }
    return NULL;
}

/* Check the peer's hello; answer it (accepting side: our hello; connecting side: our
 * proof) and wait for the peer's proof. false if the connection died. */
static bool rx_hello(struct tcp *t, struct conn *c, const uint8_t *b)
{
    char why[160];
    const char *problem = hello_problem(t, c, b, why, sizeof(why));

    if (problem != NULL) {
        conn_kill(t, c, DSM_LOG_WARN, problem);
        return false;
    }
    memcpy(c->peer_nonce, b + DSMT_TCP_H_NONCE, sizeof(c->peer_nonce));
    /* The claimed id, for the proof and log lines; not a peer (t->peer) before the proof. */
    c->node = (int)dsm_get32(b + DSMT_TCP_H_NODE);
    if ((c->outgoing ? conn_queue_proof(t, c) : conn_queue_hello(t, c)) < 0) {
        conn_kill(t, c, DSM_LOG_ERROR, "cannot queue the hello answer");
        return false;
    }
    c->rx = RX_PROOF;
    return true;
}

/* Check the peer's proof and bring the peer up. false if the connection died. */
static bool rx_proof(struct tcp *t, struct conn *c, const uint8_t *b)
{
    uint8_t want[DSMT_TCP_PROOF_LEN];
    int node = c->node;

    dsmt_proof(&t->cfg, c->my_nonce, node, want);
    if (!dsmt_equal_ct(want, b, sizeof(want))) {
        conn_kill(t, c, DSM_LOG_WARN, "bad proof: the peer does not hold this job's secret");
        return false;
    }
    if (!c->outgoing) {
        if (t->peer[node].st != P_NONE) { /* another connection claimed it meanwhile */
            conn_kill(t, c, DSM_LOG_WARN, "bad hello: node is already connected or was lost");
            return false;
        }
        /* Our proof goes out before anything the daemon sends from on_peer_up. */
        if (conn_queue_proof(t, c) < 0) {
            conn_kill(t, c, DSM_LOG_ERROR, "cannot queue the proof");
            return false;
        }
        t->peer[node].conn = c;
    }
    t->peer[node].st = P_UP;
    c->state = C_UP;
    c->rx = RX_HDR;
    DSM_INFO("tcp: node %d (%s) is up", node, c->where);
    t->h.on_peer_up(t->h.ctx, node);
    return c->state != C_DEAD;
}

/* Check a frame header. false (connection killed) on a protocol violation. */
static bool rx_header(struct tcp *t, struct conn *c, const uint8_t *b)
{
    char why[160];

    c->mlen = dsm_get32(b + DSMT_TCP_F_LEN);
    c->flags = dsm_get32(b + DSMT_TCP_F_FLAGS);
    c->page = dsm_get64(b + DSMT_TCP_F_PAGE);
    why[0] = '\0';
    if (c->mlen > t->cfg.max_msg)
        snprintf(why, sizeof(why), "message of %zu bytes exceeds max_msg %zu", c->mlen, t->cfg.max_msg);
    else if (c->flags & ~DSMT_TCP_F_FRAME)
        snprintf(why, sizeof(why), "unknown frame flags %#x", c->flags);
    else if ((c->flags & DSMT_TCP_F_FRAME) && c->page >= t->cfg.npages)
        snprintf(why, sizeof(why), "frame for page %llu beyond %llu pages",
                 (unsigned long long)c->page, (unsigned long long)t->cfg.npages);
    else if (!(c->flags & DSMT_TCP_F_FRAME) && c->page != DSMT_NO_PAGE)
        snprintf(why, sizeof(why), "page %llu named without a frame", (unsigned long long)c->page);
    if (why[0] == '\0')
        return true;
    char reason[200];
    snprintf(reason, sizeof(reason), "protocol violation: %s", why);
    conn_kill(t, c, DSM_LOG_WARN, reason);
    return false;
}

/* Hand the current message to the daemon. false if the connection died meanwhile. */
static bool rx_deliver(struct tcp *t, struct conn *c)
{
    uint64_t page = (c->flags & DSMT_TCP_F_FRAME) ? c->page : DSMT_NO_PAGE;

    c->rx = RX_HDR;
    t->h.on_message(t->h.ctx, c->node, c->rbuf + c->moff, c->mlen, page);
    return c->state != C_DEAD;
}

/* Copy frame bytes that arrived in the staging buffer into place. true once complete. */
static bool rx_frame_bytes(struct tcp *t, struct conn *c)
{
    size_t avail = c->rlen - c->rpos, take = t->cfg.page_size - c->fgot;

    if (take > avail)
        take = avail;
    memcpy(frame_at(t, c->page) + c->fgot, c->rbuf + c->rpos, take);
    c->rpos += take;
    c->fgot += take;
    return c->fgot == t->cfg.page_size;
}

/* Keep the unparsed tail (a partial hello/header/message) at the start of the staging
 * buffer; while a frame is incomplete keep its message instead, so the rest of the frame
 * can be read straight into place. */
static void rx_compact(struct conn *c)
{
    size_t from = c->rx == RX_FRAME ? c->moff : c->rpos;
    size_t n = c->rx == RX_FRAME ? c->mlen : c->rlen - c->rpos;

    if (from > 0)
        memmove(c->rbuf, c->rbuf + from, n);
    c->moff = 0;
    c->rlen = n;
    c->rpos = c->rx == RX_FRAME ? n : 0;
}

/* Parse and deliver everything complete in the staging buffer. */
static void rx_parse(struct tcp *t, struct conn *c)
{
    for (;;) {
        size_t avail = c->rlen - c->rpos;
        const uint8_t *p = c->rbuf + c->rpos;

        switch (c->rx) {
        case RX_HELLO:
            if (avail >= 4 && dsm_get32(p + DSMT_TCP_H_MAGIC) != DSMT_TCP_MAGIC) {
                /* not one of ours: no need to wait for a whole hello */
                conn_kill(t, c, DSM_LOG_WARN, "bad hello: wrong magic (not a dsm transport peer)");
                return;
            }
            if (avail < DSMT_TCP_HELLO_LEN)
                goto partial;
            c->rpos += DSMT_TCP_HELLO_LEN;
            if (!rx_hello(t, c, p))
                return;
            break;
        case RX_PROOF:
            if (avail < DSMT_TCP_PROOF_LEN)
                goto partial;
            c->rpos += DSMT_TCP_PROOF_LEN;
            if (!rx_proof(t, c, p))
                return;
            break;
        case RX_HDR:
            if (avail < DSMT_TCP_HDR_LEN)
                goto partial;
            c->rpos += DSMT_TCP_HDR_LEN;
            if (!rx_header(t, c, p))
                return;
            c->rx = RX_MSG;
            break;
        case RX_MSG:
            if (avail < c->mlen)
                goto partial;
            c->moff = c->rpos;
            c->rpos += c->mlen;
            c->fgot = 0;
            c->rx = RX_FRAME;
            if (!(c->flags & DSMT_TCP_F_FRAME) && !rx_deliver(t, c))
                return;
            break;
        case RX_FRAME:
            if (!rx_frame_bytes(t, c))
                goto partial;
            if (!rx_deliver(t, c))
                return;
            break;
        }
    }
partial:
    rx_compact(c);
}

/* Where the next read goes: straight into an incomplete frame first, then staging. */
static int rx_iov(struct tcp *t, struct conn *c, struct iovec *iov)
{
    int n = 0;

    if (c->rx == RX_FRAME) {
        iov[n].iov_base = frame_at(t, c->page) + c->fgot;
        iov[n++].iov_len = t->cfg.page_size - c->fgot;
    }
    iov[n].iov_base = c->rbuf + c->rlen;
    iov[n++].iov_len = c->rcap - c->rlen;
    return n;
}

/* Read what the socket has (up to READ_BUDGET) and deliver every complete message. */
static void conn_read(struct tcp *t, struct conn *c)
{
    size_t total = 0;

    while (c->state != C_DEAD && total < READ_BUDGET) {
        bool drained;
        struct iovec iov[2];
        int n = rx_iov(t, c, iov);
        ssize_t r = readv(c->fd, iov, n);

        if (r == 0) {
            bool clean = (c->rx == RX_HDR || c->rx == RX_HELLO) && c->rpos == c->rlen;
            conn_kill(t, c, DSM_LOG_INFO, clean ? "connection closed by peer"
                                                : "connection closed by peer mid-message");
            return;
        }
        if (r < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            if (errno != EINTR)
                conn_kill_errno(t, c, "read", errno);
            continue;
        }
        total += (size_t)r;
        drained = (size_t)r < iov[0].iov_len + (n == 2 ? iov[1].iov_len : 0);
        if (n == 2) { /* the frame took its share first */
            size_t in_frame = (size_t)r < iov[0].iov_len ? (size_t)r : iov[0].iov_len;
            c->fgot += in_frame;
            r -= (ssize_t)in_frame;
        }
        c->rlen += (size_t)r;
        rx_parse(t, c);
        if (drained)
            return; /* a short read emptied the socket; epoll reports more (saves an EAGAIN) */
    }
}

/* ---- connecting ------------------------------------------------------------------- */

/* An outgoing TCP connection is established: send our hello, wait for the answer. */
static dsm_status_t conn_connected(struct tcp *t, struct conn *c)
{
    c->state = C_HELLO;
    c->rx = RX_HELLO;
    return conn_queue_hello(t, c);
}

/* One connect attempt. Refusal schedules a retry until the deadline. 0 while still
 * going (retrying, in progress, connected); -1 with `why` filled when it failed. */
static int connect_try(struct tcp *t, struct conn *c, char *why, size_t len)
{
    uint64_t now = now_ms();

    c->fd = socket(c->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        snprintf(why, len, "socket: %s", strerror(errno));
        return -1;
    }
    if (sock_tune(c->fd) < 0) {
        snprintf(why, len, "setsockopt: %s", strerror(errno));
        return -1;
    }
    if (connect(c->fd, (struct sockaddr *)&c->sa, c->salen) == 0)
        return conn_connected(t, c) == 0 ? 0 : (snprintf(why, len, "cannot queue the hello"), -1);
    if (errno == EINPROGRESS || errno == EINTR) {
        int err;
        c->state = C_CONNECTING;
        if ((err = conn_watch(t, c, true)) == 0)
            return 0;
        snprintf(why, len, "epoll_ctl: %s", strerror(-err));
        return -1;
    }
    c->last_err = errno;
    if (c->last_err != ECONNREFUSED || now + RETRY_MS >= c->deadline) {
        snprintf(why, len, "could not connect to %s within %d ms: %s", c->where, c->timeout_ms,
                 strerror(c->last_err));
        return -1;
    }
    conn_close_fd(t, c);
    c->state = C_RETRY;
    c->retry_at = now + RETRY_MS;
    return 0;
}

/* The pending connect finished (EPOLLOUT): go on to the hello, retry, or give up. */
static void connect_done(struct tcp *t, struct conn *c)
{
    char why[200];
    int err = 0;
    socklen_t len = sizeof(err);

    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) {
        conn_kill_errno(t, c, "getsockopt(SO_ERROR)", errno);
        return;
    }
    if (err == 0) {
        if (conn_connected(t, c) < 0)
            conn_kill(t, c, DSM_LOG_ERROR, "cannot queue the hello");
        return;
    }
    conn_close_fd(t, c);
    c->last_err = err;
    if (err == ECONNREFUSED && now_ms() + RETRY_MS < c->deadline) {
        c->state = C_RETRY;
        c->retry_at = now_ms() + RETRY_MS;
        return;
    }
    snprintf(why, sizeof(why), "could not connect to %s within %d ms: %s", c->where,
             c->timeout_ms, strerror(err));
    conn_kill(t, c, DSM_LOG_WARN, why);
}

/* ---- timers ----------------------------------------------------------------------- */

static void accept_resume(struct tcp *t);

/* Arm the timerfd for the earliest connect retry or deadline; disarm if none. */
static void timer_arm(struct tcp *t)
{
    uint64_t when = t->accept_at ? t->accept_at : UINT64_MAX;

    for (struct conn *c = t->conns; c != NULL; c = c->next) {
        if (c->state == C_RETRY && c->retry_at < when)
            when = c->retry_at;
        if (c->state != C_UP && c->state != C_DEAD && c->deadline < when)
            when = c->deadline;
    }
    dsmt_timer_set("tcp", t->tfd, when, &t->armed_for);
}

/* The timer fired: retry refused connects that are due, drop connections past deadline. */
static void timer_fire(struct tcp *t)
{
    uint64_t ticks, now = now_ms();
    char why[200];

    if (read(t->tfd, &ticks, sizeof(ticks)) < 0 && errno != EAGAIN)
        DSM_WARN("tcp: read(timerfd): %s", strerror(errno));
    t->armed_for = UINT64_MAX; /* one-shot: it is disarmed now */
    if (t->accept_at && t->accept_at <= now)
        accept_resume(t);
    for (struct conn *c = t->conns; c != NULL; c = c->next) {
        if (c->state == C_UP || c->state == C_DEAD)
            continue;
        if (c->deadline <= now && c->state == C_HELLO) {
            snprintf(why, sizeof(why), "no hello within %d ms", c->timeout_ms);
            conn_kill(t, c, DSM_LOG_WARN, why);
        } else if (c->deadline <= now) {
            snprintf(why, sizeof(why), "could not connect to %s within %d ms: %s", c->where,
                     c->timeout_ms, c->last_err ? strerror(c->last_err) : "no answer");
            conn_kill(t, c, DSM_LOG_WARN, why);
        } else if (c->state == C_RETRY && c->retry_at <= now &&
                   connect_try(t, c, why, sizeof(why)) < 0) {
            conn_kill(t, c, DSM_LOG_WARN, why);
        }
    }
}

/* ---- accepting -------------------------------------------------------------------- */

/* Accepted connections that have not proven themselves yet (no hello). */
static int unproven(const struct tcp *t)
{
    int n = 0;

    for (const struct conn *c = t->conns; c != NULL; c = c->next)
        n += c->state == C_HELLO && c->node < 0;
    return n;
}

/* Out of descriptors (or kernel memory): stop watching the listener for a while, doubling
 * the pause while it lasts, instead of spinning on a socket that stays readable. Pending
 * peers wait in the kernel's backlog meanwhile. */
static void accept_pause(struct tcp *t, int err)
{
    t->accept_pause = t->accept_pause ? t->accept_pause * 2 : ACCEPT_PAUSE_MS;
    if (t->accept_pause > ACCEPT_PAUSE_MAX)
        t->accept_pause = ACCEPT_PAUSE_MAX;
    t->accept_at = now_ms() + t->accept_pause;
    if (epoll_ctl(t->epfd, EPOLL_CTL_DEL, t->lfd, NULL) < 0)
        DSM_WARN("tcp: epoll_ctl(listen, del): %s", strerror(errno));
    DSM_WARN("tcp: accept: %s; not accepting for %llu ms", strerror(err), (unsigned long long)t->accept_pause);
}

/* The pause is over: watch the listener again. */
static void accept_resume(struct tcp *t)
{
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &t->lfd };

    t->accept_at = 0;
    if (epoll_ctl(t->epfd, EPOLL_CTL_ADD, t->lfd, &ev) < 0)
        DSM_ERR("tcp: epoll_ctl(listen): %s; no more peers can connect", strerror(errno));
}

/* Accept up to ACCEPT_BATCH pending connections (level-triggered: the rest wake the next
 * round); each must say hello within ACCEPT_HELLO_MS. Past nnodes + UNPROVEN_EXTRA
 * connections without a hello, new ones are closed at once: strangers cannot pile up. */
static void accept_all(struct tcp *t)
{
    int waiting = unproven(t);

    for (int i = 0; i < ACCEPT_BATCH; i++) {
        struct sockaddr_storage sa;
        socklen_t len = sizeof(sa);
        int fd = accept4(t->lfd, (struct sockaddr *)&sa, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        struct conn *c;
        int err;

        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                accept_pause(t, errno);
            else if (errno != EAGAIN && errno != EWOULDBLOCK)
                DSM_WARN("tcp: accept: %s", strerror(errno));
            return;
        }
        t->accept_pause = 0;
        if (waiting >= t->cfg.nnodes + UNPROVEN_EXTRA) {
            char where[128];

            dsmt_addr_fmt((struct sockaddr *)&sa, where, sizeof(where));
            DSM_WARN("tcp: refused a connection from %s: %d connections have not said hello yet", where,
                     waiting);
            dsmt_xclose("tcp", fd, "refused");
            continue;
        }
        c = conn_new(t, fd, -1, false);
        if (c == NULL) {
            DSM_ERR("tcp: out of memory accepting a connection");
            dsmt_xclose("tcp", fd, "accepted");
            continue;
        }
        waiting++;
        dsmt_addr_fmt((struct sockaddr *)&sa, c->where, sizeof(c->where));
        c->timeout_ms = ACCEPT_HELLO_MS;
        c->deadline = now_ms() + ACCEPT_HELLO_MS;
        if (sock_tune(fd) < 0)
            conn_kill_errno(t, c, "setsockopt", errno);
        else if ((err = conn_watch(t, c, false)) < 0)
            conn_kill_errno(t, c, "epoll_ctl", -err);
    }
}

/* ---- the ops ---------------------------------------------------------------------- */

static void encode_hello(struct tcp *t)
{
    uint8_t *b = t->hello;

    memset(b, 0, sizeof(t->hello));
    dsm_put32(b + DSMT_TCP_H_MAGIC, DSMT_TCP_MAGIC);
    dsm_put32(b + DSMT_TCP_H_VERSION, DSMT_TCP_VERSION); /* u16 version, u16 reserved = 0 */
    dsm_put32(b + DSMT_TCP_H_NODE, (uint32_t)t->cfg.self);
    dsm_put32(b + DSMT_TCP_H_NNODES, (uint32_t)t->cfg.nnodes);
    dsm_put64(b + DSMT_TCP_H_JOB, t->cfg.job_id);
    dsm_put64(b + DSMT_TCP_H_PAGE_SIZE, t->cfg.page_size);
    dsm_put64(b + DSMT_TCP_H_NPAGES, t->cfg.npages);
    dsm_put64(b + DSMT_TCP_H_MAX_MSG, t->cfg.max_msg);
}

static bool config_ok(const struct dsmt_config *cfg, const struct dsmt_handler *h)
{
    return cfg->nnodes >= 1 && cfg->self >= 0 && cfg->self < cfg->nnodes &&
           cfg->page_size > 0 && cfg->max_msg > 0 && cfg->max_msg <= MAX_MSG_LIMIT &&
           (cfg->npages == 0 || cfg->frames != NULL) &&
           cfg->npages <= SIZE_MAX / cfg->page_size &&
           h->on_peer_up != NULL && h->on_message != NULL && h->on_peer_lost != NULL;
}

/* See dsmt_ops.create. */
static dsm_status_t tcp_create(const struct dsmt_config *cfg, const struct dsmt_handler *h, dsmt_t **out)
{
    struct epoll_event ev = { .events = EPOLLIN };
    dsm_status_t st = DSM_ESYS;
    struct tcp *t;

    if (!config_ok(cfg, h)) {
        DSM_ERR("tcp: invalid transport configuration");
        return DSM_EINVAL;
    }
    t = calloc(1, sizeof(*t));
    if (t == NULL) {
        DSM_ERR("tcp: out of memory creating the transport");
        return DSM_ENOMEM;
    }
    t->peer = calloc((size_t)cfg->nnodes, sizeof(*t->peer));
    if (t->peer == NULL) {
        DSM_ERR("tcp: out of memory creating the transport");
        st = DSM_ENOMEM;
        goto err_free;
    }
    t->cfg = *cfg;
    t->h = *h;
    t->lfd = -1;
    t->armed_for = UINT64_MAX;
    t->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (t->epfd < 0) {
        DSM_ERR("tcp: epoll_create1: %s", strerror(errno));
        goto err_peer;
    }
    t->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (t->tfd < 0) {
        DSM_ERR("tcp: timerfd_create: %s", strerror(errno));
        goto err_epoll;
    }
    ev.data.ptr = &t->tfd;
    if (epoll_ctl(t->epfd, EPOLL_CTL_ADD, t->tfd, &ev) < 0) {
        DSM_ERR("tcp: epoll_ctl(timerfd): %s", strerror(errno));
        goto err_timer;
    }
    encode_hello(t);
    *out = (dsmt_t *)t;
    return 0;

err_timer:
    dsmt_xclose("tcp", t->tfd, "timerfd");
err_epoll:
    dsmt_xclose("tcp", t->epfd, "epoll");
err_peer:
    free(t->peer);
err_free:
    free(t);
    return st;
}

/* Bind and listen on the first address of host:port that works. Listening fd or -errno. */
static int listen_on(const char *host, const char *port)
{
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
    struct addrinfo *res, *ai;
    int fd = -1, err = EADDRNOTAVAIL, one = 1, rc;

    rc = getaddrinfo(host[0] ? host : NULL, port[0] ? port : "0", &hints, &res);
    if (rc != 0) {
        DSM_ERR("tcp: cannot resolve listen address %s:%s: %s", host, port, gai_strerror(rc));
        return -EINVAL;
    }
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == 0 &&
            bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, SOMAXCONN) == 0)
            break;
        err = errno;
        dsmt_xclose("tcp", fd, "listen");
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        DSM_ERR("tcp: cannot listen on %s:%s: %s", host, port, strerror(err));
        return -err;
    }
    return fd;
}

/* The address peers must use for listening socket fd: its own, or this host's name
 * when it listens on every interface. 0 or a status. */
static dsm_status_t bound_name(int fd, char *bound, size_t boundlen)
{
    struct sockaddr_storage sa;
    socklen_t len = sizeof(sa);
    char name[NI_MAXHOST], port[NI_MAXSERV];
    bool any;

    if (getsockname(fd, (struct sockaddr *)&sa, &len) < 0) {
        DSM_ERR("tcp: getsockname: %s", strerror(errno));
        return DSM_ESYS;
    }
    any = sa.ss_family == AF_INET
        ? ((struct sockaddr_in *)&sa)->sin_addr.s_addr == htonl(INADDR_ANY)
        : IN6_IS_ADDR_UNSPECIFIED(&((struct sockaddr_in6 *)&sa)->sin6_addr);
    if (getnameinfo((struct sockaddr *)&sa, len, name, sizeof(name), port, sizeof(port),
                    NI_NUMERICHOST | NI_NUMERICSERV) != 0 ||
        (any && gethostname(name, sizeof(name)) < 0)) {
        DSM_ERR("tcp: cannot name the listening address");
        return DSM_ESYS;
    }
    if (snprintf(bound, boundlen, sa.ss_family == AF_INET6 && !any ? "[%s]:%s" : "%s:%s",
                 name, port) >= (int)boundlen) {
        DSM_ERR("tcp: buffer too small for the bound address");
        return DSM_EINVAL;
    }
    return 0;
}

/* See dsmt_ops.listen. */
static dsm_status_t tcp_listen(dsmt_t *tt, const char *addr, char *bound, size_t boundlen)
{
    struct tcp *t = tcp_of(tt);
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &t->lfd };
    char host[NI_MAXHOST], port[NI_MAXSERV];
    dsm_status_t st;
    int fd;

    if (t->lfd >= 0) {
        DSM_ERR("tcp: already listening");
        return DSM_ESTATE;
    }
    if (addr == NULL || dsmt_split_addr(addr, host, sizeof(host), port, sizeof(port)) < 0) {
        DSM_ERR("tcp: bad listen address '%s'", addr ? addr : "(null)");
        return DSM_EINVAL;
    }
    fd = listen_on(host, port);
    if (fd < 0)
        return fd == -EINVAL ? DSM_EINVAL : DSM_ESYS;
    st = bound_name(fd, bound, boundlen);
    if (st < 0)
        goto err_close;
    if (epoll_ctl(t->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        DSM_ERR("tcp: epoll_ctl(listen): %s", strerror(errno));
        st = DSM_ESYS;
        goto err_close;
    }
    t->lfd = fd;
    return 0;

err_close:
    dsmt_xclose("tcp", fd, "listen");
    return st;
}

/* Resolve "host:port" for connecting into c->sa. 0 or DSM_EINVAL. */
static dsm_status_t resolve_peer(struct conn *c, const char *addr)
{
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_NUMERICSERV };
    struct addrinfo *res;
    char host[NI_MAXHOST], port[NI_MAXSERV];
    int rc;

    if (addr == NULL || dsmt_split_addr(addr, host, sizeof(host), port, sizeof(port)) < 0 ||
        host[0] == '\0' || port[0] == '\0') {
        DSM_ERR("tcp: bad peer address '%s' (want host:port)", addr ? addr : "(null)");
        return DSM_EINVAL;
    }
    rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        DSM_ERR("tcp: cannot resolve peer address %s: %s", addr, gai_strerror(rc));
        return DSM_EINVAL;
    }
    memcpy(&c->sa, res->ai_addr, res->ai_addrlen);
    c->salen = res->ai_addrlen;
    freeaddrinfo(res);
    snprintf(c->where, sizeof(c->where), "%s", addr);
    return 0;
}

/* Unlink and free a connection nobody else has seen yet. */
static void conn_discard(struct tcp *t, struct conn *c)
{
    struct conn **pp = &t->conns;

    while (*pp != c)
        pp = &(*pp)->next;
    *pp = c->next;
    conn_close_fd(t, c);
    outq_release(t, &c->q);
    conn_free(c);
}

/* See dsmt_ops.connect. Never blocks: refusals are retried from progress() until timeout_ms. */
static dsm_status_t tcp_connect(dsmt_t *tt, int node, const char *addr, int timeout_ms)
{
    struct tcp *t = tcp_of(tt);
    struct conn *c;
    char why[200];
    dsm_status_t st;

    if (node < 0 || node >= t->cfg.self || timeout_ms <= 0) {
        DSM_ERR("tcp: node %d may not connect to node %d (or timeout %d ms)", t->cfg.self, node, timeout_ms);
        return DSM_EINVAL;
    }
    if (t->peer[node].st != P_NONE) {
        DSM_ERR("tcp: connect to node %d twice", node);
        return DSM_ESTATE;
    }
    c = conn_new(t, -1, node, true);
    if (c == NULL) {
        DSM_ERR("tcp: out of memory connecting to node %d", node);
        return DSM_ENOMEM;
    }
    st = resolve_peer(c, addr);
    if (st < 0)
        goto err;
    c->timeout_ms = timeout_ms;
    c->deadline = now_ms() + (uint64_t)timeout_ms;
    t->peer[node].conn = c;
    t->peer[node].st = P_PENDING;
    if (connect_try(t, c, why, sizeof(why)) < 0) {
        DSM_ERR("tcp: connect to node %d: %s", node, why);
        t->peer[node].conn = NULL;
        t->peer[node].st = P_NONE;
        st = DSM_ESYS;
        goto err;
    }
    timer_arm(t);
    return 0;

err:
    conn_discard(t, c);
    return st;
}

/* See dsmt_ops.send. Writes at once when nothing is queued; the rest is copied to the queue. */
static dsm_status_t tcp_send(dsmt_t *tt, int node, const void *msg, size_t len, uint64_t page)
{
    struct tcp *t = tcp_of(tt);
    uint8_t hdr[DSMT_TCP_HDR_LEN];
    struct iovec iov[3];
    struct msghdr mh = { .msg_iov = iov, .msg_iovlen = 2 };
    size_t total = sizeof(hdr) + len;
    struct conn *c;
    ssize_t w;
    int err;

    if (node < 0 || node >= t->cfg.nnodes || node == t->cfg.self || len > t->cfg.max_msg ||
        (len > 0 && msg == NULL) || (page != DSMT_NO_PAGE && page >= t->cfg.npages)) {
        DSM_ERR("tcp: bad send to node %d (%zu bytes, page %llu)", node, len, (unsigned long long)page);
        return DSM_EINVAL;
    }
    if (t->peer[node].st != P_UP) {
        if (t->peer[node].st == P_LOST)
            return DSM_EPEER; /* already reported through on_peer_lost */
        DSM_ERR("tcp: send to node %d before it is up", node);
        return DSM_ESTATE;
    }
    c = t->peer[node].conn;
    dsm_put32(hdr + DSMT_TCP_F_LEN, (uint32_t)len);
    dsm_put32(hdr + DSMT_TCP_F_FLAGS, page != DSMT_NO_PAGE ? DSMT_TCP_F_FRAME : 0);
    dsm_put64(hdr + DSMT_TCP_F_PAGE, page);
    iov[0] = (struct iovec){ .iov_base = hdr, .iov_len = sizeof(hdr) };
    iov[1] = (struct iovec){ .iov_base = (void *)msg, .iov_len = len };
    if (page != DSMT_NO_PAGE) {
        iov[2] = (struct iovec){ .iov_base = frame_at(t, page), .iov_len = t->cfg.page_size };
        mh.msg_iovlen = 3;
        total += t->cfg.page_size;
    }
    /* Room first, so a partial write can always be completed from the queue. */
    if (dsmt_outq_reserve(&c->q, total) < 0) {
        DSM_ERR("tcp: out of memory queueing %zu bytes for node %d", total, node);
        return DSM_ENOMEM;
    }
    if (c->q.head < c->q.tail) { /* EPOLLOUT is armed; the queue goes first */
        outq_append(t, &c->q, iov, (int)mh.msg_iovlen, 0);
        return 0;
    }
    while ((w = sendmsg(c->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT)) < 0 && errno == EINTR)
        ;
    if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
        conn_kill_errno(t, c, "write", errno);
        return DSM_EPEER;
    }
    if (w == (ssize_t)total)
        return 0;
    outq_append(t, &c->q, iov, (int)mh.msg_iovlen, w > 0 ? (size_t)w : 0);
    if ((err = conn_watch(t, c, true)) < 0) {
        conn_kill_errno(t, c, "epoll_ctl", -err);
        return DSM_EPEER;
    }
    return 0;
}

/* See dsmt_ops.drop. The caller has logged why; on_peer_lost runs before this returns
 * (the daemon calls drop from on_message, i.e. inside progress()). */
static void tcp_drop(dsmt_t *tt, int node, const char *reason)
{
    struct tcp *t = tcp_of(tt);

    if (node < 0 || node >= t->cfg.nnodes || node == t->cfg.self) {
        DSM_ERR("tcp: drop of node %d, not a peer", node);
        return;
    }
    if (t->peer[node].conn != NULL)
        conn_kill(t, t->peer[node].conn, DSM_LOG_INFO, reason ? reason : "dropped by the daemon");
}

static int tcp_event_fd(dsmt_t *tt)
{
    return tcp_of(tt)->epfd;
}

/* Handle one epoll event of a connection. */
static void conn_event(struct tcp *t, struct conn *c, uint32_t events)
{
    if (c->state == C_DEAD || c->state == C_RETRY)
        return; /* killed or closed earlier in this batch */
    if (c->state == C_CONNECTING) {
        connect_done(t, c);
        return;
    }
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
        conn_read(t, c);
    if (c->state != C_DEAD && c->q.head < c->q.tail)
        conn_flush(t, c);
}

/* See dsmt_ops.progress. One epoll round; level-triggered, so leftover work keeps the
 * event fd readable. Not reentrant: a callback must not call progress(). */
static dsm_status_t tcp_progress(dsmt_t *tt)
{
    struct tcp *t = tcp_of(tt);
    struct epoll_event evs[MAX_EVENTS];
    dsm_status_t st = 0;
    int n;

    if (t->depth > 0) {
        DSM_ERR("tcp: progress() called from a transport callback");
        return DSM_ESTATE;
    }
    t->depth++;
    n = epoll_wait(t->epfd, evs, MAX_EVENTS, 0);
    if (n < 0 && errno != EINTR) {
        DSM_ERR("tcp: epoll_wait: %s", strerror(errno));
        st = DSM_ESYS;
    }
    for (int i = 0; i < n; i++) {
        if (evs[i].data.ptr == &t->lfd)
            accept_all(t);
        else if (evs[i].data.ptr == &t->tfd)
            timer_fire(t);
        else
            conn_event(t, evs[i].data.ptr, evs[i].events);
    }
    t->depth--;
    reap(t);
    timer_arm(t);
    return st;
}

static size_t tcp_backlog(dsmt_t *tt)
{
    return tcp_of(tt)->backlog;
}

/* See dsmt_ops.destroy. No callbacks. */
static void tcp_destroy(dsmt_t *tt)
{
    struct tcp *t = tcp_of(tt);

    if (t == NULL)
        return;
    while (t->conns != NULL) {
        struct conn *c = t->conns;
        t->conns = c->next;
        conn_close_fd(t, c);
        conn_free(c);
    }
    if (t->lfd >= 0)
        dsmt_xclose("tcp", t->lfd, "listen");
    dsmt_xclose("tcp", t->tfd, "timerfd");
    dsmt_xclose("tcp", t->epfd, "epoll");
    free(t->peer);
    free(t);
}

const struct dsmt_ops dsmt_tcp_ops = {
    .name = "tcp",
    .create = tcp_create,
    .listen = tcp_listen,
    .connect = tcp_connect,
    .send = tcp_send,
    .drop = tcp_drop,
    .event_fd = tcp_event_fd,
    .progress = tcp_progress,
    .backlog = tcp_backlog,
    .destroy = tcp_destroy,
};

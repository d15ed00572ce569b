/*
 * rdma.c - the RDMA transport behind dsmt_rdma_ops: librdmacm for addressing and connection
 * set-up, libibverbs RC queue pairs for the traffic, one queue pair per peer pair.
 *
 * Byte layouts are in rdma_wire.h. Life of a connection (the higher node id connects, as in
 * dsmt.h): rdma_resolve_addr -> rdma_resolve_route -> queue pair, receives posted ->
 * rdma_connect carrying our hello (with a fresh nonce) as private data -> the accepting side
 * checks it (magic, version, job id, geometry, node id: the checks tcp.c makes), rejects with
 * a reason or accepts carrying its own hello and nonce -> the connecting side checks that
 * answer -> ESTABLISHED -> the connecting side proves it holds the job secret (AUTH: an HMAC
 * over the other's nonce) -> the accepting side checks the proof, only then counts it as
 * the peer and sends KEYS (its frames' address and rkey, the credits it grants, its own
 * proof) -> the connecting side checks that proof and sends its KEYS -> a side counts the
 * peer up once it has sent its KEYS and received the peer's. Addresses and rkeys therefore
 * travel only over a connection whose hellos and proofs checked out, and the side that
 * proves first learns no rkey before it did. An accepted connection that fails before its
 * proof is dropped without on_peer_lost, as over TCP. "Nobody listens there" (a reject that
 * is not ours, or unreachable) is retried every RETRY_MS until the connect timeout, like
 * ECONNREFUSED over TCP; a dsm peer's refusal is final.
 *
 * Memory and access rights:
 *  - One protection domain and one completion channel per device (struct rdev). The node's
 *    frames are registered once per device, when the device is first used (listen on its
 *    address, or the first connection through it), with LOCAL_WRITE | REMOTE_WRITE: peers
 *    write frames; nothing reads them remotely, so REMOTE_READ is not granted. Without
 *    on-demand paging the registration pins the whole range: the frames become resident
 *    (bound the global space with --space-size where that matters), and they must keep their
 *    pages: the daemon zeroes freed frames instead of punching holes (DSMT_PINS_FRAMES),
 *    since the NIC would go on writing the old, punched-out pages.
 *  - Per connection one buffer, registered LOCAL_WRITE only: RX_SLOTS receive slots, TX_SLOTS
 *    send slots, TX_SLOTS bounce pages.
 *
 * Messages and frames:
 *  - Messages go as SENDs into pre-posted receive slots of DSMT_RDMA_SLOT bytes; a longer
 *    message is split into segments and reassembled at the receiver. A one-segment message
 *    (every protocol message of the daemon) is delivered straight from its receive slot.
 *  - A frame goes by RDMA WRITE from the sender into the same page of the receiver's frames,
 *    posted just before the message's first SEND on the same RC queue pair. RC executes a
 *    queue pair's requests in order at the responder, so the frame is in place before the
 *    receive completion of that SEND exists, let alone before on_message: no copy at the
 *    receiver.
 *  - Capture at the call (dsmt.h): the sender copies the frame into a registered bounce page
 *    and writes from there. Writing straight from the frame would let the NIC read it after
 *    send() returned, and nothing keeps the frame still until the WRITE completes: the
 *    sender's protocol may give a local rank write access as soon as send() returns (a home
 *    that has just served a read copy goes on to its own rank's write fault, sequential; the
 *    home applies diffs while its ranks write and copies go out, release), freed pages are
 *    zeroed, and the conformance suite scribbles over a frame right after send(). So the
 *    bounce copy is required, not a choice: one 4 KiB memcpy at the sender (into memory that
 *    is already registered); the receiver places the page without a copy.
 *  - A consequence of one-sided placement the protocols must respect (see dsmt.h): a frame
 *    lands when the NIC places it, any time between send() and delivery, even before the
 *    receiver has delivered earlier messages from the same peer. A receiver must not write a
 *    page it is about to receive, and two framed messages for one page from one peer must not
 *    be in flight at once if the receiver needs the first one's bytes at its delivery.
 *
 * Flow control (no receiver-not-ready retries: rnr_retry_count is 0, so one would be an error):
 *  - Each side posts RX_SLOTS = CREDITS + RX_EXTRA receives and grants CREDITS in its KEYS. A
 *    MSG segment costs the sender one credit; the receiver re-posts the slot after delivery
 *    and returns credits in the header of whatever it sends next, or in a CREDIT message once
 *    CREDIT_BATCH are pending. KEYS and CREDIT cost no credit.
 *  - Why RX_EXTRA = 6 receives are enough beyond CREDITS: CREDIT messages from A that B has
 *    not processed each return >= CREDIT_BATCH credits, for data B sent; B sends at most
 *    CREDITS data segments beyond the credits it has processed, so at most
 *    CREDITS / CREDIT_BATCH = 2 such CREDIT messages are unprocessed at B, plus one AUTH and
 *    one KEYS (4; two spare).
 *  - Deadlock-free: a sender out of credits has CREDITS segments at the receiver; once they
 *    are processed the receiver has returned part of them piggybacked or holds >=
 *    CREDIT_BATCH and sends a CREDIT message, which needs no credit.
 *  - send() posts at once when nothing is queued and credits and send slots suffice; otherwise
 *    the message (and its frame) is copied to the connection's queue and posted, in call
 *    order, as credits return. backlog() counts the queued bytes.
 *
 * Completions: one CQ per connection on its device's completion channel. Receives are always
 * signalled; a SEND only one in SIGNAL_EVERY, so a daemon is not woken for the completion of
 * each message it sent (its send slots are freed in bulk). Every work completion's status is
 * checked; a failed or flushed one (failures complete signalled or not) tears the connection
 * down, and if it stood for a peer the daemon hears on_peer_lost with the status, as when a
 * TCP peer dies. So does the peer's disconnect (the CM's DISCONNECTED event) and anything
 * malformed it sends.
 *
 * Event fd and polling: event_fd() is an internal epoll set holding the CM event channel, the
 * completion channels, a timerfd (connect/accept deadlines, connect retries) and an eventfd
 * that progress() and send() use to ask for another progress() call. progress() drains CM
 * events, consumes CQ events (re-arming those CQs), then polls every connection's CQ until
 * empty (CQ_BUDGET per call; the eventfd keeps the fd readable if more is left), so a caller
 * that calls progress() without waiting on the fd, busy-polling, is served too. With
 * cfg.poll_us > 0 (the daemon passes DSM_DAEMON_POLL_US, off by default on machines with 4
 * cores or fewer) progress() keeps polling the CQs for up to poll_us after a send until a
 * message arrives, before the caller goes back to sleep on the fd.
 *
 * Invariants as in tcp.c: callbacks run inside progress(), send() or drop() only; a dropped
 * peer gets on_peer_lost exactly once and is never readmitted; a connection killed in a
 * callback keeps its memory (and receive slot being delivered) until the end of progress().
 */
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

_Static_assert(DSMT_RDMA_NONCE_LEN == DSMT_NONCE_LEN && DSMT_RDMA_PROOF_LEN == DSMT_PROOF_LEN,
               "the hello's nonce and proof are the transport base's");

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
#define MAX_MSG_LIMIT (64u << 20)
#define OUTQ_KEEP     (1u << 20)
#define REC_HDR       16u           /* queued record: u32 len, u32 framed, u64 page */
#define PDATA_MAX     256

enum wr_kind { WR_RECV = 1, WR_SEND = 2, WR_WRITE = 3 };
enum conn_state { C_RETRY, C_RESOLVING, C_CONNECTING, C_ACCEPTING, C_KEYS, C_UP, C_DEAD };
enum peer_state { P_NONE, P_PENDING, P_UP, P_LOST };

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

struct peer {
    struct conn *conn;
    enum peer_state st;
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
    struct peer *peer;              /* [nnodes] */
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

static struct rdma *rdma_of(dsmt_t *t)
{
    return (struct rdma *)t;
}

/* ---- small helpers ---------------------------------------------------------------- */

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts); /* cannot fail for CLOCK_MONOTONIC */
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t now_ms(void)
{
    return now_ns() / 1000000u;
}

static uint8_t *frame_at(struct rdma *t, uint64_t page)
{
    return (uint8_t *)t->cfg.frames + page * t->cfg.page_size;
}

static uint8_t *rx_slot(struct conn *c, uint32_t i)
{
    return c->buf + (size_t)i * SLOT;
}

static uint8_t *tx_slot(struct conn *c, uint32_t i)
{
    return c->buf + (size_t)(RX_SLOTS + i) * SLOT;
}

static uint8_t *bounce_page(struct rdma *t, struct conn *c, uint32_t i)
{
    return c->buf + (size_t)(RX_SLOTS + TX_SLOTS) * SLOT + (size_t)i * t->cfg.page_size;
}

static uint32_t tx_free(const struct conn *c)
{
    return TX_SLOTS - (c->tx_head - c->tx_tail);
}

/* SENDs a message of len bytes takes. */
static uint32_t nsegs(size_t len)
{
    return len == 0 ? 1u : (uint32_t)((len + PAYLOAD - 1) / PAYLOAD);
}

static int set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);

    return fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ? -1 : 0;
}

static bool is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
    return sa->sa_family == AF_INET6 && IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)sa)->sin6_addr);
}

/* Resolve "host[:port]" (numeric port; empty port = 0) into *out. 0, or DSM_EINVAL logged. */
static dsm_status_t resolve(const char *addr, bool passive, struct sockaddr_storage *out)
{
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0) };
    struct addrinfo *res;
    char host[NI_MAXHOST], port[NI_MAXSERV];
    int rc;

    if (addr == NULL || dsmt_split_addr(addr, host, sizeof(host), port, sizeof(port)) < 0 ||
        (!passive && (host[0] == '\0' || port[0] == '\0'))) {
        DSM_ERR("rdma: bad address '%s' (want host%s)", addr ? addr : "(null)", passive ? "[:port]" : ":port");
        return DSM_EINVAL;
    }
    rc = getaddrinfo(host[0] ? host : NULL, port[0] ? port : "0", &hints, &res);
    if (rc != 0) {
        DSM_ERR("rdma: cannot resolve %s: %s", addr, gai_strerror(rc));
        return DSM_EINVAL;
    }
    memset(out, 0, sizeof(*out));
    memcpy(out, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    if (is_loopback((struct sockaddr *)out)) {
        DSM_ERR("rdma: %s is a loopback address: rdma_cm cannot use it; use the address of an "
                "RDMA device's network interface", addr);
        return DSM_EINVAL;
    }
    return 0;
}

/* ---- devices ---------------------------------------------------------------------- */

static void rdev_free(struct rdma *t, struct rdev *d)
{
    if (d->watched && epoll_ctl(t->epfd, EPOLL_CTL_DEL, d->cc->fd, NULL) < 0)
        DSM_WARN("rdma: epoll_ctl(DEL, completion channel): %s", strerror(errno));
    if (d->cc != NULL && ibv_destroy_comp_channel(d->cc) != 0)
        DSM_WARN("rdma: ibv_destroy_comp_channel failed");
    if (d->frames_mr != NULL && ibv_dereg_mr(d->frames_mr) != 0)
        DSM_WARN("rdma: ibv_dereg_mr(frames) failed");
    if (d->pd != NULL && ibv_dealloc_pd(d->pd) != 0)
        DSM_WARN("rdma: ibv_dealloc_pd failed");
    free(d);
}

/* The device state for `verbs`: found, or made now (protection domain, frames registered,
 * completion channel in the epoll set). Checks cfg.device. NULL with the reason logged. */
static struct rdev *rdev_get(struct rdma *t, struct ibv_context *verbs)
{
    const char *name = ibv_get_device_name(verbs->device);
    size_t flen = (size_t)t->cfg.npages * t->cfg.page_size;
    struct epoll_event ev = { .events = EPOLLIN };
    struct rdev *d;

    for (d = t->devs; d != NULL; d = d->next)
        if (d->verbs == verbs)
            return d;
    if (t->cfg.device != NULL && t->cfg.device[0] != '\0' && strcmp(name, t->cfg.device) != 0) {
        DSM_ERR("rdma: the address is on RDMA device %s, not on %s (the device asked for)", name, t->cfg.device);
        return NULL;
    }
    d = calloc(1, sizeof(*d));
    if (d == NULL) {
        DSM_ERR("rdma: out of memory");
        return NULL;
    }
    d->verbs = verbs;
    d->pd = ibv_alloc_pd(verbs);
    if (d->pd == NULL) {
        DSM_ERR("rdma: ibv_alloc_pd(%s): %s", name, strerror(errno));
        goto err;
    }
    if (flen > 0) {
        d->frames_mr = ibv_reg_mr(d->pd, t->cfg.frames, flen, IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE);
        if (d->frames_mr == NULL) {
            DSM_ERR("rdma: cannot register the %zu bytes of frames with %s: %s%s", flen, name, strerror(errno),
                    errno == ENOMEM || errno == EPERM ? " (locked-memory limit? see ulimit -l)" : "");
            goto err;
        }
    }
    d->cc = ibv_create_comp_channel(verbs);
    if (d->cc == NULL || set_nonblock(d->cc->fd) < 0) {
        DSM_ERR("rdma: completion channel on %s: %s", name, strerror(errno));
        goto err;
    }
    ev.data.ptr = d;
    if (epoll_ctl(t->epfd, EPOLL_CTL_ADD, d->cc->fd, &ev) < 0) {
        DSM_ERR("rdma: epoll_ctl(completion channel): %s", strerror(errno));
        goto err;
    }
    d->watched = true;
    d->next = t->devs;
    t->devs = d;
    DSM_INFO("rdma: using device %s (%zu bytes of frames registered)", name, flen);
    return d;

err:
    rdev_free(t, d);
    return NULL;
}

/* ---- connections: life cycle ------------------------------------------------------- */

static struct conn *conn_new(struct rdma *t, int node, bool outgoing)
{
    struct conn *c = calloc(1, sizeof(*c));

    if (c == NULL)
        return NULL;
    c->node = node;
    c->outgoing = outgoing;
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

/* Give back every verbs and CM resource of the connection (not its memory). Only where no
 * callback can be holding a receive slot: in reap, destroy, or before a connect retry. */
static void conn_release(struct conn *c)
{
    if (c->qp_made)
        rdma_destroy_qp(c->id);
    c->qp_made = false;
    if (c->cq != NULL && ibv_destroy_cq(c->cq) != 0)
        DSM_WARN("rdma: ibv_destroy_cq failed");
    c->cq = NULL;
    if (c->mr != NULL && ibv_dereg_mr(c->mr) != 0)
        DSM_WARN("rdma: ibv_dereg_mr failed");
    c->mr = NULL;
    free(c->buf);
    c->buf = NULL;
    if (c->id != NULL && rdma_destroy_id(c->id) != 0)
        DSM_WARN("rdma: rdma_destroy_id: %s", strerror(errno));
    c->id = NULL;
    c->connected = false;
    c->rearm = false;
}

static void outq_release(struct conn *c)
{
    dsmt_outq_free(&c->q);
    c->q_off = 0;
}

/* Bytes of the queue not yet handed to the NIC. */
static size_t queued_bytes(struct rdma *t, struct conn *c)
{
    size_t n = 0;

    for (size_t at = c->q.head; at < c->q.tail;) {
        uint32_t len = dsm_get32(c->q.buf + at);
        uint32_t framed = dsm_get32(c->q.buf + at + 4);
        size_t rec = (REC_HDR + len + (framed ? t->cfg.page_size : 0) + 7) & ~(size_t)7;

        n += len + (framed ? t->cfg.page_size : 0);
        at += rec;
    }
    if (c->q.head < c->q.tail) { /* the head record is partly posted: frame first, then bytes */
        uint32_t framed = dsm_get32(c->q.buf + c->q.head + 4);
        n -= c->q_off + (framed && c->q_off > 0 ? t->cfg.page_size : 0);
    }
    return n;
}

/* Kill the connection: one log line at `lvl`, disconnect (the peer hears DISCONNECTED), drop
 * what is queued, and if it stood for a peer, mark the peer lost and tell the daemon.
 * Idempotent. Resources and memory stay until reaped. */
static void conn_kill(struct rdma *t, struct conn *c, enum dsm_log_level lvl, const char *reason)
{
    char label[128];
    bool peer;

    if (c->state == C_DEAD)
        return;
    peer = c->node >= 0 && t->peer[c->node].conn == c;
    dsm_log(lvl, "rdma: %s %s: %s", peer ? "lost" : "dropped", conn_label(c, label, sizeof(label)), reason);
    if (c->connected && rdma_disconnect(c->id) != 0 && errno != EINVAL)
        DSM_DEBUG("rdma: rdma_disconnect: %s", strerror(errno));
    c->connected = false;
    t->backlog -= queued_bytes(t, c);
    outq_release(c);
    c->state = C_DEAD;
    if (!peer)
        return;
    t->peer[c->node].conn = NULL;
    t->peer[c->node].st = P_LOST;
    if (!t->closing)
        t->h.on_peer_lost(t->h.ctx, c->node, reason);
}

static void conn_kill_errno(struct rdma *t, struct conn *c, const char *what, int err)
{
    char reason[200];

    snprintf(reason, sizeof(reason), "%s: %s", what, strerror(err));
    conn_kill(t, c, DSM_LOG_WARN, reason);
}

static void conn_free(struct conn *c)
{
    conn_release(c);
    dsmt_rdma_asm_free(&c->reasm);
    free(c->q.buf);
    free(c);
}

/* Free connections that died; only outside callbacks. */
static void reap(struct rdma *t)
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

/* Post receive slot i. 0 or an errno value. */
static int post_recv(struct conn *c, uint32_t i)
{
    struct ibv_sge sg = { .addr = (uintptr_t)rx_slot(c, i), .length = SLOT, .lkey = c->mr->lkey };
    struct ibv_recv_wr wr = { .wr_id = (uint64_t)WR_RECV << 32 | i, .sg_list = &sg, .num_sge = 1 };
    struct ibv_recv_wr *bad;

    return ibv_post_recv(c->id->qp, &wr, &bad);
}

/* The connection's device state, buffer, CQ and queue pair, with every receive posted; for
 * an id whose device is known (address resolved, or a connect request). 0, or -1 with `why`. */
static int conn_resources(struct rdma *t, struct conn *c, char *why, size_t wl)
{
    struct ibv_qp_init_attr qa = {
        .cap = { .max_send_wr = 2 * TX_SLOTS, .max_recv_wr = RX_SLOTS, .max_send_sge = 1, .max_recv_sge = 1 },
        .qp_type = IBV_QPT_RC,
        .sq_sig_all = 0,
    };
    int rc;

    c->dev = rdev_get(t, c->id->verbs);
    if (c->dev == NULL) {
        snprintf(why, wl, "no usable RDMA device for this connection (see above)");
        return -1;
    }
    c->buflen = (size_t)(RX_SLOTS + TX_SLOTS) * SLOT + (size_t)TX_SLOTS * t->cfg.page_size;
    if (posix_memalign((void **)&c->buf, 4096, c->buflen) != 0) {
        c->buf = NULL;
        snprintf(why, wl, "out of memory for the connection's buffers");
        return -1;
    }
    c->mr = ibv_reg_mr(c->dev->pd, c->buf, c->buflen, IBV_ACCESS_LOCAL_WRITE);
    if (c->mr == NULL) {
        snprintf(why, wl, "ibv_reg_mr(%zu bytes of buffers): %s", c->buflen, strerror(errno));
        return -1;
    }
    c->cq = ibv_create_cq(c->id->verbs, (int)CQ_DEPTH, c, c->dev->cc, 0);
    if (c->cq == NULL) {
        snprintf(why, wl, "ibv_create_cq: %s", strerror(errno));
        return -1;
    }
    if ((rc = ibv_req_notify_cq(c->cq, 0)) != 0) {
        snprintf(why, wl, "ibv_req_notify_cq: %s", strerror(rc));
        return -1;
    }
    qa.send_cq = qa.recv_cq = c->cq;
    if (rdma_create_qp(c->id, c->dev->pd, &qa) != 0) {
        snprintf(why, wl, "rdma_create_qp: %s", strerror(errno));
        return -1;
    }
    c->qp_made = true;
    for (uint32_t i = 0; i < RX_SLOTS; i++)
        if ((rc = post_recv(c, i)) != 0) {
            snprintf(why, wl, "ibv_post_recv: %s", strerror(rc));
            return -1;
        }
    return 0;
}

/* ---- posting ---------------------------------------------------------------------- */

/* Post one SEND from the next send slot: header, `plen` payload bytes copied in, and if
 * `frame` is set, an RDMA WRITE of it (copied to the slot's bounce page) to page `page` of the
 * peer's frames just before. Returns credits to the peer in the header. 0 or an errno value. */
static int post_seg(struct rdma *t, struct conn *c, uint8_t kind, uint8_t flags, uint32_t length,
                    uint64_t page, const void *payload, size_t plen, const uint8_t *frame)
{
    uint32_t slot = c->tx_head % TX_SLOTS;
    uint8_t *b = tx_slot(c, slot);
    uint32_t ret = c->ret_pending > UINT16_MAX ? UINT16_MAX : c->ret_pending;
    struct ibv_sge sg[2];
    struct ibv_send_wr wr[2], *bad;
    int n = 0, rc;

    b[DSMT_RDMA_M_KIND] = kind;
    b[DSMT_RDMA_M_FLAGS] = flags;
    dsm_put16(b + DSMT_RDMA_M_CREDITS, (uint16_t)ret);
    dsm_put32(b + DSMT_RDMA_M_LENGTH, length);
    dsm_put64(b + DSMT_RDMA_M_PAGE, page);
    if (plen > 0)
        memcpy(b + DSMT_RDMA_HDR_LEN, payload, plen);
    memset(wr, 0, sizeof(wr));
    if (frame != NULL) {
        uint8_t *fb = bounce_page(t, c, slot);

        memcpy(fb, frame, t->cfg.page_size); /* captured: the caller may change the frame now */
        sg[0] = (struct ibv_sge){ .addr = (uintptr_t)fb, .length = (uint32_t)t->cfg.page_size, .lkey = c->mr->lkey };
        wr[0].wr_id = (uint64_t)WR_WRITE << 32 | c->tx_head;
        wr[0].sg_list = &sg[0];
        wr[0].num_sge = 1;
        wr[0].opcode = IBV_WR_RDMA_WRITE;
        wr[0].wr.rdma.remote_addr = c->raddr + page * t->cfg.page_size;
        wr[0].wr.rdma.rkey = c->rkey;
        wr[0].next = &wr[1];
        n = 1;
    }
    sg[n] = (struct ibv_sge){ .addr = (uintptr_t)b, .length = (uint32_t)(DSMT_RDMA_HDR_LEN + plen), .lkey = c->mr->lkey };
    wr[n].wr_id = (uint64_t)WR_SEND << 32 | c->tx_head;
    wr[n].sg_list = &sg[n];
    wr[n].num_sge = 1;
    wr[n].opcode = IBV_WR_SEND;
    /* Only one SEND in SIGNAL_EVERY is signalled: its completion frees its slot and every
     * slot before it (a queue pair completes in order), so the sender is not woken for each
     * send; a full ring always holds a signalled SEND. Failed WRs complete regardless. */
    wr[n].send_flags = 0;
    if (c->tx_head - c->tx_signaled >= SIGNAL_EVERY)
        wr[n].send_flags = IBV_SEND_SIGNALED;
    if ((rc = ibv_post_send(c->id->qp, &wr[0], &bad)) != 0)
        return rc;
    if (wr[n].send_flags & IBV_SEND_SIGNALED)
        c->tx_signaled = c->tx_head;
    c->tx_head++;
    c->ret_pending -= ret;
    if (kind == DSMT_RDMA_K_MSG)
        c->credits--;
    return 0;
}

/* Post segments of message `msg` (len bytes, frame `frame` for `page` or NULL) from byte *off
 * on while credits and send slots last; the frame goes with the first segment. 1 when the
 * whole message is posted, 0 when resources ran out first, or a negative errno value. */
static int post_msg(struct rdma *t, struct conn *c, const uint8_t *msg, size_t len, uint64_t page,
                    const uint8_t *frame, size_t *off)
{
    do {
        size_t plen = len - *off < PAYLOAD ? len - *off : PAYLOAD;
        bool first = *off == 0;
        uint8_t flags = (uint8_t)((first ? DSMT_RDMA_F_FIRST : 0) | (*off + plen == len ? DSMT_RDMA_F_LAST : 0) |
                                  (first && frame ? DSMT_RDMA_F_FRAME : 0));
        int rc;

        if (c->credits == 0 || tx_free(c) == 0)
            return 0;
        rc = post_seg(t, c, DSMT_RDMA_K_MSG, flags, first ? (uint32_t)len : 0,
                      first && frame ? page : DSMT_NO_PAGE, msg + *off, plen, first ? frame : NULL);
        if (rc != 0)
            return -rc;
        *off += plen;
        if (*off == len) /* also the one empty segment of a zero-length message */
            return 1;
    } while (1);
}

/* ---- the out queue ---------------------------------------------------------------- */

/* Copy a message and its frame (captured now) to the end of the queue. 0 or DSM_ENOMEM. */
static dsm_status_t enqueue(struct rdma *t, struct conn *c, const void *msg, size_t len, uint64_t page)
{
    bool framed = page != DSMT_NO_PAGE;
    size_t fl = framed ? t->cfg.page_size : 0;
    size_t rec = (REC_HDR + len + fl + 7) & ~(size_t)7;
    uint8_t *r;

    if (dsmt_outq_reserve(&c->q, rec) < 0)
        return DSM_ENOMEM;
    r = c->q.buf + c->q.tail;
    dsm_put32(r, (uint32_t)len);
    dsm_put32(r + 4, framed);
    dsm_put64(r + 8, page);
    if (len > 0)
        memcpy(r + REC_HDR, msg, len);
    if (framed)
        memcpy(r + REC_HDR + len, frame_at(t, page), fl);
    c->q.tail += rec;
    t->backlog += len + fl;
    return 0;
}

/* Post what the queue holds, in order, while credits and slots last; then return credits if
 * enough are pending. A post failure kills the connection. */
static void conn_push(struct rdma *t, struct conn *c)
{
    while (c->state == C_UP && c->q.head < c->q.tail) {
        uint8_t *r = c->q.buf + c->q.head;
        uint32_t len = dsm_get32(r);
        bool framed = dsm_get32(r + 4) != 0;
        size_t fl = framed ? t->cfg.page_size : 0;
        size_t before = c->q_off;
        int rc = post_msg(t, c, r + REC_HDR, len, dsm_get64(r + 8), framed ? r + REC_HDR + len : NULL, &c->q_off);

        if (rc < 0) {
            conn_kill_errno(t, c, "ibv_post_send", -rc);
            return;
        }
        t->backlog -= (c->q_off - before) + (before == 0 && (c->q_off > 0 || rc == 1) ? fl : 0);
        if (rc == 0)
            break;
        c->q.head += (REC_HDR + len + fl + 7) & ~(size_t)7;
        c->q_off = 0;
    }
    if (c->q.head == c->q.tail) {
        c->q.head = c->q.tail = 0;
        if (c->q.cap > OUTQ_KEEP) {
            free(c->q.buf);
            memset(&c->q, 0, sizeof(c->q));
        }
    }
    if (c->state == C_UP && c->ret_pending >= CREDIT_BATCH && tx_free(c) > 0) {
        int rc = post_seg(t, c, DSMT_RDMA_K_CREDIT, 0, 0, DSMT_NO_PAGE, NULL, 0, NULL);
        if (rc != 0)
            conn_kill_errno(t, c, "ibv_post_send", rc);
    }
}

/* ---- receiving -------------------------------------------------------------------- */

static void violation(struct rdma *t, struct conn *c, const char *what)
{
    char reason[200];

    snprintf(reason, sizeof(reason), "protocol violation: %s", what);
    conn_kill(t, c, DSM_LOG_WARN, reason);
}

static void kick(struct rdma *t)
{
    uint64_t one = 1;

    if (t->kicked)
        return;
    if (write(t->kfd, &one, sizeof(one)) != (ssize_t)sizeof(one) && errno != EAGAIN)
        DSM_WARN("rdma: write(eventfd): %s", strerror(errno));
    t->kicked = true;
}

/* The peer counts as up once both KEYS have gone their ways. */
static void maybe_up(struct rdma *t, struct conn *c)
{
    if (c->state == C_DEAD || c->state == C_UP || !c->sent_keys || !c->got_keys ||
        (!c->outgoing && !c->authed))
        return;
    c->state = C_UP;
    t->peer[c->node].st = P_UP;
    DSM_INFO("rdma: node %d (%s) is up", c->node, c->where);
    t->h.on_peer_up(t->h.ctx, c->node);
    if (c->state == C_UP)
        conn_push(t, c);
}

/* Does `proof` prove that c's peer holds the secret (a MAC over our nonce)? */
static bool proof_ok(struct rdma *t, struct conn *c, const uint8_t *proof)
{
    uint8_t want[DSMT_RDMA_PROOF_LEN];

    dsmt_proof(&t->cfg, c->my_nonce, c->node, want);
    return dsmt_equal_ct(want, proof, sizeof(want));
}

/* Send AUTH (connecting side, first) or KEYS. 0 or an errno value. */
static int send_auth(struct rdma *t, struct conn *c)
{
    uint8_t proof[DSMT_RDMA_PROOF_LEN];

    dsmt_proof(&t->cfg, c->peer_nonce, t->cfg.self, proof);
    return post_seg(t, c, DSMT_RDMA_K_AUTH, 0, 0, DSMT_NO_PAGE, proof, sizeof(proof), NULL);
}

static int send_keys(struct rdma *t, struct conn *c)
{
    uint8_t keys[DSMT_RDMA_KEYS_LEN];
    int rc;

    dsm_put64(keys + DSMT_RDMA_K_ADDR, (uintptr_t)t->cfg.frames);
    dsm_put32(keys + DSMT_RDMA_K_RKEY, c->dev->frames_mr ? c->dev->frames_mr->rkey : 0);
    dsm_put32(keys + DSMT_RDMA_K_CREDITS, CREDITS);
    dsm_put64(keys + DSMT_RDMA_K_FRAMES_LEN, (uint64_t)t->cfg.npages * t->cfg.page_size);
    dsmt_proof(&t->cfg, c->peer_nonce, t->cfg.self, keys + DSMT_RDMA_K_PROOF);
    if ((rc = post_seg(t, c, DSMT_RDMA_K_KEYS, 0, 0, DSMT_NO_PAGE, keys, sizeof(keys), NULL)) == 0)
        c->sent_keys = true;
    return rc;
}

/* Take in the peer's KEYS payload (its proof checked first). NULL, or what is wrong. */
static const char *rx_keys(struct rdma *t, struct conn *c, const uint8_t *p)
{
    struct dsmt_rdma_keys k;
    const char *bad;

    if (!proof_ok(t, c, p + DSMT_RDMA_K_PROOF))
        return "bad proof: the peer does not hold this job's secret";
    if ((bad = dsmt_rdma_keys_parse(&t->geom, p, &k)) != NULL)
        return bad;
    c->raddr = k.addr;
    c->rkey = k.rkey;
    c->credits = c->credit_max = k.credits;
    c->got_keys = true;
    return NULL;
}

/* The connecting side's AUTH at the accepting side: check the proof, count the connection as
 * the peer, and only then send our KEYS. NULL, or what is wrong. */
static const char *rx_auth(struct rdma *t, struct conn *c, const uint8_t *proof, char *why, size_t wl)
{
    int rc;

    if (!proof_ok(t, c, proof))
        return "bad proof: the peer does not hold this job's secret";
    if (t->peer[c->node].st != P_NONE) { /* another connection claimed it meanwhile */
        snprintf(why, wl, "bad hello: node %d is already connected or was lost", c->node);
        return why;
    }
    c->authed = true;
    t->peer[c->node].conn = c;
    t->peer[c->node].st = P_PENDING;
    if ((rc = send_keys(t, c)) != 0) {
        snprintf(why, wl, "ibv_post_send(KEYS): %s", strerror(rc));
        return why;
    }
    return NULL;
}

/* Hand a complete message to the daemon. */
static void deliver(struct rdma *t, struct conn *c, const uint8_t *msg, size_t len, uint64_t page)
{
    t->delivered++;
    if (!t->closing)
        t->h.on_message(t->h.ctx, c->node, msg, len, page);
}

/* One MSG segment of plen payload bytes: delivered when it completes a message, kept
 * otherwise (rdma_proto.c checks every field). NULL, or what was wrong with it. */
static const char *rx_msg(struct rdma *t, struct conn *c, const uint8_t *b, size_t plen, char *why, size_t wl)
{
    struct dsmt_rdma_msg m;
    const char *bad = dsmt_rdma_asm_segment(&c->reasm, &t->geom, b, plen, &m, why, wl);

    if (bad == NULL && m.msg != NULL)
        deliver(t, c, m.msg, m.len, m.page);
    return bad;
}

/* What is wrong with an AUTH, KEYS or CREDIT (or unknown) SEND of n bytes, or NULL; acts on
 * AUTH and KEYS (the handshake above). */
static const char *rx_control(struct rdma *t, struct conn *c, const uint8_t *b, size_t n, char *why, size_t wl)
{
    uint8_t kind = b[DSMT_RDMA_M_KIND];
    bool plain = b[DSMT_RDMA_M_FLAGS] == 0 && dsm_get16(b + DSMT_RDMA_M_CREDITS) == 0 &&
                 dsm_get32(b + DSMT_RDMA_M_LENGTH) == 0 && dsm_get64(b + DSMT_RDMA_M_PAGE) == DSMT_NO_PAGE;
    const char *bad;
    int rc;

    switch (kind) {
    case DSMT_RDMA_K_CREDIT:
        return n == DSMT_RDMA_HDR_LEN && b[DSMT_RDMA_M_FLAGS] == 0 && dsm_get32(b + DSMT_RDMA_M_LENGTH) == 0 &&
               dsm_get64(b + DSMT_RDMA_M_PAGE) == DSMT_NO_PAGE ? NULL : "malformed CREDIT";
    case DSMT_RDMA_K_AUTH:
        if (c->outgoing || c->authed)
            return "AUTH out of place";
        if (!plain || n != DSMT_RDMA_HDR_LEN + DSMT_RDMA_PROOF_LEN)
            return "malformed AUTH";
        return rx_auth(t, c, b + DSMT_RDMA_HDR_LEN, why, wl);
    case DSMT_RDMA_K_KEYS:
        if (c->got_keys)
            return "second KEYS";
        if (!c->outgoing && !c->authed)
            return "KEYS before AUTH";
        if (!plain || n != DSMT_RDMA_HDR_LEN + DSMT_RDMA_KEYS_LEN)
            return "malformed KEYS";
        if ((bad = rx_keys(t, c, b + DSMT_RDMA_HDR_LEN)) != NULL || !c->outgoing)
            return bad;
        /* the accepting side has proved itself: now our rkey may go */
        if ((rc = send_keys(t, c)) != 0) {
            snprintf(why, wl, "ibv_post_send(KEYS): %s", strerror(rc));
            return why;
        }
        return NULL;
    default:
        return "unknown message kind";
    }
}

/* A receive completed in slot `slot` with n bytes: check, act, re-post the slot. */
static void on_recv(struct rdma *t, struct conn *c, uint32_t slot, size_t n)
{
    const uint8_t *b = rx_slot(c, slot);
    const char *bad;
    char why[160];
    uint8_t kind;
    uint32_t ret;
    int rc;

    if (n < DSMT_RDMA_HDR_LEN) {
        violation(t, c, "SEND shorter than a header");
        return;
    }
    kind = b[DSMT_RDMA_M_KIND];
    ret = dsm_get16(b + DSMT_RDMA_M_CREDITS);
    if (kind != DSMT_RDMA_K_KEYS && kind != DSMT_RDMA_K_AUTH && !c->got_keys)
        bad = c->outgoing || c->authed ? "message before KEYS" : "message before AUTH";
    else if (c->credits + ret > c->credit_max)
        bad = "returned more credits than it was given";
    else if (kind == DSMT_RDMA_K_MSG && c->state != C_UP)
        bad = "message before the peer was up";
    else {
        c->credits += ret;
        bad = kind == DSMT_RDMA_K_MSG ? rx_msg(t, c, b, n - DSMT_RDMA_HDR_LEN, why, sizeof(why))
                                      : rx_control(t, c, b, n, why, sizeof(why));
    }
    if (bad != NULL) {
        violation(t, c, bad);
        return;
    }
    if (c->state == C_DEAD)
        return; /* killed in a callback: the slot stays as it is until reaped */
    if ((rc = post_recv(c, slot)) != 0) {
        conn_kill_errno(t, c, "ibv_post_recv", rc);
        return;
    }
    if (kind == DSMT_RDMA_K_MSG)
        c->ret_pending++;
    else if (kind == DSMT_RDMA_K_KEYS)
        maybe_up(t, c);
}

/* wr_id: the WR kind in the high 32 bits; the receive slot, or the send counter (tx_head at
 * posting), in the low 32. */
static const char *wr_name(uint64_t wr_id)
{
    switch (wr_id >> 32) {
    case WR_RECV: return "receive";
    case WR_SEND: return "send";
    case WR_WRITE: return "frame write";
    default: return "work request";
    }
}

/* One work completion of connection c. */
static void on_wc(struct rdma *t, struct conn *c, const struct ibv_wc *wc)
{
    uint32_t slot = (uint32_t)wc->wr_id;
    char reason[200];

    if (wc->status != IBV_WC_SUCCESS) {
        if (wc->status == IBV_WC_WR_FLUSH_ERR)
            snprintf(reason, sizeof(reason), "%s flushed: the connection broke", wr_name(wc->wr_id));
        else
            snprintf(reason, sizeof(reason), "%s failed: %s (vendor error %#x)", wr_name(wc->wr_id),
                     ibv_wc_status_str(wc->status), wc->vendor_err);
        conn_kill(t, c, wc->status == IBV_WC_WR_FLUSH_ERR ? DSM_LOG_INFO : DSM_LOG_WARN, reason);
        return;
    }
    switch (wc->opcode) {
    case IBV_WC_RECV:
        if ((wc->wr_id >> 32) != WR_RECV || slot >= RX_SLOTS)
            conn_kill(t, c, DSM_LOG_ERROR, "receive completion for an unknown slot");
        else
            on_recv(t, c, slot, wc->byte_len);
        break;
    case IBV_WC_SEND:
        /* signalled SENDs complete in posting order: the oldest slot is free now */
        /* `slot` is the send counter here: this SEND and every earlier one are done */
        if ((wc->wr_id >> 32) != WR_SEND || slot - c->tx_tail >= c->tx_head - c->tx_tail)
            conn_kill(t, c, DSM_LOG_ERROR, "send completion out of order");
        else
            c->tx_tail = slot + 1;
        break;
    default:
        snprintf(reason, sizeof(reason), "unexpected completion (opcode %d)", (int)wc->opcode);
        conn_kill(t, c, DSM_LOG_ERROR, reason);
        break;
    }
}

/* Handle up to `budget` completions of c, re-arming its CQ first if an event was consumed;
 * then post what the queue holds. Returns the number handled. */
static int conn_poll(struct rdma *t, struct conn *c, int budget)
{
    struct ibv_wc wc[16];
    int done = 0, rc;

    if (c->state == C_DEAD || c->cq == NULL)
        return 0;
    if (c->rearm) {
        c->rearm = false;
        if ((rc = ibv_req_notify_cq(c->cq, 0)) != 0) {
            conn_kill_errno(t, c, "ibv_req_notify_cq", rc);
            return 0;
        }
    }
    while (done < budget && c->state != C_DEAD) {
        int n = ibv_poll_cq(c->cq, (int)(sizeof(wc) / sizeof(wc[0])), wc);

        if (n < 0) {
            conn_kill(t, c, DSM_LOG_ERROR, "ibv_poll_cq failed");
            return done;
        }
        if (n == 0)
            break;
        for (int i = 0; i < n && c->state != C_DEAD; i++)
            on_wc(t, c, &wc[i]);
        done += n;
    }
    if (c->state == C_UP)
        conn_push(t, c);
    return done;
}

/* Poll every live connection. true if some CQ may hold more than its budget allowed. */
static bool poll_all(struct rdma *t)
{
    bool more = false;

    for (struct conn *c = t->conns; c != NULL; c = c->next)
        if (conn_poll(t, c, CQ_BUDGET) >= CQ_BUDGET)
            more = true;
    return more;
}

/* Consume the device's CQ events; their CQs are re-armed before they are next polled. */
static void cc_drain(struct rdma *t, struct rdev *d)
{
    struct ibv_cq *cq;
    void *ctx;

    (void)t;
    while (ibv_get_cq_event(d->cc, &cq, &ctx) == 0) {
        struct conn *c = ctx;

        ibv_ack_cq_events(cq, 1);
        c->rearm = true;
    }
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
        DSM_WARN("rdma: ibv_get_cq_event: %s", strerror(errno));
}

/* ---- connection set-up (CM events) ------------------------------------------------ */

/* Why a hello is unacceptable, or NULL (then c's peer nonce is taken from it, and *node
 * is the sender). c is the outgoing connection it answers, or NULL for a connect request;
 * *code gets the refusal to send back. */
static const char *hello_problem(struct rdma *t, struct conn *c, const uint8_t *b, size_t len, int *node,
                                 uint8_t *nonce, char *why, size_t wl, int *code)
{
    const char *bad = dsmt_rdma_hello_check(&t->geom, c != NULL ? c->node : -1, b, len, node, nonce, code, why, wl);

    if (bad != NULL)
        return bad;
    *code = DSMT_RDMA_REFUSE_DUPLICATE;
    if (c == NULL && t->peer[*node].st != P_NONE) {
        snprintf(why, wl, "bad hello: node %d is already connected or was lost", *node);
        return why;
    }
    return NULL;
}

static const char *refusal_text(uint32_t code)
{
    switch (code) {
    case DSMT_RDMA_REFUSE_VERSION: return "unsupported protocol version";
    case DSMT_RDMA_REFUSE_JOB: return "it belongs to another job";
    case DSMT_RDMA_REFUSE_GEOMETRY: return "the job geometry differs";
    case DSMT_RDMA_REFUSE_NODE: return "this node may not connect to it";
    case DSMT_RDMA_REFUSE_DUPLICATE: return "this node is connected already or was lost";
    case DSMT_RDMA_REFUSE_RESOURCES: return "it could not set the connection up";
    default: return "for an unknown reason";
    }
}

/* Connection parameters carrying `hello` (our hello with c's nonce) as private data. */
static void conn_param(struct rdma_conn_param *p, const uint8_t *hello)
{
    memset(p, 0, sizeof(*p));
    p->private_data = hello;
    p->private_data_len = DSMT_RDMA_HELLO_LEN;
    p->responder_resources = 0; /* no RDMA READ or atomics towards us */
    p->initiator_depth = 0;
    p->retry_count = 7;
    p->rnr_retry_count = 0;     /* credits guarantee a posted receive: an RNR is a bug */
}

/* A fresh nonce for connection c, and our hello carrying it into hello[]. 0 or -1 (logged). */
static int hello_for(struct rdma *t, struct conn *c, uint8_t *hello)
{
    if (getrandom(c->my_nonce, sizeof(c->my_nonce), 0) != (ssize_t)sizeof(c->my_nonce)) {
        DSM_ERR("rdma: getrandom: %s", strerror(errno));
        return -1;
    }
    dsmt_rdma_hello_encode(&t->geom, c->my_nonce, hello);
    return 0;
}

/* Refuse a connect request with our magic and `code`, then let the id go. */
static void refuse(struct rdma_cm_id *id, int code)
{
    uint8_t rej[DSMT_RDMA_REJ_LEN];

    dsm_put32(rej, DSMT_RDMA_MAGIC);
    dsm_put32(rej + 4, (uint32_t)code);
    if (rdma_reject(id, rej, sizeof(rej)) != 0)
        DSM_DEBUG("rdma: rdma_reject: %s", strerror(errno));
    if (rdma_destroy_id(id) != 0)
        DSM_WARN("rdma: rdma_destroy_id: %s", strerror(errno));
}

static void timer_arm(struct rdma *t);

/* A connect request on the listener: check the hello, then accept with ours or refuse. The
 * connection stands for the node it names only once that node's proof (AUTH) checks out. */
static void on_request(struct rdma *t, const struct cm_ev *e)
{
    char where[80], why[200] = "cannot make a nonce", buf[160];
    uint8_t hello[DSMT_RDMA_HELLO_LEN], nonce[DSMT_RDMA_NONCE_LEN];
    struct rdma_conn_param p;
    const char *problem;
    struct conn *c;
    int code, node;

    dsmt_addr_fmt(rdma_get_peer_addr(e->id), where, sizeof(where));
    problem = hello_problem(t, NULL, e->pdata, e->plen, &node, nonce, buf, sizeof(buf), &code);
    if (problem != NULL) {
        DSM_WARN("rdma: dropped connection from %s: %s", where, problem);
        refuse(e->id, code);
        return;
    }
    c = conn_new(t, node, false);
    if (c == NULL) {
        DSM_ERR("rdma: out of memory accepting node %d", node);
        refuse(e->id, DSMT_RDMA_REFUSE_RESOURCES);
        return;
    }
    c->id = e->id;
    c->id->context = c;
    snprintf(c->where, sizeof(c->where), "%s", where);
    c->state = C_ACCEPTING;
    c->timeout_ms = ACCEPT_MS;
    c->deadline = now_ms() + ACCEPT_MS;
    memcpy(c->peer_nonce, nonce, sizeof(c->peer_nonce));
    if (hello_for(t, c, hello) < 0 || conn_resources(t, c, why, sizeof(why)) < 0) {
        uint8_t rej[DSMT_RDMA_REJ_LEN];

        dsm_put32(rej, DSMT_RDMA_MAGIC);
        dsm_put32(rej + 4, DSMT_RDMA_REFUSE_RESOURCES);
        (void)rdma_reject(c->id, rej, sizeof(rej));
        conn_kill(t, c, DSM_LOG_ERROR, why);
        return;
    }
    conn_param(&p, hello);
    if (rdma_accept(c->id, &p) != 0) {
        conn_kill_errno(t, c, "rdma_accept", errno);
        return;
    }
    timer_arm(t);
}

/* Start one attempt of an outgoing connection: a fresh id, address resolution. 0, or -1
 * with `why` filled. */
static int connect_try(struct rdma *t, struct conn *c, char *why, size_t wl)
{
    uint64_t now = now_ms();
    int ms = c->deadline > now + RESOLVE_MS ? RESOLVE_MS : (int)(c->deadline > now ? c->deadline - now : 1);

    if (rdma_create_id(t->ec, &c->id, c, RDMA_PS_TCP) != 0) {
        c->id = NULL;
        snprintf(why, wl, "rdma_create_id: %s", strerror(errno));
        return -1;
    }
    if (rdma_resolve_addr(c->id, t->have_src ? (struct sockaddr *)&t->src : NULL, (struct sockaddr *)&c->dst,
                          ms > 0 ? ms : 1) != 0) {
        snprintf(why, wl, "rdma_resolve_addr(%s): %s", c->where, strerror(errno));
        return -1;
    }
    c->state = C_RESOLVING;
    return 0;
}

/* An outgoing attempt failed with `why`: try again later if it may be that nobody listens yet
 * and time is left, else give up (the peer is lost). */
static void connect_failed(struct rdma *t, struct conn *c, const char *why, bool retry)
{
    char reason[300];

    snprintf(c->why, sizeof(c->why), "%s", why);
    if (retry && c->outgoing && now_ms() + RETRY_MS < c->deadline) {
        conn_release(c);
        c->state = C_RETRY;
        c->retry_at = now_ms() + RETRY_MS;
        return;
    }
    if (c->outgoing)
        snprintf(reason, sizeof(reason), "could not connect to %s within %d ms: %s", c->where, c->timeout_ms, why);
    else
        snprintf(reason, sizeof(reason), "connection set-up failed: %s", why);
    conn_kill(t, c, DSM_LOG_WARN, reason);
}

/* The connection is established. Connecting side: check the answer, then prove ourselves
 * (AUTH). Accepting side: wait for that proof. */
static void on_established(struct rdma *t, struct conn *c, const struct cm_ev *e)
{
    const char *problem;
    char why[160];
    int code, rc, node;

    c->connected = true;
    if (!c->outgoing) {
        /* the peer's AUTH and KEYS can be in (and the peer up) before this event is */
        if (c->state == C_ACCEPTING)
            c->state = C_KEYS;
        return;
    }
    c->state = C_KEYS;
    problem = hello_problem(t, c, e->pdata, e->plen, &node, c->peer_nonce, why, sizeof(why), &code);
    if (problem != NULL) {
        conn_kill(t, c, DSM_LOG_WARN, problem);
        return;
    }
    if ((rc = send_auth(t, c)) != 0)
        conn_kill_errno(t, c, "ibv_post_send(AUTH)", rc);
}

/* Handle one (acknowledged) CM event. */
static void cm_handle(struct rdma *t, const struct cm_ev *e)
{
    struct conn *c = e->id->context;
    char why[200];

    if (e->type == RDMA_CM_EVENT_CONNECT_REQUEST) {
        if (t->closing)
            refuse(e->id, DSMT_RDMA_REFUSE_RESOURCES); /* shutting down (drain_sends) */
        else
            on_request(t, e);
        return;
    }
    if (e->id == t->lid) {
        if (e->type == RDMA_CM_EVENT_DEVICE_REMOVAL)
            DSM_ERR("rdma: the listener's RDMA device was removed");
        return;
    }
    if (c == NULL || c->state == C_DEAD)
        return;
    switch (e->type) {
    case RDMA_CM_EVENT_ADDR_RESOLVED: {
        uint64_t now = now_ms();
        int ms = c->deadline > now + RESOLVE_MS ? RESOLVE_MS : (int)(c->deadline > now ? c->deadline - now : 1);
        if (rdma_resolve_route(c->id, ms) != 0) {
            snprintf(why, sizeof(why), "rdma_resolve_route: %s", strerror(errno));
            connect_failed(t, c, why, false);
        }
        break;
    }
    case RDMA_CM_EVENT_ROUTE_RESOLVED: {
        struct rdma_conn_param p;
        uint8_t hello[DSMT_RDMA_HELLO_LEN];
        if (conn_resources(t, c, why, sizeof(why)) < 0) {
            connect_failed(t, c, why, false);
            break;
        }
        if (hello_for(t, c, hello) < 0) {
            connect_failed(t, c, "cannot make a nonce", false);
            break;
        }
        conn_param(&p, hello);
        if (rdma_connect(c->id, &p) != 0) {
            snprintf(why, sizeof(why), "rdma_connect: %s", strerror(errno));
            connect_failed(t, c, why, false);
            break;
        }
        c->state = C_CONNECTING;
        break;
    }
    case RDMA_CM_EVENT_ESTABLISHED:
        on_established(t, c, e);
        break;
    case RDMA_CM_EVENT_REJECTED:
        if (c->connected) {
            /* the other side gave up on it before its CM saw it established */
            snprintf(why, sizeof(why), "torn down by the peer (rejected after it was established, status %d)",
                     e->status);
            conn_kill(t, c, DSM_LOG_WARN, why);
        } else if (e->plen >= DSMT_RDMA_REJ_LEN && dsm_get32(e->pdata) == DSMT_RDMA_MAGIC) {
            snprintf(why, sizeof(why), "refused by the peer: %s", refusal_text(dsm_get32(e->pdata + 4)));
            connect_failed(t, c, why, false);
        } else {
            snprintf(why, sizeof(why), "rejected (status %d: nobody listens there?)", e->status);
            connect_failed(t, c, why, true);
        }
        break;
    case RDMA_CM_EVENT_UNREACHABLE:
        snprintf(why, sizeof(why), "unreachable (status %d)", e->status);
        connect_failed(t, c, why, !c->connected);
        break;
    case RDMA_CM_EVENT_ADDR_ERROR:
    case RDMA_CM_EVENT_ROUTE_ERROR:
    case RDMA_CM_EVENT_CONNECT_ERROR:
        snprintf(why, sizeof(why), "%s (status %d)", rdma_event_str(e->type), e->status);
        connect_failed(t, c, why, false);
        break;
    case RDMA_CM_EVENT_DISCONNECTED:
        /* The CM's event and the queue pair's completions come by different paths: deliver
         * what the peer sent before it left (its last messages, e.g. the job's release)
         * before taking the disconnect, as TCP delivers data before the FIN. */
        conn_poll(t, c, INT_MAX);
        c->connected = false; /* nothing left to disconnect */
        if (c->state != C_DEAD)
            conn_kill(t, c, DSM_LOG_INFO, "disconnected by the peer");
        break;
    case RDMA_CM_EVENT_DEVICE_REMOVAL:
        conn_kill(t, c, DSM_LOG_ERROR, "the RDMA device was removed");
        break;
    default:
        DSM_DEBUG("rdma: %s for %s ignored", rdma_event_str(e->type), c->where);
        break;
    }
}

/* Take every pending CM event, acknowledging each before it is handled. */
static void cm_drain(struct rdma *t)
{
    struct rdma_cm_event *ev;

    while (rdma_get_cm_event(t->ec, &ev) == 0) {
        struct cm_ev e = { .type = ev->event, .status = ev->status, .id = ev->id };

        if ((ev->event == RDMA_CM_EVENT_CONNECT_REQUEST || ev->event == RDMA_CM_EVENT_ESTABLISHED ||
             ev->event == RDMA_CM_EVENT_REJECTED) && ev->param.conn.private_data != NULL) {
            e.plen = ev->param.conn.private_data_len; /* a u8: fits PDATA_MAX */
            memcpy(e.pdata, ev->param.conn.private_data, e.plen);
        }
        if (rdma_ack_cm_event(ev) != 0)
            DSM_WARN("rdma: rdma_ack_cm_event: %s", strerror(errno));
        cm_handle(t, &e);
    }
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
        DSM_WARN("rdma: rdma_get_cm_event: %s", strerror(errno));
}

/* ---- timers ----------------------------------------------------------------------- */

/* Arm the timerfd for the earliest retry or deadline; disarm if none. */
static void timer_arm(struct rdma *t)
{
    uint64_t when = UINT64_MAX;

    for (struct conn *c = t->conns; c != NULL; c = c->next) {
        if (c->state == C_RETRY && c->retry_at < when)
            when = c->retry_at;
        if (c->state != C_UP && c->state != C_DEAD && c->deadline < when)
            when = c->deadline;
    }
    dsmt_timer_set("rdma", t->tfd, when, &t->armed_for);
}

/* Retry what is due; give up on connections past their deadline. */
static void timer_fire(struct rdma *t)
{
    uint64_t ticks, now = now_ms();
    char why[320];

    if (read(t->tfd, &ticks, sizeof(ticks)) < 0 && errno != EAGAIN)
        DSM_WARN("rdma: read(timerfd): %s", strerror(errno));
    t->armed_for = UINT64_MAX;
    for (struct conn *c = t->conns; c != NULL; c = c->next) {
        if (c->state == C_UP || c->state == C_DEAD)
            continue;
        if (c->deadline <= now) {
            if (c->outgoing)
                snprintf(why, sizeof(why), "could not connect to %s within %d ms: %s", c->where, c->timeout_ms,
                         c->why[0] ? c->why : "no answer");
            else
                snprintf(why, sizeof(why), "not up within %d ms of its connect request", c->timeout_ms);
            conn_kill(t, c, DSM_LOG_WARN, why);
        } else if (c->state == C_RETRY && c->retry_at <= now && connect_try(t, c, why, sizeof(why)) < 0) {
            connect_failed(t, c, why, false);
        }
    }
}

/* ---- the ops ---------------------------------------------------------------------- */

static bool config_ok(const struct dsmt_config *cfg, const struct dsmt_handler *h)
{
    return cfg->nnodes >= 1 && cfg->self >= 0 && cfg->self < cfg->nnodes && cfg->page_size > 0 &&
           cfg->page_size <= (1u << 30) && cfg->max_msg > 0 && cfg->max_msg <= MAX_MSG_LIMIT &&
           (cfg->npages == 0 || cfg->frames != NULL) && cfg->npages <= SIZE_MAX / cfg->page_size &&
           cfg->poll_us >= 0 && h->on_peer_up != NULL && h->on_message != NULL && h->on_peer_lost != NULL;
}

static dsm_status_t watch(struct rdma *t, int fd, void *tag, const char *what)
{
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = tag };

    if (epoll_ctl(t->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        DSM_ERR("rdma: epoll_ctl(%s): %s", what, strerror(errno));
        return DSM_ESYS;
    }
    return 0;
}

static void rdma_destroy(dsmt_t *tt);

/* See dsmt_ops.create. */
static dsm_status_t rdma_create(const struct dsmt_config *cfg, const struct dsmt_handler *h, dsmt_t **out)
{
    struct rdma *t;

    if (!config_ok(cfg, h)) {
        DSM_ERR("rdma: invalid transport configuration");
        return DSM_EINVAL;
    }
    t = calloc(1, sizeof(*t));
    if (t == NULL || (t->peer = calloc((size_t)cfg->nnodes, sizeof(*t->peer))) == NULL) {
        DSM_ERR("rdma: out of memory creating the transport");
        free(t);
        return DSM_ENOMEM;
    }
    t->cfg = *cfg;
    t->h = *h;
    t->epfd = t->tfd = t->kfd = -1;
    t->armed_for = UINT64_MAX;
    t->geom = (struct dsmt_rdma_geom){ cfg->self, cfg->nnodes, cfg->job_id, (uint32_t)cfg->page_size,
                                       (uint32_t)cfg->max_msg, cfg->npages };
    t->epfd = epoll_create1(EPOLL_CLOEXEC);
    t->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    t->kfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (t->epfd < 0 || t->tfd < 0 || t->kfd < 0) {
        DSM_ERR("rdma: epoll/timerfd/eventfd: %s", strerror(errno));
        goto err;
    }
    t->ec = rdma_create_event_channel();
    if (t->ec == NULL) {
        DSM_ERR("rdma: rdma_create_event_channel: %s (no RDMA support: is rdma_ucm loaded?)", strerror(errno));
        goto err;
    }
    if (set_nonblock(t->ec->fd) < 0) {
        DSM_ERR("rdma: fcntl(CM event channel): %s", strerror(errno));
        goto err;
    }
    if (watch(t, t->tfd, &t->tfd, "timerfd") < 0 || watch(t, t->kfd, &t->kfd, "eventfd") < 0 ||
        watch(t, t->ec->fd, &t->ec, "CM event channel") < 0)
        goto err;
    *out = (dsmt_t *)t;
    return 0;

err:
    rdma_destroy((dsmt_t *)t);
    return DSM_ESYS;
}

/* The address peers must use for the listener: its own, or this host's name when it listens
 * on every address. 0 or a status. */
static dsm_status_t bound_name(struct rdma *t, char *bound, size_t boundlen)
{
    struct sockaddr *sa = rdma_get_local_addr(t->lid);
    char name[NI_MAXHOST], port[16];
    bool any = sa->sa_family == AF_INET ? ((struct sockaddr_in *)sa)->sin_addr.s_addr == htonl(INADDR_ANY)
                                        : IN6_IS_ADDR_UNSPECIFIED(&((struct sockaddr_in6 *)sa)->sin6_addr);
    socklen_t len = sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);

    snprintf(port, sizeof(port), "%u", ntohs(rdma_get_src_port(t->lid)));
    if (getnameinfo(sa, len, name, sizeof(name), NULL, 0, NI_NUMERICHOST) != 0 ||
        (any && gethostname(name, sizeof(name)) < 0)) {
        DSM_ERR("rdma: cannot name the listening address");
        return DSM_ESYS;
    }
    if (snprintf(bound, boundlen, sa->sa_family == AF_INET6 && !any ? "[%s]:%s" : "%s:%s", name, port) >=
        (int)boundlen) {
        DSM_ERR("rdma: buffer too small for the bound address");
        return DSM_EINVAL;
    }
    return 0;
}

/* See dsmt_ops.listen. The address must be one of an RDMA device's interfaces (not loopback);
 * with cfg.device, of that device. The device's frames are registered here. */
static dsm_status_t rdma_listen_op(dsmt_t *tt, const char *addr, char *bound, size_t boundlen)
{
    struct rdma *t = rdma_of(tt);
    struct sockaddr_storage sa;
    dsm_status_t st;

    if (t->lid != NULL) {
        DSM_ERR("rdma: already listening");
        return DSM_ESTATE;
    }
    if ((st = resolve(addr, true, &sa)) < 0)
        return st;
    if (rdma_create_id(t->ec, &t->lid, NULL, RDMA_PS_TCP) != 0) {
        DSM_ERR("rdma: rdma_create_id: %s", strerror(errno));
        t->lid = NULL;
        return DSM_ESYS;
    }
    if (rdma_bind_addr(t->lid, (struct sockaddr *)&sa) != 0) {
        DSM_ERR("rdma: cannot bind to %s: %s%s", addr, strerror(errno),
                errno == EADDRNOTAVAIL || errno == ENODEV ? " (no RDMA device has that address)" : "");
        st = DSM_ESYS;
        goto err;
    }
    if (t->lid->verbs != NULL) {
        if (rdev_get(t, t->lid->verbs) == NULL) {
            st = DSM_ECONFIG;
            goto err;
        }
        memcpy(&t->src, &sa, sizeof(sa));
        if (sa.ss_family == AF_INET)
            ((struct sockaddr_in *)&t->src)->sin_port = 0;
        else
            ((struct sockaddr_in6 *)&t->src)->sin6_port = 0;
        t->have_src = true;
    } else if (t->cfg.device != NULL && t->cfg.device[0] != '\0') {
        DSM_ERR("rdma: listening on every address cannot honour device %s: listen on its address", t->cfg.device);
        st = DSM_ECONFIG;
        goto err;
    }
    if (rdma_listen(t->lid, LISTEN_BACKLOG) != 0) {
        DSM_ERR("rdma: rdma_listen on %s: %s", addr, strerror(errno));
        st = DSM_ESYS;
        goto err;
    }
    if ((st = bound_name(t, bound, boundlen)) < 0)
        goto err;
    return 0;

err:
    rdma_destroy_id(t->lid);
    t->lid = NULL;
    return st;
}

/* Unlink and free a connection nobody else has seen yet. */
static void conn_discard(struct rdma *t, struct conn *c)
{
    struct conn **pp = &t->conns;

    while (*pp != c)
        pp = &(*pp)->next;
    *pp = c->next;
    conn_free(c);
}

/* See dsmt_ops.connect. Never blocks: everything after the first step happens in progress(). */
static dsm_status_t rdma_connect_op(dsmt_t *tt, int node, const char *addr, int timeout_ms)
{
    struct rdma *t = rdma_of(tt);
    struct conn *c;
    char why[200];
    dsm_status_t st;

    if (node < 0 || node >= t->cfg.self || timeout_ms <= 0) {
        DSM_ERR("rdma: node %d may not connect to node %d (or timeout %d ms)", t->cfg.self, node, timeout_ms);
        return DSM_EINVAL;
    }
    if (t->peer[node].st != P_NONE) {
        DSM_ERR("rdma: connect to node %d twice", node);
        return DSM_ESTATE;
    }
    c = conn_new(t, node, true);
    if (c == NULL) {
        DSM_ERR("rdma: out of memory connecting to node %d", node);
        return DSM_ENOMEM;
    }
    if ((st = resolve(addr, false, &c->dst)) < 0)
        goto err;
    snprintf(c->where, sizeof(c->where), "%s", addr);
    c->timeout_ms = timeout_ms;
    c->deadline = now_ms() + (uint64_t)timeout_ms;
    if (connect_try(t, c, why, sizeof(why)) < 0) {
        DSM_ERR("rdma: connect to node %d: %s", node, why);
        st = DSM_ESYS;
        goto err;
    }
    t->peer[node].conn = c;
    t->peer[node].st = P_PENDING;
    timer_arm(t);
    return 0;

err:
    conn_discard(t, c);
    return st;
}

/* See dsmt_ops.send. Posts at once when nothing is queued and credits and slots suffice;
 * otherwise copies the message and its frame to the queue. */
static dsm_status_t rdma_send(dsmt_t *tt, int node, const void *msg, size_t len, uint64_t page)
{
    struct rdma *t = rdma_of(tt);
    struct conn *c;

    if (node < 0 || node >= t->cfg.nnodes || node == t->cfg.self || len > t->cfg.max_msg ||
        (len > 0 && msg == NULL) || (page != DSMT_NO_PAGE && page >= t->cfg.npages)) {
        DSM_ERR("rdma: bad send to node %d (%zu bytes, page %llu)", node, len, (unsigned long long)page);
        return DSM_EINVAL;
    }
    if (t->peer[node].st != P_UP) {
        if (t->peer[node].st == P_LOST)
            return DSM_EPEER; /* already reported through on_peer_lost */
        DSM_ERR("rdma: send to node %d before it is up", node);
        return DSM_ESTATE;
    }
    c = t->peer[node].conn;
    if (c->q.head == c->q.tail && c->credits >= nsegs(len) && tx_free(c) >= nsegs(len)) {
        size_t off = 0;
        int rc = post_msg(t, c, msg, len, page, page != DSMT_NO_PAGE ? frame_at(t, page) : NULL, &off);

        if (rc < 0) {
            conn_kill_errno(t, c, "ibv_post_send", -rc);
            return DSM_EPEER;
        }
    } else {
        if (enqueue(t, c, msg, len, page) < 0) {
            DSM_ERR("rdma: out of memory queueing %zu bytes for node %d", len, node);
            return DSM_ENOMEM;
        }
        conn_push(t, c);
        if (c->state == C_DEAD)
            return DSM_EPEER;
    }
    if (t->cfg.poll_us > 0) {
        /* an answer is likely soon: have progress() poll for it a while */
        t->spin_until = now_ns() + (uint64_t)t->cfg.poll_us * 1000u;
        if (t->depth == 0)
            kick(t);
    }
    return 0;
}

/* See dsmt_ops.drop. on_peer_lost runs before this returns. */
static void rdma_drop(dsmt_t *tt, int node, const char *reason)
{
    struct rdma *t = rdma_of(tt);

    if (node < 0 || node >= t->cfg.nnodes || node == t->cfg.self) {
        DSM_ERR("rdma: drop of node %d, not a peer", node);
        return;
    }
    if (t->peer[node].conn != NULL)
        conn_kill(t, t->peer[node].conn, DSM_LOG_INFO, reason ? reason : "dropped by the daemon");
}

static int rdma_event_fd(dsmt_t *tt)
{
    return rdma_of(tt)->epfd;
}

/* See dsmt_ops.progress. One round over the internal epoll set, then every CQ; with poll_us,
 * keep polling the CQs after a send until a message arrives or the window closes. */
static dsm_status_t rdma_progress(dsmt_t *tt)
{
    struct rdma *t = rdma_of(tt);
    struct epoll_event evs[MAX_EVENTS];
    uint64_t delivered = t->delivered;
    dsm_status_t st = 0;
    bool more;
    int n;

    if (t->depth > 0) {
        DSM_ERR("rdma: progress() called from a transport callback");
        return DSM_ESTATE;
    }
    t->depth++;
    n = epoll_wait(t->epfd, evs, MAX_EVENTS, 0);
    if (n < 0 && errno != EINTR) {
        DSM_ERR("rdma: epoll_wait: %s", strerror(errno));
        st = DSM_ESYS;
    }
    for (int i = 0; i < n; i++) {
        void *tag = evs[i].data.ptr;

        if (tag == &t->tfd) {
            timer_fire(t);
        } else if (tag == &t->kfd) {
            uint64_t v;
            if (read(t->kfd, &v, sizeof(v)) < 0 && errno != EAGAIN)
                DSM_WARN("rdma: read(eventfd): %s", strerror(errno));
            t->kicked = false;
        } else if (tag == &t->ec) {
            cm_drain(t);
        } else {
            cc_drain(t, tag);
        }
    }
    more = poll_all(t);
    if (t->cfg.poll_us > 0)
        while (!more && t->delivered == delivered && now_ns() < t->spin_until)
            more = poll_all(t);
    t->depth--;
    reap(t);
    timer_arm(t);
    if (more)
        kick(t);
    return st;
}

static size_t rdma_backlog(dsmt_t *tt)
{
    return rdma_of(tt)->backlog;
}

/*
 * Before a clean shutdown, let every message already sent reach its peer: an RC queue pair
 * destroyed with SENDs outstanding drops them (TCP would still deliver a closed socket's
 * data). Waits, polling, until each live connection's queue is posted and its sends are
 * complete, at most DRAIN_MS in all. A signalled completion covers every earlier SEND, so
 * when the last posted SEND is unsignalled one signalled CREDIT (no credit needed) follows
 * it. A peer that has left (its DISCONNECTED) is not waited for. The daemon is going away:
 * what still arrives meanwhile is taken off the queue pair and dropped, with no upcall
 * (t->closing), and connection requests are refused.
 */
static void drain_sends(struct rdma *t)
{
    uint64_t until = now_ns() + (uint64_t)DRAIN_MS * 1000000u;
    bool busy = true;

    t->closing = true;
    t->depth++;
    while (busy && now_ns() < until) {
        busy = false;
        cm_drain(t); /* a peer that has left will not acknowledge: its DISCONNECTED ends it */
        for (struct conn *c = t->conns; c != NULL; c = c->next) {
            if (c->state != C_UP)
                continue;
            conn_poll(t, c, CQ_BUDGET);
            if (c->state != C_UP || (c->q.head == c->q.tail && c->tx_tail == c->tx_head))
                continue;
            busy = true;
            if (c->q.head == c->q.tail && c->tx_signaled != c->tx_head - 1 && tx_free(c) > 0) {
                int rc;

                c->tx_signaled = c->tx_head - SIGNAL_EVERY; /* post_seg: signal this one */
                if ((rc = post_seg(t, c, DSMT_RDMA_K_CREDIT, 0, 0, DSMT_NO_PAGE, NULL, 0, NULL)) != 0)
                    conn_kill_errno(t, c, "ibv_post_send", rc);
            }
        }
        if (busy)
            nanosleep(&(struct timespec){ .tv_nsec = 200000 }, NULL);
    }
    t->depth--;
    if (busy)
        DSM_WARN("rdma: some messages were still unacknowledged after %d ms at shutdown", DRAIN_MS);
}

/* See dsmt_ops.destroy. No callbacks. Connected peers hear DISCONNECTED once what was sent
 * to them has arrived (drain_sends). */
static void rdma_destroy(dsmt_t *tt)
{
    struct rdma *t = rdma_of(tt);

    if (t == NULL)
        return;
    drain_sends(t);
    while (t->conns != NULL) {
        struct conn *c = t->conns;
        t->conns = c->next;
        if (c->connected && rdma_disconnect(c->id) != 0)
            DSM_DEBUG("rdma: rdma_disconnect: %s", strerror(errno));
        conn_free(c);
    }
    if (t->lid != NULL && rdma_destroy_id(t->lid) != 0)
        DSM_WARN("rdma: rdma_destroy_id(listener): %s", strerror(errno));
    while (t->devs != NULL) {
        struct rdev *d = t->devs;
        t->devs = d->next;
        rdev_free(t, d);
    }
    if (t->ec != NULL)
        rdma_destroy_event_channel(t->ec);
    if (t->kfd >= 0)
        dsmt_xclose("rdma", t->kfd, "eventfd");
    if (t->tfd >= 0)
        dsmt_xclose("rdma", t->tfd, "timerfd");
    if (t->epfd >= 0)
        dsmt_xclose("rdma", t->epfd, "epoll");
    free(t->peer);
    free(t);
}

const struct dsmt_ops dsmt_rdma_ops = {
    .name = "rdma",
    .flags = DSMT_PINS_FRAMES,
    .create = rdma_create,
    .listen = rdma_listen_op,
    .connect = rdma_connect_op,
    .send = rdma_send,
    .drop = rdma_drop,
    .event_fd = rdma_event_fd,
    .progress = rdma_progress,
    .backlog = rdma_backlog,
    .destroy = rdma_destroy,
};

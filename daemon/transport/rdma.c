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
#include "rdma_int.h"

_Static_assert(DSMT_RDMA_NONCE_LEN == DSMT_NONCE_LEN && DSMT_RDMA_PROOF_LEN == DSMT_PROOF_LEN,
               "the hello's nonce and proof are the transport base's");

/* ---- small helpers ---------------------------------------------------------------- */

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts); /* cannot fail for CLOCK_MONOTONIC */
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t dsmt_rdma_now_ms(void)
{
    return now_ns() / 1000000u;
}

uint8_t *dsmt_rdma_frame_at(struct rdma *t, uint64_t page)
{
    return (uint8_t *)t->cfg.frames + page * t->cfg.page_size;
}

uint8_t *dsmt_rdma_rx_slot(struct conn *c, uint32_t i)
{
    return c->buf + (size_t)i * SLOT;
}

uint8_t *dsmt_rdma_tx_slot(struct conn *c, uint32_t i)
{
    return c->buf + (size_t)(RX_SLOTS + i) * SLOT;
}

uint8_t *dsmt_rdma_bounce_page(struct rdma *t, struct conn *c, uint32_t i)
{
    return c->buf + (size_t)(RX_SLOTS + TX_SLOTS) * SLOT + (size_t)i * t->cfg.page_size;
}

uint32_t dsmt_rdma_tx_free(const struct conn *c)
{
    return TX_SLOTS - (c->tx_head - c->tx_tail);
}

/* SENDs a message of len bytes takes. */
static uint32_t nsegs(size_t len)
{
    return len == 0 ? 1u : (uint32_t)((len + PAYLOAD - 1) / PAYLOAD);
}

int dsmt_rdma_set_nonblock(int fd)
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

/* ---- connections: life cycle ------------------------------------------------------- */

struct conn *dsmt_rdma_conn_new(struct rdma *t, int node, bool outgoing)
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
void dsmt_rdma_conn_release(struct conn *c)
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
void dsmt_rdma_conn_kill(struct rdma *t, struct conn *c, enum dsm_log_level lvl, const char *reason)
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
    dsmt_peer_lost(t->peer, &t->h, c->node, reason, !t->closing);
}

void dsmt_rdma_conn_kill_errno(struct rdma *t, struct conn *c, const char *what, int err)
{
    char reason[200];

    snprintf(reason, sizeof(reason), "%s: %s", what, strerror(err));
    dsmt_rdma_conn_kill(t, c, DSM_LOG_WARN, reason);
}

static void conn_free(struct conn *c)
{
    dsmt_rdma_conn_release(c);
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
int dsmt_rdma_post_recv(struct conn *c, uint32_t i)
{
    struct ibv_sge sg = { .addr = (uintptr_t)dsmt_rdma_rx_slot(c, i), .length = SLOT, .lkey = c->mr->lkey };
    struct ibv_recv_wr wr = { .wr_id = (uint64_t)WR_RECV << 32 | i, .sg_list = &sg, .num_sge = 1 };
    struct ibv_recv_wr *bad;

    return ibv_post_recv(c->id->qp, &wr, &bad);
}

/* The connection's device state, buffer, CQ and queue pair, with every receive posted; for
 * an id whose device is known (address resolved, or a connect request). 0, or -1 with `why`. */
int dsmt_rdma_conn_resources(struct rdma *t, struct conn *c, char *why, size_t wl)
{
    struct ibv_qp_init_attr qa = {
        .cap = { .max_send_wr = 2 * TX_SLOTS, .max_recv_wr = RX_SLOTS, .max_send_sge = 1, .max_recv_sge = 1 },
        .qp_type = IBV_QPT_RC,
        .sq_sig_all = 0,
    };
    int rc;

    c->dev = dsmt_rdma_rdev_get(t, c->id->verbs);
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
        if ((rc = dsmt_rdma_post_recv(c, i)) != 0) {
            snprintf(why, wl, "ibv_post_recv: %s", strerror(rc));
            return -1;
        }
    return 0;
}

/* ---- the ops ---------------------------------------------------------------------- */

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

    if (!dsmt_config_ok(cfg, h)) {
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
    if (dsmt_rdma_set_nonblock(t->ec->fd) < 0) {
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
        if (dsmt_rdma_rdev_get(t, t->lid->verbs) == NULL) {
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

    if ((st = dsmt_connect_check("rdma", &t->cfg, t->peer, node, timeout_ms)) != DSM_OK)
        return st;
    c = dsmt_rdma_conn_new(t, node, true);
    if (c == NULL) {
        DSM_ERR("rdma: out of memory connecting to node %d", node);
        return DSM_ENOMEM;
    }
    if ((st = resolve(addr, false, &c->dst)) < 0)
        goto err;
    snprintf(c->where, sizeof(c->where), "%s", addr);
    c->timeout_ms = timeout_ms;
    c->deadline = dsmt_rdma_now_ms() + (uint64_t)timeout_ms;
    if (dsmt_rdma_connect_try(t, c, why, sizeof(why)) < 0) {
        DSM_ERR("rdma: connect to node %d: %s", node, why);
        st = DSM_ESYS;
        goto err;
    }
    t->peer[node].conn = c;
    t->peer[node].st = DSMT_P_PENDING;
    dsmt_rdma_timer_arm(t);
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
    dsm_status_t st;

    if ((st = dsmt_send_check("rdma", &t->cfg, t->peer, node, msg, len, page)) != DSM_OK)
        return st;
    c = t->peer[node].conn;
    if (c->q.head == c->q.tail && c->credits >= nsegs(len) && dsmt_rdma_tx_free(c) >= nsegs(len)) {
        size_t off = 0;
        int rc = dsmt_rdma_post_msg(t, c, msg, len, page, page != DSMT_NO_PAGE ? dsmt_rdma_frame_at(t, page) : NULL, &off);

        if (rc < 0) {
            dsmt_rdma_conn_kill_errno(t, c, "ibv_post_send", -rc);
            return DSM_EPEER;
        }
    } else {
        if (dsmt_rdma_enqueue(t, c, msg, len, page) < 0) {
            DSM_ERR("rdma: out of memory queueing %zu bytes for node %d", len, node);
            return DSM_ENOMEM;
        }
        dsmt_rdma_conn_push(t, c);
        if (c->state == C_DEAD)
            return DSM_EPEER;
    }
    if (t->cfg.poll_us > 0) {
        /* an answer is likely soon: have progress() poll for it a while */
        t->spin_until = now_ns() + (uint64_t)t->cfg.poll_us * 1000u;
        if (t->depth == 0)
            dsmt_rdma_kick(t);
    }
    return 0;
}

/* See dsmt_ops.drop. on_peer_lost runs before this returns. */
static void rdma_drop(dsmt_t *tt, int node, const char *reason)
{
    struct rdma *t = rdma_of(tt);

    if (!dsmt_drop_check("rdma", &t->cfg, node))
        return;
    if (t->peer[node].conn != NULL)
        dsmt_rdma_conn_kill(t, t->peer[node].conn, DSM_LOG_INFO, reason ? reason : "dropped by the daemon");
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
            dsmt_rdma_timer_fire(t);
        } else if (tag == &t->kfd) {
            uint64_t v;
            if (read(t->kfd, &v, sizeof(v)) < 0 && errno != EAGAIN)
                DSM_WARN("rdma: read(eventfd): %s", strerror(errno));
            t->kicked = false;
        } else if (tag == &t->ec) {
            dsmt_rdma_cm_drain(t);
        } else {
            dsmt_rdma_cc_drain(t, tag);
        }
    }
    more = dsmt_rdma_poll_all(t);
    if (t->cfg.poll_us > 0)
        while (!more && t->delivered == delivered && now_ns() < t->spin_until)
            more = dsmt_rdma_poll_all(t);
    t->depth--;
    reap(t);
    dsmt_rdma_timer_arm(t);
    if (more)
        dsmt_rdma_kick(t);
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
        dsmt_rdma_cm_drain(t); /* a peer that has left will not acknowledge: its DISCONNECTED ends it */
        for (struct conn *c = t->conns; c != NULL; c = c->next) {
            if (c->state != C_UP)
                continue;
            dsmt_rdma_conn_poll(t, c, CQ_BUDGET);
            if (c->state != C_UP || (c->q.head == c->q.tail && c->tx_tail == c->tx_head))
                continue;
            busy = true;
            if (c->q.head == c->q.tail && c->tx_signaled != c->tx_head - 1 && dsmt_rdma_tx_free(c) > 0) {
                int rc;

                c->tx_signaled = c->tx_head - SIGNAL_EVERY; /* post_seg: signal this one */
                if ((rc = dsmt_rdma_post_seg(t, c, DSMT_RDMA_K_CREDIT, 0, 0, DSMT_NO_PAGE, NULL, 0, NULL)) != 0)
                    dsmt_rdma_conn_kill_errno(t, c, "ibv_post_send", rc);
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
        dsmt_rdma_rdev_free(t, d);
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

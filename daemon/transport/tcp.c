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
 *  - A connection is a peer (peer[node].st == DSMT_P_UP) only after the hellos and proofs. A wrong
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
#include "tcp_int.h"

_Static_assert(DSMT_TCP_NONCE_LEN == DSMT_NONCE_LEN && DSMT_TCP_PROOF_LEN == DSMT_PROOF_LEN,
               "the hello's nonce and proof are the transport base's");

/* ---- small helpers ---------------------------------------------------------------- */

uint64_t dsmt_tcp_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts); /* cannot fail for CLOCK_MONOTONIC */
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint8_t *dsmt_tcp_frame_at(struct tcp *t, uint64_t page)
{
    return (uint8_t *)t->cfg.frames + page * t->cfg.page_size;
}

/* Per-connection socket options: no Nagle delay for small protocol messages, and keepalive
 * plus a user timeout so a peer host that vanishes without a FIN is noticed within seconds.
 * 0, or -1 with errno set. */
int dsmt_tcp_sock_tune(int fd)
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
struct conn *dsmt_tcp_conn_new(struct tcp *t, int fd, int node, bool outgoing)
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
int dsmt_tcp_conn_watch(struct tcp *t, struct conn *c, bool want_out)
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

void dsmt_tcp_conn_close_fd(struct tcp *t, struct conn *c)
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
void dsmt_tcp_conn_kill(struct tcp *t, struct conn *c, enum dsm_log_level lvl, const char *reason)
{
    char label[128];
    bool peer;

    if (c->state == C_DEAD)
        return;
    peer = c->node >= 0 && t->peer[c->node].conn == c;
    dsm_log(lvl, "tcp: %s %s: %s", peer ? "lost" : "dropped",
            conn_label(c, label, sizeof(label)), reason);
    dsmt_tcp_conn_close_fd(t, c);
    outq_release(t, &c->q);
    c->state = C_DEAD;
    if (!peer)
        return;
    dsmt_peer_lost(t->peer, &t->h, c->node, reason, 1);
}

void dsmt_tcp_conn_kill_errno(struct tcp *t, struct conn *c, const char *what, int err)
{
    char reason[160];

    snprintf(reason, sizeof(reason), "%s: %s", what, strerror(err));
    dsmt_tcp_conn_kill(t, c, DSM_LOG_INFO, reason);
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
            dsmt_tcp_conn_kill_errno(t, c, "write", errno);
            return DSM_EPEER;
        }
    }
    if (q->head == q->tail) {
        q->head = q->tail = 0;
        if (q->cap > OUTQ_KEEP)
            outq_release(t, q);
    }
    if ((q->head < q->tail) != c->want_out && (err = dsmt_tcp_conn_watch(t, c, q->head < q->tail)) < 0) {
        dsmt_tcp_conn_kill_errno(t, c, "epoll_ctl", -err);
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
    return dsmt_tcp_conn_watch(t, c, true) < 0 ? DSM_ESYS : 0;
}

/* Queue our hello with a fresh nonce for this connection. */
dsm_status_t dsmt_tcp_conn_queue_hello(struct tcp *t, struct conn *c)
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
dsm_status_t dsmt_tcp_conn_queue_proof(struct tcp *t, struct conn *c)
{
    uint8_t b[DSMT_TCP_PROOF_LEN];

    dsmt_proof(&t->cfg, c->peer_nonce, t->cfg.self, b);
    return conn_queue_raw(t, c, b, sizeof(b));
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

/* See dsmt_ops.create. */
static dsm_status_t tcp_create(const struct dsmt_config *cfg, const struct dsmt_handler *h, dsmt_t **out)
{
    struct epoll_event ev = { .events = EPOLLIN };
    dsm_status_t st = DSM_ESYS;
    struct tcp *t;

    if (!dsmt_config_ok(cfg, h)) {
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
    dsmt_tcp_conn_close_fd(t, c);
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

    if ((st = dsmt_connect_check("tcp", &t->cfg, t->peer, node, timeout_ms)) != DSM_OK)
        return st;
    c = dsmt_tcp_conn_new(t, -1, node, true);
    if (c == NULL) {
        DSM_ERR("tcp: out of memory connecting to node %d", node);
        return DSM_ENOMEM;
    }
    st = resolve_peer(c, addr);
    if (st < 0)
        goto err;
    c->timeout_ms = timeout_ms;
    c->deadline = dsmt_tcp_now_ms() + (uint64_t)timeout_ms;
    t->peer[node].conn = c;
    t->peer[node].st = DSMT_P_PENDING;
    if (dsmt_tcp_connect_try(t, c, why, sizeof(why)) < 0) {
        DSM_ERR("tcp: connect to node %d: %s", node, why);
        t->peer[node].conn = NULL;
        t->peer[node].st = DSMT_P_NONE;
        st = DSM_ESYS;
        goto err;
    }
    dsmt_tcp_timer_arm(t);
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
    dsm_status_t st;
    ssize_t w;
    int err;

    if ((st = dsmt_send_check("tcp", &t->cfg, t->peer, node, msg, len, page)) != DSM_OK)
        return st;
    c = t->peer[node].conn;
    dsm_put32(hdr + DSMT_TCP_F_LEN, (uint32_t)len);
    dsm_put32(hdr + DSMT_TCP_F_FLAGS, page != DSMT_NO_PAGE ? DSMT_TCP_F_FRAME : 0);
    dsm_put64(hdr + DSMT_TCP_F_PAGE, page);
    iov[0] = (struct iovec){ .iov_base = hdr, .iov_len = sizeof(hdr) };
    iov[1] = (struct iovec){ .iov_base = (void *)msg, .iov_len = len };
    if (page != DSMT_NO_PAGE) {
        iov[2] = (struct iovec){ .iov_base = dsmt_tcp_frame_at(t, page), .iov_len = t->cfg.page_size };
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
        dsmt_tcp_conn_kill_errno(t, c, "write", errno);
        return DSM_EPEER;
    }
    if (w == (ssize_t)total)
        return 0;
    outq_append(t, &c->q, iov, (int)mh.msg_iovlen, w > 0 ? (size_t)w : 0);
    if ((err = dsmt_tcp_conn_watch(t, c, true)) < 0) {
        dsmt_tcp_conn_kill_errno(t, c, "epoll_ctl", -err);
        return DSM_EPEER;
    }
    return 0;
}

/* See dsmt_ops.drop. The caller has logged why; on_peer_lost runs before this returns
 * (the daemon calls drop from on_message, i.e. inside progress()). */
static void tcp_drop(dsmt_t *tt, int node, const char *reason)
{
    struct tcp *t = tcp_of(tt);

    if (!dsmt_drop_check("tcp", &t->cfg, node))
        return;
    if (t->peer[node].conn != NULL)
        dsmt_tcp_conn_kill(t, t->peer[node].conn, DSM_LOG_INFO, reason ? reason : "dropped by the daemon");
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
        dsmt_tcp_connect_done(t, c);
        return;
    }
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
        dsmt_tcp_conn_read(t, c);
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
            dsmt_tcp_accept_all(t);
        else if (evs[i].data.ptr == &t->tfd)
            dsmt_tcp_timer_fire(t);
        else
            conn_event(t, evs[i].data.ptr, evs[i].events);
    }
    t->depth--;
    reap(t);
    dsmt_tcp_timer_arm(t);
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
        dsmt_tcp_conn_close_fd(t, c);
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

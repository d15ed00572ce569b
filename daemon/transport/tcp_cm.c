/*
 * tcp_cm.c - the TCP transport's connections coming and going: nonblocking connects with
 * retries, accepting (bounded: strangers, batches, resting on EMFILE), and the deadline
 * timer (see tcp.c).
 */
#include "tcp_int.h"

/* ---- connecting ------------------------------------------------------------------- */

/* An outgoing TCP connection is established: send our hello, wait for the answer. */
static dsm_status_t conn_connected(struct tcp *t, struct conn *c)
{
    c->state = C_HELLO;
    c->rx = RX_HELLO;
    return dsmt_tcp_conn_queue_hello(t, c);
}

/* One connect attempt. Refusal schedules a retry until the deadline. 0 while still
 * going (retrying, in progress, connected); -1 with `why` filled when it failed. */
int dsmt_tcp_connect_try(struct tcp *t, struct conn *c, char *why, size_t len)
{
    uint64_t now = dsmt_tcp_now_ms();

    c->fd = socket(c->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        snprintf(why, len, "socket: %s", strerror(errno));
        return -1;
    }
    if (dsmt_tcp_sock_tune(c->fd) < 0) {
        snprintf(why, len, "setsockopt: %s", strerror(errno));
        return -1;
    }
    if (connect(c->fd, (struct sockaddr *)&c->sa, c->salen) == 0)
        return conn_connected(t, c) == 0 ? 0 : (snprintf(why, len, "cannot queue the hello"), -1);
    if (errno == EINPROGRESS || errno == EINTR) {
        int err;
        c->state = C_CONNECTING;
        if ((err = dsmt_tcp_conn_watch(t, c, true)) == 0)
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
    dsmt_tcp_conn_close_fd(t, c);
    c->state = C_RETRY;
    c->retry_at = now + RETRY_MS;
    return 0;
}

/* The pending connect finished (EPOLLOUT): go on to the hello, retry, or give up. */
void dsmt_tcp_connect_done(struct tcp *t, struct conn *c)
{
    char why[200];
    int err = 0;
    socklen_t len = sizeof(err);

    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) {
        dsmt_tcp_conn_kill_errno(t, c, "getsockopt(SO_ERROR)", errno);
        return;
    }
    if (err == 0) {
        if (conn_connected(t, c) < 0)
            dsmt_tcp_conn_kill(t, c, DSM_LOG_ERROR, "cannot queue the hello");
        return;
    }
    dsmt_tcp_conn_close_fd(t, c);
    c->last_err = err;
    if (err == ECONNREFUSED && dsmt_tcp_now_ms() + RETRY_MS < c->deadline) {
        c->state = C_RETRY;
        c->retry_at = dsmt_tcp_now_ms() + RETRY_MS;
        return;
    }
    snprintf(why, sizeof(why), "could not connect to %s within %d ms: %s", c->where,
             c->timeout_ms, strerror(err));
    dsmt_tcp_conn_kill(t, c, DSM_LOG_WARN, why);
}

/* ---- timers ----------------------------------------------------------------------- */

static void accept_resume(struct tcp *t);

/* Arm the timerfd for the earliest connect retry or deadline; disarm if none. */
void dsmt_tcp_timer_arm(struct tcp *t)
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
void dsmt_tcp_timer_fire(struct tcp *t)
{
    uint64_t ticks, now = dsmt_tcp_now_ms();
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
            dsmt_tcp_conn_kill(t, c, DSM_LOG_WARN, why);
        } else if (c->deadline <= now) {
            snprintf(why, sizeof(why), "could not connect to %s within %d ms: %s", c->where,
                     c->timeout_ms, c->last_err ? strerror(c->last_err) : "no answer");
            dsmt_tcp_conn_kill(t, c, DSM_LOG_WARN, why);
        } else if (c->state == C_RETRY && c->retry_at <= now &&
                   dsmt_tcp_connect_try(t, c, why, sizeof(why)) < 0) {
            dsmt_tcp_conn_kill(t, c, DSM_LOG_WARN, why);
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
    t->accept_at = dsmt_tcp_now_ms() + t->accept_pause;
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
void dsmt_tcp_accept_all(struct tcp *t)
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
        c = dsmt_tcp_conn_new(t, fd, -1, false);
        if (c == NULL) {
            DSM_ERR("tcp: out of memory accepting a connection");
            dsmt_xclose("tcp", fd, "accepted");
            continue;
        }
        waiting++;
        dsmt_addr_fmt((struct sockaddr *)&sa, c->where, sizeof(c->where));
        c->timeout_ms = ACCEPT_HELLO_MS;
        c->deadline = dsmt_tcp_now_ms() + ACCEPT_HELLO_MS;
        if (dsmt_tcp_sock_tune(fd) < 0)
            dsmt_tcp_conn_kill_errno(t, c, "setsockopt", errno);
        else if ((err = dsmt_tcp_conn_watch(t, c, false)) < 0)
            dsmt_tcp_conn_kill_errno(t, c, "epoll_ctl", -err);
    }
}


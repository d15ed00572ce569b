/*
 * clients.c - the local ranks' channels: the daemon's AF_UNIX SOCK_SEQPACKET socket.
 *
 * Every connection starts with a hello naming its rank and its kind (main, thread,
 * service; see dsm_chan.h). After that a channel carries fixed-size requests that this
 * file checks and hands to pages.c (faults), sync.c (locks, barriers, finalize) or alloc.c.
 * A channel that sends something malformed is closed. A rank that loses a channel before it
 * finalized has crashed or exited early: the job is aborted, as MPI does, so nobody waits
 * forever for it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "dsm_log.h"
#include "dsmd.h"

#define CHAN_QUEUE_MAX (1u << 20) /* messages one channel may hold back: 160 MiB */

static void chan_set_events(struct dsmd *d, struct dsmd_chan *c, int out);
static void chan_ready(void *arg, uint32_t events);
static void listen_ready(void *arg, uint32_t events);

static void chan_close(struct dsmd *d, struct dsmd_chan *c, const char *why)
{
    struct dsmd_rank *rk = dsmd_rank_of(d, c);

    dsmd_loop_del(d->loop, c->fd);
    close(c->fd);
    dsmd_pages_chan_gone(d, c);
    dsmd_sync_chan_gone(d, c);
    dsmd_alloc_chan_gone(d, c);
    d->chans[c->id] = NULL;
    if (rk != NULL) {
        rk->chan_out += c->msgs_out;
        rk->chan_in += c->msgs_in;
        if (!rk->finalized) /* after dsm_finalize the rank touches nothing: nothing is lost */
            rk->chan_undelivered += c->oq_len + c->lost;
        if (c->oq_peak > rk->chan_queue_peak)
            rk->chan_queue_peak = c->oq_peak;
        rk->nchans--;
        if (c->kind == CHAN_SERVICE)
            rk->service = NULL;
        if (c->kind == CHAN_MAIN)
            rk->left_ns = dsmd_now_ns();
        /* a thread channel closes when its thread has exited; any other means the rank is gone */
        if (!rk->finalized && !d->aborting && c->kind != CHAN_THREAD) {
            dsmd_abort_rank(d, rk->rank, "exited", DSM_ESTATE, "rank %d exited without dsm_finalize (%s)", rk->rank, why);
        } else if (rk->finalized && rk->nchans == 0) {
            d->ranks_gone++;
            dsmd_maybe_exit(d);
        }
    }
    free(c->outq);
    free(c);
}

struct dsmd_chan *dsmd_chan_by_id(struct dsmd *d, int id)
{
    return id >= 0 && id < d->nchans ? d->chans[id] : NULL;
}

static int rank_of_chan(struct dsmd *d, struct dsmd_chan *c)
{
    return c->lrank >= 0 ? d->ranks[c->lrank].rank : -1;
}

/* The socket failed for good: the rank is gone (its EOF closes the channel next). */
static void chan_broken(struct dsmd *d, struct dsmd_chan *c, int err)
{
    if (!c->broken && !d->aborting && !(c->lrank >= 0 && d->ranks[c->lrank].finalized))
        DSM_WARN("channel to rank %d: send: %s", rank_of_chan(d, c), strerror(err));
    c->broken = 1;
}

/* Send queued messages while the socket takes them; stop watching POLLOUT once empty. */
static void chan_drain(struct dsmd *d, struct dsmd_chan *c)
{
    while (c->oq_len > 0 && !c->broken) {
        ssize_t n = send(c->fd, &c->outq[c->oq_head], sizeof(struct dsmc_msg), MSG_NOSIGNAL | MSG_DONTWAIT);

        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (n != (ssize_t)sizeof(struct dsmc_msg)) {
            chan_broken(d, c, n < 0 ? errno : EIO);
            break;
        }
        c->oq_head = (c->oq_head + 1) % c->oq_cap;
        c->oq_len--;
        c->stalled_ns = c->oq_len ? dsmd_now_ns() : 0;
    }
    chan_set_events(d, c, 0);
}

/* Queue m behind what the socket has not taken yet. Fails only past CHAN_QUEUE_MAX. */
static dsm_status_t chan_enqueue(struct dsmd *d, struct dsmd_chan *c, const struct dsmc_msg *m)
{
    if (c->oq_len == c->oq_cap) {
        uint32_t ncap = c->oq_cap ? c->oq_cap * 2 : 64;
        struct dsmc_msg *q;

        if (c->oq_cap >= CHAN_QUEUE_MAX || (q = malloc((size_t)ncap * sizeof(*q))) == NULL) {
            dsmd_abort_rank(d, rank_of_chan(d, c), "stalled", DSM_ESTATE, "rank %d holds %u messages from its daemon untaken: it stopped reading its channel",
                       rank_of_chan(d, c), c->oq_len);
            return DSM_ESTATE;
        }
        for (uint32_t i = 0; i < c->oq_len; i++)
            q[i] = c->outq[(c->oq_head + i) % c->oq_cap];
        free(c->outq);
        c->outq = q;
        c->oq_head = 0;
        c->oq_cap = ncap;
    }
    c->outq[(c->oq_head + c->oq_len) % c->oq_cap] = *m;
    if (c->oq_len + 1 > c->oq_peak)
        c->oq_peak = c->oq_len + 1;
    if (c->oq_len++ == 0) {
        c->stalled_ns = dsmd_now_ns();
        chan_set_events(d, c, 1);
    }
    return DSM_OK;
}

/* c's request is answered with m: its trace event and allocation record (--trace,
 * --page-stats). */
static void request_answered(struct dsmd *d, struct dsmd_chan *c, const struct dsmc_msg *m)
{
    if (d->hot != NULL && m->status == DSM_OK && (c->tr_op == DSMC_COALLOC || c->tr_op == DSMC_MALLOC))
        dsmd_hot_alloc(d, c, m->a, c->tr_a);
    if (d->trace != NULL)
        dsmd_trace_answer(d, c, m);
    c->tr_op = 0;
}

/*
 * Never blocks and never drops: what the rank's socket cannot take now waits in the
 * channel's queue, in order, and goes out when the socket is writable again. A rank that
 * stops taking messages fails the job (dsmd_clients_check_stalls names it).
 */
dsm_status_t dsmd_chan_send(struct dsmd *d, struct dsmd_chan *c, struct dsmc_msg *m)
{
    ssize_t n;

    m->magic = DSMC_MAGIC;
    if (c->tr_op != 0 && (m->op == DSMC_REPLY || m->op == DSMC_GRANT))
        request_answered(d, c, m);
    c->msgs_out++;
    if (c->kind != CHAN_SERVICE)
        d->answers++; /* progress, for the deadlock watchdog (waits.c) */
    if (c->broken) {
        c->lost++;
        return DSM_ESYS;
    }
    if (c->oq_len > 0)
        return chan_enqueue(d, c, m);
    n = send(c->fd, m, sizeof(*m), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n == (ssize_t)sizeof(*m))
        return DSM_OK;
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return chan_enqueue(d, c, m);
    chan_broken(d, c, n < 0 ? errno : EIO);
    c->lost++;
    return DSM_ESYS;
}

static void chan_set_events(struct dsmd *d, struct dsmd_chan *c, int out)
{
    if (dsmd_loop_mod(d->loop, c->fd, EPOLLIN | (out ? EPOLLOUT : 0), chan_ready, c) != DSM_OK)
        dsmd_abort(d, DSM_ESYS, "cannot watch the channel of rank %d", rank_of_chan(d, c));
}

void dsmd_clients_check_stalls(struct dsmd *d, int64_t now_ns)
{
    if (d->listen_paused && dsmd_loop_add(d->loop, d->listen_fd, EPOLLIN, listen_ready, d) == DSM_OK)
        d->listen_paused = 0;
    for (int i = 0; i < d->nchans && !d->aborting; i++) {
        struct dsmd_chan *c = d->chans[i];

        if (c != NULL && c->oq_len > 0 && now_ns - c->stalled_ns > d->peer_timeout_ns)
            dsmd_abort_rank(d, rank_of_chan(d, c), "stalled", DSM_ETIMEDOUT,
                       "rank %d took no message from its daemon (node %d) for %.1f s (%u waiting): it is stopped or stuck",
                       rank_of_chan(d, c), d->cfg.node, (double)(now_ns - c->stalled_ns) / 1e9, c->oq_len);
    }
}

void dsmd_chan_reply(struct dsmd *d, struct dsmd_chan *c, int status, uint64_t a)
{
    struct dsmc_msg m = { .op = DSMC_REPLY, .status = status, .a = a };

    dsmd_chan_send(d, c, &m);
}

/* Reply to HELLO_MAIN: the job description, and the frames' memfd as SCM_RIGHTS. */
static dsm_status_t send_welcome(struct dsmd *d, struct dsmd_chan *c, struct dsmd_rank *rk)
{
    struct dsmc_msg m = {
        .magic = DSMC_MAGIC, .op = DSMC_REPLY, .rank = (uint32_t)rk->rank,
        .nranks = (uint32_t)d->cfg.nranks, .node = (uint32_t)d->cfg.node,
        .nnodes = (uint32_t)d->cfg.nnodes, .pad = (uint32_t)d->cfg.memory_nodes, .a = d->cfg.base,
        .seq = (uint64_t)(rk->rank - d->cfg.first_rank),
        .b = d->npages * d->page_size, .c = d->page_size, .d = (uint64_t)d->pops->model,
        .e = d->cfg.page_stats ? DSMC_WELCOME_ALLOC_SITES : 0,
    };
    char cbuf[CMSG_SPACE(sizeof(int))] = { 0 };
    struct iovec iov = { .iov_base = &m, .iov_len = sizeof(m) };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
    struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);

    snprintf(m.text, sizeof(m.text), "%s", d->pops->name);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &d->memfd, sizeof(int));
    if (sendmsg(c->fd, &mh, MSG_NOSIGNAL) != (ssize_t)sizeof(m)) {
        DSM_WARN("welcoming rank %d: sendmsg: %s", rk->rank, strerror(errno));
        return DSM_ESYS;
    }
    return DSM_OK;
}

/* First message of a channel: who it is. Returns non-zero if the channel must close. */
static int chan_hello(struct dsmd *d, struct dsmd_chan *c, const struct dsmc_msg *m)
{
    int lrank = (int)m->rank - d->cfg.first_rank;
    struct dsmd_rank *rk;

    if (m->op < DSMC_HELLO_MAIN || m->op > DSMC_HELLO_SERVICE || lrank < 0 || lrank >= d->cfg.local_ranks) {
        DSM_WARN("refusing a channel: op %u for rank %u (this node serves ranks %d..%d)", m->op, m->rank,
                 d->cfg.first_rank, d->cfg.first_rank + d->cfg.local_ranks - 1);
        return 1;
    }
    rk = &d->ranks[lrank];
    if ((m->op == DSMC_HELLO_MAIN) == (rk->connected != 0) || rk->finalized) {
        DSM_WARN("refusing a channel for rank %d: %s", rk->rank,
                 rk->connected ? "rank already connected" : "rank has not said hello yet");
        return 1;
    }
    c->lrank = lrank;
    rk->nchans++;
    if (m->op == DSMC_HELLO_MAIN && d->lost_early >= 0) {
        dsmd_abort_rank(d, rk->rank, "late", DSM_EPEER,
                        "rank %d called dsm_init after node %d had left the job (lost before any rank of node %d "
                        "joined)", rk->rank, d->lost_early, d->cfg.node);
        return 1;
    }
    if (m->op == DSMC_HELLO_MAIN) {
        c->kind = CHAN_MAIN;
        rk->connected = 1;
        rk->joined_ns = dsmd_now_ns();
        return send_welcome(d, c, rk) != DSM_OK;
    }
    c->kind = m->op == DSMC_HELLO_THREAD ? CHAN_THREAD : CHAN_SERVICE;
    if (c->kind == CHAN_THREAD && dsmd_cache_check_threads(d) != DSM_OK)
        return 1; /* the job is failing, naming the minimum */
    if (c->kind == CHAN_SERVICE) {
        if (rk->service != NULL) {
            DSM_WARN("rank %d opened a second service channel", rk->rank);
            return 1;
        }
        rk->service = c;
    }
    dsmd_chan_reply(d, c, DSM_OK, 0);
    return 0;
}

/* One request on an established channel. Returns non-zero if the channel must close. */
static int chan_request(struct dsmd *d, struct dsmd_chan *c, const struct dsmc_msg *m)
{
    /* a service channel only acknowledges; the others make one request at a time (a
     * second one while the first waits would chain the channel into two wait lists) */
    if ((c->kind == CHAN_SERVICE) != (m->op == DSMC_PROTECT_ACK))
        return 1;
    if (c->kind != CHAN_SERVICE && (c->pending_op != 0 || c->waiting))
        return 1;
    if ((d->trace != NULL || d->hot != NULL) && m->op != DSMC_PROTECT_ACK && m->op != DSMC_ABORT_JOB) {
        dsmd_trace_request(d, c, m);
        if (m->op == DSMC_COALLOC || m->op == DSMC_MALLOC) { /* the call site, for --hotspots */
            c->tr_site = m->d;
            memcpy(c->tr_module, m->text, sizeof(c->tr_module));
        }
    }
    switch (m->op) {
    case DSMC_FAULT:
        dsmd_pages_fault(d, c, m->a, m->b != 0, m->c);
        return 0;
    case DSMC_PROTECT_ACK:
        dsmd_pages_protect_ack(d, c, m->seq);
        return 0;
    case DSMC_COALLOC:
    case DSMC_COFREE:
    case DSMC_MALLOC:
    case DSMC_FREE:
        dsmd_alloc_request(d, c, m);
        return 0;
    case DSMC_LOCK:
    case DSMC_TRYLOCK:
    case DSMC_COND_WAIT:
    case DSMC_COND_SIGNAL:
    case DSMC_UNLOCK:
    case DSMC_BARRIER:
    case DSMC_FINALIZE:
        dsmd_sync_request(d, c, m);
        return 0;
    case DSMC_ATOMIC:
        dsmd_atomic_request(d, c, m);
        return 0;
    case DSMC_DIRECT_INFO:
    case DSMC_DIRECT_PROOF:
        dsmd_direct_request(d, c, m);
        return 0;
    case DSMC_DIRECT_DONE:
        return dsmd_direct_done(d, c, m->a);
    case DSMC_ABORT_JOB:
        /* answered first, so the rank knows it was heard before it exits */
        dsmd_chan_reply(d, c, DSM_OK, 0);
        dsmd_abort_rank(d, rank_of_chan(d, c), "abort", DSM_ESTATE, "rank %d called dsm_abort(%lld)",
                        rank_of_chan(d, c), (long long)(int64_t)m->a);
        return 0;
    default:
        return 1;
    }
}

static void chan_ready(void *arg, uint32_t events)
{
    struct dsmd_chan *c = arg;
    struct dsmd *d = c->d;
    int id = c->id;

    if ((events & EPOLLOUT) && c->oq_len > 0)
        chan_drain(d, c);
    for (;;) {
        struct dsmc_msg m;
        ssize_t n;

        c = dsmd_chan_by_id(d, id); /* a request may have closed it */
        if (c == NULL)
            return;
        n = recv(c->fd, &m, sizeof(m), MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (n <= 0) {
            chan_close(d, c, n == 0 ? "connection closed" : strerror(errno));
            return;
        }
        if (n != (ssize_t)sizeof(m) || m.magic != DSMC_MAGIC) {
            DSM_WARN("malformed channel message (%zd bytes); closing the channel", n);
            chan_close(d, c, "malformed message");
            return;
        }
        c->msgs_in++;
        dsmd_pages_chan_heard(d, c);
        if (c->kind == CHAN_NEW ? chan_hello(d, c, &m) : chan_request(d, c, &m)) {
            c = dsmd_chan_by_id(d, id);
            if (c == NULL)
                return;
            if (c->kind != CHAN_NEW && c->lrank >= 0 && !d->aborting) {
                /* a rank's own channel out of turn: what it waited for (a lock, a fault) would
                 * be answered to nobody and stay taken, so the job cannot go on */
                int rank = rank_of_chan(d, c);

                dsmd_abort_rank(d, rank, "protocol", DSM_EPROTO,
                                "rank %d sent request %u on its %s channel out of turn (%s): libdsm and "
                                "dsmd disagree; the job cannot go on", rank, m.op,
                                c->kind == CHAN_SERVICE ? "service" : c->kind == CHAN_MAIN ? "main" : "thread",
                                c->pending_op != 0 || c->waiting ? "a second request while one waits"
                                                                 : "not a request it may send there");
                return;
            }
            DSM_WARN("closing a channel after op %u", m.op);
            chan_close(d, c, "protocol error on its channel");
            return;
        }
    }
}

static void listen_ready(void *arg, uint32_t events)
{
    struct dsmd *d = arg;

    for (;;) {
        int fd = accept4(d->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        struct dsmd_chan *c;

        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* the socket stays readable: stop watching it until the next watchdog tick */
                DSM_WARN("accept (ranks' socket): %s; not accepting until the next watchdog tick", strerror(errno));
                dsmd_loop_del(d->loop, d->listen_fd);
                d->listen_paused = 1;
            } else if (errno != EAGAIN && errno != EINTR) {
                DSM_WARN("accept: %s", strerror(errno));
            }
            return;
        }
        if (d->nchans == d->capchans) {
            int ncap = d->capchans ? d->capchans * 2 : 64;
            struct dsmd_chan **v = realloc(d->chans, (size_t)ncap * sizeof(*v));

            if (v == NULL) {
                close(fd);
                return;
            }
            d->chans = v;
            d->capchans = ncap;
        }
        c = calloc(1, sizeof(*c));
        if (c == NULL) {
            close(fd);
            return;
        }
        c->d = d;
        c->fd = fd;
        c->id = d->nchans++;
        c->lrank = -1;
        c->unconfirmed = -1;
        c->asked_page = UINT64_MAX;
        d->chans[c->id] = c;
        if (dsmd_loop_add(d->loop, fd, EPOLLIN, chan_ready, c) != DSM_OK)
            chan_close(d, c, "event loop");
    }
    (void)events;
}

dsm_status_t dsmd_clients_init(struct dsmd *d)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };

    if (strlen(d->cfg.socket) >= sizeof(sa.sun_path)) {
        DSM_ERR("socket path too long: %s", d->cfg.socket);
        return DSM_ECONFIG;
    }
    strcpy(sa.sun_path, d->cfg.socket);
    d->listen_fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (d->listen_fd < 0) {
        DSM_ERR("socket: %s", strerror(errno));
        return DSM_ESYS;
    }
    (void)unlink(d->cfg.socket);
    if (bind(d->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(d->listen_fd, 128) < 0) {
        DSM_ERR("listening on %s: %s", d->cfg.socket, strerror(errno));
        close(d->listen_fd);
        d->listen_fd = -1;
        return DSM_ESYS;
    }
    return dsmd_loop_add(d->loop, d->listen_fd, EPOLLIN, listen_ready, d);
}

void dsmd_clients_fini(struct dsmd *d)
{
    for (int i = 0; i < d->nchans; i++) {
        if (d->chans[i]) {
            close(d->chans[i]->fd);
            free(d->chans[i]->outq);
            free(d->chans[i]);
        }
    }
    free(d->chans);
    d->chans = NULL;
    if (d->listen_fd >= 0) {
        close(d->listen_fd);
        (void)unlink(d->cfg.socket);
    }
}

/*
 * The launcher saw rank `rank` exit. Whatever it sent before it exited is queued here by
 * now (a connection, its hello, its EOF): take it all first, so that a rank that joined is
 * never taken for one that did not. Then: finalized is the normal end; joined without
 * finalizing fails the job (its channel's EOF usually said so already); never joined makes
 * it absent, which ends the job as soon as another rank waits for it (sync.c).
 */
void dsmd_clients_rank_exited(struct dsmd *d, int rank, int status)
{
    int lrank = rank - d->cfg.first_rank;
    struct dsmd_rank *rk;

    if (lrank < 0 || lrank >= d->cfg.local_ranks) {
        DSM_WARN("the launcher reports the exit of rank %d, which is not one of this node's", rank);
        return;
    }
    if (!d->listen_paused)
        listen_ready(d, EPOLLIN);
    for (int i = 0; i < d->nchans && !d->aborting; i++)
        if (d->chans[i] != NULL && (d->chans[i]->kind == CHAN_NEW || d->chans[i]->lrank == lrank))
            chan_ready(d->chans[i], EPOLLIN);
    rk = &d->ranks[lrank];
    if (rk->exited || d->aborting)
        return;
    rk->exited = 1;
    rk->exit_status = status;
    if (rk->finalized)
        return;
    if (rk->connected) {
        dsmd_abort_rank(d, rank, "exited", DSM_ESTATE, "rank %d exited (status %d) without dsm_finalize", rank,
                        status);
        return;
    }
    rk->absent = 1;
    d->ranks_absent++;
    dsmd_sync_rank_absent(d, rank, status);
}

int dsmd_clients_any_joined(const struct dsmd *d)
{
    for (int i = 0; i < d->cfg.local_ranks; i++)
        if (d->ranks[i].connected)
            return 1;
    return 0;
}

void dsmd_abort_ranks(struct dsmd *d, int status, const char *text)
{
    for (int i = 0; i < d->cfg.local_ranks; i++) {
        struct dsmd_rank *rk = &d->ranks[i];
        struct dsmc_msg m = { .op = DSMC_ABORT, .status = status };

        if (rk->service == NULL || rk->finalized)
            continue;
        snprintf(m.text, sizeof(m.text), "%s", text);
        dsmd_chan_send(d, rk->service, &m);
    }
}

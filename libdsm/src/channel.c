/* channel.c - rank <-> daemon channels: connect, HELLO, exchanges, per-thread channels; see channel.h. */
#include "channel.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include "stats.h"
#include "dsm_log.h"
#include "runtime.h"
#include "service.h"

/* A thread channel's slot: 0 (free), SLOT_BUSY (being opened or closed), or the thread
 * that opened it and its fd, in one word (slot_of): a sweep's compare-and-swap then closes
 * only the channel it checked. With the two apart, a sweeper that found a dead thread's fd
 * N could close the live channel another thread had opened on the reused N in between,
 * and two threads then shared one channel (its daemon closes a channel that gets a second
 * request while one waits). */
#define SLOT_BUSY UINT64_MAX

static _Atomic uint64_t g_slots[DSM_MAX_THREAD_CHANNELS];

static uint64_t slot_of(pid_t tid, int fd)
{
    return (uint64_t)(uint32_t)tid << 32 | (uint32_t)(fd + 1);
}

static int slot_fd(uint64_t v)
{
    return (int)(uint32_t)v - 1;
}

/* initial-exec: TLS access from the signal handler must not allocate (no __tls_get_addr). */
static __thread int tls_fd __attribute__((tls_model("initial-exec"))) = -1;
static __thread int tls_busy __attribute__((tls_model("initial-exec")));

int dsm_channel_connect(const char *path, int rcv_timeout_s, int snd_timeout_s)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    size_t len = strlen(path);
    int fd, err;

    if (len >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    memcpy(sa.sun_path, path, len + 1);
    fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (rcv_timeout_s > 0) {
        struct timeval tv = { .tv_sec = rcv_timeout_s };
        if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0)
            goto fail;
    }
    if (snd_timeout_s > 0) {
        struct timeval tv = { .tv_sec = snd_timeout_s };
        if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0)
            goto fail;
    }
    while (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        if (errno != EINTR)
            goto fail;
    }
    return fd;
fail:
    err = errno;
    close(fd);
    return -err;
}

void dsm_channel_msg(struct dsmc_msg *m, enum dsmc_op op)
{
    memset(m, 0, sizeof(*m));
    m->magic = DSMC_MAGIC;
    m->op = (uint32_t)op;
    m->rank = (uint32_t)dsm_rt.rank;
}

dsm_status_t dsm_channel_send(int fd, const struct dsmc_msg *m)
{
    for (;;) {
        ssize_t n = send(fd, m, sizeof(*m), MSG_NOSIGNAL);
        if (n == (ssize_t)sizeof(*m))
            return 0;
        if (n >= 0)
            return DSM_ESYS; /* a datagram socket sends all or nothing */
        if (errno == EINTR)
            continue;
        if (errno == EPIPE || errno == ECONNRESET || errno == ENOTCONN)
            return DSM_ENODAEMON;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return DSM_ETIMEDOUT;
        return DSM_ESYS;
    }
}

/* Take the descriptor of an SCM_RIGHTS message, if any: into *fd_out, or closed. */
static void take_fd(struct msghdr *mh, int *fd_out)
{
    struct cmsghdr *c;

    for (c = CMSG_FIRSTHDR(mh); c != NULL; c = CMSG_NXTHDR(mh, c)) {
        int fd;
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS ||
            c->cmsg_len < CMSG_LEN(sizeof(int)))
            continue;
        memcpy(&fd, CMSG_DATA(c), sizeof(fd));
        if (fd_out != NULL && *fd_out < 0)
            *fd_out = fd;
        else
            close(fd);
    }
}

/* Whether a received message is well formed (before its op is matched to the request). */
static bool msg_ok(const struct dsmc_msg *m)
{
    return m->magic == DSMC_MAGIC && m->op > 0 && m->op < DSMC_OP_MAX && m->status <= 0;
}

dsm_status_t dsm_channel_recv(int fd, struct dsmc_msg *m, bool patient, int *fd_out)
{
    union {
        char           buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } ctl;
    struct iovec iov = { .iov_base = m, .iov_len = sizeof(*m) };
    struct msghdr mh;
    ssize_t n;

    if (fd_out != NULL)
        *fd_out = -1;
    for (;;) {
        memset(&mh, 0, sizeof(mh));
        mh.msg_iov = &iov;
        mh.msg_iovlen = 1;
        mh.msg_control = ctl.buf;
        mh.msg_controllen = sizeof(ctl.buf);
        n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
        if (n >= 0)
            break;
        if (errno == EINTR || ((errno == EAGAIN || errno == EWOULDBLOCK) && patient))
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return DSM_ETIMEDOUT;
        if (errno == ECONNRESET || errno == ENOTCONN)
            return DSM_ENODAEMON;
        return DSM_ESYS;
    }
    take_fd(&mh, fd_out);
    if (n == 0)
        return DSM_ENODAEMON;
    if ((size_t)n != sizeof(*m) || (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0 || !msg_ok(m)) {
        if (fd_out != NULL && *fd_out >= 0) {
            close(*fd_out);
            *fd_out = -1;
        }
        return DSM_EPROTO;
    }
    m->text[sizeof(m->text) - 1] = '\0';
    return 0;
}

dsm_status_t dsm_channel_exchange(int fd, const struct dsmc_msg *req, struct dsmc_msg *rep,
                                  enum dsmc_op reply_op, bool patient)
{
    dsm_status_t st = dsm_channel_send(fd, req);

    if (st == 0)
        st = dsm_channel_recv(fd, rep, patient, NULL);
    if (st == 0 && rep->op != (uint32_t)reply_op)
        st = DSM_EPROTO;
    return st;
}

/* Open a channel for a thread and say HELLO_THREAD. Returns the fd or a negative status. */
static int open_thread_channel(void)
{
    struct dsmc_msg req, rep;
    dsm_status_t st;
    int fd = dsm_channel_connect(dsm_rt.socket_path, dsm_rt.fault_timeout_s, dsm_rt.fault_timeout_s);

    if (fd < 0)
        return DSM_ENODAEMON;
    dsm_channel_msg(&req, DSMC_HELLO_THREAD);
    st = dsm_channel_exchange(fd, &req, &rep, DSMC_REPLY, false);
    if (st == 0)
        st = rep.status;
    if (st != 0) {
        close(fd);
        return st;
    }
    return fd;
}

/* Close the channels of threads that have exited (a signal-0 tgkill finds no such thread). */
static void sweep_exited_threads(void)
{
    pid_t pid = getpid();
    size_t i;

    for (i = 0; i < DSM_MAX_THREAD_CHANNELS; i++) {
        uint64_t v = atomic_load(&g_slots[i]);
        if (v == 0 || v == SLOT_BUSY)
            continue;
        if (syscall(SYS_tgkill, pid, (pid_t)(v >> 32), 0) == 0 || errno != ESRCH)
            continue;
        if (atomic_compare_exchange_strong(&g_slots[i], &v, SLOT_BUSY)) { /* still that thread's */
            close(slot_fd(v));
            atomic_store(&g_slots[i], 0);
        }
    }
}

/* Claim a free slot (0 -> SLOT_BUSY). Returns its index or -1 when the table is full. */
static int claim_slot(void)
{
    size_t i;

    for (i = 0; i < DSM_MAX_THREAD_CHANNELS; i++) {
        uint64_t expected = 0;
        if (atomic_compare_exchange_strong(&g_slots[i], &expected, SLOT_BUSY))
            return (int)i;
    }
    return -1;
}

/* Open the calling thread's channel and record it in the table. Returns fd or status. */
static int open_own_channel(void)
{
    int slot, fd;

    sweep_exited_threads();
    slot = claim_slot();
    if (slot < 0)
        return DSM_ENOMEM;
    fd = open_thread_channel();
    if (fd < 0) {
        atomic_store(&g_slots[slot], 0);
        return fd;
    }
    atomic_store(&g_slots[slot], slot_of((pid_t)syscall(SYS_gettid), fd));
    return fd;
}

dsm_status_t dsm_channel_acquire(struct dsm_chan *ch)
{
    int fd;

    /* A compiler barrier around tls_busy is enough: only this thread's handlers race with it. */
    if (tls_busy++ != 0) {
        fd = open_thread_channel();
        ch->temp = true;
    } else {
        fd = tls_fd >= 0 ? tls_fd : open_own_channel();
        if (fd >= 0)
            tls_fd = fd;
        ch->temp = false;
    }
    atomic_signal_fence(memory_order_seq_cst);
    if (fd < 0) {
        tls_busy--;
        return fd;
    }
    ch->fd = fd;
    return 0;
}

void dsm_channel_release(struct dsm_chan *ch)
{
    if (ch->temp)
        close(ch->fd);
    atomic_signal_fence(memory_order_seq_cst);
    tls_busy--;
    ch->fd = -1;
}

void dsm_channel_bind_main(int fd)
{
    tls_fd = fd;
}

void dsm_channel_close_threads(void)
{
    size_t i;

    for (i = 0; i < DSM_MAX_THREAD_CHANNELS; i++) {
        uint64_t v = atomic_exchange(&g_slots[i], SLOT_BUSY);
        if (v != 0 && v != SLOT_BUSY && close(slot_fd(v)) != 0)
            DSM_WARN("closing a thread channel: %s", strerror(errno));
        atomic_store(&g_slots[i], 0);
    }
}

/* Which of the time breakdown's clocks a request's wait goes to (stats.h); -1: none (the
 * finalize, after the wall clock stopped). The fences' lock is the rest, not a lock. */
static int wait_kind(const struct dsmc_msg *req)
{
    switch (req->op) {
    case DSMC_FINALIZE:
        return -1;
    case DSMC_BARRIER:
        return DSM_WAIT_BARRIER;
    case DSMC_LOCK:
    case DSMC_TRYLOCK:
    case DSMC_UNLOCK:
    case DSMC_COND_WAIT:
    case DSMC_COND_SIGNAL:
        return req->a == UINT32_MAX ? DSM_WAIT_OTHER : DSM_WAIT_LOCK;
    default:
        return DSM_WAIT_OTHER;
    }
}

dsm_status_t dsm_channel_request(const char *what, const struct dsmc_msg *req,
                                 struct dsmc_msg *rep, enum dsmc_op reply_op)
{
    struct dsm_chan ch;
    int kind = wait_kind(req);
    uint64_t t0 = dsm_stats_clock();
    dsm_status_t st = dsm_channel_acquire(&ch);
    bool opened = st == 0;

    if (opened) {
        st = dsm_channel_exchange(ch.fd, req, rep, reply_op, true);
        dsm_channel_release(&ch);
    }
    if (kind >= 0)
        dsm_stats_waited((enum dsm_wait)kind, t0);
    if (st == 0)
        return 0;
    if (st == DSM_ENODAEMON && dsm_rt_state() != DSM_RT_FINALIZING)
        dsm_service_grace(); /* the service thread reports a lost daemon and ends the rank */
    if (!opened && st == DSM_ENOMEM)
        DSM_ERR("%s: more than %d threads talk to the daemon", what, DSM_MAX_THREAD_CHANNELS);
    else if (!opened)
        DSM_ERR("%s: cannot open a channel to the daemon at %s: %s", what, dsm_rt.socket_path,
                dsm_status_str(st));
    else
        DSM_ERR("%s: %s on the channel to its daemon (dsmd on node %d)", what,
                st == DSM_ENODAEMON ? "lost connection" : dsm_status_str(st), dsm_rt.node);
    return st;
}

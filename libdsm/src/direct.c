/* direct.c - the rank's side of the direct path (dsm_direct.h); see direct.h. */
#include "direct.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "channel.h"
#include "dsm_direct.h"
#include "dsm_log.h"
#include "hits.h"
#include "runtime.h"

#define DIRECT_HANDSHAKE_MS 10000 /* connecting and proving who we are, per node */

static struct {
    int         *fd;       /* by node: the connection to its daemon's listener, -1: none */
    _Atomic int *busy;     /* by node: 1 while a fault uses that connection */
    int          nnodes;
    uint8_t     *alias;    /* the node's frames, writable: where a direct read lands */
    size_t       alias_len;
    uint16_t    *door;
    uint16_t     claim;    /* DSM_DOOR_CLAIM | this rank's local index */
    int          memfd;    /* the frames' memfd (kept: a ZEROES answer asks it for holes) */
} g;

/* ---- set-up (dsm_init: not in a signal handler) ---- */

/* Read exactly len bytes within the fault timeout. 0, or a status. */
static dsm_status_t recv_exact(int fd, void *buf, size_t len, int timeout_ms)
{
    for (size_t got = 0; got < len;) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        int r = poll(&p, 1, timeout_ms);
        ssize_t n;

        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return r == 0 ? DSM_ETIMEDOUT : DSM_ESYS;
        n = recv(fd, (uint8_t *)buf + got, len - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return DSM_ESYS;
        got += (size_t)n;
    }
    return 0;
}

/* Write all of buf (async-signal-safe: also the fault's). 0, or -1 (errno). */
static int send_all(int fd, const void *buf, size_t len)
{
    for (size_t sent = 0; sent < len;) {
        ssize_t n = send(fd, (const uint8_t *)buf + sent, len - sent, MSG_NOSIGNAL);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        sent += (size_t)n;
    }
    return 0;
}

/* Connect to node's listener at host:port within timeout_ms, and make the socket blocking
 * again. The socket, or -1 (errno). */
static int dial(const char *host, uint64_t port, int timeout_ms)
{
    char service[16];
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *ai;
    int fd, one = 1, err = 0;
    socklen_t el = sizeof(err);

    snprintf(service, sizeof(service), "%llu", (unsigned long long)port);
    if (getaddrinfo(host, service, &hints, &ai) != 0) {
        errno = EINVAL;
        return -1;
    }
    fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        struct pollfd p = { .fd = fd, .events = POLLOUT };
        int r = errno == EINPROGRESS ? poll(&p, 1, timeout_ms) : -1;

        if (r == 0)
            err = ETIMEDOUT;
        else if (r < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0)
            err = errno;
    }
    if (fd >= 0 && err == 0 && (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) != 0 ||
                                setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0))
        err = errno;
    if (fd >= 0 && err != 0) {
        close(fd);
        fd = -1;
        errno = err;
    }
    freeaddrinfo(ai);
    return fd;
}

/* Connect to node's daemon and prove who we are with a mac our own daemon makes. The
 * connection, or -1 (logged once: direct reads to that node go through our daemon). */
static int connect_node(int main_fd, int node, int timeout_ms)
{
    struct dsmc_msg req, rep;
    struct dsm_direct_msg m;
    int fd;
    dsm_status_t st;

    dsm_channel_msg(&req, DSMC_DIRECT_INFO);
    req.a = (uint64_t)node;
    st = dsm_channel_exchange(main_fd, &req, &rep, DSMC_REPLY, false);
    if (st != 0 || rep.status != 0) {
        DSM_WARN("no direct reads from node %d: its address: %s", node, dsm_status_str(st ? st : rep.status));
        return -1;
    }
    rep.text[sizeof(rep.text) - 1] = '\0';
    fd = dial(rep.text, rep.a, timeout_ms);
    if (fd < 0) {
        DSM_WARN("no direct reads from node %d: connecting to %s port %llu: %s", node, rep.text,
                 (unsigned long long)rep.a, strerror(errno));
        return -1;
    }
    st = recv_exact(fd, &m, sizeof(m), timeout_ms);
    if (st == 0 && (m.magic != DSM_DIRECT_MAGIC || m.op != DSM_DIRECT_NONCE_OP))
        st = DSM_EPROTO;
    if (st == 0) {
        dsm_channel_msg(&req, DSMC_DIRECT_PROOF);
        req.a = (uint64_t)node;
        memcpy(&req.b, m.bytes, sizeof(m.bytes)); /* b, c, d, e */
        st = dsm_channel_exchange(main_fd, &req, &rep, DSMC_REPLY, false);
        if (st == 0 && rep.status != 0)
            st = rep.status;
    }
    if (st == 0) {
        memset(&m, 0, sizeof(m));
        m.magic = DSM_DIRECT_MAGIC;
        m.op = DSM_DIRECT_HELLO;
        m.node = (uint32_t)dsm_rt.node;
        m.rank = (uint32_t)dsm_rt.rank;
        memcpy(m.bytes, &rep.b, sizeof(m.bytes));
        st = send_all(fd, &m, sizeof(m)) == 0 ? 0 : DSM_ESYS;
    }
    if (st == 0)
        st = recv_exact(fd, &m, sizeof(m), timeout_ms);
    if (st == 0 && (m.magic != DSM_DIRECT_MAGIC || m.op != DSM_DIRECT_WELCOME || m.status != 0))
        st = DSM_EPROTO;
    if (st != 0) {
        DSM_WARN("no direct reads from node %d: its daemon did not welcome us: %s", node, dsm_status_str(st));
        close(fd);
        return -1;
    }
    return fd;
}

dsm_status_t dsm_direct_start(int main_fd, int memfd, uint64_t space_bytes)
{
    int timeout_ms = DIRECT_HANDSHAKE_MS;

    g.door = dsm_hits_door();
    if (g.door == NULL || dsm_rt.nnodes < 2)
        return 0;
    g.fd = malloc((size_t)dsm_rt.nnodes * sizeof(*g.fd));
    g.busy = calloc((size_t)dsm_rt.nnodes, sizeof(*g.busy));
    if (g.fd == NULL || g.busy == NULL) {
        DSM_ERR("out of memory for the direct connections");
        dsm_direct_stop();
        return DSM_ENOMEM;
    }
    g.memfd = -1;
    g.alias = mmap(NULL, (size_t)space_bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, memfd, 0);
    if (g.alias == MAP_FAILED || (g.memfd = fcntl(memfd, F_DUPFD_CLOEXEC, 0)) < 0) {
        /* the daemons' path needs neither: read through them */
        DSM_WARN("no direct reads: cannot map or keep the node's frames: %s", strerror(errno));
        if (g.alias == MAP_FAILED)
            g.alias = NULL;
        else
            g.alias_len = (size_t)space_bytes;
        dsm_direct_stop();
        return 0;
    }
    g.alias_len = (size_t)space_bytes;
    g.nnodes = dsm_rt.nnodes;
    g.claim = (uint16_t)(DSM_DOOR_CLAIM | (unsigned)dsm_rt.lrank);
    for (int n = 0; n < g.nnodes; n++)
        g.fd[n] = n == dsm_rt.node ? -1 : connect_node(main_fd, n, timeout_ms);
    return 0;
}

void dsm_direct_stop(void)
{
    for (int n = 0; g.fd != NULL && n < g.nnodes; n++)
        if (g.fd[n] >= 0)
            close(g.fd[n]);
    if (g.memfd > 0)
        close(g.memfd); /* 0 is never ours: g is zeroed before start */
    if (g.alias != NULL && munmap(g.alias, g.alias_len) != 0)
        DSM_WARN("unmapping the frames' direct view: %s", strerror(errno));
    free(g.fd);
    free((void *)g.busy);
    memset(&g, 0, sizeof(g));
}

/* ---- the fault (async-signal-safe) ---- */

/* Sleep until fd is readable: true, or false with *why (the fault timeout, an error). */
static bool poll_ready(int fd, int timeout_ms, const char **why)
{
    for (;;) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        int r = poll(&p, 1, timeout_ms);

        if (r > 0)
            return true;
        if (r == 0) {
            *why = "no answer from the home's daemon within DSM_FAULT_TIMEOUT";
            errno = 0;
            return false;
        }
        if (errno != EINTR) {
            *why = "waiting for the home's daemon";
            return false;
        }
    }
}

/* Read exactly len bytes: spin up to fault_spin_us first (the home answers in tens of
 * microseconds), then sleep in poll up to the fault timeout. `asleep`: nothing is expected
 * yet (without spinning, sleep before the first recv: one system call fewer than a recv
 * that finds nothing); 0 for bytes that follow what just came. 0, or -1 with *why. */
static int await_exact(int fd, void *buf, size_t len, bool asleep, const char **why)
{
    struct timespec t0, t;
    long spin_ns = (long)dsm_rt.fault_spin_us * 1000;
    int timeout_ms = dsm_rt.fault_timeout_s > 0 ? dsm_rt.fault_timeout_s * 1000 : -1;
    size_t got = 0;

    if (spin_ns > 0 && clock_gettime(CLOCK_MONOTONIC, &t0) != 0)
        spin_ns = 0;
    asleep = asleep && spin_ns == 0;
    while (got < len) {
        ssize_t n;

        if (asleep && !poll_ready(fd, timeout_ms, why))
            return -1;
        n = recv(fd, (uint8_t *)buf + got, len - got, MSG_DONTWAIT);
        if (n > 0) {
            got += (size_t)n;
            asleep = false;
            continue;
        }
        if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
            *why = n == 0 ? "the home's daemon closed the connection" : "receiving from the home's daemon";
            return -1;
        }
        asleep = true; /* nothing there: spin on while the spin lasts, then sleep */
        if (spin_ns > 0 && clock_gettime(CLOCK_MONOTONIC, &t) == 0 &&
            (t.tv_sec - t0.tv_sec) * 1000000000L + (t.tv_nsec - t0.tv_nsec) <= spin_ns)
            asleep = false;
        else
            spin_ns = 0;
    }
    return 0;
}

int dsm_direct_read(uint64_t page, int *home_out, const char **why)
{
    uint16_t v, claim = g.claim;
    int home, idle = 0, rc = -1;
    struct dsm_direct_msg m;
    size_t ps = (size_t)1 << dsm_rt.vm.page_shift;
    sigset_t all, saved;

    if (g.door == NULL || page >= dsm_vm_npages(&dsm_rt.vm))
        return 0;
    v = __atomic_load_n(&g.door[page], __ATOMIC_SEQ_CST);
    home = (int)v - 1;
    if (v == 0 || (v & DSM_DOOR_CLAIM) || home >= g.nnodes || g.fd[home] < 0)
        return 0;
    if (dsm_hits_scan_hint(page) > 1)
        return 0; /* a scan: the daemon's reads ahead bring more pages per exchange */
    /* no signal handler may run between the claim and DONE: one that touched the page
     * would wait for a DONE only this interrupted handler can set */
    sigfillset(&all);
    if (pthread_sigmask(SIG_BLOCK, &all, &saved) != 0)
        return 0;
    if (!atomic_compare_exchange_strong(&g.busy[home], &idle, 1)) {
        pthread_sigmask(SIG_SETMASK, &saved, NULL);
        return 0; /* another thread's direct read holds the connection */
    }
    *home_out = home;
    if (!__atomic_compare_exchange_n(&g.door[page], &v, claim, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
        atomic_store(&g.busy[home], 0);
        pthread_sigmask(SIG_SETMASK, &saved, NULL);
        return 0; /* closed or claimed meanwhile */
    }
    dsm_hits_test_delay(); /* claimed, not yet asked: the daemon's faults on it park */
    memset(&m, 0, sizeof(m));
    m.magic = DSM_DIRECT_MAGIC;
    m.op = DSM_DIRECT_READ;
    m.page = page;
    if (send_all(g.fd[home], &m, sizeof(m)) != 0) {
        *why = "sending to the home's daemon";
        goto out;
    }
    if (await_exact(g.fd[home], &m, sizeof(m), true, why) != 0)
        goto out;
    if (m.magic != DSM_DIRECT_MAGIC || m.page != page ||
        (m.op != DSM_DIRECT_GRANT && m.op != DSM_DIRECT_ZEROES && m.op != DSM_DIRECT_REFUSED) ||
        (m.op != DSM_DIRECT_REFUSED && m.access != DSM_ACCESS_READ)) {
        *why = "the home's daemon answered out of turn";
        errno = 0;
        goto out;
    }
    if (m.op == DSM_DIRECT_REFUSED) {
        /* the home has no such page: nothing was granted; our daemon takes the fault (and
         * names the error). A grant our daemon counted ahead is counted applied (dsm_direct.h) */
        v = __atomic_exchange_n(&g.door[page], 0, __ATOMIC_SEQ_CST);
        if (v & DSM_DOOR_COUNTED)
            atomic_fetch_add_explicit(&dsm_rt.applied[page], 1, memory_order_release);
        rc = 0;
        goto out;
    }
    /* the claim keeps every other writer of this frame away (dsm_direct.h) */
    if (m.op == DSM_DIRECT_GRANT && await_exact(g.fd[home], g.alias + page * ps, ps, false, why) != 0)
        goto out;
    if (m.op == DSM_DIRECT_ZEROES && !dsm_direct_hole(g.memfd, (off_t)(page * ps), ps))
        memset(g.alias + page * ps, 0, ps); /* a stale copy's bytes; a hole reads as zeroes */
    dsm_hits_test_delay(); /* in the frame, not yet mapped: the home's next orders wait */
    if (dsm_vm_protect(&dsm_rt.vm, page, 1, DSM_ACCESS_READ) != 0) {
        *why = "mprotect failed";
        rc = -2;
        goto out;
    }
    /* our daemon counts this grant when it ends the claim (dsm_chan.h) */
    atomic_fetch_add_explicit(&dsm_rt.applied[page], 1, memory_order_release);
    dsm_hits_note(page, 1, 1);
    v = __atomic_fetch_or(&g.door[page], DSM_DOOR_DONE, __ATOMIC_SEQ_CST);
    rc = (v & DSM_DOOR_WAIT) ? 2 : 1; /* 2: it waits for us: tell it */
out:
    atomic_store(&g.busy[home], 0);
    pthread_sigmask(SIG_SETMASK, &saved, NULL);
    return rc;
}

/*
 * microbench.c - DSM latencies against a raw TCP request/response measured in the same run.
 * (Long: each figure's setup, timing loop and baseline sit together, so one can be read
 * without the others.)
 *
 * Run with `dsmrun -n 2` (or more; one rank per node for the remote figures). Rank 0 times
 * every sample; the other ranks play their parts. Figures, each over REPS samples after a
 * warm-up:
 *   raw tcp       a TCP ping-pong between rank 0 and rank 1 themselves (rank 1 listens on an
 *                 ephemeral port of the address its node's dsmd listens on, from
 *                 DSM_PEER_ADDRS; 127.0.0.1 when that is not set; and publishes the port
 *                 through DSM memory), so across hosts it crosses the same link: 64-byte
 *                 request -> 4096-byte response, and 4096 -> 4096, measured before and
 *                 after the DSM figures. The baseline is the median of all 64 -> 4096
 *                 samples: the work a read fault must do at least (a request, a page back).
 *   read fault    rank 0 loads one word of a fresh page whose home is rank 1's node, either
 *                 untouched ("home-clean") or written by rank 1 first ("owner-dirty"); with
 *                 3+ nodes also homed on a third node and owned by rank 1 ("3-hop"); and, for
 *                 reference, a fresh page homed on rank 0's own node. Each fault sample
 *                 alternates with a raw 64 -> 4096 exchange, so every read-fault figure also
 *                 has a baseline taken under the same machine load ("sampled alternately").
 *   write fault   ranks 1..N read a fresh page (home: rank 1's node), barrier, rank 0 writes
 *                 it: the fault must invalidate N copies. N = 0 .. nranks-1.
 *   lock          hand-off between ranks 0 and 1 (one lock id, a shared turn variable: the
 *                 time from one rank's pass to the other's, page transfer of the turn
 *                 variable included), and an uncontended lock+unlock.
 *   barrier       one dsm_barrier of all ranks.
 *   raw unix      (rank 0, at the start) a 160-byte AF_UNIX SOCK_SEQPACKET ping-pong with a
 *                 forked echo process: the kind of hop a fault makes twice more than a raw
 *                 TCP round trip does (rank -> its daemon, and back). Not a baseline for the
 *                 ratios: it shows how much of a fault the local hops cost on this machine.
 *   raw SIGSEGV   (rank 0, at the start) a load of a PROT_NONE page whose SIGSEGV handler
 *                 mprotects it readable, in a forked child without DSM: the signal part of
 *                 every fault, on this machine.
 *   direct fault  (ranks 0 and 1, no DSM) a prototype of the fastest fault a path from the
 *   floor         faulting rank straight to the home could give: a forked child of rank 0
 *                 loads a PROT_NONE page whose SIGSEGV handler asks rank 1 for it over the
 *                 raw connection and receives it into a writable alias of the page; two
 *                 processes wake per fault against a DSM fault's four. Sampled alternately
 *                 with raw exchanges, like the read faults.
 * Coalloc places pages in blocks: a region of M*B pages over M nodes has node i as home of
 * pages [i*B, (i+1)*B), which is how pages with a chosen home are picked. Each page is used
 * once, in a strided order that extends no scan, so the daemon reads and grants nothing
 * ahead; each timed load is checked, untimed, to fault (apps/common/coldpage.h: a page found
 * readable fails the run), so every sample is a cold fault. The values read and written are checked too: a
 * benchmark run that saw a stale or wrong value fails (exit 1).
 *
 * Output: a table (median, mean, min in microseconds, ratio of the median to the raw
 * 64 -> 4096 round trip) and the ratio lines; `--json FILE` writes the same as JSON.
 *
 * usage: microbench [-r REPS] [--json FILE]      (default REPS = 1000)
 */
#define _GNU_SOURCE /* accept4 */
#include <dsm/dsm.h>

#include "coldpage.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_FIGS     64
#define IO_TIMEOUT_MS 10000
#define LOCK_HANDOFF 1u /* lock ids used by the lock figures */
#define LOCK_SOLO    2u

struct opts {
    int         reps;
    const char *json;
};

/* One measured figure: rank 0's samples and their summary. */
struct figure {
    char    name[80];
    double *us;
    int     n;
    double  median, mean, min;
    int     paired; /* index of the raw figure sampled alternately with this one, or -1 */
};

/* What the run learns about the job, and its results. */
struct bench {
    struct opts   o;
    int           rank, nranks, nnodes;
    int           node0, node1; /* nodes of ranks 0 and 1 */
    int           warm;         /* warm-up samples discarded before each figure */
    size_t        page;
    int           rawfd;        /* ranks 0 and 1: the raw TCP connection; else -1 */
    int          *shared;       /* control block: see CTL_* */
    struct figure figs[MAX_FIGS];
    int           nfigs;
    long          errors;       /* wrong values seen by this rank */
    int           probe[2];     /* rank 0: a pipe for coldpage_readable */
};

/* Slots of the shared control block (one page per slot). */
enum { CTL_PORT, CTL_TURN, CTL_ERRORS, CTL_NODES, CTL_NSLOTS };

/* Nanoseconds on the monotonic clock. */
static int64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Pointer to int slot `slot` (each on its own page) of the control block. */
static int *ctl(struct bench *b, int slot)
{
    return (int *)((char *)b->shared + (size_t)slot * b->page);
}

/* Pointer to the i-th page of node `node`'s block in a region of nnodes blocks of `blk`. */
static volatile uint64_t *page_at(struct bench *b, void *base, size_t blk, int node, size_t i)
{
    return (volatile uint64_t *)((char *)base + ((size_t)node * blk + i) * b->page);
}

/* Parse -r and --json into *o; 0 on success, -1 (usage printed) on bad input. */
static int parse_opts(int argc, char **argv, struct opts *o)
{
    static const struct option longopts[] = {
        {"reps", required_argument, NULL, 'r'},
        {"json", required_argument, NULL, 'j'},
        {NULL, 0, NULL, 0},
    };
    int c;

    o->reps = 1000;
    o->json = NULL;
    while ((c = getopt_long(argc, argv, "r:j:", longopts, NULL)) != -1) {
        char *end;

        if (c == 'r') {
            long v = strtol(optarg, &end, 10);

            if (*optarg != '\0' && *end == '\0' && v >= 1 && v <= 1000000) {
                o->reps = (int)v;
                continue;
            }
        } else if (c == 'j') {
            o->json = optarg;
            continue;
        }
        fprintf(stderr, "usage: microbench [-r REPS] [--json FILE]\n");
        return -1;
    }
    return 0;
}

/* Barrier that reports its failure; 0 or the DSM error. */
static int barrier(struct bench *b)
{
    int rc = dsm_barrier();

    if (rc != 0)
        fprintf(stderr, "microbench: rank %d: dsm_barrier: %s\n", b->rank, dsm_strerror(rc));
    return rc;
}

/* Compare for qsort. */
static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, c = *(const double *)y;

    return (a > c) - (a < c);
}

/* Start a figure on rank 0: room for `n` samples. NULL if out of memory (reported). */
static struct figure *fig_begin(struct bench *b, const char *name, int n)
{
    struct figure *f;

    if (b->rank != 0)
        return NULL;
    if (b->nfigs == MAX_FIGS) {
        fprintf(stderr, "microbench: more than %d figures; '%s' is not recorded\n", MAX_FIGS, name);
        return NULL;
    }
    f = &b->figs[b->nfigs];
    f->us = calloc((size_t)n, sizeof(double));
    if (f->us == NULL) {
        fprintf(stderr, "microbench: out of memory\n");
        return NULL;
    }
    snprintf(f->name, sizeof(f->name), "%s", name);
    f->n = 0;
    f->paired = -1;
    b->nfigs++;
    return f;
}

/* Record sample number `i` (ns) unless it is a warm-up sample. */
static void fig_add(struct bench *b, struct figure *f, int i, int64_t ns)
{
    if (f != NULL && i >= b->warm)
        f->us[f->n++] = (double)ns / 1000.0;
}

/* Compute median, mean and min of a finished figure. */
static void fig_end(struct figure *f)
{
    double sum = 0.0;

    if (f == NULL || f->n == 0)
        return;
    qsort(f->us, (size_t)f->n, sizeof(double), cmp_double);
    for (int i = 0; i < f->n; i++)
        sum += f->us[i];
    f->mean = sum / f->n;
    f->min = f->us[0];
    f->median = f->n % 2 ? f->us[f->n / 2] : 0.5 * (f->us[f->n / 2 - 1] + f->us[f->n / 2]);
}

/* ---------------------------------------------------------------- raw TCP baseline */

/* Wait until fd is ready for `events`; 0, or -1 on timeout/error (reported). */
static int wait_fd(int fd, short events)
{
    struct pollfd p = {.fd = fd, .events = events};
    int           n;

    do {
        n = poll(&p, 1, IO_TIMEOUT_MS);
    } while (n < 0 && errno == EINTR);
    if (n <= 0) {
        fprintf(stderr, "microbench: raw tcp: %s\n", n == 0 ? "timed out" : strerror(errno));
        return -1;
    }
    return 0;
}

/* Receive exactly len bytes; 0, or -1 on error/EOF/timeout (reported). */
static int recv_full(int fd, void *buf, size_t len)
{
    size_t got = 0;

    while (got < len) {
        ssize_t n = recv(fd, (char *)buf + got, len - got, MSG_DONTWAIT);

        if (n > 0) {
            got += (size_t)n;
        } else if (n == 0) {
            fprintf(stderr, "microbench: raw tcp: peer closed\n");
            return -1;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            if (wait_fd(fd, POLLIN) != 0)
                return -1;
        } else if (errno != EINTR) {
            fprintf(stderr, "microbench: raw tcp recv: %s\n", strerror(errno));
            return -1;
        }
    }
    return 0;
}

/* Send exactly len bytes; 0, or -1 on error/timeout (reported). */
static int send_full(int fd, const void *buf, size_t len)
{
    size_t put = 0;

    while (put < len) {
        ssize_t n = send(fd, (const char *)buf + put, len - put, MSG_DONTWAIT | MSG_NOSIGNAL);

        if (n >= 0) {
            put += (size_t)n;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            if (wait_fd(fd, POLLOUT) != 0)
                return -1;
        } else if (errno != EINTR) {
            fprintf(stderr, "microbench: raw tcp send: %s\n", strerror(errno));
            return -1;
        }
    }
    return 0;
}

/* Set TCP_NODELAY on fd; 0 or -1 (reported). */
static int nodelay(int fd)
{
    int one = 1;

    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0) {
        fprintf(stderr, "microbench: TCP_NODELAY: %s\n", strerror(errno));
        return -1;
    }
    return 0;
}

/*
 * The IPv4 address node `node`'s dsmd listens on: entry `node` of DSM_PEER_ADDRS
 * ("host:port,..." in node order), where rank 1 listens for the raw connection so that the
 * baseline crosses the link the daemons use. 127.0.0.1 when the variable is absent; -1
 * (reported) when the entry is not a numeric IPv4 address.
 */
static int node_addr(int node, struct in_addr *a)
{
    const char *s = getenv("DSM_PEER_ADDRS");
    char        host[64];
    size_t      len;

    a->s_addr = htonl(INADDR_LOOPBACK);
    if (s == NULL || *s == '\0')
        return 0;
    for (int k = 0; k < node && s != NULL; k++) {
        s = strchr(s, ',');
        s = s ? s + 1 : NULL;
    }
    len = s ? strcspn(s, ":,") : 0;
    if (len == 0 || len >= sizeof(host)) {
        fprintf(stderr, "microbench: no address for node %d in DSM_PEER_ADDRS\n", node);
        return -1;
    }
    memcpy(host, s, len);
    host[len] = '\0';
    if (inet_pton(AF_INET, host, a) != 1) {
        fprintf(stderr, "microbench: node %d's address '%s' is not IPv4\n", node, host);
        return -1;
    }
    return 0;
}

/* Rank 1: a listening socket on `addr`, port stored in *port; fd or -1 (reported). */
static int raw_listen(struct in_addr addr, int *port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr = addr};
    socklen_t          sl = sizeof(sa);
    int                fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    char               name[INET_ADDRSTRLEN];

    if (fd < 0) {
        fprintf(stderr, "microbench: socket: %s\n", strerror(errno));
        return -1;
    }
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 1) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &sl) != 0) {
        inet_ntop(AF_INET, &addr, name, sizeof(name));
        fprintf(stderr, "microbench: listen on %s: %s\n", name, strerror(errno));
        close(fd);
        return -1;
    }
    *port = ntohs(sa.sin_port);
    return fd;
}

/* Rank 1: accept the one connection on lfd; connected fd or -1 (reported). */
static int raw_accept(int lfd)
{
    int fd;

    if (wait_fd(lfd, POLLIN) != 0)
        return -1;
    fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "microbench: accept: %s\n", strerror(errno));
        return -1;
    }
    if (nodelay(fd) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Rank 0: connect to addr:port; fd or -1 (reported). */
static int raw_connect(struct in_addr addr, int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr = addr};
    int                fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    char               name[INET_ADDRSTRLEN];

    if (fd < 0) {
        fprintf(stderr, "microbench: socket: %s\n", strerror(errno));
        return -1;
    }
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || nodelay(fd) != 0) {
        inet_ntop(AF_INET, &addr, name, sizeof(name));
        fprintf(stderr, "microbench: connect to %s:%d: %s\n", name, port, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/*
 * One ping-pong exchange number i on the raw connection: rank 0 sends `req` bytes and waits
 * for `resp` bytes, recording the round trip as sample i of f; rank 1 answers. The
 * response's first byte echoes the request's, so a mixed-up stream is caught. 0 or -1.
 */
static int raw_exchange(struct bench *b, struct figure *f, size_t req, size_t resp, int i)
{
    static char out[4096], in[4096];

    if (b->rank == 0) {
        int64_t t0 = now_ns();

        out[0] = (char)i;
        if (send_full(b->rawfd, out, req) != 0 || recv_full(b->rawfd, in, resp) != 0)
            return -1;
        fig_add(b, f, i, now_ns() - t0);
        if (in[0] != (char)i)
            b->errors++;
        return 0;
    }
    if (recv_full(b->rawfd, in, req) != 0)
        return -1;
    out[0] = in[0];
    return send_full(b->rawfd, out, resp);
}

/* A series of `count` raw exchanges (ranks 0 and 1). 0 or -1. */
static int raw_series(struct bench *b, struct figure *f, size_t req, size_t resp, int count)
{
    for (int i = 0; i < count; i++)
        if (raw_exchange(b, f, req, resp, i) != 0)
            return -1;
    return 0;
}

/*
 * Collective: ranks 0 and 1 open the raw connection to rank 1's node's address (rank 1's
 * port travels through DSM memory) into b->rawfd. 0, or -1 if it failed on this rank.
 */
static int raw_setup(struct bench *b)
{
    struct in_addr addr;
    int            lfd = -1, fd = -1, port = 0, rc, have = 0;

    if (b->rank <= 1)
        have = node_addr(b->node1, &addr) == 0;
    if (b->rank == 1) {
        lfd = have ? raw_listen(addr, &port) : -1;
        *ctl(b, CTL_PORT) = lfd < 0 ? -1 : port;
    }
    rc = barrier(b);
    if (rc == 0 && b->rank == 0 && have && *ctl(b, CTL_PORT) > 0)
        fd = raw_connect(addr, *ctl(b, CTL_PORT));
    if (rc == 0 && b->rank == 1 && lfd >= 0)
        fd = raw_accept(lfd);
    if (lfd >= 0)
        close(lfd);
    b->rawfd = fd;
    return rc != 0 || (b->rank <= 1 && fd < 0) ? -1 : 0;
}

/*
 * The raw baseline figures (ranks 0 and 1; others only join the barriers), tagged with
 * `when` ("start" or "end": the baseline is measured on both sides of the DSM figures, so
 * a change of machine load during the run shows). 0 or -1.
 */
static int bench_raw(struct bench *b, const char *when)
{
    char name[80];

    int n = b->warm + b->o.reps, res = 0;

    if (b->rank <= 1) {
        struct figure *f1, *f2;

        snprintf(name, sizeof(name), "raw tcp 64->4096 round trip (%s)", when);
        f1 = fig_begin(b, name, n);
        res = raw_series(b, f1, 64, 4096, n);
        fig_end(f1);
        snprintf(name, sizeof(name), "raw tcp 4096->4096 round trip (%s)", when);
        f2 = fig_begin(b, name, n);
        if (res == 0)
            res = raw_series(b, f2, 4096, 4096, n);
        fig_end(f2);
    }
    if (barrier(b) != 0)
        res = -1;
    return res;
}

/*
 * The local-hop reference (rank 0 only): a 160-byte request/response over an AF_UNIX
 * SOCK_SEQPACKET socket pair with a forked child that echoes (it touches no DSM memory and
 * uses only read/write/_exit). 0 or -1.
 */
static int bench_unix_hop(struct bench *b)
{
    int n = b->warm + b->o.reps, sv[2], res = 0;
    char buf[160] = { 0 };
    struct figure *f;
    pid_t pid;

    if (b->rank != 0)
        return 0;
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
        fprintf(stderr, "microbench: socketpair: %s\n", strerror(errno));
        return -1;
    }
    pid = fork();
    if (pid == 0) {
        close(sv[0]);
        while (read(sv[1], buf, sizeof(buf)) > 0)
            if (write(sv[1], buf, sizeof(buf)) != (ssize_t)sizeof(buf))
                break;
        _exit(0);
    }
    close(sv[1]);
    if (pid < 0) {
        fprintf(stderr, "microbench: fork: %s\n", strerror(errno));
        close(sv[0]);
        return -1;
    }
    f = fig_begin(b, "raw unix seqpacket 160->160 round trip (local hop)", n);
    for (int i = 0; i < n && res == 0; i++) {
        int64_t t0 = now_ns();

        if (write(sv[0], buf, sizeof(buf)) != (ssize_t)sizeof(buf) || read(sv[0], buf, sizeof(buf)) != (ssize_t)sizeof(buf))
            res = -1;
        else
            fig_add(b, f, i, now_ns() - t0);
    }
    fig_end(f);
    close(sv[0]); /* the child sees end of file and exits */
    if (waitpid(pid, NULL, 0) < 0 || res != 0) {
        fprintf(stderr, "microbench: unix hop failed\n");
        return -1;
    }
    return 0;
}

/* The child of bench_signal: the page its handler opens. */
static volatile char *sig_page;
static size_t sig_len;

static void sig_open(int sig, siginfo_t *si, void *uc)
{
    (void)sig;
    (void)si;
    (void)uc;
    if (mprotect((void *)sig_page, sig_len, PROT_READ | PROT_WRITE) != 0)
        _exit(3); /* async-signal-safe; the parent reports the failure */
}

/* The child of bench_signal: n samples into fd (exits 0, or non-zero on failure). */
static void signal_child(struct bench *b, int fd, int n)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = sig_open;
    sa.sa_flags = SA_SIGINFO;
    sig_len = b->page;
    sig_page = mmap(NULL, sig_len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (sig_page == MAP_FAILED || sigaction(SIGSEGV, &sa, NULL) != 0)
        _exit(2);
    for (int i = 0; i < n; i++) {
        int64_t t0, dt;

        if (mprotect((void *)sig_page, sig_len, PROT_NONE) != 0)
            _exit(2);
        t0 = now_ns();
        (void)sig_page[0];
        dt = now_ns() - t0;
        if (write(fd, &dt, sizeof(dt)) != (ssize_t)sizeof(dt))
            _exit(2);
    }
    _exit(0);
}

/*
 * Rank 0: run child(b, fd, n) in a forked child, which writes n records of k samples
 * (int64 ns, k <= 2: one write each, under PIPE_BUF) into fd, and add record i's samples
 * to figs[0..k-1]. A child that is silent for IO_TIMEOUT_MS, writes short or exits non-zero
 * fails the figures (it is killed: never waited for while stuck); `who` names it. 0 or -1.
 */
static int child_figures(struct bench *b, int n, void (*child)(struct bench *, int, int), struct figure **figs,
                         int k, const char *who)
{
    int fd[2], res = 0, status = 0;
    pid_t pid;

    if (pipe(fd) != 0) {
        fprintf(stderr, "microbench: pipe: %s\n", strerror(errno));
        return -1;
    }
    pid = fork();
    if (pid == 0) {
        close(fd[0]);
        child(b, fd[1], n); /* exits */
    }
    close(fd[1]);
    if (pid < 0) {
        fprintf(stderr, "microbench: fork: %s\n", strerror(errno));
        close(fd[0]);
        return -1;
    }
    for (int i = 0; i < n && res == 0; i++) {
        int64_t       dt[2];
        struct pollfd p = {.fd = fd[0], .events = POLLIN};

        if (poll(&p, 1, IO_TIMEOUT_MS) != 1 || read(fd[0], dt, (size_t)k * sizeof(dt[0])) != (ssize_t)(k * sizeof(dt[0])))
            res = -1;
        for (int j = 0; j < k && res == 0; j++)
            fig_add(b, figs[j], i, dt[j]);
    }
    close(fd[0]);
    if (res != 0)
        kill(pid, SIGKILL);
    if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0 || res != 0) {
        fprintf(stderr, "microbench: %s failed (exit status %d)\n", who, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        return -1;
    }
    return 0;
}

/*
 * The signal part of a fault, without DSM: a forked child (its own handler, its own private
 * page) times a load of a PROT_NONE page whose SIGSEGV handler mprotects it readable, and
 * sends the samples back through a pipe. What every fault pays on this machine before any
 * message: on some VMs it is a large part of a fault.
 */
static int bench_signal(struct bench *b)
{
    struct figure *f;
    int res;

    if (b->rank != 0)
        return 0;
    f = fig_begin(b, "raw SIGSEGV, handler mprotects (no DSM)", b->warm + b->o.reps);
    res = child_figures(b, b->warm + b->o.reps, signal_child, &f, 1, "the signal figure's child");
    fig_end(f);
    return res;
}

/* The child of bench_direct: its connection to rank 1, the page's two views (the one that
 * faults, and a writable alias of the same memory the reply lands in) and the sample's tag. */
static int           direct_fd;
static volatile char *direct_view;
static char          *direct_alias;
static size_t        direct_len;
static volatile int  direct_tag;

/* Move len bytes over fd in the signal handler (poll, send, recv: async-signal-safe); a
 * failure or a 10 s silence ends the child (its parent reports it). */
static void direct_io(char *buf, size_t len, int sending)
{
    for (size_t done = 0; done < len;) {
        struct pollfd p = {.fd = direct_fd, .events = sending ? POLLOUT : POLLIN};
        ssize_t       n = sending ? send(direct_fd, buf + done, len - done, MSG_DONTWAIT | MSG_NOSIGNAL)
                                  : recv(direct_fd, buf + done, len - done, MSG_DONTWAIT);

        if (n > 0)
            done += (size_t)n;
        else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) ||
                 (poll(&p, 1, IO_TIMEOUT_MS) == 0))
            _exit(3);
    }
}

static void direct_open(int sig, siginfo_t *si, void *uc)
{
    char req[64] = { (char)direct_tag };

    (void)sig;
    (void)si;
    (void)uc;
    direct_io(req, sizeof(req), 1);
    direct_io(direct_alias, 4096, 0);
    if (mprotect((void *)direct_view, direct_len, PROT_READ) != 0)
        _exit(3);
}

/* The child of bench_direct: n pairs of samples into fd (exits 0, or non-zero on failure). */
static void direct_child(struct bench *b, int fd, int n)
{
    struct sigaction sa;
    int              mfd = memfd_create("microbench-direct", MFD_CLOEXEC);

    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = direct_open;
    sa.sa_flags = SA_SIGINFO;
    direct_fd = b->rawfd;
    direct_len = b->page;
    if (mfd < 0 || ftruncate(mfd, (off_t)direct_len) != 0 || sigaction(SIGSEGV, &sa, NULL) != 0)
        _exit(2);
    direct_view = mmap(NULL, direct_len, PROT_NONE, MAP_SHARED, mfd, 0);
    direct_alias = mmap(NULL, direct_len, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
    if (direct_view == MAP_FAILED || direct_alias == MAP_FAILED)
        _exit(2);
    for (int i = 0; i < n; i++) {
        int64_t t0 = now_ns(), dt[2];
        long    errors = b->errors;

        if (raw_exchange(b, NULL, 64, 4096, 2 * i) != 0) /* the alternating baseline */
            _exit(2);
        dt[1] = now_ns() - t0;
        if (b->errors != errors || mprotect((void *)direct_view, direct_len, PROT_NONE) != 0)
            _exit(4);
        direct_tag = 2 * i + 1;
        t0 = now_ns();
        if (direct_view[0] != (char)(2 * i + 1)) /* faults; the handler fetches the page */
            _exit(4);
        dt[0] = now_ns() - t0;
        if (write(fd, dt, sizeof(dt)) != (ssize_t)sizeof(dt))
            _exit(2);
    }
    _exit(0);
}

/*
 * A prototype of the fastest fault a direct path could give (rank 0 and rank 1; no DSM): a
 * forked child of rank 0 loads a PROT_NONE page whose SIGSEGV handler asks rank 1 for it
 * over the raw connection (64 bytes), receives its 4096 bytes into a writable alias of the
 * page's memory and mprotects the page readable. Two processes wake per fault, as in a raw
 * round trip, against four in a DSM remote fault (rank, its daemon, the home's daemon, its
 * daemon again). Each sample alternates with a raw exchange, as the read faults do. 0 or -1.
 */
static int bench_direct(struct bench *b)
{
    int n = b->warm + b->o.reps, res;
    struct figure *figs[2];

    if (b->rank == 1)
        return raw_series(b, NULL, 64, 4096, 2 * n);
    if (b->rank != 0)
        return 0;
    figs[0] = fig_begin(b, "direct fault floor (prototype: signal+raw tcp)", n);
    figs[1] = fig_begin(b, "  raw tcp 64->4096, alternating with the above", n);
    if (figs[0] != NULL && figs[1] != NULL)
        figs[0]->paired = (int)(figs[1] - b->figs);
    res = child_figures(b, n, direct_child, figs, 2, "the direct-fault prototype's child");
    fig_end(figs[0]);
    fig_end(figs[1]);
    return res;
}

/* ---------------------------------------------------------------- DSM figures */

/* Allocate a region of nnodes blocks of blk pages; NULL if refused (reported). */
static void *region(struct bench *b, size_t blk)
{
    void *p = dsm_coalloc((size_t)b->nnodes * blk * b->page);

    if (p == NULL)
        fprintf(stderr, "microbench: rank %d: dsm_coalloc of %zu pages failed\n", b->rank,
                (size_t)b->nnodes * blk);
    return p;
}

/*
 * A read-fault figure: pages of node `home`'s block, written first by rank `writer` (value
 * i+1) unless writer < 0, then read by rank 0, one word per page, each read timed. Before
 * each read, rank 0 also times one raw 64 -> 4096 exchange with rank 1, so the fault has a
 * baseline sampled under the same machine load (the figure's `paired` raw figure).
 */
static int bench_read(struct bench *b, const char *name, int home, int writer)
{
    size_t         blk = (size_t)(b->warm + b->o.reps);
    void          *base = region(b, blk);
    struct figure *f, *raw;
    int            res = 0;
    struct coldpage_warm warm = { 0 }; /* samples whose page was readable already */

    if (base == NULL)
        return -1;
    if (b->rank == writer)
        for (size_t i = 0; i < blk; i++)
            *page_at(b, base, blk, home, i) = i + 1;
    if (barrier(b) != 0)
        return -1;
    f = fig_begin(b, name, (int)blk);
    raw = fig_begin(b, "  raw tcp 64->4096, alternating with the above", (int)blk);
    if (f != NULL && raw != NULL)
        f->paired = (int)(raw - b->figs);
    for (size_t i = 0, stride = coldpage_stride(blk); b->rank == 0 && res == 0 && i < blk; i++) {
        size_t             k = i * stride % blk;
        volatile uint64_t *p = page_at(b, base, blk, home, k);
        int64_t            t0;
        uint64_t           v;

        res = raw_exchange(b, raw, 64, 4096, (int)i);
        if (coldpage_readable(b->probe, p) != 0)
            coldpage_warm_add(&warm, k);
        t0 = now_ns();
        v = *p;
        fig_add(b, f, (int)i, now_ns() - t0);
        if (v != (writer < 0 ? 0 : k + 1))
            b->errors++;
    }
    for (size_t i = 0; b->rank == 1 && res == 0 && i < blk; i++)
        res = raw_exchange(b, NULL, 64, 4096, (int)i);
    fig_end(f);
    fig_end(raw);
    if (warm.n > 0) {
        char who[120];

        snprintf(who, sizeof(who), "microbench: %s", name);
        coldpage_warm_report(&warm, who, blk, "load");
        res = -1;
    }
    if (barrier(b) != 0 || res != 0)
        return -1;
    dsm_cofree(base);
    return 0;
}

/*
 * Write faults invalidating `ncopies` copies: for each fresh page (home: rank 1's node),
 * ranks 1..ncopies read it, barrier, rank 0 writes it (timed), barrier. Afterwards the
 * readers re-read every page: a copy that was not invalidated would still show 0.
 */
static int bench_write(struct bench *b, int ncopies)
{
    size_t         blk = (size_t)(b->warm + b->o.reps);
    void          *base = region(b, blk);
    int            reader = b->rank >= 1 && b->rank <= ncopies;
    struct figure *f;
    char           name[80];
    struct coldpage_warm warm = { 0 }; /* samples whose page was readable already */

    if (base == NULL)
        return -1;
    snprintf(name, sizeof(name), "write fault, remote home, invalidating %d cop%s", ncopies,
             ncopies == 1 ? "y" : "ies");
    f = fig_begin(b, name, (int)blk);
    for (size_t i = 0, stride = coldpage_stride(blk); i < blk; i++) {
        volatile uint64_t *p = page_at(b, base, blk, b->node1, i * stride % blk);

        if (reader && *p != 0)
            b->errors++;
        if (barrier(b) != 0)
            return -1;
        if (b->rank == 0) {
            int64_t t0;

            if (coldpage_readable(b->probe, p) != 0) /* untimed: a write fault, not a hit */
                coldpage_warm_add(&warm, i * stride % blk);
            t0 = now_ns();
            *p = i * stride % blk + 1;
            fig_add(b, f, (int)i, now_ns() - t0);
        }
        if (barrier(b) != 0)
            return -1;
    }
    fig_end(f);
    for (size_t i = 0; reader && i < blk; i++)
        if (*page_at(b, base, blk, b->node1, i) != i + 1)
            b->errors++;
    if (barrier(b) != 0)
        return -1;
    if (warm.n > 0) {
        char who[120];

        snprintf(who, sizeof(who), "microbench: %s", name);
        coldpage_warm_report(&warm, who, blk, "store");
        return -1;
    }
    dsm_cofree(base);
    return 0;
}

/*
 * Wait until *turn == me. Under sequential and causal memory a plain (SC) read loop sees
 * the other rank's write without synchronisation; under release only an acquire brings
 * it, so there the loop polls under the lock. 0, or a DSM error / DSM_ETIMEDOUT (60 s).
 */
static int wait_turn(volatile int *turn, int me, int poll_locked, int64_t deadline)
{
    for (;;) {
        int rc = 0, seen;

        if (poll_locked && (rc = dsm_lock(LOCK_HANDOFF)) != 0)
            return rc;
        seen = __atomic_load_n(turn, __ATOMIC_SEQ_CST);
        if (poll_locked && (rc = dsm_unlock(LOCK_HANDOFF)) != 0)
            return rc;
        if (seen == me)
            return 0;
        if (now_ns() > deadline)
            return DSM_ETIMEDOUT;
        sched_yield(); /* a spinning waiter must not starve the holder and the daemons */
    }
}

/*
 * Lock hand-off between ranks 0 and 1: a rank waits for the shared turn variable to name
 * it, takes the lock (last held by the other rank, on another node), checks the turn under
 * the lock, passes it to the other rank and unlocks. Rank 0 times the interval between its
 * own passes (two hand-offs) and records half of it.
 */
static int bench_lock_handoff(struct bench *b)
{
    int            n = b->warm + b->o.reps, me = b->rank, rc = 0;
    int            poll_locked = strcmp(dsm_consistency(), "release") == 0;
    volatile int  *turn = ctl(b, CTL_TURN);
    struct figure *f = fig_begin(b, "lock hand-off, ranks 0 <-> 1", n);
    int64_t        last = 0, deadline;

    if (barrier(b) != 0)
        return -1;
    deadline = now_ns() + (int64_t)60 * 1000000000;
    for (int pass = 0; me <= 1 && pass < n && rc == 0; pass++) {
        int64_t t;

        rc = wait_turn(turn, me, poll_locked, deadline);
        if (rc == 0)
            rc = dsm_lock(LOCK_HANDOFF);
        if (rc != 0)
            break;
        t = now_ns();
        if (*turn != me)
            b->errors++;
        *turn = 1 - me;
        rc = dsm_unlock(LOCK_HANDOFF);
        if (pass > 0)
            fig_add(b, f, pass - 1, (t - last) / 2);
        last = t;
    }
    if (rc != 0)
        fprintf(stderr, "microbench: rank %d: lock hand-off: %s\n", me, dsm_strerror(rc));
    fig_end(f);
    if (barrier(b) != 0 || rc != 0)
        return -1;
    return 0;
}

/* Uncontended lock+unlock by rank 0 (others wait at the barrier). */
static int bench_lock_solo(struct bench *b)
{
    int            n = b->warm + b->o.reps, rc = 0;
    struct figure *f = fig_begin(b, "lock+unlock, uncontended", n);

    for (int i = 0; b->rank == 0 && i < n && rc == 0; i++) {
        int64_t t0 = now_ns();

        rc = dsm_lock(LOCK_SOLO);
        if (rc == 0)
            rc = dsm_unlock(LOCK_SOLO);
        fig_add(b, f, i, now_ns() - t0);
    }
    if (rc != 0)
        fprintf(stderr, "microbench: lock: %s\n", dsm_strerror(rc));
    fig_end(f);
    if (barrier(b) != 0 || rc != 0)
        return -1;
    return 0;
}

/* Barrier latency: every rank runs the barriers, rank 0 times each. */
static int bench_barrier(struct bench *b)
{
    int            n = b->warm + b->o.reps;
    char           name[80];
    struct figure *f;

    snprintf(name, sizeof(name), "barrier, %d ranks", b->nranks);
    f = fig_begin(b, name, n);
    for (int i = 0; i < n; i++) {
        int64_t t0 = now_ns();

        if (barrier(b) != 0)
            return -1;
        fig_add(b, f, i, now_ns() - t0);
    }
    fig_end(f);
    return 0;
}

/* ---------------------------------------------------------------- set-up and report */

/*
 * Learn the job's geometry: every rank publishes its node (DSM_NODE, 0 when absent) in the
 * control block; afterwards nnodes = highest node + 1. 0 or -1.
 */
static int learn_nodes(struct bench *b)
{
    const char *s = getenv("DSM_NODE");
    int        *nodes = ctl(b, CTL_NODES);

    nodes[b->rank] = s ? atoi(s) : 0;
    if (barrier(b) != 0)
        return -1;
    b->nnodes = 1;
    for (int r = 0; r < b->nranks; r++)
        if (nodes[r] + 1 > b->nnodes)
            b->nnodes = nodes[r] + 1;
    b->node0 = nodes[0];
    b->node1 = nodes[1];
    return 0;
}

/* A node other than ranks 0's and 1's, or -1 if there is none. */
static int third_node(struct bench *b)
{
    for (int k = 0; k < b->nnodes; k++)
        if (k != b->node0 && k != b->node1)
            return k;
    return -1;
}

/* Run every figure in order; 0 or -1 (all ranks follow the same sequence). */
static int run_all(struct bench *b)
{
    int h3 = third_node(b);

    if (raw_setup(b) != 0 || bench_raw(b, "start") != 0 || bench_unix_hop(b) != 0 ||
        bench_signal(b) != 0 || bench_direct(b) != 0 || barrier(b) != 0)
        return -1;
    if (bench_read(b, "read fault, remote home, home-clean", b->node1, -1) != 0 ||
        bench_read(b, "read fault, remote home, owner-dirty", b->node1, 1) != 0)
        return -1;
    if (h3 >= 0 && bench_read(b, "read fault, 3-hop (home 3rd node, owner rank 1)", h3, 1) != 0)
        return -1;
    if (bench_read(b, "read fault, local home, clean (reference)", b->node0, -1) != 0)
        return -1;
    for (int n = 0; n < b->nranks; n++)
        if (bench_write(b, n) != 0)
            return -1;
    if (bench_lock_handoff(b) != 0 || bench_lock_solo(b) != 0 || bench_barrier(b) != 0)
        return -1;
    return bench_raw(b, "end");
}

/* The baseline: the median of all raw 64 -> 4096 samples (start and end), or 0. */
static double raw_median(const struct bench *b)
{
    struct figure pool = {.n = 0};
    int           total = 0;

    for (int i = 0; i < b->nfigs; i++)
        if (strncmp(b->figs[i].name, "raw tcp 64->4096", 16) == 0)
            total += b->figs[i].n;
    pool.us = total ? malloc((size_t)total * sizeof(double)) : NULL;
    if (pool.us == NULL)
        return 0.0;
    for (int i = 0; i < b->nfigs; i++)
        if (strncmp(b->figs[i].name, "raw tcp 64->4096", 16) == 0) {
            memcpy(pool.us + pool.n, b->figs[i].us, (size_t)b->figs[i].n * sizeof(double));
            pool.n += b->figs[i].n;
        }
    fig_end(&pool);
    free(pool.us);
    return pool.median;
}

/* Print the table and the ratio lines (rank 0). */
static void print_report(const struct bench *b)
{
    double raw = raw_median(b);

    printf("microbench: ranks %d, nodes %d (rank 0 on node %d, rank 1 on node %d), reps %d "
           "(+%d warm-up), consistency %s\n",
           b->nranks, b->nnodes, b->node0, b->node1, b->o.reps, b->warm, dsm_consistency());
    if (b->node0 == b->node1)
        printf("microbench: note: ranks 0 and 1 share a node, so 'remote' figures are local\n");
    printf("%-50s %7s %11s %11s %11s %9s\n", "figure", "samples", "median_us", "mean_us",
           "min_us", "x_raw");
    for (int i = 0; i < b->nfigs; i++) {
        const struct figure *f = &b->figs[i];

        printf("%-50s %7d %11.2f %11.2f %11.2f %9.2f\n", f->name, f->n, f->median, f->mean,
               f->min, raw > 0 ? f->median / raw : 0.0);
    }
    printf("microbench: baseline = raw tcp 64->4096 round trip, start and end samples pooled: "
           "median %.2f us\n", raw);
    for (int i = 0; i < b->nfigs; i++) {
        const struct figure *f = &b->figs[i];

        if (strncmp(f->name, "raw", 3) == 0 || strncmp(f->name, "  raw", 5) == 0 || raw <= 0)
            continue;
        printf("microbench: ratio %-50s = %6.2f x raw tcp 64->4096 (%.2f us / %.2f us)\n",
               f->name, f->median / raw, f->median, raw);
        if (f->paired >= 0 && b->figs[f->paired].median > 0)
            printf("microbench: ratio %-50s = %6.2f x raw tcp 64->4096 sampled alternately "
                   "(%.2f us / %.2f us)\n", f->name, f->median / b->figs[f->paired].median,
                   f->median, b->figs[f->paired].median);
    }
}

/* Write the figures as JSON to path (rank 0); 0 or -1 (reported). */
static int write_json(const struct bench *b, const char *path)
{
    FILE  *fp = fopen(path, "w");
    double raw = raw_median(b);

    if (fp == NULL) {
        fprintf(stderr, "microbench: %s: %s\n", path, strerror(errno));
        return -1;
    }
    fprintf(fp, "{\"ranks\":%d,\"nodes\":%d,\"reps\":%d,\"warmup\":%d,\"consistency\":\"%s\","
                "\"raw_baseline_us\":%.3f,\"figures\":[",
            b->nranks, b->nnodes, b->o.reps, b->warm, dsm_consistency(), raw);
    for (int i = 0; i < b->nfigs; i++) {
        const struct figure *f = &b->figs[i];

        double paired = f->paired >= 0 ? b->figs[f->paired].median : 0.0;

        fprintf(fp, "%s{\"name\":\"%s\",\"samples\":%d,\"median_us\":%.3f,\"mean_us\":%.3f,"
                    "\"min_us\":%.3f,\"ratio_to_raw\":%.4f,\"ratio_to_alternating_raw\":%.4f}",
                i ? "," : "", f->name + strspn(f->name, " "), f->n, f->median, f->mean, f->min,
                raw > 0 ? f->median / raw : 0.0, paired > 0 ? f->median / paired : 0.0);
    }
    fprintf(fp, "]}\n");
    if (fclose(fp) != 0) {
        fprintf(stderr, "microbench: %s: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* Gather every rank's error count; rank 0 returns the total (after a barrier), others 0. */
static long gather_errors(struct bench *b)
{
    int  *errs = ctl(b, CTL_ERRORS);
    long  total = 0;

    errs[b->rank] = (int)b->errors;
    if (barrier(b) != 0)
        return -1;
    for (int r = 0; r < b->nranks; r++)
        total += errs[r];
    return total;
}

/* Everything after dsm_init; returns the exit status. */
static int bench_main(struct bench *b)
{
    long errors;
    int  res;

    if (b->nranks < 2) {
        fprintf(stderr, "microbench: needs at least 2 ranks (dsmrun -n 2 -- microbench)\n");
        return 2;
    }
    b->rawfd = -1;
    if (b->rank == 0 && pipe(b->probe) != 0) {
        fprintf(stderr, "microbench: pipe: %s\n", strerror(errno));
        return 1;
    }
    b->shared = dsm_coalloc(CTL_NSLOTS * b->page);
    if (b->shared == NULL || (size_t)b->nranks * sizeof(int) > b->page)
        return 1;
    if (learn_nodes(b) != 0)
        return 1;
    res = run_all(b);
    if (b->rawfd >= 0)
        close(b->rawfd);
    if (b->rank == 0) {
        close(b->probe[0]);
        close(b->probe[1]);
    }
    errors = gather_errors(b);
    if (res != 0 || errors != 0) {
        if (b->rank == 0)
            fprintf(stderr, "microbench: FAILED (%s, %ld wrong values)\n",
                    res ? "a figure failed" : "figures ran", errors);
        return 1;
    }
    if (b->rank != 0)
        return 0;
    print_report(b);
    printf("microbench: all values read back verified OK\n");
    fflush(stdout);
    if (b->o.json && write_json(b, b->o.json) != 0)
        return 1;
    return 0;
}

int main(int argc, char **argv)
{
    static struct bench b;
    int                 rc, status;

    rc = dsm_init(&argc, &argv);
    if (rc != 0) {
        fprintf(stderr, "microbench: dsm_init: %s\n", dsm_strerror(rc));
        return 1;
    }
    b.rank = dsm_rank();
    b.nranks = dsm_nranks();
    b.page = dsm_page_size();
    status = parse_opts(argc, argv, &b.o) == 0 ? 0 : 2;
    if (status == 0) {
        b.warm = b.o.reps / 10 + 2;
        status = bench_main(&b);
    }
    for (int i = 0; i < b.nfigs; i++)
        free(b.figs[i].us);
    rc = dsm_finalize();
    if (rc != 0) {
        fprintf(stderr, "microbench: dsm_finalize: %s\n", dsm_strerror(rc));
        status = 1;
    }
    return status;
}

/*
 * dsm-netdelay - a fixed-delay line for the test hosts of scripts/testhosts, for kernels
 * without sch_netem.
 *
 *   dsm-netdelay --queue K --delay US [--pidfile FILE]
 *
 * What it is: a small daemon, run inside one test host's network namespace, that binds
 * netfilter queue K of that namespace over a raw nfnetlink socket (NETLINK_NETFILTER,
 * linux/netfilter/nfnetlink_queue.h; no library) and answers every packet the kernel queues
 * there with NF_ACCEPT once US microseconds have passed since it received the packet. With
 * an iptables rule `-t mangle -A POSTROUTING -o eth0 -j NFQUEUE --queue-num K` (testhosts
 * adds it after this daemon is ready, which it shows by writing FILE), everything the host
 * sends on eth0 waits US before it leaves: host to host is US one way, 2*US a round trip.
 *
 * How: packets arrive in the order of their ids and all wait the same US, so their release
 * times are in order too: a ring of (id, release time) and one batch verdict
 * (NFQNL_MSG_VERDICT_BATCH: "accept every id <= N") per wake-up, which also releases a
 * packet whose notification the kernel could not deliver (socket buffer full; counted and
 * reported). The wait is ppoll with an absolute deadline turned into a relative timeout,
 * with the timer slack set to 1 ns; packets are copied as metadata only (no payload) and GSO
 * packets are queued whole, so a 64 KiB TCP burst is one packet here, as in netem.
 *
 * Limits, as measured and as designed (see docs/BENCHMARKS.md):
 *   - the delay is US plus this daemon's own latency: the kernel's queueing to user space,
 *     a wake-up, the verdict (a few to some tens of µs on a loaded 2-vCPU VM); never less
 *     than US. No jitter, loss, reordering or rate model: only a constant delay.
 *   - IPv4 only (the rule testhosts adds is an iptables one); ARP is not delayed.
 *   - it fails closed, never open: NFQUEUE without --queue-bypass drops what it cannot hand
 *     to a listener, so if this daemon dies the host's link goes dead (loudly: every ssh and
 *     job across it fails) instead of silently running without delay. Any netlink error is
 *     printed and ends the daemon with status 1. Kernel-side drops (queue full, a
 *     notification lost) are counted in /proc/net/netfilter/nfnetlink_queue (queue_dropped,
 *     user_dropped) and reported here at exit.
 *   - one thread; at most RING_CAP packets waiting (the kernel queue's maxlen is set to the
 *     same, beyond which the kernel drops and counts).
 *
 * Signals: SIGTERM or SIGINT release every waiting packet at once, unbind the queue, print
 * the counters on stderr and exit 0; SIGUSR1 prints the counters and goes on.
 * Exit status: 0 after a signal, 1 on any error (message on stderr), 2 for bad arguments.
 */
#define _GNU_SOURCE /* ppoll */
#include <arpa/inet.h> /* before the kernel headers: glibc's in.h then wins over linux/in.h */
#include <errno.h>
#include <getopt.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_queue.h>
#include <linux/netlink.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define RING_CAP  65536u        /* packets waiting at most (a power of two) */
#define RCVBUF    (8 << 20)     /* socket receive buffer asked for */
#define MSG_BUF   (64 << 10)    /* one receive */
#define MAX_DELAY 10000000L     /* 10 s */

struct pkt {
    uint32_t id;
    int64_t  due_ns; /* release time, CLOCK_MONOTONIC */
};

struct line {
    int         fd;
    uint16_t    queue;
    int64_t     delay_ns;
    uint32_t    seq;         /* netlink sequence numbers of our requests */
    struct pkt *ring;
    uint32_t    head, tail;  /* ring[head..tail) wait, indices mod RING_CAP */
    /* counters */
    uint64_t    passed, enobufs, batches;
    int64_t     late_max_ns, late_sum_ns; /* release later than due, over `passed` */
    uint32_t    max_waiting;
};

static volatile sig_atomic_t g_stop, g_report;

static void on_signal(int sig)
{
    if (sig == SIGUSR1)
        g_report = 1;
    else
        g_stop = 1;
}

static int64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts); /* cannot fail for CLOCK_MONOTONIC */
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void report(const struct line *l, const char *when)
{
    fprintf(stderr,
            "dsm-netdelay: queue %u %s: passed %llu packets, delay %lld us, late by mean %.1f "
            "max %.1f us, %llu verdict batches, most waiting %u, lost notifications %llu\n",
            l->queue, when, (unsigned long long)l->passed, (long long)(l->delay_ns / 1000),
            l->passed ? (double)l->late_sum_ns / (double)l->passed / 1000.0 : 0.0,
            (double)l->late_max_ns / 1000.0, (unsigned long long)l->batches, l->max_waiting,
            (unsigned long long)l->enobufs);
    fflush(stderr);
}

/* -- netlink messages ------------------------------------------------------------------ */

/* Start a nfnetlink queue message of `type` in buf (zeroed, at least 256 bytes). */
static struct nlmsghdr *msg_start(struct line *l, char *buf, uint16_t type, uint16_t flags)
{
    struct nlmsghdr *nh = (struct nlmsghdr *)buf;
    struct nfgenmsg *g = (struct nfgenmsg *)NLMSG_DATA(nh);

    nh->nlmsg_len = NLMSG_LENGTH(sizeof(*g));
    nh->nlmsg_type = (uint16_t)((NFNL_SUBSYS_QUEUE << 8) | type);
    nh->nlmsg_flags = (uint16_t)(NLM_F_REQUEST | flags);
    nh->nlmsg_seq = ++l->seq;
    g->nfgen_family = AF_UNSPEC;
    g->version = NFNETLINK_V0;
    g->res_id = htons(l->queue);
    return nh;
}

/* Append attribute `type` with `len` bytes of `data` to nh. */
static void msg_attr(struct nlmsghdr *nh, uint16_t type, const void *data, size_t len)
{
    struct nlattr *a = (struct nlattr *)((char *)nh + NLMSG_ALIGN(nh->nlmsg_len));

    a->nla_type = type;
    a->nla_len = (uint16_t)(NLA_HDRLEN + len);
    memcpy((char *)a + NLA_HDRLEN, data, len);
    nh->nlmsg_len = NLMSG_ALIGN(nh->nlmsg_len) + NLA_ALIGN(a->nla_len);
}

static int send_msg(struct line *l, struct nlmsghdr *nh)
{
    struct sockaddr_nl to = {.nl_family = AF_NETLINK};
    ssize_t            n;

    do
        n = sendto(l->fd, nh, nh->nlmsg_len, 0, (struct sockaddr *)&to, sizeof(to));
    while (n < 0 && errno == EINTR);
    if (n != (ssize_t)nh->nlmsg_len) {
        fprintf(stderr, "dsm-netdelay: queue %u: netlink send: %s\n", l->queue,
                n < 0 ? strerror(errno) : "short write");
        return -1;
    }
    return 0;
}

/* Send a configuration request and wait for its acknowledgement. 0 or -1 (reported). */
static int config(struct line *l, struct nlmsghdr *nh, const char *what)
{
    static char buf[MSG_BUF];
    uint32_t    seq = nh->nlmsg_seq;

    if (send_msg(l, nh) != 0)
        return -1;
    for (;;) {
        ssize_t n = recv(l->fd, buf, sizeof(buf), 0);

        if (n < 0) {
            if (errno == EINTR || errno == ENOBUFS)
                continue;
            fprintf(stderr, "dsm-netdelay: queue %u: %s: netlink recv: %s\n", l->queue, what,
                    strerror(errno));
            return -1;
        }
        for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (unsigned)n);
             h = NLMSG_NEXT(h, n)) {
            if (h->nlmsg_type != NLMSG_ERROR || h->nlmsg_seq != seq)
                continue; /* no packets before the bind is acknowledged */
            int err = ((struct nlmsgerr *)NLMSG_DATA(h))->error;

            if (err == 0)
                return 0;
            fprintf(stderr, "dsm-netdelay: queue %u: %s: %s%s\n", l->queue, what,
                    strerror(-err),
                    err == -EBUSY ? " (another process has bound this queue)" : "");
            return -1;
        }
    }
}

/* Bind the queue: metadata only, GSO whole, maxlen RING_CAP. 0 or -1 (reported). */
static int bind_queue(struct line *l)
{
    char                       buf[256];
    struct nfqnl_msg_config_cmd cmd = {.command = NFQNL_CFG_CMD_BIND, .pf = htons(AF_INET)};
    struct nfqnl_msg_config_params params = {.copy_range = htonl(0),
                                             .copy_mode = NFQNL_COPY_META};
    uint32_t maxlen = htonl(RING_CAP), flags = htonl(NFQA_CFG_F_GSO);
    struct nlmsghdr *nh;

    memset(buf, 0, sizeof(buf));
    nh = msg_start(l, buf, NFQNL_MSG_CONFIG, NLM_F_ACK);
    msg_attr(nh, NFQA_CFG_CMD, &cmd, sizeof(cmd));
    if (config(l, nh, "bind") != 0)
        return -1;
    memset(buf, 0, sizeof(buf));
    nh = msg_start(l, buf, NFQNL_MSG_CONFIG, NLM_F_ACK);
    msg_attr(nh, NFQA_CFG_PARAMS, &params, sizeof(params));
    msg_attr(nh, NFQA_CFG_QUEUE_MAXLEN, &maxlen, sizeof(maxlen));
    msg_attr(nh, NFQA_CFG_FLAGS, &flags, sizeof(flags));
    msg_attr(nh, NFQA_CFG_MASK, &flags, sizeof(flags));
    return config(l, nh, "configure");
}

/* Accept every packet with an id <= id (one message, no acknowledgement). 0 or -1. */
static int accept_upto(struct line *l, uint32_t id)
{
    char                     buf[256];
    struct nfqnl_msg_verdict_hdr v = {.verdict = htonl(NF_ACCEPT), .id = htonl(id)};
    struct nlmsghdr         *nh;

    memset(buf, 0, sizeof(buf));
    nh = msg_start(l, buf, NFQNL_MSG_VERDICT_BATCH, 0);
    msg_attr(nh, NFQA_VERDICT_HDR, &v, sizeof(v));
    l->batches++;
    return send_msg(l, nh);
}

/* -- the delay line -------------------------------------------------------------------- */

/* Release every waiting packet due by `now` (all of them when `all`). 0 or -1. */
static int release_due(struct line *l, int64_t now, int all)
{
    uint32_t last = 0;
    int      any = 0;

    while (l->head != l->tail) {
        struct pkt *p = &l->ring[l->head % RING_CAP];

        if (!all && p->due_ns > now)
            break;
        if (now > p->due_ns) {
            l->late_sum_ns += now - p->due_ns;
            if (now - p->due_ns > l->late_max_ns)
                l->late_max_ns = now - p->due_ns;
        }
        last = p->id;
        any = 1;
        l->passed++;
        l->head++;
    }
    return any ? accept_upto(l, last) : 0;
}

/* Handle one received datagram of n bytes: queue its packets. 0 or -1 (reported). */
static int take(struct line *l, char *buf, ssize_t n, int64_t now)
{
    for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (unsigned)n);
         h = NLMSG_NEXT(h, n)) {
        if (h->nlmsg_type == NLMSG_ERROR) {
            int err = ((struct nlmsgerr *)NLMSG_DATA(h))->error;

            if (err == 0)
                continue;
            fprintf(stderr, "dsm-netdelay: queue %u: the kernel refused a verdict: %s\n",
                    l->queue, strerror(-err));
            return -1;
        }
        if (h->nlmsg_type != ((NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET))
            continue;
        size_t          off = NLMSG_ALIGN(sizeof(struct nfgenmsg));
        int             found = 0;
        struct nlattr  *a;

        while (off + NLA_HDRLEN <= NLMSG_PAYLOAD(h, 0)) {
            a = (struct nlattr *)((char *)NLMSG_DATA(h) + off);
            if (a->nla_len < NLA_HDRLEN || off + a->nla_len > NLMSG_PAYLOAD(h, 0))
                break;
            if ((a->nla_type & NLA_TYPE_MASK) == NFQA_PACKET_HDR &&
                a->nla_len >= NLA_HDRLEN + sizeof(struct nfqnl_msg_packet_hdr)) {
                struct nfqnl_msg_packet_hdr ph;

                memcpy(&ph, (char *)a + NLA_HDRLEN, sizeof(ph));
                if (l->tail - l->head >= RING_CAP) {
                    /* cannot happen: the kernel holds at most RING_CAP for us */
                    fprintf(stderr, "dsm-netdelay: queue %u: more than %u packets waiting\n",
                            l->queue, RING_CAP);
                    return -1;
                }
                l->ring[l->tail % RING_CAP] =
                    (struct pkt){.id = ntohl(ph.packet_id), .due_ns = now + l->delay_ns};
                l->tail++;
                if (l->tail - l->head > l->max_waiting)
                    l->max_waiting = l->tail - l->head;
                found = 1;
                break;
            }
            off += NLA_ALIGN(a->nla_len);
        }
        if (!found) {
            fprintf(stderr, "dsm-netdelay: queue %u: a packet message without its header\n",
                    l->queue);
            return -1;
        }
    }
    return 0;
}

/* Receive everything there is now (non-blocking). 0 or -1 (reported). */
static int drain(struct line *l)
{
    static char buf[MSG_BUF];

    for (;;) {
        ssize_t n = recv(l->fd, buf, sizeof(buf), MSG_DONTWAIT);

        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                return 0;
            if (errno == ENOBUFS) {
                /* a notification was lost; its packet goes with the next batch verdict */
                l->enobufs++;
                continue;
            }
            fprintf(stderr, "dsm-netdelay: queue %u: netlink recv: %s\n", l->queue,
                    strerror(errno));
            return -1;
        }
        if (take(l, buf, n, now_ns()) != 0)
            return -1;
    }
}

static int run(struct line *l, const sigset_t *waitmask)
{
    struct pollfd pfd = {.fd = l->fd, .events = POLLIN};

    while (!g_stop) {
        int64_t         now = now_ns();
        struct timespec ts, *tsp = NULL;
        int             rc;

        if (release_due(l, now, 0) != 0)
            return -1;
        if (g_report) {
            g_report = 0;
            report(l, "now");
        }
        if (l->head != l->tail) {
            int64_t left = l->ring[l->head % RING_CAP].due_ns - now;

            ts.tv_sec = left / 1000000000;
            ts.tv_nsec = left % 1000000000;
            tsp = &ts;
        }
        rc = ppoll(&pfd, 1, tsp, waitmask);
        if (rc < 0 && errno != EINTR) {
            fprintf(stderr, "dsm-netdelay: queue %u: ppoll: %s\n", l->queue, strerror(errno));
            return -1;
        }
        if (rc > 0 && (pfd.revents & (POLLERR | POLLNVAL))) {
            /* POLLERR on a netlink socket is a pending ENOBUFS: drain reads and counts it */
            if (pfd.revents & POLLNVAL) {
                fprintf(stderr, "dsm-netdelay: queue %u: socket closed\n", l->queue);
                return -1;
            }
        }
        if (rc > 0 && drain(l) != 0)
            return -1;
    }
    return release_due(l, now_ns(), 1);
}

static void usage(void)
{
    fprintf(stderr, "usage: dsm-netdelay --queue K --delay US [--pidfile FILE]\n"
                    "  (0 <= K <= 65535, 1 <= US <= %ld)\n", MAX_DELAY);
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"queue", required_argument, NULL, 'q'},
        {"delay", required_argument, NULL, 'd'},
        {"pidfile", required_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct line        l = {.fd = -1};
    struct sockaddr_nl me = {.nl_family = AF_NETLINK};
    const char        *pidfile = NULL;
    long               queue = -1, delay = -1;
    int                c, one = 1, rcvbuf = RCVBUF, status = 1;
    sigset_t           block, waitmask;
    struct sigaction   sa;

    while ((c = getopt_long(argc, argv, "q:d:p:h", longopts, NULL)) != -1) {
        char *end;

        if (c == 'q' || c == 'd') {
            long v = strtol(optarg, &end, 10);

            if (*optarg == '\0' || *end != '\0') {
                usage();
                return 2;
            }
            *(c == 'q' ? &queue : &delay) = v;
        } else if (c == 'p') {
            pidfile = optarg;
        } else {
            usage();
            return c == 'h' ? 0 : 2;
        }
    }
    if (optind != argc || queue < 0 || queue > 65535 || delay < 1 || delay > MAX_DELAY) {
        usage();
        return 2;
    }
    l.queue = (uint16_t)queue;
    l.delay_ns = delay * 1000;
    l.ring = calloc(RING_CAP, sizeof(*l.ring));
    if (l.ring == NULL) {
        fprintf(stderr, "dsm-netdelay: out of memory\n");
        return 1;
    }

    /* Signals are blocked except inside ppoll, so none is lost between check and wait. */
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGUSR1);
    if (sigprocmask(SIG_BLOCK, &block, &waitmask) != 0 || sigaction(SIGTERM, &sa, NULL) != 0 ||
        sigaction(SIGINT, &sa, NULL) != 0 || sigaction(SIGUSR1, &sa, NULL) != 0) {
        fprintf(stderr, "dsm-netdelay: signals: %s\n", strerror(errno));
        goto out;
    }
    sigdelset(&waitmask, SIGTERM);
    sigdelset(&waitmask, SIGINT);
    sigdelset(&waitmask, SIGUSR1);
    /* Wake at the deadline, not up to 50 µs after it (the default slack). */
    if (prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL) != 0) {
        fprintf(stderr, "dsm-netdelay: PR_SET_TIMERSLACK: %s\n", strerror(errno));
        goto out;
    }

    l.fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
    if (l.fd < 0) {
        fprintf(stderr, "dsm-netdelay: netlink socket: %s\n", strerror(errno));
        goto out;
    }
    /* SO_RCVBUFFORCE passes the rmem_max cap (root); fall back to the capped SO_RCVBUF. */
    if (setsockopt(l.fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf)) != 0 &&
        setsockopt(l.fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)) != 0) {
        fprintf(stderr, "dsm-netdelay: SO_RCVBUF: %s\n", strerror(errno));
        goto out;
    }
    /* Extended acks would only make error messages longer; ask for capped ones. */
    if (setsockopt(l.fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one)) != 0) {
        fprintf(stderr, "dsm-netdelay: NETLINK_CAP_ACK: %s\n", strerror(errno));
        goto out;
    }
    if (bind(l.fd, (struct sockaddr *)&me, sizeof(me)) != 0) {
        fprintf(stderr, "dsm-netdelay: netlink bind: %s\n", strerror(errno));
        goto out;
    }
    if (bind_queue(&l) != 0)
        goto out;

    if (pidfile != NULL) {
        /* Written only now: its presence tells testhosts the queue is bound. */
        FILE *f = fopen(pidfile, "w");

        if (f == NULL || fprintf(f, "%ld\n", (long)getpid()) < 0 || fclose(f) != 0) {
            fprintf(stderr, "dsm-netdelay: pidfile %s: %s\n", pidfile, strerror(errno));
            goto out;
        }
    }
    fprintf(stderr, "dsm-netdelay: queue %u bound, delay %ld us\n", l.queue, delay);
    fflush(stderr);

    if (run(&l, &waitmask) == 0) {
        report(&l, "exiting");
        status = 0;
    } else {
        report(&l, "failed");
    }
out:
    if (l.fd >= 0 && close(l.fd) != 0 && status == 0) { /* closing unbinds the queue */
        fprintf(stderr, "dsm-netdelay: close: %s\n", strerror(errno));
        status = 1;
    }
    if (pidfile != NULL && unlink(pidfile) != 0 && errno != ENOENT) {
        fprintf(stderr, "dsm-netdelay: remove %s: %s\n", pidfile, strerror(errno));
        status = 1;
    }
    free(l.ring);
    return status;
}

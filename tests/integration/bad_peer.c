/*
 * bad_peer.c - a daemon fed garbage by a fake peer drops that connection and keeps serving.
 *
 * Run with `dsmrun -n 2 --ranks-per-node 1` (two nodes). Rank 0 reads DSM_PEER_ADDRS (the
 * daemons' transport addresses, "host:port,host:port" by node id) and opens raw TCP
 * connections to node 1's daemon, one per attack:
 *   1. garbage   4 KiB of pseudo-random bytes;
 *   2. huge      a frame header claiming a 0xffffffff-byte (4 GiB - 1) message, sent as
 *                the first bytes, followed by some payload;
 *   3. hello+huge a hello-shaped record (right magic and version, a node id no peer may
 *                use, made-up job geometry) followed by that frame header;
 *   4. mid-hello the first half of a hello, then close.
 * For 1-3 the daemon must close the connection (rank 0 waits up to 15 s for EOF or a reset,
 * and fails if the connection stays open or the daemon sends anything). After each attack
 * the job must carry on: a barrier, and a page homed on node 1 is written by rank 0, read
 * and rewritten by rank 1, and read back by rank 0, with every value checked. Exit 1 on
 * any failure.
 *
 * `bad_peer flood HOLD RECONNECTS`: rank 0 instead holds HOLD connections to node 1's daemon
 * open without a word (more than its file limit, when dsmrun runs under prlimit), then
 * connects and hangs up RECONNECTS times; the job carries on after each flood. The test
 * (flood.sh) checks that the daemon's log stayed short (rate limit, bounded unproven
 * connections) and the job verified its data.
 *
 * The stream layout is that of daemon/transport/tcp_wire.h (little-endian) as it was in
 * version 1: hello of 48 bytes {u32 magic "DSMT", u16 version 1, ...}, frame header {u32 len,
 * u32 flags, u64 page}. Version 2 (64-byte hello with a nonce, then a proof of the job
 * secret) refuses such a hello as well; the unit tests (test_transport) cover the proof.
 * It is restated here on purpose: the test speaks as an outsider.
 */
#define _GNU_SOURCE
#include <dsm/dsm.h>

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define WIRE_MAGIC    0x544d5344u /* "DSMT" read as a little-endian u32 */
#define WIRE_VERSION  1u
#define HELLO_LEN     48
#define HDR_LEN       16
#define DROP_WAIT_MS  15000
#define NATTACKS      4

/* Store little-endian integers into a byte buffer. */
static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* Node `node`'s "host:port" from DSM_PEER_ADDRS into host/port; 0 or -1 (reported). */
static int peer_addr(int node, char *host, size_t hlen, char *port, size_t plen)
{
    const char *s = getenv("DSM_PEER_ADDRS");
    const char *start, *end, *colon;

    if (s == NULL) {
        fprintf(stderr, "bad_peer: DSM_PEER_ADDRS is not set (run under dsmrun)\n");
        return -1;
    }
    start = s;
    for (int i = 0; i < node && start != NULL; i++) {
        start = strchr(start, ',');
        start = start ? start + 1 : NULL;
    }
    end = start ? strchrnul(start, ',') : NULL;
    colon = start ? memrchr(start, ':', (size_t)(end - start)) : NULL;
    if (colon == NULL || (size_t)(colon - start) >= hlen || (size_t)(end - colon - 1) >= plen ||
        end == colon + 1) {
        fprintf(stderr, "bad_peer: no address of node %d in DSM_PEER_ADDRS=%s\n", node, s);
        return -1;
    }
    memcpy(host, start, (size_t)(colon - start));
    host[colon - start] = '\0';
    memcpy(port, colon + 1, (size_t)(end - colon - 1));
    port[end - colon - 1] = '\0';
    return 0;
}

/* A blocking TCP connection to host:port; fd or -1 (reported). */
static int connect_to(const char *host, const char *port)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai;
    int             fd = -1, rc = getaddrinfo(host, port, &hints, &ai);

    if (rc != 0) {
        fprintf(stderr, "bad_peer: %s:%s: %s\n", host, port, gai_strerror(rc));
        return -1;
    }
    fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        close(fd);
        fd = -1;
    }
    if (fd < 0)
        fprintf(stderr, "bad_peer: connect to %s:%s: %s\n", host, port, strerror(errno));
    freeaddrinfo(ai);
    return fd;
}

/* Send all of buf; 0, or -1 if the daemon already closed (that is not an error here). */
static int send_all(int fd, const uint8_t *buf, size_t len)
{
    size_t put = 0;

    while (put < len) {
        ssize_t n = send(fd, buf + put, len - put, MSG_NOSIGNAL);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        put += (size_t)n;
    }
    return 0;
}

/*
 * Wait until the daemon drops fd: EOF or a reset within DROP_WAIT_MS. Returns 0 when
 * dropped, -1 (reported) when the connection stayed open or the daemon sent data.
 */
static int wait_dropped(int fd, const char *what)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    uint8_t       buf[256];
    ssize_t       n;
    int           rc;

    do {
        rc = poll(&p, 1, DROP_WAIT_MS);
    } while (rc < 0 && errno == EINTR);
    if (rc == 0) {
        fprintf(stderr, "bad_peer: %s: node 1 kept the connection open for %d ms\n", what,
                DROP_WAIT_MS);
        return -1;
    }
    n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
    if (n == 0 || (n < 0 && (errno == ECONNRESET || errno == EPIPE)))
        return 0;
    if (n > 0)
        fprintf(stderr, "bad_peer: %s: node 1 answered with %zd bytes instead of dropping us\n",
                what, n);
    else
        fprintf(stderr, "bad_peer: %s: recv: %s\n", what, strerror(errno));
    return -1;
}

/* A hello-shaped record that no daemon of this job can accept (node id = 1000). */
static void fake_hello(uint8_t *h)
{
    memset(h, 0, HELLO_LEN);
    put32(h + 0, WIRE_MAGIC);
    h[4] = (uint8_t)WIRE_VERSION;
    put32(h + 8, 1000);               /* node */
    put32(h + 12, 1001);              /* nnodes */
    put64(h + 16, 0x0badc0ffee0ddf00ULL); /* job id */
    put64(h + 24, 4096);              /* page size */
    put64(h + 32, 1);                 /* npages */
    put64(h + 40, 1u << 20);          /* max_msg */
}

/* A frame header claiming a 0xffffffff-byte message with no frame. */
static void huge_header(uint8_t *h)
{
    put32(h + 0, 0xffffffffu);
    put32(h + 4, 0);
    put64(h + 8, UINT64_MAX);
}

/* Build attack `k`'s bytes into buf; returns its length. Sets *name. */
static size_t build_attack(int k, uint8_t *buf, size_t cap, const char **name)
{
    uint64_t x = 0x853c49e6748fea9bULL;

    memset(buf, 0x5a, cap);
    switch (k) {
    case 0:
        *name = "garbage";
        for (size_t i = 0; i < 4096; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            buf[i] = (uint8_t)x;
        }
        return 4096;
    case 1:
        *name = "4 GiB frame header";
        huge_header(buf);
        return 4096;
    case 2:
        *name = "hello + 4 GiB frame header";
        fake_hello(buf);
        huge_header(buf + HELLO_LEN);
        return HELLO_LEN + HDR_LEN + 1024;
    default:
        *name = "close mid-hello";
        fake_hello(buf);
        return HELLO_LEN / 2;
    }
}

/* Rank 0: run attack k against node 1's daemon. 0 on the expected outcome, -1 otherwise. */
static int attack(int k)
{
    static uint8_t buf[8192];
    char           host[256], port[32];
    const char    *name;
    size_t         len = build_attack(k, buf, sizeof(buf), &name);
    int            fd, res = 0;

    if (peer_addr(1, host, sizeof(host), port, sizeof(port)) != 0)
        return -1;
    fd = connect_to(host, port);
    if (fd < 0)
        return -1;
    send_all(fd, buf, len); /* a daemon that drops us early makes this fail: fine */
    if (k < NATTACKS - 1)
        res = wait_dropped(fd, name);
    close(fd);
    printf("bad_peer: attack %d (%s) on node 1 at %s:%s: %s\n", k + 1, name, host, port,
           res == 0 ? (k < NATTACKS - 1 ? "connection dropped" : "sent and closed") : "FAILED");
    fflush(stdout);
    return res;
}

/*
 * The job carries on: rank 0 writes a page homed on node 1, rank 1 checks and rewrites it,
 * rank 0 checks. `round` makes the values fresh. 0 when every value was right, -1 if not.
 */
static int carry_on(volatile uint64_t *homed_on_1, int round)
{
    int res = 0;
    uint64_t a = 0xa000 + (uint64_t)round, b = 0xb000 + (uint64_t)round;

    if (dsm_barrier() != 0)
        return -1;
    if (dsm_rank() == 0)
        homed_on_1[round] = a;
    if (dsm_barrier() != 0)
        return -1;
    if (dsm_rank() == 1) {
        res = homed_on_1[round] == a ? 0 : -1;
        homed_on_1[round] = b;
    }
    if (dsm_barrier() != 0)
        return -1;
    if (dsm_rank() == 0)
        res = homed_on_1[round] == b ? 0 : -1;
    if (res != 0)
        fprintf(stderr, "bad_peer: rank %d: round %d: shared page holds a wrong value\n",
                dsm_rank(), round);
    return res;
}

/* Hold n silent connections to node 1 open at once (non-blocking connects: those the
 * daemon never accepts wait in the kernel), then close them. 0, or -1 (reported). */
static int flood_hold(int n)
{
    char host[256], port[32];
    struct rlimit rl;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai;
    int *fds = calloc((size_t)n, sizeof(int)), held = 0, rc;

    if (fds == NULL || peer_addr(1, host, sizeof(host), port, sizeof(port)) != 0)
        return free(fds), -1;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max; /* this rank needs more than the daemon may have */
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
    if ((rc = getaddrinfo(host, port, &hints, &ai)) != 0) {
        fprintf(stderr, "bad_peer: %s:%s: %s\n", host, port, gai_strerror(rc));
        return free(fds), -1;
    }
    for (int i = 0; i < n; i++) {
        int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

        if (fd < 0) {
            fprintf(stderr, "bad_peer: socket #%d: %s\n", i, strerror(errno));
            break;
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS) {
            fprintf(stderr, "bad_peer: connect #%d: %s\n", i, strerror(errno));
            close(fd);
            break;
        }
        fds[held++] = fd;
    }
    freeaddrinfo(ai);
    sleep(2); /* let the daemon take what it will */
    for (int i = 0; i < held; i++)
        close(fds[i]);
    free(fds);
    return held == n ? 0 : -1;
}

/* Connect to node 1 and hang up at once, n times. 0, or -1 (reported). */
static int flood_reconnect(int n)
{
    char host[256], port[32];

    if (peer_addr(1, host, sizeof(host), port, sizeof(port)) != 0)
        return -1;
    for (int i = 0; i < n; i++) {
        int fd = connect_to(host, port);

        if (fd < 0)
            return -1;
        close(fd);
    }
    return 0;
}

/* flood mode: both floods, the job checked after each. Returns the exit status. */
static int flood_main(int hold, int reconnects, volatile uint64_t *homed_on_1)
{
    int bad = 0;

    if (dsm_rank() == 0 && flood_hold(hold) != 0)
        bad++;
    if (carry_on(homed_on_1, 0) != 0)
        bad++;
    if (dsm_rank() == 0 && flood_reconnect(reconnects) != 0)
        bad++;
    if (carry_on(homed_on_1, 1) != 0)
        bad++;
    if (dsm_rank() == 0)
        printf("bad_peer flood: %d silent connections held, %d reconnects; job carried on with shared data "
               "verified: %s\n", hold, reconnects, bad ? "FAILED" : "OK");
    return bad != 0;
}

/* Everything between dsm_init and dsm_finalize; returns the exit status. */
static int bad_peer_main(int argc, char **argv)
{
    size_t  pg = dsm_page_size();
    char   *region;
    int    *failed;
    int     bad = 0, rc;

    if (dsm_nranks() != 2 || getenv("DSM_NODE") == NULL ||
        atoi(getenv("DSM_NODE")) != dsm_rank()) {
        fprintf(stderr, "bad_peer: run as dsmrun -n 2 --ranks-per-node 1\n");
        return 2;
    }
    region = dsm_coalloc(2 * pg); /* block placement: page 1 is homed on node 1 */
    failed = dsm_coalloc(sizeof(int) * 2);
    if (region == NULL || failed == NULL)
        return 1;
    if (argc == 4 && strcmp(argv[1], "flood") == 0)
        return flood_main(atoi(argv[2]), atoi(argv[3]), (volatile uint64_t *)(region + pg));
    for (int k = 0; k < NATTACKS; k++) {
        if (dsm_rank() == 0 && attack(k) != 0)
            bad++;
        if (carry_on((volatile uint64_t *)(region + pg), k) != 0)
            bad++;
    }
    failed[dsm_rank()] = bad;
    rc = dsm_barrier();
    if (rc != 0) {
        fprintf(stderr, "bad_peer: rank %d: dsm_barrier: %s\n", dsm_rank(), dsm_strerror(rc));
        return 1;
    }
    if (dsm_rank() == 0)
        printf("bad_peer: %d attacks on node 1; job carried on with shared data verified: %s\n",
               NATTACKS, failed[0] + failed[1] ? "FAILED" : "OK");
    return bad != 0;
}

int main(int argc, char **argv)
{
    int rc = dsm_init(&argc, &argv), status;

    if (rc != 0) {
        fprintf(stderr, "bad_peer: dsm_init: %s\n", dsm_strerror(rc));
        return 1;
    }
    status = bad_peer_main(argc, argv);
    rc = dsm_finalize();
    if (rc != 0) {
        fprintf(stderr, "bad_peer: dsm_finalize: %s\n", dsm_strerror(rc));
        status = 1;
    }
    return status;
}

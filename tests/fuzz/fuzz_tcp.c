/*
 * fuzz_tcp.c - libFuzzer target: the TCP transport's receive side, over a real loopback
 * connection to a real listening transport (daemon/transport/tcp.c).
 *
 * Each input is one connection from a would-be node 1 to node 0 of a 2-node job. The first
 * byte picks how far the harness plays by the rules before the fuzz bytes follow:
 *   even: nothing: the fuzz bytes are the hello (and whatever comes after it);
 *   odd:  a valid hello and a valid proof of the job secret (the harness knows it), so the
 *         fuzz bytes reach the frame parser, the frames and the delivery of messages.
 * The transport must reject what is malformed by dropping the connection, deliver only
 * messages no longer than max_msg with in-range frame pages, and never crash, leak or hang:
 * every wait in the harness is bounded.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "dsm_log.h"
#include "dsmt.h"
#include "hmac.h"
#include "tcp_wire.h"
#include "wire.h"

#define PS      4096u
#define NPAGES  8u
#define MAX_MSG 4096u
#define JOB     0x1234abcdull

static uint8_t frames[NPAGES * PS];
static int peer_lost;

static void on_up(void *ctx, int node) { (void)ctx; (void)node; }
static void on_lost(void *ctx, int node, const char *why) { (void)ctx; (void)node; (void)why; peer_lost = 1; }

static void on_msg(void *ctx, int node, const uint8_t *msg, size_t len, uint64_t page)
{
    const struct dsmw_limits lim = { .npages = NPAGES, .nnodes = 2, .nranks = 2 };
    dsmw_msg_t *m;
    const char *why;

    (void)ctx;
    if (node != 1 || len > MAX_MSG || (page != DSMT_NO_PAGE && page >= NPAGES))
        abort(); /* the transport promised all of these */
    if (dsmw_decode(msg, len, &lim, &m, &why) == DSM_OK)
        dsmw_free(m);
}

static void put32(uint8_t *b, uint32_t v) { for (int i = 0; i < 4; i++) b[i] = (uint8_t)(v >> (8 * i)); }
static void put64(uint8_t *b, uint64_t v) { for (int i = 0; i < 8; i++) b[i] = (uint8_t)(v >> (8 * i)); }

/* Write all of b while the transport makes progress (bounded). 0, or -1 if it closed. */
static int feed(dsmt_t *t, int fd, const uint8_t *b, size_t n)
{
    for (int spins = 0; n > 0 && spins < 10000; spins++) {
        ssize_t w = send(fd, b, n, MSG_NOSIGNAL | MSG_DONTWAIT);

        if (w > 0) {
            b += w;
            n -= (size_t)w;
        } else if (w < 0 && errno != EAGAIN && errno != EINTR) {
            return -1;
        }
        (void)dsmt_tcp_ops.progress(t);
    }
    return n == 0 ? 0 : -1;
}

/* Read exactly n bytes while the transport makes progress (bounded). 0 or -1. */
static int take(dsmt_t *t, int fd, uint8_t *b, size_t n)
{
    for (int spins = 0; n > 0 && spins < 10000; spins++) {
        ssize_t r = recv(fd, b, n, MSG_DONTWAIT);

        if (r > 0) {
            b += r;
            n -= (size_t)r;
        } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
            return -1;
        }
        (void)dsmt_tcp_ops.progress(t);
    }
    return n == 0 ? 0 : -1;
}

/* Play node 1's side of the handshake correctly. 0, or -1 if node 0 refused it. */
static int handshake(dsmt_t *t, int fd, const uint8_t *secret)
{
    uint8_t hello[DSMT_TCP_HELLO_LEN] = { 0 }, theirs[DSMT_TCP_HELLO_LEN], proof[DSMT_TCP_PROOF_LEN];
    uint8_t m[DSMT_TCP_NONCE_LEN + 12];

    put32(hello + DSMT_TCP_H_MAGIC, DSMT_TCP_MAGIC);
    put32(hello + DSMT_TCP_H_VERSION, DSMT_TCP_VERSION);
    put32(hello + DSMT_TCP_H_NODE, 1);
    put32(hello + DSMT_TCP_H_NNODES, 2);
    put64(hello + DSMT_TCP_H_JOB, JOB);
    put64(hello + DSMT_TCP_H_PAGE_SIZE, PS);
    put64(hello + DSMT_TCP_H_NPAGES, NPAGES);
    put64(hello + DSMT_TCP_H_MAX_MSG, MAX_MSG);
    memset(hello + DSMT_TCP_H_NONCE, 0x5a, DSMT_TCP_NONCE_LEN);
    if (feed(t, fd, hello, sizeof(hello)) != 0 || take(t, fd, theirs, sizeof(theirs)) != 0)
        return -1;
    memcpy(m, theirs + DSMT_TCP_H_NONCE, DSMT_TCP_NONCE_LEN);
    put32(m + DSMT_TCP_NONCE_LEN, 1);
    put64(m + DSMT_TCP_NONCE_LEN + 4, JOB);
    dsmt_hmac_sha256(secret, DSMT_SECRET_LEN, m, sizeof(m), proof);
    if (feed(t, fd, proof, sizeof(proof)) != 0 || take(t, fd, proof, sizeof(proof)) != 0)
        return -1;
    return 0;
}

/* The harness itself could not run (not a finding in the transport): say what, and stop. */
static void harness_failed(const char *what)
{
    fprintf(stderr, "fuzz_tcp: harness: %s: %s\n", what, strerror(errno));
    abort();
}

/* A blocking connect() that a signal interrupted (libFuzzer's timer) goes on by itself: wait
 * for it, bounded (5 s), and say whether it connected. */
static int connect_finished(int fd)
{
    struct pollfd p = { .fd = fd, .events = POLLOUT };
    int err = 0, n = 0;
    socklen_t len = sizeof(err);

    for (int tries = 0; tries < 50; tries++)
        if ((n = poll(&p, 1, 100)) != 0 && !(n < 0 && errno == EINTR))
            break;
    return n > 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0;
}

/*
 * A connected socket to sa, or -1. Closed with a reset, so that most runs leave no
 * TIME_WAIT behind; but a run that half-closes (shutdown, below) and sees the transport
 * close too ends in TIME_WAIT on this side anyway, and at a few thousand runs a second the
 * loopback's ephemeral ports run out within TIME_WAIT's 60 s (a fresh clone's 20 s run
 * failed after 13,548 runs). Then connect says EADDRNOTAVAIL: that is this machine's limit,
 * not a finding, so wait for ports to come back (up to 90 s) instead of stopping.
 */
static int connect_to(const struct sockaddr_in *sa)
{
    const struct linger abortive = { .l_onoff = 1, .l_linger = 0 };
    const struct timespec nap = { 0, 50 * 1000 * 1000 };

    for (int tries = 0; tries < 90 * 20; tries++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), err;

        if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_LINGER, &abortive, sizeof(abortive)) != 0) {
            if (fd >= 0)
                close(fd);
            return -1;
        }
        if (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0)
            return fd;
        err = errno;
        if (err == EINTR && connect_finished(fd))
            return fd;
        close(fd);
        if (err != EADDRNOTAVAIL && err != EAGAIN && err != EINTR)
            return -1;
        nanosleep(&nap, NULL);
    }
    return -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct dsmt_config cfg = { .self = 0, .nnodes = 2, .frames = frames, .npages = NPAGES, .page_size = PS,
                               .max_msg = MAX_MSG, .job_id = JOB };
    struct dsmt_handler h = { .on_peer_up = on_up, .on_message = on_msg, .on_peer_lost = on_lost };
    struct sockaddr_in sa = { .sin_family = AF_INET };
    char bound[64], *colon;
    dsmt_t *t = NULL;
    int fd = -1;
    uint8_t junk[4096];

    if (size < 1)
        return 0;
    memset(cfg.secret, 0x42, sizeof(cfg.secret));
    peer_lost = 0;
    /* listening on a fresh port: like connecting, it may wait for TIME_WAIT's ports */
    for (int tries = 0;; tries++) {
        const struct timespec nap = { 0, 50 * 1000 * 1000 };

        if (dsmt_tcp_ops.create(&cfg, &h, &t) != DSM_OK)
            harness_failed("creating a transport");
        if (dsmt_tcp_ops.listen(t, "127.0.0.1:0", bound, sizeof(bound)) == DSM_OK)
            break;
        dsmt_tcp_ops.destroy(t);
        t = NULL;
        if (tries >= 90 * 20)
            harness_failed("listening on 127.0.0.1");
        nanosleep(&nap, NULL);
    }
    colon = strrchr(bound, ':');
    sa.sin_port = htons((uint16_t)atoi(colon + 1));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if ((fd = connect_to(&sa)) < 0)
        harness_failed("connecting to it");
    if ((data[0] & 1) == 0 || handshake(t, fd, cfg.secret) == 0) {
        (void)feed(t, fd, data + 1, size - 1);
        (void)shutdown(fd, SHUT_WR);
        /* let the transport read all of it: it drops us, or waits for more that never comes */
        for (int spins = 0; spins < 64; spins++) {
            ssize_t r = recv(fd, junk, sizeof(junk), MSG_DONTWAIT);

            if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
                break;
            (void)dsmt_tcp_ops.progress(t);
        }
    }
    close(fd);
    (void)dsmt_tcp_ops.progress(t);
    dsmt_tcp_ops.destroy(t);
    return 0;
}

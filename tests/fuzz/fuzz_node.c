/*
 * fuzz_node.c - libFuzzer target: a whole daemon node (daemon/ without main.c) driven by
 * its peers' messages and its ranks' channel events.
 *
 * Each input builds a fresh node 1 of a 3-node job (2 local ranks, ranks 2 and 3) under the
 * model its first byte picks, with a transport of the harness's own in place of TCP/RDMA:
 * what the node sends is discarded, what its peers send is whatever the input says. The
 * ranks' side is played over the node's real AF_UNIX socket. The rest of the input is a
 * list of operations:
 *   peer message (raw bytes, or a well-formed message of a chosen type and fields), a
 *   channel opened, a channel message (any op and fields), a channel closed, the ranks
 *   taking their messages (service channels acknowledge every PROTECT), a peer lost, and
 *   a rank's direct read (dsm_direct.h) claiming a page's door, finishing (DONE, and
 *   DIRECT_DONE when the daemon waits) or refused (the claim dropped); and another node's
 *   rank on the node's direct listener (a real TCP socket): connecting, saying a HELLO
 *   with the right proof, asking READs, sending garbage, hanging up.
 * After each operation the node's event loop runs until nothing is ready. The input ends
 * early once the node aborts the job (as a daemon would exit). Then everything is torn
 * down: ASan/LSan see every use after free and every leak.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include "dsm_direct.h"
#include "dsmd.h"
#include "transport/hmac.h"

#define SLOTS   6
#define NPAGES  64u

struct fz_transport {
    struct dsmt_handler h;
    int efd;
};

static struct fz_transport *g_t;

static dsm_status_t fz_create(const struct dsmt_config *cfg, const struct dsmt_handler *h, dsmt_t **out)
{
    struct fz_transport *t = calloc(1, sizeof(*t));

    (void)cfg;
    if (t == NULL)
        return DSM_ENOMEM;
    t->h = *h;
    t->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    g_t = t;
    *out = (dsmt_t *)t;
    return DSM_OK;
}

static dsm_status_t fz_listen(dsmt_t *t, const char *addr, char *bound, size_t len)
{
    (void)t;
    (void)addr;
    snprintf(bound, len, "fuzz:1");
    return DSM_OK;
}

static dsm_status_t fz_connect(dsmt_t *t, int node, const char *addr, int ms)
{
    (void)t; (void)node; (void)addr; (void)ms;
    return DSM_OK;
}

static dsm_status_t fz_send(dsmt_t *t, int node, const void *msg, size_t len, uint64_t page)
{
    (void)t; (void)node; (void)msg; (void)len; (void)page;
    return DSM_OK; /* the peers hear nothing: the input speaks for them */
}

static void fz_drop(dsmt_t *t, int node, const char *why)
{
    struct fz_transport *f = (struct fz_transport *)t;

    f->h.on_peer_lost(f->h.ctx, node, why);
}

static int fz_event_fd(dsmt_t *t) { return ((struct fz_transport *)t)->efd; }
static dsm_status_t fz_progress(dsmt_t *t) { (void)t; return DSM_OK; }
static size_t fz_backlog(dsmt_t *t) { (void)t; return 0; }

static void fz_destroy(dsmt_t *t)
{
    struct fz_transport *f = (struct fz_transport *)t;

    close(f->efd);
    free(f);
    g_t = NULL;
}

static const struct dsmt_ops fz_ops = {
    .name = "fuzz", .create = fz_create, .listen = fz_listen, .connect = fz_connect, .send = fz_send,
    .drop = fz_drop, .event_fd = fz_event_fd, .progress = fz_progress, .backlog = fz_backlog, .destroy = fz_destroy,
};

/* The input, read from the front. */
struct in {
    const uint8_t *p;
    size_t n;
};

static uint8_t byte(struct in *in)
{
    uint8_t b = 0;

    if (in->n > 0) {
        b = *in->p++;
        in->n--;
    }
    return b;
}

/* Run the node's loop while it has work. Before each round, the first included (a peer's
 * message is handled as it is delivered, so its effects are there before the loop runs),
 * no page's open[] may promise the ranks more than the daemon would grant at once
 * (daemon/hits.c). */
static void pump(struct dsmd *d)
{
    int more = 1;

    for (int i = 0; i < 200 && more; i++) {
        int64_t p = dsmd_hits_check(d);

        if (p >= 0) {
            fprintf(stderr, "fuzz_node: page %lld: open[] or door[] beyond what its state allows, or a direct "
                    "read standing while the node holds or asks for the page\n", (long long)p);
            abort();
        }
        more = dsmd_loop_running(d->loop) && dsmd_loop_poll(d->loop) > 0;
    }
}

/* Read what the node sent on a channel, closing any fd it passed; a service channel
 * acknowledges every PROTECT, as a rank's service thread does. */
static void rank_reads(int fd)
{
    for (int i = 0; i < 256; i++) {
        struct dsmc_msg m;
        char cbuf[CMSG_SPACE(sizeof(int) * 4)];
        struct iovec iov = { .iov_base = &m, .iov_len = sizeof(m) };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
        ssize_t n = recvmsg(fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);

        if (n <= 0)
            return;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c != NULL; c = CMSG_NXTHDR(&mh, c))
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
                for (size_t k = 0; k < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); k++) {
                    int passed;

                    memcpy(&passed, CMSG_DATA(c) + k * sizeof(int), sizeof(int));
                    close(passed);
                }
        if (n == (ssize_t)sizeof(m) && m.op == DSMC_PROTECT) {
            struct dsmc_msg ack = { .magic = DSMC_MAGIC, .op = DSMC_PROTECT_ACK, .seq = m.seq };

            (void)send(fd, &ack, sizeof(ack), MSG_DONTWAIT | MSG_NOSIGNAL);
        }
    }
}

/* A rank's side of a direct read of a page (dsm_direct.h), on door[] as libdsm's direct.c
 * does it: claim an offered door, finish (DONE; DIRECT_DONE on the rank's channel fd when
 * the daemon asked with WAIT), or let a refused claim go. */
static void rank_direct(struct dsmd *d, struct in *in, int lrank, int fd)
{
    uint64_t page = byte(in) % NPAGES;
    uint16_t v, claim = (uint16_t)(DSM_DOOR_CLAIM | (unsigned)lrank);
    uint8_t what = byte(in) % 3;

    if (d->hits_door == NULL)
        return;
    v = __atomic_load_n(&d->hits_door[page], __ATOMIC_SEQ_CST);
    if (what == 0 && v != 0 && !(v & DSM_DOOR_CLAIM)) {
        (void)__atomic_compare_exchange_n(&d->hits_door[page], &v, claim, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
    } else if (what == 1 && (v & (DSM_DOOR_CLAIM | DSM_DOOR_DONE | DSM_DOOR_LOW)) == claim) {
        v = __atomic_fetch_or(&d->hits_door[page], DSM_DOOR_DONE, __ATOMIC_SEQ_CST);
        if ((v & DSM_DOOR_WAIT) && fd >= 0) {
            struct dsmc_msg m = { .magic = DSMC_MAGIC, .op = DSMC_DIRECT_DONE, .rank = 2u + (unsigned)lrank,
                                  .a = page };

            (void)send(fd, &m, sizeof(m), MSG_DONTWAIT | MSG_NOSIGNAL);
        }
    } else if (what == 2 && (v & (DSM_DOOR_CLAIM | DSM_DOOR_DONE | DSM_DOOR_LOW)) == claim) {
        (void)__atomic_compare_exchange_n(&d->hits_door[page], &v, 0, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
    }
}

/* Another node's rank on the node's direct listener (d->direct). Each slot is one TCP
 * connection; what the daemon answers is read and dropped (a NONCE is kept for a HELLO). */
struct dconn_slot {
    int fd;
    uint8_t nonce[DSM_DIRECT_NONCE];
};

static void dconn_drain(struct dconn_slot *c)
{
    struct dsm_direct_msg m;

    for (int i = 0; i < 64 && c->fd >= 0; i++) {
        ssize_t n = recv(c->fd, &m, sizeof(m), MSG_DONTWAIT | MSG_PEEK);

        if (n < (ssize_t)sizeof(m))
            return;
        (void)recv(c->fd, &m, sizeof(m), MSG_DONTWAIT);
        if (m.magic == DSM_DIRECT_MAGIC && m.op == DSM_DIRECT_NONCE_OP)
            memcpy(c->nonce, m.bytes, sizeof(c->nonce));
        if (m.magic == DSM_DIRECT_MAGIC && m.op == DSM_DIRECT_GRANT) {
            uint8_t page[4096];

            (void)recv(c->fd, page, sizeof(page), MSG_DONTWAIT); /* the daemon sent it whole */
        }
    }
}

static void remote_rank(struct dsmd *d, struct in *in, struct dconn_slot *c)
{
    uint8_t what = byte(in) % 5;
    struct dsm_direct_msg m = { .magic = DSM_DIRECT_MAGIC };

    if (d->direct == NULL)
        return;
    if (what == 0 && c->fd < 0) {
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(dsmd_direct_port(d)) };

        inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
        c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (c->fd >= 0 && connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
            close(c->fd);
            c->fd = -1;
        }
        return;
    }
    if (c->fd < 0)
        return;
    if (what == 1) { /* a HELLO, its proof right unless the input says otherwise */
        char text[256];
        uint8_t mac[DSMT_SHA256_LEN];
        uint8_t node = byte(in) % 4, rank = byte(in) % 5;

        dsm_direct_proof_text(text, sizeof(text), d->cfg.job_id, d->cfg.node, node == 3 ? 0 : node, rank,
                              c->nonce);
        dsmt_hmac_sha256(d->cfg.secret, sizeof(d->cfg.secret), text, strlen(text), mac);
        m.op = DSM_DIRECT_HELLO;
        m.node = node == 3 ? 2 : node; /* 3: node 2, with node 0's proof */
        m.rank = rank;
        memcpy(m.bytes, mac, sizeof(m.bytes));
    } else if (what == 2) {
        m.op = DSM_DIRECT_READ;
        m.page = byte(in) % (NPAGES + 2);
    } else if (what == 3) {
        for (size_t i = 0; i < sizeof(m); i++)
            ((uint8_t *)&m)[i] = byte(in);
    } else {
        close(c->fd);
        c->fd = -1;
        return;
    }
    (void)send(c->fd, &m, sizeof(m), MSG_DONTWAIT | MSG_NOSIGNAL);
}

static const int types[] = {
    DSMW__TYPE__READ_REQ, DSMW__TYPE__WRITE_REQ, DSMW__TYPE__GRANT, DSMW__TYPE__INV, DSMW__TYPE__INV_ACK,
    DSMW__TYPE__FETCH, DSMW__TYPE__FETCH_REPLY, DSMW__TYPE__EVICT, DSMW__TYPE__EVICTED, DSMW__TYPE__LOCK_REQ, DSMW__TYPE__LOCK_GRANT, DSMW__TYPE__UNLOCK,
    DSMW__TYPE__BARRIER_ARRIVE, DSMW__TYPE__BARRIER_RELEASE, DSMW__TYPE__FINI_ARRIVE, DSMW__TYPE__FINI_RELEASE,
    DSMW__TYPE__ALLOC_REQ, DSMW__TYPE__ALLOC_REPLY, DSMW__TYPE__REGION_ADD, DSMW__TYPE__REGION_FREE,
    DSMW__TYPE__REGION_ACK, DSMW__TYPE__COFREE_REQ, DSMW__TYPE__FREE_REQ, DSMW__TYPE__PAGE_GET, DSMW__TYPE__PAGE,
    DSMW__TYPE__DIFF, DSMW__TYPE__DIFF_ACK, DSMW__TYPE__UPDATE, DSMW__TYPE__HEARTBEAT,
    DSMW__TYPE__RANK_ABSENT, DSMW__TYPE__COND_WAIT, DSMW__TYPE__COND_QUEUED, DSMW__TYPE__COND_SIGNAL,
    DSMW__TYPE__COND_WAKE, DSMW__TYPE__ATOMIC_REQ, DSMW__TYPE__ATOMIC_REPLY, DSMW__TYPE__HOME_CLAIM,
    DSMW__TYPE__HOME_IS, DSMW__TYPE__HOME_ACK, DSMW__TYPE__CLOCK_REQ, DSMW__TYPE__CLOCK_REPLY,
    DSMW__TYPE__FS_WROTE,
};

/* A well-formed message of a chosen type, fields from the input, from node src. */
static void peer_structured(struct dsmd *d, struct in *in, int src)
{
    dsmw_msg_t m;
    uint8_t buf[DSMW_MAX_MSG], data[64];
    uint64_t vc[3];
    size_t len, dl;
    uint64_t page;
    int framed;

    dsmw_init(&m, types[byte(in) % (sizeof(types) / sizeof(types[0]))]);
    m.page = byte(in) % NPAGES;
    m.origin = byte(in) % 4;
    m.access = byte(in) % 3;
    m.node = (uint32_t)src;
    m.seq = byte(in) % 8;
    m.lock = byte(in) % 4;
    m.addr = byte(in) % NPAGES;
    m.count = byte(in) % 16;
    m.size = byte(in) * 4096u;
    m.epoch = byte(in) % 4;
    m.status = -(int)(byte(in) % 3);
    m.aop = byte(in) % 6;
    m.operand = byte(in);
    m.operand2 = byte(in);
    m.value = byte(in);
    m.stamp = byte(in) % 4;
    if (m.type == DSMW__TYPE__ATOMIC_REQ || m.type == DSMW__TYPE__ATOMIC_REPLY) {
        m.size = (byte(in) & 1) ? 8 : 4;
        m.addr = (uint64_t)byte(in) * 8;
    }
    dl = byte(in) % sizeof(data);
    for (size_t i = 0; i < dl; i++)
        data[i] = byte(in);
    m.data.data = data;
    m.data.len = dl;
    for (int i = 0; i < 3; i++)
        vc[i] = byte(in) % 8;
    m.vclock = vc;
    m.n_vclock = byte(in) % 4;
    framed = byte(in) & 1;
    page = m.page;
    if (dsmw_encode(&m, buf, sizeof(buf), &len) == DSM_OK)
        g_t->h.on_message(g_t->h.ctx, src, buf, len, framed ? page : DSMT_NO_PAGE);
}

static void peer_raw(struct in *in, int src)
{
    uint8_t buf[512];
    size_t len = (size_t)byte(in) * 2;

    for (size_t i = 0; i < len; i++)
        buf[i] = byte(in);
    g_t->h.on_message(g_t->h.ctx, src, buf, len, DSMT_NO_PAGE);
}

static int chan_open(const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

static void chan_message(struct in *in, int fd)
{
    struct dsmc_msg m;

    memset(&m, 0, sizeof(m));
    m.magic = (byte(in) & 15) == 0 ? DSMC_MAGIC ^ 1 : DSMC_MAGIC;
    m.op = byte(in) % (DSMC_OP_MAX + 1);
    m.rank = 2 + byte(in) % 3;
    m.seq = byte(in) % 16 * 2 + (byte(in) & 1);
    m.a = byte(in) % (NPAGES + 2);
    m.b = byte(in) % 4; /* FAULT: write flag; COALLOC: the placement, first touch included */
    m.c = byte(in);
    m.d = byte(in);
    if (m.op == DSMC_COALLOC || m.op == DSMC_MALLOC)
        m.a = (uint64_t)byte(in) * 4096u;
    if (m.op == DSMC_COFREE || m.op == DSMC_FREE)
        m.a = 0x500000000000ull + (uint64_t)(byte(in) % NPAGES) * 4096u;
    if (m.op == DSMC_ATOMIC) {
        m.a = 0x500000000000ull + (uint64_t)(byte(in) % NPAGES) * 4096u + byte(in) * 4u;
        m.e = (byte(in) & 1) ? 8 : 4;
    }
    (void)send(fd, &m, sizeof(m), MSG_DONTWAIT | MSG_NOSIGNAL);
}

static void run(struct dsmd *d, struct in *in, const char *sock)
{
    int fds[SLOTS];
    struct dconn_slot dc[SLOTS];

    for (int i = 0; i < SLOTS; i++) {
        fds[i] = -1;
        dc[i].fd = -1;
        memset(dc[i].nonce, 0, sizeof(dc[i].nonce));
    }
    g_t->h.on_peer_up(g_t->h.ctx, 0);
    g_t->h.on_peer_up(g_t->h.ctx, 2);
    while (in->n > 0 && dsmd_loop_running(d->loop) && !d->aborting) {
        uint8_t op = byte(in), k = byte(in) % SLOTS;
        int src = (op & 0x80) ? 2 : 0;

        switch (op % 8) {
        case 0: peer_raw(in, src); break;
        case 1:
        case 2: peer_structured(d, in, src); break;
        case 3: if (fds[k] < 0) fds[k] = chan_open(sock); break;
        case 4:
        case 5: if (fds[k] >= 0) chan_message(in, fds[k]); break;
        case 6: if (fds[k] >= 0) { close(fds[k]); fds[k] = -1; } break;
        default:
            if ((op & 0x70) == 0x70)
                g_t->h.on_peer_lost(g_t->h.ctx, src, "fuzz: peer lost");
            if ((op & 0x70) == 0x60)
                rank_direct(d, in, k & 1, fds[k]);
            if ((op & 0x70) == 0x50)
                remote_rank(d, in, &dc[k]);
            for (int i = 0; i < SLOTS; i++)
                if (fds[i] >= 0)
                    rank_reads(fds[i]);
            break;
        }
        pump(d);
        for (int i = 0; i < SLOTS; i++)
            dconn_drain(&dc[i]);
    }
    for (int i = 0; i < SLOTS; i++) {
        if (fds[i] >= 0)
            close(fds[i]);
        if (dc[i].fd >= 0)
            close(dc[i].fd);
    }
    pump(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *models[] = { "sequential", "release", "causal" };
    struct dsmd d = { .memfd = -1, .listen_fd = -1, .sigfd = -1, .timerfd = -1, .watchfd = -1 };
    struct in in = { data, size };
    char sock[64];
    unsigned first;

    if (size < 1)
        return 0;
    snprintf(sock, sizeof(sock), "/tmp/dsm-fuzz-node-%d.sock", (int)getpid());
    first = byte(&in);
    /* the first byte: the model, whether --trace, --page-stats, --false-sharing are on, grants
     * ahead, reads ahead and node-local hits (with them, under sequential, direct reads too);
     * from 192 on (hits off), a page cache of 8 pages, the least two ranks may have */
    d.cfg = (struct dsmd_config){ .node = 1, .nnodes = 3, .nranks = 4, .first_rank = 2, .local_ranks = 2,
                                  .consistency = models[first % 3], .transport = "fuzz", .listen = "fuzz",
                                  .socket = sock, .space_size = NPAGES * 4096ull, .base = 0x500000000000ull,
                                  .peer_timeout_ms = 8000, .job_id = 1, .trace = first / 3 & 1,
                                  .page_stats = first / 6 & 1, .false_sharing = first / 12 & 1,
                                  .grant_ahead = first / 24 & 1 ? 64 : 1, .read_ahead = first / 48 & 1 ? 16 : 1,
                                  .local_hits = first / 96 & 1, .direct = 1,
                                  .cache_size = first / 192 ? 8 * 4096u : 0 };
    d.tops = &fz_ops;
    if (dsmd_loop_create(&d.loop) != DSM_OK)
        abort();
    if (dsmd_node_setup(&d) == DSM_OK && dsmd_clients_init(&d) == DSM_OK && dsmd_peers_init(&d) == DSM_OK) {
        /* the direct listener on loopback (the fuzz transport's address is no host) */
        snprintf(d.listen_addr, sizeof(d.listen_addr), "127.0.0.1:0");
        if (dsmd_direct_init(&d) != DSM_OK)
            abort();
        run(&d, &in, sock);
    }
    dsmd_node_teardown(&d);
    unlink(sock);
    return 0;
}

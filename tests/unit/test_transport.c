/*
 * test_transport.c - conformance suite for the transport ops table (daemon/transport/dsmt.h).
 *
 * Long on purpose: one suite that every transport must pass case by case; split, its cases
 * would have to be registered once per file and per transport.
 *
 * Suite `transport` is written against the ops table only and runs once per entry of
 * transports[] (tcp, rdma), the same cases for each; a transport this build lacks, or whose
 * device is missing, is skipped with one line. DSM_TEST_TRANSPORTS=rdma (a comma list) runs
 * only the transports named (scripts/test-rdma-vm runs the rdma cases in a soft-RoCE guest).
 * Suite `tcp_input` feeds raw (mostly broken) byte streams to a TCP instance and checks that
 * each bad connection is dropped while established peers keep working; suite `rdma_input`
 * does the same to an RDMA instance with a raw rdma_cm/verbs peer (bad hellos in the CM
 * private data, malformed SENDs, a write outside the frames), and checks the documented
 * layout of rdma_wire.h both ways.
 *
 * Instances live in one process, each with its own frame memory, on the transport's test
 * host: 127.0.0.1 for tcp; for rdma the IPv4 address of the first active RDMA port (rdma_cm
 * cannot use loopback), all instances on that one device. Nothing
 * progresses behind the test's back: drive_once() polls the instances' event fds and calls
 * progress() only on those that are readable, so a transport that forgets to signal its
 * event fd fails here. Every wait has a deadline (WAIT_MS) and fails the test when it passes.
 */
#include <criterion/criterion.h>
#include <criterion/hooks.h>
#include <criterion/parameterized.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "dsm_log.h"
#include "dsmt.h"
#include "hmac.h"
#include "tcp_wire.h"

#ifdef DSMT_HAVE_RDMA
#include <dirent.h>
#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>

#include "rdma_wire.h"
#endif

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
/* Criterion's workers leave with _exit(), which skips LeakSanitizer, and a failed assertion
 * in .fini does not fail the test: so each test body is followed by this check. */
static void leak_check(void)
{
    cr_assert_eq(__lsan_do_recoverable_leak_check(), 0, "memory leaked (see the report above)");
}
#else
static void leak_check(void)
{
}
#endif

#define PAGE       4096u
#define NPAGES     64u
#define BIG_NPAGES 8192u      /* burst tests: every framed message gets a page of its own */
#define MAX_MSG    65536u
#define JOB        0x5eed0fd5abcdef01ULL
#define MAXN       4
#define WAIT_MS    10000
#define SEQ_HDR    24u        /* seq, seed, page at the start of a checked message */
#define FRAME_SALT 0xf4a3e5a17ULL

/* ---- the transports under test ------------------------------------------------------ */

/* Criterion runs each case in a fresh process: a parameter holds no pointers. */
struct tparam {
    char name[16];
};

static struct tparam transports[] = {
    { "tcp" },
    { "rdma" }, /* skipped below where this build or this machine has no RDMA */
};

/* The address instances of the transport under test listen on ("127.0.0.1" for tcp and for
 * the tcp_input suite); set by use(). */
static char host[64] = "127.0.0.1";

#ifdef DSMT_HAVE_RDMA
/* Read a small sysfs file into buf; false if it cannot be read. */
static bool read_small(const char *path, char *buf, size_t len)
{
    FILE *f = fopen(path, "r");
    bool ok = f != NULL && fgets(buf, (int)len, f) != NULL;

    if (f != NULL)
        fclose(f);
    return ok;
}

/* The IPv4 address of the first active RDMA port (its IPv4-mapped GID), into host. From sysfs
 * only: the Criterion runner calls this too, and forks its workers afterwards. */
static bool rdma_host(void)
{
    static const char ib[] = "/sys/class/infiniband";
    char path[512], text[128];
    unsigned g[8];
    DIR *devs = opendir(ib);
    struct dirent *d;
    bool found = false;

    while (devs != NULL && !found && (d = readdir(devs)) != NULL) {
        for (int port = 1; d->d_name[0] != '.' && port <= 8 && !found; port++) {
            snprintf(path, sizeof(path), "%s/%s/ports/%d/state", ib, d->d_name, port);
            if (!read_small(path, text, sizeof(text)) || strstr(text, "ACTIVE") == NULL)
                continue;
            for (int i = 0; i < 16 && !found; i++) {
                snprintf(path, sizeof(path), "%s/%s/ports/%d/gids/%d", ib, d->d_name, port, i);
                if (read_small(path, text, sizeof(text)) &&
                    sscanf(text, "%x:%x:%x:%x:%x:%x:%x:%x", &g[0], &g[1], &g[2], &g[3], &g[4], &g[5],
                           &g[6], &g[7]) == 8 &&
                    (g[0] | g[1] | g[2] | g[3] | g[4]) == 0 && g[5] == 0xffff) {
                    snprintf(host, sizeof(host), "%u.%u.%u.%u", g[6] >> 8, g[6] & 0xff, g[7] >> 8, g[7] & 0xff);
                    found = true;
                }
            }
        }
    }
    if (devs != NULL)
        closedir(devs);
    return found;
}
#endif

/* Why transport `name` cannot run here, or NULL (and then host is its test address). */
static const char *unusable(const char *name)
{
    const char *only = getenv("DSM_TEST_TRANSPORTS");

    if (only != NULL && only[0] != '\0') {
        size_t n = strlen(name);
        const char *at = strstr(only, name);

        while (at != NULL && ((at != only && at[-1] != ',') || (at[n] != '\0' && at[n] != ',')))
            at = strstr(at + 1, name);
        if (at == NULL)
            return "not selected by DSM_TEST_TRANSPORTS";
    }
    if (strcmp(name, "rdma") == 0) {
#ifdef DSMT_HAVE_RDMA
        if (!rdma_host())
            return "no active RDMA device with an IPv4 address here (scripts/test-rdma-vm runs these cases on soft-RoCE)";
#endif
    } else {
        snprintf(host, sizeof(host), "127.0.0.1");
    }
    return NULL;
}

/* The ops table for a parameter, or skip the test with one line saying why. */
static const struct dsmt_ops *use(const struct tparam *p)
{
    const struct dsmt_ops *ops = dsmt_find(p->name);
    const char *why = ops == NULL ? "not in this build" : unusable(p->name);

    if (why != NULL)
        cr_skip_test("%s transport skipped: %s", p->name, why);
    return ops;
}

/* One line per transport that will be skipped, before the run (Criterion itself lists skips
 * only with --verbose). */
ReportHook(PRE_ALL)(struct criterion_test_set *set)
{
    (void)set;
    for (size_t i = 0; i < sizeof(transports) / sizeof(transports[0]); i++) {
        const char *why = dsmt_find(transports[i].name) == NULL
                              ? "not in this build (libibverbs/librdmacm missing at configure time)"
                              : unusable(transports[i].name);

        if (why != NULL)
            fprintf(stderr, "test_transport: %s cases skipped: %s\n", transports[i].name, why);
    }
}

/* A test run once per transport: TRANSPORT_TEST(name) { body using `p` }. */
#define TRANSPORT_TEST(test)                                                               \
    static void test##_body(const struct tparam *p);                                       \
    ParameterizedTestParameters(transport, test)                                           \
    {                                                                                      \
        return cr_make_param_array(struct tparam, transports,                              \
                                   sizeof(transports) / sizeof(transports[0]));            \
    }                                                                                      \
    ParameterizedTest(struct tparam *p, transport, test, .timeout = 60)                    \
    {                                                                                      \
        test##_body(p);                                                                    \
        leak_check();                                                                      \
    }                                                                                      \
    static void test##_body(const struct tparam *p)

/* A test of raw input against the TCP transport. */
#define TCP_INPUT_TEST(test)                                                               \
    static void test##_body(void);                                                         \
    Test(tcp_input, test, .timeout = 60)                                                   \
    {                                                                                      \
        test##_body();                                                                     \
        leak_check();                                                                      \
    }                                                                                      \
    static void test##_body(void)

/* ---- an instance and what it saw ---------------------------------------------------- */

struct got {
    int from;
    size_t len;
    uint64_t page;
    uint8_t *data;
};

struct inst {
    const struct dsmt_ops *ops;
    dsmt_t *t;                 /* NULL once destroyed */
    int self, nnodes;
    uint8_t *frames;
    uint64_t npages;
    char addr[128];
    int up[MAXN], lost[MAXN];
    char reason[MAXN][256];
    bool keep;                 /* store a copy of every message in msgs[] */
    bool check;                /* check sequenced messages (send_seq) on arrival */
    bool drop_on_msg;          /* drop the sender from inside on_message, as a daemon would */
    struct got *msgs;
    size_t nmsgs, cap;
    uint64_t next_seq[MAXN];
    size_t count[MAXN];        /* messages received per sender */
    size_t seq_bad, body_bad, frame_bad, page_bad;
};

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Deterministic bytes from a seed (xorshift64). */
static void fill(uint8_t *p, size_t n, uint64_t seed)
{
    uint64_t x = (seed * 0x9e3779b97f4a7c15ULL) | 1;

    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        p[i] = (uint8_t)(x >> 24);
    }
}

static bool matches(const uint8_t *p, size_t n, uint64_t seed)
{
    static uint8_t want[MAX_MSG > PAGE ? MAX_MSG : PAGE];

    fill(want, n, seed);
    return memcmp(p, want, n) == 0;
}

static uint8_t *page_at(struct inst *in, uint64_t page)
{
    return in->frames + page * PAGE;
}

static void on_up(void *ctx, int node)
{
    struct inst *in = ctx;

    cr_assert(node >= 0 && node < in->nnodes && node != in->self,
              "on_peer_up(%d) at node %d", node, in->self);
    in->up[node]++;
}

static void on_lost(void *ctx, int node, const char *reason)
{
    struct inst *in = ctx;

    cr_assert(node >= 0 && node < in->nnodes && node != in->self,
              "on_peer_lost(%d) at node %d", node, in->self);
    cr_assert_not_null(reason);
    in->lost[node]++;
    snprintf(in->reason[node], sizeof(in->reason[node]), "%s", reason);
}

/* A sequenced message: seq, seed and expected page, then fill(seed) bytes; its frame, if
 * any, holds fill(seed ^ FRAME_SALT) and must already be in place at delivery. */
static void check_seq(struct inst *in, int from, const uint8_t *msg, size_t len, uint64_t page)
{
    uint64_t seq, seed, want_page;

    if (len < SEQ_HDR) {
        in->body_bad++;
        return;
    }
    memcpy(&seq, msg, 8);
    memcpy(&seed, msg + 8, 8);
    memcpy(&want_page, msg + 16, 8);
    in->seq_bad += seq != in->next_seq[from];
    in->next_seq[from] = seq + 1;
    in->body_bad += !matches(msg + SEQ_HDR, len - SEQ_HDR, seed);
    in->page_bad += page != want_page;
    if (page != DSMT_NO_PAGE && page < in->npages)
        in->frame_bad += !matches(page_at(in, page), PAGE, seed ^ FRAME_SALT);
}

static void on_message(void *ctx, int node, const uint8_t *msg, size_t len, uint64_t page)
{
    struct inst *in = ctx;

    cr_assert(node >= 0 && node < in->nnodes && node != in->self,
              "message from %d at node %d", node, in->self);
    cr_assert(in->up[node] == 1 && in->lost[node] == 0, "message from node %d that is not up", node);
    cr_assert(len <= MAX_MSG);
    in->count[node]++;
    if (in->check)
        check_seq(in, node, msg, len, page);
    if (in->drop_on_msg)
        in->ops->drop(in->t, node, "test: dropped from on_message");
    if (!in->keep)
        return;
    if (in->nmsgs == in->cap) {
        in->cap = in->cap ? in->cap * 2 : 64;
        in->msgs = realloc(in->msgs, in->cap * sizeof(*in->msgs));
        cr_assert_not_null(in->msgs);
    }
    struct got *g = &in->msgs[in->nmsgs++];
    g->from = node;
    g->len = len;
    g->page = page;
    g->data = malloc(len ? len : 1);
    cr_assert_not_null(g->data);
    memcpy(g->data, msg, len);
}

/* The job secret of instances made from now on (each test runs in its own process). */
static uint8_t g_secret[DSMT_SECRET_LEN];

/* An instance listening on `addr`: node `self` of `nnodes`, zeroed frames of `npages` pages. */
static struct inst *inst_new_at(const struct dsmt_ops *ops, int self, int nnodes, uint64_t npages,
                                const char *addr)
{
    struct inst *in = calloc(1, sizeof(*in));
    struct dsmt_handler h = { .on_peer_up = on_up, .on_message = on_message, .on_peer_lost = on_lost };
    struct dsmt_config cfg = { .self = self, .nnodes = nnodes, .npages = npages,
                               .page_size = PAGE, .max_msg = MAX_MSG, .job_id = JOB };

    dsm_log_init("test_transport");
    cr_assert_not_null(in);
    in->frames = mmap(NULL, npages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert(in->frames != MAP_FAILED, "mmap: %s", strerror(errno));
    in->ops = ops;
    in->self = self;
    in->nnodes = nnodes;
    in->npages = npages;
    in->keep = true;
    h.ctx = in;
    cfg.frames = in->frames;
    memcpy(cfg.secret, g_secret, sizeof(cfg.secret));
    cr_assert_eq(ops->create(&cfg, &h, &in->t), 0, "create node %d", self);
    cr_assert_eq(ops->listen(in->t, addr, in->addr, sizeof(in->addr)), 0, "listen node %d", self);
    cr_assert(strncmp(in->addr, host, strlen(host)) == 0 && in->addr[strlen(host)] == ':' &&
              atoi(in->addr + strlen(host) + 1) > 0, "bound address '%s'", in->addr);
    return in;
}

/* The same on an ephemeral port of the test host. */
static struct inst *inst_new(const struct dsmt_ops *ops, int self, int nnodes, uint64_t npages)
{
    return inst_new_at(ops, self, nnodes, npages, host);
}

static void inst_destroy(struct inst *in)
{
    if (in->t != NULL)
        in->ops->destroy(in->t);
    in->t = NULL;
}

static void inst_free(struct inst *in)
{
    inst_destroy(in);
    for (size_t i = 0; i < in->nmsgs; i++)
        free(in->msgs[i].data);
    free(in->msgs);
    munmap(in->frames, in->npages * PAGE);
    free(in);
}

/* ---- driving ------------------------------------------------------------------------ */

/* Wait up to 20 ms for any live instance's event fd; progress the readable ones. */
static void drive_once(struct inst **v, int n)
{
    struct pollfd pf[MAXN];
    int r;

    for (int i = 0; i < n; i++)
        pf[i] = (struct pollfd){ .fd = v[i]->t ? v[i]->ops->event_fd(v[i]->t) : -1, .events = POLLIN };
    r = poll(pf, (nfds_t)n, 20);
    cr_assert(r >= 0 || errno == EINTR, "poll: %s", strerror(errno));
    for (int i = 0; i < n; i++)
        if (v[i]->t != NULL && (pf[i].revents & POLLIN))
            cr_assert_eq(v[i]->ops->progress(v[i]->t), 0, "progress at node %d", v[i]->self);
}

/* Drive until `cond` holds; fail the test after WAIT_MS. */
#define DRIVE_UNTIL(v, n, cond, ...)                                                       \
    do {                                                                                   \
        uint64_t end_ = now_ms() + WAIT_MS;                                                \
        while (!(cond)) {                                                                  \
            if (now_ms() > end_)                                                           \
                cr_assert_fail("timed out waiting for: " __VA_ARGS__);                     \
            drive_once(v, n);                                                              \
        }                                                                                  \
    } while (0)

/* Drive for `ms` whatever happens (to see that nothing more happens). */
static void drive_for(struct inst **v, int n, int ms)
{
    uint64_t end = now_ms() + (uint64_t)ms;

    while (now_ms() < end)
        drive_once(v, n);
}

static bool all_up(struct inst **v, int n)
{
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            if (i != j && v[i]->up[v[j]->self] != 1)
                return false;
    return true;
}

/* Connect every instance to those with lower ids and wait until all see each other. */
static void mesh(struct inst **v, int n)
{
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            if (v[j]->self < v[i]->self)
                cr_assert_eq(v[i]->ops->connect(v[i]->t, v[j]->self, v[j]->addr, WAIT_MS), 0,
                             "connect %d -> %d", v[i]->self, v[j]->self);
    DRIVE_UNTIL(v, n, all_up(v, n), "a full mesh of %d", n);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < MAXN; j++)
            cr_assert_eq(v[i]->lost[j], 0, "node %d lost %d during mesh set-up", v[i]->self, j);
}

/* Send sequenced message `seq` of `len` bytes, with frame `page` unless DSMT_NO_PAGE; then
 * scribble over the sender's frame, which must not change what arrives. */
static dsm_status_t send_seq(struct inst *s, int to, uint64_t seq, size_t len, uint64_t page)
{
    static uint8_t buf[MAX_MSG];
    uint64_t seed = seq * 1315423911u + (uint64_t)to * 7919u + (uint64_t)s->self;
    dsm_status_t st;

    cr_assert(len >= SEQ_HDR && len <= MAX_MSG);
    memcpy(buf, &seq, 8);
    memcpy(buf + 8, &seed, 8);
    memcpy(buf + 16, &page, 8);
    fill(buf + SEQ_HDR, len - SEQ_HDR, seed);
    if (page != DSMT_NO_PAGE)
        fill(page_at(s, page), PAGE, seed ^ FRAME_SALT);
    st = s->ops->send(s->t, to, buf, len, page);
    if (page != DSMT_NO_PAGE)
        memset(page_at(s, page), 0xee, PAGE);
    memset(buf, 0xdd, len);
    return st;
}

/* One keep-mode message each way between a and b, checked byte for byte. */
static void ping_pong(struct inst **v, int n, struct inst *a, struct inst *b)
{
    static const char ping[] = "ping", pong[] = "pong!";
    size_t na = a->nmsgs, nb = b->nmsgs;

    cr_assert_eq(a->ops->send(a->t, b->self, ping, sizeof(ping), DSMT_NO_PAGE), 0);
    cr_assert_eq(b->ops->send(b->t, a->self, pong, sizeof(pong), DSMT_NO_PAGE), 0);
    DRIVE_UNTIL(v, n, a->nmsgs > na && b->nmsgs > nb, "ping/pong between %d and %d", a->self, b->self);
    cr_assert_eq(b->msgs[nb].from, a->self);
    cr_assert_eq(b->msgs[nb].len, sizeof(ping));
    cr_assert(memcmp(b->msgs[nb].data, ping, sizeof(ping)) == 0);
    cr_assert_eq(a->msgs[na].from, b->self);
    cr_assert_eq(a->msgs[na].len, sizeof(pong));
    cr_assert(memcmp(a->msgs[na].data, pong, sizeof(pong)) == 0);
    cr_assert_eq(a->lost[b->self] + b->lost[a->self], 0, "established peers were disturbed");
}

/* A TCP port on 127.0.0.1 that nothing listens on (right now). */
static int free_port(void)
{
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    cr_assert(fd >= 0);
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    cr_assert_eq(close(fd), 0);
    return ntohs(sa.sin_port);
}

/* A listener of the transport's kind on the test host that never answers anybody; its address
 * goes to addr. With `bound_only`, it is only bound and closed again at once: the address is
 * then one nothing listens on (right now). Undo with silent_close(). */
struct silent {
    int fd;
#ifdef DSMT_HAVE_RDMA
    struct rdma_event_channel *ec;
    struct rdma_cm_id *id;
#endif
};

static struct silent silent_listener(const struct tparam *p, char *addr, size_t len, bool bound_only)
{
    struct silent s = { .fd = -1 };

#ifdef DSMT_HAVE_RDMA
    if (strcmp(p->name, "rdma") == 0) {
        struct sockaddr_in sa = { .sin_family = AF_INET };

        cr_assert_eq(inet_pton(AF_INET, host, &sa.sin_addr), 1);
        s.ec = rdma_create_event_channel();
        cr_assert_not_null(s.ec, "rdma_create_event_channel: %s", strerror(errno));
        cr_assert_eq(rdma_create_id(s.ec, &s.id, NULL, RDMA_PS_TCP), 0, "rdma_create_id: %s", strerror(errno));
        cr_assert_eq(rdma_bind_addr(s.id, (struct sockaddr *)&sa), 0, "rdma_bind_addr: %s", strerror(errno));
        snprintf(addr, len, "%s:%d", host, ntohs(rdma_get_src_port(s.id)));
        if (bound_only) {
            cr_assert_eq(rdma_destroy_id(s.id), 0);
            rdma_destroy_event_channel(s.ec);
            s.ec = NULL;
        } else {
            cr_assert_eq(rdma_listen(s.id, 4), 0, "rdma_listen: %s", strerror(errno));
        }
        return s;
    }
#endif
    cr_assert_str_eq(p->name, "tcp");
    if (bound_only) {
        snprintf(addr, len, "127.0.0.1:%d", free_port());
        return s;
    }
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t sl = sizeof(sa);

    s.fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(s.fd >= 0);
    cr_assert_eq(bind(s.fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    cr_assert_eq(listen(s.fd, 4), 0);
    cr_assert_eq(getsockname(s.fd, (struct sockaddr *)&sa, &sl), 0);
    snprintf(addr, len, "127.0.0.1:%d", ntohs(sa.sin_port));
    return s;
}

static void silent_close(struct silent *s)
{
    if (s->fd >= 0)
        cr_assert_eq(close(s->fd), 0);
#ifdef DSMT_HAVE_RDMA
    if (s->ec != NULL) {
        cr_assert_eq(rdma_destroy_id(s->id), 0);
        rdma_destroy_event_channel(s->ec);
    }
#endif
}

/* ---- transport: connection set-up -------------------------------------------------- */

TRANSPORT_TEST(mesh_two)
{
    const struct dsmt_ops *ops = use(p);
    struct inst *v[2] = { inst_new(ops, 0, 2, NPAGES), inst_new(ops, 1, 2, NPAGES) };

    mesh(v, 2);
    drive_for(v, 2, 100);
    cr_assert_eq(v[0]->up[1], 1, "node 0 saw node 1 up %d times", v[0]->up[1]);
    cr_assert_eq(v[1]->up[0], 1, "node 1 saw node 0 up %d times", v[1]->up[0]);
    cr_assert_eq(v[0]->nmsgs + v[1]->nmsgs, 0, "messages out of nowhere");
    ping_pong(v, 2, v[0], v[1]);
    cr_assert_eq(ops->backlog(v[0]->t) + ops->backlog(v[1]->t), 0);
    inst_free(v[0]);
    inst_free(v[1]);
}

TRANSPORT_TEST(mesh_three)
{
    const struct dsmt_ops *ops = use(p);
    struct inst *v[3];
    char text[64];

    for (int i = 0; i < 3; i++)
        v[i] = inst_new(ops, i, 3, NPAGES);
    mesh(v, 3);
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            if (i != j) {
                int n = snprintf(text, sizeof(text), "from %d to %d", i, j);
                cr_assert_eq(ops->send(v[i]->t, j, text, (size_t)n, DSMT_NO_PAGE), 0);
            }
    DRIVE_UNTIL(v, 3, v[0]->nmsgs == 2 && v[1]->nmsgs == 2 && v[2]->nmsgs == 2, "6 messages");
    for (int j = 0; j < 3; j++)
        for (size_t k = 0; k < 2; k++) {
            struct got *g = &v[j]->msgs[k];
            int n = snprintf(text, sizeof(text), "from %d to %d", g->from, j);
            cr_assert(g->len == (size_t)n && memcmp(g->data, text, g->len) == 0, "node %d got '%.*s'",
                      j, (int)g->len, (char *)g->data);
        }
    cr_assert(v[0]->msgs[0].from != v[0]->msgs[1].from, "node 0 got both messages from one sender");
    for (int i = 0; i < 3; i++)
        inst_free(v[i]);
}

/* Connecting to a port nobody listens on: an error, or on_peer_lost once the timeout ran out. */
TRANSPORT_TEST(connect_refused)
{
    const struct dsmt_ops *ops = use(p);
    struct inst *v[1] = { inst_new(ops, 1, 2, NPAGES) };
    char addr[128];
    uint64_t t0 = now_ms();

    silent_listener(p, addr, sizeof(addr), true);
    if (ops->connect(v[0]->t, 0, addr, 300) == 0) {
        DRIVE_UNTIL(v, 1, v[0]->lost[0] == 1, "on_peer_lost for an unreachable peer");
        cr_assert_geq(now_ms() - t0, 250, "gave up after %llu ms of a 300 ms timeout",
                      (unsigned long long)(now_ms() - t0));
        cr_assert(strlen(v[0]->reason[0]) > 0);
    }
    drive_for(v, 1, 100);
    cr_assert_eq(v[0]->up[0], 0);
    cr_assert_leq(v[0]->lost[0], 1);
    cr_assert_neq(ops->send(v[0]->t, 0, "x", 1, DSMT_NO_PAGE), 0, "send to a peer that never came up");
    inst_free(v[0]);
}

/* A peer that starts listening after we began connecting is still reached (refusals retried). */
TRANSPORT_TEST(connect_retry)
{
    const struct dsmt_ops *ops = use(p);
    struct inst *v[2];
    char addr[128];

    v[1] = inst_new(ops, 1, 2, NPAGES);
    silent_listener(p, addr, sizeof(addr), true);
    cr_assert_eq(ops->connect(v[1]->t, 0, addr, WAIT_MS), 0);
    drive_for(&v[1], 1, 250);
    cr_assert_eq(v[1]->lost[0] + v[1]->up[0], 0);

    /* node 0 comes up late, on that very port */
    v[0] = inst_new_at(ops, 0, 2, NPAGES, addr);
    cr_assert_str_eq(v[0]->addr, addr);
    DRIVE_UNTIL(v, 2, v[0]->up[1] == 1 && v[1]->up[0] == 1, "the late peer to come up");
    ping_pong(v, 2, v[0], v[1]);
    inst_free(v[0]);
    inst_free(v[1]);
}

/* A listener that never answers (accepts nothing): on_peer_lost after the timeout. */
TRANSPORT_TEST(connect_silent)
{
    const struct dsmt_ops *ops = use(p);
    struct inst *v[1] = { inst_new(ops, 1, 2, NPAGES) };
    char addr[128];
    struct silent s = silent_listener(p, addr, sizeof(addr), false);

    if (ops->connect(v[0]->t, 0, addr, 300) == 0)
        DRIVE_UNTIL(v, 1, v[0]->lost[0] == 1, "on_peer_lost for a peer that never says hello");
    cr_assert_eq(v[0]->up[0], 0);
    silent_close(&s);
    inst_free(v[0]);
}

TRANSPORT_TEST(api_errors)
{
    const struct dsmt_ops *ops = use(p);
    struct inst *v[3] = { inst_new(ops, 0, 3, NPAGES), inst_new(ops, 1, 3, NPAGES),
                          inst_new(ops, 2, 3, NPAGES) };
    static uint8_t big[MAX_MSG + 1];

    mesh(v, 2); /* node 2 stays unconnected */
    cr_assert_eq(ops->send(v[0]->t, 0, "x", 1, DSMT_NO_PAGE), DSM_EINVAL, "send to self");
    cr_assert_eq(ops->send(v[0]->t, 3, "x", 1, DSMT_NO_PAGE), DSM_EINVAL, "send beyond nnodes");
    cr_assert_eq(ops->send(v[0]->t, -1, "x", 1, DSMT_NO_PAGE), DSM_EINVAL, "send to -1");
    cr_assert_eq(ops->send(v[0]->t, 1, big, sizeof(big), DSMT_NO_PAGE), DSM_EINVAL, "len > max_msg");
    cr_assert_eq(ops->send(v[0]->t, 1, "x", 1, NPAGES), DSM_EINVAL, "page == npages");
    cr_assert_neq(ops->send(v[0]->t, 2, "x", 1, DSMT_NO_PAGE), 0, "send to a peer never connected");
    drive_for(v, 3, 100);
    cr_assert_eq(v[1]->nmsgs, 0, "a refused send arrived");
    ping_pong(v, 2, v[0], v[1]);
    for (int i = 0; i < 3; i++)
        inst_free(v[i]);
}

/* ---- transport: data ---------------------------------------------------------------- */

/* Every size class, without and with a frame, both ways: intact and in order. */
TRANSPORT_TEST(size_classes)
{
    static const size_t sizes[] = { 0, 1, 63, 64, 4095, 4096, MAX_MSG };
    const size_t ns = sizeof(sizes) / sizeof(sizes[0]);
    static uint8_t buf[MAX_MSG];
    const struct dsmt_ops *ops = use(p);
    struct inst *v[2] = { inst_new(ops, 0, 2, NPAGES), inst_new(ops, 1, 2, NPAGES) };

    mesh(v, 2);
    for (size_t k = 0; k < 2 * ns; k++)
        for (int s = 0; s < 2; s++) {
            uint64_t page = k < ns ? DSMT_NO_PAGE : (uint64_t)(k - ns) * 3 + (uint64_t)s;
            fill(buf, sizes[k % ns], k * 31 + (uint64_t)s);
            if (page != DSMT_NO_PAGE)
                fill(page_at(v[s], page), PAGE, ~(k * 31 + (uint64_t)s));
            cr_assert_eq(ops->send(v[s]->t, 1 - s, buf, sizes[k % ns], page), 0,
                         "send %zu bytes from %d", sizes[k % ns], s);
        }
    DRIVE_UNTIL(v, 2, v[0]->nmsgs == 2 * ns && v[1]->nmsgs == 2 * ns, "%zu messages each way", 2 * ns);
    for (int r = 0; r < 2; r++)
        for (size_t k = 0; k < 2 * ns; k++) {
            struct got *g = &v[r]->msgs[k];
            uint64_t seed = k * 31 + (uint64_t)(1 - r);
            uint64_t page = k < ns ? DSMT_NO_PAGE : (uint64_t)(k - ns) * 3 + (uint64_t)(1 - r);
            cr_assert_eq(g->len, sizes[k % ns], "message %zu at node %d: %zu bytes", k, r, g->len);
            cr_assert(matches(g->data, g->len, seed), "message %zu at node %d corrupted", k, r);
            cr_assert_eq(g->page, page, "message %zu at node %d: page %llu", k, r,
                         (unsigned long long)g->page);
            if (page != DSMT_NO_PAGE)
                cr_assert(matches(page_at(v[r], page), PAGE, ~seed), "frame %llu at node %d",
                          (unsigned long long)page, r);
        }
    inst_free(v[0]);
    inst_free(v[1]);
}

/* Fill the path to `to` until the transport holds bytes back (or give up after max). */
static uint64_t fill_pipe(struct inst *s, int to, uint64_t seq, uint64_t max)
{
    for (; s->ops->backlog(s->t) == 0 && seq < max; seq++)
        cr_assert_eq(send_seq(s, to, seq, MAX_MSG, DSMT_NO_PAGE), 0);
    return seq;
}

/* Frames land byte for byte in the same page, nothing else changes, and what arrives is what
 * the frame held at send() - both when the bytes go out at once and when they are queued. */
TRANSPORT_TEST(frames)
{
    static const uint64_t pages[] = { 0, 1, 31, NPAGES - 1 };
    static const uint64_t queued_pages[] = { 2, 40 };
    const struct dsmt_ops *ops = use(p);
    struct inst *v[2] = { inst_new(ops, 0, 2, NPAGES), inst_new(ops, 1, 2, NPAGES) };
    uint64_t seq = 0;
    bool sent[NPAGES] = { false };

    for (uint64_t pg = 0; pg < NPAGES; pg++)
        fill(page_at(v[1], pg), PAGE, 0xb0b0 + pg);
    v[1]->check = true;
    v[1]->keep = false;
    mesh(v, 2);
    for (size_t i = 0; i < sizeof(pages) / sizeof(pages[0]); i++, seq++) {
        cr_assert_eq(send_seq(v[0], 1, seq, 100 + i, pages[i]), 0);
        sent[pages[i]] = true;
    }
    seq = fill_pipe(v[0], 1, seq, 100000);
    cr_assert_gt(ops->backlog(v[0]->t), 0, "could not fill the path to the peer");
    for (size_t i = 0; i < sizeof(queued_pages) / sizeof(queued_pages[0]); i++, seq++) {
        cr_assert_eq(send_seq(v[0], 1, seq, SEQ_HDR, queued_pages[i]), 0);
        sent[queued_pages[i]] = true;
    }
    DRIVE_UNTIL(v, 2, v[1]->count[0] == seq, "%llu messages", (unsigned long long)seq);
    cr_assert_eq(v[1]->seq_bad + v[1]->body_bad + v[1]->page_bad, 0, "order/body/page errors");
    cr_assert_eq(v[1]->frame_bad, 0, "%zu frames differed at delivery", v[1]->frame_bad);
    for (uint64_t pg = 0; pg < NPAGES; pg++)
        if (!sent[pg])
            cr_assert(matches(page_at(v[1], pg), PAGE, 0xb0b0 + pg), "page %llu changed",
                      (unsigned long long)pg);
    cr_assert_eq(ops->backlog(v[0]->t), 0);
    inst_free(v[0]);
    inst_free(v[1]);
}

/* Both sides flood each other without progressing, then progress: all arrive, in order. */
TRANSPORT_TEST(burst)
{
    enum { BURST = 20000, BURST_MAX = 200000 };
    const struct dsmt_ops *ops = use(p);
    struct inst *v[2] = { inst_new(ops, 0, 2, BIG_NPAGES), inst_new(ops, 1, 2, BIG_NPAGES) };
    uint64_t n = 0;

    mesh(v, 2);
    for (int i = 0; i < 2; i++) {
        v[i]->check = true;
        v[i]->keep = false;
    }
    while (n < BURST || ((ops->backlog(v[0]->t) == 0 || ops->backlog(v[1]->t) == 0) && n < BURST_MAX)) {
        /* each direction its own pages: with RDMA a frame lands while the receiver still
         * writes its own pages here (dsmt.h: a receiver must not write a page it receives) */
        for (int s = 0; s < 2; s++) {
            uint64_t page = n % 7 == 0 ? (2 * (n / 7) + (uint64_t)s) % BIG_NPAGES : DSMT_NO_PAGE;
            cr_assert_eq(send_seq(v[s], 1 - s, n, SEQ_HDR + (n * 37) % 600, page), 0, "send %llu",
                         (unsigned long long)n);
        }
        n++;
    }
    cr_assert(ops->backlog(v[0]->t) > 0 && ops->backlog(v[1]->t) > 0, "the burst never backed up");
    DRIVE_UNTIL(v, 2, v[0]->count[1] == n && v[1]->count[0] == n, "%llu messages each way (got %zu, %zu)",
                (unsigned long long)n, v[0]->count[1], v[1]->count[0]);
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(v[i]->seq_bad, 0, "node %d: %zu out of order", i, v[i]->seq_bad);
        cr_assert_eq(v[i]->body_bad + v[i]->page_bad, 0, "node %d: corrupted messages", i);
        cr_assert_eq(v[i]->frame_bad, 0, "node %d: %zu bad frames", i, v[i]->frame_bad);
        cr_assert_eq(ops->backlog(v[i]->t), 0);
    }
    drive_for(v, 2, 50);
    cr_assert(v[0]->count[1] == n && v[1]->count[0] == n, "extra messages");
    inst_free(v[0]);
    inst_free(v[1]);
}

/* ---- transport: peers vanishing ----------------------------------------------------- */

static void expect_lost_once(struct inst **v, int n, struct inst *in, int node)
{
    DRIVE_UNTIL(v, n, in->lost[node] >= 1, "node %d to see node %d lost", in->self, node);
    drive_for(v, n, 200);
    cr_assert_eq(in->lost[node], 1, "node %d saw node %d lost %d times", in->self, node, in->lost[node]);
    cr_assert(strlen(in->reason[node]) > 0, "empty reason");
    cr_assert_eq(in->ops->send(in->t, node, "x", 1, DSMT_NO_PAGE), DSM_EPEER);
    cr_assert_eq(in->ops->send(in->t, node, "x", 1, 0), DSM_EPEER);
}

/* The sender dies with data queued: the receiver sees it lost once, gets an in-order prefix. */
TRANSPORT_TEST(vanish_sender)
{
    const struct dsmt_ops *ops = use(p);
    struct inst *v[3];
    uint64_t sent;

    for (int i = 0; i < 3; i++)
        v[i] = inst_new(ops, i, 3, NPAGES);
    mesh(v, 3);
    v[0]->check = true;
    v[0]->keep = false;
    sent = fill_pipe(v[2], 0, 0, 100000);
    cr_assert_gt(ops->backlog(v[2]->t), 0);
    inst_destroy(v[2]);
    expect_lost_once(v, 2, v[0], 2);
    cr_assert_leq(v[0]->count[2], sent);
    cr_assert_eq(v[0]->seq_bad + v[0]->body_bad, 0, "the prefix was damaged");
    expect_lost_once(v, 2, v[1], 2);
    v[0]->keep = true;
    ping_pong(v, 2, v[0], v[1]);
    for (int i = 0; i < 3; i++)
        inst_free(v[i]);
}

/* The receiver dies while we have data queued for it: lost once, the queue is dropped. */
TRANSPORT_TEST(vanish_receiver)
{
    const struct dsmt_ops *ops = use(p);
    struct inst *v[3];

    for (int i = 0; i < 3; i++)
        v[i] = inst_new(ops, i, 3, NPAGES);
    mesh(v, 3);
    fill_pipe(v[0], 2, 0, 100000);
    cr_assert_gt(ops->backlog(v[0]->t), 0);
    inst_destroy(v[2]);
    expect_lost_once(v, 2, v[0], 2);
    cr_assert_eq(ops->backlog(v[0]->t), 0, "bytes for a lost peer still counted");
    expect_lost_once(v, 2, v[1], 2);
    ping_pong(v, 2, v[0], v[1]);
    for (int i = 0; i < 3; i++)
        inst_free(v[i]);
}

/* drop(): the peer is lost once with the daemon's reason, both ends; from outside a
 * callback and from inside on_message (nothing after the offending message is delivered). */
TRANSPORT_TEST(drop)
{
    const struct dsmt_ops *ops = use(p);
    struct inst *v[3];

    for (int i = 0; i < 3; i++)
        v[i] = inst_new(ops, i, 3, NPAGES);
    mesh(v, 3);
    ops->drop(v[0]->t, 2, "test: dropped by node 0");
    expect_lost_once(v, 3, v[0], 2);
    cr_assert_str_eq(v[0]->reason[2], "test: dropped by node 0");
    expect_lost_once(v, 3, v[2], 0);

    v[0]->drop_on_msg = true;
    for (int k = 0; k < 3; k++)
        cr_assert_eq(ops->send(v[1]->t, 0, "bad", 3, k == 1 ? 4 : DSMT_NO_PAGE), 0);
    expect_lost_once(v, 3, v[0], 1);
    cr_assert_str_eq(v[0]->reason[1], "test: dropped from on_message");
    cr_assert_eq(v[0]->count[1], 1, "%zu messages delivered after the drop", v[0]->count[1] - 1);
    expect_lost_once(v, 3, v[1], 0);
    ops->drop(v[0]->t, 1, "again"); /* a lost peer: nothing more happens */
    drive_for(v, 3, 50);
    cr_assert_eq(v[0]->lost[1], 1);

    struct inst *w[2] = { v[1], v[2] };
    ping_pong(w, 2, v[1], v[2]);
    for (int i = 0; i < 3; i++)
        inst_free(v[i]);
}

/* ---- tcp_input: raw byte streams against a TCP instance ----------------------------- */

/*
 * Fixture: a 4-node job geometry; A is node 1 (listening, frames pre-filled), B is node 2
 * and connected to A. A raw socket plays node 3 (or an impostor).
 */
struct fx {
    struct inst *v[2]; /* A, B */
};

static void fx_up_with(struct fx *f, const struct dsmt_ops *ops)
{
    f->v[0] = inst_new(ops, 1, 4, NPAGES);
    f->v[1] = inst_new(ops, 2, 4, NPAGES);
    for (uint64_t pg = 0; pg < NPAGES; pg++)
        fill(page_at(f->v[0], pg), PAGE, 0xa0a0 + pg);
    mesh(f->v, 2);
}

static void fx_up(struct fx *f)
{
    fx_up_with(f, &dsmt_tcp_ops);
}

static void fx_down(struct fx *f)
{
    inst_free(f->v[0]);
    inst_free(f->v[1]);
}

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

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const uint8_t *p)
{
    return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

struct hello {
    uint32_t magic, version, node, nnodes;
    uint64_t job, page_size, npages, max_msg;
};

static struct hello good_hello(uint32_t node)
{
    return (struct hello){ DSMT_TCP_MAGIC, DSMT_TCP_VERSION, node, 4, JOB, PAGE, NPAGES, MAX_MSG };
}

/* The nonce every raw hello of these tests carries. */
static const uint8_t RAW_NONCE[DSMT_TCP_NONCE_LEN] = "raw-peer-nonce!";

/* The proof `node` owes for `nonce` under `secret`, as tcp_wire.h documents it. */
static void raw_proof(const uint8_t *secret, const uint8_t *nonce, uint32_t node, uint8_t *out)
{
    uint8_t m[DSMT_TCP_NONCE_LEN + 12];

    memcpy(m, nonce, DSMT_TCP_NONCE_LEN);
    for (int i = 0; i < 4; i++)
        m[DSMT_TCP_NONCE_LEN + i] = (uint8_t)(node >> (8 * i));
    for (int i = 0; i < 8; i++)
        m[DSMT_TCP_NONCE_LEN + 4 + i] = (uint8_t)(JOB >> (8 * i));
    dsmt_hmac_sha256(secret, DSMT_SECRET_LEN, m, sizeof(m), out);
}

/* The 64 hello bytes, laid out as tcp_wire.h documents, with RAW_NONCE. */
static void hello_bytes(uint8_t *b, const struct hello *h)
{
    memset(b, 0, DSMT_TCP_HELLO_LEN);
    memcpy(b + 48, RAW_NONCE, DSMT_TCP_NONCE_LEN);
    put32(b + 0, h->magic);
    b[4] = (uint8_t)h->version;
    b[5] = (uint8_t)(h->version >> 8);
    put32(b + 8, h->node);
    put32(b + 12, h->nnodes);
    put64(b + 16, h->job);
    put64(b + 24, h->page_size);
    put64(b + 32, h->npages);
    put64(b + 40, h->max_msg);
}

static void header_bytes(uint8_t *b, uint32_t len, uint32_t flags, uint64_t page)
{
    put32(b + 0, len);
    put32(b + 4, flags);
    put64(b + 8, page);
}

static int raw_connect(const char *addr)
{
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    const char *colon = strrchr(addr, ':');
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    cr_assert(fd >= 0 && colon != NULL);
    sa.sin_port = htons((uint16_t)atoi(colon + 1));
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0, "raw connect: %s", strerror(errno));
    return fd;
}

static void raw_send(int fd, const void *b, size_t n)
{
    cr_assert_eq(send(fd, b, n, MSG_NOSIGNAL), (ssize_t)n, "raw send: %s", strerror(errno));
}

/* Drive until `want` bytes came from the raw socket (or, with want == 0, until A closed it:
 * EOF or reset). Returns how many bytes were read into buf. */
static size_t raw_read(struct fx *f, int fd, uint8_t *buf, size_t cap, size_t want)
{
    uint64_t end = now_ms() + WAIT_MS;
    uint8_t scratch[4096];
    size_t got = 0;

    for (;;) {
        ssize_t r = recv(fd, scratch, sizeof(scratch), MSG_DONTWAIT);
        if (r > 0) {
            size_t keep = got + (size_t)r <= cap ? (size_t)r : cap - got;
            memcpy(buf + got, scratch, keep);
            got += keep;
            if (want > 0 && got >= want)
                return got;
            continue;
        }
        if (r == 0 || (r < 0 && errno == ECONNRESET)) {
            cr_assert_eq(want, 0, "raw socket closed after %zu of %zu bytes", got, want);
            return got;
        }
        cr_assert(errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR, "raw recv: %s", strerror(errno));
        if (now_ms() > end)
            cr_assert_fail("timed out waiting for the raw socket to %s", want ? "receive" : "be closed");
        drive_once(f->v, 2);
    }
}

/* Send `bytes` on a fresh raw connection to A and expect it dropped without a peer coming up;
 * then A and B must still talk. */
static void expect_refused(struct fx *f, const void *bytes, size_t n, const char *what)
{
    uint8_t buf[256];
    int fd = raw_connect(f->v[0]->addr);
    int ups = f->v[0]->up[0] + f->v[0]->up[2] + f->v[0]->up[3];
    int losts = f->v[0]->lost[0] + f->v[0]->lost[2] + f->v[0]->lost[3];

    raw_send(fd, bytes, n);
    size_t got = raw_read(f, fd, buf, sizeof(buf), 0);
    cr_assert_eq(got, 0, "%s: A answered %zu bytes", what, got);
    cr_assert_eq(close(fd), 0);
    cr_assert_eq(f->v[0]->up[0] + f->v[0]->up[2] + f->v[0]->up[3], ups, "%s: a peer came up", what);
    cr_assert_eq(f->v[0]->lost[0] + f->v[0]->lost[2] + f->v[0]->lost[3], losts, "%s: a peer was lost", what);
    ping_pong(f->v, 2, f->v[0], f->v[1]);
}

/* A raw connection that sent a valid hello as node 3 and read A's answer into b (64 bytes). */
static int raw_hello(struct fx *f, uint8_t *b)
{
    struct hello h = good_hello(3);
    int fd = raw_connect(f->v[0]->addr);

    hello_bytes(b, &h);
    raw_send(fd, b, DSMT_TCP_HELLO_LEN);
    cr_assert_eq(raw_read(f, fd, b, DSMT_TCP_HELLO_LEN, DSMT_TCP_HELLO_LEN), DSMT_TCP_HELLO_LEN);
    return fd;
}

/* A raw connection that completed a valid hello and proof as node 3; checks A's answers. */
static int raw_peer(struct fx *f)
{
    uint8_t b[DSMT_TCP_HELLO_LEN], proof[DSMT_TCP_PROOF_LEN];
    int fd = raw_hello(f, b);

    cr_assert_eq(f->v[0]->up[3], 0, "A counted node 3 up before its proof");
    raw_proof(g_secret, b + 48, 3, proof);
    raw_send(fd, proof, sizeof(proof));
    cr_assert_eq(raw_read(f, fd, proof, sizeof(proof), sizeof(proof)), sizeof(proof));
    uint8_t want[DSMT_TCP_PROOF_LEN];
    raw_proof(g_secret, RAW_NONCE, 1, want);
    cr_assert(memcmp(proof, want, sizeof(want)) == 0, "A's proof over our nonce");
    cr_assert_eq(get32(b + 0), DSMT_TCP_MAGIC);
    cr_assert_eq(get32(b + 4), DSMT_TCP_VERSION, "version and reserved");
    cr_assert_eq(get32(b + 8), 1u, "answer from node %u", get32(b + 8));
    cr_assert_eq(get32(b + 12), 4u);
    cr_assert_eq(get64(b + 16), JOB);
    cr_assert_eq(get64(b + 24), PAGE);
    cr_assert_eq(get64(b + 32), NPAGES);
    cr_assert_eq(get64(b + 40), MAX_MSG);
    DRIVE_UNTIL(f->v, 2, f->v[0]->up[3] == 1, "A to see node 3 up");
    return fd;
}

/* Send `bytes` as the established raw peer node 3 (then end the stream if `eof`) and expect
 * A to drop it: lost once, nothing delivered, frames untouched, B unaffected. */
static void expect_violation(struct fx *f, const void *bytes, size_t n, bool eof, const char *what)
{
    uint8_t buf[256];
    int fd = raw_peer(f);

    raw_send(fd, bytes, n);
    if (eof)
        cr_assert_eq(shutdown(fd, SHUT_WR), 0);
    raw_read(f, fd, buf, sizeof(buf), 0);
    cr_assert_eq(close(fd), 0);
    expect_lost_once(f->v, 2, f->v[0], 3);
    cr_assert_eq(f->v[0]->count[3], 0, "%s: a message from the violator was delivered", what);
    for (uint64_t pg = 0; pg < NPAGES; pg++)
        cr_assert(matches(page_at(f->v[0], pg), PAGE, 0xa0a0 + pg), "%s: page %llu changed", what,
                  (unsigned long long)pg);
    ping_pong(f->v, 2, f->v[0], f->v[1]);
}

TCP_INPUT_TEST(garbage)
{
    struct fx f;
    uint8_t junk[200];

    fx_up(&f);
    fill(junk, sizeof(junk), 42);
    junk[0] = 'G'; /* not the magic */
    expect_refused(&f, junk, sizeof(junk), "garbage");
    expect_refused(&f, "GET / HTTP/1.0\r\n\r\n", 18, "http");
    fx_down(&f);
}

TCP_INPUT_TEST(truncated_hello)
{
    struct fx f;
    uint8_t b[DSMT_TCP_HELLO_LEN];
    struct hello h = good_hello(3);
    int fd;

    fx_up(&f);
    hello_bytes(b, &h);
    fd = raw_connect(f.v[0]->addr);
    raw_send(fd, b, 20);
    cr_assert_eq(shutdown(fd, SHUT_WR), 0);
    cr_assert_eq(raw_read(&f, fd, b, sizeof(b), 0), 0);
    cr_assert_eq(close(fd), 0);
    cr_assert_eq(f.v[0]->up[3] + f.v[0]->lost[3], 0);
    ping_pong(f.v, 2, f.v[0], f.v[1]);
    fx_down(&f);
}

TCP_INPUT_TEST(bad_hello)
{
    struct fx f;
    uint8_t b[DSMT_TCP_HELLO_LEN];
    struct hello h;

    fx_up(&f);
    h = good_hello(3), h.magic ^= 1;
    hello_bytes(b, &h);
    expect_refused(&f, b, sizeof(b), "bad magic");
    h = good_hello(3), h.version = DSMT_TCP_VERSION - 1; /* 1: no nonces, no proofs */
    hello_bytes(b, &h);
    expect_refused(&f, b, sizeof(b), "old version");
    h = good_hello(3), h.version = DSMT_TCP_VERSION + 1;
    hello_bytes(b, &h);
    expect_refused(&f, b, sizeof(b), "bad version");
    h = good_hello(3);
    hello_bytes(b, &h);
    b[DSMT_TCP_H_RESERVED] = 1;
    expect_refused(&f, b, sizeof(b), "reserved bits set");
    fx_down(&f);
}

TCP_INPUT_TEST(wrong_job)
{
    struct fx f;
    uint8_t b[DSMT_TCP_HELLO_LEN];
    struct hello h = good_hello(3);

    fx_up(&f);
    h.job = JOB + 1;
    hello_bytes(b, &h);
    expect_refused(&f, b, sizeof(b), "wrong job id");
    fx_down(&f);
}

TCP_INPUT_TEST(wrong_geometry)
{
    struct fx f;
    uint8_t b[DSMT_TCP_HELLO_LEN];
    struct hello h;

    fx_up(&f);
    h = good_hello(3), h.nnodes = 5;
    hello_bytes(b, &h);
    expect_refused(&f, b, sizeof(b), "nnodes");
    h = good_hello(3), h.page_size = 2 * PAGE;
    hello_bytes(b, &h);
    expect_refused(&f, b, sizeof(b), "page size");
    h = good_hello(3), h.npages = NPAGES - 1;
    hello_bytes(b, &h);
    expect_refused(&f, b, sizeof(b), "npages");
    h = good_hello(3), h.max_msg = MAX_MSG * 2;
    hello_bytes(b, &h);
    expect_refused(&f, b, sizeof(b), "max_msg");
    fx_down(&f);
}

/* Lower than A (A would connect to it), A itself, B again (duplicate), out of range. */
TCP_INPUT_TEST(bad_node_ids)
{
    static const uint32_t ids[] = { 0, 1, 2, 4, 0xffffffffu };
    struct fx f;
    uint8_t b[DSMT_TCP_HELLO_LEN];
    char what[32];

    fx_up(&f);
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        struct hello h = good_hello(ids[i]);
        hello_bytes(b, &h);
        snprintf(what, sizeof(what), "node id %u", ids[i]);
        expect_refused(&f, b, sizeof(b), what);
    }
    cr_assert_eq(f.v[0]->up[2], 1);
    cr_assert_eq(f.v[1]->up[1], 1);
    fx_down(&f);
}

TCP_INPUT_TEST(oversized_length)
{
    struct fx f;
    uint8_t hdr[DSMT_TCP_HDR_LEN];

    fx_up(&f);
    header_bytes(hdr, MAX_MSG + 1, 0, DSMT_NO_PAGE);
    expect_violation(&f, hdr, sizeof(hdr), false, "oversized length");
    cr_assert(strstr(f.v[0]->reason[3], "max_msg") != NULL, "reason: %s", f.v[0]->reason[3]);
    fx_down(&f);
}

TCP_INPUT_TEST(frame_beyond_npages)
{
    struct fx f;
    uint8_t b[DSMT_TCP_HDR_LEN + 8 + PAGE];

    fx_up(&f);
    header_bytes(b, 8, DSMT_TCP_F_FRAME, NPAGES);
    memset(b + DSMT_TCP_HDR_LEN, 0x77, sizeof(b) - DSMT_TCP_HDR_LEN);
    expect_violation(&f, b, sizeof(b), false, "page == npages");
    fx_down(&f);
    fx_up(&f);
    header_bytes(b, 8, DSMT_TCP_F_FRAME, UINT64_MAX - 1);
    expect_violation(&f, b, sizeof(b), false, "huge page number");
    fx_down(&f);
}

TCP_INPUT_TEST(bad_flags)
{
    struct fx f;
    uint8_t hdr[DSMT_TCP_HDR_LEN];

    fx_up(&f);
    header_bytes(hdr, 0, 0x2, DSMT_NO_PAGE);
    expect_violation(&f, hdr, sizeof(hdr), false, "unknown flag");
    fx_down(&f);
    fx_up(&f);
    header_bytes(hdr, 0, 0, 5);
    expect_violation(&f, hdr, sizeof(hdr), false, "page without a frame");
    fx_down(&f);
}

TCP_INPUT_TEST(eof_mid_message)
{
    struct fx f;
    uint8_t b[DSMT_TCP_HDR_LEN + 50];

    fx_up(&f);
    header_bytes(b, 100, 0, DSMT_NO_PAGE);
    memset(b + DSMT_TCP_HDR_LEN, 1, 50);
    expect_violation(&f, b, sizeof(b), true, "eof mid-message");
    fx_down(&f);
}

/* The documented layout works both ways; a lost node may not come back. */
TCP_INPUT_TEST(raw_peer_roundtrip)
{
    struct fx f;
    uint8_t b[DSMT_TCP_HDR_LEN + 5 + PAGE];
    uint8_t hb[DSMT_TCP_HELLO_LEN];
    struct hello h = good_hello(3);
    int fd;

    fx_up(&f);
    fd = raw_peer(&f);
    header_bytes(b, 5, DSMT_TCP_F_FRAME, 7);
    memcpy(b + DSMT_TCP_HDR_LEN, "hello", 5);
    fill(b + DSMT_TCP_HDR_LEN + 5, PAGE, 77);
    raw_send(fd, b, sizeof(b));
    header_bytes(b, 0, 0, DSMT_NO_PAGE);
    raw_send(fd, b, DSMT_TCP_HDR_LEN);
    DRIVE_UNTIL(f.v, 2, f.v[0]->count[3] == 2, "two messages from the raw peer");
    struct got *g = &f.v[0]->msgs[f.v[0]->nmsgs - 2];
    cr_assert(g->from == 3 && g->len == 5 && memcmp(g->data, "hello", 5) == 0 && g->page == 7);
    cr_assert(matches(page_at(f.v[0], 7), PAGE, 77), "frame 7 not in place");
    cr_assert(g[1].len == 0 && g[1].page == DSMT_NO_PAGE);

    fill(page_at(f.v[0], 9), PAGE, 99);
    cr_assert_eq(dsmt_tcp_ops.send(f.v[0]->t, 3, "abc", 3, 9), 0);
    cr_assert_eq(raw_read(&f, fd, b, sizeof(b), DSMT_TCP_HDR_LEN + 3 + PAGE), DSMT_TCP_HDR_LEN + 3 + PAGE);
    cr_assert_eq(get32(b), 3u);
    cr_assert_eq(get32(b + 4), DSMT_TCP_F_FRAME);
    cr_assert_eq(get64(b + 8), 9u);
    cr_assert(memcmp(b + DSMT_TCP_HDR_LEN, "abc", 3) == 0);
    cr_assert(matches(b + DSMT_TCP_HDR_LEN + 3, PAGE, 99), "frame bytes on the wire");

    cr_assert_eq(close(fd), 0);
    expect_lost_once(f.v, 2, f.v[0], 3);
    hello_bytes(hb, &h);
    expect_refused(&f, hb, sizeof(hb), "a lost node coming back");
    fx_down(&f);
}

/* Input that trickles in a few bytes at a time (every parse state split across reads). */
TCP_INPUT_TEST(dribble)
{
    struct fx f;
    uint8_t b[3 * DSMT_TCP_HDR_LEN + 10 + 300 + PAGE + 1];
    size_t n = 0, off = 0;
    int fd;

    fx_up(&f);
    fd = raw_peer(&f);
    header_bytes(b + n, 10, 0, DSMT_NO_PAGE);
    fill(b + n + DSMT_TCP_HDR_LEN, 10, 1);
    n += DSMT_TCP_HDR_LEN + 10;
    header_bytes(b + n, 300, DSMT_TCP_F_FRAME, 5);
    fill(b + n + DSMT_TCP_HDR_LEN, 300, 2);
    fill(b + n + DSMT_TCP_HDR_LEN + 300, PAGE, 3);
    n += DSMT_TCP_HDR_LEN + 300 + PAGE;
    header_bytes(b + n, 1, 0, DSMT_NO_PAGE);
    b[n + DSMT_TCP_HDR_LEN] = 0x42;
    n += DSMT_TCP_HDR_LEN + 1;
    for (size_t chunk = 1; off < n; chunk = chunk % 7 + 1) {
        size_t k = off + chunk <= n ? chunk : n - off;
        raw_send(fd, b + off, k);
        off += k;
        if (off < 400 || off % 512 < 7) /* let A see the small pieces one by one */
            drive_once(f.v, 2);
    }
    DRIVE_UNTIL(f.v, 2, f.v[0]->count[3] == 3, "three dribbled messages");
    struct got *g = &f.v[0]->msgs[f.v[0]->nmsgs - 3];
    cr_assert(g[0].len == 10 && matches(g[0].data, 10, 1) && g[0].page == DSMT_NO_PAGE);
    cr_assert(g[1].len == 300 && matches(g[1].data, 300, 2) && g[1].page == 5);
    cr_assert(matches(page_at(f.v[0], 5), PAGE, 3), "dribbled frame");
    cr_assert(g[2].len == 1 && g[2].data[0] == 0x42);
    for (uint64_t pg = 0; pg < NPAGES; pg++)
        if (pg != 5)
            cr_assert(matches(page_at(f.v[0], pg), PAGE, 0xa0a0 + pg), "page %llu changed",
                      (unsigned long long)pg);
    cr_assert_eq(close(fd), 0);
    expect_lost_once(f.v, 2, f.v[0], 3);
    fx_down(&f);
}

/* The connecting side checks the answer: a raw listener reads B's hello and answers with
 * `answer`; B must see node 1 up (good answer) or lost once (anything else). */
static void raw_acceptor_case(const struct hello *answer, bool good, bool good_proof)
{
    uint8_t bnonce[DSMT_TCP_NONCE_LEN], proof[DSMT_TCP_PROOF_LEN], want[DSMT_TCP_PROOF_LEN];
    struct inst *b = inst_new(&dsmt_tcp_ops, 2, 4, NPAGES);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof(sa);
    uint8_t hb[DSMT_TCP_HELLO_LEN];
    size_t got = 0;
    uint64_t end = now_ms() + WAIT_MS;
    char addr[64];
    int lfd = socket(AF_INET, SOCK_STREAM, 0), fd;

    cr_assert(lfd >= 0);
    cr_assert_eq(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    cr_assert_eq(listen(lfd, 4), 0);
    cr_assert_eq(getsockname(lfd, (struct sockaddr *)&sa, &len), 0);
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", ntohs(sa.sin_port));
    cr_assert_eq(dsmt_tcp_ops.connect(b->t, 1, addr, WAIT_MS), 0);
    fd = accept(lfd, NULL, NULL);
    cr_assert(fd >= 0, "accept: %s", strerror(errno));
    while (got < sizeof(hb)) {
        ssize_t r = recv(fd, hb + got, sizeof(hb) - got, MSG_DONTWAIT);
        cr_assert(r != 0, "B closed before its hello");
        if (r > 0)
            got += (size_t)r;
        else
            cr_assert(errno == EAGAIN || errno == EINTR, "recv: %s", strerror(errno));
        cr_assert(now_ms() < end, "no hello from B");
        drive_once(&b, 1);
    }
    cr_assert(get32(hb) == DSMT_TCP_MAGIC && get32(hb + 4) == DSMT_TCP_VERSION && get32(hb + 8) == 2 &&
              get32(hb + 12) == 4 && get64(hb + 16) == JOB && get64(hb + 24) == PAGE &&
              get64(hb + 32) == NPAGES && get64(hb + 40) == MAX_MSG, "B's hello has the documented layout");
    memcpy(bnonce, hb + 48, sizeof(bnonce));
    hello_bytes(hb, answer);
    raw_send(fd, hb, sizeof(hb));
    if (good) { /* B proves first, over our nonce; then we answer with ours (maybe forged) */
        for (got = 0; got < sizeof(proof);) {
            ssize_t r = recv(fd, proof + got, sizeof(proof) - got, MSG_DONTWAIT);
            cr_assert(r != 0, "B closed before its proof");
            if (r > 0)
                got += (size_t)r;
            cr_assert(now_ms() < end, "no proof from B");
            drive_once(&b, 1);
        }
        raw_proof(g_secret, RAW_NONCE, 2, want);
        cr_assert(memcmp(proof, want, sizeof(want)) == 0, "B's proof over our nonce");
        cr_assert_eq(b->up[1], 0, "B counted node 1 up before its proof");
        raw_proof(g_secret, bnonce, 1, proof);
        proof[0] ^= good_proof ? 0 : 1;
        raw_send(fd, proof, sizeof(proof));
    }
    if (good && good_proof) {
        DRIVE_UNTIL(&b, 1, b->up[1] == 1, "B to accept a good answer");
        cr_assert_eq(b->lost[1], 0);
    } else {
        DRIVE_UNTIL(&b, 1, b->lost[1] == 1, "B to refuse a bad answer");
        drive_for(&b, 1, 100);
        cr_assert_eq(b->up[1] + (b->lost[1] - 1), 0, "up %d, lost %d", b->up[1], b->lost[1]);
    }
    cr_assert_eq(close(fd), 0);
    cr_assert_eq(close(lfd), 0);
    inst_free(b);
}

TCP_INPUT_TEST(raw_acceptor)
{
    struct hello h = good_hello(1);

    raw_acceptor_case(&h, true, true);
    raw_acceptor_case(&h, true, false); /* a listener that cannot prove it holds the secret */
    h.node = 0; /* answered by the wrong node */
    raw_acceptor_case(&h, false, false);
    h = good_hello(1), h.job = ~JOB;
    raw_acceptor_case(&h, false, false);
    h = good_hello(1), h.npages = 1;
    raw_acceptor_case(&h, false, false);
}

/* A connection that says a valid hello but proves with the wrong secret never becomes a
 * peer, and A does not prove itself to it (it reads A's hello, then EOF). */
TCP_INPUT_TEST(wrong_secret)
{
    struct fx f;
    uint8_t b[DSMT_TCP_HELLO_LEN], proof[DSMT_TCP_PROOF_LEN], other[DSMT_SECRET_LEN];
    int fd;

    fx_up(&f);
    memset(other, 0x77, sizeof(other));
    fd = raw_hello(&f, b);
    raw_proof(other, b + 48, 3, proof);
    raw_send(fd, proof, sizeof(proof));
    cr_assert_eq(raw_read(&f, fd, b, sizeof(b), 0), 0, "A answered a wrong proof");
    cr_assert_eq(close(fd), 0);
    cr_assert_eq(f.v[0]->up[3] + f.v[0]->lost[3], 0, "node 3 came up or was lost");
    ping_pong(f.v, 2, f.v[0], f.v[1]);
    fd = raw_peer(&f); /* node 3 with the right secret is still welcome */
    cr_assert_eq(close(fd), 0);
    expect_lost_once(f.v, 2, f.v[0], 3);
    fx_down(&f);
}

/* A proof seen on one connection is refused on another (fresh nonce per connection). */
TCP_INPUT_TEST(replayed_proof)
{
    struct fx f;
    uint8_t b1[DSMT_TCP_HELLO_LEN], b2[DSMT_TCP_HELLO_LEN], proof[DSMT_TCP_PROOF_LEN];
    int fd1, fd2;

    fx_up(&f);
    fd1 = raw_hello(&f, b1);
    raw_proof(g_secret, b1 + 48, 3, proof); /* valid on connection 1 ... */
    cr_assert_eq(close(fd1), 0);
    fd2 = raw_hello(&f, b2);
    cr_assert(memcmp(b1 + 48, b2 + 48, DSMT_TCP_NONCE_LEN) != 0, "A reused a nonce");
    raw_send(fd2, proof, sizeof(proof)); /* ... replayed on connection 2 */
    cr_assert_eq(raw_read(&f, fd2, b2, sizeof(b2), 0), 0, "A answered a replayed proof");
    cr_assert_eq(close(fd2), 0);
    cr_assert_eq(f.v[0]->up[3] + f.v[0]->lost[3], 0, "node 3 came up or was lost");
    ping_pong(f.v, 2, f.v[0], f.v[1]);
    fx_down(&f);
}

/* Two jobs with the same job id and geometry but different secrets (two dsmrun jobs on the
 * same machine): a daemon of one cannot join the other, and neither side sees a peer. */
TCP_INPUT_TEST(two_jobs)
{
    struct inst *v[2];

    memset(g_secret, 0x11, sizeof(g_secret));
    v[0] = inst_new(&dsmt_tcp_ops, 0, 2, NPAGES);
    memset(g_secret, 0x22, sizeof(g_secret));
    v[1] = inst_new(&dsmt_tcp_ops, 1, 2, NPAGES);
    cr_assert_eq(dsmt_tcp_ops.connect(v[1]->t, 0, v[0]->addr, WAIT_MS), 0);
    DRIVE_UNTIL(v, 2, v[1]->lost[0] == 1, "node 1 to give up on the other job's node 0");
    drive_for(v, 2, 100);
    cr_assert_eq(v[0]->up[1] + v[0]->lost[1] + v[1]->up[0], 0, "a peer came up across jobs");
    inst_free(v[0]);
    inst_free(v[1]);
}

/* ---- rdma_input: a raw rdma_cm / verbs peer against an RDMA instance --------------- */
#ifdef DSMT_HAVE_RDMA

#define RAW_RX      8u  /* receive slots of the raw peer */
#define RAW_CREDITS 4u  /* what it grants: room left for the instance's KEYS and CREDITs */
#define SLOT        DSMT_RDMA_SLOT

/* A raw peer: one connection to A, its own frames (NPAGES pages) registered for A to write. */
struct raw {
    struct rdma_event_channel *ec;
    struct rdma_cm_id *id;
    struct ibv_pd *pd;
    struct ibv_cq *cq;
    struct ibv_mr *mr;
    uint8_t *mem;           /* RAW_RX receive slots | a send slot | NPAGES frames */
    size_t memlen;
    bool qp;
    uint8_t pdata[256];     /* private data of the last REJECTED / ESTABLISHED */
    size_t plen;
    int status;
    uint64_t raddr;         /* A's frames, from A's KEYS */
    uint32_t rkey, credits;
};

static uint8_t *raw_rx(struct raw *r, uint32_t i)
{
    return r->mem + (size_t)i * SLOT;
}

static uint8_t *raw_tx(struct raw *r)
{
    return r->mem + (size_t)RAW_RX * SLOT;
}

static uint8_t *raw_frame(struct raw *r, uint64_t page)
{
    return r->mem + (size_t)(RAW_RX + 1) * SLOT + page * PAGE;
}

/* The RDMA fixture, or skip the test with one line. */
static void rfx_up(struct fx *f)
{
    static const struct tparam rdma = { "rdma" };

    fx_up_with(f, use(&rdma));
}

/* Wait (driving A and B) for the raw peer's next CM event; keep its private data. */
static enum rdma_cm_event_type raw_event(struct fx *f, struct raw *r)
{
    uint64_t end = now_ms() + WAIT_MS;
    struct rdma_cm_event *ev;
    enum rdma_cm_event_type type;

    while (rdma_get_cm_event(r->ec, &ev) != 0) {
        cr_assert(errno == EAGAIN, "rdma_get_cm_event: %s", strerror(errno));
        cr_assert(now_ms() < end, "timed out waiting for the raw peer's CM event");
        drive_once(f->v, 2);
    }
    type = ev->event;
    r->status = ev->status;
    r->plen = 0;
    if (type == RDMA_CM_EVENT_REJECTED || type == RDMA_CM_EVENT_ESTABLISHED) {
        r->plen = ev->param.conn.private_data_len;
        if (r->plen > 0)
            memcpy(r->pdata, ev->param.conn.private_data, r->plen);
    }
    cr_assert_eq(rdma_ack_cm_event(ev), 0);
    return type;
}

static void raw_post_recv(struct raw *r, uint32_t i)
{
    struct ibv_sge sg = { .addr = (uintptr_t)raw_rx(r, i), .length = SLOT, .lkey = r->mr->lkey };
    struct ibv_recv_wr wr = { .wr_id = i, .sg_list = &sg, .num_sge = 1 }, *bad;

    cr_assert_eq(ibv_post_recv(r->id->qp, &wr, &bad), 0);
}

/* Resolve A's address, make the queue pair, and connect with `hello` (len bytes) as the
 * private data. Returns the CM event that answers: ESTABLISHED or REJECTED. */
static enum rdma_cm_event_type rdma_raw_connect(struct fx *f, struct raw *r, const uint8_t *hello, size_t len)
{
    struct sockaddr_in sa = { .sin_family = AF_INET };
    struct ibv_qp_init_attr qa = { .cap = { .max_send_wr = 16, .max_recv_wr = RAW_RX, .max_send_sge = 1,
                                            .max_recv_sge = 1 },
                                   .qp_type = IBV_QPT_RC };
    struct rdma_conn_param cp = { .private_data = hello, .private_data_len = (uint8_t)len,
                                  .retry_count = 7, .rnr_retry_count = 7 };
    const char *colon = strrchr(f->v[0]->addr, ':');
    char ip[64];
    enum rdma_cm_event_type type;

    memset(r, 0, sizeof(*r));
    cr_assert_not_null(colon);
    snprintf(ip, sizeof(ip), "%.*s", (int)(colon - f->v[0]->addr), f->v[0]->addr);
    cr_assert_eq(inet_pton(AF_INET, ip, &sa.sin_addr), 1);
    sa.sin_port = htons((uint16_t)atoi(colon + 1));
    r->ec = rdma_create_event_channel();
    cr_assert_not_null(r->ec);
    cr_assert_eq(fcntl(r->ec->fd, F_SETFL, fcntl(r->ec->fd, F_GETFL) | O_NONBLOCK), 0);
    cr_assert_eq(rdma_create_id(r->ec, &r->id, NULL, RDMA_PS_TCP), 0);
    cr_assert_eq(rdma_resolve_addr(r->id, NULL, (struct sockaddr *)&sa, 2000), 0);
    cr_assert_eq(raw_event(f, r), RDMA_CM_EVENT_ADDR_RESOLVED);
    cr_assert_eq(rdma_resolve_route(r->id, 2000), 0);
    cr_assert_eq(raw_event(f, r), RDMA_CM_EVENT_ROUTE_RESOLVED);
    r->pd = ibv_alloc_pd(r->id->verbs);
    r->cq = ibv_create_cq(r->id->verbs, 64, NULL, NULL, 0);
    r->memlen = (size_t)(RAW_RX + 1) * SLOT + (size_t)NPAGES * PAGE;
    cr_assert_eq(posix_memalign((void **)&r->mem, 4096, r->memlen), 0);
    memset(r->mem, 0, r->memlen);
    cr_assert(r->pd != NULL && r->cq != NULL);
    r->mr = ibv_reg_mr(r->pd, r->mem, r->memlen, IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE);
    cr_assert_not_null(r->mr, "ibv_reg_mr: %s", strerror(errno));
    qa.send_cq = qa.recv_cq = r->cq;
    cr_assert_eq(rdma_create_qp(r->id, r->pd, &qa), 0, "rdma_create_qp: %s", strerror(errno));
    r->qp = true;
    for (uint32_t i = 0; i < RAW_RX; i++)
        raw_post_recv(r, i);
    cr_assert_eq(rdma_connect(r->id, &cp), 0, "rdma_connect: %s", strerror(errno));
    type = raw_event(f, r);
    cr_assert(type == RDMA_CM_EVENT_ESTABLISHED || type == RDMA_CM_EVENT_REJECTED,
              "raw connect answered by %s", rdma_event_str(type));
    return type;
}

static void raw_close(struct raw *r)
{
    if (r->qp)
        rdma_destroy_qp(r->id);
    if (r->cq != NULL)
        cr_assert_eq(ibv_destroy_cq(r->cq), 0);
    if (r->mr != NULL)
        cr_assert_eq(ibv_dereg_mr(r->mr), 0);
    if (r->pd != NULL)
        cr_assert_eq(ibv_dealloc_pd(r->pd), 0);
    free(r->mem);
    if (r->id != NULL)
        cr_assert_eq(rdma_destroy_id(r->id), 0);
    if (r->ec != NULL)
        rdma_destroy_event_channel(r->ec);
    memset(r, 0, sizeof(*r));
}

/* Poll the raw peer's CQ (driving A and B) for one completion; a receive is re-posted by
 * the caller. Returns the completion; with want_ok, fails the test unless it succeeded. */
static struct ibv_wc raw_poll(struct fx *f, struct raw *r, bool want_ok)
{
    uint64_t end = now_ms() + WAIT_MS;
    struct ibv_wc wc;
    int n;

    while ((n = ibv_poll_cq(r->cq, 1, &wc)) == 0) {
        cr_assert(now_ms() < end, "timed out waiting for a raw completion");
        drive_once(f->v, 2);
    }
    cr_assert_eq(n, 1);
    if (want_ok)
        cr_assert_eq(wc.status, IBV_WC_SUCCESS, "raw completion: %s", ibv_wc_status_str(wc.status));
    return wc;
}

/* SEND n bytes from the raw peer; returns the send completion's status. */
static enum ibv_wc_status rdma_raw_send(struct fx *f, struct raw *r, const uint8_t *b, size_t n)
{
    struct ibv_sge sg = { .addr = (uintptr_t)raw_tx(r), .length = (uint32_t)n, .lkey = r->mr->lkey };
    struct ibv_send_wr wr = { .wr_id = 1000, .sg_list = &sg, .num_sge = 1, .opcode = IBV_WR_SEND,
                              .send_flags = IBV_SEND_SIGNALED }, *bad;
    struct ibv_wc wc;

    memcpy(raw_tx(r), b, n);
    cr_assert_eq(ibv_post_send(r->id->qp, &wr, &bad), 0);
    do
        wc = raw_poll(f, r, false);
    while (wc.status == IBV_WC_SUCCESS && wc.opcode != IBV_WC_SEND);
    return wc.status;
}

/* RDMA WRITE of the raw peer's frame `page` to byte offset `off` of A's frames. */
static enum ibv_wc_status raw_write(struct fx *f, struct raw *r, uint64_t page, uint64_t off)
{
    struct ibv_sge sg = { .addr = (uintptr_t)raw_frame(r, page), .length = PAGE, .lkey = r->mr->lkey };
    struct ibv_send_wr wr = { .wr_id = 2000, .sg_list = &sg, .num_sge = 1, .opcode = IBV_WR_RDMA_WRITE,
                              .send_flags = IBV_SEND_SIGNALED }, *bad;
    struct ibv_wc wc;

    wr.wr.rdma.remote_addr = r->raddr + off;
    wr.wr.rdma.rkey = r->rkey;
    cr_assert_eq(ibv_post_send(r->id->qp, &wr, &bad), 0);
    do
        wc = raw_poll(f, r, false);
    while (wc.status == IBV_WC_SUCCESS && wc.opcode != IBV_WC_RDMA_WRITE);
    return wc.status;
}

/* A segment header as rdma_wire.h lays it out. */
static void seg_header(uint8_t *b, uint8_t kind, uint8_t flags, uint16_t credits, uint32_t length, uint64_t page)
{
    b[0] = kind;
    b[1] = flags;
    b[2] = (uint8_t)credits;
    b[3] = (uint8_t)(credits >> 8);
    put32(b + 4, length);
    put64(b + 8, page);
}

static void rdma_hello_bytes(uint8_t *b, const struct hello *h)
{
    memset(b, 0, DSMT_RDMA_HELLO_LEN);
    memcpy(b + DSMT_RDMA_H_NONCE, RAW_NONCE, DSMT_RDMA_NONCE_LEN);
    put32(b + DSMT_RDMA_H_MAGIC, h->magic);
    b[DSMT_RDMA_H_VERSION] = (uint8_t)h->version;
    b[DSMT_RDMA_H_VERSION + 1] = (uint8_t)(h->version >> 8);
    put32(b + DSMT_RDMA_H_NODE, h->node);
    put32(b + DSMT_RDMA_H_NNODES, h->nnodes);
    put64(b + DSMT_RDMA_H_JOB, h->job);
    put32(b + DSMT_RDMA_H_PAGE_SIZE, (uint32_t)h->page_size);
    put32(b + DSMT_RDMA_H_MAX_MSG, (uint32_t)h->max_msg);
    put64(b + DSMT_RDMA_H_NPAGES, h->npages);
}

static struct hello rdma_good_hello(uint32_t node)
{
    return (struct hello){ DSMT_RDMA_MAGIC, DSMT_RDMA_VERSION, node, 4, JOB, PAGE, NPAGES, MAX_MSG };
}

/* A connect request carrying `hello` is refused with `code` (0: any reason); nobody else is
 * disturbed. */
static void expect_rdma_refused(struct fx *f, const uint8_t *hello, size_t len, uint32_t code, const char *what)
{
    struct raw r;
    int ups = f->v[0]->up[0] + f->v[0]->up[2] + f->v[0]->up[3];
    int losts = f->v[0]->lost[0] + f->v[0]->lost[2] + f->v[0]->lost[3];

    cr_assert_eq(rdma_raw_connect(f, &r, hello, len), RDMA_CM_EVENT_REJECTED, "%s: not refused", what);
    cr_assert(r.plen >= DSMT_RDMA_REJ_LEN && get32(r.pdata) == DSMT_RDMA_MAGIC,
              "%s: the refusal carries no dsm reason", what);
    cr_assert(code == 0 || get32(r.pdata + 4) == code, "%s: refusal reason %u, expected %u", what,
              get32(r.pdata + 4), code);
    raw_close(&r);
    cr_assert_eq(f->v[0]->up[0] + f->v[0]->up[2] + f->v[0]->up[3], ups, "%s: a peer came up", what);
    cr_assert_eq(f->v[0]->lost[0] + f->v[0]->lost[2] + f->v[0]->lost[3], losts, "%s: a peer was lost", what);
    ping_pong(f->v, 2, f->v[0], f->v[1]);
}

/* How far rdma_raw_peer() takes the handshake. */
enum raw_stage { RAW_HELLO, RAW_AUTH, RAW_UP };

/* A raw peer connected as node 3, A's answer checked. From RAW_AUTH on it has proved itself
 * (AUTH) and checked A's KEYS and proof; at RAW_UP it has sent its KEYS and A counts it up.
 * A counts nothing up before that. */
static void rdma_raw_peer(struct fx *f, struct raw *r, enum raw_stage stage)
{
    uint8_t b[DSMT_RDMA_HDR_LEN + DSMT_RDMA_KEYS_LEN], a_nonce[DSMT_RDMA_NONCE_LEN], want[DSMT_RDMA_PROOF_LEN];
    struct hello h = rdma_good_hello(3);
    struct ibv_wc wc;
    const uint8_t *k;

    rdma_hello_bytes(b, &h);
    cr_assert_eq(rdma_raw_connect(f, r, b, DSMT_RDMA_HELLO_LEN), RDMA_CM_EVENT_ESTABLISHED, "refused, status %d",
                 r->status);
    cr_assert_geq(r->plen, DSMT_RDMA_HELLO_LEN);
    cr_assert(get32(r->pdata) == DSMT_RDMA_MAGIC && get32(r->pdata + 4) == DSMT_RDMA_VERSION &&
              get32(r->pdata + 8) == 1 && get32(r->pdata + 12) == 4 && get64(r->pdata + 16) == JOB &&
              get32(r->pdata + 24) == PAGE && get32(r->pdata + 28) == MAX_MSG && get64(r->pdata + 32) == NPAGES,
              "A's answer has the documented layout");
    memcpy(a_nonce, r->pdata + DSMT_RDMA_H_NONCE, sizeof(a_nonce));
    if (stage == RAW_HELLO)
        return;
    seg_header(b, DSMT_RDMA_K_AUTH, 0, 0, 0, DSMT_NO_PAGE);
    raw_proof(g_secret, a_nonce, 3, b + DSMT_RDMA_HDR_LEN);
    cr_assert_eq(rdma_raw_send(f, r, b, DSMT_RDMA_HDR_LEN + DSMT_RDMA_PROOF_LEN), IBV_WC_SUCCESS);
    do
        wc = raw_poll(f, r, true);
    while (wc.opcode != IBV_WC_RECV);
    cr_assert_eq(wc.byte_len, DSMT_RDMA_HDR_LEN + DSMT_RDMA_KEYS_LEN, "A's KEYS: %u bytes", wc.byte_len);
    k = raw_rx(r, (uint32_t)wc.wr_id);
    cr_assert(k[0] == DSMT_RDMA_K_KEYS && k[1] == 0 && get32(k + 4) == 0 && get64(k + 8) == DSMT_NO_PAGE);
    k += DSMT_RDMA_HDR_LEN;
    raw_proof(g_secret, RAW_NONCE, 1, want);
    cr_assert(memcmp(k + DSMT_RDMA_K_PROOF, want, sizeof(want)) == 0, "A's proof over our nonce");
    r->raddr = get64(k + DSMT_RDMA_K_ADDR);
    r->rkey = get32(k + DSMT_RDMA_K_RKEY);
    r->credits = get32(k + DSMT_RDMA_K_CREDITS);
    cr_assert_eq(get64(k + DSMT_RDMA_K_FRAMES_LEN), (uint64_t)NPAGES * PAGE);
    cr_assert_gt(r->credits, 0);
    raw_post_recv(r, (uint32_t)wc.wr_id);
    drive_for(f->v, 2, 50);
    cr_assert_eq(f->v[0]->up[3], 0, "A counted node 3 up before its KEYS");
    if (stage == RAW_AUTH)
        return;
    seg_header(b, DSMT_RDMA_K_KEYS, 0, 0, 0, DSMT_NO_PAGE);
    put64(b + DSMT_RDMA_HDR_LEN + DSMT_RDMA_K_ADDR, (uintptr_t)raw_frame(r, 0));
    put32(b + DSMT_RDMA_HDR_LEN + DSMT_RDMA_K_RKEY, r->mr->rkey);
    put32(b + DSMT_RDMA_HDR_LEN + DSMT_RDMA_K_CREDITS, RAW_CREDITS);
    put64(b + DSMT_RDMA_HDR_LEN + DSMT_RDMA_K_FRAMES_LEN, (uint64_t)NPAGES * PAGE);
    raw_proof(g_secret, a_nonce, 3, b + DSMT_RDMA_HDR_LEN + DSMT_RDMA_K_PROOF);
    cr_assert_eq(rdma_raw_send(f, r, b, sizeof(b)), IBV_WC_SUCCESS);
    DRIVE_UNTIL(f->v, 2, f->v[0]->up[3] == 1, "A to see the raw node 3 up");
}

/* After the raw peer's handshake up to `stage`, `bytes` arrive as one SEND: A must end the
 * connection with a reason containing `want`, deliver nothing from it, write no frame, and
 * keep talking to B. A connection that never proved itself (RAW_HELLO) is dropped without
 * on_peer_lost (it never stood for node 3), and hears no KEYS; one that did is lost once. */
static void expect_rdma_violation(const void *bytes, size_t n, enum raw_stage stage, const char *want,
                                  const char *what)
{
    struct fx f;
    struct raw r;

    rfx_up(&f);
    rdma_raw_peer(&f, &r, stage);
    (void)rdma_raw_send(&f, &r, bytes, n); /* may fail: A may tear the connection down at once */
    if (stage == RAW_HELLO) {
        struct ibv_wc wc;

        enum rdma_cm_event_type type = raw_event(&f, &r);

        /* DISCONNECTED, or a consumer reject when A dropped it before its CM saw the RTU */
        cr_assert(type == RDMA_CM_EVENT_DISCONNECTED || (type == RDMA_CM_EVENT_REJECTED && r.status == 28),
                  "%s: A did not drop the connection (%s, status %d)", what, rdma_event_str(type), r.status);
        while (ibv_poll_cq(r.cq, 1, &wc) == 1)
            cr_assert(wc.status != IBV_WC_SUCCESS || wc.opcode != IBV_WC_RECV, "%s: A sent something", what);
        drive_for(f.v, 2, 100);
        cr_assert_eq(f.v[0]->up[3] + f.v[0]->lost[3], 0, "%s: node 3 up %d, lost %d", what, f.v[0]->up[3],
                     f.v[0]->lost[3]);
    } else {
        expect_lost_once(f.v, 2, f.v[0], 3);
        cr_assert(strstr(f.v[0]->reason[3], want) != NULL, "%s: reason '%s' lacks '%s'", what,
                  f.v[0]->reason[3], want);
    }
    cr_assert_eq(f.v[0]->count[3], 0, "%s: a message from the violator was delivered", what);
    for (uint64_t pg = 0; pg < NPAGES; pg++)
        cr_assert(matches(page_at(f.v[0], pg), PAGE, 0xa0a0 + pg), "%s: page %llu changed", what,
                  (unsigned long long)pg);
    ping_pong(f.v, 2, f.v[0], f.v[1]);
    raw_close(&r);
    fx_down(&f);
}

#define RDMA_INPUT_TEST(test)                                                              \
    static void test##_body(void);                                                         \
    Test(rdma_input, test, .timeout = 120)                                                 \
    {                                                                                      \
        test##_body();                                                                     \
        leak_check();                                                                      \
    }                                                                                      \
    static void test##_body(void)

/* Every hello check of tcp.c, on the connect request's private data. */
RDMA_INPUT_TEST(refused_hellos)
{
    static const uint32_t bad_ids[] = { 0, 1, 4, 0xffffffffu };
    struct fx f;
    uint8_t b[DSMT_RDMA_HELLO_LEN];
    struct hello h;
    char what[48];

    rfx_up(&f);
    memset(b, 'G', sizeof(b));
    expect_rdma_refused(&f, b, sizeof(b), DSMT_RDMA_REFUSE_VERSION, "garbage");
    h = rdma_good_hello(3), h.magic ^= 1;
    rdma_hello_bytes(b, &h);
    expect_rdma_refused(&f, b, sizeof(b), DSMT_RDMA_REFUSE_VERSION, "bad magic");
    h = rdma_good_hello(3);
    rdma_hello_bytes(b, &h);
    expect_rdma_refused(&f, b, 20, 0, "truncated hello"); /* the CM pads it with zeroes */
    h = rdma_good_hello(3), h.version = DSMT_RDMA_VERSION - 1; /* 1: no nonces, no proofs */
    rdma_hello_bytes(b, &h);
    expect_rdma_refused(&f, b, sizeof(b), DSMT_RDMA_REFUSE_VERSION, "bad version");
    h = rdma_good_hello(3);
    rdma_hello_bytes(b, &h);
    b[DSMT_RDMA_H_RESERVED] = 1;
    expect_rdma_refused(&f, b, sizeof(b), DSMT_RDMA_REFUSE_VERSION, "reserved bits");
    h = rdma_good_hello(3), h.job = JOB + 1;
    rdma_hello_bytes(b, &h);
    expect_rdma_refused(&f, b, sizeof(b), DSMT_RDMA_REFUSE_JOB, "wrong job");
    for (int i = 0; i < 4; i++) {
        h = rdma_good_hello(3);
        if (i == 0) h.nnodes = 5;
        if (i == 1) h.page_size = 2 * PAGE;
        if (i == 2) h.npages = NPAGES - 1;
        if (i == 3) h.max_msg = MAX_MSG * 2;
        rdma_hello_bytes(b, &h);
        expect_rdma_refused(&f, b, sizeof(b), DSMT_RDMA_REFUSE_GEOMETRY, "geometry");
    }
    for (size_t i = 0; i < sizeof(bad_ids) / sizeof(bad_ids[0]); i++) {
        h = rdma_good_hello(bad_ids[i]);
        rdma_hello_bytes(b, &h);
        snprintf(what, sizeof(what), "node id %u", bad_ids[i]);
        expect_rdma_refused(&f, b, sizeof(b), DSMT_RDMA_REFUSE_NODE, what);
    }
    h = rdma_good_hello(2); /* B again */
    rdma_hello_bytes(b, &h);
    expect_rdma_refused(&f, b, sizeof(b), DSMT_RDMA_REFUSE_DUPLICATE, "duplicate node 2");
    fx_down(&f);
}

/* The documented layout works both ways: KEYS, a framed message by WRITE + SEND, an empty
 * one; A's framed message lands in the raw peer's frames. A lost node may not come back. */
RDMA_INPUT_TEST(rdma_raw_roundtrip)
{
    struct fx f;
    struct raw r;
    uint8_t b[DSMT_RDMA_HDR_LEN + 5], hb[DSMT_RDMA_HELLO_LEN];
    struct hello h = rdma_good_hello(3);
    struct ibv_wc wc;
    const uint8_t *m;

    rfx_up(&f);
    rdma_raw_peer(&f, &r, RAW_UP);
    fill(raw_frame(&r, 7), PAGE, 77);
    cr_assert_eq(raw_write(&f, &r, 7, 7 * PAGE), IBV_WC_SUCCESS);
    seg_header(b, DSMT_RDMA_K_MSG, DSMT_RDMA_F_FIRST | DSMT_RDMA_F_LAST | DSMT_RDMA_F_FRAME, 0, 5, 7);
    memcpy(b + DSMT_RDMA_HDR_LEN, "hello", 5);
    cr_assert_eq(rdma_raw_send(&f, &r, b, sizeof(b)), IBV_WC_SUCCESS);
    seg_header(b, DSMT_RDMA_K_MSG, DSMT_RDMA_F_FIRST | DSMT_RDMA_F_LAST, 0, 0, DSMT_NO_PAGE);
    cr_assert_eq(rdma_raw_send(&f, &r, b, DSMT_RDMA_HDR_LEN), IBV_WC_SUCCESS);
    DRIVE_UNTIL(f.v, 2, f.v[0]->count[3] == 2, "two messages from the raw peer");
    struct got *g = &f.v[0]->msgs[f.v[0]->nmsgs - 2];
    cr_assert(g->from == 3 && g->len == 5 && memcmp(g->data, "hello", 5) == 0 && g->page == 7);
    cr_assert(matches(page_at(f.v[0], 7), PAGE, 77), "frame 7 not in place");
    cr_assert(g[1].len == 0 && g[1].page == DSMT_NO_PAGE);

    fill(page_at(f.v[0], 9), PAGE, 99);
    cr_assert_eq(dsmt_rdma_ops.send(f.v[0]->t, 3, "abc", 3, 9), 0);
    memset(page_at(f.v[0], 9), 0, PAGE); /* captured at the call */
    do
        wc = raw_poll(&f, &r, true);
    while (wc.opcode != IBV_WC_RECV);
    m = raw_rx(&r, (uint32_t)wc.wr_id);
    cr_assert_eq(wc.byte_len, DSMT_RDMA_HDR_LEN + 3);
    cr_assert(m[0] == DSMT_RDMA_K_MSG && m[1] == (DSMT_RDMA_F_FIRST | DSMT_RDMA_F_LAST | DSMT_RDMA_F_FRAME) &&
              get32(m + 4) == 3 && get64(m + 8) == 9, "A's header has the documented layout");
    cr_assert(memcmp(m + DSMT_RDMA_HDR_LEN, "abc", 3) == 0);
    cr_assert(matches(raw_frame(&r, 9), PAGE, 99), "A's frame 9 did not land in the raw peer's frame 9");

    raw_close(&r);
    expect_lost_once(f.v, 2, f.v[0], 3);
    rdma_hello_bytes(hb, &h);
    expect_rdma_refused(&f, hb, sizeof(hb), DSMT_RDMA_REFUSE_DUPLICATE, "a lost node coming back");
    fx_down(&f);
}

/* Before its proof a connection gets nothing: anything but AUTH, or a wrong proof, drops it. */
RDMA_INPUT_TEST(unproven)
{
    uint8_t b[DSMT_RDMA_HDR_LEN + DSMT_RDMA_KEYS_LEN];
    uint8_t other[DSMT_SECRET_LEN];

    memset(b, 0, sizeof(b));
    seg_header(b, DSMT_RDMA_K_MSG, DSMT_RDMA_F_FIRST | DSMT_RDMA_F_LAST, 0, 4, DSMT_NO_PAGE);
    memcpy(b + DSMT_RDMA_HDR_LEN, "oops", 4);
    expect_rdma_violation(b, DSMT_RDMA_HDR_LEN + 4, RAW_HELLO, "", "message before AUTH");
    seg_header(b, DSMT_RDMA_K_KEYS, 0, 0, 0, DSMT_NO_PAGE);
    put32(b + DSMT_RDMA_HDR_LEN + DSMT_RDMA_K_CREDITS, 4);
    put64(b + DSMT_RDMA_HDR_LEN + DSMT_RDMA_K_FRAMES_LEN, (uint64_t)NPAGES * PAGE);
    expect_rdma_violation(b, DSMT_RDMA_HDR_LEN + DSMT_RDMA_KEYS_LEN, RAW_HELLO, "", "KEYS before AUTH");
    /* a proof under another secret (its nonce does not matter: the MAC is wrong anyway) */
    memset(other, 0x5a, sizeof(other));
    seg_header(b, DSMT_RDMA_K_AUTH, 0, 0, 0, DSMT_NO_PAGE);
    raw_proof(other, RAW_NONCE, 3, b + DSMT_RDMA_HDR_LEN);
    expect_rdma_violation(b, DSMT_RDMA_HDR_LEN + DSMT_RDMA_PROOF_LEN, RAW_HELLO, "", "wrong secret");
    seg_header(b, DSMT_RDMA_K_AUTH, 0, 0, 0, DSMT_NO_PAGE);
    expect_rdma_violation(b, DSMT_RDMA_HDR_LEN + 8, RAW_HELLO, "", "short AUTH");
}

/* A proven peer that breaks the rules is lost once, with the rule in the reason. */
RDMA_INPUT_TEST(malformed_sends)
{
    uint8_t b[DSMT_RDMA_HDR_LEN + DSMT_RDMA_KEYS_LEN];

    memset(b, 0, sizeof(b));
    expect_rdma_violation(b, 8, RAW_UP, "shorter than a header", "short SEND");
    seg_header(b, 9, 0, 0, 0, DSMT_NO_PAGE);
    expect_rdma_violation(b, DSMT_RDMA_HDR_LEN, RAW_UP, "unknown message kind", "unknown kind");
    seg_header(b, DSMT_RDMA_K_MSG, DSMT_RDMA_F_FIRST | DSMT_RDMA_F_LAST | 0x80, 0, 0, DSMT_NO_PAGE);
    expect_rdma_violation(b, DSMT_RDMA_HDR_LEN, RAW_UP, "flags", "unknown flag");
    seg_header(b, DSMT_RDMA_K_MSG, DSMT_RDMA_F_FIRST, 0, 2 * SLOT, DSMT_NO_PAGE);
    expect_rdma_violation(b, DSMT_RDMA_HDR_LEN, RAW_UP, "not full", "short first segment");
    seg_header(b, DSMT_RDMA_K_MSG, DSMT_RDMA_F_FIRST | DSMT_RDMA_F_LAST, 0, MAX_MSG + 1, DSMT_NO_PAGE);
    expect_rdma_violation(b, DSMT_RDMA_HDR_LEN, RAW_UP, "max_msg", "oversized length");
    seg_header(b, DSMT_RDMA_K_MSG, DSMT_RDMA_F_FIRST | DSMT_RDMA_F_LAST | DSMT_RDMA_F_FRAME, 0, 0, NPAGES);
    expect_rdma_violation(b, DSMT_RDMA_HDR_LEN, RAW_UP, "beyond", "frame beyond npages");
    seg_header(b, DSMT_RDMA_K_MSG, DSMT_RDMA_F_FIRST | DSMT_RDMA_F_LAST, 0, 0, 5);
    expect_rdma_violation(b, DSMT_RDMA_HDR_LEN, RAW_UP, "without a frame", "page without a frame");
    seg_header(b, DSMT_RDMA_K_MSG, DSMT_RDMA_F_LAST, 0, 0, DSMT_NO_PAGE);
    expect_rdma_violation(b, DSMT_RDMA_HDR_LEN, RAW_UP, "continuation", "continuation without a first segment");
    seg_header(b, DSMT_RDMA_K_MSG, DSMT_RDMA_F_FIRST | DSMT_RDMA_F_LAST, 100, 0, DSMT_NO_PAGE);
    expect_rdma_violation(b, DSMT_RDMA_HDR_LEN, RAW_UP, "more credits", "credits never granted");
    seg_header(b, DSMT_RDMA_K_AUTH, 0, 0, 0, DSMT_NO_PAGE);
    expect_rdma_violation(b, DSMT_RDMA_HDR_LEN + DSMT_RDMA_PROOF_LEN, RAW_UP, "AUTH out of place", "second AUTH");
    seg_header(b, DSMT_RDMA_K_KEYS, 0, 0, 0, DSMT_NO_PAGE);
    put32(b + DSMT_RDMA_HDR_LEN + DSMT_RDMA_K_CREDITS, 4);
    put64(b + DSMT_RDMA_HDR_LEN + DSMT_RDMA_K_FRAMES_LEN, (uint64_t)NPAGES * PAGE);
    expect_rdma_violation(b, sizeof(b), RAW_UP, "second KEYS", "second KEYS");
}

/* A proven peer (AUTH accepted, A's KEYS received) whose KEYS carries a wrong proof. */
RDMA_INPUT_TEST(keys_with_bad_proof)
{
    uint8_t b[DSMT_RDMA_HDR_LEN + DSMT_RDMA_KEYS_LEN];

    memset(b, 0, sizeof(b));
    seg_header(b, DSMT_RDMA_K_KEYS, 0, 0, 0, DSMT_NO_PAGE);
    put32(b + DSMT_RDMA_HDR_LEN + DSMT_RDMA_K_CREDITS, 4);
    put64(b + DSMT_RDMA_HDR_LEN + DSMT_RDMA_K_FRAMES_LEN, (uint64_t)NPAGES * PAGE);
    expect_rdma_violation(b, sizeof(b), RAW_AUTH, "bad proof", "KEYS with a wrong proof");
}

/* A write outside A's frames fails at A's end too: A's queue pair breaks, and a failed
 * completion, not silence, tells A that node 3 is gone. */
RDMA_INPUT_TEST(write_beyond_frames)
{
    struct fx f;
    struct raw r;

    rfx_up(&f);
    rdma_raw_peer(&f, &r, RAW_UP);
    fill(raw_frame(&r, 0), PAGE, 5);
    cr_assert_neq(raw_write(&f, &r, 0, (uint64_t)NPAGES * PAGE), IBV_WC_SUCCESS, "a write beyond the frames worked");
    expect_lost_once(f.v, 2, f.v[0], 3);
    for (uint64_t pg = 0; pg < NPAGES; pg++)
        cr_assert(matches(page_at(f.v[0], pg), PAGE, 0xa0a0 + pg), "page %llu changed", (unsigned long long)pg);
    ping_pong(f.v, 2, f.v[0], f.v[1]);
    raw_close(&r);
    fx_down(&f);
}
#endif

/*
 * main.c - dsmd, the per-node daemon: start-up, rendezvous with dsmrun, shutdown.
 *
 * Life of a daemon:
 *   1. parse options, bind the progress thread (placement.c), create the node's frames (one
 *      sparse memfd, mapped read-write here, first-touch memory policy),
 *      the page table, the protocol, the ranks' socket, the transport's listener;
 *   1b. read "SECRET <64 hex digits>" (the job secret) as the first line on stdin, before
 *      the transport exists (standalone: make a random one);
 *   2. print "READY <node> <host:port>" on stdout; read "PEERS <addr>..." on stdin
 *      (dsmrun sends it once every daemon is ready); connect to the lower-numbered peers;
 *      print "MESH <node>" once every peer is up (standalone: at once);
 *   3. serve ranks and peers until every local rank has finalized and closed its channels,
 *      or stdin closes (dsmrun is done with us), or the job aborts;
 *   4. print "STATS <json>" and exit (0, or 1 after an abort).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "dsm_log.h"
#include "dsmd.h"
#include "placement.h"

#define DSMD_DEFAULT_BASE  0x500000000000ull
#define DSMD_DEFAULT_SPACE (1ull << 30)
/* Polling for a due reply saves a wake-up per remote fault, but only pays where the
 * daemons do not share their cores with the ranks (see docs/BENCHMARKS.md). */
#define DSMD_DEFAULT_POLL_US   50
#define DSMD_POLL_MIN_CPUS     4

/* One line for dsmrun on stdout. */
void dsmd_announce(struct dsmd *d, const char *fmt, ...)
{
    va_list ap;

    (void)d;
    va_start(ap, fmt);
    vfprintf(stdout, fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
    fflush(stdout);
}

#define DSMD_SECRET_WAIT_MS 10000 /* dsmrun writes the SECRET line right after starting us */

/* One byte of stdin within the deadline: 1, 0 at EOF, -1 on timeout or error. */
static int stdin_byte(char *c, int ms)
{
    struct pollfd p = { .fd = STDIN_FILENO, .events = POLLIN };
    int r = poll(&p, 1, ms);

    if (r <= 0)
        return -1;
    return (int)read(STDIN_FILENO, c, 1);
}

/* The job secret into cfg->secret: the first stdin line, "SECRET <hex>", read a byte at a
 * time so nothing after it (PEERS) is consumed here; a standalone daemon (no peers, no
 * launcher) draws its own. Off the command line and environment on purpose: ps shows those. */
static dsm_status_t secret_read(struct dsmd_config *cfg)
{
    char line[16 + 2 * sizeof(cfg->secret)], c = 0;
    size_t n = 0;
    int r = 1;

    if (cfg->standalone) {
        if (getrandom(cfg->secret, sizeof(cfg->secret), 0) == (ssize_t)sizeof(cfg->secret))
            return DSM_OK;
        DSM_ERR("getrandom: %s", strerror(errno));
        return DSM_ESYS;
    }
    while (n + 1 < sizeof(line) && (r = stdin_byte(&c, DSMD_SECRET_WAIT_MS)) == 1 && c != '\n')
        line[n++] = c;
    line[n] = '\0';
    if (r != 1 || c != '\n' || n != 7 + 2 * sizeof(cfg->secret) || strncmp(line, "SECRET ", 7) != 0 ||
        strspn(line + 7, "0123456789abcdefABCDEF") != 2 * sizeof(cfg->secret)) {
        DSM_ERR("expected \"SECRET <%zu hex digits>\" as the first line on stdin within %d ms",
                2 * sizeof(cfg->secret), DSMD_SECRET_WAIT_MS);
        return DSM_ECONFIG;
    }
    for (size_t i = 0; i < sizeof(cfg->secret); i++) {
        char byte[3] = { line[7 + 2 * i], line[8 + 2 * i], '\0' };
        cfg->secret[i] = (uint8_t)strtoul(byte, NULL, 16);
    }
    return DSM_OK;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: dsmd --node I --nnodes M --nranks N --first-rank R --local-ranks K\n"
            "            --socket PATH [--listen HOST[:PORT]] [--consistency MODEL] [--transport T]\n"
            "            [--device NAME] [--space-size BYTES] [--base ADDR] [--job-id ID]\n"
            "       dsmd --standalone --socket PATH [--consistency MODEL] [--space-size BYTES]\n"
            "Started by dsmrun (or by libdsm for a one-rank job); see README.md. Without\n"
            "--standalone the first line on stdin must be \"SECRET <64 hex digits>\" (the job secret).\n");
    fprintf(f, "transports:");
    for (size_t i = 0; dsmt_at(i) != NULL; i++)
        fprintf(f, " %s", dsmt_at(i)->name);
    fprintf(f, "\n");
}

static int parse_u64(const char *s, uint64_t *v)
{
    char *end;

    errno = 0;
    *v = strtoull(s, &end, 0);
    return errno == 0 && end != s && *end == '\0' ? 0 : -1;
}

/* Fill cfg from argv and the environment. Returns DSM_ECONFIG with a message on error. */
static dsm_status_t parse_args(int argc, char **argv, struct dsmd_config *cfg)
{
    static const struct option opts[] = {
        { "node", required_argument, 0, 'n' },        { "nnodes", required_argument, 0, 'm' },
        { "nranks", required_argument, 0, 'N' },      { "first-rank", required_argument, 0, 'r' },
        { "local-ranks", required_argument, 0, 'k' }, { "consistency", required_argument, 0, 'c' },
        { "transport", required_argument, 0, 't' },   { "listen", required_argument, 0, 'l' },
        { "socket", required_argument, 0, 's' },      { "space-size", required_argument, 0, 'S' },
        { "base", required_argument, 0, 'b' },        { "job-id", required_argument, 0, 'j' },
        { "standalone", no_argument, 0, 'A' },        { "help", no_argument, 0, 'h' },
        { "device", required_argument, 0, 'D' },
        { 0, 0, 0, 0 },
    };
    uint64_t v;
    int o;
    const char *env = getenv("DSM_SPACE_SIZE");
    const char *poll_env = getenv("DSM_DAEMON_POLL_US");
    const char *base_env = getenv("DSM_BASE");

    *cfg = (struct dsmd_config){ .node = -1, .nnodes = -1, .nranks = -1, .first_rank = -1, .local_ranks = -1,
                                 .consistency = "sequential", .transport = "tcp", .listen = "127.0.0.1",
                                 .space_size = DSMD_DEFAULT_SPACE, .base = DSMD_DEFAULT_BASE };
    if (env && parse_u64(env, &cfg->space_size) != 0) {
        fprintf(stderr, "dsmd: DSM_SPACE_SIZE=%s is not a number\n", env);
        return DSM_ECONFIG;
    }
    if (base_env && parse_u64(base_env, &cfg->base) != 0) {
        fprintf(stderr, "dsmd: DSM_BASE=%s is not an address\n", base_env);
        return DSM_ECONFIG;
    }
    cfg->poll_us = sysconf(_SC_NPROCESSORS_ONLN) > DSMD_POLL_MIN_CPUS ? DSMD_DEFAULT_POLL_US : 0;
    if (poll_env && (parse_u64(poll_env, &v) != 0 || v > 1000000)) {
        fprintf(stderr, "dsmd: DSM_DAEMON_POLL_US=%s is not a number of microseconds\n", poll_env);
        return DSM_ECONFIG;
    }
    if (poll_env)
        cfg->poll_us = (int)v;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (o == 'h') {
            usage(stdout);
            exit(0);
        }
        if (o == '?') {
            usage(stderr);
            return DSM_ECONFIG;
        }
        if (o == 'c' || o == 't' || o == 'l' || o == 's' || o == 'A' || o == 'D') {
            if (o == 'D') cfg->device = optarg;
            if (o == 'c') cfg->consistency = optarg;
            if (o == 't') cfg->transport = optarg;
            if (o == 'l') cfg->listen = optarg;
            if (o == 's') cfg->socket = optarg;
            if (o == 'A') cfg->standalone = 1;
            continue;
        }
        if (parse_u64(optarg, &v) != 0 || (o != 'S' && o != 'b' && o != 'j' && v > 1000000)) {
            fprintf(stderr, "dsmd: bad value '%s' for --%s\n", optarg, opts[0].name);
            return DSM_ECONFIG;
        }
        switch (o) {
        case 'n': cfg->node = (int)v; break;
        case 'm': cfg->nnodes = (int)v; break;
        case 'N': cfg->nranks = (int)v; break;
        case 'r': cfg->first_rank = (int)v; break;
        case 'k': cfg->local_ranks = (int)v; break;
        case 'S': cfg->space_size = v; break;
        case 'b': cfg->base = v; break;
        case 'j': cfg->job_id = v; break;
        }
    }
    if (cfg->standalone) {
        cfg->node = 0;
        cfg->nnodes = cfg->nranks = cfg->local_ranks = 1;
        cfg->first_rank = 0;
    }
    if (cfg->socket == NULL || cfg->node < 0 || cfg->nnodes < 1 || cfg->nranks < 1 || cfg->first_rank < 0 ||
        cfg->local_ranks < 1 || cfg->node >= cfg->nnodes || cfg->nnodes > DSMD_MAX_NODES ||
        cfg->first_rank + cfg->local_ranks > cfg->nranks) {
        fprintf(stderr, "dsmd: missing or inconsistent job options\n");
        usage(stderr);
        return DSM_ECONFIG;
    }
    return DSM_OK;
}

/* The node's frames: a sparse memfd shared with the ranks. */
static dsm_status_t frames_create(struct dsmd *d)
{
    long ps = sysconf(_SC_PAGESIZE);

    d->page_size = (size_t)ps;
    if (d->cfg.space_size < 2 * (uint64_t)d->cfg.nnodes * d->page_size || d->cfg.space_size % d->page_size ||
        d->cfg.base % d->page_size) {
        DSM_ERR("space size %llu and base 0x%llx must be page multiples, at least 2 pages per node",
                (unsigned long long)d->cfg.space_size, (unsigned long long)d->cfg.base);
        return DSM_ECONFIG;
    }
    d->npages = d->cfg.space_size / d->page_size;
    d->memfd = memfd_create("dsm-frames", MFD_CLOEXEC);
    if (d->memfd < 0 || ftruncate(d->memfd, (off_t)d->cfg.space_size) < 0) {
        DSM_ERR("creating %llu bytes of frames: %s", (unsigned long long)d->cfg.space_size, strerror(errno));
        return DSM_ESYS;
    }
    d->frames = mmap(NULL, d->cfg.space_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, d->memfd, 0);
    if (d->frames == MAP_FAILED) {
        d->frames = NULL;
        DSM_ERR("mapping the frames: %s", strerror(errno));
        return DSM_ESYS;
    }
    return DSM_OK;
}

void dsmd_maybe_exit(struct dsmd *d)
{
    if (d->finishing && d->ranks_gone == d->cfg.local_ranks)
        dsmd_loop_stop(d->loop, DSM_OK);
}

/* "PEERS a0 a1 ...": every node's address, by node id. */
static void peers_line(struct dsmd *d, char *line)
{
    char *save = NULL, *tok = strtok_r(line, " \t\r\n", &save);
    int n = 0;

    if (tok == NULL || strcmp(tok, "PEERS") != 0 || d->peer_addr[0] != NULL) {
        DSM_WARN("ignoring unexpected input line from the launcher");
        return;
    }
    while ((tok = strtok_r(NULL, " \t\r\n", &save)) != NULL && n < d->cfg.nnodes)
        d->peer_addr[n++] = strdup(tok);
    if (n != d->cfg.nnodes || tok != NULL) {
        dsmd_abort(d, DSM_ECONFIG, "PEERS line names %d addresses, the job has %d nodes", n, d->cfg.nnodes);
        return;
    }
    dsmd_peers_connect(d);
}

static void stdin_ready(void *arg, uint32_t events)
{
    static char buf[65536];
    static size_t used;
    struct dsmd *d = arg;
    ssize_t n = read(STDIN_FILENO, buf + used, sizeof(buf) - 1 - used);
    char *nl;

    (void)events;
    if (n <= 0) {
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        dsmd_loop_del(d->loop, STDIN_FILENO);
        if (d->finishing || d->aborting)
            dsmd_loop_stop(d->loop, d->aborting ? DSM_EPEER : DSM_OK);
        else
            dsmd_abort(d, DSM_ESTATE, "the launcher went away (stdin closed) before the job finished");
        return;
    }
    used += (size_t)n;
    buf[used] = '\0';
    while ((nl = strchr(buf, '\n')) != NULL) {
        *nl = '\0';
        peers_line(d, buf);
        used -= (size_t)(nl + 1 - buf);
        memmove(buf, nl + 1, used + 1);
    }
}

static void signal_ready(void *arg, uint32_t events)
{
    struct dsmd *d = arg;
    struct signalfd_siginfo si;

    (void)events;
    if (read(d->sigfd, &si, sizeof(si)) != (ssize_t)sizeof(si))
        return;
    dsmd_abort(d, DSM_ESTATE, "dsmd on node %d terminated by signal %u", d->cfg.node, si.ssi_signo);
}

/* A remote reply is due soon: a fault of ours is out at another node. */
static int reply_due(void *arg)
{
    struct dsmd *d = arg;

    return d->faults_inflight > 0;
}

static void print_stats(struct dsmd *d)
{
    printf("STATS {\"node\":%d,\"messages_sent\":%llu,\"bytes_sent\":%llu,\"ranks\":[", d->cfg.node,
           (unsigned long long)d->node_messages, (unsigned long long)d->node_bytes);
    for (int i = 0; i < d->cfg.local_ranks; i++) {
        struct dsmd_counters *c = &d->ranks[i].c;

        printf("%s{\"rank\":%d,\"node\":%d,\"read_faults\":%llu,\"write_faults\":%llu,\"pages_fetched\":%llu,"
               "\"invalidations\":%llu,\"messages_sent\":%llu,\"bytes_sent\":%llu,\"lock_acquires\":%llu,"
               "\"barriers\":%llu,\"diffs\":%llu,\"write_notices\":%llu,\"wall_seconds\":%.6f}",
               i ? "," : "", d->ranks[i].rank, d->cfg.node, (unsigned long long)c->read_faults,
               (unsigned long long)c->write_faults, (unsigned long long)c->pages_fetched,
               (unsigned long long)c->invalidations, (unsigned long long)c->messages_sent,
               (unsigned long long)c->bytes_sent, (unsigned long long)c->lock_acquires,
               (unsigned long long)c->barriers, (unsigned long long)c->diffs, (unsigned long long)c->write_notices,
               (double)c->wall_ns / 1e9);
    }
    printf("]}\n");
    fflush(stdout);
}

/* A standalone daemon's socket lives in a private directory of the rank's making:
 * remove it, so nothing is left behind even when the rank was killed. */
static void remove_socket_dir(const char *socket)
{
    char dir[256];
    char *slash;

    snprintf(dir, sizeof(dir), "%s", socket);
    slash = strrchr(dir, '/');
    if (slash == NULL || slash == dir)
        return;
    *slash = '\0';
    (void)rmdir(dir); /* fails harmlessly if the rank left other files there */
}

/* Everything but the transport and the loop's inputs. */
static dsm_status_t node_setup(struct dsmd *d)
{
    dsm_status_t st;

    d->pops = dsmp_find(d->cfg.consistency);
    if (d->pops == NULL) {
        DSM_ERR("unknown consistency model '%s' (this build has: sequential)", d->cfg.consistency);
        return DSM_ECONFIG;
    }
    if ((st = frames_create(d)) != DSM_OK)
        return st;
    if ((st = dsmd_space_init(&d->space, d->npages, d->cfg.nnodes)) != DSM_OK)
        return st;
    d->limits = (struct dsmw_limits){ .npages = d->npages, .nnodes = (uint32_t)d->cfg.nnodes,
                                      .nranks = (uint32_t)d->cfg.nranks };
    d->ranks = calloc((size_t)d->cfg.local_ranks, sizeof(*d->ranks));
    if (d->ranks == NULL)
        return DSM_ENOMEM;
    for (int i = 0; i < d->cfg.local_ranks; i++)
        d->ranks[i].rank = d->cfg.first_rank + i;
    if ((st = dsmd_pages_init(d)) != DSM_OK)
        return st;
    dsmd_pages_services(d, &d->svc);
    if ((st = d->pops->create(&d->svc, &d->p)) != DSM_OK)
        return st;
    d->pops->reset(d->p, 0, d->npages);
    if ((st = dsmd_sync_init(d)) != DSM_OK || (st = dsmd_alloc_init(d)) != DSM_OK)
        return st;
    return DSM_OK;
}

static dsm_status_t inputs_setup(struct dsmd *d)
{
    sigset_t set;
    dsm_status_t st;

    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    if (sigprocmask(SIG_BLOCK, &set, NULL) < 0 ||
        (d->sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK)) < 0) {
        DSM_ERR("signalfd: %s", strerror(errno));
        return DSM_ESYS;
    }
    if ((st = dsmd_loop_add(d->loop, d->sigfd, EPOLLIN, signal_ready, d)) != DSM_OK)
        return st;
    return dsmd_loop_add(d->loop, STDIN_FILENO, EPOLLIN, stdin_ready, d);
}

static void node_teardown(struct dsmd *d)
{
    dsmd_peers_fini(d);
    dsmd_clients_fini(d);
    dsmd_alloc_fini(d);
    dsmd_sync_fini(d);
    if (d->p)
        d->pops->destroy(d->p);
    dsmd_pages_fini(d);
    for (int i = 0; d->ranks && i < d->cfg.local_ranks; i++)
        free(d->ranks[i].held.ids);
    free(d->ranks);
    dsmd_space_fini(&d->space);
    if (d->frames)
        munmap(d->frames, d->cfg.space_size);
    if (d->memfd >= 0)
        close(d->memfd);
    if (d->sigfd >= 0)
        close(d->sigfd);
    dsmd_loop_destroy(d->loop);
    dsmd_placement_fini();
}

int main(int argc, char **argv)
{
    struct dsmd d = { .memfd = -1, .listen_fd = -1, .sigfd = -1, .timerfd = -1 };
    char who[64];
    dsm_status_t st;

    signal(SIGPIPE, SIG_IGN);
    if (parse_args(argc, argv, &d.cfg) != DSM_OK) {
        printf("ERROR bad options\n");
        return 2;
    }
    snprintf(who, sizeof(who), "dsmd[node %d]", d.cfg.node);
    dsm_log_init(who);
    /* A launcher that dies takes its daemons along, even if stdin's EOF is missed. Not for
     * a standalone daemon: the death signal follows the parent *thread*, and the rank's
     * thread that started us may end long before the rank (its stdin pipe covers it). */
    if (!d.cfg.standalone && prctl(PR_SET_PDEATHSIG, SIGTERM) < 0)
        DSM_WARN("prctl(PR_SET_PDEATHSIG): %s", strerror(errno));
    if ((st = secret_read(&d.cfg)) != DSM_OK ||
        (st = dsmd_placement_start(&d.cfg)) != DSM_OK || /* bound before anything allocates */
        (st = dsmd_loop_create(&d.loop)) != DSM_OK || (st = node_setup(&d)) != DSM_OK ||
        (st = inputs_setup(&d)) != DSM_OK || (st = dsmd_clients_init(&d)) != DSM_OK ||
        (st = dsmd_peers_init(&d)) != DSM_OK) {
        dsmd_announce(&d, "ERROR node %d failed to start: %s", d.cfg.node, dsm_status_str(st));
        node_teardown(&d);
        return 1;
    }
    dsmd_placement_frames(d.frames, d.cfg.space_size);
    dsmd_loop_set_poll(d.loop, reply_due, &d, d.cfg.poll_us);
    dsmd_announce(&d, "READY %d %s", d.cfg.node, d.listen_addr);
    if (d.cfg.standalone)
        dsmd_peers_connect(&d);
    st = dsmd_loop_run(d.loop);
    if (d.t)
        (void)d.tops->progress(d.t); /* push out what is queued (an ABORT to the peers) */
    print_stats(&d);
    node_teardown(&d);
    if (d.cfg.standalone)
        remove_socket_dir(d.cfg.socket);
    return st == DSM_OK ? 0 : 1;
}

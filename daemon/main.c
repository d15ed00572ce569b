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
 *      or stdin closes (dsmrun is done with us), or the job aborts; dsmrun says
 *      "EXIT <rank> <status>" on stdin for each local rank that exits (clients.c);
 *   4. print "STATS <json>" and exit (0, or 1 after an abort).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "ahead.h"
#include "dsm_log.h"
#include "dsmd.h"
#include "placement.h"

#define DSMD_DEFAULT_BASE  0x500000000000ull
#define DSMD_DEFAULT_SPACE (1ull << 30)
/* Polling for a due reply saves a wake-up per remote fault, but only pays where the
 * daemons do not share their cores with the ranks (see docs/BENCHMARKS.md). */
#define DSMD_DEFAULT_POLL_US   50
#define DSMD_DEFAULT_PEER_TIMEOUT_MS 8000  /* a peer silent this long is dead */
#define DSMD_DEFAULT_GRANT_AHEAD 64      /* most pages one GRANT opens for a scanning rank */
#define DSMD_DEFAULT_READ_AHEAD 16       /* most pages one fetch brings for a scanning rank */
#define DSMD_POLL_MIN_CPUS     4

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
            "            [--trace] [--page-stats] [--false-sharing] [--memory-nodes M]\n"
            "       dsmd --standalone --socket PATH [--consistency MODEL] [--space-size BYTES]\n"
            "Started by dsmrun (or by libdsm for a one-rank job); see README.md. Without\n"
            "--standalone the first line on stdin must be \"SECRET <64 hex digits>\" (the job secret).\n");
    /* dsmrun, dsm-compare and bench-models read these lines: the one list of models is
     * consistency/dsmp.c's registry, and the first is the default */
    fprintf(f, "models:");
    for (size_t i = 0; dsmp_at(i) != NULL; i++)
        fprintf(f, " %s", dsmp_at(i)->name);
    fprintf(f, "\ntransports:");
    for (size_t i = 0; dsmt_at(i) != NULL; i++)
        fprintf(f, " %s", dsmt_at(i)->name);
    /* dsmrun reads this line to refuse a job that is too big before starting it */
    fprintf(f, "\nmax-nodes:");
    for (size_t i = 0; dsmp_at(i) != NULL; i++)
        fprintf(f, " %s=%d", dsmp_at(i)->name,
                dsmp_at(i)->max_nodes > 0 && dsmp_at(i)->max_nodes < DSMD_MAX_NODES ? dsmp_at(i)->max_nodes
                                                                                     : DSMD_MAX_NODES);
    fprintf(f, "\n");
}

static int parse_u64(const char *s, uint64_t *v)
{
    char *end;

    errno = 0;
    *v = strtoull(s, &end, 0);
    return errno == 0 && end != s && *end == '\0' ? 0 : -1;
}

/* A size in bytes with an optional K, M, G or T (powers of 1024; "KiB", "MB"... read the same). */
static int parse_size(const char *s, uint64_t *v)
{
    static const char units[] = "KMGT";
    char *end;
    unsigned long long n;

    errno = 0;
    n = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *s == '-')
        return -1;
    if (*end != '\0') {
        const char *u = strchr(units, end[0] & ~0x20);

        if (u == NULL || end[0] == '\0' || !(end[1] == '\0' || strcasecmp(end + 1, "B") == 0 ||
                                              strcasecmp(end + 1, "iB") == 0))
            return -1;
        for (long k = 0; k <= u - units; k++) {
            if (n > UINT64_MAX / 1024)
                return -1;
            n *= 1024;
        }
    }
    *v = n;
    return 0;
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
        { "device", required_argument, 0, 'D' },      { "version", no_argument, 0, 'V' },
        { "trace", no_argument, 0, 'T' },             { "page-stats", no_argument, 0, 'P' },
        { "false-sharing", no_argument, 0, 'F' },    { "memory-nodes", required_argument, 0, 'M' },
        { 0, 0, 0, 0 },
    };
    uint64_t v;
    int o;
    const char *env = getenv("DSM_SPACE_SIZE");
    const char *poll_env = getenv("DSM_DAEMON_POLL_US");
    const char *base_env = getenv("DSM_BASE");
    const char *peer_env = getenv("DSM_PEER_TIMEOUT_MS");
    const char *ahead_env = getenv("DSM_GRANT_AHEAD");
    const char *read_env = getenv("DSM_READ_AHEAD");
    const char *cache_env = getenv("DSM_CACHE_SIZE");
    const char *hits_env = getenv("DSM_LOCAL_HITS");
    const char *direct_env = getenv("DSM_DIRECT");

    for (int i = 1; i < argc; i++) /* asked what it is: answer whatever the environment holds */
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "--version") == 0)
            goto options;
    *cfg = (struct dsmd_config){ .node = -1, .nnodes = -1, .nranks = -1, .first_rank = -1, .local_ranks = -1,
                                 .consistency = dsmp_at(0)->name, .transport = "tcp", .listen = "127.0.0.1",
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
    cfg->peer_timeout_ms = DSMD_DEFAULT_PEER_TIMEOUT_MS;
    if (peer_env && (parse_u64(peer_env, &v) != 0 || v < 100 || v > 86400000)) {
        fprintf(stderr, "dsmd: DSM_PEER_TIMEOUT_MS=%s is not a number of milliseconds in [100, 86400000]\n", peer_env);
        return DSM_ECONFIG;
    }
    if (peer_env)
        cfg->peer_timeout_ms = v;
    cfg->grant_ahead = DSMD_DEFAULT_GRANT_AHEAD;
    if (ahead_env && (parse_u64(ahead_env, &v) != 0 || v < 1 || v > DSMC_GRANT_RUN_MAX)) {
        fprintf(stderr, "dsmd: DSM_GRANT_AHEAD=%s is not a number of pages in [1, %u] (1: no runs)\n", ahead_env,
                DSMC_GRANT_RUN_MAX);
        return DSM_ECONFIG;
    }
    if (ahead_env)
        cfg->grant_ahead = (int)v;
    cfg->read_ahead = DSMD_DEFAULT_READ_AHEAD;
    if (read_env && (parse_u64(read_env, &v) != 0 || v < 1 || v > DSMP_AHEAD_MAX + 1)) {
        fprintf(stderr, "dsmd: DSM_READ_AHEAD=%s is not a number of pages in [1, %u] (1: one page per fetch)\n",
                read_env, DSMP_AHEAD_MAX + 1);
        return DSM_ECONFIG;
    }
    if (read_env)
        cfg->read_ahead = (int)v;
    cfg->local_hits = 1;
    if (hits_env && strcmp(hits_env, "0") != 0 && strcmp(hits_env, "1") != 0) {
        fprintf(stderr, "dsmd: DSM_LOCAL_HITS=%s is not 0 or 1 (0: every fault asks the daemon)\n", hits_env);
        return DSM_ECONFIG;
    }
    if (hits_env)
        cfg->local_hits = strcmp(hits_env, "1") == 0;
    if (direct_env && *direct_env && strcmp(direct_env, "0") != 0 && strcmp(direct_env, "1") != 0) {
        fprintf(stderr, "dsmd: DSM_DIRECT=%s is not 0 or 1 (1, the default: ranks read pages straight from their "
                "homes where the model allows it; 0: through their daemons)\n", direct_env);
        return DSM_ECONFIG;
    }
    cfg->direct = direct_env == NULL || *direct_env == '\0' || strcmp(direct_env, "1") == 0;
    if (cache_env && *cache_env && parse_size(cache_env, &cfg->cache_size) != 0) {
        fprintf(stderr, "dsmd: DSM_CACHE_SIZE=%s is not a size in bytes (a number, optionally with K, M or G)\n",
                cache_env);
        return DSM_ECONFIG;
    }
options:
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (o == 'h') {
            usage(stdout);
            exit(0);
        }
        if (o == 'V') {
            printf("dsmd (dsm) %s\n", DSM_VERSION_STRING);
            exit(0);
        }
        if (o == '?') {
            usage(stderr);
            return DSM_ECONFIG;
        }
        if (o == 'T' || o == 'P' || o == 'F') {
            cfg->trace |= o == 'T';
            cfg->page_stats |= o == 'P';
            cfg->false_sharing |= o == 'F';
            continue;
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
        case 'M': cfg->memory_nodes = (int)v; break;
        }
    }
    if (cfg->standalone) {
        cfg->node = 0;
        cfg->nnodes = cfg->nranks = cfg->local_ranks = 1;
        cfg->first_rank = 0;
    }
    /* the last memory_nodes nodes run no rank (and node 0 always does) */
    if (cfg->socket == NULL || cfg->node < 0 || cfg->nnodes < 1 || cfg->nranks < 1 || cfg->first_rank < 0 ||
        cfg->node >= cfg->nnodes || cfg->nnodes > DSMD_MAX_NODES || cfg->memory_nodes >= cfg->nnodes ||
        (cfg->local_ranks == 0) != (cfg->node >= cfg->nnodes - cfg->memory_nodes) || cfg->local_ranks < 0 ||
        cfg->first_rank + cfg->local_ranks > cfg->nranks) {
        fprintf(stderr, "dsmd: missing or inconsistent job options\n");
        usage(stderr);
        return DSM_ECONFIG;
    }
    return DSM_OK;
}

/* "EXIT <rank> <status>": dsmrun saw one of this node's ranks exit. */
static void exit_line(struct dsmd *d, char *save)
{
    char *r = strtok_r(NULL, " \t\r\n", &save), *st = strtok_r(NULL, " \t\r\n", &save), *end;
    long rank = r ? strtol(r, &end, 10) : -1, status;

    if (r == NULL || *end || st == NULL || (status = strtol(st, &end, 10), *end) || rank < 0 || rank > INT32_MAX ||
        status < 0 || status > 255) {
        DSM_WARN("ignoring a malformed EXIT line from the launcher");
        return;
    }
    dsmd_clients_rank_exited(d, (int)rank, (int)status);
}

/* One line from dsmrun: "PEERS a0 a1 ..." (every node's address, by node id) or EXIT. */
static void launcher_line(struct dsmd *d, char *line)
{
    char *save = NULL, *tok = strtok_r(line, " \t\r\n", &save);
    int n = 0;

    if (tok != NULL && strcmp(tok, "EXIT") == 0) {
        exit_line(d, save);
        return;
    }
    if (tok != NULL && strcmp(tok, "WAITS") == 0) {
        dsmd_waits_report(d);
        return;
    }
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
        /* every local rank exited without dsm_init: no dsm job ran here, nothing is lost (a
         * memory node: some rank of the job did, so no dsm job ran or it failed already; or
         * no peer ever asked it anything, so it holds nothing: a RANK_ABSENT may still be on
         * its way when the launcher, done, closes stdin) */
        if (d->finishing || d->aborting ||
            (d->cfg.local_ranks > 0 ? d->ranks_absent == d->cfg.local_ranks
                                    : dsmd_sync_absent_from(d, -1) || !d->job_heard))
            dsmd_loop_stop(d->loop, d->aborting ? DSM_EPEER : DSM_OK);
        else
            dsmd_abort(d, DSM_ESTATE, "the launcher went away (stdin closed) before the job finished");
        return;
    }
    used += (size_t)n;
    buf[used] = '\0';
    while ((nl = strchr(buf, '\n')) != NULL) {
        *nl = '\0';
        launcher_line(d, buf);
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

/* Descriptors a daemon needs beyond one connection per peer: its frames, loop, timers,
 * signals, listeners, a few channels per local rank, and room for strangers (tcp.c). */
#define DSMD_FDS_FIXED 64

/* One connection per peer must fit in the open-file limit: raise the soft limit as far as
 * the hard one allows, and fail at start, naming the way out, when that is not enough. */
static dsm_status_t files_enough(const struct dsmd_config *cfg)
{
    rlim_t need = (rlim_t)cfg->nnodes + (rlim_t)cfg->local_ranks * 8 + DSMD_FDS_FIXED;
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= need)
        return DSM_OK;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= need ? need : rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur < need) {
        DSM_ERR("a job of %d nodes needs %llu open files per daemon, this one may have %llu (ulimit -n; "
                "raise the hard limit, or run more ranks per node)", cfg->nnodes, (unsigned long long)need,
                (unsigned long long)rl.rlim_cur);
        return DSM_ECONFIG;
    }
    return DSM_OK;
}

/*
 * Twins, diffs and page buffers come and go with every interval. A heap that gave their
 * pages back to the kernel at each release (glibc trims a free top above 128 KiB) faults
 * them in again, zeroed, at the next interval's first write run: on a 2-vCPU VM that took
 * a 64-page write fault from 20-40 us to 600-1,000 us (docs/BENCHMARKS.md). Keep up to
 * HEAP_KEEP bytes free at the top, and serve buffers up to HEAP_MMAP_MIN from the heap
 * too, as glibc's own threshold adjustment would once the first such buffer is freed.
 */
#define HEAP_KEEP (64u << 20)
#define HEAP_MMAP_MIN (1u << 20)

/* Only speed depends on it, and a sanitizer's allocator refuses every mallopt: say so at
 * DSM_LOG=info, not as a warning on every daemon of every such job. */
static void heap_keep(void)
{
    if (mallopt(M_TRIM_THRESHOLD, HEAP_KEEP) != 1 || mallopt(M_MMAP_THRESHOLD, HEAP_MMAP_MIN) != 1)
        DSM_INFO("mallopt failed: the heap gives freed pages back at once");
}

int main(int argc, char **argv)
{
    struct dsmd d = { .memfd = -1, .listen_fd = -1, .sigfd = -1, .timerfd = -1, .watchfd = -1 };
    char who[64];
    dsm_status_t st;

    signal(SIGPIPE, SIG_IGN);
    if (parse_args(argc, argv, &d.cfg) != DSM_OK) {
        printf("ERROR bad options\n");
        return 2;
    }
    snprintf(who, sizeof(who), "dsmd[node %d]", d.cfg.node);
    dsm_log_init(who);
    heap_keep();
    /* A launcher that dies takes its daemons along, even if stdin's EOF is missed. Not for
     * a standalone daemon: the death signal follows the parent *thread*, and the rank's
     * thread that started us may end long before the rank (its stdin pipe covers it). */
    if (!d.cfg.standalone && prctl(PR_SET_PDEATHSIG, SIGTERM) < 0)
        DSM_WARN("prctl(PR_SET_PDEATHSIG): %s", strerror(errno));
    if ((st = files_enough(&d.cfg)) != DSM_OK || (st = secret_read(&d.cfg)) != DSM_OK ||
        (st = dsmd_placement_start(&d.cfg)) != DSM_OK || /* bound before anything allocates */
        (st = dsmd_loop_create(&d.loop)) != DSM_OK || (st = dsmd_node_setup(&d)) != DSM_OK ||
        (st = inputs_setup(&d)) != DSM_OK || (st = dsmd_clients_init(&d)) != DSM_OK ||
        (st = dsmd_peers_init(&d)) != DSM_OK || (st = dsmd_direct_init(&d)) != DSM_OK ||
        (st = dsmd_watchdog_init(&d)) != DSM_OK) {
        dsmd_announce(&d, "ERROR node %d failed to start: %s", d.cfg.node, dsm_status_str(st));
        dsmd_node_teardown(&d);
        dsmd_placement_fini();
        if (d.sigfd >= 0)
            close(d.sigfd);
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
    if (st == DSM_OK)
        st = dsmd_node_check_channels(&d);
    dsm_log_flush();
    dsmd_node_print_stats(&d);
    dsmd_trace_print(&d);
    dsmd_hot_print(&d);
    dsmd_fs_print(&d);
    dsmd_node_teardown(&d);
    dsmd_placement_fini();
    if (d.sigfd >= 0)
        close(d.sigfd);
    if (d.cfg.standalone)
        remove_socket_dir(d.cfg.socket);
    return st == DSM_OK ? 0 : 1;
}

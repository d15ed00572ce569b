/* daemon_spawn.c - start, await and reap a standalone rank's private dsmd; see daemon_spawn.h. */
#include "daemon_spawn.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dsm_log.h"

#ifndef DSM_INSTALL_DSMD
#define DSM_INSTALL_DSMD "/usr/local/libexec/dsm/dsmd"
#endif

#define START_TIMEOUT_MS 30000 /* READY and MESH must come within this */
#define EXIT_TIMEOUT_MS  10000 /* after its stdin closes, the daemon must exit within this */

extern char **environ;

static const char g_anchor; /* an address inside libdsm.so, for dladdr */

static int64_t now_ms(void)
{
    struct timespec ts = { 0, 0 };

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool executable(const char *path)
{
    struct stat sb;

    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode) && access(path, X_OK) == 0;
}

/* "<dir of libdsm.so>/../<rel>" into out (an installation: libexec/dsm/dsmd; the build
 * tree: bin/dsmd), or false when libdsm's path is unknown. */
static bool beside_library(const char *rel, char *out, size_t n)
{
    Dl_info info;
    const char *slash;

    if (dladdr(&g_anchor, &info) == 0 || info.dli_fname == NULL)
        return false;
    slash = strrchr(info.dli_fname, '/');
    if (slash == NULL)
        return false;
    return snprintf(out, n, "%.*s/../%s", (int)(slash - info.dli_fname), info.dli_fname, rel) < (int)n;
}

/* The first executable "<entry>/dsmd" along $PATH into out. */
static bool on_path(char *out, size_t n)
{
    const char *p = getenv("PATH");

    while (p != NULL && *p != '\0') {
        const char *end = strchrnul(p, ':');
        int len = (int)(end - p);
        if (snprintf(out, n, "%.*s/dsmd", len, len > 0 ? p : ".") < (int)n && executable(out))
            return true;
        p = *end == ':' ? end + 1 : end;
    }
    return false;
}

/* Find the dsmd executable (see daemon_spawn.h for the order). Returns 0 or a status (logged). */
static dsm_status_t find_dsmd(char *out, size_t n)
{
    const char *env = getenv("DSM_DSMD");

    if (env != NULL && *env != '\0') {
        if (!executable(env) || snprintf(out, n, "%s", env) >= (int)n) {
            DSM_ERR("DSM_DSMD=%s is not an executable file", env);
            return DSM_ECONFIG;
        }
        return 0;
    }
    if (beside_library("libexec/dsm/dsmd", out, n) && executable(out))
        return 0;
    if (beside_library("bin/dsmd", out, n) && executable(out))
        return 0;
    if (snprintf(out, n, "%s", DSM_INSTALL_DSMD) < (int)n && executable(out))
        return 0;
    if (on_path(out, n))
        return 0;
    DSM_ERR("cannot find dsmd to run this program as a one-rank job: looked beside libdsm "
            "(../libexec/dsm, ../bin), at %s and on PATH; set DSM_DSMD, or start the program "
            "with dsmrun", DSM_INSTALL_DSMD);
    return DSM_ENODAEMON;
}

/* Create the private directory and the socket path in it. Returns 0 or a status (logged). */
static dsm_status_t make_dir(struct dsm_daemon *d)
{
    const char *tmp = getenv("TMPDIR");

    if (tmp == NULL || *tmp == '\0')
        tmp = "/tmp";
    if (snprintf(d->dir, sizeof(d->dir), "%s/dsm-XXXXXX", tmp) >= (int)sizeof(d->dir) ||
        snprintf(d->socket, sizeof(d->socket), "%s/node-0.sock", d->dir) >= (int)sizeof(d->socket)) {
        DSM_ERR("TMPDIR=%s is too long for a socket path", tmp);
        d->dir[0] = '\0';
        return DSM_ECONFIG;
    }
    if (mkdtemp(d->dir) == NULL) {
        DSM_ERR("cannot create a directory for the daemon's socket (%s): %s", d->dir, strerror(errno));
        d->dir[0] = '\0';
        return DSM_ESYS;
    }
    memcpy(d->socket, d->dir, strlen(d->dir)); /* the same prefix, its X's now filled in */
    return 0;
}

/* Build the daemon's argv (pointers into the environment and d; nothing allocated). */
static void build_argv(const struct dsm_daemon *d, const char *dsmd, char *argv[9])
{
    const char *model = getenv("DSM_CONSISTENCY");
    const char *space = getenv("DSM_SPACE_SIZE");
    size_t n = 0;

    argv[n++] = (char *)dsmd;
    argv[n++] = (char *)"--standalone";
    argv[n++] = (char *)"--socket";
    argv[n++] = (char *)d->socket;
    if (model != NULL && *model != '\0') {
        argv[n++] = (char *)"--consistency";
        argv[n++] = (char *)model;
    }
    if (space != NULL && *space != '\0') {
        argv[n++] = (char *)"--space-size";
        argv[n++] = (char *)space;
    }
    argv[n] = NULL;
}

/*
 * Run dsmd with in[0] as its stdin and out[1] as its stdout, no other descriptor of the
 * application but stderr, default signal dispositions and an empty signal mask (whatever
 * the application set). Returns 0 or an errno value.
 */
static int spawn(pid_t *pid, const char *dsmd, char *argv[], const int in[2], const int out[2])
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    sigset_t none, all;
    int err;

    sigemptyset(&none);
    sigfillset(&all);
    err = posix_spawn_file_actions_init(&fa);
    if (err != 0)
        return err;
    err = posix_spawnattr_init(&attr);
    if (err != 0)
        goto out_fa;
    if ((err = posix_spawn_file_actions_adddup2(&fa, in[0], STDIN_FILENO)) != 0 ||
        (err = posix_spawn_file_actions_adddup2(&fa, out[1], STDOUT_FILENO)) != 0 ||
        (err = posix_spawn_file_actions_addclosefrom_np(&fa, STDERR_FILENO + 1)) != 0 ||
        (err = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF)) != 0 ||
        (err = posix_spawnattr_setsigmask(&attr, &none)) != 0 ||
        (err = posix_spawnattr_setsigdefault(&attr, &all)) != 0)
        goto out_attr;
    err = posix_spawn(pid, dsmd, &fa, &attr, argv, environ);
out_attr:
    posix_spawnattr_destroy(&attr);
out_fa:
    posix_spawn_file_actions_destroy(&fa);
    return err;
}

/* Start dsmd on fresh pipes; fills pid, in_fd, out_fd. Returns 0 or a status (logged). */
static dsm_status_t start(struct dsm_daemon *d, const char *dsmd)
{
    char *argv[9];
    int in[2], out[2], err;

    build_argv(d, dsmd, argv);
    if (pipe2(in, O_CLOEXEC) != 0)
        goto fail_pipe;
    if (pipe2(out, O_CLOEXEC) != 0) {
        close(in[0]);
        close(in[1]);
        goto fail_pipe;
    }
    err = spawn(&d->pid, dsmd, argv, in, out);
    close(in[0]);
    close(out[1]);
    if (err != 0) {
        close(in[1]);
        close(out[0]);
        d->pid = 0;
        DSM_ERR("cannot start %s: %s", dsmd, strerror(err));
        return DSM_ENODAEMON;
    }
    d->in_fd = in[1];
    d->out_fd = out[0];
    return 0;
fail_pipe:
    DSM_ERR("cannot create pipes for the daemon: %s", strerror(errno));
    return DSM_ESYS;
}

/* Log how the daemon ended if it has (non-blocking); for messages about an early exit. */
static void report_exit(struct dsm_daemon *d)
{
    int ws;

    if (waitpid(d->pid, &ws, WNOHANG) != d->pid)
        return;
    d->pid = 0;
    if (WIFEXITED(ws))
        DSM_ERR("dsmd exited with status %d", WEXITSTATUS(ws));
    else if (WIFSIGNALED(ws))
        DSM_ERR("dsmd was killed by signal %d", WTERMSIG(ws));
}

/*
 * Handle one line of the daemon's stdout while it starts: 1 when it is ready (MESH),
 * 0 to keep reading, a status (logged) when it failed (ERROR).
 */
static int start_line(const char *line)
{
    if (strncmp(line, "MESH", 4) == 0)
        return 1;
    if (strncmp(line, "ERROR", 5) == 0) {
        DSM_ERR("dsmd failed to start:%s", line + 5);
        return DSM_ENODAEMON;
    }
    DSM_DEBUG("dsmd: %s", line);
    return 0;
}

/* Read the daemon's stdout until MESH (bounded). Returns 0 or a status (logged). */
static dsm_status_t await_ready(struct dsm_daemon *d)
{
    int64_t deadline = now_ms() + START_TIMEOUT_MS;
    char buf[1024];
    size_t len = 0;

    for (;;) {
        char *nl;
        struct pollfd pfd = { .fd = d->out_fd, .events = POLLIN };
        int64_t left = deadline - now_ms();
        ssize_t n;
        int r;

        while ((nl = memchr(buf, '\n', len)) != NULL) {
            *nl = '\0';
            r = start_line(buf);
            if (r != 0)
                return r > 0 ? 0 : r;
            len -= (size_t)(nl + 1 - buf);
            memmove(buf, nl + 1, len);
        }
        if (len == sizeof(buf))
            len = 0; /* an absurdly long line: drop it */
        if (left <= 0) {
            DSM_ERR("dsmd did not become ready within %d s", START_TIMEOUT_MS / 1000);
            return DSM_ETIMEDOUT;
        }
        r = poll(&pfd, 1, (int)left);
        if (r < 0 && errno != EINTR) {
            DSM_ERR("poll on the daemon's output: %s", strerror(errno));
            return DSM_ESYS;
        }
        if (r <= 0)
            continue;
        n = read(d->out_fd, buf + len, sizeof(buf) - len);
        if (n < 0 && errno != EINTR) {
            DSM_ERR("reading the daemon's output: %s", strerror(errno));
            return DSM_ESYS;
        }
        if (n == 0) {
            DSM_ERR("dsmd ended before it was ready");
            report_exit(d);
            return DSM_ENODAEMON;
        }
        if (n > 0)
            len += (size_t)n;
    }
}

dsm_status_t dsm_daemon_spawn(struct dsm_daemon *d)
{
    char dsmd[PATH_MAX];
    dsm_status_t st;

    d->pid = 0;
    d->in_fd = d->out_fd = -1;
    d->dir[0] = d->socket[0] = '\0';
    st = find_dsmd(dsmd, sizeof(dsmd));
    if (st != 0)
        return st;
    st = make_dir(d);
    if (st != 0)
        return st;
    st = start(d, dsmd);
    if (st == 0)
        st = await_ready(d);
    if (st != 0) {
        dsm_daemon_reap(d);
        return st;
    }
    DSM_DEBUG("started %s (pid %d) on %s", dsmd, (int)d->pid, d->socket);
    return 0;
}

/* Read and discard the daemon's last output (its STATS line) until end of file or the deadline. */
static void drain(int fd, int64_t deadline)
{
    char buf[4096];

    for (;;) {
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        int64_t left = deadline - now_ms();
        ssize_t n;
        int r;

        if (left <= 0)
            return;
        r = poll(&pfd, 1, (int)left);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return;
        n = read(fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        DSM_DEBUG("dsmd: %.*s", (int)n, buf);
    }
}

/* Wait for the daemon to exit until the deadline, then kill it. Logs an abnormal end. */
static void await_exit(pid_t pid, int64_t deadline)
{
    struct timespec tick = { .tv_sec = 0, .tv_nsec = 10 * 1000 * 1000 };
    pid_t r;
    int ws = 0;

    while ((r = waitpid(pid, &ws, WNOHANG)) == 0 && now_ms() < deadline)
        nanosleep(&tick, NULL);
    if (r == 0) {
        DSM_WARN("dsmd (pid %d) did not exit within %d s; killing it", (int)pid, EXIT_TIMEOUT_MS / 1000);
        kill(pid, SIGKILL);
        while ((r = waitpid(pid, &ws, 0)) < 0 && errno == EINTR)
            ;
    }
    if (r < 0) {
        if (errno != ECHILD) /* ECHILD: the application reaps children itself */
            DSM_WARN("waiting for dsmd: %s", strerror(errno));
        return;
    }
    if (WIFEXITED(ws) && WEXITSTATUS(ws) != 0)
        DSM_WARN("dsmd exited with status %d", WEXITSTATUS(ws));
    else if (WIFSIGNALED(ws) && r == pid)
        DSM_WARN("dsmd was killed by signal %d", WTERMSIG(ws));
}

void dsm_daemon_reap(struct dsm_daemon *d)
{
    int64_t deadline = now_ms() + EXIT_TIMEOUT_MS;

    if (d->in_fd >= 0)
        close(d->in_fd); /* end of file on its stdin: the daemon exits */
    if (d->out_fd >= 0) {
        drain(d->out_fd, deadline);
        close(d->out_fd);
    }
    d->in_fd = d->out_fd = -1;
    if (d->pid > 0)
        await_exit(d->pid, deadline);
    d->pid = 0;
    if (d->socket[0] != '\0' && unlink(d->socket) != 0 && errno != ENOENT)
        DSM_WARN("cannot remove %s: %s", d->socket, strerror(errno));
    if (d->dir[0] != '\0' && rmdir(d->dir) != 0 && errno != ENOENT) /* dsmd may have removed it */
        DSM_WARN("cannot remove %s: %s", d->dir, strerror(errno));
    d->socket[0] = d->dir[0] = '\0';
}

/*
 * numa_affinity.c - what dsm_parallel's threads and the node's dsmd are bound to, as the
 * kernel says (sched_getaffinity), for numa_test.py to hold against the --report-bindings
 * lines.
 *
 * usage: numa_affinity [-t THREADS]      (default 2)
 *
 * The threads record their CPU mask, add 1 to a shared counter under one lock (threads of a
 * rank contend for it too) and meet at dsm_thread_barrier, after which the counter must be
 * THREADS x ranks. Then the rank prints, all at once at the end:
 *   affinity rank R thread T cpus LIST   (each thread, inside dsm_parallel)
 *   affinity rank R main cpus LIST       (thread 0 after dsm_parallel returned)
 *   affinity rank R dsmd cpus LIST       (its node's daemon, found in /proc)
 *   frames rank R policy P dsmd Q        (memory policy of the frames' mapping in this rank
 *                                         and in its dsmd, from /proc/PID/numa_maps; ? if none)
 *   numa_affinity: rank R: OK            (or FAILED with the reason on stderr)
 */
#define _GNU_SOURCE
#include <dsm/dsm.h>

#include <ctype.h>
#include <dirent.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_THREADS 64
#define LOCK_ID     4242u

struct shared {
    long *counter;               /* DSM */
    char  mask[MAX_THREADS][256];/* private: each thread's CPU list */
    _Atomic int errors;
};

/* The CPU list of `set` ("0,3,5") into buf. */
static void cpu_list(const cpu_set_t *set, char *buf, size_t n)
{
    size_t len = 0;

    buf[0] = '\0';
    for (int c = 0; c < CPU_SETSIZE && len < n; c++)
        if (CPU_ISSET(c, set))
            len += (size_t)snprintf(buf + len, n - len, "%s%d", len ? "," : "", c);
}

/* The CPU list of thread/process `pid` (0: the caller) into buf; -1 on error. */
static int affinity_of(pid_t pid, char *buf, size_t n)
{
    cpu_set_t set;

    if (sched_getaffinity(pid, sizeof(set), &set) != 0)
        return -1;
    cpu_list(&set, buf, n);
    return 0;
}

static void body(int tid, int nthreads, void *arg)
{
    struct shared *s = arg;
    int rc;

    if (affinity_of(0, s->mask[tid], sizeof(s->mask[tid])) != 0)
        s->errors++;
    if ((rc = dsm_lock(LOCK_ID)) != 0 || (++*s->counter, (rc = dsm_unlock(LOCK_ID)) != 0)) {
        fprintf(stderr, "numa_affinity: rank %d thread %d: lock: %s\n", dsm_rank(), tid, dsm_strerror(rc));
        s->errors++;
    }
    if ((rc = dsm_thread_barrier()) != 0) {
        fprintf(stderr, "numa_affinity: rank %d thread %d: dsm_thread_barrier: %s\n", dsm_rank(), tid,
                dsm_strerror(rc));
        s->errors++;
    }
    if (*s->counter != (long)nthreads * dsm_nranks()) {
        fprintf(stderr, "numa_affinity: rank %d thread %d: counter %ld after the barrier, expected %ld\n",
                dsm_rank(), tid, *s->counter, (long)nthreads * dsm_nranks());
        s->errors++;
    }
}

/* The memory policy of the frames' mapping in /proc/PID/numa_maps ("local", "default", ...)
 * into buf; "?" when the kernel has no numa_maps or no such mapping. */
static void frames_policy(const char *pid, char *buf, size_t n)
{
    char path[64], line[512];
    FILE *f;

    snprintf(buf, n, "?");
    snprintf(path, sizeof(path), "/proc/%s/numa_maps", pid);
    if ((f = fopen(path, "r")) == NULL)
        return;
    while (fgets(line, sizeof(line), f) != NULL) {
        char addr[32], pol[32];

        if (strstr(line, "dsm-frames") != NULL && sscanf(line, "%31s %31s", addr, pol) == 2) {
            snprintf(buf, n, "%s", pol);
            break;
        }
    }
    fclose(f);
}

/* Whether /proc/PID is a dsmd whose parent is `parent` and, with dsmrun, serves node `node`. */
static int is_our_daemon(const char *pid, pid_t parent, const char *node)
{
    char path[300], buf[4096];
    FILE *f;
    size_t n;
    char *close_paren;
    int ppid = -1, found = node == NULL;

    snprintf(path, sizeof(path), "/proc/%s/stat", pid);
    if ((f = fopen(path, "r")) == NULL)
        return 0;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    close_paren = strrchr(buf, ')');
    if (strstr(buf, "(dsmd)") == NULL || close_paren == NULL || sscanf(close_paren + 2, "%*c %d", &ppid) != 1 ||
        ppid != parent)
        return 0;
    snprintf(path, sizeof(path), "/proc/%s/cmdline", pid);
    if ((f = fopen(path, "r")) == NULL)
        return 0;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    for (size_t i = 0; i < n && !found; i += strlen(buf + i) + 1)
        found = strcmp(buf + i, "--node") == 0 && i + 7 < n && strcmp(buf + i + 7, node) == 0;
    return found;
}

/* The pid of this rank's daemon: a child of dsmrun serving DSM_NODE, or our own child. */
static pid_t find_daemon(void)
{
    const char *node = getenv("DSM_SOCKET") ? getenv("DSM_NODE") : NULL;
    pid_t parent = node ? getppid() : getpid();
    DIR *d = opendir("/proc");
    struct dirent *e;
    pid_t found = -1;

    while (d != NULL && (e = readdir(d)) != NULL && found < 0)
        if (isdigit((unsigned char)e->d_name[0]) && is_our_daemon(e->d_name, parent, node))
            found = (pid_t)atoi(e->d_name);
    if (d != NULL)
        closedir(d);
    return found;
}

int main(int argc, char **argv)
{
    static struct shared s;
    char main_mask[256], dsmd_mask[256];
    int nthreads = 2, rc, r, bad;
    pid_t dsmd;

    if (argc == 3 && strcmp(argv[1], "-t") == 0)
        nthreads = atoi(argv[2]);
    if (nthreads < 1 || nthreads > MAX_THREADS || (argc != 1 && argc != 3)) {
        fprintf(stderr, "usage: numa_affinity [-t THREADS (1..%d)]\n", MAX_THREADS);
        return 2;
    }
    if ((rc = dsm_init(&argc, &argv)) != 0) {
        fprintf(stderr, "numa_affinity: dsm_init: %s\n", dsm_strerror(rc));
        return 1;
    }
    r = dsm_rank();
    s.counter = dsm_coalloc(sizeof(long));
    if (s.counter == NULL || (rc = dsm_parallel(nthreads, body, &s)) != 0) {
        fprintf(stderr, "numa_affinity: rank %d: %s\n", r, s.counter ? dsm_strerror(rc) : "dsm_coalloc failed");
        s.errors++;
    }
    dsmd = find_daemon();
    if (affinity_of(0, main_mask, sizeof(main_mask)) != 0 || dsmd < 0 ||
        affinity_of(dsmd, dsmd_mask, sizeof(dsmd_mask)) != 0) {
        fprintf(stderr, "numa_affinity: rank %d: %s\n", r, dsmd < 0 ? "cannot find its dsmd" : "sched_getaffinity");
        s.errors++;
    }
    for (int t = 0; t < nthreads; t++)
        printf("affinity rank %d thread %d cpus %s\n", r, t, s.mask[t]);
    printf("affinity rank %d main cpus %s\n", r, main_mask);
    printf("affinity rank %d dsmd cpus %s\n", r, dsmd >= 0 ? dsmd_mask : "?");
    if (dsmd >= 0) {
        char self_pol[32], dsmd_pol[32], pid[24];

        snprintf(pid, sizeof(pid), "%d", (int)dsmd);
        frames_policy("self", self_pol, sizeof(self_pol));
        frames_policy(pid, dsmd_pol, sizeof(dsmd_pol));
        printf("frames rank %d policy %s dsmd %s\n", r, self_pol, dsmd_pol);
    }
    bad = s.errors != 0;
    printf("numa_affinity: rank %d: %s\n", r, bad ? "FAILED" : "OK");
    fflush(stdout);
    if ((rc = dsm_finalize()) != 0) {
        fprintf(stderr, "numa_affinity: dsm_finalize: %s\n", dsm_strerror(rc));
        bad = 1;
    }
    return bad;
}

/*
 * wakebench.c - what one rank <-> daemon round trip costs with each way of waking a process:
 * the prototype behind the choice of the fault path's channel (docs/BENCHMARKS.md, "Waking
 * a process").
 *
 * A parent and a forked child play rank and daemon: the parent sends a 160-byte request
 * (the size of a FAULT), the child answers 160 bytes (a GRANT), REPS times, one at a time.
 * Mechanisms:
 *   unix     AF_UNIX SOCK_SEQPACKET pair, blocking recv (what libdsm and dsmd use now;
 *            `+spin` polls with MSG_DONTWAIT first, as DSM_FAULT_SPIN_US does)
 *   eventfd  the messages in a shared-memory slot, an eventfd per direction to wake the
 *            other side (epoll-able: the daemon's loop could wait on it)
 *   futex    the messages in a shared-memory slot, a process-shared futex word per
 *            direction (async-signal-safe on the rank side; not epoll-able)
 * Each runs without polling and with the waiter polling the slot for up to SPIN_US (`+spin`)
 * before it sleeps. A round of every variant runs in turn, ROUNDS rounds interleaved, so the
 * machine's load falls on all alike; the table gives the median over all samples of each
 * variant and its ratio to `unix` of the same run. Every answer is checked (it echoes the
 * request's sequence number): a wrong one exits 1.
 *
 * usage: wakebench [-r REPS] [-R ROUNDS] [-s SPIN_US] [-t]   (defaults 2000, 5, 50)
 *        -t: tight loop (no pause between samples); by default each sample starts after
 *        a 50 us pause, so both sides sleep between exchanges as a rank and its daemon do
 *        between faults.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MSG 160
#define NVARIANTS 6

enum mech { M_UNIX, M_EVENTFD, M_FUTEX };

/* One direction's mailbox in shared memory: seq is bumped after the bytes are written. */
struct slot {
    _Atomic uint32_t seq;
    _Atomic uint32_t sleeping; /* futex: the reader may be asleep, wake it */
    uint8_t data[MSG];
};

struct shared {
    struct slot req, rep;
    _Atomic int stop;
};

struct variant {
    const char *name;
    enum mech mech;
    int spin;
    double *us;
    size_t n;
};

static long spin_us = 50;

static int64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static long futex(_Atomic uint32_t *w, int op, uint32_t val)
{
    return syscall(SYS_futex, (uint32_t *)w, op, val, NULL, NULL, 0);
}

/* Poll `w` for a value other than `old` for up to spin_us; 1 if it changed. */
static int spin_for(_Atomic uint32_t *w, uint32_t old)
{
    int64_t end = now_ns() + spin_us * 1000;

    while (atomic_load_explicit(w, memory_order_acquire) == old)
        if (now_ns() > end)
            return 0;
    return 1;
}

/* Wait until slot s's seq moves past old: poll first if spin, then sleep on the mechanism. */
static void slot_wait(struct slot *s, uint32_t old, enum mech m, int efd, int spin)
{
    uint64_t v;

    if (spin && spin_for(&s->seq, old))
        return;
    if (m == M_EVENTFD) {
        while (atomic_load_explicit(&s->seq, memory_order_acquire) == old)
            if (read(efd, &v, sizeof(v)) != (ssize_t)sizeof(v) && errno != EINTR)
                die("eventfd read");
        return;
    }
    while (atomic_load_explicit(&s->seq, memory_order_acquire) == old) {
        atomic_store(&s->sleeping, 1);
        if (atomic_load(&s->seq) != old)
            break;
        if (futex(&s->seq, FUTEX_WAIT, old) < 0 && errno != EAGAIN && errno != EINTR)
            die("futex wait");
    }
    atomic_store(&s->sleeping, 0);
}

/* Put msg in slot s and wake its reader. */
static void slot_post(struct slot *s, const uint8_t *msg, enum mech m, int efd)
{
    uint64_t one = 1;

    memcpy(s->data, msg, MSG);
    atomic_fetch_add_explicit(&s->seq, 1, memory_order_release);
    if (m == M_EVENTFD) {
        if (write(efd, &one, sizeof(one)) != (ssize_t)sizeof(one))
            die("eventfd write");
    } else if (atomic_load(&s->sleeping) && futex(&s->seq, FUTEX_WAKE, 1) < 0) {
        die("futex wake");
    }
}

/* recv one message on a unix socket: poll with MSG_DONTWAIT for up to spin_us if spin. */
static ssize_t sock_recv(int sock, uint8_t *msg, int spin)
{
    int64_t end = now_ns() + spin_us * 1000;

    while (spin) {
        ssize_t r = recv(sock, msg, MSG, MSG_DONTWAIT);

        if (r >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
            return r;
        if (now_ns() > end)
            break;
    }
    return recv(sock, msg, MSG, 0);
}

/* The daemon's side: answer every request with its sequence number until told to stop. */
static void child(struct shared *sh, enum mech m, int spin, int sock, int efd_req, int efd_rep)
{
    uint8_t msg[MSG];
    uint32_t seen = 0;

    for (;;) {
        if (m == M_UNIX) {
            ssize_t r = sock_recv(sock, msg, spin);

            if (r == 0)
                _exit(0);
            if (r != MSG)
                die("child recv");
            if (send(sock, msg, MSG, 0) != MSG)
                die("child send");
            continue;
        }
        slot_wait(&sh->req, seen, m, efd_req, spin);
        seen = atomic_load(&sh->req.seq);
        if (atomic_load(&sh->stop))
            _exit(0);
        memcpy(msg, sh->req.data, MSG);
        slot_post(&sh->rep, msg, m, efd_rep);
    }
}

/* One variant, reps samples, appended to v->us. */
static void run(struct variant *v, long reps, int tight)
{
    struct shared *sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    int sv[2] = { -1, -1 }, efd_req = -1, efd_rep = -1, status;
    uint8_t msg[MSG];
    uint32_t seen = 0;
    pid_t pid;

    if (sh == MAP_FAILED)
        die("mmap");
    memset(sh, 0, sizeof(*sh));
    if (v->mech == M_UNIX && socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) < 0)
        die("socketpair");
    if (v->mech == M_EVENTFD && ((efd_req = eventfd(0, 0)) < 0 || (efd_rep = eventfd(0, 0)) < 0))
        die("eventfd");
    pid = fork();
    if (pid < 0)
        die("fork");
    if (pid == 0) {
        if (sv[0] >= 0)
            close(sv[0]);
        child(sh, v->mech, v->spin, sv[1], efd_req, efd_rep);
    }
    if (sv[1] >= 0)
        close(sv[1]);
    for (long i = -100; i < reps; i++) { /* 100 warm-up exchanges */
        struct timespec pause = { 0, 50000 };
        uint32_t want = (uint32_t)(i + 101), got;
        int64_t t0;

        if (!tight)
            nanosleep(&pause, NULL);
        memcpy(msg, &want, sizeof(want));
        t0 = now_ns();
        if (v->mech == M_UNIX) {
            if (send(sv[0], msg, MSG, 0) != MSG || sock_recv(sv[0], msg, v->spin) != MSG)
                die("parent send/recv");
        } else {
            slot_post(&sh->req, msg, v->mech, efd_req);
            slot_wait(&sh->rep, seen, v->mech, efd_rep, v->spin);
            seen = atomic_load(&sh->rep.seq);
            memcpy(msg, sh->rep.data, MSG);
        }
        memcpy(&got, msg, sizeof(got));
        if (got != want) {
            fprintf(stderr, "wakebench: %s: answer %u to request %u\n", v->name, got, want);
            exit(1);
        }
        if (i >= 0)
            v->us[v->n++] = (double)(now_ns() - t0) / 1000.0;
    }
    if (v->mech == M_UNIX) {
        close(sv[0]);
    } else {
        atomic_store(&sh->stop, 1);
        slot_post(&sh->req, msg, v->mech, efd_req);
    }
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "wakebench: %s: the echo process failed\n", v->name);
        exit(1);
    }
    if (efd_req >= 0)
        close(efd_req);
    if (efd_rep >= 0)
        close(efd_rep);
    munmap(sh, sizeof(*sh));
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

static double median(struct variant *v)
{
    qsort(v->us, v->n, sizeof(double), cmp_double);
    return v->n ? v->us[v->n / 2] : 0;
}

int main(int argc, char **argv)
{
    long reps = 2000, rounds = 5;
    int tight = 0, opt;
    struct variant vs[NVARIANTS] = {
        { "unix", M_UNIX, 0, NULL, 0 },       { "unix+spin", M_UNIX, 1, NULL, 0 },
        { "eventfd", M_EVENTFD, 0, NULL, 0 }, { "eventfd+spin", M_EVENTFD, 1, NULL, 0 },
        { "futex", M_FUTEX, 0, NULL, 0 },     { "futex+spin", M_FUTEX, 1, NULL, 0 },
    };
    double base;

    while ((opt = getopt(argc, argv, "r:R:s:t")) != -1) {
        switch (opt) {
        case 'r': reps = atol(optarg); break;
        case 'R': rounds = atol(optarg); break;
        case 's': spin_us = atol(optarg); break;
        case 't': tight = 1; break;
        default:
            fprintf(stderr, "usage: wakebench [-r REPS] [-R ROUNDS] [-s SPIN_US] [-t]\n");
            return 2;
        }
    }
    if (reps < 1 || rounds < 1 || spin_us < 0) {
        fprintf(stderr, "wakebench: REPS and ROUNDS must be positive, SPIN_US not negative\n");
        return 2;
    }
    for (int k = 0; k < NVARIANTS; k++) {
        vs[k].us = malloc(sizeof(double) * (size_t)(reps * rounds));
        if (vs[k].us == NULL)
            die("malloc");
    }
    for (long r = 0; r < rounds; r++)
        for (int k = 0; k < NVARIANTS; k++)
            run(&vs[k], reps, tight);
    printf("wakebench: %ld x %ld round trips of %d bytes each way, %s, spin %ld us\n", rounds, reps, MSG,
           tight ? "tight loop" : "50 us pause between samples", spin_us);
    printf("%-14s %10s %8s\n", "mechanism", "median_us", "x unix");
    base = median(&vs[0]);
    for (int k = 0; k < NVARIANTS; k++) {
        double m = median(&vs[k]);

        printf("%-14s %10.1f %8.2f\n", vs[k].name, m, base > 0 ? m / base : 0);
        free(vs[k].us);
    }
    return 0;
}

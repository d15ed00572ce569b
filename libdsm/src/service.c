/* service.c - the per-rank service thread; see service.h. */
#include "service.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "channel.h"
#include "dsm_log.h"
#include "hits.h"
#include "runtime.h"
#include "sigsafe.h"

static pthread_t g_thread;

/* Print "dsm: rank R: <what><detail>" and end the rank. */
static _Noreturn void die(const char *what, const char *detail)
{
    struct dsm_sline l;

    dsm_sline_begin(&l, dsm_rt.rank);
    dsm_sline_str(&l, what);
    dsm_sline_str(&l, detail);
    dsm_rt_die(&l);
}

/* The daemon's channel ended (st): fine while finalizing, fatal otherwise. */
static void channel_ended(dsm_status_t st)
{
    struct dsm_sline l;

    if (dsm_rt_state() == DSM_RT_FINALIZING)
        return;
    dsm_sline_begin(&l, dsm_rt.rank);
    if (st == DSM_ENODAEMON) {
        dsm_sline_str(&l, "lost connection to its daemon (dsmd on node ");
    } else {
        dsm_sline_str(&l, "service channel failed (");
        dsm_sline_str(&l, dsm_status_str(st));
        dsm_sline_str(&l, ") with its daemon (dsmd on node ");
    }
    dsm_sline_i64(&l, dsm_rt.node);
    dsm_sline_str(&l, ")");
    dsm_rt_die(&l);
}

#define GRANT_WAIT_LIMIT_S 30 /* a handler holds a grant only for its mprotect */

/*
 * Wait until the fault handlers have applied `grants` grants of `page` (dsm_chan.h): the
 * daemon sent them before this PROTECT, and their mprotect must not land after ours. The
 * wait is normally zero or a few microseconds; a handler that never finishes is fatal.
 */
static void await_grants(uint64_t page, uint32_t grants)
{
    struct timespec nap = { .tv_sec = 0, .tv_nsec = 20000 };
    long naps = (long)GRANT_WAIT_LIMIT_S * 1000000000L / nap.tv_nsec;

    if (page >= dsm_vm_npages(&dsm_rt.vm))
        return; /* dsm_vm_protect refuses it below */
    for (int spins = 0;; spins++) {
        uint32_t done = atomic_load_explicit(&dsm_rt.applied[page], memory_order_acquire);

        if ((int32_t)(done - grants) >= 0)
            return;
        if (spins < 100)
            continue;
        if (--naps < 0)
            die("a fault handler never applied its grant; revocation stuck", "");
        nanosleep(&nap, NULL);
    }
}

/*
 * Wait until no hit of this rank is under way on [first, first+n) (dsm_hits.h): a hit whose
 * claim the daemon saw before sending this PROTECT may not have made its mprotect yet, and
 * that must not land after ours. A hit holds a page for a few instructions and one mprotect.
 */
static void await_hits(uint64_t first, uint64_t n)
{
    struct timespec nap = { .tv_sec = 0, .tv_nsec = 20000 };
    long naps = (long)GRANT_WAIT_LIMIT_S * 1000000000L / nap.tv_nsec;

    if (first >= dsm_vm_npages(&dsm_rt.vm) || n > dsm_vm_npages(&dsm_rt.vm) - first)
        return; /* dsm_vm_protect refuses it below */
    for (uint64_t q = first; q < first + n; q++) {
        for (int spins = 0; dsm_hits_busy(q); spins++) {
            if (spins < 100)
                continue;
            if (--naps < 0)
                die("a fault handler never finished a node-local hit; revocation stuck", "");
            nanosleep(&nap, NULL);
        }
    }
}

/* Apply one PROTECT and acknowledge it; a malformed one is fatal (the daemon is confused). */
static void apply_protect(int fd, const struct dsmc_msg *m)
{
    struct dsmc_msg ack;
    dsm_status_t st;

    if (m->b == 1)
        await_grants(m->a, (uint32_t)m->d);
    await_hits(m->a, m->b);
    st = dsm_vm_protect(&dsm_rt.vm, m->a, m->b, m->c);

    if (st == DSM_EINVAL)
        die("malformed PROTECT from its daemon: ", "page range or access level out of bounds");
    if (st != 0)
        die("applying its daemon's protection change: ",
            errno == ENOMEM ? dsm_vm_protect_why(errno) : strerror(errno));
    dsm_channel_msg(&ack, DSMC_PROTECT_ACK);
    ack.seq = m->seq;
    st = dsm_channel_send(fd, &ack);
    if (st != 0)
        channel_ended(st);
}

static void *service_main(void *arg)
{
    int fd = dsm_rt.service_fd;
    struct dsmc_msg m;

    for (;;) {
        dsm_status_t st = dsm_channel_recv(fd, &m, true, NULL);
        if (st != 0) {
            channel_ended(st);
            return NULL;
        }
        switch (m.op) {
        case DSMC_PROTECT:
            apply_protect(fd, &m);
            break;
        case DSMC_ABORT:
            die(m.text[0] != '\0' ? m.text : "the job is aborting: ",
                m.text[0] != '\0' ? "" : dsm_status_str(m.status));
        default:
            die("unexpected message on the service channel from its daemon", "");
        }
    }
}

/* Start the thread with every signal blocked (it inherits the creator's mask). */
static dsm_status_t start_thread(void)
{
    sigset_t all, old;
    int err;

    sigfillset(&all);
    err = pthread_sigmask(SIG_SETMASK, &all, &old);
    if (err == 0) {
        err = pthread_create(&g_thread, NULL, service_main, NULL);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
    }
    if (err != 0) {
        DSM_ERR("cannot start the service thread: %s", strerror(err));
        return DSM_ESYS;
    }
    return 0;
}

dsm_status_t dsm_service_start(void)
{
    struct dsmc_msg req, rep;
    dsm_status_t st;
    int timeout = dsm_rt.fault_timeout_s;
    int fd = dsm_channel_connect(dsm_rt.socket_path, 0, timeout);

    if (fd < 0) {
        DSM_ERR("cannot open the service channel to the daemon at %s: %s", dsm_rt.socket_path,
                strerror(-fd));
        return DSM_ENODAEMON;
    }
    dsm_channel_msg(&req, DSMC_HELLO_SERVICE);
    st = dsm_channel_exchange(fd, &req, &rep, DSMC_REPLY, false);
    if (st == 0)
        st = rep.status;
    if (st != 0) {
        DSM_ERR("daemon at %s refused the service channel: %s", dsm_rt.socket_path, dsm_status_str(st));
        goto fail;
    }
    dsm_rt.service_fd = fd;
    st = start_thread();
    if (st != 0)
        goto fail;
    return 0;
fail:
    dsm_rt.service_fd = -1;
    close(fd);
    return st;
}

void dsm_service_stop(void)
{
    int err;

    if (shutdown(dsm_rt.service_fd, SHUT_RDWR) != 0 && errno != ENOTCONN)
        DSM_WARN("shutdown of the service channel: %s", strerror(errno));
    err = pthread_join(g_thread, NULL);
    if (err != 0)
        DSM_WARN("joining the service thread: %s", strerror(err));
    if (close(dsm_rt.service_fd) != 0)
        DSM_WARN("closing the service channel: %s", strerror(errno));
    dsm_rt.service_fd = -1;
}

void dsm_service_grace(void)
{
    struct timespec ts = { .tv_sec = 0, .tv_nsec = 100 * 1000 * 1000 };
    int i;

    for (i = 0; i < 30; i++)
        nanosleep(&ts, NULL);
}

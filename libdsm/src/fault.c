/* fault.c - the SIGSEGV handler of the global space; see fault.h. */
#include "fault.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <ucontext.h>

#include "channel.h"
#include "crash.h"
#include "direct.h"
#include "dsm_log.h"
#include "hits.h"
#include "runtime.h"
#include "service.h"
#include "sigsafe.h"
#include "stats.h"

#if !defined(__x86_64__)
#error "libdsm decodes the faulting access from x86-64 registers; port on_segv first"
#endif

static struct sigaction g_old;  /* the action before ours */

/* End the line with "<why>[ (errno E)]" and the rank with it. */
static _Noreturn void die_why(struct dsm_sline *l, const char *why, int err)
{
    dsm_sline_str(l, why);
    if (err != 0) {
        dsm_sline_str(l, " (errno ");
        dsm_sline_i64(l, err);
        dsm_sline_str(l, ")");
    }
    dsm_rt_die(l);
}

/* Print "dsm: rank R: <what> at ADDR (page P, read|write): <why>[ (errno E)]" and end the rank. */
static _Noreturn void fault_die(uintptr_t addr, uint64_t page, bool write, const char *what,
                                const char *why, int err)
{
    struct dsm_sline l;

    dsm_sline_begin(&l, dsm_rt.rank);
    dsm_sline_str(&l, what);
    dsm_sline_str(&l, " at ");
    dsm_sline_hex(&l, addr);
    dsm_sline_str(&l, " (page ");
    dsm_sline_u64(&l, page);
    dsm_sline_str(&l, write ? ", write): " : ", read): ");
    die_why(&l, why, err);
}

/* The channel failed with st during a fault: say how, naming the daemon, and end the rank. */
static _Noreturn void channel_failed(uintptr_t addr, uint64_t page, bool write, dsm_status_t st)
{
    struct dsm_sline l;

    if (st == DSM_ENODAEMON)
        dsm_service_grace(); /* let the service thread report the lost daemon */
    dsm_sline_begin(&l, dsm_rt.rank);
    if (st == DSM_ETIMEDOUT) {
        dsm_sline_str(&l, "no grant within ");
        dsm_sline_i64(&l, dsm_rt.fault_timeout_s);
        dsm_sline_str(&l, " s (DSM_FAULT_TIMEOUT)");
    } else if (st == DSM_ENODAEMON) {
        dsm_sline_str(&l, "lost connection");
    } else {
        dsm_sline_str(&l, "channel failed (");
        dsm_sline_str(&l, dsm_status_str(st));
        dsm_sline_str(&l, ")");
    }
    dsm_sline_str(&l, write ? " for a write fault at " : " for a read fault at ");
    dsm_sline_hex(&l, addr);
    dsm_sline_str(&l, " (page ");
    dsm_sline_u64(&l, page);
    dsm_sline_str(&l, ") from its daemon (dsmd on node ");
    dsm_sline_i64(&l, dsm_rt.node);
    dsm_sline_str(&l, ")");
    dsm_rt_die(&l);
}

/* Poll for the grant for up to dsm_rt.fault_spin_us before sleeping in recv: a remote
 * fault completes in tens of microseconds, and a sleeping thread pays a scheduler wake-up
 * on top (one of the four hops of a fault). Only recv(MSG_DONTWAIT|MSG_PEEK) and
 * clock_gettime, both async-signal-safe. */
static void await_reply(int fd)
{
    struct timespec t0, t;
    struct dsmc_msg peek;
    long spin_ns = (long)dsm_rt.fault_spin_us * 1000;

    if (spin_ns <= 0 || clock_gettime(CLOCK_MONOTONIC, &t0) != 0)
        return;
    for (;;) {
        ssize_t n = recv(fd, &peek, sizeof(peek), MSG_DONTWAIT | MSG_PEEK);

        if (n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
            return; /* a message (or an error) is there: the real recv takes it */
        if (clock_gettime(CLOCK_MONOTONIC, &t) != 0 ||
            (t.tv_sec - t0.tv_sec) * 1000000000L + (t.tv_nsec - t0.tv_nsec) > spin_ns)
            return;
    }
}

/* FAULT -> GRANT -> mprotect for the page (and the pages after it the grant opens with
 * it); returns only when the page is granted. */
static void resolve(uintptr_t addr, uint64_t page, bool write)
{
    struct dsmc_msg req, rep;
    struct dsm_chan ch;
    dsm_status_t st = dsm_channel_acquire(&ch);
    uint64_t n;

    if (st != 0)
        channel_failed(addr, page, write, st);
    dsm_channel_msg(&req, DSMC_FAULT);
    req.a = page;
    req.b = write ? 1 : 0;
    req.c = dsm_hits_scan_hint(page);
    st = dsm_channel_send(ch.fd, &req);
    if (st == 0) {
        await_reply(ch.fd);
        st = dsm_channel_recv(ch.fd, &rep, false, NULL);
    }
    if (st == 0 && rep.op != DSMC_GRANT)
        st = DSM_EPROTO;
    if (st == 0 && rep.status == 0 && rep.a != page)
        st = DSM_EPROTO;
    if (st != 0)
        channel_failed(addr, page, write, st);
    if (rep.status != 0)
        fault_die(addr, page, write, "the daemon refused a fault", dsm_status_str(rep.status), 0);
    n = rep.c > 1 ? rep.c : 1;
    if (n > DSMC_GRANT_RUN_MAX || n > dsm_vm_npages(&dsm_rt.vm) - page)
        fault_die(addr, page, write, "bad grant", "run of pages out of range", 0);
    if (rep.d > DSMC_GRANT_RUN_MAX)
        fault_die(addr, page, write, "bad grant", "scan length out of range", 0);
    st = dsm_vm_protect(&dsm_rt.vm, page, (size_t)n, rep.b);
    if (st == DSM_EINVAL)
        fault_die(addr, page, write, "bad grant", "unknown access level", 0);
    if (st != 0)
        fault_die(addr, page, write, "granted page", dsm_vm_protect_why(errno), errno);
    /* the service thread holds back revocations of this page until it sees this */
    for (uint64_t i = 0; i < n; i++)
        atomic_fetch_add_explicit(&dsm_rt.applied[page + i], 1, memory_order_release);
    dsm_hits_note(page, (uint32_t)n, (uint32_t)rep.d);
    dsm_channel_release(&ch);
}

/* A direct read from node `home`'s daemon failed: say so, naming the node, and end the rank. */
static _Noreturn void direct_failed(uintptr_t addr, uint64_t page, int home, const char *why, int err)
{
    struct dsm_sline l;

    /* a home that died is the job's failure, which the rank's own daemon reports (it lost
     * the peer) and ends the rank with: give its word the time to come first */
    dsm_service_grace();
    dsm_sline_begin(&l, dsm_rt.rank);
    dsm_sline_str(&l, "lost the direct read of page ");
    dsm_sline_u64(&l, page);
    dsm_sline_str(&l, " at ");
    dsm_sline_hex(&l, addr);
    dsm_sline_str(&l, " from its home, node ");
    dsm_sline_i64(&l, home);
    dsm_sline_str(&l, " (dsmd): ");
    die_why(&l, why, err);
}

/* A direct read of page from its home (direct.h); DIRECT_DONE when the node's daemon waits
 * for it to end. Returns false if the path was not taken (the daemon is asked instead). */
static bool direct(uintptr_t addr, uint64_t page)
{
    const char *why = "";
    struct dsmc_msg m;
    struct dsm_chan ch;
    dsm_status_t st;
    int home = -1, r = dsm_direct_read(page, &home, &why);

    if (r == -2)
        fault_die(addr, page, false, "granted page", dsm_vm_protect_why(errno), errno);
    if (r < 0)
        direct_failed(addr, page, home, why, errno);
    if (r == 0)
        return false;
    if (r == 1)
        return true; /* the daemon finds DONE when it needs the page */
    st = dsm_channel_acquire(&ch);
    if (st == 0) {
        dsm_channel_msg(&m, DSMC_DIRECT_DONE);
        m.a = page;
        st = dsm_channel_send(ch.fd, &m);
        if (st == 0)
            dsm_channel_release(&ch);
    }
    if (st != 0)
        channel_failed(addr, page, false, st);
    return true;
}

/* Hand a signal that is not ours to the previous action, as the kernel would have. */
static void chain(int sig, siginfo_t *si, void *uc)
{
    struct sigaction dfl;
    sigset_t saved;

    if (!(g_old.sa_flags & SA_SIGINFO) && (g_old.sa_handler == SIG_DFL || g_old.sa_handler == SIG_IGN)) {
        if (g_old.sa_handler == SIG_IGN && si->si_code <= 0)
            return; /* an ignored kill(SIGSEGV) */
        dsm_crash_report(sig, si, uc); /* the rank dies of it: say where */
        memset(&dfl, 0, sizeof(dfl));
        dfl.sa_handler = SIG_DFL;
        sigaction(sig, &dfl, NULL);
        if (si->si_code <= 0)
            raise(sig); /* sent, not a fault: nothing re-executes */
        return;         /* a fault re-executes and now kills with SIGSEGV */
    }
    if (g_old.sa_flags & SA_RESETHAND) {
        memset(&dfl, 0, sizeof(dfl));
        dfl.sa_handler = SIG_DFL;
        sigaction(sig, &dfl, NULL);
    }
    pthread_sigmask(SIG_BLOCK, &g_old.sa_mask, &saved);
    if (g_old.sa_flags & SA_SIGINFO)
        g_old.sa_sigaction(sig, si, uc);
    else
        g_old.sa_handler(sig);
    pthread_sigmask(SIG_SETMASK, &saved, NULL);
}

static void on_segv(int sig, siginfo_t *si, void *uc_)
{
    int saved_errno = errno;
    ucontext_t *uc = uc_;
    uintptr_t addr = (uintptr_t)si->si_addr;
    bool write;
    uint64_t page;

    /* Executing the space is never granted: a jump there is the application's segfault. */
    if (si->si_code <= 0 || !dsm_vm_contains(&dsm_rt.vm, addr) ||
        (uc->uc_mcontext.gregs[REG_ERR] & DSM_X86_PF_INSTR) != 0) {
        chain(sig, si, uc_);
        errno = saved_errno;
        return;
    }
    write = (uc->uc_mcontext.gregs[REG_ERR] & DSM_X86_PF_WRITE) != 0;
    page = dsm_vm_page_of(&dsm_rt.vm, addr);
    uint64_t t0 = dsm_stats_clock();

    /* a page the node holds: no message (dsm_hits.h); a page to read that nothing of the
     * node's is fetching: from its home (dsm_direct.h); else the daemon */
    if (!dsm_hits_try(page, write) && (write || !direct(addr, page)))
        resolve(addr, page, write);
    dsm_stats_waited(DSM_WAIT_FAULT, t0);
    errno = saved_errno;
}

dsm_status_t dsm_fault_install(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = on_segv;
    sigemptyset(&sa.sa_mask);
    /*
     * SA_NODEFER: an application signal handler that interrupts a fault wait and touches the
     * space faults again instead of being killed by a blocked SIGSEGV (the nested fault uses
     * a temporary channel). SA_ONSTACK: threads with an alternate stack handle faults on it;
     * threads without one use their own stack, which needs only a small frame here.
     */
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER | SA_RESTART;
    if (sigaction(SIGSEGV, &sa, &g_old) != 0) {
        DSM_ERR("cannot install the SIGSEGV handler: %s", strerror(errno));
        return DSM_ESYS;
    }
    return 0;
}

void dsm_fault_uninstall(void)
{
    struct sigaction cur;

    if (sigaction(SIGSEGV, NULL, &cur) != 0) {
        DSM_WARN("cannot read the SIGSEGV action: %s", strerror(errno));
        return;
    }
    if (!(cur.sa_flags & SA_SIGINFO) || cur.sa_sigaction != on_segv) {
        DSM_WARN("the application replaced libdsm's SIGSEGV handler; leaving its handler in place");
        return;
    }
    if (sigaction(SIGSEGV, &g_old, NULL) != 0)
        DSM_WARN("cannot restore the SIGSEGV action: %s", strerror(errno));
}

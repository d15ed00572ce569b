/* crash.c - a rank's report of the fatal signal that kills it; see crash.h. */
#include "crash.h"

#include <errno.h>
#include <execinfo.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <ucontext.h>
#include <unistd.h>

#include "dsm_log.h"
#include "fault.h"
#include "runtime.h"
#include "sigsafe.h"

#define CRASH_FRAMES 24 /* unwound; the handler's own frames are skipped */
#define CRASH_SHOWN  10 /* printed: the report is a pointer, not a debugger */

static const int g_sigs[] = { SIGBUS, SIGFPE, SIGILL, SIGABRT };
static struct sigaction g_old[sizeof(g_sigs) / sizeof(g_sigs[0])];
static bool g_taken[sizeof(g_sigs) / sizeof(g_sigs[0])];
static atomic_int g_reporting; /* one report per process, even if the unwinder faults */

static const char *sig_name(int sig)
{
    switch (sig) {
    case SIGSEGV: return "SIGSEGV";
    case SIGBUS:  return "SIGBUS";
    case SIGFPE:  return "SIGFPE";
    case SIGILL:  return "SIGILL";
    case SIGABRT: return "SIGABRT";
    default:      return "a fatal signal";
    }
}

/* "invalid write at 0x0, outside the global space (0x...-0x...)" and the like. */
static void describe(struct dsm_sline *l, int sig, const siginfo_t *si, const ucontext_t *uc)
{
    uintptr_t addr = (uintptr_t)si->si_addr;

    if (sig == SIGABRT) {
        dsm_sline_str(l, "abort() called");
        return;
    }
    if (si->si_code <= 0) {
        dsm_sline_str(l, "sent by pid ");
        dsm_sline_i64(l, si->si_pid);
        return;
    }
    if (sig == SIGSEGV) {
        greg_t err = uc->uc_mcontext.gregs[REG_ERR];

        dsm_sline_str(l, (err & DSM_X86_PF_INSTR) ? "jump to " :
                         (err & DSM_X86_PF_WRITE) ? "invalid write at " : "invalid read at ");
    } else if (sig == SIGBUS) {
        dsm_sline_str(l, "bus error at ");
    } else {
        dsm_sline_str(l, sig == SIGFPE ? "arithmetic error at pc " : "illegal instruction at pc ");
        addr = (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
    }
    dsm_sline_hex(l, addr);
    if (sig == SIGSEGV || sig == SIGBUS) {
        bool in = dsm_rt.vm.size != 0 && dsm_vm_contains(&dsm_rt.vm, addr);

        dsm_sline_str(l, in ? ", inside the global space (" : ", outside the global space (");
        dsm_sline_hex(l, dsm_rt.vm.base);
        dsm_sline_str(l, "-");
        dsm_sline_hex(l, dsm_rt.vm.base + dsm_rt.vm.size);
        dsm_sline_str(l, ")");
    }
}

void dsm_crash_report(int sig, const siginfo_t *si, const void *uc_)
{
    const ucontext_t *uc = uc_;
    void *frames[CRASH_FRAMES];
    struct dsm_sline l;
    int n, first = 0, expected = 0;

    if (!atomic_compare_exchange_strong(&g_reporting, &expected, 1))
        return;
    dsm_sline_begin(&l, dsm_rt.rank);
    dsm_sline_str(&l, "fatal signal ");
    dsm_sline_str(&l, sig_name(sig));
    dsm_sline_str(&l, ": ");
    describe(&l, sig, si, uc);
    dsm_sline_emit(&l);
    /* the unwinder steps through the signal frame; start at the interrupted instruction */
    n = backtrace(frames, CRASH_FRAMES);
    for (int i = 0; i < n; i++)
        if ((uintptr_t)frames[i] == (uintptr_t)uc->uc_mcontext.gregs[REG_RIP]) {
            first = i;
            break;
        }
    for (int i = first; i < n && i - first < CRASH_SHOWN; i++) {
        dsm_sline_begin(&l, dsm_rt.rank);
        dsm_sline_str(&l, "  at #");
        dsm_sline_i64(&l, i - first);
        dsm_sline_str(&l, " ");
        if (write(STDERR_FILENO, l.buf, l.len) != (ssize_t)l.len)
            return;
        backtrace_symbols_fd(&frames[i], 1, STDERR_FILENO); /* no malloc; ends the line */
    }
}

/* Report, then die of sig as if no handler had been there. */
static void on_fatal(int sig, siginfo_t *si, void *uc)
{
    struct sigaction dfl;

    dsm_crash_report(sig, si, uc);
    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    sigaction(sig, &dfl, NULL);
    if (si->si_code <= 0 || sig == SIGABRT)
        raise(sig); /* sent, not a fault: nothing re-executes */
    /* a fault re-executes its instruction and now dies of the default action */
}

dsm_status_t dsm_crash_install(void)
{
    void *warm[2];
    struct sigaction sa, cur;

    (void)backtrace(warm, 2);
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = on_fatal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
    for (size_t i = 0; i < sizeof(g_sigs) / sizeof(g_sigs[0]); i++) {
        if (sigaction(g_sigs[i], NULL, &cur) != 0) {
            DSM_ERR("cannot read the action of %s: %s", sig_name(g_sigs[i]), strerror(errno));
            return DSM_ESYS;
        }
        if ((cur.sa_flags & SA_SIGINFO) || cur.sa_handler != SIG_DFL)
            continue; /* the application's (or a sanitizer's): it reports */
        if (sigaction(g_sigs[i], &sa, &g_old[i]) != 0) {
            DSM_ERR("cannot take %s: %s", sig_name(g_sigs[i]), strerror(errno));
            return DSM_ESYS;
        }
        g_taken[i] = true;
    }
    return DSM_OK;
}

void dsm_crash_uninstall(void)
{
    struct sigaction cur;

    for (size_t i = 0; i < sizeof(g_sigs) / sizeof(g_sigs[0]); i++) {
        if (!g_taken[i])
            continue;
        g_taken[i] = false;
        if (sigaction(g_sigs[i], NULL, &cur) == 0 && (cur.sa_flags & SA_SIGINFO) && cur.sa_sigaction == on_fatal)
            (void)sigaction(g_sigs[i], &g_old[i], NULL);
    }
}

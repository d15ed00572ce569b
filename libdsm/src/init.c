/* init.c - dsm_init and dsm_finalize: bring the rank's runtime up and down in order. */
#include "api.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "channel.h"
#include "crash.h"
#include "daemon_spawn.h"
#include "dsm_log.h"
#include "env.h"
#include "fault.h"
#include "direct.h"
#include "hits.h"
#include "runtime.h"
#include "service.h"
#include "stats.h"

static struct dsm_daemon g_daemon; /* the private daemon of a standalone rank (pid 0 if none) */

/*
 * Check the HELLO_MAIN reply against what the environment said and fill dsm_rt's job
 * description and space. Returns 0 or a status (logged).
 */
static dsm_status_t take_job(const struct dsmc_msg *rep, const struct dsm_env *env)
{
    long page = sysconf(_SC_PAGESIZE);
    /* the model's name is the daemon's (its protocol registry is the one list of models) */
    int named = memchr(rep->text, '\0', sizeof(rep->text)) != NULL && rep->text[0] != '\0' &&
                strlen(rep->text) < sizeof(dsm_rt.consistency);

    if (rep->rank != (uint32_t)env->rank || rep->nranks != (uint32_t)env->nranks ||
        rep->nnodes == 0 || rep->node >= rep->nnodes || (env->node >= 0 && rep->node != (uint32_t)env->node)) {
        DSM_ERR("the daemon at %s describes a different job (rank %u of %u on node %u of %u; the "
                "environment says rank %d of %d on node %d)", dsm_rt.socket_path, rep->rank,
                rep->nranks, rep->node, rep->nnodes, env->rank, env->nranks, env->node);
        return DSM_ECONFIG;
    }
    if (!named || rep->d > DSM_MODEL_CAUSAL || rep->c != (uint64_t)page ||
        dsm_vm_layout(&dsm_rt.vm, rep->a, rep->b, rep->c) != 0) {
        DSM_ERR("the daemon at %s sent an unusable job description (space %#llx + %llu bytes, "
                "page %llu bytes, model %llu; this machine's page is %ld bytes)", dsm_rt.socket_path,
                (unsigned long long)rep->a, (unsigned long long)rep->b, (unsigned long long)rep->c,
                (unsigned long long)rep->d, page);
        return DSM_EPROTO;
    }
    dsm_rt.node = (int)rep->node;
    dsm_rt.nnodes = (int)rep->nnodes;
    dsm_rt.lrank = (int)rep->seq;
    dsm_rt.memory_nodes = rep->pad < rep->nnodes ? (int)rep->pad : 0;
    dsm_rt.model = (enum dsm_model)rep->d;
    dsm_rt.alloc_sites = (rep->e & DSMC_WELCOME_ALLOC_SITES) != 0;
    snprintf(dsm_rt.consistency, sizeof(dsm_rt.consistency), "%s", rep->text);
    return 0;
}

/* Say HELLO_MAIN on the main channel; on success *memfd is the node's frame memfd. */
static dsm_status_t hello_main(int fd, const struct dsm_env *env, int *memfd)
{
    struct dsmc_msg req, rep;
    dsm_status_t st;

    dsm_channel_msg(&req, DSMC_HELLO_MAIN);
    req.a = (uint64_t)getpid();
    st = dsm_channel_send(fd, &req);
    if (st == 0)
        st = dsm_channel_recv(fd, &rep, false, memfd);
    if (st == 0 && rep.op != DSMC_REPLY)
        st = DSM_EPROTO;
    if (st != 0) {
        DSM_ERR("no answer to HELLO from the daemon at %s: %s", dsm_rt.socket_path,
                st == DSM_ENODAEMON ? "it closed the connection" : dsm_status_str(st));
        goto fail;
    }
    if (rep.status != 0) {
        st = rep.status;
        DSM_ERR("the daemon at %s refused rank %d: %s%s%s", dsm_rt.socket_path, env->rank,
                dsm_status_str(st), rep.text[0] != '\0' ? ": " : "", rep.text);
        goto fail;
    }
    if (*memfd < 0) {
        DSM_ERR("the daemon at %s sent no frame memory with its HELLO reply", dsm_rt.socket_path);
        st = DSM_EPROTO;
        goto fail;
    }
    st = take_job(&rep, env);
    if (st != 0)
        goto fail;
    return 0;
fail:
    if (*memfd >= 0)
        close(*memfd);
    *memfd = -1;
    return st;
}

/* Size of the per-page grant counters (sparse: only touched pages use memory). */
static size_t applied_bytes(void)
{
    return (size_t)dsm_vm_npages(&dsm_rt.vm) * sizeof(*dsm_rt.applied);
}

/* Connect the main channel, say HELLO and map the space. Returns 0 or a status (logged). */
static dsm_status_t attach(const struct dsm_env *env)
{
    dsm_status_t st;
    int memfd = -1;
    int fd = dsm_channel_connect(dsm_rt.socket_path, env->fault_timeout_s, env->fault_timeout_s);

    if (fd < 0) {
        DSM_ERR("cannot connect to the dsm daemon at %s: %s", dsm_rt.socket_path, strerror(-fd));
        return DSM_ENODAEMON;
    }
    st = hello_main(fd, env, &memfd);
    if (st != 0)
        goto fail;
    st = dsm_vm_map(&dsm_rt.vm, memfd);
    if (st == 0) {
        st = dsm_hits_attach(memfd, dsm_rt.vm.size, (uint32_t)dsm_rt.lrank);
        if (st == 0 && (st = dsm_direct_start(fd, memfd, dsm_rt.vm.size)) != 0)
            dsm_hits_detach();
        if (st != 0)
            dsm_vm_unmap(&dsm_rt.vm);
    }
    close(memfd); /* the mappings keep the frames and the table */
    if (st != 0)
        goto fail;
    dsm_rt.applied = mmap(NULL, applied_bytes(), PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (dsm_rt.applied == MAP_FAILED) {
        DSM_ERR("cannot map the grant counters (%zu bytes): %s", applied_bytes(), strerror(errno));
        dsm_rt.applied = NULL;
        st = DSM_ENOMEM;
        goto fail_vm;
    }
    dsm_rt.main_fd = fd;
    return 0;
fail_vm:
    dsm_direct_stop();
    dsm_hits_detach();
    dsm_vm_unmap(&dsm_rt.vm);
fail:
    close(fd);
    return st;
}

/* Undo attach(). */
static void detach(void)
{
    if (munmap((void *)dsm_rt.applied, applied_bytes()) != 0)
        DSM_WARN("munmap of the grant counters failed: %s", strerror(errno));
    dsm_rt.applied = NULL;
    dsm_direct_stop();
    dsm_hits_detach();
    dsm_vm_unmap(&dsm_rt.vm);
    close(dsm_rt.main_fd);
    dsm_rt.main_fd = -1;
}

/* Fill dsm_rt's identity and socket from the environment, starting a private daemon if needed. */
static dsm_status_t configure(const struct dsm_env *env)
{
    char who[32];
    const char *sock = env->socket;
    dsm_status_t st;

    snprintf(who, sizeof(who), "dsm[rank %d]", env->rank);
    dsm_log_init(who);
    dsm_rt.rank = env->rank;
    dsm_rt.nranks = env->nranks;
    dsm_rt.node = env->node;
    dsm_rt.fault_timeout_s = env->fault_timeout_s;
    dsm_rt.fault_spin_us = env->fault_spin_us;
    dsm_rt.hits_delay_us = env->hits_delay_us;
    if (sock == NULL) {
        st = dsm_daemon_spawn(&g_daemon);
        if (st != 0)
            return st;
        sock = g_daemon.socket;
        dsm_rt.standalone = true;
    }
    if (snprintf(dsm_rt.socket_path, sizeof(dsm_rt.socket_path), "%s", sock) >= (int)sizeof(dsm_rt.socket_path)) {
        DSM_ERR("DSM_SOCKET=%s is longer than a socket path may be", sock);
        return DSM_ECONFIG;
    }
    return 0;
}

DSM_API int dsm_init(int *argc, char ***argv)
{
    struct dsm_env env;
    dsm_status_t st;

    if (!dsm_rt_transition(DSM_RT_NEW, DSM_RT_STARTING)) {
        DSM_ERR("dsm_init called %s", dsm_rt_state() >= DSM_RT_FINALIZING ? "after dsm_finalize" : "twice");
        return DSM_ESTATE;
    }
    dsm_log_init("dsm");
    dsm_stats_start();
    st = dsm_env_read(&env);
    if (st != 0)
        goto out_state;
    st = configure(&env);
    if (st != 0)
        goto out_daemon;
    st = attach(&env);
    if (st != 0)
        goto out_daemon;
    st = dsm_service_start();
    if (st != 0)
        goto out_attach;
    st = dsm_fault_install();
    if (st != 0)
        goto out_service;
    st = dsm_crash_install();
    if (st != 0)
        goto out_fault;
    dsm_channel_bind_main(dsm_rt.main_fd);
    dsm_rt_set_state(DSM_RT_READY);
    return 0;

out_fault:
    dsm_fault_uninstall();
out_service:
    dsm_rt_set_state(DSM_RT_FINALIZING); /* the service thread now takes end of file quietly */
    dsm_service_stop();
out_attach:
    detach();
out_daemon:
    if (g_daemon.pid > 0 || g_daemon.dir[0] != '\0')
        dsm_daemon_reap(&g_daemon);
out_state:
    dsm_rt.standalone = false;
    dsm_rt_set_state(DSM_RT_NEW);
    return st;
}

DSM_API int dsm_finalize(void)
{
    struct dsmc_msg req, rep;
    dsm_status_t st;

    if (!dsm_rt_transition(DSM_RT_READY, DSM_RT_FINALIZING)) {
        dsm_rt_check("dsm_finalize"); /* logs why */
        return DSM_ESTATE;
    }
    /* FINALIZING before the request: once every rank is done the daemon may close our channels. */
    dsm_channel_msg(&req, DSMC_FINALIZE);
    dsm_stats_fill(&req);
    st = dsm_channel_request("dsm_finalize", &req, &rep, DSMC_REPLY);
    if (st == 0 && rep.status != 0) {
        st = rep.status;
        DSM_ERR("dsm_finalize: %s%s%s", dsm_status_str(st), rep.text[0] != '\0' ? ": " : "", rep.text);
    }
    dsm_service_stop();
    dsm_channel_close_threads();
    dsm_channel_bind_main(-1);
    dsm_crash_uninstall();
    dsm_fault_uninstall(); /* before unmapping: a later access is a plain segfault */
    detach();
    if (g_daemon.pid > 0)
        dsm_daemon_reap(&g_daemon);
    dsm_rt.standalone = false;
    dsm_rt_set_state(DSM_RT_DONE);
    dsm_log_flush();
    return st;
}

/* Tell the daemon (it answers, then ends the job naming this rank), then exit with the
 * status. The service thread may end the rank first, on the daemon's ABORT: with the same
 * status (dsm_rt.exit_status). */
DSM_API void dsm_abort(int code)
{
    int status = (code & 255) != 0 ? code & 255 : 1;
    struct dsmc_msg req, rep;

    atomic_store(&dsm_rt.exit_status, status);
    if (dsm_rt_state() == DSM_RT_READY) {
        dsm_channel_msg(&req, DSMC_ABORT_JOB);
        req.a = (uint64_t)(int64_t)code; /* as called, for the report; the exit status is ours */
        (void)dsm_channel_request("dsm_abort", &req, &rep, DSMC_REPLY);
    } else {
        DSM_ERR("dsm_abort(%d) outside dsm_init..dsm_finalize: exiting with status %d", code, status);
    }
    _exit(status);
}

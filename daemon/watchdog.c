/*
 * watchdog.c - liveness: a silent peer is a dead peer, a rank that stops taking its
 * channel's messages is a stuck rank.
 *
 * A periodic timer fires every fifth of the peer timeout (DSM_PEER_TIMEOUT_MS, default
 * 8 s, so a frozen peer is named within 10 s). Each tick sends a HEARTBEAT to every
 * connected peer (over the job's transport, so every transport carries them) and fails
 * the job, naming the node and its address, when a connected peer has sent nothing at all
 * for longer than the timeout: a killed daemon is noticed by its transport at once, a
 * frozen one (SIGSTOP, a hung host, a cut link that keeps the connection open) only this
 * way. The same tick fails the job when a local rank
 * has left messages in its channel's queue untaken, or a protection change unapplied, for
 * longer than the timeout (dsmd_clients_check_stalls, dsmd_pages_check_stalls). Heartbeats are not counted in the job's statistics.
 *
 * Nothing is checked while the mesh forms (peers are not up yet) or once every rank has
 * finalized (peers leave as they please).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "dsm_log.h"
#include "dsmd.h"

int64_t dsmd_now_ns(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

void dsmd_watchdog_heard(struct dsmd *d, int node)
{
    if (d->peer_heard != NULL && node >= 0 && node < d->cfg.nnodes)
        d->peer_heard[node] = dsmd_now_ns();
}

static void heartbeat_all(struct dsmd *d)
{
    uint8_t buf[64];
    size_t len;
    dsmw_msg_t m;

    dsmw_init(&m, DSMW__TYPE__HEARTBEAT);
    if (dsmw_encode(&m, buf, sizeof(buf), &len) != DSM_OK)
        return;
    for (int n = 0; n < d->cfg.nnodes; n++)
        if (n != d->cfg.node && d->peer_up[n] && d->tops->send(d->t, n, buf, len, DSMT_NO_PAGE) == DSM_OK)
            d->heartbeats_sent++;
}

static void check_peers(struct dsmd *d, int64_t now)
{
    for (int n = 0; n < d->cfg.nnodes && !d->aborting; n++) {
        int64_t quiet = now - d->peer_heard[n];

        if (n == d->cfg.node || !d->peer_up[n] || quiet <= d->peer_timeout_ns)
            continue;
        dsmd_abort(d, DSM_EPEER, "node %d (dsmd at %s) sent nothing for %.1f s (DSM_PEER_TIMEOUT_MS=%lld): it is frozen or cut off",
                   n, d->peer_addr[n] ? d->peer_addr[n] : "?", (double)quiet / 1e9,
                   (long long)(d->peer_timeout_ns / 1000000));
    }
}

static void watch_ready(void *arg, uint32_t events)
{
    struct dsmd *d = arg;
    uint64_t ticks;
    int64_t now = dsmd_now_ns();

    (void)events;
    if (read(d->watchfd, &ticks, sizeof(ticks)) != (ssize_t)sizeof(ticks) || d->aborting)
        return;
    if (d->finishing) {
        dsmd_maybe_exit(d); /* node 0 waiting for its peers to leave: not forever */
        return;
    }
    if (d->t != NULL && d->peer_heard != NULL) {
        heartbeat_all(d);
        if (!d->fini_sent)
            check_peers(d, now);
    }
    dsmd_clients_check_stalls(d, now);
    dsmd_pages_check_stalls(d, now);
    dsmd_direct_check(d, now);
    if (!d->aborting && !d->cfg.standalone)
        dsmd_waits_tick(d, now);
}

dsm_status_t dsmd_watchdog_init(struct dsmd *d)
{
    int64_t period;
    struct itimerspec its = { 0 };
    int64_t now = dsmd_now_ns();

    d->peer_timeout_ns = (int64_t)d->cfg.peer_timeout_ms * 1000000;
    period = d->peer_timeout_ns / 5;
    its.it_interval.tv_sec = (time_t)(period / 1000000000);
    its.it_interval.tv_nsec = (long)(period % 1000000000);
    its.it_value = its.it_interval;
    d->peer_heard = calloc((size_t)d->cfg.nnodes, sizeof(*d->peer_heard));
    if (d->peer_heard == NULL)
        return DSM_ENOMEM;
    for (int n = 0; n < d->cfg.nnodes; n++)
        d->peer_heard[n] = now;
    d->watchfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (d->watchfd < 0 || timerfd_settime(d->watchfd, 0, &its, NULL) < 0) {
        DSM_ERR("watchdog timer: %s", strerror(errno));
        return DSM_ESYS;
    }
    return dsmd_loop_add(d->loop, d->watchfd, EPOLLIN, watch_ready, d);
}

void dsmd_watchdog_fini(struct dsmd *d)
{
    if (d->watchfd >= 0)
        close(d->watchfd);
    d->watchfd = -1;
    free(d->peer_heard);
    d->peer_heard = NULL;
}

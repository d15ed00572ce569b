/*
 * waits.c - the deadlock watchdog's daemon half: is this node stalled, and on what.
 *
 * A node is stalled while every rank it serves waits in the runtime (each of its main and
 * thread channels has a fault, lock, barrier, finalize or allocation outstanding) and no
 * answer has gone to any of them. Each watchdog tick a stalled node tells dsmrun
 * "STALLED <ms>" (how long), and "RUNNING" once it moves again. dsmrun declares a deadlock
 * when every node has been stalled for --deadlock-timeout (a rank computing, or waiting
 * for a lock a computing rank holds, keeps its node running: that is not a deadlock) and
 * sends "WAITS" on each daemon's stdin; the daemon answers with "WAITS <text>" lines, what
 * each local rank waits for and what this node manages (lock holders and waiters; node 0:
 * barrier arrivals), then "WAITS-END". dsmrun prints them and ends the job.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "dsm_log.h"
#include "dsmd.h"

/* 1 if rank rk waits in the runtime on every channel it has (it computes on none). */
static int rank_blocked(struct dsmd *d, const struct dsmd_rank *rk)
{
    int lrank = (int)(rk - d->ranks), chans = 0;

    if (!rk->connected)
        return rk->absent; /* before dsm_init it computes; after exiting it never will */
    for (int i = 0; i < d->nchans; i++) {
        struct dsmd_chan *c = d->chans[i];

        if (c == NULL || c->lrank != lrank || c->kind == CHAN_SERVICE || c->kind == CHAN_NEW)
            continue;
        chans++;
        if (!c->waiting && c->pending_op == 0)
            return 0;
    }
    return chans > 0;
}

void dsmd_waits_tick(struct dsmd *d, int64_t now)
{
    int stalled = d->ranks_gone + d->ranks_absent < d->cfg.local_ranks;

    for (int i = 0; i < d->cfg.local_ranks && stalled; i++)
        stalled = rank_blocked(d, &d->ranks[i]);
    if (!stalled) {
        if (d->stall_since && d->stall_told)
            dsmd_announce(d, "RUNNING");
        d->stall_since = 0;
        d->stall_told = 0;
        d->answers_seen = d->answers;
        return;
    }
    /* first seen stalled, or answered since the last tick: the stall (re)starts now (it may
     * be up to a tick older; counting answers keeps a clock read off every send) */
    if (d->stall_since == 0 || d->answers != d->answers_seen)
        d->stall_since = now;
    d->answers_seen = d->answers;
    dsmd_announce(d, "STALLED %lld", (long long)((now - d->stall_since) / 1000000));
    d->stall_told = 1;
}

static void say(struct dsmd *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void say(struct dsmd *d, const char *fmt, ...)
{
    char text[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    dsmd_announce(d, "WAITS %s", text);
}

/* What channel c of rank `rank` waits for, in words. */
static void chan_waits(struct dsmd *d, int rank, const struct dsmd_chan *c)
{
    const char *who = c->kind == CHAN_MAIN ? "" : " (a thread)";

    if (c->waiting) {
        int home = dsmd_space_home(&d->space, c->wait_page);

        say(d, "rank %d%s waits for %s access to page %llu (address 0x%llx, home node %d)", rank, who,
            c->wait_access >= 2 ? "write" : "read", (unsigned long long)c->wait_page,
            (unsigned long long)(d->cfg.base + c->wait_page * d->page_size), home);
        return;
    }
    switch (c->pending_op) {
    case DSMC_LOCK:
        say(d, "rank %d%s waits in dsm_lock(%llu) (lock manager: node %d)", rank, who,
            (unsigned long long)c->pending_seq, (int)(c->pending_seq % (uint64_t)d->cfg.nnodes));
        break;
    case DSMC_BARRIER:
        say(d, "rank %d%s waits in dsm_barrier", rank, who);
        break;
    case DSMC_COND_WAIT:
        say(d, "rank %d%s waits in dsm_cond_wait (lock %llu)", rank, who, (unsigned long long)c->pending_seq);
        break;
    case DSMC_ATOMIC:
        say(d, "rank %d%s waits in a dsm_atomic_* call on page %llu (home node %d)", rank, who,
            (unsigned long long)c->pending_seq, dsmd_space_home(&d->space, c->pending_seq));
        break;
    case DSMC_FINALIZE:
        say(d, "rank %d waits in dsm_finalize", rank);
        break;
    case 0:
        say(d, "rank %d%s is running (not in the runtime)", rank, who);
        break;
    default:
        say(d, "rank %d%s waits for the answer to request %u", rank, who, c->pending_op);
        break;
    }
}

void dsmd_waits_report(struct dsmd *d)
{
    for (int i = 0; i < d->cfg.local_ranks; i++) {
        struct dsmd_rank *rk = &d->ranks[i];

        if (!rk->connected) {
            say(d, "rank %d has not called dsm_init%s", rk->rank, rk->absent ? " (it exited)" : "");
            continue;
        }
        for (int k = 0; k < d->nchans; k++) {
            struct dsmd_chan *c = d->chans[k];

            if (c != NULL && c->lrank == i && (c->kind == CHAN_MAIN || c->kind == CHAN_THREAD))
                chan_waits(d, rk->rank, c);
        }
        for (size_t h = 0; h < rk->held.n; h++)
            say(d, "rank %d holds lock %u", rk->rank, rk->held.ids[h]);
    }
    dsmd_sync_describe(d);
    dsmd_announce(d, "WAITS-END %d", d->cfg.node);
}

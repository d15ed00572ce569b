/*
 * node.c - one node's daemon state, built and torn down: frames, page table, protocol,
 * locks and barriers, allocation; the end-of-job checks and statistics; when to exit.
 * main.c adds the launcher rendezvous, signals and the transport; the fuzzers build a
 * node here without them (tests/fuzz).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "dsm_log.h"
#include "dsmd.h"

/* One line for dsmrun on stdout. */
void dsmd_announce(struct dsmd *d, const char *fmt, ...)
{
    va_list ap;

    (void)d;
    va_start(ap, fmt);
    vfprintf(stdout, fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
    fflush(stdout);
}

/* Create the node's frames: one sparse memfd, mapped read-write here. */
static dsm_status_t frames_create(struct dsmd *d)
{
    long ps = sysconf(_SC_PAGESIZE);

    d->page_size = (size_t)ps;
    if (d->cfg.space_size < 2 * (uint64_t)d->cfg.nnodes * d->page_size || d->cfg.space_size % d->page_size ||
        d->cfg.base % d->page_size) {
        DSM_ERR("space size %llu and base 0x%llx must be page multiples, at least 2 pages per node",
                (unsigned long long)d->cfg.space_size, (unsigned long long)d->cfg.base);
        return DSM_ECONFIG;
    }
    d->npages = d->cfg.space_size / d->page_size;
    d->memfd = memfd_create("dsm-frames", MFD_CLOEXEC);
    if (d->memfd < 0 || ftruncate(d->memfd, (off_t)d->cfg.space_size) < 0) {
        DSM_ERR("creating %llu bytes of frames: %s", (unsigned long long)d->cfg.space_size, strerror(errno));
        return DSM_ESYS;
    }
    d->frames = mmap(NULL, d->cfg.space_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, d->memfd, 0);
    if (d->frames == MAP_FAILED) {
        d->frames = NULL;
        DSM_ERR("mapping the frames: %s", strerror(errno));
        return DSM_ESYS;
    }
    return dsmd_hits_create(d);
}

/* Node 0 leaves last: a peer that saw it go before its FINI_RELEASE arrived (a write to it
 * failing first) would take that for a failure. The others leave once their ranks have. */
void dsmd_maybe_exit(struct dsmd *d)
{
    if (!d->finishing || d->ranks_gone != d->cfg.local_ranks)
        return;
    if (d->done_ns == 0)
        d->done_ns = dsmd_now_ns();
    if (d->cfg.node == 0 && d->peers_left < d->cfg.nnodes - 1 && !d->cfg.standalone &&
        dsmd_now_ns() - d->done_ns < d->peer_timeout_ns)
        return; /* the watchdog looks again */
    dsmd_loop_stop(d->loop, DSM_OK);
}

/* Everything but the transport and the loop's inputs. */
dsm_status_t dsmd_node_setup(struct dsmd *d)
{
    dsm_status_t st;

    d->lost_early = -1;
    d->pops = dsmp_find(d->cfg.consistency);
    if (d->pops == NULL) {
        char known[128] = "";

        for (size_t i = 0, n = 0; dsmp_at(i) != NULL && n < sizeof(known); i++)
            n += (size_t)snprintf(known + n, sizeof(known) - n, "%s%s", i ? ", " : "", dsmp_at(i)->name);
        DSM_ERR("unknown consistency model '%s' (this build has: %s)", d->cfg.consistency, known);
        return DSM_ECONFIG;
    }
    if (d->cfg.memory_nodes > 0 && d->pops->evict == NULL) {
        DSM_ERR("memory nodes need a model whose nodes can hold only some pages; %s cannot", d->pops->name);
        return DSM_ECONFIG;
    }
    if ((st = frames_create(d)) != DSM_OK)
        return st;
    if ((st = dsmd_space_init(&d->space, d->npages, d->cfg.nnodes, DSMD_COMPUTE_NODES(d))) != DSM_OK)
        return st;
    d->limits = (struct dsmw_limits){ .npages = d->npages, .nnodes = (uint32_t)d->cfg.nnodes,
                                      .nranks = (uint32_t)d->cfg.nranks };
    d->ranks = calloc((size_t)(d->cfg.local_ranks ? d->cfg.local_ranks : 1), sizeof(*d->ranks)); /* memory node: none */
    if (d->ranks == NULL)
        return DSM_ENOMEM;
    for (int i = 0; i < d->cfg.local_ranks; i++)
        d->ranks[i].rank = d->cfg.first_rank + i;
    if ((st = dsmd_pages_init(d)) != DSM_OK)
        return st;
    dsmd_pages_services(d, &d->svc);
    if ((st = d->pops->create(&d->svc, &d->p)) != DSM_OK)
        return st;
    d->pops->reset(d->p, 0, d->npages);
    if ((st = dsmd_sync_init(d)) != DSM_OK || (st = dsmd_alloc_init(d)) != DSM_OK || (st = dsmd_ft_init(d)) != DSM_OK ||
        (st = dsmd_atomics_init(d)) != DSM_OK || (st = dsmd_trace_init(d)) != DSM_OK ||
        (st = dsmd_hot_init(d)) != DSM_OK || (st = dsmd_fs_init(d)) != DSM_OK || (st = dsmd_cache_init(d)) != DSM_OK)
        return st;
    return DSM_OK;
}

void dsmd_node_teardown(struct dsmd *d)
{
    dsmd_watchdog_fini(d);
    dsmd_direct_fini(d);
    dsmd_peers_fini(d);
    dsmd_clients_fini(d);
    dsmd_cache_fini(d);
    dsmd_fs_fini(d);
    dsmd_hot_fini(d);
    dsmd_trace_fini(d);
    dsmd_atomics_fini(d);
    dsmd_ft_fini(d);
    dsmd_alloc_fini(d);
    dsmd_sync_fini(d);
    if (d->p)
        d->pops->destroy(d->p);
    dsmd_pages_fini(d);
    for (int i = 0; d->ranks && i < d->cfg.local_ranks; i++)
        free(d->ranks[i].held.ids);
    free(d->ranks);
    dsmd_space_fini(&d->space);
    dsmd_hits_destroy(d);
    if (d->frames)
        munmap(d->frames, d->cfg.space_size);
    if (d->memfd >= 0)
        close(d->memfd);
    if (d->sigfd >= 0)
        close(d->sigfd);
    dsmd_loop_destroy(d->loop);
    d->loop = NULL;
}

void dsmd_node_print_stats(struct dsmd *d)
{
    dsmd_hits_fold(d);
    dsmd_direct_fold(d);
    printf("STATS {\"node\":%d,\"messages_sent\":%llu,\"bytes_sent\":%llu,\"base\":%llu,\"page_size\":%zu,"
           "\"ranks\":[", d->cfg.node, (unsigned long long)d->node_messages, (unsigned long long)d->node_bytes,
           (unsigned long long)d->cfg.base, d->page_size);
    for (int i = 0; i < d->cfg.local_ranks; i++) {
        struct dsmd_rank *rk = &d->ranks[i];
        struct dsmd_counters *c = &rk->c;
        /* a rank that did not finalize never sent its own clock: the daemon's, hello to exit */
        int64_t wall = rk->finalized ? (int64_t)c->wall_ns :
                       rk->connected ? (rk->left_ns ? rk->left_ns : dsmd_now_ns()) - rk->joined_ns : 0;
        char waits[200] = ""; /* the time breakdown, only from a rank that finalized (its clocks) */

        if (rk->finalized) {
            uint64_t sum = c->wait_ns[0] + c->wait_ns[1] + c->wait_ns[2] + c->wait_ns[3];

            snprintf(waits, sizeof(waits), ",\"wait_fault_seconds\":%.6f,\"wait_lock_seconds\":%.6f,"
                     "\"wait_barrier_seconds\":%.6f,\"wait_other_seconds\":%.6f,\"compute_seconds\":%.6f",
                     (double)c->wait_ns[0] / 1e9, (double)c->wait_ns[1] / 1e9, (double)c->wait_ns[2] / 1e9,
                     (double)c->wait_ns[3] / 1e9, wall > (int64_t)sum ? (double)(wall - (int64_t)sum) / 1e9 : 0.0);
        }

        printf("%s{\"rank\":%d,\"node\":%d,\"read_faults\":%llu,\"write_faults\":%llu,\"pages_fetched\":%llu,"
               "\"invalidations\":%llu,\"messages_sent\":%llu,\"bytes_sent\":%llu,\"lock_acquires\":%llu,"
               "\"barriers\":%llu,\"diffs\":%llu,\"write_notices\":%llu,\"pages_granted_ahead\":%llu,"
               "\"pages_read_ahead\":%llu,\"pages_fetched_again\":%llu,\"pages_evicted\":%llu,"
               "\"writebacks\":%llu,\"notice_bytes\":%llu,"
               "\"local_hits\":%llu,\"direct_faults\":%llu,"
               "\"wall_seconds\":%.6f,"
               "\"protects\":%llu,\"protect_pages\":%llu,\"protects_acked\":%llu,\"protects_abandoned\":%llu,"
               "\"channel_out\":%llu,\"channel_in\":%llu,\"channel_undelivered\":%llu,\"channel_queue_peak\":%llu,"
               "\"joined\":%s,\"finalized\":%s%s}",
               i ? "," : "", d->ranks[i].rank, d->cfg.node, (unsigned long long)c->read_faults,
               (unsigned long long)c->write_faults, (unsigned long long)c->pages_fetched,
               (unsigned long long)c->invalidations, (unsigned long long)c->messages_sent,
               (unsigned long long)c->bytes_sent, (unsigned long long)c->lock_acquires,
               (unsigned long long)c->barriers, (unsigned long long)c->diffs, (unsigned long long)c->write_notices,
               (unsigned long long)c->pages_ahead,
               (unsigned long long)c->pages_read_ahead, (unsigned long long)c->pages_fetched_again,
               (unsigned long long)c->pages_evicted,
               (unsigned long long)c->writebacks, (unsigned long long)c->notice_bytes,
               (unsigned long long)c->local_hits, (unsigned long long)c->direct_faults, (double)wall / 1e9, (unsigned long long)d->ranks[i].protects_sent,
               (unsigned long long)d->ranks[i].protect_pages, (unsigned long long)d->ranks[i].protects_acked,
               (unsigned long long)d->ranks[i].protects_abandoned, (unsigned long long)d->ranks[i].chan_out,
               (unsigned long long)d->ranks[i].chan_in, (unsigned long long)d->ranks[i].chan_undelivered,
               (unsigned long long)d->ranks[i].chan_queue_peak, rk->connected ? "true" : "false",
               rk->finalized ? "true" : "false", waits);
    }
    {
        uint64_t reads, refused;

        dsmd_direct_stats(d, &reads, &refused);
        printf("],\"direct_reads_served\":%llu,\"direct_reads_refused\":%llu", (unsigned long long)reads,
               (unsigned long long)refused);
    }
    printf(",\"heartbeats_sent\":%llu,\"cache_pages\":%llu,\"cache_peak_pages\":%llu,\"memory_node\":%s",
           (unsigned long long)d->heartbeats_sent, (unsigned long long)(d->cfg.cache_size / d->page_size),
           (unsigned long long)dsmd_cache_peak(d), d->cfg.local_ranks == 0 ? "true" : "false");
    if (d->cfg.local_ranks == 0) { /* a memory node's own work, which no rank's counts hold */
        const struct dsmd_counters *c = &d->node_c;

        printf(",\"counts\":{\"pages_fetched\":%llu,\"invalidations\":%llu,\"diffs\":%llu,"
               "\"write_notices\":%llu,\"pages_evicted\":%llu,\"writebacks\":%llu,\"notice_bytes\":%llu}",
               (unsigned long long)c->pages_fetched, (unsigned long long)c->invalidations,
               (unsigned long long)c->diffs, (unsigned long long)c->write_notices,
               (unsigned long long)c->pages_evicted, (unsigned long long)c->writebacks,
               (unsigned long long)c->notice_bytes);
    }
    printf("}\n");
    fflush(stdout);
}

/* Every message to a rank reached it, every protection change was applied (or its rank
 * had finalized): anything else is a lost message, which must fail the job. */
dsm_status_t dsmd_node_check_channels(struct dsmd *d)
{
    dsm_status_t st = DSM_OK;

    for (int i = 0; i < d->cfg.local_ranks; i++) {
        struct dsmd_rank *rk = &d->ranks[i];

        if (rk->chan_undelivered != 0 || rk->protects_sent != rk->protects_acked + rk->protects_abandoned) {
            DSM_ERR("rank %d: %llu channel messages undelivered; %llu protection changes sent, %llu applied, "
                    "%llu left at finalize", rk->rank, (unsigned long long)rk->chan_undelivered,
                    (unsigned long long)rk->protects_sent, (unsigned long long)rk->protects_acked,
                    (unsigned long long)rk->protects_abandoned);
            st = DSM_ESTATE;
        }
    }
    return st;
}


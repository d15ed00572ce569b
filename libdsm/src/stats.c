/* stats.c - the rank's wait clocks and wall clock; see stats.h. */
#include "stats.h"

#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

static _Atomic uint64_t g_wait[DSM_WAIT_KINDS]; /* ns */
static struct timespec g_start;

/* CLOCK_MONOTONIC cannot fail on Linux; a zero time would only skew the statistic. */
static struct timespec now(void)
{
    struct timespec ts = { 0, 0 };

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts;
}

void dsm_stats_start(void)
{
    for (int k = 0; k < DSM_WAIT_KINDS; k++)
        atomic_store_explicit(&g_wait[k], 0, memory_order_relaxed);
    g_start = now();
}

uint64_t dsm_stats_clock(void)
{
    struct timespec t = now();

    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

void dsm_stats_waited(enum dsm_wait kind, uint64_t since)
{
    uint64_t t = dsm_stats_clock();

    if (kind < DSM_WAIT_KINDS && t > since)
        atomic_fetch_add_explicit(&g_wait[kind], t - since, memory_order_relaxed);
}

void dsm_stats_fill(struct dsmc_msg *m)
{
    struct timespec end = now();
    int64_t ns = (int64_t)(end.tv_sec - g_start.tv_sec) * 1000000000 + (end.tv_nsec - g_start.tv_nsec);

    m->a = atomic_load_explicit(&g_wait[DSM_WAIT_FAULT], memory_order_relaxed);
    m->b = atomic_load_explicit(&g_wait[DSM_WAIT_LOCK], memory_order_relaxed);
    m->c = atomic_load_explicit(&g_wait[DSM_WAIT_BARRIER], memory_order_relaxed);
    m->d = atomic_load_explicit(&g_wait[DSM_WAIT_OTHER], memory_order_relaxed);
    m->e = ns > 0 ? (uint64_t)ns : 0;
}

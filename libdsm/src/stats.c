/* stats.c - the rank's counters and wall clock; see stats.h. */
#include "stats.h"

#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

static _Atomic uint64_t g_read_faults, g_write_faults, g_lock_acquires, g_barriers;
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
    atomic_store_explicit(&g_read_faults, 0, memory_order_relaxed);
    atomic_store_explicit(&g_write_faults, 0, memory_order_relaxed);
    atomic_store_explicit(&g_lock_acquires, 0, memory_order_relaxed);
    atomic_store_explicit(&g_barriers, 0, memory_order_relaxed);
    g_start = now();
}

void dsm_stats_fault(bool write)
{
    atomic_fetch_add_explicit(write ? &g_write_faults : &g_read_faults, 1, memory_order_relaxed);
}

void dsm_stats_lock_acquired(void)
{
    atomic_fetch_add_explicit(&g_lock_acquires, 1, memory_order_relaxed);
}

void dsm_stats_barrier(void)
{
    atomic_fetch_add_explicit(&g_barriers, 1, memory_order_relaxed);
}

void dsm_stats_fill(struct dsmc_msg *m)
{
    struct timespec end = now();
    int64_t ns = (int64_t)(end.tv_sec - g_start.tv_sec) * 1000000000 + (end.tv_nsec - g_start.tv_nsec);

    m->a = atomic_load_explicit(&g_read_faults, memory_order_relaxed);
    m->b = atomic_load_explicit(&g_write_faults, memory_order_relaxed);
    m->c = atomic_load_explicit(&g_lock_acquires, memory_order_relaxed);
    m->d = atomic_load_explicit(&g_barriers, memory_order_relaxed);
    m->e = ns > 0 ? (uint64_t)ns : 0;
}

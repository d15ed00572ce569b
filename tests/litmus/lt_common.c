/*
 * lt_common.c - helpers shared by the litmus and DSM-level test programs (see lt_common.h).
 */
#include "lt_common.h"

#include <dsm/dsm.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

unsigned lt_model(void)
{
    const char *m = dsm_consistency();

    if (m == NULL)
        return 0;
    if (strcmp(m, "sequential") == 0)
        return LT_SEQUENTIAL;
    if (strcmp(m, "release") == 0)
        return LT_RELEASE;
    if (strcmp(m, "causal") == 0)
        return LT_CAUSAL;
    return 0;
}

static bool env_on(const char *name)
{
    const char *s = getenv(name);

    return s != NULL && *s != '\0' && strcmp(s, "0") != 0;
}

long lt_scaled(long normal, long stress)
{
    if (env_on("DSM_STRESS"))
        return stress;
    if (env_on("DSM_TEST_QUICK"))
        return normal / 4 > 0 ? normal / 4 : 1;
    return normal;
}

int lt_nnodes(void)
{
    int        *nodes = dsm_coalloc((size_t)dsm_nranks() * sizeof(int));
    const char *s = getenv("DSM_NODE");
    int         n = 1, rc;

    if (nodes == NULL)
        return DSM_ENOSPACE;
    nodes[dsm_rank()] = s ? atoi(s) : 0;
    rc = dsm_barrier();
    for (int r = 0; rc == 0 && r < dsm_nranks(); r++)
        if (nodes[r] + 1 > n)
            n = nodes[r] + 1;
    if (rc == 0)
        rc = dsm_barrier(); /* nobody frees the page while another rank still reads it */
    if (rc != 0) {
        fprintf(stderr, "rank %d: dsm_barrier: %s\n", dsm_rank(), dsm_strerror(rc));
        return rc;
    }
    dsm_cofree(nodes);
    return n;
}

int64_t lt_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

uint64_t lt_rand(uint64_t *state)
{
    uint64_t x = *state;

    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1DULL;
}

void lt_jitter(uint64_t *state, int64_t max_ns)
{
    uint64_t r = lt_rand(state);
    int64_t  until;

    if (max_ns <= 0 || r % 4 == 0)
        return;
    until = lt_now_ns() + (int64_t)((r >> 8) % (uint64_t)max_ns);
    while (lt_now_ns() < until) {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
    }
}

int lt_parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    long  v = strtol(s, &end, 10);

    if (*s == '\0' || *end != '\0' || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

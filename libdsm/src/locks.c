/* locks.c - per-thread ownership of global locks within a rank; see locks.h. */
#include "locks.h"

#include <pthread.h>
#include <stdlib.h>

#include "dsm_log.h"

/* A lock some thread of this rank holds or is acquiring. */
struct claim {
    uint32_t  id;
    pthread_t owner;
};

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cv = PTHREAD_COND_INITIALIZER;
static struct claim *g_claims;
static size_t g_n, g_cap;

/* Index of id's claim, or -1. Called with g_mu held. */
static long find(uint32_t id)
{
    for (size_t i = 0; i < g_n; i++)
        if (g_claims[i].id == id)
            return (long)i;
    return -1;
}

dsm_status_t dsm_locks_claim(uint32_t id, const char *fn, bool try)
{
    dsm_status_t st = 0;
    long i;

    pthread_mutex_lock(&g_mu);
    while ((i = find(id)) >= 0 && !pthread_equal(g_claims[i].owner, pthread_self())) {
        if (try) {
            pthread_mutex_unlock(&g_mu);
            return DSM_EBUSY;
        }
        pthread_cond_wait(&g_cv, &g_mu);
    }
    if (i >= 0) {
        DSM_ERR("%s(%u): this thread holds it already", fn, id);
        st = DSM_EINVAL;
    } else if (g_n == g_cap) {
        size_t ncap = g_cap ? g_cap * 2 : 16;
        struct claim *v = realloc(g_claims, ncap * sizeof(*v));

        if (v == NULL) {
            DSM_ERR("%s(%u): out of memory", fn, id);
            st = DSM_ENOMEM;
        } else {
            g_claims = v;
            g_cap = ncap;
        }
    }
    if (st == 0)
        g_claims[g_n++] = (struct claim){ id, pthread_self() };
    pthread_mutex_unlock(&g_mu);
    return st;
}

dsm_status_t dsm_locks_check(uint32_t id, const char *fn)
{
    long i;
    dsm_status_t st = 0;

    pthread_mutex_lock(&g_mu);
    i = find(id);
    if (i < 0 || !pthread_equal(g_claims[i].owner, pthread_self())) {
        DSM_ERR("%s(%u): %s", fn, id,
                i < 0 ? "no thread of this rank holds the lock" : "another thread of this rank holds the lock");
        st = DSM_EINVAL;
    }
    pthread_mutex_unlock(&g_mu);
    return st;
}

void dsm_locks_drop(uint32_t id)
{
    long i;

    pthread_mutex_lock(&g_mu);
    i = find(id);
    if (i >= 0 && pthread_equal(g_claims[i].owner, pthread_self())) {
        g_claims[i] = g_claims[--g_n];
        pthread_cond_broadcast(&g_cv);
    }
    pthread_mutex_unlock(&g_mu);
}

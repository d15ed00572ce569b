/* parallel.c - dsm_parallel and dsm_thread_barrier; see parallel.h. */
#include "api.h"
#include "parallel.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "affinity.h"
#include "stats.h"
#include "dsm_log.h"
#include "runtime.h"

enum team_go { GO_WAIT = 0, GO_RUN, GO_ABORT };

/* One dsm_parallel call. */
struct team {
    int   n;
    void (*fn)(int tid, int nthreads, void *arg);
    void *arg;
    const struct dsm_place_plan *plan;
    pthread_mutex_t mu;
    pthread_cond_t  cv;
    enum team_go go;       /* the workers start fn only once every thread exists */
    int          arrived;  /* threads in the current dsm_thread_barrier */
    unsigned long gen;     /* dsm_thread_barrier episodes completed */
    dsm_status_t bst;      /* the rank barrier's result of the last episode */
    dsm_status_t first_err;/* first failed episode, returned by dsm_parallel */
};

/* One worker's start record. */
struct member {
    struct team *team;
    int          tid;
    pthread_t    thread;
};

static __thread struct team *tls_team;
static _Atomic int g_busy; /* a team is running on this rank */

int dsm_parallel_team_size(void)
{
    return tls_team != NULL ? tls_team->n : 0;
}

/* Wait until the caller says go; true to run fn, false to leave (the start failed). */
static bool await_go(struct team *t)
{
    bool run;

    pthread_mutex_lock(&t->mu);
    while (t->go == GO_WAIT)
        pthread_cond_wait(&t->cv, &t->mu);
    run = t->go == GO_RUN;
    pthread_mutex_unlock(&t->mu);
    return run;
}

static void *worker(void *p)
{
    struct member *m = p;
    struct team *t = m->team;

    dsm_affinity_bind(&t->plan->thread[m->tid]);
    if (await_go(t)) {
        tls_team = t;
        t->fn(m->tid, t->n, t->arg);
        tls_team = NULL;
    }
    return NULL;
}

static void set_go(struct team *t, enum team_go go)
{
    pthread_mutex_lock(&t->mu);
    t->go = go;
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
}

/* Start workers 1..n-1; on failure stop and join those started. Returns 0 or DSM_ESYS (logged). */
static dsm_status_t start_workers(struct team *t, struct member *m)
{
    int tid, err = 0;

    for (tid = 1; tid < t->n; tid++) {
        m[tid] = (struct member){ .team = t, .tid = tid };
        err = pthread_create(&m[tid].thread, NULL, worker, &m[tid]);
        if (err != 0)
            break;
    }
    if (err == 0)
        return 0;
    DSM_ERR("dsm_parallel: cannot start thread %d of %d: %s", tid, t->n, strerror(err));
    set_go(t, GO_ABORT);
    while (--tid >= 1)
        pthread_join(m[tid].thread, NULL);
    return DSM_ESYS;
}

/* Check dsm_parallel's arguments and state, taking the rank's team slot. 0 or a status (logged). */
static dsm_status_t enter(int nthreads, void (*fn)(int, int, void *))
{
    dsm_status_t st = dsm_rt_check("dsm_parallel");

    if (st != 0)
        return st;
    if (fn == NULL || nthreads < 1 || nthreads > DSM_PARALLEL_MAX_THREADS) {
        DSM_ERR("dsm_parallel: %s", fn == NULL ? "no function given" : "thread count out of range");
        return DSM_EINVAL;
    }
    if (tls_team != NULL || atomic_exchange(&g_busy, 1) != 0) {
        DSM_ERR("dsm_parallel: %s", tls_team != NULL ? "called inside dsm_parallel (nesting is not supported)"
                                                     : "another thread of this rank is running one");
        return DSM_ESTATE;
    }
    return 0;
}

DSM_API int dsm_parallel(int nthreads, void (*fn)(int tid, int nthreads, void *arg), void *arg)
{
    struct dsm_place_plan plan;
    struct team t = { .n = nthreads, .fn = fn, .arg = arg, .plan = &plan };
    struct member *m = NULL;
    hwloc_bitmap_t saved;
    dsm_status_t st = enter(nthreads, fn);

    if (st != 0)
        return st;
    st = dsm_affinity_plan(nthreads, &plan);
    if (st != 0)
        goto out_busy;
    m = calloc((size_t)nthreads, sizeof(*m));
    if (m == NULL) {
        DSM_ERR("dsm_parallel: out of memory for %d threads", nthreads);
        st = DSM_ENOMEM;
        goto out_plan;
    }
    pthread_mutex_init(&t.mu, NULL);
    pthread_cond_init(&t.cv, NULL);
    dsm_affinity_report(&plan);
    saved = dsm_affinity_save();
    dsm_affinity_bind(&plan.thread[0]);
    st = start_workers(&t, m);
    if (st == 0) {
        set_go(&t, GO_RUN);
        tls_team = &t;
        fn(0, nthreads, arg);
        tls_team = NULL;
        for (int tid = 1; tid < nthreads; tid++)
            pthread_join(m[tid].thread, NULL);
        st = t.first_err;
    }
    dsm_affinity_restore(saved);
    pthread_cond_destroy(&t.cv);
    pthread_mutex_destroy(&t.mu);
    free(m);
out_plan:
    dsm_place_plan_fini(&plan);
out_busy:
    atomic_store(&g_busy, 0);
    return st;
}

/* The last thread in: the rank's barrier, with the team marker lifted so dsm_barrier accepts it. */
static dsm_status_t rank_barrier(struct team *t)
{
    dsm_status_t st;

    tls_team = NULL;
    st = dsm_barrier();
    tls_team = t;
    return st;
}

DSM_API int dsm_thread_barrier(void)
{
    struct team *t = tls_team;
    unsigned long gen;
    dsm_status_t st;

    if (t == NULL) {
        if (dsm_rt_check("dsm_thread_barrier") == 0)
            DSM_ERR("dsm_thread_barrier called outside dsm_parallel");
        return DSM_ESTATE;
    }
    pthread_mutex_lock(&t->mu);
    gen = t->gen;
    if (++t->arrived < t->n) {
        uint64_t t0 = dsm_stats_clock(); /* the last thread's dsm_barrier is timed on its own */

        while (t->gen == gen)
            pthread_cond_wait(&t->cv, &t->mu);
        st = t->bst;
        pthread_mutex_unlock(&t->mu);
        dsm_stats_waited(DSM_WAIT_BARRIER, t0);
        return st;
    }
    t->arrived = 0;
    pthread_mutex_unlock(&t->mu);
    st = rank_barrier(t);
    pthread_mutex_lock(&t->mu);
    t->bst = st;
    if (st != 0 && t->first_err == 0)
        t->first_err = st;
    t->gen++;
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
    return st;
}

/*
 * parallel_api.c - dsm_parallel's contract, each rule checked from a real job:
 *   - thread ids 0..n-1 each run once, thread 0 on the calling thread, all done at return;
 *   - a lock is held by a thread: another thread of the rank asking for it waits (never
 *     two inside at once, across threads and ranks), it may not unlock it (DSM_EINVAL),
 *     and the holder may not take it twice (DSM_EINVAL);
 *   - dsm_barrier in a team of several threads and dsm_thread_barrier outside one are
 *     refused (DSM_ESTATE), as are a nested dsm_parallel and bad arguments (DSM_EINVAL);
 *   - dsm_thread_barrier orders memory across the threads of all ranks: what one thread
 *     wrote before it is seen by every thread after it;
 *   - dsm_barrier outside dsm_parallel still works, and dsm_parallel can be called again.
 * Prints "parallel_api: rank R: OK" or the failed checks; exit 1 on any failure.
 */
#define _GNU_SOURCE
#include <dsm/dsm.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define NT        4
#define LOCK_ID   77u
#define ROUNDS    50

struct state {
    long       *inside;      /* DSM: holders of LOCK_ID right now (must stay <= 1) */
    long       *total;       /* DSM: increments under LOCK_ID */
    long       *slots;       /* DSM: [nranks * NT] written before a thread barrier */
    pthread_t   caller;
    _Atomic int ran[NT];
    _Atomic int errors;
    _Atomic int turn;        /* the unlock-by-another-thread check's handshake */
};

#define CHECK(s, cond, ...)                                                                          \
    do {                                                                                             \
        if (!(cond)) {                                                                               \
            fprintf(stderr, "parallel_api: rank %d: ", dsm_rank());                                  \
            fprintf(stderr, __VA_ARGS__);                                                            \
            fputc('\n', stderr);                                                                     \
            atomic_fetch_add(&(s)->errors, 1);                                                       \
        }                                                                                            \
    } while (0)

static void nested(int tid, int n, void *arg)
{
    (void)tid;
    (void)n;
    (void)arg;
}

/* Spin-free wait for the handshake value (bounded: the job's timeout ends a hang anyway). */
static void await_turn(struct state *s, int want)
{
    for (int i = 0; i < 20000 && atomic_load(&s->turn) != want; i++)
        usleep(100);
}

static void body(int tid, int n, void *arg)
{
    struct state *s = arg;
    int r = dsm_rank(), nr = dsm_nranks(), rc;

    atomic_fetch_add(&s->ran[tid], 1);
    CHECK(s, (tid == 0) == pthread_equal(pthread_self(), s->caller), "thread 0 must be the caller");
    CHECK(s, dsm_barrier() == DSM_ESTATE, "dsm_barrier in a team of %d threads was accepted", n);
    CHECK(s, dsm_parallel(2, nested, NULL) == DSM_ESTATE, "a nested dsm_parallel was accepted");
    /* mutual exclusion across the threads of every rank */
    for (int i = 0; i < ROUNDS; i++) {
        if ((rc = dsm_lock(LOCK_ID)) != 0) {
            CHECK(s, 0, "dsm_lock: %s", dsm_strerror(rc));
            continue;
        }
        CHECK(s, ++*s->inside == 1, "two holders of lock %u at once", LOCK_ID);
        ++*s->total;
        --*s->inside;
        CHECK(s, (rc = dsm_unlock(LOCK_ID)) == 0, "dsm_unlock: %s", dsm_strerror(rc));
    }
    /* ownership: thread 0 holds the lock; thread 1 may not release it; thread 0 may not retake it */
    if (tid == 0) {
        CHECK(s, dsm_lock(LOCK_ID + 1 + (uint32_t)r) == 0, "dsm_lock for the ownership check");
        CHECK(s, dsm_lock(LOCK_ID + 1 + (uint32_t)r) == DSM_EINVAL, "the holder took its lock twice");
        atomic_store(&s->turn, 1);
        await_turn(s, 2);
        CHECK(s, dsm_unlock(LOCK_ID + 1 + (uint32_t)r) == 0, "the holder could not unlock");
    } else if (tid == 1) {
        await_turn(s, 1);
        CHECK(s, dsm_unlock(LOCK_ID + 1 + (uint32_t)r) == DSM_EINVAL, "another thread unlocked the holder's lock");
        atomic_store(&s->turn, 2);
    }
    /* memory order across the barrier, every thread of every rank */
    s->slots[r * NT + tid] = 1000L * r + tid + 1;
    CHECK(s, dsm_thread_barrier() == 0, "dsm_thread_barrier failed");
    for (int k = 0; k < nr * NT; k++)
        CHECK(s, s->slots[k] == 1000L * (k / NT) + k % NT + 1, "slot %d is %ld after the barrier", k, s->slots[k]);
    CHECK(s, dsm_thread_barrier() == 0, "dsm_thread_barrier failed");
    CHECK(s, *s->total == (long)ROUNDS * NT * nr, "total %ld, expected %ld", *s->total, (long)ROUNDS * NT * nr);
}

int main(int argc, char **argv)
{
    static struct state s;
    int rc;

    CHECK(&s, dsm_parallel(1, nested, NULL) == DSM_ESTATE, "dsm_parallel before dsm_init was accepted");
    if ((rc = dsm_init(&argc, &argv)) != 0) {
        fprintf(stderr, "parallel_api: dsm_init: %s\n", dsm_strerror(rc));
        return 1;
    }
    s.inside = dsm_coalloc(dsm_page_size());
    s.total = s.inside + 1;
    s.slots = dsm_coalloc((size_t)dsm_nranks() * NT * sizeof(long));
    s.caller = pthread_self();
    CHECK(&s, s.inside != NULL && s.slots != NULL, "dsm_coalloc failed");
    CHECK(&s, dsm_thread_barrier() == DSM_ESTATE, "dsm_thread_barrier outside dsm_parallel was accepted");
    CHECK(&s, dsm_parallel(0, nested, NULL) == DSM_EINVAL, "0 threads accepted");
    CHECK(&s, dsm_parallel(2, NULL, NULL) == DSM_EINVAL, "no function accepted");
    if (s.inside != NULL && s.slots != NULL) {
        CHECK(&s, (rc = dsm_parallel(NT, body, &s)) == 0, "dsm_parallel: %s", dsm_strerror(rc));
        for (int t = 0; t < NT; t++)
            CHECK(&s, atomic_load(&s.ran[t]) == 1, "thread %d ran %d times", t, atomic_load(&s.ran[t]));
        CHECK(&s, dsm_barrier() == 0, "dsm_barrier after dsm_parallel failed");
        CHECK(&s, dsm_parallel(1, nested, NULL) == 0, "a second dsm_parallel failed");
        CHECK(&s, dsm_barrier() == 0, "dsm_barrier after the second dsm_parallel failed");
    }
    printf("parallel_api: rank %d: %s\n", dsm_rank(), atomic_load(&s.errors) ? "FAILED" : "OK");
    fflush(stdout);
    if ((rc = dsm_finalize()) != 0) {
        fprintf(stderr, "parallel_api: dsm_finalize: %s\n", dsm_strerror(rc));
        return 1;
    }
    return atomic_load(&s.errors) != 0;
}

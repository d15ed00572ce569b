/*
 * test_atomics.c - the protocols' atomics hooks over the in-process harness, as
 * daemon/atomics.c drives them (ph_atomic): every model, randomized schedules with seeds.
 *
 * Each node's rank does fetch-adds and CAS increments on counters homed on different
 * nodes while other ranks fault on the counters' pages (plain reads) and write a plain
 * page, with random message delivery and revocation order. Checked: the fetch-adds' old
 * values are 0..K-1 once each and the CAS loop loses nothing (linearizability); the home's
 * word ends at the total; after a barrier every node's plain read sees it (under every
 * model); under sequential the single-writer invariants hold throughout. A failure names
 * its seed: rerun that one seed to replay it.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "proto_harness.h"
#include "proto_prog.h"
#include "wire.h"

#define PS 64
#define NPAGES 3      /* pages 0, 1: counters; page 2: plain */
#define PER_NODE 12   /* atomics each node's rank performs */

static uint32_t rnd(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(*s >> 33);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

/* A node's rank: its current atomic, and for a CAS loop the value it last saw. */
struct rank_state {
    int busy, done, count;      /* an atomic is out; completions seen; atomics finished */
    int cas;                    /* the atomic out is a CAS attempt */
    uint64_t page, seen, old;
};

static void random_atomics(const struct dsmp_ops *ops, uint64_t seed, int nnodes)
{
    int home[NPAGES] = { (int)(seed % (uint64_t)nnodes), (int)((seed + 1) % (uint64_t)nnodes), 0 };
    struct ph *h = pp_make(ops, nnodes, NPAGES, PS, home, seed % 2 ? PH_REVOKE_DEFERRED : PH_REVOKE_SYNC);
    struct rank_state r[PH_MAX_NODES] = { 0 };
    uint64_t olds[PH_MAX_NODES * PER_NODE], s = seed;
    size_t nolds = 0;
    int finished = 0, cas_incs = 0;

    cr_assert_not_null(h);
    for (long step = 0; finished < nnodes; step++) {
        uint32_t what = rnd(&s) % 100;
        int node = (int)(rnd(&s) % (uint32_t)nnodes);

        cr_assert_lt(step, 200000, "seed %llu: the atomics never finished", (unsigned long long)seed);
        if (r[node].busy && r[node].done) { /* the node's atomic came back */
            r[node].busy = r[node].done = 0;
            if (!r[node].cas) {
                olds[nolds++] = r[node].old;
                r[node].count++;
            } else if (r[node].old == r[node].seen) {
                cas_incs++;
                r[node].count++;
            } else {
                r[node].seen = r[node].old; /* lost the race: try again from what it saw */
            }
            if (r[node].count == PER_NODE)
                finished++;
        }
        if (what < 30 && !r[node].busy && r[node].count < PER_NODE) {
            r[node].busy = 1;
            r[node].cas = rnd(&s) % 3 == 0;
            if (r[node].cas)
                ph_atomic(h, node, 1, DSMW_AOP_CAS, r[node].seen, r[node].seen + 1, &r[node].old, &r[node].done);
            else
                ph_atomic(h, node, 0, DSMW_AOP_FETCH_ADD, 1, 0, &r[node].old, &r[node].done);
        } else if (what < 40) {
            (void)ph_fault(h, node, rnd(&s) % 2, DSM_ACCESS_READ, ph_rank(node)); /* plain reads */
        } else if (what < 50) {
            if (ph_access(h, node, 2) == DSM_ACCESS_WRITE)
                ph_write(h, node, 2);
            else
                (void)ph_fault(h, node, 2, DSM_ACCESS_WRITE, ph_rank(node));
        } else if (ops->model == DSM_MODEL_CAUSAL && what < 53) {
            ph_tick(h, node);
        } else {
            ph_step_random(h, &s);
        }
        cr_assert_eq(ph_errors(h), 0, "seed %llu step %ld: %s", (unsigned long long)seed, step, ph_first_error(h));
        if (ops->model == DSM_MODEL_SEQUENTIAL) {
            const char *why = ph_check(h);

            cr_assert_null(why, "seed %llu step %ld: %s", (unsigned long long)seed, step, why ? why : "");
        }
    }
    pp_run(h);
    qsort(olds, nolds, sizeof(olds[0]), cmp_u64);
    for (size_t i = 0; i < nolds; i++)
        cr_assert_eq(olds[i], i, "seed %llu: fetch-add old values are not 0..%zu once each (position %zu: %llu)",
                     (unsigned long long)seed, nolds - 1, i, (unsigned long long)olds[i]);
    cr_assert_eq(pp_peek(h, home[0], 0, 0), nolds, "seed %llu: the fetch-add counter's home holds %llu",
                 (unsigned long long)seed, (unsigned long long)pp_peek(h, home[0], 0, 0));
    cr_assert_eq(pp_peek(h, home[1], 1, 0), (uint64_t)cas_incs, "seed %llu: the CAS counter's home holds %llu, %d "
                 "increments succeeded", (unsigned long long)seed, (unsigned long long)pp_peek(h, home[1], 1, 0),
                 cas_incs);
    pp_barrier(h);
    for (int n = 0; n < nnodes; n++) {
        cr_assert_eq(pp_read(h, n, 0, 0), nolds, "seed %llu: node %d reads %llu after the barrier",
                     (unsigned long long)seed, n, (unsigned long long)pp_read(h, n, 0, 0));
        cr_assert_eq(pp_read(h, n, 1, 0), (uint64_t)cas_incs, "seed %llu: node %d reads %llu after the barrier",
                     (unsigned long long)seed, n, (unsigned long long)pp_read(h, n, 1, 0));
    }
    cr_assert_eq(ph_errors(h), 0, "seed %llu: %s", (unsigned long long)seed, ph_first_error(h));
    ph_destroy(h);
}

Test(atomics, sequential_random_schedules, .timeout = 120)
{
    for (uint64_t seed = 1; seed <= 300; seed++)
        random_atomics(&dsmp_sequential_ops, seed, 2 + (int)(seed % 3));
}

Test(atomics, release_random_schedules, .timeout = 120)
{
    for (uint64_t seed = 1; seed <= 300; seed++)
        random_atomics(&dsmp_release_ops, seed, 2 + (int)(seed % 3));
}

Test(atomics, causal_random_schedules, .timeout = 120)
{
    for (uint64_t seed = 1; seed <= 300; seed++)
        random_atomics(&dsmp_causal_ops, seed, 2 + (int)(seed % 3));
}

/* A rank's plain read right after its own fetch-add sees it (the done hook's job under
 * release and causal; under sequential the home took every copy first). */
static void read_own(const struct dsmp_ops *ops)
{
    int home[NPAGES] = { 0, 0, 0 };
    struct ph *h = pp_make(ops, 3, NPAGES, PS, home, PH_REVOKE_DEFERRED);
    uint64_t old;
    int done = 0;

    for (int n = 0; n < 3; n++)
        (void)pp_read(h, n, 0, 0); /* every node caches the counter's page */
    for (int k = 0; k < 5; k++) {
        for (int n = 1; n < 3; n++) {
            ph_atomic(h, n, 0, DSMW_AOP_FETCH_ADD, 10, 0, &old, &done);
            /* only until the rank is answered; messages first, so that the reply can arrive
             * while the revocations an update needs are still out */
            for (long i = 0; done < 2 * k + n; i++) {
                int moved = 0;

                cr_assert_lt(i, PP_LIMIT);
                for (int src = 0; src < 3; src++)
                    moved |= ph_deliver(h, src, n);
                if (!moved)
                    cr_assert(ph_step(h) || done == 2 * k + n, "%s: stuck before the atomic's answer", ops->name);
            }
            if (ops->model != DSM_MODEL_SEQUENTIAL) /* the node's copy is current when the rank goes on */
                cr_assert_eq(pp_peek(h, n, 0, 0), old + 10, "%s: node %d holds %llu when its fetch-add from %llu "
                             "returns", ops->name, n, (unsigned long long)pp_peek(h, n, 0, 0),
                             (unsigned long long)old);
            pp_run(h);
            cr_assert_eq(pp_read(h, n, 0, 0), old + 10, "%s: node %d reads %llu after its fetch-add from %llu",
                         ops->name, n, (unsigned long long)pp_read(h, n, 0, 0), (unsigned long long)old);
        }
    }
    ph_destroy(h);
}

Test(atomics, read_after_own_atomic_sequential) { read_own(&dsmp_sequential_ops); }
Test(atomics, read_after_own_atomic_release) { read_own(&dsmp_release_ops); }
Test(atomics, read_after_own_atomic_causal) { read_own(&dsmp_causal_ops); }

/* proto_prog.c - see proto_prog.h. */
#include "proto_prog.h"

#include <criterion/criterion.h>

#include <string.h>

uint32_t pp_ahead;
int pp_partial;
int pp_mapped;

struct ph *pp_make(const struct dsmp_ops *ops, int nnodes, uint64_t npages, size_t page_size, const int *home,
                   enum ph_revoke_mode mode)
{
    struct ph_config cfg = {
        .ops = ops, .nnodes = nnodes, .npages = npages, .page_size = page_size, .home = home,
        .revoke = mode, .daemon_revoke = 1, .ahead = pp_ahead, .partial = pp_partial,
        .mapped = pp_mapped,
    };
    struct ph *h = ph_create(&cfg);

    cr_assert_not_null(h, "harness creation failed for %s", ops->name);
    cr_assert_eq(ph_errors(h), 0, "%s", ph_first_error(h));
    return h;
}

void pp_run(struct ph *h)
{
    cr_assert_geq(ph_run(h, PP_LIMIT), 0, "no quiescence in %ld steps", PP_LIMIT);
    cr_assert_eq(ph_errors(h), 0, "harness: %s", ph_first_error(h));
}

void pp_access(struct ph *h, int node, uint64_t page, int access)
{
    if (ph_access(h, node, page) < access && ph_fault_pending(h, node, page) == 0)
        cr_assert_eq(ph_fault(h, node, page, access, ph_rank(node)), 0);
    if (ph_access(h, node, page) < access)
        pp_run(h); /* only when the fault was not granted at once: other traffic stays queued */
    cr_assert_eq(ph_errors(h), 0, "harness: %s", ph_first_error(h));
    cr_assert_geq(ph_access(h, node, page), access, "node %d: page %llu not granted access %d (has %d)", node,
                  (unsigned long long)page, access, ph_access(h, node, page));
}

uint64_t pp_peek(struct ph *h, int node, uint64_t page, size_t word)
{
    uint64_t v;

    memcpy(&v, ph_frame(h, node, page) + word * 8, 8);
    return v;
}

void pp_opened_ahead(struct ph *h, int node, uint64_t page)
{
    cr_assert_eq(ph_count_events(h, node, PH_EV_SET_ACCESS, page, DSM_ACCESS_WRITE), 1,
                 "page %llu not opened before the grant", (unsigned long long)page);
    cr_assert_eq(ph_count_events(h, node, PH_EV_GRANT, page, DSM_ACCESS_WRITE), 0);
    cr_assert_eq(ph_count(h, PH_ANY, node, PH_ANY), 0, "writes ahead sent a message");
}

void pp_write_held(struct ph *h, int node, uint64_t page, size_t word, uint64_t value)
{
    uint64_t faults = ph_faults_issued(h);

    pp_write(h, node, page, word, value);
    cr_assert_eq(ph_faults_issued(h), faults, "node %d: page %llu faulted", node, (unsigned long long)page);
}

uint64_t pp_read(struct ph *h, int node, uint64_t page, size_t word)
{
    pp_access(h, node, page, DSM_ACCESS_READ);
    return pp_peek(h, node, page, word);
}

void pp_write(struct ph *h, int node, uint64_t page, size_t word, uint64_t value)
{
    pp_access(h, node, page, DSM_ACCESS_WRITE);
    memcpy(ph_frame(h, node, page) + word * 8, &value, 8);
}

uint8_t pp_read_byte(struct ph *h, int node, uint64_t page, size_t off)
{
    pp_access(h, node, page, DSM_ACCESS_READ);
    return ph_frame(h, node, page)[off];
}

void pp_write_byte(struct ph *h, int node, uint64_t page, size_t off, uint8_t value)
{
    pp_access(h, node, page, DSM_ACCESS_WRITE);
    ph_frame(h, node, page)[off] = value;
}

void pp_lock(struct ph *h, int node, uint32_t lock)
{
    int done = 0;

    ph_lock(h, node, lock, &done);
    pp_run(h);
    cr_assert_eq(done, 1, "node %d: lock %u not acquired", node, lock);
}

void pp_unlock(struct ph *h, int node, uint32_t lock)
{
    int done = 0;

    ph_unlock(h, node, lock, &done);
    pp_run(h);
    cr_assert_eq(done, 1, "node %d: unlock of lock %u did not complete", node, lock);
}

void pp_barrier(struct ph *h)
{
    int done[PH_MAX_NODES] = { 0 }, n = 0;

    while (n < PH_MAX_NODES && ph_proto(h, n) != NULL) {
        ph_barrier(h, n, &done[n]);
        n++;
    }
    pp_run(h);
    for (int i = 0; i < n; i++)
        cr_assert_eq(done[i], 1, "node %d not released from the barrier", i);
}

static uint32_t rnd(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(*s >> 33);
}

/* One node's lock-counter program: its program counter, iteration and the value it read. */
struct counter_rank {
    int pc, it, done;
    uint64_t val;
};

enum { C_LOCK, C_LOCKED, C_READ, C_WRITE, C_UNLOCK, C_UNLOCKED, C_FINISHED };

/* Take one step of node n's program, if it can take one now. */
static void counter_step(struct ph *h, int n, struct counter_rank *r, uint64_t page, uint32_t lock, int iters)
{
    switch (r->pc) {
    case C_LOCK:
        ph_lock(h, n, lock, &r->done);
        r->pc = C_LOCKED;
        break;
    case C_LOCKED:
    case C_UNLOCKED:
        if (r->done == 0)
            break;
        cr_assert_eq(r->done, 1);
        r->done = 0;
        if (r->pc == C_LOCKED)
            r->pc = C_READ;
        else
            r->pc = ++r->it < iters ? C_LOCK : C_FINISHED;
        break;
    case C_READ:
    case C_WRITE: {
        int want = r->pc == C_READ ? DSM_ACCESS_READ : DSM_ACCESS_WRITE;

        if (ph_access(h, n, page) >= want) {
            if (r->pc == C_READ) {
                r->val = pp_peek(h, n, page, 0);
                r->pc = C_WRITE;
            } else {
                uint64_t v = r->val + 1;

                memcpy(ph_frame(h, n, page), &v, 8);
                r->pc = C_UNLOCK;
            }
        } else if (ph_fault_pending(h, n, page) == 0) {
            cr_assert_eq(ph_fault(h, n, page, want, ph_rank(n)), 0);
        }
        break;
    }
    case C_UNLOCK:
        ph_unlock(h, n, lock, &r->done);
        r->pc = C_UNLOCKED;
        break;
    default:
        break;
    }
}

void pp_lock_counter(struct ph *h, int nnodes, uint64_t page, uint32_t lock, int iters, uint64_t seed)
{
    struct counter_rank r[PH_MAX_NODES];
    uint64_t s = seed;
    long steps = 0;

    memset(r, 0, sizeof(r));
    for (;;) {
        int finished = 0;

        for (int n = 0; n < nnodes; n++)
            finished += r[n].pc == C_FINISHED;
        if (finished == nnodes && ph_idle(h))
            break;
        cr_assert_lt(steps++, PP_LIMIT, "seed %llu: lock counter stuck", (unsigned long long)seed);
        if (ph_idle(h) || rnd(&s) % 3 == 0) {
            int n = (int)(rnd(&s) % (uint32_t)nnodes);

            counter_step(h, n, &r[n], page, lock, iters);
        } else {
            ph_step_random(h, &s);
        }
        cr_assert_eq(ph_errors(h), 0, "seed %llu: %s", (unsigned long long)seed, ph_first_error(h));
    }
    for (int n = 0; n < nnodes; n++) {
        uint64_t v;

        pp_lock(h, n, lock);
        v = pp_read(h, n, page, 0);
        cr_assert_eq(v, (uint64_t)nnodes * (uint64_t)iters, "seed %llu: node %d reads %llu, want %llu",
                     (unsigned long long)seed, n, (unsigned long long)v,
                     (unsigned long long)nnodes * (unsigned long long)iters);
        pp_unlock(h, n, lock);
    }
}

/* One node's lock-scan program (pp_lock_scan). */
struct scan_rank {
    int pc, it, done;
    uint64_t j, sum;
};

enum { S_LOCK, S_LOCKED, S_SCAN, S_WRITE, S_UNLOCK, S_UNLOCKED, S_FINISHED };

/* Take one step of node n's lock-scan program, if it can take one now; *total counts the
 * increments made so far (each under the lock). */
static void scan_step(struct ph *h, int n, struct scan_rank *r, uint64_t npages, uint32_t lock, int iters,
                      uint64_t *total, uint64_t seed)
{
    uint64_t page = r->pc == S_SCAN ? r->j : ((uint64_t)n * 5 + (uint64_t)r->it * 3) % npages;
    int want = r->pc == S_SCAN ? DSM_ACCESS_READ : DSM_ACCESS_WRITE;

    switch (r->pc) {
    case S_LOCK:
        ph_lock(h, n, lock, &r->done);
        r->pc = S_LOCKED;
        break;
    case S_LOCKED:
    case S_UNLOCKED:
        if (r->done == 0)
            break;
        r->done = 0;
        if (r->pc == S_LOCKED) {
            r->pc = S_SCAN;
            r->j = 0;
            r->sum = 0;
        } else {
            r->pc = ++r->it < iters ? S_LOCK : S_FINISHED;
        }
        break;
    case S_SCAN:
    case S_WRITE:
        if (ph_access(h, n, page) < want) {
            if (ph_fault_pending(h, n, page) == 0)
                cr_assert_eq(ph_fault(h, n, page, want, ph_rank(n)), 0);
            break;
        }
        if (r->pc == S_SCAN) {
            r->sum += pp_peek(h, n, page, 0);
            if (++r->j == npages) {
                cr_assert_eq(r->sum, *total, "seed %llu: node %d scans a sum of %llu under the lock, want %llu",
                             (unsigned long long)seed, n, (unsigned long long)r->sum, (unsigned long long)*total);
                r->pc = S_WRITE;
            }
        } else {
            uint64_t v = pp_peek(h, n, page, 0) + 1;

            memcpy(ph_frame(h, n, page), &v, 8);
            ++*total;
            r->pc = S_UNLOCK;
        }
        break;
    case S_UNLOCK:
        ph_unlock(h, n, lock, &r->done);
        r->pc = S_UNLOCKED;
        break;
    default:
        break;
    }
}

void pp_lock_scan(struct ph *h, int nnodes, uint64_t npages, uint32_t lock, int iters, uint64_t seed)
{
    struct scan_rank r[PH_MAX_NODES];
    uint64_t s = seed, total = 0;
    long steps = 0;

    memset(r, 0, sizeof(r));
    for (;;) {
        int finished = 0;

        for (int n = 0; n < nnodes; n++)
            finished += r[n].pc == S_FINISHED;
        if (finished == nnodes && ph_idle(h))
            break;
        cr_assert_lt(steps++, PP_LIMIT, "seed %llu: lock scan stuck", (unsigned long long)seed);
        if (ph_idle(h) || rnd(&s) % 3 == 0) {
            int n = (int)(rnd(&s) % (uint32_t)nnodes);

            scan_step(h, n, &r[n], npages, lock, iters, &total, seed);
        } else {
            ph_step_random(h, &s);
        }
        cr_assert_eq(ph_errors(h), 0, "seed %llu: %s", (unsigned long long)seed, ph_first_error(h));
    }
    cr_assert_eq(total, (uint64_t)nnodes * (uint64_t)iters);
}

struct pp_scan_totals pp_lock_scans(const struct dsmp_ops *ops, uint32_t ahead, int ahead_odd_only, int evict_pct)
{
    struct pp_scan_totals t = { 0, 0, 0 };

    for (uint64_t seed = 1; seed <= 60; seed++) {
        int home[12], nn = 2 + (int)(seed % 3);
        struct ph *h;

        for (int p = 0; p < 12; p++)
            home[p] = (int)((uint64_t)(p / 4) + seed) % nn;
        pp_ahead = ahead_odd_only && seed % 2 == 0 ? 0 : ahead;
        pp_partial = evict_pct > 0;
        h = pp_make(ops, nn, 12, 4096, home, seed % 2 ? PH_REVOKE_DEFERRED : PH_REVOKE_SYNC);
        pp_ahead = 0;
        pp_partial = 0;
        ph_set_evict_pct(h, evict_pct);
        pp_lock_scan(h, nn, 12, (uint32_t)(seed % 5), 6, seed);
        for (int r = 0; r < nn * PH_RANKS_PER_NODE; r++) {
            t.read_ahead += ph_counter(h, r, DSMP_PAGES_READ_AHEAD);
            t.fetched_again += ph_counter(h, r, DSMP_PAGES_FETCHED_AGAIN);
        }
        t.evictions += ph_evictions(h);
        ph_destroy(h);
    }
    return t;
}

/*
 * litmus.c - classic litmus shapes run on DSM memory, counting outcomes a model forbids.
 *
 * usage: litmus SHAPE [-i ITERS]     SHAPE: sb mp wrc iriw corr mpl spin
 *        (ITERS default 200, 5000 with DSM_STRESS=1, 50 with DSM_TEST_QUICK=1)
 *
 * Each shape has a few roles (role k is played by rank k; extra ranks only join the
 * barriers). Every iteration uses FRESH pages: one region is coalloc'd up front and every
 * variable of every iteration gets a page of its own, homed on a node chosen so that the
 * variables of one iteration sit on different nodes when there are enough of them (the
 * choice rotates with the iteration). Iterations start together at a dsm_barrier, each
 * role waits a random few microseconds to vary the interleaving, then runs its accesses.
 * Registers are kept privately and gathered after the last iteration; rank 0 prints the
 * outcome histogram and exits 1 if an outcome forbidden under the job's model
 * (dsm_consistency()) was seen, or a register held a value no store wrote.
 *
 * Ranks on one node share the physical page frames, so x86-TSO store buffering would be
 * visible between them (SB's forbidden outcome happens on plain x86 stores!). The shared
 * accesses are therefore __atomic_*_n(..., __ATOMIC_SEQ_CST): the hardware is sequentially
 * consistent by itself and only the DSM protocol is under test.
 *
 * The spin shape waits: P0 spins on a flag that P1 sets with a plain store, with no
 * synchronisation call, so it only finishes if the model propagates writes by itself
 * (sequential, causal; under release it may legitimately spin for ever, and is not run
 * there). Each wait is bounded (SPIN_WAIT_NS, and SPIN_BUDGET_NS over the whole run), so a
 * model that never delivers the flag shows as the forbidden outcome, not as a hang.
 */
#include "lt_common.h"

#include <dsm/dsm.h>

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ROLES 4
#define MAX_VARS  2
#define MAX_REGS  2
#define MAX_VALUE 2                 /* registers hold 0..MAX_VALUE */
#define NKEYS     6561              /* (MAX_VALUE+1)^(MAX_ROLES*MAX_REGS) */
#define JITTER_NS 30000
#define LOCK_BASE 0x4c000000u       /* lock ids of the mpl shape: LOCK_BASE + iteration */
#define SPIN_WAIT_NS   2000000000LL /* the spin shape's longest wait for one flag */
#define SPIN_BUDGET_NS 20000000000LL /* ... and for all of them together */

typedef int regs_t[MAX_REGS];

/* A litmus shape: roles, their code, and the outcome the strongest models forbid. */
struct shape {
    const char *name;
    int         roles, vars;
    int         nregs[MAX_ROLES];  /* registers each role writes */
    unsigned    forbidden_in;      /* models (lt_model bits) under which it is forbidden */
    const char *forbidden;         /* the outcome, as printed */
    /* Run role `role` on variables v[] (lock id `lock`), writing its registers into r. */
    void (*run)(int role, int *const v[], int *r, uint32_t lock);
    /* Is the outcome (registers of every role) the forbidden one? */
    int (*is_forbidden)(regs_t const r[]);
};

/* Sequentially consistent store and load (see the file comment for why). */
static void st(int *p, int v) { __atomic_store_n(p, v, __ATOMIC_SEQ_CST); }
static int  ld(int *p) { return __atomic_load_n(p, __ATOMIC_SEQ_CST); }

/* Lock/unlock that report a failure (the outcome then shows a bad register value). */
static int lock(uint32_t id)
{
    int rc = dsm_lock(id);

    if (rc != 0)
        fprintf(stderr, "litmus: rank %d: dsm_lock(%u): %s\n", dsm_rank(), id, dsm_strerror(rc));
    return rc;
}

static int unlock(uint32_t id)
{
    int rc = dsm_unlock(id);

    if (rc != 0)
        fprintf(stderr, "litmus: rank %d: dsm_unlock(%u): %s\n", dsm_rank(), id,
                dsm_strerror(rc));
    return rc;
}

/* SB: P0: x=1; r0=y   P1: y=1; r0=x.   Forbidden: both read 0. */
static void run_sb(int role, int *const v[], int *r, uint32_t lk)
{
    st(v[role], 1);
    r[0] = ld(v[1 - role]);
}
static int bad_sb(regs_t const r[]) { return r[0][0] == 0 && r[1][0] == 0; }

/* MP: P0: x=1; y=1   P1: r0=y; r1=x.   Forbidden: r0=1, r1=0. */
static void run_mp(int role, int *const v[], int *r, uint32_t lk)
{
    if (role == 0) {
        st(v[0], 1);
        st(v[1], 1);
    } else {
        r[0] = ld(v[1]);
        r[1] = ld(v[0]);
    }
}
static int bad_mp(regs_t const r[]) { return r[1][0] == 1 && r[1][1] == 0; }

/* WRC: P0: x=1   P1: r0=x; y=1   P2: r0=y; r1=x.   Forbidden: P1 r0=1, P2 r0=1 r1=0. */
static void run_wrc(int role, int *const v[], int *r, uint32_t lk)
{
    if (role == 0) {
        st(v[0], 1);
    } else if (role == 1) {
        r[0] = ld(v[0]);
        st(v[1], 1);
    } else {
        r[0] = ld(v[1]);
        r[1] = ld(v[0]);
    }
}
static int bad_wrc(regs_t const r[]) { return r[1][0] == 1 && r[2][0] == 1 && r[2][1] == 0; }

/* IRIW: P0: x=1  P1: y=1  P2: r0=x; r1=y  P3: r0=y; r1=x.  Forbidden: P2 1,0 and P3 1,0. */
static void run_iriw(int role, int *const v[], int *r, uint32_t lk)
{
    if (role < 2) {
        st(v[role], 1);
    } else {
        int first = role == 2 ? 0 : 1;

        r[0] = ld(v[first]);
        r[1] = ld(v[1 - first]);
    }
}
static int bad_iriw(regs_t const r[])
{
    return r[2][0] == 1 && r[2][1] == 0 && r[3][0] == 1 && r[3][1] == 0;
}

/* CoRR: P0: x=1; x=2   P1: r0=x; r1=x.   Forbidden: r0=2, r1=1 (a write seen to "undo"). */
static void run_corr(int role, int *const v[], int *r, uint32_t lk)
{
    if (role == 0) {
        st(v[0], 1);
        st(v[0], 2);
    } else {
        r[0] = ld(v[0]);
        r[1] = ld(v[0]);
    }
}
static int bad_corr(regs_t const r[]) { return r[1][0] == 2 && r[1][1] == 1; }

/*
 * MP with the flag under a lock: P0: x=1; lock; y=1; unlock   P1: lock; r0=y; unlock; r1=x.
 * Forbidden under every model: the lock orders x=1 before P1's read of x.
 */
static void run_mpl(int role, int *const v[], int *r, uint32_t lk)
{
    if (role == 0) {
        st(v[0], 1);
        if (lock(lk) == 0) {
            st(v[1], 1);
            unlock(lk);
        }
    } else {
        r[0] = lock(lk) == 0 ? ld(v[1]) : -1;
        if (r[0] >= 0 && unlock(lk) != 0)
            r[0] = -1;
        r[1] = ld(v[0]);
    }
}

/* What is left of the spin shape's waiting budget (only role 0 uses it). */
static int64_t spin_budget_ns = SPIN_BUDGET_NS;

/*
 * Spin: P0: while (f == 0 and not timed out) ; r0=f; r1=d   P1: d=1; f=1.
 * Forbidden: r0=0 (the flag never arrived) or r0=1 r1=0 (the flag without the data).
 */
static void run_spin(int role, int *const v[], int *r, uint32_t lk)
{
    int64_t start, limit;

    if (role == 1) {
        st(v[0], 1);
        st(v[1], 1);
        return;
    }
    start = lt_now_ns();
    limit = spin_budget_ns < SPIN_WAIT_NS ? spin_budget_ns : SPIN_WAIT_NS;
    for (unsigned n = 0; ld(v[1]) == 0; n++) {
        if (n % 256 == 0 && lt_now_ns() - start > limit)
            break;
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
    }
    spin_budget_ns -= lt_now_ns() - start;
    if (spin_budget_ns < 0)
        spin_budget_ns = 0;
    r[0] = ld(v[1]);
    r[1] = ld(v[0]);
}
static int bad_spin(regs_t const r[]) { return r[0][0] == 0 || r[0][1] == 0; }

static const struct shape shapes[] = {
    {"sb", 2, 2, {1, 1}, LT_SEQUENTIAL, "P0 r0=0, P1 r0=0", run_sb, bad_sb},
    {"mp", 2, 2, {0, 2}, LT_SEQUENTIAL | LT_CAUSAL, "P1 r0(y)=1 r1(x)=0", run_mp, bad_mp},
    {"wrc", 3, 2, {0, 1, 2}, LT_SEQUENTIAL | LT_CAUSAL, "P1 r0(x)=1, P2 r0(y)=1 r1(x)=0",
     run_wrc, bad_wrc},
    {"iriw", 4, 2, {0, 0, 2, 2}, LT_SEQUENTIAL, "P2 r0(x)=1 r1(y)=0, P3 r0(y)=1 r1(x)=0",
     run_iriw, bad_iriw},
    /* Under release only synchronisation orders memory, so even CoRR is a data race there. */
    {"corr", 2, 1, {0, 2}, LT_SEQUENTIAL | LT_CAUSAL, "P1 r0=2 r1=1", run_corr, bad_corr},
    {"mpl", 2, 2, {0, 2}, LT_SEQUENTIAL | LT_RELEASE | LT_CAUSAL, "P1 r0(y)=1 r1(x)=0",
     run_mpl, bad_mp},
    {"spin", 2, 2, {2, 0}, LT_SEQUENTIAL | LT_CAUSAL,
     "P0 r0(f)=0 (flag never seen) or r0(f)=1 r1(d)=0", run_spin, bad_spin},
};

/* What one run needs: the shape, its geometry, its memory. */
struct run {
    const struct shape *s;
    long                iters;
    int                 rank, nranks, nnodes;
    size_t              page;
    char               *vars;  /* nnodes blocks of iters*vars pages */
    int                *all;   /* gathered registers: [rank][iter][MAX_REGS] */
    regs_t             *mine;  /* this rank's registers per iteration */
};

/* Address of variable v of iteration it: its own page, homed on node (v + it) % nnodes. */
static int *var_addr(const struct run *x, long it, int v)
{
    size_t blk = (size_t)x->iters * (size_t)x->s->vars;
    int    home = (int)((v + it) % x->nnodes);
    size_t pg = (size_t)home * blk + (size_t)it * (size_t)x->s->vars + (size_t)v;

    return (int *)(x->vars + pg * x->page);
}

/* Look a shape up by name; NULL (with the list printed) if unknown. */
static const struct shape *find_shape(const char *name)
{
    for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++)
        if (strcmp(shapes[i].name, name) == 0)
            return &shapes[i];
    fprintf(stderr, "litmus: unknown shape '%s' (sb mp wrc iriw corr mpl spin)\n", name);
    return NULL;
}

/* Parse "SHAPE [-i ITERS]" into x; 0 or -1 (usage printed). */
static int parse_args(int argc, char **argv, struct run *x)
{
    int c;

    x->iters = lt_scaled(200, 5000);
    while ((c = getopt(argc, argv, "i:")) != -1) {
        if (c == 'i' && lt_parse_long(optarg, 1, 1000000, &x->iters) == 0)
            continue;
        goto usage;
    }
    if (optind != argc - 1)
        goto usage;
    x->s = find_shape(argv[optind]);
    return x->s ? 0 : -1;
usage:
    fprintf(stderr, "usage: litmus SHAPE [-i ITERS]   SHAPE: sb mp wrc iriw corr mpl spin\n");
    return -1;
}

/* Allocate the variables, the gathered registers and the private registers; 0 or -1. */
static int setup(struct run *x)
{
    size_t pages = (size_t)x->nnodes * (size_t)x->iters * (size_t)x->s->vars;

    x->vars = dsm_coalloc(pages * x->page);
    x->all = dsm_coalloc((size_t)x->nranks * (size_t)x->iters * sizeof(regs_t));
    x->mine = calloc((size_t)x->iters, sizeof(regs_t));
    if (x->vars == NULL || x->all == NULL || x->mine == NULL) {
        fprintf(stderr, "litmus: rank %d: cannot allocate %zu pages of variables\n", x->rank,
                pages);
        return -1;
    }
    return 0;
}

/* Every iteration: barrier, jitter, this rank's role. 0 or a DSM error code. */
static int run_iterations(struct run *x)
{
    uint64_t seed = 0x9E3779B97F4A7C15ULL ^ ((uint64_t)x->rank + 1) * 0x100000001B3ULL;

    for (long it = 0; it < x->iters; it++) {
        int *v[MAX_VARS];
        int  rc = dsm_barrier();

        if (rc != 0)
            return rc;
        if (x->rank >= x->s->roles)
            continue;
        for (int k = 0; k < x->s->vars; k++)
            v[k] = var_addr(x, it, k);
        lt_jitter(&seed, JITTER_NS);
        x->s->run(x->rank, v, x->mine[it], LOCK_BASE + (uint32_t)it);
    }
    return dsm_barrier();
}

/* Encode one iteration's registers (all roles) as a histogram key; -1 if a value is bad. */
static int outcome_key(const struct run *x, long it)
{
    int key = 0;

    for (int role = 0; role < x->s->roles; role++) {
        const int *r = x->all + ((size_t)role * (size_t)x->iters + (size_t)it) * MAX_REGS;

        for (int k = 0; k < x->s->nregs[role]; k++) {
            if (r[k] < 0 || r[k] > MAX_VALUE)
                return -1;
            key = key * (MAX_VALUE + 1) + r[k];
        }
    }
    return key;
}

/* Decode a key back into registers per role. */
static void decode_key(const struct run *x, int key, regs_t r[])
{
    memset(r, 0, MAX_ROLES * sizeof(regs_t));
    for (int role = x->s->roles - 1; role >= 0; role--)
        for (int k = x->s->nregs[role] - 1; k >= 0; k--) {
            r[role][k] = key % (MAX_VALUE + 1);
            key /= MAX_VALUE + 1;
        }
}

/* Print one histogram line: "  P1: r0=1 r1=0   count" and a mark on the forbidden one. */
static void print_outcome(const struct run *x, int key, long count, int forbidden)
{
    regs_t r[MAX_ROLES];

    decode_key(x, key, r);
    printf("  ");
    for (int role = 0; role < x->s->roles; role++) {
        if (x->s->nregs[role] == 0)
            continue;
        printf("P%d:", role);
        for (int k = 0; k < x->s->nregs[role]; k++)
            printf(" r%d=%d", k, r[role][k]);
        printf("  ");
    }
    printf("%8ld%s\n", count, forbidden ? "   <- forbidden outcome" : "");
}

/* Rank 0: histogram, verdict line; returns the exit status. */
static int report(const struct run *x, unsigned model)
{
    static long hist[NKEYS];
    long        invalid = 0, forbidden = 0;
    int         checked = (x->s->forbidden_in & model) != 0;

    for (long it = 0; it < x->iters; it++) {
        int key = outcome_key(x, it);

        if (key < 0) {
            invalid++;
            continue;
        }
        hist[key]++;
    }
    printf("litmus %s: %ld iterations, %d ranks on %d nodes, consistency %s\n", x->s->name,
           x->iters, x->nranks, x->nnodes, dsm_consistency());
    for (int key = 0; key < NKEYS; key++) {
        regs_t r[MAX_ROLES];
        int    bad;

        if (hist[key] == 0)
            continue;
        decode_key(x, key, r);
        bad = x->s->is_forbidden(r);
        forbidden += bad ? hist[key] : 0;
        print_outcome(x, key, hist[key], bad);
    }
    printf("litmus %s: outcome %s seen %ld times (%s under %s)%s\n", x->s->name,
           x->s->forbidden, forbidden, checked ? "forbidden" : "allowed", dsm_consistency(),
           invalid ? "; INVALID register values seen" : "");
    if (invalid)
        printf("litmus %s: %ld iterations read values no store wrote (or a lock failed)\n",
               x->s->name, invalid);
    if ((checked && forbidden) || invalid) {
        printf("litmus %s: FAILED\n", x->s->name);
        return 1;
    }
    printf("litmus %s: OK\n", x->s->name);
    return 0;
}

/* Gather registers, barrier, and let rank 0 judge; returns this rank's exit status. */
static int gather_and_report(struct run *x, unsigned model)
{
    int rc;

    memcpy(x->all + (size_t)x->rank * (size_t)x->iters * MAX_REGS, x->mine,
           (size_t)x->iters * sizeof(regs_t));
    rc = dsm_barrier();
    if (rc != 0) {
        fprintf(stderr, "litmus: rank %d: dsm_barrier: %s\n", x->rank, dsm_strerror(rc));
        return 1;
    }
    return x->rank == 0 ? report(x, model) : 0;
}

/* Everything between dsm_init and dsm_finalize; returns the exit status. */
static int litmus_main(int argc, char **argv)
{
    struct run x = {.rank = dsm_rank(), .nranks = dsm_nranks(), .page = dsm_page_size()};
    unsigned   model = lt_model();
    int        rc, status = 1;

    if (parse_args(argc, argv, &x) != 0)
        return 2;
    if (model == 0) {
        fprintf(stderr, "litmus: unknown consistency model '%s'\n", dsm_consistency());
        return 2;
    }
    if (x.nranks < x.s->roles) {
        fprintf(stderr, "litmus %s: needs %d ranks, the job has %d\n", x.s->name, x.s->roles,
                x.nranks);
        return 2;
    }
    x.nnodes = lt_nnodes();
    if (x.nnodes < 0 || setup(&x) != 0)
        goto out;
    rc = run_iterations(&x);
    if (rc != 0) {
        fprintf(stderr, "litmus: rank %d: dsm_barrier: %s\n", x.rank, dsm_strerror(rc));
        goto out;
    }
    status = gather_and_report(&x, model);
out:
    free(x.mine);
    return status;
}

int main(int argc, char **argv)
{
    int rc = dsm_init(&argc, &argv), status;

    if (rc != 0) {
        fprintf(stderr, "litmus: dsm_init: %s\n", dsm_strerror(rc));
        return 1;
    }
    status = litmus_main(argc, argv);
    rc = dsm_finalize();
    if (rc != 0) {
        fprintf(stderr, "litmus: dsm_finalize: %s\n", dsm_strerror(rc));
        status = 1;
    }
    return status;
}

/*
 * cg.c - NAS Parallel Benchmarks kernel CG (conjugate gradient), written from the NPB
 * specification: the inverse power method estimates the smallest eigenvalue of a random
 * sparse symmetric positive definite matrix; each of its NITER steps solves A z = x with
 * 25 conjugate gradient iterations and reports zeta = SHIFT + 1 / (x . z). Verified
 * against the specification's published zeta to a relative 1e-10.
 *
 * The matrix (the specification's generator): with the NPB random stream (seed 314159265,
 * multiplier 5^13; one number drawn first and dropped), row i contributes an outer product
 * size_i * v_i v_i^T, where v_i has NONZER random positions (drawn as a value and a
 * position in 1..nn1, nn1 the power of two >= n, positions above n or repeated drawn
 * again) plus position i with value 0.5, and size_i = RCOND^(i/n); the diagonal (i, i)
 * also gets RCOND - SHIFT. Duplicates add up in generation order.
 *
 * Sharing pattern: the rows of A are split in contiguous blocks; a member builds its own
 * rows privately (every member draws the whole stream: it is the problem's definition).
 * The vectors x, z, p, q, r are shared; a member writes only its block of each but reads
 * all of p (and z) for its matrix-vector product: after every update of p a barrier, then
 * every member fetches every other member's block. Dot products go through per-member
 * slots and a barrier, added up in member order by everyone.
 *
 * usage: cg [-c S|W|A] [--native T]        (default class S: n = 1400)
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "npb_rand.h"
#include "team.h"

#define CG_A 1220703125ull   /* 5^13 */
#define CG_SEED 314159265ull
#define RCOND 0.1
#define CGITMAX 25
#define SLOT 8               /* doubles per member in a reduction slot (one cache line) */

struct cg_class {
    char name;
    int na, nonzer, niter;
    double shift, zeta;      /* zeta: the specification's verification value */
};

static const struct cg_class classes[] = {
    { 'S', 1400, 7, 15, 10.0, 8.5971775078648 },
    { 'W', 7000, 8, 15, 12.0, 10.362595087124 },
    { 'A', 14000, 11, 15, 20.0, 17.130235054029 },
};

/* One contribution to A(row, col), in generation order `seq`. */
struct triple {
    int row, col;
    long seq;
    double val;
};

/* This member's rows of A in compressed sparse rows (row indexes relative to lo). */
struct csr {
    int lo, hi;
    int *rowstr, *colidx;
    double *a;
};

struct cg_state {
    const struct cg_class *c;
    struct team *t;
    struct csr m;
    double *x, *z, *p, *q, *r;  /* shared, n each */
    double *red[2];             /* reduction slots, used in turn */
    int turn;
};

static int cmp_triple(const void *a, const void *b)
{
    const struct triple *x = a, *y = b;

    if (x->row != y->row)
        return x->row < y->row ? -1 : 1;
    if (x->col != y->col)
        return x->col < y->col ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* The sparse vector of outer row i (0-based positions, values): NONZER random entries,
 * then position i set to 0.5. Returns the count. */
static int outer_vector(const struct cg_class *c, uint64_t *seed, int nn1, int i, int *pos, double *val)
{
    int nzv = 0, k;

    while (nzv < c->nonzer) {
        double v = npb_randlc(seed, CG_A), loc = npb_randlc(seed, CG_A);
        int at = (int)(nn1 * loc) + 1, dup = 0;

        if (at > c->na)
            continue;
        for (k = 0; k < nzv; k++)
            dup |= pos[k] == at - 1;
        if (dup)
            continue;
        val[nzv] = v;
        pos[nzv++] = at - 1;
    }
    for (k = 0; k < nzv && pos[k] != i; k++)
        ;
    if (k < nzv) {
        val[k] = 0.5;
    } else {
        val[nzv] = 0.5;
        pos[nzv++] = i;
    }
    return nzv;
}

/* Build rows [lo, hi) of A. 0, or -1 when out of memory. */
static int make_rows(const struct cg_class *c, struct csr *m)
{
    int n = c->na, nn1 = 1, cap = (c->nonzer + 1) * (c->nonzer + 1);
    uint64_t seed = CG_SEED;
    double size = 1.0, ratio = pow(RCOND, 1.0 / (double)n), val[64];
    int pos[64];
    struct triple *tr = NULL;
    long ntr = 0, captr = 0, seq = 0;

    do
        nn1 *= 2;
    while (nn1 < n);
    (void)npb_randlc(&seed, CG_A); /* the specification draws one number first */
    for (int i = 0; i < n; i++) {
        int nz = outer_vector(c, &seed, nn1, i, pos, val);

        if (ntr + cap > captr) {
            struct triple *g = realloc(tr, (size_t)(captr = 2 * captr + cap) * sizeof(*tr));

            if (g == NULL) {
                free(tr);
                return -1;
            }
            tr = g;
        }
        for (int a = 0; a < nz; a++) {
            double scale = size * val[a];

            if (pos[a] < m->lo || pos[a] >= m->hi)
                continue;
            for (int b = 0; b < nz; b++) {
                double va = val[b] * scale;

                if (pos[b] == pos[a] && pos[a] == i)
                    va = va + RCOND - c->shift;
                tr[ntr++] = (struct triple){ .row = pos[a], .col = pos[b], .seq = seq++, .val = va };
            }
        }
        size *= ratio;
    }
    qsort(tr, (size_t)ntr, sizeof(*tr), cmp_triple);
    m->rowstr = calloc((size_t)(m->hi - m->lo + 1), sizeof(int));
    m->colidx = malloc((size_t)(ntr + 1) * sizeof(int));
    m->a = malloc((size_t)(ntr + 1) * sizeof(double));
    if (m->rowstr == NULL || m->colidx == NULL || m->a == NULL) {
        free(tr);
        return -1;
    }
    long k = -1;
    for (long e = 0; e < ntr; e++) {
        if (e == 0 || tr[e].row != tr[e - 1].row || tr[e].col != tr[e - 1].col) {
            k++;
            m->colidx[k] = tr[e].col;
            m->a[k] = 0.0;
            m->rowstr[tr[e].row - m->lo + 1] = (int)k + 1;
        }
        m->a[k] = m->a[k] + tr[e].val; /* duplicates add up in generation order */
    }
    for (int j = 1; j <= m->hi - m->lo; j++) /* rows without entries (none in practice) */
        if (m->rowstr[j] < m->rowstr[j - 1])
            m->rowstr[j] = m->rowstr[j - 1];
    free(tr);
    return 0;
}

/* Reduce: every member contributes k values; all get the member-order sums in out[].
 * 0, or -1 when the barrier failed. */
static int reduce(struct cg_state *s, const double *mine, int k, double *out)
{
    double *slots = s->red[s->turn];

    s->turn ^= 1; /* the next reduction writes the other slots while these are read */
    memcpy(slots + (size_t)s->t->id * SLOT, mine, (size_t)k * sizeof(double));
    if (team_barrier(s->t) != 0)
        return -1;
    for (int v = 0; v < k; v++) {
        out[v] = 0.0;
        for (int mm = 0; mm < s->t->n; mm++)
            out[v] += slots[(size_t)mm * SLOT + (size_t)v];
    }
    return 0;
}

/* y[own rows] = A v. */
static void matvec(const struct csr *m, const double *v, double *y)
{
    for (int j = m->lo; j < m->hi; j++) {
        double sum = 0.0;

        for (int k = m->rowstr[j - m->lo]; k < m->rowstr[j - m->lo + 1]; k++)
            sum = sum + m->a[k] * v[m->colidx[k]];
        y[j] = sum;
    }
}

/* 25 conjugate gradient iterations for A z = x; *rnorm = ||x - A z||. 0 or -1. */
static int conj_grad(struct cg_state *s, double *rnorm)
{
    int lo = s->m.lo, hi = s->m.hi;
    double rho, rho0, d, part, sum;

    part = 0.0;
    for (int j = lo; j < hi; j++) {
        s->q[j] = s->z[j] = 0.0;
        s->r[j] = s->p[j] = s->x[j];
        part += s->r[j] * s->r[j];
    }
    if (reduce(s, &part, 1, &rho) != 0) /* its barrier also publishes p */
        return -1;
    for (int it = 1; it <= CGITMAX; it++) {
        rho0 = rho;
        matvec(&s->m, s->p, s->q);
        part = 0.0;
        for (int j = lo; j < hi; j++)
            part += s->p[j] * s->q[j];
        if (reduce(s, &part, 1, &d) != 0)
            return -1;
        double alpha = rho0 / d;
        part = 0.0;
        for (int j = lo; j < hi; j++) {
            s->z[j] = s->z[j] + alpha * s->p[j];
            s->r[j] = s->r[j] - alpha * s->q[j];
            part += s->r[j] * s->r[j];
        }
        if (reduce(s, &part, 1, &rho) != 0)
            return -1;
        double beta = rho / rho0;
        for (int j = lo; j < hi; j++)
            s->p[j] = s->r[j] + beta * s->p[j];
        if (team_barrier(s->t) != 0) /* every block of p before the next product */
            return -1;
    }
    matvec(&s->m, s->z, s->r);
    part = 0.0;
    for (int j = lo; j < hi; j++)
        part += (s->x[j] - s->r[j]) * (s->x[j] - s->r[j]);
    if (reduce(s, &part, 1, &sum) != 0)
        return -1;
    *rnorm = sqrt(sum);
    return 0;
}

static int cg_body(struct team *t, void *arg)
{
    const struct cg_class *c = arg;
    int n = c->na;
    struct cg_state s = { .c = c, .t = t, .m = { .lo = (int)((long)n * t->id / t->n),
                                                 .hi = (int)((long)n * (t->id + 1) / t->n) } };
    double zeta = 0.0, rnorm = 0.0, t0, secs, part[2], tot[2];
    int *verdict;

    s.x = team_alloc(t, (size_t)n * sizeof(double));
    s.z = team_alloc(t, (size_t)n * sizeof(double));
    s.p = team_alloc(t, (size_t)n * sizeof(double));
    s.q = team_alloc(t, (size_t)n * sizeof(double));
    s.r = team_alloc(t, (size_t)n * sizeof(double));
    s.red[0] = team_alloc(t, (size_t)t->n * SLOT * sizeof(double));
    s.red[1] = team_alloc(t, (size_t)t->n * SLOT * sizeof(double));
    verdict = team_alloc(t, sizeof(int));
    if (!s.x || !s.z || !s.p || !s.q || !s.r || !s.red[0] || !s.red[1] || !verdict || make_rows(c, &s.m) != 0) {
        fprintf(stderr, "cg: member %d: out of memory\n", t->id);
        return 1;
    }
    for (int j = s.m.lo; j < s.m.hi; j++)
        s.x[j] = 1.0;
    if (team_barrier(t) != 0)
        return 1;
    t0 = team_now();
    for (int it = 1; it <= c->niter; it++) {
        if (conj_grad(&s, &rnorm) != 0)
            return 1;
        part[0] = part[1] = 0.0;
        for (int j = s.m.lo; j < s.m.hi; j++) {
            part[0] += s.x[j] * s.z[j];
            part[1] += s.z[j] * s.z[j];
        }
        if (reduce(&s, part, 2, tot) != 0)
            return 1;
        zeta = c->shift + 1.0 / tot[0];
        for (int j = s.m.lo; j < s.m.hi; j++)
            s.x[j] = s.z[j] / sqrt(tot[1]);
        if (team_barrier(t) != 0)
            return 1;
    }
    secs = team_now() - t0;
    if (t->id == 0) {
        double err = fabs(zeta - c->zeta) / c->zeta;

        *verdict = !(err <= 1e-10);
        printf("cg: class %c (n %d), %d members (%s): zeta %.13f, ||r|| %.14e; wall %.6f s\n", c->name, n, t->n,
               team_model(t), zeta, rnorm, secs);
        printf("cg: relative error %.3e (at most 1e-10)\ncg: VERIFICATION %s\n", err,
               *verdict ? "FAILED" : "SUCCESSFUL");
        fflush(stdout);
    }
    free(s.m.rowstr);
    free(s.m.colidx);
    free(s.m.a);
    return team_verdict(t, verdict);
}

int main(int argc, char **argv)
{
    long native = team_native_arg(&argc, argv);
    int k = team_class_arg(argc, argv, "SWA");

    if (native < 0 || k < 0) {
        fprintf(stderr, "usage: cg [-c S|W|A] [--native THREADS]\n");
        return 2;
    }
    return team_main(&argc, &argv, "cg", native, cg_body, (void *)&classes[k]);
}

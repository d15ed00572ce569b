/*
 * lu.c - blocked LU factorisation without pivoting (SPLASH-2 LU, contiguous blocks),
 * verified by the residual max|A - L U| / (n max|A|) against a private copy of A.
 *
 * The n x n matrix is stored as (n/B)^2 blocks of B x B doubles, each contiguous, and the
 * blocks are scattered over a 2-D grid of members (block (I, J) belongs to member
 * (I mod PR) * PC + (J mod PC)), so every member owns blocks throughout the matrix. Step
 * k: the owner of the diagonal block factors it; barrier; the owners of the blocks right
 * of and below it solve them against it; barrier; every owner of a trailing block
 * subtracts the product of its row's and column's perimeter blocks; barrier. The matrix is
 * made diagonally dominant, so no pivoting is needed.
 *
 * Sharing pattern: producer-consumer by block. Each perimeter block is written by one
 * member and read by the row or column of members that need it in that step; blocks are
 * never written by two members in one phase.
 *
 * usage: lu [-n N] [-b B] [--native T]      (defaults: N = 512, B = 16; B divides N)
 */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "team.h"

struct lu_run {
    long n, b;
};

/* Element (i, j) of the input: pseudo-random in [0, 1), plus n on the diagonal. */
static double a_init(long n, long i, long j)
{
    uint64_t z = (uint64_t)i * 0x9e3779b97f4a7c15ull ^ ((uint64_t)j + 0x632be59bd9b4e019ull) * 0xbf58476d1ce4e5b9ull;

    z = (z ^ (z >> 31)) * 0x94d049bb133111ebull;
    return (double)(z >> 11) * 0x1.0p-53 + (i == j ? (double)n : 0.0);
}

/* Block (I, J) of the matrix (nb blocks per side, b x b each, row-major inside). */
static double *block(double *m, long nb, long b, long I, long J)
{
    return m + (size_t)(I * nb + J) * (size_t)(b * b);
}

/* In place: A = L U, L unit lower triangular. */
static void factor_diag(double *a, long b)
{
    for (long k = 0; k < b; k++)
        for (long i = k + 1; i < b; i++) {
            a[i * b + k] /= a[k * b + k];
            for (long j = k + 1; j < b; j++)
                a[i * b + j] -= a[i * b + k] * a[k * b + j];
        }
}

/* Block right of the diagonal: A = L^-1 A (L the diagonal block's unit lower part). */
static void solve_row(const double *d, double *a, long b)
{
    for (long k = 0; k < b; k++)
        for (long i = k + 1; i < b; i++)
            for (long j = 0; j < b; j++)
                a[i * b + j] -= d[i * b + k] * a[k * b + j];
}

/* Block below the diagonal: A = A U^-1 (U the diagonal block's upper part). */
static void solve_col(const double *d, double *a, long b)
{
    for (long i = 0; i < b; i++)
        for (long k = 0; k < b; k++) {
            a[i * b + k] /= d[k * b + k];
            for (long j = k + 1; j < b; j++)
                a[i * b + j] -= a[i * b + k] * d[k * b + j];
        }
}

/* Trailing block: A -= L U. */
static void update(const double *l, const double *u, double *a, long b)
{
    for (long i = 0; i < b; i++)
        for (long k = 0; k < b; k++) {
            double f = l[i * b + k];

            for (long j = 0; j < b; j++)
                a[i * b + j] -= f * u[k * b + j];
        }
}

/* The residual max|A - L U| / (n max|A|) of the factored blocked matrix f. */
static double residual(double *f, long n, long b)
{
    long nb = n / b;
    double worst = 0.0, amax = 0.0;

    for (long i = 0; i < n; i++)
        for (long j = 0; j < n; j++) {
            double s = 0.0;

            for (long k = 0; k <= (i < j ? i : j); k++) {
                double l = k == i ? 1.0 : block(f, nb, b, i / b, k / b)[(i % b) * b + k % b];
                double u = block(f, nb, b, k / b, j / b)[(k % b) * b + j % b];

                s += l * u;
            }
            worst = fmax(worst, fabs(a_init(n, i, j) - s));
            amax = fmax(amax, fabs(a_init(n, i, j)));
        }
    return worst / ((double)n * amax);
}

static int lu_body(struct team *t, void *arg)
{
    const struct lu_run *run = arg;
    long n = run->n, b = run->b, nb = n / b;
    double *m = team_alloc(t, (size_t)n * (size_t)n * sizeof(double)), t0, secs;
    int *verdict = team_alloc(t, sizeof(int)), pr = 1, pc;

    if (m == NULL || verdict == NULL) {
        fprintf(stderr, "lu: member %d: out of memory\n", t->id);
        return 1;
    }
    while ((pr + 1) * (pr + 1) <= t->n)
        pr++;
    while (t->n % pr != 0) /* the grid is pr x pc = every member */
        pr--;
    pc = t->n / pr;
#define OWNER(I, J) ((int)(((I) % pr) * pc + ((J) % pc)))
    for (long I = 0; I < nb; I++)
        for (long J = 0; J < nb; J++)
            if (OWNER(I, J) == t->id)
                for (long i = 0; i < b; i++)
                    for (long j = 0; j < b; j++)
                        block(m, nb, b, I, J)[i * b + j] = a_init(n, I * b + i, J * b + j);
    if (team_barrier(t) != 0)
        return 1;
    t0 = team_now();
    for (long k = 0; k < nb; k++) {
        double *d = block(m, nb, b, k, k);

        if (OWNER(k, k) == t->id)
            factor_diag(d, b);
        if (team_barrier(t) != 0)
            return 1;
        for (long j = k + 1; j < nb; j++) {
            if (OWNER(k, j) == t->id)
                solve_row(d, block(m, nb, b, k, j), b);
            if (OWNER(j, k) == t->id)
                solve_col(d, block(m, nb, b, j, k), b);
        }
        if (team_barrier(t) != 0)
            return 1;
        for (long I = k + 1; I < nb; I++)
            for (long J = k + 1; J < nb; J++)
                if (OWNER(I, J) == t->id)
                    update(block(m, nb, b, I, k), block(m, nb, b, k, J), block(m, nb, b, I, J), b);
        if (team_barrier(t) != 0)
            return 1;
    }
    secs = team_now() - t0;
    if (t->id == 0) {
        double res = residual(m, n, b);

        *verdict = !(res < 1e-12);
        printf("lu: n %ld, blocks %ld x %ld on a %d x %d grid, %d members (%s): residual %.3e (below 1e-12): %s; "
               "wall %.6f s\n", n, b, b, pr, pc, t->n, team_model(t), res, *verdict ? "FAILED" : "verified OK", secs);
        fflush(stdout);
    }
    return team_verdict(t, verdict);
}

int main(int argc, char **argv)
{
    long native = team_native_arg(&argc, argv);
    struct lu_run run = { 512, 16 };
    int c;

    while (native >= 0 && (c = getopt(argc, argv, "n:b:")) != -1) {
        if (c == 'n' && (run.n = atol(optarg)) >= 1 && run.n <= 8192)
            continue;
        if (c == 'b' && (run.b = atol(optarg)) >= 1 && run.b <= 256)
            continue;
        native = -1;
    }
    if (native < 0 || optind != argc || run.n % run.b != 0) {
        fprintf(stderr, "usage: lu [-n N (1..8192)] [-b B (1..256, divides N)] [--native THREADS]\n");
        return 2;
    }
    return team_main(&argc, &argv, "lu", native, lu_body, &run);
}

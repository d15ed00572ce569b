/*
 * ep.c - NAS Parallel Benchmarks kernel EP ("embarrassingly parallel"), written from the
 * NPB specification: 2^(M+1) uniform numbers from the NPB generator (seed 271828183,
 * multiplier 5^13) make 2^M pairs; the pairs inside the unit circle become Gaussian
 * deviates by the Marsaglia polar method; the program sums them (sx, sy) and counts them
 * by square annulus (q[0..9]). Verified against the specification's published sums to a
 * relative 1e-8.
 *
 * Sharing pattern: none while computing. The 2^(M-16) batches of 2^16 pairs are split in
 * contiguous ranges; each member jumps the generator to its first batch, computes alone,
 * and writes its partial sums to its own slot of one shared array; after a barrier member
 * 0 adds them up. A DSM run moves one page per member.
 *
 * usage: ep [-c S|W|A] [--native T]        (default class S: M = 24)
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "npb_rand.h"
#include "team.h"

#define MK 16                 /* log2 of the pairs per batch */
#define NK (1 << MK)
#define NQ 10
#define EP_A 1220703125ull    /* 5^13 */
#define EP_SEED 271828183ull

struct ep_class {
    char name;
    int m;
    double sx, sy;            /* the specification's verification values */
};

static const struct ep_class classes[] = {
    { 'S', 24, -3.247834652034740e+3, -6.958407078382297e+3 },
    { 'W', 25, -2.863319731645753e+3, -6.320053679109499e+3 },
    { 'A', 28, -4.295875165629892e+3, -1.580732573678431e+4 },
};

struct ep_part {
    double sx, sy, q[NQ];
    double pad[4];            /* one 128-byte slot per member */
};

struct ep_run {
    const struct ep_class *cls;
};

/* Batch k (0-based): its 2^(MK+1) numbers, the pairs, the sums into *p. */
static void ep_batch(uint64_t k, struct ep_part *p, double *x)
{
    uint64_t seed = npb_mul46(npb_pow46(EP_A, (uint64_t)2 * NK * k), EP_SEED);

    for (int i = 0; i < 2 * NK; i++)
        x[i] = npb_randlc(&seed, EP_A);
    for (int i = 0; i < NK; i++) {
        double x1 = 2.0 * x[2 * i] - 1.0, x2 = 2.0 * x[2 * i + 1] - 1.0, t1 = x1 * x1 + x2 * x2;

        if (t1 <= 1.0) {
            double t2 = sqrt(-2.0 * log(t1) / t1), t3 = x1 * t2, t4 = x2 * t2;
            int l = (int)fmax(fabs(t3), fabs(t4));

            p->q[l] += 1.0;
            p->sx += t3;
            p->sy += t4;
        }
    }
}

static int ep_body(struct team *t, void *arg)
{
    const struct ep_class *c = ((struct ep_run *)arg)->cls;
    uint64_t nn = 1ull << (c->m - MK), lo = nn * (uint64_t)t->id / (uint64_t)t->n,
             hi = nn * (uint64_t)(t->id + 1) / (uint64_t)t->n;
    struct ep_part *parts = team_alloc(t, (size_t)t->n * sizeof(struct ep_part)), mine = { 0 };
    int *verdict = team_alloc(t, sizeof(int));
    double *x = malloc(2 * NK * sizeof(double)), t0, secs;
    int rc;

    if (parts == NULL || verdict == NULL || x == NULL) {
        fprintf(stderr, "ep: member %d: out of memory\n", t->id);
        return 1;
    }
    if ((rc = team_barrier(t)) != 0)
        return 1;
    t0 = team_now();
    for (uint64_t k = lo; k < hi; k++)
        ep_batch(k, &mine, x);
    parts[t->id] = mine;
    free(x);
    if ((rc = team_barrier(t)) != 0)
        return 1;
    secs = team_now() - t0;
    if (t->id == 0) {
        struct ep_part sum = { 0 };
        double gc = 0.0, ex, ey;

        for (int m = 0; m < t->n; m++) {
            sum.sx += parts[m].sx;
            sum.sy += parts[m].sy;
            for (int q = 0; q < NQ; q++)
                sum.q[q] += parts[m].q[q];
        }
        for (int q = 0; q < NQ; q++)
            gc += sum.q[q];
        ex = fabs((sum.sx - c->sx) / c->sx);
        ey = fabs((sum.sy - c->sy) / c->sy);
        *verdict = !(ex <= 1e-8 && ey <= 1e-8);
        printf("ep: class %c (M %d), %d members (%s): sx %.15e sy %.15e, %.0f pairs accepted\n", c->name, c->m,
               t->n, team_model(t), sum.sx, sum.sy, gc);
        printf("ep: relative errors %.3e %.3e (at most 1e-8); wall %.6f s\n", ex, ey, secs);
        printf("ep: VERIFICATION %s\n", *verdict ? "FAILED" : "SUCCESSFUL");
        fflush(stdout);
    }
    return team_verdict(t, verdict);
}

int main(int argc, char **argv)
{
    long native = team_native_arg(&argc, argv);
    int k = team_class_arg(argc, argv, "SWA");
    struct ep_run run;

    if (native < 0 || k < 0) {
        fprintf(stderr, "usage: ep [-c S|W|A] [--native THREADS]\n");
        return 2;
    }
    run.cls = &classes[k];
    return team_main(&argc, &argv, "ep", native, ep_body, &run);
}

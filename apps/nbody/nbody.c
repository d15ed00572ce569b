/*
 * nbody.c - O(n^2) gravitational N-body steps (leapfrog, softened), verified bit for bit
 * against a private sequential run of the same steps.
 *
 * Each step has two phases. Forces: every member computes the acceleration of its own
 * bodies from the positions of all bodies (per-body forces: each sum in body order, so the
 * result does not depend on the number of members). Update: after a barrier, every member
 * moves its own bodies; a barrier ends the step.
 *
 * Sharing pattern: read-mostly broadcast. Every member reads every position each step and
 * writes only its own block of positions and velocities: a DSM run refetches the other
 * blocks once per step (invalidated or noticed at the barrier).
 *
 * usage: nbody [-n BODIES] [-i STEPS] [--native T]      (defaults: 1024 bodies, 10 steps)
 */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "team.h"

#define DT 0.01
#define SOFT2 1e-4   /* softening length squared */

struct nbody_run {
    long n, steps;
};

/* Bodies in structure-of-arrays form: x, y, z, vx, vy, vz, m, each n doubles. */
struct bodies {
    double *x, *y, *z, *vx, *vy, *vz, *m;
};

/* Deterministic initial state of body i: a cube of side 1, small velocities. */
static void body_init(struct bodies *b, long i)
{
    uint64_t s = 0x2545f4914f6cdd1dull * (uint64_t)(i + 1);
    double r[7];

    for (int k = 0; k < 7; k++) {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        r[k] = (double)((s * 0x2545f4914f6cdd1dull) >> 11) * 0x1.0p-53;
    }
    b->x[i] = r[0];
    b->y[i] = r[1];
    b->z[i] = r[2];
    b->vx[i] = 0.01 * (r[3] - 0.5);
    b->vy[i] = 0.01 * (r[4] - 0.5);
    b->vz[i] = 0.01 * (r[5] - 0.5);
    b->m[i] = 0.5 + r[6];
}

/* Acceleration of body i from all n bodies, summed in body order. */
static void accel(const struct bodies *b, long n, long i, double *a)
{
    double ax = 0.0, ay = 0.0, az = 0.0;

    for (long j = 0; j < n; j++) {
        double dx = b->x[j] - b->x[i], dy = b->y[j] - b->y[i], dz = b->z[j] - b->z[i];
        double d2 = dx * dx + dy * dy + dz * dz + SOFT2, inv = b->m[j] / (d2 * sqrt(d2));

        ax += dx * inv;
        ay += dy * inv;
        az += dz * inv;
    }
    a[0] = ax;
    a[1] = ay;
    a[2] = az;
}

/* Move bodies [lo, hi) with their accelerations acc (3 per body, from lo). */
static void move(struct bodies *b, long lo, long hi, const double *acc)
{
    for (long i = lo; i < hi; i++) {
        const double *a = acc + 3 * (i - lo);

        b->vx[i] += DT * a[0];
        b->vy[i] += DT * a[1];
        b->vz[i] += DT * a[2];
        b->x[i] += DT * b->vx[i];
        b->y[i] += DT * b->vy[i];
        b->z[i] += DT * b->vz[i];
    }
}

static int alloc_bodies(struct bodies *b, long n, void *(*alloc)(void *ctx, size_t bytes), void *ctx)
{
    double **f[] = { &b->x, &b->y, &b->z, &b->vx, &b->vy, &b->vz, &b->m };

    for (size_t k = 0; k < sizeof(f) / sizeof(f[0]); k++)
        if ((*f[k] = alloc(ctx, (size_t)n * sizeof(double))) == NULL)
            return -1;
    return 0;
}

static void *team_alloc_cb(void *ctx, size_t bytes)
{
    return team_alloc(ctx, bytes);
}

static void *calloc_cb(void *ctx, size_t bytes)
{
    (void)ctx;
    return calloc(1, bytes);
}

/* Rank 0's check: the same steps privately; 0 when every coordinate is bitwise equal. */
static int check(const struct bodies *got, const struct nbody_run *run)
{
    struct bodies w;
    double *acc = malloc((size_t)run->n * 3 * sizeof(double));
    int bad = alloc_bodies(&w, run->n, calloc_cb, NULL) != 0 || acc == NULL;

    for (long i = 0; !bad && i < run->n; i++)
        body_init(&w, i);
    for (long s = 0; !bad && s < run->steps; s++) {
        for (long i = 0; i < run->n; i++)
            accel(&w, run->n, i, acc + 3 * i);
        move(&w, 0, run->n, acc);
    }
    for (long i = 0; !bad && i < run->n; i++) {
        if (memcmp(&got->x[i], &w.x[i], 8) || memcmp(&got->y[i], &w.y[i], 8) || memcmp(&got->z[i], &w.z[i], 8) ||
            memcmp(&got->vx[i], &w.vx[i], 8)) {
            fprintf(stderr, "nbody: body %ld is at (%.17g, %.17g, %.17g), expected (%.17g, %.17g, %.17g)\n", i,
                    got->x[i], got->y[i], got->z[i], w.x[i], w.y[i], w.z[i]);
            bad = 1;
        }
    }
    free(w.x), free(w.y), free(w.z), free(w.vx), free(w.vy), free(w.vz), free(w.m), free(acc);
    return bad;
}

static int nbody_body(struct team *t, void *arg)
{
    const struct nbody_run *run = arg;
    long n = run->n, lo = n * t->id / t->n, hi = n * (t->id + 1) / t->n;
    struct bodies b;
    double *acc = malloc((size_t)(hi - lo + 1) * 3 * sizeof(double)), t0, secs;
    int *verdict;

    if (alloc_bodies(&b, n, team_alloc_cb, t) != 0 || (verdict = team_alloc(t, sizeof(int))) == NULL || !acc) {
        fprintf(stderr, "nbody: member %d: out of memory\n", t->id);
        return 1;
    }
    for (long i = lo; i < hi; i++)
        body_init(&b, i);
    if (team_barrier(t) != 0)
        return 1;
    t0 = team_now();
    for (long s = 0; s < run->steps; s++) {
        for (long i = lo; i < hi; i++)
            accel(&b, n, i, acc + 3 * (i - lo));
        if (team_barrier(t) != 0) /* nobody moves a body another member still reads */
            return 1;
        move(&b, lo, hi, acc);
        if (team_barrier(t) != 0)
            return 1;
    }
    secs = team_now() - t0;
    free(acc);
    if (t->id == 0) {
        *verdict = check(&b, run);
        printf("nbody: %ld bodies, %ld steps, %d members (%s): %s; wall %.6f s\n", n, run->steps, t->n, team_model(t),
               *verdict ? "FAILED" : "verified OK (bitwise)", secs);
        fflush(stdout);
    }
    return team_verdict(t, verdict);
}

int main(int argc, char **argv)
{
    long native = team_native_arg(&argc, argv);
    struct nbody_run run = { 1024, 10 };
    int c;

    while (native >= 0 && (c = getopt(argc, argv, "n:i:")) != -1) {
        if (c == 'n' && (run.n = atol(optarg)) >= 2 && run.n <= (1L << 22))
            continue;
        if (c == 'i' && (run.steps = atol(optarg)) >= 0)
            continue;
        native = -1;
    }
    if (native < 0 || optind != argc) {
        fprintf(stderr, "usage: nbody [-n BODIES (2..2^22)] [-i STEPS] [--native THREADS]\n");
        return 2;
    }
    return team_main(&argc, &argv, "nbody", native, nbody_body, &run);
}

/*
 * tsp.c - travelling salesman by branch and bound with a shared work queue and a shared
 * best tour (TreadMarks-style), verified against an exhaustive search of the same cities.
 *
 * The tours start at city 0. The work items are every tour prefix of PREFIX cities,
 * listed in a shared queue; a member takes the next one under lock 1, then extends it by
 * depth-first search privately, pruning partial tours no shorter than the best known. The
 * best tour (length and cities) is shared and written under the same lock, so taking a
 * work item also brings the member the latest bound; a member that finds a shorter tour
 * takes the lock and keeps it only if it is still the shortest.
 *
 * Sharing pattern: migratory. The queue head and the best tour move from member to member
 * with the lock; everything else is private. Under the relaxed models each acquire carries
 * only what the last holders wrote.
 *
 * usage: tsp [-n CITIES] [-s SEED] [--native T]      (defaults: 11 cities, seed 1)
 */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "team.h"

#define MAXC 16
#define PREFIX 3          /* cities fixed by a work item (city 0 included) */
#define QUEUE_LOCK 1

struct tsp_run {
    int n;
    uint64_t seed;
    int dist[MAXC][MAXC];
};

/* Shared state, all under QUEUE_LOCK. */
struct tsp_shared {
    int64_t next;             /* next work item */
    int64_t nitems;
    int64_t best;             /* length of the best tour so far */
    int64_t tours;            /* complete tours compared (for the report) */
    int best_tour[MAXC];
    int verdict;
    int items[][PREFIX];      /* the work items */
};

/* Cities on a 1000 x 1000 grid from the seed; rounded Euclidean distances. */
static void make_cities(struct tsp_run *r)
{
    double x[MAXC], y[MAXC];
    uint64_t s = r->seed * 0x9e3779b97f4a7c15ull + 1;

    for (int i = 0; i < r->n; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = (double)(s >> 40) / (double)(1 << 24) * 1000.0;
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        y[i] = (double)(s >> 40) / (double)(1 << 24) * 1000.0;
    }
    for (int i = 0; i < r->n; i++)
        for (int j = 0; j < r->n; j++)
            r->dist[i][j] = (int)lround(hypot(x[i] - x[j], y[i] - y[j]));
}

struct search {
    const struct tsp_run *r;
    int tour[MAXC], used[MAXC];
    int64_t bound, found;     /* the best known; the best this member found (or INT64_MAX) */
    int found_tour[MAXC];
    int64_t tours;
};

/* Extend tour[0..depth) of length len, depth-first, pruning at the bound. */
static void dfs(struct search *s, int depth, int64_t len)
{
    const struct tsp_run *r = s->r;
    int last = s->tour[depth - 1];

    if (len >= s->bound)
        return;
    if (depth == r->n) {
        int64_t total = len + r->dist[last][0];

        s->tours++;
        if (total < s->bound) {
            s->bound = s->found = total;
            memcpy(s->found_tour, s->tour, sizeof(s->tour));
        }
        return;
    }
    for (int c = 1; c < r->n; c++) {
        if (s->used[c])
            continue;
        s->used[c] = 1;
        s->tour[depth] = c;
        dfs(s, depth + 1, len + r->dist[last][c]);
        s->used[c] = 0;
    }
}

/* The exhaustive answer: every tour from city 0, no pruning. */
static int64_t exhaustive(const struct tsp_run *r)
{
    int perm[MAXC], k;
    int64_t best = INT64_MAX;

    for (int i = 0; i < r->n - 1; i++)
        perm[i] = i + 1;
    do {
        int64_t len = r->dist[0][perm[0]] + r->dist[perm[r->n - 2]][0];

        for (int i = 0; i + 1 < r->n - 1; i++)
            len += r->dist[perm[i]][perm[i + 1]];
        if (len < best)
            best = len;
        /* next permutation in lexicographic order */
        for (k = r->n - 3; k >= 0 && perm[k] > perm[k + 1]; k--)
            ;
        if (k >= 0) {
            int l = r->n - 2, t;

            while (perm[l] < perm[k])
                l--;
            t = perm[k], perm[k] = perm[l], perm[l] = t;
            for (int a = k + 1, b = r->n - 2; a < b; a++, b--)
                t = perm[a], perm[a] = perm[b], perm[b] = t;
        }
    } while (k >= 0);
    return best;
}

/* Length of a tour (from and back to city 0), or -1 when it is not a permutation. */
static int64_t tour_length(const struct tsp_run *r, const int *tour)
{
    int seen[MAXC] = { 0 };
    int64_t len = 0;

    for (int i = 0; i < r->n; i++) {
        if (tour[i] < 0 || tour[i] >= r->n || seen[tour[i]]++)
            return -1;
        len += r->dist[tour[i]][tour[(i + 1) % r->n]];
    }
    return tour[0] == 0 ? len : -1;
}

static int tsp_body(struct team *t, void *arg)
{
    const struct tsp_run *r = arg;
    int64_t nitems = (int64_t)(r->n - 1) * (r->n - 2);
    struct tsp_shared *sh = team_alloc(t, sizeof(*sh) + (size_t)nitems * PREFIX * sizeof(int));
    struct search s = { .r = r, .found = INT64_MAX };
    double t0, secs;

    if (sh == NULL) {
        fprintf(stderr, "tsp: member %d: out of memory\n", t->id);
        return 1;
    }
    if (t->id == 0) {
        int64_t k = 0;

        for (int a = 1; a < r->n; a++)
            for (int b = 1; b < r->n; b++)
                if (a != b) {
                    sh->items[k][0] = 0;
                    sh->items[k][1] = a;
                    sh->items[k++][2] = b;
                }
        sh->nitems = k;
        sh->best = INT64_MAX;
    }
    if (team_barrier(t) != 0)
        return 1;
    t0 = team_now();
    for (;;) {
        int item[PREFIX];
        int64_t len = 0;

        if (team_lock(t, QUEUE_LOCK) != 0)
            return 1;
        if (s.found < INT64_MAX && s.found < sh->best) { /* publish what the last item found */
            sh->best = s.found;
            memcpy(sh->best_tour, s.found_tour, sizeof(s.found_tour));
        }
        s.found = INT64_MAX;
        s.bound = sh->best;
        int64_t k = sh->next < sh->nitems ? sh->next++ : -1;
        if (k >= 0)
            memcpy(item, sh->items[k], sizeof(item));
        if (team_unlock(t, QUEUE_LOCK) != 0)
            return 1;
        if (k < 0)
            break;
        memset(s.used, 0, sizeof(s.used));
        for (int d = 0; d < PREFIX; d++) {
            s.tour[d] = item[d];
            s.used[item[d]] = 1;
            if (d > 0)
                len += r->dist[item[d - 1]][item[d]];
        }
        dfs(&s, PREFIX, len);
    }
    if (team_lock(t, QUEUE_LOCK) != 0)
        return 1;
    sh->tours += s.tours;
    if (team_unlock(t, QUEUE_LOCK) != 0 || team_barrier(t) != 0)
        return 1;
    secs = team_now() - t0;
    if (t->id == 0) {
        int64_t want = exhaustive(r), got_len = tour_length(r, sh->best_tour);

        sh->verdict = sh->best != want || got_len != want;
        printf("tsp: %d cities (seed %llu), %d members (%s): best tour %lld (exhaustive search: %lld), %lld "
               "complete tours compared: %s; wall %.6f s\n", r->n, (unsigned long long)r->seed, t->n, team_model(t),
               (long long)sh->best, (long long)want, (long long)sh->tours,
               sh->verdict ? "FAILED" : "verified OK", secs);
        fflush(stdout);
    }
    return team_verdict(t, &sh->verdict);
}

int main(int argc, char **argv)
{
    long native = team_native_arg(&argc, argv);
    struct tsp_run run = { .n = 11, .seed = 1 };
    int c;

    while (native >= 0 && (c = getopt(argc, argv, "n:s:")) != -1) {
        if (c == 'n' && (run.n = atoi(optarg)) >= PREFIX + 1 && run.n <= 13)
            continue;
        if (c == 's') {
            run.seed = strtoull(optarg, NULL, 10);
            continue;
        }
        native = -1;
    }
    if (native < 0 || optind != argc) {
        fprintf(stderr, "usage: tsp [-n CITIES (%d..13)] [-s SEED] [--native THREADS]\n", PREFIX + 1);
        return 2;
    }
    make_cities(&run);
    return team_main(&argc, &argv, "tsp", native, tsp_body, &run);
}

/* ralloc.c - see ralloc.h. Run lists are small sorted arrays: allocations are rare and coarse. */
#include "ralloc.h"

#include <stdlib.h>
#include <string.h>

static dsm_status_t runs_insert(struct dsmd_run **v, size_t *nv, size_t *cap, size_t at,
                                struct dsmd_run run)
{
    if (*nv == *cap) {
        size_t ncap = *cap ? *cap * 2 : 16;
        struct dsmd_run *nvv = realloc(*v, ncap * sizeof(**v));

        if (nvv == NULL)
            return DSM_ENOMEM;
        *v = nvv;
        *cap = ncap;
    }
    memmove(&(*v)[at + 1], &(*v)[at], (*nv - at) * sizeof(**v));
    (*v)[at] = run;
    (*nv)++;
    return DSM_OK;
}

static void runs_remove(struct dsmd_run *v, size_t *nv, size_t at)
{
    memmove(&v[at], &v[at + 1], (*nv - at - 1) * sizeof(*v));
    (*nv)--;
}

/* Index of the first run with first >= page. */
static size_t runs_lower(const struct dsmd_run *v, size_t nv, uint64_t page)
{
    size_t lo = 0, hi = nv;

    while (lo < hi) {
        size_t mid = (lo + hi) / 2;

        if (v[mid].first < page)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

dsm_status_t dsmd_ralloc_init(struct dsmd_ralloc *r, uint64_t first, uint64_t n)
{
    memset(r, 0, sizeof(*r));
    if (n == 0)
        return DSM_OK;
    r->total_free = n;
    return runs_insert(&r->free, &r->nfree, &r->capfree, 0, (struct dsmd_run){ first, n });
}

void dsmd_ralloc_fini(struct dsmd_ralloc *r)
{
    free(r->free);
    free(r->used);
    memset(r, 0, sizeof(*r));
}

dsm_status_t dsmd_ralloc_alloc(struct dsmd_ralloc *r, uint64_t n, uint64_t *first)
{
    if (n == 0)
        return DSM_EINVAL;
    for (size_t i = 0; i < r->nfree; i++) {
        struct dsmd_run *f = &r->free[i];
        struct dsmd_run got = { f->first, n };
        size_t at;

        if (f->n < n)
            continue;
        at = runs_lower(r->used, r->nused, got.first);
        if (runs_insert(&r->used, &r->nused, &r->capused, at, got) != DSM_OK)
            return DSM_ENOMEM;
        f->first += n;
        f->n -= n;
        if (f->n == 0)
            runs_remove(r->free, &r->nfree, i);
        r->total_free -= n;
        *first = got.first;
        return DSM_OK;
    }
    return DSM_ENOSPACE;
}

dsm_status_t dsmd_ralloc_find(const struct dsmd_ralloc *r, uint64_t first, uint64_t *n)
{
    size_t at = runs_lower(r->used, r->nused, first);

    if (at == r->nused || r->used[at].first != first)
        return DSM_EINVAL;
    *n = r->used[at].n;
    return DSM_OK;
}

dsm_status_t dsmd_ralloc_holding(const struct dsmd_ralloc *r, uint64_t page, struct dsmd_run *run)
{
    size_t at = runs_lower(r->used, r->nused, page + 1); /* the first run starting after page */

    if (at == 0 || page - r->used[at - 1].first >= r->used[at - 1].n)
        return DSM_EINVAL;
    *run = r->used[at - 1];
    return DSM_OK;
}

dsm_status_t dsmd_ralloc_free(struct dsmd_ralloc *r, uint64_t first, uint64_t *n)
{
    size_t at = runs_lower(r->used, r->nused, first);
    struct dsmd_run run;
    size_t f;

    if (at == r->nused || r->used[at].first != first)
        return DSM_EINVAL;
    run = r->used[at];
    f = runs_lower(r->free, r->nfree, run.first);
    /* merge with the free neighbours where they touch */
    if (f > 0 && r->free[f - 1].first + r->free[f - 1].n == run.first) {
        r->free[f - 1].n += run.n;
        if (f < r->nfree && run.first + run.n == r->free[f].first) {
            r->free[f - 1].n += r->free[f].n;
            runs_remove(r->free, &r->nfree, f);
        }
    } else if (f < r->nfree && run.first + run.n == r->free[f].first) {
        r->free[f].first = run.first;
        r->free[f].n += run.n;
    } else if (runs_insert(&r->free, &r->nfree, &r->capfree, f, run) != DSM_OK) {
        return DSM_ENOMEM;
    }
    runs_remove(r->used, &r->nused, at);
    r->total_free += run.n;
    *n = run.n;
    return DSM_OK;
}

uint64_t dsmd_ralloc_largest(const struct dsmd_ralloc *r)
{
    uint64_t best = 0;

    for (size_t i = 0; i < r->nfree; i++)
        if (r->free[i].n > best)
            best = r->free[i].n;
    return best;
}

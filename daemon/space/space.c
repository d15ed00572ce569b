/* space.c - see space.h. */
#include "space.h"
#include "wire.h"

#include <stdlib.h>

dsm_status_t dsmd_space_init(struct dsmd_space *s, uint64_t npages, int nnodes, int arena_nodes)
{
    if (nnodes < 1 || npages < 2 * (uint64_t)nnodes || arena_nodes < 1 || arena_nodes > nnodes)
        return DSM_ECONFIG;
    s->npages = npages;
    s->nnodes = nnodes;
    s->arena_nodes = arena_nodes;
    s->coll_pages = npages / 2;
    s->arena_pages = (npages - s->coll_pages) / (uint64_t)arena_nodes;
    s->home = malloc(npages * sizeof(*s->home));
    if (s->home == NULL)
        return DSM_ENOMEM;
    for (uint64_t p = 0; p < npages; p++)
        s->home[p] = (int16_t)dsmd_space_arena_node(s, p);
    return DSM_OK;
}

void dsmd_space_fini(struct dsmd_space *s)
{
    free(s->home);
    s->home = NULL;
}

int dsmd_space_arena_node(const struct dsmd_space *s, uint64_t p)
{
    uint64_t n;

    if (p < s->coll_pages || p >= s->npages)
        return DSMD_NO_HOME;
    n = (p - s->coll_pages) / s->arena_pages;
    return n < (uint64_t)s->arena_nodes ? (int)n : DSMD_NO_HOME;
}

int dsmd_space_block_home(uint64_t i, uint64_t n, int nnodes)
{
    uint64_t block = (n + (uint64_t)nnodes - 1) / (uint64_t)nnodes;

    return (int)(i / block);
}

void dsmd_space_region_add(struct dsmd_space *s, uint64_t first, uint64_t n, int place, uint64_t arg)
{
    for (uint64_t i = 0; i < n; i++) {
        int home = place == DSMW_PLACE_CYCLIC ? (int)((i / arg) % (uint64_t)s->nnodes)
                   : place == DSMW_PLACE_NODE ? (int)arg
                   : place == DSMW_PLACE_FIRST_TOUCH ? DSMD_HOME_UNDECIDED : dsmd_space_block_home(i, n, s->nnodes);

        s->home[first + i] = (int16_t)home;
    }
}

void dsmd_space_region_free(struct dsmd_space *s, uint64_t first, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++)
        s->home[first + i] = (int16_t)dsmd_space_arena_node(s, first + i);
}

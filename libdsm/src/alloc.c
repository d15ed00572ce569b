/*
 * alloc.c - the public allocator: dsm_coalloc/dsm_coalloc_ex/dsm_cofree (collective) and
 * dsm_malloc/dsm_free (local, homed on the caller's node), served by the daemon.
 *
 * A size of 0 is refused (NULL and a message) without asking the daemon: every rank of a
 * collective call sees the same size, so they all refuse alike. Freeing NULL does nothing.
 */
#include "api.h"

#include <dlfcn.h>
#include <elf.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "channel.h"
#include "dsm_log.h"
#include "hits.h"
#include "runtime.h"

/* Name the caller's call site (its return address `ret`) for dsmrun --hotspots: req->d
 * gets the offset addr2line wants (from the module's load address, or the address itself
 * in a non-PIE executable), req->text the module's path (its last 79 bytes' worth: the
 * base name when the path is longer). Nothing when the module cannot be found. */
static void call_site(const void *ret, struct dsmc_msg *req)
{
    Dl_info info;
    char path[PATH_MAX];
    const char *name;
    uintptr_t at = (uintptr_t)ret - 1; /* inside the call instruction, not after it */

    if (dladdr(ret, &info) == 0 || info.dli_fname == NULL || info.dli_fbase == NULL)
        return;
    req->d = ((const Elf64_Ehdr *)info.dli_fbase)->e_type == ET_EXEC ? at : at - (uintptr_t)info.dli_fbase;
    name = realpath(info.dli_fname, path) != NULL ? path : info.dli_fname;
    if (strlen(name) >= sizeof(req->text) && strrchr(name, '/') != NULL)
        name = strrchr(name, '/') + 1;
    snprintf(req->text, sizeof(req->text), "%s", name);
}

/* Ask the daemon for `size` bytes with op (collective: homes placed by place/arg) into
 * *out for the caller at `site`; 0, or a status with a message (and *out NULL). */
static dsm_status_t allocate(const char *fn, enum dsmc_op op, size_t size, enum dsm_placement place,
                             uint64_t arg, const void *site, void **out)
{
    struct dsmc_msg req, rep;
    dsm_status_t st;
    uintptr_t addr;

    *out = NULL;
    if ((st = dsm_rt_check(fn)) != 0)
        return st;
    if (size == 0) {
        DSM_ERR("%s(0): a size of 0 bytes is not an allocation", fn);
        return DSM_EINVAL;
    }
    dsm_channel_msg(&req, op);
    req.a = size;
    req.b = (uint64_t)place;
    req.c = arg;
    if (dsm_rt.alloc_sites)
        call_site(site, &req); /* dladdr and realpath: only when asked for */
    if ((st = dsm_channel_request(fn, &req, &rep, DSMC_REPLY)) != 0)
        return st; /* logged */
    st = rep.status;
    if (st == DSM_ENOSPACE) {
        /* the space's layout (daemon/space): the first half for dsm_coalloc, the second
         * split into one dsm_malloc arena per node */
        size_t half = dsm_rt.vm.size / 2, arena = (dsm_rt.vm.size - half) / (size_t)(dsm_rt.nnodes - dsm_rt.memory_nodes);

        if (op == DSMC_COALLOC)
            DSM_ERR("%s(%zu): no room: collective allocations share the first half of the global space, "
                    "%zu MiB of its %zu MiB (the other half is one dsm_malloc arena per node)%s%s; free "
                    "allocations, or start the job with a larger space (dsmrun --space-size, default 1G)",
                    fn, size, half >> 20, dsm_rt.vm.size >> 20, rep.text[0] != '\0' ? "; " : "", rep.text);
        else
            DSM_ERR("%s(%zu): no room: this node's dsm_malloc arena holds %zu KiB (the second half of the "
                    "%zu MiB global space, split between %d nodes)%s%s; free blocks, or start the job with "
                    "a larger space (dsmrun --space-size, default 1G)", fn, size, arena >> 10,
                    dsm_rt.vm.size >> 20, dsm_rt.nnodes - dsm_rt.memory_nodes, rep.text[0] != '\0' ? "; " : "", rep.text);
        return st;
    }
    if (st != 0) {
        DSM_ERR("%s(%zu): %s%s%s", fn, size, dsm_status_str(st), rep.text[0] != '\0' ? ": " : "", rep.text);
        return st;
    }
    addr = (uintptr_t)rep.a;
    if (!dsm_vm_span_ok(&dsm_rt.vm, addr, size) ||
        (op == DSMC_COALLOC && !dsm_vm_page_aligned(&dsm_rt.vm, addr))) {
        DSM_ERR("%s(%zu): the daemon returned %#llx, which is not a block of the global space",
                fn, size, (unsigned long long)rep.a);
        return DSM_EPROTO;
    }
    *out = (void *)addr;
    return 0;
}

/* The placement of attr as (place, arg); DSM_EINVAL (logged) for one this job cannot use. */
static dsm_status_t placement_of(const struct dsm_alloc_attr *attr, enum dsm_placement *place, uint64_t *arg)
{
    *place = DSM_PLACE_BLOCK;
    *arg = 0;
    if (attr == NULL)
        return 0;
    for (size_t i = 0; i < sizeof(attr->reserved) / sizeof(attr->reserved[0]); i++)
        if (attr->reserved[i] != 0) {
            DSM_ERR("dsm_coalloc_ex: reserved[%zu] is not 0 (start from DSM_ALLOC_ATTR_INIT)", i);
            return DSM_EINVAL;
        }
    switch (attr->placement) {
    case DSM_PLACE_BLOCK:
        return 0;
    case DSM_PLACE_CYCLIC:
        if (attr->block_pages == 0) {
            DSM_ERR("dsm_coalloc_ex: DSM_PLACE_CYCLIC with block_pages 0 (at least 1 page per block)");
            return DSM_EINVAL;
        }
        *place = DSM_PLACE_CYCLIC;
        *arg = attr->block_pages;
        return 0;
    case DSM_PLACE_NODE:
        if (attr->node < 0 || attr->node >= dsm_rt.nnodes) {
            DSM_ERR("dsm_coalloc_ex: DSM_PLACE_NODE with node %d, but the job has nodes 0..%d", attr->node,
                    dsm_rt.nnodes - 1);
            return DSM_EINVAL;
        }
        *place = DSM_PLACE_NODE;
        *arg = (uint64_t)attr->node;
        return 0;
    case DSM_PLACE_FIRST_TOUCH:
        *place = DSM_PLACE_FIRST_TOUCH;
        return 0;
    default:
        DSM_ERR("dsm_coalloc_ex: unknown placement %d (DSM_PLACE_BLOCK, _CYCLIC, _NODE or _FIRST_TOUCH)",
                (int)attr->placement);
        return DSM_EINVAL;
    }
}

/* Return ptr to the daemon with op; a message on failure (the caller has no status to get). */
static void release(const char *fn, enum dsmc_op op, void *ptr)
{
    struct dsmc_msg req, rep;

    if (dsm_rt_check(fn) != 0 || ptr == NULL)
        return;
    if (!dsm_vm_contains(&dsm_rt.vm, (uintptr_t)ptr)) {
        DSM_ERR("%s(%p): not a pointer into the global space", fn, ptr);
        return;
    }
    dsm_channel_msg(&req, op);
    req.a = (uint64_t)(uintptr_t)ptr;
    if (dsm_channel_request(fn, &req, &rep, DSMC_REPLY) != 0)
        return; /* logged */
    if (rep.status != 0)
        DSM_ERR("%s(%p): %s%s%s", fn, ptr, dsm_status_str(rep.status),
                rep.text[0] != '\0' ? ": " : "", rep.text);
    else
        dsm_hits_forget_scans(); /* the block's access pattern ends with it */
}

DSM_API void *dsm_coalloc(size_t size)
{
    void *p;

    (void)allocate("dsm_coalloc", DSMC_COALLOC, size, DSM_PLACE_BLOCK, 0, __builtin_return_address(0), &p);
    return p;
}

DSM_API int dsm_coalloc_ex(size_t size, const struct dsm_alloc_attr *attr, void **out)
{
    enum dsm_placement place;
    uint64_t arg;
    dsm_status_t st;

    if (out == NULL) {
        DSM_ERR("dsm_coalloc_ex: out is NULL");
        return DSM_EINVAL;
    }
    *out = NULL;
    if ((st = dsm_rt_check("dsm_coalloc_ex")) != 0 || (st = placement_of(attr, &place, &arg)) != 0)
        return st;
    return allocate("dsm_coalloc_ex", DSMC_COALLOC, size, place, arg, __builtin_return_address(0), out);
}

DSM_API void dsm_cofree(void *ptr)
{
    release("dsm_cofree", DSMC_COFREE, ptr);
}

DSM_API void *dsm_malloc(size_t size)
{
    void *p;

    (void)allocate("dsm_malloc", DSMC_MALLOC, size, DSM_PLACE_BLOCK, 0, __builtin_return_address(0), &p);
    return p;
}

DSM_API void dsm_free(void *ptr)
{
    release("dsm_free", DSMC_FREE, ptr);
}

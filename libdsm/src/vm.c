/* vm.c - the rank's mapping of the global space and its protection changes; see vm.h. */
#include "vm.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "dsm_chan.h"
#include "dsm_log.h"

/* What a failed mprotect with ENOMEM says, written once at map time so that a signal
 * handler only has to copy it (dsm_vm_protect_why). */
static char maps_why[320] = "out of memory maps (mprotect: ENOMEM)";

/* The kernel's vm.max_map_count, or -1 when it cannot be read. */
static long max_map_count(void)
{
    FILE *f = fopen("/proc/sys/vm/max_map_count", "r");
    long v = -1;

    if (f == NULL)
        return -1;
    if (fscanf(f, "%ld", &v) != 1)
        v = -1;
    fclose(f);
    return v;
}

/* Every page of the space whose access differs from both neighbours' is a region (a VMA)
 * of its own, and the kernel caps a process's regions at vm.max_map_count: the worst case
 * needs about one per page of the space on top of what the process maps anyway. */
static void maps_why_prepare(const struct dsm_vm *vm)
{
    long limit = max_map_count();

    if (limit <= 0)
        return;
    snprintf(maps_why, sizeof(maps_why),
             "out of memory maps: page protections split the global space into more regions "
             "than vm.max_map_count (%ld) allows; raise it as root with sysctl -w "
             "vm.max_map_count=%llu (enough for every page of this space)", limit,
             (unsigned long long)((uint64_t)limit + dsm_vm_npages(vm)));
}

const char *dsm_vm_protect_why(int err)
{
    return err == ENOMEM ? maps_why : "mprotect failed";
}

dsm_status_t dsm_vm_map(const struct dsm_vm *vm, int memfd)
{
    void *want = (void *)vm->base;
    void *got = mmap(want, vm->size, PROT_NONE, MAP_SHARED | MAP_FIXED_NOREPLACE, memfd, 0);

    if (got == MAP_FAILED) {
        if (errno == EEXIST) {
            DSM_ERR("cannot map the global space at [%p, %p): the range is already in use in "
                    "this process", want, (void *)(vm->base + vm->size));
            return DSM_EBUSY;
        }
        DSM_ERR("cannot map the global space at [%p, %p) (%zu bytes): %s", want,
                (void *)(vm->base + vm->size), vm->size, strerror(errno));
        return DSM_ESYS;
    }
    if (got != want) {
        /* A kernel older than 4.17 takes the unknown flag as a hint and maps elsewhere. */
        if (munmap(got, vm->size) != 0)
            DSM_WARN("munmap of a misplaced mapping failed: %s", strerror(errno));
        DSM_ERR("cannot map the global space at [%p, %p): the kernel placed it at %p (range "
                "in use, or no MAP_FIXED_NOREPLACE support)", want,
                (void *)(vm->base + vm->size), got);
        return DSM_EBUSY;
    }
    maps_why_prepare(vm);
    return 0;
}

void dsm_vm_unmap(const struct dsm_vm *vm)
{
    if (munmap((void *)vm->base, vm->size) != 0)
        DSM_WARN("munmap of the global space failed: %s", strerror(errno));
}

int dsm_vm_prot(uint64_t access)
{
    switch (access) {
    case DSM_ACCESS_NONE:  return PROT_NONE;
    case DSM_ACCESS_READ:  return PROT_READ;
    case DSM_ACCESS_WRITE: return PROT_READ | PROT_WRITE;
    default:               return -1;
    }
}

dsm_status_t dsm_vm_protect(const struct dsm_vm *vm, uint64_t first, uint64_t count, uint64_t access)
{
    int prot = dsm_vm_prot(access);

    if (prot < 0 || !dsm_vm_range_ok(vm, first, count))
        return DSM_EINVAL;
    if (mprotect((void *)dsm_vm_page_addr(vm, first), (size_t)(count << vm->page_shift), prot) != 0)
        return DSM_ESYS;
    return 0;
}

/*
 * vm.h - the global space as a rank sees it: address <-> page arithmetic (header-only,
 * no state, no system calls, so unit tests can use it alone) and the rank's mapping of
 * the node's frame memfd (vm.c).
 *
 * The space is [base, base + size), page_size a power of two, base and size multiples of
 * it. Page p covers [base + p * page_size, base + (p + 1) * page_size).
 */
#ifndef DSM_VM_H
#define DSM_VM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dsm_status.h"

struct dsm_vm {
    uintptr_t base;       /* first byte of the space */
    size_t    size;       /* bytes */
    size_t    page_size;  /* bytes, a power of two */
    unsigned  page_shift; /* log2(page_size) */
};

/*
 * Fill *vm from a description received from the daemon. Returns 0, or DSM_EINVAL when the
 * page size is not a power of two, base or size is not a multiple of it, size is 0, or the
 * range does not fit the address space.
 */
static inline dsm_status_t dsm_vm_layout(struct dsm_vm *vm, uint64_t base, uint64_t size,
                                         uint64_t page_size)
{
    unsigned shift = 0;

    if (page_size == 0 || (page_size & (page_size - 1)) != 0)
        return DSM_EINVAL;
    if (size == 0 || (base & (page_size - 1)) != 0 || (size & (page_size - 1)) != 0)
        return DSM_EINVAL;
    if (base > UINTPTR_MAX || size > UINTPTR_MAX - base)
        return DSM_EINVAL;
    while (((uint64_t)1 << shift) != page_size)
        shift++;
    vm->base = (uintptr_t)base;
    vm->size = (size_t)size;
    vm->page_size = (size_t)page_size;
    vm->page_shift = shift;
    return 0;
}

/* Whether addr lies inside the space (one comparison: below base wraps to a huge offset). */
static inline bool dsm_vm_contains(const struct dsm_vm *vm, uintptr_t addr)
{
    return addr - vm->base < vm->size;
}

/* Number of pages in the space. */
static inline uint64_t dsm_vm_npages(const struct dsm_vm *vm)
{
    return (uint64_t)(vm->size >> vm->page_shift);
}

/* Page index of an address inside the space (dsm_vm_contains must hold). */
static inline uint64_t dsm_vm_page_of(const struct dsm_vm *vm, uintptr_t addr)
{
    return (uint64_t)((addr - vm->base) >> vm->page_shift);
}

/* First byte of page `page` (page < dsm_vm_npages). */
static inline uintptr_t dsm_vm_page_addr(const struct dsm_vm *vm, uint64_t page)
{
    return vm->base + ((uintptr_t)page << vm->page_shift);
}

/* Whether pages [first, first + count) are a non-empty range inside the space. */
static inline bool dsm_vm_range_ok(const struct dsm_vm *vm, uint64_t first, uint64_t count)
{
    uint64_t n = dsm_vm_npages(vm);

    return count != 0 && first < n && count <= n - first;
}

/* Whether [addr, addr + len) lies inside the space (len may be 0 only with addr inside). */
static inline bool dsm_vm_span_ok(const struct dsm_vm *vm, uintptr_t addr, size_t len)
{
    return dsm_vm_contains(vm, addr) && len <= vm->size - (addr - vm->base);
}

/* Whether addr is the first byte of a page. */
static inline bool dsm_vm_page_aligned(const struct dsm_vm *vm, uintptr_t addr)
{
    return ((addr - vm->base) & (vm->page_size - 1)) == 0;
}

/* Round bytes up to whole pages into *out; false if that overflows a size_t. */
static inline bool dsm_vm_round_up(const struct dsm_vm *vm, size_t bytes, size_t *out)
{
    if (bytes > SIZE_MAX - (vm->page_size - 1))
        return false;
    *out = (bytes + vm->page_size - 1) & ~(vm->page_size - 1);
    return true;
}

/*
 * Map the node's frame memfd over the space, PROT_NONE, MAP_SHARED|MAP_FIXED_NOREPLACE.
 * Returns 0, DSM_EBUSY (logged, naming the range) when something already occupies the
 * range, or DSM_ESYS. The caller keeps ownership of memfd.
 */
dsm_status_t dsm_vm_map(const struct dsm_vm *vm, int memfd);

/* Unmap the space (after dsm_vm_map succeeded). */
void dsm_vm_unmap(const struct dsm_vm *vm);

/* mprotect flags for a dsm_access level (dsm_chan.h); -1 for an unknown level. */
int dsm_vm_prot(uint64_t access);

/*
 * Set the protection of pages [first, first + count) to `access`. Async-signal-safe.
 * Returns 0, DSM_EINVAL for a range or level that is not valid, or DSM_ESYS (errno kept).
 */
dsm_status_t dsm_vm_protect(const struct dsm_vm *vm, uint64_t first, uint64_t count, uint64_t access);

/*
 * Why a dsm_vm_protect that returned DSM_ESYS failed, for its errno `err`: for ENOMEM the
 * process ran out of memory maps, and the text names vm.max_map_count, its value and the
 * one that would cover the whole space (read at dsm_vm_map); otherwise "mprotect failed".
 * Async-signal-safe; the string is static.
 */
const char *dsm_vm_protect_why(int err);

#endif

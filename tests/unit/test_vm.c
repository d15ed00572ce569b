/*
 * test_vm.c - unit suite for the rank-side address arithmetic (libdsm/src/vm.h, header-only
 * part): layout validation, contains/page_of/page_addr, range and span checks, rounding,
 * including the edges where unsigned arithmetic wraps.
 */
#include <criterion/criterion.h>

#include <stdint.h>

#include "vm.h"

#define PS    4096u
#define BASE  0x7e0000000000ull
#define SIZE  (1024ull * PS)      /* 1024 pages */

static struct dsm_vm std_vm(void)
{
    struct dsm_vm vm;

    cr_assert_eq(dsm_vm_layout(&vm, BASE, SIZE, PS), 0);
    return vm;
}

Test(vm, layout_accepts_a_valid_description)
{
    struct dsm_vm vm = std_vm();

    cr_assert_eq(vm.base, (uintptr_t)BASE);
    cr_assert_eq(vm.size, (size_t)SIZE);
    cr_assert_eq(vm.page_size, (size_t)PS);
    cr_assert_eq(vm.page_shift, 12);
    cr_assert_eq(dsm_vm_npages(&vm), 1024);
}

Test(vm, layout_shift_for_every_power_of_two)
{
    for (unsigned s = 0; s <= 30; s++) {
        struct dsm_vm vm;
        uint64_t ps = 1ull << s;

        cr_assert_eq(dsm_vm_layout(&vm, ps * 16, ps * 8, ps), 0, "page size 2^%u", s);
        cr_assert_eq(vm.page_shift, s);
        cr_assert_eq(vm.page_size, (size_t)ps);
        cr_assert_eq(dsm_vm_npages(&vm), 8);
    }
}

Test(vm, layout_rejects_bad_descriptions)
{
    struct dsm_vm vm;

    cr_assert_eq(dsm_vm_layout(&vm, BASE, SIZE, 0), DSM_EINVAL, "page size 0");
    cr_assert_eq(dsm_vm_layout(&vm, BASE, SIZE, 3), DSM_EINVAL, "page size 3");
    cr_assert_eq(dsm_vm_layout(&vm, BASE, SIZE, 4097), DSM_EINVAL, "page size 4097");
    cr_assert_eq(dsm_vm_layout(&vm, BASE, SIZE, 6144), DSM_EINVAL, "page size 6144");
    cr_assert_eq(dsm_vm_layout(&vm, BASE, SIZE, UINT64_MAX), DSM_EINVAL, "page size 2^64-1");
    cr_assert_eq(dsm_vm_layout(&vm, BASE + 1, SIZE, PS), DSM_EINVAL, "base not page aligned");
    cr_assert_eq(dsm_vm_layout(&vm, BASE + PS / 2, SIZE, PS), DSM_EINVAL, "base half a page off");
    cr_assert_eq(dsm_vm_layout(&vm, BASE, SIZE + 1, PS), DSM_EINVAL, "size not a page multiple");
    cr_assert_eq(dsm_vm_layout(&vm, BASE, PS - 1, PS), DSM_EINVAL, "less than a page");
    cr_assert_eq(dsm_vm_layout(&vm, BASE, 0, PS), DSM_EINVAL, "size 0");
    /* the range runs off the end of the address space */
    cr_assert_eq(dsm_vm_layout(&vm, UINT64_MAX - PS + 1, 2 * PS, PS), DSM_EINVAL, "wraps past 2^64");
    cr_assert_eq(dsm_vm_layout(&vm, 1ull << 63, 1ull << 63 | 1ull << 62, PS), DSM_EINVAL, "ends past 2^64");
    cr_assert_eq(dsm_vm_layout(&vm, PS, UINT64_MAX - PS + 1, PS), DSM_EINVAL, "huge size");
}

Test(vm, contains_at_the_edges)
{
    struct dsm_vm vm = std_vm();

    cr_assert(dsm_vm_contains(&vm, BASE));
    cr_assert(dsm_vm_contains(&vm, BASE + 1));
    cr_assert(dsm_vm_contains(&vm, BASE + SIZE - 1));
    cr_assert_not(dsm_vm_contains(&vm, BASE + SIZE));
    cr_assert_not(dsm_vm_contains(&vm, BASE - 1));
    cr_assert_not(dsm_vm_contains(&vm, 0));
    cr_assert_not(dsm_vm_contains(&vm, UINTPTR_MAX));
    cr_assert_not(dsm_vm_contains(&vm, BASE + 2 * SIZE));
}

Test(vm, contains_in_a_space_at_address_zero_and_at_the_top)
{
    struct dsm_vm low, high;
    uintptr_t top = (uintptr_t)0 - 4 * PS;   /* the last 4 pages of the address space, minus one */

    cr_assert_eq(dsm_vm_layout(&low, 0, 4 * PS, PS), 0);
    cr_assert(dsm_vm_contains(&low, 0));
    cr_assert(dsm_vm_contains(&low, 4 * PS - 1));
    cr_assert_not(dsm_vm_contains(&low, 4 * PS));
    cr_assert_not(dsm_vm_contains(&low, UINTPTR_MAX));

    cr_assert_eq(dsm_vm_layout(&high, top - PS, 4 * PS, PS), 0);
    cr_assert(dsm_vm_contains(&high, top - PS));
    cr_assert(dsm_vm_contains(&high, top + 3 * PS - 1));
    cr_assert_not(dsm_vm_contains(&high, top + 3 * PS));
    cr_assert_not(dsm_vm_contains(&high, UINTPTR_MAX));
    cr_assert_not(dsm_vm_contains(&high, 0));
    cr_assert_eq(dsm_vm_page_of(&high, top + 3 * PS - 1), 3);
}

Test(vm, page_of_and_page_addr_are_inverse)
{
    struct dsm_vm vm = std_vm();

    for (uint64_t p = 0; p < dsm_vm_npages(&vm); p++) {
        uintptr_t a = dsm_vm_page_addr(&vm, p);

        cr_assert_eq(a, (uintptr_t)(BASE + p * PS), "page %llu", (unsigned long long)p);
        cr_assert_eq(dsm_vm_page_of(&vm, a), p);
        cr_assert_eq(dsm_vm_page_of(&vm, a + 1), p);
        cr_assert_eq(dsm_vm_page_of(&vm, a + PS - 1), p);
        cr_assert(dsm_vm_page_aligned(&vm, a));
        cr_assert_not(dsm_vm_page_aligned(&vm, a + 1));
        cr_assert_not(dsm_vm_page_aligned(&vm, a + PS - 1));
    }
}

Test(vm, every_byte_of_a_tiny_space_against_brute_force)
{
    struct dsm_vm vm;
    const uintptr_t base = 64, size = 256, ps = 16;

    cr_assert_eq(dsm_vm_layout(&vm, base, size, ps), 0);
    for (uintptr_t a = 0; a < 1024; a++) {
        bool in = a >= base && a < base + size;

        cr_assert_eq(dsm_vm_contains(&vm, a), in, "address %lu", (unsigned long)a);
        if (!in)
            continue;
        cr_assert_eq(dsm_vm_page_of(&vm, a), (a - base) / ps, "address %lu", (unsigned long)a);
        cr_assert_eq(dsm_vm_page_aligned(&vm, a), (a - base) % ps == 0, "address %lu", (unsigned long)a);
        for (size_t len = 0; len < 300; len += 7)
            cr_assert_eq(dsm_vm_span_ok(&vm, a, len), a + len <= base + size, "span %lu+%zu", (unsigned long)a, len);
    }
}

Test(vm, range_ok_at_the_edges)
{
    struct dsm_vm vm = std_vm();
    uint64_t n = dsm_vm_npages(&vm);

    cr_assert(dsm_vm_range_ok(&vm, 0, n));
    cr_assert(dsm_vm_range_ok(&vm, 0, 1));
    cr_assert(dsm_vm_range_ok(&vm, n - 1, 1));
    cr_assert(dsm_vm_range_ok(&vm, 5, n - 5));
    cr_assert_not(dsm_vm_range_ok(&vm, 0, 0), "empty range");
    cr_assert_not(dsm_vm_range_ok(&vm, 3, 0), "empty range");
    cr_assert_not(dsm_vm_range_ok(&vm, 0, n + 1));
    cr_assert_not(dsm_vm_range_ok(&vm, n - 1, 2));
    cr_assert_not(dsm_vm_range_ok(&vm, n, 1));
    cr_assert_not(dsm_vm_range_ok(&vm, 5, n - 4));
    cr_assert_not(dsm_vm_range_ok(&vm, 1, UINT64_MAX), "first + count wraps");
    cr_assert_not(dsm_vm_range_ok(&vm, UINT64_MAX, 1));
    cr_assert_not(dsm_vm_range_ok(&vm, UINT64_MAX, UINT64_MAX));
    cr_assert_not(dsm_vm_range_ok(&vm, n + 1, UINT64_MAX - n));
}

Test(vm, span_ok_at_the_edges)
{
    struct dsm_vm vm = std_vm();

    cr_assert(dsm_vm_span_ok(&vm, BASE, SIZE));
    cr_assert(dsm_vm_span_ok(&vm, BASE, 0));
    cr_assert(dsm_vm_span_ok(&vm, BASE + SIZE - 1, 1));
    cr_assert(dsm_vm_span_ok(&vm, BASE + SIZE - 1, 0));
    cr_assert_not(dsm_vm_span_ok(&vm, BASE, SIZE + 1));
    cr_assert_not(dsm_vm_span_ok(&vm, BASE + SIZE - 1, 2));
    cr_assert_not(dsm_vm_span_ok(&vm, BASE + SIZE, 0), "empty span outside");
    cr_assert_not(dsm_vm_span_ok(&vm, BASE - 1, 1));
    cr_assert_not(dsm_vm_span_ok(&vm, BASE - 1, 2), "starts below, ends inside");
    cr_assert_not(dsm_vm_span_ok(&vm, BASE + 1, SIZE_MAX), "addr + len wraps");
    cr_assert_not(dsm_vm_span_ok(&vm, BASE + PS, SIZE_MAX - PS + 2));
    cr_assert_not(dsm_vm_span_ok(&vm, UINTPTR_MAX, 1));
}

Test(vm, round_up_and_its_overflow)
{
    struct dsm_vm vm = std_vm();
    size_t out = 12345;

    cr_assert(dsm_vm_round_up(&vm, 0, &out));
    cr_assert_eq(out, 0);
    cr_assert(dsm_vm_round_up(&vm, 1, &out));
    cr_assert_eq(out, PS);
    cr_assert(dsm_vm_round_up(&vm, PS - 1, &out));
    cr_assert_eq(out, PS);
    cr_assert(dsm_vm_round_up(&vm, PS, &out));
    cr_assert_eq(out, PS);
    cr_assert(dsm_vm_round_up(&vm, PS + 1, &out));
    cr_assert_eq(out, 2 * PS);
    cr_assert(dsm_vm_round_up(&vm, 10 * PS - 7, &out));
    cr_assert_eq(out, 10 * PS);
    /* the largest multiple of the page size still rounds to itself */
    cr_assert(dsm_vm_round_up(&vm, SIZE_MAX - PS + 1, &out));
    cr_assert_eq(out, SIZE_MAX - PS + 1);
    out = 777;
    cr_assert_not(dsm_vm_round_up(&vm, SIZE_MAX - PS + 2, &out), "one byte more overflows");
    cr_assert_not(dsm_vm_round_up(&vm, SIZE_MAX, &out));
    cr_assert_eq(out, 777, "a failed round_up must not write *out");
}

Test(vm, round_up_with_one_byte_pages)
{
    struct dsm_vm vm;
    size_t out = 0;

    cr_assert_eq(dsm_vm_layout(&vm, 0, 1024, 1), 0);
    cr_assert(dsm_vm_round_up(&vm, SIZE_MAX, &out));
    cr_assert_eq(out, SIZE_MAX);
    cr_assert(dsm_vm_round_up(&vm, 5, &out));
    cr_assert_eq(out, 5);
}

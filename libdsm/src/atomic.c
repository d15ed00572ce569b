/*
 * atomic.c - the public atomics (dsm_atomic_*): checked here, performed by the home's
 * daemon (daemon/atomics.c). One channel round trip to this node's daemon, which forwards
 * the operation to the home and answers with the word's old value.
 */
#include "api.h"

#include "channel.h"
#include "dsm_log.h"
#include "runtime.h"

/* Perform op on the `width`-byte word at addr; *old (if not NULL) gets the value before.
 * 0, or a status with a message naming fn. */
static dsm_status_t atomic_call(const char *fn, const volatile void *addr, int width, enum dsmc_aop op,
                                uint64_t operand, uint64_t operand2, uint64_t *old)
{
    struct dsmc_msg req, rep;
    uintptr_t a = (uintptr_t)addr;
    dsm_status_t st = dsm_rt_check(fn);

    if (st != 0)
        return st;
    if (!dsm_vm_span_ok(&dsm_rt.vm, a, (size_t)width)) {
        DSM_ERR("%s(%p): not an address of the global space (%#lx..%#lx)", fn, (const void *)addr,
                (unsigned long)dsm_rt.vm.base, (unsigned long)(dsm_rt.vm.base + dsm_rt.vm.size));
        return DSM_EINVAL;
    }
    if (a % (uintptr_t)width != 0) {
        DSM_ERR("%s(%p): the address is not aligned to %d bytes", fn, (const void *)addr, width);
        return DSM_EINVAL;
    }
    dsm_channel_msg(&req, DSMC_ATOMIC);
    req.a = a;
    req.b = operand;
    req.c = operand2;
    req.d = (uint64_t)op;
    req.e = (uint64_t)width;
    if ((st = dsm_channel_request(fn, &req, &rep, DSMC_REPLY)) != 0)
        return st; /* logged */
    if (rep.status != 0) {
        DSM_ERR("%s(%p): %s%s%s", fn, (const void *)addr, dsm_status_str(rep.status),
                rep.text[0] != '\0' ? ": " : "", rep.text);
        return rep.status;
    }
    if (old != NULL)
        *old = rep.a;
    return 0;
}

/* The 32-bit calls: the same, with the old value narrowed. */
static int atomic32(const char *fn, const volatile uint32_t *addr, enum dsmc_aop op, uint32_t v, uint32_t v2,
                    uint32_t *old)
{
    uint64_t o;
    dsm_status_t st = atomic_call(fn, addr, 4, op, v, v2, &o);

    if (st == 0 && old != NULL)
        *old = (uint32_t)o;
    return st;
}

DSM_API int dsm_atomic_load_32(const uint32_t *addr, uint32_t *out)
{
    return atomic32("dsm_atomic_load_32", addr, DSMC_AOP_LOAD, 0, 0, out);
}

DSM_API int dsm_atomic_load_64(const uint64_t *addr, uint64_t *out)
{
    return atomic_call("dsm_atomic_load_64", addr, 8, DSMC_AOP_LOAD, 0, 0, out);
}

DSM_API int dsm_atomic_store_32(uint32_t *addr, uint32_t value)
{
    return atomic32("dsm_atomic_store_32", addr, DSMC_AOP_STORE, value, 0, NULL);
}

DSM_API int dsm_atomic_store_64(uint64_t *addr, uint64_t value)
{
    return atomic_call("dsm_atomic_store_64", addr, 8, DSMC_AOP_STORE, value, 0, NULL);
}

DSM_API int dsm_atomic_fetch_add_32(uint32_t *addr, uint32_t value, uint32_t *old)
{
    return atomic32("dsm_atomic_fetch_add_32", addr, DSMC_AOP_FETCH_ADD, value, 0, old);
}

DSM_API int dsm_atomic_fetch_add_64(uint64_t *addr, uint64_t value, uint64_t *old)
{
    return atomic_call("dsm_atomic_fetch_add_64", addr, 8, DSMC_AOP_FETCH_ADD, value, 0, old);
}

DSM_API int dsm_atomic_swap_32(uint32_t *addr, uint32_t value, uint32_t *old)
{
    return atomic32("dsm_atomic_swap_32", addr, DSMC_AOP_SWAP, value, 0, old);
}

DSM_API int dsm_atomic_swap_64(uint64_t *addr, uint64_t value, uint64_t *old)
{
    return atomic_call("dsm_atomic_swap_64", addr, 8, DSMC_AOP_SWAP, value, 0, old);
}

DSM_API int dsm_atomic_cas_32(uint32_t *addr, uint32_t expected, uint32_t desired, uint32_t *old)
{
    return atomic32("dsm_atomic_cas_32", addr, DSMC_AOP_CAS, expected, desired, old);
}

DSM_API int dsm_atomic_cas_64(uint64_t *addr, uint64_t expected, uint64_t desired, uint64_t *old)
{
    return atomic_call("dsm_atomic_cas_64", addr, 8, DSMC_AOP_CAS, expected, desired, old);
}

/*
 * atomic_word.h - what an atomic operation (enum dsmw_aop) does to a 32- or 64-bit word:
 * performed at the home (daemon/atomics.c) and computed again at the requester's node, and
 * the same in the protocol test harness (tests/unit/proto_harness.c).
 */
#ifndef DSMD_ATOMIC_WORD_H
#define DSMD_ATOMIC_WORD_H

#include <stdint.h>

#include "wire.h"

/* The word's value after `aop` found `old` there. */
static inline uint64_t dsmd_atomic_after(uint32_t aop, uint64_t old, uint64_t a, uint64_t b, uint64_t size)
{
    uint64_t mask = size == 4 ? UINT32_MAX : UINT64_MAX;

    switch (aop) {
    case DSMW_AOP_STORE:
    case DSMW_AOP_SWAP:      return a;
    case DSMW_AOP_FETCH_ADD: return (old + a) & mask;
    case DSMW_AOP_CAS:       return old == a ? b : old;
    default:                 return old;
    }
}

/* Perform aop on the word at w; returns the value before. */
static inline uint64_t dsmd_atomic_perform(void *w, uint64_t size, uint32_t aop, uint64_t a, uint64_t b)
{
    if (size == 4) {
        uint32_t *p = w, x = (uint32_t)a;

        switch (aop) {
        case DSMW_AOP_LOAD:      return __atomic_load_n(p, __ATOMIC_SEQ_CST);
        case DSMW_AOP_FETCH_ADD: return __atomic_fetch_add(p, x, __ATOMIC_SEQ_CST);
        case DSMW_AOP_CAS:
            __atomic_compare_exchange_n(p, &x, (uint32_t)b, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
            return x; /* the value found, whether or not it was replaced */
        default:                 return __atomic_exchange_n(p, x, __ATOMIC_SEQ_CST); /* store, swap */
        }
    } else {
        uint64_t *p = w, x = a;

        switch (aop) {
        case DSMW_AOP_LOAD:      return __atomic_load_n(p, __ATOMIC_SEQ_CST);
        case DSMW_AOP_FETCH_ADD: return __atomic_fetch_add(p, x, __ATOMIC_SEQ_CST);
        case DSMW_AOP_CAS:
            __atomic_compare_exchange_n(p, &x, b, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
            return x;
        default:                 return __atomic_exchange_n(p, x, __ATOMIC_SEQ_CST);
        }
    }
}

#endif

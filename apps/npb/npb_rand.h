/*
 * npb_rand.h - the NAS Parallel Benchmarks' random number generator: the linear
 * congruential x(k+1) = a * x(k) mod 2^46, returned as x * 2^-46 (uniform in (0, 1)).
 * The specification computes it in double arithmetic split into 23-bit halves; the
 * products here are exact 128-bit integer ones, which give the same numbers.
 */
#ifndef NPB_RAND_H
#define NPB_RAND_H

#include <stdint.h>

#define NPB_MOD_MASK ((1ull << 46) - 1)
#define NPB_R46 (1.0 / 70368744177664.0) /* 2^-46 */

/* a * x mod 2^46. */
static inline uint64_t npb_mul46(uint64_t a, uint64_t x)
{
    return (uint64_t)(((unsigned __int128)a * x) & NPB_MOD_MASK);
}

/* Advance *x by one step of multiplier a; return the new value in (0, 1). */
static inline double npb_randlc(uint64_t *x, uint64_t a)
{
    *x = npb_mul46(a, *x);
    return (double)*x * NPB_R46;
}

/* a^n mod 2^46 (the multiplier that jumps n steps ahead). */
static inline uint64_t npb_pow46(uint64_t a, uint64_t n)
{
    uint64_t r = 1;

    for (; n > 0; n >>= 1, a = npb_mul46(a, a))
        if (n & 1)
            r = npb_mul46(r, a);
    return r;
}

#endif

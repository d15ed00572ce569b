/*
 * lt_common.h - helpers shared by the litmus and DSM-level test programs: job geometry,
 * iteration counts (DSM_STRESS, DSM_TEST_QUICK), the consistency model under test, timing and jitter.
 *
 * All of these use only <dsm/dsm.h> and libc. Functions that take part in a collective
 * (lt_nnodes) must be called by every rank in the same order.
 */
#ifndef LT_COMMON_H
#define LT_COMMON_H

#include <stdint.h>

/* Consistency models as bits, so a table can say "forbidden under these models". */
enum lt_model { LT_SEQUENTIAL = 1u, LT_RELEASE = 2u, LT_CAUSAL = 4u };

/* The bit of the job's model (dsm_consistency()), or 0 if the name is unknown. */
unsigned lt_model(void);

/* `normal`, or `stress` when the environment has DSM_STRESS set to a non-zero value, or a
 * quarter of `normal` (at least 1) with DSM_TEST_QUICK set to a non-zero value: for runs in an
 * emulated guest (scripts/test-rdma-vm), where each fault costs ten times more. */
long lt_scaled(long normal, long stress);

/*
 * Collective: the number of nodes of the job, learnt from every rank's DSM_NODE (0 when
 * unset, as in a standalone run). Returns the count, or a negative DSM error code.
 */
int lt_nnodes(void);

/* Nanoseconds on the monotonic clock. */
int64_t lt_now_ns(void);

/* A step of a per-caller pseudo-random sequence (xorshift64*); *state must be non-zero. */
uint64_t lt_rand(uint64_t *state);

/* Busy-wait a pseudo-random 0..max_ns (zero a quarter of the time), to vary interleavings. */
void lt_jitter(uint64_t *state, int64_t max_ns);

/* Parse a long in [lo, hi]; 0 and *out set on success, -1 otherwise. */
int lt_parse_long(const char *s, long lo, long hi, long *out);

#endif

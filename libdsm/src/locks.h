/*
 * locks.h - which thread of this rank holds which global lock.
 *
 * The daemon keeps lock ownership per rank; this table makes it per thread, as the threads
 * of dsm_parallel need: a thread asking for a lock that another thread of its rank holds,
 * or is acquiring, waits here until that thread lets go (a lock wait has no time limit at
 * the daemon either), and only the thread that took a lock may release it. The waiting
 * thread then asks the daemon itself, so the lock's FIFO at its manager stays fair to the
 * other ranks.
 */
#ifndef DSM_LOCKS_H
#define DSM_LOCKS_H

#include <stdbool.h>
#include <stdint.h>

#include "dsm_status.h"

/*
 * Claim `id` for the calling thread before asking the daemon (for fn: dsm_lock or
 * dsm_trylock), waiting while another thread of this rank has it, or with `try` returning
 * DSM_EBUSY at once. Returns 0; DSM_EINVAL (logged) when the calling thread has it
 * already; DSM_ENOMEM (logged).
 */
dsm_status_t dsm_locks_claim(uint32_t id, const char *fn, bool try);

/* 0 when the calling thread holds `id`; DSM_EINVAL (logged, naming fn) otherwise. */
dsm_status_t dsm_locks_check(uint32_t id, const char *fn);

/* Drop the calling thread's claim on `id` (a failed acquire, or after the unlock), waking
 * the threads that wait for it. */
void dsm_locks_drop(uint32_t id);

#endif

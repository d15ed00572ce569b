/* sync.c - the public synchronisation calls: dsm_lock, dsm_trylock, dsm_unlock, dsm_barrier,
 * the condition variables and the fences (dsm_acquire, dsm_release). */
#include "api.h"

#include <stdint.h>
#include <string.h>

#include "channel.h"
#include "dsm_log.h"
#include "locks.h"
#include "parallel.h"
#include "runtime.h"

/* One synchronisation request; returns 0 or a status (logged, naming fn and id). */
static dsm_status_t sync_call(const char *fn, enum dsmc_op op, uint32_t id)
{
    struct dsmc_msg req, rep;
    dsm_status_t st = dsm_rt_check(fn);

    if (st != 0)
        return st;
    dsm_channel_msg(&req, op);
    req.a = id;
    st = dsm_channel_request(fn, &req, &rep, DSMC_REPLY);
    if (st != 0)
        return st; /* logged */
    if (rep.status != 0 && !(op == DSMC_TRYLOCK && rep.status == DSM_EBUSY)) {
        if (op == DSMC_BARRIER)
            DSM_ERR("%s: %s%s%s", fn, dsm_status_str(rep.status), rep.text[0] != '\0' ? ": " : "", rep.text);
        else
            DSM_ERR("%s(%u): %s%s%s", fn, id, dsm_status_str(rep.status),
                    rep.text[0] != '\0' ? ": " : "", rep.text);
    }
    return rep.status;
}

/* The lock behind dsm_acquire/dsm_release; programs may not use it (DSM_EINVAL). */
#define FENCE_LOCK UINT32_MAX

/* DSM_EINVAL (logged) when a program names the fences' lock. */
static dsm_status_t lock_id_ok(const char *fn, uint32_t id)
{
    if (id != FENCE_LOCK)
        return 0;
    DSM_ERR("%s(%u): lock %u is reserved for dsm_acquire and dsm_release", fn, id, id);
    return DSM_EINVAL;
}

/* Locks are held by threads (locks.h): the daemon sees only the rank. The thread claims
 * the lock here first (with op DSMC_TRYLOCK: only if no other thread of the rank has it),
 * then asks the daemon; a refusal gives the claim back. */
static dsm_status_t acquire(const char *fn, enum dsmc_op op, uint32_t id)
{
    dsm_status_t st = dsm_rt_check(fn);

    if (st == 0)
        st = dsm_locks_claim(id, fn, op == DSMC_TRYLOCK);
    if (st != 0)
        return st;
    st = sync_call(fn, op, id);
    if (st != 0)
        dsm_locks_drop(id);
    return st;
}

DSM_API int dsm_lock(uint32_t id)
{
    dsm_status_t st = lock_id_ok("dsm_lock", id);

    return st != 0 ? st : acquire("dsm_lock", DSMC_LOCK, id);
}

DSM_API int dsm_trylock(uint32_t id)
{
    dsm_status_t st = lock_id_ok("dsm_trylock", id);

    return st != 0 ? st : acquire("dsm_trylock", DSMC_TRYLOCK, id);
}

/* The release half of dsm_unlock, for any lock id. */
static dsm_status_t release(const char *fn, uint32_t id)
{
    dsm_status_t st = dsm_rt_check(fn);

    if (st == 0)
        st = dsm_locks_check(id, fn);
    if (st != 0)
        return st;
    st = sync_call(fn, DSMC_UNLOCK, id);
    dsm_locks_drop(id);
    return st;
}

DSM_API int dsm_unlock(uint32_t id)
{
    dsm_status_t st = lock_id_ok("dsm_unlock", id);

    return st != 0 ? st : release("dsm_unlock", id);
}

/* A full fence: take and give back the fences' lock, whose manager keeps the clock of
 * every release made through it. What this rank wrote before goes out with the release
 * (to the homes, and the notices to the manager); what any rank released through a fence
 * (or the lock) before comes in with the acquire. Under sequential every access already
 * sees the latest write: nothing to do. */
static dsm_status_t fence(const char *fn)
{
    dsm_status_t st = dsm_rt_check(fn);

    if (st != 0 || dsm_rt.model == DSM_MODEL_SEQUENTIAL)
        return st;
    if ((st = acquire(fn, DSMC_LOCK, FENCE_LOCK)) != 0)
        return st;
    return release(fn, FENCE_LOCK);
}

DSM_API int dsm_acquire(void)
{
    return fence("dsm_acquire");
}

DSM_API int dsm_release(void)
{
    return fence("dsm_release");
}

DSM_API int dsm_barrier(void)
{
    dsm_status_t st;

    /* every thread of a team calling it would count the rank several times */
    if (dsm_parallel_team_size() > 1) {
        DSM_ERR("dsm_barrier called by a thread of dsm_parallel: use dsm_thread_barrier");
        return DSM_ESTATE;
    }
    st = sync_call("dsm_barrier", DSMC_BARRIER, 0);
    return st;
}

/* A condition variable request (a: cond, b: lock or broadcast); 0 or a status (logged). */
static dsm_status_t cond_call(const char *fn, enum dsmc_op op, uint32_t cond, uint64_t b)
{
    struct dsmc_msg req, rep;
    dsm_status_t st;

    dsm_channel_msg(&req, op);
    req.a = cond;
    req.b = b;
    st = dsm_channel_request(fn, &req, &rep, DSMC_REPLY);
    if (st == 0 && rep.status != 0) {
        DSM_ERR("%s(%u): %s%s%s", fn, cond, dsm_status_str(rep.status), rep.text[0] != '\0' ? ": " : "",
                rep.text);
        st = rep.status;
    }
    return st;
}

/* The calling thread keeps its claim on the lock while it waits (locks.h): the daemon
 * releases and re-acquires the lock for the rank. */
DSM_API int dsm_cond_wait(uint32_t cond, uint32_t lock)
{
    dsm_status_t st = dsm_rt_check("dsm_cond_wait");

    if (st == 0)
        st = lock_id_ok("dsm_cond_wait", lock);
    if (st == 0)
        st = dsm_locks_check(lock, "dsm_cond_wait");
    if (st == 0)
        st = cond_call("dsm_cond_wait", DSMC_COND_WAIT, cond, lock);
    return st;
}

DSM_API int dsm_cond_signal(uint32_t cond)
{
    dsm_status_t st = dsm_rt_check("dsm_cond_signal");

    return st != 0 ? st : cond_call("dsm_cond_signal", DSMC_COND_SIGNAL, cond, 0);
}

DSM_API int dsm_cond_broadcast(uint32_t cond)
{
    dsm_status_t st = dsm_rt_check("dsm_cond_broadcast");

    return st != 0 ? st : cond_call("dsm_cond_broadcast", DSMC_COND_SIGNAL, cond, 1);
}

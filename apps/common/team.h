/*
 * team.h - what the applications share: one parallel computation written once, run as the
 * ranks of a dsm job or as native pthreads in one process (--native T, the baseline).
 *
 * A team member is a rank (dsm) or a thread (native). The calls mirror the dsm ones:
 * team_alloc is collective and zeroed (dsm_coalloc), team_barrier (dsm_barrier),
 * team_lock/unlock (dsm_lock: native locks are 64 mutexes by id % 64, so a member may
 * hold one lock at a time), team_fetch_add (dsm_atomic_fetch_add_64). Each returns 0 or
 * a negative dsm error code, which the apps report and end on.
 */
#ifndef APP_TEAM_H
#define APP_TEAM_H

#include <stddef.h>
#include <stdint.h>

struct team_shared;

struct team {
    int id, n;                    /* member id (rank or thread), members */
    struct team_shared *shared;   /* native only */
};

void *team_alloc(struct team *t, size_t bytes);
int team_barrier(struct team *t);
int team_lock(struct team *t, uint32_t id);
int team_unlock(struct team *t, uint32_t id);
int team_fetch_add(struct team *t, uint64_t *word, uint64_t v, uint64_t *old);
/* "native pthreads" or the job's consistency model. */
const char *team_model(const struct team *t);
double team_now(void);

/*
 * Run body(t, arg) on every member: native > 0 on that many threads of this process, else
 * as this rank of a dsm job (dsm_init .. dsm_finalize here). Returns the exit status: the
 * member's own body result for a rank, 1 when the runtime failed. Natively the first thread
 * whose body fails ends the process with its status (its peers may wait in a barrier it
 * will never reach), so nothing hangs.
 */
int team_main(int *argc, char ***argv, const char *app, long native, int (*body)(struct team *t, void *arg),
              void *arg);

/* Parse "--native T" out of argv (removing it); 0 when absent, -1 when malformed. */
long team_native_arg(int *argc, char **argv);
/* The rest of an NPB kernel's command line, [-c CLASS]: the index of CLASS in `names`
 * (0, the first, when absent), or -1 for anything else. */
int team_class_arg(int argc, char **argv, const char *names);
/* End of a body: wait until member 0 has written the job's verdict, then return it (the
 * member's exit status); 1 when the barrier failed. */
int team_verdict(struct team *t, const int *verdict);

#endif

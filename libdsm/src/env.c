/* env.c - the rank's configuration from its environment; see env.h. */
#include "env.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "dsm_log.h"

/*
 * Parse variable `name` as a decimal integer in [min, max] into *out; *out = dflt when the
 * variable is unset (or empty). Returns 0, or DSM_ECONFIG (logged) for anything else.
 */
static dsm_status_t env_int(const char *name, long min, long max, int dflt, int *out)
{
    const char *s = getenv(name);
    char *end;
    long v;

    if (s == NULL || *s == '\0') {
        *out = dflt;
        return 0;
    }
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max) {
        DSM_ERR("%s=\"%s\" is not an integer in [%ld, %ld]", name, s, min, max);
        return DSM_ECONFIG;
    }
    *out = (int)v;
    return 0;
}

dsm_status_t dsm_env_read(struct dsm_env *env)
{
    const char *sock = getenv("DSM_SOCKET");
    dsm_status_t st;

    env->socket = (sock != NULL && *sock != '\0') ? sock : NULL;
    st = env_int("DSM_FAULT_TIMEOUT", 0, 1000000, DSM_FAULT_TIMEOUT_DEFAULT, &env->fault_timeout_s);
    if (st == 0)
        st = env_int("DSM_FAULT_SPIN_US", 0, 1000000,
                     sysconf(_SC_NPROCESSORS_ONLN) > DSM_FAULT_SPIN_MIN_CPUS ? DSM_FAULT_SPIN_DEFAULT : 0,
                     &env->fault_spin_us);
    if (st == 0)
        st = env_int("DSM_HITS_DELAY_US", 0, 100000, 0, &env->hits_delay_us);
    if (st != 0)
        return st;
    if (env->socket == NULL) {
        env->rank = 0;
        env->nranks = 1;
        env->node = 0;
        return 0;
    }
    env->rank = -1;
    st = env_int("DSM_NRANKS", 1, 1 << 24, -1, &env->nranks);
    if (st == 0 && env->nranks > 0)
        st = env_int("DSM_RANK", 0, (long)env->nranks - 1, -1, &env->rank);
    if (st == 0)
        st = env_int("DSM_NODE", 0, 1 << 24, -1, &env->node);
    if (st != 0)
        return st;
    if (env->nranks < 0 || env->rank < 0) {
        DSM_ERR("DSM_SOCKET is set but DSM_%s is not: start the program with dsmrun, or "
                "unset DSM_SOCKET to run it as a one-rank job", env->nranks < 0 ? "NRANKS" : "RANK");
        return DSM_ECONFIG;
    }
    return 0;
}

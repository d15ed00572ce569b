/* runtime.c - the rank's runtime record and lifecycle state; see runtime.h. */
#include "runtime.h"

#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "dsm_log.h"

struct dsm_runtime dsm_rt = { .main_fd = -1, .service_fd = -1 };

static _Atomic int g_state = DSM_RT_NEW;

enum dsm_rt_state dsm_rt_state(void)
{
    return (enum dsm_rt_state)atomic_load(&g_state);
}

void dsm_rt_set_state(enum dsm_rt_state st)
{
    atomic_store(&g_state, (int)st);
}

bool dsm_rt_transition(enum dsm_rt_state from, enum dsm_rt_state to)
{
    int expected = (int)from;

    return atomic_compare_exchange_strong(&g_state, &expected, (int)to);
}

dsm_status_t dsm_rt_check(const char *fn)
{
    switch (dsm_rt_state()) {
    case DSM_RT_READY:
        return 0;
    case DSM_RT_NEW:
    case DSM_RT_STARTING:
        DSM_ERR("%s called before dsm_init", fn);
        return DSM_ESTATE;
    default:
        DSM_ERR("%s called after dsm_finalize", fn);
        return DSM_ESTATE;
    }
}

_Noreturn void dsm_rt_die(struct dsm_sline *l)
{
    char dir[sizeof(dsm_rt.socket_path)];
    char *slash;

    dsm_sline_emit(l);
    if (dsm_rt.standalone) {
        memcpy(dir, dsm_rt.socket_path, sizeof(dir));
        slash = strrchr(dir, '/');
        if (slash != NULL && slash != dir) {
            *slash = '\0';
            unlink(dsm_rt.socket_path);
            rmdir(dir);
        }
    }
    _exit(atomic_load(&dsm_rt.exit_status) ? atomic_load(&dsm_rt.exit_status) : 1);
}

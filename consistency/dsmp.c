/* dsmp.c - the registry of consistency protocols, and what they share. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dsm_log.h"
#include "dsmp.h"

static const struct dsmp_ops *const protocols[] = {
    &dsmp_sequential_ops,
    &dsmp_release_ops,
    &dsmp_causal_ops,
};

const struct dsmp_ops *dsmp_find(const char *name)
{
    for (size_t i = 0; i < sizeof(protocols) / sizeof(protocols[0]); i++)
        if (strcmp(protocols[i]->name, name) == 0)
            return protocols[i];
    return NULL;
}

const struct dsmp_ops *dsmp_at(size_t i)
{
    return i < sizeof(protocols) / sizeof(protocols[0]) ? protocols[i] : NULL;
}

void dsmp_invariant_failed(const char *name, const char *cond, const char *file, int line)
{
    DSM_ERR("invariant %s broken at %s:%d: %s", name, file, line, cond);
    abort();
}

void dsmp_fail(const struct dsmp_services *svc, dsm_status_t st, const char *fmt, ...)
{
    char why[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    if (svc->fail != NULL)
        svc->fail(svc->ctx, st, why);
    else
        DSM_ERR("%s", why);
}


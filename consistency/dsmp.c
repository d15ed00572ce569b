/* dsmp.c - the registry of consistency protocols. */
#include <string.h>

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

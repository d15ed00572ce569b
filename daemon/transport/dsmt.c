/* dsmt.c - the table of transports this build has, looked up by name (see dsmt.h). */
#include "dsmt.h"

#include <string.h>

static const struct dsmt_ops *const transports[] = {
    &dsmt_tcp_ops,
};

const struct dsmt_ops *dsmt_find(const char *name)
{
    size_t i;

    if (name == NULL)
        return NULL;
    for (i = 0; i < sizeof(transports) / sizeof(transports[0]); i++)
        if (strcmp(transports[i]->name, name) == 0)
            return transports[i];
    return NULL;
}

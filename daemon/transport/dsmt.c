/* dsmt.c - the table of transports this build has, looked up by name (see dsmt.h). */
#include "dsmt.h"

#include <string.h>

static const struct dsmt_ops *const transports[] = {
    &dsmt_tcp_ops,
#ifdef DSMT_HAVE_RDMA
    &dsmt_rdma_ops,
#endif
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

const struct dsmt_ops *dsmt_at(size_t i)
{
    return i < sizeof(transports) / sizeof(transports[0]) ? transports[i] : NULL;
}

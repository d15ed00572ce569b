/* info.c - the public getters (rank, job size, node, page size, model, version) and dsm_strerror. */
#include "api.h"

#include "runtime.h"

DSM_API int dsm_rank(void)
{
    dsm_status_t st = dsm_rt_check("dsm_rank");

    return st != 0 ? st : dsm_rt.rank;
}

DSM_API int dsm_nranks(void)
{
    dsm_status_t st = dsm_rt_check("dsm_nranks");

    return st != 0 ? st : dsm_rt.nranks;
}

DSM_API int dsm_node(void)
{
    dsm_status_t st = dsm_rt_check("dsm_node");

    return st != 0 ? st : dsm_rt.node;
}

DSM_API int dsm_nnodes(void)
{
    dsm_status_t st = dsm_rt_check("dsm_nnodes");

    return st != 0 ? st : dsm_rt.nnodes;
}

/* 0 (and a message) outside dsm_init..dsm_finalize. */
DSM_API size_t dsm_page_size(void)
{
    return dsm_rt_check("dsm_page_size") != 0 ? 0 : dsm_rt.vm.page_size;
}

DSM_API const char *dsm_consistency(void)
{
    return dsm_rt_check("dsm_consistency") != 0 ? NULL : dsm_rt.consistency;
}

/* Valid at any time, also before dsm_init. */
DSM_API const char *dsm_strerror(int err)
{
    return dsm_status_str(err);
}

/* Valid at any time; the library's own version, which the headers' may differ from. */
DSM_API const char *dsm_version(void)
{
    return DSM_VERSION_STRING;
}

/* dsm_status.c - names of the status codes (dsm_strerror is the public face of this). */
#include "dsm_status.h"

const char *dsm_status_str(dsm_status_t st)
{
    switch (st) {
    case DSM_OK:        return "success";
    case DSM_EINVAL:    return "invalid argument";
    case DSM_ENOMEM:    return "out of memory";
    case DSM_ENOSPACE:  return "global address space exhausted";
    case DSM_ENODAEMON: return "no dsm daemon reachable";
    case DSM_EPROTO:    return "malformed or unexpected message";
    case DSM_EPEER:     return "a peer node was lost";
    case DSM_ETIMEDOUT: return "timed out";
    case DSM_ESYS:      return "system call failed";
    case DSM_ESTATE:    return "call not valid in this state";
    case DSM_EBUSY:     return "address range already in use";
    case DSM_ECONFIG:   return "bad configuration";
    case DSM_ENOTSUP:   return "not supported";
    default:            return "unknown error";
    }
}

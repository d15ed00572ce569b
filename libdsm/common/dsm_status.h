/*
 * dsm_status.h - the one status type shared by libdsm and dsmd.
 *
 * 0 is success; failures are the negative codes of enum dsm_error in <dsm/dsm.h>.
 * Internal code returns `dsm_status_t`, logs once where the error is first known, and
 * propagates the code unchanged.
 */
#ifndef DSM_STATUS_H
#define DSM_STATUS_H

#include <dsm/dsm.h>

typedef int dsm_status_t;

/* Name of a status code; never NULL (unknown codes get a generic string). */
const char *dsm_status_str(dsm_status_t st);

#endif

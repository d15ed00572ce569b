/*
 * direct.h - the rank's side of the direct path: a read fault on a page homed on another
 * node, which its node's daemon offers in door[] (dsm_direct.h), is read straight from the
 * home's daemon by the faulting thread: two process wake-ups instead of four.
 */
#ifndef DSM_SRC_DIRECT_H
#define DSM_SRC_DIRECT_H

#include <stdint.h>

#include "dsm_status.h"

/* Connect to every other node's daemon (when the daemon offers direct reads), proving who
 * we are with macs our daemon makes over main_fd; map the frames writable. A node that
 * cannot be reached is left to the daemon's path (logged). 0, or a status (logged). */
dsm_status_t dsm_direct_start(int main_fd, int memfd, uint64_t space_bytes);
void dsm_direct_stop(void);

/* Read page from its home directly if its door is open. 1 when the page is in the frame,
 * mapped READ, its grant counted applied and DONE set; 2 the same, and the daemon waits for
 * it (the caller sends DSMC_DIRECT_DONE); 0 when not taken (ask the daemon); -1 when the
 * exchange with node *home failed after the claim (*why, errno), -2 when the page came but
 * could not be mapped (errno; dsm_vm_protect_why): in both the rank must end, its node's
 * daemon waits on the claim. Async-signal-safe. */
int dsm_direct_read(uint64_t page, int *home, const char **why);

#endif

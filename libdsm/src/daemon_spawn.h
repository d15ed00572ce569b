/*
 * daemon_spawn.h - a private daemon for a program started without dsmrun (one-rank job).
 *
 * dsm_init starts `dsmd --standalone --socket <private dir>/node-0.sock` with pipes on its
 * stdin and stdout, and waits (bounded) for its READY and MESH lines. The rank keeps the
 * write end of the daemon's stdin (close-on-exec): when the rank ends, however it ends, the
 * daemon sees end of file and exits. dsm_finalize closes it and reaps the daemon.
 *
 * dsmd is looked up as $DSM_DSMD, then <dir of libdsm.so>/../libexec/dsm/dsmd (installed)
 * and ../bin/dsmd (the build tree), then the configured install path (libexec/dsm/dsmd),
 * then $PATH. $DSM_CONSISTENCY and $DSM_SPACE_SIZE, when set, are passed on as
 * --consistency and --space-size.
 */
#ifndef DSM_DAEMON_SPAWN_H
#define DSM_DAEMON_SPAWN_H

#include <sys/types.h>
#include <sys/un.h>

#include "dsm_status.h"

struct dsm_daemon {
    pid_t pid;    /* 0 when there is none */
    int   in_fd;  /* write end of its stdin */
    int   out_fd; /* read end of its stdout */
    char  dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
    char  socket[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

/* Start the daemon and wait until it serves its socket. Returns 0 or a status (logged). */
dsm_status_t dsm_daemon_spawn(struct dsm_daemon *d);

/* Close its stdin, wait (bounded, then SIGKILL) for it to exit, remove the private dir. */
void dsm_daemon_reap(struct dsm_daemon *d);

#endif

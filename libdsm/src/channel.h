/*
 * channel.h - the rank's side of the rank <-> daemon channels (protocol: dsm_chan.h).
 *
 * Every thread that talks to the daemon has its own channel so requests never interleave:
 * the dsm_init thread uses the main channel; any other thread opens a thread channel at
 * its first fault or call (also from inside the SIGSEGV handler). Thread channels are kept
 * in a fixed table: a channel whose thread has exited is closed when another thread opens
 * one, and dsm_finalize closes them all.
 *
 * Everything here except dsm_channel_request and dsm_channel_close_threads is
 * async-signal-safe (socket, connect, setsockopt, sendmsg, recvmsg, close, atomics) and
 * logs nothing: callers report failures in their own context.
 */
#ifndef DSM_CHANNEL_H
#define DSM_CHANNEL_H

#include <stdbool.h>

#include "dsm_chan.h"
#include "dsm_status.h"

/* Threads of one rank that may hold a thread channel at the same time. */
#define DSM_MAX_THREAD_CHANNELS 4096

/*
 * Connect a close-on-exec AF_UNIX SOCK_SEQPACKET socket to `path`. Timeouts > 0 set
 * SO_RCVTIMEO / SO_SNDTIMEO in seconds. Returns the fd, or -errno.
 */
int dsm_channel_connect(const char *path, int rcv_timeout_s, int snd_timeout_s);

/* A zeroed message with the magic, `op` and this rank's number filled in. */
void dsm_channel_msg(struct dsmc_msg *m, enum dsmc_op op);

/*
 * Send one message (no SIGPIPE). Returns 0, DSM_ENODAEMON when the daemon has gone,
 * DSM_ETIMEDOUT when it stopped reading (SO_SNDTIMEO), or DSM_ESYS.
 */
dsm_status_t dsm_channel_send(int fd, const struct dsmc_msg *m);

/*
 * Receive one message. EINTR is retried; so is a receive timeout when `patient` (locks and
 * barriers may legitimately wait long; the daemon closing the socket still ends the wait).
 * With fd_out, one descriptor passed with SCM_RIGHTS is stored there (-1 if none); without,
 * a passed descriptor is closed. Returns 0; DSM_ENODAEMON on end of file or reset;
 * DSM_ETIMEDOUT; DSM_EPROTO for a message of the wrong size or magic, an unknown op or a
 * positive status; or DSM_ESYS. On success m->text is NUL-terminated.
 */
dsm_status_t dsm_channel_recv(int fd, struct dsmc_msg *m, bool patient, int *fd_out);

/*
 * One request/reply exchange on an open channel: send req, receive the reply, check that
 * its op is `reply_op`. Returns 0 with *rep filled (rep->status is the daemon's verdict)
 * or a transport status as dsm_channel_recv. `patient` as for dsm_channel_recv.
 */
dsm_status_t dsm_channel_exchange(int fd, const struct dsmc_msg *req, struct dsmc_msg *rep,
                                  enum dsmc_op reply_op, bool patient);

/* A channel borrowed for one exchange. */
struct dsm_chan {
    int  fd;
    bool temp; /* opened for this exchange only: released by closing it */
};

/*
 * Borrow the calling thread's channel, opening it if the thread has none. If the thread's
 * channel is already in the middle of an exchange (a signal handler interrupted it), a
 * temporary channel is opened instead. Returns 0, or a status: DSM_ENODAEMON (cannot
 * connect), DSM_ENOMEM (channel table full), or a HELLO failure.
 */
dsm_status_t dsm_channel_acquire(struct dsm_chan *ch);
void dsm_channel_release(struct dsm_chan *ch);

/* Make `fd` the calling thread's channel (the main channel, at dsm_init); -1 to forget it. */
void dsm_channel_bind_main(int fd);

/* Close every thread channel (dsm_finalize; no thread may use one afterwards). */
void dsm_channel_close_threads(void);

/*
 * One request from ordinary (non-signal) context on the calling thread's channel, waiting
 * as long as the daemon takes. Returns 0 with *rep filled (rep->status is the daemon's
 * verdict, for the caller to report), or a transport status, logged here naming `what`.
 */
dsm_status_t dsm_channel_request(const char *what, const struct dsmc_msg *req,
                                 struct dsmc_msg *rep, enum dsmc_op reply_op);

#endif

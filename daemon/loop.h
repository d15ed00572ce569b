/*
 * loop.h - the daemon's event loop: one epoll set, one thread, callbacks per fd.
 *
 * Besides fds, the loop runs "idle work" before it sleeps: a function that returns
 * non-zero while it has more to do (the daemon's queue of messages to itself). Nothing in
 * the daemon blocks except epoll_wait.
 */
#ifndef DSMD_LOOP_H
#define DSMD_LOOP_H

#include <stdint.h>

#include "dsm_status.h"

struct dsmd_loop;
typedef void (*dsmd_io_fn)(void *arg, uint32_t events);
typedef int (*dsmd_idle_fn)(void *arg);

dsm_status_t dsmd_loop_create(struct dsmd_loop **out);
void dsmd_loop_destroy(struct dsmd_loop *l);
/* Watch fd for `events` (EPOLLIN...). `arg` is passed to fn. */
dsm_status_t dsmd_loop_add(struct dsmd_loop *l, int fd, uint32_t events, dsmd_io_fn fn, void *arg);
dsm_status_t dsmd_loop_mod(struct dsmd_loop *l, int fd, uint32_t events, dsmd_io_fn fn, void *arg);
void dsmd_loop_del(struct dsmd_loop *l, int fd);
void dsmd_loop_set_idle(struct dsmd_loop *l, dsmd_idle_fn fn, void *arg);
/* Before sleeping, poll the fds for up to `us` microseconds while want(arg) says a reply is
 * due soon (a wake-up from sleep costs more than the reply takes on a fast link). */
void dsmd_loop_set_poll(struct dsmd_loop *l, dsmd_idle_fn want, void *arg, int us);
/* Run until dsmd_loop_stop(); returns its status. */
dsm_status_t dsmd_loop_run(struct dsmd_loop *l);
void dsmd_loop_stop(struct dsmd_loop *l, dsm_status_t st);
/* One round without sleeping (harnesses): idle work, ready events, idle work again.
 * Returns how much was done (0: nothing was ready). */
int dsmd_loop_poll(struct dsmd_loop *l);
/* Whether the loop has not been stopped. */
int dsmd_loop_running(const struct dsmd_loop *l);

#endif

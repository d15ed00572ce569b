/* loop.c - see loop.h. */
#include "loop.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "dsm_log.h"

struct dsmd_watch {
    dsmd_io_fn fn;
    void      *arg;
    int        fd;
};

struct dsmd_loop {
    int                epfd;
    int                running;
    dsm_status_t       status;
    dsmd_idle_fn       idle;
    void              *idle_arg;
    dsmd_idle_fn       want_poll;
    void              *poll_arg;
    int64_t            poll_ns;
    struct dsmd_watch **w;  /* indexed by fd */
    int                nw;
};

dsm_status_t dsmd_loop_create(struct dsmd_loop **out)
{
    struct dsmd_loop *l = calloc(1, sizeof(*l));

    if (l == NULL)
        return DSM_ENOMEM;
    l->running = 1;
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (l->epfd < 0) {
        DSM_ERR("epoll_create1: %s", strerror(errno));
        free(l);
        return DSM_ESYS;
    }
    *out = l;
    return DSM_OK;
}

void dsmd_loop_destroy(struct dsmd_loop *l)
{
    if (l == NULL)
        return;
    for (int i = 0; i < l->nw; i++)
        free(l->w[i]);
    free(l->w);
    close(l->epfd);
    free(l);
}

static struct dsmd_watch *watch_slot(struct dsmd_loop *l, int fd)
{
    if (fd >= l->nw) {
        int n = fd + 64;
        struct dsmd_watch **w = realloc(l->w, (size_t)n * sizeof(*w));

        if (w == NULL)
            return NULL;
        memset(w + l->nw, 0, (size_t)(n - l->nw) * sizeof(*w));
        l->w = w;
        l->nw = n;
    }
    if (l->w[fd] == NULL)
        l->w[fd] = calloc(1, sizeof(**l->w));
    return l->w[fd];
}

static dsm_status_t loop_ctl(struct dsmd_loop *l, int op, int fd, uint32_t events, dsmd_io_fn fn, void *arg)
{
    struct dsmd_watch *w = watch_slot(l, fd);
    struct epoll_event ev = { .events = events };

    if (w == NULL)
        return DSM_ENOMEM;
    w->fn = fn;
    w->arg = arg;
    w->fd = fd;
    ev.data.ptr = w;
    if (epoll_ctl(l->epfd, op, fd, &ev) < 0) {
        DSM_ERR("epoll_ctl(fd %d): %s", fd, strerror(errno));
        return DSM_ESYS;
    }
    return DSM_OK;
}

dsm_status_t dsmd_loop_add(struct dsmd_loop *l, int fd, uint32_t events, dsmd_io_fn fn, void *arg)
{
    return loop_ctl(l, EPOLL_CTL_ADD, fd, events, fn, arg);
}

dsm_status_t dsmd_loop_mod(struct dsmd_loop *l, int fd, uint32_t events, dsmd_io_fn fn, void *arg)
{
    return loop_ctl(l, EPOLL_CTL_MOD, fd, events, fn, arg);
}

void dsmd_loop_del(struct dsmd_loop *l, int fd)
{
    if (fd < 0 || fd >= l->nw || l->w[fd] == NULL)
        return;
    (void)epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
    l->w[fd]->fn = NULL; /* events already fetched for it this round are ignored */
}

void dsmd_loop_set_idle(struct dsmd_loop *l, dsmd_idle_fn fn, void *arg)
{
    l->idle = fn;
    l->idle_arg = arg;
}

void dsmd_loop_set_poll(struct dsmd_loop *l, dsmd_idle_fn want, void *arg, int us)
{
    l->want_poll = want;
    l->poll_arg = arg;
    l->poll_ns = (int64_t)us * 1000;
}

static int64_t mono_ns(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* Wait for events: poll first while a reply is due, then sleep. */
static int loop_wait(struct dsmd_loop *l, struct epoll_event *ev, int max)
{
    if (l->poll_ns > 0 && l->want_poll && l->want_poll(l->poll_arg)) {
        int64_t end = mono_ns() + l->poll_ns;

        do {
            int n = epoll_wait(l->epfd, ev, max, 0);

            if (n != 0)
                return n;
        } while (mono_ns() < end);
    }
    return epoll_wait(l->epfd, ev, max, -1);
}

/* Run idle work until it reports nothing left (or the loop stops); how many rounds ran. */
static int run_idle(struct dsmd_loop *l)
{
    int done = 0;

    while (l->running && l->idle && l->idle(l->idle_arg))
        done++;
    return done;
}

/* Call the watchers of n ready events, while the loop runs. */
static void dispatch(struct dsmd_loop *l, const struct epoll_event *ev, int n)
{
    for (int i = 0; i < n && l->running; i++) {
        struct dsmd_watch *w = ev[i].data.ptr;

        if (w->fn)
            w->fn(w->arg, ev[i].events);
    }
}

dsm_status_t dsmd_loop_run(struct dsmd_loop *l)
{
    struct epoll_event ev[64];

    while (l->running) {
        int n;

        run_idle(l);
        if (!l->running)
            break;
        n = loop_wait(l, ev, 64);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            DSM_ERR("epoll_wait: %s", strerror(errno));
            return DSM_ESYS;
        }
        dispatch(l, ev, n);
    }
    return l->status;
}

int dsmd_loop_poll(struct dsmd_loop *l)
{
    struct epoll_event ev[64];
    int n, done = run_idle(l);

    if (!l->running)
        return done;
    n = epoll_wait(l->epfd, ev, 64, 0);
    dispatch(l, ev, n);
    return done + run_idle(l) + (n > 0 ? n : 0);
}

int dsmd_loop_running(const struct dsmd_loop *l)
{
    return l->running;
}

void dsmd_loop_stop(struct dsmd_loop *l, dsm_status_t st)
{
    l->running = 0;
    l->status = st;
}

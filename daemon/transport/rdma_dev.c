/*
 * rdma_dev.c - the RDMA devices in use: one protection domain and completion channel per
 * device, and the node's frames registered once per device (see rdma.c).
 */
#include "rdma_int.h"

/* ---- devices ---------------------------------------------------------------------- */

void dsmt_rdma_rdev_free(struct rdma *t, struct rdev *d)
{
    if (d->watched && epoll_ctl(t->epfd, EPOLL_CTL_DEL, d->cc->fd, NULL) < 0)
        DSM_WARN("rdma: epoll_ctl(DEL, completion channel): %s", strerror(errno));
    if (d->cc != NULL && ibv_destroy_comp_channel(d->cc) != 0)
        DSM_WARN("rdma: ibv_destroy_comp_channel failed");
    if (d->frames_mr != NULL && ibv_dereg_mr(d->frames_mr) != 0)
        DSM_WARN("rdma: ibv_dereg_mr(frames) failed");
    if (d->pd != NULL && ibv_dealloc_pd(d->pd) != 0)
        DSM_WARN("rdma: ibv_dealloc_pd failed");
    free(d);
}

/* The device state for `verbs`: found, or made now (protection domain, frames registered,
 * completion channel in the epoll set). Checks cfg.device. NULL with the reason logged. */
struct rdev *dsmt_rdma_rdev_get(struct rdma *t, struct ibv_context *verbs)
{
    const char *name = ibv_get_device_name(verbs->device);
    size_t flen = (size_t)t->cfg.npages * t->cfg.page_size;
    struct epoll_event ev = { .events = EPOLLIN };
    struct rdev *d;

    for (d = t->devs; d != NULL; d = d->next)
        if (d->verbs == verbs)
            return d;
    if (t->cfg.device != NULL && t->cfg.device[0] != '\0' && strcmp(name, t->cfg.device) != 0) {
        DSM_ERR("rdma: the address is on RDMA device %s, not on %s (the device asked for)", name, t->cfg.device);
        return NULL;
    }
    d = calloc(1, sizeof(*d));
    if (d == NULL) {
        DSM_ERR("rdma: out of memory");
        return NULL;
    }
    d->verbs = verbs;
    d->pd = ibv_alloc_pd(verbs);
    if (d->pd == NULL) {
        DSM_ERR("rdma: ibv_alloc_pd(%s): %s", name, strerror(errno));
        goto err;
    }
    if (flen > 0) {
        d->frames_mr = ibv_reg_mr(d->pd, t->cfg.frames, flen, IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE);
        if (d->frames_mr == NULL) {
            DSM_ERR("rdma: cannot register the %zu bytes of frames with %s: %s%s", flen, name, strerror(errno),
                    errno == ENOMEM || errno == EPERM ? " (locked-memory limit? see ulimit -l)" : "");
            goto err;
        }
    }
    d->cc = ibv_create_comp_channel(verbs);
    if (d->cc == NULL || dsmt_rdma_set_nonblock(d->cc->fd) < 0) {
        DSM_ERR("rdma: completion channel on %s: %s", name, strerror(errno));
        goto err;
    }
    ev.data.ptr = d;
    if (epoll_ctl(t->epfd, EPOLL_CTL_ADD, d->cc->fd, &ev) < 0) {
        DSM_ERR("rdma: epoll_ctl(completion channel): %s", strerror(errno));
        goto err;
    }
    d->watched = true;
    d->next = t->devs;
    t->devs = d;
    DSM_INFO("rdma: using device %s (%zu bytes of frames registered)", name, flen);
    return d;

err:
    dsmt_rdma_rdev_free(t, d);
    return NULL;
}


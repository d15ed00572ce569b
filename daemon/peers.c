/*
 * peers.c - the other daemons: sending, receiving and dispatching protocol messages.
 *
 * Outgoing messages are encoded here and handed to the transport; a message to this
 * node itself is encoded too and queued, then delivered from the event loop's idle work,
 * so a home serving its own ranks runs the same code, in the same order, as for a remote
 * node. Incoming bytes are decoded and checked (wire.c) before anyone reads a field: a
 * peer that sends something malformed is dropped, and since its pages are then out of
 * reach, the job is aborted with an error naming it.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "dsm_log.h"
#include "dsmd.h"

#define CONNECT_TIMEOUT_MS 15000

struct dsmd_selfmsg {
    struct dsmd_selfmsg *next;
    uint64_t attach;
    size_t  len;
    uint8_t buf[];
};

struct dsmd_counters *dsmd_counters_for(struct dsmd *d, int origin)
{
    int l = origin - d->cfg.first_rank;

    if (d->cfg.local_ranks == 0)
        return &d->node_c;
    return &d->ranks[l >= 0 && l < d->cfg.local_ranks ? l : 0].c;
}

/* The consistency model's own messages. */
static int to_protocol(int type)
{
    return (type >= DSMW__TYPE__READ_REQ && type <= DSMW__TYPE__EVICTED) ||
           (type >= DSMW__TYPE__PAGE_GET && type <= DSMW__TYPE__UPDATE);
}

/* Route a checked message to the module that owns its type. */
static void abort_text(struct dsmd *d, int status, int from_node, const char *text);

static dsm_status_t dispatch(struct dsmd *d, int src, const dsmw_msg_t *m, int framed)
{
    if (framed && m->type != DSMW__TYPE__GRANT && m->type != DSMW__TYPE__FETCH_REPLY &&
        m->type != DSMW__TYPE__PAGE) {
        DSM_ERR("node %d sent a page with a %s", src, dsmw_type_name(m->type));
        return DSM_EPROTO;
    }
    if (to_protocol(m->type))
        return d->pops->message(d->p, src, m, framed);
    if ((m->type >= DSMW__TYPE__LOCK_REQ && m->type <= DSMW__TYPE__RANK_ABSENT) ||
        (m->type >= DSMW__TYPE__COND_WAIT && m->type <= DSMW__TYPE__COND_WAKE))
        return dsmd_sync_message(d, src, m);
    if (m->type >= DSMW__TYPE__ALLOC_REQ && m->type <= DSMW__TYPE__FREE_REQ)
        return dsmd_alloc_message(d, src, m);
    if (m->type == DSMW__TYPE__ATOMIC_REQ || m->type == DSMW__TYPE__ATOMIC_REPLY)
        return dsmd_atomic_message(d, src, m);
    if (m->type >= DSMW__TYPE__HOME_CLAIM && m->type <= DSMW__TYPE__HOME_ACK)
        return dsmd_ft_message(d, src, m);
    if (m->type == DSMW__TYPE__CLOCK_REQ || m->type == DSMW__TYPE__CLOCK_REPLY)
        return dsmd_trace_clock_message(d, src, m);
    if (m->type == DSMW__TYPE__FS_WROTE)
        return dsmd_fs_message(d, src, m);
    if (m->type == DSMW__TYPE__DIRECT_PORT)
        return (int)m->node == src ? dsmd_direct_message(d, src, m) : DSM_EPROTO;
    if (m->type == DSMW__TYPE__HEARTBEAT)
        return DSM_OK; /* its arrival was all it had to say (dsmd_watchdog_heard) */
    if (m->type == DSMW__TYPE__ABORT) {
        abort_text(d, m->status ? m->status : DSM_EPEER, src, m->text && *m->text ? m->text : "aborted by a peer");
        return DSM_OK;
    }
    return DSM_EPROTO;
}

static void on_message(void *ctx, int node, const uint8_t *msg, size_t len, uint64_t page)
{
    struct dsmd *d = ctx;
    dsmw_msg_t *m;
    const char *why;
    int framed = page != DSMT_NO_PAGE;

    if (d->aborting)
        return;
    dsmd_watchdog_heard(d, node);
    if (dsmw_decode(msg, len, &d->limits, &m, &why) != DSM_OK) {
        DSM_ERR("malformed message from node %d (%s): %s", node, d->peer_addr[node], why);
        d->tops->drop(d->t, node, why);
        return;
    }
    /* heartbeats and aborts go around dsmd_send (uncounted): counted here neither, so the
     * k-th message counted each way is the same one (trace.c) */
    if (d->trace != NULL && node != d->cfg.node && m->type != DSMW__TYPE__HEARTBEAT && m->type != DSMW__TYPE__ABORT)
        dsmd_trace_message(d, 0, node, m, len + (framed ? d->page_size : 0));
    /* what every mesh says at start-up (a direct listener's port, clocks) or a rank's absence
     * is not the job doing something here (main.c: a memory node's quiet exit) */
    if (m->type != DSMW__TYPE__HEARTBEAT && m->type != DSMW__TYPE__RANK_ABSENT &&
        m->type != DSMW__TYPE__CLOCK_REQ && m->type != DSMW__TYPE__CLOCK_REPLY &&
        m->type != DSMW__TYPE__DIRECT_PORT)
        d->job_heard = 1;
    if (framed && page != m->page)
        why = "frame does not match the message's page";
    else if ((to_protocol(m->type) || m->type == DSMW__TYPE__ATOMIC_REPLY) &&
             dsmd_direct_hold(d, node, m, msg, len, framed))
        why = NULL; /* delivered when the rank's direct read of the page ends (direct.c) */
    else if (dispatch(d, node, m, framed) != DSM_OK)
        why = "message out of place";
    else
        why = NULL;
    if (why != NULL) {
        DSM_ERR("bad %s from node %d (%s): %s", dsmw_type_name(m->type), node, d->peer_addr[node], why);
        d->tops->drop(d->t, node, why);
    }
    dsmw_free(m);
}

void dsmd_peers_redeliver(struct dsmd *d, int src, const uint8_t *buf, size_t len)
{
    on_message(d, src, buf, len, DSMT_NO_PAGE);
}

static void on_peer_up(void *ctx, int node)
{
    struct dsmd *d = ctx;

    if (d->peer_up[node])
        return;
    d->peer_up[node] = 1;
    d->npeers_up++;
    dsmd_watchdog_heard(d, node);
    DSM_DEBUG("peer node %d up", node);
    dsmd_direct_peer_up(d, node);
    if (d->npeers_up == d->cfg.nnodes - 1 && !d->mesh_done) {
        d->mesh_done = 1;
        dsmd_announce(d, "MESH %d", d->cfg.node);
        dsmd_trace_mesh_up(d);
    }
}

static void on_peer_lost(void *ctx, int node, const char *reason)
{
    struct dsmd *d = ctx;

    /* Once every rank of the job has finalized, peers leave as they please. A node whose
     * ranks have finalized may also see another node leave before node 0's release reaches
     * it: that node can only have left after the release. Only node 0 going away then is
     * a failure (the release would never come); node 0 itself aborts on any real loss. */
    if (d->finishing || (d->fini_sent && node != 0 && d->cfg.node != 0)) {
        DSM_DEBUG("node %d left: %s", node, reason);
        if (d->peer_up[node]) {
            d->peer_up[node] = 0;
            d->peers_left++;
        }
        dsmd_maybe_exit(d);
        return;
    }
    if (d->cfg.local_ranks == 0 && node != 0) {
        /* a memory node cannot tell a peer that left after node 0's release (which may
         * reach it later) from one that failed; node 0 sees a failure too and sends ABORT */
        DSM_DEBUG("node %d left: %s", node, reason);
        if (d->peer_up[node]) {
            d->peer_up[node] = 0;
            d->peers_left++;
        }
        return;
    }
    if (d->cfg.local_ranks == 0 && !dsmd_sync_absent_from(d, 0)) {
        /* node 0 gone before its release: the job cannot end (unless no rank of it ran) */
        dsmd_abort(d, DSM_EPEER, "lost node 0 (dsmd at %s): %s", d->peer_addr && d->peer_addr[0] ?
                   d->peer_addr[0] : "?", reason);
        return;
    }
    if (!dsmd_clients_any_joined(d)) {
        /* No rank of ours is in the job (yet): a job of programs that never call dsm_init
         * ends with daemons leaving in any order. A rank that joins later fails the job
         * then (clients.c); a node whose ranks are in it has failed it already. */
        DSM_DEBUG("node %d left before any rank of this node joined: %s", node, reason);
        if (d->lost_early < 0)
            d->lost_early = node;
        if (d->peer_up[node]) {
            d->peer_up[node] = 0;
            d->peers_left++;
        }
        return;
    }
    dsmd_abort(d, DSM_EPEER, "lost node %d (dsmd at %s): %s", node,
               d->peer_addr && d->peer_addr[node] ? d->peer_addr[node] : "?", reason);
}

static void transport_ready(void *arg, uint32_t events)
{
    struct dsmd *d = arg;

    (void)events;
    if (d->tops->progress(d->t) != DSM_OK && !d->aborting)
        dsmd_abort(d, DSM_ESYS, "transport %s failed", d->tops->name);
}

/* Idle work: deliver one queued message to self; once none is left, send the protection
 * changes gathered meanwhile (dsmd_pages_flush). Returns non-zero while work remains. */
static int selfq_run(void *arg)
{
    struct dsmd *d = arg;
    struct dsmd_selfmsg *s = d->selfq_head;

    if (s != NULL) {
        d->selfq_head = s->next;
        if (d->selfq_head == NULL)
            d->selfq_tail = NULL;
        on_message(d, d->cfg.node, s->buf, s->len, s->attach);
        free(s);
        if (d->selfq_head != NULL)
            return 1;
    }
    dsmd_pages_flush(d);
    return d->selfq_head != NULL;
}

/* Whether a message's data is the write notices of a synchronisation (the model's fill
 * hooks: release fills them, the other models send none). */
static int carries_notices(int type)
{
    switch (type) {
    case DSMW__TYPE__UNLOCK:
    case DSMW__TYPE__LOCK_GRANT:
    case DSMW__TYPE__BARRIER_ARRIVE:
    case DSMW__TYPE__BARRIER_RELEASE:
    case DSMW__TYPE__FINI_ARRIVE:
    case DSMW__TYPE__FINI_RELEASE:
        return 1;
    default:
        return 0;
    }
}

dsm_status_t dsmd_send(struct dsmd *d, int node, dsmw_msg_t *m, uint64_t attach)
{
    uint8_t buf[DSMW_MAX_MSG];
    size_t len, bytes;
    dsm_status_t st;
    struct dsmd_counters *k;

    if (dsmw_encode(m, buf, sizeof(buf), &len) != DSM_OK) {
        DSM_ERR("%s does not fit in a message", dsmw_type_name(m->type));
        return DSM_EINVAL;
    }
    if (d->direct != NULL && (m->type == DSMW__TYPE__GRANT || m->type == DSMW__TYPE__PAGE) && node != d->cfg.node &&
        dsmd_direct_answer(d, node, m))
        return DSM_OK; /* the page went to the rank that asked: its node lands it (direct.c) */
    if (node == d->cfg.node) {
        /* the frame is already where the receiver wants it: it is the same memory */
        struct dsmd_selfmsg *s = malloc(sizeof(*s) + len);

        if (s == NULL) {
            dsmd_abort(d, DSM_ENOMEM, "out of memory queueing a message");
            return DSM_ENOMEM;
        }
        s->next = NULL;
        s->attach = attach;
        s->len = len;
        memcpy(s->buf, buf, len);
        if (d->selfq_tail)
            d->selfq_tail->next = s;
        else
            d->selfq_head = s;
        d->selfq_tail = s;
        return DSM_OK;
    }
    st = d->tops->send(d->t, node, buf, len, attach);
    if (st != DSM_OK)
        return st; /* on_peer_lost has aborted the job */
    bytes = len + (attach != DSMT_NO_PAGE ? d->page_size : 0);
    k = dsmd_counters_for(d, (int)m->origin);
    k->messages_sent++;
    k->bytes_sent += bytes;
    if (carries_notices(m->type))
        k->notice_bytes += m->data.len;
    d->node_messages++;
    d->node_bytes += bytes;
    if (d->trace != NULL)
        dsmd_trace_message(d, 1, node, m, bytes);
    if (d->hot != NULL)
        dsmd_hot_sent(d, m, bytes);
    return DSM_OK;
}

void dsmd_broadcast(struct dsmd *d, dsmw_msg_t *m)
{
    for (int n = 0; n < d->cfg.nnodes; n++)
        dsmd_send(d, n, m, DSMT_NO_PAGE);
}

/* Stop the job: tell the peers (unless from_node says a peer told us), the local ranks and
 * dsmrun. dsmrun reads "ERROR <text>" from the node where the failure was seen and
 * "ERROR from node N: <text>" from the nodes that only followed it, so it can report the
 * cause first and fold the rest into one line. */
static void abort_text(struct dsmd *d, int status, int from_node, const char *text)
{
    uint8_t buf[512];
    size_t len = 0;
    dsmw_msg_t m;

    if (d->aborting)
        return;
    d->aborting = 1;
    DSM_ERR("%s", text);
    dsmw_init(&m, DSMW__TYPE__ABORT);
    m.status = status;
    m.text = (char *)text;
    m.origin = (uint32_t)d->cfg.first_rank;
    if (dsmw_encode(&m, buf, sizeof(buf), &len) == DSM_OK) {
        /* best effort, and passed on by whoever hears it: peers that are gone are gone */
        for (int n = 0; d->t && n < d->cfg.nnodes; n++)
            if (n != d->cfg.node && d->peer_up[n])
                (void)d->tops->send(d->t, n, buf, len, DSMT_NO_PAGE);
    }
    dsmd_abort_ranks(d, status, text);
    if (from_node < 0)
        dsmd_announce(d, "ERROR %s", text);
    else
        dsmd_announce(d, "ERROR from node %d: %s", from_node, text);
    dsmd_loop_stop(d->loop, status);
}

void dsmd_abort(struct dsmd *d, int status, const char *fmt, ...)
{
    char text[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    abort_text(d, status, -1, text);
}

void dsmd_abort_rank(struct dsmd *d, int rank, const char *kind, int status, const char *fmt, ...)
{
    char text[256];
    va_list ap;

    if (d->aborting)
        return;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    dsmd_announce(d, "CULPRIT %d %s %s", rank, kind, text);
    abort_text(d, status, -1, text);
}

dsm_status_t dsmd_peers_init(struct dsmd *d)
{
    struct dsmt_config tc = {
        .self = d->cfg.node, .nnodes = d->cfg.nnodes, .frames = d->frames, .npages = d->npages,
        .page_size = d->page_size, .max_msg = DSMW_MAX_MSG, .job_id = d->cfg.job_id,
        .device = d->cfg.device, .poll_us = d->cfg.poll_us,
    };
    _Static_assert(sizeof(tc.secret) == sizeof(d->cfg.secret), "one secret size");
    memcpy(tc.secret, d->cfg.secret, sizeof(tc.secret));
    struct dsmt_handler h = { .ctx = d, .on_peer_up = on_peer_up, .on_message = on_message,
                              .on_peer_lost = on_peer_lost };
    dsm_status_t st;

    d->peer_up = calloc((size_t)d->cfg.nnodes, sizeof(*d->peer_up));
    d->peer_addr = calloc((size_t)d->cfg.nnodes, sizeof(*d->peer_addr));
    if (d->peer_up == NULL || d->peer_addr == NULL)
        return DSM_ENOMEM;
    dsmd_loop_set_idle(d->loop, selfq_run, d);
    if (d->tops == NULL) /* preset only by a harness that brings its own transport */
        d->tops = dsmt_find(d->cfg.transport);
    if (d->tops == NULL) {
        DSM_ERR("unknown transport '%s'", d->cfg.transport);
        return DSM_ECONFIG;
    }
    st = d->tops->create(&tc, &h, &d->t);
    if (st != DSM_OK)
        return st;
    st = d->tops->listen(d->t, d->cfg.listen, d->listen_addr, sizeof(d->listen_addr));
    if (st != DSM_OK)
        return st;
    return dsmd_loop_add(d->loop, d->tops->event_fd(d->t), EPOLLIN, transport_ready, d);
}

dsm_status_t dsmd_peers_connect(struct dsmd *d)
{
    if (d->cfg.nnodes == 1 && !d->mesh_done) {
        d->mesh_done = 1;
        dsmd_announce(d, "MESH %d", d->cfg.node);
    }
    for (int n = 0; n < d->cfg.node; n++) {
        dsm_status_t st = d->tops->connect(d->t, n, d->peer_addr[n], CONNECT_TIMEOUT_MS);

        if (st != DSM_OK) {
            dsmd_abort(d, DSM_EPEER, "cannot connect to node %d at %s", n, d->peer_addr[n]);
            return st;
        }
    }
    /* connecting may have completed hellos inline; pick up whatever is ready */
    return d->tops->progress(d->t);
}

void dsmd_peers_fini(struct dsmd *d)
{
    struct dsmd_selfmsg *s;

    while ((s = d->selfq_head) != NULL) {
        d->selfq_head = s->next;
        free(s);
    }
    if (d->t)
        d->tops->destroy(d->t);
    d->t = NULL;
    for (int n = 0; d->peer_addr && n < d->cfg.nnodes; n++)
        free(d->peer_addr[n]);
    free(d->peer_addr);
    free(d->peer_up);
    d->peer_addr = NULL;
    d->peer_up = NULL;
}

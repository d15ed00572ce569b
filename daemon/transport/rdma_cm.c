/*
 * rdma_cm.c - connection set-up through librdmacm's events (resolve, connect, accept, the
 * hellos and refusals, disconnects) and the deadline timer of the RDMA transport (see
 * rdma.c for the life of a connection).
 */
#include "rdma_int.h"

/* ---- connection set-up (CM events) ------------------------------------------------ */

/* Why a hello is unacceptable, or NULL (then c's peer nonce is taken from it, and *node
 * is the sender). c is the outgoing connection it answers, or NULL for a connect request;
 * *code gets the refusal to send back. */
static const char *hello_problem(struct rdma *t, struct conn *c, const uint8_t *b, size_t len, int *node,
                                 uint8_t *nonce, char *why, size_t wl, int *code)
{
    const char *bad = dsmt_rdma_hello_check(&t->geom, c != NULL ? c->node : -1, b, len, node, nonce, code, why, wl);

    if (bad != NULL)
        return bad;
    *code = DSMT_RDMA_REFUSE_DUPLICATE;
    if (c == NULL && t->peer[*node].st != DSMT_P_NONE) {
        snprintf(why, wl, "bad hello: node %d is already connected or was lost", *node);
        return why;
    }
    return NULL;
}

static const char *refusal_text(uint32_t code)
{
    switch (code) {
    case DSMT_RDMA_REFUSE_VERSION: return "unsupported protocol version";
    case DSMT_RDMA_REFUSE_JOB: return "it belongs to another job";
    case DSMT_RDMA_REFUSE_GEOMETRY: return "the job geometry differs";
    case DSMT_RDMA_REFUSE_NODE: return "this node may not connect to it";
    case DSMT_RDMA_REFUSE_DUPLICATE: return "this node is connected already or was lost";
    case DSMT_RDMA_REFUSE_RESOURCES: return "it could not set the connection up";
    default: return "for an unknown reason";
    }
}

/* Connection parameters carrying `hello` (our hello with c's nonce) as private data. */
static void conn_param(struct rdma_conn_param *p, const uint8_t *hello)
{
    memset(p, 0, sizeof(*p));
    p->private_data = hello;
    p->private_data_len = DSMT_RDMA_HELLO_LEN;
    p->responder_resources = 0; /* no RDMA READ or atomics towards us */
    p->initiator_depth = 0;
    p->retry_count = 7;
    p->rnr_retry_count = 0;     /* credits guarantee a posted receive: an RNR is a bug */
}

/* A fresh nonce for connection c, and our hello carrying it into hello[]. 0 or -1 (logged). */
static int hello_for(struct rdma *t, struct conn *c, uint8_t *hello)
{
    if (getrandom(c->my_nonce, sizeof(c->my_nonce), 0) != (ssize_t)sizeof(c->my_nonce)) {
        DSM_ERR("rdma: getrandom: %s", strerror(errno));
        return -1;
    }
    dsmt_rdma_hello_encode(&t->geom, c->my_nonce, hello);
    return 0;
}

/* Refuse a connect request with our magic and `code`, then let the id go. */
static void refuse(struct rdma_cm_id *id, int code)
{
    uint8_t rej[DSMT_RDMA_REJ_LEN];

    dsm_put32(rej, DSMT_RDMA_MAGIC);
    dsm_put32(rej + 4, (uint32_t)code);
    if (rdma_reject(id, rej, sizeof(rej)) != 0)
        DSM_DEBUG("rdma: rdma_reject: %s", strerror(errno));
    if (rdma_destroy_id(id) != 0)
        DSM_WARN("rdma: rdma_destroy_id: %s", strerror(errno));
}


/* A connect request on the listener: check the hello, then accept with ours or refuse. The
 * connection stands for the node it names only once that node's proof (AUTH) checks out. */
static void on_request(struct rdma *t, const struct cm_ev *e)
{
    char where[80], why[200] = "cannot make a nonce", buf[160];
    uint8_t hello[DSMT_RDMA_HELLO_LEN], nonce[DSMT_RDMA_NONCE_LEN];
    struct rdma_conn_param p;
    const char *problem;
    struct conn *c;
    int code, node;

    dsmt_addr_fmt(rdma_get_peer_addr(e->id), where, sizeof(where));
    problem = hello_problem(t, NULL, e->pdata, e->plen, &node, nonce, buf, sizeof(buf), &code);
    if (problem != NULL) {
        DSM_WARN("rdma: dropped connection from %s: %s", where, problem);
        refuse(e->id, code);
        return;
    }
    c = dsmt_rdma_conn_new(t, node, false);
    if (c == NULL) {
        DSM_ERR("rdma: out of memory accepting node %d", node);
        refuse(e->id, DSMT_RDMA_REFUSE_RESOURCES);
        return;
    }
    c->id = e->id;
    c->id->context = c;
    snprintf(c->where, sizeof(c->where), "%s", where);
    c->state = C_ACCEPTING;
    c->timeout_ms = ACCEPT_MS;
    c->deadline = dsmt_rdma_now_ms() + ACCEPT_MS;
    memcpy(c->peer_nonce, nonce, sizeof(c->peer_nonce));
    if (hello_for(t, c, hello) < 0 || dsmt_rdma_conn_resources(t, c, why, sizeof(why)) < 0) {
        uint8_t rej[DSMT_RDMA_REJ_LEN];

        dsm_put32(rej, DSMT_RDMA_MAGIC);
        dsm_put32(rej + 4, DSMT_RDMA_REFUSE_RESOURCES);
        (void)rdma_reject(c->id, rej, sizeof(rej));
        dsmt_rdma_conn_kill(t, c, DSM_LOG_ERROR, why);
        return;
    }
    conn_param(&p, hello);
    if (rdma_accept(c->id, &p) != 0) {
        dsmt_rdma_conn_kill_errno(t, c, "rdma_accept", errno);
        return;
    }
    dsmt_rdma_timer_arm(t);
}

/* Start one attempt of an outgoing connection: a fresh id, address resolution. 0, or -1
 * with `why` filled. */
int dsmt_rdma_connect_try(struct rdma *t, struct conn *c, char *why, size_t wl)
{
    uint64_t now = dsmt_rdma_now_ms();
    int ms = c->deadline > now + RESOLVE_MS ? RESOLVE_MS : (int)(c->deadline > now ? c->deadline - now : 1);

    if (rdma_create_id(t->ec, &c->id, c, RDMA_PS_TCP) != 0) {
        c->id = NULL;
        snprintf(why, wl, "rdma_create_id: %s", strerror(errno));
        return -1;
    }
    if (rdma_resolve_addr(c->id, t->have_src ? (struct sockaddr *)&t->src : NULL, (struct sockaddr *)&c->dst,
                          ms > 0 ? ms : 1) != 0) {
        snprintf(why, wl, "rdma_resolve_addr(%s): %s", c->where, strerror(errno));
        return -1;
    }
    c->state = C_RESOLVING;
    return 0;
}

/* An outgoing attempt failed with `why`: try again later if it may be that nobody listens yet
 * and time is left, else give up (the peer is lost). */
static void connect_failed(struct rdma *t, struct conn *c, const char *why, bool retry)
{
    char reason[300];

    snprintf(c->why, sizeof(c->why), "%s", why);
    if (retry && c->outgoing && dsmt_rdma_now_ms() + RETRY_MS < c->deadline) {
        dsmt_rdma_conn_release(c);
        c->state = C_RETRY;
        c->retry_at = dsmt_rdma_now_ms() + RETRY_MS;
        return;
    }
    if (c->outgoing)
        snprintf(reason, sizeof(reason), "could not connect to %s within %d ms: %s", c->where, c->timeout_ms, why);
    else
        snprintf(reason, sizeof(reason), "connection set-up failed: %s", why);
    dsmt_rdma_conn_kill(t, c, DSM_LOG_WARN, reason);
}

/* The connection is established. Connecting side: check the answer, then prove ourselves
 * (AUTH). Accepting side: wait for that proof. */
static void on_established(struct rdma *t, struct conn *c, const struct cm_ev *e)
{
    const char *problem;
    char why[160];
    int code, rc, node;

    c->connected = true;
    if (!c->outgoing) {
        /* the peer's AUTH and KEYS can be in (and the peer up) before this event is */
        if (c->state == C_ACCEPTING)
            c->state = C_KEYS;
        return;
    }
    c->state = C_KEYS;
    problem = hello_problem(t, c, e->pdata, e->plen, &node, c->peer_nonce, why, sizeof(why), &code);
    if (problem != NULL) {
        dsmt_rdma_conn_kill(t, c, DSM_LOG_WARN, problem);
        return;
    }
    if ((rc = dsmt_rdma_send_auth(t, c)) != 0)
        dsmt_rdma_conn_kill_errno(t, c, "ibv_post_send(AUTH)", rc);
}

/* Handle one (acknowledged) CM event. */
static void cm_handle(struct rdma *t, const struct cm_ev *e)
{
    struct conn *c = e->id->context;
    char why[200];

    if (e->type == RDMA_CM_EVENT_CONNECT_REQUEST) {
        if (t->closing)
            refuse(e->id, DSMT_RDMA_REFUSE_RESOURCES); /* shutting down (drain_sends) */
        else
            on_request(t, e);
        return;
    }
    if (e->id == t->lid) {
        if (e->type == RDMA_CM_EVENT_DEVICE_REMOVAL)
            DSM_ERR("rdma: the listener's RDMA device was removed");
        return;
    }
    if (c == NULL || c->state == C_DEAD)
        return;
    switch (e->type) {
    case RDMA_CM_EVENT_ADDR_RESOLVED: {
        uint64_t now = dsmt_rdma_now_ms();
        int ms = c->deadline > now + RESOLVE_MS ? RESOLVE_MS : (int)(c->deadline > now ? c->deadline - now : 1);
        if (rdma_resolve_route(c->id, ms) != 0) {
            snprintf(why, sizeof(why), "rdma_resolve_route: %s", strerror(errno));
            connect_failed(t, c, why, false);
        }
        break;
    }
    case RDMA_CM_EVENT_ROUTE_RESOLVED: {
        struct rdma_conn_param p;
        uint8_t hello[DSMT_RDMA_HELLO_LEN];
        if (dsmt_rdma_conn_resources(t, c, why, sizeof(why)) < 0) {
            connect_failed(t, c, why, false);
            break;
        }
        if (hello_for(t, c, hello) < 0) {
            connect_failed(t, c, "cannot make a nonce", false);
            break;
        }
        conn_param(&p, hello);
        if (rdma_connect(c->id, &p) != 0) {
            snprintf(why, sizeof(why), "rdma_connect: %s", strerror(errno));
            connect_failed(t, c, why, false);
            break;
        }
        c->state = C_CONNECTING;
        break;
    }
    case RDMA_CM_EVENT_ESTABLISHED:
        on_established(t, c, e);
        break;
    case RDMA_CM_EVENT_REJECTED:
        if (c->connected) {
            /* the other side gave up on it before its CM saw it established */
            snprintf(why, sizeof(why), "torn down by the peer (rejected after it was established, status %d)",
                     e->status);
            dsmt_rdma_conn_kill(t, c, DSM_LOG_WARN, why);
        } else if (e->plen >= DSMT_RDMA_REJ_LEN && dsm_get32(e->pdata) == DSMT_RDMA_MAGIC) {
            snprintf(why, sizeof(why), "refused by the peer: %s", refusal_text(dsm_get32(e->pdata + 4)));
            connect_failed(t, c, why, false);
        } else {
            snprintf(why, sizeof(why), "rejected (status %d: nobody listens there?)", e->status);
            connect_failed(t, c, why, true);
        }
        break;
    case RDMA_CM_EVENT_UNREACHABLE:
        snprintf(why, sizeof(why), "unreachable (status %d)", e->status);
        connect_failed(t, c, why, !c->connected);
        break;
    case RDMA_CM_EVENT_ADDR_ERROR:
    case RDMA_CM_EVENT_ROUTE_ERROR:
    case RDMA_CM_EVENT_CONNECT_ERROR:
        snprintf(why, sizeof(why), "%s (status %d)", rdma_event_str(e->type), e->status);
        connect_failed(t, c, why, false);
        break;
    case RDMA_CM_EVENT_DISCONNECTED:
        /* The CM's event and the queue pair's completions come by different paths: deliver
         * what the peer sent before it left (its last messages, e.g. the job's release)
         * before taking the disconnect, as TCP delivers data before the FIN. */
        dsmt_rdma_conn_poll(t, c, INT_MAX);
        c->connected = false; /* nothing left to disconnect */
        if (c->state != C_DEAD)
            dsmt_rdma_conn_kill(t, c, DSM_LOG_INFO, "disconnected by the peer");
        break;
    case RDMA_CM_EVENT_DEVICE_REMOVAL:
        dsmt_rdma_conn_kill(t, c, DSM_LOG_ERROR, "the RDMA device was removed");
        break;
    default:
        DSM_DEBUG("rdma: %s for %s ignored", rdma_event_str(e->type), c->where);
        break;
    }
}

/* Take every pending CM event, acknowledging each before it is handled. */
void dsmt_rdma_cm_drain(struct rdma *t)
{
    struct rdma_cm_event *ev;

    while (rdma_get_cm_event(t->ec, &ev) == 0) {
        struct cm_ev e = { .type = ev->event, .status = ev->status, .id = ev->id };

        if ((ev->event == RDMA_CM_EVENT_CONNECT_REQUEST || ev->event == RDMA_CM_EVENT_ESTABLISHED ||
             ev->event == RDMA_CM_EVENT_REJECTED) && ev->param.conn.private_data != NULL) {
            e.plen = ev->param.conn.private_data_len; /* a u8: fits PDATA_MAX */
            memcpy(e.pdata, ev->param.conn.private_data, e.plen);
        }
        if (rdma_ack_cm_event(ev) != 0)
            DSM_WARN("rdma: rdma_ack_cm_event: %s", strerror(errno));
        cm_handle(t, &e);
    }
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
        DSM_WARN("rdma: rdma_get_cm_event: %s", strerror(errno));
}

/* ---- timers ----------------------------------------------------------------------- */

/* Arm the timerfd for the earliest retry or deadline; disarm if none. */
void dsmt_rdma_timer_arm(struct rdma *t)
{
    uint64_t when = UINT64_MAX;

    for (struct conn *c = t->conns; c != NULL; c = c->next) {
        if (c->state == C_RETRY && c->retry_at < when)
            when = c->retry_at;
        if (c->state != C_UP && c->state != C_DEAD && c->deadline < when)
            when = c->deadline;
    }
    dsmt_timer_set("rdma", t->tfd, when, &t->armed_for);
}

/* Retry what is due; give up on connections past their deadline. */
void dsmt_rdma_timer_fire(struct rdma *t)
{
    uint64_t ticks, now = dsmt_rdma_now_ms();
    char why[320];

    if (read(t->tfd, &ticks, sizeof(ticks)) < 0 && errno != EAGAIN)
        DSM_WARN("rdma: read(timerfd): %s", strerror(errno));
    t->armed_for = UINT64_MAX;
    for (struct conn *c = t->conns; c != NULL; c = c->next) {
        if (c->state == C_UP || c->state == C_DEAD)
            continue;
        if (c->deadline <= now) {
            if (c->outgoing)
                snprintf(why, sizeof(why), "could not connect to %s within %d ms: %s", c->where, c->timeout_ms,
                         c->why[0] ? c->why : "no answer");
            else
                snprintf(why, sizeof(why), "not up within %d ms of its connect request", c->timeout_ms);
            dsmt_rdma_conn_kill(t, c, DSM_LOG_WARN, why);
        } else if (c->state == C_RETRY && c->retry_at <= now && dsmt_rdma_connect_try(t, c, why, sizeof(why)) < 0) {
            connect_failed(t, c, why, false);
        }
    }
}

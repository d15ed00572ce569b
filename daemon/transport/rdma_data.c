/*
 * rdma_data.c - the RDMA transport's data path: posting SENDs and frame WRITEs within the
 * credits and send slots, the out queue of what must wait for them, and the receive side
 * (completions, reassembly, credits, AUTH and KEYS, delivery). See rdma.c.
 */
#include "rdma_int.h"

/* ---- posting ---------------------------------------------------------------------- */

/* Post one SEND from the next send slot: header, `plen` payload bytes copied in, and if
 * `frame` is set, an RDMA WRITE of it (copied to the slot's bounce page) to page `page` of the
 * peer's frames just before. Returns credits to the peer in the header. 0 or an errno value. */
int dsmt_rdma_post_seg(struct rdma *t, struct conn *c, uint8_t kind, uint8_t flags, uint32_t length,
                    uint64_t page, const void *payload, size_t plen, const uint8_t *frame)
{
    uint32_t slot = c->tx_head % TX_SLOTS;
    uint8_t *b = dsmt_rdma_tx_slot(c, slot);
    uint32_t ret = c->ret_pending > UINT16_MAX ? UINT16_MAX : c->ret_pending;
    struct ibv_sge sg[2];
    struct ibv_send_wr wr[2], *bad;
    int n = 0, rc;

    b[DSMT_RDMA_M_KIND] = kind;
    b[DSMT_RDMA_M_FLAGS] = flags;
    dsm_put16(b + DSMT_RDMA_M_CREDITS, (uint16_t)ret);
    dsm_put32(b + DSMT_RDMA_M_LENGTH, length);
    dsm_put64(b + DSMT_RDMA_M_PAGE, page);
    if (plen > 0)
        memcpy(b + DSMT_RDMA_HDR_LEN, payload, plen);
    memset(wr, 0, sizeof(wr));
    if (frame != NULL) {
        uint8_t *fb = dsmt_rdma_bounce_page(t, c, slot);

        memcpy(fb, frame, t->cfg.page_size); /* captured: the caller may change the frame now */
        sg[0] = (struct ibv_sge){ .addr = (uintptr_t)fb, .length = (uint32_t)t->cfg.page_size, .lkey = c->mr->lkey };
        wr[0].wr_id = (uint64_t)WR_WRITE << 32 | c->tx_head;
        wr[0].sg_list = &sg[0];
        wr[0].num_sge = 1;
        wr[0].opcode = IBV_WR_RDMA_WRITE;
        wr[0].wr.rdma.remote_addr = c->raddr + page * t->cfg.page_size;
        wr[0].wr.rdma.rkey = c->rkey;
        wr[0].next = &wr[1];
        n = 1;
    }
    sg[n] = (struct ibv_sge){ .addr = (uintptr_t)b, .length = (uint32_t)(DSMT_RDMA_HDR_LEN + plen), .lkey = c->mr->lkey };
    wr[n].wr_id = (uint64_t)WR_SEND << 32 | c->tx_head;
    wr[n].sg_list = &sg[n];
    wr[n].num_sge = 1;
    wr[n].opcode = IBV_WR_SEND;
    /* Only one SEND in SIGNAL_EVERY is signalled: its completion frees its slot and every
     * slot before it (a queue pair completes in order), so the sender is not woken for each
     * send; a full ring always holds a signalled SEND. Failed WRs complete regardless. */
    wr[n].send_flags = 0;
    if (c->tx_head - c->tx_signaled >= SIGNAL_EVERY)
        wr[n].send_flags = IBV_SEND_SIGNALED;
    if ((rc = ibv_post_send(c->id->qp, &wr[0], &bad)) != 0)
        return rc;
    if (wr[n].send_flags & IBV_SEND_SIGNALED)
        c->tx_signaled = c->tx_head;
    c->tx_head++;
    c->ret_pending -= ret;
    if (kind == DSMT_RDMA_K_MSG)
        c->credits--;
    return 0;
}

/* Post segments of message `msg` (len bytes, frame `frame` for `page` or NULL) from byte *off
 * on while credits and send slots last; the frame goes with the first segment. 1 when the
 * whole message is posted, 0 when resources ran out first, or a negative errno value. */
int dsmt_rdma_post_msg(struct rdma *t, struct conn *c, const uint8_t *msg, size_t len, uint64_t page,
                    const uint8_t *frame, size_t *off)
{
    do {
        size_t plen = len - *off < PAYLOAD ? len - *off : PAYLOAD;
        bool first = *off == 0;
        uint8_t flags = (uint8_t)((first ? DSMT_RDMA_F_FIRST : 0) | (*off + plen == len ? DSMT_RDMA_F_LAST : 0) |
                                  (first && frame ? DSMT_RDMA_F_FRAME : 0));
        int rc;

        if (c->credits == 0 || dsmt_rdma_tx_free(c) == 0)
            return 0;
        rc = dsmt_rdma_post_seg(t, c, DSMT_RDMA_K_MSG, flags, first ? (uint32_t)len : 0,
                      first && frame ? page : DSMT_NO_PAGE, msg + *off, plen, first ? frame : NULL);
        if (rc != 0)
            return -rc;
        *off += plen;
        if (*off == len) /* also the one empty segment of a zero-length message */
            return 1;
    } while (1);
}

/* ---- the out queue ---------------------------------------------------------------- */

/* Copy a message and its frame (captured now) to the end of the queue. 0 or DSM_ENOMEM. */
dsm_status_t dsmt_rdma_enqueue(struct rdma *t, struct conn *c, const void *msg, size_t len, uint64_t page)
{
    bool framed = page != DSMT_NO_PAGE;
    size_t fl = framed ? t->cfg.page_size : 0;
    size_t rec = (REC_HDR + len + fl + 7) & ~(size_t)7;
    uint8_t *r;

    if (dsmt_outq_reserve(&c->q, rec) < 0)
        return DSM_ENOMEM;
    r = c->q.buf + c->q.tail;
    dsm_put32(r, (uint32_t)len);
    dsm_put32(r + 4, framed);
    dsm_put64(r + 8, page);
    if (len > 0)
        memcpy(r + REC_HDR, msg, len);
    if (framed)
        memcpy(r + REC_HDR + len, dsmt_rdma_frame_at(t, page), fl);
    c->q.tail += rec;
    t->backlog += len + fl;
    return 0;
}

/* Post what the queue holds, in order, while credits and slots last; then return credits if
 * enough are pending. A post failure kills the connection. */
void dsmt_rdma_conn_push(struct rdma *t, struct conn *c)
{
    while (c->state == C_UP && c->q.head < c->q.tail) {
        uint8_t *r = c->q.buf + c->q.head;
        uint32_t len = dsm_get32(r);
        bool framed = dsm_get32(r + 4) != 0;
        size_t fl = framed ? t->cfg.page_size : 0;
        size_t before = c->q_off;
        int rc = dsmt_rdma_post_msg(t, c, r + REC_HDR, len, dsm_get64(r + 8), framed ? r + REC_HDR + len : NULL, &c->q_off);

        if (rc < 0) {
            dsmt_rdma_conn_kill_errno(t, c, "ibv_post_send", -rc);
            return;
        }
        t->backlog -= (c->q_off - before) + (before == 0 && (c->q_off > 0 || rc == 1) ? fl : 0);
        if (rc == 0)
            break;
        c->q.head += (REC_HDR + len + fl + 7) & ~(size_t)7;
        c->q_off = 0;
    }
    if (c->q.head == c->q.tail) {
        c->q.head = c->q.tail = 0;
        if (c->q.cap > OUTQ_KEEP) {
            free(c->q.buf);
            memset(&c->q, 0, sizeof(c->q));
        }
    }
    if (c->state == C_UP && c->ret_pending >= CREDIT_BATCH && dsmt_rdma_tx_free(c) > 0) {
        int rc = dsmt_rdma_post_seg(t, c, DSMT_RDMA_K_CREDIT, 0, 0, DSMT_NO_PAGE, NULL, 0, NULL);
        if (rc != 0)
            dsmt_rdma_conn_kill_errno(t, c, "ibv_post_send", rc);
    }
}

/* ---- receiving -------------------------------------------------------------------- */

static void violation(struct rdma *t, struct conn *c, const char *what)
{
    char reason[200];

    snprintf(reason, sizeof(reason), "protocol violation: %s", what);
    dsmt_rdma_conn_kill(t, c, DSM_LOG_WARN, reason);
}

void dsmt_rdma_kick(struct rdma *t)
{
    uint64_t one = 1;

    if (t->kicked)
        return;
    if (write(t->kfd, &one, sizeof(one)) != (ssize_t)sizeof(one) && errno != EAGAIN)
        DSM_WARN("rdma: write(eventfd): %s", strerror(errno));
    t->kicked = true;
}

/* The peer counts as up once both KEYS have gone their ways. */
static void maybe_up(struct rdma *t, struct conn *c)
{
    if (c->state == C_DEAD || c->state == C_UP || !c->sent_keys || !c->got_keys ||
        (!c->outgoing && !c->authed))
        return;
    c->state = C_UP;
    t->peer[c->node].st = DSMT_P_UP;
    DSM_INFO("rdma: node %d (%s) is up", c->node, c->where);
    t->h.on_peer_up(t->h.ctx, c->node);
    if (c->state == C_UP)
        dsmt_rdma_conn_push(t, c);
}

/* Does `proof` prove that c's peer holds the secret (a MAC over our nonce)? */
static bool proof_ok(struct rdma *t, struct conn *c, const uint8_t *proof)
{
    uint8_t want[DSMT_RDMA_PROOF_LEN];

    dsmt_proof(&t->cfg, c->my_nonce, c->node, want);
    return dsmt_equal_ct(want, proof, sizeof(want));
}

/* Send AUTH (connecting side, first) or KEYS. 0 or an errno value. */
int dsmt_rdma_send_auth(struct rdma *t, struct conn *c)
{
    uint8_t proof[DSMT_RDMA_PROOF_LEN];

    dsmt_proof(&t->cfg, c->peer_nonce, t->cfg.self, proof);
    return dsmt_rdma_post_seg(t, c, DSMT_RDMA_K_AUTH, 0, 0, DSMT_NO_PAGE, proof, sizeof(proof), NULL);
}

static int send_keys(struct rdma *t, struct conn *c)
{
    uint8_t keys[DSMT_RDMA_KEYS_LEN];
    int rc;

    dsm_put64(keys + DSMT_RDMA_K_ADDR, (uintptr_t)t->cfg.frames);
    dsm_put32(keys + DSMT_RDMA_K_RKEY, c->dev->frames_mr ? c->dev->frames_mr->rkey : 0);
    dsm_put32(keys + DSMT_RDMA_K_CREDITS, CREDITS);
    dsm_put64(keys + DSMT_RDMA_K_FRAMES_LEN, (uint64_t)t->cfg.npages * t->cfg.page_size);
    dsmt_proof(&t->cfg, c->peer_nonce, t->cfg.self, keys + DSMT_RDMA_K_PROOF);
    if ((rc = dsmt_rdma_post_seg(t, c, DSMT_RDMA_K_KEYS, 0, 0, DSMT_NO_PAGE, keys, sizeof(keys), NULL)) == 0)
        c->sent_keys = true;
    return rc;
}

/* Take in the peer's KEYS payload (its proof checked first). NULL, or what is wrong. */
static const char *rx_keys(struct rdma *t, struct conn *c, const uint8_t *p)
{
    struct dsmt_rdma_keys k;
    const char *bad;

    if (!proof_ok(t, c, p + DSMT_RDMA_K_PROOF))
        return "bad proof: the peer does not hold this job's secret";
    if ((bad = dsmt_rdma_keys_parse(&t->geom, p, &k)) != NULL)
        return bad;
    c->raddr = k.addr;
    c->rkey = k.rkey;
    c->credits = c->credit_max = k.credits;
    c->got_keys = true;
    return NULL;
}

/* The connecting side's AUTH at the accepting side: check the proof, count the connection as
 * the peer, and only then send our KEYS. NULL, or what is wrong. */
static const char *rx_auth(struct rdma *t, struct conn *c, const uint8_t *proof, char *why, size_t wl)
{
    int rc;

    if (!proof_ok(t, c, proof))
        return "bad proof: the peer does not hold this job's secret";
    if (t->peer[c->node].st != DSMT_P_NONE) { /* another connection claimed it meanwhile */
        snprintf(why, wl, "bad hello: node %d is already connected or was lost", c->node);
        return why;
    }
    c->authed = true;
    t->peer[c->node].conn = c;
    t->peer[c->node].st = DSMT_P_PENDING;
    if ((rc = send_keys(t, c)) != 0) {
        snprintf(why, wl, "ibv_post_send(KEYS): %s", strerror(rc));
        return why;
    }
    return NULL;
}

/* Hand a complete message to the daemon. */
static void deliver(struct rdma *t, struct conn *c, const uint8_t *msg, size_t len, uint64_t page)
{
    t->delivered++;
    if (!t->closing)
        t->h.on_message(t->h.ctx, c->node, msg, len, page);
}

/* One MSG segment of plen payload bytes: delivered when it completes a message, kept
 * otherwise (rdma_proto.c checks every field). NULL, or what was wrong with it. */
static const char *rx_msg(struct rdma *t, struct conn *c, const uint8_t *b, size_t plen, char *why, size_t wl)
{
    struct dsmt_rdma_msg m;
    const char *bad = dsmt_rdma_asm_segment(&c->reasm, &t->geom, b, plen, &m, why, wl);

    if (bad == NULL && m.msg != NULL)
        deliver(t, c, m.msg, m.len, m.page);
    return bad;
}

/* What is wrong with an AUTH, KEYS or CREDIT (or unknown) SEND of n bytes, or NULL; acts on
 * AUTH and KEYS (the handshake above). */
static const char *rx_control(struct rdma *t, struct conn *c, const uint8_t *b, size_t n, char *why, size_t wl)
{
    uint8_t kind = b[DSMT_RDMA_M_KIND];
    bool plain = b[DSMT_RDMA_M_FLAGS] == 0 && dsm_get16(b + DSMT_RDMA_M_CREDITS) == 0 &&
                 dsm_get32(b + DSMT_RDMA_M_LENGTH) == 0 && dsm_get64(b + DSMT_RDMA_M_PAGE) == DSMT_NO_PAGE;
    const char *bad;
    int rc;

    switch (kind) {
    case DSMT_RDMA_K_CREDIT:
        return n == DSMT_RDMA_HDR_LEN && b[DSMT_RDMA_M_FLAGS] == 0 && dsm_get32(b + DSMT_RDMA_M_LENGTH) == 0 &&
               dsm_get64(b + DSMT_RDMA_M_PAGE) == DSMT_NO_PAGE ? NULL : "malformed CREDIT";
    case DSMT_RDMA_K_AUTH:
        if (c->outgoing || c->authed)
            return "AUTH out of place";
        if (!plain || n != DSMT_RDMA_HDR_LEN + DSMT_RDMA_PROOF_LEN)
            return "malformed AUTH";
        return rx_auth(t, c, b + DSMT_RDMA_HDR_LEN, why, wl);
    case DSMT_RDMA_K_KEYS:
        if (c->got_keys)
            return "second KEYS";
        if (!c->outgoing && !c->authed)
            return "KEYS before AUTH";
        if (!plain || n != DSMT_RDMA_HDR_LEN + DSMT_RDMA_KEYS_LEN)
            return "malformed KEYS";
        if ((bad = rx_keys(t, c, b + DSMT_RDMA_HDR_LEN)) != NULL || !c->outgoing)
            return bad;
        /* the accepting side has proved itself: now our rkey may go */
        if ((rc = send_keys(t, c)) != 0) {
            snprintf(why, wl, "ibv_post_send(KEYS): %s", strerror(rc));
            return why;
        }
        return NULL;
    default:
        return "unknown message kind";
    }
}

/* A receive completed in slot `slot` with n bytes: check, act, re-post the slot. */
static void on_recv(struct rdma *t, struct conn *c, uint32_t slot, size_t n)
{
    const uint8_t *b = dsmt_rdma_rx_slot(c, slot);
    const char *bad;
    char why[160];
    uint8_t kind;
    uint32_t ret;
    int rc;

    if (n < DSMT_RDMA_HDR_LEN) {
        violation(t, c, "SEND shorter than a header");
        return;
    }
    kind = b[DSMT_RDMA_M_KIND];
    ret = dsm_get16(b + DSMT_RDMA_M_CREDITS);
    if (kind != DSMT_RDMA_K_KEYS && kind != DSMT_RDMA_K_AUTH && !c->got_keys)
        bad = c->outgoing || c->authed ? "message before KEYS" : "message before AUTH";
    else if (c->credits + ret > c->credit_max)
        bad = "returned more credits than it was given";
    else if (kind == DSMT_RDMA_K_MSG && c->state != C_UP)
        bad = "message before the peer was up";
    else {
        c->credits += ret;
        bad = kind == DSMT_RDMA_K_MSG ? rx_msg(t, c, b, n - DSMT_RDMA_HDR_LEN, why, sizeof(why))
                                      : rx_control(t, c, b, n, why, sizeof(why));
    }
    if (bad != NULL) {
        violation(t, c, bad);
        return;
    }
    if (c->state == C_DEAD)
        return; /* killed in a callback: the slot stays as it is until reaped */
    if ((rc = dsmt_rdma_post_recv(c, slot)) != 0) {
        dsmt_rdma_conn_kill_errno(t, c, "ibv_post_recv", rc);
        return;
    }
    if (kind == DSMT_RDMA_K_MSG)
        c->ret_pending++;
    else if (kind == DSMT_RDMA_K_KEYS)
        maybe_up(t, c);
}

/* wr_id: the WR kind in the high 32 bits; the receive slot, or the send counter (tx_head at
 * posting), in the low 32. */
static const char *wr_name(uint64_t wr_id)
{
    switch (wr_id >> 32) {
    case WR_RECV: return "receive";
    case WR_SEND: return "send";
    case WR_WRITE: return "frame write";
    default: return "work request";
    }
}

/* One work completion of connection c. */
static void on_wc(struct rdma *t, struct conn *c, const struct ibv_wc *wc)
{
    uint32_t slot = (uint32_t)wc->wr_id;
    char reason[200];

    if (wc->status != IBV_WC_SUCCESS) {
        if (wc->status == IBV_WC_WR_FLUSH_ERR)
            snprintf(reason, sizeof(reason), "%s flushed: the connection broke", wr_name(wc->wr_id));
        else
            snprintf(reason, sizeof(reason), "%s failed: %s (vendor error %#x)", wr_name(wc->wr_id),
                     ibv_wc_status_str(wc->status), wc->vendor_err);
        dsmt_rdma_conn_kill(t, c, wc->status == IBV_WC_WR_FLUSH_ERR ? DSM_LOG_INFO : DSM_LOG_WARN, reason);
        return;
    }
    switch (wc->opcode) {
    case IBV_WC_RECV:
        if ((wc->wr_id >> 32) != WR_RECV || slot >= RX_SLOTS)
            dsmt_rdma_conn_kill(t, c, DSM_LOG_ERROR, "receive completion for an unknown slot");
        else
            on_recv(t, c, slot, wc->byte_len);
        break;
    case IBV_WC_SEND:
        /* signalled SENDs complete in posting order: the oldest slot is free now */
        /* `slot` is the send counter here: this SEND and every earlier one are done */
        if ((wc->wr_id >> 32) != WR_SEND || slot - c->tx_tail >= c->tx_head - c->tx_tail)
            dsmt_rdma_conn_kill(t, c, DSM_LOG_ERROR, "send completion out of order");
        else
            c->tx_tail = slot + 1;
        break;
    default:
        snprintf(reason, sizeof(reason), "unexpected completion (opcode %d)", (int)wc->opcode);
        dsmt_rdma_conn_kill(t, c, DSM_LOG_ERROR, reason);
        break;
    }
}

/* Handle up to `budget` completions of c, re-arming its CQ first if an event was consumed;
 * then post what the queue holds. Returns the number handled. */
int dsmt_rdma_conn_poll(struct rdma *t, struct conn *c, int budget)
{
    struct ibv_wc wc[16];
    int done = 0, rc;

    if (c->state == C_DEAD || c->cq == NULL)
        return 0;
    if (c->rearm) {
        c->rearm = false;
        if ((rc = ibv_req_notify_cq(c->cq, 0)) != 0) {
            dsmt_rdma_conn_kill_errno(t, c, "ibv_req_notify_cq", rc);
            return 0;
        }
    }
    while (done < budget && c->state != C_DEAD) {
        int n = ibv_poll_cq(c->cq, (int)(sizeof(wc) / sizeof(wc[0])), wc);

        if (n < 0) {
            dsmt_rdma_conn_kill(t, c, DSM_LOG_ERROR, "ibv_poll_cq failed");
            return done;
        }
        if (n == 0)
            break;
        for (int i = 0; i < n && c->state != C_DEAD; i++)
            on_wc(t, c, &wc[i]);
        done += n;
    }
    if (c->state == C_UP)
        dsmt_rdma_conn_push(t, c);
    return done;
}

/* Poll every live connection. true if some CQ may hold more than its budget allowed. */
bool dsmt_rdma_poll_all(struct rdma *t)
{
    bool more = false;

    for (struct conn *c = t->conns; c != NULL; c = c->next)
        if (dsmt_rdma_conn_poll(t, c, CQ_BUDGET) >= CQ_BUDGET)
            more = true;
    return more;
}

/* Consume the device's CQ events; their CQs are re-armed before they are next polled. */
void dsmt_rdma_cc_drain(struct rdma *t, struct rdev *d)
{
    struct ibv_cq *cq;
    void *ctx;

    (void)t;
    while (ibv_get_cq_event(d->cc, &cq, &ctx) == 0) {
        struct conn *c = ctx;

        ibv_ack_cq_events(cq, 1);
        c->rearm = true;
    }
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
        DSM_WARN("rdma: ibv_get_cq_event: %s", strerror(errno));
}


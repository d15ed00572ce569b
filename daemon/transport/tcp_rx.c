/*
 * tcp_rx.c - the TCP transport's receive side: reading a connection's stream into its
 * staging buffer, checking hellos, proofs and frame headers, placing frames and delivering
 * messages in stream order (see tcp.c).
 */
#include "tcp_int.h"

/* ---- receiving -------------------------------------------------------------------- */

/* Why a hello is unacceptable on this connection, or NULL if it is fine. */
static const char *hello_problem(struct tcp *t, struct conn *c, const uint8_t *b, char *why, size_t len)
{
    uint32_t node = dsm_get32(b + DSMT_TCP_H_NODE);

    if (dsm_get32(b + DSMT_TCP_H_MAGIC) != DSMT_TCP_MAGIC)
        return "bad hello: wrong magic (not a dsm transport peer)";
    if (dsm_get32(b + DSMT_TCP_H_VERSION) != DSMT_TCP_VERSION) /* version + reserved, both fixed */
        return "bad hello: unsupported protocol version";
    if (dsm_get64(b + DSMT_TCP_H_JOB) != t->cfg.job_id) {
        snprintf(why, len, "bad hello: job id %#llx, this job is %#llx",
                 (unsigned long long)dsm_get64(b + DSMT_TCP_H_JOB), (unsigned long long)t->cfg.job_id);
        return why;
    }
    if (dsm_get32(b + DSMT_TCP_H_NNODES) != (uint32_t)t->cfg.nnodes ||
        dsm_get64(b + DSMT_TCP_H_PAGE_SIZE) != t->cfg.page_size ||
        dsm_get64(b + DSMT_TCP_H_NPAGES) != t->cfg.npages ||
        dsm_get64(b + DSMT_TCP_H_MAX_MSG) != t->cfg.max_msg)
        return "bad hello: job geometry differs (nnodes, page size, npages or max_msg)";
    if (c->outgoing && node != (uint32_t)c->node) {
        snprintf(why, len, "bad hello: answered as node %u", node);
        return why;
    }
    if (!c->outgoing && (node >= (uint32_t)t->cfg.nnodes || node <= (uint32_t)t->cfg.self)) {
        snprintf(why, len, "bad hello: node %u may not connect to node %d of %d",
                 node, t->cfg.self, t->cfg.nnodes);
        return why;
    }
    if (!c->outgoing && t->peer[node].st != DSMT_P_NONE) {
        snprintf(why, len, "bad hello: node %u is already connected or was lost", node);
        return why;
    }
    return NULL;
}

/* Check the peer's hello; answer it (accepting side: our hello; connecting side: our
 * proof) and wait for the peer's proof. false if the connection died. */
static bool rx_hello(struct tcp *t, struct conn *c, const uint8_t *b)
{
    char why[160];
    const char *problem = hello_problem(t, c, b, why, sizeof(why));

    if (problem != NULL) {
        dsmt_tcp_conn_kill(t, c, DSM_LOG_WARN, problem);
        return false;
    }
    memcpy(c->peer_nonce, b + DSMT_TCP_H_NONCE, sizeof(c->peer_nonce));
    /* The claimed id, for the proof and log lines; not a peer (t->peer) before the proof. */
    c->node = (int)dsm_get32(b + DSMT_TCP_H_NODE);
    if ((c->outgoing ? dsmt_tcp_conn_queue_proof(t, c) : dsmt_tcp_conn_queue_hello(t, c)) < 0) {
        dsmt_tcp_conn_kill(t, c, DSM_LOG_ERROR, "cannot queue the hello answer");
        return false;
    }
    c->rx = RX_PROOF;
    return true;
}

/* Check the peer's proof and bring the peer up. false if the connection died. */
static bool rx_proof(struct tcp *t, struct conn *c, const uint8_t *b)
{
    uint8_t want[DSMT_TCP_PROOF_LEN];
    int node = c->node;

    dsmt_proof(&t->cfg, c->my_nonce, node, want);
    if (!dsmt_equal_ct(want, b, sizeof(want))) {
        dsmt_tcp_conn_kill(t, c, DSM_LOG_WARN, "bad proof: the peer does not hold this job's secret");
        return false;
    }
    if (!c->outgoing) {
        if (t->peer[node].st != DSMT_P_NONE) { /* another connection claimed it meanwhile */
            dsmt_tcp_conn_kill(t, c, DSM_LOG_WARN, "bad hello: node is already connected or was lost");
            return false;
        }
        /* Our proof goes out before anything the daemon sends from on_peer_up. */
        if (dsmt_tcp_conn_queue_proof(t, c) < 0) {
            dsmt_tcp_conn_kill(t, c, DSM_LOG_ERROR, "cannot queue the proof");
            return false;
        }
        t->peer[node].conn = c;
    }
    t->peer[node].st = DSMT_P_UP;
    c->state = C_UP;
    c->rx = RX_HDR;
    DSM_INFO("tcp: node %d (%s) is up", node, c->where);
    t->h.on_peer_up(t->h.ctx, node);
    return c->state != C_DEAD;
}

/* Check a frame header. false (connection killed) on a protocol violation. */
static bool rx_header(struct tcp *t, struct conn *c, const uint8_t *b)
{
    char why[160];

    c->mlen = dsm_get32(b + DSMT_TCP_F_LEN);
    c->flags = dsm_get32(b + DSMT_TCP_F_FLAGS);
    c->page = dsm_get64(b + DSMT_TCP_F_PAGE);
    why[0] = '\0';
    if (c->mlen > t->cfg.max_msg)
        snprintf(why, sizeof(why), "message of %zu bytes exceeds max_msg %zu", c->mlen, t->cfg.max_msg);
    else if (c->flags & ~DSMT_TCP_F_FRAME)
        snprintf(why, sizeof(why), "unknown frame flags %#x", c->flags);
    else if ((c->flags & DSMT_TCP_F_FRAME) && c->page >= t->cfg.npages)
        snprintf(why, sizeof(why), "frame for page %llu beyond %llu pages",
                 (unsigned long long)c->page, (unsigned long long)t->cfg.npages);
    else if (!(c->flags & DSMT_TCP_F_FRAME) && c->page != DSMT_NO_PAGE)
        snprintf(why, sizeof(why), "page %llu named without a frame", (unsigned long long)c->page);
    if (why[0] == '\0')
        return true;
    char reason[200];
    snprintf(reason, sizeof(reason), "protocol violation: %s", why);
    dsmt_tcp_conn_kill(t, c, DSM_LOG_WARN, reason);
    return false;
}

/* Hand the current message to the daemon. false if the connection died meanwhile. */
static bool rx_deliver(struct tcp *t, struct conn *c)
{
    uint64_t page = (c->flags & DSMT_TCP_F_FRAME) ? c->page : DSMT_NO_PAGE;

    c->rx = RX_HDR;
    t->h.on_message(t->h.ctx, c->node, c->rbuf + c->moff, c->mlen, page);
    return c->state != C_DEAD;
}

/* Copy frame bytes that arrived in the staging buffer into place. true once complete. */
static bool rx_frame_bytes(struct tcp *t, struct conn *c)
{
    size_t avail = c->rlen - c->rpos, take = t->cfg.page_size - c->fgot;

    if (take > avail)
        take = avail;
    memcpy(dsmt_tcp_frame_at(t, c->page) + c->fgot, c->rbuf + c->rpos, take);
    c->rpos += take;
    c->fgot += take;
    return c->fgot == t->cfg.page_size;
}

/* Keep the unparsed tail (a partial hello/header/message) at the start of the staging
 * buffer; while a frame is incomplete keep its message instead, so the rest of the frame
 * can be read straight into place. */
static void rx_compact(struct conn *c)
{
    size_t from = c->rx == RX_FRAME ? c->moff : c->rpos;
    size_t n = c->rx == RX_FRAME ? c->mlen : c->rlen - c->rpos;

    if (from > 0)
        memmove(c->rbuf, c->rbuf + from, n);
    c->moff = 0;
    c->rlen = n;
    c->rpos = c->rx == RX_FRAME ? n : 0;
}

/* Parse and deliver everything complete in the staging buffer. */
static void rx_parse(struct tcp *t, struct conn *c)
{
    for (;;) {
        size_t avail = c->rlen - c->rpos;
        const uint8_t *p = c->rbuf + c->rpos;

        switch (c->rx) {
        case RX_HELLO:
            if (avail >= 4 && dsm_get32(p + DSMT_TCP_H_MAGIC) != DSMT_TCP_MAGIC) {
                /* not one of ours: no need to wait for a whole hello */
                dsmt_tcp_conn_kill(t, c, DSM_LOG_WARN, "bad hello: wrong magic (not a dsm transport peer)");
                return;
            }
            if (avail < DSMT_TCP_HELLO_LEN)
                goto partial;
            c->rpos += DSMT_TCP_HELLO_LEN;
            if (!rx_hello(t, c, p))
                return;
            break;
        case RX_PROOF:
            if (avail < DSMT_TCP_PROOF_LEN)
                goto partial;
            c->rpos += DSMT_TCP_PROOF_LEN;
            if (!rx_proof(t, c, p))
                return;
            break;
        case RX_HDR:
            if (avail < DSMT_TCP_HDR_LEN)
                goto partial;
            c->rpos += DSMT_TCP_HDR_LEN;
            if (!rx_header(t, c, p))
                return;
            c->rx = RX_MSG;
            break;
        case RX_MSG:
            if (avail < c->mlen)
                goto partial;
            c->moff = c->rpos;
            c->rpos += c->mlen;
            c->fgot = 0;
            c->rx = RX_FRAME;
            if (!(c->flags & DSMT_TCP_F_FRAME) && !rx_deliver(t, c))
                return;
            break;
        case RX_FRAME:
            if (!rx_frame_bytes(t, c))
                goto partial;
            if (!rx_deliver(t, c))
                return;
            break;
        }
    }
partial:
    rx_compact(c);
}

/* Where the next read goes: straight into an incomplete frame first, then staging. */
static int rx_iov(struct tcp *t, struct conn *c, struct iovec *iov)
{
    int n = 0;

    if (c->rx == RX_FRAME) {
        iov[n].iov_base = dsmt_tcp_frame_at(t, c->page) + c->fgot;
        iov[n++].iov_len = t->cfg.page_size - c->fgot;
    }
    iov[n].iov_base = c->rbuf + c->rlen;
    iov[n++].iov_len = c->rcap - c->rlen;
    return n;
}

/* Read what the socket has (up to READ_BUDGET) and deliver every complete message. */
void dsmt_tcp_conn_read(struct tcp *t, struct conn *c)
{
    size_t total = 0;

    while (c->state != C_DEAD && total < READ_BUDGET) {
        bool drained;
        struct iovec iov[2];
        int n = rx_iov(t, c, iov);
        ssize_t r = readv(c->fd, iov, n);

        if (r == 0) {
            bool clean = (c->rx == RX_HDR || c->rx == RX_HELLO) && c->rpos == c->rlen;
            dsmt_tcp_conn_kill(t, c, DSM_LOG_INFO, clean ? "connection closed by peer"
                                                : "connection closed by peer mid-message");
            return;
        }
        if (r < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            if (errno != EINTR)
                dsmt_tcp_conn_kill_errno(t, c, "read", errno);
            continue;
        }
        total += (size_t)r;
        drained = (size_t)r < iov[0].iov_len + (n == 2 ? iov[1].iov_len : 0);
        if (n == 2) { /* the frame took its share first */
            size_t in_frame = (size_t)r < iov[0].iov_len ? (size_t)r : iov[0].iov_len;
            c->fgot += in_frame;
            r -= (ssize_t)in_frame;
        }
        c->rlen += (size_t)r;
        rx_parse(t, c);
        if (drained)
            return; /* a short read emptied the socket; epoll reports more (saves an EAGAIN) */
    }
}


/* base.c - see base.h. */
#include "base.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "dsm_le.h"
#include "dsm_log.h"
#include "hmac.h"

dsm_status_t dsmt_outq_reserve(struct dsmt_outq *q, size_t n)
{
    size_t used = q->tail - q->head, cap;
    uint8_t *nb;

    if (q->cap - q->tail >= n)
        return DSM_OK;
    if (q->head >= used && q->cap - used >= n) {
        memmove(q->buf, q->buf + q->head, used);
        q->head = 0;
        q->tail = used;
        return DSM_OK;
    }
    cap = q->cap * 2 > DSMT_OUTQ_MIN ? q->cap * 2 : DSMT_OUTQ_MIN;
    if (cap < used + n)
        cap = used + n;
    nb = malloc(cap);
    if (nb == NULL)
        return DSM_ENOMEM;
    if (used > 0)
        memcpy(nb, q->buf + q->head, used);
    free(q->buf);
    q->buf = nb;
    q->cap = cap;
    q->head = 0;
    q->tail = used;
    return DSM_OK;
}

void dsmt_outq_free(struct dsmt_outq *q)
{
    free(q->buf);
    memset(q, 0, sizeof(*q));
}

int dsmt_split_addr(const char *addr, char *host, size_t hl, char *port, size_t pl)
{
    const char *colon, *end;
    size_t n;

    port[0] = '\0';
    if (addr[0] == '[') {
        end = strchr(addr, ']');
        if (end == NULL || (end[1] != '\0' && end[1] != ':'))
            return -1;
        n = (size_t)(end - addr - 1);
        colon = end[1] == ':' ? end + 1 : NULL;
        addr++;
    } else {
        colon = strchr(addr, ':');
        if (colon != NULL && strchr(colon + 1, ':') != NULL)
            colon = NULL; /* a bare IPv6 address, no port */
        n = colon != NULL ? (size_t)(colon - addr) : strlen(addr);
    }
    if (n >= hl || (colon != NULL && strlen(colon + 1) >= pl))
        return -1;
    memcpy(host, addr, n);
    host[n] = '\0';
    if (colon != NULL)
        strcpy(port, colon + 1);
    return 0;
}

void dsmt_addr_fmt(const struct sockaddr *sa, char *buf, size_t buflen)
{
    char host[NI_MAXHOST], serv[NI_MAXSERV];
    socklen_t len = sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);

    if ((sa->sa_family != AF_INET && sa->sa_family != AF_INET6) ||
        getnameinfo(sa, len, host, sizeof(host), serv, sizeof(serv), NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
        snprintf(buf, buflen, "?");
        return;
    }
    snprintf(buf, buflen, sa->sa_family == AF_INET6 ? "[%s]:%s" : "%s:%s", host, serv);
}

void dsmt_proof(const struct dsmt_config *cfg, const uint8_t nonce[DSMT_NONCE_LEN], int node,
                uint8_t out[DSMT_PROOF_LEN])
{
    uint8_t m[DSMT_NONCE_LEN + 12];

    memcpy(m, nonce, DSMT_NONCE_LEN);
    dsm_put32(m + DSMT_NONCE_LEN, (uint32_t)node);
    dsm_put64(m + DSMT_NONCE_LEN + 4, cfg->job_id);
    dsmt_hmac_sha256(cfg->secret, sizeof(cfg->secret), m, sizeof(m), out);
}

void dsmt_timer_set(const char *tname, int tfd, uint64_t when, uint64_t *armed)
{
    struct itimerspec its = { 0 };

    if (when == *armed)
        return; /* unchanged: spare the syscall on every progress() */
    if (when != UINT64_MAX) { /* else all zero: disarm */
        its.it_value.tv_sec = (time_t)(when / 1000);
        its.it_value.tv_nsec = (long)(when % 1000) * 1000000L;
        if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0)
            its.it_value.tv_nsec = 1; /* zero would disarm */
    }
    if (timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL) < 0) {
        DSM_ERR("%s: timerfd_settime: %s", tname, strerror(errno)); /* deadlines will lag */
        return;
    }
    *armed = when;
}

bool dsmt_config_ok(const struct dsmt_config *cfg, const struct dsmt_handler *h)
{
    return cfg->nnodes >= 1 && cfg->self >= 0 && cfg->self < cfg->nnodes && cfg->page_size > 0 &&
           cfg->page_size <= (1u << 30) && cfg->max_msg > 0 && cfg->max_msg <= DSMT_MAX_MSG_LIMIT &&
           (cfg->npages == 0 || cfg->frames != NULL) && cfg->npages <= SIZE_MAX / cfg->page_size &&
           cfg->poll_us >= 0 && h->on_peer_up != NULL && h->on_message != NULL && h->on_peer_lost != NULL;
}

dsm_status_t dsmt_send_check(const char *tname, const struct dsmt_config *cfg, const struct dsmt_peer *peer,
                             int node, const void *msg, size_t len, uint64_t page)
{
    if (node < 0 || node >= cfg->nnodes || node == cfg->self || len > cfg->max_msg || (len > 0 && msg == NULL) ||
        (page != DSMT_NO_PAGE && page >= cfg->npages)) {
        DSM_ERR("%s: bad send to node %d (%zu bytes, page %llu)", tname, node, len, (unsigned long long)page);
        return DSM_EINVAL;
    }
    if (peer[node].st == DSMT_P_UP)
        return DSM_OK;
    if (peer[node].st == DSMT_P_LOST)
        return DSM_EPEER; /* already reported through on_peer_lost */
    DSM_ERR("%s: send to node %d before it is up", tname, node);
    return DSM_ESTATE;
}

dsm_status_t dsmt_connect_check(const char *tname, const struct dsmt_config *cfg, const struct dsmt_peer *peer,
                                int node, int timeout_ms)
{
    if (node < 0 || node >= cfg->self || timeout_ms <= 0) {
        DSM_ERR("%s: node %d may not connect to node %d (or timeout %d ms)", tname, cfg->self, node, timeout_ms);
        return DSM_EINVAL;
    }
    if (peer[node].st != DSMT_P_NONE) {
        DSM_ERR("%s: connect to node %d twice", tname, node);
        return DSM_ESTATE;
    }
    return DSM_OK;
}

int dsmt_drop_check(const char *tname, const struct dsmt_config *cfg, int node)
{
    if (node >= 0 && node < cfg->nnodes && node != cfg->self)
        return 1;
    DSM_ERR("%s: drop of node %d, not a peer", tname, node);
    return 0;
}

void dsmt_peer_lost(struct dsmt_peer *peer, const struct dsmt_handler *h, int node, const char *reason,
                    int report)
{
    peer[node].conn = NULL;
    peer[node].st = DSMT_P_LOST;
    if (report)
        h->on_peer_lost(h->ctx, node, reason);
}

void dsmt_xclose(const char *tname, int fd, const char *what)
{
    if (close(fd) < 0)
        DSM_WARN("%s: close(%s fd %d): %s", tname, what, fd, strerror(errno));
}

/* base.c - see base.h. */
#include "base.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
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

void dsmt_xclose(const char *tname, int fd, const char *what)
{
    if (close(fd) < 0)
        DSM_WARN("%s: close(%s fd %d): %s", tname, what, fd, strerror(errno));
}

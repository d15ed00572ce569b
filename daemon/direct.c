/*
 * direct.c - the direct path (dsm_direct.h, docs/PROTOCOL.md "Direct reads"): ranks of
 * other nodes read pages homed here straight from this daemon, and this node's ranks read
 * pages homed elsewhere straight from their homes. Two process wake-ups per remote read
 * fault instead of four.
 *
 * As home (the listener):
 *   - A rank connects; it gets a nonce, answers with a HELLO whose mac its own daemon made
 *     from the job secret (the rank never holds the secret), and is welcomed or dropped.
 *   - Its READ enters the model as a read request of the rank's node (direct_read; one per
 *     connection at a time). The answer the model sends that node for the page (GRANT,
 *     PAGE) is caught in dsmd_send (dsmd_direct_answer): the frame goes to the rank, and
 *     the answer itself is kept: the rank's node tells its model when the page lands.
 *   - A reset of the page (a free) refuses a READ still waiting (dsmd_direct_reset).
 *
 * As the rank's node (the door, dsm_hits.h door[]):
 *   - door[p] offers p while nothing of the node's is under way for it (hits.c door_level);
 *     a rank claims it, writes the page into the frame, mprotects, counts the grant
 *     applied and sets DONE, all without a message.
 *   - While a claim stands: the node's faults on p park (pages.c page_kick), as does a
 *     revocation of p (revoke_run: release's acquire drops), no run or hit opens p, the
 *     model asks nothing about p (svc take), the home's messages about p are held back
 *     (dsmd_direct_hold), and a range holding p is not zeroed (range_settled).
 *   - Whatever needs p looks at the door: DONE ends the claim now (landing_end: prot
 *     raised, grant counted, direct_landed, parked revocations and faults run, held
 *     messages replayed in order); not DONE sets WAIT, and the rank that then sets DONE
 *     sends DSMC_DIRECT_DONE. Faults park on a DONE claim until the loop's next flush.
 *
 * The door word at the rank's node (dsm_direct.h DSM_DOOR_*):
 *   0 / home+1 --rank's CAS--> CLAIM|l --daemon needs p--> CLAIM|l|WAIT
 *   CLAIM|l[|WAIT] --rank: page mapped--> +DONE (DIRECT_DONE sent if WAIT) --landing_end--> 0
 *   CLAIM|l --home refused--> 0 by the rank; its FAULT follows on the channel
 *   a free meanwhile: +COUNTED (dsmd_direct_count_ahead), so its PROTECT waits for the rank
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dsm_direct.h"
#include "dsm_log.h"
#include "dsmd.h"
#include "transport/hmac.h"

#define DCONN_HELLO_MS 10000 /* a connection must say HELLO within this */
#define DSMD_DIRECT_HELD_MAX 4096 /* messages held back for claimed pages, at most */
/* connections at most: one per rank of the job for each node's daemon, and slack for ranks
 * reconnecting; more are not the job's */
#define DSMD_DIRECT_CONNS_MAX(d) (2 * (d)->cfg.nranks + 16)

enum { DC_HELLO = 0, DC_READY };

struct dsmd_dconn {
    struct dsmd *d;
    int      fd, id, state;
    int      node, rank;
    int64_t  opened_ns;
    uint8_t  nonce[DSM_DIRECT_NONCE];
    struct dsm_direct_msg in;
    size_t   in_len;
    int      asked;            /* a READ of `page` awaits its GRANT */
    uint64_t page;
    uint8_t *out;              /* the reply being written: header, then the page */
    size_t   out_len, out_off;
    int      want_out;         /* EPOLLOUT is watched: the reply did not fit at once */
};

struct dsmd_direct {
    int       listen_fd;
    uint16_t  port;
    uint16_t *port_of;         /* by node: its direct port (0: it has none) */
    uint8_t  *heard;           /* by node: its DIRECT_PORT came */
    struct dsmd_dconn **conns;
    int       nconns, cap, nopen;
    int       nasked;          /* connections whose READ awaits its GRANT */
    int       paused;          /* out of descriptors: not accepting until the watchdog's tick */
    uint64_t  reads, refused;  /* as home: READs answered with the page, refused */
};

/* ---- as home: the listener and its connections ---- */

static void dconn_ready(void *arg, uint32_t events);

static void dconn_close(struct dsmd *d, struct dsmd_dconn *c, const char *why)
{
    if (why != NULL)
        DSM_WARN("direct connection from node %d rank %d closed: %s", c->node, c->rank, why);
    dsmd_loop_del(d->loop, c->fd);
    close(c->fd);
    d->direct->conns[c->id] = NULL;
    d->direct->nopen--;
    d->direct->nasked -= c->asked;
    free(c->out);
    free(c);
}

/* Write what is left of c's reply; EPOLLOUT while some is. 0, or -1 (c closed). */
static int dconn_flush(struct dsmd *d, struct dsmd_dconn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (c->want_out)
                return 0;
            c->want_out = 1;
            if (dsmd_loop_mod(d->loop, c->fd, EPOLLIN | EPOLLOUT, dconn_ready, c) == DSM_OK)
                return 0;
            dconn_close(d, c, "cannot watch it for room");
            return -1;
        }
        if (n <= 0) {
            dconn_close(d, c, strerror(errno));
            return -1;
        }
        c->out_off += (size_t)n;
    }
    c->out_len = c->out_off = 0;
    if (!c->want_out)
        return 0;
    c->want_out = 0;
    if (dsmd_loop_mod(d->loop, c->fd, EPOLLIN, dconn_ready, c) == DSM_OK)
        return 0;
    dconn_close(d, c, "cannot watch it");
    return -1;
}

/* Queue a reply (header and, for a GRANT, the page from the frame) and write it. */
static int dconn_reply(struct dsmd *d, struct dsmd_dconn *c, const struct dsm_direct_msg *m, const void *page)
{
    memcpy(c->out, m, sizeof(*m));
    c->out_len = sizeof(*m);
    if (page != NULL) {
        memcpy(c->out + sizeof(*m), page, d->page_size);
        c->out_len += d->page_size;
    }
    c->out_off = 0;
    return dconn_flush(d, c);
}

static void dconn_hello(struct dsmd *d, struct dsmd_dconn *c, const struct dsm_direct_msg *m)
{
    char text[256];
    uint8_t mac[DSMT_SHA256_LEN];
    struct dsm_direct_msg w = { .magic = DSM_DIRECT_MAGIC, .op = DSM_DIRECT_WELCOME };

    if (m->node >= (uint32_t)d->cfg.nnodes || (int)m->node == d->cfg.node || m->rank >= (uint32_t)d->cfg.nranks) {
        dconn_close(d, c, "HELLO names no other node's rank");
        return;
    }
    dsm_direct_proof_text(text, sizeof(text), d->cfg.job_id, d->cfg.node, (int)m->node, (int)m->rank, c->nonce);
    dsmt_hmac_sha256(d->cfg.secret, sizeof(d->cfg.secret), text, strlen(text), mac);
    if (!dsmt_equal_ct(mac, m->bytes, sizeof(mac))) {
        dconn_close(d, c, "HELLO's proof does not match the job secret");
        return;
    }
    c->node = (int)m->node;
    c->rank = (int)m->rank;
    c->state = DC_READY;
    (void)dconn_reply(d, c, &w, NULL);
}

/* Refuse c's READ of page: the rank's fault takes its daemon's path. */
static void dconn_refuse(struct dsmd *d, struct dsmd_dconn *c, uint64_t page)
{
    struct dsm_direct_msg r = { .magic = DSM_DIRECT_MAGIC, .op = DSM_DIRECT_REFUSED, .page = page,
                                .status = DSM_EINVAL };

    d->direct->refused++;
    (void)dconn_reply(d, c, &r, NULL);
}

/* A READ: run it as the rank's node's read request, or refuse a page not homed here. */
static void dconn_read(struct dsmd *d, struct dsmd_dconn *c, const struct dsm_direct_msg *m)
{
    if (m->page >= d->npages || dsmd_space_home(&d->space, m->page) != d->cfg.node || d->aborting) {
        dconn_refuse(d, c, m->page);
        return;
    }
    for (int i = 0; i < d->direct->nconns; i++) {
        const struct dsmd_dconn *o = d->direct->conns[i];

        if (o != NULL && o->asked && o->node == c->node && o->page == m->page) {
            dconn_close(d, c, "a second direct read of one page by one node");
            return;
        }
    }
    c->asked = 1;
    d->direct->nasked++;
    c->page = m->page;
    d->job_heard = 1;
    if (d->pops->direct_read(d->p, c->node, m->page, c->rank) != DSM_OK)
        dsmd_abort(d, DSM_EPROTO, "node %d's rank %d read page %llu directly, which the model refused", c->node,
                   c->rank, (unsigned long long)m->page);
}

static void dconn_ready(void *arg, uint32_t events)
{
    struct dsmd_dconn *c = arg;
    struct dsmd *d = c->d;

    if ((events & EPOLLOUT) && c->out_len > 0 && dconn_flush(d, c) != 0)
        return;
    if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
        return;
    for (;;) {
        ssize_t n = recv(c->fd, (uint8_t *)&c->in + c->in_len, sizeof(c->in) - c->in_len, 0);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            dconn_close(d, c, n == 0 && !c->asked && c->out_len == 0 ? NULL : "lost mid-request");
            return;
        }
        c->in_len += (size_t)n;
        if (c->in_len < sizeof(c->in))
            continue;
        c->in_len = 0;
        if (c->in.magic != DSM_DIRECT_MAGIC) {
            dconn_close(d, c, "bad magic");
            return;
        }
        if (c->state == DC_HELLO && c->in.op == DSM_DIRECT_HELLO) {
            dconn_hello(d, c, &c->in);
        } else if (c->state == DC_READY && c->in.op == DSM_DIRECT_READ && !c->asked && c->out_len == 0) {
            dconn_read(d, c, &c->in);
        } else {
            dconn_close(d, c, "message out of place");
        }
        return; /* c may be gone; the fd stays readable if more came */
    }
}

static void listen_ready(void *arg, uint32_t events)
{
    struct dsmd *d = arg;
    struct dsmd_direct *x = d->direct;

    (void)events;
    for (;;) {
        int fd = accept4(x->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC), one = 1, id;
        struct dsm_direct_msg m = { .magic = DSM_DIRECT_MAGIC, .op = DSM_DIRECT_NONCE_OP };
        struct dsmd_dconn *c;

        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* the socket stays readable: stop watching it until the next watchdog tick */
                DSM_WARN("accept (direct path): %s; not accepting until the next watchdog tick", strerror(errno));
                dsmd_loop_del(d->loop, x->listen_fd);
                x->paused = 1;
            } else if (errno != EAGAIN && errno != EINTR) {
                DSM_WARN("accept (direct path): %s", strerror(errno));
            }
            return;
        }
        if (x->nopen >= DSMD_DIRECT_CONNS_MAX(d)) {
            close(fd); /* more than the job's ranks can open: not theirs */
            continue;
        }
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        for (id = 0; id < x->nconns && x->conns[id] != NULL; id++)
            ;
        if (id == x->cap) {
            int ncap = x->cap ? x->cap * 2 : 16;
            struct dsmd_dconn **v = realloc(x->conns, (size_t)ncap * sizeof(*v));

            if (v == NULL) {
                close(fd);
                continue;
            }
            x->conns = v;
            x->cap = ncap;
        }
        c = calloc(1, sizeof(*c));
        if (c == NULL || (c->out = malloc(sizeof(struct dsm_direct_msg) + d->page_size)) == NULL) {
            DSM_WARN("direct path: out of memory taking a connection");
            free(c);
            close(fd);
            continue;
        }
        *c = (struct dsmd_dconn){ .d = d, .fd = fd, .id = id, .node = -1, .rank = -1, .opened_ns = dsmd_now_ns(),
                                  .out = c->out };
        if (getrandom(c->nonce, sizeof(c->nonce), 0) != (ssize_t)sizeof(c->nonce) ||
            dsmd_loop_add(d->loop, fd, EPOLLIN, dconn_ready, c) != DSM_OK) {
            free(c->out);
            free(c);
            close(fd);
            continue;
        }
        x->conns[id] = c;
        x->nopen++;
        if (id == x->nconns)
            x->nconns++;
        memcpy(m.bytes, c->nonce, sizeof(m.bytes));
        (void)dconn_reply(d, c, &m, NULL);
    }
}

int dsmd_direct_answer(struct dsmd *d, int node, const dsmw_msg_t *m)
{
    struct dsmd_direct *x = d->direct;

    /* every GRANT and PAGE the home sends passes here: look only while a direct read is out */
    for (int i = 0; x != NULL && x->nasked > 0 && i < x->nconns; i++) {
        struct dsmd_dconn *c = x->conns[i];
        struct dsm_direct_msg r = { .magic = DSM_DIRECT_MAGIC, .page = m->page };

        if (c == NULL || !c->asked || c->node != node || c->page != m->page)
            continue;
        int hole = dsm_direct_hole(d->memfd, (off_t)(m->page * d->page_size), d->page_size);
        struct dsmd_counters *k = dsmd_counters_for(d, c->rank);
        size_t bytes = sizeof(r) + (hole ? 0 : d->page_size);

        c->asked = 0;
        x->nasked--;
        r.access = m->type == DSMW__TYPE__GRANT ? m->access : DSM_ACCESS_READ;
        r.op = hole ? DSM_DIRECT_ZEROES : DSM_DIRECT_GRANT;
        x->reads++;
        k->messages_sent++;
        k->bytes_sent += bytes;
        d->node_messages++;
        d->node_bytes += bytes;
        (void)dconn_reply(d, c, &r, hole ? NULL : d->frames + m->page * d->page_size);
        return 1;
    }
    return 0;
}

void dsmd_direct_reset(struct dsmd *d, uint64_t first, uint64_t n)
{
    struct dsmd_direct *x = d->direct;

    /* the model answers nobody for a page it reset: the rank's fault takes its daemon's path */
    for (int i = 0; x != NULL && x->nasked > 0 && i < x->nconns; i++) {
        struct dsmd_dconn *c = x->conns[i];

        if (c == NULL || !c->asked || c->page < first || c->page >= first + n)
            continue;
        c->asked = 0;
        x->nasked--;
        dconn_refuse(d, c, c->page);
    }
}

/* ---- as the rank's node ---- */


static uint16_t door_load(const struct dsmd *d, uint64_t page)
{
    return __atomic_load_n(&d->hits_door[page], __ATOMIC_SEQ_CST);
}

int dsmd_direct_claimed(const struct dsmd *d, uint64_t page)
{
    return d->hits_door != NULL && (door_load(d, page) & DSM_DOOR_CLAIM) != 0;
}

int dsmd_direct_range_claimed(const struct dsmd *d, uint64_t first, uint64_t n)
{
    for (uint64_t p = first; d->hits_door != NULL && p < first + n; p++)
        if (dsmd_direct_claimed(d, p))
            return 1;
    return 0;
}

/* The claim on page: ask its rank for DSMC_DIRECT_DONE (WAIT) unless it is done already.
 * DIRECT_WAITING, DIRECT_IS_DONE, or DIRECT_GONE (no claim: a refused read let go). */
enum { DIRECT_GONE, DIRECT_WAITING, DIRECT_IS_DONE };
static int claim_wait(struct dsmd *d, uint64_t page)
{
    uint16_t v = door_load(d, page);

    for (;;) {
        if (!(v & DSM_DOOR_CLAIM))
            return DIRECT_GONE;
        if (v & DSM_DOOR_DONE)
            return DIRECT_IS_DONE;
        if ((v & DSM_DOOR_WAIT) ||
            __atomic_compare_exchange_n(&d->hits_door[page], &v, (uint16_t)(v | DSM_DOOR_WAIT), 0, __ATOMIC_SEQ_CST,
                                        __ATOMIC_SEQ_CST))
            return DIRECT_WAITING;
    }
}

/* Deliver the messages held back for page, in the order they came. They leave the list
 * first: one that a newer claim holds again waits for that claim, with those behind it. */
static void held_replay(struct dsmd *d, uint64_t page)
{
    struct dsmd_held *mine = NULL, **tail = &mine, *h;

    for (struct dsmd_held **pp = &d->land.held; (h = *pp) != NULL;) {
        if (h->page != page) {
            pp = &h->next;
            continue;
        }
        *pp = h->next;
        if (d->land.held_tail == &h->next)
            d->land.held_tail = pp;
        d->land.nheld--;
        h->next = NULL;
        *tail = h;
        tail = &h->next;
    }
    while ((h = mine) != NULL) {
        mine = h->next;
        if (!d->aborting)
            dsmd_peers_redeliver(d, h->src, h->buf, h->len);
        free(h);
    }
}

/* The claimant is done (DONE): the node takes the page as its home answered it. Its model
 * learns now (direct_landed), ahead of what the home said after it (held back) and of the
 * revocations that waited (an acquire's drop: release). */
static void landing_end(struct dsmd *d, uint64_t page)
{
    struct dsmd_page *pg = &d->pages[page];
    uint16_t v = door_load(d, page);
    int l = v & DSM_DOOR_LOW, home = dsmd_space_home(&d->space, page);
    struct dsmd_rank *rk;

    if ((v & (DSM_DOOR_CLAIM | DSM_DOOR_DONE)) != (DSM_DOOR_CLAIM | DSM_DOOR_DONE) || l >= d->cfg.local_ranks)
        return;
    rk = &d->ranks[l];
    if (!(pg->direct & DSMD_DIRECT_COUNTED))
        rk->grants[page]++; /* the rank counted it applied after its mprotect (dsm_chan.h) */
    pg->direct = 0;
    rk->c.read_faults++;
    rk->c.direct_faults++;
    rk->c.pages_fetched++;
    if (!pg->clearing)
        dsmd_prot_raise(rk, page, DSM_ACCESS_READ);
    __atomic_store_n(&d->hits_door[page], 0, __ATOMIC_SEQ_CST);
    if (home >= 0 && home != d->cfg.node && d->pops->direct_landed(d->p, page, rk->rank) != DSM_OK) {
        dsmd_abort(d, DSM_EPROTO, "node %d's model refused rank %d's direct read of page %llu", d->cfg.node,
                   rk->rank, (unsigned long long)page);
        return;
    }
    dsmd_pages_landed(d, page);
    held_replay(d, page);
}

int dsmd_direct_park(struct dsmd *d, uint64_t page)
{
    int r;

    if (!dsmd_direct_claimed(d, page))
        return 0;
    r = claim_wait(d, page);
    if (r == DIRECT_IS_DONE && !(d->pages[page].direct & DSMD_DIRECT_SETTLE)) {
        uint64_t *v = d->land.settle;

        if (d->land.nsettle == d->land.capsettle) {
            size_t ncap = d->land.capsettle ? d->land.capsettle * 2 : 16;

            v = realloc(v, ncap * sizeof(*v));
            if (v == NULL) {
                dsmd_abort(d, DSM_ENOMEM, "out of memory ending a direct read");
                return 1;
            }
            d->land.settle = v;
            d->land.capsettle = ncap;
        }
        v[d->land.nsettle++] = page;
        d->pages[page].direct |= DSMD_DIRECT_SETTLE;
    }
    return r != DIRECT_GONE;
}

void dsmd_direct_flush(struct dsmd *d)
{
    while (d->land.nsettle > 0 && !d->aborting) {
        uint64_t page = d->land.settle[--d->land.nsettle];

        d->pages[page].direct &= (uint8_t)~DSMD_DIRECT_SETTLE;
        landing_end(d, page);
    }
}

void dsmd_direct_settle(struct dsmd *d, uint64_t page)
{
    if (dsmd_direct_claimed(d, page) && (door_load(d, page) & DSM_DOOR_DONE))
        landing_end(d, page);
}

void dsmd_direct_count_ahead(struct dsmd *d, uint64_t page)
{
    struct dsmd_page *pg = &d->pages[page];
    uint16_t v = door_load(d, page);

    if (!(v & DSM_DOOR_CLAIM) || (pg->direct & DSMD_DIRECT_COUNTED) || (int)(v & DSM_DOOR_LOW) >= d->cfg.local_ranks)
        return;
    for (;;) {
        if (!(v & DSM_DOOR_CLAIM))
            return; /* refused and let go before it saw COUNTED: nothing to count */
        if (__atomic_compare_exchange_n(&d->hits_door[page], &v,
                                        (uint16_t)(v | DSM_DOOR_COUNTED | ((v & DSM_DOOR_DONE) ? 0 : DSM_DOOR_WAIT)),
                                        0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
            break;
    }
    pg->direct |= DSMD_DIRECT_COUNTED;
    d->ranks[v & DSM_DOOR_LOW].grants[page]++;
    if (v & DSM_DOOR_DONE)
        (void)dsmd_direct_park(d, page); /* ends at the next flush */
}

int dsmd_direct_claimant(const struct dsmd *d, uint64_t page)
{
    uint16_t v = d->hits_door != NULL ? door_load(d, page) : 0;

    return (v & DSM_DOOR_CLAIM) ? (int)(v & DSM_DOOR_LOW) : -1;
}

int dsmd_direct_hold(struct dsmd *d, int src, const dsmw_msg_t *m, const uint8_t *buf, size_t len, int framed)
{
    struct dsmd_held *h;
    int r;

    if (d->hits_door == NULL || m->page >= d->npages || !dsmd_direct_claimed(d, m->page))
        return 0;
    r = claim_wait(d, m->page);
    if (r == DIRECT_IS_DONE)
        landing_end(d, m->page);
    if (r != DIRECT_WAITING)
        return 0;
    if (framed || d->land.nheld >= DSMD_DIRECT_HELD_MAX) {
        dsmd_abort(d, DSM_EPROTO, "node %d sent %s for page %llu while a rank of node %d reads it directly%s", src,
                   dsmw_type_name(m->type), (unsigned long long)m->page, d->cfg.node,
                   framed ? " (with a page)" : " (too many held back)");
        return 1;
    }
    h = malloc(sizeof(*h) + len);
    if (h == NULL) {
        dsmd_abort(d, DSM_ENOMEM, "out of memory holding back a message for page %llu", (unsigned long long)m->page);
        return 1;
    }
    h->next = NULL;
    h->page = m->page;
    h->src = src;
    h->len = len;
    memcpy(h->buf, buf, len);
    *d->land.held_tail = h;
    d->land.held_tail = &h->next;
    d->land.nheld++;
    return 1;
}

int dsmd_direct_done(struct dsmd *d, struct dsmd_chan *c, uint64_t page)
{
    if (page >= d->npages) {
        DSM_WARN("rank %d ended a direct read of page %llu, past the space", dsmd_rank_of(d, c)->rank,
                 (unsigned long long)page);
        return 1;
    }
    /* the claim may have ended already (the daemon found DONE first), or be a newer one */
    if (dsmd_direct_claimant(d, page) == c->lrank)
        dsmd_direct_settle(d, page);
    return 0;
}

void dsmd_direct_fold(struct dsmd *d)
{
    for (uint64_t p = 0; d->hits_door != NULL && p < d->npages; p++) {
        uint16_t v = door_load(d, p);

        if ((v & (DSM_DOOR_CLAIM | DSM_DOOR_DONE)) == (DSM_DOOR_CLAIM | DSM_DOOR_DONE) &&
            (int)(v & DSM_DOOR_LOW) < d->cfg.local_ranks) {
            struct dsmd_counters *c = &d->ranks[v & DSM_DOOR_LOW].c;

            c->read_faults++;
            c->direct_faults++;
            c->pages_fetched++;
        }
    }
}

/* ---- ports, and what a rank needs to connect ---- */

static void info_reply(struct dsmd *d, struct dsmd_chan *c, int node)
{
    struct dsmc_msg m = { .op = DSMC_REPLY, .a = d->direct->port_of[node] };
    const char *addr = d->peer_addr != NULL ? d->peer_addr[node] : NULL;
    const char *colon = addr != NULL ? strrchr(addr, ':') : NULL;

    c->pending_op = 0;
    if (addr != NULL && addr[0] == '[' && colon != NULL && colon > addr && colon[-1] == ']')
        addr++; /* [v6]:port: the host without its brackets */
    if (colon == NULL || colon <= addr || (size_t)(colon - addr) >= sizeof(m.text) || m.a == 0) {
        m.status = DSM_ENOTSUP;
    } else {
        size_t n = (size_t)(colon - addr) - (colon[-1] == ']');

        memcpy(m.text, addr, n);
        m.text[n] = '\0';
    }
    dsmd_chan_send(d, c, &m);
}

void dsmd_direct_request(struct dsmd *d, struct dsmd_chan *c, const struct dsmc_msg *m)
{
    struct dsmd_rank *rk = dsmd_rank_of(d, c);

    if (m->a >= (uint64_t)d->cfg.nnodes || (int)m->a == d->cfg.node || d->direct == NULL) {
        dsmd_chan_reply(d, c, DSM_EINVAL, 0);
        return;
    }
    if (m->op == DSMC_DIRECT_PROOF) {
        char text[256];
        uint8_t nonce[DSM_DIRECT_NONCE], mac[DSMT_SHA256_LEN];
        struct dsmc_msg r = { .op = DSMC_REPLY };

        memcpy(nonce, &m->b, sizeof(nonce)); /* b, c, d, e */
        dsm_direct_proof_text(text, sizeof(text), d->cfg.job_id, (int)m->a, d->cfg.node, rk->rank, nonce);
        dsmt_hmac_sha256(d->cfg.secret, sizeof(d->cfg.secret), text, strlen(text), mac);
        memcpy(&r.b, mac, sizeof(mac));
        dsmd_chan_send(d, c, &r);
        return;
    }
    if (!d->direct->heard[m->a]) { /* answered when its DIRECT_PORT comes */
        c->pending_op = DSMC_DIRECT_INFO;
        c->pending_seq = m->a;
        return;
    }
    info_reply(d, c, (int)m->a);
}

dsm_status_t dsmd_direct_message(struct dsmd *d, int src, const dsmw_msg_t *m)
{
    if (d->direct == NULL || m->addr > 65535 || d->direct->heard[src])
        return DSM_EPROTO;
    d->direct->heard[src] = 1;
    d->direct->port_of[src] = (uint16_t)m->addr;
    for (int i = 0; i < d->nchans; i++) {
        struct dsmd_chan *c = d->chans[i];

        if (c != NULL && c->pending_op == DSMC_DIRECT_INFO && c->pending_seq == (uint64_t)src)
            info_reply(d, c, src);
    }
    return DSM_OK;
}

void dsmd_direct_peer_up(struct dsmd *d, int node)
{
    dsmw_msg_t m;

    if (d->direct == NULL)
        return;
    dsmw_init(&m, DSMW__TYPE__DIRECT_PORT);
    m.addr = d->direct->port;
    m.origin = (uint32_t)d->cfg.first_rank;
    m.node = (uint32_t)d->cfg.node;
    (void)dsmd_send(d, node, &m, DSMT_NO_PAGE);
}

void dsmd_direct_check(struct dsmd *d, int64_t now_ns)
{
    if (d->direct != NULL && d->direct->paused && d->direct->listen_fd >= 0 &&
        dsmd_loop_add(d->loop, d->direct->listen_fd, EPOLLIN, listen_ready, d) == DSM_OK)
        d->direct->paused = 0;
    for (int i = 0; d->direct != NULL && i < d->direct->nconns; i++) {
        struct dsmd_dconn *c = d->direct->conns[i];

        if (c != NULL && c->state == DC_HELLO && now_ns - c->opened_ns > (int64_t)DCONN_HELLO_MS * 1000000)
            dconn_close(d, c, "no HELLO in time");
    }
}

uint16_t dsmd_direct_port(const struct dsmd *d)
{
    return d->direct != NULL ? d->direct->port : 0;
}

void dsmd_direct_stats(const struct dsmd *d, uint64_t *reads, uint64_t *refused)
{
    *reads = d->direct != NULL ? d->direct->reads : 0;
    *refused = d->direct != NULL ? d->direct->refused : 0;
}

/* ---- set-up ---- */

/* Listen on the host of the node's mesh address, any port. A status (logged) if not. */
static dsm_status_t listen_on(struct dsmd *d, struct dsmd_direct *x)
{
    char host[128];
    const char *colon = strrchr(d->listen_addr, ':');
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE },
                    *ai = NULL;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    int one = 1, rc;

    if (colon == NULL || (size_t)(colon - d->listen_addr) >= sizeof(host)) {
        DSM_WARN("no direct reads from this node: cannot tell the host of %s", d->listen_addr);
        return DSM_ECONFIG;
    }
    memcpy(host, d->listen_addr, (size_t)(colon - d->listen_addr));
    host[colon - d->listen_addr] = '\0';
    if (host[0] == '[' && host[strlen(host) - 1] == ']') { /* [v6] */
        memmove(host, host + 1, strlen(host));
        host[strlen(host) - 1] = '\0';
    }
    if ((rc = getaddrinfo(host, "0", &hints, &ai)) != 0) {
        DSM_WARN("no direct reads from this node: address %s: %s", host, gai_strerror(rc));
        return DSM_ECONFIG;
    }
    x->listen_fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (x->listen_fd < 0 || setsockopt(x->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(x->listen_fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(x->listen_fd, 128) != 0 ||
        getsockname(x->listen_fd, (struct sockaddr *)&ss, &sl) != 0) {
        DSM_WARN("no direct reads from this node: listening on %s: %s", host, strerror(errno));
        freeaddrinfo(ai);
        return DSM_ESYS;
    }
    freeaddrinfo(ai);
    x->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                             : ((struct sockaddr_in *)&ss)->sin_port);
    return dsmd_loop_add(d->loop, x->listen_fd, EPOLLIN, listen_ready, d);
}

dsm_status_t dsmd_direct_init(struct dsmd *d)
{
    struct dsmd_direct *x;
    dsm_status_t st;

    /* the same conditions as the door's (hits.c), but for the node's own cache and hits:
     * a node serves other nodes' ranks whatever it does with its own */
    if (!d->cfg.direct || d->cfg.nnodes < 2 || d->pops->direct_idle == NULL || strcmp(d->cfg.transport, "rdma") == 0)
        return DSM_OK;
    x = calloc(1, sizeof(*x));
    if (x == NULL || (x->port_of = calloc((size_t)d->cfg.nnodes, sizeof(*x->port_of))) == NULL ||
        (x->heard = calloc((size_t)d->cfg.nnodes, 1)) == NULL) {
        if (x != NULL)
            free(x->port_of);
        free(x);
        return DSM_ENOMEM;
    }
    x->listen_fd = -1;
    d->direct = x;
    st = listen_on(d, x);
    if (st != DSM_OK) {
        /* logged; the ranks of other nodes then read through their daemons (port 0: none) */
        if (x->listen_fd >= 0)
            close(x->listen_fd);
        x->listen_fd = -1;
        x->port = 0;
        x->paused = 1; /* nothing to watch */
    }
    return DSM_OK;
}

void dsmd_direct_fini(struct dsmd *d)
{
    struct dsmd_direct *x = d->direct;

    while (d->land.held != NULL) { /* the daemon ends with claims standing */
        struct dsmd_held *h = d->land.held;

        d->land.held = h->next;
        free(h);
    }
    d->land.held_tail = &d->land.held;
    d->land.nheld = 0;
    free(d->land.settle);
    d->land.settle = NULL;
    d->land.nsettle = d->land.capsettle = 0;
    if (x == NULL)
        return;
    for (int i = 0; i < x->nconns; i++)
        if (x->conns[i] != NULL)
            dconn_close(d, x->conns[i], NULL);
    if (x->listen_fd >= 0) {
        if (!x->paused)
            dsmd_loop_del(d->loop, x->listen_fd);
        close(x->listen_fd);
    }
    free(x->conns);
    free(x->port_of);
    free(x->heard);
    free(x);
    d->direct = NULL;
}

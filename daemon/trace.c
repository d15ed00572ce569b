/*
 * trace.c - the timeline of a traced job (dsmrun --trace): what this node's ranks waited
 * for and what the daemon did, as events printed to dsmrun at the end.
 *
 * Everything is seen from the daemon, so a rank's fault path is the same code whether a
 * job is traced or not: a rank's request starts its event when the daemon reads it and
 * ends it when the daemon sends the answer (the rank's signal delivery and its mprotect
 * are outside). The daemon's own events are the protocol's page transactions (a fault()
 * until its grant()), revocations (until every rank applied them) and every message to or
 * from a peer. Events sit in memory (at most DSM_TRACE_EVENTS, default 4M per node; past
 * that they are counted as dropped and dsmrun says so) and are printed after STATS.
 *
 * One clock: after the mesh is up every node but 0 exchanges CLOCK_REQ/CLOCK_REPLY with
 * node 0 TRACE_PINGS times; the reply with the shortest round trip gives the offset of node
 * 0's clock (its stamp minus the midpoint of ours), precise to half that round trip.
 * dsmrun adds it to every timestamp of the node.
 *
 * Messages are matched without an identifier on the wire: both transports deliver a
 * peer's messages in order, so the k-th message this node sent to node n is the k-th
 * node n received from it (flow ids are (src, dst, k)). Counted are the messages that go
 * through dsmd_send, as --stats counts them: heartbeats and aborts, which the watchdog and
 * the abort path send directly, are counted on neither side (peers.c). CLOCK_* and
 * FS_WROTE are ordinary messages and appear in --stats' counts too.
 *
 * Output lines (after STATS):
 *   TRACE-CLOCK <offset_ns> <rtt_ns>      TRACE-DROPPED <n>      TRACE-END <events printed>
 *   T <kind> <ts_ns> <dur_ns> <who> <tid> <x> <a> <b> <flow> [<type name>]
 * Rank events (who = rank, tid = the channel: one per thread; x = the answer's status):
 * fault-read/fault-write (a = page, x = its home instead), lock/trylock/unlock/cond-wait/
 * cond-signal (a = lock or cond), barrier, finalize, coalloc/malloc (a = bytes, b = the
 * address), cofree/free/atomic (a = address); flow = the channel's kind (CHAN_MAIN: the
 * thread that called dsm_init). Node events (who = node): fetch and revoke
 * (a = page, x = access), send and recv (tid = peer, x = message type, a = page, b = bytes,
 * flow = k above, then the type's name).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dsm_log.h"
#include "dsmd.h"

#define TRACE_PINGS 8
#define TRACE_DEFAULT_EVENTS (4u << 20)

enum tev_kind {
    TEV_RANK = 0,  /* a rank's request: `op` holds its DSMC op */
    TEV_FETCH,
    TEV_REVOKE,
    TEV_SEND,
    TEV_RECV,
};

struct tev {
    int64_t  ts, dur;
    uint8_t  kind, write;
    uint16_t op;
    int32_t  tid;
    int32_t  who, x;
    uint64_t a, b, flow;
};

struct dsmd_trace {
    struct tev *ev;
    size_t   n, cap, max;
    uint64_t dropped;
    int64_t  offset, rtt;   /* node 0's clock minus ours; the round trip it came from */
    int      pings;
    uint64_t *sent, *recvd; /* messages to / from each node so far */
    int64_t  *fetch_t0;     /* per page: when its fault() went to the protocol */
};

dsm_status_t dsmd_trace_init(struct dsmd *d)
{
    struct dsmd_trace *t;
    const char *env = getenv("DSM_TRACE_EVENTS");

    if (!d->cfg.trace)
        return DSM_OK;
    t = calloc(1, sizeof(*t));
    if (t == NULL)
        return DSM_ENOMEM;
    t->max = TRACE_DEFAULT_EVENTS;
    if (env != NULL && *env != '\0') {
        char *end;
        unsigned long long v = strtoull(env, &end, 10);

        if (*end != '\0' || v == 0) {
            fprintf(stderr, "dsmd: DSM_TRACE_EVENTS=%s is not a positive number of events\n", env);
            free(t);
            return DSM_ECONFIG;
        }
        t->max = (size_t)v;
    }
    t->rtt = -1;
    t->sent = calloc((size_t)d->cfg.nnodes, sizeof(*t->sent));
    t->recvd = calloc((size_t)d->cfg.nnodes, sizeof(*t->recvd));
    t->fetch_t0 = calloc(d->npages, sizeof(*t->fetch_t0)); /* untouched pages cost nothing */
    d->trace = t;
    if (t->sent == NULL || t->recvd == NULL || t->fetch_t0 == NULL) {
        dsmd_trace_fini(d);
        return DSM_ENOMEM;
    }
    return DSM_OK;
}

void dsmd_trace_fini(struct dsmd *d)
{
    struct dsmd_trace *t = d->trace;

    if (t == NULL)
        return;
    free(t->ev);
    free(t->sent);
    free(t->recvd);
    free(t->fetch_t0);
    free(t);
    d->trace = NULL;
}

/* A new event slot, or NULL (counted as dropped) when the buffer is full. */
static struct tev *tev_new(struct dsmd_trace *t)
{
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 4096;
        struct tev *ev;

        if (cap > t->max)
            cap = t->max;
        if (t->n == cap || (ev = realloc(t->ev, cap * sizeof(*ev))) == NULL) {
            t->dropped++;
            return NULL;
        }
        t->ev = ev;
        t->cap = cap;
    }
    return memset(&t->ev[t->n++], 0, sizeof(struct tev));
}

void dsmd_trace_request(struct dsmd *d, struct dsmd_chan *c, const struct dsmc_msg *m)
{
    c->tr_t0 = dsmd_now_ns();
    c->tr_op = m->op;
    c->tr_a = m->a;
    c->tr_write = m->op == DSMC_FAULT && m->b != 0;
}

void dsmd_trace_answer(struct dsmd *d, struct dsmd_chan *c, const struct dsmc_msg *m)
{
    struct tev *e;
    struct dsmd_rank *rk = dsmd_rank_of(d, c);

    if (c->tr_op == 0 || rk == NULL)
        return;
    if ((e = tev_new(d->trace)) != NULL) {
        e->kind = TEV_RANK;
        e->op = (uint16_t)c->tr_op;
        e->write = (uint8_t)c->tr_write;
        e->ts = c->tr_t0;
        e->dur = dsmd_now_ns() - c->tr_t0;
        e->who = rk->rank;
        e->tid = c->id;
        e->flow = (uint64_t)c->kind; /* dsmrun names the main thread's channel */
        e->a = c->tr_a;
        e->x = c->tr_op == DSMC_FAULT ? dsmd_space_home(&d->space, c->tr_a) : m->status;
        e->b = (c->tr_op == DSMC_COALLOC || c->tr_op == DSMC_MALLOC) ? m->a : 0;
    }
    c->tr_op = 0;
}

void dsmd_trace_fetch_start(struct dsmd *d, uint64_t page)
{
    d->trace->fetch_t0[page] = dsmd_now_ns();
}

void dsmd_trace_fetch_done(struct dsmd *d, uint64_t page, int access)
{
    struct dsmd_trace *t = d->trace;
    struct tev *e;

    if (t->fetch_t0[page] == 0 || (e = tev_new(t)) == NULL)
        return;
    e->kind = TEV_FETCH;
    e->ts = t->fetch_t0[page];
    e->dur = dsmd_now_ns() - e->ts;
    e->who = d->cfg.node;
    e->a = page;
    e->x = access;
    t->fetch_t0[page] = 0;
}

void dsmd_trace_revoke(struct dsmd *d, uint64_t page, int access, int64_t t0)
{
    struct tev *e = tev_new(d->trace);

    if (e == NULL)
        return;
    e->kind = TEV_REVOKE;
    e->ts = t0;
    e->dur = dsmd_now_ns() - t0;
    e->who = d->cfg.node;
    e->a = page;
    e->x = access;
}

void dsmd_trace_message(struct dsmd *d, int out, int peer, const dsmw_msg_t *m, size_t bytes)
{
    struct dsmd_trace *t = d->trace;
    struct tev *e = tev_new(t);
    uint64_t k = out ? t->sent[peer]++ : t->recvd[peer]++; /* counted even when dropped */

    if (e == NULL)
        return;
    e->kind = out ? TEV_SEND : TEV_RECV;
    e->ts = dsmd_now_ns();
    e->who = d->cfg.node;
    e->tid = peer;
    e->x = m->type;
    e->a = m->page;
    e->b = bytes;
    e->flow = k;
}

/* ---- one clock ---- */

static void clock_ping(struct dsmd *d)
{
    dsmw_msg_t m;

    dsmw_init(&m, DSMW__TYPE__CLOCK_REQ);
    m.stamp = (uint64_t)dsmd_now_ns();
    dsmd_send(d, 0, &m, DSMT_NO_PAGE);
}

void dsmd_trace_mesh_up(struct dsmd *d)
{
    if (d->trace != NULL && d->cfg.node != 0)
        clock_ping(d);
}

dsm_status_t dsmd_trace_clock_message(struct dsmd *d, int src, const dsmw_msg_t *m)
{
    struct dsmd_trace *t = d->trace;
    int64_t now = dsmd_now_ns(), rtt;

    if (m->type == DSMW__TYPE__CLOCK_REQ) {
        dsmw_msg_t r;

        if (d->cfg.node != 0)
            return DSM_EPROTO;
        dsmw_init(&r, DSMW__TYPE__CLOCK_REPLY);
        r.stamp = m->stamp;
        r.value = (uint64_t)now;
        (void)dsmd_send(d, src, &r, DSMT_NO_PAGE); /* a lost peer fails the job there */
        return DSM_OK;
    }
    /* CLOCK_REPLY: only to a traced node's ping, from node 0, about a time in our past */
    if (t == NULL || src != 0 || t->pings >= TRACE_PINGS || (int64_t)m->stamp > now || (int64_t)m->stamp <= 0)
        return DSM_EPROTO;
    rtt = now - (int64_t)m->stamp;
    if (t->rtt < 0 || rtt < t->rtt) {
        t->rtt = rtt;
        t->offset = (int64_t)m->value - ((int64_t)m->stamp + rtt / 2);
    }
    if (++t->pings < TRACE_PINGS)
        clock_ping(d);
    return DSM_OK;
}

/* ---- output ---- */

static const char *rank_kind(const struct tev *e)
{
    switch (e->op) {
    case DSMC_FAULT:       return e->write ? "fault-write" : "fault-read";
    case DSMC_COALLOC:     return "coalloc";
    case DSMC_COFREE:      return "cofree";
    case DSMC_MALLOC:      return "malloc";
    case DSMC_FREE:        return "free";
    case DSMC_LOCK:        return "lock";
    case DSMC_TRYLOCK:     return "trylock";
    case DSMC_UNLOCK:      return "unlock";
    case DSMC_COND_WAIT:   return "cond-wait";
    case DSMC_COND_SIGNAL: return "cond-signal";
    case DSMC_BARRIER:     return "barrier";
    case DSMC_FINALIZE:    return "finalize";
    case DSMC_ATOMIC:      return "atomic";
    default:               return "request";
    }
}

static const char *kind_name(const struct tev *e)
{
    switch (e->kind) {
    case TEV_RANK:   return rank_kind(e);
    case TEV_FETCH:  return "fetch";
    case TEV_REVOKE: return "revoke";
    case TEV_SEND:   return "send";
    default:         return "recv";
    }
}

void dsmd_trace_print(struct dsmd *d)
{
    struct dsmd_trace *t = d->trace;

    if (t == NULL)
        return;
    printf("TRACE-CLOCK %lld %lld\n", (long long)(d->cfg.node == 0 ? 0 : t->offset),
           (long long)(d->cfg.node == 0 ? 0 : t->rtt));
    if (t->dropped)
        printf("TRACE-DROPPED %llu\n", (unsigned long long)t->dropped);
    for (size_t i = 0; i < t->n; i++) {
        const struct tev *e = &t->ev[i];

        /* T kind ts dur who tid x a b flow [message type's name] */
        printf("T %s %lld %lld %d %d %d %llu %llu %llu%s%s\n", kind_name(e), (long long)e->ts, (long long)e->dur,
               e->who, e->tid, e->x, (unsigned long long)e->a, (unsigned long long)e->b,
               (unsigned long long)e->flow, e->kind >= TEV_SEND ? " " : "",
               e->kind >= TEV_SEND ? dsmw_type_name(e->x) : "");
    }
    printf("TRACE-END %zu\n", t->n); /* dsmrun: every line came (a killed daemon's did not) */
    fflush(stdout);
}

/* proto_harness.c - see proto_harness.h. Long on purpose: it stands in for a daemon's
 * services, queues, synchronisation and atomics in one place, so that a protocol module's
 * unit suite needs nothing else. */
#include "proto_harness.h"

#include "atomic_word.h"
#include "sync/gather.h"
#include "sync/lockq.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A queued message: its encoding and, when a frame moves with it, the frame as it was at send. */
struct ph_msg {
    struct ph_msg *next;
    uint8_t *bytes;
    size_t len;
    uint64_t attach;
    uint8_t *frame;
    int type;
};

struct ph_revoke {
    int node;
    uint64_t page;
    dsmp_done_fn done;
    void *arg;
};

struct ph_node {
    struct ph *h;
    int id;
    dsmp_t *p;
    uint8_t *frames;
    uint8_t *access;   /* node-level access per page */
    uint8_t *want;     /* access of the outstanding fault per page, 0 if none */
    int *want_origin;
    uint8_t *refault;  /* a grant did not satisfy the fault: call fault() again */
    uint8_t *parked;   /* daemon_revoke: the fault waits for the page's revocations */
    uint8_t *evicting; /* an eviction's done has not run */
    uint8_t *evict_parked; /* a fault waits for the eviction */
    uint32_t *evict_gen;   /* bumped by a reset: a done from before it is ignored */
    int64_t timer_us;  /* armed timer's delay, -1 if none */
    size_t timer_calls;
};

/* A synchronisation step of a node, waiting for its module (see daemon/sync.c). */
struct ph_step {
    struct ph_step *next;      /* every step, freed at destroy */
    struct ph *h;
    int node, type;            /* type: the message it sends (UNLOCK, BARRIER_ARRIVE) or applies */
    uint32_t lock;
    uint64_t epoch, token;
    int *done;
    int finished;
};


struct ph {
    struct ph_config cfg;
    int *home;
    int nranks;
    struct ph_node nodes[PH_MAX_NODES];
    struct ph_msg *qhead[PH_MAX_NODES][PH_MAX_NODES], *qtail[PH_MAX_NODES][PH_MAX_NODES];
    size_t qlen[PH_MAX_NODES][PH_MAX_NODES];
    int rr;                          /* round-robin position over channels */
    struct ph_revoke *revokes;
    size_t nrevokes, caprevokes;
    struct ph_sent *sent;
    size_t nsent, capsent;
    struct ph_event *events;
    size_t nevents, capevents;
    uint64_t *last;                  /* current value per page */
    uint64_t serial;
    uint64_t *counters;              /* [rank][counter] */
    uint64_t faults_issued, faults_granted, faults_dropped, evictions;
    size_t nerrors;
    char first_error[512];
    char why[512];
    /* synchronisation */
    struct ph_step *steps;
    uint64_t next_token;
    struct dsmd_lockq *locks[PH_MAX_NODES];     /* each node's lock manager: the daemon's code */
    uint8_t held[PH_MAX_NODES][PH_MAX_LOCKS];   /* acquired by the node's first rank */
    uint64_t bar_epoch[PH_MAX_NODES];           /* barriers completed per node */
    struct ph_step *bar_wait[PH_MAX_NODES];     /* the node's barrier step in progress */
    struct dsmd_gather_mgr bar_mgr;             /* node 0: the daemon's count (sync/gather.h) */
    /* atomics (ph_atomic): every one ever started, by token; pages they were used on */
    struct ph_atomic_op **atomics;
    size_t natomics, capatomics;
    uint8_t *atomic_page;
};

#define NCOUNTERS (DSMP_PAGES_FETCHED_AGAIN + 1)

static void ph_error(struct ph *h, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void ph_error(struct ph *h, const char *fmt, ...)
{
    va_list ap;

    if (h->nerrors++ == 0) {
        va_start(ap, fmt);
        vsnprintf(h->first_error, sizeof(h->first_error), fmt, ap);
        va_end(ap);
    }
}

/* Grow *v (elements of size sz) to hold one more; aborts the test process on ENOMEM. */
static void *grow(void *v, size_t *cap, size_t n, size_t sz)
{
    if (n < *cap)
        return v;
    *cap = *cap ? *cap * 2 : 64;
    v = realloc(v, *cap * sz);
    if (v == NULL) {
        fprintf(stderr, "proto_harness: out of memory\n");
        abort();
    }
    return v;
}

/* ---- page contents ------------------------------------------------------------------ */

static uint64_t pattern(uint64_t value, size_t word)
{
    return value ? value * 0x9e3779b97f4a7c15ull + word : 0;
}

static void fill(uint8_t *f, size_t page_size, uint64_t value)
{
    for (size_t w = 0; w < page_size / 8; w++) {
        uint64_t x = pattern(value, w);

        memcpy(f + w * 8, &x, 8);
    }
}

int ph_frame_is(struct ph *h, int node, uint64_t page, uint64_t value)
{
    const uint8_t *f = ph_frame(h, node, page);

    for (size_t w = 0; w < h->cfg.page_size / 8; w++) {
        uint64_t x;

        memcpy(&x, f + w * 8, 8);
        if (x != pattern(value, w))
            return 0;
    }
    return 1;
}

/* ---- services lent to the modules --------------------------------------------------- */

static uint64_t svc_alloc_end(void *ctx, uint64_t page)
{
    struct ph_node *n = ctx;
    uint64_t k = n->h->cfg.alloc_pages;

    return k == 0 ? n->h->cfg.npages : (page / k + 1) * k;
}

static int svc_home(void *ctx, uint64_t page)
{
    struct ph_node *n = ctx;

    return page < n->h->cfg.npages ? n->h->home[page] : -1;
}

static void *svc_frame(void *ctx, uint64_t page)
{
    struct ph_node *n = ctx;

    if (page >= n->h->cfg.npages) {
        ph_error(n->h, "node %d: frame() of page %llu, out of range", n->id, (unsigned long long)page);
        return NULL;
    }
    return n->frames + page * n->h->cfg.page_size;
}

static dsm_status_t svc_send(void *ctx, int dst, dsmw_msg_t *m, uint64_t attach)
{
    struct ph_node *n = ctx;
    struct ph *h = n->h;
    uint8_t *buf;
    size_t len;
    struct ph_msg *q;

    if (dst < 0 || dst >= h->cfg.nnodes) {
        ph_error(h, "node %d: send of %s to node %d, out of range", n->id, dsmw_type_name(m->type), dst);
        return DSM_EINVAL;
    }
    if (attach != DSMP_NO_FRAME && attach >= h->cfg.npages) {
        ph_error(h, "node %d: %s with frame %llu, out of range", n->id, dsmw_type_name(m->type),
                 (unsigned long long)attach);
        return DSM_EINVAL;
    }
    buf = malloc(DSMW_MAX_MSG);
    q = calloc(1, sizeof(*q));
    if (buf == NULL || q == NULL || dsmw_encode(m, buf, DSMW_MAX_MSG, &len) != DSM_OK) {
        ph_error(h, "node %d: cannot encode %s", n->id, dsmw_type_name(m->type));
        free(buf);
        free(q);
        return DSM_EINVAL;
    }
    q->bytes = buf;
    q->len = len;
    q->attach = attach;
    q->type = m->type;
    if (attach != DSMP_NO_FRAME) {
        q->frame = malloc(h->cfg.page_size);
        if (q->frame == NULL) {
            fprintf(stderr, "proto_harness: out of memory\n");
            abort();
        }
        memcpy(q->frame, n->frames + attach * h->cfg.page_size, h->cfg.page_size);
    }
    if (h->qtail[n->id][dst])
        h->qtail[n->id][dst]->next = q;
    else
        h->qhead[n->id][dst] = q;
    h->qtail[n->id][dst] = q;
    h->qlen[n->id][dst]++;
    h->sent = grow(h->sent, &h->capsent, h->nsent, sizeof(*h->sent));
    h->sent[h->nsent++] = (struct ph_sent){ .src = n->id, .dst = dst, .type = m->type, .page = m->page,
                                            .access = (int)m->access, .origin = (int)m->origin,
                                            .node = (int)m->node, .framed = attach != DSMP_NO_FRAME,
                                            .lock = m->lock, .data_len = m->data.len, .count = m->count,
                                            .n_vclock = (int)m->n_vclock };
    for (size_t k = 0; k < m->n_vclock && k < PH_MAX_NODES; k++)
        h->sent[h->nsent - 1].vclock[k] = m->vclock[k];
    return DSM_OK;
}

static void log_event(struct ph *h, int node, enum ph_event_kind kind, uint64_t page, int access)
{
    h->events = grow(h->events, &h->capevents, h->nevents, sizeof(*h->events));
    h->events[h->nevents++] = (struct ph_event){ .node = node, .kind = kind, .page = page, .access = access };
}

static int access_ok(struct ph *h, struct ph_node *n, const char *what, uint64_t page, int access)
{
    if (page >= h->cfg.npages || access < DSM_ACCESS_NONE || access > DSM_ACCESS_WRITE) {
        ph_error(h, "node %d: %s(page %llu, access %d) out of range", n->id, what, (unsigned long long)page, access);
        return 0;
    }
    return 1;
}

static void svc_grant(void *ctx, uint64_t page, int access)
{
    struct ph_node *n = ctx;
    struct ph *h = n->h;

    if (!access_ok(h, n, "grant", page, access))
        return;
    log_event(h, n->id, PH_EV_GRANT, page, access);
    if (access < n->access[page])
        ph_error(h, "node %d: grant of %d lowers page %llu from %d", n->id, access, (unsigned long long)page,
                 n->access[page]);
    n->access[page] = (uint8_t)access;
    if (n->want[page] == 0) {
        ph_error(h, "node %d: grant of page %llu with no fault outstanding", n->id, (unsigned long long)page);
        return;
    }
    if (access >= n->want[page]) {
        n->want[page] = 0;
        h->faults_granted++;
        if (h->cfg.write_on_grant && access == DSM_ACCESS_WRITE)
            ph_write(h, n->id, page);
    } else {
        n->refault[page] = 1;   /* the waiters are not satisfied: the daemon faults again */
    }
}

static void svc_set_access(void *ctx, uint64_t page, int access)
{
    struct ph_node *n = ctx;

    if (!access_ok(n->h, n, "set_access", page, access))
        return;
    log_event(n->h, n->id, PH_EV_SET_ACCESS, page, access);
    if (access < n->access[page])
        ph_error(n->h, "node %d: set_access of %d lowers page %llu from %d", n->id, access,
                 (unsigned long long)page, n->access[page]);
    n->access[page] = (uint8_t)access;
}

static void svc_revoke(void *ctx, uint64_t page, int access, dsmp_done_fn done, void *arg)
{
    struct ph_node *n = ctx;
    struct ph *h = n->h;

    if (!access_ok(h, n, "revoke", page, access))
        return;
    log_event(h, n->id, PH_EV_REVOKE, page, access);
    if (access > n->access[page] && !h->cfg.daemon_revoke)
        ph_error(h, "node %d: revoke to %d raises page %llu from %d", n->id, access, (unsigned long long)page,
                 n->access[page]);
    if (access < n->access[page] || !h->cfg.daemon_revoke)
        n->access[page] = (uint8_t)access;
    if (h->cfg.revoke == PH_REVOKE_SYNC) {
        done(n->p, arg);
        return;
    }
    h->revokes = grow(h->revokes, &h->caprevokes, h->nrevokes, sizeof(*h->revokes));
    h->revokes[h->nrevokes++] = (struct ph_revoke){ .node = n->id, .page = page, .done = done, .arg = arg };
}

static void svc_count(void *ctx, int origin, enum dsmp_counter c, uint64_t k)
{
    struct ph_node *n = ctx;
    struct ph *h = n->h;

    if (origin < 0 || origin >= h->nranks || (unsigned)c >= NCOUNTERS) {
        ph_error(h, "node %d: count(origin %d, counter %d) out of range", n->id, origin, (int)c);
        return;
    }
    h->counters[origin * NCOUNTERS + c] += k;
}

static int svc_mapped(void *ctx, uint64_t page)
{
    struct ph_node *n = ctx;

    return page < n->h->cfg.npages && n->access[page] != DSM_ACCESS_NONE;
}

static void svc_timer(void *ctx, uint64_t us)
{
    struct ph_node *n = ctx;

    n->timer_us = (int64_t)us;
    n->timer_calls++;
}

/* A module failing the job is never expected of a harness run: stop the test there. */
static void svc_fail(void *ctx, dsm_status_t st, const char *why)
{
    struct ph_node *n = ctx;

    fprintf(stderr, "proto_harness: node %d failed the job (%s): %s\n", n->id, dsm_status_str(st), why);
    abort();
}

/* ---- life cycle --------------------------------------------------------------------- */

struct ph *ph_create(const struct ph_config *cfg)
{
    struct ph *h;

    if (cfg->nnodes < 1 || cfg->nnodes > PH_MAX_NODES || cfg->npages == 0 || cfg->page_size % 8 ||
        cfg->page_size == 0) {
        fprintf(stderr, "proto_harness: bad configuration\n");
        return NULL;
    }
    h = calloc(1, sizeof(*h));
    if (h == NULL)
        return NULL;
    h->cfg = *cfg;
    h->nranks = cfg->nnodes * PH_RANKS_PER_NODE;
    h->home = calloc(cfg->npages, sizeof(*h->home));
    h->last = calloc(cfg->npages, sizeof(*h->last));
    h->atomic_page = calloc(cfg->npages, 1);
    h->counters = calloc((size_t)h->nranks * NCOUNTERS, sizeof(*h->counters));
    if (h->home == NULL || h->last == NULL || h->atomic_page == NULL || h->counters == NULL)
        goto fail;
    memcpy(h->home, cfg->home, cfg->npages * sizeof(*h->home));
    for (int i = 0; i < cfg->nnodes; i++) {
        struct ph_node *n = &h->nodes[i];

        n->h = h;
        n->id = i;
        n->frames = calloc(cfg->npages, cfg->page_size);
        n->access = calloc(cfg->npages, 1);
        n->want = calloc(cfg->npages, 1);
        n->refault = calloc(cfg->npages, 1);
        n->want_origin = calloc(cfg->npages, sizeof(int));
        n->parked = calloc(cfg->npages, 1);
        n->evicting = calloc(cfg->npages, 1);
        n->evict_parked = calloc(cfg->npages, 1);
        n->evict_gen = calloc(cfg->npages, sizeof(uint32_t));
        n->timer_us = -1;
        h->locks[i] = dsmd_lockq_new(16);
        if (!n->frames || !n->access || !n->want || !n->refault || !n->want_origin || !n->parked || !h->locks[i] ||
            !n->evicting || !n->evict_parked || !n->evict_gen)
            goto fail;
    }
    for (int i = 0; i < cfg->nnodes; i++) {
        struct ph_node *n = &h->nodes[i];
        struct dsmp_services svc = {
            .ctx = n, .self = i, .any_rank = ph_rank(i), .nnodes = cfg->nnodes, .npages = cfg->npages,
            .page_size = cfg->page_size, .partial = cfg->partial, .home = svc_home, .alloc_end = svc_alloc_end, .frame = svc_frame, .send = svc_send,
            .grant = svc_grant, .set_access = svc_set_access, .revoke = svc_revoke, .count = svc_count,
            .timer = svc_timer, .fail = svc_fail, .mapped = cfg->mapped ? svc_mapped : NULL,
        };

        /* causal: partial replicas are its default; a harness without `partial` runs full ones */
        setenv("DSM_CAUSAL_REPLICAS", cfg->partial ? "partial" : "full", 1);
        if (cfg->ops->create(&svc, &n->p) != DSM_OK) {
            n->p = NULL;
            goto fail;
        }
    }
    ph_reset(h, 0, cfg->npages);
    ph_clear_log(h);
    return h;

fail:
    ph_destroy(h);
    return NULL;
}

static void free_msg(struct ph_msg *q)
{
    free(q->bytes);
    free(q->frame);
    free(q);
}

void ph_discard(struct ph *h)
{
    for (int s = 0; s < PH_MAX_NODES; s++)
        for (int d = 0; d < PH_MAX_NODES; d++) {
            struct ph_msg *q;

            while ((q = h->qhead[s][d]) != NULL) {
                h->qhead[s][d] = q->next;
                free_msg(q);
            }
            h->qtail[s][d] = NULL;
            h->qlen[s][d] = 0;
        }
    h->nrevokes = 0;
}

void ph_destroy(struct ph *h)
{
    if (h == NULL)
        return;
    ph_discard(h);
    for (int i = 0; i < PH_MAX_NODES; i++) {
        struct ph_node *n = &h->nodes[i];

        if (n->p)
            h->cfg.ops->destroy(n->p);
        free(n->frames);
        free(n->access);
        free(n->want);
        free(n->refault);
        free(n->want_origin);
        free(n->parked);
        free(n->evicting);
        free(n->evict_parked);
        free(n->evict_gen);
    }
    while (h->steps) {
        struct ph_step *st = h->steps;

        h->steps = st->next;
        free(st);
    }
    for (int i = 0; i < PH_MAX_NODES; i++)
        dsmd_lockq_free(h->locks[i]);
    free(h->revokes);
    free(h->sent);
    free(h->events);
    free(h->home);
    free(h->last);
    free(h->atomic_page);
    for (size_t i = 0; i < h->natomics; i++)
        free(h->atomics[i]);
    free(h->atomics);
    free(h->counters);
    free(h);
}

dsmp_t *ph_proto(struct ph *h, int node)
{
    return h->nodes[node].p;
}

int ph_rank(int node)
{
    return node * PH_RANKS_PER_NODE;
}

void ph_reset(struct ph *h, uint64_t first, uint64_t n)
{
    for (int i = 0; i < h->cfg.nnodes; i++) {
        struct ph_node *nd = &h->nodes[i];

        memset(nd->frames + first * h->cfg.page_size, 0, n * h->cfg.page_size);
        memset(nd->access + first, DSM_ACCESS_NONE, n);
        for (uint64_t p = first; p < first + n; p++)
            h->faults_dropped += nd->want[p] != 0;
        memset(nd->want + first, 0, n);
        memset(nd->refault + first, 0, n);
        memset(nd->parked + first, 0, n);
        memset(nd->evicting + first, 0, n);
        memset(nd->evict_parked + first, 0, n);
        for (uint64_t p = first; p < first + n; p++)
            nd->evict_gen[p]++;
    }
    for (uint64_t p = first; p < first + n; p++)
        h->last[p] = 0;
    for (int i = 0; i < h->cfg.nnodes; i++)
        h->cfg.ops->reset(h->nodes[i].p, first, n);
}

/* ---- faults and delivery ------------------------------------------------------------ */

/* The `ahead` hint of the next fault() (ph_config.ahead). */
static uint32_t ph_ahead(struct ph *h)
{
    if (h->cfg.ahead <= 1)
        return 1;
    return (uint32_t)((h->faults_issued * 7 + h->nsent) % h->cfg.ahead) + 1;
}

static size_t revokes_pending_on(struct ph *h, int node, uint64_t page)
{
    size_t k = 0;

    for (size_t i = 0; i < h->nrevokes; i++)
        k += h->revokes[i].node == node && h->revokes[i].page == page;
    return k;
}

/* daemon_revoke: the page's revocations are done; a parked fault is granted by the access
 * the page has now, or goes to the module (daemon/pages.c: page_kick). */
static void unpark(struct ph *h, int node, uint64_t page)
{
    struct ph_node *n = &h->nodes[node];

    if (!n->parked[page] || revokes_pending_on(h, node, page) > 0)
        return;
    n->parked[page] = 0;
    if (n->want[page] == 0)
        return;
    if (n->access[page] >= n->want[page]) {
        n->want[page] = 0;
        h->faults_granted++;
        return;
    }
    h->cfg.ops->fault(n->p, page, n->want[page], n->want_origin[page], ph_ahead(h));
}

static dsm_status_t sync_message(struct ph *h, int src, int dst, const dsmw_msg_t *m);

static int is_sync_type(int type)
{
    return type == DSMW__TYPE__LOCK_REQ || type == DSMW__TYPE__LOCK_GRANT || type == DSMW__TYPE__UNLOCK ||
           type == DSMW__TYPE__BARRIER_ARRIVE || type == DSMW__TYPE__BARRIER_RELEASE ||
           type == DSMW__TYPE__ATOMIC_REQ || type == DSMW__TYPE__ATOMIC_REPLY;
}

int ph_fault(struct ph *h, int node, uint64_t page, int access, int origin)
{
    return ph_fault_ahead(h, node, page, access, origin, 0);
}

int ph_fault_ahead(struct ph *h, int node, uint64_t page, int access, int origin, uint32_t ahead)
{
    struct ph_node *n = &h->nodes[node];

    if (access <= n->access[page] || n->want[page] != 0)
        return -1;
    n->want[page] = (uint8_t)access;
    n->want_origin[page] = origin;
    h->faults_issued++;
    if (n->evicting[page]) {
        n->evict_parked[page] = 1; /* the daemon calls fault() once the eviction is done */
        return 0;
    }
    if (h->cfg.daemon_revoke && revokes_pending_on(h, node, page)) {
        n->parked[page] = 1;   /* the daemon looks at the waiters again when they are done */
        return 0;
    }
    h->cfg.ops->fault(n->p, page, access, origin, ahead ? ahead : ph_ahead(h));
    return 0;
}

int ph_fault_pending(struct ph *h, int node, uint64_t page)
{
    return h->nodes[node].want[page];
}

/* Decode, place the frame, call the hook. Returns the hook's status, or DSM_EINVAL with
 * *rejected set if the wire layer rejected the message (recorded as an error). With
 * check_frame (queued messages), a frame landing on a page the receiver can access is an
 * error (I3 of the protocols that move whole pages), and lock and barrier messages go to
 * the harness's synchronisation layer; injected messages skip both and go to the module. */
static dsm_status_t hand_over(struct ph *h, int src, int dst, const uint8_t *bytes, size_t len,
                              uint64_t attach, const uint8_t *frame, int check_frame, int *rejected)
{
    struct ph_node *n = &h->nodes[dst];
    struct dsmw_limits lim = { .npages = h->cfg.npages, .nnodes = (uint32_t)h->cfg.nnodes,
                               .nranks = (uint32_t)h->nranks };
    dsmw_msg_t *m = NULL;
    const char *why = NULL;
    dsm_status_t st;

    *rejected = 0;
    if (dsmw_decode(bytes, len, &lim, &m, &why) != DSM_OK) {
        ph_error(h, "message %d -> %d rejected by the wire layer: %s", src, dst, why);
        *rejected = 1;
        return DSM_EINVAL;
    }
    if (attach != DSMP_NO_FRAME) {
        if (check_frame && n->access[attach] != DSM_ACCESS_NONE)
            ph_error(h, "%s %d -> %d: frame of page %llu lands where node %d has access %d", dsmw_type_name(m->type),
                     src, dst, (unsigned long long)attach, dst, n->access[attach]);
        memcpy(n->frames + attach * h->cfg.page_size, frame, h->cfg.page_size);
    }
    if (check_frame && is_sync_type(m->type) && attach == DSMP_NO_FRAME)
        st = sync_message(h, src, dst, m);
    else
        st = h->cfg.ops->message(n->p, src, m, attach != DSMP_NO_FRAME);
    dsmw_free(m);
    return st;
}

int ph_deliver(struct ph *h, int src, int dst)
{
    struct ph_msg *q = h->qhead[src][dst];
    dsm_status_t st;
    int rejected;

    if (q == NULL)
        return 0;
    h->qhead[src][dst] = q->next;
    if (h->qhead[src][dst] == NULL)
        h->qtail[src][dst] = NULL;
    h->qlen[src][dst]--;
    st = hand_over(h, src, dst, q->bytes, q->len, q->attach, q->frame, 1, &rejected);
    if (st != DSM_OK && !rejected)
        ph_error(h, "node %d refused %s from node %d: status %d", dst, dsmw_type_name(q->type), src, st);
    free_msg(q);
    return 1;
}

dsm_status_t ph_inject(struct ph *h, int src, int dst, const dsmw_msg_t *m, uint64_t attach)
{
    uint8_t *buf = malloc(DSMW_MAX_MSG);
    size_t len;
    dsm_status_t st;
    int rejected;

    if (buf == NULL || dsmw_encode(m, buf, DSMW_MAX_MSG, &len) != DSM_OK) {
        free(buf);
        ph_error(h, "ph_inject: cannot encode");
        return DSM_EINVAL;
    }
    st = hand_over(h, src, dst, buf, len, attach,
                   attach != DSMP_NO_FRAME ? h->nodes[src].frames + attach * h->cfg.page_size : NULL, 0,
                   &rejected);
    free(buf);
    return st;
}

size_t ph_queued(struct ph *h, int src, int dst)
{
    size_t k = 0;

    for (int s = 0; s < h->cfg.nnodes; s++)
        for (int d = 0; d < h->cfg.nnodes; d++)
            if ((src == PH_ANY || src == s) && (dst == PH_ANY || dst == d))
                k += h->qlen[s][d];
    return k;
}

size_t ph_revokes_pending(struct ph *h)
{
    return h->nrevokes;
}

int ph_complete_revoke(struct ph *h, size_t i)
{
    struct ph_revoke r;

    if (i >= h->nrevokes)
        return 0;
    r = h->revokes[i];
    memmove(&h->revokes[i], &h->revokes[i + 1], (h->nrevokes - i - 1) * sizeof(r));
    h->nrevokes--;
    r.done(h->nodes[r.node].p, r.arg);
    if (h->cfg.daemon_revoke)
        unpark(h, r.node, r.page);
    return 1;
}

/* daemon_revoke: the daemon completes one page's revocations in the order they were asked
 * for, so a random pick stands for the oldest pending revocation of the same page. */
static size_t oldest_of_its_page(struct ph *h, size_t i)
{
    if (!h->cfg.daemon_revoke)
        return i;
    for (size_t j = 0; j < i; j++)
        if (h->revokes[j].node == h->revokes[i].node && h->revokes[j].page == h->revokes[i].page)
            return j;
    return i;
}

/* Call fault() again for the first waiter left unsatisfied by a grant (with daemon_revoke,
 * one whose page has revocations pending waits for them instead). 1 if one was found. */
static int do_refault(struct ph *h)
{
    for (int i = 0; i < h->cfg.nnodes; i++) {
        struct ph_node *n = &h->nodes[i];

        for (uint64_t p = 0; p < h->cfg.npages; p++) {
            if (!n->refault[p])
                continue;
            n->refault[p] = 0;
            if (h->cfg.daemon_revoke && revokes_pending_on(h, i, p) > 0)
                n->parked[p] = 1;
            else
                h->cfg.ops->fault(n->p, p, n->want[p], n->want_origin[p], ph_ahead(h));
            return 1;
        }
    }
    return 0;
}

static int any_refault(struct ph *h)
{
    for (int i = 0; i < h->cfg.nnodes; i++)
        if (memchr(h->nodes[i].refault, 1, h->cfg.npages) != NULL)
            return 1;
    return 0;
}

int ph_idle(struct ph *h)
{
    return ph_queued(h, PH_ANY, PH_ANY) == 0 && h->nrevokes == 0 && !any_refault(h);
}

static void after_step(struct ph *h)
{
    const char *why;

    if (h->cfg.check_each_step && (why = ph_check(h)) != NULL)
        ph_error(h, "invariant broken: %s", why);
}

int ph_step(struct ph *h)
{
    int nch = h->cfg.nnodes * h->cfg.nnodes;

    if (do_refault(h) || ph_complete_revoke(h, 0)) {
        after_step(h);
        return 1;
    }
    for (int k = 0; k < nch; k++) {
        int c = (h->rr + k) % nch;

        if (ph_deliver(h, c / h->cfg.nnodes, c % h->cfg.nnodes)) {
            h->rr = c + 1;
            after_step(h);
            return 1;
        }
    }
    return 0;
}

int ph_step_random(struct ph *h, uint64_t *seed)
{
    int nch = h->cfg.nnodes * h->cfg.nnodes, ready[PH_MAX_NODES * PH_MAX_NODES], nready = 0;
    uint64_t pick, total;

    if (do_refault(h)) {
        after_step(h);
        return 1;
    }
    for (int c = 0; c < nch; c++)
        if (h->qlen[c / h->cfg.nnodes][c % h->cfg.nnodes])
            ready[nready++] = c;
    total = (uint64_t)nready + h->nrevokes;
    if (total == 0)
        return 0;
    if (h->cfg.evict_pct > 0) {
        *seed = *seed * 6364136223846793005ull + 1442695040888963407ull;
        if ((int)((*seed >> 33) % 100) < h->cfg.evict_pct) {
            uint64_t r = (*seed >> 20) & 0xfffffff;

            if (ph_evict(h, (int)(r % (uint64_t)h->cfg.nnodes), (r / (uint64_t)h->cfg.nnodes) % h->cfg.npages,
                         NULL) == 1) {
                after_step(h);
                return 1;
            }
        }
    }
    *seed = *seed * 6364136223846793005ull + 1442695040888963407ull;
    pick = (*seed >> 33) % total;
    if (pick < (uint64_t)nready)
        ph_deliver(h, ready[pick] / h->cfg.nnodes, ready[pick] % h->cfg.nnodes);
    else
        ph_complete_revoke(h, oldest_of_its_page(h, (size_t)(pick - (uint64_t)nready)));
    after_step(h);
    return 1;
}

long ph_run(struct ph *h, long limit)
{
    long steps = 0;

    while (!ph_idle(h)) {
        if (steps >= limit)
            return -1;
        ph_step(h);
        steps++;
    }
    return steps;
}

long ph_run_random(struct ph *h, uint64_t *seed, long limit)
{
    long steps = 0;

    while (!ph_idle(h)) {
        if (steps >= limit)
            return -1;
        ph_step_random(h, seed);
        steps++;
    }
    return steps;
}

/* ---- eviction ----------------------------------------------------------------------- */

struct ph_evict_ctx {
    struct ph *h;
    int node;
    uint64_t page;
    uint32_t gen;
    int *done;
};

static void evict_done(dsmp_t *p, void *arg)
{
    struct ph_evict_ctx *e = arg;
    struct ph *h = e->h;
    struct ph_node *n = &h->nodes[e->node];
    uint64_t page = e->page;

    (void)p;
    if (e->gen != n->evict_gen[page]) { /* reset since: the daemon ignores it */
        free(e);
        return;
    }
    if (!n->evicting[page])
        ph_error(h, "node %d: eviction of page %llu done twice", e->node, (unsigned long long)page);
    if (n->access[page] != DSM_ACCESS_NONE)
        ph_error(h, "node %d: eviction of page %llu done with access %d", e->node, (unsigned long long)page,
                 n->access[page]);
    if (revokes_pending_on(h, e->node, page) > 0 && !h->cfg.daemon_revoke)
        ph_error(h, "node %d: eviction of page %llu done with revocations pending", e->node,
                 (unsigned long long)page);
    memset(n->frames + page * h->cfg.page_size, 0xa5, h->cfg.page_size); /* punched */
    n->evicting[page] = 0;
    h->evictions++;
    if (e->done)
        ++*e->done;
    free(e);
    if (n->evict_parked[page]) {
        n->evict_parked[page] = 0;
        if (n->want[page] != 0 && n->access[page] < n->want[page])
            h->cfg.ops->fault(n->p, page, n->want[page], n->want_origin[page], ph_ahead(h));
    }
}

int ph_evict(struct ph *h, int node, uint64_t page, int *done)
{
    struct ph_node *n = &h->nodes[node];
    struct ph_evict_ctx *e;

    if (h->cfg.ops->evict == NULL || h->home[page] == node || n->want[page] != 0 || n->evicting[page] ||
        revokes_pending_on(h, node, page) > 0)
        return -1;
    e = malloc(sizeof(*e));
    if (e == NULL)
        abort();
    *e = (struct ph_evict_ctx){ .h = h, .node = node, .page = page, .gen = n->evict_gen[page], .done = done };
    n->evicting[page] = 1;
    if (h->cfg.ops->evict(n->p, page, evict_done, e))
        return 1;
    n->evicting[page] = 0;
    free(e);
    return 0;
}

int ph_evicting(struct ph *h, int node, uint64_t page)
{
    return h->nodes[node].evicting[page];
}

uint64_t ph_evictions(struct ph *h)
{
    return h->evictions;
}

void ph_set_evict_pct(struct ph *h, int pct)
{
    h->cfg.evict_pct = pct;
}

/* ---- state -------------------------------------------------------------------------- */

int ph_access(struct ph *h, int node, uint64_t page)
{
    return h->nodes[node].access[page];
}

uint8_t *ph_frame(struct ph *h, int node, uint64_t page)
{
    return h->nodes[node].frames + page * h->cfg.page_size;
}

uint64_t ph_write(struct ph *h, int node, uint64_t page)
{
    if (h->nodes[node].access[page] != DSM_ACCESS_WRITE) {
        ph_error(h, "node %d writes page %llu without WRITE access", node, (unsigned long long)page);
        return 0;
    }
    ph_poke(h, node, page, ++h->serial);
    return h->serial;
}

void ph_poke(struct ph *h, int node, uint64_t page, uint64_t value)
{
    fill(ph_frame(h, node, page), h->cfg.page_size, value);
    h->last[page] = value;
    if (value > h->serial)
        h->serial = value;
}

uint64_t ph_last(struct ph *h, uint64_t page)
{
    return h->last[page];
}

uint64_t ph_counter(struct ph *h, int origin, enum dsmp_counter c)
{
    return h->counters[origin * NCOUNTERS + c];
}

uint64_t ph_faults_issued(struct ph *h)
{
    return h->faults_issued;
}

uint64_t ph_faults_granted(struct ph *h)
{
    return h->faults_granted;
}

/* ---- logs --------------------------------------------------------------------------- */

size_t ph_nsent(struct ph *h)
{
    return h->nsent;
}

const struct ph_sent *ph_sent_at(struct ph *h, size_t i)
{
    return i < h->nsent ? &h->sent[i] : NULL;
}

size_t ph_count(struct ph *h, int type, int src, int dst)
{
    size_t k = 0;

    for (size_t i = 0; i < h->nsent; i++)
        if ((type == PH_ANY || h->sent[i].type == type) && (src == PH_ANY || h->sent[i].src == src) &&
            (dst == PH_ANY || h->sent[i].dst == dst))
            k++;
    return k;
}

size_t ph_nevents(struct ph *h)
{
    return h->nevents;
}

const struct ph_event *ph_event_at(struct ph *h, size_t i)
{
    return i < h->nevents ? &h->events[i] : NULL;
}

size_t ph_count_events(struct ph *h, int node, enum ph_event_kind kind, uint64_t page, int access)
{
    size_t k = 0;

    for (size_t i = 0; i < h->nevents; i++)
        if ((node == PH_ANY || h->events[i].node == node) && h->events[i].kind == kind &&
            h->events[i].page == page && (access == PH_ANY || h->events[i].access == access))
            k++;
    return k;
}

void ph_clear_log(struct ph *h)
{
    h->nsent = 0;
    h->nevents = 0;
}

/* ---- verdicts ----------------------------------------------------------------------- */

size_t ph_errors(struct ph *h)
{
    return h->nerrors;
}

const char *ph_first_error(struct ph *h)
{
    return h->first_error;
}

const char *ph_check(struct ph *h)
{
    for (uint64_t p = 0; p < h->cfg.npages; p++) {
        int writer = -1, holders = 0;

        for (int i = 0; i < h->cfg.nnodes; i++) {
            int a = h->nodes[i].access[p];

            if (a == DSM_ACCESS_NONE)
                continue;
            holders++;
            if (a == DSM_ACCESS_WRITE) {
                if (writer >= 0) {
                    snprintf(h->why, sizeof(h->why), "page %llu: nodes %d and %d both hold WRITE",
                             (unsigned long long)p, writer, i);
                    return h->why;
                }
                writer = i;
            }
            if (!h->atomic_page[p] && !ph_frame_is(h, i, p, h->last[p])) {
                snprintf(h->why, sizeof(h->why), "page %llu: node %d has access %d but not the current value %llu",
                         (unsigned long long)p, i, a, (unsigned long long)h->last[p]);
                return h->why;
            }
        }
        if (writer >= 0 && holders > 1) {
            snprintf(h->why, sizeof(h->why), "page %llu: node %d holds WRITE while %d other node(s) have access",
                     (unsigned long long)p, writer, holders - 1);
            return h->why;
        }
    }
    return NULL;
}

const char *ph_check_quiescent(struct ph *h)
{
    const char *why = ph_check(h);

    if (why != NULL)
        return why;
    if (!ph_idle(h)) {
        snprintf(h->why, sizeof(h->why), "not idle: %zu message(s), %zu revocation(s) pending",
                 ph_queued(h, PH_ANY, PH_ANY), h->nrevokes);
        return h->why;
    }
    for (int i = 0; i < h->cfg.nnodes; i++)
        for (uint64_t p = 0; p < h->cfg.npages; p++)
            if (h->nodes[i].evicting[p]) {
                snprintf(h->why, sizeof(h->why), "node %d: eviction of page %llu never done", i, (unsigned long long)p);
                return h->why;
            }
    for (int i = 0; i < h->cfg.nnodes; i++)
        for (uint64_t p = 0; p < h->cfg.npages; p++)
            if (h->nodes[i].want[p]) {
                snprintf(h->why, sizeof(h->why), "node %d: fault for access %d on page %llu never granted", i,
                         h->nodes[i].want[p], (unsigned long long)p);
                return h->why;
            }
    if (h->faults_granted + h->faults_dropped != h->faults_issued) {
        snprintf(h->why, sizeof(h->why), "%llu faults issued, %llu granted, %llu dropped by a reset",
                 (unsigned long long)h->faults_issued, (unsigned long long)h->faults_granted,
                 (unsigned long long)h->faults_dropped);
        return h->why;
    }
    for (uint64_t p = 0; p < h->cfg.npages; p++) {
        int writer = 0, home = h->home[p];

        for (int i = 0; i < h->cfg.nnodes; i++)
            writer |= h->nodes[i].access[p] == DSM_ACCESS_WRITE;
        if (!writer && home >= 0 && h->nodes[home].access[p] != DSM_ACCESS_READ) {
            snprintf(h->why, sizeof(h->why), "page %llu: no writer, but its home %d has access %d",
                     (unsigned long long)p, home, h->nodes[home].access[p]);
            return h->why;
        }
    }
    return NULL;
}

/* ---- timer -------------------------------------------------------------------------- */

int64_t ph_timer(struct ph *h, int node)
{
    return h->nodes[node].timer_us;
}

size_t ph_timer_requests(struct ph *h, int node)
{
    return h->nodes[node].timer_calls;
}

int ph_tick(struct ph *h, int node)
{
    struct ph_node *n = &h->nodes[node];

    if (n->timer_us < 0)
        return 0;
    n->timer_us = -1;
    if (h->cfg.ops->tick == NULL) {
        ph_error(h, "node %d: timer armed by a module without tick()", node);
        return 0;
    }
    h->cfg.ops->tick(n->p);
    after_step(h);
    return 1;
}

/* ---- synchronisation (mirrors daemon/sync.c) ------------------------------------------ */

static const struct dsmp_sync_ops *sync_hooks(struct ph *h)
{
    static const struct dsmp_sync_ops none;

    return h->cfg.ops->sync ? h->cfg.ops->sync : &none;
}

static struct ph_step *step_new(struct ph *h, int node, int type, uint32_t lock, int *done)
{
    struct ph_step *st = calloc(1, sizeof(*st));

    if (st == NULL) {
        fprintf(stderr, "proto_harness: out of memory\n");
        abort();
    }
    st->h = h;
    st->node = node;
    st->type = type;
    st->lock = lock;
    st->done = done;
    st->token = ++h->next_token;
    st->next = h->steps;
    h->steps = st;
    return st;
}

/* A module's done() for a step: exactly once. */
static int step_finish(struct ph_step *st, const char *what)
{
    if (st->finished++) {
        ph_error(st->h, "node %d: %s completed twice", st->node, what);
        return 0;
    }
    if (st->done != NULL)
        (*st->done)++;
    return 1;
}

static int lock_manager(struct ph *h, uint32_t lock)
{
    return (int)(lock % (uint32_t)h->cfg.nnodes);
}

/* Send a synchronisation message from node `src` through the queues (and the sent log). */
static void sync_send(struct ph *h, int src, int dst, dsmw_msg_t *m)
{
    (void)svc_send(&h->nodes[src], dst, m, DSMP_NO_FRAME);
}

void ph_lock(struct ph *h, int node, uint32_t lock, int *done)
{
    struct ph_step *st;
    dsmw_msg_t m;

    if (lock >= PH_MAX_LOCKS || h->held[node][lock]) {
        ph_error(h, "node %d: lock %u out of range or already held", node, lock);
        return;
    }
    st = step_new(h, node, DSMW__TYPE__LOCK_GRANT, lock, done);
    dsmw_init(&m, DSMW__TYPE__LOCK_REQ);
    m.lock = lock;
    m.origin = (uint32_t)ph_rank(node);
    m.node = (uint32_t)node;
    m.seq = st->token;
    if (sync_hooks(h)->fill_acquire)
        sync_hooks(h)->fill_acquire(h->nodes[node].p, &m);
    sync_send(h, node, lock_manager(h, lock), &m);
}

/* The release flush of an unlock is done: UNLOCK to the manager, the rank goes on. */
static void unlock_flushed(dsmp_t *p, void *arg)
{
    struct ph_step *st = arg;
    struct ph *h = st->h;
    dsmw_msg_t m;

    if (p != h->nodes[st->node].p)
        ph_error(h, "node %d: release done() called with another node's module", st->node);
    if (!step_finish(st, "an unlock's release"))
        return;
    dsmw_init(&m, DSMW__TYPE__UNLOCK);
    m.lock = st->lock;
    m.origin = (uint32_t)ph_rank(st->node);
    m.node = (uint32_t)st->node;
    if (sync_hooks(h)->fill_release)
        sync_hooks(h)->fill_release(p, &m);
    sync_send(h, st->node, lock_manager(h, st->lock), &m);
}

void ph_unlock(struct ph *h, int node, uint32_t lock, int *done)
{
    struct ph_step *st;

    if (lock >= PH_MAX_LOCKS || !h->held[node][lock]) {
        ph_error(h, "node %d: unlock of lock %u, which it does not hold", node, lock);
        return;
    }
    h->held[node][lock] = 0;
    st = step_new(h, node, DSMW__TYPE__UNLOCK, lock, done);
    if (sync_hooks(h)->release)
        sync_hooks(h)->release(h->nodes[node].p, ph_rank(node), unlock_flushed, st);
    else
        unlock_flushed(h->nodes[node].p, st);
}

int ph_holds(struct ph *h, int node, uint32_t lock)
{
    return lock < PH_MAX_LOCKS && h->held[node][lock];
}

/* Every local rank arrived and the module flushed: BARRIER_ARRIVE to node 0. */
static void arrive_flushed(dsmp_t *p, void *arg)
{
    struct ph_step *st = arg;
    struct ph *h = st->h;
    dsmw_msg_t m;

    if (p != h->nodes[st->node].p)
        ph_error(h, "node %d: release done() called with another node's module", st->node);
    if (st->finished) {
        ph_error(h, "node %d: a barrier's release completed twice", st->node);
        return;
    }
    st->type = DSMW__TYPE__BARRIER_RELEASE; /* from now on it waits for the release */
    dsmw_init(&m, DSMW__TYPE__BARRIER_ARRIVE);
    m.epoch = st->epoch;
    m.origin = (uint32_t)ph_rank(st->node);
    if (sync_hooks(h)->fill_release)
        sync_hooks(h)->fill_release(p, &m);
    sync_send(h, st->node, 0, &m);
}

void ph_barrier(struct ph *h, int node, int *done)
{
    struct ph_step *st;

    if (h->bar_wait[node] != NULL) {
        ph_error(h, "node %d: barrier entered twice", node);
        return;
    }
    st = step_new(h, node, DSMW__TYPE__BARRIER_ARRIVE, 0, done);
    st->epoch = h->bar_epoch[node];
    h->bar_wait[node] = st;
    if (sync_hooks(h)->release)
        sync_hooks(h)->release(h->nodes[node].p, ph_rank(node), arrive_flushed, st);
    else
        arrive_flushed(h->nodes[node].p, st);
}

/* The module has applied a lock grant: the node's rank holds the lock. */
static void lock_applied(dsmp_t *p, void *arg)
{
    struct ph_step *st = arg;

    (void)p;
    if (step_finish(st, "a lock grant's acquire"))
        st->h->held[st->node][st->lock] = 1;
}

/* The module has applied a barrier release: the node's ranks go on. */
static void release_applied(dsmp_t *p, void *arg)
{
    struct ph_step *st = arg;
    struct ph *h = st->h;

    (void)p;
    if (!step_finish(st, "a barrier release's acquire"))
        return;
    h->bar_epoch[st->node]++;
    if (h->bar_wait[st->node] == st)
        h->bar_wait[st->node] = NULL;
}

static struct ph_step *step_by_token(struct ph *h, int node, uint64_t token)
{
    for (struct ph_step *st = h->steps; st; st = st->next)
        if (st->token == token && st->node == node && st->type == DSMW__TYPE__LOCK_GRANT && !st->finished)
            return st;
    return NULL;
}

/* Manager: hand lock `id` to its next waiter, with what the module adds to the grant. */
/* Manager: send the grant of a lock to waiter w (now its holder), as daemon/sync.c does. */
static void send_grant(struct ph *h, struct dsmd_lockq_waiter *w)
{
    dsmw_msg_t m, req;
    int mgr;

    if (w == NULL)
        return;
    mgr = lock_manager(h, w->lock);
    dsmw_init(&m, DSMW__TYPE__LOCK_GRANT);
    m.lock = w->lock;
    m.origin = (uint32_t)w->origin;
    m.node = (uint32_t)mgr;
    m.seq = w->token;
    if (sync_hooks(h)->fill_grant) {
        dsmw_init(&req, DSMW__TYPE__LOCK_REQ);
        req.vclock = w->vclock;
        req.n_vclock = w->n_vclock;
        sync_hooks(h)->fill_grant(h->nodes[mgr].p, w->lock, &req, &m);
    }
    sync_send(h, mgr, w->node, &m);
    dsmd_lockq_done(w);
}

static dsm_status_t lock_msg(struct ph *h, int src, int dst, const dsmw_msg_t *m)
{
    struct dsmd_lockq_waiter *g;
    struct ph_step *st;
    dsm_status_t rc;

    if (m->lock >= PH_MAX_LOCKS || (m->type != DSMW__TYPE__LOCK_GRANT && lock_manager(h, m->lock) != dst)) {
        ph_error(h, "%s of lock %u at node %d, which does not manage it", dsmw_type_name(m->type), m->lock, dst);
        return DSM_EPROTO;
    }
    switch (m->type) {
    case DSMW__TYPE__LOCK_REQ:
        if ((rc = dsmd_lockq_request(h->locks[dst], m, &g)) != DSM_OK)
            return rc;
        send_grant(h, g);
        return DSM_OK;
    case DSMW__TYPE__UNLOCK:
        if (dsmd_lockq_release(h->locks[dst], m->lock, (int)m->origin, &g) != DSM_OK) {
            ph_error(h, "unlock of lock %u by rank %u, which does not hold it", m->lock, m->origin);
            return DSM_EPROTO;
        }
        if (sync_hooks(h)->lock_released)
            sync_hooks(h)->lock_released(h->nodes[dst].p, m->lock, m);
        send_grant(h, g);
        return DSM_OK;
    default: /* LOCK_GRANT */
        st = step_by_token(h, dst, m->seq);
        if (st == NULL || src != lock_manager(h, m->lock)) {
            ph_error(h, "LOCK_GRANT of lock %u at node %d, which does not wait for it", m->lock, dst);
            return DSM_EPROTO;
        }
        if (sync_hooks(h)->acquired)
            sync_hooks(h)->acquired(h->nodes[dst].p, m, lock_applied, st);
        else
            lock_applied(h->nodes[dst].p, st);
        return DSM_OK;
    }
}

static dsm_status_t barrier_msg(struct ph *h, int src, int dst, const dsmw_msg_t *m)
{
    struct ph_step *st;
    dsmw_msg_t r;

    if (m->type == DSMW__TYPE__BARRIER_ARRIVE) {
        if (dst != 0 || dsmd_gather_arrive(&h->bar_mgr, m->epoch) != DSM_OK) {
            ph_error(h, "BARRIER_ARRIVE (epoch %llu) from node %d at node %d", (unsigned long long)m->epoch, src,
                     dst);
            return DSM_EPROTO;
        }
        if (sync_hooks(h)->barrier_arrived)
            sync_hooks(h)->barrier_arrived(h->nodes[0].p, m);
        if (!dsmd_gather_complete(&h->bar_mgr, h->cfg.nnodes))
            return DSM_OK;
        dsmw_init(&r, DSMW__TYPE__BARRIER_RELEASE);
        r.epoch = m->epoch;
        r.origin = (uint32_t)ph_rank(0);
        if (sync_hooks(h)->fill_barrier)
            sync_hooks(h)->fill_barrier(h->nodes[0].p, &r);
        for (int n = 0; n < h->cfg.nnodes; n++)
            sync_send(h, 0, n, &r);
        return DSM_OK;
    }
    st = h->bar_wait[dst];
    if (src != 0 || st == NULL || st->type != DSMW__TYPE__BARRIER_RELEASE || m->epoch != st->epoch) {
        ph_error(h, "BARRIER_RELEASE from node %d at node %d, which does not wait for it", src, dst);
        return DSM_EPROTO;
    }
    if (sync_hooks(h)->acquired)
        sync_hooks(h)->acquired(h->nodes[dst].p, m, release_applied, st);
    else
        release_applied(h->nodes[dst].p, st);
    return DSM_OK;
}

/* ---- atomics, as daemon/atomics.c performs them --------------------------------------- */

/* One atomic: its request, then its performance at the home, then its reply. */
struct ph_atomic_op {
    struct ph *h;
    int node, home;
    uint64_t page;
    uint32_t aop;
    uint64_t a, b, old, stamp;
    uint64_t *out;
    int *done;
};

static const struct dsmp_atomic_ops *atomic_hooks(struct ph *h)
{
    static const struct dsmp_atomic_ops none;

    return h->cfg.ops->atomic ? h->cfg.ops->atomic : &none;
}

/* The pending atomics travel as tokens: index into h->atomics. */
static uint64_t atomic_token(struct ph *h, struct ph_atomic_op *op)
{
    struct ph_atomic_op **v = grow(h->atomics, &h->capatomics, h->natomics + 1, sizeof(*v));

    if (v == NULL) {
        ph_error(h, "out of memory for an atomic");
        return UINT64_MAX;
    }
    h->atomics = v;
    h->atomics[h->natomics] = op;
    return h->natomics++;
}

void ph_atomic(struct ph *h, int node, uint64_t page, int aop, uint64_t a, uint64_t b, uint64_t *old, int *done)
{
    struct ph_atomic_op *op = calloc(1, sizeof(*op));
    dsmw_msg_t m;

    if (op == NULL) {
        ph_error(h, "out of memory for an atomic");
        return;
    }
    *op = (struct ph_atomic_op){ .h = h, .node = node, .home = h->home[page], .page = page, .aop = (uint32_t)aop,
                                 .a = a, .b = b, .out = old, .done = done };
    h->atomic_page[page] = 1;
    dsmw_init(&m, DSMW__TYPE__ATOMIC_REQ);
    m.page = page;
    m.size = 8;
    m.aop = (uint32_t)aop;
    m.operand = a;
    m.operand2 = b;
    m.node = (uint32_t)node;
    m.origin = (uint32_t)ph_rank(node);
    m.seq = atomic_token(h, op);
    if (atomic_hooks(h)->requesting)
        atomic_hooks(h)->requesting(h->nodes[node].p, page, op->home);
    sync_send(h, node, op->home, &m);
}

static void atomic_replied(dsmp_t *p, void *arg)
{
    struct ph_atomic_op *op = arg;

    (void)p;
    if (op->out != NULL)
        *op->out = op->old;
    (*op->done)++;
}

static void atomic_applied(dsmp_t *p, void *arg)
{
    struct ph_atomic_op *op = arg;
    dsmw_msg_t m;

    (void)p;
    dsmw_init(&m, DSMW__TYPE__ATOMIC_REPLY);
    m.page = op->page;
    m.size = 8;
    m.aop = op->aop;
    m.value = op->old;
    m.stamp = op->stamp;
    m.origin = (uint32_t)ph_rank(op->node);
    for (size_t i = 0; i < op->h->natomics; i++) /* its token */
        if (op->h->atomics[i] == op)
            m.seq = i;
    sync_send(op->h, op->home, op->node, &m);
}

static void atomic_ready(dsmp_t *p, void *arg)
{
    struct ph_atomic_op *op = arg;
    uint64_t *w = (uint64_t *)ph_frame(op->h, op->home, op->page);

    op->old = dsmd_atomic_perform(w, 8, op->aop, op->a, op->b);
    if (atomic_hooks(op->h)->applied)
        atomic_hooks(op->h)->applied(p, op->page, ph_rank(op->node), &op->stamp, atomic_applied, op);
    else
        atomic_applied(p, op);
}

static dsm_status_t atomic_msg(struct ph *h, int src, int dst, const dsmw_msg_t *m)
{
    struct ph_atomic_op *op = m->seq < h->natomics ? h->atomics[m->seq] : NULL;

    if (op == NULL)
        return DSM_EPROTO;
    if (m->type == DSMW__TYPE__ATOMIC_REQ) {
        if (dst != op->home || src != op->node)
            return DSM_EPROTO;
        if (atomic_hooks(h)->prepare)
            atomic_hooks(h)->prepare(h->nodes[dst].p, op->page, ph_rank(op->node), op->aop != DSMW_AOP_LOAD,
                                     atomic_ready, op);
        else
            atomic_ready(h->nodes[dst].p, op);
        return DSM_OK;
    }
    if (dst != op->node || src != op->home)
        return DSM_EPROTO;
    if (atomic_hooks(h)->done) {
        uint64_t now = dsmd_atomic_after(op->aop, op->old, op->a, op->b, 8);

        atomic_hooks(h)->done(h->nodes[dst].p, op->page, ph_rank(op->node), op->home, op->stamp, 0, 8,
                              now == op->old ? NULL : &now, atomic_replied, op);
    } else {
        atomic_replied(h->nodes[dst].p, op);
    }
    return DSM_OK;
}

static dsm_status_t sync_message(struct ph *h, int src, int dst, const dsmw_msg_t *m)
{
    if (m->type == DSMW__TYPE__BARRIER_ARRIVE || m->type == DSMW__TYPE__BARRIER_RELEASE)
        return barrier_msg(h, src, dst, m);
    if (m->type == DSMW__TYPE__ATOMIC_REQ || m->type == DSMW__TYPE__ATOMIC_REPLY)
        return atomic_msg(h, src, dst, m);
    return lock_msg(h, src, dst, m);
}

/* wire.c - see wire.h. */
#include "wire.h"

#include <string.h>

void dsmw_init(dsmw_msg_t *m, Dsmw__Type type)
{
    dsmw__msg__init(m);
    m->type = type;
}

dsm_status_t dsmw_encode(const dsmw_msg_t *m, uint8_t *buf, size_t cap, size_t *len)
{
    size_t n = dsmw__msg__get_packed_size(m);

    if (n > cap)
        return DSM_EINVAL;
    *len = dsmw__msg__pack(m, buf);
    return DSM_OK;
}

const char *dsmw_type_name(int type)
{
    const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(&dsmw__type__descriptor, type);

    return v ? v->name : "unknown";
}

/* Which fields each type relies on. */
enum { F_PAGE = 1, F_NODE = 2, F_ORIGIN = 4, F_ACCESS = 8 };

static unsigned needs(int type)
{
    switch (type) {
    case DSMW__TYPE__READ_REQ:
    case DSMW__TYPE__WRITE_REQ:
    case DSMW__TYPE__EVICT:       return F_PAGE | F_NODE | F_ORIGIN;
    case DSMW__TYPE__EVICTED:     return F_PAGE | F_ORIGIN;
    case DSMW__TYPE__GRANT:       return F_PAGE | F_ORIGIN | F_ACCESS;
    case DSMW__TYPE__INV:
    case DSMW__TYPE__INV_ACK:
    case DSMW__TYPE__FETCH_REPLY: return F_PAGE | F_ORIGIN;
    case DSMW__TYPE__FETCH:       return F_PAGE | F_ORIGIN | F_ACCESS;
    case DSMW__TYPE__LOCK_REQ:    return F_NODE | F_ORIGIN;
    case DSMW__TYPE__RANK_ABSENT: return F_NODE | F_ORIGIN;
    case DSMW__TYPE__LOCK_GRANT:
    case DSMW__TYPE__UNLOCK:
    case DSMW__TYPE__ALLOC_REQ:
    case DSMW__TYPE__ALLOC_REPLY:
    case DSMW__TYPE__COFREE_REQ:
    case DSMW__TYPE__FREE_REQ:    return F_ORIGIN;
    case DSMW__TYPE__BARRIER_ARRIVE:
    case DSMW__TYPE__BARRIER_RELEASE:
    case DSMW__TYPE__FINI_ARRIVE:
    case DSMW__TYPE__FINI_RELEASE:
    case DSMW__TYPE__REGION_ADD:
    case DSMW__TYPE__REGION_FREE:
    case DSMW__TYPE__REGION_ACK:
    case DSMW__TYPE__ABORT:
    case DSMW__TYPE__HEARTBEAT:   return 0;
    case DSMW__TYPE__COND_WAIT:   return F_NODE | F_ORIGIN;
    case DSMW__TYPE__COND_QUEUED:
    case DSMW__TYPE__COND_SIGNAL:
    case DSMW__TYPE__COND_WAKE:   return F_ORIGIN;
    case DSMW__TYPE__PAGE_GET:    return F_PAGE | F_NODE | F_ORIGIN;
    case DSMW__TYPE__PAGE:
    case DSMW__TYPE__DIFF:
    case DSMW__TYPE__DIFF_ACK:    return F_PAGE | F_ORIGIN;
    case DSMW__TYPE__UPDATE:      return F_ORIGIN;
    case DSMW__TYPE__ATOMIC_REQ:  return F_PAGE | F_NODE | F_ORIGIN;
    case DSMW__TYPE__ATOMIC_REPLY: return F_PAGE | F_ORIGIN;
    case DSMW__TYPE__HOME_CLAIM:
    case DSMW__TYPE__HOME_IS:
    case DSMW__TYPE__HOME_ACK:    return F_PAGE | F_NODE | F_ORIGIN;
    case DSMW__TYPE__CLOCK_REQ:
    case DSMW__TYPE__CLOCK_REPLY: return 0;
    case DSMW__TYPE__FS_WROTE:    return F_PAGE | F_ORIGIN;
    case DSMW__TYPE__DIRECT_PORT: return F_NODE | F_ORIGIN;
    default:                      return ~0u;
    }
}

int dsmw_place_ok(uint32_t place, uint64_t arg, uint32_t nnodes)
{
    switch (place) {
    case DSMW_PLACE_BLOCK:  return arg == 0;
    case DSMW_PLACE_CYCLIC: return arg >= 1;
    case DSMW_PLACE_NODE:   return arg < nnodes;
    case DSMW_PLACE_FIRST_TOUCH: return arg == 0;
    default:                return 0;
    }
}

const char *dsmw_check(const dsmw_msg_t *m, const struct dsmw_limits *lim)
{
    unsigned f = needs(m->type);

    if (f == ~0u)
        return "unknown message type";
    if ((f & F_PAGE) && m->page >= lim->npages)
        return "page out of range";
    if ((f & F_NODE) && m->node >= lim->nnodes)
        return "node out of range";
    if ((f & F_ORIGIN) && m->origin >= lim->nranks)
        return "rank out of range";
    if ((f & F_ACCESS) && m->access > 2)
        return "bad access level";
    if (m->n_vclock > lim->nnodes)
        return "vector clock longer than the job";
    if ((m->type == DSMW__TYPE__REGION_ADD || m->type == DSMW__TYPE__ALLOC_REQ) &&
        !dsmw_place_ok(m->place, m->place_arg, lim->nnodes))
        return "unknown home placement";
    if ((m->type == DSMW__TYPE__ATOMIC_REQ || m->type == DSMW__TYPE__ATOMIC_REPLY) &&
        (m->aop > DSMW_AOP_MAX || (m->size != 4 && m->size != 8) || m->addr % m->size != 0 ||
         (m->size == 4 && (m->operand >> 32 != 0 || m->operand2 >> 32 != 0))))
        return "malformed atomic operation";
    if ((m->type == DSMW__TYPE__REGION_ADD || m->type == DSMW__TYPE__REGION_FREE) &&
        (m->addr >= lim->npages || m->count == 0 || m->count > lim->npages - m->addr))
        return "region out of range";
    if (m->type == DSMW__TYPE__DIRECT_PORT && m->addr > 65535)
        return "port out of range";
    return NULL;
}

dsm_status_t dsmw_decode(const uint8_t *buf, size_t len, const struct dsmw_limits *lim,
                         dsmw_msg_t **out, const char **why)
{
    dsmw_msg_t *m;

    *out = NULL;
    if (len > DSMW_MAX_MSG) {
        *why = "message too large";
        return DSM_EPROTO;
    }
    m = dsmw__msg__unpack(NULL, len, buf);
    if (m == NULL) {
        *why = "undecodable message";
        return DSM_EPROTO;
    }
    /* peers run the same version (checked in the hello): a field this build does not know
     * is corruption; protobuf-c would also keep it and pack it back undecodably */
    *why = m->base.n_unknown_fields != 0 ? "unknown field" : dsmw_check(m, lim);
    if (*why != NULL) {
        dsmw__msg__free_unpacked(m, NULL);
        return DSM_EPROTO;
    }
    *out = m;
    return DSM_OK;
}

void dsmw_free(dsmw_msg_t *m)
{
    if (m != NULL)
        dsmw__msg__free_unpacked(m, NULL);
}

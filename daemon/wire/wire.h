/*
 * wire.h - encoding, decoding and checking of daemon-to-daemon messages (dsm_wire.proto).
 *
 * Decoding is where untrusted bytes become a message: dsmw_decode() rejects anything
 * protobuf-c cannot parse, and dsmw_check() rejects a well-formed message whose fields do
 * not make sense for its type in this job (page, node or rank out of range, unknown type).
 * Code above this layer may rely on checked fields.
 */
#ifndef DSMW_WIRE_H
#define DSMW_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "dsm_status.h"
#include "dsm_wire.pb-c.h"

typedef Dsmw__Msg dsmw_msg_t;

#define DSMW_MAX_MSG (64u * 1024u) /* largest encoded message a daemon accepts */

/* The limits a message is checked against. */
struct dsmw_limits {
    uint64_t npages;
    uint32_t nnodes;
    uint32_t nranks;
};

/* Initialise `m` as an empty message of `type`. */
void dsmw_init(dsmw_msg_t *m, Dsmw__Type type);

/* Encode `m` into buf (cap bytes); *len gets the size. DSM_EINVAL if it does not fit. */
dsm_status_t dsmw_encode(const dsmw_msg_t *m, uint8_t *buf, size_t cap, size_t *len);

/* Decode and check `len` bytes. On success *out must be released with dsmw_free().
 * DSM_EPROTO (with a reason in *why) for anything malformed or out of range. */
dsm_status_t dsmw_decode(const uint8_t *buf, size_t len, const struct dsmw_limits *lim,
                         dsmw_msg_t **out, const char **why);

/* Home placements of a collective region (place, place_arg); the same numbers as dsm.h's
 * enum dsm_placement (checked in daemon/alloc.c). */
enum dsmw_place { DSMW_PLACE_BLOCK = 0, DSMW_PLACE_CYCLIC = 1, DSMW_PLACE_NODE = 2, DSMW_PLACE_FIRST_TOUCH = 3 };

/* Atomic operations (ATOMIC_REQ.aop); the same numbers as the channel's (dsm_chan.h). */
enum dsmw_aop { DSMW_AOP_LOAD = 0, DSMW_AOP_STORE, DSMW_AOP_FETCH_ADD, DSMW_AOP_SWAP, DSMW_AOP_CAS,
                DSMW_AOP_MAX = DSMW_AOP_CAS };

/* 1 if (place, arg) is a placement a job of nnodes nodes can use. */
int dsmw_place_ok(uint32_t place, uint64_t arg, uint32_t nnodes);

/* Check the fields of a decoded message; NULL if fine, else the reason. */
const char *dsmw_check(const dsmw_msg_t *m, const struct dsmw_limits *lim);

void dsmw_free(dsmw_msg_t *m);

/* Name of a message type, for logs. */
const char *dsmw_type_name(int type);

#endif

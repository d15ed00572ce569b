/*
 * dsm_le.h - little-endian integers in byte buffers: the one set of helpers for every
 * format dsm puts on a wire or in a message's data (the transports' headers, write
 * notices, causal updates).
 */
#ifndef DSM_LE_H
#define DSM_LE_H

#include <stdint.h>

/* The low `bytes` bytes of v at p (bytes <= 8). */
static inline void dsm_put_le(uint8_t *p, uint64_t v, int bytes)
{
    for (int k = 0; k < bytes; k++)
        p[k] = (uint8_t)(v >> (8 * k));
}

/* `bytes` bytes at p (bytes <= 8). */
static inline uint64_t dsm_get_le(const uint8_t *p, int bytes)
{
    uint64_t v = 0;

    for (int k = 0; k < bytes; k++)
        v |= (uint64_t)p[k] << (8 * k);
    return v;
}

static inline void dsm_put16(uint8_t *p, uint16_t v) { dsm_put_le(p, v, 2); }
static inline void dsm_put32(uint8_t *p, uint32_t v) { dsm_put_le(p, v, 4); }
static inline void dsm_put64(uint8_t *p, uint64_t v) { dsm_put_le(p, v, 8); }
static inline uint16_t dsm_get16(const uint8_t *p) { return (uint16_t)dsm_get_le(p, 2); }
static inline uint32_t dsm_get32(const uint8_t *p) { return (uint32_t)dsm_get_le(p, 4); }
static inline uint64_t dsm_get64(const uint8_t *p) { return dsm_get_le(p, 8); }

#endif

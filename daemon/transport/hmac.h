/*
 * hmac.h - SHA-256 and HMAC-SHA256 (FIPS 180-4, RFC 2104), for the transports' peer proof.
 *
 * Small and dependency-free on purpose: the daemon links no crypto library, and all it
 * needs is to prove possession of the job secret (see dsmt.h, dsmt_config.secret).
 */
#ifndef DSMT_HMAC_H
#define DSMT_HMAC_H

#include <stddef.h>
#include <stdint.h>

#define DSMT_SHA256_LEN   32u
#define DSMT_SHA256_BLOCK 64u

struct dsmt_sha256 {
    uint32_t h[8];
    uint64_t total;                    /* bytes hashed so far */
    uint8_t  buf[DSMT_SHA256_BLOCK];   /* a partial block */
    size_t   used;
};

void dsmt_sha256_init(struct dsmt_sha256 *s);
void dsmt_sha256_update(struct dsmt_sha256 *s, const void *data, size_t len);
/* Write the digest to out[32]; `s` must be re-initialized before reuse. */
void dsmt_sha256_final(struct dsmt_sha256 *s, uint8_t out[DSMT_SHA256_LEN]);

/* HMAC-SHA256(key, msg) into out[32]. Any key length (longer than a block is hashed). */
void dsmt_hmac_sha256(const void *key, size_t keylen, const void *msg, size_t len,
                      uint8_t out[DSMT_SHA256_LEN]);

/* a == b over n bytes, in time independent of where they differ (for MAC checks). */
int dsmt_equal_ct(const uint8_t *a, const uint8_t *b, size_t n);

#endif

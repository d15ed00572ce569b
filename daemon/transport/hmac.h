/*
 * hmac.h - HMAC-SHA256 (RFC 2104) and a constant-time compare, for the transports' peer
 * proof: a peer proves it holds the job secret (dsmt.h, dsmt_config.secret).
 *
 * A thin wrapper over nettle (Debian's libnettle8, the maintained library behind GnuTLS),
 * so the transports name one function and the crypto is not ours to get right.
 */
#ifndef DSMT_HMAC_H
#define DSMT_HMAC_H

#include <stddef.h>
#include <stdint.h>

#define DSMT_SHA256_LEN 32u

/* HMAC-SHA256(key, msg) into out[32]. Any key length (longer than a block is hashed). */
void dsmt_hmac_sha256(const void *key, size_t keylen, const void *msg, size_t len,
                      uint8_t out[DSMT_SHA256_LEN]);

/* a == b over n bytes, in time independent of where they differ (for MAC checks). */
int dsmt_equal_ct(const uint8_t *a, const uint8_t *b, size_t n);

#endif

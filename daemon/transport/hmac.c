/* hmac.c - see hmac.h. */
#include "hmac.h"

#include <nettle/hmac.h>
#include <nettle/memops.h>

_Static_assert(DSMT_SHA256_LEN == SHA256_DIGEST_SIZE, "the proof is one SHA-256 digest");

void dsmt_hmac_sha256(const void *key, size_t keylen, const void *msg, size_t len,
                      uint8_t out[DSMT_SHA256_LEN])
{
    struct hmac_sha256_ctx ctx;

    hmac_sha256_set_key(&ctx, keylen, key);
    hmac_sha256_update(&ctx, len, msg);
    hmac_sha256_digest(&ctx, SHA256_DIGEST_SIZE, out);
}

int dsmt_equal_ct(const uint8_t *a, const uint8_t *b, size_t n)
{
    return memeql_sec(a, b, n);
}

/*
 * test_hmac.c - daemon/transport/hmac.c (nettle underneath) against the RFC 4231
 * HMAC-SHA256 test vectors (cases 1-4, 6, 7), and its constant-time compare.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "hmac.h"

static void hex(const uint8_t *b, char *out)
{
    for (unsigned i = 0; i < DSMT_SHA256_LEN; i++)
        sprintf(out + 2 * i, "%02x", b[i]);
}

static void check_hmac(const uint8_t *key, size_t klen, const void *msg, size_t len, const char *want)
{
    uint8_t mac[DSMT_SHA256_LEN];
    char got[2 * DSMT_SHA256_LEN + 1];

    dsmt_hmac_sha256(key, klen, msg, len, mac);
    hex(mac, got);
    cr_assert_str_eq(got, want);
}

Test(hmac, rfc4231)
{
    uint8_t k[131], d[50];

    memset(k, 0x0b, 20);
    check_hmac(k, 20, "Hi There", 8, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
    check_hmac((const uint8_t *)"Jefe", 4, "what do ya want for nothing?", 28,
               "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    memset(k, 0xaa, 20), memset(d, 0xdd, 50);
    check_hmac(k, 20, d, 50, "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe");
    for (int i = 0; i < 25; i++)
        k[i] = (uint8_t)(i + 1);
    memset(d, 0xcd, 50);
    check_hmac(k, 25, d, 50, "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b");
    memset(k, 0xaa, 131);
    check_hmac(k, 131, "Test Using Larger Than Block-Size Key - Hash Key First", 54,
               "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
    const char *m7 = "This is a test using a larger than block-size key and a larger than block-size data."
                     " The key needs to be hashed before being used by the HMAC algorithm.";
    check_hmac(k, 131, m7, strlen(m7), "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2");
}

Test(hmac, equal_ct)
{
    uint8_t a[32] = { 1, 2, 3 }, b[32] = { 1, 2, 3 };

    cr_assert(dsmt_equal_ct(a, b, sizeof(a)));
    b[31] ^= 0x80;
    cr_assert(!dsmt_equal_ct(a, b, sizeof(a)));
    cr_assert(dsmt_equal_ct(a, b, 31), "only the first n bytes count");
}

/*
 * dsm_direct.h - the direct path: a rank reads a page straight from its home's daemon over
 * TCP, two process wake-ups per remote read fault instead of four (docs/BENCHMARKS.md "The
 * other option: a path from the faulting rank to the home").
 *
 * Who may: the node's daemon offers page p in door[p] of the node's hits table (dsm_hits.h):
 * 0, or the home node + 1 while nothing of the node's is under way for p (no copy here, no
 * request, revocation, fault or clearing). A rank takes the offer by compare-and-swap to
 * DSM_DOOR_CLAIM | its local index; the daemon closes a door by compare-and-swap too, so a
 * claim and a close cannot both win. A claim stands until the daemon ends it (door := 0):
 * meanwhile the daemon asks the home nothing about p, parks its ranks' faults on p, opens
 * nothing of p to them, and holds back what the home says about p.
 *
 * The exchange (one request in flight per connection; messages are struct dsm_direct_msg,
 * then, after a GRANT, the page's bytes):
 *   connect  home -> rank  NONCE   nonce[32]
 *            rank -> home  HELLO   node, rank, mac = HMAC-SHA256(job secret, the text of
 *                                  dsm_direct_proof_text), which the rank's own daemon made
 *            home -> rank  WELCOME status (0; else the connection closes)
 *   fault    rank -> home  READ    page
 *            home -> rank  GRANT   page, access, then page_size bytes; ZEROES (a GRANT of a
 *                                  page never written, no bytes follow); or REFUSED: status
 * The home runs READ as a read request of the rank's node and keeps the GRANT its model
 * sends that node: the page went to the rank. The rank writes it into its node's frame,
 * mprotects, counts the grant applied, and sets DSM_DOOR_DONE. Its daemon learns that
 * lazily: when something needs the page (a fault of its ranks, a message of the home about
 * it, a free) it finds DONE and then gives its model the home's GRANT itself, before
 * anything the home said after it; if DONE is not there yet it sets DSM_DOOR_WAIT, and a
 * rank that finds WAIT when it sets DONE sends DSMC_DIRECT_DONE to wake it. So a direct
 * read wakes two processes, the home's daemon and the rank, and the rank's daemon only
 * when it has to wait.
 *
 * door[p]:  0 | home + 1 (offered) | CLAIM | lrank [| DONE] [| WAIT] [| COUNTED]
 *   COUNTED: the daemon counted the claim's grant ahead (a free took the page meanwhile and
 *            its PROTECT waits for it); a rank whose read is refused still counts it applied.
 */
#ifndef DSM_DIRECT_H
#define DSM_DIRECT_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

#define DSM_DIRECT_MAGIC 0x44534d44u /* "DSMD" */
#define DSM_DOOR_CLAIM   0x8000u    /* door[p]: a rank's claim, its local index in the low bits */
#define DSM_DOOR_DONE    0x4000u    /* the claimant's page is in the frame and mapped */
#define DSM_DOOR_WAIT    0x2000u    /* the daemon waits for DONE: tell it (DSMC_DIRECT_DONE) */
#define DSM_DOOR_COUNTED 0x1000u    /* the daemon counted the claim's grant already */
#define DSM_DOOR_LOW     0x0fffu    /* an offer's home + 1, a claim's local rank */
#define DSM_DIRECT_NONCE 32u
#define DSM_DIRECT_MAC   32u

enum dsm_direct_op {
    DSM_DIRECT_NONCE_OP = 1,
    DSM_DIRECT_HELLO,
    DSM_DIRECT_WELCOME,
    DSM_DIRECT_READ,
    DSM_DIRECT_GRANT,
    DSM_DIRECT_REFUSED,
    DSM_DIRECT_ZEROES,  /* a GRANT of a page never written: all zeroes, no bytes follow */
};

struct dsm_direct_msg {
    uint32_t magic;   /* DSM_DIRECT_MAGIC */
    uint32_t op;      /* enum dsm_direct_op */
    int32_t  status;
    uint32_t node;    /* HELLO: the rank's node */
    uint32_t rank;    /* HELLO: the rank (global) */
    uint32_t access;  /* GRANT */
    uint64_t page;
    uint8_t  bytes[32]; /* NONCE: the nonce; HELLO: the mac */
};

_Static_assert(sizeof(struct dsm_direct_msg) == 64, "direct message size is part of the protocol");

/* The text a HELLO's mac covers: the job, both nodes, the rank and the home's nonce. */
static inline int dsm_direct_proof_text(char *buf, size_t len, uint64_t job, int home, int node, int rank,
                                        const uint8_t nonce[DSM_DIRECT_NONCE])
{
    int n = snprintf(buf, len, "dsm-direct job=%llu home=%d node=%d rank=%d nonce=", (unsigned long long)job,
                     home, node, rank);

    for (unsigned i = 0; i < DSM_DIRECT_NONCE && n >= 0 && (size_t)n + 2 < len; i++)
        n += snprintf(buf + n, len - (size_t)n, "%02x", nonce[i]);
    return n;
}

/* A frame [off, off+len) of the memfd fd was never written (or given back): a hole, which
 * reads as zeroes. lseek is async-signal-safe; the fd's offset is nobody's (no read/write
 * uses it). If in doubt, no. */
static inline int dsm_direct_hole(int fd, off_t off, size_t len)
{
    off_t next = lseek(fd, off, SEEK_DATA); /* ENXIO: no data from off to the end */

    return (next < 0 && errno == ENXIO) || (next >= 0 && (uint64_t)next >= (uint64_t)off + len);
}

#endif

#!/usr/bin/env python3
"""seeds_node.py - hand-built seed inputs for fuzz_node (tests/fuzz/fuzz_node.c).

A random input rarely gets a rank to hold a page: it takes a region, a rank's hello and a
fault answered by the page's home, in that order. These seeds do exactly that, then take
the page away again while the rank still holds it (an INV from the home, a free of the
region), so the fuzzer starts from the states where a revocation is under way and the
harness's check (no page open to node-local hits beyond what its state allows) bites; the
suite replays them (ctest fuzz_replay_fuzz_node).

The bytes follow the harness's reader one for one (run(), peer_structured(),
chan_message()); change them together.

  tests/fuzz/seeds_node.py DIR     write the seeds into DIR (tests/fuzz/corpus/fuzz_node)
"""
import os
import sys

# peer_structured()'s types[], in order
TYPES = ['READ_REQ', 'WRITE_REQ', 'GRANT', 'INV', 'INV_ACK', 'FETCH', 'FETCH_REPLY', 'EVICT',
         'EVICTED', 'LOCK_REQ', 'LOCK_GRANT', 'UNLOCK', 'BARRIER_ARRIVE', 'BARRIER_RELEASE',
         'FINI_ARRIVE', 'FINI_RELEASE', 'ALLOC_REQ', 'ALLOC_REPLY', 'REGION_ADD', 'REGION_FREE',
         'REGION_ACK', 'COFREE_REQ', 'FREE_REQ', 'PAGE_GET', 'PAGE', 'DIFF', 'DIFF_ACK', 'UPDATE',
         'HEARTBEAT', 'RANK_ABSENT', 'COND_WAIT', 'COND_QUEUED', 'COND_SIGNAL', 'COND_WAKE',
         'ATOMIC_REQ', 'ATOMIC_REPLY']
# enum dsmc_op (libdsm/common/dsm_chan.h)
OPS = {'HELLO_MAIN': 1, 'HELLO_THREAD': 2, 'HELLO_SERVICE': 3, 'FAULT': 5, 'ATOMIC': 22}
MODELS = ['sequential', 'release', 'causal']
READ, WRITE = 1, 2


def first(model, hits=1, grants_ahead=0, reads_ahead=0, cache=0):
    """The first byte: the model, no trace, page stats or false sharing, the rest as asked
    (a page cache of 8 pages, only with hits off: 192 + ...)."""
    v = MODELS.index(model) + 24 * grants_ahead + 48 * reads_ahead + (192 if cache else 96 * hits)
    assert v < 256 and (v // 3) % 2 == 0 and (v // 6) % 2 == 0 and (v // 12) % 2 == 0
    assert (v // 192 == 1) == bool(cache)
    return bytes([v])


def peer(kind, src=0, page=0, origin=0, access=0, addr=0, count=0, framed=0):
    """A well-formed message from node src (0 or 2): op 1, slot, then its fields in the
    order peer_structured() reads them."""
    op = 1 | (0x80 if src == 2 else 0)
    fields = [TYPES.index(kind), page, origin, access, 0, 0, addr, count, 0, 0, 0,  # .. status
              0, 0, 0, 0, 0]                                                       # aop .. stamp
    return bytes([op, 0] + fields + [0] + [0, 0, 0] + [0, framed])  # no data, no clock


def chan_open(slot):
    return bytes([3, slot])


def chan(slot, op, a=0, b=0):
    """A channel message from rank 2: magic ok, op, rank, seq (two bytes), a, b, c, d."""
    return bytes([4, slot, 1, OPS[op], 0, 0, 0, a, b, 0, 0])


def ranks_read():
    """The ranks take their messages; service channels acknowledge every PROTECT."""
    return bytes([7, 0])


def home(page):
    """Block homes of the region [0, 15) over 3 nodes: 5 pages each."""
    return page // 5


def fault(model, page, write=0):
    """Rank 2 faults on `page` (homed on node 0 or 2) and its home answers."""
    s = chan(0, 'FAULT', a=page, b=write)
    if model == 'sequential':
        s += peer('GRANT', src=home(page), page=page, access=WRITE if write else READ, origin=2, framed=1)
    elif model == 'release':
        s += peer('PAGE', src=home(page), page=page, origin=2, framed=1)
    return s + ranks_read()


def holding(model, page=1, write=0, **kw):
    """Region [0, 15) (page 1 on node 0), rank 2's main and service channels, and rank 2
    holding `page` (read, or written), its home's answer included."""
    s = first(model, **kw) + peer('REGION_ADD', src=0, addr=0, count=15)
    s += chan_open(0) + chan(0, 'HELLO_MAIN') + chan_open(1) + chan(1, 'HELLO_SERVICE') + ranks_read()
    return s + fault(model, page, write)


def direct(slot, page, what):
    """Rank 2's direct read of `page` (dsm_direct.h), as rank_direct() plays it: 0 claims the
    door, 1 finishes (DSMC_DIRECT_DONE on the channel in `slot` if the daemon waits), 2 lets
    a refused claim go. Slot 0 (even): local rank 0, rank 2."""
    return bytes([0x67, slot, page, what])


def direct_ready(page=1, model='sequential', **kw):
    """A model with hits (and so direct reads: sequential, release), region [0, 15), rank
    2's main, service and a thread channel, and rank 2 claiming `page` (homed on node 0)."""
    s = first(model, **kw) + peer('REGION_ADD', src=0, addr=0, count=15)
    s += chan_open(0) + chan(0, 'HELLO_MAIN') + chan_open(1) + chan(1, 'HELLO_SERVICE')
    s += chan_open(2) + chan(2, 'HELLO_THREAD') + ranks_read()
    return s + direct(0, page, 0)


def remote(slot, what, *args):
    """Another node's rank on the node's direct listener, as remote_rank() plays it: 0
    connects, 1 says HELLO (node, rank; node 3 a wrong proof), 2 READ (page), 3 64 bytes of
    garbage, 4 hangs up."""
    return bytes([0x57, slot, what] + list(args))


def direct_seeds():
    """A direct read ending every way the daemon can meet it."""
    inv = peer('INV', src=0, page=1, origin=2) + ranks_read()
    free = peer('REGION_FREE', src=0, addr=0, count=15) + ranks_read()
    listener = first('sequential') + peer('REGION_ADD', src=0, addr=0, count=15) + remote(0, 0) + \
        remote(0, 1, 0, 0)
    return {
        # node 0's rank 0 reads pages 6 and 7 (homed here) and the home's own page 5 after a
        # write of node 2's took it; then garbage
        'seq-listener-read': listener + remote(0, 2, 6) + remote(0, 2, 7) +
                             peer('WRITE_REQ', src=2, page=5, origin=3) + peer('INV_ACK', src=0, page=5) +
                             remote(0, 2, 5) + remote(0, 3, *([0x44] * 64)) + remote(0, 4),
        'seq-listener-bad-proof': first('sequential') + remote(1, 0) + remote(1, 1, 3, 0) + remote(1, 2, 6),
        'seq-direct-done-inv': direct_ready() + direct(0, 1, 1) + inv,
        'seq-direct-inv-held': direct_ready() + inv + direct(0, 1, 1) + ranks_read(),
        'seq-direct-fault-parked': direct_ready() + chan(2, 'FAULT', a=1) + direct(0, 1, 1) + ranks_read() +
                                   inv,
        'seq-direct-write-parked': direct_ready() + chan(2, 'FAULT', a=1, b=1) + direct(0, 1, 1) +
                                   ranks_read() + peer('GRANT', src=0, page=1, access=WRITE, origin=2) +
                                   ranks_read(),
        'seq-direct-free': direct_ready() + free + direct(0, 1, 1) + ranks_read(),
        'seq-direct-done-free': direct_ready() + direct(0, 1, 1) + free,
        'seq-direct-refused': direct_ready() + free + direct(0, 1, 2) + chan(0, 'FAULT', a=1) + ranks_read(),
        # a scan of pages 0, 1 on the thread channel reads ahead to page 2, which rank 2's
        # main thread is reading directly: the model must leave it out (take)
        'seq-direct-read-ahead': direct_ready(page=2, grants_ahead=1, reads_ahead=1) + fault('sequential', 0) +
                                 chan(0, 'FAULT', a=1) + ranks_read() + direct(0, 2, 1) + ranks_read(),
    }


def release_direct_seeds():
    """The same under release, where nothing from the home names a page a claim reads, but
    the node's own atomics and acquires may (docs/PROTOCOL.md "Direct reads")."""
    rel = lambda **kw: direct_ready(model='release', **kw)
    free = peer('REGION_FREE', src=0, addr=0, count=15) + ranks_read()
    # rank 2's thread adds to a word of page 1 (homed on node 0); the home's ATOMIC_REPLY
    # (its token is the fuzzer's to find) waits for the claim
    atomic = chan(2, 'ATOMIC', a=0, b=1)[:-1] + bytes([2, 1, 2, 1]) + \
        peer('ATOMIC_REPLY', src=0, page=1, origin=2)[:-6] + bytes([1, 2, 0, 0, 0, 0, 0, 0])
    return {
        'rel-direct-done-fault': rel() + direct(0, 1, 1) + chan(2, 'FAULT', a=1) + ranks_read(),
        'rel-direct-fault-parked': rel() + chan(2, 'FAULT', a=1) + direct(0, 1, 1) + ranks_read(),
        'rel-direct-write-parked': rel() + chan(2, 'FAULT', a=1, b=1) + direct(0, 1, 1) + ranks_read(),
        'rel-direct-free': rel() + free + direct(0, 1, 1) + ranks_read(),
        'rel-direct-done-free': rel() + direct(0, 1, 1) + free,
        'rel-direct-refused': rel() + free + direct(0, 1, 2) + chan(0, 'FAULT', a=1) + ranks_read(),
        'rel-direct-atomic-held': rel() + atomic + direct(0, 1, 1) + ranks_read(),
        'rel-direct-read-ahead': rel(page=2, grants_ahead=1, reads_ahead=1) + fault('release', 0) +
                                 chan(0, 'FAULT', a=1) + ranks_read() + direct(0, 2, 1) + ranks_read(),
    }


def evicting(model, write=0):
    """A page cache of 8 pages and rank 2 touching the 10 pages of the region homed on nodes
    0 and 2, so the node evicts; the homes answer the first evictions (sequential)."""
    s = holding(model, page=0, write=write, cache=1)
    for page in (1, 2, 3, 4, 10, 11, 12, 13, 14):
        s += fault(model, page, write)
    if model == 'sequential':
        for page in (0, 1, 2):
            s += peer('EVICTED', src=0, page=page, origin=2) + ranks_read()
    return s


def seeds():
    out = {}
    for ahead in (0, 1):
        tag = '-ahead' if ahead else ''
        out['seq-read-inv' + tag] = holding('sequential', grants_ahead=ahead, reads_ahead=ahead) + \
            peer('INV', src=0, page=1, origin=2) + ranks_read()
        out['seq-write-inv' + tag] = holding('sequential', write=1, grants_ahead=ahead) + \
            peer('INV', src=0, page=1, origin=2) + ranks_read()
        for model in MODELS:
            out['%s-free' % model[:3] + tag] = holding(model, grants_ahead=ahead) + \
                peer('REGION_FREE', src=0, addr=0, count=15) + ranks_read()
    for model in ('sequential', 'release'):
        for write in (0, 1):
            name = '%s-cache-%s' % (model[:3], 'write' if write else 'read')
            out[name] = evicting(model, write)
            out[name + '-free'] = evicting(model, write) + peer('REGION_FREE', src=0, addr=0, count=15) + \
                ranks_read()
    out.update(direct_seeds())
    out.update(release_direct_seeds())
    return out


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    for name, data in seeds().items():
        with open(os.path.join(sys.argv[1], 'seed-' + name), 'wb') as f:
            f.write(data)


if __name__ == '__main__':
    main()

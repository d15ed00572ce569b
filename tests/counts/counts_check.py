#!/usr/bin/env python3
"""counts_check.py - exact statistics of a known page-traffic pattern (see counts.c).

usage: counts_check.py DSMRUN COUNTS_BINARY -n N --ranks-per-node K PAGES [release|ahead-MODEL|ahead2-MODEL|readahead-MODEL|local-MODEL|direct|direct-MODEL|again|sweep|sweep-causal|private|refault-MODEL|realloc-MODEL|unseen-MODEL|resweep-MODEL]

Runs the job twice, with 0 pages and with PAGES pages, and checks the differences of the
--stats counters. With M nodes, node 0 home of the pages, R_o ranks outside node 0 spread
over M-1 nodes, and P pages:
  read_faults  (ranks outside node 0)  += R_o * P      every rank faults on every page
  pages_fetched (summed)               += (M-1) * P    once per node: faults are coalesced
  invalidations (summed)               += R_o * P      every rank outside node 0 loses each copy
  write_faults (rank 0)                += P            (node 0 is the home: no message for data)
  messages (summed)                    += (M-1)*P*2    READ_REQ+GRANT per page per node
                                        + (M-1)*P*2    INV+INV_ACK per page per node
  bytes                                 page payloads: exactly (M-1)*P pages, plus headers

With `release` the job runs under the release model and what is checked is that protection
changes travel in bulk (docs/PROTOCOL.md): the P pages are contiguous, so
  rank 0                    protects += 1, protect_pages += P  (write-protected at its release)
  ranks outside node 0      protects += 1, protect_pages += P  (invalidated at the barrier)
  other ranks of node 0     protects += 0, protect_pages += 0  (they never touched the pages)
and every rank outside node 0 still read-faults on every page and loses every copy; the
write notices on the wire (notice_bytes, summed) grow by exactly (M-1) * 22: node 0's one
notice (a 10-byte header, one 12-byte run) in the barrier release to each other node (its
own ranks' arrivals and release go through the node itself, not the wire).

These runs keep each fault to its page (DSM_GRANT_AHEAD=1, DSM_READ_AHEAD=1): the per-page
traffic is what is counted. With `ahead-MODEL` the job runs under MODEL with grants ahead of up to 16 pages
and rank 0 first scans the P pages homed on its node (counts.c's phase 0): its read faults
grow by exactly the number of runs of lengths 1, 2, 4, ... 16, 16, ... that cover P pages,
and its pages granted ahead by at least P minus that. With `ahead2-MODEL` it reads them as two
interleaved scans of P/2 pages (page i of each half in turn): twice the runs covering P/2.

With `readahead-MODEL` (2 nodes, one rank each) the job runs under MODEL twice with P pages,
with reads ahead off (DSM_READ_AHEAD=1) and on (16), grants ahead on in both: rank 1's scan
of the P pages homed on node 0 (phase 1) fetches runs of 1, 2, 4, 8, 16, 16, ... pages, one
PAGE_GET/READ_REQ and one reply each (causal: one PAGE per page, the request saved; its
intervals end only at releases here, DSM_CAUSAL_DELAY_US=10000000). So with reads ahead on,
exactly:
  rank 1 read_faults          = runs (the number of such runs that cover P)
  rank 1 pages_read_ahead     = P - runs
  pages_fetched (summed)      = the same as with reads ahead off (P)
  messages_sent (summed)      = with reads ahead off, minus 2 * (P - runs) (causal: 1 *)
With `local-MODEL` (ranks 0 and 1 on node 0) counts.c's `local` phase runs: rank 0 writes the
P pages homed on node 0, then rank 1 reads them. The node holds every page rank 1 reads, so
each of its faults is a node-local hit (dsm_hits.h), resolved in the rank without a message:
  rank 1 read_faults = local_hits = P     one page per fault (DSM_GRANT_AHEAD=1)
  rank 1 read_faults = local_hits = runs  with grants ahead of up to 16: the hits' own runs,
                                           and pages_granted_ahead >= P - runs (the last run
                                           may reach past P), as many as the daemon's runs
  with DSM_LOCAL_HITS=0                   the same read_faults (and runs), local_hits = 0
  messages_sent (summed)                  the same with hits on and off
Every other check counts the daemons' own path and runs with DSM_DIRECT=0 (a direct read,
dsm_direct.h, bypasses the scans, runs and reads ahead they count).
With `direct` or `direct-MODEL` (sequential, release) counts.c's `direct` phase runs with
DSM_DIRECT=1 and =0: the last rank reads the P pages homed on node 0 (in no scan's order),
rank 0 writes them, the reader reads them again. Differences of the P run from the 0 run:
  reader read_faults = direct_faults = pages_fetched = 2P   every read straight from the home
  reader invalidations = P      the home's INV (sequential) or the barrier's write notice
                                (release) found each copy: the node took the home's answer
  node 0 direct_reads_served = 2P
  with DSM_DIRECT=0             the same read_faults and pages_fetched, direct_faults = 0
  messages_sent (summed)        2P fewer with it: a direct read is the home's reply alone,
                                where the daemon's path sends a READ_REQ and a GRANT
With `again` (release) counts.c's `again` phase runs with DSM_RELEASE_FETCH_AGAIN=1 and =0:
five rounds of the last rank reading the P pages (not in round 3) and rank 0 rewriting them,
a barrier between. The barrier of round 0 drops copies nobody wanted back yet; those of
rounds 1 and 2 drop copies read again after a drop and mapped: each fetches them again
(P); round 3's drops a copy fetched again that nobody mapped: not again. So, summed:
  pages_fetched_again = 2P        0 with it off
  pages_fetched       = 5P        rounds 0, 1, 4 on demand, rounds 1 and 2 again (round 2
                                  reads what came); 4P with it off (rounds 0, 1, 2, 4)
and the reader reads each round's value (counts.c checks the sum).
With `sweep` (release, grants ahead of up to 16) counts.c's `sweep` phase runs: three
rounds of rank 0 writing the P pages homed on its node in order from the first, each
followed by a barrier (a reader elsewhere reads them, so each release write-protects them
again). Round 0's scan takes runs of 1, 2, 4, ... 16; rounds 1 and 2 start at the page it
started at and take up its run, 16 pages a fault from the first. So, rank 0:
  write_faults = runs + 2 * ceil(P / 16)    (runs: those that cover P, as above)
  pages_granted_ahead >= 3P - write_faults
and the reader reads each round's value (counts.c checks the sum). With `sweep-causal` the
same, under causal (its writes ahead twin the pages of the run; its intervals end only at
the barriers here, DSM_CAUSAL_DELAY_US=10000000, and P <= 256 fits one interval).
With `private` (causal, grants ahead of up to 16) counts.c's `private` phase runs: the same
three rounds of rank 0 writing the P pages homed on its node, but nobody else reads them
until all three are done. They are private to their home, written with no twin and left
writable across intervals, so only round 0 faults, and no diff is made or sent; the reader
then fetches each, which the home serves once the page is back to READ and its interval
ended, and must see round 2's value. With DSM_CAUSAL_REPLICAS=full every round faults and
every page is diffed. So (partial / full):
  rank 0 write_faults = runs / runs + 2 * ceil(P / 16)
  node 0 diffs        = 0    / 3P   (every node's replica gets every page)
With `refault-MODEL` (sequential, release; grants ahead of up to 64, reads ahead of up to 16,
direct path on and off) counts.c's `refault` phase runs: the last rank reads the P pages
homed on node 0 in no scan's order, four at a time, each group again after rank 0 rewrote
it. Every fault is a lone one; the second on a page repeats a lone fault, which starts no
scan (only a sweep that ran past its first page is taken up again). So, for the reader:
  read_faults = pages_fetched = 2P
  pages_read_ahead = pages_granted_ahead = 0
  direct_faults = 2P with the direct path on (no fault its scans took for a sweep's), else 0
With `realloc-MODEL` (the same settings) counts.c's `realloc` phase runs: the reader's lone
faults on pages 0, 2, 4, 6 of a block, then, once every rank has freed the block and got it
back, on pages 1, 3, 5, 7, P / 8 times. A freed block's scans end with it (the daemon's and
the rank's threads'), so the second four extend none: the same as `refault` with P in place
of 2P.
With `unseen-MODEL` (the same settings) counts.c's `unseen` phase runs: P / 8 times the
reader faults on page 4i homed on node 0, hits four pages of its own node, and faults on page
4i + 1. The daemon saw no fault in between, but the thread's scans did, and its FAULT says
that 2i + 1 continues none of them: nothing is read or granted ahead. So, for the reader,
with G = P / 8:
  read_faults = 6G, local_hits = 4G, pages_fetched = 2G
  pages_read_ahead = pages_granted_ahead = 0
  direct_faults = 2G with the direct path on (sequential, release), else 0
With `resweep-MODEL` (grants ahead of up to 16, no reads ahead, direct path off) counts.c's
`resweep` phase runs: the reader's first sweep of the P pages homed on node 0 fetches one
page a fault while its scan's length doubles to 16; its second sweep, after rank 0 wrote
them and the other rank of its node read them back, is node-local hits that take up that
length (GRANT's d: the thread's scans as long as the daemon's). So, for the reader:
  read_faults = P + ceil(P / 16), local_hits = ceil(P / 16)
"""
import json
import os
import subprocess
import sys
import tempfile


def run(dsmrun, prog, n, k, pages, model, ahead=1, read_ahead=1, scan=None, hits=1, direct=0, again=1, env=None):
    scan = ("scan" if ahead > 1 else None) if scan is None else scan
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        cmd = [dsmrun, "-n", str(n), "--ranks-per-node", str(k), "--timeout", "60",
               "--consistency", model, "--stats", f.name, "--", prog, str(pages)] + ([scan] if scan else [])
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=90,
                           env=dict(os.environ, DSM_GRANT_AHEAD=str(ahead), DSM_READ_AHEAD=str(read_ahead),
                                    DSM_LOCAL_HITS=str(hits), DSM_DIRECT=str(direct),
                                    DSM_RELEASE_FETCH_AGAIN=str(again), **(env or {})))
        if r.returncode != 0:
            sys.exit(f"FAIL: {' '.join(cmd)} exited {r.returncode}\n{r.stdout}{r.stderr}")
        return json.load(open(f.name))


def total(stats, key, pred=lambda r: True):
    return sum(r[key] for r in stats["ranks"] if pred(r))


def of_rank(stats, rank, key):
    """Counter `key` of one rank."""
    return next(r[key] for r in stats["ranks"] if r["rank"] == rank)


def check_bulk(a, b, pages, outside, m):
    """The release run's checks (see the top): 0 if all hold."""
    bad = 0

    def one(name, got, want):
        nonlocal bad
        bad += got != want
        print(f"{'ok  ' if got == want else 'FAIL'} {name}: +{got} (expected +{want})")

    off0 = lambda r: r["node"] != 0
    one("read_faults outside node 0", total(b, "read_faults", off0) - total(a, "read_faults", off0),
        outside * pages)
    one("invalidations", total(b, "invalidations") - total(a, "invalidations"), outside * pages)
    for ra, rb in zip(a["ranks"], b["ranks"]):
        touched = rb["rank"] == 0 or rb["node"] != 0
        one(f"rank {rb['rank']} protects", rb["protects"] - ra["protects"], 1 if touched else 0)
        one(f"rank {rb['rank']} protect_pages", rb["protect_pages"] - ra["protect_pages"],
            pages if touched else 0)
    one("notice_bytes", total(b, "notice_bytes") - total(a, "notice_bytes"), (m - 1) * (10 + 12))
    print(f"{'FAILED' if bad else 'PASSED'}: {bad} check(s) failed")
    return 1 if bad else 0


def runs_covering(pages, most):
    """The grants a page-by-page scan of `pages` takes with runs doubling up to `most`."""
    n, length, covered = 0, 0, 0
    while covered < pages:
        length = 1 if length == 0 else min(2 * length, most)
        covered += length
        n += 1
    return n


def check_ahead(dsmrun, prog, n, k, pages, model, scans=1):
    """Grants ahead: rank 0's scan of its node's pages, or `scans` = 2 interleaved scans of
    half of them each (see the top); 0 if all hold."""
    scan = "scan" if scans == 1 else "scan2"
    a, b = run(dsmrun, prog, n, k, 0, model, 16, scan=scan), run(dsmrun, prog, n, k, pages, model, 16, scan=scan)
    r0 = lambda s, key: of_rank(s, 0, key)
    faults = r0(b, "read_faults") - r0(a, "read_faults")
    ahead = r0(b, "pages_granted_ahead") - r0(a, "pages_granted_ahead")
    want = scans * runs_covering(pages // scans, 16)
    bad = (faults != want) + (ahead < pages - want)
    print(f"{'ok  ' if faults == want else 'FAIL'} {model}: rank 0 read faults scanning {pages} pages: +{faults} "
          f"(expected +{want})")
    print(f"{'ok  ' if ahead >= pages - want else 'FAIL'} {model}: rank 0 pages granted ahead: +{ahead} "
          f"(expected at least +{pages - want})")
    print(f"{'FAILED' if bad else 'PASSED'}: {bad} check(s) failed")
    return 1 if bad else 0


def check_readahead(dsmrun, prog, n, k, pages, model):
    """Reads ahead: rank 1's scan of node 0's pages (see the top); 0 if all hold."""
    if n != 2 or k != 1:
        sys.exit("readahead checks run on 2 nodes with one rank each")
    env = {"DSM_CAUSAL_DELAY_US": "10000000"} if model == "causal" else None  # intervals end at releases only
    off, on = (run(dsmrun, prog, n, k, pages, model, 16, ra, scan=False, env=env) for ra in (1, 16))
    r1 = lambda s, key: of_rank(s, 1, key)
    runs = runs_covering(pages, 16)
    saved = 1 if model == "causal" else 2  # causal's home answers each page in its own PAGE
    expect = {
        "rank 1 read_faults": (r1(on, "read_faults"), runs),
        "rank 1 pages_read_ahead": (r1(on, "pages_read_ahead"), pages - runs),
        "pages_fetched": (total(on, "pages_fetched"), total(off, "pages_fetched")),
        "messages_sent": (total(on, "messages_sent"), total(off, "messages_sent") - saved * (pages - runs)),
        "rank 1 read_faults with reads ahead off": (r1(off, "read_faults"), pages),
    }
    return verdict(model, expect)


def verdict(model, expect):
    """Print each {name: (got, want)} check and the summary; 0 if all hold, else 1."""
    bad = 0
    for name, (got, want) in expect.items():
        bad += got != want
        print(f"{'ok  ' if got == want else 'FAIL'} {model}: {name}: {got} (expected {want})")
    print(f"{'FAILED' if bad else 'PASSED'}: {bad} check(s) failed")
    return 1 if bad else 0


def check_local(dsmrun, prog, n, k, pages, model):
    """Node-local hits: rank 1 reads what rank 0 of its node wrote (see the top); 0 if all hold."""
    if k < 2:
        sys.exit("local checks need ranks 0 and 1 on node 0 (--ranks-per-node 2 or more)")
    r1 = lambda s, key: of_rank(s, 1, key)
    expect = {}
    for ahead in (1, 16):
        on, off = (run(dsmrun, prog, n, k, pages, model, ahead, scan="local", hits=h) for h in (1, 0))
        faults = pages if ahead == 1 else runs_covering(pages, 16)
        expect.update({
            f"ahead {ahead}: rank 1 read_faults": (r1(on, "read_faults"), faults),
            f"ahead {ahead}: rank 1 local_hits": (r1(on, "local_hits"), faults),
            f"ahead {ahead}: rank 1 pages_granted_ahead, hits on and off": (r1(on, "pages_granted_ahead"),
                                                                            r1(off, "pages_granted_ahead")),
            f"ahead {ahead}: rank 1 pages_granted_ahead at least P - runs": (
                min(r1(on, "pages_granted_ahead"), pages - faults), pages - faults),
            f"ahead {ahead}: hits off: rank 1 read_faults": (r1(off, "read_faults"), faults),
            f"ahead {ahead}: hits off: local_hits (summed)": (total(off, "local_hits"), 0),
            f"ahead {ahead}: messages_sent, hits on and off": (total(on, "messages_sent"),
                                                               total(off, "messages_sent")),
        })
    return verdict(model, expect)


def check_direct(dsmrun, prog, n, k, pages, model):
    """The direct path (see the top): 0 if all hold."""
    reader = n - 1
    rd = lambda s, key: of_rank(s, reader, key)
    diff = lambda a, b, key: rd(b, key) - rd(a, key)
    on = [run(dsmrun, prog, n, k, p, model, scan="direct", direct=1) for p in (0, pages)]
    off = [run(dsmrun, prog, n, k, p, model, scan="direct", direct=0) for p in (0, pages)]
    msgs = lambda pair: total(pair[1], "messages_sent") - total(pair[0], "messages_sent")
    node0 = lambda s, key: next(nd[key] for nd in s["nodes"] if nd["node"] == 0)
    return verdict(model, {
        "reader read_faults": (diff(*on, "read_faults"), 2 * pages),
        "reader direct_faults": (diff(*on, "direct_faults"), 2 * pages),
        "reader pages_fetched": (diff(*on, "pages_fetched"), 2 * pages),
        "reader invalidations": (diff(*on, "invalidations"), pages),
        "node 0 direct_reads_served": (node0(on[1], "direct_reads_served") - node0(on[0], "direct_reads_served"),
                                       2 * pages),
        "off: reader read_faults": (diff(*off, "read_faults"), 2 * pages),
        "off: reader pages_fetched": (diff(*off, "pages_fetched"), 2 * pages),
        "off: direct_faults (summed)": (total(off[1], "direct_faults"), 0),
        "messages_sent, off minus on": (msgs(off) - msgs(on), 2 * pages),
    })


def check_again(dsmrun, prog, n, k, pages):
    """Fetching again at an acquire (see the top): 0 if all hold."""
    on = [run(dsmrun, prog, n, k, p, "release", scan="again") for p in (0, pages)]
    off = [run(dsmrun, prog, n, k, p, "release", scan="again", again=0) for p in (0, pages)]
    grew = lambda pair, key: total(pair[1], key) - total(pair[0], key)
    return verdict("release", {
        "pages_fetched_again": (grew(on, "pages_fetched_again"), 2 * pages),
        "pages_fetched": (grew(on, "pages_fetched"), 5 * pages),
        "off: pages_fetched_again": (total(off[1], "pages_fetched_again"), 0),
        "off: pages_fetched": (grew(off, "pages_fetched"), 4 * pages),
    })


def check_sweep(dsmrun, prog, n, k, pages, model):
    """A sweep that repeats a scan takes up its run (see the top): 0 if all hold."""
    env = {"DSM_CAUSAL_DELAY_US": "10000000"} if model == "causal" else None
    a, b = (run(dsmrun, prog, n, k, p, model, 16, scan="sweep", env=env) for p in (0, pages))
    grew = lambda key: of_rank(b, 0, key) - of_rank(a, 0, key)
    faults = runs_covering(pages, 16) + 2 * -(-pages // 16)
    return verdict(model, {
        "rank 0 write_faults": (grew("write_faults"), faults),
        "rank 0 pages_granted_ahead at least 3P - faults": (min(grew("pages_granted_ahead"), 3 * pages - faults),
                                                           3 * pages - faults),
    })


def check_private(dsmrun, prog, n, k, pages):
    """Private home pages under causal (see the top): 0 if all hold."""
    expect = {}
    for replicas in ("partial", "full"):
        env = {"DSM_CAUSAL_DELAY_US": "10000000", "DSM_CAUSAL_REPLICAS": replicas}
        a, b = (run(dsmrun, prog, n, k, p, "causal", 16, scan="private", env=env) for p in (0, pages))
        grew = lambda key: of_rank(b, 0, key) - of_rank(a, 0, key)
        node0 = lambda s, key: total(s, key, lambda r: r["node"] == 0)  # a flush counts to the rank whose release began it
        runs = runs_covering(pages, 16)
        full = replicas == "full"
        expect.update({
            f"{replicas}: rank 0 write_faults": (grew("write_faults"), runs + 2 * -(-pages // 16) * full),
            f"{replicas}: node 0 diffs": (node0(b, "diffs") - node0(a, "diffs"), 3 * pages * full),
        })
    return verdict("private causal", expect)


def check_unseen(dsmrun, prog, n, k, pages, model):
    """Faults the daemon does not see end its scans too (see the top): 0 if all hold."""
    reader, g = n - 1, pages // 8
    expect = {}
    for direct in (0, 1) if model != "causal" else (0,):
        a, b = (run(dsmrun, prog, n, k, p, model, 64, 16, scan="unseen", direct=direct) for p in (0, pages))
        grew = lambda key: of_rank(b, reader, key) - of_rank(a, reader, key)
        expect.update({
            f"direct {direct}: reader read_faults": (grew("read_faults"), 6 * g),
            f"direct {direct}: reader local_hits": (grew("local_hits"), 4 * g),
            f"direct {direct}: reader pages_fetched": (grew("pages_fetched"), 2 * g),
            f"direct {direct}: reader pages_read_ahead": (grew("pages_read_ahead"), 0),
            f"direct {direct}: reader pages_granted_ahead": (grew("pages_granted_ahead"), 0),
            f"direct {direct}: reader direct_faults": (grew("direct_faults"), 2 * g * direct),
        })
    return verdict(f"unseen {model}", expect)


def check_resweep(dsmrun, prog, n, k, pages, model):
    """A sweep taken up again in hits (see the top): 0 if all hold."""
    reader = n - 1
    a, b = (run(dsmrun, prog, n, k, p, model, 16, 1, scan="resweep") for p in (0, pages))
    grew = lambda key: of_rank(b, reader, key) - of_rank(a, reader, key)
    return verdict(f"resweep {model}", {
        "reader read_faults": (grew("read_faults"), pages + -(-pages // 16)),
        "reader local_hits": (grew("local_hits"), -(-pages // 16)),
    })


def check_lone(dsmrun, prog, n, k, pages, model, phase):
    """Lone faults take nothing ahead, `phase` refault or realloc (see the top): 0 if all hold."""
    reader = n - 1
    faults = 2 * pages if phase == "refault" else pages
    expect = {}
    for direct in (0, 1):
        a, b = (run(dsmrun, prog, n, k, p, model, 64, 16, scan=phase, direct=direct) for p in (0, pages))
        grew = lambda key: of_rank(b, reader, key) - of_rank(a, reader, key)
        expect.update({
            f"direct {direct}: reader read_faults": (grew("read_faults"), faults),
            f"direct {direct}: reader pages_fetched": (grew("pages_fetched"), faults),
            f"direct {direct}: reader pages_read_ahead": (grew("pages_read_ahead"), 0),
            f"direct {direct}: reader pages_granted_ahead": (grew("pages_granted_ahead"), 0),
            f"direct {direct}: reader direct_faults": (grew("direct_faults"), faults * direct),
        })
    return verdict(f"{phase} {model}", expect)


def main():
    dsmrun, prog = sys.argv[1], sys.argv[2]
    n, k, pages = int(sys.argv[4]), int(sys.argv[6]), int(sys.argv[7])
    model = sys.argv[8] if len(sys.argv) > 8 else "sequential"
    m = (n + k - 1) // k
    outside = n - min(k, n)
    if model.startswith("ahead-"):
        sys.exit(check_ahead(dsmrun, prog, n, k, pages, model[6:]))
    if model.startswith("ahead2-"):
        sys.exit(check_ahead(dsmrun, prog, n, k, pages, model[7:], scans=2))
    if model.startswith("local-"):
        sys.exit(check_local(dsmrun, prog, n, k, pages, model[6:]))
    if model == "direct" or model.startswith("direct-"):
        sys.exit(check_direct(dsmrun, prog, n, k, pages, model[7:] or "sequential"))
    if model == "again":
        sys.exit(check_again(dsmrun, prog, n, k, pages))
    if model == "sweep" or model.startswith("sweep-"):
        sys.exit(check_sweep(dsmrun, prog, n, k, pages, model[6:] or "release"))
    if model == "private":
        sys.exit(check_private(dsmrun, prog, n, k, pages))
    if model.startswith("resweep-"):
        sys.exit(check_resweep(dsmrun, prog, n, k, pages, model[8:]))
    if model.startswith("unseen-"):
        sys.exit(check_unseen(dsmrun, prog, n, k, pages, model[7:]))
    if model.startswith("refault-") or model.startswith("realloc-"):
        sys.exit(check_lone(dsmrun, prog, n, k, pages, model[8:], model[:7]))
    if model.startswith("readahead-"):
        sys.exit(check_readahead(dsmrun, prog, n, k, pages, model[10:]))
    a, b = run(dsmrun, prog, n, k, 0, model), run(dsmrun, prog, n, k, pages, model)
    off0 = lambda r: r["node"] != 0
    if model == "release":
        sys.exit(check_bulk(a, b, pages, outside, m))
    expect = {
        "read_faults outside node 0": (lambda s: total(s, "read_faults", off0), outside * pages),
        "pages_fetched": (lambda s: total(s, "pages_fetched"), (m - 1) * pages),
        "invalidations": (lambda s: total(s, "invalidations"), outside * pages),
        "write_faults of rank 0": (lambda s: total(s, "write_faults", lambda r: r["rank"] == 0), pages),
        "messages_sent": (lambda s: total(s, "messages_sent"), 4 * (m - 1) * pages),
    }
    bad = 0
    for name, (f, want) in expect.items():
        got = f(b) - f(a)
        ok = got == want
        bad += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {name}: +{got} (expected +{want})")
    got = total(b, "bytes_sent") - total(a, "bytes_sent")
    lo, hi = (m - 1) * pages * 4096, (m - 1) * pages * (4096 + 4 * 32)
    ok = lo <= got <= hi
    bad += not ok
    print(f"{'ok  ' if ok else 'FAIL'} bytes_sent: +{got} (expected {lo}..{hi}: one page per node and page plus small headers)")
    nodes = sum(x["messages_sent"] for x in b["nodes"])
    ok = nodes == total(b, "messages_sent")
    bad += not ok
    print(f"{'ok  ' if ok else 'FAIL'} per-node message totals equal the per-rank sum ({nodes})")
    print(f"{'FAILED' if bad else 'PASSED'}: {bad} check(s) failed")
    sys.exit(1 if bad else 0)


main()

#!/usr/bin/env python3
"""cache_check.py - run a job under a bounded page cache (dsmrun --cache-size) and check it.

usage: cache_check.py DSMRUN -n N --ranks-per-node K --consistency M --cache-size BYTES
                      [--memory-nodes M] [--rss MIB [--frames-only S]] [--min-evictions E]
                      -- PROGRAM [ARGS...]

Checks: the job exits 0 and prints an "OK" line; every node's cache never held more pages
than its bound (memory nodes, which run no rank, hold homes only) (cache_peak_pages <= cache_pages in --stats); at least E pages were evicted
(default 1: a working set larger than the cache must evict).

With --rss MIB (PROGRAM's shared array, homed in blocks over the nodes), every dsmd's memory
is sampled every 20 ms while the job runs, and must stay within its bound:
  - the frames it holds (the allocated blocks of its memfd) <= its home pages (MIB / nodes)
    + the cache + 1 MiB (the runtime's own small allocations);
  - its resident set (VmRSS) <= the same + the daemon's own memory (RssAnon + RssFile), as the
    same job shape on a 1 MiB array measures it first, + 8 MiB (queue buffers, and the per-page
    tables of the pages the job touches, which grow with them: 6 MiB more than the baseline
    seen with 2 memory nodes, while a 20 ms sampler can miss a short job's peak).
With --frames-only S (S not empty, 0 or off: a sanitizer build, whose shadow memory and
quarantine the resident set includes) only the frames are held to their bound.
Every node reads the whole array, so without the bound a node's frames would reach MIB: the
check fails unless MIB is well above the bound (refused otherwise: the test would prove nothing).
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time

MIB = 1 << 20


def dsmd_pids(root):
    """The dsmd processes started by dsmrun `root` (its children named dsmd)."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/status" % d) as f:
                st = f.read()
        except OSError:
            continue
        name = re.search(r"^Name:\s*(\S+)", st, re.M)
        ppid = re.search(r"^PPid:\s*(\d+)", st, re.M)
        if name and ppid and name.group(1) == "dsmd" and int(ppid.group(1)) == root:
            out.append(int(d))
    return out


def sample(pid):
    """(VmRSS bytes, bytes allocated in its frames' memfd) of a dsmd, or None if gone."""
    try:
        with open("/proc/%d/status" % pid) as f:
            st = f.read()
        rss = int(re.search(r"^VmRSS:\s*(\d+) kB", st, re.M).group(1)) * 1024
        private = sum(int(re.search(r"^%s:\s*(\d+) kB" % k, st, re.M).group(1)) * 1024
                      for k in ("RssAnon", "RssFile"))
        frames = None
        for fd in os.listdir("/proc/%d/fd" % pid):
            path = "/proc/%d/fd/%s" % (pid, fd)
            if os.readlink(path).startswith("/memfd:dsm-frames"):
                frames = os.stat(path).st_blocks * 512
        return None if frames is None else (rss, frames, private)  # None: not a node's daemon
    except (OSError, AttributeError):
        return None


def run(cmd, watch):
    """Run the job; with watch, the peak (rss, frames) of each dsmd pid. (rc, output, peaks)"""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peaks = {}
    out = []
    reader = threading.Thread(target=lambda: out.append(p.stdout.read()))
    reader.start()
    while p.poll() is None:
        if watch:
            for pid in dsmd_pids(p.pid):
                s = sample(pid)
                if s:
                    old = peaks.get(pid, (0, 0, 0))
                    peaks[pid] = tuple(max(a, b) for a, b in zip(old, s))
        time.sleep(0.02)
    reader.join()
    return p.returncode, "".join(out), peaks


def main():
    argv = sys.argv[1:]
    if "--" not in argv or len(argv) < 3:
        sys.exit(__doc__)
    split = argv.index("--")
    opts, prog = argv[1:split], argv[split + 1:]
    dsmrun = argv[0]
    rss_mib = min_ev = None
    frames_only = False
    job = []
    i = 0
    while i < len(opts):
        if opts[i] == "--rss":
            rss_mib = int(opts[i + 1])
        elif opts[i] == "--frames-only":
            frames_only = opts[i + 1] not in ("", "0", "OFF", "off")
        elif opts[i] == "--min-evictions":
            min_ev = int(opts[i + 1])
        else:
            job += opts[i:i + 2]
        i += 2
    nodes = int(job[job.index("-n") + 1]) // int(job[job.index("--ranks-per-node") + 1])
    if "--memory-nodes" in job:  # they hold homes too: MIB spreads over every node
        nodes += int(job[job.index("--memory-nodes") + 1])
    cache = int(job[job.index("--cache-size") + 1])

    base_rss = 0
    if rss_mib is not None:
        bound = rss_mib * MIB // nodes + cache + MIB
        if bound + 4 * MIB >= rss_mib * MIB:
            sys.exit("cache_check: a %d MiB array on %d nodes with a %d byte cache cannot show the bound"
                     % (rss_mib, nodes, cache))
        args = [a if a != str(rss_mib) else "1" for a in prog]
        rc, out, peaks = run([dsmrun] + job + ["--timeout", "120", "--"] + args, True)
        if rc != 0 or not peaks:
            sys.exit("cache_check: the 1 MiB baseline job failed (%d):\n%s" % (rc, out))
        base_rss = max(r for r, _, _ in peaks.values())
        base_private = max(p for _, _, p in peaks.values())
        print("cache_check: baseline (1 MiB array): dsmd peak RSS %.1f MiB, %.1f MiB of it private"
              % (base_rss / MIB, base_private / MIB))

    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        rc, out, peaks = run([dsmrun] + job + ["--stats", f.name, "--timeout", "500", "--"] + prog,
                             rss_mib is not None)
        sys.stdout.write(out)
        if rc != 0 or not re.search(r"\bOK\b", out):
            sys.exit("cache_check: the job failed (exit %d)" % rc)
        stats = json.load(open(f.name))
    bad = []
    evicted = sum(r.get("pages_evicted", 0) for r in stats["ranks"])
    for nd in stats["nodes"]:
        if nd.get("cache_pages", 0) <= 0:
            bad.append("node %d reports no cache bound" % nd["node"])
        elif nd["cache_peak_pages"] > nd["cache_pages"]:
            bad.append("node %d held %d pages in a cache of %d" % (nd["node"], nd["cache_peak_pages"],
                                                                    nd["cache_pages"]))
        print("cache_check: node %d: cache of %d pages, peak %d" % (nd["node"], nd.get("cache_pages", 0),
                                                                   nd.get("cache_peak_pages", 0)))
    print("cache_check: %d pages evicted, %d written back" % (
        evicted, sum(r.get("writebacks", 0) for r in stats["ranks"])))
    if evicted < (min_ev if min_ev is not None else 1):
        bad.append("only %d pages evicted" % evicted)
    if rss_mib is not None:
        frames_bound = rss_mib * MIB // nodes + cache + MIB
        rss_bound = frames_bound + base_private + 8 * MIB
        if len(peaks) != nodes:
            bad.append("sampled %d daemons, expected %d" % (len(peaks), nodes))
        for pid, (rss, frames, private) in sorted(peaks.items()):
            print("cache_check: dsmd %d: peak RSS %.1f MiB (bound %.1f), private %.1f MiB, frames %.1f MiB (bound %.1f)"
                  % (pid, rss / MIB, rss_bound / MIB, private / MIB, frames / MIB, frames_bound / MIB))
            if frames > frames_bound:
                bad.append("dsmd %d held %.1f MiB of frames, bound %.1f" % (pid, frames / MIB, frames_bound / MIB))
            if rss > rss_bound and not frames_only:
                bad.append("dsmd %d reached %.1f MiB resident, bound %.1f" % (pid, rss / MIB, rss_bound / MIB))
    for b in bad:
        print("cache_check: FAILED: " + b)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()

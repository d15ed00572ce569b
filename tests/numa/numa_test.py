#!/usr/bin/env python3
"""numa_test.py - dsmrun --placement/--report-bindings against what the kernel says.

usage: numa_test.py DSMRUN NUMA_AFFINITY DSMD CASE     (CASE: a key of CASES, or bad_option)

Runs numa_affinity (which prints each dsm_parallel thread's, the main thread's and its
dsmd's CPU mask from sched_getaffinity) and checks, on this machine, whatever its size:
  - one "rank R thread T -> ..." line per thread and one "rank R dsmd -> ..." per rank,
    all before the program's first output line (stdout and stderr merged);
  - a bound thread's and daemon's mask is exactly the reported PU; "unbound" ones keep the
    launcher's mask; thread 0 gets the launcher's mask back after dsm_parallel;
  - ranks get disjoint PUs where the machine has enough, and no worker shares a daemon's PU
    when there are cores to spare;
  - the frames' memory policy (numa_maps) is first touch ("local") in every rank and dsmd
    when placement binds, the kernel's default under none or a foreign topology;
  - with a synthetic topology: one note line, the plan reported from it, nothing bound.
Every wait is bounded (dsmrun --timeout, subprocess timeout). Exit 0 on success.
"""

import os
import re
import subprocess
import sys

TIMEOUT_S = 60
THREAD_RE = re.compile(r"^rank (\d+) thread (\d+) -> (?:pu (\d+) core (\d+) numa (\d+) package (\d+)|unbound)$")
DSMD_RE = re.compile(r"^rank (\d+) dsmd -> (?:pu (\d+) core (\d+) numa (\d+) package (\d+)|unbound)(?: \((.*)\))?$")
FRAMES_RE = re.compile(r"^frames rank (\d+) policy (\S+) dsmd (\S+)$")
AFF_RE = re.compile(r"^affinity rank (\d+) (thread (\d+)|main|dsmd) cpus ([0-9,]*)$")
SYNTHETIC = "pack:2 numa:2 core:4 pu:2"

# case -> (ranks, ranks per node, threads, placement or None (default), extra environment)
CASES = {
    "compact_n1": (1, 1, 3, None, {}),
    "scatter_n2": (2, 1, 2, "scatter", {}),
    "compact_n4_rpn2": (4, 2, 2, "compact", {}),
    "none_n2": (2, 1, 2, "none", {}),
    "env_scatter_n2": (2, 1, 2, None, {"DSM_PLACEMENT": "scatter"}),
    "synthetic_n2": (2, 1, 3, "scatter", {"HWLOC_SYNTHETIC": SYNTHETIC}),
    "standalone": (0, 1, 2, None, {"DSM_REPORT_BINDINGS": "1"}),
}


class Failure(Exception):
    pass


def expect(cond, msg):
    if not cond:
        raise Failure(msg)


def cpus(text):
    return frozenset(int(c) for c in text.split(",") if c)


def run(dsmrun, prog, dsmd, case):
    nranks, rpn, nthreads, placement, extra = CASES[case]
    env = dict(os.environ)
    for var in ("DSM_PLACEMENT", "DSM_REPORT_BINDINGS", "HWLOC_SYNTHETIC", "HWLOC_XMLFILE", "DSM_NETDEV",
                "DSM_LOCAL_RANK", "DSM_LOCAL_RANKS", "DSM_LOCAL_NODE", "DSM_LOCAL_NODES"):
        env.pop(var, None)
    env.update(extra, DSM_DSMD=dsmd)
    if nranks == 0:
        for var in ("DSM_SOCKET", "DSM_RANK", "DSM_NRANKS", "DSM_NODE"):
            env.pop(var, None)
        cmd = [prog, "-t", str(nthreads)]
    else:
        cmd = [dsmrun, "-n", str(nranks), "--ranks-per-node", str(rpn), "--timeout", str(TIMEOUT_S - 10),
               "--report-bindings"]
        if placement:
            cmd += ["--placement", placement]
        cmd += ["--", prog, "-t", str(nthreads)]
    print("numa_test: %s%s" % (" ".join("%s=%s " % kv for kv in extra.items()), " ".join(cmd)), flush=True)
    p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=TIMEOUT_S)
    out = p.stdout.decode("utf-8", "replace")
    sys.stdout.write(out)
    expect(p.returncode == 0, "exit status %d" % p.returncode)
    return out.splitlines(), max(nranks, 1), rpn, nthreads, placement or extra.get("DSM_PLACEMENT", "compact")


def parse(lines, nranks, nthreads):
    """(threads {(r,t): pu or None}, daemons {r: (pu or None, why)}, affinity {key: cpus}, notes)."""
    threads, daemons, aff, notes = {}, {}, {}, []
    first_output = None
    last_report = -1
    for i, line in enumerate(lines):
        m = THREAD_RE.match(line)
        if m:
            key = (int(m.group(1)), int(m.group(2)))
            expect(key not in threads, "thread line twice: %s" % line)
            threads[key] = int(m.group(3)) if m.group(3) else None
            last_report = i
            continue
        m = DSMD_RE.match(line)
        if m:
            r = int(m.group(1))
            expect(r not in daemons, "dsmd line twice: %s" % line)
            daemons[r] = (int(m.group(2)) if m.group(2) else None, m.group(6) or "")
            last_report = i
            continue
        if line.startswith("dsm: note:"):
            notes.append(line)
            continue
        m = FRAMES_RE.match(line)
        if m:
            aff[(int(m.group(1)), "frames")] = (m.group(2), m.group(3))
            continue
        m = AFF_RE.match(line)
        if m:
            what = ("thread", int(m.group(3))) if m.group(3) else (m.group(2),)
            aff[(int(m.group(1)),) + what] = cpus(m.group(4))
        if first_output is None and (m or line.startswith("numa_affinity:")):
            first_output = i
    expect(first_output is not None, "no program output")
    expect(last_report < first_output, "a binding line came after the program's output")
    expect(set(threads) == {(r, t) for r in range(nranks) for t in range(nthreads)},
           "thread lines for %s" % sorted(threads))
    expect(set(daemons) == set(range(nranks)), "dsmd lines for ranks %s" % sorted(daemons))
    for r in range(nranks):
        expect(any(l == "numa_affinity: rank %d: OK" % r for l in lines), "rank %d did not say OK" % r)
        expect((r, "frames") in aff, "rank %d printed no frames policy" % r)
    return threads, daemons, aff, notes


def check_frames(aff, nranks, want):
    """The frames' memory policy in every rank and its dsmd: `want` ("local" for first touch,
    "default"), unless this kernel has no numa_maps ("?")."""
    for r in range(nranks):
        for who, got in zip(("rank %d" % r, "rank %d's dsmd" % r), aff[(r, "frames")]):
            expect(got in (want, "?"), "%s maps the frames with policy %s, expected %s" % (who, got, want))


def count_cores(pus):
    """Distinct cores among the PUs (sysfs topology; each PU its own core where it is missing)."""
    cores = set()
    for pu in pus:
        base = "/sys/devices/system/cpu/cpu%d/topology/" % pu
        try:
            with open(base + "physical_package_id") as f, open(base + "core_id") as g:
                cores.add((f.read().strip(), g.read().strip()))
        except OSError:
            cores.add(("pu", pu))
    return len(cores)


def check_bound(threads, daemons, aff, nranks, rpn, nthreads, placement, full):
    none = placement == "none"
    check_frames(aff, nranks, "default" if none else "local")
    for (r, t), pu in threads.items():
        got = aff[(r, "thread", t)]
        if none:
            expect(pu is None, "rank %d thread %d reported bound under none" % (r, t))
            expect(got == full, "rank %d thread %d has cpus %s, expected %s" % (r, t, sorted(got), sorted(full)))
        else:
            expect(pu is not None and got == {pu},
                   "rank %d thread %d: reported pu %s, kernel says %s" % (r, t, pu, sorted(got)))
    for r in range(nranks):
        expect(aff[(r, "main")] == full, "rank %d: thread 0 kept cpus %s after dsm_parallel" % (r, sorted(aff[(r, "main")])))
        pu, why = daemons[r]
        got = aff[(r, "dsmd")]
        if none:
            expect(pu is None and got == full, "rank %d's dsmd: %s / %s under none" % (r, pu, sorted(got)))
        else:
            expect(pu is not None and got == {pu}, "rank %d's dsmd: reported pu %s, kernel says %s" % (r, pu, sorted(got)))
            expect("no network device" in why, "the dsmd line says why: '%s'" % why)
    if none:
        return
    nnodes = (nranks + rpn - 1) // rpn
    daemon_pus = {daemons[r][0] for r in range(nranks)}
    ncores = count_cores(full)
    spare = ncores >= nnodes + nranks and 4 * nnodes <= ncores  # dsm_place.h: DSM_PLACE_SPARE_SHARE
    expect(all(("kept from" if spare else "shared with") + " the workers" in daemons[r][1] for r in range(nranks)),
           "%d cores, %d daemons, %d ranks: the daemons' cores should be %s" % (
               ncores, nnodes, nranks, "kept from the workers" if spare else "shared"))
    if spare:
        for (r, t), pu in threads.items():
            expect(pu not in daemon_pus, "rank %d thread %d shares a daemon's pu %d with cores to spare" % (r, t, pu))
    if nranks <= len(full):
        parts = [{threads[(r, t)] for t in range(nthreads)} for r in range(nranks)]
        for a in range(nranks):
            for b in range(a + 1, nranks):
                expect(not parts[a] & parts[b], "ranks %d and %d share pus %s" % (a, b, sorted(parts[a] & parts[b])))


def check_synthetic(threads, daemons, aff, notes, nranks, full):
    expect(len(notes) == 1, "%d note lines, expected one" % len(notes))
    expect("HWLOC_SYNTHETIC" in notes[0], "the note names the synthetic topology")
    pus = {pu for pu in threads.values()}
    expect(None not in pus and max(pus) < 32, "placement from the synthetic topology: %s" % sorted(pus))
    check_frames(aff, nranks, "default")
    for key, got in aff.items():
        expect(key[1] == "frames" or got == full,
               "%s bound to %s although the topology is not this machine's" % (key, sorted(got)))
    expect(all(daemons[r][0] is not None for r in range(nranks)), "daemons reported from the synthetic topology")


def bad_option(dsmrun, prog):
    """--placement with an unknown policy: exit status 2 and a message naming it, nothing run."""
    p = subprocess.run([dsmrun, "-n", "1", "--placement", "spread", "--", prog], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=TIMEOUT_S)
    out = p.stdout.decode("utf-8", "replace")
    sys.stdout.write(out)
    expect(p.returncode == 2, "exit status %d for an unknown placement" % p.returncode)
    expect("unknown placement 'spread'" in out, "no message naming the bad placement")
    expect("affinity rank" not in out, "the program ran")


def main(argv):
    if len(argv) == 5 and argv[4] == "bad_option":
        try:
            bad_option(argv[1], argv[2])
        except Failure as e:
            print("numa_test: bad_option: FAILED: %s" % e)
            return 1
        print("numa_test: bad_option: OK")
        return 0
    if len(argv) != 5 or argv[4] not in CASES:
        sys.stderr.write("usage: numa_test.py DSMRUN NUMA_AFFINITY DSMD CASE (%s)\n" % ", ".join(CASES))
        return 2
    dsmrun, prog, dsmd, case = argv[1:]
    full = frozenset(os.sched_getaffinity(0))
    try:
        lines, nranks, rpn, nthreads, placement = run(dsmrun, prog, dsmd, case)
        threads, daemons, aff, notes = parse(lines, nranks, nthreads)
        if case.startswith("synthetic"):
            check_synthetic(threads, daemons, aff, notes, nranks, full)
        else:
            expect(not notes, "a note line on this machine's topology")
            check_bound(threads, daemons, aff, nranks, rpn, nthreads, placement, full)
    except Failure as e:
        print("numa_test: %s: FAILED: %s" % (case, e))
        return 1
    except subprocess.TimeoutExpired:
        print("numa_test: %s: FAILED: the job did not end within %d s" % (case, TIMEOUT_S))
        return 1
    print("numa_test: %s: OK (%d cpus)" % (case, len(full)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

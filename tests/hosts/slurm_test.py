#!/usr/bin/env python3
"""slurm_test.py - dsmrun inside a real Slurm allocation, on the test cluster of scripts/testslurm.

    slurm_test.py DSMRUN BINDIR CASE

BINDIR holds jacobi and hosts_prog. The test hosts (scripts/testhosts up 3) and the Slurm
cluster on them (scripts/testslurm up: one slurmd per host's network namespace) must be up;
the ctest fixtures do both. Exit 77 (skipped, with one line saying why) when they are not.
Cases:
  salloc   `salloc -N 2 -n 4 dsmrun -n 4 -- jacobi`: verified; then `salloc -N 3 -n 4 dsmrun
           -n 4 -- hosts_prog show`: ranks placed 2+1+1 as SLURM_TASKS_PER_NODE says, each
           node's ranks in that node's network namespace, arguments intact; then dsmrun
           --hosts inside salloc: ssh, not srun
  sbatch   a batch script running `dsmrun -n 4 -- jacobi` on 3 nodes, `sbatch --wait`ed for
           (bounded): exit status 0 and the verified line in its output file
  sigint   Ctrl-C to dsmrun inside salloc during a job: exit 130; no command line or
           environment of the job's processes carried the job secret (a 64-hex-digit word)
After every job: no daemon's socket directory is left in /tmp, nothing but each host's services (sshd, slurmd, and whatever else
scripts/testhosts keeps a pid file for) runs in any host's namespace, no srun of this cluster
is left and its queue is empty (bounded waits; what is left is killed and the case fails).
"""

import glob
import os
import re
import select
import signal
import subprocess
import sys
import tempfile
import time

from sockdirs import sockdirs_left

HOSTS_DIR = os.environ.get("DSM_TESTHOSTS_DIR", "/tmp/dsm-testhosts")
SLURM_DIR = os.environ.get("DSM_TESTSLURM_DIR", "/tmp/dsm-testslurm")
SLURM_CONF = os.path.join(SLURM_DIR, "slurm.conf")
NHOSTS = 3
JOB_LIMIT_S = 120   # a whole salloc/sbatch, allocation to release, on a slow machine
SETTLE_S = 20.0     # steps' and the allocation's time to end after the job's command
SKIP = 77
SECRET_RE = re.compile(rb"(?<![0-9a-fA-F])[0-9a-f]{64}(?![0-9a-fA-F])")
JACOBI_OK = r"jacobi: grid 256 iters 40 ranks 4: checksum .*, verified OK"


class Failure(Exception):
    pass


def check(cond, what, out=None, err=None):
    if not cond:
        if out is not None or err is not None:
            what += "\n--- stdout:\n%s--- stderr:\n%s" % (out or "", err or "")
        raise Failure(what)


def env():
    e = dict(os.environ, SLURM_CONF=SLURM_CONF)
    for k in list(e):  # a run from inside some other allocation must not leak into ours
        if k.startswith("SLURM_") and k != "SLURM_CONF":
            del e[k]
    e.pop("DSM_DSMD", None)
    e.pop("DSM_SSH_CONFIG", None)
    return e


def read(path, mode="r"):
    try:
        with open(path, mode) as f:
            return f.read()
    except OSError:
        return b"" if "b" in mode else ""


def cmdline(pid):
    return read("/proc/%d/cmdline" % pid, "rb").replace(b"\0", b" ").decode(errors="replace").strip()


def hosts():
    r = subprocess.run(["ip", "netns", "list"], stdout=subprocess.PIPE, text=True, timeout=10)
    return sorted(w.split()[0] for w in r.stdout.splitlines() if re.match(r"dsmh\d+\b", w))


def ns_pids(host):
    r = subprocess.run(["ip", "netns", "pids", host], stdout=subprocess.PIPE, text=True, timeout=10)
    return {int(p) for p in r.stdout.split()}


def services():
    """Pids of the hosts' own daemons: those in the pid files of testhosts and testslurm."""
    pids = set()
    for f in glob.glob(os.path.join(HOSTS_DIR, "*.pid")) + \
            glob.glob(os.path.join(SLURM_DIR, "slurmd-*.pid")):
        words = read(f).split()
        if words and words[0].isdigit():
            pids.add(int(words[0]))
    return pids


def our_sruns():
    """Pids of srun/salloc/sbatch processes talking to this cluster (SLURM_CONF ours)."""
    found = []
    for d in glob.glob("/proc/[0-9]*"):
        pid = int(d[6:])
        if read(d + "/comm").strip() in ("srun", "salloc", "sbatch") and \
                ("SLURM_CONF=%s" % SLURM_CONF).encode() in read(d + "/environ", "rb").split(b"\0"):
            found.append(pid)
    return found


def queue():
    r = subprocess.run(["squeue", "-h", "-o", "%A %T"], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, env=env(), timeout=30)
    return r.stdout.strip()


def check_clean(out=None, err=None):
    """Nothing of the job left (bounded wait); kill and cancel what is, then fail."""
    deadline = time.monotonic() + SETTLE_S
    while True:
        keep = services()
        left = {}
        for h in hosts():
            extra = ns_pids(h) - keep
            if extra:
                left[h] = ["%d %s" % (p, cmdline(p)) for p in sorted(extra)]
        sruns = our_sruns()
        if sruns:
            left["here"] = ["%d %s" % (p, cmdline(p)) for p in sruns]
        q = queue()
        if (not left and not q) or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    if q:
        ids = [line.split()[0] for line in q.splitlines() if line.split()]
        subprocess.run(["scancel"] + ids, env=env(), timeout=30)
    for procs in left.values():
        for line in procs:
            try:
                os.kill(int(line.split()[0]), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
    check(not left and not q, "left after the job: processes %s, queue %r" % (left, q), out, err)
    dirs = sockdirs_left()
    check(not dirs, "left after the job: the daemons' socket directories %s in /tmp" % dirs, out, err)


def run(argv, limit_s=JOB_LIMIT_S):
    """Run argv (salloc/sbatch ...) to the end (bounded); (rc, out, err), then check_clean."""
    p = subprocess.Popen(argv, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         stdin=subprocess.DEVNULL, text=True, start_new_session=True)
    try:
        out, err = p.communicate(timeout=limit_s)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        check_clean(out, err)
        raise Failure("still running after %d s: %s\n--- stdout:\n%s--- stderr:\n%s"
                      % (limit_s, " ".join(argv), out, err))
    check_clean(out, err)
    return p.returncode, out, err


# -- cases ------------------------------------------------------------------------------------


def case_salloc(dsmrun, bindir):
    rc, out, err = run(["salloc", "-N", "2", "-n", "4", "--time", "5", dsmrun, "-n", "4",
                        "--timeout", "60", "--", os.path.join(bindir, "jacobi"), "-n", "256",
                        "-i", "40"])
    check(rc == 0, "salloc dsmrun jacobi exited %d" % rc, out, err)
    check(re.search(JACOBI_OK, out), "jacobi did not verify", out, err)
    check(re.search(r"Granted job allocation \d+", err), "salloc granted no allocation", out, err)

    args = ["two words", "it's", "$HOME", ""]
    rc, out, err = run(["salloc", "-N", "3", "-n", "4", "--time", "5", dsmrun, "-n", "4",
                        "--timeout", "60", "--", os.path.join(bindir, "hosts_prog"), "show"] + args)
    check(rc == 0, "salloc dsmrun hosts_prog exited %d" % rc, out, err)
    want = " ".join(a.encode().hex() or "''" for a in args)
    lines = {}
    for m in re.finditer(r"^rank (\d+) node (\d+) netns (\S+) local_rank (\S+) local_ranks (\S+) "
                         r"local_node \S+ local_nodes \S+ args (.*)$", out, re.M):
        lines[int(m.group(1))] = m.groups()[1:]
    check(sorted(lines) == [0, 1, 2, 3], "expected a line from each of 4 ranks", out, err)
    nets = {}
    for h in hosts():
        r = subprocess.run(["ip", "netns", "exec", h, "readlink", "/proc/self/ns/net"],
                           stdout=subprocess.PIPE, text=True, timeout=10)
        nets[r.stdout.strip()] = h
    # 4 tasks on 3 nodes: SLURM_TASKS_PER_NODE=2,1(x2) -> ranks 0-1 on the first node
    plan = {0: ("0", "0", "2"), 1: ("0", "1", "2"), 2: ("1", "0", "1"), 3: ("2", "0", "1")}
    for r, (node, ns, lrank, lranks, got) in lines.items():
        check(got == want, "rank %d got other arguments: %s (want %s)" % (r, got, want), out, err)
        check((node, lrank, lranks) == plan[r], "rank %d placed as node %s local %s/%s"
              % (r, node, lrank, lranks), out, err)
        check(ns in nets, "rank %d ran outside the test hosts (netns %s)" % (r, ns), out, err)
    check(len({lines[r][1] for r in (0, 2, 3)}) == 3 and lines[0][1] == lines[1][1],
          "the nodes' ranks did not run in three different hosts", out, err)

    # An explicit host list inside an allocation: ssh as outside one, no srun.
    rc, out, err = run(["salloc", "-N", "1", "-n", "1", "--time", "5", "env",
                        "DSM_SSH_CONFIG=" + os.path.join(HOSTS_DIR, "ssh_config"), dsmrun, "-v",
                        "-n", "2", "--hosts", "dsmh2,dsmh3", "--timeout", "60", "--",
                        os.path.join(bindir, "hosts_prog"), "show"])
    check(rc == 0 and len(re.findall(r"^rank \d node", out, re.M)) == 2,
          "dsmrun --hosts inside salloc failed (exit %d)" % rc, out, err)
    check(re.search(r"^dsmrun: starting ssh ", err, re.M) and not re.search(r"starting srun", err),
          "dsmrun --hosts inside salloc did not use ssh", out, err)


def case_sbatch(dsmrun, bindir):
    tmp = tempfile.mkdtemp(prefix="dsm-sbatch-")
    script, output = os.path.join(tmp, "job.sh"), os.path.join(tmp, "job.out")
    with open(script, "w") as f:
        f.write("#!/bin/sh\n#SBATCH --time=5\nexec %s -n 4 --timeout 60 -- %s -n 256 -i 40\n"
                % (dsmrun, os.path.join(bindir, "jacobi")))
    try:
        rc, out, err = run(["sbatch", "--wait", "-N", "3", "-n", "4", "-o", output, script])
        job_out = read(output)
    finally:
        for n in os.listdir(tmp):
            os.unlink(os.path.join(tmp, n))
        os.rmdir(tmp)
    out += "--- job output:\n" + job_out
    check(re.search(r"Submitted batch job \d+", out), "sbatch submitted no job", out, err)
    check(rc == 0, "the batch job exited %d (sbatch --wait)" % rc, out, err)
    check(re.search(JACOBI_OK, job_out), "jacobi did not verify in the batch job", out, err)


def children(pid):
    kids = []
    for d in glob.glob("/proc/[0-9]*"):
        stat = read(d + "/stat")
        if stat and int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            kids.append(int(d[6:]))
    return kids


def secret_words(pids):
    """['pid: where'] for processes whose command line or environment has a 64-hex word."""
    hits = []
    for pid in pids:
        for what in ("cmdline", "environ"):
            if SECRET_RE.search(read("/proc/%d/%s" % (pid, what), "rb")):
                hits.append("%d %s: %s" % (pid, what, cmdline(pid)))
    return hits


def case_sigint(dsmrun, bindir):
    argv = ["salloc", "-N", "2", "-n", "4", "--time", "5", dsmrun, "-n", "4", "--timeout", "60",
            "--", os.path.join(bindir, "hosts_prog"), "loop"]
    p = subprocess.Popen(argv, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         stdin=subprocess.DEVNULL, start_new_session=True)
    out = b""
    deadline = time.monotonic() + 60
    while len(re.findall(rb"^rank \d started", out, re.M)) < 4:
        if time.monotonic() > deadline or p.poll() is not None:
            os.killpg(p.pid, signal.SIGKILL)
            o, e = p.communicate()
            check_clean()
            raise Failure("the 4 ranks did not start\n--- stdout:\n%s--- stderr:\n%s"
                          % ((out + o).decode(errors="replace"), e.decode(errors="replace")))
        if select.select([p.stdout], [], [], 0.5)[0]:
            out += os.read(p.stdout.fileno(), 65536)
    job = set(our_sruns())
    for h in hosts():
        job |= ns_pids(h) - services()
    leaks = secret_words(sorted(job))
    dsmruns = [q for q in children(p.pid) if "dsmrun" in cmdline(q)]  # salloc runs it here
    if len(dsmruns) != 1:
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        check_clean()
        raise Failure("expected one dsmrun process, found %r" % [cmdline(q) for q in dsmruns])
    os.kill(dsmruns[0], signal.SIGINT)
    try:
        o, e = p.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        o, e = p.communicate()
    out = (out + o).decode(errors="replace")
    err = e.decode(errors="replace")
    check_clean(out, err)
    check(not leaks, "the job secret may be on a command line or in an environment: %s" % leaks,
          out, err)
    check(p.returncode == 130, "exit %s after SIGINT, want 130" % p.returncode, out, err)
    check("dsmrun: interrupted by SIGINT" in err, "dsmrun did not say it was interrupted", out, err)


CASES = {name[5:]: fn for name, fn in globals().items() if name.startswith("case_")}


def main(argv):
    if len(argv) != 4 or argv[3] not in CASES:
        sys.stderr.write("usage: slurm_test.py DSMRUN BINDIR {%s}\n" % ",".join(CASES))
        return 2
    dsmrun, bindir, case = os.path.abspath(argv[1]), os.path.abspath(argv[2]), argv[3]
    if not all(os.path.exists(os.path.join(HOSTS_DIR, "sshd-%d.pid" % i))
               for i in range(1, NHOSTS + 1)):
        print("SKIP %s: test hosts are not up (scripts/testhosts up %d)" % (case, NHOSTS))
        return SKIP
    if not all(os.path.exists(os.path.join(SLURM_DIR, "slurmd-dsmh%d.pid" % i))
               for i in range(1, NHOSTS + 1)) or not os.path.exists(SLURM_CONF):
        print("SKIP %s: the test Slurm cluster is not up (scripts/testslurm up)" % case)
        return SKIP
    try:
        CASES[case](dsmrun, bindir)
    except Failure as e:
        sys.stderr.write("FAIL %s: %s\n" % (case, e))
        return 1
    print("PASS %s" % case)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

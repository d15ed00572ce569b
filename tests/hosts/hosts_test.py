#!/usr/bin/env python3
"""hosts_test.py - dsmrun across hosts (--hostfile, ssh) on the test hosts of scripts/testhosts.

    hosts_test.py DSMRUN BINDIR CASE

BINDIR holds jacobi, litmus and hosts_prog. The hosts dsmh1..dsmh3 must be up (the ctest
fixture runs `scripts/testhosts up 3`); their files are in $DSM_TESTHOSTS_DIR (default
/tmp/dsm-testhosts). Exit 77 (skipped) when they are not. After every job the test checks
that nothing but each host's sshd listener runs in any host's network namespace (waiting a
bounded while for ssh sessions to close) and that no daemon's socket directory is left in
/tmp, removes what it finds, and fails. Every wait is bounded.
"""

import json
import os
import re
import select
import signal
import subprocess
import sys
import tempfile
import time

from sockdirs import sockdirs_left

DIR = os.environ.get("DSM_TESTHOSTS_DIR", "/tmp/dsm-testhosts")
NHOSTS = 3
JOB_LIMIT_S = 90
SETTLE_S = 10.0  # ssh sessions' time to close after dsmrun exits
SKIP = 77

# Arguments that a shell would mangle if dsmrun did not quote each word.
NASTY_ARGS = ["two words", "it's", '"dq"', "semi;colon", "$(touch /tmp/dsm-hosts-pwned)",
              "`id`", "back\\slash", "*", "", "new\nline", "$HOME", "a|b&c>d"]


class Failure(Exception):
    pass


def check(cond, what, job=None):
    if not cond:
        if job is not None:
            what += "\n--- dsmrun stdout:\n%s--- dsmrun stderr:\n%s" % (job.out, job.err)
        raise Failure(what)


def ns_pids(i):
    r = subprocess.run(["ip", "netns", "pids", "dsmh%d" % i], stdout=subprocess.PIPE, text=True,
                       timeout=10)
    return {int(p) for p in r.stdout.split()}


def listener(i):
    with open(os.path.join(DIR, "sshd-%d.pid" % i)) as f:
        return int(f.read().split()[0])


def resident(i):
    """The processes testhosts keeps on host i: its sshd listener, and its delay daemon
    when the hosts were brought up with --delay on a kernel without netem."""
    pids = {listener(i)}
    try:
        with open(os.path.join(DIR, "netdelay-%d.pid" % i)) as f:
            pids.add(int(f.read().split()[0]))
    except (OSError, ValueError, IndexError):
        pass
    # and its slurmd while scripts/testslurm's cluster is up (the slurm.* tests' fixture)
    try:
        with open(os.path.join(os.environ.get("DSM_TESTSLURM_DIR", "/tmp/dsm-testslurm"),
                               "slurmd-dsmh%d.pid" % i)) as f:
            pids.add(int(f.read().split()[0]))
    except (OSError, ValueError, IndexError):
        pass
    return pids


def comm(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"


def leftovers():
    """{host: ['pid cmdline']} of processes other than the sshd listener, after SETTLE_S."""
    deadline = time.monotonic() + SETTLE_S
    while True:
        left = {}
        for i in range(1, NHOSTS + 1):
            extra = ns_pids(i) - resident(i)
            if extra:
                left["dsmh%d" % i] = ["%d %s" % (p, comm(p)) for p in sorted(extra)]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


def check_clean(job=None):
    left = leftovers()
    for procs in left.values():
        for line in procs:
            try:
                os.kill(int(line.split()[0]), signal.SIGKILL)
            except ProcessLookupError:
                pass
    check(not left, "processes left on the hosts after dsmrun exited: %s" % left, job)
    dirs = sockdirs_left()
    check(not dirs, "the daemons' socket directories %s were left in /tmp after dsmrun exited" % dirs, job)


class Job:
    def __init__(self, dsmrun, opts, program, env_extra=None):
        env = dict(os.environ, DSM_SSH_CONFIG=os.path.join(DIR, "ssh_config"))
        env.update(env_extra or {})
        env.pop("DSM_DSMD", None)
        self.argv = [dsmrun] + opts + ["--"] + program
        self.t0 = time.monotonic()
        self.p = subprocess.Popen(self.argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  stdin=subprocess.DEVNULL, text=True)
        self.out = self.err = ""
        self.rc = None

    def wait_lines(self, pattern, count, limit_s=30):
        found, buf = [], b""
        fd = self.p.stdout.fileno()
        deadline = time.monotonic() + limit_s
        while len(found) < count:
            left = deadline - time.monotonic()
            if left <= 0 or self.p.poll() is not None:
                self.p.kill()
                self.finish()
                raise Failure("saw %d of %d lines matching %r\n--- stdout:\n%s--- stderr:\n%s"
                              % (len(found), count, pattern, self.out, self.err))
            ready, _, _ = select.select([fd], [], [], min(left, 0.5))
            if not ready:
                continue
            chunk = os.read(fd, 65536)
            buf += chunk
            self.out += chunk.decode(errors="replace")
            *lines, buf = buf.split(b"\n")
            found += [ln.decode() for ln in lines if re.search(pattern, ln.decode())]
        return found

    def finish(self, limit_s=JOB_LIMIT_S):
        try:
            out, err = self.p.communicate(timeout=limit_s)
        except subprocess.TimeoutExpired:
            self.p.kill()
            out, err = self.p.communicate()
            self.err += err or ""
            check_clean()
            raise Failure("dsmrun still running after %d s: %s\n--- stderr:\n%s"
                          % (limit_s, " ".join(self.argv), self.err))
        self.out += out or ""
        self.err += err or ""
        self.rc = self.p.returncode
        self.seconds = time.monotonic() - self.t0
        check_clean(self)
        return self.rc


def run(dsmrun, opts, program, env_extra=None):
    j = Job(dsmrun, opts, program, env_extra)
    j.finish()
    return j


def hostfile(lines):
    f = tempfile.NamedTemporaryFile("w", prefix="dsm-hostfile-", delete=False)
    f.write("".join(l + "\n" for l in lines))
    f.close()
    return f.name


# -- cases ------------------------------------------------------------------------------------


def case_jacobi(dsmrun, bindir):
    """jacobi across 3 hosts (map-by node: 2+1+1 ranks), verified."""
    j = run(dsmrun, ["-n", "4", "--hostfile", os.path.join(DIR, "hostfile"), "--map-by", "node",
                     "--timeout", "60"], [os.path.join(bindir, "jacobi"), "-n", "256", "-i", "40"])
    check(j.rc == 0, "jacobi failed (exit %s)" % j.rc, j)
    check(re.search(r"jacobi: grid 256 iters 40 ranks 4: checksum .*, verified OK", j.out),
          "jacobi did not verify", j)


def case_memory(dsmrun, bindir):
    """--memory-nodes 1 with --hosts: the last host runs a dsmd that holds homes and no rank;
    jacobi on the other two, verified, under every model; the memory host's daemon serves
    pages (it sends bytes)."""
    for model in ("sequential", "release", "causal"):
        stats = os.path.join(DIR, "mem-stats.json")
        j = run(dsmrun, ["-n", "2", "--hosts", "dsmh1,dsmh2,dsmh3", "--memory-nodes", "1", "--consistency", model,
                         "--stats", stats, "--timeout", "60"], [os.path.join(bindir, "jacobi"), "-n", "256", "-i", "20"])
        check(j.rc == 0 and re.search(r"jacobi: grid 256 iters 20 ranks 2: checksum .*, verified OK", j.out),
              "%s: jacobi with a memory host failed (exit %s)" % (model, j.rc), j)
        with open(stats) as f:
            nodes = json.load(f)["nodes"]
        check([n.get("memory") for n in nodes] == [False, False, True] and nodes[2]["bytes_sent"] > 0,
              "%s: the memory host did not serve pages: %r" % (model, nodes), j)


def case_litmus(dsmrun, bindir):
    """litmus wrc (3 ranks) across 3 hosts, one rank each, and iriw (4) over 2 hosts by slot."""
    j = run(dsmrun, ["-n", "3", "--hosts", "dsmh1,dsmh2,dsmh3", "--timeout", "60"],
            [os.path.join(bindir, "litmus"), "wrc"])
    check(j.rc == 0 and "litmus wrc: OK" in j.out, "litmus wrc across 3 hosts failed", j)
    j = run(dsmrun, ["-n", "4", "--hosts", "dsmh2:2,dsmh3:2", "--map-by", "slot", "--timeout", "60",
                     "--consistency", "release"], [os.path.join(bindir, "litmus"), "iriw"])
    check(j.rc == 0 and "litmus iriw: OK" in j.out, "litmus iriw across 2 hosts failed", j)


def case_args(dsmrun, bindir):
    """Arguments reach every rank byte for byte (no shell parsing on the hosts); each node
    runs in its host's network namespace; placement variables count per host."""
    try:
        os.unlink("/tmp/dsm-hosts-pwned")
    except FileNotFoundError:
        pass
    hf = hostfile(["# test hosts", "dsmh1 slots=1", "", "dsmh2 slots=2  # two", "dsmh3"])
    try:
        j = run(dsmrun, ["-n", "4", "--hostfile", hf, "--timeout", "60"],
                [os.path.join(bindir, "hosts_prog"), "show"] + NASTY_ARGS)
    finally:
        os.unlink(hf)
    check(j.rc == 0, "hosts_prog failed (exit %s)" % j.rc, j)
    check(not os.path.exists("/tmp/dsm-hosts-pwned"), "an argument was run by a shell", j)
    want = " ".join(a.encode().hex() or "''" for a in NASTY_ARGS)
    lines = {}
    for m in re.finditer(r"^rank (\d+) node (\d+) netns (\S+) local_rank (\S+) local_ranks (\S+) "
                         r"local_node (\S+) local_nodes (\S+) args (.*)$", j.out, re.M):
        lines[int(m.group(1))] = m.groups()[1:]
    check(sorted(lines) == [0, 1, 2, 3], "expected a line from each of 4 ranks", j)
    own = os.readlink("/proc/self/ns/net")
    # by slot: dsmh1 gets rank 0, dsmh2 ranks 1-2, dsmh3 rank 3
    plan = {0: ("0", "0", "1"), 1: ("1", "0", "2"), 2: ("1", "1", "2"), 3: ("2", "0", "1")}
    for r, (node, ns, lrank, lranks, lnode, lnodes, args) in lines.items():
        check(args == want, "rank %d got other arguments: %s (want %s)" % (r, args, want), j)
        check((node, lrank, lranks) == plan[r] and lnode == "0" and lnodes == "1",
              "rank %d placed as node %s local %s/%s node %s/%s" % (r, node, lrank, lranks, lnode,
                                                                    lnodes), j)
        check(ns != own, "rank %d ran in dsmrun's own network namespace" % r, j)
    check(len({lines[r][1] for r in (0, 1, 3)}) == 3 and lines[1][1] == lines[2][1],
          "ranks were not in their hosts' namespaces", j)


def case_export(dsmrun, bindir):
    """-x VAR[=VALUE] reaches ranks on other hosts (over ssh only DSM_* travel otherwise),
    and --bind-to core pins each host's ranks to its CPUs in turn."""
    shell = 'echo "rank $DSM_RANK x=$DSM_HOSTS_X y=$DSM_HOSTS_Y omp=$OMP_NUM_THREADS ' \
            'cpus=$(taskset -pc $$ | sed "s/.*: //")"'
    j = run(dsmrun, ["-n", "3", "--hosts", "dsmh1,dsmh2:2", "--timeout", "60", "-x", "DSM_HOSTS_X",
                     "-x", "DSM_HOSTS_Y=given", "-x", "OMP_NUM_THREADS", "--bind-to", "core"],
            ["sh", "-c", shell], env_extra={"DSM_HOSTS_X": "from-dsmrun", "OMP_NUM_THREADS": "3"})
    check(j.rc == 0, "exit %s" % j.rc, j)
    ncpu = len(os.sched_getaffinity(0))
    for rank, local in ((0, 0), (1, 0), (2, 1)):
        want = "rank %d x=from-dsmrun y=given omp=3 cpus=%d" % (rank, local % ncpu)
        check(want in j.out.splitlines(), "expected the line %r" % want, j)


def case_daemon_killed(dsmrun, bindir):
    """A host's dsmd killed mid-job: the job fails within seconds naming the node and host,
    and nothing is left on any host."""
    j = Job(dsmrun, ["-n", "3", "--hosts", "dsmh1,dsmh2,dsmh3", "--timeout", "60"],
            [os.path.join(bindir, "hosts_prog"), "loop"])
    j.wait_lines(r"^rank \d started", 3)
    pids = [p for p in ns_pids(2) if re.match(r"\S*dsmd --node 1 ", comm(p))]
    if len(pids) != 1:
        j.p.kill()
        j.finish()
        raise Failure("expected one dsmd in dsmh2, found %r" % [comm(p) for p in ns_pids(2)])
    t = time.monotonic()
    os.kill(pids[0], signal.SIGKILL)
    j.finish()
    took = time.monotonic() - t
    check(j.rc != 0, "dsmrun exited 0 after node 1's dsmd was killed", j)
    check(took < 15, "took %.1f s to stop after node 1 died" % took, j)
    check(re.search(r"^dsmrun: .*node 1\b", j.err, re.M) and "dsmh2" in j.err,
          "dsmrun did not name node 1 on host dsmh2", j)


def case_sigint(dsmrun, bindir):
    """Ctrl-C during a job on 3 hosts: exit 130 and nothing left on any host."""
    j = Job(dsmrun, ["-n", "4", "--hosts", "dsmh1:2,dsmh2,dsmh3", "--timeout", "60"],
            [os.path.join(bindir, "hosts_prog"), "loop"])
    j.wait_lines(r"^rank \d started", 4)
    j.p.send_signal(signal.SIGINT)
    j.finish()
    check(j.rc == 130, "exit %s after SIGINT, want 130" % j.rc, j)


def case_unreachable(dsmrun, bindir):
    """A host that never answers (an unused address of the test subnet) fails the job within
    ssh's connect timeout plus a margin, naming the host."""
    j = run(dsmrun, ["-n", "2", "--hosts", "dsmh1,10.251.0.99", "--timeout", "60"],
            [os.path.join(bindir, "hosts_prog"), "show"])
    check(j.rc != 0, "dsmrun exited 0 with an unreachable host", j)
    check(j.seconds < 30, "took %.1f s to give up on the unreachable host" % j.seconds, j)
    check(re.search(r"^dsmrun: .*10\.251\.0\.99", j.err, re.M), "dsmrun did not name the host", j)


def case_ssh_fails(dsmrun, bindir):
    """ssh refused (a key the hosts do not accept): a clear error naming the host, fast."""
    tmp = tempfile.mkdtemp(prefix="dsm-badkey-")
    key = os.path.join(tmp, "key")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True,
                   timeout=30)
    with open(os.path.join(DIR, "ssh_config")) as f:
        cfg = f.read().replace(os.path.join(DIR, "id_ed25519"), key)
    with open(os.path.join(tmp, "ssh_config"), "w") as f:
        f.write(cfg)
    try:
        j = Job(dsmrun, ["-n", "2", "--hosts", "dsmh1,dsmh2", "--timeout", "60"],
                [os.path.join(bindir, "hosts_prog"), "show"],
                env_extra={"DSM_SSH_CONFIG": os.path.join(tmp, "ssh_config")})
        j.finish()
    finally:
        for n in os.listdir(tmp):
            os.unlink(os.path.join(tmp, n))
        os.rmdir(tmp)
    check(j.rc != 0, "dsmrun exited 0 although ssh was refused", j)
    check(j.seconds < 20, "took %.1f s to report the ssh failure" % j.seconds, j)
    check(re.search(r"^dsmrun: .*host dsmh\d.*ssh to dsmh\d failed", j.err, re.M),
          "no dsmrun line naming the host whose ssh failed", j)
    check("Permission denied" in j.err, "ssh's own message was not shown", j)


CASES = {name[5:]: fn for name, fn in globals().items() if name.startswith("case_")}


def main(argv):
    if len(argv) != 4 or argv[3] not in CASES:
        sys.stderr.write("usage: hosts_test.py DSMRUN BINDIR {%s}\n" % ",".join(CASES))
        return 2
    dsmrun, bindir, case = argv[1], os.path.abspath(argv[2]), argv[3]
    if not all(os.path.exists(os.path.join(DIR, "sshd-%d.pid" % i)) for i in range(1, NHOSTS + 1)):
        print("SKIP %s: test hosts are not up (scripts/testhosts up %d)" % (case, NHOSTS))
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

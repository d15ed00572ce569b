#!/usr/bin/env python3
"""launcher_test.py - tests of dsmrun's behaviour with the real dsmd and launcher_prog.

    launcher_test.py DSMRUN PROG CASE

Each CASE is one ctest. Every job runs with TMPDIR set to a fresh directory whose name is
also appended to the program's arguments, so `pgrep -f <that name>` finds every dsmd (its
--socket lives there) and every rank of the job: after each job the test asserts that none
is left, kills any it finds, and fails. Every wait is bounded.
"""

import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time

STAT_KEYS = ("read_faults", "write_faults", "pages_fetched", "invalidations", "messages_sent",
             "bytes_sent", "lock_acquires", "barriers", "wall_seconds")
JOB_LIMIT_S = 60


class Failure(Exception):
    pass


def check(cond, what, job=None):
    if not cond:
        if job is not None:
            what += "\n--- dsmrun stdout:\n%s--- dsmrun stderr:\n%s" % (job.out, job.err)
        raise Failure(what)


class Job:
    """One dsmrun invocation with its own marker directory."""

    def __init__(self, dsmrun, prog, args, opts, env_extra=None):
        self.marker = tempfile.mkdtemp(prefix="dsmrun-test-")
        env = dict(os.environ, TMPDIR=self.marker, **(env_extra or {}))
        env.pop("DSM_DSMD", None)  # the build tree's dsmd, found beside dsmrun
        self.argv = [dsmrun] + opts + ["--", prog] + args + [self.marker]
        self.t0 = time.monotonic()
        self.p = subprocess.Popen(self.argv, env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        self.out = ""
        self.err = ""
        self.rc = None
        self.seconds = None

    def wait_lines(self, pattern, count, limit_s=30):
        """Read stdout until count lines match pattern (bounded); returns them."""
        found, buf = [], b""
        fd = self.p.stdout.fileno()
        deadline = time.monotonic() + limit_s
        while len(found) < count:
            left = deadline - time.monotonic()
            if left <= 0 or self.p.poll() is not None:
                why = "dsmrun exited" if self.p.poll() is not None else "the deadline"
                self.p.kill()
                self.finish()
                raise Failure("saw %d of %d lines matching %r before %s\n--- stdout:\n%s"
                              "--- stderr:\n%s" % (len(found), count, pattern, why, self.out,
                                                   self.err))
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
        """Wait for dsmrun (bounded); record rc, output, duration; check nothing is left."""
        try:
            out, err = self.p.communicate(timeout=limit_s)
        except subprocess.TimeoutExpired:
            self.p.kill()
            out, err = self.p.communicate()
            self.out += out or ""
            self.err += err or ""
            cleanup(self.marker)
            raise Failure("dsmrun still running after %d s: %s\n--- stderr:\n%s"
                          % (limit_s, " ".join(self.argv), self.err))
        self.out += out or ""
        self.err += err or ""
        self.rc = self.p.returncode
        self.seconds = time.monotonic() - self.t0
        try:
            stale = os.listdir(self.marker)
        except OSError:
            stale = []
        left = cleanup(self.marker)
        check(not left, "processes left behind after dsmrun exited:\n" + left, self)
        check(not stale, "dsmrun left files in its TMPDIR: %s" % stale, self)
        return self.rc


def leftovers(marker):
    r = subprocess.run(["pgrep", "-a", "-f", marker], stdout=subprocess.PIPE, text=True,
                       timeout=10)
    return r.stdout.strip()


def cleanup(marker):
    """Kill whatever of this job is still there (after dsmrun, nothing should be); remove the
    marker directory; return the leftovers found."""
    left = leftovers(marker)
    for line in left.splitlines():
        try:
            os.kill(int(line.split()[0]), signal.SIGKILL)
        except (ValueError, ProcessLookupError):
            pass
    shutil.rmtree(marker, ignore_errors=True)
    return left


def run(dsmrun, prog, args, opts, limit_s=JOB_LIMIT_S, env_extra=None):
    j = Job(dsmrun, prog, args, opts, env_extra)
    j.finish(limit_s)
    return j


# -- cases ------------------------------------------------------------------------------------


def case_success(dsmrun, prog):
    """Ranks run with the right environment, output is prefixed, exit 0."""
    j = run(dsmrun, prog, ["ok"], ["-n", "3", "--ranks-per-node", "2", "--prefix-output"])
    check(j.rc == 0, "exit status %s, expected 0" % j.rc, j)
    for r in range(3):
        lines = [ln for ln in j.out.splitlines() if ln.startswith("[%d] rank %d of 3 ok" % (r, r))]
        check(len(lines) == 1, "rank %d's prefixed line missing" % r, j)
        node = int(lines[0].split(" node ")[1].split()[0])
        check(node == r // 2, "rank %d ran on node %d, expected %d" % (r, node, r // 2), j)
        peers = lines[0].split(" peers ")[1].split(",")
        check(len(peers) == 2 and all(re.fullmatch(r"127\.0\.0\.1:\d+", p) for p in peers),
              "DSM_PEER_ADDRS should list the 2 daemons' addresses: %s" % peers, j)


def case_exit_status(dsmrun, prog):
    """The first rank to fail decides the exit status, not the lowest-numbered one."""
    j = run(dsmrun, prog, ["fail", "2:5:0", "1:9:1500"], ["-n", "3"])
    check(j.rc == 5, "exit status %s, expected 5 (rank 2 failed first)" % j.rc, j)
    check(re.search(r"rank 2\b.*status 5", j.err), "no message naming rank 2's failure", j)
    check(j.seconds < 20, "took %.1f s to stop after a rank failed" % j.seconds, j)


def case_timeout(dsmrun, prog):
    """--timeout stops a spinning job with 124 and leaves nothing behind."""
    # 10 s: the limit counts from the start, and on a busy 2-vCPU machine the second rank
    # has taken more than 3 s to start (seen 2026-11-22).
    j = Job(dsmrun, prog, ["spin"], ["-n", "2", "--timeout", "10"])
    j.wait_lines(r"^rank \d started", 2)
    j.finish()
    check(j.rc == 124, "exit status %s, expected 124" % j.rc, j)
    check("timed out" in j.err, "no timeout message", j)
    check(j.seconds < 10 + 15, "took %.1f s for a 10 s timeout" % j.seconds, j)


def signal_case(dsmrun, prog, sig, want):
    j = Job(dsmrun, prog, ["loop"], ["-n", "2"])
    j.wait_lines(r"^rank \d started", 2)
    t = time.monotonic()
    j.p.send_signal(sig)
    j.finish()
    check(j.rc == want, "exit status %s after %s, expected %d" % (j.rc, sig.name, want), j)
    check(time.monotonic() - t < 10, "took %.1f s to stop after %s"
          % (time.monotonic() - t, sig.name), j)


def case_sigint(dsmrun, prog):
    """SIGINT (Ctrl-C) tears the job down: exit 130, nothing left."""
    signal_case(dsmrun, prog, signal.SIGINT, 130)


def case_sigterm(dsmrun, prog):
    """SIGTERM tears the job down: exit 143 (128+15), nothing left."""
    signal_case(dsmrun, prog, signal.SIGTERM, 143)


def running_job_node1(dsmrun, prog, opts):
    """A 4-rank job (2 per node) whose ranks all run, and the pid of node 1's dsmd."""
    j = Job(dsmrun, prog, ["loop"], ["-n", "4", "--ranks-per-node", "2", "--prefix-output"] + opts)
    j.wait_lines(r"^\[\d\] rank \d started", 4)
    r = subprocess.run(["pgrep", "-f", r"dsmd --node 1 .*%s" % re.escape(j.marker)],
                       stdout=subprocess.PIPE, text=True, timeout=10)
    pids = r.stdout.split()
    if len(pids) != 1:
        j.p.kill()
        j.finish()
        raise Failure("expected one dsmd for node 1, pgrep found %r" % pids)
    return j, int(pids[0])


def case_daemon_killed(dsmrun, prog):
    """A dsmd killed mid-job: every rank stops on its own with an error naming the node, and
    dsmrun exits non-zero within a few seconds."""
    j, pid = running_job_node1(dsmrun, prog, ["-v"])  # -v: every rank's folded message too
    t = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    j.finish()
    took = time.monotonic() - t
    check(j.rc != 0, "dsmrun exited 0 after node 1's dsmd was killed", j)
    check(took < 10, "took %.1f s to stop after node 1 died" % took, j)
    check(re.search(r"^dsmrun: node 1\b.*(SIGKILL|killed)", j.err, re.M),
          "dsmrun did not name node 1 as killed", j)
    check("stopping the remaining" not in j.err,
          "dsmrun had to kill ranks: they did not stop on their own", j)
    check(re.search(r"^dsmrun: then: ranks 0-3 stopped by the runtime", j.err, re.M),
          "no summary line saying the runtime stopped ranks 0-3", j)
    for rank in range(4):
        said = [ln for ln in j.err.splitlines() if ln.startswith("[%d] " % rank)]
        check(any("node 1" in ln for ln in said),
              "rank %d printed no error naming node 1" % rank, j)


def frozen_job(dsmrun, prog, opts, limit_s):
    """Run a 4-rank job, SIGSTOP node 1's dsmd once every rank runs, and check that the job
    fails naming node 1 and its address after at most limit_s seconds of its silence."""
    j, pid = running_job_node1(dsmrun, prog, opts)
    t = time.monotonic()
    os.kill(pid, signal.SIGSTOP)
    try:
        j.finish()
    finally:
        took = time.monotonic() - t
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass
    check(j.rc != 0, "%s: dsmrun exited 0 after node 1's dsmd was frozen" % opts, j)
    m = re.search(r"node 1 \(dsmd at [^)]*\) sent nothing for ([0-9.]+) s", j.err)
    check(m is not None, "%s: no error naming frozen node 1 and its address" % opts, j)
    check(float(m.group(1)) <= limit_s, "%s: node 1 frozen: named after %s s of silence, expected "
          "within %s s" % (opts, m.group(1), limit_s), j)
    check(took < limit_s + 15, "%s: the job took %.1f s to end after node 1 froze" % (opts, took), j)


def case_daemon_frozen(dsmrun, prog):
    """A dsmd stopped mid-job (SIGSTOP: its connections stay open, it just says nothing):
    its peers' watchdog names it within 10 s under the default DSM_PEER_TIMEOUT_MS, and
    within --peer-timeout plus a tick (a fifth of it) when that is given; the job fails and
    nothing is left behind."""
    env_timeout = os.environ.pop("DSM_PEER_TIMEOUT_MS", None)  # the default is what is tested
    try:
        frozen_job(dsmrun, prog, [], 10.0)
    finally:
        if env_timeout is not None:
            os.environ["DSM_PEER_TIMEOUT_MS"] = env_timeout
    frozen_job(dsmrun, prog, ["--peer-timeout", "2"], 4.0)


def case_rank_frozen(dsmrun, prog):
    """A rank that stops (SIGSTOP) while its daemon needs it to give up a page: the daemon
    fails the job naming the rank within --peer-timeout plus a tick, instead of every fault
    on that page waiting forever; the stopped rank is killed with the rest."""
    j = Job(dsmrun, prog, ["freeze"], ["-n", "2", "--peer-timeout", "2", "--prefix-output"])
    j.finish()
    check(j.rc != 0, "dsmrun exited 0 although rank 1 froze", j)
    m = re.search(r"^dsmrun: rank 1 has not applied a protection change from its daemon \(node 1\) for ([0-9.]+) s",
                  j.err, re.M)
    check(m is not None, "no error naming frozen rank 1", j)
    check(float(m.group(1)) <= 4.0, "rank 1 frozen: named after %s s, expected within 4 s" % m.group(1), j)


def case_segv(dsmrun, prog):
    """A real NULL dereference in a rank after dsm_init kills it with SIGSEGV: exit 139."""
    # In a sanitizer build, the sanitizer's SIGSEGV report (exit 1) would stand in for the
    # signal: let the default action, which is what is tested, have it.
    no_report = {v: (os.environ.get(v, "") + ":handle_segv=0").lstrip(":")
                 for v in ("ASAN_OPTIONS", "TSAN_OPTIONS")}
    j = run(dsmrun, prog, ["segv", "1"], ["-n", "4", "--ranks-per-node", "2"], env_extra=no_report)
    check(j.rc == 139, "exit status %s, expected 139 (SIGSEGV)" % j.rc, j)
    first_is(j, r"rank 1 \(node 0\) was killed by SIGSEGV \(exit status 139\): invalid write at 0x0, "
                r"outside the global space \(0x[0-9a-f]+-0x[0-9a-f]+\)$")
    check(re.search(r"^dsmrun:   at #0 ", j.err, re.M), "no backtrace after the cause", j)
    folded(j, [0, 2, 3])


def first_is(j, pattern):
    """The first line dsmrun prints on stderr is the cause, matching pattern."""
    lines = [ln for ln in j.err.splitlines() if ln.startswith("dsmrun: ")]
    check(lines and re.match("dsmrun: " + pattern, lines[0]),
          "the first dsmrun line does not match %r" % pattern, j)
    check(not re.search(r"^(\[\d+\] )?dsm(d?\[[a-z]+ \d+\])?: ", j.err, re.M),
          "the runtime's follow-on lines were not folded", j)


def folded(j, stopped):
    """The follow-on summary: the ranks the runtime stopped, the runtime's lines folded."""
    m = re.search(r"^dsmrun: then: ranks? ([-0-9, ]+) stopped by the runtime;.* folded \(-v shows them\)$",
                  j.err, re.M)
    check(m is not None, "no summary line of what followed the cause", j)
    said = sorted(sum(([*range(int(a), int(b or a) + 1)] for a, _, b in
                       (x.strip().partition("-") for x in m.group(1).split(","))), []))
    check(said == stopped, "summary names ranks %s as stopped, expected %s" % (said, stopped), j)


def case_plain(dsmrun, prog):
    """Programs that never call dsm_init just run: the usual smoke tests exit 0, quietly."""
    for opts, argv in ((["-n", "3", "--ranks-per-node", "2"], [prog, "plain"]),
                       (["-n", "2"], ["/bin/true"]), (["-n", "2"], ["hostname"])):
        marker = tempfile.mkdtemp(prefix="dsmrun-test-")
        try:
            r = subprocess.run([dsmrun] + opts + ["--"] + argv, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                               timeout=JOB_LIMIT_S, env=dict(os.environ, TMPDIR=marker))
            check(r.returncode == 0 and r.stderr == "",
                  "%s: exit %d, stderr %r; expected 0 and nothing" % (argv, r.returncode, r.stderr))
            check(os.listdir(marker) == [], "%s: files left in TMPDIR" % argv)
        finally:
            shutil.rmtree(marker, ignore_errors=True)
    j = run(dsmrun, prog, ["plain"], ["-n", "3", "--ranks-per-node", "2"])
    check(sorted(j.out.split("\n")[:-1]) == ["rank %d plain" % r for r in range(3)],
          "the ranks' lines are not all there", j)


def case_no_finalize(dsmrun, prog):
    """A rank returning 0 without dsm_finalize is named (not the ranks the runtime then
    stopped); the job fails with status 1 at once."""
    j = run(dsmrun, prog, ["fail", "2:0:200"], ["-n", "4"])
    check(j.rc == 1, "exit status %s, expected 1" % j.rc, j)
    check(j.seconds < 15, "took %.1f s" % j.seconds, j)
    first_is(j, r"rank 2 \(node 2\) exited with status 0 without calling dsm_finalize$")
    folded(j, [0, 1, 3])


def case_early_finalize(dsmrun, prog):
    """A rank that calls dsm_finalize while the others wait in dsm_barrier fails the job at
    once, naming it: on its own node (2 per node) and across nodes (1 per node)."""
    for rpn, where in (("1", r"rank 2 \(node 2\) called dsm_finalize while rank \d \(node \d\) waits"),
                       ("2", r"rank 2 called dsm_finalize while rank 3 waits")):
        j = run(dsmrun, prog, ["finalize", "2"], ["-n", "4", "--ranks-per-node", rpn, "--timeout", "60"])
        check(j.rc != 0 and j.rc != 124, "rpn %s: exit status %s, expected a failure before the timeout"
              % (rpn, j.rc), j)
        check(j.seconds < 15, "rpn %s: took %.1f s" % (rpn, j.seconds), j)
        first_is(j, where + r" in dsm_barrier \(barrier 1\): that barrier can never complete$")


def case_map_count(dsmrun, prog):
    """Protections that alternate page by page take one memory map per page. Past the
    kernel's vm.max_map_count the job fails at once, naming the limit, its value and the
    sysctl that lifts it, under sequential and release; below it the same program verifies."""
    with open("/proc/sys/vm/max_map_count") as f:
        limit = int(f.read())
    pages = limit + limit // 4  # every rank's maps alternate over all of them
    if os.environ.get("DSM_TEST_SANITIZE"):
        print("SKIP map_count: built with -fsanitize=%s, whose own mmaps fail first near the limit"
              % os.environ["DSM_TEST_SANITIZE"])
        sys.exit(77)
    if pages > 200000:
        print("SKIP map_count: vm.max_map_count is %d here; going past it would take a space of "
              "more than %d pages" % (limit, pages))
        sys.exit(77)
    space = str(2 * pages * os.sysconf("SC_PAGE_SIZE"))
    j = run(dsmrun, prog, ["maps", str(limit // 4)], ["-n", "2", "--space-size", space])
    check(j.rc == 0 and j.out.count("maps ok") == 2, "%d pages: exit status %s, expected 0"
          % (limit // 4, j.rc), j)
    for model in ("sequential", "release"):
        j = run(dsmrun, prog, ["maps", str(pages)],
                ["-n", "2", "--consistency", model, "--space-size", space, "--timeout", "100"])
        check(j.rc == 1, "%s: exit status %s, expected 1" % (model, j.rc), j)
        first_is(j, r"rank [01] \(node [01]\) exited with status 1 without calling dsm_finalize: "
                    r".*: out of memory maps: page protections split the global space into more "
                    r"regions than vm\.max_map_count \(%d\) allows; raise it as root with sysctl -w "
                    r"vm\.max_map_count=%d \(enough for every page of this space\) \(errno 12\)$"
                    % (limit, limit + 2 * pages))
        cause = int(re.search(r"^dsmrun: rank (\d)", j.err, re.M).group(1))
        folded(j, [1 - cause])


def case_space_full(dsmrun, prog):
    """A program that exits when dsm_coalloc finds no room has its cause line carry what
    libdsm told it (the space's halves and dsmrun --space-size), not only its exit status."""
    pages = (1 << 30) // os.sysconf("SC_PAGE_SIZE")  # the default space is 1 GiB
    j = run(dsmrun, prog, ["maps", str(pages)], ["-n", "4", "--ranks-per-node", "2"])
    check(j.rc == 3, "exit status %s, expected the program's 3" % j.rc, j)
    first_is(j, r"rank \d \(node \d\) exited with status 3 without calling dsm_finalize, after "
                r"libdsm's error: dsm_coalloc\(%d\): no room: .*dsmrun --space-size, default 1G\)$"
                % (pages * os.sysconf("SC_PAGE_SIZE")))


def case_refree(dsmrun, prog):
    """Frees end after they are answered, and the next allocation waits for them instead of
    failing: 4 times a dsm_coalloc of 40 of the collective area's 64 MiB right after the
    last one's dsm_cofree, then 4 dsm_malloc/dsm_free of 20 of an arena's 32 MiB; a
    dsm_coalloc that cannot fit beside a live one still fails at once. Every model, 2 ranks
    per node."""
    for model in ("sequential", "release", "causal"):
        j = run(dsmrun, prog, ["refree", "40", "4"], ["-n", "4", "--ranks-per-node", "2", "--consistency", model,
                                                     "--space-size", "128M", "--timeout", "100"])
        check(j.rc == 0 and j.out.count("refree ok") == 4, "%s: exit status %s, expected 0" % (model, j.rc), j)
        check(re.search(r"collective allocation #5 of 41943040 bytes does not fit", j.err),
              "%s: the allocation that cannot fit was not refused" % model, j)


def case_out_of_turn(dsmrun, prog):
    """A rank whose channel breaks the channel protocol (here a PROTECT_ACK on a thread
    channel) fails the job at once, named, instead of leaving what it waited for taken and
    the others waiting until --timeout."""
    for rpn in ("1", "2"):
        j = run(dsmrun, prog, ["outofturn"], ["-n", "4", "--ranks-per-node", rpn, "--timeout", "60"])
        check(j.rc != 0 and "rank 3 sends a PROTECT_ACK on a thread channel" in j.out,
              "rpn %s: exit status %s, expected a failure" % (rpn, j.rc), j)
        check(j.seconds < 15, "rpn %s: took %.1f s" % (rpn, j.seconds), j)
        first_is(j, r"rank 3 sent request %d on its thread channel out of turn \(not a request it may send "
                    r"there\): libdsm and dsmd disagree; the job cannot go on$" % 16)


def case_no_init(dsmrun, prog):
    """A rank that exits without dsm_init while the others joined the job is named at once."""
    for rpn, node in (("1", 2), ("2", 1)):
        j = run(dsmrun, prog, ["noinit", "2"], ["-n", "4", "--ranks-per-node", rpn, "--timeout", "60"])
        check(j.rc == 1, "rpn %s: exit status %s, expected 1" % (rpn, j.rc), j)
        check(j.seconds < 15, "rpn %s: took %.1f s" % (rpn, j.seconds), j)
        first_is(j, r"rank 2 \(node %d\) exited \(status 0\) without calling dsm_init, while other ranks "
                    r"joined the job and wait for it in dsm_barrier$" % node)


def case_stats(dsmrun, prog):
    """--stats FILE: valid JSON, every rank with every counter, plausible values."""
    d = tempfile.mkdtemp(prefix="dsmrun-stats-")
    try:
        path = os.path.join(d, "stats.json")
        j = run(dsmrun, prog, ["stats"], ["-n", "4", "--ranks-per-node", "2", "--stats", path,
                                          "--report"])
        check(j.rc == 0, "exit status %s, expected 0" % j.rc, j)
        with open(path) as f:
            doc = json.load(f)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    for k, v in (("consistency", "sequential"), ("transport", "tcp"), ("nranks", 4),
                 ("nnodes", 2), ("ranks_per_node", 2)):
        check(doc.get(k) == v, "%s is %r, expected %r" % (k, doc.get(k), v), j)
    check(isinstance(doc.get("wall_seconds"), (int, float)) and doc["wall_seconds"] > 0,
          "job wall_seconds missing or not positive", j)
    ranks = doc.get("ranks", [])
    check([r.get("rank") for r in ranks] == [0, 1, 2, 3], "ranks not 0..3 in order", j)
    check(doc.get("complete") is True and "missing" not in doc, "complete is %r" % doc.get("complete"), j)
    for r in ranks:
        for k in STAT_KEYS:
            check(isinstance(r.get(k), (int, float)) and r[k] >= 0,
                  "rank %d: %s missing or negative" % (r["rank"], k), j)
        check(r["write_faults"] >= 1, "rank %d wrote a page but counts no write fault"
              % r["rank"], j)
        check(r["read_faults"] >= 1 or r["pages_fetched"] >= 1,
              "rank %d read a page written elsewhere but counts no read fault or fetch"
              % r["rank"], j)
        check(r["lock_acquires"] >= 1, "rank %d took a lock; lock_acquires is 0" % r["rank"], j)
        check(r["barriers"] >= 2, "rank %d met 2 barriers; barriers is %d"
              % (r["rank"], r["barriers"]), j)
        check(r["wall_seconds"] > 0, "rank %d wall_seconds is 0" % r["rank"], j)
        # the rank-daemon channel lost nothing: every protection change sent was applied
        # (or left when its rank had finalized), every message reached the rank
        check(r.get("channel_undelivered") == 0, "rank %d: %r channel messages undelivered"
              % (r["rank"], r.get("channel_undelivered")), j)
        check(r.get("protects") == r.get("protects_acked", -1) + r.get("protects_abandoned", -1),
              "rank %d: %r protection changes sent, %r applied, %r left at finalize"
              % (r["rank"], r.get("protects"), r.get("protects_acked"), r.get("protects_abandoned")), j)
        check(r.get("channel_out", 0) >= r["read_faults"] + r["write_faults"],
              "rank %d: fewer channel messages than grants" % r["rank"], j)
    nodes = doc.get("nodes", [])
    check([n.get("node") for n in nodes] == [0, 1], "nodes not 0, 1", j)
    check(all(isinstance(n.get("messages_sent"), int) and n["messages_sent"] > 0
              and isinstance(n.get("bytes_sent"), int) and n["bytes_sent"] > 0 for n in nodes),
          "a node of a 2-node job reports no message sent", j)
    check(re.search(r"^\s*total\s", j.err, re.M), "--report printed no totals row", j)


def case_deadlock(dsmrun, prog):
    """Every rank waiting in the runtime with nothing answered for --deadlock-timeout: the
    job ends, and the first lines say who waits for what (the lock, its holder, its waiters,
    the barrier)."""
    j = run(dsmrun, prog, ["deadlock"], ["-n", "4", "--ranks-per-node", "2", "--deadlock-timeout", "2",
                                         "--timeout", "60"])
    check(j.rc == 1, "exit status %s, expected 1" % j.rc, j)
    check(j.seconds < 20, "took %.1f s with --deadlock-timeout 2" % j.seconds, j)
    first_is(j, r"deadlock: for 2 s every rank has waited in the runtime")
    for want in (r"node 0: rank 0 waits in dsm_barrier", r"node 0: rank 0 holds lock 1",
                 r"node 0: rank 1 waits in dsm_lock\(1\)", r"node 1: rank 2 waits in dsm_lock\(1\)",
                 r"node 1: lock 1 \(managed here\) is held by rank 0; waiting: ranks \d, \d, \d$"):
        check(re.search(r"^dsmrun:   " + want, j.err, re.M), "no line %r" % want, j)
    m = re.search(r"waiting: ranks (\d), (\d), (\d)$", j.err, re.M)
    check(sorted(m.groups()) == ["1", "2", "3"], "lock 1's waiters are not ranks 1-3 (in their order)", j)


def case_memory_nodes(dsmrun, prog):
    """--memory-nodes M: M more daemons, the job's last nodes, run no rank; the job runs and
    ends cleanly under every model (nothing left behind), --stats marks them,
    a deadlock is still found with them (they wait for nothing), and bad values are refused."""
    d = tempfile.mkdtemp(prefix="dsmrun-mem-")
    try:
        for model in ("sequential", "release", "causal"):
            path = os.path.join(d, "stats.json")
            j = run(dsmrun, prog, ["ok"], ["-n", "3", "--memory-nodes", "2", "--consistency", model,
                                           "--stats", path, "--report", "--timeout", "60"])
            check(j.rc == 0, "%s: exit status %s" % (model, j.rc), j)
            check(len(re.findall(r"^rank \d+ of 3 ok", j.out, re.M)) == 3, "%s: not every rank said ok" % model, j)
            with open(path) as f:
                doc = json.load(f)
            check(doc.get("nnodes") == 5 and doc.get("memory_nodes") == 2 and doc.get("complete"),
                  "%s: stats say %r nodes, %r memory nodes, complete %r" % (
                      model, doc.get("nnodes"), doc.get("memory_nodes"), doc.get("complete")), j)
            check([n.get("memory") for n in doc["nodes"]] == [False, False, False, True, True],
                  "%s: memory flags %r" % (model, [n.get("memory") for n in doc["nodes"]]), j)
            check("(2 of them memory nodes)" in j.err, "%s: --report does not mention the memory nodes" % model, j)
            counts = [sorted(n.get("counts", {})) for n in doc["nodes"]]
            check(counts == [[]] * 3 + [["diffs", "invalidations", "notice_bytes", "pages_evicted",
                                         "pages_fetched", "write_notices", "writebacks"]] * 2,
                  "%s: only memory nodes have their own counts: %r" % (model, counts), j)
            for n in (3, 4):
                check(re.search(r"^node %d \(memory node\): \d+ messages" % n, j.err, re.M),
                      "%s: --report does not label memory node %d" % (model, n), j)
            m = re.search(r"^all nodes: (\d+) messages, (\d+) bytes sent$", j.err, re.M)
            check(m and int(m.group(1)) == sum(n["messages_sent"] for n in doc["nodes"]) and
                  int(m.group(2)) == sum(n["bytes_sent"] for n in doc["nodes"]),
                  "%s: --report's all-nodes line does not add up the nodes" % model, j)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    j = run(dsmrun, prog, ["deadlock"], ["-n", "4", "--ranks-per-node", "2", "--memory-nodes", "1",
                                         "--deadlock-timeout", "2", "--timeout", "60"])
    check(j.rc == 1 and j.seconds < 20, "deadlock with a memory node: exit %s after %.1f s" % (j.rc, j.seconds), j)
    first_is(j, r"deadlock: for 2 s every rank has waited in the runtime")
    # programs that never call dsm_init: the memory node leaves quietly with the others
    for argv in ([prog, "plain"], ["/bin/true"]):
        r = subprocess.run([dsmrun, "-n", "2", "--memory-nodes", "1", "--"] + argv, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, timeout=JOB_LIMIT_S)
        check(r.returncode == 0 and r.stderr == "", "%s with a memory node: exit %d, stderr %r"
              % (argv, r.returncode, r.stderr))
    # a daemon killed mid-job, the memory node's or the only compute node's: the job fails
    # within seconds and leaves nothing behind (Job checks)
    for opts, node in ((["-n", "4", "--ranks-per-node", "2", "--memory-nodes", "1"], 2),
                       (["-n", "2", "--ranks-per-node", "2", "--memory-nodes", "1"], 0)):
        j = Job(dsmrun, prog, ["loop"], opts + ["--prefix-output", "--timeout", "60"])
        j.wait_lines(r"^\[\d\] rank \d started", int(opts[1]))
        pids = subprocess.run(["pgrep", "-f", r"dsmd --node %d .*%s" % (node, re.escape(j.marker))],
                              stdout=subprocess.PIPE, text=True, timeout=10).stdout.split()
        if len(pids) != 1:
            j.p.kill()
            j.finish()
            raise Failure("expected one dsmd for node %d, pgrep found %r" % (node, pids))
        t = time.monotonic()
        os.kill(int(pids[0]), signal.SIGKILL)
        j.finish()
        check(j.rc != 0 and time.monotonic() - t < 12, "node %d killed: exit %s after %.1f s"
              % (node, j.rc, time.monotonic() - t), j)
        check(re.search(r"^dsmrun: node %d\b.*(SIGKILL|killed)" % node, j.err, re.M),
              "dsmrun did not name node %d as killed" % node, j)
    for bad in ("-1", "x", "5000"):
        j = run(dsmrun, prog, ["ok"], ["-n", "2", "--memory-nodes", bad])
        check(j.rc == 2 and "--memory-nodes must be a number of nodes" in j.err,
              "--memory-nodes %s: exit %s" % (bad, j.rc), j)


def case_slow_not_deadlock(dsmrun, prog):
    """A rank computing outside the runtime while the others wait for it is slow, not
    deadlocked: the job runs to its end."""
    j = run(dsmrun, prog, ["slow", "4000"], ["-n", "3", "--deadlock-timeout", "1", "--timeout", "60"])
    check(j.rc == 0 and "deadlock" not in j.err, "exit status %s" % j.rc, j)


def case_scale_128(dsmrun, prog):
    """128 nodes on this machine under each model (past the 64 a word of node bits holds):
    every rank writes its byte of one shared page, rank 0 checks all 128."""
    for model in ("sequential", "release", "causal"):
        j = run(dsmrun, prog, ["ok"], ["-n", "128", "--consistency", model, "--space-size", "64M",
                                       "--timeout", "150"], limit_s=180)
        check(j.rc == 0, "%s: exit status %s" % (model, j.rc), j)
        oks = re.findall(r"^rank (\d+) of 128 ok node (\d+) ", j.out, re.M)
        check(sorted(int(r) for r, n in oks if r == n) == list(range(128)),
              "%s: %d of 128 ranks said ok on their own node" % (model, len(oks)), j)


def case_api(dsmrun, prog):
    """dsm_trylock (a free lock, one held elsewhere, one held here; what it acquires) and
    dsm_version, under every model, with 1 and 2 ranks per node."""
    for model in ("sequential", "release", "causal"):
        for opts in (["-n", "2"], ["-n", "4", "--ranks-per-node", "2"]):
            j = run(dsmrun, prog, ["api"], opts + ["--consistency", model, "--timeout", "60"])
            n = int(opts[1])
            check(j.rc == 0 and sorted(j.out.split("\n")[:-1]) == ["rank %d api ok" % r for r in range(n)],
                  "%s %s: exit status %s" % (model, opts, j.rc), j)


def case_abort(dsmrun, prog):
    """dsm_abort(code) ends every rank at once, the job exits with the code (1 for a code
    whose low byte is 0), and dsmrun's first line names the call."""
    for code, want, opts in ((7, 7, ["-n", "4"]), (256, 1, ["-n", "4", "--ranks-per-node", "2"])):
        j = run(dsmrun, prog, ["abort", "2", str(code)], opts + ["--timeout", "60"])
        check(j.rc == want, "dsm_abort(%d): exit status %s, expected %d" % (code, j.rc, want), j)
        check(j.seconds < 15, "took %.1f s" % j.seconds, j)
        first_is(j, r"rank 2 called dsm_abort\(%d\)$" % code)


def case_coalloc_mismatch(dsmrun, prog):
    """A collective allocation with different sizes fails the job on every rank, naming
    both sizes (it used to give one rank memory and another NULL, and exit 0)."""
    for model in ("sequential", "release", "causal"):
        j = run(dsmrun, prog, ["mismatch"], ["-n", "3", "--consistency", model, "--timeout", "60"])
        check(j.rc not in (0, 124), "%s: exit status %s" % (model, j.rc), j)
        check(j.seconds < 15, "%s: took %.1f s" % (model, j.seconds), j)
        first_is(j, r"rank \d called dsm_coalloc \(collective call #1\) for (4096|8192) bytes, rank \d for "
                    r"(4096|8192): a collective allocation takes the same size on every rank$")
    j = run(dsmrun, prog, ["mismatch", "place"], ["-n", "3", "--timeout", "60"])
    check(j.rc not in (0, 124), "placement: exit status %s" % j.rc, j)
    first_is(j, r"rank \d called dsm_coalloc_ex \(collective call #1\) with placement (block|cyclic\(1\)), "
                r"rank \d with (block|cyclic\(1\)): "
                r"a collective allocation takes the same placement on every rank$")


def case_cond(dsmrun, prog):
    """Condition variables: a bounded queue in global memory under one lock, a consumer
    waiting for "not empty", producers for "not full"; every item arrives once (the sum is
    checked) under every model, 1 and 2 ranks per node; a wait without the lock is
    DSM_EINVAL."""
    for model in ("sequential", "release", "causal"):
        for opts in (["-n", "2"], ["-n", "5"], ["-n", "6", "--ranks-per-node", "2"]):
            j = run(dsmrun, prog, ["cond", "60"], opts + ["--consistency", model, "--timeout", "60"])
            n = int(opts[1])
            want = sum(p * 1000 + i for p in range(1, n) for i in range(60))
            check(j.rc == 0 and "cond: %d items from %d producers, sum %d ok" % (60 * (n - 1), n - 1, want) in j.out,
                  "%s %s: exit status %s" % (model, opts, j.rc), j)


def case_flag(dsmrun, prog):
    """Publishing through a flag with dsm_release/dsm_acquire (no lock), under every model,
    1 and 2 ranks per node: the readers see the flag and the data written before it (under
    release, without the fences a reader polls its stale copy of the flag forever). The
    fences' lock id is refused to the program."""
    for model in ("sequential", "release", "causal"):
        for opts in (["-n", "2"], ["-n", "4", "--ranks-per-node", "2"]):
            j = run(dsmrun, prog, ["flag"], opts + ["--consistency", model, "--timeout", "60"])
            n = int(opts[1])
            check(j.rc == 0 and sorted(j.out.split("\n")[:-1]) == ["rank %d flag ok" % r for r in range(n)],
                  "%s %s: exit status %s" % (model, opts, j.rc), j)


def case_atomics(dsmrun, prog):
    """Atomics under every model, one and two ranks per node: linearizable fetch-add (old
    values a permutation), CAS and swap, 32-bit wrap, store/load, bad calls refused, plain
    reads after a barrier see the results, a flag published with an atomic store."""
    for model in ("sequential", "release", "causal"):
        for opts in (["-n", "1"], ["-n", "3"], ["-n", "4", "--ranks-per-node", "2"]):
            j = run(dsmrun, prog, ["atomics", "200"], opts + ["--consistency", model, "--timeout", "90"])
            n = int(opts[1])
            check(j.rc == 0 and "atomics: 200 x %d fetch-adds, CAS and swaps ok" % n in j.out and
                  all("rank %d atomics ok" % r in j.out for r in range(n)),
                  "%s %s: exit status %s" % (model, opts, j.rc), j)


def case_firsttouch(dsmrun, prog):
    """First-touch placement: the node that touches a page first (a write, an atomic) is its
    home. On two nodes, under every model (causal's partial replicas fetch too), rank 0's
    reads of the two pages rank 1 touched first are two fetches and rank 1 fetches nothing
    (block placement would give one each). Racing claims (every rank writes every page of a fresh region at once) lose no
    write, under every model, one and two ranks per node."""
    d = tempfile.mkdtemp(prefix="dsmrun-stats-")
    try:
        for model in ("sequential", "release", "causal"):
            for opts in (["-n", "2"], ["-n", "4", "--ranks-per-node", "2"], ["-n", "5"]):
                path = os.path.join(d, "%s.json" % model)
                race = opts != ["-n", "2"]
                j = run(dsmrun, prog, ["firsttouch"] + (["race"] if race else []),
                        opts + ["--consistency", model, "--stats", path, "--timeout", "60"])
                n = int(opts[1])
                check(j.rc == 0 and all("rank %d firsttouch ok" % r in j.out for r in range(n)),
                      "%s %s: exit status %s" % (model, opts, j.rc), j)
                if not race:
                    with open(path) as f:
                        got = [r["pages_fetched"] for r in json.load(f)["ranks"]]
                    check(got == [2, 0], "%s: pages fetched by ranks 0, 1: %s, expected [2, 0]" % (model, got), j)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def case_freescan(dsmrun, prog):
    """A block freed (and allocated again) next to one other ranks scan: their reads ahead
    reach into it while its pages are cleared, and no access may outlive the free (each
    iteration every other rank reads the new block's new values). Every model, 2 nodes and
    2 ranks per node, two jobs at once (the races need a busy machine; docs/PROTOCOL.md
    "Reads ahead"). A stress test: with either fix undone (pages kept at NONE while cleared,
    extras only inside the asked page's allocation) about one job in ten fails."""
    for model in ("sequential", "release", "causal"):
        for opts in (["-n", "2"], ["-n", "4", "--ranks-per-node", "2"]):
            jobs = [Job(dsmrun, prog, ["freescan", "300"], opts + ["--consistency", model, "--timeout", "120"])
                    for _ in range(2)]
            for j in jobs:
                j.finish(JOB_LIMIT_S)
                n = int(opts[1])
                check(j.rc == 0 and all("rank %d freescan ok" % r in j.out for r in range(n)),
                      "%s %s: exit status %s" % (model, opts, j.rc), j)


def case_breakdown(dsmrun, prog):
    """The time breakdown of --stats (the ranks' own clocks): rank 0 computes 300 ms holding
    lock 3, rank 1 waits for that lock then faults on a page of the last node, the others wait
    in a barrier. Each shows where its time went (bounds below what was arranged, so load only
    makes them safer), and per rank the waits plus compute add up to the wall time. --report
    prints the shares."""
    d = tempfile.mkdtemp(prefix="dsmrun-stats-")
    try:
        for model in ("sequential", "release", "causal"):
            for opts in (["-n", "3"], ["-n", "4", "--ranks-per-node", "2"]):
                path = os.path.join(d, "%s.json" % model)
                j = run(dsmrun, prog, ["breakdown"], opts + ["--consistency", model, "--stats", path,
                                                           "--report", "--timeout", "60"])
                check(j.rc == 0, "%s %s: exit status %s" % (model, opts, j.rc), j)
                with open(path) as f:
                    ranks = json.load(f)["ranks"]
                keys = ("wait_fault_seconds", "wait_lock_seconds", "wait_barrier_seconds",
                        "wait_other_seconds")
                for r in ranks:
                    check(all(r[k] >= 0 for k in keys) and r["compute_seconds"] >= 0,
                          "%s %s: rank %d: a negative share: %s" % (model, opts, r["rank"], r), j)
                    total = sum(r[k] for k in keys) + r["compute_seconds"]
                    check(abs(total - r["wall_seconds"]) < 1e-5,
                          "%s %s: rank %d: waits + compute = %.6f s, wall %.6f s"
                          % (model, opts, r["rank"], total, r["wall_seconds"]), j)
                check(ranks[0]["compute_seconds"] >= 0.25, "%s %s: rank 0 computed %.3f s, not 0.3"
                      % (model, opts, ranks[0]["compute_seconds"]), j)
                check(ranks[1]["wait_lock_seconds"] >= 0.2, "%s %s: rank 1 waited %.3f s for lock 3"
                      % (model, opts, ranks[1]["wait_lock_seconds"]), j)
                check(ranks[2]["wait_barrier_seconds"] >= 0.2, "%s %s: rank 2 waited %.3f s in barriers"
                      % (model, opts, ranks[2]["wait_barrier_seconds"]), j)
                if model != "causal":  # causal replicates every page: no fault for a read
                    check(ranks[1]["wait_fault_seconds"] > 0, "%s %s: rank 1's fault took no time"
                          % (model, opts), j)
                check("compute%" in j.err and "barrier%" in j.err, "%s %s: --report has no breakdown"
                      % (model, opts), j)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def trace_checked(path, j):
    """The trace file as JSON, checked against the trace-event format: every event has a
    known phase and the fields that phase needs; returns the document."""
    with open(path) as f:
        doc = json.load(f)
    check(isinstance(doc.get("traceEvents"), list) and doc.get("displayTimeUnit") == "ns",
          "trace: no traceEvents list / displayTimeUnit", j)
    for e in doc["traceEvents"]:
        ph = e.get("ph")
        check(ph in ("X", "M", "s", "f") and isinstance(e.get("pid"), int) and isinstance(e.get("name"), str),
              "trace: malformed event %s" % e, j)
        if ph == "M":
            check(e["name"] in ("process_name", "process_sort_index", "thread_name") and "args" in e,
                  "trace: malformed metadata %s" % e, j)
        else:
            check(isinstance(e.get("tid"), int) and isinstance(e.get("ts"), (int, float)) and e["ts"] >= 0,
                  "trace: event without tid/ts %s" % e, j)
        if ph == "X":
            check(isinstance(e.get("dur"), (int, float)) and e["dur"] >= 0, "trace: bad dur %s" % e, j)
        if ph in ("s", "f"):
            check(isinstance(e.get("id"), int), "trace: flow without id %s" % e, j)
    return doc


def report_checked(dsmrun, spath, tpath, trace, shared, out, j):
    """dsm-report (beside dsmrun) makes one self-contained page of the job's statistics and
    trace: every section, a timeline lane per rank thread, the shared page named."""
    r = subprocess.run([os.path.join(os.path.dirname(dsmrun), "dsm-report"), "--stats", spath, "--trace", tpath,
                        "-o", out], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)
    check(r.returncode == 0, "dsm-report failed: %s" % r.stderr, j)
    with open(out) as f:
        page = f.read()
    for section in ("Time breakdown", "Timeline", "Trace summary", "Hot spots", "False sharing"):
        check("<h2>%s</h2>" % section in page, "dsm-report: no %s section" % section, j)
    threads = {(e["pid"], e["tid"]) for e in trace["traceEvents"] if e["ph"] == "X" and e["pid"] < 1000000}
    check(page.count('font-size="10">rank ') == len(threads),
          "dsm-report: %d timeline lanes, the trace has %d rank threads"
          % (page.count('font-size="10">rank '), len(threads)), j)
    check("%#x" % shared in page and not re.search(r'(src|href)="', page),
          "dsm-report: the shared page is not named, or the page is not self-contained", j)


def case_insight(dsmrun, prog):
    """--trace, --hotspots and --false-sharing on a program whose answers are known: per rank
    2 pages written only by it ("own": shared with nobody) and 64 bytes of one shared page,
    4 windows ended by barriers. Every model, 1 and 2 ranks per node. The trace is valid
    trace-event JSON whose counts match --stats exactly (faults per rank, barriers, messages
    per node, each message's send paired with its receipt) and the program (2 allocations
    per rank at the printed addresses, its own pages' write faults: 2, under causal too, whose
    home pages nobody else holds stay writable across windows); node clocks agree within
    half their measured round trip; the two hottest pages are the shared ones, named by their
    call site, touched by every rank; the shared page is the only one flagged for false sharing, in all 4 windows, never truly shared, each node writing
    exactly its ranks' slots, while a page with a counter under a lock beside such slots is
    truly shared in every window; dsm-report makes one self-contained page of it all."""
    d = tempfile.mkdtemp(prefix="dsmrun-insight-")
    windows = 4
    try:
        for model in ("sequential", "release", "causal"):
            for opts in (["-n", "2"], ["-n", "4", "--ranks-per-node", "2"]):
                n, k = int(opts[1]), 1 if len(opts) == 2 else 2
                tpath, spath = os.path.join(d, "t.json"), os.path.join(d, "s.json")
                # causal's interval timer (2 ms) could end an interval between a rank's grant and
                # its write under load, and count a write fault more: only barriers end them here;
                # and one page per fault (no grant runs, no writes ahead, whose runs a remote
                # update under way may cut short)
                j = run(dsmrun, prog, ["insight", str(windows)],
                        opts + ["--consistency", model, "--trace", tpath, "--stats", spath, "--hotspots", "2",
                                "--false-sharing", "--timeout", "60"],
                        env_extra={"DSM_CAUSAL_DELAY_US": "10000000", "DSM_GRANT_AHEAD": "1"})
                what = "%s %s" % (model, " ".join(opts))
                check(j.rc == 0 and all("rank %d insight ok" % r in j.out for r in range(n)),
                      "%s: exit status %s" % (what, j.rc), j)
                m = re.search(r"insight own (0x[0-9a-f]+) shared (0x[0-9a-f]+) mixed (0x[0-9a-f]+)", j.out)
                check(m is not None, "%s: no addresses printed" % what, j)
                own, shared, mixed = int(m.group(1), 16), int(m.group(2), 16), int(m.group(3), 16)
                doc = trace_checked(tpath, j)
                with open(spath) as f:
                    st = json.load(f)
                ps = 4096
                ev = doc["traceEvents"]
                for r in st["ranks"]:
                    mine = [e for e in ev if e["ph"] == "X" and e["pid"] == r["rank"]]
                    faults = [e for e in mine if e["cat"] == "fault"]
                    check(len(faults) == r["read_faults"] + r["write_faults"],
                          "%s: rank %d: %d fault events, --stats counts %d" % (
                              what, r["rank"], len(faults), r["read_faults"] + r["write_faults"]), j)
                    bars = [e for e in mine if e["name"] == "dsm_barrier"]
                    check(len(bars) == windows == r["barriers"], "%s: rank %d: %d barrier events, %d in --stats"
                          % (what, r["rank"], len(bars), r["barriers"]), j)
                    check(len([e for e in mine if e["name"] == "dsm_finalize"]) == 1,
                          "%s: rank %d: not one dsm_finalize event" % (what, r["rank"]), j)
                    allocs = [(e["args"]["bytes"], int(e["args"]["address"], 16)) for e in mine
                              if e["name"] == "dsm_coalloc"]
                    check(allocs == [(2 * ps * n, own), (ps, shared), (ps, mixed)], "%s: rank %d: allocation events %s"
                          % (what, r["rank"], allocs), j)
                    lo = own + 2 * ps * r["rank"]
                    ownw = [e for e in faults if e["name"].startswith("write fault")
                            and lo <= int(e["args"]["address"], 16) < lo + 2 * ps]
                    want = 2  # causal too: a home page nobody else holds is private, left writable
                    check(len(ownw) == want, "%s: rank %d: %d write faults on its own pages, expected %d"
                          % (what, r["rank"], len(ownw), want), j)
                    check(all(isinstance(e["args"]["home"], int) for e in faults), "%s: fault without home" % what, j)
                for node in st["nodes"]:
                    sent = [e for e in ev if e["ph"] == "X" and e["pid"] == 1000000 + node["node"]
                            and e["tid"] == 2]
                    check(len(sent) == node["messages_sent"], "%s: node %d: %d messages traced, %d in --stats"
                          % (what, node["node"], len(sent), node["messages_sent"]), j)
                starts = sorted(e["id"] for e in ev if e["ph"] == "s")
                ends = sorted(e["id"] for e in ev if e["ph"] == "f")
                check(starts == ends and len(set(starts)) == len(starts),
                      "%s: %d message sends and %d receipts do not pair up" % (what, len(starts), len(ends)), j)
                info = doc["otherData"]["dsm"]
                check(info["complete"] and info["dropped_events"] == 0, "%s: trace incomplete" % what, j)
                for node, off in info["clock_offsets_ns"].items():
                    rtt = info["clock_rtt_ns"][node]
                    check(node == "0" and off == 0 or rtt > 0 and abs(off) <= rtt // 2 + 1,
                          "%s: node %s clock offset %d ns with a round trip of %d ns: one clock on one host "
                          "must agree within half of it" % (what, node, off, rtt), j)
                # hot spots: the shared page first, named, every rank
                hot = st["hotspots"][:2]
                check(sorted(int(h["address"], 16) for h in hot) == [shared, mixed] and
                      all(h["ranks"] == list(range(n)) for h in hot),
                      "%s: hottest pages %s (ranks %s), expected the shared pages %#x and %#x" % (
                          what, [h["address"] for h in hot], [h["ranks"] for h in hot], shared, mixed), j)
                check(all("run_insight" in h["allocation"] and "dsm_coalloc(4096)" in h["allocation"] for h in hot),
                      "%s: hot spots' allocations not named by their call site: %s" % (
                          what, [h["allocation"] for h in hot]), j)
                check("hot spots:" in j.err, "%s: no hot-spot report on stderr" % what, j)
                # false sharing: the shared page only, each node its ranks' slots; the page with a
                # counter under a lock beside the slots is truly shared in every window
                fs = {int(e["address"], 16): e for e in st["false_sharing"]}
                check(sorted(fs) == [shared, mixed], "%s: pages in the false-sharing report: %s, expected %#x and %#x"
                      % (what, [hex(a) for a in sorted(fs)], shared, mixed), j)
                check(fs[mixed]["true_windows"] == windows and fs[mixed]["false_windows"] == 0 and
                      not fs[mixed]["flagged"], "%s: the page of the counter under lock 1: %s, expected %d windows of "
                      "true sharing and none false" % (what, fs[mixed], windows), j)
                e = fs[shared]
                want = [{"node": q, "ranks": list(range(q * k, q * k + k)),
                         "ranges": [[64 * k * q, 64 * k * q + 64 * k - 1]], "more_ranges": 0}
                        for q in range(n // k)]
                check(e["flagged"] and e["false_windows"] == windows and e["true_windows"] == 0 and
                      sorted(e["writers"], key=lambda w: w["node"]) == want,
                      "%s: false sharing of the shared page: %s, expected %d windows and writers %s"
                      % (what, e, windows, want), j)
                check("suggestion:" in j.err, "%s: no suggestion printed" % what, j)
                if model == "release":
                    report_checked(dsmrun, spath, tpath, doc, shared, os.path.join(d, "r.html"), j)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def case_insight_apps(dsmrun, prog):
    """--false-sharing on the apps (built beside dsmrun): falseshare, whose rows of every rank
    interleave on every page of its matrices, is flagged there (and nowhere else); jacobi and
    matmul, whose ranks own whole pages, are not. Every model, 2 ranks and 4 with 2 per node."""
    bindir = os.path.dirname(os.path.abspath(dsmrun))
    d = tempfile.mkdtemp(prefix="dsmrun-insight-")
    try:
        for model in ("sequential", "release", "causal"):
            for opts in (["-n", "2"], ["-n", "4", "--ranks-per-node", "2"]):
                for app in ("falseshare", "jacobi", "matmul"):
                    spath = os.path.join(d, "s.json")
                    what = "%s %s %s" % (app, model, " ".join(opts))
                    r = subprocess.run([dsmrun] + opts + ["--consistency", model, "--false-sharing", "--stats",
                                                          spath, "--timeout", "120", "--",
                                                          os.path.join(bindir, app)],
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=150)
                    check(r.returncode == 0, "%s: exit status %d\n%s%s" % (what, r.returncode, r.stdout, r.stderr))
                    with open(spath) as f:
                        flagged = [e for e in json.load(f)["false_sharing"] if e["flagged"]]
                    if app == "falseshare":
                        check(flagged and all("falseshare.c" in e["allocation"] and len(e["writers"]) >= 2
                                              for e in flagged),
                              "%s: %d pages flagged (%s), expected the matrices' pages" % (
                                  what, len(flagged), [e["allocation"] for e in flagged[:3]]))
                    else:
                        check(not flagged, "%s: pages flagged for false sharing: %s" % (
                            what, [(e["page"], e["allocation"]) for e in flagged[:3]]))
    finally:
        shutil.rmtree(d, ignore_errors=True)


def case_placement(dsmrun, prog):
    """dsm_coalloc_ex: bad attributes are DSM_EINVAL and the job goes on; homes follow the
    placement. Rank 0 reads the first two pages of a block, a cyclic(1) and a node-1 region
    on two nodes: under sequential and release every page homed on node 1 is one fetch, so
    exactly 0 + 1 + 2 = 3 (all-block homes would give 0), with reads ahead off (they would
    also fetch the pages after those), under causal too (its partial replicas fetch)."""
    d = tempfile.mkdtemp(prefix="dsmrun-stats-")
    try:
        for model, want in (("sequential", 3), ("release", 3), ("causal", 3)):
            path = os.path.join(d, "%s.json" % model)
            j = run(dsmrun, prog, ["placement"], ["-n", "2", "--consistency", model, "--stats", path,
                                                  "--timeout", "60"], env_extra={"DSM_READ_AHEAD": "1"})
            check(j.rc == 0, "%s: exit status %s" % (model, j.rc), j)
            with open(path) as f:
                ranks = json.load(f)["ranks"]
            got = [r["pages_fetched"] for r in ranks]
            check(got == [want, 0], "%s: pages fetched by ranks 0, 1: %s, expected [%d, 0]" % (model, got, want), j)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def case_stats_incomplete(dsmrun, prog):
    """--stats after --timeout: written, with the counts so far (kept by the daemons, not
    lost with the ranks), and marked "complete": false with what is missing."""
    d = tempfile.mkdtemp(prefix="dsmrun-stats-")
    try:
        path = os.path.join(d, "stats.json")
        j = run(dsmrun, prog, ["loop"], ["-n", "2", "--timeout", "3", "--stats", path])
        check(j.rc == 124, "exit status %s, expected 124" % j.rc, j)
        with open(path) as f:
            doc = json.load(f)
        check(doc.get("complete") is False, "complete is %r, expected false" % doc.get("complete"), j)
        check(any("did not finalize" in m for m in doc.get("missing", [])),
              "missing does not say the ranks did not finalize: %r" % doc.get("missing"), j)
        check(doc["wall_seconds"] > 1, "wall_seconds %r for a 3 s job" % doc["wall_seconds"], j)
        for r in doc["ranks"]:
            check(r["barriers"] >= 3 and r["wall_seconds"] > 1 and r["joined"] and not r["finalized"],
                  "rank %d: barriers %r, wall %r, joined %r, finalized %r" % (
                      r["rank"], r["barriers"], r["wall_seconds"], r["joined"], r["finalized"]), j)
        check("statistics incomplete" in j.err, "no line saying the statistics are incomplete", j)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def case_options(dsmrun, prog):
    """Invalid options: exit 2 and one clear `dsmrun:` line, before anything starts."""
    bad = [(["-n", "0"], "-n"), (["-n", "x"], "-n"), ([], "(or -np N) is required"),
           (["-n", "2", "--ranks-per-node", "0"], "--ranks-per-node"),
           (["-n", "2", "--consistency", "weak"], "consistency model 'weak'"),
           (["-n", "2", "--transport", "carrier-pigeon"], "transport"),
           (["-n", "2", "--timeout", "-1"], "--timeout"),
           (["-n", "2", "--peer-timeout", "0"], "--peer-timeout"),
           (["-n", "2", "--space-size", "lots"], "--space-size"),
           (["-n", "4", "--space-size", "8K"], "too small for 4 nodes"),
           (["-n", "2", "--space-size", "100T"], "does not fit in the address space"),
           (["-n", "2", "--no-such-option"], "no-such-option"),
           (["-n", "2", "-x", "1BAD"], "-x 1BAD"),
           (["-n", "2", "-x", "DSM_TEST_SURELY_UNSET"], "DSM_TEST_SURELY_UNSET is not set"),
           (["-n", "2", "--bind-to", "socket"], "--bind-to"),
           (["-n", "1025"], "sequential supports at most 1024 nodes; give --ranks-per-node 2 or more")]
    for opts, words in bad:
        j = run(dsmrun, prog, ["ok"], opts, limit_s=20)
        lines = j.err.strip().splitlines()
        check(j.rc == 2, "%s: exit status %s, expected 2" % (opts, j.rc), j)
        check(len(lines) == 1 and lines[0].startswith("dsmrun: ") and words in lines[0],
              "%s: expected one 'dsmrun:' line mentioning %r" % (opts, words), j)
    r = subprocess.run([dsmrun, "-n", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=20)
    check(r.returncode == 2 and "no program" in r.stderr, "no program: expected exit 2")
    r = subprocess.run([dsmrun, "-n", "2", "--dsmd", "/nonexistent/dsmd", "--", prog, "ok"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=20)
    check(r.returncode != 0 and r.stderr.startswith("dsmrun: --dsmd"),
          "--dsmd /nonexistent: expected a clear error, got %d %r" % (r.returncode, r.stderr))
    r = subprocess.run([dsmrun, "--models"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       timeout=20)
    check(r.returncode == 0 and r.stdout.split() == ["sequential", "release", "causal"],
          "--models: expected dsmd's three models, default first, got %d %r" % (r.returncode, r.stdout))
    r = subprocess.run([dsmrun, "-n", "2", "--", "/nonexistent/program"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=20)
    check(r.returncode == 127 and "not found" in r.stderr,
          "missing program: expected 127, got %d %r" % (r.returncode, r.stderr))


def case_mpirun_options(dsmrun, prog):
    """What mpirun users type: -np, -x VAR[=value], --tag-output, --bind-to core with
    --report-bindings, --oversubscribe; --version on every installed program (and
    dsm-compare --help) exits 0."""
    env = dict(os.environ, DSM_TEST_X="from-here")
    shell = 'echo "$DSM_RANK $DSM_TEST_X $DSM_TEST_Y $(taskset -pc $$ | sed "s/.*: //")"'
    r = subprocess.run([dsmrun, "-np", "3", "-x", "DSM_TEST_X", "-x", "DSM_TEST_Y=given", "--tag-output",
                        "--bind-to", "core", "--report-bindings", "--oversubscribe", "--", "sh", "-c", shell],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                       timeout=JOB_LIMIT_S, env=env)
    check(r.returncode == 0, "exit %d: %s" % (r.returncode, r.stderr))
    cpus = sorted(os.sched_getaffinity(0))
    for rank in range(3):
        want = "[%d] %d from-here given %d" % (rank, rank, cpus[rank % len(cpus)])
        check(want in r.stdout.splitlines(), "expected the line %r in %r" % (want, r.stdout))
        check("rank %d (node %d) bound to CPU %d" % (rank, rank, cpus[rank % len(cpus)]) in r.stderr,
              "--report-bindings did not report rank %d: %r" % (rank, r.stderr))
    here = os.path.dirname(os.path.abspath(dsmrun))
    for tool in ("dsmrun", "dsmd", "dsm-compare", "bench-models", "bench-cache", "bench-invalidate"):
        r = subprocess.run([os.path.join(here, tool), "--version"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=20)
        check(r.returncode == 0 and re.fullmatch(r"%s \(dsm\) \d+\.\d+\.\d+\n" % tool, r.stdout),
              "%s --version: exit %d, %r" % (tool, r.returncode, r.stdout + r.stderr))
    r = subprocess.run([os.path.join(here, "dsm-compare"), "--help"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=20)
    check(r.returncode == 0 and "usage" in r.stdout, "dsm-compare --help: exit %d" % r.returncode)


CASES = {name[5:]: fn for name, fn in globals().items() if name.startswith("case_")}


def main(argv):
    if len(argv) != 4 or argv[3] not in CASES:
        sys.stderr.write("usage: launcher_test.py DSMRUN PROG {%s}\n" % ",".join(CASES))
        return 2
    dsmrun, prog, case = argv[1], os.path.abspath(argv[2]), argv[3]
    try:
        CASES[case](dsmrun, prog)
    except Failure as e:
        sys.stderr.write("FAIL %s: %s\n" % (case, e))
        return 1
    print("PASS %s" % case)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

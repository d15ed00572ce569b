#!/usr/bin/env python3
"""netdelay_test.py - the delayed links of `scripts/testhosts up N --delay US`.

    netdelay_test.py TESTHOSTS US

Brings up 2 test hosts with --delay US and checks, whichever mechanism testhosts picked
(netem, or the NFQUEUE delay line dsm-netdelay where the kernel has no sch_netem):
  - a TCP request/response between dsmh1 and dsmh2 (64 bytes each way, 20 exchanges after a
    warm-up) never takes less than 2*US (the delay is one way per host, so a round trip
    crosses it twice), and its fastest exchange is not absurdly slow;
with the delay line also:
  - one dsm-netdelay per host, running in that host's namespace;
  - every packet the kernel queued to it was passed: the kernel's counters for the queue
    (/proc/net/netfilter/nfnetlink_queue: nothing dropped, nothing waiting) and the
    daemon's own count (SIGUSR1) agree;
  - it fails closed: with dsmh2's daemon killed, dsmh1 can no longer reach dsmh2;
and after `testhosts down`: no delay daemon, no host left.
Then it puts back the hosts it found (the tests/hosts fixture's, when it ran between them)
or none. Needs root (exit 77 otherwise, as testhosts does). Every wait is bounded.
"""

import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import time

DIR = os.environ.get("DSM_TESTHOSTS_DIR", "/tmp/dsm-testhosts")
SKIP = 77
PORT = 7009
EXCHANGES = 20


class Failure(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failure(what)


def sh(argv, timeout=120, ok=(0,)):
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       timeout=timeout, stdin=subprocess.DEVNULL)
    if r.returncode == SKIP and argv[0].endswith("testhosts"):
        raise SystemExit(SKIP)
    check(r.returncode in ok, "%s: exit %d\n%s%s" % (" ".join(argv), r.returncode, r.stdout,
                                                      r.stderr))
    return r


def found_state():
    """(number of hosts up, their delay in US) as testhosts left them; (0, 0) if none."""
    n = 0
    while os.path.exists(os.path.join(DIR, "sshd-%d.pid" % (n + 1))):
        n += 1
    delay = 0
    try:
        with open(os.path.join(DIR, "delay")) as f:
            delay = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        pass
    return n, delay


# A TCP echo server in dsmh2 and a timing client in dsmh1 (python, run in each namespace).
SERVER = r"""
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.251.0.2", %d)); s.listen(1); s.settimeout(60)
print("listening", flush=True)
c, _ = s.accept(); c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1); c.settimeout(60)
while True:
    b = b""
    while len(b) < 64:
        x = c.recv(64 - len(b))
        if not x: sys.exit(0)
        b += x
    c.sendall(b)
""" % PORT

CLIENT = r"""
import socket, time
c = socket.create_connection(("10.251.0.2", %d), timeout=30)
c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
for i in range(%d):
    t = time.monotonic_ns()
    c.sendall(bytes([i %% 256]) * 64)
    b = b""
    while len(b) < 64:
        x = c.recv(64 - len(b))
        if not x: raise SystemExit("connection closed")
        b += x
    if i: print((time.monotonic_ns() - t) / 1000.0)
c.close()
""" % (PORT, EXCHANGES + 1)


def tcp_rtts():
    """Round trips dsmh1 -> dsmh2 in microseconds (the first, connection warm-up, dropped)."""
    srv = subprocess.Popen(["ip", "netns", "exec", "dsmh2", sys.executable, "-c", SERVER],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           stdin=subprocess.DEVNULL)
    try:
        line = srv.stdout.readline()
        check(line.strip() == "listening", "echo server in dsmh2 did not start: %s%s"
              % (line, srv.stderr.read() if srv.poll() is not None else ""))
        r = sh(["ip", "netns", "exec", "dsmh1", sys.executable, "-c", CLIENT], timeout=90)
        srv.wait(timeout=30)
    finally:
        if srv.poll() is None:
            srv.kill()
            srv.wait()
    rtts = [float(x) for x in r.stdout.split()]
    check(len(rtts) == EXCHANGES, "expected %d round trips, got %r" % (EXCHANGES, r.stdout))
    return rtts


def queue_counters(i):
    """The kernel's counters for host i's queue: dict, or None if there is no such queue."""
    r = sh(["ip", "netns", "exec", "dsmh%d" % i, "cat", "/proc/net/netfilter/nfnetlink_queue"])
    for line in r.stdout.splitlines():
        f = line.split()
        if f and int(f[0]) == i:
            return dict(zip(["queue", "portid", "waiting", "copy_mode", "copy_range", "dropped",
                             "user_dropped", "id_sequence"], map(int, f[:8])))
    return None


def daemon_passed(i, pid):
    """The daemon's own count of passed packets, asked for with SIGUSR1."""
    log = os.path.join(DIR, "netdelay-%d.log" % i)
    before = open(log).read().count(" now: ")
    os.kill(pid, signal.SIGUSR1)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        text = open(log).read()
        if text.count(" now: ") > before:
            m = re.findall(r" now: passed (\d+) packets.*lost notifications (\d+)", text)
            return int(m[-1][0]), int(m[-1][1])
        time.sleep(0.05)
    raise Failure("dsm-netdelay on dsmh%d did not report after SIGUSR1:\n%s" % (i, text))


def netns_of(pid):
    return os.readlink("/proc/%d/ns/net" % pid)


def check_delay_line(testhosts):
    pids = {}
    for i in (1, 2):
        with open(os.path.join(DIR, "netdelay-%d.pid" % i)) as f:
            pids[i] = int(f.read())
        check(b"dsm-netdelay" in open("/proc/%d/cmdline" % pids[i], "rb").read(),
              "pid %d of netdelay-%d.pid is not dsm-netdelay" % (pids[i], i))
        check(pids[i] in {int(p) for p in sh(["ip", "netns", "pids", "dsmh%d" % i]).stdout.split()},
              "dsm-netdelay of dsmh%d does not run in that host's namespace" % i)
    # Every packet queued was passed: nothing dropped or waiting in the kernel, and the
    # daemon's count equals the kernel's (both read while no traffic flows: tries a few
    # times in case a stray packet goes by between the two readings).
    for i in (1, 2):
        for attempt in range(20):
            k1 = queue_counters(i)
            check(k1 is not None, "no queue %d in dsmh%d's nfnetlink_queue" % (i, i))
            passed, lost = daemon_passed(i, pids[i])
            k2 = queue_counters(i)
            if k1["id_sequence"] == k2["id_sequence"] and k2["waiting"] == 0:
                break
            time.sleep(0.2)
        check(k2["dropped"] == 0 and k2["user_dropped"] == 0,
              "dsmh%d's queue dropped packets: %r" % (i, k2))
        check(k2["waiting"] == 0, "dsmh%d: packets still waiting: %r" % (i, k2))
        check(k2["id_sequence"] > 0, "dsmh%d: nothing went through the delay line" % i)
        check(passed == k2["id_sequence"] and lost == 0,
              "dsmh%d: the kernel queued %d packets, the daemon passed %d (%d notifications "
              "lost)" % (i, k2["id_sequence"], passed, lost))
        print("dsmh%d: %d packets through the delay line, none dropped" % (i, passed))
    # Fails closed: without dsmh2's daemon, dsmh2 sends nothing.
    os.kill(pids[2], signal.SIGKILL)
    r = sh(["ip", "netns", "exec", "dsmh1", sys.executable, "-c",
            "import socket; socket.create_connection(('10.251.0.2', 22), timeout=2)"], ok=(0, 1))
    check(r.returncode != 0, "dsmh1 reached dsmh2 after dsmh2's delay daemon was killed "
                             "(the line failed open)")
    print("with dsmh2's daemon killed, dsmh2 is unreachable (fails closed)")
    return pids


def main(argv):
    if len(argv) != 3:
        sys.stderr.write("usage: netdelay_test.py TESTHOSTS US\n")
        return 2
    testhosts, us = argv[1], int(argv[2])
    if os.geteuid() != 0:
        print("SKIP: needs root (network namespaces)")
        return SKIP
    n0, d0 = found_state()
    try:
        up = sh([testhosts, "up", "2", "--delay", str(us)], timeout=120)
        sys.stdout.write(up.stdout)
        with open(os.path.join(DIR, "delay")) as f:
            mech = f.read().split()[1]
        check(mech in ("netem", "nfqueue") and mech in up.stdout.replace("NFQUEUE", "nfqueue"),
              "testhosts did not say its delay mechanism: %r" % up.stdout)
        rtts = tcp_rtts()
        lo, med = min(rtts), statistics.median(rtts)
        print("TCP 64->64 round trip dsmh1<->dsmh2 with %d us each way (%s): min %.0f median "
              "%.0f max %.0f us" % (us, mech, lo, med, max(rtts)))
        check(lo >= 2 * us, "a round trip took %.0f us, less than 2 x %d us" % (lo, us))
        # A loose bound (this VM's timers can be late by milliseconds): catches a delay
        # applied many times over or a stalled line, not noise.
        check(lo < 2 * us + 50000, "the fastest round trip took %.0f us" % lo)
        pids = check_delay_line(testhosts) if mech == "nfqueue" else {}
        sh([testhosts, "down"])
        time.sleep(0.2)
        for i, pid in pids.items():
            alive = os.path.exists("/proc/%d" % pid) and \
                b"dsm-netdelay" in open("/proc/%d/cmdline" % pid, "rb").read()
            check(not alive, "dsm-netdelay of dsmh%d (pid %d) still runs after down" % (i, pid))
        left = subprocess.run(["ip", "netns", "list"], stdout=subprocess.PIPE, text=True,
                              timeout=10).stdout
        check(not re.search(r"^dsmh\d", left, re.M), "hosts left after down: %s" % left)
        check(not os.path.exists(DIR), "%s left after down" % DIR)
    except Failure as e:
        sys.stderr.write("FAIL netdelay: %s\n" % e)
        for i in (1, 2):  # the delay daemons' own lines, if the hosts are still up
            try:
                with open(os.path.join(DIR, "netdelay-%d.log" % i)) as f:
                    sys.stderr.write("--- netdelay-%d.log:\n%s" % (i, f.read()))
            except OSError:
                pass
        return 1
    finally:
        # Put back what was there (the hosts fixture's 3 hosts, say), or nothing.
        if n0:
            cmd = [testhosts, "up", str(n0)] + (["--delay", str(d0)] if d0 else [])
        else:
            cmd = [testhosts, "down"]
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=120, stdin=subprocess.DEVNULL)
        if r.returncode != 0:
            sys.stderr.write("FAIL netdelay: could not restore the hosts (%s): %s\n"
                             % (" ".join(cmd), r.stdout))
            return 1
    print("PASS netdelay")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

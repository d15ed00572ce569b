#!/usr/bin/env python3
"""dsmrun_transport_test.py - dsmrun's transport choice, checked against this machine.

    dsmrun_transport_test.py DSMRUN JACOBI

Where an active RDMA port with an IPv4 address exists (the soft-RoCE guest of
scripts/test-rdma-vm), and dsmd has the rdma transport:
  --transport auto   says "transport auto: rdma (...)" in one line, the job runs, --stats
                     says "rdma";
  --transport rdma   runs (stats "rdma"), also with --device naming the device;
  --device NOSUCH    refused with a message naming the device;
  --listen-host 127.0.0.1 with rdma: the daemons refuse loopback with a clear message.
Elsewhere:
  --transport auto   says "transport auto: tcp (...)" in one line and runs over tcp;
  --transport rdma   refused with one clear line (no device, or no rdma in this dsmd).
Every job has a timeout; a failure prints the job's output.
"""

import json
import os
import subprocess
import sys
import tempfile

JOB_TIMEOUT = 240
IB = "/sys/class/infiniband"


class Failure(Exception):
    pass


def active_ipv4_ports():
    """[(device, ipv4)] of active ports with an IPv4-mapped GID (independent of dsmrun's code)."""
    out = []
    for dev in sorted(os.listdir(IB)) if os.path.isdir(IB) else []:
        ports = os.path.join(IB, dev, "ports")
        for port in sorted(os.listdir(ports)):
            with open(os.path.join(ports, port, "state")) as f:
                if "ACTIVE" not in f.read():
                    continue
            gids = os.path.join(ports, port, "gids")
            for g in os.listdir(gids):
                try:
                    with open(os.path.join(gids, g)) as f:
                        text = f.read().strip()
                except OSError:
                    continue
                if text.startswith("0000:0000:0000:0000:0000:ffff:"):
                    h = text.split(":")[-2:]
                    v = bytes.fromhex("".join(h))
                    out.append((dev, ".".join(str(b) for b in v)))
                    break
    return out


def dsmd_has_rdma(dsmrun):
    dsmd = os.path.join(os.path.dirname(os.path.abspath(dsmrun)), "dsmd")
    r = subprocess.run([dsmd, "--help"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=30)
    return any(ln.startswith("transports:") and "rdma" in ln.split() for ln in r.stdout.splitlines())


def job(dsmrun, jacobi, opts, env_extra=None):
    """Run a 2-rank jacobi job; (rc, stdout, stderr, stats or None)."""
    env = dict(os.environ)
    env.pop("DSM_TRANSPORT", None)
    env.update(env_extra or {})
    with tempfile.TemporaryDirectory() as d:
        stats = os.path.join(d, "stats.json")
        argv = [dsmrun, "-n", "2", "--timeout", str(JOB_TIMEOUT - 30), "--stats", stats] + opts + \
               ["--", jacobi, "-n", "64", "-i", "5"]
        r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           env=env, stdin=subprocess.DEVNULL, timeout=JOB_TIMEOUT)
        doc = None
        if os.path.exists(stats):
            with open(stats) as f:
                doc = json.load(f)
        return r.returncode, r.stdout, r.stderr, doc


def check(cond, what, res=None):
    if not cond:
        if res is not None:
            what += "\n--- status %s\n--- stdout:\n%s--- stderr:\n%s" % (res[0], res[1], res[2])
        raise Failure(what)


def auto_lines(err):
    return [ln for ln in err.splitlines() if ln.startswith("dsmrun: transport auto:")]


def ran_ok(res, transport):
    check(res[0] == 0 and "verified OK" in res[1], "the job failed", res)
    check(res[3] is not None and res[3].get("transport") == transport,
          "--stats names transport %r, expected %r" % (res[3] and res[3].get("transport"), transport), res)


def main(argv):
    if len(argv) != 3:
        sys.stderr.write("usage: dsmrun_transport_test.py DSMRUN JACOBI\n")
        return 2
    dsmrun, jacobi = argv[1], argv[2]
    ports = active_ipv4_ports()
    rdma = bool(ports) and dsmd_has_rdma(dsmrun)
    print("rdma_dsmrun: %s" % ("active RDMA port %s (%s): expecting rdma" % ports[0] if rdma else
                                "no usable RDMA here: expecting the tcp fallback and refusals"))
    try:
        for how, opts, env in (("--transport auto", ["--transport", "auto"], None),
                               ("DSM_TRANSPORT=auto", [], {"DSM_TRANSPORT": "auto"})):
            res = job(dsmrun, jacobi, opts, env)
            lines = auto_lines(res[2])
            want = "rdma" if rdma else "tcp"
            check(len(lines) == 1 and lines[0].startswith("dsmrun: transport auto: %s (" % want),
                  "%s: expected one 'transport auto: %s (...)' line, got %r" % (how, want, lines), res)
            ran_ok(res, want)
        if rdma:
            dev, addr = ports[0]
            ran_ok(job(dsmrun, jacobi, ["--transport", "rdma"]), "rdma")
            res = job(dsmrun, jacobi, ["--transport", "rdma", "--device", dev])
            ran_ok(res, "rdma")
            check(not auto_lines(res[2]), "an explicit --transport rdma printed the auto line", res)
            res = job(dsmrun, jacobi, ["--transport", "rdma", "--device", "nosuch0"])
            check(res[0] != 0 and "nosuch0" in res[2], "--device nosuch0: expected a refusal naming it", res)
            res = job(dsmrun, jacobi, ["--transport", "rdma", "--listen-host", "127.0.0.1"])
            check(res[0] != 0 and "loopback" in res[2], "rdma on 127.0.0.1: expected a loopback refusal", res)
            ran_ok(job(dsmrun, jacobi, ["--transport", "rdma", "--listen-host", addr]), "rdma")
        else:
            res = job(dsmrun, jacobi, ["--transport", "rdma"])
            errs = [ln for ln in res[2].splitlines() if ln.startswith("dsmrun:")]
            check(res[0] != 0 and len(errs) == 1 and ("RDMA" in errs[0] or "rdma" in errs[0]),
                  "--transport rdma without a device: expected one clear refusal", res)
        ran_ok(job(dsmrun, jacobi, ["--transport", "tcp"]), "tcp")
    except Failure as e:
        sys.stderr.write("FAIL rdma_dsmrun: %s\n" % e)
        return 1
    except subprocess.TimeoutExpired as e:
        sys.stderr.write("FAIL rdma_dsmrun: a job ran past %s s: %s\n" % (e.timeout, e.cmd))
        return 1
    print("rdma_dsmrun: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

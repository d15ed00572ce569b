#!/usr/bin/env python3
"""compare_check.py - run scripts/dsm-compare on a tiny falseshare job and check its output.

    compare_check.py --compare DSM_COMPARE --app FALSESHARE --models LIST --out DIR [--failures]

Checks, for `dsm-compare -n 2 --native --models LIST -- falseshare <tiny>`:
  - exit status 0;
  - NAME.md has a table whose header names every column the issue asks for, and exactly
    one row per model in order after the native row, each "ok", with numbers in every
    numeric cell, and messages and bytes greater than zero for every DSM model (a job of 2
    ranks that shares pages must send something); NAME.json agrees with the table;
  - NAME.png is a PNG (signature, IHDR) of the chart's size.
With --failures also:
  - `--models sequential,nosuchmodel`: exit status 1, sequential still ok, a FAILED row and
    a failure line naming the unknown model, and the chart still drawn;
  - a program that fails (`false`): exit status 1, a FAILED row with its exit status.
Prints what it checked; exit status 0 only when every check passed.
"""

import argparse
import json
import os
import re
import shutil
import struct
import subprocess
import sys

TINY = ["-r", "64", "-c", "32", "-p", "2", "-k", "2"]
RUN_TIMEOUT_S = 240
COLUMNS = ["model", "status", "wall s", "program s", "× native", "read faults", "write faults",
           "pages fetched", "invalidations", "diffs", "write notices", "messages", "bytes"]
PNG_SIZE = (1200, 520)

failures = []


def check(cond, what):
    print("%s: %s" % ("ok  " if cond else "FAIL", what))
    if not cond:
        failures.append(what)
    return cond


def run(cmd):
    print("$ " + " ".join(cmd))
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        check(False, "dsm-compare finished within %d s" % RUN_TIMEOUT_S)
        return None, ""
    out = p.stdout.decode("utf-8", "replace")
    sys.stdout.write("".join("  | " + l + "\n" for l in out.splitlines()))
    return p.returncode, out


def table_rows(md):
    """The Markdown table of NAME.md as (header cells, [row cells])."""
    lines = [l for l in md.splitlines() if l.startswith("|")]
    if len(lines) < 2:
        return None, []
    split = lambda l: [c.strip() for c in l.strip().strip("|").split("|")]
    return split(lines[0]), [split(l) for l in lines[2:]]


def number(cell):
    try:
        return float(cell.replace(" ", ""))
    except ValueError:
        return None


def png_size(path):
    """(width, height) from a PNG's IHDR, or None if the file is no PNG."""
    try:
        with open(path, "rb") as f:
            head = f.read(24)
    except OSError:
        return None
    if len(head) < 24 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    return struct.unpack(">II", head[16:24])


def read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def check_success(o, models):
    name = "ok"
    status, _ = run([o.compare, "-n", "2", "--native", "--models", ",".join(models), "--repeat", "2",
                     "--timeout", "120", "--out", o.out, "--name", name, "--", o.app] + TINY)
    check(status == 0, "dsm-compare exit status 0 (got %s)" % status)
    md = read(os.path.join(o.out, name + ".md"))
    if not check(md is not None, "%s.md written" % name):
        return
    head, rows = table_rows(md)
    check(head == COLUMNS, "table columns %s" % head)
    names = [r[0] for r in rows]
    check(names == ["native (2 threads)"] + models, "table rows %s" % names)
    by_name = {}
    for r in rows:
        by_name[r[0]] = r
        if not check(len(r) == len(COLUMNS), "row %s has %d cells" % (r[0], len(COLUMNS))):
            continue
        check(r[1] == "ok", "row %s status ok" % r[0])
        nums = [number(c) for c in r[2:]] if r[0] in models else [number(c) for c in r[2:5]]
        check(all(v is not None for v in nums), "row %s: numbers in its numeric cells" % r[0])
        if r[0] in models and all(v is not None for v in nums):
            check(nums[-1] > 0 and nums[-2] > 0, "row %s: messages and bytes > 0" % r[0])
            check(number(r[4]) > 0, "row %s: a ratio to native" % r[0])
    doc = json.loads(read(os.path.join(o.out, name + ".json")) or "null")
    if check(doc is not None, "%s.json written" % name):
        for m in doc["models"]:
            if m["model"] in models and m["model"] in by_name and m["counters"]:
                check(int(by_name[m["model"]][-1].replace(" ", "")) == m["counters"]["bytes_sent"],
                      "json and table agree on %s's bytes" % m["model"])
    size = png_size(os.path.join(o.out, name + ".png"))
    check(size == PNG_SIZE, "%s.png is a %dx%d PNG (got %s)" % (name, PNG_SIZE[0], PNG_SIZE[1],
                                                               size))
    if doc is not None:
        check_chart_script(read(os.path.join(o.out, name + ".gp")) or "", doc)
    check("![" in md and name + ".png" in md, "the table links the chart")


def check_chart_script(gp, doc):
    """The chart's gnuplot script: the time panel plots each model's ratio to native (as in
    the JSON) with its value on the bar and whiskers for the runs' spread, on a log axis
    exactly when the ratios span more than 10x."""
    block = re.search(r"\$time << EOD\n(.*?)\nEOD", gp, re.S)
    if not check(block is not None, "chart: a time datablock"):
        return
    got = {}
    for line in block.group(1).splitlines():
        m = re.match(r'"([^"]+)" (\S+) (\S+) (\S+)$', line)
        if m:
            got[m.group(1)] = tuple(float(x) for x in m.groups()[1:])
    ratios = {m["model"]: m["ratio"] for m in doc["models"] if m["ok"]}
    check(set(got) == set(ratios), "chart: bars for %s, expected %s" % (sorted(got), sorted(ratios)))
    for model, (v, lo, hi) in got.items():
        r = ratios.get(model)
        check(r is not None and abs(v - r) <= 1e-6 * r and lo <= v <= hi,
              "chart: %s's bar %.6g (whiskers %.6g-%.6g), ratio %s" % (model, v, lo, hi, r))
    panel = gp.split("set title", 2)[1] if gp.count("set title") >= 2 else ""
    span = max(ratios.values()) / min(ratios.values()) if ratios else 1
    log = re.search(r"^set logscale y", panel, re.M) is not None  # not "unset logscale y"
    check(log == (span > 10), "chart: log axis %s for ratios spanning %.1fx" % (log, span))
    check(gp.count("with labels") == 2 and gp.count("with yerrorbars") == 1,
          "chart: values on the bars of both panels, whiskers on the time panel's")


def check_unknown_model(o):
    name = "unknown"
    status, out = run([o.compare, "-n", "2", "--models", "sequential,nosuchmodel",
                       "--timeout", "120", "--out", o.out, "--name", name, "--", o.app] + TINY)
    check(status == 1, "unknown model: dsm-compare exit status 1 (got %s)" % status)
    check("Traceback" not in out, "unknown model: no Python traceback")
    md = read(os.path.join(o.out, name + ".md")) or ""
    _, rows = table_rows(md)
    got = {r[0]: r[1] for r in rows}
    check(got.get("sequential") == "ok", "unknown model: sequential still ran ok")
    check(got.get("nosuchmodel") == "**FAILED**", "unknown model: a FAILED row")
    check(re.search(r"nosuchmodel FAILED\*\*: .*unknown consistency model", md) is not None,
          "unknown model: a failure line that says why")
    check(png_size(os.path.join(o.out, name + ".png")) == PNG_SIZE,
          "unknown model: the chart is still drawn")


def check_failing_program(o):
    name = "false"
    prog = shutil.which("false") or "/bin/false"
    status, out = run([o.compare, "-n", "2", "--models", "sequential", "--timeout", "60",
                       "--out", o.out, "--name", name, "--", prog])
    check(status == 1, "failing program: dsm-compare exit status 1 (got %s)" % status)
    check("Traceback" not in out, "failing program: no Python traceback")
    md = read(os.path.join(o.out, name + ".md")) or ""
    check(re.search(r"^\| sequential \| \*\*FAILED\*\* \|", md, re.M) is not None,
          "failing program: a FAILED row")
    check(re.search(r"sequential FAILED\*\*: exit status 1", md) is not None,
          "failing program: the failure line gives the exit status")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--compare", required=True)
    p.add_argument("--app", required=True)
    p.add_argument("--models", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--failures", action="store_true")
    o = p.parse_args()
    shutil.rmtree(o.out, ignore_errors=True)
    check_success(o, [m for m in o.models.split(",") if m])
    if o.failures:
        check_unknown_model(o)
        check_failing_program(o)
    if failures:
        print("compare_check: %d check%s FAILED" % (len(failures), "s" * (len(failures) > 1)))
        return 1
    print("compare_check: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())

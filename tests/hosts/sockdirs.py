"""sockdirs.py - the host daemons' socket directories a test case leaves in /tmp.

dsmrun makes /tmp/dsmrun-<job>-<node> on each host for its daemon's socket and removes it
when the daemon ends (scripts/dsmrun, remote_command); the test hosts share this /tmp.
Directories there before the case started (an earlier failed run's) are not the case's.
"""
import os
import re
import shutil
import time

SOCKDIR_RE = re.compile(r"^dsmrun-[0-9a-f]+-\d+$")


def sockdirs():
    """The daemons' socket directories now in /tmp."""
    try:
        return {n for n in os.listdir("/tmp") if SOCKDIR_RE.match(n)}
    except OSError:
        return set()


BEFORE = sockdirs()  # taken when the test script imports this module, before its case runs


def sockdirs_left(limit_s=5.0):
    """This case's socket directories still there after a bounded wait (removed, and named)."""
    deadline = time.monotonic() + limit_s
    while (left := sorted(sockdirs() - BEFORE)) and time.monotonic() < deadline:
        time.sleep(0.1)
    for n in left:
        shutil.rmtree(os.path.join("/tmp", n), ignore_errors=True)
    return left

#!/bin/sh
# flood.sh - a daemon flooded with silent and reconnecting TCP connections keeps serving the
# job, with its file limit below the flood, and says so in a bounded number of lines.
#
# usage: flood.sh DSMRUN BAD_PEER
# Runs `prlimit --nofile=64:8192 dsmrun -n 2 -- bad_peer flood 1100 2000` (the daemons keep
# the 64-file soft limit; the flooding rank raises its own); passes when the job verified its
# data and the daemons printed at most MAX_LINES lines.
set -u
MAX_LINES=80
dsmrun=$1
prog=$2
out=$(mktemp "${TMPDIR:-/tmp}/dsm-flood.XXXXXX") || exit 2
trap 'rm -f "$out"' EXIT
prlimit --nofile=64:8192 -- "$dsmrun" -n 2 --timeout 120 -- "$prog" flood 1100 2000 >"$out" 2>&1
status=$?
cat "$out"
lines=$(grep -c '^dsmd\[node' "$out")
echo "flood.sh: dsmrun exited $status; the daemons printed $lines lines"
[ "$status" -eq 0 ] || { echo "flood.sh: FAIL: exit status $status"; exit 1; }
grep -q 'job carried on with shared data verified: OK' "$out" || { echo "flood.sh: FAIL: no OK line"; exit 1; }
[ "$lines" -le $MAX_LINES ] || { echo "flood.sh: FAIL: more than $MAX_LINES daemon lines"; exit 1; }
echo "flood.sh: OK"

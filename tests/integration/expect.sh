#!/bin/sh
# expect.sh - run a command, show its output, and pass only if it exits with the expected
# status AND its combined stdout+stderr matches an extended regular expression (and, with
# --reject REGEX, does not match that one).
#
# usage: expect.sh STATUS REGEX [--reject REGEX] -- COMMAND [ARGS...]
# (ctest's PASS_REGULAR_EXPRESSION alone would ignore the exit status.)
set -u
want_status=$1
want_regex=$2
shift 2
reject_regex=
if [ "${1:-}" = "--reject" ]; then
    reject_regex=$2
    shift 2
fi
if [ "${1:-}" != "--" ]; then
    echo "usage: expect.sh STATUS REGEX [--reject REGEX] -- COMMAND [ARGS...]" >&2
    exit 2
fi
shift
out=$(mktemp "${TMPDIR:-/tmp}/dsm-expect.XXXXXX") || exit 2
trap 'rm -f "$out"' EXIT
"$@" >"$out" 2>&1
status=$?
cat "$out"
fail=0
if [ "$status" -ne "$want_status" ]; then
    echo "expect.sh: exit status $status, expected $want_status" >&2
    fail=1
fi
if ! grep -Eq -- "$want_regex" "$out"; then
    echo "expect.sh: output does not match: $want_regex" >&2
    fail=1
fi
if [ -n "$reject_regex" ] && grep -Eq -- "$reject_regex" "$out"; then
    echo "expect.sh: output matches the rejected pattern: $reject_regex" >&2
    fail=1
fi
exit $fail

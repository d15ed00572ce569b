#!/bin/sh
# expect.sh - run a command, show its output, and pass only if it exits with the expected
# status, its combined stdout+stderr has a line matching every --match extended regular
# expression, and no line matching any --reject one.
#
# usage: expect.sh STATUS [--match REGEX]... [--reject REGEX]... -- COMMAND [ARGS...]
# (ctest's PASS_REGULAR_EXPRESSION alone would ignore the exit status.)
set -u
usage() {
    echo "usage: expect.sh STATUS [--match REGEX]... [--reject REGEX]... -- COMMAND [ARGS...]" >&2
    exit 2
}
[ $# -ge 1 ] || usage
want_status=$1
shift
out=$(mktemp "${TMPDIR:-/tmp}/dsm-expect.XXXXXX") || exit 2
pats=$(mktemp "${TMPDIR:-/tmp}/dsm-expect.XXXXXX") || { rm -f "$out"; exit 2; }
trap 'rm -f "$out" "$pats"' EXIT
# Patterns are kept in a file, one "m REGEX" or "r REGEX" per line, until the command runs.
while [ $# -gt 0 ] && [ "$1" != "--" ]; do
    case $1 in
        --match) [ $# -ge 2 ] || usage; printf 'm %s\n' "$2" >>"$pats"; shift 2 ;;
        --reject) [ $# -ge 2 ] || usage; printf 'r %s\n' "$2" >>"$pats"; shift 2 ;;
        *) usage ;;
    esac
done
[ "${1:-}" = "--" ] || usage
shift
[ $# -ge 1 ] || usage
"$@" >"$out" 2>&1
status=$?
cat "$out"
fail=0
if [ "$status" -ne "$want_status" ]; then
    echo "expect.sh: exit status $status, expected $want_status" >&2
    fail=1
fi
while IFS= read -r line; do
    kind=${line%% *}
    re=${line#? }
    if [ "$kind" = m ] && ! grep -Eq -- "$re" "$out"; then
        echo "expect.sh: no output line matches: $re" >&2
        fail=1
    elif [ "$kind" = r ] && grep -Eq -- "$re" "$out"; then
        echo "expect.sh: an output line matches the rejected pattern: $re" >&2
        fail=1
    fi
done <"$pats"
exit $fail

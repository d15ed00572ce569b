#!/bin/sh
# shutdown_loop.sh DSMRUN MODEL PROG - back-to-back verified jobs of 8 ranks, 4 per node:
# every one must exit 0 (a job that verifies its result and then fails at finalize is a
# failed job). 5 jobs; 20 with DSM_STRESS=1.
set -u
dsmrun=$1 model=$2 prog=$3
jobs=5
[ "${DSM_STRESS:-0}" != 0 ] && jobs=20
failed=0
i=1
while [ $i -le $jobs ]; do
    out=$("$dsmrun" -n 8 --ranks-per-node 4 --consistency "$model" --timeout 120 -- \
          "$prog" -s $((9000 + i)) -n 1 -r 3 -o 15 -m 256 2>&1)
    rc=$?
    if [ $rc -ne 0 ] || ! printf '%s\n' "$out" | grep -q "drf_check: 0 of 1 seeds failed"; then
        echo "shutdown_loop: $model job $i of $jobs: exit $rc"
        printf '%s\n' "$out" | tail -20
        failed=$((failed + 1))
    fi
    i=$((i + 1))
done
echo "shutdown_loop: $model: $((jobs - failed)) passed, $failed failed"
[ $failed -eq 0 ]

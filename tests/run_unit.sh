#!/bin/sh
# Runs every cmocka unit test binary given on the command line from the
# project root (tests read ../shared/data and tests/golden relative to it)
# and prints one closing line: "N passed, N failed".
pass=0; fail=0; failed=""
for t in "$@"; do
    if "$t"; then pass=$((pass + 1)); else fail=$((fail + 1)); failed="$failed $t"; fi
done
[ -n "$failed" ] && echo "failed:$failed"
echo "unit: $pass passed, $fail failed"
[ "$fail" -eq 0 ]

#!/bin/sh
# Runs every cmocka unit test binary given on the command line from the
# project root (tests read ../shared/data and tests/golden relative to it)
# and prints one closing line: "unit: N passed, N failed, N skipped".  A
# binary that cannot run here (no redis-server) exits 77 (SO_TEST_SKIPPED)
# and is counted as skipped, not passed.
pass=0; fail=0; skip=0; failed=""; skipped=""
for t in "$@"; do
    "$t"
    case $? in
        0) pass=$((pass + 1)) ;;
        77) skip=$((skip + 1)); skipped="$skipped $t" ;;
        *) fail=$((fail + 1)); failed="$failed $t" ;;
    esac
done
[ -n "$skipped" ] && echo "skipped:$skipped"
[ -n "$failed" ] && echo "failed:$failed"
echo "unit: $pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]

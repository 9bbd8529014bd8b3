#!/bin/sh
# Runs the integration tests (tests/integration/test_*.sh, or those named on
# the command line) from the project root.  Each test starts its own
# redis-server and services on free loopback ports and stops exactly what it
# started.  A test that cannot run here (a missing tool) says why and exits
# 77; it is counted as skipped, not passed.
# Prints one closing line: "integration: N passed, N failed, N skipped".
cd "$(dirname "$0")/.." || exit 1
pass=0; fail=0; skip=0; failed=""; skipped=""
tests="$*"
[ -n "$tests" ] || tests=$(ls tests/integration/test_*.sh 2>/dev/null)
for t in $tests; do
    echo "== $t"
    timeout 600 sh "$t"
    case $? in
        0) pass=$((pass + 1)) ;;
        77) skip=$((skip + 1)); skipped="$skipped $t" ;;
        *) fail=$((fail + 1)); failed="$failed $t" ;;
    esac
done
[ -n "$skipped" ] && echo "skipped:$skipped"
[ -n "$failed" ] && echo "failed:$failed"
echo "integration: $pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]

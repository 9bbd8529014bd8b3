#!/bin/sh
# Runs the integration tests (tests/integration/test_*.sh, or those named on
# the command line) from the project root.  Each test starts its own
# redis-server and services on free loopback ports and stops exactly what it
# started.  Prints one closing line: "integration: N passed, N failed".
cd "$(dirname "$0")/.." || exit 1
pass=0; fail=0; failed=""
tests="$*"
[ -n "$tests" ] || tests=$(ls tests/integration/test_*.sh 2>/dev/null)
for t in $tests; do
    echo "== $t"
    if timeout 600 sh "$t"; then pass=$((pass + 1)); else fail=$((fail + 1)); failed="$failed $t"; fi
done
[ -n "$failed" ] && echo "failed:$failed"
echo "integration: $pass passed, $fail failed"
[ "$fail" -eq 0 ]

#!/bin/sh
# `make lint`: the layering rule of common/, cppcheck and clang-tidy over
# common/, services/, tools/ and tests/unit/, with the build's own flags.
# Fails when any of them has a finding that is not suppressed with a reason:
#   clang-tidy   checks in .clang-tidy; suppressions inline
#                (// NOLINT(check): reason) or in tools/lint/tidy.supp
#   cppcheck     options below; suppressions in tools/lint/cppcheck.supp
#                (and inline: // cppcheck-suppress id)
#   layers       tools/lint/layers.sh
# Needs the generated protobuf headers ($BUILD/proto, `make lint` makes them).
# Environment: BUILD (default build), LINT_JOBS (default: number of CPUs).
cd "$(dirname "$0")/.." || exit 2
BUILD=${BUILD:-build}
JOBS=${LINT_JOBS:-$(nproc 2>/dev/null || echo 2)}
OUT=$BUILD/lint
TIDY=$(command -v clang-tidy-14 || command -v clang-tidy)
mkdir -p "$OUT"
rc=0

echo "== layers"
sh tools/lint/layers.sh || rc=1

sh tools/lint/compdb.sh "$BUILD" || { echo "lint: no compile database"; exit 2; }

echo "== cppcheck $(cppcheck --version | sed 's/^Cppcheck //')"
mkdir -p "$OUT/cppcheck"
# warning/performance/portability: bugs, not style.  System headers are not
# parsed (tools/lint/cppcheck.cfg says what cppcheck needs of them).
cppcheck --project="$BUILD/compile_commands.json" -j "$JOBS" -q \
    --cppcheck-build-dir="$OUT/cppcheck" --std=c11 \
    --enable=warning,performance,portability --inline-suppr \
    --library=posix --library=tools/lint/cppcheck.cfg \
    --suppressions-list=tools/lint/cppcheck.supp \
    --error-exitcode=1 \
    --template='{file}:{line}:{column}: {severity}: {message} [{id}]' 2>"$OUT/cppcheck.txt"
c=$?
cat "$OUT/cppcheck.txt"
echo "cppcheck: $(grep -c ': \(error\|warning\|style\|performance\|portability\): ' "$OUT/cppcheck.txt") finding(s)"
[ $c -eq 0 ] || rc=1

echo "== $($TIDY --version | grep -i 'llvm version' | sed 's/^ *//')"
python3 -c 'import json, sys
for e in json.load(open(sys.argv[1])):
    print(e["file"])' "$BUILD/compile_commands.json" >"$OUT/files.txt"
echo "clang-tidy: $(wc -l <"$OUT/files.txt") files, $JOBS at a time"
xargs -P "$JOBS" -n 1 "$TIDY" -p "$BUILD" --quiet <"$OUT/files.txt" >"$OUT/tidy.raw" 2>"$OUT/tidy.err"
t=$?
grep -i 'error:' "$OUT/tidy.err" && t=1
# xargs exits 123 when a clang-tidy run reports findings: the filter decides.
[ $t -eq 0 ] || [ $t -eq 123 ] || { echo "lint: clang-tidy failed ($t)"; cat "$OUT/tidy.err"; rc=1; }
python3 tools/lint/tidy-filter.py tools/lint/tidy.supp <"$OUT/tidy.raw" || rc=1

[ $rc -eq 0 ] && echo "lint: ok" || echo "lint: FAILED"
exit $rc

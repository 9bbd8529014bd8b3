#!/bin/sh
# make bench: the core micro-benchmarks (so-bench), then so-learn on the
# RouterBench training split, pinned to one core, 5 runs, median of the
# learning time so-learn reports.  Figures go to docs/BENCHMARKS.md by hand.
set -e
cd "$(dirname "$0")/.."
B=${BUILD:-build}
D=../shared/data/routerbench
"$B/bin/so-bench"
echo
echo "so-learn on the three *_train.csv (2,205 usable rows), one core (taskset -c 0), 5 runs:"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for i in 1 2 3 4 5; do
    taskset -c 0 "$B/bin/so-learn" --train "$D/arc_challenge_train.csv,$D/mbpp_train.csv,$D/winograde_train.csv" \
        --out "$out/hb.json" 2>&1 | sed -n 's/.*load \([0-9.]*\) s, learn \([0-9.]*\) s/\1 \2/p'
done | sort -k2 -n | awk '{ load[NR] = $1; learn[NR] = $2 }
    END { printf "  median load %.3f s, median learn %.3f s (min %.3f, max %.3f)\n",
                 load[3], learn[3], learn[1], learn[5] }'
echo
sh tools/bench_services.sh

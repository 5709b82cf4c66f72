#!/usr/bin/env bash
# Whole-command benchmark of the offline stages: `hardmatch ids` on a generated Windows
# PowerShell 5.1 Get-ADUser export, against a plain Python script doing the same work.
# Prints the median wall time of each over RUNS runs, rows/s, peak memory and the ratio.
# Given a BASELINE binary (an earlier build of hardmatch), measures it too, in the same run,
# and checks that it writes the same report.
#
#   scripts/bench-ids.sh [ROWS] [RUNS] [BASELINE]      (default 1000000 rows, 5 runs)
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-1000000}
runs=${2:-5}
baseline=${3:-}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cargo build --release --quiet --bin hardmatch --example gen_export
target/release/examples/gen_export "$rows" "$work/export.csv"
echo "input: $rows rows, $(du -h "$work/export.csv" | cut -f1), $(nproc) cores, commit $(git rev-parse --short HEAD)"

# measure NAME CMD...: runs CMD $runs times, prints the median seconds and the peak RSS.
measure() {
  local name=$1; shift
  local times=() peak=0
  for _ in $(seq "$runs"); do
    /usr/bin/time -f '%e %M' -o "$work/time" "$@" >/dev/null 2>&1 || true
    read -r secs kb <"$work/time"
    times+=("$secs")
    (( kb > peak )) && peak=$kb
  done
  local median
  median=$(printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  printf '%-10s median %6.2f s  %12.0f rows/s  peak %6.0f MiB  (runs: %s)\n' \
    "$name" "$median" "$(echo "$rows / $median" | bc -l)" "$(echo "$peak / 1024" | bc -l)" "${times[*]}"
  eval "median_$name=$median"
}

if [[ -n $baseline ]]; then
  measure baseline "$baseline" ids "$work/export.csv" -o "$work/baseline.csv"
fi
measure hardmatch target/release/hardmatch ids "$work/export.csv" -o "$work/ids.csv"
if [[ -n $baseline ]]; then
  cmp -s "$work/baseline.csv" "$work/ids.csv" && echo "the baseline's report and this build's are the same, byte for byte" \
    || { echo "the baseline writes another report" >&2; exit 1; }
fi
measure python python3 scripts/baseline_ids.py "$work/export.csv" "$work/py.csv"
printf 'hardmatch is %.1fx faster than the Python script\n' "$(echo "$median_python / $median_hardmatch" | bc -l)"

#!/usr/bin/env bash
# Whole-command benchmark of the offline stages: `hardmatch ids` on a generated Windows
# PowerShell 5.1 Get-ADUser export, against a plain Python script doing the same work.
# Prints the median wall time of each over RUNS runs, rows/s, peak memory and the ratio.
#
#   scripts/bench-ids.sh [ROWS] [RUNS]      (default 1000000 rows, 5 runs)
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-1000000}
runs=${2:-5}
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

measure hardmatch target/release/hardmatch ids "$work/export.csv" -o "$work/ids.csv"
measure python python3 scripts/baseline_ids.py "$work/export.csv" "$work/py.csv"
printf 'hardmatch is %.1fx faster than the Python script\n' "$(echo "$median_python / $median_hardmatch" | bc -l)"

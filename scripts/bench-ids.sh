#!/usr/bin/env bash
# Whole-command benchmark of the offline stages: `hardmatch ids` on a generated Windows
# PowerShell 5.1 Get-ADUser export, against a plain Python script doing the same work.
# Prints the median wall time of each over RUNS runs, rows/s, the median CPU time (user +
# system: less noisy than the wall time on a shared machine), peak memory and the ratio.
# Given a BASELINE binary (an earlier build of hardmatch), measures it too, in turn with this
# build round after round, and checks that it writes the same report.
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

# run NAME CMD...: runs CMD once, adds its wall time, CPU time (user + system) and peak RSS
# to NAME's lists.
run() {
  local name=$1; shift
  /usr/bin/time -f '%e %U %S %M' -o "$work/time" "$@" >/dev/null 2>&1 || true
  read -r secs user sys kb <"$work/time"
  eval "walls_$name+=($secs); cpus_$name+=($(echo "$user + $sys" | bc -l)); peaks_$name+=($kb)"
}

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# report NAME: the median wall time, rows/s, median CPU time and the peak RSS of NAME's runs.
report() {
  local name=$1 walls cpus peaks
  eval "walls=(\"\${walls_$name[@]}\"); cpus=(\"\${cpus_$name[@]}\"); peaks=(\"\${peaks_$name[@]}\")"
  local wall peak
  wall=$(median "${walls[@]}")
  peak=$(printf '%s\n' "${peaks[@]}" | sort -n | tail -1)
  printf '%-10s median %6.2f s  %12.0f rows/s  CPU %5.2f s  peak %6.0f MiB  (runs: %s)\n' \
    "$name" "$wall" "$(echo "$rows / $wall" | bc -l)" "$(median "${cpus[@]}")" \
    "$(echo "$peak / 1024" | bc -l)" "${walls[*]}"
  eval "median_$name=$wall"
}

# The baseline and this build run in turn, round after round, so that the load of a shared
# machine falls on both alike.
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for _ in $(seq "$runs"); do
  if [[ -n $baseline ]]; then
    run baseline "$baseline" ids "$work/export.csv" -o "$work/baseline.csv"
  fi
  run hardmatch target/release/hardmatch ids "$work/export.csv" -o "$work/ids.csv"
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
if [[ -n $baseline ]]; then
  report baseline
fi
report hardmatch
if [[ -n $baseline ]]; then
  cmp -s "$work/baseline.csv" "$work/ids.csv" && echo "the baseline's report and this build's are the same, byte for byte" \
    || { echo "the baseline writes another report" >&2; exit 1; }
fi
for _ in $(seq "$runs"); do
  run python python3 scripts/baseline_ids.py "$work/export.csv" "$work/py.csv"
done
report python
printf 'hardmatch is %.1fx faster than the Python script\n' "$(echo "$median_python / $median_hardmatch" | bc -l)"

#!/usr/bin/env bash
# Peak memory and time of `hardmatch plan --snapshot`: ROWS export rows against a generated
# snapshot of USERS users (examples/gen_tenant.rs: realistic user fields, every tenth user
# already synced). Issue 17's goal: 10,000 rows against 500,000 users within 1 GB.
#
#   scripts/bench-plan-snapshot.sh [USERS] [ROWS] [RUNS] [BINARY]
#       (default 500000 users, 10000 rows, 3 runs, target/release/hardmatch)
set -euo pipefail
cd "$(dirname "$0")/.."
users=${1:-500000}
rows=${2:-10000}
runs=${3:-3}
binary=${4:-target/release/hardmatch}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cargo build --release --quiet --bin hardmatch --example gen_tenant
target/release/examples/gen_tenant "$users" "$work/tenant.json" "$rows" "$work/users.csv"
echo "snapshot: $users users, $(du -h "$work/tenant.json" | cut -f1); export: $rows rows; $(nproc) cores; $binary (tree at commit $(git rev-parse --short HEAD))"

times=() peak=0
for _ in $(seq "$runs"); do
  status=0
  /usr/bin/time -f '%e %M' -o "$work/time" "$binary" plan "$work/users.csv" \
    --snapshot "$work/tenant.json" -o "$work/plan.csv" >/dev/null 2>"$work/stderr" || status=$?
  # 0: every row plans to stamp; 1: some rows need attention. Anything else is a failure.
  if (( status > 1 )); then cat "$work/stderr" >&2; exit "$status"; fi
  read -r secs kb < <(tail -n 1 "$work/time")  # after "Command exited with non-zero status 1"
  times+=("$secs")
  (( kb > peak )) && peak=$kb
done
median=$(printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
printf 'plan --snapshot: median %.2f s  peak %.0f MiB  (runs: %s)\n' \
  "$median" "$(echo "$peak / 1024" | bc -l)" "${times[*]}"
printf 'plan rows: %s\n' "$(($(wc -l <"$work/plan.csv") - 1))"

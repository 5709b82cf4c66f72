#!/usr/bin/env bash
# Runs one cargo-fuzz target for a while on one core, niced, with the committed seeds.
#
#   scripts/fuzz.sh TARGET [SECONDS]      (targets: anchor csv ldif spreadsheet; default 600 s)
#
# Stable Rust is enough: RUSTC_BOOTSTRAP=1 lets it take the nightly-only flags cargo fuzz
# passes (-Zsanitizer=address and friends). New corpus entries go to fuzz/corpus/TARGET and
# crashes to fuzz/artifacts/TARGET (both ignored by git). See TESTING.md.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:?usage: scripts/fuzz.sh TARGET [SECONDS]}
seconds=${2:-600}
seeds=(fuzz/seeds/"$target")
case $target in
  csv | ldif | spreadsheet) seeds+=(samples) ;;
esac
mkdir -p fuzz/corpus/"$target"
export RUSTC_BOOTSTRAP=1
exec nice -n 19 cargo fuzz run "$target" fuzz/corpus/"$target" "${seeds[@]}" -- \
  -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 \
  -print_final_stats=1

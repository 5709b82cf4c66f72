#!/usr/bin/env bash
# Builds one cargo-fuzz target and runs it for a while on one core, niced, with the
# committed seeds and the samples.
#
#   scripts/fuzz.sh TARGET [SECONDS] [LIBFUZZER FLAGS...]
#       targets: anchor csv ldif spreadsheet; default 600 s
#
# Stable Rust is enough: RUSTC_BOOTSTRAP=1 lets it take the nightly-only flags cargo fuzz
# passes (-Zsanitizer=address and friends). The fuzzer runs the built binary directly, so
# editing the sources while it runs does not trigger a rebuild. New corpus entries go to
# fuzz/corpus/TARGET, crashes to fuzz/artifacts/TARGET (both ignored by git). See TESTING.md.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:?usage: scripts/fuzz.sh TARGET [SECONDS] [LIBFUZZER FLAGS...]}
seconds=${2:-600}
shift $(($# < 2 ? $# : 2))
seeds=(fuzz/seeds/"$target")
case $target in
  csv | ldif | spreadsheet) seeds+=(samples) ;;
esac
export RUSTC_BOOTSTRAP=1
nice -n 19 cargo fuzz build "$target"
mkdir -p fuzz/corpus/"$target" fuzz/artifacts/"$target"
echo "fuzzing $target for $seconds s at commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src fuzz || echo ' (modified)')"
# One core: rayon (the readers and compute use it) gets one thread too.
export RAYON_NUM_THREADS=1
exec nice -n 19 fuzz/target/x86_64-unknown-linux-gnu/release/"$target" \
  -artifact_prefix=fuzz/artifacts/"$target"/ -max_total_time="$seconds" -rss_limit_mb=2048 \
  -timeout=10 -print_final_stats=1 "$@" fuzz/corpus/"$target" "${seeds[@]}"

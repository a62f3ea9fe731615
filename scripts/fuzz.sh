#!/usr/bin/env bash
# A fuzzing campaign: runs every cargo-fuzz target of hub-runtime/fuzz for
# the given time each and writes hub-runtime/fuzz/RESULTS.md (executions,
# coverage, crashes per target).
#
#   scripts/fuzz.sh [--minutes N]     (default 2 per target; fractions allowed)
#
# Needs cargo-fuzz (installed here with `cargo install cargo-fuzz --locked`
# when missing) and a nightly toolchain; without one it runs on stable with
# RUSTC_BOOTSTRAP=1. The sanitizer is off: the workspace forbids unsafe
# code, so AddressSanitizer would only halve the executions. Each target
# starts from its committed seed corpus (corpus/<target>, read only) and
# grows a scratch corpus outside the tree. Crashes land in
# hub-runtime/fuzz/artifacts/<target>/ and make this script fail; each one
# belongs in the seed corpus (replayed by `cargo test`) once fixed.
set -euo pipefail

minutes=2
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) minutes="$2"; shift 2 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
seconds=$(awk -v m="$minutes" 'BEGIN { s = int(m * 60); if (s < 1) s = 1; print s }')

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root/hub-runtime/fuzz"

if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  toolchain=(+nightly)
  toolchain_name="nightly ($(rustc +nightly --version))"
else
  export RUSTC_BOOTSTRAP=1
  toolchain=()
  toolchain_name="stable with RUSTC_BOOTSTRAP=1 ($(rustc --version))"
fi

fuzz=(cargo "${toolchain[@]}" fuzz)
"${fuzz[@]}" build --release --sanitizer none
targets=$("${fuzz[@]}" list)
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

rows=()
failed=0
for target in $targets; do
  mkdir -p "corpus/$target" "$scratch/$target"
  log="$scratch/$target.log"
  echo "== $target: ${seconds} s"
  status=0
  "${fuzz[@]}" run --release --sanitizer none "$target" "$scratch/$target" "corpus/$target" -- \
    -max_total_time="$seconds" -print_final_stats=1 -max_len=65536 >"$log" 2>&1 || status=$?
  # libFuzzer's final stats: `stat::number_of_executed_units: N`.
  executions=$(awk '/stat::number_of_executed_units/ { print $NF }' "$log" | tail -1)
  speed=$(awk '/stat::average_exec_per_sec/ { print $NF }' "$log" | tail -1)
  cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | awk '{ print $2 }')
  features=$(grep -oE 'ft: [0-9]+' "$log" | tail -1 | awk '{ print $2 }')
  corpus=$(find "$scratch/$target" -type f | wc -l)
  crashes=$(find "artifacts/$target" -type f 2>/dev/null | wc -l)
  if [ "$status" -ne 0 ] || [ "$crashes" -ne 0 ]; then
    failed=1
    tail -40 "$log"
  fi
  echo "   executions ${executions:-?}, ${speed:-?}/s, coverage ${cov:-?} edges, crashes $crashes"
  rows+=("| \`$target\` | ${seconds} s | ${executions:-?} | ${speed:-?} | ${cov:-?} | ${features:-?} | $corpus | $crashes |")
done

{
  echo "# Fuzzing results"
  echo
  echo "Written by \`scripts/fuzz.sh --minutes $minutes\` on $(date -u '+%Y-%m-%d %H:%M UTC'),"
  echo "$toolchain_name, libFuzzer without sanitizer, $(nproc) cores shared with other work."
  echo "Each target ran once for the time shown, from its seed corpus."
  echo
  echo "| target | time | executions | exec/s | coverage (edges) | features | corpus after | crashes |"
  echo "|---|---|---|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
} > RESULTS.md
echo "wrote hub-runtime/fuzz/RESULTS.md"
exit "$failed"

#!/usr/bin/env bash
# A fuzzing campaign: runs cargo-fuzz targets of hub-runtime/fuzz one after
# another (one libFuzzer process at a time) and writes
# hub-runtime/fuzz/RESULTS.md (executions, coverage, crashes per target).
#
#   scripts/fuzz.sh [--minutes N | --execs N] [--targets a,b,...]
#
#   --minutes N   run each target for N minutes (fractions allowed; default 2)
#   --execs N     run each target for N executions instead (libFuzzer -runs=N),
#                 e.g. --execs 10000000 for the issue's 10 million per target
#   --targets L   only these targets (comma-separated); their rows of
#                 RESULTS.md are replaced, the other rows are kept
#   --no-build    run the binaries of an earlier `cargo fuzz build`
#
# On a shared machine run it as `nice -n 19 scripts/fuzz.sh ...`.
# Needs cargo-fuzz (installed here with `cargo install cargo-fuzz --locked`
# when missing) and a nightly toolchain; without one it runs on stable with
# RUSTC_BOOTSTRAP=1. The sanitizer is off: the workspace forbids unsafe
# code, so AddressSanitizer would only halve the executions. Each target
# starts from its committed seed corpus (corpus/<target>, read only) plus
# the working corpus of earlier runs (corpus-work/<target>, git-ignored),
# and grows the working corpus, so runs build on each other. Crashes land in
# hub-runtime/fuzz/artifacts/<target>/ and make this script fail; each one
# becomes a regression test once fixed.
set -euo pipefail

minutes=2
execs=""
only=""
build=1
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) minutes="$2"; execs=""; shift 2 ;;
    --execs) execs="$2"; shift 2 ;;
    --targets) only="$2"; shift 2 ;;
    --no-build) build=0; shift ;;
    -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
seconds=$(awk -v m="$minutes" 'BEGIN { s = int(m * 60); if (s < 1) s = 1; print s }')
if [ -n "$execs" ]; then
  limit=(-runs="$execs")
  budget="$execs executions"
else
  limit=(-max_total_time="$seconds")
  budget="${seconds} s"
fi

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
if [ "$build" -eq 1 ]; then
  "${fuzz[@]}" build --release --sanitizer none
fi
host=$(rustc "${toolchain[@]}" -vV | sed -n 's/^host: //p')
bin_dir="$PWD/target/$host/release"
all_targets=$("${fuzz[@]}" list)
if [ -n "$only" ]; then
  targets=$(tr ',' '\n' <<<"$only")
  for target in $targets; do
    grep -qx "$target" <<<"$all_targets" || { echo "no fuzz target $target" >&2; exit 2; }
  done
else
  targets=$all_targets
fi
# libFuzzer's output per target, kept for reading after the run.
logs="$PWD/target/fuzz-logs"
mkdir -p "$logs"

declare -A rows=()
failed=0
for target in $targets; do
  mkdir -p "corpus/$target" "corpus-work/$target" "artifacts/$target"
  log="$logs/$target.log"
  started=$(date +%s)
  echo "== $target: $budget ($(date -u '+%H:%M:%S UTC'), log $log)"
  status=0
  # The binaries built above, run directly (`cargo fuzz run` would rebuild
  # first, picking up source edits made while a long campaign runs).
  "$bin_dir/$target" "corpus-work/$target" "corpus/$target" \
    -artifact_prefix="artifacts/$target/" "${limit[@]}" -print_final_stats=1 -max_len=65536 >"$log" 2>&1 || status=$?
  elapsed=$(( $(date +%s) - started ))
  # libFuzzer's final stats: `stat::number_of_executed_units: N`.
  executions=$(awk '/stat::number_of_executed_units/ { print $NF }' "$log" | tail -1)
  speed=$(awk '/stat::average_exec_per_sec/ { print $NF }' "$log" | tail -1)
  cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | awk '{ print $2 }')
  features=$(grep -oE 'ft: [0-9]+' "$log" | tail -1 | awk '{ print $2 }')
  corpus=$(find "corpus-work/$target" -type f | wc -l)
  crashes=$(find "artifacts/$target" -type f 2>/dev/null | wc -l)
  # 72: libFuzzer was interrupted (SIGINT, e.g. `kill -INT` to move a
  # time-boxed campaign on); its final stats are still printed.
  stopped=""
  if [ "$status" -eq 72 ]; then
    stopped=" (interrupted)"
    status=0
  fi
  if [ "$status" -ne 0 ] || [ "$crashes" -ne 0 ]; then
    failed=1
    tail -40 "$log"
  fi
  echo "   executions ${executions:-?} in ${elapsed} s, ${speed:-?}/s, coverage ${cov:-?} edges, crashes $crashes"
  rows[$target]="| \`$target\` | $(date -u '+%Y-%m-%d %H:%M') | ${elapsed} s${stopped} | ${executions:-?} | ${speed:-?} | ${cov:-?} | ${features:-?} | $corpus | $crashes |"
done

# Rows of earlier runs for targets not run now are kept (partial campaigns).
if [ -f RESULTS.md ]; then
  while IFS= read -r line; do
    target=$(sed -nE 's/^\| `([a-z_0-9]+)` \| [0-9]{4}-.*/\1/p' <<<"$line")
    if [ -n "$target" ] && [ -z "${rows[$target]:-}" ] && grep -qx "$target" <<<"$all_targets"; then
      rows[$target]="$line"
    fi
  done < RESULTS.md
fi
notes=""
if [ -f RESULTS.md ]; then
  # Hand-written notes below the marker survive a rewrite.
  notes=$(sed -n '/^<!-- notes -->$/,$p' RESULTS.md)
fi

{
  echo "# Fuzzing results"
  echo
  if [ -n "$execs" ]; then budget_flag="--execs $execs"; else budget_flag="--minutes $minutes"; fi
  echo "Written by \`scripts/fuzz.sh\` (last run: \`scripts/fuzz.sh $budget_flag${only:+ --targets $only}\`"
  echo "on $(date -u '+%Y-%m-%d %H:%M UTC')), $toolchain_name, libFuzzer without sanitizer,"
  echo "one libFuzzer process at a time, $(nproc) cores shared with other work."
  echo "Each target starts from its seed corpus plus the working corpus of earlier runs;"
  echo "\"run at\" is when the row's run ended, \"time\" its wall time, \"corpus\" the working corpus after it."
  echo
  echo "| target | run at (UTC) | time | executions | exec/s | coverage (edges) | features | corpus | crashes |"
  echo "|---|---|---|---|---|---|---|---|---|"
  for target in $all_targets; do
    if [ -n "${rows[$target]:-}" ]; then
      printf '%s\n' "${rows[$target]}"
    fi
  done
  if [ -n "$notes" ]; then
    echo
    printf '%s\n' "$notes"
  fi
} > RESULTS.md
echo "wrote hub-runtime/fuzz/RESULTS.md"
exit "$failed"

#!/usr/bin/env bash
# Benchmarks our hub side by side with a raw WebSocket baseline and
# socketioxide, from a fresh clone:
#
#   scripts/bench.sh            all workloads, 3 repetitions of each job interleaved (ours-json,
#                               ours-msgpack, raw, socketioxide, ours-json, …), jobs in random order
#                               (~25 min; single broadcast, idle and slow consumer once)
#   scripts/bench.sh --quick    one small case of every workload, once (~1 min)
#   scripts/bench.sh --repetitions=N   N repetitions instead of 3
#
# On a machine with two or more cores the server under test and the load
# generator are pinned to separate cores (`hubbench run --no-pin` turns that
# off). Run it on a quiet machine: RESULTS.md states each ratio's min–max over
# the repetitions; two runs of the same code should agree within ±10 %.
# To check that, render both runs together (each ratio's min–max then spans them):
#   target/release/hubbench render --md /tmp/both.md --png /tmp/both.png RUN1.jsonl RUN2.jsonl
#
# Writes bench/results/<mode>-<time>.jsonl, then renders bench/RESULTS.md
# and bench/results/chart.png from that file.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=full
args=()
for arg in "$@"; do
  case "$arg" in
    --quick) mode=quick; args+=(--quick) ;;
    --repetitions=*) args+=(--repetitions "${arg#--repetitions=}") ;;
    *) echo "usage: scripts/bench.sh [--quick] [--repetitions=N]" >&2; exit 2 ;;
  esac
done

# The chart's font (plotters draws text with ab_glyph from a TTF file).
font=/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf
if [ ! -f "$font" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq fonts-dejavu-core >/dev/null
  else
    echo "bench.sh: $font is missing; install the Debian package fonts-dejavu-core" >&2
    exit 1
  fi
fi

# ~19,000 connections per process need the open-file limit raised; the
# processes raise their soft limit to the hard one themselves.
if [ "$(ulimit -Hn)" != unlimited ] && [ "$(ulimit -Hn)" -lt 20000 ]; then
  echo "bench.sh: note: the hard open-file limit is $(ulimit -Hn); the 19,000-connection idle case needs 20,000" >&2
fi

cargo build --release -p hub-bench --bin hubbench
bin="${CARGO_TARGET_DIR:-target}/release/hubbench"

mkdir -p bench/results
out="bench/results/${mode}-$(date -u +%Y%m%dT%H%M%SZ).jsonl"
status=0
"$bin" run "${args[@]}" --out "$out" || status=$?
"$bin" render --md bench/RESULTS.md --png bench/results/chart.png "$out"
echo "bench.sh: wrote $out, bench/RESULTS.md, bench/results/chart.png"
exit "$status"

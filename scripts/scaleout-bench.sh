#!/usr/bin/env bash
# What scale-out costs: one hub process vs 2 and 3 processes joined by one
# Redis and by a three-shard Redis Cluster, broadcast and group traffic
# (tests/src/bin/scaleout-bench.rs says what is measured). Needs
# redis-server and redis-cli (scripts/test.sh installs them). A minute or
# two once built:
#
#   scripts/scaleout-bench.sh [--messages N] [--burst N] [--receivers R]
#
# Writes bench/results/scaleout.md (the table and how it was taken) and puts
# it at the end of bench/RESULTS.md, where `hubbench render` keeps it.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p hub-tests --bin conformance-server --bin scaleout-bench
out=bench/results/scaleout.md
{
  echo "## scale-out (scripts/scaleout-bench.sh)"
  echo
  echo "Taken $(date -u +%Y-%m-%dT%H:%MZ) on $(nproc) cores ($(uname -m)), with $(redis-server --version | cut -d' ' -f3); \`scaleout-bench $*\`."
  echo
  target/release/scaleout-bench "$@"
} > "$out.tmp"
mv "$out.tmp" "$out"
# Replace the section in RESULTS.md (everything from its heading on).
python3 - "$out" <<'PY'
import sys
results = "bench/RESULTS.md"
text = open(results).read()
heading = "## scale-out (scripts/scaleout-bench.sh)"
if heading in text:
    text = text[: text.index(heading)].rstrip("\n") + "\n"
open(results, "w").write(text + "\n" + open(sys.argv[1]).read())
PY
cat "$out"
